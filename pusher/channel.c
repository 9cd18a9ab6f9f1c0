/* channel: job channels and the merge of history with live events.
 *
 * The rule that keeps every subscriber gap-free and duplicate-free: an
 * event goes to a subscriber only when its seq is exactly cursor + 1.
 * Whatever a subscriber misses that way is caught up from the channel's
 * cache of recent events, or else from a history query. */
#include "channel.h"

#include "jw-id.h"
#include "jw-log.h"
#include "jw-util.h"
#include "sse.h"
#include "ws.h"

#include <string.h>

#define CACHE_SIZE 64
#define AHEAD_SIZE 64
#define MARKER_WAIT_S 3
#define QUERY_TIMEOUT_S 5
#define LINGER_S 10

struct _JwChannel
{
  char job[JW_ID_LEN + 1];
  GPtrArray *subs;
  guint iterating;
  gboolean compact;

  gboolean marker_wait;
  gint64 marker_since;
  gboolean known; /* a history reply said the job exists */
  gboolean job_terminal;
  gboolean recheck; /* query after last_seq even without a gap */
  gint64 last_seq;  /* contiguous; the cache ends here */
  gint64 known_seq; /* highest seq heard of */
  GQueue cache;     /* JwEvent, seqs up to last_seq */
  GQueue ahead;     /* live events past a gap */

  guint query_n; /* in flight when != 0 */
  gint64 query_after;
  gint64 query_sent;
  gint64 retry_at;
  gint64 empty_since;
};

static struct
{
  JwUpstream up;
  gpointer user_data;
  GHashTable *table;
  guint next_query;
} chans;

static gint64
now_s (void)
{
  return g_get_monotonic_time () / G_USEC_PER_SEC;
}

JwEvent *
jw_event_new (gint64 seq, const char *type, GBytes *json)
{
  JwEvent *ev = g_new0 (JwEvent, 1);

  ev->ref = 1;
  ev->seq = seq;
  ev->type = g_intern_string (type);
  ev->terminal = jw_event_type_is_terminal (type);
  ev->json = g_bytes_ref (json);
  return ev;
}

JwEvent *
jw_event_new_take (gint64 seq, const char *type, GBytes *json)
{
  JwEvent *ev = jw_event_new (seq, type, json);

  g_bytes_unref (json);
  return ev;
}

JwEvent *
jw_event_ref (JwEvent *ev)
{
  ev->ref++;
  return ev;
}

void
jw_event_unref (JwEvent *ev)
{
  if (--ev->ref > 0)
    return;
  g_bytes_unref (ev->json);
  g_clear_pointer (&ev->sse, g_bytes_unref);
  g_clear_pointer (&ev->ws, g_bytes_unref);
  g_free (ev);
}

GBytes *
jw_event_sse (JwEvent *ev)
{
  if (ev->sse == NULL)
    {
      gsize len;
      const char *data = g_bytes_get_data (ev->json, &len);

      ev->sse = jw_sse_frame_new (ev->seq, ev->type, data, len);
    }
  return ev->sse;
}

GBytes *
jw_event_ws (JwEvent *ev)
{
  if (ev->ws == NULL)
    {
      gsize len;
      const char *data = g_bytes_get_data (ev->json, &len);

      ev->ws = jw_ws_frame_new (JW_WS_OP_TEXT, data, len);
    }
  return ev->ws;
}

static void start_query (JwChannel *ch);

static void
channel_free (JwChannel *ch)
{
  g_queue_clear_full (&ch->cache, (GDestroyNotify)jw_event_unref);
  g_queue_clear_full (&ch->ahead, (GDestroyNotify)jw_event_unref);
  g_ptr_array_unref (ch->subs);
  g_free (ch);
}

static JwChannel *
channel_get (const char *job)
{
  JwChannel *ch = g_hash_table_lookup (chans.table, job);

  if (ch != NULL)
    return ch;
  ch = g_new0 (JwChannel, 1);
  g_strlcpy (ch->job, job, sizeof ch->job);
  ch->subs = g_ptr_array_new ();
  g_queue_init (&ch->cache);
  g_queue_init (&ch->ahead);
  ch->marker_wait = TRUE;
  ch->marker_since = now_s ();
  g_hash_table_insert (chans.table, ch->job, ch);
  chans.up.subscribe (ch->job, chans.user_data);
  jw_log_job (G_LOG_LEVEL_DEBUG, ch->job, "channel opened job=%s", ch->job);
  return ch;
}

