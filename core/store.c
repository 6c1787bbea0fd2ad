/*
 * store — persistent state in SQLite; the only file that includes sqlite3.h.
 *
 * One writer connection and a few reader connections on one WAL database.
 * Writes are queued and run by whichever writer gets there first, each in
 * its own SAVEPOINT inside one transaction with the writes queued behind
 * it: concurrent writers share one commit (and one fsync), and every
 * caller returns only after the commit that carried its write.
 */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "events.h"
#include "log.h"
#include "util.h"
#include "walvfs.h"

/* The columns a notification object is made of, in row_notification() order. */
#define NCOLS "id, user_id, type, category, priority, title, body, data, " \
	"action_url, created_at, read_at, archived_at, deliver_at, scheduled_id"
/*
 * While a scheduled notification waits for the worker to release it, its
 * deliver_at holds the due time plus HIDDEN, so that every visibility test
 * (deliver_at <= now) keeps it out of sight even once the time has passed:
 * it becomes visible only as the new row the release writes.
 */
#define HIDDEN (1LL << 52)
#define UCOLS "id, email, name, tz, locale, created_at"
#define READERS 4

/* Every statement, prepared once per connection at open and reused. */
enum stmt_id {
	S_BEGIN,
	S_READ_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_PING,
	S_COUNTS,
	S_USER_EXISTS,
	S_USER_ENSURE,
	S_USER_ENSURE_UNREAD,
	S_USER_GET,
	S_USER_UPDATE,
	S_NOTIF_INSERT,
	S_NOTIF_BY_KEY,
	S_NOTIF_GET,
	S_NOTIF_GET_RELEASED,
	S_NOTIF_LIST,
	S_NOTIF_LIST_UNREAD,
	S_NOTIF_LIST_ARCHIVED,
	S_NOTIF_OWNED,
	S_NOTIF_OWNED_RELEASED,
	S_NOTIF_SET_READ,
	S_NOTIF_SET_UNREAD,
	S_NOTIF_SET_ARCHIVED,
	S_NOTIF_SET_UNARCHIVED,
	S_NOTIF_MAX_VISIBLE,
	S_NOTIF_READ_ALL,
	S_NOTIF_DELETE,
	S_UNREAD_COUNT,
	S_UNREAD_ADD,
	S_UNREAD_SET,
	S_UNREAD_RELEASED,
	S_UNREAD_CHECK,
	S_NOTIF_AFTER,
	S_TOPIC_ADD,
	S_TOPIC_REMOVE,
	S_TOPIC_MEMBERS,
	S_TOPIC_COUNT,
	S_KEY_INSERT,
	S_KEY_LOOKUP,
	S_KEY_TOUCH,
	S_KEY_LIST,
	S_KEY_REVOKE,
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
	S_PREFS_RULES,
	S_PREFS_USER,
	S_PREFS_CLEAR,
	S_PREFS_INSERT,
	S_PREFS_SET_USER,
	S_NOTIF_SCHEDULED,
	S_NOTIF_CANCEL,
	S_NOTIF_RELEASE,
	S_NOTIF_KEY_OF,
	S_NOTIF_SET_KEY,
	S_NOTIF_DROP,
	S_DELIV_MOVE,
	S_DELIV_NOTIF,
	S_DELIV_INSERT,
	S_DELIV_CLAIM,
	S_DELIV_NEXT,
	S_DELIV_UNCLAIM,
	S_DELIV_FINISH,
	S_DELIV_OF,
	S_DIGEST_CANDIDATES,
	S_DIGEST_INSERT,
	S_DIGEST_TALLY,
	S_DIGEST_PARKED_DONE,
	S_DIGEST_EMAIL,
	S_DIGEST_SET,
	S_DIGEST_GET,
	S_DIGEST_ITEMS,
	S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_READ_BEGIN] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT w",
	[S_RELEASE] = "RELEASE w",
	[S_ROLLBACK_TO] = "ROLLBACK TO w",
	[S_PING] = "SELECT count(*) FROM sqlite_schema",
	[S_COUNTS] = "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM notifications), "
	    "(SELECT count(*) FROM mail)",
	[S_USER_EXISTS] = "SELECT 1 FROM users WHERE id = ?1",
	[S_USER_ENSURE] = "INSERT INTO users (id, created_at) VALUES (?1, ?2) "
	    "ON CONFLICT (id) DO NOTHING",
	/* The user, made if new, with one more unread: a create's one write to users. */
	[S_USER_ENSURE_UNREAD] = "INSERT INTO users (id, created_at, unread) VALUES (?1, ?2, 1) "
	    "ON CONFLICT (id) DO UPDATE SET unread = unread + 1",
	[S_USER_GET] = "SELECT " UCOLS " FROM users WHERE id = ?1",
	[S_USER_UPDATE] = "UPDATE users SET "
	    "email = CASE WHEN ?2 THEN ?3 ELSE email END, "
	    "name = CASE WHEN ?4 THEN ?5 ELSE name END, "
	    "tz = CASE WHEN ?6 THEN ?7 ELSE tz END, "
	    "locale = CASE WHEN ?8 THEN ?9 ELSE locale END "
	    "WHERE id = ?1 RETURNING " UCOLS,
	[S_NOTIF_INSERT] = "INSERT INTO notifications (user_id, type, category, "
	    "priority, title, body, data, action_url, dedupe_key, created_at, "
	    "deliver_at, archived_at, email_skipped) VALUES (?1, ?2, ?3, coalesce(?4, 'normal'), "
	    "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (user_id, dedupe_key) DO NOTHING",
	[S_NOTIF_BY_KEY] = "SELECT " NCOLS " FROM notifications "
	    "WHERE user_id = ?1 AND dedupe_key = ?2",
	[S_NOTIF_GET] = "SELECT " NCOLS " FROM notifications WHERE id = ?1",
	[S_NOTIF_GET_RELEASED] = "SELECT " NCOLS " FROM notifications WHERE scheduled_id = ?1",
	/*
	 * A page of the inbox, of its unread, of the archived; each walks its
	 * own index (sql/010_inbox_indexes.sql) in id order. test_store
	 * checks their plans with EXPLAIN QUERY PLAN.
	 */
	[S_NOTIF_LIST] = "SELECT " NCOLS " FROM notifications INDEXED BY notifications_by_user "
	    "WHERE user_id = ?1 AND id < ?2 AND archived_at IS NULL "
	    "AND (deliver_at IS NULL OR deliver_at <= ?7) "
	    "AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR category = ?5) "
	    "ORDER BY id DESC LIMIT ?8",
	[S_NOTIF_LIST_UNREAD] = "SELECT " NCOLS " FROM notifications INDEXED BY "
	    "notifications_unread WHERE user_id = ?1 AND id < ?2 AND read_at IS NULL "
	    "AND archived_at IS NULL AND (deliver_at IS NULL OR deliver_at <= ?7) "
	    "AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR category = ?5) "
	    "ORDER BY id DESC LIMIT ?8",
	[S_NOTIF_LIST_ARCHIVED] = "SELECT " NCOLS " FROM notifications INDEXED BY "
	    "notifications_archived WHERE user_id = ?1 AND id < ?2 AND archived_at IS NOT NULL "
	    "AND (?3 = 0 OR read_at IS NULL) "
	    "AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR category = ?5) "
	    "AND (deliver_at IS NULL OR deliver_at <= ?7) ORDER BY id DESC LIMIT ?8",
	[S_NOTIF_OWNED] = "SELECT id FROM notifications "
	    "WHERE id = ?1 AND user_id = ?2 AND (deliver_at IS NULL OR deliver_at <= ?3)",
	[S_NOTIF_OWNED_RELEASED] = "SELECT id FROM notifications "
	    "WHERE scheduled_id = ?1 AND user_id = ?2 AND (deliver_at IS NULL OR deliver_at <= ?3)",
	/* Each returns what the change does to the unread count: -1, 0 or +1. */
	[S_NOTIF_SET_READ] = "UPDATE notifications SET read_at = ?3 "
	    "WHERE id = ?1 AND user_id = ?2 AND read_at IS NULL "
	    "RETURNING -(archived_at IS NULL)",
	[S_NOTIF_SET_UNREAD] = "UPDATE notifications SET read_at = NULL "
	    "WHERE id = ?1 AND user_id = ?2 AND read_at IS NOT NULL "
	    "RETURNING archived_at IS NULL",
	[S_NOTIF_SET_ARCHIVED] = "UPDATE notifications SET archived_at = ?3 "
	    "WHERE id = ?1 AND user_id = ?2 AND archived_at IS NULL "
	    "RETURNING -(read_at IS NULL)",
	[S_NOTIF_SET_UNARCHIVED] = "UPDATE notifications SET archived_at = NULL "
	    "WHERE id = ?1 AND user_id = ?2 AND archived_at IS NOT NULL "
	    "RETURNING read_at IS NULL",
	[S_NOTIF_MAX_VISIBLE] = "SELECT coalesce(max(id), 0) FROM notifications "
	    "WHERE user_id = ?1 AND (deliver_at IS NULL OR deliver_at <= ?2)",
	[S_NOTIF_READ_ALL] = "UPDATE notifications SET read_at = ?2 "
	    "WHERE user_id = ?1 AND id <= ?3 AND read_at IS NULL "
	    "AND (deliver_at IS NULL OR deliver_at <= ?2)",
	[S_NOTIF_DELETE] = "DELETE FROM notifications WHERE id = ?1 "
	    "AND (?2 IS NULL OR user_id = ?2) RETURNING user_id, "
	    "read_at IS NULL AND archived_at IS NULL AND (deliver_at IS NULL OR deliver_at < ?3)",
	/* The user's counter (sql/009_unread_counter.sql); no row: no such user. */
	[S_UNREAD_COUNT] = "SELECT unread FROM users WHERE id = ?1",
	[S_UNREAD_ADD] = "UPDATE users SET unread = unread + ?2 WHERE id = ?1 RETURNING unread",
	[S_UNREAD_SET] = "UPDATE users SET unread = ?2 WHERE id = ?1",
	/* The released row, when it counts: visible by then, unread, not archived. */
	[S_UNREAD_RELEASED] = "UPDATE users SET unread = unread + 1 WHERE id = (SELECT user_id "
	    "FROM notifications WHERE id = ?1 AND read_at IS NULL AND archived_at IS NULL)",
	/* For check: users whose counter disagrees with their rows. */
	[S_UNREAD_CHECK] = "SELECT u.id, u.unread, (SELECT count(*) FROM notifications n "
	    "WHERE n.user_id = u.id AND n.read_at IS NULL AND n.archived_at IS NULL "
	    "AND (n.deliver_at IS NULL OR n.deliver_at < ?1)) AS actual FROM users u "
	    "WHERE unread != actual ORDER BY u.id",
	[S_NOTIF_AFTER] = "SELECT " NCOLS " FROM notifications "
	    "WHERE user_id = ?1 AND id > ?2 AND (deliver_at IS NULL OR deliver_at <= ?3) "
	    "ORDER BY id LIMIT ?4",
	[S_TOPIC_ADD] = "INSERT INTO topic_members (topic, user_id, added_at) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
	[S_TOPIC_REMOVE] = "DELETE FROM topic_members WHERE topic = ?1 AND user_id = ?2",
	[S_TOPIC_COUNT] = "SELECT count(*) FROM topic_members WHERE topic = ?1",
	[S_TOPIC_MEMBERS] = "SELECT user_id FROM topic_members WHERE topic = ?1 "
	    "ORDER BY user_id",
	[S_KEY_INSERT] = "INSERT INTO api_keys (name, hash, created_at) "
	    "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING RETURNING id",
	[S_KEY_LOOKUP] = "SELECT id, coalesce(last_used_at, 0) FROM api_keys "
	    "WHERE hash = ?1 AND revoked_at IS NULL",
	[S_KEY_TOUCH] = "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
	[S_KEY_LIST] = "SELECT id, name, created_at, last_used_at, revoked_at "
	    "FROM api_keys ORDER BY id",
	[S_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = ?3 WHERE revoked_at IS NULL "
	    "AND CASE WHEN ?2 IS NULL THEN id = ?1 ELSE name = ?2 END",
	[S_MAIL_INSERT] = "INSERT INTO mail (uid, received_at, mail_from, rcpt_to, size, "
	    "summary, search, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_MAIL_COUNTS] = "SELECT count(*), count(*) FILTER (WHERE read = 0) FROM mail",
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
	[S_MAIL_SCAN] = "SELECT uid, received_at, size, read, summary, search, id FROM mail "
	    "WHERE id > ?1 ORDER BY id DESC",
	[S_PREFS_RULES] = "SELECT type, channel, enabled FROM preferences WHERE user_id = ?1 "
	    "ORDER BY type, channel",
	[S_PREFS_USER] = "SELECT email, tz, quiet_start, quiet_end, quiet_days, digest, "
	    "email_if_unread FROM users WHERE id = ?1",
	[S_PREFS_CLEAR] = "DELETE FROM preferences WHERE user_id = ?1",
	[S_PREFS_INSERT] = "INSERT INTO preferences (user_id, type, channel, enabled) "
	    "VALUES (?1, ?2, ?3, ?4)",
	[S_PREFS_SET_USER] = "UPDATE users SET quiet_start = ?2, quiet_end = ?3, quiet_days = ?4, "
	    "digest = ?5, email_if_unread = ?6 WHERE id = ?1",
	[S_NOTIF_SCHEDULED] = "SELECT deliver_at, id FROM notifications "
	    "WHERE (id = ?1 OR scheduled_id = ?1) AND (?2 IS NULL OR user_id = ?2) "
	    "ORDER BY id = ?1 DESC LIMIT 1",
	[S_NOTIF_RELEASE] = "INSERT INTO notifications (user_id, type, category, priority, title, "
	    "body, data, action_url, created_at, deliver_at, read_at, seen_at, archived_at, "
	    "scheduled_id, email_skipped) SELECT user_id, type, category, priority, title, body, "
	    "data, action_url, created_at, deliver_at - ?2, read_at, seen_at, archived_at, id, "
	    "email_skipped FROM notifications WHERE id = ?1 AND deliver_at >= ?2",
	[S_NOTIF_KEY_OF] = "SELECT dedupe_key FROM notifications WHERE id = ?1",
	[S_NOTIF_SET_KEY] = "UPDATE notifications SET dedupe_key = ?2 WHERE id = ?1",
	[S_NOTIF_DROP] = "DELETE FROM notifications WHERE id = ?1",
	[S_DELIV_MOVE] = "UPDATE deliveries SET notification_id = ?2 WHERE notification_id = ?1",
	[S_DELIV_NOTIF] = "SELECT " NCOLS " FROM notifications WHERE id = "
	    "(SELECT notification_id FROM deliveries WHERE id = ?1)",
	[S_NOTIF_CANCEL] = "DELETE FROM notifications WHERE id = ?1",
	[S_DELIV_INSERT] = "INSERT INTO deliveries (notification_id, channel, status, "
	    "next_attempt_at, last_error, created_at, updated_at, sent_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
	[S_DELIV_CLAIM] = "UPDATE deliveries SET claimed = 1, attempts = attempts + 1, "
	    "updated_at = ?1 WHERE id IN (SELECT id FROM deliveries "
	    "WHERE status IN ('pending', 'deferred') AND next_attempt_at <= ?1 AND claimed = 0 "
	    "ORDER BY next_attempt_at LIMIT ?2) "
	    "RETURNING id, coalesce(notification_id, 0), channel, attempts, coalesce(digest_id, 0)",
	[S_DELIV_NEXT] = "SELECT min(next_attempt_at) FROM deliveries "
	    "WHERE status IN ('pending', 'deferred') AND claimed = 0",
	[S_DELIV_UNCLAIM] = "UPDATE deliveries SET claimed = 0 WHERE claimed = 1",
	[S_DELIV_FINISH] = "UPDATE deliveries SET status = ?2, claimed = 0, next_attempt_at = ?3, "
	    "last_error = coalesce(?4, last_error), sent_at = CASE WHEN ?2 = 'sent' THEN ?5 ELSE sent_at END, "
	    "updated_at = ?5 WHERE id = ?1",
	/*
	 * A notification shown at once has no in-app row (a create writes one
	 * only to hold or skip it): it is reported as sent when it was made;
	 * one whose email could not happen has no email row, but the reason
	 * (email_skipped): reported as a skipped delivery.
	 */
	[S_DELIV_OF] = "SELECT channel, status, attempts, next_attempt_at, last_error, created_at, "
	    "updated_at, sent_at, digest_id FROM (SELECT 0 AS k, 0 AS id, 'in_app' AS channel, "
	    "'sent' AS status, 0 AS attempts, NULL AS next_attempt_at, NULL AS last_error, "
	    "n.created_at, n.created_at AS updated_at, n.created_at AS sent_at, NULL AS digest_id "
	    "FROM notifications n WHERE n.id = ?1 AND NOT EXISTS (SELECT 1 FROM deliveries d "
	    "WHERE d.notification_id = ?1 AND d.channel = 'in_app') "
	    "UNION ALL SELECT 1, id, channel, status, attempts, next_attempt_at, last_error, "
	    "created_at, updated_at, sent_at, digest_id FROM deliveries WHERE notification_id = ?1 "
	    "UNION ALL SELECT 2, 0, 'email', 'skipped', 0, NULL, n.email_skipped, n.created_at, "
	    "n.created_at, NULL, NULL FROM notifications n WHERE n.id = ?1 "
	    "AND n.email_skipped IS NOT NULL AND NOT EXISTS (SELECT 1 FROM deliveries d "
	    "WHERE d.notification_id = ?1 AND d.channel = 'email')) ORDER BY k, id",
	/*
	 * The users a digest run of period ?1 looks at: in that mode, or switched
	 * off since with email parked for it (?2 is the reason parking wrote,
	 * 'daily digest'); with what they have parked and their last slot.
	 */
	[S_DIGEST_CANDIDATES] = "SELECT u.id, u.tz, (SELECT count(*) FROM notifications n "
	    "JOIN deliveries d ON d.notification_id = n.id AND d.channel = 'email' "
	    "WHERE n.user_id = u.id AND d.status = 'digest'), (SELECT slot FROM digests g "
	    "WHERE g.user_id = u.id AND g.period = ?1 ORDER BY g.slot DESC LIMIT 1) FROM users u "
	    "WHERE (?3 IS NULL OR u.id = ?3) AND (u.digest = ?1 OR (u.digest = 'off' AND "
	    "EXISTS (SELECT 1 FROM notifications n JOIN deliveries d ON d.notification_id = n.id "
	    "AND d.channel = 'email' WHERE n.user_id = u.id AND d.status = 'digest' "
	    "AND d.last_error = ?2))) ORDER BY u.id",
	[S_DIGEST_INSERT] = "INSERT INTO digests (user_id, period, slot, window_start, window_end, "
	    "items, read_skipped, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, ?6) "
	    "ON CONFLICT (user_id, period, slot) DO NOTHING RETURNING id",
	/* A user's parked email before ?2: unread, read. */
	[S_DIGEST_TALLY] = "SELECT count(*) FILTER (WHERE n.read_at IS NULL), "
	    "count(*) FILTER (WHERE n.read_at IS NOT NULL) FROM notifications n "
	    "JOIN deliveries d ON d.notification_id = n.id AND d.channel = 'email' "
	    "WHERE n.user_id = ?1 AND d.status = 'digest' AND d.created_at < ?2",
	[S_DIGEST_PARKED_DONE] = "UPDATE deliveries SET status = 'digested', digest_id = ?3, "
	    "updated_at = ?4 WHERE id IN (SELECT d.id FROM notifications n JOIN deliveries d "
	    "ON d.notification_id = n.id AND d.channel = 'email' WHERE n.user_id = ?1 "
	    "AND d.status = 'digest' AND d.created_at < ?2)",
	[S_DIGEST_EMAIL] = "INSERT INTO deliveries (notification_id, channel, status, "
	    "next_attempt_at, created_at, updated_at, digest_id) "
	    "VALUES (NULL, 'email', 'pending', ?2, ?2, ?2, ?1)",
	[S_DIGEST_SET] = "UPDATE digests SET items = ?2, read_skipped = ?3, delivery_id = ?4 "
	    "WHERE id = ?1",
	[S_DIGEST_GET] = "SELECT id, user_id, period, slot, window_start, window_end, items, "
	    "read_skipped, created_at, delivery_id FROM digests WHERE id = ?1",
	/* Its notifications, newest first: those unread when it was made (?2: all of them). */
	[S_DIGEST_ITEMS] = "SELECT " NCOLS " FROM notifications WHERE id IN (SELECT "
	    "notification_id FROM deliveries WHERE digest_id = ?1 AND notification_id IS NOT NULL) "
	    "AND (?2 OR read_at IS NULL OR read_at >= ?3) ORDER BY id DESC LIMIT ?4",
	[S_MAIL_AFTER] = "SELECT uid, received_at, size, read, summary, id FROM mail WHERE id > ?1 "
	    "AND (?2 IS NULL OR search LIKE ?2 ESCAPE '\\') ORDER BY id LIMIT 1",
};

