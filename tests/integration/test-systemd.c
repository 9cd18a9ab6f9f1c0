/* The daemons under systemd, without systemd: the units pass
 * systemd-analyze verify; each daemon, given a NOTIFY_SOCKET that the test
 * owns, says READY=1 only once it serves, pings the watchdog at half of
 * WATCHDOG_USEC and says STOPPING=1 on SIGTERM; api and pusher serve on a
 * listening socket passed as systemd passes it; and the structured log
 * records of a job carry its JOB_ID field in every process. */
#include <errno.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>

#include "testenv.h"

/* WATCHDOG_USEC given to the daemons: a ping is due every 200 ms. */
#define WATCHDOG_USEC 400000
#define WATCHDOG_WINDOW_MS 3000

/* ---- a notify socket, as systemd's ------------------------------------ */

typedef struct
{
  char *path;
  GSocket *sock;
  GPtrArray *messages; /* char *, every datagram received, in order */
  GArray *times;       /* gint64 monotonic µs of each */
} Notify;

static Notify *
notify_new (JwTestEnv *env, JwDaemon *d)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) addr = NULL;
  Notify *n = g_new0 (Notify, 1);

  n->path = g_strdup_printf ("%s/notify-%s", env->dir, d->name);
  n->messages = g_ptr_array_new_with_free_func (g_free);
  n->times = g_array_new (FALSE, FALSE, sizeof (gint64));
  n->sock =
      g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM, 0, &error);
  g_assert_no_error (error);
  addr = g_unix_socket_address_new (n->path);
  g_socket_bind (n->sock, addr, TRUE, &error);
  g_assert_no_error (error);
  jw_daemon_setenv (d, "NOTIFY_SOCKET", n->path);
  return n;
}

static void
notify_free (Notify *n)
{
  g_object_unref (n->sock);
  g_ptr_array_unref (n->messages);
  g_array_unref (n->times);
  g_free (n->path);
  g_free (n);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Notify, notify_free)

/* Whether text, one NAME=VALUE per line, has the line line. */
static gboolean
has_line (const char *text, const char *line)
{
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);

  return g_strv_contains ((const char *const *)lines, line);
}

/* Receives datagrams until one has the line `line` (NULL: none does) or
 * until deadline; returns the index of that one, or -1. */
static int
notify_wait (Notify *n, const char *line, gint64 deadline)
{
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      gint64 left = deadline - g_get_monotonic_time ();
      char buf[4096];
      gssize len;
      gint64 now;

      if (left <= 0)
        return -1;
      if (!g_socket_condition_timed_wait (n->sock, G_IO_IN, left, NULL, NULL))
        return -1;
      len = g_socket_receive (n->sock, buf, sizeof buf - 1, NULL, &error);
      if (len < 0)
        {
          g_assert_true (
              g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK));
          continue;
        }
      buf[len] = '\0';
      now = g_get_monotonic_time ();
      g_ptr_array_add (n->messages, g_strdup (buf));
      g_array_append_val (n->times, now);
      if (line != NULL && has_line (buf, line))
        return n->messages->len - 1;
    }
}

/* Index of the first message with the line, or -1. */
static int
notify_find (Notify *n, const char *line)
{
  for (guint i = 0; i < n->messages->len; i++)
    if (has_line (g_ptr_array_index (n->messages, i), line))
      return i;
  return -1;
}

/* The value of the newest STATUS= line, or NULL. */
static const char *
notify_status (Notify *n)
{
  for (guint i = n->messages->len; i > 0; i--)
    {
      const char *m = g_ptr_array_index (n->messages, i - 1);
      const char *s = strstr (m, "STATUS=");

      if (s != NULL && (s == m || s[-1] == '\n'))
        return s + strlen ("STATUS=");
    }
  return NULL;
}

/* Counts WATCHDOG=1 over WATCHDOG_WINDOW_MS from now and checks the rate:
 * one ping every WATCHDOG_USEC / 2, with room for a loaded machine. */
static void
assert_watchdog_rate (Notify *n, const char *who)
{
  guint first = n->messages->len, pings = 0;
  double expected = WATCHDOG_WINDOW_MS * 1000.0 / (WATCHDOG_USEC / 2);

  notify_wait (n, NULL, jw_deadline (WATCHDOG_WINDOW_MS));
  for (guint i = first; i < n->messages->len; i++)
    if (has_line (g_ptr_array_index (n->messages, i), "WATCHDOG=1"))
      pings++;
  g_test_message ("%s: %u watchdog pings in %d ms (%.0f expected)", who, pings,
                  WATCHDOG_WINDOW_MS, expected);
  g_assert_cmpuint (pings, >=, (guint)(expected * 0.6));
  g_assert_cmpuint (pings, <=, (guint)(expected * 1.4) + 1);
}

