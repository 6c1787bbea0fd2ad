/* mail list, show, read, clear, wait — the captured mailbox (Mailpit's shapes). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "events.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "mailsearch.h"
#include "tz.h"
#include "mime.h"
#include "ops.h"
#include "store.h"
#include "text.h"
#include "util.h"

/* Mail arrivals, for waiters. */
static pthread_mutex_t arrival_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t arrival = PTHREAD_COND_INITIALIZER;
static uint64_t arrivals;

static void
on_event(const struct event *ev, void *arg)
{
	(void)arg;
	if (ev->type != EVENT_MAIL)
		return;
	pthread_mutex_lock(&arrival_lock);
	arrivals++;
	pthread_cond_broadcast(&arrival);
	pthread_mutex_unlock(&arrival_lock);
}

/* Let mail wait hear of arrivals; called once before serving. */
void
op_mail_listen(void)
{
	events_subscribe(on_event, NULL);
}

/* What a scan of the mailbox collects. */
struct scan {
	struct mailsearch	*q;
	int64_t		 start, limit, seen, total, unread, matched;
	json_t		*page;		/* summaries in the window */
	json_t		*ids;		/* every match's ID, when wanted */
	int64_t		 first_seq;	/* the newest match's sequence */
	json_t		*first;		/* the newest match */
};

static int
scan_one(void *arg, json_t *sum, const char *search, int64_t seq)
{
	struct scan *s = arg;
	s->total++;
	if (!json_is_true(json_object_get(sum, "Read")))
		s->unread++;
	if (!mailsearch_match(s->q, sum, search))
		return 0;
	if (s->matched == 0) {
		s->first_seq = seq;
		s->first = json_incref(sum);
	}
	if (s->matched >= s->start && s->page != NULL &&
	    (int64_t)json_array_size(s->page) < s->limit)
		json_array_append(s->page, sum);
	if (s->ids != NULL)
		json_array_append(s->ids, json_object_get(sum, "ID"));
	s->matched++;
	return 0;
}

/* The tz argument (NULL when absent: the server's); false with ctx->err set when unknown. */
static bool
zone_arg(struct op_ctx *ctx, json_t *a, const struct tz **zone)
{
	const char *name = json_string_value(json_object_get(a, "tz"));
	*zone = name != NULL ? tz_get(name) : NULL;
	if (name != NULL && (*zone == NULL || *name == '\0')) {
		op_fail(ctx, 422, "invalid_field", "'tz' must be an IANA time zone such as "
		    "Europe/Berlin");
		return false;
	}
	return true;
}

/* The query argument, parsed; NULL with ctx->err set when malformed. */
static bool
query_arg(struct op_ctx *ctx, json_t *a, struct mailsearch **q)
{
	const char *err;
	const struct tz *zone;
	*q = NULL;
	if (!zone_arg(ctx, a, &zone))
		return false;
	*q = mailsearch_parse(json_string_value(json_object_get(a, "query")), zone, &err);
	if (*q == NULL)
		op_fail(ctx, 422, "invalid_field", "'query': %s", err);
	return *q != NULL;
}

/* Scan the mailbox for args' query into s (s->first is the caller's); false with ctx->err set. */
static bool
scan_mailbox(struct op_ctx *ctx, json_t *a, struct scan *s)
{
	if (!query_arg(ctx, a, &s->q))
		return false;
	int rc = store_mail_scan(ctx->app->store, 0, scan_one, s);
	mailsearch_free(s->q);
	s->q = NULL;
	if (rc < 0)
		op_fail(ctx, 500, "internal", "the mailbox could not be read");
	return rc >= 0;
}

