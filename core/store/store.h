/*
 * store — persistent state, and the seam between notifyd and its
 * database. This header is the interface a storage backend implements:
 * store.c dispatches each function to the open store's backend
 * (backend.h); core/store/ implements it on SQLite (engine.c, with one
 * file per concern), and a second backend (PostgreSQL) implements it
 * again. So nothing here names a database type, and nothing outside a
 * backend knows SQL.
 *
 * What every backend keeps:
 * - Functions return <0 on error (logged by the backend), 0 when the thing
 *   is not there (or, where said, not allowed), >0 on success.
 * - Every write is committed before it returns; concurrent writes may
 *   share one commit.
 * - After each commit the backend emits its events (events.h) in commit
 *   order, so the hub, the mailer and auth hear of every change.
 * - The store stores what it is told: routing (prefs_route) and caching
 *   (auth's keys) are decided by the callers.
 */
#ifndef NOTIFYD_STORE_H
#define NOTIFYD_STORE_H

/* The most writes queued together by one caller (store_mail_insert). */
#define STORE_BATCH_MAX 64

#include <jansson.h>

struct buf;
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prefs.h"

struct store;
struct notification_new;

struct store_options {
	bool		 sync_full;	/* fsync every commit (else only WAL writes) */
	int64_t		 busy_timeout;	/* ms */
	/* Tests: leave read_all watermarks to settle_step() (store_impl.h). */
	bool		 settle_by_hand;
	/* PostgreSQL: how long (ms) a node's claim of a delivery holds (0: 5 minutes). */
	int64_t		 claim_lease;
	/*
	 * PostgreSQL: this node's name, the same across its restarts (notifyd:
	 * host and data directory); a restart releases its own claims at once.
	 */
	const char	*node;
};

/* A notification to create; NULL fields are absent. */
struct notification_new {
	const char	*user;
	const char	*type;
	const char	*category;
	const char	*priority;	/* NULL: normal */
	const char	*title;
	const char	*body;
	const char	*data;		/* JSON object text */
	const char	*url;
	const char	*key;		/* idempotency key, unique per user */
	int64_t		 deliver_at;	/* ms; 0: at once */
	/*
	 * What the recipient's preferences decided (prefs_route): in-app SENT
	 * shows it (at deliver_at when later), PENDING holds it until next_at,
	 * SKIPPED stores it archived; an email row is written unless SKIPPED.
	 * Not routed: shown, and no delivery rows at all.
	 */
	bool		 routed;
	struct routing	 in_app, email;
};

/* What to list. */
struct notification_query {
	const char	*user;
	int		 limit;
	int64_t		 before;	/* 0: from the newest */
	bool		 unread_only;
	bool		 archived;	/* list archived ones instead of the inbox */
	const char	*type;
	const char	*category;
};

/* What a mark changes. */
enum mark {
	MARK_READ,
	MARK_UNREAD,
	MARK_ARCHIVED,
	MARK_UNARCHIVED,
};

/* A change to a user's profile: a field is changed when its set_ flag is true (NULL clears). */
struct user_update {
	const char	*id;
	const char	*email, *name, *tz, *locale;
	bool		 set_email, set_name, set_tz, set_locale;
};

/* Why a write failed, as a caller can tell its client. */
enum store_error {
	STORE_OK,
	STORE_FAILED,		/* anything else: a bug, a broken file */
	STORE_FULL,		/* the disk is full: try again once there is room */
	STORE_BUSY,		/* another process holds the database past busy_timeout */
	STORE_DOWN,		/* the database server does not answer (PostgreSQL) */
};

/* Why the calling thread's last write failed (STORE_OK: it did not); asking forgets it. */
enum store_error store_last_error(void);

/* Open (creating and migrating) the SQLite database at path; err says why not. */
int	 store_open(struct store **out, const char *path,
	    const struct store_options *opt, char *err, size_t errlen);
/*
 * Open the PostgreSQL store at url (a libpq URL or conninfo), migrating it
 * first (sql/pg/, once however many nodes start together); err says why
 * not, never with the password.
 */
int	 store_open_url(struct store **out, const char *url,
	    const struct store_options *opt, char *err, size_t errlen);
