/* End-to-end job types from configuration: commands run by the worker in
 * their own process group, the types the api accepts and their params
 * (also across a broker restart), and a worker written in Python beside
 * the C workers. */

#include <errno.h>
#include <signal.h>
#include <string.h>

#include <glib/gstdio.h>

#include "jw-json.h"
#include "testenv.h"

static const char *
data_dir (void)
{
  const char *dir = g_getenv ("JW_TEST_DATA");

  if (dir == NULL)
    g_error ("$JW_TEST_DATA is not set: run the tests with meson test");
  return dir;
}

/* The key file of these tests: the scripts of tests/data as job types.
 * Scripts that record pids write them to DIR/pids. */
static char *
types_config (JwTestEnv *env)
{
  g_autofree char *pids = g_build_filename (env->dir, "pids", NULL);
  const char *d = data_dir ();

  g_assert_cmpint (g_mkdir (pids, 0755), ==, 0);
  return g_strdup_printf ("[type.progress]\n"
                          "command = sh;%s/progress.sh\n"
                          "params = name:string, count:integer?\n"
                          "description = four steps, then an echo\n"
                          "\n"
                          "[type.grandchild]\n"
                          "command = sh;%s/grandchild.sh;%s\n"
                          "\n"
                          "[type.hang]\n"
                          "command = sh;%s/hang.sh;%s\n"
                          "timeout-s = 1\n"
                          "\n"
                          "[type.fail]\n"
                          "command = sh;%s/fail.sh\n"
                          "params =\n"
                          "\n"
                          "[worker]\n"
                          "kill-grace-s = 1\n",
                          d, d, pids, d, pids, d);
}

/* Starts the pipeline with the types config and n C workers. */
static JwTestEnv *
start_env (guint n_workers)
{
  JwTestEnv *env = jw_test_env_new (n_workers);
  g_autofree char *config = types_config (env);
  g_autofree char *path = jw_test_env_use_config (env, config);

  jw_test_env_run (env);
  return env;
}

/* Runs a job to its end over SSE; returns its events. */
static GPtrArray *
run_job (JwTestEnv *env, const char *json, char **id_out)
{
  g_autofree char *id = jw_submit (env, json);
  g_autoptr (JwSse) sse = jw_sse_read (env, id, NULL, NULL, 0, 30000);
  g_autoptr (GPtrArray) nodes = NULL;
  GPtrArray *events = jw_node_array_new ();

  g_assert_cmpuint (sse->status, ==, 200);
  g_assert_true (sse->ended);
  nodes = jw_sse_nodes (sse);
  jw_assert_history (nodes, id, 1, TRUE);
  /* The nodes belong to sse: keep references. */
  for (guint i = 0; i < nodes->len; i++)
    g_ptr_array_add (events, json_node_ref (g_ptr_array_index (nodes, i)));
  if (id_out != NULL)
    *id_out = g_steal_pointer (&id);
  return events;
}

static JsonObject *
last_event (GPtrArray *events)
{
  return jw_json_node_object (g_ptr_array_index (events, events->len - 1));
}

/* Running, not a zombie waiting to be reaped. */
static gboolean
process_running (int pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", pid);
  g_autofree char *stat = NULL;
  const char *paren;

  if (kill (pid, 0) < 0 && errno == ESRCH)
    return FALSE;
  if (!g_file_get_contents (path, &stat, NULL, NULL))
    return FALSE;
  paren = strrchr (stat, ')');
  return paren == NULL || paren[1] != ' ' || paren[2] != 'Z';
}

/* The pid a script recorded for job, waiting up to timeout_ms. */
static int
wait_pid_file (JwTestEnv *env, const char *job, guint timeout_ms)
{
  g_autofree char *name = g_strconcat (job, ".pid", NULL);
  g_autofree char *path = g_build_filename (env->dir, "pids", name, NULL);
  gint64 deadline = jw_deadline (timeout_ms);

  while (g_get_monotonic_time () < deadline)
    {
      g_autofree char *text = NULL;

      if (g_file_get_contents (path, &text, NULL, NULL) && atoi (text) > 0)
        return atoi (text);
      g_usleep (20 * G_TIME_SPAN_MILLISECOND);
    }
  g_error ("no pid file %s within %u ms", path, timeout_ms);
}

