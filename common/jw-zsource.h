/* jw-zsource: a GSource that dispatches a ZeroMQ socket from the GLib main
 * loop. ZMQ_FD is edge-triggered, so readiness is taken from ZMQ_EVENTS in
 * prepare and check, and dispatch drains a bounded batch. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Called once for each message waiting on sock; it must receive exactly one
 * message (jw_msg_recv). Return G_SOURCE_REMOVE to stop watching. */
typedef gboolean (*JwZSourceFunc) (void *sock, gpointer user_data);

/* Watches sock (czmq zsock_t or libzmq socket) on the thread-default main
 * context. Returns the source id. */
guint jw_zsource_add (void *sock, JwZSourceFunc func, gpointer user_data);

G_END_DECLS
