/*
 * notifications — notifications, each user's unread count, their
 * deliveries (the outbox) and digests.
 */
#define _GNU_SOURCE
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "util.h"

/*
 * Read state under a read_all's watermark (sql/013_read_watermark.sql): a
 * row without read_at of its own whose id is at most the user's
 * read_before was read at the user's read_all_at. For user u, an SQL
 * expression: RB(u), the watermark; UNREAD(u), whether the row is unread;
 * READ_AT(u), when it was read (NULL: it is not), in a query FROM
 * notifications. u is the user's parameter where a query has one: SQLite
 * then reads the user's row once per query, not once per row (a page
 * with u = notifications.user_id ran 30% slower).
 */
#define RB(u) "(SELECT read_before FROM users WHERE id = " u ")"
#define UNREAD(u) "(read_at IS NULL AND id > " RB(u) ")"
#define READ_AT(u) "coalesce(read_at, CASE WHEN id <= " RB(u) " THEN " \
	"(SELECT read_all_at FROM users WHERE id = " u ") END)"
#define ROW_USER "notifications.user_id"
/* The columns a notification object is made of, in row_notification() order. */
#define NCOLS_OF(u) "id, user_id, type, category, priority, title, body, data, " \
	"action_url, created_at, " READ_AT(u) ", archived_at, deliver_at, scheduled_id"
#define NCOLS NCOLS_OF(ROW_USER)
#define NCOLS_U NCOLS_OF("?1")
/* The same of a scheduled one (sql/012_scheduled.sql), not shown yet: never read, nor archived unless skipped. */
#define SCOLS "id, user_id, type, category, priority, title, body, data, action_url, " \
	"created_at, NULL, CASE in_app WHEN 'skipped' THEN created_at END, deliver_at, NULL"
/* Scheduled ones the worker releases at a time. */
#define RELEASE_MAX 64

/* Statements about notifications, their deliveries and digests. */
enum notif_stmt {
	S_USER_ENSURE_UNREAD,
	S_NOTIF_INSERT,
	S_NOTIF_BY_KEY,
	S_NOTIF_GET,
	S_NOTIF_LIST,
	S_NOTIF_LIST_UNREAD,
	S_NOTIF_LIST_ARCHIVED,
	S_NOTIF_OWNED,
	S_NOTIF_SET_READ,
	S_NOTIF_SET_UNREAD,
	S_NOTIF_SET_ARCHIVED,
	S_NOTIF_SET_UNARCHIVED,
	S_NOTIF_MAX_VISIBLE,
	S_NOTIF_READ_ALL,
	S_READ_WATERMARK,
	S_SETTLE_NEXT,
	S_SETTLE_LOW,
	S_SETTLE_FROM,
	S_SETTLE_LOWER,
	S_NOTIF_DELETE,
	S_UNREAD_COUNT,
	S_UNREAD_ADD,
	S_UNREAD_SET,
	S_UNREAD_CHECK,
	S_NOTIF_AFTER,
	S_NOTIF_RESOLVE,
	S_SEQ_INIT,
	S_SEQ_NEXT,
	S_SCHED_INSERT,
	S_SCHED_BY_KEY,
	S_SCHED_GET,
	S_SCHED_DUE,
	S_SCHED_RELEASE,
	S_SCHED_IN_APP,
	S_SCHED_EMAIL,
	S_SCHED_DELETE,
	S_SCHED_DONE,
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
	S_NOTIF__COUNT
};

