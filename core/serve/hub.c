/* hub — live clients and what they are sent; see hub.h. */
#define _GNU_SOURCE
#include "hub.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "ops.h"
#include "store.h"
#include "util.h"

#define MIN_BUCKETS 256	/* the user table's first size; it doubles as users come */
#define REPLAY_PAGE 200
#define MAX_CLIENT_FRAME (64 * 1024)
#define SEND_BATCH 64		/* frames a sender writes to a client at once */

/* One encoded frame, shared by every queue it is in. */
struct frame {
	int	 refs;		/* under hub lock */
	size_t	 len;
	char	 data[];
};

struct qnode {
	struct frame	*f;
	int64_t		 nid;		/* a notification's id, to skip what a replay sent */
	struct qnode	*next;
};

enum cstate { C_IDLE, C_QUEUED, C_SENDING, C_PAUSED };

/*
 * A user with clients (or a place reserved). The name lives in the entry
 * and its hash beside it, so that a look-up reads one entry per link of
 * its chain, and compares names only when the hashes agree.
 */
struct user_ent {
	uint64_t	 hash;
	int		 conns, reserved;
	struct hub_conn	*list;
	struct user_ent	*next;
	char		 user[];
};

struct hub_conn {
	struct hub		*h;
	char			*user;		/* NULL: a watcher of everyone */
	bool			 watcher;
	bool			 mailpit;	/* a Mailpit /api/events client */
	struct hub_transport	 t;
	void			*ctx;
	int64_t			 expires;	/* ms; 0: never */
	size_t			 eslot;		/* 1 + its place in the expiry heap; 0: none */
	struct qnode		*qhead, **qtail;
	int			 qlen;
	enum cstate		 state;
	int64_t			 replay_max;	/* notifications up to here were sent or known */
	int64_t			 told;		/* the newest notification sent or queued */
	bool			 count_dirty;	/* send a fresh unread count */
	int64_t			 count;		/* it, when an event told it; -1: read it */
	/* While the replay runs: the newest notification told, and its count. */
	int64_t			 paused_nid, paused_count;
	bool			 dead;		/* send nothing more */
	int			 close_code;	/* > 0: close with it, once */
	const char		*close_reason;
	pthread_cond_t		 idle;		/* signalled when a sender lets go */
	struct hub_conn		*unext;		/* in the user's (or watchers') list */
	struct hub_conn		*rnext;		/* in the run queue */
};

struct hub {
	struct app		*app;
	struct hub_options	 o;
	pthread_mutex_t		 lock;
	pthread_cond_t		 work;		/* the run queue has work */
	pthread_cond_t		 tick;		/* wakes the timer early (stop) */
	struct user_ent		**users;	/* nbuckets chains */
	size_t			 nbuckets, nusers;
	/* Connections that expire, soonest first: the timer looks at the top only. */
	struct hub_conn		**expiry;
	size_t			 nexpiry, expiry_cap;
	struct hub_conn		*watchers;
	struct hub_conn		*run_head, **run_tail;
	int			 open, reserved;
	int			 mailbox;	/* open /api/events clients */
	bool			 stop;
	bool			 stopped;	/* hub_stop ran: ignore events (atomic) */
	pthread_t		*senders;
	int			 nsenders;
	pthread_t		 timer;
	bool			 timer_running;
};

/*
 * Twice the buckets, when there are more users than buckets: a topic send
 * looks up each of its thousands of recipients, twice. Under lock; on no
 * memory the chains only grow longer.
 */
static void
users_grow(struct hub *h)
{
	size_t n = h->nbuckets * 2;
	struct user_ent **t = calloc(n, sizeof *t);
	if (t == NULL)
		return;
	for (size_t b = 0; b < h->nbuckets; b++)
		for (struct user_ent *e = h->users[b], *next; e; e = next) {
			next = e->next;
			e->next = t[e->hash & (n - 1)];
			t[e->hash & (n - 1)] = e;
		}
	free(h->users);
	h->users = t;
	h->nbuckets = n;
}

/* The entry of user; made when create is true. Under lock. */
static struct user_ent *
user_get(struct hub *h, const char *user, bool create)
{
	uint64_t hv = hash_str(user);
	struct user_ent *e;
	for (e = h->users[hv & (h->nbuckets - 1)]; e; e = e->next)
		if (e->hash == hv && strcmp(e->user, user) == 0)
			return e;
	size_t len = strlen(user);
	if (!create || (e = calloc(1, sizeof *e + len + 1)) == NULL)
		return NULL;
	memcpy(e->user, user, len + 1);
	e->hash = hv;
	if (++h->nusers > h->nbuckets)
		users_grow(h);
	struct user_ent **b = &h->users[hv & (h->nbuckets - 1)];
	e->next = *b;
	*b = e;
	return e;
}

