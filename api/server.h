/* server: the REST interface of jobwire (POST/GET/DELETE /jobs, /healthz)
 * on a SoupServer, answered through the broker link. */
#pragma once

#include <glib.h>

#include "broker-link.h"
#include "jw-config.h"

G_BEGIN_DECLS

typedef struct _JwApiServer JwApiServer;

/* Reads the [api] settings of cfg and listens on [api] listen
 * (HOST:PORT, an IP literal; port 0 picks a free one). The link is
 * borrowed and must outlive the server. */
JwApiServer *jw_api_server_new (JwConfig *cfg, JwBrokerLink *link,
                                GError **error);
void jw_api_server_free (JwApiServer *self);
/* Graceful stop: new connections are refused from now on; requests
 * already read are answered as usual. */
void jw_api_server_stop_accepting (JwApiServer *self);
/* Requests read and not yet answered in full. */
guint jw_api_server_active (JwApiServer *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwApiServer, jw_api_server_free)

G_END_DECLS
