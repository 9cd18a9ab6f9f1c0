/* jw-id: time-sortable job ids. */
#include "jw-id.h"

#include <string.h>

#include "jw-util.h"

static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

void
jw_id_new (char out[JW_ID_LEN + 1])
{
  guint64 ms = (guint64)jw_now_ms ();
  guint8 rnd[10];

  for (guint i = 0; i < sizeof rnd; i++)
    rnd[i] = (guint8)g_random_int_range (0, 256);

  /* 10 characters of time (50 bits, the top 2 always zero), then 16 of
   * randomness (80 bits). */
  for (int i = 9; i >= 0; i--)
    {
      out[i] = alphabet[ms & 31];
      ms >>= 5;
    }
  for (int i = 0; i < 16; i++)
    {
      guint bit = (guint)i * 5;
      guint byte = bit / 8, shift = bit % 8;
      guint v = rnd[byte] << 8 | (byte + 1 < sizeof rnd ? rnd[byte + 1] : 0);

      out[10 + i] = alphabet[(v >> (11 - shift)) & 31];
    }
  out[JW_ID_LEN] = '\0';
}

gboolean
jw_id_valid (const char *s, gssize len)
{
  if (s == NULL)
    return FALSE;
  if (len < 0)
    len = (gssize)strlen (s);
  if (len != JW_ID_LEN)
    return FALSE;
  for (gssize i = 0; i < len; i++)
    if (s[i] == '\0' || strchr (alphabet, s[i]) == NULL)
      return FALSE;
  /* The first character carries only the top 3 bits of 50, which are 0
   * until the year 10889. */
  return s[0] <= '7';
}