/* One SQLite connection and its statements; used by one thread at a time. */
struct conn {
	sqlite3		*db;
	pthread_mutex_t	 lock;
	sqlite3_stmt	*stmt[S__COUNT];
	struct prefs	*prefs;		/* the writer's, for routing: ~18 KiB, made once */
	int64_t		 mail_unpruned;	/* the writer's: bytes of mail since retention ran */
};

/* Why the calling thread's last write failed (store_last_error). */
static _Thread_local enum store_error last_error;

/* A write waiting for (or done by) a batch. */
struct wreq {
	int		(*fn)(struct conn *c, void *arg);
	void		*arg;
	/* After the commit, in commit order, before anyone is woken: tell the world. */
	void		(*publish)(void *arg);
	int		 rc;
	enum store_error err;		/* why, when rc < 0 */
	bool		 done;		/* its batch is committed (or failed) */
	sem_t		 wake;		/* posted once: done, or lead the next batch */
	struct wreq	*next;
};

/* A recently used API key, so a request needs no query to check it. */
struct key_cache {
	unsigned char	 hash[32];
	int64_t		 id;
	int64_t		 touched;	/* ms: last_used_at as stored */
};
#define KEY_CACHE 64

struct store {
	struct conn	 w;			/* the writer */
	struct conn	 r[READERS];		/* readers */
	unsigned	 next_reader;
	pthread_mutex_t	 qlock;			/* guards the queue below */
	struct wreq	*queue, **qtail;
	bool		 writing;		/* a batch is running or handed on */
	pthread_mutex_t	 klock;			/* guards keys and key_gen */
	struct key_cache keys[KEY_CACHE];
	uint64_t	 key_gen;		/* bumped by every revoke */
	int64_t		 commits, writes;
	char		*path;
	/* Checkpoints run in their own thread, off the commit path. */
	sqlite3		*ckpt_db;
	pthread_t	 ckpt_thread;
	bool		 ckpt_running, ckpt_stop;
	int		 wal_pages;		/* in the WAL since the last checkpoint */
	pthread_mutex_t	 ckpt_lock;
	pthread_cond_t	 ckpt_cond;
};

/* Pages in the WAL that start a checkpoint (SQLite's own default is the same). */
#define CHECKPOINT_PAGES 1000

/* Log the connection's last error for what was being done. */
static int
fail(struct conn *c, const char *what)
{
	log_error("database error", "op=%s error=%s", what, sqlite3_errmsg(c->db));
	return -1;
}

/* The statement id, reset and unbound, ready to bind. */
static sqlite3_stmt *
stmt(struct conn *c, enum stmt_id id)
{
	sqlite3_stmt *s = c->stmt[id];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* Run a statement that returns no rows (after binding); <0 on error. */
static int
step_done(struct conn *c, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fail(c, what);
}

/* Run a statement that returns one integer (after binding) into *out; <0 on error. */
static int
step_int64(struct conn *c, sqlite3_stmt *s, int64_t *out, const char *what)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : fail(c, what);
}

static int
exec(struct conn *c, enum stmt_id id)
{
	return step_done(c, stmt(c, id), stmt_sql[id]);
}

/* A time column as RFC 3339 text, or JSON null. */
static json_t *
time_json(sqlite3_stmt *s, int col)
{
	char ts[40];
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return json_null();
	time_format_rfc3339(ts, sizeof ts, sqlite3_column_int64(s, col));
	return json_string(ts);
}

static json_t *
text_json(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t == NULL ? json_null() : json_string((const char *)t);
}