static const char *const statements[S_NOTIF__COUNT] = {
	[S_USER_ENSURE_UNREAD] = "INSERT INTO users (id, created_at, unread) VALUES (?1, ?2, 1) "
	    "ON CONFLICT (id) DO UPDATE SET unread = unread + 1",
	[S_NOTIF_INSERT] = "INSERT INTO notifications (user_id, type, category, "
	    "priority, title, body, data, action_url, dedupe_key, created_at, "
	    "deliver_at, archived_at, email_skipped) VALUES (?1, ?2, ?3, coalesce(?4, 'normal'), "
	    "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
	    "ON CONFLICT (user_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
	[S_NOTIF_BY_KEY] = "SELECT " NCOLS_U " FROM notifications "
	    "WHERE user_id = ?1 AND dedupe_key = ?2",
	/*
	 * By its id, or the one its send returned when it was scheduled (an IN
	 * list, not OR, so that each is one index lookup).
	 */
	[S_NOTIF_GET] = "SELECT " NCOLS " FROM notifications "
	    "WHERE id IN (?1, (SELECT id FROM notifications WHERE scheduled_id = ?1))",
	/*
	 * A page of the inbox, of its unread, of the archived; each walks its
	 * own index (sql/010_inbox_indexes.sql) in id order. test_store
	 * checks their plans with EXPLAIN QUERY PLAN.
	 */
	[S_NOTIF_LIST] = "SELECT " NCOLS_U " FROM notifications INDEXED BY notifications_by_user "
	    "WHERE user_id = ?1 AND id < ?2 AND archived_at IS NULL "
	    "AND (deliver_at IS NULL OR deliver_at <= ?7) "
	    "AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR category = ?5) "
	    "ORDER BY id DESC LIMIT ?8",
	[S_NOTIF_LIST_UNREAD] = "SELECT " NCOLS_U " FROM notifications INDEXED BY "
	    "notifications_unread WHERE user_id = ?1 AND id < ?2 AND read_at IS NULL "
	    "AND id > " RB("?1") " "
	    "AND archived_at IS NULL AND (deliver_at IS NULL OR deliver_at <= ?7) "
	    "AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR category = ?5) "
	    "ORDER BY id DESC LIMIT ?8",
	[S_NOTIF_LIST_ARCHIVED] = "SELECT " NCOLS_U " FROM notifications INDEXED BY "
	    "notifications_archived WHERE user_id = ?1 AND id < ?2 AND archived_at IS NOT NULL "
	    "AND (?3 = 0 OR " UNREAD("?1") ") "
	    "AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR category = ?5) "
	    "AND (deliver_at IS NULL OR deliver_at <= ?7) ORDER BY id DESC LIMIT ?8",
	[S_NOTIF_OWNED] = "SELECT id FROM notifications "
	    "WHERE id IN (?1, (SELECT id FROM notifications WHERE scheduled_id = ?1)) "
	    "AND +user_id = ?2 AND (deliver_at IS NULL OR deliver_at <= ?3)",
	/*
	 * Each returns what the change does to the unread count: -1, 0 or +1.
	 * Marking unread one under the watermark settles it first (settle_from).
	 */
	[S_NOTIF_SET_READ] = "UPDATE notifications SET read_at = ?3 "
	    "WHERE id = ?1 AND user_id = ?2 AND " UNREAD("?2") " "
	    "RETURNING -(archived_at IS NULL)",
	[S_NOTIF_SET_UNREAD] = "UPDATE notifications SET read_at = NULL "
	    "WHERE id = ?1 AND user_id = ?2 AND read_at IS NOT NULL "
	    "RETURNING archived_at IS NULL",
	[S_NOTIF_SET_ARCHIVED] = "UPDATE notifications SET archived_at = ?3 "
	    "WHERE id = ?1 AND user_id = ?2 AND archived_at IS NULL "
	    "RETURNING -" UNREAD("?2"),
	[S_NOTIF_SET_UNARCHIVED] = "UPDATE notifications SET archived_at = NULL "
	    "WHERE id = ?1 AND user_id = ?2 AND archived_at IS NOT NULL "
	    "RETURNING " UNREAD("?2"),
	[S_NOTIF_MAX_VISIBLE] = "SELECT coalesce(max(id), 0) FROM notifications "
	    "WHERE user_id = ?1 AND (deliver_at IS NULL OR deliver_at <= ?2)",
	/* A few unread: marked one by one, above any watermark still settling. */
	[S_NOTIF_READ_ALL] = "UPDATE notifications SET read_at = ?2 "
	    "WHERE user_id = ?1 AND id <= ?3 AND " UNREAD("?1") " "
	    "AND (deliver_at IS NULL OR deliver_at <= ?2)",
	/*
	 * Many: the watermark. Every notification in notifications is visible
	 * (a scheduled one is written there when released, with a new id), so
	 * none up to ?3 is held back from it.
	 */
	[S_READ_WATERMARK] = "UPDATE users SET read_before = ?3, read_all_at = ?2, unread = 0 "
	    "WHERE id = ?1",
	/* A user whose watermark covers rows still to settle, and the watermark. */
	[S_SETTLE_NEXT] = "SELECT id, read_before FROM users INDEXED BY users_settling "
	    "WHERE read_before > 0 LIMIT 1",
	/* The id below the next ?3 rows to settle of user ?1 under ?2 (none: no row). */
	[S_SETTLE_LOW] = "SELECT id FROM notifications WHERE user_id = ?1 AND id <= ?2 "
	    "AND read_at IS NULL ORDER BY id DESC LIMIT 1 OFFSET ?3",
	/* Give the rows of ?1 from id ?2 up to the watermark their read_at ... */
	[S_SETTLE_FROM] = "UPDATE notifications SET read_at = (SELECT read_all_at FROM users "
	    "WHERE id = ?1) WHERE user_id = ?1 AND id >= ?2 AND id <= " RB("?1") " "
	    "AND read_at IS NULL",
	/* ... and lower the watermark below them (0: none left). */
	[S_SETTLE_LOWER] = "UPDATE users SET read_before = ?2 WHERE id = ?1 AND read_before > ?2",
	[S_NOTIF_DELETE] = "DELETE FROM notifications "
	    "WHERE id IN (?1, (SELECT id FROM notifications WHERE scheduled_id = ?1)) "
	    "AND (?2 IS NULL OR user_id = ?2) RETURNING user_id, "
	    "read_at IS NULL AND archived_at IS NULL AND id > "
	    RB(ROW_USER) ", id",
	/* The user's counter (sql/009_unread_counter.sql); no row: no such user. */
	[S_UNREAD_COUNT] = "SELECT unread FROM users WHERE id = ?1",
	[S_UNREAD_ADD] = "UPDATE users SET unread = unread + ?2 WHERE id = ?1 RETURNING unread",
	[S_UNREAD_SET] = "UPDATE users SET unread = ?2 WHERE id = ?1",
	/* For check: users whose counter disagrees with their rows. */
	[S_UNREAD_CHECK] = "SELECT u.id, u.unread, (SELECT count(*) FROM notifications n "
	    "WHERE n.user_id = u.id AND n.read_at IS NULL AND n.archived_at IS NULL "
	    "AND n.id > u.read_before) "
	    "AS actual FROM users u "
	    "WHERE unread != actual ORDER BY u.id",
	[S_NOTIF_AFTER] = "SELECT " NCOLS_U " FROM notifications "
	    "WHERE user_id = ?1 AND id > ?2 AND (deliver_at IS NULL OR deliver_at <= ?3) "
	    "ORDER BY id LIMIT ?4",
	/*
	 * Scheduled ones take their ids from notifications' own sequence (the
	 * AUTOINCREMENT row, made here before the first notification), so an
	 * id names one thing whichever table holds it.
	 */
	[S_NOTIF_RESOLVE] = "SELECT id FROM notifications "
	    "WHERE id IN (?1, (SELECT id FROM notifications WHERE scheduled_id = ?1)) "
	    "AND (?2 IS NULL OR user_id = ?2)",
	[S_SEQ_INIT] = "INSERT INTO sqlite_sequence (name, seq) SELECT 'notifications', 0 "
	    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'notifications')",
	[S_SEQ_NEXT] = "UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(id), 0) "
	    "FROM notifications)) + 1 WHERE name = 'notifications' RETURNING seq",
	[S_SCHED_INSERT] = "INSERT INTO scheduled (id, user_id, type, category, priority, title, "
	    "body, data, action_url, dedupe_key, created_at, deliver_at, in_app, in_app_why, "
	    "email, email_next_at, email_why) VALUES (?1, ?2, ?3, ?4, coalesce(?5, 'normal'), ?6, "
	    "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) "
	    "ON CONFLICT (user_id, dedupe_key) DO NOTHING",
	[S_SCHED_BY_KEY] = "SELECT " SCOLS " FROM scheduled WHERE user_id = ?1 AND dedupe_key = ?2",
	[S_SCHED_GET] = "SELECT " SCOLS " FROM scheduled WHERE id = ?1",
	[S_SCHED_DUE] = "SELECT id, user_id, in_app = 'sent' FROM scheduled WHERE deliver_at <= ?1 "
	    "ORDER BY deliver_at, id LIMIT ?2",
	[S_SCHED_RELEASE] = "INSERT INTO notifications (user_id, type, category, priority, title, "
	    "body, data, action_url, dedupe_key, created_at, deliver_at, archived_at, "
	    "email_skipped, scheduled_id) SELECT user_id, type, category, priority, title, body, "
	    "data, action_url, dedupe_key, created_at, deliver_at, CASE in_app WHEN 'skipped' "
	    "THEN created_at END, CASE email WHEN 'skipped' THEN coalesce(email_why, 'skipped') "
	    "END, id FROM scheduled WHERE id = ?1",
	[S_SCHED_IN_APP] = "INSERT INTO deliveries (notification_id, channel, status, last_error, "
	    "created_at, updated_at) SELECT ?2, 'in_app', 'skipped', in_app_why, ?3, ?3 "
	    "FROM scheduled WHERE id = ?1 AND in_app = 'skipped'",
	[S_SCHED_EMAIL] = "INSERT INTO deliveries (notification_id, channel, status, "
	    "next_attempt_at, last_error, created_at, updated_at) SELECT ?2, 'email', email, "
	    "email_next_at, email_why, ?3, ?3 FROM scheduled WHERE id = ?1 AND email != 'skipped'",
	[S_SCHED_DELETE] = "DELETE FROM scheduled WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2) "
	    "RETURNING user_id",
	[S_SCHED_DONE] = "DELETE FROM scheduled WHERE id = ?1",
	[S_DELIV_NOTIF] = "SELECT " NCOLS " FROM notifications WHERE id = "
	    "(SELECT notification_id FROM deliveries WHERE id = ?1)",
	[S_DELIV_INSERT] = "INSERT INTO deliveries (notification_id, channel, status, "
	    "next_attempt_at, last_error, created_at, updated_at, sent_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
	[S_DELIV_CLAIM] = "UPDATE deliveries SET claimed = 1, attempts = attempts + 1, "
	    "updated_at = ?1 WHERE id IN (SELECT id FROM deliveries "
	    "WHERE status IN ('pending', 'deferred') AND next_attempt_at <= ?1 AND claimed = 0 "
	    "ORDER BY next_attempt_at LIMIT ?2) "
	    "RETURNING id, coalesce(notification_id, 0), channel, attempts, coalesce(digest_id, 0), "
	    "target",
	/* The worker's next thing to do: a delivery, or a scheduled one to release. */
	[S_DELIV_NEXT] = "SELECT min(t) FROM (SELECT min(next_attempt_at) AS t FROM deliveries "
	    "WHERE status IN ('pending', 'deferred') AND claimed = 0 "
	    "UNION ALL SELECT min(deliver_at) FROM scheduled)",
	[S_DELIV_UNCLAIM] = "UPDATE deliveries SET claimed = 0 WHERE claimed = 1",
	/* Held by the user's preferences at its turn: not an attempt, its claim's is given back. */
	[S_DELIV_FINISH] = "UPDATE deliveries SET status = ?2, claimed = 0, next_attempt_at = ?3, "
	    "attempts = CASE WHEN ?2 = 'deferred' THEN max(attempts - 1, 0) ELSE attempts END, "
	    "last_error = coalesce(?4, last_error), sent_at = CASE WHEN ?2 = 'sent' THEN ?5 ELSE sent_at END, "
	    "updated_at = ?5 WHERE id = ?1",
	/*
	 * A notification shown at once has no in-app row (a create writes one
	 * only to hold or skip it): it is reported as sent when it was made;
	 * one whose email could not happen has no email row, but the reason
	 * (email_skipped): reported as a skipped delivery.
	 */
	[S_DELIV_OF] = "SELECT channel, status, attempts, next_attempt_at, last_error, created_at, "
	    "updated_at, sent_at, digest_id, target FROM (SELECT 0 AS k, 0 AS id, 'in_app' AS channel, "
	    "'sent' AS status, 0 AS attempts, NULL AS next_attempt_at, NULL AS last_error, "
	    "n.created_at, n.created_at AS updated_at, n.created_at AS sent_at, NULL AS digest_id, "
	    "0 AS target FROM notifications n WHERE n.id = ?1 AND NOT EXISTS (SELECT 1 FROM deliveries d "
	    "WHERE d.notification_id = ?1 AND d.channel = 'in_app') "
	    "UNION ALL SELECT 1, id, channel, status, attempts, next_attempt_at, last_error, "
	    "created_at, updated_at, sent_at, digest_id, target FROM deliveries "
	    "WHERE notification_id = ?1 "
	    "UNION ALL SELECT 2, 0, 'email', 'skipped', 0, NULL, n.email_skipped, n.created_at, "
	    "n.created_at, NULL, NULL, 0 FROM notifications n WHERE n.id = ?1 "
	    "AND n.email_skipped IS NOT NULL AND NOT EXISTS (SELECT 1 FROM deliveries d "
	    "WHERE d.notification_id = ?1 AND d.channel = 'email') "
	    "UNION ALL SELECT 3, 0, 'in_app', CASE in_app WHEN 'sent' THEN 'pending' ELSE in_app END, "
	    "0, CASE in_app WHEN 'sent' THEN deliver_at END, in_app_why, created_at, created_at, "
	    "NULL, NULL, 0 FROM scheduled WHERE id = ?1 "
	    "UNION ALL SELECT 4, 0, 'email', email, 0, email_next_at, email_why, created_at, "
	    "created_at, NULL, NULL, 0 FROM scheduled WHERE id = ?1 AND email IS NOT NULL) "
	    "ORDER BY k, id",
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
	[S_DIGEST_TALLY] = "SELECT count(*) FILTER (WHERE n.read_at IS NULL AND n.id > u.read_before), "
	    "count(*) FILTER (WHERE n.read_at IS NOT NULL OR n.id <= u.read_before) "
	    "FROM users u JOIN notifications n ON n.user_id = u.id "
	    "JOIN deliveries d ON d.notification_id = n.id AND d.channel = 'email' "
	    "WHERE u.id = ?1 AND d.status = 'digest' AND d.created_at < ?2",
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
	    "AND (?2 OR " READ_AT(ROW_USER) " IS NULL OR " READ_AT(ROW_USER) " >= ?3) "
	    "ORDER BY id DESC LIMIT ?4",
};

