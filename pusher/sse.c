/* sse: encodes Server-Sent Events frames once per event, and parses the
 * resume point a reconnecting client sends. */
#include "sse.h"

#include <string.h>

#define MAX_SEQ (G_GINT64_CONSTANT (1) << 53)

GBytes *
jw_sse_frame_new (gint64 seq, const char *type, const char *json, gsize len)
{
  GString *s = g_string_sized_new (len + 48);
  gsize start = 0;

  g_string_append_printf (s, "id: %" G_GINT64_FORMAT "\nevent: %s\n", seq,
                          type);
  /* Compact JSON has no raw line breaks, but a stray one must not end the
   * event early or inject a field. */
  for (gsize i = 0; i <= len; i++)
    {
      if (i == len || json[i] == '\n' || json[i] == '\r')
        {
          g_string_append_len (s, "data: ", 6);
          g_string_append_len (s, json + start, i - start);
          g_string_append_c (s, '\n');
          if (i + 1 < len && json[i] == '\r' && json[i + 1] == '\n')
            i++;
          start = i + 1;
        }
    }
  g_string_append_c (s, '\n');
  return g_string_free_to_bytes (s);
}

gboolean
jw_sse_parse_seq (const char *str, gint64 *out)
{
  gint64 v = 0;
  const char *p = str;
  gboolean digits = FALSE;

  if (str == NULL)
    return FALSE;
  while (*p == ' ' || *p == '\t')
    p++;
  for (; g_ascii_isdigit (*p); p++)
    {
      v = v * 10 + (*p - '0');
      if (v > MAX_SEQ)
        return FALSE;
      digits = TRUE;
    }
  while (*p == ' ' || *p == '\t')
    p++;
  if (!digits || *p != '\0')
    return FALSE;
  *out = v;
  return TRUE;
}

char *
jw_sse_response_head (const char *extra_headers)
{
  return g_strconcat ("HTTP/1.1 200 OK\r\n"
                      "Content-Type: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\n"
                      "X-Accel-Buffering: no\r\n"
                      "Connection: close\r\n",
                      extra_headers ? extra_headers : "", "\r\n", JW_SSE_RETRY,
                      NULL);
}
