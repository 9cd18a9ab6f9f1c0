/* jw-params: parameter descriptions in their key-file and wire forms, and
 * the check of params against them. */
#include <string.h>

#include "jw-json.h"
#include "jw-params.h"

static JsonObject *
parse_object (const char *json, JsonNode **node)
{
  g_autoptr (GError) error = NULL;

  *node = jw_json_parse (json, strlen (json), 32, &error);
  g_assert_no_error (error);
  return json_node_get_object (*node);
}

/* Checks json against spec text; NULL when it fits, else the message. */
static char *
check (const char *spec_text, const char *json)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JwParamSpec) spec = jw_param_spec_parse (spec_text, &error);
  g_autoptr (JsonNode) node = NULL;
  JsonObject *params;

  g_assert_no_error (error);
  params = parse_object (json, &node);
  if (jw_param_spec_check (spec, params, &error))
    return NULL;
  g_assert_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_INVALID);
  return g_strdup (error->message);
}

static void
assert_refused (const char *spec, const char *json, const char *member)
{
  g_autofree char *message = check (spec, json);
  g_autofree char *named = g_strconcat ("params.", member, " ", NULL);

  g_assert_nonnull (message);
  g_assert_nonnull (strstr (message, named));
}

static void
test_parse (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JwParamSpec) spec = jw_param_spec_parse (
      " path : string , quality:integer? ;tags:array?, ratio:number,"
      "opts:object?, dry:boolean? ,",
      &error);
  g_autofree char *text = NULL;
  const JwParam *p;

  g_assert_no_error (error);
  g_assert_cmpuint (jw_param_spec_size (spec), ==, 6);
  p = jw_param_spec_get (spec, 1);
  g_assert_cmpstr (p->name, ==, "quality");
  g_assert_cmpint (p->kind, ==, JW_PARAM_INTEGER);
  g_assert_false (p->required);
  text = jw_param_spec_to_string (spec);
  g_assert_cmpstr (text, ==,
                   "path:string, quality:integer?, tags:array?, "
                   "ratio:number, opts:object?, dry:boolean?");

  /* An empty description: a type without params. */
  g_clear_pointer (&spec, jw_param_spec_free);
  spec = jw_param_spec_parse ("", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (jw_param_spec_size (spec), ==, 0);
}

static void
test_parse_errors (void)
{
  const char *bad[] = {
    "path",          "path:text",  "path:string, path:integer",
    ":string",       "a b:string", "pa.th:string",
    "path:string??", "x:",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (JwParamSpec) spec = jw_param_spec_parse (bad[i], &error);

      g_test_message ("spec %s", bad[i]);
      g_assert_null (spec);
      g_assert_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_SPEC);
    }
}

static void
test_wire_round_trip (void)
{
  g_autoptr (JwParamSpec) spec =
      jw_param_spec_parse ("path:string, quality:integer?", NULL);
  g_autoptr (JsonNode) wire = jw_param_spec_to_json (spec);
  g_autofree char *json = jw_json_to_string (wire, NULL);
  g_autoptr (JwParamSpec) back = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) bad = NULL;
  g_autofree char *text = NULL;

  g_assert_cmpstr (json, ==,
                   "[{\"name\":\"path\",\"type\":\"string\",\"required\":true},"
                   "{\"name\":\"quality\",\"type\":\"integer\",\"required\":"
                   "false}]");
  back = jw_param_spec_from_json (wire, &error);
  g_assert_no_error (error);
  text = jw_param_spec_to_string (back);
  g_assert_cmpstr (text, ==, "path:string, quality:integer?");

  bad = jw_json_parse ("[{\"name\":\"x\",\"type\":\"date\"}]", 30, 8, NULL);
  g_assert_null (jw_param_spec_from_json (bad, &error));
  g_assert_error (error, JW_PARAMS_ERROR, JW_PARAMS_ERROR_SPEC);
}

static void
test_check (void)
{
  const char *spec = "path:string, quality:integer?, ratio:number?, "
                     "dry:boolean?, tags:array?, opts:object?";
  g_autofree char *ok1 = check (spec, "{\"path\":\"a\"}");
  g_autofree char *ok2 =
      check (spec, "{\"path\":\"a\",\"quality\":3.0,\"ratio\":2,"
                   "\"dry\":false,\"tags\":[],\"opts\":{},\"ratio\":0.5}");
  g_autofree char *ok3 = check (spec, "{\"path\":\"a\",\"quality\":null}");
  g_autofree char *none = check ("", "{}");

  g_assert_null (ok1);
  g_assert_null (ok2);
  g_assert_null (ok3);
  g_assert_null (none);

  assert_refused (spec, "{}", "path");
  assert_refused (spec, "{\"path\":null}", "path");
  assert_refused (spec, "{\"path\":1}", "path");
  assert_refused (spec, "{\"path\":\"a\",\"quality\":1.5}", "quality");
  assert_refused (spec, "{\"path\":\"a\",\"quality\":\"1\"}", "quality");
  assert_refused (spec, "{\"path\":\"a\",\"ratio\":true}", "ratio");
  assert_refused (spec, "{\"path\":\"a\",\"dry\":0}", "dry");
  assert_refused (spec, "{\"path\":\"a\",\"tags\":{}}", "tags");
  assert_refused (spec, "{\"path\":\"a\",\"opts\":[]}", "opts");
  assert_refused (spec, "{\"path\":\"a\",\"colour\":1}", "colour");
  assert_refused ("", "{\"x\":1}", "x");
}

static void
test_type_names (void)
{
  g_assert_true (jw_type_name_valid ("resize"));
  g_assert_true (jw_type_name_valid ("py-wordcount"));
  g_assert_true (jw_type_name_valid ("img.resize_2"));
  g_assert_false (jw_type_name_valid (""));
  g_assert_false (jw_type_name_valid ("-x"));
  g_assert_false (jw_type_name_valid ("a b"));
  g_assert_false (jw_type_name_valid ("a/b"));
  g_assert_false (jw_type_name_valid (
      "a1234567890123456789012345678901234567890123456789012345678901234"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/common/params/parse", test_parse);
  g_test_add_func ("/common/params/parse-errors", test_parse_errors);
  g_test_add_func ("/common/params/wire-round-trip", test_wire_round_trip);
  g_test_add_func ("/common/params/check", test_check);
  g_test_add_func ("/common/params/type-names", test_type_names);
  return g_test_run ();
}
