/* broker: sockets and life cycle of the broker, the commands from api
 * instances (submit, cancel, ping), subscriptions seen on the events XPUB,
 * and the one place where events are recorded and published. */
#include "broker-private.h"

#include <stdarg.h>
#include <string.h>

#include "jw-json.h"
#include "jw-log.h"
#include "jw-zmq.h"
#include "jw-zsource.h"

#define EVENTS_HWM 100000
#define ROUTER_HWM 10000
#define COMMANDS_HWM 10000

static gboolean on_subscription (void *sock, gpointer user_data);
static gboolean on_heartbeat (gpointer user_data);

static void
active_job_free (gpointer data)
{
  ActiveJob *aj = data;

  jw_job_free (aj->job);
  g_clear_pointer (&aj->worker, g_bytes_unref);
  g_free (aj);
}

static zsock_t *
open_socket (JwBroker *self, const char *name, int type, int hwm,
             char **endpoint_out, GError **error)
{
  g_autofree char *endpoint = jw_config_endpoint (self->config, name, error);
  zsock_t *sock;

  if (endpoint == NULL)
    return NULL;

  sock = jw_zmq_socket (type, hwm);
  if (type == ZMQ_ROUTER)
    zsock_set_router_mandatory (sock, 1);
  else if (type == ZMQ_XPUB)
    zsock_set_xpub_verbose (sock, 1);
  else if (type == ZMQ_SUB)
    zsock_set_subscribe (sock, "");

  if (!jw_curve_bind (self->curve, sock, name, endpoint, error))
    {
      zsock_destroy (&sock);
      return NULL;
    }
  *endpoint_out = g_steal_pointer (&endpoint);
  return sock;
}

/* The sources of the four sockets whose messages carry requests: each
 * receives one message and hands it to its handler. */
static gboolean
receive (void *sock, JwBroker *self, void (*handle) (JwBroker *, JwMsg *))
{
  g_autoptr (JwMsg) msg = jw_msg_recv (sock, NULL);

  if (msg != NULL)
    handle (self, msg);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_command (void *sock, gpointer self)
{
  return receive (sock, self, broker_handle_command);
}

static gboolean
on_worker (void *sock, gpointer self)
{
  return receive (sock, self, broker_handle_worker);
}

static gboolean
on_worker_event (void *sock, gpointer self)
{
  return receive (sock, self, broker_handle_worker_event);
}

static gboolean
on_query (void *sock, gpointer self)
{
  return receive (sock, self, broker_handle_query);
}

JwBroker *
jw_broker_new (JwConfig *config, JwLedger *ledger, GError **error)
{
  g_autoptr (JwBroker) self = g_new0 (JwBroker, 1);
  g_autofree char *ep_commands = NULL, *ep_workers = NULL;
  g_autofree char *ep_wevents = NULL, *ep_events = NULL, *ep_queries = NULL;

  g_return_val_if_fail (config != NULL && ledger != NULL, NULL);

  self->ledger = ledger;
  self->config = config;
  jw_id_new (self->epoch);
  self->heartbeat_ms =
      jw_config_get_int (config, "broker", "heartbeat-ms", 1000);
  self->heartbeat_ms = CLAMP (self->heartbeat_ms, 100, 600000);
  /* Keys are copies: an active job's snapshot is replaced on every event. */
  self->active =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, active_job_free);
  g_queue_init (&self->queue);
  self->worker_table = g_hash_table_new_full (g_bytes_hash, g_bytes_equal, NULL,
                                              (GDestroyNotify)worker_free);

  self->curve = jw_curve_new (config, TRUE, error);
  if (self->curve == NULL)
    return NULL;
  self->commands = open_socket (self, "commands", ZMQ_PULL, COMMANDS_HWM,
                                &ep_commands, error);
  if (self->commands == NULL)
    return NULL;
  self->workers = open_socket (self, "workers", ZMQ_ROUTER, ROUTER_HWM,
                               &ep_workers, error);
  if (self->workers == NULL)
    return NULL;
  self->worker_events = open_socket (self, "worker-events", ZMQ_SUB,
                                     EVENTS_HWM, &ep_wevents, error);
  if (self->worker_events == NULL)
    return NULL;
  self->events =
      open_socket (self, "events", ZMQ_XPUB, EVENTS_HWM, &ep_events, error);
  if (self->events == NULL)
    return NULL;
  self->queries = open_socket (self, "queries", ZMQ_ROUTER, ROUTER_HWM,
                               &ep_queries, error);
  if (self->queries == NULL)
    return NULL;
  if (!broker_types_load (self, error) || !broker_durable_init (self, error))
    return NULL;

  self->source_ids[0] = jw_zsource_add (self->commands, on_command, self);
  self->source_ids[1] = jw_zsource_add (self->workers, on_worker, self);
  self->source_ids[2] =
      jw_zsource_add (self->worker_events, on_worker_event, self);
  self->source_ids[3] = jw_zsource_add (self->events, on_subscription, self);
  self->source_ids[4] = jw_zsource_add (self->queries, on_query, self);
  self->heartbeat_id = g_timeout_add_seconds (1, on_heartbeat, self);
  broker_liveness_init (self);

  g_info ("listening epoch=%s commands=%s workers=%s worker-events=%s "
          "events=%s queries=%s",
          self->epoch, ep_commands, ep_workers, ep_wevents, ep_events,
          ep_queries);
  return g_steal_pointer (&self);
}

