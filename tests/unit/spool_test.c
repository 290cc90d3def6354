/* spool_test.c - the spool's schema, inserts, admin actions and attempts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "spool/spool.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static uint64_t insert(struct spool *s, const char *sender, const char *const *rcpts, size_t n)
{
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	struct spool_message_in m = {.id = spool_new_id(),
	                             .sender = sender,
	                             .rcpts = rcpts,
	                             .nrcpt = n,
	                             .queued_ms = 1000,
	                             .body = body,
	                             .body_len = sizeof body - 1};
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	assert_int_equal(spool_insert_message(s, &m, why, sizeof why), 0);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
	return m.id;
}

static int64_t apply(struct spool *s, enum spool_action a, struct spool_filter f)
{
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	int64_t n = spool_apply(s, a, &f, 5000, why, sizeof why);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
	return n;
}

static void test_message_is_listed_with_its_recipients(void **state)
{
	const char *rcpts[] = {"a@Example.NET", "b@example.org"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 2);
	struct spool_filter all = {.state = -1};
	json_t *list = spool_list_json(*state, &all, why, sizeof why);
	assert_int_equal(json_array_size(list), 1);
	json_t *m = json_array_get(list, 0);
	char hex[17];
	spool_id_format(id, hex);
	assert_string_equal(json_string_value(json_object_get(m, "id")), hex);
	assert_string_equal(json_string_value(json_object_get(m, "sender")), "s@example.com");
	json_t *r = json_object_get(m, "recipients");
	assert_int_equal(json_array_size(r), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "state")),
	                    "queued");
	json_decref(list);
	struct spool_filter by_domain = {.state = -1, .domain = "EXAMPLE.net"};
	list = spool_list_json(*state, &by_domain, why, sizeof why);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);
	struct spool_filter other = {.state = -1, .domain = "nowhere.test"};
	list = spool_list_json(*state, &other, why, sizeof why);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
}

static void test_hold_release_keeps_schedule_and_kick_makes_due(void **state)
{
	const char *rcpts[] = {"a@example.net", "b@example.org"};
	uint64_t id = insert(*state, "", rcpts, 2);
	assert_int_equal(
	    apply(*state, SPOOL_HOLD, (struct spool_filter){.state = -1, .ids = &id, .nids = 1}),
	    2);
	struct spool_due due[4];
	assert_int_equal(spool_due_list(*state, 10000, NULL, 0, due, 4, why, sizeof why), 0);
	assert_int_equal(apply(*state, SPOOL_RELEASE,
	                       (struct spool_filter){.state = -1, .recipient = "A@example.net"}),
	                 1);
	assert_int_equal(spool_due_list(*state, 10000, NULL, 0, due, 4, why, sizeof why), 1);
	/* an attempt moves it into the future; kick brings it back */
	assert_int_equal(spool_begin(*state, why, sizeof why), 0);
	assert_int_equal(
	    spool_attempt_begin(*state, due[0].rcpt_id, 10000, 450000, why, sizeof why), 1);
	assert_int_equal(spool_commit(*state, why, sizeof why), 0);
	assert_int_equal(spool_due_list(*state, 10000, NULL, 0, due, 4, why, sizeof why), 0);
	assert_int_equal(spool_next_due(*state), 460000);
	assert_int_equal(apply(*state, SPOOL_KICK, (struct spool_filter){.state = -1, .all = true}),
	                 1);
	assert_int_equal(spool_due_list(*state, 10000, NULL, 0, due, 4, why, sizeof why), 1);
	assert_int_equal(due[0].attempts, 1);
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
	char *body;
	size_t len;
	assert_int_equal(spool_message_body(*state, id, &body, &len, why, sizeof why), 0);
	free(body);
	assert_int_equal(apply(*state, SPOOL_DROP, (struct spool_filter){.state = -1, .all = true}),
	                 1);
	assert_int_equal(spool_message_body(*state, id, &body, &len, why, sizeof why), -1);
	assert_null(spool_show_json(*state, id, why, sizeof why));
	assert_int_equal(spool_check(*state, ignore_problem, NULL), 0);
}

static void test_final_outcome_leaves_the_list(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	insert(*state, "s@example.com", rcpts, 1);
	struct spool_due due[1];
	assert_int_equal(spool_due_list(*state, 10000, NULL, 0, due, 1, why, sizeof why), 1);
	assert_int_equal(spool_begin(*state, why, sizeof why), 0);
	assert_int_equal(spool_attempt_begin(*state, due[0].rcpt_id, 10000, 1000, why, sizeof why),
	                 1);
	assert_int_equal(spool_attempt_end(*state, due[0].rcpt_id, RCPT_FAILED,
	                                   "5.1.1 no such user", why, sizeof why),
	                 0);
	assert_int_equal(spool_commit(*state, why, sizeof why), 0);
	struct spool_filter all = {.state = -1};
	json_t *list = spool_list_json(*state, &all, why, sizeof why);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	struct spool_filter failed = {.state = RCPT_FAILED};
	list = spool_list_json(*state, &failed, why, sizeof why);
	assert_int_equal(json_array_size(list), 1);
	json_t *r = json_array_get(json_object_get(json_array_get(list, 0), "recipients"), 0);
	assert_string_equal(json_string_value(json_object_get(r, "last_error")),
	                    "5.1.1 no such user");
	assert_int_equal(json_integer_value(json_object_get(r, "attempts")), 1);
	json_decref(list);
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
	assert_null(spool_show_json(*state, m.id, why, sizeof why));
}

