/*
 * pg_outbox — the outbox, scheduled releases and digests on PostgreSQL,
 * where several nodes share them.
 *
 * Each node's worker claims due deliveries with FOR UPDATE SKIP LOCKED, so
 * one node carries out each; a claim is a lease (claimed_until), so work a
 * node took and never finished, because it died, is taken up by another
 * once the lease ends, and sent with the same Message-ID (the mailer makes
 * it from the notification). Scheduled notifications are released the
 * same way, once. Two digest runs at once make each digest once: the
 * second waits on the first's row of the user's slot and finds it made.
 */
#define _GNU_SOURCE
#include "pg_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "util.h"

/* Scheduled ones a claim releases at a time. */
#define RELEASE_MAX 64

struct claim {
	int64_t		 now, lease;
	const char	*node;
	struct delivery	*out;
	size_t		 max, n;
	/* Released, to announce: the notification and its user's unread count after it. */
	json_t		*released[RELEASE_MAX];
	int64_t		 counts[RELEASE_MAX];
	size_t		 nreleased;
};

static void
claim_clear(struct claim *p)
{
	for (size_t i = 0; i < p->nreleased; i++)
		json_decref(p->released[i]);
	p->nreleased = 0;
	p->n = 0;
}

/*
 * Release one scheduled notification: written to notifications with a new
 * id, after its user's row is locked (ids of one user follow commit
 * order), with the deliveries routing decided, counted when shown.
 */
static int
release_one(struct pgc *c, struct claim *p, int64_t sid, const char *user, bool shown)
{
	int64_t count = 0;
	if (pg_user_lock(c, user, p->now, 0, NULL) < 0)
		return -1;
	PGresult *r = pg_run(c, "scheduled_release", "INSERT INTO notifications (user_id, type, "
	    "category, priority, title, body, data, action_url, dedupe_key, created_at, "
	    "deliver_at, archived_at, email_skipped, scheduled_id) SELECT user_id, type, "
	    "category, priority, title, body, data, action_url, dedupe_key, created_at, "
	    "deliver_at, CASE in_app WHEN 'skipped' THEN created_at END, CASE email "
	    "WHEN 'skipped' THEN coalesce(email_why, 'skipped') END, id FROM scheduled "
	    "WHERE id = $1 RETURNING id", "i", sid);
	if (r == NULL)
		return -1;
	int64_t nid = PQntuples(r) ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	if (nid == 0)
		return 0;	/* another node released it */
	bool queued = false;	/* the claim that follows takes them */
	if (pg_changed(pg_run(c, "scheduled_in_app", "INSERT INTO deliveries (notification_id, "
	    "channel, status, last_error, created_at, updated_at) SELECT $2, 'in_app', "
	    "'skipped', in_app_why, $3, $3 FROM scheduled WHERE id = $1 AND in_app = 'skipped'",
	    "iii", sid, nid, p->now)) < 0 ||
	    pg_changed(pg_run(c, "scheduled_email", "INSERT INTO deliveries (notification_id, "
	    "channel, status, next_attempt_at, last_error, created_at, updated_at) SELECT $2, "
	    "'email', email, email_next_at, email_why, $3, $3 FROM scheduled WHERE id = $1 "
	    "AND email != 'skipped'", "iii", sid, nid, p->now)) < 0 ||
	    pg_channels_queue(c, nid, p->now, &queued) != 0 ||
	    pg_changed(pg_run(c, "scheduled_done", "DELETE FROM scheduled WHERE id = $1", "i",
	    sid)) < 0)
		return -1;
	if (!shown)
		return 0;
	json_t *o = NULL;
	if (pg_unread_add(c, user, 1, &count) < 0 ||
	    pg_one(pg_run(c, "notification_get", "SELECT " PG_NCOLS " FROM notifications "
	    "WHERE id = $1", "i", nid), &o) <= 0)
		return -1;
	p->counts[p->nreleased] = count;
	p->released[p->nreleased++] = o;
	return 0;
}

