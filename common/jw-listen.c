/* jw-listen: listening sockets for the HTTP daemons. */
#include "jw-listen.h"

#include <string.h>

#include "jw-systemd.h"

GSocketAddress *
jw_listen_parse (const char *listen, GError **error)
{
  g_autoptr (GInetAddress) addr = NULL;
  g_autofree char *host = NULL;
  const char *colon = listen ? strrchr (listen, ':') : NULL;
  guint64 port;

  if (colon == NULL
      || !g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL))
    goto invalid;
  host = g_strndup (listen, colon - listen);
  if (host[0] == '[' && g_str_has_suffix (host, "]"))
    {
      memmove (host, host + 1, strlen (host));
      host[strlen (host) - 1] = '\0';
    }
  addr = g_inet_address_new_from_string (host);
  if (addr == NULL)
    goto invalid;
  return g_inet_socket_address_new (addr, (guint16)port);

invalid:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "listen address %s is not IP:PORT", listen ? listen : "");
  return NULL;
}

GSocket *
jw_listen_socket (const char *listen, int backlog, GError **error)
{
  g_autoptr (GError) sd_error = NULL;
  g_autoptr (GSocketAddress) address = NULL;
  g_autoptr (GSocket) sock = jw_sd_listen_socket (&sd_error);

  if (sd_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&sd_error));
      return NULL;
    }
  if (sock != NULL)
    {
      g_info ("serving on the socket passed by systemd");
      return g_steal_pointer (&sock);
    }

  address = jw_listen_parse (listen, error);
  if (address == NULL)
    return NULL;
  sock = g_socket_new (g_socket_address_get_family (address),
                       G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (sock == NULL)
    return NULL;
  g_socket_set_blocking (sock, FALSE);
  g_socket_set_listen_backlog (sock, backlog);
  if (!g_socket_bind (sock, address, TRUE, error)
      || !g_socket_listen (sock, error))
    {
      g_prefix_error (error, "cannot listen on %s: ", listen);
      return NULL;
    }
  return g_steal_pointer (&sock);
}
