/* pathcheck: confining a client-supplied relative path to a directory. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Resolves rel (relative, no NUL) below root_real (a path already passed
 * through realpath) with every symbolic link followed, and returns the
 * result only when it stays inside root_real. Errors (JW_HANDLER_ERROR):
 * PATH_OUTSIDE_ROOT for absolute paths, `..` above the root and links that
 * lead out; FILE_NOT_FOUND when nothing is there. Whether it is a regular
 * file is for the caller to check on the opened file. */
char *jw_path_resolve_below (const char *root_real, const char *rel,
                             GError **error);

G_END_DECLS
