/* /metrics on the api and the pusher: after a job is followed over SSE and
 * WebSocket, both expositions parse as Prometheus text and their counters
 * agree with what the clients saw. */

#include <string.h>

#include "jw-json.h"
#include "testenv.h"

#define SLEEP_JOB "{\"type\":\"sleep\",\"params\":{\"seconds\":2,\"steps\":4}}"

/* Samples of one scrape: "name{labels}" (or "name") → value. */
typedef struct
{
  GHashTable *samples;
  GHashTable *types; /* metric name → TYPE */
} Scrape;

static void
scrape_free (Scrape *s)
{
  g_hash_table_unref (s->samples);
  g_hash_table_unref (s->types);
  g_free (s);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Scrape, scrape_free)

/* The metric a sample belongs to: histograms' series share its name. */
static char *
family_of (const char *name, GHashTable *types)
{
  static const char *const suffixes[] = { "_bucket", "_sum", "_count" };

  if (g_hash_table_contains (types, name))
    return g_strdup (name);
  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    if (g_str_has_suffix (name, suffixes[i]))
      return g_strndup (name, strlen (name) - strlen (suffixes[i]));
  return g_strdup (name);
}

/* GET url/metrics; asserts the content type and that every line is a
 * comment or `name{labels} value` of a metric with a TYPE line. */
static Scrape *
scrape (JwTestEnv *env, const char *base)
{
  g_autofree char *url = g_strconcat (base, "/metrics", NULL);
  g_autoptr (JwReply) r = jw_http (env, "GET", url, NULL, NULL, NULL);
  g_autoptr (GRegex) re = g_regex_new (
      "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
      "(\\{(?:[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\]|\\\\.)*\",?)*\\})?"
      " (\\S+)$",
      0, 0, NULL);
  g_auto (GStrv) lines = NULL;
  g_autofree char *text = NULL;
  Scrape *s = g_new0 (Scrape, 1);
  const char *ctype;
  gsize len;

  g_assert_cmpuint (r->status, ==, 200);
  ctype = soup_message_headers_get_one (r->headers, "Content-Type");
  g_assert_nonnull (ctype);
  g_assert_true (g_str_has_prefix (ctype, "text/plain; version=0.0.4"));
  text =
      g_strndup (g_bytes_get_data (r->body, &len), g_bytes_get_size (r->body));
  g_assert_cmpuint (strlen (text), ==, len);

  s->samples = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  s->types = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autoptr (GMatchInfo) mi = NULL;
      g_autofree char *name = NULL;
      g_autofree char *labels = NULL;
      g_autofree char *value = NULL;
      g_autofree char *family = NULL;
      double *v;
      char *end;

      if (lines[i][0] == '\0')
        continue;
      if (g_str_has_prefix (lines[i], "# TYPE "))
        {
          g_auto (GStrv) f = g_strsplit (lines[i] + 7, " ", 2);

          g_assert_nonnull (f[1]);
          g_hash_table_replace (s->types, g_strdup (f[0]), g_strdup (f[1]));
          continue;
        }
      if (lines[i][0] == '#')
        continue;
      if (!g_regex_match (re, lines[i], 0, &mi))
        g_error ("not a sample line in %s: %s", url, lines[i]);
      name = g_match_info_fetch (mi, 1);
      labels = g_match_info_fetch (mi, 2);
      value = g_match_info_fetch (mi, 3);
      family = family_of (name, s->types);
      if (!g_hash_table_contains (s->types, family))
        g_error ("sample without a TYPE line in %s: %s", url, lines[i]);
      v = g_new (double, 1);
      if (g_str_equal (value, "+Inf"))
        *v = G_MAXDOUBLE;
      else
        {
          *v = g_ascii_strtod (value, &end);
          if (*end != '\0')
            g_error ("not a number in %s: %s", url, lines[i]);
        }
      g_hash_table_replace (s->samples, g_strconcat (name, labels, NULL), v);
    }
  return s;
}

/* The value of a sample; fails when it is missing. */
static double
sample (Scrape *s, const char *key)
{
  double *v = g_hash_table_lookup (s->samples, key);

  if (v == NULL)
    g_error ("no sample %s", key);
  return *v;
}

static double
sample_or (Scrape *s, const char *key, double fallback)
{
  double *v = g_hash_table_lookup (s->samples, key);

  return v ? *v : fallback;
}

typedef struct
{
  double le;
  const char *key; /* the sample's key, as written */
} Bucket;

static gint
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = ((const Bucket *)a)->le, y = ((const Bucket *)b)->le;

  return x < y ? -1 : x > y;
}

