/* handler: the interface between the worker and the code that runs one
 * job type. A handler runs on the main loop without blocking it and
 * reports through an emitter. */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define JW_HANDLER_ERROR (jw_handler_error_quark ())
GQuark jw_handler_error_quark (void);

/* Failures a handler reports; jw_handler_error_code gives the wire code. */
typedef enum
{
  JW_HANDLER_ERROR_INVALID_PARAMS,
  JW_HANDLER_ERROR_STEP_FAILED,
  JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT,
  JW_HANDLER_ERROR_FILE_NOT_FOUND,
  JW_HANDLER_ERROR_NOT_A_FILE,
  JW_HANDLER_ERROR_IO,
  JW_HANDLER_ERROR_SPAWN,
} JwHandlerError;

const char *jw_handler_error_code (const GError *error);

/* How a running handler reports. progress may be called any number of
 * times; then exactly one of succeeded (result consumed), failed or
 * failed_with; after that the handler calls nothing and the worker frees
 * it. failed_with sends the error object {code, message} with the members
 * of extra (may be NULL) added, e.g. exit_code. */
typedef struct
{
  void (*progress) (gpointer ctx, double done, double total, double percent,
                    const char *message);
  void (*succeeded) (gpointer ctx, JsonNode *result);
  void (*failed) (gpointer ctx, const GError *error);
  void (*failed_with) (gpointer ctx, const char *code, const char *message,
                       JsonObject *extra);
  gpointer ctx;
} JwEmitter;

/* The job a handler is started for; borrowed for the call of start. */
typedef struct
{
  const char *id;
  const char *type;
  gint64 attempt;
  JsonObject *params;
} JwJobInfo;

typedef struct _JwJobRun JwJobRun;

/* One job type. start returns the running job, or NULL with error when the
 * params are unusable (then nothing is emitted). cancel stops a running job
 * and frees it without emitting anything; free releases one that has
 * finished. start must not emit before it returns: handlers work from
 * main-loop callbacks. */
typedef struct
{
  const char *type;
  JwJobRun *(*start) (const JwJobInfo *job, const JwEmitter *emitter,
                      gpointer type_data, GError **error);
  void (*cancel) (JwJobRun *run);
  void (*free) (JwJobRun *run);
} JwHandlerType;

extern const JwHandlerType jw_handler_sleep;
/* type_data of the checksum handler: the root directory (a char *). */
extern const JwHandlerType jw_handler_checksum;
/* type_data of the command handler: a JwCommandType (handler-command.h). */
extern const JwHandlerType jw_handler_command;

G_END_DECLS
