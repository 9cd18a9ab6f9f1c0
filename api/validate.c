/* validate: request checks of the api, free of any I/O. Each failure is a
 * JW_API_ERROR whose code maps to an HTTP status and a stable error code. */
#include "validate.h"

#include <string.h>

#include "jw-id.h"
#include "jw-json.h"
#include "jw-params.h"
#include "jw-util.h"

G_DEFINE_QUARK (jw - api - error - quark, jw_api_error)

static const struct
{
  const char *code;
  guint status;
} error_table[] = {
  [JW_API_ERROR_INVALID_JSON] = { "invalid_json", 400 },
  [JW_API_ERROR_JSON_TOO_DEEP] = { "json_too_deep", 400 },
  [JW_API_ERROR_INVALID_BODY] = { "invalid_body", 400 },
  [JW_API_ERROR_INVALID_IDEMPOTENCY_KEY] = { "invalid_idempotency_key", 400 },
  [JW_API_ERROR_INVALID_JOB_ID] = { "invalid_job_id", 400 },
  [JW_API_ERROR_INVALID_QUERY] = { "invalid_query", 400 },
  [JW_API_ERROR_TOKEN_REQUIRED] = { "token_required", 401 },
  [JW_API_ERROR_TOKEN_EXPIRED] = { "token_expired", 401 },
  [JW_API_ERROR_API_KEY_REQUIRED] = { "api_key_required", 401 },
  [JW_API_ERROR_TOKEN_INVALID] = { "token_invalid", 403 },
  [JW_API_ERROR_API_KEY_INVALID] = { "api_key_invalid", 403 },
  [JW_API_ERROR_TYPE_NOT_ALLOWED] = { "type_not_allowed", 403 },
  [JW_API_ERROR_NOT_FOUND] = { "not_found", 404 },
  [JW_API_ERROR_JOB_NOT_FOUND] = { "job_not_found", 404 },
  [JW_API_ERROR_METHOD_NOT_ALLOWED] = { "method_not_allowed", 405 },
  [JW_API_ERROR_JOB_FINISHED] = { "job_finished", 409 },
  [JW_API_ERROR_CONFLICT] = { "conflict", 409 },
  [JW_API_ERROR_LENGTH_REQUIRED] = { "length_required", 411 },
  [JW_API_ERROR_BODY_TOO_LARGE] = { "body_too_large", 413 },
  [JW_API_ERROR_UNSUPPORTED_MEDIA_TYPE] = { "unsupported_media_type", 415 },
  [JW_API_ERROR_UNKNOWN_TYPE] = { "unknown_type", 422 },
  [JW_API_ERROR_INVALID_PARAMS] = { "invalid_params", 422 },
  [JW_API_ERROR_IDEMPOTENCY_KEY_REUSED] = { "idempotency_key_reused", 422 },
  [JW_API_ERROR_INTERNAL] = { "internal_error", 500 },
  [JW_API_ERROR_BROKER] = { "broker_error", 502 },
  [JW_API_ERROR_BROKER_UNAVAILABLE] = { "broker_unavailable", 503 },
};

const char *
jw_api_error_code (JwApiError error)
{
  if ((guint)error >= G_N_ELEMENTS (error_table))
    return "internal_error";
  return error_table[error].code;
}

guint
jw_api_error_status (JwApiError error)
{
  if ((guint)error >= G_N_ELEMENTS (error_table))
    return 500;
  return error_table[error].status;
}

gboolean
jw_validate_content_type (const char *content_type, GError **error)
{
  const char *end;
  gsize len;

  if (content_type == NULL)
    goto refuse;

  /* The media type is everything before the first parameter, with
   * optional white space around it; it is case-insensitive. */
  while (*content_type == ' ' || *content_type == '\t')
    content_type++;
  end = strchr (content_type, ';');
  len = end ? (gsize)(end - content_type) : strlen (content_type);
  while (len > 0
         && (content_type[len - 1] == ' ' || content_type[len - 1] == '\t'))
    len--;
  if (len == strlen ("application/json")
      && g_ascii_strncasecmp (content_type, "application/json", len) == 0)
    return TRUE;

refuse:
  g_set_error (error, JW_API_ERROR, JW_API_ERROR_UNSUPPORTED_MEDIA_TYPE,
               "the body must be application/json");
  return FALSE;
}

