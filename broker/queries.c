/* queries: answers api and pusher instances on the queries ROUTER with a
 * job's snapshot, its history after a seq, a list of jobs, or the broker's
 * health. Every answer is one message back to the asking peer. */
#include "broker-private.h"

#include <string.h>

#include "jw-json.h"
#include "jw-log.h"

#define EVENTS_LIMIT_DEFAULT 1000
#define EVENTS_LIMIT_MAX 1000
#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 1000

/* The envelope of the request: routing id, and an empty delimiter when the
 * peer sent one (a REQ socket), so that the answer can repeat it. */
typedef struct
{
  GBytes *rid;
  GBytes *delimiter;
  char *req_id; /* the request's "rid" member, or NULL */
} Envelope;

/* Envelope, "reply", and the JSON object opened with rid and ok. */
static void
start_reply (JwMsg *msg, Envelope *env, JsonBuilder *b, gboolean ok)
{
  jw_msg_add_bytes (msg, env->rid);
  if (env->delimiter)
    jw_msg_add_bytes (msg, env->delimiter);
  jw_msg_add_str (msg, "reply");

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "rid");
  if (env->req_id)
    json_builder_add_string_value (b, env->req_id);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "ok");
  json_builder_add_boolean_value (b, ok);
}

static void
add_json (JwMsg *msg, JsonBuilder *b)
{
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GBytes) bytes = NULL;

  json_builder_end_object (b);
  root = json_builder_get_root (b);
  bytes = jw_json_to_bytes (root);
  jw_msg_add_bytes (msg, bytes);
}

static void
send_reply (JwBroker *self, JwMsg *msg)
{
  JwMsg *out = jw_msg_new ();
  GBytes *frame;

  /* The answer may tell records not yet committed: it leaves with them.
   * Its frames move to a message that broker_send owns. A peer that is
   * gone or does not read loses its answer, nobody else. */
  while ((frame = jw_msg_pop (msg)) != NULL)
    {
      jw_msg_add_bytes (out, frame);
      g_bytes_unref (frame);
    }
  broker_send (self, self->queries, out);
}

static void
send_error (JwBroker *self, Envelope *env, const char *code,
            const char *message)
{
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (JsonBuilder) b = json_builder_new ();

  start_reply (msg, env, b, FALSE);
  json_builder_set_member_name (b, "error");
  json_builder_add_value (b, broker_error_node (code, message));
  add_json (msg, b);
  send_reply (self, msg);
}

/* The job named by the request's "job" member, or NULL after answering
 * with an error. */
static JwJob *
requested_job (JwBroker *self, Envelope *env, JsonObject *req)
{
  const char *id = jw_json_get_string (req, "job");
  ActiveJob *aj;
  JwJob *job;

  if (id == NULL || !jw_id_valid (id, -1))
    {
      send_error (self, env, "bad_request", "job must be a job id");
      return NULL;
    }
  aj = broker_lookup_active (self, id);
  job = aj ? jw_job_copy (aj->job) : jw_ledger_get (self->ledger, id, NULL);
  if (job == NULL)
    send_error (self, env, "job_not_found", "no job with this id");
  return job;
}

/* An optional integer member within [min, max], else def. FALSE when it is
 * present but not an integer in range. */
static gboolean
get_bounded (JsonObject *req, const char *member, gint64 min, gint64 max,
             gint64 def, gint64 *out)
{
  JsonNode *node = json_object_get_member (req, member);

  *out = def;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!jw_json_get_int (req, member, out))
    return FALSE;
  return *out >= min && *out <= max;
}

static void
query_get (JwBroker *self, Envelope *env, JsonObject *req)
{
  g_autoptr (JwJob) job = requested_job (self, env, req);
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (JsonBuilder) b = json_builder_new ();

  if (job == NULL)
    return;
  start_reply (msg, env, b, TRUE);
  json_builder_set_member_name (b, "job");
  json_builder_add_value (b, jw_job_to_node (job));
  add_json (msg, b);
  send_reply (self, msg);
}

static void
query_events (JwBroker *self, Envelope *env, JsonObject *req)
{
  g_autoptr (JwJob) job = NULL;
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (GPtrArray) events = NULL;
  g_autoptr (GError) error = NULL;
  gint64 after, limit;
  gboolean more = FALSE;
  guint i;

  if (!get_bounded (req, "after", 0, G_MAXINT64, 0, &after)
      || !get_bounded (req, "limit", 1, G_MAXINT64, EVENTS_LIMIT_DEFAULT,
                       &limit))
    {
      send_error (self, env, "bad_request",
                  "after must be an integer >= 0 and limit one >= 1");
      return;
    }
  limit = MIN (limit, EVENTS_LIMIT_MAX);

  job = requested_job (self, env, req);
  if (job == NULL)
    return;
  events = jw_ledger_events (self->ledger, job->id, after, (guint)limit, &more,
                             &error);
  if (events == NULL)
    {
      send_error (self, env, "job_not_found", error->message);
      return;
    }

  start_reply (msg, env, b, TRUE);
  json_builder_set_member_name (b, "job");
  json_builder_add_value (b, jw_job_to_node (job));
  json_builder_set_member_name (b, "count");
  json_builder_add_int_value (b, events->len);
  json_builder_set_member_name (b, "more");
  json_builder_add_boolean_value (b, more);
  add_json (msg, b);
  for (i = 0; i < events->len; i++)
    {
      JwEvent *e = g_ptr_array_index (events, i);

      jw_msg_add_printf (msg, "%" G_GINT64_FORMAT, e->seq);
      jw_msg_add_str (msg, e->type);
      jw_msg_add_bytes (msg, e->json);
    }
  send_reply (self, msg);
}

