/* End-to-end streaming: a job submitted over REST is followed by a browser
 * over SSE, WebSocket and long-poll, including reconnects and failures. */

#include <string.h>

#include "testenv.h"
#include "jw-json.h"

#define SLEEP_JOB(seconds, steps)                                              \
  "{\"type\":\"sleep\",\"params\":{\"seconds\":" #seconds ",\"steps\":" #steps \
  "}}"

static JsonObject *
node_obj (GPtrArray *nodes, guint i)
{
  return jw_json_node_object (g_ptr_array_index (nodes, i));
}

static gboolean
member_is_null (JsonObject *obj, const char *member)
{
  JsonNode *n = json_object_get_member (obj, member);

  return n == NULL || JSON_NODE_HOLDS_NULL (n);
}

static void
test_sse_sleep_job_stream (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autoptr (JwReply) r = NULL;
  g_autoptr (JwSse) sse = NULL;
  g_autoptr (GPtrArray) nodes = NULL;
  g_autoptr (JsonNode) snap = NULL;
  g_autofree char *events_url = NULL;
  g_autofree char *ws_url = NULL;
  JsonObject *obj, *links, *progress, *result;
  const char *id;

  /* The 202 carries the recorded snapshot and where to follow the job. */
  r = jw_api_post_json (env, "/jobs", SLEEP_JOB (0.5, 5));
  g_assert_cmpuint (r->status, ==, 202);
  obj = jw_reply_object (r);
  g_assert_nonnull (obj);
  id = jw_str (obj, "id");
  g_assert_cmpstr (jw_str (obj, "type"), ==, "sleep");
  g_assert_cmpstr (jw_str (obj, "state"), ==, "queued");
  g_assert_cmpint (jw_int (obj, "seq"), >=, 1);
  links = jw_json_get_object (obj, "links");
  g_assert_nonnull (links);
  events_url = g_strdup_printf ("%s/jobs/%s/events", env->pusher_url, id);
  g_assert_cmpstr (jw_str (links, "events"), ==, events_url);
  ws_url = g_strdup_printf ("ws://127.0.0.1:%u/ws", env->pusher_port);
  g_assert_cmpstr (jw_str (links, "websocket"), ==, ws_url);

  /* The whole life of the job arrives in order and the stream ends. */
  sse = jw_sse_read (env, id, NULL, NULL, 0, 10000);
  g_assert_cmpuint (sse->status, ==, 200);
  g_assert_cmpstr (sse->content_type, ==, "text/event-stream");
  g_assert_true (sse->ended);
  nodes = jw_sse_nodes (sse);
  jw_assert_history (nodes, id, 1, TRUE);
  g_assert_cmpuint (nodes->len, ==, 8);

  obj = node_obj (nodes, 0);
  g_assert_cmpstr (jw_str (obj, "type"), ==, "queued");
  g_assert_cmpstr (jw_str (obj, "job_type"), ==, "sleep");
  g_assert_cmpint (jw_int (obj, "attempt"), ==, 0);
  obj = node_obj (nodes, 1);
  g_assert_cmpstr (jw_str (obj, "type"), ==, "started");
  g_assert_cmpint (jw_int (obj, "attempt"), ==, 1);
  for (guint i = 0; i < 5; i++)
    {
      double done, total, percent;

      obj = node_obj (nodes, 2 + i);
      g_assert_cmpstr (jw_str (obj, "type"), ==, "progress");
      progress = jw_json_get_object (obj, "progress");
      g_assert_nonnull (progress);
      g_assert_true (jw_json_get_double (progress, "done", &done));
      g_assert_true (jw_json_get_double (progress, "total", &total));
      g_assert_true (jw_json_get_double (progress, "percent", &percent));
      g_assert_cmpfloat (done, ==, i + 1);
      g_assert_cmpfloat (total, ==, 5);
      g_assert_cmpfloat_with_epsilon (percent, (i + 1) * 20.0, 0.5);
    }
  obj = node_obj (nodes, 7);
  g_assert_cmpstr (jw_str (obj, "type"), ==, "succeeded");
  g_assert_false (member_is_null (obj, "result"));

  /* The state URL agrees. */
  snap = jw_get_job (env, id);
  obj = jw_json_node_object (snap);
  g_assert_cmpstr (jw_str (obj, "state"), ==, "succeeded");
  g_assert_cmpint (jw_int (obj, "seq"), ==, 8);
  g_assert_cmpint (jw_int (obj, "attempt"), ==, 1);
  result = jw_json_get_object (obj, "result");
  g_assert_nonnull (result);
  g_assert_cmpint (jw_int (result, "steps"), ==, 5);
  g_assert_nonnull (jw_str (obj, "created_at"));
  g_assert_nonnull (jw_str (obj, "started_at"));
  g_assert_nonnull (jw_str (obj, "finished_at"));
  g_assert_true (member_is_null (obj, "error"));
}

