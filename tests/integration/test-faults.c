/* End-to-end faults: real daemons, real kills. Workers killed or stopped
 * in the middle of a job, a pusher killed under its clients, jobs over
 * their time limit, cancels of running jobs, and a soak of kills. */

#include <signal.h>
#include <string.h>

#include "jw-json.h"
#include "testenv.h"

/* Short heartbeats so that a lost worker is noticed within a second. */
#define HEARTBEAT_SET "broker.heartbeat-ms=200"
#define WORKER_TIMEOUT_SET "broker.worker-timeout-ms=1000"

#define LONG_JOB                                                               \
  "{\"type\":\"sleep\",\"params\":{\"seconds\":30,\"steps\":300}}"
#define SHORT_JOB                                                              \
  "{\"type\":\"sleep\",\"params\":{\"seconds\":0.2,\"steps\":2}}"

/* An environment with the given settings (NULL-terminated) on every
 * daemon, started and ready with n_workers. */
static JwTestEnv *
start_env (guint n_workers, ...)
{
  JwTestEnv *env = jw_test_env_new (n_workers);
  const char *setting;
  va_list ap;

  va_start (ap, n_workers);
  while ((setting = va_arg (ap, const char *)) != NULL)
    jw_test_env_set (env, setting);
  va_end (ap);

  jw_test_env_run (env);
  return env;
}

/* The job's whole history, read over SSE once it has ended; asserts that
 * it is contiguous from seq 1 and ends with one terminal event. */
static JwSse *
read_history (JwTestEnv *env, const char *id)
{
  JwSse *sse = jw_sse_read (env, id, NULL, NULL, 0, 15000);
  g_autoptr (GPtrArray) nodes = NULL;

  g_assert_cmpuint (sse->status, ==, 200);
  g_assert_true (sse->ended);
  nodes = jw_sse_nodes (sse);
  jw_assert_history (nodes, id, 1, TRUE);
  return sse;
}

static JsonObject *
event_at (JwSse *sse, guint i)
{
  return jw_json_node_object (
      ((JwSseEvent *)g_ptr_array_index (sse->events, i))->json);
}

static const char *
event_type (JwSse *sse, guint i)
{
  return jw_str (event_at (sse, i), "type");
}

static const char *
error_code (JsonObject *obj)
{
  JsonObject *err = jw_json_get_object (obj, "error");

  g_assert_nonnull (err);
  return jw_str (err, "code");
}

/* Index of the first event of type at or after from with attempt (any
 * attempt when attempt < 0), or -1. */
static int
find_event (JwSse *sse, guint from, const char *type, gint64 attempt)
{
  for (guint i = from; i < sse->events->len; i++)
    if (g_str_equal (event_type (sse, i), type)
        && (attempt < 0 || jw_int (event_at (sse, i), "attempt") == attempt))
      return (int)i;
  return -1;
}

static guint
count_events (JwSse *sse, const char *type)
{
  guint n = 0;

  for (guint i = 0; i < sse->events->len; i++)
    n += g_str_equal (event_type (sse, i), type);
  return n;
}

/* Waits until the job's snapshot reports a seq of at least seq. */
static void
wait_seq (JwTestEnv *env, const char *id, gint64 seq, guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);

  for (;;)
    {
      g_autoptr (JsonNode) snap = jw_get_job (env, id);
      gint64 now = jw_int (jw_json_node_object (snap), "seq");

      if (now >= seq)
        return;
      if (g_get_monotonic_time () > deadline)
        g_error ("job %s reached seq %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT
                 " in %u ms",
                 id, now, seq, timeout_ms);
      g_usleep (20 * G_TIME_SPAN_MILLISECOND);
    }
}

static gboolean
log_contains (JwDaemon *d, const char *needle)
{
  g_autofree char *text = NULL;

  return g_file_get_contents (d->log_path, &text, NULL, NULL)
         && strstr (text, needle) != NULL;
}

