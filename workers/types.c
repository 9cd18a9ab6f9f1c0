/* types: which job types this worker runs, and how each is described to
 * the broker. Built-in types carry fixed descriptions; configured ones are
 * read from [type.NAME] sections. */
#include "types.h"

#include <string.h>

#include "handler-command.h"
#include "jw-params.h"

#define MAX_SERVED 64

typedef struct
{
  char *name;
  const JwHandlerType *handler;
  gpointer type_data;
  JsonObject *description;
} ServedType;

struct _JwTypeTable
{
  GPtrArray *served;   /* of ServedType */
  GPtrArray *commands; /* of JwCommandType, owned */
};

static const struct
{
  const JwHandlerType *handler;
  const char *params;
  const char *description;
} builtins[] = {
  { &jw_handler_sleep, "seconds:number?, steps:integer?, fail_at:integer?",
    "waits `seconds` (0-86400, default 1) in `steps` (1-10000, default 10), "
    "one progress event per step; fails at step `fail_at` when given" },
  { &jw_handler_checksum, "path:string",
    "SHA-256 of a file below the worker's checksum-root, progress by bytes "
    "read" },
};

static void
served_free (gpointer data)
{
  ServedType *t = data;

  g_free (t->name);
  json_object_unref (t->description);
  g_free (t);
}

static JsonObject *
describe (const char *name, const char *description, const JwParamSpec *params,
          guint timeout_s, guint max_attempts)
{
  JsonObject *obj = json_object_new ();

  json_object_set_string_member (obj, "name", name);
  if (description != NULL)
    json_object_set_string_member (obj, "description", description);
  if (params != NULL)
    json_object_set_member (obj, "params", jw_param_spec_to_json (params));
  if (timeout_s > 0)
    json_object_set_int_member (obj, "timeout_s", timeout_s);
  if (max_attempts > 0)
    json_object_set_int_member (obj, "max_attempts", max_attempts);
  return obj;
}

static void
add_served (JwTypeTable *self, const char *name, const JwHandlerType *handler,
            gpointer type_data, JsonObject *description)
{
  ServedType *t = g_new0 (ServedType, 1);

  t->name = g_strdup (name);
  t->handler = handler;
  t->type_data = type_data;
  t->description = description;
  g_ptr_array_add (self->served, t);
}

/* The names of [worker] types, or NULL for "all". */
static GStrv
served_names (JwConfig *cfg)
{
  const char *value = jw_config_get_string (cfg, "worker", "types", NULL);
  g_autoptr (GStrvBuilder) b = NULL;
  g_auto (GStrv) parts = NULL;

  if (value == NULL)
    return NULL;
  b = g_strv_builder_new ();
  parts = g_strsplit_set (value, ",;", -1);
  for (guint i = 0; parts[i] != NULL; i++)
    {
      g_strstrip (parts[i]);
      if (parts[i][0] != '\0')
        g_strv_builder_add (b, parts[i]);
    }
  return g_strv_builder_end (b);
}

static gboolean
wanted (GStrv names, const char *name)
{
  return names == NULL || g_strv_contains ((const char *const *)names, name);
}

JwTypeTable *
jw_type_table_new (JwConfig *cfg, const char *checksum_root, GError **error)
{
  g_autoptr (JwTypeTable) self = g_new0 (JwTypeTable, 1);
  g_auto (GStrv) names = served_names (cfg);
  g_auto (GStrv) sections = jw_config_sections (cfg, "type.");
  const char *builtin_names[G_N_ELEMENTS (builtins) + 1] = { NULL };
  guint i;

  self->served = g_ptr_array_new_with_free_func (served_free);
  self->commands =
      g_ptr_array_new_with_free_func ((GDestroyNotify)jw_command_type_free);

  for (i = 0; i < G_N_ELEMENTS (builtins); i++)
    {
      g_autoptr (JwParamSpec) spec =
          jw_param_spec_parse (builtins[i].params, NULL);
      const char *name = builtins[i].handler->type;

      builtin_names[i] = name;
      if (!wanted (names, name))
        continue;
      add_served (self, name, builtins[i].handler,
                  builtins[i].handler == &jw_handler_checksum
                      ? (gpointer)checksum_root
                      : NULL,
                  describe (name, builtins[i].description, spec, 0, 0));
    }

  for (i = 0; sections[i] != NULL; i++)
    {
      const char *name = sections[i] + strlen ("type.");
      JwCommandType *type;

      /* A section may only tune a built-in type for the broker (its
       * timeout-s, max-attempts) without a command. */
      if (g_strv_contains (builtin_names, name))
        continue;
      type = jw_command_type_new (cfg, name, error);
      if (type == NULL)
        return NULL;
      g_ptr_array_add (self->commands, type);
      if (wanted (names, name))
        add_served (self, name, &jw_handler_command, type,
                    describe (name, type->description, type->params,
                              type->timeout_s, type->max_attempts));
    }

  for (i = 0; names != NULL && names[i] != NULL; i++)
    if (!jw_type_table_lookup (self, names[i], NULL, NULL))
      {
        g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                     "[worker] types names %s, which is neither built in "
                     "nor a [type.%s] section",
                     names[i], names[i]);
        return NULL;
      }
  /* The broker takes at most this many types in one hello. */
  if (self->served->len > MAX_SERVED)
    {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                   "this worker would serve %u types, more than the %d one "
                   "worker may announce; split them with [worker] types",
                   self->served->len, MAX_SERVED);
      return NULL;
    }
  if (self->served->len == 0)
    {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                   "[worker] types: this worker would serve no type");
      return NULL;
    }
  return g_steal_pointer (&self);
}

void
jw_type_table_free (JwTypeTable *self)
{
  if (self == NULL)
    return;
  g_clear_pointer (&self->served, g_ptr_array_unref);
  g_clear_pointer (&self->commands, g_ptr_array_unref);
  g_free (self);
}

gboolean
jw_type_table_lookup (JwTypeTable *self, const char *name,
                      const JwHandlerType **handler, gpointer *type_data)
{
  for (guint i = 0; i < self->served->len; i++)
    {
      ServedType *t = g_ptr_array_index (self->served, i);

      if (g_strcmp0 (t->name, name) != 0)
        continue;
      if (handler != NULL)
        *handler = t->handler;
      if (type_data != NULL)
        *type_data = t->type_data;
      return TRUE;
    }
  return FALSE;
}

JsonArray *
jw_type_table_announce (JwTypeTable *self)
{
  JsonArray *array = json_array_new ();

  for (guint i = 0; i < self->served->len; i++)
    {
      ServedType *t = g_ptr_array_index (self->served, i);

      json_array_add_object_element (array, json_object_ref (t->description));
    }
  return array;
}

guint
jw_type_table_size (JwTypeTable *self)
{
  return self->served->len;
}
