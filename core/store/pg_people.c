/* pg_people — users, their preferences, topics and API keys, on PostgreSQL. */
#define _GNU_SOURCE
#include "pg_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "util.h"

#define UCOLS "id, email, name, tz, locale, created_at"

json_t *
pg_row_user(const PGresult *r, int row)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "id", pg_text_json(r, row, 0),
	    "email", pg_text_json(r, row, 1), "name", pg_text_json(r, row, 2),
	    "tz", pg_text_json(r, row, 3), "locale", pg_text_json(r, row, 4),
	    "created_at", pg_time_json(r, row, 5));
}

/* Create the user if missing: 1 made, 0 there already, -1. */
int
pg_user_ensure(struct pgc *c, const char *user, int64_t now)
{
	PGresult *r = pg_run(c, "user_ensure", "INSERT INTO users (id, created_at) "
	    "VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", "ti", user, now);
	if (r == NULL)
		return -1;
	int made = atoi(PQcmdTuples(r)) > 0;
	PQclear(r);
	return made;
}

/* The rows of r: 1 when there is one, 0 none, -1 when r is NULL; r is cleared. */
static int
any(PGresult *r)
{
	if (r == NULL)
		return -1;
	int n = PQntuples(r) > 0;
	PQclear(r);
	return n;
}

int
pg_user_exists(struct store *st, const char *user)
{
	return any(pg_query(st, "user_exists", "SELECT 1 FROM users WHERE id = $1", "t", user));
}

int
pg_user_get(struct store *st, const char *user, json_t **out)
{
	PGresult *r = pg_query(st, "user_get", "SELECT " UCOLS " FROM users WHERE id = $1",
	    "t", user);
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) > 0;
	if (rc)
		*out = pg_row_user(r, 0);
	PQclear(r);
	return rc;
}

struct user_put {
	const struct user_update *u;
	int64_t		 now;
	json_t		*out;
	bool		 created;
};

static int
user_put_w(struct pgc *c, void *arg)
{
	struct user_put *p = arg;
	const struct user_update *u = p->u;
	json_decref(p->out);
	p->out = NULL;
	int made = pg_user_ensure(c, u->id, p->now);
	if (made < 0)
		return -1;
	p->created = made > 0;
	PGresult *r = pg_run(c, "user_update", "UPDATE users SET "
	    "email = CASE WHEN $2 THEN $3 ELSE email END, "
	    "name = CASE WHEN $4 THEN $5 ELSE name END, "
	    "tz = CASE WHEN $6 THEN $7 ELSE tz END, "
	    "locale = CASE WHEN $8 THEN $9 ELSE locale END "
	    "WHERE id = $1 RETURNING " UCOLS, "tbtbtbtbt", u->id, u->set_email, u->email,
	    u->set_name, u->name, u->set_tz, u->tz, u->set_locale, u->locale);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 1)
		p->out = pg_row_user(r, 0);
	PQclear(r);
	return p->out ? 1 : -1;
}

int
pg_user_put(struct store *st, const struct user_update *u, int64_t now, json_t **out,
    bool *created)
{
	struct user_put p = {.u = u, .now = now};
	int rc = pg_tx(st, user_put_w, NULL, &p);
	if (rc <= 0) {
		json_decref(p.out);
		return rc;
	}
	*out = p.out;
	*created = p.created;
	return rc;
}

#define PREFS_COLS "u.email, u.tz, u.quiet_start, u.quiet_end, u.quiet_days, u.digest, " \
	"u.email_if_unread, p.type, p.channel, p.enabled"

/*
 * One user's preferences and address from rows [from, to) of r, whose
 * columns from col are PREFS_COLS (a user that is not there: NULLs, and
 * p the defaults).
 */
