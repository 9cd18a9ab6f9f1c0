/* worker: talks to the broker for one worker process. It announces itself
 * (hello, again after every broker restart), takes one job at a time,
 * runs it through its type's handler and publishes what happens, and
 * heartbeats so that the broker notices a worker that died or hangs. */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "handler-command.h"
#include "handler.h"
#include "jw-curve.h"
#include "jw-id.h"
#include "jw-json.h"
#include "jw-log.h"
#include "jw-msg.h"
#include "jw-zmq.h"
#include "jw-zsource.h"
#include "types.h"

#define HELLO_RETRY_MS 2000
#define HELLO_RESEND_MS 200
#define SEND_HWM 100
#define JOB_MAX_DEPTH 64

typedef struct
{
  char id[JW_ID_LEN + 1];
  gint64 attempt;
  const JwHandlerType *type;
  JwJobRun *run;
} Job;

struct _JwWorker
{
  char *name;
  char *checksum_root; /* realpath of [worker] checksum-root, or NULL */
  JwTypeTable *types;  /* the types this worker serves */
  JwCurve *curve; /* CURVE of tcp:// endpoints */
  zsock_t *dealer;
  zsock_t *pub;
  guint dealer_watch;

  char *epoch; /* from the last welcome */
  gboolean awaiting_welcome;
  gboolean ready_owed; /* a ready that could not be sent yet */
  guint hello_timer;
  guint heartbeat_ms;
  guint heartbeat_timer;

  Job *job; /* the one running job, or NULL */

  /* Graceful stop (jw_worker_drain): no new jobs; the running one may
   * finish within grace_s, else it is handed back by jw_worker_free. */
  guint grace_s;
  gboolean draining;
  guint grace_timer;
  GSourceFunc drained;
  gpointer drained_data;
  Job refused; /* a job that came while stopping (id "" when none) */
};

static void start_heartbeat (JwWorker *self, guint interval_ms);

static gboolean
send_json (JwWorker *self, const char *verb, JsonObject *obj)
{
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), obj);
  g_autoptr (GError) error = NULL;
  g_autofree char *json = NULL;
  gsize len;

  json = jw_json_to_string (node, &len);
  jw_msg_add_str (msg, verb);
  jw_msg_add_data (msg, json, len);
  if (!jw_msg_send (msg, self->dealer, &error))
    {
      g_debug ("%s not sent: %s", verb, error->message);
      return FALSE;
    }
  g_debug ("sent %s", verb);
  return TRUE;
}

static void
send_ready (JwWorker *self)
{
  g_autoptr (JsonObject) obj = json_object_new ();

  /* A worker that is stopping takes no new job. */
  if (self->draining)
    return;
  self->ready_owed = !send_json (self, "ready", obj);
}

/* The worker has nothing left to finish: let the caller of jw_worker_drain
 * stop it, once. */
static void
drained (JwWorker *self)
{
  GSourceFunc func = g_steal_pointer (&self->drained);

  g_clear_handle_id (&self->grace_timer, g_source_remove);
  if (func != NULL)
    g_idle_add (func, self->drained_data);
}

static gboolean hello_unanswered (gpointer data);

/* Sends hello and expects a welcome within HELLO_RETRY_MS, else repeats. */
static void
send_hello (JwWorker *self)
{
  g_autoptr (JsonObject) obj = json_object_new ();
  JsonArray *types = jw_type_table_announce (self->types);

  json_object_set_string_member (obj, "worker", self->name);
  json_object_set_array_member (obj, "types", types);
  json_object_set_int_member (obj, "pid", getpid ());
  /* Only a hello that left makes the next welcome its answer; a welcome
   * meanwhile (an answer to a heartbeat) makes us say hello again. */
  self->awaiting_welcome = send_json (self, "hello", obj);
  /* Not sent: no broker connected yet (ZMQ_IMMEDIATE); try again soon. */
  self->hello_timer =
      g_timeout_add (self->awaiting_welcome ? HELLO_RETRY_MS : HELLO_RESEND_MS,
                     hello_unanswered, self);
}

static gboolean
hello_unanswered (gpointer data)
{
  JwWorker *self = data;

  self->hello_timer = 0;
  g_debug ("no welcome yet, saying hello again");
  send_hello (self);
  return G_SOURCE_REMOVE;
}

