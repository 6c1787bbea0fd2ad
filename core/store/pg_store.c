/*
 * pg_store — the PostgreSQL store's machinery (pg_impl.h): the pool of
 * connections, statements with parameters, transactions, and the store
 * functions about the whole database.
 */
#define _GNU_SOURCE
#include "pg_impl.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "pg.h"
#include "util.h"

/* Parameters one statement takes at most. */
#define PG_PARAMS 24
/* Times a transaction is tried when PostgreSQL asks to try again. */
#define PG_TRIES 5

/* What a failed statement's SQLSTATE means to a caller. */
static enum store_error
error_class(const PGresult *r, PGconn *db)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (PQstatus(db) != CONNECTION_OK || state == NULL || strncmp(state, "08", 2) == 0 ||
	    strncmp(state, "57P", 3) == 0)
		return STORE_DOWN;	/* the server is gone or going: try again */
	if (strcmp(state, "53100") == 0)
		return STORE_FULL;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0)
		return STORE_BUSY;
	return STORE_FAILED;
}

/* Should the transaction that saw r be tried again? */
static bool
retryable(const PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	return state != NULL && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
}

/* The last failed result of this thread, for pg_tx() to tell whether to retry. */
static _Thread_local bool last_retryable;

/*
 * Has the server hung up on c since its last use (a restart, an idle
 * timeout)? Then it has said so on the socket, which poll() sees: an idle
 * connection has nothing else to read, so anything there means a new one.
 */
static bool
hung_up(struct pgc *c)
{
	struct pollfd pfd = {.fd = PQsocket(c->db), .events = POLLIN};
	return poll(&pfd, 1, 0) > 0;
}

static bool
connect_one(struct pg_store *ps, struct pgc *c)
{
	/* options first: a URL's own options replace them. */
	static const char *const keys[] = {"options", "dbname", "connect_timeout",
	    "application_name", NULL};
	const char *vals[] = {"-c client_min_messages=warning", ps->url, "5", "notifyd", NULL};
	if (c->db != NULL && PQstatus(c->db) == CONNECTION_OK && !hung_up(c))
		return true;
	c->nprepared = 0;	/* a new session has none */
	if (c->db != NULL) {
		PQreset(c->db);
		if (PQstatus(c->db) == CONNECTION_OK)
			return true;
		PQfinish(c->db);
	}
	c->db = PQconnectdbParams(keys, vals, 1);
	if (c->db != NULL && PQstatus(c->db) == CONNECTION_OK)
		return true;
	log_warn("cannot reach PostgreSQL", "error=%.*s",
	    (int)strcspn(c->db ? PQerrorMessage(c->db) : "out of memory", "\n"),
	    c->db ? PQerrorMessage(c->db) : "out of memory");
	return false;
}

struct pgc *
pgc_get(struct store *st)
{
	struct pg_store *ps = PG(st);
	struct pgc *c = NULL;
	for (int i = 0; i < PG_CONNS && c == NULL; i++) {
		struct pgc *t = &ps->c[(__atomic_fetch_add(&ps->next, 1, __ATOMIC_RELAXED)) %
		    PG_CONNS];
		if (pthread_mutex_trylock(&t->lock) == 0)
			c = t;
	}
	if (c == NULL) {
		c = &ps->c[__atomic_fetch_add(&ps->next, 1, __ATOMIC_RELAXED) % PG_CONNS];
		pthread_mutex_lock(&c->lock);
	}
	if (!connect_one(ps, c)) {
		store_error_last = STORE_DOWN;
		pthread_mutex_unlock(&c->lock);
		return NULL;
	}
	return c;
}

void
pgc_put(struct pgc *c)
{
	if (c != NULL)
		pthread_mutex_unlock(&c->lock);
}