static gint64
stale_events (JwTestEnv *env)
{
  g_autoptr (JsonNode) ping = jw_broker_ping (env, 5000);

  g_assert_nonnull (ping);
  return jw_int (jw_json_node_object (ping), "stale_events");
}

/* kill -9 the worker of a running job: another worker retries it. */
static void
test_kill_worker (void)
{
  g_autoptr (JwTestEnv) env =
      start_env (2, HEARTBEAT_SET, WORKER_TIMEOUT_SET, NULL);
  g_autofree char *id = jw_submit (
      env, "{\"type\":\"sleep\",\"params\":{\"seconds\":2,\"steps\":20}}");
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JwSse) sse = NULL;
  JwDaemon *victim;
  int retrying, started2;

  victim = jw_test_env_find_worker (env, id, 1, 10000);
  g_assert_nonnull (victim);
  wait_seq (env, id, 4, 10000); /* queued, started, 2 progress */
  jw_daemon_kill (victim);

  snap = jw_wait_job (env, id, NULL, 20000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
  g_assert_cmpint (jw_int (jw_json_node_object (snap), "attempt"), ==, 2);

  /* The stream: attempt 1 until retrying (worker_lost), then attempt 2
   * from its start to its success; seq contiguous throughout. */
  sse = read_history (env, id);
  retrying = find_event (sse, 0, "retrying", 1);
  g_assert_cmpint (retrying, >, 0);
  g_assert_cmpstr (error_code (event_at (sse, retrying)), ==, "worker_lost");
  g_assert_cmpint (jw_int (event_at (sse, retrying), "next_attempt"), ==, 2);
  started2 = find_event (sse, retrying, "started", 2);
  g_assert_cmpint (started2, >, retrying);
  for (guint i = retrying + 1; i < sse->events->len; i++)
    g_assert_cmpint (jw_int (event_at (sse, i), "attempt"), ==, 2);
  g_assert_cmpuint (count_events (sse, "retrying"), ==, 1);
  g_assert_cmpstr (event_type (sse, sse->events->len - 1), ==, "succeeded");
}

/* Reads WebSocket frames until an event of job with a terminal type or
 * timeout; appends the events to out. */
static void
ws_collect (JwWs *ws, const char *id, GPtrArray *out, gint64 stop_seq,
            guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);

  while (g_get_monotonic_time () < deadline)
    {
      JsonObject *frame = jw_ws_next (ws, 1000);
      const char *type;

      if (frame == NULL)
        {
          if (ws->closed)
            return;
          continue;
        }
      if (json_object_has_member (frame, "op"))
        {
          g_assert_cmpstr (jw_str (frame, "op"), !=, "error");
          continue;
        }
      g_assert_cmpstr (jw_str (frame, "job"), ==, id);
      g_ptr_array_add (out, json_node_init_object (json_node_alloc (), frame));
      type = jw_str (frame, "type");
      if (jw_int (frame, "seq") >= stop_seq || g_str_equal (type, "succeeded")
          || g_str_equal (type, "failed") || g_str_equal (type, "cancelled"))
        return;
    }
}

/* kill -9 the pusher under an SSE and a WebSocket client; both resume
 * from their last seq on a new pusher and miss nothing. */
