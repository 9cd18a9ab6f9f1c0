/* server: the api's HTTP side. It refuses oversized or unframed bodies
 * before libsoup reads them, validates requests, turns them into broker
 * commands and queries, and holds each request paused until its reply
 * arrives or the wait times out. Every answer is JSON. */
#include "server.h"

#include <libsoup/soup.h>
#include <string.h>

#include "auth.h"
#include "jw-gate.h"
#include "jw-id.h"
#include "jw-json.h"
#include "jw-listen.h"
#include "jw-log.h"
#include "jw-metrics.h"
#include "known-types.h"
#include "metrics.h"
#include "jw-origin.h"
#include "validate.h"

struct _JwApiServer
{
  SoupServer *server;
  JwBrokerLink *link;
  gsize max_body;
  guint max_depth;
  guint timeout_ms;
  JwKnownTypes *known; /* the broker's job types, cached */
  char *pusher_url;    /* without a trailing slash */
  char *websocket_url; /* ws:// or wss:// form of pusher_url, + /ws */
  JwOrigins *origins;  /* browser origins given CORS headers */
  JwApiAuth *auth;     /* job tokens and API keys, each maybe off */
  JwGate *gate;        /* accepts connections, enforces their limits */
  guint active;        /* requests read but not yet answered in full */
};

typedef enum
{
  REQUEST_SUBMIT,
  REQUEST_GET,
  REQUEST_LIST,
  REQUEST_CANCEL,
  REQUEST_TYPES,
} RequestKind;

/* A request paused while the broker answers. It holds a reference on the
 * message; `gone` is set when libsoup finished the message meanwhile
 * (client vanished, server closing), after which it is not touched. */
typedef struct
{
  JwApiServer *api;
  SoupServerMessage *msg;
  RequestKind kind;
  char *job_id;
  gulong finished_handler;
  gboolean gone;
} Request;

/* ---- answers -------------------------------------------------------- */

static void
respond_json (SoupServerMessage *msg, guint status, JsonNode *node)
{
  gsize len;
  char *json = jw_json_to_string (node, &len);

  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE,
                                    json, len);
}

static void
respond_object (SoupServerMessage *msg, guint status, JsonObject *obj)
{
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), obj);

  respond_json (msg, status, node);
}

static JsonObject *
error_object (const char *code, const char *message)
{
  JsonObject *obj = json_object_new ();
  JsonObject *err = json_object_new ();

  json_object_set_string_member (err, "code", code);
  json_object_set_string_member (err, "message", message);
  json_object_set_object_member (obj, "error", err);
  return obj;
}

static void
respond_error (SoupServerMessage *msg, JwApiError code, const char *message)
{
  g_autoptr (JsonObject) obj = error_object (jw_api_error_code (code), message);
  guint status = jw_api_error_status (code);
  SoupMessageHeaders *headers;

  headers = soup_server_message_get_response_headers (msg);
  if (status == SOUP_STATUS_SERVICE_UNAVAILABLE)
    soup_message_headers_replace (headers, "Retry-After", "1");
  respond_object (msg, status, obj);
}

static void
respond_gerror (SoupServerMessage *msg, const GError *error)
{
  if (error->domain == JW_API_ERROR)
    respond_error (msg, error->code, error->message);
  else
    respond_error (msg, JW_API_ERROR_INTERNAL, error->message);
}

static void
respond_unavailable (SoupServerMessage *msg)
{
  respond_error (msg, JW_API_ERROR_BROKER_UNAVAILABLE,
                 "the broker is not reachable; try again shortly");
}

static void
respond_method_not_allowed (SoupServerMessage *msg, const char *allow)
{
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Allow", allow);
  respond_error (msg, JW_API_ERROR_METHOD_NOT_ALLOWED,
                 "method not allowed on this resource");
}

/* ---- paused requests ------------------------------------------------ */

static void
request_finished (SoupServerMessage *msg, gpointer data)
{
  Request *req = data;

  req->gone = TRUE;
}

static Request *
request_new (JwApiServer *api, SoupServerMessage *msg, RequestKind kind,
             const char *job_id)
{
  Request *req = g_new0 (Request, 1);

  req->api = api;
  req->msg = g_object_ref (msg);
  req->kind = kind;
  req->job_id = g_strdup (job_id);
  req->finished_handler =
      g_signal_connect (msg, "finished", G_CALLBACK (request_finished), req);
  return req;
}

static void
request_free (Request *req)
{
  g_signal_handler_disconnect (req->msg, req->finished_handler);
  g_object_unref (req->msg);
  g_free (req->job_id);
  g_free (req);
}

