/* Security end to end: job-scoped tokens on every way of reading or
 * cancelling a job, API keys for submitting, and the daemons' refusal to
 * start with an unsafe configuration. */

#include <glib/gstdio.h>
#include <string.h>

#include "jw-json.h"
#include "testenv.h"

#define SLEEP_JOB(seconds, steps)                                              \
  "{\"type\":\"sleep\",\"params\":{\"seconds\":" #seconds ",\"steps\":" #steps \
  "}}"

#define KEY_ALL "k-all-0123456789abcdef"
#define KEY_CHECKSUM "k-checksum-0123456789ab"

static char *
write_private (JwTestEnv *env, const char *name, const char *text, int mode)
{
  char *path = g_build_filename (env->dir, name, NULL);

  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  g_assert_cmpint (g_chmod (path, mode), ==, 0);
  return path;
}

/* Daemons with a token secret and an API key file in their runtime
 * directory; ttl_s 0 keeps the default token lifetime. */
static JwTestEnv *
secure_env_start (guint ttl_s)
{
  JwTestEnv *env = jw_test_env_new (1);
  g_autofree char *secret = write_private (
      env, "token.secret", "this is a test secret of more than 32 bytes", 0600);
  g_autofree char *keys = write_private (env, "api.keys",
                                         "# keys of the security test\n" KEY_ALL
                                         "\n\n" KEY_CHECKSUM " checksum\n",
                                         0600);
  g_autofree char *set_secret =
      g_strconcat ("security.token-secret-file=", secret, NULL);
  g_autofree char *set_keys =
      g_strconcat ("security.api-keys-file=", keys, NULL);

  jw_test_env_set (env, set_secret);
  jw_test_env_set (env, set_keys);
  if (ttl_s > 0)
    {
      g_autofree char *set_ttl =
          g_strdup_printf ("security.token-ttl-s=%u", ttl_s);

      jw_test_env_set (env, set_ttl);
    }
  jw_test_env_run (env);
  return env;
}

/* A request to the api with "Authorization: Bearer bearer" (may be NULL). */
static JwReply *
api_call (JwTestEnv *env, const char *method, const char *path,
          const char *bearer, const char *json)
{
  g_autofree char *url = g_strconcat (env->api_url, path, NULL);
  g_autofree char *auth = bearer ? g_strconcat ("Bearer ", bearer, NULL) : NULL;
  const char *headers[] = { "Authorization", auth, NULL };
  g_autoptr (GBytes) body = json ? g_bytes_new (json, strlen (json)) : NULL;

  return jw_http (env, method, url, json ? "application/json" : NULL, body,
                  bearer ? headers : NULL);
}

/* Submits with KEY_ALL; returns the job id and sets *token. */
static char *
submit (JwTestEnv *env, const char *json, char **token)
{
  g_autoptr (JwReply) r = api_call (env, "POST", "/jobs", KEY_ALL, json);
  JsonObject *obj = jw_reply_object (r);
  JsonObject *links;
  const char *id;
  g_autofree char *events = NULL;

  g_assert_cmpuint (r->status, ==, 202);
  g_assert_nonnull (obj);
  id = jw_str (obj, "id");
  *token = g_strdup (jw_str (obj, "token"));
  links = jw_json_get_object (obj, "links");
  g_assert_nonnull (links);
  events = g_strdup_printf ("%s/jobs/%s/events?token=%s", env->pusher_url, id,
                            *token);
  g_assert_cmpstr (jw_str (links, "events"), ==, events);
  g_assert_nonnull (strstr (jw_str (links, "poll"), *token));
  return g_strdup (id);
}

static JwReply *pusher_call (JwTestEnv *env, const char *fmt, ...)
    G_GNUC_PRINTF (2, 3);

static JwReply *
pusher_call (JwTestEnv *env, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *path = NULL;

  va_start (ap, fmt);
  path = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return jw_pusher_get (env, path);
}

/* Waits for the terminal state of a job, asking with its token. */
static char *
wait_terminal (JwTestEnv *env, const char *id, const char *token)
{
  g_autofree char *path = g_strdup_printf ("/jobs/%s", id);
  gint64 deadline = jw_deadline (20000);

  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr (JwReply) r = api_call (env, "GET", path, token, NULL);
      const char *state;

      g_assert_cmpuint (r->status, ==, 200);
      state = jw_str (jw_reply_object (r), "state");
      if (g_str_equal (state, "succeeded") || g_str_equal (state, "failed")
          || g_str_equal (state, "cancelled"))
        return g_strdup (state);
      jw_iterate (50);
    }
  g_error ("job %s did not finish in time", id);
  return NULL;
}

