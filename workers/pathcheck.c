/* pathcheck: resolves a job's relative path below the worker's root and
 * refuses any way out of it, lexical (`..`) or through symbolic links. */
#include "pathcheck.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"

/* `..` that would climb above the root, before touching the file system,
 * so that nothing is revealed about what lies outside. */
static gboolean
climbs_out (const char *rel)
{
  g_auto (GStrv) parts = g_strsplit (rel, "/", -1);
  int depth = 0;
  guint i;

  for (i = 0; parts[i] != NULL; i++)
    {
      if (g_str_equal (parts[i], ".."))
        depth--;
      else if (parts[i][0] != '\0' && !g_str_equal (parts[i], "."))
        depth++;
      if (depth < 0)
        return TRUE;
    }
  return FALSE;
}

static gboolean
is_below (const char *root_real, const char *path)
{
  gsize n = strlen (root_real);

  if (g_str_equal (root_real, "/"))
    return TRUE;
  return strncmp (path, root_real, n) == 0
         && (path[n] == '\0' || path[n] == '/');
}

char *
jw_path_resolve_below (const char *root_real, const char *rel, GError **error)
{
  g_autofree char *joined = NULL;
  g_autofree char *real = NULL;
  int saved;

  if (rel[0] == '\0' || g_path_is_absolute (rel) || climbs_out (rel))
    {
      g_set_error (error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT,
                   "path %s is not below the checksum root", rel);
      return NULL;
    }

  joined = g_build_filename (root_real, rel, NULL);
  real = realpath (joined, NULL);
  if (real == NULL)
    {
      saved = errno;
      g_set_error (error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_FILE_NOT_FOUND,
                   "path %s: %s", rel, g_strerror (saved));
      return NULL;
    }
  if (!is_below (root_real, real))
    {
      g_set_error (error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT,
                   "path %s leads out of the checksum root", rel);
      return NULL;
    }
  return g_steal_pointer (&real);
}