/* Maps a broker error reply onto an HTTP answer. */
static void
respond_broker_error (SoupServerMessage *msg, JsonObject *reply)
{
  JsonObject *err = jw_json_get_object (reply, "error");
  const char *code = err ? jw_json_get_string (err, "code") : NULL;
  const char *message = err ? jw_json_get_string (err, "message") : NULL;
  JwApiError api_code = JW_API_ERROR_BROKER;

  if (message == NULL)
    message = "the broker refused the request";
  if (g_strcmp0 (code, "job_not_found") == 0)
    api_code = JW_API_ERROR_JOB_NOT_FOUND;
  else if (g_strcmp0 (code, "job_finished") == 0)
    api_code = JW_API_ERROR_JOB_FINISHED;
  else if (g_strcmp0 (code, "duplicate_id") == 0)
    api_code = JW_API_ERROR_CONFLICT;
  else if (g_strcmp0 (code, "idempotency_key_reused") == 0)
    api_code = JW_API_ERROR_IDEMPOTENCY_KEY_REUSED;
  else
    g_warning ("broker error code=%s message=%s", code ? code : "none",
               message);
  respond_error (msg, api_code, message);
}

/* A copy of the snapshot with the URLs a client follows next; with a
 * token (may be NULL), the token too, and in the stream URLs. */
static JsonObject *
snapshot_with_links (JwApiServer *api, JsonObject *snapshot, const char *id,
                     const char *token)
{
  JsonObject *obj = json_object_new (), *links;
  JsonObjectIter iter;
  const char *name;
  JsonNode *member;
  /* A token is base64url and digits: nothing to escape in a query. */
  const char *query = token ? "?token=" : "";
  g_autofree char *self_url = g_strconcat ("/jobs/", id, NULL);
  g_autofree char *events = g_strconcat (api->pusher_url, "/jobs/", id,
                                         "/events", query, token, NULL);
  g_autofree char *poll = g_strconcat (api->pusher_url, "/jobs/", id, "/poll",
                                       query, token, NULL);

  json_object_iter_init_ordered (&iter, snapshot);
  while (json_object_iter_next_ordered (&iter, &name, &member))
    if (!g_str_equal (name, "links"))
      json_object_set_member (obj, name, json_node_copy (member));

  if (token != NULL)
    json_object_set_string_member (obj, "token", token);
  links = json_object_new ();
  json_object_set_string_member (links, "self", self_url);
  json_object_set_string_member (links, "events", events);
  json_object_set_string_member (links, "websocket", api->websocket_url);
  json_object_set_string_member (links, "poll", poll);
  json_object_set_object_member (obj, "links", links);
  return obj;
}

static void
request_replied (JsonObject *reply, const GError *error, gpointer data)
{
  Request *req = data;
  SoupServerMessage *msg = req->msg;
  JsonObject *job, *answer;
  JsonArray *jobs;
  gboolean ok = FALSE;

  if (req->gone)
    {
      g_debug ("reply for a request whose client left");
      request_free (req);
      return;
    }

  if (reply == NULL)
    {
      g_debug ("request unanswered: %s", error->message);
      respond_unavailable (msg);
    }
  else if (!jw_json_get_bool (reply, "ok", &ok) || !ok)
    respond_broker_error (msg, reply);
  else if (req->kind == REQUEST_TYPES)
    {
      JsonArray *types = jw_json_get_array (reply, "types");

      jw_known_types_update (req->api->known, types);
      answer = json_object_new ();
      json_object_set_array_member (
          answer, "types", types ? json_array_ref (types) : json_array_new ());
      respond_object (msg, SOUP_STATUS_OK, answer);
      json_object_unref (answer);
    }
  else if (req->kind == REQUEST_LIST)
    {
      jobs = jw_json_get_array (reply, "jobs");
      answer = json_object_new ();
      json_object_set_array_member (
          answer, "jobs", jobs ? json_array_ref (jobs) : json_array_new ());
      respond_object (msg, SOUP_STATUS_OK, answer);
      json_object_unref (answer);
    }
  else if ((job = jw_json_get_object (reply, "job")) == NULL)
    respond_error (msg, JW_API_ERROR_BROKER,
                   "the broker answered without a job snapshot");
  else if (req->kind == REQUEST_SUBMIT)
    {
      g_autofree char *location = g_strconcat ("/jobs/", req->job_id, NULL);
      /* A retry with an idempotency key answers the earlier job. */
      const char *id = jw_json_get_string (job, "id");
      g_autofree char *token = NULL;

      if (id == NULL || !jw_id_valid (id, -1))
        id = req->job_id;
      token = jw_api_auth_token (req->api->auth, id);
      answer = snapshot_with_links (req->api, job, id, token);
      soup_message_headers_replace (
          soup_server_message_get_response_headers (msg), "Location", location);
      respond_object (msg, SOUP_STATUS_ACCEPTED, answer);
      json_object_unref (answer);
      jw_log_job (G_LOG_LEVEL_INFO, req->job_id, "job accepted id=%s",
                  req->job_id);
    }
  else
    respond_object (msg,
                    req->kind == REQUEST_CANCEL ? SOUP_STATUS_ACCEPTED
                                                : SOUP_STATUS_OK,
                    job);

  soup_server_message_unpause (msg);
  request_free (req);
}

