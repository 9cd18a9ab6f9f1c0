/* Unit tests of the api's request validation (api/validate.c). */
#include <string.h>

#include "validate.h"

static const char *const types[] = { "sleep", "checksum", NULL };

static void
test_content_type (void)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (jw_validate_content_type ("application/json", NULL));
  g_assert_true (jw_validate_content_type ("Application/JSON", NULL));
  g_assert_true (
      jw_validate_content_type ("application/json; charset=utf-8", NULL));
  g_assert_true (jw_validate_content_type (" application/json ;x=y", NULL));
  g_assert_false (jw_validate_content_type ("application/jsonx", NULL));
  g_assert_false (jw_validate_content_type ("text/plain", NULL));
  g_assert_false (jw_validate_content_type (NULL, &error));
  g_assert_error (error, JW_API_ERROR, JW_API_ERROR_UNSUPPORTED_MEDIA_TYPE);
  g_assert_cmpuint (jw_api_error_status (error->code), ==, 415);
}

static void
test_body_length (void)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (jw_validate_body_length (FALSE, -1, 100, NULL));
  g_assert_true (jw_validate_body_length (FALSE, 100, 100, NULL));
  g_assert_false (jw_validate_body_length (FALSE, 101, 100, &error));
  g_assert_error (error, JW_API_ERROR, JW_API_ERROR_BODY_TOO_LARGE);
  g_assert_cmpstr (jw_api_error_code (error->code), ==, "body_too_large");
  g_clear_error (&error);
  g_assert_false (jw_validate_body_length (TRUE, -1, 100, &error));
  g_assert_error (error, JW_API_ERROR, JW_API_ERROR_LENGTH_REQUIRED);
  g_assert_cmpuint (jw_api_error_status (error->code), ==, 411);
}

/* Validates body and returns the error code, or NULL when accepted. */
static const char *
job_code (const char *body)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) params = NULL;
  g_autofree char *type = NULL;

  if (jw_validate_job_request (body, strlen (body), 32, types, &type, &params,
                               &error))
    {
      g_assert_nonnull (type);
      g_assert_true (JSON_NODE_HOLDS_OBJECT (params));
      return NULL;
    }
  g_assert_nonnull (error);
  g_assert_true (error->domain == JW_API_ERROR);
  return jw_api_error_code (error->code);
}

static void
test_job_accepted (void)
{
  g_autoptr (JsonNode) params = NULL;
  g_autofree char *type = NULL;
  const char *body = "{\"type\":\"sleep\",\"extra\":[1]}";

  g_assert_true (jw_validate_job_request (body, strlen (body), 32, types, &type,
                                          &params, NULL));
  g_assert_cmpstr (type, ==, "sleep");
  g_assert_cmpuint (json_object_get_size (json_node_get_object (params)), ==,
                    0);

  g_assert_null (job_code ("{\"type\":\"sleep\",\"params\":{}}"));
  g_assert_null (job_code ("{\"type\":\"sleep\",\"params\":"
                           "{\"seconds\":0.5,\"steps\":3,\"fail_at\":3}}"));
  g_assert_null (job_code ("{\"type\":\"sleep\",\"params\":"
                           "{\"seconds\":86400,\"steps\":10000}}"));
  g_assert_null (job_code ("{\"type\":\"checksum\",\"params\":"
                           "{\"path\":\"a/b\"}}"));
}

static void
test_job_syntax (void)
{
  g_autoptr (GString) deep = g_string_new (NULL);
  guint i;

  g_assert_cmpstr (job_code (""), ==, "invalid_json");
  g_assert_cmpstr (job_code ("{\"type\":'sleep'}"), ==, "invalid_json");
  g_assert_cmpstr (job_code ("{\"type\":\"sleep\"} x"), ==, "invalid_json");
  g_assert_cmpstr (job_code ("/* c */ {}"), ==, "invalid_json");

  for (i = 0; i < 40; i++)
    g_string_append_c (deep, '[');
  for (i = 0; i < 40; i++)
    g_string_append_c (deep, ']');
  g_assert_cmpstr (job_code (deep->str), ==, "json_too_deep");

  g_assert_cmpstr (job_code ("[]"), ==, "invalid_body");
  g_assert_cmpstr (job_code ("\"sleep\""), ==, "invalid_body");
}

static void
test_job_type (void)
{
  g_assert_cmpstr (job_code ("{}"), ==, "unknown_type");
  g_assert_cmpstr (job_code ("{\"type\":3}"), ==, "unknown_type");
  g_assert_cmpstr (job_code ("{\"type\":\"rm\"}"), ==, "unknown_type");
  g_assert_cmpuint (jw_api_error_status (JW_API_ERROR_UNKNOWN_TYPE), ==, 422);
}

