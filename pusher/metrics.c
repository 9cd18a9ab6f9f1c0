#include "metrics.h"

#include "channel.h"
#include "conn.h"

#include <string.h>

JwPusherMetrics jw_pusher_metrics;

/* Seconds from an event queued for a connection to its last byte written. */
static const double delivery_bounds[] = {
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
  0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,
};

/* Queued bytes of an open connection, bucket bounds of the backlog gauge. */
static const double backlog_bounds[] = {
  0, 1024, 4096, 16384, 65536, 262144, 1048576,
};

void
jw_pusher_metrics_init (void)
{
  memset (&jw_pusher_metrics, 0, sizeof jw_pusher_metrics);
  jw_histogram_init (&jw_pusher_metrics.delivery, delivery_bounds,
                     G_N_ELEMENTS (delivery_bounds));
}

static void
counter (GString *out, const char *name, const char *help, guint64 value)
{
  jw_metrics_head (out, name, "counter", help);
  jw_metrics_sample (out, name, NULL, value);
}

static void
gauge (GString *out, const char *name, const char *help, double value)
{
  jw_metrics_head (out, name, "gauge", help);
  jw_metrics_sample (out, name, NULL, value);
}

char *
jw_pusher_metrics_text (guint polls, gsize *len)
{
  const JwPusherMetrics *m = &jw_pusher_metrics;
  GString *out = g_string_sized_new (4096);
  JwConnStats st;
  guint64 cumulative = 0;

  jw_conns_stats (&st, backlog_bounds, G_N_ELEMENTS (backlog_bounds));

  jw_metrics_head (out, "jobwire_pusher_connections", "gauge",
                   "Open client connections by transport: SSE streams "
                   "(single and multi-job), WebSocket connections, and "
                   "long-polls waiting for an answer.");
  jw_metrics_sample (out, "jobwire_pusher_connections", "transport=\"sse\"",
                     st.sse);
  jw_metrics_sample (out, "jobwire_pusher_connections", "transport=\"ws\"",
                     st.ws);
  jw_metrics_sample (out, "jobwire_pusher_connections", "transport=\"poll\"",
                     polls);
  gauge (out, "jobwire_pusher_channels",
         "Jobs watched: one channel per job with at least one subscriber.",
         jw_channels_count ());
  counter (out, "jobwire_pusher_events_received_total",
           "Live events received from the broker's event stream (history "
           "read for catch-up is not counted).",
           m->events_received);
  counter (out, "jobwire_pusher_events_delivered_total",
           "Events delivered to clients: for SSE and WebSocket when the "
           "event's last byte was written to the socket, for long-polls "
           "when the answer holding it was handed to the HTTP server.",
           m->events_delivered);
  counter (out, "jobwire_pusher_written_bytes_total",
           "Bytes written to SSE and WebSocket sockets, plus the bodies of "
           "long-poll answers.",
           m->bytes_written);
  counter (out, "jobwire_pusher_coalesced_total",
           "Progress events replaced in a slow client's queue by a newer "
           "progress event of the same job.",
           m->coalesced);
  counter (out, "jobwire_pusher_slow_disconnects_total",
           "Clients disconnected because their backlog passed max-backlog "
           "or stayed past half of it for slow-s seconds.",
           m->slow_disconnected);

  jw_metrics_head (out, "jobwire_pusher_backlog_connections", "gauge",
                   "Open SSE and WebSocket connections whose queued, "
                   "unwritten bytes are at most le, at the time of the scrape "
                   "(cumulative).");
  for (guint i = 0; i <= G_N_ELEMENTS (backlog_bounds); i++)
    {
      g_autofree char *labels = NULL;

      cumulative += st.backlog[i];
      if (i < G_N_ELEMENTS (backlog_bounds))
        labels = g_strdup_printf ("le=\"%.0f\"", backlog_bounds[i]);
      else
        labels = g_strdup ("le=\"+Inf\"");
      jw_metrics_sample (out, "jobwire_pusher_backlog_connections", labels,
                         cumulative);
    }
  gauge (out, "jobwire_pusher_backlog_bytes",
         "Bytes queued and not yet written, over all open connections.",
         st.backlog_total);
  gauge (out, "jobwire_pusher_backlog_max_bytes",
         "Bytes queued and not yet written on the connection with the "
         "largest backlog.",
         st.backlog_max);

  jw_metrics_histogram (
      out, "jobwire_pusher_delivery_seconds",
      "Time an SSE or WebSocket event spent in the pusher: from when it was "
      "queued for a connection (for a coalesced progress event, when the "
      "event it replaced was queued) until its last byte was written to the "
      "socket. Time before the pusher received the event is not included.",
      &m->delivery);

  *len = out->len;
  return g_string_free (out, FALSE);
}
