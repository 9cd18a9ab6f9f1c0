/* workers: the broker's table of workers (who they are, which types they
 * serve, whether they are idle), dispatch, which hands the oldest waiting
 * job to the worker idle the longest among those serving its type, and
 * liveness: a worker that stops heartbeating, cannot be reached or leaves
 * loses its job, which is retried up to its type's max-attempts; a running
 * job past its time limit fails with `timeout`; a cancel its worker does
 * not confirm ends the job anyway. */
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

/* ---- limits ---------------------------------------------------------- */

static const TypeLimits *
type_limits (JwBroker *self, const char *type)
{
  g_autofree char *section = NULL;
  TypeLimits *limits = g_hash_table_lookup (self->type_limits, type);

  if (limits != NULL)
    return limits;
  section = g_strconcat ("type.", type, NULL);
  limits = g_new0 (TypeLimits, 1);
  limits->max_attempts =
      CLAMP (jw_config_get_int (self->config, section, "max-attempts",
                                self->max_attempts),
             1, 1000);
  limits->timeout_s =
      CLAMP (jw_config_get_int (self->config, section, "timeout-s",
                                self->default_timeout_s),
             0, G_MAXINT32);
  g_hash_table_insert (self->type_limits, g_strdup (type), limits);
  return limits;
}

/* How many of the job's attempts were handed back by a worker that
 * stopped: the `retrying` events with code worker_stopped in its history.
 * Read from the ledger so that it holds across broker restarts. */
static gint64
count_handbacks (JwBroker *self, const JwJob *job)
{
  gint64 after = 0, n = 0;
  gboolean more = TRUE;

  while (more)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GPtrArray) events =
          jw_ledger_events (self->ledger, job->id, after, 1000, &more, &error);

      if (events == NULL)
        {
          jw_log_job (G_LOG_LEVEL_WARNING, job->id,
                      "reading history failed id=%s error=%s", job->id,
                      error->message);
          break;
        }
      if (events->len == 0)
        break;
      for (guint i = 0; i < events->len; i++)
        {
          JwEvent *ev = g_ptr_array_index (events, i);
          g_autoptr (JsonNode) node = NULL;
          JsonObject *err;

          after = ev->seq;
          if (!g_str_equal (ev->type, "retrying"))
            continue;
          node = jw_json_parse_bytes (ev->json, BROKER_MAX_DEPTH, NULL);
          err = node ? jw_json_get_object (jw_json_node_object (node), "error")
                     : NULL;
          if (err != NULL
              && g_strcmp0 (jw_json_get_string (err, "code"), "worker_stopped")
                     == 0)
            n++;
        }
    }
  return n;
}

/* ---- ending and retrying jobs ---------------------------------------- */

/* Records the terminal event of state (failed or cancelled) with error
 * {code, message} and lets the job go. */
static gboolean
end_job (JwBroker *self, ActiveJob *aj, JwState state, const char *code,
         const char *message)
{
  g_autoptr (GError) error = NULL;
  const char *type = jw_state_to_string (state);
  JwJob *next = jw_job_copy (aj->job);

  next->state = state;
  next->finished_ms = jw_now_ms ();
  g_clear_pointer (&next->error, json_node_unref);
  next->error = broker_error_node (code, message);
  if (!broker_record_event (self, next, type, &error, "error",
                            json_node_copy (next->error), NULL))
    {
      jw_log_job (G_LOG_LEVEL_WARNING, next->id,
                  "recording %s failed id=%s error=%s", type, next->id,
                  error->message);
      jw_job_free (next);
      return FALSE;
    }
  broker_finish_job (self, aj, next);
  return TRUE;
}

/* Records `retrying` for the attempt given up on and puts the job back at
 * the head of the queue, where it waits for its next attempt. */
static gboolean
requeue_job (JwBroker *self, ActiveJob *aj, const char *code,
             const char *message)
{
  g_autoptr (GError) error = NULL;
  JwJob *next = jw_job_copy (aj->job);

  next->state = JW_STATE_QUEUED;
  g_clear_pointer (&next->progress, json_node_unref);
  if (!broker_record_event (
          self, next, "retrying", &error, "error",
          broker_error_node (code, message), "next_attempt",
          json_node_init_int (json_node_alloc (), next->attempt + 1), NULL))
    {
      jw_log_job (G_LOG_LEVEL_WARNING, next->id,
                  "recording retrying failed id=%s error=%s", next->id,
                  error->message);
      jw_job_free (next);
      return FALSE;
    }
  jw_log_job (G_LOG_LEVEL_INFO, next->id,
              "job requeued id=%s attempt=%" G_GINT64_FORMAT " code=%s",
              next->id, next->attempt, code);

  jw_job_free (aj->job);
  aj->job = next;
  g_clear_pointer (&aj->worker, g_bytes_unref);
  aj->deadline_us = aj->cancel_deadline_us = aj->mismatch_since_us = 0;
  g_queue_push_head (&self->queue, aj);
  aj->queue_link = self->queue.head;
  broker_schedule_dispatch (self);
  return TRUE;
}

