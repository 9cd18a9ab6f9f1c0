/* End-to-end tests of the `jobwire` command-line client, run as a user
 * would run it, against the real daemons. */

#include <string.h>

#include "jw-json.h"
#include "testenv.h"

typedef struct
{
  int status; /* exit status, -1 when it did not exit normally */
  char *out;
  char *err;
  GStrv lines; /* out, split into lines, without the last empty one */
} CliRun;

static void
cli_run_free (CliRun *r)
{
  g_free (r->out);
  g_free (r->err);
  g_strfreev (r->lines);
  g_free (r);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CliRun, cli_run_free)

/* When set, the client finds the pusher through the events link of the
 * submit answer; else it is told the pusher's URL in $JOBWIRE_PUSHER. */
static gboolean use_links;

static GSubprocess *
cli_spawn (JwTestEnv *env, const char *const *args)
{
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_auto (GStrv) argv = NULL;
  g_autoptr (GError) error = NULL;
  GSubprocess *proc;

  g_strv_builder_add (b, g_getenv ("JW_CLI"));
  g_strv_builder_addv (b, (const char **)args);
  argv = g_strv_builder_end (b);
  g_subprocess_launcher_setenv (launcher, "JOBWIRE_API", env->api_url, TRUE);
  if (use_links)
    g_subprocess_launcher_unsetenv (launcher, "JOBWIRE_PUSHER");
  else
    g_subprocess_launcher_setenv (launcher, "JOBWIRE_PUSHER", env->pusher_url,
                                  TRUE);
  proc = g_subprocess_launcher_spawnv (launcher, (const char *const *)argv,
                                       &error);
  g_assert_no_error (error);
  return proc;
}

static CliRun *
cli_finish (GSubprocess *proc)
{
  CliRun *r = g_new0 (CliRun, 1);
  g_autoptr (GError) error = NULL;
  gsize len;

  g_subprocess_communicate_utf8 (proc, NULL, NULL, &r->out, &r->err, &error);
  g_assert_no_error (error);
  r->status = g_subprocess_get_if_exited (proc)
                  ? g_subprocess_get_exit_status (proc)
                  : -1;
  r->lines = g_strsplit (r->out ? r->out : "", "\n", -1);
  len = g_strv_length (r->lines);
  if (len > 0 && r->lines[len - 1][0] == '\0')
    g_clear_pointer (&r->lines[len - 1], g_free);
  g_test_message ("jobwire exit %d\nstdout:\n%s\nstderr:\n%s", r->status,
                  r->out, r->err);
  return r;
}

/* Runs `jobwire ARGS…` to its end (the test's timeout bounds it). */
static CliRun *
cli (JwTestEnv *env, ...)
{
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_auto (GStrv) args = NULL;
  g_autoptr (GSubprocess) proc = NULL;
  const char *arg;
  va_list ap;

  va_start (ap, env);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_strv_builder_add (b, arg);
  va_end (ap);
  args = g_strv_builder_end (b);
  proc = cli_spawn (env, (const char *const *)args);
  return cli_finish (proc);
}

static JsonObject *
line_object (CliRun *r, guint i, JsonNode **node)
{
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (r->lines[i]);
  *node = jw_json_parse (r->lines[i], strlen (r->lines[i]), 64, &error);
  g_assert_no_error (error);
  g_assert_nonnull (jw_json_node_object (*node));
  return jw_json_node_object (*node);
}

static JwTestEnv *
start_env (void)
{
  JwTestEnv *env = jw_test_env_new (1);
  const char *d = g_getenv ("JW_TEST_DATA");
  g_autofree char *config = NULL;
  g_autofree char *path = NULL;

  g_assert_nonnull (d);
  config = g_strdup_printf ("[type.progress]\n"
                            "command = sh;%s/progress.sh\n"
                            "params = name:string, count:integer?\n"
                            "[type.fail]\n"
                            "command = sh;%s/fail.sh\n",
                            d, d);
  path = jw_test_env_use_config (env, config);
  jw_test_env_run (env);
  return env;
}

