/* sse: Server-Sent Events framing for the pusher's own connections: event
 * frames, comments, and the resume point a client names. Pure functions. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define JW_SSE_KEEPALIVE ": keep-alive\n\n"
#define JW_SSE_RETRY "retry: 2000\n\n"

/* "id: SEQ\nevent: TYPE\ndata: JSON\n\n"; a line break inside json starts
 * another data line, so that any bytes stay one event. */
GBytes *jw_sse_frame_new (gint64 seq, const char *type, const char *json,
                          gsize len);

/* Parses a resume point (Last-Event-ID or ?after=): decimal digits only,
 * at most 2^53, optional surrounding spaces. */
gboolean jw_sse_parse_seq (const char *str, gint64 *out);

/* The response head of an event stream, extra_headers ("Name: value\r\n"
 * lines, may be NULL) included. */
char *jw_sse_response_head (const char *extra_headers);

G_END_DECLS
