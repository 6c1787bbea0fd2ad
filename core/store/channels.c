/*
 * channels — the targets of the channels that have many per notification:
 * a user's Web Push subscriptions and the application's webhook endpoints;
 * and the outbox rows a notification gets for them.
 */
#define _GNU_SOURCE
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

enum chan_stmt {
	S_PUSH_ROOM,
	S_PUSH_UPSERT,
	S_PUSH_LIST,
	S_PUSH_GET,
	S_PUSH_REMOVE,
	S_PUSH_RESULT,
	S_QUEUE,
	S_TARGETS,
	S_HOOK_INSERT,
	S_HOOK_LIST,
	S_HOOK_GET,
	S_HOOK_REMOVE,
	S_HOOK_RESULT,
	S_CHAN__COUNT
};

#define PUSH_COLS "id, user_id, endpoint, created_at, last_sent_at, last_error"
#define HOOK_COLS "id, url, format, types, users, created_at, disabled_at, failing_since, " \
	"failures, last_status, last_error, last_attempt_at"

static const char *const statements[S_CHAN__COUNT] = {
	/* The user's other subscriptions: fewer than ?3 leaves room for this one. */
	[S_PUSH_ROOM] = "SELECT count(*) < ?3 FROM push_subscriptions "
	    "WHERE user_id = ?1 AND endpoint <> ?2",
	/* A browser subscribing again brings new keys, and maybe a new user. */
	[S_PUSH_UPSERT] = "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, "
	    "created_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (endpoint) DO UPDATE SET "
	    "user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth, "
	    "last_error = NULL RETURNING id, created_at = ?5",
	[S_PUSH_LIST] = "SELECT " PUSH_COLS " FROM push_subscriptions "
	    "WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id",
	[S_PUSH_GET] = "SELECT id, user_id, endpoint, p256dh, auth FROM push_subscriptions "
	    "WHERE id = ?1",
	[S_PUSH_REMOVE] = "DELETE FROM push_subscriptions WHERE id = ?1 "
	    "AND (?2 IS NULL OR user_id = ?2)",
	[S_PUSH_RESULT] = "UPDATE push_subscriptions SET last_sent_at = CASE WHEN ?2 IS NULL "
	    "THEN ?3 ELSE last_sent_at END, last_error = ?2 WHERE id = ?1",
	/*
	 * One push delivery per subscription of the notification's user, and
	 * one webhook delivery per enabled endpoint that wants its type and user:
	 * one statement on the path of every send.
	 */
	[S_QUEUE] = "INSERT INTO deliveries (notification_id, channel, target, status, "
	    "next_attempt_at, created_at, updated_at) SELECT n.id, 'push', s.id, 'pending', ?2, "
	    "?2, ?2 FROM notifications n JOIN push_subscriptions s ON s.user_id = n.user_id "
	    "WHERE n.id = ?1 UNION ALL SELECT n.id, 'webhook', w.id, 'pending', ?2, ?2, ?2 "
	    "FROM notifications n, webhooks w WHERE n.id = ?1 AND w.disabled_at IS NULL "
	    "AND (w.types IS NULL OR EXISTS (SELECT 1 FROM json_each(w.types) "
	    "WHERE value = n.type)) AND (w.users IS NULL OR EXISTS (SELECT 1 "
	    "FROM json_each(w.users) WHERE value = n.user_id))",
	[S_TARGETS] = "SELECT EXISTS (SELECT 1 FROM push_subscriptions) "
	    "OR EXISTS (SELECT 1 FROM webhooks)",
	[S_HOOK_INSERT] = "INSERT INTO webhooks (url, secret, format, types, users, created_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
	[S_HOOK_LIST] = "SELECT " HOOK_COLS " FROM webhooks ORDER BY id",
	[S_HOOK_GET] = "SELECT " HOOK_COLS ", secret FROM webhooks WHERE id = ?1",
	[S_HOOK_REMOVE] = "DELETE FROM webhooks WHERE id = ?1",
	/*
	 * ?2 NULL: it worked, and a run of failures ends. Else one more
	 * failure; the endpoint is disabled when the run began ?5 ms ago.
	 */
	[S_HOOK_RESULT] = "UPDATE webhooks SET last_status = nullif(?3, 0), last_error = ?2, "
	    "last_attempt_at = ?4, failures = CASE WHEN ?2 IS NULL THEN 0 ELSE failures + 1 END, "
	    "failing_since = CASE WHEN ?2 IS NULL THEN NULL ELSE coalesce(failing_since, ?4) END, "
	    "disabled_at = CASE WHEN ?2 IS NOT NULL AND disabled_at IS NULL AND "
	    "?4 - coalesce(failing_since, ?4) >= ?5 THEN ?4 ELSE disabled_at END "
	    "WHERE id = ?1 RETURNING disabled_at = ?4",
};

