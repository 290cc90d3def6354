/* spool_test.c - the spool's schema, inserts, admin actions, attempts in
 * flight and their outcomes, notices, counts, cleanup and migrations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "spool/spool.h"
#include "spool/sts_rows.h"
#include "spool/tls_rows.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void ignore_problem(const char *p, void *arg)
{
}

static char dir[64];
static char why[256];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/outpost-spool-XXXXXX");
	assert_non_null(mkdtemp(dir));
	struct spool *s = spool_open(dir, why, sizeof why);
	assert_non_null(s);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	spool_close(*state);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd);
}

static const char body[] = "Subject: t\r\nX-Long: yes\r\n\r\nhello\r\n";

static uint64_t insert_at(struct spool *s, const char *sender, const char *const *rcpts, size_t n,
                          int64_t queued_ms)
{
	struct spool_message_in m = {.id = spool_new_id(),
	                             .sender = sender,
	                             .rcpts = rcpts,
	                             .nrcpt = n,
	                             .queued_ms = queued_ms,
	                             .body = body,
	                             .body_len = sizeof body - 1};
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	assert_int_equal(spool_insert_message(s, &m, why, sizeof why), 0);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
	return m.id;
}

static uint64_t insert(struct spool *s, const char *sender, const char *const *rcpts, size_t n)
{
	return insert_at(s, sender, rcpts, n, 1000);
}

static int64_t apply(struct spool *s, enum spool_action a, struct spool_filter f)
{
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	int64_t n = spool_apply(s, a, &f, 5000, why, sizeof why);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
	return n;
}

/* What spool_list / spool_show passed on, flattened for asserts. */
struct seen {
	int messages;
	uint64_t id;
	char sender[64];
	int64_t done_ms;
	size_t nr;
	char address[8][64];
	enum rcpt_state state[8];
	int attempts[8];
	char last_error[8][64];
	bool in_flight[8];
};

static int see(void *arg, const struct spool_message_row *m, const struct spool_recipient_row *r,
               size_t nr)
{
	struct seen *s = arg;
	s->messages++;
	s->id = m->id;
	s->done_ms = m->done_ms;
	snprintf(s->sender, sizeof s->sender, "%s", m->sender);
	s->nr = nr;
	for (size_t i = 0; i < nr && i < 8; i++) {
		snprintf(s->address[i], 64, "%s", r[i].address);
		s->state[i] = r[i].state;
		s->attempts[i] = r[i].attempts;
		snprintf(s->last_error[i], 64, "%s", r[i].last_error);
		s->in_flight[i] = r[i].in_flight;
	}
	return 0;
}

static struct seen list(struct spool *s, struct spool_filter f)
{
	struct seen out = {0};
	struct spool_list_query q = {.f = f, .queued_from_ms = -1, .queued_before_ms = -1};
	struct spool_page p = {.limit = 1000};
	assert_int_equal(spool_list_page(s, &q, &p, see, &out, why, sizeof why), 0);
	assert_false(p.more);
	return out;
}

static struct seen show(struct spool *s, uint64_t id, int *rc)
{
	struct seen out = {0};
	*rc = spool_show(s, id, see, &out, why, sizeof why);
	return out;
}

static int due(struct spool *s, struct spool_due *d, size_t max)
{
	return spool_due_list(s, 1000000, NULL, 0, d, max, why, sizeof why);
}

static void begin(struct spool *s, int64_t rcpt_id, int expect)
{
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	assert_int_equal(spool_attempt_begin(s, rcpt_id, 10000, 1000, why, sizeof why), expect);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
}

static int end(struct spool *s, int64_t rcpt_id, enum rcpt_state st, enum spool_notice notice)
{
	struct spool_outcome o = {.rcpt_id = rcpt_id,
	                          .state = st,
	                          .error = st == RCPT_DELIVERED ? "250 ok" : "550 5.1.1 no",
	                          .status = "5.1.1",
	                          .mx = "mx.example.net",
	                          .ip = "192.0.2.1",
	                          .diagnostic = "550 5.1.1 no",
	                          .notice = notice};
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	int rc = spool_attempt_end(s, &o, why, sizeof why);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
	return rc;
}

static void settle(struct spool *s, uint64_t id)
{
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	assert_int_equal(spool_message_settle(s, id, 20000, why, sizeof why), 0);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
}

static void test_message_is_listed_with_its_recipients(void **state)
{
	const char *rcpts[] = {"a@Example.NET", "b@example.org"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 2);
	struct seen l = list(*state, (struct spool_filter){.state = -1});
	assert_int_equal(l.messages, 1);
	assert_true(l.id == id);
	assert_string_equal(l.sender, "s@example.com");
	assert_int_equal(l.nr, 2);
	assert_int_equal(l.state[0], RCPT_QUEUED);
	assert_int_equal(
	    list(*state, (struct spool_filter){.state = -1, .domain = "EXAMPLE.net"}).messages, 1);
	assert_int_equal(
	    list(*state, (struct spool_filter){.state = -1, .domain = "nowhere.test"}).messages, 0);
}

static void test_duplicate_recipients_are_stored_once(void **state)
{
	/* the local part is exact, the domain case-insensitive (RFC 5321 §2.4) */
	const char *rcpts[] = {"a@x.example", "a@x.example", "a@X.Example",
	                       "A@x.example", "postmaster",  "Postmaster"};
	insert(*state, "", rcpts, 6);
	struct seen l = list(*state, (struct spool_filter){.state = -1});
	assert_int_equal(l.nr, 3);
	assert_string_equal(l.address[0], "a@x.example");
	assert_string_equal(l.address[1], "A@x.example");
	assert_string_equal(l.address[2], "postmaster");
	assert_true(spool_same_address("u@Dom.Example", "u@dom.example"));
	assert_false(spool_same_address("U@dom.example", "u@dom.example"));
	assert_false(spool_same_address("u@a.example", "u"));
}

