/* validate: every check the api makes on a request before it talks to the
 * broker. Pure functions of their input, so that they can be tested alone;
 * each failure carries the HTTP status and the stable error code to send. */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define JW_API_ERROR (jw_api_error_quark ())
GQuark jw_api_error_quark (void);

/* One value per error code the api answers with; jw_api_error_code and
 * jw_api_error_status give its wire code and HTTP status. */
typedef enum
{
  JW_API_ERROR_INVALID_JSON,            /* 400 invalid_json */
  JW_API_ERROR_JSON_TOO_DEEP,           /* 400 json_too_deep */
  JW_API_ERROR_INVALID_BODY,            /* 400 invalid_body */
  JW_API_ERROR_INVALID_IDEMPOTENCY_KEY, /* 400 invalid_idempotency_key */
  JW_API_ERROR_INVALID_JOB_ID,          /* 400 invalid_job_id */
  JW_API_ERROR_INVALID_QUERY,           /* 400 invalid_query */
  JW_API_ERROR_TOKEN_REQUIRED,          /* 401 token_required */
  JW_API_ERROR_TOKEN_EXPIRED,           /* 401 token_expired */
  JW_API_ERROR_API_KEY_REQUIRED,        /* 401 api_key_required */
  JW_API_ERROR_TOKEN_INVALID,           /* 403 token_invalid */
  JW_API_ERROR_API_KEY_INVALID,         /* 403 api_key_invalid */
  JW_API_ERROR_TYPE_NOT_ALLOWED,        /* 403 type_not_allowed */
  JW_API_ERROR_NOT_FOUND,               /* 404 not_found */
  JW_API_ERROR_JOB_NOT_FOUND,           /* 404 job_not_found */
  JW_API_ERROR_METHOD_NOT_ALLOWED,      /* 405 method_not_allowed */
  JW_API_ERROR_JOB_FINISHED,            /* 409 job_finished */
  JW_API_ERROR_CONFLICT,                /* 409 conflict */
  JW_API_ERROR_LENGTH_REQUIRED,         /* 411 length_required */
  JW_API_ERROR_BODY_TOO_LARGE,          /* 413 body_too_large */
  JW_API_ERROR_UNSUPPORTED_MEDIA_TYPE,  /* 415 unsupported_media_type */
  JW_API_ERROR_UNKNOWN_TYPE,            /* 422 unknown_type */
  JW_API_ERROR_INVALID_PARAMS,          /* 422 invalid_params */
  JW_API_ERROR_IDEMPOTENCY_KEY_REUSED,  /* 422 idempotency_key_reused */
  JW_API_ERROR_INTERNAL,                /* 500 internal_error */
  JW_API_ERROR_BROKER,                  /* 502 broker_error */
  JW_API_ERROR_BROKER_UNAVAILABLE,      /* 503 broker_unavailable */
} JwApiError;

const char *jw_api_error_code (JwApiError error);
guint jw_api_error_status (JwApiError error);

/* Content-Type of a job submission: application/json, any parameters. */
gboolean jw_validate_content_type (const char *content_type, GError **error);

/* The body size announced by a request, decided before reading it.
 * chunked: the request has no Content-Length but a chunked body;
 * length: the Content-Length, or -1 when there is none (no body). */
gboolean jw_validate_body_length (gboolean chunked, goffset length,
                                  gsize max_body, GError **error);

/* A whole POST /jobs body: strict JSON at most max_depth deep, an object,
 * `type` a type name among types (a NULL-terminated list), `params` an
 * object whose members fit the type. types NULL leaves the type and the
 * params to the caller (the api checks them against the types the broker
 * knows). On success sets *type_out (new string) and *params_out (a new
 * node, {} when absent). */
gboolean jw_validate_job_request (const char *body, gsize len, guint max_depth,
                                  const char *const *types, char **type_out,
                                  JsonNode **params_out, GError **error);

/* Params of the built-in types (sleep, checksum); other types pass. */
gboolean jw_validate_params (const char *type, JsonObject *params,
                             GError **error);

/* An Idempotency-Key: 1 to 200 printable ASCII characters. */
gboolean jw_validate_idempotency_key (const char *key, GError **error);

gboolean jw_validate_job_id (const char *id, GError **error);

/* GET /jobs query (query may be NULL): state one of the five states,
 * limit 1..1000 (default 50), before a job id. Sets the outputs; *state
 * and *before are NULL when absent (borrowed from query). */
gboolean jw_validate_list_query (GHashTable *query, const char **state,
                                 gint64 *limit, const char **before,
                                 GError **error);

G_END_DECLS