static PGresult *
vrun(struct pgc *c, const char *what, const char *sql, const char *fmt, va_list ap)
{
	const char *vals[PG_PARAMS];
	int lens[PG_PARAMS] = {0}, formats[PG_PARAMS] = {0};
	char nums[PG_PARAMS][24], hex[PG_PARAMS > 4 ? 4 : PG_PARAMS][2 + 64 + 1];
	int n = 0, nh = 0;
	for (const char *f = fmt ? fmt : ""; *f != '\0' && n < PG_PARAMS; f++, n++) {
		switch (*f) {
		case 'B':	/* bytes as they are: a pointer and a size_t */
			vals[n] = va_arg(ap, const char *);
			lens[n] = (int)va_arg(ap, size_t);
			formats[n] = 1;
			break;
		case 't':
			vals[n] = va_arg(ap, const char *);
			break;
		case 'i':
			snprintf(nums[n], sizeof nums[n], "%lld", (long long)va_arg(ap, int64_t));
			vals[n] = nums[n];
			break;
		case 'b':
			vals[n] = va_arg(ap, int) ? "true" : "false";
			break;
		case 'h': {
			const unsigned char *h = va_arg(ap, const unsigned char *);
			char *x = hex[nh++ % 4];
			x[0] = '\\';
			x[1] = 'x';
			for (int i = 0; i < 32; i++)
				snprintf(x + 2 + 2 * i, 3, "%02x", h[i]);
			vals[n] = x;
			break;
		}
		default:
			log_error("bad parameter format", "what=%s format=%s", what, fmt);
			return NULL;
		}
	}
	/*
	 * Each statement is prepared once per connection, the first time it is
	 * run there: parsing and planning it each time cost the server about as
	 * much again. Statements are string literals, so the address names one.
	 */
	size_t k = 0;
	char name[24];
	while (k < c->nprepared && c->prepared[k] != sql)
		k++;
	snprintf(name, sizeof name, "p%zu", k);
	if (k == c->nprepared) {
		if (k == c->cap) {
			size_t cap = c->cap ? 2 * c->cap : 64;
			const char **p = realloc(c->prepared, cap * sizeof *p);
			if (p == NULL)
				return NULL;
			c->prepared = p;
			c->cap = cap;
		}
		PGresult *pr = PQprepare(c->db, name, sql, n, NULL);
		ExecStatusType ps = PQresultStatus(pr);
		if (ps != PGRES_COMMAND_OK) {
			store_error_last = error_class(pr, c->db);
			last_retryable = retryable(pr);
			const char *m = pr && *PQresultErrorMessage(pr) ? PQresultErrorMessage(pr) :
			    PQerrorMessage(c->db);
			log_error("PostgreSQL statement failed", "what=%s status=%s error=%.*s", what,
			    PQresStatus(ps), (int)strcspn(m, "\n"), m);
			PQclear(pr);
			return NULL;
		}
		PQclear(pr);
		c->prepared[c->nprepared++] = sql;
	}
	PGresult *r = PQexecPrepared(c->db, name, n, vals, lens, formats, 0);
	ExecStatusType s = PQresultStatus(r);
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return r;
	last_retryable = retryable(r);
	store_error_last = error_class(r, c->db);
	/* The result's words, else the connection's (a result may be none). */
	const char *m = r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r) :
	    PQerrorMessage(c->db);
	if (!last_retryable)
		log_error("PostgreSQL statement failed", "what=%s status=%s error=%.*s", what,
		    PQresStatus(PQresultStatus(r)), (int)strcspn(m, "\n"), m);
	PQclear(r);
	return NULL;
}

PGresult *
pg_run(struct pgc *c, const char *what, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	PGresult *r = vrun(c, what, sql, fmt, ap);
	va_end(ap);
	return r;
}

/* One statement on a connection of the pool. */
static PGresult *
vquery(struct store *st, const char *what, const char *sql, const char *fmt, va_list ap)
{
	struct pgc *c = pgc_get(st);
	if (c == NULL)
		return NULL;
	PGresult *r = vrun(c, what, sql, fmt, ap);
	pgc_put(c);
	return r;
}

PGresult *
pg_query(struct store *st, const char *what, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	PGresult *r = vquery(st, what, sql, fmt, ap);
	va_end(ap);
	return r;
}

PGresult *
pg_write(struct store *st, const char *what, const char *sql, const char *fmt, ...)
{
	for (int tries = 0; tries < PG_TRIES; tries++) {
		va_list ap;
		va_start(ap, fmt);
		last_retryable = false;
		PGresult *r = vquery(st, what, sql, fmt, ap);
		va_end(ap);
		if (r != NULL) {
			pthread_mutex_lock(&PG(st)->stats_lock);
			PG(st)->commits++;
			PG(st)->writes++;
			pthread_mutex_unlock(&PG(st)->stats_lock);
			return r;
		}
		if (!last_retryable)
			return NULL;
	}
	log_error("PostgreSQL transaction gave up", "what=%s tries=%d", what, PG_TRIES);
	return NULL;
}

int64_t
pg_exec(struct store *st, const char *what, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	PGresult *r = vquery(st, what, sql, fmt, ap);
	va_end(ap);
	return pg_changed(r);
}

