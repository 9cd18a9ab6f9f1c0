/* End-to-end tests of jobwire-pusher: the real daemon against a fake
 * broker in this process (XPUB + ROUTER on fresh loopback ports), with raw
 * HTTP and WebSocket clients. */
#include "jw-json.h"
#include "jw-msg.h"
#include "jw-zmq.h"
#include "jw-zsource.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define JOB_A "01aaaaaaaaaaaaaaaaaaaaaaaa"
#define JOB_B "01bbbbbbbbbbbbbbbbbbbbbbbb"
#define JOB_UNKNOWN "01cccccccccccccccccccccccc"
#define WAIT_S 10

/* ---- fake broker ---------------------------------------------------- */

typedef struct
{
  char *id;
  char *state;
  GPtrArray *types; /* char * */
  GPtrArray *json;  /* char * */
} FakeJob;

typedef struct
{
  zsock_t *xpub;
  zsock_t *router;
  char *events_ep;
  char *queries_ep;
  GHashTable *jobs;
  guint hb_source;
  guint sources[2];
  guint queries;
  guint subscriptions;
  guint pad; /* bytes of padding added to each event */
  const char *epoch;
  /* Called between building and sending a reply, to race live events
   * with it. */
  void (*before_reply) (gpointer fixture, const char *job);
  gpointer fixture;
} FakeBroker;

static void
fake_job_free (FakeJob *j)
{
  g_free (j->id);
  g_free (j->state);
  g_ptr_array_unref (j->types);
  g_ptr_array_unref (j->json);
  g_free (j);
}

static void
fb_publish (FakeBroker *fb, FakeJob *j, guint seq)
{
  g_autoptr (JwMsg) m = jw_msg_new ();

  jw_msg_add_str (m, j->id);
  jw_msg_add_printf (m, "%u", seq);
  jw_msg_add_str (m, j->types->pdata[seq - 1]);
  jw_msg_add_str (m, j->json->pdata[seq - 1]);
  g_assert_true (jw_msg_send (m, fb->xpub, NULL));
}

/* Records the next event of job; publishes it when publish is set. */
static guint
fb_record (FakeBroker *fb, const char *id, const char *type, gboolean publish)
{
  FakeJob *j = g_hash_table_lookup (fb->jobs, id);
  guint seq;

  if (j == NULL)
    {
      j = g_new0 (FakeJob, 1);
      j->id = g_strdup (id);
      j->state = g_strdup ("queued");
      j->types = g_ptr_array_new_with_free_func (g_free);
      j->json = g_ptr_array_new_with_free_func (g_free);
      g_hash_table_insert (fb->jobs, j->id, j);
    }
  seq = j->types->len + 1;
  g_ptr_array_add (j->types, g_strdup (type));
  g_ptr_array_add (
      j->json,
      g_strdup_printf (
          "{\"job\":\"%s\",\"seq\":%u,\"type\":\"%s\",\"time\":"
          "\"2026-01-01T00:00:00.000Z\",\"attempt\":1,\"pad\":\"%*s\"}",
          id, seq, type, fb->pad, ""));
  g_free (j->state);
  if (g_str_equal (type, "succeeded") || g_str_equal (type, "failed")
      || g_str_equal (type, "cancelled"))
    j->state = g_strdup (type);
  else
    j->state = g_strdup (seq == 1 ? "queued" : "running");
  if (publish)
    fb_publish (fb, j, seq);
  return seq;
}

static gboolean
fb_on_xpub (void *sock, gpointer user_data)
{
  FakeBroker *fb = user_data;
  g_autoptr (JwMsg) m = jw_msg_recv (sock, NULL);
  g_autoptr (JwMsg) marker = jw_msg_new ();
  gsize len;
  const char *data;

  if (m == NULL)
    return G_SOURCE_CONTINUE;
  data = jw_msg_data (m, 0, &len);
  if (len < 1 || data[0] != 1)
    return G_SOURCE_CONTINUE;
  fb->subscriptions++;
  jw_msg_add_data (marker, data + 1, len - 1);
  jw_msg_add_str (marker, "0");
  jw_msg_add_str (marker, "subscribed");
  jw_msg_add_str (marker, "{}");
  jw_msg_send (marker, fb->xpub, NULL);
  return G_SOURCE_CONTINUE;
}

static gboolean
fb_on_router (void *sock, gpointer user_data)
{
  FakeBroker *fb = user_data;
  g_autoptr (JwMsg) m = jw_msg_recv (sock, NULL);
  g_autoptr (JwMsg) r = jw_msg_new ();
  g_autoptr (JsonNode) node = NULL;
  JsonObject *obj;
  const char *rid, *id;
  gint64 after = 0;
  FakeJob *j;
  gsize len;
  const char *data;

  if (m == NULL || jw_msg_size (m) != 3)
    return G_SOURCE_CONTINUE;
  data = jw_msg_data (m, 2, &len);
  node = jw_json_parse (data, len, 8, NULL);
  obj = jw_json_node_object (node);
  rid = jw_json_get_string (obj, "rid");
  id = jw_json_get_string (obj, "job");
  jw_json_get_int (obj, "after", &after);
  fb->queries++;

  jw_msg_add_bytes (r, jw_msg_get (m, 0));
  jw_msg_add_str (r, "reply");
  j = g_hash_table_lookup (fb->jobs, id);
  if (j == NULL)
    {
      jw_msg_add_printf (r,
                         "{\"rid\":\"%s\",\"ok\":false,\"error\":{\"code\":"
                         "\"job_not_found\",\"message\":\"no\"}}",
                         rid);
    }
  else
    {
      guint count = j->types->len > after ? j->types->len - after : 0;

      jw_msg_add_printf (r,
                         "{\"rid\":\"%s\",\"ok\":true,\"job\":{\"id\":\"%s\","
                         "\"state\":\"%s\",\"seq\":%u},\"count\":%u,"
                         "\"more\":false}",
                         rid, id, j->state, j->types->len, count);
      for (guint s = after + 1; s <= j->types->len; s++)
        {
          jw_msg_add_printf (r, "%u", s);
          jw_msg_add_str (r, j->types->pdata[s - 1]);
          jw_msg_add_str (r, j->json->pdata[s - 1]);
        }
    }
  if (fb->before_reply)
    fb->before_reply (fb->fixture, id);
  jw_msg_send (r, fb->router, NULL);
  return G_SOURCE_CONTINUE;
}

