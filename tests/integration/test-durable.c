/* End-to-end durability: the broker killed with SIGKILL while jobs run and
 * started again on the same ledger, idempotent retries across api and
 * broker restarts, and retention of finished jobs. */

#include <string.h>

#include "jw-json.h"
#include "testenv.h"

#define N_JOBS 50
#define N_WORKERS 4
#define SLEEP_JOB "{\"type\":\"sleep\",\"params\":{\"seconds\":2,\"steps\":4}}"
#define SHORT_JOB                                                              \
  "{\"type\":\"sleep\",\"params\":{\"seconds\":0.2,\"steps\":2}}"

/* What one subscriber has seen of one job, across reconnects. */
typedef struct
{
  char *id;
  GPtrArray *seen; /* JsonNode * of every event received, in order */
  gboolean done;   /* saw the terminal event, or was told there is no more */
  gboolean lost;   /* the pusher says the job does not exist */
} Subscriber;

static void
subscriber_free (Subscriber *s)
{
  g_free (s->id);
  g_ptr_array_unref (s->seen);
  g_free (s);
}

static gint64
last_seq (Subscriber *s)
{
  if (s->seen->len == 0)
    return 0;
  return jw_int (jw_json_node_object (s->seen->pdata[s->seen->len - 1]), "seq");
}

static gboolean
is_terminal (const char *type)
{
  return g_strcmp0 (type, "succeeded") == 0 || g_strcmp0 (type, "failed") == 0
         || g_strcmp0 (type, "cancelled") == 0;
}

/* One connection: resumes after the last seq seen (Last-Event-ID, as
 * EventSource does), reads until the stream ends, stop_seq arrives, or
 * timeout_ms. */
static void
subscriber_read (JwTestEnv *env, Subscriber *s, gint64 stop_seq,
                 guint timeout_ms)
{
  g_autofree char *last = NULL;
  g_autoptr (JwSse) sse = NULL;
  g_autoptr (GPtrArray) nodes = NULL;

  if (s->seen->len > 0)
    last = g_strdup_printf ("%" G_GINT64_FORMAT, last_seq (s));
  sse = jw_sse_read (env, s->id, last, NULL, stop_seq, timeout_ms);
  if (sse->status == 204)
    {
      /* Nothing after the resume point of a finished job. */
      s->done = TRUE;
      return;
    }
  if (sse->status == 404)
    {
      g_test_message ("SSE %s: the job is unknown", s->id);
      s->lost = TRUE;
      return;
    }
  if (sse->status != 200)
    {
      g_test_message ("SSE %s after %s: status %u", s->id, last ? last : "-",
                      sse->status);
      return;
    }
  nodes = jw_sse_nodes (sse);
  for (guint i = 0; i < nodes->len; i++)
    {
      JsonObject *ev = jw_json_node_object (nodes->pdata[i]);

      g_ptr_array_add (s->seen, json_node_ref (nodes->pdata[i]));
      if (is_terminal (jw_str (ev, "type")))
        s->done = TRUE;
    }
}

/* Reconnects until the stream has ended, or the deadline. */
static void
subscriber_follow (JwTestEnv *env, Subscriber *s, gint64 deadline)
{
  while (!s->done && !s->lost && g_get_monotonic_time () < deadline)
    {
      gint64 before = last_seq (s);

      subscriber_read (env, s, 0, 5000);
      if (!s->done && last_seq (s) == before)
        g_usleep (100 * G_TIME_SPAN_MILLISECOND);
    }
}

/* Whether the job's history holds a `retrying` with code. */
static gboolean
history_has_retry (GPtrArray *events, const char *code)
{
  for (guint i = 0; i < events->len; i++)
    {
      JsonObject *ev = jw_json_node_object (events->pdata[i]);
      JsonObject *err = jw_json_get_object (ev, "error");

      if (g_strcmp0 (jw_json_get_string (ev, "type"), "retrying") == 0
          && err != NULL
          && g_strcmp0 (jw_json_get_string (err, "code"), code) == 0)
        return TRUE;
    }
  return FALSE;
}

