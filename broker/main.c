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

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JwConfig) config = NULL;
  g_autoptr (JwBroker) broker = NULL;
  g_autoptr (GMainLoop) loop = NULL;
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
  broker = jw_broker_new (config, jw_ledger_memory_new (), &error);
  if (broker == NULL)
    {
      g_printerr ("jobwire-broker: %s\n", error->message);
      close (lock_fd);
      return 1;
    }
  g_message ("broker started epoch=%s runtime-dir=%s ledger=memory",
             jw_broker_get_epoch (broker), jw_config_runtime_dir (config));

  sigint_id = g_unix_signal_add (SIGINT, on_signal, loop);
  sigterm_id = g_unix_signal_add (SIGTERM, on_signal, loop);

  jw_sd_ready ("broker ready, epoch %s", jw_broker_get_epoch (broker));

  g_main_loop_run (loop);

  jw_sd_stopping ();
  g_source_remove (sigint_id);
  g_source_remove (sigterm_id);
  g_clear_pointer (&broker, jw_broker_free);
  g_message ("broker stopped");
  close (lock_fd);
  return 0;
}
