/* worker-events: what workers report about their jobs. Each report is
 * checked against the job's live state, cleaned, given its seq and time,
 * recorded, and republished; a report that does not fit is dropped. */
#include "broker-private.h"

#include <string.h>

#include "jw-json.h"
#include "jw-log.h"

/* s cut to at most max bytes, at a character boundary. */
static char *
truncate_text (const char *s, gsize max)
{
  const char *end;

  if (!g_utf8_validate (s, -1, &end))
    max = MIN (max, (gsize)(end - s));
  if (strlen (s) <= max)
    return g_strdup (s);
  end = g_utf8_find_prev_char (s, s + max + 1);
  return g_strndup (s, end ? (gsize)(end - s) : 0);
}

static gboolean
get_number (JsonObject *obj, const char *member, JsonNode **out)
{
  JsonNode *node = json_object_get_member (obj, member);
  GType t = node ? json_node_get_value_type (node) : G_TYPE_INVALID;

  if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE)
    return FALSE;
  *out = node;
  return TRUE;
}

/* The progress object as recorded: done and total when numbers, percent
 * clamped to 0..100 (from done/total when absent), message as a string of
 * at most BROKER_MAX_TEXT bytes. Other members are dropped. */
static JsonNode *
clean_progress (JsonObject *in)
{
  JsonObject *out = json_object_new ();
  JsonNode *node;
  JsonNode *done = NULL, *total = NULL, *percent = NULL;
  const char *message = in ? jw_json_get_string (in, "message") : NULL;
  double p = -1;

  if (in != NULL)
    {
      if (get_number (in, "done", &done))
        json_object_set_member (out, "done", json_node_copy (done));
      if (get_number (in, "total", &total))
        json_object_set_member (out, "total", json_node_copy (total));
      if (get_number (in, "percent", &percent))
        p = json_node_get_double (percent);
    }
  if (percent == NULL && done != NULL && total != NULL
      && json_node_get_double (total) > 0)
    p = 100.0 * json_node_get_double (done) / json_node_get_double (total);
  if (percent != NULL || p >= 0)
    {
      p = CLAMP (p, 0.0, 100.0);
      /* Whole percentages stay integers on the wire. */
      if (p == (double)(gint64)p)
        json_object_set_int_member (out, "percent", (gint64)p);
      else
        json_object_set_double_member (out, "percent",
                                       (double)(gint64)(p * 100) / 100);
    }
  if (message != NULL)
    {
      g_autofree char *m = truncate_text (message, BROKER_MAX_TEXT);
      json_object_set_string_member (out, "message", m);
    }
  node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, out);
  return node;
}

/* Details a worker adds to an error beside code and message (such as
 * exit_code or signal of a command): numbers and booleans, a few. */
#define MAX_ERROR_DETAILS 8

static void
keep_error_details (JsonObject *out, JsonObject *in)
{
  JsonObjectIter iter;
  const char *name;
  JsonNode *value;
  guint kept = 0;

  if (in == NULL)
    return;
  json_object_iter_init (&iter, in);
  while (json_object_iter_next (&iter, &name, &value)
         && kept < MAX_ERROR_DETAILS)
    {
      GType t = JSON_NODE_HOLDS_VALUE (value)
                    ? json_node_get_value_type (value)
                    : G_TYPE_INVALID;

      if (json_object_has_member (out, name) || strlen (name) > 64
          || (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE && t != G_TYPE_BOOLEAN))
        continue;
      json_object_set_member (out, name, json_node_copy (value));
      kept++;
    }
}

/* {code, message} from what the worker sent, with defaults, and its
 * numeric details. */
static JsonNode *
clean_error (JsonObject *in)
{
  const char *code = in ? jw_json_get_string (in, "code") : NULL;
  const char *message = in ? jw_json_get_string (in, "message") : NULL;
  g_autofree char *c = NULL, *m = NULL;
  JsonNode *node;

  if (code == NULL || *code == '\0')
    code = "failed";
  if (message == NULL)
    message = "the job failed";
  c = truncate_text (code, 64);
  m = truncate_text (message, BROKER_MAX_TEXT);
  node = broker_error_node (c, m);
  keep_error_details (json_node_get_object (node), in);
  return node;
}

/* Applies one checked report of type to next, the job's new snapshot, and
 * records it. */
