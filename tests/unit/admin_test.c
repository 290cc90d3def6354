/* admin_test.c - the admin API's gatekeeping (credentials, Host, Origin),
 * queue actions answered after their commit, reads in pages on the read
 * workers, and requests whose client left (or whose daemon stopped) before
 * the commit, the read or a password check. */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "admin/admin.h"
#include "admin/auth.h"
#include "conf/conf.h"
#include "spool/spool.h"
#include "spool/writer.h"
#include "util/worker.h"

#include <event2/event.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <crypt.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The scheduler is not under test: these stand in for it. */
static int wakes;
static bool paused;
void scheduler_wake(struct scheduler *s)
{
	wakes++;
}
void scheduler_set_paused(struct scheduler *s, bool p)
{
	paused = p;
}
bool scheduler_paused(const struct scheduler *s)
{
	return paused;
}
size_t scheduler_in_flight(const struct scheduler *s)
{
	return 0;
}
size_t scheduler_picked(const struct scheduler *s)
{
	return 0;
}

struct fixture {
	char dir[64], sock[128];
	struct event_base *base;
	struct spool *reader, *locker;
	struct spool_writer *writer;
	struct conf conf;
	struct admin *admin;
	struct worker *worker;
	char token[128];
};

static char why[256];
static int64_t recovered;

/* n messages in one commit; returns the last id. */
static uint64_t insert_messages(struct spool *s, int n)
{
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	const char *rcpts[] = {"r@example.net"};
	struct spool_message_in m = {.sender = "a@example.org",
	                             .rcpts = rcpts,
	                             .nrcpt = 1,
	                             .queued_ms = 1000,
	                             .body = body,
	                             .body_len = sizeof body - 1};
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	for (int i = 0; i < n; i++) {
		m.id = spool_new_id();
		assert_int_equal(spool_insert_message(s, &m, why, sizeof why), 0);
	}
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
	return m.id;
}

static void insert_message(struct spool *s)
{
	insert_messages(s, 1);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/outpost-admin-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->sock, sizeof f->sock, "unix:%s/admin.sock", f->dir);
	f->base = event_base_new();
	f->reader = spool_open(f->dir, why, sizeof why);
	assert_non_null(f->reader);
	insert_message(f->reader);
	f->locker = spool_open(f->dir, why, sizeof why);
	f->writer = spool_writer_start(f->base, f->dir, &recovered, why, sizeof why);
	assert_non_null(f->writer);
	conf_defaults(&f->conf);
	strlist_clear(&f->conf.admin_listen);
	strlist_add(&f->conf.admin_listen, f->sock);
	free(f->conf.data_dir);
	f->conf.data_dir = strdup(f->dir);
	/* alice:secret, SHA-512 crypt */
	char users[128];
	snprintf(users, sizeof users, "%s/users", f->dir);
	FILE *u = fopen(users, "w");
	fprintf(u, "alice:%s\n", crypt("secret", "$6$abcdefgh$"));
	fclose(u);
	free(f->conf.admin_users_file);
	f->conf.admin_users_file = strdup(users);
	f->worker = worker_start(f->base, 1);
	f->admin = admin_start(f->base, &f->conf, f->writer, (struct scheduler *)f, NULL, f->worker,
	                       why, sizeof why);
	assert_non_null(f->admin);
	assert_int_equal(
	    admin_auth_read_token(&f->conf, f->token, sizeof f->token, why, sizeof why), 0);
	wakes = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	admin_drain(f->admin);
	worker_stop(f->worker);
	admin_stop(f->admin);
	spool_writer_stop(f->writer);
	spool_close(f->locker);
	spool_close(f->reader);
	conf_free(&f->conf);
	event_base_free(f->base);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	int rc = system(cmd);
	free(f);
	return rc;
}

/* Runs the loop for about ms milliseconds. */
static void pump(struct fixture *f, int ms)
{
	for (int i = 0; i < ms / 5; i++) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(5000);
	}
}

/* Sends a request with extra header lines (each ending in CRLF). */
static int client_send(struct fixture *f, const char *method, const char *path, const char *headers,
                       const char *body)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/admin.sock", f->dir);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	char req[1024];
	int n = snprintf(req, sizeof req,
	                 "%s %s HTTP/1.1\r\n%sContent-Type: application/json\r\n"
	                 "Content-Length: %zu\r\n\r\n%s",
	                 method, path, headers, strlen(body), body);
	assert_int_equal(write(fd, req, (size_t)n), n);
	return fd;
}

