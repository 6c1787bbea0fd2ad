/* mailbox — the mail the SMTP sink captured. */
#define _GNU_SOURCE
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "util.h"

/* Statements about captured mail. */
enum mail_stmt {
	S_MAIL_INSERT,
	S_MAIL_COUNTS,
	S_MAIL_PAGE,
	S_MAIL_GET,
	S_MAIL_LATEST,
	S_MAIL_SET_READ,
	S_MAIL_SET_READ_ALL,
	S_MAIL_DELETE,
	S_MAIL_DELETE_ALL,
	S_MAIL_PRUNE,
	S_MAIL_PRUNE_AGE,
	S_MAIL_PRUNE_BYTES,
	S_MAIL_AFTER,
	S_MAIL_SCAN,
	S_MAIL__COUNT
};

static const char *const statements[S_MAIL__COUNT] = {
	[S_MAIL_INSERT] = "INSERT INTO mail (uid, received_at, mail_from, rcpt_to, size, "
	    "summary, search, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	/*
	 * From the indexes: a FILTER over the table read every row's first
	 * page, 7.5 ms at 5,000 messages, on every list and every mail event.
	 */
	[S_MAIL_COUNTS] = "SELECT (SELECT count(*) FROM mail INDEXED BY mail_received), "
	    "(SELECT count(*) FROM mail INDEXED BY mail_unread WHERE read = 0)",
	[S_MAIL_PAGE] = "SELECT uid, received_at, size, read, summary FROM mail "
	    "WHERE (?3 IS NULL OR search LIKE ?3 ESCAPE '\\') "
	    "ORDER BY id DESC LIMIT ?2 OFFSET ?1",
	[S_MAIL_GET] = "SELECT uid, received_at, size, read, summary, raw, mail_from, rcpt_to, id "
	    "FROM mail WHERE uid = ?1",
	[S_MAIL_LATEST] = "SELECT uid, received_at, size, read, summary, raw, mail_from, rcpt_to, id "
	    "FROM mail ORDER BY id DESC LIMIT 1",
	[S_MAIL_SET_READ] = "UPDATE mail SET read = ?2 WHERE uid = ?1",
	[S_MAIL_SET_READ_ALL] = "UPDATE mail SET read = ?1",
	[S_MAIL_DELETE] = "DELETE FROM mail WHERE uid = ?1",
	[S_MAIL_DELETE_ALL] = "DELETE FROM mail",
	[S_MAIL_PRUNE] = "DELETE FROM mail WHERE id <= (SELECT id FROM mail INDEXED BY mail_received ORDER BY received_at DESC, id DESC "
	    "LIMIT 1 OFFSET ?1)",
	[S_MAIL_PRUNE_AGE] = "DELETE FROM mail WHERE received_at < ?1",
	/* The oldest, past the newest ?1 bytes (in the order S_MAIL_PRUNE keeps); never the newest. */
	[S_MAIL_PRUNE_BYTES] = "DELETE FROM mail WHERE id IN (SELECT id FROM (SELECT id, size, "
	    "sum(size) OVER (ORDER BY received_at DESC, id DESC) AS kept FROM mail) "
	    "WHERE kept > ?1 AND kept > size)",
	[S_MAIL_AFTER] = "SELECT uid, received_at, size, read, summary, id FROM mail WHERE id > ?1 "
	    "AND (?2 IS NULL OR search LIKE ?2 ESCAPE '\\') ORDER BY id LIMIT 1",
	[S_MAIL_SCAN] = "SELECT uid, received_at, size, read, summary, search, id FROM mail "
	    "WHERE id > ?1 ORDER BY id DESC",
};

const struct stmt_table mail_sql = {statements, S_MAIL__COUNT};

#define stmt(c, id) stmt_get((c), T_MAIL, (id))

/* Retention is applied on every PRUNE_EVERY-th message stored. */
#define PRUNE_EVERY 64

/* A mail summary object: the parsed summary plus ID, Read, Created, Size. */
static json_t *
row_mail_summary(sqlite3_stmt *s)
{
	const unsigned char *sum = sqlite3_column_text(s, 4);
	json_t *o = sum ? json_loads((const char *)sum, 0, NULL) : NULL;
	char ts[40];
	if (o == NULL)
		o = json_object();
	time_format_rfc3339(ts, sizeof ts, sqlite3_column_int64(s, 1));
	json_object_set_new(o, "ID", text_json(s, 0));
	json_object_set_new(o, "Read", json_boolean(sqlite3_column_int(s, 3)));
	json_object_set_new(o, "Created", json_string(ts));
	json_object_set_new(o, "Size", json_integer(sqlite3_column_int64(s, 2)));
	return o;
}

