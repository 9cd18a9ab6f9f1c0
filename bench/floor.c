/* bench-floor: the least a fan-out server can do, as a yardstick for the
 * pusher. One process, one epoll loop, no library between it and the
 * sockets.
 *
 * Clients: GET /jobs/ID/events (an SSE stream, no replay) or GET /ws (a
 * WebSocket handshake, then {"op":"subscribe","job":"ID",…} as jobwire's,
 * answered with {"op":"subscribed","job":"ID"}). Events arrive as UDP
 * datagrams on the input port, "ID JSON"; each is formatted once (an SSE
 * block and a WebSocket text frame) and appended to the output of every
 * subscriber of its job; after the loop turn every connection that has
 * output gets one non-blocking write. A connection whose output passes
 * 4 MiB is closed.
 *
 * Usage: bench-floor --listen HOST:PORT --input HOST:PORT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <glib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEAD 8192
#define MAX_OUT (4 * 1024 * 1024)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"

typedef enum
{
  CONN_HEAD,
  CONN_SSE,
  CONN_WS
} ConnState;

typedef struct
{
  int fd;
  ConnState state;
  char *job;       /* subscribed to, or NULL */
  GByteArray *in;  /* request head or client frames not yet parsed */
  GByteArray *out; /* written from out_off on */
  gsize out_off;
  gboolean dirty;   /* in the list of connections to write this turn */
  gboolean polling; /* EPOLLOUT asked for */
} Conn;

static int epfd, listen_fd, input_fd;
static GHashTable *subscribers; /* job id → GPtrArray of Conn */
static GPtrArray *dirty;
static volatile sig_atomic_t stopping;

static int
bind_socket (const char *hostport, int type)
{
  g_autofree char *host = NULL;
  const char *colon = strrchr (hostport, ':');
  struct sockaddr_in addr = { 0 };
  int fd, one = 1;

  if (colon == NULL)
    return -1;
  host = g_strndup (hostport, colon - hostport);
  addr.sin_family = AF_INET;
  addr.sin_port = htons (atoi (colon + 1));
  if (inet_pton (AF_INET, host, &addr.sin_addr) != 1)
    return -1;
  fd = socket (AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (fd, (struct sockaddr *)&addr, sizeof addr) < 0
      || (type == SOCK_STREAM && listen (fd, 4096) < 0))
    {
      close (fd);
      return -1;
    }
  return fd;
}

static void
conn_watch (Conn *c, gboolean out)
{
  struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0),
                            .data.ptr = c };

  epoll_ctl (epfd, EPOLL_CTL_MOD, c->fd, &ev);
  c->polling = out;
}

static void
conn_free (Conn *c)
{
  g_byte_array_unref (c->in);
  g_byte_array_unref (c->out);
  g_free (c->job);
  g_free (c);
}

/* Closes now; the memory goes at the end of the loop turn, when the
 * connection leaves the dirty list, so that no caller holds a freed one. */
static void
conn_close (Conn *c)
{
  GPtrArray *subs;

  if (c->fd < 0)
    return;
  if (c->job != NULL
      && (subs = g_hash_table_lookup (subscribers, c->job)) != NULL)
    g_ptr_array_remove_fast (subs, c);
  close (c->fd);
  c->fd = -1;
  if (!c->dirty)
    {
      c->dirty = TRUE;
      g_ptr_array_add (dirty, c);
    }
}

static void
conn_queue (Conn *c, const void *data, gsize len)
{
  if (c->fd < 0)
    return;
  if (c->out->len - c->out_off + len > MAX_OUT)
    {
      conn_close (c);
      return;
    }
  g_byte_array_append (c->out, data, len);
  if (!c->dirty)
    {
      c->dirty = TRUE;
      g_ptr_array_add (dirty, c);
    }
}

static void
conn_subscribe (Conn *c, const char *job, gsize len)
{
  GPtrArray *subs;

  c->job = g_strndup (job, len);
  subs = g_hash_table_lookup (subscribers, c->job);
  if (subs == NULL)
    {
      subs = g_ptr_array_new ();
      g_hash_table_insert (subscribers, g_strdup (c->job), subs);
    }
  g_ptr_array_add (subs, c);
}

static void
ws_frame (GByteArray *frame, const char *payload, gsize len)
{
  guint8 h[4] = { 0x81 };

  if (len < 126)
    {
      h[1] = len;
      g_byte_array_append (frame, h, 2);
    }
  else
    {
      h[1] = 126;
      h[2] = len >> 8;
      h[3] = len & 0xff;
      g_byte_array_append (frame, h, 4);
    }
  g_byte_array_append (frame, (const guint8 *)payload, len);
}

/* The value of header name (lower case, with the colon) in head, or NULL. */
static char *
header_value (const char *head, const char *name)
{
  const char *p = strcasestr (head, name), *end;

  if (p == NULL)
    return NULL;
  p += strlen (name);
  while (*p == ' ')
    p++;
  end = strstr (p, "\r\n");
  return end ? g_strndup (p, end - p) : NULL;
}