/* The notification object of the current row of a statement selecting NCOLS. */
static json_t *
row_notification(sqlite3_stmt *s)
{
	json_t *data = json_null();
	const unsigned char *d = sqlite3_column_text(s, 7);
	if (d != NULL) {
		json_t *parsed = json_loads((const char *)d, JSON_DECODE_ANY, NULL);
		if (parsed != NULL)
			data = parsed;
	}
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(sqlite3_column_int64(s, 0)));
	json_object_set_new(o, "user", text_json(s, 1));
	json_object_set_new(o, "type", text_json(s, 2));
	json_object_set_new(o, "category", text_json(s, 3));
	json_object_set_new(o, "priority", text_json(s, 4));
	json_object_set_new(o, "title", text_json(s, 5));
	json_object_set_new(o, "body", text_json(s, 6));
	json_object_set_new(o, "data", data);
	json_object_set_new(o, "url", text_json(s, 8));
	json_object_set_new(o, "created_at", time_json(s, 9));
	json_object_set_new(o, "read_at", time_json(s, 10));
	json_object_set_new(o, "archived_at", time_json(s, 11));
	if (sqlite3_column_type(s, 12) != SQLITE_NULL) {
		char ts[40];
		int64_t at = sqlite3_column_int64(s, 12);
		time_format_rfc3339(ts, sizeof ts, at >= HIDDEN ? at - HIDDEN : at);
		json_object_set_new(o, "deliver_at", json_string(ts));
	}
	if (sqlite3_column_type(s, 13) != SQLITE_NULL)
		json_object_set_new(o, "scheduled_id", json_integer(sqlite3_column_int64(s, 13)));
	return o;
}

/* The user object of the current row of a statement selecting UCOLS. */
static json_t *
row_user(sqlite3_stmt *s)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "id", text_json(s, 0),
	    "email", text_json(s, 1), "name", text_json(s, 2), "tz", text_json(s, 3),
	    "locale", text_json(s, 4), "created_at", time_json(s, 5));
}

/* A reader connection, locked; give it back with reader_put(). */
static struct conn *
reader_get(struct store *st)
{
	unsigned start = __atomic_fetch_add(&st->next_reader, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < READERS; i++) {
		struct conn *c = &st->r[(start + i) % READERS];
		if (pthread_mutex_trylock(&c->lock) == 0)
			return c;
	}
	struct conn *c = &st->r[start % READERS];
	pthread_mutex_lock(&c->lock);
	return c;
}

static void
reader_put(struct conn *c)
{
	pthread_mutex_unlock(&c->lock);
}

/* What a failure of connection c's last statement means to a caller. */
static enum store_error
error_class(struct conn *c)
{
	switch (sqlite3_errcode(c->db)) {
	case SQLITE_FULL:
		return STORE_FULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return STORE_BUSY;
	default:
		return STORE_FAILED;
	}
}

/*
 * Run a batch of writes in one transaction. The common case runs them
 * straight; when one fails or finds nothing (a write that must change
 * nothing), the transaction is rolled back and the batch run again with
 * each write in its own savepoint. Writes must be safe to run twice.
 */
static void
run_batch(struct store *st, struct wreq *batch)
{
	struct conn *c = &st->w;
	int n = 0;
	bool isolate = false;
	pthread_mutex_lock(&c->lock);
again:
	if (exec(c, S_BEGIN) != 0) {
		enum store_error e = error_class(c);
		for (struct wreq *r = batch; r; r = r->next) {
			r->rc = -1;
			r->err = e;
		}
		pthread_mutex_unlock(&c->lock);
		return;
	}
	n = 0;
	for (struct wreq *r = batch; r; r = r->next, n++) {
		if (!isolate) {
			r->rc = r->fn(c, r->arg);
			r->err = r->rc < 0 ? error_class(c) : STORE_OK;
			if (r->rc <= 0 && (batch->next != NULL || r->rc < 0)) {
				exec(c, S_ROLLBACK);
				isolate = true;
				goto again;
			}
			continue;
		}
		if (exec(c, S_SAVEPOINT) != 0) {
			r->rc = -1;
			r->err = error_class(c);
			continue;
		}
		r->rc = r->fn(c, r->arg);
		r->err = r->rc < 0 ? error_class(c) : STORE_OK;
		/* Not found or refused is all or nothing too. */
		if (r->rc <= 0)
			exec(c, S_ROLLBACK_TO);
		exec(c, S_RELEASE);
	}
	/* A lone write that found nothing: nothing to keep. */
	if (!isolate && batch->next == NULL && batch->rc == 0) {
		exec(c, S_ROLLBACK);
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (exec(c, S_COMMIT) != 0) {
		enum store_error e = error_class(c);
		exec(c, S_ROLLBACK);
		for (struct wreq *r = batch; r; r = r->next) {
			r->rc = -1;
			r->err = e;
		}
	} else {
		st->commits++;
		st->writes += n;
	}
	pthread_mutex_unlock(&c->lock);
}

/*
 * Lead a write batch: take everything queued (self among it), run it in
 * one transaction, publish, then wake each of the batch and the first of
 * those queued meanwhile, who leads the next. Each waiter is woken exactly
 * once, after the queue's lock is released, so waking never holds anyone up.
 */
static void
lead_batch(struct store *st, struct wreq *self)
{
	struct wreq *batch, *next_leader;

	pthread_mutex_lock(&st->qlock);
	batch = st->queue;
	st->queue = NULL;
	st->qtail = &st->queue;
	pthread_mutex_unlock(&st->qlock);
	run_batch(st, batch);
	/* One leader at a time: events leave in the order their writes committed. */
	for (struct wreq *r = batch; r; r = r->next)
		if (r->rc > 0 && r->publish != NULL)
			r->publish(r->arg);
	pthread_mutex_lock(&st->qlock);
	next_leader = st->queue;
	if (next_leader == NULL)
		st->writing = false;
	pthread_mutex_unlock(&st->qlock);
	for (struct wreq *r = batch, *next; r; r = next) {
		next = r->next;		/* r is gone once posted */
		r->done = true;
		if (r != self)
			sem_post(&r->wake);
	}
	if (next_leader != NULL)
		sem_post(&next_leader->wake);
}

/*
 * Run fn(writer, args[i]) for each of n writes (reqs: room for n), queued
 * together so they share a transaction, and put each result in rcs[i] once
 * it is committed (or failed: then <0, whatever fn returned). The first
 * writer leads a batch of everything queued; the others sleep until their
 * batch is done.
 */
static void
store_write_many(struct store *st, int (*fn)(struct conn *, void *), void (*publish)(void *),
    void **args, int n, int *rcs, struct wreq *reqs)
{
	bool lead;

	for (int i = 0; i < n; i++) {
		reqs[i] = (struct wreq){.fn = fn, .arg = args[i], .publish = publish,
		    .next = i + 1 < n ? &reqs[i + 1] : NULL};
		sem_init(&reqs[i].wake, 0, 0);
	}
	pthread_mutex_lock(&st->qlock);
	*st->qtail = &reqs[0];
	st->qtail = &reqs[n - 1].next;
	lead = !st->writing;
	st->writing = true;
	pthread_mutex_unlock(&st->qlock);
	for (int i = 0; i < n; i++) {
		if (!lead) {
			while (sem_wait(&reqs[i].wake) != 0 && errno == EINTR)
				;
			if (reqs[i].done)
				continue;
		}
		/* Woken to lead (or first): the batch holds this one and those after it. */
		lead = false;
		lead_batch(st, &reqs[i]);
	}
	last_error = STORE_OK;
	for (int i = 0; i < n; i++) {
		rcs[i] = reqs[i].rc;
		if (reqs[i].rc < 0 && last_error != STORE_FULL)
			last_error = reqs[i].err;
		sem_destroy(&reqs[i].wake);
	}
}

enum store_error
store_last_error(void)
{
	enum store_error e = last_error;
	last_error = STORE_OK;
	return e;
}

static int
store_write_pub(struct store *st, int (*fn)(struct conn *, void *), void (*publish)(void *),
    void *arg)
{
	struct wreq req;
	int rc;
	store_write_many(st, fn, publish, &arg, 1, &rc, &req);
	return rc;
}

static int
store_write(struct store *st, int (*fn)(struct conn *, void *), void *arg)
{
	return store_write_pub(st, fn, NULL, arg);
}

int
store_schema_version(void)
{
	int n = 0;
	while (embedded_sql[n].name != NULL)
		n++;
	return n;
}

/* Read PRAGMA user_version. */
static int
user_version(sqlite3 *db, int *v)
{
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* The first row of PRAGMA foreign_key_check, as "table rowid -> parent"; 0 when none. */
static int
foreign_key_broken(sqlite3 *db, char *buf, size_t len)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &s, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		snprintf(buf, len, "%s row %lld -> %s", (const char *)sqlite3_column_text(s, 0),
		    (long long)sqlite3_column_int64(s, 1), (const char *)sqlite3_column_text(s, 2));
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Apply the embedded migrations newer than the database, one transaction
 * each. Foreign keys are off while they run, so that a migration can
 * rebuild a table (dropping a parent table would otherwise delete its
 * children), and each is checked with foreign_key_check before it commits.
 */
static int
migrate(sqlite3 *db, const char *path, int have, char *err, size_t errlen)
{
	int want = store_schema_version(), rc = 0;
	if (have < want &&
	    sqlite3_exec(db, "PRAGMA foreign_keys = OFF", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	if (have < want)
		log_info("migrating", "db=%s from=%d to=%d", path, have, want);
	for (int i = have; i < want && rc == 0; i++) {
		const struct embedded *m = &embedded_sql[i];
		char *sql = NULL, *msg = NULL, broken[200] = "";
		if (asprintf(&sql, "BEGIN IMMEDIATE;\n%s\n;PRAGMA user_version = %d;",
		    (const char *)m->data, i + 1) < 0) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		int src = sqlite3_exec(db, sql, NULL, NULL, &msg);
		free(sql);
		int fk = src == SQLITE_OK ? foreign_key_broken(db, broken, sizeof broken) : 0;
		if (src == SQLITE_OK && fk == 0)
			src = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
		if (src != SQLITE_OK || fk != 0) {
			snprintf(err, errlen, "%s: migration %s failed: %s%s", path, m->name,
			    fk > 0 ? "it breaks a foreign key: " : "",
			    fk > 0 ? broken : msg ? msg : sqlite3_errmsg(db));
			sqlite3_free(msg);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			rc = -1;
			break;
		}
		log_info("migrated", "db=%s migration=%s version=%d", path, m->name, i + 1);
	}
	if (sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK && rc == 0) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		rc = -1;
	}
	return rc;
}

/* Open one connection with its pragmas; the first one checks and migrates the schema. */
static int
conn_open(struct conn *c, const char *path, const struct store_options *opt,
    bool first, char *err, size_t errlen)
{
	int have = 0, want = store_schema_version();
	char pragmas[160];

	pthread_mutex_init(&c->lock, NULL);
	/* With every commit synced, the WAL's writes can wait for that sync. */
	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE |
	    (first ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX,
	    opt->sync_full ? walvfs_register() : NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    c->db ? sqlite3_errmsg(c->db) : "cannot open");
		return -1;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, (int)opt->busy_timeout);
	if (first) {
		/* Look before touching: a newer schema must not be modified at all. */
		if (user_version(c->db, &have) != 0) {
			snprintf(err, errlen, "%s: not a notifyd database: %s", path,
			    sqlite3_errmsg(c->db));
			return -1;
		}
		if (have > want) {
			snprintf(err, errlen, "%s: database schema version %d is newer than "
			    "this notifyd understands (%d); run a newer notifyd or restore "
			    "a backup", path, have, want);
			return -1;
		}
	}
	snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode = WAL; "
	    "PRAGMA synchronous = %s; PRAGMA foreign_keys = ON;%s",
	    opt->sync_full ? "FULL" : "NORMAL", first ? "" : " PRAGMA query_only = 1;");
	char *msg = NULL;
	if (sqlite3_exec(c->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(c->db));
		sqlite3_free(msg);
		return -1;
	}
	if (first && migrate(c->db, path, have, err, errlen) != 0)
		return -1;
	for (int i = 0; i < S__COUNT; i++) {
		if (sqlite3_prepare_v3(c->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &c->stmt[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: preparing statement %d: %s", path,
			    i, sqlite3_errmsg(c->db));
			return -1;
		}
	}
	return 0;
}

static void
conn_close(struct conn *c, bool optimize)
{
	for (int i = 0; i < S__COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	if (c->db != NULL) {
		if (optimize)
			sqlite3_exec(c->db, "PRAGMA optimize", NULL, NULL, NULL);
		sqlite3_close(c->db);
	}
	free(c->prefs);
	pthread_mutex_destroy(&c->lock);
}

/* After each commit: wake the checkpointer when the WAL has grown enough. */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct store *st = arg;
	(void)db;
	(void)name;
	pthread_mutex_lock(&st->ckpt_lock);
	st->wal_pages = pages;
	if (pages >= CHECKPOINT_PAGES)
		pthread_cond_signal(&st->ckpt_cond);
	pthread_mutex_unlock(&st->ckpt_lock);
	return SQLITE_OK;
}

/* Copy the WAL into the database whenever it has grown; never blocks writers. */
static void *
checkpointer_main(void *arg)
{
	struct store *st = arg;
	pthread_mutex_lock(&st->ckpt_lock);
	for (;;) {
		while (!st->ckpt_stop && st->wal_pages < CHECKPOINT_PAGES)
			pthread_cond_wait(&st->ckpt_cond, &st->ckpt_lock);
		if (st->ckpt_stop)
			break;
		st->wal_pages = 0;
		pthread_mutex_unlock(&st->ckpt_lock);
		int logged = 0, done = 0;
		int rc = sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE,
		    &logged, &done);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_warn("checkpoint failed", "error=%s", sqlite3_errmsg(st->ckpt_db));
		pthread_mutex_lock(&st->ckpt_lock);
	}
	pthread_mutex_unlock(&st->ckpt_lock);
	return NULL;
}

/* Open the checkpointer's connection and start it. */
static int
checkpointer_start(struct store *st, const struct store_options *opt, char *err, size_t errlen)
{
	if (sqlite3_open_v2(st->path, &st->ckpt_db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, opt->sync_full ? walvfs_register() : NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", st->path, sqlite3_errmsg(st->ckpt_db));
		return -1;
	}
	sqlite3_busy_timeout(st->ckpt_db, (int)opt->busy_timeout);
	sqlite3_exec(st->ckpt_db, opt->sync_full ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	/* The writer no longer checkpoints inside its commits. */
	sqlite3_exec(st->w.db, "PRAGMA wal_autocheckpoint = 0", NULL, NULL, NULL);
	sqlite3_wal_hook(st->w.db, wal_hook, st);
	if (pthread_create(&st->ckpt_thread, NULL, checkpointer_main, st) != 0) {
		snprintf(err, errlen, "cannot start the checkpoint thread");
		return -1;
	}
	st->ckpt_running = true;
	return 0;
}

int
store_open(struct store **out, const char *path, const struct store_options *opt,
    char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof *st);
	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->path = strdup(path);
	st->qtail = &st->queue;
	pthread_mutex_init(&st->qlock, NULL);
	pthread_mutex_init(&st->klock, NULL);
	pthread_mutex_init(&st->ckpt_lock, NULL);
	pthread_cond_init(&st->ckpt_cond, NULL);
	if (conn_open(&st->w, path, opt, true, err, errlen) != 0)
		goto bad;
	for (int i = 0; i < READERS; i++)
		if (conn_open(&st->r[i], path, opt, false, err, errlen) != 0)
			goto bad;
	if (checkpointer_start(st, opt, err, errlen) != 0)
		goto bad;
	*out = st;
	return 1;
bad:
	store_close(st);
	return -1;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->ckpt_running) {
		pthread_mutex_lock(&st->ckpt_lock);
		st->ckpt_stop = true;
		pthread_cond_signal(&st->ckpt_cond);
		pthread_mutex_unlock(&st->ckpt_lock);
		pthread_join(st->ckpt_thread, NULL);
	}
	sqlite3_close(st->ckpt_db);
	for (int i = 0; i < READERS; i++)
		conn_close(&st->r[i], false);
	conn_close(&st->w, true);
	pthread_mutex_destroy(&st->qlock);
	pthread_mutex_destroy(&st->klock);
	pthread_mutex_destroy(&st->ckpt_lock);
	pthread_cond_destroy(&st->ckpt_cond);
	free(st->path);
	free(st);
}

void
store_stats(struct store *st, int64_t *commits, int64_t *writes)
{
	pthread_mutex_lock(&st->w.lock);
	*commits = st->commits;
	*writes = st->writes;
	pthread_mutex_unlock(&st->w.lock);
}

int
store_ping(struct store *st)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_PING);
	int rc = sqlite3_step(s) == SQLITE_ROW ? 1 : fail(c, "ping");
	sqlite3_reset(s);
	reader_put(c);
	return rc;
}

