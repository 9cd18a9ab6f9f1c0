/* The ledger stores, each through the same cases: put and get, listing
 * order, filter and cursor, the contiguous seq of appended events, lookup
 * by idempotency key, unfinished jobs, retention and job types. The SQLite store also
 * keeps what was flushed across a reopen and a crash, and loses what was
 * not. */
#include "ledger.h"

#include <glib/gstdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jw-json.h"

typedef struct
{
  JwLedger *ledger;
  char *dir;  /* sqlite: the temporary directory */
  char *path; /* sqlite: the file */
} Fixture;

static gboolean
is_sqlite (gconstpointer data)
{
  return g_str_equal (data, "sqlite");
}

static JwLedger *
open_sqlite (Fixture *fx)
{
  g_autoptr (GError) error = NULL;
  JwLedger *ledger =
      jw_ledger_sqlite_new (fx->path, JW_LEDGER_SYNC_NORMAL, &error);

  g_assert_no_error (error);
  return ledger;
}

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  if (!is_sqlite (data))
    {
      fx->ledger = jw_ledger_memory_new ();
      return;
    }
  fx->dir = g_dir_make_tmp ("jw-ledger-XXXXXX", &error);
  g_assert_no_error (error);
  /* A directory that does not exist yet: the store creates it. */
  fx->path = g_build_filename (fx->dir, "state", "ledger.sqlite", NULL);
  fx->ledger = open_sqlite (fx);
}

static void
remove_dir (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        remove_dir (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
  g_clear_pointer (&fx->ledger, jw_ledger_free);
  if (fx->dir != NULL)
    remove_dir (fx->dir);
  g_free (fx->dir);
  g_free (fx->path);
}

static JsonNode *
parse (const char *json)
{
  g_autoptr (GError) error = NULL;
  JsonNode *node = jw_json_parse (json, strlen (json), 16, &error);

  g_assert_no_error (error);
  return node;
}

/* A job with an id whose time part is ms, so that order is known. */
static JwJob *
make_job (gint64 ms)
{
  char id[JW_ID_LEN + 1];
  g_autoptr (JsonNode) params = parse ("{\"n\":1}");
  const char *alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  int i;

  jw_id_new (id);
  for (i = 9; i >= 0; i--, ms >>= 5)
    id[i] = alphabet[ms & 31];
  g_assert_true (jw_id_valid (id, -1));
  return jw_job_new (id, "sleep", params);
}

static gint64
append (JwLedger *ledger, JwJob *job, const char *type)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *json = NULL;
  g_autoptr (GBytes) bytes = NULL;
  gint64 seq;

  job->seq++;
  json = g_strdup_printf ("{\"job\":\"%s\",\"seq\":%" G_GINT64_FORMAT
                          ",\"type\":\"%s\"}",
                          job->id, job->seq, type);
  bytes = g_bytes_new (json, strlen (json));
  seq = jw_ledger_append (ledger, job, type, bytes, &error);
  g_assert_no_error (error);
  return seq;
}

static void
test_put_get (Fixture *fx, gconstpointer data)
{
  g_autoptr (JwJob) job = make_job (1000);
  g_autoptr (JwJob) got = NULL;
  g_autoptr (JwJob) missing = make_job (2000);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) same = parse ("{ \"n\" : 1 }");
  g_autoptr (JsonNode) other = parse ("{\"n\":2}");

  job->created_ms = 1000;
  job->idempotency_key = g_strdup ("k1");
  g_assert_true (jw_ledger_put (fx->ledger, job, &error));
  g_assert_no_error (error);

  g_assert_false (jw_ledger_put (fx->ledger, job, &error));
  g_assert_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_EXISTS);
  g_clear_error (&error);

  got = jw_ledger_get (fx->ledger, job->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->id, ==, job->id);
  g_assert_cmpstr (got->type, ==, "sleep");
  g_assert_cmpint (got->state, ==, JW_STATE_QUEUED);
  g_assert_cmpint (got->created_ms, ==, 1000);
  g_assert_cmpint (got->seq, ==, 0);
  g_assert_cmpstr (got->idempotency_key, ==, "k1");
  g_assert_true (jw_job_same_body (got, "sleep", same));
  g_assert_false (jw_job_same_body (got, "sleep", other));
  g_assert_false (jw_job_same_body (got, "checksum", same));

  g_assert_null (jw_ledger_get (fx->ledger, missing->id, &error));
  g_assert_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_NOT_FOUND);
}

