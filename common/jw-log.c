/* jw-log: where log lines go. The journal when stderr is connected to it
 * (so that JOB_ID and the priority arrive as fields), else one line per
 * message on stderr. */
#include "jw-log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static gboolean use_journal;

static const char *
level_name (GLogLevelFlags level)
{
  if (level & G_LOG_LEVEL_ERROR)
    return "error";
  if (level & G_LOG_LEVEL_CRITICAL)
    return "critical";
  if (level & G_LOG_LEVEL_WARNING)
    return "warning";
  if (level & G_LOG_LEVEL_MESSAGE)
    return "message";
  if (level & G_LOG_LEVEL_INFO)
    return "info";
  return "debug";
}

static GLogWriterOutput
write_stderr (GLogLevelFlags level, const GLogField *fields, gsize n_fields)
{
  const char *domain = NULL, *message = NULL, *job = NULL;
  g_autofree char *now = NULL;
  g_autoptr (GDateTime) dt = g_date_time_new_now_utc ();

  for (gsize i = 0; i < n_fields; i++)
    {
      if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0)
        domain = fields[i].value;
      else if (strcmp (fields[i].key, "MESSAGE") == 0)
        message = fields[i].value;
      else if (strcmp (fields[i].key, "JOB_ID") == 0)
        job = fields[i].value;
    }
  now = g_date_time_format (dt, "%H:%M:%S.%f");
  now[12] = '\0'; /* milliseconds are enough */
  fprintf (
      stderr, "%s %s[%d] %s: %s%s%s\n", now, domain ? domain : "jobwire",
      (int)getpid (), level_name (level), message ? message : "",
      job && (message == NULL || strstr (message, job) == NULL) ? " job=" : "",
      job && (message == NULL || strstr (message, job) == NULL) ? job : "");
  fflush (stderr);
  return G_LOG_WRITER_HANDLED;
}

static GLogWriterOutput
writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
        gpointer user_data)
{
  const char *domain = NULL;

  for (gsize i = 0; i < n_fields; i++)
    if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0)
      domain = fields[i].value;
  /* Honours G_MESSAGES_DEBUG for debug and info; lets the rest through. */
  if (g_log_writer_default_would_drop (level, domain))
    return G_LOG_WRITER_HANDLED;
  if (use_journal
      && g_log_writer_journald (level, fields, n_fields, user_data)
             == G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;
  return write_stderr (level, fields, n_fields);
}

void
jw_log_init (void)
{
  use_journal = g_log_writer_is_journald (fileno (stderr));
  g_log_set_writer_func (writer, NULL, NULL);
}
