/* static: serves the web client's files. Files are small and few, so each
 * is read whole per request; an ETag from size and modification time lets
 * browsers revalidate cheaply (Cache-Control: no-cache), so that a new
 * build is picked up at once. */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE (8 * 1024 * 1024)

static const struct
{
  const char *ext;
  const char *type;
} content_types[] = {
  { ".html", "text/html; charset=utf-8" },
  { ".js", "text/javascript; charset=utf-8" },
  { ".mjs", "text/javascript; charset=utf-8" },
  { ".css", "text/css; charset=utf-8" },
  { ".json", "application/json" },
  { ".svg", "image/svg+xml" },
  { ".png", "image/png" },
  { ".ico", "image/x-icon" },
  { ".txt", "text/plain; charset=utf-8" },
};

const char *
jw_static_content_type (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (content_types); i++)
    if (g_str_has_suffix (name, content_types[i].ext))
      return content_types[i].type;
  return NULL;
}

const char *
jw_static_default_root (void)
{
  if (g_file_test (JW_WEB_DIR, G_FILE_TEST_IS_DIR))
    return JW_WEB_DIR;
  return JW_SOURCE_WEB_DIR;
}

static void
not_found (SoupServerMessage *msg)
{
  static const char body[] = "{\"error\":{\"code\":\"not_found\","
                             "\"message\":\"no such resource\"}}";

  soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_STATIC,
                                    body, sizeof body - 1);
}

/* The path relative to the root, decoded and checked segment by segment:
 * no "..", no ".", no empty segment, no hidden file, no NUL or backslash.
 * NULL when the path is refused. */
static char *
relative_path (const char *path)
{
  g_autofree char *decoded = NULL;
  g_auto (GStrv) parts = NULL;

  if (path == NULL || path[0] != '/')
    return NULL;
  if (strcmp (path, "/") == 0)
    return g_strdup ("index.html");
  /* An encoded "/" or NUL is refused outright. */
  decoded = g_uri_unescape_string (path + 1, "/");
  if (decoded == NULL || strchr (decoded, '\\') != NULL)
    return NULL;
  parts = g_strsplit (decoded, "/", -1);
  for (guint i = 0; parts[i] != NULL; i++)
    if (parts[i][0] == '\0' || parts[i][0] == '.')
      return NULL;
  return g_steal_pointer (&decoded);
}

void
jw_static_serve (const char *root, SoupServerMessage *msg, const char *path)
{
  SoupMessageHeaders *req = soup_server_message_get_request_headers (msg);
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
  g_autofree char *rel = relative_path (path);
  g_autofree char *full = NULL;
  g_autofree char *real = NULL;
  g_autofree char *real_root = NULL;
  g_autofree char *etag = NULL;
  g_autofree char *data = NULL;
  const char *match;
  struct stat st;
  gsize len;
  int fd;

  /* Only the kinds of file a web page is made of. */
  if (root == NULL || root[0] == '\0' || rel == NULL
      || jw_static_content_type (rel) == NULL)
    {
      not_found (msg);
      return;
    }

  /* Resolve links too: whatever the name, the file must lie in root. */
  full = g_build_filename (root, rel, NULL);
  real = realpath (full, NULL);
  real_root = realpath (root, NULL);
  if (real == NULL || real_root == NULL || !g_str_has_prefix (real, real_root)
      || real[strlen (real_root)] != '/')
    {
      not_found (msg);
      return;
    }
  fd = open (real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 || fstat (fd, &st) != 0 || !S_ISREG (st.st_mode)
      || st.st_size > MAX_FILE)
    {
      if (fd >= 0)
        close (fd);
      not_found (msg);
      return;
    }

  etag = g_strdup_printf ("\"%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER
                          "x-%lx\"",
                          (gint64)st.st_size, (gint64)st.st_mtim.tv_sec,
                          (unsigned long)st.st_mtim.tv_nsec);
  soup_message_headers_replace (h, "Cache-Control", "no-cache");
  soup_message_headers_replace (h, "ETag", etag);
  soup_message_headers_replace (h, "X-Content-Type-Options", "nosniff");
  match = soup_message_headers_get_one (req, "If-None-Match");
  if (match != NULL && strcmp (match, etag) == 0)
    {
      close (fd);
      soup_server_message_set_status (msg, SOUP_STATUS_NOT_MODIFIED, NULL);
      return;
    }

  data = g_malloc (st.st_size + 1);
  len = 0;
  while (len < (gsize)st.st_size)
    {
      ssize_t n = read (fd, data + len, st.st_size - len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      len += n;
    }
  close (fd);
  if (len != (gsize)st.st_size)
    {
      g_warning ("cannot read a web file path=%s", real);
      soup_server_message_set_status (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR,
                                      NULL);
      return;
    }
  g_debug ("static file path=%s bytes=%" G_GSIZE_FORMAT, rel, len);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, jw_static_content_type (rel),
                                    SOUP_MEMORY_TAKE, g_steal_pointer (&data),
                                    len);
}