static gboolean
wait_gone (int pid, guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);

  while (process_running (pid))
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      g_usleep (20 * G_TIME_SPAN_MILLISECOND);
    }
  return TRUE;
}

static void
test_command_progress (void)
{
  g_autoptr (JwTestEnv) env = start_env (1);
  g_autofree char *id = NULL;
  g_autoptr (GPtrArray) events = run_job (
      env, "{\"type\":\"progress\",\"params\":{\"name\":\"snow\",\"count\":3}}",
      &id);
  g_autoptr (JsonNode) snap = NULL;
  JsonObject *result, *params;
  double done = 0, last_done = 0;
  guint n_progress = 0;

  /* Progress in the order printed, with its messages. */
  for (guint i = 0; i < events->len; i++)
    {
      JsonObject *ev = jw_json_node_object (g_ptr_array_index (events, i));
      JsonObject *p;

      if (!g_str_equal (jw_str (ev, "type"), "progress"))
        continue;
      p = jw_json_get_object (ev, "progress");
      g_assert_nonnull (p);
      g_assert_true (jw_json_get_double (p, "done", &done));
      g_assert_cmpfloat (done, >=, last_done);
      if (done < 4)
        {
          g_autofree char *message = g_strdup_printf ("step %.0f of 4", done);

          g_assert_cmpint (jw_int (p, "total"), ==, 4);
          g_assert_cmpstr (jw_str (p, "message"), ==, message);
        }
      last_done = done;
      n_progress++;
    }
  g_assert_cmpuint (n_progress, >=, 2);
  g_assert_cmpfloat (last_done, ==, 4);

  g_assert_cmpstr (jw_str (last_event (events), "type"), ==, "succeeded");
  result = jw_json_get_object (last_event (events), "result");
  g_assert_nonnull (result);
  /* params arrived on standard input, the rest in the environment. */
  params = jw_json_get_object (result, "params");
  g_assert_nonnull (params);
  g_assert_cmpstr (jw_str (params, "name"), ==, "snow");
  g_assert_cmpint (jw_int (params, "count"), ==, 3);
  g_assert_cmpstr (jw_str (result, "job"), ==, id);
  g_assert_cmpint (jw_int (result, "attempt"), ==, 1);
  g_assert_cmpstr (jw_str (result, "type"), ==, "progress");

  snap = jw_get_job (env, id);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
}

static void
test_command_cancel_kills_group (void)
{
  g_autoptr (JwTestEnv) env = start_env (1);
  g_autofree char *id = jw_submit (env, "{\"type\":\"grandchild\"}");
  g_autofree char *path = g_strconcat ("/jobs/", id, NULL);
  g_autofree char *url = g_strconcat (env->api_url, path, NULL);
  g_autoptr (JwReply) r = NULL;
  g_autoptr (JsonNode) snap = NULL;
  JsonObject *err;
  int pid;

  /* The script started `sleep 1000 &`: a grandchild of the worker. */
  pid = wait_pid_file (env, id, 15000);
  g_assert_true (process_running (pid));

  r = jw_http (env, "DELETE", url, NULL, NULL, NULL);
  g_assert_cmpuint (r->status, ==, 202);
  snap = jw_wait_job (env, id, NULL, 15000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "cancelled");
  err = jw_json_get_object (jw_json_node_object (snap), "error");
  g_assert_nonnull (err);

  /* SIGTERM went to the whole group (SIGKILL after 1 s at the latest). */
  g_assert_true (wait_gone (pid, 5000));
}

static void
test_command_timeout (void)
{
  g_autoptr (JwTestEnv) env = start_env (1);
  g_autofree char *id = NULL;
  g_autoptr (GPtrArray) events = run_job (env, "{\"type\":\"hang\"}", &id);
  g_autoptr (GPtrArray) next = NULL;
  JsonObject *err;
  int pid;

  /* It ignores SIGTERM: only the SIGKILL after the grace time ends it. */
  g_assert_cmpstr (jw_str (last_event (events), "type"), ==, "failed");
  err = jw_json_get_object (last_event (events), "error");
  g_assert_nonnull (err);
  g_assert_cmpstr (jw_str (err, "code"), ==, "timeout");
  pid = wait_pid_file (env, id, 1000);
  g_assert_true (wait_gone (pid, 5000));

  /* The worker is free for the next job. */
  next = run_job (env, "{\"type\":\"progress\",\"params\":{\"name\":\"x\"}}",
                  NULL);
  g_assert_cmpstr (jw_str (last_event (next), "type"), ==, "succeeded");
}