static void
test_kill_pusher (void)
{
  g_autoptr (JwTestEnv) env = start_env (1, NULL);
  g_autofree char *id = jw_submit (
      env, "{\"type\":\"sleep\",\"params\":{\"seconds\":3,\"steps\":30}}");
  g_autoptr (JwSse) sse1 = NULL;
  g_autoptr (JwSse) sse2 = NULL;
  g_autoptr (JwWs) ws1 = NULL;
  g_autoptr (JwWs) ws2 = NULL;
  g_autoptr (GPtrArray) sse_all = jw_node_array_new ();
  g_autoptr (GPtrArray) ws_all = jw_node_array_new ();
  g_autofree char *sub = NULL;
  g_autofree char *last_id = NULL;
  gint64 sse_last, ws_last;

  /* Both clients watch the first few events. */
  ws1 = jw_ws_connect (env);
  sub =
      g_strdup_printf ("{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":0}", id);
  jw_ws_send (ws1, sub);
  ws_collect (ws1, id, ws_all, 4, 10000);
  sse1 = jw_sse_read (env, id, NULL, NULL, 3, 10000);
  g_assert_cmpuint (sse1->status, ==, 200);
  for (guint i = 0; i < sse1->events->len; i++)
    g_ptr_array_add (
        sse_all,
        json_node_ref (
            ((JwSseEvent *)g_ptr_array_index (sse1->events, i))->json));
  g_assert_cmpuint (ws_all->len, >=, 4);
  g_assert_cmpuint (sse_all->len, >=, 3);

  /* The pusher dies; the job goes on meanwhile. */
  jw_daemon_kill (env->pusher);
  sse_last = jw_int (
      jw_json_node_object (g_ptr_array_index (sse_all, sse_all->len - 1)),
      "seq");
  ws_last = jw_int (
      jw_json_node_object (g_ptr_array_index (ws_all, ws_all->len - 1)), "seq");
  wait_seq (env, id, MAX (sse_last, ws_last) + 3, 10000);
  jw_daemon_start (env, env->pusher);
  g_assert_true (jw_test_env_wait_ready (env, 1, 15000));

  /* Each resumes after its last seq. */
  last_id = g_strdup_printf ("%" G_GINT64_FORMAT, sse_last);
  sse2 = jw_sse_read (env, id, last_id, NULL, 0, 15000);
  g_assert_cmpuint (sse2->status, ==, 200);
  g_assert_true (sse2->ended);
  for (guint i = 0; i < sse2->events->len; i++)
    g_ptr_array_add (
        sse_all,
        json_node_ref (
            ((JwSseEvent *)g_ptr_array_index (sse2->events, i))->json));
  g_clear_pointer (&sub, g_free);
  sub = g_strdup_printf (
      "{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":%" G_GINT64_FORMAT "}",
      id, ws_last);
  ws2 = jw_ws_connect (env);
  jw_ws_send (ws2, sub);
  ws_collect (ws2, id, ws_all, G_MAXINT64, 15000);

  /* Every seq once, in order, to the end. */
  jw_assert_history (sse_all, id, 1, TRUE);
  jw_assert_history (ws_all, id, 1, TRUE);
  g_assert_cmpuint (sse_all->len, ==, ws_all->len);
}

/* A job over its type's time limit fails with timeout; its worker stops
 * it and takes the next job. */
static void
test_timeout (void)
{
  g_autoptr (JwTestEnv) env =
      start_env (1, HEARTBEAT_SET, "type.sleep.timeout-s=1", NULL);
  /* Steps 0.7 s apart, so that no progress report is in flight when the
   * limit strikes at 1 s: one sent just before the cancel arrives would
   * rightly count as stale, and this test checks that none comes after. */
  g_autofree char *id =
      jw_submit (env, "{\"type\":\"sleep\",\"params\":"
                      "{\"seconds\":21,\"steps\":30}}");
  g_autofree char *next = NULL;
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JsonNode) after = NULL;
  g_autoptr (JwSse) sse = NULL;
  gint64 seq;

  snap = jw_wait_job (env, id, NULL, 10000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "failed");
  g_assert_cmpstr (error_code (jw_json_node_object (snap)), ==, "timeout");
  seq = jw_int (jw_json_node_object (snap), "seq");

  /* The only worker is free again: a next job runs and succeeds long
   * before the 30 s the first one asked for. */
  next = jw_submit (env, SHORT_JOB);
  g_clear_pointer (&snap, json_node_unref);
  snap = jw_wait_job (env, next, NULL, 10000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");

  /* Nothing was recorded after the timeout, and the worker sent nothing
   * more for the job. */
  after = jw_get_job (env, id);
  g_assert_cmpint (jw_int (jw_json_node_object (after), "seq"), ==, seq);
  sse = read_history (env, id);
  g_assert_cmpstr (event_type (sse, sse->events->len - 1), ==, "failed");
  g_assert_cmpint (stale_events (env), ==, 0);
}