static int
claim_w(struct pgc *c, void *arg)
{
	struct claim *p = arg;
	claim_clear(p);
	/* Due ones no other node is releasing this moment. */
	PGresult *due = pg_run(c, "scheduled_due", "SELECT id, user_id, in_app = 'sent' "
	    "FROM scheduled WHERE deliver_at <= $1 ORDER BY deliver_at, id LIMIT $2 "
	    "FOR UPDATE SKIP LOCKED", "ii", p->now, (int64_t)RELEASE_MAX);
	if (due == NULL)
		return -1;
	for (int i = 0; i < PQntuples(due); i++)
		if (release_one(c, p, pg_int(due, i, 0), pg_str(due, i, 1),
		    strcmp(pg_str(due, i, 2), "t") == 0) < 0) {
			PQclear(due);
			claim_clear(p);
			return -1;
		}
	PQclear(due);
	PGresult *r = pg_run(c, "deliveries_claim", "UPDATE deliveries SET claimed_until = $3, "
	    "claimed_by = $4, attempts = attempts + 1, updated_at = $1 WHERE id IN (SELECT id "
	    "FROM deliveries "
	    "WHERE status IN ('pending', 'deferred') AND next_attempt_at <= $1 "
	    "AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY next_attempt_at "
	    "LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, coalesce(notification_id, 0), "
	    "channel, attempts, coalesce(digest_id, 0), target", "iiit", p->now, (int64_t)p->max,
	    p->now + p->lease, p->node);
	if (r == NULL) {
		claim_clear(p);
		return -1;
	}
	for (int i = 0; i < PQntuples(r) && p->n < p->max; i++) {
		struct delivery *d = &p->out[p->n++];
		d->id = pg_int(r, i, 0);
		d->notification_id = pg_int(r, i, 1);
		d->channel = prefs_channel_of(pg_str(r, i, 2));
		d->attempts = (int)pg_int(r, i, 3);
		d->digest_id = d->notification_id == 0 ? pg_int(r, i, 4) : 0;
		d->target = pg_int(r, i, 5);
	}
	PQclear(r);
	return 1;	/* claiming nothing is an answer too */
}

static void
claim_publish(void *arg)
{
	struct claim *p = arg;
	for (size_t i = 0; i < p->nreleased; i++)
		events_emit_notification(json_string_value(json_object_get(p->released[i], "user")),
		    json_integer_value(json_object_get(p->released[i], "id")), p->released[i],
		    NULL, 0, p->counts[i]);
}

int
pg_deliveries_claim(struct store *st, int64_t now, struct delivery *out, size_t max,
    size_t *n)
{
	struct claim p = {.now = now, .lease = PG(st)->lease, .node = PG(st)->node, .out = out,
	    .max = max};
	int rc = pg_tx(st, claim_w, claim_publish, &p);
	*n = rc > 0 ? p.n : 0;
	claim_clear(&p);
	return rc;
}

/* The next thing for a worker: a delivery, a lease that ends, a scheduled one. */
int
pg_deliveries_next(struct store *st, int64_t *at)
{
	PGresult *r = pg_query(st, "deliveries_next", "SELECT least((SELECT min(greatest("
	    "next_attempt_at, coalesce(claimed_until + 1, 0))) FROM deliveries "
	    "WHERE status IN ('pending', 'deferred')), (SELECT min(deliver_at) FROM scheduled))",
	    NULL);
	*at = 0;
	if (r == NULL)
		return -1;
	*at = pg_int(r, 0, 0);
	PQclear(r);
	return *at > 0;
}

/*
 * At start nothing of this node's can be in flight: its claims from
 * before are released now. Other nodes' are left to their leases.
 */
int
pg_deliveries_unclaim(struct store *st)
{
	int64_t n = pg_exec(st, "deliveries_unclaim", "UPDATE deliveries SET claimed_until = "
	    "NULL, claimed_by = NULL WHERE claimed_by = $1 AND claimed_until IS NOT NULL", "t",
	    PG(st)->node);
	if (n > 0)
		log_info("deliveries resumed", "claimed=%lld", (long long)n);
	return n < 0 ? -1 : 1;
}

