/* web_test.c - the web console's files: what the build embeds, and how
 * web_serve answers (types, caching, the security headers, methods). */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "admin/web.h"
#include "admin/web_assets.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const struct web_asset *asset(const char *name)
{
	for (const struct web_asset *a = web_assets; a->name; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

static void test_the_build_embeds_the_console_files(void **state)
{
	const char *names[] = {"index.html", "app.js", "app.css", "icon.svg"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		const struct web_asset *a = asset(names[i]);
		assert_non_null(a);
		assert_true(a->len > 0);
		assert_int_equal(a->data[a->len], '\0');
		assert_int_equal(strlen(a->etag), 18); /* 16 hex digits, quoted */
	}
}

/* The policy forbids inline code: the page would not run with any. */
static void test_index_html_has_no_inline_script_or_style(void **state)
{
	const struct web_asset *a = asset("index.html");
	const char *html = (const char *)a->data;
	for (const char *p = html; (p = strstr(p, "<script")) != NULL; p++) {
		const char *end = strchr(p, '>');
		assert_non_null(end);
		assert_non_null(memmem(p, (size_t)(end - p), " src=", 5));
	}
	assert_null(strstr(html, "<style"));
	assert_null(strstr(html, " style="));
	assert_null(strstr(html, " onclick="));
	assert_null(strstr(html, " onload="));
	assert_null(strstr(html, "http://"));
	assert_null(strstr(html, "https://"));
}

struct server {
	struct event_base *base;
	struct evhttp *http;
	int port;
	bool others; /* a request web_serve left alone */
};

static void on_request(struct evhttp_request *req, void *arg)
{
	struct server *s = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (!web_serve(req, path)) {
		s->others = true;
		evhttp_send_reply(req, 418, "elsewhere", NULL);
	}
}

static int setup(void **state)
{
	struct server *s = calloc(1, sizeof *s);
	s->base = event_base_new();
	s->http = evhttp_new(s->base);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_gencb(s->http, on_request, s);
	struct evhttp_bound_socket *b = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
	assert_non_null(b);
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&sa, &len);
	s->port = ntohs(sa.sin_port);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct server *s = *state;
	evhttp_free(s->http);
	event_base_free(s->base);
	free(s);
	return 0;
}

/* One request (extra header lines end in CRLF); the whole answer in buf. */
static void request(struct server *s, const char *method, const char *path, const char *headers,
                    char *buf, size_t n)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	char req[512];
	int len = snprintf(req, sizeof req,
	                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n",
	                   method, path, headers);
	assert_int_equal(write(fd, req, (size_t)len), len);
	size_t got = 0;
	for (int i = 0; i < 2000; i++) {
		event_base_loop(s->base, EVLOOP_NONBLOCK);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 1) == 1) {
			ssize_t r = read(fd, buf + got, n - 1 - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
	}
	buf[got] = '\0';
	close(fd);
}

static void test_root_is_index_html_with_the_security_headers(void **state)
{
	static char buf[1 << 17];
	request(*state, "GET", "/", "", buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_non_null(strstr(buf, "Content-Type: text/html; charset=utf-8\r\n"));
	assert_non_null(strstr(buf, "Content-Security-Policy: default-src 'self';"));
	assert_non_null(strstr(buf, "frame-ancestors 'none'"));
	assert_non_null(strstr(buf, "X-Content-Type-Options: nosniff\r\n"));
	assert_non_null(strstr(buf, "X-Frame-Options: DENY\r\n"));
	assert_non_null(strstr(buf, "Cache-Control: no-cache\r\n"));
	assert_non_null(strstr(buf, asset("index.html")->etag));
	assert_non_null(strstr(buf, "<script src=\"/static/app.js\""));
}

static void test_static_files_have_their_types(void **state)
{
	static char buf[1 << 17];
	request(*state, "GET", "/static/app.js", "", buf, sizeof buf);
	assert_non_null(strstr(buf, "Content-Type: text/javascript; charset=utf-8\r\n"));
	request(*state, "GET", "/static/app.css", "", buf, sizeof buf);
	assert_non_null(strstr(buf, "Content-Type: text/css; charset=utf-8\r\n"));
	request(*state, "GET", "/static/icon.svg", "", buf, sizeof buf);
	assert_non_null(strstr(buf, "Content-Type: image/svg+xml\r\n"));
}

static void test_a_known_etag_is_304_without_a_body(void **state)
{
	static char buf[1 << 17];
	char header[128];
	snprintf(header, sizeof header, "If-None-Match: W/%s\r\n", asset("app.js")->etag);
	request(*state, "GET", "/static/app.js", header, buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 304"));
	assert_null(strstr(buf, "use strict"));
	request(*state, "GET", "/static/app.js", "If-None-Match: \"0000000000000000\"\r\n", buf,
	        sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
}

static void test_unknown_files_and_other_methods_are_refused(void **state)
{
	static char buf[8192];
	request(*state, "GET", "/static/missing.js", "", buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 404"));
	request(*state, "GET", "/static/../admin.token", "", buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 404"));
	request(*state, "GET", "/static/", "", buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 404"));
	request(*state, "POST", "/", "Content-Length: 0\r\n", buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 405"));
	assert_non_null(strstr(buf, "Allow: GET, HEAD\r\n"));
}

static void test_other_paths_are_left_to_the_api(void **state)
{
	static char buf[8192];
	struct server *s = *state;
	request(s, "GET", "/api/v1/status", "", buf, sizeof buf);
	assert_true(s->others);
	assert_non_null(strstr(buf, "HTTP/1.1 418"));
	s->others = false;
	request(s, "GET", "/index.html", "", buf, sizeof buf);
	assert_true(s->others);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_the_build_embeds_the_console_files),
	    cmocka_unit_test(test_index_html_has_no_inline_script_or_style),
	    cmocka_unit_test_setup_teardown(test_root_is_index_html_with_the_security_headers,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_static_files_have_their_types, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_known_etag_is_304_without_a_body, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_files_and_other_methods_are_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_other_paths_are_left_to_the_api, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
