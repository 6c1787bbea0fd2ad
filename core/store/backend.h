/*
 * backend — what a store backend provides: each function of store.h for one
 * kind of database. core/store/store.c dispatches to it; engine.c and its
 * files are SQLite's (sqlite_backend), and PostgreSQL's is to come (issue
 * 21). A backend's handle begins with struct store, whose be names it.
 */
#ifndef NOTIFYD_STORE_BACKEND_H
#define NOTIFYD_STORE_BACKEND_H

#include "store.h"

struct store {
	const struct store_backend	*be;
};

struct store_backend {
	const char	*name;
	void	(*close)(struct store *st);
	int	(*ping)(struct store *st);
	int	(*check)(struct store *st, bool full, bool repair, json_t **out);
	int	(*explain)(struct store *st, const char *which, char *out, size_t n);
	int	(*backup)(struct store *st, const char *path, int64_t *bytes, char *err,
		    size_t errlen);
	int	(*counts)(struct store *st, int64_t *users, int64_t *notifications,
		    int64_t *mail);
	void	(*stats)(struct store *st, int64_t *commits, int64_t *writes);
	int	(*user_exists)(struct store *st, const char *user);
	int	(*user_get)(struct store *st, const char *user, json_t **out);
	int	(*user_put)(struct store *st, const struct user_update *u, int64_t now,
		    json_t **out, bool *created);
	int	(*notifications_create)(struct store *st, const struct notification_new *in,
		    size_t n, int64_t now, json_t **out, char **text, bool *created);
	int	(*notification_get)(struct store *st, int64_t id, json_t **out);
	int	(*notification_list)(struct store *st, const struct notification_query *q,
		    int64_t now, json_t **out);
	int	(*notification_list_text)(struct store *st, const struct notification_query *q,
		    int64_t now, struct buf *out);
	int	(*notifications_mark)(struct store *st, const char *user, const int64_t *ids,
		    size_t n, enum mark how, int64_t now, json_t **result, int64_t *missing);
	int	(*notifications_read_all)(struct store *st, const char *user, int64_t now,
		    json_t **result);
	int	(*notification_delete)(struct store *st, const char *user, int64_t id,
		    bool scheduled, int64_t now, struct deleted *d);
	int	(*notifications_after)(struct store *st, const char *user, int64_t after,
		    int limit, int64_t now, json_t **out);
	int	(*last_id)(struct store *st, const char *user, int64_t now, int64_t *id);
	int	(*unread_count)(struct store *st, const char *user, int64_t now,
		    int64_t *count);
	int	(*notification_cancel)(struct store *st, const char *user, int64_t id,
		    bool *too_late, int64_t *released_as);
	int	(*prefs_get)(struct store *st, const char *user, struct prefs *p);
	int	(*recipients)(struct store *st, const char *const *users, size_t n,
		    struct prefs *p, recipient_fn fn, void *arg);
	int	(*prefs_update)(struct store *st, const char *user, int64_t now,
		    bool (*fn)(struct prefs *p, void *arg), void *arg, struct prefs *out);
	int	(*deliveries_claim)(struct store *st, int64_t now, struct delivery *out,
		    size_t max, size_t *n);
	int	(*deliveries_next)(struct store *st, int64_t *at);
	int	(*deliveries_unclaim)(struct store *st);
	int	(*delivery_finish)(struct store *st, int64_t id, enum delivery_status status,
		    int64_t next_at, const char *error, int64_t now);
	int	(*delivery_notification)(struct store *st, int64_t delivery, json_t **out);
	int	(*deliveries_of)(struct store *st, int64_t id, json_t **out);
	int	(*push_subscribe)(struct store *st, const char *user, const char *endpoint,
		    const char *p256dh, const char *auth, int64_t max, int64_t now, int64_t *id,
		    bool *created);
	int	(*push_list)(struct store *st, const char *user, json_t **out);
	int	(*push_get)(struct store *st, int64_t id, json_t **out);
	int	(*push_remove)(struct store *st, const char *user, int64_t id);
	int	(*push_result)(struct store *st, int64_t id, const char *error, int64_t now);
	int	(*webhook_add)(struct store *st, const struct webhook_new *w, int64_t now,
		    int64_t *id);
	int	(*webhook_list)(struct store *st, json_t **out);
	int	(*webhook_get)(struct store *st, int64_t id, json_t **out);
	int	(*webhook_remove)(struct store *st, int64_t id);
	int	(*webhook_result)(struct store *st, int64_t id, int status, const char *error,
		    int64_t now, int64_t disable_after, bool *disabled);
	int	(*digest_candidates)(struct store *st, enum digest_mode period, const char *user,
		    json_t **out);
	void	(*digests_make)(struct store *st, const struct digest_new *in, size_t n,
		    int64_t now, struct digest_made *out, int *rcs);
	int	(*digest_tally)(struct store *st, const char *user, int64_t cutoff,
		    int64_t *unread, int64_t *read);
	int	(*digest_get)(struct store *st, int64_t id, bool include_read, int limit,
		    json_t **out);
	int	(*topic_add)(struct store *st, const char *topic, const char *user, int64_t now,
		    bool *added, int64_t *count);
	int	(*topic_remove)(struct store *st, const char *topic, const char *user,
		    int64_t *count);
	int	(*topic_members)(struct store *st, const char *topic, json_t **members);
	int	(*key_create)(struct store *st, const char *name, const unsigned char hash[32],
		    int64_t now, int64_t *id);
	int	(*key_lookup)(struct store *st, const unsigned char hash[32], int64_t *id,
		    int64_t *last_used);
	int	(*key_touch)(struct store *st, int64_t id, int64_t now);
	int	(*key_list)(struct store *st, json_t **out);
	int	(*key_revoke)(struct store *st, int64_t id, const char *name, int64_t now);
	void	(*mail_insert)(struct store *st, const struct mail_new *m, int n, int *rcs);
	int	(*mail_list)(struct store *st, int64_t start, int64_t limit, const char *like,
		    json_t **out);
	int	(*mail_get)(struct store *st, const char *uid, struct mail_got *m);
	int	(*mail_next)(struct store *st, int64_t after_seq, const char *like,
		    json_t **summary, int64_t *seq);
	int	(*mail_scan)(struct store *st, int64_t after_seq, int (*fn)(void *arg,
		    json_t *summary, const char *search, int64_t seq), void *arg);
	int	(*mail_change)(struct store *st, json_t *uids, int read, int64_t *changed);
	int	(*setting)(struct store *st, const char *name, const char *fresh, char *out,
		    size_t n);
	int	(*size)(struct store *st, char *where, size_t n, int64_t *bytes);
	int	(*presence_add)(struct store *st, const char *user, int delta, int64_t now);
	int	(*presence)(struct store *st, const char *user, int64_t now, json_t **out);
	int	(*broadcast)(struct store *st, int type, const char *user, json_t *data);
};