/* Sends a command or query for msg, whose answer request_replied gives
 * (and then unpauses msg). FALSE when it could not be sent. */
static gboolean
send_request (JwApiServer *api, SoupServerMessage *msg, RequestKind kind,
              gboolean command, const char *verb, JsonObject *body,
              const char *job_id)
{
  g_autoptr (GError) error = NULL;
  Request *req = request_new (api, msg, kind, job_id);
  gboolean sent;

  if (command)
    sent = jw_broker_link_command (api->link, verb, body, api->timeout_ms,
                                   request_replied, req, &error);
  else
    sent = jw_broker_link_query (api->link, verb, body, api->timeout_ms,
                                 request_replied, req, &error);
  if (!sent)
    {
      g_debug ("%s not sent: %s", verb, error->message);
      request_free (req);
      respond_unavailable (msg);
    }
  return sent;
}

/* Sends a command or query for msg and pauses it until the reply. */
static void
forward (JwApiServer *api, SoupServerMessage *msg, RequestKind kind,
         gboolean command, const char *verb, JsonObject *body,
         const char *job_id)
{
  if (send_request (api, msg, kind, command, verb, body, job_id))
    soup_server_message_pause (msg);
}

/* ---- routes --------------------------------------------------------- */

/* How long the api trusts its copy of the broker's types for a type it
 * finds there; a type it does not find is always asked for again. */
#define TYPES_MAX_AGE_MS 5000

/* A submission waiting for the broker's list of types. */
typedef struct
{
  JwApiServer *api;
  SoupServerMessage *msg;
  gulong finished_handler;
  gboolean gone;
  char *type;
  JsonNode *params;
  char *key;
} TypeWait;

static void
type_wait_finished (SoupServerMessage *msg, gpointer data)
{
  TypeWait *wait = data;

  wait->gone = TRUE;
}

static void
type_wait_free (TypeWait *wait)
{
  g_signal_handler_disconnect (wait->msg, wait->finished_handler);
  g_object_unref (wait->msg);
  g_free (wait->type);
  json_node_unref (wait->params);
  g_free (wait->key);
  g_free (wait);
}

/* Checks type and params against the known types and sends the submit.
 * TRUE when msg waits for the broker's answer; FALSE when it has been
 * answered. */
static gboolean
submit_known (JwApiServer *api, SoupServerMessage *msg, const char *type,
              JsonNode *params, const char *key)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) cmd = NULL;
  JsonObject *job;
  char id[JW_ID_LEN + 1];

  if (!jw_known_types_has (api->known, type))
    {
      g_autofree char *names = jw_known_types_names (api->known);
      g_autofree char *message = g_strdup_printf (
          "unknown job type %s: no worker has announced it (known: %s)", type,
          *names ? names : "none yet");

      respond_error (msg, JW_API_ERROR_UNKNOWN_TYPE, message);
      return FALSE;
    }
  if (!jw_known_types_check (api->known, type, json_node_get_object (params),
                             &error))
    {
      respond_gerror (msg, error);
      return FALSE;
    }

  jw_id_new (id);
  job = json_object_new ();
  json_object_set_string_member (job, "id", id);
  json_object_set_string_member (job, "type", type);
  json_object_set_member (job, "params", json_node_ref (params));
  cmd = json_object_new ();
  json_object_set_object_member (cmd, "job", job);
  if (key != NULL)
    json_object_set_string_member (cmd, "idempotency_key", key);

  jw_log_job (G_LOG_LEVEL_DEBUG, id, "submitting job id=%s type=%s", id, type);
  return send_request (api, msg, REQUEST_SUBMIT, TRUE, "submit", cmd, id);
}

