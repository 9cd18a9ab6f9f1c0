/* ZeroMQ across hosts: every endpoint on tcp://, CURVE with the broker's
 * certificate and an allow-list of client keys. A listed worker runs jobs,
 * an unknown key is refused, plain tcp:// needs allow-plain-tcp, and
 * jobwire-cert creates and lists the certificates. */

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testenv.h"

#define SLEEP_JOB                                                              \
  "{\"type\":\"sleep\",\"params\":{\"seconds\":0.5,\"steps\":2}}"

static const char *const endpoint_names[] = {
  "commands", "workers", "worker-events", "events", "queries",
};

/* Runs jobwire-cert with args; returns its exit status and sets *out to
 * its stdout and stderr together. */
static int
run_cert (char **out, const char *arg, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;
  g_autofree char *std = NULL;
  const char *exe = g_getenv ("JW_CERT");
  int status = -1;
  va_list ap;

  g_assert_nonnull (exe);
  g_ptr_array_add (argv, (char *)exe);
  va_start (ap, arg);
  for (; arg != NULL; arg = va_arg (ap, const char *))
    g_ptr_array_add (argv, (char *)arg);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  g_spawn_sync (NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                &std, &err, &status, &error);
  g_assert_no_error (error);
  *out = g_strconcat (std, err, NULL);
  return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

/* Creates certificate name in DIR/keys; returns the public file's path. */
static char *
new_cert (JwTestEnv *env, const char *name)
{
  g_autofree char *keys = g_build_filename (env->dir, "keys", NULL);
  g_autofree char *out = NULL;

  g_assert_cmpint (run_cert (&out, "new", name, "--dir", keys, NULL), ==, 0);
  return g_build_filename (keys, name, NULL);
}

/* Copies a public certificate into the broker's allow-list directory. */
static void
allow (JwTestEnv *env, const char *public_path)
{
  g_autofree char *base = g_path_get_basename (public_path);
  g_autofree char *dest = g_build_filename (env->dir, "clients", base, NULL);
  g_autofree char *text = NULL;

  g_assert_true (g_file_get_contents (public_path, &text, NULL, NULL));
  g_assert_true (g_file_set_contents (dest, text, -1, NULL));
}

static void
daemon_set (JwDaemon *d, const char *key, const char *value)
{
  g_autofree char *setting = g_strdup_printf ("security.%s=%s", key, value);

  jw_daemon_add_set (d, setting);
}

/* A client of the broker with its own certificate name. */
static void
use_client_cert (JwTestEnv *env, JwDaemon *d, const char *name)
{
  g_autofree char *pub = new_cert (env, name);
  g_autofree char *secret = g_strconcat (pub, "_secret", NULL);
  g_autofree char *broker = g_build_filename (env->dir, "keys", "broker", NULL);

  daemon_set (d, "curve-certificate", secret);
  daemon_set (d, "curve-server-certificate", broker);
}

/* Every endpoint on its own loopback port, for every daemon of env. */
static void
use_tcp_endpoints (JwTestEnv *env)
{
  for (guint i = 0; i < G_N_ELEMENTS (endpoint_names); i++)
    {
      g_autofree char *set =
          g_strdup_printf ("endpoints.%s=tcp://127.0.0.1:%u", endpoint_names[i],
                           jw_test_pick_port ());

      jw_test_env_set (env, set);
    }
}

/* TRUE once the daemon's log has a line holding both needles, waiting up
 * to timeout_ms. */
static gboolean
wait_log (JwDaemon *d, const char *a, const char *b, guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);

  do
    {
      g_autofree char *text = NULL;
      g_auto (GStrv) lines = NULL;

      if (g_file_get_contents (d->log_path, &text, NULL, NULL))
        {
          lines = g_strsplit (text, "\n", -1);
          for (guint i = 0; lines[i] != NULL; i++)
            if (strstr (lines[i], a) && (b == NULL || strstr (lines[i], b)))
              return TRUE;
        }
      g_usleep (50 * G_TIME_SPAN_MILLISECOND);
    }
  while (g_get_monotonic_time () < deadline);
  return FALSE;
}