static JwReply *
cancel_job (JwTestEnv *env, const char *id)
{
  g_autofree char *url = g_strconcat (env->api_url, "/jobs/", id, NULL);

  return jw_http (env, "DELETE", url, NULL, NULL, NULL);
}

/* A cancelled running job ends cancelled and its handler stops. */
static void
test_cancel_running (void)
{
  g_autoptr (JwTestEnv) env = start_env (1, HEARTBEAT_SET, NULL);
  g_autofree char *id = jw_submit (env, LONG_JOB);
  g_autofree char *next = NULL;
  g_autoptr (JwReply) r = NULL;
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JwSse) sse = NULL;

  wait_seq (env, id, 4, 10000);
  r = cancel_job (env, id);
  g_assert_cmpuint (r->status, ==, 202);

  snap = jw_wait_job (env, id, NULL, 10000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "cancelled");
  sse = read_history (env, id);
  g_assert_cmpstr (event_type (sse, sse->events->len - 1), ==, "cancelled");

  /* The handler stopped: the worker runs the next job at once, and sent
   * no progress for the cancelled one meanwhile (the broker would have
   * counted it as stale). */
  next = jw_submit (env, SHORT_JOB);
  g_clear_pointer (&snap, json_node_unref);
  snap = jw_wait_job (env, next, NULL, 10000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
  g_assert_cmpint (stale_events (env), ==, 0);

  /* A second cancel finds it finished. */
  g_clear_pointer (&r, jw_reply_free);
  r = cancel_job (env, id);
  jw_assert_error (r, 409, NULL);
}

/* A worker that hangs (SIGSTOP) never confirms a cancel: the job ends
 * cancelled after the grace. Once resumed, the worker's late events are
 * stale, and it joins again and runs jobs. */
static void
test_cancel_unanswered (void)
{
  g_autoptr (JwTestEnv) env =
      start_env (1, HEARTBEAT_SET, "broker.worker-timeout-ms=60000",
                 "broker.cancel-grace-ms=1000", NULL);
  g_autofree char *id = jw_submit (env, LONG_JOB);
  g_autofree char *next = NULL;
  g_autoptr (JwReply) r = NULL;
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JwSse) sse = NULL;
  JwDaemon *w1 = g_ptr_array_index (env->workers, 0);
  gint64 t0;

  wait_seq (env, id, 3, 10000);
  g_assert_cmpint (kill (jw_daemon_pid (w1), SIGSTOP), ==, 0);
  t0 = g_get_monotonic_time ();
  r = cancel_job (env, id);
  g_assert_cmpuint (r->status, ==, 202);
  snap = jw_wait_job (env, id, NULL, 10000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "cancelled");
  /* Not before the grace of 1 s. */
  g_assert_cmpint (g_get_monotonic_time () - t0, >=, 900 * 1000);
  g_assert_cmpint (kill (jw_daemon_pid (w1), SIGCONT), ==, 0);

  /* The worker comes back (the broker forgot it) and runs a job. */
  next = jw_submit (env, SHORT_JOB);
  g_clear_pointer (&snap, json_node_unref);
  snap = jw_wait_job (env, next, NULL, 15000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");

  sse = read_history (env, id);
  g_assert_cmpstr (event_type (sse, sse->events->len - 1), ==, "cancelled");
  /* Its answer to the cancel came too late: stale, not recorded. */
  g_assert_cmpint (stale_events (env), >=, 1);
}

/* A hung worker (SIGSTOP) is given up on; its job is retried elsewhere.
 * When the worker resumes, the events of its old attempt are stale: they
 * change nothing and get no seq. */
