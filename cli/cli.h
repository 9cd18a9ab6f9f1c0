/* cli: what the parts of the `jobwire` command-line client share: the
 * exit statuses, the HTTP helpers and the following of a job's events. */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

/* Exit statuses, documented in `jobwire --help` and the README. */
enum
{
  JW_EXIT_OK = 0,          /* done; for watch: the job succeeded */
  JW_EXIT_FAILED = 1,      /* the job failed */
  JW_EXIT_CANCELLED = 2,   /* the job was cancelled */
  JW_EXIT_USAGE = 3,       /* bad command line */
  JW_EXIT_REFUSED = 4,     /* the api or pusher answered with an error */
  JW_EXIT_UNREACHABLE = 5, /* no answer: connection failed or timed out */
};

typedef struct
{
  SoupSession *session;
  char *api;    /* base URL, no trailing slash */
  char *pusher; /* base URL, or NULL: take the job's events link */
  gboolean json;
  gboolean tty; /* stdout is a terminal */
  /* Sent as "Authorization: Bearer" to the api, or NULL: the API key for
   * submit and list, the job's token for the other commands. */
  const char *bearer;
  char *token; /* the job's token (--token, $JOBWIRE_TOKEN, the answer) */
} JwCli;

/* One HTTP exchange. On success *status and *body (parsed JSON, may be
 * NULL when the body is not JSON) are set; FALSE with error when no
 * answer came. */
gboolean jw_cli_http (JwCli *cli, const char *method, const char *url,
                      const char *json_body, guint *status, JsonNode **body,
                      GError **error);

/* Prints an api error answer (the code and message on stderr; with --json
 * the body on stdout too) and returns JW_EXIT_REFUSED. */
int jw_cli_refused (JwCli *cli, guint status, JsonNode *body);
/* Prints a connection failure and returns JW_EXIT_UNREACHABLE. */
int jw_cli_unreachable (const char *what, const GError *error);

/* Prints node as one line of compact JSON on stdout. */
void jw_cli_print_json (JsonNode *node);

/* Follows job id's events from events_url (the pusher's
 * /jobs/ID/events) until its end, resuming with Last-Event-ID after a
 * dropped connection. Shows a progress bar on a terminal, plain lines
 * otherwise, JSON lines with --json. Returns the exit status of the
 * outcome. */
int jw_cli_follow (JwCli *cli, const char *id, const char *events_url);

G_END_DECLS
