/* people — users, their preferences, topics and API keys. */
#define _GNU_SOURCE
#include "store_impl.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "util.h"

/* Statements about users, their preferences, topics and API keys. */
enum people_stmt {
	S_USER_EXISTS,
	S_USER_ENSURE,
	S_USER_GET,
	S_USER_UPDATE,
	S_TOPIC_ADD,
	S_TOPIC_REMOVE,
	S_TOPIC_MEMBERS,
	S_TOPIC_GROW,
	S_TOPIC_LAST,
	S_TOPIC_SHRINK,
	S_TOPIC_SIZE,
	S_TOPIC_CHECK,
	S_TOPIC_DROP,
	S_TOPIC_SET,
	S_KEY_INSERT,
	S_KEY_LOOKUP,
	S_KEY_TOUCH,
	S_KEY_LIST,
	S_KEY_REVOKE,
	S_PREFS_USER,
	S_PREFS_CLEAR,
	S_PREFS_INSERT,
	S_PREFS_SET_USER,
	S_PEOPLE__COUNT
};

static const char *const statements[S_PEOPLE__COUNT] = {
	[S_USER_EXISTS] = "SELECT 1 FROM users WHERE id = ?1",
	[S_USER_ENSURE] = "INSERT INTO users (id, created_at) VALUES (?1, ?2) "
	    "ON CONFLICT (id) DO NOTHING",
	/* The user, made if new, with one more unread: a create's one write to users. */
	[S_USER_GET] = "SELECT " UCOLS " FROM users WHERE id = ?1",
	[S_USER_UPDATE] = "UPDATE users SET "
	    "email = CASE WHEN ?2 THEN ?3 ELSE email END, "
	    "name = CASE WHEN ?4 THEN ?5 ELSE name END, "
	    "tz = CASE WHEN ?6 THEN ?7 ELSE tz END, "
	    "locale = CASE WHEN ?8 THEN ?9 ELSE locale END "
	    "WHERE id = ?1 RETURNING " UCOLS,
	[S_TOPIC_ADD] = "INSERT INTO topic_members (topic, user_id, added_at) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
	[S_TOPIC_REMOVE] = "DELETE FROM topic_members WHERE topic = ?1 AND user_id = ?2",
	[S_TOPIC_MEMBERS] = "SELECT user_id FROM topic_members WHERE topic = ?1 "
	    "ORDER BY user_id",
	/* A topic's size is kept in topics (sql/016_topic_sizes.sql). */
	[S_TOPIC_GROW] = "INSERT INTO topics (name, members) VALUES (?1, 1) "
	    "ON CONFLICT (name) DO UPDATE SET members = members + 1 RETURNING members",
	[S_TOPIC_LAST] = "DELETE FROM topics WHERE name = ?1 AND members = 1",
	[S_TOPIC_SHRINK] = "UPDATE topics SET members = members - 1 WHERE name = ?1 "
	    "RETURNING members",
	[S_TOPIC_SIZE] = "SELECT members FROM topics WHERE name = ?1",
	/* Topics whose kept size disagrees with their members (check). */
	[S_TOPIC_CHECK] = "SELECT coalesce(t.name, m.topic), coalesce(t.members, 0), "
	    "coalesce(m.n, 0) FROM topics t FULL JOIN (SELECT topic, count(*) AS n "
	    "FROM topic_members GROUP BY topic) m ON m.topic = t.name "
	    "WHERE coalesce(t.members, 0) != coalesce(m.n, 0) ORDER BY 1",
	[S_TOPIC_DROP] = "DELETE FROM topics WHERE name = ?1",
	[S_TOPIC_SET] = "INSERT INTO topics (name, members) VALUES (?1, ?2) "
	    "ON CONFLICT (name) DO UPDATE SET members = excluded.members",
	[S_KEY_INSERT] = "INSERT INTO api_keys (name, hash, created_at) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING RETURNING id",
	[S_KEY_LOOKUP] = "SELECT id, coalesce(last_used_at, 0) FROM api_keys "
	    "WHERE hash = ?1 AND revoked_at IS NULL",
	[S_KEY_TOUCH] = "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
	[S_KEY_LIST] = "SELECT id, name, created_at, last_used_at, revoked_at "
	    "FROM api_keys ORDER BY id",
	[S_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = ?3 WHERE revoked_at IS NULL "
	    "AND CASE WHEN ?2 IS NULL THEN id = ?1 ELSE name = ?2 END",
	/*
	 * The user's routing in one statement (one read, which a send makes per
	 * recipient): the user's fields on every row, a rule on each, or one
	 * row with none.
	 */
	[S_PREFS_USER] = "SELECT u.email, u.tz, u.quiet_start, u.quiet_end, u.quiet_days, "
	    "u.digest, u.email_if_unread, p.type, p.channel, p.enabled FROM users u "
	    "LEFT JOIN preferences p ON p.user_id = u.id WHERE u.id = ?1 ORDER BY p.type, p.channel",
	[S_PREFS_CLEAR] = "DELETE FROM preferences WHERE user_id = ?1",
	[S_PREFS_INSERT] = "INSERT INTO preferences (user_id, type, channel, enabled) "
	    "VALUES (?1, ?2, ?3, ?4)",
	[S_PREFS_SET_USER] = "UPDATE users SET quiet_start = ?2, quiet_end = ?3, quiet_days = ?4, "
	    "digest = ?5, email_if_unread = ?6 WHERE id = ?1",
};

const struct stmt_table people_sql = {statements, S_PEOPLE__COUNT};

#define stmt(c, id) stmt_get((c), T_PEOPLE, (id))

/* The user object of the current row of a statement selecting UCOLS. */
json_t *
row_user(sqlite3_stmt *s)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "id", text_json(s, 0),
	    "email", text_json(s, 1), "name", text_json(s, 2), "tz", text_json(s, 3),
	    "locale", text_json(s, 4), "created_at", time_json(s, 5));
}