static void
say_hello (JwWorker *self)
{
  if (self->hello_timer != 0)
    g_source_remove (self->hello_timer);
  self->hello_timer = 0;
  send_hello (self);
}

/* ---- events ---------------------------------------------------------- */

static void
publish (JwWorker *self, Job *job, const char *type, JsonObject *extra)
{
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (JsonObject) obj =
      extra ? json_object_ref (extra) : json_object_new ();
  g_autoptr (JsonNode) node = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *json = NULL;
  gsize len;

  json_object_set_string_member (obj, "job", job->id);
  json_object_set_int_member (obj, "attempt", job->attempt);
  json_object_set_string_member (obj, "type", type);
  node = json_node_init_object (json_node_alloc (), obj);
  json = jw_json_to_string (node, &len);

  jw_msg_add_str (msg, job->id);
  jw_msg_add_data (msg, json, len);
  if (!jw_msg_send (msg, self->pub, &error))
    jw_log_job (G_LOG_LEVEL_WARNING, job->id, "event lost type=%s: %s", type,
                error->message);
}

static JsonObject *
error_member (const char *code, const char *message)
{
  JsonObject *obj = json_object_new ();
  JsonObject *err = json_object_new ();

  json_object_set_string_member (err, "code", code);
  json_object_set_string_member (err, "message", message);
  json_object_set_object_member (obj, "error", err);
  return obj;
}

/* The job is over: forget it and ask for the next. */
static void
finish_job (JwWorker *self)
{
  Job *job = g_steal_pointer (&self->job);

  if (job->run != NULL)
    job->type->free (job->run);
  g_free (job);
  if (self->draining)
    drained (self);
  else
    send_ready (self);
}

/* Whole numbers as JSON integers (4, not 4.0). */
static void
set_number (JsonObject *obj, const char *name, double value)
{
  if (value > -9.0e15 && value < 9.0e15 && value == (double)(gint64)value)
    json_object_set_int_member (obj, name, (gint64)value);
  else
    json_object_set_double_member (obj, name, value);
}

static void
emit_progress (gpointer ctx, double done, double total, double percent,
               const char *message)
{
  JwWorker *self = ctx;
  g_autoptr (JsonObject) obj = json_object_new ();
  JsonObject *progress = json_object_new ();

  set_number (progress, "done", done);
  set_number (progress, "total", total);
  set_number (progress, "percent", percent);
  if (message != NULL)
    json_object_set_string_member (progress, "message", message);
  json_object_set_object_member (obj, "progress", progress);
  publish (self, self->job, "progress", obj);
}

static void
emit_succeeded (gpointer ctx, JsonNode *result)
{
  JwWorker *self = ctx;
  g_autoptr (JsonObject) obj = json_object_new ();

  json_object_set_member (obj, "result", result);
  publish (self, self->job, "succeeded", obj);
  jw_log_job (G_LOG_LEVEL_INFO, self->job->id, "job succeeded id=%s",
              self->job->id);
  finish_job (self);
}

static void
fail_job (JwWorker *self, const char *code, const char *message)
{
  g_autoptr (JsonObject) obj = error_member (code, message);

  publish (self, self->job, "failed", obj);
  jw_log_job (G_LOG_LEVEL_INFO, self->job->id, "job failed id=%s code=%s",
              self->job->id, code);
  finish_job (self);
}

static void
emit_failed (gpointer ctx, const GError *error)
{
  fail_job (ctx, jw_handler_error_code (error), error->message);
}

/* A failure whose error object carries more than code and message. */
static void
emit_failed_with (gpointer ctx, const char *code, const char *message,
                  JsonObject *extra)
{
  JwWorker *self = ctx;
  g_autoptr (JsonObject) obj = error_member (code, message);
  JsonObject *err = jw_json_get_object (obj, "error");
  JsonObjectIter iter;
  const char *name;
  JsonNode *member;

  if (extra != NULL)
    {
      json_object_iter_init (&iter, extra);
      while (json_object_iter_next (&iter, &name, &member))
        if (!json_object_has_member (err, name))
          json_object_set_member (err, name, json_node_copy (member));
    }
  publish (self, self->job, "failed", obj);
  jw_log_job (G_LOG_LEVEL_INFO, self->job->id, "job failed id=%s code=%s",
              self->job->id, code);
  finish_job (self);
}

/* ---- broker messages ------------------------------------------------- */

