/* worker: talks to the broker for one worker process. It announces itself
 * (hello, again after every broker restart), takes one job at a time,
 * runs it through its type's handler and publishes what happens, and
 * heartbeats so that the broker notices a worker that died or hangs. */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "handler.h"
#include "jw-id.h"
#include "jw-json.h"
#include "jw-log.h"
#include "jw-msg.h"
#include "jw-zmq.h"
#include "jw-zsource.h"

#define HELLO_RETRY_MS 2000
#define HELLO_RESEND_MS 200
#define SEND_HWM 100
#define JOB_MAX_DEPTH 64

static const JwHandlerType *const handler_types[] = {
  &jw_handler_sleep,
  &jw_handler_checksum,
};

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

  self->ready_owed = !send_json (self, "ready", obj);
}

static gboolean hello_unanswered (gpointer data);

/* Sends hello and expects a welcome within HELLO_RETRY_MS, else repeats. */
static void
send_hello (JwWorker *self)
{
  g_autoptr (JsonObject) obj = json_object_new ();
  JsonArray *types = json_array_new ();
  guint i;

  for (i = 0; i < G_N_ELEMENTS (handler_types); i++)
    json_array_add_string_element (types, handler_types[i]->type);
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
      /* A welcome we did not ask for: the broker does not know us, most
       * likely because it restarted. */
      if (g_strcmp0 (epoch, self->epoch) != 0)
        {
          if (self->epoch != NULL)
            g_message ("broker restarted epoch=%s, saying hello", epoch);
          say_hello (self);
        }
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
  JwEmitter emitter = { emit_progress, emit_succeeded, emit_failed, self };
  JsonObject *params;
  g_autoptr (JsonObject) empty = NULL;
  gint64 attempt = 0;
  guint i;

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

  for (i = 0; i < G_N_ELEMENTS (handler_types); i++)
    if (g_str_equal (handler_types[i]->type, type))
      self->job->type = handler_types[i];
  if (self->job->type == NULL)
    {
      fail_job (self, "unknown_type", "this worker does not run this type");
      return;
    }

  self->job->run = self->job->type->start (
      params, &emitter,
      self->job->type == &jw_handler_checksum ? self->checksum_root : NULL,
      &error);
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
  event = error_member ("cancelled", "cancelled on request");
  publish (self, self->job, "cancelled", event);
  jw_log_job (G_LOG_LEVEL_INFO, self->job->id, "job cancelled id=%s",
              self->job->id);
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
connect_endpoint (zsock_t *sock, JwConfig *cfg, const char *name,
                  GError **error)
{
  g_autofree char *endpoint = jw_config_endpoint (cfg, name, error);

  if (endpoint == NULL)
    return FALSE;
  return jw_zmq_connect (sock, endpoint, error);
}

JwWorker *
jw_worker_new (JwConfig *cfg, const char *name, GError **error)
{
  g_autoptr (JwWorker) self = g_new0 (JwWorker, 1);

  self->name = g_strdup (name);
  self->checksum_root = resolve_root (
      jw_config_get_string (cfg, "worker", "checksum-root", "files"));

  /* ZMQ_IMMEDIATE: while no broker is connected, messages fail at once
   * instead of piling up for a broker that may come back much later;
   * hello is retried and a lost ready is owed until it gets through. */
  self->dealer = jw_zmq_socket (ZMQ_DEALER, SEND_HWM);
  zsock_set_immediate (self->dealer, 1);
  self->pub = jw_zmq_socket (ZMQ_PUB, 0);
  if (!connect_endpoint (self->dealer, cfg, "workers", error)
      || !connect_endpoint (self->pub, cfg, "worker-events", error))
    return NULL;

  self->dealer_watch = jw_zsource_add (self->dealer, dealer_readable, self);
  start_heartbeat (
      self, CLAMP (jw_config_get_int (cfg, "worker", "heartbeat-ms", 1000), 50,
                   600000));
  say_hello (self);
  g_info ("worker started name=%s", self->name);
  return g_steal_pointer (&self);
}

void
jw_worker_free (JwWorker *self)
{
  g_autoptr (JsonObject) bye = NULL;

  if (self == NULL)
    return;

  if (self->job != NULL)
    {
      jw_log_job (G_LOG_LEVEL_INFO, self->job->id,
                  "stopping with a job running id=%s", self->job->id);
      if (self->job->run != NULL)
        self->job->type->cancel (self->job->run);
      g_clear_pointer (&self->job, g_free);
    }
  if (self->dealer != NULL && self->dealer_watch != 0)
    {
      bye = json_object_new ();
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
  g_free (self->epoch);
  g_free (self->name);
  free (self->checksum_root);
  g_free (self);
}
