/* store — persistent state in SQLite; the only file that includes sqlite3.h. */
#define _GNU_SOURCE
#include "store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "log.h"
#include "util.h"

/* The columns a notification object is made of, in row_notification() order. */
#define NCOLS "id, user_id, type, category, priority, title, body, data, " \
	"action_url, created_at, read_at, archived_at, deliver_at"

/* Every statement, prepared once at open and reused. */
enum stmt_id {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_PING,
	S_USER_EXISTS,
	S_USER_ENSURE,
	S_NOTIF_INSERT,
	S_NOTIF_BY_KEY,
	S_NOTIF_GET,
	S_NOTIF_LIST,
	S_NOTIF_OWNED,
	S_NOTIF_SET_READ,
	S_NOTIF_SET_UNREAD,
	S_NOTIF_MAX_VISIBLE,
	S_NOTIF_READ_ALL,
	S_UNREAD_COUNT,
	S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_PING] = "SELECT count(*) FROM sqlite_schema",
	[S_USER_EXISTS] = "SELECT 1 FROM users WHERE id = ?1",
	[S_USER_ENSURE] = "INSERT INTO users (id, created_at) VALUES (?1, ?2) "
	    "ON CONFLICT (id) DO NOTHING",
	[S_NOTIF_INSERT] = "INSERT INTO notifications (user_id, type, category, "
	    "priority, title, body, data, action_url, dedupe_key, created_at, "
	    "deliver_at) VALUES (?1, ?2, ?3, coalesce(?4, 'normal'), ?5, ?6, ?7, "
	    "?8, ?9, ?10, ?11) ON CONFLICT (user_id, dedupe_key) DO NOTHING "
	    "RETURNING " NCOLS,
	[S_NOTIF_BY_KEY] = "SELECT " NCOLS " FROM notifications "
	    "WHERE user_id = ?1 AND dedupe_key = ?2",
	[S_NOTIF_GET] = "SELECT " NCOLS " FROM notifications WHERE id = ?1",
	[S_NOTIF_LIST] = "SELECT " NCOLS " FROM notifications "
	    "WHERE user_id = ?1 AND id < ?2 AND (?3 = 0 OR read_at IS NULL) "
	    "AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR category = ?5) "
	    "AND (archived_at IS NOT NULL) = (?6 != 0) "
	    "AND (deliver_at IS NULL OR deliver_at <= ?7) "
	    "ORDER BY id DESC LIMIT ?8",
	[S_NOTIF_OWNED] = "SELECT read_at IS NOT NULL FROM notifications "
	    "WHERE id = ?1 AND user_id = ?2 AND (deliver_at IS NULL OR deliver_at <= ?3)",
	[S_NOTIF_SET_READ] = "UPDATE notifications SET read_at = ?3 "
	    "WHERE id = ?1 AND user_id = ?2 AND read_at IS NULL",
	[S_NOTIF_SET_UNREAD] = "UPDATE notifications SET read_at = NULL "
	    "WHERE id = ?1 AND user_id = ?2 AND read_at IS NOT NULL",
	[S_NOTIF_MAX_VISIBLE] = "SELECT coalesce(max(id), 0) FROM notifications "
	    "WHERE user_id = ?1 AND (deliver_at IS NULL OR deliver_at <= ?2)",
	[S_NOTIF_READ_ALL] = "UPDATE notifications SET read_at = ?2 "
	    "WHERE user_id = ?1 AND id <= ?3 AND read_at IS NULL "
	    "AND (deliver_at IS NULL OR deliver_at <= ?2)",
	[S_UNREAD_COUNT] = "SELECT count(*) FROM notifications "
	    "WHERE user_id = ?1 AND read_at IS NULL AND archived_at IS NULL "
	    "AND (deliver_at IS NULL OR deliver_at <= ?2)",
};

struct store {
	sqlite3		*db;
	pthread_mutex_t	 lock;
	sqlite3_stmt	*stmt[S__COUNT];
	char		*path;
};

/* Log the database's last error for what was being done. */
static int
fail(struct store *st, const char *what)
{
	log_error("database error", "op=%s error=%s", what, sqlite3_errmsg(st->db));
	return -1;
}

