/* jw-listen: the listening socket of an HTTP daemon, either passed by
 * systemd or bound here with a backlog large enough for bursts (libsoup's
 * own listen call uses a backlog of 10). */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define JW_LISTEN_BACKLOG 1024

/* Parses "IP:PORT" or "[IPv6]:PORT". */
GSocketAddress *jw_listen_parse (const char *listen, GError **error);
/* The socket systemd passed, if any; else a new TCP socket bound to
 * listen and listening with backlog. Non-blocking. */
GSocket *jw_listen_socket (const char *listen, int backlog, GError **error);

G_END_DECLS
