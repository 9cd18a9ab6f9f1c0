/* jw-log: GLib structured logging for every process. Lines go to the
 * journal when stderr is connected to it, else to stderr as
 * "domain: message key=value"; JOBWIRE_LOG=json writes one JSON object of
 * all fields per record to stderr, JOBWIRE_LOG=text forces plain lines.
 * info and debug are dropped unless G_MESSAGES_DEBUG names the domain. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

void jw_log_init (void);

/* Logs with a JOB_ID field, so that journalctl JOB_ID=... shows a job's
 * whole life across processes. A record that would be dropped (debug and
 * info unless G_MESSAGES_DEBUG names the domain) is not even formatted:
 * some of these run for every event. */
#define jw_log_job(level, job_id, ...)                                         \
  G_STMT_START                                                                 \
  {                                                                            \
    if (!g_log_writer_default_would_drop ((level), G_LOG_DOMAIN))              \
      g_log_structured (G_LOG_DOMAIN, (level), "JOB_ID", (job_id), "MESSAGE",  \
                        __VA_ARGS__);                                          \
  }                                                                            \
  G_STMT_END

G_END_DECLS
