/* End-to-end hostile input: malformed and oversized requests to the api and
 * the pusher get a clear JSON error and disturb nothing else. */

#include <string.h>

#include "testenv.h"
#include "jw-id.h"
#include "jw-json.h"

static JwReply *
post_raw (JwTestEnv *env, const char *ctype, const char *data, gsize len)
{
  g_autofree char *url = g_strconcat (env->api_url, "/jobs", NULL);
  g_autoptr (GBytes) body = g_bytes_new (data, len);

  return jw_http (env, "POST", url, ctype, body, NULL);
}

static void
expect_post (JwTestEnv *env, const char *json, guint status, const char *code)
{
  g_autoptr (JwReply) r =
      post_raw (env, "application/json", json, strlen (json));

  g_test_message ("POST /jobs %.60s -> expect %u %s", json, status, code);
  jw_assert_error (r, status, code);
}

static void
expect_request (JwTestEnv *env, const char *method, const char *path,
                guint status, const char *code)
{
  g_autofree char *url = g_strconcat (env->api_url, path, NULL);
  g_autoptr (JwReply) r = jw_http (env, method, url, NULL, NULL, NULL);

  g_test_message ("%s %s -> expect %u %s", method, path, status, code);
  jw_assert_error (r, status, code);
}

/* The peak resident size of a process, from /proc, in KiB. */
static gint64
peak_rss_kib (int pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", pid);
  g_autofree char *text = NULL;
  const char *line;

  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  line = strstr (text, "VmHWM:");
  g_assert_nonnull (line);
  return g_ascii_strtoll (line + 6, NULL, 10);
}

static void
check_big_body (JwTestEnv *env)
{
  gsize len = 10 * 1024 * 1024;
  g_autofree char *data = g_malloc (len);
  g_autofree char *url = g_strconcat (env->api_url, "/jobs", NULL);
  g_autoptr (SoupMessage) msg = soup_message_new ("POST", url);
  g_autoptr (GBytes) body = NULL;
  g_autoptr (GBytes) answer = NULL;
  g_autoptr (GError) error = NULL;
  gint64 before, after;

  /* A valid JSON string, 10 MB long, sent as curl sends big bodies. */
  memset (data, 'a', len);
  data[0] = '"';
  data[len - 1] = '"';
  body = g_bytes_new_take (g_steal_pointer (&data), len);
  before = peak_rss_kib (jw_daemon_pid (env->api));
  soup_message_set_request_body_from_bytes (msg, "application/json", body);
  soup_message_headers_set_expectations (soup_message_get_request_headers (msg),
                                         SOUP_EXPECTATION_CONTINUE);
  answer = soup_session_send_and_read (env->session, msg, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (msg), ==, 413);
  {
    g_autoptr (JsonNode) node = jw_json_parse_bytes (answer, 8, NULL);
    JsonObject *err =
        node ? jw_json_get_object (jw_json_node_object (node), "error") : NULL;

    g_assert_nonnull (err);
    g_assert_cmpstr (jw_str (err, "code"), ==, "body_too_large");
  }

  /* Refused before reading it: the api never held the 10 MB. */
  after = peak_rss_kib (jw_daemon_pid (env->api));
  g_test_message ("api peak RSS %" G_GINT64_FORMAT " -> %" G_GINT64_FORMAT
                  " KiB",
                  before, after);
  g_assert_cmpint (after - before, <, 5 * 1024);

  /* And it keeps serving. */
  {
    g_autoptr (JwReply) r = jw_api_get (env, "/healthz");

    g_assert_cmpuint (r->status, ==, 200);
  }
}

static void
check_chunked_body (JwTestEnv *env)
{
  static const char json[] = "{\"type\":\"sleep\"}";
  g_autofree char *url = g_strconcat (env->api_url, "/jobs", NULL);
  g_autoptr (SoupMessage) msg = soup_message_new ("POST", url);
  g_autoptr (GInputStream) stream = NULL;
  g_autoptr (GBytes) answer = NULL;
  g_autoptr (GError) error = NULL;

  /* Without a length the api cannot bound the body before reading it. */
  stream = g_memory_input_stream_new_from_data (json, strlen (json), NULL);
  soup_message_set_request_body (msg, "application/json", stream, -1);
  answer = soup_session_send_and_read (env->session, msg, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (msg), ==, 411);
}

