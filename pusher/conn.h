/* conn: browser connections the pusher has taken over from libsoup. All
 * of them are watched through one epoll descriptor, which is one GSource
 * in the main loop; each has an output queue of shared buffers, bounded,
 * and one periodic tick looks after keep-alives, pings and timeouts. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _JwConn JwConn;

typedef enum
{
  JW_CONN_SSE,
  JW_CONN_WS,
} JwConnKind;

typedef struct
{
  guint keepalive_s; /* SSE comment after this much silence */
  guint ping_s;      /* WebSocket ping interval; closed when 2 more pass
                         * without a pong */
  gsize max_backlog; /* queued bytes past which a connection is ended */
  gsize max_message; /* largest WebSocket message accepted */
  guint close_s;     /* how long a closing connection may take */
  /* Past max_backlog / 2 progress events are coalesced; a connection that
   * stays past it this long is closed as too slow (0: never). */
  guint slow_s;
  /* SO_SNDBUF of each connection (0: the kernel's autotuning, which lets
   * a client that never reads hold megabytes of kernel memory before the
   * backlog above starts to grow). */
  guint send_buffer;
} JwConnLimits;

typedef struct
{
  /* A whole text message from a WebSocket client. */
  void (*ws_text) (JwConn *conn, const char *data, gsize len,
                   gpointer user_data);
  /* conn is about to be freed: drop every reference to it. Never called
   * from inside jw_conn_send() and friends. */
  void (*closed) (JwConn *conn, gpointer user_data);
} JwConnCallbacks;

/* Creates the epoll source on the thread-default main context. */
gboolean jw_conns_start (const JwConnLimits *limits,
                         const JwConnCallbacks *callbacks, gpointer user_data,
                         GError **error);
/* Closes every connection (WebSocket ones with 1001 going away, best
 * effort) and removes the source. */
void jw_conns_stop (void);
/* Keep-alives, pings and timeouts; call once a second. */
void jw_conns_tick (void);
guint jw_conns_count (void);

typedef struct
{
  guint sse; /* open connections (not yet closing or gone) by kind */
  guint ws;
  gsize backlog_total; /* queued bytes over open connections */
  gsize backlog_max;
  guint backlog[16 + 1]; /* connections per bucket of bounds, then above */
} JwConnStats;

/* Counts the open connections; bounds ascending, at most 16 of them. */
void jw_conns_stats (JwConnStats *stats, const double *bounds, guint n);
/* Runs func (data) on the next loop turn, from the connection source, at
 * a point where no delivery is under way. */
void jw_conns_defer (GSourceFunc func, gpointer data);

/* Takes over fd (a connected, non-blocking stream socket). */
JwConn *jw_conn_new (int fd, JwConnKind kind);
JwConnKind jw_conn_kind (JwConn *self);
/* FALSE once the connection is closing or gone: sends are then ignored. */
gboolean jw_conn_is_open (JwConn *self);
gpointer jw_conn_get_data (JwConn *self);
void jw_conn_set_data (JwConn *self, gpointer data);

/* Queues bytes (shared, not copied). Past the backlog limit the client is
 * too slow: what is queued and not started is dropped, an SSE connection
 * ends with the comment ": disconnected: too slow", a WebSocket one closes
 * with 1008 "too slow". */
void jw_conn_send (JwConn *self, GBytes *bytes);
/* Queues the encoding of one event of job. Past half the backlog limit a
 * progress event replaces the job's newest queued event when that is a
 * progress event not yet started (so seq keeps increasing, with gaps only
 * between progress events). */
void jw_conn_send_event (JwConn *self, GBytes *bytes, const char *job,
                         gboolean progress);
void jw_conn_send_data (JwConn *self, const void *data, gsize len);
/* A WebSocket text frame. */
void jw_conn_send_text (JwConn *self, const char *text, gsize len);
/* Shuts the connection down once everything queued is written. */
void jw_conn_end (JwConn *self);
/* Sends a WebSocket close frame, then ends the connection. */
void jw_conn_ws_close (JwConn *self, guint16 code, const char *reason);
/* Drops the connection now, discarding what is queued. */
void jw_conn_abort (JwConn *self);
/* Calls func (data) once the connection is closed and freed. */
void jw_conn_on_free (JwConn *self, GDestroyNotify func, gpointer data);

G_END_DECLS