static void finish_rcpt(struct spool *s, int64_t rcpt_id, enum rcpt_state st)
{
	assert_int_equal(spool_begin(s, why, sizeof why), 0);
	assert_int_equal(spool_attempt_begin(s, rcpt_id, 10000, 1000, why, sizeof why), 1);
	assert_int_equal(spool_attempt_end(s, rcpt_id, st, "250 ok", why, sizeof why), 0);
	assert_int_equal(spool_commit(s, why, sizeof why), 0);
}

static void test_message_done_when_last_recipient_is_final(void **state)
{
	const char *rcpts[] = {"a@example.net", "b@example.net"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 2);
	struct spool_due due[2];
	assert_int_equal(spool_due_list(*state, 10000, NULL, 0, due, 2, why, sizeof why), 2);
	finish_rcpt(*state, due[0].rcpt_id, RCPT_DELIVERED);
	assert_int_equal(spool_begin(*state, why, sizeof why), 0);
	assert_int_equal(spool_finish_if_done(*state, id, 20000, why, sizeof why), 0);
	assert_int_equal(spool_commit(*state, why, sizeof why), 0);
	/* the other recipient is dropped: the message is done, its body gone,
	 * and it stays visible with its delivery log */
	assert_int_equal(apply(*state, SPOOL_DROP,
	                       (struct spool_filter){.state = -1, .recipient = due[1].address}),
	                 1);
	char *body;
	size_t len;
	assert_int_equal(spool_message_body(*state, id, &body, &len, why, sizeof why), -1);
	json_t *m = spool_show_json(*state, id, why, sizeof why);
	assert_non_null(m);
	assert_int_equal(json_array_size(json_object_get(m, "recipients")), 1);
	json_decref(m);
	/* cleanup removes it once the retention has passed */
	assert_int_equal(spool_begin(*state, why, sizeof why), 0);
	assert_true(spool_cleanup(*state, INT64_MAX, why, sizeof why) > 0);
	assert_int_equal(spool_commit(*state, why, sizeof why), 0);
	assert_null(spool_show_json(*state, id, why, sizeof why));
	assert_int_equal(spool_check(*state, ignore_problem, NULL), 0);
}

static void test_delivery_log_is_shown(void **state)
{
	const char *rcpts[] = {"a@example.net"};
	uint64_t id = insert(*state, "s@example.com", rcpts, 1);
	struct spool_due due[1];
	assert_int_equal(spool_due_list(*state, 10000, NULL, 0, due, 1, why, sizeof why), 1);
	struct spool_attempt_log l = {.msg_id = id,
	                              .rcpt_id = due[0].rcpt_id,
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
	json_t *m = spool_show_json(*state, id, why, sizeof why);
	json_t *a = json_array_get(json_object_get(m, "attempts"), 0);
	assert_non_null(a);
	assert_string_equal(json_string_value(json_object_get(a, "mx")), "mx.example.net");
	assert_string_equal(json_string_value(json_object_get(a, "result")), "deferred");
	assert_string_equal(json_string_value(json_object_get(a, "reply")), "451 4.3.0 try later");
	json_decref(m);
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
	                 "INSERT INTO recipients (msg_id, address, domain, state, next_attempt) "
	                 "VALUES (7, 'r@example.net', 'example.net', 0, 1);"
	                 "INSERT INTO bodies VALUES (7, 'x\r\n');"
	                 "PRAGMA user_version = 1;",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	*state = spool_open(path, why, sizeof why);
	assert_non_null(*state);
	json_t *m = spool_show_json(*state, 7, why, sizeof why);
	assert_non_null(m);
	assert_int_equal(json_array_size(json_object_get(m, "attempts")), 0);
	json_decref(m);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_message_is_listed_with_its_recipients, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_hold_release_keeps_schedule_and_kick_makes_due,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_action_without_selector_is_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_drop_removes_message_and_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_final_outcome_leaves_the_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uncommitted_insert_is_gone_after_reopen, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_ids_are_unique_and_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_message_done_when_last_recipient_is_final, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_delivery_log_is_shown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_version_one_spool_is_migrated, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
