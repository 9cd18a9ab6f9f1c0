/* follow: reads one job's Server-Sent Events from the pusher until the
 * job ends, shows them, and reconnects with Last-Event-ID when the
 * connection drops, so that no event is lost or shown twice. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "jw-json.h"

#define MAX_LINE (1024 * 1024)
#define MAX_FAILURES 15
#define BAR_WIDTH 30
#define MESSAGE_WIDTH 40

typedef struct
{
  JwCli *cli;
  gint64 last_seq;
  char *outcome; /* the terminal event's type, once seen */
  gboolean bar_shown;
  /* The event being read. */
  GString *data;
} Follow;

static int
outcome_status (const char *type)
{
  if (g_strcmp0 (type, "succeeded") == 0)
    return JW_EXIT_OK;
  if (g_strcmp0 (type, "cancelled") == 0)
    return JW_EXIT_CANCELLED;
  return JW_EXIT_FAILED;
}

static gboolean
is_terminal (const char *type)
{
  return g_strcmp0 (type, "succeeded") == 0 || g_strcmp0 (type, "failed") == 0
         || g_strcmp0 (type, "cancelled") == 0;
}

static void
clear_bar (Follow *f)
{
  if (f->bar_shown)
    printf ("\r%*s\r", BAR_WIDTH + MESSAGE_WIDTH + 12, "");
  f->bar_shown = FALSE;
}

static double
progress_percent (JsonObject *progress)
{
  double percent, done, total;

  if (jw_json_get_double (progress, "percent", &percent))
    return CLAMP (percent, 0, 100);
  if (jw_json_get_double (progress, "done", &done)
      && jw_json_get_double (progress, "total", &total) && total > 0)
    return CLAMP (100 * done / total, 0, 100);
  return -1;
}

static void
show_bar (Follow *f, JsonObject *progress)
{
  double percent = progress_percent (progress);
  const char *message = jw_json_get_string (progress, "message");
  int filled = percent < 0 ? 0 : (int)(percent * BAR_WIDTH / 100 + 0.5);
  g_autofree char *bar = g_malloc (BAR_WIDTH + 1);
  g_autofree char *shown = NULL;

  memset (bar, '#', filled);
  memset (bar + filled, '-', BAR_WIDTH - filled);
  bar[BAR_WIDTH] = '\0';
  if (message != NULL && g_utf8_strlen (message, -1) > MESSAGE_WIDTH)
    shown = g_utf8_substring (message, 0, MESSAGE_WIDTH);
  else
    shown = g_strdup (message ? message : "");
  clear_bar (f);
  if (percent >= 0)
    printf ("[%s] %3.0f%% %s", bar, percent, shown);
  else
    printf ("[%s]      %s", bar, shown);
  f->bar_shown = TRUE;
  fflush (stdout);
}

/* The line of an event for people, or NULL for none. */
static char *
describe_event (const char *type, JsonObject *ev)
{
  JsonObject *progress = jw_json_get_object (ev, "progress");
  JsonObject *error = jw_json_get_object (ev, "error");
  JsonNode *result = json_object_get_member (ev, "result");
  gint64 attempt = 0;

  jw_json_get_int (ev, "attempt", &attempt);
  if (g_str_equal (type, "progress") && progress != NULL)
    {
      double percent = progress_percent (progress);
      const char *message = jw_json_get_string (progress, "message");

      return g_strdup_printf ("progress %.0f%%%s%s", MAX (percent, 0),
                              message ? " " : "", message ? message : "");
    }
  if (g_str_equal (type, "started"))
    return g_strdup_printf ("started attempt %" G_GINT64_FORMAT, attempt);
  if (g_str_equal (type, "succeeded"))
    {
      g_autofree char *json =
          result ? jw_json_to_string (result, NULL) : g_strdup ("null");

      return g_strdup_printf ("succeeded %s", json);
    }
  if (error != NULL)
    return g_strdup_printf ("%s %s: %s", type,
                            jw_json_get_string (error, "code") ?: "?",
                            jw_json_get_string (error, "message") ?: "");
  return g_strdup (type);
}

static void
show_event (Follow *f, const char *type, JsonObject *ev, const char *data)
{
  JsonObject *progress = jw_json_get_object (ev, "progress");
  g_autofree char *line = NULL;

  if (f->cli->json)
    {
      printf ("%s\n", data);
      fflush (stdout);
      return;
    }
  if (f->cli->tty && g_str_equal (type, "progress") && progress != NULL)
    {
      show_bar (f, progress);
      return;
    }
  line = describe_event (type, ev);
  /* On a terminal the bar stays above the final line. */
  if (f->bar_shown)
    printf ("\n");
  f->bar_shown = FALSE;
  printf ("%s\n", line);
  fflush (stdout);
}

/* One complete event: id, data. */
static void
dispatch (Follow *f)
{
  g_autoptr (JsonNode) node = NULL;
  JsonObject *ev;
  const char *type;
  gint64 seq;

  if (f->data->len == 0)
    return;
  node = jw_json_parse (f->data->str, f->data->len, 64, NULL);
  ev = jw_json_node_object (node);
  type = ev ? jw_json_get_string (ev, "type") : NULL;
  if (type == NULL || !jw_json_get_int (ev, "seq", &seq))
    {
      g_printerr ("jobwire: event ignored, not an event object\n");
      return;
    }
  /* Resumed streams start after last_seq; anything older is a repeat. */
  if (seq <= f->last_seq)
    return;
  f->last_seq = seq;
  show_event (f, type, ev, f->data->str);
  if (is_terminal (type))
    f->outcome = g_strdup (type);
}

