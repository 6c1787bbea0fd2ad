/*
 * pg_notifications — notifications and each user's unread count, on
 * PostgreSQL. The same rows and answers as notifications.c; where the two
 * databases differ the comments say how.
 *
 * Replay order: every write that makes notifications for a user first
 * locks that user's row (the upsert that keeps the counter) and only then
 * draws ids from the sequence, so one user's ids are drawn in the order
 * their transactions commit and since=ID never skips one that commits
 * later. A send to several users locks them in id order first, so two
 * such sends cannot deadlock.
 */
#define _GNU_SOURCE
#include "pg_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "util.h"

json_t *
pg_row_notification(const PGresult *r, int row)
{
	json_t *data = NULL;
	const char *d = pg_str(r, row, 7);
	if (d != NULL)
		data = json_loads(d, JSON_DECODE_ANY, NULL);
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(pg_int(r, row, 0)));
	json_object_set_new(o, "user", pg_text_json(r, row, 1));
	json_object_set_new(o, "type", pg_text_json(r, row, 2));
	json_object_set_new(o, "category", pg_text_json(r, row, 3));
	json_object_set_new(o, "priority", pg_text_json(r, row, 4));
	json_object_set_new(o, "title", pg_text_json(r, row, 5));
	json_object_set_new(o, "body", pg_text_json(r, row, 6));
	json_object_set_new(o, "data", data ? data : json_null());
	json_object_set_new(o, "url", pg_text_json(r, row, 8));
	json_object_set_new(o, "created_at", pg_time_json(r, row, 9));
	json_object_set_new(o, "read_at", pg_time_json(r, row, 10));
	json_object_set_new(o, "archived_at", pg_time_json(r, row, 11));
	if (!PQgetisnull(r, row, 12))
		json_object_set_new(o, "deliver_at", pg_time_json(r, row, 12));
	if (!PQgetisnull(r, row, 13))
		json_object_set_new(o, "scheduled_id", json_integer(pg_int(r, row, 13)));
	return o;
}

int
pg_first(PGresult *r, json_t *(*make)(const PGresult *r, int row), json_t **out)
{
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) > 0;
	if (rc)
		*out = make(r, 0);
	PQclear(r);
	return rc;
}

int
pg_one(PGresult *r, json_t **out)
{
	return pg_first(r, pg_row_notification, out);
}

int
pg_user_lock(struct pgc *c, const char *user, int64_t now, int64_t delta, int64_t *count)
{
	PGresult *r = pg_run(c, "user_lock", "INSERT INTO users (id, created_at, unread) "
	    "VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET unread = users.unread + $3 "
	    "RETURNING unread", "tii", user, now, delta);
	if (r == NULL)
		return -1;
	if (count != NULL)
		*count = pg_int(r, 0, 0);
	PQclear(r);
	return 0;
}

int
pg_unread_add(struct pgc *c, const char *user, int64_t delta, int64_t *count)
{
	PGresult *r = pg_run(c, "unread_add", "UPDATE users SET unread = unread + $2 "
	    "WHERE id = $1 RETURNING unread", "ti", user, delta);
	if (r == NULL)
		return -1;
	*count = PQntuples(r) ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	return 0;
}

int
pg_delivery_insert(struct pgc *c, int64_t nid, unsigned ch, const struct routing *rt, int64_t now)
{
	char next[24], sent[24];
	bool waits = rt->status == DS_PENDING || rt->status == DS_DEFERRED;
	snprintf(next, sizeof next, "%lld", (long long)rt->next_at);
	snprintf(sent, sizeof sent, "%lld", (long long)now);
	return pg_changed(pg_run(c, "delivery_insert", "INSERT INTO deliveries (notification_id, "
	    "channel, status, next_attempt_at, last_error, created_at, updated_at, sent_at) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $6, $7)", "ittttit", nid,
	    prefs_channel_name(ch), delivery_status_name(rt->status),
	    waits ? next : NULL, rt->why, now, rt->status == DS_SENT ? sent : NULL)) < 0 ? -1 : 0;
}

/* Text of v for a parameter (buf: room for 24), or NULL when v is 0. */
static const char *
opt_int(char *buf, int64_t v)
{
	if (v == 0)
		return NULL;
	snprintf(buf, 24, "%lld", (long long)v);
	return buf;
}

