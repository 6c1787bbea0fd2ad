/*
 * pg_impl — what the files of the PostgreSQL store share (issue 21):
 * its connections and the helpers every query uses. The counterpart of
 * store_impl.h, which is SQLite's.
 *
 * pg_store.c	open, connections, transactions, check, counts
 * pg_people.c	users, preferences, topics, API keys
 * pg_notifications.c	notifications and unread counts
 * pg_outbox.c	deliveries, scheduled releases, digests
 * pg_mailbox.c	captured mail
 * pg_relay.c	events to and from the other nodes (LISTEN/NOTIFY)
 *
 * Each statement is sent with its parameters as text (PQexecParams), so
 * SQL and values never mix. A write runs in pg_tx(): one transaction on
 * one connection of the pool, retried whole on a serialization failure or
 * a deadlock, its events published after the commit.
 */
#ifndef NOTIFYD_PG_IMPL_H
#define NOTIFYD_PG_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "lazylib.h"

/* Connections in a node's pool: requests in flight at once. */
#define PG_CONNS 8

/* One connection; used by one thread at a time. */
struct pgc {
	PGconn		*db;
	pthread_mutex_t	 lock;
	/* The statements prepared on it, by their text's address: "pN" is prepared[N]. */
	const char	**prepared;
	size_t		 nprepared, cap;
};

struct pg_store {
	struct store	 base;
	char		*url;
	struct pgc	 c[PG_CONNS];
	unsigned	 next;
	pthread_mutex_t	 stats_lock;
	int64_t		 commits, writes;
	int64_t		 lease;		/* ms a claim of the outbox holds (store_options) */
	char		*node;		/* who claims (store_options) */
	struct relay	*relay;		/* events to and from the other nodes */
	int64_t		 mail_unpruned;	/* bytes of mail stored since retention ran */
};

/* The lease when store_options has none: longer than any attempt takes. */
#define PG_LEASE (5 * 60 * 1000)

#define PG(st)	((struct pg_store *)(st))

/* A connection of st's pool, locked and connected (NULL: none answers, logged). */
struct pgc	*pgc_get(struct store *st);
void		 pgc_put(struct pgc *c);
/*
 * Run sql on c with parameters as fmt says, one character each: 't' text
 * (NULL: SQL NULL), 'i' int64_t, 'b' bool (an int), 'h' a 32-byte hash
 * (bytea), 'B' bytes (a pointer and a size_t; bytea). The result, to PQclear(), or NULL: failed, logged as what, and
 * the failure's class noted for store_last_error().
 */
PGresult	*pg_run(struct pgc *c, const char *what, const char *sql, const char *fmt, ...);
/* The same on a connection of the pool, as a statement of its own. */
PGresult	*pg_query(struct store *st, const char *what, const char *sql, const char *fmt,
		    ...);
/*
 * pg_query() for a write that is one statement, its own transaction: tried
 * again as pg_tx() is, and counted as a commit. Its events are its own to
 * send (pg_notify() in the statement).
 */
PGresult	*pg_write(struct store *st, const char *what, const char *sql, const char *fmt,
		    ...);
/* pg_query() for a statement that changes rows: how many, or -1. */
int64_t		 pg_exec(struct store *st, const char *what, const char *sql, const char *fmt,
		    ...);
/*
 * Run fn(c, arg) in a transaction: it commits when fn returns > 0 and rolls
 * back otherwise; publish (may be NULL) runs after the commit. Retried
 * whole when PostgreSQL asks (serialization failure, deadlock), so fn must
 * be safe to run again. fn's result, or -1.
 */
int		 pg_tx(struct store *st, int (*fn)(struct pgc *c, void *arg),
		    void (*publish)(void *arg), void *arg);

/*
 * A parameter that is an array (text[], bigint[]): its literal, built
 * element by element into b between pg_array_begin and pg_array_end;
 * NULL is SQL NULL. A topic send passes its thousands in one statement.
 */
void		 pg_array_begin(struct buf *b);
void		 pg_array_add(struct buf *b, const char *v);
void		 pg_array_add_int(struct buf *b, int64_t v);
void		 pg_array_end(struct buf *b);
/* Columns of a result: an integer (NULL: 0), text or NULL, JSON text or null, a time. */
int64_t		 pg_int(const PGresult *r, int row, int col);
const char	*pg_str(const PGresult *r, int row, int col);
json_t		*pg_text_json(const PGresult *r, int row, int col);
json_t		*pg_time_json(const PGresult *r, int row, int col);
/* The rows of r as make(r, row) builds them, a new array. */
json_t		*pg_rows(const PGresult *r, json_t *(*make)(const PGresult *r, int row));