static void
prefs_rows(const PGresult *r, int from, int to, int col, struct prefs *p, char *email,
    size_t elen, char *tz, size_t tzlen)
{
	if (email != NULL && elen > 0)
		*email = '\0';
	if (tz != NULL && tzlen > 0)
		*tz = '\0';
	p->n = 0;
	p->quiet = false;
	p->quiet_start = p->quiet_end = 0;
	p->quiet_days = 0x7f;
	p->digest = DIGEST_OFF;
	p->email_if_unread = 0;
	for (int i = from; i < to; i++) {
		if (i == from) {
			const char *e = pg_str(r, i, col), *z = pg_str(r, i, col + 1);
			if (email)
				snprintf(email, elen, "%s", e ? e : "");
			if (tz)
				snprintf(tz, tzlen, "%s", z ? z : "");
			if (!PQgetisnull(r, i, col + 2)) {
				p->quiet = true;
				p->quiet_start = (int)pg_int(r, i, col + 2);
				p->quiet_end = (int)pg_int(r, i, col + 3);
				p->quiet_days = (unsigned)pg_int(r, i, col + 4);
			}
			if (!PQgetisnull(r, i, col + 5))
				prefs_parse_digest(pg_str(r, i, col + 5), &p->digest);
			p->email_if_unread = pg_int(r, i, col + 6);
		}
		if (PQgetisnull(r, i, col + 7) || p->n >= PREFS_MAX_RULES)
			continue;
		struct prefs_rule *rule = &p->rules[p->n++];
		snprintf(rule->type, sizeof rule->type, "%s", pg_str(r, i, col + 7));
		rule->channel = prefs_channel_of(pg_str(r, i, col + 8));
		rule->enabled = strcmp(pg_str(r, i, col + 9), "t") == 0;
	}
}

/* A user's preferences and address on c: 1, or 0 when no such user (p: the defaults). */
static int
prefs_read(struct pgc *c, const char *user, struct prefs *p, char *email, size_t elen,
    char *tz, size_t tzlen)
{
	PGresult *r = pg_run(c, "prefs_user", "SELECT " PREFS_COLS " "
	    "FROM users u LEFT JOIN preferences p ON p.user_id = u.id WHERE u.id = $1 "
	    "ORDER BY p.type, p.channel", "t", user);
	if (r == NULL)
		return -1;
	int rows = PQntuples(r);
	prefs_rows(r, 0, rows, 0, p, email, elen, tz, tzlen);
	PQclear(r);
	return rows > 0;
}

int
pg_prefs_get(struct store *st, const char *user, struct prefs *p)
{
	struct pgc *c = pgc_get(st);
	if (c == NULL)
		return -1;
	int rc = prefs_read(c, user, p, NULL, 0, NULL, 0);
	pgc_put(c);
	return rc;
}

/* All of them in one statement: a topic of 10,000 read each in a round trip of its own. */
int
pg_recipients(struct store *st, const char *const *users, size_t n, struct prefs *p,
    recipient_fn fn, void *arg)
{
	char email[320], tz[80];
	struct buf ids;
	buf_init(&ids);
	pg_array_begin(&ids);
	for (size_t i = 0; i < n; i++)
		pg_array_add(&ids, users[i]);
	pg_array_end(&ids);
	PGresult *r = ids.oom ? NULL : pg_query(st, "prefs_users", "SELECT x.ord, " PREFS_COLS " "
	    "FROM unnest($1::text[]) WITH ORDINALITY AS x(id, ord) "
	    "LEFT JOIN users u ON u.id = x.id LEFT JOIN preferences p ON p.user_id = u.id "
	    "ORDER BY x.ord, p.type, p.channel", "t", ids.data);
	buf_free(&ids);
	if (r == NULL)
		return -1;
	int rc = 0, rows = PQntuples(r);
	for (int from = 0, to; rc == 0 && from < rows; from = to) {
		int64_t ord = pg_int(r, from, 0);
		for (to = from + 1; to < rows && pg_int(r, to, 0) == ord; to++)
			;
		if (ord < 1 || (size_t)ord > n) {
			rc = -1;
			break;
		}
		prefs_rows(r, from, to, 1, p, email, sizeof email, tz, sizeof tz);
		rc = fn(arg, (size_t)ord - 1, p, email, tz);
	}
	PQclear(r);
	return rc;
}

struct prefs_change {
	const char	*user;
	int64_t		 now;
	bool		(*fn)(struct prefs *p, void *arg);
	void		*arg;
	struct prefs	 p;
};

/* Run a statement on c whose rows do not matter: 0, or -1. */
static int
done(PGresult *r)
{
	PQclear(r);
	return r ? 0 : -1;
}

