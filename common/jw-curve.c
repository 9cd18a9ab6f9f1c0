/* jw-curve: CURVE on tcp:// endpoints, the broker's ZAP handler with its
 * allow-list of client keys, and the directory check of ipc:// endpoints. */
#include "jw-curve.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "jw-zmq.h"
#include "jw-zsource.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define KEY_LEN 32
#define KEY_TEXT_LEN 40
/* A refused key is logged once per this many seconds; the rest are
 * counted. */
#define REFUSAL_LOG_INTERVAL_S 60
/* Keys remembered for that; a hostile peer with ever new keys cannot grow
 * the table beyond it. */
#define REFUSAL_LOG_KEYS 1024

struct _JwCurve
{
  gboolean server;
  gboolean allow_plain;
  gboolean warned_plain;
  zcert_t *cert;        /* this process's, with its secret key; or NULL */
  guint8 *server_key;   /* clients: the broker's public key; or NULL */
  char *clients_dir;    /* server: the allow-list directory; or NULL */
  GHashTable *allowed;  /* public key (Z85) → certificate file name */
  gint64 clients_mtime; /* of clients_dir when allowed was read, in ns */
  GHashTable *refusals; /* public key (Z85) → monotonic µs of its last log */
  zsock_t *zap;
  guint zap_source;
  GPtrArray *monitors; /* clients: Monitor of each CURVE connection */
  guint64 refused;
  guint64 admitted;
};

gboolean
jw_curve_check_ipc_dir (const char *dir, const char *name, GError **error)
{
  struct stat st;

  if (stat (dir, &st) < 0)
    {
      int err = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                   "endpoint %s: cannot use directory %s: %s", name, dir,
                   g_strerror (err));
      return FALSE;
    }
  if (st.st_uid != geteuid ())
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   "endpoint %s: directory %s belongs to uid %u, not to this "
                   "user (uid %u); put ipc endpoints in a directory of the "
                   "service's user",
                   name, dir, (guint)st.st_uid, (guint)geteuid ());
      return FALSE;
    }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   "endpoint %s: directory %s is open to group or others "
                   "(mode %04o); make it 0700 (chmod 0700 %s)",
                   name, dir, (guint)(st.st_mode & 07777), dir);
      return FALSE;
    }
  return TRUE;
}

/* A client's view of the handshakes of one CURVE connection. */
typedef struct
{
  char *name;
  char *endpoint;
  char *key; /* this process's public key, Z85 */
  zsock_t *pipe;
  guint source;
  gboolean server;
  gboolean refused;
  gint64 failed_at; /* monotonic µs of the last protocol failure logged */
} Monitor;

static void
monitor_free (gpointer data)
{
  Monitor *m = data;

  g_clear_handle_id (&m->source, g_source_remove);
  zsock_destroy (&m->pipe);
  g_free (m->name);
  g_free (m->endpoint);
  g_free (m->key);
  g_free (m);
}

/* One event of libzmq's socket monitor: [event u16, value u32][address]. */
static gboolean
on_monitor_event (void *sock, gpointer user_data)
{
  Monitor *m = user_data;
  zmsg_t *msg = zmsg_recv (sock);
  zframe_t *head = msg ? zmsg_first (msg) : NULL;
  gint64 now = g_get_monotonic_time ();
  guint16 event;
  guint32 value;

  if (head == NULL || zframe_size (head) != 6)
    {
      zmsg_destroy (&msg);
      return G_SOURCE_CONTINUE;
    }
  memcpy (&event, zframe_data (head), 2);
  memcpy (&value, zframe_data (head) + 2, 4);
  zmsg_destroy (&msg);
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && m->server)
    {
      /* A client with another broker's public key, or one that does not
       * speak CURVE; libzmq lets it retry, so this is said once a
       * minute. */
      if (m->failed_at == 0
          || now - m->failed_at > REFUSAL_LOG_INTERVAL_S * G_USEC_PER_SEC)
        {
          g_message ("CURVE handshake failed on %s=%s (libzmq error 0x%x): "
                     "a client with another broker's public key, or without "
                     "CURVE",
                     m->name, m->endpoint, (guint)value);
          m->failed_at = now;
        }
      return G_SOURCE_CONTINUE;
    }
  if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
    g_info ("curve handshake succeeded endpoint=%s=%s", m->name, m->endpoint);
  else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && !m->refused)
    {
      /* libzmq never retries a connection whose key was refused. */
      m->refused = TRUE;
      g_message ("the broker refused this process's CURVE key %s on %s=%s "
                 "(status %u): add its public certificate to the broker's "
                 "curve-clients directory, then restart this process",
                 m->key, m->name, m->endpoint, (guint)value);
    }
  else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && m->failed_at == 0)
    {
      /* Retried by libzmq; said once. */
      m->failed_at = now;
      g_message ("CURVE handshake failed on %s=%s (libzmq error 0x%x): is "
                 "curve-server-certificate the broker's public certificate?",
                 m->name, m->endpoint, (guint)value);
    }
  return G_SOURCE_CONTINUE;
}

