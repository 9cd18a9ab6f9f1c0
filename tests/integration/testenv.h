/* testenv: the end-to-end test harness. It starts the real daemons (broker,
 * api, pusher, workers) on a fresh runtime directory and loopback ports, and
 * talks to them as a user would: REST, SSE, WebSocket and long-poll. */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

/* One daemon process; restartable with the same command line. */
typedef struct
{
  char *name;     /* "broker", "api", "pusher", "w1" … */
  char *log_path; /* stderr and stdout, appended across restarts */
  GStrv argv;
  GSubprocess *proc; /* NULL while stopped */
  GStrv env;         /* extra "NAME=VALUE" for its next starts, or NULL */
  /* Passed as fd 3 with LISTEN_FDS=1 and LISTEN_PID, as systemd's socket
   * activation does, or NULL. */
  GSocket *listen_socket;
} JwDaemon;

typedef struct
{
  char *dir;           /* runtime dir, also holds the logs */
  char *checksum_root; /* DIR/files, the workers' checksum root */
  /* DIR/ledger.sqlite, the broker's ledger; jw_test_env_set (env,
   * "broker.ledger=memory") before the broker starts chooses the memory
   * store, another path another file. */
  char *ledger_path;
  guint16 api_port;
  guint16 pusher_port;
  char *api_url; /* http://127.0.0.1:PORT */
  char *pusher_url;
  SoupSession *session;
  JwDaemon *broker;
  JwDaemon *api;
  JwDaemon *pusher;
  GPtrArray *workers; /* of JwDaemon */
  GStrv sets;         /* jw_test_env_set settings, for workers added later */
} JwTestEnv;

/* Starts a broker, an api, a pusher and n_workers workers (w1, w2 …), and
 * waits until the api reports all workers and the pusher is healthy.
 * Fails the test when they do not come up in time. When a test fails, the
 * tail of every daemon log is printed; JW_KEEP_DIR=1 in the environment
 * keeps the runtime directory and the full logs. */
JwTestEnv *jw_test_env_start (guint n_workers);
/* The same environment with no daemon started yet: start them with
 * jw_daemon_start, in any order. */
JwTestEnv *jw_test_env_new (guint n_workers);
/* Starts every daemon of env (broker, api, pusher, its workers) and waits
 * as jw_test_env_start does; for an env set up with jw_test_env_set. */
void jw_test_env_run (JwTestEnv *env);
/* SIGTERM to every daemon, each must exit 0 (SIGKILL after a deadline);
 * prints the daemon logs when the test failed; removes the directory. */
void jw_test_env_free (JwTestEnv *env);
/* Prints the tail of every daemon log with g_test_message. */
void jw_test_env_dump_logs (JwTestEnv *env);
/* Waits for api /healthz == 200 with "workers" == n and pusher /healthz ==
 * 200, up to timeout_ms. */
gboolean jw_test_env_wait_ready (JwTestEnv *env, guint n_workers,
                                 guint timeout_ms);
/* Polls GET path on the api until it answers status, up to timeout_ms. */
gboolean jw_wait_api_status (JwTestEnv *env, const char *path, guint status,
                             guint timeout_ms);
/* Waits for api /healthz == 200 with "workers" == n only: the api is
 * connected to the broker again, whatever the pusher does. */
gboolean jw_test_env_wait_api (JwTestEnv *env, guint n_workers,
                               guint timeout_ms);

void jw_daemon_start (JwTestEnv *env, JwDaemon *daemon);
/* Adds NAME=VALUE to the daemon's environment for its next starts. */
void jw_daemon_setenv (JwDaemon *daemon, const char *name, const char *value);
/* Makes the test listen on the daemon's HTTP port (the api's or the
 * pusher's) and pass that socket to the daemon at its next starts, as
 * systemd's socket activation does. The daemon cannot bind the port
 * itself while the test holds it. */
void jw_daemon_pass_listen_socket (JwTestEnv *env, JwDaemon *daemon);
/* SIGKILL, then reap. */
void jw_daemon_kill (JwDaemon *daemon);
/* SIGTERM, then reap; returns the exit status (-1 when it had to be
 * killed, or died of a signal). */
int jw_daemon_stop (JwDaemon *daemon, guint timeout_ms);
/* Waits for a daemon that was sent a signal to exit; reaps it and returns
 * its exit status (-1 when it died of a signal, or had to be killed after
 * timeout_ms). */
int jw_daemon_wait (JwDaemon *daemon, guint timeout_ms);
/* The pid, 0 while stopped. */
int jw_daemon_pid (JwDaemon *daemon);

/* Adds --set SETTING ("SECTION.KEY=VALUE") to the command line of every
 * daemon of env, from their next start on; workers added later get it
 * too. Each daemon reads only its own sections. */
void jw_test_env_set (JwTestEnv *env, const char *setting);
/* Adds one more worker (named w1, w2 … after the others) and starts it. */
JwDaemon *jw_test_env_add_worker (JwTestEnv *env);
/* The same worker, not started yet: jw_daemon_add_set, then
 * jw_daemon_start. */
JwDaemon *jw_test_env_new_worker (JwTestEnv *env);
/* Adds --set SETTING to one daemon's command line from its next start on. */
void jw_daemon_add_set (JwDaemon *d, const char *setting);
/* A loopback TCP port that was free a moment ago. */
guint16 jw_test_pick_port (void);
/* The worker whose log says it started attempt of job, waiting up to
 * timeout_ms for that line; NULL when none did. */
