/* jw-json: strict JSON for input from outside.
 *
 * json-glib 1.6 accepts comments and single quotes and has no nesting
 * limit, so every outside document is first checked by a small RFC 8259
 * validator with an explicit depth bound, iteratively, before json-glib
 * builds a tree from it. */
#include "jw-json.h"

#include <errno.h>
#include <math.h>
#include <string.h>

G_DEFINE_QUARK (jw - json - error - quark, jw_json_error)

typedef struct
{
  const char *p;
  const char *end;
} Scan;

static void
skip_ws (Scan *s)
{
  while (s->p < s->end
         && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static gboolean
scan_literal (Scan *s, const char *word)
{
  gsize n = strlen (word);

  if ((gsize)(s->end - s->p) < n || memcmp (s->p, word, n) != 0)
    return FALSE;
  s->p += n;
  return TRUE;
}

/* At s->p: "uXXXX". Returns the code unit, or G_MAXUINT32. */
static gunichar
scan_hex4 (Scan *s)
{
  gunichar u = 0;

  s->p++;
  for (int i = 0; i < 4; i++, s->p++)
    {
      if (s->p >= s->end || !g_ascii_isxdigit (*s->p))
        return G_MAXUINT32;
      u = u << 4 | (gunichar)g_ascii_xdigit_value (*s->p);
    }
  return u;
}

/* Text must be valid Unicode without NUL, which C strings would cut short:
 * no \u0000, and a surrogate only as a pair, high then low. */
static gboolean
scan_unicode_escape (Scan *s)
{
  gunichar u = scan_hex4 (s), low;

  if (u == 0 || u == G_MAXUINT32 || (u >= 0xdc00 && u <= 0xdfff))
    return FALSE;
  if (u < 0xd800 || u > 0xdbff)
    return TRUE;
  if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
    return FALSE;
  s->p++;
  low = scan_hex4 (s);
  return low >= 0xdc00 && low <= 0xdfff;
}

static gboolean
scan_string (Scan *s)
{
  const char *start;

  if (s->p >= s->end || *s->p != '"')
    return FALSE;
  s->p++;
  start = s->p;
  while (s->p < s->end)
    {
      unsigned char c = (unsigned char)*s->p;

      if (c == '"')
        {
          gboolean ok = g_utf8_validate (start, s->p - start, NULL);

          s->p++;
          return ok;
        }
      if (c < 0x20)
        return FALSE;
      if (c == '\\')
        {
          s->p++;
          if (s->p >= s->end)
            return FALSE;
          switch (*s->p)
            {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't': s->p++; break;
            case 'u':
              if (!scan_unicode_escape (s))
                return FALSE;
              break;
            default: return FALSE;
            }
          continue;
        }
      s->p++;
    }
  return FALSE;
}

static gboolean
scan_digits (Scan *s)
{
  const char *start = s->p;

  while (s->p < s->end && g_ascii_isdigit (*s->p))
    s->p++;
  return s->p > start;
}

static gboolean scan_number_syntax (Scan *s);

/* A number must also fit a double: 1e999 is JSON, but it would come back
 * as infinity, which JSON cannot write. */
static gboolean
scan_number (Scan *s)
{
  const char *start = s->p;
  char buf[64];
  g_autofree char *big = NULL;
  const char *text = buf;
  gsize len;

  if (!scan_number_syntax (s))
    return FALSE;
  len = s->p - start;
  if (len < sizeof buf)
    memcpy (buf, start, len), buf[len] = '\0';
  else
    text = big = g_strndup (start, len);
  if (strpbrk (text, ".eE") == NULL)
    {
      /* json-glib reads an integer as a gint64 and wraps silently past it. */
      errno = 0;
      g_ascii_strtoll (text, NULL, 10);
      return errno != ERANGE;
    }
  return isfinite (g_ascii_strtod (text, NULL));
}

static gboolean
scan_number_syntax (Scan *s)
{
  if (s->p < s->end && *s->p == '-')
    s->p++;
  if (s->p < s->end && *s->p == '0')
    s->p++;
  else if (!scan_digits (s))
    return FALSE;
  if (s->p < s->end && *s->p == '.')
    {
      s->p++;
      if (!scan_digits (s))
        return FALSE;
    }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
    {
      s->p++;
      if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
        s->p++;
      if (!scan_digits (s))
        return FALSE;
    }
  return TRUE;
}

static gboolean
scan_scalar (Scan *s)
{
  if (s->p >= s->end)
    return FALSE;
  switch (*s->p)
    {
    case '"': return scan_string (s);
    case 't': return scan_literal (s, "true");
    case 'f': return scan_literal (s, "false");
    case 'n': return scan_literal (s, "null");
    default: return scan_number (s);
    }
}

gboolean
jw_json_validate (const char *data, gsize len, guint max_depth, GError **error)
{
  /* The stack of open containers: '{' or '['. Depth is bounded, so it is. */
  g_autofree char *stack = g_malloc (max_depth + 1);
  guint depth = 0;
  Scan s = { data, data + len };
  gboolean want_value = TRUE;

  skip_ws (&s);
  for (;;)
    {
      if (want_value)
        {
          skip_ws (&s);
          if (s.p < s.end && (*s.p == '{' || *s.p == '['))
            {
              if (depth == max_depth)
                {
                  g_set_error (error, JW_JSON_ERROR, JW_JSON_ERROR_TOO_DEEP,
                               "JSON nested deeper than %u levels", max_depth);
                  return FALSE;
                }
              stack[depth++] = *s.p++;
              skip_ws (&s);
              if (s.p < s.end && *s.p == (stack[depth - 1] == '{' ? '}' : ']'))
                {
                  s.p++;
                  depth--;
                  want_value = FALSE;
                  goto after_value;
                }
              if (stack[depth - 1] == '{')
                goto object_key;
              continue;
            }
          if (!scan_scalar (&s))
            goto syntax;
          want_value = FALSE;
        }

    after_value:
      skip_ws (&s);
      if (depth == 0)
        break;
      if (s.p >= s.end)
        goto syntax;
      if (*s.p == ',')
        {
          s.p++;
          want_value = TRUE;
          if (stack[depth - 1] == '{')
            goto object_key;
          continue;
        }
      if (*s.p == (stack[depth - 1] == '{' ? '}' : ']'))
        {
          s.p++;
          depth--;
          goto after_value;
        }
      goto syntax;

    object_key:
      skip_ws (&s);
      if (!scan_string (&s))
        goto syntax;
      skip_ws (&s);
      if (s.p >= s.end || *s.p != ':')
        goto syntax;
      s.p++;
      want_value = TRUE;
    }

  if (s.p != s.end)
    goto syntax;
  return TRUE;

syntax:
  g_set_error (error, JW_JSON_ERROR, JW_JSON_ERROR_SYNTAX,
               "invalid JSON at byte %" G_GSIZE_FORMAT, (gsize)(s.p - data));
  return FALSE;
}

JsonNode *
jw_json_parse (const char *data, gsize len, guint max_depth, GError **error)
{
  g_autoptr (JsonParser) parser = NULL;
  JsonNode *root;

  if (!jw_json_validate (data, len, max_depth, error))
    return NULL;
  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, data, len, error))
    return NULL;
  root = json_parser_get_root (parser);
  if (root == NULL)
    {
      g_set_error_literal (error, JW_JSON_ERROR, JW_JSON_ERROR_SYNTAX,
                           "empty JSON document");
      return NULL;
    }
  return json_node_ref (root);
}

