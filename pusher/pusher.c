/* pusher: HTTP requests from browsers and the link to the broker. libsoup
 * parses each request; SSE and WebSocket connections are then taken over
 * and handed to conn.c, long-polls stay inside libsoup. Subscribers of all
 * three kinds join the job's channel (channel.c). */
#include "pusher.h"

#include "channel.h"
#include "conn.h"
#include "metrics.h"
#include "request.h"
#include "sse.h"
#include "static.h"
#include "ws.h"

#include "jw-curve.h"
#include "jw-gate.h"
#include "jw-id.h"
#include "jw-json.h"
#include "jw-log.h"
#include "jw-msg.h"
#include "jw-origin.h"
#include "jw-token.h"
#include "jw-util.h"
#include "jw-zmq.h"
#include "jw-zsource.h"

#include <errno.h>
#include <fcntl.h>
#include <libsoup/soup.h>
#include <string.h>
#include <unistd.h>

#define HEALTH_HB_S 3
#define POLL_DEFAULT_S 25
#define POLL_MAX_S 60
#define POLL_MAX_EVENTS 1000
#define WS_MAX_MESSAGE (64 * 1024)
#define JSON_MAX_DEPTH 64

typedef enum
{
  SUB_SSE,
  SUB_WS,
  SUB_POLL,
  SUB_MULTI, /* one job of a multi-job SSE stream or long-poll */
} SubKind;

typedef struct _Multi Multi;

struct _JwPusher
{
  SoupServer *server;
  JwCurve *curve; /* CURVE of tcp:// endpoints */
  zsock_t *sub;
  zsock_t *dealer;
  guint sub_source;
  guint dealer_source;
  guint tick_source;
  char *epoch;
  gint64 last_hb;     /* monotonic µs */
  JwOrigins *origins; /* CORS and the WebSocket Origin check */
  char *web_root;     /* "" serves no files */
  GBytes *sse_head;   /* for requests without an allowed Origin */
  guint max_ws_subs;
  GBytes *token_secret; /* NULL: open mode, no job token asked for */
  GHashTable *polls;  /* Sub * */
  GHashTable *multis; /* Multi * */
  JwGate *gate;       /* accepts connections, enforces their limits */
};

/* A subscriber of one job, of one of three kinds. */
typedef struct
{
  JwSub sub; /* first: JwSub * and Sub * are the same */
  SubKind kind;
  JwPusher *pusher;
  char job[JW_ID_LEN + 1];
  SoupServerMessage *msg; /* SSE before take-over, long-poll */
  gulong finished_id;
  JwConn *conn;  /* SSE after take-over, WebSocket */
  GString *body; /* long-poll answer */
  guint count;
  gint64 deadline; /* long-poll, monotonic µs */
  char *origin;    /* SSE: the allowed Origin to answer, or NULL */
  Multi *multi;    /* SUB_MULTI: the stream, and this job's slot in it */
  guint slot;
} Sub;

typedef enum
{
  SLOT_PENDING,
  SLOT_LIVE,
  SLOT_DONE,
  SLOT_ABSENT,
} SlotState;

struct _Multi
{
  JwPusher *pusher;
  gboolean poll;
  guint refs; /* the request (or its connection), and each Sub */
  SoupServerMessage *msg;
  gulong finished_id;
  JwConn *conn;
  char *origin;
  guint n;
  char **jobs;
  Sub **subs;      /* NULL once released */
  gint64 *cursors; /* last seq delivered, per slot */
  SlotState *states;
  guint pending; /* slots whose channel has not answered yet */
  guint live;    /* slots still to be delivered */
  guint not_found;
  gboolean unavailable;
  gboolean starting; /* activating: a long-poll answers after all */
  GString *body;     /* long-poll answer */
  guint count;
  gint64 deadline; /* long-poll, monotonic µs */
};

/* The state of a WebSocket connection: its subscriptions. */
typedef struct
{
  GPtrArray *subs; /* Sub * */
} WsState;

static JwPusher *the_pusher;

static void multi_ready (Sub *s, const char *error_code);
static void multi_event (Sub *s, JwEvent *ev);
static void multi_flush (Sub *s);
static void multi_sub_released (Sub *s);
static void multi_finish (Multi *m);

/* ---- HTTP answers --------------------------------------------------- */

/* The request's Origin when it is allowed, else NULL. */
static const char *
allowed_origin (JwPusher *self, SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);
  const char *origin = soup_message_headers_get_one (h, "Origin");

  if (origin == NULL
      || !jw_origins_allows (self->origins, origin,
                             soup_message_headers_get_one (h, "Host")))
    return NULL;
  return origin;
}

/* CORS: an allowed origin is echoed, any other gets no header, so that
 * its pages cannot read the answer. */
static void
add_cors_headers (JwPusher *self, SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
  const char *origin = allowed_origin (self, msg);

  soup_message_headers_append (h, "Vary", "Origin");
  if (origin != NULL)
    soup_message_headers_replace (h, "Access-Control-Allow-Origin", origin);
}

static void
add_common_headers (JwPusher *self, SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);

  soup_message_headers_replace (h, "Cache-Control", "no-cache");
  add_cors_headers (self, msg);
}

/* The head of an event stream for a request from origin (may be NULL). */
static GBytes *
sse_head_for (JwPusher *self, const char *origin)
{
  g_autofree char *extra = NULL;
  char *head;

  if (origin == NULL)
    return g_bytes_ref (self->sse_head);
  /* Only an origin that passed the check, so it holds no line break. */
  extra = g_strdup_printf ("Access-Control-Allow-Origin: %s\r\n"
                           "Vary: Origin\r\n",
                           origin);
  head = jw_sse_response_head (extra);
  return g_bytes_new_take (head, strlen (head));
}

static void
respond_json (SoupServerMessage *msg, guint status, const char *json)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY,
                                    json, strlen (json));
}

static void
respond_error (SoupServerMessage *msg, guint status, const char *code,
               const char *message)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *json = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "error");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "code");
  json_builder_add_string_value (b, code);
  json_builder_set_member_name (b, "message");
  json_builder_add_string_value (b, message);
  json_builder_end_object (b);
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  json = jw_json_to_string (node, NULL);
  if (status == SOUP_STATUS_SERVICE_UNAVAILABLE)
    soup_message_headers_replace (
        soup_server_message_get_response_headers (msg), "Retry-After", "1");
  respond_json (msg, status, json);
}

static void
respond_channel_error (SoupServerMessage *msg, const char *code)
{
  if (g_strcmp0 (code, "job_not_found") == 0)
    respond_error (msg, SOUP_STATUS_NOT_FOUND, code, "no job has this id");
  else
    respond_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "broker_unavailable",
                   "the broker is not reachable; try again shortly");
}

/* Whether token (may be NULL) grants job: NULL when it does (or tokens
 * are off), else the error code, with *status and *message set. A wrong
 * token and another job's are both token_invalid. */
static const char *
token_refusal (JwPusher *self, const char *job, const char *token,
               guint *status, const char **message)
{
  g_autoptr (GError) error = NULL;

  if (self->token_secret == NULL)
    return NULL;
  *status = SOUP_STATUS_UNAUTHORIZED;
  if (token == NULL || *token == '\0')
    {
      *message = "this job needs its token (?token=, or the token member)";
      return "token_required";
    }
  if (jw_token_check (self->token_secret, job, token,
                      g_get_real_time () / G_USEC_PER_SEC, &error))
    return NULL;
  jw_log_job (G_LOG_LEVEL_DEBUG, job, "token refused job=%s: %s", job,
              error->message);
  if (g_error_matches (error, JW_TOKEN_ERROR, JW_TOKEN_ERROR_EXPIRED))
    {
      *message = "the token of this job has expired";
      return "token_expired";
    }
  *status = SOUP_STATUS_FORBIDDEN;
  *message = "the token is not valid for this job";
  return "token_invalid";
}

