/* durable: what makes the broker's word hold across a crash. Records go to
 * the ledger inside a batch; every message that could tell of them (event
 * publishes, command replies, query answers) waits in an outbox, and a
 * commit — at most [broker] flush-ms after the batch's first record, or
 * sooner when the batch is full — releases it. So nothing that a crash can
 * take back was ever seen. Also here: loading the unfinished jobs at start,
 * and the retention timer that deletes old finished jobs. */
#include "broker-private.h"

#include <stdlib.h>

#include "jw-json.h"
#include "jw-log.h"

/* A batch this large is committed without waiting for flush-ms. */
#define FLUSH_BATCH 2000
/* Finished jobs deleted per retention turn: small, so that one turn never
 * holds the loop for long. */
#define RETENTION_BATCH 500

typedef struct
{
  void *sock;
  JwMsg *msg;
} OutMsg;

typedef struct
{
  GSource source;
  JwBroker *broker;
  gboolean when_idle; /* the idle one: ready whenever there is a batch */
  gint64 due_us;      /* monotonic time of the next commit, 0 when none */
} FlushSource;

static void
send_now (void *sock, JwMsg *msg)
{
  g_autoptr (GError) error = NULL;

  /* PUB drops at its high-water mark, and a ROUTER peer that is gone
   * loses its answer: either way nobody else is held up. */
  if (!jw_msg_send (msg, sock, &error))
    g_debug ("message dropped error=%s", error->message);
}

void
broker_send (JwBroker *self, void *sock, JwMsg *msg)
{
  OutMsg *out;

  if (self->outbox.length == 0 && jw_ledger_pending (self->ledger) == 0)
    {
      send_now (sock, msg);
      jw_msg_free (msg);
      return;
    }
  out = g_new (OutMsg, 1);
  out->sock = sock;
  out->msg = msg;
  g_queue_push_tail (&self->outbox, out);
}

void
broker_flush (JwBroker *self)
{
  g_autoptr (GError) error = NULL;
  OutMsg *out;

  if (!jw_ledger_flush (self->ledger, &error))
    {
      /* The in-memory state is now ahead of the file. Nothing of it went
       * out, so stopping loses nothing that was confirmed; the restart
       * resumes from the file. */
      g_critical ("ledger commit failed, stopping: %s", error->message);
      exit (EXIT_FAILURE);
    }
  while ((out = g_queue_pop_head (&self->outbox)) != NULL)
    {
      send_now (out->sock, out->msg);
      jw_msg_free (out->msg);
      g_free (out);
    }
}

/* ---- the flush source ------------------------------------------------- */

/* Whether the commit is due; else how long until it is, in *timeout. */
static gboolean
flush_due (FlushSource *fs, gint *timeout)
{
  JwBroker *self = fs->broker;
  guint pending = jw_ledger_pending (self->ledger);
  gint64 now;

  *timeout = -1;
  if (pending == 0 && self->outbox.length == 0)
    {
      fs->due_us = 0;
      return FALSE;
    }
  if (fs->when_idle || pending >= self->flush_batch)
    return TRUE;
  now = g_source_get_time (&fs->source);
  if (fs->due_us == 0)
    fs->due_us = now + self->flush_ms * 1000;
  if (now >= fs->due_us)
    return TRUE;
  *timeout = (gint)((fs->due_us - now + 999) / 1000);
  return FALSE;
}

static gboolean
flush_prepare (GSource *source, gint *timeout)
{
  return flush_due ((FlushSource *)source, timeout);
}

static gboolean
flush_check (GSource *source)
{
  gint timeout;

  return flush_due ((FlushSource *)source, &timeout);
}

static gboolean
flush_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  FlushSource *fs = (FlushSource *)source;

  fs->due_us = 0;
  broker_flush (fs->broker);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs flush_funcs = {
  .prepare = flush_prepare,
  .check = flush_check,
  .dispatch = flush_dispatch,
};

/* Two sources commit: one when the batch is flush-ms old or full, above
 * the sockets' priority so that load cannot starve it; one below them,
 * when the loop has nothing else to do. Under load batches grow up to
 * flush-ms; a lone submit is confirmed without waiting. */
static GSource *
flush_source_new (JwBroker *self, gboolean when_idle)
{
  FlushSource *fs =
      (FlushSource *)g_source_new (&flush_funcs, sizeof (FlushSource));

  fs->broker = self;
  fs->when_idle = when_idle;
  g_source_set_name (&fs->source,
                     when_idle ? "ledger flush when idle" : "ledger flush");
  g_source_set_priority (&fs->source,
                         when_idle ? G_PRIORITY_LOW : G_PRIORITY_DEFAULT - 1);
  g_source_attach (&fs->source, NULL);
  return &fs->source;
}

/* ---- restart ---------------------------------------------------------- */

