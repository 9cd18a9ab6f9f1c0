/* testenv: starts the real jobwire daemons for one test and gives the test
 * a user's view of them (REST, SSE, WebSocket, long-poll). Daemon paths come
 * from $JW_BROKER, $JW_API, $JW_WORKER and $JW_PUSHER, set by meson. */

#define _GNU_SOURCE /* memmem */

#include "testenv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "jw-id.h"
#include "jw-json.h"
#include "jw-zmq.h"

#define POLL_MS 20
#define LOG_TAIL_BYTES 65536
#define LOG_TAIL_LINES 60
#define MAX_JSON_DEPTH 64

/* The environment of the running test, for the abort handler: a failed
 * g_assert or g_error ends the process without running the test's
 * cleanup. */
static JwTestEnv *current_env;

gint64
jw_deadline (guint ms)
{
  return g_get_monotonic_time () + (gint64)ms * G_TIME_SPAN_MILLISECOND;
}

GPtrArray *
jw_node_array_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify)json_node_unref);
}

static const char *
daemon_path (const char *var)
{
  const char *path = g_getenv (var);

  if (path == NULL || *path == '\0')
    g_error ("$%s is not set: run the integration tests with meson test", var);
  return path;
}

static guint16
pick_port (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocket) sock = NULL;
  g_autoptr (GInetAddress) lo = NULL;
  g_autoptr (GSocketAddress) addr = NULL;
  g_autoptr (GSocketAddress) bound = NULL;
  guint16 port;

  sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                       G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  addr = g_inet_socket_address_new (lo, 0);
  g_socket_bind (sock, addr, FALSE, &error);
  g_assert_no_error (error);
  bound = g_socket_get_local_address (sock, &error);
  g_assert_no_error (error);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (sock, NULL);
  return port;
}

/* Writes the last lines of a daemon log to fd 2, leaving out the lines of
 * the readiness polls; plain system calls, so that it also works from the
 * abort handler. */
static void
write_log_tail (const char *name, const char *path)
{
  static const char noise[] = "path=/healthz";
  static char buf[LOG_TAIL_BYTES];
  static ssize_t starts[LOG_TAIL_LINES], ends[LOG_TAIL_LINES];
  guint n;
  ssize_t len;
  off_t size;
  int fd;

  if (write (2, "\n----- log of ", 14) < 0 || write (2, name, strlen (name)) < 0
      || write (2, " -----\n", 7) < 0)
    return;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  size = lseek (fd, 0, SEEK_END);
  lseek (fd, size > LOG_TAIL_BYTES ? size - LOG_TAIL_BYTES : 0, SEEK_SET);
  len = read (fd, buf, sizeof buf);
  close (fd);

  /* Keep the last LOG_TAIL_LINES lines that are not noise. */
  n = 0;
  for (ssize_t start = 0; start < len;)
    {
      char *nl = memchr (buf + start, '\n', len - start);
      ssize_t end = nl ? nl - buf + 1 : len;

      if (memmem (buf + start, end - start, noise, sizeof noise - 1) == NULL)
        {
          starts[n % LOG_TAIL_LINES] = start;
          ends[n % LOG_TAIL_LINES] = end;
          n++;
        }
      start = end;
    }
  for (guint i = n > LOG_TAIL_LINES ? n - LOG_TAIL_LINES : 0; i < n; i++)
    if (write (2, buf + starts[i % LOG_TAIL_LINES],
               ends[i % LOG_TAIL_LINES] - starts[i % LOG_TAIL_LINES])
        < 0)
      return;
}

static void
env_foreach_daemon (JwTestEnv *env, void (*func) (JwDaemon *))
{
  func (env->broker);
  func (env->api);
  func (env->pusher);
  for (guint i = 0; i < env->workers->len; i++)
    func (g_ptr_array_index (env->workers, i));
}

static void
report_if_dead (JwDaemon *d)
{
  if (d->proc == NULL || g_subprocess_get_identifier (d->proc) != NULL)
    return;
  if (g_subprocess_get_if_signaled (d->proc))
    g_test_message ("%s died of signal %d", d->name,
                    g_subprocess_get_term_sig (d->proc));
  else
    g_test_message ("%s exited with status %d", d->name,
                    g_subprocess_get_exit_status (d->proc));
}

static void
dump_daemon_log (JwDaemon *d)
{
  char note[128] = "";

  /* Say how a daemon that is gone went, since its log may not. */
  if (d->proc != NULL && g_subprocess_get_identifier (d->proc) == NULL)
    {
      if (g_subprocess_get_if_signaled (d->proc))
        g_snprintf (note, sizeof note, "\n** %s died of signal %d\n", d->name,
                    g_subprocess_get_term_sig (d->proc));
      else
        g_snprintf (note, sizeof note, "\n** %s exited with status %d\n",
                    d->name, g_subprocess_get_exit_status (d->proc));
    }
  write_log_tail (d->name, d->log_path);
  if (note[0] != '\0' && write (2, note, strlen (note)) < 0)
    return;
}

static void
kill_daemon_now (JwDaemon *d)
{
  int pid = jw_daemon_pid (d);

  if (pid > 0)
    kill (pid, SIGKILL);
}

static void remove_tree (const char *path);

static void
on_abort (int sig)
{
  /* The children die with us (PR_SET_PDEATHSIG); show why we failed. */
  if (current_env != NULL)
    {
      const char *msg = "\n# test aborted; daemon logs follow\n";

      if (write (2, msg, strlen (msg)) >= 0)
        env_foreach_daemon (current_env, dump_daemon_log);
      env_foreach_daemon (current_env, kill_daemon_now);
      if (g_getenv ("JW_KEEP_DIR") == NULL)
        remove_tree (current_env->dir);
      current_env = NULL;
    }
  signal (sig, SIG_DFL);
  raise (sig);
}

