/* jw-json: strict, bounded JSON parsing and small typed accessors that
 * never raise criticals on input from outside. */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define JW_JSON_ERROR (jw_json_error_quark ())
GQuark jw_json_error_quark (void);

typedef enum
{
  JW_JSON_ERROR_SYNTAX,    /* not RFC 8259 JSON */
  JW_JSON_ERROR_TOO_DEEP,  /* nesting over the limit */
  JW_JSON_ERROR_TOO_LARGE, /* over the size limit */
} JwJsonError;

/* Checks that data[0..len) is one strict JSON value nested at most
 * max_depth deep (no comments, no single quotes, no trailing bytes). */
gboolean jw_json_validate (const char *data, gsize len, guint max_depth,
                           GError **error);
/* jw_json_validate, then parse. Returns a new node. */
JsonNode *jw_json_parse (const char *data, gsize len, guint max_depth,
                         GError **error);
JsonNode *jw_json_parse_bytes (GBytes *bytes, guint max_depth, GError **error);
/* Compact serialization. */
char *jw_json_to_string (JsonNode *node, gsize *len);
GBytes *jw_json_to_bytes (JsonNode *node);

/* Typed member access: NULL/FALSE when missing or of another type. */
const char *jw_json_get_string (JsonObject *obj, const char *member);
gboolean jw_json_get_int (JsonObject *obj, const char *member, gint64 *out);
gboolean jw_json_get_double (JsonObject *obj, const char *member, double *out);
gboolean jw_json_get_bool (JsonObject *obj, const char *member, gboolean *out);
JsonObject *jw_json_get_object (JsonObject *obj, const char *member);
JsonArray *jw_json_get_array (JsonObject *obj, const char *member);
/* The object of a node, or NULL when it is not one. */
JsonObject *jw_json_node_object (JsonNode *node);

G_END_DECLS