/* Events of --json output lines first..: contiguous seq from 1, ending in
 * a terminal event of type end_type. */
static void
assert_event_lines (CliRun *r, guint first, const char *id,
                    const char *end_type)
{
  g_autoptr (GPtrArray) events = jw_node_array_new ();
  guint n = g_strv_length (r->lines);

  for (guint i = first; i < n; i++)
    {
      JsonNode *node;

      line_object (r, i, &node);
      g_ptr_array_add (events, node);
    }
  g_assert_cmpuint (events->len, >=, 3);
  jw_assert_history (events, id, 1, TRUE);
  g_assert_cmpstr (
      jw_str (jw_json_node_object (g_ptr_array_index (events, n - first - 1)),
              "type"),
      ==, end_type);
}

static void
test_submit_follow (void)
{
  g_autoptr (JwTestEnv) env = start_env ();
  g_autoptr (CliRun) ok = NULL;
  g_autoptr (CliRun) fail = NULL;
  guint n;

  use_links = TRUE;
  ok = cli (env, "submit", "progress", "--param", "name=cli", "--param",
            "count=2", "--follow", NULL);
  g_assert_cmpint (ok->status, ==, 0);
  n = g_strv_length (ok->lines);
  g_assert_cmpuint (n, >=, 3);
  g_assert_true (strlen (ok->lines[0]) == 26);
  g_assert_true (g_str_has_prefix (ok->lines[n - 1], "succeeded "));
  /* count=2 went as the number 2, name as a string. */
  g_assert_nonnull (strstr (ok->lines[n - 1], "\"count\":2"));
  g_assert_nonnull (strstr (ok->lines[n - 1], "\"name\":\"cli\""));

  fail = cli (env, "submit", "fail", "--follow", NULL);
  use_links = FALSE;
  g_assert_cmpint (fail->status, ==, 1);
  g_assert_nonnull (strstr (fail->out, "exit_status"));
}

static void
test_json_output (void)
{
  g_autoptr (JwTestEnv) env = start_env ();
  g_autoptr (CliRun) follow = NULL;
  g_autoptr (CliRun) status = NULL;
  g_autoptr (CliRun) list = NULL;
  g_autoptr (CliRun) types = NULL;
  g_autoptr (CliRun) refused = NULL;
  g_autoptr (JsonNode) n1 = NULL;
  g_autoptr (JsonNode) n2 = NULL;
  g_autoptr (JsonNode) n3 = NULL;
  g_autoptr (JsonNode) n4 = NULL;
  g_autoptr (JsonNode) n5 = NULL;
  JsonObject *snap, *obj, *err;
  g_autofree char *id = NULL;
  JsonArray *array;
  gboolean found = FALSE;

  /* submit --follow --json: the snapshot, then one event per line. */
  follow = cli (env, "--json", "submit", "progress", "--params-json",
                "{\"name\":\"j\",\"count\":7}", "--follow", NULL);
  g_assert_cmpint (follow->status, ==, 0);
  snap = line_object (follow, 0, &n1);
  id = g_strdup (jw_str (snap, "id"));
  g_assert_cmpstr (jw_str (snap, "type"), ==, "progress");
  assert_event_lines (follow, 1, id, "succeeded");

  status = cli (env, "--json", "status", id, NULL);
  g_assert_cmpint (status->status, ==, 0);
  g_assert_cmpuint (g_strv_length (status->lines), ==, 1);
  obj = line_object (status, 0, &n2);
  g_assert_cmpstr (jw_str (obj, "state"), ==, "succeeded");

  list =
      cli (env, "--json", "list", "--state", "succeeded", "--limit", "5", NULL);
  g_assert_cmpint (list->status, ==, 0);
  obj = line_object (list, 0, &n3);
  array = jw_json_get_array (obj, "jobs");
  g_assert_nonnull (array);
  g_assert_cmpuint (json_array_get_length (array), ==, 1);

  types = cli (env, "--json", "types", NULL);
  g_assert_cmpint (types->status, ==, 0);
  obj = line_object (types, 0, &n4);
  array = jw_json_get_array (obj, "types");
  g_assert_nonnull (array);
  for (guint i = 0; i < json_array_get_length (array); i++)
    found = found
            || g_str_equal (
                jw_str (jw_json_node_object (json_array_get_element (array, i)),
                        "name"),
                "progress");
  g_assert_true (found);

  /* An api error: its JSON on stdout, a line on stderr, status 4. */
  refused = cli (env, "--json", "submit", "progress", NULL);
  g_assert_cmpint (refused->status, ==, 4);
  obj = line_object (refused, 0, &n5);
  err = jw_json_get_object (obj, "error");
  g_assert_nonnull (err);
  g_assert_cmpstr (jw_str (err, "code"), ==, "invalid_params");
  g_assert_nonnull (strstr (refused->err, "params.name"));
}

