/* admin_test.c - queue actions answered after their commit, and requests
 * whose client left (or whose daemon stopped) before the commit. */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "admin/admin.h"
#include "conf/conf.h"
#include "spool/spool.h"
#include "spool/writer.h"

#include <event2/event.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
};

static char why[256];
static int64_t recovered;

static void insert_message(struct spool *s)
{
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	const char *rcpts[] = {"r@example.net"};
	struct spool_message_in m = {.id = spool_new_id(),
	                             .sender = "a@example.org",
	                             .rcpts = rcpts,
	                             .nrcpt = 1,
	                             .queued_ms = 1000,
	                             .body = body,
	                             .body_len = sizeof body - 1};
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	assert_int_equal(spool_insert_message(s, &m, why, sizeof why), 0);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
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
	f->admin = admin_start(f->base, &f->conf, f->reader, f->writer, (struct scheduler *)f, why,
	                       sizeof why);
	assert_non_null(f->admin);
	wakes = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
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

static int client_post(struct fixture *f, const char *path, const char *body)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/admin.sock", f->dir);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	char req[512];
	int n = snprintf(req, sizeof req,
	                 "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
	                 "Content-Length: %zu\r\n\r\n%s",
	                 path, strlen(body), body);
	assert_int_equal(write(fd, req, (size_t)n), n);
	return fd;
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

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as the daemon does: a late answer may meet a closed socket */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_action_is_answered_after_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_gone_before_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_before_commit, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