/* ---- subscribers ---------------------------------------------------- */

static void
msg_finished (SoupServerMessage *msg, Sub *s)
{
  /* libsoup gave up on the message (server closing): forget it. */
  g_signal_handler_disconnect (s->msg, s->finished_id);
  s->finished_id = 0;
  g_clear_object (&s->msg);
  if (s->sub.channel != NULL)
    jw_channel_remove (&s->sub);
}

static void
hold_msg (Sub *s, SoupServerMessage *msg)
{
  s->msg = g_object_ref (msg);
  s->finished_id =
      g_signal_connect (msg, "finished", G_CALLBACK (msg_finished), s);
  soup_server_message_pause (msg);
}

/* Hands the answer set on a held message back to libsoup; its finished
 * handler goes with it. */
static void
release_held (SoupServerMessage **msg, gulong *finished_id)
{
  if (*msg == NULL)
    return;
  if (*finished_id != 0)
    g_signal_handler_disconnect (*msg, *finished_id);
  *finished_id = 0;
  soup_server_message_unpause (*msg);
  g_clear_object (msg);
}

static void
release_msg (Sub *s)
{
  release_held (&s->msg, &s->finished_id);
}

static Sub *sub_new (JwPusher *self, SubKind kind, const char *job,
                     gint64 cursor);

static void
ws_drop (Sub *s)
{
  WsState *ws = s->conn ? jw_conn_get_data (s->conn) : NULL;

  if (ws != NULL)
    g_ptr_array_remove_fast (ws->subs, s);
  s->conn = NULL;
  jw_channel_remove (&s->sub);
}

static void
ws_send_op (JwConn *conn, const char *op, const char *job, const char *code,
            const char *message)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *json = NULL;
  gsize len;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "op");
  json_builder_add_string_value (b, op);
  if (job != NULL)
    {
      json_builder_set_member_name (b, "job");
      json_builder_add_string_value (b, job);
    }
  if (code != NULL)
    {
      json_builder_set_member_name (b, "code");
      json_builder_add_string_value (b, code);
      json_builder_set_member_name (b, "message");
      json_builder_add_string_value (b, message);
    }
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  json = jw_json_to_string (node, &len);
  jw_conn_send_text (conn, json, len);
}

/* Takes msg's connection away from libsoup for a connection of kind on a
 * non-blocking duplicate of its descriptor; NULL when it cannot. libsoup
 * 3.2 hands back its own stream wrapped around the gate's connection; that
 * stream is closed here, so the duplicate is the pusher's alone, and the
 * gate counts the connection against its limits until the JwConn goes. */
static JwConn *
take_conn (SoupServerMessage *msg, JwConnKind kind)
{
  g_autoptr (GIOStream) stream = soup_server_message_steal_connection (msg);
  GSocket *sock = jw_gate_stream_socket (stream);
  JwGateHold *hold;
  JwConn *conn;
  int fd;

  fd = sock ? fcntl (g_socket_get_fd (sock), F_DUPFD_CLOEXEC, 3) : -1;
  hold = fd >= 0 ? jw_gate_hold (stream) : NULL;
  if (stream != NULL)
    g_io_stream_close (stream, NULL, NULL);
  if (fd < 0)
    return NULL;
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);
  conn = jw_conn_new (fd, kind);
  if (hold != NULL)
    jw_conn_on_free (conn, (GDestroyNotify)jw_gate_release, hold);
  return conn;
}

/* Takes the connection of a held SSE request over, with data, and sends
 * the stream's head; *msg and its finished handler go. NULL when it
 * cannot. */
static JwConn *
take_sse (JwPusher *self, SoupServerMessage **msg, gulong *finished_id,
          const char *origin, gpointer data)
{
  g_autoptr (GBytes) head = NULL;
  JwConn *conn;

  g_signal_handler_disconnect (*msg, *finished_id);
  *finished_id = 0;
  conn = take_conn (*msg, JW_CONN_SSE);
  g_clear_object (msg);
  if (conn == NULL)
    return NULL;
  jw_conn_set_data (conn, data);
  head = sse_head_for (self, origin);
  jw_conn_send (conn, head);
  return conn;
}

/* Takes the connection of an SSE request over and starts the stream. */
static void
sse_take (Sub *s)
{
  s->conn = take_sse (s->pusher, &s->msg, &s->finished_id, s->origin, s);
  if (s->conn == NULL)
    {
      jw_log_job (G_LOG_LEVEL_WARNING, s->job,
                  "cannot take over a connection job=%s", s->job);
      jw_channel_remove (&s->sub);
      return;
    }
  jw_log_job (G_LOG_LEVEL_DEBUG, s->job,
              "sse stream job=%s after=%" G_GINT64_FORMAT, s->job,
              s->sub.cursor);
  jw_channel_activate (&s->sub);
}

/* An SSE stream or a long-poll whose history is known: the error, or an
 * empty answer when the job ended before the cursor, else the stream
 * starts (the connection is taken over) or the poll waits for events. */
static void
held_msg_ready (Sub *s, const char *error_code)
{
  JwSub *sub = &s->sub;

  if (s->msg == NULL)
    {
      jw_channel_remove (sub);
      return;
    }
  if (error_code != NULL)
    {
      respond_channel_error (s->msg, error_code);
      release_msg (s);
    }
  else if (jw_channel_finished_after (sub->channel, sub->cursor))
    {
      if (s->kind == SUB_SSE)
        soup_server_message_set_status (s->msg, SOUP_STATUS_NO_CONTENT, NULL);
      else
        respond_json (s->msg, SOUP_STATUS_OK, "[]");
      release_msg (s);
      jw_channel_remove (sub);
    }
  else if (s->kind == SUB_SSE)
    sse_take (s);
  else
    jw_channel_activate (sub);
}

static void
sub_ready (JwSub *sub, const char *error_code)
{
  Sub *s = (Sub *)sub;

  switch (s->kind)
    {
    case SUB_SSE:
    case SUB_POLL:
      held_msg_ready (s, error_code);
      break;

    case SUB_WS:
      if (s->conn == NULL)
        {
          jw_channel_remove (sub);
          return;
        }
      if (error_code != NULL)
        {
          ws_send_op (s->conn, "error", s->job, error_code,
                      g_strcmp0 (error_code, "job_not_found") == 0
                          ? "no job has this id"
                          : "the broker is not reachable");
          ws_drop (s);
          return;
        }
      ws_send_op (s->conn, "subscribed", s->job, NULL, NULL);
      if (jw_channel_finished_after (sub->channel, sub->cursor))
        ws_drop (s);
      else
        jw_channel_activate (sub);
      break;

    case SUB_MULTI:
      multi_ready (s, error_code);
      break;
    }
}

static void
sub_event (JwSub *sub, JwEvent *ev)
{
  Sub *s = (Sub *)sub;

  switch (s->kind)
    {
    case SUB_SSE:
      if (s->conn == NULL)
        return;
      jw_conn_send_event (s->conn, jw_event_sse (ev), s->job,
                          ev->type == g_intern_static_string ("progress"));
      if (ev->terminal)
        jw_conn_end (s->conn);
      break;

    case SUB_WS:
      if (s->conn == NULL)
        return;
      jw_conn_send_event (s->conn, jw_event_ws (ev), s->job,
                          ev->type == g_intern_static_string ("progress"));
      if (ev->terminal)
        ws_drop (s);
      break;

    case SUB_MULTI:
      multi_event (s, ev);
      break;

    case SUB_POLL:
      if (s->count >= POLL_MAX_EVENTS)
        return;
      g_string_append_c (s->body, s->count == 0 ? '[' : ',');
      g_string_append_len (s->body, g_bytes_get_data (ev->json, NULL),
                           g_bytes_get_size (ev->json));
      s->count++;
      break;
    }
}

