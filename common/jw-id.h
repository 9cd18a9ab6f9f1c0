/* jw-id: job ids, 26 characters of lower-case Crockford base32 (48 bits of
 * milliseconds, 80 random bits), so that ids sort by creation time and all
 * have one length. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define JW_ID_LEN 26

/* Writes a new id and a NUL into out. */
void jw_id_new (char out[JW_ID_LEN + 1]);
/* TRUE when s (len bytes, or NUL-terminated when len < 0) is a job id. */
gboolean jw_id_valid (const char *s, gssize len);

G_END_DECLS