static gboolean
same_events (JsonNode *a, JsonNode *b)
{
  return json_node_equal (a, b);
}

static void
test_sse_resume (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autofree char *id = jw_submit (env, SLEEP_JOB (1.2, 6));
  g_autoptr (JwSse) first = NULL;
  g_autoptr (JwSse) second = NULL;
  g_autoptr (JwSse) late = NULL;
  g_autoptr (JwSse) after = NULL;
  g_autoptr (JwSse) past = NULL;
  g_autoptr (GPtrArray) n1 = NULL;
  g_autoptr (GPtrArray) n2 = NULL;
  g_autoptr (GPtrArray) all = NULL;
  g_autoptr (GPtrArray) n4 = NULL;
  g_autoptr (JsonNode) snap = NULL;
  g_autofree char *last_id = NULL;
  gint64 n;

  /* Read up to seq 4, then drop the connection mid-job. */
  first = jw_sse_read (env, id, NULL, NULL, 4, 10000);
  g_assert_cmpuint (first->status, ==, 200);
  n1 = jw_sse_nodes (first);
  jw_assert_history (n1, id, 1, FALSE);
  g_assert_cmpuint (n1->len, ==, 4);

  /* Resume with Last-Event-ID: exactly 5 … end, no gap, no duplicate. */
  second = jw_sse_read (env, id, "4", NULL, 0, 10000);
  g_assert_cmpuint (second->status, ==, 200);
  g_assert_true (second->ended);
  n2 = jw_sse_nodes (second);
  jw_assert_history (n2, id, 5, TRUE);
  n = 4 + n2->len;
  g_assert_cmpint (n, ==, 9);
  g_assert_cmpstr (jw_str (node_obj (n2, n2->len - 1), "type"), ==,
                   "succeeded");

  /* A late subscriber gets the same whole history, then the end. */
  snap = jw_wait_job (env, id, NULL, 5000);
  g_assert_nonnull (snap);
  g_assert_cmpint (jw_int (jw_json_node_object (snap), "seq"), ==, n);
  late = jw_sse_read (env, id, NULL, NULL, 0, 10000);
  g_assert_cmpuint (late->status, ==, 200);
  g_assert_true (late->ended);
  all = jw_sse_nodes (late);
  jw_assert_history (all, id, 1, TRUE);
  g_assert_cmpint (all->len, ==, n);
  for (guint i = 0; i < all->len; i++)
    {
      JsonNode *live =
          i < 4 ? g_ptr_array_index (n1, i) : g_ptr_array_index (n2, i - 4);

      g_assert_true (same_events (live, g_ptr_array_index (all, i)));
    }

  /* ?after= is the other way to name the resume point. */
  after = jw_sse_read (env, id, NULL, "after=6", 0, 10000);
  g_assert_cmpuint (after->status, ==, 200);
  g_assert_true (after->ended);
  n4 = jw_sse_nodes (after);
  jw_assert_history (n4, id, 7, TRUE);
  g_assert_cmpint (6 + n4->len, ==, n);

  /* Past the terminal event: 204, so that EventSource stops. */
  last_id = g_strdup_printf ("%" G_GINT64_FORMAT, n);
  past = jw_sse_read (env, id, last_id, NULL, 0, 10000);
  g_assert_cmpuint (past->status, ==, 204);
  g_assert_cmpuint (past->events->len, ==, 0);
}

