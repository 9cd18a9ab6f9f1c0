/* jw-zmq: ZeroMQ sockets created the same way in every process. */
#include "jw-zmq.h"

#include <gio/gio.h>
#include <zmq.h>

void
jw_zmq_init (void)
{
  /* czmq would otherwise install SIGINT/SIGTERM handlers over GLib's. */
  zsys_handler_set (NULL);
  zsys_init ();
  zsys_set_linger (0);
}

zsock_t *
jw_zmq_socket (int type, int hwm)
{
  zsock_t *sock = zsock_new (type);

  g_assert (sock != NULL);
  /* Unsent messages are dropped at close: every message that matters is
   * either recorded by the broker or retried by its sender. */
  zsock_set_linger (sock, 0);
  if (hwm > 0)
    {
      zsock_set_sndhwm (sock, hwm);
      zsock_set_rcvhwm (sock, hwm);
    }
  return sock;
}

gboolean
jw_zmq_bind (zsock_t *sock, const char *endpoint, GError **error)
{
  if (zmq_bind (zsock_resolve (sock), endpoint) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (zmq_errno ()),
                   "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
      return FALSE;
    }
  return TRUE;
}

gboolean
jw_zmq_connect (zsock_t *sock, const char *endpoint, GError **error)
{
  if (zmq_connect (zsock_resolve (sock), endpoint) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (zmq_errno ()),
                   "cannot connect to %s: %s", endpoint,
                   zmq_strerror (zmq_errno ()));
      return FALSE;
    }
  return TRUE;
}
