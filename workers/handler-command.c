/* handler-command: runs the command of a configured job type in its own
 * process group. The job's params go to its standard input as one JSON
 * line; its standard output is read line by line for progress and the
 * result, the tail of its standard error becomes the error message. A
 * cancel or a time limit sends SIGTERM to the whole group and SIGKILL
 * after the grace time, so that no process of the job outlives it. All
 * I/O is asynchronous on the main loop. */
#include "handler-command.h"

#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jw-json.h"
#include "jw-log.h"

#define READ_CHUNK 8192
#define MAX_LINE (1024 * 1024)
#define STDERR_TAIL 4096
#define RESULT_MAX_DEPTH 64
/* Progress events at most this often; the last one is never lost. */
#define PROGRESS_MIN_MS 50
/* After the command exits, how long its pipes may stay open (a process
 * left in the group holds them) before the job ends without them. */
#define DRAIN_MS 1000
#define DEFAULT_KILL_GRACE_S 5

/* ---- stopping process groups ----------------------------------------- */

/* A process group told to stop: SIGKILL follows SIGTERM after the grace
 * time if anything of it is left. Lives apart from the job run, which may
 * be gone long before. */
typedef struct
{
  int pgid;
  gint64 deadline_us; /* monotonic */
  guint timer;
} Reaper;

static GList *reapers;

static gboolean
group_alive (int pgid)
{
  return kill (-pgid, 0) == 0 || errno == EPERM;
}

static void
reaper_free (Reaper *r)
{
  if (r->timer != 0)
    g_source_remove (r->timer);
  reapers = g_list_remove (reapers, r);
  g_free (r);
}

static gboolean
reaper_due (gpointer data)
{
  Reaper *r = data;

  r->timer = 0;
  if (group_alive (r->pgid))
    {
      g_info ("process group still alive after the grace time, killing "
              "pgid=%d",
              r->pgid);
      kill (-r->pgid, SIGKILL);
    }
  reaper_free (r);
  return G_SOURCE_REMOVE;
}

static void
stop_group (int pgid, guint grace_ms)
{
  Reaper *r = g_new0 (Reaper, 1);

  g_debug ("stopping process group pgid=%d grace_ms=%u", pgid, grace_ms);
  r->pgid = pgid;
  r->deadline_us = g_get_monotonic_time () + grace_ms * G_TIME_SPAN_MILLISECOND;
  kill (-pgid, SIGTERM);
  /* A stopped process would not act on SIGTERM until continued. */
  kill (-pgid, SIGCONT);
  r->timer = g_timeout_add (grace_ms, reaper_due, r);
  reapers = g_list_prepend (reapers, r);
}

void
jw_command_kill_all (void)
{
  gint64 deadline = 0;
  GList *l;

  /* Let each group use what is left of its grace time, then kill. */
  for (l = reapers; l != NULL; l = l->next)
    deadline = MAX (deadline, ((Reaper *)l->data)->deadline_us);
  while (g_get_monotonic_time () < deadline)
    {
      gboolean any = FALSE;

      for (l = reapers; l != NULL; l = l->next)
        any = any || group_alive (((Reaper *)l->data)->pgid);
      if (!any)
        break;
      g_usleep (20 * G_TIME_SPAN_MILLISECOND);
    }
  while (reapers != NULL)
    {
      Reaper *r = reapers->data;

      if (group_alive (r->pgid))
        kill (-r->pgid, SIGKILL);
      reaper_free (r);
    }
}

/* ---- configured types ------------------------------------------------- */

static gboolean
get_seconds (JwConfig *cfg, const char *section, const char *key, guint *out,
             GError **error)
{
  const char *value = jw_config_get_string (cfg, section, key, NULL);
  guint64 n;

  if (value == NULL)
    return TRUE;
  if (!g_ascii_string_to_unsigned (value, 10, 0, 30 * 86400, &n, NULL))
    {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                   "[%s] %s=%s: expected whole seconds, 0 to 2592000", section,
                   key, value);
      return FALSE;
    }
  *out = (guint)n;
  return TRUE;
}

