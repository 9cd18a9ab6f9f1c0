/* bench-util: what the load clients of bench/ share. */
#include "bench-util.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>

gint64
bench_now_us (clockid_t clock)
{
  struct timespec ts;

  clock_gettime (clock, &ts);
  return (gint64)ts.tv_sec * G_USEC_PER_SEC + ts.tv_nsec / 1000;
}

gboolean
bench_parse_url (const char *url, struct sockaddr_storage *addr, socklen_t *len,
                 char *hostport, gsize hostport_size)
{
  g_autofree char *host = NULL;
  g_autofree char *port = NULL;
  const char *rest, *colon, *end;
  struct addrinfo hints = { 0 }, *res = NULL;

  if (!g_str_has_prefix (url, "http://"))
    return FALSE;
  rest = url + strlen ("http://");
  end = strchr (rest, '/');
  if (end == NULL)
    end = rest + strlen (rest);
  colon = memchr (rest, ':', end - rest);
  if (colon == NULL)
    return FALSE;
  host = g_strndup (rest, colon - rest);
  port = g_strndup (colon + 1, end - colon - 1);
  g_snprintf (hostport, hostport_size, "%s:%s", host, port);
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo (host, port, &hints, &res) != 0 || res == NULL)
    return FALSE;
  memcpy (addr, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo (res);
  return TRUE;
}

gsize
bench_ws_frame (guint8 *frame, gsize size, guint8 opcode, const char *payload,
                gsize len)
{
  guint32 r = g_random_int ();
  guint8 mask[4];
  gsize h = 0;

  if (len >= 65536 || size < len + 8)
    return 0;
  memcpy (mask, &r, 4);
  frame[h++] = 0x80 | opcode;
  if (len < 126)
    frame[h++] = 0x80 | len;
  else
    {
      frame[h++] = 0x80 | 126;
      frame[h++] = len >> 8;
      frame[h++] = len & 0xff;
    }
  memcpy (frame + h, mask, 4);
  h += 4;
  for (gsize i = 0; i < len; i++)
    frame[h + i] = payload[i] ^ mask[i % 4];
  return h + len;
}

gsize
bench_ws_frame_head (const guint8 *data, gsize len, guint8 *first,
                     gboolean *masked, guint64 *payload)
{
  guint64 plen;
  gsize h = 2;

  if (len < 2)
    return 0;
  plen = data[1] & 0x7f;
  if (plen == 126)
    {
      if (len < 4)
        return 0;
      plen = (guint64)data[2] << 8 | data[3];
      h = 4;
    }
  else if (plen == 127)
    {
      if (len < 10)
        return 0;
      plen = 0;
      for (int i = 0; i < 8; i++)
        plen = plen << 8 | data[2 + i];
      h = 10;
    }
  if (len - h < plen)
    return 0;
  *first = data[0];
  *masked = (data[1] & 0x80) != 0;
  *payload = plen;
  return h;
}

gboolean
bench_proc_ticks (int pid, guint64 *ticks)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", pid);
  g_autofree char *stat = NULL;
  unsigned long utime, stime;
  const char *q;

  if (!g_file_get_contents (path, &stat, NULL, NULL))
    return FALSE;
  /* After the command name, which may hold spaces: fields 3… */
  q = strrchr (stat, ')');
  if (q == NULL
      || sscanf (q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                 &utime, &stime)
             != 2)
    return FALSE;
  *ticks = utime + stime;
  return TRUE;
}

gboolean
bench_proc_rss (int pid, guint64 *kib)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", pid);
  g_autofree char *status = NULL;
  const char *q;

  if (!g_file_get_contents (path, &status, NULL, NULL))
    return FALSE;
  q = strstr (status, "VmRSS:");
  if (q == NULL)
    return FALSE;
  *kib = g_ascii_strtoull (q + strlen ("VmRSS:"), NULL, 10);
  return TRUE;
}
