/* ledger: job and event records shared by every store, the snapshot JSON,
 * and the calls that forward to a store's vtable. */
#include "ledger.h"

#include <string.h>

G_DEFINE_QUARK (jw - ledger - error - quark, jw_ledger_error)

JwJob *
jw_job_new (const char *id, const char *type, JsonNode *params)
{
  JwJob *job;

  g_return_val_if_fail (id != NULL && strlen (id) == JW_ID_LEN, NULL);
  g_return_val_if_fail (type != NULL, NULL);

  job = g_new0 (JwJob, 1);
  memcpy (job->id, id, JW_ID_LEN + 1);
  job->type = g_strdup (type);
  if (params != NULL)
    job->params = json_node_copy (params);
  else
    {
      job->params = json_node_new (JSON_NODE_OBJECT);
      json_node_take_object (job->params, json_object_new ());
    }
  job->state = JW_STATE_QUEUED;
  return job;
}

static JsonNode *
copy_node (JsonNode *node)
{
  return node ? json_node_copy (node) : NULL;
}

JwJob *
jw_job_copy (const JwJob *job)
{
  JwJob *copy;

  g_return_val_if_fail (job != NULL, NULL);

  copy = g_memdup2 (job, sizeof *job);
  copy->type = g_strdup (job->type);
  copy->params = copy_node (job->params);
  copy->progress = copy_node (job->progress);
  copy->result = copy_node (job->result);
  copy->error = copy_node (job->error);
  copy->idempotency_key = g_strdup (job->idempotency_key);
  return copy;
}

void
jw_job_free (JwJob *job)
{
  if (job == NULL)
    return;
  g_free (job->type);
  g_clear_pointer (&job->params, json_node_unref);
  g_clear_pointer (&job->progress, json_node_unref);
  g_clear_pointer (&job->result, json_node_unref);
  g_clear_pointer (&job->error, json_node_unref);
  g_free (job->idempotency_key);
  g_free (job);
}

static void
add_time (JsonBuilder *b, const char *member, gint64 ms)
{
  json_builder_set_member_name (b, member);
  if (ms > 0)
    {
      g_autofree char *s = jw_time_format_ms (ms);
      json_builder_add_string_value (b, s);
    }
  else
    json_builder_add_null_value (b);
}

static void
add_node (JsonBuilder *b, const char *member, JsonNode *node)
{
  json_builder_set_member_name (b, member);
  if (node)
    json_builder_add_value (b, json_node_copy (node));
  else
    json_builder_add_null_value (b);
}

JsonNode *
jw_job_to_node (const JwJob *job)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  g_return_val_if_fail (job != NULL, NULL);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "id");
  json_builder_add_string_value (b, job->id);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, job->type);
  json_builder_set_member_name (b, "state");
  json_builder_add_string_value (b, jw_state_to_string (job->state));
  add_node (b, "params", job->params);
  json_builder_set_member_name (b, "attempt");
  json_builder_add_int_value (b, job->attempt);
  add_node (b, "progress", job->progress);
  add_node (b, "result", job->result);
  add_node (b, "error", job->error);
  add_time (b, "created_at", job->created_ms);
  add_time (b, "started_at", job->started_ms);
  add_time (b, "finished_at", job->finished_ms);
  json_builder_set_member_name (b, "seq");
  json_builder_add_int_value (b, job->seq);
  json_builder_set_member_name (b, "cancel_requested");
  json_builder_add_boolean_value (b, job->cancel_requested);
  json_builder_end_object (b);

  return json_builder_get_root (b);
}

gboolean
jw_job_same_body (const JwJob *job, const char *type, JsonNode *params)
{
  g_return_val_if_fail (job != NULL && type != NULL && params != NULL, FALSE);

  return g_strcmp0 (job->type, type) == 0
         && json_node_equal (job->params, params);
}

JwEvent *
jw_event_new (gint64 seq, const char *type, GBytes *json)
{
  JwEvent *event = g_new0 (JwEvent, 1);

  event->seq = seq;
  event->type = g_strdup (type);
  event->json = g_bytes_ref (json);
  return event;
}

void
jw_event_free (JwEvent *event)
{
  if (event == NULL)
    return;
  g_free (event->type);
  g_bytes_unref (event->json);
  g_free (event);
}

gboolean
jw_ledger_put (JwLedger *self, const JwJob *job, GError **error)
{
  g_return_val_if_fail (self != NULL && job != NULL, FALSE);
  return self->vtable->put (self, job, error);
}

gboolean
jw_ledger_update (JwLedger *self, const JwJob *job, GError **error)
{
  g_return_val_if_fail (self != NULL && job != NULL, FALSE);
  return self->vtable->update (self, job, error);
}

gint64
jw_ledger_append (JwLedger *self, const JwJob *job, const char *type,
                  GBytes *json, GError **error)
{
  g_return_val_if_fail (self != NULL && job != NULL, 0);
  g_return_val_if_fail (type != NULL && json != NULL, 0);

  if (!self->vtable->append (self, job, type, json, error))
    return 0;
  return job->seq;
}

JwJob *
jw_ledger_get (JwLedger *self, const char *id, GError **error)
{
  g_return_val_if_fail (self != NULL && id != NULL, NULL);
  return self->vtable->get (self, id, error);
}

GPtrArray *
jw_ledger_list (JwLedger *self, const JwState *state, const char *before,
                guint limit, GError **error)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->vtable->list (self, state, before, limit, error);
}

GPtrArray *
jw_ledger_events (JwLedger *self, const char *id, gint64 after, guint limit,
                  gboolean *more, GError **error)
{
  g_return_val_if_fail (self != NULL && id != NULL, NULL);
  return self->vtable->events (self, id, after, limit, more, error);
}

JwJob *
jw_ledger_lookup_key (JwLedger *self, const char *key, GError **error)
{
  g_return_val_if_fail (self != NULL && key != NULL, NULL);
  return self->vtable->lookup_key (self, key, error);
}

GPtrArray *
jw_ledger_unfinished (JwLedger *self, GError **error)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->vtable->unfinished (self, error);
}

gint
jw_ledger_expire (JwLedger *self, gint64 finished_before_ms, guint limit,
                  GError **error)
{
  g_return_val_if_fail (self != NULL, -1);
  return self->vtable->expire (self, finished_before_ms, limit, error);
}

gboolean
jw_ledger_save_type (JwLedger *self, const char *name, JsonNode *description,
                     GError **error)
{
  g_return_val_if_fail (self != NULL && name != NULL, FALSE);
  g_return_val_if_fail (description != NULL, FALSE);
  return self->vtable->save_type (self, name, description, error);
}

GHashTable *
jw_ledger_load_types (JwLedger *self, GError **error)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->vtable->load_types (self, error);
}

guint
jw_ledger_pending (JwLedger *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->vtable->pending (self);
}

gboolean
jw_ledger_flush (JwLedger *self, GError **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return self->vtable->flush (self, error);
}

void
jw_ledger_free (JwLedger *self)
{
  if (self != NULL)
    self->vtable->free (self);
}

static const char *const sync_names[] = { "off", "normal", "full" };

gboolean
jw_ledger_sync_from_string (const char *str, JwLedgerSync *out)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (sync_names); i++)
    if (g_strcmp0 (str, sync_names[i]) == 0)
      {
        *out = (JwLedgerSync)i;
        return TRUE;
      }
  return FALSE;
}

const char *
jw_ledger_sync_to_string (JwLedgerSync sync)
{
  g_return_val_if_fail (sync <= JW_LEDGER_SYNC_FULL, NULL);
  return sync_names[sync];
}