void	 store_close(struct store *st);
/* The schema version this binary writes (the number of migrations). */
int	 store_schema_version(void);
/* Is the database answering? */
int	 store_ping(struct store *st);
/*
 * Check the database: SQLite's integrity (quick_check, or integrity_check
 * when full), foreign keys, and every user's unread counter against the
 * rows it counts; with repair, set the counters that disagree.
 * {"ok","integrity","integrity_errors","foreign_key_errors",
 * "unread_mismatches":[{"user","counter","actual"}],"repaired"}.
 */
int	 store_check(struct store *st, bool full, bool repair, json_t **out);
/*
 * The query plan (EXPLAIN QUERY PLAN, one detail a line) of the statement
 * which names: list, list_unread, list_archived, unread_count, after,
 * owned; for tests that keep reads from turning into scans. 0: no such.
 */
int	 store_explain(struct store *st, const char *which, char *out, size_t n);
/*
 * Copy the database, as of one moment, into a new file at path (never
 * over one that exists), synced, while writes go on; its size in *bytes.
 * 0; -1 with err; -2 when the backend has its own tools (PostgreSQL).
 * path NULL: only whether it would (0 or -2).
 */
int	 store_backup(struct store *st, const char *path, int64_t *bytes, char *err,
	    size_t errlen);
/* How many users, notifications and captured messages there are. */
int	 store_counts(struct store *st, int64_t *users, int64_t *notifications,
	    int64_t *mail);
/*
 * Presence across nodes (PostgreSQL; SQLite answers 0: one node, whose
 * hub alone knows). This node's connections of user changed by delta, or,
 * with user NULL, a heartbeat that keeps this node's count alive (a node
 * silent for PRESENCE_TTL counts for nothing: it died).
 */
#define PRESENCE_TTL 30000
int	 store_presence_add(struct store *st, const char *user, int delta, int64_t now);
/* Connections on every live node: {"users":{"USER":N,...}} (only user's, when given). */
int	 store_presence(struct store *st, const char *user, int64_t now, json_t **out);
/* Tell every other node of the store an event that is no write (EVENT_DISCONNECT); 0: none. */
int	 store_broadcast(struct store *st, int type, const char *user, json_t *data);
/* Where the data is (a file, or "PostgreSQL database D") and its size in bytes. */
int	 store_size(struct store *st, char *where, size_t n, int64_t *bytes);
/* How many commits and how many writes they carried, since open. */
void	 store_stats(struct store *st, int64_t *commits, int64_t *writes);

/* Users. */
int	 store_user_exists(struct store *st, const char *user);
/* {"id","email","name","tz","locale","created_at"}. */
int	 store_user_get(struct store *st, const char *user, json_t **out);
/* Create or change a user; *created tells which. */
int	 store_user_put(struct store *st, const struct user_update *u, int64_t now,
	    json_t **out, bool *created);

/*
 * Create n notifications in one transaction, creating users as needed.
 * out[i] is the stored object (new reference), created[i] false when
 * the user already had one with that key and out[i] is that one. With
 * text given, a created one comes back as its JSON text in text[i]
 * (malloc'd; NULL when memory ran out) instead, and out[i] is NULL: a
 * transport that sends text is spared building thousands of objects.
 */
int	 store_notifications_create(struct store *st,
	    const struct notification_new *in, size_t n, int64_t now,
	    json_t **out, char **text, bool *created);
/* One notification by id (any user, scheduled or not). */
int	 store_notification_get(struct store *st, int64_t id, json_t **out);
/* A page of a user's visible notifications: {"notifications","next_before","unread_count"}. */
int	 store_notification_list(struct store *st,
	    const struct notification_query *q, int64_t now, json_t **out);
/* The same page as JSON text, appended to out (its own object). */
int	 store_notification_list_text(struct store *st, const struct notification_query *q,
	    int64_t now, struct buf *out);
/*
 * Mark ids of user, all or nothing: when one id is not the user's,
 * returns 0 with *missing set and changes nothing. *result (new
 * reference) is {"ids":[ids whose state changed],"unread_count":N}.
 */
int	 store_notifications_mark(struct store *st, const char *user,
	    const int64_t *ids, size_t n, enum mark how, int64_t now,
	    json_t **result, int64_t *missing);