static void
test_stale_attempt (void)
{
  g_autoptr (JwTestEnv) env =
      start_env (2, HEARTBEAT_SET, WORKER_TIMEOUT_SET, NULL);
  g_autofree char *id = jw_submit (
      env, "{\"type\":\"sleep\",\"params\":{\"seconds\":3,\"steps\":30}}");
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JwSse) sse = NULL;
  JwDaemon *hung;
  int retrying;

  hung = jw_test_env_find_worker (env, id, 1, 10000);
  g_assert_nonnull (hung);
  wait_seq (env, id, 3, 10000);
  g_assert_cmpint (kill (jw_daemon_pid (hung), SIGSTOP), ==, 0);
  g_assert_nonnull (jw_test_env_find_worker (env, id, 2, 15000));
  g_assert_cmpint (kill (jw_daemon_pid (hung), SIGCONT), ==, 0);

  snap = jw_wait_job (env, id, NULL, 20000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
  sse = read_history (env, id);
  retrying = find_event (sse, 0, "retrying", 1);
  g_assert_cmpint (retrying, >, 0);
  for (guint i = retrying + 1; i < sse->events->len; i++)
    g_assert_cmpint (jw_int (event_at (sse, i), "attempt"), ==, 2);
  /* The resumed worker went on with attempt 1 for a while. */
  g_assert_cmpint (stale_events (env), >=, 1);
  /* And it joined again: both workers are known. */
  g_assert_true (jw_test_env_wait_ready (env, 2, 15000));
}

/* Every worker that starts the job dies: after max-attempts it fails
 * with worker_lost. */
static void
test_max_attempts (void)
{
  g_autoptr (JwTestEnv) env = start_env (2, HEARTBEAT_SET, WORKER_TIMEOUT_SET,
                                         "type.sleep.max-attempts=3", NULL);
  g_autofree char *id = jw_submit (env, LONG_JOB);
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JwSse) sse = NULL;

  for (gint64 attempt = 1; attempt <= 3; attempt++)
    {
      JwDaemon *victim = jw_test_env_find_worker (env, id, attempt, 15000);

      g_assert_nonnull (victim);
      jw_daemon_kill (victim);
      /* Keep a spare: another worker is always there to take it. */
      jw_test_env_add_worker (env);
    }

  snap = jw_wait_job (env, id, NULL, 20000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "failed");
  g_assert_cmpstr (error_code (jw_json_node_object (snap)), ==, "worker_lost");
  g_assert_cmpint (jw_int (jw_json_node_object (snap), "attempt"), ==, 3);

  sse = read_history (env, id);
  g_assert_cmpuint (count_events (sse, "retrying"), ==, 2);
  g_assert_cmpuint (count_events (sse, "started"), ==, 3);
  g_assert_cmpstr (error_code (event_at (sse, sse->events->len - 1)), ==,
                   "worker_lost");
  /* No fourth attempt started anywhere. */
  g_assert_null (jw_test_env_find_worker (env, id, 4, 1500));
}

/* SIGTERM with a short grace: the job is handed back and finishes on
 * another worker; the handback does not use up an attempt (max-attempts
 * is 1 here). */
static void
test_sigterm_handback (void)
{
  g_autoptr (JwTestEnv) env =
      start_env (2, HEARTBEAT_SET, WORKER_TIMEOUT_SET, "worker.grace-s=1",
                 "type.sleep.max-attempts=1", NULL);
  g_autofree char *id = jw_submit (
      env, "{\"type\":\"sleep\",\"params\":{\"seconds\":4,\"steps\":40}}");
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JwSse) sse = NULL;
  JwDaemon *stopped;
  int retrying;

  stopped = jw_test_env_find_worker (env, id, 1, 10000);
  g_assert_nonnull (stopped);
  wait_seq (env, id, 3, 10000);
  g_assert_cmpint (jw_daemon_stop (stopped, 10000), ==, 0);

  snap = jw_wait_job (env, id, NULL, 20000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
  g_assert_cmpint (jw_int (jw_json_node_object (snap), "attempt"), ==, 2);
  g_assert_true (jw_test_env_find_worker (env, id, 2, 1000) != stopped);

  sse = read_history (env, id);
  retrying = find_event (sse, 0, "retrying", 1);
  g_assert_cmpint (retrying, >, 0);
  g_assert_cmpstr (error_code (event_at (sse, retrying)), ==, "worker_stopped");
  g_assert_cmpint (find_event (sse, retrying, "started", 2), >, retrying);
}