static void
child_setup (gpointer user_data)
{
  /* A test that aborts must not leave daemons behind. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static JwDaemon *
daemon_new (JwTestEnv *env, const char *name, GStrv argv)
{
  JwDaemon *d = g_new0 (JwDaemon, 1);

  d->name = g_strdup (name);
  d->log_path = g_strdup_printf ("%s/%s.log", env->dir, name);
  d->argv = argv;
  return d;
}

static void
daemon_free (JwDaemon *d)
{
  if (d->proc != NULL)
    jw_daemon_kill (d);
  g_free (d->name);
  g_free (d->log_path);
  g_strfreev (d->argv);
  g_strfreev (d->env);
  g_clear_object (&d->listen_socket);
  g_free (d);
}

void
jw_daemon_start (JwTestEnv *env, JwDaemon *d)
{
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *cmd = NULL;
  g_autofree char *banner = NULL;
  int fd;

  g_assert_null (d->proc);
  fd = open (d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  g_assert_cmpint (fd, >=, 0);
  cmd = g_strjoinv (" ", d->argv);
  banner = g_strdup_printf ("===== %s: %s\n", d->name, cmd);
  if (write (fd, banner, strlen (banner)) < 0)
    g_test_message ("cannot write %s: %s", d->log_path, g_strerror (errno));

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_take_stdout_fd (launcher, dup (fd));
  g_subprocess_launcher_take_stderr_fd (launcher, fd);
  g_subprocess_launcher_unsetenv (launcher, "JOBWIRE_CONFIG");
  g_subprocess_launcher_unsetenv (launcher, "JOBWIRE_RUNTIME_DIR");
  g_subprocess_launcher_setenv (launcher, "G_MESSAGES_DEBUG", "all", TRUE);
  /* A critical is a programmer error: let it crash the daemon and the
   * test rather than go unnoticed. */
  g_subprocess_launcher_setenv (launcher, "G_DEBUG", "fatal-criticals", TRUE);
  for (guint i = 0; d->env != NULL && d->env[i] != NULL; i++)
    {
      g_auto (GStrv) kv = g_strsplit (d->env[i], "=", 2);

      g_subprocess_launcher_setenv (launcher, kv[0], kv[1], TRUE);
    }
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  if (d->listen_socket != NULL)
    {
      /* LISTEN_PID must be the daemon's own pid: a shell learns it and
       * execs the daemon in its place. */
      g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
      g_auto (GStrv) argv = NULL;

      g_strv_builder_add_many (b, "/bin/sh", "-c",
                               "LISTEN_PID=$$; export LISTEN_PID; "
                               "exec \"$@\"",
                               "sh", NULL);
      g_strv_builder_addv (b, (const char **)d->argv);
      argv = g_strv_builder_end (b);
      g_subprocess_launcher_setenv (launcher, "LISTEN_FDS", "1", TRUE);
      g_subprocess_launcher_take_fd (
          launcher, dup (g_socket_get_fd (d->listen_socket)), 3);
      d->proc = g_subprocess_launcher_spawnv (
          launcher, (const char *const *)argv, &error);
    }
  else
    d->proc = g_subprocess_launcher_spawnv (
        launcher, (const char *const *)d->argv, &error);
  g_assert_no_error (error);
  g_test_message ("started %s pid=%s", d->name,
                  g_subprocess_get_identifier (d->proc));
}

void
jw_daemon_setenv (JwDaemon *d, const char *name, const char *value)
{
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_autofree char *kv = g_strdup_printf ("%s=%s", name, value);

  if (d->env != NULL)
    g_strv_builder_addv (b, (const char **)d->env);
  g_strv_builder_add (b, kv);
  g_strfreev (d->env);
  d->env = g_strv_builder_end (b);
}

void
jw_daemon_pass_listen_socket (JwTestEnv *env, JwDaemon *d)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GInetAddress) lo =
      g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) addr = NULL;
  g_autoptr (GSocket) sock = NULL;
  guint16 port = d == env->api ? env->api_port : env->pusher_port;

  g_assert_true (d == env->api || d == env->pusher);
  addr = g_inet_socket_address_new (lo, port);
  sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                       G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_bind (sock, addr, TRUE, &error);
  g_assert_no_error (error);
  g_socket_listen (sock, &error);
  g_assert_no_error (error);
  g_set_object (&d->listen_socket, sock);
}

int
jw_daemon_pid (JwDaemon *d)
{
  const char *ident;

  if (d->proc == NULL)
    return 0;
  ident = g_subprocess_get_identifier (d->proc);
  return ident != NULL ? atoi (ident) : 0;
}

/* GSubprocess reaps the child on GLib's worker thread; the identifier
 * becomes NULL once it has. */
static gboolean
wait_exit (JwDaemon *d, guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);

  while (g_subprocess_get_identifier (d->proc) != NULL)
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      g_usleep (5 * G_TIME_SPAN_MILLISECOND);
    }
  g_subprocess_wait (d->proc, NULL, NULL);
  return TRUE;
}

void
jw_daemon_kill (JwDaemon *d)
{
  if (d->proc == NULL)
    return;
  g_subprocess_force_exit (d->proc);
  wait_exit (d, 5000);
  g_clear_object (&d->proc);
}

/* Waits for a daemon that was sent SIGTERM; returns its exit status. */
static int
reap_stopped (JwDaemon *d, guint timeout_ms)
{
  int status = -1;

  if (wait_exit (d, timeout_ms))
    {
      if (g_subprocess_get_if_exited (d->proc))
        status = g_subprocess_get_exit_status (d->proc);
      else
        g_test_message ("%s died of signal %d", d->name,
                        g_subprocess_get_term_sig (d->proc));
    }
  else
    {
      g_test_message ("%s did not exit within %u ms of SIGTERM", d->name,
                      timeout_ms);
      jw_daemon_kill (d);
    }
  g_clear_object (&d->proc);
  return status;
}

