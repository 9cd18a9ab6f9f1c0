/* Unit tests of the worker's path confinement (workers/pathcheck.c). */
#include <glib/gstdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "handler.h"
#include "pathcheck.h"

typedef struct
{
  char *top;  /* temporary directory */
  char *root; /* realpath of top/root */
} Fixture;

static void
write_file (const char *dir, const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);

  g_assert_true (g_file_set_contents (path, "x", 1, NULL));
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *root = NULL;
  g_autofree char *sub = NULL;
  g_autofree char *link = NULL;

  f->top = g_dir_make_tmp ("jw-pathcheck-XXXXXX", &error);
  g_assert_no_error (error);
  root = g_build_filename (f->top, "root", NULL);
  sub = g_build_filename (root, "sub", NULL);
  g_assert_cmpint (g_mkdir_with_parents (sub, 0700), ==, 0);
  f->root = realpath (root, NULL);
  g_assert_nonnull (f->root);

  write_file (f->top, "secret");
  write_file (f->root, "a.txt");
  write_file (sub, "b.txt");

  link = g_build_filename (f->root, "out", NULL);
  g_assert_cmpint (symlink ("../secret", link), ==, 0);
  g_free (link);
  link = g_build_filename (f->root, "in", NULL);
  g_assert_cmpint (symlink ("sub/b.txt", link), ==, 0);
  g_free (link);
  link = g_build_filename (f->root, "updir", NULL);
  g_assert_cmpint (symlink ("..", link), ==, 0);
}

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    while ((name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *child = g_build_filename (path, name, NULL);

        remove_tree (child);
      }
  g_remove (path);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  remove_tree (f->top);
  g_free (f->top);
  free (f->root);
}

static void
assert_resolves (Fixture *f, const char *rel, const char *expected_rel)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *got = jw_path_resolve_below (f->root, rel, &error);
  g_autofree char *expected = g_build_filename (f->root, expected_rel, NULL);

  g_assert_no_error (error);
  g_assert_cmpstr (got, ==, expected);
}

static void
assert_refused (Fixture *f, const char *rel, JwHandlerError code)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *got = jw_path_resolve_below (f->root, rel, &error);

  g_assert_null (got);
  g_assert_error (error, JW_HANDLER_ERROR, (gint)code);
}

static void
test_inside (Fixture *f, gconstpointer data)
{
  assert_resolves (f, "a.txt", "a.txt");
  assert_resolves (f, "sub/b.txt", "sub/b.txt");
  assert_resolves (f, "./sub//b.txt", "sub/b.txt");
  assert_resolves (f, "sub/../a.txt", "a.txt");
  assert_resolves (f, "in", "sub/b.txt");
}

static void
test_outside (Fixture *f, gconstpointer data)
{
  assert_refused (f, "../secret", JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT);
  assert_refused (f, "sub/../../secret", JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT);
  assert_refused (f, "..", JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT);
  assert_refused (f, "/etc/passwd", JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT);
  assert_refused (f, "", JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT);
  /* Through symbolic links. */
  assert_refused (f, "out", JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT);
  assert_refused (f, "updir/secret", JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT);
}

static void
test_missing (Fixture *f, gconstpointer data)
{
  assert_refused (f, "nope.txt", JW_HANDLER_ERROR_FILE_NOT_FOUND);
  assert_refused (f, "a.txt/x", JW_HANDLER_ERROR_FILE_NOT_FOUND);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/workers/pathcheck/inside", Fixture, NULL, fixture_set_up,
              test_inside, fixture_tear_down);
  g_test_add ("/workers/pathcheck/outside", Fixture, NULL, fixture_set_up,
              test_outside, fixture_tear_down);
  g_test_add ("/workers/pathcheck/missing", Fixture, NULL, fixture_set_up,
              test_missing, fixture_tear_down);
  return g_test_run ();
}