void
jw_broker_free (JwBroker *self)
{
  guint i;

  if (self == NULL)
    return;

  for (i = 0; i < G_N_ELEMENTS (self->source_ids); i++)
    g_clear_handle_id (&self->source_ids[i], g_source_remove);
  g_clear_handle_id (&self->heartbeat_id, g_source_remove);
  broker_liveness_stop (self);
  broker_durable_stop (self);

  zsock_destroy (&self->commands);
  zsock_destroy (&self->workers);
  zsock_destroy (&self->worker_events);
  zsock_destroy (&self->events);
  zsock_destroy (&self->queries);
  g_clear_pointer (&self->curve, jw_curve_free);

  g_queue_clear (&self->queue);
  g_clear_pointer (&self->active, g_hash_table_unref);
  g_clear_pointer (&self->worker_table, g_hash_table_unref);
  g_clear_pointer (&self->types, g_hash_table_unref);
  g_clear_pointer (&self->ledger, jw_ledger_free);
  g_free (self);
}

const char *
jw_broker_get_epoch (JwBroker *self)
{
  return self->epoch;
}

ActiveJob *
broker_lookup_active (JwBroker *self, const char *id)
{
  return g_hash_table_lookup (self->active, id);
}

JsonNode *
broker_error_node (const char *code, const char *message)
{
  JsonObject *obj = json_object_new ();
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  json_object_set_string_member (obj, "code", code);
  json_object_set_string_member (obj, "message", message);
  json_node_take_object (node, obj);
  return node;
}

/* Frame i of msg parsed as a JSON object, bounded in size and depth. */
JsonNode *
broker_parse_frame (JwMsg *msg, guint i, GError **error)
{
  g_autoptr (JsonNode) node = NULL;
  const char *data;
  gsize len;

  data = jw_msg_data (msg, i, &len);
  if (data == NULL)
    {
      g_set_error (error, JW_JSON_ERROR, JW_JSON_ERROR_SYNTAX,
                   "frame %u is missing", i);
      return NULL;
    }
  if (len > BROKER_MAX_JSON)
    {
      g_set_error (error, JW_JSON_ERROR, JW_JSON_ERROR_TOO_LARGE,
                   "frame of %" G_GSIZE_FORMAT " bytes is too large", len);
      return NULL;
    }
  node = jw_json_parse (data, len, BROKER_MAX_DEPTH, error);
  if (node == NULL)
    return NULL;
  if (jw_json_node_object (node) == NULL)
    {
      g_set_error (error, JW_JSON_ERROR, JW_JSON_ERROR_SYNTAX,
                   "not a JSON object");
      return NULL;
    }
  return g_steal_pointer (&node);
}

/* Publishes four frames on the events XPUB, once what they tell is
 * committed. At the high-water mark XPUB drops; subscribers see the gap in
 * seq and ask for history. */
static void
publish (JwBroker *self, const char *topic, gint64 seq, const char *type,
         GBytes *json)
{
  g_autoptr (JwMsg) msg = jw_msg_new ();

  jw_msg_add_str (msg, topic);
  jw_msg_add_printf (msg, "%" G_GINT64_FORMAT, seq);
  jw_msg_add_str (msg, type);
  jw_msg_add_bytes (msg, json);
  broker_send (self, self->events, g_steal_pointer (&msg));
}

/* The event time of ms as jw_time_format_ms writes it, into buf: the date
 * and time of day are formatted once per second, not once per event. */
