/* Fuzzes what a client asks of the pusher: the job lists and tokens= of
 * the multi-job endpoints, job tokens themselves, and WebSocket client
 * messages. The first byte chooses the parser; the rest is its input. */
#include "jw-token.h"
#include "request.h"

#include <stdint.h>
#include <string.h>

#define MAX_JOBS 100
#define JOB "01hzy3m9bq7k2x4v6n8p0r2t4w"
#define NOW 1800000000

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
job_list (const char *str, gboolean need_seq)
{
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GArray) cursors = g_array_new (FALSE, FALSE, sizeof (gint64));

  if (!jw_request_parse_job_list (str, MAX_JOBS, need_seq, ids, cursors))
    return;
  g_assert (ids->len >= 1 && ids->len <= MAX_JOBS);
  g_assert (cursors->len == ids->len);
  for (guint i = 0; i < ids->len; i++)
    {
      g_assert (jw_id_valid (g_ptr_array_index (ids, i), -1));
      g_assert (g_array_index (cursors, gint64, i) >= 0);
      for (guint j = 0; j < i; j++)
        g_assert (
            strcmp (g_ptr_array_index (ids, i), g_ptr_array_index (ids, j))
            != 0);
    }
}

static void
tokens (const char *str, guint n)
{
  g_auto (GStrv) toks = NULL;

  if (jw_request_split_tokens (str, n, &toks) && toks != NULL)
    g_assert (g_strv_length (toks) == n);
}

/* A token passes only when it is exactly the one minted for the job and
 * the expiry it names, and that expiry is still ahead. */
static void
token (const char *str)
{
  static const char key[] = "0123456789abcdef0123456789abcdef";
  g_autoptr (GBytes) secret = g_bytes_new_static (key, sizeof key - 1);
  g_autoptr (GError) error = NULL;

  if (jw_token_check (secret, JOB, str, NOW, &error))
    {
      gint64 expiry = g_ascii_strtoll (str, NULL, 10);
      g_autofree char *minted = jw_token_new (secret, JOB, expiry);

      g_assert (expiry > NOW);
      g_assert (strcmp (minted, str) == 0);
    }
  else
    g_assert (error != NULL && error->domain == JW_TOKEN_ERROR);
}

static void
ws_command (const char *data, gsize len)
{
  JwWsCommand cmd;
  const char *code = NULL, *message = NULL;

  if (jw_ws_command_parse (data, len, &cmd, &code, &message))
    {
      g_assert (jw_id_valid (cmd.job, -1));
      g_assert (cmd.after >= 0);
    }
  else
    {
      g_assert (code != NULL && message != NULL);
      g_assert (cmd.job[0] == '\0' || jw_id_valid (cmd.job, -1));
    }
  jw_ws_command_clear (&cmd);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *str = NULL;

  if (size < 1)
    return 0;
  str = g_strndup ((const char *)data + 1, size - 1);
  switch (data[0] % 5)
    {
    case 0: job_list (str, FALSE); break;
    case 1: job_list (str, TRUE); break;
    case 2: tokens (str, data[0] / 5 % 8); break;
    case 3: token (str); break;
    default: ws_command ((const char *)data + 1, size - 1); break;
    }
  return 0;
}
