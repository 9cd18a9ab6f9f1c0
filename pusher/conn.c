/* conn: the pusher's own connections after libsoup parsed the request.
 * One epoll descriptor watches every socket and is a single GSource, so
 * the cost of a loop turn does not grow with the number of clients; a
 * socket is watched for writing only while it has a backlog. */
#include "conn.h"

#include "jw-id.h"
#include "metrics.h"
#include "sse.h"
#include "ws.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_IOV 64
#define READ_BUF 65536
/* Reads per connection per loop turn, so that one client cannot starve
 * the others. */
#define MAX_READS 4

typedef enum
{
  STATE_OPEN,
  STATE_CLOSING, /* write what is queued, then shut down */
  STATE_LINGER,  /* shut down for writing, waiting for the peer's EOF */
  STATE_DEAD,    /* to be freed at the end of this loop turn */
} ConnState;

/* Chunks scanned back from the tail for a progress event to replace, so
 * that the cost of one send stays bounded. */
#define COALESCE_SCAN 64

typedef struct
{
  GBytes *bytes;
  gsize offset;
  gboolean progress; /* a progress event, which a newer one may replace */
  gint64 queued;     /* loop-turn time (µs), for the delivery histogram */
  char job[JW_ID_LEN + 1]; /* the job of an event, "" for anything else */
} Chunk;

struct _JwConn
{
  int fd;
  guint8 kind;
  guint8 state;
  guint8 dirty : 1;
  guint8 want_out : 1;
  guint index; /* in conns.all */
  /* The output queue: a ring of chunks held inline, so that queueing
   * one event allocates nothing once the ring has grown to the backlog
   * the client usually has. cap is 0 or a power of two. */
  Chunk *ring;
  guint ring_head;
  guint ring_len;
  guint ring_cap;
  gsize out_bytes;
  gint64 last_in; /* seconds, monotonic */
  gint64 last_out;
  gint64 ping_sent; /* 0: no ping outstanding */
  gint64 state_since;
  gint64 slow_since; /* seconds: since its backlog passed the soft limit */
  guint coalesced;   /* progress events replaced by newer ones */
  JwWsReader reader;
  gpointer data;
  GDestroyNotify on_free; /* with on_free_data, once closed */
  gpointer on_free_data;
};

typedef struct
{
  GSourceFunc func;
  gpointer data;
} Deferred;

static struct
{
  int epfd;
  GSource *source;
  gpointer tag;
  JwConnLimits limits;
  JwConnCallbacks callbacks;
  gpointer user_data;
  GPtrArray *all;
  GPtrArray *dirty;
  GPtrArray *doomed;
  GArray *deferred;
  gint64 write_time; /* monotonic µs, read once per turn before writing */
} conns = { .epfd = -1 };

static guint8 read_buf[READ_BUF];

static gint64
now_s (void)
{
  return g_get_monotonic_time () / G_USEC_PER_SEC;
}

static void
set_state (JwConn *self, ConnState state)
{
  self->state = state;
  self->state_since = now_s ();
}

static void
watch (JwConn *self, gboolean out)
{
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = self };

  if (out == self->want_out)
    return;
  if (out)
    ev.events |= EPOLLOUT;
  self->want_out = out;
  if (epoll_ctl (conns.epfd, EPOLL_CTL_MOD, self->fd, &ev) < 0)
    g_warning ("epoll_ctl failed fd=%d error=%s", self->fd, g_strerror (errno));
}

#define RING_MIN 4

static Chunk *
ring_at (JwConn *self, guint i)
{
  return &self->ring[(self->ring_head + i) & (self->ring_cap - 1)];
}

/* A new zeroed chunk at the tail. */
static Chunk *
ring_push (JwConn *self)
{
  Chunk *c;

  if (self->ring_len == self->ring_cap)
    {
      guint cap = MAX (RING_MIN, self->ring_cap * 2);
      Chunk *ring = g_new (Chunk, cap);

      for (guint i = 0; i < self->ring_len; i++)
        ring[i] = *ring_at (self, i);
      g_free (self->ring);
      self->ring = ring;
      self->ring_cap = cap;
      self->ring_head = 0;
    }
  c = ring_at (self, self->ring_len++);
  memset (c, 0, sizeof *c);
  return c;
}