JwDaemon *jw_test_env_find_worker (JwTestEnv *env, const char *job,
                                   gint64 attempt, guint timeout_ms);
/* The broker's answer to a ping on its queries endpoint ({"ok", "epoch",
 * "workers", "queued", "running", "stale_events"}), or NULL after
 * timeout_ms. */
JsonNode *jw_broker_ping (JwTestEnv *env, guint timeout_ms);
/* Writes text as the key file DIR/jobwire.conf and adds --config FILE to
 * the command line of every daemon of env from their next start on
 * (workers added later do not get it). Returns the path. */
char *jw_test_env_use_config (JwTestEnv *env, const char *text);
/* Starts another worker process that is not jobwire-worker (argv, taken),
 * logged and stopped like the others: it counts among env->workers. */
JwDaemon *jw_test_env_add_process (JwTestEnv *env, const char *name,
                                   GStrv argv);

/* An HTTP answer. json is the parsed body when it is strict JSON, else
 * NULL. */
typedef struct
{
  guint status;
  SoupMessageHeaders *headers;
  GBytes *body;
  JsonNode *json;
} JwReply;

void jw_reply_free (JwReply *reply);
/* The body's object, NULL when it is not one. */
JsonObject *jw_reply_object (JwReply *reply);

/* One synchronous request. ctype and body may be NULL; extra_headers is a
 * NULL-terminated list of name, value pairs (may be NULL). */
JwReply *jw_http (JwTestEnv *env, const char *method, const char *url,
                  const char *ctype, GBytes *body,
                  const char *const *extra_headers);
/* POST api_url+path with an application/json body. */
JwReply *jw_api_post_json (JwTestEnv *env, const char *path, const char *json);
JwReply *jw_api_get (JwTestEnv *env, const char *path);
JwReply *jw_pusher_get (JwTestEnv *env, const char *path);

/* Asserts that reply is an error: the status, Content-Type JSON and a body
 * {"error":{"code": code, "message": non-empty}}. code NULL accepts any. */
void jw_assert_error (JwReply *reply, guint status, const char *code);

/* POST /jobs, asserts 202 and a snapshot; returns the job id. */
char *jw_submit (JwTestEnv *env, const char *json);
/* GET /jobs/ID, asserts 200; returns the snapshot. */
JsonNode *jw_get_job (JwTestEnv *env, const char *id);
/* Polls GET /jobs/ID until its state is terminal (or equal to state when
 * state is not NULL); returns the snapshot or NULL after timeout_ms. */
JsonNode *jw_wait_job (JwTestEnv *env, const char *id, const char *state,
                       guint timeout_ms);
const char *jw_job_state (JsonNode *snapshot);

/* One Server-Sent Event. */
typedef struct
{
  char *id;
  char *event;
  char *data;
  JsonNode *json; /* data parsed, NULL when not JSON */
  gint64 seq;     /* json "seq", -1 when missing */
} JwSseEvent;

typedef struct
{
  guint status;
  char *content_type;
  GPtrArray *events; /* of JwSseEvent */
  gboolean ended;    /* the server closed the stream */
} JwSse;

void jw_sse_free (JwSse *sse);
/* GET pusher /jobs/ID/events. last_event_id (may be NULL) goes in the
 * Last-Event-ID header; query (may be NULL) is appended after "?". Reads
 * events until the stream ends, an event with seq >= stop_seq arrives
 * (stop_seq 0: never; the connection is then dropped), or timeout_ms. */
JwSse *jw_sse_read (JwTestEnv *env, const char *id, const char *last_event_id,
                    const char *query, gint64 stop_seq, guint timeout_ms);

/* Parses a whole text/event-stream body (a stream that has ended). */
JwSse *jw_sse_parse (GBytes *body);

/* Asserts that events (JsonNode * of event objects, in order of arrival)
 * are the job's events first_seq, first_seq+1 … with no gap or duplicate,
 * that nothing follows a terminal event, and, when must_end, that the last
 * one is terminal. */
void jw_assert_history (GPtrArray *events, const char *job, gint64 first_seq,
                        gboolean must_end);
/* The JsonNode of each SSE event, for jw_assert_history. */
GPtrArray *jw_sse_nodes (JwSse *sse);

/* A WebSocket client of the pusher's /ws. */
typedef struct
{
  SoupWebsocketConnection *conn;
  GPtrArray *frames; /* JsonNode * of each text frame */
  guint next;        /* frames consumed by jw_ws_next */
  gboolean closed;
  char *error;
} JwWs;

JwWs *jw_ws_connect (JwTestEnv *env);
void jw_ws_send (JwWs *ws, const char *text);
/* The next frame not yet returned, waiting up to timeout_ms for it; NULL
 * on timeout or close. Borrowed. */
JsonObject *jw_ws_next (JwWs *ws, guint timeout_ms);
void jw_ws_free (JwWs *ws);

/* The monotonic time ms milliseconds from now. */
gint64 jw_deadline (guint ms);
/* A new array that owns JsonNode references. */
GPtrArray *jw_node_array_new (void);
/* Runs the default main context for up to ms, for code that waits on an
 * asynchronous condition. */
void jw_iterate (guint ms);
/* Member helpers that fail the test when the member is missing. */
const char *jw_str (JsonObject *obj, const char *member);
gint64 jw_int (JsonObject *obj, const char *member);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwReply, jw_reply_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwSse, jw_sse_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwWs, jw_ws_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (JwTestEnv, jw_test_env_free)

G_END_DECLS
