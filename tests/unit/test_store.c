/* Unit tests: the store, against a real SQLite file in a temporary directory. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>

#include "events.h"
#include "lazylib.h"
#include "log.h"
#include "store.h"

/* core/store/store_impl.h, which cmocka's fail() keeps out. */
int	settle_step(struct store *st);

struct fixture {
	char		 dir[64];
	char		 path[512];
	struct store	*st;
};

/*
 * NOTIFYD_TEST_PG_URL (tests/integration/test_postgres.py sets it): run the
 * same contract against PostgreSQL, on an emptied schema for each test;
 * what only SQLite has (its files, plans, the watermark) is skipped.
 */
static const char *pg_url;
static const struct store_options opts = {.sync_full = false, .busy_timeout = 1000};

static void
pg_reset(const char *url)
{
	char err[256];
	assert_int_equal(lazylib_pq(err, sizeof err), 0);
	PGconn *c = PQconnectdb(url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexec(c, "SET client_min_messages = warning; "
	    "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(c);
}

#define SQLITE_ONLY() do { if (pg_url != NULL) skip(); } while (0)

/* Open f's store, whichever backend the test runs on. */
static int
open_store(struct fixture *f, char *err, size_t n)
{
	return pg_url ? store_open_url(&f->st, f->path, &opts, err, n) :
	    store_open(&f->st, f->path, &opts, err, n);
}


static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char err[256];
	snprintf(f->dir, sizeof f->dir, "/tmp/notifyd-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
	if (pg_url != NULL) {
		snprintf(f->path, sizeof f->path, "%s", pg_url);
		pg_reset(pg_url);
	}
	if (open_store(f, err, sizeof err) != 1)
		fail_msg("%s", err);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[200];
	store_close(f->st);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Create one notification for user; returns its id. */
/* Delete, not cancel; the result of store_notification_delete. */
static int
del(struct store *st, const char *user, int64_t id, int64_t now)
{
	struct deleted d;
	int rc = store_notification_delete(st, user, id, false, now, &d);
	free(d.user);
	return rc;
}

static int64_t
create(struct store *st, const char *user, const char *type, const char *key, bool *created)
{
	struct notification_new n = {.user = user, .type = type, .title = "t", .key = key};
	json_t *out;
	bool c;
	assert_int_equal(store_notifications_create(st, &n, 1, 1000, &out, NULL, &c), 1);
	if (created)
		*created = c;
	int64_t id = json_integer_value(json_object_get(out, "id"));
	json_decref(out);
	return id;
}

static void
test_create_and_get(void **state)
{
	struct fixture *f = *state;
	struct notification_new n = {.user = "alice", .type = "message", .title = "Hi",
	    .body = "there", .data = "{\"k\":[1,2]}", .priority = "high",
	    .category = "c", .url = "/x"};
	json_t *out, *got;
	bool created;
	assert_int_equal(store_user_exists(f->st, "alice"), 0);
	assert_int_equal(store_notifications_create(f->st, &n, 1, 1795428672345LL, &out, NULL,
	    &created), 1);
	assert_true(created);
	assert_int_equal(store_user_exists(f->st, "alice"), 1);
	int64_t id = json_integer_value(json_object_get(out, "id"));
	assert_int_equal(store_notification_get(f->st, id, &got), 1);
	assert_true(json_equal(out, got));
	assert_string_equal(json_string_value(json_object_get(got, "created_at")),
	    "2026-11-23T10:11:12.345Z");
	assert_int_equal(json_integer_value(json_array_get(json_object_get(
	    json_object_get(got, "data"), "k"), 1)), 2);
	assert_true(json_is_null(json_object_get(got, "read_at")));
	json_decref(out);
	json_decref(got);
	assert_int_equal(store_notification_get(f->st, id + 1, &got), 0);
}

/* events_capture()'s callback: the text of each notification event, one per line. */
static void
capture_text(const struct event *ev, void *arg)
{
	char *all = arg;
	if (ev->type == EVENT_NOTIFICATION && ev->text != NULL && ev->data == NULL) {
		strncat(all, ev->text, ev->text_len);
		strcat(all, "\n");
	}
}

/*
 * A create asked for text (HTTP) writes each notification as the text of
 * the object it stored: byte for byte the dump of the row read back, and
 * (SQLite) that text is what the hub is told.
 */
static void
test_created_text_is_the_stored_object_dumped(void **state)
{
	struct fixture *f = *state;
	int64_t now = 1795428672345LL;
	/* data as op_send stores it: jansson's compact dump. */
	struct notification_new n[] = {
		{.user = "alice", .type = "message", .title = "Hi", .body = "there",
		    .data = "{\"k\":[1,2.5,true,null],\"s\":\"\xc3\xbc\\\"\\\\\",\"o\":{}}",
		    .priority = "high", .category = "c", .url = "/x?a=\"b\""},
		{.user = "bob \"quoted\"", .type = "m",
		    .title = "tab\t nl\n cr\r ctl\x01 del\x7f \xc3\xbc \xe2\x9c\x93 \xf0\x9d\x84\x9e"},
		{.user = "carol", .type = "m", .deliver_at = now - 1000},
		{.user = "dave", .type = "m", .title = "hidden", .routed = true,
		    .in_app = {DS_SKIPPED, 0, "off"}, .email = {DS_SKIPPED, 0, "no_address"}},
	};
	size_t k = sizeof n / sizeof n[0];
	json_t *out[4];
	char *text[4], told[4096] = "", want[4096] = "";
	bool created[4];
	events_capture(capture_text, told);
	assert_int_equal(store_notifications_create(f->st, n, k, now, out, text, created), 1);
	events_capture(NULL, NULL);
	for (size_t i = 0; i < k; i++) {
		assert_true(created[i]);
		assert_null(out[i]);
		assert_non_null(text[i]);
		json_t *o = json_loads(text[i], 0, NULL), *got;
		assert_non_null(o);
		assert_int_equal(store_notification_get(f->st,
		    json_integer_value(json_object_get(o, "id")), &got), 1);
		char *dump = json_dumps(got, JSON_COMPACT);
		assert_string_equal(text[i], dump);
		if (i < 3) {	/* the hidden one is not told */
			strcat(want, dump);
			strcat(want, "\n");
		}
		free(dump);
		json_decref(got);
		json_decref(o);
		free(text[i]);
	}
	/* PostgreSQL tells its events through NOTIFY, and hears them back as objects. */
	if (pg_url == NULL)
		assert_string_equal(told, want);
}

static void
test_idempotent_key(void **state)
{
	struct fixture *f = *state;
	bool c1, c2, c3;
	int64_t a = create(f->st, "alice", "message", "k1", &c1);
	int64_t b = create(f->st, "alice", "message", "k1", &c2);
	int64_t c = create(f->st, "bob", "message", "k1", &c3);
	assert_true(c1);
	assert_false(c2);
	assert_true(c3);
	assert_int_equal(a, b);
	assert_int_not_equal(a, c);
	/* Without a key, every send is new. */
	assert_int_not_equal(create(f->st, "alice", "m", NULL, NULL),
	    create(f->st, "alice", "m", NULL, NULL));
}

static void
test_batch_is_atomic(void **state)
{
	struct fixture *f = *state;
	/* The second row breaks the priority CHECK: nothing of the batch may stay. */
	struct notification_new n[2] = {
		{.user = "carol", .type = "message"},
		{.user = "carol", .type = "message", .priority = "bogus"},
	};
	json_t *out[2];
	bool created[2];
	assert_int_equal(store_notifications_create(f->st, n, 2, 1, out, NULL, created), -1);
	assert_null(out[0]);
	assert_int_equal(store_user_exists(f->st, "carol"), 0);
	/*
	 * One content to many is written all at once on PostgreSQL; one user
	 * twice (which no send makes) still counts twice.
	 */
	struct notification_new m[3] = {
		{.user = "dave", .type = "message"},
		{.user = "erin", .type = "message"},
		{.user = "dave", .type = "message"},
	};
	json_t *mo[3];
	bool mc[3];
	int64_t count = 0;
	assert_int_equal(store_notifications_create(f->st, m, 3, 1, mo, NULL, mc), 1);
	for (int i = 0; i < 3; i++) {
		assert_true(mc[i]);
		assert_string_equal(json_string_value(json_object_get(mo[i], "user")), m[i].user);
		json_decref(mo[i]);
	}
	assert_int_equal(store_unread_count(f->st, "dave", 1, &count), 1);
	assert_int_equal(count, 2);
	assert_int_equal(store_unread_count(f->st, "erin", 1, &count), 1);
	assert_int_equal(count, 1);
}

static void
test_list_pages(void **state)
{
	struct fixture *f = *state;
	struct notification_query q = {.user = "alice", .limit = 7};
	int64_t ids[20], seen = 0, before = 0;
	json_t *page;
	for (int i = 0; i < 20; i++)
		ids[i] = create(f->st, "alice", i % 2 ? "odd" : "even", NULL, NULL);
	create(f->st, "bob", "even", NULL, NULL);
	for (int p = 0; p < 3; p++) {
		q.before = before;
		assert_int_equal(store_notification_list(f->st, &q, 2000, &page), 1);
		json_t *list = json_object_get(page, "notifications"), *n;
		size_t i;
		json_array_foreach(list, i, n) {
			assert_int_equal(json_integer_value(json_object_get(n, "id")),
			    ids[19 - seen]);
			seen++;
		}
		assert_int_equal(json_integer_value(json_object_get(page, "unread_count")), 20);
		json_t *next = json_object_get(page, "next_before");
		if (p < 2)
			before = json_integer_value(next);
		else
			assert_true(json_is_null(next));
		json_decref(page);
	}
	assert_int_equal(seen, 20);
	q.before = 0;
	q.limit = 50;
	q.type = "odd";
	assert_int_equal(store_notification_list(f->st, &q, 2000, &page), 1);
	assert_int_equal(json_array_size(json_object_get(page, "notifications")), 10);
	json_decref(page);
	q.user = "nobody";
	assert_int_equal(store_notification_list(f->st, &q, 2000, &page), 0);
}

static void
test_mark_and_count(void **state)
{
	struct fixture *f = *state;
	int64_t a = create(f->st, "alice", "m", NULL, NULL);
	int64_t b = create(f->st, "alice", "m", NULL, NULL);
	int64_t c = create(f->st, "bob", "m", NULL, NULL);
	int64_t count, missing = 0, ids[2] = {a, c};
	json_t *changed;

	/* One id of another user: nothing changes. */
	assert_int_equal(store_notifications_mark(f->st, "alice", ids, 2, MARK_READ, 5,
	    &changed, &missing), 0);
	assert_int_equal(missing, c);
	assert_int_equal(store_unread_count(f->st, "alice", 5, &count), 1);
	assert_int_equal(count, 2);

	assert_int_equal(store_notifications_mark(f->st, "alice", &a, 1, MARK_READ, 5,
	    &changed, &missing), 1);
	assert_int_equal(json_array_size(json_object_get(changed, "ids")), 1);
	assert_int_equal(json_integer_value(json_object_get(changed, "unread_count")), 1);
	json_decref(changed);
	/* Marking again changes nothing and says so. */
	assert_int_equal(store_notifications_mark(f->st, "alice", &a, 1, MARK_READ, 6,
	    &changed, &missing), 1);
	assert_int_equal(json_array_size(json_object_get(changed, "ids")), 0);
	json_decref(changed);
	assert_int_equal(store_unread_count(f->st, "alice", 5, &count), 1);
	assert_int_equal(count, 1);

	json_t *all;
	assert_int_equal(store_notifications_read_all(f->st, "alice", 7, &all), 1);
	assert_int_equal(json_integer_value(json_object_get(all, "up_to")), b);
	assert_int_equal(json_integer_value(json_object_get(all, "marked")), 1);
	assert_int_equal(json_integer_value(json_object_get(all, "unread_count")), 0);
	json_decref(all);
	assert_int_equal(store_unread_count(f->st, "alice", 7, &count), 1);
	assert_int_equal(count, 0);
	assert_int_equal(store_unread_count(f->st, "bob", 7, &count), 1);
	assert_int_equal(count, 1);

	assert_int_equal(store_notifications_mark(f->st, "alice", &b, 1, MARK_UNREAD, 8,
	    &changed, &missing), 1);
	json_decref(changed);
	assert_int_equal(store_unread_count(f->st, "alice", 8, &count), 1);
	assert_int_equal(count, 1);
	assert_int_equal(store_notifications_read_all(f->st, "nobody", 7, &all), 0);
}

/* The whole inbox of user as one JSON text (pages of 1000, archived ones after). */
static char *
whole_inbox(struct store *st, const char *user)
{
	json_t *all = json_array();
	for (int archived = 0; archived <= 1; archived++) {
		struct notification_query q = {.user = user, .limit = 1000, .archived = archived};
		json_t *page;
		assert_int_equal(store_notification_list(st, &q, 1000, &page), 1);
		json_array_extend(all, json_object_get(page, "notifications"));
		json_decref(page);
	}
	char *text = json_dumps(all, JSON_SORT_KEYS);
	json_decref(all);
	return text;
}

static int64_t
unread_of(struct store *st, const char *user)
{
	int64_t count = -1;
	assert_int_equal(store_unread_count(st, user, 1000, &count), 1);
	return count;
}

static void
assert_counter_agrees(struct store *st)
{
	json_t *check;
	assert_int_equal(store_check(st, false, false, &check), 1);
	assert_true(json_is_true(json_object_get(check, "ok")));
	assert_int_equal(json_array_size(json_object_get(check, "unread_mismatches")), 0);
	json_decref(check);
}

/*
 * Mark all read of many unread sets a watermark (sql/013_read_watermark.sql)
 * and settle_step() writes the rows later. Before, between and after the
 * steps every read and every change sees what it would if all the rows had
 * been written at once.
 */
static void
test_read_all_watermark(void **state)
{
	SQLITE_ONLY();
	struct fixture *f = *state;
	char err[256];
	struct store_options by_hand = opts;
	by_hand.settle_by_hand = true;
	store_close(f->st);
	assert_int_equal(store_open(&f->st, f->path, &by_hand, err, sizeof err), 1);
	enum { N = 4500 };		/* past WATERMARK_MIN, and three settling steps */
	static int64_t ids[N];
	for (int i = 0; i < N; i++)
		ids[i] = create(f->st, "big", "m", NULL, NULL);
	int64_t two[2] = {ids[1], ids[2]}, missing = 0;
	json_t *r;
	assert_int_equal(store_notifications_mark(f->st, "big", two, 2, MARK_ARCHIVED, 1000,
	    &r, &missing), 1);
	json_decref(r);
	/* A small inbox is marked row by row, and stays so. */
	int64_t small = create(f->st, "small", "m", NULL, NULL);
	assert_int_equal(store_notifications_read_all(f->st, "small", 1500, &r), 1);
	json_decref(r);

	assert_int_equal(store_notifications_read_all(f->st, "big", 2000, &r), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "marked")), N - 2);
	assert_int_equal(json_integer_value(json_object_get(r, "up_to")), ids[N - 1]);
	json_decref(r);
	assert_int_equal(unread_of(f->st, "big"), 0);
	assert_counter_agrees(f->st);
	json_t *n;
	assert_int_equal(store_notification_get(f->st, ids[0], &n), 1);
	assert_string_equal(json_string_value(json_object_get(n, "read_at")),
	    "1970-01-01T00:00:02.000Z");
	json_decref(n);
	assert_int_equal(store_notification_get(f->st, small, &n), 1);
	assert_string_equal(json_string_value(json_object_get(n, "read_at")),
	    "1970-01-01T00:00:01.500Z");
	json_decref(n);
	struct notification_query unread = {.user = "big", .limit = 10, .unread_only = true};
	assert_int_equal(store_notification_list(f->st, &unread, 1000, &r), 1);
	assert_int_equal(json_array_size(json_object_get(r, "notifications")), 0);
	json_decref(r);

	/* Under the watermark: read already, archived ones count nothing, unread again counts. */
	assert_int_equal(store_notifications_mark(f->st, "big", &ids[5], 1, MARK_READ, 3000,
	    &r, &missing), 1);
	assert_int_equal(json_array_size(json_object_get(r, "ids")), 0);
	json_decref(r);
	assert_int_equal(store_notifications_mark(f->st, "big", &ids[6], 1, MARK_ARCHIVED, 3000,
	    &r, &missing), 1);
	json_decref(r);
	assert_int_equal(store_notifications_mark(f->st, "big", &ids[1], 1, MARK_UNARCHIVED, 3000,
	    &r, &missing), 1);
	json_decref(r);
	assert_int_equal(del(f->st, "big", ids[7], 3000), 1);
	assert_int_equal(unread_of(f->st, "big"), 0);
	int64_t again[2] = {ids[N - 10], ids[N - 20]};
	assert_int_equal(store_notifications_mark(f->st, "big", again, 2, MARK_UNREAD, 3000,
	    &r, &missing), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "unread_count")), 2);
	json_decref(r);
	assert_counter_agrees(f->st);
	assert_int_equal(store_notification_list(f->st, &unread, 1000, &r), 1);
	json_t *got = json_object_get(r, "notifications");
	assert_int_equal(json_array_size(got), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(got, 0), "id")),
	    again[0]);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(got, 1), "id")),
	    again[1]);
	json_decref(r);
	assert_int_equal(store_notification_get(f->st, ids[9], &n), 1);
	assert_string_equal(json_string_value(json_object_get(n, "read_at")),
	    "1970-01-01T00:00:02.000Z");
	json_decref(n);

	/* Settled step by step: nothing anyone can see changes. */
	char *before = whole_inbox(f->st, "big");
	int steps = 0, rc;
	while ((rc = settle_step(f->st)) == 1) {
		char *now = whole_inbox(f->st, "big");
		assert_string_equal(now, before);
		free(now);
		assert_counter_agrees(f->st);
		if (steps == 0) {
			/* An old one unread again, between steps: settles the rows above it. */
			assert_int_equal(store_notifications_mark(f->st, "big", &ids[8], 1,
			    MARK_UNREAD, 3000, &r, &missing), 1);
			assert_int_equal(json_integer_value(json_object_get(r, "unread_count")), 3);
			json_decref(r);
			free(before);
			before = whole_inbox(f->st, "big");
		}
		assert_true(++steps < 10);
	}
	assert_int_equal(rc, 0);
	assert_true(steps >= 2);
	char *after = whole_inbox(f->st, "big");
	assert_string_equal(after, before);
	free(after);
	free(before);
	/* Every row carries its read_at now, and the watermark is gone. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT read_before FROM users WHERE "
	    "id = 'big'), (SELECT count(*) FROM notifications WHERE user_id = 'big' AND "
	    "read_at IS NULL)", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(s, 0), 0);
	assert_int_equal(sqlite3_column_int64(s, 1), 3);
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static void
test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	char err[256];
	json_t *got;
	int64_t id = create(f->st, "alice", "m", NULL, NULL);
	store_close(f->st);
	assert_int_equal(open_store(f, err, sizeof err), 1);
	assert_int_equal(store_notification_get(f->st, id, &got), 1);
	json_decref(got);
	/* Ids are never reused: a new one is larger. */
	assert_true(create(f->st, "alice", "m", NULL, NULL) > id);
}