static void test_hold_release_keeps_schedule_and_kick_makes_due(void **state)
{
	const char *rcpts[] = {"a@example.net", "b@example.org"};
	uint64_t id = insert(*state, "", rcpts, 2);
	assert_int_equal(
	    apply(*state, SPOOL_HOLD, (struct spool_filter){.state = -1, .ids = &id, .nids = 1}),
	    2);
	struct spool_due d[4];
	assert_int_equal(due(*state, d, 4), 0);
	assert_int_equal(apply(*state, SPOOL_RELEASE,
	                       (struct spool_filter){.state = -1, .recipient = "A@example.net"}),
	                 1);
	assert_int_equal(due(*state, d, 4), 1);
	/* an attempt moves it into the future and in flight: not due */
	begin(*state, d[0].rcpt_id, 1);
	assert_int_equal(due(*state, d, 4), 0);
	assert_int_equal(spool_next_due(*state), -1);
	/* a kick during the attempt does not make it due while in flight ... */
	assert_int_equal(apply(*state, SPOOL_KICK, (struct spool_filter){.state = -1, .all = true}),
	                 1);
	assert_int_equal(due(*state, d, 4), 0);
	/* ... but right after its outcome */
	struct spool_due again[1];
	assert_int_equal(spool_due_list(*state, 10000, NULL, 0, again, 1, why, sizeof why), 0);
	assert_int_equal(end(*state, d[0].rcpt_id, RCPT_DEFERRED, SPOOL_NOTICE_NONE),
	                 SPOOL_END_RECORDED);
	assert_int_equal(due(*state, again, 1), 1);
	assert_int_equal(again[0].attempts, 1);
	assert_int_equal(spool_next_due(*state), 5000);
}

static void test_action_without_selector_is_refused(void **state)
{
	struct spool_filter none = {.state = -1};
	assert_int_equal(spool_apply(*state, SPOOL_DROP, &none, 0, why, sizeof why), -1);
	assert_non_null(strstr(why, "no message selected"));
}

static void test_drop_removes_message_and_body(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 1);
	char *b;
	size_t len;
	assert_int_equal(spool_message_body(*state, id, &b, &len, why, sizeof why), 0);
	free(b);
	assert_int_equal(apply(*state, SPOOL_DROP, (struct spool_filter){.state = -1, .all = true}),
	                 1);
	assert_int_equal(spool_message_body(*state, id, &b, &len, why, sizeof why),
	                 SPOOL_NOT_FOUND);
	int rc;
	show(*state, id, &rc);
	assert_int_equal(rc, SPOOL_NOT_FOUND);
	assert_int_equal(spool_check(*state, ignore_problem, NULL), 0);
}

static void test_hold_during_an_attempt_does_not_discard_its_delivery(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 1);
	struct spool_due d[1];
	assert_int_equal(due(*state, d, 1), 1);
	begin(*state, d[0].rcpt_id, 1);
	assert_int_equal(apply(*state, SPOOL_HOLD, (struct spool_filter){.state = -1, .all = true}),
	                 1);
	/* the outcome lands: delivered, not released later as deferred */
	assert_int_equal(end(*state, d[0].rcpt_id, RCPT_DELIVERED, SPOOL_NOTICE_NONE),
	                 SPOOL_END_RECORDED);
	int rc;
	struct seen m = show(*state, id, &rc);
	assert_int_equal(m.state[0], RCPT_DELIVERED);
	assert_int_equal(
	    apply(*state, SPOOL_RELEASE, (struct spool_filter){.state = -1, .all = true}), 0);
	assert_int_equal(due(*state, d, 1), 0);
}

static void test_hold_during_an_attempt_stays_after_a_deferral(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 1);
	struct spool_due d[1];
	assert_int_equal(due(*state, d, 1), 1);
	begin(*state, d[0].rcpt_id, 1);
	apply(*state, SPOOL_HOLD, (struct spool_filter){.state = -1, .all = true});
	end(*state, d[0].rcpt_id, RCPT_DEFERRED, SPOOL_NOTICE_NONE);
	int rc;
	struct seen m = show(*state, id, &rc);
	assert_int_equal(m.state[0], RCPT_HELD);
	assert_string_equal(m.last_error[0], "550 5.1.1 no"); /* the outcome is recorded */
	assert_int_equal(
	    apply(*state, SPOOL_RELEASE, (struct spool_filter){.state = -1, .all = true}), 1);
	m = show(*state, id, &rc);
	assert_int_equal(m.state[0], RCPT_DEFERRED);
}

static void test_drop_during_an_attempt_waits_for_its_outcome(void **state)
{
	const char *rcpts[] = {"a@example.net", "b@example.net"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 2);
	struct spool_due d[2];
	assert_int_equal(due(*state, d, 2), 2);
	begin(*state, d[0].rcpt_id, 1);
	assert_int_equal(apply(*state, SPOOL_DROP, (struct spool_filter){.state = -1, .all = true}),
	                 2);
	/* the one in flight is out of sight but still there for its attempt */
	assert_int_equal(list(*state, (struct spool_filter){.state = -1}).messages, 0);
	char *b;
	size_t len;
	assert_int_equal(spool_message_body(*state, id, &b, &len, why, sizeof why), 0);
	free(b);
	begin(*state, d[0].rcpt_id, 0); /* no second attempt meanwhile */
	assert_int_equal(end(*state, d[0].rcpt_id, RCPT_FAILED, SPOOL_NOTICE_FAILURE),
	                 SPOOL_END_DROPPED);
	settle(*state, id);
	/* no notice for a dropped recipient, and nothing left behind */
	uint64_t waiting[4];
	assert_int_equal(spool_notices_waiting(*state, waiting, 4, why, sizeof why), 0);
	assert_int_equal(spool_message_body(*state, id, &b, &len, why, sizeof why),
	                 SPOOL_NOT_FOUND);
	assert_int_equal(spool_check(*state, ignore_problem, NULL), 0);
	assert_int_equal(end(*state, d[0].rcpt_id, RCPT_FAILED, SPOOL_NOTICE_NONE), SPOOL_END_GONE);
}

static void test_recipient_ids_are_never_reused(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	insert(*state, "", rcpts, 1);
	struct spool_due d[1];
	assert_int_equal(due(*state, d, 1), 1);
	int64_t first = d[0].rcpt_id;
	apply(*state, SPOOL_DROP, (struct spool_filter){.state = -1, .all = true});
	insert(*state, "", rcpts, 1);
	assert_int_equal(due(*state, d, 1), 1);
	assert_true(d[0].rcpt_id > first);
	/* a begin for the dropped id touches nothing */
	begin(*state, first, 0);
}

static void test_notices_wait_for_the_last_attempt_in_flight(void **state)
{
	const char *rcpts[] = {"a@one.example", "b@two.example"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 2);
	struct spool_due d[2];
	assert_int_equal(due(*state, d, 2), 2);
	begin(*state, d[0].rcpt_id, 1);
	begin(*state, d[1].rcpt_id, 1);
	end(*state, d[0].rcpt_id, RCPT_FAILED, SPOOL_NOTICE_FAILURE);
	assert_int_equal(spool_in_flight(*state, id, why, sizeof why), 1);
	end(*state, d[1].rcpt_id, RCPT_DEFERRED, SPOOL_NOTICE_DELAY);
	assert_int_equal(spool_in_flight(*state, id, why, sizeof why), 0);
	uint64_t waiting[4];
	assert_int_equal(spool_notices_waiting(*state, waiting, 4, why, sizeof why), 1);
	assert_true(waiting[0] == id);
	/* a message with a notice pending is not done yet: its body stays */
	settle(*state, id);
	char *hdr;
	size_t len;
	assert_int_equal(spool_body_headers(*state, id, 1024, &hdr, &len, why, sizeof why), 0);
	assert_string_equal(hdr, "Subject: t\r\nX-Long: yes\r\n\r\n");
	free(hdr);
}