/* Answers a long-poll with body, a JSON array of count events still
 * missing its closing bracket, and takes body. */
static void
answer_events (SoupServerMessage *msg, guint status, GString *body,
               guint count)
{
  gsize len;

  g_string_append_c (body, ']');
  len = body->len;
  jw_pusher_metrics.events_delivered += count;
  jw_pusher_metrics.bytes_written += len;
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE,
                                    g_string_free (body, FALSE), len);
}

static void
sub_flush (JwSub *sub)
{
  Sub *s = (Sub *)sub;

  if (s->kind == SUB_MULTI)
    multi_flush (s);
  if (s->kind != SUB_POLL || s->count == 0 || s->msg == NULL)
    return;
  jw_log_job (G_LOG_LEVEL_DEBUG, s->job, "poll answered job=%s events=%u",
              s->job, s->count);
  answer_events (s->msg, SOUP_STATUS_OK, g_steal_pointer (&s->body),
                 s->count);
  release_msg (s);
  jw_channel_remove (sub);
}

static void
sub_release (JwSub *sub)
{
  Sub *s = (Sub *)sub;

  if (s->kind == SUB_POLL)
    g_hash_table_remove (s->pusher->polls, s);
  if (s->msg != NULL)
    {
      /* Dropped while libsoup still waits for an answer. */
      if (s->finished_id != 0)
        g_signal_handler_disconnect (s->msg, s->finished_id);
      s->finished_id = 0;
      respond_error (s->msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                     "broker_unavailable", "the pusher is shutting down");
      release_msg (s);
    }
  if (s->kind == SUB_SSE && s->conn != NULL)
    {
      jw_conn_set_data (s->conn, NULL);
      jw_conn_end (s->conn);
    }
  if (s->kind == SUB_MULTI)
    multi_sub_released (s);
  if (s->body != NULL)
    g_string_free (s->body, TRUE);
  g_free (s->origin);
  g_free (s);
}

static const JwSubClass sub_class = {
  .ready = sub_ready,
  .event = sub_event,
  .flush = sub_flush,
  .release = sub_release,
};

static Sub *
sub_new (JwPusher *self, SubKind kind, const char *job, gint64 cursor)
{
  Sub *s = g_new0 (Sub, 1);

  s->sub.klass = &sub_class;
  s->sub.cursor = cursor;
  s->kind = kind;
  s->pusher = self;
  g_strlcpy (s->job, job, sizeof s->job);
  return s;
}

/* Joins the channel outside libsoup's handler, so that a channel that
 * already knows the job can take the connection over at once. */
static gboolean
sub_join (gpointer data)
{
  Sub *s = data;

  jw_channel_add (s->job, &s->sub);
  return G_SOURCE_REMOVE;
}

/* ---- taken-over connections ----------------------------------------- */

static void
conn_closed (JwConn *conn, gpointer user_data)
{
  gpointer data = jw_conn_get_data (conn);

  if (data == NULL)
    return;
  jw_conn_set_data (conn, NULL);
  if (g_hash_table_contains (the_pusher->multis, data))
    {
      Multi *m = data;

      m->conn = NULL;
      multi_finish (m);
    }
  else if (jw_conn_kind (conn) == JW_CONN_SSE)
    {
      Sub *s = data;

      s->conn = NULL;
      jw_channel_remove (&s->sub);
    }
  else
    {
      WsState *ws = data;

      for (guint i = 0; i < ws->subs->len; i++)
        {
          Sub *s = g_ptr_array_index (ws->subs, i);

          s->conn = NULL;
          jw_channel_remove (&s->sub);
        }
      g_ptr_array_unref (ws->subs);
      g_free (ws);
    }
}

static Sub *
ws_find (WsState *ws, const char *job)
{
  for (guint i = 0; i < ws->subs->len; i++)
    {
      Sub *s = g_ptr_array_index (ws->subs, i);

      if (strcmp (s->job, job) == 0)
        return s;
    }
  return NULL;
}

static void
ws_subscribe (JwPusher *self, JwConn *conn, WsState *ws,
              const JwWsCommand *cmd)
{
  const char *code, *message;
  guint status;
  Sub *s;

  if ((code = token_refusal (self, cmd->job, cmd->token, &status, &message))
      != NULL)
    {
      ws_send_op (conn, "error", cmd->job, code, message);
      return;
    }
  if (ws_find (ws, cmd->job) != NULL)
    {
      ws_send_op (conn, "error", cmd->job, "already_subscribed",
                  "this connection already follows the job");
      return;
    }
  if (ws->subs->len >= self->max_ws_subs)
    {
      ws_send_op (conn, "error", cmd->job, "too_many_subscriptions",
                  "unsubscribe from another job first");
      return;
    }
  s = sub_new (self, SUB_WS, cmd->job, cmd->after);
  s->conn = conn;
  g_ptr_array_add (ws->subs, s);
  jw_channel_add (cmd->job, &s->sub);
}

static void
conn_ws_text (JwConn *conn, const char *data, gsize len, gpointer user_data)
{
  JwPusher *self = user_data;
  WsState *ws = jw_conn_get_data (conn);
  JwWsCommand cmd;
  const char *code, *message;
  Sub *s;

  if (ws == NULL)
    return;
  if (!jw_ws_command_parse (data, len, &cmd, &code, &message))
    ws_send_op (conn, "error", cmd.job[0] ? cmd.job : NULL, code, message);
  else if (cmd.op == JW_WS_SUBSCRIBE)
    ws_subscribe (self, conn, ws, &cmd);
  else
    {
      if ((s = ws_find (ws, cmd.job)) != NULL)
        ws_drop (s);
      ws_send_op (conn, "unsubscribed", cmd.job, NULL, NULL);
    }
  jw_ws_command_clear (&cmd);
}

typedef struct
{
  JwPusher *pusher;
  SoupServerMessage *msg;
  char *accept;
} WsTake;

static gboolean
ws_take (gpointer data)
{
  WsTake *t = data;
  JwConn *conn = take_conn (t->msg, JW_CONN_WS);
  g_autofree char *head = NULL;
  WsState *ws;

  g_object_unref (t->msg);
  if (conn == NULL)
    {
      g_warning ("cannot take over a websocket connection");
      g_free (t->accept);
      g_free (t);
      return G_SOURCE_REMOVE;
    }

  ws = g_new0 (WsState, 1);
  ws->subs = g_ptr_array_new ();
  jw_conn_set_data (conn, ws);
  head = g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: %s\r\n\r\n",
                          t->accept);
  jw_conn_send_data (conn, head, strlen (head));
  g_debug ("websocket connection open");
  g_free (t->accept);
  g_free (t);
  return G_SOURCE_REMOVE;
}

/* ---- HTTP handlers -------------------------------------------------- */

static gboolean
check_get (SoupServerMessage *msg)
{
  if (soup_server_message_get_method (msg) == SOUP_METHOD_GET)
    return TRUE;
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Allow", "GET");
  respond_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method_not_allowed",
                 "only GET is served here");
  return FALSE;
}