/* Does the user exist? */
int
user_exists(struct conn *c, const char *user)
{
	return query_on(c, T_PEOPLE, S_USER_EXISTS, "user_exists", NULL, NULL, "t", user);
}

/* Create the user if missing. */
int
user_ensure(struct conn *c, const char *user, int64_t now)
{
	if (exec_on(c, T_PEOPLE, S_USER_ENSURE, "user_ensure", "ti", user, now) != 0)
		return -1;
	return sqlite3_changes(c->db);
}

int
sqlite_user_exists(struct store *st, const char *user)
{
	return query(st, T_PEOPLE, S_USER_EXISTS, "user_exists", NULL, NULL, "t", user);
}

int
sqlite_user_get(struct store *st, const char *user, json_t **out)
{
	return query_one(st, T_PEOPLE, S_USER_GET, "user_get", row_user, out, "t", user);
}

struct user_put {
	const struct user_update *u;
	int64_t		 now;
	json_t		*out;
	bool		 created;
};

static int
user_put_w(struct conn *c, void *arg)
{
	struct user_put *p = arg;
	json_decref(p->out);
	p->out = NULL;
	const struct user_update *u = p->u;
	int made = user_ensure(c, u->id, p->now);
	if (made < 0)
		return -1;
	p->created = made > 0;
	if (u->set_email || u->set_tz)
		c->routing_changed = true;
	sqlite3_stmt *s = stmt(c, S_USER_UPDATE);
	bind_text(s, 1, u->id);
	sqlite3_bind_int(s, 2, u->set_email);
	bind_text(s, 3, u->email);
	sqlite3_bind_int(s, 4, u->set_name);
	bind_text(s, 5, u->name);
	sqlite3_bind_int(s, 6, u->set_tz);
	bind_text(s, 7, u->tz);
	sqlite3_bind_int(s, 8, u->set_locale);
	bind_text(s, 9, u->locale);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		p->out = row_user(s);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : fail(c, "user_update");
}

int
sqlite_user_put(struct store *st, const struct user_update *u, int64_t now,
    json_t **out, bool *created)
{
	struct user_put p = {.u = u, .now = now};
	int rc = store_write(st, user_put_w, &p);
	if (rc <= 0) {
		json_decref(p.out);
		return rc;
	}
	*out = p.out;
	*created = p.created;
	return rc;
}

