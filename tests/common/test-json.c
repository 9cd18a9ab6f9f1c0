/* Strict JSON validation: what outside input may and may not be. */
#include "jw-json.h"

#include <string.h>

static gboolean
valid (const char *s, guint depth)
{
  return jw_json_validate (s, strlen (s), depth, NULL);
}

static void
test_accepts (void)
{
  const char *ok[] = {
    "{}",
    "[]",
    "0",
    "-1.5e+3",
    "\"x\"",
    "true",
    "null",
    " { \"a\" : [1, 2, {\"b\": null}], \"c\": \"\\u00e9\\n\" } ",
    "[[[]]]",
    "{\"k\":{}}",
    "\"caf\xc3\xa9\"",
    "\"\\ud83d\\ude00\"",
    "-9223372036854775808",
    "1e308",
  };

  for (guint i = 0; i < G_N_ELEMENTS (ok); i++)
    g_assert_true (valid (ok[i], 8));
}

static void
test_rejects (void)
{
  const char *bad[] = {
    "",
    " ",
    "{",
    "}",
    "[1,]",
    "{\"a\":1,}",
    "{'a': 1}",
    "// c\n{}",
    "{} /* c */",
    "{}{}",
    "[01]",
    "1.",
    ".5",
    "+1",
    "tru",
    "nul",
    "\"\\x\"",
    "\"a\nb\"",
    "{\"a\" 1}",
    "{1: 2}",
    "[1 2]",
    "NaN",
    "\"\xff\"",
    "\"\\u12\"",
    "1e999",
    "[-1e400]",
    "123456789012345678901",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\ud800\\u0041\"",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (jw_json_validate (bad[i], strlen (bad[i]), 8, &error));
      g_assert_error (error, JW_JSON_ERROR, JW_JSON_ERROR_SYNTAX);
    }
}

static void
test_depth (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) deep = g_string_new (NULL);

  g_assert_true (valid ("[[[1]]]", 3));
  g_assert_false (valid ("[[[1]]]", 2));

  /* Far deeper than any stack would take if parsed recursively. */
  for (int i = 0; i < 1000000; i++)
    g_string_append_c (deep, '[');
  g_assert_false (jw_json_validate (deep->str, deep->len, 32, &error));
  g_assert_error (error, JW_JSON_ERROR, JW_JSON_ERROR_TOO_DEEP);
}

static void
test_not_nul_terminated (void)
{
  const char frame[] = { '{', '}', 'x' };

  g_assert_true (jw_json_validate (frame, 2, 4, NULL));
  g_assert_false (jw_json_validate (frame, 3, 4, NULL));
}

static void
test_getters (void)
{
  const char *doc = "{\"s\":\"v\",\"i\":3,\"f\":3.0,\"h\":3.5,\"b\":true,"
                    "\"o\":{},\"a\":[]}";
  g_autoptr (JsonNode) node = jw_json_parse (doc, strlen (doc), 4, NULL);
  JsonObject *obj = jw_json_node_object (node);
  gint64 n = 0;
  double d = 0;
  gboolean b = FALSE;

  g_assert_nonnull (obj);
  g_assert_cmpstr (jw_json_get_string (obj, "s"), ==, "v");
  g_assert_null (jw_json_get_string (obj, "i"));
  g_assert_null (jw_json_get_string (obj, "missing"));
  g_assert_true (jw_json_get_int (obj, "i", &n));
  g_assert_cmpint (n, ==, 3);
  g_assert_true (jw_json_get_int (obj, "f", &n));
  g_assert_false (jw_json_get_int (obj, "h", &n));
  g_assert_false (jw_json_get_int (obj, "s", &n));
  g_assert_true (jw_json_get_double (obj, "h", &d));
  g_assert_cmpfloat (d, ==, 3.5);
  g_assert_true (jw_json_get_bool (obj, "b", &b));
  g_assert_true (b);
  g_assert_nonnull (jw_json_get_object (obj, "o"));
  g_assert_null (jw_json_get_object (obj, "a"));
  g_assert_nonnull (jw_json_get_array (obj, "a"));
}

static void
test_serialize (void)
{
  const char *doc = "{\"z\":1,\"a\":0.1,\"m\":33.33,\"big\":1e300,"
                    "\"whole\":2.0,\"neg\":-0.5,\"s\":\"q\\\"\\\\\\n\\u0001\","
                    "\"arr\":[true,false,null,{}],\"o\":{\"y\":[],\"b\":2}}";
  const char *want = "{\"z\":1,\"a\":0.1,\"m\":33.33,\"big\":1e+300,"
                     "\"whole\":2.0,\"neg\":-0.5,\"s\":\"q\\\"\\\\\\n\\u0001\","
                     "\"arr\":[true,false,null,{}],\"o\":{\"y\":[],\"b\":2}}";
  g_autoptr (JsonNode) node = jw_json_parse (doc, strlen (doc), 8, NULL);
  g_autofree char *out = NULL;
  g_autoptr (JsonNode) back = NULL;
  gsize len;

  g_assert_nonnull (node);
  out = jw_json_to_string (node, &len);
  /* Members keep their order, doubles take their shortest exact form. */
  g_assert_cmpstr (out, ==, want);
  g_assert_cmpuint (len, ==, strlen (want));
  back = jw_json_parse (out, len, 8, NULL);
  g_assert_true (json_node_equal (node, back));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/common/json/accepts-strict-json", test_accepts);
  g_test_add_func ("/common/json/rejects-non-json", test_rejects);
  g_test_add_func ("/common/json/depth-limit", test_depth);
  g_test_add_func ("/common/json/explicit-length", test_not_nul_terminated);
  g_test_add_func ("/common/json/typed-getters", test_getters);
  g_test_add_func ("/common/json/serialize-ordered-shortest", test_serialize);
  return g_test_run ();
}