static void
test_token_scope (void)
{
  g_autoptr (JwTestEnv) env = secure_env_start (0);
  g_autofree char *ta = NULL, *tb = NULL;
  g_autofree char *a = submit (env, SLEEP_JOB (0.3, 3), &ta);
  g_autofree char *b = submit (env, SLEEP_JOB (1.5, 6), &tb);
  g_autofree char *path_a = g_strdup_printf ("/jobs/%s", a);
  g_autofree char *path_b = g_strdup_printf ("/jobs/%s", b);
  g_autofree char *q_a = g_strdup_printf ("/jobs/%s?token=%s", a, ta);
  g_autofree char *q_b_with_a = g_strdup_printf ("/jobs/%s?token=%s", b, ta);
  g_autofree char *query_a = g_strdup_printf ("token=%s", ta);
  g_autofree char *state = NULL;
  g_autoptr (JwWs) ws = NULL;
  g_autoptr (JwSse) sse = NULL;
  g_autofree char *sub = NULL;
  JsonObject *f;
  gboolean a_ended = FALSE;
  guint b_frames = 0;

  /* The api: GET and DELETE need the job's own token. */
  {
    g_autoptr (JwReply) ok_header = api_call (env, "GET", path_a, ta, NULL);
    g_autoptr (JwReply) ok_query = jw_api_get (env, q_a);
    g_autoptr (JwReply) none = jw_api_get (env, path_b);
    g_autoptr (JwReply) other = api_call (env, "GET", path_b, ta, NULL);
    g_autoptr (JwReply) other_q = jw_api_get (env, q_b_with_a);
    g_autoptr (JwReply) garbage = api_call (env, "GET", path_b, "x.y", NULL);
    g_autoptr (JwReply) cancel_other =
        api_call (env, "DELETE", path_b, ta, NULL);
    g_autoptr (JwReply) cancel_none =
        api_call (env, "DELETE", path_b, NULL, NULL);

    g_assert_cmpuint (ok_header->status, ==, 200);
    g_assert_cmpstr (jw_str (jw_reply_object (ok_header), "id"), ==, a);
    g_assert_cmpuint (ok_query->status, ==, 200);
    jw_assert_error (none, 401, "token_required");
    jw_assert_error (other, 403, "token_invalid");
    jw_assert_error (other_q, 403, "token_invalid");
    jw_assert_error (garbage, 403, "token_invalid");
    jw_assert_error (cancel_other, 403, "token_invalid");
    jw_assert_error (cancel_none, 401, "token_required");
  }

  /* The pusher: SSE, long-poll and multi-job requests for B with A's
   * token are refused before anything is streamed. */
  {
    g_autoptr (JwReply) sse_other =
        pusher_call (env, "/jobs/%s/events?token=%s", b, ta);
    g_autoptr (JwReply) sse_none = pusher_call (env, "/jobs/%s/events", b);
    g_autoptr (JwReply) poll_other =
        pusher_call (env, "/jobs/%s/poll?timeout=0&token=%s", b, ta);
    g_autoptr (JwReply) multi_other =
        pusher_call (env, "/events?jobs=%s,%s&tokens=%s,%s", a, b, ta, ta);
    g_autoptr (JwReply) multi_short =
        pusher_call (env, "/poll?jobs=%s,%s&tokens=%s&timeout=0", a, b, ta);
    g_autoptr (JwReply) mpoll_other =
        pusher_call (env, "/poll?jobs=%s,%s&timeout=0", a, b);
    g_autoptr (JwReply) mpoll_ok = pusher_call (
        env, "/poll?jobs=%s,%s&tokens=%s,%s&timeout=0", a, b, ta, tb);

    jw_assert_error (sse_other, 403, "token_invalid");
    jw_assert_error (sse_none, 401, "token_required");
    jw_assert_error (poll_other, 403, "token_invalid");
    jw_assert_error (multi_other, 403, "token_invalid");
    jw_assert_error (multi_short, 400, "invalid_query");
    jw_assert_error (mpoll_other, 401, "token_required");
    g_assert_cmpuint (mpoll_ok->status, ==, 200);
  }

  /* WebSocket: B with A's token or none is refused; A with its own is
   * served, and no frame of B ever arrives on this connection. */
  ws = jw_ws_connect (env);
  sub = g_strdup_printf (
      "{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":0,\"token\":\"%s\"}", b,
      ta);
  jw_ws_send (ws, sub);
  f = jw_ws_next (ws, 10000);
  g_assert_nonnull (f);
  g_assert_cmpstr (jw_str (f, "op"), ==, "error");
  g_assert_cmpstr (jw_str (f, "code"), ==, "token_invalid");
  g_free (sub);
  sub = g_strdup_printf ("{\"op\":\"subscribe\",\"job\":\"%s\"}", b);
  jw_ws_send (ws, sub);
  f = jw_ws_next (ws, 10000);
  g_assert_nonnull (f);
  g_assert_cmpstr (jw_str (f, "op"), ==, "error");
  g_assert_cmpstr (jw_str (f, "code"), ==, "token_required");
  g_free (sub);
  sub = g_strdup_printf (
      "{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":0,\"token\":\"%s\"}", a,
      ta);
  jw_ws_send (ws, sub);
  while (!a_ended && (f = jw_ws_next (ws, 10000)) != NULL)
    {
      const char *op = jw_json_get_string (f, "op");
      const char *type = jw_json_get_string (f, "type");

      if (g_strcmp0 (jw_json_get_string (f, "job"), b) == 0)
        b_frames++;
      g_assert_cmpstr (op, !=, "error");
      if (op == NULL && type != NULL
          && (g_str_equal (type, "succeeded") || g_str_equal (type, "failed")
              || g_str_equal (type, "cancelled")))
        a_ended = TRUE;
    }
  g_assert_true (a_ended);

  /* A with its own token on SSE: the whole life of the job. */
  sse = jw_sse_read (env, a, NULL, query_a, 0, 10000);
  g_assert_cmpuint (sse->status, ==, 200);
  g_assert_true (sse->ended);
  jw_assert_history (jw_sse_nodes (sse), a, 1, TRUE);

  /* B, cancelled with its own token; the WebSocket still hears nothing
   * of it (its frames would have arrived by the time B is over). */
  {
    g_autoptr (JwReply) cancel = api_call (env, "DELETE", path_b, tb, NULL);

    g_assert_cmpuint (cancel->status, ==, 202);
  }
  state = wait_terminal (env, b, tb);
  g_assert_cmpstr (state, ==, "cancelled");
  while ((f = jw_ws_next (ws, 500)) != NULL)
    if (g_strcmp0 (jw_json_get_string (f, "job"), b) == 0)
      b_frames++;
  g_assert_cmpuint (b_frames, ==, 0);
}

