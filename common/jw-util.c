/* jw-util: names of job states and event types, and time stamps. */
#include "jw-util.h"

#include <string.h>

static const char *const state_names[] = {
  [JW_STATE_QUEUED] = "queued",       [JW_STATE_RUNNING] = "running",
  [JW_STATE_SUCCEEDED] = "succeeded", [JW_STATE_FAILED] = "failed",
  [JW_STATE_CANCELLED] = "cancelled",
};

const char *
jw_state_to_string (JwState state)
{
  g_return_val_if_fail (state <= JW_STATE_CANCELLED, "unknown");
  return state_names[state];
}

gboolean
jw_state_from_string (const char *str, JwState *out)
{
  for (guint i = 0; str != NULL && i < G_N_ELEMENTS (state_names); i++)
    {
      if (strcmp (str, state_names[i]) == 0)
        {
          *out = (JwState)i;
          return TRUE;
        }
    }
  return FALSE;
}

gboolean
jw_state_is_terminal (JwState state)
{
  return state == JW_STATE_SUCCEEDED || state == JW_STATE_FAILED
         || state == JW_STATE_CANCELLED;
}

gboolean
jw_event_type_valid (const char *type)
{
  static const char *const types[] = {
    "queued",    "started", "progress",  "retrying",
    "succeeded", "failed",  "cancelled",
  };

  for (guint i = 0; type != NULL && i < G_N_ELEMENTS (types); i++)
    if (strcmp (type, types[i]) == 0)
      return TRUE;
  return FALSE;
}

gboolean
jw_event_type_is_terminal (const char *type)
{
  return type != NULL
         && (strcmp (type, "succeeded") == 0 || strcmp (type, "failed") == 0
             || strcmp (type, "cancelled") == 0);
}

gint64
jw_now_ms (void)
{
  return g_get_real_time () / 1000;
}

char *
jw_time_format_ms (gint64 ms)
{
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (ms / 1000);

  if (dt == NULL)
    return g_strdup ("1970-01-01T00:00:00.000Z");
  return g_strdup_printf (
      "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", g_date_time_get_year (dt),
      g_date_time_get_month (dt), g_date_time_get_day_of_month (dt),
      g_date_time_get_hour (dt), g_date_time_get_minute (dt),
      g_date_time_get_second (dt), (int)(ms % 1000));
}
