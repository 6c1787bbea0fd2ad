/*
 * store_impl — what the files of the SQLite store share, and nothing
 * outside core/store/ includes: connections, the write queue, the
 * statement tables, and the small helpers every query uses.
 *
 * engine.c	open, migrate, connections, readers, the group commit, checkpoints
 * people.c	users, preferences, topics, API keys
 * notifications.c	notifications, unread counts, deliveries, digests
 * mailbox.c	captured mail
 * channels.c	push subscriptions, webhook endpoints, their outbox rows
 */
#ifndef NOTIFYD_STORE_IMPL_H
#define NOTIFYD_STORE_IMPL_H

#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "store.h"

#define READERS 4
#define UCOLS "id, email, name, tz, locale, created_at"

/* Each file's statements, prepared on every connection at open, in its own range. */
enum { T_ENGINE, T_PEOPLE, T_NOTIF, T_MAIL, T_CHAN, T__COUNT };
struct stmt_table {
	const char *const *sql;
	int		 n;
};
extern const struct stmt_table engine_sql, people_sql, notif_sql, mail_sql, chan_sql;

/* One SQLite connection and its statements; used by one thread at a time. */
struct conn {
	sqlite3		*db;
	pthread_mutex_t	 lock;
	sqlite3_stmt	**stmt[T__COUNT];
	int64_t		 mail_unpruned;	/* the writer's: bytes of mail since retention ran */
	/*
	 * The writer's: there is, for certain, no push subscription and no
	 * webhook, so a send queues neither (channels.c). False, the safe
	 * side, until counted; a write to either table or a rollback makes it
	 * false again.
	 */
	bool		 no_targets;
	/* The writer's: this transaction changed someone's routing (people.c). */
	bool		 routing_changed;
};

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

/*
 * Recipients' routing (a user's preferences, address and zone) kept
 * between sends, so that a send reads none it has read before (people.c).
 */
struct route_entry;
struct route_cache {
	pthread_mutex_t	 lock;		/* guards all below */
	uint64_t	 gen;		/* moved on by every committed routing change */
	struct route_entry **slot;	/* ROUTE_SLOTS chains, made on first use */
	size_t		 bytes;		/* held in entries */
};

/* SQLite's store: struct store first, so that a struct store * is one of these. */
struct sqlite_store {
	struct store	 base;
	struct route_cache routes;
	struct conn	 w;			/* the writer */
	struct conn	 r[READERS];		/* readers */
	unsigned	 next_reader;
	pthread_mutex_t	 qlock;			/* guards the queue below */
	struct wreq	*queue, **qtail;
	bool		 writing;		/* a batch is running or handed on */
	int64_t		 commits, writes;
	char		*path;
	const char	*vfs;			/* every connection's: walvfs or the default */
	/*
	 * Checkpoints run in their own thread, off the commit path; it also
	 * settles read_all watermarks (settle) between them.
	 */
	sqlite3		*ckpt_db;
	pthread_t	 ckpt_thread;
	bool		 ckpt_running, ckpt_stop, settle;
	bool		 settle_by_hand;	/* store_options */
	int		 wal_pages;		/* in the WAL since the last checkpoint */
	int64_t		 restart_after;	/* ms: no restarting checkpoint before */
	pthread_mutex_t	 ckpt_lock;
	pthread_cond_t	 ckpt_cond;
};

/* Pages in the WAL that start a checkpoint (SQLite's own default is the same). */
#define CHECKPOINT_PAGES 1000
/*
 * Pages still in the WAL after one that make it start over (about 32 MiB),
 * how long that waits for readers, and how long after it gave up it is
 * tried again. A WAL that starts over is cut back to WAL_LIMIT_BYTES.
 */
#define WAL_RESTART_PAGES (8 * CHECKPOINT_PAGES)
#define WAL_RESTART_WAIT_MS 100
#define WAL_RESTART_RETRY_MS 1000
#define WAL_LIMIT_BYTES (32 << 20)

/* Log the connection's last error for what was being done; -1. */
int		 fail(struct conn *c, const char *what);
/* Statement id of file table t, reset and unbound, ready to bind. */
sqlite3_stmt	*stmt_get(struct conn *c, int t, int id);
void		 bind_text(sqlite3_stmt *s, int i, const char *v);
/* Step a statement that returns no row; 0, or -1 logged. */
int		 step_done(struct conn *c, sqlite3_stmt *s, const char *what);
/*
 * The one sequence of a read: statement id of file table t on a reader of
 * st (query) or on c (query_on), bound from the arguments as fmt says,
 * one character each ('t' text, NULL for null; 'i' int64_t; 'h' a 32-byte
 * hash), then row(s, arg) for each row until it returns false (row NULL:
 * count them). The rows seen (0: none), or -1 logged as what.
 */
typedef bool	(*row_fn)(sqlite3_stmt *s, void *arg);
int		 query(struct store *st, int t, int id, const char *what, row_fn row,
		    void *arg, const char *fmt, ...);