static void
test_token_expired (void)
{
  g_autoptr (JwTestEnv) env = secure_env_start (1);
  g_autofree char *t = NULL;
  g_autofree char *id = submit (env, SLEEP_JOB (0.1, 1), &t);
  g_autofree char *path = g_strdup_printf ("/jobs/%s", id);
  gint64 deadline = jw_deadline (10000);
  guint status = 0;
  g_autoptr (JwWs) ws = NULL;
  g_autofree char *sub = NULL;
  JsonObject *f;

  /* Expiry has a one-second resolution: wait until the api says so. */
  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr (JwReply) r = api_call (env, "GET", path, t, NULL);

      status = r->status;
      if (status == 401)
        {
          jw_assert_error (r, 401, "token_expired");
          break;
        }
      g_assert_cmpuint (status, ==, 200);
      jw_iterate (100);
    }
  g_assert_cmpuint (status, ==, 401);

  {
    g_autoptr (JwReply) sse =
        pusher_call (env, "/jobs/%s/events?token=%s", id, t);
    g_autoptr (JwReply) poll =
        pusher_call (env, "/jobs/%s/poll?timeout=0&token=%s", id, t);
    g_autoptr (JwReply) cancel = api_call (env, "DELETE", path, t, NULL);

    jw_assert_error (sse, 401, "token_expired");
    jw_assert_error (poll, 401, "token_expired");
    jw_assert_error (cancel, 401, "token_expired");
  }
  ws = jw_ws_connect (env);
  sub = g_strdup_printf (
      "{\"op\":\"subscribe\",\"job\":\"%s\",\"after\":0,\"token\":\"%s\"}", id,
      t);
  jw_ws_send (ws, sub);
  f = jw_ws_next (ws, 10000);
  g_assert_nonnull (f);
  g_assert_cmpstr (jw_str (f, "op"), ==, "error");
  g_assert_cmpstr (jw_str (f, "code"), ==, "token_expired");
}