static gboolean
fb_heartbeat (gpointer user_data)
{
  FakeBroker *fb = user_data;
  g_autoptr (JwMsg) m = jw_msg_new ();

  jw_msg_add_str (m, "~hb");
  jw_msg_add_str (m, "0");
  jw_msg_add_str (m, "heartbeat");
  jw_msg_add_printf (m, "{\"epoch\":\"%s\"}", fb->epoch);
  jw_msg_send (m, fb->xpub, NULL);
  return G_SOURCE_CONTINUE;
}

static void
fb_start (FakeBroker *fb)
{
  int port;

  fb->epoch = "one";
  fb->jobs = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                    (GDestroyNotify)fake_job_free);
  fb->xpub = jw_zmq_socket (ZMQ_XPUB, 0);
  fb->router = jw_zmq_socket (ZMQ_ROUTER, 0);
  port = zsock_bind (fb->xpub, "tcp://127.0.0.1:*[50000-]");
  g_assert_cmpint (port, >, 0);
  fb->events_ep = g_strdup_printf ("tcp://127.0.0.1:%d", port);
  port = zsock_bind (fb->router, "tcp://127.0.0.1:*[50000-]");
  g_assert_cmpint (port, >, 0);
  fb->queries_ep = g_strdup_printf ("tcp://127.0.0.1:%d", port);
  fb->sources[0] = jw_zsource_add (fb->xpub, fb_on_xpub, fb);
  fb->sources[1] = jw_zsource_add (fb->router, fb_on_router, fb);
  fb->hb_source = g_timeout_add (200, fb_heartbeat, fb);
}

static void
fb_stop (FakeBroker *fb)
{
  g_source_remove (fb->sources[0]);
  g_source_remove (fb->sources[1]);
  g_source_remove (fb->hb_source);
  zsock_destroy (&fb->xpub);
  zsock_destroy (&fb->router);
  g_free (fb->events_ep);
  g_free (fb->queries_ep);
  g_hash_table_unref (fb->jobs);
}

/* ---- waiting -------------------------------------------------------- */

typedef gboolean (*Cond) (gpointer data);

static gboolean
timed_out_cb (gpointer data)
{
  *(gboolean *)data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the main loop until cond holds; fails the test after WAIT_S. */
static void
wait_until (Cond cond, gpointer data)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add_seconds (WAIT_S, timed_out_cb, &timed_out);

  while (!cond (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  g_assert_true (cond (data));
}

/* ---- the daemon ----------------------------------------------------- */

typedef struct
{
  FakeBroker fb;
  char *tmp;
  GSubprocess *proc;
  GDataInputStream *err;
  guint port;
  GCancellable *cancel;
  guint slow_dropped; /* "slow client disconnected" lines logged */
} Fixture;

static void
on_err_line (GObject *src, GAsyncResult *res, gpointer user_data)
{
  Fixture *f = user_data;
  g_autofree char *line = g_data_input_stream_read_line_finish (
      G_DATA_INPUT_STREAM (src), res, NULL, NULL);
  const char *url;

  if (line == NULL)
    return;
  if (g_test_verbose ())
    g_printerr ("# pusher: %s\n", line);
  if (strstr (line, "slow client disconnected") != NULL)
    f->slow_dropped++;
  url = strstr (line, "listening url=http://127.0.0.1:");
  if (url != NULL)
    f->port = atoi (url + strlen ("listening url=http://127.0.0.1:"));
  g_data_input_stream_read_line_async (f->err, G_PRIORITY_DEFAULT, f->cancel,
                                       on_err_line, f);
}

static gboolean
port_known (gpointer data)
{
  return ((Fixture *)data)->port != 0;
}

/* The daemon goes when the test does, even when an assertion aborts it. */
static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *ev = NULL;
  g_autofree char *q = NULL;
  const char *exe = g_getenv ("JOBWIRE_PUSHER");
  g_autoptr (GStrvBuilder) argv = g_strv_builder_new ();
  g_auto (GStrv) sets = NULL;
  g_auto (GStrv) args = NULL;

  g_assert_nonnull (exe);
  f->tmp = g_dir_make_tmp ("jw-pusher-XXXXXX", &error);
  g_assert_no_error (error);
  f->fb.fixture = f;
  fb_start (&f->fb);
  ev = g_strdup_printf ("endpoints.events=%s", f->fb.events_ep);
  q = g_strdup_printf ("endpoints.queries=%s", f->fb.queries_ep);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  /* Lifecycle lines (info) of the pusher, which some tests wait for. */
  g_subprocess_launcher_setenv (launcher, "G_MESSAGES_DEBUG", "jobwire-pusher",
                                TRUE);
  g_strv_builder_add_many (argv, exe, "--listen", "127.0.0.1:0",
                           "--runtime-dir", f->tmp, "--set", ev, "--set", q,
                           /* The fake broker speaks plain tcp://. */
                           "--set", "security.allow-plain-tcp=true",
                           "--set", "pusher.keepalive-s=1", "--set",
                           "pusher.max-backlog=262144", NULL);
  /* data: more SECTION.KEY=VALUE for this test, space-separated, or NULL;
   * a later one wins. */
  sets = g_strsplit (data != NULL ? data : "", " ", -1);
  for (guint i = 0; sets[i] != NULL; i++)
    if (sets[i][0] != '\0')
      g_strv_builder_add_many (argv, "--set", sets[i], NULL);
  args = g_strv_builder_end (argv);
  f->proc = g_subprocess_launcher_spawnv (launcher, (const char *const *)args,
                                          &error);
  g_assert_no_error (error);
  f->cancel = g_cancellable_new ();
  f->err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (f->proc));
  g_data_input_stream_read_line_async (f->err, G_PRIORITY_DEFAULT, f->cancel,
                                       on_err_line, f);
  wait_until (port_known, f);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  g_subprocess_send_signal (f->proc, SIGTERM);
  g_subprocess_wait (f->proc, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (f->proc));
  g_assert_cmpint (g_subprocess_get_exit_status (f->proc), ==, 0);
  g_cancellable_cancel (f->cancel);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_clear_object (&f->err);
  g_clear_object (&f->cancel);
  g_clear_object (&f->proc);
  fb_stop (&f->fb);
  g_rmdir (f->tmp);
  g_free (f->tmp);
}

