/* types: the job types workers have announced, with their descriptions,
 * for the `types` query. The union of every type ever announced since the
 * broker started: a type stays known when its last worker leaves, so that
 * jobs of it can still be submitted and wait for a worker.
 *
 * Kept in memory only: after a broker restart the list starts empty and
 * fills again as the workers say hello to the new epoch (within about a
 * heartbeat). The ledger interface has no place for it yet; a persistent
 * store should keep it so that the api can accept a type while its workers
 * are away across a broker restart. */
#include "broker-private.h"

#include <stdlib.h>
#include <string.h>

#include "jw-json.h"
#include "jw-params.h"

#define MAX_KNOWN_TYPES 1024
#define MAX_DESCRIPTION 1024

static GHashTable *
table (JwBroker *self)
{
  if (self->types == NULL)
    self->types = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify)json_object_unref);
  return self->types;
}

/* The canonical description of one announced type: name, and the
 * optional members that are well formed. */
static JsonObject *
canonical (const char *name, JsonObject *announced)
{
  JsonObject *obj = json_object_new ();
  const char *description;
  JsonNode *params;
  gint64 n;

  json_object_set_string_member (obj, "name", name);
  if (announced == NULL)
    return obj;

  description = jw_json_get_string (announced, "description");
  if (description != NULL && strlen (description) <= MAX_DESCRIPTION
      && g_utf8_validate (description, -1, NULL))
    json_object_set_string_member (obj, "description", description);

  params = json_object_get_member (announced, "params");
  if (params != NULL && !JSON_NODE_HOLDS_NULL (params))
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (JwParamSpec) spec = jw_param_spec_from_json (params, &error);

      if (spec != NULL)
        json_object_set_member (obj, "params", jw_param_spec_to_json (spec));
      else
        g_warning ("type announced with unusable params type=%s: %s", name,
                   error->message);
    }
  if (jw_json_get_int (announced, "timeout_s", &n) && n > 0)
    json_object_set_int_member (obj, "timeout_s", n);
  if (jw_json_get_int (announced, "max_attempts", &n) && n > 0)
    json_object_set_int_member (obj, "max_attempts", n);
  return obj;
}

void
broker_types_announce (JwBroker *self, const char *name, JsonObject *announced)
{
  GHashTable *known = table (self);
  JsonObject *old = g_hash_table_lookup (known, name);

  /* A bare name keeps what an earlier worker described. */
  if (old != NULL && announced == NULL)
    return;
  if (old == NULL && g_hash_table_size (known) >= MAX_KNOWN_TYPES)
    {
      g_warning ("type not recorded type=%s: already %d types known", name,
                 MAX_KNOWN_TYPES);
      return;
    }
  if (old == NULL)
    g_info ("new job type type=%s", name);
  g_hash_table_replace (known, g_strdup (name), canonical (name, announced));
}

static guint
count_workers (JwBroker *self, const char *name)
{
  GHashTableIter iter;
  Worker *worker;
  guint n = 0;

  g_hash_table_iter_init (&iter, self->worker_table);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&worker))
    n += g_strv_contains ((const char *const *)worker->types, name);
  return n;
}

static int
by_name (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

JsonNode *
broker_types_to_node (JwBroker *self)
{
  GHashTable *known = table (self);
  g_autofree const char **names =
      (const char **)g_hash_table_get_keys_as_array (known, NULL);
  JsonArray *array = json_array_new ();
  guint n = g_hash_table_size (known);

  qsort (names, n, sizeof *names, by_name);
  for (guint i = 0; i < n; i++)
    {
      JsonObject *desc = g_hash_table_lookup (known, names[i]);
      JsonObject *copy = json_object_new ();
      JsonObjectIter iter;
      const char *member;
      JsonNode *value;

      json_object_iter_init_ordered (&iter, desc);
      while (json_object_iter_next_ordered (&iter, &member, &value))
        json_object_set_member (copy, member, json_node_copy (value));
      json_object_set_int_member (copy, "workers",
                                  count_workers (self, names[i]));
      json_array_add_object_element (array, copy);
    }
  return json_node_init_array (json_node_alloc (), array);
}
