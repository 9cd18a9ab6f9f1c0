/* worker: a jobwire worker's side of the protocol (docs/PROTOCOL.md,
 * sections workers and worker-events) and the life of its one job. */
#pragma once

#include <glib.h>

#include "jw-config.h"

G_BEGIN_DECLS

typedef struct _JwWorker JwWorker;

/* Connects to the broker's workers and worker-events endpoints and says
 * hello. name identifies the worker in the broker's logs. Settings of
 * [worker]: heartbeat-ms (until the broker's welcome says otherwise) and
 * checksum-root. */
JwWorker *jw_worker_new (JwConfig *cfg, const char *name, GError **error);
/* Stops a running job, says bye, closes the sockets. */
void jw_worker_free (JwWorker *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwWorker, jw_worker_free)

G_END_DECLS