/* The statement id, reset and unbound, ready to bind. */
static sqlite3_stmt *
stmt(struct store *st, enum stmt_id id)
{
	sqlite3_stmt *s = st->stmt[id];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* Run a statement that returns no rows. */
static int
exec(struct store *st, enum stmt_id id)
{
	sqlite3_stmt *s = stmt(st, id);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fail(st, stmt_sql[id]);
}

static int
begin(struct store *st)
{
	return exec(st, S_BEGIN);
}

static int
commit(struct store *st)
{
	if (exec(st, S_COMMIT) == 0)
		return 0;
	exec(st, S_ROLLBACK);
	return -1;
}

static void
rollback(struct store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		exec(st, S_ROLLBACK);
}

/* A time column as RFC 3339 text, or JSON null. */
static json_t *
time_json(sqlite3_stmt *s, int col)
{
	char ts[40];
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return json_null();
	time_format_rfc3339(ts, sizeof ts, sqlite3_column_int64(s, col));
	return json_string(ts);
}

static json_t *
text_json(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t == NULL ? json_null() : json_string((const char *)t);
}

/* The notification object of the current row of a statement selecting NCOLS. */
static json_t *
row_notification(sqlite3_stmt *s)
{
	json_t *data = json_null();
	const unsigned char *d = sqlite3_column_text(s, 7);
	if (d != NULL) {
		json_t *parsed = json_loads((const char *)d, JSON_DECODE_ANY, NULL);
		if (parsed != NULL)
			data = parsed;
	}
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(sqlite3_column_int64(s, 0)));
	json_object_set_new(o, "user", text_json(s, 1));
	json_object_set_new(o, "type", text_json(s, 2));
	json_object_set_new(o, "category", text_json(s, 3));
	json_object_set_new(o, "priority", text_json(s, 4));
	json_object_set_new(o, "title", text_json(s, 5));
	json_object_set_new(o, "body", text_json(s, 6));
	json_object_set_new(o, "data", data);
	json_object_set_new(o, "url", text_json(s, 8));
	json_object_set_new(o, "created_at", time_json(s, 9));
	json_object_set_new(o, "read_at", time_json(s, 10));
	json_object_set_new(o, "archived_at", time_json(s, 11));
	if (sqlite3_column_type(s, 12) != SQLITE_NULL)
		json_object_set_new(o, "deliver_at", time_json(s, 12));
	return o;
}

int
store_schema_version(void)
{
	int n = 0;
	while (embedded_sql[n].name != NULL)
		n++;
	return n;
}

/* Read PRAGMA user_version. */
static int
user_version(sqlite3 *db, int *v)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* Apply the embedded migrations newer than the database, one transaction each. */
static int
migrate(sqlite3 *db, const char *path, int have, char *err, size_t errlen)
{
	int want = store_schema_version();
	for (int i = have; i < want; i++) {
		const struct embedded *m = &embedded_sql[i];
		char *sql = NULL, *msg = NULL;
		if (asprintf(&sql, "BEGIN IMMEDIATE;\n%s\n;PRAGMA user_version = %d;\nCOMMIT;",
		    (const char *)m->data, i + 1) < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
		free(sql);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "%s: migration %s failed: %s", path,
			    m->name, msg ? msg : sqlite3_errmsg(db));
			sqlite3_free(msg);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		log_info("migrated", "db=%s migration=%s version=%d", path, m->name, i + 1);
	}
	return 0;
}

int
store_open(struct store **out, const char *path, const struct store_options *opt,
    char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof *st);
	int have = 0, want = store_schema_version();
	char pragmas[128];

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&st->lock, NULL);
	st->path = strdup(path);
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    st->db ? sqlite3_errmsg(st->db) : "cannot open");
		goto bad;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, (int)opt->busy_timeout);
	/* Look before touching: a newer schema must not be modified at all. */
	if (user_version(st->db, &have) != 0) {
		snprintf(err, errlen, "%s: not a notifyd database: %s", path,
		    sqlite3_errmsg(st->db));
		goto bad;
	}
	if (have > want) {
		snprintf(err, errlen, "%s: database schema version %d is newer than "
		    "this notifyd understands (%d); run a newer notifyd or restore "
		    "a backup", path, have, want);
		goto bad;
	}
	snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode = WAL; "
	    "PRAGMA synchronous = %s; PRAGMA foreign_keys = ON;",
	    opt->sync_full ? "FULL" : "NORMAL");
	char *msg = NULL;
	if (sqlite3_exec(st->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		goto bad;
	}
	if (migrate(st->db, path, have, err, errlen) != 0)
		goto bad;
	for (int i = 0; i < S__COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: preparing statement %d: %s", path,
			    i, sqlite3_errmsg(st->db));
			goto bad;
		}
	}
	*out = st;
	return 1;