const struct stmt_table notif_sql = {statements, S_NOTIF__COUNT};

static int	settle_from(struct conn *c, const char *user, int64_t id);

#define stmt(c, id) stmt_get((c), T_NOTIF, (id))

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
		time_format_rfc3339(ts, sizeof ts, sqlite3_column_int64(s, 12));
		json_object_set_new(o, "deliver_at", json_string(ts));
	}
	if (sqlite3_column_type(s, 13) != SQLITE_NULL)
		json_object_set_new(o, "scheduled_id", json_integer(sqlite3_column_int64(s, 13)));
	return o;
}

int
sqlite_explain(struct store *st, const char *which, char *out, size_t n)
{
	static const struct {
		const char	*name;
		enum notif_stmt	 id;
	} named[] = {
		{"list", S_NOTIF_LIST}, {"list_unread", S_NOTIF_LIST_UNREAD},
		{"list_archived", S_NOTIF_LIST_ARCHIVED}, {"unread_count", S_UNREAD_COUNT},
		{"after", S_NOTIF_AFTER}, {"owned", S_NOTIF_OWNED},
		{"settle_next", S_SETTLE_NEXT}, {"settle_low", S_SETTLE_LOW},
		{"settle_from", S_SETTLE_FROM}, {"by_key", S_NOTIF_BY_KEY},
	};
	const char *sql = NULL;
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
		if (strcmp(named[i].name, which) == 0)
			sql = statements[named[i].id];
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
int
unread_mismatches(struct conn *c, json_t *list)
{
	return mismatch_rows(c, stmt(c, S_UNREAD_CHECK), "user", "unread_check", list);
}

int
repair_w(struct conn *c, void *arg)
{
	json_t *fixed = arg, *m;
	size_t i;
	json_array_clear(fixed);
	if (unread_mismatches(c, fixed) < 0)
		return -1;
	json_array_foreach(fixed, i, m) {
		if (exec_on(c, T_NOTIF, S_UNREAD_SET, "unread_set", "ti",
		    json_string_value(json_object_get(m, "user")),
		    (int64_t)json_integer_value(json_object_get(m, "actual"))) != 0)
			return -1;
	}
	return 1;
}

static int
delivery_insert(struct conn *c, int64_t nid, unsigned ch, const struct routing *r, int64_t now)
{
	sqlite3_stmt *s = stmt(c, S_DELIV_INSERT);
	sqlite3_bind_int64(s, 1, nid);
	bind_text(s, 2, prefs_channel_name(ch));
	bind_text(s, 3, delivery_status_name(r->status));
	if (r->status == DS_PENDING || r->status == DS_DEFERRED)
		sqlite3_bind_int64(s, 4, r->next_at);
	bind_text(s, 5, r->why);
	sqlite3_bind_int64(s, 6, now);
	if (r->status == DS_SENT)
		sqlite3_bind_int64(s, 7, now);
	return step_done(c, s, "delivery_insert");
}

/* User's unread count, kept in users.unread: 1, or 0 (count 0) when there is no such user. */
static int
unread_count(struct conn *c, const char *user, int64_t *count)
{
	*count = 0;
	return query_on(c, T_NOTIF, S_UNREAD_COUNT, "unread_count", row_ints, count, "t", user);
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

/* row_fn: the notification of the first row into *(json_t **)arg. */
static bool
row_one(sqlite3_stmt *s, void *arg)
{
	*(json_t **)arg = row_notification(s);
	return false;
}

/*
 * Keep a notification for later in scheduled, with the routing decided for
 * it, under an id from the notifications' own sequence. A key names one
 * notification whichever table holds it: when taken, *out is that one.
 */
static int
schedule_one(struct conn *c, const struct notification_new *in, const struct routing *ia,
    const struct routing *em, int64_t now, json_t **out, int64_t *id, bool *created,
    bool *outbox)
{
	int64_t sid = 0;
	int rc;
	if (in->key != NULL && (rc = query_on(c, T_NOTIF, S_NOTIF_BY_KEY, "notification_by_key",
	    row_one, out, "tt", in->user, in->key)) != 0)
		return rc;
	if (user_ensure(c, in->user, now) < 0 ||
	    step_done(c, stmt(c, S_SEQ_INIT), "sequence_init") != 0 ||
	    query_on(c, T_NOTIF, S_SEQ_NEXT, "sequence_next", row_ints, &sid, NULL) <= 0)
		return -1;
	sqlite3_stmt *s = stmt(c, S_SCHED_INSERT);
	sqlite3_bind_int64(s, 1, sid);
	bind_text(s, 2, in->user);
	bind_text(s, 3, in->type);
	bind_text(s, 4, in->category);
	bind_text(s, 5, in->priority);
	bind_text(s, 6, in->title);
	bind_text(s, 7, in->body);
	bind_text(s, 8, in->data);
	bind_text(s, 9, in->url);
	bind_text(s, 10, in->key);
	sqlite3_bind_int64(s, 11, now);
	sqlite3_bind_int64(s, 12, in->deliver_at);
	bind_text(s, 13, ia->status == DS_SKIPPED ? "skipped" : "sent");
	bind_text(s, 14, ia->status == DS_SKIPPED ? ia->why : NULL);
	if (in->routed) {
		bind_text(s, 15, delivery_status_name(em->status));
		if (em->status == DS_PENDING || em->status == DS_DEFERRED)
			sqlite3_bind_int64(s, 16, em->next_at);
		bind_text(s, 17, em->status == DS_SKIPPED && em->why == NULL ? "skipped" : em->why);
	}
	if (step_done(c, s, "scheduled_insert") != 0)
		return -1;
	if (sqlite3_changes(c->db) > 0) {
		*id = sid;
		*created = true;
		*outbox = true;		/* the worker releases it */
		return 1;
	}
	rc = query_on(c, T_NOTIF, S_SCHED_BY_KEY, "scheduled_by_key", row_one, out, "tt",
	    in->user, in->key);
	return rc > 0 ? 1 : -1;
}

/*
 * Insert one notification (and its user, when new), routed: kept in
 * scheduled until due, or stored archived when in-app is off. Its rows:
 * the notification, the user's (made or its count raised, one
 * statement), an in-app delivery only to record a skip, and the email
 * delivery. *count: the unread count after it when a listener wants it
 * (events_interested) or the write had it anyway (-1: not known); *outbox
 * when the worker has something new to do.
 */
static int
create_one(struct conn *c, const struct notification_new *in, int64_t now,
    json_t **out, int64_t *id, bool *created, bool *hidden, int64_t *count, bool *outbox)
{
	struct routing ia = {DS_SENT, 0, NULL}, em = {DS_SKIPPED, 0, NULL};
	bool routed = in->routed;
	if (routed) {
		ia = in->in_app;
		em = in->email;
	}
	*hidden = ia.status == DS_SKIPPED;
	if (in->deliver_at > now)
		return schedule_one(c, in, &ia, &em, now, out, id, created, outbox);
	bool shown = !*hidden;
	int rc;
	/* A key may be waiting in scheduled. */
	if (in->key != NULL && (rc = query_on(c, T_NOTIF, S_SCHED_BY_KEY, "scheduled_by_key",
	    row_one, out, "tt", in->user, in->key)) != 0)
		return rc;
	/* Without a key nothing can conflict: the user's write can count it at once. */
	bool counted = shown && in->key == NULL;
	sqlite3_stmt *s;
	if (counted) {
		/* Not RETURNING the count: that made a create 30% slower (bench/rest.sh). */
		if (query_on(c, T_NOTIF, S_USER_ENSURE_UNREAD, "user_ensure", NULL, NULL, "ti",
		    in->user, now) < 0)
			return -1;
	} else if (user_ensure(c, in->user, now) < 0) {
		return -1;
	}
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
		sqlite3_bind_int64(s, 11, in->deliver_at);
	if (*hidden)
		sqlite3_bind_int64(s, 12, now);
	if (routed && em.status == DS_SKIPPED)
		bind_text(s, 13, em.why ? em.why : "skipped");
	if (step_done(c, s, "notification_insert") != 0)
		return -1;
	if (sqlite3_changes(c->db) > 0) {
		/* The object is built after the commit, outside the writer's lock. */
		*id = sqlite3_last_insert_rowid(c->db);
		*created = true;
		if (shown && !counted && unread_add(c, in->user, 1, count) < 0)
			return -1;
		/* A client of the user wants the count: one read here beats one per device later. */
		if (shown && counted && events_interested(in->user) &&
		    unread_count(c, in->user, count) < 0)
			return -1;
		if (routed && (em.status == DS_PENDING || em.status == DS_DEFERRED))
			*outbox = true;
		if (routed && ((ia.status != DS_SENT &&
		    delivery_insert(c, *id, CHANNEL_IN_APP, &ia, now) != 0) ||
		    (em.status != DS_SKIPPED && delivery_insert(c, *id, CHANNEL_EMAIL, &em, now) != 0)))
			return -1;
		if (routed && channels_queue(c, *id, now, outbox) != 0)
			return -1;
		return 1;
	}

	/* The key was taken: hand back what it names. */
	rc = query_on(c, T_NOTIF, S_NOTIF_BY_KEY, "notification_by_key", row_one, out, "tt",
	    in->user, in->key);
	return rc > 0 ? 1 : -1;
}

struct create {
	const struct notification_new *in;
	size_t		 n;
	int64_t		 now;
	json_t		**out;
	char		**text;		/* NULL: objects */
	int64_t		*ids;
	bool		*created;
	bool		*hidden;	/* in-app is off: stored archived, not announced */
	int64_t		*counts;	/* unread counts to announce; -1: not counted */
	bool		 outbox;	/* an email or a scheduled one for the worker */
};

/* Forget what a failed create had built. */
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
		p->created[i] = false;
		p->hidden[i] = false;
		p->counts[i] = -1;
	}
	p->outbox = false;
}