static int notices_seen;
static void count_notice(void *arg, const struct spool_notice_row *r)
{
	enum spool_notice *kinds = arg;
	kinds[notices_seen++] = r->notice;
	assert_string_equal(r->mx, "mx.example.net");
	assert_string_equal(r->diagnostic, "550 5.1.1 no");
}

static void test_notices_are_taken_once(void **state)
{
	const char *rcpts[] = {"a@one.example", "b@one.example"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 2);
	struct spool_due d[2];
	assert_int_equal(due(*state, d, 2), 2);
	begin(*state, d[0].rcpt_id, 1);
	begin(*state, d[1].rcpt_id, 1);
	end(*state, d[0].rcpt_id, RCPT_FAILED, SPOOL_NOTICE_FAILURE);
	end(*state, d[1].rcpt_id, RCPT_DEFERRED, SPOOL_NOTICE_DELAY);
	enum spool_notice kinds[4];
	notices_seen = 0;
	assert_int_equal(spool_begin(*state, why, sizeof why), 0);
	assert_int_equal(spool_notices_take(*state, id, count_notice, kinds, why, sizeof why), 2);
	assert_int_equal(spool_notices_take(*state, id, count_notice, kinds, why, sizeof why), 0);
	assert_int_equal(spool_commit(*state, why, sizeof why), 0);
	assert_int_equal(kinds[0], SPOOL_NOTICE_FAILURE);
	assert_int_equal(kinds[1], SPOOL_NOTICE_DELAY);
}

static void test_final_outcome_leaves_the_list(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	insert(*state, "s@example.com", rcpts, 1);
	struct spool_due d[1];
	assert_int_equal(due(*state, d, 1), 1);
	begin(*state, d[0].rcpt_id, 1);
	end(*state, d[0].rcpt_id, RCPT_FAILED, SPOOL_NOTICE_NONE);
	assert_int_equal(list(*state, (struct spool_filter){.state = -1}).messages, 0);
	struct seen l = list(*state, (struct spool_filter){.state = RCPT_FAILED});
	assert_int_equal(l.messages, 1);
	assert_string_equal(l.last_error[0], "550 5.1.1 no");
	assert_int_equal(l.attempts[0], 1);
}

static void test_uncommitted_insert_is_gone_after_reopen(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	struct spool_message_in m = {.id = spool_new_id(),
	                             .sender = "",
	                             .rcpts = rcpts,
	                             .nrcpt = 1,
	                             .body = "x\r\n",
	                             .body_len = 3};
	assert_int_equal(spool_begin(*state, why, sizeof why), 0);
	assert_int_equal(spool_insert_message(*state, &m, why, sizeof why), 0);
	spool_close(*state); /* no COMMIT: like a crash */
	*state = spool_open(dir, why, sizeof why);
	assert_non_null(*state);
	int rc;
	show(*state, m.id, &rc);
	assert_int_equal(rc, SPOOL_NOT_FOUND);
}

