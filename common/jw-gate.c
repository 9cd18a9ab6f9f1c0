/* jw-gate: accepts connections for a SoupServer and enforces the limits
 * SoupServer lacks. Each accepted socket is wrapped in a JwGateConn (a
 * GTcpConnection that tells the gate when it closes) and given to
 * soup_server_accept_iostream. Every open connection holds a slot, counted
 * in total and per client address; a connection taken over from libsoup
 * keeps its slot through a hold until its new owner closes it. */
#define _GNU_SOURCE /* accept4 */
#include "jw-gate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH 256
#define PAUSE_MS 200  /* accept pause when no descriptor is left */
#define LINGER_MAX 64 /* refused sockets drained before closing */
#define LINGER_US (2 * G_USEC_PER_SEC)
#define CONN_KEY "jw-gate-conn"

typedef enum
{
  PHASE_WAIT_HEAD, /* a request head is under way (or the first is due) */
  PHASE_REQUEST,   /* head read, request and answer under way */
  PHASE_IDLE,      /* answered, kept alive, no byte of the next request */
  PHASE_DROPPED,   /* shut down by the gate, libsoup to close it */
} Phase;

/* A connection's place under the limits. */
typedef struct
{
  JwGate *gate;
  char *address;
  guint refs;
} Slot;

struct _JwGateHold
{
  Slot *slot;
};

typedef struct
{
  JwGate *gate;
  int fd;
  guint watch;
  gint64 deadline;
} Linger;

struct _JwGate
{
  guint refs; /* the owner, and every slot */
  gboolean stopped;
  JwGateLimits limits;
  GSocket *listen;
  SoupServer *server;
  gulong started_id;
  gulong finished_id;
  guint accept_watch;
  guint pause_id;
  guint tick_id;
  int reserve_fd;       /* /dev/null, given up to refuse at EMFILE */
  int keeper_peer;      /* the silent end of the keep-alive listener */
  guint count;          /* slots */
  GHashTable *per_addr; /* address -> count */
  GHashTable *live;     /* JwGateConn * still in libsoup's hands */
  GHashTable *lingers;  /* Linger * */
  gint64 last_refused_log;
  gint64 last_fd_log;
};

/* ---- connection type ------------------------------------------------ */

#define JW_TYPE_GATE_CONN (jw_gate_conn_get_type ())
G_DECLARE_FINAL_TYPE (JwGateConn, jw_gate_conn, JW, GATE_CONN, GTcpConnection)

typedef struct _JwGateInput JwGateInput;

struct _JwGateConn
{
  GTcpConnection parent;
  Slot *slot; /* NULL once closed */
  GSocketAddress *remote;
  Phase phase;
  gint64 since;       /* monotonic µs: start of the phase */
  JwGateInput *input; /* what libsoup reads, made on first use */
  gboolean ended;     /* the stand-in byte went out, EOF since */
  gint64 orphaned;    /* monotonic µs: the gate ended it while idle */
};

G_DEFINE_FINAL_TYPE (JwGateConn, jw_gate_conn, G_TYPE_TCP_CONNECTION)

static void slot_unref (Slot *slot);

/* ---- input stream --------------------------------------------------- */

/* libsoup 3.2.3 disconnects a kept-alive connection only through the
 * completion of a request, and a request gets one only once a byte of it
 * arrived (soup-server-message-io-http1.c, io_read and started_cb). A
 * client that leaves between requests, or an idle connection the gate
 * ends, would stay in the server's list of clients with its records until
 * the server goes. So the gate reads for libsoup: when the input ends or
 * fails between requests, the socket is shut down and libsoup is handed
 * one byte that no request starts with, then the end. libsoup starts a
 * request with it, fails to parse it, cannot write its 400 to the shut
 * socket, and disconnects as for any broken request. */
#define STAND_IN_BYTE '\0'

#define JW_TYPE_GATE_INPUT (jw_gate_input_get_type ())
G_DECLARE_FINAL_TYPE (JwGateInput, jw_gate_input, JW, GATE_INPUT, GInputStream)

struct _JwGateInput
{
  GInputStream parent;
  GInputStream *base;
  JwGateConn *conn; /* not a reference: the connection owns this */
};

static void gate_input_pollable_init (GPollableInputStreamInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (
    JwGateInput, jw_gate_input, G_TYPE_INPUT_STREAM,
    G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_INPUT_STREAM,
                           gate_input_pollable_init))

