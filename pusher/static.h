/* static: the files of the web client (jobwire.js, the demo page) that the
 * pusher serves from its web root. */
#pragma once

#include <libsoup/soup.h>

G_BEGIN_DECLS

/* The web root to use: configured (may be "" to serve nothing), else the
 * installed data directory, else the source tree's web/ when the build
 * has not been installed. */
const char *jw_static_default_root (void);

/* Answers a GET or HEAD of path (as libsoup gives it, still
 * percent-encoded) with the file under root: "/" is index.html. A path
 * that leaves root, names a hidden file, is not a regular file or not of
 * a served kind (html, js, mjs, css, json, svg, png, ico, txt) gets 404.
 * Sets status, headers and body; answers 304 to a matching If-None-Match. */
void jw_static_serve (const char *root, SoupServerMessage *msg,
                      const char *path);

/* The Content-Type for a file name, from its extension; NULL for a kind
 * of file that is not served. */
const char *jw_static_content_type (const char *name);

G_END_DECLS
