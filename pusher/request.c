/* request: parsing of what clients ask of the pusher. */
#include "request.h"

#include <string.h>

#include "jw-json.h"
#include "sse.h"

/* A client message is small and flat. */
#define CMD_MAX_DEPTH 8

gboolean
jw_request_parse_job_list (const char *str, guint max, gboolean need_seq,
                           GPtrArray *ids, GArray *cursors)
{
  g_auto (GStrv) items = NULL;

  if (str == NULL || *str == '\0')
    return FALSE;
  items = g_strsplit (str, ",", -1);
  if (g_strv_length (items) > max)
    return FALSE;
  for (guint i = 0; items[i] != NULL; i++)
    {
      char *colon = strchr (items[i], ':');
      gint64 seq = 0;

      if (colon != NULL)
        *colon = '\0';
      else if (need_seq)
        return FALSE;
      if (!jw_id_valid (items[i], -1)
          || (colon != NULL && !jw_sse_parse_seq (colon + 1, &seq)))
        return FALSE;
      for (guint j = 0; j < ids->len; j++)
        if (strcmp (g_ptr_array_index (ids, j), items[i]) == 0)
          return FALSE;
      g_ptr_array_add (ids, g_strdup (items[i]));
      g_array_append_val (cursors, seq);
    }
  return TRUE;
}

gboolean
jw_request_split_tokens (const char *str, guint n_jobs, GStrv *out)
{
  g_auto (GStrv) toks = NULL;

  *out = NULL;
  if (str == NULL || *str == '\0')
    return TRUE;
  toks = g_strsplit (str, ",", -1);
  if (g_strv_length (toks) != n_jobs)
    return FALSE;
  *out = g_steal_pointer (&toks);
  return TRUE;
}

static gboolean
refuse (const char **code, const char **message, const char *c, const char *m)
{
  *code = c;
  *message = m;
  return FALSE;
}

gboolean
jw_ws_command_parse (const char *data, gsize len, JwWsCommand *cmd,
                     const char **code, const char **message)
{
  g_autoptr (JsonNode) node = jw_json_parse (data, len, CMD_MAX_DEPTH, NULL);
  JsonObject *obj = node ? jw_json_node_object (node) : NULL;
  const char *op = obj ? jw_json_get_string (obj, "op") : NULL;
  const char *job, *token;

  memset (cmd, 0, sizeof *cmd);
  if (op == NULL)
    return refuse (code, message, "invalid_message",
                   "a message is a JSON object with an op");
  if (strcmp (op, "subscribe") == 0)
    cmd->op = JW_WS_SUBSCRIBE;
  else if (strcmp (op, "unsubscribe") == 0)
    cmd->op = JW_WS_UNSUBSCRIBE;
  else
    return refuse (code, message, "invalid_message", "unknown op");

  job = jw_json_get_string (obj, "job");
  if (job == NULL || !jw_id_valid (job, -1))
    return refuse (code, message, "invalid_job_id", "job must be a job id");
  memcpy (cmd->job, job, JW_ID_LEN + 1);
  if (cmd->op == JW_WS_UNSUBSCRIBE)
    return TRUE;

  if (json_object_has_member (obj, "after")
      && (!jw_json_get_int (obj, "after", &cmd->after) || cmd->after < 0))
    return refuse (code, message, "invalid_message",
                   "after must be a non-negative integer");
  token = jw_json_get_string (obj, "token");
  cmd->token = g_strdup (token);
  return TRUE;
}

void
jw_ws_command_clear (JwWsCommand *cmd)
{
  g_clear_pointer (&cmd->token, g_free);
}
