/* ledger-memory: the ledger kept in process memory, for tests and for a
 * broker run without persistence. Jobs sit in a tree ordered by id, which
 * is creation order, so that listing newest first is a walk backwards. */
#include "ledger.h"

typedef struct
{
  JwJob *job;
  GPtrArray *events; /* JwEvent, events->pdata[i]->seq == i + 1 */
} Record;

typedef struct
{
  JwLedger parent;
  GTree *records;   /* id (owned copy) → Record */
  GHashTable *keys; /* idempotency key → job id, both owned */
  GHashTable *types; /* job type name → description (JsonNode), owned */
} MemoryLedger;

static void
record_free (gpointer data)
{
  Record *rec = data;

  jw_job_free (rec->job);
  g_ptr_array_unref (rec->events);
  g_free (rec);
}

static int
compare_ids (gconstpointer a, gconstpointer b, gpointer user_data)
{
  return g_strcmp0 (a, b);
}

static Record *
lookup (MemoryLedger *self, const char *id, GError **error)
{
  Record *rec = g_tree_lookup (self->records, id);

  if (rec == NULL)
    g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_NOT_FOUND,
                 "no job with id %s", id);
  return rec;
}

static gboolean
memory_put (JwLedger *ledger, const JwJob *job, GError **error)
{
  MemoryLedger *self = (MemoryLedger *)ledger;
  Record *rec;

  if (g_tree_lookup (self->records, job->id) != NULL
      || (job->idempotency_key != NULL
          && g_hash_table_contains (self->keys, job->idempotency_key)))
    {
      g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_EXISTS,
                   "job %s is already recorded", job->id);
      return FALSE;
    }

  rec = g_new0 (Record, 1);
  rec->job = jw_job_copy (job);
  rec->job->seq = 0;
  rec->events = g_ptr_array_new_with_free_func ((GDestroyNotify)jw_event_free);
  g_tree_insert (self->records, g_strdup (job->id), rec);
  if (job->idempotency_key != NULL)
    g_hash_table_insert (self->keys, g_strdup (job->idempotency_key),
                         g_strdup (job->id));
  return TRUE;
}

/* Replaces rec's snapshot but keeps the seq that its events say. */
static void
replace_job (Record *rec, const JwJob *job)
{
  JwJob *old = rec->job;

  rec->job = jw_job_copy (job);
  rec->job->seq = rec->events->len;
  jw_job_free (old);
}

static gboolean
memory_update (JwLedger *ledger, const JwJob *job, GError **error)
{
  MemoryLedger *self = (MemoryLedger *)ledger;
  Record *rec = lookup (self, job->id, error);

  if (rec == NULL)
    return FALSE;

  replace_job (rec, job);
  return TRUE;
}

static gboolean
memory_append (JwLedger *ledger, const JwJob *job, const char *type,
               GBytes *json, GError **error)
{
  MemoryLedger *self = (MemoryLedger *)ledger;
  Record *rec = lookup (self, job->id, error);

  if (rec == NULL)
    return FALSE;
  if (job->seq != (gint64)rec->events->len + 1)
    {
      g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_SEQ,
                   "job %s: event seq %" G_GINT64_FORMAT " after %u", job->id,
                   job->seq, rec->events->len);
      return FALSE;
    }

  g_ptr_array_add (rec->events, jw_event_new (job->seq, type, json));
  replace_job (rec, job);
  return TRUE;
}

static JwJob *
memory_get (JwLedger *ledger, const char *id, GError **error)
{
  Record *rec = lookup ((MemoryLedger *)ledger, id, error);

  return rec ? jw_job_copy (rec->job) : NULL;
}

static GPtrArray *
memory_list (JwLedger *ledger, const JwState *state, const char *before,
             guint limit, GError **error)
{
  MemoryLedger *self = (MemoryLedger *)ledger;
  GPtrArray *jobs;
  GTreeNode *node;

  jobs = g_ptr_array_new_with_free_func ((GDestroyNotify)jw_job_free);

  /* Start at the newest job, or at the newest one older than before. */
  if (before != NULL)
    {
      node = g_tree_lower_bound (self->records, before);
      node =
          node ? g_tree_node_previous (node) : g_tree_node_last (self->records);
    }
  else
    node = g_tree_node_last (self->records);

  for (; node != NULL && jobs->len < limit; node = g_tree_node_previous (node))
    {
      Record *rec = g_tree_node_value (node);

      if (state == NULL || rec->job->state == *state)
        g_ptr_array_add (jobs, jw_job_copy (rec->job));
    }
  return jobs;
}