static void
test_job_params (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) params = NULL;
  g_autofree char *type = NULL;
  const char *body = "{\"type\":\"sleep\",\"params\":{\"steps\":0}}";
  const char *bad[] = {
    "{\"type\":\"sleep\",\"params\":[]}",
    "{\"type\":\"sleep\",\"params\":{\"seconds\":-1}}",
    "{\"type\":\"sleep\",\"params\":{\"seconds\":86401}}",
    "{\"type\":\"sleep\",\"params\":{\"seconds\":\"1\"}}",
    "{\"type\":\"sleep\",\"params\":{\"steps\":10001}}",
    "{\"type\":\"sleep\",\"params\":{\"steps\":2.5}}",
    "{\"type\":\"sleep\",\"params\":{\"fail_at\":0}}",
    "{\"type\":\"sleep\",\"params\":{\"steps\":3,\"fail_at\":4}}",
    "{\"type\":\"sleep\",\"params\":{\"fail_at\":11}}",
    "{\"type\":\"checksum\"}",
    "{\"type\":\"checksum\",\"params\":{\"path\":\"\"}}",
    "{\"type\":\"checksum\",\"params\":{\"path\":7}}",
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (bad); i++)
    g_assert_cmpstr (job_code (bad[i]), ==, "invalid_params");

  /* The message names the member. */
  g_assert_false (jw_validate_job_request (body, strlen (body), 32, types,
                                           &type, &params, &error));
  g_assert_nonnull (strstr (error->message, "steps"));
}

static void
test_idempotency_key (void)
{
  char key[202];

  g_assert_true (jw_validate_idempotency_key ("abc-123 x", NULL));
  g_assert_false (jw_validate_idempotency_key ("", NULL));
  g_assert_false (jw_validate_idempotency_key ("a\tb", NULL));
  g_assert_false (jw_validate_idempotency_key ("caf\xc3\xa9", NULL));
  memset (key, 'k', 200);
  key[200] = '\0';
  g_assert_true (jw_validate_idempotency_key (key, NULL));
  key[200] = 'k';
  key[201] = '\0';
  g_assert_false (jw_validate_idempotency_key (key, NULL));
}

static void
test_job_id (void)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (jw_validate_job_id ("01m8y32mw2psjgtjanhxcrtbcc", NULL));
  g_assert_false (jw_validate_job_id ("01m8y32mw2psjgtjanhxcrtbc", NULL));
  g_assert_false (jw_validate_job_id ("01M8Y32MW2PSJGTJANHXCRTBCC", NULL));
  g_assert_false (jw_validate_job_id ("", &error));
  g_assert_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_JOB_ID);
}

static GHashTable *
query (const char *first, ...)
{
  GHashTable *q = g_hash_table_new (g_str_hash, g_str_equal);
  const char *key = first;
  va_list args;

  va_start (args, first);
  while (key != NULL)
    {
      g_hash_table_insert (q, (char *)key, va_arg (args, char *));
      key = va_arg (args, const char *);
    }
  va_end (args);
  return q;
}

static void
test_list_query (void)
{
  g_autoptr (GHashTable) q = NULL;
  const char *state, *before;
  gint64 limit;
  const char *bad[][2] = {
    { "state", "done" },  { "limit", "0" },  { "limit", "1001" },
    { "limit", "-1" },    { "limit", "5x" }, { "limit", "" },
    { "before", "nope" },
  };
  guint i;

  g_assert_true (jw_validate_list_query (NULL, &state, &limit, &before, NULL));
  g_assert_null (state);
  g_assert_cmpint (limit, ==, 50);

  q = query ("state", "running", "limit", "1000", "before",
             "01m8y32mw2psjgtjanhxcrtbcc", NULL);
  g_assert_true (jw_validate_list_query (q, &state, &limit, &before, NULL));
  g_assert_cmpstr (state, ==, "running");
  g_assert_cmpint (limit, ==, 1000);
  g_assert_cmpstr (before, ==, "01m8y32mw2psjgtjanhxcrtbcc");

  for (i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GHashTable) b = query (bad[i][0], bad[i][1], NULL);
      g_autoptr (GError) error = NULL;

      g_assert_false (
          jw_validate_list_query (b, &state, &limit, &before, &error));
      g_assert_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_QUERY);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/api/validate/content-type", test_content_type);
  g_test_add_func ("/api/validate/body-length", test_body_length);
  g_test_add_func ("/api/validate/job-accepted", test_job_accepted);
  g_test_add_func ("/api/validate/job-syntax", test_job_syntax);
  g_test_add_func ("/api/validate/job-type", test_job_type);
  g_test_add_func ("/api/validate/job-params", test_job_params);
  g_test_add_func ("/api/validate/idempotency-key", test_idempotency_key);
  g_test_add_func ("/api/validate/job-id", test_job_id);
  g_test_add_func ("/api/validate/list-query", test_list_query);
  return g_test_run ();
}
