/* jw-zmq: creating ZeroMQ sockets the same way in every process: czmq's
 * signal handlers off, explicit linger, non-blocking sends. */
#pragma once

#include <czmq.h>
#include <glib.h>

G_BEGIN_DECLS

/* Call once before creating any socket: keeps czmq away from SIGINT and
 * SIGTERM, which belong to the GLib main loop. */
void jw_zmq_init (void);
/* A new socket of type (ZMQ_PUSH …) with linger and high-water marks set;
 * hwm 0 keeps libzmq's default. */
zsock_t *jw_zmq_socket (int type, int hwm);
/* Binds or connects endpoint; fails with a message naming it. */
gboolean jw_zmq_bind (zsock_t *sock, const char *endpoint, GError **error);
gboolean jw_zmq_connect (zsock_t *sock, const char *endpoint, GError **error);

G_END_DECLS
