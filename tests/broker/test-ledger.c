/* The in-memory ledger: put and get, listing order, filter and cursor, and
 * the contiguous seq of appended events. */
#include "ledger.h"

#include "jw-json.h"

typedef struct
{
  JwLedger *ledger;
} Fixture;

static void
fixture_setup (Fixture *fx, gconstpointer data)
{
  fx->ledger = jw_ledger_memory_new ();
}

static void
fixture_teardown (Fixture *fx, gconstpointer data)
{
  g_clear_pointer (&fx->ledger, jw_ledger_free);
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

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn)                                                          \
  g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/broker/ledger/put-get", test_put_get);
  ADD ("/broker/ledger/update", test_update);
  ADD ("/broker/ledger/append-seq", test_append_seq);
  ADD ("/broker/ledger/events-after", test_events_after);
  ADD ("/broker/ledger/list-order-filter", test_list);
  ADD ("/broker/ledger/snapshot-json", test_snapshot_json);
#undef ADD

  return g_test_run ();
}
