#include "jw-metrics.h"

#include <math.h>
#include <string.h>

void
jw_histogram_init (JwHistogram *h, const double *bounds, guint n)
{
  g_return_if_fail (n <= JW_HISTOGRAM_MAX_BUCKETS);
  memset (h, 0, sizeof *h);
  h->bounds = bounds;
  h->n = n;
}

void
jw_histogram_observe (JwHistogram *h, double value)
{
  guint i = 0;

  while (i < h->n && value > h->bounds[i])
    i++;
  h->counts[i]++;
  h->count++;
  h->sum += value;
}

void
jw_metrics_head (GString *out, const char *name, const char *type,
                 const char *help)
{
  g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                          type);
}

static void
append_number (GString *out, double value)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (isinf (value))
    g_string_append (out, value > 0 ? "+Inf" : "-Inf");
  else if (value > -9e15 && value < 9e15 && value == (double)(gint64)value)
    g_string_append_printf (out, "%" G_GINT64_FORMAT, (gint64)value);
  else
    g_string_append (out, g_ascii_formatd (buf, sizeof buf, "%.15g", value));
}

void
jw_metrics_sample (GString *out, const char *name, const char *labels,
                   double value)
{
  g_string_append (out, name);
  if (labels != NULL)
    g_string_append_printf (out, "{%s}", labels);
  g_string_append_c (out, ' ');
  append_number (out, value);
  g_string_append_c (out, '\n');
}

void
jw_metrics_histogram (GString *out, const char *name, const char *help,
                      const JwHistogram *h)
{
  guint64 cumulative = 0;

  jw_metrics_head (out, name, "histogram", help);
  for (guint i = 0; i <= h->n; i++)
    {
      cumulative += h->counts[i];
      g_string_append_printf (out, "%s_bucket{le=\"", name);
      append_number (out, i < h->n ? h->bounds[i] : INFINITY);
      g_string_append_printf (out, "\"} %" G_GUINT64_FORMAT "\n", cumulative);
    }
  g_string_append_printf (out, "%s_sum ", name);
  append_number (out, h->sum);
  g_string_append_printf (out, "\n%s_count %" G_GUINT64_FORMAT "\n", name,
                          h->count);
}
