/* handler-sleep: the built-in `sleep` job type, for tests and demos. It
 * waits `seconds` in `steps` equal steps, reporting each, and fails on
 * step `fail_at` when asked to. */
#include "handler.h"

#include "jw-json.h"

struct _JwJobRun
{
  JwEmitter emitter;
  double seconds;
  gint64 steps;
  gint64 fail_at; /* 0: never */
  gint64 done;
  gint64 started_us; /* monotonic */
  guint timer;
};

static gboolean step (gpointer data);

/* Steps are timed from the start, so that rounding does not add up. */
static void
schedule_next (JwJobRun *run)
{
  gint64 due_us =
      run->started_us
      + (gint64)(run->seconds * G_USEC_PER_SEC * (run->done + 1) / run->steps);
  gint64 wait_us = due_us - g_get_monotonic_time ();

  run->timer =
      g_timeout_add (wait_us > 0 ? (guint)(wait_us / 1000) : 0, step, run);
}

static gboolean
step (gpointer data)
{
  JwJobRun *run = data;
  g_autofree char *message = NULL;
  g_autoptr (GError) error = NULL;
  JsonObject *result;

  run->timer = 0;
  run->done++;

  if (run->done == run->fail_at)
    {
      g_set_error (&error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_STEP_FAILED,
                   "failed at step %" G_GINT64_FORMAT " as asked", run->done);
      run->emitter.failed (run->emitter.ctx, error);
      return G_SOURCE_REMOVE;
    }

  message = g_strdup_printf ("step %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT,
                             run->done, run->steps);
  run->emitter.progress (run->emitter.ctx, run->done, run->steps,
                         100.0 * run->done / run->steps, message);

  if (run->done < run->steps)
    {
      schedule_next (run);
      return G_SOURCE_REMOVE;
    }

  result = json_object_new ();
  json_object_set_int_member (result, "steps", run->steps);
  json_object_set_double_member (result, "seconds", run->seconds);
  run->emitter.succeeded (run->emitter.ctx,
                          json_node_init_object (json_node_alloc (), result));
  json_object_unref (result);
  return G_SOURCE_REMOVE;
}

static gboolean
read_params (JsonObject *params, JwJobRun *run, GError **error)
{
  JsonNode *node;

  run->seconds = 1;
  run->steps = 10;
  run->fail_at = 0;

  node = json_object_get_member (params, "seconds");
  if (node != NULL && !jw_json_get_double (params, "seconds", &run->seconds))
    goto invalid;
  if (json_object_has_member (params, "steps")
      && !jw_json_get_int (params, "steps", &run->steps))
    goto invalid;
  if (json_object_has_member (params, "fail_at")
      && !jw_json_get_int (params, "fail_at", &run->fail_at))
    goto invalid;
  if (!(run->seconds >= 0 && run->seconds <= 86400) || run->steps < 1
      || run->steps > 10000 || run->fail_at < 0 || run->fail_at > run->steps)
    goto invalid;
  return TRUE;

invalid:
  g_set_error (error, JW_HANDLER_ERROR, JW_HANDLER_ERROR_INVALID_PARAMS,
               "sleep takes seconds (0 to 86400), steps (1 to 10000) and "
               "fail_at (1 to steps)");
  return FALSE;
}

static JwJobRun *
sleep_start (const JwJobInfo *job, const JwEmitter *emitter,
             gpointer type_data, GError **error)
{
  g_autofree JwJobRun *run = g_new0 (JwJobRun, 1);

  if (!read_params (job->params, run, error))
    return NULL;
  run->emitter = *emitter;
  run->started_us = g_get_monotonic_time ();
  schedule_next (run);
  return g_steal_pointer (&run);
}

static void
sleep_free (JwJobRun *run)
{
  if (run->timer != 0)
    g_source_remove (run->timer);
  g_free (run);
}

const JwHandlerType jw_handler_sleep = {
  .type = "sleep",
  .start = sleep_start,
  .cancel = sleep_free,
  .free = sleep_free,
};