/* Answer {"total","unread","count","messages_count","start","tags","messages"}. */
static json_t *
list_run(struct op_ctx *ctx, json_t *a)
{
	struct scan s = {.limit = 50, .page = json_array()};
	json_t *v;
	if ((v = json_object_get(a, "limit")) != NULL && !json_is_null(v)) {
		s.limit = json_integer_value(v);
		if (s.limit < 1 || s.limit > 1000) {
			json_decref(s.page);
			return op_fail(ctx, 422, "invalid_field", "'limit' must be from 1 to 1000");
		}
	}
	s.start = json_integer_value(json_object_get(a, "start"));
	if (s.start < 0) {
		json_decref(s.page);
		return op_fail(ctx, 422, "invalid_field", "'start' must not be negative");
	}
	/* No search: the page alone is read, not every message (120 ms at 5,000). */
	const char *q = json_string_value(json_object_get(a, "query"));
	if (q == NULL || q[strspn(q, " \t\r\n")] == '\0') {
		json_t *out = NULL;
		const struct tz *zone;
		json_decref(s.page);
		if (!zone_arg(ctx, a, &zone))
			return NULL;
		if (store_mail_list(ctx->app->store, s.start, s.limit, NULL, &out) <= 0)
			return op_fail(ctx, 500, "internal", "the mailbox could not be read");
		json_t *page = json_object_get(out, "messages");
		json_t *r = json_pack("{s:O, s:O, s:I, s:O, s:I, s:[], s:O}", "total",
		    json_object_get(out, "total"), "unread", json_object_get(out, "unread"),
		    "count", (json_int_t)json_array_size(page), "messages_count",
		    json_object_get(out, "total"), "start", (json_int_t)s.start, "tags",
		    "messages", page);
		json_decref(out);
		return r;
	}
	bool ok = scan_mailbox(ctx, a, &s);
	json_decref(s.first);
	if (!ok) {
		json_decref(s.page);
		return NULL;
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:[], s:o}", "total", (json_int_t)s.total,
	    "unread", (json_int_t)s.unread, "count", (json_int_t)json_array_size(s.page),
	    "messages_count", (json_int_t)s.matched, "start", (json_int_t)s.start, "tags",
	    "messages", s.page);
}

/* The whole message (and mark it read), or one representation of it. */
static json_t *
show_run(struct op_ctx *ctx, json_t *a)
{
	char id[128];
	struct mail_got m = {0};
	json_t *r;
	int rc = op_mail_pick(ctx, a, id, sizeof id);
	if (rc < 0)
		return NULL;
	if (rc > 0)
		rc = store_mail_get(ctx->app->store, id, &m);
	if (rc == 0 && json_object_get(a, "query") != NULL)
		return op_fail(ctx, 404, "not_found", "no message matches the query");
	if (rc == 0)
		return op_fail(ctx, 404, "not_found", "no message %.64s", id);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the message could not be read");
	const char *uid = json_string_value(json_object_get(m.summary, "ID"));
	if (json_is_true(json_object_get(a, "raw"))) {
		char *b = base64_encode(m.raw, m.len);
		r = json_pack("{s:s, s:s}", "ID", uid, "RawBase64", b);
		free(b);
	} else if (json_is_true(json_object_get(a, "headers"))) {
		r = mime_headers(m.raw, m.len);
	} else {
		r = mime_message(m.raw, m.len, m.summary);
		const char *only = json_is_true(json_object_get(a, "html")) ? "HTML" :
		    json_is_true(json_object_get(a, "text")) ? "Text" : NULL;
		if (only != NULL) {
			json_t *full = r;
			r = json_pack("{s:s, s:O}", "ID", uid, only, json_object_get(full, only));
			json_decref(full);
		}
		/* Reading the message marks it read, as Mailpit does. */
		json_t *ids = json_pack("[s]", uid);
		int64_t n;
		store_mail_change(ctx->app->store, ids, 1, &n);
		json_decref(ids);
	}
	json_decref(m.summary);
	free(m.raw);
	return r;
}

/* The IDs argument: an array, or NULL (all). */
static json_t *
ids_arg(json_t *a)
{
	json_t *ids = json_object_get(a, "ids");
	return json_array_size(ids) > 0 ? ids : NULL;
}