static int client_post(struct fixture *f, const char *path, const char *body)
{
	char headers[256];
	snprintf(headers, sizeof headers, "Host: localhost\r\nAuthorization: Bearer %s\r\n",
	         f->token);
	return client_send(f, "POST", path, headers, body);
}

/* Pumps the loop until the client has an answer; returns its length. */
static ssize_t client_answer(struct fixture *f, int fd, char *buf, size_t n)
{
	for (int i = 0; i < 400; i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 0) == 1) {
			ssize_t r = read(fd, buf, n - 1);
			buf[r > 0 ? r : 0] = '\0';
			return r;
		}
		pump(f, 5);
	}
	return -1;
}

static void test_action_is_answered_after_commit(void **state)
{
	struct fixture *f = *state;
	char buf[1024];
	int fd = client_post(f, "/api/v1/queue/kick", "{\"all\": true}");
	assert_true(client_answer(f, fd, buf, sizeof buf) > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_non_null(strstr(buf, "{\"changed\":1}"));
	assert_int_equal(wakes, 1);
	close(fd);
}

static void test_client_gone_before_commit(void **state)
{
	struct fixture *f = *state;
	/* The writer's BEGIN waits while another connection holds the lock. */
	assert_int_equal(spool_begin(f->locker, why, sizeof why), 0);
	int fd = client_post(f, "/api/v1/queue/kick", "{\"all\": true}");
	pump(f, 100);
	close(fd);
	pump(f, 100);
	spool_rollback(f->locker);
	for (int i = 0; i < 200 && wakes == 0; i++)
		pump(f, 10);
	assert_int_equal(wakes, 1); /* committed and reported, to no one */
}

static void test_stop_before_commit(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(spool_begin(f->locker, why, sizeof why), 0);
	int fd = client_post(f, "/api/v1/queue/hold", "{\"all\": true}");
	pump(f, 100);
	admin_drain(f->admin);
	admin_stop(f->admin);
	f->admin = NULL;
	spool_rollback(f->locker);
	spool_writer_stop(f->writer); /* reports the job to a stopped admin */
	f->writer = spool_writer_start(f->base, f->dir, &recovered, why, sizeof why);
	close(fd);
	int64_t counts[5];
	spool_count_states(f->reader, counts);
	assert_int_equal(counts[RCPT_HELD], 1); /* committed all the same */
	assert_int_equal(wakes, 0);
}

/* The status line of the answer to a request. */
static int status_of(struct fixture *f, const char *method, const char *path, const char *headers)
{
	char buf[2048];
	int fd = client_send(f, method, path, headers, "");
	ssize_t n = client_answer(f, fd, buf, sizeof buf);
	close(fd);
	int code = 0;
	if (n > 12)
		sscanf(buf, "HTTP/1.1 %d", &code);
	return code;
}

static void test_api_without_a_credential_is_401(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(status_of(f, "GET", "/api/v1/queue", "Host: localhost\r\n"), 401);
	assert_int_equal(status_of(f, "GET", "/api/v1/queue/0123/raw", "Host: localhost\r\n"), 401);
	assert_int_equal(status_of(f, "POST", "/api/v1/queue/drop", "Host: localhost\r\n"), 401);
	assert_int_equal(
	    status_of(f, "GET", "/api/v1/status", "Host: localhost\r\nAuthorization: Bearer x\r\n"),
	    401);
	char wrong[256];
	/* the token with its last digit changed (a fixed "0" would be the
	 * token itself one time in sixteen) */
	snprintf(wrong, sizeof wrong, "Host: localhost\r\nAuthorization: Bearer %.63s%c\r\n",
	         f->token, f->token[63] == '0' ? '1' : '0');
	assert_int_equal(status_of(f, "GET", "/api/v1/status", wrong), 401);
}

static void test_the_token_lets_the_api_in(void **state)
{
	struct fixture *f = *state;
	char ok[256];
	snprintf(ok, sizeof ok, "Host: localhost\r\nAuthorization: Bearer %s\r\n", f->token);
	assert_int_equal(status_of(f, "GET", "/api/v1/queue", ok), 200);
	char path[128];
	snprintf(path, sizeof path, "%s/admin.token", f->dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(strlen(f->token), 64);
}

/* "alice:secret" and "alice:wrong" in base64 */
#define BASIC_OK    "Authorization: Basic YWxpY2U6c2VjcmV0\r\n"
#define BASIC_WRONG "Authorization: Basic YWxpY2U6d3Jvbmc=\r\n"

static void test_basic_is_checked_against_the_users_file(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(status_of(f, "GET", "/api/v1/queue", "Host: localhost\r\n" BASIC_OK), 200);
	assert_int_equal(status_of(f, "GET", "/api/v1/queue", "Host: localhost\r\n" BASIC_WRONG),
	                 401);
	assert_int_equal(status_of(f, "GET", "/api/v1/queue",
	                           "Host: localhost\r\nAuthorization: Basic !!!!\r\n"),
	                 401);
}

static void test_client_gone_during_a_password_check(void **state)
{
	struct fixture *f = *state;
	int fd = client_send(f, "GET", "/api/v1/queue", "Host: localhost\r\n" BASIC_OK, "");
	pump(f, 5); /* the request is read and waits for the worker */
	close(fd);
	pump(f, 200); /* the check ends and answers no one */
	assert_int_equal(status_of(f, "GET", "/api/v1/queue", "Host: localhost\r\n" BASIC_OK), 200);
}

static void test_foreign_host_and_origin_are_403_before_any_credential(void **state)
{
	struct fixture *f = *state;
	/* DNS rebinding: a page of evil.example pointed at 127.0.0.1 */
	assert_int_equal(status_of(f, "GET", "/api/v1/queue", "Host: evil.example\r\n" BASIC_OK),
	                 403);
	assert_int_equal(status_of(f, "GET", "/api/v1/queue", "Host: evil.example:8025\r\n"), 403);
	/* a form posted from another site */
	assert_int_equal(status_of(f, "POST", "/api/v1/queue/drop",
	                           "Host: localhost\r\nOrigin: http://evil.example\r\n" BASIC_OK),
	                 403);
	/* the same origin, and literal addresses, are fine */
	assert_int_equal(status_of(f, "GET", "/api/v1/queue",
	                           "Host: localhost\r\nOrigin: http://localhost\r\n" BASIC_OK),
	                 200);
	assert_int_equal(status_of(f, "GET", "/api/v1/queue", "Host: 127.0.0.1:8025\r\n" BASIC_OK),
	                 200);
	assert_int_equal(status_of(f, "GET", "/api/v1/queue", "Host: [::1]:8025\r\n" BASIC_OK),
	                 200);
}

static void test_metrics_are_open_to_local_clients(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(status_of(f, "GET", "/metrics", "Host: localhost\r\n"), 200);
}

/* ---- reads, on the read workers ---- */

/* GETs path with the token; returns the status and, for JSON, the body. */
static int get_json(struct fixture *f, const char *path, json_t **body)
{
	char headers[256], buf[1 << 16];
	size_t have = 0;
	snprintf(headers, sizeof headers, "Host: localhost\r\nAuthorization: Bearer %s\r\n",
	         f->token);
	int fd = client_send(f, "GET", path, headers, "");
	const char *end = NULL;
	size_t want = 0;
	for (int i = 0; i < 2000 && (end == NULL || have < want); i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 0) == 1) {
			ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
			assert_true(r > 0);
			have += (size_t)r;
			buf[have] = '\0';
			if ((end = strstr(buf, "\r\n\r\n")) != NULL) {
				const char *cl = strcasestr(buf, "Content-Length: ");
				want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
			}
			continue;
		}
		pump(f, 5);
	}
	close(fd);
	assert_non_null(end);
	int code = 0;
	sscanf(buf, "HTTP/1.1 %d", &code);
	*body = json_loads(end + 4, 0, NULL);
	return code;
}