int
store_counts(struct store *st, int64_t *users, int64_t *notifications, int64_t *mail)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_COUNTS);
	int rc = sqlite3_step(s) == SQLITE_ROW ? 1 : fail(c, "counts");
	if (rc > 0) {
		*users = sqlite3_column_int64(s, 0);
		*notifications = sqlite3_column_int64(s, 1);
		*mail = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	reader_put(c);
	return rc;
}

int
store_explain(struct store *st, const char *which, char *out, size_t n)
{
	static const struct {
		const char	*name;
		enum stmt_id	 id;
	} named[] = {
		{"list", S_NOTIF_LIST}, {"list_unread", S_NOTIF_LIST_UNREAD},
		{"list_archived", S_NOTIF_LIST_ARCHIVED}, {"unread_count", S_UNREAD_COUNT},
		{"after", S_NOTIF_AFTER}, {"owned", S_NOTIF_OWNED},
	};
	const char *sql = NULL;
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
		if (strcmp(named[i].name, which) == 0)
			sql = stmt_sql[named[i].id];
	if (sql == NULL)
		return 0;
	struct conn *c = reader_get(st);
	char *q = NULL;
	sqlite3_stmt *s = NULL;
	int rc = asprintf(&q, "EXPLAIN QUERY PLAN %s", sql) < 0 ? -1 :
	    sqlite3_prepare_v2(c->db, q, -1, &s, NULL) == SQLITE_OK ? 1 : fail(c, "explain");
	struct buf b;
	buf_init_stack(&b, out, n);
	while (rc > 0 && sqlite3_step(s) == SQLITE_ROW)
		buf_printf(&b, "%s\n", (const char *)sqlite3_column_text(s, 3));
	if (b.oom || !b.on_stack)
		rc = -1;
	buf_free(&b);
	sqlite3_finalize(s);
	free(q);
	reader_put(c);
	return rc;
}

/* users whose unread counter disagrees with their rows, {"user","counter","actual"}. */
static int
unread_mismatches(struct conn *c, json_t *list)
{
	sqlite3_stmt *s = stmt(c, S_UNREAD_CHECK);
	sqlite3_bind_int64(s, 1, HIDDEN);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(list, json_pack("{s:o, s:I, s:I}", "user", text_json(s, 0),
		    "counter", (json_int_t)sqlite3_column_int64(s, 1),
		    "actual", (json_int_t)sqlite3_column_int64(s, 2)));
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : fail(c, "unread_check");
}

static int
repair_w(struct conn *c, void *arg)
{
	json_t *fixed = arg, *m;
	size_t i;
	json_array_clear(fixed);
	if (unread_mismatches(c, fixed) < 0)
		return -1;
	json_array_foreach(fixed, i, m) {
		sqlite3_stmt *s = stmt(c, S_UNREAD_SET);
		bind_text(s, 1, json_string_value(json_object_get(m, "user")));
		sqlite3_bind_int64(s, 2, json_integer_value(json_object_get(m, "actual")));
		if (step_done(c, s, "unread_set") != 0)
			return -1;
	}
	return 1;
}

int
store_check(struct store *st, bool full, bool repair, json_t **out)
{
	json_t *integrity = json_array(), *fks = json_array(), *counts = json_array();
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(c->db, full ? "PRAGMA integrity_check" : "PRAGMA quick_check",
	    -1, &s, NULL) == SQLITE_OK ? 0 : -1;
	while (rc == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(s, 0);
		if (m != NULL && strcmp(m, "ok") != 0)
			json_array_append_new(integrity, json_string(m));
		rc = 0;
	}
	sqlite3_finalize(s);
	rc = rc == SQLITE_DONE ? 0 : -1;
	if (rc == 0 && sqlite3_prepare_v2(c->db, "PRAGMA foreign_key_check", -1, &s, NULL) ==
	    SQLITE_OK) {
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			json_array_append_new(fks, json_pack("{s:s?, s:I, s:s?}", "table",
			    (const char *)sqlite3_column_text(s, 0), "rowid",
			    (json_int_t)sqlite3_column_int64(s, 1), "parent",
			    (const char *)sqlite3_column_text(s, 2)));
		sqlite3_finalize(s);
		rc = rc == SQLITE_DONE ? 0 : -1;
	}
	if (rc == 0)
		rc = unread_mismatches(c, counts);
	if (rc < 0)
		fail(c, "check");
	reader_put(c);
	json_int_t repaired = 0;
	if (rc == 0 && repair && json_array_size(counts) > 0) {
		json_t *fixed = json_array();
		rc = store_write(st, repair_w, fixed) > 0 ? 0 : -1;
		repaired = (json_int_t)json_array_size(fixed);
		json_decref(fixed);
	}
	if (rc < 0) {
		json_decref(integrity);
		json_decref(fks);
		json_decref(counts);
		return -1;
	}
	bool ok = json_array_size(integrity) == 0 && json_array_size(fks) == 0 &&
	    (json_array_size(counts) == 0 || repaired > 0);
	*out = json_pack("{s:b, s:s, s:o, s:o, s:o, s:I}", "ok", ok, "integrity",
	    json_array_size(integrity) ? "damaged" : "ok", "integrity_errors", integrity,
	    "foreign_key_errors", fks, "unread_mismatches", counts, "repaired", repaired);
	return 1;
}

/* Does the user exist? */
static int
user_exists(struct conn *c, const char *user)
{
	sqlite3_stmt *s = stmt(c, S_USER_EXISTS);
	bind_text(s, 1, user);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : fail(c, "user_exists");
}

/* Create the user if missing. */
static int
user_ensure(struct conn *c, const char *user, int64_t now)
{
	sqlite3_stmt *s = stmt(c, S_USER_ENSURE);
	bind_text(s, 1, user);
	sqlite3_bind_int64(s, 2, now);
	if (step_done(c, s, "user_ensure") != 0)
		return -1;
	return sqlite3_changes(c->db);
}

int
store_user_exists(struct store *st, const char *user)
{
	struct conn *c = reader_get(st);
	int rc = user_exists(c, user);
	reader_put(c);
	return rc;
}

