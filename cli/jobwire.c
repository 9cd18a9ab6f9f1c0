/* jobwire: the command-line client. It submits, watches, lists and
 * cancels jobs over the api's REST interface and follows their events
 * over the pusher's Server-Sent Events. */
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "jw-json.h"
#include "jw-util.h"

#define MAX_DEPTH 64
#define HTTP_TIMEOUT_S 30
/* Longer than the pusher's keep-alive interval: a silent stream is dead. */
#define STREAM_TIMEOUT_S 60

static const char summary[] =
    "Commands:\n"
    "  submit TYPE [--param KEY=VALUE ...] [--params-json JSON] [--follow]\n"
    "                     submit a job; print its id (--follow: watch it)\n"
    "  watch ID [--token T]\n"
    "                     follow a job's events until it ends\n"
    "  status ID          show a job's state\n"
    "  list [--state S] [--limit N]\n"
    "                     the newest jobs\n"
    "  cancel ID          cancel a job\n"
    "  types              the job types the workers serve\n"
    "\n"
    "A --param value is taken as JSON when it parses (5, true, \"x\", [1]),\n"
    "else as a string. --json prints one JSON document per command, and one\n"
    "JSON event per line for watch and --follow.\n"
    "\n"
    "The api is --api URL, else $JOBWIRE_API, else http://127.0.0.1:8080;\n"
    "the pusher --pusher URL, else $JOBWIRE_PUSHER, else the job's events\n"
    "link (watch: http://127.0.0.1:8081).\n"
    "Where the api enforces them (docs/SECURITY.md): submit and list send\n"
    "the API key, --api-key KEY else $JOBWIRE_API_KEY; watch, status and\n"
    "cancel the job's token, --token T else $JOBWIRE_TOKEN; submit --follow\n"
    "uses the token of the api's answer.\n"
    "\n"
    "Exit status: 0 done (watch, --follow: the job succeeded), 1 the job\n"
    "failed, 2 the job was cancelled, 3 bad command line, 4 the api or\n"
    "pusher refused the request, 5 they could not be reached.";

/* ---- HTTP ------------------------------------------------------------- */

gboolean
jw_cli_http (JwCli *cli, const char *method, const char *url,
             const char *json_body, guint *status, JsonNode **body,
             GError **error)
{
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autoptr (GBytes) bytes = NULL;
  gsize len;
  const char *data;

  if (msg == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "not a URL: %s", url);
      return FALSE;
    }
  soup_message_headers_replace (soup_message_get_request_headers (msg),
                                "Accept", "application/json");
  if (cli->bearer != NULL && *cli->bearer != '\0')
    {
      g_autofree char *auth = g_strconcat ("Bearer ", cli->bearer, NULL);

      soup_message_headers_replace (soup_message_get_request_headers (msg),
                                    "Authorization", auth);
    }
  if (json_body != NULL)
    {
      g_autoptr (GBytes) req = g_bytes_new (json_body, strlen (json_body));

      soup_message_set_request_body_from_bytes (msg, "application/json", req);
    }
  bytes = soup_session_send_and_read (cli->session, msg, NULL, error);
  if (bytes == NULL)
    return FALSE;
  *status = soup_message_get_status (msg);
  data = g_bytes_get_data (bytes, &len);
  *body = len > 0 ? jw_json_parse (data, len, MAX_DEPTH, NULL) : NULL;
  return TRUE;
}

void
jw_cli_print_json (JsonNode *node)
{
  g_autofree char *json = jw_json_to_string (node, NULL);

  printf ("%s\n", json);
  fflush (stdout);
}

int
jw_cli_refused (JwCli *cli, guint status, JsonNode *body)
{
  JsonObject *err = jw_json_get_object (jw_json_node_object (body), "error");
  const char *code = err ? jw_json_get_string (err, "code") : NULL;
  const char *message = err ? jw_json_get_string (err, "message") : NULL;

  g_printerr ("jobwire: %s (HTTP %u): %s\n", code ? code : "error", status,
              message ? message : soup_status_get_phrase (status));
  if (cli->json && body != NULL)
    jw_cli_print_json (body);
  return JW_EXIT_REFUSED;
}