static void
test_newer_schema_refused(void **state)
{
	SQLITE_ONLY();
	struct fixture *f = *state;
	char err[512], cmd[1400];
	sqlite3 *db;
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=DELETE; PRAGMA user_version = 999",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	snprintf(cmd, sizeof cmd, "md5sum < '%s' > '%s/before'", f->path, f->dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(store_open(&f->st, f->path, &opts, err, sizeof err), -1);
	assert_non_null(strstr(err, "schema version 999 is newer"));
	snprintf(cmd, sizeof cmd, "md5sum < '%s' | cmp -s - '%s/before' && test ! -e '%s-wal'",
	    f->path, f->dir, f->path);
	assert_int_equal(system(cmd), 0);
}

static void
test_not_a_database(void **state)
{
	SQLITE_ONLY();
	struct fixture *f = *state;
	char err[512], path[200];
	struct store *st;
	snprintf(path, sizeof path, "%s/junk.db", f->dir);
	FILE *fp = fopen(path, "w");
	fputs("this is not sqlite, but it is long enough to look like a header......"
	    "..............................................................", fp);
	fclose(fp);
	assert_int_equal(store_open(&st, path, &opts, err, sizeof err), -1);
	assert_non_null(strstr(err, "not a notifyd database"));
}

/* The check's mismatches of one kind: 0 when it found none. */
static size_t
check_mismatches(struct store *st, const char *kind)
{
	json_t *check;
	assert_int_equal(store_check(st, false, false, &check), 1);
	size_t n = json_array_size(json_object_get(check, kind));
	assert_non_null(json_object_get(check, kind));
	json_decref(check);
	return n;
}