int
store_user_get(struct store *st, const char *user, json_t **out)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_USER_GET);
	bind_text(s, 1, user);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = row_user(s);
		rc = 1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : fail(c, "user_get");
	}
	sqlite3_reset(s);
	reader_put(c);
	return rc;
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
store_user_put(struct store *st, const struct user_update *u, int64_t now,
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

static const char *
channel_str(unsigned ch)
{
	return ch == CHANNEL_IN_APP ? "in_app" : "email";
}

/* Read a user's preferences and address on connection c; 0 when no such user. */
static int
prefs_read(struct conn *c, const char *user, struct prefs *p, char *email, size_t elen,
    char *tz, size_t tzlen)
{
	/* Not the rules: only the first p->n of them are ever read. */
	p->n = 0;
	p->quiet = false;
	p->quiet_start = p->quiet_end = 0;
	p->quiet_days = 0x7f;
	p->digest = DIGEST_OFF;
	p->email_if_unread = 0;
	sqlite3_stmt *s = stmt(c, S_PREFS_USER);
	bind_text(s, 1, user);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *e = (const char *)sqlite3_column_text(s, 0);
		const char *z = (const char *)sqlite3_column_text(s, 1);
		if (email)
			snprintf(email, elen, "%s", e ? e : "");
		if (tz)
			snprintf(tz, tzlen, "%s", z ? z : "");
		if (sqlite3_column_type(s, 2) != SQLITE_NULL) {
			p->quiet = true;
			p->quiet_start = sqlite3_column_int(s, 2);
			p->quiet_end = sqlite3_column_int(s, 3);
			p->quiet_days = (unsigned)sqlite3_column_int(s, 4);
		}
		prefs_parse_digest((const char *)sqlite3_column_text(s, 5), &p->digest);
		p->email_if_unread = sqlite3_column_int64(s, 6);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : fail(c, "prefs_user");
	s = stmt(c, S_PREFS_RULES);
	bind_text(s, 1, user);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && p->n < PREFS_MAX_RULES) {
		struct prefs_rule *r = &p->rules[p->n++];
		snprintf(r->type, sizeof r->type, "%s", (const char *)sqlite3_column_text(s, 0));
		r->channel = strcmp((const char *)sqlite3_column_text(s, 1), "in_app") == 0 ?
		    CHANNEL_IN_APP : CHANNEL_EMAIL;
		r->enabled = sqlite3_column_int(s, 2) != 0;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 1 : fail(c, "prefs_rules");
}

static int
delivery_insert(struct conn *c, int64_t nid, unsigned ch, const struct routing *r, int64_t now)
{
	sqlite3_stmt *s = stmt(c, S_DELIV_INSERT);
	sqlite3_bind_int64(s, 1, nid);
	bind_text(s, 2, channel_str(ch));
	bind_text(s, 3, delivery_status_name(r->status));
	if (r->status == DS_PENDING || r->status == DS_DEFERRED)
		sqlite3_bind_int64(s, 4, r->next_at);
	bind_text(s, 5, r->why);
	sqlite3_bind_int64(s, 6, now);
	if (r->status == DS_SENT)
		sqlite3_bind_int64(s, 7, now);
	return step_done(c, s, "delivery_insert");
}

/*
 * How the recipient's preferences route a new notification: in-app (shown
 * now, held until due, or skipped: stored archived) and email. A user not
 * stored yet has every default. Without a router (tests): shown, no rows.
 */
static int
route_decide(struct conn *c, const struct notification_new *in, int64_t now,
    struct routing *ia, struct routing *em)
{
	char email[320] = "", tz[80] = "";
	*ia = (struct routing){DS_SENT, 0, NULL};
	*em = (struct routing){DS_SKIPPED, 0, NULL};
	if (in->route == NULL)
		return 0;
	if (c->prefs == NULL && (c->prefs = malloc(sizeof *c->prefs)) == NULL)
		return -1;
	struct prefs *p = c->prefs;
	if (prefs_read(c, in->user, p, email, sizeof email, tz, sizeof tz) < 0)
		return -1;
	in->route(in->route_arg, in, p, email, tz, ia, em);
	/* In-app: shown now, when due (the worker releases it), or not at all. */
	if (ia->status == DS_SENT && in->deliver_at > now)
		*ia = (struct routing){DS_PENDING, in->deliver_at, NULL};
	return 1;
}

/* User's unread count, kept in users.unread: 1, or 0 (count 0) when there is no such user. */
static int
unread_count(struct conn *c, const char *user, int64_t *count)
{
	sqlite3_stmt *s = stmt(c, S_UNREAD_COUNT);
	bind_text(s, 1, user);
	int rc = sqlite3_step(s);
	*count = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : fail(c, "unread_count");
}

/* Add delta to user's unread count; *count: the count after it. */
static int
unread_add(struct conn *c, const char *user, int64_t delta, int64_t *count)
{
	if (delta == 0)
		return unread_count(c, user, count) < 0 ? -1 : 0;
	sqlite3_stmt *s = stmt(c, S_UNREAD_ADD);
	bind_text(s, 1, user);
	sqlite3_bind_int64(s, 2, delta);
	int rc = sqlite3_step(s);
	*count = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(c, "unread_add");
}

/*
 * Insert one notification (and its user, when new), routed: held until
 * due, or stored archived when in-app is off. Its rows: the notification,
 * the user's (made or its count raised, one statement), an in-app delivery
 * only to hold or skip it, and the email delivery. *count: the unread
 * count after it, when asked.
 */
static int
create_one(struct conn *c, const struct notification_new *in, int64_t now,
    json_t **out, int64_t *id, bool *created, bool *hidden, int64_t *count)
{
	struct routing ia, em;
	int routed = route_decide(c, in, now, &ia, &em);
	if (routed < 0)
		return -1;
	*hidden = ia.status == DS_SKIPPED;
	bool held = ia.status == DS_PENDING;
	bool shown = !*hidden && !held && in->deliver_at <= now;
	/* Without a key nothing can conflict: the user's write can count it at once. */
	bool counted = shown && in->key == NULL;
	sqlite3_stmt *s = stmt(c, counted ? S_USER_ENSURE_UNREAD : S_USER_ENSURE);
	bind_text(s, 1, in->user);
	sqlite3_bind_int64(s, 2, now);
	if (step_done(c, s, "user_ensure") != 0)
		return -1;
	s = stmt(c, S_NOTIF_INSERT);
	bind_text(s, 1, in->user);
	bind_text(s, 2, in->type);
	bind_text(s, 3, in->category);
	bind_text(s, 4, in->priority);
	bind_text(s, 5, in->title);
	bind_text(s, 6, in->body);
	bind_text(s, 7, in->data);
	bind_text(s, 8, in->url);
	bind_text(s, 9, in->key);
	sqlite3_bind_int64(s, 10, now);
	if (in->deliver_at > 0)
		sqlite3_bind_int64(s, 11, in->deliver_at + (held ? HIDDEN : 0));
	if (*hidden)
		sqlite3_bind_int64(s, 12, now);
	if (routed > 0 && em.status == DS_SKIPPED)
		bind_text(s, 13, em.why ? em.why : "skipped");
	if (step_done(c, s, "notification_insert") != 0)
		return -1;
	if (sqlite3_changes(c->db) > 0) {
		/* The object is built after the commit, outside the writer's lock. */
		*id = sqlite3_last_insert_rowid(c->db);
		*created = true;
		int64_t after;
		if (shown && !counted && unread_add(c, in->user, 1, &after) < 0)
			return -1;
		if (shown && in->count && unread_count(c, in->user, count) < 0)
			return -1;
		if (routed > 0 && ((ia.status != DS_SENT &&
		    delivery_insert(c, *id, CHANNEL_IN_APP, &ia, now) != 0) ||
		    (em.status != DS_SKIPPED && delivery_insert(c, *id, CHANNEL_EMAIL, &em, now) != 0)))
			return -1;
		return 1;
	}

	/* The key was taken: hand back what it names. */
	s = stmt(c, S_NOTIF_BY_KEY);
	bind_text(s, 1, in->user);
	bind_text(s, 2, in->key);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = row_notification(s);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : fail(c, "notification_by_key");
}

/* The object of a notification just stored from in, as row_notification() would make it. */
static json_t *
new_notification(const struct notification_new *in, int64_t id, int64_t now)
{
	char ts[40];
	json_t *data = in->data ? json_loads(in->data, JSON_DECODE_ANY, NULL) : NULL;
	json_t *o = json_object();
#define S(v) ((v) ? json_string(v) : json_null())
	json_object_set_new(o, "id", json_integer(id));
	json_object_set_new(o, "user", S(in->user));
	json_object_set_new(o, "type", S(in->type));
	json_object_set_new(o, "category", S(in->category));
	json_object_set_new(o, "priority", json_string(in->priority ? in->priority : "normal"));
	json_object_set_new(o, "title", S(in->title));
	json_object_set_new(o, "body", S(in->body));
	json_object_set_new(o, "data", data ? data : json_null());
	json_object_set_new(o, "url", S(in->url));
#undef S
	time_format_rfc3339(ts, sizeof ts, now);
	json_object_set_new(o, "created_at", json_string(ts));
	json_object_set_new(o, "read_at", json_null());
	json_object_set_new(o, "archived_at", json_null());
	if (in->deliver_at > 0) {
		time_format_rfc3339(ts, sizeof ts, in->deliver_at);
		json_object_set_new(o, "deliver_at", json_string(ts));
	}
	return o;
}

struct create {
	const struct notification_new *in;
	size_t		 n;
	int64_t		 now;
	json_t		**out;
	int64_t		*ids;
	bool		*created;
	bool		*hidden;	/* in-app is off: stored archived, not announced */
	int64_t		*counts;	/* unread counts to announce; -1: not counted */
};

/* Forget what a failed create had built. */
static void
create_clear(struct create *p)
{
	for (size_t i = 0; i < p->n; i++) {
		json_decref(p->out[i]);
		p->out[i] = NULL;
		p->created[i] = false;
		p->hidden[i] = false;
		p->counts[i] = -1;
	}
}

static int
create_w(struct conn *c, void *arg)
{
	struct create *p = arg;
	create_clear(p);
	for (size_t i = 0; i < p->n; i++)
		if (create_one(c, &p->in[i], p->now, &p->out[i], &p->ids[i], &p->created[i],
		    &p->hidden[i], &p->counts[i]) < 0) {
			create_clear(p);
			return -1;
		}
	return 1;
}

/* Build the new objects and announce the ones that are visible now. */
static void
create_publish(void *arg)
{
	struct create *p = arg;
	for (size_t i = 0; i < p->n; i++) {
		if (!p->created[i])
			continue;
		p->out[i] = new_notification(&p->in[i], p->ids[i], p->now);
		if (p->hidden[i]) {
			char ts[40];
			time_format_rfc3339(ts, sizeof ts, p->now);
			json_object_set_new(p->out[i], "archived_at", json_string(ts));
		} else if (p->in[i].deliver_at <= p->now) {
			events_emit_notification(p->in[i].user, p->out[i], p->counts[i]);
		}
	}
}

int
store_notifications_create(struct store *st, const struct notification_new *in,
    size_t n, int64_t now, json_t **out, bool *created)
{
	int64_t one, *ids = n == 1 ? &one : calloc(n, sizeof *ids);
	int64_t cnt, *counts = n == 1 ? &cnt : calloc(n, sizeof *counts);
	bool hid, *hidden = n == 1 ? &hid : calloc(n, sizeof *hidden);
	struct create p = {in, n, now, out, ids, created, hidden, counts};
	int rc = -1;
	for (size_t i = 0; i < n; i++)
		out[i] = NULL;
	if (ids != NULL && hidden != NULL && counts != NULL) {
		create_clear(&p);
		rc = store_write_pub(st, create_w, create_publish, &p);
		if (rc < 0)
			create_clear(&p);
	}
	if (ids != &one)
		free(ids);
	if (counts != &cnt)
		free(counts);
	if (hidden != &hid)
		free(hidden);
	return rc;
}

/* The notification statement which selects for key (an id), on a reader. */
static int
notification_by(struct store *st, enum stmt_id which, int64_t key, json_t **out)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, which);
	sqlite3_bind_int64(s, 1, key);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = row_notification(s);
		rc = 1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : fail(c, stmt_sql[which]);
	}
	sqlite3_reset(s);
	reader_put(c);
	return rc;
}

int
store_notification_get(struct store *st, int64_t id, json_t **out)
{
	int rc = notification_by(st, S_NOTIF_GET, id, out);
	/* Ids are never reused, so no row has id as its id and another as
	 * the id it was scheduled with. */
	return rc == 0 ? notification_by(st, S_NOTIF_GET_RELEASED, id, out) : rc;
}

int
store_unread_count(struct store *st, const char *user, int64_t now, int64_t *count)
{
	struct conn *c = reader_get(st);
	(void)now;
	int rc = unread_count(c, user, count);
	reader_put(c);
	return rc;
}

int
store_notifications_after(struct store *st, const char *user, int64_t after, int limit,
    int64_t now, json_t **out)
{
	json_t *list = json_array();
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_NOTIF_AFTER);
	bind_text(s, 1, user);
	sqlite3_bind_int64(s, 2, after);
	sqlite3_bind_int64(s, 3, now);
	sqlite3_bind_int(s, 4, limit);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(list, row_notification(s));
	sqlite3_reset(s);
	rc = rc == SQLITE_DONE ? 1 : fail(c, "notifications_after");
	reader_put(c);
	if (rc < 0) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 1;
}

int
store_last_id(struct store *st, const char *user, int64_t now, int64_t *id)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_NOTIF_MAX_VISIBLE);
	bind_text(s, 1, user);
	sqlite3_bind_int64(s, 2, now);
	int rc = step_int64(c, s, id, "last_id") < 0 ? -1 : 1;
	reader_put(c);
	return rc;
}

/* v as decimal digits. */
static void
put_int(struct buf *b, int64_t v)
{
	char d[24], *p = d + sizeof d;
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) > 0);
	if (v < 0)
		*--p = '-';
	buf_put(b, p, (size_t)(d + sizeof d - p));
}

