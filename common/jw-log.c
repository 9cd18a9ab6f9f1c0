/* jw-log: where log lines go. The journal when stderr is connected to it
 * (so that JOB_ID and the priority arrive as fields), else one line per
 * message on stderr. JOBWIRE_LOG=json writes each record as one JSON object
 * with all its fields on stderr instead (what the journal would get), and
 * JOBWIRE_LOG=text forces plain lines. */
#include "jw-log.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static gboolean use_journal;
static gboolean use_json;

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

/* One line: {"PRIORITY":"6","GLIB_DOMAIN":"…","MESSAGE":"…","JOB_ID":"…"}.
 * Binary fields (length >= 0) are written when they are UTF-8 text. */
static GLogWriterOutput
write_json (GLogLevelFlags level, const GLogField *fields, gsize n_fields)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *line = NULL;

  json_builder_begin_object (b);
  for (gsize i = 0; i < n_fields; i++)
    {
      g_autofree char *value = NULL;

      if (fields[i].length < 0)
        value = g_strdup (fields[i].value);
      else
        value = g_strndup (fields[i].value, fields[i].length);
      if (!g_utf8_validate (value, -1, NULL))
        continue;
      json_builder_set_member_name (b, fields[i].key);
      json_builder_add_string_value (b, value);
    }
  json_builder_set_member_name (b, "TIME_USEC");
  json_builder_add_int_value (b, g_get_real_time ());
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  line = json_generator_to_data (gen, NULL);
  fprintf (stderr, "%s\n", line);
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
  if (use_json)
    return write_json (level, fields, n_fields);
  if (use_journal
      && g_log_writer_journald (level, fields, n_fields, user_data)
             == G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;
  return write_stderr (level, fields, n_fields);
}

void
jw_log_init (void)
{
  const char *mode = g_getenv ("JOBWIRE_LOG");

  use_json = g_strcmp0 (mode, "json") == 0;
  use_journal = g_strcmp0 (mode, "text") != 0 && !use_json
                && g_log_writer_is_journald (fileno (stderr));
  g_log_set_writer_func (writer, NULL, NULL);
}
