/* handler-command: job types defined in the key file that run an external
 * command. See the section "Job types from configuration" of
 * docs/CONFIGURATION.md for the keys and the output format. */
#pragma once

#include "handler.h"
#include "jw-config.h"
#include "jw-params.h"

G_BEGIN_DECLS

/* One configured type: section [type.NAME]. */
typedef struct
{
  char *name;
  GStrv argv;          /* command, never through a shell */
  char *directory;     /* working directory, or NULL: the worker's */
  char *description;   /* for GET /types, or NULL */
  JwParamSpec *params; /* or NULL: any params */
  guint timeout_s;     /* 0: no limit */
  guint max_attempts;  /* 0: the broker's default */
  guint kill_grace_ms; /* SIGTERM to SIGKILL */
} JwCommandType;

/* Reads [type.NAME]; kill_grace_ms comes from [worker] kill-grace-s. */
JwCommandType *jw_command_type_new (JwConfig *cfg, const char *name,
                                    GError **error);
void jw_command_type_free (JwCommandType *type);

/* Sends SIGKILL to every process group of a command that is still being
 * stopped (a cancelled job within its grace time), so that none outlives
 * the worker. For the worker's exit. */
void jw_command_kill_all (void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwCommandType, jw_command_type_free)

G_END_DECLS