static void
types_replied (JsonObject *reply, const GError *error, gpointer data)
{
  TypeWait *wait = data;
  gboolean ok = FALSE;

  if (wait->gone)
    {
      type_wait_free (wait);
      return;
    }
  if (reply == NULL)
    respond_unavailable (wait->msg);
  else if (!jw_json_get_bool (reply, "ok", &ok) || !ok)
    respond_broker_error (wait->msg, reply);
  else
    {
      jw_known_types_update (wait->api->known,
                             jw_json_get_array (reply, "types"));
      if (submit_known (wait->api, wait->msg, wait->type, wait->params,
                        wait->key))
        {
          /* Paused until the submit's answer. */
          type_wait_free (wait);
          return;
        }
    }
  soup_server_message_unpause (wait->msg);
  type_wait_free (wait);
}

static void
submit_job (JwApiServer *api, SoupServerMessage *msg)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) body = NULL;
  g_autoptr (JsonNode) params = NULL;
  g_autoptr (JsonObject) query = NULL;
  g_autofree char *type = NULL;
  SoupMessageHeaders *headers;
  const char *key, *data;
  TypeWait *wait;
  gsize len;

  headers = soup_server_message_get_request_headers (msg);
  body = soup_message_body_flatten (soup_server_message_get_request_body (msg));
  data = g_bytes_get_data (body, &len);
  key = soup_message_headers_get_one (headers, "Idempotency-Key");

  if (!jw_validate_content_type (
          soup_message_headers_get_one (headers, "Content-Type"), &error)
      || !jw_validate_body_length (FALSE, len, api->max_body, &error)
      || (key != NULL && !jw_validate_idempotency_key (key, &error))
      || !jw_validate_job_request (data, len, api->max_depth, NULL, &type,
                                   &params, &error)
      || !jw_api_auth_check_key (
          api->auth,
          jw_api_auth_bearer (
              soup_message_headers_get_one (headers, "Authorization")),
          type, &error))
    {
      respond_gerror (msg, error);
      return;
    }

  if (jw_known_types_fresh (api->known, TYPES_MAX_AGE_MS)
      && jw_known_types_has (api->known, type))
    {
      if (submit_known (api, msg, type, params, key))
        soup_server_message_pause (msg);
      return;
    }

  /* Ask the broker which types exist, then go on in types_replied. */
  wait = g_new0 (TypeWait, 1);
  wait->api = api;
  wait->msg = g_object_ref (msg);
  wait->finished_handler = g_signal_connect (
      msg, "finished", G_CALLBACK (type_wait_finished), wait);
  wait->type = g_steal_pointer (&type);
  wait->params = g_steal_pointer (&params);
  wait->key = g_strdup (key);
  query = json_object_new ();
  if (!jw_broker_link_query (api->link, "types", query, api->timeout_ms,
                             types_replied, wait, &error))
    {
      g_debug ("types not sent: %s", error->message);
      type_wait_free (wait);
      respond_unavailable (msg);
      return;
    }
  soup_server_message_pause (msg);
}

static void
list_jobs (JwApiServer *api, SoupServerMessage *msg, GHashTable *query)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body = NULL;
  const char *state, *before;
  gint64 limit;

  if (!jw_api_auth_check_key (
          api->auth,
          jw_api_auth_bearer (soup_message_headers_get_one (
              soup_server_message_get_request_headers (msg), "Authorization")),
          NULL, &error)
      || !jw_validate_list_query (query, &state, &limit, &before, &error))
    {
      respond_gerror (msg, error);
      return;
    }
  body = json_object_new ();
  if (state != NULL)
    json_object_set_string_member (body, "state", state);
  json_object_set_int_member (body, "limit", limit);
  if (before != NULL)
    json_object_set_string_member (body, "before", before);
  forward (api, msg, REQUEST_LIST, FALSE, "list", body, NULL);
}

static void
job_request (JwApiServer *api, SoupServerMessage *msg, const char *method,
             const char *id, GHashTable *query)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body = NULL;
  const char *token = jw_api_auth_bearer (soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Authorization"));

  if (!g_str_equal (method, "GET") && !g_str_equal (method, "DELETE"))
    {
      respond_method_not_allowed (msg, "GET, DELETE");
      return;
    }
  if (token == NULL && query != NULL)
    token = g_hash_table_lookup (query, "token");
  if (!jw_validate_job_id (id, &error)
      || !jw_api_auth_check_token (api->auth, id, token, &error))
    {
      if (error->domain == JW_API_ERROR
          && error->code != JW_API_ERROR_INVALID_JOB_ID)
        jw_log_job (G_LOG_LEVEL_DEBUG, id, "request refused id=%s: %s", id,
                    error->message);
      respond_gerror (msg, error);
      return;
    }

  body = json_object_new ();
  json_object_set_string_member (body, "job", id);
  if (g_str_equal (method, "GET"))
    forward (api, msg, REQUEST_GET, FALSE, "get", body, id);
  else
    {
      jw_log_job (G_LOG_LEVEL_DEBUG, id, "cancel requested id=%s", id);
      forward (api, msg, REQUEST_CANCEL, TRUE, "cancel", body, id);
    }
}

