/* events — what core tells the rest; see events.h. */
#include "events.h"

#define MAX_SUBSCRIBERS 8

static struct {
	event_fn	 fn;
	void		*arg;
} subs[MAX_SUBSCRIBERS];
static int nsubs;

int
events_subscribe(event_fn fn, void *arg)
{
	if (nsubs == MAX_SUBSCRIBERS)
		return -1;
	subs[nsubs].fn = fn;
	subs[nsubs].arg = arg;
	/* Published whole: an emit running meanwhile sees the entry or not at all. */
	__atomic_store_n(&nsubs, nsubs + 1, __ATOMIC_RELEASE);
	return 0;
}

static event_interest_fn interest;
static void *interest_arg;

void
events_set_interest(event_interest_fn fn, void *arg)
{
	if (fn != NULL)
		interest_arg = arg;
	__atomic_store_n(&interest, fn, __ATOMIC_RELEASE);
}

bool
events_interested(const char *user)
{
	event_interest_fn fn = __atomic_load_n(&interest, __ATOMIC_ACQUIRE);
	return fn != NULL && fn(user, interest_arg);
}

void
events_unsubscribe(event_fn fn, void *arg)
{
	for (int i = 0; i < nsubs; i++)
		if (subs[i].fn == fn && subs[i].arg == arg) {
			subs[i] = subs[--nsubs];
			return;
		}
}

/* This thread's capture (events_capture), or none. */
static _Thread_local event_fn capture;
static _Thread_local void *capture_arg;

void
events_capture(event_fn fn, void *arg)
{
	capture = fn;
	capture_arg = arg;
}

static _Thread_local bool elsewhere;

void
events_from_elsewhere(bool e)
{
	elsewhere = e;
}

/* Call every subscriber with ev, or only this thread's capture. */
static void
emit(const struct event *ev)
{
	if (capture != NULL) {
		capture(ev, capture_arg);
		return;
	}
	int n = __atomic_load_n(&nsubs, __ATOMIC_ACQUIRE);
	for (int i = 0; i < n; i++)
		subs[i].fn(ev, subs[i].arg);
}

void
events_emit(enum event_type type, const char *user, json_t *data)
{
	emit(&(struct event){.type = type, .user = user, .data = data, .unread_count = -1,
	    .elsewhere = elsewhere});
}

void
events_emit_notification(const char *user, int64_t id, json_t *data, const char *text,
    size_t text_len, int64_t unread_count)
{
	emit(&(struct event){EVENT_NOTIFICATION, user, data, unread_count, elsewhere, id,
	    data ? NULL : text, data ? 0 : text_len});
}

const char *
events_name(enum event_type type)
{
	static const char *const names[EVENT__COUNT] = {
		[EVENT_NOTIFICATION] = "notification",
		[EVENT_READ] = "read",
		[EVENT_UNREAD] = "unread",
		[EVENT_READ_ALL] = "read_all",
		[EVENT_ARCHIVED] = "archived",
		[EVENT_UNARCHIVED] = "unarchived",
		[EVENT_DELETED] = "deleted",
		[EVENT_MAIL] = "mail",
		[EVENT_MAIL_DELETED] = "mail_deleted",
		[EVENT_MAIL_TRUNCATED] = "mail_truncated",
		[EVENT_MAIL_PRUNED] = "mail_pruned",
		[EVENT_KEY_REVOKED] = "key_revoked",
		[EVENT_OUTBOX] = "outbox",
		[EVENT_DISCONNECT] = "disconnect",
		[EVENT_RESYNC] = "resync",
	};
	return type < EVENT__COUNT ? names[type] : "?";
}

void
events_reset(void)
{
	nsubs = 0;
}
