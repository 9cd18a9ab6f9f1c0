/* types: the job types workers have announced, with their descriptions,
 * for the `types` query. The union of every type ever announced: a type
 * stays known when its last worker leaves, so that jobs of it can still be
 * submitted and wait for a worker.
 *
 * Each new or changed description is recorded in the ledger, in the same
 * batch as the jobs, and the broker loads them all when it starts: with
 * the SQLite store the api accepts a type across a broker restart while
 * none of its workers is connected. The memory store forgets them with
 * everything else. */
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

static gboolean
same_description (JsonObject *a, JsonObject *b)
{
  g_autoptr (JsonNode) na = json_node_init_object (json_node_alloc (), a);
  g_autoptr (JsonNode) nb = json_node_init_object (json_node_alloc (), b);

  return json_node_equal (na, nb);
}

/* Records desc in the ledger. A failure leaves the type known until the
 * broker stops. */
static void
save (JwBroker *self, const char *name, JsonObject *desc)
{
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), desc);
  g_autoptr (GError) error = NULL;

  if (!jw_ledger_save_type (self->ledger, name, node, &error))
    g_warning ("type not recorded in the ledger type=%s error=%s", name,
               error->message);
}

gboolean
broker_types_load (JwBroker *self, GError **error)
{
  GHashTable *known = table (self);
  g_autoptr (GHashTable) stored = jw_ledger_load_types (self->ledger, error);
  GHashTableIter iter;
  gpointer name, desc;

  if (stored == NULL)
    return FALSE;
  g_hash_table_iter_init (&iter, stored);
  while (g_hash_table_iter_next (&iter, &name, &desc))
    {
      if (g_hash_table_size (known) >= MAX_KNOWN_TYPES)
        {
          g_warning ("ledger types not loaded: already %d types known",
                     MAX_KNOWN_TYPES);
          break;
        }
      /* Checked again as if announced: the file may be older or damaged. */
      g_hash_table_replace (known, g_strdup (name),
                            canonical (name, jw_json_node_object (desc)));
    }
  if (g_hash_table_size (known) > 0)
    g_info ("ledger loaded types=%u", g_hash_table_size (known));
  return TRUE;
}

void
broker_types_announce (JwBroker *self, const char *name, JsonObject *announced)
{
  GHashTable *known = table (self);
  JsonObject *old = g_hash_table_lookup (known, name);
  JsonObject *desc;

  /* A bare name keeps what an earlier worker described. */
  if (old != NULL && announced == NULL)
    return;
  if (old == NULL && g_hash_table_size (known) >= MAX_KNOWN_TYPES)
    {
      g_warning ("type not recorded type=%s: already %d types known", name,
                 MAX_KNOWN_TYPES);
      return;
    }
  desc = canonical (name, announced);
  /* Every hello repeats its types: write only what changed. */
  if (old != NULL && same_description (old, desc))
    {
      json_object_unref (desc);
      return;
    }
  if (old == NULL)
    g_info ("new job type type=%s", name);
  save (self, name, desc);
  g_hash_table_replace (known, g_strdup (name), desc);
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
