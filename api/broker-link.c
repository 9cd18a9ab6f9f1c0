/* broker-link: how the api reaches the broker (docs/PROTOCOL.md): commands
 * on a PUSH socket answered on the events SUB socket under the topic
 * ~api.<instance>, queries on a DEALER socket answered on the same socket.
 * Waiting requests are kept by rid; a timer pings both paths every second
 * and decides whether the broker counts as connected. */
#include "broker-link.h"

#include <gio/gio.h>

#include "jw-curve.h"
#include "jw-json.h"
#include "jw-msg.h"
#include "jw-zmq.h"
#include "jw-zsource.h"

#define PING_INTERVAL_MS 1000
#define PING_TIMEOUT_MS 3000
#define ALIVE_US (3 * G_USEC_PER_SEC)
/* Replies hold snapshots whose params were accepted up to 32 levels deep;
 * the envelope adds a few levels. */
#define REPLY_MAX_DEPTH 64
/* Requests waiting in a socket for a connected broker that is busy. Each
 * still answers within its time bound (submit-timeout-ms); a smaller
 * queue turned a burst of submits into 503s while the broker was up. */
#define SEND_HWM 4096

typedef struct
{
  JwBrokerLink *link;
  char *rid;
  guint timeout_id;
  JwBrokerReplyFunc func;
  gpointer user_data;
} Pending;

struct _JwBrokerLink
{
  char instance[13];
  char *topic;
  JwCurve *curve; /* CURVE of tcp:// endpoints */
  zsock_t *push;
  zsock_t *sub;
  zsock_t *dealer;
  guint sub_watch;
  guint dealer_watch;
  guint ping_timer;

  guint64 next_rid;
  GHashTable *pending; /* rid -> Pending */

  gint64 sub_ok_at;   /* monotonic µs of the last message on our topic */
  gint64 query_ok_at; /* monotonic µs of the last ping query reply */
  gboolean connected; /* as last reported */
  char *epoch;
  gint64 workers, queued, running;
  JsonObject *last_ping; /* the last ping query reply, for metrics */
};

static void
pending_free (gpointer data)
{
  Pending *p = data;

  if (p->timeout_id != 0)
    g_source_remove (p->timeout_id);
  g_free (p->rid);
  g_free (p);
}

static void
check_connected (JwBrokerLink *self)
{
  gboolean now = jw_broker_link_connected (self);

  if (now == self->connected)
    return;
  self->connected = now;
  if (now)
    g_message ("broker connected epoch=%s workers=%" G_GINT64_FORMAT,
               self->epoch ? self->epoch : "?", self->workers);
  else
    g_message ("broker connection lost");
}

/* Hands the reply for rid to its waiter, once. */
static void
complete (JwBrokerLink *self, const char *rid, JsonObject *reply,
          const GError *error)
{
  Pending *p;
  JwBrokerReplyFunc func;
  gpointer user_data;

  p = g_hash_table_lookup (self->pending, rid);
  if (p == NULL)
    {
      g_debug ("reply for no waiting request rid=%s", rid);
      return;
    }
  func = p->func;
  user_data = p->user_data;
  g_hash_table_remove (self->pending, rid);
  func (reply, error, user_data);
}

static gboolean
pending_timed_out (gpointer data)
{
  Pending *p = data;
  g_autoptr (GError) error = NULL;
  g_autofree char *rid = g_strdup (p->rid);

  p->timeout_id = 0;
  g_set_error (&error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
               "the broker did not answer in time");
  complete (p->link, rid, NULL, error);
  return G_SOURCE_REMOVE;
}

static void
handle_reply_json (JwBrokerLink *self, const char *data, gsize len)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;
  JsonObject *obj;
  const char *rid;

  node = jw_json_parse (data, len, REPLY_MAX_DEPTH, &error);
  obj = node ? jw_json_node_object (node) : NULL;
  rid = obj ? jw_json_get_string (obj, "rid") : NULL;
  if (rid == NULL)
    {
      g_warning ("dropped a broker reply without rid: %s",
                 error ? error->message : "no rid");
      return;
    }
  complete (self, rid, obj, NULL);
}

/* The next message on sock when it has the frames this socket carries:
 * exactly (or, without exact, at least) frames, the first one first. */
static JwMsg *
recv_expected (void *sock, guint frames, gboolean exact, const char *first,
               const char *socket_name)
{
  g_autoptr (JwMsg) msg = jw_msg_recv (sock, NULL);
  guint n;

  if (msg == NULL)
    return NULL;
  n = jw_msg_size (msg);
  if ((exact ? n != frames : n < frames) || !jw_msg_frame_is (msg, 0, first))
    {
      g_debug ("ignored a message on the %s socket frames=%u", socket_name, n);
      return NULL;
    }
  return g_steal_pointer (&msg);
}