static void
conn_head (Conn *c)
{
  char *head = (char *)c->in->data;
  char *end = memmem (head, c->in->len, "\r\n\r\n", 4);
  const char *job, *job_end;

  if (end == NULL)
    {
      if (c->in->len > MAX_HEAD)
        conn_close (c);
      return;
    }
  *end = '\0';
  if (g_str_has_prefix (head, "GET /jobs/")
      && (job_end = strstr (head + 10, "/events")) != NULL)
    {
      static const char ok[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\n\r\n";

      job = head + 10;
      conn_subscribe (c, job, job_end - job);
      c->state = CONN_SSE;
      conn_queue (c, ok, sizeof ok - 1);
    }
  else if (g_str_has_prefix (head, "GET /ws"))
    {
      g_autofree char *key = header_value (head, "\nsec-websocket-key:");
      g_autofree char *accept = NULL, *resp = NULL;
      g_autoptr (GChecksum) sha = g_checksum_new (G_CHECKSUM_SHA1);
      guint8 digest[20];
      gsize dlen = sizeof digest;

      if (key == NULL)
        {
          conn_close (c);
          return;
        }
      g_checksum_update (sha, (const guint8 *)key, strlen (key));
      g_checksum_update (sha, (const guint8 *)WS_GUID, strlen (WS_GUID));
      g_checksum_get_digest (sha, digest, &dlen);
      accept = g_base64_encode (digest, dlen);
      resp = g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: %s\r\n\r\n",
                              accept);
      c->state = CONN_WS;
      conn_queue (c, resp, strlen (resp));
    }
  else
    {
      static const char nf[] = "HTTP/1.1 404 Not Found\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n";

      /* Best effort: the connection closes either way. */
      if (write (c->fd, nf, sizeof nf - 1) < 0)
        {
        }
      conn_close (c);
      return;
    }
  g_byte_array_remove_range (c->in, 0, end + 4 - head);
}

/* Client frames: subscribe, ping, close. */
static void
conn_frames (Conn *c)
{
  gsize used = 0;

  while (c->fd >= 0 && c->in->len - used >= 6)
    {
      guint8 *b = c->in->data + used;
      int opcode = b[0] & 0x0f;
      gsize plen = b[1] & 0x7f, h = 6;
      char *p;

      if (!(b[1] & 0x80) || plen > 125)
        {
          conn_close (c); /* unmasked, or larger than any message here */
          return;
        }
      if (c->in->len - used < h + plen)
        break;
      p = (char *)b + h;
      for (gsize i = 0; i < plen; i++)
        p[i] ^= b[2 + i % 4];
      if (opcode == 1 && c->job == NULL)
        {
          const char *job = memmem (p, plen, "\"job\":\"", 7), *end = NULL;
          g_autoptr (GByteArray) frame = g_byte_array_new ();
          g_autofree char *ack = NULL;

          if (job != NULL)
            end = memchr (job + 7, '"', p + plen - (job + 7));
          if (end == NULL)
            {
              conn_close (c);
              return;
            }
          conn_subscribe (c, job + 7, end - (job + 7));
          ack = g_strdup_printf ("{\"op\":\"subscribed\",\"job\":\"%s\"}",
                                 c->job);
          ws_frame (frame, ack, strlen (ack));
          conn_queue (c, frame->data, frame->len);
        }
      else if (opcode == 9)
        {
          guint8 pong[2 + 125] = { 0x8a, (guint8)plen };

          memcpy (pong + 2, p, plen);
          conn_queue (c, pong, 2 + plen);
        }
      else if (opcode == 8)
        {
          conn_close (c);
          return;
        }
      used += h + plen;
    }
  if (c->fd >= 0)
    g_byte_array_remove_range (c->in, 0, used);
}

static void
conn_readable (Conn *c)
{
  char buf[4096];
  ssize_t n;

  while ((n = read (c->fd, buf, sizeof buf)) > 0)
    {
      g_byte_array_append (c->in, (guint8 *)buf, n);
      if (c->state == CONN_HEAD)
        conn_head (c);
      if (c->fd >= 0 && c->state == CONN_WS && c->in->len > 0)
        conn_frames (c);
      if (c->fd < 0)
        return;
      if (c->state == CONN_SSE)
        g_byte_array_set_size (c->in, 0); /* nothing more is expected */
    }
  if (n == 0 || (errno != EAGAIN && errno != EINTR))
    conn_close (c);
}