/* Drops the head chunk (its bytes already released). An emptied ring
 * that grew past its usual size is given back. */
static void
ring_pop_head (JwConn *self)
{
  self->ring_head = (self->ring_head + 1) & (self->ring_cap - 1);
  if (--self->ring_len == 0)
    {
      self->ring_head = 0;
      if (self->ring_cap > 4 * RING_MIN)
        {
          g_clear_pointer (&self->ring, g_free);
          self->ring_cap = 0;
        }
    }
}

static void
clear_queue (JwConn *self)
{
  for (guint i = 0; i < self->ring_len; i++)
    g_bytes_unref (ring_at (self, i)->bytes);
  g_clear_pointer (&self->ring, g_free);
  self->ring_head = self->ring_len = self->ring_cap = 0;
  self->out_bytes = 0;
}

void
jw_conn_abort (JwConn *self)
{
  if (self->state == STATE_DEAD)
    return;
  set_state (self, STATE_DEAD);
  clear_queue (self);
  g_ptr_array_add (conns.doomed, self);
}

static void
destroy (JwConn *self)
{
  JwConn *last;

  if (conns.callbacks.closed)
    conns.callbacks.closed (self, conns.user_data);
  epoll_ctl (conns.epfd, EPOLL_CTL_DEL, self->fd, NULL);
  close (self->fd);
  if (self->on_free != NULL)
    self->on_free (self->on_free_data);
  clear_queue (self);
  jw_ws_reader_clear (&self->reader);

  last = g_ptr_array_index (conns.all, conns.all->len - 1);
  last->index = self->index;
  g_ptr_array_remove_index_fast (conns.all, self->index);
  g_debug ("connection closed fd=%d open=%u", self->fd, conns.all->len);
  g_free (self);
}

static void
mark_dirty (JwConn *self)
{
  if (self->dirty)
    return;
  self->dirty = TRUE;
  g_ptr_array_add (conns.dirty, self);
}