/* Mark every visible notification of user read: {"up_to":ID,"marked":N,"unread_count":N}. */
int	 store_notifications_read_all(struct store *st, const char *user,
	    int64_t now, json_t **result);
/* What a delete did. */
struct deleted {
	int64_t		 id;		/* the notification's id (asked for, maybe, by its scheduled one) */
	bool		 cancelled;	/* it was scheduled: withdrawn before anyone saw it */
	char		*user;		/* whose it was (malloc'd) */
};
/*
 * Delete notification id (of user, when user is not NULL), by its id or
 * the one its send returned. One still scheduled is withdrawn when
 * scheduled is true, and not found otherwise. One transaction.
 */
int	 store_notification_delete(struct store *st, const char *user, int64_t id,
	    bool scheduled, int64_t now, struct deleted *d);
/* Up to limit visible notifications of user with ids above after, oldest first. */
int	 store_notifications_after(struct store *st, const char *user, int64_t after,
	    int limit, int64_t now, json_t **out);
/* The newest visible notification id of user (0: none). */
int	 store_last_id(struct store *st, const char *user, int64_t now, int64_t *id);
/* Unread, unarchived, visible notifications of user. */
int	 store_unread_count(struct store *st, const char *user, int64_t now,
	    int64_t *count);

/*
 * Cancel a scheduled notification of user (any when NULL) before it is
 * released. *too_late when it has been (or was never scheduled);
 * *released_as then names the id it was released with (0: the same).
 */
int	 store_notification_cancel(struct store *st, const char *user, int64_t id,
	    bool *too_late, int64_t *released_as);

/* Preferences (0: no such user, and p has every default). */
int	 store_prefs_get(struct store *st, const char *user, struct prefs *p);
/*
 * What routing needs of each of n users in turn: the preferences in *p
 * (room for one user's; no such user: every default), and the address and
 * zone ("" when none), handed to fn(arg, i, p, email, tz); a non-zero from
 * fn stops and is returned. All are read on one connection, and on SQLite
 * in one read transaction: a topic send of 10,000 took a read each,
 * 50-90 ms before its write began. SQLite's keeps what it read, until a
 * change to anyone's routing commits: a change answered before the call
 * began is always seen. 0, or -1.
 */
typedef int	(*recipient_fn)(void *arg, size_t i, const struct prefs *p, const char *email,
		    const char *tz);
int	 store_recipients(struct store *st, const char *const *users, size_t n, struct prefs *p,
	    recipient_fn fn, void *arg);
/*
 * Change a user's preferences (creating the user): fn edits *p in the
 * write transaction; when it returns false nothing changes and 0 is
 * returned. *out (may be NULL) gets the result.
 */
int	 store_prefs_update(struct store *st, const char *user, int64_t now,
	    bool (*fn)(struct prefs *p, void *arg), void *arg, struct prefs *out);

/* One delivery the worker has claimed. */
struct delivery {
	int64_t		 id;
	int64_t		 notification_id;	/* 0: a digest's email */
	int64_t		 digest_id;		/* that digest */
	unsigned	 channel;	/* CHANNEL_EMAIL, CHANNEL_PUSH or CHANNEL_WEBHOOK */
	int64_t		 target;	/* push: the subscription; webhook: the endpoint */
	int		 attempts;	/* this one included */
};

/*
 * Claim up to max deliveries due at now (pending or deferred), counting an
 * attempt. First, in the same commit, scheduled notifications that are due
 * are released: each is written as a notification with a new id (its
 * object's scheduled_id is the id its send returned), with its email
 * delivery, and announced.
 */
int	 store_deliveries_claim(struct store *st, int64_t now, struct delivery *out,
	    size_t max, size_t *n);
/* When the next unclaimed delivery or scheduled notification falls due (0: none). */
int	 store_deliveries_next(struct store *st, int64_t *at);
/* Release every claim: at start, nothing can be in flight. */
int	 store_deliveries_unclaim(struct store *st);
/* Record what became of a claimed delivery; next_at for PENDING (a retry). */
int	 store_delivery_finish(struct store *st, int64_t id, enum delivery_status status,
	    int64_t next_at, const char *error, int64_t now);