static void
test_api_keys (void)
{
  g_autoptr (JwTestEnv) env = secure_env_start (0);
  g_autoptr (JwReply) none =
      api_call (env, "POST", "/jobs", NULL, SLEEP_JOB (0.1, 1));
  g_autoptr (JwReply) wrong = api_call (
      env, "POST", "/jobs", "k-all-0123456789abcdeX", SLEEP_JOB (0.1, 1));
  g_autoptr (JwReply) limited =
      api_call (env, "POST", "/jobs", KEY_CHECKSUM, SLEEP_JOB (0.1, 1));
  g_autoptr (JwReply) limited_ok =
      api_call (env, "POST", "/jobs", KEY_CHECKSUM,
                "{\"type\":\"checksum\",\"params\":{\"path\":\"missing\"}}");
  g_autoptr (JwReply) all_ok =
      api_call (env, "POST", "/jobs", KEY_ALL, SLEEP_JOB (0.1, 1));
  g_autoptr (JwReply) list_none = api_call (env, "GET", "/jobs", NULL, NULL);
  g_autoptr (JwReply) list_ok = api_call (env, "GET", "/jobs", KEY_ALL, NULL);

  jw_assert_error (none, 401, "api_key_required");
  jw_assert_error (wrong, 403, "api_key_invalid");
  jw_assert_error (limited, 403, "type_not_allowed");
  g_assert_cmpuint (limited_ok->status, ==, 202);
  g_assert_cmpuint (all_ok->status, ==, 202);
  jw_assert_error (list_none, 401, "api_key_required");
  g_assert_cmpuint (list_ok->status, ==, 200);
  g_assert_cmpuint (json_array_get_length (
                        jw_json_get_array (jw_reply_object (list_ok), "jobs")),
                    ==, 2);
}

/* Runs a daemon alone with args and returns its exit status and output. */
static int
run_daemon (const char *exe_var, const char *const *args, char **output)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL;

  g_ptr_array_add (argv, (char *)g_getenv (exe_var));
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *)args[i]);
  g_ptr_array_add (argv, NULL);
  proc = g_subprocess_newv (
      (const char *const *)argv->pdata,
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE, &error);
  g_assert_no_error (error);
  /* A refused start ends at once; communicate is bounded by that. */
  g_assert_true (
      g_subprocess_communicate_utf8 (proc, NULL, NULL, &out, NULL, &error));
  g_assert_no_error (error);
  *output = g_steal_pointer (&out);
  return g_subprocess_get_if_exited (proc) ? g_subprocess_get_exit_status (proc)
                                           : -1;
}

static void
test_refuse_unsafe_start (void)
{
  g_autofree char *dir = g_dir_make_tmp ("jw-security-XXXXXX", NULL);
  g_autofree char *open_secret = g_build_filename (dir, "open.secret", NULL);
  g_autofree char *short_secret = g_build_filename (dir, "short.secret", NULL);
  g_autofree char *set_open =
      g_strconcat ("security.token-secret-file=", open_secret, NULL);
  g_autofree char *set_short =
      g_strconcat ("security.token-secret-file=", short_secret, NULL);
  g_autofree char *out = NULL;

  g_assert_true (g_file_set_contents (
      open_secret, "this is a test secret of more than 32 bytes", -1, NULL));
  g_assert_cmpint (g_chmod (open_secret, 0644), ==, 0);
  g_assert_true (g_file_set_contents (short_secret, "short", -1, NULL));
  g_assert_cmpint (g_chmod (short_secret, 0600), ==, 0);

  {
    const char *args[] = { "--runtime-dir", dir, "--listen", "0.0.0.0:0",
                           NULL };

    g_assert_cmpint (run_daemon ("JW_API", args, &out), ==, 1);
    g_assert_nonnull (strstr (out, "without API keys"));
    g_clear_pointer (&out, g_free);
  }
  {
    const char *args[] = { "--runtime-dir", dir,      "--listen", "127.0.0.1:0",
                           "--set",         set_open, NULL };

    g_assert_cmpint (run_daemon ("JW_API", args, &out), ==, 1);
    g_assert_nonnull (strstr (out, "open to group or others"));
    g_clear_pointer (&out, g_free);
    g_assert_cmpint (run_daemon ("JW_PUSHER", args, &out), !=, 0);
    g_assert_nonnull (strstr (out, "open to group or others"));
    g_clear_pointer (&out, g_free);
  }
  {
    const char *args[] = {
      "--runtime-dir", dir, "--listen", "127.0.0.1:0", "--set", set_short, NULL
    };

    g_assert_cmpint (run_daemon ("JW_PUSHER", args, &out), !=, 0);
    g_assert_nonnull (strstr (out, "at least 32"));
    g_clear_pointer (&out, g_free);
  }
  g_unlink (open_secret);
  g_unlink (short_secret);
  /* The daemons may have left their ipc sockets there. */
  {
    g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
    const char *name;

    while (d != NULL && (name = g_dir_read_name (d)) != NULL)
      {
        g_autofree char *p = g_build_filename (dir, name, NULL);

        g_unlink (p);
      }
  }
  g_rmdir (dir);
}

