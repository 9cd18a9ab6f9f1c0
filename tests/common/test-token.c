/* Job tokens: one job, one expiry, and every way a token can be wrong. */
#include "jw-token.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#define JOB_A "0000000000000aaaaaaaaaaaaa"
#define JOB_B "0000000000000bbbbbbbbbbbbb"
#define NOW 1700000000

static GBytes *
test_secret (void)
{
  static const char key[] = "0123456789abcdef0123456789abcdef";

  return g_bytes_new_static (key, sizeof key - 1);
}

static void
assert_refused (GBytes *secret, const char *job, const char *token, gint64 now,
                int code)
{
  g_autoptr (GError) error = NULL;

  g_assert_false (jw_token_check (secret, job, token, now, &error));
  g_assert_error (error, JW_TOKEN_ERROR, code);
}

/* The MAC computed here from GLib's one-shot HMAC and base64, as a second
 * reading of the format documented in jw-token.h. */
static void
test_format (void)
{
  g_autoptr (GBytes) secret = test_secret ();
  g_autofree char *token = jw_token_new (secret, JOB_A, NOW + 60);
  guint8 input[64];
  gsize n = 0, mac_len = 32;
  guint8 mac[32];
  gint64 expiry = NOW + 60;
  g_autofree char *b64 = NULL;
  g_autofree char *expected = NULL;

  memcpy (input, "jobwire-job-token", 18); /* with its NUL */
  n = 18;
  memcpy (input + n, JOB_A, strlen (JOB_A));
  n += strlen (JOB_A);
  for (int i = 0; i < 8; i++)
    input[n++] = (guint8)((guint64)expiry >> (56 - 8 * i));
  {
    g_autoptr (GHmac) h =
        g_hmac_new (G_CHECKSUM_SHA256, g_bytes_get_data (secret, NULL),
                    g_bytes_get_size (secret));

    g_hmac_update (h, input, n);
    g_hmac_get_digest (h, mac, &mac_len);
  }
  b64 = g_base64_encode (mac, sizeof mac);
  g_strdelimit (b64, "+", '-');
  g_strdelimit (b64, "/", '_');
  *strchr (b64, '=') = '\0';
  expected = g_strdup_printf ("%d.%s", NOW + 60, b64);
  g_assert_cmpstr (token, ==, expected);
  g_assert_true (jw_token_check (secret, JOB_A, token, NOW, NULL));
}

static void
test_wrong_job (void)
{
  g_autoptr (GBytes) secret = test_secret ();
  g_autofree char *token = jw_token_new (secret, JOB_A, NOW + 60);

  assert_refused (secret, JOB_B, token, NOW, JW_TOKEN_ERROR_INVALID);
  /* An expired token of another job says nothing about its expiry. */
  assert_refused (secret, JOB_B, token, NOW + 3600, JW_TOKEN_ERROR_INVALID);
}

static void
test_other_secret (void)
{
  g_autoptr (GBytes) secret = test_secret ();
  g_autoptr (GBytes) other =
      g_bytes_new_static ("another secret of 32 bytes or so", 32);
  g_autofree char *token = jw_token_new (other, JOB_A, NOW + 60);

  assert_refused (secret, JOB_A, token, NOW, JW_TOKEN_ERROR_INVALID);
}

static void
test_flipped_bit (void)
{
  g_autoptr (GBytes) secret = test_secret ();
  g_autofree char *token = jw_token_new (secret, JOB_A, NOW + 60);
  gsize len = strlen (token);

  /* Every character, in the expiry and in the MAC. */
  for (gsize i = 0; i < len; i++)
    {
      g_autofree char *bad = g_strdup (token);

      bad[i] ^= 0x01;
      assert_refused (secret, JOB_A, bad, NOW, JW_TOKEN_ERROR_INVALID);
    }
  /* A later expiry with the old MAC. */
  {
    g_autofree char *later =
        g_strdup_printf ("%d%s", NOW + 70, strchr (token, '.'));

    assert_refused (secret, JOB_A, later, NOW, JW_TOKEN_ERROR_INVALID);
  }
}

