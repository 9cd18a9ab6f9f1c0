/* jw-params: parameter descriptions of job types, in their key-file and
 * wire forms, and the check of a job's params against one. */
#include "jw-params.h"

#include <string.h>

#include "jw-json.h"

#define MAX_NAME 64
#define MAX_MEMBERS 256

G_DEFINE_QUARK (jw - params - error - quark, jw_params_error)

struct _JwParamSpec
{
  GArray *params; /* of JwParam */
};

static const char *const kind_names[] = {
  [JW_PARAM_STRING] = "string", [JW_PARAM_INTEGER] = "integer",
  [JW_PARAM_NUMBER] = "number", [JW_PARAM_BOOLEAN] = "boolean",
  [JW_PARAM_OBJECT] = "object", [JW_PARAM_ARRAY] = "array",
};

/* How a member of each kind is described in error messages. */
static const char *const kind_phrases[] = {
  [JW_PARAM_STRING] = "a string",  [JW_PARAM_INTEGER] = "an integer",
  [JW_PARAM_NUMBER] = "a number",  [JW_PARAM_BOOLEAN] = "a boolean",
  [JW_PARAM_OBJECT] = "an object", [JW_PARAM_ARRAY] = "an array",
};

const char *
jw_param_kind_to_string (JwParamKind kind)
{
  if ((guint)kind >= G_N_ELEMENTS (kind_names))
    return "unknown";
  return kind_names[kind];
}

gboolean
jw_param_kind_from_string (const char *str, JwParamKind *out)
{
  for (guint i = 0; i < G_N_ELEMENTS (kind_names); i++)
    if (g_strcmp0 (str, kind_names[i]) == 0)
      {
        *out = i;
        return TRUE;
      }
  return FALSE;
}

static gboolean
name_valid (const char *name, gboolean dot_allowed)
{
  gsize len = strlen (name);

  if (len == 0 || len > MAX_NAME || !g_ascii_isalnum (name[0]))
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (name[i]) && name[i] != '_' && name[i] != '-'
        && !(dot_allowed && name[i] == '.'))
      return FALSE;
  return TRUE;
}

gboolean
jw_type_name_valid (const char *name)
{
  return name != NULL && name_valid (name, TRUE);
}

static void
param_clear (gpointer data)
{
  JwParam *p = data;

  g_free (p->name);
}

static JwParamSpec *
spec_new (void)
{
  JwParamSpec *spec = g_new0 (JwParamSpec, 1);

  spec->params = g_array_new (FALSE, FALSE, sizeof (JwParam));
  g_array_set_clear_func (spec->params, param_clear);
  return spec;
}

void
jw_param_spec_free (JwParamSpec *spec)
{
  if (spec == NULL)
    return;
  g_array_unref (spec->params);
  g_free (spec);
}

guint
jw_param_spec_size (const JwParamSpec *spec)
{
  return spec->params->len;
}

const JwParam *
jw_param_spec_get (const JwParamSpec *spec, guint i)
{
  g_return_val_if_fail (i < spec->params->len, NULL);
  return &g_array_index (spec->params, JwParam, i);
}

static const JwParam *
spec_find (const JwParamSpec *spec, const char *name)
{
  for (guint i = 0; i < spec->params->len; i++)
    {
      const JwParam *p = &g_array_index (spec->params, JwParam, i);

      if (g_str_equal (p->name, name))
        return p;
    }
  return NULL;
}

/* Adds a member after checking it; the error names what is wrong. */
static gboolean
spec_add (JwParamSpec *spec, const char *name, JwParamKind kind,
          gboolean required, GError **error)
{
  JwParam p = { g_strdup (name), kind, required };

  if (!name_valid (name, FALSE))
    {
      g_set_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_SPEC,
                   "parameter name \"%s\" must be 1 to %d letters, digits, "
                   "'_' or '-'",
                   name, MAX_NAME);
      g_free (p.name);
      return FALSE;
    }
  if (spec_find (spec, name) != NULL)
    {
      g_set_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_SPEC,
                   "parameter %s is described twice", name);
      g_free (p.name);
      return FALSE;
    }
  if (spec->params->len >= MAX_MEMBERS)
    {
      g_set_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_SPEC,
                   "more than %d parameters", MAX_MEMBERS);
      g_free (p.name);
      return FALSE;
    }
  g_array_append_val (spec->params, p);
  return TRUE;
}

JwParamSpec *
jw_param_spec_parse (const char *text, GError **error)
{
  g_autoptr (JwParamSpec) spec = spec_new ();
  g_auto (GStrv) items = g_strsplit_set (text ? text : "", ",;", -1);

  for (guint i = 0; items[i] != NULL; i++)
    {
      char *item = g_strstrip (items[i]);
      char *colon, *type;
      gsize len;
      gboolean required = TRUE;
      JwParamKind kind;

      if (*item == '\0')
        continue;
      colon = strchr (item, ':');
      if (colon == NULL)
        {
          g_set_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_SPEC,
                       "\"%s\" is not NAME:TYPE", item);
          return NULL;
        }
      *colon = '\0';
      g_strstrip (item);
      type = g_strstrip (colon + 1);
      len = strlen (type);
      if (len > 0 && type[len - 1] == '?')
        {
          required = FALSE;
          type[len - 1] = '\0';
          g_strchomp (type);
        }
      if (!jw_param_kind_from_string (type, &kind))
        {
          g_set_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_SPEC,
                       "parameter %s: type \"%s\" is not one of string, "
                       "integer, number, boolean, object, array",
                       item, type);
          return NULL;
        }
      if (!spec_add (spec, item, kind, required, error))
        return NULL;
    }
  return g_steal_pointer (&spec);
}

