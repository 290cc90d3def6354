/* check_api_test.c - GET /api/v1/check: the domain it accepts, the report
 * made off the loop thread, the queue limit, and a stop that ends a check
 * under way at once. The "MX hosts" are address literals on loopback: one
 * port where nobody listens, one where a server accepts and never speaks. */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "admin/check_api.h"
#include "check/report.h"
#include "conf/conf.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void test_domains_are_lower_case_without_the_final_dot(void **state)
{
	char out[256];
	assert_true(check_domain_normalize("Example.NET.", out, sizeof out));
	assert_string_equal(out, "example.net");
	assert_true(check_domain_normalize("[IPv6:2001:DB8::1]", out, sizeof out));
	assert_string_equal(out, "[ipv6:2001:db8::1]");
	assert_true(check_domain_normalize("b\xc3\xbc"
	                                   "cher.example",
	                                   out, sizeof out)); /* a U-label */
}

static void test_what_no_domain_has_is_refused(void **state)
{
	char out[16];
	assert_false(check_domain_normalize("", out, sizeof out));
	assert_false(check_domain_normalize(".", out, sizeof out));
	assert_false(check_domain_normalize("a b.example", out, sizeof out));
	assert_false(check_domain_normalize("a/b.example", out, sizeof out));
	assert_false(check_domain_normalize("a\nb", out, sizeof out));
	assert_false(check_domain_normalize("example.net?x", out, sizeof out));
	assert_false(check_domain_normalize("a-name-too-long.example", out, sizeof out));
}

struct fixture {
	struct event_base *base;
	struct evhttp *http;
	struct check_api *checks;
	struct conf conf;
	int port;      /* the HTTP server's */
	int silent_fd; /* accepts, never answers */
	int dead_port; /* nobody listens */
};

static void on_request(struct evhttp_request *req, void *arg)
{
	check_api_handle(((struct fixture *)arg)->checks, req);
}

static int listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof sa;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 16), 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	*port = ntohs(sa.sin_port);
	return fd;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	conf_defaults(&f->conf);
	free(f->conf.data_dir);
	f->conf.data_dir = strdup("/nonexistent/outpost-check-test");
	f->conf.connect_timeout_ms = 2000;
	int silent_port;
	f->silent_fd = listener(&silent_port);
	close(listener(&f->dead_port)); /* a port nobody listens on now */
	f->conf.delivery_port = silent_port;
	f->base = event_base_new();
	f->checks = check_api_new(f->base, &f->conf);
	f->http = evhttp_new(f->base);
	evhttp_set_gencb(f->http, on_request, f);
	struct evhttp_bound_socket *b = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&sa, &len);
	f->port = ntohs(sa.sin_port);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	check_api_free(f->checks);
	evhttp_free(f->http);
	event_base_free(f->base);
	close(f->silent_fd);
	conf_free(&f->conf);
	free(f);
	return 0;
}

static int client_send(struct fixture *f, const char *path)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	char req[512];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
	assert_int_equal(write(fd, req, (size_t)n), n);
	return fd;
}

/* Runs the loop until the answer comes (up to ms); its length, 0 if none. */
static size_t client_answer(struct fixture *f, int fd, char *buf, size_t n, int ms)
{
	for (int i = 0; i < ms; i++) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 1) == 1) {
			usleep(20000); /* the rest of a short answer */
			event_base_loop(f->base, EVLOOP_NONBLOCK);
			ssize_t r = read(fd, buf, n - 1);
			buf[r > 0 ? r : 0] = '\0';
			return r > 0 ? (size_t)r : 0;
		}
	}
	buf[0] = '\0';
	return 0;
}

static void pump(struct fixture *f, int ms)
{
	for (int i = 0; i < ms; i++) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static void test_a_bad_or_missing_domain_is_400(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	const char *paths[] = {"/api/v1/check",
	                       "/api/v1/check?domain=", "/api/v1/check?domain=a%20b",
	                       "/api/v1/check?domain=x.example&domain=y.example",
	                       "/api/v1/check?domain=x.example&verbose=1"};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		int fd = client_send(f, paths[i]);
		assert_true(client_answer(f, fd, buf, sizeof buf, 2000) > 0);
		assert_non_null(strstr(buf, "HTTP/1.1 400"));
		close(fd);
	}
}

static void test_the_report_comes_from_another_thread(void **state)
{
	struct fixture *f = *state;
	char buf[8192], path[128];
	f->conf.delivery_port = f->dead_port;
	snprintf(path, sizeof path, "/api/v1/check?domain=%%5B127.0.0.1%%5D");
	int fd = client_send(f, path);
	assert_true(client_answer(f, fd, buf, sizeof buf, 10000) > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_non_null(strstr(buf, "\"domain\":\"[127.0.0.1]\""));
	assert_non_null(strstr(buf, "Connection refused"));
	assert_non_null(strstr(buf, "\"deliverable\":false"));
	close(fd);
}

static void test_five_checks_at_most_then_503(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	int fds[6];
	for (int i = 0; i < 6; i++) {
		fds[i] = client_send(f, "/api/v1/check?domain=%5B127.0.0.1%5D");
		pump(f, 30);
	}
	assert_true(client_answer(f, fds[5], buf, sizeof buf, 2000) > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 503"));
	assert_non_null(strstr(buf, "Retry-After: 10"));
	check_api_drain(f->checks);
	for (int i = 0; i < 6; i++)
		close(fds[i]);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The check waits for a greeting that never comes (20 s): a stop must
 * not wait for that. */
static void test_a_stop_ends_a_check_under_way(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	int fd = client_send(f, "/api/v1/check?domain=%5B127.0.0.1%5D");
	pump(f, 300);
	double t0 = now_s();
	check_api_drain(f->checks);
	assert_true(now_s() - t0 < 1.0);
	assert_true(client_answer(f, fd, buf, sizeof buf, 2000) > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 503"));
	close(fd);
	fd = client_send(f, "/api/v1/check?domain=example.net");
	assert_true(client_answer(f, fd, buf, sizeof buf, 2000) > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 503")); /* stopping: no new checks */
	close(fd);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as the daemon does: an answer may meet a closed socket */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_domains_are_lower_case_without_the_final_dot),
	    cmocka_unit_test(test_what_no_domain_has_is_refused),
	    cmocka_unit_test_setup_teardown(test_a_bad_or_missing_domain_is_400, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_the_report_comes_from_another_thread, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_five_checks_at_most_then_503, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_stop_ends_a_check_under_way, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
