/* bench-jobs: how many trivial jobs per second go through the whole
 * pipeline as a client sees it. It submits jobs to the api over HTTP/1.1
 * keep-alive connections (POST /jobs, by default `sleep` with 0 seconds in
 * 1 step: queued, started, progress, succeeded), subscribes to each
 * accepted job on a WebSocket connection to the pusher, and counts a job
 * done when its terminal event arrives there.
 *
 * The load is a closed loop: at most W jobs are in flight (submitted and
 * their terminal event not yet seen); each terminal event lets the next
 * job be submitted. One process, one epoll loop, raw HTTP and WebSocket.
 *
 * Usage: bench-jobs --api URL --pusher URL [--jobs N] [--inflight W]
 *                   [--type T] [--params JSON] [--pid NAME=PID …]
 * A 503 answer is retried with another submit and counted. Exits 1 when a
 * job failed or was not seen ending, or a submit got another error. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
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

#define SUBS_PER_WS 50 /* well under the pusher's max-subscriptions */
#define STALL_US (30 * G_USEC_PER_SEC) /* no progress this long ends it */
#define ID_MAX 64

static char *opt_api = NULL;
static char *opt_pusher = NULL;
static int opt_jobs = 20000;
static int opt_inflight = 200;
static char *opt_type = NULL;
static char *opt_params = NULL;
static char **opt_pids = NULL;
static char *opt_label = NULL;

typedef enum
{
  CONN_API,
  CONN_WS,
} ConnKind;

typedef struct
{
  ConnKind kind;
  int fd;
  GByteArray *in;
  GByteArray *out;
  gsize out_done;
  gboolean open;    /* WebSocket: handshake answered */
  gboolean busy;    /* api: a request is waiting for its answer */
  gint64 sent_us;   /* api: when the request was written */
  guint subscribed; /* WebSocket: jobs subscribed and not yet ended */
} Conn;

typedef struct
{
  gint64 submit_us;
  Conn *ws;
} Job;

typedef struct
{
  char *name;
  int pid;
  guint64 ticks0, ticks1;
} Proc;

static struct sockaddr_storage api_addr, pusher_addr;
static socklen_t api_addrlen, pusher_addrlen;
static char api_host[64], pusher_host[64];
static int epfd;
static char *request; /* the whole POST, the same for every job */
static gsize request_len;
static GPtrArray *api_conns; /* of Conn */
static GPtrArray *ws_conns;  /* of Conn */
static GPtrArray *idle_api;  /* api connections with no request */
static GHashTable *jobs;     /* id -> Job */
static GArray *submit_lat;   /* gint64 µs: request written -> 202 */
static GArray *e2e_lat;      /* gint64 µs: request written -> terminal */
static GArray *procs;        /* of Proc */
static int accepted, completed, failed, rejected, unavailable, lost;
static int pending;  /* requests waiting for their answer */
static int inflight; /* jobs submitted and not yet ended */
static gint64 first_submit_us, last_end_us, last_progress_us;
static gint64 own_cpu0_us, own_cpu1_us;
static guint next_ws;

static Conn *
conn_open (ConnKind kind, const struct sockaddr_storage *addr, socklen_t len)
{
  Conn *c = g_new0 (Conn, 1);
  struct epoll_event ev = { .events = EPOLLIN };
  int one = 1;

  c->kind = kind;
  c->fd = socket (addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0 || connect (c->fd, (const struct sockaddr *)addr, len) < 0)
    g_error ("cannot connect to %s: %s",
             kind == CONN_API ? api_host : pusher_host, g_strerror (errno));
  setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl (c->fd, F_SETFL, fcntl (c->fd, F_GETFL) | O_NONBLOCK);
  c->in = g_byte_array_sized_new (4096);
  c->out = g_byte_array_sized_new (4096);
  ev.data.ptr = c;
  epoll_ctl (epfd, EPOLL_CTL_ADD, c->fd, &ev);
  return c;
}

