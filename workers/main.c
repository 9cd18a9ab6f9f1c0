/* jobwire-worker: runs jobs of the built-in types for the broker, one at a
 * time, until SIGINT or SIGTERM. */
#include <glib-unix.h>
#include <locale.h>
#include <signal.h>
#include <unistd.h>

#include "jw-config.h"
#include "jw-log.h"
#include "jw-systemd.h"
#include "jw-zmq.h"
#include "worker.h"

/* How often readiness and the STATUS= summary for systemd are checked. */
#define STATUS_INTERVAL_MS 100

typedef struct
{
  GMainLoop *loop;
  JwWorker *worker;
} Stopper;

static gboolean
quit_loop (gpointer data)
{
  Stopper *stopper = data;

  g_main_loop_quit (stopper->loop);
  return G_SOURCE_REMOVE;
}

/* SIGTERM or SIGINT: finish the running job within [worker] grace-s, else
 * hand it back; a second signal stops at once. */
static gboolean
on_stop_signal (gpointer data)
{
  Stopper *stopper = data;

  jw_sd_stopping ();
  if (stopper->worker == NULL || jw_worker_draining (stopper->worker))
    {
      g_info ("signal received, stopping now");
      g_main_loop_quit (stopper->loop);
      return G_SOURCE_CONTINUE;
    }
  g_info ("signal received, stopping");
  jw_worker_drain (stopper->worker, quit_loop, stopper);
  return G_SOURCE_CONTINUE;
}

/* Ready once the broker's welcome arrived. */
static gboolean
worker_state (GString *status, gpointer data)
{
  const char *job = jw_worker_job_id (data);

  if (!jw_worker_connected (data))
    g_string_assign (status, "waiting for the broker");
  else if (job != NULL)
    g_string_printf (status, "running job %s", job);
  else
    g_string_assign (status, "idle");
  return jw_worker_connected (data);
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
  Stopper stopper = { NULL, NULL };
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
      "Runs jobs for the jobwire broker: the built-in types sleep and\n"
      "checksum and the commands of the key file's [type.NAME] sections.\n"
      "Settings of section [worker]:\n"
      "  heartbeat-ms   heartbeat interval until the broker sets one (1000)\n"
      "  grace-s        on SIGTERM, time to finish the running job before\n"
      "                 handing it back to the broker (10)\n"
      "  types          the types this worker serves (default: all)\n"
      "  kill-grace-s   SIGTERM to SIGKILL of a stopped command (5)\n"
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
  /* A command that does not read its params closes its standard input:
   * that must be a failed write, not the end of the worker. */
  signal (SIGPIPE, SIG_IGN);
  loop = g_main_loop_new (NULL, FALSE);
  stopper.loop = loop;
  g_unix_signal_add (SIGINT, on_stop_signal, &stopper);
  g_unix_signal_add (SIGTERM, on_stop_signal, &stopper);

  worker = jw_worker_new (cfg, name, &error);
  if (worker == NULL)
    {
      g_printerr ("jobwire-worker: cannot start: %s\n", error->message);
      return 1;
    }
  stopper.worker = worker;
  jw_sd_track (STATUS_INTERVAL_MS, worker_state, worker);
  g_main_loop_run (loop);
  stopper.worker = NULL;
  g_clear_pointer (&worker, jw_worker_free);
  g_info ("stopped");
  return 0;
}
