/* jw-metrics: counters and fixed-bucket histograms written in the
 * Prometheus text exposition format, version 0.0.4. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define JW_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define JW_HISTOGRAM_MAX_BUCKETS 16

/* Observations counted per bucket (not cumulative: the text is); the last
 * slot counts what is above every bound. */
typedef struct
{
  const double *bounds; /* ascending, n of them; static */
  guint n;
  guint64 counts[JW_HISTOGRAM_MAX_BUCKETS + 1];
  guint64 count;
  double sum;
} JwHistogram;

void jw_histogram_init (JwHistogram *h, const double *bounds, guint n);
void jw_histogram_observe (JwHistogram *h, double value);

/* "# HELP" and "# TYPE" lines. */
void jw_metrics_head (GString *out, const char *name, const char *type,
                      const char *help);
/* One sample; labels is NULL or the text between the braces. */
void jw_metrics_sample (GString *out, const char *name, const char *labels,
                        double value);
/* The head, then cumulative _bucket lines, _sum and _count. */
void jw_metrics_histogram (GString *out, const char *name, const char *help,
                           const JwHistogram *h);

G_END_DECLS