static void
begin (JwChannel *ch)
{
  ch->iterating++;
}

/* Ends an iteration: drops removed subscribers, flushes the others. */
static void
end (JwChannel *ch)
{
  if (--ch->iterating > 0)
    return;
  ch->iterating++;
  for (guint i = 0; i < ch->subs->len; i++)
    {
      JwSub *s = g_ptr_array_index (ch->subs, i);

      if (s->touched && !s->removed)
        {
          s->touched = FALSE;
          if (s->klass->flush)
            s->klass->flush (s);
        }
    }
  ch->iterating--;
  if (ch->compact)
    {
      guint j = 0;

      for (guint i = 0; i < ch->subs->len; i++)
        {
          JwSub *s = g_ptr_array_index (ch->subs, i);

          if (s->removed)
            {
              s->channel = NULL;
              if (s->klass->release)
                s->klass->release (s);
              continue;
            }
          s->index = j;
          ch->subs->pdata[j++] = s;
        }
      g_ptr_array_set_size (ch->subs, j);
      ch->compact = FALSE;
    }
  if (ch->subs->len == 0 && ch->empty_since == 0)
    ch->empty_since = now_s ();
}

static void
deliver_one (JwSub *s, JwEvent *ev)
{
  if (!s->active || s->removed || s->cursor != ev->seq - 1)
    return;
  s->cursor = ev->seq;
  s->touched = TRUE;
  s->klass->event (s, ev);
}

static void
deliver (JwChannel *ch, JwEvent *ev)
{
  begin (ch);
  for (guint i = 0; i < ch->subs->len; i++)
    deliver_one (g_ptr_array_index (ch->subs, i), ev);
  end (ch);
}

/* Appends ev when it is the next one, and delivers it. */
static gboolean
apply (JwChannel *ch, JwEvent *ev)
{
  if (ev->seq != ch->last_seq + 1)
    return FALSE;
  g_queue_push_tail (&ch->cache, jw_event_ref (ev));
  if (ch->cache.length > CACHE_SIZE)
    jw_event_unref (g_queue_pop_head (&ch->cache));
  ch->last_seq = ev->seq;
  ch->known_seq = MAX (ch->known_seq, ev->seq);
  if (ev->terminal)
    ch->job_terminal = TRUE;
  deliver (ch, ev);
  return TRUE;
}

static void
drain_ahead (JwChannel *ch)
{
  JwEvent *ev;

  while ((ev = g_queue_peek_head (&ch->ahead)) != NULL)
    {
      if (ev->seq > ch->last_seq + 1)
        break;
      g_queue_pop_head (&ch->ahead);
      apply (ch, ev);
      jw_event_unref (ev);
    }
}

/* Gives s what it missed from the cache; FALSE when the cache does not
 * reach back far enough. */
static gboolean
catch_up (JwChannel *ch, JwSub *s)
{
  JwEvent *first = g_queue_peek_head (&ch->cache);

  if (s->cursor >= ch->last_seq)
    return TRUE;
  if (first == NULL || s->cursor + 1 < first->seq)
    return FALSE;
  for (GList *l = ch->cache.head; l != NULL && !s->removed; l = l->next)
    deliver_one (s, l->data);
  return TRUE;
}

/* Where the next history query must start, or -1 when none is needed. */
static gint64
query_point (JwChannel *ch)
{
  gint64 after = G_MAXINT64;

  for (guint i = 0; i < ch->subs->len; i++)
    {
      JwSub *s = g_ptr_array_index (ch->subs, i);

      if (s->removed)
        continue;
      if (!ch->known || (s->active && !catch_up (ch, s)))
        after = MIN (after, s->cursor);
    }
  if (ch->known && (ch->known_seq > ch->last_seq || ch->recheck))
    after = MIN (after, ch->last_seq);
  return after == G_MAXINT64 ? -1 : after;
}