static void
healthz (JwApiServer *api, SoupServerMessage *msg)
{
  g_autoptr (JsonObject) obj = NULL;
  gboolean up = jw_broker_link_connected (api->link);
  gint64 workers, queued, running;

  if (up)
    obj = json_object_new ();
  else
    obj = error_object ("broker_unavailable", "the broker is not reachable");
  jw_broker_link_counts (api->link, &workers, &queued, &running);
  json_object_set_string_member (obj, "status", up ? "ok" : "unavailable");
  json_object_set_string_member (obj, "broker", up ? "ok" : "unavailable");
  json_object_set_int_member (obj, "workers", workers);
  json_object_set_int_member (obj, "queued", queued);
  json_object_set_int_member (obj, "running", running);
  if (!up)
    soup_message_headers_replace (
        soup_server_message_get_response_headers (msg), "Retry-After", "1");
  respond_object (msg, up ? SOUP_STATUS_OK : SOUP_STATUS_SERVICE_UNAVAILABLE,
                  obj);
}

static void
metrics (JwApiServer *api, SoupServerMessage *msg)
{
  gsize len;
  char *text = jw_api_metrics_text (api->link, &len);

  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Cache-Control", "no-cache");
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, JW_METRICS_CONTENT_TYPE,
                                    SOUP_MEMORY_TAKE, text, len);
}

static void
handle_request (SoupServer *server, SoupServerMessage *msg, const char *path,
                GHashTable *query, gpointer data)
{
  JwApiServer *api = data;
  const char *method = soup_server_message_get_method (msg);

  g_debug ("request method=%s path=%s", method, path);

  if (g_str_equal (path, "/healthz"))
    {
      if (g_str_equal (method, "GET"))
        healthz (api, msg);
      else
        respond_method_not_allowed (msg, "GET");
    }
  else if (g_str_equal (path, "/metrics"))
    {
      if (g_str_equal (method, "GET"))
        metrics (api, msg);
      else
        respond_method_not_allowed (msg, "GET");
    }
  else if (g_str_equal (path, "/types"))
    {
      g_autoptr (JsonObject) body = json_object_new ();

      if (g_str_equal (method, "GET"))
        forward (api, msg, REQUEST_TYPES, FALSE, "types", body, NULL);
      else
        respond_method_not_allowed (msg, "GET");
    }
  else if (g_str_equal (path, "/jobs"))
    {
      if (g_str_equal (method, "POST"))
        submit_job (api, msg);
      else if (g_str_equal (method, "GET"))
        list_jobs (api, msg, query);
      else
        respond_method_not_allowed (msg, "GET, POST");
    }
  else if (g_str_has_prefix (path, "/jobs/")
           && strchr (path + strlen ("/jobs/"), '/') == NULL)
    job_request (api, msg, method, path + strlen ("/jobs/"), query);
  else
    respond_error (msg, JW_API_ERROR_NOT_FOUND, "no such resource");
}

/* A request refused before its body was read, on a connection taken over
 * from libsoup: libsoup 3.2 would otherwise read the whole body into memory
 * even after the early answer. The answer is written, the sending side
 * shut, and what the client still sends is read and thrown away for a
 * bounded time and amount (a close with unread input would reset the
 * connection before the client saw the answer). */
#define DRAIN_MAX_BYTES (64 * 1024 * 1024)
#define DRAIN_TIMEOUT_MS 5000

typedef struct
{
  GIOStream *stream;
  GBytes *answer;
  GCancellable *cancellable;
  guint timeout_id;
  gsize drained;
  char buf[16384];
} Refusal;

static void
refusal_finish (Refusal *r)
{
  if (r->timeout_id != 0)
    g_source_remove (r->timeout_id);
  g_io_stream_close (r->stream, NULL, NULL);
  g_object_unref (r->stream);
  g_object_unref (r->cancellable);
  g_bytes_unref (r->answer);
  g_free (r);
}

static gboolean
refusal_timed_out (gpointer data)
{
  Refusal *r = data;

  r->timeout_id = 0;
  g_cancellable_cancel (r->cancellable);
  return G_SOURCE_REMOVE;
}

static void
refusal_drained (GObject *source, GAsyncResult *result, gpointer data)
{
  Refusal *r = data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);

  if (n <= 0 || (r->drained += n) >= DRAIN_MAX_BYTES)
    {
      g_debug ("refused connection closed drained=%" G_GSIZE_FORMAT,
               r->drained);
      refusal_finish (r);
      return;
    }
  g_input_stream_read_async (G_INPUT_STREAM (source), r->buf, sizeof r->buf,
                             G_PRIORITY_LOW, r->cancellable, refusal_drained,
                             r);
}