/* Follows next_cursor from path to the end; returns the messages seen. */
static size_t walk(struct fixture *f, const char *path)
{
	char next[512];
	size_t seen = 0, pages = 0;
	snprintf(next, sizeof next, "%s", path);
	for (;;) {
		json_t *page;
		assert_int_equal(get_json(f, next, &page), 200);
		seen += json_array_size(json_object_get(page, "messages"));
		pages++;
		const char *cursor = json_string_value(json_object_get(page, "next_cursor"));
		if (cursor == NULL) {
			assert_true(json_is_null(json_object_get(page, "next_cursor")));
			json_decref(page);
			break;
		}
		snprintf(next, sizeof next, "%s&cursor=%s", path, cursor);
		json_decref(page);
	}
	return seen * 100 + pages;
}

static void test_the_queue_comes_in_pages(void **state)
{
	struct fixture *f = *state;
	insert_messages(f->reader, 4); /* 5 with the fixture's */
	assert_int_equal(walk(f, "/api/v1/queue?limit=2"), 5 * 100 + 3);
	assert_int_equal(walk(f, "/api/v1/queue?limit=2&sort=newest"), 5 * 100 + 3);
	assert_int_equal(walk(f, "/api/v1/queue?limit=5"), 5 * 100 + 1);
	assert_int_equal(walk(f, "/api/v1/queue?limit=2&domain=other.example"), 0 * 100 + 1);
	json_t *page;
	assert_int_equal(get_json(f, "/api/v1/queue", &page), 200);
	json_t *m = json_array_get(json_object_get(page, "messages"), 0);
	assert_string_equal(json_string_value(json_object_get(m, "sender")), "a@example.org");
	json_decref(page);
}

