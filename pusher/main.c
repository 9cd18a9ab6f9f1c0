/* jobwire-pusher: streams each job's events to browsers over SSE,
 * WebSocket and long-poll. Command line, signals and the main loop. */
#include "pusher.h"

#include "channel.h"
#include "conn.h"
#include "jw-config.h"
#include "jw-listen.h"
#include "jw-log.h"
#include "jw-systemd.h"
#include "jw-zmq.h"

#include <glib-unix.h>
#include <signal.h>

/* How often readiness and the STATUS= summary for systemd are checked. */
#define STATUS_INTERVAL_MS 100

/* Ready once listening (before the loop runs) and the broker's heartbeats
 * arrive on the events socket. */
static gboolean
pusher_state (GString *status, gpointer data)
{
  gboolean up = jw_pusher_broker_connected (data);

  g_string_printf (status, "%s%u connections, %u channels",
                   up ? "" : "broker not connected, ", jw_conns_count (),
                   jw_channels_count ());
  return up;
}

static gboolean
on_signal (gpointer user_data)
{
  GMainLoop *loop = user_data;

  g_info ("stopping on signal");
  jw_sd_stopping ();
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JwConfig) cfg = NULL;
  g_autoptr (JwPusher) pusher = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  g_autoptr (GSocket) listen_socket = NULL;
  g_autofree char *listen = NULL;
  g_autofree char *url = NULL;
  GOptionEntry entries[] = {
    { "listen", 'l', 0, G_OPTION_ARG_STRING, &listen,
      "Listen on HOST:PORT (IPv4; default 127.0.0.1:8081)", "HOST:PORT" },
    { NULL }
  };

  jw_log_init ();
  jw_zmq_init ();
  /* A browser that vanishes must not kill the process on write. */
  signal (SIGPIPE, SIG_IGN);

  ctx = g_option_context_new ("- stream job events to browsers");
  g_option_context_set_summary (
      ctx, "Streams job events to browsers over SSE, WebSocket and "
           "long-poll.\n"
           "Limits of section [pusher]: max-connections (10000),\n"
           "max-connections-per-address (1000), header-timeout-s (10),\n"
           "idle-timeout-s (120), max-subscriptions (100),\n"
           "ws-max-message (65536), max-backlog (1048576), slow-s (30),\n"
           "send-buffer (262144). See docs/CONFIGURATION.md.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, jw_config_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("jobwire-pusher: %s\n", error->message);
      return 2;
    }
  cfg = jw_config_load (&error);
  if (cfg == NULL)
    {
      g_printerr ("jobwire-pusher: %s\n", error->message);
      return 2;
    }
  if (listen == NULL)
    listen = g_strdup (
        jw_config_get_string (cfg, "pusher", "listen", "127.0.0.1:8081"));

  listen_socket = jw_listen_socket (listen, JW_LISTEN_BACKLOG, &error);
  if (listen_socket == NULL)
    {
      g_critical ("%s", error->message);
      return 1;
    }

  loop = g_main_loop_new (NULL, FALSE);
  pusher = jw_pusher_new (cfg, listen_socket, &error);
  if (pusher == NULL)
    {
      g_printerr ("jobwire-pusher: cannot start: %s\n", error->message);
      return 1;
    }
  g_unix_signal_add (SIGINT, on_signal, loop);
  g_unix_signal_add (SIGTERM, on_signal, loop);

  url = jw_pusher_url (pusher);
  g_message ("listening url=%s", url);
  jw_sd_track (STATUS_INTERVAL_MS, pusher_state, pusher);
  g_main_loop_run (loop);

  g_clear_pointer (&pusher, jw_pusher_free);
  g_info ("stopped");
  return 0;
}