static void
test_update (Fixture *fx, gconstpointer data)
{
  g_autoptr (JwJob) job = make_job (1000);
  g_autoptr (JwJob) got = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_true (jw_ledger_put (fx->ledger, job, &error));
  job->state = JW_STATE_RUNNING;
  job->attempt = 1;
  job->started_ms = 1500;
  job->progress = parse ("{\"percent\":50}");
  g_assert_true (jw_ledger_update (fx->ledger, job, &error));
  g_assert_no_error (error);

  got = jw_ledger_get (fx->ledger, job->id, &error);
  g_assert_cmpint (got->state, ==, JW_STATE_RUNNING);
  g_assert_cmpint (got->attempt, ==, 1);
  g_assert_cmpint (got->started_ms, ==, 1500);
  g_assert_nonnull (got->progress);
  g_assert_true (json_node_equal (got->progress, job->progress));
}

static void
test_append_seq (Fixture *fx, gconstpointer data)
{
  g_autoptr (JwJob) job = make_job (1000);
  g_autoptr (JwJob) got = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = g_bytes_new_static ("{}", 2);

  g_assert_true (jw_ledger_put (fx->ledger, job, &error));
  g_assert_cmpint (append (fx->ledger, job, "queued"), ==, 1);
  g_assert_cmpint (append (fx->ledger, job, "started"), ==, 2);
  g_assert_cmpint (append (fx->ledger, job, "progress"), ==, 3);

  /* A seq that skips or repeats is refused and changes nothing. */
  job->seq = 5;
  g_assert_cmpint (
      jw_ledger_append (fx->ledger, job, "progress", bytes, &error), ==, 0);
  g_assert_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_SEQ);
  g_clear_error (&error);
  job->seq = 3;
  g_assert_cmpint (
      jw_ledger_append (fx->ledger, job, "progress", bytes, &error), ==, 0);
  g_assert_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_SEQ);
  g_clear_error (&error);

  got = jw_ledger_get (fx->ledger, job->id, &error);
  g_assert_cmpint (got->seq, ==, 3);

  /* update keeps the seq its events say. */
  job->seq = 42;
  g_assert_true (jw_ledger_update (fx->ledger, job, &error));
  g_clear_pointer (&got, jw_job_free);
  got = jw_ledger_get (fx->ledger, job->id, &error);
  g_assert_cmpint (got->seq, ==, 3);
}

static void
test_events_after (Fixture *fx, gconstpointer data)
{
  g_autoptr (JwJob) job = make_job (1000);
  g_autoptr (JwJob) missing = make_job (3000);
  g_autoptr (GPtrArray) events = NULL;
  g_autoptr (GError) error = NULL;
  gboolean more = TRUE;
  int i;

  g_assert_true (jw_ledger_put (fx->ledger, job, &error));
  append (fx->ledger, job, "queued");
  append (fx->ledger, job, "started");
  for (i = 0; i < 5; i++)
    append (fx->ledger, job, "progress");
  append (fx->ledger, job, "succeeded");

  events = jw_ledger_events (fx->ledger, job->id, 0, 100, &more, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (events->len, ==, 8);
  g_assert_false (more);
  for (i = 0; i < 8; i++)
    {
      JwEvent *e = g_ptr_array_index (events, i);
      g_autofree char *want = g_strdup_printf ("\"seq\":%d,", i + 1);
      g_autofree char *json = g_strndup (g_bytes_get_data (e->json, NULL),
                                         g_bytes_get_size (e->json));

      g_assert_cmpint (e->seq, ==, i + 1);
      g_assert_nonnull (strstr (json, want));
    }
  g_clear_pointer (&events, g_ptr_array_unref);

  events = jw_ledger_events (fx->ledger, job->id, 2, 3, &more, &error);
  g_assert_cmpuint (events->len, ==, 3);
  g_assert_true (more);
  g_assert_cmpint (((JwEvent *)events->pdata[0])->seq, ==, 3);
  g_assert_cmpstr (((JwEvent *)events->pdata[0])->type, ==, "progress");
  g_assert_cmpint (((JwEvent *)events->pdata[2])->seq, ==, 5);
  g_clear_pointer (&events, g_ptr_array_unref);

  events = jw_ledger_events (fx->ledger, job->id, 7, 3, &more, &error);
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_false (more);
  g_assert_cmpstr (((JwEvent *)events->pdata[0])->type, ==, "succeeded");
  g_clear_pointer (&events, g_ptr_array_unref);

  events = jw_ledger_events (fx->ledger, job->id, 8, 3, &more, &error);
  g_assert_cmpuint (events->len, ==, 0);
  g_clear_pointer (&events, g_ptr_array_unref);
  events = jw_ledger_events (fx->ledger, job->id, 1000, 3, &more, &error);
  g_assert_cmpuint (events->len, ==, 0);
  g_assert_false (more);
  g_clear_pointer (&events, g_ptr_array_unref);

  events = jw_ledger_events (fx->ledger, missing->id, 0, 3, &more, &error);
  g_assert_null (events);
  g_assert_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_NOT_FOUND);
}

