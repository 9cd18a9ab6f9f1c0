/* ws: WebSocket (RFC 6455) pieces the pusher needs on a taken-over
 * connection: the handshake key, server frames, and a bounded reader of
 * client frames. Pure functions; no I/O. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define JW_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum
{
  JW_WS_OP_CONTINUATION = 0x0,
  JW_WS_OP_TEXT = 0x1,
  JW_WS_OP_BINARY = 0x2,
  JW_WS_OP_CLOSE = 0x8,
  JW_WS_OP_PING = 0x9,
  JW_WS_OP_PONG = 0xa,
};

enum
{
  JW_WS_CLOSE_NORMAL = 1000,
  JW_WS_CLOSE_GOING_AWAY = 1001,
  JW_WS_CLOSE_PROTOCOL_ERROR = 1002,
  JW_WS_CLOSE_UNSUPPORTED_DATA = 1003,
  JW_WS_CLOSE_BAD_DATA = 1007,
  JW_WS_CLOSE_POLICY_VIOLATION = 1008,
  JW_WS_CLOSE_TOO_BIG = 1009,
};

/* TRUE when key is valid base64 of exactly 16 bytes. */
gboolean jw_ws_key_valid (const char *key);
/* The Sec-WebSocket-Accept value for a client key. */
char *jw_ws_accept_key (const char *key);

/* A server frame (FIN set, unmasked) carrying payload. */
GBytes *jw_ws_frame_new (guint8 opcode, const void *payload, gsize len);
/* A close frame with code and a reason (truncated to fit 125 bytes). */
GBytes *jw_ws_close_frame_new (guint16 code, const char *reason);

typedef struct
{
  gboolean fin;
  guint8 opcode;
  gboolean masked;
  guint8 mask[4];
  gsize header_len;
  guint64 payload_len;
} JwWsFrameHeader;

/* Parses a client frame header at data[0..len). Returns 1 and fills h when
 * the header is complete and acceptable, 0 when more bytes are needed, -1
 * with *close_code set when the frame breaks the protocol (unmasked, bad
 * opcode, reserved bits, oversized control frame, length over
 * max_payload). */
int jw_ws_parse_header (const guint8 *data, gsize len, gsize max_payload,
                        JwWsFrameHeader *h, guint16 *close_code);

/* Called for each complete message (text or binary, fragments joined) and
 * each control frame. Return FALSE to stop reading. */
typedef gboolean (*JwWsMessageFunc) (guint8 opcode, const guint8 *payload,
                                     gsize len, gpointer user_data);

/* Incremental reader of client frames. Buffers are allocated only while a
 * frame or a fragmented message is incomplete. */
typedef struct
{
  GByteArray *partial; /* bytes of an incomplete frame */
  GByteArray *message; /* fragments of an unfinished message */
  guint8 message_opcode;
  gsize max_message;
} JwWsReader;

void jw_ws_reader_init (JwWsReader *self, gsize max_message);
void jw_ws_reader_clear (JwWsReader *self);
/* Feeds data (unmasked in place). Returns 0 while the stream is valid,
 * else the close code to send. */
guint16 jw_ws_reader_feed (JwWsReader *self, guint8 *data, gsize len,
                           JwWsMessageFunc func, gpointer user_data);

G_END_DECLS
