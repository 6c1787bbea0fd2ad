/* Unit tests: the WAL-gathering VFS keeps every committed write, for every connection. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "walvfs.h"

static char dir[64], path[128];

static sqlite3 *
open_db(void)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    walvfs_register()), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
	    NULL, NULL, NULL), SQLITE_OK);
	return db;
}

static int64_t
count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

/* Small commits, and one far bigger than the gathering buffer and the default's write limit. */
static void
test_commits_seen_by_another_connection(void **state)
{
	(void)state;
	sqlite3 *w = open_db(), *r = open_db();
	assert_int_equal(sqlite3_exec(w, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)",
	    NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(sqlite3_exec(w, "INSERT INTO t (v) VALUES (randomblob(5000))",
		    NULL, NULL, NULL), SQLITE_OK);
		/* Visible to the other connection as soon as the commit returns. */
		assert_int_equal(count(r, "SELECT count(*) FROM t"), i + 1);
	}
	assert_int_equal(sqlite3_exec(w, "BEGIN; INSERT INTO t (v) SELECT randomblob(4000) "
	    "FROM t, (SELECT 1 UNION SELECT 2 UNION SELECT 3) LIMIT 150; COMMIT;",
	    NULL, NULL, NULL), SQLITE_OK);		/* ~600 KiB of WAL in one commit */
	assert_int_equal(count(r, "SELECT count(*) FROM t"), 200);
	assert_int_equal(count(r, "SELECT sum(length(v)) FROM t"), 50 * 5000 + 150 * 4000);
	/* A checkpoint from the reader's connection copies it all into the database. */
	assert_int_equal(sqlite3_wal_checkpoint_v2(r, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(r);
	sqlite3_close(w);
	/* And a fresh open finds it whole. */
	sqlite3 *again = open_db();
	assert_int_equal(count(again, "SELECT count(*) FROM t"), 200);
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(again, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
	sqlite3_close(again);
}

/* A commit left in the WAL (no checkpoint) is found by the next open, which recovers it. */
static void
test_wal_recovered_after_close_without_checkpoint(void **state)
{
	(void)state;
	sqlite3 *w = open_db();
	assert_int_equal(sqlite3_exec(w, "PRAGMA wal_autocheckpoint = 0; "
	    "CREATE TABLE u (v TEXT); INSERT INTO u VALUES ('kept');", NULL, NULL, NULL), SQLITE_OK);
	/* Keep the WAL file on close, as a killed process would leave it. */
	int keep = 1;
	assert_int_equal(sqlite3_file_control(w, "main", SQLITE_FCNTL_PERSIST_WAL, &keep),
	    SQLITE_OK);
	sqlite3 *r = open_db();
	assert_int_equal(count(r, "SELECT count(*) FROM u WHERE v = 'kept'"), 1);
	sqlite3_close(r);
	sqlite3_close(w);
	sqlite3 *again = open_db();
	assert_int_equal(count(again, "SELECT count(*) FROM u WHERE v = 'kept'"), 1);
	sqlite3_close(again);
}

/* PRAGMA integrity_check's first answer. */
static void
assert_intact(sqlite3 *db)
{
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
}

/*
 * A transaction that spilled into the WAL and was rolled back leaves its
 * tail unwritten in the gathering buffer. Another process then commits
 * frames at those offsets; the next write of ours must not put the stale
 * tail over them.
 */
static void
test_rollback_leaves_nothing_for_another_writer(void **state)
{
	(void)state;
	sqlite3 *w = open_db();
	assert_int_equal(sqlite3_exec(w, "PRAGMA cache_size = 8; PRAGMA wal_autocheckpoint = 0; "
	    "CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT, v BLOB); "
	    "INSERT INTO t (who, v) VALUES ('us', randomblob(100)); "
	    "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL), SQLITE_OK);
	/*
	 * Far more than 8 pages of cache: SQLite spills frames to the WAL before
	 * the end. The rollback then reloads pages from the database file (the
	 * WAL held nothing committed), so nothing reads the WAL to flush the tail.
	 */
	assert_int_equal(sqlite3_exec(w, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
	    "SELECT i + 1 FROM n WHERE i < 300) INSERT INTO t (who, v) SELECT 'gone', "
	    "randomblob(3000) FROM n; ROLLBACK;", NULL, NULL, NULL), SQLITE_OK);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The other writer, with SQLite's own VFS: its frames go where ours were. */
		sqlite3 *o = NULL;
		int ok = sqlite3_open_v2(path, &o, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
		    sqlite3_exec(o, "PRAGMA synchronous = FULL; WITH RECURSIVE n(i) AS (SELECT 1 "
		    "UNION ALL SELECT i + 1 FROM n WHERE i < 300) INSERT INTO t (who, v) SELECT "
		    "'other', randomblob(3000) FROM n;", NULL, NULL, NULL) == SQLITE_OK;
		sqlite3_close(o);
		_exit(ok ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(sqlite3_exec(w, "INSERT INTO t (who, v) VALUES ('us', randomblob(100))",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(w);
	sqlite3 *again = open_db();
	assert_int_equal(count(again, "SELECT count(*) FROM t WHERE who = 'other'"), 300);
	assert_int_equal(count(again, "SELECT count(*) FROM t WHERE who = 'us'"), 2);
	assert_int_equal(count(again, "SELECT count(*) FROM t WHERE who = 'gone'"), 0);
	assert_intact(again);
	sqlite3_close(again);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/notifyd-walvfs.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof path, "%s/t.db", dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	char p[160];
	const char *suffix[] = {"", "-wal", "-shm"};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", path, suffix[i]);
		unlink(p);
	}
	rmdir(dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commits_seen_by_another_connection, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_wal_recovered_after_close_without_checkpoint,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback_leaves_nothing_for_another_writer,
		    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
