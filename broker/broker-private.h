/* broker-private: the broker's state, shared by its handlers (broker.c for
 * commands, subscriptions and publishing, queries.c, workers.c for the
 * worker table and dispatch, worker-events.c for what workers report). */
#pragma once

#include <czmq.h>

#include "broker.h"
#include "jw-curve.h"
#include "jw-msg.h"

G_BEGIN_DECLS

/* Largest frame the broker parses from any peer, and the JSON depth. */
#define BROKER_MAX_JSON (4 * 1024 * 1024)
#define BROKER_MAX_DEPTH 64
/* Longest text kept from a worker's progress or error message. */
#define BROKER_MAX_TEXT 1024

/* A job that has not ended: its live snapshot (as recorded), where it
 * waits, and who runs it. */
typedef struct
{
  JwJob *job;
  GList *queue_link; /* its link in JwBroker.queue while waiting */
  GBytes *worker;    /* routing id of the worker it went to, or NULL */
  /* Monotonic times in µs, 0 when not set: when the running attempt runs
   * out of time, when a cancel sent to its worker is given up on, and since
   * when its worker's heartbeats name another job (or none). */
  gint64 deadline_us;
  gint64 cancel_deadline_us;
  gint64 mismatch_since_us;
} ActiveJob;

/* Limits of one job type: [type.NAME] in the key file, else [broker]. */
typedef struct
{
  gint64 max_attempts;
  gint64 timeout_s; /* 0: none */
} TypeLimits;

typedef struct
{
  GBytes *rid; /* ROUTER routing id */
  char *name;
  GStrv types;
  gint64 pid;
  gint64 last_seen_us; /* monotonic */
  gboolean idle;      /* said ready since its last job */
  guint64 idle_order; /* smaller = idle for longer */
  char *job_id;       /* the job it holds, or NULL */
  gboolean leaving;   /* said bye; waits for its job's last event */
} Worker;

struct _JwBroker
{
  JwLedger *ledger;
  char epoch[JW_ID_LEN + 1];
  gint64 heartbeat_ms;
  JwConfig *config; /* borrowed: outlives the broker */

  /* Liveness: see workers.c. */
  gint64 worker_timeout_ms;
  gint64 cancel_grace_ms;
  gint64 max_attempts;      /* [broker] max-attempts */
  gint64 default_timeout_s; /* [broker] default-timeout-s */
  GHashTable *type_limits; /* type name → TypeLimits */
  guint liveness_id;
  guint dispatch_idle_id;
  guint64 stale_events;
  /* Since this process started, for metrics: events recorded, and jobs
   * that ended, by terminal state (indexed by JwState). */
  guint64 events_recorded;
  guint64 finished[JW_STATE_CANCELLED + 1];

  JwCurve *curve; /* CURVE and the ZAP handler of tcp:// endpoints */
  zsock_t *commands;
  zsock_t *workers;
  zsock_t *worker_events;
  zsock_t *events;
  zsock_t *queries;
  guint source_ids[5];
  guint heartbeat_id;

  GHashTable *active;       /* job id → ActiveJob */
  GQueue queue;             /* ActiveJob, oldest first */
  GHashTable *worker_table; /* GBytes routing id → Worker */
  GHashTable *types;        /* type name → description; see types.c */
  guint64 idle_counter;

  /* Durability: see durable.c. Messages that could reveal a record not yet
   * committed wait in the outbox until the commit. */
  gint64 flush_ms;
  guint flush_batch;
  GSource *flush_source;
  GSource *idle_flush_source;
  GQueue outbox; /* OutMsg */
  gint64 retention_ms;
  guint retention_id;
};

/* broker.c */
gboolean broker_record_event (JwBroker *self, JwJob *job, const char *type,
                              GError **error, ...) G_GNUC_NULL_TERMINATED;
void broker_finish_job (JwBroker *self, ActiveJob *aj, JwJob *next);
ActiveJob *broker_lookup_active (JwBroker *self, const char *id);
JsonNode *broker_error_node (const char *code, const char *message);
JsonNode *broker_parse_frame (JwMsg *msg, guint i, GError **error);
/* Each handles one message received on its socket: a command from an api
 * (commands), a worker's message with its ROUTER envelope (workers), a
 * worker's event (worker-events), a query with its envelope (queries).
 * Any bytes are safe: a message that does not fit is dropped or answered
 * with an error, never trusted. */
void broker_handle_command (JwBroker *self, JwMsg *msg);

/* queries.c */
void broker_handle_query (JwBroker *self, JwMsg *msg);

/* workers.c */
void broker_handle_worker (JwBroker *self, JwMsg *msg);
void broker_dispatch (JwBroker *self);
Worker *broker_lookup_worker (JwBroker *self, GBytes *rid);
/* Sends verb + json to a worker; on failure forgets the worker. */
gboolean broker_send_worker (JwBroker *self, Worker *worker, const char *verb,
                             JsonNode *json);
void broker_forget_worker (JwBroker *self, Worker *worker);
void worker_free (Worker *worker);
/* Reads the liveness settings and starts the periodic check. */
void broker_liveness_init (JwBroker *self);
void broker_liveness_stop (JwBroker *self);
/* Runs broker_dispatch from the main loop soon, once. */
void broker_schedule_dispatch (JwBroker *self);
/* Tells the worker running aj to cancel it (reason "requested"). A job
 * whose worker cannot be told is ended `cancelled` at once; one whose
 * worker does not answer is ended after [broker] cancel-grace-ms. aj may
 * be freed on return, when the job ended. */
void broker_cancel_running (JwBroker *self, ActiveJob *aj);

/* durable.c */
/* Reads [broker] flush-ms and retention-s, loads the jobs that had not
 * ended (queued ones back into the queue, running ones through
 * broker_requeue_running_on_start) and starts the flush and retention
 * timers. */
gboolean broker_durable_init (JwBroker *self, GError **error);
/* Commits and releases the outbox, then stops the timers. */
void broker_durable_stop (JwBroker *self);
/* Sends msg on sock now when every record is committed, else after the
 * commit of the records that precede it. Takes msg. */
void broker_send (JwBroker *self, void *sock, JwMsg *msg);
/* Commits pending records, then sends the outbox. A failed commit stops
 * the process: what was not committed was never confirmed, and a restart
 * resumes from what was. */
void broker_flush (JwBroker *self);
/* A job found running at start: its worker is unknown, so its attempt is
 * given up (`retrying`, code broker_restarted) and the job waits for its
 * next attempt. aj is in the active table, not in the queue. */
void broker_requeue_running_on_start (JwBroker *self, ActiveJob *aj);

/* types.c */
/* Loads the types recorded in the ledger, at start. */
gboolean broker_types_load (JwBroker *self, GError **error);
/* Records a type a worker announced: its description object (the hello
 * element), or NULL for a bare name. */
void broker_types_announce (JwBroker *self, const char *name,
                            JsonObject *announced);
/* Every known type, by name, each with the number of workers serving it
 * now: the `types` member of the types query's reply. */
JsonNode *broker_types_to_node (JwBroker *self);

/* worker-events.c */
void broker_handle_worker_event (JwBroker *self, JwMsg *msg);

G_END_DECLS
