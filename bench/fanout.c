/* bench-fanout: what it costs the pusher and the broker to deliver each
 * event to many browsers, and how late the events arrive.
 *
 * One process, one epoll loop. It plays two parts:
 * - the worker: one DEALER per job to the broker's `workers` endpoint
 *   (hello with the bench type, ready, the job, heartbeats) and one PUB to
 *   `worker-events` (started, then progress at the target rate, spread
 *   evenly over the jobs, each progress message "t=<CLOCK_REALTIME µs>");
 * - the browsers: N SSE streams (GET /jobs/ID/events?after=2) or N
 *   WebSocket connections (GET /ws, one subscribe each), client i on job
 *   i % K, each parsed incrementally.
 * The K jobs are created through the api (POST /jobs), so events take the
 * real path: worker PUB → broker (records, gives seq) → pusher → client.
 * No jobwire-worker may serve the bench type.
 *
 * Per run it prints clients connected, events delivered, missing and
 * duplicated (by seq, per client), latency from publish to receipt, and,
 * for the processes given with --pid NAME=PID, CPU time (utime + stime)
 * per delivered event over the publishing window and the drain after it,
 * and memory per connection (VmRSS with every client connected, before
 * the first event, minus VmRSS before the first client, divided by the
 * clients connected; VmRSS after the run is printed too, as it also holds
 * the events kept for replay).
 *
 * The same load runs against the other servers of the side-by-side table
 * (bench/run-all) with --target: the clients, the events ("seq" and the
 * "t=" message in the same JSON) and the figures are the same; only the
 * URLs, the channels (named job-0000…, no api) and the way an event is
 * published differ:
 * - floor: bench-floor, GET /jobs/ID/events and /ws + subscribe as
 *   jobwire's; one UDP datagram "ID JSON" per event to --publish;
 * - nchan: nginx + nchan, GET /sub/ID (EventSource or WebSocket); an HTTP
 *   POST /pub/ID per event on one keep-alive connection to --publish;
 * - pushpin: GET /jobs/ID/events through Pushpin to an origin that holds
 *   the stream on channel ID, or /ws + subscribe, which Pushpin turns into
 *   WebSocket-over-HTTP requests to the origin, which subscribes the
 *   connection to channel ID; one ZeroMQ message per event, "J" and the
 *   publish item's JSON, PUSHed to the handler's push_in_spec (--publish:
 *   Pushpin's HTTP control port closes its connection after each
 *   request);
 * - fastapi: the FastAPI gateway, GET /jobs/ID/events and /ws + subscribe;
 *   a Redis PUBLISH per event to --publish.
 *
 * Usage: bench-fanout --api URL --pusher URL --runtime-dir DIR
 *                     [--transport sse|ws] [--clients N] [--jobs K]
 *                     [--rate EVENTS_PER_S] [--duration S] [--drain S]
 *                     [--pid NAME=PID]…
 *        bench-fanout --target floor|nchan|pushpin|fastapi --pusher URL
 *                     --publish HOST:PORT [the same options] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"
#include "jw-zmq.h"

#define BENCH_TYPE "bench-fanout"
/* Events 1 and 2 of every job are queued and started; progress follows. */
#define FIRST_SEQ 3
#define MAX_CONNECTING 64
#define MAX_ATTEMPTS 3
#define MAX_LATENCY_SAMPLES (50 * 1000 * 1000)

/* Where a chunked body is: in a size line, after its digits, in data,
 * after data (its CRLF). */
enum
{
  CHUNK_SIZE,
  CHUNK_SIZE_END,
  CHUNK_DATA,
  CHUNK_DATA_END
};

static char *opt_api = NULL;
static char *opt_pusher = NULL;
static char *opt_dir = NULL;
static char *opt_transport = NULL;
static int opt_clients = 1000;
static int opt_jobs = 100;
static int opt_rate = 2000;
static double opt_duration = 10;
static double opt_drain = 2;
static char **opt_pids = NULL;
static char *opt_target = NULL;
static char *opt_publish = NULL;
static double opt_settle = -1;

typedef enum
{
  TARGET_JOBWIRE,
  TARGET_FLOOR,
  TARGET_NCHAN,
  TARGET_PUSHPIN,
  TARGET_FASTAPI
} Target;

static Target target = TARGET_JOBWIRE;
#define PUBLISH_CONNS 16

typedef struct
{
  int fd;
  GByteArray *in;  /* replies not yet counted */
  GQueue *pending; /* GBytes requests not yet sent */
  gboolean busy;   /* a request is in flight */
  guint64 replies;
} PubConn;

static PubConn pub_conns[PUBLISH_CONNS];
static zsock_t *pushpin_push; /* to Pushpin's push_in_spec */
static int n_pub_conns;
static guint pub_next;
static char publish_hostport[256];

static void poll_clients (int timeout_ms);

typedef enum
{
  CLIENT_IDLE,       /* not yet connecting */
  CLIENT_CONNECTING, /* connect() in progress, request not sent */
  CLIENT_HEAD,       /* waiting for the response head */
  CLIENT_SUBSCRIBING,
  CLIENT_OPEN,
  CLIENT_CLOSED
} ClientState;

typedef struct
{
  int fd;
  int job;
  int attempts;
  ClientState state;
  GByteArray *in;     /* bytes read and not yet parsed */
  gboolean chunked;   /* an SSE body in chunked encoding, decoded into in */
  int chunk_phase;    /* CHUNK_SIZE … */
  guint64 chunk_left; /* of the size being read, or of the data to come */
  guint8 *counts;     /* receipts per seq - FIRST_SEQ, saturating */
  guint n_counts;
  guint64 received;
  guint64 unexpected; /* events outside the published range */
  gboolean counted;   /* open when publishing started */
} Client;

typedef struct
{
  zsock_t *dealer;
  char id[32];
  gint64 attempt;
  guint64 published;
} Job;

typedef struct
{
  char *name;
  int pid;
  guint64 cpu_ticks_start, cpu_ticks_end;
  guint64 rss_idle_kib, rss_loaded_kib, rss_end_kib;
  gboolean gone; /* could not be read at the end */
} Proc;

static struct sockaddr_storage pusher_addr;
static socklen_t pusher_addrlen;
static char pusher_hostport[256];
static int epfd;
static Client *clients;
static Job *jobs;
static zsock_t *pub;
static guint32 *latencies;
static gsize n_latencies, cap_latencies;
static guint64 latency_dropped;
static int n_open, n_failed;
static gboolean ws;