/* ---- a raw client --------------------------------------------------- */

typedef struct
{
  GSocketConnection *conn;
  GSocket *sock;
  GSource *source;
  GString *buf;
  gboolean eof;
} Client;

static gboolean
client_readable (GSocket *sock, GIOCondition cond, gpointer data)
{
  Client *c = data;
  char tmp[8192];
  gssize n;

  while ((n = g_socket_receive (sock, tmp, sizeof tmp, NULL, NULL)) > 0)
    g_string_append_len (c->buf, tmp, n);
  if (n == 0 || (cond & (G_IO_HUP | G_IO_ERR)))
    {
      c->eof = TRUE;
      c->source = NULL;
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static gboolean client_readable (GSocket *sock, GIOCondition cond,
                                 gpointer data);

static void
client_start_reading (Client *c)
{
  c->source = g_socket_create_source (c->sock, G_IO_IN | G_IO_HUP, NULL);
  g_source_set_callback (c->source, G_SOURCE_FUNC (client_readable), c, NULL);
  g_source_attach (c->source, NULL);
  g_source_unref (c->source);
}

/* rcvbuf: when not 0, the socket's receive buffer in bytes, set before it
 * connects so that the window it offers stays small: a client that stops
 * reading then holds little in its own buffer (the pusher's send buffer
 * still takes a few MB on loopback before its backlog builds). */
static Client *
client_new_sized (Fixture *f, const char *request, gboolean read, int rcvbuf)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetAddress) ia =
      g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) addr = g_inet_socket_address_new (ia, f->port);
  g_autoptr (GSocket) sock = NULL;
  Client *c = g_new0 (Client, 1);

  sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                       G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  if (rcvbuf > 0)
    {
      g_socket_set_option (sock, SOL_SOCKET, SO_RCVBUF, rcvbuf, &error);
      g_assert_no_error (error);
    }
  g_socket_connect (sock, addr, NULL, &error);
  g_assert_no_error (error);
  c->conn = g_socket_connection_factory_create_connection (sock);
  c->sock = g_socket_connection_get_socket (c->conn);
  c->buf = g_string_new (NULL);
  g_socket_send (c->sock, request, strlen (request), NULL, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (c->sock, FALSE);
  if (read)
    client_start_reading (c);
  return c;
}

static Client *
client_new_full (Fixture *f, const char *request, gboolean read)
{
  return client_new_sized (f, request, read, 0);
}

static void
client_stop_reading (Client *c)
{
  g_clear_pointer (&c->source, g_source_destroy);
}

static Client *
client_new (Fixture *f, const char *request)
{
  return client_new_full (f, request, TRUE);
}

static Client *
client_get (Fixture *f, const char *path, const char *headers)
{
  g_autofree char *req = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: x\r\n%s"
                                          "\r\n",
                                          path, headers ? headers : "");

  return client_new (f, req);
}

static void
client_free (Client *c)
{
  if (c->source)
    g_source_destroy (c->source);
  g_object_unref (c->conn);
  g_string_free (c->buf, TRUE);
  g_free (c);
}

static gboolean
client_eof (gpointer data)
{
  return ((Client *)data)->eof;
}

typedef struct
{
  Client *c;
  const char *needle;
} Contains;

static gboolean
client_contains (gpointer data)
{
  Contains *w = data;

  return strstr (w->c->buf->str, w->needle) != NULL;
}

static void
wait_for_text (Client *c, const char *needle)
{
  Contains w = { c, needle };

  wait_until (client_contains, &w);
}

/* The seq of every "id:" line, in order, as "1,2,3". */
static char *
sse_ids (Client *c)
{
  g_auto (GStrv) lines = g_strsplit (c->buf->str, "\n", -1);
  GString *s = g_string_new (NULL);

  for (guint i = 0; lines[i]; i++)
    {
      if (g_str_has_prefix (lines[i], "id: "))
        g_string_append_printf (s, "%s%s", s->len ? "," : "", lines[i] + 4);
    }
  return g_string_free (s, FALSE);
}

/* ---- SSE ------------------------------------------------------------ */

static void
test_sse_history_then_live (Fixture *f, gconstpointer data)
{
  Client *c;
  g_autofree char *ids = NULL;

  fb_record (&f->fb, JOB_A, "queued", FALSE);
  fb_record (&f->fb, JOB_A, "started", FALSE);
  c = client_get (f, "/jobs/" JOB_A "/events", NULL);
  wait_for_text (c, "id: 2\n");
  g_assert_true (g_str_has_prefix (c->buf->str, "HTTP/1.1 200 OK\r\n"));
  g_assert_nonnull (strstr (c->buf->str, "text/event-stream"));
  g_assert_nonnull (strstr (c->buf->str, "\r\n\r\nretry: 2000\n\n"));

  fb_record (&f->fb, JOB_A, "progress", TRUE);
  fb_record (&f->fb, JOB_A, "succeeded", TRUE);
  wait_until (client_eof, c);
  ids = sse_ids (c);
  g_assert_cmpstr (ids, ==, "1,2,3,4");
  g_assert_nonnull (strstr (c->buf->str, "event: succeeded\ndata: {"));
  client_free (c);
}

static void
test_sse_resume (Fixture *f, gconstpointer data)
{
  Client *c;
  g_autofree char *ids = NULL;
  g_autofree char *ids2 = NULL;

  fb_record (&f->fb, JOB_A, "queued", FALSE);
  fb_record (&f->fb, JOB_A, "started", FALSE);
  fb_record (&f->fb, JOB_A, "progress", FALSE);
  fb_record (&f->fb, JOB_A, "succeeded", FALSE);

  c = client_get (f, "/jobs/" JOB_A "/events", "Last-Event-ID: 2\r\n");
  wait_until (client_eof, c);
  ids = sse_ids (c);
  g_assert_cmpstr (ids, ==, "3,4");
  client_free (c);

  /* The header wins over the query. */
  c = client_get (f, "/jobs/" JOB_A "/events?after=0", "Last-Event-ID: 3\r\n");
  wait_until (client_eof, c);
  ids2 = sse_ids (c);
  g_assert_cmpstr (ids2, ==, "4");
  client_free (c);

  c = client_get (f, "/jobs/" JOB_A "/events?after=4", NULL);
  wait_for_text (c, "\r\n\r\n");
  g_assert_true (g_str_has_prefix (c->buf->str, "HTTP/1.1 204"));
  client_free (c);
}