static void
test_sse_failed_job (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autofree char *id = jw_submit (env, "{\"type\":\"sleep\",\"params\":"
                                        "{\"seconds\":0.5,\"steps\":5,"
                                        "\"fail_at\":3}}");
  g_autoptr (JwSse) sse = jw_sse_read (env, id, NULL, NULL, 0, 10000);
  g_autoptr (GPtrArray) nodes = NULL;
  g_autoptr (JsonNode) snap = NULL;
  JsonObject *last, *err, *obj;

  g_assert_cmpuint (sse->status, ==, 200);
  g_assert_true (sse->ended);
  nodes = jw_sse_nodes (sse);
  jw_assert_history (nodes, id, 1, TRUE);

  /* No step at or past the failing one completed. */
  for (guint i = 0; i + 1 < nodes->len; i++)
    {
      JsonObject *ev = node_obj (nodes, i);
      double done;

      if (g_str_equal (jw_str (ev, "type"), "progress"))
        {
          JsonObject *p = jw_json_get_object (ev, "progress");

          g_assert_nonnull (p);
          if (jw_json_get_double (p, "done", &done))
            g_assert_cmpfloat (done, <=, 3);
        }
    }
  last = node_obj (nodes, nodes->len - 1);
  g_assert_cmpstr (jw_str (last, "type"), ==, "failed");
  err = jw_json_get_object (last, "error");
  g_assert_nonnull (err);
  g_assert_cmpstr (jw_str (err, "code"), ==, "step_failed");
  g_assert_cmpuint (strlen (jw_str (err, "message")), >, 0);

  snap = jw_get_job (env, id);
  obj = jw_json_node_object (snap);
  g_assert_cmpstr (jw_str (obj, "state"), ==, "failed");
  err = jw_json_get_object (obj, "error");
  g_assert_nonnull (err);
  g_assert_cmpstr (jw_str (err, "code"), ==, "step_failed");
  g_assert_true (member_is_null (obj, "result"));
  g_assert_cmpint (jw_int (obj, "seq"), ==, nodes->len);
}

/* The events of one job seen on a WebSocket, in arrival order. */
typedef struct
{
  const char *id;
  gint64 last_seq;
  gboolean ended;
  GPtrArray *events;
} WsJob;

static void
ws_job_add (WsJob *job, JsonObject *frame)
{
  JsonNode *node = json_node_alloc ();

  json_node_init_object (node, frame);
  g_assert_cmpint (jw_int (frame, "seq"), ==, job->last_seq + 1);
  job->last_seq++;
  if (g_str_equal (jw_str (frame, "type"), "succeeded")
      || g_str_equal (jw_str (frame, "type"), "failed")
      || g_str_equal (jw_str (frame, "type"), "cancelled"))
    job->ended = TRUE;
  g_ptr_array_add (job->events, node);
}