static int
schedule_one(struct pgc *c, const struct notification_new *in, const struct routing *ia,
    const struct routing *em, int64_t now, json_t **out, int64_t *id, bool *created,
    bool *outbox)
{
	int rc;
	if (in->key != NULL && (rc = pg_one(pg_run(c, "notification_by_key", "SELECT " PG_NCOLS
	    " FROM notifications WHERE user_id = $1 AND dedupe_key = $2", "tt", in->user,
	    in->key), out)) != 0)
		return rc;
	char next[24];
	const char *email = NULL, *email_why = NULL;
	if (in->routed) {
		email = delivery_status_name(em->status);
		email_why = em->status == DS_SKIPPED && em->why == NULL ? "skipped" : em->why;
	}
	PGresult *r = pg_run(c, "scheduled_insert", "INSERT INTO scheduled (user_id, type, "
	    "category, priority, title, body, data, action_url, dedupe_key, created_at, "
	    "deliver_at, in_app, in_app_why, email, email_next_at, email_why) VALUES ($1, $2, $3, "
	    "coalesce($4, 'normal'), $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) "
	    "ON CONFLICT (user_id, dedupe_key) DO NOTHING RETURNING id", "tttttttttiitttt" "t",
	    in->user, in->type, in->category, in->priority, in->title, in->body, in->data,
	    in->url, in->key, now, in->deliver_at, ia->status == DS_SKIPPED ? "skipped" : "sent",
	    ia->status == DS_SKIPPED ? ia->why : NULL, email,
	    in->routed && (em->status == DS_PENDING || em->status == DS_DEFERRED) ?
	    opt_int(next, em->next_at) : NULL, email_why);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		*id = pg_int(r, 0, 0);
		*created = true;
		*outbox = true;
		PQclear(r);
		return 1;
	}
	PQclear(r);
	rc = pg_one(pg_run(c, "scheduled_by_key", "SELECT " PG_SCOLS " FROM scheduled "
	    "WHERE user_id = $1 AND dedupe_key = $2", "tt", in->user, in->key), out);
	return rc > 0 ? 1 : -1;
}

static int
create_one(struct pgc *c, const struct notification_new *in, int64_t now, json_t **out,
    int64_t *id, bool *created, bool *hidden, int64_t *count, bool *outbox)
{
	struct routing ia = {DS_SENT, 0, NULL}, em = {DS_SKIPPED, 0, NULL};
	if (in->routed) {
		ia = in->in_app;
		em = in->email;
	}
	*hidden = ia.status == DS_SKIPPED;
	int rc;
	/* The user's row first, locked: ids of one user are drawn in commit order. */
	if (pg_user_lock(c, in->user, now, 0, NULL) < 0)
		return -1;
	if (in->deliver_at > now)
		return schedule_one(c, in, &ia, &em, now, out, id, created, outbox);
	if (in->key != NULL && (rc = pg_one(pg_run(c, "scheduled_by_key", "SELECT " PG_SCOLS
	    " FROM scheduled WHERE user_id = $1 AND dedupe_key = $2", "tt", in->user, in->key),
	    out)) != 0)
		return rc;
	char deliver[24], archived[24];
	PGresult *r = pg_run(c, "notification_insert", "INSERT INTO notifications (user_id, "
	    "type, category, priority, title, body, data, action_url, dedupe_key, created_at, "
	    "deliver_at, archived_at, email_skipped) VALUES ($1, $2, $3, coalesce($4, 'normal'), "
	    "$5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (user_id, dedupe_key) "
	    "WHERE dedupe_key IS NOT NULL DO NOTHING RETURNING id", "tttttttttittt", in->user,
	    in->type, in->category, in->priority, in->title, in->body, in->data, in->url, in->key,
	    now, opt_int(deliver, in->deliver_at), *hidden ? opt_int(archived, now) : NULL,
	    in->routed && em.status == DS_SKIPPED ? (em.why ? em.why : "skipped") : NULL);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		/* The key was taken: hand back what it names. */
		rc = pg_one(pg_run(c, "notification_by_key", "SELECT " PG_NCOLS " FROM notifications "
		    "WHERE user_id = $1 AND dedupe_key = $2", "tt", in->user, in->key), out);
		return rc > 0 ? 1 : -1;
	}
	*id = pg_int(r, 0, 0);
	PQclear(r);
	*created = true;
	if (!*hidden && pg_unread_add(c, in->user, 1, count) < 0)
		return -1;
	if (in->routed && (em.status == DS_PENDING || em.status == DS_DEFERRED))
		*outbox = true;
	if (in->routed && ((ia.status != DS_SENT &&
	    pg_delivery_insert(c, *id, CHANNEL_IN_APP, &ia, now) != 0) ||
	    (em.status != DS_SKIPPED && pg_delivery_insert(c, *id, CHANNEL_EMAIL, &em, now) != 0)))
		return -1;
	if (in->routed && pg_channels_queue(c, *id, now, outbox) != 0)
		return -1;
	return 1;
}

struct create {
	const struct notification_new *in;
	size_t		 n;
	int64_t		 now;
	json_t		**out;
	char		**text;		/* NULL: objects */
	int64_t		*ids, *counts;
	bool		*created, *hidden;
	bool		 outbox;
};

static void
create_clear(struct create *p)
{
	for (size_t i = 0; i < p->n; i++) {
		json_decref(p->out[i]);
		p->out[i] = NULL;
		if (p->text != NULL) {
			free(p->text[i]);
			p->text[i] = NULL;
		}
		p->created[i] = p->hidden[i] = false;
		p->counts[i] = -1;
	}
	p->outbox = false;
}

