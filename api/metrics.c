#include "metrics.h"

#include "jw-json.h"
#include "jw-metrics.h"

#include <string.h>

static const char *const methods[] = { "GET", "POST", "DELETE", "OPTIONS",
                                       "other" };
/* Routes as templates, so that job ids do not make a series each. */
static const char *const routes[] = { "/jobs",    "/jobs/{id}", "/types",
                                      "/healthz", "/metrics",   "other" };
static const char *const classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };

#define N_METHODS G_N_ELEMENTS (methods)
#define N_ROUTES G_N_ELEMENTS (routes)
#define N_CLASSES G_N_ELEMENTS (classes)

/* Seconds from a submission read to its 202 written. */
static const double submit_bounds[] = {
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
  0.1,    0.25,  0.5,    1,     2.5,  5,     10,
};

static struct
{
  guint64 requests[N_METHODS][N_ROUTES][N_CLASSES];
  JwHistogram submit;
} metrics;

void
jw_api_metrics_init (void)
{
  memset (&metrics, 0, sizeof metrics);
  jw_histogram_init (&metrics.submit, submit_bounds,
                     G_N_ELEMENTS (submit_bounds));
}

static guint
route_of (const char *path)
{
  if (path == NULL)
    return N_ROUTES - 1;
  if (g_str_equal (path, "/jobs"))
    return 0;
  if (g_str_has_prefix (path, "/jobs/")
      && strchr (path + strlen ("/jobs/"), '/') == NULL)
    return 1;
  for (guint i = 2; i < N_ROUTES - 1; i++)
    if (g_str_equal (path, routes[i]))
      return i;
  return N_ROUTES - 1;
}

void
jw_api_metrics_request (const char *method, const char *path, guint status,
                        gint64 read_at)
{
  guint m = 0, r = route_of (path);

  if (status < 100 || status > 599)
    return; /* never answered: the client went away */
  while (m < N_METHODS - 1 && g_strcmp0 (method, methods[m]) != 0)
    m++;
  metrics.requests[m][r][status / 100 - 1]++;
  if (r == 0 && status == 202 && g_strcmp0 (method, "POST") == 0 && read_at > 0)
    jw_histogram_observe (&metrics.submit, (g_get_monotonic_time () - read_at)
                                               / (double)G_USEC_PER_SEC);
}

static void
broker_int (GString *out, JsonObject *ping, const char *member,
            const char *name, const char *type, const char *help)
{
  gint64 value;

  if (ping == NULL || !jw_json_get_int (ping, member, &value))
    return;
  jw_metrics_head (out, name, type, help);
  jw_metrics_sample (out, name, NULL, value);
}

char *
jw_api_metrics_text (JwBrokerLink *link, gsize *len)
{
  GString *out = g_string_sized_new (4096);
  gboolean up = jw_broker_link_connected (link);
  JsonObject *ping = jw_broker_link_last_ping (link);
  JsonObject *finished = NULL;
  gint64 queued, running;

  jw_metrics_head (out, "jobwire_api_requests_total", "counter",
                   "HTTP requests answered by the api, by method, route "
                   "and status class. Requests refused before their body "
                   "was read and requests whose client went away are not "
                   "counted.");
  for (guint m = 0; m < N_METHODS; m++)
    for (guint r = 0; r < N_ROUTES; r++)
      for (guint c = 0; c < N_CLASSES; c++)
        {
          g_autofree char *labels = NULL;

          if (metrics.requests[m][r][c] == 0)
            continue;
          labels = g_strdup_printf ("method=\"%s\",route=\"%s\",status=\"%s\"",
                                    methods[m], routes[r], classes[c]);
          jw_metrics_sample (out, "jobwire_api_requests_total", labels,
                             metrics.requests[m][r][c]);
        }
  jw_metrics_histogram (
      out, "jobwire_api_submit_seconds",
      "Job submissions answered 202: from the request read in full (body "
      "included) until the 202 answer was written.",
      &metrics.submit);

  jw_metrics_head (out, "jobwire_broker_up", "gauge",
                   "1 when the broker answered the api's pings in the last "
                   "3 seconds, else 0; the broker figures below are those "
                   "of its last answer.");
  jw_metrics_sample (out, "jobwire_broker_up", NULL, up ? 1 : 0);
  if (ping == NULL)
    goto out;

  if (jw_json_get_int (ping, "queued", &queued)
      && jw_json_get_int (ping, "running", &running))
    {
      jw_metrics_head (out, "jobwire_jobs", "gauge",
                       "Jobs that have not ended, by state: queued (waiting "
                       "for a worker, the queue depth) and running.");
      jw_metrics_sample (out, "jobwire_jobs", "state=\"queued\"", queued);
      jw_metrics_sample (out, "jobwire_jobs", "state=\"running\"", running);
    }
  broker_int (out, ping, "queued", "jobwire_queue_depth", "gauge",
              "Jobs waiting for a worker.");
  broker_int (out, ping, "workers", "jobwire_workers", "gauge",
              "Workers connected to the broker.");

  if (json_object_has_member (ping, "finished"))
    finished = jw_json_node_object (json_object_get_member (ping, "finished"));
  if (finished != NULL)
    {
      static const char *const states[] = { "succeeded", "failed",
                                            "cancelled" };

      jw_metrics_head (out, "jobwire_jobs_finished_total", "counter",
                       "Jobs that ended, by final state, since the broker "
                       "process started.");
      for (guint i = 0; i < G_N_ELEMENTS (states); i++)
        {
          g_autofree char *labels = g_strdup_printf ("state=\"%s\"", states[i]);
          gint64 value = 0;

          jw_json_get_int (finished, states[i], &value);
          jw_metrics_sample (out, "jobwire_jobs_finished_total", labels, value);
        }
    }
  broker_int (out, ping, "events_recorded",
              "jobwire_broker_events_recorded_total", "counter",
              "Job events the broker recorded and published since its "
              "process started; its rate is events per second.");
  broker_int (out, ping, "stale_events", "jobwire_broker_stale_events_total",
              "counter",
              "Worker events the broker ignored as stale (for an attempt "
              "or job the worker no longer holds) since its process "
              "started.");
  broker_int (out, ping, "zap_refused", "jobwire_broker_zap_refused_total",
              "counter",
              "ZeroMQ handshakes on tcp:// endpoints the broker refused "
              "(a CURVE key not in its allow-list) since its process "
              "started.");

out:
  *len = out->len;
  return g_string_free (out, FALSE);
}