static int
create_w(struct conn *c, void *arg)
{
	struct create *p = arg;
	create_clear(p);
	for (size_t i = 0; i < p->n; i++)
		if (create_one(c, &p->in[i], p->now, &p->out[i], &p->ids[i], &p->created[i],
		    &p->hidden[i], &p->counts[i], &p->outbox) < 0) {
			create_clear(p);
			return -1;
		}
	return 1;
}

/* Build the new objects (or texts) and announce the ones that are visible now. */
static void
create_publish(void *arg)
{
	struct create *p = arg;
	notifications_publish(p->in, p->n, p->now, p->ids, p->created, p->hidden, p->counts,
	    p->out, p->text);
	if (p->outbox)
		events_emit(EVENT_OUTBOX, "", NULL);
}

int
sqlite_notifications_create(struct store *st, const struct notification_new *in,
    size_t n, int64_t now, json_t **out, char **text, bool *created)
{
	int64_t one, *ids = n == 1 ? &one : calloc(n, sizeof *ids);
	int64_t cnt, *counts = n == 1 ? &cnt : calloc(n, sizeof *counts);
	bool hid, *hidden = n == 1 ? &hid : calloc(n, sizeof *hidden);
	struct create p = {in, n, now, out, text, ids, created, hidden, counts, false};
	int rc = -1;
	for (size_t i = 0; i < n; i++) {
		out[i] = NULL;
		if (text != NULL)
			text[i] = NULL;
	}
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
notification_by(struct store *st, enum notif_stmt which, int64_t key, json_t **out)
{
	return query_one(st, T_NOTIF, which, statements[which], row_notification, out, "i", key);
}

int
sqlite_notification_get(struct store *st, int64_t id, json_t **out)
{
	int rc = notification_by(st, S_NOTIF_GET, id, out);
	return rc == 0 ? notification_by(st, S_SCHED_GET, id, out) : rc;
}

int
sqlite_unread_count(struct store *st, const char *user, int64_t now, int64_t *count)
{
	(void)now;
	*count = 0;
	return query(st, T_NOTIF, S_UNREAD_COUNT, "unread_count", row_ints, count, "t", user);
}

int
sqlite_notifications_after(struct store *st, const char *user, int64_t after, int limit,
    int64_t now, json_t **out)
{
	return query_list(st, T_NOTIF, S_NOTIF_AFTER, "notifications_after", row_notification,
	    out, "tiii", user, after, now, (int64_t)limit);
}

int
sqlite_last_id(struct store *st, const char *user, int64_t now, int64_t *id)
{
	*id = 0;
	return query(st, T_NOTIF, S_NOTIF_MAX_VISIBLE, "last_id", row_ints, id, "ti", user,
	    now) < 0 ? -1 : 1;
}

/* v as decimal digits. */
static void
put_text(struct buf *b, sqlite3_stmt *s, int col)
{
	const char *t = (const char *)sqlite3_column_text(s, col);
	if (t == NULL)
		buf_puts(b, "null");
	else
		buf_json_string(b, t, (size_t)sqlite3_column_bytes(s, col));
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
	buf_put_int(b, sqlite3_column_int64(s, 0));
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
			buf_put_time(b, sqlite3_column_int64(s, col));
	}
	if (sqlite3_column_type(s, 12) != SQLITE_NULL) {
		buf_puts(b, ",\"deliver_at\":");
		buf_put_time(b, sqlite3_column_int64(s, 12));
	}
	if (sqlite3_column_type(s, 13) != SQLITE_NULL) {
		buf_puts(b, ",\"scheduled_id\":");
		buf_put_int(b, sqlite3_column_int64(s, 13));
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
	if (read_begin(c) != 0) {
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
	read_end(c);
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
			buf_put_int(text, last);
		else
			buf_puts(text, "null");
		buf_puts(text, ",\"unread_count\":");
		buf_put_int(text, count);
		buf_putc(text, '}');
		return 1;
	}
	*out = json_pack("{s:o, s:o, s:I}", "notifications", list, "next_before",
	    n > q->limit ? json_integer(last) : json_null(), "unread_count",
	    (json_int_t)count);
	return 1;
}

int
sqlite_notification_list(struct store *st, const struct notification_query *q,
    int64_t now, json_t **out)
{
	return notification_page(st, q, now, out, NULL);
}

int
sqlite_notification_list_text(struct store *st, const struct notification_query *q,
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
	static const enum notif_stmt set[] = {
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
		int64_t id = 0;
		int r = query_on(c, T_NOTIF, S_NOTIF_OWNED, "notification_owned", row_ints, &id,
		    "iti", p->ids[i], p->user, p->now);
		if (r == 0) {
			p->missing = p->ids[i];
			return 0;	/* run_batch() undoes the ids before it */
		}
		if (r < 0)
			return -1;
		if (p->how == MARK_UNREAD && settle_from(c, p->user, id) < 0)
			return -1;
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
sqlite_notifications_mark(struct store *st, const char *user, const int64_t *ids,
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
	bool		 watermark;	/* out: rows wait to be settled */
	json_t		*result;
};

/* Unread notifications from which a read_all sets a watermark instead of marking each. */
#define WATERMARK_MIN 256

static int
read_all_w(struct conn *c, void *arg)
{
	struct read_all *p = arg;
	int rc = user_exists(c, p->user);
	if (rc <= 0)
		return rc;
	p->up_to = 0;
	if (query_on(c, T_NOTIF, S_NOTIF_MAX_VISIBLE, "notification_max", row_ints, &p->up_to,
	    "ti", p->user, p->now) < 0)
		return -1;
	int64_t unread = 0;
	if (query_on(c, T_NOTIF, S_UNREAD_COUNT, "unread_count", row_ints, &unread, "t",
	    p->user) < 0)
		return -1;
	/* Every visible notification is read now, up to the newest: none unread. */
	p->count = 0;
	p->watermark = unread >= WATERMARK_MIN;
	if (!p->watermark) {
		if (exec_on(c, T_NOTIF, S_NOTIF_READ_ALL, "notification_read_all", "tii",
		    p->user, p->now, p->up_to) != 0)
			return -1;
		p->marked = sqlite3_changes(c->db);
		return exec_on(c, T_NOTIF, S_UNREAD_SET, "unread_set", "ti",
		    p->user, (int64_t)0) == 0 ? 1 : -1;
	}
	/*
	 * Rows an earlier watermark still covers keep its time: settled now
	 * (none, unless the last read_all of this size was a moment ago).
	 */
	if (settle_from(c, p->user, 0) < 0)
		return -1;
	p->marked = unread;
	return exec_on(c, T_NOTIF, S_READ_WATERMARK, "read_watermark", "tii", p->user, p->now,
	    p->up_to) == 0 ? 1 : -1;
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
sqlite_notifications_read_all(struct store *st, const char *user, int64_t now,
    json_t **result)
{
	struct read_all p = {.user = user, .now = now};
	int rc = store_write_pub(st, read_all_w, read_all_publish, &p);
	if (rc > 0) {
		*result = p.result;
		if (p.watermark)
			settle_kick(st);
	} else {
		json_decref(p.result);
	}
	return rc;
}

/*
 * Settling: the rows a read_all's watermark covers get their read_at, in
 * transactions of SETTLE_ROWS, newest first, each lowering the watermark
 * below the rows it wrote (sql/013_read_watermark.sql). The store's
 * background thread runs settle_step() while it returns 1.
 */
#define SETTLE_ROWS 2000

/* Settle user's rows from id up to the watermark and lower it below id. */
static int
settle_from(struct conn *c, const char *user, int64_t id)
{
	if (exec_on(c, T_NOTIF, S_SETTLE_FROM, "settle_from", "ti", user, id) != 0)
		return -1;
	return exec_on(c, T_NOTIF, S_SETTLE_LOWER, "settle_lower", "ti", user,
	    id > 0 ? id - 1 : 0);
}

struct settling {
	char	*user;
	int64_t	 below;
};

static bool
row_settling(sqlite3_stmt *s, void *arg)
{
	struct settling *p = arg;
	p->user = strdup((const char *)sqlite3_column_text(s, 0));
	p->below = sqlite3_column_int64(s, 1);
	return false;
}

static int
settle_w(struct conn *c, void *arg)
{
	struct settling *p = arg;
	free(p->user);
	p->user = NULL;
	int rc = query_on(c, T_NOTIF, S_SETTLE_NEXT, "settle_next", row_settling, p, "");
	if (rc <= 0)
		return rc;
	if (p->user == NULL)
		return -1;
	int64_t low = 0;
	if (query_on(c, T_NOTIF, S_SETTLE_LOW, "settle_low", row_ints, &low, "tii", p->user,
	    p->below, (int64_t)SETTLE_ROWS) < 0)
		return -1;
	return settle_from(c, p->user, low + 1) < 0 ? -1 : 1;
}

int
settle_step(struct store *st)
{
	struct settling p = {0};
	int rc = store_write(st, settle_w, &p);
	free(p.user);
	return rc;
}

bool
settle_pending(struct store *st)
{
	struct settling p = {0};
	int rc = query(st, T_NOTIF, S_SETTLE_NEXT, "settle_next", row_settling, &p, "");
	free(p.user);
	return rc > 0;
}

struct del {
	const char	*user;
	int64_t		 id, now, count;
	bool		 scheduled;
	struct deleted	*d;
};

static int
delete_w(struct conn *c, void *arg)
{
	struct del *p = arg;
	sqlite3_stmt *s;
	int rc;
	free(p->d->user);
	*p->d = (struct deleted){0};
	if (p->scheduled) {		/* not due yet: withdrawn */
		s = stmt(c, S_SCHED_DELETE);
		sqlite3_bind_int64(s, 1, p->id);
		bind_text(s, 2, p->user);
		if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			p->d->user = strdup((const char *)sqlite3_column_text(s, 0));
			p->d->id = p->id;
			p->d->cancelled = true;
		}
		sqlite3_reset(s);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return fail(c, "scheduled_delete");
		if (rc == SQLITE_ROW)
			return p->d->user ? 1 : -1;
	}
	s = stmt(c, S_NOTIF_DELETE);
	sqlite3_bind_int64(s, 1, p->id);
	bind_text(s, 2, p->user);
	rc = sqlite3_step(s);
	int64_t counted = 0;
	if (rc == SQLITE_ROW) {
		p->d->user = strdup((const char *)sqlite3_column_text(s, 0));
		counted = sqlite3_column_int64(s, 1);
		p->d->id = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : fail(c, "notification_delete");
	if (p->d->user == NULL)
		return -1;
	return unread_add(c, p->d->user, -counted, &p->count) < 0 ? -1 : 1;
}

/* A delete is announced; a cancel is not (nobody saw it). */
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
sqlite_notification_delete(struct store *st, const char *user, int64_t id, bool scheduled,
    int64_t now, struct deleted *d)
{
	*d = (struct deleted){0};
	struct del p = {.user = user, .id = id, .now = now, .scheduled = scheduled, .d = d};
	int rc = store_write_pub(st, delete_w, delete_publish, &p);
	if (rc <= 0) {
		free(d->user);
		*d = (struct deleted){0};
	}
	return rc;
}

struct cancel {
	const char	*user;
	int64_t		 id;
	bool		 too_late;
	int64_t		 released_as;	/* the id it was released with, when it was */
};

static int
cancel_w(struct conn *c, void *arg)
{
	struct cancel *p = arg;
	sqlite3_stmt *s = stmt(c, S_SCHED_DELETE);
	sqlite3_bind_int64(s, 1, p->id);
	bind_text(s, 2, p->user);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc != SQLITE_DONE)
		return fail(c, "scheduled_delete");
	/* Released already, or never scheduled: too late either way. */
	int64_t id = 0;
	if ((rc = query_on(c, T_NOTIF, S_NOTIF_RESOLVE, "notification_resolve", row_ints, &id,
	    "it", p->id, p->user)) <= 0)
		return rc;
	p->too_late = true;
	p->released_as = id != p->id ? id : 0;
	return 0;
}

int
sqlite_notification_cancel(struct store *st, const char *user, int64_t id, bool *too_late,
    int64_t *released_as)
{
	struct cancel p = {user, id, false, 0};
	int rc = store_write(st, cancel_w, &p);
	*too_late = p.too_late;
	*released_as = p.released_as;
	return rc;
}

struct claim {
	int64_t		 now;
	struct delivery	*out;
	size_t		 max, n;
	/* Released, to announce: the notification and its user's unread count after it. */
	json_t		*released[RELEASE_MAX];
	int64_t		 counts[RELEASE_MAX];
	size_t		 nreleased;
};

/* A scheduled one that fell due. */
struct due {
	int64_t		 id;
	char		*user;
	bool		 shown;		/* in-app is on: it joins the inbox */
};

/*
 * Release one: written to notifications with a new id (ids keep the
 * order in which notifications became visible, so since=ID replay misses
 * none) and scheduled_id, with the deliveries routing decided, counted
 * when shown; gone from scheduled.
 */
static int
release_one(struct conn *c, struct claim *p, const struct due *d)
{
	if (exec_on(c, T_NOTIF, S_SCHED_RELEASE, "scheduled_release", "i", d->id) != 0)
		return -1;
	int64_t nid = sqlite3_last_insert_rowid(c->db), count = 0;
	bool queued = false;	/* the claim that follows takes them */
	if (query_on(c, T_NOTIF, S_SCHED_IN_APP, "scheduled_in_app", NULL, NULL, "iii", d->id, nid,
	    p->now) < 0 ||
	    query_on(c, T_NOTIF, S_SCHED_EMAIL, "scheduled_email", NULL, NULL, "iii", d->id, nid,
	    p->now) < 0 ||
	    channels_queue(c, nid, p->now, &queued) != 0 ||
	    query_on(c, T_NOTIF, S_SCHED_DONE, "scheduled_done", NULL, NULL, "i", d->id) < 0)
		return -1;
	if (!d->shown)
		return 0;
	json_t *o = NULL;
	if (unread_add(c, d->user, 1, &count) < 0 ||
	    query_on(c, T_NOTIF, S_NOTIF_GET, "notification_get", row_one, &o, "i", nid) <= 0)
		return -1;
	p->counts[p->nreleased] = count;
	p->released[p->nreleased++] = o;
	return 0;
}

/* Forget what a failed claim released. */
static void
claim_clear(struct claim *p)
{
	for (size_t i = 0; i < p->nreleased; i++)
		json_decref(p->released[i]);
	p->nreleased = 0;
	p->n = 0;
}

static int
claim_w(struct conn *c, void *arg)
{
	struct claim *p = arg;
	struct due due[RELEASE_MAX];
	size_t ndue = 0;
	int rc;
	claim_clear(p);
	/* Collect the due ones first: the release changes the table the query reads. */
	sqlite3_stmt *s = stmt(c, S_SCHED_DUE);
	sqlite3_bind_int64(s, 1, p->now);
	sqlite3_bind_int64(s, 2, RELEASE_MAX);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && ndue < RELEASE_MAX) {
		due[ndue].id = sqlite3_column_int64(s, 0);
		due[ndue].user = strdup((const char *)sqlite3_column_text(s, 1));
		due[ndue].shown = sqlite3_column_int(s, 2) != 0;
		ndue++;
	}
	sqlite3_reset(s);
	rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : fail(c, "scheduled_due");
	for (size_t i = 0; i < ndue; i++) {
		if (rc == 0 && (due[i].user == NULL || release_one(c, p, &due[i]) < 0))
			rc = -1;
		free(due[i].user);
	}
	if (rc < 0) {
		claim_clear(p);
		return -1;
	}

	s = stmt(c, S_DELIV_CLAIM);
	sqlite3_bind_int64(s, 1, p->now);
	sqlite3_bind_int64(s, 2, (int64_t)p->max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && p->n < p->max) {
		struct delivery *d = &p->out[p->n++];
		d->id = sqlite3_column_int64(s, 0);
		d->notification_id = sqlite3_column_int64(s, 1);
		d->channel = prefs_channel_of((const char *)sqlite3_column_text(s, 2));
		d->attempts = sqlite3_column_int(s, 3);
		d->digest_id = d->notification_id == 0 ? sqlite3_column_int64(s, 4) : 0;
		d->target = sqlite3_column_int64(s, 5);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		claim_clear(p);
		return fail(c, "deliveries_claim");
	}
	return 1;	/* claiming nothing is an answer too */
}

/* After the commit: the released ones join their users' inboxes. */
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
sqlite_deliveries_claim(struct store *st, int64_t now, struct delivery *out, size_t max,
    size_t *n)
{
	struct claim p = {.now = now, .out = out, .max = max};
	int rc = store_write_pub(st, claim_w, claim_publish, &p);
	*n = rc > 0 ? p.n : 0;
	claim_clear(&p);
	return rc;
}

int
sqlite_deliveries_next(struct store *st, int64_t *at)
{
	*at = 0;
	if (query(st, T_NOTIF, S_DELIV_NEXT, "deliveries_next", row_ints, at, NULL) < 0)
		return -1;
	return *at > 0;
}

static int
unclaim_w(struct conn *c, void *arg)
{
	int *n = arg;
	if (step_done(c, stmt(c, S_DELIV_UNCLAIM), "deliveries_unclaim") != 0)
		return -1;
	*n = sqlite3_changes(c->db);
	return 1;
}

int
sqlite_deliveries_unclaim(struct store *st)
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
};

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
	return sqlite3_changes(c->db) > 0;	/* 0: cancelled or deleted meanwhile */
}