/* The notification a delivery belongs to. */
int	 store_delivery_notification(struct store *st, int64_t delivery, json_t **out);
/* The deliveries of notification id: [{"channel","status","attempts",...}]. */
int	 store_deliveries_of(struct store *st, int64_t id, json_t **out);
/*
 * Web Push subscriptions: a browser's PushSubscription for user (made if
 * new), one per endpoint; subscribing an endpoint again updates its keys
 * and owner. *created tells which. 0, storing nothing, when user holds
 * max others already.
 */
int	 store_push_subscribe(struct store *st, const char *user, const char *endpoint,
	    const char *p256dh, const char *auth, int64_t max, int64_t now, int64_t *id,
	    bool *created);
/* [{"id","user","endpoint","created_at","last_sent_at","last_error"}] of user (NULL: all). */
int	 store_push_list(struct store *st, const char *user, json_t **out);
/* One, with its keys: {"id","user","endpoint","p256dh","auth"}; 0 when gone. */
int	 store_push_get(struct store *st, int64_t id, json_t **out);
/* Remove one (of user, unless NULL): 1, 0 when there was none. */
int	 store_push_remove(struct store *st, const char *user, int64_t id);
/* Record an attempt at subscription id: sent (error NULL), or why not. */
int	 store_push_result(struct store *st, int64_t id, const char *error, int64_t now);

/* A webhook endpoint to add; types and users are JSON arrays as text (NULL: all). */
struct webhook_new {
	const char	*url, *secret, *format, *types, *users;
};
int	 store_webhook_add(struct store *st, const struct webhook_new *w, int64_t now,
	    int64_t *id);
/*
 * [{"id","url","format","types","users","created_at","disabled_at",
 * "failing_since","failures","last_status","last_error","last_attempt_at"}],
 * and one endpoint with its "secret" too (store_webhook_get): 0 when none.
 */
int	 store_webhook_list(struct store *st, json_t **out);
int	 store_webhook_get(struct store *st, int64_t id, json_t **out);
/* Remove one: 1, 0 when there was none. */
int	 store_webhook_remove(struct store *st, int64_t id);
/*
 * Record an attempt: status is the HTTP status (0: none), error NULL when
 * it succeeded. A failure that ends a run of failures older than
 * disable_after (ms) disables the endpoint: *disabled says so.
 */
int	 store_webhook_result(struct store *st, int64_t id, int status, const char *error,
	    int64_t now, int64_t disable_after, bool *disabled);

/*
 * Digests. The users a run of period looks at (only user, when given):
 * those in that mode, and those switched off since with email parked for
 * it, as [{"user","tz","parked","last_slot"}]: what each has parked, and
 * the slot of their last digest of the period (or null).
 */
int	 store_digest_candidates(struct store *st, enum digest_mode period, const char *user,
	    json_t **out);
/* One digest to make. */
struct digest_new {
	const char	*user;
	enum digest_mode period;
	const char	*slot;		/* the local day or ISO week it is made in */
	int64_t		 window_start, window_end;	/* ms: the slot's bounds */
	int64_t		 cutoff;	/* covers email parked before this (ms) */
	bool		 include_read;	/* list what was read in the app too */
};
/* What became of it. */
struct digest_made {
	bool		 existed;	/* the slot had one already: nothing changed */
	int64_t		 id, delivery_id;	/* delivery_id 0: nothing left to email */
	int64_t		 items, read_skipped;
};
/*
 * Make n digests (at most STORE_BATCH_MAX), each in its own part of one
 * commit: the digests row, the parked email it covers made 'digested', its
 * own email queued. rcs[i]: 1 made (or existed), <0 failed.
 */
void	 store_digests_make(struct store *st, const struct digest_new *in, size_t n,
	    int64_t now, struct digest_made *out, int *rcs);
/* What user has parked before cutoff: unread, and read in the app already (a dry run's). */
int	 store_digest_tally(struct store *st, const char *user, int64_t cutoff, int64_t *unread,
	    int64_t *read);
/*
 * A digest with the notifications it lists, newest first, at most limit:
 * {"id","user","period","slot","window_start","window_end","items",
 * "read_skipped","created_at","delivery_id","notifications":[...]}.
 */
