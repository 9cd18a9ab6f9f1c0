/* auth: job tokens and API keys for the api. Keys are kept as SHA-256
 * digests and a presented key is hashed the same way, so that every
 * comparison is of 32 bytes, in constant time, against every key: neither
 * the time taken nor an early exit tells how much of a key was right. */
#include "auth.h"

#include <gio/gio.h>
#include <string.h>

#include "jw-token.h"
#include "validate.h"

/* The shortest API key accepted from the key file. */
#define KEY_MIN_LEN 16
#define DIGEST_LEN 32

typedef struct
{
  guint8 digest[DIGEST_LEN];
  GStrv types; /* NULL: every type */
} ApiKey;

struct _JwApiAuth
{
  GBytes *secret; /* NULL: tokens off */
  gint64 ttl_s;
  GArray *keys; /* ApiKey; NULL: keys off */
};

static void
digest_of (const char *key, guint8 out[DIGEST_LEN])
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  gsize len = DIGEST_LEN;

  g_checksum_update (sum, (const guchar *)key, strlen (key));
  g_checksum_get_digest (sum, out, &len);
}

static void
api_key_clear (gpointer data)
{
  ApiKey *k = data;

  g_strfreev (k->types);
}

/* Lines "KEY [TYPE,TYPE…]"; '#' starts a comment line. */
static GArray *
load_keys (const char *path, GError **error)
{
  g_autoptr (GArray) keys = g_array_new (FALSE, TRUE, sizeof (ApiKey));
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;

  g_array_set_clear_func (keys, api_key_clear);
  if (!jw_config_check_private_file (path, "api-keys-file", error))
    return NULL;
  if (!g_file_get_contents (path, &text, NULL, error))
    {
      g_prefix_error (error, "cannot read api-keys-file: ");
      return NULL;
    }
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto (GStrv) words = NULL;
      ApiKey k = { { 0 }, NULL };
      char *line = g_strstrip (lines[i]);

      if (*line == '\0' || *line == '#')
        continue;
      words = g_strsplit_set (line, " \t", -1);
      /* Drop the empty words of repeated blanks. */
      {
        guint n = 0;

        for (guint j = 0; words[j] != NULL; j++)
          if (*words[j] != '\0')
            words[n++] = words[j];
          else
            g_free (words[j]);
        words[n] = NULL;
      }
      if (g_strv_length (words) > 2 || strlen (words[0]) < KEY_MIN_LEN)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "api-keys-file %s line %u: expected KEY [TYPE,…] with "
                       "a key of at least %d characters",
                       path, i + 1, KEY_MIN_LEN);
          return NULL;
        }
      digest_of (words[0], k.digest);
      if (words[1] != NULL)
        k.types = g_strsplit (words[1], ",", -1);
      g_array_append_val (keys, k);
    }
  if (keys->len == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "api-keys-file %s has no key", path);
      return NULL;
    }
  return g_steal_pointer (&keys);
}

JwApiAuth *
jw_api_auth_new (JwConfig *cfg, GError **error)
{
  g_autoptr (JwApiAuth) self = g_new0 (JwApiAuth, 1);
  GError *local = NULL;
  const char *keys_path =
      jw_config_get_string (cfg, "security", "api-keys-file", NULL);

  self->secret = jw_token_load_secret (cfg, &local);
  if (local != NULL)
    {
      g_propagate_error (error, local);
      return NULL;
    }
  self->ttl_s = jw_token_ttl (cfg);
  if (keys_path != NULL && *keys_path != '\0')
    {
      self->keys = load_keys (keys_path, error);
      if (self->keys == NULL)
        return NULL;
    }
  return g_steal_pointer (&self);
}

void
jw_api_auth_free (JwApiAuth *self)
{
  if (self == NULL)
    return;
  g_clear_pointer (&self->secret, g_bytes_unref);
  g_clear_pointer (&self->keys, g_array_unref);
  g_free (self);
}

gboolean
jw_api_auth_tokens (JwApiAuth *self)
{
  return self->secret != NULL;
}

gboolean
jw_api_auth_keys (JwApiAuth *self)
{
  return self->keys != NULL;
}

char *
jw_api_auth_token (JwApiAuth *self, const char *job_id)
{
  if (self->secret == NULL)
    return NULL;
  return jw_token_new (self->secret, job_id,
                       g_get_real_time () / G_USEC_PER_SEC + self->ttl_s);
}

const char *
jw_api_auth_bearer (const char *authorization)
{
  if (authorization == NULL
      || g_ascii_strncasecmp (authorization, "Bearer ", 7) != 0)
    return NULL;
  authorization += 7;
  while (*authorization == ' ')
    authorization++;
  return *authorization != '\0' ? authorization : NULL;
}

gboolean
jw_api_auth_check_token (JwApiAuth *self, const char *job_id, const char *token,
                         GError **error)
{
  g_autoptr (GError) local = NULL;

  if (self->secret == NULL)
    return TRUE;
  if (token == NULL || *token == '\0')
    {
      g_set_error_literal (error, JW_API_ERROR, JW_API_ERROR_TOKEN_REQUIRED,
                           "this job needs its token: Authorization: Bearer "
                           "TOKEN or ?token=TOKEN");
      return FALSE;
    }
  if (jw_token_check (self->secret, job_id, token,
                      g_get_real_time () / G_USEC_PER_SEC, &local))
    return TRUE;
  if (g_error_matches (local, JW_TOKEN_ERROR, JW_TOKEN_ERROR_EXPIRED))
    g_set_error_literal (error, JW_API_ERROR, JW_API_ERROR_TOKEN_EXPIRED,
                         "the token of this job has expired");
  else
    g_set_error_literal (error, JW_API_ERROR, JW_API_ERROR_TOKEN_INVALID,
                         "the token is not valid for this job");
  return FALSE;
}

gboolean
jw_api_auth_check_key (JwApiAuth *self, const char *key, const char *type,
                       GError **error)
{
  guint8 digest[DIGEST_LEN];
  ApiKey *found = NULL;

  if (self->keys == NULL)
    return TRUE;
  if (key == NULL || *key == '\0')
    {
      g_set_error_literal (error, JW_API_ERROR, JW_API_ERROR_API_KEY_REQUIRED,
                           "an API key is needed: Authorization: Bearer KEY");
      return FALSE;
    }
  digest_of (key, digest);
  /* Every key is compared, with no early exit. */
  for (guint i = 0; i < self->keys->len; i++)
    {
      ApiKey *k = &g_array_index (self->keys, ApiKey, i);

      if (jw_token_equal (k->digest, digest, DIGEST_LEN) && found == NULL)
        found = k;
    }
  if (found == NULL)
    {
      g_set_error_literal (error, JW_API_ERROR, JW_API_ERROR_API_KEY_INVALID,
                           "the API key is not valid");
      return FALSE;
    }
  if (type != NULL && found->types != NULL
      && !g_strv_contains ((const char *const *)found->types, type))
    {
      g_set_error (error, JW_API_ERROR, JW_API_ERROR_TYPE_NOT_ALLOWED,
                   "this API key may not submit jobs of type %s", type);
      return FALSE;
    }
  return TRUE;
}