/*
 * The messages args name: their ids, those matching its query (*found,
 * the caller's), or NULL for all; false with ctx->err set, or with *none
 * when the query matched nothing.
 */
static bool
target_ids(struct op_ctx *ctx, json_t *a, json_t **ids, json_t **found, bool *none)
{
	*ids = ids_arg(a);
	*found = NULL;
	*none = false;
	if (json_object_get(a, "query") != NULL && *ids != NULL) {
		op_fail(ctx, 422, "invalid_field", "give 'ids' or 'query', not both");
		return false;
	}
	if (json_string_value(json_object_get(a, "query")) == NULL)
		return true;
	struct scan s = {.ids = json_array()};
	bool ok = scan_mailbox(ctx, a, &s);
	json_decref(s.first);
	if (!ok || json_array_size(s.ids) == 0) {
		json_decref(s.ids);
		*none = ok;
		return false;
	}
	*found = *ids = s.ids;
	return true;
}

/* Mark the given messages, those matching a query, or all, read or unread. */
static json_t *
read_run(struct op_ctx *ctx, json_t *a)
{
	json_t *r = json_object_get(a, "read"), *ids, *found;
	int64_t n = 0;
	bool none;
	if (!target_ids(ctx, a, &ids, &found, &none))
		return none ? json_pack("{s:i}", "updated", 0) : NULL;
	int rc = store_mail_change(ctx->app->store, ids, r == NULL || json_is_true(r), &n);
	json_decref(found);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the messages could not be changed");
	return json_pack("{s:I}", "updated", (json_int_t)n);
}

/* Delete the given messages, those matching a query, or all. */
static json_t *
clear_run(struct op_ctx *ctx, json_t *a)
{
	json_t *ids, *found;
	int64_t n = 0;
	bool none;
	if (!target_ids(ctx, a, &ids, &found, &none))
		return none ? json_pack("{s:i}", "deleted", 0) : NULL;
	int rc = store_mail_change(ctx->app->store, ids, -1, &n);
	json_decref(found);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the messages could not be deleted");
	log_info("mail deleted", "count=%lld", (long long)n);
	return json_pack("{s:I}", "deleted", (json_int_t)n);
}

/* mail.wait's scan: the newest match, and the newest message looked at. */
struct newest {
	struct mailsearch	*q;
	int64_t		 top;		/* scan only after this sequence next time */
	json_t		*first;
};

static int
newest_one(void *arg, json_t *sum, const char *search, int64_t seq)
{
	struct newest *w = arg;
	if (seq > w->top)
		w->top = seq;
	if (!mailsearch_match(w->q, sum, search))
		return 0;
	w->first = json_incref(sum);
	return 1;	/* newest first: this is it */
}

/*
 * The ID a mail route names, into uid: args' id, or for latest with a
 * query or tz (Mailpit's latest?query=) the newest message matching it.
 * 1; 0 when none matches; -1 with ctx->err set.
 */
int
op_mail_pick(struct op_ctx *ctx, json_t *a, char *uid, size_t n)
{
	const char *id = json_string_value(json_object_get(a, "id"));
	struct newest w = {0};
	if (json_object_get(a, "query") == NULL && json_object_get(a, "tz") == NULL) {
		snprintf(uid, n, "%s", id ? id : "");
		return 1;
	}
	if (id == NULL || strcmp(id, "latest") != 0) {
		op_fail(ctx, 422, "invalid_field", "'query' and 'tz' go with the ID latest, not "
		    "%.64s", id ? id : "");
		return -1;
	}
	if (!query_arg(ctx, a, &w.q))
		return -1;
	int rc = store_mail_scan(ctx->app->store, 0, newest_one, &w);
	mailsearch_free(w.q);
	if (rc < 0) {
		op_fail(ctx, 500, "internal", "the mailbox could not be read");
		return -1;
	}
	if (w.first == NULL)
		return 0;
	snprintf(uid, n, "%s", json_string_value(json_object_get(w.first, "ID")));
	json_decref(w.first);
	return 1;
}

