/* Fuzzes the strict JSON gate that every outside document passes, and the
 * serializer: whatever the validator lets through must parse, and must
 * read back equal after serialization. */
#include "jw-json.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (JsonNode) node = NULL;
  g_autoptr (JsonNode) back = NULL;
  g_autofree char *out = NULL;
  gsize len;

  if (!jw_json_validate ((const char *) data, size, 32, NULL))
    return 0;
  node = jw_json_parse ((const char *) data, size, 32, NULL);
  g_assert (node != NULL);
  out = jw_json_to_string (node, &len);
  back = jw_json_parse (out, len, 32, NULL);
  g_assert (back != NULL);
  g_assert (json_node_equal (node, back));
  return 0;
}
