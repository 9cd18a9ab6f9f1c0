/* jw-config: the key file shared by every process, with command-line
 * overrides on top, and the default endpoint addresses. */
#include "jw-config.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct _JwConfig
{
  GKeyFile *file;
  GHashTable *overrides; /* "section.key" → value */
  char *runtime_dir;
};

/* Filled by the option group, read by jw_config_load. */
static char *opt_config;
static char *opt_runtime_dir;
static char **opt_set;

GOptionGroup *
jw_config_option_group (void)
{
  static const GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
      "Read configuration from FILE", "FILE" },
    { "runtime-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_runtime_dir,
      "Directory of the ipc endpoints", "DIR" },
    { "set", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_set,
      "Override a configuration value", "SECTION.KEY=VALUE" },
    { NULL }
  };
  GOptionGroup *group = g_option_group_new (
      "config", "Configuration", "Configuration options", NULL, NULL);

  g_option_group_add_entries (group, entries);
  return group;
}

static char *
default_runtime_dir (void)
{
  const char *env = g_getenv ("JOBWIRE_RUNTIME_DIR");
  const char *sd = g_getenv ("RUNTIME_DIRECTORY");
  const char *xdg = g_getenv ("XDG_RUNTIME_DIR");

  if (env != NULL && *env != '\0')
    return g_strdup (env);
  /* Set by systemd for RuntimeDirectory= (the first, when several). */
  if (sd != NULL && *sd != '\0')
    return g_strndup (sd, strcspn (sd, ":"));
  if (xdg != NULL && *xdg != '\0')
    return g_build_filename (xdg, "jobwire", NULL);
  g_autofree char *name = g_strdup_printf ("jobwire-%u", (guint)getuid ());

  return g_build_filename (g_get_tmp_dir (), name, NULL);
}

JwConfig *
jw_config_new (const char *path, const char *runtime_dir, GError **error)
{
  g_autoptr (JwConfig) self = g_new0 (JwConfig, 1);

  self->file = g_key_file_new ();
  self->overrides =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (path != NULL
      && !g_key_file_load_from_file (self->file, path, G_KEY_FILE_NONE, error))
    {
      g_prefix_error (error, "cannot read configuration %s: ", path);
      return NULL;
    }

  self->runtime_dir =
      runtime_dir ? g_strdup (runtime_dir) : default_runtime_dir ();
  if (g_mkdir_with_parents (self->runtime_dir, 0700) < 0)
    {
      int err = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                   "cannot create runtime directory %s: %s", self->runtime_dir,
                   g_strerror (err));
      return NULL;
    }
  return g_steal_pointer (&self);
}

JwConfig *
jw_config_load (GError **error)
{
  const char *path = opt_config ? opt_config : g_getenv ("JOBWIRE_CONFIG");
  g_autoptr (JwConfig) self = jw_config_new (path, opt_runtime_dir, error);

  if (self == NULL)
    return NULL;
  for (guint i = 0; opt_set != NULL && opt_set[i] != NULL; i++)
    {
      const char *eq = strchr (opt_set[i], '=');
      const char *dot = strchr (opt_set[i], '.');

      if (eq == NULL || dot == NULL || dot > eq || dot == opt_set[i])
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "--set %s: expected SECTION.KEY=VALUE", opt_set[i]);
          return NULL;
        }
      g_hash_table_replace (self->overrides,
                            g_strndup (opt_set[i], eq - opt_set[i]),
                            g_strdup (eq + 1));
    }
  return g_steal_pointer (&self);
}

void
jw_config_free (JwConfig *self)
{
  if (self == NULL)
    return;
  g_key_file_unref (self->file);
  g_hash_table_unref (self->overrides);
  g_free (self->runtime_dir);
  g_free (self);
}

void
jw_config_set (JwConfig *self, const char *section, const char *key,
               const char *value)
{
  g_hash_table_replace (self->overrides,
                        g_strdup_printf ("%s.%s", section, key),
                        g_strdup (value));
}

const char *
jw_config_get_string (JwConfig *self, const char *section, const char *key,
                      const char *def)
{
  g_autofree char *name = g_strdup_printf ("%s.%s", section, key);
  const char *value = g_hash_table_lookup (self->overrides, name);
  char *from_file;

  if (value != NULL)
    return value;
  from_file = g_key_file_get_string (self->file, section, key, NULL);
  if (from_file == NULL)
    return def;
  /* Keep the string alive as long as the config, as an override would. */
  g_hash_table_replace (self->overrides, g_steal_pointer (&name), from_file);
  return from_file;
}

