/* Fuzzes the broker's decoding of the wire protocol with a real broker
 * (ledger in memory, its sockets bound in a fresh runtime directory): an
 * input is a sequence of messages, each handed to the handler of the
 * socket it would arrive on. Anything a peer can send is in reach: api
 * commands, worker messages with their ROUTER envelope, worker events and
 * queries. The broker must never crash, and every job it holds must stay
 * in a state it can be in.
 *
 * Input: messages separated by 0x1d; in each, the first byte chooses the
 * socket (commands, workers, worker-events, queries) and 0x1e separates
 * the frames. "@job" in a frame stands for the id of a job the broker
 * holds, so that worker events can reach a job the fuzzer cannot name. */
#include "broker-private.h"
#include "jw-config.h"
#include "jw-msg.h"

#include <glib/gstdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MSG_SEP 0x1d
#define FRAME_SEP 0x1e
#define MAX_MESSAGES 32

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static JwBroker *broker;
static JwConfig *config;
static char *runtime_dir;

static GLogWriterOutput
quiet (GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data)
{
  return G_LOG_WRITER_HANDLED;
}

/* At exit: the broker, then the files of its sockets and their directory. */
static void
tear_down (void)
{
  GDir *dir;
  const char *name;

  g_clear_pointer (&broker, jw_broker_free); /* and its ledger */
  g_clear_pointer (&config, jw_config_free);
  dir = g_dir_open (runtime_dir, 0, NULL);
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (runtime_dir, name, NULL);

      g_unlink (path);
    }
  if (dir != NULL)
    g_dir_close (dir);
  g_rmdir (runtime_dir);
  g_free (runtime_dir);
}

static JwBroker *
the_broker (void)
{
  g_autoptr (GError) error = NULL;

  if (broker != NULL)
    return broker;
  g_log_set_writer_func (quiet, NULL, NULL);
  runtime_dir = g_dir_make_tmp ("jwfz-XXXXXX", &error);
  g_assert_no_error (error);
  config = jw_config_new (NULL, runtime_dir, &error);
  g_assert_no_error (error);
  broker = jw_broker_new (config, jw_ledger_memory_new (), &error);
  g_assert_no_error (error);
  /* After czmq's own exit handler, which runs the later registered. */
  atexit (tear_down);
  return broker;
}

/* The id of some job the broker holds, or a valid id it does not know. */
static const char *
some_job (JwBroker *self)
{
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init (&iter, self->active);
  if (g_hash_table_iter_next (&iter, &key, NULL))
    return key;
  return "01hzy3m9bq7k2x4v6n8p0r2t4w";
}

static void
add_frame (JwMsg *msg, const char *data, gsize len, const char *job)
{
  const char *at = len >= 4 ? g_strstr_len (data, len, "@job") : NULL;
  GString *frame;

  if (at == NULL)
    {
      jw_msg_add_data (msg, data, len);
      return;
    }
  frame = g_string_new_len (data, at - data);
  g_string_append (frame, job);
  g_string_append_len (frame, at + 4, len - (at + 4 - data));
  jw_msg_add_data (msg, frame->str, frame->len);
  g_string_free (frame, TRUE);
}

static void
handle (JwBroker *self, const uint8_t *data, size_t size)
{
  static void (*const handlers[]) (JwBroker *, JwMsg *) = {
    broker_handle_command,
    broker_handle_worker,
    broker_handle_worker_event,
    broker_handle_query,
  };
  g_autoptr (JwMsg) msg = jw_msg_new ();
  const char *job = some_job (self);
  size_t start = 1;

  if (size == 0)
    return;
  for (size_t i = 1; i <= size; i++)
    if (i == size || data[i] == FRAME_SEP)
      {
        add_frame (msg, (const char *)data + start, i - start, job);
        start = i + 1;
      }
  handlers[data[0] % G_N_ELEMENTS (handlers)](self, msg);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  JwBroker *self = the_broker ();
  size_t start = 0;
  guint n = 0;
  GHashTableIter iter;
  gpointer value;

  for (size_t i = 0; i <= size && n < MAX_MESSAGES; i++)
    if (i == size || data[i] == MSG_SEP)
      {
        handle (self, data + start, i - start);
        start = i + 1;
        n++;
      }
  /* What the handlers left for the main loop: dispatch, commits. */
  for (guint i = 0; i < 4 && g_main_context_iteration (NULL, FALSE); i++)
    ;

  g_hash_table_iter_init (&iter, self->active);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      ActiveJob *aj = value;

      g_assert (aj->job != NULL);
      g_assert (!jw_state_is_terminal (aj->job->state));
    }
  return 0;
}