static int
prefs_update_w(struct pgc *c, void *arg)
{
	struct prefs_change *pc = arg;
	struct prefs *p = &pc->p;
	if (pg_user_ensure(c, pc->user, pc->now) < 0)
		return -1;
	/* The user's row lock: two changes of one user's rules never interleave. */
	if (done(pg_run(c, "prefs_lock", "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", "t",
	    pc->user)) != 0 || prefs_read(c, pc->user, p, NULL, 0, NULL, 0) < 0)
		return -1;
	if (!pc->fn(p, pc->arg))
		return 0;
	if (done(pg_run(c, "prefs_clear", "DELETE FROM preferences WHERE user_id = $1", "t",
	    pc->user)) != 0)
		return -1;
	for (size_t i = 0; i < p->n; i++)
		if (done(pg_run(c, "prefs_insert", "INSERT INTO preferences (user_id, type, "
		    "channel, enabled) VALUES ($1, $2, $3, $4)", "tttb", pc->user,
		    p->rules[i].type, prefs_channel_name(p->rules[i].channel),
		    (int)p->rules[i].enabled)) != 0)
			return -1;
	/* Quiet hours and email_if_unread are NULL when unset. */
	char qs[12], qe[12], qd[12], eu[24];
	snprintf(qs, sizeof qs, "%d", p->quiet_start);
	snprintf(qe, sizeof qe, "%d", p->quiet_end);
	snprintf(qd, sizeof qd, "%u", p->quiet_days);
	snprintf(eu, sizeof eu, "%lld", (long long)p->email_if_unread);
	return done(pg_run(c, "prefs_set_user", "UPDATE users SET quiet_start = $2, "
	    "quiet_end = $3, quiet_days = $4, digest = $5, email_if_unread = $6 WHERE id = $1",
	    "tttttt", pc->user, p->quiet ? qs : NULL, p->quiet ? qe : NULL, p->quiet ? qd : NULL,
	    prefs_digest_name(p->digest), p->email_if_unread > 0 ? eu : NULL)) == 0 ? 1 : -1;
}

int
pg_prefs_update(struct store *st, const char *user, int64_t now,
    bool (*fn)(struct prefs *p, void *arg), void *arg, struct prefs *out)
{
	struct prefs_change *pc = calloc(1, sizeof *pc);
	if (pc == NULL)
		return -1;
	*pc = (struct prefs_change){.user = user, .now = now, .fn = fn, .arg = arg};
	int rc = pg_tx(st, prefs_update_w, NULL, pc);
	if (rc > 0 && out != NULL)
		*out = pc->p;
	free(pc);
	return rc;
}

struct topic_change {
	const char	*topic, *user;
	int64_t		 now;
	bool		 changed;
	int64_t		 count;		/* members after the change */
};

/* The topic's size, which a trigger keeps (sql/pg/005_topic_sizes.sql); 0 when it is gone. */
static int
topic_size(struct pgc *c, struct topic_change *p)
{
	PGresult *r = pg_run(c, "topic_size", "SELECT members FROM topics WHERE name = $1", "t",
	    p->topic);
	if (r == NULL)
		return -1;
	p->count = PQntuples(r) > 0 ? pg_int(r, 0, 0) : 0;
	PQclear(r);
	return 1;
}

static int
topic_add_w(struct pgc *c, void *arg)
{
	struct topic_change *p = arg;
	if (pg_user_ensure(c, p->user, p->now) < 0)
		return -1;
	PGresult *r = pg_run(c, "topic_add", "INSERT INTO topic_members (topic, user_id, "
	    "added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", "tti", p->topic, p->user,
	    p->now);
	if (r == NULL)
		return -1;
	p->changed = atoi(PQcmdTuples(r)) > 0;
	PQclear(r);
	return topic_size(c, p);
}

static int
topic_remove_w(struct pgc *c, void *arg)
{
	struct topic_change *p = arg;
	PGresult *r = pg_run(c, "topic_remove", "DELETE FROM topic_members WHERE topic = $1 "
	    "AND user_id = $2", "tt", p->topic, p->user);
	if (r == NULL)
		return -1;
	p->changed = atoi(PQcmdTuples(r)) > 0;
	PQclear(r);
	return p->changed ? topic_size(c, p) : 0;
}

