/* Fuzzes what a client names as its place in a stream: Last-Event-ID and
 * ?after= values, and job ids in paths. */
#include "jw-id.h"
#include "sse.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *str = g_strndup ((const char *) data, size);
  gint64 seq = -1;

  if (jw_sse_parse_seq (str, &seq))
    g_assert (seq >= 0 && seq <= (G_GINT64_CONSTANT (1) << 53));
  if (jw_id_valid ((const char *) data, (gssize) size))
    g_assert (size == JW_ID_LEN && memchr (data, '\0', size) == NULL);
  return 0;
}