JwCommandType *
jw_command_type_new (JwConfig *cfg, const char *name, GError **error)
{
  g_autoptr (JwCommandType) type = g_new0 (JwCommandType, 1);
  g_autofree char *section = g_strconcat ("type.", name, NULL);
  const char *params, *value;
  guint grace_s = DEFAULT_KILL_GRACE_S, attempts = 0;

  type->name = g_strdup (name);
  if (!jw_type_name_valid (name))
    {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                   "[%s]: a type name is 1 to 64 letters, digits, '_', '-' "
                   "or '.'",
                   section);
      return NULL;
    }
  type->argv = jw_config_get_string_list (cfg, section, "command");
  if (type->argv == NULL || type->argv[0] == NULL || *type->argv[0] == '\0')
    {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                   "[%s] needs command = PROGRAM;ARG;... (an argument list, "
                   "not a shell line)",
                   section);
      return NULL;
    }

  params = jw_config_get_string (cfg, section, "params", NULL);
  if (params != NULL)
    {
      type->params = jw_param_spec_parse (params, error);
      if (type->params == NULL)
        {
          g_prefix_error (error, "[%s] params: ", section);
          return NULL;
        }
    }
  if (!get_seconds (cfg, section, "timeout-s", &type->timeout_s, error)
      || !get_seconds (cfg, section, "max-attempts", &attempts, error)
      || !get_seconds (cfg, "worker", "kill-grace-s", &grace_s, error))
    return NULL;
  type->max_attempts = attempts;
  type->kill_grace_ms = grace_s * 1000;

  value = jw_config_get_string (cfg, section, "directory", NULL);
  type->directory = g_strdup (value);
  value = jw_config_get_string (cfg, section, "description", NULL);
  type->description = g_strdup (value);
  return g_steal_pointer (&type);
}

void
jw_command_type_free (JwCommandType *type)
{
  if (type == NULL)
    return;
  g_free (type->name);
  g_strfreev (type->argv);
  g_free (type->directory);
  g_free (type->description);
  jw_param_spec_free (type->params);
  g_free (type);
}

/* ---- one run ---------------------------------------------------------- */

struct _JwJobRun
{
  gint refs; /* the worker's, plus one per pending callback */
  JwEmitter emitter;
  char *job_id;
  guint timeout_s;
  guint kill_grace_ms;

  GPid pid; /* also the process group id; reaped by our child watch */
  GOutputStream *in;
  GInputStream *out, *err;
  int wait_status;
  GBytes *input;
  GCancellable *cancellable;
  int pgid;
  gboolean over; /* concluded, cancelled or freed: callbacks do nothing */
  gboolean exited, out_eof, err_eof, timed_out, stopping;

  GByteArray *line; /* the stdout line read so far */
  gboolean line_too_long;
  GByteArray *err_tail;
  JsonNode *result;

  double done, total, percent;
  char *message;
  gboolean progress_pending;
  gint64 last_progress_us;
  guint progress_timer;
  guint timeout_timer;
  guint drain_timer;
};

static JwJobRun *
run_ref (JwJobRun *run)
{
  run->refs++;
  return run;
}

static void
run_unref (JwJobRun *run)
{
  if (--run->refs > 0)
    return;
  g_clear_object (&run->in);
  g_clear_object (&run->out);
  g_clear_object (&run->err);
  g_clear_pointer (&run->input, g_bytes_unref);
  g_clear_object (&run->cancellable);
  g_byte_array_unref (run->line);
  g_byte_array_unref (run->err_tail);
  g_clear_pointer (&run->result, json_node_unref);
  g_free (run->message);
  g_free (run->job_id);
  g_free (run);
}