static void
put_text(struct buf *b, sqlite3_stmt *s, int col)
{
	const char *t = (const char *)sqlite3_column_text(s, col);
	if (t == NULL)
		buf_puts(b, "null");
	else
		buf_json_string(b, t, (size_t)sqlite3_column_bytes(s, col));
}

static void
put_time(struct buf *b, int64_t ms)
{
	char ts[40];
	time_format_rfc3339(ts, sizeof ts, ms);
	buf_putc(b, '"');
	buf_puts(b, ts);
	buf_putc(b, '"');
}

/*
 * The current row of a statement selecting NCOLS as JSON text: what
 * json_dumps(row_notification()) writes, without building the object.
 * data is stored as notifyd wrote it (compact, checked json_valid) and is
 * copied as it is.
 */
static void
row_notification_text(struct buf *b, sqlite3_stmt *s)
{
	static const char *const keys[] = {"{\"id\":", ",\"user\":", ",\"type\":",
	    ",\"category\":", ",\"priority\":", ",\"title\":", ",\"body\":"};
	buf_puts(b, keys[0]);
	put_int(b, sqlite3_column_int64(s, 0));
	for (int col = 1; col <= 6; col++) {
		buf_puts(b, keys[col]);
		put_text(b, s, col);
	}
	buf_puts(b, ",\"data\":");
	const char *d = (const char *)sqlite3_column_text(s, 7);
	if (d == NULL)
		buf_puts(b, "null");
	else
		buf_put(b, d, (size_t)sqlite3_column_bytes(s, 7));
	buf_puts(b, ",\"url\":");
	put_text(b, s, 8);
	static const char *const times[] = {",\"created_at\":", ",\"read_at\":",
	    ",\"archived_at\":"};
	for (int col = 9; col <= 11; col++) {
		buf_puts(b, times[col - 9]);
		if (sqlite3_column_type(s, col) == SQLITE_NULL)
			buf_puts(b, "null");
		else
			put_time(b, sqlite3_column_int64(s, col));
	}
	if (sqlite3_column_type(s, 12) != SQLITE_NULL) {
		int64_t at = sqlite3_column_int64(s, 12);
		buf_puts(b, ",\"deliver_at\":");
		put_time(b, at >= HIDDEN ? at - HIDDEN : at);
	}
	if (sqlite3_column_type(s, 13) != SQLITE_NULL) {
		buf_puts(b, ",\"scheduled_id\":");
		put_int(b, sqlite3_column_int64(s, 13));
	}
	buf_putc(b, '}');
}

/*
 * A page of q: {"notifications":[...],"next_before","unread_count"}, as an
 * object in *out, or, when text is given, as JSON text appended to it (the
 * inbox page is the hottest read there is; building and dumping objects
 * was three quarters of its CPU).
 */
static int
notification_page(struct store *st, const struct notification_query *q, int64_t now,
    json_t **out, struct buf *text)
{
	json_t *list = text ? NULL : json_array();
	int64_t count = 0, last = 0;
	int n = 0, rc;
	struct conn *c = reader_get(st);
	size_t start = text ? text->len : 0;

	/* One read transaction, so the page and the count agree. */
	if (step_done(c, stmt(c, S_READ_BEGIN), "begin") != 0) {
		rc = -1;
		goto done;
	}
	/* The user's existence and count in one read, then the page. */
	rc = unread_count(c, q->user, &count);
	if (rc <= 0)
		goto done;
	sqlite3_stmt *s = stmt(c, q->archived ? S_NOTIF_LIST_ARCHIVED :
	    q->unread_only ? S_NOTIF_LIST_UNREAD : S_NOTIF_LIST);
	bind_text(s, 1, q->user);
	sqlite3_bind_int64(s, 2, q->before > 0 ? q->before : INT64_MAX);
	sqlite3_bind_int(s, 3, q->unread_only);
	bind_text(s, 4, q->type);
	bind_text(s, 5, q->category);
	sqlite3_bind_int(s, 6, q->archived);
	sqlite3_bind_int64(s, 7, now);
	sqlite3_bind_int(s, 8, q->limit + 1);	/* one more tells whether a next page exists */
	if (text)
		buf_puts(text, "{\"notifications\":[");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n++ == q->limit)
			break;
		last = sqlite3_column_int64(s, 0);
		if (!text) {
			json_array_append_new(list, row_notification(s));
			continue;
		}
		if (n > 1)
			buf_putc(text, ',');
		row_notification_text(text, s);
	}
	sqlite3_reset(s);
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 1 : fail(c, "notification_list");
done:
	if (!sqlite3_get_autocommit(c->db))
		step_done(c, stmt(c, S_COMMIT), "commit");
	reader_put(c);
	if (rc <= 0 || (text && text->oom)) {
		json_decref(list);
		if (text) {
			text->len = start;
			if (text->data)
				text->data[start] = '\0';
		}
		return rc <= 0 ? rc : -1;
	}
	if (text) {
		buf_puts(text, "],\"next_before\":");
		if (n > q->limit)
			put_int(text, last);
		else
			buf_puts(text, "null");
		buf_puts(text, ",\"unread_count\":");
		put_int(text, count);
		buf_putc(text, '}');
		return 1;
	}
	*out = json_pack("{s:o, s:o, s:I}", "notifications", list, "next_before",
	    n > q->limit ? json_integer(last) : json_null(), "unread_count",
	    (json_int_t)count);
	return 1;
}

int
store_notification_list(struct store *st, const struct notification_query *q,
    int64_t now, json_t **out)
{
	return notification_page(st, q, now, out, NULL);
}

