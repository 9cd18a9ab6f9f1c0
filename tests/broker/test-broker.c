/* The real jobwire-broker ($JW_BROKER) on a fresh runtime directory, driven
 * over its real sockets by a fake api (PUSH + SUB + DEALER) and a fake
 * worker (DEALER + XPUB), exactly as docs/PROTOCOL.md says. */
#include <czmq.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/prctl.h>
#include <string.h>

#include "jw-id.h"
#include "jw-json.h"

#define WAIT_MS 5000

typedef struct
{
  char *dir;
  char *log_path;
  GSubprocess *broker;
  zsock_t *push;   /* api → commands */
  zsock_t *sub;    /* api ← events */
  zsock_t *query;  /* api ↔ queries */
  zsock_t *worker; /* worker ↔ workers */
  zsock_t *wpub;   /* worker → worker-events (XPUB, to see the SUB) */
  char *epoch;
  guint rid;
} Fixture;

static char *
endpoint (Fixture *fx, const char *name)
{
  return g_strdup_printf ("ipc://%s/%s", fx->dir, name);
}

/* The broker dies with the test, even when the test aborts. */
static void
child_setup (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

static GSubprocess *
spawn_broker (Fixture *fx)
{
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GError) error = NULL;
  const char *exe = g_getenv ("JW_BROKER");
  g_autofree char *ledger = NULL;
  GSubprocess *proc;

  if (exe == NULL)
    g_error ("JW_BROKER is not set");
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_stdout_file_path (launcher, fx->log_path);
  g_subprocess_launcher_unsetenv (launcher, "JOBWIRE_CONFIG");
  g_subprocess_launcher_setenv (launcher, "G_MESSAGES_DEBUG", "all", TRUE);
  g_subprocess_launcher_setenv (launcher, "G_DEBUG", "fatal-criticals", TRUE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  /* The ledger lives in the test's directory, never in the user's. */
  ledger = g_strdup_printf ("broker.ledger=%s/ledger.sqlite", fx->dir);
  proc = g_subprocess_launcher_spawn (launcher, &error, exe, "--runtime-dir",
                                      fx->dir, "--set", ledger, NULL);
  g_assert_no_error (error);
  return proc;
}

static zsock_t *
connect_socket (Fixture *fx, int type, const char *name)
{
  g_autofree char *ep = endpoint (fx, name);
  zsock_t *sock = zsock_new (type);

  g_assert_nonnull (sock);
  zsock_set_linger (sock, 0);
  zsock_set_rcvtimeo (sock, WAIT_MS);
  zsock_set_sndtimeo (sock, WAIT_MS);
  g_assert_cmpint (zsock_connect (sock, "%s", ep), ==, 0);
  return sock;
}

static char *
frame_str (zmsg_t *msg, int i)
{
  zframe_t *f = zmsg_first (msg);

  while (f != NULL && i-- > 0)
    f = zmsg_next (msg);
  g_assert_nonnull (f);
  return g_strndup ((const char *)zframe_data (f), zframe_size (f));
}

static JsonObject *
frame_json (zmsg_t *msg, int i, JsonNode **keep)
{
  g_autofree char *s = frame_str (msg, i);
  g_autoptr (GError) error = NULL;

  *keep = jw_json_parse (s, strlen (s), 64, &error);
  g_assert_no_error (error);
  g_assert_nonnull (jw_json_node_object (*keep));
  return jw_json_node_object (*keep);
}

static zmsg_t *
recv_or_fail (zsock_t *sock, const char *what)
{
  zmsg_t *msg = zmsg_recv (sock);

  if (msg == NULL)
    g_error ("timed out waiting for %s", what);
  return msg;
}

/* The next message on the api SUB whose topic is topic (others skipped). */
static zmsg_t *
next_on (Fixture *fx, const char *topic)
{
  for (int i = 0; i < 1000; i++)
    {
      zmsg_t *msg = recv_or_fail (fx->sub, topic);
      g_autofree char *t = frame_str (msg, 0);

      g_assert_cmpuint (zmsg_size (msg), ==, 4);
      if (g_str_equal (t, topic))
        return msg;
      zmsg_destroy (&msg);
    }
  g_error ("too many messages before one on %s", topic);
}

static void
subscribe (Fixture *fx, const char *topic)
{
  zmsg_t *msg;
  g_autofree char *type = NULL;

  zsock_set_subscribe (fx->sub, topic);
  msg = next_on (fx, topic);
  type = frame_str (msg, 2);
  g_assert_cmpstr (type, ==, "subscribed");
  zmsg_destroy (&msg);
}

/* Sends a query and returns the reply message, routing envelope gone. */
static zmsg_t *
query (Fixture *fx, const char *verb, const char *json)
{
  zmsg_t *msg;
  g_autofree char *head = NULL;

  g_assert_cmpint (zstr_sendm (fx->query, verb), ==, 0);
  g_assert_cmpint (zstr_send (fx->query, json), ==, 0);
  msg = recv_or_fail (fx->query, verb);
  head = frame_str (msg, 0);
  g_assert_cmpstr (head, ==, "reply");
  return msg;
}

/* Sends a command and returns the reply JSON published on ~api.t1. */
static JsonObject *
command (Fixture *fx, const char *verb, const char *members, JsonNode **keep)
{
  g_autofree char *rid = g_strdup_printf ("r%u", ++fx->rid);
  g_autofree char *json = g_strdup_printf (
      "{\"rid\":\"%s\",\"api\":\"t1\"%s%s}", rid, *members ? "," : "", members);
  zmsg_t *msg;
  JsonObject *reply;

  g_assert_cmpint (zstr_sendm (fx->push, verb), ==, 0);
  g_assert_cmpint (zstr_send (fx->push, json), ==, 0);
  msg = next_on (fx, "~api.t1");
  reply = frame_json (msg, 3, keep);
  zmsg_destroy (&msg);
  g_assert_cmpstr (jw_json_get_string (reply, "rid"), ==, rid);
  return reply;
}

static const char *
error_code (JsonObject *reply)
{
  gboolean ok = TRUE;
  JsonObject *err;

  g_assert_true (jw_json_get_bool (reply, "ok", &ok));
  g_assert_false (ok);
  err = jw_json_get_object (reply, "error");
  g_assert_nonnull (err);
  g_assert_nonnull (jw_json_get_string (err, "message"));
  return jw_json_get_string (err, "code");
}

static JsonObject *
ok_job (JsonObject *reply)
{
  gboolean ok = FALSE;

  g_assert_true (jw_json_get_bool (reply, "ok", &ok));
  g_assert_true (ok);
  return jw_json_get_object (reply, "job");
}

static void
worker_send (Fixture *fx, const char *verb, const char *json)
{
  g_assert_cmpint (zstr_sendm (fx->worker, verb), ==, 0);
  g_assert_cmpint (zstr_send (fx->worker, json), ==, 0);
}

static void
report (Fixture *fx, const char *id, const char *json)
{
  g_assert_cmpint (zstr_sendm (fx->wpub, id), ==, 0);
  g_assert_cmpint (zstr_send (fx->wpub, json), ==, 0);
}

/* The next recorded event of job id on the api SUB: checks its frames and
 * the fixed member order, returns its JSON. */
static JsonObject *
expect_event (Fixture *fx, const char *id, gint64 seq, const char *type,
              gint64 attempt, JsonNode **keep)
{
  zmsg_t *msg = next_on (fx, id);
  g_autofree char *seq_str = frame_str (msg, 1);
  g_autofree char *type_str = frame_str (msg, 2);
  g_autofree char *json = frame_str (msg, 3);
  g_autofree char *head = g_strdup_printf (
      "{\"job\":\"%s\",\"seq\":%" G_GINT64_FORMAT ",\"type\":\"%s\","
      "\"time\":\"",
      id, seq, type);
  g_autofree char *att =
      g_strdup_printf ("Z\",\"attempt\":%" G_GINT64_FORMAT, attempt);
  g_autofree char *want_seq = g_strdup_printf ("%" G_GINT64_FORMAT, seq);
  JsonObject *obj;

  g_assert_cmpstr (seq_str, ==, want_seq);
  g_assert_cmpstr (type_str, ==, type);
  g_assert_true (g_str_has_prefix (json, head));
  g_assert_nonnull (strstr (json, att));
  obj = frame_json (msg, 3, keep);
  zmsg_destroy (&msg);
  return obj;
}

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;
  zmsg_t *msg;
  JsonObject *obj;

  fx->dir = g_dir_make_tmp ("jw-broker-XXXXXX", &error);
  g_assert_no_error (error);
  fx->log_path = g_build_filename (fx->dir, "broker.log", NULL);
  fx->broker = spawn_broker (fx);

  fx->push = connect_socket (fx, ZMQ_PUSH, "commands");
  fx->sub = connect_socket (fx, ZMQ_SUB, "events");
  fx->query = connect_socket (fx, ZMQ_DEALER, "queries");
  fx->worker = connect_socket (fx, ZMQ_DEALER, "workers");
  fx->wpub = connect_socket (fx, ZMQ_XPUB, "worker-events");

  /* The broker answers once it listens: a queued ping waits for it. */
  msg = query (fx, "ping", "{\"rid\":\"p0\"}");
  obj = frame_json (msg, 1, &node);
  g_assert_cmpstr (jw_json_get_string (obj, "rid"), ==, "p0");
  fx->epoch = g_strdup (jw_json_get_string (obj, "epoch"));
  g_assert_nonnull (fx->epoch);
  zmsg_destroy (&msg);

  /* The broker's SUB subscribes to everything: the XPUB sees it, after
   * which reports are not lost. */
  msg = recv_or_fail (fx->wpub, "the broker's subscription");
  {
    zframe_t *f = zmsg_first (msg);
    g_assert_cmpuint (zframe_size (f), ==, 1);
    g_assert_cmpint (zframe_data (f)[0], ==, 1);
  }
  zmsg_destroy (&msg);

  subscribe (fx, "~api.t1");
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  zsock_destroy (&fx->push);
  zsock_destroy (&fx->sub);
  zsock_destroy (&fx->query);
  zsock_destroy (&fx->worker);
  zsock_destroy (&fx->wpub);

  g_subprocess_send_signal (fx->broker, SIGTERM);
  g_subprocess_wait (fx->broker, NULL, &error);
  g_assert_no_error (error);
  if (!g_subprocess_get_if_exited (fx->broker)
      || g_subprocess_get_exit_status (fx->broker) != 0 || g_test_failed ())
    {
      g_autofree char *log = NULL;
      g_file_get_contents (fx->log_path, &log, NULL, NULL);
      g_test_message ("broker log:\n%s", log ? log : "(none)");
    }
  g_assert_true (g_subprocess_get_if_exited (fx->broker));
  g_assert_cmpint (g_subprocess_get_exit_status (fx->broker), ==, 0);
  g_clear_object (&fx->broker);

  {
    g_autoptr (GDir) d = g_dir_open (fx->dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name (d)) != NULL)
      {
        g_autofree char *path = g_build_filename (fx->dir, name, NULL);
        g_unlink (path);
      }
  }
  g_rmdir (fx->dir);
  g_free (fx->dir);
  g_free (fx->log_path);
  g_free (fx->epoch);
}