/* Read a user's preferences and address on connection c; 0 when no such user. */
int
prefs_read(struct conn *c, const char *user, struct prefs *p, char *email, size_t elen,
    char *tz, size_t tzlen)
{
	/* Not the rules: only the first p->n of them are ever read. */
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
	sqlite3_stmt *s = stmt(c, S_PREFS_USER);
	bind_text(s, 1, user);
	int rc, rows = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (rows++ == 0) {
			const char *e = (const char *)sqlite3_column_text(s, 0);
			const char *z = (const char *)sqlite3_column_text(s, 1);
			if (email)
				str_copy(email, elen, e);
			if (tz)
				str_copy(tz, tzlen, z);
			if (sqlite3_column_type(s, 2) != SQLITE_NULL) {
				p->quiet = true;
				p->quiet_start = sqlite3_column_int(s, 2);
				p->quiet_end = sqlite3_column_int(s, 3);
				p->quiet_days = (unsigned)sqlite3_column_int(s, 4);
			}
			prefs_parse_digest((const char *)sqlite3_column_text(s, 5), &p->digest);
			p->email_if_unread = sqlite3_column_int64(s, 6);
		}
		if (sqlite3_column_type(s, 7) == SQLITE_NULL || p->n >= PREFS_MAX_RULES)
			continue;
		struct prefs_rule *r = &p->rules[p->n++];
		str_copy(r->type, sizeof r->type, (const char *)sqlite3_column_text(s, 7));
		r->channel = prefs_channel_of((const char *)sqlite3_column_text(s, 8));
		r->enabled = sqlite3_column_int(s, 9) != 0;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return fail(c, "prefs_user");
	return rows > 0;
}

int
sqlite_prefs_get(struct store *st, const char *user, struct prefs *p)
{
	struct conn *c = reader_get(st);
	int rc = prefs_read(c, user, p, NULL, 0, NULL, 0);
	reader_put(c);
	return rc;
}

/*
 * Routing kept between sends. Reading a recipient's took a read
 * transaction of its own and a tenth of a create's CPU; a topic send read
 * every member's (10 ms of a 10,000-member send). This process is the
 * database's only writer, and the only writes that change routing are
 * user_put's address or zone and prefs_update: each sets routing_changed,
 * and the group commit empties the cache after that transaction ends and
 * before its writer is answered. A read's result is kept only if no such
 * change ended since before the read began (the generation), so nothing
 * read from an older snapshot outlives a change. Only users who exist are
 * kept; a user made by a send has every default, as one unknown.
 */
#define ROUTE_SLOTS	4096
#define ROUTE_BYTES	(8u << 20)	/* past this, start again */

struct route_entry {
	struct route_entry *next;
	uint64_t	 hash;
	const char	*user, *email, *tz;	/* in text[] */
	/* struct prefs from its n on: all but the rules */
	unsigned char	 tail[sizeof(struct prefs) - offsetof(struct prefs, n)];
	size_t		 n;
	struct prefs_rule rules[];		/* n of them, then text[] */
};

void
route_cache_init(struct route_cache *rc)
{
	pthread_mutex_init(&rc->lock, NULL);
	rc->gen = 0;
	rc->slot = NULL;
	rc->bytes = 0;
}

