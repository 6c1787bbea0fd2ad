/*
 * pg_relay — events across the nodes of one PostgreSQL store, through
 * LISTEN/NOTIFY on the channel "notifyd".
 *
 * A write's events (events.h) are not emitted where the write runs: pg_tx()
 * captures them (events_capture) and sends them with pg_notify() inside
 * the write's own transaction, so they are delivered if and only if it
 * commits, and in the order the transactions commit. A listener thread on
 * each node, on a connection of its own, takes every payload, its own
 * node's too, reads what the ids name, and emits the events on that node:
 * the WebSocket clients, watchers and outbox worker of every node see one
 * history, in commit order, whichever node wrote it. A payload names its
 * node and carries ids, never whole objects: new notifications are
 * {"t":"notification","ids":[...],"counts":[...]} (as many as fit), new
 * mail its uid; the rest their small event data as it is (ids, a count).
 * Events between core's parts (a key revoked, work for the outbox) and
 * the mailbox's are emitted on the writing node itself, after the commit,
 * in their order (it has new mail's summary; another node reads it, and
 * skips one that retention removed meanwhile); the other nodes hear them
 * through LISTEN.
 *
 * A listener cut off from the server misses what commits meanwhile: once
 * it listens again it emits EVENT_RESYNC, and the hub sends each client
 * what it missed (auth forgets its keys, the outbox looks again). An event
 * of an inbox too large for a payload (PAYLOAD_MAX) is relayed as a resync
 * of its user; a mailbox's is not relayed (logged).
 */
#define _GNU_SOURCE
#include "pg_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "log.h"

/* PostgreSQL's limit is 8000 bytes a payload; ids are batched below it. */
#define PAYLOAD_MAX 8000
#define PAYLOAD_IDS 300

struct relay {
	struct store	*st;
	char		*url, *node;
	pthread_t	 listener;
	bool		 started, stop;
	bool		 listening;	/* LISTEN took, once: the store may be used */
	pthread_mutex_t	 lock;
	pthread_cond_t	 wake;
};

/* events_capture()'s callback: the event as a payload object, into the array arg. */
static void
capture(const struct event *ev, void *arg)
{
	json_t *out = arg, *p;
	json_t *last = json_array_get(out, json_array_size(out) - 1);
	if (ev->type == EVENT_NOTIFICATION) {
		/* New notifications one after another share a payload. */
		if (last != NULL && json_object_get(last, "ids") != NULL &&
		    json_array_size(json_object_get(last, "ids")) < PAYLOAD_IDS) {
			json_array_append_new(json_object_get(last, "ids"), json_integer(ev->id));
			json_array_append_new(json_object_get(last, "counts"),
			    json_integer(ev->unread_count));
			return;
		}
		p = json_pack("{s:s, s:[I], s:[I]}", "t", "notification", "ids",
		    (json_int_t)ev->id, "counts", (json_int_t)ev->unread_count);
	} else if (ev->type == EVENT_MAIL) {
		/* The summary stays here: the writing node tells its own clients. */
		p = json_pack("{s:s, s:O, s:O}", "t", "mail", "uid", json_object_get(ev->data, "ID"),
		    "summary", ev->data);
	} else {
		p = json_pack("{s:s, s:s, s:O?}", "t", events_name(ev->type), "u",
		    ev->user ? ev->user : "", "data", ev->data);
	}
	if (p != NULL)
		json_array_append_new(out, p);
}

int
pg_tx_publish(struct pgc *c, struct store *st, void (*publish)(void *arg), void *arg,
    json_t **internal)
{
	json_t *events = json_array(), *texts = json_array(), *p;
	size_t i;
	events_capture(capture, events);
	publish(arg);
	events_capture(NULL, NULL);
	*internal = json_array();
	json_array_foreach(events, i, p) {
		const char *t = json_string_value(json_object_get(p, "t"));
		/* Core's own events and the mailbox's are told here, in their order. */
		for (int k = EVENT_MAIL; k < EVENT__COUNT; k++)
			if ((EVENT_IS_INTERNAL(k) || EVENT_IS_MAIL(k)) &&
			    strcmp(t, events_name((enum event_type)k)) == 0)
				json_array_append_new(*internal, json_pack("{s:i, s:O?}", "k", k, "d",
				    k == EVENT_MAIL ? json_object_get(p, "summary") :
				    json_object_get(p, "data")));
		json_object_del(p, "summary");
		json_object_set_new(p, "n", json_string(PG(st)->node));
		char *s = json_dumps(p, JSON_COMPACT);
		const char *user = json_string_value(json_object_get(p, "u"));
		if (s != NULL && strlen(s) >= PAYLOAD_MAX) {
			/* An inbox's is told as "catch this user up" (a read of thousands of ids). */
			free(s);
			s = NULL;
			if (user != NULL && *user != '\0') {
				log_info("event too large to relay: its user is caught up",
				    "type=%s", t);
				json_t *u = json_pack("{s:s, s:s, s:s}", "t",
				    events_name(EVENT_RESYNC), "u", user, "n", PG(st)->node);
				s = json_dumps(u, JSON_COMPACT);
				json_decref(u);
			} else {
				log_warn("event too large to relay", "type=%s", t);
			}
		}
		if (s != NULL)
			json_array_append_new(texts, json_string(s));
		free(s);
	}
	json_decref(events);
	int rc = 0;
	if (json_array_size(texts) > 0) {
		char *all = json_dumps(texts, JSON_COMPACT);
		PGresult *r = all ? pg_run(c, "notify", "SELECT pg_notify('notifyd', p) FROM "
		    "json_array_elements_text($1::json) p", "t", all) : NULL;
		rc = r ? 0 : -1;
		PQclear(r);
		free(all);
	}
	json_decref(texts);
	return rc;
}