/* Reports the outcome of sock's handshakes on the main loop: a client's
 * refused key or failed handshake, a server's failed handshakes (a refused
 * key is the ZAP handler's to report). */
static void
watch_handshakes (JwCurve *self, zsock_t *sock, const char *name,
                  const char *endpoint)
{
  static guint counter;
  g_autofree char *addr = g_strdup_printf ("inproc://jw-curve-monitor-%u-%u",
                                           (guint)getpid (), counter++);
  Monitor *m;

  if (zmq_socket_monitor (zsock_resolve (sock), addr,
                          self->server
                              ? ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                              : ZMQ_EVENT_HANDSHAKE_SUCCEEDED
                                    | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                                    | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
      < 0)
    {
      g_warning ("cannot watch the handshakes of %s: %s", name,
                 zmq_strerror (zmq_errno ()));
      return;
    }
  m = g_new0 (Monitor, 1);
  m->name = g_strdup (name);
  m->endpoint = g_strdup (endpoint);
  m->key = g_strdup (zcert_public_txt (self->cert));
  m->server = self->server;
  m->pipe = jw_zmq_socket (ZMQ_PAIR, 0);
  if (zsock_connect (m->pipe, "%s", addr) < 0)
    {
      monitor_free (m);
      return;
    }
  m->source = jw_zsource_add (m->pipe, on_monitor_event, m);
  g_ptr_array_add (self->monitors, m);
}

/* A Z85 key of a certificate into 32 bytes. */
static gboolean
decode_key (const char *text, guint8 *out)
{
  return text != NULL && strlen (text) == KEY_TEXT_LEN
         && zmq_z85_decode (out, text) != NULL;
}

zcert_t *
jw_curve_load_cert (const char *path, const char *setting, gboolean need_secret,
                    GError **error)
{
  guint8 public_key[KEY_LEN], secret_key[KEY_LEN] = { 0 };
  char derived[KEY_TEXT_LEN + 1];
  const char *public_txt, *secret_txt;
  zconfig_t *root;

  if (access (path, R_OK) < 0)
    {
      int err = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                   "cannot read %s %s: %s", setting, path, g_strerror (err));
      return NULL;
    }
  /* The file itself, never its NAME_secret neighbour that zcert_load
   * would prefer: the mode checked is that of the file read. */
  root = zconfig_load (path);
  if (root == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s %s: cannot read it as a certificate", setting, path);
      return NULL;
    }
  public_txt = zconfig_get (root, "curve/public-key", NULL);
  secret_txt = zconfig_get (root, "curve/secret-key", NULL);
  if (!decode_key (public_txt, public_key))
    {
      zconfig_destroy (&root);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s %s: no valid curve public-key", setting, path);
      return NULL;
    }
  if (need_secret
      && (!decode_key (secret_txt, secret_key)
          || zmq_curve_public (derived, secret_txt) < 0
          || strcmp (derived, public_txt) != 0))
    {
      zconfig_destroy (&root);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s %s: no valid curve secret-key matching its public-key "
                   "(a NAME_secret file of jobwire-cert is needed)",
                   setting, path);
      return NULL;
    }
  zconfig_destroy (&root);
  /* Checked after the keys, so that a public certificate given where the
   * secret one belongs is named as such. */
  if (need_secret && !jw_config_check_private_file (path, setting, error))
    return NULL;
  return zcert_new_from (public_key, secret_key);
}

