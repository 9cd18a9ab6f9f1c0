/* pusher: the jobwire-pusher daemon's HTTP side (SSE, WebSocket,
 * long-poll, health) and its link to the broker (SUB on events, DEALER on
 * queries). */
#pragma once

#include <gio/gio.h>

#include "jw-config.h"

G_BEGIN_DECLS

typedef struct _JwPusher JwPusher;

/* Connects to the broker endpoints of cfg and listens on listen
 * ("HOST:PORT", IPv4) or on listen_socket when not NULL. */
JwPusher *jw_pusher_new (JwConfig *cfg, GSocket *listen_socket, GError **error);
/* The URL the pusher listens on. */
char *jw_pusher_url (JwPusher *self);
/* TRUE while the broker's heartbeats arrive, as /healthz reports. */
gboolean jw_pusher_broker_connected (JwPusher *self);
void jw_pusher_free (JwPusher *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwPusher, jw_pusher_free)

G_END_DECLS