/* One blocking HTTP/1.1 request with Connection: close; the status, and
 * the body in *body. */
static int
http_request (const char *url, const char *method, const char *path,
              const char *json, char **body)
{
  struct sockaddr_storage addr;
  socklen_t len;
  char hostport[256];
  g_autofree char *req = NULL;
  g_autoptr (GString) resp = g_string_new (NULL);
  char buf[4096];
  ssize_t n;
  int fd, status = 0;
  const char *sep;
  struct timeval timeout = { 10, 0 }; /* a stuck api ends the run */

  *body = NULL;
  if (!bench_parse_url (url, &addr, &len, hostport, sizeof hostport))
    return 0;
  fd = socket (addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0)
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (fd < 0 || connect (fd, (struct sockaddr *)&addr, len) < 0)
    {
      if (fd >= 0)
        close (fd);
      return 0;
    }
  req = g_strdup_printf ("%s %s HTTP/1.1\r\nHost: %s\r\n"
                         "Connection: close\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         method, path, hostport, json ? strlen (json) : 0,
                         json ? json : "");
  if (write (fd, req, strlen (req)) != (ssize_t)strlen (req))
    {
      close (fd);
      return 0;
    }
  while ((n = read (fd, buf, sizeof buf)) > 0)
    g_string_append_len (resp, buf, n);
  close (fd);
  if (sscanf (resp->str, "HTTP/1.%*d %d", &status) != 1)
    return 0;
  sep = strstr (resp->str, "\r\n\r\n");
  *body = g_strdup (sep ? sep + 4 : "");
  return status;
}

/* The string value of "name":"…" in json (no escapes expected), or NULL. */
static char *
json_string_member (const char *json, const char *name)
{
  g_autofree char *key = g_strdup_printf ("\"%s\":\"", name);
  const char *p = strstr (json, key), *end;

  if (p == NULL)
    return NULL;
  p += strlen (key);
  end = strchr (p, '"');
  return end ? g_strndup (p, end - p) : NULL;
}

static gboolean
read_proc (Proc *p, guint64 *cpu_ticks, guint64 *rss_kib)
{
  return bench_proc_ticks (p->pid, cpu_ticks)
         && bench_proc_rss (p->pid, rss_kib);
}

/* ---- the worker side ---------------------------------------------- */

static void
send2 (zsock_t *sock, const char *a, const char *b)
{
  zmq_send (zsock_resolve (sock), a, strlen (a), ZMQ_SNDMORE | ZMQ_DONTWAIT);
  zmq_send (zsock_resolve (sock), b, strlen (b), ZMQ_DONTWAIT);
}

/* Reads one [verb][json] from a dealer without blocking. */
static gboolean
recv2 (zsock_t *sock, char **verb, char **json)
{
  zmsg_t *msg;

  *verb = *json = NULL;
  if (!(zsock_events (sock) & ZMQ_POLLIN))
    return FALSE;
  msg = zmsg_recv (sock);
  if (msg == NULL)
    return FALSE;
  *verb = zmsg_popstr (msg);
  *json = zmsg_popstr (msg);
  zmsg_destroy (&msg);
  return *verb != NULL;
}

static void
heartbeat_all (gboolean with_job)
{
  if (target != TARGET_JOBWIRE)
    return;
  for (int j = 0; j < opt_jobs; j++)
    {
      g_autofree char *hb = NULL;

      if (with_job && jobs[j].id[0] != '\0')
        hb = g_strdup_printf ("{\"job\":\"%s\",\"attempt\":%" G_GINT64_FORMAT
                              "}",
                              jobs[j].id, jobs[j].attempt);
      else
        hb = g_strdup ("{\"job\":null,\"attempt\":0}");
      send2 (jobs[j].dealer, "heartbeat", hb);
    }
}

/* Says hello on every dealer until each has its welcome. */
static gboolean
workers_join (const char *dir)
{
  g_autofree char *wep = g_strdup_printf ("ipc://%s/workers", dir);
  g_autofree char *eep = g_strdup_printf ("ipc://%s/worker-events", dir);
  g_autoptr (GError) error = NULL;
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  gboolean *welcomed = g_new0 (gboolean, opt_jobs);
  int n_welcomed = 0;
  gint64 next_hello = 0;

  pub = jw_zmq_socket (ZMQ_PUB, 0);
  zsock_set_sndhwm (pub, 0);
  if (!jw_zmq_connect (pub, eep, &error))
    g_error ("%s", error->message);
  for (int j = 0; j < opt_jobs; j++)
    {
      jobs[j].dealer = jw_zmq_socket (ZMQ_DEALER, 0);
      if (!jw_zmq_connect (jobs[j].dealer, wep, &error))
        g_error ("%s", error->message);
    }
  while (n_welcomed < opt_jobs && g_get_monotonic_time () < deadline)
    {
      if (g_get_monotonic_time () >= next_hello)
        {
          for (int j = 0; j < opt_jobs; j++)
            if (!welcomed[j])
              {
                g_autofree char *hello = g_strdup_printf (
                    "{\"worker\":\"bench-%d\",\"types\":[\"" BENCH_TYPE
                    "\"],\"pid\":%d}",
                    j, (int)getpid ());
                send2 (jobs[j].dealer, "hello", hello);
              }
          next_hello = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
        }
      g_usleep (10000);
      for (int j = 0; j < opt_jobs; j++)
        {
          g_autofree char *verb = NULL, *json = NULL;

          while (recv2 (jobs[j].dealer, &verb, &json))
            {
              if (g_str_equal (verb, "welcome") && !welcomed[j])
                {
                  welcomed[j] = TRUE;
                  n_welcomed++;
                }
              g_clear_pointer (&verb, g_free);
              g_clear_pointer (&json, g_free);
            }
        }
    }
  g_free (welcomed);
  return n_welcomed == opt_jobs;
}

/* Creates the jobs through the api, takes one on each dealer and reports
 * it started. */