/* hello → welcome with this broker's epoch. */
static void
say_hello (Fixture *fx, const char *types)
{
  g_autofree char *json = g_strdup_printf (
      "{\"worker\":\"w1\",\"types\":%s,\"pid\":%d}", types, (int)getpid ());
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *verb = NULL;
  JsonObject *obj;
  gint64 hb = 0;
  zmsg_t *msg;

  worker_send (fx, "hello", json);
  msg = recv_or_fail (fx->worker, "welcome");
  verb = frame_str (msg, 0);
  g_assert_cmpstr (verb, ==, "welcome");
  obj = frame_json (msg, 1, &node);
  g_assert_cmpstr (jw_json_get_string (obj, "epoch"), ==, fx->epoch);
  g_assert_true (jw_json_get_int (obj, "heartbeat_ms", &hb));
  g_assert_cmpint (hb, >, 0);
  zmsg_destroy (&msg);
}

/* Submits a sleep job (subscribed to its topic first) and checks the
 * queued event and the reply. Returns the new id. */
static char *
submit (Fixture *fx)
{
  char id[JW_ID_LEN + 1];
  g_autofree char *members = NULL;
  g_autoptr (JsonNode) ev_node = NULL;
  g_autoptr (JsonNode) reply_node = NULL;
  JsonObject *event, *reply, *job;

  jw_id_new (id);
  subscribe (fx, id);
  members = g_strdup_printf ("\"job\":{\"id\":\"%s\",\"type\":\"sleep\","
                             "\"params\":{\"seconds\":1}}",
                             id);
  g_assert_cmpint (zstr_sendm (fx->push, "submit"), ==, 0);
  {
    g_autofree char *json = g_strdup_printf (
        "{\"rid\":\"s%u\",\"api\":\"t1\",%s}", ++fx->rid, members);
    g_assert_cmpint (zstr_send (fx->push, json), ==, 0);
  }

  /* The event is published before the reply. */
  event = expect_event (fx, id, 1, "queued", 0, &ev_node);
  g_assert_cmpstr (jw_json_get_string (event, "job_type"), ==, "sleep");
  {
    zmsg_t *msg = next_on (fx, "~api.t1");
    reply = frame_json (msg, 3, &reply_node);
    zmsg_destroy (&msg);
  }
  job = ok_job (reply);
  g_assert_cmpstr (jw_json_get_string (job, "id"), ==, id);
  g_assert_cmpstr (jw_json_get_string (job, "state"), ==, "queued");
  g_assert_nonnull (jw_json_get_string (job, "created_at"));
  return g_strdup (id);
}