/* SIGTERM with time to spare: the job finishes on the same attempt before
 * the worker exits. */
static void
test_sigterm_finishes (void)
{
  g_autoptr (JwTestEnv) env = start_env (1, HEARTBEAT_SET, NULL);
  g_autofree char *id = jw_submit (
      env, "{\"type\":\"sleep\",\"params\":{\"seconds\":1,\"steps\":10}}");
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JwSse) sse = NULL;
  JwDaemon *w1 = g_ptr_array_index (env->workers, 0);

  wait_seq (env, id, 3, 10000);
  g_assert_cmpint (jw_daemon_stop (w1, 10000), ==, 0);
  snap = jw_wait_job (env, id, NULL, 5000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
  g_assert_cmpint (jw_int (jw_json_node_object (snap), "attempt"), ==, 1);
  sse = read_history (env, id);
  g_assert_cmpuint (count_events (sse, "retrying"), ==, 0);
}

#define SOAK_JOBS 2000
#define SOAK_WORKERS 4
#define SOAK_KILLS 20
#define SOAK_SAMPLE 200
#define SOAK_KILL_EVERY_US (400 * G_TIME_SPAN_MILLISECOND)

/* Kills one worker at random (kill -9) and starts it again, when due. */
static void
soak_maybe_kill (JwTestEnv *env, GRand *rand, gint64 *next_kill, guint *kills)
{
  JwDaemon *victim;

  if (*kills >= SOAK_KILLS || g_get_monotonic_time () < *next_kill)
    return;
  victim = g_ptr_array_index (env->workers,
                              g_rand_int_range (rand, 0, env->workers->len));
  jw_daemon_kill (victim);
  jw_daemon_start (env, victim);
  (*kills)++;
  *next_kill = g_get_monotonic_time () + SOAK_KILL_EVERY_US;
}

#define SOAK_IN_FLIGHT 16

typedef struct
{
  GPtrArray *ids;
  guint in_flight;
  guint refused;
} Submitter;

typedef struct
{
  Submitter *sub;
  SoupMessage *msg;
} Submit;

static void
on_submitted (GObject *source, GAsyncResult *res, gpointer data)
{
  Submit *s = data;
  g_autoptr (GBytes) body = NULL;
  g_autoptr (JsonNode) node = NULL;
  JsonObject *obj;

  body = soup_session_send_and_read_finish (SOUP_SESSION (source), res, NULL);
  s->sub->in_flight--;
  if (body != NULL && soup_message_get_status (s->msg) == 202)
    node = jw_json_parse_bytes (body, 64, NULL);
  obj = node ? jw_json_node_object (node) : NULL;
  if (obj != NULL && jw_json_get_string (obj, "id") != NULL)
    g_ptr_array_add (s->sub->ids, g_strdup (jw_str (obj, "id")));
  else
    s->sub->refused++;
  g_object_unref (s->msg);
  g_free (s);
}

/* POST /jobs without waiting for the answer; keeps at most SOAK_IN_FLIGHT
 * requests open, so that the queue fills faster than workers drain it. */
static void
submit_async (JwTestEnv *env, Submitter *sub, const char *json)
{
  g_autofree char *url = g_strconcat (env->api_url, "/jobs", NULL);
  g_autoptr (GBytes) body = g_bytes_new (json, strlen (json));
  Submit *s = g_new0 (Submit, 1);
  gint64 deadline = jw_deadline (30000);

  while (sub->in_flight >= SOAK_IN_FLIGHT)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  s->sub = sub;
  s->msg = soup_message_new ("POST", url);
  soup_message_set_request_body_from_bytes (s->msg, "application/json", body);
  sub->in_flight++;
  soup_session_send_and_read_async (env->session, s->msg, G_PRIORITY_DEFAULT,
                                    NULL, on_submitted, s);
}