static void
test_list (Fixture *fx, gconstpointer data)
{
  g_autoptr (GPtrArray) made =
      g_ptr_array_new_with_free_func ((GDestroyNotify)jw_job_free);
  g_autoptr (GPtrArray) jobs = NULL;
  g_autoptr (GError) error = NULL;
  JwState running = JW_STATE_RUNNING;
  int i;

  /* Put out of order; ten jobs, every third one running. */
  for (i = 0; i < 10; i++)
    {
      JwJob *job = make_job (1000 + ((i * 7) % 10) * 10);

      if (((i * 7) % 10) % 3 == 0)
        job->state = JW_STATE_RUNNING;
      g_assert_true (jw_ledger_put (fx->ledger, job, &error));
      g_ptr_array_add (made, job);
    }

  jobs = jw_ledger_list (fx->ledger, NULL, NULL, 100, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (jobs->len, ==, 10);
  for (i = 1; i < 10; i++)
    g_assert_cmpstr (((JwJob *)jobs->pdata[i - 1])->id, >,
                     ((JwJob *)jobs->pdata[i])->id);
  g_clear_pointer (&jobs, g_ptr_array_unref);

  jobs = jw_ledger_list (fx->ledger, NULL, NULL, 3, &error);
  g_assert_cmpuint (jobs->len, ==, 3);
  {
    /* The next page starts right after the last one seen. */
    g_autofree char *cursor = g_strdup (((JwJob *)jobs->pdata[2])->id);
    g_autoptr (GPtrArray) page =
        jw_ledger_list (fx->ledger, NULL, cursor, 100, &error);
    g_assert_cmpuint (page->len, ==, 7);
    g_assert_cmpstr (((JwJob *)page->pdata[0])->id, <, cursor);
  }
  g_clear_pointer (&jobs, g_ptr_array_unref);

  /* Times 1000, 1030, 1060, 1090 are running: newest first. */
  jobs = jw_ledger_list (fx->ledger, &running, NULL, 100, &error);
  g_assert_cmpuint (jobs->len, ==, 4);
  for (i = 0; i < 4; i++)
    g_assert_cmpint (((JwJob *)jobs->pdata[i])->state, ==, JW_STATE_RUNNING);
  for (i = 1; i < 4; i++)
    g_assert_cmpstr (((JwJob *)jobs->pdata[i - 1])->id, >,
                     ((JwJob *)jobs->pdata[i])->id);
  g_clear_pointer (&jobs, g_ptr_array_unref);

  jobs = jw_ledger_list (fx->ledger, &running, NULL, 2, &error);
  g_assert_cmpuint (jobs->len, ==, 2);
}

static void
test_snapshot_json (Fixture *fx, gconstpointer data)
{
  g_autoptr (JwJob) job = make_job (1000);
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *json = NULL;
  g_autofree char *prefix = NULL;

  job->created_ms = 1000;
  job->seq = 1;
  node = jw_job_to_node (job);
  json = jw_json_to_string (node, NULL);
  prefix = g_strdup_printf ("{\"id\":\"%s\",\"type\":\"sleep\","
                            "\"state\":\"queued\",\"params\":{\"n\":1},"
                            "\"attempt\":0,\"progress\":null,"
                            "\"result\":null,\"error\":null,"
                            "\"created_at\":\"1970-01-01T00:00:01.000Z\","
                            "\"started_at\":null,\"finished_at\":null,"
                            "\"seq\":1,\"cancel_requested\":false}",
                            job->id);
  g_assert_cmpstr (json, ==, prefix);
}

static void
test_lookup_key (Fixture *fx, gconstpointer data)
{
  g_autoptr (JwJob) job = make_job (1000);
  g_autoptr (JwJob) other = make_job (2000);
  g_autoptr (JwJob) dup = make_job (3000);
  g_autoptr (JwJob) got = NULL;
  g_autoptr (GError) error = NULL;

  job->idempotency_key = g_strdup ("order-7");
  g_assert_true (jw_ledger_put (fx->ledger, job, &error));
  g_assert_true (jw_ledger_put (fx->ledger, other, &error));

  got = jw_ledger_lookup_key (fx->ledger, "order-7", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->id, ==, job->id);
  g_assert_null (jw_ledger_lookup_key (fx->ledger, "order-8", &error));
  g_assert_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* A key names one job only. */
  dup->idempotency_key = g_strdup ("order-7");
  g_assert_false (jw_ledger_put (fx->ledger, dup, &error));
  g_assert_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_EXISTS);
}

