/*
 * engine — the SQLite store's machinery: open and migrate the database,
 * one writer and a pool of readers, the group commit, and checkpoints off
 * the commit path.
 *
 * Writes are queued and run by whichever writer gets there first, each in
 * its own SAVEPOINT inside one transaction with the writes queued behind
 * it: concurrent writers share one commit (and one fsync), and every
 * caller returns only after the commit that carried its write.
 */
#define _GNU_SOURCE
#include "store_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "embed.h"
#include "log.h"
#include "util.h"
#include "walvfs.h"

/* The engine's own statements: transactions, and what is about the whole. */
enum engine_stmt {
	S_BEGIN,
	S_READ_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_PING,
	S_COUNTS,
	S_ENGINE__COUNT
};

static const char *const statements[S_ENGINE__COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_READ_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT w",
	[S_RELEASE] = "RELEASE w",
	[S_ROLLBACK_TO] = "ROLLBACK TO w",
	[S_PING] = "SELECT count(*) FROM sqlite_schema",
	/* In parentheses: clang takes one string in two lines among short ones for a missed comma. */
	[S_COUNTS] = ("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM notifications), "
	    "(SELECT count(*) FROM mail)"),
};

const struct stmt_table engine_sql = {statements, S_ENGINE__COUNT};

#define stmt(c, id) stmt_get((c), T_ENGINE, (id))

/* Every file's statements, in the order of T_*. */
static const struct stmt_table *const tables[T__COUNT] = {
	[T_ENGINE] = &engine_sql, [T_PEOPLE] = &people_sql, [T_NOTIF] = &notif_sql,
	[T_MAIL] = &mail_sql, [T_CHAN] = &chan_sql,
};

/* Log the connection's last error for what was being done. */
int
fail(struct conn *c, const char *what)
{
	log_error("database error", "op=%s error=%s", what, sqlite3_errmsg(c->db));
	return -1;
}

/*
 * Statement id of table t on c, reset and unbound, prepared on its first
 * use: the writer checked every one's SQL at open, and a connection keeps
 * only those it runs (all of them on all five connections held 3.1 MiB of
 * an idle notifyd: 2.3 on the readers, 0.8 on the writer, measured as
 * RSS). NULL only if SQLite runs out of memory; SQLite
 * answers a NULL statement with SQLITE_MISUSE.
 */