/* ready → the job message for id, attempt 1. */
static void
take_job (Fixture *fx, const char *id)
{
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *verb = NULL;
  JsonObject *obj;
  gint64 attempt = 0;
  zmsg_t *msg;

  worker_send (fx, "ready", "{}");
  msg = recv_or_fail (fx->worker, "a job");
  verb = frame_str (msg, 0);
  g_assert_cmpstr (verb, ==, "job");
  obj = frame_json (msg, 1, &node);
  g_assert_cmpstr (jw_json_get_string (obj, "id"), ==, id);
  g_assert_cmpstr (jw_json_get_string (obj, "type"), ==, "sleep");
  g_assert_nonnull (jw_json_get_object (obj, "params"));
  g_assert_true (jw_json_get_int (obj, "attempt", &attempt));
  g_assert_cmpint (attempt, ==, 1);
  zmsg_destroy (&msg);
}

static void
test_lifecycle (Fixture *fx, gconstpointer data)
{
  g_autofree char *id = NULL;
  g_autofree char *json = NULL;
  g_autoptr (GPtrArray) keep =
      g_ptr_array_new_with_free_func ((GDestroyNotify)json_node_unref);
  g_autoptr (GPtrArray) published = g_ptr_array_new_with_free_func (g_free);
  JsonNode *node = NULL;
  JsonObject *ev, *obj, *job;
  gint64 n = 0;
  gboolean more = TRUE;
  zmsg_t *msg;
  int i;

  say_hello (fx, "[\"sleep\"]");
  id = submit (fx);
  take_job (fx, id);

#define REPORT(...)                                                            \
  do                                                                           \
    {                                                                          \
      g_free (json);                                                           \
      json = g_strdup_printf (__VA_ARGS__);                                    \
      report (fx, id, json);                                                   \
    }                                                                          \
  while (0)
  REPORT ("{\"job\":\"%s\",\"attempt\":1,\"type\":\"started\"}", id);
  ev = expect_event (fx, id, 2, "started", 1, &node);
  g_ptr_array_add (keep, node);

  REPORT ("{\"job\":\"%s\",\"attempt\":1,\"type\":\"progress\","
          "\"progress\":{\"done\":1,\"total\":4,\"extra\":true}}",
          id);
  ev = expect_event (fx, id, 3, "progress", 1, &node);
  g_ptr_array_add (keep, node);
  obj = jw_json_get_object (ev, "progress");
  g_assert_true (jw_json_get_int (obj, "percent", &n));
  g_assert_cmpint (n, ==, 25);
  g_assert_false (json_object_has_member (obj, "extra"));

  /* From another attempt, or of a bad type: not recorded. */
  REPORT ("{\"job\":\"%s\",\"attempt\":2,\"type\":\"progress\"}", id);
  REPORT ("{\"job\":\"%s\",\"attempt\":1,\"type\":\"queued\"}", id);
  report (fx, id, "not json");

  REPORT ("{\"job\":\"%s\",\"attempt\":1,\"type\":\"progress\","
          "\"progress\":{\"percent\":250,\"message\":\"m\"}}",
          id);
  ev = expect_event (fx, id, 4, "progress", 1, &node);
  g_ptr_array_add (keep, node);
  obj = jw_json_get_object (ev, "progress");
  g_assert_true (jw_json_get_int (obj, "percent", &n));
  g_assert_cmpint (n, ==, 100);
  g_assert_cmpstr (jw_json_get_string (obj, "message"), ==, "m");

  REPORT ("{\"job\":\"%s\",\"attempt\":1,\"type\":\"succeeded\","
          "\"result\":{\"slept\":1}}",
          id);
  ev = expect_event (fx, id, 5, "succeeded", 1, &node);
  g_ptr_array_add (keep, node);
  g_assert_nonnull (jw_json_get_object (ev, "result"));

  /* Nothing follows a terminal event. */
  REPORT ("{\"job\":\"%s\",\"attempt\":1,\"type\":\"failed\"}", id);
#undef REPORT

  /* The history is the same five events, in order. */
  g_free (json);
  json = g_strdup_printf ("{\"rid\":\"q1\",\"job\":\"%s\"}", id);
  msg = query (fx, "events", json);
  obj = frame_json (msg, 1, &node);
  g_ptr_array_add (keep, node);
  g_assert_true (jw_json_get_int (obj, "count", &n));
  g_assert_cmpint (n, ==, 5);
  g_assert_true (jw_json_get_bool (obj, "more", &more));
  g_assert_false (more);
  g_assert_cmpuint (zmsg_size (msg), ==, 2 + 3 * 5);
  for (i = 0; i < 5; i++)
    {
      g_autofree char *seq = frame_str (msg, 2 + 3 * i);
      g_autofree char *want = g_strdup_printf ("%d", i + 1);
      g_autofree char *ev_json = frame_str (msg, 4 + 3 * i);
      g_autofree char *head =
          g_strdup_printf ("{\"job\":\"%s\",\"seq\":%d,", id, i + 1);

      g_assert_cmpstr (seq, ==, want);
      g_assert_true (g_str_has_prefix (ev_json, head));
    }
  {
    g_autofree char *t1 = frame_str (msg, 3);
    g_autofree char *t5 = frame_str (msg, 3 + 3 * 4);
    g_assert_cmpstr (t1, ==, "queued");
    g_assert_cmpstr (t5, ==, "succeeded");
  }
  zmsg_destroy (&msg);

  g_free (json);
  json = g_strdup_printf ("{\"rid\":\"q2\",\"job\":\"%s\",\"after\":2,"
                          "\"limit\":2}",
                          id);
  msg = query (fx, "events", json);
  obj = frame_json (msg, 1, &node);
  g_ptr_array_add (keep, node);
  g_assert_true (jw_json_get_int (obj, "count", &n));
  g_assert_cmpint (n, ==, 2);
  g_assert_true (jw_json_get_bool (obj, "more", &more));
  g_assert_true (more);
  {
    g_autofree char *seq = frame_str (msg, 2);
    g_assert_cmpstr (seq, ==, "3");
  }
  zmsg_destroy (&msg);

  /* The snapshot. */
  g_free (json);
  json = g_strdup_printf ("{\"rid\":\"q3\",\"job\":\"%s\"}", id);
  msg = query (fx, "get", json);
  obj = frame_json (msg, 1, &node);
  g_ptr_array_add (keep, node);
  job = ok_job (obj);
  g_assert_cmpstr (jw_json_get_string (job, "state"), ==, "succeeded");
  g_assert_true (jw_json_get_int (job, "seq", &n));
  g_assert_cmpint (n, ==, 5);
  g_assert_true (jw_json_get_int (job, "attempt", &n));
  g_assert_cmpint (n, ==, 1);
  g_assert_nonnull (jw_json_get_string (job, "started_at"));
  g_assert_nonnull (jw_json_get_string (job, "finished_at"));
  g_assert_nonnull (jw_json_get_object (job, "result"));
  g_assert_nonnull (jw_json_get_object (job, "progress"));
  zmsg_destroy (&msg);

  msg = query (fx, "list", "{\"rid\":\"q4\",\"state\":\"succeeded\"}");
  obj = frame_json (msg, 1, &node);
  g_ptr_array_add (keep, node);
  {
    JsonArray *jobs = jw_json_get_array (obj, "jobs");
    g_assert_nonnull (jobs);
    g_assert_cmpuint (json_array_get_length (jobs), ==, 1);
    g_assert_cmpstr (json_object_get_string_member (
                         json_array_get_object_element (jobs, 0), "id"),
                     ==, id);
  }
  zmsg_destroy (&msg);

  msg = query (fx, "ping", "{\"rid\":\"q5\"}");
  obj = frame_json (msg, 1, &node);
  g_ptr_array_add (keep, node);
  g_assert_true (jw_json_get_int (obj, "workers", &n));
  g_assert_cmpint (n, ==, 1);
  g_assert_true (jw_json_get_int (obj, "running", &n));
  g_assert_cmpint (n, ==, 0);
  zmsg_destroy (&msg);
}