/* The running attempt of aj is lost (its worker died, hangs, left or was
 * unreachable). A job being cancelled ends `cancelled`; else it is retried,
 * unless counted and its type's max-attempts are used up: then it ends
 * `failed` with code. A handback (counted FALSE) never uses up an attempt. */
static void
lose_job (JwBroker *self, ActiveJob *aj, gboolean counted, const char *code,
          const char *message)
{
  Worker *worker = broker_lookup_worker (self, aj->worker);
  JwJob *job = aj->job;
  gint64 failed, max;

  if (worker != NULL && g_strcmp0 (worker->job_id, job->id) == 0)
    g_clear_pointer (&worker->job_id, g_free);
  jw_log_job (G_LOG_LEVEL_MESSAGE, job->id,
              "job attempt lost id=%s attempt=%" G_GINT64_FORMAT " code=%s: %s",
              job->id, job->attempt, code, message);

  if (job->cancel_requested)
    {
      end_job (self, aj, JW_STATE_CANCELLED, "cancelled",
               "cancelled while running; its worker went away");
      return;
    }
  max = type_limits (self, job->type)->max_attempts;
  failed = counted ? job->attempt - count_handbacks (self, job) : 0;
  if (counted && failed >= max)
    {
      g_autofree char *why = g_strdup_printf (
          "%s; gave up after %" G_GINT64_FORMAT " attempts", message, failed);

      end_job (self, aj, JW_STATE_FAILED, code, why);
      return;
    }
  requeue_job (self, aj, code, message);
}

/* Forgets a worker; the job it runs is lost. */
static void
drop_worker (JwBroker *self, Worker *worker, gboolean counted, const char *code,
             const char *message)
{
  ActiveJob *aj =
      worker->job_id ? broker_lookup_active (self, worker->job_id) : NULL;

  if (aj != NULL && aj->worker != NULL
      && g_bytes_equal (aj->worker, worker->rid))
    lose_job (self, aj, counted, code, message);
  g_info ("worker forgotten worker=%s", worker->name);
  g_hash_table_remove (self->worker_table, worker->rid);
}

void
broker_forget_worker (JwBroker *self, Worker *worker)
{
  g_autofree char *why =
      g_strdup_printf ("worker %s could not be reached", worker->name);

  drop_worker (self, worker, TRUE, "worker_lost", why);
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

/* Sends cancel {job, attempt, reason} to worker. On a failed send the
 * worker is forgotten (and the job it holds is lost). */
static gboolean
send_cancel (JwBroker *self, Worker *worker, const char *id, gint64 attempt,
             const char *reason)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) json = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "job");
  json_builder_add_string_value (b, id);
  json_builder_set_member_name (b, "attempt");
  json_builder_add_int_value (b, attempt);
  json_builder_set_member_name (b, "reason");
  json_builder_add_string_value (b, reason);
  json_builder_end_object (b);
  json = json_builder_get_root (b);
  return broker_send_worker (self, worker, "cancel", json);
}

void
broker_cancel_running (JwBroker *self, ActiveJob *aj)
{
  Worker *worker = broker_lookup_worker (self, aj->worker);

  if (worker == NULL)
    {
      /* Its worker is gone: nobody can confirm the cancel. */
      end_job (self, aj, JW_STATE_CANCELLED, "cancelled",
               "cancelled while running");
      return;
    }
  aj->cancel_deadline_us =
      g_get_monotonic_time () + self->cancel_grace_ms * G_TIME_SPAN_MILLISECOND;
  /* A failed send forgets the worker, which ends the job. */
  send_cancel (self, worker, aj->job->id, aj->job->attempt, "requested");
}

/* The running attempt of aj is over its time limit: the job fails now, and
 * its worker is told to stop without waiting for it. */
