/* Tests of the pusher's WebSocket framing: handshake key, server frames,
 * and the client frame reader fed with hostile input. */
#include "ws.h"

#include <string.h>

typedef struct
{
  GPtrArray *ops;      /* opcodes as pointers */
  GPtrArray *payloads; /* GBytes */
  gboolean stop;
} Seen;

static gboolean
collect (guint8 opcode, const guint8 *payload, gsize len, gpointer user_data)
{
  Seen *seen = user_data;

  g_ptr_array_add (seen->ops, GUINT_TO_POINTER (opcode));
  g_ptr_array_add (seen->payloads, g_bytes_new (payload, len));
  return !seen->stop;
}

static void
seen_init (Seen *seen)
{
  seen->ops = g_ptr_array_new ();
  seen->payloads =
      g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  seen->stop = FALSE;
}

static void
seen_clear (Seen *seen)
{
  g_ptr_array_unref (seen->ops);
  g_ptr_array_unref (seen->payloads);
}

/* A masked client frame; len64 forces the 64-bit length form. */
static GByteArray *
client_frame (gboolean fin, guint8 opcode, const char *payload, gsize len,
              gboolean masked, gboolean len64)
{
  GByteArray *b = g_byte_array_new ();
  guint8 mask[4] = { 0x12, 0x34, 0x56, 0x78 };
  guint8 h[2] = { (fin ? 0x80 : 0) | opcode, masked ? 0x80 : 0 };

  if (len64)
    {
      h[1] |= 127;
      g_byte_array_append (b, h, 2);
      for (int i = 7; i >= 0; i--)
        {
          guint8 c = (guint8)((guint64)len >> (8 * i));
          g_byte_array_append (b, &c, 1);
        }
    }
  else if (len < 126)
    {
      h[1] |= len;
      g_byte_array_append (b, h, 2);
    }
  else
    {
      guint8 l[2] = { len >> 8, len & 0xff };

      h[1] |= 126;
      g_byte_array_append (b, h, 2);
      g_byte_array_append (b, l, 2);
    }
  if (masked)
    g_byte_array_append (b, mask, 4);
  for (gsize i = 0; i < len; i++)
    {
      guint8 c = payload[i] ^ (masked ? mask[i & 3] : 0);
      g_byte_array_append (b, &c, 1);
    }
  return b;
}

static void
test_accept_key (void)
{
  /* The example of RFC 6455 section 1.3. */
  g_autofree char *accept = jw_ws_accept_key ("dGhlIHNhbXBsZSBub25jZQ==");

  g_assert_cmpstr (accept, ==, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  g_assert_true (jw_ws_key_valid ("dGhlIHNhbXBsZSBub25jZQ=="));
  g_assert_false (jw_ws_key_valid (NULL));
  g_assert_false (jw_ws_key_valid (""));
  g_assert_false (jw_ws_key_valid ("dGhlIHNhbXBsZSBub25jZQ"));
  g_assert_false (jw_ws_key_valid ("dGhlIHNhbXBsZSBub25j"));
  g_assert_false (jw_ws_key_valid ("dGhlIHNhbXBsZSBub25jZQ*="));
  g_assert_false (jw_ws_key_valid ("dGhlIHNhbXBsZSBub25jZXh4eA=="));
}

static void
test_frame_encode (void)
{
  g_autoptr (GBytes) small = jw_ws_frame_new (JW_WS_OP_TEXT, "hi", 2);
  g_autofree char *big_payload = g_malloc0 (70000);
  g_autoptr (GBytes) mid = jw_ws_frame_new (JW_WS_OP_TEXT, big_payload, 300);
  g_autoptr (GBytes) big = jw_ws_frame_new (JW_WS_OP_TEXT, big_payload, 70000);
  g_autoptr (GBytes) close = jw_ws_close_frame_new (1008, "too slow");
  const guint8 *p;
  gsize len;

  p = g_bytes_get_data (small, &len);
  g_assert_cmpuint (len, ==, 4);
  g_assert_cmpuint (p[0], ==, 0x81);
  g_assert_cmpuint (p[1], ==, 2);
  g_assert_cmpmem (p + 2, 2, "hi", 2);

  p = g_bytes_get_data (mid, &len);
  g_assert_cmpuint (len, ==, 304);
  g_assert_cmpuint (p[1], ==, 126);
  g_assert_cmpuint ((p[2] << 8) | p[3], ==, 300);

  p = g_bytes_get_data (big, &len);
  g_assert_cmpuint (len, ==, 70010);
  g_assert_cmpuint (p[1], ==, 127);
  g_assert_cmpuint ((p[7] << 16) | (p[8] << 8) | p[9], ==, 70000);

  p = g_bytes_get_data (close, &len);
  g_assert_cmpuint (p[0], ==, 0x88);
  g_assert_cmpuint (p[1], ==, 10);
  g_assert_cmpuint ((p[2] << 8) | p[3], ==, 1008);
  g_assert_cmpmem (p + 4, 8, "too slow", 8);
}

static guint16
feed (JwWsReader *r, GByteArray *b, Seen *seen)
{
  return jw_ws_reader_feed (r, b->data, b->len, collect, seen);
}

static void
test_read_text (void)
{
  JwWsReader r;
  Seen seen;
  g_autoptr (GByteArray) b =
      client_frame (TRUE, JW_WS_OP_TEXT, "hello", 5, TRUE, FALSE);

  seen_init (&seen);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, b, &seen), ==, 0);
  g_assert_cmpuint (seen.ops->len, ==, 1);
  g_assert_cmpmem (g_bytes_get_data (seen.payloads->pdata[0], NULL), 5, "hello",
                   5);
  g_assert_null (r.partial);
  jw_ws_reader_clear (&r);
  seen_clear (&seen);
}