static void
test_bad_input (Fixture *fx, gconstpointer data)
{
  char other[JW_ID_LEN + 1];
  g_autofree char *id = NULL;
  g_autofree char *members = NULL;
  g_autoptr (JsonNode) node = NULL;
  JsonObject *reply, *job;
  zmsg_t *msg;

  reply = command (fx, "submit",
                   "\"job\":{\"id\":\"nope\",\"type\":\"x\","
                   "\"params\":{}}",
                   &node);
  g_assert_cmpstr (error_code (reply), ==, "bad_request");
  g_clear_pointer (&node, json_node_unref);
  reply = command (fx, "frobnicate", "", &node);
  g_assert_cmpstr (error_code (reply), ==, "bad_request");
  g_clear_pointer (&node, json_node_unref);
  reply = command (fx, "ping", "", &node);
  g_assert_null (ok_job (reply));
  g_clear_pointer (&node, json_node_unref);

  /* No worker: the job stays queued. The same body again is the same job;
   * another body under its id is refused. */
  id = submit (fx);
  members = g_strdup_printf ("\"job\":{\"id\":\"%s\",\"type\":\"sleep\","
                             "\"params\":{\"seconds\":1}}",
                             id);
  reply = command (fx, "submit", members, &node);
  g_assert_cmpstr (jw_json_get_string (ok_job (reply), "id"), ==, id);
  g_clear_pointer (&node, json_node_unref);
  g_free (members);
  members = g_strdup_printf ("\"job\":{\"id\":\"%s\",\"type\":\"sleep\","
                             "\"params\":{\"seconds\":2}}",
                             id);
  reply = command (fx, "submit", members, &node);
  g_assert_cmpstr (error_code (reply), ==, "duplicate_id");
  g_clear_pointer (&node, json_node_unref);

  /* Cancel while queued: recorded as cancelled at once. */
  g_free (members);
  members = g_strdup_printf ("\"job\":\"%s\"", id);
  reply = command (fx, "cancel", members, &node);
  job = ok_job (reply);
  g_assert_cmpstr (jw_json_get_string (job, "state"), ==, "cancelled");
  g_clear_pointer (&node, json_node_unref);
  {
    /* The event went out before the reply: the history shows it. */
    g_autofree char *json = g_strdup_printf ("{\"rid\":\"e\",%s}", members);
    g_autofree char *type = NULL;
    g_autofree char *ev = NULL;

    msg = query (fx, "events", json);
    g_assert_cmpuint (zmsg_size (msg), ==, 2 + 3 * 2);
    type = frame_str (msg, 6);
    g_assert_cmpstr (type, ==, "cancelled");
    ev = frame_str (msg, 7);
    g_assert_nonnull (strstr (ev, "\"error\":{\"code\":\"cancelled\","));
    zmsg_destroy (&msg);
  }
  reply = command (fx, "cancel", members, &node);
  g_assert_cmpstr (error_code (reply), ==, "job_finished");
  g_clear_pointer (&node, json_node_unref);

  jw_id_new (other);
  g_free (members);
  members = g_strdup_printf ("\"job\":\"%s\"", other);
  reply = command (fx, "cancel", members, &node);
  g_assert_cmpstr (error_code (reply), ==, "job_not_found");
  g_clear_pointer (&node, json_node_unref);

  /* Queries. */
  msg = query (fx, "get", members);
  reply = frame_json (msg, 1, &node);
  g_assert_cmpstr (error_code (reply), ==, "bad_request");
  zmsg_destroy (&msg);
  g_clear_pointer (&node, json_node_unref);
  {
    g_autofree char *json = g_strdup_printf ("{\"rid\":\"x\",%s}", members);
    msg = query (fx, "get", json);
    reply = frame_json (msg, 1, &node);
    g_assert_cmpstr (error_code (reply), ==, "job_not_found");
    g_assert_cmpstr (jw_json_get_string (reply, "rid"), ==, "x");
    zmsg_destroy (&msg);
    g_clear_pointer (&node, json_node_unref);
  }
  msg = query (fx, "teleport", "{\"rid\":\"y\"}");
  reply = frame_json (msg, 1, &node);
  g_assert_cmpstr (error_code (reply), ==, "bad_request");
  zmsg_destroy (&msg);
  g_clear_pointer (&node, json_node_unref);
  msg = query (fx, "list", "{\"rid\":\"z\",\"state\":\"sleeping\"}");
  reply = frame_json (msg, 1, &node);
  g_assert_cmpstr (error_code (reply), ==, "bad_request");
  zmsg_destroy (&msg);
  g_clear_pointer (&node, json_node_unref);

  /* The broker still answers after all that. */
  msg = query (fx, "ping", "{\"rid\":\"p\"}");
  reply = frame_json (msg, 1, &node);
  g_assert_null (ok_job (reply));
  zmsg_destroy (&msg);
}