static gboolean
apply_report (JwBroker *self, JwJob *next, const char *type, JsonObject *report,
              GError **error)
{
  gint64 now = jw_now_ms ();

  if (g_str_equal (type, "started"))
    {
      next->state = JW_STATE_RUNNING;
      next->started_ms = now;
      return broker_record_event (self, next, type, error, NULL);
    }
  if (g_str_equal (type, "progress"))
    {
      g_clear_pointer (&next->progress, json_node_unref);
      next->progress = clean_progress (jw_json_get_object (report, "progress"));
      return broker_record_event (self, next, type, error, "progress",
                                  json_node_copy (next->progress), NULL);
    }

  next->finished_ms = now;
  if (g_str_equal (type, "succeeded"))
    {
      JsonNode *result = json_object_get_member (report, "result");

      next->state = JW_STATE_SUCCEEDED;
      next->result = result ? json_node_copy (result)
                            : json_node_init_null (json_node_alloc ());
      return broker_record_event (self, next, type, error, "result",
                                  json_node_copy (next->result), NULL);
    }

  g_clear_pointer (&next->error, json_node_unref);
  if (g_str_equal (type, "failed"))
    {
      next->state = JW_STATE_FAILED;
      next->error = clean_error (jw_json_get_object (report, "error"));
    }
  else
    {
      next->state = JW_STATE_CANCELLED;
      next->error = broker_error_node ("cancelled", "cancelled while running");
    }
  return broker_record_event (self, next, type, error, "error",
                              json_node_copy (next->error), NULL);
}

/* The active job that report may change, or NULL (with the reason logged)
 * when it must be dropped. */
static ActiveJob *
check_report (JwBroker *self, const char *id, const char *type,
              JsonObject *report)
{
  const char *job = jw_json_get_string (report, "job");
  ActiveJob *aj;
  gint64 attempt;

  if (job != NULL && g_strcmp0 (job, id) != 0)
    {
      jw_log_job (G_LOG_LEVEL_WARNING, id,
                  "worker event dropped: topic and job differ job=%s", id);
      return NULL;
    }
  if (type == NULL || !jw_event_type_valid (type)
      || g_str_equal (type, "queued") || g_str_equal (type, "retrying"))
    {
      jw_log_job (G_LOG_LEVEL_WARNING, id,
                  "worker event dropped: bad type job=%s", id);
      return NULL;
    }
  if (!jw_json_get_int (report, "attempt", &attempt))
    {
      jw_log_job (G_LOG_LEVEL_WARNING, id,
                  "worker event dropped: no attempt job=%s", id);
      return NULL;
    }

  /* Stale: the job ended, or the broker gave up on this attempt (its
   * worker was lost, it timed out, it was handed back). Counted, never
   * recorded: it changes nothing and gets no seq. */
  aj = broker_lookup_active (self, id);
  if (aj == NULL || aj->worker == NULL || attempt != aj->job->attempt)
    {
      self->stale_events++;
      jw_log_job (G_LOG_LEVEL_INFO, id,
                  "stale worker event dropped job=%s type=%s "
                  "attempt=%" G_GINT64_FORMAT " current=%" G_GINT64_FORMAT
                  " stale-events=%" G_GUINT64_FORMAT,
                  id, type, attempt, aj ? aj->job->attempt : -1,
                  self->stale_events);
      return NULL;
    }
  if (g_str_equal (type, "started") && aj->job->state == JW_STATE_RUNNING)
    {
      jw_log_job (G_LOG_LEVEL_DEBUG, id,
                  "worker event dropped: already started job=%s", id);
      return NULL;
    }
  return aj;
}

void
broker_handle_worker_event (JwBroker *self, JwMsg *msg)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *id = NULL;
  JsonObject *report;
  const char *type;
  ActiveJob *aj;
  JwJob *next;

  id = jw_msg_dup_str (msg, 0);
  if (id == NULL || !jw_id_valid (id, -1))
    {
      g_warning ("worker event dropped: topic is not a job id");
      return;
    }
  node = broker_parse_frame (msg, 1, &error);
  if (node == NULL)
    {
      jw_log_job (G_LOG_LEVEL_WARNING, id,
                  "worker event dropped job=%s error=%s", id, error->message);
      return;
    }
  report = jw_json_node_object (node);
  type = jw_json_get_string (report, "type");
  jw_log_job (G_LOG_LEVEL_DEBUG, id, "worker event job=%s type=%s", id,
              type ? type : "?");

  aj = check_report (self, id, type, report);
  if (aj == NULL)
    return;

  next = jw_job_copy (aj->job);
  if (!apply_report (self, next, type, report, &error))
    {
      jw_log_job (G_LOG_LEVEL_WARNING, id,
                  "recording worker event failed job=%s type=%s error=%s", id,
                  type, error->message);
      jw_job_free (next);
      return;
    }

  if (jw_state_is_terminal (next->state))
    broker_finish_job (self, aj, next);
  else
    {
      jw_job_free (aj->job);
      aj->job = next;
    }
}