int
store_notification_list_text(struct store *st, const struct notification_query *q,
    int64_t now, struct buf *out)
{
	return notification_page(st, q, now, NULL, out);
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
mark_w(struct conn *c, void *arg)
{
	static const enum stmt_id set[] = {
		[MARK_READ] = S_NOTIF_SET_READ,
		[MARK_UNREAD] = S_NOTIF_SET_UNREAD,
		[MARK_ARCHIVED] = S_NOTIF_SET_ARCHIVED,
		[MARK_UNARCHIVED] = S_NOTIF_SET_UNARCHIVED,
	};
	struct mark_args *p = arg;
	int64_t delta = 0;
	json_array_clear(p->changed);
	for (size_t i = 0; i < p->n; i++) {
		/* Its id, or the one its send returned when it was scheduled. */
		int r = SQLITE_DONE;
		int64_t id = 0;
		for (int k = 0; k < 2 && r == SQLITE_DONE; k++) {
			sqlite3_stmt *s = stmt(c, k == 0 ? S_NOTIF_OWNED : S_NOTIF_OWNED_RELEASED);
			sqlite3_bind_int64(s, 1, p->ids[i]);
			bind_text(s, 2, p->user);
			sqlite3_bind_int64(s, 3, p->now);
			if ((r = sqlite3_step(s)) == SQLITE_ROW)
				id = sqlite3_column_int64(s, 0);
			sqlite3_reset(s);
		}
		if (r == SQLITE_DONE) {
			p->missing = p->ids[i];
			return 0;	/* run_batch() undoes the ids before it */
		}
		if (r != SQLITE_ROW)
			return fail(c, "notification_owned");
		sqlite3_stmt *s = stmt(c, set[p->how]);
		sqlite3_bind_int64(s, 1, id);
		bind_text(s, 2, p->user);
		if (p->how == MARK_READ || p->how == MARK_ARCHIVED)
			sqlite3_bind_int64(s, 3, p->now);
		int r2 = sqlite3_step(s);
		if (r2 == SQLITE_ROW) {		/* changed: what it does to the count */
			delta += sqlite3_column_int64(s, 0);
			json_array_append_new(p->changed, json_integer(id));
		}
		sqlite3_reset(s);
		if (r2 != SQLITE_ROW && r2 != SQLITE_DONE)
			return fail(c, "notification_mark");
	}
	/* The count as of this commit, so events never carry a stale one. */
	return unread_add(c, p->user, delta, &p->count) < 0 ? -1 : 1;
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
	p->result = json_pack("{s:O, s:I}", "ids", p->changed, "unread_count",
	    (json_int_t)p->count);
	if (json_array_size(p->changed) > 0)
		events_emit(ev[p->how], p->user, p->result);
}

int
store_notifications_mark(struct store *st, const char *user, const int64_t *ids,
    size_t n, enum mark how, int64_t now, json_t **result, int64_t *missing)
{
	struct mark_args p = {.user = user, .ids = ids, .n = n, .how = how, .now = now,
	    .changed = json_array()};
	int rc = store_write_pub(st, mark_w, mark_publish, &p);
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
	int64_t		 now, up_to, marked, count;
	json_t		*result;
};

static int
read_all_w(struct conn *c, void *arg)
{
	struct read_all *p = arg;
	int rc = user_exists(c, p->user);
	if (rc <= 0)
		return rc;
	sqlite3_stmt *s = stmt(c, S_NOTIF_MAX_VISIBLE);
	bind_text(s, 1, p->user);
	sqlite3_bind_int64(s, 2, p->now);
	if (step_int64(c, s, &p->up_to, "notification_max") < 0)
		return -1;
	s = stmt(c, S_NOTIF_READ_ALL);
	bind_text(s, 1, p->user);
	sqlite3_bind_int64(s, 2, p->now);
	sqlite3_bind_int64(s, 3, p->up_to);
	if (step_done(c, s, "notification_read_all") != 0)
		return -1;
	p->marked = sqlite3_changes(c->db);
	/* Every visible notification is read now, up to the newest: none unread. */
	p->count = 0;
	s = stmt(c, S_UNREAD_SET);
	bind_text(s, 1, p->user);
	sqlite3_bind_int64(s, 2, 0);
	return step_done(c, s, "unread_set") == 0 ? 1 : -1;
}

static void
read_all_publish(void *arg)
{
	struct read_all *p = arg;
	p->result = json_pack("{s:I, s:I, s:I}", "up_to", (json_int_t)p->up_to, "marked",
	    (json_int_t)p->marked, "unread_count", (json_int_t)p->count);
	if (p->marked > 0)
		events_emit(EVENT_READ_ALL, p->user, p->result);
}

int
store_notifications_read_all(struct store *st, const char *user, int64_t now,
    json_t **result)
{
	struct read_all p = {.user = user, .now = now};
	int rc = store_write_pub(st, read_all_w, read_all_publish, &p);
	if (rc > 0)
		*result = p.result;
	else
		json_decref(p.result);
	return rc;
}

struct del {
	const char	*user;
	int64_t		 id, now, count;
	char		*owner;
};

static int
delete_w(struct conn *c, void *arg)
{
	struct del *p = arg;
	sqlite3_stmt *s = stmt(c, S_NOTIF_DELETE);
	sqlite3_bind_int64(s, 1, p->id);
	bind_text(s, 2, p->user);
	sqlite3_bind_int64(s, 3, HIDDEN);
	int rc = sqlite3_step(s);
	int64_t counted = 0;
	free(p->owner);
	p->owner = NULL;
	if (rc == SQLITE_ROW) {
		p->owner = strdup((const char *)sqlite3_column_text(s, 0));
		counted = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : fail(c, "notification_delete");
	if (p->owner == NULL)
		return -1;
	return unread_add(c, p->owner, -counted, &p->count) < 0 ? -1 : 1;
}

static void
delete_publish(void *arg)
{
	struct del *p = arg;
	json_t *ev = json_pack("{s:I, s:I}", "id", (json_int_t)p->id, "unread_count",
	    (json_int_t)p->count);
	events_emit(EVENT_DELETED, p->owner, ev);
	json_decref(ev);
}

int
store_notification_delete(struct store *st, const char *user, int64_t id, int64_t now)
{
	struct del p = {.user = user, .id = id, .now = now};
	int rc = store_write_pub(st, delete_w, delete_publish, &p);
	free(p.owner);
	return rc;
}

struct cancel {
	const char	*user;
	int64_t		 id, now;
	bool		 too_late;
	int64_t		 released_as;	/* the id it was released with, when it was */
};

static int
cancel_w(struct conn *c, void *arg)
{
	struct cancel *p = arg;
	sqlite3_stmt *s = stmt(c, S_NOTIF_SCHEDULED);
	sqlite3_bind_int64(s, 1, p->id);
	bind_text(s, 2, p->user);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		int64_t at = sqlite3_column_int64(s, 0), id = sqlite3_column_int64(s, 1);
		if (at >= HIDDEN)
			at -= HIDDEN;
		p->released_as = id != p->id ? id : 0;
		p->too_late = id != p->id || sqlite3_column_type(s, 0) == SQLITE_NULL ||
		    at <= p->now;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : fail(c, "notification_scheduled");
	if (p->too_late)
		return 0;
	s = stmt(c, S_NOTIF_CANCEL);
	sqlite3_bind_int64(s, 1, p->id);
	if (step_done(c, s, "notification_cancel") != 0)
		return -1;
	return sqlite3_changes(c->db) > 0 ? 1 : 0;
}

int
store_notification_cancel(struct store *st, const char *user, int64_t id, int64_t now,
    bool *too_late, int64_t *released_as)
{
	struct cancel p = {user, id, now, false, 0};
	int rc = store_write(st, cancel_w, &p);
	*too_late = p.too_late;
	*released_as = p.released_as;
	return rc;
}

int
store_prefs_get(struct store *st, const char *user, struct prefs *p)
{
	struct conn *c = reader_get(st);
	int rc = prefs_read(c, user, p, NULL, 0, NULL, 0);
	reader_put(c);
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
	sqlite3_stmt *s = stmt(c, S_PREFS_CLEAR);
	bind_text(s, 1, pc->user);
	if (step_done(c, s, "prefs_clear") != 0)
		return -1;
	for (size_t i = 0; i < p->n; i++) {
		s = stmt(c, S_PREFS_INSERT);
		bind_text(s, 1, pc->user);
		bind_text(s, 2, p->rules[i].type);
		bind_text(s, 3, channel_str(p->rules[i].channel));
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
store_prefs_update(struct store *st, const char *user, int64_t now,
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

struct claim {
	int64_t		 now;
	struct delivery	*out;
	size_t		 max, n;
};

static int
claim_w(struct conn *c, void *arg)
{
	struct claim *p = arg;
	sqlite3_stmt *s = stmt(c, S_DELIV_CLAIM);
	int rc;
	p->n = 0;
	sqlite3_bind_int64(s, 1, p->now);
	sqlite3_bind_int64(s, 2, (int64_t)p->max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && p->n < p->max) {
		struct delivery *d = &p->out[p->n++];
		d->id = sqlite3_column_int64(s, 0);
		d->notification_id = sqlite3_column_int64(s, 1);
		d->channel = strcmp((const char *)sqlite3_column_text(s, 2), "in_app") == 0 ?
		    CHANNEL_IN_APP : CHANNEL_EMAIL;
		d->attempts = sqlite3_column_int(s, 3);
		d->digest_id = d->notification_id == 0 ? sqlite3_column_int64(s, 4) : 0;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return fail(c, "deliveries_claim");
	return 1;	/* claiming nothing is an answer too */
}

int
store_deliveries_claim(struct store *st, int64_t now, struct delivery *out, size_t max,
    size_t *n)
{
	struct claim p = {now, out, max, 0};
	int rc = store_write(st, claim_w, &p);
	*n = rc > 0 ? p.n : 0;
	return rc;
}

int
store_deliveries_next(struct store *st, int64_t *at)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_DELIV_NEXT);
	int rc = sqlite3_step(s);
	*at = 0;
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*at = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	rc = rc == SQLITE_ROW ? (*at > 0) : fail(c, "deliveries_next");
	reader_put(c);
	return rc;
}

static int
unclaim_w(struct conn *c, void *arg)
{
	int *n = arg;
	if (exec(c, S_DELIV_UNCLAIM) != 0)
		return -1;
	*n = sqlite3_changes(c->db);
	return 1;
}

int
store_deliveries_unclaim(struct store *st)
{
	int n = 0;
	int rc = store_write(st, unclaim_w, &n);
	if (n > 0)
		log_info("deliveries resumed", "claimed=%d", n);
	return rc;
}

struct finish {
	int64_t		 id, next_at, now;
	enum delivery_status status;
	const char	*error;
	/* release: the notification, announced after the commit */
	const struct delivery *d;
	json_t		*notification;
};

/*
 * Release held notification old: it is written again with a new id (so ids
 * keep the order in which notifications became visible), its deliveries
 * and key move to the new row, and the held row goes. *id: the new id, 0
 * when there was nothing held.
 */
static int
release(struct conn *c, int64_t old, int64_t *id)
{
	char *key = NULL;
	sqlite3_stmt *s = stmt(c, S_NOTIF_KEY_OF);
	sqlite3_bind_int64(s, 1, old);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		key = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	s = stmt(c, S_NOTIF_RELEASE);
	sqlite3_bind_int64(s, 1, old);
	sqlite3_bind_int64(s, 2, HIDDEN);
	int rc = step_done(c, s, "notification_release");
	*id = rc == 0 && sqlite3_changes(c->db) > 0 ? sqlite3_last_insert_rowid(c->db) : 0;
	if (rc == 0 && *id > 0) {
		s = stmt(c, S_DELIV_MOVE);
		sqlite3_bind_int64(s, 1, old);
		sqlite3_bind_int64(s, 2, *id);
		rc = step_done(c, s, "deliveries_move");
	}
	if (rc == 0 && *id > 0) {
		s = stmt(c, S_NOTIF_DROP);
		sqlite3_bind_int64(s, 1, old);
		rc = step_done(c, s, "notification_drop");
	}
	if (rc == 0 && *id > 0) {	/* visible from now: one more unread */
		s = stmt(c, S_UNREAD_RELEASED);
		sqlite3_bind_int64(s, 1, *id);
		rc = step_done(c, s, "unread_released");
	}
	if (rc == 0 && *id > 0 && key != NULL) {
		s = stmt(c, S_NOTIF_SET_KEY);
		sqlite3_bind_int64(s, 1, *id);
		bind_text(s, 2, key);
		rc = step_done(c, s, "notification_set_key");
	}
	free(key);
	return rc;
}

static int
finish_w(struct conn *c, void *arg)
{
	struct finish *p = arg;
	sqlite3_stmt *s = stmt(c, S_DELIV_FINISH);
	sqlite3_bind_int64(s, 1, p->id);
	bind_text(s, 2, delivery_status_name(p->status));
	if (p->status == DS_PENDING || p->status == DS_DEFERRED)
		sqlite3_bind_int64(s, 3, p->next_at);
	bind_text(s, 4, p->error);
	sqlite3_bind_int64(s, 5, p->now);
	if (step_done(c, s, "delivery_finish") != 0)
		return -1;
	if (sqlite3_changes(c->db) == 0)
		return 0;	/* cancelled or deleted meanwhile */
	if (p->d == NULL)
		return 1;
	json_decref(p->notification);
	p->notification = NULL;
	int64_t id = 0;
	if (release(c, p->d->notification_id, &id) < 0)
		return -1;
	if (id == 0)
		return 0;	/* cancelled or deleted meanwhile */
	s = stmt(c, S_NOTIF_GET);
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		p->notification = row_notification(s);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : fail(c, "notification_get");
}

static void
release_publish(void *arg)
{
	struct finish *p = arg;
	if (p->notification != NULL)
		events_emit(EVENT_NOTIFICATION, json_string_value(json_object_get(p->notification,
		    "user")), p->notification);
}

int
store_delivery_finish(struct store *st, int64_t id, enum delivery_status status,
    int64_t next_at, const char *error, int64_t now)
{
	struct finish p = {.id = id, .next_at = next_at, .now = now, .status = status,
	    .error = error};
	return store_write(st, finish_w, &p);
}

int
store_delivery_release(struct store *st, const struct delivery *d, int64_t now)
{
	struct finish p = {.id = d->id, .now = now, .status = DS_SENT, .d = d};
	int rc = store_write_pub(st, finish_w, release_publish, &p);
	json_decref(p.notification);
	return rc;
}

int
store_delivery_notification(struct store *st, int64_t delivery, json_t **out)
{
	return notification_by(st, S_DELIV_NOTIF, delivery, out);
}

int
store_deliveries_of(struct store *st, int64_t id, json_t **out)
{
	json_t *list = json_array();
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_DELIV_OF);
	int rc;
	sqlite3_bind_int64(s, 1, id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(list, json_pack("{s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:o}",
		    "channel", text_json(s, 0), "status", text_json(s, 1),
		    "attempts", sqlite3_column_int(s, 2), "next_attempt_at", time_json(s, 3),
		    "last_error", text_json(s, 4), "created_at", time_json(s, 5),
		    "updated_at", time_json(s, 6), "sent_at", time_json(s, 7),
		    "digest_id", sqlite3_column_type(s, 8) == SQLITE_NULL ? json_null() :
		    json_integer(sqlite3_column_int64(s, 8))));
	sqlite3_reset(s);
	rc = rc == SQLITE_DONE ? 1 : fail(c, "deliveries_of");
	reader_put(c);
	if (rc < 0) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 1;
}

/* Digests. */

int
store_digest_candidates(struct store *st, enum digest_mode period, const char *user,
    json_t **out)
{
	json_t *list = json_array();
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_DIGEST_CANDIDATES);
	char why[32];
	int rc;
	snprintf(why, sizeof why, "%s digest", prefs_digest_name(period));
	bind_text(s, 1, prefs_digest_name(period));
	bind_text(s, 2, why);
	bind_text(s, 3, user);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(list, json_pack("{s:o, s:o, s:I, s:o}", "user", text_json(s, 0),
		    "tz", text_json(s, 1), "parked", (json_int_t)sqlite3_column_int64(s, 2),
		    "last_slot", text_json(s, 3)));
	sqlite3_reset(s);
	rc = rc == SQLITE_DONE ? 1 : fail(c, "digest_candidates");
	reader_put(c);
	if (rc < 0) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 1;
}

/* One digest to make, and what became of it. */
struct digest_put {
	const struct digest_new	*in;
	int64_t			 now;
	struct digest_made	*out;
};

/* Two integers a statement's one row holds; false on an error. */
static bool
step_two(struct conn *c, sqlite3_stmt *s, const char *what, int64_t *a, int64_t *b)
{
	int rc = sqlite3_step(s);
	*a = *b = 0;
	if (rc == SQLITE_ROW) {
		*a = sqlite3_column_int64(s, 0);
		*b = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE || fail(c, what) == 0;
}

/*
 * In one transaction: the digests row (none when the user's slot has one:
 * made before, or by a run at the same time), the parked email it covers
 * made 'digested', and its own email queued in the outbox when anything is
 * left to tell.
 */
static int
digest_make_w(struct conn *c, void *arg)
{
	struct digest_put *p = arg;
	const struct digest_new *d = p->in;
	struct digest_made *m = p->out;
	int64_t unread, read;
	memset(m, 0, sizeof *m);
	sqlite3_stmt *s = stmt(c, S_DIGEST_INSERT);
	bind_text(s, 1, d->user);
	bind_text(s, 2, prefs_digest_name(d->period));
	bind_text(s, 3, d->slot);
	sqlite3_bind_int64(s, 4, d->window_start);
	sqlite3_bind_int64(s, 5, d->window_end);
	sqlite3_bind_int64(s, 6, p->now);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		m->id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail(c, "digest_insert");
	if (m->id == 0) {
		m->existed = true;
		return 1;	/* done already: this run changes nothing */
	}
	s = stmt(c, S_DIGEST_TALLY);
	bind_text(s, 1, d->user);
	sqlite3_bind_int64(s, 2, d->cutoff);
	if (!step_two(c, s, "digest_tally", &unread, &read))
		return -1;
	m->items = d->include_read ? unread + read : unread;
	m->read_skipped = d->include_read ? 0 : read;
	s = stmt(c, S_DIGEST_PARKED_DONE);
	bind_text(s, 1, d->user);
	sqlite3_bind_int64(s, 2, d->cutoff);
	sqlite3_bind_int64(s, 3, m->id);
	sqlite3_bind_int64(s, 4, p->now);
	if (step_done(c, s, "digest_parked") != 0)
		return -1;
	if (m->items > 0) {
		s = stmt(c, S_DIGEST_EMAIL);
		sqlite3_bind_int64(s, 1, m->id);
		sqlite3_bind_int64(s, 2, p->now);
		if (step_done(c, s, "digest_email") != 0)
			return -1;
		m->delivery_id = sqlite3_last_insert_rowid(c->db);
	}
	s = stmt(c, S_DIGEST_SET);
	sqlite3_bind_int64(s, 1, m->id);
	sqlite3_bind_int64(s, 2, m->items);
	sqlite3_bind_int64(s, 3, m->read_skipped);
	if (m->delivery_id > 0)
		sqlite3_bind_int64(s, 4, m->delivery_id);
	return step_done(c, s, "digest_set") == 0 ? 1 : -1;
}

void
store_digests_make(struct store *st, const struct digest_new *in, size_t n, int64_t now,
    struct digest_made *out, int *rcs)
{
	struct digest_put p[STORE_BATCH_MAX];
	void *args[STORE_BATCH_MAX];
	struct wreq reqs[STORE_BATCH_MAX];
	for (size_t i = 0; i < n; i++) {
		p[i] = (struct digest_put){&in[i], now, &out[i]};
		args[i] = &p[i];
	}
	store_write_many(st, digest_make_w, NULL, args, (int)n, rcs, reqs);
}

int
store_digest_tally(struct store *st, const char *user, int64_t cutoff, int64_t *unread,
    int64_t *read)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_DIGEST_TALLY);
	bind_text(s, 1, user);
	sqlite3_bind_int64(s, 2, cutoff);
	int rc = step_two(c, s, "digest_tally", unread, read) ? 1 : -1;
	reader_put(c);
	return rc;
}

int
store_digest_get(struct store *st, int64_t id, bool include_read, int limit, json_t **out)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_DIGEST_GET);
	json_t *o = NULL, *items = NULL;
	int64_t created = 0;
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		created = sqlite3_column_int64(s, 8);
		o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:o, s:o}",
		    "id", (json_int_t)sqlite3_column_int64(s, 0), "user", text_json(s, 1),
		    "period", text_json(s, 2), "slot", text_json(s, 3),
		    "window_start", time_json(s, 4), "window_end", time_json(s, 5),
		    "items", (json_int_t)sqlite3_column_int64(s, 6),
		    "read_skipped", (json_int_t)sqlite3_column_int64(s, 7),
		    "created_at", time_json(s, 8),
		    "delivery_id", sqlite3_column_type(s, 9) == SQLITE_NULL ? json_null() :
		    json_integer(sqlite3_column_int64(s, 9)));
	}
	sqlite3_reset(s);
	if (rc == SQLITE_ROW) {
		items = json_array();
		s = stmt(c, S_DIGEST_ITEMS);
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int(s, 2, include_read);
		sqlite3_bind_int64(s, 3, created);
		sqlite3_bind_int(s, 4, limit);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			json_array_append_new(items, row_notification(s));
		sqlite3_reset(s);
		rc = rc == SQLITE_DONE ? SQLITE_ROW : rc;
	}
	int result = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : fail(c, "digest_get");
	reader_put(c);
	if (result <= 0) {
		json_decref(o);
		json_decref(items);
		return result;
	}
	json_object_set_new(o, "notifications", items);
	*out = o;
	return 1;
}