static void
test_cancel_running (Fixture *fx, gconstpointer data)
{
  g_autofree char *id = NULL;
  g_autofree char *json = NULL;
  g_autofree char *verb = NULL;
  g_autoptr (JsonNode) node = NULL;
  JsonObject *reply, *job, *obj;
  gboolean requested = FALSE;
  gint64 attempt = 0;
  zmsg_t *msg;

  say_hello (fx, "[\"checksum\",\"sleep\"]");
  id = submit (fx);
  take_job (fx, id);
  json = g_strdup_printf ("{\"job\":\"%s\",\"attempt\":1,\"type\":\"started\"}",
                          id);
  report (fx, id, json);
  obj = expect_event (fx, id, 2, "started", 1, &node);
  g_clear_pointer (&node, json_node_unref);

  g_free (json);
  json = g_strdup_printf ("\"job\":\"%s\"", id);
  reply = command (fx, "cancel", json, &node);
  job = ok_job (reply);
  g_assert_cmpstr (jw_json_get_string (job, "state"), ==, "running");
  g_assert_true (jw_json_get_bool (job, "cancel_requested", &requested));
  g_assert_true (requested);
  g_clear_pointer (&node, json_node_unref);

  msg = recv_or_fail (fx->worker, "cancel");
  verb = frame_str (msg, 0);
  g_assert_cmpstr (verb, ==, "cancel");
  obj = frame_json (msg, 1, &node);
  g_assert_cmpstr (jw_json_get_string (obj, "job"), ==, id);
  g_assert_true (jw_json_get_int (obj, "attempt", &attempt));
  g_assert_cmpint (attempt, ==, 1);
  zmsg_destroy (&msg);
  g_clear_pointer (&node, json_node_unref);

  g_free (json);
  json = g_strdup_printf ("{\"job\":\"%s\",\"attempt\":1,"
                          "\"type\":\"cancelled\"}",
                          id);
  report (fx, id, json);
  obj = expect_event (fx, id, 3, "cancelled", 1, &node);
  g_assert_cmpstr (
      jw_json_get_string (jw_json_get_object (obj, "error"), "code"), ==,
      "cancelled");
}

static void
test_lock (Fixture *fx, gconstpointer data)
{
  g_autoptr (GSubprocess) second = spawn_broker (fx);
  g_autoptr (GError) error = NULL;

  /* The first broker keeps its endpoints; the second one refuses. */
  g_subprocess_wait (second, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (second));
  g_assert_cmpint (g_subprocess_get_exit_status (second), !=, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  zsys_handler_set (NULL);

#define ADD(path, fn)                                                          \
  g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/broker/e2e/lifecycle", test_lifecycle);
  ADD ("/broker/e2e/bad-input", test_bad_input);
  ADD ("/broker/e2e/cancel-running", test_cancel_running);
  ADD ("/broker/e2e/lock", test_lock);
#undef ADD

  return g_test_run ();
}