static void
handle_welcome (JwWorker *self, JsonObject *obj)
{
  const char *epoch = jw_json_get_string (obj, "epoch");
  gint64 heartbeat_ms;

  if (epoch == NULL)
    {
      g_warning ("welcome without epoch dropped");
      return;
    }

  if (!self->awaiting_welcome)
    {
      /* A welcome we did not ask for: the broker does not know us, because
       * it restarted (a new epoch) or because it forgot us (it thought us
       * lost). Either way, say hello again. */
      if (g_strcmp0 (epoch, self->epoch) != 0 && self->epoch != NULL)
        g_message ("broker restarted epoch=%s, saying hello", epoch);
      else
        g_message ("the broker forgot this worker, saying hello again");
      say_hello (self);
      return;
    }

  self->awaiting_welcome = FALSE;
  if (self->hello_timer != 0)
    g_source_remove (self->hello_timer);
  self->hello_timer = 0;
  if (g_strcmp0 (epoch, self->epoch) != 0)
    g_message ("connected to the broker epoch=%s", epoch);
  g_free (self->epoch);
  self->epoch = g_strdup (epoch);

  if (jw_json_get_int (obj, "heartbeat_ms", &heartbeat_ms) && heartbeat_ms >= 50
      && heartbeat_ms <= 600000 && (guint)heartbeat_ms != self->heartbeat_ms)
    start_heartbeat (self, heartbeat_ms);

  if (self->job == NULL)
    send_ready (self);
}

static void
handle_job (JwWorker *self, JsonObject *obj)
{
  const char *id = jw_json_get_string (obj, "id");
  const char *type = jw_json_get_string (obj, "type");
  g_autoptr (GError) error = NULL;
  JwEmitter emitter = {
    .progress = emit_progress,
    .succeeded = emit_succeeded,
    .failed = emit_failed,
    .failed_with = emit_failed_with,
    .ctx = self,
  };
  JwJobInfo info;
  gpointer type_data = NULL;
  JsonObject *params;
  g_autoptr (JsonObject) empty = NULL;
  gint64 attempt = 0;

  if (id == NULL || !jw_id_valid (id, -1) || type == NULL)
    {
      g_warning ("job without a valid id or type dropped");
      return;
    }
  if (self->job != NULL)
    {
      jw_log_job (G_LOG_LEVEL_WARNING, id,
                  "job dropped id=%s: busy with job=%s", id, self->job->id);
      return;
    }
  if (self->draining)
    {
      /* It crossed our last ready; the bye that follows gives it back. */
      jw_log_job (G_LOG_LEVEL_INFO, id, "job not started id=%s: stopping", id);
      g_strlcpy (self->refused.id, id, sizeof self->refused.id);
      jw_json_get_int (obj, "attempt", &self->refused.attempt);
      return;
    }
  jw_json_get_int (obj, "attempt", &attempt);
  params = jw_json_get_object (obj, "params");
  if (params == NULL)
    params = empty = json_object_new ();

  self->job = g_new0 (Job, 1);
  g_strlcpy (self->job->id, id, sizeof self->job->id);
  self->job->attempt = attempt;
  jw_log_job (G_LOG_LEVEL_INFO, id,
              "job started id=%s type=%s attempt=%" G_GINT64_FORMAT, id, type,
              attempt);
  publish (self, self->job, "started", NULL);

  if (!jw_type_table_lookup (self->types, type, &self->job->type, &type_data))
    {
      fail_job (self, "unknown_type", "this worker does not run this type");
      return;
    }

  info.id = self->job->id;
  info.type = type;
  info.attempt = attempt;
  info.params = params;
  self->job->run =
      self->job->type->start (&info, &emitter, type_data, &error);
  if (self->job->run == NULL)
    fail_job (self, jw_handler_error_code (error), error->message);
}

static void
handle_cancel (JwWorker *self, JsonObject *obj)
{
  const char *id = jw_json_get_string (obj, "job");
  g_autoptr (JsonObject) event = NULL;
  gint64 attempt = -1;

  jw_json_get_int (obj, "attempt", &attempt);
  if (self->job == NULL || g_strcmp0 (id, self->job->id) != 0
      || attempt != self->job->attempt)
    {
      g_debug ("cancel for a job not running here dropped job=%s",
               id ? id : "?");
      return;
    }

  self->job->type->cancel (g_steal_pointer (&self->job->run));
  /* On a timeout the broker has already ended the job: stop quietly. */
  if (g_strcmp0 (jw_json_get_string (obj, "reason"), "timeout") == 0)
    jw_log_job (G_LOG_LEVEL_INFO, self->job->id,
                "job stopped id=%s: over its time limit", self->job->id);
  else
    {
      event = error_member ("cancelled", "cancelled on request");
      publish (self, self->job, "cancelled", event);
      jw_log_job (G_LOG_LEVEL_INFO, self->job->id, "job cancelled id=%s",
                  self->job->id);
    }
  finish_job (self);
}