static void
test_command_exit_status (void)
{
  g_autoptr (JwTestEnv) env = start_env (1);
  g_autofree char *id = NULL;
  g_autoptr (GPtrArray) events = run_job (env, "{\"type\":\"fail\"}", &id);
  g_autoptr (JsonNode) snap = NULL;
  JsonObject *err;

  g_assert_cmpstr (jw_str (last_event (events), "type"), ==, "failed");
  err = jw_json_get_object (last_event (events), "error");
  g_assert_nonnull (err);
  g_assert_cmpstr (jw_str (err, "code"), ==, "exit_status");
  g_assert_cmpint (jw_int (err, "exit_code"), ==, 3);
  g_assert_nonnull (strstr (jw_str (err, "message"), "status 3"));
  g_assert_nonnull (
      strstr (jw_str (err, "message"),
              "cannot write /nonexistent/out.png: no space left on device"));

  snap = jw_get_job (env, id);
  err = jw_json_get_object (jw_json_node_object (snap), "error");
  g_assert_nonnull (err);
  g_assert_cmpint (jw_int (err, "exit_code"), ==, 3);
}

static void
expect_refused (JwTestEnv *env, const char *json, const char *code,
                const char *named)
{
  g_autoptr (JwReply) r = jw_api_post_json (env, "/jobs", json);
  JsonObject *err;

  g_test_message ("POST %s -> %s naming %s", json, code, named);
  jw_assert_error (r, 422, code);
  err = jw_json_get_object (jw_reply_object (r), "error");
  g_assert_nonnull (strstr (jw_str (err, "message"), named));
}

static void
test_params_checked (void)
{
  g_autoptr (JwTestEnv) env = start_env (1);
  g_autoptr (JwReply) types = jw_api_get (env, "/types");
  JsonArray *list;
  gboolean found = FALSE;

  expect_refused (env, "{\"type\":\"progress\",\"params\":{}}",
                  "invalid_params", "params.name");
  expect_refused (env, "{\"type\":\"progress\",\"params\":{\"name\":5}}",
                  "invalid_params", "params.name");
  expect_refused (env,
                  "{\"type\":\"progress\",\"params\":"
                  "{\"name\":\"a\",\"count\":1.5}}",
                  "invalid_params", "params.count");
  expect_refused (env,
                  "{\"type\":\"progress\",\"params\":"
                  "{\"name\":\"a\",\"colour\":\"red\"}}",
                  "invalid_params", "params.colour");
  /* A type with an empty description takes no params at all. */
  expect_refused (env, "{\"type\":\"fail\",\"params\":{\"x\":1}}",
                  "invalid_params", "params.x");
  expect_refused (env, "{\"type\":\"resize\"}", "unknown_type", "resize");
  /* The built-in types keep their own checks. */
  expect_refused (env, "{\"type\":\"sleep\",\"params\":{\"steps\":0}}",
                  "invalid_params", "params.steps");

  /* GET /types lists every type the worker announced, described. */
  g_assert_cmpuint (types->status, ==, 200);
  list = jw_json_get_array (jw_reply_object (types), "types");
  g_assert_nonnull (list);
  for (guint i = 0; i < json_array_get_length (list); i++)
    {
      JsonObject *t = jw_json_node_object (json_array_get_element (list, i));
      JsonArray *params;
      JsonObject *p;

      if (!g_str_equal (jw_str (t, "name"), "progress"))
        continue;
      found = TRUE;
      g_assert_cmpint (jw_int (t, "workers"), ==, 1);
      g_assert_cmpstr (jw_str (t, "description"), ==,
                       "four steps, then an echo");
      params = jw_json_get_array (t, "params");
      g_assert_nonnull (params);
      g_assert_cmpuint (json_array_get_length (params), ==, 2);
      p = jw_json_node_object (json_array_get_element (params, 1));
      g_assert_cmpstr (jw_str (p, "name"), ==, "count");
      g_assert_cmpstr (jw_str (p, "type"), ==, "integer");
      g_assert_true (json_object_get_boolean_member (p, "required") == FALSE);
    }
  g_assert_true (found);
}