static void
test_unfinished (Fixture *fx, gconstpointer data)
{
  JwState states[] = {
    JW_STATE_SUCCEEDED, JW_STATE_RUNNING, JW_STATE_QUEUED,
    JW_STATE_FAILED,    JW_STATE_QUEUED,  JW_STATE_CANCELLED
  };
  g_autoptr (GPtrArray) jobs = NULL;
  g_autoptr (GError) error = NULL;
  guint i;

  /* Put newest first: the answer is in creation order all the same. */
  for (i = G_N_ELEMENTS (states); i > 0; i--)
    {
      g_autoptr (JwJob) job = make_job (1000 + i);

      job->state = states[i - 1];
      g_assert_true (jw_ledger_put (fx->ledger, job, &error));
    }
  jobs = jw_ledger_unfinished (fx->ledger, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (jobs->len, ==, 3);
  g_assert_cmpint (((JwJob *)jobs->pdata[0])->state, ==, JW_STATE_RUNNING);
  g_assert_cmpint (((JwJob *)jobs->pdata[1])->state, ==, JW_STATE_QUEUED);
  g_assert_cmpint (((JwJob *)jobs->pdata[2])->state, ==, JW_STATE_QUEUED);
  for (i = 1; i < jobs->len; i++)
    g_assert_cmpstr (((JwJob *)jobs->pdata[i - 1])->id, <,
                     ((JwJob *)jobs->pdata[i])->id);
}

static void
test_expire (Fixture *fx, gconstpointer data)
{
  g_autoptr (GPtrArray) made =
      g_ptr_array_new_with_free_func ((GDestroyNotify)jw_job_free);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) left = NULL;
  guint i;

  /* Ten finished at 100, 200 … 1000; one still running; each with events. */
  for (i = 0; i < 11; i++)
    {
      JwJob *job = make_job (1000 + i);

      job->idempotency_key = g_strdup_printf ("key-%u", i);
      g_assert_true (jw_ledger_put (fx->ledger, job, &error));
      append (fx->ledger, job, "queued");
      if (i < 10)
        {
          job->state = JW_STATE_SUCCEEDED;
          job->finished_ms = 100 * (i + 1);
          append (fx->ledger, job, "succeeded");
        }
      g_ptr_array_add (made, job);
    }

  /* Before 550: the five that finished at 100 … 500, in batches of two. */
  g_assert_cmpint (jw_ledger_expire (fx->ledger, 550, 2, &error), ==, 2);
  g_assert_cmpint (jw_ledger_expire (fx->ledger, 550, 2, &error), ==, 2);
  g_assert_cmpint (jw_ledger_expire (fx->ledger, 550, 2, &error), ==, 1);
  g_assert_cmpint (jw_ledger_expire (fx->ledger, 550, 2, &error), ==, 0);
  g_assert_no_error (error);

  for (i = 0; i < 11; i++)
    {
      JwJob *job = made->pdata[i];
      g_autoptr (JwJob) got = jw_ledger_get (fx->ledger, job->id, NULL);
      g_autoptr (GPtrArray) events =
          jw_ledger_events (fx->ledger, job->id, 0, 10, NULL, NULL);
      g_autoptr (JwJob) by_key =
          jw_ledger_lookup_key (fx->ledger, job->idempotency_key, NULL);

      if (i < 5)
        {
          g_assert_null (got);
          g_assert_null (events);
          g_assert_null (by_key);
        }
      else
        {
          g_assert_nonnull (got);
          g_assert_cmpuint (events->len, ==, i < 10 ? 2 : 1);
          g_assert_nonnull (by_key);
        }
    }

  /* The running one never goes, however old. */
  g_assert_cmpint (jw_ledger_expire (fx->ledger, G_MAXINT64, 100, &error), ==,
                   5);
  left = jw_ledger_list (fx->ledger, NULL, NULL, 100, &error);
  g_assert_cmpuint (left->len, ==, 1);
  g_assert_cmpint (((JwJob *)left->pdata[0])->state, ==, JW_STATE_QUEUED);
}

