/* pusher: HTTP requests from browsers and the link to the broker. libsoup
 * parses each request; SSE and WebSocket connections are then taken over
 * and handed to conn.c, long-polls stay inside libsoup. Subscribers of all
 * three kinds join the job's channel (channel.c). */
#include "pusher.h"

#include "channel.h"
#include "conn.h"
#include "sse.h"
#include "ws.h"

#include "jw-id.h"
#include "jw-json.h"
#include "jw-log.h"
#include "jw-msg.h"
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
#define CMD_MAX_DEPTH 8

typedef enum
{
  SUB_SSE,
  SUB_WS,
  SUB_POLL,
} SubKind;

struct _JwPusher
{
  SoupServer *server;
  zsock_t *sub;
  zsock_t *dealer;
  guint sub_source;
  guint dealer_source;
  guint tick_source;
  char *epoch;
  gint64 last_hb; /* monotonic µs */
  char *allow_origin;
  char *extra_headers; /* for the SSE head */
  GBytes *sse_head;
  guint max_ws_subs;
  GHashTable *polls; /* Sub * */
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
} Sub;

/* The state of a WebSocket connection: its subscriptions. */
typedef struct
{
  GPtrArray *subs; /* Sub * */
} WsState;

static JwPusher *the_pusher;

/* ---- HTTP answers --------------------------------------------------- */

static void
add_common_headers (JwPusher *self, SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);

  soup_message_headers_replace (h, "Cache-Control", "no-cache");
  if (self->allow_origin[0] != '\0')
    soup_message_headers_replace (h, "Access-Control-Allow-Origin",
                                  self->allow_origin);
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

/* Hands the answer set on the held message back to libsoup. */
static void
release_msg (Sub *s)
{
  if (s->msg == NULL)
    return;
  if (s->finished_id != 0)
    g_signal_handler_disconnect (s->msg, s->finished_id);
  s->finished_id = 0;
  soup_server_message_unpause (s->msg);
  g_clear_object (&s->msg);
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

/* Takes the connection of an SSE request over and starts the stream. */
static void
sse_take (Sub *s)
{
  g_autoptr (GIOStream) stream = NULL;
  GSocket *sock;
  int fd;

  g_signal_handler_disconnect (s->msg, s->finished_id);
  s->finished_id = 0;
  stream = soup_server_message_steal_connection (s->msg);
  g_clear_object (&s->msg);

  /* libsoup 3.2 hands back its own stream and hangs the GSocket on it;
   * keep a duplicate of the descriptor and let libsoup close its own. */
  sock = stream ? g_object_get_data (G_OBJECT (stream), "GSocket") : NULL;
  if (sock == NULL && stream != NULL && G_IS_SOCKET_CONNECTION (stream))
    sock = g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream));
  fd = sock ? fcntl (g_socket_get_fd (sock), F_DUPFD_CLOEXEC, 3) : -1;
  if (stream != NULL)
    g_io_stream_close (stream, NULL, NULL);
  if (fd < 0)
    {
      g_warning ("cannot take over a connection job=%s error=%s", s->job,
                 sock ? g_strerror (errno) : "no socket");
      jw_channel_remove (&s->sub);
      return;
    }
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);

  s->conn = jw_conn_new (fd, s->kind == SUB_SSE ? JW_CONN_SSE : JW_CONN_WS);
  jw_conn_set_data (s->conn, s);
  jw_conn_send (s->conn, s->pusher->sse_head);
  jw_log_job (G_LOG_LEVEL_DEBUG, s->job,
              "sse stream job=%s after=%" G_GINT64_FORMAT, s->job,
              s->sub.cursor);
  jw_channel_activate (&s->sub);
}

static void
sub_ready (JwSub *sub, const char *error_code)
{
  Sub *s = (Sub *)sub;

  switch (s->kind)
    {
    case SUB_SSE:
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
          soup_server_message_set_status (s->msg, SOUP_STATUS_NO_CONTENT, NULL);
          release_msg (s);
          jw_channel_remove (sub);
        }
      else
        {
          sse_take (s);
        }
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

    case SUB_POLL:
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
          respond_json (s->msg, SOUP_STATUS_OK, "[]");
          release_msg (s);
          jw_channel_remove (sub);
        }
      else
        {
          jw_channel_activate (sub);
        }
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
      jw_conn_send (s->conn, jw_event_sse (ev));
      if (ev->terminal)
        jw_conn_end (s->conn);
      break;

    case SUB_WS:
      if (s->conn == NULL)
        return;
      jw_conn_send (s->conn, jw_event_ws (ev));
      if (ev->terminal)
        ws_drop (s);
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