static void
test_api_hostile (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autoptr (GString) deep = g_string_new (NULL);
  g_autofree char *unknown = NULL;
  g_autofree char *long_key = NULL;
  g_autofree char *id = NULL;
  g_autoptr (JsonNode) snap = NULL;
  char new_id[JW_ID_LEN + 1];

  /* Bodies that are not strict JSON. */
  expect_post (env, "{\"type\": \"sleep\",", 400, "invalid_json");
  expect_post (env, "{'type': 'sleep'}", 400, "invalid_json");
  expect_post (env, "/* c */ {\"type\": \"sleep\"}", 400, "invalid_json");
  expect_post (env, "{\"type\": \"sleep\"} trailing", 400, "invalid_json");
  expect_post (env, "", 400, "invalid_json");
  expect_post (env, "[1, 2]", 400, "invalid_body");

  /* Nesting that would exhaust a recursive parser's stack. */
  for (guint i = 0; i < 10000; i++)
    g_string_append_c (deep, '[');
  expect_post (env, deep->str, 400, "json_too_deep");
  for (guint i = 0; i < 10000; i++)
    g_string_append_c (deep, ']');
  expect_post (env, deep->str, 400, "json_too_deep");

  /* Wrong media type, oversized and unbounded bodies. */
  {
    static const char json[] = "{\"type\":\"sleep\",\"params\":{}}";
    g_autoptr (JwReply) r = post_raw (env, "text/plain", json, strlen (json));

    jw_assert_error (r, 415, "unsupported_media_type");
  }
  check_big_body (env);
  check_chunked_body (env);

  /* Well-formed but wrong. */
  expect_post (env, "{\"type\":\"no-such-type\",\"params\":{}}", 422,
               "unknown_type");
  expect_post (env, "{\"type\":\"sleep\",\"params\":{\"seconds\":\"abc\"}}",
               422, "invalid_params");
  expect_post (env, "{\"type\":\"sleep\",\"params\":{\"steps\":0}}", 422,
               "invalid_params");
  expect_post (env, "{\"type\":\"sleep\",\"params\":{\"seconds\":-1}}", 422,
               "invalid_params");
  expect_post (env, "{\"type\":\"sleep\",\"params\":[1]}", 422,
               "invalid_params");
  expect_post (env, "{\"type\":\"checksum\",\"params\":{}}", 422,
               "invalid_params");
  long_key = g_strnfill (300, 'k');
  {
    g_autofree char *url = g_strconcat (env->api_url, "/jobs", NULL);
    static const char json[] = "{\"type\":\"sleep\",\"params\":{}}";
    g_autoptr (GBytes) body = g_bytes_new_static (json, strlen (json));
    const char *headers[] = { "Idempotency-Key", long_key, NULL };
    g_autoptr (JwReply) r =
        jw_http (env, "POST", url, "application/json", body, headers);

    jw_assert_error (r, 400, "invalid_idempotency_key");
  }

  /* Job ids, methods, paths and queries. */
  expect_request (env, "GET", "/jobs/not-a-job-id", 400, "invalid_job_id");
  expect_request (env, "GET", "/jobs/0123456789abcdefghjkmnpqru", 400,
                  "invalid_job_id");
  jw_id_new (new_id);
  unknown = g_strconcat ("/jobs/", new_id, NULL);
  expect_request (env, "GET", unknown, 404, "job_not_found");
  expect_request (env, "DELETE", unknown, 404, "job_not_found");
  expect_request (env, "GET", "/jobs?state=bogus", 400, "invalid_query");
  expect_request (env, "GET", "/jobs?limit=0", 400, "invalid_query");
  expect_request (env, "GET", "/nope", 404, "not_found");
  {
    g_autofree char *url = g_strconcat (env->api_url, "/jobs", NULL);
    g_autoptr (JwReply) r = jw_http (env, "PUT", url, NULL, NULL, NULL);
    const char *allow;

    jw_assert_error (r, 405, "method_not_allowed");
    allow = soup_message_headers_get_one (r->headers, "Allow");
    g_assert_nonnull (allow);
    g_assert_nonnull (strstr (allow, "POST"));
  }
  {
    g_autofree char *url = g_strconcat (env->api_url, unknown, NULL);
    g_autoptr (JwReply) r = jw_http (env, "PATCH", url, NULL, NULL, NULL);
    const char *allow;

    jw_assert_error (r, 405, "method_not_allowed");
    allow = soup_message_headers_get_one (r->headers, "Allow");
    g_assert_nonnull (allow);
    g_assert_nonnull (strstr (allow, "GET"));
    g_assert_nonnull (strstr (allow, "DELETE"));
  }

  /* After all of that, a normal job runs as usual. */
  id = jw_submit (env, "{\"type\":\"sleep\",\"params\":"
                       "{\"seconds\":0.2,\"steps\":2}}");
  snap = jw_wait_job (env, id, NULL, 10000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
}

static void
expect_ws_error (JwWs *ws, const char *text, const char *code)
{
  JsonObject *f;

  g_test_message ("ws %s -> expect %s", text, code);
  jw_ws_send (ws, text);
  f = jw_ws_next (ws, 5000);
  g_assert_nonnull (f);
  g_assert_cmpstr (jw_str (f, "op"), ==, "error");
  g_assert_cmpstr (jw_str (f, "code"), ==, code);
}

static void
test_pusher_hostile (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autofree char *id = NULL;
  g_autofree char *unknown = NULL;
  g_autofree char *sub = NULL;
  g_autoptr (JwWs) ws = NULL;
  char new_id[JW_ID_LEN + 1];
  JsonObject *f;
  gint64 seq = 0;

  jw_id_new (new_id);

  /* SSE and long-poll refuse what they cannot serve, in JSON. */
  {
    g_autoptr (JwReply) r = jw_pusher_get (env, "/jobs/nope/events");

    jw_assert_error (r, 400, "invalid_job_id");
  }
  {
    g_autofree char *path = g_strdup_printf ("/jobs/%s/events", new_id);
    g_autoptr (JwReply) r = jw_pusher_get (env, path);

    jw_assert_error (r, 404, "job_not_found");
  }
  {
    g_autofree char *path = g_strdup_printf ("/jobs/%s/poll?after=0", new_id);
    g_autoptr (JwReply) r = jw_pusher_get (env, path);

    jw_assert_error (r, 404, "job_not_found");
  }
  id = jw_submit (env, "{\"type\":\"sleep\",\"params\":"
                       "{\"seconds\":0.5,\"steps\":2}}");
  {
    g_autofree char *path = g_strdup_printf ("/jobs/%s/events?after=x", id);
    g_autoptr (JwReply) r = jw_pusher_get (env, path);

    jw_assert_error (r, 400, "invalid_query");
  }

  /* WebSocket: bad messages get error frames, the connection stays. */
  ws = jw_ws_connect (env);
  expect_ws_error (ws, "not json", "invalid_message");
  expect_ws_error (ws, "{\"op\":\"fly\"}", "invalid_message");
  expect_ws_error (ws, "{\"op\":\"subscribe\",\"job\":\"nope\",\"after\":0}",
                   "invalid_job_id");
  unknown = g_strdup_printf ("{\"op\":\"subscribe\",\"job\":\"%s\","
                             "\"after\":0}",
                             new_id);
  expect_ws_error (ws, unknown, "job_not_found");

  sub =
      g_strdup_printf ("{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":0}", id);
  jw_ws_send (ws, sub);
  while ((f = jw_ws_next (ws, 10000)) != NULL)
    {
      const char *type;

      if (jw_json_get_string (f, "op") != NULL)
        {
          g_assert_cmpstr (jw_str (f, "op"), ==, "subscribed");
          continue;
        }
      g_assert_cmpstr (jw_str (f, "job"), ==, id);
      g_assert_cmpint (jw_int (f, "seq"), ==, ++seq);
      type = jw_str (f, "type");
      if (g_str_equal (type, "succeeded"))
        break;
    }
  g_assert_nonnull (f);
  g_assert_cmpint (seq, ==, 5);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pipeline/api/hostile-requests", test_api_hostile);
  g_test_add_func ("/pipeline/pusher/hostile-requests", test_pusher_hostile);
  return g_test_run ();
}