static void
clear_timers (JwJobRun *run)
{
  g_clear_handle_id (&run->progress_timer, g_source_remove);
  g_clear_handle_id (&run->timeout_timer, g_source_remove);
  g_clear_handle_id (&run->drain_timer, g_source_remove);
}

/* Stops the whole group once; the reaper finishes the job. */
static void
stop_run_group (JwJobRun *run)
{
  if (run->stopping)
    return;
  run->stopping = TRUE;
  stop_group (run->pgid, run->kill_grace_ms);
}

static void
emit_progress_now (JwJobRun *run)
{
  run->progress_pending = FALSE;
  run->last_progress_us = g_get_monotonic_time ();
  run->emitter.progress (run->emitter.ctx, run->done, run->total, run->percent,
                         run->message);
}

static gboolean
progress_due (gpointer data)
{
  JwJobRun *run = data;

  run->progress_timer = 0;
  if (run->progress_pending)
    emit_progress_now (run);
  return G_SOURCE_REMOVE;
}

static void
queue_progress (JwJobRun *run)
{
  gint64 since_ms = (g_get_monotonic_time () - run->last_progress_us) / 1000;

  run->progress_pending = TRUE;
  if (run->progress_timer != 0)
    return;
  if (since_ms >= PROGRESS_MIN_MS)
    emit_progress_now (run);
  else
    run->progress_timer =
        g_timeout_add (PROGRESS_MIN_MS - since_ms, progress_due, run);
}

static gboolean
parse_number (const char *text, double *out, char **end)
{
  *out = g_ascii_strtod (text, end);
  return *end != text && isfinite (*out);
}

/* "progress 40 [message]" or "progress 3/10 [message]". */
static void
progress_line (JwJobRun *run, const char *args)
{
  double a, b = 0;
  char *end;
  gboolean fraction;

  if (!parse_number (args, &a, &end))
    goto bad;
  fraction = *end == '/';
  if (fraction && !parse_number (end + 1, &b, &end))
    goto bad;
  if (*end != '\0' && *end != ' ' && *end != '\t')
    goto bad;

  if (fraction)
    {
      if (b <= 0 || a < 0 || a > b)
        goto bad;
      run->done = a;
      run->total = b;
      run->percent = 100.0 * a / b;
    }
  else
    {
      if (a < 0 || a > 100)
        goto bad;
      run->done = a;
      run->total = 100;
      run->percent = a;
    }
  while (*end == ' ' || *end == '\t')
    end++;
  if (*end != '\0')
    {
      g_free (run->message);
      run->message = g_strdup (end);
    }
  queue_progress (run);
  return;

bad:
  jw_log_job (G_LOG_LEVEL_DEBUG, run->job_id,
              "progress line ignored id=%s: expected PERCENT or DONE/TOTAL",
              run->job_id);
}

static void
result_line (JwJobRun *run, const char *json, gboolean must_parse)
{
  g_autoptr (GError) error = NULL;
  JsonNode *node =
      jw_json_parse (json, strlen (json), RESULT_MAX_DEPTH, &error);

  if (node == NULL)
    {
      if (must_parse)
        jw_log_job (G_LOG_LEVEL_INFO, run->job_id,
                    "result line ignored id=%s: %s", run->job_id,
                    error->message);
      return;
    }
  g_clear_pointer (&run->result, json_node_unref);
  run->result = node;
}

/* One line of the command's standard output (docs/CONFIGURATION.md). */
static void
handle_line (JwJobRun *run, char *line)
{
  g_strchomp (line);
  if (!g_utf8_validate (line, -1, NULL))
    return;
  if (g_str_has_prefix (line, "progress "))
    progress_line (run, line + strlen ("progress "));
  else if (g_str_has_prefix (line, "message "))
    {
      g_free (run->message);
      run->message = g_strdup (line + strlen ("message "));
      queue_progress (run);
    }
  else if (g_str_has_prefix (line, "result "))
    result_line (run, line + strlen ("result "), TRUE);
  else if (line[0] == '{')
    result_line (run, line, FALSE);
}

