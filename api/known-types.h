/* known-types: the api's copy of the job types the broker knows (those
 * some worker announced), refreshed from the broker's `types` query, and
 * the check of a job's params against its type's description. */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _JwKnownTypes JwKnownTypes;

JwKnownTypes *jw_known_types_new (void);
void jw_known_types_free (JwKnownTypes *self);

/* Replaces the copy with the `types` array of a broker reply. */
void jw_known_types_update (JwKnownTypes *self, JsonArray *types);
/* TRUE when the copy was updated less than max_age_ms ago. */
gboolean jw_known_types_fresh (JwKnownTypes *self, guint max_age_ms);
gboolean jw_known_types_has (JwKnownTypes *self, const char *name);
/* The known names, comma separated, for error messages. */
char *jw_known_types_names (JwKnownTypes *self);

/* Checks params against the description of type (which must be known):
 * the members it declares, then the ranges of the built-in types.
 * Fails with JW_API_ERROR_INVALID_PARAMS naming the member. */
gboolean jw_known_types_check (JwKnownTypes *self, const char *type,
                               JsonObject *params, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwKnownTypes, jw_known_types_free)

G_END_DECLS