struct mail_put {
	const struct mail_new	*m;
	json_t			*summary;	/* out: the stored summary object */
	int64_t			 pruned;	/* out: old messages retention deleted */
};

static int
mail_insert_w(struct conn *c, void *arg)
{
	struct mail_put *p = arg;
	const struct mail_new *m = p->m;
	sqlite3_stmt *s = stmt(c, S_MAIL_INSERT);
	bind_text(s, 1, m->uid);
	sqlite3_bind_int64(s, 2, m->received_at);
	bind_text(s, 3, m->from);
	bind_text(s, 4, m->rcpt_json);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)m->len);
	bind_text(s, 6, m->summary_json);
	bind_text(s, 7, m->search);
	sqlite3_bind_blob64(s, 8, m->raw, m->len, SQLITE_STATIC);
	if (step_done(c, s, "mail_insert") != 0)
		return -1;
	/*
	 * Retention: keep the newest max, none older than max_age, at most
	 * max_bytes in all. Checked on every PRUNE_EVERY-th message, so it
	 * costs ingestion almost nothing (the mailbox may exceed mail_max by
	 * that many meanwhile), or sooner when big ones arrive: the mailbox
	 * passes max_bytes by at most a sixteenth, and one message.
	 */
	p->pruned = 0;
	c->mail_unpruned += (int64_t)m->len;
	if (sqlite3_last_insert_rowid(c->db) % PRUNE_EVERY != 0 &&
	    (m->keep_bytes == 0 || c->mail_unpruned < m->keep_bytes / 16))
		return 1;
	c->mail_unpruned = 0;
	const struct {
		enum mail_stmt	 id;
		int64_t		 limit;
	} rules[] = {{S_MAIL_PRUNE_BYTES, m->keep_bytes}, {S_MAIL_PRUNE, m->keep},
	    {S_MAIL_PRUNE_AGE, m->older_than}};
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
		if (rules[i].limit <= 0)
			continue;
		s = stmt(c, rules[i].id);
		sqlite3_bind_int64(s, 1, rules[i].limit);
		if (step_done(c, s, "mail_prune") != 0)
			return -1;
		p->pruned += sqlite3_changes(c->db);
	}
	return 1;
}