/* Writes as much of the queue as the socket takes, in one sendmsg. */
static void
flush (JwConn *self)
{
  struct iovec iov[MAX_IOV];
  struct msghdr mh = { .msg_iov = iov };
  guint n = 0;
  gssize written;

  for (; n < self->ring_len && n < MAX_IOV; n++)
    {
      Chunk *c = ring_at (self, n);
      gsize len;
      const guint8 *p = g_bytes_get_data (c->bytes, &len);

      iov[n].iov_base = (void *)(p + c->offset);
      iov[n].iov_len = len - c->offset;
    }
  if (n > 0)
    {
      mh.msg_iovlen = n;
      written = sendmsg (self->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (written < 0)
        {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            {
              g_debug ("write failed fd=%d error=%s", self->fd,
                       g_strerror (errno));
              jw_conn_abort (self);
              return;
            }
          written = 0;
        }
      self->out_bytes -= written;
      jw_pusher_metrics.bytes_written += written;
      while (written > 0)
        {
          Chunk *c = ring_at (self, 0);
          gsize left = g_bytes_get_size (c->bytes) - c->offset;

          if ((gsize)written < left)
            {
              c->offset += written;
              break;
            }
          written -= left;
          if (c->job[0] != '\0')
            {
              jw_pusher_metrics.events_delivered++;
              jw_histogram_observe (&jw_pusher_metrics.delivery,
                                    (conns.write_time - c->queued)
                                        / (double)G_USEC_PER_SEC);
            }
          g_bytes_unref (c->bytes);
          ring_pop_head (self);
        }
    }

  if (self->out_bytes < conns.limits.max_backlog / 2)
    self->slow_since = 0;
  if (self->ring_len > 0)
    {
      watch (self, TRUE);
      return;
    }
  watch (self, FALSE);
  if (self->state == STATE_CLOSING)
    {
      shutdown (self->fd, SHUT_WR);
      set_state (self, STATE_LINGER);
    }
}

/* Replaces the newest queued event of job with bytes when it is a progress
 * event not yet started and nothing of that job follows it, so that the
 * job's events keep their order. */
static gboolean
coalesce (JwConn *self, GBytes *bytes, const char *job)
{
  for (guint n = 0; n < self->ring_len && n < COALESCE_SCAN; n++)
    {
      Chunk *c = ring_at (self, self->ring_len - 1 - n);

      if (strcmp (c->job, job) != 0)
        continue;
      if (!c->progress || c->offset > 0)
        return FALSE;
      self->out_bytes -= g_bytes_get_size (c->bytes);
      self->out_bytes += g_bytes_get_size (bytes);
      g_bytes_unref (c->bytes);
      c->bytes = g_bytes_ref (bytes);
      self->coalesced++;
      jw_pusher_metrics.coalesced++;
      return TRUE;
    }
  return FALSE;
}

/* Drops what is queued and not yet started, says why, and closes: the
 * client then holds a prefix of each stream with no gap other than
 * coalesced progress, and resumes after the last seq it saw. */
static void
too_slow (JwConn *self)
{
  static const char comment[] = ": disconnected: too slow\n\n";
  Chunk *c;

  g_info ("slow client disconnected fd=%d queued=%" G_GSIZE_FORMAT
          " coalesced=%u",
          self->fd, self->out_bytes, self->coalesced);
  jw_pusher_metrics.slow_disconnected++;
  /* Keep a partly written frame whole; SSE keeps its response head. */
  while (self->ring_len > 0)
    {
      Chunk *tail = ring_at (self, self->ring_len - 1);

      if (tail->offset > 0
          || (self->kind == JW_CONN_SSE && tail->job[0] == '\0'))
        break;
      self->out_bytes -= g_bytes_get_size (tail->bytes);
      g_bytes_unref (tail->bytes);
      self->ring_len--;
    }
  /* The reason goes in past the backlog bound: queueing it through
   * queue_chunk could find the queue full again and come back here. */
  c = ring_push (self);
  if (self->kind == JW_CONN_SSE)
    c->bytes = g_bytes_new_static (comment, sizeof comment - 1);
  else
    c->bytes = jw_ws_close_frame_new (JW_WS_CLOSE_POLICY_VIOLATION,
                                      "too slow");
  self->out_bytes += g_bytes_get_size (c->bytes);
  jw_conn_end (self);
}

static void
queue_chunk (JwConn *self, GBytes *bytes, const char *job, gboolean progress)
{
  Chunk *c;
  gsize len = g_bytes_get_size (bytes);
  gsize soft = conns.limits.max_backlog / 2;
  gint64 now;

  if (self->state != STATE_OPEN || len == 0)
    return;

  /* Past the soft limit a slow client gets the newest progress of a job
   * in place of older progress still waiting; transitions always queue. */
  if (progress && job != NULL && self->out_bytes >= soft
      && coalesce (self, bytes, job))
    {
      mark_dirty (self);
      return;
    }
  if (self->out_bytes + len > conns.limits.max_backlog)
    {
      g_debug ("backlog over limit fd=%d queued=%" G_GSIZE_FORMAT, self->fd,
               self->out_bytes);
      too_slow (self);
      return;
    }

  /* The loop turn's time is exact enough here and costs no clock read. */
  now = g_source_get_time (conns.source);
  c = ring_push (self);
  c->bytes = g_bytes_ref (bytes);
  c->progress = progress;
  c->queued = now;
  if (job != NULL)
    g_strlcpy (c->job, job, sizeof c->job);
  self->out_bytes += len;
  if (self->out_bytes >= soft && self->slow_since == 0)
    self->slow_since = now / G_USEC_PER_SEC;
  self->last_out = now / G_USEC_PER_SEC;
  mark_dirty (self);
}

void
jw_conn_send (JwConn *self, GBytes *bytes)
{
  queue_chunk (self, bytes, NULL, FALSE);
}

void
jw_conn_send_event (JwConn *self, GBytes *bytes, const char *job,
                    gboolean progress)
{
  queue_chunk (self, bytes, job, progress);
}

void
jw_conn_send_data (JwConn *self, const void *data, gsize len)
{
  g_autoptr (GBytes) bytes = NULL;

  if (self->state != STATE_OPEN)
    return;
  bytes = g_bytes_new (data, len);
  jw_conn_send (self, bytes);
}

void
jw_conn_send_text (JwConn *self, const char *text, gsize len)
{
  g_autoptr (GBytes) frame = NULL;

  if (self->state != STATE_OPEN)
    return;
  frame = jw_ws_frame_new (JW_WS_OP_TEXT, text, len);
  jw_conn_send (self, frame);
}

void
jw_conn_end (JwConn *self)
{
  if (self->state != STATE_OPEN)
    return;
  set_state (self, STATE_CLOSING);
  mark_dirty (self);
}

void
jw_conn_ws_close (JwConn *self, guint16 code, const char *reason)
{
  g_autoptr (GBytes) frame = NULL;

  if (self->state != STATE_OPEN)
    return;
  frame = jw_ws_close_frame_new (code, reason);
  jw_conn_send (self, frame);
  jw_conn_end (self);
}

/* A client frame, after the reader has checked and joined it. */
static gboolean
on_ws_message (guint8 opcode, const guint8 *payload, gsize len,
               gpointer user_data)
{
  JwConn *self = user_data;
  g_autoptr (GBytes) frame = NULL;
  guint16 code = JW_WS_CLOSE_NORMAL;

  if (self->state != STATE_OPEN)
    return FALSE;

  switch (opcode)
    {
    case JW_WS_OP_TEXT:
      if (conns.callbacks.ws_text)
        conns.callbacks.ws_text (self, (const char *)payload, len,
                                 conns.user_data);
      break;
    case JW_WS_OP_BINARY:
      jw_conn_ws_close (self, JW_WS_CLOSE_UNSUPPORTED_DATA, "text only");
      return FALSE;
    case JW_WS_OP_PING:
      frame = jw_ws_frame_new (JW_WS_OP_PONG, payload, len);
      jw_conn_send (self, frame);
      break;
    case JW_WS_OP_PONG: self->ping_sent = 0; break;
    case JW_WS_OP_CLOSE:
      /* Echo the code; an empty close gets a normal one. */
      if (len >= 2)
        code = (guint16)((payload[0] << 8) | payload[1]);
      if (code < 1000 || code == 1004 || code == 1005 || code == 1006
          || (code > 1011 && code < 3000) || code >= 5000)
        code = JW_WS_CLOSE_PROTOCOL_ERROR;
      jw_conn_ws_close (self, code, NULL);
      return FALSE;
    }
  return self->state == STATE_OPEN;
}

static void
readable (JwConn *self)
{
  for (int i = 0; i < MAX_READS; i++)
    {
      gssize n = recv (self->fd, read_buf, sizeof read_buf, MSG_DONTWAIT);

      if (n == 0)
        {
          jw_conn_abort (self);
          return;
        }
      if (n < 0)
        {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            jw_conn_abort (self);
          return;
        }
      self->last_in = now_s ();

      /* An SSE client has nothing to say; a closing one is ignored. */
      if (self->kind == JW_CONN_WS && self->state == STATE_OPEN)
        {
          guint16 code = jw_ws_reader_feed (&self->reader, read_buf, n,
                                            on_ws_message, self);

          if (code != 0)
            {
              g_debug ("websocket protocol error fd=%d code=%u", self->fd,
                       code);
              jw_conn_ws_close (self, code, NULL);
            }
        }
      if ((gsize)n < sizeof read_buf)
        return;
    }
}

static gboolean
has_work (void)
{
  return conns.deferred->len > 0 || conns.dirty->len > 0
         || conns.doomed->len > 0;
}

static gboolean
source_prepare (GSource *source, gint *timeout)
{
  *timeout = -1;
  return has_work ();
}

static gboolean
source_check (GSource *source)
{
  return has_work ()
         || (g_source_query_unix_fd (source, conns.tag) & G_IO_IN) != 0;
}

static void
run_deferred (void)
{
  g_autoptr (GArray) batch = conns.deferred;

  conns.deferred = g_array_new (FALSE, FALSE, sizeof (Deferred));
  for (guint i = 0; i < batch->len; i++)
    {
      Deferred *d = &g_array_index (batch, Deferred, i);

      d->func (d->data);
    }
}

static gboolean
source_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  struct epoll_event events[MAX_EVENTS];
  int n;

  if (conns.deferred->len > 0)
    run_deferred ();

  n = epoll_wait (conns.epfd, events, MAX_EVENTS, 0);
  for (int i = 0; i < n; i++)
    {
      JwConn *c = events[i].data.ptr;

      if (c->state == STATE_DEAD)
        continue;
      if (events[i].events & (EPOLLERR | EPOLLHUP))
        {
          jw_conn_abort (c);
          continue;
        }
      if (events[i].events & EPOLLIN)
        readable (c);
      if ((events[i].events & EPOLLOUT) && c->state != STATE_DEAD)
        mark_dirty (c);
    }

  /* One write per connection per loop turn, whatever was queued. */
  if (conns.dirty->len > 0)
    conns.write_time = g_get_monotonic_time ();
  for (guint i = 0; i < conns.dirty->len; i++)
    {
      JwConn *c = g_ptr_array_index (conns.dirty, i);

      c->dirty = FALSE;
      if (c->state != STATE_DEAD && c->state != STATE_LINGER)
        flush (c);
    }
  g_ptr_array_set_size (conns.dirty, 0);

  for (guint i = 0; i < conns.doomed->len; i++)
    destroy (g_ptr_array_index (conns.doomed, i));
  g_ptr_array_set_size (conns.doomed, 0);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs source_funcs = {
  .prepare = source_prepare,
  .check = source_check,
  .dispatch = source_dispatch,
};

gboolean
jw_conns_start (const JwConnLimits *limits, const JwConnCallbacks *callbacks,
                gpointer user_data, GError **error)
{
  g_return_val_if_fail (conns.source == NULL, FALSE);

  conns.epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (conns.epfd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "cannot create epoll descriptor: %s", g_strerror (errno));
      return FALSE;
    }
  conns.limits = *limits;
  conns.callbacks = *callbacks;
  conns.user_data = user_data;
  conns.all = g_ptr_array_new ();
  conns.dirty = g_ptr_array_new ();
  conns.doomed = g_ptr_array_new ();
  conns.deferred = g_array_new (FALSE, FALSE, sizeof (Deferred));

  conns.source = g_source_new (&source_funcs, sizeof (GSource));
  conns.tag = g_source_add_unix_fd (conns.source, conns.epfd, G_IO_IN);
  g_source_set_name (conns.source, "jw-conns");
  /* GLib 2.74 re-arms a dispatching fd source and wakes its own context
   * unless the source may recurse; we never iterate the loop inside. */
  g_source_set_can_recurse (conns.source, TRUE);
  g_source_attach (conns.source, g_main_context_get_thread_default ());
  return TRUE;
}