/* The element of GET /types named name, or NULL; borrowed from r. */
static JsonObject *
find_type (JwReply *r, const char *name)
{
  JsonArray *list = jw_json_get_array (jw_reply_object (r), "types");

  g_assert_nonnull (list);
  for (guint i = 0; i < json_array_get_length (list); i++)
    {
      JsonObject *t = jw_json_node_object (json_array_get_element (list, i));

      if (g_str_equal (jw_str (t, "name"), name))
        return t;
    }
  return NULL;
}

/* GET /types until it answers 200 (the broker may be coming back). */
static JwReply *
get_types (JwTestEnv *env, guint timeout_ms)
{
  gint64 deadline = jw_deadline (timeout_ms);

  for (;;)
    {
      JwReply *r = jw_api_get (env, "/types");

      if (r->status == 200 || g_get_monotonic_time () > deadline)
        {
          g_assert_cmpuint (r->status, ==, 200);
          return r;
        }
      jw_reply_free (r);
      g_usleep (50 * G_TIME_SPAN_MILLISECOND);
    }
}

/* A type announced once stays accepted across a broker crash, with no
 * worker of it connected: its description is in the ledger. */
static void
test_types_survive_restart (void)
{
  g_autoptr (JwTestEnv) env = start_env (1);
  JwDaemon *w1 = g_ptr_array_index (env->workers, 0);
  g_autoptr (JwReply) before = get_types (env, 10000);
  g_autoptr (JwReply) after = NULL;
  g_autoptr (JsonNode) ping = NULL;
  g_autoptr (JsonNode) snap = NULL;
  g_autofree char *id = NULL;
  JsonObject *t;

  t = find_type (before, "progress");
  g_assert_nonnull (t);
  g_assert_cmpint (jw_int (t, "workers"), ==, 1);

  /* No worker left, then the broker dies without a chance to clean up. */
  g_assert_cmpint (jw_daemon_stop (w1, 15000), ==, 0);
  jw_daemon_kill (env->broker);
  jw_daemon_start (env, env->broker);
  ping = jw_broker_ping (env, 20000);
  g_assert_nonnull (ping);
  g_assert_cmpint (jw_int (jw_json_node_object (ping), "workers"), ==, 0);
  /* The api reconnects on its own schedule; until then it answers 503. */
  g_assert_true (jw_test_env_wait_api (env, 0, 20000));

  /* Listed, described, served by nobody. */
  after = get_types (env, 10000);
  t = find_type (after, "progress");
  g_assert_nonnull (t);
  g_assert_cmpint (jw_int (t, "workers"), ==, 0);
  g_assert_cmpstr (jw_str (t, "description"), ==, "four steps, then an echo");
  g_assert_cmpuint (json_array_get_length (jw_json_get_array (t, "params")),
                    ==, 2);

  /* The api checks params against the recorded description, and queues
   * a good job for a worker to come. */
  expect_refused (env, "{\"type\":\"progress\",\"params\":{}}",
                  "invalid_params", "params.name");
  expect_refused (env, "{\"type\":\"resize\"}", "unknown_type", "resize");
  id = jw_submit (env,
                  "{\"type\":\"progress\",\"params\":{\"name\":\"late\"}}");
  snap = jw_get_job (env, id);
  g_assert_cmpstr (jw_job_state (snap), ==, "queued");
  g_clear_pointer (&snap, json_node_unref);

  jw_daemon_start (env, w1);
  snap = jw_wait_job (env, id, NULL, 30000);
  g_assert_nonnull (snap);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
}

/* Debian's python3, which has python3-zmq, before any other in PATH. */
static const char *
python (void)
{
  return g_file_test ("/usr/bin/python3", G_FILE_TEST_IS_EXECUTABLE)
             ? "/usr/bin/python3"
             : "python3";
}

