/*
 * pg_mailbox — the mail the SMTP sink captured, on PostgreSQL: mail taken
 * in by any node is in the one database every node reads.
 */
#define _GNU_SOURCE
#include "pg_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "util.h"

/* Retention is applied on every PRUNE_EVERY-th message stored (as mailbox.c). */
#define PRUNE_EVERY 64
/* The advisory lock retention runs under: "mailprun" in ASCII. */
#define PRUNE_LOCK "7881696737339012462"

#define MCOLS "uid, received_at, size, read, summary"

/* A summary object of columns MCOLS: the parsed summary plus ID, Read, Created, Size. */
static json_t *
row_summary(const PGresult *r, int row)
{
	const char *sum = pg_str(r, row, 4);
	json_t *o = sum ? json_loads(sum, 0, NULL) : NULL;
	if (o == NULL)
		o = json_object();
	json_object_set_new(o, "ID", pg_text_json(r, row, 0));
	json_object_set_new(o, "Read", json_boolean(strcmp(pg_str(r, row, 3), "t") == 0));
	json_object_set_new(o, "Created", pg_time_json(r, row, 1));
	json_object_set_new(o, "Size", json_integer(pg_int(r, row, 2)));
	return o;
}

struct mail_put {
	const struct mail_new	*m;
	int64_t			 unpruned;	/* the store's count of bytes since retention */
	json_t			*summary;	/* out: the stored summary object */
	int64_t			 pruned;	/* out: old messages retention deleted */
};

static int
mail_insert_w(struct pgc *c, void *arg)
{
	struct mail_put *p = arg;
	const struct mail_new *m = p->m;
	PGresult *r = pg_run(c, "mail_insert", "INSERT INTO mail (uid, received_at, mail_from, "
	    "rcpt_to, size, summary, search, raw) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
	    "RETURNING id", "tittittB", m->uid, m->received_at,
	    m->from, m->rcpt_json, (int64_t)m->len, m->summary_json, m->search, m->raw, m->len);
	if (r == NULL)
		return -1;
	int64_t id = pg_int(r, 0, 0);
	PQclear(r);
	/* Retention as mailbox.c applies it: every PRUNE_EVERY-th, or sooner for big ones. */
	p->pruned = 0;
	if (id % PRUNE_EVERY != 0 && (m->keep_bytes == 0 || p->unpruned < m->keep_bytes / 16))
		return 1;
	const struct {
		const char	*sql;
		int64_t		 limit;
	} rules[] = {
		/* The oldest past the newest $1 bytes; never the newest. */
		{"DELETE FROM mail WHERE id IN (SELECT id FROM (SELECT id, size, sum(size) OVER "
		    "(ORDER BY received_at DESC, id DESC) AS kept FROM mail) x "
		    "WHERE kept > $1 AND kept > size)", m->keep_bytes},
		{"DELETE FROM mail WHERE id <= (SELECT id FROM mail ORDER BY received_at DESC, "
		    "id DESC LIMIT 1 OFFSET $1)", m->keep},
		{"DELETE FROM mail WHERE received_at < $1", m->older_than},
	};
	/* One node at a time: another that is pruning now does it for all. */
	if ((r = pg_run(c, "mail_prune_lock", "SELECT pg_try_advisory_xact_lock(" PRUNE_LOCK
	    ")", NULL)) == NULL)
		return -1;
	bool mine = strcmp(pg_str(r, 0, 0), "t") == 0;
	PQclear(r);
	for (size_t i = 0; mine && i < sizeof rules / sizeof rules[0]; i++) {
		if (rules[i].limit <= 0)
			continue;
		int64_t n = pg_changed(pg_run(c, "mail_prune", rules[i].sql, "i", rules[i].limit));
		if (n < 0)
			return -1;
		p->pruned += n;
	}
	p->unpruned = -1;	/* the store's count starts again */
	return 1;
}

static void
mail_insert_publish(void *arg)
{
	struct mail_put *p = arg;
	char ts[40];
	json_decref(p->summary);	/* a transaction tried again publishes again */
	json_t *o = json_copy(p->m->summary);
	if (o == NULL)
		o = json_object();
	time_format_rfc3339(ts, sizeof ts, p->m->received_at);
	json_object_set_new(o, "ID", json_string(p->m->uid));
	json_object_set_new(o, "Read", json_false());
	json_object_set_new(o, "Created", json_string(ts));
	json_object_set_new(o, "Size", json_integer((json_int_t)p->m->len));
	p->summary = o;
	events_emit(EVENT_MAIL, "", o);
	if (p->pruned > 0) {
		json_t *d = json_pack("{s:I}", "deleted", (json_int_t)p->pruned);
		events_emit(EVENT_MAIL_PRUNED, "", d);
		json_decref(d);
	}
}

/* Each message in a transaction of its own. */
void
pg_mail_insert(struct store *st, const struct mail_new *m, int n, int *rcs)
{
	for (int i = 0; i < n; i++) {
		int64_t unpruned = __atomic_add_fetch(&PG(st)->mail_unpruned, (int64_t)m[i].len,
		    __ATOMIC_RELAXED);
		struct mail_put p = {&m[i], unpruned, NULL, 0};
		rcs[i] = pg_tx(st, mail_insert_w, mail_insert_publish, &p);
		if (rcs[i] > 0 && p.unpruned < 0)
			__atomic_store_n(&PG(st)->mail_unpruned, 0, __ATOMIC_RELAXED);
		json_decref(p.summary);
	}
}