/* Reads every certificate of the allow-list directory into self->allowed;
 * files named *_secret and hidden files are skipped. */
static gboolean
load_clients (JwCurve *self, GError **error)
{
  g_autoptr (GHashTable) allowed =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (GDir) dir = NULL;
  struct stat st;
  const char *entry;

  if (stat (self->clients_dir, &st) < 0 || !S_ISDIR (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY,
                   "curve-clients %s is not a directory", self->clients_dir);
      return FALSE;
    }
  /* Whoever can write there can admit any key. */
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   "curve-clients %s is writable by group or others (mode "
                   "%04o); make it 0755 or 0700",
                   self->clients_dir, (guint)(st.st_mode & 07777));
      return FALSE;
    }
  dir = g_dir_open (self->clients_dir, 0, error);
  if (dir == NULL)
    return FALSE;
  while ((entry = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = NULL;
      g_autoptr (GError) local = NULL;
      zcert_t *cert;

      if (entry[0] == '.' || g_str_has_suffix (entry, "_secret"))
        continue;
      path = g_build_filename (self->clients_dir, entry, NULL);
      cert = jw_curve_load_cert (path, "curve-clients", FALSE, &local);
      if (cert == NULL)
        {
          g_warning ("skipping %s", local->message);
          continue;
        }
      g_hash_table_replace (allowed, g_strdup (zcert_public_txt (cert)),
                            g_strdup (entry));
      zcert_destroy (&cert);
    }
  g_clear_pointer (&self->allowed, g_hash_table_unref);
  self->allowed = g_steal_pointer (&allowed);
  self->clients_mtime =
      st.st_mtim.tv_sec * G_GINT64_CONSTANT (1000000000) + st.st_mtim.tv_nsec;
  g_info ("curve allow-list dir=%s keys=%u", self->clients_dir,
          g_hash_table_size (self->allowed));
  return TRUE;
}

/* Rereads the allow-list when its directory changed (a file added, removed
 * or renamed into place), so that a new worker's key needs no restart. */
static void
refresh_clients (JwCurve *self)
{
  g_autoptr (GError) error = NULL;
  struct stat st;

  if (stat (self->clients_dir, &st) == 0
      && st.st_mtim.tv_sec * G_GINT64_CONSTANT (1000000000) + st.st_mtim.tv_nsec
             == self->clients_mtime)
    return;
  if (!load_clients (self, &error))
    g_warning ("keeping the previous curve allow-list: %s", error->message);
}

static void
note_refusal (JwCurve *self, const char *key, const char *address,
              const char *why)
{
  gint64 now = g_get_monotonic_time ();
  gpointer last = NULL;

  self->refused++;
  if (g_hash_table_lookup_extended (self->refusals, key, NULL, &last)
      && now - *(gint64 *)last < REFUSAL_LOG_INTERVAL_S * G_USEC_PER_SEC)
    {
      g_debug (
          "refused zmq client address=%s key=%s refused=%" G_GUINT64_FORMAT,
          address, key, self->refused);
      return;
    }
  if (g_hash_table_size (self->refusals) >= REFUSAL_LOG_KEYS)
    g_hash_table_remove_all (self->refusals);
  g_hash_table_replace (self->refusals, g_strdup (key),
                        g_memdup2 (&now, sizeof now));
  g_message ("refused zmq client address=%s key=%s: %s "
             "refused=%" G_GUINT64_FORMAT,
             address, key, why, self->refused);
}

/* One ZAP request (RFC 27): version, request id, domain, address, routing
 * id, mechanism, credentials; answered 200 for a CURVE key of the
 * allow-list, 400 for anything else. */