static gboolean
python_zmq_available (void)
{
  const char *argv[] = { python (), "-c", "import zmq", NULL };
  int status = -1;

  return g_spawn_sync (NULL, (char **)argv, NULL,
                       G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL
                           | G_SPAWN_STDERR_TO_DEV_NULL,
                       NULL, NULL, NULL, NULL, &status, NULL)
         && g_spawn_check_wait_status (status, NULL);
}

static void
test_python_worker (void)
{
  g_autoptr (JwTestEnv) env = NULL;
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_autofree char *script = NULL;
  g_autoptr (GPtrArray) py_ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) sleep_ids = g_ptr_array_new_with_free_func (g_free);
  const char *texts[] = { "one two three", "a b c d e f g h i j k l",
                          "la la la\nla la" };
  const gint64 words[] = { 3, 12, 5 };

  if (!python_zmq_available ())
    {
      g_test_skip ("python3 with zmq (Debian's python3-zmq) is missing");
      return;
    }
  env = start_env (1);
  script =
      g_build_filename (g_getenv ("JW_EXAMPLES"), "python-worker.py", NULL);
  g_strv_builder_add_many (b, python (), script, "--runtime-dir", env->dir,
                           "--name", "py1", NULL);
  jw_test_env_add_process (env, "py1", g_strv_builder_end (b));
  g_assert_true (jw_test_env_wait_ready (env, 2, 15000));

  /* Its own description is enforced by the api too. */
  expect_refused (env, "{\"type\":\"py-wordcount\",\"params\":{}}",
                  "invalid_params", "params.text");

  /* Jobs of both kinds at once: each goes to the worker of its type. */
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_autoptr (JsonBuilder) jb = json_builder_new ();
      g_autoptr (JsonNode) root = NULL;
      g_autofree char *json = NULL;

      json_builder_begin_object (jb);
      json_builder_set_member_name (jb, "type");
      json_builder_add_string_value (jb, "py-wordcount");
      json_builder_set_member_name (jb, "params");
      json_builder_begin_object (jb);
      json_builder_set_member_name (jb, "text");
      json_builder_add_string_value (jb, texts[i]);
      json_builder_end_object (jb);
      json_builder_end_object (jb);
      root = json_builder_get_root (jb);
      json = json_to_string (root, FALSE);
      g_ptr_array_add (py_ids, jw_submit (env, json));
      g_ptr_array_add (sleep_ids,
                       jw_submit (env, "{\"type\":\"sleep\",\"params\":"
                                       "{\"seconds\":0.2,\"steps\":2}}"));
    }

  for (guint i = 0; i < py_ids->len; i++)
    {
      const char *id = g_ptr_array_index (py_ids, i);
      g_autoptr (JwSse) sse = jw_sse_read (env, id, NULL, NULL, 0, 30000);
      g_autoptr (GPtrArray) nodes = jw_sse_nodes (sse);
      JsonObject *result;

      jw_assert_history (nodes, id, 1, TRUE);
      g_assert_cmpstr (jw_str (last_event (nodes), "type"), ==, "succeeded");
      result = jw_json_get_object (last_event (nodes), "result");
      g_assert_nonnull (result);
      g_assert_cmpstr (jw_str (result, "worker"), ==, "python");
      g_assert_cmpint (jw_int (result, "words"), ==, words[i]);
    }
  for (guint i = 0; i < sleep_ids->len; i++)
    {
      const char *id = g_ptr_array_index (sleep_ids, i);
      g_autoptr (JsonNode) snap = jw_wait_job (env, id, NULL, 30000);
      JsonObject *result;

      g_assert_nonnull (snap);
      g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
      /* The C worker's sleep result. */
      result = jw_json_get_object (jw_json_node_object (snap), "result");
      g_assert_nonnull (result);
      g_assert_cmpint (jw_int (result, "steps"), ==, 2);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/types/command/progress-and-result", test_command_progress);
  g_test_add_func ("/types/command/cancel-kills-process-group",
                   test_command_cancel_kills_group);
  g_test_add_func ("/types/command/time-limit", test_command_timeout);
  g_test_add_func ("/types/command/exit-status", test_command_exit_status);
  g_test_add_func ("/types/params/checked-by-api", test_params_checked);
  g_test_add_func ("/types/python-worker", test_python_worker);
  g_test_add_func ("/types/survive-broker-restart",
                   test_types_survive_restart);
  return g_test_run ();
}
