/* jobwire-broker: command line, the lock that keeps a second broker off the
 * same runtime directory, signals, and the main loop. */
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "broker.h"
#include "jw-config.h"
#include "jw-log.h"
#include "jw-systemd.h"
#include "jw-zmq.h"

static gboolean
on_signal (gpointer user_data)
{
  GMainLoop *loop = user_data;

  g_info ("signal received, stopping");
  g_main_loop_quit (loop);
  return G_SOURCE_CONTINUE;
}

/* How often the STATUS= summary for systemd is brought up to date. */
#define STATUS_INTERVAL_MS 200

static gboolean
broker_state (GString *status, gpointer data)
{
  guint queued, running, workers;

  jw_broker_counts (data, &queued, &running, &workers);
  g_string_printf (status, "%u queued, %u running, %u workers", queued, running,
                   workers);
  return TRUE;
}

/* Takes RUNTIME/broker.lock. Binding an ipc path that another broker holds
 * would silently take it over, so a second broker must not start. Returns
 * the open descriptor, which holds the lock until the process ends. */
static int
take_lock (const char *runtime_dir, GError **error)
{
  g_autofree char *path = g_build_filename (runtime_dir, "broker.lock", NULL);
  int fd, saved;

  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot open %s: %s", path, g_strerror (saved));
      return -1;
    }
  if (flock (fd, LOCK_EX | LOCK_NB) < 0)
    {
      saved = errno;
      close (fd);
      if (saved == EWOULDBLOCK)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                     "another broker runs on %s (%s is locked)", runtime_dir,
                     path);
      else
        g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                     "cannot lock %s: %s", path, g_strerror (saved));
      return -1;
    }
  return fd;
}

/* Where the ledger lives by default: [broker] state-dir, else systemd's
 * $STATE_DIRECTORY (its first entry), else $XDG_STATE_HOME/jobwire or
 * ~/.local/state/jobwire. */
static char *
state_dir (JwConfig *config)
{
  const char *dir = jw_config_get_string (config, "broker", "state-dir", NULL);
  const char *sd = g_getenv ("STATE_DIRECTORY");

  if (dir != NULL && *dir != '\0')
    return g_strdup (dir);
  if (sd != NULL && *sd != '\0')
    {
      const char *colon = strchr (sd, ':');

      return colon ? g_strndup (sd, colon - sd) : g_strdup (sd);
    }
  return g_build_filename (g_get_user_state_dir (), "jobwire", NULL);
}

/* The store named by [broker] ledger: "memory", or the path of the SQLite
 * file (default STATE_DIR/ledger.sqlite) with [broker] synchronous. *desc
 * says which, for the log. */
static JwLedger *
open_ledger (JwConfig *config, char **desc, GError **error)
{
  const char *path = jw_config_get_string (config, "broker", "ledger", NULL);
  const char *sync_str =
      jw_config_get_string (config, "broker", "synchronous", "normal");
  g_autofree char *def = NULL;
  JwLedgerSync sync;
  JwLedger *ledger;

  if (g_strcmp0 (path, "memory") == 0)
    {
      *desc = g_strdup ("memory");
      return jw_ledger_memory_new ();
    }
  if (!jw_ledger_sync_from_string (sync_str, &sync))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "[broker] synchronous must be off, normal or full, not %s",
                   sync_str);
      return NULL;
    }
  if (path == NULL || *path == '\0')
    {
      g_autofree char *dir = state_dir (config);

      def = g_build_filename (dir, "ledger.sqlite", NULL);
      path = def;
    }
  ledger = jw_ledger_sqlite_new (path, sync, error);
  if (ledger != NULL)
    *desc = g_strdup_printf ("%s synchronous=%s", path, sync_str);
  return ledger;
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JwConfig) config = NULL;
  g_autoptr (JwBroker) broker = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  g_autofree char *ledger_desc = NULL;
  JwLedger *ledger;
  guint sigint_id, sigterm_id;
  int lock_fd;

  jw_log_init ();
  jw_zmq_init ();

  ctx = g_option_context_new ("- the jobwire broker");
  g_option_context_set_summary (ctx, "Records jobs, dispatches them to "
                                     "workers and publishes their events.");
  g_option_context_add_group (ctx, jw_config_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("jobwire-broker: %s\n", error->message);
      return 2;
    }

  config = jw_config_load (&error);
  if (config == NULL)
    {
      g_printerr ("jobwire-broker: %s\n", error->message);
      return 1;
    }
  lock_fd = take_lock (jw_config_runtime_dir (config), &error);
  if (lock_fd < 0)
    {
      g_printerr ("jobwire-broker: %s\n", error->message);
      return 1;
    }

  loop = g_main_loop_new (NULL, FALSE);
  ledger = open_ledger (config, &ledger_desc, &error);
  if (ledger != NULL)
    broker = jw_broker_new (config, ledger, &error);
  if (broker == NULL)
    {
      g_printerr ("jobwire-broker: %s\n", error->message);
      close (lock_fd);
      return 1;
    }
  g_message ("broker started epoch=%s runtime-dir=%s ledger=%s",
             jw_broker_get_epoch (broker), jw_config_runtime_dir (config),
             ledger_desc);

  sigint_id = g_unix_signal_add (SIGINT, on_signal, loop);
  sigterm_id = g_unix_signal_add (SIGTERM, on_signal, loop);

  /* The ledger is open and every endpoint bound: the broker serves. */
  jw_sd_track (STATUS_INTERVAL_MS, broker_state, broker);

  g_main_loop_run (loop);

  jw_sd_stopping ();
  g_source_remove (sigint_id);
  g_source_remove (sigterm_id);
  g_clear_pointer (&broker, jw_broker_free);
  g_message ("broker stopped");
  close (lock_fd);
  return 0;
}