static void
test_sse_errors (Fixture *f, gconstpointer data)
{
  Client *c;

  c = client_get (f, "/jobs/" JOB_UNKNOWN "/events", NULL);
  wait_for_text (c, "}");
  g_assert_true (g_str_has_prefix (c->buf->str, "HTTP/1.1 404"));
  g_assert_nonnull (strstr (c->buf->str, "\"job_not_found\""));
  client_free (c);

  c = client_get (f, "/jobs/nope/events", NULL);
  wait_for_text (c, "}");
  g_assert_true (g_str_has_prefix (c->buf->str, "HTTP/1.1 400"));
  g_assert_nonnull (strstr (c->buf->str, "\"invalid_job_id\""));
  client_free (c);

  c = client_get (f, "/jobs/" JOB_A "/events?after=x1", NULL);
  wait_for_text (c, "}");
  g_assert_true (g_str_has_prefix (c->buf->str, "HTTP/1.1 400"));
  g_assert_nonnull (strstr (c->buf->str, "\"invalid_query\""));
  client_free (c);

  c = client_get (f, "/jobs/" JOB_A "/events", "Last-Event-ID: -4\r\n");
  wait_for_text (c, "}");
  g_assert_true (g_str_has_prefix (c->buf->str, "HTTP/1.1 400"));
  client_free (c);
}

/* A live event past a gap (the broker dropped one) is delivered only after
 * the missing one, read from history. */
static void
test_sse_gap_fill (Fixture *f, gconstpointer data)
{
  Client *c;
  g_autofree char *ids = NULL;

  fb_record (&f->fb, JOB_B, "queued", FALSE);
  c = client_get (f, "/jobs/" JOB_B "/events", NULL);
  wait_for_text (c, "id: 1\n");
  fb_record (&f->fb, JOB_B, "started", FALSE);
  fb_record (&f->fb, JOB_B, "progress", TRUE);
  wait_for_text (c, "id: 3\n");
  fb_record (&f->fb, JOB_B, "failed", TRUE);
  wait_until (client_eof, c);
  ids = sse_ids (c);
  g_assert_cmpstr (ids, ==, "1,2,3,4");
  client_free (c);
}

/* Live events published before the history they follow arrives reach the
 * client once each, in order. */
static void
race_before_reply (gpointer fixture, const char *job)
{
  Fixture *f = fixture;

  f->fb.before_reply = NULL;
  fb_record (&f->fb, job, "progress", TRUE);
  fb_record (&f->fb, job, "progress", TRUE);
  fb_record (&f->fb, job, "progress", TRUE);
  fb_record (&f->fb, job, "succeeded", TRUE);
}

static void
test_sse_race (Fixture *f, gconstpointer data)
{
  Client *c;
  g_autofree char *ids = NULL;

  fb_record (&f->fb, JOB_A, "queued", FALSE);
  fb_record (&f->fb, JOB_A, "started", FALSE);
  f->fb.before_reply = race_before_reply;
  c = client_get (f, "/jobs/" JOB_A "/events", NULL);
  wait_until (client_eof, c);
  ids = sse_ids (c);
  g_assert_cmpstr (ids, ==, "1,2,3,4,5,6");
  client_free (c);
}

static void
test_sse_keepalive (Fixture *f, gconstpointer data)
{
  Client *c;

  fb_record (&f->fb, JOB_A, "queued", FALSE);
  c = client_get (f, "/jobs/" JOB_A "/events", NULL);
  wait_for_text (c, "id: 1\n");
  wait_for_text (c, ": keep-alive\n\n");
  client_free (c);
}

/* Many clients of one job share one channel upstream. */
static void
test_sse_fan_out (Fixture *f, gconstpointer data)
{
  Client *cs[20];

  fb_record (&f->fb, JOB_A, "queued", FALSE);
  for (guint i = 0; i < G_N_ELEMENTS (cs); i++)
    cs[i] = client_get (f, "/jobs/" JOB_A "/events", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (cs); i++)
    wait_for_text (cs[i], "id: 1\n");
  fb_record (&f->fb, JOB_A, "started", TRUE);
  fb_record (&f->fb, JOB_A, "cancelled", TRUE);
  for (guint i = 0; i < G_N_ELEMENTS (cs); i++)
    {
      g_autofree char *ids = NULL;

      wait_until (client_eof, cs[i]);
      ids = sse_ids (cs[i]);
      g_assert_cmpstr (ids, ==, "1,2,3");
      client_free (cs[i]);
    }
  /* One subscription for the job, one for heartbeats. */
  g_assert_cmpuint (f->fb.subscriptions, ==, 2);
}

static gboolean
queried (gpointer data)
{
  return ((FakeBroker *)data)->queries > 0;
}

static gboolean
slow_dropped (gpointer data)
{
  return ((Fixture *)data)->slow_dropped > 0;
}

/* The seqs of a client's SSE events, in order. */
static GArray *
sse_seqs (Client *c)
{
  g_autofree char *ids = sse_ids (c);
  g_auto (GStrv) parts = g_strsplit (ids, ",", -1);
  GArray *seqs = g_array_new (FALSE, FALSE, sizeof (guint));

  for (guint i = 0; parts[i] != NULL && parts[i][0] != '\0'; i++)
    {
      guint seq = atoi (parts[i]);

      g_array_append_val (seqs, seq);
    }
  return seqs;
}

/* Seqs start at first and increase; each one skipped was a progress event
 * of job (so it was coalesced, never a state transition). Returns how
 * many were skipped. */