/* A statement whose rows do not matter (r is cleared): rows it changed, or -1. */
int64_t		 pg_changed(PGresult *r);

/* A notification's columns, in pg_row_notification() order. */
#define PG_NCOLS "id, user_id, type, category, priority, title, body, data, action_url, " \
	"created_at, read_at, archived_at, deliver_at, scheduled_id"
/* The same of a scheduled one, not shown yet: never read, nor archived unless skipped. */
#define PG_SCOLS "id, user_id, type, category, priority, title, body, data, action_url, " \
	"created_at, NULL, CASE in_app WHEN 'skipped' THEN created_at END, deliver_at, NULL"
/* An id, or the one its send returned when it was scheduled. */
#define PG_BY_ID "id IN ($1, (SELECT id FROM notifications WHERE scheduled_id = $1))"

/* pg_notifications.c, for the outbox's transactions. */
json_t		*pg_row_notification(const PGresult *r, int row);
/* The first row of r (cleared) as a notification into *out: 1, 0 none, -1 (r NULL). */
int		 pg_one(PGresult *r, json_t **out);
/* The same with the row made by make. */
int		 pg_first(PGresult *r, json_t *(*make)(const PGresult *r, int row), json_t **out);
/*
 * Lock user's row, making the user when new, and add delta to the unread
 * count; *count (may be NULL): the count after it.
 */
int		 pg_user_lock(struct pgc *c, const char *user, int64_t now, int64_t delta,
		    int64_t *count);
/* Add delta to user's count (the user exists); *count: after it. */
int		 pg_unread_add(struct pgc *c, const char *user, int64_t delta, int64_t *count);
int		 pg_delivery_insert(struct pgc *c, int64_t nid, unsigned ch,
		    const struct routing *rt, int64_t now);
/* pg_channels.c: queue notification nid's push and webhook deliveries (*outbox: any). */
int		 pg_channels_queue(struct pgc *c, int64_t nid, int64_t now, bool *outbox);
int		 pg_channels_queue_many(struct pgc *c, const char *ids, int64_t now, bool *outbox);

/*
 * pg_relay.c: run publish with its events captured and send them with
 * pg_notify() on c, in the transaction; *internal: what to emit on this
 * node itself after the commit, [{"k": type, "d": data}]: core's own
 * events and the mailbox's. 0 or -1.
 */
int		 pg_tx_publish(struct pgc *c, struct store *st, void (*publish)(void *arg),
		    void *arg, json_t **internal);
/* pg_relay.c: an event that is no write, to the other nodes (store_broadcast). */
int		 pg_broadcast(struct store *st, int type, const char *user, json_t *data);
/* pg_relay.c: events across nodes, from start (NULL: failed) to stop. */
struct relay	*pg_relay_start(struct store *st, const char *url, const char *node);
void		 pg_relay_stop(struct relay *r);

/* pg_people.c, for the other files' transactions. */
int		 pg_user_ensure(struct pgc *c, const char *user, int64_t now);
json_t		*pg_row_user(const PGresult *r, int row);

/* PostgreSQL's part of each function of store.h (backend.h). */
void	 pg_close(struct store *st);
int	 pg_ping(struct store *st);
int	 pg_check(struct store *st, bool full, bool repair, json_t **out);
int	 pg_explain(struct store *st, const char *which, char *out, size_t n);
int	 pg_counts(struct store *st, int64_t *users, int64_t *notifications, int64_t *mail);
void	 pg_stats(struct store *st, int64_t *commits, int64_t *writes);
int	 pg_user_exists(struct store *st, const char *user);
int	 pg_user_get(struct store *st, const char *user, json_t **out);
int	 pg_user_put(struct store *st, const struct user_update *u, int64_t now,
	    json_t **out, bool *created);
int	 pg_prefs_get(struct store *st, const char *user, struct prefs *p);
int	 pg_recipients(struct store *st, const char *const *users, size_t n, struct prefs *p,
	    recipient_fn fn, void *arg);
int	 pg_prefs_update(struct store *st, const char *user, int64_t now,
	    bool (*fn)(struct prefs *p, void *arg), void *arg, struct prefs *out);
int	 pg_topic_add(struct store *st, const char *topic, const char *user, int64_t now,
	    bool *added, int64_t *count);
int	 pg_topic_remove(struct store *st, const char *topic, const char *user,
	    int64_t *count);
