/* metrics: the api's request counters and submit latency, with the
 * broker's figures from its last ping reply, as Prometheus text. */
#pragma once

#include <glib.h>

#include "broker-link.h"

G_BEGIN_DECLS

void jw_api_metrics_init (void);
/* A request answered in full: method, path as requested, its status, and
 * when it was read (monotonic µs, 0 when unknown). */
void jw_api_metrics_request (const char *method, const char *path, guint status,
                             gint64 read_at);
/* The whole exposition. */
char *jw_api_metrics_text (JwBrokerLink *link, gsize *len);

G_END_DECLS
