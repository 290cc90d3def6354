/* conf_test.c - configuration parsing, durations and the key table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf/conf.h"
#include "conf/confdoc.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct errors {
	int n;
	int lines[16];
	char msgs[16][256];
};

static void collect(const char *file, int line, const char *msg, void *arg)
{
	struct errors *e = arg;
	if (e->n < 16) {
		e->lines[e->n] = line;
		snprintf(e->msgs[e->n], sizeof e->msgs[0], "%s", msg);
	}
	e->n++;
}

static int load_text(struct conf *c, const char *text, struct errors *e)
{
	char path[] = "/tmp/outpost-conf-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	conf_defaults(c);
	int n = conf_load_file(c, path, collect, e);
	unlink(path);
	return n;
}

static void test_defaults_match_design(void **state)
{
	struct conf c;
	conf_defaults(&c);
	assert_string_equal(c.data_dir, "./data");
	assert_int_equal(c.submission_listen.len, 1);
	assert_string_equal(c.submission_listen.items[0], "127.0.0.1:2525");
	assert_string_equal(c.admin_listen.items[0], "127.0.0.1:8025");
	assert_int_equal(c.delivery_port, 25);
	assert_int_equal(c.max_attempts, 8);
	assert_int_equal(c.first_retry_ms, 450000);
	assert_int_equal(c.delay_notice_after, 5);
	assert_false(c.paused);
	assert_int_equal(c.trust_ad, TRUST_AD_AUTO);
	assert_true(c.hostname[0] != '\0');
	conf_free(&c);
}

static void test_values_of_every_type_are_applied(void **state)
{
	struct conf c;
	struct errors e = {0};
	int n = load_text(&c,
	                  "[server]\nhostname = mx.example.org\n"
	                  "[submission]\nlisten = 127.0.0.1:2600\nlisten = [::1]:2600\n"
	                  "max_message_size = 10M\nidle_timeout = 1m30s\n"
	                  "[delivery]\npaused = yes\nfirst_retry = 30s\nmax_attempts = 3\n"
	                  "[dns]\ntrust_ad = no\n",
	                  &e);
	assert_int_equal(n, 0);
	assert_string_equal(c.hostname, "mx.example.org");
	assert_int_equal(c.submission_listen.len, 2); /* the file replaces the default */
	assert_string_equal(c.submission_listen.items[1], "[::1]:2600");
	assert_int_equal(c.max_message_size, 10 * 1024 * 1024);
	assert_int_equal(c.idle_timeout_ms, 90000);
	assert_true(c.paused);
	assert_int_equal(c.first_retry_ms, 30000);
	assert_int_equal(c.max_attempts, 3);
	assert_int_equal(c.trust_ad, TRUST_AD_NO);
	conf_free(&c);
}

static void test_errors_name_their_line(void **state)
{
	struct conf c;
	struct errors e = {0};
	int n = load_text(&c,
	                  "[server]\n"           /* 1 */
	                  "data_dir = /tmp/x\n"  /* 2 */
	                  "colour = blue\n"      /* 3: unknown key */
	                  "[delivery]\n"         /* 4 */
	                  "first_retry = 7q\n"   /* 5: bad duration */
	                  "paused = perhaps\n"   /* 6: bad bool */
	                  "max_attempts = 0\n"   /* 7: out of range */
	                  "[nosuch]\nkey = 1\n", /* 9: unknown section */
	                  &e);
	assert_int_equal(n, 5);
	assert_int_equal(e.lines[0], 3);
	assert_non_null(strstr(e.msgs[0], "unknown key \"colour\""));
	assert_int_equal(e.lines[1], 5);
	assert_non_null(strstr(e.msgs[1], "bad duration"));
	assert_int_equal(e.lines[2], 6);
	assert_int_equal(e.lines[3], 7);
	assert_non_null(strstr(e.msgs[3], "out of range"));
	assert_int_equal(e.lines[4], 9);
	conf_free(&c);
}