/* A histogram's buckets never decrease, and the +Inf one equals _count. */
static void
assert_histogram (Scrape *s, const char *name)
{
  g_autofree char *prefix = g_strconcat (name, "_bucket{le=\"", NULL);
  g_autofree char *inf = g_strconcat (prefix, "+Inf\"}", NULL);
  g_autofree char *count = g_strconcat (name, "_count", NULL);
  g_autofree char *sum = g_strconcat (name, "_sum", NULL);
  g_autoptr (GArray) les = g_array_new (FALSE, FALSE, sizeof (Bucket));
  GHashTableIter iter;
  const char *key;
  double prev = -1;

  g_assert_cmpstr (g_hash_table_lookup (s->types, name), ==, "histogram");
  g_hash_table_iter_init (&iter, s->samples);
  while (g_hash_table_iter_next (&iter, (gpointer *)&key, NULL))
    if (g_str_has_prefix (key, prefix) && !g_str_equal (key, inf))
      {
        Bucket b = { g_ascii_strtod (key + strlen (prefix), NULL), key };

        g_array_append_val (les, b);
      }
  g_assert_cmpuint (les->len, >=, 2);
  g_array_sort (les, cmp_double);
  for (guint i = 0; i < les->len; i++)
    {
      double v = sample (s, g_array_index (les, Bucket, i).key);

      g_assert_cmpfloat (v, >=, prev);
      prev = v;
    }
  g_assert_cmpfloat (sample (s, inf), >=, prev);
  g_assert_cmpfloat (sample (s, inf), ==, sample (s, count));
  g_assert_cmpfloat (sample (s, sum), >=, 0);
}

/* An SSE request on a plain socket, left open: returns the connection once
 * the response head is in. */
static GSocketConnection *
sse_open (JwTestEnv *env, const char *id)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *req =
      g_strdup_printf ("GET /jobs/%s/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Accept: text/event-stream\r\n\r\n",
                       id);
  GSocketConnection *conn;
  GString *head = g_string_new (NULL);
  char c;

  conn = g_socket_client_connect_to_host (client, "127.0.0.1", env->pusher_port,
                                          NULL, &error);
  g_assert_no_error (error);
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)),
                             req, strlen (req), NULL, NULL, &error);
  g_assert_no_error (error);
  while (!g_str_has_suffix (head->str, "\r\n\r\n") && head->len < 8192)
    {
      gssize n = g_input_stream_read (
          g_io_stream_get_input_stream (G_IO_STREAM (conn)), &c, 1, NULL,
          &error);

      g_assert_no_error (error);
      g_assert_cmpint (n, ==, 1);
      g_string_append_c (head, c);
    }
  g_assert_true (g_str_has_prefix (head->str, "HTTP/1.1 200"));
  g_string_free (head, TRUE);
  return conn;
}

