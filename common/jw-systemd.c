/* jw-systemd: the sd_notify protocol and socket activation through
 * libsystemd. Watchdog pings come from a timer on the main loop, so a loop
 * that stops turning stops pinging and systemd restarts the process. */
#include "jw-systemd.h"

#include <systemd/sd-daemon.h>

static guint watchdog_id;

static struct
{
  guint id;
  JwSdStateFunc func;
  gpointer data;
  gboolean ready;
  char *status; /* last sent */
} tracker;

static gboolean
ping_watchdog (gpointer data)
{
  sd_notify (0, "WATCHDOG=1");
  return G_SOURCE_CONTINUE;
}

static void
start_watchdog (void)
{
  uint64_t usec = 0;

  if (watchdog_id != 0 || sd_watchdog_enabled (0, &usec) <= 0 || usec == 0)
    return;
  /* Half the interval, as systemd recommends, and never under 1 ms. */
  watchdog_id = g_timeout_add (MAX (usec / 2000, 1), ping_watchdog, NULL);
  sd_notify (0, "WATCHDOG=1");
}

void
jw_sd_ready (const char *fmt, ...)
{
  va_list ap;
  g_autofree char *status = NULL;

  va_start (ap, fmt);
  status = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  sd_notifyf (0, "READY=1\nSTATUS=%s", status);
  start_watchdog ();
}

void
jw_sd_status (const char *fmt, ...)
{
  va_list ap;
  g_autofree char *status = NULL;

  va_start (ap, fmt);
  status = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  sd_notifyf (0, "STATUS=%s", status);
}

static gboolean
track (gpointer unused)
{
  g_autoptr (GString) status = g_string_new (NULL);
  gboolean ready = tracker.func (status, tracker.data);

  if (ready && !tracker.ready)
    {
      tracker.ready = TRUE;
      g_free (tracker.status);
      tracker.status = g_strdup (status->str);
      jw_sd_ready ("%s", status->str);
    }
  else if (g_strcmp0 (status->str, tracker.status) != 0)
    {
      g_free (tracker.status);
      tracker.status = g_strdup (status->str);
      jw_sd_status ("%s", status->str);
    }
  return G_SOURCE_CONTINUE;
}

void
jw_sd_track (guint interval_ms, JwSdStateFunc func, gpointer data)
{
  g_return_if_fail (tracker.id == 0);
  tracker.func = func;
  tracker.data = data;
  tracker.id = g_timeout_add (interval_ms, track, NULL);
  track (NULL);
}

void
jw_sd_stopping (void)
{
  sd_notify (0, "STOPPING=1");
  if (tracker.id != 0)
    {
      g_source_remove (tracker.id);
      tracker.id = 0;
    }
  g_clear_pointer (&tracker.status, g_free);
  if (watchdog_id != 0)
    {
      g_source_remove (watchdog_id);
      watchdog_id = 0;
    }
}

GSocket *
jw_sd_listen_socket (GError **error)
{
  int n = sd_listen_fds (1);

  if (n < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (-n),
                   "cannot read the sockets passed by systemd: %s",
                   g_strerror (-n));
      return NULL;
    }
  if (n == 0)
    return NULL;
  if (n > 1)
    g_warning ("systemd passed %d sockets; serving on the first", n);
  return g_socket_new_from_fd (SD_LISTEN_FDS_START, error);
}