int		 query_on(struct conn *c, int t, int id, const char *what, row_fn row,
		    void *arg, const char *fmt, ...);
/* The same for a statement that returns no row (a write): 0, or -1 logged as what. */
int		 exec_on(struct conn *c, int t, int id, const char *what, const char *fmt, ...);
/* row_fn: every column of the first row as an integer (NULL: 0) into arg, an int64_t[]. */
bool		 row_ints(sqlite3_stmt *s, void *arg);
/* The first row as make builds it into *out: 1, 0 (none) or -1. */
int		 query_one(struct store *st, int t, int id, const char *what,
		    json_t *(*make)(sqlite3_stmt *s), json_t **out, const char *fmt, ...);
/* Every row as make builds it, a new array in *out: 1, or -1 (nothing in *out). */
int		 query_list(struct store *st, int t, int id, const char *what,
		    json_t *(*make)(sqlite3_stmt *s), json_t **out, const char *fmt, ...);
/* A column as JSON: a time (RFC 3339) or text, null when NULL. */
json_t		*time_json(sqlite3_stmt *s, int col);
json_t		*text_json(sqlite3_stmt *s, int col);
/* A reader connection, locked; give it back with reader_put(). */
struct conn	*reader_get(struct store *st);
void		 reader_put(struct conn *c);
/* A read transaction on a reader, so several statements see one state. */
int		 read_begin(struct conn *c);
void		 read_end(struct conn *c);
/*
 * Run fn on the writer inside the group commit; publish (may be NULL) after
 * the commit, in commit order. The result of fn once committed, <0 on failure.
 */
int		 store_write(struct store *st, int (*fn)(struct conn *, void *), void *arg);
int		 store_write_pub(struct store *st, int (*fn)(struct conn *, void *),
		    void (*publish)(void *), void *arg);
/* n writes queued together (reqs: room for n); each result in rcs[i]. */
void		 store_write_many(struct store *st, int (*fn)(struct conn *, void *),
		    void (*publish)(void *), void **args, int n, int *rcs, struct wreq *reqs);

/* people.c, for the other files' transactions. */
json_t		*row_user(sqlite3_stmt *s);
int		 user_exists(struct conn *c, const char *user);
int		 user_ensure(struct conn *c, const char *user, int64_t now);
int		 prefs_read(struct conn *c, const char *user, struct prefs *p, char *email,
		    size_t elen, char *tz, size_t tzlen);
/* channels.c: queue notification nid's push and webhook deliveries (*outbox: any). */
int		 channels_queue(struct conn *c, int64_t nid, int64_t now, bool *outbox);
/* notifications.c, for the check. */
int		 unread_mismatches(struct conn *c, json_t *list);
int		 repair_w(struct conn *c, void *arg);
int		 mismatch_rows(struct conn *c, sqlite3_stmt *s, const char *key, const char *what,
		    json_t *list);
int		 topic_mismatches(struct conn *c, json_t *list);
int		 topic_repair(struct conn *c, json_t *fixed);
/*
 * notifications.c, for the background thread: settle one batch of the rows
 * a read_all's watermark covers (1: more may wait, 0: none, -1); whether
 * any wait. engine.c: have the background thread settle them.
 */
int		 settle_step(struct store *st);
bool		 settle_pending(struct store *st);
void		 settle_kick(struct store *st);

/* SQLite's handle of the store st (whose backend is sqlite_backend). */
#define SQ(st)	((struct sqlite_store *)(st))

/* SQLite's part of each function of store.h (backend.h). */
void	 sqlite_close(struct store *st);
int	 sqlite_ping(struct store *st);
int	 sqlite_check(struct store *st, bool full, bool repair, json_t **out);
int	 sqlite_explain(struct store *st, const char *which, char *out, size_t n);
int	 sqlite_counts(struct store *st, int64_t *users, int64_t *notifications, int64_t *mail);
void	 sqlite_stats(struct store *st, int64_t *commits, int64_t *writes);
int	 sqlite_user_exists(struct store *st, const char *user);
int	 sqlite_user_get(struct store *st, const char *user, json_t **out);
int	 sqlite_user_put(struct store *st, const struct user_update *u, int64_t now,
	    json_t **out, bool *created);
int	 sqlite_notifications_create(struct store *st, const struct notification_new *in,
	    size_t n, int64_t now, json_t **out, char **text, bool *created);
int	 sqlite_notification_get(struct store *st, int64_t id, json_t **out);
int	 sqlite_notification_list(struct store *st, const struct notification_query *q,
	    int64_t now, json_t **out);
int	 sqlite_notification_list_text(struct store *st, const struct notification_query *q,
	    int64_t now, struct buf *out);
int	 sqlite_notifications_mark(struct store *st, const char *user, const int64_t *ids,
	    size_t n, enum mark how, int64_t now, json_t **result, int64_t *missing);
