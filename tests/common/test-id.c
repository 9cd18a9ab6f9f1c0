/* Job ids: one length, one alphabet, sorted by creation time. */
#include "jw-id.h"
#include "jw-util.h"

#include <string.h>

static void
test_format (void)
{
  g_autoptr (GHashTable) seen =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (int i = 0; i < 10000; i++)
    {
      char id[JW_ID_LEN + 1];

      jw_id_new (id);
      g_assert_cmpuint (strlen (id), ==, JW_ID_LEN);
      g_assert_true (jw_id_valid (id, -1));
      g_assert_true (g_hash_table_add (seen, g_strdup (id)));
    }
}

static void
test_sorted_by_time (void)
{
  char a[JW_ID_LEN + 1], b[JW_ID_LEN + 1];
  gint64 start = jw_now_ms ();

  jw_id_new (a);
  while (jw_now_ms () < start + 2)
    ; /* the clock moves on by two milliseconds: a bounded busy wait */
  jw_id_new (b);
  g_assert_cmpint (strcmp (a, b), <, 0);
}

static void
test_invalid (void)
{
  g_assert_false (jw_id_valid (NULL, -1));
  g_assert_false (jw_id_valid ("", -1));
  g_assert_false (jw_id_valid ("01hf3zzzzzzzzzzzzzzzzzzzz", -1));   /* 25 */
  g_assert_false (jw_id_valid ("01hf3zzzzzzzzzzzzzzzzzzzzzz", -1)); /* 27 */
  g_assert_false (jw_id_valid ("01HF3ZZZZZZZZZZZZZZZZZZZZZ", -1));  /* case */
  g_assert_false (jw_id_valid ("01hf3zzzzzzzzzzzzzzzzzzzzu", -1));  /* u */
  g_assert_false (jw_id_valid ("../../etc/passwd/aaaaaaaaa", -1));
  g_assert_false (jw_id_valid ("01hf3zzzzzzzzzz\0zzzzzzzzzz", 26));
  g_assert_true (jw_id_valid ("01hf3zzzzzzzzzzzzzzzzzzzzz", -1));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/common/id/format-and-unique", test_format);
  g_test_add_func ("/common/id/sorted-by-time", test_sorted_by_time);
  g_test_add_func ("/common/id/invalid", test_invalid);
  return g_test_run ();
}