static void
test_broker_kill (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (N_WORKERS);
  g_autoptr (GPtrArray) subs =
      g_ptr_array_new_with_free_func ((GDestroyNotify)subscriber_free);
  g_autoptr (JsonNode) running = NULL;
  guint retried = 0, i;
  gint64 deadline;

  /* 50 jobs, every one confirmed by a 202; the last right before the
   * kill. */
  for (i = 0; i < N_JOBS; i++)
    {
      Subscriber *s = g_new0 (Subscriber, 1);

      s->id = jw_submit (env, SLEEP_JOB);
      s->seen = jw_node_array_new ();
      g_ptr_array_add (subs, s);
      if (i == 0)
        {
          running = jw_wait_job (env, s->id, "running", 10000);
          g_assert_nonnull (running);
        }
      if (i == N_JOBS - 2)
        {
          /* Every subscriber is somewhere in its stream: the first ones
           * past `started`, the rest after `queued`. */
          for (guint j = 0; j < subs->len; j++)
            subscriber_read (env, subs->pdata[j], j < N_WORKERS ? 3 : 1, 5000);
        }
    }
  jw_daemon_kill (env->broker);
  g_test_message ("broker killed with %u jobs submitted", N_JOBS);

  jw_daemon_start (env, env->broker);
  g_assert_true (jw_test_env_wait_ready (env, N_WORKERS, 20000));

  /* Every subscriber resumes from its last seq until its stream ends. */
  deadline = jw_deadline (150000);
  for (i = 0; i < subs->len; i++)
    subscriber_follow (env, subs->pdata[i], deadline);

  for (i = 0; i < subs->len; i++)
    {
      Subscriber *s = subs->pdata[i];
      g_autoptr (JsonNode) snap = NULL;
      JsonObject *obj;

      /* Acknowledged, so it exists; ended in exactly one terminal state;
       * each seq seen once, 1, 2, 3 … up to the recorded last. */
      g_assert_false (s->lost);
      snap = jw_get_job (env, s->id);
      obj = jw_json_node_object (snap);
      g_assert_true (s->done);
      g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
      jw_assert_history (s->seen, s->id, 1, TRUE);
      g_assert_cmpint (last_seq (s), ==, jw_int (obj, "seq"));
      if (history_has_retry (s->seen, "broker_restarted"))
        retried++;
    }
  /* The jobs that ran at the kill were given another attempt. */
  g_test_message ("jobs retried after the restart: %u", retried);
  g_assert_cmpuint (retried, >=, 1);
}

static JwReply *
post_with_key (JwTestEnv *env, const char *json, const char *key)
{
  g_autofree char *url = g_strconcat (env->api_url, "/jobs", NULL);
  g_autoptr (GBytes) body = g_bytes_new (json, strlen (json));
  const char *headers[] = { "Idempotency-Key", key, NULL };

  return jw_http (env, "POST", url, "application/json", body, headers);
}

/* POST with the key until the answer is neither 503 nor a refused
 * connection (status 0): a daemon is coming back. */
static JwReply *
post_until_up (JwTestEnv *env, const char *json, const char *key)
{
  gint64 deadline = jw_deadline (20000);
  JwReply *r;

  for (;;)
    {
      r = post_with_key (env, json, key);
      if ((r->status != 503 && r->status != 0)
          || g_get_monotonic_time () > deadline)
        return r;
      jw_reply_free (r);
      g_usleep (50 * G_TIME_SPAN_MILLISECOND);
    }
}

