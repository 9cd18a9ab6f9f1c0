/* broker-private: the broker's state, shared by its handlers (broker.c for
 * commands, subscriptions and publishing, queries.c, workers.c for the
 * worker table and dispatch, worker-events.c for what workers report). */
#pragma once

#include <czmq.h>

#include "broker.h"
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
} ActiveJob;

typedef struct
{
  GBytes *rid; /* ROUTER routing id */
  char *name;
  GStrv types;
  gint64 pid;
  gint64 last_seen_ms;
  gboolean idle;      /* said ready since its last job */
  guint64 idle_order; /* smaller = idle for longer */
  char *job_id;       /* the job it holds, or NULL */
} Worker;

struct _JwBroker
{
  JwLedger *ledger;
  char epoch[JW_ID_LEN + 1];
  gint64 heartbeat_ms;

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
  guint64 idle_counter;
  /* Idempotency key → job id. Kept in memory only for now: a persistent
   * ledger should own this index so that it survives a restart. */
  GHashTable *idempotency;
};

/* broker.c */
gboolean broker_record_event (JwBroker *self, JwJob *job, const char *type,
                              GError **error, ...) G_GNUC_NULL_TERMINATED;
void broker_finish_job (JwBroker *self, ActiveJob *aj, JwJob *next);
ActiveJob *broker_lookup_active (JwBroker *self, const char *id);
JsonNode *broker_error_node (const char *code, const char *message);
JsonNode *broker_parse_frame (JwMsg *msg, guint i, GError **error);

/* queries.c */
gboolean broker_on_query (void *sock, gpointer user_data);

/* workers.c */
gboolean broker_on_worker (void *sock, gpointer user_data);
void broker_dispatch (JwBroker *self);
Worker *broker_lookup_worker (JwBroker *self, GBytes *rid);
/* Sends verb + json to a worker; on failure forgets the worker. */
gboolean broker_send_worker (JwBroker *self, Worker *worker, const char *verb,
                             JsonNode *json);
void broker_forget_worker (JwBroker *self, Worker *worker);
void worker_free (Worker *worker);

/* worker-events.c */
gboolean broker_on_worker_event (void *sock, gpointer user_data);

G_END_DECLS
