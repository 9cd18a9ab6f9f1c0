/* End-to-end checksum jobs: a worker hashes a file below its root and
 * reports progress by bytes; paths that leave the root are refused. */

#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "testenv.h"
#include "jw-json.h"

#define FILE_SIZE (3 * 1024 * 1024 + 123)

static char *
checksum_job (const char *path)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "checksum");
  json_builder_set_member_name (b, "params");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "path");
  json_builder_add_string_value (b, path);
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

/* Runs a checksum job to its end and returns its events. */
static GPtrArray *
run_checksum (JwTestEnv *env, const char *path, char **id_out)
{
  g_autofree char *json = checksum_job (path);
  g_autofree char *id = jw_submit (env, json);
  g_autoptr (JwSse) sse = jw_sse_read (env, id, NULL, NULL, 0, 20000);
  GPtrArray *events = jw_node_array_new ();
  g_autoptr (GPtrArray) nodes = NULL;

  g_assert_cmpuint (sse->status, ==, 200);
  g_assert_true (sse->ended);
  nodes = jw_sse_nodes (sse);
  jw_assert_history (nodes, id, 1, TRUE);
  for (guint i = 0; i < nodes->len; i++)
    g_ptr_array_add (events, json_node_ref (g_ptr_array_index (nodes, i)));
  *id_out = g_steal_pointer (&id);
  return events;
}

static JsonObject *
last_event (GPtrArray *events)
{
  return jw_json_node_object (g_ptr_array_index (events, events->len - 1));
}

static void
test_checksum_sha256 (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autofree char *data = g_malloc (FILE_SIZE);
  g_autofree char *path = NULL;
  g_autofree char *id = NULL;
  g_autofree char *expected = NULL;
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);
  g_autoptr (GPtrArray) events = NULL;
  g_autoptr (JsonNode) snap = NULL;
  g_autoptr (GError) error = NULL;
  JsonObject *result;
  double last_done = -1;
  guint n_progress = 0;

  /* Known content, several read chunks long. */
  for (gsize i = 0; i < FILE_SIZE; i++)
    data[i] = (char)g_rand_int_range (rand, 0, 256);
  path = g_build_filename (env->checksum_root, "data.bin", NULL);
  g_file_set_contents (path, data, FILE_SIZE, &error);
  g_assert_no_error (error);
  expected = g_compute_checksum_for_data (G_CHECKSUM_SHA256,
                                          (const guchar *)data, FILE_SIZE);

  events = run_checksum (env, "data.bin", &id);
  for (guint i = 0; i < events->len; i++)
    {
      JsonObject *ev = jw_json_node_object (g_ptr_array_index (events, i));
      JsonObject *p;
      double done, total;

      if (!g_str_equal (jw_str (ev, "type"), "progress"))
        continue;
      p = jw_json_get_object (ev, "progress");
      g_assert_nonnull (p);
      g_assert_true (jw_json_get_double (p, "done", &done));
      g_assert_true (jw_json_get_double (p, "total", &total));
      g_assert_cmpfloat (total, ==, FILE_SIZE);
      g_assert_cmpfloat (done, >, last_done);
      g_assert_cmpfloat (done, <=, total);
      last_done = done;
      n_progress++;
    }
  g_assert_cmpuint (n_progress, >=, 1);

  g_assert_cmpstr (jw_str (last_event (events), "type"), ==, "succeeded");
  result = jw_json_get_object (last_event (events), "result");
  g_assert_nonnull (result);
  g_assert_cmpstr (jw_str (result, "sha256"), ==, expected);
  g_assert_cmpint (jw_int (result, "bytes"), ==, FILE_SIZE);

  snap = jw_get_job (env, id);
  g_assert_cmpstr (jw_job_state (snap), ==, "succeeded");
  result = jw_json_get_object (jw_json_node_object (snap), "result");
  g_assert_nonnull (result);
  g_assert_cmpstr (jw_str (result, "sha256"), ==, expected);
}

static void
expect_failure (JwTestEnv *env, const char *path, const char *code)
{
  g_autofree char *id = NULL;
  g_autoptr (GPtrArray) events = run_checksum (env, path, &id);
  g_autoptr (JsonNode) snap = NULL;
  JsonObject *err;

  g_test_message ("checksum %s -> expect %s", path, code);
  g_assert_cmpstr (jw_str (last_event (events), "type"), ==, "failed");
  err = jw_json_get_object (last_event (events), "error");
  g_assert_nonnull (err);
  g_assert_cmpstr (jw_str (err, "code"), ==, code);
  snap = jw_get_job (env, id);
  g_assert_cmpstr (jw_job_state (snap), ==, "failed");
  err = jw_json_get_object (jw_json_node_object (snap), "error");
  g_assert_nonnull (err);
  g_assert_cmpstr (jw_str (err, "code"), ==, code);
}

static void
test_checksum_outside_root (void)
{
  g_autoptr (JwTestEnv) env = jw_test_env_start (1);
  g_autofree char *link = g_build_filename (env->checksum_root, "escape", NULL);
  g_autofree char *sub = g_build_filename (env->checksum_root, "sub", NULL);

  expect_failure (env, "../../etc/passwd", "path_outside_root");

  /* A link inside the root that points out of it is still outside. */
  g_assert_cmpint (symlink ("/etc/passwd", link), ==, 0);
  expect_failure (env, "escape", "path_outside_root");

  g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
  expect_failure (env, "sub", "not_a_file");
  expect_failure (env, "missing.bin", "file_not_found");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pipeline/checksum/sha256", test_checksum_sha256);
  g_test_add_func ("/pipeline/checksum/path-outside-root",
                   test_checksum_outside_root);
  return g_test_run ();
}
