/* web.c - the web console's files from the binary (see web.h). */
#include "admin/web.h"

#include "admin/web_assets.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <string.h>

/* default-src 'self' forbids inline scripts and styles, eval and any other
 * host; the rest closes what default-src does not cover: <base>, where forms
 * may post, and who may frame the page (clickjacking an action button). */
#define CSP "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

static const struct {
	const char *suffix, *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *content_type(const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++) {
		size_t k = strlen(content_types[i].suffix);
		if (n > k && strcmp(name + n - k, content_types[i].suffix) == 0)
			return content_types[i].type;
	}
	return "application/octet-stream";
}

/* Names are compared whole: web/ has no subdirectories, and no "..". */
static const struct web_asset *asset_find(const char *name)
{
	for (const struct web_asset *a = web_assets; a->name; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static void add_common_headers(struct evkeyvalq *h)
{
	evhttp_add_header(h, "Content-Security-Policy", CSP);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
}

static void reply_plain(struct evhttp_request *req, int code, const char *text)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	add_common_headers(h);
	evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evbuffer_add(b, text, strlen(text));
	evhttp_send_reply(req, code, NULL, b);
	evbuffer_free(b);
}

/* If-None-Match uses the weak comparison (RFC 9110 §13.1.2): W/"x" matches
 * "x". Our tags are fixed-length hex, so a substring test is exact enough. */
static bool etag_matches(const char *if_none_match, const char *etag)
{
	return if_none_match &&
	       (strcmp(if_none_match, "*") == 0 || strstr(if_none_match, etag) != NULL);
}

static void reply_asset(struct evhttp_request *req, const struct web_asset *a)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *inm =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
	add_common_headers(h);
	/* not fingerprinted names: the browser asks again each time, and a 304
	 * costs a few bytes */
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_add_header(h, "ETag", a->etag);
	if (etag_matches(inm, a->etag)) {
		evhttp_send_reply(req, 304, "Not Modified", NULL);
		return;
	}
	evhttp_add_header(h, "Content-Type", content_type(a->name));
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_reference(b, a->data, a->len, NULL, NULL);
	evhttp_send_reply(req, 200, NULL, b); /* evhttp leaves the body out for HEAD */
	evbuffer_free(b);
}

bool web_serve(struct evhttp_request *req, const char *path)
{
	const char *name;
	if (strcmp(path, "/") == 0)
		name = "index.html";
	else if (strncmp(path, "/static/", 8) == 0)
		name = path + 8;
	else
		return false;
	if ((evhttp_request_get_command(req) & (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD)) == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply_plain(req, 405, "method not allowed (allowed: GET, HEAD)\n");
		return true;
	}
	const struct web_asset *a = asset_find(name);
	if (a == NULL)
		reply_plain(req, 404, "no such file\n");
	else
		reply_asset(req, a);
	return true;
}