static void test_bad_paging_parameters_are_400(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
	    "/api/v1/queue?limit=0",         "/api/v1/queue?limit=1001",
	    "/api/v1/queue?limit=-1",        "/api/v1/queue?sort=sideways",
	    "/api/v1/queue?cursor=xyz",      "/api/v1/queue?cursor=ho1-1",
	    "/api/v1/queue?older_than=soon", "/api/v1/queue?colour=blue",
	    "/api/v1/queue?cursor=qo1-1&sort=newest",
	    "/api/v1/history?result=bounced", "/api/v1/history?since=yesterday",
	    "/api/v1/history?state=held",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *body;
		assert_int_equal(get_json(f, bad[i], &body), 400);
		assert_non_null(json_string_value(json_object_get(body, "error")));
		json_decref(body);
	}
}

static void test_history_lists_attempts_newest_first(void **state)
{
	struct fixture *f = *state;
	struct spool_due d[1];
	assert_int_equal(spool_due_list(f->reader, 1000000, NULL, 0, d, 1, why, sizeof why), 1);
	for (int i = 0; i < 3; i++) {
		struct spool_attempt_log l = {.msg_id = d[0].msg_id,
		                              .rcpt_id = d[0].rcpt_id,
		                              .started_ms = 1000 * (i + 1),
		                              .result = i < 2 ? SPOOL_ATTEMPT_DEFERRED
		                                              : SPOOL_ATTEMPT_DELIVERED,
		                              .reply = "451 4.3.0 later"};
		assert_int_equal(spool_begin(f->reader, why, sizeof why), 0);
		assert_int_equal(spool_log_attempt(f->reader, &l, why, sizeof why), 0);
		assert_int_equal(spool_commit(f->reader, why, sizeof why), 0);
	}
	json_t *page;
	assert_int_equal(get_json(f, "/api/v1/history?limit=2", &page), 200);
	json_t *list = json_object_get(page, "attempts");
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "result")),
	                    "delivered");
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "recipient")),
	                    "r@example.net");
	assert_true(json_is_string(json_object_get(page, "next_cursor")));
	json_decref(page);
	assert_int_equal(get_json(f, "/api/v1/history?result=deferred", &page), 200);
	assert_int_equal(json_array_size(json_object_get(page, "attempts")), 2);
	json_decref(page);
}

static void test_show_and_raw_are_read_off_the_loop(void **state)
{
	struct fixture *f = *state;
	char path[64], id[17];
	spool_id_format(insert_messages(f->reader, 1), id);
	snprintf(path, sizeof path, "/api/v1/queue/%s", id);
	json_t *m;
	assert_int_equal(get_json(f, path, &m), 200);
	assert_string_equal(json_string_value(json_object_get(m, "id")), id);
	json_decref(m);
	snprintf(path, sizeof path, "/api/v1/queue/%s/raw", id);
	assert_int_equal(get_json(f, path, &m), 200); /* not JSON */
	assert_null(m);
	assert_int_equal(get_json(f, "/api/v1/queue/0123", &m), 404);
	json_decref(m);
}