static int
by_user(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
create_w(struct pgc *c, void *arg)
{
	struct create *p = arg;
	create_clear(p);
	/* Several users: lock them in order first, so that two sends cannot deadlock. */
	if (p->n > 1) {
		const char **users = calloc(p->n, sizeof *users);
		if (users == NULL)
			return -1;
		for (size_t i = 0; i < p->n; i++)
			users[i] = p->in[i].user;
		qsort(users, p->n, sizeof *users, by_user);
		for (size_t i = 0; i < p->n; i++)
			if ((i == 0 || strcmp(users[i], users[i - 1]) != 0) &&
			    pg_user_lock(c, users[i], p->now, 0, NULL) < 0) {
				free(users);
				return -1;
			}
		free(users);
	}
	for (size_t i = 0; i < p->n; i++)
		if (create_one(c, &p->in[i], p->now, &p->out[i], &p->ids[i], &p->created[i],
		    &p->hidden[i], &p->counts[i], &p->outbox) < 0) {
			create_clear(p);
			return -1;
		}
	return 1;
}

static void
create_publish(void *arg)
{
	struct create *p = arg;
	notifications_publish(p->in, p->n, p->now, p->ids, p->created, p->hidden, p->counts,
	    p->out, p->text);
	if (p->outbox)
		events_emit(EVENT_OUTBOX, "", NULL);
}

/* Null-safe string equality. */
static bool
same(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/*
 * Whether a send of several can be written by create_many_w: no keys (so
 * no conflicts, and nothing stored to hand back), all due now, and one
 * content for all but the title, body and routing (a topic's).
 */
static bool
create_many_ok(const struct notification_new *in, size_t n, int64_t now)
{
	if (n < 2)
		return false;
	for (size_t i = 0; i < n; i++)
		if (in[i].key != NULL || in[i].deliver_at > now || in[i].routed != in[0].routed ||
		    in[i].deliver_at != in[0].deliver_at || !same(in[i].type, in[0].type) ||
		    !same(in[i].category, in[0].category) || !same(in[i].priority, in[0].priority) ||
		    !same(in[i].data, in[0].data) || !same(in[i].url, in[0].url))
			return false;
	return true;
}

/* Recipients' indexes in strcmp order of their users, for finding a row's (bsearch). */
static int
by_recipient(const void *a, const void *b, void *arg)
{
	const struct notification_new *in = arg;
	return strcmp(in[*(const size_t *)a].user, in[*(const size_t *)b].user);
}

struct find_user {
	const struct notification_new	*in;
	const char			*user;
};

static int
find_recipient(const void *key, const void *elem)
{
	const struct find_user *f = key;
	return strcmp(f->user, f->in[*(const size_t *)elem].user);
}

/* The recipient of a row's user, or -1. */
static ssize_t
recipient_of(const struct notification_new *in, const size_t *order, size_t n, const char *user)
{
	struct find_user f = {in, user};
	const size_t *k = user ? bsearch(&f, order, n, sizeof *order, find_recipient) : NULL;
	return k ? (ssize_t)*k : -1;
}

/* A delivery row's status, next attempt, reason and sent time as parameters (buf: 2 x 24). */
static void
delivery_params(const struct routing *rt, bool row, int64_t now, char buf[2][24],
    const char *p[4])
{
	bool waits = rt->status == DS_PENDING || rt->status == DS_DEFERRED;
	snprintf(buf[0], 24, "%lld", (long long)rt->next_at);
	snprintf(buf[1], 24, "%lld", (long long)now);
	/* As pg_delivery_insert() has them: a waiting one's next attempt even at 0. */
	p[0] = row ? delivery_status_name(rt->status) : NULL;
	p[1] = row && waits ? buf[0] : NULL;
	p[2] = row ? rt->why : NULL;
	p[3] = row && rt->status == DS_SENT ? buf[1] : NULL;
}

/* One routing's delivery row into the arrays of create_many_w, as create_one_fast's parameters. */
static void
delivery_row(struct buf col[6], int64_t nid, const char *channel, const struct routing *rt,
    int64_t now)
{
	char buf[2][24];
	const char *p[4];
	delivery_params(rt, true, now, buf, p);
	pg_array_add_int(&col[0], nid);
	pg_array_add(&col[1], channel);
	for (int k = 0; k < 4; k++)
		pg_array_add(&col[2 + k], p[k]);
}

/*
 * A send to many (create_many_ok) in four statements, whatever their
 * number, where create_w takes five or six round trips per recipient (a
 * topic of 10,000 took 9 s): the users made or locked in strcmp order (as
 * create_w locks them: two sends cannot deadlock) with their counts
 * raised, before any id is drawn; the notifications; their delivery rows;
 * their push and webhook rows.
 */
static int
create_many_w(struct pgc *c, void *arg)
{
	enum { USERS, SHOWN, TITLES, BODIES, ARCHIVED, SKIPPED, NCOL };
	struct create *p = arg;
	const struct notification_new *in = p->in, *f = &in[0];
	size_t n = p->n, *order = calloc(n, sizeof *order);
	struct buf a[NCOL], d[6], ids;
	PGresult *r = NULL;
	char deliver[24];
	int rc = -1, rows = 0;

	create_clear(p);
	for (int k = 0; k < NCOL; k++) {
		buf_init(&a[k]);
		pg_array_begin(&a[k]);
	}
	for (int k = 0; k < 6; k++) {
		buf_init(&d[k]);
		pg_array_begin(&d[k]);
	}
	buf_init(&ids);
	pg_array_begin(&ids);
	if (order == NULL)
		goto done;
	for (size_t i = 0; i < n; i++) {
		const struct notification_new *x = &in[i];
		order[i] = i;
		p->hidden[i] = x->routed && x->in_app.status == DS_SKIPPED;
		pg_array_add(&a[USERS], x->user);
		pg_array_add_int(&a[SHOWN], !p->hidden[i]);	/* unread + 1 when shown */
		pg_array_add(&a[TITLES], x->title);
		pg_array_add(&a[BODIES], x->body);
		if (p->hidden[i])
			pg_array_add_int(&a[ARCHIVED], p->now);
		else
			pg_array_add(&a[ARCHIVED], NULL);
		pg_array_add(&a[SKIPPED], x->routed && x->email.status == DS_SKIPPED ?
		    (x->email.why ? x->email.why : "skipped") : NULL);
	}
	for (int k = 0; k < NCOL; k++) {
		pg_array_end(&a[k]);
		if (a[k].oom)
			goto done;
	}
	qsort_r(order, n, sizeof *order, by_recipient, (void *)in);
	/* A user twice (no send makes one) is the general path's: one upsert cannot. */
	for (size_t k = 1; k < n; k++)
		if (strcmp(in[order[k]].user, in[order[k - 1]].user) == 0) {
			rc = create_w(c, arg);
			goto done;
		}

	r = pg_run(c, "users_lock_many", "INSERT INTO users (id, created_at, unread) "
	    "SELECT x.id, $2, x.d FROM unnest($1::text[], $3::int[]) AS x(id, d) "
	    "ORDER BY x.id COLLATE \"C\" ON CONFLICT (id) DO UPDATE "
	    "SET unread = users.unread + excluded.unread RETURNING id, unread", "tit",
	    a[USERS].data, p->now, a[SHOWN].data);
	if (r == NULL || PQntuples(r) != (int)n)
		goto done;
	for (int row = 0; row < (int)n; row++) {
		ssize_t i = recipient_of(in, order, n, pg_str(r, row, 0));
		if (i < 0)
			goto done;
		p->counts[i] = p->hidden[i] ? -1 : pg_int(r, row, 1);
	}
	PQclear(r);

	r = pg_run(c, "notifications_insert_many", "INSERT INTO notifications (user_id, type, "
	    "category, priority, title, body, data, action_url, created_at, deliver_at, "
	    "archived_at, email_skipped) SELECT x.u, $2::text, $3::text, "
	    "coalesce($4::text, 'normal'), x.t, x.b, $5::json, $6::text, $7::bigint, "
	    "$8::bigint, x.a, x.e FROM unnest($1::text[], $9::text[], $10::text[], "
	    "$11::bigint[], $12::text[]) WITH ORDINALITY AS x(u, t, b, a, e, o) "
	    "ORDER BY x.o RETURNING id, user_id", "ttttttittttt", a[USERS].data, f->type,
	    f->category, f->priority, f->data, f->url, p->now, opt_int(deliver, f->deliver_at),
	    a[TITLES].data, a[BODIES].data, a[ARCHIVED].data, a[SKIPPED].data);
	if (r == NULL || PQntuples(r) != (int)n)
		goto done;
	for (int row = 0; row < (int)n; row++) {
		ssize_t i = recipient_of(in, order, n, pg_str(r, row, 1));
		if (i < 0 || p->created[i])
			goto done;
		p->ids[i] = pg_int(r, row, 0);
		p->created[i] = true;
	}
	PQclear(r);
	r = NULL;

	/* As create_one writes them: in-app only to record what was not shown, email unless skipped. */
	for (size_t i = 0; i < n; i++) {
		const struct notification_new *x = &in[i];
		pg_array_add_int(&ids, p->ids[i]);
		if (!x->routed)
			continue;
		if (x->in_app.status != DS_SENT) {
			delivery_row(d, p->ids[i], "in_app", &x->in_app, p->now);
			rows++;
		}
		if (x->email.status != DS_SKIPPED) {
			delivery_row(d, p->ids[i], "email", &x->email, p->now);
			rows++;
		}
		if (x->email.status == DS_PENDING || x->email.status == DS_DEFERRED)
			p->outbox = true;
	}
	for (int k = 0; k < 6; k++) {
		pg_array_end(&d[k]);
		if (d[k].oom)
			goto done;
	}
	pg_array_end(&ids);
	if (ids.oom)
		goto done;
	if (rows > 0 && pg_changed(pg_run(c, "deliveries_insert_many", "INSERT INTO deliveries "
	    "(notification_id, channel, status, next_attempt_at, last_error, created_at, "
	    "updated_at, sent_at) SELECT x.n, x.c, x.s, x.a, x.e, $7::bigint, $7::bigint, x.t "
	    "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], "
	    "$6::bigint[]) AS x(n, c, s, a, e, t)", "tttttti", d[0].data, d[1].data, d[2].data,
	    d[3].data, d[4].data, d[5].data, p->now)) < 0)
		goto done;
	if (f->routed && pg_channels_queue_many(c, ids.data, p->now, &p->outbox) != 0)
		goto done;
	rc = 1;
done:
	PQclear(r);
	free(order);
	for (int k = 0; k < NCOL; k++)
		buf_free(&a[k]);
	for (int k = 0; k < 6; k++)
		buf_free(&d[k]);
	buf_free(&ids);
	if (rc < 0)
		create_clear(p);	/* create_w's own failure has cleared it too */
	return rc;
}

/*
 * The usual send, one notification to one inbox, due now, with no dedupe
 * key, is one statement: the user's row (locked first, so that its ids
 * follow commit order, and counted), the notification, its delivery rows
 * and its NOTIFY (the payload capture() makes), one round trip and its
 * own transaction. The general path (create_w) takes seven: the user's
 * row lock is held across all of them, so they capped one user's sends
 * near 1,000/s (bench/RESULTS.md).
 */
static const char sql_create_one[] =
    "WITH u AS (INSERT INTO users (id, created_at, unread) VALUES ($1::text, $9::bigint, 1) "
    "ON CONFLICT (id) DO UPDATE SET unread = users.unread + 1 RETURNING unread), "
    "n AS (INSERT INTO notifications (user_id, type, category, priority, title, body, data, "
    "action_url, created_at, deliver_at, email_skipped) SELECT $1, $2::text, $3::text, "
    "coalesce($4::text, 'normal'), $5::text, $6::text, $7::json, $8::text, $9, $10::bigint, "
    "$11::text FROM u RETURNING id), "
    "ia AS (INSERT INTO deliveries (notification_id, channel, status, next_attempt_at, "
    "last_error, created_at, updated_at, sent_at) SELECT n.id, 'in_app', $12::text, "
    "$13::bigint, $14::text, $9, $9, $15::bigint FROM n WHERE $12 IS NOT NULL), "
    "em AS (INSERT INTO deliveries (notification_id, channel, status, next_attempt_at, "
    "last_error, created_at, updated_at, sent_at) SELECT n.id, 'email', $16::text, "
    "$17::bigint, $18::text, $9, $9, $19::bigint FROM n WHERE $16 IS NOT NULL), "
    "ps AS (INSERT INTO deliveries (notification_id, channel, target, status, "
    "next_attempt_at, created_at, updated_at) SELECT n.id, 'push', s.id, 'pending', $9, $9, "
    "$9 FROM n JOIN push_subscriptions s ON s.user_id = $1 WHERE $21::boolean RETURNING 1), "
    "wh AS (INSERT INTO deliveries (notification_id, channel, target, status, "
    "next_attempt_at, created_at, updated_at) SELECT n.id, 'webhook', w.id, 'pending', $9, "
    "$9, $9 FROM n, webhooks w WHERE $21 AND w.disabled_at IS NULL AND (w.types IS NULL "
    "OR $2 = ANY (w.types)) AND (w.users IS NULL OR $1 = ANY (w.users)) RETURNING 1) "
    "SELECT n.id, u.unread, pg_notify('notifyd', json_build_object('t', 'notification', "
    "'ids', json_build_array(n.id), 'counts', json_build_array(u.unread), "
    "'n', $20::text)::text), (SELECT count(*) FROM ps) + (SELECT count(*) FROM wh) "
    "FROM n, u";

static int
create_one_fast(struct store *st, const struct notification_new *in, int64_t now,
    struct create *p)
{
	struct routing ia = {DS_SENT, 0, NULL}, em = {DS_SKIPPED, 0, NULL};
	if (in->routed) {
		ia = in->in_app;
		em = in->email;
	}
	char deliver[24], iab[2][24], emb[2][24];
	const char *iap[4], *emp[4];
	delivery_params(&ia, in->routed && ia.status != DS_SENT, now, iab, iap);
	delivery_params(&em, in->routed && em.status != DS_SKIPPED, now, emb, emp);
	PGresult *r = pg_write(st, "notification_create", sql_create_one,
	    "tttttttti" "tttttttttttb", in->user, in->type, in->category, in->priority, in->title,
	    in->body, in->data, in->url, now, opt_int(deliver, in->deliver_at),
	    in->routed && em.status == DS_SKIPPED ? (em.why ? em.why : "skipped") : NULL,
	    iap[0], iap[1], iap[2], iap[3], emp[0], emp[1], emp[2], emp[3], PG(st)->node,
	    (int)in->routed);
	if (r == NULL || PQntuples(r) != 1) {
		PQclear(r);
		return -1;
	}
	p->ids[0] = pg_int(r, 0, 0);
	p->counts[0] = pg_int(r, 0, 1);
	bool queued = pg_int(r, 0, 3) > 0;
	PQclear(r);
	p->created[0] = true;
	if (p->text != NULL) {
		struct buf b;
		buf_init(&b);
		notification_new_text(&b, in, p->ids[0], now, false);
		p->text[0] = buf_take(&b);
	} else {
		p->out[0] = notification_new_object(in, p->ids[0], now, false);
	}
	/* Its clients, this node's too, hear it through LISTEN; the outbox is ours. */
	if (queued || (in->routed && (em.status == DS_PENDING || em.status == DS_DEFERRED)))
		events_emit(EVENT_OUTBOX, "", NULL);
	return 1;
}

int
pg_notifications_create(struct store *st, const struct notification_new *in, size_t n,
    int64_t now, json_t **out, char **text, bool *created)
{
	int64_t *ids = calloc(n, sizeof *ids), *counts = calloc(n, sizeof *counts);
	bool *hidden = calloc(n, sizeof *hidden);
	struct create p = {in, n, now, out, text, ids, counts, created, hidden, false};
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		out[i] = NULL;
		if (text != NULL)
			text[i] = NULL;
	}
	if (ids != NULL && counts != NULL && hidden != NULL) {
		create_clear(&p);
		if (n == 1 && in->key == NULL && in->deliver_at <= now &&
		    !(in->routed && in->in_app.status == DS_SKIPPED))
			rc = create_one_fast(st, in, now, &p);
		else
			rc = pg_tx(st, create_many_ok(in, n, now) ? create_many_w : create_w,
			    create_publish, &p);
		if (rc < 0)
			create_clear(&p);
	}
	free(ids);
	free(counts);
	free(hidden);
	return rc;
}

int
pg_notification_get(struct store *st, int64_t id, json_t **out)
{
	int rc = pg_one(pg_query(st, "notification_get", "SELECT " PG_NCOLS " FROM notifications "
	    "WHERE " PG_BY_ID, "i", id), out);
	if (rc == 0)
		rc = pg_one(pg_query(st, "scheduled_get", "SELECT " PG_SCOLS " FROM scheduled "
		    "WHERE id = $1", "i", id), out);
	return rc;
}

int
pg_unread_count(struct store *st, const char *user, int64_t now, int64_t *count)
{
	(void)now;
	PGresult *r = pg_query(st, "unread_count", "SELECT unread FROM users WHERE id = $1",
	    "t", user);
	*count = 0;
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) > 0;
	if (rc)
		*count = pg_int(r, 0, 0);
	PQclear(r);
	return rc;
}

