/* ledger: the broker's record of every job, of each job's events and of
 * the job types workers announced, behind one small interface that the
 * in-memory store implements and a persistent store can implement too. */
#pragma once

#include <json-glib/json-glib.h>

#include "jw-id.h"
#include "jw-util.h"

G_BEGIN_DECLS

#define JW_LEDGER_ERROR (jw_ledger_error_quark ())
GQuark jw_ledger_error_quark (void);

typedef enum
{
  JW_LEDGER_ERROR_NOT_FOUND, /* no job with that id */
  JW_LEDGER_ERROR_EXISTS,    /* put of an id already recorded */
  JW_LEDGER_ERROR_SEQ,       /* an event whose seq is not last + 1 */
  JW_LEDGER_ERROR_FAILED,    /* the store itself failed */
} JwLedgerError;

/* One job's snapshot. Time stamps are milliseconds since the epoch, 0 when
 * not reached yet. JSON members are owned; NULL stands for JSON null. */
typedef struct
{
  char id[JW_ID_LEN + 1];
  char *type;
  JsonNode *params; /* object, as submitted */
  JwState state;
  gint64 attempt;     /* 0 until first dispatched */
  JsonNode *progress; /* last progress object, or NULL */
  JsonNode *result;   /* when succeeded, or NULL */
  JsonNode *error;    /* {code, message} when failed/cancelled */
  gint64 created_ms;
  gint64 started_ms;
  gint64 finished_ms;
  gint64 seq; /* seq of the last recorded event */
  gboolean cancel_requested;
  char *idempotency_key; /* or NULL */
} JwJob;

JwJob *jw_job_new (const char *id, const char *type, JsonNode *params);
JwJob *jw_job_copy (const JwJob *job);
void jw_job_free (JwJob *job);
/* The snapshot object of docs/PROTOCOL.md, members in a fixed order. */
JsonNode *jw_job_to_node (const JwJob *job);
/* TRUE when type and params equal those of job (member order ignored). */
gboolean jw_job_same_body (const JwJob *job, const char *type,
                           JsonNode *params);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwJob, jw_job_free)

/* One recorded event: its seq, its type and its exact JSON bytes. */
typedef struct
{
  gint64 seq;
  char *type;
  GBytes *json;
} JwEvent;

JwEvent *jw_event_new (gint64 seq, const char *type, GBytes *json);
void jw_event_free (JwEvent *event);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwEvent, jw_event_free)

typedef struct _JwLedger JwLedger;

/* What a store implements. Every function copies what it is given and
 * returns what the caller then owns. */
typedef struct
{
  const char *name;
  gboolean (*put) (JwLedger *self, const JwJob *job, GError **error);
  gboolean (*update) (JwLedger *self, const JwJob *job, GError **error);
  gboolean (*append) (JwLedger *self, const JwJob *job, const char *type,
                      GBytes *json, GError **error);
  JwJob *(*get) (JwLedger *self, const char *id, GError **error);
  GPtrArray *(*list) (JwLedger *self, const JwState *state, const char *before,
                      guint limit, GError **error);
  GPtrArray *(*events) (JwLedger *self, const char *id, gint64 after,
                        guint limit, gboolean *more, GError **error);
  JwJob *(*lookup_key) (JwLedger *self, const char *key, GError **error);
  GPtrArray *(*unfinished) (JwLedger *self, GError **error);
  gint (*expire) (JwLedger *self, gint64 finished_before_ms, guint limit,
                  GError **error);
  gboolean (*save_type) (JwLedger *self, const char *name,
                         JsonNode *description, GError **error);
  GHashTable *(*load_types) (JwLedger *self, GError **error);
  guint (*pending) (JwLedger *self);
  gboolean (*flush) (JwLedger *self, GError **error);
  void (*free) (JwLedger *self);
} JwLedgerVTable;

/* A store begins with this header. */
struct _JwLedger
{
  const JwLedgerVTable *vtable;
};

/* Records a new job (its seq is 0 until the first append). Fails with
 * EXISTS when the id is taken. */
gboolean jw_ledger_put (JwLedger *self, const JwJob *job, GError **error);
/* Replaces the snapshot of a recorded job. */
gboolean jw_ledger_update (JwLedger *self, const JwJob *job, GError **error);
/* Records one event and, in the same step, the snapshot it leads to: the
 * event's seq is job->seq, which must be the last recorded seq + 1 (else
 * SEQ), and json is the event's exact bytes. Returns the recorded seq, 0 on
 * failure. */
gint64 jw_ledger_append (JwLedger *self, const JwJob *job, const char *type,
                         GBytes *json, GError **error);
/* A copy of the job, or NULL with NOT_FOUND. */
JwJob *jw_ledger_get (JwLedger *self, const char *id, GError **error);
/* Jobs newest first (by id, which sorts by creation), only in *state when
 * state is not NULL, only older than before when before is not NULL, at most
 * limit. An array of JwJob. */
GPtrArray *jw_ledger_list (JwLedger *self, const JwState *state,
                           const char *before, guint limit, GError **error);
/* The job's events with seq > after, in order, at most limit; *more is set
 * when more follow. An array of JwEvent; NULL with NOT_FOUND. */
GPtrArray *jw_ledger_events (JwLedger *self, const char *id, gint64 after,
                             guint limit, gboolean *more, GError **error);
/* The job recorded with this idempotency key, or NULL with NOT_FOUND. */
JwJob *jw_ledger_lookup_key (JwLedger *self, const char *key, GError **error);
/* Every job not in a terminal state, oldest first (by id). An array of
 * JwJob. */
GPtrArray *jw_ledger_unfinished (JwLedger *self, GError **error);
/* Deletes at most limit jobs that finished before finished_before_ms, with
 * their events. Returns how many went, -1 on failure. */
gint jw_ledger_expire (JwLedger *self, gint64 finished_before_ms, guint limit,
                       GError **error);
/* Records the description object of the job type name, replacing the one
 * recorded before: the broker's list of announced types outlives it. */
gboolean jw_ledger_save_type (JwLedger *self, const char *name,
                              JsonNode *description, GError **error);
/* Every recorded job type: a table of name → description (JsonNode),
 * owned by the caller; NULL on failure. */
GHashTable *jw_ledger_load_types (JwLedger *self, GError **error);
/* How many writes (put, update, append, expire, save_type) wait for a
 * flush: a store may keep them in an open transaction, where they are
 * visible to this process but lost in a crash. */
guint jw_ledger_pending (JwLedger *self);
/* Makes every pending write durable (to the degree the store's settings
 * promise). On failure the pending writes are lost. */
gboolean jw_ledger_flush (JwLedger *self, GError **error);
/* Flushes, then frees. */
void jw_ledger_free (JwLedger *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwLedger, jw_ledger_free)

/* The in-memory store: everything is lost when the process ends. */
JwLedger *jw_ledger_memory_new (void);

/* How hard the SQLite store pushes a commit to disk: SQLite's
 * PRAGMA synchronous in WAL mode. */
typedef enum
{
  JW_LEDGER_SYNC_OFF,
  JW_LEDGER_SYNC_NORMAL,
  JW_LEDGER_SYNC_FULL,
} JwLedgerSync;

gboolean jw_ledger_sync_from_string (const char *str, JwLedgerSync *out);
const char *jw_ledger_sync_to_string (JwLedgerSync sync);

/* The SQLite store in the file path (created with its directory when
 * missing), in WAL mode. Writes collect in one open transaction until
 * jw_ledger_flush. */
JwLedger *jw_ledger_sqlite_new (const char *path, JwLedgerSync sync,
                                GError **error);

G_END_DECLS