int
jw_daemon_wait (JwDaemon *d, guint timeout_ms)
{
  if (d->proc == NULL)
    return -1;
  return reap_stopped (d, timeout_ms);
}

int
jw_daemon_stop (JwDaemon *d, guint timeout_ms)
{
  if (d->proc == NULL)
    return -1;
  g_subprocess_send_signal (d->proc, SIGTERM);
  return reap_stopped (d, timeout_ms);
}

static JwReply *http_request (JwTestEnv *env, const char *method,
                              const char *url, const char *ctype, GBytes *body,
                              const char *const *extra_headers, gboolean quiet);

static gboolean
api_ready (JwTestEnv *env, guint n_workers)
{
  g_autofree char *url = g_strconcat (env->api_url, "/healthz", NULL);
  g_autoptr (JwReply) r =
      http_request (env, "GET", url, NULL, NULL, NULL, TRUE);
  JsonObject *obj = jw_reply_object (r);
  JsonNode *w;

  if (r->status != 200 || obj == NULL)
    return FALSE;
  w = json_object_get_member (obj, "workers");
  return w != NULL && JSON_NODE_HOLDS_VALUE (w)
         && json_node_get_value_type (w) == G_TYPE_INT64
         && json_node_get_int (w) == (gint64)n_workers;
}

gboolean
jw_wait_api_status (JwTestEnv *env, const char *path, guint status,
                    guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);

  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr (JwReply) r = jw_api_get (env, path);

      if (r->status == status)
        return TRUE;
      g_usleep (POLL_MS * G_TIME_SPAN_MILLISECOND);
    }
  return FALSE;
}

gboolean
jw_test_env_wait_api (JwTestEnv *env, guint n_workers, guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);

  while (!api_ready (env, n_workers))
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      g_usleep (POLL_MS * G_TIME_SPAN_MILLISECOND);
    }
  return TRUE;
}

static gboolean
pusher_ready (JwTestEnv *env)
{
  g_autofree char *url = g_strconcat (env->pusher_url, "/healthz", NULL);
  g_autoptr (JwReply) r =
      http_request (env, "GET", url, NULL, NULL, NULL, TRUE);

  return r->status == 200;
}

static gboolean
all_alive (JwTestEnv *env)
{
  gboolean alive = jw_daemon_pid (env->broker) && jw_daemon_pid (env->api)
                   && jw_daemon_pid (env->pusher);

  for (guint i = 0; i < env->workers->len; i++)
    alive = alive && jw_daemon_pid (g_ptr_array_index (env->workers, i));
  return alive;
}

gboolean
jw_test_env_wait_ready (JwTestEnv *env, guint n_workers, guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);

  while (g_get_monotonic_time () < deadline)
    {
      if (api_ready (env, n_workers) && pusher_ready (env))
        return TRUE;
      if (!all_alive (env))
        return FALSE;
      g_usleep (POLL_MS * G_TIME_SPAN_MILLISECOND);
    }
  return FALSE;
}

static GStrv
make_argv (const char *exe, ...)
{
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  const char *arg;
  va_list ap;

  g_strv_builder_add (b, exe);
  va_start (ap, exe);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_strv_builder_add (b, arg);
  va_end (ap);
  return g_strv_builder_end (b);
}

void
jw_test_env_run (JwTestEnv *env)
{
  guint n_workers = env->workers->len;

  jw_daemon_start (env, env->broker);
  jw_daemon_start (env, env->api);
  jw_daemon_start (env, env->pusher);
  for (guint i = 0; i < n_workers; i++)
    jw_daemon_start (env, g_ptr_array_index (env->workers, i));

  if (!jw_test_env_wait_ready (env, n_workers, 15000))
    {
      g_autoptr (JwReply) api = jw_api_get (env, "/healthz");
      g_autoptr (JwReply) pusher = jw_pusher_get (env, "/healthz");

      if (!all_alive (env))
        env_foreach_daemon (env, report_if_dead);
      g_test_message ("api /healthz: %u %.*s; pusher /healthz: %u", api->status,
                      (int)MIN (g_bytes_get_size (api->body), 300),
                      (const char *)g_bytes_get_data (api->body, NULL),
                      pusher->status);
      g_error ("the pipeline did not become ready within 15 s "
               "(api /healthz 200 with workers=%u, pusher /healthz 200)",
               n_workers);
    }
}

JwTestEnv *
jw_test_env_start (guint n_workers)
{
  JwTestEnv *env = jw_test_env_new (n_workers);

  jw_test_env_run (env);
  return env;
}