static void
handle_ws (SoupServer *server, SoupServerMessage *msg, const char *path,
           GHashTable *query, gpointer user_data)
{
  JwPusher *self = user_data;
  SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);
  const char *key = soup_message_headers_get_one (h, "Sec-WebSocket-Key");
  const char *version =
      soup_message_headers_get_one (h, "Sec-WebSocket-Version");
  const char *origin = soup_message_headers_get_one (h, "Origin");
  WsTake *t;

  if (!check_get (msg))
    return;
  if (!soup_message_headers_header_contains (h, "Upgrade", "websocket")
      || !soup_message_headers_header_contains (h, "Connection", "upgrade"))
    {
      respond_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid_handshake",
                     "a WebSocket upgrade is expected here");
      return;
    }
  if (g_strcmp0 (version, "13") != 0)
    {
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg),
          "Sec-WebSocket-Version", "13");
      respond_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid_handshake",
                     "only WebSocket version 13 is supported");
      return;
    }
  if (!jw_ws_key_valid (key))
    {
      respond_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid_handshake",
                     "Sec-WebSocket-Key must be 16 bytes in base64");
      return;
    }
  /* Checked before the handshake: a browser page from another origin
   * must not read the streams (requests without Origin are not from a
   * page). */
  if (origin != NULL && allowed_origin (self, msg) == NULL)
    {
      g_debug ("websocket refused origin=%s", origin);
      respond_error (msg, SOUP_STATUS_FORBIDDEN, "origin_not_allowed",
                     "this origin may not connect");
      return;
    }

  t = g_new0 (WsTake, 1);
  t->pusher = self;
  t->msg = g_object_ref (msg);
  t->accept = jw_ws_accept_key (key);
  soup_server_message_pause (msg);
  jw_conns_defer (ws_take, t);
}

/* The resume point of a request: Last-Event-ID, else ?after=, else 0. */
static gboolean
resume_point (SoupServerMessage *msg, GHashTable *query, gboolean header,
              gint64 *out)
{
  SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);
  const char *last =
      header ? soup_message_headers_get_one (h, "Last-Event-ID") : NULL;
  const char *after = query ? g_hash_table_lookup (query, "after") : NULL;

  *out = 0;
  if (last != NULL && *last != '\0')
    return jw_sse_parse_seq (last, out);
  if (after != NULL)
    return jw_sse_parse_seq (after, out);
  return TRUE;
}

static void
handle_jobs (SoupServer *server, SoupServerMessage *msg, const char *path,
             GHashTable *query, gpointer user_data)
{
  JwPusher *self = user_data;
  g_auto (GStrv) parts = g_strsplit (path, "/", 0);
  gboolean sse = FALSE, poll = FALSE;
  gint64 cursor, timeout_s = POLL_DEFAULT_S;
  const char *code, *message;
  guint status;
  Sub *s;

  /* "/jobs/ID/events" splits into "", "jobs", ID, "events". */
  if (g_strv_length (parts) == 4)
    {
      sse = strcmp (parts[3], "events") == 0;
      poll = strcmp (parts[3], "poll") == 0;
    }
  if (!sse && !poll)
    {
      respond_error (msg, SOUP_STATUS_NOT_FOUND, "not_found",
                     "no such resource");
      return;
    }
  if (!check_get (msg))
    return;
  add_common_headers (self, msg);
  if (!jw_id_valid (parts[2], -1))
    {
      respond_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid_job_id",
                     "not a job id");
      return;
    }
  /* In the query: EventSource cannot send headers. */
  if ((code = token_refusal (self, parts[2],
                             query ? g_hash_table_lookup (query, "token")
                                   : NULL,
                             &status, &message))
      != NULL)
    {
      respond_error (msg, status, code, message);
      return;
    }
  if (!resume_point (msg, query, sse, &cursor))
    {
      respond_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid_query",
                     "the resume point must be a non-negative integer");
      return;
    }
  if (poll && query && g_hash_table_lookup (query, "timeout") != NULL
      && (!jw_sse_parse_seq (g_hash_table_lookup (query, "timeout"), &timeout_s)
          || timeout_s > POLL_MAX_S))
    {
      respond_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid_query",
                     "timeout must be an integer from 0 to 60");
      return;
    }

  s = sub_new (self, sse ? SUB_SSE : SUB_POLL, parts[2], cursor);
  if (sse)
    s->origin = g_strdup (allowed_origin (self, msg));
  hold_msg (s, msg);
  if (poll)
    {
      s->deadline = g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC;
      s->body = g_string_new (NULL);
      g_hash_table_add (self->polls, s);
    }
  jw_conns_defer (sub_join, s);
}

/* ---- several jobs on one request ------------------------------------ */

/* GET /events?jobs=… (SSE) and GET /poll?jobs=… (long-poll) carry several
 * jobs on one request, so that a page watching many jobs stays within a
 * browser's six connections per host. Each job has a subscriber of kind
 * SUB_MULTI in its own channel; the answer starts once every channel knows
 * its job. Every SSE `id:` carries where each job stands ("ID:SEQ,…"), so
 * that EventSource sends the whole map back as Last-Event-ID. */

static void
multi_unref (Multi *m)
{
  if (--m->refs > 0)
    return;
  if (m->body != NULL)
    g_string_free (m->body, TRUE);
  g_free (m->origin);
  g_strfreev (m->jobs);
  g_free (m->subs);
  g_free (m->cursors);
  g_free (m->states);
  g_free (m);
}

/* The request is over (answered, its connection closed, or libsoup gave
 * up on it): every job leaves its channel. */
static void
multi_finish (Multi *m)
{
  if (!g_hash_table_remove (m->pusher->multis, m))
    return;
  m->refs++;
  for (guint i = 0; i < m->n; i++)
    if (m->subs[i] != NULL)
      jw_channel_remove (&m->subs[i]->sub);
  m->refs--;
  multi_unref (m); /* the request's reference */
}

static void
multi_release_msg (Multi *m)
{
  release_held (&m->msg, &m->finished_id);
}

static void
multi_respond (Multi *m, guint status, const char *code, const char *message)
{
  if (m->msg == NULL)
    return;
  if (code != NULL)
    respond_error (m->msg, status, code, message);
  else if (status == SOUP_STATUS_NO_CONTENT)
    soup_server_message_set_status (m->msg, status, NULL);
  else
    {
      if (m->count == 0)
        g_string_assign (m->body, "[");
      answer_events (m->msg, status, g_steal_pointer (&m->body), m->count);
    }
  multi_release_msg (m);
  multi_finish (m);
}

static void
multi_msg_finished (SoupServerMessage *msg, Multi *m)
{
  g_signal_handler_disconnect (m->msg, m->finished_id);
  m->finished_id = 0;
  g_clear_object (&m->msg);
  multi_finish (m);
}

/* "ID:SEQ,ID:SEQ" for every job of the stream that exists. */
static void
multi_append_map (Multi *m, GString *out)
{
  gboolean first = TRUE;

  for (guint i = 0; i < m->n; i++)
    {
      if (m->states[i] == SLOT_ABSENT)
        continue;
      if (!first)
        g_string_append_c (out, ',');
      first = FALSE;
      g_string_append_printf (out, "%s:%" G_GINT64_FORMAT, m->jobs[i],
                              m->cursors[i]);
    }
}

static gboolean
multi_take (Multi *m)
{
  m->conn = take_sse (m->pusher, &m->msg, &m->finished_id, m->origin, m);
  if (m->conn == NULL)
    {
      g_warning ("cannot take over a connection jobs=%u", m->n);
      multi_finish (m);
      return FALSE;
    }
  return TRUE;
}

