/* writer_test.c - src/spool/writer.c: a batch of delivery bookkeeping only
 * commits without its own fsync, any other batch with one. Each job reads
 * PRAGMA synchronous inside its batch's transaction; the batches are formed
 * by holding the writer in a first job until the next ones are queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "spool/internal.h"
#include "spool/writer.h"
#include "run_loop.h"

#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNC_NORMAL 1 /* PRAGMA synchronous values */
#define SYNC_FULL   2

struct probe {
	int synchronous; /* as the job saw it, -1 before it ran */
};

static struct event_base *base;
static sem_t held, release;
static int finished;

static int read_synchronous(struct spool *s, void *arg, char *why, size_t whylen)
{
	struct probe *p = arg;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(spool_sqlite(s), "PRAGMA synchronous", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		p->synchronous = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* Holds the writer thread until the test has queued what comes next. */
static int hold_the_writer(struct spool *s, void *arg, char *why, size_t whylen)
{
	sem_post(&held);
	sem_wait(&release);
	return read_synchronous(s, arg, why, whylen);
}

static void on_done(void *arg, int status, const char *why)
{
	struct probe *p = arg;
	assert_int_equal(status, 0);
	assert_int_not_equal(p->synchronous, -1);
	finished++;
	event_base_loopbreak(base);
}

static void wait_finished(int n)
{
	for (int i = 0; i < 100 && finished < n; i++)
		run_loop_for_ms(base, 100);
	assert_true(finished >= n);
}

static void test_bookkeeping_alone_is_not_synced(void **state)
{
	char dir[] = "/tmp/outpost-writer-XXXXXX", why[256];
	int64_t recovered;
	assert_non_null(mkdtemp(dir));
	base = event_base_new();
	sem_init(&held, 0, 0);
	sem_init(&release, 0, 0);
	finished = 0;
	struct spool_writer *w = spool_writer_start(base, dir, &recovered, why, sizeof why);
	assert_non_null(w);
	struct probe first = {-1}, mixed_book = {-1}, mixed_ack = {-1}, book1 = {-1}, book2 = {-1};
	struct probe again = {-1};

	/* a batch with an acknowledged job: synced, bookkeeping in it too */
	spool_writer_submit(w, hold_the_writer, on_done, &first);
	sem_wait(&held);
	spool_writer_submit_bookkeeping(w, read_synchronous, on_done, &mixed_book);
	spool_writer_submit(w, read_synchronous, on_done, &mixed_ack);
	sem_post(&release);
	wait_finished(3);
	assert_int_equal(first.synchronous, SYNC_FULL);
	assert_int_equal(mixed_book.synchronous, SYNC_FULL);
	assert_int_equal(mixed_ack.synchronous, SYNC_FULL);

	/* bookkeeping only: not synced */
	spool_writer_submit_bookkeeping(w, hold_the_writer, on_done, &book1);
	sem_wait(&held);
	spool_writer_submit_bookkeeping(w, read_synchronous, on_done, &book2);
	sem_post(&release);
	wait_finished(5);
	assert_int_equal(book1.synchronous, SYNC_NORMAL);
	assert_int_equal(book2.synchronous, SYNC_NORMAL);

	/* and the next acknowledged job is synced again */
	spool_writer_submit(w, read_synchronous, on_done, &again);
	wait_finished(6);
	assert_int_equal(finished, 6);
	assert_int_equal(again.synchronous, SYNC_FULL);

	spool_writer_stop(w);
	event_base_free(base);
	sem_destroy(&held);
	sem_destroy(&release);
	char cmd[64];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bookkeeping_alone_is_not_synced),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