static void
refusal_written (GObject *source, GAsyncResult *result, gpointer data)
{
  Refusal *r = data;
  GSocket *socket;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL,
                                         NULL))
    {
      refusal_finish (r);
      return;
    }
  socket = jw_gate_stream_socket (r->stream);
  if (socket != NULL)
    g_socket_shutdown (socket, FALSE, TRUE, NULL);
  r->timeout_id = g_timeout_add (DRAIN_TIMEOUT_MS, refusal_timed_out, r);
  g_input_stream_read_async (g_io_stream_get_input_stream (r->stream), r->buf,
                             sizeof r->buf, G_PRIORITY_LOW, r->cancellable,
                             refusal_drained, r);
}

/* Answers msg with error and takes its connection over. */
static void
refuse_and_close (SoupServerMessage *msg, const GError *error)
{
  g_autoptr (JsonObject) obj = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *json = NULL;
  GIOStream *stream;
  Refusal *r;
  GString *answer;
  JwApiError code =
      error->domain == JW_API_ERROR ? error->code : JW_API_ERROR_INTERNAL;
  guint status = jw_api_error_status (code);
  gsize len;

  obj = error_object (jw_api_error_code (code), error->message);
  node = json_node_init_object (json_node_alloc (), obj);
  json = jw_json_to_string (node, &len);
  answer = g_string_new (NULL);
  g_string_append_printf (answer,
                          "HTTP/1.1 %u %s\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: %" G_GSIZE_FORMAT "\r\n"
                          "Connection: close\r\n\r\n",
                          status, soup_status_get_phrase (status), len);
  g_string_append_len (answer, json, len);

  stream = soup_server_message_steal_connection (msg);
  if (stream == NULL)
    {
      g_string_free (answer, TRUE);
      return;
    }
  r = g_new0 (Refusal, 1);
  r->stream = stream;
  r->answer = g_string_free_to_bytes (answer);
  r->cancellable = g_cancellable_new ();
  g_output_stream_write_all_async (
      g_io_stream_get_output_stream (stream),
      g_bytes_get_data (r->answer, NULL), g_bytes_get_size (r->answer),
      G_PRIORITY_DEFAULT, r->cancellable, refusal_written, r);
}

/* ---- cross-origin requests ---------------------------------------- */

#define CORS_MAX_AGE "600"

/* Adds the CORS headers of an answer to an allowed origin; others get
 * none, so that their pages cannot read the answer. Returns TRUE when the
 * request came from an allowed origin. */
static gboolean
cors_headers (JwApiServer *api, SoupServerMessage *msg)
{
  SoupMessageHeaders *req = soup_server_message_get_request_headers (msg);
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
  const char *origin = soup_message_headers_get_one (req, "Origin");

  soup_message_headers_append (h, "Vary", "Origin");
  if (origin == NULL
      || !jw_origins_allows (api->origins, origin,
                             soup_message_headers_get_one (req, "Host")))
    return FALSE;
  soup_message_headers_replace (h, "Access-Control-Allow-Origin", origin);
  soup_message_headers_replace (h, "Access-Control-Expose-Headers",
                                "Location, Retry-After");
  return TRUE;
}

/* Answers OPTIONS: a CORS preflight from an allowed origin gets what it
 * may send, one from another origin 403. */
static void
preflight (JwApiServer *api, SoupServerMessage *msg, gboolean allowed)
{
  SoupMessageHeaders *req = soup_server_message_get_request_headers (msg);
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
  gboolean cors =
      soup_message_headers_get_one (req, "Access-Control-Request-Method")
      != NULL;

  soup_message_headers_replace (h, "Allow", "GET, POST, DELETE, OPTIONS");
  if (cors && !allowed)
    {
      g_autoptr (JsonObject) obj = error_object (
          "origin_not_allowed", "this origin may not call the api");

      g_debug ("preflight refused origin=%s",
               soup_message_headers_get_one (req, "Origin"));
      respond_object (msg, SOUP_STATUS_FORBIDDEN, obj);
      return;
    }
  if (cors)
    {
      soup_message_headers_replace (h, "Access-Control-Allow-Methods",
                                    "GET, POST, DELETE");
      soup_message_headers_replace (h, "Access-Control-Allow-Headers",
                                    "Content-Type, Idempotency-Key, "
                                    "Authorization");
      soup_message_headers_replace (h, "Access-Control-Max-Age", CORS_MAX_AGE);
    }
  soup_server_message_set_status (msg, SOUP_STATUS_NO_CONTENT, NULL);
}