/* The page's statements: the inbox, its unread, the archived; each in id order. */
static const char *const pages[] = {
	"SELECT " PG_NCOLS " FROM notifications WHERE user_id = $1 AND id < $2 "
	    "AND archived_at IS NULL AND (deliver_at IS NULL OR deliver_at <= $5) "
	    "AND ($3::text IS NULL OR type = $3) AND ($4::text IS NULL OR category = $4) "
	    "ORDER BY id DESC LIMIT $6",
	"SELECT " PG_NCOLS " FROM notifications WHERE user_id = $1 AND id < $2 "
	    "AND read_at IS NULL AND archived_at IS NULL "
	    "AND (deliver_at IS NULL OR deliver_at <= $5) "
	    "AND ($3::text IS NULL OR type = $3) AND ($4::text IS NULL OR category = $4) "
	    "ORDER BY id DESC LIMIT $6",
	"SELECT " PG_NCOLS " FROM notifications WHERE user_id = $1 AND id < $2 "
	    "AND archived_at IS NOT NULL AND (NOT $7 OR read_at IS NULL) "
	    "AND (deliver_at IS NULL OR deliver_at <= $5) "
	    "AND ($3::text IS NULL OR type = $3) AND ($4::text IS NULL OR category = $4) "
	    "ORDER BY id DESC LIMIT $6",
};