int
jw_cli_unreachable (const char *what, const GError *error)
{
  g_printerr ("jobwire: cannot reach %s: %s\n", what, error->message);
  return JW_EXIT_UNREACHABLE;
}

/* One request to the api; on 2xx sets *out and returns -1, else prints
 * the problem and returns the exit status. */
static int
api_call (JwCli *cli, const char *method, const char *path,
          const char *json_body, JsonNode **out)
{
  g_autofree char *url = g_strconcat (cli->api, path, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) body = NULL;
  guint status;

  if (!jw_cli_http (cli, method, url, json_body, &status, &body, &error))
    return jw_cli_unreachable (cli->api, error);
  if (status < 200 || status >= 300)
    return jw_cli_refused (cli, status, body);
  if (jw_json_node_object (body) == NULL)
    {
      g_printerr ("jobwire: the api answered %s %s without a JSON object\n",
                  method, path);
      return JW_EXIT_REFUSED;
    }
  *out = g_steal_pointer (&body);
  return -1;
}

/* ---- commands ------------------------------------------------------- */

static char *
progress_text (JsonObject *job)
{
  JsonObject *p = jw_json_get_object (job, "progress");
  const char *message = p ? jw_json_get_string (p, "message") : NULL;
  double percent;

  if (p == NULL || !jw_json_get_double (p, "percent", &percent))
    return g_strdup ("-");
  return g_strdup_printf ("%.0f%%%s%s", percent, message ? " " : "",
                          message ? message : "");
}

static void
print_member (JsonObject *job, const char *label, const char *member)
{
  JsonNode *node = json_object_get_member (job, member);
  g_autofree char *text = NULL;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return;
  if (JSON_NODE_HOLDS_VALUE (node)
      && json_node_get_value_type (node) == G_TYPE_STRING)
    text = g_strdup (json_node_get_string (node));
  else
    text = jw_json_to_string (node, NULL);
  printf ("%-10s %s\n", label, text);
}

static int
cmd_status (JwCli *cli, const char *id)
{
  g_autofree char *path = g_strconcat ("/jobs/", id, NULL);
  g_autoptr (JsonNode) body = NULL;
  g_autofree char *progress = NULL;
  JsonObject *job, *err;
  int ret = api_call (cli, "GET", path, NULL, &body);

  if (ret >= 0)
    return ret;
  if (cli->json)
    {
      jw_cli_print_json (body);
      return JW_EXIT_OK;
    }
  job = jw_json_node_object (body);
  progress = progress_text (job);
  print_member (job, "id", "id");
  print_member (job, "type", "type");
  print_member (job, "state", "state");
  print_member (job, "attempt", "attempt");
  printf ("%-10s %s\n", "progress", progress);
  print_member (job, "params", "params");
  print_member (job, "result", "result");
  err = jw_json_get_object (job, "error");
  if (err != NULL)
    printf ("%-10s %s: %s\n", "error", jw_json_get_string (err, "code") ?: "?",
            jw_json_get_string (err, "message") ?: "");
  print_member (job, "created", "created_at");
  print_member (job, "started", "started_at");
  print_member (job, "finished", "finished_at");
  return JW_EXIT_OK;
}

static int
cmd_list (JwCli *cli, const char *state, int limit)
{
  g_autoptr (GString) path = g_string_new ("/jobs");
  g_autoptr (JsonNode) body = NULL;
  JsonArray *jobs;
  int ret;

  g_string_append_printf (path, "?limit=%d", limit);
  if (state != NULL)
    {
      g_autofree char *escaped = g_uri_escape_string (state, NULL, FALSE);

      g_string_append_printf (path, "&state=%s", escaped);
    }
  ret = api_call (cli, "GET", path->str, NULL, &body);
  if (ret >= 0)
    return ret;
  if (cli->json)
    {
      jw_cli_print_json (body);
      return JW_EXIT_OK;
    }
  jobs = jw_json_get_array (jw_json_node_object (body), "jobs");
  printf ("%-26s  %-16s  %-9s  %-24s  %s\n", "ID", "TYPE", "STATE", "CREATED",
          "PROGRESS");
  for (guint i = 0; jobs != NULL && i < json_array_get_length (jobs); i++)
    {
      JsonObject *job = jw_json_node_object (json_array_get_element (jobs, i));
      g_autofree char *progress = job ? progress_text (job) : NULL;

      if (job == NULL)
        continue;
      printf ("%-26s  %-16s  %-9s  %-24s  %s\n",
              jw_json_get_string (job, "id") ?: "?",
              jw_json_get_string (job, "type") ?: "?",
              jw_json_get_string (job, "state") ?: "?",
              jw_json_get_string (job, "created_at") ?: "-", progress);
    }
  return JW_EXIT_OK;
}