void
jw_conns_stop (void)
{
  if (conns.source == NULL)
    return;

  /* Best effort: one write of a going-away frame, then close. */
  for (guint i = 0; i < conns.all->len; i++)
    {
      JwConn *c = g_ptr_array_index (conns.all, i);

      if (c->kind == JW_CONN_WS && c->state == STATE_OPEN && c->ring_len == 0)
        {
          g_autoptr (GBytes) frame =
              jw_ws_close_frame_new (JW_WS_CLOSE_GOING_AWAY, "shutting down");

          send (c->fd, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame),
                MSG_NOSIGNAL | MSG_DONTWAIT);
        }
      if (c->state != STATE_DEAD)
        jw_conn_abort (c);
    }
  for (guint i = 0; i < conns.doomed->len; i++)
    destroy (g_ptr_array_index (conns.doomed, i));

  g_source_destroy (conns.source);
  g_clear_pointer (&conns.source, g_source_unref);
  close (conns.epfd);
  conns.epfd = -1;
  g_clear_pointer (&conns.all, g_ptr_array_unref);
  g_clear_pointer (&conns.dirty, g_ptr_array_unref);
  g_clear_pointer (&conns.doomed, g_ptr_array_unref);
  g_clear_pointer (&conns.deferred, g_array_unref);
}