static void
sub_flush (JwSub *sub)
{
  Sub *s = (Sub *)sub;
  gsize len;

  if (s->kind != SUB_POLL || s->count == 0 || s->msg == NULL)
    return;
  g_debug ("poll answered job=%s events=%u", s->job, s->count);
  g_string_append_c (s->body, ']');
  len = s->body->len;
  soup_server_message_set_status (s->msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (s->msg, "application/json",
                                    SOUP_MEMORY_TAKE,
                                    g_string_free (s->body, FALSE), len);
  s->body = NULL;
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
  if (s->body != NULL)
    g_string_free (s->body, TRUE);
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
  if (jw_conn_kind (conn) == JW_CONN_SSE)
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
ws_subscribe (JwPusher *self, JwConn *conn, WsState *ws, JsonObject *cmd)
{
  const char *job = jw_json_get_string (cmd, "job");
  gint64 after = 0;
  Sub *s;

  if (job == NULL || !jw_id_valid (job, -1))
    {
      ws_send_op (conn, "error", NULL, "invalid_job_id",
                  "job must be a job id");
      return;
    }
  if (json_object_has_member (cmd, "after")
      && (!jw_json_get_int (cmd, "after", &after) || after < 0))
    {
      ws_send_op (conn, "error", job, "invalid_message",
                  "after must be a non-negative integer");
      return;
    }
  if (ws_find (ws, job) != NULL)
    {
      ws_send_op (conn, "error", job, "already_subscribed",
                  "this connection already follows the job");
      return;
    }
  if (ws->subs->len >= self->max_ws_subs)
    {
      ws_send_op (conn, "error", job, "too_many_subscriptions",
                  "unsubscribe from another job first");
      return;
    }
  s = sub_new (self, SUB_WS, job, after);
  s->conn = conn;
  g_ptr_array_add (ws->subs, s);
  jw_channel_add (job, &s->sub);
}

static void
conn_ws_text (JwConn *conn, const char *data, gsize len, gpointer user_data)
{
  JwPusher *self = user_data;
  WsState *ws = jw_conn_get_data (conn);
  g_autoptr (JsonNode) node = NULL;
  JsonObject *cmd;
  const char *op;

  if (ws == NULL)
    return;
  node = jw_json_parse (data, len, CMD_MAX_DEPTH, NULL);
  cmd = node ? jw_json_node_object (node) : NULL;
  op = cmd ? jw_json_get_string (cmd, "op") : NULL;
  if (op == NULL)
    {
      ws_send_op (conn, "error", NULL, "invalid_message",
                  "a message is a JSON object with an op");
      return;
    }

  if (strcmp (op, "subscribe") == 0)
    {
      ws_subscribe (self, conn, ws, cmd);
    }
  else if (strcmp (op, "unsubscribe") == 0)
    {
      const char *job = jw_json_get_string (cmd, "job");
      Sub *s;

      if (job == NULL || !jw_id_valid (job, -1))
        {
          ws_send_op (conn, "error", NULL, "invalid_job_id",
                      "job must be a job id");
          return;
        }
      if ((s = ws_find (ws, job)) != NULL)
        ws_drop (s);
      ws_send_op (conn, "unsubscribed", job, NULL, NULL);
    }
  else
    {
      ws_send_op (conn, "error", NULL, "invalid_message", "unknown op");
    }
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
  g_autoptr (GIOStream) stream = soup_server_message_steal_connection (t->msg);
  g_autofree char *head = NULL;
  GSocket *sock;
  WsState *ws;
  JwConn *conn;
  int fd;

  sock = stream ? g_object_get_data (G_OBJECT (stream), "GSocket") : NULL;
  if (sock == NULL && stream != NULL && G_IS_SOCKET_CONNECTION (stream))
    sock = g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream));
  fd = sock ? fcntl (g_socket_get_fd (sock), F_DUPFD_CLOEXEC, 3) : -1;
  if (stream != NULL)
    g_io_stream_close (stream, NULL, NULL);
  g_object_unref (t->msg);
  if (fd < 0)
    {
      g_warning ("cannot take over a websocket connection");
      g_free (t->accept);
      g_free (t);
      return G_SOURCE_REMOVE;
    }
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK);

  conn = jw_conn_new (fd, JW_CONN_WS);
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
  if (origin != NULL && strcmp (self->allow_origin, "*") != 0
      && strcmp (origin, self->allow_origin) != 0)
    {
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
  hold_msg (s, msg);
  if (poll)
    {
      s->deadline = g_get_monotonic_time () + timeout_s * G_USEC_PER_SEC;
      s->body = g_string_new (NULL);
      g_hash_table_add (self->polls, s);
    }
  jw_conns_defer (sub_join, s);
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

static void
handle_default (SoupServer *server, SoupServerMessage *msg, const char *path,
                GHashTable *query, gpointer user_data)
{
  respond_error (msg, SOUP_STATUS_NOT_FOUND, "not_found", "no such resource");
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
      g_debug ("ignored a malformed event job=%s", job);
      return G_SOURCE_CONTINUE;
    }
  if (seq == 0 && strcmp (type, "subscribed") == 0)
    {
      jw_channels_marker (job);
      return G_SOURCE_CONTINUE;
    }
  if (seq < 1 || !jw_event_type_valid (type))
    {
      g_debug ("ignored an event job=%s seq=%" G_GINT64_FORMAT " type=%s", job,
               seq, type);
      return G_SOURCE_CONTINUE;
    }
  ev = jw_event_new (seq, type, jw_msg_get (m, 3));
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
  g_debug ("history reply rid=%s events=%u more=%d", rid, events->len, h.more);
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
  return G_SOURCE_CONTINUE;
}