void
broker_requeue_running_on_start (JwBroker *self, ActiveJob *aj)
{
  g_autoptr (GError) error = NULL;
  JwJob *next = jw_job_copy (aj->job);

  /* The attempt keeps its number; dispatch gives the next one. */
  next->state = JW_STATE_QUEUED;
  g_clear_pointer (&next->progress, json_node_unref);
  if (!broker_record_event (
          self, next, "retrying", &error, "error",
          broker_error_node ("broker_restarted",
                             "the broker restarted while the job ran"),
          "next_attempt",
          json_node_init_int (json_node_alloc (), next->attempt + 1), NULL))
    {
      /* It stays queued in memory and is dispatched anyway; the ledger
       * says running until its next event. */
      jw_log_job (G_LOG_LEVEL_WARNING, next->id,
                  "recording retrying failed id=%s error=%s", next->id,
                  error->message);
      jw_job_free (next);
      return;
    }
  jw_log_job (G_LOG_LEVEL_MESSAGE, next->id,
              "job requeued after restart id=%s attempt=%" G_GINT64_FORMAT,
              next->id, next->attempt);
  jw_job_free (aj->job);
  aj->job = next;
}

/* A running job whose cancel was requested before the restart: its
 * worker is not known, so the cancel completes now. */
static void
cancel_on_start (JwBroker *self, ActiveJob *aj)
{
  g_autoptr (GError) error = NULL;
  JwJob *next = jw_job_copy (aj->job);

  next->state = JW_STATE_CANCELLED;
  next->finished_ms = jw_now_ms ();
  g_clear_pointer (&next->error, json_node_unref);
  next->error = broker_error_node (
      "cancelled", "cancelled while running; the broker restarted");
  if (!broker_record_event (self, next, "cancelled", &error, "error",
                            json_node_copy (next->error), NULL))
    {
      g_warning ("recording cancel failed id=%s error=%s", next->id,
                 error->message);
      jw_job_free (next);
      return;
    }
  broker_finish_job (self, aj, next);
}

/* Puts the jobs that had not ended back where they were: all into the
 * queue in creation order, a running one after its `retrying`, except a
 * running one being cancelled, which ends. */
static gboolean
load_unfinished (JwBroker *self, GError **error)
{
  g_autoptr (GPtrArray) jobs = jw_ledger_unfinished (self->ledger, error);
  guint i, running = 0;

  if (jobs == NULL)
    return FALSE;
  for (i = 0; i < jobs->len; i++)
    {
      ActiveJob *aj = g_new0 (ActiveJob, 1);

      aj->job = g_steal_pointer (&jobs->pdata[i]);
      g_hash_table_insert (self->active, g_strdup (aj->job->id), aj);
      if (aj->job->state == JW_STATE_RUNNING && aj->job->cancel_requested)
        {
          cancel_on_start (self, aj);
          continue;
        }
      if (aj->job->state == JW_STATE_RUNNING)
        {
          broker_requeue_running_on_start (self, aj);
          running++;
        }
      g_queue_push_tail (&self->queue, aj);
      aj->queue_link = self->queue.tail;
    }
  if (jobs->len > 0)
    g_message ("ledger loaded jobs=%u running=%u", jobs->len, running);
  return TRUE;
}

/* ---- retention -------------------------------------------------------- */

static gboolean on_retention (gpointer user_data);

static void
schedule_retention (JwBroker *self, guint delay_ms)
{
  self->retention_id = g_timeout_add (delay_ms, on_retention, self);
}

/* The pause between two retention checks: a quarter of the retention
 * time, between 100 ms and a minute. */
static guint
retention_interval (JwBroker *self)
{
  return (guint)CLAMP (self->retention_ms / 4, 100, 60000);
}

static gboolean
on_retention (gpointer user_data)
{
  JwBroker *self = user_data;
  g_autoptr (GError) error = NULL;
  gint n;

  self->retention_id = 0;
  n = jw_ledger_expire (self->ledger, jw_now_ms () - self->retention_ms,
                        RETENTION_BATCH, &error);
  if (n < 0)
    g_warning ("retention failed error=%s", error->message);
  else if (n > 0)
    g_info ("retention deleted jobs=%d", n);

  /* A full batch says more may be due: go on soon, after other work. */
  schedule_retention (self,
                      n == RETENTION_BATCH ? 10 : retention_interval (self));
  return G_SOURCE_REMOVE;
}

/* ---- life cycle ------------------------------------------------------- */

gboolean
broker_durable_init (JwBroker *self, GError **error)
{
  self->flush_ms = CLAMP (
      jw_config_get_int (self->config, "broker", "flush-ms", 5), 0, 10000);
  self->flush_batch = FLUSH_BATCH;
  self->retention_ms =
      CLAMP (jw_config_get_int (self->config, "broker", "retention-s", 86400),
             1, G_MAXINT32)
      * (gint64)1000;
  g_queue_init (&self->outbox);

  if (!load_unfinished (self, error))
    return FALSE;

  self->flush_source = flush_source_new (self, FALSE);
  self->idle_flush_source = flush_source_new (self, TRUE);

  schedule_retention (self, retention_interval (self));
  g_info ("ledger store=%s flush-ms=%" G_GINT64_FORMAT
          " retention-s=%" G_GINT64_FORMAT,
          self->ledger->vtable->name, self->flush_ms,
          self->retention_ms / 1000);
  return TRUE;
}

void
broker_durable_stop (JwBroker *self)
{
  if (self->ledger != NULL && self->flush_source != NULL)
    broker_flush (self);
  if (self->flush_source != NULL)
    {
      g_source_destroy (self->flush_source);
      g_clear_pointer (&self->flush_source, g_source_unref);
      g_source_destroy (self->idle_flush_source);
      g_clear_pointer (&self->idle_flush_source, g_source_unref);
    }
  g_clear_handle_id (&self->retention_id, g_source_remove);
}