/* A frame delivered one byte at a time comes out whole, once. */
static void
test_read_byte_by_byte (void)
{
  JwWsReader r;
  Seen seen;
  g_autoptr (GByteArray) b =
      client_frame (TRUE, JW_WS_OP_TEXT, "split me", 8, TRUE, FALSE);

  seen_init (&seen);
  jw_ws_reader_init (&r, 1024);
  for (guint i = 0; i < b->len; i++)
    g_assert_cmpuint (jw_ws_reader_feed (&r, b->data + i, 1, collect, &seen),
                      ==, 0);
  g_assert_cmpuint (seen.ops->len, ==, 1);
  g_assert_cmpmem (g_bytes_get_data (seen.payloads->pdata[0], NULL), 8,
                   "split me", 8);
  g_assert_null (r.partial);
  jw_ws_reader_clear (&r);
  seen_clear (&seen);
}

static void
test_read_unmasked (void)
{
  JwWsReader r;
  Seen seen;
  g_autoptr (GByteArray) b =
      client_frame (TRUE, JW_WS_OP_TEXT, "x", 1, FALSE, FALSE);

  seen_init (&seen);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, b, &seen), ==, JW_WS_CLOSE_PROTOCOL_ERROR);
  g_assert_cmpuint (seen.ops->len, ==, 0);
  jw_ws_reader_clear (&r);
  seen_clear (&seen);
}

/* A length over the limit is refused from the header alone, before any
 * payload is buffered. */
static void
test_read_oversized (void)
{
  JwWsReader r;
  Seen seen;
  guint8 hdr16[] = { 0x81, 0x80 | 126, 0xff, 0xff, 1, 2, 3, 4 };
  guint8 hdr64[] = { 0x81, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4 };
  guint8 hdr64top[] = {
    0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4
  };

  seen_init (&seen);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (jw_ws_reader_feed (&r, hdr16, sizeof hdr16, collect, &seen),
                    ==, JW_WS_CLOSE_TOO_BIG);
  jw_ws_reader_clear (&r);

  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (jw_ws_reader_feed (&r, hdr64, sizeof hdr64, collect, &seen),
                    ==, JW_WS_CLOSE_TOO_BIG);
  jw_ws_reader_clear (&r);

  /* The most significant bit of a 64-bit length must be 0. */
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (
      jw_ws_reader_feed (&r, hdr64top, sizeof hdr64top, collect, &seen), ==,
      JW_WS_CLOSE_PROTOCOL_ERROR);
  jw_ws_reader_clear (&r);
  g_assert_cmpuint (seen.ops->len, ==, 0);
  seen_clear (&seen);
}