int
sqlite_delivery_finish(struct store *st, int64_t id, enum delivery_status status,
    int64_t next_at, const char *error, int64_t now)
{
	struct finish p = {.id = id, .next_at = next_at, .now = now, .status = status,
	    .error = error};
	return store_write(st, finish_w, &p);
}

int
sqlite_delivery_notification(struct store *st, int64_t delivery, json_t **out)
{
	return notification_by(st, S_DELIV_NOTIF, delivery, out);
}

/* A delivery of S_DELIV_OF. */
static json_t *
row_delivery(sqlite3_stmt *s)
{
	int64_t target = sqlite3_column_int64(s, 9);
	return json_pack("{s:o, s:o, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "channel", text_json(s, 0), "status", text_json(s, 1),
	    "attempts", sqlite3_column_int(s, 2), "next_attempt_at", time_json(s, 3),
	    "last_error", text_json(s, 4), "created_at", time_json(s, 5),
	    "updated_at", time_json(s, 6), "sent_at", time_json(s, 7),
	    "digest_id", sqlite3_column_type(s, 8) == SQLITE_NULL ? json_null() :
	    json_integer(sqlite3_column_int64(s, 8)),
	    "target", target ? json_integer(target) : json_null());
}

int
sqlite_deliveries_of(struct store *st, int64_t id, json_t **out)
{
	return query_list(st, T_NOTIF, S_DELIV_OF, "deliveries_of", row_delivery, out, "i", id);
}