static const char *
event_time (gint64 ms, char buf[32])
{
  static gint64 cached_sec = G_MININT64;
  static char prefix[32];

  if (ms / 1000 != cached_sec)
    {
      g_autofree char *full = jw_time_format_ms (ms - ms % 1000);

      /* "YYYY-MM-DDTHH:MM:SS", without ".mmmZ". */
      g_strlcpy (prefix, full, MIN (sizeof prefix, strlen (full) - 4));
      cached_sec = ms / 1000;
    }
  g_snprintf (buf, 32, "%s.%03dZ", prefix, (int)(ms % 1000));
  return buf;
}

/* Gives job its next seq, builds the event in the fixed member order (job,
 * seq, type, time, attempt, then the (name, JsonNode *) pairs that follow
 * error, which are consumed), records it with job as the new snapshot, and
 * publishes it. On failure job->seq is left as it was. */
gboolean
broker_record_event (JwBroker *self, JwJob *job, const char *type,
                     GError **error, ...)
{
  /* Written directly rather than through a JsonBuilder and a node tree:
   * this runs for every event. The id is a checked job id, the type a
   * known event type and the member names literals: none needs escaping. */
  GString *out = g_string_sized_new (256);
  g_autoptr (GBytes) json = NULL;
  char time[32];
  const char *name;
  va_list ap;

  job->seq++;

  g_string_append_printf (
      out,
      "{\"job\":\"%s\",\"seq\":%" G_GINT64_FORMAT
      ",\"type\":\"%s\",\"time\":\"%s\",\"attempt\":%" G_GINT64_FORMAT,
      job->id, job->seq, type, event_time (jw_now_ms (), time), job->attempt);
  va_start (ap, error);
  while ((name = va_arg (ap, const char *)) != NULL)
    {
      g_autoptr (JsonNode) value = va_arg (ap, JsonNode *);
      gsize len;
      g_autofree char *text = jw_json_to_string (value, &len);

      g_string_append_printf (out, ",\"%s\":", name);
      g_string_append_len (out, text, len);
    }
  va_end (ap);
  g_string_append_c (out, '}');

  json = g_string_free_to_bytes (out);
  if (jw_ledger_append (self->ledger, job, type, json, error) == 0)
    {
      job->seq--;
      return FALSE;
    }

  self->events_recorded++;
  jw_log_job (G_LOG_LEVEL_DEBUG, job->id,
              "recorded job=%s seq=%" G_GINT64_FORMAT " type=%s", job->id,
              job->seq, type);
  publish (self, job->id, job->seq, type, json);
  return TRUE;
}

/* Lets a job go once its terminal event is recorded: out of the queue, off
 * its worker, out of the active table. Frees aj and next, the recorded
 * snapshot, which takes the place of aj's. */
void
broker_finish_job (JwBroker *self, ActiveJob *aj, JwJob *next)
{
  g_autofree char *error_code = NULL;

  if (aj->queue_link != NULL)
    g_queue_delete_link (&self->queue, aj->queue_link);
  aj->queue_link = NULL;
  if (aj->worker != NULL)
    {
      Worker *worker = broker_lookup_worker (self, aj->worker);
      if (worker != NULL && g_strcmp0 (worker->job_id, next->id) == 0)
        g_clear_pointer (&worker->job_id, g_free);
    }

  if (next->error != NULL)
    error_code = g_strdup (
        jw_json_get_string (jw_json_node_object (next->error), "code"));
  jw_log_job (G_LOG_LEVEL_INFO, next->id,
              "job finished id=%s state=%s attempt=%" G_GINT64_FORMAT
              " seq=%" G_GINT64_FORMAT "%s%s",
              next->id, jw_state_to_string (next->state), next->attempt,
              next->seq, error_code ? " code=" : "",
              error_code ? error_code : "");

  if ((guint)next->state < G_N_ELEMENTS (self->finished))
    self->finished[next->state]++;
  jw_job_free (aj->job);
  aj->job = next;
  g_hash_table_remove (self->active, next->id);
}

/* Answers an api instance on its topic ~api.<api>. */
static void
reply (JwBroker *self, const char *api, const char *rid, const JwJob *job,
       const char *code, const char *message)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GBytes) json = NULL;
  g_autofree char *topic = g_strconcat ("~api.", api, NULL);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "rid");
  if (rid)
    json_builder_add_string_value (b, rid);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "ok");
  json_builder_add_boolean_value (b, code == NULL);
  if (code != NULL)
    {
      json_builder_set_member_name (b, "error");
      json_builder_add_value (b, broker_error_node (code, message));
    }
  else if (job != NULL)
    {
      json_builder_set_member_name (b, "job");
      json_builder_add_value (b, jw_job_to_node (job));
    }
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  json = jw_json_to_bytes (root);
  publish (self, topic, 0, "reply", json);
}