static void
route_drop_all(struct route_cache *rc)
{
	for (size_t i = 0; rc->slot != NULL && i < ROUTE_SLOTS; i++) {
		for (struct route_entry *e = rc->slot[i], *next; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
		rc->slot[i] = NULL;
	}
	rc->bytes = 0;
}

/* Someone's routing changed: forget all that was kept, and what is being read. */
void
route_cache_clear(struct route_cache *rc)
{
	pthread_mutex_lock(&rc->lock);
	route_drop_all(rc);
	rc->gen++;
	pthread_mutex_unlock(&rc->lock);
}

void
route_cache_free(struct route_cache *rc)
{
	route_drop_all(rc);
	free(rc->slot);
	pthread_mutex_destroy(&rc->lock);
}

static uint64_t
route_gen(struct route_cache *rc)
{
	pthread_mutex_lock(&rc->lock);
	uint64_t g = rc->gen;
	pthread_mutex_unlock(&rc->lock);
	return g;
}

/* Fill p, email and tz from the kept routing of user; false when none is kept. */
static bool
route_find(struct route_cache *rc, const char *user, struct prefs *p, char *email,
    size_t elen, char *tz, size_t tzlen)
{
	uint64_t h = hash_str(user);
	bool found = false;
	pthread_mutex_lock(&rc->lock);
	for (struct route_entry *e = rc->slot ? rc->slot[h % ROUTE_SLOTS] : NULL; e; e = e->next) {
		if (e->hash != h || strcmp(e->user, user) != 0)
			continue;
		memcpy(&p->n, e->tail, sizeof e->tail);
		memcpy(p->rules, e->rules, e->n * sizeof *e->rules);
		p->n = e->n;
		str_copy(email, elen, e->email);
		str_copy(tz, tzlen, e->tz);
		found = true;
		break;
	}
	pthread_mutex_unlock(&rc->lock);
	return found;
}

/* Keep user's routing, read under generation gen, unless a change has ended since. */
static void
route_keep(struct route_cache *rc, uint64_t gen, const char *user, const struct prefs *p,
    const char *email, const char *tz)
{
	size_t lu = strlen(user) + 1, le = strlen(email) + 1, lt = strlen(tz) + 1;
	size_t size = offsetof(struct route_entry, rules) + p->n * sizeof p->rules[0] +
	    lu + le + lt;
	struct route_entry *e = malloc(size);
	if (e == NULL)
		return;
	char *text = (char *)&e->rules[p->n];
	e->hash = hash_str(user);
	e->user = memcpy(text, user, lu);
	e->email = memcpy(text + lu, email, le);
	e->tz = memcpy(text + lu + le, tz, lt);
	memcpy(e->tail, &p->n, sizeof e->tail);
	e->n = p->n;
	memcpy(e->rules, p->rules, p->n * sizeof p->rules[0]);
	pthread_mutex_lock(&rc->lock);
	if (rc->gen != gen) {
		pthread_mutex_unlock(&rc->lock);
		free(e);
		return;
	}
	if (rc->slot == NULL && (rc->slot = calloc(ROUTE_SLOTS, sizeof *rc->slot)) == NULL) {
		pthread_mutex_unlock(&rc->lock);
		free(e);
		return;
	}
	struct route_entry **pp = &rc->slot[e->hash % ROUTE_SLOTS];
	for (struct route_entry *o = *pp; o != NULL; o = o->next)
		if (o->hash == e->hash && strcmp(o->user, user) == 0) {
			/* Another send kept it meanwhile, from the same generation. */
			pthread_mutex_unlock(&rc->lock);
			free(e);
			return;
		}
	if (rc->bytes + size > ROUTE_BYTES)
		route_drop_all(rc);
	e->next = *pp;
	*pp = e;
	rc->bytes += size;
	pthread_mutex_unlock(&rc->lock);
}

int
sqlite_recipients(struct store *st, const char *const *users, size_t n, struct prefs *p,
    recipient_fn fn, void *arg)
{
	char email[320], tz[80];
	struct route_cache *routes = &SQ(st)->routes;
	uint64_t gen = route_gen(routes);	/* before any read */
	struct conn *c = NULL;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (route_find(routes, users[i], p, email, sizeof email, tz, sizeof tz)) {
			rc = fn(arg, i, p, email, tz);
			continue;
		}
		if (c == NULL) {
			c = reader_get(st);
			/* One alone needs no transaction of its own. */
			if (i + 1 < n && read_begin(c) != 0) {
				rc = -1;
				break;
			}
		}
		int found = prefs_read(c, users[i], p, email, sizeof email, tz, sizeof tz);
		if (found > 0)
			route_keep(routes, gen, users[i], p, email, tz);
		rc = found < 0 ? -1 : fn(arg, i, p, email, tz);
	}
	if (c != NULL) {
		read_end(c);
		reader_put(c);
	}
	return rc;
}

struct prefs_change {
	const char	*user;
	int64_t		 now;
	bool		(*fn)(struct prefs *p, void *arg);
	void		*arg;
	struct prefs	 p;
};