static int
cmd_cancel (JwCli *cli, const char *id)
{
  g_autofree char *path = g_strconcat ("/jobs/", id, NULL);
  g_autoptr (JsonNode) body = NULL;
  JsonObject *job;
  gboolean requested = FALSE;
  int ret = api_call (cli, "DELETE", path, NULL, &body);

  if (ret >= 0)
    return ret;
  if (cli->json)
    {
      jw_cli_print_json (body);
      return JW_EXIT_OK;
    }
  job = jw_json_node_object (body);
  jw_json_get_bool (job, "cancel_requested", &requested);
  printf ("%s %s\n", id,
          requested ? "cancel requested"
                    : jw_json_get_string (job, "state") ?: "?");
  return JW_EXIT_OK;
}

static int
cmd_types (JwCli *cli)
{
  g_autoptr (JsonNode) body = NULL;
  JsonArray *types;
  int ret = api_call (cli, "GET", "/types", NULL, &body);

  if (ret >= 0)
    return ret;
  if (cli->json)
    {
      jw_cli_print_json (body);
      return JW_EXIT_OK;
    }
  types = jw_json_get_array (jw_json_node_object (body), "types");
  printf ("%-16s  %-7s  %s\n", "TYPE", "WORKERS", "PARAMS");
  for (guint i = 0; types != NULL && i < json_array_get_length (types); i++)
    {
      JsonObject *t = jw_json_node_object (json_array_get_element (types, i));
      JsonArray *params = t ? jw_json_get_array (t, "params") : NULL;
      const char *description =
          t ? jw_json_get_string (t, "description") : NULL;
      g_autoptr (GString) ps = g_string_new (NULL);
      gint64 workers = 0;

      if (t == NULL)
        continue;
      jw_json_get_int (t, "workers", &workers);
      for (guint j = 0; params != NULL && j < json_array_get_length (params);
           j++)
        {
          JsonObject *p =
              jw_json_node_object (json_array_get_element (params, j));
          gboolean required = TRUE;

          if (p == NULL)
            continue;
          jw_json_get_bool (p, "required", &required);
          g_string_append_printf (ps, "%s%s:%s%s", j ? ", " : "",
                                  jw_json_get_string (p, "name") ?: "?",
                                  jw_json_get_string (p, "type") ?: "?",
                                  required ? "" : "?");
        }
      printf ("%-16s  %7" G_GINT64_FORMAT "  %s\n",
              jw_json_get_string (t, "name") ?: "?", workers,
              params ? ps->str : "(any)");
      if (description != NULL)
        printf ("%-16s  %7s  %s\n", "", "", description);
    }
  return JW_EXIT_OK;
}

/* KEY=VALUE: VALUE as JSON when it parses, else as a string. */
static gboolean
add_param (JsonObject *params, const char *arg)
{
  const char *eq = strchr (arg, '=');
  g_autofree char *key = NULL;
  JsonNode *value;

  if (eq == NULL || eq == arg)
    return FALSE;
  key = g_strndup (arg, eq - arg);
  value = jw_json_parse (eq + 1, strlen (eq + 1), MAX_DEPTH, NULL);
  if (value == NULL)
    value = json_node_init_string (json_node_alloc (), eq + 1);
  json_object_set_member (params, key, value);
  return TRUE;
}