/* Every channel has answered: refuse, end at once, or start. */
static void
multi_start (Multi *m)
{
  g_autofree char *nf = NULL;

  if (m->msg == NULL)
    return;
  if (m->unavailable)
    {
      multi_respond (m, SOUP_STATUS_SERVICE_UNAVAILABLE, "broker_unavailable",
                     "the broker is not reachable; try again shortly");
      return;
    }
  if (m->not_found == m->n || (m->poll && m->not_found > 0))
    {
      /* The error names the job (a checked id), so that a client can
       * drop it and poll for the others. */
      for (guint i = 0; i < m->n && nf == NULL; i++)
        if (m->states[i] == SLOT_ABSENT)
          nf = g_strdup_printf ("{\"error\":{\"code\":\"job_not_found\","
                                "\"message\":\"no job has this id\","
                                "\"job\":\"%s\"}}",
                                m->jobs[i]);
      respond_json (m->msg, SOUP_STATUS_NOT_FOUND, nf);
      multi_release_msg (m);
      multi_finish (m);
      return;
    }
  if (m->live == 0 && (m->poll || m->not_found == 0))
    {
      /* Finished before any cursor: 204 stops EventSource. */
      multi_respond (m, m->poll ? SOUP_STATUS_OK : SOUP_STATUS_NO_CONTENT, NULL,
                     NULL);
      return;
    }

  if (!m->poll)
    {
      if (!multi_take (m))
        return;
      /* Unknown jobs are named once, at the start; the others stream. */
      for (guint i = 0; i < m->n; i++)
        {
          g_autofree char *frame = NULL;

          if (m->states[i] != SLOT_ABSENT)
            continue;
          frame = g_strdup_printf (
              "event: job_error\ndata: {\"job\":\"%s\",\"code\":"
              "\"job_not_found\",\"message\":\"no job has this id\"}\n\n",
              m->jobs[i]);
          jw_conn_send_data (m->conn, frame, strlen (frame));
        }
      if (m->live == 0)
        jw_conn_end (m->conn);
    }

  m->starting = TRUE;
  m->refs++;
  for (guint i = 0; i < m->n; i++)
    if (m->states[i] == SLOT_LIVE && m->subs[i] != NULL)
      jw_channel_activate (&m->subs[i]->sub);
  m->starting = FALSE;
  if (m->poll && m->count > 0)
    multi_respond (m, SOUP_STATUS_OK, NULL, NULL);
  multi_unref (m);
}

static void
multi_ready (Sub *s, const char *error_code)
{
  Multi *m = s->multi;

  if (!g_hash_table_contains (m->pusher->multis, m))
    {
      /* The request ended before this job joined its channel. */
      if (error_code == NULL)
        jw_channel_remove (&s->sub);
      return;
    }
  if (m->states[s->slot] != SLOT_PENDING)
    return;
  if (error_code != NULL && strcmp (error_code, "job_not_found") == 0)
    {
      m->states[s->slot] = SLOT_ABSENT;
      m->not_found++;
    }
  else if (error_code != NULL)
    {
      m->states[s->slot] = SLOT_DONE;
      m->unavailable = TRUE;
    }
  else if (jw_channel_finished_after (s->sub.channel, s->sub.cursor))
    {
      m->states[s->slot] = SLOT_DONE;
      jw_channel_remove (&s->sub);
    }
  else
    {
      m->states[s->slot] = SLOT_LIVE;
      m->live++;
    }
  if (--m->pending == 0)
    multi_start (m);
}

/* A job of the stream reached its terminal event, or left its channel. */
static void
multi_slot_done (Multi *m, guint slot)
{
  if (m->states[slot] != SLOT_LIVE)
    return;
  m->states[slot] = SLOT_DONE;
  if (--m->live == 0 && m->conn != NULL)
    jw_conn_end (m->conn);
}

static void
multi_event (Sub *s, JwEvent *ev)
{
  Multi *m = s->multi;

  m->cursors[s->slot] = ev->seq;
  if (m->poll)
    {
      if (m->body != NULL && m->count < POLL_MAX_EVENTS)
        {
          g_string_append_c (m->body, m->count == 0 ? '[' : ',');
          g_string_append_len (m->body, g_bytes_get_data (ev->json, NULL),
                               g_bytes_get_size (ev->json));
          m->count++;
        }
    }
  else if (m->conn != NULL)
    {
      GBytes *sse = jw_event_sse (ev);
      gsize len;
      const char *frame = g_bytes_get_data (sse, &len);
      const char *rest = memchr (frame, '\n', len);
      GString *out = g_string_sized_new (len + 32 * m->n);
      g_autoptr (GBytes) bytes = NULL;

      /* The event's own frame, with the map in place of its id line. */
      g_string_append (out, "id: ");
      multi_append_map (m, out);
      if (rest != NULL)
        g_string_append_len (out, rest, len - (rest - frame));
      /* Queued as an event of its job (never coalesced: each frame carries
       * the whole map), so that it counts as delivered once written. */
      bytes = g_string_free_to_bytes (out);
      jw_conn_send_event (m->conn, bytes, s->job, FALSE);
    }
  if (ev->terminal)
    {
      multi_slot_done (m, s->slot);
      jw_channel_remove (&s->sub);
    }
}

static void
multi_flush (Sub *s)
{
  Multi *m = s->multi;

  if (m->poll && !m->starting && m->count > 0 && m->msg != NULL)
    multi_respond (m, SOUP_STATUS_OK, NULL, NULL);
}

static void
multi_sub_released (Sub *s)
{
  Multi *m = s->multi;

  multi_slot_done (m, s->slot);
  m->subs[s->slot] = NULL;
  multi_unref (m);
}

static void
handle_multi (SoupServer *server, SoupServerMessage *msg, const char *path,
              GHashTable *query, gpointer user_data)
{
  JwPusher *self = user_data;
  gboolean poll = strcmp (path, "/poll") == 0;
  const char *jobs = query ? g_hash_table_lookup (query, "jobs") : NULL;
  const char *timeout = query ? g_hash_table_lookup (query, "timeout") : NULL;
  const char *tokens = query ? g_hash_table_lookup (query, "tokens") : NULL;
  const char *last = soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Last-Event-ID");
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GArray) cursors = g_array_new (FALSE, FALSE, sizeof (gint64));
  gint64 timeout_s = POLL_DEFAULT_S;
  Multi *m;

  if (strcmp (path, "/events") != 0 && !poll)
    {
      respond_error (msg, SOUP_STATUS_NOT_FOUND, "not_found",
                     "no such resource");
      return;
    }
  if (!check_get (msg))
    return;
  add_common_headers (self, msg);
  if (!jw_request_parse_job_list (jobs, self->max_ws_subs, FALSE, ids,
                                  cursors))
    {
      respond_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid_query",
                     "jobs must list from 1 to max-subscriptions distinct "
                     "job ids, each optionally followed by :SEQ");
      return;
    }
  /* tokens=T1,T2,… : the token of each job of jobs=, in the same order.
   * One bad token refuses the whole request, so that no event of a job
   * the client may not see is ever sent. */
  if (self->token_secret != NULL)
    {
      g_auto (GStrv) toks = NULL;

      if (!jw_request_split_tokens (tokens, ids->len, &toks))
        {
          respond_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid_query",
                         "tokens must list one token per job of jobs, in "
                         "the same order");
          return;
        }
      for (guint i = 0; i < ids->len; i++)
        {
          const char *code, *message;
          guint status;

          if ((code = token_refusal (self, g_ptr_array_index (ids, i),
                                     toks ? toks[i] : NULL, &status,
                                     &message))
              != NULL)
            {
              respond_error (msg, status, code, message);
              return;
            }
        }
    }
  if (!poll && last != NULL && *last != '\0')
    {
      g_autoptr (GPtrArray) lids = g_ptr_array_new_with_free_func (g_free);
      g_autoptr (GArray) lseqs = g_array_new (FALSE, FALSE, sizeof (gint64));

      if (!jw_request_parse_job_list (last, G_MAXUINT, TRUE, lids, lseqs))
        {
          respond_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid_query",
                         "Last-Event-ID must be ID:SEQ,…");
          return;
        }
      /* The map overrides the URL's cursors for the jobs it names. */
      for (guint i = 0; i < lids->len; i++)
        for (guint j = 0; j < ids->len; j++)
          if (strcmp (g_ptr_array_index (lids, i), g_ptr_array_index (ids, j))
              == 0)
            g_array_index (cursors, gint64, j) =
                g_array_index (lseqs, gint64, i);
    }
  if (poll && timeout != NULL
      && (!jw_sse_parse_seq (timeout, &timeout_s) || timeout_s > POLL_MAX_S))
    {
      respond_error (msg, SOUP_STATUS_BAD_REQUEST, "invalid_query",
                     "timeout must be an integer from 0 to 60");
      return;
    }

  m = g_new0 (Multi, 1);
  m->pusher = self;
  m->poll = poll;
  m->n = ids->len;
  m->refs = 1 + m->n;
  m->pending = m->n;
  m->subs = g_new0 (Sub *, m->n);
  m->cursors = g_new0 (gint64, m->n);
  m->states = g_new0 (SlotState, m->n);
  g_ptr_array_add (ids, NULL);
  m->jobs = g_strdupv ((char **)ids->pdata);
  m->origin = g_strdup (allowed_origin (self, msg));
  if (poll)
    {
      m->body = g_string_new (NULL);
      m->deadline = g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC;
    }
  for (guint i = 0; i < m->n; i++)
    {
      Sub *s = sub_new (self, SUB_MULTI, m->jobs[i],
                        g_array_index (cursors, gint64, i));

      s->multi = m;
      s->slot = i;
      m->subs[i] = s;
      m->cursors[i] = s->sub.cursor;
    }
  m->msg = g_object_ref (msg);
  m->finished_id =
      g_signal_connect (msg, "finished", G_CALLBACK (multi_msg_finished), m);
  soup_server_message_pause (msg);
  g_hash_table_add (self->multis, m);
  g_debug ("multi-job %s jobs=%u", poll ? "poll" : "stream", m->n);
  for (guint i = 0; i < m->n; i++)
    jw_conns_defer (sub_join, m->subs[i]);
}