int
pg_delivery_finish(struct store *st, int64_t id, enum delivery_status status,
    int64_t next_at, const char *error, int64_t now)
{
	char next[24];
	snprintf(next, sizeof next, "%lld", (long long)next_at);
	int64_t n = pg_exec(st, "delivery_finish", "UPDATE deliveries SET status = $2, "
	    "claimed_until = NULL, claimed_by = NULL, next_attempt_at = $3, "
	    /* Held by the user's preferences at its turn: not an attempt. */
	    "attempts = CASE WHEN $2 = 'deferred' THEN greatest(attempts - 1, 0) ELSE attempts END, "
	    "last_error = coalesce($4, last_error), "
	    "sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END, updated_at = $5 "
	    "WHERE id = $1", "ittti", id, delivery_status_name(status),
	    status == DS_PENDING || status == DS_DEFERRED ? next : NULL, error, now);
	return n < 0 ? -1 : n > 0;	/* 0: cancelled or deleted meanwhile */
}

int
pg_delivery_notification(struct store *st, int64_t delivery, json_t **out)
{
	return pg_one(pg_query(st, "delivery_notification", "SELECT " PG_NCOLS
	    " FROM notifications WHERE id = (SELECT notification_id FROM deliveries "
	    "WHERE id = $1)", "i", delivery), out);
}

static json_t *
row_delivery(const PGresult *r, int row)
{
	int64_t target = pg_int(r, row, 9);
	return json_pack("{s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "channel", pg_text_json(r, row, 0), "status", pg_text_json(r, row, 1),
	    "attempts", (int)pg_int(r, row, 2), "next_attempt_at", pg_time_json(r, row, 3),
	    "last_error", pg_text_json(r, row, 4), "created_at", pg_time_json(r, row, 5),
	    "updated_at", pg_time_json(r, row, 6), "sent_at", pg_time_json(r, row, 7),
	    "digest_id", PQgetisnull(r, row, 8) ? json_null() : json_integer(pg_int(r, row, 8)),
	    "target", target ? json_integer(target) : json_null());
}

/* As notifications.c's S_DELIV_OF: rows written, and those a create leaves unwritten. */
int
pg_deliveries_of(struct store *st, int64_t id, json_t **out)
{
	PGresult *r = pg_query(st, "deliveries_of", "SELECT channel, status, attempts, "
	    "next_attempt_at, last_error, created_at, updated_at, sent_at, digest_id, target FROM ("
	    "SELECT 0 AS k, 0::bigint AS id, 'in_app'::text AS channel, 'sent'::text AS status, "
	    "0 AS attempts, NULL::bigint AS next_attempt_at, NULL::text AS last_error, "
	    "n.created_at, n.created_at AS updated_at, n.created_at AS sent_at, "
	    "NULL::bigint AS digest_id, 0::bigint AS target FROM notifications n WHERE n.id = $1 AND NOT EXISTS ("
	    "SELECT 1 FROM deliveries d WHERE d.notification_id = $1 AND d.channel = 'in_app') "
	    "UNION ALL SELECT 1, id, channel, status, attempts, next_attempt_at, last_error, "
	    "created_at, updated_at, sent_at, digest_id, target FROM deliveries WHERE notification_id = $1 "
	    "UNION ALL SELECT 2, 0, 'email', 'skipped', 0, NULL, n.email_skipped, n.created_at, "
	    "n.created_at, NULL, NULL, 0 FROM notifications n WHERE n.id = $1 "
	    "AND n.email_skipped IS NOT NULL AND NOT EXISTS (SELECT 1 FROM deliveries d "
	    "WHERE d.notification_id = $1 AND d.channel = 'email') "
	    "UNION ALL SELECT 3, 0, 'in_app', CASE in_app WHEN 'sent' THEN 'pending' "
	    "ELSE in_app END, 0, CASE in_app WHEN 'sent' THEN deliver_at END, in_app_why, "
	    "created_at, created_at, NULL, NULL, 0 FROM scheduled WHERE id = $1 "
	    "UNION ALL SELECT 4, 0, 'email', email, 0, email_next_at, email_why, created_at, "
	    "created_at, NULL, NULL, 0 FROM scheduled WHERE id = $1 AND email IS NOT NULL) x "
	    "ORDER BY k, id", "i", id);
	if (r == NULL)
		return -1;
	*out = pg_rows(r, row_delivery);
	PQclear(r);
	return 1;
}