static void
time_out_job (JwBroker *self, ActiveJob *aj)
{
  Worker *worker = broker_lookup_worker (self, aj->worker);
  g_autofree char *id = g_strdup (aj->job->id);
  g_autofree char *why = g_strdup_printf (
      "the job ran longer than its limit of %" G_GINT64_FORMAT " s",
      type_limits (self, aj->job->type)->timeout_s);
  gint64 attempt = aj->job->attempt;

  if (!end_job (self, aj, JW_STATE_FAILED, "timeout", why))
    return;
  if (worker != NULL)
    send_cancel (self, worker, id, attempt, "timeout");
}

/* A cancel that the worker did not confirm in time: the job ends
 * `cancelled` anyway, and the worker, lost or stuck, is forgotten. If it is
 * alive, its next heartbeat makes it say hello again. */
static void
give_up_cancel (JwBroker *self, ActiveJob *aj)
{
  Worker *worker = broker_lookup_worker (self, aj->worker);

  jw_log_job (G_LOG_LEVEL_MESSAGE, aj->job->id,
              "cancel not confirmed in time id=%s worker=%s", aj->job->id,
              worker ? worker->name : "(gone)");
  if (!end_job (self, aj, JW_STATE_CANCELLED, "cancelled",
                "cancelled while running; its worker did not confirm"))
    return;
  if (worker != NULL)
    {
      g_info ("worker forgotten worker=%s", worker->name);
      g_hash_table_remove (self->worker_table, worker->rid);
    }
}

/* ---- the periodic check ---------------------------------------------- */

typedef enum
{
  CHECK_OK,
  CHECK_LOST,
  CHECK_TIMEOUT,
  CHECK_CANCEL_EXPIRED,
} CheckResult;

static CheckResult
check_running (JwBroker *self, ActiveJob *aj, gint64 now)
{
  Worker *worker = broker_lookup_worker (self, aj->worker);
  gint64 grace = self->worker_timeout_ms * G_TIME_SPAN_MILLISECOND;

  if (worker == NULL)
    return CHECK_LOST;
  if (aj->cancel_deadline_us != 0 && now >= aj->cancel_deadline_us)
    return CHECK_CANCEL_EXPIRED;
  if (aj->deadline_us != 0 && now >= aj->deadline_us)
    return CHECK_TIMEOUT;
  /* The worker went on to another job without this one's end reaching us
   * (its ready overtook the terminal event), or heartbeats name another
   * job: after a grace, the attempt is lost. */
  if (g_strcmp0 (worker->job_id, aj->job->id) != 0
      && aj->mismatch_since_us == 0)
    aj->mismatch_since_us = now;
  if (aj->mismatch_since_us != 0 && now - aj->mismatch_since_us > grace)
    return CHECK_LOST;
  return CHECK_OK;
}

