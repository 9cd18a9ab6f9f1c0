/* workers: the broker's table of workers (who they are, which types they
 * serve, whether they are idle) and dispatch, which hands the oldest waiting
 * job to the worker idle the longest among those serving its type. */
#include "broker-private.h"

#include <string.h>

#include "jw-json.h"
#include "jw-log.h"

#define MAX_NAME 128
#define MAX_TYPES 64

void
worker_free (Worker *worker)
{
  if (worker == NULL)
    return;
  g_bytes_unref (worker->rid);
  g_free (worker->name);
  g_strfreev (worker->types);
  g_free (worker->job_id);
  g_free (worker);
}

Worker *
broker_lookup_worker (JwBroker *self, GBytes *rid)
{
  return rid ? g_hash_table_lookup (self->worker_table, rid) : NULL;
}

void
broker_forget_worker (JwBroker *self, Worker *worker)
{
  if (worker->job_id != NULL)
    /* TODO: retry or fail its job once worker liveness is tracked; until
     * then the job stays assigned to the vanished worker. */
    jw_log_job (G_LOG_LEVEL_WARNING, worker->job_id,
                "worker gone while holding a job worker=%s job=%s",
                worker->name, worker->job_id);
  g_info ("worker forgotten worker=%s", worker->name);
  g_hash_table_remove (self->worker_table, worker->rid);
}

static gboolean
send_to (JwBroker *self, GBytes *rid, const char *verb, JsonNode *json,
         GError **error)
{
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (GBytes) bytes = jw_json_to_bytes (json);

  jw_msg_add_bytes (msg, rid);
  jw_msg_add_str (msg, verb);
  jw_msg_add_bytes (msg, bytes);
  return jw_msg_send (msg, self->workers, error);
}

gboolean
broker_send_worker (JwBroker *self, Worker *worker, const char *verb,
                    JsonNode *json)
{
  g_autoptr (GError) error = NULL;

  if (send_to (self, worker->rid, verb, json, &error))
    return TRUE;

  /* ROUTER_MANDATORY makes a vanished peer an error (EHOSTUNREACH); a full
   * pipe is EAGAIN. Either way this worker cannot take messages now. */
  g_warning ("send to worker failed worker=%s verb=%s error=%s", worker->name,
             verb, error->message);
  broker_forget_worker (self, worker);
  return FALSE;
}

static void
send_welcome (JwBroker *self, GBytes *rid)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) json = NULL;
  g_autoptr (GError) error = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "epoch");
  json_builder_add_string_value (b, self->epoch);
  json_builder_set_member_name (b, "heartbeat_ms");
  json_builder_add_int_value (b, self->heartbeat_ms);
  json_builder_end_object (b);
  json = json_builder_get_root (b);
  if (!send_to (self, rid, "welcome", json, &error))
    g_debug ("welcome not sent error=%s", error->message);
}

static gboolean
worker_serves (Worker *worker, const char *type)
{
  return g_strv_contains ((const char *const *)worker->types, type);
}

/* The worker idle the longest among those serving type, or NULL. */
static Worker *
pick_worker (JwBroker *self, const char *type)
{
  GHashTableIter iter;
  Worker *worker, *best = NULL;

  g_hash_table_iter_init (&iter, self->worker_table);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&worker))
    if (worker->idle && worker_serves (worker, type)
        && (best == NULL || worker->idle_order < best->idle_order))
      best = worker;
  return best;
}

static guint
count_idle (JwBroker *self)
{
  GHashTableIter iter;
  Worker *worker;
  guint n = 0;

  g_hash_table_iter_init (&iter, self->worker_table);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&worker))
    n += worker->idle;
  return n;
}

/* Sends aj's job to worker as its next attempt. On success the job leaves
 * the queue and the worker is busy with it. */
static gboolean
hand_over (JwBroker *self, ActiveJob *aj, Worker *worker)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) json = NULL;
  g_autoptr (GError) error = NULL;
  JwJob *job = aj->job;
  gint64 attempt = job->attempt + 1;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "id");
  json_builder_add_string_value (b, job->id);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, job->type);
  json_builder_set_member_name (b, "params");
  json_builder_add_value (b, json_node_copy (job->params));
  json_builder_set_member_name (b, "attempt");
  json_builder_add_int_value (b, attempt);
  json_builder_end_object (b);
  json = json_builder_get_root (b);

  if (!broker_send_worker (self, worker, "job", json))
    return FALSE;

  job->attempt = attempt;
  if (!jw_ledger_update (self->ledger, job, &error))
    g_warning ("recording dispatch failed id=%s error=%s", job->id,
               error->message);
  g_queue_delete_link (&self->queue, aj->queue_link);
  aj->queue_link = NULL;
  g_clear_pointer (&aj->worker, g_bytes_unref);
  aj->worker = g_bytes_ref (worker->rid);
  worker->idle = FALSE;
  g_free (worker->job_id);
  worker->job_id = g_strdup (job->id);

  jw_log_job (G_LOG_LEVEL_INFO, job->id,
              "job dispatched id=%s type=%s attempt=%" G_GINT64_FORMAT
              " worker=%s",
              job->id, job->type, attempt, worker->name);
  return TRUE;
}

