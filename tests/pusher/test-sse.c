/* Tests of the pusher's SSE framing and resume-point parsing. */
#include "sse.h"

#include <string.h>

static void
assert_bytes (GBytes *b, const char *expected)
{
  gsize len;
  const char *data = g_bytes_get_data (b, &len);

  g_assert_cmpmem (data, len, expected, strlen (expected));
}

static void
test_frame (void)
{
  const char *json = "{\"job\":\"x\",\"seq\":7}";
  g_autoptr (GBytes) b = jw_sse_frame_new (7, "progress", json, strlen (json));

  assert_bytes (b, "id: 7\nevent: progress\ndata: {\"job\":\"x\",\"seq\":7}"
                   "\n\n");
}

/* A line break inside the data cannot end the event or add a field. */
static void
test_frame_line_breaks (void)
{
  const char *json = "{\"a\":\n\"b\"}\r\nid: 99\rx";
  g_autoptr (GBytes) b = jw_sse_frame_new (3, "queued", json, strlen (json));

  assert_bytes (b, "id: 3\nevent: queued\ndata: {\"a\":\ndata: \"b\"}\n"
                   "data: id: 99\ndata: x\n\n");
}

static void
test_parse_seq (void)
{
  gint64 v = -1;

  g_assert_true (jw_sse_parse_seq ("0", &v));
  g_assert_cmpint (v, ==, 0);
  g_assert_true (jw_sse_parse_seq ("42", &v));
  g_assert_cmpint (v, ==, 42);
  g_assert_true (jw_sse_parse_seq (" 17 ", &v));
  g_assert_cmpint (v, ==, 17);
  g_assert_true (jw_sse_parse_seq ("9007199254740992", &v));

  g_assert_false (jw_sse_parse_seq (NULL, &v));
  g_assert_false (jw_sse_parse_seq ("", &v));
  g_assert_false (jw_sse_parse_seq ("-1", &v));
  g_assert_false (jw_sse_parse_seq ("+1", &v));
  g_assert_false (jw_sse_parse_seq ("1.5", &v));
  g_assert_false (jw_sse_parse_seq ("0x10", &v));
  g_assert_false (jw_sse_parse_seq ("12abc", &v));
  g_assert_false (jw_sse_parse_seq ("9007199254740993", &v));
  g_assert_false (jw_sse_parse_seq ("99999999999999999999999", &v));
  g_assert_false (jw_sse_parse_seq ("1 2", &v));
}

static void
test_response_head (void)
{
  g_autofree char *head = jw_sse_response_head ("X-Test: 1\r\n");

  g_assert_true (g_str_has_prefix (head, "HTTP/1.1 200 OK\r\n"));
  g_assert_nonnull (strstr (head, "Content-Type: text/event-stream\r\n"));
  g_assert_nonnull (strstr (head, "Cache-Control: no-cache\r\n"));
  g_assert_nonnull (strstr (head, "X-Accel-Buffering: no\r\n"));
  g_assert_nonnull (strstr (head, "Connection: close\r\n"));
  g_assert_null (strstr (head, "Transfer-Encoding"));
  g_assert_true (g_str_has_suffix (head, "X-Test: 1\r\n\r\nretry: 2000\n\n"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pusher/sse/frame", test_frame);
  g_test_add_func ("/pusher/sse/frame-line-breaks", test_frame_line_breaks);
  g_test_add_func ("/pusher/sse/parse-seq", test_parse_seq);
  g_test_add_func ("/pusher/sse/response-head", test_response_head);
  return g_test_run ();
}