int
pg_notification_list(struct store *st, const struct notification_query *q, int64_t now,
    json_t **out)
{
	struct pgc *c = pgc_get(st);
	if (c == NULL)
		return -1;
	/* The count and the page from one snapshot. */
	PGresult *r = pg_run(c, "list_begin", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	    NULL), *page = NULL;
	int64_t count = 0;
	int rc = -1;
	if (r == NULL)
		goto done;
	PQclear(r);
	if ((r = pg_run(c, "unread_count", "SELECT unread FROM users WHERE id = $1", "t",
	    q->user)) == NULL)
		goto done;
	rc = PQntuples(r) > 0;
	if (rc)
		count = pg_int(r, 0, 0);
	PQclear(r);
	if (rc <= 0)
		goto done;
	int which = q->archived ? 2 : q->unread_only ? 1 : 0;
	if ((page = pg_run(c, "notification_list", pages[which], which == 2 ? "tittiib" :
	    "tittii", q->user, q->before > 0 ? q->before : INT64_MAX, q->type, q->category, now,
	    (int64_t)q->limit + 1, (int)q->unread_only)) == NULL) {
		rc = -1;
		goto done;
	}
	int n = PQntuples(page);
	json_t *list = json_array();
	for (int i = 0; i < n && i < q->limit; i++)
		json_array_append_new(list, pg_row_notification(page, i));
	*out = json_pack("{s:o, s:o, s:I}", "notifications", list, "next_before",
	    n > q->limit ? json_integer(pg_int(page, q->limit - 1, 0)) : json_null(),
	    "unread_count", (json_int_t)count);
	PQclear(page);
done:
	if (PQtransactionStatus(c->db) != PQTRANS_IDLE)
		PQclear(PQexec(c->db, "ROLLBACK"));
	pgc_put(c);
	return rc;
}