/* The snapshot of id: the live one when active, else the ledger's. */
static JwJob *
find_job (JwBroker *self, const char *id)
{
  ActiveJob *aj = broker_lookup_active (self, id);

  if (aj != NULL)
    return jw_job_copy (aj->job);
  return jw_ledger_get (self->ledger, id, NULL);
}

static void
handle_submit (JwBroker *self, JsonObject *req, const char *api,
               const char *rid)
{
  JsonObject *spec = jw_json_get_object (req, "job");
  const char *id = spec ? jw_json_get_string (spec, "id") : NULL;
  const char *type = spec ? jw_json_get_string (spec, "type") : NULL;
  const char *key = jw_json_get_string (req, "idempotency_key");
  JsonNode *params = spec ? json_object_get_member (spec, "params") : NULL;
  g_autoptr (JwJob) existing = NULL;
  g_autoptr (JwJob) job = NULL;
  g_autoptr (GError) error = NULL;
  gboolean by_key = FALSE;
  ActiveJob *aj;

  if (id == NULL || !jw_id_valid (id, -1) || type == NULL || *type == '\0'
      || strlen (type) > 128 || params == NULL
      || !JSON_NODE_HOLDS_OBJECT (params))
    {
      reply (self, api, rid, NULL, "bad_request",
             "submit needs job.id (a job id), job.type (a string) and "
             "job.params (an object)");
      return;
    }
  if (key != NULL && (*key == '\0' || strlen (key) > 256))
    key = NULL;

  /* A retry: the same id, or the same idempotency key, with the same body
   * gets the job that exists; another body is refused. The key index is
   * the ledger's, so that it holds across restarts. */
  existing = find_job (self, id);
  if (existing == NULL && key != NULL)
    {
      g_autoptr (JwJob) known = jw_ledger_lookup_key (self->ledger, key, NULL);

      if (known != NULL)
        {
          existing = find_job (self, known->id);
          by_key = TRUE;
        }
    }
  if (existing != NULL)
    {
      if (jw_job_same_body (existing, type, params))
        reply (self, api, rid, existing, NULL, NULL);
      else if (by_key)
        reply (self, api, rid, NULL, "idempotency_key_reused",
               "an earlier job with this idempotency key has another body");
      else
        reply (self, api, rid, NULL, "duplicate_id",
               "a job with this id has another body");
      return;
    }

  job = jw_job_new (id, type, params);
  job->created_ms = jw_now_ms ();
  job->idempotency_key = g_strdup (key);
  if (!jw_ledger_put (self->ledger, job, &error)
      || !broker_record_event (self, job, "queued", &error, "job_type",
                               json_node_init_string (json_node_alloc (), type),
                               NULL))
    {
      jw_log_job (G_LOG_LEVEL_WARNING, id,
                  "recording job failed id=%s error=%s", id, error->message);
      reply (self, api, rid, NULL, "internal", "the job was not recorded");
      return;
    }
  jw_log_job (G_LOG_LEVEL_INFO, id, "job accepted id=%s type=%s api=%s", id,
              type, api);
  reply (self, api, rid, job, NULL, NULL);

  aj = g_new0 (ActiveJob, 1);
  aj->job = g_steal_pointer (&job);
  g_hash_table_insert (self->active, g_strdup (aj->job->id), aj);
  g_queue_push_tail (&self->queue, aj);
  aj->queue_link = self->queue.tail;
  broker_dispatch (self);
}

