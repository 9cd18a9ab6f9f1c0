/* jw-msg: a multipart ZeroMQ message as a list of GBytes frames, sent and
 * received without ever blocking the main loop. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _JwMsg JwMsg;

JwMsg *jw_msg_new (void);
void jw_msg_free (JwMsg *self);

void jw_msg_add_str (JwMsg *self, const char *str);
void jw_msg_add_data (JwMsg *self, const void *data, gsize len);
void jw_msg_add_bytes (JwMsg *self, GBytes *bytes);
void jw_msg_add_printf (JwMsg *self, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

guint jw_msg_size (JwMsg *self);
/* Frame i, borrowed; NULL when out of range. */
GBytes *jw_msg_get (JwMsg *self, guint i);
const char *jw_msg_data (JwMsg *self, guint i, gsize *len);
/* Frame i as a new NUL-terminated string; NULL when out of range or when
 * the frame holds a NUL byte. */
char *jw_msg_dup_str (JwMsg *self, guint i);
gboolean jw_msg_frame_is (JwMsg *self, guint i, const char *str);
/* Removes frame 0 and returns it (the ROUTER envelope, for instance). */
GBytes *jw_msg_pop (JwMsg *self);
void jw_msg_push (JwMsg *self, GBytes *bytes);

/* Sends every frame with ZMQ_DONTWAIT. sock is a czmq zsock_t or a libzmq
 * socket. On EAGAIN (peer at its high-water mark, or none connected with
 * ZMQ_IMMEDIATE) fails with G_IO_ERROR_WOULD_BLOCK and sends nothing. The
 * message is not consumed. */
gboolean jw_msg_send (JwMsg *self, void *sock, GError **error);
/* Receives one whole message without blocking; NULL with
 * G_IO_ERROR_WOULD_BLOCK when none is waiting. Frames are not copied. */
JwMsg *jw_msg_recv (void *sock, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwMsg, jw_msg_free)

G_END_DECLS
