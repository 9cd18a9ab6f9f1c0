/* jw-zsource: ZeroMQ sockets in the GLib main loop.
 *
 * ZMQ_FD only signals that ZMQ_EVENTS may have changed, and it is edge
 * triggered: a message that arrives while we are busy may not wake poll()
 * again. So prepare and check ask ZMQ_EVENTS directly (which also lets
 * libzmq process pending commands), and dispatch drains a bounded batch so
 * that one busy socket cannot starve the rest of the loop. Because prepare
 * runs on every loop turn, a send elsewhere that changes the socket's state
 * is noticed on the next turn. */
#include "jw-zsource.h"

#include <czmq.h>
#include <zmq.h>

#define BATCH 256

typedef struct
{
  GSource source;
  void *handle;
  JwZSourceFunc func;
  gpointer user_data;
} JwZSource;

static gboolean
readable (JwZSource *zs)
{
  int events = 0;
  size_t len = sizeof events;

  if (zmq_getsockopt (zs->handle, ZMQ_EVENTS, &events, &len) < 0)
    return FALSE;
  return (events & ZMQ_POLLIN) != 0;
}

static gboolean
zsource_prepare (GSource *source, gint *timeout)
{
  *timeout = -1;
  return readable ((JwZSource *)source);
}

static gboolean
zsource_check (GSource *source)
{
  return readable ((JwZSource *)source);
}

static gboolean
zsource_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  JwZSource *zs = (JwZSource *)source;

  for (int i = 0; i < BATCH && readable (zs); i++)
    {
      if (zs->func (zs->handle, zs->user_data) == G_SOURCE_REMOVE)
        return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs zsource_funcs = {
  .prepare = zsource_prepare,
  .check = zsource_check,
  .dispatch = zsource_dispatch,
};

guint
jw_zsource_add (void *sock, JwZSourceFunc func, gpointer user_data)
{
  GSource *source = g_source_new (&zsource_funcs, sizeof (JwZSource));
  JwZSource *zs = (JwZSource *)source;
  int fd = -1;
  size_t len = sizeof fd;
  guint id;

  zs->handle = zsock_resolve (sock);
  zmq_getsockopt (zs->handle, ZMQ_FD, &fd, &len);
  zs->func = func;
  zs->user_data = user_data;
  g_source_add_unix_fd (source, fd, G_IO_IN);
  /* GLib blocks a source that cannot recurse while it dispatches, which
   * takes its fd out of the poll set and puts it back, waking the loop's
   * own eventfd each time: a write per message received. The callbacks
   * never run a nested loop, so recursion is allowed and costs nothing. */
  g_source_set_can_recurse (source, TRUE);
  g_source_set_name (source, "jw-zsource");
  id = g_source_attach (source, g_main_context_get_thread_default ());
  g_source_unref (source);
  return id;
}
