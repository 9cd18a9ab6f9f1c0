/* jobwire-api: the REST entry of jobwire. Parses the command line, links
 * to the broker, serves HTTP until SIGINT or SIGTERM. */
#include <glib-unix.h>
#include <locale.h>

#include "broker-link.h"
#include "jw-config.h"
#include "jw-log.h"
#include "jw-zmq.h"
#include "server.h"

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
  g_autoptr (JwBrokerLink) link = NULL;
  g_autoptr (JwApiServer) server = NULL;
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
      "max-depth (32), types (sleep,checksum), submit-timeout-ms (3000),\n"
      "pusher-url (http://127.0.0.1:8081).");
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
  g_unix_signal_add (SIGINT, quit_loop, loop);
  g_unix_signal_add (SIGTERM, quit_loop, loop);

  link = jw_broker_link_new (cfg, &error);
  if (link == NULL)
    {
      g_critical ("cannot reach the broker endpoints: %s", error->message);
      return 1;
    }
  server = jw_api_server_new (cfg, link, &error);
  if (server == NULL)
    {
      g_critical ("cannot listen: %s", error->message);
      return 1;
    }

  g_info ("started instance=%s", jw_broker_link_instance (link));
  g_main_loop_run (loop);

  /* The link first: it answers every paused request before the server
   * closes their connections. */
  g_clear_pointer (&link, jw_broker_link_free);
  g_clear_pointer (&server, jw_api_server_free);
  g_info ("stopped");
  return 0;
}