int
pg_topic_add(struct store *st, const char *topic, const char *user, int64_t now,
    bool *added, int64_t *count)
{
	struct topic_change p = {topic, user, now, false, 0};
	int rc = pg_tx(st, topic_add_w, NULL, &p);
	*added = p.changed;
	*count = p.count;
	return rc;
}

int
pg_topic_remove(struct store *st, const char *topic, const char *user, int64_t *count)
{
	struct topic_change p = {topic, user, 0, false, 0};
	int rc = pg_tx(st, topic_remove_w, NULL, &p);
	*count = p.count;
	return rc;
}

static json_t *
row_text(const PGresult *r, int row)
{
	return pg_text_json(r, row, 0);
}

int
pg_topic_members(struct store *st, const char *topic, json_t **members)
{
	PGresult *r = pg_query(st, "topic_members", "SELECT user_id FROM topic_members "
	    "WHERE topic = $1 ORDER BY user_id COLLATE \"C\"", "t", topic);
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) > 0;
	if (rc)
		*members = pg_rows(r, row_text);
	PQclear(r);
	return rc;
}

int
pg_key_create(struct store *st, const char *name, const unsigned char hash[32], int64_t now,
    int64_t *id)
{
	PGresult *r = pg_query(st, "key_insert", "INSERT INTO api_keys (name, hash, created_at) "
	    "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id", "thi", name, hash, now);
	*id = 0;
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) > 0;
	if (rc)
		*id = pg_int(r, 0, 0);
	PQclear(r);
	return rc;
}

int
pg_key_lookup(struct store *st, const unsigned char hash[32], int64_t *id, int64_t *last_used)
{
	PGresult *r = pg_query(st, "key_lookup", "SELECT id, coalesce(last_used_at, 0) "
	    "FROM api_keys WHERE hash = $1 AND revoked_at IS NULL", "h", hash);
	*id = *last_used = 0;
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) > 0;
	if (rc) {
		*id = pg_int(r, 0, 0);
		*last_used = pg_int(r, 0, 1);
	}
	PQclear(r);
	return rc;
}

int
pg_key_touch(struct store *st, int64_t id, int64_t now)
{
	return pg_exec(st, "key_touch", "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
	    "ii", id, now) < 0 ? -1 : 1;
}

static json_t *
row_key(const PGresult *r, int row)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)pg_int(r, row, 0),
	    "name", pg_text_json(r, row, 1), "created_at", pg_time_json(r, row, 2),
	    "last_used_at", pg_time_json(r, row, 3), "revoked_at", pg_time_json(r, row, 4));
}

int
pg_key_list(struct store *st, json_t **out)
{
	PGresult *r = pg_query(st, "key_list", "SELECT id, name, created_at, last_used_at, "
	    "revoked_at FROM api_keys ORDER BY id", NULL);
	if (r == NULL)
		return -1;
	*out = json_pack("{s:o}", "keys", pg_rows(r, row_key));
	PQclear(r);
	return 1;
}

struct key_revoke {
	int64_t		 id, now;
	const char	*name;
};

static int
key_revoke_w(struct pgc *c, void *arg)
{
	struct key_revoke *p = arg;
	PGresult *r = pg_run(c, "key_revoke", "UPDATE api_keys SET revoked_at = $3 "
	    "WHERE revoked_at IS NULL AND CASE WHEN $2::text IS NULL THEN id = $1 "
	    "ELSE name = $2 END", "iti", p->id, p->name, p->now);
	if (r == NULL)
		return -1;
	int changed = atoi(PQcmdTuples(r)) > 0;
	PQclear(r);
	return changed;
}

/* After the commit: whoever keeps keys forgets them. */
static void
key_revoke_pub(void *arg)
{
	(void)arg;
	events_emit(EVENT_KEY_REVOKED, "", NULL);
}

int
pg_key_revoke(struct store *st, int64_t id, const char *name, int64_t now)
{
	struct key_revoke p = {id, now, name};
	return pg_tx(st, key_revoke_w, key_revoke_pub, &p);
}
