/* auth: who may use the api. Job tokens (jw-token) for one job's GET and
 * DELETE, API keys from [security] api-keys-file for submitting and
 * listing. Each is off until configured; see docs/SECURITY.md. */
#pragma once

#include <glib.h>

#include "jw-config.h"

G_BEGIN_DECLS

typedef struct _JwApiAuth JwApiAuth;

/* Reads [security] token-secret-file, token-ttl-s and api-keys-file.
 * Fails on a secret or key file that is missing, too short, open to
 * others, or malformed. */
JwApiAuth *jw_api_auth_new (JwConfig *cfg, GError **error);
void jw_api_auth_free (JwApiAuth *self);

gboolean jw_api_auth_tokens (JwApiAuth *self);
gboolean jw_api_auth_keys (JwApiAuth *self);
/* A new token for job_id, NULL when tokens are off. */
char *jw_api_auth_token (JwApiAuth *self, const char *job_id);

/* The bearer credential of an Authorization header value ("Bearer X"),
 * or NULL. */
const char *jw_api_auth_bearer (const char *authorization);

/* TRUE when tokens are off, or token (may be NULL) grants job_id. Errors
 * in JW_API_ERROR: TOKEN_REQUIRED, TOKEN_INVALID, TOKEN_EXPIRED. */
gboolean jw_api_auth_check_token (JwApiAuth *self, const char *job_id,
                                  const char *token, GError **error);
/* TRUE when keys are off, or key (may be NULL) is a configured key that
 * may submit type (NULL: any key will do). Errors in JW_API_ERROR:
 * API_KEY_REQUIRED, API_KEY_INVALID, TYPE_NOT_ALLOWED. */
gboolean jw_api_auth_check_key (JwApiAuth *self, const char *key,
                                const char *type, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwApiAuth, jw_api_auth_free)

G_END_DECLS