static guint
assert_coalesced_only (FakeBroker *fb, const char *job, GArray *seqs,
                       guint first)
{
  FakeJob *j = g_hash_table_lookup (fb->jobs, job);
  guint expect = first, skipped = 0;

  g_assert_cmpuint (seqs->len, >, 0);
  g_assert_cmpuint (g_array_index (seqs, guint, 0), ==, first);
  for (guint i = 0; i < seqs->len; i++)
    {
      guint seq = g_array_index (seqs, guint, i);

      g_assert_cmpuint (seq, >=, expect);
      for (; expect < seq; expect++, skipped++)
        g_assert_cmpstr (g_ptr_array_index (j->types, expect - 1), ==,
                         "progress");
      expect = seq + 1;
    }
  return skipped;
}

/* Lets the main loop turn a bounded number of times: with a client
 * reading a busy stream it is never idle. */
static void
turn_main_loop (void)
{
  for (guint i = 0; i < 200 && g_main_context_iteration (NULL, FALSE); i++)
    ;
}

/* Publishes n progress events of job in batches, letting the main loop
 * (the fake broker's sockets, reading clients) turn between them. Returns
 * the last seq. */
static guint
publish_progress (Fixture *f, const char *job, guint n)
{
  guint last = 0;

  for (guint i = 0; i < n; i++)
    {
      last = fb_record (&f->fb, job, "progress", TRUE);
      if (i % 20 == 19)
        turn_main_loop ();
    }
  turn_main_loop ();
  return last;
}

/* A client that stops reading: past half its backlog limit its queued
 * progress events are replaced by newer ones, so that it catches up later
 * with a seq gap only between progress events and every state transition,
 * the terminal one included. */
static void
test_sse_slow_client_coalesced (Fixture *f, gconstpointer data)
{
  Client *c;
  g_autoptr (GArray) seqs = NULL;
  guint total, skipped;

  f->fb.pad = 16000;
  fb_record (&f->fb, JOB_A, "queued", FALSE);
  c = client_new_full (f,
                       "GET /jobs/" JOB_A "/events HTTP/1.1\r\n"
                       "Host: x\r\n\r\n",
                       FALSE);
  /* Wait for the stream to be set up: its first query. */
  wait_until (queried, &f->fb);
  fb_record (&f->fb, JOB_A, "started", TRUE);
  /* About 20 MB: more than socket buffers and the backlog hold. */
  publish_progress (f, JOB_A, 1280);
  total = fb_record (&f->fb, JOB_A, "succeeded", TRUE);

  client_start_reading (c);
  wait_until (client_eof, c);
  seqs = sse_seqs (c);
  skipped = assert_coalesced_only (&f->fb, JOB_A, seqs, 1);
  g_test_message ("received %u of %u events, %u progress coalesced", seqs->len,
                  total, skipped);
  g_assert_cmpuint (skipped, >, 0);
  g_assert_cmpuint (g_array_index (seqs, guint, 1), ==, 2); /* started */
  g_assert_cmpuint (g_array_index (seqs, guint, seqs->len - 1), ==, total);
  g_assert_nonnull (strstr (c->buf->str, "event: succeeded\n"));
  g_assert_null (strstr (c->buf->str, "too slow"));
  client_free (c);
}

/* A client that stays past half its limit for slow-s is disconnected with
 * a reason it can read; a client reading the same job meanwhile receives
 * every event; the slow one resumes after its last seq and gets the rest,
 * the terminal event included. */
static void
test_sse_slow_client_dropped (Fixture *f, gconstpointer data)
{
  Client *slow, *fast, *again;
  g_autoptr (GArray) slow_seqs = NULL;
  g_autoptr (GArray) fast_seqs = NULL;
  g_autoptr (GArray) rest = NULL;
  g_autofree char *resume = NULL;
  guint total, last;
  gint64 deadline;

  f->fb.pad = 16000;
  fb_record (&f->fb, JOB_A, "queued", FALSE);
  slow = client_new_full (f,
                          "GET /jobs/" JOB_A "/events HTTP/1.1\r\n"
                          "Host: x\r\n\r\n",
                          FALSE);
  fast = client_get (f, "/jobs/" JOB_A "/events", NULL);
  wait_for_text (fast, "id: 1\n");
  fb_record (&f->fb, JOB_A, "started", TRUE);
  /* Progress, about 3 MB a second (a client that reads keeps up with
   * that, far under its 2 MB soft limit), until the pusher gives up on the slow
   * client: more than socket buffers hold, then pusher.slow-s=1 past the
   * soft limit. Bounded by 20 s. */
  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (!slow_dropped (f) && g_get_monotonic_time () < deadline)
    {
      gboolean paced = FALSE;

      publish_progress (f, JOB_A, 10);
      g_timeout_add (50, timed_out_cb, &paced);
      while (!paced)
        g_main_context_iteration (NULL, TRUE);
    }
  g_assert_true (slow_dropped (f));
  publish_progress (f, JOB_A, 20);
  total = fb_record (&f->fb, JOB_A, "succeeded", TRUE);

  /* The fast client got everything, in order, and the end. */
  wait_until (client_eof, fast);
  fast_seqs = sse_seqs (fast);
  g_assert_cmpuint (fast_seqs->len, ==, total);
  assert_coalesced_only (&f->fb, JOB_A, fast_seqs, 1);

  /* The slow client: a prefix (gaps only between progress events), then
   * the reason, and no terminal event. */
  client_start_reading (slow);
  wait_until (client_eof, slow);
  g_assert_true (
      g_str_has_suffix (slow->buf->str, ": disconnected: too slow\n\n"));
  g_assert_null (strstr (slow->buf->str, "event: succeeded"));
  slow_seqs = sse_seqs (slow);
  assert_coalesced_only (&f->fb, JOB_A, slow_seqs, 1);
  last = g_array_index (slow_seqs, guint, slow_seqs->len - 1);
  g_assert_cmpuint (last, <, total);

  /* It resumes after its last seq and receives the rest. */
  resume = g_strdup_printf ("Last-Event-ID: %u\r\n", last);
  again = client_get (f, "/jobs/" JOB_A "/events", resume);
  wait_until (client_eof, again);
  rest = sse_seqs (again);
  /* Its catch-up may be coalesced too: history arrives faster than a
   * socket drains. */
  assert_coalesced_only (&f->fb, JOB_A, rest, last + 1);
  g_assert_cmpuint (g_array_index (rest, guint, rest->len - 1), ==, total);
  g_assert_nonnull (strstr (again->buf->str, "event: succeeded\n"));

  client_free (again);
  client_free (fast);
  client_free (slow);
}

