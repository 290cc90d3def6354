/* https_test.c - the HTTPS client (src/util/https.c) without the network:
 * the trust store (system roots and the extra CA file together), and the
 * loop side against servers on the same loop that refuse, stall or speak
 * plain text; rejected requests; cancel at every point. The TLS and HTTP
 * cases with real servers are in tests/e2e/test_mtasts_fetch.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/https.h"
#include "util/timeutil.h"
#include "run_loop.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct event_base *base;
static struct https_client *client;

/* ---- a CA of our own, made here ---------------------------------------- */

static void add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
}

static X509 *make_ca(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);

	assert_non_null(key);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"Unit Test CA",
	                           -1, -1, 0);
	X509_set_issuer_name(x, name);
	add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
	add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign");
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	EVP_PKEY_free(key);
	return x;
}

static void write_pem(X509 *x, char *path)
{
	int fd = mkstemp(path);
	FILE *fp = fdopen(fd, "w");

	assert_non_null(fp);
	assert_int_equal(PEM_write_X509(fp, x), 1);
	fclose(fp);
}

/* 0 when store trusts cert as it is, else OpenSSL's verify error. */
static int verify_with(X509_STORE *store, X509 *cert)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int err;

	assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
	err = X509_verify_cert(ctx) == 1 ? 0 : X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	return err;
}

/* How many certificates of the system bundle store trusts. */
static int system_roots_trusted(X509_STORE *store, int *total)
{
	const char *path = getenv(X509_get_default_cert_file_env());
	FILE *fp = fopen(path ? path : X509_get_default_cert_file(), "r");
	X509 *x;
	int ok = 0;

	*total = 0;
	if (fp == NULL)
		return 0;
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
		(*total)++;
		ok += verify_with(store, x) == 0;
		X509_free(x);
	}
	fclose(fp);
	return ok;
}

static void test_trust_store_has_system_roots_and_the_extra_ca(void **state)
{
	char path[] = "/tmp/https_test_ca.XXXXXX", why[256] = "";
	X509 *ca = make_ca();
	X509_STORE *plain = https_trust_store_new(NULL, why, sizeof why);
	X509_STORE *extra;
	int total, with_plain, with_extra;

	write_pem(ca, path);
	extra = https_trust_store_new(path, why, sizeof why);
	assert_non_null(plain);
	assert_non_null(extra);
	with_plain = system_roots_trusted(plain, &total);
	if (total == 0) {
		unlink(path);
		skip(); /* no system bundle on this machine */
	}
	with_extra = system_roots_trusted(extra, &total);
	/* the system roots (a few may be expired) are all still trusted */
	assert_true(with_plain > total / 2);
	assert_int_equal(with_extra, with_plain);
	/* and the extra CA only where it was given */
	assert_int_equal(verify_with(extra, ca), 0);
	assert_int_equal(verify_with(plain, ca), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
	X509_STORE_free(plain);
	X509_STORE_free(extra);
	X509_free(ca);
	unlink(path);
}

static void test_unusable_ca_file_fails_with_reason(void **state)
{
	char path[] = "/tmp/https_test_empty.XXXXXX", why[256] = "";
	int fd = mkstemp(path);

	assert_true(write(fd, "not a certificate\n", 18) == 18);
	close(fd);
	assert_null(https_trust_store_new("/nonexistent/ca.pem", why, sizeof why));
	assert_non_null(strstr(why, "/nonexistent/ca.pem"));
	why[0] = '\0';
	assert_null(https_trust_store_new(path, why, sizeof why));
	assert_non_null(strstr(why, path));
	assert_null(https_client_new(base, path, why, sizeof why));
	unlink(path);
}

/* ---- servers on the loop ------------------------------------------------ */

enum server_mode { SERVER_SILENT, SERVER_PLAINTEXT };

struct server {
	int fd, port;
	enum server_mode mode;
	struct event *ev;
	int conns[64];
	int nconns;
};

static void server_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	int c = accept(fd, NULL, NULL);
	static const char reply[] = "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";

	if (c < 0)
		return;
	if (s->mode == SERVER_PLAINTEXT)
		assert_true(write(c, reply, sizeof reply - 1) > 0);
	if (s->nconns < 64)
		s->conns[s->nconns++] = c; /* held open, never answered */
	else
		close(c);
}

