/* channel: one per watched job, shared by every subscriber of that job
 * (SSE, WebSocket, long-poll). It subscribes upstream, waits for the
 * broker's marker, reads history, then merges live events, so that each
 * subscriber gets every event after its cursor once and in order. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* One recorded event; its JSON is never parsed here. The SSE and
 * WebSocket encodings are built on first use and shared. */
typedef struct
{
  gint ref;
  gint64 seq;
  const char *type; /* interned */
  gboolean terminal;
  GBytes *json;
  GBytes *sse;
  GBytes *ws;
} JwEvent;

JwEvent *jw_event_new (gint64 seq, const char *type, GBytes *json);
/* The same, taking json over. */
JwEvent *jw_event_new_take (gint64 seq, const char *type, GBytes *json);
JwEvent *jw_event_ref (JwEvent *ev);
void jw_event_unref (JwEvent *ev);
GBytes *jw_event_sse (JwEvent *ev);
GBytes *jw_event_ws (JwEvent *ev);

typedef struct _JwChannel JwChannel;
typedef struct _JwSub JwSub;

typedef struct
{
  /* The channel knows whether the job exists. error_code is NULL (it
   * does: call jw_channel_activate() now or later to receive events), or
   * job_not_found or broker_unavailable (the subscriber is removed after
   * this returns). */
  void (*ready) (JwSub *sub, const char *error_code);
  /* The next event after sub->cursor (already advanced). */
  void (*event) (JwSub *sub, JwEvent *ev);
  /* End of a batch of events, for subscribers that answer in one go. */
  void (*flush) (JwSub *sub);
  /* The channel dropped sub after jw_channel_remove(): free it. */
  void (*release) (JwSub *sub);
} JwSubClass;

struct _JwSub
{
  const JwSubClass *klass;
  JwChannel *channel;
  gint64 cursor; /* last seq delivered */
  guint index;   /* in the channel */
  guint active : 1;
  guint removed : 1;
  guint touched : 1;
  gpointer data;
};

typedef struct
{
  void (*subscribe) (const char *job, gpointer user_data);
  void (*unsubscribe) (const char *job, gpointer user_data);
  /* Sends an `events` query; FALSE when it cannot be sent now. */
  gboolean (*query) (const char *job, const char *rid, gint64 after,
                     gpointer user_data);
} JwUpstream;

/* A reply to an events query. */
typedef struct
{
  gboolean ok;
  const char *error_code; /* when !ok */
  gboolean terminal;      /* the snapshot's state is terminal */
  gint64 seq;             /* the snapshot's seq */
  gboolean more;
  GPtrArray *events; /* of JwEvent */
} JwHistory;

void jw_channels_init (const JwUpstream *upstream, gpointer user_data);
void jw_channels_free (void);
guint jw_channels_count (void);
void jw_channels_tick (void);
/* From the SUB socket. */
void jw_channels_marker (const char *job);
void jw_channels_event (const char *job, JwEvent *ev);
/* The broker restarted: check every channel for missed events. */
void jw_channels_epoch_changed (void);
/* From the DEALER socket; rid as sent. */
void jw_channels_reply (const char *rid, const JwHistory *reply);

/* Adds sub (cursor set by the caller) to job's channel. ready is called
 * when the channel knows the job, possibly at once. */
void jw_channel_add (const char *job, JwSub *sub);
/* Starts delivery: catch-up from the cache or history, then live. */
void jw_channel_activate (JwSub *sub);
/* Stops delivery; klass->release follows, at once or after the current
 * delivery loop. */
void jw_channel_remove (JwSub *sub);
const char *jw_channel_job (JwChannel *self);
gint64 jw_channel_last_seq (JwChannel *self);
/* TRUE when the job is finished and nothing follows cursor. */
gboolean jw_channel_finished_after (JwChannel *self, gint64 cursor);

G_END_DECLS