static void
take_line (JwJobRun *run)
{
  if (!run->line_too_long)
    {
      g_byte_array_append (run->line, (const guint8 *)"", 1);
      handle_line (run, (char *)run->line->data);
    }
  else
    jw_log_job (G_LOG_LEVEL_INFO, run->job_id,
                "output line over %d bytes ignored id=%s", MAX_LINE,
                run->job_id);
  g_byte_array_set_size (run->line, 0);
  run->line_too_long = FALSE;
}

static void
feed_stdout (JwJobRun *run, const guint8 *data, gsize len)
{
  while (len > 0 && !run->over)
    {
      const guint8 *nl = memchr (data, '\n', len);
      gsize n = nl ? (gsize)(nl - data) : len;

      if (!run->line_too_long && run->line->len + n <= MAX_LINE)
        g_byte_array_append (run->line, data, n);
      else
        {
          run->line_too_long = TRUE;
          g_byte_array_set_size (run->line, 0);
        }
      if (nl == NULL)
        break;
      take_line (run);
      data += n + 1;
      len -= n + 1;
    }
}

static void
feed_stderr (JwJobRun *run, const guint8 *data, gsize len)
{
  g_byte_array_append (run->err_tail, data, len);
  if (run->err_tail->len > STDERR_TAIL)
    g_byte_array_remove_range (run->err_tail, 0,
                               run->err_tail->len - STDERR_TAIL);
}

/* The stderr tail as text, or NULL when there is none. */
static char *
stderr_text (JwJobRun *run)
{
  g_autofree char *text = NULL;
  char *start;

  if (run->err_tail->len == 0)
    return NULL;
  text =
      g_utf8_make_valid ((const char *)run->err_tail->data, run->err_tail->len);
  start = g_strstrip (text);
  return *start ? g_strdup (start) : NULL;
}

static void
conclude (JwJobRun *run)
{
  g_autofree char *tail = NULL;
  g_autofree char *message = NULL;
  g_autoptr (JsonObject) extra = json_object_new ();
  JsonNode *result;

  run->over = TRUE;
  clear_timers (run);
  g_cancellable_cancel (run->cancellable);
  if (run->line->len > 0)
    take_line (run);
  if (run->progress_pending)
    emit_progress_now (run);

  tail = stderr_text (run);
  if (run->timed_out)
    {
      message =
          g_strdup_printf ("the command ran longer than its limit of "
                           "%u s and was stopped%s%s",
                           run->timeout_s, tail ? ": " : "", tail ? tail : "");
      run->emitter.failed_with (run->emitter.ctx, "timeout", message, NULL);
    }
  else if (WIFSIGNALED (run->wait_status))
    {
      int sig = WTERMSIG (run->wait_status);

      message = g_strdup_printf ("the command was killed by signal %d (%s)%s%s",
                                 sig, g_strsignal (sig), tail ? ": " : "",
                                 tail ? tail : "");
      json_object_set_int_member (extra, "signal", sig);
      run->emitter.failed_with (run->emitter.ctx, "killed_by_signal", message,
                                extra);
    }
  else if (!WIFEXITED (run->wait_status) || WEXITSTATUS (run->wait_status) != 0)
    {
      int status = WEXITSTATUS (run->wait_status);

      message = g_strdup_printf ("the command exited with status %d%s%s",
                                 status, tail ? ": " : "", tail ? tail : "");
      json_object_set_int_member (extra, "exit_code", status);
      run->emitter.failed_with (run->emitter.ctx, "exit_status", message,
                                extra);
    }
  else
    {
      result = run->result ? g_steal_pointer (&run->result)
                           : json_node_new (JSON_NODE_NULL);
      run->emitter.succeeded (run->emitter.ctx, result);
    }
  /* The worker has freed its reference by now: touch nothing. */
}

static void
maybe_conclude (JwJobRun *run)
{
  if (!run->over && run->exited && run->out_eof && run->err_eof)
    conclude (run);
}

