/*
 * pg_store — the PostgreSQL store's machinery (pg_impl.h): the pool of
 * connections, statements with parameters, transactions, and the store
 * functions about the whole database.
 */
#define _GNU_SOURCE
#include "pg_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg.h"
#include "util.h"

/* Parameters one statement takes at most. */
#define PG_PARAMS 20
/* Times a transaction is tried when PostgreSQL asks to try again. */
#define PG_TRIES 5

/* What a failed statement's SQLSTATE means to a caller. */
static enum store_error
error_class(const PGresult *r, PGconn *db)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (PQstatus(db) != CONNECTION_OK || state == NULL || strncmp(state, "08", 2) == 0 ||
	    strncmp(state, "57P", 3) == 0)
		return STORE_BUSY;	/* the server is gone or going: try again */
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

static bool
connect_one(struct pg_store *ps, struct pgc *c)
{
	/* options first: a URL's own options replace them. */
	static const char *const keys[] = {"options", "dbname", "connect_timeout",
	    "application_name", NULL};
	const char *vals[] = {"-c client_min_messages=warning", ps->url, "5", "notifyd", NULL};
	if (c->db != NULL && PQstatus(c->db) == CONNECTION_OK)
		return true;
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
		store_error_last = STORE_BUSY;
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
	char nums[PG_PARAMS][24], hex[PG_PARAMS > 4 ? 4 : PG_PARAMS][2 + 64 + 1];
	int n = 0, nh = 0;
	for (const char *f = fmt ? fmt : ""; *f != '\0' && n < PG_PARAMS; f++, n++) {
		switch (*f) {
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
	PGresult *r = PQexecParams(c->db, sql, n, NULL, vals, NULL, NULL, 0);
	ExecStatusType s = PQresultStatus(r);
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return r;
	last_retryable = retryable(r);
	store_error_last = error_class(r, c->db);
	if (!last_retryable)
		log_error("PostgreSQL statement failed", "what=%s error=%.*s", what,
		    (int)strcspn(PQerrorMessage(c->db), "\n"), PQerrorMessage(c->db));
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

PGresult *
pg_query(struct store *st, const char *what, const char *sql, const char *fmt, ...)
{
	struct pgc *c = pgc_get(st);
	if (c == NULL)
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	PGresult *r = vrun(c, what, sql, fmt, ap);
	va_end(ap);
	pgc_put(c);
	return r;
}

int64_t
pg_exec(struct store *st, const char *what, const char *sql, const char *fmt, ...)
{
	struct pgc *c = pgc_get(st);
	if (c == NULL)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	PGresult *r = vrun(c, what, sql, fmt, ap);
	va_end(ap);
	pgc_put(c);
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
		if (rc > 0 && control(c, "COMMIT") == 0) {
			pgc_put(c);
			pthread_mutex_lock(&PG(st)->stats_lock);
			PG(st)->commits++;
			PG(st)->writes++;
			pthread_mutex_unlock(&PG(st)->stats_lock);
			if (publish != NULL)
				publish(arg);
			return rc;
		}
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
	(void)opt;
	if (pg_migrate(url, &version, err, errlen) != 0)
		return -1;
	struct pg_store *ps = calloc(1, sizeof *ps);
	if (ps == NULL || (ps->url = strdup(url)) == NULL) {
		free(ps);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ps->base.be = &pg_backend;
	pthread_mutex_init(&ps->stats_lock, NULL);
	for (int i = 0; i < PG_CONNS; i++)
		pthread_mutex_init(&ps->c[i].lock, NULL);
	*out = &ps->base;
	return 1;
}

void
pg_close(struct store *st)
{
	struct pg_store *ps = PG(st);
	for (int i = 0; i < PG_CONNS; i++) {
		PQfinish(ps->c[i].db);
		pthread_mutex_destroy(&ps->c[i].lock);
	}
	pthread_mutex_destroy(&ps->stats_lock);
	free(ps->url);
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

static json_t *
row_mismatch(const PGresult *r, int row)
{
	return json_pack("{s:o, s:I, s:I}", "user", pg_text_json(r, row, 0), "counter",
	    (json_int_t)pg_int(r, row, 1), "actual", (json_int_t)pg_int(r, row, 2));
}

static int
repair_w(struct pgc *c, void *arg)
{
	int64_t *fixed = arg;
	PGresult *r = pg_run(c, "repair", "UPDATE users u SET unread = m.actual FROM ("
	    UNREAD_CHECK ") m WHERE m.id = u.id AND m.unread != m.actual", NULL);
	if (r == NULL)
		return -1;
	*fixed = atoll(PQcmdTuples(r));
	PQclear(r);
	return 1;
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
	int64_t repaired = 0;
	if (repair && json_array_size(counts) > 0 && pg_tx(st, repair_w, NULL, &repaired) < 0) {
		json_decref(counts);
		return -1;
	}
	bool ok = json_array_size(counts) == 0 || repaired > 0;
	*out = json_pack("{s:b, s:s, s:[], s:[], s:o, s:I}", "ok", ok, "integrity", "ok",
	    "integrity_errors", "foreign_key_errors", "unread_mismatches", counts,
	    "repaired", (json_int_t)repaired);
	return 1;
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
 * Not on PostgreSQL yet (issue 21): the outbox, digests and the mailbox.
 * notifyd does not start with [store] url set until they are; until then
 * each says so and fails.
 */
static int
later(const char *what)
{
	log_error("not on PostgreSQL yet", "what=%s", what);
	store_error_last = STORE_FAILED;
	return -1;
}

static int
pg_deliveries_claim(struct store *st, int64_t now, struct delivery *out, size_t max, size_t *n)
{
	(void)st, (void)now, (void)out, (void)max;
	*n = 0;
	return later("deliveries_claim");
}

static int
pg_deliveries_next(struct store *st, int64_t *at)
{
	(void)st;
	*at = 0;
	return later("deliveries_next");
}

static int
pg_deliveries_unclaim(struct store *st)
{
	(void)st;
	return later("deliveries_unclaim");
}

static int
pg_delivery_finish(struct store *st, int64_t id, enum delivery_status status, int64_t next_at,
    const char *error, int64_t now)
{
	(void)st, (void)id, (void)status, (void)next_at, (void)error, (void)now;
	return later("delivery_finish");
}

static int
pg_delivery_notification(struct store *st, int64_t delivery, json_t **out)
{
	(void)st, (void)delivery, (void)out;
	return later("delivery_notification");
}

static int
pg_deliveries_of(struct store *st, int64_t id, json_t **out)
{
	(void)st, (void)id, (void)out;
	return later("deliveries_of");
}

static int
pg_digest_candidates(struct store *st, enum digest_mode period, const char *user, json_t **out)
{
	(void)st, (void)period, (void)user, (void)out;
	return later("digest_candidates");
}

static void
pg_digests_make(struct store *st, const struct digest_new *in, size_t n, int64_t now,
    struct digest_made *out, int *rcs)
{
	(void)st, (void)in, (void)now, (void)out;
	for (size_t i = 0; i < n; i++)
		rcs[i] = later("digests_make");
}

static int
pg_digest_tally(struct store *st, const char *user, int64_t cutoff, int64_t *unread,
    int64_t *read)
{
	(void)st, (void)user, (void)cutoff;
	*unread = *read = 0;
	return later("digest_tally");
}

static int
pg_digest_get(struct store *st, int64_t id, bool include_read, int limit, json_t **out)
{
	(void)st, (void)id, (void)include_read, (void)limit, (void)out;
	return later("digest_get");
}

static void
pg_mail_insert(struct store *st, const struct mail_new *m, int n, int *rcs)
{
	(void)st, (void)m;
	for (int i = 0; i < n; i++)
		rcs[i] = later("mail_insert");
}

static int
pg_mail_list(struct store *st, int64_t start, int64_t limit, const char *like, json_t **out)
{
	(void)st, (void)start, (void)limit, (void)like, (void)out;
	return later("mail_list");
}

static int
pg_mail_get(struct store *st, const char *uid, struct mail_got *m)
{
	(void)st, (void)uid, (void)m;
	return later("mail_get");
}

static int
pg_mail_next(struct store *st, int64_t after_seq, const char *like, json_t **summary,
    int64_t *seq)
{
	(void)st, (void)after_seq, (void)like, (void)summary, (void)seq;
	return later("mail_next");
}

static int
pg_mail_scan(struct store *st, int64_t after_seq, int (*fn)(void *arg, json_t *summary,
    const char *search, int64_t seq), void *arg)
{
	(void)st, (void)after_seq, (void)fn, (void)arg;
	return later("mail_scan");
}

static int
pg_mail_change(struct store *st, json_t *uids, int read, int64_t *changed)
{
	(void)st, (void)uids, (void)read;
	*changed = 0;
	return later("mail_change");
}

/* PostgreSQL's part of every store function. */
const struct store_backend pg_backend = {
	.name = "postgresql",
	.close = pg_close,
	.ping = pg_ping,
	.check = pg_check,
	.explain = pg_explain,
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
	.recipient = pg_recipient,
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
};