static gboolean
log_has (JwDaemon *d, const char *needle)
{
  g_autofree char *text = NULL;

  return g_file_get_contents (d->log_path, &text, NULL, NULL)
         && strstr (text, needle) != NULL;
}

/* The value of a sample line of the api's /metrics, -1 when absent. */
static gint64
metric (JwTestEnv *env, const char *name)
{
  g_autoptr (JwReply) r = jw_api_get (env, "/metrics");
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;

  if (r->status != 200)
    return -1;
  text =
      g_strndup (g_bytes_get_data (r->body, NULL), g_bytes_get_size (r->body));
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], name) && lines[i][strlen (name)] == ' ')
      return g_ascii_strtoll (lines[i] + strlen (name) + 1, NULL, 10);
  return -1;
}

/* broker, api and pusher on tcp:// with CURVE, each with its own
 * certificate; the api's and the pusher's keys are allow-listed. */
static JwTestEnv *
curve_env_start (void)
{
  JwTestEnv *env = jw_test_env_new (0);
  g_autofree char *clients = g_build_filename (env->dir, "clients", NULL);
  g_autofree char *broker_pub = NULL;
  g_autofree char *broker_secret = NULL;
  g_autofree char *api_pub = NULL, *pusher_pub = NULL;

  g_assert_cmpint (g_mkdir (clients, 0755), ==, 0);
  use_tcp_endpoints (env);
  broker_pub = new_cert (env, "broker");
  broker_secret = g_strconcat (broker_pub, "_secret", NULL);
  daemon_set (env->broker, "curve-certificate", broker_secret);
  daemon_set (env->broker, "curve-clients", clients);
  use_client_cert (env, env->api, "api");
  use_client_cert (env, env->pusher, "pusher");
  api_pub = g_build_filename (env->dir, "keys", "api", NULL);
  pusher_pub = g_build_filename (env->dir, "keys", "pusher", NULL);
  allow (env, api_pub);
  allow (env, pusher_pub);

  jw_daemon_start (env, env->broker);
  jw_daemon_start (env, env->api);
  jw_daemon_start (env, env->pusher);
  /* The api's ping and the pusher's heartbeats go through CURVE. */
  if (!jw_test_env_wait_ready (env, 0, 20000))
    g_error ("broker, api and pusher on tcp:// with CURVE did not come up");
  return env;
}