const struct stmt_table chan_sql = {statements, S_CHAN__COUNT};

int
channels_queue(struct conn *c, int64_t nid, int64_t now, bool *outbox)
{
	/* Most stores have neither: then a send pays nothing for them. */
	if (c->no_targets)
		return 0;
	if (exec_on(c, T_CHAN, S_QUEUE, "channels_queue", "ii", nid, now) != 0)
		return -1;
	if (sqlite3_changes(c->db) > 0) {
		*outbox = true;
		return 0;
	}
	int64_t any[1] = {1};
	if (query_on(c, T_CHAN, S_TARGETS, "channels_any", row_ints, any, NULL) < 0)
		return -1;
	c->no_targets = any[0] == 0;
	return 0;
}

struct push_args {
	const char	*user, *endpoint, *p256dh, *auth;
	int64_t		 max, now, id;
	bool		 created;
};

static bool
row_id_flag(sqlite3_stmt *s, void *arg)
{
	struct push_args *p = arg;
	p->id = sqlite3_column_int64(s, 0);
	p->created = sqlite3_column_int(s, 1) != 0;
	return false;
}

static int
push_subscribe_w(struct conn *c, void *arg)
{
	struct push_args *p = arg;
	int64_t room = 0;
	if (query_on(c, T_CHAN, S_PUSH_ROOM, "push_room", row_ints, &room, "tti", p->user,
	    p->endpoint, p->max) < 0)
		return -1;
	if (!room)
		return 0;
	c->no_targets = false;
	if (user_ensure(c, p->user, p->now) < 0)
		return -1;
	return query_on(c, T_CHAN, S_PUSH_UPSERT, "push_upsert", row_id_flag, p, "tttti",
	    p->user, p->endpoint, p->p256dh, p->auth, p->now) > 0 ? 1 : -1;
}

int
sqlite_push_subscribe(struct store *st, const char *user, const char *endpoint,
    const char *p256dh, const char *auth, int64_t max, int64_t now, int64_t *id,
    bool *created)
{
	struct push_args p = {user, endpoint, p256dh, auth, max, now, 0, false};
	int rc = store_write(st, push_subscribe_w, &p);
	*id = p.id;
	*created = p.created;
	return rc;
}

static json_t *
row_push(sqlite3_stmt *s)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}",
	    "id", (json_int_t)sqlite3_column_int64(s, 0), "user", text_json(s, 1),
	    "endpoint", text_json(s, 2), "created_at", time_json(s, 3),
	    "last_sent_at", time_json(s, 4), "last_error", text_json(s, 5));
}

int
sqlite_push_list(struct store *st, const char *user, json_t **out)
{
	return query_list(st, T_CHAN, S_PUSH_LIST, "push_list", row_push, out, "t", user) < 0 ?
	    -1 : 1;
}

static json_t *
row_push_keys(sqlite3_stmt *s)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:o}",
	    "id", (json_int_t)sqlite3_column_int64(s, 0), "user", text_json(s, 1),
	    "endpoint", text_json(s, 2), "p256dh", text_json(s, 3), "auth", text_json(s, 4));
}

int
sqlite_push_get(struct store *st, int64_t id, json_t **out)
{
	return query_one(st, T_CHAN, S_PUSH_GET, "push_get", row_push_keys, out, "i", id);
}

struct remove_args {
	const char	*user;
	int64_t		 id;
	int		 stmt;
};

static int
remove_w(struct conn *c, void *arg)
{
	struct remove_args *p = arg;
	int rc = p->stmt == S_PUSH_REMOVE ?
	    exec_on(c, T_CHAN, S_PUSH_REMOVE, "push_remove", "it", p->id, p->user) :
	    exec_on(c, T_CHAN, S_HOOK_REMOVE, "webhook_remove", "i", p->id);
	return rc != 0 ? -1 : sqlite3_changes(c->db) > 0;
}