gboolean
jw_validate_body_length (gboolean chunked, goffset length, gsize max_body,
                         GError **error)
{
  if (chunked)
    {
      g_set_error (error, JW_API_ERROR, JW_API_ERROR_LENGTH_REQUIRED,
                   "a request body needs a Content-Length");
      return FALSE;
    }
  if (length > 0 && (guint64)length > max_body)
    {
      g_set_error (error, JW_API_ERROR, JW_API_ERROR_BODY_TOO_LARGE,
                   "the body is larger than %" G_GSIZE_FORMAT " bytes",
                   max_body);
      return FALSE;
    }
  return TRUE;
}

/* Integer members are JSON numbers without a fraction (3 or 3.0), as
 * jw_json_get_int reads them. */
static gboolean
member_int (JsonObject *obj, const char *name, gboolean *present, gint64 *out)
{
  *present = json_object_has_member (obj, name);
  if (!*present)
    return TRUE;
  return jw_json_get_int (obj, name, out);
}

static gboolean
member_number (JsonObject *obj, const char *name, gboolean *present,
               double *out)
{
  JsonNode *node = json_object_get_member (obj, name);
  GType type;

  *present = node != NULL;
  if (node == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  type = json_node_get_value_type (node);
  if (type == G_TYPE_INT64)
    *out = (double)json_node_get_int (node);
  else if (type == G_TYPE_DOUBLE)
    *out = json_node_get_double (node);
  else
    return FALSE;
  return TRUE;
}

static gboolean
params_invalid (GError **error, const char *member, const char *what)
{
  g_set_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_PARAMS,
               "params.%s must be %s", member, what);
  return FALSE;
}

static gboolean
validate_sleep (JsonObject *params, GError **error)
{
  gboolean present;
  double seconds = 1;
  gint64 steps = 10, fail_at = 0;

  if (!member_number (params, "seconds", &present, &seconds)
      || !(seconds >= 0 && seconds <= 86400))
    return params_invalid (error, "seconds", "a number from 0 to 86400");
  if (!member_int (params, "steps", &present, &steps) || steps < 1
      || steps > 10000)
    return params_invalid (error, "steps", "an integer from 1 to 10000");
  if (!member_int (params, "fail_at", &present, &fail_at)
      || (present && (fail_at < 1 || fail_at > steps)))
    return params_invalid (error, "fail_at",
                           "an integer from 1 to the number of steps");
  return TRUE;
}

static gboolean
validate_checksum (JsonObject *params, GError **error)
{
  JsonNode *node = json_object_get_member (params, "path");

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING
      || *json_node_get_string (node) == '\0')
    return params_invalid (error, "path", "a non-empty string");
  return TRUE;
}

gboolean
jw_validate_params (const char *type, JsonObject *params, GError **error)
{
  if (g_str_equal (type, "sleep"))
    return validate_sleep (params, error);
  if (g_str_equal (type, "checksum"))
    return validate_checksum (params, error);
  return TRUE;
}