/* SIGTERM: STOPPING=1 arrives and the daemon exits 0. */
static void
assert_stopping (Notify *n, JwDaemon *d)
{
  g_assert_cmpint (jw_daemon_stop (d, 10000), ==, 0);
  if (notify_find (n, "STOPPING=1") < 0)
    g_assert_cmpint (notify_wait (n, "STOPPING=1", jw_deadline (2000)), >=, 0);
}

static guint
healthz (JwTestEnv *env, JwDaemon *d)
{
  g_autoptr (JwReply) r = d == env->api ? jw_api_get (env, "/healthz")
                                        : jw_pusher_get (env, "/healthz");

  return r->status;
}

/* ---- units ------------------------------------------------------------ */

/* Copies the rendered units to a directory of their own with ExecStart
 * pointing at the daemons just built (verify checks that the command
 * exists), and runs systemd-analyze verify on all of them. */
static void
test_units_verify (void)
{
  const char *unit_dir = g_getenv ("JW_UNIT_DIR");
  const char *units[] = { "jobwire-broker.service", "jobwire-api.service",
                          "jobwire-pusher.service", "jobwire-worker@.service",
                          "jobwire.target",         "jobwire-api.socket",
                          "jobwire-pusher.socket" };
  const char *exes[][2] = { { "/jobwire-broker ", "JW_BROKER" },
                            { "/jobwire-api ", "JW_API" },
                            { "/jobwire-pusher ", "JW_PUSHER" },
                            { "/jobwire-worker ", "JW_WORKER" } };
  g_autoptr (GError) error = NULL;
  g_autofree char *analyze = g_find_program_in_path ("systemd-analyze");
  g_autofree char *dir = NULL;
  g_autofree char *unit_path = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr (GStrvBuilder) argv = g_strv_builder_new ();
  g_auto (GStrv) args = NULL;
  g_auto (GStrv) envp = g_get_environ ();
  int status;

  if (analyze == NULL)
    {
      g_test_skip ("systemd-analyze is not installed");
      return;
    }
  g_assert_nonnull (unit_dir);
  dir = g_dir_make_tmp ("jw-units-XXXXXX", &error);
  g_assert_no_error (error);

  g_strv_builder_add_many (argv, analyze, "verify", "--man=no", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (units); i++)
    {
      g_autofree char *src = g_build_filename (unit_dir, units[i], NULL);
      g_autofree char *text = NULL;
      g_autofree char *dst = NULL;
      g_auto (GStrv) lines = NULL;
      g_autoptr (GString) fixed = g_string_new (NULL);

      g_file_get_contents (src, &text, NULL, &error);
      g_assert_no_error (error);
      lines = g_strsplit (text, "\n", -1);
      for (guint l = 0; lines[l] != NULL; l++)
        {
          const char *line = lines[l];

          if (g_str_has_prefix (line, "ExecStart="))
            for (guint e = 0; e < G_N_ELEMENTS (exes); e++)
              {
                const char *at = strstr (line, exes[e][0]);

                if (at != NULL)
                  {
                    g_string_append_printf (fixed, "ExecStart=%s%s\n",
                                            g_getenv (exes[e][1]),
                                            at + strlen (exes[e][0]) - 1);
                    line = NULL;
                    break;
                  }
              }
          if (line != NULL)
            g_string_append_printf (fixed, "%s%s", line,
                                    lines[l + 1] != NULL ? "\n" : "");
        }
      dst = g_build_filename (dir, units[i], NULL);
      g_file_set_contents (dst, fixed->str, -1, &error);
      g_assert_no_error (error);
      /* A template is verified through an instance. */
      if (g_str_has_suffix (units[i], "@.service"))
        {
          g_autofree char *inst =
              g_build_filename (dir, "jobwire-worker@1.service", NULL);

          g_file_set_contents (inst, fixed->str, -1, &error);
          g_assert_no_error (error);
          g_strv_builder_add (argv, inst);
        }
      else
        g_strv_builder_add (argv, dst);
    }
  args = g_strv_builder_end (argv);

  /* Units they name (jobwire-broker.service …) are found beside them. */
  unit_path = g_strconcat (dir, ":", NULL);
  envp = g_environ_setenv (envp, "SYSTEMD_UNIT_PATH", unit_path, TRUE);
  g_spawn_sync (dir, args, envp, G_SPAWN_DEFAULT, NULL, NULL, &out, &err,
                &status, &error);
  g_assert_no_error (error);
  g_test_message ("systemd-analyze verify: status %d\n%s%s", status, out, err);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  /* Unknown or misspelt settings are only warned about: none may be. */
  g_assert_cmpstr (g_strstrip (err), ==, "");
  g_assert_cmpstr (g_strstrip (out), ==, "");

  for (guint i = 0; i < G_N_ELEMENTS (units); i++)
    {
      g_autofree char *p = g_build_filename (dir, units[i], NULL);

      g_unlink (p);
    }
  {
    g_autofree char *p =
        g_build_filename (dir, "jobwire-worker@1.service", NULL);

    g_unlink (p);
  }
  g_rmdir (dir);
}