int
pg_notification_list_text(struct store *st, const struct notification_query *q, int64_t now,
    struct buf *out)
{
	json_t *page;
	int rc = pg_notification_list(st, q, now, &page);
	if (rc <= 0)
		return rc;
	char *s = json_dumps(page, JSON_COMPACT);
	json_decref(page);
	if (s == NULL)
		return -1;
	buf_puts(out, s);
	free(s);
	return out->oom ? -1 : 1;
}

struct mark_args {
	const char	*user;
	const int64_t	*ids;
	size_t		 n;
	enum mark	 how;
	int64_t		 now;
	json_t		*changed;
	int64_t		 missing, count;
	json_t		*result;
};

static int
mark_w(struct pgc *c, void *arg)
{
	/* Each returns what the change does to the unread count: -1, 0 or +1. */
	static const char *const set[] = {
		[MARK_READ] = "UPDATE notifications SET read_at = $3 WHERE id = $1 "
		    "AND user_id = $2 AND read_at IS NULL "
		    "RETURNING -(archived_at IS NULL)::int",
		[MARK_UNREAD] = "UPDATE notifications SET read_at = NULL WHERE id = $1 "
		    "AND user_id = $2 AND read_at IS NOT NULL "
		    "RETURNING (archived_at IS NULL)::int",
		[MARK_ARCHIVED] = "UPDATE notifications SET archived_at = $3 WHERE id = $1 "
		    "AND user_id = $2 AND archived_at IS NULL RETURNING -(read_at IS NULL)::int",
		[MARK_UNARCHIVED] = "UPDATE notifications SET archived_at = NULL WHERE id = $1 "
		    "AND user_id = $2 AND archived_at IS NOT NULL "
		    "RETURNING (read_at IS NULL)::int",
	};
	struct mark_args *p = arg;
	int64_t delta = 0;
	json_array_clear(p->changed);
	/* The user's row first: counts change in the order marks commit. */
	PGresult *r = pg_run(c, "user_lock", "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
	    "t", p->user);
	if (r == NULL)
		return -1;
	PQclear(r);
	for (size_t i = 0; i < p->n; i++) {
		r = pg_run(c, "notification_owned", "SELECT id FROM notifications WHERE " PG_BY_ID
		    " AND user_id = $2 AND (deliver_at IS NULL OR deliver_at <= $3)", "iti",
		    p->ids[i], p->user, p->now);
		if (r == NULL)
			return -1;
		int64_t id = PQntuples(r) ? pg_int(r, 0, 0) : 0;
		PQclear(r);
		if (id == 0) {
			p->missing = p->ids[i];
			return 0;	/* rolled back: nothing changes */
		}
		/* Read and archive take a time ($3); the others none. */
		bool at = p->how == MARK_READ || p->how == MARK_ARCHIVED;
		if ((r = pg_run(c, "notification_mark", set[p->how], at ? "iti" : "it", id,
		    p->user, p->now)) == NULL)
			return -1;
		if (PQntuples(r) > 0) {
			delta += pg_int(r, 0, 0);
			json_array_append_new(p->changed, json_integer(id));
		}
		PQclear(r);
	}
	return pg_unread_add(c, p->user, delta, &p->count) < 0 ? -1 : 1;
}

