/* jw-systemd: what a daemon tells systemd (readiness, status, watchdog,
 * stopping) and the listening sockets systemd may pass it. Every call is a
 * no-op when the process does not run under systemd. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* READY=1 with a STATUS= line; call once the process really serves. Starts
 * the watchdog pings when WATCHDOG_USEC is set. */
void jw_sd_ready (const char *fmt, ...) G_GNUC_PRINTF (1, 2);
/* STATUS= line, e.g. "3 queued, 1 running, 2 workers". */
void jw_sd_status (const char *fmt, ...) G_GNUC_PRINTF (1, 2);
/* STOPPING=1; call when shutdown begins. */
void jw_sd_stopping (void);

/* Fills status with a short live summary and returns whether the process
 * can serve now. */
typedef gboolean (*JwSdStateFunc) (GString *status, gpointer data);

/* Asks func now and then every interval_ms: sends READY=1 (and starts the
 * watchdog) the first time it returns TRUE, and STATUS= whenever the
 * summary differs from the last one sent. Stops at jw_sd_stopping. One
 * tracker per process. */
void jw_sd_track (guint interval_ms, JwSdStateFunc func, gpointer data);

/* The listening socket systemd passed (LISTEN_FDS/LISTEN_PID) for this
 * process, or NULL with no error when none was passed. With several, the
 * first is returned. */
GSocket *jw_sd_listen_socket (GError **error);

G_END_DECLS