static char *
events_url (JwCli *cli, const char *id, JsonObject *job)
{
  JsonObject *links = job ? jw_json_get_object (job, "links") : NULL;
  const char *link = links ? jw_json_get_string (links, "events") : NULL;

  /* A token has only base64url characters, digits and '.'. */
  const char *query = cli->token && *cli->token ? "?token=" : "";

  if (cli->pusher == NULL && link != NULL)
    return g_strdup (link);
  return g_strconcat (cli->pusher ? cli->pusher : "http://127.0.0.1:8081",
                      "/jobs/", id, "/events", query,
                      *query ? cli->token : NULL, NULL);
}

static int
cmd_submit (JwCli *cli, const char *type, GStrv params_args,
            const char *params_json, gboolean follow)
{
  g_autoptr (JsonObject) params = NULL;
  g_autoptr (JsonObject) request = json_object_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (JsonNode) body = NULL;
  g_autofree char *json = NULL;
  g_autofree char *url = NULL;
  JsonObject *job;
  const char *id;
  int ret;

  if (params_json != NULL)
    {
      g_autoptr (JsonNode) node =
          jw_json_parse (params_json, strlen (params_json), MAX_DEPTH, NULL);

      if (jw_json_node_object (node) == NULL)
        {
          g_printerr ("jobwire: --params-json must be a JSON object\n");
          return JW_EXIT_USAGE;
        }
      params = json_object_ref (jw_json_node_object (node));
    }
  else
    params = json_object_new ();
  for (guint i = 0; params_args != NULL && params_args[i] != NULL; i++)
    if (!add_param (params, params_args[i]))
      {
        g_printerr ("jobwire: --param %s: expected KEY=VALUE\n",
                    params_args[i]);
        return JW_EXIT_USAGE;
      }

  json_object_set_string_member (request, "type", type);
  json_object_set_object_member (request, "params", json_object_ref (params));
  root = json_node_init_object (json_node_alloc (), request);
  json = jw_json_to_string (root, NULL);
  ret = api_call (cli, "POST", "/jobs", json, &body);
  if (ret >= 0)
    return ret;

  job = jw_json_node_object (body);
  id = jw_json_get_string (job, "id");
  if (id == NULL)
    {
      g_printerr ("jobwire: the api answered without a job id\n");
      return JW_EXIT_REFUSED;
    }
  if (cli->json)
    jw_cli_print_json (body);
  else
    {
      printf ("%s\n", id);
      fflush (stdout);
    }
  if (!follow)
    return JW_EXIT_OK;
  if (jw_json_get_string (job, "token") != NULL)
    {
      g_free (cli->token);
      cli->token = g_strdup (jw_json_get_string (job, "token"));
    }
  cli->bearer = cli->token;
  url = events_url (cli, id, job);
  return jw_cli_follow (cli, id, url);
}

/* ---- command line ----------------------------------------------------- */

static char *
base_url (const char *option, const char *env, const char *def)
{
  const char *value = option ? option : g_getenv (env);
  gsize len;

  if (value == NULL || *value == '\0')
    value = def;
  if (value == NULL)
    return NULL;
  len = strlen (value);
  while (len > 0 && value[len - 1] == '/')
    len--;
  return g_strndup (value, len);
}

