/* jw-token: HMAC job tokens, their constant-time check, and the secret
 * file they come from. */
#include "jw-token.h"

#include <gio/gio.h>
#include <string.h>

#define TOKEN_CONTEXT "jobwire-job-token"
#define MAC_LEN 32
/* base64url of 32 bytes without padding. */
#define MAC_TEXT_LEN 43
/* Decimal seconds: up to 19 digits for a gint64. */
#define EXPIRY_MAX_DIGITS 19

G_DEFINE_QUARK (jw - token - error - quark, jw_token_error)

gboolean
jw_token_equal (const guint8 *a, const guint8 *b, gsize len)
{
  guint8 diff = 0;

  /* Every byte is looked at whatever the earlier ones were, so that the
   * time taken tells nothing about where the first difference is. */
  for (gsize i = 0; i < len; i++)
    diff |= a[i] ^ b[i];
  return diff == 0;
}

static void
compute_mac (GBytes *secret, const char *job_id, gint64 expiry,
             guint8 mac[MAC_LEN])
{
  gsize secret_len;
  const guint8 *key = g_bytes_get_data (secret, &secret_len);
  g_autoptr (GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA256, key, secret_len);
  guint8 be[8];
  gsize mac_len = MAC_LEN;

  for (int i = 0; i < 8; i++)
    be[i] = (guint8)((guint64)expiry >> (56 - 8 * i));
  /* The context string with its NUL, so that no other use of the same
   * secret can produce the same input. */
  g_hmac_update (hmac, (const guchar *)TOKEN_CONTEXT, sizeof TOKEN_CONTEXT);
  g_hmac_update (hmac, (const guchar *)job_id, strlen (job_id));
  g_hmac_update (hmac, be, sizeof be);
  g_hmac_get_digest (hmac, mac, &mac_len);
}

/* Unpadded base64url of len bytes into out (room for 4*len/3+4). */
static void
base64url (const guint8 *data, gsize len, char *out)
{
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "abcdefghijklmnopqrstuvwxyz0123456789-_";
  gsize o = 0;

  for (gsize i = 0; i < len; i += 3)
    {
      guint32 v = (guint32)data[i] << 16;
      gsize n = MIN (3, len - i);

      if (n > 1)
        v |= (guint32)data[i + 1] << 8;
      if (n > 2)
        v |= data[i + 2];
      out[o++] = alphabet[(v >> 18) & 63];
      out[o++] = alphabet[(v >> 12) & 63];
      if (n > 1)
        out[o++] = alphabet[(v >> 6) & 63];
      if (n > 2)
        out[o++] = alphabet[v & 63];
    }
  out[o] = '\0';
}

char *
jw_token_new (GBytes *secret, const char *job_id, gint64 expiry)
{
  guint8 mac[MAC_LEN];
  char text[MAC_TEXT_LEN + 4];

  g_return_val_if_fail (secret != NULL && job_id != NULL, NULL);
  g_return_val_if_fail (expiry >= 0, NULL);
  compute_mac (secret, job_id, expiry, mac);
  base64url (mac, sizeof mac, text);
  return g_strdup_printf ("%" G_GINT64_FORMAT ".%s", expiry, text);
}

static gboolean
invalid (GError **error)
{
  g_set_error_literal (error, JW_TOKEN_ERROR, JW_TOKEN_ERROR_INVALID,
                       "the token is not valid for this job");
  return FALSE;
}

gboolean
jw_token_check (GBytes *secret, const char *job_id, const char *token,
                gint64 now, GError **error)
{
  guint8 mac[MAC_LEN];
  char expected[MAC_TEXT_LEN + 4];
  const char *dot;
  gint64 expiry = 0;
  gsize digits;

  g_return_val_if_fail (secret != NULL && job_id != NULL, FALSE);
  if (token == NULL)
    return invalid (error);
  dot = strchr (token, '.');
  if (dot == NULL)
    return invalid (error);
  digits = dot - token;
  if (digits == 0 || digits > EXPIRY_MAX_DIGITS
      || strlen (dot + 1) != MAC_TEXT_LEN)
    return invalid (error);
  for (gsize i = 0; i < digits; i++)
    {
      if (!g_ascii_isdigit (token[i])
          || (i == 0 && token[i] == '0' && digits > 1))
        return invalid (error);
      if (expiry > (G_MAXINT64 - 9) / 10)
        return invalid (error);
      expiry = expiry * 10 + (token[i] - '0');
    }

  /* The MAC first, so that an expired token of another job is "invalid":
   * whether it expired is only said to its holder. */
  compute_mac (secret, job_id, expiry, mac);
  base64url (mac, sizeof mac, expected);
  if (!jw_token_equal ((const guint8 *)expected, (const guint8 *)dot + 1,
                       MAC_TEXT_LEN))
    return invalid (error);
  if (expiry <= now)
    {
      g_set_error_literal (error, JW_TOKEN_ERROR, JW_TOKEN_ERROR_EXPIRED,
                           "the token has expired");
      return FALSE;
    }
  return TRUE;
}

GBytes *
jw_token_load_secret (JwConfig *cfg, GError **error)
{
  const char *path =
      jw_config_get_string (cfg, "security", "token-secret-file", NULL);
  g_autofree char *data = NULL;
  gsize len;

  if (path == NULL || *path == '\0')
    return NULL;
  if (!jw_config_check_private_file (path, "token-secret-file", error))
    return NULL;
  if (!g_file_get_contents (path, &data, &len, error))
    {
      g_prefix_error (error, "cannot read token-secret-file: ");
      return NULL;
    }
  if (len < JW_TOKEN_MIN_SECRET)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "token-secret-file %s holds %" G_GSIZE_FORMAT
                   " bytes; at least %d are needed (e.g. head -c 32 "
                   "/dev/urandom)",
                   path, len, JW_TOKEN_MIN_SECRET);
      return NULL;
    }
  return g_bytes_new_take (g_steal_pointer (&data), len);
}

gint64
jw_token_ttl (JwConfig *cfg)
{
  return CLAMP (jw_config_get_int (cfg, "security", "token-ttl-s", 86400), 1,
                366 * 86400);
}