int
pg_broadcast(struct store *st, int type, const char *user, json_t *data)
{
	json_t *p = json_pack("{s:s, s:s, s:O?, s:s}", "t", events_name((enum event_type)type),
	    "u", user ? user : "", "data", data, "n", PG(st)->node);
	char *s = p ? json_dumps(p, JSON_COMPACT) : NULL;
	json_decref(p);
	int64_t n = s ? pg_exec(st, "broadcast", "SELECT pg_notify('notifyd', $1)", "t", s) : -1;
	free(s);
	return n < 0 ? -1 : 1;
}

/* Payloads the listener takes at a time: their notifications are read in one query. */
#define BATCH 512

/* How the listener reads them: prepared once on each of its connections. */
static const char sql_fetch[] = "SELECT " PG_NCOLS " FROM notifications "
    "WHERE id = ANY (ARRAY(SELECT json_array_elements_text($1::json)::bigint))";

/* The notifications the batch's payloads name, by id (as text), read on db. */
static json_t *
fetch_notifications(PGconn *db, json_t *batch)
{
	json_t *ids = json_array(), *rows = json_object(), *p;
	size_t i;
	json_array_foreach(batch, i, p)
		if (strcmp(json_string_value(json_object_get(p, "t")), "notification") == 0)
			json_array_extend(ids, json_object_get(p, "ids"));
	if (json_array_size(ids) > 0) {
		char *list = json_dumps(ids, JSON_COMPACT);
		const char *vals[1] = {list};
		PGresult *res = list ? PQexecPrepared(db, "fetch", 1, vals, NULL, NULL, 0) : NULL;
		for (int k = 0; PQresultStatus(res) == PGRES_TUPLES_OK && k < PQntuples(res); k++)
			json_object_set_new(rows, PQgetvalue(res, k, 0), pg_row_notification(res, k));
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			log_warn("cannot read relayed notifications", "error=%.*s",
			    (int)strcspn(PQerrorMessage(db), "\n"), PQerrorMessage(db));
		PQclear(res);
		free(list);
	}
	json_decref(ids);
	return rows;
}

/* Emit, on this node and in their order, the events of a batch of payloads. */
static void
relay_batch(struct relay *r, PGconn *db, json_t *batch)
{
	json_t *rows = fetch_notifications(db, batch), *p;
	size_t i;
	json_array_foreach(batch, i, p) {
		const char *t = json_string_value(json_object_get(p, "t"));
		const char *node = json_string_value(json_object_get(p, "n"));
		events_from_elsewhere(strcmp(node, r->node) != 0);
		if (strcmp(t, "notification") == 0) {
			json_t *ids = json_object_get(p, "ids"), *id;
			size_t k;
			json_array_foreach(ids, k, id) {
				char key[24];
				snprintf(key, sizeof key, "%lld", (long long)json_integer_value(id));
				json_t *o = json_object_get(rows, key);	/* none: deleted since */
				if (o != NULL)
					events_emit_notification(json_string_value(json_object_get(o,
					    "user")), json_integer_value(id), o, NULL, 0,
					    json_integer_value(json_array_get(json_object_get(p,
					    "counts"), k)));
			}
		} else if (strcmp(t, "mail") == 0) {
			/* Told by the node that took it; elsewhere read now (gone: skipped). */
			struct mail_got m;
			const char *uid = json_string_value(json_object_get(p, "uid"));
			if (strcmp(node, r->node) != 0 && uid != NULL &&
			    store_mail_get(r->st, uid, &m) > 0) {
				events_emit(EVENT_MAIL, "", m.summary);
				json_decref(m.summary);
				free(m.raw);
			}
		} else {
			for (int k = 0; k < EVENT__COUNT; k++)
				if (strcmp(events_name((enum event_type)k), t) == 0 &&
				    (k == EVENT_RESYNC || !((EVENT_IS_INTERNAL(k) ||
				    EVENT_IS_MAIL(k)) && strcmp(node, r->node) == 0)))
					events_emit((enum event_type)k, json_string_value(
					    json_object_get(p, "u")), json_object_get(p, "data"));
		}
	}
	events_from_elsewhere(false);
	json_decref(rows);
}