static GPtrArray *
memory_events (JwLedger *ledger, const char *id, gint64 after, guint limit,
               gboolean *more, GError **error)
{
  Record *rec = lookup ((MemoryLedger *)ledger, id, error);
  GPtrArray *events;
  guint i;

  if (rec == NULL)
    return NULL;

  events = g_ptr_array_new_with_free_func ((GDestroyNotify)jw_event_free);
  for (i = (guint)CLAMP (after, 0, (gint64)rec->events->len);
       i < rec->events->len && events->len < limit; i++)
    {
      JwEvent *e = g_ptr_array_index (rec->events, i);
      g_ptr_array_add (events, jw_event_new (e->seq, e->type, e->json));
    }
  if (more)
    *more = i < rec->events->len;
  return events;
}

static JwJob *
memory_lookup_key (JwLedger *ledger, const char *key, GError **error)
{
  MemoryLedger *self = (MemoryLedger *)ledger;
  const char *id = g_hash_table_lookup (self->keys, key);

  if (id == NULL)
    {
      g_set_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_NOT_FOUND,
                   "no job with idempotency key %s", key);
      return NULL;
    }
  return memory_get (ledger, id, error);
}

static gboolean
add_unfinished (gpointer key, gpointer value, gpointer data)
{
  Record *rec = value;

  if (!jw_state_is_terminal (rec->job->state))
    g_ptr_array_add (data, jw_job_copy (rec->job));
  return FALSE;
}

static GPtrArray *
memory_unfinished (JwLedger *ledger, GError **error)
{
  MemoryLedger *self = (MemoryLedger *)ledger;
  GPtrArray *jobs =
      g_ptr_array_new_with_free_func ((GDestroyNotify)jw_job_free);

  g_tree_foreach (self->records, add_unfinished, jobs);
  return jobs;
}

static gint
memory_expire (JwLedger *ledger, gint64 finished_before_ms, guint limit,
               GError **error)
{
  MemoryLedger *self = (MemoryLedger *)ledger;
  g_autoptr (GPtrArray) doomed = g_ptr_array_new_with_free_func (g_free);
  GTreeNode *node;
  guint i;

  for (node = g_tree_node_first (self->records);
       node != NULL && doomed->len < limit; node = g_tree_node_next (node))
    {
      Record *rec = g_tree_node_value (node);

      if (jw_state_is_terminal (rec->job->state) && rec->job->finished_ms > 0
          && rec->job->finished_ms < finished_before_ms)
        g_ptr_array_add (doomed, g_strdup (rec->job->id));
    }
  for (i = 0; i < doomed->len; i++)
    {
      Record *rec = g_tree_lookup (self->records, doomed->pdata[i]);

      if (rec->job->idempotency_key != NULL)
        g_hash_table_remove (self->keys, rec->job->idempotency_key);
      g_tree_remove (self->records, doomed->pdata[i]);
    }
  return (gint)doomed->len;
}

static gboolean
memory_save_type (JwLedger *ledger, const char *name, JsonNode *description,
                  GError **error)
{
  MemoryLedger *self = (MemoryLedger *)ledger;

  g_hash_table_replace (self->types, g_strdup (name),
                        json_node_copy (description));
  return TRUE;
}

static GHashTable *
memory_load_types (JwLedger *ledger, GError **error)
{
  MemoryLedger *self = (MemoryLedger *)ledger;
  GHashTable *types = g_hash_table_new_full (
      g_str_hash, g_str_equal, g_free, (GDestroyNotify)json_node_unref);
  GHashTableIter iter;
  gpointer name, description;

  g_hash_table_iter_init (&iter, self->types);
  while (g_hash_table_iter_next (&iter, &name, &description))
    g_hash_table_insert (types, g_strdup (name), json_node_copy (description));
  return types;
}

static guint
memory_pending (JwLedger *ledger)
{
  return 0;
}

static gboolean
memory_flush (JwLedger *ledger, GError **error)
{
  return TRUE;
}

static void
memory_free (JwLedger *ledger)
{
  MemoryLedger *self = (MemoryLedger *)ledger;

  g_tree_destroy (self->records);
  g_hash_table_unref (self->keys);
  g_hash_table_unref (self->types);
  g_free (self);
}

static const JwLedgerVTable memory_vtable = {
  .name = "memory",
  .put = memory_put,
  .update = memory_update,
  .append = memory_append,
  .get = memory_get,
  .list = memory_list,
  .events = memory_events,
  .lookup_key = memory_lookup_key,
  .unfinished = memory_unfinished,
  .expire = memory_expire,
  .save_type = memory_save_type,
  .load_types = memory_load_types,
  .pending = memory_pending,
  .flush = memory_flush,
  .free = memory_free,
};

JwLedger *
jw_ledger_memory_new (void)
{
  MemoryLedger *self = g_new0 (MemoryLedger, 1);

  self->parent.vtable = &memory_vtable;
  self->records = g_tree_new_full (compare_ids, NULL, g_free, record_free);
  self->keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->types = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify)json_node_unref);
  return &self->parent;
}