struct topic_change {
	const char	*topic, *user;
	int64_t		 now;
	bool		 changed;
	int64_t		 count;		/* members after the change */
};

static int
topic_count(struct conn *c, struct topic_change *p)
{
	sqlite3_stmt *s = stmt(c, S_TOPIC_COUNT);
	bind_text(s, 1, p->topic);
	return step_int64(c, s, &p->count, "topic_count");
}

static int
topic_add_w(struct conn *c, void *arg)
{
	struct topic_change *p = arg;
	if (user_ensure(c, p->user, p->now) < 0)
		return -1;
	sqlite3_stmt *s = stmt(c, S_TOPIC_ADD);
	bind_text(s, 1, p->topic);
	bind_text(s, 2, p->user);
	sqlite3_bind_int64(s, 3, p->now);
	if (step_done(c, s, "topic_add") != 0)
		return -1;
	p->changed = sqlite3_changes(c->db) > 0;
	return topic_count(c, p) < 0 ? -1 : 1;
}

static int
topic_remove_w(struct conn *c, void *arg)
{
	struct topic_change *p = arg;
	sqlite3_stmt *s = stmt(c, S_TOPIC_REMOVE);
	bind_text(s, 1, p->topic);
	bind_text(s, 2, p->user);
	if (step_done(c, s, "topic_remove") != 0)
		return -1;
	if (sqlite3_changes(c->db) == 0)
		return 0;
	return topic_count(c, p) < 0 ? -1 : 1;
}

int
store_topic_add(struct store *st, const char *topic, const char *user, int64_t now,
    bool *added, int64_t *count)
{
	struct topic_change p = {topic, user, now, false, 0};
	int rc = store_write(st, topic_add_w, &p);
	*added = p.changed;
	*count = p.count;
	return rc;
}

int
store_topic_remove(struct store *st, const char *topic, const char *user, int64_t *count)
{
	struct topic_change p = {topic, user, 0, false, 0};
	int rc = store_write(st, topic_remove_w, &p);
	*count = p.count;
	return rc;
}

int
store_topic_members(struct store *st, const char *topic, json_t **members)
{
	json_t *list = json_array();
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_TOPIC_MEMBERS);
	bind_text(s, 1, topic);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(list, text_json(s, 0));
	sqlite3_reset(s);
	rc = rc == SQLITE_DONE ? 1 : fail(c, "topic_members");
	reader_put(c);
	if (rc > 0 && json_array_size(list) == 0)
		rc = 0;
	if (rc <= 0) {
		json_decref(list);
		return rc;
	}
	*members = list;
	return 1;
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
store_key_create(struct store *st, const char *name, const unsigned char hash[32],
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
	sqlite3_stmt *s = stmt(c, S_KEY_TOUCH);
	sqlite3_bind_int64(s, 1, p->id);
	sqlite3_bind_int64(s, 2, p->now);
	return step_done(c, s, "key_touch") == 0 ? 1 : -1;
}

/* The cache slot of a key hash. */
static struct key_cache *
key_slot(struct store *st, const unsigned char hash[32])
{
	return &st->keys[(hash[0] | (unsigned)hash[1] << 8) % KEY_CACHE];
}

int
store_key_lookup(struct store *st, const unsigned char hash[32], int64_t now, int64_t *id)
{
	int64_t last = 0;
	int rc;
	struct key_cache *slot = key_slot(st, hash);
	uint64_t gen;

	pthread_mutex_lock(&st->klock);
	gen = st->key_gen;
	bool hit = slot->id > 0 && memcmp(slot->hash, hash, 32) == 0;
	if (hit) {
		*id = slot->id;
		last = slot->touched;
	}
	pthread_mutex_unlock(&st->klock);
	rc = hit;
	if (!rc) {
		struct conn *c = reader_get(st);
		sqlite3_stmt *s = stmt(c, S_KEY_LOOKUP);
		sqlite3_bind_blob(s, 1, hash, 32, SQLITE_TRANSIENT);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*id = sqlite3_column_int64(s, 0);
			last = sqlite3_column_int64(s, 1);
			rc = 1;
		} else {
			rc = rc == SQLITE_DONE ? 0 : fail(c, "key_lookup");
		}
		sqlite3_reset(s);
		reader_put(c);
	}
	if (rc <= 0)
		return rc;
	bool cached = hit;
	/* Note the use at most once a minute: a write per request would cost a commit. */
	if (now - last >= 60000) {
		struct key_args p = {NULL, NULL, *id, now};
		if (store_write(st, key_touch_w, &p) > 0)
			last = now;
		cached = false;
	}
	if (cached)
		return rc;
	/* Cache it unless a revoke ran meanwhile: what we read may be stale. */
	pthread_mutex_lock(&st->klock);
	if (st->key_gen == gen) {
		memcpy(slot->hash, hash, 32);
		slot->id = *id;
		slot->touched = last;
	}
	pthread_mutex_unlock(&st->klock);
	return rc;
}

int
store_key_list(struct store *st, json_t **out)
{
	json_t *keys = json_array();
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_KEY_LIST);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(keys, json_pack("{s:I, s:o, s:o, s:o, s:o}",
		    "id", (json_int_t)sqlite3_column_int64(s, 0), "name", text_json(s, 1),
		    "created_at", time_json(s, 2), "last_used_at", time_json(s, 3),
		    "revoked_at", time_json(s, 4)));
	sqlite3_reset(s);
	rc = rc == SQLITE_DONE ? 1 : fail(c, "key_list");
	reader_put(c);
	if (rc <= 0) {
		json_decref(keys);
		return rc;
	}
	*out = json_pack("{s:o}", "keys", keys);
	return 1;
}

static int
key_revoke_w(struct conn *c, void *arg)
{
	struct key_args *p = arg;
	sqlite3_stmt *s = stmt(c, S_KEY_REVOKE);
	sqlite3_bind_int64(s, 1, p->id);
	bind_text(s, 2, p->name);
	sqlite3_bind_int64(s, 3, p->now);
	if (step_done(c, s, "key_revoke") != 0)
		return -1;
	return sqlite3_changes(c->db) > 0;
}

int
store_key_revoke(struct store *st, int64_t id, const char *name, int64_t now)
{
	struct key_args p = {name, NULL, id, now};
	int rc = store_write(st, key_revoke_w, &p);
	/* Forget every cached key: the next use of each is checked in the database. */
	pthread_mutex_lock(&st->klock);
	memset(st->keys, 0, sizeof st->keys);
	st->key_gen++;
	pthread_mutex_unlock(&st->klock);
	return rc;
}

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

/* Retention is applied on every PRUNE_EVERY-th message stored. */
#define PRUNE_EVERY 64

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
		enum stmt_id	 id;
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
store_mail_insert(struct store *st, const struct mail_new *m, int n, int *rcs)
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
store_mail_list(struct store *st, int64_t start, int64_t limit, const char *like, json_t **out)
{
	json_t *list = json_array();
	int64_t total = 0, unread = 0;
	struct conn *c = reader_get(st);
	int rc = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 1 : fail(c, "begin");
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
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	reader_put(c);
	if (rc <= 0) {
		json_decref(list);
		return rc;
	}
	*out = json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "unread",
	    (json_int_t)unread, "start", (json_int_t)start, "messages", list);
	return 1;
}

int
store_mail_get(struct store *st, const char *uid, struct mail_got *m)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = strcmp(uid, "latest") == 0 ? stmt(c, S_MAIL_LATEST) : stmt(c, S_MAIL_GET);
	if (strcmp(uid, "latest") != 0)
		bind_text(s, 1, uid);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(s, 5);
		m->summary = row_mail_summary(s);
		m->raw = malloc(len + 1);
		if (m->raw != NULL) {
			memcpy(m->raw, sqlite3_column_blob(s, 5), len);
			m->raw[len] = '\0';
		}
		m->len = len;
		m->seq = sqlite3_column_int64(s, 8);
		rc = m->raw ? 1 : -1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : fail(c, "mail_get");
	}
	sqlite3_reset(s);
	reader_put(c);
	return rc;
}

int
store_mail_next(struct store *st, int64_t after_seq, const char *like, json_t **summary,
    int64_t *seq)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_MAIL_AFTER);
	sqlite3_bind_int64(s, 1, after_seq);
	bind_text(s, 2, like);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*summary = row_mail_summary(s);
		*seq = sqlite3_column_int64(s, 5);
		rc = 1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : fail(c, "mail_next");
	}
	sqlite3_reset(s);
	reader_put(c);
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
store_mail_change(struct store *st, json_t *uids, int read, int64_t *changed)
{
	struct mail_change p = {uids, read, 0};
	int rc = store_write_pub(st, mail_change_w, mail_change_publish, &p);
	*changed = p.changed;
	return rc;
}

int
store_mail_scan(struct store *st, int64_t after_seq, int (*fn)(void *arg, json_t *summary,
    const char *search, int64_t seq), void *arg)
{
	struct conn *c = reader_get(st);
	sqlite3_stmt *s = stmt(c, S_MAIL_SCAN);
	sqlite3_bind_int64(s, 1, after_seq);
	int rc, stop = 0;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *sum = row_mail_summary(s);
		const unsigned char *search = sqlite3_column_text(s, 5);
		stop = fn(arg, sum, search ? (const char *)search : "", sqlite3_column_int64(s, 6));
		json_decref(sum);
	}
	sqlite3_reset(s);
	rc = stop || rc == SQLITE_DONE ? 1 : fail(c, "mail_scan");
	reader_put(c);
	return rc;
}