JwParamSpec *
jw_param_spec_from_json (JsonNode *node, GError **error)
{
  g_autoptr (JwParamSpec) spec = spec_new ();
  JsonArray *array;
  guint n;

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    {
      g_set_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_SPEC,
                   "params must be an array of members");
      return NULL;
    }
  array = json_node_get_array (node);
  n = json_array_get_length (array);
  for (guint i = 0; i < n; i++)
    {
      JsonObject *m = jw_json_node_object (json_array_get_element (array, i));
      const char *name = m ? jw_json_get_string (m, "name") : NULL;
      const char *type = m ? jw_json_get_string (m, "type") : NULL;
      gboolean required = TRUE;
      JwParamKind kind;

      if (name == NULL || !jw_param_kind_from_string (type, &kind)
          || (json_object_has_member (m, "required")
              && !jw_json_get_bool (m, "required", &required)))
        {
          g_set_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_SPEC,
                       "params[%u] must be {\"name\": string, \"type\": one of "
                       "string, integer, number, boolean, object, array, "
                       "\"required\": boolean}",
                       i);
          return NULL;
        }
      if (!spec_add (spec, name, kind, required, error))
        return NULL;
    }
  return g_steal_pointer (&spec);
}

JsonNode *
jw_param_spec_to_json (const JwParamSpec *spec)
{
  JsonArray *array = json_array_new ();

  for (guint i = 0; i < spec->params->len; i++)
    {
      const JwParam *p = &g_array_index (spec->params, JwParam, i);
      JsonObject *m = json_object_new ();

      json_object_set_string_member (m, "name", p->name);
      json_object_set_string_member (m, "type",
                                     jw_param_kind_to_string (p->kind));
      json_object_set_boolean_member (m, "required", p->required);
      json_array_add_object_element (array, m);
    }
  return json_node_init_array (json_node_alloc (), array);
}

char *
jw_param_spec_to_string (const JwParamSpec *spec)
{
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < spec->params->len; i++)
    {
      const JwParam *p = &g_array_index (spec->params, JwParam, i);

      g_string_append_printf (out, "%s%s:%s%s", i ? ", " : "", p->name,
                              jw_param_kind_to_string (p->kind),
                              p->required ? "" : "?");
    }
  return g_string_free (out, FALSE);
}

static gboolean
node_is (JsonNode *node, JwParamKind kind)
{
  GType t;

  switch (kind)
    {
    case JW_PARAM_OBJECT: return JSON_NODE_HOLDS_OBJECT (node);
    case JW_PARAM_ARRAY: return JSON_NODE_HOLDS_ARRAY (node);
    default: break;
    }
  if (!JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  t = json_node_get_value_type (node);
  switch (kind)
    {
    case JW_PARAM_STRING: return t == G_TYPE_STRING;
    case JW_PARAM_BOOLEAN: return t == G_TYPE_BOOLEAN;
    case JW_PARAM_NUMBER: return t == G_TYPE_INT64 || t == G_TYPE_DOUBLE;
    case JW_PARAM_INTEGER:
      if (t == G_TYPE_INT64)
        return TRUE;
      if (t == G_TYPE_DOUBLE)
        {
          double d = json_node_get_double (node);

          return d == (double)(gint64)d && d >= -9.0e15 && d <= 9.0e15;
        }
      return FALSE;
    default: return FALSE;
    }
}

gboolean
jw_param_spec_check (const JwParamSpec *spec, JsonObject *params,
                     GError **error)
{
  JsonObjectIter iter;
  const char *name;
  JsonNode *node;

  /* Members in the order of the description, so that the first problem
   * named is stable. */
  for (guint i = 0; i < spec->params->len; i++)
    {
      const JwParam *p = &g_array_index (spec->params, JwParam, i);

      node = json_object_get_member (params, p->name);
      if (node == NULL || JSON_NODE_HOLDS_NULL (node))
        {
          if (!p->required)
            continue;
          g_set_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_INVALID,
                       "params.%s is required (%s)", p->name,
                       kind_phrases[p->kind]);
          return FALSE;
        }
      if (!node_is (node, p->kind))
        {
          g_set_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_INVALID,
                       "params.%s must be %s", p->name, kind_phrases[p->kind]);
          return FALSE;
        }
    }

  json_object_iter_init_ordered (&iter, params);
  while (json_object_iter_next_ordered (&iter, &name, &node))
    if (spec_find (spec, name) == NULL)
      {
        g_autofree char *known = jw_param_spec_to_string (spec);

        g_set_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_INVALID,
                     "params.%s is not a parameter of this type (it takes: "
                     "%s)",
                     name, *known ? known : "none");
        return FALSE;
      }
  return TRUE;
}