gint64
jw_config_get_int (JwConfig *self, const char *section, const char *key,
                   gint64 def)
{
  const char *value = jw_config_get_string (self, section, key, NULL);
  gint64 n;

  if (value == NULL)
    return def;
  if (!g_ascii_string_to_signed (value, 10, G_MININT64, G_MAXINT64, &n, NULL))
    {
      g_warning (
          "configuration %s.%s=%s is not an integer, using %" G_GINT64_FORMAT,
          section, key, value, def);
      return def;
    }
  return n;
}

gboolean
jw_config_get_bool (JwConfig *self, const char *section, const char *key,
                    gboolean def)
{
  const char *value = jw_config_get_string (self, section, key, NULL);

  if (value == NULL)
    return def;
  if (g_ascii_strcasecmp (value, "true") == 0 || strcmp (value, "1") == 0
      || g_ascii_strcasecmp (value, "yes") == 0)
    return TRUE;
  if (g_ascii_strcasecmp (value, "false") == 0 || strcmp (value, "0") == 0
      || g_ascii_strcasecmp (value, "no") == 0)
    return FALSE;
  g_warning ("configuration %s.%s=%s is not a boolean", section, key, value);
  return def;
}

const char *
jw_config_runtime_dir (JwConfig *self)
{
  return self->runtime_dir;
}

char *
jw_config_endpoint (JwConfig *self, const char *name, GError **error)
{
  const char *value = jw_config_get_string (self, "endpoints", name, NULL);
  struct sockaddr_un sun;
  g_autofree char *path = NULL;

  if (value != NULL)
    path = g_str_has_prefix (value, "ipc://") ? g_strdup (value + 6) : NULL;
  else
    path = g_build_filename (self->runtime_dir, name, NULL);

  if (path != NULL && strlen (path) >= sizeof sun.sun_path)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG,
                   "endpoint %s: ipc path %s is longer than %zu bytes", name,
                   path, sizeof sun.sun_path - 1);
      return NULL;
    }
  if (value != NULL)
    return g_strdup (value);
  return g_strconcat ("ipc://", path, NULL);
}

GStrv
jw_config_get_string_list (JwConfig *self, const char *section,
                           const char *key)
{
  const char *value = jw_config_get_string (self, section, key, NULL);
  g_autoptr (GKeyFile) one = NULL;
  g_autofree char *text = NULL;

  if (value == NULL)
    return NULL;
  /* Parse the raw value with GKeyFile's own list rules, whether it came
   * from the file or from --set. */
  one = g_key_file_new ();
  text = g_strdup_printf ("[v]\nv=%s\n", value);
  if (strchr (value, '\n') != NULL
      || !g_key_file_load_from_data (one, text, -1, G_KEY_FILE_NONE, NULL))
    return NULL;
  return g_key_file_get_string_list (one, "v", "v", NULL, NULL);
}

GStrv
jw_config_sections (JwConfig *self, const char *prefix)
{
  g_auto (GStrv) groups = g_key_file_get_groups (self->file, NULL);
  g_autoptr (GPtrArray) found = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  const char *name;

  for (guint i = 0; groups[i] != NULL; i++)
    if (g_str_has_prefix (groups[i], prefix))
      g_ptr_array_add (found, g_strdup (groups[i]));
  /* --set SECTION.KEY=VALUE: keys have no dot, so the section is all
   * before the last one. */
  g_hash_table_iter_init (&iter, self->overrides);
  while (g_hash_table_iter_next (&iter, (gpointer *)&name, NULL))
    {
      const char *dot = strrchr (name, '.');
      g_autofree char *section = NULL;

      if (dot == NULL || !g_str_has_prefix (name, prefix))
        continue;
      section = g_strndup (name, dot - name);
      if (!g_ptr_array_find_with_equal_func (found, section, g_str_equal,
                                             NULL))
        g_ptr_array_add (found, g_steal_pointer (&section));
    }
  g_ptr_array_add (found, NULL);
  return (GStrv)g_ptr_array_free (g_steal_pointer (&found), FALSE);
}

gboolean
jw_config_check_private_file (const char *path, const char *setting,
                              GError **error)
{
  struct stat st;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd < 0 || fstat (fd, &st) < 0)
    {
      int err = errno;

      if (fd >= 0)
        close (fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                   "cannot read %s %s: %s", setting, path, g_strerror (err));
      return FALSE;
    }
  close (fd);
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%s %s is not a regular file", setting, path);
      return FALSE;
    }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   "%s %s is open to group or others (mode %04o); make it "
                   "0600 or 0400",
                   setting, path, (guint)(st.st_mode & 07777));
      return FALSE;
    }
  return TRUE;
}