static void
handle_cancel (JwBroker *self, JsonObject *req, const char *api,
               const char *rid)
{
  const char *id = jw_json_get_string (req, "job");
  g_autoptr (GError) error = NULL;
  g_autoptr (JwJob) finished = NULL;
  JwJob *next;
  ActiveJob *aj;

  if (id == NULL || !jw_id_valid (id, -1))
    {
      reply (self, api, rid, NULL, "bad_request", "cancel needs job (an id)");
      return;
    }

  aj = broker_lookup_active (self, id);
  if (aj == NULL)
    {
      finished = jw_ledger_get (self->ledger, id, NULL);
      if (finished == NULL)
        reply (self, api, rid, NULL, "job_not_found", "no job with this id");
      else
        reply (self, api, rid, NULL, "job_finished", "the job has finished");
      return;
    }

  next = jw_job_copy (aj->job);
  if (aj->worker == NULL)
    {
      next->state = JW_STATE_CANCELLED;
      next->finished_ms = jw_now_ms ();
      next->error =
          broker_error_node ("cancelled", "cancelled before it started");
      if (!broker_record_event (self, next, "cancelled", &error, "error",
                                json_node_copy (next->error), NULL))
        {
          jw_log_job (G_LOG_LEVEL_WARNING, id,
                      "recording cancel failed id=%s error=%s", id,
                      error->message);
          jw_job_free (next);
          reply (self, api, rid, NULL, "internal",
                 "the cancel was not recorded");
          return;
        }
      reply (self, api, rid, next, NULL, NULL);
      broker_finish_job (self, aj, next);
      return;
    }

  /* Running: the worker is told, and the job ends when it says so. */
  next->cancel_requested = TRUE;
  if (!jw_ledger_update (self->ledger, next, &error))
    jw_log_job (G_LOG_LEVEL_WARNING, id,
                "recording cancel request failed id=%s error=%s", id,
                error->message);
  jw_job_free (aj->job);
  aj->job = next;
  jw_log_job (G_LOG_LEVEL_INFO, id, "cancel requested id=%s", id);
  reply (self, api, rid, next, NULL, NULL);
  broker_cancel_running (self, aj);
}

void
broker_handle_command (JwBroker *self, JwMsg *msg)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *verb = NULL;
  JsonObject *req;
  const char *api, *rid;

  verb = jw_msg_dup_str (msg, 0);
  node = broker_parse_frame (msg, 1, &error);
  if (verb == NULL || node == NULL)
    {
      g_warning ("bad command dropped verb=%s error=%s", verb ? verb : "?",
                 error ? error->message : "no verb");
      return;
    }
  req = jw_json_node_object (node);
  api = jw_json_get_string (req, "api");
  rid = jw_json_get_string (req, "rid");
  if (api == NULL || *api == '\0' || strlen (api) > 128)
    {
      g_warning ("command without api dropped verb=%s", verb);
      return;
    }
  g_debug ("command verb=%s api=%s rid=%s", verb, api, rid ? rid : "-");

  if (rid == NULL)
    reply (self, api, NULL, NULL, "bad_request", "a command needs rid");
  else if (g_str_equal (verb, "submit"))
    handle_submit (self, req, api, rid);
  else if (g_str_equal (verb, "cancel"))
    handle_cancel (self, req, api, rid);
  else if (g_str_equal (verb, "ping"))
    reply (self, api, rid, NULL, NULL, NULL);
  else
    reply (self, api, rid, NULL, "bad_request", "unknown command");
}

/* XPUB hands up each subscription as one frame: 1 or 0, then the topic.
 * Every subscribe gets a marker on its topic, so that the subscriber knows
 * from when on it receives everything published. */
static gboolean
on_subscription (void *sock, gpointer user_data)
{
  JwBroker *self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JwMsg) msg = jw_msg_recv (sock, &error);
  g_autoptr (GBytes) empty = NULL;
  g_autofree char *topic = NULL;
  const char *data;
  gsize len;

  if (msg == NULL)
    return G_SOURCE_CONTINUE;

  data = jw_msg_data (msg, 0, &len);
  if (data == NULL || len < 1 || data[0] != 1)
    return G_SOURCE_CONTINUE;
  if (memchr (data + 1, '\0', len - 1) != NULL)
    return G_SOURCE_CONTINUE;

  topic = g_strndup (data + 1, len - 1);
  if (jw_id_valid (topic, -1))
    jw_log_job (G_LOG_LEVEL_DEBUG, topic, "subscribe topic=%s", topic);
  else
    g_debug ("subscribe topic=%s", topic);
  empty = g_bytes_new_static ("{}", 2);
  publish (self, topic, 0, "subscribed", empty);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_heartbeat (gpointer user_data)
{
  JwBroker *self = user_data;
  char *json = g_strdup_printf ("{\"epoch\":\"%s\"}", self->epoch);
  g_autoptr (GBytes) bytes = g_bytes_new_take (json, strlen (json));

  publish (self, "~hb", 0, "heartbeat", bytes);
  return G_SOURCE_CONTINUE;
}