JwPusher *
jw_pusher_new (JwConfig *cfg, GSocket *listen_socket, GError **error)
{
  g_autoptr (JwPusher) self = g_new0 (JwPusher, 1);
  g_autofree char *events_ep = NULL;
  g_autofree char *queries_ep = NULL;
  g_autofree char *head = NULL;
  JwConnLimits limits = { 0 };
  JwConnCallbacks callbacks = { conn_ws_text, conn_closed };
  JwUpstream upstream = { up_subscribe, up_unsubscribe, up_query };

  g_return_val_if_fail (the_pusher == NULL, NULL);

  self->allow_origin =
      g_strdup (jw_config_get_string (cfg, "pusher", "allow-origin", "*"));
  self->max_ws_subs = CLAMP (
      jw_config_get_int (cfg, "pusher", "max-subscriptions", 100), 1, 10000);
  if (self->allow_origin[0] != '\0')
    self->extra_headers = g_strdup_printf ("Access-Control-Allow-Origin: "
                                           "%s\r\n",
                                           self->allow_origin);
  head = jw_sse_response_head (self->extra_headers);
  self->sse_head = g_bytes_new (head, strlen (head));
  self->polls = g_hash_table_new (NULL, NULL);

  limits.keepalive_s =
      CLAMP (jw_config_get_int (cfg, "pusher", "keepalive-s", 15), 1, 3600);
  limits.ping_s =
      CLAMP (jw_config_get_int (cfg, "pusher", "ws-ping-s", 30), 1, 3600);
  limits.max_backlog =
      CLAMP (jw_config_get_int (cfg, "pusher", "max-backlog", 1 << 20), 4096,
             G_MAXINT32);
  limits.max_message = WS_MAX_MESSAGE;
  limits.close_s = 5;
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
  self->sub = jw_zmq_socket (ZMQ_SUB, 0);
  self->dealer = jw_zmq_socket (ZMQ_DEALER, 0);
  zsock_set_subscribe (self->sub, "~hb");
  if (!jw_zmq_connect (self->sub, events_ep, error)
      || !jw_zmq_connect (self->dealer, queries_ep, error))
    return NULL;
  self->sub_source = jw_zsource_add (self->sub, on_sub_message, self);
  self->dealer_source = jw_zsource_add (self->dealer, on_dealer_message, self);
  self->tick_source = g_timeout_add_seconds (1, on_tick, self);

  self->server = soup_server_new ("server-header", "jobwire-pusher ", NULL);
  soup_server_add_handler (self->server, NULL, handle_default, self, NULL);
  soup_server_add_handler (self->server, "/healthz", handle_healthz, self,
                           NULL);
  soup_server_add_handler (self->server, "/ws", handle_ws, self, NULL);
  soup_server_add_handler (self->server, "/jobs", handle_jobs, self, NULL);
  if (!soup_server_listen_socket (self->server, listen_socket, 0, error))
    return NULL;
  g_info ("pusher started events=%s queries=%s", events_ep, queries_ep);
  return g_steal_pointer (&self);
}

char *
jw_pusher_url (JwPusher *self)
{
  GSList *uris = soup_server_get_uris (self->server);
  char *url = uris ? g_uri_to_string (uris->data) : NULL;

  g_slist_free_full (uris, (GDestroyNotify)g_uri_unref);
  return url;
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
  if (self->server)
    soup_server_disconnect (self->server);
  g_clear_object (&self->server);
  g_clear_handle_id (&self->tick_source, g_source_remove);
  g_clear_handle_id (&self->sub_source, g_source_remove);
  g_clear_handle_id (&self->dealer_source, g_source_remove);
  zsock_destroy (&self->sub);
  zsock_destroy (&self->dealer);
  g_clear_pointer (&self->polls, g_hash_table_unref);
  g_clear_pointer (&self->sse_head, g_bytes_unref);
  g_free (self->epoch);
  g_free (self->allow_origin);
  g_free (self->extra_headers);
  g_free (self);
}
