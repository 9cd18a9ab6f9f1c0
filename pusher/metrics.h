/* metrics: the pusher's counters, bumped where things happen (conn.c,
 * pusher.c) and written as Prometheus text at /metrics. */
#pragma once

#include "jw-metrics.h"

G_BEGIN_DECLS

typedef struct
{
  guint64 events_received;   /* live events from the broker */
  guint64 events_delivered;  /* to a client: written whole, or answered */
  guint64 bytes_written;     /* to taken-over sockets, and poll answers */
  guint64 coalesced;         /* progress events replaced by newer ones */
  guint64 slow_disconnected; /* clients closed as too slow */
  JwHistogram delivery;      /* seconds, queued → written */
} JwPusherMetrics;

extern JwPusherMetrics jw_pusher_metrics;

void jw_pusher_metrics_init (void);
/* The whole exposition; polls is the number of waiting long-polls. */
char *jw_pusher_metrics_text (guint polls, gsize *len);

G_END_DECLS