static json_t *
row_candidate(const PGresult *r, int row)
{
	return json_pack("{s:o, s:o, s:I, s:o}", "user", pg_text_json(r, row, 0),
	    "tz", pg_text_json(r, row, 1), "parked", (json_int_t)pg_int(r, row, 2),
	    "last_slot", pg_text_json(r, row, 3));
}

int
pg_digest_candidates(struct store *st, enum digest_mode period, const char *user,
    json_t **out)
{
	char why[32];
	snprintf(why, sizeof why, "%s digest", prefs_digest_name(period));
	PGresult *r = pg_query(st, "digest_candidates", "SELECT u.id, u.tz, (SELECT count(*) "
	    "FROM notifications n JOIN deliveries d ON d.notification_id = n.id "
	    "AND d.channel = 'email' WHERE n.user_id = u.id AND d.status = 'digest'), "
	    "(SELECT slot FROM digests g WHERE g.user_id = u.id AND g.period = $1 "
	    "ORDER BY g.slot DESC LIMIT 1) FROM users u WHERE ($3::text IS NULL OR u.id = $3) "
	    "AND (u.digest = $1 OR (u.digest = 'off' AND EXISTS (SELECT 1 FROM notifications n "
	    "JOIN deliveries d ON d.notification_id = n.id AND d.channel = 'email' "
	    "WHERE n.user_id = u.id AND d.status = 'digest' AND d.last_error = $2))) "
	    "ORDER BY u.id COLLATE \"C\"", "ttt", prefs_digest_name(period), why, user);
	if (r == NULL)
		return -1;
	*out = pg_rows(r, row_candidate);
	PQclear(r);
	return 1;
}

/* A user's parked email before cutoff: unread, read. */
#define TALLY "SELECT count(*) FILTER (WHERE n.read_at IS NULL), " \
	"count(*) FILTER (WHERE n.read_at IS NOT NULL) FROM notifications n " \
	"JOIN deliveries d ON d.notification_id = n.id AND d.channel = 'email' " \
	"WHERE n.user_id = $1 AND d.status = 'digest' AND d.created_at < $2"

struct digest_put {
	const struct digest_new	*in;
	int64_t			 now;
	struct digest_made	*out;
};

static int
digest_make_w(struct pgc *c, void *arg)
{
	struct digest_put *p = arg;
	const struct digest_new *d = p->in;
	struct digest_made *m = p->out;
	memset(m, 0, sizeof *m);
	PGresult *r = pg_run(c, "digest_insert", "INSERT INTO digests (user_id, period, slot, "
	    "window_start, window_end, items, read_skipped, created_at) VALUES ($1, $2, $3, $4, "
	    "$5, 0, 0, $6) ON CONFLICT (user_id, period, slot) DO NOTHING RETURNING id", "tttiii",
	    d->user, prefs_digest_name(d->period), d->slot, d->window_start, d->window_end,
	    p->now);
	if (r == NULL)
		return -1;
	m->id = PQntuples(r) ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	if (m->id == 0) {
		m->existed = true;
		return 1;	/* done already: this run changes nothing */
	}
	if ((r = pg_run(c, "digest_tally", TALLY, "ti", d->user, d->cutoff)) == NULL)
		return -1;
	int64_t unread = pg_int(r, 0, 0), read = pg_int(r, 0, 1);
	PQclear(r);
	m->items = d->include_read ? unread + read : unread;
	m->read_skipped = d->include_read ? 0 : read;
	if (pg_changed(pg_run(c, "digest_parked", "UPDATE deliveries SET status = 'digested', "
	    "digest_id = $3, updated_at = $4 WHERE id IN (SELECT d.id FROM notifications n "
	    "JOIN deliveries d ON d.notification_id = n.id AND d.channel = 'email' "
	    "WHERE n.user_id = $1 AND d.status = 'digest' AND d.created_at < $2)", "tiii",
	    d->user, d->cutoff, m->id, p->now)) < 0)
		return -1;
	if (m->items > 0) {
		if ((r = pg_run(c, "digest_email", "INSERT INTO deliveries (notification_id, "
		    "channel, status, next_attempt_at, created_at, updated_at, digest_id) VALUES "
		    "(NULL, 'email', 'pending', $2, $2, $2, $1) RETURNING id", "ii", m->id,
		    p->now)) == NULL)
			return -1;
		m->delivery_id = pg_int(r, 0, 0);
		PQclear(r);
	}
	char did[24];
	snprintf(did, sizeof did, "%lld", (long long)m->delivery_id);
	return pg_changed(pg_run(c, "digest_set", "UPDATE digests SET items = $2, "
	    "read_skipped = $3, delivery_id = $4 WHERE id = $1", "iiit", m->id, m->items,
	    m->read_skipped, m->delivery_id > 0 ? did : NULL)) < 0 ? -1 : 1;
}