/* A client that leaves at any point of its read: the read runs or is
 * skipped, its answer goes to no one, nothing leaks (ASan). */
static void test_client_gone_during_a_read(void **state)
{
	struct fixture *f = *state;
	char headers[256];
	snprintf(headers, sizeof headers, "Host: localhost\r\nAuthorization: Bearer %s\r\n",
	         f->token);
	insert_messages(f->reader, 3000);
	for (int i = 0; i < 20; i++) {
		int fd = client_send(f, "GET", "/api/v1/queue?limit=1000", headers, "");
		pump(f, 5 * (i % 4));
		close(fd);
	}
	pump(f, 300);
	json_t *page;
	assert_int_equal(get_json(f, "/api/v1/queue?limit=1", &page), 200);
	json_decref(page);
}

/* admin_stop with reads queued and running: the connections are closed,
 * the reads not begun are skipped, those running answer no one. */
static void test_stop_with_reads_in_flight(void **state)
{
	struct fixture *f = *state;
	char headers[256];
	int fds[6];
	snprintf(headers, sizeof headers, "Host: localhost\r\nAuthorization: Bearer %s\r\n",
	         f->token);
	insert_messages(f->reader, 3000);
	for (int i = 0; i < 6; i++)
		fds[i] = client_send(f, "GET", "/api/v1/queue?limit=1000", headers, "");
	pump(f, 10); /* read and handed to the workers */
	admin_drain(f->admin);
	admin_stop(f->admin);
	f->admin = NULL;
	for (int i = 0; i < 6; i++) {
		char buf[4096];
		ssize_t r;
		while ((r = read(fds[i], buf, sizeof buf)) > 0) /* answered before the stop */
			;
		assert_int_equal(r, 0); /* and closed */
		close(fds[i]);
	}
}

static void test_a_world_readable_token_refuses_the_start(void **state)
{
	struct fixture *f = *state;
	char path[128];
	snprintf(path, sizeof path, "%s/admin.token", f->dir);
	assert_int_equal(chmod(path, 0644), 0);
	struct admin_auth *a = admin_auth_new(&f->conf, f->worker, why, sizeof why);
	assert_null(a);
	assert_non_null(strstr(why, "readable by other users"));
}

/* One request; its whole answer in buf (status line, headers, body). */
static int answer_of(struct fixture *f, const char *method, const char *path, const char *headers,
                     const char *body, char *buf, size_t n)
{
	int fd = client_send(f, method, path, headers, body);
	ssize_t got = client_answer(f, fd, buf, n);
	close(fd);
	int code = 0;
	if (got > 12)
		sscanf(buf, "HTTP/1.1 %d", &code);
	return code;
}

/* "outpost_session=<64 hex>" from a Set-Cookie, and the csrf of the body. */
static void session_of(const char *answer, char *cookie, size_t cn, char *csrf, size_t sn)
{
	const char *c = strstr(answer, "Set-Cookie: outpost_session=");
	assert_non_null(c);
	c += strlen("Set-Cookie: ");
	snprintf(cookie, cn, "%.*s", (int)strcspn(c, ";"), c);
	assert_int_equal(strlen(cookie), strlen("outpost_session=") + 64);
	assert_non_null(strstr(answer, "HttpOnly"));
	assert_non_null(strstr(answer, "SameSite=Strict"));
	const char *t = strstr(answer, "\"csrf\":\"");
	assert_non_null(t);
	t += 8;
	snprintf(csrf, sn, "%.*s", (int)strcspn(t, "\""), t);
	assert_int_equal(strlen(csrf), 64);
}