/*
 * A topic's size is kept beside it (sql/016_topic_sizes.sql): after every
 * one of a random sequence of adds and removes, over three topics, each
 * answers with what a model of the memberships says, and the check finds
 * the kept sizes equal to the members.
 */
static void
test_topic_sizes_follow_every_change(void **state)
{
	struct fixture *f = *state;
	static const char *topics[] = {"a", "b", "c"};
	bool member[3][24] = {{false}};
	int64_t size[3] = {0, 0, 0};
	unsigned seed = 7;
	for (int step = 0; step < 600; step++) {
		int t = (int)(rand_r(&seed) % 3), u = (int)(rand_r(&seed) % 24);
		char user[16];
		snprintf(user, sizeof user, "u%d", u);
		int64_t count = -1;
		bool added;
		if (rand_r(&seed) % 2) {
			assert_int_equal(store_topic_add(f->st, topics[t], user, 1, &added, &count), 1);
			assert_int_equal(added, !member[t][u]);
			size[t] += !member[t][u];
			member[t][u] = true;
		} else {
			int rc = store_topic_remove(f->st, topics[t], user, &count);
			assert_int_equal(rc, member[t][u] ? 1 : 0);
			if (rc == 0)
				continue;
			member[t][u] = false;
			size[t]--;
		}
		assert_int_equal(count, size[t]);
		if (step % 50 == 0)
			assert_int_equal(check_mismatches(f->st, "topic_mismatches"), 0);
	}
	/* Emptied, a topic is gone: its kept size with it. */
	for (int u = 0; u < 24; u++) {
		char user[16];
		int64_t count;
		snprintf(user, sizeof user, "u%d", u);
		if (member[0][u])
			assert_int_equal(store_topic_remove(f->st, "a", user, &count), 1);
	}
	json_t *members;
	assert_int_equal(store_topic_members(f->st, "a", &members), 0);
	assert_int_equal(check_mismatches(f->st, "topic_mismatches"), 0);
	int64_t count = -1;
	bool added;
	assert_int_equal(store_topic_add(f->st, "a", "u1", 1, &added, &count), 1);
	assert_int_equal(count, 1);
}