static void
test_listed_and_unknown_worker (void)
{
  g_autoptr (JwTestEnv) env = curve_env_start ();
  g_autofree char *good_pub = NULL;
  g_autofree char *id = NULL;
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (JsonNode) done = NULL;
  g_autoptr (JwSse) sse = NULL;
  g_autoptr (GPtrArray) nodes = NULL;
  g_autofree char *confused_pub = NULL;
  g_autofree char *stranger_pub = NULL;
  JwDaemon *bad, *good, *confused;
  gint64 refused = -1;
  gint64 deadline;

  /* A listed worker joins, which makes its types known, and leaves. */
  good = jw_test_env_new_worker (env);
  use_client_cert (env, good, "worker-good");
  good_pub = g_build_filename (env->dir, "keys", "worker-good", NULL);
  allow (env, good_pub);
  jw_daemon_start (env, good);
  g_assert_true (jw_test_env_wait_api (env, 1, 20000));
  g_assert_cmpint (jw_daemon_stop (good, 10000), ==, 0);
  g_assert_true (jw_test_env_wait_api (env, 0, 20000));

  /* A worker whose key the broker has never seen. */
  bad = jw_test_env_new_worker (env);
  use_client_cert (env, bad, "stranger");
  stranger_pub = g_build_filename (env->dir, "keys", "stranger", NULL);
  jw_daemon_start (env, bad);
  id = jw_submit (env, SLEEP_JOB);

  /* The broker refuses its handshake, says so and counts it. */
  g_assert_true (wait_log (env->broker, "refused zmq client",
                           "not in the allow-list", 20000));
  deadline = jw_deadline (20000);
  while ((refused = metric (env, "jobwire_broker_zap_refused_total")) < 1
         && g_get_monotonic_time () < deadline)
    g_usleep (100 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (refused, >=, 1);

  /* The worker says so too: libzmq does not retry a refused key. */
  g_assert_true (wait_log (bad, "the broker refused this process's CURVE key",
                           "curve-clients", 10000));

  /* It never got the job. */
  snap = jw_get_job (env, id);
  g_assert_cmpstr (jw_job_state (snap), ==, "queued");
  g_assert_cmpint (jw_daemon_pid (bad), >, 0);
  {
    g_autoptr (JwReply) health = jw_api_get (env, "/healthz");

    g_assert_cmpint (jw_int (jw_reply_object (health), "workers"), ==, 0);
  }

  /* A listed worker that trusts another server key fails its handshake,
   * and the broker says so. */
  confused = jw_test_env_new_worker (env);
  use_client_cert (env, confused, "confused");
  confused_pub = g_build_filename (env->dir, "keys", "confused", NULL);
  allow (env, confused_pub);
  daemon_set (confused, "curve-server-certificate", stranger_pub);
  jw_daemon_start (env, confused);
  g_assert_true (
      wait_log (env->broker, "CURVE handshake failed", "workers=", 20000));
  g_assert_cmpint (jw_daemon_stop (confused, 10000), ==, 0);
  g_assert_false (log_has (confused, id));

  /* The listed worker comes back and runs it. */
  jw_daemon_start (env, good);

  sse = jw_sse_read (env, id, NULL, NULL, 0, 30000);
  g_assert_cmpint (sse->status, ==, 200);
  g_assert_true (sse->ended);
  nodes = jw_sse_nodes (sse);
  jw_assert_history (nodes, id, 1, TRUE);
  g_assert_cmpstr (
      jw_str (json_node_get_object (nodes->pdata[nodes->len - 1]), "type"), ==,
      "succeeded");
  done = jw_wait_job (env, id, NULL, 10000);
  g_assert_nonnull (done);
  g_assert_cmpstr (jw_job_state (done), ==, "succeeded");
  g_assert_true (jw_test_env_find_worker (env, id, 1, 5000) == good);
  g_assert_false (log_has (bad, id));
  g_assert_true (
      wait_log (env->broker, "admitted zmq client", "cert=worker-good", 5000));
}

/* Starts d, expects it to exit 1 with needle in its log. */
static void
assert_refuses_to_start (JwTestEnv *env, JwDaemon *d, const char *needle)
{
  jw_daemon_start (env, d);
  g_assert_cmpint (jw_daemon_wait (d, 15000), ==, 1);
  g_assert_true (wait_log (d, needle, NULL, 1000));
}

static void
test_plain_tcp (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_new (1);
  JwDaemon *worker = g_ptr_array_index (env->workers, 0);
  g_autofree char *id = NULL;
  g_autoptr (JsonNode) done = NULL;

  use_tcp_endpoints (env);
  assert_refuses_to_start (env, env->broker, "is tcp:// without CURVE");
  g_assert_true (wait_log (env->broker, "allow-plain-tcp", NULL, 1000));
  assert_refuses_to_start (env, worker, "is tcp:// without CURVE");

  jw_test_env_set (env, "security.allow-plain-tcp=true");
  jw_daemon_start (env, env->broker);
  jw_daemon_start (env, env->api);
  jw_daemon_start (env, env->pusher);
  jw_daemon_start (env, worker);
  g_assert_true (jw_test_env_wait_ready (env, 1, 20000));
  g_assert_true (wait_log (env->broker, "is plain tcp://", NULL, 1000));
  id = jw_submit (env, SLEEP_JOB);
  done = jw_wait_job (env, id, NULL, 30000);
  g_assert_nonnull (done);
  g_assert_cmpstr (jw_job_state (done), ==, "succeeded");
}

static void
test_unsafe_files (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_new (0);
  g_autofree char *clients = g_build_filename (env->dir, "clients", NULL);
  g_autofree char *pub = NULL;
  g_autofree char *secret = NULL;

  g_assert_cmpint (g_mkdir (clients, 0755), ==, 0);
  use_tcp_endpoints (env);
  pub = new_cert (env, "broker");
  secret = g_strconcat (pub, "_secret", NULL);
  daemon_set (env->broker, "curve-clients", clients);

  /* A secret certificate others can read. */
  g_assert_cmpint (g_chmod (secret, 0640), ==, 0);
  daemon_set (env->broker, "curve-certificate", secret);
  assert_refuses_to_start (env, env->broker, "open to group or others");
  g_assert_cmpint (g_chmod (secret, 0600), ==, 0);

  /* A public certificate where the secret one belongs. */
  daemon_set (env->broker, "curve-certificate", pub);
  assert_refuses_to_start (env, env->broker, "no valid curve secret-key");
  daemon_set (env->broker, "curve-certificate", secret);

  /* An allow-list anyone may write to. */
  g_assert_cmpint (g_chmod (clients, 0777), ==, 0);
  assert_refuses_to_start (env, env->broker, "writable by group or others");
  g_assert_cmpint (g_chmod (clients, 0755), ==, 0);

  /* ipc:// endpoints in a directory others can enter. */
  {
    g_autofree char *open_dir = g_build_filename (env->dir, "open", NULL);
    g_autofree char *set =
        g_strdup_printf ("endpoints.queries=ipc://%s/queries", open_dir);

    g_assert_cmpint (g_mkdir (open_dir, 0755), ==, 0);
    jw_daemon_add_set (env->broker, set);
    assert_refuses_to_start (env, env->broker, "is open to group or others");
    g_assert_cmpint (g_chmod (open_dir, 0700), ==, 0);
    /* Closed, but another user's (only root can give it away). */
    if (chown (open_dir, 65534, 65534) == 0)
      {
        assert_refuses_to_start (env, env->broker, "belongs to uid 65534");
        g_assert_cmpint (chown (open_dir, getuid (), getgid ()), ==, 0);
      }
  }
  jw_daemon_start (env, env->broker);
  g_assert_true (wait_log (env->broker, "broker started", NULL, 15000));
}

static void
test_cert_command (void)
{
  g_autofree char *dir = g_dir_make_tmp ("jw-cert-XXXXXX", NULL);
  g_autofree char *pub = g_build_filename (dir, "w1", NULL);
  g_autofree char *sec = g_build_filename (dir, "w1_secret", NULL);
  g_autofree char *out = NULL, *list = NULL, *show = NULL, *again = NULL;
  g_autofree char *bad = NULL, *key = NULL;
  struct stat st;

  g_assert_cmpint (run_cert (&out, "new", "w1", "--dir", dir, NULL), ==, 0);
  g_assert_cmpint (stat (sec, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_assert_cmpint (stat (pub, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0444, ==, 0444);
  g_assert_cmpint (st.st_mode & 0022, ==, 0);
  g_free (out);
  g_assert_cmpint (run_cert (&out, "new", "api", "--dir", dir, NULL), ==, 0);

  /* list: one line per certificate, sorted, with its public key. */
  g_assert_cmpint (run_cert (&list, "list", dir, NULL), ==, 0);
  g_assert_true (g_str_has_prefix (list, "api\t"));
  g_assert_nonnull (strstr (list, "\nw1\t"));
  key = g_strndup (strstr (list, "\nw1\t") + 4, 40);
  g_assert_cmpuint (strlen (key), ==, 40);
  g_assert_null (strstr (list, "_secret\t"));
  g_assert_cmpint (run_cert (&show, "show", pub, NULL), ==, 0);
  g_assert_nonnull (strstr (show, key));
  g_assert_nonnull (strstr (show, "secret-key: absent"));

  /* Existing certificates are never overwritten; names stay plain. */
  g_assert_cmpint (run_cert (&again, "new", "w1", "--dir", dir, NULL), ==, 1);
  g_assert_nonnull (strstr (again, "exists already"));
  g_assert_cmpint (run_cert (&bad, "new", "../x", "--dir", dir, NULL), ==, 1);

  g_remove (pub);
  g_remove (sec);
  g_free (pub);
  g_free (sec);
  pub = g_build_filename (dir, "api", NULL);
  sec = g_build_filename (dir, "api_secret", NULL);
  g_remove (pub);
  g_remove (sec);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/curve/listed-worker-runs-unknown-refused",
                   test_listed_and_unknown_worker);
  g_test_add_func ("/curve/plain-tcp-needs-allow", test_plain_tcp);
  g_test_add_func ("/curve/unsafe-files-refused", test_unsafe_files);
  g_test_add_func ("/curve/cert-command", test_cert_command);
  return g_test_run ();
}