static void
mark_publish(void *arg)
{
	static const enum event_type ev[] = {
		[MARK_READ] = EVENT_READ,
		[MARK_UNREAD] = EVENT_UNREAD,
		[MARK_ARCHIVED] = EVENT_ARCHIVED,
		[MARK_UNARCHIVED] = EVENT_UNARCHIVED,
	};
	struct mark_args *p = arg;
	json_decref(p->result);		/* a transaction tried again publishes again */
	p->result = json_pack("{s:O, s:I}", "ids", p->changed, "unread_count",
	    (json_int_t)p->count);
	if (json_array_size(p->changed) > 0)
		events_emit(ev[p->how], p->user, p->result);
}

int
pg_notifications_mark(struct store *st, const char *user, const int64_t *ids, size_t n,
    enum mark how, int64_t now, json_t **result, int64_t *missing)
{
	struct mark_args p = {.user = user, .ids = ids, .n = n, .how = how, .now = now,
	    .changed = json_array()};
	int rc = pg_tx(st, mark_w, mark_publish, &p);
	json_decref(p.changed);
	if (rc <= 0) {
		*missing = p.missing;
		json_decref(p.result);
		return rc;
	}
	*result = p.result;
	return rc;
}

struct read_all {
	const char	*user;
	int64_t		 now, up_to, marked;
	json_t		*result;
};

static int
read_all_w(struct pgc *c, void *arg)
{
	struct read_all *p = arg;
	PGresult *r = pg_run(c, "user_lock", "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
	    "t", p->user);
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) > 0;
	PQclear(r);
	if (rc == 0)
		return 0;
	if ((r = pg_run(c, "notification_max", "SELECT coalesce(max(id), 0) FROM notifications "
	    "WHERE user_id = $1 AND (deliver_at IS NULL OR deliver_at <= $2)", "ti", p->user,
	    p->now)) == NULL)
		return -1;
	p->up_to = pg_int(r, 0, 0);
	PQclear(r);
	/*
	 * PostgreSQL writes a new version of each row either way; the
	 * watermark of notifications.c (sql/013) is SQLite's for now.
	 */
	if ((p->marked = pg_changed(pg_run(c, "notification_read_all", "UPDATE notifications "
	    "SET read_at = $2 WHERE user_id = $1 AND id <= $3 AND read_at IS NULL "
	    "AND (deliver_at IS NULL OR deliver_at <= $2)", "tii", p->user, p->now,
	    p->up_to))) < 0)
		return -1;
	return pg_changed(pg_run(c, "unread_set", "UPDATE users SET unread = 0 WHERE id = $1",
	    "t", p->user)) < 0 ? -1 : 1;
}

