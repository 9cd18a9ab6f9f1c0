/* End-to-end resilience: what a user sees while the broker is down and
 * after it comes back, and retries with an Idempotency-Key. */

#include <string.h>

#include "testenv.h"
#include "jw-json.h"

#define SHORT_JOB                                                              \
  "{\"type\":\"sleep\",\"params\":{\"seconds\":0.2,\"steps\":2}}"

static JwReply *
post_with_key (JwTestEnv *env, const char *json, const char *key)
{
  g_autofree char *url = g_strconcat (env->api_url, "/jobs", NULL);
  g_autoptr (GBytes) body = g_bytes_new (json, strlen (json));
  const char *headers[] = { "Idempotency-Key", key, NULL };

  return jw_http (env, "POST", url, "application/json", body,
                  key != NULL ? headers : NULL);
}

static void
test_broker_down (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autofree char *before = jw_submit (env, SHORT_JOB);
  g_autofree char *state_path = g_strconcat ("/jobs/", before, NULL);
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JwReply) down = NULL;
  g_autoptr (JwReply) up = NULL;
  g_autoptr (JwSse) sse = NULL;
  g_autoptr (GPtrArray) nodes = NULL;
  const char *retry_after;
  const char *id;
  gint64 deadline;
  guint64 secs;

  snap = jw_wait_job (env, before, "succeeded", 5000);
  g_assert_nonnull (snap);

  /* Broker gone: a submit is refused, never accepted into the void. */
  jw_daemon_kill (env->broker);
  down = jw_api_post_json (env, "/jobs", SHORT_JOB);
  jw_assert_error (down, 503, NULL);
  retry_after = soup_message_headers_get_one (down->headers, "Retry-After");
  g_assert_nonnull (retry_after);
  g_assert_true (
      g_ascii_string_to_unsigned (retry_after, 10, 1, 3600, &secs, NULL));
  g_assert_true (jw_wait_api_status (env, "/healthz", 503, 10000));
  {
    g_autoptr (JwReply) r = jw_api_get (env, state_path);

    jw_assert_error (r, 503, NULL);
  }

  /* Broker back: submits are accepted again once it answers. */
  jw_daemon_start (env, env->broker);
  deadline = g_get_monotonic_time () + 20 * G_TIME_SPAN_SECOND;
  for (;;)
    {
      g_clear_pointer (&up, jw_reply_free);
      up = jw_api_post_json (env, "/jobs", SHORT_JOB);
      if (up->status == 202 || g_get_monotonic_time () > deadline)
        break;
      g_assert_cmpuint (up->status, ==, 503);
      g_usleep (50 * G_TIME_SPAN_MILLISECOND);
    }
  g_assert_cmpuint (up->status, ==, 202);
  id = jw_str (jw_reply_object (up), "id");

  /* Workers find the new broker and run the job; the pusher streams it. */
  g_clear_pointer (&snap, json_node_unref);
  snap = jw_wait_job (env, id, NULL, 10000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
  g_assert_true (jw_test_env_wait_ready (env, 1, 10000));
  sse = jw_sse_read (env, id, NULL, NULL, 0, 10000);
  g_assert_cmpuint (sse->status, ==, 200);
  g_assert_true (sse->ended);
  nodes = jw_sse_nodes (sse);
  jw_assert_history (nodes, id, 1, TRUE);
  g_assert_cmpstr (
      jw_str (jw_json_node_object (g_ptr_array_index (nodes, nodes->len - 1)),
              "type"),
      ==, "succeeded");
}

static void
test_idempotency_key (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autoptr (JwReply) first = post_with_key (env, SHORT_JOB, "order-42");
  g_autoptr (JwReply) again = post_with_key (env, SHORT_JOB, "order-42");
  g_autoptr (JwReply) other = post_with_key (env, SHORT_JOB, "order-43");

  /* A retry with the same key is the same job, never a second one. */
  g_assert_cmpuint (first->status, ==, 202);
  g_assert_cmpuint (again->status, ==, 202);
  g_assert_cmpuint (other->status, ==, 202);
  g_assert_cmpstr (jw_str (jw_reply_object (first), "id"), ==,
                   jw_str (jw_reply_object (again), "id"));
  g_assert_cmpstr (jw_str (jw_reply_object (first), "id"), !=,
                   jw_str (jw_reply_object (other), "id"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pipeline/broker/down-503-then-recovers", test_broker_down);
  g_test_add_func ("/pipeline/api/idempotency-key", test_idempotency_key);
  return g_test_run ();
}