JwTestEnv *
jw_test_env_new (guint n_workers)
{
  static gboolean handler_installed;
  g_autoptr (GError) error = NULL;
  g_autofree char *api_listen = NULL;
  g_autofree char *pusher_listen = NULL;
  g_autofree char *pusher_set = NULL;
  g_autofree char *root_set = NULL;
  g_autofree char *ledger_set = NULL;
  JwTestEnv *env = g_new0 (JwTestEnv, 1);

  if (!handler_installed)
    {
      /* g_assert aborts; g_error traps. */
      signal (SIGABRT, on_abort);
      signal (SIGTRAP, on_abort);
      handler_installed = TRUE;
    }

  /* ipc:// paths are limited to ~107 bytes: keep the directory short. */
  env->dir = g_dir_make_tmp ("jw-XXXXXX", &error);
  g_assert_no_error (error);
  env->checksum_root = g_build_filename (env->dir, "files", NULL);
  g_assert_cmpint (g_mkdir (env->checksum_root, 0755), ==, 0);
  env->api_port = pick_port ();
  do
    env->pusher_port = pick_port ();
  while (env->pusher_port == env->api_port);
  env->api_url = g_strdup_printf ("http://127.0.0.1:%u", env->api_port);
  env->pusher_url = g_strdup_printf ("http://127.0.0.1:%u", env->pusher_port);
  env->session = soup_session_new_with_options (
      "timeout", 15, "max-conns", 400, "max-conns-per-host", 400, NULL);
  g_test_message ("runtime dir %s, api %s, pusher %s", env->dir, env->api_url,
                  env->pusher_url);

  api_listen = g_strdup_printf ("127.0.0.1:%u", env->api_port);
  pusher_listen = g_strdup_printf ("127.0.0.1:%u", env->pusher_port);
  pusher_set = g_strdup_printf ("api.pusher-url=%s", env->pusher_url);
  root_set = g_strdup_printf ("worker.checksum-root=%s", env->checksum_root);

  /* Each test has its own ledger, in its runtime directory. */
  env->ledger_path = g_build_filename (env->dir, "ledger.sqlite", NULL);
  ledger_set = g_strdup_printf ("broker.ledger=%s", env->ledger_path);
  env->broker =
      daemon_new (env, "broker",
                  make_argv (daemon_path ("JW_BROKER"), "--runtime-dir",
                             env->dir, "--set", ledger_set, NULL));
  env->api = daemon_new (env, "api",
                         make_argv (daemon_path ("JW_API"), "--runtime-dir",
                                    env->dir, "--listen", api_listen, "--set",
                                    pusher_set, NULL));
  env->pusher =
      daemon_new (env, "pusher",
                  make_argv (daemon_path ("JW_PUSHER"), "--runtime-dir",
                             env->dir, "--listen", pusher_listen, NULL));
  env->workers = g_ptr_array_new_with_free_func ((GDestroyNotify)daemon_free);
  for (guint i = 0; i < n_workers; i++)
    {
      g_autofree char *name = g_strdup_printf ("w%u", i + 1);

      g_ptr_array_add (
          env->workers,
          daemon_new (env, name,
                      make_argv (daemon_path ("JW_WORKER"), "--runtime-dir",
                                 env->dir, "--name", name, "--set", root_set,
                                 NULL)));
    }

  current_env = env;
  return env;
}

void
jw_test_env_dump_logs (JwTestEnv *env)
{
  env_foreach_daemon (env, dump_daemon_log);
}

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          if (g_file_test (child, G_FILE_TEST_IS_DIR)
              && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            remove_tree (child);
          else
            g_unlink (child);
        }
    }
  g_rmdir (path);
}

static void
signal_term (JwDaemon *d)
{
  if (d->proc != NULL)
    g_subprocess_send_signal (d->proc, SIGTERM);
}

static void
check_stop (JwDaemon *d)
{
  int status;

  if (d->proc == NULL)
    return;
  /* Once: a second SIGTERM may find the default action restored. */
  status = reap_stopped (d, 5000);
  if (status != 0)
    g_test_fail_printf ("%s did not exit 0 on SIGTERM (status %d)", d->name,
                        status);
}

void
jw_test_env_free (JwTestEnv *env)
{
  if (env == NULL)
    return;

  /* Signal all first, so that they shut down in parallel. */
  env_foreach_daemon (env, signal_term);
  env_foreach_daemon (env, check_stop);
  if (g_test_failed ())
    jw_test_env_dump_logs (env);
  current_env = NULL;

  g_clear_pointer (&env->broker, daemon_free);
  g_clear_pointer (&env->api, daemon_free);
  g_clear_pointer (&env->pusher, daemon_free);
  g_ptr_array_unref (env->workers);
  g_strfreev (env->sets);
  soup_session_abort (env->session);
  g_object_unref (env->session);
  if (g_getenv ("JW_KEEP_DIR") == NULL)
    remove_tree (env->dir);
  g_free (env->dir);
  g_free (env->checksum_root);
  g_free (env->ledger_path);
  g_free (env->api_url);
  g_free (env->pusher_url);
  g_free (env);
}

/* HTTP */

void
jw_reply_free (JwReply *r)
{
  if (r == NULL)
    return;
  g_clear_pointer (&r->headers, soup_message_headers_unref);
  g_clear_pointer (&r->body, g_bytes_unref);
  g_clear_pointer (&r->json, json_node_unref);
  g_free (r);
}

JsonObject *
jw_reply_object (JwReply *r)
{
  return r->json != NULL ? jw_json_node_object (r->json) : NULL;
}

/* After a failed request: did a daemon die? Reaping is asynchronous, so
 * give it a moment. */
static void
report_dead_daemons (JwTestEnv *env)
{
  gint64 deadline = g_get_monotonic_time () + 300 * G_TIME_SPAN_MILLISECOND;

  while (all_alive (env) && g_get_monotonic_time () < deadline)
    g_usleep (5 * G_TIME_SPAN_MILLISECOND);
  if (!all_alive (env))
    env_foreach_daemon (env, report_if_dead);
}

static JwReply *
http_request (JwTestEnv *env, const char *method, const char *url,
              const char *ctype, GBytes *body, const char *const *extra_headers,
              gboolean quiet)
{
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autoptr (GError) error = NULL;
  JwReply *r = g_new0 (JwReply, 1);
  SoupMessageHeaders *req;

  g_assert_nonnull (msg);
  req = soup_message_get_request_headers (msg);
  for (guint i = 0; extra_headers != NULL && extra_headers[i] != NULL; i += 2)
    soup_message_headers_replace (req, extra_headers[i], extra_headers[i + 1]);
  if (body != NULL)
    soup_message_set_request_body_from_bytes (msg, ctype, body);

  r->body = soup_session_send_and_read (env->session, msg, NULL, &error);
  r->status = soup_message_get_status (msg);
  r->headers = soup_message_get_response_headers (msg);
  soup_message_headers_ref (r->headers);
  if (r->body == NULL)
    {
      if (!quiet)
        {
          g_test_message ("%s %s: %s", method, url, error->message);
          report_dead_daemons (env);
        }
      r->status = 0;
      r->body = g_bytes_new (NULL, 0);
    }
  else if (g_bytes_get_size (r->body) > 0)
    {
      g_autoptr (GError) perr = NULL;

      r->json = jw_json_parse_bytes (r->body, MAX_JSON_DEPTH, &perr);
    }
  return r;
}