int
pg_mail_list(struct store *st, int64_t start, int64_t limit, const char *like, json_t **out)
{
	struct pgc *c = pgc_get(st);
	if (c == NULL)
		return -1;
	int rc = -1;
	PGresult *counts = NULL, *page = NULL;
	/* The counts and the page from one snapshot. */
	if (pg_changed(pg_run(c, "mail_list_begin", "BEGIN ISOLATION LEVEL REPEATABLE READ "
	    "READ ONLY", NULL)) < 0 ||
	    (counts = pg_run(c, "mail_counts", "SELECT count(*), count(*) FILTER (WHERE NOT read) "
	    "FROM mail", NULL)) == NULL ||
	    (page = pg_run(c, "mail_page", "SELECT " MCOLS " FROM mail WHERE ($3::text IS NULL "
	    "OR search LIKE $3 ESCAPE '\\') ORDER BY id DESC LIMIT $2 OFFSET $1", "iit", start,
	    limit, like)) == NULL)
		goto done;
	*out = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)pg_int(counts, 0, 0),
	    "unread", (json_int_t)pg_int(counts, 0, 1), "start", (json_int_t)start,
	    "messages", pg_rows(page, row_summary));
	rc = 1;
done:
	PQclear(counts);
	PQclear(page);
	if (PQtransactionStatus(c->db) != PQTRANS_IDLE)
		PQclear(PQexec(c->db, "ROLLBACK"));
	pgc_put(c);
	return rc;
}

int
pg_mail_get(struct store *st, const char *uid, struct mail_got *m)
{
	bool latest = strcmp(uid, "latest") == 0;
	m->summary = NULL;
	m->raw = NULL;
	PGresult *r = latest ? pg_query(st, "mail_get", "SELECT " MCOLS ", raw, id FROM mail "
	    "ORDER BY id DESC LIMIT 1", NULL) : pg_query(st, "mail_get", "SELECT " MCOLS
	    ", raw, id FROM mail WHERE uid = $1", "t", uid);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	size_t len = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 5), &len);
	if (raw != NULL && (m->raw = malloc(len + 1)) != NULL) {
		memcpy(m->raw, raw, len);
		m->raw[len] = '\0';
		m->len = len;
		m->seq = pg_int(r, 0, 6);
		m->summary = row_summary(r, 0);
	}
	PQfreemem(raw);
	PQclear(r);
	return m->raw ? 1 : -1;
}

/*
 * The first message after after_seq in id order. Ids come from a sequence
 * and can commit out of order across nodes; a follower that must miss
 * none is issue 21's cross-node work, not done yet.
 */
int
pg_mail_next(struct store *st, int64_t after_seq, const char *like, json_t **summary,
    int64_t *seq)
{
	PGresult *r = pg_query(st, "mail_next", "SELECT " MCOLS ", id FROM mail WHERE id > $1 "
	    "AND ($2::text IS NULL OR search LIKE $2 ESCAPE '\\') ORDER BY id LIMIT 1", "it",
	    after_seq, like);
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) > 0;
	if (rc) {
		*summary = row_summary(r, 0);
		*seq = pg_int(r, 0, 5);
	}
	PQclear(r);
	return rc;
}

int
pg_mail_scan(struct store *st, int64_t after_seq, int (*fn)(void *arg, json_t *summary,
    const char *search, int64_t seq), void *arg)
{
	PGresult *r = pg_query(st, "mail_scan", "SELECT " MCOLS ", search, id FROM mail "
	    "WHERE id > $1 ORDER BY id DESC", "i", after_seq);
	if (r == NULL)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		json_t *sum = row_summary(r, i);
		const char *search = pg_str(r, i, 5);
		int stop = fn(arg, sum, search ? search : "", pg_int(r, i, 6));
		json_decref(sum);
		if (stop)
			break;
	}
	PQclear(r);
	return 1;
}

struct mail_change {
	json_t		*uids;		/* NULL: all */
	int		 read;		/* -1: delete */
	int64_t		 changed;
};

static int
mail_change_w(struct pgc *c, void *arg)
{
	struct mail_change *p = arg;
	size_t i;
	json_t *v;
	int64_t n;
	p->changed = 0;
	if (p->uids == NULL) {
		n = p->read < 0 ? pg_changed(pg_run(c, "mail_delete_all", "DELETE FROM mail", NULL)) :
		    pg_changed(pg_run(c, "mail_read_all", "UPDATE mail SET read = $1", "b", p->read));
		if (n < 0)
			return -1;
		p->changed = n;
		return 1;
	}
	json_array_foreach(p->uids, i, v) {
		n = p->read < 0 ? pg_changed(pg_run(c, "mail_delete", "DELETE FROM mail "
		    "WHERE uid = $1", "t", json_string_value(v))) : pg_changed(pg_run(c,
		    "mail_read", "UPDATE mail SET read = $2 WHERE uid = $1", "tb",
		    json_string_value(v), p->read));
		if (n < 0)
			return -1;
		p->changed += n;
	}
	return 1;
}

static void
mail_change_publish(void *arg)
{
	struct mail_change *p = arg;
	if (p->read < 0 && p->changed > 0) {
		json_t *d = json_pack("{s:O?, s:I}", "IDs", p->uids, "count", (json_int_t)p->changed);
		events_emit(p->uids ? EVENT_MAIL_DELETED : EVENT_MAIL_TRUNCATED, "", d);
		json_decref(d);
	}
}

int
pg_mail_change(struct store *st, json_t *uids, int read, int64_t *changed)
{
	struct mail_change p = {uids, read, 0};
	int rc = pg_tx(st, mail_change_w, mail_change_publish, &p);
	*changed = p.changed;
	return rc;
}