/* A user of S_DIGEST_CANDIDATES. */
static json_t *
row_candidate(sqlite3_stmt *s)
{
	return json_pack("{s:o, s:o, s:I, s:o}", "user", text_json(s, 0), "tz", text_json(s, 1),
	    "parked", (json_int_t)sqlite3_column_int64(s, 2), "last_slot", text_json(s, 3));
}

int
sqlite_digest_candidates(struct store *st, enum digest_mode period, const char *user,
    json_t **out)
{
	char why[32];
	snprintf(why, sizeof why, "%s digest", prefs_digest_name(period));
	return query_list(st, T_NOTIF, S_DIGEST_CANDIDATES, "digest_candidates", row_candidate,
	    out, "ttt", prefs_digest_name(period), why, user);
}

/* One digest to make, and what became of it. */
struct digest_put {
	const struct digest_new	*in;
	int64_t			 now;
	struct digest_made	*out;
};

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
	int64_t v[2] = {0, 0};
	if (query_on(c, T_NOTIF, S_DIGEST_TALLY, "digest_tally", row_ints, v, "ti", d->user,
	    d->cutoff) < 0)
		return -1;
	unread = v[0];
	read = v[1];
	m->items = d->include_read ? unread + read : unread;
	m->read_skipped = d->include_read ? 0 : read;
	if (exec_on(c, T_NOTIF, S_DIGEST_PARKED_DONE, "digest_parked", "tiii",
	    d->user, d->cutoff, m->id, p->now) != 0)
		return -1;
	if (m->items > 0) {
		if (exec_on(c, T_NOTIF, S_DIGEST_EMAIL, "digest_email", "ii", m->id, p->now) != 0)
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

/* A digest's email is queued: the worker has it to send. */
static void
digest_publish(void *arg)
{
	struct digest_put *p = arg;
	if (p->out->delivery_id > 0 && !p->out->existed)
		events_emit(EVENT_OUTBOX, "", NULL);
}

void
sqlite_digests_make(struct store *st, const struct digest_new *in, size_t n, int64_t now,
    struct digest_made *out, int *rcs)
{
	struct digest_put p[STORE_BATCH_MAX];
	void *args[STORE_BATCH_MAX];
	struct wreq reqs[STORE_BATCH_MAX];
	for (size_t i = 0; i < n; i++) {
		p[i] = (struct digest_put){&in[i], now, &out[i]};
		args[i] = &p[i];
	}
	store_write_many(st, digest_make_w, digest_publish, args, (int)n, rcs, reqs);
}

int
sqlite_digest_tally(struct store *st, const char *user, int64_t cutoff, int64_t *unread,
    int64_t *read)
{
	int64_t v[2] = {0, 0};
	int rc = query(st, T_NOTIF, S_DIGEST_TALLY, "digest_tally", row_ints, v, "ti", user,
	    cutoff);
	*unread = v[0];
	*read = v[1];
	return rc < 0 ? -1 : 1;
}

int
sqlite_digest_get(struct store *st, int64_t id, bool include_read, int limit, json_t **out)
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
