/* request: what a client asks of the pusher, parsed without side effects:
 * the job lists and tokens of the multi-job endpoints and the messages a
 * WebSocket client sends. Pure functions, fuzzed by tests/fuzz. */
#pragma once

#include <glib.h>

#include "jw-id.h"

G_BEGIN_DECLS

/* Parses "ID[:SEQ],…" into ids (new strings) and cursors (0 without a
 * seq): from 1 to max distinct job ids; need_seq requires every :SEQ. */
gboolean jw_request_parse_job_list (const char *str, guint max,
                                    gboolean need_seq, GPtrArray *ids,
                                    GArray *cursors);

/* Splits tokens=T1,T2,… for n_jobs jobs: *out is NULL when str is NULL or
 * empty, else one token per job. FALSE when the count differs. */
gboolean jw_request_split_tokens (const char *str, guint n_jobs, GStrv *out);

typedef enum
{
  JW_WS_SUBSCRIBE,
  JW_WS_UNSUBSCRIBE,
} JwWsOp;

typedef struct
{
  JwWsOp op;
  char job[JW_ID_LEN + 1]; /* "" when the message names no valid job */
  gint64 after;            /* subscribe: 0 when absent */
  char *token;             /* subscribe: NULL when absent */
} JwWsCommand;

/* Parses a WebSocket text message. On failure returns FALSE with the
 * error code and message to answer; cmd->job is set when the message
 * named a valid job, so that the answer can name it. */
gboolean jw_ws_command_parse (const char *data, gsize len, JwWsCommand *cmd,
                              const char **code, const char **message);
void jw_ws_command_clear (JwWsCommand *cmd);

G_END_DECLS
