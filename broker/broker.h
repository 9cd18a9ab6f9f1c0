/* broker: the jobwire broker's state machine. It owns the five endpoints of
 * docs/PROTOCOL.md, the queue of waiting jobs, the table of workers, and
 * hands every event it records to the ledger and then to subscribers. */
#pragma once

#include <glib.h>

#include "jw-config.h"
#include "ledger.h"

G_BEGIN_DECLS

typedef struct _JwBroker JwBroker;

/* Binds every endpoint named by config and starts watching them on the
 * thread-default main context. Takes ownership of ledger; config must
 * outlive the broker (per-type limits are read from it when first
 * needed). */
JwBroker *jw_broker_new (JwConfig *config, JwLedger *ledger, GError **error);
/* Stops watching, closes every socket and frees the ledger. */
void jw_broker_free (JwBroker *self);
/* The random id of this broker run, as sent in heartbeats. */
const char *jw_broker_get_epoch (JwBroker *self);
/* Jobs waiting, jobs handed to a worker, and workers known. */
void jw_broker_counts (JwBroker *self, guint *queued, guint *running,
                       guint *workers);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwBroker, jw_broker_free)

G_END_DECLS
