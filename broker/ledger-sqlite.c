/* ledger-sqlite: the ledger in one SQLite file in WAL mode. Writes collect
 * in one open transaction that jw_ledger_flush commits, so that thousands
 * of events cost a few commits; reads on the same connection see what is
 * not yet committed. Statements are prepared once for the process's
 * lifetime. The file is held with an exclusive lock: one broker per
 * ledger. */
#include "ledger.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <string.h>

#include "jw-json.h"

/* 2 added the types table; a version 1 file gains it when opened. */
#define SCHEMA_VERSION 2
/* JSON read back from the file was written by this broker; the bound only
 * keeps a damaged file from exhausting the stack. */
#define MAX_DEPTH 256

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id TEXT PRIMARY KEY,"
    " type TEXT NOT NULL,"
    " params TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " progress TEXT,"
    " result TEXT,"
    " error TEXT,"
    " created_ms INTEGER NOT NULL,"
    " started_ms INTEGER NOT NULL,"
    " finished_ms INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " cancel_requested INTEGER NOT NULL,"
    " idempotency_key TEXT UNIQUE,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, id);"
    "CREATE INDEX IF NOT EXISTS jobs_by_finished ON jobs (finished_ms)"
    " WHERE finished_ms > 0;"
    "CREATE TABLE IF NOT EXISTS events ("
    " job TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " type TEXT NOT NULL,"
    " json BLOB NOT NULL,"
    " PRIMARY KEY (job, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS types ("
    " name TEXT PRIMARY KEY,"
    " description TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL) WITHOUT ROWID;";

#define JOB_COLUMNS                                                            \
  "id, type, params, state, attempt, progress, result, error, created_ms, "    \
  "started_ms, finished_ms, seq, cancel_requested, idempotency_key"

/* Every statement, by the index the code uses. */
enum
{
  ST_BEGIN,
  ST_COMMIT,
  ST_ROLLBACK,
  ST_PUT,
  ST_UPDATE,
  ST_APPEND_JOB,
  ST_APPEND_EVENT,
  ST_SEQ,
  ST_GET,
  ST_KEY,
  ST_LIST,
  ST_LIST_STATE,
  ST_EVENTS,
  ST_UNFINISHED,
  ST_EXPIRED,
  ST_DELETE_EVENTS,
  ST_DELETE_JOB,
  ST_SAVE_TYPE,
  ST_LOAD_TYPES,
  N_STATEMENTS
};

static const char *const statement_sql[N_STATEMENTS] = {
  [ST_BEGIN] = "BEGIN IMMEDIATE",
  [ST_COMMIT] = "COMMIT",
  [ST_ROLLBACK] = "ROLLBACK",
  [ST_PUT] = "INSERT INTO jobs (" JOB_COLUMNS ", updated_ms) VALUES "
             "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?13, ?14, "
             "?15)",
  /* update keeps the seq that the events say; the key never changes. */
  [ST_UPDATE] = "UPDATE jobs SET type = ?2, params = ?3, state = ?4, "
                "attempt = ?5, progress = ?6, result = ?7, error = ?8, "
                "created_ms = ?9, started_ms = ?10, finished_ms = ?11, "
                "cancel_requested = ?13, updated_ms = ?15 WHERE id = ?1",
  [ST_APPEND_JOB] = "UPDATE jobs SET type = ?2, params = ?3, state = ?4, "
                    "attempt = ?5, progress = ?6, result = ?7, error = ?8, "
                    "created_ms = ?9, started_ms = ?10, finished_ms = ?11, "
                    "seq = ?12, cancel_requested = ?13, updated_ms = ?15 "
                    "WHERE id = ?1 AND seq = ?12 - 1",
  [ST_APPEND_EVENT] =
      "INSERT INTO events (job, seq, type, json) VALUES (?1, ?2, ?3, ?4)",
  [ST_SEQ] = "SELECT seq FROM jobs WHERE id = ?1",
  [ST_GET] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1",
  [ST_KEY] = "SELECT " JOB_COLUMNS " FROM jobs WHERE idempotency_key = ?1",
  [ST_LIST] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id < ?1 "
              "ORDER BY id DESC LIMIT ?2",
  [ST_LIST_STATE] = "SELECT " JOB_COLUMNS " FROM jobs WHERE state = ?3 "
                    "AND id < ?1 ORDER BY id DESC LIMIT ?2",
  [ST_EVENTS] = "SELECT seq, type, json FROM events WHERE job = ?1 "
                "AND seq > ?2 ORDER BY seq LIMIT ?3",
  [ST_UNFINISHED] = "SELECT " JOB_COLUMNS " FROM jobs WHERE state IN "
                    "('queued', 'running') ORDER BY id",
  [ST_EXPIRED] = "SELECT id FROM jobs WHERE finished_ms > 0 AND "
                 "finished_ms < ?1 AND state IN ('succeeded', 'failed', "
                 "'cancelled') ORDER BY finished_ms LIMIT ?2",
  [ST_DELETE_EVENTS] = "DELETE FROM events WHERE job = ?1",
  [ST_DELETE_JOB] = "DELETE FROM jobs WHERE id = ?1",
  [ST_SAVE_TYPE] = "INSERT OR REPLACE INTO types (name, description, "
                   "updated_ms) VALUES (?1, ?2, ?3)",
  [ST_LOAD_TYPES] = "SELECT name, description FROM types ORDER BY name",
};

