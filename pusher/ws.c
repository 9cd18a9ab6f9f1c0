/* ws: WebSocket handshake key, server frame encoding and a bounded,
 * incremental parser of client frames for the pusher's own connections. */
#include "ws.h"

#include <string.h>

#define MAX_CONTROL_PAYLOAD 125

gboolean
jw_ws_key_valid (const char *key)
{
  gsize klen, i;
  guchar out[20];
  gint state = 0;
  guint save = 0;
  gsize n;

  if (key == NULL)
    return FALSE;
  klen = strlen (key);
  /* 16 bytes encode to 22 characters plus "==". */
  if (klen != 24 || key[22] != '=' || key[23] != '=')
    return FALSE;
  for (i = 0; i < 22; i++)
    {
      if (!g_ascii_isalnum (key[i]) && key[i] != '+' && key[i] != '/')
        return FALSE;
    }
  n = g_base64_decode_step (key, klen, out, &state, &save);
  return n == 16;
}

char *
jw_ws_accept_key (const char *key)
{
  g_autoptr (GChecksum) sha = g_checksum_new (G_CHECKSUM_SHA1);
  guint8 digest[20];
  gsize dlen = sizeof digest;

  g_checksum_update (sha, (const guchar *)key, strlen (key));
  g_checksum_update (sha, (const guchar *)JW_WS_GUID, strlen (JW_WS_GUID));
  g_checksum_get_digest (sha, digest, &dlen);
  return g_base64_encode (digest, dlen);
}

GBytes *
jw_ws_frame_new (guint8 opcode, const void *payload, gsize len)
{
  guint8 *buf = g_malloc (len + 10);
  gsize h = 0;

  buf[h++] = 0x80 | (opcode & 0x0f);
  if (len < 126)
    {
      buf[h++] = (guint8)len;
    }
  else if (len <= 0xffff)
    {
      buf[h++] = 126;
      buf[h++] = (guint8)(len >> 8);
      buf[h++] = (guint8)len;
    }
  else
    {
      buf[h++] = 127;
      for (int i = 7; i >= 0; i--)
        buf[h++] = (guint8)((guint64)len >> (8 * i));
    }
  if (len > 0)
    memcpy (buf + h, payload, len);
  return g_bytes_new_take (buf, h + len);
}

GBytes *
jw_ws_close_frame_new (guint16 code, const char *reason)
{
  guint8 payload[MAX_CONTROL_PAYLOAD];
  gsize rlen = reason ? strlen (reason) : 0;

  if (rlen > MAX_CONTROL_PAYLOAD - 2)
    rlen = MAX_CONTROL_PAYLOAD - 2;
  payload[0] = (guint8)(code >> 8);
  payload[1] = (guint8)code;
  if (rlen > 0)
    memcpy (payload + 2, reason, rlen);
  return jw_ws_frame_new (JW_WS_OP_CLOSE, payload, rlen + 2);
}

int
jw_ws_parse_header (const guint8 *data, gsize len, gsize max_payload,
                    JwWsFrameHeader *h, guint16 *close_code)
{
  gsize need = 2;
  guint64 plen;
  guint8 b0, b1;

  if (len < 2)
    return 0;
  b0 = data[0];
  b1 = data[1];
  h->fin = (b0 & 0x80) != 0;
  h->opcode = b0 & 0x0f;
  h->masked = (b1 & 0x80) != 0;

  /* No extension was negotiated, so the reserved bits must be clear. */
  if ((b0 & 0x70) != 0)
    goto protocol_error;
  switch (h->opcode)
    {
    case JW_WS_OP_CONTINUATION:
    case JW_WS_OP_TEXT:
    case JW_WS_OP_BINARY:
    case JW_WS_OP_CLOSE:
    case JW_WS_OP_PING:
    case JW_WS_OP_PONG: break;
    default: goto protocol_error;
    }
  /* Every client frame is masked (RFC 6455 5.1). */
  if (!h->masked)
    goto protocol_error;

  plen = b1 & 0x7f;
  if (plen == 126)
    need += 2;
  else if (plen == 127)
    need += 8;
  need += 4;
  if (len < need)
    return 0;

  if (plen == 126)
    {
      plen = ((guint64)data[2] << 8) | data[3];
    }
  else if (plen == 127)
    {
      plen = 0;
      for (int i = 0; i < 8; i++)
        plen = (plen << 8) | data[2 + i];
      if (plen >> 63)
        goto protocol_error;
    }
  memcpy (h->mask, data + need - 4, 4);
  h->header_len = need;
  h->payload_len = plen;

  if (h->opcode >= JW_WS_OP_CLOSE)
    {
      if (!h->fin || plen > MAX_CONTROL_PAYLOAD)
        goto protocol_error;
    }
  else if (plen > max_payload)
    {
      *close_code = JW_WS_CLOSE_TOO_BIG;
      return -1;
    }
  return 1;

protocol_error:
  *close_code = JW_WS_CLOSE_PROTOCOL_ERROR;
  return -1;
}