JwReply *
jw_http (JwTestEnv *env, const char *method, const char *url, const char *ctype,
         GBytes *body, const char *const *extra_headers)
{
  return http_request (env, method, url, ctype, body, extra_headers, FALSE);
}

JwReply *
jw_api_post_json (JwTestEnv *env, const char *path, const char *json)
{
  g_autofree char *url = g_strconcat (env->api_url, path, NULL);
  g_autoptr (GBytes) body = g_bytes_new (json, strlen (json));

  return jw_http (env, "POST", url, "application/json", body, NULL);
}

JwReply *
jw_api_get (JwTestEnv *env, const char *path)
{
  g_autofree char *url = g_strconcat (env->api_url, path, NULL);

  return jw_http (env, "GET", url, NULL, NULL, NULL);
}

JwReply *
jw_pusher_get (JwTestEnv *env, const char *path)
{
  g_autofree char *url = g_strconcat (env->pusher_url, path, NULL);

  return jw_http (env, "GET", url, NULL, NULL, NULL);
}

static gboolean
is_json_type (const char *ctype)
{
  return ctype != NULL
         && g_ascii_strncasecmp (ctype, "application/json", 16) == 0
         && (ctype[16] == '\0' || ctype[16] == ';');
}

void
jw_assert_error (JwReply *r, guint status, const char *code)
{
  JsonObject *obj = jw_reply_object (r);
  const char *ctype;
  JsonObject *err;

  if (r->status != status || obj == NULL)
    g_test_message ("status %u body: %.*s", r->status,
                    (int)MIN (g_bytes_get_size (r->body), 400),
                    (const char *)g_bytes_get_data (r->body, NULL));
  g_assert_cmpuint (r->status, ==, status);
  ctype = soup_message_headers_get_content_type (r->headers, NULL);
  g_assert_true (is_json_type (ctype));
  g_assert_nonnull (obj);
  err = jw_json_get_object (obj, "error");
  g_assert_nonnull (err);
  if (code != NULL)
    g_assert_cmpstr (jw_str (err, "code"), ==, code);
  else
    g_assert_cmpuint (strlen (jw_str (err, "code")), >, 0);
  g_assert_cmpuint (strlen (jw_str (err, "message")), >, 0);
}

const char *
jw_str (JsonObject *obj, const char *member)
{
  const char *s = jw_json_get_string (obj, member);

  if (s == NULL)
    g_error ("member \"%s\" is missing or not a string", member);
  return s;
}

gint64
jw_int (JsonObject *obj, const char *member)
{
  gint64 v;

  if (!jw_json_get_int (obj, member, &v))
    g_error ("member \"%s\" is missing or not an integer", member);
  return v;
}

/* Jobs */

char *
jw_submit (JwTestEnv *env, const char *json)
{
  g_autoptr (JwReply) r = jw_api_post_json (env, "/jobs", json);
  JsonObject *obj = jw_reply_object (r);
  g_autofree char *location = NULL;
  const char *id;

  if (r->status != 202)
    g_test_message ("POST /jobs %s: status %u body %.*s", json, r->status,
                    (int)MIN (g_bytes_get_size (r->body), 400),
                    (const char *)g_bytes_get_data (r->body, NULL));
  g_assert_cmpuint (r->status, ==, 202);
  g_assert_nonnull (obj);
  id = jw_str (obj, "id");
  g_assert_true (jw_id_valid (id, -1));
  location = g_strconcat ("/jobs/", id, NULL);
  g_assert_true (g_str_has_suffix (
      soup_message_headers_get_one (r->headers, "Location"), location));
  return g_strdup (id);
}

JsonNode *
jw_get_job (JwTestEnv *env, const char *id)
{
  g_autofree char *path = g_strconcat ("/jobs/", id, NULL);
  g_autoptr (JwReply) r = jw_api_get (env, path);
  JsonObject *obj = jw_reply_object (r);

  g_assert_cmpuint (r->status, ==, 200);
  g_assert_nonnull (obj);
  g_assert_cmpstr (jw_str (obj, "id"), ==, id);
  return json_node_ref (r->json);
}

const char *
jw_job_state (JsonNode *snapshot)
{
  return jw_str (jw_json_node_object (snapshot), "state");
}

static gboolean
state_terminal (const char *state)
{
  return g_str_equal (state, "succeeded") || g_str_equal (state, "failed")
         || g_str_equal (state, "cancelled");
}

JsonNode *
jw_wait_job (JwTestEnv *env, const char *id, const char *state,
             guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);

  for (;;)
    {
      g_autofree char *path = g_strconcat ("/jobs/", id, NULL);
      g_autoptr (JwReply) r = jw_api_get (env, path);
      const char *s = "unavailable";

      /* 503 says "try again" (the api may be reconnecting to a restarted
       * broker); anything else but 200 is a failure. */
      if (r->status != 503)
        {
          g_assert_cmpuint (r->status, ==, 200);
          g_assert_nonnull (jw_reply_object (r));
          s = jw_job_state (r->json);
          if (state != NULL ? g_str_equal (s, state) : state_terminal (s))
            return json_node_ref (r->json);
        }
      if (g_get_monotonic_time () > deadline)
        {
          g_test_message ("job %s still %s after %u ms (waiting for %s)", id, s,
                          timeout_ms, state ? state : "the end");
          return NULL;
        }
      g_usleep (POLL_MS * G_TIME_SPAN_MILLISECOND);
    }
}

/* Event histories */