void
jw_conns_tick (void)
{
  gint64 now = now_s ();
  const JwConnLimits *lim = &conns.limits;
  static const char keepalive[] = JW_SSE_KEEPALIVE;

  for (guint i = 0; i < conns.all->len; i++)
    {
      JwConn *c = g_ptr_array_index (conns.all, i);

      switch (c->state)
        {
        case STATE_DEAD: break;
        case STATE_CLOSING:
        case STATE_LINGER:
          if (now - c->state_since >= lim->close_s)
            jw_conn_abort (c);
          break;
        case STATE_OPEN:
          /* Coalescing did not let it catch up: still too slow. */
          if (lim->slow_s > 0 && c->slow_since != 0
              && now - c->slow_since >= lim->slow_s)
            {
              too_slow (c);
              break;
            }
          if (c->kind == JW_CONN_SSE)
            {
              if (now - c->last_out >= lim->keepalive_s)
                jw_conn_send_data (c, keepalive, sizeof keepalive - 1);
            }
          else if (c->ping_sent != 0)
            {
              if (now - c->ping_sent >= 2 * (gint64)lim->ping_s)
                {
                  g_debug ("websocket ping timeout fd=%d", c->fd);
                  jw_conn_abort (c);
                }
            }
          else if (now - c->last_in >= lim->ping_s)
            {
              g_autoptr (GBytes) ping =
                  jw_ws_frame_new (JW_WS_OP_PING, NULL, 0);

              jw_conn_send (c, ping);
              c->ping_sent = now;
            }
          break;
        }
    }
}