int	 store_digest_get(struct store *st, int64_t id, bool include_read, int limit,
	    json_t **out);

/* Add or remove one member; *count: the topic's members after it. */
int	 store_topic_add(struct store *st, const char *topic, const char *user,
	    int64_t now, bool *added, int64_t *count);
int	 store_topic_remove(struct store *st, const char *topic, const char *user,
	    int64_t *count);
/* The members' user ids (new reference); 0 when the topic has none. */
int	 store_topic_members(struct store *st, const char *topic, json_t **members);

/* API keys, by the SHA-256 of the key. */
/* 0 when a live key already has that name. */
int	 store_key_create(struct store *st, const char *name,
	    const unsigned char hash[32], int64_t now, int64_t *id);
/* The id of the live key with this hash and when its use was last noted (ms, 0: never). */
int	 store_key_lookup(struct store *st, const unsigned char hash[32], int64_t *id,
	    int64_t *last_used);
/* Note a use of key id at now. */
int	 store_key_touch(struct store *st, int64_t id, int64_t now);
/* {"keys":[{"id","name","created_at","last_used_at","revoked_at"}]}. */
int	 store_key_list(struct store *st, json_t **out);
/* Revoke the live key with this id (when name is NULL) or name; emits EVENT_KEY_REVOKED. */
int	 store_key_revoke(struct store *st, int64_t id, const char *name, int64_t now);

/* A message the SMTP sink received. */
struct mail_new {
	const char	*uid;		/* the ID clients see */
	int64_t		 received_at;	/* ms */
	const char	*from;		/* envelope sender; "" for <> */
	const char	*rcpt_json;	/* envelope recipients, a JSON array */
	const char	*raw;		/* the message as received */
	size_t		 len;
	const char	*summary_json;	/* parsed summary (Mailpit's MessageSummary fields), as stored */
	json_t		*summary;	/* the same, as an object: what the event carries */
	const char	*search;	/* lower-cased text searched by queries */
	int64_t		 keep;		/* retention: keep the newest this many (0: all) */
	int64_t		 keep_bytes;	/* retention: keep the newest up to this many bytes (0: all) */
	int64_t		 older_than;	/* retention: drop those received before (ms; 0: none) */
};

/* One stored message. */
struct mail_got {
	json_t		*summary;	/* with ID, Read, Created, Size */
	char		*raw;		/* malloc'd, NUL-terminated (may hold NULs) */
	size_t		 len;
	int64_t		 seq;		/* arrival order */
};

/*
 * Store n messages (at most STORE_BATCH_MAX) in one transaction where they
 * can share one, pruning by retention; rcs[i] is m[i]'s result (1: stored).
 */
void	 store_mail_insert(struct store *st, const struct mail_new *m, int n, int *rcs);
/* {"total","unread","start","messages":[summary...]} newest first; like: a LIKE pattern on search. */
int	 store_mail_list(struct store *st, int64_t start, int64_t limit, const char *like,
	    json_t **out);
/* A message by its ID, or "latest". */
int	 store_mail_get(struct store *st, const char *uid, struct mail_got *m);
/* The first message after seq in arrival order matching like (NULL: any). */
int	 store_mail_next(struct store *st, int64_t after_seq, const char *like,
	    json_t **summary, int64_t *seq);
/*
 * Call fn for each message newer than after_seq, newest first, with its
 * summary (borrowed), search text and sequence; fn returns non-zero to stop.
 */
int	 store_mail_scan(struct store *st, int64_t after_seq,
	    int (*fn)(void *arg, json_t *summary, const char *search, int64_t seq), void *arg);
/*
 * A setting every node of the store shares (the token secret): its value
 * into out (at most n - 1 bytes), made from fresh when it has none yet,
 * whichever node comes first. 1, or 0 when the store is one node's own
 * (SQLite: the data directory keeps it), or -1.
 */
int	 store_setting(struct store *st, const char *name, const char *fresh, char *out,
	    size_t n);
/* Set read (0/1) or delete (read = -1) the messages uids (a JSON array), or all when NULL. */
int	 store_mail_change(struct store *st, json_t *uids, int read, int64_t *changed);

#endif