void
jw_ws_reader_init (JwWsReader *self, gsize max_message)
{
  memset (self, 0, sizeof *self);
  self->max_message = max_message;
}

void
jw_ws_reader_clear (JwWsReader *self)
{
  g_clear_pointer (&self->partial, g_byte_array_unref);
  g_clear_pointer (&self->message, g_byte_array_unref);
}

static void
unmask (guint8 *p, gsize len, const guint8 mask[4])
{
  for (gsize i = 0; i < len; i++)
    p[i] ^= mask[i & 3];
}

/* Handles one whole frame; returns 0, a close code, or G_MAXUINT16 when
 * the callback asked to stop. */
static guint16
handle_frame (JwWsReader *self, const JwWsFrameHeader *h, guint8 *payload,
              JwWsMessageFunc func, gpointer user_data)
{
  gsize plen = (gsize)h->payload_len;
  gboolean go_on = TRUE;

  if (h->opcode >= JW_WS_OP_CLOSE)
    {
      if (h->opcode == JW_WS_OP_CLOSE && plen == 1)
        return JW_WS_CLOSE_PROTOCOL_ERROR;
      go_on = func (h->opcode, payload, plen, user_data);
      return go_on ? 0 : G_MAXUINT16;
    }

  if (h->opcode != JW_WS_OP_CONTINUATION)
    {
      if (self->message != NULL)
        return JW_WS_CLOSE_PROTOCOL_ERROR;
      if (h->fin)
        {
          if (h->opcode == JW_WS_OP_TEXT
              && !g_utf8_validate_len ((const char *)payload, plen, NULL))
            return JW_WS_CLOSE_BAD_DATA;
          go_on = func (h->opcode, payload, plen, user_data);
          return go_on ? 0 : G_MAXUINT16;
        }
      self->message = g_byte_array_sized_new (MAX (plen, 256));
      self->message_opcode = h->opcode;
      g_byte_array_append (self->message, payload, plen);
      return 0;
    }

  if (self->message == NULL)
    return JW_WS_CLOSE_PROTOCOL_ERROR;
  if (self->message->len + plen > self->max_message)
    return JW_WS_CLOSE_TOO_BIG;
  g_byte_array_append (self->message, payload, plen);
  if (h->fin)
    {
      g_autoptr (GByteArray) msg = g_steal_pointer (&self->message);

      if (self->message_opcode == JW_WS_OP_TEXT
          && !g_utf8_validate_len ((const char *)msg->data, msg->len, NULL))
        return JW_WS_CLOSE_BAD_DATA;
      go_on = func (self->message_opcode, msg->data, msg->len, user_data);
    }
  return go_on ? 0 : G_MAXUINT16;
}

guint16
jw_ws_reader_feed (JwWsReader *self, guint8 *data, gsize len,
                   JwWsMessageFunc func, gpointer user_data)
{
  guint8 *buf = data;
  gsize blen = len;
  gsize pos = 0;
  guint16 code = 0;

  /* An incomplete frame from an earlier read: continue it in place. */
  if (self->partial != NULL)
    {
      g_byte_array_append (self->partial, data, len);
      buf = self->partial->data;
      blen = self->partial->len;
    }

  while (pos < blen)
    {
      JwWsFrameHeader h;
      int r = jw_ws_parse_header (buf + pos, blen - pos, self->max_message, &h,
                                  &code);

      if (r < 0)
        return code;
      if (r == 0 || h.payload_len > blen - pos - h.header_len)
        break;
      unmask (buf + pos + h.header_len, (gsize)h.payload_len, h.mask);
      code = handle_frame (self, &h, buf + pos + h.header_len, func, user_data);
      pos += h.header_len + (gsize)h.payload_len;
      if (code == G_MAXUINT16)
        {
          g_clear_pointer (&self->partial, g_byte_array_unref);
          return 0;
        }
      if (code != 0)
        return code;
    }

  /* Keep only the bytes of an incomplete frame. */
  if (self->partial != NULL)
    {
      g_byte_array_remove_range (self->partial, 0, pos);
      if (self->partial->len == 0)
        g_clear_pointer (&self->partial, g_byte_array_unref);
    }
  else if (pos < blen)
    {
      self->partial = g_byte_array_sized_new (blen - pos);
      g_byte_array_append (self->partial, buf + pos, blen - pos);
    }
  return 0;
}