/* ---- readiness, watchdog, stopping ------------------------------------ */

static void
test_broker_notify (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_new (0);
  g_autoptr (Notify) n = notify_new (env, env->broker);
  g_autofree char *commands = g_build_filename (env->dir, "commands", NULL);
  g_autofree char *events = g_build_filename (env->dir, "events", NULL);
  int ready;

  jw_daemon_setenv (env->broker, "WATCHDOG_USEC", G_STRINGIFY (WATCHDOG_USEC));
  jw_daemon_start (env, env->broker);
  ready = notify_wait (n, "READY=1", jw_deadline (10000));
  g_assert_cmpint (ready, >=, 0);
  /* Serving: its endpoints are bound when it says so. */
  g_assert_true (g_file_test (commands, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (events, G_FILE_TEST_EXISTS));
  g_assert_nonnull (notify_status (n));
  g_assert_nonnull (strstr (notify_status (n), "0 queued, 0 running"));

  assert_watchdog_rate (n, "broker");
  assert_stopping (n, env->broker);
}

/* api or pusher: started alone, it must not say READY=1 while there is no
 * broker; once a broker runs it does, and /healthz answers 200 from then
 * on. It serves on a socket passed the way systemd passes one. */
static void
check_http_daemon (JwTestEnv *env, JwDaemon *d)
{
  g_autoptr (Notify) n = notify_new (env, d);
  int ready;

  jw_daemon_setenv (d, "WATCHDOG_USEC", G_STRINGIFY (WATCHDOG_USEC));
  jw_daemon_pass_listen_socket (env, d);
  jw_daemon_start (env, d);

  /* Without a broker: it answers on the passed socket, unhealthy, and
   * says it is not ready. */
  g_assert_cmpint (notify_wait (n, "READY=1", jw_deadline (2500)), <, 0);
  g_assert_cmpuint (healthz (env, d), ==, 503);
  g_assert_cmpint (notify_find (n, "READY=1"), <, 0);
  g_assert_nonnull (notify_status (n));
  g_assert_nonnull (strstr (notify_status (n), "not connected"));

  jw_daemon_start (env, env->broker);
  ready = notify_wait (n, "READY=1", jw_deadline (15000));
  g_assert_cmpint (ready, >=, 0);
  g_assert_cmpuint (healthz (env, d), ==, 200);
  g_test_message ("%s ready: %s", d->name,
                  (char *)g_ptr_array_index (n->messages, ready));

  assert_watchdog_rate (n, d->name);
  assert_stopping (n, d);
}

static void
test_api_notify (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_new (0);

  check_http_daemon (env, env->api);
}

static void
test_pusher_notify (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_new (0);

  check_http_daemon (env, env->pusher);
}

/* A worker is ready once the broker welcomed it; its status names the job
 * it runs. */
static void
test_worker_notify (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_new (1);
  JwDaemon *w = g_ptr_array_index (env->workers, 0);
  g_autoptr (Notify) n = notify_new (env, w);
  g_autofree char *id = NULL;
  g_autofree char *running = NULL;
  gint64 deadline;

  jw_daemon_setenv (w, "WATCHDOG_USEC", G_STRINGIFY (WATCHDOG_USEC));
  jw_daemon_start (env, w);
  g_assert_cmpint (notify_wait (n, "READY=1", jw_deadline (2000)), <, 0);
  g_assert_cmpstr (notify_status (n), ==, "waiting for the broker");

  jw_daemon_start (env, env->broker);
  jw_daemon_start (env, env->api);
  jw_daemon_start (env, env->pusher);
  g_assert_cmpint (notify_wait (n, "READY=1", jw_deadline (15000)), >=, 0);
  g_assert_cmpstr (notify_status (n), ==, "idle");
  g_assert_true (jw_test_env_wait_ready (env, 1, 15000));

  id = jw_submit (env, "{\"type\":\"sleep\",\"params\":{\"seconds\":1.5,"
                       "\"steps\":3}}");
  running = g_strdup_printf ("STATUS=running job %s", id);
  deadline = jw_deadline (10000);
  while (notify_find (n, running) < 0 && g_get_monotonic_time () < deadline)
    notify_wait (n, running, deadline);
  g_assert_cmpint (notify_find (n, running), >=, 0);
  g_assert_cmpint (notify_wait (n, "STATUS=idle", jw_deadline (10000)), >=, 0);

  assert_watchdog_rate (n, w->name);
  assert_stopping (n, w);
}

/* ---- the journal's fields --------------------------------------------- */

/* The JSON records of a daemon log written with JOBWIRE_LOG=json. */
static GPtrArray *
read_records (JwDaemon *d)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;
  GPtrArray *records = jw_node_array_new ();

  g_file_get_contents (d->log_path, &text, NULL, &error);
  g_assert_no_error (error);
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      JsonNode *node;

      if (lines[i][0] != '{')
        continue;
      node = json_from_string (lines[i], &error);
      g_assert_no_error (error);
      g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
      g_ptr_array_add (records, node);
    }
  return records;
}