struct joiner {
	struct store	*st;
	int		 id;
};

static void *
joiner_main(void *arg)
{
	struct joiner *j = arg;
	for (int i = 0; i < 100; i++) {
		char user[24];
		int64_t count;
		bool added;
		snprintf(user, sizeof user, "j%d-%d", j->id, i);
		if (store_topic_add(j->st, "all", user, 1, &added, &count) != 1 || !added ||
		    count < 1)
			return (void *)1;
	}
	return NULL;
}

/* Adds from many threads at once share commits, and every one is counted once. */
static void
test_topic_sizes_under_concurrent_adds(void **state)
{
	struct fixture *f = *state;
	pthread_t t[8];
	struct joiner j[8];
	for (int i = 0; i < 8; i++) {
		j[i] = (struct joiner){f->st, i};
		pthread_create(&t[i], NULL, joiner_main, &j[i]);
	}
	for (int i = 0; i < 8; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	int64_t count = -1;
	bool added;
	assert_int_equal(store_topic_add(f->st, "all", "j0-0", 1, &added, &count), 1);
	assert_false(added);
	assert_int_equal(count, 800);
	assert_int_equal(check_mismatches(f->st, "topic_mismatches"), 0);
}

struct writer {
	struct store	*st;
	int		 id;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	char user[16];
	snprintf(user, sizeof user, "w%d", w->id);
	for (int i = 0; i < 50; i++) {
		struct notification_new n = {.user = user, .type = "m"};
		json_t *out;
		bool c;
		if (store_notifications_create(w->st, &n, 1, 1, &out, NULL, &c) != 1)
			return (void *)1;
		json_decref(out);
	}
	return NULL;
}

static void
test_concurrent_writes_share_commits(void **state)
{
	struct fixture *f = *state;
	pthread_t t[16];
	struct writer w[16];
	int64_t commits, writes, count;
	for (int i = 0; i < 16; i++) {
		w[i] = (struct writer){f->st, i};
		pthread_create(&t[i], NULL, writer_main, &w[i]);
	}
	for (int i = 0; i < 16; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	store_stats(f->st, &commits, &writes);
	assert_int_equal(writes, 16 * 50);
	assert_true(commits <= writes);
	for (int i = 0; i < 16; i++) {
		char user[16];
		snprintf(user, sizeof user, "w%d", i);
		assert_int_equal(store_unread_count(f->st, user, 2, &count), 1);
		assert_int_equal(count, 50);
	}
}

static void
test_users_topics_keys(void **state)
{
	struct fixture *f = *state;
	struct user_update u = {.id = "ann", .email = "ann@example.com", .set_email = true,
	    .tz = "Europe/Berlin", .set_tz = true};
	json_t *out, *members;
	bool created, added;
	assert_int_equal(store_user_put(f->st, &u, 5, &out, &created), 1);
	assert_true(created);
	assert_string_equal(json_string_value(json_object_get(out, "email")), "ann@example.com");
	json_decref(out);
	/* Only what is set changes; NULL clears. */
	u = (struct user_update){.id = "ann", .name = "Ann", .set_name = true, .set_tz = true};
	assert_int_equal(store_user_put(f->st, &u, 6, &out, &created), 1);
	assert_false(created);
	assert_string_equal(json_string_value(json_object_get(out, "email")), "ann@example.com");
	assert_string_equal(json_string_value(json_object_get(out, "name")), "Ann");
	assert_true(json_is_null(json_object_get(out, "tz")));
	json_decref(out);

	int64_t count = -1;
	assert_int_equal(store_topic_members(f->st, "team", &members), 0);
	assert_int_equal(store_topic_add(f->st, "team", "bo", 1, &added, &count), 1);
	assert_true(added);
	assert_int_equal(count, 1);
	assert_int_equal(store_topic_add(f->st, "team", "ann", 1, &added, &count), 1);
	assert_int_equal(count, 2);
	assert_int_equal(store_topic_add(f->st, "team", "ann", 1, &added, &count), 1);
	assert_false(added);
	assert_int_equal(count, 2);
	assert_int_equal(store_topic_add(f->st, "other", "ann", 1, &added, &count), 1);
	assert_int_equal(count, 1);
	assert_int_equal(store_user_exists(f->st, "bo"), 1);
	assert_int_equal(store_topic_members(f->st, "team", &members), 1);
	assert_int_equal(json_array_size(members), 2);
	assert_string_equal(json_string_value(json_array_get(members, 0)), "ann");
	json_decref(members);
	assert_int_equal(store_topic_remove(f->st, "team", "ann", &count), 1);
	assert_int_equal(count, 1);
	assert_int_equal(store_topic_remove(f->st, "team", "ann", &count), 0);

	unsigned char h1[32] = {1}, h2[32] = {2};
	int64_t id1, id2, found, used;
	assert_int_equal(store_key_create(f->st, "ci", h1, 1, &id1), 1);
	assert_int_equal(store_key_create(f->st, "ci", h2, 1, &id2), 0);	/* name taken */
	assert_int_equal(store_key_lookup(f->st, h1, &found, &used), 1);
	assert_int_equal(found, id1);
	assert_int_equal(used, 0);
	assert_int_equal(store_key_touch(f->st, id1, 100000), 1);
	assert_int_equal(store_key_lookup(f->st, h1, &found, &used), 1);
	assert_int_equal(used, 100000);
	assert_int_equal(store_key_lookup(f->st, h2, &found, &used), 0);
	assert_int_equal(store_key_revoke(f->st, 0, "ci", 2), 1);
	assert_int_equal(store_key_lookup(f->st, h1, &found, &used), 0);
	assert_int_equal(store_key_revoke(f->st, id1, NULL, 2), 0);
	assert_int_equal(store_key_create(f->st, "ci", h2, 1, &id2), 1);	/* name free again */
	assert_int_equal(store_key_list(f->st, &out), 1);
	assert_int_equal(json_array_size(json_object_get(out, "keys")), 2);
	assert_false(json_is_null(json_object_get(json_array_get(json_object_get(out, "keys"), 0),
	    "last_used_at")));
	json_decref(out);
}

/* What store_recipients handed over for one user. */
struct seen {
	struct prefs	 p;
	char		 email[320], tz[80];
};

static int
seen_one(void *arg, size_t i, const struct prefs *p, const char *email, const char *tz)
{
	struct seen *s = (struct seen *)arg + i;
	s->p = *p;
	snprintf(s->email, sizeof s->email, "%s", email);
	snprintf(s->tz, sizeof s->tz, "%s", tz);
	return 0;
}

#define ROUTE_USERS 6
static const char *const route_users[ROUTE_USERS] = {"r0", "r1", "r2", "r3", "r4", "r5"};

/*
 * The reader's list: one unknown user (never kept, so always read: its
 * read opens the pass's transaction), then the real ones.
 */
#define ROUTE_LIST (1 + ROUTE_USERS)

/* The reader's steps in a round, under lock. */
enum route_step { RS_IDLE, RS_GO, RS_READ, RS_CHANGED, RS_DONE, RS_STOP };

struct route_race {
	struct store	*st;
	const char	*list[ROUTE_LIST];
	struct seen	 seen[ROUTE_LIST];
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	enum route_step	 step;
	int		 failed;
};

static void
route_step_to(struct route_race *r, enum route_step to)
{
	pthread_mutex_lock(&r->lock);
	r->step = to;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* Wait for step want (or RS_STOP); returns the step reached. */
static enum route_step
route_step_wait(struct route_race *r, enum route_step want)
{
	pthread_mutex_lock(&r->lock);
	while (r->step != want && r->step != RS_STOP)
		pthread_cond_wait(&r->cond, &r->lock);
	enum route_step got = r->step;
	pthread_mutex_unlock(&r->lock);
	return got;
}

/*
 * The reader's callback: once the first (unknown) user is read, its
 * transaction holds the database as it was; it waits there until the
 * round's change has been answered, then reads the real users from
 * that older snapshot. What it read must not be kept.
 */
static int
route_reader_seen(void *arg, size_t i, const struct prefs *p, const char *email,
    const char *tz)
{
	struct route_race *r = arg;
	seen_one(r->seen, i, p, email, tz);
	if (i == 0) {
		route_step_to(r, RS_READ);
		route_step_wait(r, RS_CHANGED);
	}
	return 0;
}

static void *
route_reader(void *arg)
{
	struct route_race *r = arg;
	struct prefs *p = malloc(sizeof *p);
	while (route_step_wait(r, RS_GO) == RS_GO) {
		int rc = store_recipients(r->st, r->list, ROUTE_LIST, p, route_reader_seen, r);
		pthread_mutex_lock(&r->lock);
		r->failed += rc != 0;
		pthread_mutex_unlock(&r->lock);
		route_step_to(r, RS_DONE);
	}
	free(p);
	return NULL;
}

struct route_change {
	unsigned	 pick;
};

static bool
route_edit(struct prefs *p, void *arg)
{
	unsigned k = ((struct route_change *)arg)->pick;
	switch (k % 4) {
	case 0:
		p->quiet = !p->quiet;
		p->quiet_start = (int)(k % 1440);
		p->quiet_end = (int)((k * 7) % 1440);
		p->quiet_days = 1 + k % 127;
		break;
	case 1:
		p->digest = (enum digest_mode)(k % 3);
		break;
	case 2:
		p->email_if_unread = (int64_t)(k % 5) * 60000;
		break;
	default:
		if (p->n > 0 && k % 2) {
			p->n--;
		} else if (p->n < 3) {
			snprintf(p->rules[p->n].type, sizeof p->rules[p->n].type, "t%u", k % 97);
			p->rules[p->n].channel = k % 3 ? CHANNEL_EMAIL : CHANNEL_IN_APP;
			p->rules[p->n].enabled = k % 5 != 0;
			p->n++;
		}
	}
	return true;
}

/*
 * Whether the routing store_recipients gave for user i is what is stored
 * now; why not in why. It returns rather than asserts: a failed assert
 * would leave route_reader running on a closed store.
 */
static bool
route_check(struct store *st, const struct seen *got, int i, char *why, size_t len)
{
	struct prefs *want = malloc(sizeof *want);
	json_t *u = NULL;
	int known = store_prefs_get(st, route_users[i], want);
	bool ok = known >= 0 && store_user_get(st, route_users[i], &u) == known;
	const char *email = known > 0 ? json_string_value(json_object_get(u, "email")) : NULL;
	const char *tz = known > 0 ? json_string_value(json_object_get(u, "tz")) : NULL;
#define ROUTE_SAME(cond, what) \
	do { if (ok && !(cond)) { snprintf(why, len, "%s: %s", route_users[i], what); ok = false; } } \
	while (0)
	ROUTE_SAME(known >= 0, "cannot read what is stored");
	ROUTE_SAME(strcmp(got->email, email ? email : "") == 0, "email");
	ROUTE_SAME(strcmp(got->tz, tz ? tz : "") == 0, "tz");
	ROUTE_SAME(got->p.quiet == want->quiet, "quiet");
	ROUTE_SAME(!want->quiet || (got->p.quiet_start == want->quiet_start &&
	    got->p.quiet_end == want->quiet_end && got->p.quiet_days == want->quiet_days),
	    "quiet hours");
	ROUTE_SAME(got->p.digest == want->digest, "digest");
	ROUTE_SAME(got->p.email_if_unread == want->email_if_unread, "email_if_unread");
	ROUTE_SAME(got->p.n == want->n, "number of rules");
	for (size_t k = 0; ok && k < want->n; k++)
		ROUTE_SAME(strcmp(got->p.rules[k].type, want->rules[k].type) == 0 &&
		    got->p.rules[k].channel == want->rules[k].channel &&
		    got->p.rules[k].enabled == want->rules[k].enabled, "a rule");
#undef ROUTE_SAME
	json_decref(u);
	free(want);
	return ok;
}

/*
 * Routing is kept between sends (SQLite); every change answered must be
 * routed by at once. A randomized run of changes, each followed by reads
 * that must match the stored preferences. In each round a second thread
 * has begun reading before the change and finishes after it has been
 * answered: what it read is older than the change, and must not be kept.
 */
static void
test_routing_follows_every_change(void **state)
{
	struct fixture *f = *state;
	struct route_race *race = calloc(1, sizeof *race);
	struct prefs *p = malloc(sizeof *p);
	struct seen *got = calloc(ROUTE_USERS, sizeof *got);
	pthread_t t;
	unsigned seed = 19;
	char email[64], tz[32], why[200] = "";
	bool ok = true;

	race->st = f->st;
	pthread_mutex_init(&race->lock, NULL);
	pthread_cond_init(&race->cond, NULL);
	race->list[0] = "nobody";
	for (int i = 0; i < ROUTE_USERS; i++)
		race->list[1 + i] = route_users[i];
	assert_int_equal(pthread_create(&t, NULL, route_reader, race), 0);
	for (int round = 0; ok && round < 300; round++) {
		unsigned k = (unsigned)rand_r(&seed);
		int i = (int)(k % ROUTE_USERS);
		json_t *out = NULL;
		bool created;
		/* The reader opens its transaction and waits in it. */
		route_step_to(race, RS_GO);
		route_step_wait(race, RS_READ);
		if ((k >> 8) % 3 == 0) {
			snprintf(email, sizeof email, "%s.%d@example.com", route_users[i], round);
			snprintf(tz, sizeof tz, "%s", (k >> 12) % 2 ? "Europe/Berlin" : "Asia/Tokyo");
			struct user_update u = {.id = route_users[i], .email = (k >> 10) % 4 ? email : NULL,
			    .set_email = (k >> 14) % 3 != 0, .tz = tz, .set_tz = (k >> 16) % 2 != 0,
			    .name = "n", .set_name = true};
			ok = store_user_put(f->st, &u, 1, &out, &created) == 1;
			json_decref(out);
		} else if ((k >> 8) % 3 == 1) {
			struct route_change c = {k >> 4};
			ok = store_prefs_update(f->st, route_users[i], 1, route_edit, &c, NULL) == 1;
		}
		if (!ok)
			snprintf(why, sizeof why, "round %d: the change failed", round);
		/* The change is answered: the reader reads on, from before it. */
		route_step_to(race, RS_CHANGED);
		route_step_wait(race, RS_DONE);
		/* One alone, and everyone together (one read transaction on SQLite). */
		if (ok && (store_recipients(f->st, route_users + i, 1, p, seen_one, got + i) != 0 ||
		    !route_check(f->st, got + i, i, why, sizeof why)))
			ok = false;
		if (ok && store_recipients(f->st, route_users, ROUTE_USERS, p, seen_one, got) != 0)
			ok = false;
		for (int j = 0; ok && j < ROUTE_USERS; j++)
			ok = route_check(f->st, got + j, j, why, sizeof why);
		if (!ok && why[0] == '\0')
			snprintf(why, sizeof why, "round %d: store_recipients failed", round);
	}
	route_step_to(race, RS_STOP);
	pthread_join(t, NULL);
	int failed = race->failed;
	pthread_mutex_destroy(&race->lock);
	pthread_cond_destroy(&race->cond);
	free(race);
	free(got);
	free(p);
	if (!ok)
		fail_msg("routing not as stored: %s", why);
	assert_int_equal(failed, 0);
}

static void
test_archive_and_delete(void **state)
{
	struct fixture *f = *state;
	int64_t a = create(f->st, "al", "m", NULL, NULL), count, missing;
	json_t *changed, *page;
	assert_int_equal(store_notifications_mark(f->st, "al", &a, 1, MARK_ARCHIVED, 5,
	    &changed, &missing), 1);
	json_decref(changed);
	struct notification_query q = {.user = "al", .limit = 10};
	assert_int_equal(store_notification_list(f->st, &q, 6, &page), 1);
	assert_int_equal(json_array_size(json_object_get(page, "notifications")), 0);
	json_decref(page);
	q.archived = true;
	assert_int_equal(store_notification_list(f->st, &q, 6, &page), 1);
	assert_int_equal(json_array_size(json_object_get(page, "notifications")), 1);
	json_decref(page);
	assert_int_equal(store_unread_count(f->st, "al", 6, &count), 1);
	assert_int_equal(count, 0);
	assert_int_equal(del(f->st, "someone", a, 7), 0);
	assert_int_equal(del(f->st, "al", a, 7), 1);
	assert_int_equal(del(f->st, NULL, a, 7), 0);
}

static json_t *seen_events;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t seen_more = PTHREAD_COND_INITIALIZER;

/* Events come in the writing thread (SQLite), or PostgreSQL's listener's (pg_relay.c). */
static void
record_event(const struct event *ev, void *arg)
{
	(void)arg;
	if (EVENT_IS_INTERNAL(ev->type))
		return;
	pthread_mutex_lock(&seen_lock);
	json_array_append_new(seen_events, json_pack("{s:s, s:s, s:O}", "type",
	    events_name(ev->type), "user", ev->user, "data", ev->data));
	pthread_cond_broadcast(&seen_more);
	pthread_mutex_unlock(&seen_lock);
}

/* Wait until n events have come (10 s at most); how many have. */
static size_t
await_events(size_t n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&seen_lock);
	while (json_array_size(seen_events) < n &&
	    pthread_cond_timedwait(&seen_more, &seen_lock, &until) == 0)
		;
	size_t got = json_array_size(seen_events);
	pthread_mutex_unlock(&seen_lock);
	return got;
}

static void
test_events_in_commit_order(void **state)
{
	struct fixture *f = *state;
	json_t *r;
	int64_t missing;
	seen_events = json_array();
	events_subscribe(record_event, NULL);
	int64_t a = create(f->st, "ev", "m", NULL, NULL);
	int64_t b = create(f->st, "ev", "m", NULL, NULL);
	create(f->st, "ev", "m", "k", NULL);
	create(f->st, "ev", "m", "k", NULL);	/* exists: no event */
	assert_int_equal(store_notifications_mark(f->st, "ev", &a, 1, MARK_READ, 2, &r, &missing), 1);
	json_decref(r);
	assert_int_equal(store_notifications_mark(f->st, "ev", &a, 1, MARK_READ, 2, &r, &missing), 1);
	json_decref(r);	/* nothing changed: no event */
	assert_int_equal(del(f->st, NULL, b, 3), 1);
	/* A mark that fails changes nothing and tells no one. */
	int64_t none = 999999;
	assert_int_equal(store_notifications_mark(f->st, "ev", &none, 1, MARK_READ, 4, &r, &missing),
	    0);
	assert_int_equal(await_events(5), 5);
	/* And nothing more comes: a create of another user's, its event after them all. */
	create(f->st, "other", "m", NULL, NULL);
	assert_int_equal(await_events(6), 6);
	events_reset();
	const char *types[] = {"notification", "notification", "notification", "read", "deleted"};
	for (int i = 0; i < 5; i++)
		assert_string_equal(json_string_value(json_object_get(json_array_get(seen_events, i),
		    "type")), types[i]);
	json_t *read = json_object_get(json_array_get(seen_events, 3), "data");
	assert_int_equal(json_integer_value(json_object_get(read, "unread_count")), 2);
	json_t *del = json_object_get(json_array_get(seen_events, 4), "data");
	assert_int_equal(json_integer_value(json_object_get(del, "id")), b);
	assert_int_equal(json_integer_value(json_object_get(del, "unread_count")), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(seen_events, 5),
	    "user")), "other");
	json_decref(seen_events);
}