/* What a read of the socket that returned n (or failed with local) gives
 * libsoup: the same, except for an end or failure between requests. */
static gssize
gate_input_result (JwGateInput *self, gssize n, void *buffer, gsize count,
                   GError *local, GError **error)
{
  JwGateConn *conn = self->conn;

  if (n > 0 || count == 0 || conn == NULL || conn->phase != PHASE_IDLE
      || g_error_matches (local, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    {
      if (local != NULL)
        g_propagate_error (error, local);
      return n;
    }
  g_debug ("connection input ended between requests address=%s: %s",
           conn->slot ? conn->slot->address : "?",
           local ? local->message : "end of input");
  g_clear_error (&local);
  conn->ended = TRUE;
  g_socket_shutdown (
      g_socket_connection_get_socket (G_SOCKET_CONNECTION (conn)), TRUE, TRUE,
      NULL);
  ((char *)buffer)[0] = STAND_IN_BYTE;
  return 1;
}

static gssize
gate_input_read (GInputStream *stream, void *buffer, gsize count,
                 GCancellable *cancellable, GError **error)
{
  JwGateInput *self = JW_GATE_INPUT (stream);
  GError *local = NULL;
  gssize n;

  if (self->conn != NULL && self->conn->ended)
    return 0;
  n = g_input_stream_read (self->base, buffer, count, cancellable, &local);
  return gate_input_result (self, n, buffer, count, local, error);
}

static gssize
gate_input_read_nonblocking (GPollableInputStream *stream, void *buffer,
                             gsize count, GError **error)
{
  JwGateInput *self = JW_GATE_INPUT (stream);
  GError *local = NULL;
  gssize n;

  if (self->conn != NULL && self->conn->ended)
    return 0;
  n = g_pollable_input_stream_read_nonblocking (
      G_POLLABLE_INPUT_STREAM (self->base), buffer, count, NULL, &local);
  return gate_input_result (self, n, buffer, count, local, error);
}

static gboolean
gate_input_can_poll (GPollableInputStream *stream)
{
  JwGateInput *self = JW_GATE_INPUT (stream);

  return G_IS_POLLABLE_INPUT_STREAM (self->base)
         && g_pollable_input_stream_can_poll (
             G_POLLABLE_INPUT_STREAM (self->base));
}

static gboolean
gate_input_is_readable (GPollableInputStream *stream)
{
  JwGateInput *self = JW_GATE_INPUT (stream);

  return (self->conn != NULL && self->conn->ended)
         || g_pollable_input_stream_is_readable (
             G_POLLABLE_INPUT_STREAM (self->base));
}

static GSource *
gate_input_create_source (GPollableInputStream *stream,
                          GCancellable *cancellable)
{
  JwGateInput *self = JW_GATE_INPUT (stream);
  g_autoptr (GSource) socket_source = g_pollable_input_stream_create_source (
      G_POLLABLE_INPUT_STREAM (self->base), NULL);

  return g_pollable_source_new_full (stream, socket_source, cancellable);
}

static gboolean
gate_input_close (GInputStream *stream, GCancellable *cancellable,
                  GError **error)
{
  /* The socket is the connection's to close. */
  return TRUE;
}

static void
gate_input_finalize (GObject *object)
{
  g_clear_object (&JW_GATE_INPUT (object)->base);
  G_OBJECT_CLASS (jw_gate_input_parent_class)->finalize (object);
}

static void
gate_input_pollable_init (GPollableInputStreamInterface *iface)
{
  iface->can_poll = gate_input_can_poll;
  iface->is_readable = gate_input_is_readable;
  iface->create_source = gate_input_create_source;
  iface->read_nonblocking = gate_input_read_nonblocking;
}

static void
jw_gate_input_class_init (JwGateInputClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gate_input_finalize;
  G_INPUT_STREAM_CLASS (klass)->read_fn = gate_input_read;
  G_INPUT_STREAM_CLASS (klass)->close_fn = gate_input_close;
}

static void
jw_gate_input_init (JwGateInput *self)
{
}

/* ---- connection ----------------------------------------------------- */

static GInputStream *
gate_conn_get_input_stream (GIOStream *stream)
{
  JwGateConn *self = JW_GATE_CONN (stream);

  if (self->input == NULL)
    {
      self->input = g_object_new (JW_TYPE_GATE_INPUT, NULL);
      self->input->base =
          g_object_ref (G_IO_STREAM_CLASS (jw_gate_conn_parent_class)
                            ->get_input_stream (stream));
      self->input->conn = self;
    }
  return G_INPUT_STREAM (self->input);
}

/* The connection leaves libsoup's hands and its slot, unless held. */
static void
gate_conn_forget (JwGateConn *self)
{
  Slot *slot = g_steal_pointer (&self->slot);

  if (slot == NULL)
    return;
  g_hash_table_remove (slot->gate->live, self);
  if (self->remote != NULL)
    g_object_set_data (G_OBJECT (self->remote), CONN_KEY, NULL);
  slot_unref (slot);
}

static gboolean
gate_conn_close (GIOStream *stream, GCancellable *cancellable, GError **error)
{
  gate_conn_forget (JW_GATE_CONN (stream));
  return G_IO_STREAM_CLASS (jw_gate_conn_parent_class)
      ->close_fn (stream, cancellable, error);
}

static void
gate_conn_finalize (GObject *object)
{
  JwGateConn *self = JW_GATE_CONN (object);

  gate_conn_forget (self);
  g_clear_object (&self->remote);
  if (self->input != NULL)
    self->input->conn = NULL;
  g_clear_object (&self->input);
  G_OBJECT_CLASS (jw_gate_conn_parent_class)->finalize (object);
}

static void
jw_gate_conn_class_init (JwGateConnClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gate_conn_finalize;
  G_IO_STREAM_CLASS (klass)->close_fn = gate_conn_close;
  G_IO_STREAM_CLASS (klass)->get_input_stream = gate_conn_get_input_stream;
}

static void
jw_gate_conn_init (JwGateConn *self)
{
}

/* ---- slots ---------------------------------------------------------- */

static void
gate_unref (JwGate *self)
{
  if (--self->refs > 0)
    return;
  g_hash_table_unref (self->per_addr);
  g_hash_table_unref (self->live);
  g_hash_table_unref (self->lingers);
  g_free (self);
}

static Slot *
slot_new (JwGate *gate, const char *address)
{
  Slot *slot = g_new0 (Slot, 1);
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (gate->per_addr, address));

  slot->gate = gate;
  slot->address = g_strdup (address);
  slot->refs = 1;
  gate->refs++;
  gate->count++;
  g_hash_table_replace (gate->per_addr, g_strdup (address),
                        GUINT_TO_POINTER (n + 1));
  return slot;
}

static void
slot_unref (Slot *slot)
{
  JwGate *gate = slot->gate;
  guint n;

  if (--slot->refs > 0)
    return;
  gate->count--;
  n = GPOINTER_TO_UINT (g_hash_table_lookup (gate->per_addr, slot->address));
  if (n <= 1)
    g_hash_table_remove (gate->per_addr, slot->address);
  else
    g_hash_table_replace (gate->per_addr, g_strdup (slot->address),
                          GUINT_TO_POINTER (n - 1));
  g_free (slot->address);
  g_free (slot);
  gate_unref (gate);
}

/* ---- refusals ------------------------------------------------------- */

static gboolean
once_per_second (gint64 *last)
{
  gint64 now = g_get_monotonic_time ();

  if (now - *last < G_USEC_PER_SEC)
    return FALSE;
  *last = now;
  return TRUE;
}

/* Writes a whole answer with status, an error code and message, at once
 * or not at all: the socket is never waited for. */
static void
write_answer (int fd, guint status, const char *code, const char *message)
{
  g_autofree char *body = g_strdup_printf (
      "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
  g_autofree char *answer = g_strdup_printf (
      "HTTP/1.1 %u %s\r\n"
      "Content-Type: application/json\r\n"
      "Content-Length: %" G_GSIZE_FORMAT "\r\n"
      "%s"
      "Connection: close\r\n\r\n%s",
      status, soup_status_get_phrase (status), strlen (body),
      status == SOUP_STATUS_SERVICE_UNAVAILABLE ? "Retry-After: 1\r\n" : "",
      body);

  if (send (fd, answer, strlen (answer), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
    g_debug ("answer %u not written fd=%d: %s", status, fd, g_strerror (errno));
}

static void
linger_free (Linger *l)
{
  if (l->watch != 0)
    g_source_remove (l->watch);
  close (l->fd);
  g_free (l);
}

static gboolean
linger_readable (gint fd, GIOCondition cond, gpointer data)
{
  Linger *l = data;
  char buf[4096];
  gssize n;

  do
    n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
  while (n > 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return G_SOURCE_CONTINUE;
  l->watch = 0;
  g_hash_table_remove (l->gate->lingers, l);
  return G_SOURCE_REMOVE;
}

/* Closes fd after an answer. What the client sent is read first, so
 * that the close does not reset the connection before the client reads
 * the answer; a bounded number of sockets wait a little for the rest. */
static void
close_after_answer (JwGate *self, int fd)
{
  Linger *l;

  shutdown (fd, SHUT_WR);
  if (self->stopped || g_hash_table_size (self->lingers) >= LINGER_MAX)
    {
      close (fd);
      return;
    }
  l = g_new0 (Linger, 1);
  l->gate = self;
  l->fd = fd;
  l->deadline = g_get_monotonic_time () + LINGER_US;
  l->watch =
      g_unix_fd_add (fd, G_IO_IN | G_IO_HUP | G_IO_ERR, linger_readable, l);
  g_hash_table_add (self->lingers, l);
}

static void
refuse (JwGate *self, int fd, const char *address, gboolean per_address)
{
  char buf[4096];

  if (once_per_second (&self->last_refused_log))
    g_message ("refusing connections: %s reached open=%u address=%s",
               per_address ? "max-connections-per-address" : "max-connections",
               self->count, address);
  /* The request, if it is in already. */
  while (recv (fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
    ;
  if (per_address)
    write_answer (fd, SOUP_STATUS_SERVICE_UNAVAILABLE,
                  "too_many_connections_from_address",
                  "too many connections from this address");
  else
    write_answer (fd, SOUP_STATUS_SERVICE_UNAVAILABLE, "too_many_connections",
                  "the server has too many connections; try again shortly");
  close_after_answer (self, fd);
}

/* ---- accepting ------------------------------------------------------ */

static gboolean on_acceptable (gint fd, GIOCondition cond, gpointer data);

static void
watch_listen (JwGate *self)
{
  self->accept_watch = g_unix_fd_add (g_socket_get_fd (self->listen), G_IO_IN,
                                      on_acceptable, self);
}

static gboolean
on_pause_over (gpointer data)
{
  JwGate *self = data;

  self->pause_id = 0;
  if (!self->stopped)
    watch_listen (self);
  return G_SOURCE_REMOVE;
}

/* accept failed with EMFILE or ENFILE. The reserve descriptor makes room
 * to accept the waiting connection and close it, so that the listening
 * socket stops being readable; without a reserve, accepting pauses. */
static gboolean
out_of_descriptors (JwGate *self, int error)
{
  int fd = -1;

  if (once_per_second (&self->last_fd_log))
    g_warning ("out of file descriptors, refusing connections open=%u: %s",
               self->count, g_strerror (error));
  if (self->reserve_fd >= 0)
    {
      close (self->reserve_fd);
      fd = accept4 (g_socket_get_fd (self->listen), NULL, NULL,
                    SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0)
        {
          char buf[4096];

          /* The request, if it is in already: a close with unread input
           * would reset the connection before the answer is read. */
          while (recv (fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
            ;
          write_answer (fd, SOUP_STATUS_SERVICE_UNAVAILABLE,
                        "too_many_connections",
                        "the server is out of file descriptors");
          close (fd);
        }
      self->reserve_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    }
  if (fd >= 0)
    return TRUE;

  /* The caller removes the watch. */
  self->accept_watch = 0;
  self->pause_id = g_timeout_add (PAUSE_MS, on_pause_over, self);
  return FALSE;
}

static void on_got_headers (SoupServerMessage *msg, gpointer data);

static void
admit (JwGate *self, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocket) sock = NULL;
  g_autoptr (GSocketAddress) remote = NULL;
  g_autoptr (GSocketAddress) local = NULL;
  g_autoptr (JwGateConn) conn = NULL;
  char address[INET6_ADDRSTRLEN] = "";
  guint from_address;
  int one = 1;

  if (ss->ss_family == AF_INET)
    inet_ntop (AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, address,
               sizeof address);
  else if (ss->ss_family == AF_INET6)
    inet_ntop (AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, address,
               sizeof address);
  from_address =
      GPOINTER_TO_UINT (g_hash_table_lookup (self->per_addr, address));
  if (self->count >= self->limits.max_connections
      || from_address >= self->limits.max_per_address)
    {
      refuse (self, fd, address, self->count < self->limits.max_connections);
      return;
    }

  sock = g_socket_new_from_fd (fd, &error);
  remote = g_socket_address_new_from_native ((gpointer)ss, len);
  local = sock ? g_socket_get_local_address (sock, &error) : NULL;
  if (sock == NULL || remote == NULL || local == NULL)
    {
      g_warning ("cannot take an accepted connection: %s",
                 error ? error->message : "unknown address family");
      if (sock == NULL)
        close (fd);
      return;
    }
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  conn = g_object_new (JW_TYPE_GATE_CONN, "socket", sock, NULL);
  conn->slot = slot_new (self, address);
  conn->remote = g_object_ref (remote);
  conn->since = g_get_monotonic_time ();
  /* libsoup hands this very address object back for each request. */
  g_object_set_data (G_OBJECT (remote), CONN_KEY, conn);
  g_hash_table_add (self->live, conn);
  g_debug ("connection accepted fd=%d address=%s open=%u", fd, address,
           self->count);
  soup_server_accept_iostream (self->server, G_IO_STREAM (conn), local, remote,
                               NULL);
}

static gboolean
on_acceptable (gint listen_fd, GIOCondition cond, gpointer data)
{
  JwGate *self = data;

  for (int i = 0; i < ACCEPT_BATCH; i++)
    {
      struct sockaddr_storage ss;
      socklen_t len = sizeof ss;
      int fd = accept4 (listen_fd, (struct sockaddr *)&ss, &len,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);

      if (fd >= 0)
        {
          admit (self, fd, &ss, len);
          continue;
        }
      switch (errno)
        {
        case EINTR:
        case ECONNABORTED:
        case EPROTO: continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          if (out_of_descriptors (self, errno))
            continue;
          return G_SOURCE_REMOVE;
        case EAGAIN: return G_SOURCE_CONTINUE;
        default:
          if (once_per_second (&self->last_fd_log))
            g_warning ("accept failed: %s", g_strerror (errno));
          return G_SOURCE_CONTINUE;
        }
    }
  return G_SOURCE_CONTINUE;
}

/* ---- timeouts ------------------------------------------------------- */

static JwGateConn *
conn_of_message (SoupServerMessage *msg)
{
  GSocketAddress *remote = soup_server_message_get_remote_address (msg);

  return remote ? g_object_get_data (G_OBJECT (remote), CONN_KEY) : NULL;
}

/* libsoup 3.2 starts the first request of a connection at once, and each
 * later one when its first byte arrives (soup-server-message-io-http1.c,
 * io_read): the head is due header-timeout-s after either. */
static void
on_request_started (SoupServer *server, SoupServerMessage *msg, gpointer data)
{
  JwGateConn *conn = conn_of_message (msg);

  if (conn == NULL || conn->phase == PHASE_DROPPED)
    return;
  /* Started by the stand-in byte: no request, libsoup disconnects. */
  if (conn->ended)
    {
      conn->phase = PHASE_DROPPED;
      return;
    }
  conn->phase = PHASE_WAIT_HEAD;
  conn->since = g_get_monotonic_time ();
  g_signal_connect (msg, "got-headers", G_CALLBACK (on_got_headers), data);
}

static gboolean
has_body (SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);

  switch (soup_message_headers_get_encoding (h))
    {
    case SOUP_ENCODING_CONTENT_LENGTH:
      return soup_message_headers_get_content_length (h) > 0;
    case SOUP_ENCODING_NONE: return FALSE;
    default: return TRUE;
    }
}

static void
on_got_headers (SoupServerMessage *msg, gpointer data)
{
  JwGate *gate = data;
  JwGateConn *conn = conn_of_message (msg);

  if (conn == NULL || conn->phase == PHASE_DROPPED)
    return;
  conn->phase = PHASE_REQUEST;
  conn->since = g_get_monotonic_time ();
  if (gate->limits.refuse_bodies && has_body (msg))
    {
      GSocket *sock =
          g_socket_connection_get_socket (G_SOCKET_CONNECTION (conn));

      /* libsoup reads the body after this signal: the shut-down socket
       * ends that read, and libsoup closes the connection. */
      write_answer (g_socket_get_fd (sock),
                    SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "body_not_allowed",
                    "this server takes no request body");
      g_socket_shutdown (sock, TRUE, TRUE, NULL);
      conn->phase = PHASE_DROPPED;
    }
}

/* Answered in full: the connection idles until the next request. */
static void
on_request_done (SoupServer *server, SoupServerMessage *msg, gpointer data)
{
  JwGateConn *conn = conn_of_message (msg);

  if (conn == NULL || conn->phase == PHASE_DROPPED)
    return;
  conn->phase = PHASE_IDLE;
  conn->since = g_get_monotonic_time ();
}

/* When the connection last received or sent data, in monotonic µs; 0
 * when the kernel does not say. */
static gint64
last_data (JwGateConn *conn, gint64 now)
{
  struct tcp_info info;
  socklen_t len = sizeof info;
  GSocket *sock = g_socket_connection_get_socket (G_SOCKET_CONNECTION (conn));
  gint64 ms;

  if (getsockopt (g_socket_get_fd (sock), IPPROTO_TCP, TCP_INFO, &info, &len)
      < 0)
    return 0;
  ms = MIN (info.tcpi_last_data_recv, info.tcpi_last_data_sent);
  return now - ms * 1000;
}

/* Ends a connection in libsoup's hands: a shut-down socket reads as
 * closed, so libsoup closes the connection itself. */
static void
drop (JwGateConn *conn, gboolean request_timeout, const char *why)
{
  GSocket *sock = g_socket_connection_get_socket (G_SOCKET_CONNECTION (conn));

  g_info ("connection dropped reason=%s address=%s", why,
          conn->slot ? conn->slot->address : "?");
  if (request_timeout)
    write_answer (g_socket_get_fd (sock), SOUP_STATUS_REQUEST_TIMEOUT,
                  "request_timeout", "the request head did not arrive in time");
  g_socket_shutdown (sock, TRUE, TRUE, NULL);
  conn->phase = PHASE_DROPPED;
}

static gboolean
peer_closed (JwGateConn *conn)
{
  GSocket *sock = g_socket_connection_get_socket (G_SOCKET_CONNECTION (conn));
  char c;
  gssize n = recv (g_socket_get_fd (sock), &c, 1, MSG_PEEK | MSG_DONTWAIT);

  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* How long libsoup has to disconnect an idle connection the gate ended
 * before the gate closes the stream itself. */
#define ORPHAN_GRACE_US (5 * G_USEC_PER_SEC)

/* Ends an idle keep-alive connection. The shut-down socket turns readable
 * and reads as ended, so libsoup reads, gets the stand-in byte (see the
 * input stream above) and disconnects, freeing its own records too. */
static void
close_orphan (JwGateConn *conn, const char *why)
{
  GSocket *sock = g_socket_connection_get_socket (G_SOCKET_CONNECTION (conn));

  g_info ("connection closed reason=%s address=%s", why,
          conn->slot ? conn->slot->address : "?");
  conn->orphaned = g_get_monotonic_time ();
  g_socket_shutdown (sock, TRUE, TRUE, NULL);
}

/* The last resort when libsoup did not take the stand-in: closing the
 * stream gives back the descriptor and the slot, though libsoup 3.2.3
 * then keeps its record of the connection until the server goes. */
static void
close_unread_orphan (JwGateConn *conn)
{
  g_warning ("idle connection not released by libsoup, closing it "
             "address=%s",
             conn->slot ? conn->slot->address : "?");
  conn->phase = PHASE_DROPPED;
  g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);
}

static void
check_conn (JwGate *self, JwGateConn *conn, gint64 now)
{
  gint64 header_us = (gint64)self->limits.header_timeout_s * G_USEC_PER_SEC;
  gint64 idle_us = (gint64)self->limits.idle_timeout_s * G_USEC_PER_SEC;
  gint64 seen;

  switch (conn->phase)
    {
    case PHASE_WAIT_HEAD:
      if (now - conn->since >= header_us)
        drop (conn, TRUE, "header-timeout");
      return;

    case PHASE_IDLE:
      if (conn->orphaned != 0)
        {
          if (now - conn->orphaned >= ORPHAN_GRACE_US)
            close_unread_orphan (conn);
        }
      else if (peer_closed (conn))
        close_orphan (conn, "closed by the client");
      else if (now - conn->since >= idle_us)
        close_orphan (conn, "idle-timeout");
      return;

    case PHASE_REQUEST:
      seen = MAX (conn->since, last_data (conn, now));
      if (now - seen >= idle_us)
        drop (conn, FALSE, "stalled");
      return;

    case PHASE_DROPPED: return;
    }
}

static gboolean
on_tick (gpointer data)
{
  JwGate *self = data;
  gint64 now = g_get_monotonic_time ();
  g_autoptr (GPtrArray) conns = g_ptr_array_new ();
  g_autoptr (GPtrArray) expired = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer key;

  /* A copy: a drop may close a connection at once. */
  g_hash_table_iter_init (&iter, self->live);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (conns, g_object_ref (key));
  for (guint i = 0; i < conns->len; i++)
    {
      check_conn (self, conns->pdata[i], now);
      g_object_unref (conns->pdata[i]);
    }

  g_hash_table_iter_init (&iter, self->lingers);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (((Linger *)key)->deadline <= now)
      g_ptr_array_add (expired, key);
  for (guint i = 0; i < expired->len; i++)
    g_hash_table_remove (self->lingers, expired->pdata[i]);
  return G_SOURCE_CONTINUE;
}

/* ---- public --------------------------------------------------------- */

void
jw_gate_limits_read (JwGateLimits *limits, JwConfig *cfg, const char *section)
{
  limits->max_connections =
      CLAMP (jw_config_get_int (cfg, section, "max-connections",
                                limits->max_connections),
             1, 1000000);
  limits->max_per_address =
      CLAMP (jw_config_get_int (cfg, section, "max-connections-per-address",
                                limits->max_per_address),
             1, 1000000);
  limits->header_timeout_s =
      CLAMP (jw_config_get_int (cfg, section, "header-timeout-s",
                                limits->header_timeout_s),
             1, 3600);
  limits->idle_timeout_s =
      CLAMP (jw_config_get_int (cfg, section, "idle-timeout-s",
                                limits->idle_timeout_s),
             1, 86400);
}

/* libsoup 3.2 keeps a connection alive after a response only while the
 * server has a listener (soup-server.c, request_finished). The gate gives
 * it one that never accepts: one end of a socket pair whose other end
 * stays silent, so that it never becomes readable. */
static gboolean
add_keeper (SoupServer *server, int *peer, GError **error)
{
  g_autoptr (GSocket) sock = NULL;
  int pair[2];

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
    {
      int saved = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot create a socket pair: %s", g_strerror (saved));
      return FALSE;
    }
  sock = g_socket_new_from_fd (pair[0], error);
  if (sock == NULL)
    {
      close (pair[0]);
      close (pair[1]);
      return FALSE;
    }
  if (!soup_server_listen_socket (server, sock, 0, error))
    {
      close (pair[1]);
      return FALSE;
    }
  *peer = pair[1];
  return TRUE;
}

/* Descriptors beyond the connections: sockets to the broker, the main
 * loop, the reserve, a little for the libraries. */
#define FD_HEADROOM 64

/* Raises the soft limit of open files towards max_connections plus
 * headroom, as far as the hard limit allows, and says when that is not
 * enough: the descriptor table, not max-connections, then refuses. */
static void
fit_descriptor_limit (guint max_connections)
{
  struct rlimit rl;
  rlim_t want = (rlim_t)max_connections + FD_HEADROOM;

  if (getrlimit (RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
    return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : MIN (want, rl.rlim_max);
  if (setrlimit (RLIMIT_NOFILE, &rl) < 0)
    getrlimit (RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < want)
    g_message ("open file limit %lu is below max-connections=%u plus %u: "
               "raise LimitNOFILE or lower max-connections",
               (unsigned long)rl.rlim_cur, max_connections, FD_HEADROOM);
}

JwGate *
jw_gate_new (GSocket *listen, SoupServer *server, const JwGateLimits *limits,
             GError **error)
{
  JwGate *self;
  int reserve, peer;

  fit_descriptor_limit (limits->max_connections);
  if (!add_keeper (server, &peer, error))
    return NULL;
  reserve = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (reserve < 0)
    {
      int saved = errno;

      close (peer);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot open the reserve descriptor: %s",
                   g_strerror (saved));
      return NULL;
    }
  self = g_new0 (JwGate, 1);
  self->refs = 1;
  self->limits = *limits;
  self->listen = g_object_ref (listen);
  self->server = g_object_ref (server);
  self->reserve_fd = reserve;
  self->keeper_peer = peer;
  self->per_addr =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->live = g_hash_table_new (NULL, NULL);
  self->lingers =
      g_hash_table_new_full (NULL, NULL, (GDestroyNotify)linger_free, NULL);
  self->started_id = g_signal_connect (server, "request-started",
                                       G_CALLBACK (on_request_started), self);
  self->finished_id = g_signal_connect (server, "request-finished",
                                        G_CALLBACK (on_request_done), self);
  g_socket_set_blocking (listen, FALSE);
  watch_listen (self);
  self->tick_id = g_timeout_add_seconds (1, on_tick, self);
  g_info ("gate max-connections=%u max-connections-per-address=%u "
          "header-timeout-s=%u idle-timeout-s=%u",
          limits->max_connections, limits->max_per_address,
          limits->header_timeout_s, limits->idle_timeout_s);
  return self;
}

void
jw_gate_stop_accepting (JwGate *self)
{
  g_clear_handle_id (&self->accept_watch, g_source_remove);
  g_clear_handle_id (&self->pause_id, g_source_remove);
  self->stopped = TRUE;
  /* A listening socket shut down for reading refuses new connections. */
  g_socket_shutdown (self->listen, TRUE, FALSE, NULL);
}

void
jw_gate_free (JwGate *self)
{
  GHashTableIter iter;
  gpointer key;

  if (self == NULL)
    return;
  jw_gate_stop_accepting (self);
  g_clear_handle_id (&self->tick_id, g_source_remove);
  g_signal_handler_disconnect (self->server, self->started_id);
  g_signal_handler_disconnect (self->server, self->finished_id);
  g_hash_table_remove_all (self->lingers);
  /* Connections still open outlive the gate's owner: their slots keep
   * the counters until they close; they no longer find the gate. */
  g_hash_table_iter_init (&iter, self->live);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (((JwGateConn *)key)->remote != NULL)
      g_object_set_data (G_OBJECT (((JwGateConn *)key)->remote), CONN_KEY,
                         NULL);
  g_clear_object (&self->server);
  g_clear_object (&self->listen);
  if (self->reserve_fd >= 0)
    close (self->reserve_fd);
  self->reserve_fd = -1;
  close (self->keeper_peer);
  gate_unref (self);
}

char *
jw_gate_url (JwGate *self)
{
  g_autoptr (GSocketAddress) addr =
      g_socket_get_local_address (self->listen, NULL);
  GInetAddress *inet;
  g_autofree char *ip = NULL;
  guint port;

  if (addr == NULL || !G_IS_INET_SOCKET_ADDRESS (addr))
    return g_strdup ("http://unknown/");
  inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (addr));
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (addr));
  ip = g_inet_address_to_string (inet);
  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("http://[%s]:%u/", ip, port);
  return g_strdup_printf ("http://%s:%u/", ip, port);
}

guint
jw_gate_count (JwGate *self)
{
  return self->count;
}

/* The JwGateConn under a stream from libsoup: the stream itself, or the
 * base stream of libsoup's wrapper. */
static JwGateConn *
gate_conn_of (GIOStream *stream)
{
  for (int depth = 0; stream != NULL && depth < 4; depth++)
    {
      GIOStream *base = NULL;

      if (JW_IS_GATE_CONN (stream))
        return JW_GATE_CONN (stream);
      if (g_object_class_find_property (G_OBJECT_GET_CLASS (stream),
                                        "base-iostream")
          == NULL)
        return NULL;
      g_object_get (stream, "base-iostream", &base, NULL);
      if (base != NULL)
        g_object_unref (base); /* still held by stream */
      stream = base;
    }
  return NULL;
}

JwGateHold *
jw_gate_hold (GIOStream *stolen)
{
  JwGateConn *conn = gate_conn_of (stolen);
  JwGateHold *hold;

  if (conn == NULL || conn->slot == NULL)
    return NULL;
  hold = g_new0 (JwGateHold, 1);
  hold->slot = conn->slot;
  hold->slot->refs++;
  return hold;
}

void
jw_gate_release (JwGateHold *hold)
{
  if (hold == NULL)
    return;
  slot_unref (hold->slot);
  g_free (hold);
}

GSocket *
jw_gate_stream_socket (GIOStream *stream)
{
  GSocket *sock;
  JwGateConn *conn;

  if (stream == NULL)
    return NULL;
  sock = g_object_get_data (G_OBJECT (stream), "GSocket");
  if (sock != NULL)
    return sock;
  if (G_IS_SOCKET_CONNECTION (stream))
    return g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream));
  conn = gate_conn_of (stream);
  return conn ? g_socket_connection_get_socket (G_SOCKET_CONNECTION (conn))
              : NULL;
}
