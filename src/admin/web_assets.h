/* web_assets.h - the web console's files, built into the binary.
 *
 * The build (cmake/embed_web.cmake) writes web_assets.c from the files of
 * web/: one row per file, in name order, ended by a row whose name is NULL.
 * The bytes are read-only and live as long as the program.
 */
#ifndef OUTPOST_ADMIN_WEB_ASSETS_H
#define OUTPOST_ADMIN_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *name;          /* the file's name under web/: "app.js" */
	const unsigned char *data; /* its bytes (plus a NUL not counted in len) */
	size_t len;
	const char *etag; /* a strong ETag, quoted: "\"1f2e...\"" */
};

extern const struct web_asset web_assets[];

#endif
