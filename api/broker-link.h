/* broker-link: the api's three sockets to the broker (PUSH commands, SUB
 * replies, DEALER queries), the requests waiting for a reply by rid, and
 * whether the broker is reachable right now. */
#pragma once

#include <json-glib/json-glib.h>

#include "jw-config.h"

G_BEGIN_DECLS

typedef struct _JwBrokerLink JwBrokerLink;

/* Called once per request: with the reply object (borrowed; its `ok`
 * member not yet checked), or with reply NULL and error set when none came
 * in time (G_IO_ERROR_TIMED_OUT) or the link is closing
 * (G_IO_ERROR_CANCELLED). */
typedef void (*JwBrokerReplyFunc) (JsonObject *reply, const GError *error,
                                   gpointer user_data);

/* Creates the sockets and connects them to the endpoints of cfg. */
JwBrokerLink *jw_broker_link_new (JwConfig *cfg, GError **error);
/* Fails every waiting request with G_IO_ERROR_CANCELLED, closes. */
void jw_broker_link_free (JwBrokerLink *self);

const char *jw_broker_link_instance (JwBrokerLink *self);

/* Sends verb with body (a JSON object; `rid` and, for commands, `api` are
 * added to it) without blocking. When the broker cannot take it at once it
 * fails with G_IO_ERROR_WOULD_BLOCK and func is never called; otherwise
 * func is called once, with the reply or after timeout_ms. */
gboolean jw_broker_link_command (JwBrokerLink *self, const char *verb,
                                 JsonObject *body, guint timeout_ms,
                                 JwBrokerReplyFunc func, gpointer user_data,
                                 GError **error);
gboolean jw_broker_link_query (JwBrokerLink *self, const char *verb,
                               JsonObject *body, guint timeout_ms,
                               JwBrokerReplyFunc func, gpointer user_data,
                               GError **error);

/* Connected: the `subscribed` marker or a command reply came on the
 * reply topic, and a ping query was answered, both within 3 seconds. */
gboolean jw_broker_link_connected (JwBrokerLink *self);
/* Requests sent for clients and not yet answered (the link's own pings
 * are not counted). */
guint jw_broker_link_in_flight (JwBrokerLink *self);
/* Counters of the last ping query reply (0 before any). */
void jw_broker_link_counts (JwBrokerLink *self, gint64 *workers, gint64 *queued,
                            gint64 *running);

/* The last ping query reply (borrowed), or NULL before any. */
JsonObject *jw_broker_link_last_ping (JwBrokerLink *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwBrokerLink, jw_broker_link_free)

G_END_DECLS