static void
fail_pending (JwChannel *ch, const char *code)
{
  begin (ch);
  for (guint i = 0; i < ch->subs->len; i++)
    {
      JwSub *s = g_ptr_array_index (ch->subs, i);

      if (s->removed || s->active)
        continue;
      s->klass->ready (s, code);
      if (!s->removed)
        jw_channel_remove (s);
    }
  end (ch);
}

static void
start_query (JwChannel *ch)
{
  g_autofree char *rid = NULL;
  gint64 after;

  if (ch->query_n != 0 || ch->marker_wait || ch->retry_at > now_s ())
    return;
  begin (ch);
  after = query_point (ch);
  end (ch);
  if (after < 0)
    return;

  ch->query_n = ++chans.next_query;
  if (ch->query_n == 0)
    ch->query_n = ++chans.next_query;
  ch->query_after = after;
  ch->query_sent = now_s ();
  ch->recheck = FALSE;
  rid = g_strdup_printf ("%s.%u", ch->job, ch->query_n);
  if (!chans.up.query (ch->job, rid, after, chans.user_data))
    {
      ch->query_n = 0;
      ch->retry_at = now_s () + 1;
      if (!ch->known)
        fail_pending (ch, "broker_unavailable");
    }
}

void
jw_channels_init (const JwUpstream *upstream, gpointer user_data)
{
  chans.up = *upstream;
  chans.user_data = user_data;
  chans.table = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                       (GDestroyNotify)channel_free);
}

void
jw_channels_free (void)
{
  g_clear_pointer (&chans.table, g_hash_table_unref);
}

guint
jw_channels_count (void)
{
  return chans.table ? g_hash_table_size (chans.table) : 0;
}

void
jw_channels_tick (void)
{
  GHashTableIter iter;
  JwChannel *ch;
  gint64 now = now_s ();

  g_hash_table_iter_init (&iter, chans.table);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&ch))
    {
      if (ch->query_n != 0 && now - ch->query_sent >= QUERY_TIMEOUT_S)
        {
          jw_log_job (G_LOG_LEVEL_DEBUG, ch->job,
                      "history query timed out job=%s", ch->job);
          ch->query_n = 0;
          if (!ch->known)
            fail_pending (ch, "broker_unavailable");
          else
            ch->recheck = TRUE;
        }
      /* No marker (broker busy or a lost subscription): read history
     * anyway; a later gap in seqs is still noticed and filled. */
      if (ch->marker_wait && now - ch->marker_since >= MARKER_WAIT_S)
        {
          ch->marker_wait = FALSE;
          ch->recheck = ch->known;
        }
      if (ch->subs->len == 0 && ch->query_n == 0
          && now - ch->empty_since >= LINGER_S)
        {
          chans.up.unsubscribe (ch->job, chans.user_data);
          jw_log_job (G_LOG_LEVEL_DEBUG, ch->job, "channel closed job=%s",
                      ch->job);
          g_hash_table_iter_remove (&iter);
          continue;
        }
      start_query (ch);
    }
}

void
jw_channels_marker (const char *job)
{
  JwChannel *ch = g_hash_table_lookup (chans.table, job);

  if (ch == NULL || !ch->marker_wait)
    return;
  ch->marker_wait = FALSE;
  if (ch->known)
    ch->recheck = TRUE;
  start_query (ch);
}

void
jw_channels_event (const char *job, JwEvent *ev)
{
  JwChannel *ch = g_hash_table_lookup (chans.table, job);

  if (ch == NULL)
    return;
  if (ch->known && apply (ch, ev))
    {
      drain_ahead (ch);
      return;
    }
  if (ch->known && ev->seq <= ch->last_seq)
    return;

  /* A gap, or history not read yet: keep it for after the query. */
  ch->known_seq = MAX (ch->known_seq, ev->seq);
  if (ch->ahead.length < AHEAD_SIZE)
    {
      GList *l = ch->ahead.tail;

      while (l != NULL && ((JwEvent *)l->data)->seq > ev->seq)
        l = l->prev;
      if (l == NULL || ((JwEvent *)l->data)->seq != ev->seq)
        {
          if (l == NULL)
            g_queue_push_head (&ch->ahead, jw_event_ref (ev));
          else
            g_queue_insert_after (&ch->ahead, l, jw_event_ref (ev));
        }
    }
  if (ch->known)
    start_query (ch);
}