typedef struct
{
  JwLedger parent;
  sqlite3 *db;
  char *path;
  sqlite3_stmt *st[N_STATEMENTS];
  gboolean in_transaction;
  guint pending; /* writes in the open transaction */
} SqliteLedger;

/* Sets error from the connection's last failure. */
static void
set_db_error (SqliteLedger *self, GError **error, const char *what)
{
  g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_FAILED,
               "ledger %s: %s failed: %s", self->path, what,
               sqlite3_errmsg (self->db));
}

/* Runs a statement that returns no rows, then resets it. */
static gboolean
step_done (SqliteLedger *self, sqlite3_stmt *st, const char *what,
           GError **error)
{
  int rc = sqlite3_step (st);

  if (rc != SQLITE_DONE)
    set_db_error (self, error, what);
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  return rc == SQLITE_DONE;
}

/* Opens the batch transaction before a write, when none is open. */
static gboolean
begin (SqliteLedger *self, GError **error)
{
  if (self->in_transaction)
    return TRUE;
  if (!step_done (self, self->st[ST_BEGIN], "begin", error))
    return FALSE;
  self->in_transaction = TRUE;
  return TRUE;
}

static void
bind_json (sqlite3_stmt *st, int i, JsonNode *node)
{
  gsize len;
  char *text;

  if (node == NULL)
    {
      sqlite3_bind_null (st, i);
      return;
    }
  text = jw_json_to_string (node, &len);
  sqlite3_bind_text (st, i, text, (int)len, g_free);
}

