/* bench-util: what the load clients of bench/ share: clocks, addresses,
 * WebSocket client frames and what /proc tells of a server process. */
#pragma once

#include <glib.h>
#include <sys/socket.h>
#include <time.h>

G_BEGIN_DECLS

/* The time of clock in µs. */
gint64 bench_now_us (clockid_t clock);

/* "http://HOST:PORT[/…]" into an address and "HOST:PORT". */
gboolean bench_parse_url (const char *url, struct sockaddr_storage *addr,
                          socklen_t *len, char *hostport, gsize hostport_size);

/* A masked client frame (RFC 6455 5.3) of opcode with payload, written to
 * frame (size bytes): its length, or 0 when it does not fit. */
gsize bench_ws_frame (guint8 *frame, gsize size, guint8 opcode,
                      const char *payload, gsize len);

/* The head of the frame at data, len bytes of it received: the first byte
 * (FIN and opcode) in *first, the payload length in *payload, and the
 * head's own length as the result; 0 when the head or its payload is not
 * all there yet. A server frame is never masked: *masked tells. */
gsize bench_ws_frame_head (const guint8 *data, gsize len, guint8 *first,
                           gboolean *masked, guint64 *payload);

/* utime + stime of process pid, in clock ticks. */
gboolean bench_proc_ticks (int pid, guint64 *ticks);
/* VmRSS of process pid, in KiB. */
gboolean bench_proc_rss (int pid, guint64 *kib);

G_END_DECLS