/* Runs once the request headers are in, before libsoup reads the body
 * (which it keeps whole in memory): refuses bodies that are too large or
 * unframed, and job submissions that are not JSON. When the client waits
 * for "100 Continue" or sends no body, setting a status is enough: libsoup
 * then reads no body. Otherwise the connection is taken over. */
static void
check_headers (SoupServer *server, SoupServerMessage *msg, const char *path,
               GHashTable *query, gpointer data)
{
  JwApiServer *api = data;
  g_autoptr (GError) error = NULL;
  SoupMessageHeaders *headers;
  SoupEncoding encoding;
  goffset length = -1;
  gboolean ok, waits, allowed;

  allowed = cors_headers (api, msg);
  if (g_str_equal (soup_server_message_get_method (msg), "OPTIONS"))
    {
      preflight (api, msg, allowed);
      return;
    }

  headers = soup_server_message_get_request_headers (msg);
  encoding = soup_message_headers_get_encoding (headers);
  if (encoding == SOUP_ENCODING_CONTENT_LENGTH)
    length = soup_message_headers_get_content_length (headers);

  ok = jw_validate_body_length (encoding == SOUP_ENCODING_CHUNKED, length,
                                api->max_body, &error);
  if (ok && g_str_equal (path, "/jobs")
      && g_str_equal (soup_server_message_get_method (msg), "POST"))
    ok = jw_validate_content_type (
             soup_message_headers_get_one (headers, "Content-Type"), &error)
         /* A submission without a valid key is refused before its body
          * is read; its type is checked once the body is in. */
         && jw_api_auth_check_key (
             api->auth,
             jw_api_auth_bearer (
                 soup_message_headers_get_one (headers, "Authorization")),
             NULL, &error);
  if (ok)
    return;

  g_debug ("request refused before its body path=%s: %s", path, error->message);
  waits = (soup_message_headers_get_expectations (headers)
           & SOUP_EXPECTATION_CONTINUE)
          != 0;
  if (!waits
      && (encoding == SOUP_ENCODING_CHUNKED
          || (length > 0 && (guint64)length > api->max_body)))
    {
      refuse_and_close (msg, error);
      return;
    }
  soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                "Connection", "close");
  respond_gerror (msg, error);
}

/* ---- set-up --------------------------------------------------------- */

static void
set_pusher_url (JwApiServer *api, const char *url)
{
  gsize len = strlen (url);

  while (len > 0 && url[len - 1] == '/')
    len--;
  api->pusher_url = g_strndup (url, len);
  if (g_str_has_prefix (api->pusher_url, "https://"))
    api->websocket_url =
        g_strconcat ("wss://", api->pusher_url + 8, "/ws", NULL);
  else if (g_str_has_prefix (api->pusher_url, "http://"))
    api->websocket_url =
        g_strconcat ("ws://", api->pusher_url + 7, "/ws", NULL);
  else
    api->websocket_url = g_strconcat (api->pusher_url, "/ws", NULL);
}

/* Requests count from when they are read (an idle keep-alive connection
 * waits in a message of its own, which never counts) until answered. */
#define COUNTED_KEY "jw-counted"
#define READ_AT_KEY "jw-read-at"

static void
on_request_read (SoupServer *server, SoupServerMessage *msg, gpointer user_data)
{
  gint64 *read_at = g_new (gint64, 1);

  ((JwApiServer *)user_data)->active++;
  g_object_set_data (G_OBJECT (msg), COUNTED_KEY, GINT_TO_POINTER (1));
  *read_at = g_get_monotonic_time ();
  g_object_set_data_full (G_OBJECT (msg), READ_AT_KEY, read_at, g_free);
}

/* Counts a request answered in full, for /metrics. */
static void
on_request_answered (SoupServer *server, SoupServerMessage *msg,
                     gpointer user_data)
{
  gint64 *read_at = g_object_get_data (G_OBJECT (msg), READ_AT_KEY);

  jw_api_metrics_request (soup_server_message_get_method (msg),
                          g_uri_get_path (soup_server_message_get_uri (msg)),
                          soup_server_message_get_status (msg),
                          read_at ? *read_at : 0);
}

static void
on_request_done (SoupServer *server, SoupServerMessage *msg, gpointer user_data)
{
  JwApiServer *api = user_data;

  if (g_object_steal_data (G_OBJECT (msg), COUNTED_KEY) != NULL
      && api->active > 0)
    api->active--;
}

/* Without API keys anyone who reaches the api may submit: it then
 * listens on a loopback address only. */