/* Binds the parameters ?1 … ?15 that the job statements share. */
static void
bind_job (sqlite3_stmt *st, const JwJob *job)
{
  sqlite3_bind_text (st, 1, job->id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text (st, 2, job->type, -1, SQLITE_TRANSIENT);
  bind_json (st, 3, job->params);
  sqlite3_bind_text (st, 4, jw_state_to_string (job->state), -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 5, job->attempt);
  bind_json (st, 6, job->progress);
  bind_json (st, 7, job->result);
  bind_json (st, 8, job->error);
  sqlite3_bind_int64 (st, 9, job->created_ms);
  sqlite3_bind_int64 (st, 10, job->started_ms);
  sqlite3_bind_int64 (st, 11, job->finished_ms);
  sqlite3_bind_int64 (st, 12, job->seq);
  sqlite3_bind_int (st, 13, job->cancel_requested ? 1 : 0);
  if (job->idempotency_key != NULL)
    sqlite3_bind_text (st, 14, job->idempotency_key, -1, SQLITE_TRANSIENT);
  else
    sqlite3_bind_null (st, 14);
  sqlite3_bind_int64 (st, 15, jw_now_ms ());
}

static JsonNode *
column_json (sqlite3_stmt *st, int i)
{
  const char *text = (const char *)sqlite3_column_text (st, i);
  int len = sqlite3_column_bytes (st, i);
  g_autoptr (GError) error = NULL;
  JsonNode *node;

  if (text == NULL)
    return NULL;
  node = jw_json_parse (text, (gsize)len, MAX_DEPTH, &error);
  if (node == NULL)
    g_warning ("ledger holds bad JSON column=%d error=%s", i, error->message);
  return node;
}

/* The job in the current row of a statement that selects JOB_COLUMNS. */
static JwJob *
column_job (sqlite3_stmt *st)
{
  const char *id = (const char *)sqlite3_column_text (st, 0);
  const char *type = (const char *)sqlite3_column_text (st, 1);
  const char *state = (const char *)sqlite3_column_text (st, 3);
  const char *key = (const char *)sqlite3_column_text (st, 13);
  g_autoptr (JsonNode) params = column_json (st, 2);
  JwJob *job;

  if (id == NULL || strlen (id) != JW_ID_LEN || type == NULL)
    return NULL;
  job = jw_job_new (id, type, params);
  if (state == NULL || !jw_state_from_string (state, &job->state))
    job->state = JW_STATE_FAILED;
  job->attempt = sqlite3_column_int64 (st, 4);
  job->progress = column_json (st, 5);
  job->result = column_json (st, 6);
  job->error = column_json (st, 7);
  job->created_ms = sqlite3_column_int64 (st, 8);
  job->started_ms = sqlite3_column_int64 (st, 9);
  job->finished_ms = sqlite3_column_int64 (st, 10);
  job->seq = sqlite3_column_int64 (st, 11);
  job->cancel_requested = sqlite3_column_int (st, 12) != 0;
  job->idempotency_key = g_strdup (key);
  return job;
}

/* Steps a job query to its end, collecting the jobs. */
static GPtrArray *
collect_jobs (SqliteLedger *self, sqlite3_stmt *st, GError **error)
{
  g_autoptr (GPtrArray) jobs =
      g_ptr_array_new_with_free_func ((GDestroyNotify)jw_job_free);
  int rc;

  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      JwJob *job = column_job (st);

      if (job != NULL)
        g_ptr_array_add (jobs, job);
    }
  if (rc != SQLITE_DONE)
    set_db_error (self, error, "reading jobs");
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  return rc == SQLITE_DONE ? g_steal_pointer (&jobs) : NULL;
}

static gboolean
sqlite_put (JwLedger *ledger, const JwJob *job, GError **error)
{
  SqliteLedger *self = (SqliteLedger *)ledger;
  sqlite3_stmt *st = self->st[ST_PUT];
  int rc;

  if (!begin (self, error))
    return FALSE;
  bind_job (st, job);
  rc = sqlite3_step (st);
  if (rc == SQLITE_CONSTRAINT)
    g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_EXISTS,
                 "job %s or its idempotency key is already recorded", job->id);
  else if (rc != SQLITE_DONE)
    set_db_error (self, error, "put");
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  if (rc != SQLITE_DONE)
    return FALSE;
  self->pending++;
  return TRUE;
}

static gboolean
sqlite_update (JwLedger *ledger, const JwJob *job, GError **error)
{
  SqliteLedger *self = (SqliteLedger *)ledger;
  sqlite3_stmt *st = self->st[ST_UPDATE];

  if (!begin (self, error))
    return FALSE;
  bind_job (st, job);
  if (!step_done (self, st, "update", error))
    return FALSE;
  if (sqlite3_changes (self->db) == 0)
    {
      g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_NOT_FOUND,
                   "no job with id %s", job->id);
      return FALSE;
    }
  self->pending++;
  return TRUE;
}

/* Why an append's snapshot update matched no row: no such job, or a seq
 * that is not the next one. */
static void
explain_append (SqliteLedger *self, const JwJob *job, GError **error)
{
  sqlite3_stmt *st = self->st[ST_SEQ];

  sqlite3_bind_text (st, 1, job->id, -1, SQLITE_TRANSIENT);
  if (sqlite3_step (st) == SQLITE_ROW)
    g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_SEQ,
                 "job %s: event seq %" G_GINT64_FORMAT
                 " after %" G_GINT64_FORMAT,
                 job->id, job->seq, (gint64)sqlite3_column_int64 (st, 0));
  else
    g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_NOT_FOUND,
                 "no job with id %s", job->id);
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
}