static void test_syntax_error_names_line(void **state)
{
	struct conf c;
	struct errors e = {0};
	int n = load_text(&c, "[server]\nhostname = a\nthis line has no equals sign\n", &e);
	assert_true(n >= 1);
	assert_int_equal(e.lines[0], 3);
	conf_free(&c);
}

static void test_durations(void **state)
{
	int64_t ms;
	assert_true(duration_parse("30s", &ms));
	assert_int_equal(ms, 30000);
	assert_true(duration_parse("7m30s", &ms));
	assert_int_equal(ms, 450000);
	assert_true(duration_parse("4h", &ms));
	assert_int_equal(ms, 4 * 3600000);
	assert_true(duration_parse("1d12h", &ms));
	assert_int_equal(ms, 36 * 3600000LL);
	assert_true(duration_parse("250ms", &ms));
	assert_int_equal(ms, 250);
	assert_true(duration_parse("45", &ms)); /* bare number: seconds */
	assert_int_equal(ms, 45000);
	assert_false(duration_parse("", &ms));
	assert_false(duration_parse("m", &ms));
	assert_false(duration_parse("5x", &ms));
	assert_false(duration_parse("7m30", &ms));
	assert_false(duration_parse("-5s", &ms));
	assert_false(duration_parse("99999999999999999999s", &ms));
	char buf[32];
	duration_format(450000, buf, sizeof buf);
	assert_string_equal(buf, "7m30s");
	duration_format(4 * 3600000, buf, sizeof buf);
	assert_string_equal(buf, "4h");
}

static void test_defaults_table_prints_every_section(void **state)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	conf_print_defaults(f);
	fclose(f);
	const char *want[] = {"server", "submission", "admin",       "dns",   "delivery",
	                      "tls",    "tlsrpt",     "first_retry", "7m30s", "trust_ad"};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		assert_non_null(strstr(out, want[i]));
	free(out);
}

/* docs/configuration.md is generated from the table; it must not drift. */
static void test_reference_doc_matches_the_table(void **state)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	conf_print_defaults(f);
	fclose(f);
	FILE *doc = fopen(OUTPOST_SOURCE_DIR "/docs/configuration.md", "r");
	assert_non_null(doc);
	char *text = calloc(1, 1 << 20);
	size_t n = fread(text, 1, (1 << 20) - 1, doc);
	fclose(doc);
	assert_true(n > 0);
	if (strstr(text, out) == NULL)
		fail_msg("docs/configuration.md is stale: regenerate it with "
		         "`outpost config defaults`");
	free(text);
	free(out);
}

struct change_log {
	int n, applied;
	char keys[64][64];
};

static void note_change(const char *section, const char *name, const char *was, const char *now,
                        bool applied, void *arg)
{
	struct change_log *l = arg;
	if (l->n < 64)
		snprintf(l->keys[l->n], sizeof l->keys[0], "%s%s.%s", applied ? "+" : "-", section,
		         name);
	l->n++;
	l->applied += applied;
}

static bool logged(const struct change_log *l, const char *key)
{
	for (int i = 0; i < l->n && i < 64; i++)
		if (strcmp(l->keys[i], key) == 0)
			return true;
	return false;
}

/* A reload copies the scalars the table marks and only reports the rest:
 * the live strings and lists, which modules point into, stay as they are. */