static gboolean
listens_on_loopback (GSocket *sock, GError **error)
{
  g_autoptr (GSocketAddress) addr = g_socket_get_local_address (sock, error);
  GInetAddress *inet;

  if (addr == NULL)
    return FALSE;
  inet = G_IS_INET_SOCKET_ADDRESS (addr)
             ? g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (addr))
             : NULL;
  if (inet != NULL && g_inet_address_get_is_loopback (inet))
    return TRUE;
  {
    g_autofree char *where =
        inet ? g_inet_address_to_string (inet) : g_strdup ("a non-IP socket");

    g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                 "refusing to listen on %s without API keys: set [security] "
                 "api-keys-file, or listen on 127.0.0.1 or ::1",
                 where);
  }
  return FALSE;
}

JwApiServer *
jw_api_server_new (JwConfig *cfg, JwBrokerLink *link, GError **error)
{
  g_autoptr (JwApiServer) api = g_new0 (JwApiServer, 1);
  g_autoptr (GSocket) sock = NULL;
  g_autofree char *url = NULL;
  JwGateLimits limits = { .max_connections = 1024,
                          .max_per_address = 256,
                          .header_timeout_s = 10,
                          .idle_timeout_s = 60 };

  api->link = link;
  api->max_body = CLAMP (
      jw_config_get_int (cfg, "api", "max-body", 1024 * 1024), 1, G_MAXINT32);
  api->max_depth =
      CLAMP (jw_config_get_int (cfg, "api", "max-depth", 32), 1, 1000);
  api->timeout_ms = CLAMP (
      jw_config_get_int (cfg, "api", "submit-timeout-ms", 3000), 1, 600000);
  api->known = jw_known_types_new ();
  jw_api_metrics_init ();
  set_pusher_url (api, jw_config_get_string (cfg, "api", "pusher-url",
                                             "http://127.0.0.1:8081"));
  /* By default the pusher's origin, which serves the demo page. */
  api->origins =
      jw_origins_new (jw_config_get_string (cfg, "api", "allow-origins", NULL),
                      api->pusher_url, error);
  if (api->origins == NULL)
    return NULL;
  g_info ("cors allow-origins=%s", jw_origins_describe (api->origins));
  api->auth = jw_api_auth_new (cfg, error);
  if (api->auth == NULL)
    return NULL;

  sock = jw_listen_socket (
      jw_config_get_string (cfg, "api", "listen", "127.0.0.1:8080"),
      JW_LISTEN_BACKLOG, error);
  if (sock == NULL)
    return NULL;
  if (!jw_api_auth_keys (api->auth) && !listens_on_loopback (sock, error))
    return NULL;
  g_message ("security tokens=%s api-keys=%s",
             jw_api_auth_tokens (api->auth) ? "on" : "off (open mode)",
             jw_api_auth_keys (api->auth) ? "on" : "off (loopback only)");

  api->server = soup_server_new ("server-header", "jobwire-api ", NULL);
  soup_server_add_early_handler (api->server, NULL, check_headers, api, NULL);
  soup_server_add_handler (api->server, NULL, handle_request, api, NULL);
  g_signal_connect (api->server, "request-read", G_CALLBACK (on_request_read),
                    api);
  g_signal_connect (api->server, "request-finished",
                    G_CALLBACK (on_request_done), api);
  g_signal_connect (api->server, "request-finished",
                    G_CALLBACK (on_request_answered), api);
  g_signal_connect (api->server, "request-aborted",
                    G_CALLBACK (on_request_done), api);
  jw_gate_limits_read (&limits, cfg, "api");
  api->gate = jw_gate_new (sock, api->server, &limits, error);
  if (api->gate == NULL)
    return NULL;

  url = jw_gate_url (api->gate);
  g_message ("listening url=%s", url);
  return g_steal_pointer (&api);
}

void
jw_api_server_stop_accepting (JwApiServer *self)
{
  /* The connections already accepted go on. */
  if (self->gate != NULL)
    jw_gate_stop_accepting (self->gate);
  g_info ("no longer accepting connections, requests-in-flight=%u",
          self->active);
}

guint
jw_api_server_active (JwApiServer *self)
{
  return self->active;
}

void
jw_api_server_free (JwApiServer *self)
{
  if (self == NULL)
    return;
  g_clear_pointer (&self->gate, jw_gate_free);
  if (self->server != NULL)
    {
      soup_server_disconnect (self->server);
      g_object_unref (self->server);
    }
  g_clear_pointer (&self->known, jw_known_types_free);
  g_free (self->pusher_url);
  g_free (self->websocket_url);
  g_clear_pointer (&self->origins, jw_origins_free);
  g_clear_pointer (&self->auth, jw_api_auth_free);
  g_free (self);
}