static void
test_ws_two_jobs (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (2);
  g_autofree char *ida = jw_submit (env, SLEEP_JOB (1, 5));
  g_autofree char *idb = jw_submit (env, SLEEP_JOB (2.5, 5));
  g_autoptr (JwWs) ws = jw_ws_connect (env);
  g_autoptr (GPtrArray) ea = jw_node_array_new ();
  g_autoptr (GPtrArray) eb = jw_node_array_new ();
  g_autoptr (JsonNode) snap_a = NULL;
  g_autoptr (JsonNode) snap_b = NULL;
  g_autofree char *sub_a = NULL;
  g_autofree char *sub_b = NULL;
  g_autofree char *unsub_a = NULL;
  g_autofree char *resub_a = NULL;
  WsJob a = { ida, 0, FALSE, ea };
  WsJob b = { idb, 0, FALSE, eb };
  gboolean unsub_sent = FALSE, unsubscribed = FALSE;
  gint64 a_at_unsub = 0;
  guint subscribed = 0;
  JsonObject *f;

  sub_a = g_strdup_printf ("{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":0}",
                           ida);
  sub_b = g_strdup_printf ("{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":0}",
                           idb);
  unsub_a = g_strdup_printf ("{\"op\":\"unsubscribe\",\"job\":\"%s\"}", ida);
  jw_ws_send (ws, sub_a);
  jw_ws_send (ws, sub_b);

  /* Both jobs' events arrive, each in seq order; A is dropped mid-way. */
  while (!b.ended && (f = jw_ws_next (ws, 10000)) != NULL)
    {
      const char *op = jw_json_get_string (f, "op");
      const char *job = jw_json_get_string (f, "job");

      if (op != NULL && g_str_equal (op, "error"))
        g_error ("pusher answered an error: %s",
                 jw_json_get_string (f, "code"));
      g_assert_nonnull (job);
      if (op != NULL)
        {
          if (g_str_equal (op, "subscribed"))
            subscribed++;
          else if (g_str_equal (op, "unsubscribed"))
            {
              g_assert_cmpstr (job, ==, ida);
              g_assert_true (unsub_sent);
              unsubscribed = TRUE;
            }
          continue;
        }
      if (g_str_equal (job, ida))
        {
          g_assert_false (unsubscribed);
          ws_job_add (&a, f);
          if (a.last_seq >= 3 && !unsub_sent)
            {
              jw_ws_send (ws, unsub_a);
              unsub_sent = TRUE;
            }
        }
      else
        {
          g_assert_cmpstr (job, ==, idb);
          ws_job_add (&b, f);
        }
    }
  g_assert_true (b.ended);
  g_assert_cmpuint (subscribed, ==, 2);
  g_assert_true (unsubscribed);
  jw_assert_history (eb, idb, 1, TRUE);
  g_assert_cmpuint (eb->len, ==, 8);
  jw_assert_history (ea, ida, 1, FALSE);
  g_assert_false (a.ended);
  a_at_unsub = a.last_seq;

  /* A ran to completion anyway, before B: had the pusher kept sending A,
   * its events would have come before B's end on this connection. */
  snap_a = jw_wait_job (env, ida, NULL, 5000);
  snap_b = jw_get_job (env, idb);
  g_assert_cmpstr (jw_job_state (snap_a), ==, "succeeded");
  g_assert_cmpstr (jw_job_state (snap_b), ==, "succeeded");
  g_assert_cmpstr (jw_str (jw_json_node_object (snap_a), "finished_at"), <,
                   jw_str (jw_json_node_object (snap_b), "finished_at"));

  /* Subscribing again from the last seq seen resumes A to its end. */
  resub_a = g_strdup_printf ("{\"op\":\"subscribe\",\"job\":\"%s\","
                             "\"after\":%" G_GINT64_FORMAT "}",
                             ida, a_at_unsub);
  jw_ws_send (ws, resub_a);
  while (!a.ended && (f = jw_ws_next (ws, 10000)) != NULL)
    {
      const char *op = jw_json_get_string (f, "op");

      if (op != NULL)
        {
          g_assert_cmpstr (op, ==, "subscribed");
          continue;
        }
      g_assert_cmpstr (jw_str (f, "job"), ==, ida);
      ws_job_add (&a, f);
    }
  g_assert_true (a.ended);
  jw_assert_history (ea, ida, 1, TRUE);
  g_assert_cmpuint (ea->len, ==, 8);
}

/* GET /jobs/ID/poll; returns the array and how long the answer took. */
static JsonArray *
poll_events (JwTestEnv *env, const char *id, gint64 after, guint timeout_s,
             double *elapsed, JsonNode **keep)
{
  g_autofree char *path =
      g_strdup_printf ("/jobs/%s/poll?after=%" G_GINT64_FORMAT "&timeout=%u",
                       id, after, timeout_s);
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr (JwReply) r = jw_pusher_get (env, path);

  *elapsed = (g_get_monotonic_time () - t0) / (double)G_TIME_SPAN_SECOND;
  g_assert_cmpuint (r->status, ==, 200);
  g_assert_nonnull (r->json);
  g_assert_true (JSON_NODE_HOLDS_ARRAY (r->json));
  *keep = json_node_ref (r->json);
  return json_node_get_array (*keep);
}

static void
append_array (GPtrArray *events, JsonArray *arr)
{
  for (guint i = 0; i < json_array_get_length (arr); i++)
    g_ptr_array_add (events, json_node_ref (json_array_get_element (arr, i)));
}

static gint64
last_seq (GPtrArray *events)
{
  if (events->len == 0)
    return 0;
  return jw_int (
      jw_json_node_object (g_ptr_array_index (events, events->len - 1)), "seq");
}