JsonNode *
jw_json_parse_bytes (GBytes *bytes, guint max_depth, GError **error)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  return jw_json_parse (data ? data : "", len, max_depth, error);
}

static void write_node (GString *out, JsonNode *node);

static void
write_string (GString *out, const char *str)
{
  g_string_append_c (out, '"');
  for (const unsigned char *p = (const unsigned char *)str; *p; p++)
    {
      switch (*p)
        {
        case '"': g_string_append (out, "\\\""); break;
        case '\\': g_string_append (out, "\\\\"); break;
        case '\n': g_string_append (out, "\\n"); break;
        case '\r': g_string_append (out, "\\r"); break;
        case '\t': g_string_append (out, "\\t"); break;
        case '\b': g_string_append (out, "\\b"); break;
        case '\f': g_string_append (out, "\\f"); break;
        default:
          if (*p < 0x20)
            g_string_append_printf (out, "\\u%04x", *p);
          else
            g_string_append_c (out, (char)*p);
        }
    }
  g_string_append_c (out, '"');
}

/* The shortest form that reads back as the same double: 0.1, not
 * 0.10000000000000001. JSON has no NaN or infinity; they become null. */
static void
write_double (GString *out, double d)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (d))
    {
      g_string_append (out, "null");
      return;
    }
  for (int precision = 15; precision <= 17; precision++)
    {
      g_ascii_formatd (buf, sizeof buf,
                       precision == 15   ? "%.15g"
                       : precision == 16 ? "%.16g"
                                         : "%.17g",
                       d);
      if (g_ascii_strtod (buf, NULL) == d)
        break;
    }
  g_string_append (out, buf);
  /* Keep it a number that reads back as a double. */
  if (strpbrk (buf, ".eEn") == NULL)
    g_string_append (out, ".0");
}

static void
write_value (GString *out, JsonNode *node)
{
  switch (json_node_get_value_type (node))
    {
    case G_TYPE_INT64:
      g_string_append_printf (out, "%" G_GINT64_FORMAT,
                              json_node_get_int (node));
      break;
    case G_TYPE_DOUBLE: write_double (out, json_node_get_double (node)); break;
    case G_TYPE_BOOLEAN:
      g_string_append (out, json_node_get_boolean (node) ? "true" : "false");
      break;
    case G_TYPE_STRING: write_string (out, json_node_get_string (node)); break;
    default: g_string_append (out, "null");
    }
}