static gboolean
sqlite_append (JwLedger *ledger, const JwJob *job, const char *type,
               GBytes *json, GError **error)
{
  SqliteLedger *self = (SqliteLedger *)ledger;
  sqlite3_stmt *st = self->st[ST_APPEND_JOB];
  gsize len;
  const void *data;

  if (!begin (self, error))
    return FALSE;

  /* The snapshot moves only from seq - 1 to seq: that one statement checks
   * the order and records the new state. */
  bind_job (st, job);
  if (!step_done (self, st, "append", error))
    return FALSE;
  if (sqlite3_changes (self->db) == 0)
    {
      explain_append (self, job, error);
      return FALSE;
    }

  st = self->st[ST_APPEND_EVENT];
  data = g_bytes_get_data (json, &len);
  sqlite3_bind_text (st, 1, job->id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (st, 2, job->seq);
  sqlite3_bind_text (st, 3, type, -1, SQLITE_TRANSIENT);
  sqlite3_bind_blob (st, 4, data ? data : "", (int)len, SQLITE_TRANSIENT);
  if (!step_done (self, st, "append event", error))
    return FALSE;
  self->pending++;
  return TRUE;
}

static JwJob *
get_one (SqliteLedger *self, int which, const char *value, const char *what,
         GError **error)
{
  sqlite3_stmt *st = self->st[which];
  JwJob *job = NULL;
  int rc;

  sqlite3_bind_text (st, 1, value, -1, SQLITE_TRANSIENT);
  rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    job = column_job (st);
  if (rc == SQLITE_DONE || (rc == SQLITE_ROW && job == NULL))
    g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_NOT_FOUND,
                 "no job with %s %s", what, value);
  else if (rc != SQLITE_ROW)
    set_db_error (self, error, "get");
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  return job;
}

static JwJob *
sqlite_get (JwLedger *ledger, const char *id, GError **error)
{
  return get_one ((SqliteLedger *)ledger, ST_GET, id, "id", error);
}

static JwJob *
sqlite_lookup_key (JwLedger *ledger, const char *key, GError **error)
{
  return get_one ((SqliteLedger *)ledger, ST_KEY, key, "idempotency key",
                  error);
}

static GPtrArray *
sqlite_list (JwLedger *ledger, const JwState *state, const char *before,
             guint limit, GError **error)
{
  SqliteLedger *self = (SqliteLedger *)ledger;
  sqlite3_stmt *st = self->st[state ? ST_LIST_STATE : ST_LIST];

  /* Ids are lower-case base32: "~" sorts after every one of them. */
  sqlite3_bind_text (st, 1, before ? before : "~", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (st, 2, limit);
  if (state != NULL)
    sqlite3_bind_text (st, 3, jw_state_to_string (*state), -1, SQLITE_STATIC);
  return collect_jobs (self, st, error);
}

static gboolean
job_exists (SqliteLedger *self, const char *id)
{
  sqlite3_stmt *st = self->st[ST_SEQ];
  gboolean found;

  sqlite3_bind_text (st, 1, id, -1, SQLITE_TRANSIENT);
  found = sqlite3_step (st) == SQLITE_ROW;
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  return found;
}

static GPtrArray *
sqlite_events (JwLedger *ledger, const char *id, gint64 after, guint limit,
               gboolean *more, GError **error)
{
  SqliteLedger *self = (SqliteLedger *)ledger;
  sqlite3_stmt *st = self->st[ST_EVENTS];
  g_autoptr (GPtrArray) events =
      g_ptr_array_new_with_free_func ((GDestroyNotify)jw_event_free);
  gboolean extra = FALSE;
  int rc;

  /* One row more than asked says whether more follow. */
  sqlite3_bind_text (st, 1, id, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64 (st, 2, after);
  sqlite3_bind_int64 (st, 3, (gint64)limit + 1);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      g_autoptr (GBytes) json = NULL;

      if (events->len == limit)
        {
          extra = TRUE;
          continue;
        }
      json = g_bytes_new (sqlite3_column_blob (st, 2),
                          (gsize)sqlite3_column_bytes (st, 2));
      g_ptr_array_add (events,
                       jw_event_new (sqlite3_column_int64 (st, 0),
                                     (const char *)sqlite3_column_text (st, 1),
                                     json));
    }
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  if (rc != SQLITE_DONE)
    {
      set_db_error (self, error, "reading events");
      return NULL;
    }
  if (events->len == 0 && !job_exists (self, id))
    {
      g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_NOT_FOUND,
                   "no job with id %s", id);
      return NULL;
    }
  if (more)
    *more = extra;
  return g_steal_pointer (&events);
}