/* Reads events until the stream ends or the job's terminal event. FALSE
 * with error when the connection failed. */
static gboolean
read_events (Follow *f, GInputStream *stream, gboolean *got_events,
             GError **error)
{
  g_autoptr (GDataInputStream) in = g_data_input_stream_new (stream);

  g_data_input_stream_set_newline_type (in, G_DATA_STREAM_NEWLINE_TYPE_ANY);
  while (f->outcome == NULL)
    {
      gsize len;
      g_autofree char *line =
          g_data_input_stream_read_line (in, &len, NULL, error);

      if (line == NULL)
        return *error == NULL;
      if (len > MAX_LINE || !g_utf8_validate (line, len, NULL))
        continue;
      if (len == 0)
        {
          gint64 before = f->last_seq;

          dispatch (f);
          *got_events = *got_events || f->last_seq > before;
          g_string_truncate (f->data, 0);
          continue;
        }
      if (g_str_has_prefix (line, "data:"))
        {
          const char *v = line + 5;

          if (*v == ' ')
            v++;
          if (f->data->len > 0)
            g_string_append_c (f->data, '\n');
          g_string_append (f->data, v);
        }
    }
  return TRUE;
}

/* The outcome of a job from the api, when the pusher had nothing more. */
static int
outcome_from_api (Follow *f, const char *id)
{
  g_autofree char *url = g_strconcat (f->cli->api, "/jobs/", id, NULL);
  g_autoptr (JsonNode) body = NULL;
  g_autoptr (GError) error = NULL;
  const char *state;
  guint status;

  if (!jw_cli_http (f->cli, "GET", url, NULL, &status, &body, &error))
    return jw_cli_unreachable (f->cli->api, error);
  if (status != 200)
    return jw_cli_refused (f->cli, status, body);
  state = jw_json_get_string (jw_json_node_object (body), "state");
  if (!is_terminal (state))
    {
      g_printerr ("jobwire: the pusher ended the stream of a job that is "
                  "%s\n",
                  state ? state : "unknown");
      return JW_EXIT_REFUSED;
    }
  if (!f->cli->json)
    printf ("%s\n", state);
  return outcome_status (state);
}

int
jw_cli_follow (JwCli *cli, const char *id, const char *events_url)
{
  Follow f = { cli, 0, NULL, FALSE, g_string_new (NULL) };
  guint failures = 0;
  int ret = -1;

  while (ret < 0)
    {
      g_autoptr (SoupMessage) msg = soup_message_new ("GET", events_url);
      g_autoptr (GInputStream) stream = NULL;
      g_autoptr (GError) error = NULL;
      gboolean got_events = FALSE;
      guint status;

      if (msg == NULL)
        {
          g_printerr ("jobwire: not a URL: %s\n", events_url);
          ret = JW_EXIT_USAGE;
          break;
        }
      soup_message_headers_replace (soup_message_get_request_headers (msg),
                                    "Accept", "text/event-stream");
      if (f.last_seq > 0)
        {
          g_autofree char *last =
              g_strdup_printf ("%" G_GINT64_FORMAT, f.last_seq);

          soup_message_headers_replace (soup_message_get_request_headers (msg),
                                        "Last-Event-ID", last);
        }

      stream = soup_session_send (cli->session, msg, NULL, &error);
      status = stream ? soup_message_get_status (msg) : 0;
      if (status == 204)
        ret = outcome_from_api (&f, id);
      else if (status == 200)
        {
          g_string_truncate (f.data, 0);
          if (read_events (&f, stream, &got_events, &error) && f.outcome)
            ret = outcome_status (f.outcome);
        }
      else if (status >= 400 && status < 500)
        {
          g_autofree char *text =
              g_strdup_printf ("{\"error\":{\"code\":\"http_%u\","
                               "\"message\":\"the pusher answered %u\"}}",
                               status, status);
          g_autoptr (JsonNode) body =
              jw_json_parse (text, strlen (text), 8, NULL);

          ret = jw_cli_refused (cli, status, body);
        }
      if (ret >= 0)
        break;

      /* Dropped, refused for now (5xx) or unreachable: resume after the
       * last seq shown, with a growing pause. */
      failures = got_events ? 1 : failures + 1;
      if (failures > MAX_FAILURES)
        {
          if (error == NULL)
            g_set_error (&error, G_IO_ERROR, G_IO_ERROR_FAILED,
                         "the pusher answered %u", status);
          ret = jw_cli_unreachable (events_url, error);
          break;
        }
      g_debug ("event stream dropped after seq=%" G_GINT64_FORMAT ": %s",
               f.last_seq, error ? error->message : "closed");
      g_usleep (MIN (100 * (1u << MIN (failures, 5)), 2000)
                * G_TIME_SPAN_MILLISECOND);
    }

  clear_bar (&f);
  g_string_free (f.data, TRUE);
  g_free (f.outcome);
  fflush (stdout);
  return ret;
}