static void
test_usage_and_cancel (void)
{
  g_autoptr (JwTestEnv) env = start_env ();
  g_autoptr (CliRun) usage = cli (env, "submit", NULL);
  g_autoptr (CliRun) unknown = cli (env, "submit", "nope", NULL);
  g_autoptr (CliRun) submitted = NULL;
  g_autoptr (CliRun) cancel = NULL;
  g_autoptr (CliRun) watched = NULL;
  g_autoptr (GSubprocess) watch = NULL;
  g_autoptr (JsonNode) snap = NULL;
  const char *id;
  const char *watch_args[3] = { "watch", NULL, NULL };

  g_assert_cmpint (usage->status, ==, 3);
  g_assert_cmpint (unknown->status, ==, 4);
  g_assert_nonnull (strstr (unknown->err, "unknown_type"));

  submitted = cli (env, "submit", "sleep", "--param", "seconds=30", "--param",
                   "steps=30", NULL);
  g_assert_cmpint (submitted->status, ==, 0);
  id = submitted->lines[0];
  snap = jw_wait_job (env, id, "running", 15000);
  g_assert_nonnull (snap);

  watch_args[1] = id;
  watch = cli_spawn (env, watch_args);
  cancel = cli (env, "cancel", id, NULL);
  g_assert_cmpint (cancel->status, ==, 0);
  watched = cli_finish (watch);
  /* Plain lines (stdout is a pipe), and 2 for a cancelled job. */
  g_assert_cmpint (watched->status, ==, 2);
  g_assert_nonnull (strstr (watched->out, "cancelled"));
}

/* The pusher goes away while a client watches: the client resumes with
 * Last-Event-ID from another pusher and shows each event once. */
static void
test_watch_resumes (void)
{
  g_autoptr (JwTestEnv) env = start_env ();
  g_autofree char *id = jw_submit (
      env, "{\"type\":\"sleep\",\"params\":{\"seconds\":3,\"steps\":30}}");
  const char *args[] = { "--json", "watch", id, NULL };
  g_autoptr (GSubprocess) watch = cli_spawn (env, args);
  g_autoptr (CliRun) watched = NULL;
  gint64 deadline = jw_deadline (15000);

  /* Some events have gone out. */
  while (TRUE)
    {
      g_autoptr (JsonNode) snap = jw_get_job (env, id);
      gint64 seq = jw_int (jw_json_node_object (snap), "seq");

      if (seq >= 5)
        break;
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (20 * G_TIME_SPAN_MILLISECOND);
    }
  jw_daemon_kill (env->pusher);
  jw_daemon_start (env, env->pusher);

  watched = cli_finish (watch);
  g_assert_cmpint (watched->status, ==, 0);
  assert_event_lines (watched, 0, id, "succeeded");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/submit-follow", test_submit_follow);
  g_test_add_func ("/cli/json-output", test_json_output);
  g_test_add_func ("/cli/usage-and-cancel", test_usage_and_cancel);
  g_test_add_func ("/cli/watch-resumes", test_watch_resumes);
  return g_test_run ();
}