static int
prefs_update_w(struct conn *c, void *arg)
{
	struct prefs_change *pc = arg;
	struct prefs *p = &pc->p;
	if (user_ensure(c, pc->user, pc->now) < 0 || prefs_read(c, pc->user, p, NULL, 0, NULL, 0) < 0)
		return -1;
	if (!pc->fn(p, pc->arg))
		return 0;
	c->routing_changed = true;
	sqlite3_stmt *s;
	if (exec_on(c, T_PEOPLE, S_PREFS_CLEAR, "prefs_clear", "t", pc->user) != 0)
		return -1;
	for (size_t i = 0; i < p->n; i++) {
		s = stmt(c, S_PREFS_INSERT);
		bind_text(s, 1, pc->user);
		bind_text(s, 2, p->rules[i].type);
		bind_text(s, 3, prefs_channel_name(p->rules[i].channel));
		sqlite3_bind_int(s, 4, p->rules[i].enabled);
		if (step_done(c, s, "prefs_insert") != 0)
			return -1;
	}
	s = stmt(c, S_PREFS_SET_USER);
	bind_text(s, 1, pc->user);
	if (p->quiet) {
		sqlite3_bind_int(s, 2, p->quiet_start);
		sqlite3_bind_int(s, 3, p->quiet_end);
		sqlite3_bind_int(s, 4, (int)p->quiet_days);
	}
	bind_text(s, 5, prefs_digest_name(p->digest));
	if (p->email_if_unread > 0)
		sqlite3_bind_int64(s, 6, p->email_if_unread);
	return step_done(c, s, "prefs_set_user") == 0 ? 1 : -1;
}

