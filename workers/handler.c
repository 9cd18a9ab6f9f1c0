/* handler: what the job handlers share, their error domain and its wire
 * codes. */
#include "handler.h"

G_DEFINE_QUARK (jw - handler - error - quark, jw_handler_error)

const char *
jw_handler_error_code (const GError *error)
{
  static const char *codes[] = {
    [JW_HANDLER_ERROR_INVALID_PARAMS] = "invalid_params",
    [JW_HANDLER_ERROR_STEP_FAILED] = "step_failed",
    [JW_HANDLER_ERROR_PATH_OUTSIDE_ROOT] = "path_outside_root",
    [JW_HANDLER_ERROR_FILE_NOT_FOUND] = "file_not_found",
    [JW_HANDLER_ERROR_NOT_A_FILE] = "not_a_file",
    [JW_HANDLER_ERROR_IO] = "io_error",
    [JW_HANDLER_ERROR_SPAWN] = "spawn_failed",
  };

  if (error->domain != JW_HANDLER_ERROR || error->code < 0
      || (gsize)error->code >= G_N_ELEMENTS (codes))
    return "internal_error";
  return codes[error->code];
}