/* Every record that speaks of job id carries JOB_ID=id, and there is at
 * least one. Returns how many. */
static guint
assert_job_records (JwDaemon *d, const char *id)
{
  g_autoptr (GPtrArray) records = read_records (d);
  guint with_id = 0;

  for (guint i = 0; i < records->len; i++)
    {
      JsonObject *r = json_node_get_object (g_ptr_array_index (records, i));
      const char *msg =
          json_object_get_string_member_with_default (r, "MESSAGE", "");
      const char *job =
          json_object_get_string_member_with_default (r, "JOB_ID", NULL);

      g_assert_nonnull (
          json_object_get_string_member_with_default (r, "PRIORITY", NULL));
      if (strstr (msg, id) != NULL && g_strcmp0 (job, id) != 0)
        g_error ("%s logged about job %s without its JOB_ID field: %s", d->name,
                 id, msg);
      if (g_strcmp0 (job, id) == 0)
        with_id++;
    }
  g_test_message ("%s: %u records with JOB_ID=%s of %u", d->name, with_id, id,
                  records->len);
  g_assert_cmpuint (with_id, >, 0);
  return with_id;
}

static void
test_journal_job_id (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_new (1);
  g_autoptr (JwSse) sse = NULL;
  g_autofree char *id = NULL;
  JwDaemon *daemons[4];

  daemons[0] = env->broker;
  daemons[1] = env->api;
  daemons[2] = env->pusher;
  daemons[3] = g_ptr_array_index (env->workers, 0);
  for (guint i = 0; i < G_N_ELEMENTS (daemons); i++)
    {
      jw_daemon_setenv (daemons[i], "JOBWIRE_LOG", "json");
      jw_daemon_start (env, daemons[i]);
    }
  g_assert_true (jw_test_env_wait_ready (env, 1, 15000));

  id = jw_submit (env, "{\"type\":\"sleep\",\"params\":{\"seconds\":0.2,"
                       "\"steps\":2}}");
  sse = jw_sse_read (env, id, NULL, NULL, 0, 15000);
  g_assert_true (sse->ended);
  g_assert_cmpuint (sse->events->len, >=, 4);

  for (guint i = 0; i < G_N_ELEMENTS (daemons); i++)
    assert_job_records (daemons[i], id);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/systemd/units/verify", test_units_verify);
  g_test_add_func ("/systemd/notify/broker", test_broker_notify);
  g_test_add_func ("/systemd/notify/api-socket-activated", test_api_notify);
  g_test_add_func ("/systemd/notify/pusher-socket-activated",
                   test_pusher_notify);
  g_test_add_func ("/systemd/notify/worker", test_worker_notify);
  g_test_add_func ("/systemd/journal/job-id", test_journal_job_id);
  return g_test_run ();
}