/* Forget an entry with nothing left in it. Under lock. */
static void
user_gc(struct hub *h, struct user_ent *e)
{
	if (e->conns > 0 || e->reserved > 0)
		return;
	for (struct user_ent **p = &h->users[e->hash & (h->nbuckets - 1)]; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	h->nusers--;
	free(e);
}

/*
 * The expiry heap: a binary min-heap on expires, each connection knowing
 * its place (eslot), so that one leaving is taken out in O(log n). Under lock.
 */
static void
expiry_set(struct hub *h, size_t i, struct hub_conn *c)
{
	h->expiry[i] = c;
	c->eslot = i + 1;
}

static void
expiry_up(struct hub *h, size_t i)
{
	struct hub_conn *c = h->expiry[i];
	while (i > 0 && h->expiry[(i - 1) / 2]->expires > c->expires) {
		expiry_set(h, i, h->expiry[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	expiry_set(h, i, c);
}

static void
expiry_down(struct hub *h, size_t i)
{
	struct hub_conn *c = h->expiry[i];
	for (;;) {
		size_t k = 2 * i + 1;
		if (k >= h->nexpiry)
			break;
		if (k + 1 < h->nexpiry && h->expiry[k + 1]->expires < h->expiry[k]->expires)
			k++;
		if (h->expiry[k]->expires >= c->expires)
			break;
		expiry_set(h, i, h->expiry[k]);
		i = k;
	}
	expiry_set(h, i, c);
}

static int
expiry_add(struct hub *h, struct hub_conn *c)
{
	if (h->nexpiry == h->expiry_cap) {
		size_t cap = h->expiry_cap ? h->expiry_cap * 2 : 64;
		struct hub_conn **t = realloc(h->expiry, cap * sizeof *t);
		if (t == NULL)
			return -1;
		h->expiry = t;
		h->expiry_cap = cap;
	}
	h->expiry[h->nexpiry++] = c;
	expiry_up(h, h->nexpiry - 1);
	return 0;
}

static void
expiry_remove(struct hub *h, struct hub_conn *c)
{
	if (c->eslot == 0)
		return;
	size_t i = c->eslot - 1;
	c->eslot = 0;
	struct hub_conn *last = h->expiry[--h->nexpiry];
	if (i == h->nexpiry)
		return;
	expiry_set(h, i, last);
	if (i > 0 && h->expiry[(i - 1) / 2]->expires > last->expires)
		expiry_up(h, i);
	else
		expiry_down(h, i);
}

/* The frame of a JSON object (consumed), with one reference; NULL if it cannot be made. */
static struct frame *
frame_of(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (s == NULL)
		return NULL;
	size_t len = strlen(s);
	struct frame *f = malloc(sizeof *f + len + 1);
	if (f != NULL) {
		f->refs = 1;
		f->len = len;
		memcpy(f->data, s, len + 1);
	}
	free(s);
	return f;
}

/* A frame {"type":type,["user":user,]"data":data}, with one reference. */
static struct frame *
frame_new(const char *type, const char *user, json_t *data)
{
	json_t *o = json_pack("{s:s}", "type", type);
	if (user != NULL)
		json_object_set_new(o, "user", json_string(user));
	json_object_set(o, "data", data ? data : json_null());
	return frame_of(o);
}

/*
 * The same frame with data given as JSON text: what a topic's thousands
 * of notifications are sent as, each made once without an object.
 */
static struct frame *
frame_text(const char *type, const char *user, const char *data, size_t len)
{
	char mem[512];
	struct buf head;
	buf_init_stack(&head, mem, sizeof mem);
	buf_puts(&head, "{\"type\":\"");
	buf_puts(&head, type);
	buf_putc(&head, '"');
	if (user != NULL) {
		buf_puts(&head, ",\"user\":");
		buf_json_string(&head, user, strlen(user));
	}
	buf_puts(&head, ",\"data\":");
	struct frame *f = head.oom ? NULL : malloc(sizeof *f + head.len + len + 2);
	if (f != NULL) {
		f->refs = 1;
		f->len = head.len + len + 1;
		memcpy(f->data, head.data, head.len);
		memcpy(f->data + head.len, data, len);
		f->data[f->len - 1] = '}';
		f->data[f->len] = '\0';
	}
	buf_free(&head);
	return f;
}

/* Drop a reference. Under lock. */
static void
frame_unref(struct frame *f)
{
	if (f != NULL && --f->refs == 0)
		free(f);
}

/* Put c in the run queue unless it is there, being sent, or paused. Under lock. */
static void
schedule(struct hub *h, struct hub_conn *c)
{
	if (c->state != C_IDLE)
		return;
	c->state = C_QUEUED;
	c->rnext = NULL;
	*h->run_tail = c;
	h->run_tail = &c->rnext;
	pthread_cond_signal(&h->work);
}

static void
queue_clear(struct hub_conn *c)
{
	for (struct qnode *n = c->qhead, *next; n; n = next) {
		next = n->next;
		frame_unref(n->f);
		free(n);
	}
	c->qhead = NULL;
	c->qtail = &c->qhead;
	c->qlen = 0;
}

/* Close c with code once its queue is out. Under lock. */
static void
close_later(struct hub *h, struct hub_conn *c, int code, const char *reason)
{
	if (c->close_code == 0) {
		c->close_code = code;
		c->close_reason = reason;
	}
	schedule(h, c);
}

/* Queue f for c, dropping c when its queue is full. Under lock. */
static void
enqueue(struct hub *h, struct hub_conn *c, struct frame *f, int64_t nid)
{
	if (c->dead || f == NULL)
		return;
	if (c->qlen >= h->o.queue) {
		c->dead = true;
		queue_clear(c);
		metrics_add(C_WS_DROPPED_SLOW, 1);
		log_warn("client dropped", "user=%s reason=queue_full queue=%d",
		    c->user, h->o.queue);
		close_later(h, c, 1008, "too slow: outgoing queue full");
		return;
	}
	struct qnode *n = malloc(sizeof *n);
	if (n == NULL)
		return;
	f->refs++;
	n->f = f;
	n->nid = nid;
	n->next = NULL;
	*c->qtail = n;
	c->qtail = &n->next;
	c->qlen++;
	schedule(h, c);
}

/* Send one frame of c now (caller's thread). */
static int
send_now(struct hub_conn *c, const char *type, json_t *data)
{
	json_t *o = json_pack("{s:s, s:O}", "type", type, "data", data);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	int rc = s ? c->t.send(c->ctx, s, strlen(s)) : -1;
	free(s);
	if (rc >= 0)
		metrics_add(C_WS_FRAMES_SENT, 1);
	return rc;
}

/* Frames to c: in one write when its transport can. */
static int
send_frames(struct hub_conn *c, const struct hub_iov *v, int n)
{
	if (c->t.sendv != NULL)
		return c->t.sendv(c->ctx, v, n);
	for (int i = 0; i < n; i++)
		if (c->t.send(c->ctx, v[i].data, v[i].len) < 0)
			return -1;
	return 0;
}

/* A Mailpit frame {"Type":type,"Data":data}, with one reference. */
static struct frame *
mailpit_frame(const char *type, json_t *data)
{
	return frame_of(json_pack("{s:s, s:O?}", "Type", type, "Data", data));
}

/* A mailbox event as Mailpit's /api/events frames: the change, then the new stats. */
static void
mailpit_frames(struct hub *h, const struct event *ev, struct frame **mf, struct frame **stats)
{
	json_t *counts = NULL;
	if (ev->type == EVENT_MAIL)
		*mf = mailpit_frame("new", ev->data);
	else if (ev->type == EVENT_MAIL_DELETED)
		*mf = mailpit_frame("delete", json_object_get(ev->data, "IDs"));
	else if (ev->type == EVENT_MAIL_PRUNED)
		*mf = mailpit_frame("prune", NULL);	/* Mailpit's clients reload the list */
	else
		*mf = mailpit_frame("truncate", NULL);
	if (store_mail_list(h->app->store, 0, 0, NULL, &counts) > 0) {
		json_t *d = json_pack("{s:O, s:O, s:s}", "Total", json_object_get(counts, "total"),
		    "Unread", json_object_get(counts, "unread"), "Version", h->app->version);
		*stats = mailpit_frame("stats", d);
		json_decref(d);
		json_decref(counts);
	}
}

/*
 * The events of some time may not have been told (PostgreSQL's LISTEN was
 * cut, or one was too large to relay): each client of user (NULL: of
 * everyone) is sent the notifications after the newest it was told, in
 * their order, and a fresh unread count read from the store. Live frames
 * of what this sent are skipped. Not what the time's reads, archives and
 * deletes were one by one: the count says where they left it.
 *
 * Two things make "after the newest told" and "up to the newest sent"
 * exact. It runs on the relay's listener thread, which emits every
 * notification of a PostgreSQL store (its own node's too), so no live
 * notification is told meanwhile and a client's told moves only here.
 * And one user's ids follow commit order (each write locks the user's
 * row before it takes an id), so what a read sees of an inbox is a
 * prefix of what will be told of it.
 */
static void
resync(struct hub *h, const char *user)
{
	struct behind {
		char	*user;
		int64_t	 after;
	} *todo = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&h->lock);
	for (size_t b = 0; b < h->nbuckets; b++)
		for (struct user_ent *e = h->users[b]; e; e = e->next) {
			if (e->list == NULL || (user != NULL && *user != '\0' &&
			    strcmp(e->user, user) != 0))
				continue;
			int64_t after = -1;
			for (struct hub_conn *c = e->list; c; c = c->unext) {
				if (c->state == C_PAUSED || c->dead)
					continue;
				if (after < 0 || c->told < after)
					after = c->told;
				/*
				 * What is queued now was told before this catching
				 * up, which sends only what is newer: it goes out
				 * whatever replay_max becomes. (A frame an earlier
				 * replay covered stays skipped: that one is out.)
				 */
				for (struct qnode *q = c->qhead; q; q = q->next)
					if (q->nid > c->replay_max)
						q->nid = 0;
			}
			if (after < 0)
				continue;	/* every client is in its replay, which reads the store */
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				struct behind *t = realloc(todo, cap * sizeof *t);
				if (t == NULL)
					break;
				todo = t;
			}
			todo[n].user = strdup(e->user);
			todo[n++].after = after;
		}
	pthread_mutex_unlock(&h->lock);

	for (size_t i = 0; i < n; i++) {
		json_t *page = NULL;
		int64_t after = todo[i].after;
		bool more = true;
		if (todo[i].user == NULL)
			continue;
		while (more && store_notifications_after(h->app->store, todo[i].user, after,
		    REPLAY_PAGE, time_now_ms(), &page) >= 0) {
			size_t k, got = json_array_size(page);
			json_t *o;
			pthread_mutex_lock(&h->lock);
			struct user_ent *e = user_get(h, todo[i].user, false);
			json_array_foreach(page, k, o) {
				after = json_integer_value(json_object_get(o, "id"));
				struct frame *f = NULL;
				for (struct hub_conn *c = e ? e->list : NULL; c; c = c->unext) {
					if (c->state == C_PAUSED || c->dead || after <= c->told)
						continue;
					if (f == NULL)
						f = frame_new("notification", NULL, o);
					enqueue(h, c, f, 0);	/* 0: never skipped */
					c->told = after;
					if (after > c->replay_max)
						c->replay_max = after;	/* its live frame is */
				}
				frame_unref(f);
			}
			pthread_mutex_unlock(&h->lock);
			json_decref(page);
			more = got == REPLAY_PAGE;
		}
		pthread_mutex_lock(&h->lock);
		struct user_ent *e = user_get(h, todo[i].user, false);
		for (struct hub_conn *c = e ? e->list : NULL; c; c = c->unext)
			if (c->state != C_PAUSED && !c->dead) {
				c->count_dirty = true;
				c->count = -1;	/* read it */
				schedule(h, c);
			}
		pthread_mutex_unlock(&h->lock);
		free(todo[i].user);
	}
	free(todo);
	log_info("clients caught up", "users=%zu", n);
}

/* Turn one of core's events into frames for the user's clients and the watchers. */
static void
on_event(const struct event *ev, void *arg)
{
	struct hub *h = arg;
	const char *type = events_name(ev->type);
	struct frame *f = NULL, *count = NULL, *wf = NULL, *mf = NULL, *stats = NULL;
	json_t *data = ev->data, *count_data = NULL;
	int64_t nid = 0;

	if (__atomic_load_n(&h->stopped, __ATOMIC_ACQUIRE))
		return;
	if (ev->type == EVENT_DISCONNECT) {	/* asked of another node */
		hub_disconnect(h, ev->user, json_string_value(json_object_get(data, "reason")));
		return;
	}
	if (ev->type == EVENT_RESYNC) {
		resync(h, ev->user);
		return;
	}
	if (EVENT_IS_INTERNAL(ev->type))
		return;
	/*
	 * A notification given as text is framed by a copy, under the lock,
	 * which it then takes once: a topic's thousands contend with the
	 * senders for it.
	 */
	struct user_ent *e = NULL;
	bool to_user = false, to_watchers = false;
	if (ev->text == NULL) {
		pthread_mutex_lock(&h->lock);
		e = user_get(h, ev->user, false);
		to_user = e != NULL && e->list != NULL;
		to_watchers = h->watchers != NULL;
		pthread_mutex_unlock(&h->lock);
		if (!to_user && !to_watchers)
			return;
	}

	/* Build outside the lock; each frame once, however many clients get it. */
	json_t *own = NULL;
	if (EVENT_IS_MAIL(ev->type)) {
		/* Mailbox events have no user: watchers get them as they are. */
	} else if (ev->type == EVENT_NOTIFICATION) {
		nid = ev->id;
	} else if (ev->type == EVENT_READ_ALL) {
		own = json_pack("{s:O}", "up_to", json_object_get(data, "up_to"));
	} else if (ev->type == EVENT_DELETED) {
		own = json_pack("{s:O}", "id", json_object_get(data, "id"));
	} else {
		own = json_pack("{s:O}", "ids", json_object_get(data, "ids"));
	}
	if (json_object_get(data, "unread_count") != NULL)
		count_data = json_pack("{s:O}", "count", json_object_get(data, "unread_count"));
	if (to_user) {
		f = frame_new(type, NULL, own ? own : data);
		if (count_data != NULL)
			count = frame_new("unread_count", NULL, count_data);
	}
	if (to_watchers)
		wf = frame_new(type, ev->user, own ? own : data);
	if (to_watchers && EVENT_IS_MAIL(ev->type))
		mailpit_frames(h, ev, &mf, &stats);
	json_decref(own);
	json_decref(count_data);

	pthread_mutex_lock(&h->lock);
	e = ev->text != NULL || to_user ? user_get(h, ev->user, false) : NULL;
	if (ev->text != NULL && e != NULL && e->list != NULL)
		f = frame_text(type, NULL, ev->text, ev->text_len);
	if (ev->text != NULL && h->watchers != NULL)
		wf = frame_text(type, ev->user, ev->text, ev->text_len);
	for (struct hub_conn *c = e ? e->list : NULL; c; c = c->unext) {
		enqueue(h, c, f, nid);
		if (nid > c->told)
			c->told = nid;
		if (count != NULL) {
			enqueue(h, c, count, 0);
			c->count_dirty = false;	/* that one is newer */
		} else if (ev->type == EVENT_NOTIFICATION && c->state == C_PAUSED) {
			/* Whether the greeting counted it is known once the replay is out. */
			if (nid > c->paused_nid) {
				c->paused_nid = nid;
				c->paused_count = ev->unread_count;
			}
		} else if (ev->type == EVENT_NOTIFICATION && nid > c->replay_max) {
			/*
			 * Not one its greeting counted already (with PostgreSQL
			 * one committed before the client came can be told after).
			 */
			c->count_dirty = true;
			c->count = ev->unread_count;
		}
	}
	for (struct hub_conn *c = h->watchers; c; c = c->unext) {
		if (c->mailpit) {
			enqueue(h, c, mf, 0);
			enqueue(h, c, stats, 0);
		} else if (c->user == NULL || strcmp(c->user, ev->user) == 0) {
			enqueue(h, c, wf, 0);
		}
	}
	frame_unref(f);
	frame_unref(count);
	frame_unref(wf);
	frame_unref(mf);
	frame_unref(stats);
	pthread_mutex_unlock(&h->lock);
}

/* Drain the run queue: each client's frames in order, one client per sender at a time. */
static void *
sender_main(void *arg)
{
	struct hub *h = arg;
	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		struct hub_conn *c = h->run_head;
		if (c == NULL) {
			pthread_cond_wait(&h->work, &h->lock);
			continue;
		}
		h->run_head = c->rnext;
		if (h->run_head == NULL)
			h->run_tail = &h->run_head;
		c->state = C_SENDING;
		struct qnode *nodes = c->qhead;
		c->qhead = NULL;
		c->qtail = &c->qhead;
		c->qlen = 0;
		int close_code = c->close_code;
		const char *reason = c->close_reason;
		c->close_code = -1 * (close_code != 0);	/* a close is sent once */
		bool dirty = c->count_dirty, dead = c->dead, failed = false;
		int64_t count = c->count;
		/* As of taking them: a catching up meanwhile does not cover these. */
		int64_t replayed = c->replay_max;
		c->count_dirty = false;
		pthread_mutex_unlock(&h->lock);

		/* The queue, then a fresh unread count, in as few writes as it takes. */
		struct hub_iov v[SEND_BATCH];
		char countf[80];
		int nv = 0, sent = 0;
		struct qnode *q = nodes;
		while (!failed && !dead && (q != NULL || dirty)) {
			for (; q != NULL && nv < SEND_BATCH; q = q->next)
				if (q->nid <= 0 || q->nid > replayed)
					v[nv++] = (struct hub_iov){q->f->data, q->f->len};
			/*
			 * A count not known yet is read from the store, but only
			 * once the frames before it are out: a notification does
			 * not wait for a read.
			 */
			if (q == NULL && dirty && nv < SEND_BATCH && (count >= 0 || nv == 0)) {
				dirty = false;
				if (c->user != NULL && (count >= 0 || store_unread_count(h->app->store,
				    c->user, time_now_ms(), &count) > 0)) {
					int l = snprintf(countf, sizeof countf,
					    "{\"type\":\"unread_count\",\"data\":{\"count\":%lld}}",
					    (long long)count);
					v[nv++] = (struct hub_iov){countf, (size_t)l};
				}
			}
			if (nv > 0 && send_frames(c, v, nv) < 0)
				failed = true;
			else
				sent += nv;
			nv = 0;
		}
		if (close_code > 0)
			c->t.close(c->ctx, close_code, reason);
		metrics_add(C_WS_FRAMES_SENT, sent);

		pthread_mutex_lock(&h->lock);
		for (struct qnode *n = nodes, *next; n; n = next) {
			next = n->next;
			frame_unref(n->f);
			free(n);
		}
		if (failed)
			c->dead = true;
		c->state = C_IDLE;
		/* A count asked for meanwhile, with no frame before it, goes too. */
		if (((c->qhead != NULL || c->count_dirty) && !c->dead) || c->close_code > 0)
			schedule(h, c);
		pthread_cond_broadcast(&c->idle);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/*
 * Once a second: close connections whose token has expired. Every
 * PRESENCE_TTL / 3: tell the store this node lives (its presence counts).
 */
static void *
timer_main(void *arg)
{
	struct hub *h = arg;
	int64_t beat = 0;
	pthread_mutex_lock(&h->lock);
	while (!h->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&h->tick, &h->lock, &ts);
		int64_t now = time_now_ms();
		if (now - beat >= PRESENCE_TTL / 3) {
			beat = now;
			pthread_mutex_unlock(&h->lock);
			store_presence_add(h->app->store, NULL, 0, now);
			pthread_mutex_lock(&h->lock);
		}
		json_t *err = NULL;
		struct frame *f = NULL;
		/* Only what has expired: a walk of 19,000 clients held the lock 1.5-4 ms. */
		while (h->nexpiry > 0 && h->expiry[0]->expires <= now && !h->stop) {
			struct hub_conn *c = h->expiry[0];
			expiry_remove(h, c);
			if (f == NULL) {
				err = json_pack("{s:s, s:s}", "code", "token_expired",
				    "message", "the token has expired; reconnect with a new one");
				f = frame_new("error", NULL, err);
			}
			enqueue(h, c, f, 0);
			close_later(h, c, 4001, "token expired");
			log_info("client closed", "user=%s reason=token_expired", c->user);
		}
		frame_unref(f);
		json_decref(err);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* The store's question: does a client of user want its count with the next notification? */
static bool
wants_count(const char *user, void *arg)
{
	return hub_presence(arg, user) > 0;
}

int
hub_start(struct hub **out, struct app *app, const struct hub_options *o)
{
	struct hub *h = calloc(1, sizeof *h);
	if (h == NULL)
		return -1;
	h->app = app;
	h->o = *o;
	h->run_tail = &h->run_head;
	h->nbuckets = MIN_BUCKETS;
	if ((h->users = calloc(h->nbuckets, sizeof *h->users)) == NULL) {
		free(h);
		return -1;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->work, NULL);
	pthread_cond_init(&h->tick, NULL);
	h->senders = calloc((size_t)o->senders, sizeof *h->senders);
	for (int i = 0; i < o->senders; i++)
		if (pthread_create(&h->senders[i], NULL, sender_main, h) == 0)
			h->nsenders++;
	h->timer_running = pthread_create(&h->timer, NULL, timer_main, h) == 0;
	if (h->nsenders == 0 || !h->timer_running) {
		hub_stop(h);
		hub_free(h);
		return -1;
	}
	events_subscribe(on_event, h);
	events_set_interest(wants_count, h);
	*out = h;
	return 0;
}

void
hub_stop(struct hub *h)
{
	if (h == NULL)
		return;
	events_set_interest(NULL, NULL);
	__atomic_store_n(&h->stopped, true, __ATOMIC_RELEASE);
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_broadcast(&h->work);
	pthread_cond_broadcast(&h->tick);
	pthread_mutex_unlock(&h->lock);
	for (int i = 0; i < h->nsenders; i++)
		pthread_join(h->senders[i], NULL);
	if (h->timer_running)
		pthread_join(h->timer, NULL);
}

/*
 * An event emitted as hub_stop ran may still be in on_event: it has ended
 * once the store is closed, and nothing emits any more, so the hub can
 * leave the subscribers and go.
 */
void
hub_free(struct hub *h)
{
	if (h == NULL)
		return;
	events_unsubscribe(on_event, h);
	for (size_t b = 0; h->users != NULL && b < h->nbuckets; b++)
		while (h->users[b] != NULL) {
			struct user_ent *e = h->users[b];
			h->users[b] = e->next;
			free(e);
		}
	free(h->users);
	free(h->expiry);
	free(h->senders);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->work);
	pthread_cond_destroy(&h->tick);
	free(h);
}

enum hub_refusal
hub_reserve(struct hub *h, const char *user)
{
	enum hub_refusal r = HUB_OK;
	pthread_mutex_lock(&h->lock);
	struct user_ent *e = user ? user_get(h, user, true) : NULL;
	if (h->open + h->mailbox + h->reserved >= h->o.max_conns)
		r = HUB_FULL;
	else if (user != NULL && (e == NULL || e->conns + e->reserved >= h->o.per_user))
		r = HUB_USER_LIMIT;
	if (r == HUB_OK) {
		if (e != NULL)
			e->reserved++;
		h->reserved++;
	} else if (e != NULL) {
		user_gc(h, e);
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}

void
hub_unreserve(struct hub *h, const char *user)
{
	pthread_mutex_lock(&h->lock);
	struct user_ent *e = user ? user_get(h, user, false) : NULL;
	if (user == NULL && h->reserved > 0) {
		h->reserved--;
	} else if (e != NULL && e->reserved > 0) {
		e->reserved--;
		h->reserved--;
		user_gc(h, e);
	}
	pthread_mutex_unlock(&h->lock);
}

/* A new client record. */
static struct hub_conn *
conn_new(struct hub *h, const char *user, const struct hub_transport *t, void *ctx)
{
	struct hub_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->h = h;
	c->user = user ? strdup(user) : NULL;
	c->t = *t;
	c->ctx = ctx;
	c->qtail = &c->qhead;
	c->count = -1;
	pthread_cond_init(&c->idle, NULL);
	return c;
}

struct hub_conn *
hub_attach(struct hub *h, const char *user, int64_t expires, int64_t since,
    const struct hub_transport *t, void *ctx)
{
	struct hub_conn *c = conn_new(h, user, t, ctx);
	int64_t now = time_now_ms(), count = 0, last = 0;
	char ts[40];
	if (c == NULL) {
		hub_unreserve(h, user);
		return NULL;
	}
	c->expires = expires;
	c->state = C_PAUSED;	/* live frames wait until the replay is out */

	pthread_mutex_lock(&h->lock);
	struct user_ent *e = user_get(h, user, true);
	e->reserved--;
	h->reserved--;
	e->conns++;
	h->open++;
	c->unext = e->list;
	e->list = c;
	/* One that could not be expired on time may not stay. */
	if (c->expires > 0 && expiry_add(h, c) != 0) {
		log_error("client closed", "user=%s reason=out_of_memory", user);
		close_later(h, c, 1011, "out of memory");
	}
	pthread_mutex_unlock(&h->lock);
	store_presence_add(h->app->store, user, 1, now);	/* other nodes' presence */

	/* Registered first, then read: whatever commits from now on is queued. */
	store_unread_count(h->app->store, user, now, &count);
	store_last_id(h->app->store, user, now, &last);
	time_format_rfc3339(ts, sizeof ts, now);
	json_t *hello = json_pack("{s:s, s:I, s:I, s:s}", "user", user, "unread_count",
	    (json_int_t)count, "last_id", (json_int_t)last, "server_time", ts);
	bool ok = send_now(c, "connected", hello) >= 0;
	json_decref(hello);

	/*
	 * The replay ends at last: whatever committed since the registration
	 * above is in c's paused queue already. Paging on until a page came
	 * back short never ended while a writer outpaced it, and the client's
	 * frames (its close among them) are read only once this returns.
	 * A since past last is a cursor of another history (a database
	 * restored from a backup, or made anew): the ids after last are
	 * notifications the client has not seen, so they are not skipped.
	 */
	int64_t max = last;
	for (int64_t after = since; ok && since >= 0 && after < last;) {
		json_t *page = NULL, *n;
		size_t i;
		if (store_notifications_after(h->app->store, user, after, REPLAY_PAGE,
		    time_now_ms(), &page) < 0)
			break;
		json_array_foreach(page, i, n) {
			after = json_integer_value(json_object_get(n, "id"));
			if (send_now(c, "notification", n) < 0) {
				ok = false;
				break;
			}
		}
		size_t got = json_array_size(page);
		json_decref(page);
		if (after > max)
			max = after;
		if (got < REPLAY_PAGE)
			break;
	}

	pthread_mutex_lock(&h->lock);
	/* Live notifications up to max were in the replay (or before since). */
	c->replay_max = max;
	if (max > c->told)
		c->told = max;
	if (c->paused_nid > max) {
		c->count_dirty = true;
		c->count = c->paused_count;
	}
	c->state = C_IDLE;
	if (!ok)
		c->dead = true;
	else if (c->qhead != NULL || c->count_dirty || c->close_code > 0)
		schedule(h, c);
	pthread_mutex_unlock(&h->lock);
	log_debug("client connected", "user=%s since=%lld replayed_to=%lld", user,
	    (long long)since, (long long)max);
	return c;
}

/* Link a new watcher in; mailpit: a paused mailbox client, which takes its reservation. */
static struct hub_conn *
watch(struct hub *h, const char *user, bool mailpit, const struct hub_transport *t, void *ctx)
{
	struct hub_conn *c = conn_new(h, user, t, ctx);
	pthread_mutex_lock(&h->lock);
	if (mailpit)
		h->reserved--;
	if (c != NULL) {
		c->watcher = true;
		c->mailpit = mailpit;
		if (mailpit) {
			c->state = C_PAUSED;
			h->mailbox++;
		}
		c->unext = h->watchers;
		h->watchers = c;
	}
	pthread_mutex_unlock(&h->lock);
	return c;
}

struct hub_conn *
hub_watch(struct hub *h, const char *user, const struct hub_transport *t, void *ctx)
{
	return watch(h, user, false, t, ctx);
}

struct hub_conn *
hub_watch_mailbox(struct hub *h, const struct hub_transport *t, void *ctx)
{
	return watch(h, NULL, true, t, ctx);
}

void
hub_release(struct hub_conn *c)
{
	struct hub *h = c->h;
	pthread_mutex_lock(&h->lock);
	if (c->state == C_PAUSED) {
		c->state = C_IDLE;
		if (c->qhead != NULL || c->close_code > 0)
			schedule(h, c);
	}
	pthread_mutex_unlock(&h->lock);
}

/* Queue an error frame for c. */
static void
send_error(struct hub_conn *c, const char *code, const char *message)
{
	struct hub *h = c->h;
	json_t *d = json_pack("{s:s, s:s}", "code", code, "message", message);
	struct frame *f = frame_new("error", NULL, d);
	json_decref(d);
	pthread_mutex_lock(&h->lock);
	enqueue(h, c, f, 0);
	frame_unref(f);
	pthread_mutex_unlock(&h->lock);
}

void
hub_reject(struct hub_conn *c, const char *code, const char *message)
{
	metrics_add(C_WS_FRAMES_RECEIVED, 1);
	log_info("client frame refused", "user=%s code=%s", c->user, code);
	send_error(c, code, message);
}

void
hub_receive(struct hub_conn *c, const char *data, size_t len)
{
	json_error_t jerr;
	json_t *msg = NULL, *args = NULL;
	const char *type;
	char why[256];

	metrics_add(C_WS_FRAMES_RECEIVED, 1);
	if (len > MAX_CLIENT_FRAME) {
		send_error(c, "frame_too_large", "a client frame may hold at most 64 KiB");
		goto log;
	}
	bool deep;
	msg = json_load_bounded(data, len, JSON_REJECT_DUPLICATES, &jerr, &deep);
	type = json_string_value(json_object_get(msg, "type"));
	if (msg == NULL && deep) {
		snprintf(why, sizeof why, "the frame's %s", jerr.text);
		send_error(c, "too_deep", why);
		goto log;
	}
	if (msg == NULL) {
		snprintf(why, sizeof why, "malformed JSON at column %d: %s", jerr.column, jerr.text);
		send_error(c, "malformed_frame", why);
		goto log;
	}
	if (!json_is_object(msg)) {
		send_error(c, "malformed_frame", "a frame must be a JSON object");
		goto log;
	}
	if (type == NULL) {
		send_error(c, "malformed_frame", "a frame needs a \"type\" string");
		goto log;
	}
	if (strcmp(type, "ping") == 0) {
		char ts[40];
		time_format_rfc3339(ts, sizeof ts, time_now_ms());
		json_t *d = json_pack("{s:s}", "server_time", ts);
		struct frame *f = frame_new("pong", NULL, d);
		json_decref(d);
		pthread_mutex_lock(&c->h->lock);
		enqueue(c->h, c, f, 0);
		frame_unref(f);
		pthread_mutex_unlock(&c->h->lock);
		json_decref(msg);
		return;
	}
	if (strcmp(type, "mark_read") == 0) {
		json_t *ids = json_object_get(msg, "ids");
		if (!json_is_array(ids) || json_array_size(ids) == 0) {
			send_error(c, "invalid_field", "mark_read needs \"ids\": a non-empty array");
			goto log;
		}
		args = json_pack("{s:O}", "ids", ids);
	} else if (strcmp(type, "mark_all_read") == 0) {
		args = json_pack("{s:b}", "all", 1);
	} else {
		snprintf(why, sizeof why, "unknown frame type '%.64s'", type);
		send_error(c, "unknown_type", why);
		goto log;
	}
	/* The same operation REST and notifyctl run, as this user. */
	struct op_ctx ctx = {.app = c->h->app, .as_user = c->user};
	json_t *r = op_dispatch(&ctx, "read", args);
	json_decref(args);
	json_decref(msg);
	if (r == NULL) {
		send_error(c, ctx.err.code, ctx.err.message);
		log_info("client frame refused", "user=%s code=%s", c->user, ctx.err.code);
	}
	json_decref(r);
	return;
log:
	log_info("client frame refused", "user=%s", c->user);
	json_decref(msg);
}

void
hub_detach(struct hub_conn *c)
{
	struct hub *h = c->h;
	pthread_mutex_lock(&h->lock);
	c->dead = true;
	struct hub_conn **list = &h->watchers;
	struct user_ent *e = NULL;
	if (!c->watcher) {
		e = user_get(h, c->user, false);
		list = e ? &e->list : NULL;
	}
	for (; list && *list; list = &(*list)->unext)
		if (*list == c) {
			*list = c->unext;
			break;
		}
	bool counted = e != NULL;
	expiry_remove(h, c);
	if (e != NULL) {
		e->conns--;
		h->open--;
		user_gc(h, e);
	}
	if (c->mailpit)
		h->mailbox--;
	while (c->state == C_SENDING)
		pthread_cond_wait(&c->idle, &h->lock);
	if (c->state == C_QUEUED) {
		struct hub_conn **p = &h->run_head;
		while (*p && *p != c)
			p = &(*p)->rnext;
		if (*p == c) {
			*p = c->rnext;
			if (*p == NULL)
				h->run_tail = p;
		}
	}
	queue_clear(c);
	pthread_mutex_unlock(&h->lock);
	if (counted)
		store_presence_add(h->app->store, c->user, -1, time_now_ms());
	log_debug("client gone", "user=%s", c->user);
	pthread_cond_destroy(&c->idle);
	free(c->user);
	free(c);
}

int
hub_presence(struct hub *h, const char *user)
{
	pthread_mutex_lock(&h->lock);
	struct user_ent *e = user_get(h, user, false);
	int n = e ? e->conns : 0;
	pthread_mutex_unlock(&h->lock);
	return n;
}

int
hub_open(struct hub *h)
{
	pthread_mutex_lock(&h->lock);
	int n = h->open + h->mailbox;
	pthread_mutex_unlock(&h->lock);
	return n;
}

json_t *
hub_connections(struct hub *h)
{
	json_t *users = json_object();
	pthread_mutex_lock(&h->lock);
	for (size_t b = 0; b < h->nbuckets; b++)
		for (struct user_ent *e = h->users[b]; e; e = e->next)
			if (e->conns > 0)
				json_object_set_new(users, e->user, json_integer(e->conns));
	int total = h->open + h->mailbox, mailbox = h->mailbox;
	pthread_mutex_unlock(&h->lock);
	return json_pack("{s:i, s:o, s:i}", "total", total, "users", users, "mailbox", mailbox);
}

int
hub_disconnect(struct hub *h, const char *user, const char *reason)
{
	int n = 0;
	json_t *d = json_pack("{s:s, s:s}", "code", "disconnected", "message",
	    reason ? reason : "disconnected by the administrator");
	struct frame *f = frame_new("error", NULL, d);
	json_decref(d);
	pthread_mutex_lock(&h->lock);
	struct user_ent *e = user_get(h, user, false);
	for (struct hub_conn *c = e ? e->list : NULL; c; c = c->unext) {
		enqueue(h, c, f, 0);
		close_later(h, c, 4002, "disconnected");
		n++;
	}
	frame_unref(f);
	pthread_mutex_unlock(&h->lock);
	return n;
}