/* Writes what is queued; waits for EPOLLOUT only when the socket is full. */
static void
conn_flush (Conn *c)
{
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

  while (c->out_done < c->out->len)
    {
      ssize_t n =
          write (c->fd, c->out->data + c->out_done, c->out->len - c->out_done);

      if (n < 0 && errno == EAGAIN)
        {
          ev.events |= EPOLLOUT;
          epoll_ctl (epfd, EPOLL_CTL_MOD, c->fd, &ev);
          return;
        }
      if (n < 0)
        g_error ("write to %s: %s",
                 c->kind == CONN_API ? api_host : pusher_host,
                 g_strerror (errno));
      c->out_done += n;
    }
  g_byte_array_set_size (c->out, 0);
  c->out_done = 0;
  epoll_ctl (epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
conn_queue (Conn *c, const void *data, gsize len)
{
  g_byte_array_append (c->out, data, len);
}

/* ---- WebSocket ---------------------------------------------------- */

static void
ws_handshake (Conn *c)
{
  guint8 key[16];
  g_autofree char *key64 = NULL, *req = NULL;

  for (guint i = 0; i < sizeof key; i++)
    key[i] = g_random_int_range (0, 256);
  key64 = g_base64_encode (key, sizeof key);
  req = g_strdup_printf ("GET /ws HTTP/1.1\r\nHost: %s\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         pusher_host, key64);
  conn_queue (c, req, strlen (req));
  conn_flush (c);
}

/* Queues a masked client frame of opcode with payload. */
static void
ws_send (Conn *c, guint8 opcode, const char *payload, gsize len)
{
  guint8 frame[65536 + 8];
  gsize n = bench_ws_frame (frame, sizeof frame, opcode, payload, len);

  g_assert (n > 0);
  conn_queue (c, frame, n);
}

/* The string value of "name":"…" in json, copied into out; FALSE if none.
 * The first occurrence wins: the pusher puts job, seq and type first. */
static gboolean
member (const char *json, gsize len, const char *key, char *out, gsize size)
{
  const char *p = g_strstr_len (json, len, key), *end;

  if (p == NULL)
    return FALSE;
  p += strlen (key);
  end = memchr (p, '"', json + len - p);
  if (end == NULL || (gsize)(end - p) >= size)
    return FALSE;
  memcpy (out, p, end - p);
  out[end - p] = '\0';
  return TRUE;
}

static void submit_more (void);

static void
job_ended (const char *id, gboolean ok)
{
  Job *job = g_hash_table_lookup (jobs, id);
  gint64 t = bench_now_us (CLOCK_MONOTONIC);
  gint64 lat;

  if (job == NULL)
    return; /* an event of a job already counted */
  lat = t - job->submit_us;
  g_array_append_val (e2e_lat, lat);
  if (ok)
    completed++;
  else
    failed++;
  job->ws->subscribed--;
  g_hash_table_remove (jobs, id);
  inflight--;
  last_end_us = last_progress_us = t;
  submit_more ();
}

static void
ws_message (const char *msg, gsize len)
{
  char id[ID_MAX], type[32], op[32];

  if (member (msg, len, "{\"op\":\"", op, sizeof op))
    {
      if (strcmp (op, "error") == 0)
        {
          g_printerr ("pusher: %.*s\n", (int)len, msg);
          if (member (msg, len, "\"job\":\"", id, sizeof id))
            job_ended (id, FALSE);
        }
      return;
    }
  if (!member (msg, len, "\"job\":\"", id, sizeof id)
      || !member (msg, len, "\"type\":\"", type, sizeof type))
    return;
  if (strcmp (type, "succeeded") == 0)
    job_ended (id, TRUE);
  else if (strcmp (type, "failed") == 0 || strcmp (type, "cancelled") == 0)
    job_ended (id, FALSE);
}

/* Handles every whole frame in c->in; returns how many bytes it used. */
static gsize
ws_frames (Conn *c)
{
  const guint8 *d = c->in->data;
  gsize n = c->in->len, pos = 0;

  while (n - pos >= 2)
    {
      guint8 first;
      gboolean masked;
      guint64 len;
      gsize head =
          bench_ws_frame_head (d + pos, n - pos, &first, &masked, &len);
      guint8 opcode;

      if (head == 0)
        break;
      opcode = first & 0x0f;
      if (!(first & 0x80))
        g_error ("the pusher sent a fragmented frame; not handled here");
      if (opcode == 1)
        ws_message ((const char *)d + pos + head, len);
      else if (opcode == 9)
        ws_send (c, 10, (const char *)d + pos + head, len);
      else if (opcode == 8)
        g_error ("the pusher closed a WebSocket connection");
      pos += head + len;
    }
  return pos;
}

static void
subscribe (const char *id, Job *job)
{
  char msg[128];
  int len;
  Conn *c = g_ptr_array_index (ws_conns, next_ws++ % ws_conns->len);

  len = g_snprintf (msg, sizeof msg,
                    "{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":0}", id);
  ws_send (c, 1, msg, len);
  conn_flush (c);
  c->subscribed++;
  job->ws = c;
}

/* ---- the api ------------------------------------------------------ */

static void
submit (Conn *c)
{
  c->busy = TRUE;
  c->sent_us = bench_now_us (CLOCK_MONOTONIC);
  if (first_submit_us == 0)
    first_submit_us = c->sent_us;
  conn_queue (c, request, request_len);
  conn_flush (c);
  pending++;
  inflight++;
}

static void
submit_more (void)
{
  while (inflight < opt_inflight && accepted + pending < opt_jobs
         && idle_api->len > 0)
    {
      Conn *c = g_ptr_array_steal_index_fast (idle_api, idle_api->len - 1);

      submit (c);
    }
}

/* The value of a header (case-insensitive) in head, or NULL. */
static char *
header (const char *head, const char *name)
{
  g_autofree char *key = g_strdup_printf ("\r\n%s:", name);
  gsize key_len = strlen (key);

  for (const char *p = strstr (head, "\r\n"); p; p = strstr (p + 2, "\r\n"))
    if (g_ascii_strncasecmp (p, key, key_len) == 0)
      {
        const char *v = p + key_len, *end = strstr (v, "\r\n");

        while (*v == ' ')
          v++;
        return g_strndup (v, end ? end - v : (gssize)strlen (v));
      }
  return NULL;
}

/* Handles one whole answer at the start of d; returns how many bytes it
 * used, 0 if it is not all there yet. */
static gsize
api_answer (Conn *c, const char *d, gsize len)
{
  const char *end = g_strstr_len (d, len, "\r\n\r\n");
  g_autofree char *head = NULL, *length = NULL, *location = NULL;
  gsize head_len, body_len;
  int status = 0;

  if (end == NULL)
    return 0;
  head_len = end + 4 - d;
  head = g_strndup (d, head_len - 2);
  length = header (head, "Content-Length");
  if (length == NULL)
    g_error ("an api answer without Content-Length: %s", head);
  body_len = g_ascii_strtoull (length, NULL, 10);
  if (len < head_len + body_len)
    return 0;
  sscanf (head, "HTTP/1.%*d %d", &status);

  c->busy = FALSE;
  pending--;
  location = header (head, "Location");
  if (status == 202 && location != NULL && g_str_has_prefix (location, "/jobs/")
      && strlen (location + 6) < ID_MAX)
    {
      Job *job = g_new0 (Job, 1);
      gint64 lat = bench_now_us (CLOCK_MONOTONIC) - c->sent_us;

      g_array_append_val (submit_lat, lat);
      job->submit_us = c->sent_us;
      accepted++;
      g_hash_table_insert (jobs, g_strdup (location + 6), job);
      subscribe (location + 6, job);
      last_progress_us = bench_now_us (CLOCK_MONOTONIC);
    }
  else
    {
      /* Not accepted: counted, and the slot goes to another submit. A
       * 503 (the api could not hand the job to the broker at once) is
       * what a client retries; any other status is a failure. */
      if (status == 503)
        unavailable++;
      else
        rejected++;
      if (unavailable + rejected <= 5)
        g_printerr ("api answered %d at %.2f s: %.*s\n", status,
                    (bench_now_us (CLOCK_MONOTONIC) - first_submit_us) / 1e6,
                    (int)body_len, d + head_len);
      if (status == 422)
        g_error ("the job type is not served: start a worker first");
      inflight--;
    }
  g_ptr_array_add (idle_api, c);
  submit_more ();
  return head_len + body_len;
}

/* ---- the loop ----------------------------------------------------- */

static void
conn_readable (Conn *c)
{
  guint8 buf[65536];
  ssize_t n;
  gsize used;

  while ((n = read (c->fd, buf, sizeof buf)) > 0)
    g_byte_array_append (c->in, buf, n);
  if (n == 0 || (n < 0 && errno != EAGAIN))
    g_error ("%s closed a connection",
             c->kind == CONN_API ? "the api" : "the pusher");

  if (c->kind == CONN_WS && !c->open)
    {
      const char *d = (const char *)c->in->data;
      const char *end = g_strstr_len (d, c->in->len, "\r\n\r\n");

      if (end == NULL)
        return;
      if (!g_str_has_prefix (d, "HTTP/1.1 101"))
        g_error ("the pusher refused the WebSocket: %.*s", (int)(end - d), d);
      c->open = TRUE;
      g_byte_array_remove_range (c->in, 0, end + 4 - d);
    }

  if (c->kind == CONN_WS)
    {
      used = ws_frames (c);
      if (c->out->len > 0)
        conn_flush (c); /* pongs */
    }
  else
    {
      gsize part;

      used = 0;
      while (used < c->in->len
             && (part = api_answer (c, (const char *)c->in->data + used,
                                    c->in->len - used))
                    > 0)
        used += part;
    }
  if (used > 0)
    g_byte_array_remove_range (c->in, 0, used);
}

static gint64
own_cpu_us (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return (gint64)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * G_USEC_PER_SEC
         + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static gint64
percentile (GArray *a, double q)
{
  if (a->len == 0)
    return 0;
  return g_array_index (a, gint64, (guint)((a->len - 1) * q + 0.5));
}

static int
compare_i64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

  return x < y ? -1 : x > y;
}

static void
report (void)
{
  double secs = (last_end_us - first_submit_us) / 1e6;
  long ticks_per_s = sysconf (_SC_CLK_TCK);

  g_array_sort (submit_lat, compare_i64);
  g_array_sort (e2e_lat, compare_i64);
  printf ("jobs submitted        %d accepted of %d (503 retried: %d, other "
          "refusals: %d)\n",
          accepted, opt_jobs, unavailable, rejected);
  printf ("completed             %d\n", completed);
  printf ("failed                %d\n", failed);
  printf ("not seen ending       %d\n", lost);
  printf ("time                  %.2f s (first submit to last terminal "
          "event)\n",
          secs);
  printf ("jobs per second       %.0f\n", secs > 0 ? completed / secs : 0.0);
  printf ("submit latency        p50 %.2f ms  p99 %.2f ms  (request -> 202)\n",
          percentile (submit_lat, 0.5) / 1e3,
          percentile (submit_lat, 0.99) / 1e3);
  printf ("end to end            p50 %.2f ms  p99 %.2f ms  (request -> "
          "terminal event)\n",
          percentile (e2e_lat, 0.5) / 1e3, percentile (e2e_lat, 0.99) / 1e3);
  for (guint i = 0; i < procs->len; i++)
    {
      Proc *p = &g_array_index (procs, Proc, i);
      double cpu = (double)(p->ticks1 - p->ticks0) / ticks_per_s;

      printf ("CPU %-17s %.2f s, %.0f us per job\n", p->name, cpu,
              completed ? cpu * 1e6 / completed : 0.0);
    }
  printf ("CPU %-17s %.2f s, %.0f us per job\n", "client",
          (own_cpu1_us - own_cpu0_us) / 1e6,
          completed ? (double)(own_cpu1_us - own_cpu0_us) / completed : 0.0);
}

int
main (int argc, char **argv)
{
  GOptionEntry entries[] = {
    { "api", 0, 0, G_OPTION_ARG_STRING, &opt_api, "api base URL", "URL" },
    { "pusher", 0, 0, G_OPTION_ARG_STRING, &opt_pusher, "pusher base URL",
      "URL" },
    { "jobs", 'n', 0, G_OPTION_ARG_INT, &opt_jobs, "jobs (20000)", "N" },
    { "inflight", 'w', 0, G_OPTION_ARG_INT, &opt_inflight,
      "jobs in flight at most (200)", "W" },
    { "type", 0, 0, G_OPTION_ARG_STRING, &opt_type, "job type (sleep)", "T" },
    { "params", 0, 0, G_OPTION_ARG_STRING, &opt_params,
      "params JSON ({\"seconds\":0,\"steps\":1})", "JSON" },
    { "pid", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_pids,
      "a process whose CPU time to report", "NAME=PID" },
    { "label", 0, 0, G_OPTION_ARG_STRING, &opt_label, "printed first", "S" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("");
  g_autoptr (GError) error = NULL;
  g_autofree char *body = NULL;
  struct epoll_event events[256];
  int n_ws;
  gint64 started_us;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  if (opt_api == NULL || opt_pusher == NULL
      || !bench_parse_url (opt_api, &api_addr, &api_addrlen, api_host,
                           sizeof api_host)
      || !bench_parse_url (opt_pusher, &pusher_addr, &pusher_addrlen,
                           pusher_host, sizeof pusher_host)
      || opt_jobs < 1 || opt_inflight < 1 || opt_inflight > 10000)
    {
      g_printerr ("--api and --pusher (http://IP:PORT) are needed; --jobs "
                  "and --inflight (1-10000) must be positive\n");
      return 2;
    }

  body = g_strdup_printf (
      "{\"type\":\"%s\",\"params\":%s}", opt_type ? opt_type : "sleep",
      opt_params ? opt_params : "{\"seconds\":0,\"steps\":1}");
  request = g_strdup_printf ("POST /jobs HTTP/1.1\r\nHost: %s\r\n"
                             "Content-Type: application/json\r\n"
                             "Content-Length: %zu\r\n\r\n%s",
                             api_host, strlen (body), body);
  request_len = strlen (request);
  procs = g_array_new (FALSE, TRUE, sizeof (Proc));
  for (char **p = opt_pids; p && *p; p++)
    {
      const char *eq = strchr (*p, '=');
      Proc proc = { 0 };

      if (eq == NULL || (proc.pid = atoi (eq + 1)) <= 0)
        {
          g_printerr ("--pid takes NAME=PID, not %s\n", *p);
          return 2;
        }
      proc.name = g_strndup (*p, eq - *p);
      g_array_append_val (procs, proc);
    }

  epfd = epoll_create1 (EPOLL_CLOEXEC);
  jobs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  submit_lat = g_array_sized_new (FALSE, FALSE, sizeof (gint64), opt_jobs);
  e2e_lat = g_array_sized_new (FALSE, FALSE, sizeof (gint64), opt_jobs);
  api_conns = g_ptr_array_new ();
  ws_conns = g_ptr_array_new ();
  idle_api = g_ptr_array_new ();

  /* The WebSocket connections first: every job is subscribed to at once. */
  n_ws = (opt_inflight + SUBS_PER_WS - 1) / SUBS_PER_WS;
  for (int i = 0; i < n_ws; i++)
    {
      Conn *c = conn_open (CONN_WS, &pusher_addr, pusher_addrlen);

      g_ptr_array_add (ws_conns, c);
      ws_handshake (c);
    }
  started_us = bench_now_us (CLOCK_MONOTONIC);
  for (guint open = 0; open < ws_conns->len;)
    {
      int n = epoll_wait (epfd, events, G_N_ELEMENTS (events), 1000);

      for (int i = 0; i < n; i++)
        conn_readable (events[i].data.ptr);
      open = 0;
      for (guint i = 0; i < ws_conns->len; i++)
        open += ((Conn *)g_ptr_array_index (ws_conns, i))->open;
      if (bench_now_us (CLOCK_MONOTONIC) - started_us > 10 * G_USEC_PER_SEC)
        g_error ("the pusher did not open %d WebSocket connections in 10 s",
                 n_ws);
    }

  for (int i = 0; i < opt_inflight; i++)
    {
      Conn *c = conn_open (CONN_API, &api_addr, api_addrlen);

      g_ptr_array_add (api_conns, c);
      g_ptr_array_add (idle_api, c);
    }

  if (opt_label)
    printf ("== %s: %d jobs, %d in flight\n", opt_label, opt_jobs,
            opt_inflight);
  fflush (stdout);
  for (guint i = 0; i < procs->len; i++)
    {
      Proc *p = &g_array_index (procs, Proc, i);

      if (!bench_proc_ticks (p->pid, &p->ticks0))
        g_error ("no process %d (%s)", p->pid, p->name);
    }

  own_cpu0_us = own_cpu_us ();
  last_progress_us = bench_now_us (CLOCK_MONOTONIC);
  submit_more ();
  while (completed + failed < opt_jobs)
    {
      int n = epoll_wait (epfd, events, G_N_ELEMENTS (events), 1000);

      for (int i = 0; i < n; i++)
        {
          Conn *c = events[i].data.ptr;

          if (events[i].events & EPOLLOUT)
            conn_flush (c);
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            conn_readable (c);
        }
      if (bench_now_us (CLOCK_MONOTONIC) - last_progress_us > STALL_US)
        {
          g_printerr ("nothing accepted or ended for %d s: stopping\n",
                      (int)(STALL_US / G_USEC_PER_SEC));
          break;
        }
    }
  lost = g_hash_table_size (jobs);
  own_cpu1_us = own_cpu_us ();

  for (guint i = 0; i < procs->len; i++)
    {
      Proc *p = &g_array_index (procs, Proc, i);

      if (!bench_proc_ticks (p->pid, &p->ticks1))
        p->ticks1 = p->ticks0;
    }
  report ();
  return completed == opt_jobs && rejected == 0 ? 0 : 1;
}