/* The newest message matching the query: one already there, or the next to arrive. */
static json_t *
wait_run(struct op_ctx *ctx, json_t *a)
{
	int64_t timeout = 30000;
	const char *t = json_string_value(json_object_get(a, "timeout"));
	if (t != NULL && (!duration_parse(t, &timeout) || timeout > 3600000))
		return op_fail(ctx, 422, "invalid_field", "'timeout' must be a duration up to 1h");
	struct newest w = {0};
	bool waiting = false;
	int64_t deadline = time_mono_ms() + timeout;
	if (!query_arg(ctx, a, &w.q))
		return NULL;
	for (;;) {
		pthread_mutex_lock(&arrival_lock);
		uint64_t seen = arrivals;
		pthread_mutex_unlock(&arrival_lock);
		/*
		 * Scan after noting the arrivals seen: nothing can slip between.
		 * Newest first, to the first match; and after the first scan only
		 * what arrived since, so a wait costs O(new mail), not O(mailbox)
		 * per arrival.
		 */
		if (store_mail_scan(ctx->app->store, w.top, newest_one, &w) < 0) {
			mailsearch_free(w.q);
			return op_fail(ctx, 500, "internal", "the mailbox could not be read");
		}
		if (w.first != NULL) {
			mailsearch_free(w.q);
			return w.first;
		}
		if (!waiting)
			log_info("mail wait started", "query=\"%s\" timeout_ms=%lld",
			    json_string_value(json_object_get(a, "query")) ?
			    json_string_value(json_object_get(a, "query")) : "", (long long)timeout);
		waiting = true;
		pthread_mutex_lock(&arrival_lock);
		int64_t left;
		while (arrivals == seen && (left = deadline - time_mono_ms()) > 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += left / 1000;
			ts.tv_nsec += (left % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&arrival, &arrival_lock, &ts);
		}
		bool more = arrivals != seen;
		pthread_mutex_unlock(&arrival_lock);
		if (!more)
			break;
	}
	mailsearch_free(w.q);
	return op_fail(ctx, 408, "timeout", "no matching message arrived in time");
}

/* Mailpit's /api/v1/info: version, database, mailbox and SMTP counts. */
static json_t *
info_run(struct op_ctx *ctx, json_t *a)
{
	json_t *counts = NULL;
	char db[4096];
	int64_t size = 0;
	(void)a;
	if (store_mail_list(ctx->app->store, 0, 0, NULL, &counts) <= 0 ||
	    store_size(ctx->app->store, db, sizeof db, &size) < 0) {
		json_decref(counts);
		return op_fail(ctx, 500, "internal", "the mailbox could not be read");
	}
	json_t *r = json_pack("{s:s, s:s, s:s, s:I, s:O, s:O, s:{}, s:{s:I, s:I, s:I}}",
	    "Version", ctx->app->version, "LatestVersion", "", "Database", db,
	    "DatabaseSize", (json_int_t)size, "Messages", json_object_get(counts, "total"),
	    "Unread", json_object_get(counts, "unread"), "Tags", "RuntimeStats",
	    "Uptime", (json_int_t)((ctx->now - ctx->app->started_at) / 1000),
	    "SMTPAccepted", (json_int_t)metrics_get(C_SMTP_ACCEPTED),
	    "SMTPRejected", (json_int_t)metrics_get(C_SMTP_REJECTED));
	json_decref(counts);
	return r;
}

const struct op_impl op_mail_info_impl = {.op = &op_mail_info, .fn = info_run};
const struct op_impl op_mail_list_impl = {.op = &op_mail_list, .fn = list_run};
const struct op_impl op_mail_show_impl = {.op = &op_mail_show, .fn = show_run};
const struct op_impl op_mail_read_impl = {.op = &op_mail_read, .fn = read_run};
const struct op_impl op_mail_clear_impl = {.op = &op_mail_clear, .fn = clear_run};
const struct op_impl op_mail_wait_impl = {.op = &op_mail_wait, .fn = wait_run};