static void test_message_done_when_last_recipient_is_final(void **state)
{
	const char *rcpts[] = {"a@example.net", "b@example.net"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 2);
	struct spool_due d[2];
	assert_int_equal(due(*state, d, 2), 2);
	begin(*state, d[0].rcpt_id, 1);
	end(*state, d[0].rcpt_id, RCPT_DELIVERED, SPOOL_NOTICE_NONE);
	settle(*state, id);
	int rc;
	assert_int_equal(show(*state, id, &rc).done_ms, -1);
	/* the other recipient is dropped: the message is done, its body gone,
	 * and it stays visible with its delivery log */
	assert_int_equal(apply(*state, SPOOL_DROP,
	                       (struct spool_filter){.state = -1, .recipient = d[1].address}),
	                 1);
	char *b;
	size_t len;
	assert_int_equal(spool_message_body(*state, id, &b, &len, why, sizeof why),
	                 SPOOL_NOT_FOUND);
	struct seen m = show(*state, id, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(m.nr, 1);
	assert_int_equal(m.done_ms, 5000);
	assert_int_equal(spool_check(*state, ignore_problem, NULL), 0);
	/* cleanup removes it once the retention has passed */
	assert_int_equal(spool_begin(*state, why, sizeof why), 0);
	assert_int_equal(spool_cleanup(*state, INT64_MAX, 10, why, sizeof why), 1);
	assert_int_equal(spool_commit(*state, why, sizeof why), 0);
	show(*state, id, &rc);
	assert_int_equal(rc, SPOOL_NOT_FOUND);
	assert_int_equal(spool_check(*state, ignore_problem, NULL), 0);
}

static void test_cleanup_works_in_batches(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	for (int i = 0; i < 5; i++) {
		uint64_t id = insert(*state, "", rcpts, 1);
		apply(*state, SPOOL_HOLD,
		      (struct spool_filter){.state = -1, .ids = &id, .nids = 1});
	}
	struct spool_due d[8];
	apply(*state, SPOOL_RELEASE, (struct spool_filter){.state = -1, .all = true});
	assert_int_equal(due(*state, d, 8), 5);
	for (int i = 0; i < 5; i++) {
		begin(*state, d[i].rcpt_id, 1);
		end(*state, d[i].rcpt_id, RCPT_DELIVERED, SPOOL_NOTICE_NONE);
		settle(*state, d[i].msg_id);
	}
	int64_t n[3];
	for (int i = 0; i < 3; i++) {
		assert_int_equal(spool_begin(*state, why, sizeof why), 0);
		n[i] = spool_cleanup(*state, INT64_MAX, 2, why, sizeof why);
		assert_int_equal(spool_commit(*state, why, sizeof why), 0);
	}
	assert_int_equal(n[0], 2);
	assert_int_equal(n[1], 2);
	assert_int_equal(n[2], 1);
}

static void test_state_counts_follow_every_change_exactly(void **state)
{
	struct spool *s = *state;
	int64_t delta[RCPT_NSTATES], counts[RCPT_NSTATES];
	assert_int_equal(spool_track_states(s, why, sizeof why), 0);
	const char *rcpts[] = {"a@example.net", "b@example.net", "c@example.net"};
	uint64_t id = insert(s, "s@example.com", rcpts, 3);
	struct spool_due d[3];
	assert_int_equal(due(s, d, 3), 3);
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	assert_int_equal(spool_attempt_begin(s, d[0].rcpt_id, 10000, 1000, why, sizeof why), 1);
	assert_int_equal(spool_savepoint(s, why, sizeof why), 0);
	struct spool_filter all = {.state = -1, .ids = &id, .nids = 1};
	assert_int_equal(spool_apply(s, SPOOL_HOLD, &all, 6000, why, sizeof why), 3);
	/* a rolled back job takes its changes of the counts with it */
	assert_int_equal(spool_savepoint_release(s, false, why, sizeof why), 0);
	struct spool_filter one = {.state = -1, .recipient = d[1].address};
	assert_int_equal(spool_apply(s, SPOOL_DROP, &one, 6000, why, sizeof why), 1);
	assert_int_equal(spool_state_delta_take(s, delta, why, sizeof why), 0);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
	/* three inserted, one begun, one dropped, the hold undone: exactly
	 * what the table says */
	assert_int_equal(spool_count_states(s, counts), 0);
	for (int i = 0; i < RCPT_NSTATES; i++)
		assert_int_equal(delta[i], counts[i]);
	assert_int_equal(delta[RCPT_QUEUED], 1);
	assert_int_equal(delta[RCPT_DEFERRED], 1);
	assert_int_equal(delta[RCPT_HELD], 0);
	/* taken: the delta starts again from zero */
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	assert_int_equal(spool_state_delta_take(s, delta, why, sizeof why), 0);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
	for (int i = 0; i < RCPT_NSTATES; i++)
		assert_int_equal(delta[i], 0);
}

static void test_body_is_read_in_pieces(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	uint64_t id = insert(*state, "", rcpts, 1);
	char buf[64];
	size_t off = 0;
	ssize_t got;
	while ((got = spool_body_read(*state, id, off, buf + off, 5, why, sizeof why)) > 0)
		off += (size_t)got;
	assert_int_equal(got, 0);
	assert_int_equal(off, sizeof body - 1);
	assert_memory_equal(buf, body, off);
	assert_int_equal(spool_body_read(*state, 12345, 0, buf, 5, why, sizeof why), -1);
}

static void test_interrupted_attempts_are_due_again_and_waiting_drops_done(void **state)
{
	const char *rcpts[] = {"a@example.net", "b@example.net"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 2);
	struct spool_due d[2];
	assert_int_equal(due(*state, d, 2), 2);
	begin(*state, d[0].rcpt_id, 1);
	begin(*state, d[1].rcpt_id, 1);
	apply(*state, SPOOL_DROP, (struct spool_filter){.state = -1, .recipient = d[1].address});
	assert_int_equal(spool_recover_interrupted(*state, 7000, why, sizeof why), 1);
	int rc;
	struct seen m = show(*state, id, &rc);
	assert_int_equal(m.nr, 1);
	assert_false(m.in_flight[0]);
	assert_int_equal(spool_due_list(*state, 7000, NULL, 0, d, 2, why, sizeof why), 1);
	assert_int_equal(spool_check(*state, ignore_problem, NULL), 0);
}

static void test_delivery_log_is_shown(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 1);
	struct spool_due d[1];
	assert_int_equal(due(*state, d, 1), 1);
	struct spool_attempt_log l = {.msg_id = id,
	                              .rcpt_id = d[0].rcpt_id,
	                              .started_ms = 10000,
	                              .duration_ms = 12,
	                              .mx = "mx.example.net",
	                              .ip = "192.0.2.1",
	                              .tls = "TLSv1.3",
	                              .result = SPOOL_ATTEMPT_DEFERRED,
	                              .reply = "451 4.3.0 try later"};
	assert_int_equal(spool_begin(*state, why, sizeof why), 0);
	assert_int_equal(spool_log_attempt(*state, &l, why, sizeof why), 0);
	assert_int_equal(
	    spool_dialed_put(*state, id, "mx.example.net", "192.0.2.1", why, sizeof why), 0);
	assert_int_equal(spool_commit(*state, why, sizeof why), 0);
	char ips[64];
	spool_dialed_get(*state, id, "mx.example.net", ips, sizeof ips);
	assert_string_equal(ips, "192.0.2.1");
}

static void test_spool_files_are_private(void **state)
{
	char path[128];
	struct stat st;
	snprintf(path, sizeof path, "%s/spool.db", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0077, 0);
	snprintf(path, sizeof path, "%s/spool.db-wal", dir);
	if (stat(path, &st) == 0)
		assert_int_equal(st.st_mode & 0077, 0);
}

