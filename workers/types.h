/* types: the job types one worker serves: the built-in ones and those of
 * the key file's [type.NAME] sections, with the descriptions it announces
 * in hello (docs/PROTOCOL.md). */
#pragma once

#include <json-glib/json-glib.h>

#include "handler.h"
#include "jw-config.h"

G_BEGIN_DECLS

typedef struct _JwTypeTable JwTypeTable;

/* Reads every [type.NAME] section and [worker] types (default: all
 * built-in and all configured types). checksum_root (may be NULL) is the
 * type data of checksum. Fails on a section or a served type that is not
 * usable, naming it. */
JwTypeTable *jw_type_table_new (JwConfig *cfg, const char *checksum_root,
                                GError **error);
void jw_type_table_free (JwTypeTable *self);

/* The handler and its type data for a served type; FALSE when this worker
 * does not serve it. */
gboolean jw_type_table_lookup (JwTypeTable *self, const char *name,
                               const JwHandlerType **handler,
                               gpointer *type_data);
/* The `types` member of hello: a new array of type descriptions. */
JsonArray *jw_type_table_announce (JwTypeTable *self);
guint jw_type_table_size (JwTypeTable *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwTypeTable, jw_type_table_free)

G_END_DECLS
