/* End-to-end dispatch under load: many jobs at once over several workers,
 * and an idle worker that must not wait behind a busy one. */

#include <string.h>

#include "testenv.h"
#include "jw-json.h"

#define N_JOBS 200
#define N_WORKERS 4

/* One request of a burst sent asynchronously. */
typedef struct
{
  SoupMessage *msg;
  guint status;
  char *id; /* "id" of a JSON answer */
  guint *pending;
  GBytes *body;
} Post;

static void
on_posted (GObject *source, GAsyncResult *res, gpointer user_data)
{
  Post *p = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) body = NULL;
  g_autoptr (JsonNode) node = NULL;
  JsonObject *obj;

  body = soup_session_send_and_read_finish (SOUP_SESSION (source), res, &error);
  (*p->pending)--;
  if (body == NULL)
    {
      g_test_message ("POST /jobs: %s", error->message);
      return;
    }
  p->status = soup_message_get_status (p->msg);
  p->body = g_bytes_ref (body);
  node = jw_json_parse_bytes (body, 64, NULL);
  obj = node ? jw_json_node_object (node) : NULL;
  if (obj != NULL && jw_json_get_string (obj, "id") != NULL)
    p->id = g_strdup (jw_json_get_string (obj, "id"));
}

static gboolean
wake (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* Counts the jobs in state; the list is newest first, at most 1000. */
static guint
count_state (JwTestEnv *env, const char *state)
{
  g_autofree char *path = g_strdup_printf ("/jobs?state=%s&limit=1000", state);
  g_autoptr (JwReply) r = jw_api_get (env, path);
  JsonArray *jobs;

  g_assert_cmpuint (r->status, ==, 200);
  g_assert_nonnull (jw_reply_object (r));
  jobs = jw_json_get_array (jw_reply_object (r), "jobs");
  g_assert_nonnull (jobs);
  return json_array_get_length (jobs);
}

static void
test_many_jobs (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (N_WORKERS);
  g_autoptr (SoupSession) session = NULL;
  g_autoptr (GHashTable) ids = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GString) spread = g_string_new (NULL);
  const char *json = "{\"type\":\"sleep\",\"params\":"
                     "{\"seconds\":0.05,\"steps\":2}}";
  g_autofree char *url = g_strconcat (env->api_url, "/jobs", NULL);
  guint per_worker[N_WORKERS] = { 0 };
  char *worker_logs[N_WORKERS];
  Post posts[N_JOBS];
  guint pending = N_JOBS;
  gint64 deadline;
  guint w_id;

  /* Fire every POST before reading any answer (over a few connections:
   * the burst of connections itself is test_connection_burst's). */
  session = soup_session_new_with_options ("timeout", 30, "max-conns", 8,
                                           "max-conns-per-host", 8, NULL);
  for (guint i = 0; i < N_JOBS; i++)
    {
      g_autoptr (GBytes) body = g_bytes_new_static (json, strlen (json));

      posts[i] =
          (Post){ soup_message_new ("POST", url), 0, NULL, &pending, NULL };
      soup_message_set_request_body_from_bytes (posts[i].msg,
                                                "application/json", body);
      soup_session_send_and_read_async (session, posts[i].msg,
                                        G_PRIORITY_DEFAULT, NULL, on_posted,
                                        &posts[i]);
    }
  deadline = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;
  w_id = g_timeout_add (20, wake, NULL);
  while (pending > 0 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (w_id);
  g_assert_cmpuint (pending, ==, 0);
  for (guint i = 0; i < N_JOBS; i++)
    {
      g_assert_cmpuint (posts[i].status, ==, 202);
      g_assert_nonnull (posts[i].id);
      g_assert_true (g_hash_table_add (ids, posts[i].id));
    }

  /* Every job reaches succeeded. */
  deadline = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;
  while (count_state (env, "succeeded") < N_JOBS
         && g_get_monotonic_time () < deadline)
    g_usleep (100 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpuint (count_state (env, "succeeded"), ==, N_JOBS);
  g_assert_cmpuint (count_state (env, "queued"), ==, 0);
  g_assert_cmpuint (count_state (env, "running"), ==, 0);
  g_assert_cmpuint (count_state (env, "failed"), ==, 0);

  /* Each history is 1..N with no gap or duplicate, one attempt. */
  for (guint i = 0; i < N_JOBS; i++)
    {
      g_autofree char *path = g_strdup_printf ("/jobs/%s/poll?after=0"
                                               "&timeout=1",
                                               posts[i].id);
      g_autoptr (JwReply) r = jw_pusher_get (env, path);
      g_autoptr (GPtrArray) events = g_ptr_array_new ();
      JsonArray *arr;

      g_assert_cmpuint (r->status, ==, 200);
      g_assert_true (r->json != NULL && JSON_NODE_HOLDS_ARRAY (r->json));
      arr = json_node_get_array (r->json);
      for (guint k = 0; k < json_array_get_length (arr); k++)
        g_ptr_array_add (events, json_array_get_element (arr, k));
      jw_assert_history (events, posts[i].id, 1, TRUE);
      g_assert_cmpuint (events->len, ==, 5);
      g_assert_cmpint (
          jw_int (jw_json_node_object (g_ptr_array_index (events, 1)),
                  "attempt"),
          ==, 1);
    }

  /* Events do not name the worker: each worker's log names the jobs it
   * ran. Every job must appear in exactly one worker's log, and every
   * worker must have had a fair share. */
  for (guint w = 0; w < N_WORKERS; w++)
    {
      JwDaemon *d = g_ptr_array_index (env->workers, w);

      g_assert_true (
          g_file_get_contents (d->log_path, &worker_logs[w], NULL, NULL));
    }
  for (guint i = 0; i < N_JOBS; i++)
    {
      guint seen = 0;

      for (guint w = 0; w < N_WORKERS; w++)
        if (strstr (worker_logs[w], posts[i].id) != NULL)
          {
            per_worker[w]++;
            seen++;
          }
      if (seen != 1)
        g_test_message ("job %s appears in %u worker logs", posts[i].id, seen);
      g_assert_cmpuint (seen, ==, 1);
    }
  for (guint w = 0; w < N_WORKERS; w++)
    g_string_append_printf (spread, " w%u=%u", w + 1, per_worker[w]);
  g_test_message ("jobs per worker:%s", spread->str);
  for (guint w = 0; w < N_WORKERS; w++)
    g_assert_cmpuint (per_worker[w], >=, N_JOBS / N_WORKERS / 4);

  for (guint w = 0; w < N_WORKERS; w++)
    g_free (worker_logs[w]);
  for (guint i = 0; i < N_JOBS; i++)
    {
      g_object_unref (posts[i].msg);
      g_free (posts[i].id);
      g_clear_pointer (&posts[i].body, g_bytes_unref);
    }
}

/* Many clients submitting at the same moment, each on its own connection:
 * every one gets its 202 (with libsoup's listen backlog of 10, the
 * connections the api does not accept in time are reset). */
static void
test_connection_burst (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autoptr (SoupSession) session = NULL;
  g_autofree char *url = g_strconcat (env->api_url, "/jobs", NULL);
  const char *json = "{\"type\":\"sleep\",\"params\":"
                     "{\"seconds\":0,\"steps\":1}}";
  Post posts[100];
  guint pending = G_N_ELEMENTS (posts);
  guint accepted = 0, refused = 0, broken = 0;
  gint64 deadline;
  guint w_id;

  session = soup_session_new_with_options ("timeout", 30, "max-conns", 100,
                                           "max-conns-per-host", 100, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (posts); i++)
    {
      g_autoptr (GBytes) body = g_bytes_new_static (json, strlen (json));

      posts[i] =
          (Post){ soup_message_new ("POST", url), 0, NULL, &pending, NULL };
      soup_message_set_request_body_from_bytes (posts[i].msg,
                                                "application/json", body);
      soup_session_send_and_read_async (session, posts[i].msg,
                                        G_PRIORITY_DEFAULT, NULL, on_posted,
                                        &posts[i]);
    }
  deadline = g_get_monotonic_time () + 30 * G_TIME_SPAN_SECOND;
  w_id = g_timeout_add (20, wake, NULL);
  while (pending > 0 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (w_id);
  g_assert_cmpuint (pending, ==, 0);

  /* Each gets a clear answer: accepted, or refused with Retry-After as
   * back-pressure; never a reset connection. */
  for (guint i = 0; i < G_N_ELEMENTS (posts); i++)
    {
      SoupMessageHeaders *h = soup_message_get_response_headers (posts[i].msg);

      if (posts[i].status == 202)
        accepted++;
      else if (posts[i].status == 503
               && soup_message_headers_get_one (h, "Retry-After") != NULL)
        refused++;
      else
        broken++;
      g_object_unref (posts[i].msg);
      g_free (posts[i].id);
      g_clear_pointer (&posts[i].body, g_bytes_unref);
    }
  g_test_message ("of %u: accepted %u, refused with Retry-After %u, "
                  "no proper answer (status 0: connection reset) %u",
                  (guint)G_N_ELEMENTS (posts), accepted, refused, broken);
  g_assert_cmpuint (broken, ==, 0);
  g_assert_cmpuint (accepted, >, 0);
}

/* Many browsers follow one job at the same time: each gets the whole
 * history, the same bytes, and its stream ends. */
static void
test_sse_fan_out (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autofree char *id = jw_submit (env, "{\"type\":\"sleep\",\"params\":"
                                        "{\"seconds\":1.5,\"steps\":5}}");
  g_autofree char *url =
      g_strdup_printf ("%s/jobs/%s/events", env->pusher_url, id);
  g_autoptr (SoupSession) session = NULL;
  g_autoptr (JwSse) first = NULL;
  Post gets[100];
  guint pending = G_N_ELEMENTS (gets);
  gint64 deadline;
  guint w_id;

  session = soup_session_new_with_options ("timeout", 30, "max-conns", 100,
                                           "max-conns-per-host", 100, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (gets); i++)
    {
      gets[i] =
          (Post){ soup_message_new ("GET", url), 0, NULL, &pending, NULL };
      soup_session_send_and_read_async (
          session, gets[i].msg, G_PRIORITY_DEFAULT, NULL, on_posted, &gets[i]);
    }
  deadline = g_get_monotonic_time () + 30 * G_TIME_SPAN_SECOND;
  w_id = g_timeout_add (20, wake, NULL);
  while (pending > 0 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (w_id);
  g_assert_cmpuint (pending, ==, 0);

  for (guint i = 0; i < G_N_ELEMENTS (gets); i++)
    {
      g_autoptr (JwSse) sse = NULL;
      g_autoptr (GPtrArray) nodes = NULL;

      g_assert_cmpuint (gets[i].status, ==, 200);
      sse = jw_sse_parse (gets[i].body);
      nodes = jw_sse_nodes (sse);
      jw_assert_history (nodes, id, 1, TRUE);
      g_assert_cmpuint (nodes->len, ==, 8);
      if (first == NULL)
        first = g_steal_pointer (&sse);
      else
        for (guint k = 0; k < nodes->len; k++)
          g_assert_cmpstr (
              ((JwSseEvent *)g_ptr_array_index (sse->events, k))->data, ==,
              ((JwSseEvent *)g_ptr_array_index (first->events, k))->data);
      g_object_unref (gets[i].msg);
      g_clear_pointer (&gets[i].body, g_bytes_unref);
    }
}

static void
test_idle_worker_not_starved (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (2);
  g_autofree char *long_id = jw_submit (env, "{\"type\":\"sleep\",\"params\":"
                                             "{\"seconds\":5,\"steps\":5}}");
  g_autoptr (JsonNode) snap = NULL;
  char *short_ids[3];

  snap = jw_wait_job (env, long_id, "running", 5000);
  g_assert_nonnull (snap);

  /* The busy worker must not hold the short jobs: the idle one runs them
   * all while the long one is still running. */
  for (guint i = 0; i < G_N_ELEMENTS (short_ids); i++)
    short_ids[i] = jw_submit (env, "{\"type\":\"sleep\",\"params\":"
                                   "{\"seconds\":0.2,\"steps\":2}}");
  for (guint i = 0; i < G_N_ELEMENTS (short_ids); i++)
    {
      g_autoptr (JsonNode) s = jw_wait_job (env, short_ids[i], NULL, 4000);

      g_assert_nonnull (s);
      g_assert_cmpstr (jw_job_state (s), ==, "succeeded");
    }
  g_clear_pointer (&snap, json_node_unref);
  snap = jw_get_job (env, long_id);
  g_assert_cmpstr (jw_job_state (snap), ==, "running");

  for (guint i = 0; i < G_N_ELEMENTS (short_ids); i++)
    g_free (short_ids[i]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pipeline/load/200-jobs-4-workers", test_many_jobs);
  g_test_add_func ("/pipeline/dispatch/idle-worker-not-starved",
                   test_idle_worker_not_starved);
  g_test_add_func ("/pipeline/sse/fan-out-100-clients", test_sse_fan_out);
  g_test_add_func ("/pipeline/api/connection-burst", test_connection_burst);
  return g_test_run ();
}