static void
mail_insert_publish(void *arg)
{
	struct mail_put *p = arg;
	char ts[40];
	/* The caller's object, not a parse of the text it was dumped to. */
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

void
sqlite_mail_insert(struct store *st, const struct mail_new *m, int n, int *rcs)
{
	struct mail_put p[STORE_BATCH_MAX];
	void *args[STORE_BATCH_MAX];
	struct wreq reqs[STORE_BATCH_MAX];
	for (int i = 0; i < n; i++) {
		p[i] = (struct mail_put){&m[i], NULL, 0};
		args[i] = &p[i];
	}
	store_write_many(st, mail_insert_w, mail_insert_publish, args, n, rcs, reqs);
	for (int i = 0; i < n; i++)
		json_decref(p[i].summary);
}

int
sqlite_mail_list(struct store *st, int64_t start, int64_t limit, const char *like, json_t **out)
{
	json_t *list = json_array();
	int64_t total = 0, unread = 0;
	struct conn *c = reader_get(st);
	int rc = read_begin(c) == 0 ? 1 : -1;
	sqlite3_stmt *s = stmt(c, S_MAIL_COUNTS);
	if (rc > 0 && sqlite3_step(s) == SQLITE_ROW) {
		total = sqlite3_column_int64(s, 0);
		unread = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	s = stmt(c, S_MAIL_PAGE);
	sqlite3_bind_int64(s, 1, start);
	sqlite3_bind_int64(s, 2, limit);
	bind_text(s, 3, like);
	int r;
	while (rc > 0 && (r = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(list, row_mail_summary(s));
	sqlite3_reset(s);
	read_end(c);
	reader_put(c);
	if (rc <= 0) {
		json_decref(list);
		return rc;
	}
	*out = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "unread",
	    (json_int_t)unread, "start", (json_int_t)start, "messages", list);
	return 1;
}

/* row_fn: a whole message of S_MAIL_GET or S_MAIL_LATEST into a struct mail_got. */
static bool
row_mail_got(sqlite3_stmt *s, void *arg)
{
	struct mail_got *m = arg;
	size_t len = (size_t)sqlite3_column_bytes(s, 5);
	m->summary = row_mail_summary(s);
	if ((m->raw = malloc(len + 1)) != NULL) {
		memcpy(m->raw, sqlite3_column_blob(s, 5), len);
		m->raw[len] = '\0';
	}
	m->len = len;
	m->seq = sqlite3_column_int64(s, 8);
	return false;
}

int
sqlite_mail_get(struct store *st, const char *uid, struct mail_got *m)
{
	bool latest = strcmp(uid, "latest") == 0;
	m->summary = NULL;
	m->raw = NULL;
	int rc = latest ? query(st, T_MAIL, S_MAIL_LATEST, "mail_get", row_mail_got, m, NULL) :
	    query(st, T_MAIL, S_MAIL_GET, "mail_get", row_mail_got, m, "t", uid);
	if (rc > 0 && m->raw == NULL) {
		json_decref(m->summary);
		m->summary = NULL;
		return -1;
	}
	return rc;
}

/* A summary and its sequence, from S_MAIL_AFTER. */
struct mail_next {
	json_t		*summary;
	int64_t		 seq;
};

static bool
row_mail_next(sqlite3_stmt *s, void *arg)
{
	struct mail_next *m = arg;
	m->summary = row_mail_summary(s);
	m->seq = sqlite3_column_int64(s, 5);
	return false;
}

int
sqlite_mail_next(struct store *st, int64_t after_seq, const char *like, json_t **summary,
    int64_t *seq)
{
	struct mail_next m = {NULL, 0};
	int rc = query(st, T_MAIL, S_MAIL_AFTER, "mail_next", row_mail_next, &m, "it", after_seq,
	    like);
	if (rc > 0) {
		*summary = m.summary;
		*seq = m.seq;
	}
	return rc;
}

struct mail_change {
	json_t		*uids;		/* NULL: all */
	int		 read;		/* -1: delete */
	int64_t		 changed;
};

static int
mail_change_w(struct conn *c, void *arg)
{
	struct mail_change *p = arg;
	size_t i;
	json_t *v;
	p->changed = 0;
	if (p->uids == NULL) {
		sqlite3_stmt *s = stmt(c, p->read < 0 ? S_MAIL_DELETE_ALL : S_MAIL_SET_READ_ALL);
		if (p->read >= 0)
			sqlite3_bind_int(s, 1, p->read);
		if (step_done(c, s, "mail_change_all") != 0)
			return -1;
		p->changed = sqlite3_changes(c->db);
		return 1;
	}
	json_array_foreach(p->uids, i, v) {
		sqlite3_stmt *s = stmt(c, p->read < 0 ? S_MAIL_DELETE : S_MAIL_SET_READ);
		bind_text(s, 1, json_string_value(v));
		if (p->read >= 0)
			sqlite3_bind_int(s, 2, p->read);
		if (step_done(c, s, "mail_change") != 0)
			return -1;
		p->changed += sqlite3_changes(c->db);
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
sqlite_mail_change(struct store *st, json_t *uids, int read, int64_t *changed)
{
	struct mail_change p = {uids, read, 0};
	int rc = store_write_pub(st, mail_change_w, mail_change_publish, &p);
	*changed = p.changed;
	return rc;
}

/* A scan's callback, and whether it asked to stop. */
struct mail_scan {
	int		(*fn)(void *arg, json_t *summary, const char *search, int64_t seq);
	void		*arg;
};

static bool
row_mail_scan(sqlite3_stmt *s, void *arg)
{
	struct mail_scan *m = arg;
	json_t *sum = row_mail_summary(s);
	const unsigned char *search = sqlite3_column_text(s, 5);
	int stop = m->fn(m->arg, sum, search ? (const char *)search : "", sqlite3_column_int64(s, 6));
	json_decref(sum);
	return !stop;
}

int
sqlite_mail_scan(struct store *st, int64_t after_seq, int (*fn)(void *arg, json_t *summary,
    const char *search, int64_t seq), void *arg)
{
	struct mail_scan m = {fn, arg};
	return query(st, T_MAIL, S_MAIL_SCAN, "mail_scan", row_mail_scan, &m, "i", after_seq) < 0 ?
	    -1 : 1;
}