static int bound_socket(int *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void server_start(struct server *s, enum server_mode mode)
{
	memset(s, 0, sizeof *s);
	s->mode = mode;
	s->fd = bound_socket(&s->port);
	assert_int_equal(listen(s->fd, 16), 0);
	s->ev = event_new(base, s->fd, EV_READ | EV_PERSIST, server_on_accept, s);
	event_add(s->ev, NULL);
}

static void server_stop(struct server *s)
{
	for (int i = 0; i < s->nconns; i++)
		close(s->conns[i]);
	event_free(s->ev);
	close(s->fd);
}

/* A port where nothing listens: bound, never listening. */
static int refused_port(int *fd)
{
	int port;

	*fd = bound_socket(&port);
	return port;
}

/* ---- requests ----------------------------------------------------------- */

struct capture {
	int calls;
	int expected;
	bool inside_request; /* set around https_request: the callback must not see it */
	enum https_outcome outcome;
	char reason[256];
	int64_t at_us;
	struct https_request *self; /* for the cancel-from-callback test */
};

static void on_result(void *arg, const struct https_result *r)
{
	struct capture *c = arg;

	assert_false(c->inside_request);
	c->calls++;
	c->outcome = r->outcome;
	c->at_us = time_mono_us();
	snprintf(c->reason, sizeof c->reason, "%s", r->reason);
	assert_non_null(r->body);
	if (c->self != NULL)
		https_cancel(c->self); /* a no-op: the handle dies after this call */
	if (c->calls >= c->expected)
		event_base_loopbreak(base);
}

static struct https_request *start(struct capture *cap, const char *url, const char *addr,
                                   int64_t timeout_ms)
{
	const char *addrs[] = {addr};
	struct https_request_opts o = {
	    .method = HTTPS_GET,
	    .url = url,
	    .addrs = addrs,
	    .naddrs = addr ? 1 : 0,
	    .timeout_ms = timeout_ms,
	    .max_body = 1024,
	};
	struct https_request *r;

	cap->inside_request = true;
	r = https_request(client, &o, on_result, cap);
	cap->inside_request = false;
	return r;
}

static void run_for_ms(int ms)
{
	run_loop_for_ms(base, ms);
}

static void url_for(char *buf, size_t n, int port)
{
	snprintf(buf, n, "https://policy.test:%d/.well-known/mta-sts.txt", port);
}

static void test_plain_http_url_is_refused_from_the_loop(void **state)
{
	struct capture cap = {.expected = 1};

	start(&cap, "http://policy.test/.well-known/mta-sts.txt", "127.0.0.1", 1000);
	assert_int_equal(cap.calls, 0); /* not from within https_request */
	run_for_ms(2000);
	assert_int_equal(cap.calls, 1);
	assert_int_equal(cap.outcome, HTTPS_OTHER);
	assert_non_null(strstr(cap.reason, "https"));
}

static void test_request_without_numeric_address_is_refused(void **state)
{
	static const char *const bad[] = {"policy.test", "127.0.0.1,10.0.0.1", "127.0.0.1:80",
	                                  "[::1]", ""};
	struct capture cap = {.expected = 1 + sizeof bad / sizeof bad[0]};

	start(&cap, "https://policy.test/", NULL, 1000); /* curl would resolve: no */
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		start(&cap, "https://policy.test/", bad[i], 1000);
	run_for_ms(2000);
	assert_int_equal(cap.calls, cap.expected);
	assert_int_equal(cap.outcome, HTTPS_OTHER);
}

static void test_refused_connection_is_connect_failed(void **state)
{
	struct capture cap = {.expected = 1};
	char url[128];
	int fd, port = refused_port(&fd);

	url_for(url, sizeof url, port);
	start(&cap, url, "127.0.0.1", 5000);
	run_for_ms(5000);
	close(fd);
	assert_int_equal(cap.calls, 1);
	assert_int_equal(cap.outcome, HTTPS_CONNECT_FAILED);
}

static void test_silent_server_times_out_on_time(void **state)
{
	struct capture cap = {.expected = 1};
	struct server s;
	char url[128];
	int64_t t0 = time_mono_us();

	server_start(&s, SERVER_SILENT);
	url_for(url, sizeof url, s.port);
	start(&cap, url, "127.0.0.1", 300);
	run_for_ms(5000);
	server_stop(&s);
	assert_int_equal(cap.calls, 1);
	assert_int_equal(cap.outcome, HTTPS_TIMEOUT);
	assert_true(cap.at_us - t0 >= 280000);
	assert_true(cap.at_us - t0 < 1500000);
}

static void test_plaintext_server_is_a_tls_failure(void **state)
{
	struct capture cap = {.expected = 1};
	struct server s;
	char url[128];

	server_start(&s, SERVER_PLAINTEXT);
	url_for(url, sizeof url, s.port);
	start(&cap, url, "127.0.0.1", 5000);
	run_for_ms(5000);
	server_stop(&s);
	assert_int_equal(cap.calls, 1);
	assert_int_equal(cap.outcome, HTTPS_TLS_FAILED);
}

static void on_cancel_timer(evutil_socket_t fd, short what, void *arg)
{
	https_cancel(arg);
}

static void test_cancel_before_the_result_means_no_callback(void **state)
{
	struct capture cap = {.expected = 1};
	struct server s;
	char url[128];
	struct timeval after = {0, 100000};
	struct event *ev;

	server_start(&s, SERVER_SILENT);
	url_for(url, sizeof url, s.port);
	/* while curl waits for the TLS handshake */
	ev = evtimer_new(base, on_cancel_timer, start(&cap, url, "127.0.0.1", 400));
	evtimer_add(ev, &after);
	/* right away, before curl has seen it */
	https_cancel(start(&cap, url, "127.0.0.1", 400));
	/* after it failed, before its callback ran */
	https_cancel(start(&cap, "http://policy.test/", "127.0.0.1", 400));
	run_for_ms(800);
	event_free(ev);
	server_stop(&s);
	assert_int_equal(cap.calls, 0);
}

static void test_cancel_from_its_own_callback_is_harmless(void **state)
{
	struct capture cap = {.expected = 1};

	cap.self = start(&cap, "http://policy.test/", "127.0.0.1", 400);
	run_for_ms(2000);
	assert_int_equal(cap.calls, 1);
	https_cancel(NULL);
}

static void test_client_free_drops_pending_requests(void **state)
{
	struct capture cap = {.expected = 1};
	struct server s;
	char url[128], why[256];

	server_start(&s, SERVER_SILENT);
	url_for(url, sizeof url, s.port);
	start(&cap, url, "127.0.0.1", 5000);
	start(&cap, url, "127.0.0.1", 5000);
	run_for_ms(200); /* both connected, waiting for the handshake */
	start(&cap, "http://policy.test/", "127.0.0.1", 400); /* result ready, not yet told */
	https_client_free(client);
	client = https_client_new(base, NULL, why, sizeof why);
	run_for_ms(100);
	server_stop(&s);
	assert_int_equal(cap.calls, 0);
}

static void test_many_requests_each_report_once(void **state)
{
	struct capture cap = {.expected = 20};
	char url[128];
	int fd, port = refused_port(&fd);

	url_for(url, sizeof url, port);
	for (int i = 0; i < 20; i++)
		start(&cap, url, i % 2 ? "127.0.0.1" : "::1", 5000);
	run_for_ms(5000);
	close(fd);
	assert_int_equal(cap.calls, 20);
}

static int setup(void **state)
{
	char why[256] = "";

	base = event_base_new();
	client = https_client_new(base, NULL, why, sizeof why);
	assert_non_null(client);
	return 0;
}

static int teardown(void **state)
{
	https_client_free(client);
	event_base_free(base);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trust_store_has_system_roots_and_the_extra_ca),
	    cmocka_unit_test_setup_teardown(test_unusable_ca_file_fails_with_reason, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_plain_http_url_is_refused_from_the_loop, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_request_without_numeric_address_is_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_refused_connection_is_connect_failed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_silent_server_times_out_on_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plaintext_server_is_a_tls_failure, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_before_the_result_means_no_callback, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_from_its_own_callback_is_harmless, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_client_free_drops_pending_requests, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_many_requests_each_report_once, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
