/* jobwire-cert: creates and lists the CURVE certificates that tcp://
 * endpoints need (see docs/SECURITY.md). A certificate NAME is two files
 * in czmq's zcert format: NAME, the public part that may be copied to
 * other hosts, and NAME_secret, mode 0600, which never leaves its host. */
#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jw-curve.h"

#define NAME_MAX_LEN 64

static char *opt_dir;

/* Prints an error; returns the exit status of a failed command. */
static int fail (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

static int
fail (const char *fmt, ...)
{
  g_autofree char *msg = NULL;
  va_list ap;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_printerr ("jobwire-cert: %s\n", msg);
  return 1;
}

/* Letters, digits, '.', '_' and '-', not starting with '.' and not ending
 * in _secret: a plain file name that the allow-list directory reads. */
static gboolean
name_valid (const char *name)
{
  gsize len = strlen (name);

  if (len == 0 || len > NAME_MAX_LEN || name[0] == '.'
      || g_str_has_suffix (name, "_secret"))
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (name[i]) && strchr ("._-", name[i]) == NULL)
      return FALSE;
  return TRUE;
}

static int
cmd_new (const char *name)
{
  const char *dir = opt_dir ? opt_dir : ".";
  g_autofree char *pub = NULL;
  g_autofree char *sec = NULL;
  zcert_t *cert;
  struct stat st;
  mode_t old_mask;
  int status = 0;
  int rc;

  if (!name_valid (name))
    return fail (
        "certificate name %s: use up to %d letters, digits, '.', '_' or "
        "'-', not starting with '.' nor ending in _secret",
        name, NAME_MAX_LEN);
  if (g_mkdir_with_parents (dir, 0755) < 0)
    return fail ("cannot create directory %s: %s", dir, g_strerror (errno));
  pub = g_build_filename (dir, name, NULL);
  sec = g_strconcat (pub, "_secret", NULL);
  if (g_file_test (pub, G_FILE_TEST_EXISTS)
      || g_file_test (sec, G_FILE_TEST_EXISTS))
    return fail ("%s or %s exists already; remove it first to replace the "
                 "certificate",
                 pub, sec);

  cert = zcert_new ();
  zcert_set_meta (cert, "name", "%s", name);
  zcert_set_meta (cert, "created-by", "jobwire-cert");
  /* The secret file is private from its creation on. */
  old_mask = umask (077);
  rc = zcert_save_secret (cert, sec);
  umask (old_mask);
  if (rc != 0)
    status = fail ("cannot write %s: %s", sec, g_strerror (errno));
  else if (zcert_save_public (cert, pub) != 0)
    status = fail ("cannot write %s: %s", pub, g_strerror (errno));
  else if (stat (sec, &st) < 0 || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    status = fail ("%s is not private after writing it", sec);
  else
    g_print ("%s\t%s\n"
             "public: %s (copy it to the hosts that must know this key)\n"
             "secret: %s (mode 0600, keep it on this host)\n",
             name, zcert_public_txt (cert), pub, sec);
  zcert_destroy (&cert);
  return status;
}

static int
cmd_show (const char *path)
{
  g_autoptr (GError) error = NULL;
  zcert_t *cert = jw_curve_load_cert (path, "certificate", FALSE, &error);
  zconfig_t *root;
  gboolean has_secret;

  if (cert == NULL)
    return fail ("%s", error->message);
  root = zconfig_load (path);
  has_secret = root != NULL && zconfig_get (root, "curve/secret-key", NULL);
  zconfig_destroy (&root);
  g_print ("file: %s\npublic-key: %s\nsecret-key: %s\n", path,
           zcert_public_txt (cert),
           has_secret ? "present" : "absent (a public certificate)");
  zcert_destroy (&cert);
  if (has_secret)
    {
      cert = jw_curve_load_cert (path, "certificate", TRUE, &error);
      if (cert == NULL)
        {
          g_print ("warning: %s\n", error->message);
          return 1;
        }
      zcert_destroy (&cert);
    }
  return 0;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

static int
cmd_list (const char *dir_path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, &error);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *entry;

  if (dir == NULL)
    return fail ("%s", error->message);
  while ((entry = g_dir_read_name (dir)) != NULL)
    if (entry[0] != '.' && !g_str_has_suffix (entry, "_secret"))
      g_ptr_array_add (names, g_strdup (entry));
  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *path =
          g_build_filename (dir_path, names->pdata[i], NULL);
      g_autofree char *sec = g_strconcat (path, "_secret", NULL);
      g_autoptr (GError) local = NULL;
      zcert_t *cert = jw_curve_load_cert (path, "certificate", FALSE, &local);

      if (cert == NULL)
        {
          g_printerr ("jobwire-cert: skipping %s\n", local->message);
          continue;
        }
      g_print ("%s\t%s%s\n", (char *)names->pdata[i], zcert_public_txt (cert),
               g_file_test (sec, G_FILE_TEST_EXISTS) ? "\tsecret" : "");
      zcert_destroy (&cert);
    }
  return 0;
}

int
main (int argc, char **argv)
{
  static const GOptionEntry entries[] = {
    { "dir", 'd', 0, G_OPTION_ARG_FILENAME, &opt_dir,
      "Directory for new certificates (default: the current one)", "DIR" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx =
      g_option_context_new ("new NAME | list DIR | show FILE");
  g_autoptr (GError) error = NULL;

  g_option_context_set_summary (
      ctx, "CURVE certificates for jobwire's tcp:// endpoints.\n\n"
           "  new NAME [--dir DIR]  write DIR/NAME (public) and "
           "DIR/NAME_secret (0600)\n"
           "  list DIR              name and public key of each "
           "certificate in DIR\n"
           "  show FILE             the public key of FILE and whether it "
           "holds the secret");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("jobwire-cert: %s\n", error->message);
      return 2;
    }
  if (argc == 3 && strcmp (argv[1], "new") == 0)
    return cmd_new (argv[2]);
  if (argc == 3 && strcmp (argv[1], "list") == 0)
    return cmd_list (argv[2]);
  if (argc == 3 && strcmp (argv[1], "show") == 0)
    return cmd_show (argv[2]);
  g_printerr ("usage: jobwire-cert new NAME [--dir DIR] | list DIR | show "
              "FILE\n");
  return 2;
}