/* Runs the jobwire client against env with one extra environment
 * variable (name may be NULL); returns its exit status, sets *out. */
static int
run_cli (JwTestEnv *env, const char *name, const char *value,
         const char *const *args, char **out)
{
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;
  g_auto (GStrv) argv = NULL;

  g_strv_builder_add (b, g_getenv ("JW_CLI"));
  g_strv_builder_addv (b, (const char **)args);
  argv = g_strv_builder_end (b);
  g_subprocess_launcher_setenv (launcher, "JOBWIRE_API", env->api_url, TRUE);
  g_subprocess_launcher_setenv (launcher, "JOBWIRE_PUSHER", env->pusher_url,
                                TRUE);
  g_subprocess_launcher_unsetenv (launcher, "JOBWIRE_TOKEN");
  g_subprocess_launcher_unsetenv (launcher, "JOBWIRE_API_KEY");
  if (name != NULL)
    g_subprocess_launcher_setenv (launcher, name, value, TRUE);
  proc = g_subprocess_launcher_spawnv (launcher, (const char *const *)argv,
                                       &error);
  g_assert_no_error (error);
  g_assert_true (
      g_subprocess_communicate_utf8 (proc, NULL, NULL, out, &err, &error));
  g_assert_no_error (error);
  g_test_message ("jobwire stdout:\n%s\nstderr:\n%s", *out, err);
  return g_subprocess_get_if_exited (proc) ? g_subprocess_get_exit_status (proc)
                                           : -1;
}

static void
test_cli (void)
{
  g_autoptr (JwTestEnv) env = secure_env_start (0);
  g_autofree char *out = NULL;
  g_autoptr (JsonNode) answer = NULL;
  g_autofree char *id = NULL, *token = NULL;
  const char *submit_follow[] = { "submit",      "sleep",     "-p",
                                  "seconds=0.2", "-p",        "steps=2",
                                  "--follow",    "--api-key", KEY_ALL,
                                  NULL };
  const char *submit_plain[] = { "--json", "submit",      "sleep",
                                 "-p",     "seconds=0.2", NULL };

  /* No key: refused (4); --api-key, then --follow with the answer's token. */
  g_assert_cmpint (run_cli (env, NULL, NULL, submit_plain, &out), ==, 4);
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (run_cli (env, NULL, NULL, submit_follow, &out), ==, 0);
  g_clear_pointer (&out, g_free);

  /* JOBWIRE_API_KEY; then watch and status need the job's token. */
  g_assert_cmpint (
      run_cli (env, "JOBWIRE_API_KEY", KEY_ALL, submit_plain, &out), ==, 0);
  answer = json_from_string (out, NULL);
  g_assert_nonnull (answer);
  id = g_strdup (jw_str (json_node_get_object (answer), "id"));
  token = g_strdup (jw_str (json_node_get_object (answer), "token"));
  g_clear_pointer (&out, g_free);
  {
    const char *watch[] = { "watch", id, NULL };
    const char *watch_opt[] = { "watch", id, "--token", token, NULL };
    const char *status[] = { "status", id, NULL };

    g_assert_cmpint (run_cli (env, NULL, NULL, watch, &out), ==, 4);
    g_clear_pointer (&out, g_free);
    g_assert_cmpint (run_cli (env, NULL, NULL, watch_opt, &out), ==, 0);
    g_clear_pointer (&out, g_free);
    g_assert_cmpint (run_cli (env, "JOBWIRE_TOKEN", token, watch, &out), ==, 0);
    g_clear_pointer (&out, g_free);
    g_assert_cmpint (run_cli (env, "JOBWIRE_TOKEN", token, status, &out), ==,
                     0);
    g_clear_pointer (&out, g_free);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/security/token-scope", test_token_scope);
  g_test_add_func ("/security/token-expired", test_token_expired);
  g_test_add_func ("/security/api-keys", test_api_keys);
  g_test_add_func ("/security/refuse-unsafe-start", test_refuse_unsafe_start);
  g_test_add_func ("/security/cli", test_cli);
  return g_test_run ();
}
