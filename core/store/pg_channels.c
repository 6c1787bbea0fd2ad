/*
 * pg_channels — PostgreSQL's push subscriptions, webhook endpoints and
 * their outbox rows: channels.c's counterpart.
 */
#define _GNU_SOURCE
#include "pg_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The push and webhook deliveries of notification nid: rows queued, or -1. */
#define QUEUE_SQL(NID, NOW) \
	"WITH ps AS (INSERT INTO deliveries (notification_id, channel, target, status, " \
	"next_attempt_at, created_at, updated_at) SELECT n.id, 'push', s.id, 'pending', " NOW \
	", " NOW ", " NOW " FROM notifications n JOIN push_subscriptions s " \
	"ON s.user_id = n.user_id WHERE n.id = " NID " RETURNING 1), " \
	"wh AS (INSERT INTO deliveries (notification_id, channel, target, status, " \
	"next_attempt_at, created_at, updated_at) SELECT n.id, 'webhook', w.id, 'pending', " \
	NOW ", " NOW ", " NOW " FROM notifications n, webhooks w WHERE n.id = " NID \
	" AND w.disabled_at IS NULL AND (w.types IS NULL OR n.type = ANY (w.types)) " \
	"AND (w.users IS NULL OR n.user_id = ANY (w.users)) RETURNING 1) " \
	"SELECT (SELECT count(*) FROM ps) + (SELECT count(*) FROM wh)"

int
pg_channels_queue(struct pgc *c, int64_t nid, int64_t now, bool *outbox)
{
	PGresult *r = pg_run(c, "channels_queue", QUEUE_SQL("$1", "$2::bigint"), "ii", nid, now);
	if (r == NULL)
		return -1;
	if (pg_int(r, 0, 0) > 0)
		*outbox = true;
	PQclear(r);
	return 0;
}

/* The same for every notification of a send (ids: a bigint[] literal). */
int
pg_channels_queue_many(struct pgc *c, const char *ids, int64_t now, bool *outbox)
{
	PGresult *r = pg_run(c, "channels_queue_many", QUEUE_SQL("ANY ($1::bigint[])",
	    "$2::bigint"), "ti", ids, now);
	if (r == NULL)
		return -1;
	if (pg_int(r, 0, 0) > 0)
		*outbox = true;
	PQclear(r);
	return 0;
}

struct push_args {
	const char	*user, *endpoint, *p256dh, *auth;
	int64_t		 max, now, id;
	bool		 created;
};

static int
push_subscribe_tx(struct pgc *c, void *arg)
{
	struct push_args *p = arg;
	/*
	 * One subscriber of a user at a time, so that the count below sees
	 * every other's commit (READ COMMITTED: a statement's snapshot is taken
	 * when it starts, after the lock).
	 */
	PGresult *r = pg_run(c, "push_lock", "SELECT pg_advisory_xact_lock(hashtext('push:' || $1))",
	    "t", p->user);
	if (r == NULL)
		return -1;
	PQclear(r);
	r = pg_run(c, "push_upsert", "WITH u AS (INSERT INTO users (id, created_at) "
	    "SELECT $1, $5 WHERE (SELECT count(*) FROM push_subscriptions WHERE user_id = $1 "
	    "AND endpoint <> $2) < $6 ON CONFLICT (id) DO NOTHING) "
	    "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, created_at) "
	    "SELECT $1, $2, $3, $4, $5 WHERE (SELECT count(*) FROM push_subscriptions "
	    "WHERE user_id = $1 AND endpoint <> $2) < $6 "
	    "ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, "
	    "p256dh = excluded.p256dh, auth = excluded.auth, last_error = NULL "
	    "RETURNING id, (xmax = 0)::int", "ttttii", p->user, p->endpoint, p->p256dh, p->auth,
	    p->now, p->max);
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) == 1;	/* none: the user has max others */
	if (rc) {
		p->id = pg_int(r, 0, 0);
		p->created = pg_int(r, 0, 1) != 0;
	}
	PQclear(r);
	return rc;
}

int
pg_push_subscribe(struct store *st, const char *user, const char *endpoint,
    const char *p256dh, const char *auth, int64_t max, int64_t now, int64_t *id,
    bool *created)
{
	struct push_args p = {user, endpoint, p256dh, auth, max, now, 0, false};
	int rc = pg_tx(st, push_subscribe_tx, NULL, &p);
	*id = p.id;
	*created = p.created;
	return rc;
}

static json_t *
row_push(const PGresult *r, int row)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t)pg_int(r, row, 0),
	    "user", pg_text_json(r, row, 1), "endpoint", pg_text_json(r, row, 2),
	    "created_at", pg_time_json(r, row, 3), "last_sent_at", pg_time_json(r, row, 4),
	    "last_error", pg_text_json(r, row, 5));
}

int
pg_push_list(struct store *st, const char *user, json_t **out)
{
	PGresult *r = pg_query(st, "push_list", "SELECT id, user_id, endpoint, created_at, "
	    "last_sent_at, last_error FROM push_subscriptions WHERE $1::text IS NULL "
	    "OR user_id = $1 ORDER BY id", "t", user);
	if (r == NULL)
		return -1;
	*out = pg_rows(r, row_push);
	PQclear(r);
	return 1;
}

