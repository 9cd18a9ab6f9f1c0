/* jw-util: job states, event types, time stamps and error codes shared by
 * every process. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  JW_STATE_QUEUED,
  JW_STATE_RUNNING,
  JW_STATE_SUCCEEDED,
  JW_STATE_FAILED,
  JW_STATE_CANCELLED,
} JwState;

const char *jw_state_to_string (JwState state);
gboolean jw_state_from_string (const char *str, JwState *out);
gboolean jw_state_is_terminal (JwState state);

/* Event types: queued started progress retrying succeeded failed cancelled. */
gboolean jw_event_type_valid (const char *type);
gboolean jw_event_type_is_terminal (const char *type);

/* Wall clock in milliseconds since the epoch. */
gint64 jw_now_ms (void);
/* RFC 3339 UTC with milliseconds: 2026-12-03T13:41:16.123Z */
char *jw_time_format_ms (gint64 ms);

G_END_DECLS