static void
test_metrics_after_streams (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autofree char *id = jw_submit (env, SLEEP_JOB);
  g_autofree char *sub = NULL;
  g_autoptr (JwWs) ws = jw_ws_connect (env);
  g_autoptr (GSocketConnection) raw = NULL;
  g_autoptr (JwSse) sse = NULL;
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (Scrape) p = NULL;
  g_autoptr (Scrape) a = NULL;
  guint ws_events = 0;
  gboolean ended = FALSE, open_seen = FALSE;
  gint64 deadline;
  JsonObject *f;

  /* With an SSE stream and a WebSocket open, both transports count. */
  raw = sse_open (env, id);
  sub =
      g_strdup_printf ("{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":0}", id);
  jw_ws_send (ws, sub);
  f = jw_ws_next (ws, 10000);
  g_assert_nonnull (f);
  g_assert_cmpstr (jw_json_get_string (f, "op"), ==, "subscribed");
  deadline = jw_deadline (10000);
  while (!open_seen && g_get_monotonic_time () < deadline)
    {
      g_autoptr (Scrape) s = scrape (env, env->pusher_url);

      g_assert_cmpstr (
          g_hash_table_lookup (s->types, "jobwire_pusher_connections"), ==,
          "gauge");
      open_seen =
          sample (s, "jobwire_pusher_connections{transport=\"sse\"}") >= 1
          && sample (s, "jobwire_pusher_connections{transport=\"ws\"}") >= 1
          && sample (s, "jobwire_pusher_channels") >= 1;
      if (!open_seen)
        jw_iterate (100);
    }
  g_assert_true (open_seen);

  /* The job's events arrive over the WebSocket until the terminal one. */
  while (!ended && (f = jw_ws_next (ws, 15000)) != NULL)
    {
      const char *type = jw_json_get_string (f, "type");

      g_assert_null (jw_json_get_string (f, "op"));
      ws_events++;
      ended = g_strcmp0 (type, "succeeded") == 0;
    }
  g_assert_true (ended);
  g_clear_object (&raw);

  /* And once more over SSE, from the start. */
  sse = jw_sse_read (env, id, NULL, NULL, 0, 10000);
  g_assert_true (sse->ended);
  g_assert_cmpuint (sse->events->len, ==, ws_events);
  snap = jw_wait_job (env, id, "succeeded", 10000);
  g_assert_nonnull (snap);

  /* The pusher counted at least what the two clients received (the
   * raw SSE stream got some too); every event it received was live. */
  p = scrape (env, env->pusher_url);
  g_assert_cmpfloat (sample (p, "jobwire_pusher_events_delivered_total"), >=,
                     ws_events + sse->events->len);
  g_assert_cmpfloat (sample (p, "jobwire_pusher_events_received_total"), >=, 1);
  g_assert_cmpfloat (sample (p, "jobwire_pusher_written_bytes_total"), >, 0);
  g_assert_cmpfloat (sample (p, "jobwire_pusher_coalesced_total"), ==, 0);
  g_assert_cmpfloat (sample (p, "jobwire_pusher_slow_disconnects_total"), ==,
                     0);
  g_assert_cmpstr (
      g_hash_table_lookup (p->types, "jobwire_pusher_events_delivered_total"),
      ==, "counter");
  assert_histogram (p, "jobwire_pusher_delivery_seconds");
  g_assert_cmpfloat (sample (p, "jobwire_pusher_delivery_seconds_count"), >=,
                     ws_events + sse->events->len);
  g_assert_cmpfloat (
      sample (p, "jobwire_pusher_backlog_connections{le=\"+Inf\"}"), ==,
      sample (p, "jobwire_pusher_connections{transport=\"sse\"}")
          + sample (p, "jobwire_pusher_connections{transport=\"ws\"}"));
  g_assert_cmpfloat (sample (p, "jobwire_pusher_backlog_max_bytes"), <=,
                     sample (p, "jobwire_pusher_backlog_bytes"));

  /* The api: the submission, the broker's figures (from a ping each
   * second, so wait for one after the job ended). */
  deadline = jw_deadline (10000);
  while (TRUE)
    {
      g_clear_pointer (&a, scrape_free);
      a = scrape (env, env->api_url);
      if (sample_or (a, "jobwire_jobs_finished_total{state=\"succeeded\"}", 0)
              >= 1
          || g_get_monotonic_time () >= deadline)
        break;
      jw_iterate (200);
    }
  g_assert_cmpfloat (sample (a, "jobwire_broker_up"), ==, 1);
  g_assert_cmpfloat (
      sample (a, "jobwire_jobs_finished_total{state=\"succeeded\"}"), >=, 1);
  g_assert_cmpfloat (
      sample (a, "jobwire_jobs_finished_total{state=\"failed\"}"), ==, 0);
  g_assert_cmpfloat (sample (a, "jobwire_jobs{state=\"queued\"}"), ==, 0);
  g_assert_cmpfloat (sample (a, "jobwire_jobs{state=\"running\"}"), ==, 0);
  g_assert_cmpfloat (sample (a, "jobwire_queue_depth"), ==, 0);
  g_assert_cmpfloat (sample (a, "jobwire_workers"), ==, 1);
  g_assert_cmpfloat (sample (a, "jobwire_broker_events_recorded_total"), >=,
                     ws_events);
  g_assert_cmpfloat (sample (a, "jobwire_broker_stale_events_total"), ==, 0);
  g_assert_cmpfloat (sample (a, "jobwire_api_requests_total{method=\"POST\","
                                "route=\"/jobs\",status=\"2xx\"}"),
                     ==, 1);
  g_assert_cmpfloat (sample (a, "jobwire_api_requests_total{method=\"GET\","
                                "route=\"/jobs/{id}\",status=\"2xx\"}"),
                     >=, 1);
  assert_histogram (a, "jobwire_api_submit_seconds");
  g_assert_cmpfloat (sample (a, "jobwire_api_submit_seconds_count"), ==, 1);
}

static void
test_metrics_method (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (0);
  g_autofree char *api = g_strconcat (env->api_url, "/metrics", NULL);
  g_autofree char *pusher = g_strconcat (env->pusher_url, "/metrics", NULL);
  g_autoptr (JwReply) r1 = jw_http (env, "POST", api, NULL, NULL, NULL);
  g_autoptr (JwReply) r2 = jw_http (env, "POST", pusher, NULL, NULL, NULL);

  jw_assert_error (r1, 405, "method_not_allowed");
  jw_assert_error (r2, 405, "method_not_allowed");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/metrics/after-sse-and-ws", test_metrics_after_streams);
  g_test_add_func ("/metrics/get-only", test_metrics_method);
  return g_test_run ();
}