int
sqlite_prefs_update(struct store *st, const char *user, int64_t now,
    bool (*fn)(struct prefs *p, void *arg), void *arg, struct prefs *out)
{
	struct prefs_change *pc = calloc(1, sizeof *pc);
	if (pc == NULL)
		return -1;
	*pc = (struct prefs_change){.user = user, .now = now, .fn = fn, .arg = arg};
	int rc = store_write(st, prefs_update_w, pc);
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

/* Add the user to the topic; its size after, kept in the same transaction. */
static int
topic_add_w(struct conn *c, void *arg)
{
	struct topic_change *p = arg;
	p->count = 0;
	if (user_ensure(c, p->user, p->now) < 0)
		return -1;
	if (exec_on(c, T_PEOPLE, S_TOPIC_ADD, "topic_add", "tti",
	    p->topic, p->user, p->now) != 0)
		return -1;
	p->changed = sqlite3_changes(c->db) > 0;
	int rc = p->changed ?
	    query_on(c, T_PEOPLE, S_TOPIC_GROW, "topic_grow", row_ints, &p->count, "t", p->topic) :
	    query_on(c, T_PEOPLE, S_TOPIC_SIZE, "topic_size", row_ints, &p->count, "t", p->topic);
	return rc < 0 ? -1 : 1;
}

/* Remove the user from the topic, and the topic's row with its last member. */
static int
topic_remove_w(struct conn *c, void *arg)
{
	struct topic_change *p = arg;
	p->count = 0;
	if (exec_on(c, T_PEOPLE, S_TOPIC_REMOVE, "topic_remove", "tt", p->topic, p->user) != 0)
		return -1;
	if (sqlite3_changes(c->db) == 0)
		return 0;
	if (exec_on(c, T_PEOPLE, S_TOPIC_LAST, "topic_last", "t", p->topic) != 0)
		return -1;
	if (sqlite3_changes(c->db) > 0)
		return 1;
	return query_on(c, T_PEOPLE, S_TOPIC_SHRINK, "topic_shrink", row_ints, &p->count, "t",
	    p->topic) < 0 ? -1 : 1;
}

int
sqlite_topic_add(struct store *st, const char *topic, const char *user, int64_t now,
    bool *added, int64_t *count)
{
	struct topic_change p = {topic, user, now, false, 0};
	int rc = store_write(st, topic_add_w, &p);
	*added = p.changed;
	*count = p.count;
	return rc;
}

int
sqlite_topic_remove(struct store *st, const char *topic, const char *user, int64_t *count)
{
	struct topic_change p = {topic, user, 0, false, 0};
	int rc = store_write(st, topic_remove_w, &p);
	*count = p.count;
	return rc;
}

/* Topics whose kept size disagrees with their members, {"topic","counter","actual"}. */
int
topic_mismatches(struct conn *c, json_t *list)
{
	return mismatch_rows(c, stmt_get(c, T_PEOPLE, S_TOPIC_CHECK), "topic", "topic_check",
	    list);
}

/* Set the kept sizes that disagree (fixed: the mismatches found, replaced). */
int
topic_repair(struct conn *c, json_t *fixed)
{
	json_t *m;
	size_t i;
	json_array_clear(fixed);
	if (topic_mismatches(c, fixed) < 0)
		return -1;
	json_array_foreach(fixed, i, m) {
		const char *t = json_string_value(json_object_get(m, "topic"));
		int64_t n = (int64_t)json_integer_value(json_object_get(m, "actual"));
		if ((n == 0 ? exec_on(c, T_PEOPLE, S_TOPIC_DROP, "topic_drop", "t", t) :
		    exec_on(c, T_PEOPLE, S_TOPIC_SET, "topic_set", "ti", t, n)) != 0)
			return -1;
	}
	return 1;
}

/* The first column, as text. */
static json_t *
row_text(sqlite3_stmt *s)
{
	return text_json(s, 0);
}

int
sqlite_topic_members(struct store *st, const char *topic, json_t **members)
{
	int rc = query_list(st, T_PEOPLE, S_TOPIC_MEMBERS, "topic_members", row_text, members,
	    "t", topic);
	if (rc > 0 && json_array_size(*members) == 0) {
		json_decref(*members);
		rc = 0;
	}
	return rc;
}

struct key_args {
	const char		*name;
	const unsigned char	*hash;
	int64_t			 id, now;
};

static int
key_create_w(struct conn *c, void *arg)
{
	struct key_args *p = arg;
	sqlite3_stmt *s = stmt(c, S_KEY_INSERT);
	bind_text(s, 1, p->name);
	sqlite3_bind_blob(s, 2, p->hash, 32, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, p->now);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		p->id = sqlite3_column_int64(s, 0);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? 1 : fail(c, "key_insert");
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fail(c, "key_insert");
}

int
sqlite_key_create(struct store *st, const char *name, const unsigned char hash[32],
    int64_t now, int64_t *id)
{
	struct key_args p = {name, hash, 0, now};
	int rc = store_write(st, key_create_w, &p);
	*id = p.id;
	return rc;
}

static int
key_touch_w(struct conn *c, void *arg)
{
	struct key_args *p = arg;
	return exec_on(c, T_PEOPLE, S_KEY_TOUCH, "key_touch", "ii", p->id, p->now) == 0 ? 1 : -1;
}

int
sqlite_key_lookup(struct store *st, const unsigned char hash[32], int64_t *id,
    int64_t *last_used)
{
	int64_t v[2] = {0, 0};
	int rc = query(st, T_PEOPLE, S_KEY_LOOKUP, "key_lookup", row_ints, v, "h", hash);
	*id = v[0];
	*last_used = v[1];
	return rc;
}

int
sqlite_key_touch(struct store *st, int64_t id, int64_t now)
{
	struct key_args p = {NULL, NULL, id, now};
	return store_write(st, key_touch_w, &p);
}

/* A key of S_KEY_LIST. */
static json_t *
row_key(sqlite3_stmt *s)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)sqlite3_column_int64(s, 0),
	    "name", text_json(s, 1), "created_at", time_json(s, 2),
	    "last_used_at", time_json(s, 3), "revoked_at", time_json(s, 4));
}

int
sqlite_key_list(struct store *st, json_t **out)
{
	json_t *keys;
	if (query_list(st, T_PEOPLE, S_KEY_LIST, "key_list", row_key, &keys, NULL) < 0)
		return -1;
	*out = json_pack("{s:o}", "keys", keys);
	return 1;
}

static int
key_revoke_w(struct conn *c, void *arg)
{
	struct key_args *p = arg;
	if (exec_on(c, T_PEOPLE, S_KEY_REVOKE, "key_revoke", "iti",
	    p->id, p->name, p->now) != 0)
		return -1;
	return sqlite3_changes(c->db) > 0;
}

/* After the commit: whoever keeps keys forgets them. */
static void
key_revoke_pub(void *arg)
{
	(void)arg;
	events_emit(EVENT_KEY_REVOKED, "", NULL);
}

int
sqlite_key_revoke(struct store *st, int64_t id, const char *name, int64_t now)
{
	struct key_args p = {name, NULL, id, now};
	return store_write_pub(st, key_revoke_w, key_revoke_pub, &p);
}