static json_t *
row_push_keys(const PGresult *r, int row)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)pg_int(r, row, 0),
	    "user", pg_text_json(r, row, 1), "endpoint", pg_text_json(r, row, 2),
	    "p256dh", pg_text_json(r, row, 3), "auth", pg_text_json(r, row, 4));
}

int
pg_push_get(struct store *st, int64_t id, json_t **out)
{
	return pg_first(pg_query(st, "push_get", "SELECT id, user_id, endpoint, p256dh, auth "
	    "FROM push_subscriptions WHERE id = $1", "i", id), row_push_keys, out);
}

int
pg_push_remove(struct store *st, const char *user, int64_t id)
{
	int64_t n = pg_exec(st, "push_remove", "DELETE FROM push_subscriptions WHERE id = $1 "
	    "AND ($2::text IS NULL OR user_id = $2)", "it", id, user);
	return n < 0 ? -1 : n > 0;
}

int
pg_push_result(struct store *st, int64_t id, const char *error, int64_t now)
{
	return pg_exec(st, "push_result", "UPDATE push_subscriptions SET last_sent_at = "
	    "CASE WHEN $2::text IS NULL THEN $3 ELSE last_sent_at END, last_error = $2 "
	    "WHERE id = $1", "iti", id, error, now) < 0 ? -1 : 1;
}

int
pg_webhook_add(struct store *st, const struct webhook_new *w, int64_t now, int64_t *id)
{
	PGresult *r = pg_write(st, "webhook_insert", "INSERT INTO webhooks (url, secret, format, "
	    "types, users, created_at) VALUES ($1, $2, $3, (SELECT array_agg(v) FROM "
	    "json_array_elements_text($4::json) v), (SELECT array_agg(v) FROM "
	    "json_array_elements_text($5::json) v), $6) RETURNING id", "ttttti", w->url,
	    w->secret, w->format, w->types, w->users, now);
	if (r == NULL || PQntuples(r) != 1) {
		PQclear(r);
		return -1;
	}
	*id = pg_int(r, 0, 0);
	PQclear(r);
	return 1;
}

#define HOOK_COLS "id, url, format, array_to_json(types), array_to_json(users), created_at, " \
	"disabled_at, failing_since, failures, last_status, last_error, last_attempt_at"

static json_t *
array_json(const PGresult *r, int row, int col)
{
	json_t *a = PQgetisnull(r, row, col) ? NULL : json_loads(pg_str(r, row, col), 0, NULL);
	return a ? a : json_null();
}

static json_t *
row_hook(const PGresult *r, int row)
{
	json_t *o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o}",
	    "id", (json_int_t)pg_int(r, row, 0), "url", pg_text_json(r, row, 1),
	    "format", pg_text_json(r, row, 2), "types", array_json(r, row, 3),
	    "users", array_json(r, row, 4), "created_at", pg_time_json(r, row, 5),
	    "disabled_at", pg_time_json(r, row, 6), "failing_since", pg_time_json(r, row, 7),
	    "failures", (json_int_t)pg_int(r, row, 8),
	    "last_status", PQgetisnull(r, row, 9) ? json_null() : json_integer(pg_int(r, row, 9)),
	    "last_error", pg_text_json(r, row, 10), "last_attempt_at", pg_time_json(r, row, 11));
	if (o != NULL && PQnfields(r) > 12)
		json_object_set_new(o, "secret", pg_text_json(r, row, 12));
	return o;
}

int
pg_webhook_list(struct store *st, json_t **out)
{
	PGresult *r = pg_query(st, "webhook_list", "SELECT " HOOK_COLS " FROM webhooks "
	    "ORDER BY id", NULL);
	if (r == NULL)
		return -1;
	*out = pg_rows(r, row_hook);
	PQclear(r);
	return 1;
}

int
pg_webhook_get(struct store *st, int64_t id, json_t **out)
{
	return pg_first(pg_query(st, "webhook_get", "SELECT " HOOK_COLS ", secret FROM webhooks "
	    "WHERE id = $1", "i", id), row_hook, out);
}

int
pg_webhook_remove(struct store *st, int64_t id)
{
	int64_t n = pg_exec(st, "webhook_remove", "DELETE FROM webhooks WHERE id = $1", "i", id);
	return n < 0 ? -1 : n > 0;
}

/* As channels.c's S_HOOK_RESULT. */
int
pg_webhook_result(struct store *st, int64_t id, int status, const char *error, int64_t now,
    int64_t disable_after, bool *disabled)
{
	PGresult *r = pg_write(st, "webhook_result", "UPDATE webhooks SET "
	    "last_status = nullif($3::int, 0), last_error = $2, last_attempt_at = $4, "
	    "failures = CASE WHEN $2::text IS NULL THEN 0 ELSE failures + 1 END, "
	    "failing_since = CASE WHEN $2::text IS NULL THEN NULL "
	    "ELSE coalesce(failing_since, $4) END, "
	    "disabled_at = CASE WHEN $2::text IS NOT NULL AND disabled_at IS NULL AND "
	    "$4 - coalesce(failing_since, $4) >= $5 THEN $4 ELSE disabled_at END "
	    "WHERE id = $1 RETURNING (disabled_at = $4)::int", "itiii", id, error,
	    (int64_t)status, now, disable_after);
	*disabled = false;
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) > 0;
	if (rc)
		*disabled = pg_int(r, 0, 0) != 0;
	PQclear(r);
	return rc;
}
