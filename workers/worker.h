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
/* Stops a running job, says bye (handing back that job), closes the
 * sockets. */
void jw_worker_free (JwWorker *self);
/* Graceful stop: takes no new job, and calls done (from the main loop)
 * once the running job has ended, or [worker] grace-s after the call,
 * whichever comes first, or at once when idle. Then free the worker: a job
 * still running is handed back to the broker. */
void jw_worker_drain (JwWorker *self, GSourceFunc done, gpointer data);
gboolean jw_worker_draining (JwWorker *self);
/* TRUE once the broker welcomed this worker. */
gboolean jw_worker_connected (JwWorker *self);
/* The id of the job running now, or NULL when idle. */
const char *jw_worker_job_id (JwWorker *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwWorker, jw_worker_free)

G_END_DECLS