static gboolean
event_type_terminal (const char *type)
{
  return state_terminal (type);
}

void
jw_assert_history (GPtrArray *events, const char *job, gint64 first_seq,
                   gboolean must_end)
{
  static const char *const types[] = { "queued",    "started",   "progress",
                                       "retrying",  "succeeded", "failed",
                                       "cancelled", NULL };

  for (guint i = 0; i < events->len; i++)
    {
      JsonObject *ev = jw_json_node_object (g_ptr_array_index (events, i));
      const char *type;

      g_assert_nonnull (ev);
      g_assert_cmpstr (jw_str (ev, "job"), ==, job);
      g_assert_cmpint (jw_int (ev, "seq"), ==, first_seq + i);
      type = jw_str (ev, "type");
      g_assert_true (g_strv_contains (types, type));
      g_assert_nonnull (jw_str (ev, "time"));
      g_assert_cmpint (jw_int (ev, "attempt"), >=, 0);
      if (event_type_terminal (type))
        g_assert_cmpuint (i, ==, events->len - 1);
    }
  if (must_end)
    {
      JsonObject *last;

      g_assert_cmpuint (events->len, >, 0);
      last = jw_json_node_object (g_ptr_array_index (events, events->len - 1));
      g_assert_true (event_type_terminal (jw_str (last, "type")));
    }
}

/* SSE */

static void
sse_event_free (JwSseEvent *ev)
{
  g_free (ev->id);
  g_free (ev->event);
  g_free (ev->data);
  g_clear_pointer (&ev->json, json_node_unref);
  g_free (ev);
}

void
jw_sse_free (JwSse *sse)
{
  if (sse == NULL)
    return;
  g_ptr_array_unref (sse->events);
  g_free (sse->content_type);
  g_free (sse);
}

static void
set_str (char **dst, const char *value)
{
  g_free (*dst);
  *dst = g_strdup (value);
}

static GPtrArray *
sse_events_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify)sse_event_free);
}

/* Interprets one line of the stream (without its end of line) into cur;
 * returns TRUE when a blank line completed an event. */
static gboolean
sse_feed_line (JwSseEvent *cur, GString *data, const char *line)
{
  const char *colon;
  g_autofree char *field = NULL;
  const char *value;

  if (*line == '\0')
    return data->len > 0;
  if (*line == ':')
    return FALSE;
  colon = strchr (line, ':');
  field = colon ? g_strndup (line, colon - line) : g_strdup (line);
  value = colon ? colon + 1 : "";
  if (*value == ' ')
    value++;
  if (g_str_equal (field, "id"))
    set_str (&cur->id, value);
  else if (g_str_equal (field, "event"))
    set_str (&cur->event, value);
  else if (g_str_equal (field, "data"))
    {
      g_string_append (data, value);
      g_string_append_c (data, '\n');
    }
  return FALSE;
}

/* Feeds one line (len bytes, without its LF) to the event being built in
 * *cur; returns the event it completed, now appended to sse->events. */
static JwSseEvent *
sse_take_line (JwSse *sse, JwSseEvent **cur, GString *data, char *line,
               gsize len)
{
  JwSseEvent *ev = *cur;
  JsonObject *obj;

  if (len > 0 && line[len - 1] == '\r')
    line[len - 1] = '\0';
  if (!sse_feed_line (ev, data, line))
    return NULL;

  g_string_truncate (data, data->len - 1);
  ev->data = g_strdup (data->str);
  g_string_truncate (data, 0);
  ev->json = jw_json_parse (ev->data, strlen (ev->data), MAX_JSON_DEPTH, NULL);
  obj = ev->json ? jw_json_node_object (ev->json) : NULL;
  if (obj == NULL || !jw_json_get_int (obj, "seq", &ev->seq))
    ev->seq = -1;
  g_ptr_array_add (sse->events, ev);
  *cur = g_new0 (JwSseEvent, 1);
  return ev;
}

JwSse *
jw_sse_parse (GBytes *body)
{
  g_autoptr (GString) data = g_string_new (NULL);
  g_autofree char *text =
      g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  JwSseEvent *cur = g_new0 (JwSseEvent, 1);
  JwSse *sse = g_new0 (JwSse, 1);

  sse->status = 200;
  sse->ended = TRUE;
  sse->events = sse_events_new ();
  for (guint i = 0; lines[i] != NULL; i++)
    sse_take_line (sse, &cur, data, lines[i], strlen (lines[i]));
  sse_event_free (cur);
  return sse;
}