static void
test_idempotency_restarts (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autoptr (JwReply) first = post_with_key (env, SHORT_JOB, "order-1");
  g_autoptr (JwReply) after_api = NULL;
  g_autoptr (JwReply) after_broker = NULL;
  g_autoptr (JwReply) reordered = NULL;
  g_autoptr (JwReply) other = NULL;
  g_autoptr (JsonNode) done = NULL;
  const char *id;

  g_assert_cmpuint (first->status, ==, 202);
  id = jw_str (jw_reply_object (first), "id");

  /* The api restarts: it remembers nothing, the broker does. */
  g_assert_cmpint (jw_daemon_stop (env->api, 10000), ==, 0);
  jw_daemon_start (env, env->api);
  after_api = post_until_up (env, SHORT_JOB, "order-1");
  g_assert_cmpuint (after_api->status, ==, 202);
  g_assert_cmpstr (jw_str (jw_reply_object (after_api), "id"), ==, id);

  /* The broker dies without warning: the key is in its ledger. */
  done = jw_wait_job (env, id, "succeeded", 10000);
  g_assert_nonnull (done);
  jw_daemon_kill (env->broker);
  jw_daemon_start (env, env->broker);
  after_broker = post_until_up (env, SHORT_JOB, "order-1");
  g_assert_cmpuint (after_broker->status, ==, 202);
  g_assert_cmpstr (jw_str (jw_reply_object (after_broker), "id"), ==, id);
  g_assert_cmpstr (jw_str (jw_reply_object (after_broker), "state"), ==,
                   "succeeded");

  /* The same body with its members in another order is the same body. */
  reordered = post_with_key (
      env, "{\"params\":{\"steps\":2,\"seconds\":0.2},\"type\":\"sleep\"}",
      "order-1");
  g_assert_cmpuint (reordered->status, ==, 202);
  g_assert_cmpstr (jw_str (jw_reply_object (reordered), "id"), ==, id);

  /* Another body under the same key is refused, and creates nothing. */
  other = post_with_key (
      env, "{\"type\":\"sleep\",\"params\":{\"seconds\":0.3,\"steps\":2}}",
      "order-1");
  jw_assert_error (other, 422, "idempotency_key_reused");
  {
    g_autoptr (JwReply) list = NULL;

    /* The api's query socket may reconnect to the restarted broker after
     * its command socket; until then queries answer 503 Retry-After. */
    g_assert_true (jw_wait_api_status (env, "/jobs?limit=10", 200, 10000));
    list = jw_api_get (env, "/jobs?limit=10");
    JsonArray *jobs = jw_json_get_array (jw_reply_object (list), "jobs");

    g_assert_cmpuint (list->status, ==, 200);
    g_assert_cmpuint (json_array_get_length (jobs), ==, 1);
  }
}

static void
test_retention (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_new (1);
  g_autofree char *old = NULL, *old_path = NULL;
  g_autofree char *slow = NULL, *slow_path = NULL;
  g_autoptr (JsonNode) done = NULL;
  g_autoptr (JsonNode) slow_done = NULL;
  g_autoptr (JwReply) gone = NULL;
  g_autoptr (JwReply) events = NULL;
  g_autofree char *events_path = NULL;

  /* Finished jobs are kept one second. */
  jw_test_env_set (env, "broker.retention-s=1");
  jw_test_env_run (env);

  old = jw_submit (env, SHORT_JOB);
  old_path = g_strconcat ("/jobs/", old, NULL);
  done = jw_wait_job (env, old, "succeeded", 10000);
  g_assert_nonnull (done);

  /* A job that runs longer than the retention time is not touched. */
  slow = jw_submit (
      env, "{\"type\":\"sleep\",\"params\":{\"seconds\":3,\"steps\":3}}");
  slow_path = g_strconcat ("/jobs/", slow, NULL);

  g_assert_true (jw_wait_api_status (env, old_path, 404, 10000));
  gone = jw_api_get (env, old_path);
  jw_assert_error (gone, 404, "job_not_found");
  events_path = g_strconcat ("/jobs/", old, "/events", NULL);
  events = jw_pusher_get (env, events_path);
  g_assert_cmpuint (events->status, ==, 404);

  slow_done = jw_wait_job (env, slow, "succeeded", 15000);
  g_assert_nonnull (slow_done);
  /* And once finished, it goes too. */
  g_assert_true (jw_wait_api_status (env, slow_path, 404, 10000));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pipeline/durable/broker-kill-9-resume", test_broker_kill);
  g_test_add_func ("/pipeline/durable/idempotency-across-restarts",
                   test_idempotency_restarts);
  g_test_add_func ("/pipeline/durable/retention", test_retention);
  return g_test_run ();
}