static gboolean
jobs_start (void)
{
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  int created = 0, taken = 0;
  gint64 last_hb = g_get_monotonic_time ();

  for (int j = 0; j < opt_jobs; j++)
    send2 (jobs[j].dealer, "ready", "{}");
  while (created < opt_jobs && g_get_monotonic_time () < deadline)
    {
      g_autofree char *body = NULL;
      int status =
          http_request (opt_api, "POST", "/jobs",
                        "{\"type\":\"" BENCH_TYPE "\",\"params\":{}}", &body);

      if (status == 202 || status == 201)
        created++;
      else if (status == 422)
        g_usleep (100000); /* the type is not yet known to the api */
      else
        {
          g_printerr ("POST /jobs answered %d: %s\n", status, body ? body : "");
          return FALSE;
        }
    }
  while (taken < opt_jobs && g_get_monotonic_time () < deadline)
    {
      g_usleep (5000);
      for (int j = 0; j < opt_jobs; j++)
        {
          g_autofree char *verb = NULL, *json = NULL;

          while (recv2 (jobs[j].dealer, &verb, &json))
            {
              g_autofree char *id = NULL;
              const char *a;

              if (g_str_equal (verb, "job") && jobs[j].id[0] == '\0'
                  && (id = json_string_member (json, "id")) != NULL
                  && strlen (id) < sizeof jobs[j].id)
                {
                  strcpy (jobs[j].id, id);
                  a = strstr (json, "\"attempt\":");
                  jobs[j].attempt = a ? g_ascii_strtoll (
                                        a + strlen ("\"attempt\":"), NULL, 10)
                                      : 1;
                  taken++;
                }
              g_clear_pointer (&verb, g_free);
              g_clear_pointer (&json, g_free);
            }
        }
      if (g_get_monotonic_time () - last_hb > G_USEC_PER_SEC / 2)
        {
          heartbeat_all (TRUE);
          last_hb = g_get_monotonic_time ();
        }
    }
  if (taken < opt_jobs)
    {
      g_printerr ("only %d of %d jobs (%d created) reached the bench "
                  "workers\n",
                  taken, opt_jobs, created);
      return FALSE;
    }
  for (int j = 0; j < opt_jobs; j++)
    {
      g_autofree char *ev =
          g_strdup_printf ("{\"job\":\"%s\",\"attempt\":%" G_GINT64_FORMAT
                           ",\"type\":\"started\"}",
                           jobs[j].id, jobs[j].attempt);
      send2 (pub, jobs[j].id, ev);
    }
  /* Every job must show its started event (seq 2) before clients ask for
   * what follows it. */
  for (int j = 0; j < opt_jobs; j++)
    {
      g_autofree char *path = g_strdup_printf ("/jobs/%s", jobs[j].id);
      gboolean running = FALSE;

      while (!running && g_get_monotonic_time () < deadline)
        {
          g_autofree char *body = NULL;

          running = http_request (opt_api, "GET", path, NULL, &body) == 200
                    && strstr (body, "\"seq\":2") != NULL;
          if (!running)
            g_usleep (20000);
        }
      if (!running)
        {
          g_printerr ("job %s did not reach seq 2 (started)\n", jobs[j].id);
          return FALSE;
        }
    }
  return TRUE;
}

/* ---- the anchors' publishers ------------------------------------- */

/* Connections to --publish: a connected UDP socket for the floor; for
 * the others PUBLISH_CONNS TCP connections kept alive, each with at most
 * one request in flight (nginx + nchan stalls on pipelined POSTs), the
 * next request going to an idle connection. Their replies wake the loop
 * like the clients' data. */