static void
handle_healthz (SoupServer *server, SoupServerMessage *msg, const char *path,
                GHashTable *query, gpointer user_data)
{
  JwPusher *self = user_data;
  gboolean up =
      self->last_hb != 0
      && g_get_monotonic_time () - self->last_hb < HEALTH_HB_S * G_USEC_PER_SEC;
  g_autofree char *json = NULL;

  if (!check_get (msg))
    return;
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Cache-Control", "no-cache");
  json = g_strdup_printf ("{\"status\":\"%s\",\"broker\":\"%s\","
                          "\"connections\":%u,\"channels\":%u}",
                          up ? "ok" : "unavailable", up ? "ok" : "unreachable",
                          jw_conns_count (), jw_channels_count ());
  respond_json (msg, up ? SOUP_STATUS_OK : SOUP_STATUS_SERVICE_UNAVAILABLE,
                json);
}

/* Prometheus text: see docs/API.md, "Metrics". */
static void
handle_metrics (SoupServer *server, SoupServerMessage *msg, const char *path,
                GHashTable *query, gpointer user_data)
{
  JwPusher *self = user_data;
  guint polls = g_hash_table_size (self->polls);
  GHashTableIter iter;
  Multi *m;
  char *text;
  gsize len;

  if (!check_get (msg))
    return;
  g_hash_table_iter_init (&iter, self->multis);
  while (g_hash_table_iter_next (&iter, (gpointer *)&m, NULL))
    if (m->poll && m->msg != NULL)
      polls++;
  text = jw_pusher_metrics_text (polls, &len);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Cache-Control", "no-cache");
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, JW_METRICS_CONTENT_TYPE,
                                    SOUP_MEMORY_TAKE, text, len);
}

static void
handle_default (SoupServer *server, SoupServerMessage *msg, const char *path,
                GHashTable *query, gpointer user_data)
{
  JwPusher *self = user_data;
  const char *method = soup_server_message_get_method (msg);

  /* Everything that is not a stream is a file of the web client. */
  if (method != SOUP_METHOD_GET && method != SOUP_METHOD_HEAD)
    {
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "Allow", "GET, HEAD");
      respond_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method_not_allowed",
                     "only GET is served here");
      return;
    }
  jw_static_serve (self->web_root, msg, path);
}

#define CORS_MAX_AGE "600"

/* Answers OPTIONS before any handler: a CORS preflight from an allowed
 * origin learns what it may send, one from another origin gets 403. */
static void
early_options (SoupServer *server, SoupServerMessage *msg, const char *path,
               GHashTable *query, gpointer user_data)
{
  JwPusher *self = user_data;
  SoupMessageHeaders *req = soup_server_message_get_request_headers (msg);
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);

  if (soup_server_message_get_method (msg) != SOUP_METHOD_OPTIONS)
    return;
  add_cors_headers (self, msg);
  soup_message_headers_replace (h, "Allow", "GET, HEAD, OPTIONS");
  if (soup_message_headers_get_one (req, "Access-Control-Request-Method")
      != NULL)
    {
      if (allowed_origin (self, msg) == NULL)
        {
          respond_error (msg, SOUP_STATUS_FORBIDDEN, "origin_not_allowed",
                         "this origin may not connect");
          return;
        }
      soup_message_headers_replace (h, "Access-Control-Allow-Methods", "GET");
      soup_message_headers_replace (h, "Access-Control-Allow-Headers",
                                    "Last-Event-ID");
      soup_message_headers_replace (h, "Access-Control-Max-Age", CORS_MAX_AGE);
    }
  soup_server_message_set_status (msg, SOUP_STATUS_NO_CONTENT, NULL);
}

/* ---- upstream ------------------------------------------------------- */

static void
up_subscribe (const char *job, gpointer user_data)
{
  JwPusher *self = user_data;

  zsock_set_subscribe (self->sub, job);
}

static void
up_unsubscribe (const char *job, gpointer user_data)
{
  JwPusher *self = user_data;

  zsock_set_unsubscribe (self->sub, job);
}

static gboolean
up_query (const char *job, const char *rid, gint64 after, gpointer user_data)
{
  JwPusher *self = user_data;
  g_autoptr (JwMsg) m = jw_msg_new ();
  g_autoptr (GError) error = NULL;

  jw_msg_add_str (m, "events");
  jw_msg_add_printf (
      m, "{\"rid\":\"%s\",\"job\":\"%s\",\"after\":%" G_GINT64_FORMAT "}", rid,
      job, after);
  if (!jw_msg_send (m, self->dealer, &error))
    {
      jw_log_job (G_LOG_LEVEL_DEBUG, job,
                  "history query not sent job=%s error=%s", job,
                  error->message);
      return FALSE;
    }
  jw_log_job (G_LOG_LEVEL_DEBUG, job,
              "history query job=%s after=%" G_GINT64_FORMAT, job, after);
  return TRUE;
}

static gboolean
parse_seq_frame (JwMsg *m, guint i, gint64 *out)
{
  g_autofree char *str = jw_msg_dup_str (m, i);

  /* Digits only: the broker writes seqs plainly. */
  return str != NULL && strchr (str, ' ') == NULL
         && jw_sse_parse_seq (str, out);
}

static void
on_heartbeat (JwPusher *self, JwMsg *m)
{
  gsize len;
  const char *data = jw_msg_data (m, 3, &len);
  g_autoptr (JsonNode) node = jw_json_parse (data, len, 4, NULL);
  JsonObject *obj = node ? jw_json_node_object (node) : NULL;
  g_autofree char *epoch = NULL;
  gint64 n;

  if (obj == NULL)
    return;
  if (jw_json_get_string (obj, "epoch"))
    epoch = g_strdup (jw_json_get_string (obj, "epoch"));
  else if (jw_json_get_int (obj, "epoch", &n))
    epoch = g_strdup_printf ("%" G_GINT64_FORMAT, n);
  else
    return;

  if (self->last_hb == 0
      || g_get_monotonic_time () - self->last_hb
             >= HEALTH_HB_S * G_USEC_PER_SEC)
    g_message ("broker connected epoch=%s", epoch);
  self->last_hb = g_get_monotonic_time ();
  if (self->epoch != NULL && strcmp (self->epoch, epoch) != 0)
    {
      g_message ("broker restarted epoch=%s", epoch);
      jw_channels_epoch_changed ();
    }
  g_free (self->epoch);
  self->epoch = g_steal_pointer (&epoch);
}

