/* Multipart messages over real ZeroMQ sockets, driven by the GLib main
 * loop through jw-zsource. */
#include "jw-msg.h"
#include "jw-zmq.h"
#include "jw-zsource.h"

#include <gio/gio.h>
#include <glib/gstdio.h>

typedef struct
{
  GMainLoop *loop;
  GPtrArray *received; /* JwMsg */
  guint want;
} Sink;

static gboolean
on_readable (void *sock, gpointer data)
{
  Sink *sink = data;
  g_autoptr (GError) error = NULL;
  JwMsg *msg = jw_msg_recv (sock, &error);

  g_assert_no_error (error);
  g_ptr_array_add (sink->received, msg);
  if (sink->received->len == sink->want)
    g_main_loop_quit (sink->loop);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_deadline (gpointer data)
{
  g_error ("timed out waiting for messages");
  return G_SOURCE_REMOVE;
}

static char *
ipc_endpoint (char **dir)
{
  *dir = g_dir_make_tmp ("jw-msg-XXXXXX", NULL);
  return g_strdup_printf ("ipc://%s/sock", *dir);
}

static void
test_roundtrip (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *endpoint = ipc_endpoint (&dir);
  zsock_t *pull = jw_zmq_socket (ZMQ_PULL, 0);
  zsock_t *push = jw_zmq_socket (ZMQ_PUSH, 0);
  Sink sink = { g_main_loop_new (NULL, FALSE),
                g_ptr_array_new_with_free_func ((GDestroyNotify)jw_msg_free),
                1000 };
  guint deadline;

  g_assert_true (jw_zmq_bind (pull, endpoint, NULL));
  g_assert_true (jw_zmq_connect (push, endpoint, NULL));
  jw_zsource_add (pull, on_readable, &sink);

  /* More messages than one dispatch batch: the edge-triggered ZMQ_FD must
   * not lose any of them. */
  for (guint i = 0; i < sink.want; i++)
    {
      g_autoptr (JwMsg) msg = jw_msg_new ();
      g_autoptr (GError) error = NULL;
      const char binary[] = { 'a', '\0', 'b' };

      jw_msg_add_str (msg, "topic");
      jw_msg_add_printf (msg, "%u", i);
      jw_msg_add_data (msg, binary, sizeof binary);
      while (!jw_msg_send (msg, push, &error))
        {
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
          g_clear_error (&error);
          g_main_context_iteration (NULL, FALSE);
        }
    }
  deadline = g_timeout_add_seconds (20, on_deadline, NULL);
  g_main_loop_run (sink.loop);
  g_source_remove (deadline);

  for (guint i = 0; i < sink.want; i++)
    {
      JwMsg *msg = sink.received->pdata[i];
      g_autofree char *n = g_strdup_printf ("%u", i);
      g_autofree char *with_nul = jw_msg_dup_str (msg, 2);
      gsize len;

      g_assert_cmpuint (jw_msg_size (msg), ==, 3);
      g_assert_true (jw_msg_frame_is (msg, 0, "topic"));
      g_assert_true (jw_msg_frame_is (msg, 1, n));
      g_assert_null (with_nul);
      g_assert_nonnull (jw_msg_data (msg, 2, &len));
      g_assert_cmpuint (len, ==, 3);
    }

  g_ptr_array_unref (sink.received);
  g_main_loop_unref (sink.loop);
  zsock_destroy (&push);
  zsock_destroy (&pull);
  g_remove (endpoint + strlen ("ipc://"));
  g_rmdir (dir);
}

static void
test_would_block (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *endpoint = ipc_endpoint (&dir);
  zsock_t *push = jw_zmq_socket (ZMQ_PUSH, 0);
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (GError) error = NULL;

  /* Nobody listens and ZMQ_IMMEDIATE is set: the send must fail at once
   * instead of blocking or queueing. */
  zsock_set_immediate (push, 1);
  g_assert_true (jw_zmq_connect (push, endpoint, NULL));
  jw_msg_add_str (msg, "x");
  g_assert_false (jw_msg_send (msg, push, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);

  g_clear_error (&error);
  g_assert_null (jw_msg_recv (push, &error));
  g_assert_nonnull (error);

  zsock_destroy (&push);
  g_rmdir (dir);
}

static void
test_frames (void)
{
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (GBytes) head = NULL;

  jw_msg_add_str (msg, "a");
  jw_msg_add_str (msg, "b");
  head = jw_msg_pop (msg);
  g_assert_cmpuint (jw_msg_size (msg), ==, 1);
  g_assert_true (jw_msg_frame_is (msg, 0, "b"));
  jw_msg_push (msg, head);
  g_assert_true (jw_msg_frame_is (msg, 0, "a"));
  g_assert_null (jw_msg_get (msg, 5));
  g_assert_false (jw_msg_frame_is (msg, 5, "a"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  jw_zmq_init ();
  g_test_add_func ("/common/msg/roundtrip-in-main-loop", test_roundtrip);
  g_test_add_func ("/common/msg/would-block", test_would_block);
  g_test_add_func ("/common/msg/frames", test_frames);
  return g_test_run ();
}