/* After a broker restart (new epoch) every channel reads history again,
 * so an event lost meanwhile still arrives. */
static void wait_healthy (Fixture *f);

static void
test_sse_broker_restart (Fixture *f, gconstpointer data)
{
  Client *c;
  g_autofree char *ids = NULL;

  wait_healthy (f);
  fb_record (&f->fb, JOB_A, "queued", FALSE);
  c = client_get (f, "/jobs/" JOB_A "/events", NULL);
  wait_for_text (c, "id: 1\n");
  fb_record (&f->fb, JOB_A, "started", FALSE);
  fb_record (&f->fb, JOB_A, "succeeded", FALSE);
  f->fb.epoch = "two";
  wait_until (client_eof, c);
  ids = sse_ids (c);
  g_assert_cmpstr (ids, ==, "1,2,3");
  client_free (c);
}

/* ---- WebSocket ------------------------------------------------------ */

static void
ws_send (Client *c, const char *text)
{
  gsize len = strlen (text);
  g_autofree guint8 *frame = g_malloc (len + 8);
  guint8 mask[4] = { 1, 2, 3, 4 };

  g_assert_cmpuint (len, <, 126);
  frame[0] = 0x81;
  frame[1] = 0x80 | len;
  memcpy (frame + 2, mask, 4);
  for (gsize i = 0; i < len; i++)
    frame[6 + i] = text[i] ^ mask[i & 3];
  g_socket_set_blocking (c->sock, TRUE);
  g_socket_send (c->sock, (char *)frame, len + 6, NULL, NULL);
  g_socket_set_blocking (c->sock, FALSE);
}

