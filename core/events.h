/*
 * events — what changed, told by the store after each commit: a
 * notification was created, read, archived, a message captured, a key
 * revoked, work queued for the worker. Operations change the store and
 * never call a service; the services listen: the hub (frames to clients
 * and watchers), the mailer (EVENT_OUTBOX wakes a worker), auth (a revoke
 * empties its key cache), metrics, and mail wait. Who listens is theirs
 * to know, not the emitter's.
 */
#ifndef NOTIFYD_EVENTS_H
#define NOTIFYD_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum event_type {
	EVENT_NOTIFICATION,	/* data: the notification object */
	EVENT_READ,		/* data: {"ids":[...],"unread_count":N} */
	EVENT_UNREAD,		/* data: {"ids":[...],"unread_count":N} */
	EVENT_READ_ALL,		/* data: {"up_to":ID,"unread_count":N} */
	EVENT_ARCHIVED,		/* data: {"ids":[...],"unread_count":N} */
	EVENT_UNARCHIVED,	/* data: {"ids":[...],"unread_count":N} */
	EVENT_DELETED,		/* data: {"id":ID,"unread_count":N} */
	EVENT_MAIL,		/* user "": data: the mail summary */
	EVENT_MAIL_DELETED,	/* user "": data: {"IDs":[...]} */
	EVENT_MAIL_TRUNCATED,	/* user "": data: {} (every message deleted) */
	EVENT_MAIL_PRUNED,	/* user "": data: {"deleted":N} (retention removed the oldest) */
	/* Not for clients: between core's parts. */
	EVENT_KEY_REVOKED,	/* user "": data: NULL (an API key was revoked) */
	EVENT_OUTBOX,		/* user "": data: NULL (deliveries or scheduled ones to act on) */
	EVENT_DISCONNECT,	/* data: {"reason"} (close the user's connections; another node's) */
	EVENT_RESYNC,		/* user "": data: NULL (events may have been missed: catch up) */
	EVENT__COUNT
};

struct event {
	enum event_type	 type;
	const char	*user;	/* whose inbox */
	json_t		*data;	/* borrowed: take a reference to keep it */
	int64_t		 unread_count;	/* EVENT_NOTIFICATION: the user's after it; -1: not known */
	bool		 elsewhere;	/* a write of another node, told here (events_from_elsewhere) */
	/*
	 * EVENT_NOTIFICATION: its id, and when data is NULL the object as
	 * JSON text (text_len bytes, borrowed): a send to a topic of
	 * thousands builds no object per recipient.
	 */
	int64_t		 id;
	const char	*text;
	size_t		 text_len;
};

typedef void (*event_fn)(const struct event *ev, void *arg);

/*
 * Call fn for every event from now on. Subscribers are added from one
 * thread at start-up (safely while others emit); they are removed only
 * once nothing emits any more.
 */
int	 events_subscribe(event_fn fn, void *arg);
/* Tell every subscriber, in this thread, after the change is committed. */
void	 events_emit(enum event_type type, const char *user, json_t *data);
/*
 * The same for a new notification, as an object (data) or as its JSON
 * text (data NULL), with the user's unread count after it (-1: not known).
 */
void	 events_emit_notification(const char *user, int64_t id, json_t *data, const char *text,
	    size_t text_len, int64_t unread_count);
/* The event's name as the wire formats spell it, e.g. "read_all". */
const char *events_name(enum event_type type);
/* Is it for clients (an inbox or the mailbox), or between core's parts? */
#define EVENT_IS_INTERNAL(t)	((t) >= EVENT_KEY_REVOKED)
/* Is it about the captured mailbox? */
#define EVENT_IS_MAIL(t)	((t) >= EVENT_MAIL && (t) <= EVENT_MAIL_PRUNED)
/*
 * Whether someone wants user's unread count with each new notification
 * (the hub: a client of the user is connected). The store asks before it
 * spends a read on the count inside its write; one listener may answer,
 * set at start and cleared (fn NULL) at shutdown.
 */
typedef bool (*event_interest_fn)(const char *user, void *arg);
void	 events_set_interest(event_interest_fn fn, void *arg);
bool	 events_interested(const char *user);
/*
 * Until called again with NULL, this thread's events go to fn alone, not
 * to the subscribers: a store that tells the world through its database
 * (PostgreSQL's NOTIFY, in the same transaction) takes them this way.
 */
void	 events_capture(event_fn fn, void *arg);
/*
 * Until called again with false, this thread's events are another node's
 * writes, told here (PostgreSQL's listener): what counts this node's own
 * work (metrics) skips them.
 */
void	 events_from_elsewhere(bool elsewhere);
/* Stop calling fn with arg (at shutdown, once nothing emits). */
void	 events_unsubscribe(event_fn fn, void *arg);
/* Drop every subscriber (for tests and shutdown). */
void	 events_reset(void);

#endif