static void
test_read_64bit_length (void)
{
  JwWsReader r;
  Seen seen;
  g_autoptr (GByteArray) b =
      client_frame (TRUE, JW_WS_OP_TEXT, "tiny", 4, TRUE, TRUE);

  /* A non-minimal length encoding is still a valid frame. */
  seen_init (&seen);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, b, &seen), ==, 0);
  g_assert_cmpuint (seen.ops->len, ==, 1);
  jw_ws_reader_clear (&r);
  seen_clear (&seen);
}

static void
test_read_fragmented (void)
{
  JwWsReader r;
  Seen seen;
  g_autoptr (GByteArray) f1 =
      client_frame (FALSE, JW_WS_OP_TEXT, "abc", 3, TRUE, FALSE);
  g_autoptr (GByteArray) ping =
      client_frame (TRUE, JW_WS_OP_PING, "p", 1, TRUE, FALSE);
  g_autoptr (GByteArray) f2 =
      client_frame (FALSE, JW_WS_OP_CONTINUATION, "def", 3, TRUE, FALSE);
  g_autoptr (GByteArray) f3 =
      client_frame (TRUE, JW_WS_OP_CONTINUATION, "g", 1, TRUE, FALSE);

  seen_init (&seen);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, f1, &seen), ==, 0);
  /* A control frame may come between fragments. */
  g_assert_cmpuint (feed (&r, ping, &seen), ==, 0);
  g_assert_cmpuint (feed (&r, f2, &seen), ==, 0);
  g_assert_cmpuint (feed (&r, f3, &seen), ==, 0);
  g_assert_cmpuint (seen.ops->len, ==, 2);
  g_assert_cmpuint (GPOINTER_TO_UINT (seen.ops->pdata[0]), ==, JW_WS_OP_PING);
  g_assert_cmpuint (GPOINTER_TO_UINT (seen.ops->pdata[1]), ==, JW_WS_OP_TEXT);
  g_assert_cmpmem (g_bytes_get_data (seen.payloads->pdata[1], NULL), 7,
                   "abcdefg", 7);
  g_assert_null (r.message);
  jw_ws_reader_clear (&r);
  seen_clear (&seen);
}

static void
test_read_fragment_errors (void)
{
  JwWsReader r;
  Seen seen;
  g_autofree char *chunk = g_strnfill (600, 'a');
  g_autoptr (GByteArray) cont =
      client_frame (TRUE, JW_WS_OP_CONTINUATION, "x", 1, TRUE, FALSE);
  g_autoptr (GByteArray) f1 =
      client_frame (FALSE, JW_WS_OP_TEXT, chunk, 600, TRUE, FALSE);
  g_autoptr (GByteArray) f2 =
      client_frame (FALSE, JW_WS_OP_CONTINUATION, chunk, 600, TRUE, FALSE);
  g_autoptr (GByteArray) text =
      client_frame (TRUE, JW_WS_OP_TEXT, "x", 1, TRUE, FALSE);

  seen_init (&seen);
  /* A continuation with nothing to continue. */
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, cont, &seen), ==, JW_WS_CLOSE_PROTOCOL_ERROR);
  jw_ws_reader_clear (&r);

  /* Fragments adding up past the message limit. */
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, f1, &seen), ==, 0);
  g_assert_cmpuint (feed (&r, f2, &seen), ==, JW_WS_CLOSE_TOO_BIG);
  jw_ws_reader_clear (&r);

  /* A new message before the last one ended. */
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, f1, &seen), ==, 0);
  g_assert_cmpuint (feed (&r, text, &seen), ==, JW_WS_CLOSE_PROTOCOL_ERROR);
  jw_ws_reader_clear (&r);
  g_assert_cmpuint (seen.ops->len, ==, 0);
  seen_clear (&seen);
}