static int
usage (GOptionContext *context, const char *problem)
{
  g_printerr ("jobwire: %s\nRun 'jobwire --help' for usage.\n", problem);
  return JW_EXIT_USAGE;
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *api = NULL;
  g_autofree char *pusher = NULL;
  g_autofree char *state = NULL;
  g_autofree char *params_json = NULL;
  g_autofree char *api_key = NULL;
  g_autofree char *token = NULL;
  g_auto (GStrv) params = NULL;
  gboolean json = FALSE, follow = FALSE;
  int limit = 20;
  JwCli cli = { 0 };
  const char *cmd;
  int ret;
  GOptionEntry entries[] = {
    { "api", 0, 0, G_OPTION_ARG_STRING, &api, "Base URL of the api", "URL" },
    { "pusher", 0, 0, G_OPTION_ARG_STRING, &pusher, "Base URL of the pusher",
      "URL" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON for scripts", NULL },
    { "param", 'p', 0, G_OPTION_ARG_STRING_ARRAY, &params,
      "submit: a member of params (repeatable)", "KEY=VALUE" },
    { "params-json", 0, 0, G_OPTION_ARG_STRING, &params_json,
      "submit: params as one JSON object", "JSON" },
    { "follow", 'f', 0, G_OPTION_ARG_NONE, &follow,
      "submit: watch the job to its end", NULL },
    { "state", 0, 0, G_OPTION_ARG_STRING, &state,
      "list: only jobs in this state", "STATE" },
    { "limit", 'n', 0, G_OPTION_ARG_INT, &limit,
      "list: at most N jobs (1-1000, default 20)", "N" },
    { "api-key", 0, 0, G_OPTION_ARG_STRING, &api_key,
      "submit, list: the API key (default $JOBWIRE_API_KEY)", "KEY" },
    { "token", 0, 0, G_OPTION_ARG_STRING, &token,
      "watch, status, cancel: the job's token (default $JOBWIRE_TOKEN)",
      "T" },
    { NULL }
  };

  setlocale (LC_ALL, "");
  context = g_option_context_new ("COMMAND [ARGS] - the jobwire client");
  g_option_context_set_summary (context, summary);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return usage (context, error->message);
  if (argc < 2)
    return usage (context, "no command given");
  cmd = argv[1];

  cli.api = base_url (api, "JOBWIRE_API", "http://127.0.0.1:8080");
  cli.pusher = base_url (pusher, "JOBWIRE_PUSHER", NULL);
  cli.json = json;
  cli.tty = isatty (STDOUT_FILENO);
  cli.token = g_strdup (token ? token : g_getenv ("JOBWIRE_TOKEN"));
  if (api_key == NULL)
    api_key = g_strdup (g_getenv ("JOBWIRE_API_KEY"));
  cli.bearer = g_str_equal (cmd, "submit") || g_str_equal (cmd, "list")
                   ? api_key
                   : cli.token;

  if ((params != NULL || params_json != NULL || follow)
      && !g_str_equal (cmd, "submit"))
    ret = usage (context, "--param, --params-json and --follow go with submit");
  else if ((state != NULL || limit != 20) && !g_str_equal (cmd, "list"))
    ret = usage (context, "--state and --limit go with list");
  else if (g_str_equal (cmd, "submit") && argc == 3)
    {
      cli.session = soup_session_new_with_options (
          "timeout", follow ? STREAM_TIMEOUT_S : HTTP_TIMEOUT_S, NULL);
      ret = cmd_submit (&cli, argv[2], params, params_json, follow);
    }
  else if (g_str_equal (cmd, "watch") && argc == 3)
    {
      g_autofree char *url = NULL;

      cli.session =
          soup_session_new_with_options ("timeout", STREAM_TIMEOUT_S, NULL);
      url = events_url (&cli, argv[2], NULL);
      ret = jw_cli_follow (&cli, argv[2], url);
    }
  else if (g_str_equal (cmd, "status") && argc == 3)
    {
      cli.session =
          soup_session_new_with_options ("timeout", HTTP_TIMEOUT_S, NULL);
      ret = cmd_status (&cli, argv[2]);
    }
  else if (g_str_equal (cmd, "list") && argc == 2)
    {
      JwState parsed;

      cli.session =
          soup_session_new_with_options ("timeout", HTTP_TIMEOUT_S, NULL);
      if (limit < 1 || limit > 1000)
        ret = usage (context, "--limit must be from 1 to 1000");
      else if (state != NULL && !jw_state_from_string (state, &parsed))
        ret = usage (context, "--state must be queued, running, succeeded, "
                              "failed or cancelled");
      else
        ret = cmd_list (&cli, state, limit);
    }
  else if (g_str_equal (cmd, "cancel") && argc == 3)
    {
      cli.session =
          soup_session_new_with_options ("timeout", HTTP_TIMEOUT_S, NULL);
      ret = cmd_cancel (&cli, argv[2]);
    }
  else if (g_str_equal (cmd, "types") && argc == 2)
    {
      cli.session =
          soup_session_new_with_options ("timeout", HTTP_TIMEOUT_S, NULL);
      ret = cmd_types (&cli);
    }
  else
    ret = usage (context, "unknown command or wrong number of arguments");

  g_clear_object (&cli.session);
  g_free (cli.api);
  g_free (cli.pusher);
  g_free (cli.token);
  return ret;
}
