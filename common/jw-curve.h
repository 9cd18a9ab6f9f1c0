/* jw-curve: who may use a ZeroMQ endpoint.
 *
 * A tcp:// endpoint uses CURVE: the broker is the CURVE server with its own
 * certificate, and a ZAP handler on its main loop admits only the client
 * keys of an allow-list directory, so that an unknown key is refused, not
 * merely encrypted. Every other process is a CURVE client with its own
 * certificate and the broker's public one. Plain tcp:// is refused unless
 * [security] allow-plain-tcp is true. An ipc:// endpoint is accepted only
 * in a directory that this user owns and nobody else can enter.
 * See docs/SECURITY.md. */
#pragma once

#include <czmq.h>
#include <glib.h>

#include "jw-config.h"

G_BEGIN_DECLS

/* The ZAP domain of the broker's CURVE sockets. */
#define JW_CURVE_ZAP_DOMAIN "jobwire"

typedef struct _JwCurve JwCurve;

/* Reads the [security] settings: curve-certificate (this process's secret
 * certificate, zcert format), curve-server-certificate (the broker's public
 * certificate, for clients), curve-clients (the allow-list directory, for
 * the broker, server TRUE) and allow-plain-tcp. Fails when a configured
 * certificate cannot be read, is not one, or a secret one is open to group
 * or others. Settings that are absent fail only at the first tcp://
 * endpoint that needs them. */
JwCurve *jw_curve_new (JwConfig *cfg, gboolean server, GError **error);
void jw_curve_free (JwCurve *self);

/* Binds (server) or connects (client) sock to endpoint (named name in
 * messages) with the security its scheme asks for: CURVE for tcp://, the
 * directory check for ipc://. The broker's ZAP handler starts at its first
 * tcp:// bind, on the thread-default main context. A client logs when the
 * broker refuses its key (libzmq does not retry that connection): keep
 * self for as long as its sockets. */
gboolean jw_curve_bind (JwCurve *self, zsock_t *sock, const char *name,
                        const char *endpoint, GError **error);
gboolean jw_curve_connect (JwCurve *self, zsock_t *sock, const char *name,
                           const char *endpoint, GError **error);

/* Handshakes the ZAP handler refused and admitted so far. */
guint64 jw_curve_refused (JwCurve *self);
guint64 jw_curve_admitted (JwCurve *self);

/* Checks that dir is owned by this user and closed to group and others, as
 * the directory of an ipc:// endpoint must be. */
gboolean jw_curve_check_ipc_dir (const char *dir, const char *name,
                                 GError **error);

/* Loads a certificate file; with need_secret, one that holds the secret
 * key. Fails with a message naming setting and path. */
zcert_t *jw_curve_load_cert (const char *path, const char *setting,
                             gboolean need_secret, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwCurve, jw_curve_free)

G_END_DECLS