gboolean
jw_validate_job_request (const char *body, gsize len, guint max_depth,
                         const char *const *types, char **type_out,
                         JsonNode **params_out, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autoptr (JsonNode) root = NULL;
  JsonObject *obj, *params;
  JsonNode *type_node, *params_node;
  const char *type;

  g_return_val_if_fail (type_out != NULL && params_out != NULL, FALSE);

  root = jw_json_parse (body, len, max_depth, &local_error);
  if (root == NULL)
    {
      if (g_error_matches (local_error, JW_JSON_ERROR, JW_JSON_ERROR_TOO_DEEP))
        g_set_error (error, JW_API_ERROR, JW_API_ERROR_JSON_TOO_DEEP,
                     "the body is nested more than %u levels deep", max_depth);
      else
        g_set_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_JSON,
                     "the body is not valid JSON: %s", local_error->message);
      return FALSE;
    }

  obj = jw_json_node_object (root);
  if (obj == NULL)
    {
      g_set_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_BODY,
                   "the body must be a JSON object");
      return FALSE;
    }

  type_node = json_object_get_member (obj, "type");
  if (type_node == NULL || !JSON_NODE_HOLDS_VALUE (type_node)
      || json_node_get_value_type (type_node) != G_TYPE_STRING)
    {
      g_set_error (error, JW_API_ERROR, JW_API_ERROR_UNKNOWN_TYPE,
                   "type must be a string naming a job type");
      return FALSE;
    }
  type = json_node_get_string (type_node);
  if (!jw_type_name_valid (type))
    {
      g_set_error (error, JW_API_ERROR, JW_API_ERROR_UNKNOWN_TYPE,
                   "type must be a job type name: 1 to 64 letters, digits, "
                   "'_', '-' or '.'");
      return FALSE;
    }
  if (types != NULL && !g_strv_contains (types, type))
    {
      g_autofree char *known =
          types ? g_strjoinv (", ", (char **)types) : g_strdup ("");

      g_set_error (error, JW_API_ERROR, JW_API_ERROR_UNKNOWN_TYPE,
                   "unknown job type; known types: %s", known);
      return FALSE;
    }

  params_node = json_object_get_member (obj, "params");
  if (params_node == NULL)
    params_node =
        json_node_init_object (json_node_alloc (), json_object_new ());
  else if (JSON_NODE_HOLDS_OBJECT (params_node))
    params_node = json_node_copy (params_node);
  else
    {
      g_set_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_PARAMS,
                   "params must be an object");
      return FALSE;
    }

  params = json_node_get_object (params_node);
  if (types != NULL && !jw_validate_params (type, params, error))
    {
      json_node_unref (params_node);
      return FALSE;
    }

  *type_out = g_strdup (type);
  *params_out = params_node;
  return TRUE;
}

gboolean
jw_validate_idempotency_key (const char *key, GError **error)
{
  gsize i;

  for (i = 0; key[i] != '\0' && i <= 200; i++)
    if (key[i] < 0x20 || key[i] > 0x7e)
      break;
  if (i == 0 || i > 200 || key[i] != '\0')
    {
      g_set_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_IDEMPOTENCY_KEY,
                   "Idempotency-Key must be 1 to 200 printable characters");
      return FALSE;
    }
  return TRUE;
}

gboolean
jw_validate_job_id (const char *id, GError **error)
{
  if (id == NULL || !jw_id_valid (id, -1))
    {
      g_set_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_JOB_ID,
                   "a job id is %d characters of lower-case base32", JW_ID_LEN);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_limit (const char *str, gint64 *out)
{
  guint64 value;

  if (str == NULL || *str < '0' || *str > '9')
    return FALSE;
  if (!g_ascii_string_to_unsigned (str, 10, 1, 1000, &value, NULL))
    return FALSE;
  *out = (gint64)value;
  return TRUE;
}

gboolean
jw_validate_list_query (GHashTable *query, const char **state, gint64 *limit,
                        const char **before, GError **error)
{
  const char *value;
  JwState parsed;

  *state = NULL;
  *before = NULL;
  *limit = 50;
  if (query == NULL)
    return TRUE;

  value = g_hash_table_lookup (query, "state");
  if (value != NULL)
    {
      if (!jw_state_from_string (value, &parsed))
        {
          g_set_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_QUERY,
                       "state must be queued, running, succeeded, failed "
                       "or cancelled");
          return FALSE;
        }
      *state = value;
    }

  value = g_hash_table_lookup (query, "limit");
  if (value != NULL && !parse_limit (value, limit))
    {
      g_set_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_QUERY,
                   "limit must be an integer from 1 to 1000");
      return FALSE;
    }

  value = g_hash_table_lookup (query, "before");
  if (value != NULL)
    {
      if (!jw_id_valid (value, -1))
        {
          g_set_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_QUERY,
                       "before must be a job id");
          return FALSE;
        }
      *before = value;
    }
  return TRUE;
}
