/*
 * store — persistent state. The only module that knows SQL; another
 * backend would be another file behind this same header.
 * Functions return <0 on error (logged here), 0 when the thing is not
 * there, >0 on success.
 */
#ifndef NOTIFYD_STORE_H
#define NOTIFYD_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

struct store_options {
	bool		 sync_full;	/* fsync every commit (else only WAL writes) */
	int64_t		 busy_timeout;	/* ms */
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

/* Open (creating and migrating) the database at path; err says why not. */
int	 store_open(struct store **out, const char *path,
	    const struct store_options *opt, char *err, size_t errlen);
void	 store_close(struct store *st);
/* The schema version this binary writes (the number of migrations). */
int	 store_schema_version(void);

/* Is the database answering? */
int	 store_ping(struct store *st);

/* Does the user exist? */
int	 store_user_exists(struct store *st, const char *user);

/*
 * Create n notifications in one transaction, creating users as needed.
 * out[i] is the stored object (new reference), created[i] false when
 * the user already had one with that key and out[i] is that one.
 */
int	 store_notifications_create(struct store *st,
	    const struct notification_new *in, size_t n, int64_t now,
	    json_t **out, bool *created);
/* One notification by id (any user, scheduled or not). */
int	 store_notification_get(struct store *st, int64_t id, json_t **out);
/* A page of a user's visible notifications: {"notifications","next_before","unread_count"}. */
int	 store_notification_list(struct store *st,
	    const struct notification_query *q, int64_t now, json_t **out);
/*
 * Mark ids of user read (read=true) or unread, all or nothing: when one id
 * is not the user's, returns 0 with *missing set and changes nothing.
 * *changed gets the ids whose state changed (new reference).
 */
int	 store_notifications_mark(struct store *st, const char *user,
	    const int64_t *ids, size_t n, bool read, int64_t now,
	    json_t **changed, int64_t *missing);
/* Mark every visible notification of user read; *up_to is the newest id covered. */
int	 store_notifications_read_all(struct store *st, const char *user,
	    int64_t now, int64_t *up_to, int64_t *marked);
/* Unread, unarchived, visible notifications of user. */
int	 store_unread_count(struct store *st, const char *user, int64_t now,
	    int64_t *count);

#endif
