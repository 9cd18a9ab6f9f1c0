/* Fuzzes the validation of a POST /jobs body: any bytes get either a job
 * type and params object, or an error with an api error code. */
#include "validate.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const types[] = { "sleep", "checksum", NULL };
  g_autofree char *type = NULL;
  g_autoptr (JsonNode) params = NULL;
  g_autoptr (GError) error = NULL;

  if (jw_validate_job_request ((const char *) data, size, 32, types, &type,
                               &params, &error)) {
    g_assert (type != NULL);
    g_assert (params != NULL && JSON_NODE_HOLDS_OBJECT (params));
  } else {
    g_assert (error != NULL && error->domain == JW_API_ERROR);
    g_assert (jw_api_error_code (error->code) != NULL);
  }
  return 0;
}
