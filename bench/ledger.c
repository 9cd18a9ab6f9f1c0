/* bench-ledger: how many events per second the broker records, and how
 * many trivial jobs per second go through it end to end, for each ledger
 * setting. For each setting it starts a real broker on a fresh directory
 * and real workers, submits jobs over the broker's command socket as the
 * api does (sleep, 0 seconds, 1 step: four events each), and waits for
 * every job's terminal event. It also reports how long a submit waits for
 * its confirmation, which is sent only once the job is committed.
 *
 * Usage: bench-ledger [--jobs N] [--workers N] [--window N]
 *                     [--settings off,normal,full,memory] */
#include <czmq.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include "jw-id.h"
#include "jw-zmq.h"

#define TRIVIAL_JOB "{\"seconds\":0,\"steps\":1}"

static int opt_jobs = 5000;
static int opt_workers = 4;
static int opt_window = 200;
static char *opt_settings = NULL;

typedef struct
{
  double seconds;
  guint jobs_done;
  guint64 events;
  double ack_p50_ms, ack_p99_ms;
} Result;

static void
child_setup (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static const char *
exe_path (const char *var, const char *built)
{
  const char *env = g_getenv (var);

  return env != NULL && *env != '\0' ? env : built;
}

static GSubprocess *
spawn (const char *log_path, GError **error, const char *const *argv)
{
  g_autoptr (GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_MERGE);

  g_subprocess_launcher_set_stdout_file_path (launcher, log_path);
  g_subprocess_launcher_unsetenv (launcher, "JOBWIRE_CONFIG");
  g_subprocess_launcher_unsetenv (launcher, "G_MESSAGES_DEBUG");
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  return g_subprocess_launcher_spawnv (launcher, argv, error);
}

static zsock_t *
connect_to (const char *dir, int type, const char *name)
{
  g_autofree char *ep = g_strdup_printf ("ipc://%s/%s", dir, name);
  g_autoptr (GError) error = NULL;
  zsock_t *sock = jw_zmq_socket (type, 0);

  zsock_set_rcvtimeo (sock, 10000);
  if (type == ZMQ_SUB)
    zsock_set_subscribe (sock, "");
  if (!jw_zmq_connect (sock, ep, &error))
    g_error ("%s", error->message);
  return sock;
}

/* Asks the broker for its worker count until it has n, up to 20 s. */
static gboolean
wait_workers (const char *dir, int n)
{
  zsock_t *q = connect_to (dir, ZMQ_DEALER, "queries");
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  gboolean ok = FALSE;

  zsock_set_rcvtimeo (q, 500);
  while (!ok && g_get_monotonic_time () < deadline)
    {
      zmsg_t *reply;
      g_autofree char *want = g_strdup_printf ("\"workers\":%d", n);

      zstr_sendm (q, "ping");
      zstr_send (q, "{\"rid\":\"p\"}");
      reply = zmsg_recv (q);
      if (reply != NULL)
        {
          char *verb = zmsg_popstr (reply);
          char *json = zmsg_popstr (reply);

          ok = json != NULL && strstr (json, want) != NULL;
          zstr_free (&verb);
          zstr_free (&json);
          zmsg_destroy (&reply);
        }
      if (!ok)
        g_usleep (100000);
    }
  zsock_destroy (&q);
  return ok;
}

static int
compare_doubles (gconstpointer a, gconstpointer b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static void
submit (zsock_t *push, GHashTable *sent_at, guint n)
{
  char id[JW_ID_LEN + 1];
  g_autofree char *json = NULL;
  gint64 *t = g_new (gint64, 1);

  jw_id_new (id);
  json = g_strdup_printf ("{\"rid\":\"%s\",\"api\":\"bench\",\"job\":"
                          "{\"id\":\"%s\",\"type\":\"sleep\",\"params\":"
                          "%s}}",
                          id, id, TRIVIAL_JOB);
  *t = g_get_monotonic_time ();
  g_hash_table_insert (sent_at, g_strdup (id), t);
  zstr_sendm (push, "submit");
  zstr_send (push, json);
}

/* Submits the jobs, at most opt_window unconfirmed at a time, and reads
 * events until every job has ended. */
static gboolean
drive (const char *dir, Result *res)
{
  zsock_t *sub = connect_to (dir, ZMQ_SUB, "events");
  zsock_t *push = connect_to (dir, ZMQ_PUSH, "commands");
  g_autoptr (GHashTable) sent_at =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (GArray) acks = g_array_new (FALSE, FALSE, sizeof (double));
  guint submitted = 0, confirmed = 0;
  gint64 start;
  zmsg_t *msg;

  /* The subscription is in place once its marker or a heartbeat comes. */
  msg = zmsg_recv (sub);
  if (msg == NULL)
    return FALSE;
  zmsg_destroy (&msg);

  start = g_get_monotonic_time ();
  while (res->jobs_done < (guint)opt_jobs)
    {
      char *topic, *seq, *type, *json;

      while (submitted < (guint)opt_jobs
             && submitted - confirmed < (guint)opt_window)
        submit (push, sent_at, submitted++);

      msg = zmsg_recv (sub);
      if (msg == NULL)
        {
          g_printerr ("no event for 10 s: %u of %d jobs ended\n",
                      res->jobs_done, opt_jobs);
          break;
        }
      topic = zmsg_popstr (msg);
      seq = zmsg_popstr (msg);
      type = zmsg_popstr (msg);
      json = zmsg_popstr (msg);
      if (topic && type && g_str_equal (type, "reply") && json)
        {
          /* {"rid":"ID",...}: the rid is the job id. */
          const char *rid = strstr (json, "\"rid\":\"");
          gint64 *t = NULL;

          if (rid != NULL && strlen (rid) > 7 + JW_ID_LEN)
            {
              g_autofree char *key = g_strndup (rid + 7, JW_ID_LEN);

              t = g_hash_table_lookup (sent_at, key);
            }
          if (t != NULL)
            {
              double ms = (g_get_monotonic_time () - *t) / 1000.0;

              g_array_append_val (acks, ms);
            }
          confirmed++;
        }
      else if (topic && strlen (topic) == JW_ID_LEN && type)
        {
          res->events++;
          if (g_str_equal (type, "succeeded") || g_str_equal (type, "failed")
              || g_str_equal (type, "cancelled"))
            res->jobs_done++;
        }
      zstr_free (&topic);
      zstr_free (&seq);
      zstr_free (&type);
      zstr_free (&json);
      zmsg_destroy (&msg);
    }
  res->seconds = (g_get_monotonic_time () - start) / (double)G_USEC_PER_SEC;

  g_array_sort (acks, compare_doubles);
  if (acks->len > 0)
    {
      res->ack_p50_ms = g_array_index (acks, double, acks->len / 2);
      res->ack_p99_ms = g_array_index (acks, double, acks->len * 99 / 100);
    }
  zsock_destroy (&sub);
  zsock_destroy (&push);
  return res->jobs_done == (guint)opt_jobs;
}

static void
stop (GSubprocess *proc)
{
  if (proc == NULL)
    return;
  g_subprocess_send_signal (proc, SIGTERM);
  g_subprocess_wait (proc, NULL, NULL);
}

static void
remove_dir (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      g_unlink (child);
    }
  g_rmdir (path);
}

/* One run: setting is off, normal or full (SQLite) or memory. */
static gboolean
run (const char *setting, Result *res)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("jwb-XXXXXX", &error);
  g_autofree char *ledger = NULL, *sync = NULL, *log = NULL;
  g_autoptr (GPtrArray) workers =
      g_ptr_array_new_with_free_func (g_object_unref);
  GSubprocess *broker;
  gboolean ok;
  int i;

  if (dir == NULL)
    g_error ("%s", error->message);
  if (g_str_equal (setting, "memory"))
    ledger = g_strdup ("broker.ledger=memory");
  else
    ledger = g_strdup_printf ("broker.ledger=%s/ledger.sqlite", dir);
  sync = g_strdup_printf ("broker.synchronous=%s",
                          g_str_equal (setting, "memory") ? "normal" : setting);
  log = g_build_filename (dir, "broker.log", NULL);
  {
    const char *argv[] = { exe_path ("JW_BROKER", JW_BROKER_EXE),
                           "--runtime-dir",
                           dir,
                           "--set",
                           ledger,
                           "--set",
                           sync,
                           NULL };

    broker = spawn (log, &error, argv);
  }
  if (broker == NULL)
    g_error ("%s", error->message);
  for (i = 0; i < opt_workers; i++)
    {
      g_autofree char *name = g_strdup_printf ("b%d", i + 1);
      g_autofree char *wlog = g_strdup_printf ("%s/%s.log", dir, name);
      const char *argv[] = { exe_path ("JW_WORKER", JW_WORKER_EXE),
                             "--runtime-dir",
                             dir,
                             "--name",
                             name,
                             NULL };
      GSubprocess *w = spawn (wlog, &error, argv);

      if (w == NULL)
        g_error ("%s", error->message);
      g_ptr_array_add (workers, w);
    }

  ok = wait_workers (dir, opt_workers) && drive (dir, res);

  for (i = 0; i < (int)workers->len; i++)
    stop (workers->pdata[i]);
  stop (broker);
  g_object_unref (broker);
  if (!ok)
    g_printerr ("run %s failed; logs kept in %s\n", setting, dir);
  else
    remove_dir (dir);
  return ok;
}