static gboolean
drain_due (gpointer data)
{
  JwJobRun *run = data;

  run->drain_timer = 0;
  jw_log_job (G_LOG_LEVEL_INFO, run->job_id,
              "output still open after the command exited id=%s", run->job_id);
  run_ref (run);
  conclude (run);
  run_unref (run);
  return G_SOURCE_REMOVE;
}

static void read_next (JwJobRun *run, gboolean out);

static void
read_done (GObject *source, GAsyncResult *res, gpointer data, gboolean out)
{
  JwJobRun *run = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes =
      g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), res, &error);
  gsize len = bytes ? g_bytes_get_size (bytes) : 0;

  if (!run->over)
    {
      if (error != NULL)
        jw_log_job (G_LOG_LEVEL_WARNING, run->job_id,
                    "reading the command's output failed id=%s: %s",
                    run->job_id, error->message);
      if (len == 0)
        {
          if (out)
            run->out_eof = TRUE;
          else
            run->err_eof = TRUE;
          maybe_conclude (run);
        }
      else
        {
          if (out)
            feed_stdout (run, g_bytes_get_data (bytes, NULL), len);
          else
            feed_stderr (run, g_bytes_get_data (bytes, NULL), len);
          if (!run->over)
            read_next (run, out);
        }
    }
  run_unref (run);
}

static void
stdout_read (GObject *source, GAsyncResult *res, gpointer data)
{
  read_done (source, res, data, TRUE);
}

static void
stderr_read (GObject *source, GAsyncResult *res, gpointer data)
{
  read_done (source, res, data, FALSE);
}

static void
read_next (JwJobRun *run, gboolean out)
{
  GInputStream *stream = out ? run->out : run->err;

  g_input_stream_read_bytes_async (
      stream, READ_CHUNK, G_PRIORITY_DEFAULT, run->cancellable,
      out ? stdout_read : stderr_read, run_ref (run));
}

/* The child watch: it stays until the command has exited, whatever became
 * of the job, so that the command is always reaped. */
static void
exited (GPid pid, int status, gpointer data)
{
  JwJobRun *run = data;

  g_spawn_close_pid (pid);
  run->exited = TRUE;
  run->wait_status = status;
  if (!run->over)
    {
      g_clear_handle_id (&run->timeout_timer, g_source_remove);
      jw_log_job (G_LOG_LEVEL_DEBUG, run->job_id, "command ended id=%s",
                  run->job_id);
      /* Whatever the command left behind in its group goes too. */
      if (group_alive (run->pgid))
        stop_run_group (run);
      if (!run->out_eof || !run->err_eof)
        run->drain_timer = g_timeout_add (DRAIN_MS, drain_due, run);
      maybe_conclude (run);
    }
}

static gboolean
timeout_due (gpointer data)
{
  JwJobRun *run = data;

  run->timeout_timer = 0;
  jw_log_job (G_LOG_LEVEL_MESSAGE, run->job_id,
              "job over its time limit, stopping it id=%s timeout_s=%u",
              run->job_id, run->timeout_s);
  run->timed_out = TRUE;
  stop_run_group (run);
  return G_SOURCE_REMOVE;
}

static void
stdin_written (GObject *source, GAsyncResult *res, gpointer data)
{
  JwJobRun *run = data;
  g_autoptr (GError) error = NULL;

  /* A command that does not read its input closes the pipe: not an
   * error of the job. */
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), res, NULL,
                                         &error)
      && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    jw_log_job (G_LOG_LEVEL_DEBUG, run->job_id,
                "params not written to the command id=%s: %s", run->job_id,
                error->message);
  g_output_stream_close (G_OUTPUT_STREAM (source), NULL, NULL);
  run_unref (run);
}

static void
child_setup (gpointer data)
{
  /* Its own group, so that a signal reaches everything it starts; gone
   * if the worker dies; signals as a fresh process has them (the worker
   * ignores SIGPIPE). */
  setpgid (0, 0);
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  signal (SIGPIPE, SIG_DFL);
}