/*
 * The reads an inbox makes on every page, count and replay walk an index
 * (or a primary key) in order: never a scan of the table, never a sort in
 * a temporary b-tree, whatever the inbox holds. A change that turns one
 * into either fails here, not in production at 100,000 notifications.
 */
static void
test_inbox_reads_use_their_indexes(void **state)
{
	SQLITE_ONLY();
	struct fixture *f = *state;
	static const struct {
		const char *name, *want;
	} reads[] = {
		{"list", "USING INDEX notifications_by_user (user_id=? AND id<?)"},
		/* From above the user's read_all watermark (sql/013_read_watermark.sql). */
		{"list_unread", "USING INDEX notifications_unread (user_id=? AND id>? AND id<?)"},
		{"list_archived", "USING INDEX notifications_archived (user_id=? AND id<?)"},
		{"unread_count", "USING INDEX sqlite_autoindex_users_1 (id=?)"},
		{"after", "USING INDEX notifications_by_user (user_id=? AND id>?)"},
		{"owned", "USING INTEGER PRIMARY KEY (rowid=?)"},
		/* Settling a watermark walks the user's rows below it, never the table. */
		{"settle_next", "USING INDEX users_settling (read_before>?)"},
		{"settle_low", "USING INDEX notifications_by_user (user_id=? AND id<?)"},
		{"settle_from", "USING INDEX notifications_by_user (user_id=? AND id>? AND id<?)"},
		/* A send with a key looks for it in the partial index of keyed rows (sql/015). */
		{"by_key", "USING INDEX notifications_key (user_id=? AND dedupe_key=?)"},
	};
	char plan[2048];
	for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
		assert_int_equal(store_explain(f->st, reads[i].name, plan, sizeof plan), 1);
		if (strstr(plan, reads[i].want) == NULL || strstr(plan, "SCAN") != NULL ||
		    strstr(plan, "TEMP B-TREE") != NULL)
			fail_msg("%s: want %s; the plan is:\n%s", reads[i].name, reads[i].want, plan);
	}
	assert_int_equal(store_explain(f->st, "nonsense", plan, sizeof plan), 0);
}

int
main(void)
{
	log_set_level(LOG_ERROR + 1);
	pg_url = getenv("NOTIFYD_TEST_PG_URL");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbox_reads_use_their_indexes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_created_text_is_the_stored_object_dumped, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_idempotent_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_is_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mark_and_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_all_watermark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writes_share_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users_topics_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_sizes_follow_every_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_sizes_under_concurrent_adds, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_routing_follows_every_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_archive_and_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_in_commit_order, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