static void test_console_session_login_csrf_logout(void **state)
{
	struct fixture *f = *state;
	char buf[4096], cookie[128], csrf[80], h[512];
	assert_int_equal(answer_of(f, "GET", "/api/v1/session", "Host: localhost\r\n", "", buf,
	                           sizeof buf),
	                 401);
	assert_int_equal(answer_of(f, "POST", "/api/v1/session", "Host: localhost\r\n",
	                           "{\"user\": \"alice\", \"password\": \"wrong\"}", buf, sizeof buf),
	                 401);
	assert_null(strstr(buf, "Set-Cookie"));
	assert_int_equal(answer_of(f, "POST", "/api/v1/session", "Host: localhost\r\n",
	                           "{\"user\": \"alice\", \"password\": \"secret\"}", buf, sizeof buf),
	                 200);
	session_of(buf, cookie, sizeof cookie, csrf, sizeof csrf);
	snprintf(h, sizeof h, "Host: localhost\r\nCookie: a=b; %s\r\n", cookie);
	assert_int_equal(answer_of(f, "GET", "/api/v1/session", h, "", buf, sizeof buf), 200);
	assert_non_null(strstr(buf, "\"user\":\"alice\""));
	assert_int_equal(answer_of(f, "GET", "/api/v1/queue", h, "", buf, sizeof buf), 200);
	/* a change needs the token: a cross-site form cannot read it */
	assert_int_equal(answer_of(f, "POST", "/api/v1/queue/hold", h, "{\"all\": true}", buf,
	                           sizeof buf),
	                 403);
	snprintf(h, sizeof h, "Host: localhost\r\nCookie: %s\r\nX-CSRF-Token: %.63s%c\r\n", cookie,
	         csrf, csrf[63] == '0' ? '1' : '0');
	assert_int_equal(answer_of(f, "POST", "/api/v1/queue/hold", h, "{\"all\": true}", buf,
	                           sizeof buf),
	                 403);
	snprintf(h, sizeof h, "Host: localhost\r\nCookie: %s\r\nX-CSRF-Token: %s\r\n", cookie, csrf);
	assert_int_equal(answer_of(f, "POST", "/api/v1/queue/hold", h, "{\"all\": true}", buf,
	                           sizeof buf),
	                 200);
	/* logged out: the cookie is worth nothing */
	assert_int_equal(answer_of(f, "DELETE", "/api/v1/session", h, "", buf, sizeof buf), 200);
	assert_non_null(strstr(buf, "Max-Age=0"));
	assert_int_equal(answer_of(f, "GET", "/api/v1/queue", h, "", buf, sizeof buf), 401);
}

static void test_failed_logins_are_limited(void **state)
{
	struct fixture *f = *state;
	char buf[2048];
	for (int i = 0; i < 5; i++)
		assert_int_equal(answer_of(f, "POST", "/api/v1/session", "Host: localhost\r\n",
		                           "{\"user\": \"alice\", \"password\": \"no\"}", buf, sizeof buf),
		                 401);
	/* now even the right password waits */
	assert_int_equal(answer_of(f, "POST", "/api/v1/session", "Host: localhost\r\n",
	                           "{\"user\": \"alice\", \"password\": \"secret\"}", buf, sizeof buf),
	                 429);
	/* a cross-site login attempt is refused before any check */
	assert_int_equal(answer_of(f, "POST", "/api/v1/session",
	                           "Host: localhost\r\nOrigin: http://evil.example\r\n",
	                           "{\"user\": \"alice\", \"password\": \"secret\"}", buf, sizeof buf),
	                 403);
}

/* The console shows its own form when its session has ended: a Basic
 * challenge would make the browser prompt instead. */
static void test_an_ended_session_gets_no_basic_challenge(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	assert_int_equal(answer_of(f, "GET", "/api/v1/queue", "Host: localhost\r\n", "", buf,
	                           sizeof buf),
	                 401);
	assert_non_null(strstr(buf, "WWW-Authenticate: Basic"));
	assert_int_equal(answer_of(f, "GET", "/api/v1/queue",
	                           "Host: localhost\r\nCookie: outpost_session=00\r\n", "", buf,
	                           sizeof buf),
	                 401);
	assert_null(strstr(buf, "WWW-Authenticate: Basic"));
	assert_non_null(strstr(buf, "WWW-Authenticate: Bearer"));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as the daemon does: a late answer may meet a closed socket */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_action_is_answered_after_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_gone_before_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_before_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_api_without_a_credential_is_401, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_the_token_lets_the_api_in, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_console_session_login_csrf_logout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_logins_are_limited, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_an_ended_session_gets_no_basic_challenge, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_basic_is_checked_against_the_users_file, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_client_gone_during_a_password_check, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_foreign_host_and_origin_are_403_before_any_credential, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_metrics_are_open_to_local_clients, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_a_world_readable_token_refuses_the_start, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_the_queue_comes_in_pages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_paging_parameters_are_400, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_history_lists_attempts_newest_first, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_show_and_raw_are_read_off_the_loop, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_client_gone_during_a_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_with_reads_in_flight, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