static gboolean
broker_idle (JwTestEnv *env)
{
  g_autoptr (JsonNode) ping = jw_broker_ping (env, 5000);
  JsonObject *obj = ping ? jw_json_node_object (ping) : NULL;

  g_assert_nonnull (obj);
  return jw_int (obj, "queued") == 0 && jw_int (obj, "running") == 0;
}

/* 2,000 jobs while workers are killed and restarted at random: every job
 * ends exactly once, and sampled histories are whole. */
static void
test_soak (void)
{
  /* libsoup opens a new connection for each POST and keeps up to the
   * session's 400 open, all from one address: more than the api's
   * default per-address limit. */
  g_autoptr (JwTestEnv) env =
      start_env (SOAK_WORKERS, HEARTBEAT_SET, WORKER_TIMEOUT_SET,
                 "api.max-connections-per-address=1024", NULL);
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) sample = g_ptr_array_new ();
  Submitter sub = { ids, 0, 0 };
  g_autoptr (GRand) rand = g_rand_new_with_seed ((guint32)g_test_rand_int ());
  const char *job = "{\"type\":\"sleep\",\"params\":{\"seconds\":0.01,"
                    "\"steps\":1}}";
  gint64 start = g_get_monotonic_time ();
  gint64 next_kill = start + SOAK_KILL_EVERY_US;
  gint64 deadline;
  guint kills = 0, succeeded = 0, lost = 0, retried = 0;

  for (guint i = 0; i < SOAK_JOBS; i++)
    {
      submit_async (env, &sub, job);
      soak_maybe_kill (env, rand, &next_kill, &kills);
    }
  deadline = jw_deadline (30000);
  while (sub.in_flight > 0)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_cmpuint (sub.refused, ==, 0);
  g_assert_cmpuint (ids->len, ==, SOAK_JOBS);
  g_test_message ("soak: %u jobs submitted in %.1f s, %u kills so far",
                  SOAK_JOBS, (g_get_monotonic_time () - start) / 1e6, kills);

  /* Keep killing until all kills are done, then let everything end. */
  deadline = jw_deadline (60000);
  while (kills < SOAK_KILLS || !broker_idle (env))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("soak: jobs still unfinished after 60 s (%u kills)", kills);
      soak_maybe_kill (env, rand, &next_kill, &kills);
      g_usleep (50 * G_TIME_SPAN_MILLISECOND);
    }
  g_test_message ("soak: all ended after %.1f s, %u kills",
                  (g_get_monotonic_time () - start) / 1e6, kills);

  /* Every job reached a terminal state: succeeded, or failed after its
   * workers kept dying. */
  for (guint i = 0; i < ids->len; i++)
    {
      g_autoptr (JsonNode) snap = jw_get_job (env, g_ptr_array_index (ids, i));
      const char *state = jw_job_state (snap);

      /* Every retried job is in the sample. */
      if (jw_int (jw_json_node_object (snap), "attempt") > 1)
        {
          retried++;
          if (sample->len < SOAK_SAMPLE)
            g_ptr_array_add (sample, g_ptr_array_index (ids, i));
        }

      if (g_str_equal (state, "succeeded"))
        succeeded++;
      else
        {
          g_assert_cmpstr (state, ==, "failed");
          g_assert_cmpstr (error_code (jw_json_node_object (snap)), ==,
                           "worker_lost");
          lost++;
        }
    }
  g_test_message ("soak: %u succeeded, %u failed with worker_lost", succeeded,
                  lost);
  g_assert_cmpuint (succeeded + lost, ==, SOAK_JOBS);
  /* With the queue full, workers are busy when killed. */
  g_test_message ("soak: %u jobs retried", retried);
  g_assert_cmpuint (retried, >, 0);
  while (sample->len < SOAK_SAMPLE)
    g_ptr_array_add (
        sample, g_ptr_array_index (ids, g_rand_int_range (rand, 0, ids->len)));

  /* A sample of histories: contiguous from 1, one terminal event, nothing
   * after it. */
  for (guint i = 0; i < sample->len; i++)
    {
      const char *id = g_ptr_array_index (sample, i);
      g_autoptr (JwSse) sse = read_history (env, id);
      guint terminal = count_events (sse, "succeeded")
                       + count_events (sse, "failed")
                       + count_events (sse, "cancelled");

      g_assert_cmpuint (terminal, ==, 1);
    }
  g_test_message ("soak: done in %.1f s",
                  (g_get_monotonic_time () - start) / 1e6);
}

