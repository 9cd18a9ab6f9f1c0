/* jw-params: the description of the `params` a job type takes (member
 * names, JSON types, required or optional), written in the key file,
 * announced by workers, kept by the broker and checked by the api. */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define JW_PARAMS_ERROR (jw_params_error_quark ())
GQuark jw_params_error_quark (void);

typedef enum
{
  JW_PARAMS_ERROR_SPEC,    /* a description that cannot be read */
  JW_PARAMS_ERROR_INVALID, /* params that do not fit a description */
} JwParamsError;

typedef enum
{
  JW_PARAM_STRING,
  JW_PARAM_INTEGER,
  JW_PARAM_NUMBER,
  JW_PARAM_BOOLEAN,
  JW_PARAM_OBJECT,
  JW_PARAM_ARRAY,
} JwParamKind;

typedef struct
{
  char *name;
  JwParamKind kind;
  gboolean required;
} JwParam;

/* An ordered list of members. A spec lists every member a type takes:
 * params with any other member do not fit it. */
typedef struct _JwParamSpec JwParamSpec;

/* Reads the key-file form: members separated by commas (or semicolons),
 * each NAME:TYPE, with a trailing `?` when optional:
 * "path:string, quality:integer?". An empty text is a type without
 * params. Names are 1 to 64 of [A-Za-z0-9_-]. */
JwParamSpec *jw_param_spec_parse (const char *text, GError **error);
/* Reads the wire form: an array of {"name", "type", "required"}. */
JwParamSpec *jw_param_spec_from_json (JsonNode *node, GError **error);
/* The wire form, a new array node. */
JsonNode *jw_param_spec_to_json (const JwParamSpec *spec);
/* The key-file form, for people ("path:string, quality:integer?"). */
char *jw_param_spec_to_string (const JwParamSpec *spec);
void jw_param_spec_free (JwParamSpec *spec);

guint jw_param_spec_size (const JwParamSpec *spec);
const JwParam *jw_param_spec_get (const JwParamSpec *spec, guint i);

/* Checks params against spec: every required member present, every member
 * described and of its type (integer: a number without a fraction). A JSON
 * null counts as absent. The error message names the member:
 * "params.quality must be an integer". */
gboolean jw_param_spec_check (const JwParamSpec *spec, JsonObject *params,
                              GError **error);

const char *jw_param_kind_to_string (JwParamKind kind);
gboolean jw_param_kind_from_string (const char *str, JwParamKind *out);

/* A job type name: 1 to 64 of [A-Za-z0-9_.-], starting with a letter or
 * digit. */
gboolean jw_type_name_valid (const char *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwParamSpec, jw_param_spec_free)

G_END_DECLS