static void
query_list (JwBroker *self, Envelope *env, JsonObject *req)
{
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (GPtrArray) jobs = NULL;
  g_autoptr (GError) error = NULL;
  const char *state_str = jw_json_get_string (req, "state");
  const char *before = jw_json_get_string (req, "before");
  JwState state;
  gint64 limit;
  guint i;

  if ((json_object_has_member (req, "state") && state_str == NULL
       && !JSON_NODE_HOLDS_NULL (json_object_get_member (req, "state")))
      || (state_str != NULL && !jw_state_from_string (state_str, &state)))
    {
      send_error (self, env, "bad_request", "unknown state");
      return;
    }
  if (before != NULL && !jw_id_valid (before, -1))
    {
      send_error (self, env, "bad_request", "before must be a job id");
      return;
    }
  if (!get_bounded (req, "limit", 1, G_MAXINT64, LIST_LIMIT_DEFAULT, &limit))
    {
      send_error (self, env, "bad_request", "limit must be an integer >= 1");
      return;
    }
  limit = MIN (limit, LIST_LIMIT_MAX);

  jobs = jw_ledger_list (self->ledger, state_str ? &state : NULL, before,
                         (guint)limit, &error);
  if (jobs == NULL)
    {
      g_warning ("list failed error=%s", error->message);
      send_error (self, env, "internal", "the ledger failed");
      return;
    }

  start_reply (msg, env, b, TRUE);
  json_builder_set_member_name (b, "jobs");
  json_builder_begin_array (b);
  for (i = 0; i < jobs->len; i++)
    {
      JwJob *job = g_ptr_array_index (jobs, i);
      ActiveJob *aj = broker_lookup_active (self, job->id);

      /* The live snapshot is the newest. */
      json_builder_add_value (b, jw_job_to_node (aj ? aj->job : job));
    }
  json_builder_end_array (b);
  add_json (msg, b);
  send_reply (self, msg);
}

static void
query_types (JwBroker *self, Envelope *env)
{
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (JsonBuilder) b = json_builder_new ();

  start_reply (msg, env, b, TRUE);
  json_builder_set_member_name (b, "types");
  json_builder_add_value (b, broker_types_to_node (self));
  add_json (msg, b);
  send_reply (self, msg);
}

static void
query_ping (JwBroker *self, Envelope *env)
{
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (JsonBuilder) b = json_builder_new ();
  guint queued = self->queue.length;

  start_reply (msg, env, b, TRUE);
  json_builder_set_member_name (b, "epoch");
  json_builder_add_string_value (b, self->epoch);
  json_builder_set_member_name (b, "workers");
  json_builder_add_int_value (b, g_hash_table_size (self->worker_table));
  json_builder_set_member_name (b, "queued");
  json_builder_add_int_value (b, queued);
  json_builder_set_member_name (b, "running");
  json_builder_add_int_value (b, g_hash_table_size (self->active) - queued);
  json_builder_set_member_name (b, "stale_events");
  json_builder_add_int_value (b, self->stale_events);
  json_builder_set_member_name (b, "events_recorded");
  json_builder_add_int_value (b, self->events_recorded);
  json_builder_set_member_name (b, "zap_refused");
  json_builder_add_int_value (b, jw_curve_refused (self->curve));
  json_builder_set_member_name (b, "finished");
  json_builder_begin_object (b);
  for (JwState st = JW_STATE_SUCCEEDED; st <= JW_STATE_CANCELLED; st++)
    {
      json_builder_set_member_name (b, jw_state_to_string (st));
      json_builder_add_int_value (b, self->finished[st]);
    }
  json_builder_end_object (b);
  add_json (msg, b);
  send_reply (self, msg);
}

void
jw_broker_counts (JwBroker *self, guint *queued, guint *running,
                  guint *workers)
{
  *queued = self->queue.length;
  *running = g_hash_table_size (self->active) - self->queue.length;
  *workers = g_hash_table_size (self->worker_table);
}

void
broker_handle_query (JwBroker *self, JwMsg *msg)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *verb = NULL;
  Envelope env = {
    NULL,
  };
  JsonObject *req;
  const char *job;
  gsize len;

  env.rid = jw_msg_pop (msg);
  if (jw_msg_data (msg, 0, &len) != NULL && len == 0)
    env.delimiter = jw_msg_pop (msg);
  if (env.rid == NULL)
    goto out;

  verb = jw_msg_dup_str (msg, 0);
  node = broker_parse_frame (msg, 1, &error);
  req = node ? jw_json_node_object (node) : NULL;
  if (req != NULL)
    env.req_id = g_strdup (jw_json_get_string (req, "rid"));
  job = req ? jw_json_get_string (req, "job") : NULL;
  if (job != NULL && jw_id_valid (job, -1))
    jw_log_job (G_LOG_LEVEL_DEBUG, job, "query verb=%s job=%s rid=%s",
                verb ? verb : "?", job, env.req_id ? env.req_id : "-");
  else
    g_debug ("query verb=%s rid=%s", verb ? verb : "?",
             env.req_id ? env.req_id : "-");

  if (verb == NULL || req == NULL)
    send_error (self, &env, "bad_request",
                error ? error->message : "a query is [verb][json]");
  else if (g_str_equal (verb, "get"))
    query_get (self, &env, req);
  else if (g_str_equal (verb, "events"))
    query_events (self, &env, req);
  else if (g_str_equal (verb, "list"))
    query_list (self, &env, req);
  else if (g_str_equal (verb, "ping"))
    query_ping (self, &env);
  else if (g_str_equal (verb, "types"))
    query_types (self, &env);
  else
    send_error (self, &env, "bad_request", "unknown query");

out:
  g_clear_pointer (&env.rid, g_bytes_unref);
  g_clear_pointer (&env.delimiter, g_bytes_unref);
  g_free (env.req_id);
}