static gboolean
on_sub_message (void *sock, gpointer user_data)
{
  JwPusher *self = user_data;
  g_autoptr (JwMsg) m = jw_msg_recv (sock, NULL);
  gsize tlen;
  const char *topic;
  g_autofree char *job = NULL;
  g_autofree char *type = NULL;
  gint64 seq;
  JwEvent *ev;
  const char *json;
  gsize jlen;

  if (m == NULL)
    return G_SOURCE_CONTINUE;
  if (jw_msg_size (m) != 4)
    {
      g_debug ("ignored a message on the events socket frames=%u",
               jw_msg_size (m));
      return G_SOURCE_CONTINUE;
    }
  topic = jw_msg_data (m, 0, &tlen);
  if (tlen == 3 && memcmp (topic, "~hb", 3) == 0)
    {
      on_heartbeat (self, m);
      return G_SOURCE_CONTINUE;
    }
  if (!jw_id_valid (topic, tlen))
    return G_SOURCE_CONTINUE;
  job = g_strndup (topic, tlen);
  type = jw_msg_dup_str (m, 2);
  if (type == NULL || !parse_seq_frame (m, 1, &seq))
    {
      jw_log_job (G_LOG_LEVEL_DEBUG, job, "ignored a malformed event job=%s",
                  job);
      return G_SOURCE_CONTINUE;
    }
  if (seq == 0 && strcmp (type, "subscribed") == 0)
    {
      jw_channels_marker (job);
      return G_SOURCE_CONTINUE;
    }
  if (seq < 1 || !jw_event_type_valid (type))
    {
      jw_log_job (G_LOG_LEVEL_DEBUG, job,
                  "ignored an event job=%s seq=%" G_GINT64_FORMAT " type=%s",
                  job, seq, type);
      return G_SOURCE_CONTINUE;
    }
  jw_pusher_metrics.events_received++;
  /* A copy: the frame points into libzmq's receive buffer (8 KiB or
   * more, shared by the frames read with it), which a cached event
   * would otherwise keep alive; 64 cached events per channel pinned
   * some 50 MiB. */
  json = jw_msg_data (m, 3, &jlen);
  ev = jw_event_new_take (seq, type, g_bytes_new (json, jlen));
  jw_channels_event (job, ev);
  jw_event_unref (ev);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_dealer_message (void *sock, gpointer user_data)
{
  g_autoptr (JwMsg) m = jw_msg_recv (sock, NULL);
  g_autoptr (JsonNode) node = NULL;
  g_autoptr (GPtrArray) events = NULL;
  JwHistory h = { 0 };
  JsonObject *obj, *snap, *err;
  const char *rid, *state;
  gsize len;
  const char *data;
  JwState st;

  if (m == NULL)
    return G_SOURCE_CONTINUE;
  if (jw_msg_size (m) < 2 || !jw_msg_frame_is (m, 0, "reply")
      || (jw_msg_size (m) - 2) % 3 != 0)
    {
      g_debug ("ignored a message on the queries socket frames=%u",
               jw_msg_size (m));
      return G_SOURCE_CONTINUE;
    }
  data = jw_msg_data (m, 1, &len);
  node = jw_json_parse (data, len, JSON_MAX_DEPTH, NULL);
  obj = node ? jw_json_node_object (node) : NULL;
  rid = obj ? jw_json_get_string (obj, "rid") : NULL;
  if (rid == NULL || !jw_json_get_bool (obj, "ok", &h.ok))
    {
      g_debug ("ignored a malformed query reply");
      return G_SOURCE_CONTINUE;
    }

  if (!h.ok)
    {
      err = jw_json_get_object (obj, "error");
      h.error_code = err ? jw_json_get_string (err, "code") : NULL;
      jw_channels_reply (rid, &h);
      return G_SOURCE_CONTINUE;
    }

  snap = jw_json_get_object (obj, "job");
  state = snap ? jw_json_get_string (snap, "state") : NULL;
  if (snap == NULL || !jw_json_get_int (snap, "seq", &h.seq) || state == NULL
      || !jw_state_from_string (state, &st))
    {
      g_debug ("ignored a query reply without a snapshot rid=%s", rid);
      return G_SOURCE_CONTINUE;
    }
  h.terminal = jw_state_is_terminal (st);
  jw_json_get_bool (obj, "more", &h.more);

  events = g_ptr_array_new_with_free_func ((GDestroyNotify)jw_event_unref);
  for (guint i = 2; i + 2 < jw_msg_size (m); i += 3)
    {
      g_autofree char *type = jw_msg_dup_str (m, i + 1);
      gint64 seq;

      if (type == NULL || !parse_seq_frame (m, i, &seq) || seq < 1
          || !jw_event_type_valid (type))
        break;
      g_ptr_array_add (events, jw_event_new (seq, type, jw_msg_get (m, i + 2)));
    }
  h.events = events;
  if (jw_json_get_string (snap, "id") != NULL)
    jw_log_job (G_LOG_LEVEL_DEBUG, jw_json_get_string (snap, "id"),
                "history reply rid=%s events=%u more=%d", rid, events->len,
                h.more);
  jw_channels_reply (rid, &h);
  return G_SOURCE_CONTINUE;
}

/* ---- timers and life cycle ------------------------------------------ */

static gboolean
on_tick (gpointer user_data)
{
  JwPusher *self = user_data;
  gint64 now = g_get_monotonic_time ();
  GHashTableIter iter;
  Sub *s;
  Multi *m;
  g_autoptr (GPtrArray) expired = g_ptr_array_new ();

  jw_conns_tick ();
  jw_channels_tick ();

  g_hash_table_iter_init (&iter, self->polls);
  while (g_hash_table_iter_next (&iter, (gpointer *)&s, NULL))
    {
      if (s->msg != NULL && now >= s->deadline)
        g_ptr_array_add (expired, s);
    }
  for (guint i = 0; i < expired->len; i++)
    {
      s = g_ptr_array_index (expired, i);
      respond_json (s->msg, SOUP_STATUS_OK, "[]");
      release_msg (s);
      if (s->sub.channel != NULL)
        jw_channel_remove (&s->sub);
    }

  g_ptr_array_set_size (expired, 0);
  g_hash_table_iter_init (&iter, self->multis);
  while (g_hash_table_iter_next (&iter, (gpointer *)&m, NULL))
    {
      if (m->poll && m->msg != NULL && m->pending == 0 && now >= m->deadline)
        g_ptr_array_add (expired, m);
    }
  for (guint i = 0; i < expired->len; i++)
    multi_respond (g_ptr_array_index (expired, i), SOUP_STATUS_OK, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

/* http://IP:PORT of the listening socket (127.0.0.1 for a wildcard), the
 * origin of the demo page that the pusher serves. */
static char *
own_origin (GSocket *sock)
{
  g_autoptr (GSocketAddress) addr = g_socket_get_local_address (sock, NULL);
  g_autofree char *ip = NULL;
  GInetAddress *inet;
  guint port;

  if (addr == NULL || !G_IS_INET_SOCKET_ADDRESS (addr))
    return NULL;
  inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (addr));
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (addr));
  if (g_inet_address_get_is_any (inet))
    return g_strdup_printf ("http://127.0.0.1:%u", port);
  ip = g_inet_address_to_string (inet);
  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("http://[%s]:%u", ip, port);
  return g_strdup_printf ("http://%s:%u", ip, port);
}

JwPusher *
jw_pusher_new (JwConfig *cfg, GSocket *listen_socket, GError **error)
{
  g_autoptr (JwPusher) self = g_new0 (JwPusher, 1);
  g_autofree char *events_ep = NULL;
  g_autofree char *queries_ep = NULL;
  g_autofree char *head = NULL;
  g_autofree char *own_url = NULL;
  JwConnLimits limits = { 0 };
  /* Long-polls wait up to POLL_MAX_S without a byte: the idle timeout,
   * also the stall timeout of a request in libsoup's hands, is longer. */
  JwGateLimits gate_limits = { .max_connections = 10000,
                               .max_per_address = 1000,
                               .header_timeout_s = 10,
                               .idle_timeout_s = 2 * POLL_MAX_S,
                               .refuse_bodies = TRUE };
  JwConnCallbacks callbacks = { conn_ws_text, conn_closed };
  JwUpstream upstream = { up_subscribe, up_unsubscribe, up_query };

  g_return_val_if_fail (the_pusher == NULL, NULL);

  self->max_ws_subs = CLAMP (
      jw_config_get_int (cfg, "pusher", "max-subscriptions", 100), 1, 10000);
  if (jw_config_get_string (cfg, "pusher", "allow-origin", NULL) != NULL)
    g_warning ("[pusher] allow-origin is no longer read; "
               "use allow-origins (a comma-separated list)");
  own_url = own_origin (listen_socket);
  self->origins = jw_origins_new (
      jw_config_get_string (cfg, "pusher", "allow-origins", NULL), own_url,
      error);
  if (self->origins == NULL)
    return NULL;
  {
    GError *local = NULL;

    self->token_secret = jw_token_load_secret (cfg, &local);
    if (local != NULL)
      {
        g_propagate_error (error, local);
        return NULL;
      }
    g_message ("security tokens=%s",
               self->token_secret ? "on" : "off (open mode)");
  }
  self->web_root = g_strdup (jw_config_get_string (cfg, "pusher", "web-root",
                                                   jw_static_default_root ()));
  g_info ("cors allow-origins=%s web-root=%s",
          jw_origins_describe (self->origins), self->web_root);
  head = jw_sse_response_head ("Vary: Origin\r\n");
  self->sse_head = g_bytes_new (head, strlen (head));
  self->polls = g_hash_table_new (NULL, NULL);
  self->multis = g_hash_table_new (NULL, NULL);
  jw_pusher_metrics_init ();

  limits.keepalive_s =
      CLAMP (jw_config_get_int (cfg, "pusher", "keepalive-s", 15), 1, 3600);
  limits.ping_s =
      CLAMP (jw_config_get_int (cfg, "pusher", "ws-ping-s", 30), 1, 3600);
  limits.max_backlog =
      CLAMP (jw_config_get_int (cfg, "pusher", "max-backlog", 1 << 20), 4096,
             G_MAXINT32);
  limits.max_message =
      CLAMP (jw_config_get_int (cfg, "pusher", "ws-max-message", WS_MAX_MESSAGE),
             125, 16 * 1024 * 1024);
  limits.close_s = 5;
  limits.slow_s =
      CLAMP (jw_config_get_int (cfg, "pusher", "slow-s", 30), 0, 3600);
  limits.send_buffer = CLAMP (
      jw_config_get_int (cfg, "pusher", "send-buffer", 256 * 1024), 0,
      64 * 1024 * 1024);
  if (!jw_conns_start (&limits, &callbacks, self, error))
    return NULL;
  the_pusher = self;
  jw_channels_init (&upstream, self);

  events_ep = jw_config_endpoint (cfg, "events", error);
  if (events_ep == NULL)
    return NULL;
  queries_ep = jw_config_endpoint (cfg, "queries", error);
  if (queries_ep == NULL)
    return NULL;
  self->curve = jw_curve_new (cfg, FALSE, error);
  if (self->curve == NULL)
    return NULL;
  self->sub = jw_zmq_socket (ZMQ_SUB, 0);
  self->dealer = jw_zmq_socket (ZMQ_DEALER, 0);
  zsock_set_subscribe (self->sub, "~hb");
  if (!jw_curve_connect (self->curve, self->sub, "events", events_ep, error)
      || !jw_curve_connect (self->curve, self->dealer, "queries", queries_ep,
                            error))
    return NULL;
  self->sub_source = jw_zsource_add (self->sub, on_sub_message, self);
  self->dealer_source = jw_zsource_add (self->dealer, on_dealer_message, self);
  self->tick_source = g_timeout_add_seconds (1, on_tick, self);

  self->server = soup_server_new ("server-header", "jobwire-pusher ", NULL);
  soup_server_add_early_handler (self->server, NULL, early_options, self, NULL);
  soup_server_add_handler (self->server, NULL, handle_default, self, NULL);
  soup_server_add_handler (self->server, "/events", handle_multi, self, NULL);
  soup_server_add_handler (self->server, "/poll", handle_multi, self, NULL);
  soup_server_add_handler (self->server, "/healthz", handle_healthz, self,
                           NULL);
  soup_server_add_handler (self->server, "/ws", handle_ws, self, NULL);
  soup_server_add_handler (self->server, "/metrics", handle_metrics, self,
                           NULL);
  soup_server_add_handler (self->server, "/jobs", handle_jobs, self, NULL);
  jw_gate_limits_read (&gate_limits, cfg, "pusher");
  self->gate = jw_gate_new (listen_socket, self->server, &gate_limits, error);
  if (self->gate == NULL)
    return NULL;
  g_info ("pusher started events=%s queries=%s", events_ep, queries_ep);
  return g_steal_pointer (&self);
}

gboolean
jw_pusher_broker_connected (JwPusher *self)
{
  return self->last_hb != 0
         && g_get_monotonic_time () - self->last_hb
                < HEALTH_HB_S * G_USEC_PER_SEC;
}

char *
jw_pusher_url (JwPusher *self)
{
  return jw_gate_url (self->gate);
}

void
jw_pusher_free (JwPusher *self)
{
  GHashTableIter iter;
  Sub *s;

  if (self == NULL)
    return;

  /* Connections first: their subscribers leave the channels. */
  if (the_pusher == self)
    {
      jw_conns_stop ();
      g_hash_table_iter_init (&iter, self->polls);
      while (g_hash_table_iter_next (&iter, (gpointer *)&s, NULL))
        {
          if (s->msg != NULL)
            {
              respond_error (s->msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                             "broker_unavailable",
                             "the pusher is shutting down");
              release_msg (s);
            }
        }
      /* Requests still held let go of their channels before those go. */
      if (self->server)
        soup_server_disconnect (self->server);
      jw_channels_free ();
      the_pusher = NULL;
    }
  g_clear_pointer (&self->gate, jw_gate_free);
  if (self->server)
    soup_server_disconnect (self->server);
  g_clear_object (&self->server);
  g_clear_handle_id (&self->tick_source, g_source_remove);
  g_clear_handle_id (&self->sub_source, g_source_remove);
  g_clear_handle_id (&self->dealer_source, g_source_remove);
  zsock_destroy (&self->sub);
  zsock_destroy (&self->dealer);
  g_clear_pointer (&self->curve, jw_curve_free);
  g_clear_pointer (&self->polls, g_hash_table_unref);
  g_clear_pointer (&self->multis, g_hash_table_unref);
  g_clear_pointer (&self->sse_head, g_bytes_unref);
  g_free (self->epoch);
  g_clear_pointer (&self->origins, jw_origins_free);
  g_clear_pointer (&self->token_secret, g_bytes_unref);
  g_free (self->web_root);
  g_free (self);
}
