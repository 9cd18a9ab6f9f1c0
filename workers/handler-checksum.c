/* handler-checksum: the built-in `checksum` job type. SHA-256 of a file
 * below the worker's checksum root, read in slices from an idle callback
 * so that the main loop keeps serving the broker between them. */
#include "handler.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jw-json.h"
#include "pathcheck.h"

#define SLICE_BYTES (256 * 1024)
#define PROGRESS_INTERVAL_US (G_USEC_PER_SEC / 20)

struct _JwJobRun
{
  JwEmitter emitter;
  int fd;
  GChecksum *sha;
  guint64 total;
  guint64 done;
  gint64 reported_us;
  guint idle;
  guchar *buf;
};

static void
report (JwJobRun *run)
{
  double percent = run->total ? 100.0 * run->done / run->total : 100.0;

  run->reported_us = g_get_monotonic_time ();
  run->emitter.progress (run->emitter.ctx, run->done, run->total, percent,
                         NULL);
}

static gboolean
read_slice (gpointer data)
{
  JwJobRun *run = data;
  g_autoptr (GError) error = NULL;
  JsonObject *result;
  ssize_t n;

  n = read (run->fd, run->buf, SLICE_BYTES);
  if (n < 0 && errno == EINTR)
    return G_SOURCE_CONTINUE;
  if (n < 0)
    {
      run->idle = 0;
      g_set_error (&error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_IO,
                   "reading failed: %s", g_strerror (errno));
      run->emitter.failed (run->emitter.ctx, error);
      return G_SOURCE_REMOVE;
    }

  if (n > 0)
    {
      g_checksum_update (run->sha, run->buf, n);
      run->done += n;
      if (g_get_monotonic_time () - run->reported_us >= PROGRESS_INTERVAL_US)
        report (run);
      return G_SOURCE_CONTINUE;
    }

  /* End of file: the size may have changed since fstat; report truth. */
  run->idle = 0;
  run->total = run->done;
  report (run);
  result = json_object_new ();
  json_object_set_string_member (result, "sha256",
                                 g_checksum_get_string (run->sha));
  json_object_set_int_member (result, "bytes", run->done);
  run->emitter.succeeded (run->emitter.ctx,
                          json_node_init_object (json_node_alloc (), result));
  json_object_unref (result);
  return G_SOURCE_REMOVE;
}

static void
checksum_free (JwJobRun *run)
{
  if (run->idle != 0)
    g_source_remove (run->idle);
  if (run->fd >= 0)
    close (run->fd);
  if (run->sha != NULL)
    g_checksum_free (run->sha);
  g_free (run->buf);
  g_free (run);
}

static JwJobRun *
checksum_start (const JwJobInfo *job, const JwEmitter *emitter,
                gpointer type_data, GError **error)
{
  const char *root = type_data;
  const char *rel = jw_json_get_string (job->params, "path");
  g_autofree char *path = NULL;
  JwJobRun *run;
  struct stat st;
  int saved;

  if (rel == NULL || rel[0] == '\0')
    {
      g_set_error (error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_INVALID_PARAMS,
                   "checksum takes path, a non-empty string");
      return NULL;
    }
  if (root == NULL)
    {
      g_set_error (error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_FILE_NOT_FOUND,
                   "this worker has no usable checksum root");
      return NULL;
    }
  path = jw_path_resolve_below (root, rel, error);
  if (path == NULL)
    return NULL;

  run = g_new0 (JwJobRun, 1);
  run->fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (run->fd < 0 || fstat (run->fd, &st) < 0)
    {
      saved = errno;
      g_set_error (error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_FILE_NOT_FOUND,
                   "path %s: %s", rel, g_strerror (saved));
      checksum_free (run);
      return NULL;
    }
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_NOT_A_FILE,
                   "path %s is not a regular file", rel);
      checksum_free (run);
      return NULL;
    }

  run->emitter = *emitter;
  run->sha = g_checksum_new (G_CHECKSUM_SHA256);
  run->buf = g_malloc (SLICE_BYTES);
  run->total = st.st_size;
  run->reported_us = g_get_monotonic_time ();
  run->idle = g_idle_add (read_slice, run);
  return run;
}

const JwHandlerType jw_handler_checksum = {
  .type = "checksum",
  .start = checksum_start,
  .cancel = checksum_free,
  .free = checksum_free,
};