static gboolean
on_zap (void *sock, gpointer user_data)
{
  JwCurve *self = user_data;
  zmsg_t *req = zmsg_recv (sock);
  zmsg_t *rep;
  g_autofree char *version = NULL, *request_id = NULL, *domain = NULL;
  g_autofree char *address = NULL, *mechanism = NULL;
  char key[KEY_TEXT_LEN + 1] = "-";
  const char *name = NULL;
  const char *why = NULL;
  zframe_t *routing, *cred;

  if (req == NULL)
    return G_SOURCE_CONTINUE;
  version = zmsg_popstr (req);
  request_id = zmsg_popstr (req);
  domain = zmsg_popstr (req);
  address = zmsg_popstr (req);
  routing = zmsg_pop (req);
  zframe_destroy (&routing);
  mechanism = zmsg_popstr (req);
  cred = zmsg_pop (req);

  if (g_strcmp0 (mechanism, "CURVE") == 0 && cred != NULL
      && zframe_size (cred) == KEY_LEN)
    zmq_z85_encode (key, zframe_data (cred), KEY_LEN);
  zframe_destroy (&cred);
  zmsg_destroy (&req);

  if (g_strcmp0 (version, "1.0") != 0)
    why = "bad ZAP version";
  else if (g_strcmp0 (mechanism, "CURVE") != 0)
    why = "only CURVE is allowed";
  else if (strcmp (key, "-") == 0)
    why = "no CURVE key";
  else
    {
      refresh_clients (self);
      name = g_hash_table_lookup (self->allowed, key);
      if (name == NULL)
        why = "key not in the allow-list";
    }

  if (why != NULL)
    note_refusal (self, key, address ? address : "-", why);
  else
    {
      self->admitted++;
      g_info ("admitted zmq client address=%s cert=%s", address, name);
    }
  rep = zmsg_new ();
  zmsg_addstr (rep, "1.0");
  zmsg_addstr (rep, request_id ? request_id : "");
  zmsg_addstr (rep, why ? "400" : "200");
  zmsg_addstr (rep, why ? why : "OK");
  zmsg_addstr (rep, name ? name : "");
  zmsg_addmem (rep, NULL, 0);
  if (zmsg_send (&rep, sock) < 0)
    {
      zmsg_destroy (&rep);
      g_warning ("cannot answer a ZAP request: %s",
                 zmq_strerror (zmq_errno ()));
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
start_zap (JwCurve *self, GError **error)
{
  if (self->zap != NULL)
    return TRUE;
  self->zap = jw_zmq_socket (ZMQ_REP, 0);
  if (!jw_zmq_bind (self->zap, ZAP_ENDPOINT, error))
    {
      zsock_destroy (&self->zap);
      return FALSE;
    }
  self->zap_source = jw_zsource_add (self->zap, on_zap, self);
  return TRUE;
}

JwCurve *
jw_curve_new (JwConfig *cfg, gboolean server, GError **error)
{
  g_autoptr (JwCurve) self = g_new0 (JwCurve, 1);
  const char *cert =
      jw_config_get_string (cfg, "security", "curve-certificate", NULL);
  const char *server_cert =
      jw_config_get_string (cfg, "security", "curve-server-certificate", NULL);
  const char *clients =
      jw_config_get_string (cfg, "security", "curve-clients", NULL);

  self->server = server;
  self->allow_plain =
      jw_config_get_bool (cfg, "security", "allow-plain-tcp", FALSE);
  self->refusals =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->monitors = g_ptr_array_new_with_free_func (monitor_free);
  if (cert != NULL && *cert != '\0')
    {
      self->cert = jw_curve_load_cert (cert, "curve-certificate", TRUE, error);
      if (self->cert == NULL)
        return NULL;
    }
  if (!server && server_cert != NULL && *server_cert != '\0')
    {
      zcert_t *c = jw_curve_load_cert (server_cert, "curve-server-certificate",
                                       FALSE, error);

      if (c == NULL)
        return NULL;
      self->server_key = g_memdup2 (zcert_public_key (c), KEY_LEN);
      zcert_destroy (&c);
    }
  if (server && clients != NULL && *clients != '\0')
    {
      self->clients_dir = g_strdup (clients);
      if (!load_clients (self, error))
        return NULL;
    }
  return g_steal_pointer (&self);
}

void
jw_curve_free (JwCurve *self)
{
  if (self == NULL)
    return;
  g_clear_pointer (&self->monitors, g_ptr_array_unref);
  g_clear_handle_id (&self->zap_source, g_source_remove);
  zsock_destroy (&self->zap);
  zcert_destroy (&self->cert);
  g_free (self->server_key);
  g_free (self->clients_dir);
  g_clear_pointer (&self->allowed, g_hash_table_unref);
  g_clear_pointer (&self->refusals, g_hash_table_unref);
  g_free (self);
}

/* What a tcp:// endpoint lacks for CURVE in this role, or NULL. */
static const char *
curve_missing (JwCurve *self)
{
  if (self->cert == NULL)
    return self->server ? "curve-certificate and curve-clients"
                        : "curve-certificate and curve-server-certificate";
  if (self->server && self->clients_dir == NULL)
    return "curve-clients";
  if (!self->server && self->server_key == NULL)
    return "curve-server-certificate";
  return NULL;
}

/* Sets sock up for endpoint; FALSE when it may not be used as it is. */
static gboolean
prepare (JwCurve *self, zsock_t *sock, const char *name, const char *endpoint,
         GError **error)
{
  const char *missing;

  if (g_str_has_prefix (endpoint, "ipc://"))
    {
      const char *path = endpoint + strlen ("ipc://");
      g_autofree char *dir = NULL;

      /* An abstract socket (ipc://@name) has no directory to protect it. */
      if (path[0] == '@')
        {
          g_warning ("endpoint %s=%s is an abstract socket: any process of "
                     "this host can reach it",
                     name, endpoint);
          return TRUE;
        }
      dir = g_path_get_dirname (path);
      return jw_curve_check_ipc_dir (dir, name, error);
    }
  if (!g_str_has_prefix (endpoint, "tcp://"))
    return TRUE;

  missing = curve_missing (self);
  if (missing != NULL)
    {
      if (!self->allow_plain)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                       "endpoint %s=%s is tcp:// without CURVE: set [security] "
                       "%s (see docs/SECURITY.md), or allow-plain-tcp = true "
                       "on a network you trust",
                       name, endpoint, missing);
          return FALSE;
        }
      if (!self->warned_plain)
        g_warning ("endpoint %s=%s is plain tcp:// (allow-plain-tcp = true): "
                   "anyone who reaches it can join the pipeline unencrypted",
                   name, endpoint);
      self->warned_plain = TRUE;
      return TRUE;
    }

  zcert_apply (self->cert, zsock_resolve (sock));
  if (self->server)
    {
      if (!start_zap (self, error))
        return FALSE;
      zsock_set_curve_server (sock, 1);
      /* The domain makes libzmq ask the handler for every handshake. */
      zsock_set_zap_domain (sock, JW_CURVE_ZAP_DOMAIN);
    }
  else
    zsock_set_curve_serverkey_bin (sock, self->server_key);
  return TRUE;
}

gboolean
jw_curve_bind (JwCurve *self, zsock_t *sock, const char *name,
               const char *endpoint, GError **error)
{
  if (!prepare (self, sock, name, endpoint, error))
    return FALSE;
  if (g_str_has_prefix (endpoint, "tcp://") && curve_missing (self) == NULL)
    watch_handshakes (self, sock, name, endpoint);
  return jw_zmq_bind (sock, endpoint, error);
}

gboolean
jw_curve_connect (JwCurve *self, zsock_t *sock, const char *name,
                  const char *endpoint, GError **error)
{
  if (!prepare (self, sock, name, endpoint, error))
    return FALSE;
  if (g_str_has_prefix (endpoint, "tcp://") && curve_missing (self) == NULL)
    watch_handshakes (self, sock, name, endpoint);
  return jw_zmq_connect (sock, endpoint, error);
}

guint64
jw_curve_refused (JwCurve *self)
{
  return self->refused;
}

guint64
jw_curve_admitted (JwCurve *self)
{
  return self->admitted;
}