int64_t
pg_changed(PGresult *r)
{
	if (r == NULL)
		return -1;
	int64_t n = atoll(PQcmdTuples(r));
	PQclear(r);
	return n;
}

/* Run a statement of transaction control: 0 or -1. */
static int
control(struct pgc *c, const char *sql)
{
	PGresult *r = pg_run(c, sql, sql, NULL);
	PQclear(r);
	return r ? 0 : -1;
}

int
pg_tx(struct store *st, int (*fn)(struct pgc *c, void *arg), void (*publish)(void *arg),
    void *arg)
{
	int rc = -1;
	for (int tries = 0; tries < PG_TRIES; tries++) {
		struct pgc *c = pgc_get(st);
		if (c == NULL)
			return -1;
		last_retryable = false;
		if (control(c, "BEGIN") != 0) {
			pgc_put(c);
			return -1;
		}
		rc = fn(c, arg);
		/* Its events go out with it, in its transaction (pg_relay.c). */
		json_t *internal = NULL;
		if (rc > 0 && publish != NULL &&
		    pg_tx_publish(c, st, publish, arg, &internal) != 0)
			rc = -1;
		if (rc > 0 && control(c, "COMMIT") == 0) {
			pgc_put(c);
			pthread_mutex_lock(&PG(st)->stats_lock);
			PG(st)->commits++;
			PG(st)->writes++;
			pthread_mutex_unlock(&PG(st)->stats_lock);
			/* What core's own parts act on, and the mailbox's, are told here. */
			for (size_t i = 0; i < json_array_size(internal); i++) {
				json_t *e = json_array_get(internal, i);
				events_emit((enum event_type)json_integer_value(json_object_get(e, "k")),
				    "", json_object_get(e, "d"));
			}
			json_decref(internal);
			return rc;
		}
		json_decref(internal);
		bool again = last_retryable;
		if (PQtransactionStatus(c->db) != PQTRANS_IDLE)
			control(c, "ROLLBACK");
		pgc_put(c);
		if (rc > 0)
			rc = -1;	/* the commit failed */
		if (!again)
			return rc;
	}
	log_error("PostgreSQL transaction gave up", "tries=%d", PG_TRIES);
	return -1;
}

void
pg_array_begin(struct buf *b)
{
	buf_putc(b, '{');
}

void
pg_array_add(struct buf *b, const char *v)
{
	if (b->len > 0 && b->data[b->len - 1] != '{')
		buf_putc(b, ',');
	if (v == NULL) {
		buf_puts(b, "NULL");
		return;
	}
	buf_putc(b, '"');
	for (const char *q; (q = strpbrk(v, "\"\\")) != NULL; v = q + 1) {
		buf_put(b, v, (size_t)(q - v));
		buf_putc(b, '\\');
		buf_putc(b, *q);
	}
	buf_puts(b, v);
	buf_putc(b, '"');
}

void
pg_array_add_int(struct buf *b, int64_t v)
{
	if (b->len > 0 && b->data[b->len - 1] != '{')
		buf_putc(b, ',');
	buf_put_int(b, v);
}

void
pg_array_end(struct buf *b)
{
	buf_putc(b, '}');
}