void
jw_channels_epoch_changed (void)
{
  GHashTableIter iter;
  JwChannel *ch;

  g_hash_table_iter_init (&iter, chans.table);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&ch))
    {
      ch->marker_wait = TRUE;
      ch->marker_since = now_s ();
    }
}

static void
make_ready (JwChannel *ch)
{
  begin (ch);
  for (guint i = 0; i < ch->subs->len; i++)
    {
      JwSub *s = g_ptr_array_index (ch->subs, i);

      if (!s->active && !s->removed)
        s->klass->ready (s, NULL);
    }
  end (ch);
}

void
jw_channels_reply (const char *rid, const JwHistory *reply)
{
  g_autofree char *job = NULL;
  const char *dot = strchr (rid, '.');
  JwChannel *ch;
  guint64 n;
  gboolean first;

  if (dot == NULL)
    return;
  job = g_strndup (rid, dot - rid);
  ch = g_hash_table_lookup (chans.table, job);
  if (ch == NULL
      || !g_ascii_string_to_unsigned (dot + 1, 10, 1, G_MAXUINT, &n, NULL)
      || n != ch->query_n)
    return;

  if (!reply->ok)
    {
      ch->query_n = 0;
      if (g_strcmp0 (reply->error_code, "job_not_found") == 0)
        {
          ch->known = FALSE;
          fail_pending (ch, "job_not_found");
        }
      else if (!ch->known)
        {
          fail_pending (ch, "broker_unavailable");
        }
      return;
    }

  /* query_n stays set while the reply is applied, so that a subscriber
   * made ready here cannot start another query before it is done. */
  first = !ch->known;
  if (first)
    {
      ch->known = TRUE;
      ch->last_seq = MIN (ch->query_after, reply->seq);
      make_ready (ch);
    }
  ch->known_seq = MAX (ch->known_seq, reply->seq);
  if (reply->terminal)
    ch->job_terminal = TRUE;

  begin (ch);
  for (guint i = 0; reply->events && i < reply->events->len; i++)
    {
      JwEvent *ev = g_ptr_array_index (reply->events, i);

      if (!apply (ch, ev))
        {
          /* Older than the channel: only lagging subscribers want it. */
          for (guint j = 0; j < ch->subs->len; j++)
            deliver_one (g_ptr_array_index (ch->subs, j), ev);
        }
    }
  end (ch);
  drain_ahead (ch);

  /* A reply that brought nothing new must not loop: retry next tick. */
  if (reply->events == NULL || reply->events->len == 0)
    ch->retry_at = now_s () + 1;
  ch->query_n = 0;
  start_query (ch);
}

void
jw_channel_add (const char *job, JwSub *sub)
{
  JwChannel *ch = channel_get (job);

  sub->channel = ch;
  sub->active = FALSE;
  sub->removed = FALSE;
  sub->touched = FALSE;
  sub->index = ch->subs->len;
  g_ptr_array_add (ch->subs, sub);
  ch->empty_since = 0;

  if (ch->known)
    {
      begin (ch);
      sub->klass->ready (sub, NULL);
      end (ch);
    }
  else
    {
      ch->retry_at = 0;
      start_query (ch);
    }
}

void
jw_channel_activate (JwSub *sub)
{
  JwChannel *ch = sub->channel;

  if (ch == NULL || sub->active || sub->removed)
    return;
  sub->active = TRUE;
  begin (ch);
  if (!catch_up (ch, sub))
    {
      ch->retry_at = 0;
      start_query (ch);
    }
  end (ch);
}

void
jw_channel_remove (JwSub *sub)
{
  JwChannel *ch = sub->channel;

  if (ch == NULL || sub->removed)
    return;
  sub->removed = TRUE;
  if (ch->iterating > 0)
    {
      ch->compact = TRUE;
      return;
    }
  begin (ch);
  ch->compact = TRUE;
  end (ch);
}

const char *
jw_channel_job (JwChannel *self)
{
  return self->job;
}

gint64
jw_channel_last_seq (JwChannel *self)
{
  return self->last_seq;
}

gboolean
jw_channel_finished_after (JwChannel *self, gint64 cursor)
{
  return self->known && self->job_terminal && cursor >= self->known_seq;
}
