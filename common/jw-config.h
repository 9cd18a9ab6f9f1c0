/* jw-config: one key file for every process, overridden by command-line
 * options. Defaults need no editing on one machine. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _JwConfig JwConfig;

/* Options every daemon accepts: --config FILE, --runtime-dir DIR and
 * --set SECTION.KEY=VALUE (repeatable). Add the returned group to a
 * GOptionContext; after parsing, call jw_config_load. */
GOptionGroup *jw_config_option_group (void);

/* Loads the key file named by --config (or $JOBWIRE_CONFIG; none is fine)
 * and applies --set overrides. The runtime directory is --runtime-dir, else
 * $JOBWIRE_RUNTIME_DIR, else $XDG_RUNTIME_DIR/jobwire; it is created 0700. */
JwConfig *jw_config_load (GError **error);
/* A config from a key file path (may be NULL), for tests and tools. */
JwConfig *jw_config_new (const char *path, const char *runtime_dir,
                         GError **error);
void jw_config_free (JwConfig *self);

void jw_config_set (JwConfig *self, const char *section, const char *key,
                    const char *value);
/* Values: the override, else the key file, else def. */
const char *jw_config_get_string (JwConfig *self, const char *section,
                                  const char *key, const char *def);
gint64 jw_config_get_int (JwConfig *self, const char *section, const char *key,
                          gint64 def);
gboolean jw_config_get_bool (JwConfig *self, const char *section,
                             const char *key, gboolean def);
const char *jw_config_runtime_dir (JwConfig *self);
/* The address of endpoint name ("commands", "workers", "worker-events",
 * "events", "queries"): [endpoints] name, else ipc://RUNTIME/name. Fails
 * when an ipc path is too long for a socket address. */
char *jw_config_endpoint (JwConfig *self, const char *name, GError **error);
/* A list value in GKeyFile syntax ("a;b;c", `\;` for a literal `;`), from
 * the override or the key file; NULL when the key is absent. */
GStrv jw_config_get_string_list (JwConfig *self, const char *section,
                                 const char *key);
/* The sections whose name starts with prefix: those of the key file in
 * file order, then those that only --set overrides name. */
GStrv jw_config_sections (JwConfig *self, const char *prefix);

/* Checks that path, the file of configuration key setting (named in the
 * message), is a regular file that group and others can neither read nor
 * write, as every file holding a secret must be. */
gboolean jw_config_check_private_file (const char *path, const char *setting,
                                       GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwConfig, jw_config_free)

G_END_DECLS
