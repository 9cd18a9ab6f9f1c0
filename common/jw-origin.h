/* jw-origin: the list of browser origins (scheme://host[:port]) allowed
 * to call the api and open streams on the pusher, shared by both for CORS
 * and the WebSocket Origin check. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _JwOrigins JwOrigins;

/* Parses a comma-separated list of origins; "*" allows every origin. An
 * empty or NULL list uses defaults instead: the origin of default_url
 * (http://HOST:PORT), plus its twin when HOST is 127.0.0.1 or localhost.
 * Fails on an entry that is not an http or https origin. */
JwOrigins *jw_origins_new (const char *list, const char *default_url,
                           GError **error);
void jw_origins_free (JwOrigins *self);

/* TRUE when origin (an Origin header's value) is on the list, or when it
 * names host (a Host header's value, may be NULL): the same origin. */
gboolean jw_origins_allows (JwOrigins *self, const char *origin,
                            const char *host);
/* The list, normalised, comma-separated, for log lines. */
const char *jw_origins_describe (JwOrigins *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwOrigins, jw_origins_free)

G_END_DECLS