/*
 * A notification just stored from in under id at now (hidden: stored
 * archived), as either backend's rows read back: an object, or its JSON
 * text appended to b, byte for byte what json_dumps() makes of the object.
 */
json_t	*notification_new_object(const struct notification_new *in, int64_t id, int64_t now,
	    bool hidden);
void	 notification_new_text(struct buf *b, const struct notification_new *in, int64_t id,
	    int64_t now, bool hidden);
/*
 * Publish what a create stored: for each created one (created[i], under
 * ids[i]) that is not hidden and due, an EVENT_NOTIFICATION with counts[i];
 * into out[i] its object, or, when text is given, its JSON text into
 * text[i] (malloc'd; NULL when memory ran out) and no object.
 */
void	 notifications_publish(const struct notification_new *in, size_t n, int64_t now,
	    const int64_t *ids, const bool *created, const bool *hidden, const int64_t *counts,
	    json_t **out, char **text);

/* Why the calling thread's last write failed (store_last_error); each backend sets it. */
extern _Thread_local enum store_error store_error_last;

/* SQLite, in the data directory (engine.c). */
extern const struct store_backend sqlite_backend;
int	sqlite_open(struct store **out, const char *path, const struct store_options *opt,
	    char *err, size_t errlen);
/* PostgreSQL, at a libpq URL (pg_store.c). */
extern const struct store_backend pg_backend;
int	pg_open(struct store **out, const char *url, const struct store_options *opt,
	    char *err, size_t errlen);

#endif