int	 sqlite_notifications_read_all(struct store *st, const char *user, int64_t now,
	    json_t **result);
int	 sqlite_notification_delete(struct store *st, const char *user, int64_t id,
	    bool scheduled, int64_t now, struct deleted *d);
int	 sqlite_notifications_after(struct store *st, const char *user, int64_t after, int limit,
	    int64_t now, json_t **out);
int	 sqlite_last_id(struct store *st, const char *user, int64_t now, int64_t *id);
int	 sqlite_unread_count(struct store *st, const char *user, int64_t now, int64_t *count);
int	 sqlite_notification_cancel(struct store *st, const char *user, int64_t id,
	    bool *too_late, int64_t *released_as);
int	 sqlite_prefs_get(struct store *st, const char *user, struct prefs *p);
void	 route_cache_init(struct route_cache *rc);
void	 route_cache_clear(struct route_cache *rc);
void	 route_cache_free(struct route_cache *rc);
int	 sqlite_recipients(struct store *st, const char *const *users, size_t n,
	    struct prefs *p, recipient_fn fn, void *arg);
int	 sqlite_prefs_update(struct store *st, const char *user, int64_t now,
	    bool (*fn)(struct prefs *p, void *arg), void *arg, struct prefs *out);
int	 sqlite_deliveries_claim(struct store *st, int64_t now, struct delivery *out, size_t max,
	    size_t *n);
int	 sqlite_deliveries_next(struct store *st, int64_t *at);
int	 sqlite_deliveries_unclaim(struct store *st);
int	 sqlite_delivery_finish(struct store *st, int64_t id, enum delivery_status status,
	    int64_t next_at, const char *error, int64_t now);
int	 sqlite_delivery_notification(struct store *st, int64_t delivery, json_t **out);
int	 sqlite_deliveries_of(struct store *st, int64_t id, json_t **out);
int	 sqlite_push_subscribe(struct store *st, const char *user, const char *endpoint,
	    const char *p256dh, const char *auth, int64_t max, int64_t now, int64_t *id,
	    bool *created);
int	 sqlite_push_list(struct store *st, const char *user, json_t **out);
int	 sqlite_push_get(struct store *st, int64_t id, json_t **out);
int	 sqlite_push_remove(struct store *st, const char *user, int64_t id);
int	 sqlite_push_result(struct store *st, int64_t id, const char *error, int64_t now);
int	 sqlite_webhook_add(struct store *st, const struct webhook_new *w, int64_t now,
	    int64_t *id);
int	 sqlite_webhook_list(struct store *st, json_t **out);
int	 sqlite_webhook_get(struct store *st, int64_t id, json_t **out);
int	 sqlite_webhook_remove(struct store *st, int64_t id);
int	 sqlite_webhook_result(struct store *st, int64_t id, int status, const char *error,
	    int64_t now, int64_t disable_after, bool *disabled);
int	 sqlite_digest_candidates(struct store *st, enum digest_mode period, const char *user,
	    json_t **out);
void	 sqlite_digests_make(struct store *st, const struct digest_new *in, size_t n,
	    int64_t now, struct digest_made *out, int *rcs);
int	 sqlite_digest_tally(struct store *st, const char *user, int64_t cutoff, int64_t *unread,
	    int64_t *read);
int	 sqlite_digest_get(struct store *st, int64_t id, bool include_read, int limit,
	    json_t **out);
int	 sqlite_topic_add(struct store *st, const char *topic, const char *user, int64_t now,
	    bool *added, int64_t *count);
int	 sqlite_topic_remove(struct store *st, const char *topic, const char *user,
	    int64_t *count);
int	 sqlite_topic_members(struct store *st, const char *topic, json_t **members);
int	 sqlite_key_create(struct store *st, const char *name, const unsigned char hash[32],
	    int64_t now, int64_t *id);
int	 sqlite_key_lookup(struct store *st, const unsigned char hash[32], int64_t *id,
	    int64_t *last_used);
int	 sqlite_key_touch(struct store *st, int64_t id, int64_t now);
int	 sqlite_key_list(struct store *st, json_t **out);
int	 sqlite_key_revoke(struct store *st, int64_t id, const char *name, int64_t now);
void	 sqlite_mail_insert(struct store *st, const struct mail_new *m, int n, int *rcs);
int	 sqlite_mail_list(struct store *st, int64_t start, int64_t limit, const char *like,
	    json_t **out);
int	 sqlite_mail_get(struct store *st, const char *uid, struct mail_got *m);
int	 sqlite_mail_next(struct store *st, int64_t after_seq, const char *like,
	    json_t **summary, int64_t *seq);
int	 sqlite_mail_scan(struct store *st, int64_t after_seq, int (*fn)(void *arg,
	    json_t *summary, const char *search, int64_t seq), void *arg);
int	 sqlite_mail_change(struct store *st, json_t *uids, int read, int64_t *changed);

#endif