/* Wait up to ms, or until stopping; false when stopping. */
static bool
pause_ms(struct relay *r, int ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->lock);
	while (!r->stop && pthread_cond_timedwait(&r->wake, &r->lock, &until) != ETIMEDOUT)
		;
	bool go = !r->stop;
	pthread_mutex_unlock(&r->lock);
	return go;
}

static bool
stopping(struct relay *r)
{
	pthread_mutex_lock(&r->lock);
	bool s = r->stop;
	pthread_mutex_unlock(&r->lock);
	return s;
}

static void *
listener_main(void *arg)
{
	struct relay *r = arg;
	static const char *const keys[] = {"options", "dbname", "connect_timeout",
	    "application_name", NULL};
	const char *vals[] = {"-c client_min_messages=warning", r->url, "5",
	    "notifyd listener", NULL};
	int backoff = 50;
	while (!stopping(r)) {
		PGconn *db = PQconnectdbParams(keys, vals, 1);
		PGresult *res = PQstatus(db) == CONNECTION_OK ? PQprepare(db, "fetch", sql_fetch, 1,
		    NULL) : NULL;
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			PQclear(res);
			res = PQexec(db, "LISTEN notifyd");
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			PQclear(res);
			PQfinish(db);
			if (!pause_ms(r, backoff))
				break;
			backoff = backoff < 1000 ? backoff * 2 : 1000;
			continue;
		}
		PQclear(res);
		backoff = 50;
		pthread_mutex_lock(&r->lock);
		bool again = r->listening;
		r->listening = true;
		pthread_cond_broadcast(&r->wake);
		pthread_mutex_unlock(&r->lock);
		log_info("listening for other nodes' events", "channel=notifyd");
		if (again)	/* what committed while it did not: caught up */
			events_emit(EVENT_RESYNC, "", NULL);
		while (!stopping(r)) {
			struct pollfd pfd = {.fd = PQsocket(db), .events = POLLIN};
			if (poll(&pfd, 1, 250) < 0 && errno != EINTR)
				break;
			if (PQconsumeInput(db) == 0)
				break;	/* the server is gone: connect again */
			/* Taken in batches, and each is emitted before the next is read. */
			PGnotify *n;
			json_t *batch = json_array();
			while (!stopping(r) && (n = PQnotifies(db)) != NULL) {
				json_t *p = json_loads(n->extra, 0, NULL);
				PQfreemem(n);
				if (json_is_string(json_object_get(p, "t")) &&
				    json_is_string(json_object_get(p, "n")))
					json_array_append(batch, p);
				json_decref(p);
				if (json_array_size(batch) == BATCH) {
					relay_batch(r, db, batch);
					json_array_clear(batch);
				}
			}
			relay_batch(r, db, batch);
			json_decref(batch);
		}
		if (!stopping(r))
			log_warn("lost PostgreSQL for other nodes' events", "error=%.*s",
			    (int)strcspn(PQerrorMessage(db), "\n"), *PQerrorMessage(db) ?
			    PQerrorMessage(db) : "the server hung up");
		PQfinish(db);
	}
	return NULL;
}

struct relay *
pg_relay_start(struct store *st, const char *url, const char *node)
{
	struct relay *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->st = st;
	r->url = strdup(url);
	r->node = strdup(node);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	if (r->url == NULL || r->node == NULL ||
	    pthread_create(&r->listener, NULL, listener_main, r) != 0) {
		pg_relay_stop(r);
		return NULL;
	}
	r->started = true;
	/*
	 * Not before it listens: a write's events would reach no one, this
	 * node's own clients included (they come back through LISTEN).
	 */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&r->lock);
	while (!r->listening && pthread_cond_timedwait(&r->wake, &r->lock, &until) == 0)
		;
	bool ok = r->listening;
	pthread_mutex_unlock(&r->lock);
	if (!ok) {
		log_error("cannot LISTEN for events", "channel=notifyd");
		pg_relay_stop(r);
		return NULL;
	}
	return r;
}

void
pg_relay_stop(struct relay *r)
{
	if (r == NULL)
		return;
	if (r->started) {
		pthread_mutex_lock(&r->lock);
		r->stop = true;
		pthread_cond_broadcast(&r->wake);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->listener, NULL);
	}
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->wake);
	free(r->url);
	free(r->node);
	free(r);
}
