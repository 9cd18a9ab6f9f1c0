/* Tests of jw-origin: parsing an allow-list, the defaults, and matching
 * the Origin a browser sends. */
#include "jw-origin.h"

#include <gio/gio.h>

static void
test_list (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JwOrigins) o = jw_origins_new (
      " https://Example.com:443/ , http://app.test:8081", NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (jw_origins_describe (o), ==,
                   "https://example.com,http://app.test:8081");
  g_assert_true (jw_origins_allows (o, "https://example.com", NULL));
  g_assert_true (jw_origins_allows (o, "https://EXAMPLE.com:443", NULL));
  g_assert_true (jw_origins_allows (o, "http://app.test:8081", NULL));
  g_assert_false (jw_origins_allows (o, "http://example.com", NULL));
  g_assert_false (jw_origins_allows (o, "https://example.com:8443", NULL));
  g_assert_false (jw_origins_allows (o, "http://app.test:8082", NULL));
  g_assert_false (jw_origins_allows (o, "https://example.com.evil.test", NULL));
  g_assert_false (jw_origins_allows (o, "null", NULL));
  g_assert_false (jw_origins_allows (o, "", NULL));
  g_assert_false (jw_origins_allows (o, NULL, NULL));
}

static void
test_default (void)
{
  g_autoptr (JwOrigins) o =
      jw_origins_new ("", "http://127.0.0.1:8081/some/path", NULL);
  g_autoptr (JwOrigins) none = jw_origins_new (NULL, NULL, NULL);

  g_assert_cmpstr (jw_origins_describe (o), ==,
                   "http://127.0.0.1:8081,http://localhost:8081");
  g_assert_true (jw_origins_allows (o, "http://localhost:8081", NULL));
  g_assert_false (jw_origins_allows (o, "http://localhost:8080", NULL));
  g_assert_false (jw_origins_allows (none, "http://localhost:8081", NULL));
}

static void
test_any_and_bad (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JwOrigins) any = jw_origins_new ("*", NULL, NULL);
  const char *bad[] = {
    "example.com", "ftp://example.com", "http://example.com/path",
    "http://",     "http://a?b",        "http://user@example.com"
  };

  g_assert_true (jw_origins_allows (any, "http://anything.test:1", NULL));
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (JwOrigins) o = jw_origins_new (bad[i], NULL, &error);

      g_assert_null (o);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
}

/* Behind a proxy the page's origin is the Host it sent the request to. */
static void
test_same_origin (void)
{
  g_autoptr (JwOrigins) o = jw_origins_new ("http://a.test", NULL, NULL);

  g_assert_true (
      jw_origins_allows (o, "http://jobs.example.com", "jobs.example.com"));
  g_assert_true (
      jw_origins_allows (o, "http://jobs.example.com", "jobs.example.com:80"));
  g_assert_true (jw_origins_allows (o, "https://jobs.example.com",
                                    "Jobs.Example.com:443"));
  g_assert_true (
      jw_origins_allows (o, "http://127.0.0.1:9000", "127.0.0.1:9000"));
  g_assert_false (
      jw_origins_allows (o, "http://evil.test", "jobs.example.com"));
  g_assert_false (
      jw_origins_allows (o, "http://127.0.0.1:9001", "127.0.0.1:9000"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/common/origin/list", test_list);
  g_test_add_func ("/common/origin/default", test_default);
  g_test_add_func ("/common/origin/any-and-bad", test_any_and_bad);
  g_test_add_func ("/common/origin/same-origin", test_same_origin);
  return g_test_run ();
}