guint
jw_conns_count (void)
{
  return conns.all ? conns.all->len : 0;
}

void
jw_conns_stats (JwConnStats *stats, const double *bounds, guint n)
{
  memset (stats, 0, sizeof *stats);
  n = MIN (n, G_N_ELEMENTS (stats->backlog) - 1);
  for (guint i = 0; conns.all != NULL && i < conns.all->len; i++)
    {
      JwConn *c = g_ptr_array_index (conns.all, i);
      guint b = 0;

      if (c->state != STATE_OPEN)
        continue;
      if (c->kind == JW_CONN_SSE)
        stats->sse++;
      else
        stats->ws++;
      stats->backlog_total += c->out_bytes;
      stats->backlog_max = MAX (stats->backlog_max, c->out_bytes);
      while (b < n && (double)c->out_bytes > bounds[b])
        b++;
      stats->backlog[b]++;
    }
}

void
jw_conns_defer (GSourceFunc func, gpointer data)
{
  Deferred d = { func, data };

  g_array_append_val (conns.deferred, d);
}

JwConn *
jw_conn_new (int fd, JwConnKind kind)
{
  JwConn *self = g_new0 (JwConn, 1);
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = self };
  unsigned int user_timeout_ms = 60000;

  self->fd = fd;
  self->kind = kind;
  self->last_in = self->last_out = now_s ();
  set_state (self, STATE_OPEN);
  if (kind == JW_CONN_WS)
    jw_ws_reader_init (&self->reader, conns.limits.max_message);

  /* A peer that stops acknowledging data is dropped by the kernel. */
  setsockopt (fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
              sizeof user_timeout_ms);
  if (conns.limits.send_buffer > 0)
    setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &conns.limits.send_buffer,
                sizeof conns.limits.send_buffer);

  self->index = conns.all->len;
  g_ptr_array_add (conns.all, self);
  if (epoll_ctl (conns.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    {
      g_warning ("epoll_ctl failed fd=%d error=%s", fd, g_strerror (errno));
      jw_conn_abort (self);
    }
  return self;
}

JwConnKind
jw_conn_kind (JwConn *self)
{
  return self->kind;
}

gboolean
jw_conn_is_open (JwConn *self)
{
  return self->state == STATE_OPEN;
}

gpointer
jw_conn_get_data (JwConn *self)
{
  return self->data;
}

void
jw_conn_set_data (JwConn *self, gpointer data)
{
  self->data = data;
}

void
jw_conn_on_free (JwConn *self, GDestroyNotify func, gpointer data)
{
  self->on_free = func;
  self->on_free_data = data;
}