static GPtrArray *
sqlite_unfinished (JwLedger *ledger, GError **error)
{
  SqliteLedger *self = (SqliteLedger *)ledger;

  return collect_jobs (self, self->st[ST_UNFINISHED], error);
}

static gint
sqlite_expire (JwLedger *ledger, gint64 finished_before_ms, guint limit,
               GError **error)
{
  SqliteLedger *self = (SqliteLedger *)ledger;
  sqlite3_stmt *st = self->st[ST_EXPIRED];
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  guint i;
  int rc;

  sqlite3_bind_int64 (st, 1, finished_before_ms);
  sqlite3_bind_int64 (st, 2, limit);
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (ids, g_strdup ((const char *)sqlite3_column_text (st, 0)));
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  if (rc != SQLITE_DONE)
    {
      set_db_error (self, error, "finding expired jobs");
      return -1;
    }
  if (ids->len == 0)
    return 0;

  if (!begin (self, error))
    return -1;
  for (i = 0; i < ids->len; i++)
    {
      sqlite3_bind_text (self->st[ST_DELETE_EVENTS], 1, ids->pdata[i], -1,
                         SQLITE_STATIC);
      if (!step_done (self, self->st[ST_DELETE_EVENTS], "delete events", error))
        return -1;
      sqlite3_bind_text (self->st[ST_DELETE_JOB], 1, ids->pdata[i], -1,
                         SQLITE_STATIC);
      if (!step_done (self, self->st[ST_DELETE_JOB], "delete job", error))
        return -1;
      self->pending++;
    }
  return (gint)ids->len;
}

static gboolean
sqlite_save_type (JwLedger *ledger, const char *name, JsonNode *description,
                  GError **error)
{
  SqliteLedger *self = (SqliteLedger *)ledger;
  sqlite3_stmt *st = self->st[ST_SAVE_TYPE];

  if (!begin (self, error))
    return FALSE;
  sqlite3_bind_text (st, 1, name, -1, SQLITE_TRANSIENT);
  bind_json (st, 2, description);
  sqlite3_bind_int64 (st, 3, jw_now_ms ());
  if (!step_done (self, st, "save type", error))
    return FALSE;
  self->pending++;
  return TRUE;
}

static GHashTable *
sqlite_load_types (JwLedger *ledger, GError **error)
{
  SqliteLedger *self = (SqliteLedger *)ledger;
  sqlite3_stmt *st = self->st[ST_LOAD_TYPES];
  g_autoptr (GHashTable) types = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)json_node_unref);
  int rc;

  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      const char *name = (const char *)sqlite3_column_text (st, 0);
      JsonNode *description = column_json (st, 1);

      /* A damaged row is skipped: a worker's next hello records it again. */
      if (name == NULL || description == NULL
          || !JSON_NODE_HOLDS_OBJECT (description))
        {
          g_clear_pointer (&description, json_node_unref);
          continue;
        }
      g_hash_table_replace (types, g_strdup (name), description);
    }
  sqlite3_reset (st);
  if (rc != SQLITE_DONE)
    {
      set_db_error (self, error, "reading types");
      return NULL;
    }
  return g_steal_pointer (&types);
}

static guint
sqlite_pending (JwLedger *ledger)
{
  return ((SqliteLedger *)ledger)->pending;
}

static gboolean
sqlite_flush (JwLedger *ledger, GError **error)
{
  SqliteLedger *self = (SqliteLedger *)ledger;
  gboolean ok;

  if (!self->in_transaction)
    return TRUE;
  ok = step_done (self, self->st[ST_COMMIT], "commit", error);
  if (!ok && !sqlite3_get_autocommit (self->db))
    /* SQLite keeps some failed commits open (SQLITE_BUSY); end it so that
     * the store's state is the file's. */
    step_done (self, self->st[ST_ROLLBACK], "rollback", NULL);
  self->in_transaction = FALSE;
  self->pending = 0;
  return ok;
}

static void
sqlite_free (JwLedger *ledger)
{
  SqliteLedger *self = (SqliteLedger *)ledger;
  g_autoptr (GError) error = NULL;
  guint i;

  if (self->db != NULL && !sqlite_flush (ledger, &error))
    g_warning ("last flush failed error=%s", error->message);
  for (i = 0; i < N_STATEMENTS; i++)
    sqlite3_finalize (self->st[i]);
  sqlite3_close (self->db);
  g_free (self->path);
  g_free (self);
}