int64_t
pg_int(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

const char *
pg_str(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

json_t *
pg_text_json(const PGresult *r, int row, int col)
{
	const char *s = pg_str(r, row, col);
	return s ? json_string(s) : json_null();
}

json_t *
pg_time_json(const PGresult *r, int row, int col)
{
	char ts[40];
	if (PQgetisnull(r, row, col))
		return json_null();
	time_format_rfc3339(ts, sizeof ts, pg_int(r, row, col));
	return json_string(ts);
}

json_t *
pg_rows(const PGresult *r, json_t *(*make)(const PGresult *r, int row))
{
	json_t *a = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(a, make(r, i));
	return a;
}

int
pg_open(struct store **out, const char *url, const struct store_options *opt, char *err,
    size_t errlen)
{
	int version;
	if (pg_migrate(url, &version, err, errlen) != 0)
		return -1;
	struct pg_store *ps = calloc(1, sizeof *ps);
	if (ps == NULL || (ps->url = strdup(url)) == NULL) {
		free(ps);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ps->base.be = &pg_backend;
	ps->lease = opt->claim_lease > 0 ? opt->claim_lease : PG_LEASE;
	if ((ps->node = strdup(opt->node ? opt->node : "")) == NULL) {
		free(ps->url);
		free(ps);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&ps->stats_lock, NULL);
	for (int i = 0; i < PG_CONNS; i++)
		pthread_mutex_init(&ps->c[i].lock, NULL);
	/* What this node counted before a crash is gone with it. */
	if (pg_exec(&ps->base, "presence_clear", "DELETE FROM presence WHERE node = $1", "t",
	    ps->node) < 0) {
		pg_close(&ps->base);
		snprintf(err, errlen, "the store does not answer");
		return -1;
	}
	if ((ps->relay = pg_relay_start(&ps->base, url, ps->node)) == NULL) {
		pg_close(&ps->base);
		snprintf(err, errlen, "cannot start relaying events");
		return -1;
	}
	*out = &ps->base;
	return 1;
}

void
pg_close(struct store *st)
{
	struct pg_store *ps = PG(st);
	pg_relay_stop(ps->relay);
	if (ps->relay != NULL)	/* opened: this node's presence ends with it */
		pg_exec(st, "presence_clear", "DELETE FROM presence WHERE node = $1", "t", ps->node);
	for (int i = 0; i < PG_CONNS; i++) {
		PQfinish(ps->c[i].db);
		free(ps->c[i].prepared);
		pthread_mutex_destroy(&ps->c[i].lock);
	}
	pthread_mutex_destroy(&ps->stats_lock);
	free(ps->url);
	free(ps->node);
	free(ps);
}

int
pg_ping(struct store *st)
{
	PGresult *r = pg_query(st, "ping", "SELECT 1", NULL);
	PQclear(r);
	return r ? 1 : -1;
}

void
pg_stats(struct store *st, int64_t *commits, int64_t *writes)
{
	pthread_mutex_lock(&PG(st)->stats_lock);
	*commits = PG(st)->commits;
	*writes = PG(st)->writes;
	pthread_mutex_unlock(&PG(st)->stats_lock);
}

int
pg_counts(struct store *st, int64_t *users, int64_t *notifications, int64_t *mail)
{
	PGresult *r = pg_query(st, "counts", "SELECT (SELECT count(*) FROM users), "
	    "(SELECT count(*) FROM notifications), (SELECT count(*) FROM mail)", NULL);
	*users = *notifications = *mail = 0;
	if (r == NULL)
		return -1;
	*users = pg_int(r, 0, 0);
	*notifications = pg_int(r, 0, 1);
	*mail = pg_int(r, 0, 2);
	PQclear(r);
	return 1;
}

/* Users whose unread counter disagrees with their rows. */
#define UNREAD_CHECK "SELECT u.id, u.unread, (SELECT count(*) FROM notifications n " \
	"WHERE n.user_id = u.id AND n.read_at IS NULL AND n.archived_at IS NULL) AS actual " \
	"FROM users u"

/* A check's row (name, counter, actual) as {key,"counter","actual"}. */
static json_t *
mismatch(const PGresult *r, int row, const char *key)
{
	return json_pack("{s:o, s:I, s:I}", key, pg_text_json(r, row, 0), "counter",
	    (json_int_t)pg_int(r, row, 1), "actual", (json_int_t)pg_int(r, row, 2));
}

static json_t *
row_mismatch(const PGresult *r, int row)
{
	return mismatch(r, row, "user");
}

/* Topics whose kept size disagrees with their members. */
#define TOPIC_CHECK "SELECT coalesce(t.name, m.topic) AS topic, coalesce(t.members, 0) " \
	"AS counter, coalesce(m.n, 0) AS actual FROM topics t FULL JOIN (SELECT topic, " \
	"count(*) AS n FROM topic_members GROUP BY topic) m ON m.topic = t.name " \
	"WHERE coalesce(t.members, 0) != coalesce(m.n, 0)"

static json_t *
row_topic_mismatch(const PGresult *r, int row)
{
	return mismatch(r, row, "topic");
}

/* Run a repair statement; the rows it changed added to *fixed. */
static int
repair_run(struct pgc *c, const char *what, const char *sql, int64_t *fixed)
{
	PGresult *r = pg_run(c, what, sql, NULL);
	if (r == NULL)
		return -1;
	*fixed += atoll(PQcmdTuples(r));
	PQclear(r);
	return 1;
}

static int
repair_w(struct pgc *c, void *arg)
{
	int64_t *fixed = arg;
	*fixed = 0;
	if (repair_run(c, "repair", "UPDATE users u SET unread = m.actual FROM ("
	    UNREAD_CHECK ") m WHERE m.id = u.id AND m.unread != m.actual", fixed) < 0)
		return -1;
	/* A topic without members has no row; one with members has its size. */
	if (repair_run(c, "repair_topics", "DELETE FROM topics t WHERE NOT EXISTS "
	    "(SELECT 1 FROM topic_members m WHERE m.topic = t.name)", fixed) < 0)
		return -1;
	return repair_run(c, "repair_topics", "INSERT INTO topics (name, members) "
	    "SELECT topic, count(*) FROM topic_members GROUP BY topic "
	    "ON CONFLICT (name) DO UPDATE SET members = excluded.members "
	    "WHERE topics.members != excluded.members", fixed);
}

/*
 * PostgreSQL keeps its own pages whole (checksums, WAL): what a check can
 * see is the counters and the references, which foreign keys enforce.
 */
int
pg_check(struct store *st, bool full, bool repair, json_t **out)
{
	(void)full;
	PGresult *r = pg_query(st, "check", "SELECT * FROM (" UNREAD_CHECK ") m "
	    "WHERE unread != actual ORDER BY id", NULL);
	if (r == NULL)
		return -1;
	json_t *counts = pg_rows(r, row_mismatch);
	PQclear(r);
	r = pg_query(st, "check", TOPIC_CHECK " ORDER BY 1", NULL);
	if (r == NULL) {
		json_decref(counts);
		return -1;
	}
	json_t *topics = pg_rows(r, row_topic_mismatch);
	PQclear(r);
	size_t wrong = json_array_size(counts) + json_array_size(topics);
	int64_t repaired = 0;
	if (repair && wrong > 0 && pg_tx(st, repair_w, NULL, &repaired) < 0) {
		json_decref(counts);
		json_decref(topics);
		return -1;
	}
	bool ok = wrong == 0 || repaired > 0;
	*out = json_pack("{s:b, s:s, s:[], s:[], s:o, s:o, s:I}", "ok", ok, "integrity", "ok",
	    "integrity_errors", "foreign_key_errors", "unread_mismatches", counts,
	    "topic_mismatches", topics, "repaired", (json_int_t)repaired);
	return 1;
}

/* PostgreSQL's own tools back it up, consistently across the nodes: pg_dump. */
static int
pg_backup(struct store *st, const char *path, int64_t *bytes, char *err, size_t errlen)
{
	(void)st, (void)path, (void)bytes;
	snprintf(err, errlen, "the store is PostgreSQL: back it up with pg_dump "
	    "(or pg_basebackup)");
	return -2;
}

/* Plans are SQLite's (EXPLAIN QUERY PLAN); PostgreSQL's planner differs: none named. */
int
pg_explain(struct store *st, const char *which, char *out, size_t n)
{
	(void)st;
	(void)which;
	if (n > 0)
		*out = '\0';
	return 0;
}

/*
 * Made by the first node to ask. A node that waited on another's insert
 * finds nothing in its statement's snapshot: it asks once more.
 */
static int
pg_setting(struct store *st, const char *name, const char *fresh, char *out, size_t n)
{
	for (int tries = 0; tries < 2; tries++) {
		PGresult *r = pg_query(st, "setting", "WITH made AS (INSERT INTO settings (name, "
		    "value) VALUES ($1, convert_to($2, 'UTF8')) ON CONFLICT (name) DO NOTHING "
		    "RETURNING value) SELECT convert_from(value, 'UTF8') FROM made UNION ALL "
		    "SELECT convert_from(value, 'UTF8') FROM settings WHERE name = $1", "tt", name,
		    fresh);
		if (r == NULL)
			return -1;
		int found = PQntuples(r) > 0;
		if (found)
			snprintf(out, n, "%s", pg_str(r, 0, 0));
		PQclear(r);
		if (found)
			return 1;
	}
	log_error("a shared setting is missing", "name=%s", name);
	return -1;
}

static int
pg_size(struct store *st, char *where, size_t n, int64_t *bytes)
{
	PGresult *r = pg_query(st, "size", "SELECT current_database(), "
	    "pg_database_size(current_database())", NULL);
	*bytes = 0;
	if (r == NULL)
		return -1;
	snprintf(where, n, "PostgreSQL database %s", pg_str(r, 0, 0));
	*bytes = pg_int(r, 0, 1);
	PQclear(r);
	return 1;
}

/* This node's connections per user, kept alive by heartbeats (sql/pg/002). */
static int
pg_presence_add(struct store *st, const char *user, int delta, int64_t now)
{
	if (user == NULL)
		return pg_exec(st, "presence_beat", "UPDATE presence SET seen_at = $2 "
		    "WHERE node = $1", "ti", PG(st)->node, now) < 0 ? -1 : 1;
	if (pg_exec(st, "presence_add", "INSERT INTO presence (node, user_id, conns, seen_at) "
	    "VALUES ($1, $2, $3, $4) ON CONFLICT (node, user_id) DO UPDATE SET "
	    "conns = presence.conns + $3, seen_at = $4", "ttii", PG(st)->node, user,
	    (int64_t)delta, now) < 0)
		return -1;
	return delta >= 0 || pg_exec(st, "presence_gone", "DELETE FROM presence WHERE node = $1 "
	    "AND user_id = $2 AND conns <= 0", "tt", PG(st)->node, user) >= 0 ? 1 : -1;
}

static int
pg_presence(struct store *st, const char *user, int64_t now, json_t **out)
{
	PGresult *r = pg_query(st, "presence", "SELECT user_id, sum(conns) FROM presence "
	    "WHERE seen_at > $1 AND ($2::text IS NULL OR user_id = $2) AND conns > 0 "
	    "GROUP BY user_id ORDER BY user_id COLLATE \"C\"", "it",
	    now - (int64_t)PRESENCE_TTL, user);
	if (r == NULL)
		return -1;
	json_t *users = json_object();
	for (int i = 0; i < PQntuples(r); i++)
		json_object_set_new(users, pg_str(r, i, 0), json_integer(pg_int(r, i, 1)));
	PQclear(r);
	*out = json_pack("{s:o}", "users", users);
	return 1;
}

/* PostgreSQL's part of every store function. */
const struct store_backend pg_backend = {
	.name = "postgresql",
	.close = pg_close,
	.ping = pg_ping,
	.check = pg_check,
	.explain = pg_explain,
	.backup = pg_backup,
	.counts = pg_counts,
	.stats = pg_stats,
	.user_exists = pg_user_exists,
	.user_get = pg_user_get,
	.user_put = pg_user_put,
	.notifications_create = pg_notifications_create,
	.notification_get = pg_notification_get,
	.notification_list = pg_notification_list,
	.notification_list_text = pg_notification_list_text,
	.notifications_mark = pg_notifications_mark,
	.notifications_read_all = pg_notifications_read_all,
	.notification_delete = pg_notification_delete,
	.notifications_after = pg_notifications_after,
	.last_id = pg_last_id,
	.unread_count = pg_unread_count,
	.notification_cancel = pg_notification_cancel,
	.prefs_get = pg_prefs_get,
	.recipients = pg_recipients,
	.prefs_update = pg_prefs_update,
	.deliveries_claim = pg_deliveries_claim,
	.deliveries_next = pg_deliveries_next,
	.deliveries_unclaim = pg_deliveries_unclaim,
	.delivery_finish = pg_delivery_finish,
	.delivery_notification = pg_delivery_notification,
	.deliveries_of = pg_deliveries_of,
	.digest_candidates = pg_digest_candidates,
	.digests_make = pg_digests_make,
	.digest_tally = pg_digest_tally,
	.digest_get = pg_digest_get,
	.topic_add = pg_topic_add,
	.topic_remove = pg_topic_remove,
	.topic_members = pg_topic_members,
	.push_subscribe = pg_push_subscribe,
	.push_list = pg_push_list,
	.push_get = pg_push_get,
	.push_remove = pg_push_remove,
	.push_result = pg_push_result,
	.webhook_add = pg_webhook_add,
	.webhook_list = pg_webhook_list,
	.webhook_get = pg_webhook_get,
	.webhook_remove = pg_webhook_remove,
	.webhook_result = pg_webhook_result,
	.key_create = pg_key_create,
	.key_lookup = pg_key_lookup,
	.key_touch = pg_key_touch,
	.key_list = pg_key_list,
	.key_revoke = pg_key_revoke,
	.mail_insert = pg_mail_insert,
	.mail_list = pg_mail_list,
	.mail_get = pg_mail_get,
	.mail_next = pg_mail_next,
	.mail_scan = pg_mail_scan,
	.mail_change = pg_mail_change,
	.setting = pg_setting,
	.size = pg_size,
	.presence_add = pg_presence_add,
	.presence = pg_presence,
	.broadcast = pg_broadcast,
};