/* A WebSocket client after its handshake; rcvbuf as in client_new_sized. */
static Client *
ws_connect_sized (Fixture *f, int rcvbuf)
{
  Client *c =
      client_new_sized (f,
                        "GET /ws HTTP/1.1\r\nHost: x\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "\r\n",
                        TRUE, rcvbuf);

  wait_for_text (c, "\r\n\r\n");
  g_assert_true (
      g_str_has_prefix (c->buf->str, "HTTP/1.1 101 Switching Protocols\r\n"));
  g_assert_nonnull (strstr (c->buf->str, "Sec-WebSocket-Accept: "
                                         "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  return c;
}

static Client *
ws_connect (Fixture *f)
{
  return ws_connect_sized (f, 0);
}

static void
test_ws_subscribe (Fixture *f, gconstpointer data)
{
  Client *c;
  const char *p;

  fb_record (&f->fb, JOB_A, "queued", FALSE);
  fb_record (&f->fb, JOB_A, "started", FALSE);
  c = ws_connect (f);
  ws_send (c, "{\"op\":\"subscribe\",\"job\":\"" JOB_A "\",\"after\":1}");
  wait_for_text (c, "\"seq\":2");
  fb_record (&f->fb, JOB_A, "succeeded", TRUE);
  wait_for_text (c, "\"seq\":3");
  ws_send (c, "{\"op\":\"subscribe\",\"job\":\"" JOB_UNKNOWN "\"}");
  wait_for_text (c, "\"job_not_found\"");
  ws_send (c, "{\"op\":\"subscribe\"}");
  wait_for_text (c, "\"invalid_job_id\"");

  p = strstr (c->buf->str, "{\"op\":\"subscribed\",\"job\":\"" JOB_A "\"}");
  g_assert_nonnull (p);
  g_assert_null (strstr (c->buf->str, "\"seq\":1,"));
  g_assert_true (strstr (c->buf->str, "\"seq\":2") > p);
  g_assert_true (strstr (c->buf->str, "\"seq\":3")
                 > strstr (c->buf->str, "\"seq\":2"));
  client_free (c);
}

/* What a WebSocket client received, parsed frame by frame as it arrives
 * (the server's frames: unmasked, never fragmented). */
typedef struct
{
  Client *c;
  gsize pos;        /* of the next frame in c->buf */
  GArray *seqs;     /* of guint: each event's seq, in order */
  GPtrArray *types; /* char *: each event's type */
  int close_code;   /* -1 until a close frame */
  char *close_reason;
  guint after_close; /* frames after the close frame */
} WsStream;

static WsStream *
ws_stream_new (Client *c)
{
  WsStream *ws = g_new0 (WsStream, 1);
  const char *end = strstr (c->buf->str, "\r\n\r\n");

  g_assert_nonnull (end);
  ws->c = c;
  ws->pos = end + 4 - c->buf->str;
  ws->seqs = g_array_new (FALSE, FALSE, sizeof (guint));
  ws->types = g_ptr_array_new_with_free_func (g_free);
  ws->close_code = -1;
  return ws;
}

static void
ws_stream_free (WsStream *ws)
{
  g_array_unref (ws->seqs);
  g_ptr_array_unref (ws->types);
  g_free (ws->close_reason);
  g_free (ws);
}

/* Parses the frames that arrived whole since the last call. */
static void
ws_stream_update (WsStream *ws)
{
  const guint8 *buf = (const guint8 *)ws->c->buf->str;
  gsize avail = ws->c->buf->len;

  while (avail - ws->pos >= 2)
    {
      const guint8 *p = buf + ws->pos;
      guint8 opcode = p[0] & 0x0f;
      gsize hdr = 2, len = p[1] & 0x7f;
      const char *payload;

      g_assert_cmpuint (p[0] & 0x80, !=, 0); /* FIN */
      g_assert_cmpuint (p[1] & 0x80, ==, 0); /* unmasked */
      if (len == 126)
        {
          hdr = 4;
          if (avail - ws->pos < hdr)
            return;
          len = (p[2] << 8) | p[3];
        }
      else if (len == 127)
        {
          hdr = 10;
          if (avail - ws->pos < hdr)
            return;
          len = 0;
          for (int i = 2; i < 10; i++)
            len = (len << 8) | p[i];
        }
      if (avail - ws->pos - hdr < len)
        return;
      payload = (const char *)p + hdr;
      ws->pos += hdr + len;

      if (ws->close_code >= 0)
        ws->after_close++;
      else if (opcode == 0x8)
        {
          g_assert_cmpuint (len, >=, 2);
          ws->close_code = ((guint8)payload[0] << 8) | (guint8)payload[1];
          ws->close_reason = g_strndup (payload + 2, len - 2);
        }
      else if (opcode == 0x1)
        {
          g_autoptr (JsonNode) node = jw_json_parse (payload, len, 8, NULL);
          JsonObject *obj = node ? jw_json_node_object (node) : NULL;
          gint64 seq;

          g_assert_nonnull (obj);
          /* Events; {"op": …} messages have no seq. */
          if (jw_json_get_int (obj, "seq", &seq))
            {
              guint s = seq;

              g_array_append_val (ws->seqs, s);
              g_ptr_array_add (ws->types,
                               g_strdup (jw_json_get_string (obj, "type")));
            }
        }
    }
}

static guint
ws_last_seq (WsStream *ws)
{
  return ws->seqs->len ? g_array_index (ws->seqs, guint, ws->seqs->len - 1) : 0;
}

typedef struct
{
  WsStream *ws;
  guint seq;
} WsSeq;

static gboolean
ws_has_seq (gpointer data)
{
  WsSeq *w = data;

  ws_stream_update (w->ws);
  return ws_last_seq (w->ws) >= w->seq;
}

/* Waits until the client received an event of seq or a later one. */
static void
ws_wait_seq (WsStream *ws, guint seq)
{
  WsSeq w = { ws, seq };

  wait_until (ws_has_seq, &w);
}

static void
ws_subscribe (Client *c, const char *job, guint after)
{
  g_autofree char *cmd = g_strdup_printf (
      "{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":%u}", job, after);

  ws_send (c, cmd);
}

/* A WebSocket client that stops reading: past half its backlog limit its
 * queued progress events are replaced by newer ones, so that it catches
 * up later with a seq gap only between progress events and every state
 * transition, the terminal one included. */
static void
test_ws_slow_client_coalesced (Fixture *f, gconstpointer data)
{
  Client *c, *marker;
  WsStream *ws, *mws;
  guint total, skipped;

  f->fb.pad = 16000;
  fb_record (&f->fb, JOB_A, "queued", FALSE);
  fb_record (&f->fb, JOB_B, "queued", FALSE);
  c = ws_connect_sized (f, 4096);
  ws = ws_stream_new (c);
  ws_subscribe (c, JOB_A, 0);
  ws_wait_seq (ws, 1);
  /* Another job's client, to know when the pusher has had everything. */
  marker = ws_connect (f);
  mws = ws_stream_new (marker);
  ws_subscribe (marker, JOB_B, 0);
  ws_wait_seq (mws, 1);

  client_stop_reading (c);
  fb_record (&f->fb, JOB_A, "started", TRUE);
  /* About 6 MB: more than socket buffers and the backlog hold. */
  publish_progress (f, JOB_A, 400);
  total = fb_record (&f->fb, JOB_A, "succeeded", TRUE);
  /* Published after all of JOB_A's on the same socket: once it arrives,
   * the pusher has queued every event of JOB_A. */
  fb_record (&f->fb, JOB_B, "started", TRUE);
  ws_wait_seq (mws, 2);

  client_start_reading (c);
  ws_wait_seq (ws, total);
  skipped = assert_coalesced_only (&f->fb, JOB_A, ws->seqs, 1);
  g_test_message ("received %u of %u events, %u progress coalesced",
                  ws->seqs->len, total, skipped);
  g_assert_cmpuint (skipped, >, 0);
  g_assert_cmpuint (g_array_index (ws->seqs, guint, 1), ==, 2); /* started */
  g_assert_cmpuint (ws_last_seq (ws), ==, total);
  g_assert_cmpstr (g_ptr_array_index (ws->types, ws->types->len - 1), ==,
                   "succeeded");
  g_assert_cmpint (ws->close_code, ==, -1);
  g_assert_false (c->eof);

  ws_stream_free (mws);
  ws_stream_free (ws);
  client_free (marker);
  client_free (c);
}

/* A WebSocket client that never reads is closed with 1008 "too slow"
 * once past half its limit for slow-s, after a whole prefix of the job's
 * events; a client of the same job meanwhile receives every event; the
 * slow one subscribes again after its last seq and gets the rest, the
 * terminal event included. */
static void
test_ws_slow_client_dropped (Fixture *f, gconstpointer data)
{
  Client *slow, *fast, *again;
  WsStream *sws, *fws, *aws;
  guint total, last;
  gint64 deadline;

  f->fb.pad = 8000;
  fb_record (&f->fb, JOB_A, "queued", FALSE);
  slow = ws_connect_sized (f, 4096);
  sws = ws_stream_new (slow);
  ws_subscribe (slow, JOB_A, 0);
  ws_wait_seq (sws, 1);
  fast = ws_connect (f);
  fws = ws_stream_new (fast);
  ws_subscribe (fast, JOB_A, 0);
  ws_wait_seq (fws, 1);

  client_stop_reading (slow);
  fb_record (&f->fb, JOB_A, "started", TRUE);
  /* Progress, about 1.6 MB a second in bursts of 80 KB (a client that
   * reads keeps up, under its 512 KB soft limit), until the pusher gives up
   * on the slow client: more than socket buffers hold, then pusher.slow-s=1
   * past the soft limit. Bounded by 20 s. */
  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (!slow_dropped (f) && g_get_monotonic_time () < deadline)
    {
      gboolean paced = FALSE;

      publish_progress (f, JOB_A, 10);
      g_timeout_add (50, timed_out_cb, &paced);
      while (!paced)
        g_main_context_iteration (NULL, TRUE);
    }
  g_assert_true (slow_dropped (f));
  /* It reads what the pusher still writes, the close frame last (the
   * pusher waits a few seconds at most for that). */
  client_start_reading (slow);
  publish_progress (f, JOB_A, 20);
  total = fb_record (&f->fb, JOB_A, "succeeded", TRUE);

  /* The fast client got everything, in order, and the end. */
  ws_wait_seq (fws, total);
  g_assert_cmpuint (fws->seqs->len, ==, total);
  assert_coalesced_only (&f->fb, JOB_A, fws->seqs, 1);
  g_assert_cmpint (fws->close_code, ==, -1);

  /* The slow client: a prefix of whole frames (gaps only between progress
   * events), then the reason, then the end; no terminal event. */
  wait_until (client_eof, slow);
  ws_stream_update (sws);
  g_assert_cmpuint (sws->pos, ==, slow->buf->len);
  g_assert_cmpint (sws->close_code, ==, 1008);
  g_assert_cmpstr (sws->close_reason, ==, "too slow");
  g_assert_cmpuint (sws->after_close, ==, 0);
  assert_coalesced_only (&f->fb, JOB_A, sws->seqs, 1);
  last = ws_last_seq (sws);
  g_assert_cmpuint (last, <, total);
  g_test_message ("slow client closed after seq %u of %u, %u events", last,
                  total, sws->seqs->len);

  /* It subscribes again after its last seq and receives the rest. */
  again = ws_connect (f);
  aws = ws_stream_new (again);
  ws_subscribe (again, JOB_A, last);
  ws_wait_seq (aws, total);
  /* Its catch-up may be coalesced too: history arrives faster than a
   * socket drains. */
  assert_coalesced_only (&f->fb, JOB_A, aws->seqs, last + 1);
  g_assert_cmpuint (ws_last_seq (aws), ==, total);
  g_assert_cmpstr (g_ptr_array_index (aws->types, aws->types->len - 1), ==,
                   "succeeded");

  ws_stream_free (aws);
  ws_stream_free (fws);
  ws_stream_free (sws);
  client_free (again);
  client_free (fast);
  client_free (slow);
}

/* ---- long-poll and health ------------------------------------------- */

static void
test_poll (Fixture *f, gconstpointer data)
{
  Client *c, *h;

  fb_record (&f->fb, JOB_A, "queued", FALSE);
  fb_record (&f->fb, JOB_A, "started", FALSE);
  c = client_get (f, "/jobs/" JOB_A "/poll?after=0", NULL);
  wait_for_text (c, "]");
  g_assert_true (g_str_has_prefix (c->buf->str, "HTTP/1.1 200"));
  g_assert_nonnull (strstr (c->buf->str, "[{\"job\":"));
  g_assert_nonnull (strstr (c->buf->str, "\"seq\":2"));
  client_free (c);

  /* Waits for the next event: one more request round trip gives the
   * pusher time to park the poll first. */
  c = client_get (f, "/jobs/" JOB_A "/poll?after=2&timeout=20", NULL);
  h = client_get (f, "/healthz", NULL);
  wait_for_text (h, "}");
  client_free (h);
  g_assert_cmpuint (c->buf->len, ==, 0);
  fb_record (&f->fb, JOB_A, "succeeded", TRUE);
  wait_for_text (c, "]");
  g_assert_nonnull (strstr (c->buf->str, "\"seq\":3"));
  g_assert_null (strstr (c->buf->str, "\"seq\":2"));
  client_free (c);

  /* Finished and nothing after: at once. */
  c = client_get (f, "/jobs/" JOB_A "/poll?after=3", NULL);
  wait_for_text (c, "[]");
  client_free (c);

  c = client_get (f, "/jobs/" JOB_UNKNOWN "/poll", NULL);
  wait_for_text (c, "}");
  g_assert_true (g_str_has_prefix (c->buf->str, "HTTP/1.1 404"));
  client_free (c);
}

static void
test_poll_timeout (Fixture *f, gconstpointer data)
{
  Client *c;

  fb_record (&f->fb, JOB_A, "queued", FALSE);
  c = client_get (f, "/jobs/" JOB_A "/poll?after=1&timeout=1", NULL);
  wait_for_text (c, "[]");
  g_assert_true (g_str_has_prefix (c->buf->str, "HTTP/1.1 200"));
  client_free (c);
}

/* Asks /healthz until the pusher has heard a broker heartbeat. */
static void
wait_healthy (Fixture *f)
{
  Client *c;

  for (;;)
    {
      c = client_get (f, "/healthz", NULL);
      wait_for_text (c, "}");
      if (g_str_has_prefix (c->buf->str, "HTTP/1.1 200"))
        break;
      client_free (c);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_nonnull (strstr (c->buf->str, "\"broker\":\"ok\""));
  client_free (c);
}

static void
test_healthz (Fixture *f, gconstpointer data)
{
  /* Heartbeats flow every 200 ms. */
  wait_healthy (f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  jw_zmq_init ();

#define ADD(path, func)                                                        \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/pusher/stream/sse-history-then-live", test_sse_history_then_live);
  ADD ("/pusher/stream/sse-resume", test_sse_resume);
  ADD ("/pusher/stream/sse-errors", test_sse_errors);
  ADD ("/pusher/stream/sse-gap-fill", test_sse_gap_fill);
  ADD ("/pusher/stream/sse-race", test_sse_race);
  ADD ("/pusher/stream/sse-keepalive", test_sse_keepalive);
  ADD ("/pusher/stream/sse-fan-out", test_sse_fan_out);
  g_test_add ("/pusher/stream/sse-slow-client-coalesced", Fixture,
              "pusher.slow-s=0", fixture_setup, test_sse_slow_client_coalesced,
              fixture_teardown);
  g_test_add ("/pusher/stream/sse-slow-client-dropped", Fixture,
              "pusher.slow-s=1 pusher.max-backlog=4194304", fixture_setup,
              test_sse_slow_client_dropped, fixture_teardown);
  ADD ("/pusher/stream/sse-broker-restart", test_sse_broker_restart);
  ADD ("/pusher/stream/ws-subscribe", test_ws_subscribe);
  g_test_add ("/pusher/stream/ws-slow-client-coalesced", Fixture,
              "pusher.slow-s=0", fixture_setup, test_ws_slow_client_coalesced,
              fixture_teardown);
  g_test_add ("/pusher/stream/ws-slow-client-dropped", Fixture,
              "pusher.slow-s=1 pusher.max-backlog=1048576", fixture_setup,
              test_ws_slow_client_dropped, fixture_teardown);
  ADD ("/pusher/stream/poll", test_poll);
  ADD ("/pusher/stream/poll-timeout", test_poll_timeout);
  ADD ("/pusher/stream/healthz", test_healthz);
#undef ADD
  return g_test_run ();
}