static void
digest_publish(void *arg)
{
	struct digest_put *p = arg;
	if (p->out->delivery_id > 0 && !p->out->existed)
		events_emit(EVENT_OUTBOX, "", NULL);
}

/* Each digest in a transaction of its own (SQLite shares one commit among them). */
void
pg_digests_make(struct store *st, const struct digest_new *in, size_t n, int64_t now,
    struct digest_made *out, int *rcs)
{
	for (size_t i = 0; i < n; i++) {
		struct digest_put p = {&in[i], now, &out[i]};
		rcs[i] = pg_tx(st, digest_make_w, digest_publish, &p);
	}
}

int
pg_digest_tally(struct store *st, const char *user, int64_t cutoff, int64_t *unread,
    int64_t *read)
{
	PGresult *r = pg_query(st, "digest_tally", TALLY, "ti", user, cutoff);
	*unread = *read = 0;
	if (r == NULL)
		return -1;
	*unread = pg_int(r, 0, 0);
	*read = pg_int(r, 0, 1);
	PQclear(r);
	return 1;
}

int
pg_digest_get(struct store *st, int64_t id, bool include_read, int limit, json_t **out)
{
	PGresult *r = pg_query(st, "digest_get", "SELECT id, user_id, period, slot, "
	    "window_start, window_end, items, read_skipped, created_at, delivery_id "
	    "FROM digests WHERE id = $1", "i", id);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	int64_t created = pg_int(r, 0, 8);
	json_t *o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:o, s:o}",
	    "id", (json_int_t)pg_int(r, 0, 0), "user", pg_text_json(r, 0, 1),
	    "period", pg_text_json(r, 0, 2), "slot", pg_text_json(r, 0, 3),
	    "window_start", pg_time_json(r, 0, 4), "window_end", pg_time_json(r, 0, 5),
	    "items", (json_int_t)pg_int(r, 0, 6), "read_skipped", (json_int_t)pg_int(r, 0, 7),
	    "created_at", pg_time_json(r, 0, 8),
	    "delivery_id", PQgetisnull(r, 0, 9) ? json_null() : json_integer(pg_int(r, 0, 9)));
	PQclear(r);
	/* Its notifications, newest first: those unread when it was made (or all). */
	r = pg_query(st, "digest_items", "SELECT " PG_NCOLS " FROM notifications WHERE id IN ("
	    "SELECT notification_id FROM deliveries WHERE digest_id = $1 AND notification_id "
	    "IS NOT NULL) AND ($2 OR read_at IS NULL OR read_at >= $3) ORDER BY id DESC "
	    "LIMIT $4", "ibii", id, (int)include_read, created, (int64_t)limit);
	if (r == NULL) {
		json_decref(o);
		return -1;
	}
	json_object_set_new(o, "notifications", pg_rows(r, pg_row_notification));
	PQclear(r);
	*out = o;
	return 1;
}
