/* body_storage.c - the two ways to keep message bodies durable, measured the
 * way the spool writer uses them: batches of B messages of 4 KiB, each batch
 * made durable before any of its messages is acknowledged.
 *   sqlite: bodies as BLOBs in the batch's transaction (one WAL fsync)
 *   files:  one file per body (write + fsync each), fsync of the directory,
 *           then the envelope rows in one transaction (a second fsync)
 * Usage: body_storage DIR SECONDS BATCH   (prints messages/s for both) */
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static sqlite3 *open_db(const char *path)
{
	sqlite3 *db;
	unlink(path);
	sqlite3_open(path, &db);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			 "CREATE TABLE m(id INTEGER PRIMARY KEY, sender TEXT, body BLOB);",
		     NULL, NULL, NULL);
	return db;
}

static long run_sqlite(const char *dir, double secs, int batch, const char *body)
{
	char path[512];
	snprintf(path, sizeof path, "%s/sqlite.db", dir);
	sqlite3 *db = open_db(path);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "INSERT INTO m(sender, body) VALUES ('a@b', ?1)", -1, &st, NULL);
	long n = 0;
	double end = now() + secs;
	while (now() < end) {
		sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		for (int i = 0; i < batch; i++, n++) {
			sqlite3_bind_blob(st, 1, body, 4096, SQLITE_STATIC);
			sqlite3_step(st);
			sqlite3_reset(st);
		}
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static long run_files(const char *dir, double secs, int batch, const char *body)
{
	char path[512];
	snprintf(path, sizeof path, "%s/files.db", dir);
	sqlite3 *db = open_db(path);
	char bdir[512];
	snprintf(bdir, sizeof bdir, "%s/bodies", dir);
	mkdir(bdir, 0700);
	int dfd = open(bdir, O_RDONLY | O_DIRECTORY);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "INSERT INTO m(sender) VALUES ('a@b')", -1, &st, NULL);
	long n = 0;
	double end = now() + secs;
	while (now() < end) {
		for (int i = 0; i < batch; i++) {
			char f[600];
			snprintf(f, sizeof f, "%s/%ld", bdir, n + i);
			int fd = open(f, O_CREAT | O_WRONLY | O_TRUNC, 0600);
			if (write(fd, body, 4096) != 4096)
				abort();
			fsync(fd);
			close(fd);
		}
		fsync(dfd);
		sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		for (int i = 0; i < batch; i++, n++) {
			sqlite3_step(st);
			sqlite3_reset(st);
		}
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	close(dfd);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: body_storage DIR SECONDS BATCH\n");
		return 2;
	}
	double secs = atof(argv[2]);
	int batch = atoi(argv[3]);
	char body[4096];
	memset(body, 'x', sizeof body);
	long a = run_sqlite(argv[1], secs, batch, body);
	long b = run_files(argv[1], secs, batch, body);
	printf("batch=%d sqlite=%.0f msg/s files=%.0f msg/s ratio=%.1f\n", batch, a / secs,
	       b / secs, (double)a / (double)(b ? b : 1));
	return 0;
}