JwSse *
jw_sse_read (JwTestEnv *env, const char *id, const char *last_event_id,
             const char *query, gint64 stop_seq, guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);
  g_autoptr (SoupSession) session = NULL;
  g_autoptr (SoupMessage) msg = NULL;
  g_autoptr (GInputStream) body = NULL;
  g_autoptr (GDataInputStream) lines = NULL;
  g_autoptr (GCancellable) cancel = g_cancellable_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) data = g_string_new (NULL);
  g_autofree char *url = NULL;
  JwSseEvent *cur = g_new0 (JwSseEvent, 1);
  JwSse *sse = g_new0 (JwSse, 1);

  sse->events = sse_events_new ();
  /* Its own session: the I/O timeout bounds a stream that goes silent, and
   * aborting it drops the connection at once. */
  session =
      soup_session_new_with_options ("timeout", timeout_ms / 1000 + 1, NULL);
  url = g_strdup_printf ("%s/jobs/%s/events%s%s", env->pusher_url, id,
                         query ? "?" : "", query ? query : "");
  msg = soup_message_new ("GET", url);
  g_assert_nonnull (msg);
  soup_message_headers_replace (soup_message_get_request_headers (msg),
                                "Accept", "text/event-stream");
  if (last_event_id != NULL)
    soup_message_headers_replace (soup_message_get_request_headers (msg),
                                  "Last-Event-ID", last_event_id);
  body = soup_session_send (session, msg, NULL, &error);
  g_assert_no_error (error);
  sse->status = soup_message_get_status (msg);
  sse->content_type = g_strdup (soup_message_headers_get_content_type (
      soup_message_get_response_headers (msg), NULL));
  if (sse->status != 200)
    {
      g_input_stream_close (body, NULL, NULL);
      g_free (cur);
      sse->ended = TRUE;
      return sse;
    }

  lines = g_data_input_stream_new (body);
  g_data_input_stream_set_newline_type (lines, G_DATA_STREAM_NEWLINE_TYPE_LF);
  while (g_get_monotonic_time () < deadline)
    {
      g_autofree char *line = NULL;
      JwSseEvent *ev;
      gsize len;

      line = g_data_input_stream_read_line (lines, &len, NULL, &error);
      if (line == NULL)
        {
          if (error != NULL)
            g_test_message ("SSE %s: %s", url, error->message);
          else
            sse->ended = TRUE;
          break;
        }
      ev = sse_take_line (sse, &cur, data, line, len);
      if (ev != NULL && stop_seq > 0 && ev->seq >= stop_seq)
        break;
    }
  sse_event_free (cur);

  /* Closing a response body reads it to its end unless cancelled. */
  g_cancellable_cancel (cancel);
  g_input_stream_close (G_INPUT_STREAM (lines), cancel, NULL);
  soup_session_abort (session);
  return sse;
}

GPtrArray *
jw_sse_nodes (JwSse *sse)
{
  GPtrArray *nodes = g_ptr_array_new ();

  for (guint i = 0; i < sse->events->len; i++)
    {
      JwSseEvent *ev = g_ptr_array_index (sse->events, i);
      g_autofree char *seq = NULL;

      if (ev->json == NULL)
        g_error ("SSE data is not strict JSON: %s", ev->data);
      g_assert_cmpint (ev->seq, >, 0);
      /* id: is the seq, event: is the type, so EventSource can resume and
       * dispatch without parsing. */
      seq = g_strdup_printf ("%" G_GINT64_FORMAT, ev->seq);
      g_assert_cmpstr (ev->id, ==, seq);
      g_assert_cmpstr (ev->event, ==,
                       jw_str (jw_json_node_object (ev->json), "type"));
      g_ptr_array_add (nodes, ev->json);
    }
  return nodes;
}

/* WebSocket */

static void
on_ws_message (SoupWebsocketConnection *conn, gint type, GBytes *message,
               gpointer user_data)
{
  JwWs *ws = user_data;
  g_autoptr (GError) error = NULL;
  JsonNode *node;

  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    {
      set_str (&ws->error, "binary frame from the pusher");
      return;
    }
  node = jw_json_parse_bytes (message, MAX_JSON_DEPTH, &error);
  if (node == NULL || jw_json_node_object (node) == NULL)
    {
      g_free (ws->error);
      ws->error =
          g_strdup_printf ("frame is not a JSON object: %.*s",
                           (int)MIN (g_bytes_get_size (message), 200),
                           (const char *)g_bytes_get_data (message, NULL));
      g_clear_pointer (&node, json_node_unref);
      return;
    }
  g_ptr_array_add (ws->frames, node);
}

static void
on_ws_closed (SoupWebsocketConnection *conn, gpointer user_data)
{
  ((JwWs *)user_data)->closed = TRUE;
}

static void
on_ws_connected (GObject *source, GAsyncResult *res, gpointer user_data)
{
  GTask *task = user_data;
  GError *error = NULL;
  SoupWebsocketConnection *conn;

  conn = soup_session_websocket_connect_finish (SOUP_SESSION (source), res,
                                                &error);
  if (conn != NULL)
    g_task_return_pointer (task, conn, g_object_unref);
  else
    g_task_return_error (task, error);
  g_object_unref (task);
}

