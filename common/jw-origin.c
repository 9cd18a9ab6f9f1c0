/* jw-origin: parses and matches origins. An origin is compared in the
 * form browsers send: lower-case scheme and host, the port only when it
 * is not the scheme's default, no path and no trailing slash. */
#include "jw-origin.h"

#include <gio/gio.h>
#include <string.h>

struct _JwOrigins
{
  gboolean any;
  GPtrArray *list; /* normalised origins */
  char *text;
};

/* The normalised form of an origin, or NULL when str is not one. */
static char *
origin_normalize (const char *str)
{
  g_autoptr (GUri) uri = NULL;
  g_autofree char *host = NULL;
  g_autofree char *lscheme = NULL;
  g_autofree char *bracketed = NULL;
  const char *scheme, *path;
  int port;

  uri = g_uri_parse (str, G_URI_FLAGS_NONE, NULL);
  if (uri == NULL)
    return NULL;
  scheme = g_uri_get_scheme (uri);
  path = g_uri_get_path (uri);
  if (g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0'
      || (g_ascii_strcasecmp (scheme, "http") != 0
          && g_ascii_strcasecmp (scheme, "https") != 0)
      || (path[0] != '\0' && strcmp (path, "/") != 0)
      || g_uri_get_query (uri) != NULL || g_uri_get_fragment (uri) != NULL
      || g_uri_get_userinfo (uri) != NULL)
    return NULL;

  host = g_ascii_strdown (g_uri_get_host (uri), -1);
  lscheme = g_ascii_strdown (scheme, -1);
  port = g_uri_get_port (uri);
  if ((port == 80 && strcmp (lscheme, "http") == 0)
      || (port == 443 && strcmp (lscheme, "https") == 0))
    port = -1;
  if (strchr (host, ':') != NULL) /* an IPv6 literal */
    bracketed = g_strdup_printf ("[%s]", host);
  if (port > 0)
    return g_strdup_printf ("%s://%s:%d", lscheme, bracketed ? bracketed : host,
                            port);
  return g_strdup_printf ("%s://%s", lscheme, bracketed ? bracketed : host);
}

static void
origins_add (JwOrigins *self, char *origin)
{
  for (guint i = 0; i < self->list->len; i++)
    if (strcmp (g_ptr_array_index (self->list, i), origin) == 0)
      {
        g_free (origin);
        return;
      }
  g_ptr_array_add (self->list, origin);
}

/* Adds scheme://host[:port] of uri, when that is an origin. */
static void
origins_add_parts (JwOrigins *self, GUri *uri, const char *host)
{
  g_autofree char *str = NULL;
  char *origin;

  if (g_uri_get_port (uri) > 0)
    str = g_strdup_printf ("%s://%s:%d", g_uri_get_scheme (uri), host,
                           g_uri_get_port (uri));
  else
    str = g_strdup_printf ("%s://%s", g_uri_get_scheme (uri), host);
  origin = origin_normalize (str);
  if (origin != NULL)
    origins_add (self, origin);
}

/* The origin of url (a path in it does not matter), and its twin when
 * its host is 127.0.0.1 or localhost. */
static void
origins_add_default (JwOrigins *self, const char *url)
{
  g_autoptr (GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  const char *host = uri ? g_uri_get_host (uri) : NULL;

  if (host == NULL || *host == '\0')
    return;
  if (strchr (host, ':') != NULL)
    {
      g_autofree char *bracketed = g_strdup_printf ("[%s]", host);

      origins_add_parts (self, uri, bracketed);
      return;
    }
  origins_add_parts (self, uri, host);
  if (strcmp (host, "127.0.0.1") == 0)
    origins_add_parts (self, uri, "localhost");
  else if (g_ascii_strcasecmp (host, "localhost") == 0)
    origins_add_parts (self, uri, "127.0.0.1");
}

JwOrigins *
jw_origins_new (const char *list, const char *default_url, GError **error)
{
  g_autoptr (JwOrigins) self = g_new0 (JwOrigins, 1);
  g_auto (GStrv) items = NULL;

  self->list = g_ptr_array_new_with_free_func (g_free);
  if (list != NULL)
    items = g_strsplit (list, ",", -1);
  for (guint i = 0; items != NULL && items[i] != NULL; i++)
    {
      const char *item = g_strstrip (items[i]);
      char *origin;

      if (*item == '\0')
        continue;
      if (strcmp (item, "*") == 0)
        {
          self->any = TRUE;
          continue;
        }
      /* Stored without a path: "http://h:1/" and "http://h:1" are one. */
      origin = origin_normalize (item);
      if (origin == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "allow-origins: \"%s\" is not an origin such as "
                       "http://example.com:8081",
                       item);
          return NULL;
        }
      origins_add (self, origin);
    }
  if (!self->any && self->list->len == 0 && default_url != NULL)
    origins_add_default (self, default_url);

  if (self->any)
    self->text = g_strdup ("*");
  else
    {
      g_ptr_array_add (self->list, NULL);
      self->text = g_strjoinv (",", (char **)self->list->pdata);
      g_ptr_array_set_size (self->list, self->list->len - 1);
    }
  return g_steal_pointer (&self);
}

void
jw_origins_free (JwOrigins *self)
{
  if (self == NULL)
    return;
  g_ptr_array_unref (self->list);
  g_free (self->text);
  g_free (self);
}

/* TRUE when origin's host[:port] is host as a Host header names it. */
static gboolean
same_origin (const char *origin, const char *host)
{
  const char *authority = strstr (origin, "://");
  g_autofree char *h = NULL;
  gsize len;

  if (authority == NULL || host == NULL)
    return FALSE;
  authority += 3;
  h = g_ascii_strdown (host, -1);
  len = strlen (h);
  /* A Host header may carry the default port that the origin leaves out. */
  if (g_str_has_prefix (origin, "http://") && g_str_has_suffix (h, ":80"))
    h[len - 3] = '\0';
  else if (g_str_has_prefix (origin, "https://")
           && g_str_has_suffix (h, ":443"))
    h[len - 4] = '\0';
  return strcmp (authority, h) == 0;
}

gboolean
jw_origins_allows (JwOrigins *self, const char *origin, const char *host)
{
  g_autofree char *norm = NULL;

  if (origin == NULL)
    return FALSE;
  if (self->any)
    return TRUE;
  norm = origin_normalize (origin);
  if (norm == NULL)
    return FALSE; /* "null" and other opaque origins */
  for (guint i = 0; i < self->list->len; i++)
    if (strcmp (g_ptr_array_index (self->list, i), norm) == 0)
      return TRUE;
  return same_origin (norm, host);
}

const char *
jw_origins_describe (JwOrigins *self)
{
  return self->text;
}