bad:
	store_close(st);
	return -1;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < S__COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db != NULL) {
		sqlite3_exec(st->db, "PRAGMA optimize", NULL, NULL, NULL);
		sqlite3_close(st->db);
	}
	pthread_mutex_destroy(&st->lock);
	free(st->path);
	free(st);
}

int
store_ping(struct store *st)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = stmt(st, S_PING);
	int rc = sqlite3_step(s) == SQLITE_ROW ? 1 : fail(st, "ping");
	sqlite3_reset(s);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* Does the user exist? Caller holds the lock. */
static int
user_exists(struct store *st, const char *user)
{
	sqlite3_stmt *s = stmt(st, S_USER_EXISTS);
	bind_text(s, 1, user);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : fail(st, "user_exists");
}

int
store_user_exists(struct store *st, const char *user)
{
	pthread_mutex_lock(&st->lock);
	int rc = user_exists(st, user);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* Insert one notification (and its user); caller holds the lock in a transaction. */
static int
create_one(struct store *st, const struct notification_new *in, int64_t now,
    json_t **out, bool *created)
{
	sqlite3_stmt *s = stmt(st, S_USER_ENSURE);
	bind_text(s, 1, in->user);
	sqlite3_bind_int64(s, 2, now);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return fail(st, "user_ensure");

	s = stmt(st, S_NOTIF_INSERT);
	bind_text(s, 1, in->user);
	bind_text(s, 2, in->type);
	bind_text(s, 3, in->category);
	bind_text(s, 4, in->priority);
	bind_text(s, 5, in->title);
	bind_text(s, 6, in->body);
	bind_text(s, 7, in->data);
	bind_text(s, 8, in->url);
	bind_text(s, 9, in->key);
	sqlite3_bind_int64(s, 10, now);
	if (in->deliver_at > 0)
		sqlite3_bind_int64(s, 11, in->deliver_at);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = row_notification(s);
		*created = true;
		rc = sqlite3_step(s);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return fail(st, "notification_insert");
	if (*created)
		return 1;

	/* The key was taken: hand back what it names. */
	s = stmt(st, S_NOTIF_BY_KEY);
	bind_text(s, 1, in->user);
	bind_text(s, 2, in->key);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = row_notification(s);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : fail(st, "notification_by_key");
}

int
store_notifications_create(struct store *st, const struct notification_new *in,
    size_t n, int64_t now, json_t **out, bool *created)
{
	size_t i;
	int rc = -1;

	for (i = 0; i < n; i++) {
		out[i] = NULL;
		created[i] = false;
	}
	pthread_mutex_lock(&st->lock);
	if (begin(st) != 0)
		goto done;
	for (i = 0; i < n; i++)
		if (create_one(st, &in[i], now, &out[i], &created[i]) < 0)
			break;
	if (i == n && commit(st) == 0)
		rc = 1;
done:
	if (rc < 0) {
		rollback(st);
		for (i = 0; i < n; i++) {
			json_decref(out[i]);
			out[i] = NULL;
			created[i] = false;
		}
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int
store_notification_get(struct store *st, int64_t id, json_t **out)
{
	pthread_mutex_lock(&st->lock);
	sqlite3_stmt *s = stmt(st, S_NOTIF_GET);
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = row_notification(s);
		rc = 1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : fail(st, "notification_get");
	}
	sqlite3_reset(s);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* Unread count of user; caller holds the lock. */
static int
unread_count(struct store *st, const char *user, int64_t now, int64_t *count)
{
	sqlite3_stmt *s = stmt(st, S_UNREAD_COUNT);
	bind_text(s, 1, user);
	sqlite3_bind_int64(s, 2, now);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*count = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : fail(st, "unread_count");
}

int
store_unread_count(struct store *st, const char *user, int64_t now, int64_t *count)
{
	pthread_mutex_lock(&st->lock);
	int rc = user_exists(st, user);
	if (rc > 0)
		rc = unread_count(st, user, now, count);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int
store_notification_list(struct store *st, const struct notification_query *q,
    int64_t now, json_t **out)
{
	json_t *list = json_array();
	int64_t count = 0, last = 0;
	int n = 0, rc;

	pthread_mutex_lock(&st->lock);
	/* Under the one lock, so the page and the count agree. */
	rc = user_exists(st, q->user);
	if (rc <= 0)
		goto done;
	sqlite3_stmt *s = stmt(st, S_NOTIF_LIST);
	bind_text(s, 1, q->user);
	sqlite3_bind_int64(s, 2, q->before > 0 ? q->before : INT64_MAX);
	sqlite3_bind_int(s, 3, q->unread_only);
	bind_text(s, 4, q->type);
	bind_text(s, 5, q->category);
	sqlite3_bind_int(s, 6, q->archived);
	sqlite3_bind_int64(s, 7, now);
	sqlite3_bind_int(s, 8, q->limit + 1);	/* one more tells whether a next page exists */
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n++ == q->limit)
			break;
		last = sqlite3_column_int64(s, 0);
		json_array_append_new(list, row_notification(s));
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		rc = fail(st, "notification_list");
		goto done;
	}
	rc = unread_count(st, q->user, now, &count);
done:
	pthread_mutex_unlock(&st->lock);
	if (rc <= 0) {
		json_decref(list);
		return rc;
	}
	*out = json_pack("{s:o, s:o, s:I}", "notifications", list, "next_before",
	    n > q->limit ? json_integer(last) : json_null(), "unread_count",
	    (json_int_t)count);
	return 1;
}

int
store_notifications_mark(struct store *st, const char *user, const int64_t *ids,
    size_t n, bool read, int64_t now, json_t **changed, int64_t *missing)
{
	json_t *done_ids = json_array();
	int rc = -1;
	size_t i;

	pthread_mutex_lock(&st->lock);
	if (begin(st) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		sqlite3_stmt *s = stmt(st, S_NOTIF_OWNED);
		sqlite3_bind_int64(s, 1, ids[i]);
		bind_text(s, 2, user);
		sqlite3_bind_int64(s, 3, now);
		int r = sqlite3_step(s);
		sqlite3_reset(s);
		if (r == SQLITE_DONE) {
			*missing = ids[i];
			rc = 0;
			goto out;
		}
		if (r != SQLITE_ROW) {
			fail(st, "notification_owned");
			goto out;
		}
		s = stmt(st, read ? S_NOTIF_SET_READ : S_NOTIF_SET_UNREAD);
		sqlite3_bind_int64(s, 1, ids[i]);
		bind_text(s, 2, user);
		if (read)
			sqlite3_bind_int64(s, 3, now);
		r = sqlite3_step(s);
		sqlite3_reset(s);
		if (r != SQLITE_DONE) {
			fail(st, "notification_mark");
			goto out;
		}
		if (sqlite3_changes(st->db) > 0)
			json_array_append_new(done_ids, json_integer(ids[i]));
	}
	if (commit(st) == 0)
		rc = 1;
out:
	if (rc <= 0)
		rollback(st);
	pthread_mutex_unlock(&st->lock);
	if (rc <= 0) {
		json_decref(done_ids);
		return rc;
	}
	*changed = done_ids;
	return rc;
}

int
store_notifications_read_all(struct store *st, const char *user, int64_t now,
    int64_t *up_to, int64_t *marked)
{
	int rc = -1;

	pthread_mutex_lock(&st->lock);
	if (begin(st) != 0)
		goto out;
	rc = user_exists(st, user);
	if (rc <= 0)
		goto out;
	rc = -1;
	sqlite3_stmt *s = stmt(st, S_NOTIF_MAX_VISIBLE);
	bind_text(s, 1, user);
	sqlite3_bind_int64(s, 2, now);
	int r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		*up_to = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (r != SQLITE_ROW) {
		fail(st, "notification_max");
		goto out;
	}
	s = stmt(st, S_NOTIF_READ_ALL);
	bind_text(s, 1, user);
	sqlite3_bind_int64(s, 2, now);
	sqlite3_bind_int64(s, 3, *up_to);
	r = sqlite3_step(s);
	sqlite3_reset(s);
	if (r != SQLITE_DONE) {
		fail(st, "notification_read_all");
		goto out;
	}
	*marked = sqlite3_changes(st->db);
	if (commit(st) == 0)
		rc = 1;
out:
	if (rc <= 0)
		rollback(st);
	pthread_mutex_unlock(&st->lock);
	return rc;
}