int
main (int argc, char **argv)
{
  static const GOptionEntry entries[] = {
    { "jobs", 'n', 0, G_OPTION_ARG_INT, &opt_jobs, "Jobs per run (5000)", "N" },
    { "workers", 'w', 0, G_OPTION_ARG_INT, &opt_workers, "Workers (4)", "N" },
    { "window", 0, 0, G_OPTION_ARG_INT, &opt_window,
      "Submits waiting for confirmation at most (200)", "N" },
    { "settings", 's', 0, G_OPTION_ARG_STRING, &opt_settings,
      "Runs, comma-separated (off,normal,full)", "LIST" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- ledger benchmark");
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) settings = NULL;
  int failed = 0;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("bench-ledger: %s\n", error->message);
      return 2;
    }
  if (opt_jobs < 1 || opt_workers < 1 || opt_window < 1)
    {
      g_printerr ("bench-ledger: --jobs, --workers and --window must be "
                  ">= 1\n");
      return 2;
    }
  jw_zmq_init ();
  settings =
      g_strsplit (opt_settings ? opt_settings : "off,normal,full", ",", -1);

  g_print ("%d trivial jobs, %d workers, window %d\n", opt_jobs, opt_workers,
           opt_window);
  g_print ("%-8s %10s %12s %10s %12s %12s\n", "ledger", "seconds", "events/s",
           "jobs/s", "ack p50 ms", "ack p99 ms");
  for (guint i = 0; settings[i] != NULL; i++)
    {
      Result res = { 0 };

      if (!g_strv_contains (
              (const char *const[]){ "off", "normal", "full", "memory", NULL },
              settings[i]))
        {
          g_printerr ("bench-ledger: unknown setting %s\n", settings[i]);
          return 2;
        }
      if (!run (settings[i], &res))
        failed++;
      g_print ("%-8s %10.2f %12.0f %10.0f %12.2f %12.2f\n", settings[i],
               res.seconds, res.events / res.seconds,
               res.jobs_done / res.seconds, res.ack_p50_ms, res.ack_p99_ms);
    }
  return failed ? 1 : 0;
}
