/* jw-gate: the accept loop of an HTTP daemon, in front of SoupServer.
 * It accepts connections itself and hands each to libsoup, so that it can
 * refuse what SoupServer would take without limit: connections past a
 * total or per-address cap (503), clients that trickle a request head or
 * sit idle (dropped, 408 where a head was due), and the running out of
 * file descriptors (a reserve descriptor keeps the loop from spinning). */
#pragma once

#include <gio/gio.h>
#include <libsoup/soup.h>

#include "jw-config.h"

G_BEGIN_DECLS

typedef struct _JwGate JwGate;
typedef struct _JwGateHold JwGateHold;

typedef struct
{
  guint max_connections;  /* open at once, over every address */
  guint max_per_address;  /* open at once from one client address */
  guint header_timeout_s; /* to send a whole request head */
  /* Keep-alive connection between requests; also how long a request in
   * libsoup's hands may go without any byte read or written. */
  guint idle_timeout_s;
  /* Requests with a body are answered 413 body_not_allowed and their
   * connection closed, before the body is read. */
  gboolean refuse_bodies;
} JwGateLimits;

/* The keys max-connections, max-connections-per-address, header-timeout-s
 * and idle-timeout-s of section, with the defaults already in limits. */
void jw_gate_limits_read (JwGateLimits *limits, JwConfig *cfg,
                          const char *section);

/* Starts accepting on listen (a listening, non-blocking socket) for
 * server, on the thread-default main context. */
JwGate *jw_gate_new (GSocket *listen, SoupServer *server,
                     const JwGateLimits *limits, GError **error);
/* Accepts no more connections; those open go on. */
void jw_gate_stop_accepting (JwGate *self);
void jw_gate_free (JwGate *self);
/* "http://IP:PORT/" of the listening socket. */
char *jw_gate_url (JwGate *self);
/* Connections counted against the limits now. */
guint jw_gate_count (JwGate *self);

/* For a stream taken from libsoup (soup_server_message_steal_connection):
 * keeps its connection counted until jw_gate_release, although the
 * stream itself is closed. NULL when the stream did not pass a gate. */
JwGateHold *jw_gate_hold (GIOStream *stolen);
void jw_gate_release (JwGateHold *hold);
/* The socket under a stream libsoup handed back, or NULL. */
GSocket *jw_gate_stream_socket (GIOStream *stream);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwGate, jw_gate_free)

G_END_DECLS