static const JwLedgerVTable sqlite_vtable = {
  .name = "sqlite",
  .put = sqlite_put,
  .update = sqlite_update,
  .append = sqlite_append,
  .get = sqlite_get,
  .list = sqlite_list,
  .events = sqlite_events,
  .lookup_key = sqlite_lookup_key,
  .unfinished = sqlite_unfinished,
  .expire = sqlite_expire,
  .save_type = sqlite_save_type,
  .load_types = sqlite_load_types,
  .pending = sqlite_pending,
  .flush = sqlite_flush,
  .free = sqlite_free,
};

static gboolean
exec (SqliteLedger *self, const char *sql, GError **error)
{
  char *message = NULL;

  if (sqlite3_exec (self->db, sql, NULL, NULL, &message) == SQLITE_OK)
    return TRUE;
  if (sqlite3_errcode (self->db) == SQLITE_BUSY)
    g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_FAILED,
                 "ledger %s is in use by another process", self->path);
  else
    g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_FAILED,
                 "ledger %s: %s", self->path,
                 message ? message : sqlite3_errmsg (self->db));
  sqlite3_free (message);
  return FALSE;
}

/* Pragmas, the lock and the schema. */
static gboolean
prepare_file (SqliteLedger *self, JwLedgerSync sync, GError **error)
{
  g_autofree char *pragmas = NULL;
  g_autofree char *set_version = NULL;
  sqlite3_stmt *st = NULL;
  gint64 version = 0;

  /* EXCLUSIVE locking: the first write below takes the lock and keeps it,
   * so a second broker on the same file fails here rather than interleave
   * its writes; WAL then needs no shared memory. */
  pragmas = g_strdup_printf ("PRAGMA locking_mode = EXCLUSIVE;"
                             "PRAGMA journal_mode = WAL;"
                             "PRAGMA synchronous = %s;"
                             "PRAGMA foreign_keys = OFF;",
                             jw_ledger_sync_to_string (sync));
  if (!exec (self, pragmas, error))
    return FALSE;

  if (sqlite3_prepare_v2 (self->db, "PRAGMA user_version", -1, &st, NULL)
          == SQLITE_OK
      && sqlite3_step (st) == SQLITE_ROW)
    version = sqlite3_column_int64 (st, 0);
  sqlite3_finalize (st);
  if (version > SCHEMA_VERSION)
    {
      g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_FAILED,
                   "ledger %s has schema version %" G_GINT64_FORMAT
                   ", newer than this broker's %d",
                   self->path, version, SCHEMA_VERSION);
      return FALSE;
    }

  set_version = g_strdup_printf ("PRAGMA user_version = %d; COMMIT",
                                 SCHEMA_VERSION);
  if (!exec (self, "BEGIN IMMEDIATE", error) || !exec (self, schema, error)
      || !exec (self, set_version, error))
    return FALSE;
  return TRUE;
}

JwLedger *
jw_ledger_sqlite_new (const char *path, JwLedgerSync sync, GError **error)
{
  SqliteLedger *self;
  g_autofree char *dir = NULL;
  guint i;
  int rc;

  g_return_val_if_fail (path != NULL, NULL);

  dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0700) < 0)
    {
      int saved = errno;

      g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_FAILED,
                   "cannot create the ledger directory %s: %s", dir,
                   g_strerror (saved));
      return NULL;
    }

  self = g_new0 (SqliteLedger, 1);
  self->parent.vtable = &sqlite_vtable;
  self->path = g_strdup (path);

  rc = sqlite3_open_v2 (
      path, &self->db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_FAILED,
                   "cannot open ledger %s: %s", path,
                   self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
      goto fail;
    }
  sqlite3_extended_result_codes (self->db, 0);
  if (!prepare_file (self, sync, error))
    goto fail;

  for (i = 0; i < N_STATEMENTS; i++)
    if (sqlite3_prepare_v3 (self->db, statement_sql[i], -1,
                            SQLITE_PREPARE_PERSISTENT, &self->st[i], NULL)
        != SQLITE_OK)
      {
        set_db_error (self, error, "preparing a statement");
        goto fail;
      }
  return &self->parent;

fail:
  for (i = 0; i < N_STATEMENTS; i++)
    sqlite3_finalize (self->st[i]);
  sqlite3_close (self->db);
  g_free (self->path);
  g_free (self);
  return NULL;
}
