/* jobwire-worker: runs jobs of the built-in types for the broker, one at a
 * time, until SIGINT or SIGTERM. */
#include <glib-unix.h>
#include <locale.h>
#include <unistd.h>

#include "jw-config.h"
#include "jw-log.h"
#include "jw-zmq.h"
#include "worker.h"

static gboolean
quit_loop (gpointer data)
{
  g_info ("signal received, stopping");
  g_main_loop_quit (data);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (JwConfig) cfg = NULL;
  g_autoptr (JwWorker) worker = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  g_autofree char *name = NULL;
  GOptionEntry entries[] = {
    { "name", 'n', 0, G_OPTION_ARG_STRING, &name,
      "Name of this worker in the broker's logs (default HOST-PID)", "NAME" },
    { NULL }
  };

  setlocale (LC_ALL, "");
  jw_log_init ();
  context = g_option_context_new ("- jobwire worker");
  g_option_context_set_summary (
      context,
      "Runs jobs of the types sleep and checksum for the jobwire broker.\n"
      "Settings of section [worker]:\n"
      "  heartbeat-ms   heartbeat interval until the broker sets one (1000)\n"
      "  checksum-root  directory that checksum paths are relative to; no\n"
      "                 path may lead out of it (default: \"files\" in the\n"
      "                 directory the worker starts in)\n"
      "Example: --set worker.checksum-root=/srv/jobwire/files");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_group (context, jw_config_option_group ());
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("jobwire-worker: %s\n", error->message);
      return 2;
    }

  cfg = jw_config_load (&error);
  if (cfg == NULL)
    {
      g_printerr ("jobwire-worker: %s\n", error->message);
      return 1;
    }
  if (name == NULL)
    name = g_strdup_printf ("%s-%d", g_get_host_name (), (int)getpid ());

  jw_zmq_init ();
  loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGINT, quit_loop, loop);
  g_unix_signal_add (SIGTERM, quit_loop, loop);

  worker = jw_worker_new (cfg, name, &error);
  if (worker == NULL)
    {
      g_critical ("cannot reach the broker endpoints: %s", error->message);
      return 1;
    }
  g_main_loop_run (loop);
  g_clear_pointer (&worker, jw_worker_free);
  g_info ("stopped");
  return 0;
}