static int
by_name (gconstpointer a, gconstpointer b, gpointer user_data)
{
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

/* The types a store recorded, as "name=description" lines sorted by name,
 * each description compact JSON. */
static char *
types_text (JwLedger *ledger)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) types = jw_ledger_load_types (ledger, &error);
  g_autofree const char **names = NULL;
  g_autoptr (GString) text = g_string_new (NULL);
  guint n;

  g_assert_no_error (error);
  g_assert_nonnull (types);
  names = (const char **)g_hash_table_get_keys_as_array (types, &n);
  g_qsort_with_data (names, n, sizeof *names, by_name, NULL);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *json =
          json_to_string (g_hash_table_lookup (types, names[i]), FALSE);

      g_string_append_printf (text, "%s=%s\n", names[i], json);
    }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

/* Announced types: saved, replaced by name, loaded whole; the SQLite
 * store keeps the flushed ones across a reopen. */
static void
test_types (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) resize = parse (
      "{\"name\":\"resize\",\"description\":\"scales\",\"params\":"
      "[{\"name\":\"path\",\"type\":\"string\",\"required\":true}]}");
  g_autoptr (JsonNode) resize2 =
      parse ("{\"name\":\"resize\",\"description\":\"scales h\u00e9\"}");
  g_autoptr (JsonNode) bare = parse ("{\"name\":\"echo\"}");
  g_autofree char *before = NULL, *after = NULL;
  const char *expected =
      "echo={\"name\":\"echo\"}\n"
      "resize={\"name\":\"resize\",\"description\":\"scales h\u00e9\"}\n";

  before = types_text (fx->ledger);
  g_assert_cmpstr (before, ==, "");

  g_assert_true (jw_ledger_save_type (fx->ledger, "resize", resize, &error));
  g_assert_no_error (error);
  g_assert_true (jw_ledger_save_type (fx->ledger, "echo", bare, &error));
  g_assert_true (jw_ledger_save_type (fx->ledger, "resize", resize2, &error));
  g_assert_no_error (error);
  g_clear_pointer (&before, g_free);
  before = types_text (fx->ledger);
  g_assert_cmpstr (before, ==, expected);

  if (!is_sqlite (data))
    return;

  /* The saves wait in the batch like any other write. */
  g_assert_cmpuint (jw_ledger_pending (fx->ledger), ==, 3);
  g_assert_true (jw_ledger_flush (fx->ledger, &error));
  g_assert_no_error (error);
  g_clear_pointer (&fx->ledger, jw_ledger_free);
  fx->ledger = open_sqlite (fx);
  after = types_text (fx->ledger);
  g_assert_cmpstr (after, ==, expected);
}