static JwJobRun *
command_start (const JwJobInfo *job, const JwEmitter *emitter,
               gpointer type_data, GError **error)
{
  JwCommandType *type = type_data;
  g_autoptr (GError) local_error = NULL;
  g_autoptr (JsonNode) params = NULL;
  g_autofree char *attempt = NULL;
  g_auto (GStrv) envp = g_get_environ ();
  int in_fd, out_fd, err_fd;
  JwJobRun *run;
  gsize len;
  char *json;

  attempt = g_strdup_printf ("%" G_GINT64_FORMAT, job->attempt);
  envp = g_environ_setenv (envp, "JOBWIRE_JOB_ID", job->id, TRUE);
  envp = g_environ_setenv (envp, "JOBWIRE_ATTEMPT", attempt, TRUE);
  envp = g_environ_setenv (envp, "JOBWIRE_JOB_TYPE", type->name, TRUE);

  run = g_new0 (JwJobRun, 1);
  run->refs = 1;
  run->emitter = *emitter;
  run->job_id = g_strdup (job->id);
  run->timeout_s = type->timeout_s;
  run->kill_grace_ms = type->kill_grace_ms;
  run->cancellable = g_cancellable_new ();
  run->line = g_byte_array_new ();
  run->err_tail = g_byte_array_new ();

  /* Not GSubprocess: it reaps the child on its own, and a command that
   * ends at once would take its pid, our process group id, with it. The
   * child watch below reaps it, so the pid stays ours until then. */
  if (!g_spawn_async_with_pipes_and_fds (
          type->directory, (const char *const *)type->argv,
          (const char *const *)envp,
          G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH
              | G_SPAWN_CLOEXEC_PIPES,
          child_setup, NULL, -1, -1, -1, NULL, NULL, 0, &run->pid, &in_fd,
          &out_fd, &err_fd, &local_error))
    {
      g_set_error (error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_SPAWN,
                   "cannot start %s: %s", type->argv[0], local_error->message);
      run_unref (run);
      return NULL;
    }
  run->pgid = run->pid;
  run->in = g_unix_output_stream_new (in_fd, TRUE);
  run->out = g_unix_input_stream_new (out_fd, TRUE);
  run->err = g_unix_input_stream_new (err_fd, TRUE);
  g_child_watch_add_full (G_PRIORITY_DEFAULT, run->pid, exited, run_ref (run),
                          (GDestroyNotify)run_unref);
  jw_log_job (G_LOG_LEVEL_DEBUG, job->id, "command started id=%s pid=%d",
              job->id, run->pid);

  params = json_node_init_object (json_node_alloc (), job->params);
  json = jw_json_to_string (params, &len);
  json = g_realloc (json, len + 1);
  json[len] = '\n';
  run->input = g_bytes_new_take (json, len + 1);
  g_output_stream_write_all_async (run->in, g_bytes_get_data (run->input, NULL),
                                   g_bytes_get_size (run->input),
                                   G_PRIORITY_DEFAULT, run->cancellable,
                                   stdin_written, run_ref (run));

  read_next (run, TRUE);
  read_next (run, FALSE);
  if (type->timeout_s > 0)
    run->timeout_timer =
        g_timeout_add_seconds (type->timeout_s, timeout_due, run);
  return run;
}

/* Cancel and free are the same: quiet, and the group is stopped unless
 * the command has ended. */
static void
command_free (JwJobRun *run)
{
  if (!run->over)
    {
      run->over = TRUE;
      clear_timers (run);
      g_cancellable_cancel (run->cancellable);
      if (!run->exited)
        stop_run_group (run);
    }
  run_unref (run);
}

const JwHandlerType jw_handler_command = {
  .type = NULL, /* one per configured type */
  .start = command_start,
  .cancel = command_free,
  .free = command_free,
};