static gboolean
check_liveness (gpointer user_data)
{
  JwBroker *self = user_data;
  gint64 now = g_get_monotonic_time ();
  gint64 silence = self->worker_timeout_ms * G_TIME_SPAN_MILLISECOND;
  g_autoptr (GPtrArray) silent = g_ptr_array_new ();
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GArray) results = g_array_new (FALSE, FALSE, sizeof (int));
  GHashTableIter iter;
  Worker *worker;
  ActiveJob *aj;

  /* Collect first: handling changes the tables. */
  g_hash_table_iter_init (&iter, self->worker_table);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&worker))
    if (now - worker->last_seen_us > silence
        || (worker->leaving && worker->job_id == NULL))
      g_ptr_array_add (silent, g_bytes_ref (worker->rid));
  for (guint i = 0; i < silent->len; i++)
    {
      GBytes *rid = g_ptr_array_index (silent, i);
      g_autofree char *why = NULL;

      worker = broker_lookup_worker (self, rid);
      if (worker != NULL && worker->leaving && worker->job_id == NULL)
        {
          /* Said bye, and its last job has ended. */
          g_info ("worker forgotten worker=%s", worker->name);
          g_hash_table_remove (self->worker_table, worker->rid);
        }
      else if (worker != NULL)
        {
          why = g_strdup_printf (
              "worker %s sent no heartbeat for %" G_GINT64_FORMAT " ms",
              worker->name, (now - worker->last_seen_us) / 1000);
          g_message ("worker lost worker=%s pid=%" G_GINT64_FORMAT
                     " silent-ms=%" G_GINT64_FORMAT,
                     worker->name, worker->pid,
                     (now - worker->last_seen_us) / 1000);
          drop_worker (self, worker, TRUE, "worker_lost", why);
        }
      g_bytes_unref (rid);
    }

  g_hash_table_iter_init (&iter, self->active);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&aj))
    {
      int r;

      if (aj->worker == NULL)
        continue;
      r = check_running (self, aj, now);
      if (r == CHECK_OK)
        continue;
      g_ptr_array_add (ids, g_strdup (aj->job->id));
      g_array_append_val (results, r);
    }
  for (guint i = 0; i < ids->len; i++)
    {
      aj = broker_lookup_active (self, g_ptr_array_index (ids, i));
      if (aj == NULL || aj->worker == NULL)
        continue;
      switch (g_array_index (results, int, i))
        {
        case CHECK_LOST:
          lose_job (self, aj, TRUE, "worker_lost",
                    "its worker no longer runs it");
          break;
        case CHECK_TIMEOUT: time_out_job (self, aj); break;
        case CHECK_CANCEL_EXPIRED: give_up_cancel (self, aj); break;
        }
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
run_dispatch (gpointer user_data)
{
  JwBroker *self = user_data;

  self->dispatch_idle_id = 0;
  broker_dispatch (self);
  return G_SOURCE_REMOVE;
}

void
broker_schedule_dispatch (JwBroker *self)
{
  if (self->dispatch_idle_id == 0)
    self->dispatch_idle_id = g_idle_add (run_dispatch, self);
}

void
broker_liveness_init (JwBroker *self)
{
  JwConfig *config = self->config;
  gint64 tick;

  self->worker_timeout_ms =
      jw_config_get_int (config, "broker", "worker-timeout-ms",
                         MAX (1000, 3 * self->heartbeat_ms));
  self->worker_timeout_ms = CLAMP (self->worker_timeout_ms, 100, 3600000);
  self->cancel_grace_ms =
      CLAMP (jw_config_get_int (config, "broker", "cancel-grace-ms", 5000), 0,
             3600000);
  self->max_attempts =
      CLAMP (jw_config_get_int (config, "broker", "max-attempts", 3), 1, 1000);
  self->default_timeout_s =
      CLAMP (jw_config_get_int (config, "broker", "default-timeout-s", 3600), 0,
             G_MAXINT32);
  self->type_limits =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  /* Often enough that a silence is noticed within a tenth of the timeout. */
  tick = CLAMP (self->worker_timeout_ms / 10, 20, 1000);
  self->liveness_id = g_timeout_add (tick, check_liveness, self);
  g_info ("liveness worker-timeout-ms=%" G_GINT64_FORMAT
          " cancel-grace-ms=%" G_GINT64_FORMAT " max-attempts=%" G_GINT64_FORMAT
          " default-timeout-s=%" G_GINT64_FORMAT,
          self->worker_timeout_ms, self->cancel_grace_ms, self->max_attempts,
          self->default_timeout_s);
}

void
broker_liveness_stop (JwBroker *self)
{
  g_clear_handle_id (&self->liveness_id, g_source_remove);
  g_clear_handle_id (&self->dispatch_idle_id, g_source_remove);
  g_clear_pointer (&self->type_limits, g_hash_table_unref);
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
  gint64 timeout_s;

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
    jw_log_job (G_LOG_LEVEL_WARNING, job->id,
                "recording dispatch failed id=%s error=%s", job->id,
                error->message);
  g_queue_delete_link (&self->queue, aj->queue_link);
  aj->queue_link = NULL;
  g_clear_pointer (&aj->worker, g_bytes_unref);
  aj->worker = g_bytes_ref (worker->rid);
  timeout_s = type_limits (self, job->type)->timeout_s;
  aj->deadline_us =
      timeout_s > 0 ? g_get_monotonic_time () + timeout_s * G_TIME_SPAN_SECOND
                    : 0;
  aj->cancel_deadline_us = aj->mismatch_since_us = 0;
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

/* An element of hello's types: a name, or a description object with a
 * name (docs/PROTOCOL.md). NULL when it is neither. */
static const char *
hello_type_name (JsonNode *t)
{
  const char *type = NULL;

  if (JSON_NODE_HOLDS_VALUE (t)
      && json_node_get_value_type (t) == G_TYPE_STRING)
    type = json_node_get_string (t);
  else if (JSON_NODE_HOLDS_OBJECT (t))
    type = jw_json_get_string (json_node_get_object (t), "name");
  if (type == NULL || *type == '\0' || strlen (type) > MAX_NAME)
    return NULL;
  return type;
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
      const char *type = hello_type_name (json_array_get_element (types, i));

      if (type == NULL)
        {
          g_warning ("bad hello dropped worker=%s: each type must be a name "
                     "or an object with a name",
                     name);
          return;
        }
      g_strv_builder_add (tb, type);
    }
  jw_json_get_int (body, "pid", &pid);
  for (i = 0; i < n; i++)
    {
      JsonNode *t = json_array_get_element (types, i);

      broker_types_announce (self, hello_type_name (t),
                             jw_json_node_object (t));
    }

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
  worker->last_seen_us = g_get_monotonic_time ();
  worker->idle = FALSE;

  g_info ("worker hello worker=%s pid=%" G_GINT64_FORMAT " types=%u", name, pid,
          n);
  send_welcome (self, rid);
}

/* A heartbeat names the job the worker runs, or none. One that disagrees
 * with the job the broker gave it starts the grace after which that job
 * counts as lost (see check_running); one that agrees ends it. */
static void
handle_heartbeat (JwBroker *self, Worker *worker, JsonObject *body)
{
  const char *job = jw_json_get_string (body, "job");
  gint64 attempt = -1;
  ActiveJob *aj;

  if (worker->job_id == NULL)
    return;
  aj = broker_lookup_active (self, worker->job_id);
  if (aj == NULL || aj->worker == NULL
      || !g_bytes_equal (aj->worker, worker->rid))
    return;
  jw_json_get_int (body, "attempt", &attempt);
  if (g_strcmp0 (job, aj->job->id) == 0 && attempt == aj->job->attempt)
    aj->mismatch_since_us = 0;
  else if (aj->mismatch_since_us == 0)
    {
      jw_log_job (G_LOG_LEVEL_DEBUG, aj->job->id,
                  "heartbeat names another job worker=%s job=%s expected=%s",
                  worker->name, job ? job : "null", aj->job->id);
      aj->mismatch_since_us = g_get_monotonic_time ();
    }
}

/* bye: the worker leaves. The job it hands back goes back to the queue
 * without using up an attempt. A bye that hands back nothing while the
 * broker thinks the worker holds a job means that job ended. */
static void
handle_bye (JwBroker *self, Worker *worker, JsonObject *body)
{
  JsonObject *handback = jw_json_get_object (body, "handback");
  const char *job = handback ? jw_json_get_string (handback, "job") : NULL;
  g_autofree char *why = NULL;

  g_info ("worker bye worker=%s%s%s", worker->name, job ? " handback=" : "",
          job ? job : "");
  if (worker->job_id != NULL && g_strcmp0 (job, worker->job_id) != 0)
    {
      /* It finished the job it held: the last event is on its way on
       * worker-events, a separate socket that bye may overtake. Wait for
       * it; the silence check gives up after worker-timeout-ms (and the
       * job then counts as lost). */
      worker->leaving = TRUE;
      worker->idle = FALSE;
      return;
    }
  why = g_strdup_printf ("worker %s stopped and handed the job back",
                         worker->name);
  drop_worker (self, worker, FALSE, "worker_stopped", why);
}

void
broker_handle_worker (JwBroker *self, JwMsg *msg)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) rid = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *verb = NULL;
  Worker *worker;

  rid = jw_msg_pop (msg);
  verb = jw_msg_dup_str (msg, 0);
  node = broker_parse_frame (msg, 1, &error);
  if (rid == NULL || verb == NULL || node == NULL)
    {
      g_warning ("bad worker message dropped verb=%s error=%s",
                 verb ? verb : "?", error ? error->message : "no verb");
      return;
    }

  worker = broker_lookup_worker (self, rid);
  g_debug ("worker message verb=%s worker=%s", verb,
           worker ? worker->name : "(unknown)");

  if (g_str_equal (verb, "hello"))
    {
      handle_hello (self, rid, jw_json_node_object (node));
      return;
    }
  if (worker == NULL)
    {
      /* A worker from before a broker restart: the new epoch in a welcome
       * makes it say hello again. */
      if (!g_str_equal (verb, "bye"))
        send_welcome (self, rid);
      return;
    }

  worker->last_seen_us = g_get_monotonic_time ();
  if (g_str_equal (verb, "ready"))
    {
      if (!worker->idle && !worker->leaving)
        {
          worker->idle = TRUE;
          worker->idle_order = ++self->idle_counter;
        }
      broker_dispatch (self);
    }
  else if (g_str_equal (verb, "heartbeat"))
    handle_heartbeat (self, worker, jw_json_node_object (node));
  else if (g_str_equal (verb, "bye"))
    handle_bye (self, worker, jw_json_node_object (node));
  else
    g_debug ("unknown worker verb dropped verb=%s worker=%s", verb,
             worker->name);
}