sqlite3_stmt *
stmt_get(struct conn *c, int t, int id)
{
	sqlite3_stmt *s = c->stmt[t][id];
	if (s == NULL) {
		if (sqlite3_prepare_v3(c->db, tables[t]->sql[id], -1, SQLITE_PREPARE_PERSISTENT,
		    &c->stmt[t][id], NULL) != SQLITE_OK) {
			fail(c, "prepare");
			return NULL;
		}
		s = c->stmt[t][id];
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* Run a statement that returns no rows (after binding); <0 on error. */
int
step_done(struct conn *c, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fail(c, what);
}

/* Bind fmt's arguments to s, as query() says. */
static void
bind_va(sqlite3_stmt *s, const char *fmt, va_list ap)
{
	for (int i = 1; fmt != NULL && *fmt != '\0'; fmt++, i++)
		switch (*fmt) {
		case 't':
			bind_text(s, i, va_arg(ap, const char *));
			break;
		case 'i':
			sqlite3_bind_int64(s, i, va_arg(ap, int64_t));
			break;
		case 'h':
			sqlite3_bind_blob(s, i, va_arg(ap, const unsigned char *), 32,
			    SQLITE_TRANSIENT);
			break;
		}
}

/* Step s until row says stop or the rows end; the rows seen, or -1 logged as what. */
static int
rows(struct conn *c, sqlite3_stmt *s, const char *what, row_fn row, void *arg)
{
	int rc, n = 0;
	bool more = true;
	while (more && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		n++;
		more = row != NULL && row(s, arg);
	}
	if (more && rc != SQLITE_DONE)
		n = fail(c, what);
	sqlite3_reset(s);
	return n;
}

/* Statement id of table t on c, bound from ap, run through row. */
static int
vquery(struct conn *c, int t, int id, const char *what, row_fn row, void *arg,
    const char *fmt, va_list ap)
{
	sqlite3_stmt *s = stmt_get(c, t, id);
	bind_va(s, fmt, ap);
	return rows(c, s, what, row, arg);
}

int
query_on(struct conn *c, int t, int id, const char *what, row_fn row, void *arg,
    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vquery(c, t, id, what, row, arg, fmt, ap);
	va_end(ap);
	return n;
}

int
query(struct store *st, int t, int id, const char *what, row_fn row, void *arg,
    const char *fmt, ...)
{
	va_list ap;
	struct conn *c = reader_get(st);
	va_start(ap, fmt);
	int n = vquery(c, t, id, what, row, arg, fmt, ap);
	va_end(ap);
	reader_put(c);
	return n;
}

int
exec_on(struct conn *c, int t, int id, const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vquery(c, t, id, what, NULL, NULL, fmt, ap);
	va_end(ap);
	return n < 0 ? -1 : 0;
}

/* A check's rows (name, counter, actual) of s, appended to list as {key,"counter","actual"}. */
int
mismatch_rows(struct conn *c, sqlite3_stmt *s, const char *key, const char *what, json_t *list)
{
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(list, json_pack("{s:o, s:I, s:I}", key, text_json(s, 0),
		    "counter", (json_int_t)sqlite3_column_int64(s, 1),
		    "actual", (json_int_t)sqlite3_column_int64(s, 2)));
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fail(c, what);
}

bool
row_ints(sqlite3_stmt *s, void *arg)
{
	int64_t *v = arg;
	for (int i = 0; i < sqlite3_column_count(s); i++)
		v[i] = sqlite3_column_int64(s, i);
	return false;
}

struct json_rows {
	json_t		*(*make)(sqlite3_stmt *s);
	json_t		*one;
	json_t		*list;
};

static bool
row_json(sqlite3_stmt *s, void *arg)
{
	struct json_rows *j = arg;
	json_t *o = j->make(s);
	if (j->list == NULL) {
		j->one = o;
		return false;
	}
	json_array_append_new(j->list, o);
	return true;
}

int
query_one(struct store *st, int t, int id, const char *what, json_t *(*make)(sqlite3_stmt *),
    json_t **out, const char *fmt, ...)
{
	va_list ap;
	struct json_rows j = {make, NULL, NULL};
	struct conn *c = reader_get(st);
	va_start(ap, fmt);
	int n = vquery(c, t, id, what, row_json, &j, fmt, ap);
	va_end(ap);
	reader_put(c);
	if (n > 0)
		*out = j.one;
	return n;
}

int
query_list(struct store *st, int t, int id, const char *what, json_t *(*make)(sqlite3_stmt *),
    json_t **out, const char *fmt, ...)
{
	va_list ap;
	struct json_rows j = {make, NULL, json_array()};
	struct conn *c = reader_get(st);
	va_start(ap, fmt);
	int n = vquery(c, t, id, what, row_json, &j, fmt, ap);
	va_end(ap);
	reader_put(c);
	if (n < 0) {
		json_decref(j.list);
		return -1;
	}
	*out = j.list;
	return 1;
}

static int
exec(struct conn *c, enum engine_stmt id)
{
	/* What the transaction learnt goes with it. */
	if (id == S_ROLLBACK || id == S_ROLLBACK_TO)
		c->no_targets = false;
	return step_done(c, stmt(c, id), statements[id]);
}

int
read_begin(struct conn *c)
{
	return exec(c, S_READ_BEGIN);
}

void
read_end(struct conn *c)
{
	if (!sqlite3_get_autocommit(c->db))
		exec(c, S_COMMIT);
}

/* A time column as RFC 3339 text, or JSON null. */
json_t *
time_json(sqlite3_stmt *s, int col)
{
	char ts[40];
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return json_null();
	time_format_rfc3339(ts, sizeof ts, sqlite3_column_int64(s, col));
	return json_string(ts);
}

json_t *
text_json(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t == NULL ? json_null() : json_string((const char *)t);
}

/* A reader connection, locked; give it back with reader_put(). */
struct conn *
reader_get(struct store *st)
{
	unsigned start = __atomic_fetch_add(&SQ(st)->next_reader, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < READERS; i++) {
		struct conn *c = &SQ(st)->r[(start + i) % READERS];
		if (pthread_mutex_trylock(&c->lock) == 0)
			return c;
	}
	struct conn *c = &SQ(st)->r[start % READERS];
	pthread_mutex_lock(&c->lock);
	return c;
}

void
reader_put(struct conn *c)
{
	pthread_mutex_unlock(&c->lock);
}

/* What a failure of connection c's last statement means to a caller. */
static enum store_error
error_class(struct conn *c)
{
	switch (sqlite3_errcode(c->db)) {
	case SQLITE_FULL:
		return STORE_FULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return STORE_BUSY;
	default:
		return STORE_FAILED;
	}
}

/*
 * After a transaction's end, before any of its writers is answered: a
 * change to someone's routing (committed or not) empties the kept
 * routing, so that no send after the answer routes by what was before.
 */
static void
routing_settle(struct store *st, struct conn *c)
{
	if (c->routing_changed) {
		c->routing_changed = false;
		route_cache_clear(&SQ(st)->routes);
	}
}

/*
 * Run a batch of writes in one transaction. The common case runs them
 * straight; when one fails or finds nothing (a write that must change
 * nothing), the transaction is rolled back and the batch run again with
 * each write in its own savepoint. Writes must be safe to run twice.
 */
static void
run_batch(struct store *st, struct wreq *batch)
{
	struct conn *c = &SQ(st)->w;
	int n = 0;
	bool isolate = false;
	pthread_mutex_lock(&c->lock);
again:
	if (exec(c, S_BEGIN) != 0) {
		enum store_error e = error_class(c);
		for (struct wreq *r = batch; r; r = r->next) {
			r->rc = -1;
			r->err = e;
		}
		pthread_mutex_unlock(&c->lock);
		return;
	}
	n = 0;
	for (struct wreq *r = batch; r; r = r->next, n++) {
		if (!isolate) {
			r->rc = r->fn(c, r->arg);
			r->err = r->rc < 0 ? error_class(c) : STORE_OK;
			if (r->rc <= 0 && (batch->next != NULL || r->rc < 0)) {
				exec(c, S_ROLLBACK);
				isolate = true;
				goto again;
			}
			continue;
		}
		if (exec(c, S_SAVEPOINT) != 0) {
			r->rc = -1;
			r->err = error_class(c);
			continue;
		}
		r->rc = r->fn(c, r->arg);
		r->err = r->rc < 0 ? error_class(c) : STORE_OK;
		/* Not found or refused is all or nothing too. */
		if (r->rc <= 0)
			exec(c, S_ROLLBACK_TO);
		exec(c, S_RELEASE);
	}
	/* A lone write that found nothing: nothing to keep. */
	if (!isolate && batch->next == NULL && batch->rc == 0) {
		exec(c, S_ROLLBACK);
		routing_settle(st, c);
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (exec(c, S_COMMIT) != 0) {
		enum store_error e = error_class(c);
		exec(c, S_ROLLBACK);
		for (struct wreq *r = batch; r; r = r->next) {
			r->rc = -1;
			r->err = e;
		}
	} else {
		SQ(st)->commits++;
		SQ(st)->writes += n;
	}
	routing_settle(st, c);
	pthread_mutex_unlock(&c->lock);
}

/*
 * Lead a write batch: take everything queued (self among it), run it in
 * one transaction, publish, then wake each of the batch and the first of
 * those queued meanwhile, who leads the next. Each waiter is woken exactly
 * once, after the queue's lock is released, so waking never holds anyone up.
 */
static void
lead_batch(struct store *st, struct wreq *self)
{
	struct wreq *batch, *next_leader;

	pthread_mutex_lock(&SQ(st)->qlock);
	batch = SQ(st)->queue;
	SQ(st)->queue = NULL;
	SQ(st)->qtail = &SQ(st)->queue;
	pthread_mutex_unlock(&SQ(st)->qlock);
	run_batch(st, batch);
	/* One leader at a time: events leave in the order their writes committed. */
	for (struct wreq *r = batch; r; r = r->next)
		if (r->rc > 0 && r->publish != NULL)
			r->publish(r->arg);
	pthread_mutex_lock(&SQ(st)->qlock);
	next_leader = SQ(st)->queue;
	if (next_leader == NULL)
		SQ(st)->writing = false;
	pthread_mutex_unlock(&SQ(st)->qlock);
	for (struct wreq *r = batch, *next; r; r = next) {
		next = r->next;		/* r is gone once posted */
		r->done = true;
		if (r != self)
			sem_post(&r->wake);
	}
	if (next_leader != NULL)
		sem_post(&next_leader->wake);
}

/*
 * Run fn(writer, args[i]) for each of n writes (reqs: room for n), queued
 * together so they share a transaction, and put each result in rcs[i] once
 * it is committed (or failed: then <0, whatever fn returned). The first
 * writer leads a batch of everything queued; the others sleep until their
 * batch is done.
 */
void
store_write_many(struct store *st, int (*fn)(struct conn *, void *), void (*publish)(void *),
    void **args, int n, int *rcs, struct wreq *reqs)
{
	bool lead;

	for (int i = 0; i < n; i++) {
		reqs[i] = (struct wreq){.fn = fn, .arg = args[i], .publish = publish,
		    .next = i + 1 < n ? &reqs[i + 1] : NULL};
		sem_init(&reqs[i].wake, 0, 0);
	}
	pthread_mutex_lock(&SQ(st)->qlock);
	*SQ(st)->qtail = &reqs[0];
	SQ(st)->qtail = &reqs[n - 1].next;
	lead = !SQ(st)->writing;
	SQ(st)->writing = true;
	pthread_mutex_unlock(&SQ(st)->qlock);
	for (int i = 0; i < n; i++) {
		if (!lead) {
			while (sem_wait(&reqs[i].wake) != 0 && errno == EINTR)
				;
			if (reqs[i].done)
				continue;
		}
		/* Woken to lead (or first): the batch holds this one and those after it. */
		lead = false;
		lead_batch(st, &reqs[i]);
	}
	store_error_last = STORE_OK;
	for (int i = 0; i < n; i++) {
		rcs[i] = reqs[i].rc;
		if (reqs[i].rc < 0 && store_error_last != STORE_FULL)
			store_error_last = reqs[i].err;
		sem_destroy(&reqs[i].wake);
	}
}

int
store_write_pub(struct store *st, int (*fn)(struct conn *, void *), void (*publish)(void *),
    void *arg)
{
	struct wreq req;
	int rc;
	store_write_many(st, fn, publish, &arg, 1, &rc, &req);
	return rc;
}

int
store_write(struct store *st, int (*fn)(struct conn *, void *), void *arg)
{
	return store_write_pub(st, fn, NULL, arg);
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

/* The first row of PRAGMA foreign_key_check, as "table rowid -> parent"; 0 when none. */
static int
foreign_key_broken(sqlite3 *db, char *buf, size_t len)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(buf, len, "%s row %lld -> %s", (const char *)sqlite3_column_text(s, 0),
		    (long long)sqlite3_column_int64(s, 1), (const char *)sqlite3_column_text(s, 2));
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Apply the embedded migrations newer than the database, one transaction
 * each. Foreign keys are off while they run, so that a migration can
 * rebuild a table (dropping a parent table would otherwise delete its
 * children), and each is checked with foreign_key_check before it commits.
 */
static int
migrate(sqlite3 *db, const char *path, int have, char *err, size_t errlen)
{
	int want = store_schema_version(), rc = 0;
	if (have < want &&
	    sqlite3_exec(db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	if (have < want)
		log_info("migrating", "db=%s from=%d to=%d", path, have, want);
	for (int i = have; i < want && rc == 0; i++) {
		const struct embedded *m = &embedded_sql[i];
		char *sql = NULL, *msg = NULL, broken[200] = "";
		if (asprintf(&sql, "BEGIN IMMEDIATE;\n%s\n;PRAGMA user_version = %d;",
		    (const char *)m->data, i + 1) < 0) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		int src = sqlite3_exec(db, sql, NULL, NULL, &msg);
		free(sql);
		int fk = src == SQLITE_OK ? foreign_key_broken(db, broken, sizeof broken) : 0;
		if (src == SQLITE_OK && fk == 0)
			src = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
		if (src != SQLITE_OK || fk != 0) {
			snprintf(err, errlen, "%s: migration %s failed: %s%s", path, m->name,
			    fk > 0 ? "it breaks a foreign key: " : "",
			    fk > 0 ? broken : msg ? msg : sqlite3_errmsg(db));
			sqlite3_free(msg);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			rc = -1;
			break;
		}
		log_info("migrated", "db=%s migration=%s version=%d", path, m->name, i + 1);
	}
	if (sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK && rc == 0) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		rc = -1;
	}
	return rc;
}

/* Open one connection with its pragmas; the first one checks and migrates the schema. */
static int
conn_open(struct conn *c, const char *path, const struct store_options *opt,
    bool first, char *err, size_t errlen)
{
	int have = 0, want = store_schema_version();
	char pragmas[160];

	pthread_mutex_init(&c->lock, NULL);
	/* With every commit synced, the WAL's writes can wait for that sync. */
	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE |
	    (first ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX,
	    opt->sync_full ? walvfs_register() : NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    c->db ? sqlite3_errmsg(c->db) : "cannot open");
		return -1;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, (int)opt->busy_timeout);
	if (first) {
		/* Look before touching: a newer schema must not be modified at all. */
		if (user_version(c->db, &have) != 0) {
			snprintf(err, errlen, "%s: not a notifyd database: %s", path,
			    sqlite3_errmsg(c->db));
			return -1;
		}
		if (have > want) {
			snprintf(err, errlen, "%s: database schema version %d is newer than "
			    "this notifyd understands (%d); run a newer notifyd or restore "
			    "a backup", path, have, want);
			return -1;
		}
	}
	snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode = WAL; "
	    "PRAGMA synchronous = %s; PRAGMA foreign_keys = ON;%s",
	    opt->sync_full ? "FULL" : "NORMAL", first ? "" : " PRAGMA query_only = 1;");
	char *msg = NULL;
	if (sqlite3_exec(c->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(c->db));
		sqlite3_free(msg);
		return -1;
	}
	if (first && migrate(c->db, path, have, err, errlen) != 0)
		return -1;
	for (int t = 0; t < T__COUNT; t++) {
		const struct stmt_table *tab = tables[t];
		if ((c->stmt[t] = calloc((size_t)tab->n, sizeof *c->stmt[t])) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		/* The writer checks every statement's SQL now; stmt_get() keeps them. */
		for (int i = 0; first && i < tab->n; i++) {
			sqlite3_stmt *s = NULL;
			if (sqlite3_prepare_v3(c->db, tab->sql[i], -1, 0, &s, NULL) != SQLITE_OK) {
				snprintf(err, errlen, "%s: preparing statement %d of %d: %s",
				    path, i, t, sqlite3_errmsg(c->db));
				return -1;
			}
			sqlite3_finalize(s);
		}
	}
	return 0;
}

static void
conn_close(struct conn *c, bool optimize)
{
	for (int t = 0; t < T__COUNT; t++) {
		for (int i = 0; c->stmt[t] != NULL && i < tables[t]->n; i++)
			sqlite3_finalize(c->stmt[t][i]);
		free(c->stmt[t]);
	}
	if (c->db != NULL) {
		if (optimize)
			sqlite3_exec(c->db, "PRAGMA optimize", NULL, NULL, NULL);
		sqlite3_close(c->db);
	}
	pthread_mutex_destroy(&c->lock);
}

/* After each commit: wake the checkpointer when the WAL has grown enough. */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct store *st = arg;
	(void)db;
	(void)name;
	pthread_mutex_lock(&SQ(st)->ckpt_lock);
	SQ(st)->wal_pages = pages;
	if (pages >= CHECKPOINT_PAGES)
		pthread_cond_signal(&SQ(st)->ckpt_cond);
	pthread_mutex_unlock(&SQ(st)->ckpt_lock);
	return SQLITE_OK;
}

void
settle_kick(struct store *st)
{
	if (SQ(st)->settle_by_hand)
		return;
	pthread_mutex_lock(&SQ(st)->ckpt_lock);
	SQ(st)->settle = true;
	pthread_cond_signal(&SQ(st)->ckpt_cond);
	pthread_mutex_unlock(&SQ(st)->ckpt_lock);
}

/*
 * A passive checkpoint copies what it can, but the WAL starts over from its
 * beginning only when a write begins with all of it copied and no reader
 * in it. One writer committing back to back (a script's pipelined sends,
 * one keep-alive client) leaves no such moment, and the file grew by
 * every commit, 172 MB for 8,000 sends (bench/RESULTS.md). So once a
 * checkpoint leaves WAL_RESTART_PAGES in it, the writer is held off while
 * the rest is copied, waiting for readers a moment, and the next write
 * starts the WAL over. Not emptied: a commit that writes over the file's
 * blocks syncs faster than one that grows it. When a reader holds on (a
 * backup, a full check), it is tried again later.
 */
static void
wal_restart(struct store *st)
{
	int64_t now = time_now_ms();
	if (now < SQ(st)->restart_after)
		return;
	pthread_mutex_lock(&SQ(st)->w.lock);
	int rc = sqlite3_wal_checkpoint_v2(SQ(st)->ckpt_db, NULL, SQLITE_CHECKPOINT_RESTART,
	    NULL, NULL);
	pthread_mutex_unlock(&SQ(st)->w.lock);
	if (rc == SQLITE_BUSY)
		SQ(st)->restart_after = now + WAL_RESTART_RETRY_MS;
	else if (rc != SQLITE_OK)
		log_warn("checkpoint failed", "error=%s", sqlite3_errmsg(SQ(st)->ckpt_db));
}

/*
 * Copy the WAL into the database whenever it has grown; never blocks
 * writers (but to start over a WAL that outgrew them, above). Between
 * checkpoints, settle read_all watermarks one batch (one write of its own
 * through the group commit) at a time.
 */
static void *
checkpointer_main(void *arg)
{
	struct store *st = arg;
	pthread_mutex_lock(&SQ(st)->ckpt_lock);
	for (;;) {
		while (!SQ(st)->ckpt_stop && SQ(st)->wal_pages < CHECKPOINT_PAGES &&
		    !SQ(st)->settle)
			pthread_cond_wait(&SQ(st)->ckpt_cond, &SQ(st)->ckpt_lock);
		if (SQ(st)->ckpt_stop)
			break;
		if (SQ(st)->settle && SQ(st)->wal_pages < CHECKPOINT_PAGES) {
			SQ(st)->settle = false;
			pthread_mutex_unlock(&SQ(st)->ckpt_lock);
			int rc = settle_step(st);
			pthread_mutex_lock(&SQ(st)->ckpt_lock);
			if (rc > 0)
				SQ(st)->settle = true;
			continue;
		}
		SQ(st)->wal_pages = 0;
		pthread_mutex_unlock(&SQ(st)->ckpt_lock);
		int logged = 0, done = 0;
		int rc = sqlite3_wal_checkpoint_v2(SQ(st)->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE,
		    &logged, &done);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_warn("checkpoint failed", "error=%s", sqlite3_errmsg(SQ(st)->ckpt_db));
		else if (logged >= WAL_RESTART_PAGES)
			wal_restart(st);
		pthread_mutex_lock(&SQ(st)->ckpt_lock);
	}
	pthread_mutex_unlock(&SQ(st)->ckpt_lock);
	return NULL;
}

/* Open the checkpointer's connection and start it. */
static int
checkpointer_start(struct store *st, const struct store_options *opt, char *err, size_t errlen)
{
	if (sqlite3_open_v2(SQ(st)->path, &SQ(st)->ckpt_db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, opt->sync_full ? walvfs_register() : NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", SQ(st)->path, sqlite3_errmsg(SQ(st)->ckpt_db));
		return -1;
	}
	/* Only a restarting checkpoint waits (a passive one never does). */
	sqlite3_busy_timeout(SQ(st)->ckpt_db, WAL_RESTART_WAIT_MS);
	sqlite3_exec(SQ(st)->ckpt_db, opt->sync_full ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	/* The writer no longer checkpoints inside its commits. */
	sqlite3_exec(SQ(st)->w.db, "PRAGMA wal_autocheckpoint = 0", NULL, NULL, NULL);
	/* A WAL that starts over is cut back to this (one large write had grown it). */
	char limit[64];
	snprintf(limit, sizeof limit, "PRAGMA journal_size_limit = %d", WAL_LIMIT_BYTES);
	sqlite3_exec(SQ(st)->w.db, limit, NULL, NULL, NULL);
	sqlite3_wal_hook(SQ(st)->w.db, wal_hook, st);
	if (pthread_create(&SQ(st)->ckpt_thread, NULL, checkpointer_main, st) != 0) {
		snprintf(err, errlen, "cannot start the checkpoint thread");
		return -1;
	}
	SQ(st)->ckpt_running = true;
	return 0;
}

/*
 * Before SQLite starts: no bulk page cache per connection. By default each
 * connection allocates 20 pages at once when it first reads and links
 * them all (so touches them all): 1 MiB of an idle notifyd's RSS over six
 * connections. Pages then come from malloc one at a time, as read.
 * No memory statistics either: they take one process-wide mutex around
 * every SQLite malloc and free (Debian's build has no lookaside), which
 * the writer and the readers contend for, and nothing here reads them.
 */
static void
sqlite_configure(void)
{
	sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);	/* too late is harmless */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int
sqlite_open(struct store **out, const char *path, const struct store_options *opt,
    char *err, size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, sqlite_configure);
	struct sqlite_store *sq = calloc(1, sizeof *sq);
	struct store *st = sq ? &sq->base : NULL;
	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->be = &sqlite_backend;
	SQ(st)->path = strdup(path);
	SQ(st)->vfs = opt->sync_full ? walvfs_register() : NULL;
	SQ(st)->qtail = &SQ(st)->queue;
	route_cache_init(&SQ(st)->routes);
	pthread_mutex_init(&SQ(st)->qlock, NULL);
	pthread_mutex_init(&SQ(st)->ckpt_lock, NULL);
	pthread_cond_init(&SQ(st)->ckpt_cond, NULL);
	if (conn_open(&SQ(st)->w, path, opt, true, err, errlen) != 0)
		goto bad;
	for (int i = 0; i < READERS; i++)
		if (conn_open(&SQ(st)->r[i], path, opt, false, err, errlen) != 0)
			goto bad;
	SQ(st)->settle_by_hand = opt->settle_by_hand;
	if (checkpointer_start(st, opt, err, errlen) != 0)
		goto bad;
	/* A watermark a stop left unsettled. */
	if (settle_pending(st))
		settle_kick(st);
	*out = st;
	return 1;
bad:
	sqlite_close(st);
	return -1;
}

void
sqlite_close(struct store *st)
{
	if (st == NULL)
		return;
	if (SQ(st)->ckpt_running) {
		pthread_mutex_lock(&SQ(st)->ckpt_lock);
		SQ(st)->ckpt_stop = true;
		pthread_cond_signal(&SQ(st)->ckpt_cond);
		pthread_mutex_unlock(&SQ(st)->ckpt_lock);
		pthread_join(SQ(st)->ckpt_thread, NULL);
	}
	sqlite3_close(SQ(st)->ckpt_db);
	for (int i = 0; i < READERS; i++)
		conn_close(&SQ(st)->r[i], false);
	conn_close(&SQ(st)->w, true);
	route_cache_free(&SQ(st)->routes);
	pthread_mutex_destroy(&SQ(st)->qlock);
	pthread_mutex_destroy(&SQ(st)->ckpt_lock);
	pthread_cond_destroy(&SQ(st)->ckpt_cond);
	free(SQ(st)->path);
	free(st);
}

void
sqlite_stats(struct store *st, int64_t *commits, int64_t *writes)
{
	pthread_mutex_lock(&SQ(st)->w.lock);
	*commits = SQ(st)->commits;
	*writes = SQ(st)->writes;
	pthread_mutex_unlock(&SQ(st)->w.lock);
}

int
sqlite_ping(struct store *st)
{
	return query(st, T_ENGINE, S_PING, "ping", NULL, NULL, NULL) > 0 ? 1 : -1;
}

int
sqlite_counts(struct store *st, int64_t *users, int64_t *notifications, int64_t *mail)
{
	int64_t v[3] = {0, 0, 0};
	int rc = query(st, T_ENGINE, S_COUNTS, "counts", row_ints, v, NULL) > 0 ? 1 : -1;
	*users = v[0];
	*notifications = v[1];
	*mail = v[2];
	return rc;
}

/* The repairs of a check, in one transaction: the mismatches found, each fixed. */
struct repair {
	json_t	*unread, *topics;
};

static int
check_repair_w(struct conn *c, void *arg)
{
	struct repair *r = arg;
	return repair_w(c, r->unread) < 0 || topic_repair(c, r->topics) < 0 ? -1 : 1;
}

int
sqlite_check(struct store *st, bool full, bool repair, json_t **out)
{
	json_t *integrity = json_array(), *fks = json_array(), *counts = json_array();
	json_t *topics = json_array();
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(c->db, full ? "PRAGMA integrity_check" : "PRAGMA quick_check",
	    -1, &s, NULL) == SQLITE_OK ? 0 : -1;
	while (rc == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(s, 0);
		if (m != NULL && strcmp(m, "ok") != 0)
			json_array_append_new(integrity, json_string(m));
		rc = 0;
	}
	sqlite3_finalize(s);
	rc = rc == SQLITE_DONE ? 0 : -1;
	if (rc == 0 && sqlite3_prepare_v2(c->db, "PRAGMA foreign_key_check", -1, &s, NULL) ==
	    SQLITE_OK) {
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			json_array_append_new(fks, json_pack("{s:s?, s:I, s:s?}", "table",
			    (const char *)sqlite3_column_text(s, 0), "rowid",
			    (json_int_t)sqlite3_column_int64(s, 1), "parent",
			    (const char *)sqlite3_column_text(s, 2)));
		sqlite3_finalize(s);
		rc = rc == SQLITE_DONE ? 0 : -1;
	}
	if (rc == 0)
		rc = unread_mismatches(c, counts);
	if (rc == 0)
		rc = topic_mismatches(c, topics);
	if (rc < 0)
		fail(c, "check");
	reader_put(c);
	json_int_t repaired = 0;
	size_t wrong = json_array_size(counts) + json_array_size(topics);
	if (rc == 0 && repair && wrong > 0) {
		struct repair r = {json_array(), json_array()};
		rc = store_write(st, check_repair_w, &r) > 0 ? 0 : -1;
		repaired = (json_int_t)(json_array_size(r.unread) + json_array_size(r.topics));
		json_decref(r.unread);
		json_decref(r.topics);
	}
	if (rc < 0) {
		json_decref(integrity);
		json_decref(fks);
		json_decref(counts);
		json_decref(topics);
		return -1;
	}
	bool ok = json_array_size(integrity) == 0 && json_array_size(fks) == 0 &&
	    (wrong == 0 || repaired > 0);
	*out = json_pack("{s:b, s:s, s:o, s:o, s:o, s:o, s:I}", "ok", ok, "integrity",
	    json_array_size(integrity) ? "damaged" : "ok", "integrity_errors", integrity,
	    "foreign_key_errors", fks, "unread_mismatches", counts, "topic_mismatches", topics,
	    "repaired", repaired);
	return 1;
}

static int
sqlite_size(struct store *st, char *where, size_t n, int64_t *bytes)
{
	struct stat sb;
	snprintf(where, n, "%s", SQ(st)->path);
	*bytes = stat(SQ(st)->path, &sb) == 0 ? (int64_t)sb.st_size : 0;
	return 1;
}

/*
 * The database as of one moment, into a new file at path, synced before
 * it is linked into place: SQLite's online backup in one step, over a
 * connection of its own, so that the writer goes on (WAL) and no reader
 * of the pool is held while it copies.
 */
static int
sqlite_backup(struct store *st, const char *path, int64_t *bytes, char *err, size_t errlen)
{
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b = NULL;
	char tmp[4096];
	int rc = -1, fd = -1;
	struct stat sb;

	if (path == NULL)
		return 0;
	if (snprintf(tmp, sizeof tmp, "%s.partial", path) >= (int)sizeof tmp) {
		snprintf(err, errlen, "the path is too long");
		return -1;
	}
	if (sqlite3_open_v2(SQ(st)->path, &src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	    SQ(st)->vfs) != SQLITE_OK ||
	    sqlite3_exec(src, "PRAGMA query_only = 1", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", SQ(st)->path, src ? sqlite3_errmsg(src) : "cannot open");
		goto done;
	}
	sqlite3_busy_timeout(src, 5000);
	/* O_EXCL: never over a file that is there, a backup's or anyone's. */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", tmp, dst ? sqlite3_errmsg(dst) : "cannot open");
		goto done;
	}
	/* One step: every page as of one read transaction. */
	if ((b = sqlite3_backup_init(dst, "main", src, "main")) == NULL) {
		snprintf(err, errlen, "%s: %s", tmp, sqlite3_errmsg(dst));
		goto done;
	}
	int step = sqlite3_backup_step(b, -1);
	if (sqlite3_backup_finish(b) != SQLITE_OK || step != SQLITE_DONE) {
		snprintf(err, errlen, "%s: %s", tmp, sqlite3_errmsg(dst));
		goto done;
	}
	if (sqlite3_close(dst) != SQLITE_OK) {
		snprintf(err, errlen, "%s: could not close", tmp);
		goto done;
	}
	dst = NULL;
	/* On disk before its name appears (SQLite's commit synced it: then this costs nothing). */
	if (fsync(fd) != 0 || fstat(fd, &sb) != 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	if (link(tmp, path) != 0) {	/* unlike rename, never replaces */
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}
	*bytes = (int64_t)sb.st_size;
	rc = 0;
done:
	sqlite3_close(dst);
	sqlite3_close(src);
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	return rc;
}

/* One node's own: the data directory keeps what it would share. */
static int
sqlite_setting(struct store *st, const char *name, const char *fresh, char *out, size_t n)
{
	(void)st, (void)name, (void)fresh, (void)out, (void)n;
	return 0;
}

/* One node: its hub knows who is connected, and there is no one else to tell. */
static int
sqlite_presence_add(struct store *st, const char *user, int delta, int64_t now)
{
	(void)st, (void)user, (void)delta, (void)now;
	return 0;
}

static int
sqlite_presence(struct store *st, const char *user, int64_t now, json_t **out)
{
	(void)st, (void)user, (void)now, (void)out;
	return 0;
}

static int
sqlite_broadcast(struct store *st, int type, const char *user, json_t *data)
{
	(void)st, (void)type, (void)user, (void)data;
	return 0;
}

/* SQLite's part of every store function. */
const struct store_backend sqlite_backend = {
	.name = "sqlite",
	.close = sqlite_close,
	.ping = sqlite_ping,
	.check = sqlite_check,
	.explain = sqlite_explain,
	.backup = sqlite_backup,
	.counts = sqlite_counts,
	.stats = sqlite_stats,
	.user_exists = sqlite_user_exists,
	.user_get = sqlite_user_get,
	.user_put = sqlite_user_put,
	.notifications_create = sqlite_notifications_create,
	.notification_get = sqlite_notification_get,
	.notification_list = sqlite_notification_list,
	.notification_list_text = sqlite_notification_list_text,
	.notifications_mark = sqlite_notifications_mark,
	.notifications_read_all = sqlite_notifications_read_all,
	.notification_delete = sqlite_notification_delete,
	.notifications_after = sqlite_notifications_after,
	.last_id = sqlite_last_id,
	.unread_count = sqlite_unread_count,
	.notification_cancel = sqlite_notification_cancel,
	.prefs_get = sqlite_prefs_get,
	.recipients = sqlite_recipients,
	.prefs_update = sqlite_prefs_update,
	.deliveries_claim = sqlite_deliveries_claim,
	.deliveries_next = sqlite_deliveries_next,
	.deliveries_unclaim = sqlite_deliveries_unclaim,
	.delivery_finish = sqlite_delivery_finish,
	.delivery_notification = sqlite_delivery_notification,
	.deliveries_of = sqlite_deliveries_of,
	.digest_candidates = sqlite_digest_candidates,
	.digests_make = sqlite_digests_make,
	.digest_tally = sqlite_digest_tally,
	.digest_get = sqlite_digest_get,
	.topic_add = sqlite_topic_add,
	.topic_remove = sqlite_topic_remove,
	.topic_members = sqlite_topic_members,
	.push_subscribe = sqlite_push_subscribe,
	.push_list = sqlite_push_list,
	.push_get = sqlite_push_get,
	.push_remove = sqlite_push_remove,
	.push_result = sqlite_push_result,
	.webhook_add = sqlite_webhook_add,
	.webhook_list = sqlite_webhook_list,
	.webhook_get = sqlite_webhook_get,
	.webhook_remove = sqlite_webhook_remove,
	.webhook_result = sqlite_webhook_result,
	.key_create = sqlite_key_create,
	.key_lookup = sqlite_key_lookup,
	.key_touch = sqlite_key_touch,
	.key_list = sqlite_key_list,
	.key_revoke = sqlite_key_revoke,
	.mail_insert = sqlite_mail_insert,
	.mail_list = sqlite_mail_list,
	.mail_get = sqlite_mail_get,
	.mail_next = sqlite_mail_next,
	.mail_scan = sqlite_mail_scan,
	.mail_change = sqlite_mail_change,
	.setting = sqlite_setting,
	.size = sqlite_size,
	.presence_add = sqlite_presence_add,
	.presence = sqlite_presence,
	.broadcast = sqlite_broadcast,
};