static gboolean
keep_waking (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

void
jw_iterate (guint ms)
{
  gint64 deadline = g_get_monotonic_time () + ms * G_TIME_SPAN_MILLISECOND;
  guint wake = g_timeout_add (POLL_MS, keep_waking, NULL);

  while (g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (wake);
}

JwWs *
jw_ws_connect (JwTestEnv *env)
{
  g_autofree char *url =
      g_strdup_printf ("ws://127.0.0.1:%u/ws", env->pusher_port);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GError) error = NULL;
  gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;
  GTask *task = g_task_new (NULL, NULL, NULL, NULL);
  guint wake = g_timeout_add (POLL_MS, keep_waking, NULL);
  JwWs *ws = g_new0 (JwWs, 1);

  soup_session_websocket_connect_async (env->session, msg, NULL, NULL,
                                        G_PRIORITY_DEFAULT, NULL,
                                        on_ws_connected, g_object_ref (task));
  while (!g_task_get_completed (task) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (wake);
  g_assert_true (g_task_get_completed (task));
  ws->conn = g_task_propagate_pointer (task, &error);
  g_object_unref (task);
  g_assert_no_error (error);

  ws->frames = jw_node_array_new ();
  g_signal_connect (ws->conn, "message", G_CALLBACK (on_ws_message), ws);
  g_signal_connect (ws->conn, "closed", G_CALLBACK (on_ws_closed), ws);
  return ws;
}

void
jw_ws_send (JwWs *ws, const char *text)
{
  g_assert_cmpint (soup_websocket_connection_get_state (ws->conn), ==,
                   SOUP_WEBSOCKET_STATE_OPEN);
  soup_websocket_connection_send_text (ws->conn, text);
}

JsonObject *
jw_ws_next (JwWs *ws, guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);
  guint wake = g_timeout_add (POLL_MS, keep_waking, NULL);

  while (ws->next >= ws->frames->len && !ws->closed && ws->error == NULL
         && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (wake);
  if (ws->error != NULL)
    g_error ("WebSocket: %s", ws->error);
  if (ws->next >= ws->frames->len)
    return NULL;
  return jw_json_node_object (g_ptr_array_index (ws->frames, ws->next++));
}

void
jw_ws_free (JwWs *ws)
{
  if (ws == NULL)
    return;
  g_signal_handlers_disconnect_by_data (ws->conn, ws);
  if (soup_websocket_connection_get_state (ws->conn)
      == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_close (ws->conn, SOUP_WEBSOCKET_CLOSE_NORMAL,
                                     NULL);
  g_object_unref (ws->conn);
  g_ptr_array_unref (ws->frames);
  g_free (ws->error);
  g_free (ws);
}

/* Settings and extra workers */

static void
daemon_add_args (JwDaemon *d, const char *a, const char *b)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();

  g_strv_builder_addv (builder, (const char **)d->argv);
  g_strv_builder_add (builder, a);
  g_strv_builder_add (builder, b);
  g_strfreev (d->argv);
  d->argv = g_strv_builder_end (builder);
}

static const char *set_setting;

static void
daemon_add_set (JwDaemon *d)
{
  daemon_add_args (d, "--set", set_setting);
}

void
jw_test_env_set (JwTestEnv *env, const char *setting)
{
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();

  g_assert_nonnull (strchr (setting, '='));
  set_setting = setting;
  env_foreach_daemon (env, daemon_add_set);
  set_setting = NULL;
  if (env->sets != NULL)
    g_strv_builder_addv (b, (const char **)env->sets);
  g_strv_builder_add (b, setting);
  g_strfreev (env->sets);
  env->sets = g_strv_builder_end (b);
}

JwDaemon *
jw_test_env_new_worker (JwTestEnv *env)
{
  g_autofree char *name = g_strdup_printf ("w%u", env->workers->len + 1);
  g_autofree char *root_set =
      g_strdup_printf ("worker.checksum-root=%s", env->checksum_root);
  JwDaemon *d;

  d = daemon_new (env, name,
                  make_argv (daemon_path ("JW_WORKER"), "--runtime-dir",
                             env->dir, "--name", name, "--set", root_set,
                             NULL));
  for (guint i = 0; env->sets != NULL && env->sets[i] != NULL; i++)
    daemon_add_args (d, "--set", env->sets[i]);
  g_ptr_array_add (env->workers, d);
  return d;
}

JwDaemon *
jw_test_env_add_worker (JwTestEnv *env)
{
  JwDaemon *d = jw_test_env_new_worker (env);

  jw_daemon_start (env, d);
  return d;
}

void
jw_daemon_add_set (JwDaemon *d, const char *setting)
{
  g_assert_nonnull (strchr (setting, '='));
  daemon_add_args (d, "--set", setting);
}

guint16
jw_test_pick_port (void)
{
  return pick_port ();
}

/* TRUE when the log at path has a line with both needles. */
static gboolean
log_has_line (const char *path, const char *a, const char *b)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return FALSE;
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (strstr (lines[i], a) != NULL && strstr (lines[i], b) != NULL)
      return TRUE;
  return FALSE;
}

JwDaemon *
jw_test_env_find_worker (JwTestEnv *env, const char *job, gint64 attempt,
                         guint timeout_ms)
{
  g_autofree char *a = g_strdup_printf ("job started id=%s ", job);
  g_autofree char *b = g_strdup_printf ("attempt=%" G_GINT64_FORMAT, attempt);
  gint64 deadline = jw_deadline (timeout_ms);

  do
    {
      for (guint i = 0; i < env->workers->len; i++)
        {
          JwDaemon *d = g_ptr_array_index (env->workers, i);

          if (log_has_line (d->log_path, a, b))
            return d;
        }
      g_usleep (POLL_MS * G_TIME_SPAN_MILLISECOND);
    }
  while (g_get_monotonic_time () < deadline);
  return NULL;
}

JsonNode *
jw_broker_ping (JwTestEnv *env, guint timeout_ms)
{
  g_autofree char *endpoint = g_strdup_printf ("ipc://%s/queries", env->dir);
  JsonNode *answer = NULL;
  zsock_t *dealer;
  zmsg_t *reply;

  jw_zmq_init ();
  dealer = jw_zmq_socket (ZMQ_DEALER, 0);
  zsock_set_linger (dealer, 0);
  zsock_set_rcvtimeo (dealer, (int)timeout_ms);
  g_assert_cmpint (zsock_connect (dealer, "%s", endpoint), ==, 0);
  zstr_sendm (dealer, "ping");
  zstr_send (dealer, "{\"rid\":\"test-ping\"}");
  reply = zmsg_recv (dealer);
  if (reply != NULL)
    {
      g_autofree char *verb = zmsg_popstr (reply);
      g_autofree char *json = zmsg_popstr (reply);

      if (g_strcmp0 (verb, "reply") == 0 && json != NULL)
        answer = jw_json_parse (json, strlen (json), MAX_JSON_DEPTH, NULL);
      zmsg_destroy (&reply);
    }
  zsock_destroy (&dealer);
  return answer;
}

static const char *config_arg;

static void
daemon_add_config (JwDaemon *d)
{
  daemon_add_args (d, "--config", config_arg);
}

char *
jw_test_env_use_config (JwTestEnv *env, const char *text)
{
  g_autoptr (GError) error = NULL;
  char *path = g_build_filename (env->dir, "jobwire.conf", NULL);

  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);
  config_arg = path;
  env_foreach_daemon (env, daemon_add_config);
  config_arg = NULL;
  return path;
}

JwDaemon *
jw_test_env_add_process (JwTestEnv *env, const char *name, GStrv argv)
{
  JwDaemon *d = daemon_new (env, name, argv);

  g_ptr_array_add (env->workers, d);
  jw_daemon_start (env, d);
  return d;
}
