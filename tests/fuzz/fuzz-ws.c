/* Fuzzes the pusher's reader of WebSocket client frames with arbitrary
 * bytes cut into arbitrary pieces: it must never read out of bounds, never
 * hand out a message over its limit, and stop at the first close code. */
#include "ws.h"

#include <stdint.h>
#include <string.h>

#define MAX_MESSAGE 4096

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static gboolean
on_message (guint8 opcode, const guint8 *payload, gsize len, gpointer data)
{
  volatile guint8 sink = 0;

  g_assert (len <= MAX_MESSAGE);
  for (gsize i = 0; i < len; i++)
    sink ^= payload[i];
  (void) sink;
  (*(guint *) data)++;
  return TRUE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  JwWsReader reader;
  guint messages = 0;
  guint16 code = 0;
  gsize step, pos;

  if (size < 1)
    return 0;
  /* The first byte chooses how the rest arrives: whole, or in pieces. */
  step = data[0] == 0 ? size : data[0];
  data++, size--;

  jw_ws_reader_init (&reader, MAX_MESSAGE);
  for (pos = 0; pos < size && code == 0; pos += step) {
    gsize n = MIN (step, size - pos);
    g_autofree guint8 *piece = g_memdup2 (data + pos, n);

    code = jw_ws_reader_feed (&reader, piece, n, on_message, &messages);
  }
  jw_ws_reader_clear (&reader);
  g_assert (code == 0 || (code >= 1000 && code < 5000));
  return 0;
}