static gboolean
sub_readable (void *sock, gpointer user_data)
{
  JwBrokerLink *self = user_data;
  g_autoptr (JwMsg) msg = recv_expected (sock, 4, TRUE, self->topic, "events");
  const char *data;
  gsize len;

  if (msg == NULL)
    return G_SOURCE_CONTINUE;
  if (jw_msg_frame_is (msg, 2, "subscribed"))
    {
      g_debug ("subscription confirmed topic=%s", self->topic);
      self->sub_ok_at = g_get_monotonic_time ();
      check_connected (self);
    }
  else if (jw_msg_frame_is (msg, 2, "reply"))
    {
      self->sub_ok_at = g_get_monotonic_time ();
      data = jw_msg_data (msg, 3, &len);
      handle_reply_json (self, data, len);
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
dealer_readable (void *sock, gpointer user_data)
{
  JwBrokerLink *self = user_data;
  g_autoptr (JwMsg) msg = recv_expected (sock, 2, FALSE, "reply", "queries");
  const char *data;
  gsize len;

  if (msg == NULL)
    return G_SOURCE_CONTINUE;
  data = jw_msg_data (msg, 1, &len);
  handle_reply_json (self, data, len);
  return G_SOURCE_CONTINUE;
}

static gboolean
send_request (JwBrokerLink *self, zsock_t *sock, gboolean with_api,
              const char *verb, JsonObject *body, guint timeout_ms,
              JwBrokerReplyFunc func, gpointer user_data, GError **error)
{
  g_autoptr (JwMsg) msg = jw_msg_new ();
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *json = NULL;
  g_autofree char *rid = NULL;
  Pending *p;
  gsize len;

  rid = g_strdup_printf ("r%" G_GUINT64_FORMAT, ++self->next_rid);
  json_object_set_string_member (body, "rid", rid);
  if (with_api)
    json_object_set_string_member (body, "api", self->instance);
  node = json_node_init_object (json_node_alloc (), body);
  json = jw_json_to_string (node, &len);

  jw_msg_add_str (msg, verb);
  jw_msg_add_data (msg, json, len);
  if (!jw_msg_send (msg, sock, error))
    return FALSE;

  p = g_new0 (Pending, 1);
  p->link = self;
  p->rid = g_steal_pointer (&rid);
  p->func = func;
  p->user_data = user_data;
  p->timeout_id = g_timeout_add (timeout_ms, pending_timed_out, p);
  g_hash_table_insert (self->pending, p->rid, p);
  return TRUE;
}

gboolean
jw_broker_link_command (JwBrokerLink *self, const char *verb, JsonObject *body,
                        guint timeout_ms, JwBrokerReplyFunc func,
                        gpointer user_data, GError **error)
{
  return send_request (self, self->push, TRUE, verb, body, timeout_ms, func,
                       user_data, error);
}

gboolean
jw_broker_link_query (JwBrokerLink *self, const char *verb, JsonObject *body,
                      guint timeout_ms, JwBrokerReplyFunc func,
                      gpointer user_data, GError **error)
{
  return send_request (self, self->dealer, FALSE, verb, body, timeout_ms, func,
                       user_data, error);
}

static void
ping_command_done (JsonObject *reply, const GError *error, gpointer data)
{
  /* Its arrival on our topic already proved the publish path. */
  if (reply == NULL)
    g_debug ("ping command unanswered: %s", error->message);
}

static void
ping_query_done (JsonObject *reply, const GError *error, gpointer data)
{
  JwBrokerLink *self = data;
  gboolean ok = FALSE;
  const char *epoch;

  if (reply == NULL)
    {
      g_debug ("ping query unanswered: %s", error->message);
      return;
    }
  if (!jw_json_get_bool (reply, "ok", &ok) || !ok)
    {
      g_warning ("the broker refused a ping query");
      return;
    }

  epoch = jw_json_get_string (reply, "epoch");
  if (epoch != NULL && g_strcmp0 (epoch, self->epoch) != 0)
    {
      if (self->epoch != NULL)
        g_message ("broker restarted epoch=%s", epoch);
      g_free (self->epoch);
      self->epoch = g_strdup (epoch);
    }
  jw_json_get_int (reply, "workers", &self->workers);
  jw_json_get_int (reply, "queued", &self->queued);
  jw_json_get_int (reply, "running", &self->running);
  g_clear_pointer (&self->last_ping, json_object_unref);
  self->last_ping = json_object_ref (reply);
  self->query_ok_at = g_get_monotonic_time ();
  check_connected (self);
}

static gboolean
ping (gpointer data)
{
  JwBrokerLink *self = data;
  g_autoptr (JsonObject) cmd = json_object_new ();
  g_autoptr (JsonObject) query = json_object_new ();
  g_autoptr (GError) error = NULL;

  if (!jw_broker_link_command (self, "ping", cmd, PING_TIMEOUT_MS,
                               ping_command_done, self, &error))
    {
      g_debug ("ping command not sent: %s", error->message);
      g_clear_error (&error);
    }
  if (!jw_broker_link_query (self, "ping", query, PING_TIMEOUT_MS,
                             ping_query_done, self, &error))
    g_debug ("ping query not sent: %s", error->message);

  check_connected (self);
  return G_SOURCE_CONTINUE;
}

static gboolean
connect_endpoint (zsock_t *sock, JwConfig *cfg, JwCurve *curve,
                  const char *name, GError **error)
{
  g_autofree char *endpoint = jw_config_endpoint (cfg, name, error);

  if (endpoint == NULL)
    return FALSE;
  return jw_curve_connect (curve, sock, name, endpoint, error);
}

JwBrokerLink *
jw_broker_link_new (JwConfig *cfg, GError **error)
{
  g_autoptr (JwBrokerLink) self = g_new0 (JwBrokerLink, 1);

  self->curve = jw_curve_new (cfg, FALSE, error);
  if (self->curve == NULL)
    return NULL;
  g_snprintf (self->instance, sizeof self->instance, "%06x%06x",
              g_random_int () & 0xffffff, g_random_int () & 0xffffff);
  self->topic = g_strconcat ("~api.", self->instance, NULL);
  self->pending =
      g_hash_table_new_full (g_str_hash, g_str_equal, NULL, pending_free);

  /* ZMQ_IMMEDIATE: with no broker connected a send fails at once (and the
   * client gets a 503) instead of waiting in a queue for a broker that may
   * never come. */
  self->push = jw_zmq_socket (ZMQ_PUSH, SEND_HWM);
  zsock_set_immediate (self->push, 1);
  self->dealer = jw_zmq_socket (ZMQ_DEALER, SEND_HWM);
  zsock_set_immediate (self->dealer, 1);
  self->sub = jw_zmq_socket (ZMQ_SUB, 0);
  zsock_set_subscribe (self->sub, self->topic);

  if (!connect_endpoint (self->push, cfg, self->curve, "commands", error)
      || !connect_endpoint (self->sub, cfg, self->curve, "events", error)
      || !connect_endpoint (self->dealer, cfg, self->curve, "queries", error))
    return NULL;

  self->sub_watch = jw_zsource_add (self->sub, sub_readable, self);
  self->dealer_watch = jw_zsource_add (self->dealer, dealer_readable, self);
  self->ping_timer = g_timeout_add (PING_INTERVAL_MS, ping, self);
  ping (self);
  g_info ("broker link started instance=%s", self->instance);
  return g_steal_pointer (&self);
}

void
jw_broker_link_free (JwBrokerLink *self)
{
  g_autoptr (GError) error = NULL;
  GHashTableIter iter;
  gpointer value;
  GPtrArray *waiting;
  guint i;

  if (self == NULL)
    return;

  /* Fail the waiters outside the iteration: their callbacks may send. */
  g_set_error (&error, G_IO_ERROR, G_IO_ERROR_CANCELLED,
               "the api is shutting down");
  if (self->ping_timer != 0)
    g_source_remove (self->ping_timer);
  self->ping_timer = 0;
  if (self->pending != NULL)
    {
      waiting = g_ptr_array_new_with_free_func (g_free);
      g_hash_table_iter_init (&iter, self->pending);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        g_ptr_array_add (waiting, g_strdup (((Pending *)value)->rid));
      for (i = 0; i < waiting->len; i++)
        complete (self, waiting->pdata[i], NULL, error);
      g_ptr_array_unref (waiting);
      g_hash_table_unref (self->pending);
    }

  if (self->sub_watch != 0)
    g_source_remove (self->sub_watch);
  if (self->dealer_watch != 0)
    g_source_remove (self->dealer_watch);
  zsock_destroy (&self->push);
  zsock_destroy (&self->sub);
  zsock_destroy (&self->dealer);
  g_clear_pointer (&self->curve, jw_curve_free);
  g_free (self->topic);
  g_free (self->epoch);
  g_clear_pointer (&self->last_ping, json_object_unref);
  g_free (self);
}

const char *
jw_broker_link_instance (JwBrokerLink *self)
{
  return self->instance;
}

gboolean
jw_broker_link_connected (JwBrokerLink *self)
{
  gint64 now = g_get_monotonic_time ();

  return self->sub_ok_at != 0 && self->query_ok_at != 0
         && now - self->sub_ok_at < ALIVE_US
         && now - self->query_ok_at < ALIVE_US;
}

guint
jw_broker_link_in_flight (JwBrokerLink *self)
{
  GHashTableIter iter;
  Pending *p;
  guint n = 0;

  g_hash_table_iter_init (&iter, self->pending);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&p))
    if (p->func != ping_command_done && p->func != ping_query_done)
      n++;
  return n;
}

JsonObject *
jw_broker_link_last_ping (JwBrokerLink *self)
{
  return self->last_ping;
}

void
jw_broker_link_counts (JwBrokerLink *self, gint64 *workers, gint64 *queued,
                       gint64 *running)
{
  *workers = self->workers;
  *queued = self->queued;
  *running = self->running;
}
