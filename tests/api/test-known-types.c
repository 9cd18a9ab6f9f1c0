/* known-types: the api's copy of the broker's job types and the check of
 * a job's params against a type's description. */
#include <string.h>

#include "jw-json.h"
#include "known-types.h"
#include "validate.h"

/* A broker `types` answer: two described types and a bare one. */
static const char types_json[] =
    "[{\"name\":\"resize\",\"params\":["
    "{\"name\":\"path\",\"type\":\"string\",\"required\":true},"
    "{\"name\":\"width\",\"type\":\"integer\",\"required\":false}],"
    "\"workers\":1},"
    "{\"name\":\"sleep\",\"params\":["
    "{\"name\":\"seconds\",\"type\":\"number\",\"required\":false},"
    "{\"name\":\"steps\",\"type\":\"integer\",\"required\":false},"
    "{\"name\":\"fail_at\",\"type\":\"integer\",\"required\":false}],"
    "\"workers\":0},"
    "{\"name\":\"free\",\"workers\":2}]";

static JwKnownTypes *
known_new (void)
{
  JwKnownTypes *known = jw_known_types_new ();
  g_autoptr (JsonNode) node =
      jw_json_parse (types_json, strlen (types_json), 16, NULL);

  g_assert_nonnull (node);
  jw_known_types_update (known, json_node_get_array (node));
  return known;
}

/* NULL when params fit type, else the error's message. */
static char *
check (JwKnownTypes *known, const char *type, const char *params_json)
{
  g_autoptr (JsonNode) node =
      jw_json_parse (params_json, strlen (params_json), 16, NULL);
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (node);
  if (jw_known_types_check (known, type, json_node_get_object (node), &error))
    return NULL;
  g_assert_error (error, JW_API_ERROR, JW_API_ERROR_INVALID_PARAMS);
  return g_strdup (error->message);
}

static void
test_names (void)
{
  g_autoptr (JwKnownTypes) known = jw_known_types_new ();
  g_autofree char *empty = jw_known_types_names (known);
  g_autofree char *names = NULL;

  g_assert_false (jw_known_types_fresh (known, 60000));
  g_assert_cmpstr (empty, ==, "");
  g_clear_pointer (&known, jw_known_types_free);

  known = known_new ();
  g_assert_true (jw_known_types_fresh (known, 60000));
  g_assert_true (jw_known_types_has (known, "resize"));
  g_assert_true (jw_known_types_has (known, "free"));
  g_assert_false (jw_known_types_has (known, "rm"));
  names = jw_known_types_names (known);
  g_assert_cmpstr (names, ==, "free, resize, sleep");
}

static void
test_check (void)
{
  g_autoptr (JwKnownTypes) known = known_new ();
  g_autofree char *ok1 = check (known, "resize", "{\"path\":\"a.png\"}");
  g_autofree char *ok2 = check (known, "free", "{\"anything\":[1,2]}");
  g_autofree char *ok3 = check (known, "sleep", "{\"seconds\":0.5}");
  g_autofree char *missing = check (known, "resize", "{\"width\":3}");
  g_autofree char *wrong = check (known, "resize",
                                  "{\"path\":\"a\","
                                  "\"width\":\"3\"}");
  g_autofree char *extra = check (known, "resize",
                                  "{\"path\":\"a\","
                                  "\"depth\":3}");
  g_autofree char *range = check (known, "sleep", "{\"steps\":0}");

  g_assert_null (ok1);
  g_assert_null (ok2);
  g_assert_null (ok3);
  g_assert_nonnull (strstr (missing, "params.path"));
  g_assert_nonnull (strstr (wrong, "params.width"));
  g_assert_nonnull (strstr (extra, "params.depth"));
  /* Beyond the description, the built-in type's own ranges. */
  g_assert_nonnull (strstr (range, "params.steps"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/api/known-types/names", test_names);
  g_test_add_func ("/api/known-types/check", test_check);
  return g_test_run ();
}