static gboolean
dealer_readable (void *sock, gpointer data)
{
  JwWorker *self = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JwMsg) msg = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *verb = NULL;
  JsonObject *obj;
  const char *json;
  gsize len;

  msg = jw_msg_recv (sock, &error);
  if (msg == NULL)
    return G_SOURCE_CONTINUE;
  verb = jw_msg_dup_str (msg, 0);
  json = jw_msg_data (msg, 1, &len);
  if (verb == NULL || json == NULL || jw_msg_size (msg) != 2)
    {
      g_warning ("malformed broker message dropped frames=%u",
                 jw_msg_size (msg));
      return G_SOURCE_CONTINUE;
    }
  node = jw_json_parse (json, len, JOB_MAX_DEPTH, &error);
  obj = node ? jw_json_node_object (node) : NULL;
  if (obj == NULL)
    {
      g_warning ("broker message dropped verb=%s: %s", verb,
                 error ? error->message : "not an object");
      return G_SOURCE_CONTINUE;
    }
  g_debug ("received %s", verb);

  if (g_str_equal (verb, "welcome"))
    handle_welcome (self, obj);
  else if (g_str_equal (verb, "job"))
    handle_job (self, obj);
  else if (g_str_equal (verb, "cancel"))
    handle_cancel (self, obj);
  else
    g_debug ("unknown verb dropped verb=%s", verb);
  return G_SOURCE_CONTINUE;
}

/* ---- heartbeat ------------------------------------------------------- */

static gboolean
heartbeat (gpointer data)
{
  JwWorker *self = data;
  g_autoptr (JsonObject) obj = json_object_new ();

  if (self->job != NULL)
    {
      json_object_set_string_member (obj, "job", self->job->id);
      json_object_set_int_member (obj, "attempt", self->job->attempt);
    }
  else
    {
      json_object_set_null_member (obj, "job");
      json_object_set_int_member (obj, "attempt", 0);
    }
  send_json (self, "heartbeat", obj);

  if (self->ready_owed && self->job == NULL && !self->awaiting_welcome)
    send_ready (self);
  return G_SOURCE_CONTINUE;
}

static void
start_heartbeat (JwWorker *self, guint interval_ms)
{
  if (self->heartbeat_timer != 0)
    g_source_remove (self->heartbeat_timer);
  self->heartbeat_ms = interval_ms;
  self->heartbeat_timer = g_timeout_add (interval_ms, heartbeat, self);
}

/* ---- life cycle ------------------------------------------------------ */

static char *
resolve_root (const char *root)
{
  char *real = realpath (root, NULL);
  int saved = errno;

  if (real == NULL)
    {
      g_warning ("checksum root %s unusable, checksum jobs will fail: %s", root,
                 g_strerror (saved));
      return NULL;
    }
  g_info ("checksum root=%s", real);
  return real;
}

static gboolean
connect_endpoint (zsock_t *sock, JwConfig *cfg, JwCurve *curve,
                  const char *name, GError **error)
{
  g_autofree char *endpoint = jw_config_endpoint (cfg, name, error);

  if (endpoint == NULL)
    return FALSE;
  return jw_curve_connect (curve, sock, name, endpoint, error);
}