static void
test_truncated (void)
{
  g_autoptr (GBytes) secret = test_secret ();
  g_autofree char *token = jw_token_new (secret, JOB_A, NOW + 60);

  for (gsize len = 0; len < strlen (token); len++)
    {
      g_autofree char *bad = g_strndup (token, len);

      assert_refused (secret, JOB_A, bad, NOW, JW_TOKEN_ERROR_INVALID);
    }
  {
    g_autofree char *longer = g_strconcat (token, "A", NULL);

    assert_refused (secret, JOB_A, longer, NOW, JW_TOKEN_ERROR_INVALID);
  }
}

static void
test_expired (void)
{
  g_autoptr (GBytes) secret = test_secret ();
  g_autofree char *token = jw_token_new (secret, JOB_A, NOW + 60);

  g_assert_true (jw_token_check (secret, JOB_A, token, NOW + 59, NULL));
  assert_refused (secret, JOB_A, token, NOW + 60, JW_TOKEN_ERROR_EXPIRED);
  assert_refused (secret, JOB_A, token, NOW + 86400, JW_TOKEN_ERROR_EXPIRED);
}

static void
test_garbage (void)
{
  g_autoptr (GBytes) secret = test_secret ();
  static const char *const bad[] = {
    "",
    ".",
    "abc",
    "1.",
    ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "-5.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "01.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "99999999999999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "1700000060.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "1700000060 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "1700000060..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "Bearer x",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    assert_refused (secret, JOB_A, bad[i], NOW, JW_TOKEN_ERROR_INVALID);
  assert_refused (secret, JOB_A, NULL, NOW, JW_TOKEN_ERROR_INVALID);
}

static void
test_equal (void)
{
  g_assert_true (
      jw_token_equal ((const guint8 *)"abcd", (const guint8 *)"abcd", 4));
  g_assert_false (
      jw_token_equal ((const guint8 *)"abcd", (const guint8 *)"abce", 4));
  g_assert_false (
      jw_token_equal ((const guint8 *)"xbcd", (const guint8 *)"abcd", 4));
  g_assert_true (jw_token_equal ((const guint8 *)"", (const guint8 *)"", 0));
}

static char *
write_secret (const char *dir, const char *name, const char *text, int mode)
{
  char *path = g_build_filename (dir, name, NULL);

  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  g_assert_cmpint (g_chmod (path, mode), ==, 0);
  return path;
}

static void
test_secret_file (void)
{
  g_autofree char *dir = g_dir_make_tmp ("jw-token-XXXXXX", NULL);
  g_autoptr (JwConfig) cfg = jw_config_new (NULL, dir, NULL);
  g_autofree char *good =
      write_secret (dir, "good", "0123456789abcdef0123456789abcdef", 0600);
  g_autofree char *open =
      write_secret (dir, "open", "0123456789abcdef0123456789abcdef", 0644);
  g_autofree char *shorter = write_secret (dir, "short", "tooshort", 0600);
  g_autofree char *missing = g_build_filename (dir, "missing", NULL);
  g_autoptr (GBytes) secret = NULL;
  GError *error = NULL;

  /* Not set: open mode, no error. */
  g_assert_null (jw_token_load_secret (cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpint (jw_token_ttl (cfg), ==, 86400);

  jw_config_set (cfg, "security", "token-secret-file", good);
  secret = jw_token_load_secret (cfg, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (secret), ==, 32);

  jw_config_set (cfg, "security", "token-secret-file", open);
  g_assert_null (jw_token_load_secret (cfg, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED);
  g_assert_nonnull (strstr (error->message, open));
  g_clear_error (&error);

  jw_config_set (cfg, "security", "token-secret-file", shorter);
  g_assert_null (jw_token_load_secret (cfg, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_clear_error (&error);

  jw_config_set (cfg, "security", "token-secret-file", missing);
  g_assert_null (jw_token_load_secret (cfg, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);

  jw_config_set (cfg, "security", "token-ttl-s", "5");
  g_assert_cmpint (jw_token_ttl (cfg), ==, 5);

  g_unlink (good);
  g_unlink (open);
  g_unlink (shorter);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/token/format", test_format);
  g_test_add_func ("/token/wrong-job", test_wrong_job);
  g_test_add_func ("/token/other-secret", test_other_secret);
  g_test_add_func ("/token/flipped-bit", test_flipped_bit);
  g_test_add_func ("/token/truncated", test_truncated);
  g_test_add_func ("/token/expired", test_expired);
  g_test_add_func ("/token/garbage", test_garbage);
  g_test_add_func ("/token/equal", test_equal);
  g_test_add_func ("/token/secret-file", test_secret_file);
  return g_test_run ();
}
