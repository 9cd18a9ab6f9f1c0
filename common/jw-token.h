/* jw-token: job-scoped tokens and the secrets behind them.
 *
 * A token grants one job until its expiry. Its form is readable:
 * "EXPIRY.MAC", EXPIRY the Unix time in decimal seconds and MAC the
 * unpadded base64url of HMAC-SHA256 (secret, "jobwire-job-token\0" + job id
 * + EXPIRY as 8 bytes big-endian). Nothing else is stored: any process
 * with the secret can check a token. See docs/SECURITY.md. */
#pragma once

#include <glib.h>

#include "jw-config.h"

G_BEGIN_DECLS

#define JW_TOKEN_ERROR (jw_token_error_quark ())
GQuark jw_token_error_quark (void);

typedef enum
{
  JW_TOKEN_ERROR_INVALID, /* malformed, wrong MAC, another job's */
  JW_TOKEN_ERROR_EXPIRED, /* well-formed and genuine, but too old */
} JwTokenError;

/* The shortest secret accepted, in bytes. */
#define JW_TOKEN_MIN_SECRET 32

/* The token of job_id valid until expiry (Unix seconds). */
char *jw_token_new (GBytes *secret, const char *job_id, gint64 expiry);
/* TRUE when token grants job_id at now (Unix seconds). Fails with
 * JW_TOKEN_ERROR_INVALID or JW_TOKEN_ERROR_EXPIRED. The MAC is compared in
 * constant time. */
gboolean jw_token_check (GBytes *secret, const char *job_id, const char *token,
                         gint64 now, GError **error);
/* Constant-time equality of two byte strings of the same length. */
gboolean jw_token_equal (const guint8 *a, const guint8 *b, gsize len);

/* Reads [security] token-secret-file: NULL with no error when it is not
 * set (open mode). Refuses a file shorter than JW_TOKEN_MIN_SECRET bytes or
 * readable or writable by group or others. */
GBytes *jw_token_load_secret (JwConfig *cfg, GError **error);
/* [security] token-ttl-s, 1 s to 1 year, default 86400. */
gint64 jw_token_ttl (JwConfig *cfg);

G_END_DECLS