static gboolean
publisher_open (void)
{
  g_autofree char *url = g_strdup_printf ("http://%s", opt_publish);
  struct sockaddr_storage addr;
  socklen_t len;
  int one = 1, n = target == TARGET_FLOOR ? 1 : PUBLISH_CONNS;

  if (!bench_parse_url (url, &addr, &len, publish_hostport,
                        sizeof publish_hostport))
    return FALSE;
  if (target == TARGET_PUSHPIN)
    {
      g_autofree char *ep = g_strdup_printf ("tcp://%s", opt_publish);
      g_autoptr (GError) error = NULL;

      pushpin_push = jw_zmq_socket (ZMQ_PUSH, 0);
      zsock_set_sndhwm (pushpin_push, 0);
      if (!jw_zmq_connect (pushpin_push, ep, &error))
        {
          g_printerr ("%s\n", error->message);
          return FALSE;
        }
      return TRUE;
    }
  for (int i = 0; i < n; i++)
    {
      PubConn *pc = &pub_conns[i];
      struct epoll_event ev = { .events = EPOLLIN, .data.ptr = pc };

      pc->fd = socket (addr.ss_family,
                       (target == TARGET_FLOOR ? SOCK_DGRAM : SOCK_STREAM)
                           | SOCK_CLOEXEC,
                       0);
      if (pc->fd < 0 || connect (pc->fd, (struct sockaddr *)&addr, len) < 0)
        {
          g_printerr ("cannot connect to %s: %s\n", opt_publish,
                      g_strerror (errno));
          return FALSE;
        }
      pc->in = g_byte_array_new ();
      pc->pending = g_queue_new ();
      if (target == TARGET_FLOOR)
        continue;
      setsockopt (pc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      epoll_ctl (epfd, EPOLL_CTL_ADD, pc->fd, &ev);
    }
  n_pub_conns = n;
  return TRUE;
}

/* Sends pc's next request when none is in flight. The socket blocks on
 * writes: with one request in flight its buffer is never full. */
static void
publisher_pump (PubConn *pc)
{
  GBytes *req;
  gsize len;
  const char *data;

  if (pc->busy || pc->fd < 0 || (req = g_queue_pop_head (pc->pending)) == NULL)
    return;
  data = g_bytes_get_data (req, &len);
  if (write (pc->fd, data, len) != (gssize)len)
    g_printerr ("publisher: %s\n", g_strerror (errno));
  g_bytes_unref (req);
  pc->busy = TRUE;
}

static void
publisher_send (char *req, gsize len)
{
  PubConn *best = NULL;

  for (int i = 0; i < n_pub_conns; i++)
    {
      PubConn *pc = &pub_conns[(pub_next + i) % n_pub_conns];

      if (pc->fd >= 0
          && (best == NULL
              || pc->busy + pc->pending->length
                     < best->busy + best->pending->length))
        best = pc;
    }
  pub_next++;
  if (best == NULL)
    {
      g_free (req);
      return;
    }
  g_queue_push_tail (best->pending, g_bytes_new_take (req, len));
  publisher_pump (best);
}

/* Reads the replies of pc; each one frees it for the next request. A
 * reply that says an error is printed, the first only. */
static void
publisher_readable (PubConn *pc)
{
  static gboolean told;
  const char *marker = target == TARGET_FASTAPI ? "\r\n" : "HTTP/1.1 ";
  gsize mlen = strlen (marker);
  char buf[16384];
  ssize_t n;

  while ((n = recv (pc->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
    g_byte_array_append (pc->in, (guint8 *)buf, n);
  if (n == 0)
    {
      g_printerr ("publisher: %s closed a connection\n", opt_publish);
      epoll_ctl (epfd, EPOLL_CTL_DEL, pc->fd, NULL);
      close (pc->fd);
      pc->fd = -1;
      return;
    }
  for (;;)
    {
      const char *data = (const char *)pc->in->data;
      const char *m = memmem (data, pc->in->len, marker, mlen);
      gsize used;
      gboolean error;

      if (m == NULL)
        break;
      if (target == TARGET_FASTAPI)
        {
          error = data[0] == '-';
          used = m + mlen - data;
        }
      else
        {
          if ((gsize)(m + mlen - data) >= pc->in->len)
            break; /* the status is not here yet */
          error = m[mlen] != '2';
          used = m + mlen - data;
        }
      if (error && !told)
        {
          g_printerr ("publisher: %.*s\n", (int)MIN (pc->in->len, 200), data);
          told = TRUE;
        }
      g_byte_array_remove_range (pc->in, 0, used);
      pc->busy = FALSE;
      pc->replies++;
      publisher_pump (pc);
    }
}

/* Event n of job j in the JSON of a jobwire progress event, with the seq
 * jobwire would give it, in the form each anchor takes. */
static void
publish_anchor (int j, guint64 n)
{
  char ev[256];
  int len;

  len = g_snprintf (
      ev, sizeof ev,
      "{\"job\":\"%s\",\"seq\":%" G_GUINT64_FORMAT
      ",\"type\":\"progress\",\"progress\":{\"done\":%" G_GUINT64_FORMAT
      ",\"message\":\"t=%" G_GINT64_FORMAT "\"}}",
      jobs[j].id, n + FIRST_SEQ - 1, n, bench_now_us (CLOCK_REALTIME));
  switch (target)
    {
    case TARGET_FLOOR:
      {
        char dgram[320];
        int dlen = g_snprintf (dgram, sizeof dgram, "%s %s", jobs[j].id, ev);

        if (send (pub_conns[0].fd, dgram, dlen, 0) < 0)
          g_printerr ("publisher: %s\n", g_strerror (errno));
        return;
      }
    case TARGET_NCHAN:
      {
        char *req = g_strdup_printf (
            "POST /pub/%s HTTP/1.1\r\nHost: %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
            jobs[j].id, publish_hostport, len, ev);

        publisher_send (req, strlen (req));
        break;
      }
    case TARGET_PUSHPIN:
      {
        g_autoptr (GString) body = g_string_new (NULL);

        /* The event as an SSE block or as a WebSocket text message. */
        g_string_printf (body, "J{\"channel\":\"%s\",\"formats\":{%s",
                         jobs[j].id,
                         ws ? "\"ws-message\":{\"content\":\""
                            : "\"http-stream\":{\"content\":\"event: "
                              "progress\\ndata: ");
        for (int i = 0; i < len; i++)
          {
            if (ev[i] == '"')
              g_string_append_c (body, '\\');
            g_string_append_c (body, ev[i]);
          }
        g_string_append (body, ws ? "\"}}}" : "\\n\\n\"}}}");
        if (zmq_send (zsock_resolve (pushpin_push), body->str, body->len,
                      ZMQ_DONTWAIT)
            < 0)
          g_printerr ("publisher: %s\n", zmq_strerror (errno));
        break;
      }
    case TARGET_FASTAPI:
      {
        char *cmd = g_strdup_printf (
            "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%d\r\n%s\r\n",
            strlen (jobs[j].id), jobs[j].id, len, ev);

        publisher_send (cmd, strlen (cmd));
        break;
      }
    case TARGET_JOBWIRE: g_assert_not_reached ();
    }
}

static void
publish (int j, guint64 n)
{
  char ev[256];

  if (target != TARGET_JOBWIRE)
    {
      publish_anchor (j, n);
      return;
    }
  g_snprintf (ev, sizeof ev,
              "{\"job\":\"%s\",\"attempt\":%" G_GINT64_FORMAT
              ",\"type\":\"progress\",\"progress\":{\"done\":%" G_GUINT64_FORMAT
              ",\"message\":\"t=%" G_GINT64_FORMAT "\"}}",
              jobs[j].id, jobs[j].attempt, n, bench_now_us (CLOCK_REALTIME));
  send2 (pub, jobs[j].id, ev);
}

/* ---- the browser side ---------------------------------------------- */

static void
client_close (Client *c, gboolean failed)
{
  if (c->fd >= 0)
    {
      epoll_ctl (epfd, EPOLL_CTL_DEL, c->fd, NULL);
      close (c->fd);
      c->fd = -1;
    }
  if (c->state == CLIENT_OPEN)
    n_open--;
  if (failed && c->state != CLIENT_OPEN && c->attempts < MAX_ATTEMPTS)
    {
      c->state = CLIENT_IDLE; /* tried again */
      g_byte_array_set_size (c->in, 0);
      c->chunked = FALSE;
      c->chunk_phase = CHUNK_SIZE;
      c->chunk_left = 0;
      return;
    }
  if (failed)
    n_failed++;
  c->state = CLIENT_CLOSED;
}

static void
client_connect (Client *c)
{
  struct epoll_event ev = { 0 };
  int one = 1;

  c->attempts++;
  c->fd = socket (pusher_addr.ss_family,
                  SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    {
      g_printerr ("socket: %s\n", g_strerror (errno));
      c->state = CLIENT_CLOSED;
      n_failed++;
      return;
    }
  setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->state = CLIENT_CONNECTING;
  if (connect (c->fd, (struct sockaddr *)&pusher_addr, pusher_addrlen) < 0
      && errno != EINPROGRESS)
    {
      client_close (c, TRUE);
      return;
    }
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.ptr = c;
  epoll_ctl (epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

/* A masked client frame of opcode with payload, written at once. */
static gboolean
ws_send (Client *c, int opcode, const char *payload, gsize len)
{
  guint8 frame[256];
  gsize n = bench_ws_frame (frame, sizeof frame, opcode, payload, len);

  return n > 0 && write (c->fd, frame, n) == (ssize_t)n;
}

static void
client_send_request (Client *c)
{
  g_autofree char *req = NULL;
  struct epoll_event ev = { 0 };

  g_autofree char *path = NULL;

  /* nchan serves both transports on one location per channel. */
  if (target == TARGET_NCHAN)
    path = g_strdup_printf ("/sub/%s", jobs[c->job].id);
  else if (ws)
    path = g_strdup ("/ws");
  else
    path = g_strdup_printf ("/jobs/%s/events?after=%d", jobs[c->job].id,
                            FIRST_SEQ - 1);
  if (ws)
    {
      guint8 key[16];
      g_autofree char *key64 = NULL;

      for (int i = 0; i < 16; i++)
        key[i] = g_random_int_range (0, 256);
      key64 = g_base64_encode (key, sizeof key);
      req = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: %s\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: %s\r\n"
                             "Sec-WebSocket-Version: 13\r\n\r\n",
                             path, pusher_hostport, key64);
    }
  else
    req = g_strdup_printf ("GET %s HTTP/1.1\r\n"
                           "Host: %s\r\nAccept: text/event-stream\r\n\r\n",
                           path, pusher_hostport);
  /* A fresh socket takes a few hundred bytes at once. */
  if (write (c->fd, req, strlen (req)) != (ssize_t)strlen (req))
    {
      client_close (c, TRUE);
      return;
    }
  c->state = CLIENT_HEAD;
  ev.events = EPOLLIN;
  ev.data.ptr = c;
  epoll_ctl (epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* One event's JSON: counts its seq and its latency. */
static void
client_event (Client *c, const char *json, gsize len, gint64 now)
{
  const char *p;
  gint64 seq, sent;
  guint64 idx;

  if (memmem (json, len, "\"type\":\"progress\"", 17) == NULL)
    return;
  p = memmem (json, len, "\"seq\":", 6);
  if (p == NULL)
    return;
  seq = g_ascii_strtoll (p + 6, NULL, 10);
  p = memmem (json, len, "\"message\":\"t=", 13);
  sent = p ? g_ascii_strtoll (p + 13, NULL, 10) : 0;
  c->received++;
  if (seq < FIRST_SEQ || seq - FIRST_SEQ >= 1 << 24)
    {
      c->unexpected++;
      return;
    }
  idx = seq - FIRST_SEQ;
  if (idx >= c->n_counts)
    {
      guint n = MAX (idx + 1, c->n_counts * 2);

      c->counts = g_realloc (c->counts, n);
      memset (c->counts + c->n_counts, 0, n - c->n_counts);
      c->n_counts = n;
    }
  if (c->counts[idx] < 255)
    c->counts[idx]++;
  if (sent > 0)
    {
      if (n_latencies == cap_latencies)
        {
          if (cap_latencies >= MAX_LATENCY_SAMPLES)
            {
              latency_dropped++;
              return;
            }
          cap_latencies = MAX (cap_latencies * 2, 65536);
          latencies = g_renew (guint32, latencies, cap_latencies);
        }
      latencies[n_latencies++] = (guint32)CLAMP (now - sent, 0, G_MAXUINT32);
    }
}

/* Consumes whole SSE events from c->in; returns the bytes used. */
static gsize
parse_sse (Client *c, const char *buf, gsize len, gint64 now)
{
  gsize used = 0;

  while (used < len)
    {
      const char *end = memmem (buf + used, len - used, "\n\n", 2);
      const char *data;

      if (end == NULL)
        break;
      data = memmem (buf + used, end - (buf + used), "data: ", 6);
      if (data != NULL)
        client_event (c, data + 6, end - (data + 6), now);
      used = end + 2 - buf;
    }
  return used;
}

/* Consumes whole WebSocket frames; returns the bytes used, or -1 when the
 * connection must close. */
static gssize
parse_ws (Client *c, const char *buf, gsize len, gint64 now)
{
  gsize used = 0;

  while (len - used >= 2)
    {
      const guint8 *b = (const guint8 *)buf + used;
      guint8 first;
      gboolean masked;
      guint64 plen;
      gsize h = bench_ws_frame_head (b, len - used, &first, &masked, &plen);
      int opcode;

      if (h == 0)
        break;
      opcode = first & 0x0f;
      if (masked)
        return -1; /* a server never masks */
      if (!(first & 0x80) || opcode == 0)
        return -1; /* the pusher sends whole messages */
      if (opcode == 1)
        {
          const char *json = (const char *)b + h;

          if (c->state == CLIENT_SUBSCRIBING
              && memmem (json, plen, "\"op\":\"subscribed\"", 17) != NULL)
            {
              c->state = CLIENT_OPEN;
              n_open++;
            }
          else if (memmem (json, plen, "\"op\":\"error\"", 12) != NULL)
            {
              g_printerr ("client: %.*s\n", (int)plen, json);
              return -1;
            }
          else
            client_event (c, json, plen, now);
        }
      else if (opcode == 9)
        ws_send (c, 10, (const char *)b + h, plen);
      else if (opcode == 8)
        return -1;
      used += h + plen;
    }
  return used;
}

/* Appends the data of a chunked body's bytes to c->in: a server may
 * split an event across chunks, so the chunk framing is taken out before
 * events are parsed. */
static void
client_dechunk (Client *c, const char *p, gsize n)
{
  for (gsize i = 0; i < n;)
    switch (c->chunk_phase)
      {
      case CHUNK_SIZE:
        if (g_ascii_isxdigit (p[i]))
          c->chunk_left = c->chunk_left * 16 + g_ascii_xdigit_value (p[i++]);
        else
          c->chunk_phase = CHUNK_SIZE_END;
        break;
      case CHUNK_SIZE_END:
        if (p[i++] == '\n')
          c->chunk_phase = c->chunk_left > 0 ? CHUNK_DATA : CHUNK_DATA_END;
        break;
      case CHUNK_DATA:
        {
          gsize take = MIN (c->chunk_left, n - i);

          g_byte_array_append (c->in, (const guint8 *)p + i, take);
          i += take;
          c->chunk_left -= take;
          if (c->chunk_left == 0)
            c->chunk_phase = CHUNK_DATA_END;
          break;
        }
      case CHUNK_DATA_END:
        if (p[i++] == '\n')
          {
            c->chunk_phase = CHUNK_SIZE;
            c->chunk_left = 0;
          }
        break;
      }
}

static void
client_head (Client *c)
{
  const char *buf = (const char *)c->in->data;
  const char *end = memmem (buf, c->in->len, "\r\n\r\n", 4);
  int status = 0;

  if (end == NULL)
    return;
  sscanf (buf, "HTTP/1.%*d %d", &status);
  if (status != (ws ? 101 : 200))
    {
      g_printerr ("client: answered %d\n", status);
      client_close (c, TRUE);
      return;
    }
  {
    g_autofree char *head = g_strndup (buf, end - buf);

    c->chunked = !ws && strcasestr (head, "\ntransfer-encoding: chunked");
  }
  g_byte_array_remove_range (c->in, 0, end + 4 - buf);
  if (c->chunked && c->in->len > 0)
    {
      g_autoptr (GByteArray) body = c->in;

      c->in = g_byte_array_new ();
      client_dechunk (c, (const char *)body->data, body->len);
    }
  if (ws && target != TARGET_NCHAN)
    {
      char sub[128];
      int n = g_snprintf (sub, sizeof sub,
                          "{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":%d}",
                          jobs[c->job].id, FIRST_SEQ - 1);

      c->state = CLIENT_SUBSCRIBING;
      if (!ws_send (c, 1, sub, n))
        client_close (c, TRUE);
    }
  else
    {
      c->state = CLIENT_OPEN;
      n_open++;
    }
}

static void
client_readable (Client *c, gint64 now)
{
  static char buf[65536];
  ssize_t n;

  for (int turn = 0; turn < 16; turn++)
    {
      gssize used;

      n = read (c->fd, buf, sizeof buf);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
      if (n <= 0)
        {
          client_close (c, TRUE);
          return;
        }
      if (c->chunked)
        client_dechunk (c, buf, n);
      else
        g_byte_array_append (c->in, (guint8 *)buf, n);
      if (c->state == CLIENT_HEAD)
        client_head (c);
      if (c->state != CLIENT_OPEN && c->state != CLIENT_SUBSCRIBING)
        return;
      used = ws ? parse_ws (c, (char *)c->in->data, c->in->len, now)
                : (gssize)parse_sse (c, (char *)c->in->data, c->in->len, now);
      if (used < 0)
        {
          client_close (c, TRUE);
          return;
        }
      g_byte_array_remove_range (c->in, 0, used);
      if ((gsize)n < sizeof buf)
        return;
    }
}

static void
poll_clients (int timeout_ms)
{
  struct epoll_event evs[256];
  int n = epoll_wait (epfd, evs, G_N_ELEMENTS (evs), timeout_ms);
  gint64 now = bench_now_us (CLOCK_REALTIME);

  for (int i = 0; i < n; i++)
    {
      Client *c = evs[i].data.ptr;

      if ((gpointer)c >= (gpointer)pub_conns
          && (gpointer)c < (gpointer)(pub_conns + PUBLISH_CONNS))
        {
          publisher_readable ((PubConn *)c);
          continue;
        }

      if (c->state == CLIENT_CONNECTING)
        {
          int err = 0;
          socklen_t len = sizeof err;

          getsockopt (c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0 || (evs[i].events & (EPOLLERR | EPOLLHUP)))
            client_close (c, TRUE);
          else if (evs[i].events & EPOLLOUT)
            client_send_request (c);
        }
      else if (c->fd >= 0)
        client_readable (c, now);
    }
}

static int
compare_u32 (const void *a, const void *b)
{
  guint32 x = *(const guint32 *)a, y = *(const guint32 *)b;

  return x < y ? -1 : x > y;
}

static double
percentile_ms (double q)
{
  gsize i;

  if (n_latencies == 0)
    return 0;
  i = (gsize)(q * (n_latencies - 1));
  return latencies[i] / 1000.0;
}

static void
raise_fd_limit (void)
{
  struct rlimit rl;
  rlim_t want = opt_clients + 4 * opt_jobs + 256;

  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want)
    {
      rl.rlim_cur = MIN (want, rl.rlim_max);
      setrlimit (RLIMIT_NOFILE, &rl);
      if (rl.rlim_cur < want)
        g_printerr ("warning: open files limited to %lu, %lu wanted\n",
                    (unsigned long)rl.rlim_cur, (unsigned long)want);
    }
}

int
main (int argc, char **argv)
{
  GOptionEntry entries[] = {
    { "api", 0, 0, G_OPTION_ARG_STRING, &opt_api, "api base URL", "URL" },
    { "pusher", 0, 0, G_OPTION_ARG_STRING, &opt_pusher, "pusher base URL",
      "URL" },
    { "runtime-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_dir,
      "the broker's runtime directory (ipc endpoints)", "DIR" },
    { "transport", 0, 0, G_OPTION_ARG_STRING, &opt_transport,
      "sse or ws (default sse)", "T" },
    { "clients", 0, 0, G_OPTION_ARG_INT, &opt_clients,
      "connections (default 1000)", "N" },
    { "jobs", 0, 0, G_OPTION_ARG_INT, &opt_jobs, "jobs (default 100)", "K" },
    { "rate", 0, 0, G_OPTION_ARG_INT, &opt_rate,
      "progress events per second over all jobs (default 2000)", "R" },
    { "duration", 0, 0, G_OPTION_ARG_DOUBLE, &opt_duration,
      "seconds of publishing (default 10)", "S" },
    { "drain", 0, 0, G_OPTION_ARG_DOUBLE, &opt_drain,
      "seconds to wait for the last events (default 2)", "S" },
    { "pid", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_pids,
      "a server process to measure (repeatable)", "NAME=PID" },
    { "target", 0, 0, G_OPTION_ARG_STRING, &opt_target,
      "jobwire (default), floor, nchan, pushpin or fastapi", "T" },
    { "publish", 0, 0, G_OPTION_ARG_STRING, &opt_publish,
      "where an anchor takes its events", "HOST:PORT" },
    { "settle", 0, 0, G_OPTION_ARG_DOUBLE, &opt_settle,
      "seconds between the last client connected and the first event "
      "(default 0 for jobwire, 1 for the anchors, whose subscriptions may "
      "trail their response heads)",
      "S" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("");
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) procs = g_array_new (FALSE, TRUE, sizeof (Proc));
  gint64 start, end, last_hb, connect_deadline;
  guint64 total_published = 0, delivered = 0, missing = 0, duplicated = 0,
          unexpected = 0, expected = 0;
  int closed_early = 0, n_connected;
  int next_client = 0, connecting;
  double elapsed;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  {
    static const char *const names[] = { "jobwire", "floor", "nchan", "pushpin",
                                         "fastapi" };
    int t = opt_target ? -1 : TARGET_JOBWIRE;

    for (guint i = 0; opt_target && i < G_N_ELEMENTS (names); i++)
      if (g_str_equal (opt_target, names[i]))
        t = i;
    if (t < 0)
      {
        g_printerr ("--target is jobwire, floor, nchan, pushpin or fastapi\n");
        return 2;
      }
    target = t;
  }
  if (target == TARGET_JOBWIRE
          ? opt_api == NULL || opt_pusher == NULL || opt_dir == NULL
          : opt_pusher == NULL || opt_publish == NULL)
    {
      g_printerr ("--api, --pusher and --runtime-dir are needed (--pusher "
                  "and --publish with another --target)\n");
      return 2;
    }
  if (opt_clients < 1 || opt_jobs < 1 || opt_rate < 1 || opt_duration <= 0)
    {
      g_printerr ("counts must be positive\n");
      return 2;
    }
  if (opt_settle < 0)
    opt_settle = target == TARGET_JOBWIRE ? 0 : 1;
  ws = g_strcmp0 (opt_transport, "ws") == 0;
  if (opt_transport != NULL && !ws && !g_str_equal (opt_transport, "sse"))
    {
      g_printerr ("--transport is sse or ws\n");
      return 2;
    }
  if (!bench_parse_url (opt_pusher, &pusher_addr, &pusher_addrlen,
                        pusher_hostport, sizeof pusher_hostport))
    {
      g_printerr ("cannot use pusher URL %s\n", opt_pusher);
      return 2;
    }
  for (int i = 0; opt_pids != NULL && opt_pids[i] != NULL; i++)
    {
      const char *eq = strchr (opt_pids[i], '=');
      Proc p = { 0 };

      if (eq == NULL || (p.pid = atoi (eq + 1)) <= 0)
        {
          g_printerr ("--pid wants NAME=PID\n");
          return 2;
        }
      p.name = g_strndup (opt_pids[i], eq - opt_pids[i]);
      g_array_append_val (procs, p);
    }
  raise_fd_limit ();
  jw_zmq_init ();
  jobs = g_new0 (Job, opt_jobs);
  clients = g_new0 (Client, opt_clients);
  epfd = epoll_create1 (EPOLL_CLOEXEC);

  if (target != TARGET_JOBWIRE)
    {
      /* The anchors have no api: a channel exists once used. */
      for (int j = 0; j < opt_jobs; j++)
        g_snprintf (jobs[j].id, sizeof jobs[j].id, "job-%04d", j);
      if (!publisher_open ())
        return 1;
    }
  else if (!workers_join (opt_dir))
    {
      g_printerr ("the broker did not welcome every bench worker\n");
      return 1;
    }
  else if (!jobs_start ())
    return 1;

  for (guint i = 0; i < procs->len; i++)
    {
      Proc *p = &g_array_index (procs, Proc, i);
      guint64 ticks;

      if (!read_proc (p, &ticks, &p->rss_idle_kib))
        g_printerr ("cannot read /proc/%d\n", p->pid);
    }

  /* Connect, at most MAX_CONNECTING at a time. */
  for (int i = 0; i < opt_clients; i++)
    {
      clients[i].fd = -1;
      clients[i].job = i % opt_jobs;
      clients[i].in = g_byte_array_new ();
    }
  last_hb = g_get_monotonic_time ();
  connect_deadline =
      g_get_monotonic_time () + (30 + opt_clients / 200) * G_USEC_PER_SEC;
  while (n_open + n_failed < opt_clients
         && g_get_monotonic_time () < connect_deadline)
    {
      connecting = 0;
      for (int i = 0; i < opt_clients; i++)
        if (clients[i].state >= CLIENT_CONNECTING
            && clients[i].state <= CLIENT_SUBSCRIBING)
          connecting++;
      for (int i = 0; i < opt_clients && connecting < MAX_CONNECTING; i++)
        {
          int k = (next_client + i) % opt_clients;

          if (clients[k].state == CLIENT_IDLE)
            {
              client_connect (&clients[k]);
              connecting++;
              next_client = k + 1;
            }
        }
      poll_clients (10);
      if (g_get_monotonic_time () - last_hb > G_USEC_PER_SEC / 2)
        {
          heartbeat_all (TRUE);
          last_hb = g_get_monotonic_time ();
        }
    }
  g_print ("transport %s: %d of %d clients connected (%d failed), %d jobs\n",
           ws ? "ws" : "sse", n_open, opt_clients, n_failed, opt_jobs);
  end = g_get_monotonic_time () + (gint64)(opt_settle * G_USEC_PER_SEC);
  while (g_get_monotonic_time () < end)
    poll_clients (10);

  for (guint i = 0; i < procs->len; i++)
    {
      Proc *p = &g_array_index (procs, Proc, i);

      read_proc (p, &p->cpu_ticks_start, &p->rss_loaded_kib);
    }

  for (int i = 0; i < opt_clients; i++)
    clients[i].counted = clients[i].state == CLIENT_OPEN;
  n_connected = n_open;

  /* Publish at the rate, job after job, catching up after a late wake. */
  start = g_get_monotonic_time ();
  end = start + (gint64)(opt_duration * G_USEC_PER_SEC);
  while (g_get_monotonic_time () < end)
    {
      gint64 now = g_get_monotonic_time ();
      guint64 due =
          (guint64)((now - start) * (double)opt_rate / G_USEC_PER_SEC);

      while (total_published < due)
        {
          int j = total_published % opt_jobs;

          publish (j, ++jobs[j].published);
          total_published++;
        }
      if (now - last_hb > G_USEC_PER_SEC / 2)
        {
          heartbeat_all (TRUE);
          last_hb = now;
        }
      poll_clients (1);
    }
  elapsed = (g_get_monotonic_time () - start) / (double)G_USEC_PER_SEC;
  end = g_get_monotonic_time () + (gint64)(opt_drain * G_USEC_PER_SEC);
  while (g_get_monotonic_time () < end)
    {
      poll_clients (10);
      if (g_get_monotonic_time () - last_hb > G_USEC_PER_SEC / 2)
        {
          heartbeat_all (TRUE);
          last_hb = g_get_monotonic_time ();
        }
    }
  for (guint i = 0; i < procs->len; i++)
    {
      Proc *p = &g_array_index (procs, Proc, i);

      p->gone = !read_proc (p, &p->cpu_ticks_end, &p->rss_end_kib);
    }

  for (int i = 0; i < opt_clients; i++)
    {
      Client *c = &clients[i];
      guint64 pub_j = jobs[c->job].published;
      guint64 distinct = 0;

      if (!c->counted)
        continue;
      if (c->state != CLIENT_OPEN)
        closed_early++;
      expected += pub_j;
      for (guint k = 0; k < c->n_counts; k++)
        if (c->counts[k] > 0)
          {
            if (k < pub_j)
              distinct++;
            duplicated += c->counts[k] - 1;
          }
      delivered += distinct;
      missing += pub_j - distinct;
      unexpected += c->unexpected;
    }
  qsort (latencies, n_latencies, sizeof (guint32), compare_u32);

  g_print ("published %" G_GUINT64_FORMAT " progress events in %.1f s "
           "(%.0f/s)\n",
           total_published, elapsed, total_published / elapsed);
  g_print ("delivered %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
           ", missing %" G_GUINT64_FORMAT ", duplicated %" G_GUINT64_FORMAT
           ", unexpected %" G_GUINT64_FORMAT "\n",
           delivered, expected, missing, duplicated, unexpected);
  if (closed_early > 0)
    g_print ("%d clients were disconnected during the run\n", closed_early);
  if (n_pub_conns > 0 && target != TARGET_FLOOR)
    {
      guint64 replies = 0, waiting = 0;

      for (int i = 0; i < n_pub_conns; i++)
        {
          replies += pub_conns[i].replies;
          waiting += pub_conns[i].busy + pub_conns[i].pending->length;
        }
      g_print ("publisher: %" G_GUINT64_FORMAT " requests answered, "
               "%" G_GUINT64_FORMAT " not answered by the end\n",
               replies, waiting);
    }
  g_print ("latency publish to receipt: p50 %.2f ms, p99 %.2f ms, "
           "max %.2f ms (%" G_GSIZE_FORMAT " samples)\n",
           percentile_ms (0.5), percentile_ms (0.99), percentile_ms (1.0),
           n_latencies);
  for (guint i = 0; i < procs->len; i++)
    {
      Proc *p = &g_array_index (procs, Proc, i);
      double cpu_us;

      if (p->gone)
        {
          g_print ("%s: had exited by the end of the run\n", p->name);
          continue;
        }
      cpu_us =
          (p->cpu_ticks_end - p->cpu_ticks_start) * 1e6 / sysconf (_SC_CLK_TCK);

      g_print (
          "%s: CPU %.0f ms, %.2f us per delivered event; RSS %" G_GUINT64_FORMAT
          " KiB idle, %" G_GUINT64_FORMAT
          " KiB connected (%.2f KiB per connection), %" G_GUINT64_FORMAT
          " KiB after the run\n",
          p->name, cpu_us / 1000, delivered ? cpu_us / delivered : 0.0,
          p->rss_idle_kib, p->rss_loaded_kib,
          n_connected
              ? ((double)p->rss_loaded_kib - p->rss_idle_kib) / n_connected
              : 0.0,
          p->rss_end_kib);
    }
  /* One line for bench/run-all: the figures, then per process CPU per
   * delivered event (µs) and memory per connection (KiB); "all" sums the
   * processes. */
  {
    g_autoptr (GString) line = g_string_new (NULL);
    double all_cpu = 0, all_mem = 0;

    g_string_printf (
        line,
        "result: connected=%d clients=%d delivered=%" G_GUINT64_FORMAT
        " expected=%" G_GUINT64_FORMAT " missing=%" G_GUINT64_FORMAT
        " duplicated=%" G_GUINT64_FORMAT " p50=%.2f p99=%.2f max=%.2f",
        n_connected, opt_clients, delivered, expected, missing, duplicated,
        percentile_ms (0.5), percentile_ms (0.99), percentile_ms (1.0));
    for (guint i = 0; i < procs->len; i++)
      {
        Proc *p = &g_array_index (procs, Proc, i);
        double cpu_us = (p->cpu_ticks_end - p->cpu_ticks_start) * 1e6
                        / sysconf (_SC_CLK_TCK) / MAX (delivered, 1);
        double mem = ((double)p->rss_loaded_kib - p->rss_idle_kib)
                     / MAX (n_connected, 1);

        if (p->gone)
          continue;
        all_cpu += cpu_us;
        all_mem += mem;
        g_string_append_printf (line, " cpu.%s=%.2f mem.%s=%.2f", p->name,
                                cpu_us, p->name, mem);
      }
    g_print ("%s cpu.all=%.2f mem.all=%.2f\n", line->str, all_cpu, all_mem);
  }
  /* The load client's own share of the two cores, over the whole run. */
  {
    struct rusage ru;

    getrusage (RUSAGE_SELF, &ru);
    g_print ("bench-fanout itself: CPU %.0f ms\n",
             (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3
                 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3);
  }

  for (int j = 0; j < opt_jobs && target == TARGET_JOBWIRE; j++)
    {
      g_autofree char *ev =
          g_strdup_printf ("{\"job\":\"%s\",\"attempt\":%" G_GINT64_FORMAT
                           ",\"type\":\"succeeded\",\"result\":null}",
                           jobs[j].id, jobs[j].attempt);

      send2 (pub, jobs[j].id, ev);
      send2 (jobs[j].dealer, "bye", "{}");
    }
  for (int i = 0; i < opt_clients; i++)
    if (clients[i].fd >= 0)
      close (clients[i].fd);
  g_usleep (200000); /* let the last frames leave; linger is short */
  for (int j = 0; j < opt_jobs; j++)
    if (jobs[j].dealer != NULL)
      zsock_destroy (&jobs[j].dealer);
  if (pub != NULL)
    zsock_destroy (&pub);
  if (pushpin_push != NULL)
    zsock_destroy (&pushpin_push);
  for (int i = 0; i < n_pub_conns; i++)
    close (pub_conns[i].fd);
  return n_open == opt_clients && closed_early == 0 && missing == 0
                 && duplicated == 0
             ? 0
             : 1;
}