static void
test_long_poll (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (2);
  g_autofree char *id = jw_submit (env, SLEEP_JOB (2, 4));
  g_autofree char *idle = jw_submit (env, SLEEP_JOB (20, 1));
  g_autoptr (GPtrArray) events = jw_node_array_new ();
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JsonNode) keep = NULL;
  g_autofree char *del = NULL;
  JsonArray *arr;
  double elapsed;
  gint64 seq;

  /* after=0 answers with what exists. */
  g_clear_pointer (&snap, json_node_unref);
  snap = jw_wait_job (env, id, "running", 5000);
  g_assert_nonnull (snap);
  arr = poll_events (env, id, 0, 5, &elapsed, &keep);
  g_assert_cmpuint (json_array_get_length (arr), >=, 2);
  g_assert_cmpfloat (elapsed, <, 1.5);
  append_array (events, arr);
  jw_assert_history (events, id, 1, FALSE);

  /* On a running job, a poll returns as soon as the next event exists
   * (one every 0.5 s here), well before its 5 s timeout. */
  while (!g_str_equal (
      jw_str (jw_json_node_object (g_ptr_array_index (events, events->len - 1)),
              "type"),
      "succeeded"))
    {
      g_clear_pointer (&keep, json_node_unref);
      seq = last_seq (events);
      arr = poll_events (env, id, seq, 5, &elapsed, &keep);
      g_assert_cmpuint (json_array_get_length (arr), >=, 1);
      g_assert_cmpfloat (elapsed, <, 2.0);
      append_array (events, arr);
      jw_assert_history (events, id, 1, FALSE);
    }
  jw_assert_history (events, id, 1, TRUE);
  g_assert_cmpuint (events->len, ==, 7);

  /* Nothing after the terminal event: an empty array at once. */
  g_clear_pointer (&keep, json_node_unref);
  arr = poll_events (env, id, last_seq (events), 5, &elapsed, &keep);
  g_assert_cmpuint (json_array_get_length (arr), ==, 0);
  g_assert_cmpfloat (elapsed, <, 1.5);

  /* A job with no event coming: [] when the timeout expires. */
  g_clear_pointer (&snap, json_node_unref);
  snap = jw_wait_job (env, idle, "running", 5000);
  g_assert_nonnull (snap);
  seq = jw_int (jw_json_node_object (snap), "seq");
  g_clear_pointer (&keep, json_node_unref);
  arr = poll_events (env, idle, seq, 1, &elapsed, &keep);
  g_assert_cmpuint (json_array_get_length (arr), ==, 0);
  g_assert_cmpfloat (elapsed, >=, 0.9);
  g_assert_cmpfloat (elapsed, <, 3.0);

  /* Cancelling it wakes a waiting poll with the cancelled event. */
  del = g_strdup_printf ("%s/jobs/%s", env->api_url, idle);
  {
    g_autoptr (JwReply) r = jw_http (env, "DELETE", del, NULL, NULL, NULL);

    g_assert_cmpuint (r->status, ==, 202);
  }
  g_ptr_array_set_size (events, 0);
  g_clear_pointer (&keep, json_node_unref);
  arr = poll_events (env, idle, seq, 5, &elapsed, &keep);
  append_array (events, arr);
  g_assert_cmpuint (events->len, >=, 1);
  jw_assert_history (events, idle, seq + 1, TRUE);
  g_assert_cmpstr (
      jw_str (jw_json_node_object (g_ptr_array_index (events, events->len - 1)),
              "type"),
      ==, "cancelled");
  g_clear_pointer (&snap, json_node_unref);
  snap = jw_wait_job (env, idle, NULL, 5000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "cancelled");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pipeline/sse/sleep-job-stream", test_sse_sleep_job_stream);
  g_test_add_func ("/pipeline/sse/resume-last-event-id", test_sse_resume);
  g_test_add_func ("/pipeline/sse/failed-job", test_sse_failed_job);
  g_test_add_func ("/pipeline/ws/two-jobs-unsubscribe", test_ws_two_jobs);
  g_test_add_func ("/pipeline/poll/long-poll", test_long_poll);
  return g_test_run ();
}