static void
accept_all (void)
{
  int fd, one = 1;

  while ((fd = accept4 (listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC))
         >= 0)
    {
      Conn *c = g_new0 (Conn, 1);
      struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

      setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      c->fd = fd;
      c->in = g_byte_array_new ();
      c->out = g_byte_array_new ();
      epoll_ctl (epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* Up to 256 datagrams "ID JSON" per turn, each formatted once. */
static void
read_input (void)
{
  static char buf[65536];
  GByteArray *sse = g_byte_array_new (), *frame = g_byte_array_new ();

  for (int i = 0; i < 256; i++)
    {
      ssize_t n = recv (input_fd, buf, sizeof buf - 1, 0);
      char *sp;
      GPtrArray *subs;

      if (n <= 0)
        break;
      buf[n] = '\0';
      sp = memchr (buf, ' ', n);
      if (sp == NULL)
        continue;
      *sp = '\0';
      subs = g_hash_table_lookup (subscribers, buf);
      if (subs == NULL || subs->len == 0)
        continue;
      g_byte_array_set_size (sse, 0);
      g_byte_array_set_size (frame, 0);
      g_byte_array_append (sse, (const guint8 *)"event: progress\ndata: ", 22);
      g_byte_array_append (sse, (const guint8 *)sp + 1, n - (sp + 1 - buf));
      g_byte_array_append (sse, (const guint8 *)"\n\n", 2);
      ws_frame (frame, sp + 1, n - (sp + 1 - buf));
      for (guint k = subs->len; k > 0; k--)
        {
          Conn *c = g_ptr_array_index (subs, k - 1);

          if (c->state == CONN_SSE)
            conn_queue (c, sse->data, sse->len);
          else
            conn_queue (c, frame->data, frame->len);
        }
    }
  g_byte_array_unref (sse);
  g_byte_array_unref (frame);
}

/* One write per connection with output. */
static void
flush_dirty (void)
{
  for (guint i = 0; i < dirty->len; i++)
    {
      Conn *c = g_ptr_array_index (dirty, i);
      ssize_t n;

      c->dirty = FALSE;
      if (c->fd < 0)
        {
          conn_free (c);
          continue;
        }
      n = write (c->fd, c->out->data + c->out_off, c->out->len - c->out_off);
      if (n < 0 && errno != EAGAIN && errno != EINTR)
        {
          conn_close (c);
          continue;
        }
      if (n > 0)
        c->out_off += n;
      if (c->out_off == c->out->len)
        {
          g_byte_array_set_size (c->out, 0);
          c->out_off = 0;
          if (c->polling)
            conn_watch (c, FALSE);
        }
      else if (!c->polling)
        conn_watch (c, TRUE);
    }
  g_ptr_array_set_size (dirty, 0);
}

static void
on_signal (int sig)
{
  (void)sig;
  stopping = 1;
}

int
main (int argc, char **argv)
{
  char *opt_listen = NULL, *opt_input = NULL;
  GOptionEntry entries[] = { { "listen", 0, 0, G_OPTION_ARG_STRING, &opt_listen,
                               "HTTP address", "HOST:PORT" },
                             { "input", 0, 0, G_OPTION_ARG_STRING, &opt_input,
                               "UDP address of the events", "HOST:PORT" },
                             { NULL } };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("");
  g_autoptr (GError) error = NULL;
  struct epoll_event ev = { .events = EPOLLIN };
  struct rlimit rl;
  int listen_tag, input_tag;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || !opt_listen
      || !opt_input)
    {
      g_printerr ("usage: bench-floor --listen HOST:PORT --input HOST:PORT\n");
      return 2;
    }
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0)
    {
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
    }
  signal (SIGPIPE, SIG_IGN);
  signal (SIGTERM, on_signal);
  signal (SIGINT, on_signal);
  listen_fd = bind_socket (opt_listen, SOCK_STREAM);
  input_fd = bind_socket (opt_input, SOCK_DGRAM);
  if (listen_fd < 0 || input_fd < 0)
    {
      g_printerr ("bench-floor: cannot bind %s or %s: %s\n", opt_listen,
                  opt_input, g_strerror (errno));
      return 1;
    }
  {
    int size = 4 * 1024 * 1024;

    setsockopt (input_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  subscribers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify)g_ptr_array_unref);
  dirty = g_ptr_array_new ();
  epfd = epoll_create1 (EPOLL_CLOEXEC);
  ev.data.ptr = &listen_tag;
  epoll_ctl (epfd, EPOLL_CTL_ADD, listen_fd, &ev);
  ev.data.ptr = &input_tag;
  epoll_ctl (epfd, EPOLL_CTL_ADD, input_fd, &ev);

  while (!stopping)
    {
      struct epoll_event evs[256];
      int n = epoll_wait (epfd, evs, G_N_ELEMENTS (evs), 1000);

      for (int i = 0; i < n; i++)
        {
          if (evs[i].data.ptr == &listen_tag)
            accept_all ();
          else if (evs[i].data.ptr == &input_tag)
            read_input ();
          else
            {
              Conn *c = evs[i].data.ptr;

              if (c->fd < 0)
                continue;
              if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                conn_readable (c);
              if (c->fd >= 0 && (evs[i].events & EPOLLOUT) && !c->dirty)
                {
                  c->dirty = TRUE;
                  g_ptr_array_add (dirty, c);
                }
            }
        }
      flush_dirty ();
    }
  return 0;
}