/* TODO: this walks the whole queue while idle workers remain; a queue per
 * type would avoid rescanning jobs that no idle worker serves. */
void
broker_dispatch (JwBroker *self)
{
  GList *l, *next;
  guint idle = count_idle (self);

  for (l = self->queue.head; l != NULL && idle > 0; l = next)
    {
      ActiveJob *aj = l->data;
      Worker *worker;

      next = l->next;
      /* A worker that fails a send is forgotten: try the next one. */
      while ((worker = pick_worker (self, aj->job->type)) != NULL)
        {
          gboolean sent = hand_over (self, aj, worker);

          idle--;
          if (sent)
            break;
        }
    }
}

static void
handle_hello (JwBroker *self, GBytes *rid, JsonObject *body)
{
  const char *name = jw_json_get_string (body, "worker");
  JsonArray *types = jw_json_get_array (body, "types");
  g_autoptr (GStrvBuilder) tb = g_strv_builder_new ();
  Worker *worker;
  gint64 pid = 0;
  guint i, n;

  n = types ? json_array_get_length (types) : 0;
  if (name == NULL || *name == '\0' || strlen (name) > MAX_NAME || n == 0
      || n > MAX_TYPES)
    {
      g_warning ("bad hello dropped: needs worker and types");
      return;
    }
  for (i = 0; i < n; i++)
    {
      JsonNode *t = json_array_get_element (types, i);
      if (json_node_get_value_type (t) != G_TYPE_STRING
          || *json_node_get_string (t) == '\0')
        {
          g_warning ("bad hello dropped worker=%s: types must be strings",
                     name);
          return;
        }
      g_strv_builder_add (tb, json_node_get_string (t));
    }
  jw_json_get_int (body, "pid", &pid);

  worker = broker_lookup_worker (self, rid);
  if (worker == NULL)
    {
      worker = g_new0 (Worker, 1);
      worker->rid = g_bytes_ref (rid);
      g_hash_table_insert (self->worker_table, worker->rid, worker);
    }
  g_free (worker->name);
  worker->name = g_strdup (name);
  g_strfreev (worker->types);
  worker->types = g_strv_builder_end (tb);
  worker->pid = pid;
  worker->last_seen_ms = jw_now_ms ();
  worker->idle = FALSE;

  g_info ("worker hello worker=%s pid=%" G_GINT64_FORMAT " types=%u", name, pid,
          n);
  send_welcome (self, rid);
}

gboolean
broker_on_worker (void *sock, gpointer user_data)
{
  JwBroker *self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JwMsg) msg = jw_msg_recv (sock, &error);
  g_autoptr (GBytes) rid = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *verb = NULL;
  Worker *worker;

  if (msg == NULL)
    return G_SOURCE_CONTINUE;

  rid = jw_msg_pop (msg);
  verb = jw_msg_dup_str (msg, 0);
  node = broker_parse_frame (msg, 1, &error);
  if (rid == NULL || verb == NULL || node == NULL)
    {
      g_warning ("bad worker message dropped verb=%s error=%s",
                 verb ? verb : "?", error ? error->message : "no verb");
      return G_SOURCE_CONTINUE;
    }

  worker = broker_lookup_worker (self, rid);
  g_debug ("worker message verb=%s worker=%s", verb,
           worker ? worker->name : "(unknown)");

  if (g_str_equal (verb, "hello"))
    {
      handle_hello (self, rid, jw_json_node_object (node));
      return G_SOURCE_CONTINUE;
    }
  if (worker == NULL)
    {
      /* A worker from before a broker restart: the new epoch in a welcome
       * makes it say hello again. */
      if (!g_str_equal (verb, "bye"))
        send_welcome (self, rid);
      return G_SOURCE_CONTINUE;
    }

  worker->last_seen_ms = jw_now_ms ();
  if (g_str_equal (verb, "ready"))
    {
      if (!worker->idle)
        {
          worker->idle = TRUE;
          worker->idle_order = ++self->idle_counter;
        }
      broker_dispatch (self);
    }
  else if (g_str_equal (verb, "heartbeat"))
    ;
  else if (g_str_equal (verb, "bye"))
    broker_forget_worker (self, worker);
  else
    g_debug ("unknown worker verb dropped verb=%s worker=%s", verb,
             worker->name);
  return G_SOURCE_CONTINUE;
}