int
sqlite_push_remove(struct store *st, const char *user, int64_t id)
{
	struct remove_args p = {user, id, S_PUSH_REMOVE};
	return store_write(st, remove_w, &p);
}

struct result_args {
	int64_t		 id, now, disable_after;
	int		 status;
	const char	*error;
	bool		 disabled;
};

static int
push_result_w(struct conn *c, void *arg)
{
	struct result_args *p = arg;
	return exec_on(c, T_CHAN, S_PUSH_RESULT, "push_result", "iti", p->id, p->error,
	    p->now) != 0 ? -1 : 1;
}

int
sqlite_push_result(struct store *st, int64_t id, const char *error, int64_t now)
{
	struct result_args p = {id, now, 0, 0, error, false};
	return store_write(st, push_result_w, &p);
}

struct hook_args {
	const struct webhook_new *w;
	int64_t		 now, id;
};

static int
webhook_add_w(struct conn *c, void *arg)
{
	struct hook_args *p = arg;
	int64_t id[1] = {0};
	c->no_targets = false;
	if (query_on(c, T_CHAN, S_HOOK_INSERT, "webhook_insert", row_ints, id, "ttttti",
	    p->w->url, p->w->secret, p->w->format, p->w->types, p->w->users, p->now) <= 0)
		return -1;
	p->id = id[0];
	return 1;
}

int
sqlite_webhook_add(struct store *st, const struct webhook_new *w, int64_t now, int64_t *id)
{
	struct hook_args p = {w, now, 0};
	int rc = store_write(st, webhook_add_w, &p);
	*id = p.id;
	return rc;
}

/* A JSON array stored as text, or null. */
static json_t *
array_json(sqlite3_stmt *s, int col)
{
	const char *t = (const char *)sqlite3_column_text(s, col);
	json_t *a = t ? json_loads(t, 0, NULL) : NULL;
	return a ? a : json_null();
}

static json_t *
row_hook(sqlite3_stmt *s)
{
	json_t *o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o}",
	    "id", (json_int_t)sqlite3_column_int64(s, 0), "url", text_json(s, 1),
	    "format", text_json(s, 2), "types", array_json(s, 3), "users", array_json(s, 4),
	    "created_at", time_json(s, 5), "disabled_at", time_json(s, 6),
	    "failing_since", time_json(s, 7), "failures", (json_int_t)sqlite3_column_int64(s, 8),
	    "last_status", sqlite3_column_type(s, 9) == SQLITE_NULL ? json_null() :
	    json_integer(sqlite3_column_int64(s, 9)),
	    "last_error", text_json(s, 10), "last_attempt_at", time_json(s, 11));
	if (o != NULL && sqlite3_column_count(s) > 12)
		json_object_set_new(o, "secret", text_json(s, 12));
	return o;
}

int
sqlite_webhook_list(struct store *st, json_t **out)
{
	return query_list(st, T_CHAN, S_HOOK_LIST, "webhook_list", row_hook, out, NULL) < 0 ?
	    -1 : 1;
}

int
sqlite_webhook_get(struct store *st, int64_t id, json_t **out)
{
	return query_one(st, T_CHAN, S_HOOK_GET, "webhook_get", row_hook, out, "i", id);
}

int
sqlite_webhook_remove(struct store *st, int64_t id)
{
	struct remove_args p = {NULL, id, S_HOOK_REMOVE};
	return store_write(st, remove_w, &p);
}

static int
webhook_result_w(struct conn *c, void *arg)
{
	struct result_args *p = arg;
	int64_t v[1] = {0};
	int rc = query_on(c, T_CHAN, S_HOOK_RESULT, "webhook_result", row_ints, v, "itiii",
	    p->id, p->error, (int64_t)p->status, p->now, p->disable_after);
	p->disabled = v[0] != 0;
	return rc < 0 ? -1 : rc;
}

int
sqlite_webhook_result(struct store *st, int64_t id, int status, const char *error,
    int64_t now, int64_t disable_after, bool *disabled)
{
	struct result_args p = {id, now, disable_after, status, error, false};
	int rc = store_write(st, webhook_result_w, &p);
	*disabled = rc > 0 && p.disabled;
	return rc;
}
