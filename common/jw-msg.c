/* jw-msg: multipart ZeroMQ messages as GBytes frames. Received frames keep
 * their zmq_msg_t alive inside the GBytes, so nothing is copied. */
#include "jw-msg.h"

#include <czmq.h>
#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <zmq.h>

struct _JwMsg
{
  GPtrArray *frames;
};

JwMsg *
jw_msg_new (void)
{
  JwMsg *self = g_new0 (JwMsg, 1);

  self->frames = g_ptr_array_new_with_free_func ((GDestroyNotify)g_bytes_unref);
  return self;
}

void
jw_msg_free (JwMsg *self)
{
  if (self == NULL)
    return;
  g_ptr_array_unref (self->frames);
  g_free (self);
}

void
jw_msg_add_bytes (JwMsg *self, GBytes *bytes)
{
  g_ptr_array_add (self->frames, g_bytes_ref (bytes));
}

void
jw_msg_add_data (JwMsg *self, const void *data, gsize len)
{
  g_ptr_array_add (self->frames, g_bytes_new (data, len));
}

void
jw_msg_add_str (JwMsg *self, const char *str)
{
  jw_msg_add_data (self, str, strlen (str));
}

void
jw_msg_add_printf (JwMsg *self, const char *fmt, ...)
{
  va_list ap;
  char *str;

  va_start (ap, fmt);
  str = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_ptr_array_add (self->frames, g_bytes_new_take (str, strlen (str)));
}

guint
jw_msg_size (JwMsg *self)
{
  return self->frames->len;
}

GBytes *
jw_msg_get (JwMsg *self, guint i)
{
  return i < self->frames->len ? self->frames->pdata[i] : NULL;
}

const char *
jw_msg_data (JwMsg *self, guint i, gsize *len)
{
  GBytes *b = jw_msg_get (self, i);

  if (b == NULL)
    {
      if (len)
        *len = 0;
      return NULL;
    }
  return g_bytes_get_data (b, len);
}

char *
jw_msg_dup_str (JwMsg *self, guint i)
{
  gsize len;
  const char *data = jw_msg_data (self, i, &len);

  if (data == NULL || memchr (data, '\0', len) != NULL)
    return NULL;
  return g_strndup (data, len);
}

gboolean
jw_msg_frame_is (JwMsg *self, guint i, const char *str)
{
  gsize len;
  const char *data = jw_msg_data (self, i, &len);

  return data != NULL && len == strlen (str) && memcmp (data, str, len) == 0;
}

GBytes *
jw_msg_pop (JwMsg *self)
{
  if (self->frames->len == 0)
    return NULL;
  return g_ptr_array_steal_index (self->frames, 0);
}

void
jw_msg_push (JwMsg *self, GBytes *bytes)
{
  g_ptr_array_insert (self->frames, 0, g_bytes_ref (bytes));
}

static void
set_zmq_error (GError **error, const char *what)
{
  int err = zmq_errno ();

  g_set_error (error, G_IO_ERROR,
               err == EAGAIN ? G_IO_ERROR_WOULD_BLOCK
                             : g_io_error_from_errno (err),
               "%s: %s", what, zmq_strerror (err));
}

gboolean
jw_msg_send (JwMsg *self, void *sock, GError **error)
{
  void *handle = zsock_resolve (sock);
  guint n = self->frames->len;

  g_return_val_if_fail (n > 0, FALSE);

  /* Once the first frame of a multipart message is accepted, libzmq
   * accepts the rest: only the first send can fail with EAGAIN. */
  for (guint i = 0; i < n; i++)
    {
      gsize len;
      const void *data = g_bytes_get_data (self->frames->pdata[i], &len);
      int flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);

      if (zmq_send (handle, data, len, flags) < 0)
        {
          set_zmq_error (error, "zmq send");
          return FALSE;
        }
    }
  return TRUE;
}

static void
free_zmq_msg (gpointer data)
{
  zmq_msg_close (data);
  g_free (data);
}

JwMsg *
jw_msg_recv (void *sock, GError **error)
{
  void *handle = zsock_resolve (sock);
  g_autoptr (JwMsg) msg = NULL;
  int more = 1;

  while (more)
    {
      zmq_msg_t *part = g_new (zmq_msg_t, 1);
      size_t more_len = sizeof more;

      zmq_msg_init (part);
      if (zmq_msg_recv (part, handle, msg == NULL ? ZMQ_DONTWAIT : 0) < 0)
        {
          set_zmq_error (error, "zmq receive");
          free_zmq_msg (part);
          return NULL;
        }
      if (msg == NULL)
        msg = jw_msg_new ();
      g_ptr_array_add (msg->frames,
                       g_bytes_new_with_free_func (zmq_msg_data (part),
                                                   zmq_msg_size (part),
                                                   free_zmq_msg, part));
      zmq_getsockopt (handle, ZMQ_RCVMORE, &more, &more_len);
    }
  return g_steal_pointer (&msg);
}