int	 pg_topic_members(struct store *st, const char *topic, json_t **members);
int	 pg_push_subscribe(struct store *st, const char *user, const char *endpoint,
	    const char *p256dh, const char *auth, int64_t max, int64_t now, int64_t *id,
	    bool *created);
int	 pg_push_list(struct store *st, const char *user, json_t **out);
int	 pg_push_get(struct store *st, int64_t id, json_t **out);
int	 pg_push_remove(struct store *st, const char *user, int64_t id);
int	 pg_push_result(struct store *st, int64_t id, const char *error, int64_t now);
int	 pg_webhook_add(struct store *st, const struct webhook_new *w, int64_t now, int64_t *id);
int	 pg_webhook_list(struct store *st, json_t **out);
int	 pg_webhook_get(struct store *st, int64_t id, json_t **out);
int	 pg_webhook_remove(struct store *st, int64_t id);
int	 pg_webhook_result(struct store *st, int64_t id, int status, const char *error,
	    int64_t now, int64_t disable_after, bool *disabled);
int	 pg_key_create(struct store *st, const char *name, const unsigned char hash[32],
	    int64_t now, int64_t *id);
int	 pg_key_lookup(struct store *st, const unsigned char hash[32], int64_t *id,
	    int64_t *last_used);
int	 pg_key_touch(struct store *st, int64_t id, int64_t now);
int	 pg_key_list(struct store *st, json_t **out);
int	 pg_key_revoke(struct store *st, int64_t id, const char *name, int64_t now);
int	 pg_notifications_create(struct store *st, const struct notification_new *in,
	    size_t n, int64_t now, json_t **out, char **text, bool *created);
int	 pg_notification_get(struct store *st, int64_t id, json_t **out);
int	 pg_notification_list(struct store *st, const struct notification_query *q,
	    int64_t now, json_t **out);
int	 pg_notification_list_text(struct store *st, const struct notification_query *q,
	    int64_t now, struct buf *out);
int	 pg_notifications_mark(struct store *st, const char *user, const int64_t *ids,
	    size_t n, enum mark how, int64_t now, json_t **result, int64_t *missing);
int	 pg_notifications_read_all(struct store *st, const char *user, int64_t now,
	    json_t **result);
int	 pg_notification_delete(struct store *st, const char *user, int64_t id,
	    bool scheduled, int64_t now, struct deleted *d);
int	 pg_notifications_after(struct store *st, const char *user, int64_t after, int limit,
	    int64_t now, json_t **out);
int	 pg_last_id(struct store *st, const char *user, int64_t now, int64_t *id);
int	 pg_unread_count(struct store *st, const char *user, int64_t now, int64_t *count);
int	 pg_notification_cancel(struct store *st, const char *user, int64_t id,
	    bool *too_late, int64_t *released_as);
int	 pg_deliveries_claim(struct store *st, int64_t now, struct delivery *out, size_t max,
	    size_t *n);
int	 pg_deliveries_next(struct store *st, int64_t *at);
int	 pg_deliveries_unclaim(struct store *st);
int	 pg_delivery_finish(struct store *st, int64_t id, enum delivery_status status,
	    int64_t next_at, const char *error, int64_t now);
int	 pg_delivery_notification(struct store *st, int64_t delivery, json_t **out);
int	 pg_deliveries_of(struct store *st, int64_t id, json_t **out);
int	 pg_digest_candidates(struct store *st, enum digest_mode period, const char *user,
	    json_t **out);
void	 pg_digests_make(struct store *st, const struct digest_new *in, size_t n,
	    int64_t now, struct digest_made *out, int *rcs);
int	 pg_digest_tally(struct store *st, const char *user, int64_t cutoff, int64_t *unread,
	    int64_t *read);
int	 pg_digest_get(struct store *st, int64_t id, bool include_read, int limit,
	    json_t **out);
void	 pg_mail_insert(struct store *st, const struct mail_new *m, int n, int *rcs);
int	 pg_mail_list(struct store *st, int64_t start, int64_t limit, const char *like,
	    json_t **out);
int	 pg_mail_get(struct store *st, const char *uid, struct mail_got *m);
int	 pg_mail_next(struct store *st, int64_t after_seq, const char *like,
	    json_t **summary, int64_t *seq);
int	 pg_mail_scan(struct store *st, int64_t after_seq, int (*fn)(void *arg,
	    json_t *summary, const char *search, int64_t seq), void *arg);
int	 pg_mail_change(struct store *st, json_t *uids, int read, int64_t *changed);

#endif
