/* jobwire-api: the REST entry of jobwire. Parses the command line, links
 * to the broker, serves HTTP until SIGINT or SIGTERM. */
#include <glib-unix.h>
#include <locale.h>

#include "broker-link.h"
#include "jw-config.h"
#include "jw-log.h"
#include "jw-systemd.h"
#include "jw-zmq.h"
#include "server.h"

/* How often readiness and the STATUS= summary for systemd are checked. */
#define STATUS_INTERVAL_MS 100

/* How often a stopping api checks whether its requests are answered. */
#define DRAIN_POLL_MS 20

typedef struct
{
  GMainLoop *loop;
  JwApiServer *server;
  gint64 deadline_us; /* 0 until the first signal */
  guint poll_id;
} Stopper;

static gboolean
drain_poll (gpointer data)
{
  Stopper *st = data;

  if (jw_api_server_active (st->server) > 0
      && g_get_monotonic_time () < st->deadline_us)
    return G_SOURCE_CONTINUE;
  if (jw_api_server_active (st->server) > 0)
    g_warning ("stopping with %u requests unanswered",
               jw_api_server_active (st->server));
  st->poll_id = 0;
  g_main_loop_quit (st->loop);
  return G_SOURCE_REMOVE;
}

/* SIGTERM or SIGINT: refuse new connections, answer the requests in
 * flight (a pending submit gets the broker's answer, or 503 after
 * submit-timeout-ms), then stop. A second signal stops at once. */
static gboolean
on_stop_signal (gpointer data)
{
  Stopper *st = data;

  jw_sd_stopping ();
  if (st->server == NULL || st->deadline_us != 0)
    {
      g_info ("signal received, stopping now");
      g_main_loop_quit (st->loop);
      return G_SOURCE_CONTINUE;
    }
  g_info ("signal received, stopping");
  /* Longer than any submit waits for the broker. */
  st->deadline_us = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;
  jw_api_server_stop_accepting (st->server);
  st->poll_id = g_timeout_add (DRAIN_POLL_MS, drain_poll, st);
  return G_SOURCE_CONTINUE;
}

/* Ready once listening (the server exists before the loop runs) and the
 * broker answered: a round trip on both the command and query paths. */
static gboolean
api_state (GString *status, gpointer data)
{
  JwBrokerLink *link = data;
  gboolean up = jw_broker_link_connected (link);

  g_string_printf (status, "broker %s, %u requests in flight",
                   up ? "connected" : "not connected",
                   jw_broker_link_in_flight (link));
  return up;
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (JwConfig) cfg = NULL;
  g_autoptr (JwBrokerLink) link = NULL;
  g_autoptr (JwApiServer) server = NULL;
  Stopper stopper = { NULL, NULL, 0, 0 };
  g_autoptr (GMainLoop) loop = NULL;
  g_autofree char *listen = NULL;
  GOptionEntry entries[] = {
    { "listen", 'l', 0, G_OPTION_ARG_STRING, &listen,
      "Listen on HOST:PORT, an IP address (default 127.0.0.1:8080; "
      "config [api] listen)",
      "HOST:PORT" },
    { NULL }
  };

  setlocale (LC_ALL, "");
  jw_log_init ();
  context = g_option_context_new ("- jobwire REST api");
  g_option_context_set_summary (
      context,
      "Takes jobs over HTTP and hands them to the jobwire broker.\n"
      "Settings of section [api]: listen, max-body (bytes, 1048576),\n"
      "max-depth (32), submit-timeout-ms (3000),\n"
      "pusher-url (http://127.0.0.1:8081), max-connections (1024),\n"
      "max-connections-per-address (256), header-timeout-s (10),\n"
      "idle-timeout-s (60). The job types accepted are those\n"
      "the workers announced to the broker (GET /types).");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_add_group (context, jw_config_option_group ());
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("jobwire-api: %s\n", error->message);
      return 2;
    }

  cfg = jw_config_load (&error);
  if (cfg == NULL)
    {
      g_printerr ("jobwire-api: %s\n", error->message);
      return 1;
    }
  if (listen != NULL)
    jw_config_set (cfg, "api", "listen", listen);

  jw_zmq_init ();
  loop = g_main_loop_new (NULL, FALSE);
  stopper.loop = loop;
  g_unix_signal_add (SIGINT, on_stop_signal, &stopper);
  g_unix_signal_add (SIGTERM, on_stop_signal, &stopper);

  link = jw_broker_link_new (cfg, &error);
  if (link == NULL)
    {
      g_printerr ("jobwire-api: cannot reach the broker endpoints: %s\n",
                  error->message);
      return 1;
    }
  server = jw_api_server_new (cfg, link, &error);
  if (server == NULL)
    {
      g_critical ("cannot listen: %s", error->message);
      return 1;
    }

  g_info ("started instance=%s", jw_broker_link_instance (link));
  jw_sd_track (STATUS_INTERVAL_MS, api_state, link);
  stopper.server = server;
  g_main_loop_run (loop);
  g_clear_handle_id (&stopper.poll_id, g_source_remove);
  stopper.server = NULL;

  /* The link first: it answers every paused request before the server
   * closes their connections. */
  g_clear_pointer (&link, jw_broker_link_free);
  g_clear_pointer (&server, jw_api_server_free);
  g_info ("stopped");
  return 0;
}