JwWorker *
jw_worker_new (JwConfig *cfg, const char *name, GError **error)
{
  g_autoptr (JwWorker) self = g_new0 (JwWorker, 1);

  self->name = g_strdup (name);
  self->checksum_root = resolve_root (
      jw_config_get_string (cfg, "worker", "checksum-root", "files"));
  self->types = jw_type_table_new (cfg, self->checksum_root, error);
  if (self->types == NULL)
    {
      g_prefix_error (error, "job types: ");
      return NULL;
    }

  /* ZMQ_IMMEDIATE: while no broker is connected, messages fail at once
   * instead of piling up for a broker that may come back much later;
   * hello is retried and a lost ready is owed until it gets through. */
  self->curve = jw_curve_new (cfg, FALSE, error);
  if (self->curve == NULL)
    return NULL;
  self->dealer = jw_zmq_socket (ZMQ_DEALER, SEND_HWM);
  zsock_set_immediate (self->dealer, 1);
  self->pub = jw_zmq_socket (ZMQ_PUB, 0);
  if (!connect_endpoint (self->dealer, cfg, self->curve, "workers", error)
      || !connect_endpoint (self->pub, cfg, self->curve, "worker-events",
                            error))
    return NULL;

  self->dealer_watch = jw_zsource_add (self->dealer, dealer_readable, self);
  start_heartbeat (
      self, CLAMP (jw_config_get_int (cfg, "worker", "heartbeat-ms", 1000), 50,
                   600000));
  self->grace_s =
      CLAMP (jw_config_get_int (cfg, "worker", "grace-s", 10), 0, 86400);
  say_hello (self);
  g_info ("worker started name=%s", self->name);
  return g_steal_pointer (&self);
}

static gboolean
grace_over (gpointer data)
{
  JwWorker *self = data;

  self->grace_timer = 0;
  if (self->job != NULL)
    jw_log_job (G_LOG_LEVEL_MESSAGE, self->job->id,
                "grace of %u s over, handing back job=%s", self->grace_s,
                self->job->id);
  drained (self);
  return G_SOURCE_REMOVE;
}

void
jw_worker_drain (JwWorker *self, GSourceFunc done, gpointer data)
{
  g_return_if_fail (!self->draining);

  self->draining = TRUE;
  self->drained = done;
  self->drained_data = data;
  if (self->job == NULL)
    {
      drained (self);
      return;
    }
  jw_log_job (G_LOG_LEVEL_MESSAGE, self->job->id,
              "stopping: finishing job=%s within %u s", self->job->id,
              self->grace_s);
  self->grace_timer = g_timeout_add_seconds (self->grace_s, grace_over, self);
}

gboolean
jw_worker_draining (JwWorker *self)
{
  return self->draining;
}

gboolean
jw_worker_connected (JwWorker *self)
{
  return self->epoch != NULL;
}

const char *
jw_worker_job_id (JwWorker *self)
{
  return self->job != NULL ? self->job->id : NULL;
}

void
jw_worker_free (JwWorker *self)
{
  g_autoptr (JsonObject) bye = NULL;

  if (self == NULL)
    return;

  bye = json_object_new ();
  if (self->job != NULL)
    {
      JsonObject *handback = json_object_new ();

      /* The broker requeues it without counting a failed attempt. */
      jw_log_job (G_LOG_LEVEL_MESSAGE, self->job->id,
                  "stopping with a job running, handing it back id=%s "
                  "attempt=%" G_GINT64_FORMAT,
                  self->job->id, self->job->attempt);
      if (self->job->run != NULL)
        self->job->type->cancel (self->job->run);
      json_object_set_string_member (handback, "job", self->job->id);
      json_object_set_int_member (handback, "attempt", self->job->attempt);
      json_object_set_object_member (bye, "handback", handback);
      g_clear_pointer (&self->job, g_free);
    }
  else if (self->refused.id[0] != '\0')
    {
      JsonObject *handback = json_object_new ();

      json_object_set_string_member (handback, "job", self->refused.id);
      json_object_set_int_member (handback, "attempt", self->refused.attempt);
      json_object_set_object_member (bye, "handback", handback);
    }
  g_clear_handle_id (&self->grace_timer, g_source_remove);
  if (self->dealer != NULL && self->dealer_watch != 0)
    {
      send_json (self, "bye", bye);
      /* Give bye a moment to leave before the socket goes. */
      zsock_set_linger (self->dealer, 200);
    }

  if (self->hello_timer != 0)
    g_source_remove (self->hello_timer);
  if (self->heartbeat_timer != 0)
    g_source_remove (self->heartbeat_timer);
  if (self->dealer_watch != 0)
    g_source_remove (self->dealer_watch);
  zsock_destroy (&self->dealer);
  zsock_destroy (&self->pub);
  g_clear_pointer (&self->curve, jw_curve_free);
  /* A cancelled command may still be within its grace time. */
  jw_command_kill_all ();
  g_clear_pointer (&self->types, jw_type_table_free);
  g_free (self->epoch);
  g_free (self->name);
  free (self->checksum_root);
  g_free (self);
}