static void test_reload_applies_marked_keys_and_reports_the_rest(void **state)
{
	struct conf live, fresh;
	struct errors e = {0};
	assert_int_equal(load_text(&live,
	                           "[server]\nhostname = a.example\ndata_dir = /tmp/a\n"
	                           "[delivery]\nmax_connections = 10\n",
	                           &e),
	                 0);
	assert_int_equal(load_text(&fresh,
	                           "[server]\nhostname = b.example\ndata_dir = /tmp/a\n"
	                           "log_level = debug\n[submission]\nlisten = 127.0.0.1:2600\n"
	                           "[delivery]\nmax_connections = 3\npaused = yes\n"
	                           "first_retry = 1m\n",
	                           &e),
	                 0);
	const char *host_before = live.hostname;
	struct change_log l = {0};
	int restart = conf_reload(&live, &fresh, note_change, &l);
	assert_int_equal(restart, 2); /* hostname, listen */
	assert_int_equal(l.applied, 4);
	assert_true(logged(&l, "+server.log_level"));
	assert_true(logged(&l, "+delivery.max_connections"));
	assert_true(logged(&l, "+delivery.paused"));
	assert_true(logged(&l, "+delivery.first_retry"));
	assert_true(logged(&l, "-server.hostname"));
	assert_true(logged(&l, "-submission.listen"));
	assert_int_equal(live.log_level, 0);
	assert_int_equal(live.delivery_max_connections, 3);
	assert_true(live.paused);
	assert_int_equal(live.first_retry_ms, 60000);
	assert_ptr_equal(live.hostname, host_before);
	assert_string_equal(live.hostname, "a.example");
	assert_string_equal(live.submission_listen.items[0], "127.0.0.1:2525");
	l = (struct change_log){0};
	assert_int_equal(conf_reload(&live, &live, note_change, &l), 0);
	assert_int_equal(l.n, 0);
	conf_free(&live);
	conf_free(&fresh);
}

/* Only scalars may be marked: a string or list changed in place would pull
 * memory from under the modules that hold it. */
static void test_only_scalars_reload(void **state)
{
	size_t marked = 0;
	for (size_t i = 0; i < conf_key_count(); i++) {
		struct conf_key_info k;
		conf_key_get(i, &k);
		if (!k.reload)
			continue;
		marked++;
		assert_true(strcmp(k.type, "string") != 0 && strcmp(k.type, "list") != 0);
	}
	assert_true(marked > 10);
}

static char *read_doc(const char *path)
{
	FILE *doc = fopen(path, "r");
	assert_non_null(doc);
	char *text = calloc(1, 1 << 20);
	size_t n = fread(text, 1, (1 << 20) - 1, doc);
	fclose(doc);
	assert_true(n > 0);
	return text;
}

/* docs/install.md lists the keys a reload applies; the table decides. */
static void test_install_doc_lists_the_reloadable_keys(void **state)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	confdoc_print_reloadable(f);
	fclose(f);
	char *text = read_doc(OUTPOST_SOURCE_DIR "/docs/install.md");
	if (strstr(text, out) == NULL)
		fail_msg("docs/install.md is stale: its reload list is "
		         "`outpost config defaults --reloadable`");
	free(text);
	free(out);
}

/* outpost.conf(5): every key, plain ASCII, no line a stray request. */
static void test_man_page_has_every_key(void **state)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	confdoc_print_man(f);
	fclose(f);
	for (size_t i = 0; i < len; i++)
		assert_true((unsigned char)out[i] < 0x80);
	for (size_t i = 0; i < conf_key_count(); i++) {
		struct conf_key_info k;
		conf_key_get(i, &k);
		char want[128];
		snprintf(want, sizeof want, "\n.SS [%s]\n", k.section);
		assert_non_null(strstr(out, want));
		snprintf(want, sizeof want, ".TP\n\\fB%s\\fR = ", k.name);
		if (strstr(out, want) == NULL)
			fail_msg("outpost.conf(5) lacks %s.%s", k.section, k.name);
	}
	assert_non_null(strstr(out, ".TH OUTPOST.CONF 5"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_match_design),
	    cmocka_unit_test(test_values_of_every_type_are_applied),
	    cmocka_unit_test(test_errors_name_their_line),
	    cmocka_unit_test(test_syntax_error_names_line),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_defaults_table_prints_every_section),
	    cmocka_unit_test(test_reference_doc_matches_the_table),
	    cmocka_unit_test(test_reload_applies_marked_keys_and_reports_the_rest),
	    cmocka_unit_test(test_only_scalars_reload),
	    cmocka_unit_test(test_install_doc_lists_the_reloadable_keys),
	    cmocka_unit_test(test_man_page_has_every_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