static void
write_node (GString *out, JsonNode *node)
{
  switch (node ? JSON_NODE_TYPE (node) : JSON_NODE_NULL)
    {
    case JSON_NODE_OBJECT:
      {
        JsonObjectIter iter;
        const char *name;
        JsonNode *member;
        gboolean first = TRUE;

        g_string_append_c (out, '{');
        json_object_iter_init_ordered (&iter, json_node_get_object (node));
        while (json_object_iter_next_ordered (&iter, &name, &member))
          {
            if (!first)
              g_string_append_c (out, ',');
            first = FALSE;
            write_string (out, name);
            g_string_append_c (out, ':');
            write_node (out, member);
          }
        g_string_append_c (out, '}');
        break;
      }
    case JSON_NODE_ARRAY:
      {
        JsonArray *array = json_node_get_array (node);
        guint n = json_array_get_length (array);

        g_string_append_c (out, '[');
        for (guint i = 0; i < n; i++)
          {
            if (i > 0)
              g_string_append_c (out, ',');
            write_node (out, json_array_get_element (array, i));
          }
        g_string_append_c (out, ']');
        break;
      }
    case JSON_NODE_VALUE: write_value (out, node); break;
    case JSON_NODE_NULL: g_string_append (out, "null"); break;
    }
}

/* Compact JSON, members in the order they were added. Nodes built here are
 * as deep as what jw_json_validate let in, so recursion is bounded. */
char *
jw_json_to_string (JsonNode *node, gsize *len)
{
  GString *out = g_string_sized_new (256);

  write_node (out, node);
  if (len)
    *len = out->len;
  return g_string_free (out, FALSE);
}

GBytes *
jw_json_to_bytes (JsonNode *node)
{
  gsize len;
  char *str = jw_json_to_string (node, &len);

  return g_bytes_new_take (str, len);
}

static JsonNode *
member (JsonObject *obj, const char *name, JsonNodeType type)
{
  JsonNode *node;

  if (obj == NULL || !json_object_has_member (obj, name))
    return NULL;
  node = json_object_get_member (obj, name);
  return JSON_NODE_TYPE (node) == type ? node : NULL;
}

const char *
jw_json_get_string (JsonObject *obj, const char *name)
{
  JsonNode *node = member (obj, name, JSON_NODE_VALUE);

  if (node == NULL || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

gboolean
jw_json_get_int (JsonObject *obj, const char *name, gint64 *out)
{
  JsonNode *node = member (obj, name, JSON_NODE_VALUE);
  double d;

  if (node == NULL)
    return FALSE;
  if (json_node_get_value_type (node) == G_TYPE_INT64)
    {
      *out = json_node_get_int (node);
      return TRUE;
    }
  if (json_node_get_value_type (node) != G_TYPE_DOUBLE)
    return FALSE;
  /* 3.0 counts as an integer; 3.5 and out-of-range values do not. */
  d = json_node_get_double (node);
  if (d != (double)(gint64)d || d < -9.0e15 || d > 9.0e15)
    return FALSE;
  *out = (gint64)d;
  return TRUE;
}

gboolean
jw_json_get_double (JsonObject *obj, const char *name, double *out)
{
  JsonNode *node = member (obj, name, JSON_NODE_VALUE);
  GType t;

  if (node == NULL)
    return FALSE;
  t = json_node_get_value_type (node);
  if (t == G_TYPE_INT64)
    *out = (double)json_node_get_int (node);
  else if (t == G_TYPE_DOUBLE)
    *out = json_node_get_double (node);
  else
    return FALSE;
  return TRUE;
}

gboolean
jw_json_get_bool (JsonObject *obj, const char *name, gboolean *out)
{
  JsonNode *node = member (obj, name, JSON_NODE_VALUE);

  if (node == NULL || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    return FALSE;
  *out = json_node_get_boolean (node);
  return TRUE;
}

JsonObject *
jw_json_get_object (JsonObject *obj, const char *name)
{
  JsonNode *node = member (obj, name, JSON_NODE_OBJECT);

  return node ? json_node_get_object (node) : NULL;
}

JsonArray *
jw_json_get_array (JsonObject *obj, const char *name)
{
  JsonNode *node = member (obj, name, JSON_NODE_ARRAY);

  return node ? json_node_get_array (node) : NULL;
}

JsonObject *
jw_json_node_object (JsonNode *node)
{
  if (node == NULL || JSON_NODE_TYPE (node) != JSON_NODE_OBJECT)
    return NULL;
  return json_node_get_object (node);
}