static void test_version_one_spool_is_migrated(void **state)
{
	spool_close(*state);
	char path[128], cmd[256];
	snprintf(path, sizeof path, "%s/old", dir);
	snprintf(cmd, sizeof cmd, "mkdir -p %s", path);
	assert_int_equal(system(cmd), 0);
	/* a spool as outpost's first schema left it, with one message */
	sqlite3 *db;
	char file[160];
	snprintf(file, sizeof file, "%s/spool.db", path);
	assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
	                 "CREATE TABLE messages (id INTEGER PRIMARY KEY, sender TEXT NOT NULL,"
	                 " size INTEGER NOT NULL, queued INTEGER NOT NULL, flags INTEGER NOT "
	                 "NULL, auth_user TEXT, client TEXT);"
	                 "CREATE TABLE recipients (id INTEGER PRIMARY KEY, msg_id INTEGER NOT "
	                 "NULL, address TEXT NOT NULL, domain TEXT NOT NULL, state INTEGER NOT "
	                 "NULL, held_from INTEGER, attempts INTEGER NOT NULL DEFAULT 0, "
	                 "next_attempt INTEGER NOT NULL, last_attempt INTEGER, last_error TEXT);"
	                 "CREATE TABLE bodies (msg_id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
	                 "INSERT INTO messages VALUES (7, 'a@b', 3, 1, 0, NULL, NULL);"
	                 "INSERT INTO recipients (id, msg_id, address, domain, state, "
	                 "next_attempt) VALUES (41, 7, 'r@example.net', 'example.net', 0, 1);"
	                 "INSERT INTO bodies VALUES (7, 'x\r\n');"
	                 "PRAGMA user_version = 1;",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	*state = spool_open(path, why, sizeof why);
	assert_non_null(*state);
	int rc;
	struct seen m = show(*state, 7, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(m.address[0], "r@example.net");
	/* the recipient keeps its id, and new ones come after it */
	const char *rcpts[] = {"n@example.net"};
	insert(*state, "", rcpts, 1);
	struct spool_due d[2];
	assert_int_equal(spool_due_list(*state, 1000000, NULL, 0, d, 2, why, sizeof why), 2);
	assert_int_equal(d[0].rcpt_id, 41);
	assert_true(d[1].rcpt_id > 41);
	assert_int_equal(spool_check(*state, ignore_problem, NULL), 0);
}

static void test_ids_are_unique_and_round_trip(void **state)
{
	uint64_t a = spool_new_id(), b = spool_new_id(), back;
	assert_true(a != b);
	char hex[17];
	spool_id_format(a, hex);
	assert_true(spool_id_parse(hex, &back));
	assert_true(back == a);
	assert_false(spool_id_parse("xyz", &back));
	assert_false(spool_id_parse("", &back));
	assert_false(spool_id_parse("00112233445566778", &back));
}


/* ---- pages (schema 7) ---- */

#define WALK 300

static const char *const one_rcpt[] = {"r@example.net"};

static uint64_t queue_at(struct spool *s, int64_t queued_ms)
{
	return insert_at(s, "a@example.org", one_rcpt, 1, queued_ms);
}

struct walk {
	uint64_t ids[4 * WALK];
	int64_t queued[4 * WALK];
	size_t n;
};

static int walk_see(void *arg, const struct spool_message_row *m,
                    const struct spool_recipient_row *r, size_t nr)
{
	struct walk *w = arg;
	assert_true(w->n < sizeof w->ids / sizeof w->ids[0]);
	w->queued[w->n] = m->queued_ms;
	w->ids[w->n++] = m->id;
	return 0;
}

static size_t times_seen(const struct walk *w, uint64_t id)
{
	size_t k = 0;
	for (size_t i = 0; i < w->n; i++)
		k += w->ids[i] == id;
	return k;
}

static void drop_one(struct spool *s, uint64_t id)
{
	assert_int_equal(apply(s, SPOOL_DROP, (struct spool_filter){.ids = &id, .nids = 1, .state = -1}),
	                 1);
}

/* A walk from page to page while, between pages, messages are added (at
 * both ends of the order and at random places in it) and dropped: every
 * message that exists throughout is seen exactly once, and no message is
 * seen twice. */
static void walk_under_churn(struct spool *s, bool newest_first)
{
	uint64_t orig[WALK];
	bool dropped[WALK] = {0};
	unsigned seed = 7;
	/* ten messages per millisecond: the id breaks the ties of queued */
	for (int i = 0; i < WALK; i++)
		orig[i] = queue_at(s, 100000 + i / 10);
	struct walk w = {0};
	struct spool_key after;
	struct spool_list_query q = {.f = {.state = -1}, .queued_from_ms = -1, .queued_before_ms = -1};
	struct spool_page p = {.limit = 7, .newest_first = newest_first};
	int pages = 0;
	do {
		assert_int_equal(spool_list_page(s, &q, &p, walk_see, &w, why, sizeof why), 0);
		pages++;
		after = p.next;
		p.after = &after;
		queue_at(s, 50000);
		queue_at(s, 900000);
		queue_at(s, 100000 + rand_r(&seed) % (WALK / 10));
		int k = rand_r(&seed) % WALK;
		if (!dropped[k])
			drop_one(s, orig[k]);
		dropped[k] = true;
	} while (p.more && pages < 1000);
	assert_false(p.more);
	for (int i = 0; i < WALK; i++)
		if (!dropped[i])
			assert_int_equal(times_seen(&w, orig[i]), 1);
	for (size_t i = 0; i < w.n; i++)
		assert_int_equal(times_seen(&w, w.ids[i]), 1);
	/* and in order */
	for (size_t i = 1; i < w.n; i++) {
		bool before = w.queued[i - 1] < w.queued[i] ||
		              (w.queued[i - 1] == w.queued[i] && w.ids[i - 1] < w.ids[i]);
		assert_true(before != newest_first);
	}
}

static void test_a_walk_sees_each_message_once_while_the_queue_changes(void **state)
{
	walk_under_churn(*state, false);
}

static void test_a_newest_first_walk_sees_each_message_once_too(void **state)
{
	walk_under_churn(*state, true);
}

static void test_pages_filter_by_sender_age_and_state(void **state)
{
	struct spool *s = *state;
	uint64_t a = insert_at(s, "a@example.org", one_rcpt, 1, 1000);
	uint64_t b = insert_at(s, "B@example.org", one_rcpt, 1, 2000);
	uint64_t c = insert_at(s, "", one_rcpt, 1, 3000);
	struct walk w = {0};
	struct spool_list_query q = {.f = {.state = -1}, .queued_from_ms = -1, .queued_before_ms = -1};
	struct spool_page p = {.limit = 10};
	q.sender = "b@example.org"; /* case-insensitive */
	assert_int_equal(spool_list_page(s, &q, &p, walk_see, &w, why, sizeof why), 0);
	assert_int_equal(w.n, 1);
	assert_true(w.ids[0] == b);
	q.sender = ""; /* <> */
	w.n = 0;
	assert_int_equal(spool_list_page(s, &q, &p, walk_see, &w, why, sizeof why), 0);
	assert_int_equal(w.n, 1);
	assert_true(w.ids[0] == c);
	q.sender = NULL;
	q.queued_before_ms = 2000;
	w.n = 0;
	assert_int_equal(spool_list_page(s, &q, &p, walk_see, &w, why, sizeof why), 0);
	assert_int_equal(w.n, 1);
	assert_true(w.ids[0] == a);
	q.queued_before_ms = -1;
	q.queued_from_ms = 2000;
	p.newest_first = true;
	w.n = 0;
	assert_int_equal(spool_list_page(s, &q, &p, walk_see, &w, why, sizeof why), 0);
	assert_int_equal(w.n, 2);
	assert_true(w.ids[0] == c && w.ids[1] == b);
	/* a page of one, then the next from its key */
	q.queued_from_ms = -1;
	p = (struct spool_page){.limit = 2};
	w.n = 0;
	assert_int_equal(spool_list_page(s, &q, &p, walk_see, &w, why, sizeof why), 0);
	assert_true(p.more);
	assert_int_equal(p.next.time_ms, 2000);
	struct spool_key after = p.next;
	p.after = &after;
	assert_int_equal(spool_list_page(s, &q, &p, walk_see, &w, why, sizeof why), 0);
	assert_false(p.more);
	assert_int_equal(w.n, 3);
	assert_true(w.ids[2] == c);
	/* held: only with state */
	apply(s, SPOOL_HOLD, (struct spool_filter){.ids = &a, .nids = 1, .state = -1});
	q.f.state = RCPT_HELD;
	p = (struct spool_page){.limit = 10};
	w.n = 0;
	assert_int_equal(spool_list_page(s, &q, &p, walk_see, &w, why, sizeof why), 0);
	assert_int_equal(w.n, 1);
	assert_true(w.ids[0] == a);
}

struct history {
	size_t n;
	char recipient[8][64];
	enum spool_attempt_result result[8];
	int64_t started[8];
	uint64_t msg_id;
	char sender[64];
	int64_t done_ms;
};

static void history_see(void *arg, const struct spool_history_row *h)
{
	struct history *y = arg;
	assert_true(y->n < 8);
	snprintf(y->recipient[y->n], 64, "%s", h->a.recipient);
	y->result[y->n] = h->a.result;
	y->started[y->n] = h->a.started_ms;
	y->msg_id = h->msg_id;
	snprintf(y->sender, sizeof y->sender, "%s", h->sender);
	y->done_ms = h->done_ms;
	y->n++;
}

static void log_attempt(struct spool *s, uint64_t msg, int64_t rcpt, int64_t at,
                        enum spool_attempt_result result)
{
	struct spool_attempt_log l = {
	    .msg_id = msg, .rcpt_id = rcpt, .started_ms = at, .result = result, .reply = "250 ok"};
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	assert_int_equal(spool_log_attempt(s, &l, why, sizeof why), 0);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
}

static struct history history(struct spool *s, struct spool_history_query q, size_t limit,
                              bool *more)
{
	struct history y = {0};
	struct spool_page p = {.limit = limit, .newest_first = true};
	assert_int_equal(spool_history_page(s, &q, &p, history_see, &y, why, sizeof why), 0);
	*more = p.more;
	return y;
}

static void test_history_pages_newest_first_with_filters(void **state)
{
	struct spool *s = *state;
	const char *rcpts[] = {"a@one.example", "b@two.example"};
	uint64_t id = insert(s, "s@example.org", rcpts, 2);
	struct spool_due d[2];
	assert_int_equal(due(s, d, 2), 2);
	int64_t ra = strcmp(d[0].address, "a@one.example") == 0 ? d[0].rcpt_id : d[1].rcpt_id;
	int64_t rb = ra == d[0].rcpt_id ? d[1].rcpt_id : d[0].rcpt_id;
	log_attempt(s, id, ra, 1000, SPOOL_ATTEMPT_DEFERRED);
	log_attempt(s, id, rb, 1000, SPOOL_ATTEMPT_DEFERRED);
	log_attempt(s, id, ra, 2000, SPOOL_ATTEMPT_DELIVERED);
	log_attempt(s, id, rb, 3000, SPOOL_ATTEMPT_FAILED);
	struct spool_history_query all = {.f = {.state = -1}, .result = -1, .started_from_ms = -1,
	                                  .started_before_ms = -1};
	bool more;
	struct history y = history(s, all, 3, &more);
	assert_int_equal(y.n, 3);
	assert_true(more);
	assert_int_equal(y.result[0], SPOOL_ATTEMPT_FAILED);
	assert_int_equal(y.result[1], SPOOL_ATTEMPT_DELIVERED);
	assert_string_equal(y.recipient[2], "b@two.example"); /* same time: the later row first */
	assert_true(y.msg_id == id);
	assert_string_equal(y.sender, "s@example.org");
	assert_int_equal(y.done_ms, -1);
	struct spool_history_query q = all;
	q.result = SPOOL_ATTEMPT_DEFERRED;
	assert_int_equal(history(s, q, 10, &more).n, 2);
	q = all;
	q.f.domain = "ONE.example";
	y = history(s, q, 10, &more);
	assert_int_equal(y.n, 2);
	assert_string_equal(y.recipient[1], "a@one.example");
	q = all;
	q.f.recipient = "b@two.example";
	assert_int_equal(history(s, q, 10, &more).n, 2);
	q = all;
	q.started_from_ms = 2000;
	assert_int_equal(history(s, q, 10, &more).n, 2);
	q = all;
	q.started_before_ms = 2000;
	assert_int_equal(history(s, q, 10, &more).n, 2);
	assert_false(more);
	uint64_t other = id + 1;
	q = all;
	q.f.ids = &other;
	q.f.nids = 1;
	assert_int_equal(history(s, q, 10, &more).n, 0);
}

static void test_a_read_only_connection_reads_and_never_writes(void **state)
{
	struct spool *s = *state;
	queue_at(s, 1000);
	struct spool *ro = spool_open_readonly(dir, why, sizeof why);
	assert_non_null(ro);
	queue_at(s, 2000); /* committed after the open: seen */
	assert_int_equal(list(ro, (struct spool_filter){.state = -1}).messages, 2);
	struct spool_message_in m = {.id = spool_new_id(),
	                             .sender = "",
	                             .rcpts = one_rcpt,
	                             .nrcpt = 1,
	                             .body = body,
	                             .body_len = sizeof body - 1};
	assert_int_equal(spool_insert_message(ro, &m, why, sizeof why), -1);
	assert_non_null(strstr(why, "readonly"));
	spool_close(ro);
	/* a spool of another schema version is not misread */
	sqlite3 *db;
	char file[160];
	snprintf(file, sizeof file, "%s/spool.db", dir);
	assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 6", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(spool_open_readonly(dir, why, sizeof why));
	assert_non_null(strstr(why, "schema version 6"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* ---- the MTA-STS cache rows and the TLS results (schema 5) ---- */

static void test_sts_rows_round_trip_confirm_and_forget(void **state)
{
	struct spool *s = *state;
	struct sts_row r = {.policy = "version: STSv1\nmode: enforce\nmx: mx.example\nmax_age: 86400\n",
	                    .fetched_ms = 1000,
	                    .valid_until_ms = 5000,
	                    .last_use_ms = 1000};
	snprintf(r.domain, sizeof r.domain, "example.net");
	snprintf(r.record_id, sizeof r.record_id, "20261130");
	struct sts_row got;
	assert_int_equal(spool_sts_get(s, "example.net", &got, why, sizeof why), 0);
	assert_int_equal(spool_sts_put(s, &r, why, sizeof why), 0);
	assert_int_equal(spool_sts_get(s, "example.net", &got, why, sizeof why), 1);
	assert_string_equal(got.record_id, "20261130");
	assert_string_equal(got.policy, r.policy);
	assert_false(got.backoff);
	assert_int_equal(got.valid_until_ms, 5000);
	sts_row_clear(&got);
	/* the TXT id still names it: good for longer, used now */
	assert_int_equal(spool_sts_confirm(s, "example.net", 2000, 9000, why, sizeof why), 0);
	assert_int_equal(spool_sts_get(s, "example.net", &got, why, sizeof why), 1);
	assert_int_equal(got.fetched_ms, 2000);
	assert_int_equal(got.valid_until_ms, 9000);
	assert_int_equal(got.last_use_ms, 2000);
	sts_row_clear(&got);
	char domains[4][256];
	assert_int_equal(spool_sts_stale(s, 2001, domains, 4, why, sizeof why), 1);
	assert_string_equal(domains[0], "example.net");
	assert_int_equal(spool_sts_stale(s, 2000, domains, 4, why, sizeof why), 0);
	/* back-off rows are never refreshed */
	struct sts_row b = {.policy = "", .backoff = true, .fetched_ms = 10, .valid_until_ms = 20};
	snprintf(b.domain, sizeof b.domain, "broken.example");
	assert_int_equal(spool_sts_put(s, &b, why, sizeof why), 0);
	assert_int_equal(spool_sts_stale(s, 100000, domains, 4, why, sizeof why), 1);
	/* unused or long expired rows go */
	assert_int_equal(spool_sts_forget(s, 0, 21, why, sizeof why), 1);
	assert_int_equal(spool_sts_get(s, "broken.example", &got, why, sizeof why), 0);
	assert_int_equal(spool_sts_forget(s, 3000, 0, why, sizeof why), 1);
	assert_int_equal(spool_sts_get(s, "example.net", &got, why, sizeof why), 0);
}

struct collected {
	int n;
	struct tlsrpt_set all;
};

static void collect(void *arg, const struct tlsrpt_result *r)
{
	struct collected *c = arg;
	tlsrpt_set_merge(&c->all, r);
	c->n++;
}

static void attempt_results(struct tlsrpt_set *set, int64_t ok, int64_t failed, const char *reason)
{
	struct tlsrpt_result *r = tlsrpt_set_result(set, TLSRPT_STS, "example.net",
	                                            "version: STSv1\nmode: enforce", "mx.example.net");
	r->success += ok;
	r->failure += failed;
	struct tlsrpt_failure f = {.count = failed};
	snprintf(f.result_type, sizeof f.result_type, "certificate-expired");
	snprintf(f.receiving_mx, sizeof f.receiving_mx, "mx.example.net");
	snprintf(f.receiving_ip, sizeof f.receiving_ip, "192.0.2.1");
	snprintf(f.reason, sizeof f.reason, "%s", reason);
	if (failed)
		tlsrpt_add_failure(r, &f);
	tlsrpt_set_result(set, TLSRPT_NO_POLICY, "mx.example.net", NULL, NULL)->success += ok;
}

/* Identical policies of a day share a row; identical details add up. */
static void test_tls_results_merge_per_day_and_policy(void **state)
{
	struct spool *s = *state;
	struct tlsrpt_set a = {0}, b = {0};
	attempt_results(&a, 3, 1, "");
	attempt_results(&b, 2, 2, "");
	for (size_t i = 0; i < a.n; i++)
		assert_int_equal(spool_tls_results_add(s, "2026-11-30", &a.r[i], true, why, sizeof why), 0);
	for (size_t i = 0; i < b.n; i++)
		assert_int_equal(spool_tls_results_add(s, "2026-11-30", &b.r[i], true, why, sizeof why), 0);
	tlsrpt_set_clear(&a);
	attempt_results(&a, 7, 1, "other-reason");
	assert_int_equal(spool_tls_results_add(s, "2026-12-01", &a.r[0], true, why, sizeof why), 0);
	assert_int_equal(spool_tls_results_add(s, "2026-11-30", &a.r[0], true, why, sizeof why), 0);

	struct collected c = {0};
	assert_int_equal(spool_tls_results_read(s, "2026-11-30", NULL, false, collect, &c, why, sizeof why), 0);
	assert_int_equal(c.n, 2);
	struct tlsrpt_result *sts = &c.all.r[1], *host = &c.all.r[0];
	if (sts->type != TLSRPT_STS) {
		sts = &c.all.r[0];
		host = &c.all.r[1];
	}
	assert_int_equal(sts->success, 12);
	assert_int_equal(sts->failure, 4);
	assert_int_equal(sts->nfail, 2);
	assert_int_equal(sts->fail[0].count + sts->fail[1].count, 4);
	assert_int_equal(host->success, 5);
	assert_string_equal(sts->strings, "version: STSv1\nmode: enforce");
	tlsrpt_set_clear(&c.all);

	c = (struct collected){0};
	assert_int_equal(spool_tls_results_read(s, "2026-11-30", "mx.example.net", false, collect, &c, why,
	                                         sizeof why),
	                 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.all.r[0].type, TLSRPT_NO_POLICY);
	tlsrpt_set_clear(&c.all);

	assert_int_equal(spool_tls_results_forget(s, "2026-12-01", why, sizeof why) >= 0, 1);
	c = (struct collected){0};
	assert_int_equal(spool_tls_results_read(s, "2026-11-30", NULL, false, collect, &c, why, sizeof why), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(spool_tls_results_read(s, "2026-12-01", NULL, false, collect, &c, why, sizeof why), 0);
	assert_int_equal(c.n, 1);
	tlsrpt_set_clear(&c.all);
	tlsrpt_set_clear(&a);
	tlsrpt_set_clear(&b);
}

/* RFC 8460 §4.4 field names, lists never null. */
static void test_tls_result_json_has_the_rfc_names(void **state)
{
	struct tlsrpt_set set = {0};
	attempt_results(&set, 1, 1, "why");
	json_t *j = tlsrpt_result_json(&set.r[0]);
	char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	assert_non_null(strstr(text, "\"policy\":{\"mx-host\":[\"mx.example.net\"],"
	                             "\"policy-domain\":\"example.net\",\"policy-string\":"
	                             "[\"version: STSv1\",\"mode: enforce\"],\"policy-type\":\"sts\"}"));
	assert_non_null(strstr(text, "\"summary\":{\"total-failure-session-count\":1,"
	                             "\"total-successful-session-count\":1}"));
	assert_non_null(strstr(text, "\"failed-session-count\":1"));
	assert_non_null(strstr(text, "\"failure-reason-code\":\"why\""));
	assert_non_null(strstr(text, "\"result-type\":\"certificate-expired\""));
	free(text);
	json_decref(j);
	json_t *none = tlsrpt_result_json(&set.r[1]);
	text = json_dumps(none, JSON_SORT_KEYS | JSON_COMPACT);
	assert_non_null(strstr(text, "\"mx-host\":[]"));
	assert_non_null(strstr(text, "\"policy-string\":[]"));
	assert_non_null(strstr(text, "\"failure-details\":[]"));
	free(text);
	json_decref(none);
	tlsrpt_set_clear(&set);
}

static void count_post(void *arg, const struct spool_tls_post *p)
{
	int *n = arg;
	assert_string_equal(p->url, "https://r.example/tlsrpt");
	assert_int_equal(p->len, 4);
	assert_memory_equal(p->body, "gz\0!", 4);
	(*n)++;
}

/* Which domains make a report: failures (or details) from reportable
 * results only, once; posts wait, retry and go. */
static void test_tls_report_candidates_and_posts(void **state)
{
	struct spool *s = *state;
	struct tlsrpt_set set = {0};
	tlsrpt_set_result(&set, TLSRPT_NO_POLICY, "ok.example", NULL, NULL)->success = 5;
	tlsrpt_set_result(&set, TLSRPT_NO_POLICY, "bad.example", NULL, NULL)->failure = 1;
	struct tlsrpt_result *det = tlsrpt_set_result(&set, TLSRPT_STS, "detail.example", NULL, NULL);
	struct tlsrpt_failure f = {.count = 0};
	snprintf(f.result_type, sizeof f.result_type, "starttls-not-supported");
	tlsrpt_add_failure(det, &f);
	det->success = 1;
	for (size_t i = 0; i < set.n; i++)
		assert_int_equal(spool_tls_results_add(s, "2026-11-30", &set.r[i], true, why, sizeof why), 0);
	tlsrpt_set_clear(&set);
	/* a report's own delivery failed: that alone makes no report */
	tlsrpt_set_result(&set, TLSRPT_NO_POLICY, "rpt.example", NULL, NULL)->failure = 3;
	assert_int_equal(spool_tls_results_add(s, "2026-11-30", &set.r[0], false, why, sizeof why), 0);
	tlsrpt_set_clear(&set);

	char d[8][256];
	assert_int_equal(spool_tls_report_candidates(s, "2026-11-30", false, d, 8, why, sizeof why), 2);
	assert_string_equal(d[0], "bad.example");
	assert_string_equal(d[1], "detail.example");
	assert_int_equal(spool_tls_report_candidates(s, "2026-11-30", true, d, 8, why, sizeof why), 3);
	assert_int_equal(spool_tls_report_done(s, "2026-11-30", "bad.example", 1, "queued", why,
	                                       sizeof why),
	                 1);
	assert_int_equal(spool_tls_report_done(s, "2026-11-30", "bad.example", 2, "queued", why,
	                                       sizeof why),
	                 0); /* once */
	assert_int_equal(spool_tls_report_candidates(s, "2026-11-30", false, d, 8, why, sizeof why), 1);
	assert_string_equal(d[0], "detail.example");

	assert_int_equal(spool_tls_post_add(s, "https://r.example/tlsrpt", "id1", "gz\0!", 4, 1000,
	                                    why, sizeof why),
	                 0);
	assert_int_equal(spool_tls_post_add(s, "https://r.example/b", "id2", "x", 1, 3000, why,
	                                    sizeof why),
	                 0);
	int n = 0;
	int64_t next;
	assert_int_equal(spool_tls_posts_due(s, 999, 10, count_post, &n, &next, why, sizeof why), 0);
	assert_int_equal(next, 1000);
	assert_int_equal(spool_tls_posts_due(s, 1000, 10, count_post, &n, &next, why, sizeof why), 1);
	assert_int_equal(next, 3000); /* the second post's time: the next look */
	/* a batch of one: the second due post is left, and due at once */
	assert_int_equal(spool_tls_posts_due(s, 3000, 1, count_post, &n, &next, why, sizeof why), 1);
	assert_int_equal(next, 3000);
	assert_int_equal(spool_tls_post_gone(s, 2, why, sizeof why), 0);
	assert_int_equal(spool_tls_post_retry(s, 1, 5000, "503", why, sizeof why), 0);
	assert_int_equal(spool_tls_posts_due(s, 4999, 10, count_post, &n, &next, why, sizeof why), 0);
	assert_int_equal(next, 5000);
	assert_int_equal(spool_tls_posts_due(s, 5000, 10, count_post, &n, &next, why, sizeof why), 1);
	assert_int_equal(next, INT64_MAX);
	assert_int_equal(spool_tls_post_gone(s, 1, why, sizeof why), 0);
	assert_int_equal(spool_tls_posts_due(s, 99999, 10, count_post, &n, &next, why, sizeof why), 0);
	assert_int_equal(next, INT64_MAX);
	assert_int_equal(n, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sts_rows_round_trip_confirm_and_forget, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_results_merge_per_day_and_policy, setup, teardown),
	    cmocka_unit_test(test_tls_result_json_has_the_rfc_names),
	    cmocka_unit_test_setup_teardown(test_tls_report_candidates_and_posts, setup, teardown),
	    T(test_message_is_listed_with_its_recipients),
	    T(test_duplicate_recipients_are_stored_once),
	    T(test_hold_release_keeps_schedule_and_kick_makes_due),
	    T(test_action_without_selector_is_refused),
	    T(test_drop_removes_message_and_body),
	    T(test_hold_during_an_attempt_does_not_discard_its_delivery),
	    T(test_hold_during_an_attempt_stays_after_a_deferral),
	    T(test_drop_during_an_attempt_waits_for_its_outcome),
	    T(test_recipient_ids_are_never_reused),
	    T(test_notices_wait_for_the_last_attempt_in_flight),
	    T(test_notices_are_taken_once),
	    T(test_final_outcome_leaves_the_list),
	    T(test_uncommitted_insert_is_gone_after_reopen),
	    T(test_ids_are_unique_and_round_trip),
	    T(test_message_done_when_last_recipient_is_final),
	    T(test_cleanup_works_in_batches),
	    T(test_state_counts_follow_every_change_exactly),
	    T(test_body_is_read_in_pieces),
	    T(test_interrupted_attempts_are_due_again_and_waiting_drops_done),
	    T(test_delivery_log_is_shown),
	    T(test_spool_files_are_private),
	    T(test_version_one_spool_is_migrated),
	    T(test_a_walk_sees_each_message_once_while_the_queue_changes),
	    T(test_a_newest_first_walk_sees_each_message_once_too),
	    T(test_pages_filter_by_sender_age_and_state),
	    T(test_history_pages_newest_first_with_filters),
	    T(test_a_read_only_connection_reads_and_never_writes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