static void
test_read_bad_control (void)
{
  JwWsReader r;
  Seen seen;
  g_autofree char *long_payload = g_strnfill (126, 'p');
  g_autoptr (GByteArray) long_ping =
      client_frame (TRUE, JW_WS_OP_PING, long_payload, 126, TRUE, FALSE);
  g_autoptr (GByteArray) frag_ping =
      client_frame (FALSE, JW_WS_OP_PING, "p", 1, TRUE, FALSE);
  g_autoptr (GByteArray) bad_op = client_frame (TRUE, 0x3, "p", 1, TRUE, FALSE);
  g_autoptr (GByteArray) close1 =
      client_frame (TRUE, JW_WS_OP_CLOSE, "x", 1, TRUE, FALSE);
  guint8 rsv[] = { 0xc1, 0x80, 0, 0, 0, 0 };

  seen_init (&seen);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, long_ping, &seen), ==,
                    JW_WS_CLOSE_PROTOCOL_ERROR);
  jw_ws_reader_clear (&r);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, frag_ping, &seen), ==,
                    JW_WS_CLOSE_PROTOCOL_ERROR);
  jw_ws_reader_clear (&r);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, bad_op, &seen), ==, JW_WS_CLOSE_PROTOCOL_ERROR);
  jw_ws_reader_clear (&r);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, close1, &seen), ==, JW_WS_CLOSE_PROTOCOL_ERROR);
  jw_ws_reader_clear (&r);
  /* Reserved bits without a negotiated extension. */
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (jw_ws_reader_feed (&r, rsv, sizeof rsv, collect, &seen), ==,
                    JW_WS_CLOSE_PROTOCOL_ERROR);
  jw_ws_reader_clear (&r);
  g_assert_cmpuint (seen.ops->len, ==, 0);
  seen_clear (&seen);
}

static void
test_read_invalid_utf8 (void)
{
  JwWsReader r;
  Seen seen;
  g_autoptr (GByteArray) b =
      client_frame (TRUE, JW_WS_OP_TEXT, "\xff\xfe", 2, TRUE, FALSE);
  g_autoptr (GByteArray) bin =
      client_frame (TRUE, JW_WS_OP_BINARY, "\xff\xfe", 2, TRUE, FALSE);

  seen_init (&seen);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, b, &seen), ==, JW_WS_CLOSE_BAD_DATA);
  jw_ws_reader_clear (&r);
  /* Binary is passed up as such: refusing it is the caller's policy. */
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, bin, &seen), ==, 0);
  g_assert_cmpuint (GPOINTER_TO_UINT (seen.ops->pdata[0]), ==, JW_WS_OP_BINARY);
  jw_ws_reader_clear (&r);
  seen_clear (&seen);
}

/* Several frames in one read; the callback stopping ends the read. */
static void
test_read_many_and_stop (void)
{
  JwWsReader r;
  Seen seen;
  g_autoptr (GByteArray) all = g_byte_array_new ();

  for (int i = 0; i < 3; i++)
    {
      g_autoptr (GByteArray) f =
          client_frame (TRUE, JW_WS_OP_TEXT, "m", 1, TRUE, FALSE);
      g_byte_array_append (all, f->data, f->len);
    }
  /* Half of a fourth frame stays buffered. */
  g_byte_array_append (all, (const guint8 *)"\x81\x85\x01", 3);

  seen_init (&seen);
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, all, &seen), ==, 0);
  g_assert_cmpuint (seen.ops->len, ==, 3);
  g_assert_nonnull (r.partial);
  g_assert_cmpuint (r.partial->len, ==, 3);
  jw_ws_reader_clear (&r);
  seen_clear (&seen);

  seen_init (&seen);
  seen.stop = TRUE;
  jw_ws_reader_init (&r, 1024);
  g_assert_cmpuint (feed (&r, all, &seen), ==, 0);
  g_assert_cmpuint (seen.ops->len, ==, 1);
  jw_ws_reader_clear (&r);
  seen_clear (&seen);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pusher/ws/accept-key", test_accept_key);
  g_test_add_func ("/pusher/ws/frame-encode", test_frame_encode);
  g_test_add_func ("/pusher/ws/read-text", test_read_text);
  g_test_add_func ("/pusher/ws/read-byte-by-byte", test_read_byte_by_byte);
  g_test_add_func ("/pusher/ws/read-unmasked", test_read_unmasked);
  g_test_add_func ("/pusher/ws/read-oversized", test_read_oversized);
  g_test_add_func ("/pusher/ws/read-64bit-length", test_read_64bit_length);
  g_test_add_func ("/pusher/ws/read-fragmented", test_read_fragmented);
  g_test_add_func ("/pusher/ws/read-fragment-errors",
                   test_read_fragment_errors);
  g_test_add_func ("/pusher/ws/read-bad-control", test_read_bad_control);
  g_test_add_func ("/pusher/ws/read-invalid-utf8", test_read_invalid_utf8);
  g_test_add_func ("/pusher/ws/read-many-and-stop", test_read_many_and_stop);
  return g_test_run ();
}
