/* known-types: a cache of the broker's job types for POST /jobs. A type
 * that is not in the cache is looked up again at the broker before a job
 * is refused, so that a worker that just joined is seen at once. */
#include "known-types.h"

#include <stdlib.h>

#include "jw-json.h"
#include "jw-params.h"
#include "validate.h"

typedef struct
{
  JsonObject *description;
  JwParamSpec *spec; /* NULL: the type takes any params */
} KnownType;

struct _JwKnownTypes
{
  GHashTable *types; /* name → KnownType */
  gint64 updated_us; /* monotonic; 0: never */
};

static void
known_type_free (gpointer data)
{
  KnownType *t = data;

  json_object_unref (t->description);
  jw_param_spec_free (t->spec);
  g_free (t);
}

JwKnownTypes *
jw_known_types_new (void)
{
  JwKnownTypes *self = g_new0 (JwKnownTypes, 1);

  self->types =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, known_type_free);
  return self;
}

void
jw_known_types_free (JwKnownTypes *self)
{
  if (self == NULL)
    return;
  g_hash_table_unref (self->types);
  g_free (self);
}

void
jw_known_types_update (JwKnownTypes *self, JsonArray *types)
{
  guint n = types ? json_array_get_length (types) : 0;

  g_hash_table_remove_all (self->types);
  for (guint i = 0; i < n; i++)
    {
      JsonObject *desc =
          jw_json_node_object (json_array_get_element (types, i));
      const char *name = desc ? jw_json_get_string (desc, "name") : NULL;
      JsonNode *params = desc ? json_object_get_member (desc, "params") : NULL;
      g_autoptr (GError) error = NULL;
      KnownType *t;

      if (name == NULL)
        continue;
      t = g_new0 (KnownType, 1);
      t->description = json_object_ref (desc);
      if (params != NULL && !JSON_NODE_HOLDS_NULL (params))
        {
          t->spec = jw_param_spec_from_json (params, &error);
          /* The broker checked it; an unreadable one is not enforced. */
          if (t->spec == NULL)
            g_warning ("params of type %s not usable: %s", name,
                       error->message);
        }
      g_hash_table_replace (self->types, g_strdup (name), t);
    }
  self->updated_us = g_get_monotonic_time ();
}

gboolean
jw_known_types_fresh (JwKnownTypes *self, guint max_age_ms)
{
  return self->updated_us != 0
         && g_get_monotonic_time () - self->updated_us
                < (gint64)max_age_ms * G_TIME_SPAN_MILLISECOND;
}

gboolean
jw_known_types_has (JwKnownTypes *self, const char *name)
{
  return g_hash_table_contains (self->types, name);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *)a, *(char *const *)b);
}

char *
jw_known_types_names (JwKnownTypes *self)
{
  g_autofree const char **names =
      (const char **)g_hash_table_get_keys_as_array (self->types, NULL);
  guint n = g_hash_table_size (self->types);

  qsort (names, n, sizeof *names, compare_names);
  return g_strjoinv (", ", (char **)names);
}

gboolean
jw_known_types_check (JwKnownTypes *self, const char *type, JsonObject *params,
                      GError **error)
{
  KnownType *t = g_hash_table_lookup (self->types, type);
  g_autoptr (GError) local_error = NULL;

  if (t != NULL && t->spec != NULL
      && !jw_param_spec_check (t->spec, params, &local_error))
    {
      g_set_error_literal (error, JW_API_ERROR, JW_API_ERROR_INVALID_PARAMS,
                           local_error->message);
      return FALSE;
    }
  return jw_validate_params (type, params, error);
}