/* SIGTERM on the api while a submit waits for the broker: new connections
 * are refused at once, the pending submit still gets its 202, then the api
 * exits 0. */
static void
test_api_sigterm (void)
{
  g_autoptr (JwTestEnv) env = start_env (1, NULL);
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *url = g_strconcat (env->api_url, "/healthz", NULL);
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (JsonNode) snap = NULL;
  Submitter sub = { ids, 0, 0 };
  gint64 deadline;
  gboolean refused = FALSE;

  /* The broker hangs: a submit stays in flight in the api. */
  g_assert_cmpint (kill (jw_daemon_pid (env->broker), SIGSTOP), ==, 0);
  submit_async (env, &sub, SHORT_JOB);
  deadline = jw_deadline (5000);
  while (!log_contains (env->api, "request method=POST path=/jobs"))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (5 * G_TIME_SPAN_MILLISECOND);
    }

  g_subprocess_send_signal (env->api->proc, SIGTERM);
  deadline = jw_deadline (2000);
  while (!refused && g_get_monotonic_time () < deadline)
    {
      g_autoptr (GSocketConnection) conn = g_socket_client_connect_to_host (
          client, "127.0.0.1", env->api_port, NULL, NULL);

      refused = conn == NULL;
      g_main_context_iteration (NULL, FALSE);
    }
  g_assert_true (refused);
  g_assert_cmpuint (sub.in_flight, ==, 1);

  /* The broker answers; so does the api, and then it exits. */
  g_assert_cmpint (kill (jw_daemon_pid (env->broker), SIGCONT), ==, 0);
  deadline = jw_deadline (10000);
  while (sub.in_flight > 0 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpuint (sub.in_flight, ==, 0);
  g_assert_cmpuint (sub.refused, ==, 0);
  g_assert_cmpuint (ids->len, ==, 1);
  g_assert_cmpint (jw_daemon_wait (env->api, 10000), ==, 0);

  /* The job it confirmed exists and runs. */
  jw_daemon_start (env, env->api);
  g_assert_true (jw_test_env_wait_ready (env, 1, 15000));
  snap = jw_wait_job (env, g_ptr_array_index (ids, 0), NULL, 10000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/faults/worker/kill-mid-job-retries", test_kill_worker);
  g_test_add_func ("/faults/worker/hung-attempt-is-stale", test_stale_attempt);
  g_test_add_func ("/faults/worker/max-attempts-worker-lost",
                   test_max_attempts);
  g_test_add_func ("/faults/worker/sigterm-hands-back", test_sigterm_handback);
  g_test_add_func ("/faults/worker/sigterm-finishes-job",
                   test_sigterm_finishes);
  g_test_add_func ("/faults/pusher/kill-clients-resume", test_kill_pusher);
  g_test_add_func ("/faults/timeout/fails-and-frees-worker", test_timeout);
  g_test_add_func ("/faults/cancel/running-stops", test_cancel_running);
  g_test_add_func ("/faults/cancel/unanswered-ends-anyway",
                   test_cancel_unanswered);
  g_test_add_func ("/faults/api/sigterm-answers-in-flight", test_api_sigterm);
  g_test_add_func ("/faults/soak/kills-2000-jobs", test_soak);
  return g_test_run ();
}