/* Only the SQLite store: a reopen finds everything, seq included. */
static void
test_reopen (Fixture *fx, gconstpointer data)
{
  g_autoptr (JwJob) job = make_job (1000);
  g_autoptr (JwJob) got = NULL;
  g_autoptr (GPtrArray) events = NULL;
  g_autoptr (GError) error = NULL;

  job->idempotency_key = g_strdup ("k");
  job->created_ms = 1000;
  g_assert_true (jw_ledger_put (fx->ledger, job, &error));
  append (fx->ledger, job, "queued");
  job->state = JW_STATE_RUNNING;
  job->attempt = 1;
  job->progress = parse ("{\"percent\":40,\"message\":\"h\u00e9\"}");
  append (fx->ledger, job, "progress");
  g_assert_cmpuint (jw_ledger_pending (fx->ledger), ==, 3);
  g_assert_true (jw_ledger_flush (fx->ledger, &error));
  g_assert_cmpuint (jw_ledger_pending (fx->ledger), ==, 0);

  /* A second store on the same file is refused while the first holds it. */
  g_assert_null (jw_ledger_sqlite_new (fx->path, JW_LEDGER_SYNC_OFF, &error));
  g_assert_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "in use"));
  g_clear_error (&error);

  g_clear_pointer (&fx->ledger, jw_ledger_free);
  fx->ledger = open_sqlite (fx);
  got = jw_ledger_get (fx->ledger, job->id, &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->seq, ==, 2);
  g_assert_cmpint (got->state, ==, JW_STATE_RUNNING);
  g_assert_cmpint (got->attempt, ==, 1);
  g_assert_cmpint (got->created_ms, ==, 1000);
  g_assert_cmpstr (got->idempotency_key, ==, "k");
  g_assert_true (json_node_equal (got->progress, job->progress));
  events = jw_ledger_events (fx->ledger, job->id, 0, 10, NULL, &error);
  g_assert_cmpuint (events->len, ==, 2);
  g_assert_cmpstr (((JwEvent *)events->pdata[1])->type, ==, "progress");

  /* seq continues where it stopped. */
  g_assert_cmpint (append (fx->ledger, got, "progress"), ==, 3);
}

/* Only the SQLite store: a process that dies keeps what it flushed and
 * loses the rest. */
static void
test_crash (Fixture *fx, gconstpointer data)
{
  g_autoptr (JwJob) kept = make_job (1000);
  g_autoptr (JwJob) lost = make_job (2000);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) events = NULL;
  g_autoptr (JwJob) got = NULL;
  int status;
  pid_t pid;

  g_clear_pointer (&fx->ledger, jw_ledger_free);
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      JwLedger *ledger =
          jw_ledger_sqlite_new (fx->path, JW_LEDGER_SYNC_NORMAL, NULL);

      if (ledger == NULL || !jw_ledger_put (ledger, kept, NULL))
        _exit (1);
      append (ledger, kept, "queued");
      if (!jw_ledger_flush (ledger, NULL))
        _exit (1);
      append (ledger, kept, "started");
      if (!jw_ledger_put (ledger, lost, NULL))
        _exit (1);
      /* Gone without a flush, as after kill -9. */
      _exit (0);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);

  fx->ledger = open_sqlite (fx);
  got = jw_ledger_get (fx->ledger, kept->id, &error);
  g_assert_no_error (error);
  g_assert_cmpint (got->seq, ==, 1);
  events = jw_ledger_events (fx->ledger, kept->id, 0, 10, NULL, &error);
  g_assert_cmpuint (events->len, ==, 1);
  g_assert_null (jw_ledger_get (fx->ledger, lost->id, &error));
  g_assert_error (error, JW_LEDGER_ERROR, JW_LEDGER_ERROR_NOT_FOUND);
}

int
main (int argc, char **argv)
{
  static const char *const stores[] = { "memory", "sqlite" };
  guint i;

  g_test_init (&argc, &argv, NULL);

  for (i = 0; i < G_N_ELEMENTS (stores); i++)
    {
#define ADD(name, fn)                                                          \
  do                                                                           \
    {                                                                          \
      g_autofree char *path =                                                  \
          g_strdup_printf ("/broker/ledger/%s/%s", stores[i], name);           \
      g_test_add (path, Fixture, stores[i], fixture_setup, fn,                 \
                  fixture_teardown);                                           \
    }                                                                          \
  while (0)
      ADD ("put-get", test_put_get);
      ADD ("update", test_update);
      ADD ("append-seq", test_append_seq);
      ADD ("events-after", test_events_after);
      ADD ("list-order-filter", test_list);
      ADD ("snapshot-json", test_snapshot_json);
      ADD ("lookup-key", test_lookup_key);
      ADD ("unfinished", test_unfinished);
      ADD ("expire", test_expire);
      ADD ("types", test_types);
      if (is_sqlite (stores[i]))
        {
          ADD ("reopen", test_reopen);
          ADD ("crash-keeps-flushed", test_crash);
        }
#undef ADD
    }

  return g_test_run ();
}