static void
read_all_publish(void *arg)
{
	struct read_all *p = arg;
	json_decref(p->result);
	p->result = json_pack("{s:I, s:I, s:I}", "up_to", (json_int_t)p->up_to, "marked",
	    (json_int_t)p->marked, "unread_count", (json_int_t)0);
	if (p->marked > 0)
		events_emit(EVENT_READ_ALL, p->user, p->result);
}

int
pg_notifications_read_all(struct store *st, const char *user, int64_t now, json_t **result)
{
	struct read_all p = {.user = user, .now = now};
	int rc = pg_tx(st, read_all_w, read_all_publish, &p);
	if (rc > 0)
		*result = p.result;
	else
		json_decref(p.result);
	return rc;
}

struct del {
	const char	*user;
	int64_t		 id, count;
	bool		 scheduled;
	struct deleted	*d;
};

static int
delete_w(struct pgc *c, void *arg)
{
	struct del *p = arg;
	PGresult *r;
	free(p->d->user);
	*p->d = (struct deleted){0};
	if (p->scheduled) {		/* not due yet: withdrawn */
		if ((r = pg_run(c, "scheduled_delete", "DELETE FROM scheduled WHERE id = $1 "
		    "AND ($2::text IS NULL OR user_id = $2) RETURNING user_id", "it", p->id,
		    p->user)) == NULL)
			return -1;
		if (PQntuples(r) > 0) {
			p->d->user = strdup(pg_str(r, 0, 0));
			p->d->id = p->id;
			p->d->cancelled = true;
			PQclear(r);
			return p->d->user ? 1 : -1;
		}
		PQclear(r);
	}
	if ((r = pg_run(c, "notification_delete", "DELETE FROM notifications WHERE " PG_BY_ID
	    " AND ($2::text IS NULL OR user_id = $2) RETURNING user_id, "
	    "(read_at IS NULL AND archived_at IS NULL)::int, id", "it", p->id, p->user)) == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	p->d->user = strdup(pg_str(r, 0, 0));
	int64_t counted = pg_int(r, 0, 1);
	p->d->id = pg_int(r, 0, 2);
	PQclear(r);
	if (p->d->user == NULL)
		return -1;
	return pg_unread_add(c, p->d->user, -counted, &p->count) < 0 ? -1 : 1;
}

static void
delete_publish(void *arg)
{
	struct del *p = arg;
	if (p->d->cancelled)
		return;
	json_t *ev = json_pack("{s:I, s:I}", "id", (json_int_t)p->d->id, "unread_count",
	    (json_int_t)p->count);
	events_emit(EVENT_DELETED, p->d->user, ev);
	json_decref(ev);
}

int
pg_notification_delete(struct store *st, const char *user, int64_t id, bool scheduled,
    int64_t now, struct deleted *d)
{
	(void)now;
	*d = (struct deleted){0};
	struct del p = {.user = user, .id = id, .scheduled = scheduled, .d = d};
	int rc = pg_tx(st, delete_w, delete_publish, &p);
	if (rc <= 0) {
		free(d->user);
		*d = (struct deleted){0};
	}
	return rc;
}

int
pg_notifications_after(struct store *st, const char *user, int64_t after, int limit,
    int64_t now, json_t **out)
{
	PGresult *r = pg_query(st, "notifications_after", "SELECT " PG_NCOLS " FROM notifications "
	    "WHERE user_id = $1 AND id > $2 AND (deliver_at IS NULL OR deliver_at <= $3) "
	    "ORDER BY id LIMIT $4", "tiii", user, after, now, (int64_t)limit);
	if (r == NULL)
		return -1;
	*out = pg_rows(r, pg_row_notification);
	PQclear(r);
	return 1;
}

int
pg_last_id(struct store *st, const char *user, int64_t now, int64_t *id)
{
	PGresult *r = pg_query(st, "last_id", "SELECT coalesce(max(id), 0) FROM notifications "
	    "WHERE user_id = $1 AND (deliver_at IS NULL OR deliver_at <= $2)", "ti", user, now);
	*id = 0;
	if (r == NULL)
		return -1;
	*id = pg_int(r, 0, 0);
	PQclear(r);
	return 1;
}

struct cancel {
	const char	*user;
	int64_t		 id;
	bool		 too_late;
	int64_t		 released_as;
};

static int
cancel_w(struct pgc *c, void *arg)
{
	struct cancel *p = arg;
	int64_t n = pg_changed(pg_run(c, "scheduled_delete", "DELETE FROM scheduled WHERE id = $1 "
	    "AND ($2::text IS NULL OR user_id = $2)", "it", p->id, p->user));
	if (n != 0)
		return n > 0 ? 1 : -1;
	/* Released already, or never scheduled: too late either way. */
	PGresult *r = pg_run(c, "notification_resolve", "SELECT id FROM notifications WHERE "
	    PG_BY_ID " AND ($2::text IS NULL OR user_id = $2)", "it", p->id, p->user);
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		int64_t id = pg_int(r, 0, 0);
		p->too_late = true;
		p->released_as = id != p->id ? id : 0;
	}
	PQclear(r);
	return 0;
}

int
pg_notification_cancel(struct store *st, const char *user, int64_t id, bool *too_late,
    int64_t *released_as)
{
	struct cancel p = {user, id, false, 0};
	int rc = pg_tx(st, cancel_w, NULL, &p);
	*too_late = p.too_late;
	*released_as = p.released_as;
	return rc;
}
