/*
 * mailer — the delivery worker: a few threads, each claiming due
 * deliveries from the store and carrying them out: email through the
 * relay, Web Push to push services, webhooks to the application's
 * endpoints. A claim counts an attempt; a crash leaves claims that the
 * next start releases, so each is sent at least once, and a repeat
 * carries the same Message-ID or webhook-id.
 */
#define _GNU_SOURCE
#include "mailer.h"

#include <openssl/sha.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "config.h"
#include "digest.h"
#include "events.h"
#include "lazylib.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "prefs.h"
#include "store.h"
#include "template.h"
#include "text.h"
#include "util.h"
#include "outbound.h"
#include "webhook.h"
#include "webpush.h"

#define BATCH		8		/* deliveries one claim takes */
#define IDLE_MS		60000		/* look at the outbox at least this often */

struct mailer {
	struct app	*app;
	const struct config *cfg;
	char		*relay;
	char		 domain[256];	/* of the From address: Message-IDs end in it */
	char		*envelope_from;
	struct worker	*workers;
	int		 nthreads;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	bool		 stop;
	uint64_t	 kicks;
};

/* One attempt's outcome. */
struct attempt {
	bool		 ok;
	bool		 permanent;	/* refused for good (a relay's 5xx, a push service's 4xx) */
	int64_t		 retry_after;	/* ms the other side asked to wait; 0: none */
	char		 error[CURL_ERROR_SIZE + 160];
};

/* The upload cursor curl reads the message from. */
struct upload {
	const char	*data;
	size_t		 len, off;
};

static size_t
upload_read(char *dst, size_t size, size_t n, void *arg)
{
	struct upload *u = arg;
	size_t want = size * n, left = u->len - u->off;
	if (want > left)
		want = left;
	memcpy(dst, u->data + u->off, want);
	u->off += want;
	return want;
}

/*
 * Connections each of a worker's two handles keeps open (curl's cache):
 * the relay is one host, push services and webhooks are several.
 */
#define HANDLE_CONNS	4
/* Every socket a worker's handles may hold: their caches and one being opened each. */
#define WORKER_FDS	(2 * (HANDLE_CONNS + 1))

/*
 * One worker thread and the sockets its handles have open, every one of
 * them: a call that hangs may be on a kept-alive connection older than
 * the last one opened, and stopping shuts them all down.
 */
struct worker {
	struct mailer	*m;
	pthread_t	 thread;
	int		 fds[WORKER_FDS];	/* -1: free; guarded by m->lock */
	struct http_guard guard;	/* of the web handle's sockets */
};

/* Keep fd among the worker's open sockets, to shut down at stop. */
static curl_socket_t
track_socket(struct worker *w, curl_socket_t fd)
{
	if (fd == CURL_SOCKET_BAD)
		return fd;
	pthread_mutex_lock(&w->m->lock);
	for (int i = 0; i < WORKER_FDS; i++)
		if (w->fds[i] < 0) {
			w->fds[i] = fd;
			break;
		}
	if (w->m->stop)
		shutdown(fd, SHUT_RDWR);
	pthread_mutex_unlock(&w->m->lock);
	return fd;
}

/* curl opens its sockets here, so that a stopping notifyd can shut them down. */
static curl_socket_t
open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	(void)purpose;
	return track_socket(arg, http_guarded_socket(NULL, a));
}

/* The same for URLs notifyd was given: never to a private address unless allowed. */
static curl_socket_t
open_web_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct worker *w = arg;
	(void)purpose;
	return track_socket(w, http_guarded_socket(&w->guard, a));
}

static int
close_socket(void *arg, curl_socket_t fd)
{
	struct worker *w = arg;
	pthread_mutex_lock(&w->m->lock);
	for (int i = 0; i < WORKER_FDS; i++)
		if (w->fds[i] == fd)
			w->fds[i] = -1;
	pthread_mutex_unlock(&w->m->lock);
	return close(fd);
}

/* Send one message to the relay on the thread's handle. */
static void
relay_send(struct mailer *m, CURL *curl, const char *rcpt, const struct buf *msg,
    struct attempt *a)
{
	struct curl_slist *to = NULL;
	struct upload u = {msg->data, msg->len, 0};
	char rcpt_arg[400], errbuf[CURL_ERROR_SIZE] = "";
	long code = 0;

	*a = (struct attempt){0};
	if (*m->relay == '\0') {
		snprintf(a->error, sizeof a->error, "no relay: set [mailer] relay, or turn the "
		    "SMTP sink on");
		return;
	}
	snprintf(rcpt_arg, sizeof rcpt_arg, "<%s>", rcpt);
	to = curl_slist_append(NULL, rcpt_arg);
	/* Every option is set on every attempt (no reset: the socket callbacks must stay). */
	curl_easy_setopt(curl, CURLOPT_URL, m->relay);
	curl_easy_setopt(curl, CURLOPT_PROXY, "");	/* never from the environment */
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_MAIL_FROM, m->envelope_from);
	curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, to);
	curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(curl, CURLOPT_READFUNCTION, upload_read);
	curl_easy_setopt(curl, CURLOPT_READDATA, &u);
	curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg->len);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)m->cfg->mailer_timeout);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(m->cfg->mailer_timeout < 10000 ? m->cfg->mailer_timeout : 10000));
	if (strncmp(m->relay, "smtp://", 7) == 0) {
		const char *tls = m->cfg->mailer_starttls;
		curl_easy_setopt(curl, CURLOPT_USE_SSL, strcmp(tls, "required") == 0 ?
		    (long)CURLUSESSL_ALL : strcmp(tls, "try") == 0 ? (long)CURLUSESSL_TRY :
		    (long)CURLUSESSL_NONE);
	}
	if (*m->cfg->mailer_ca_file != '\0')
		curl_easy_setopt(curl, CURLOPT_CAINFO, m->cfg->mailer_ca_file);
	if (*m->cfg->mailer_username != '\0') {
		curl_easy_setopt(curl, CURLOPT_USERNAME, m->cfg->mailer_username);
		curl_easy_setopt(curl, CURLOPT_PASSWORD, m->cfg->mailer_password);
	}
	CURLcode rc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(to);
	if (rc == CURLE_OK) {
		a->ok = true;
		return;
	}
	a->permanent = code >= 500 && code < 600;
	snprintf(a->error, sizeof a->error, "%s", *errbuf ? errbuf : curl_easy_strerror(rc));
	if (code > 0) {
		size_t l = strlen(a->error);
		snprintf(a->error + l, sizeof a->error - l, " (reply %ld)", code);
	}
}

/* The wait before attempt n + 1: base * 2^(n-1), give or take a quarter. */
static int64_t
backoff(const struct mailer *m, int attempts, unsigned *seed)
{
	int shift = attempts - 1 < 20 ? attempts - 1 : 20;
	int64_t d = m->cfg->mailer_retry_base << shift;
	return d * 3 / 4 + (int64_t)((double)rand_r(seed) / RAND_MAX * (double)(d / 2));
}

static bool
stopping(struct mailer *m)
{
	pthread_mutex_lock(&m->lock);
	bool stop = m->stop;
	pthread_mutex_unlock(&m->lock);
	return stop;
}

/* Each channel's counters and name in the log. */
static const struct {
	const char	*sent, *failed, *retried, *abandoned;
	enum counter	 c_sent, c_failed, c_retried;
} kinds[] = {
	{"email sent", "email failed", "email attempt failed",
	    "email attempt abandoned: stopping", C_EMAIL_SENT, C_EMAIL_FAILED, C_EMAIL_RETRIED},
	{"push sent", "push failed", "push attempt failed",
	    "push attempt abandoned: stopping", C_PUSH_SENT, C_PUSH_FAILED, C_PUSH_RETRIED},
	{"webhook sent", "webhook failed", "webhook attempt failed",
	    "webhook attempt abandoned: stopping", C_WEBHOOK_SENT, C_WEBHOOK_FAILED,
	    C_WEBHOOK_RETRIED},
};

/*
 * Record what became of an attempt at d: sent, a retry after backoff (or
 * as long as the other side asked), or failed once it was refused for good
 * or the attempts are used up. id names the message in the log.
 */
static void
record(struct mailer *m, const struct delivery *d, const struct attempt *a, unsigned *seed,
    const char *id)
{
	struct store *st = m->app->store;
	int64_t now = time_now_ms();
	int k = d->channel == CHANNEL_PUSH ? 1 : d->channel == CHANNEL_WEBHOOK ? 2 : 0;
	if (!a->ok && stopping(m)) {
		/* Stopping: the claim stays, and the next start takes the delivery up again. */
		log_info(kinds[k].abandoned, "delivery=%lld", (long long)d->id);
		return;
	}
	if (a->ok) {
		metrics_add(kinds[k].c_sent, 1);
		store_delivery_finish(st, d->id, DS_SENT, 0, NULL, now);
		log_info(kinds[k].sent, "delivery=%lld attempt=%d id=%s", (long long)d->id,
		    d->attempts, id);
	} else if (a->permanent || d->attempts >= m->cfg->mailer_max_attempts) {
		metrics_add(kinds[k].c_failed, 1);
		store_delivery_finish(st, d->id, DS_FAILED, 0, a->error, now);
		log_error(kinds[k].failed, "delivery=%lld attempts=%d error=%s",
		    (long long)d->id, d->attempts, a->error);
	} else {
		int64_t wait = backoff(m, d->attempts, seed);
		if (a->retry_after > wait)
			wait = a->retry_after;
		metrics_add(kinds[k].c_retried, 1);
		store_delivery_finish(st, d->id, DS_PENDING, now + wait, a->error, now);
		log_warn(kinds[k].retried, "delivery=%lld attempt=%d retry_in_ms=%lld error=%s",
		    (long long)d->id, d->attempts, (long long)wait, a->error);
	}
}

/* An email to send: to whom, and its rendered parts. */
struct email {
	json_t		*user;		/* the recipient's profile */
	struct buf	 subject, text, html, unsub;
};

static void
email_init(struct email *e)
{
	e->user = NULL;
	buf_init(&e->subject);
	buf_init(&e->text);
	buf_init(&e->html);
	buf_init(&e->unsub);
}

static void
email_free(struct email *e)
{
	json_decref(e->user);
	buf_free(&e->subject);
	buf_free(&e->text);
	buf_free(&e->html);
	buf_free(&e->unsub);
}

/* Render the email parts of type t for notification n (which gains unsubscribe_url). */
static void
email_render(struct mailer *m, const struct template_set *set, const struct template_type *t,
    json_t *n, struct email *e)
{
	template_render(set, t, TP_SUBJECT, n, e->user, &e->subject);
	template_render(set, t, TP_TEXT, n, e->user, &e->text);
	/* The layout sees the unsubscribe link. */
	if (*m->cfg->mailer_unsubscribe_url != '\0') {
		struct tpl *u;
		char err[256];
		if (tpl_compile(m->cfg->mailer_unsubscribe_url, strlen(m->cfg->mailer_unsubscribe_url),
		    "unsubscribe_url", &u, err, sizeof err) == 0) {
			json_t *ctx = json_pack("{s:O}", "user", e->user);
			tpl_render(u, &ctx, 1, false, &e->unsub);
			json_decref(ctx);
			tpl_free(u);
			json_object_set_new(n, "unsubscribe_url",
			    json_string(e->unsub.data ? e->unsub.data : ""));
		}
	}
	template_render(set, t, TP_HTML, n, e->user, &e->html);
}

/*
 * Send e for delivery d, under the Message-ID every attempt of d carries,
 * and record the outcome: sent, a retry after backoff, or failed.
 */
static void
email_send(struct mailer *m, CURL *curl, const struct delivery *d, unsigned *seed,
    struct email *e)
{
	struct attempt a = {0};
	struct buf msg;
	char mid[320];
	int64_t now = time_now_ms();

	buf_init(&msg);
	/* The delivery's id: the same on every attempt, whatever the notification's id became. */
	snprintf(mid, sizeof mid, "notifyd.%lld@%s", (long long)d->id, m->domain);
	struct mime_out mo = {
		.from = m->cfg->mailer_from,
		.to_name = json_string_value(json_object_get(e->user, "name")),
		.to = json_string_value(json_object_get(e->user, "email")),
		.subject = e->subject.data ? e->subject.data : "",
		.text = e->text.data ? e->text.data : "",
		.html = e->html.data ? e->html.data : "",
		.message_id = mid,
		.date = now,
		.unsubscribe = e->unsub.data,
	};
	if (!mime_compose(&mo, &msg)) {
		snprintf(a.error, sizeof a.error, "the message could not be composed "
		    "(is [mailer] from an address?)");
		a.permanent = true;
	} else {
		relay_send(m, curl, mo.to, &msg, &a);
	}
	buf_free(&msg);
	record(m, d, &a, seed, mid);
}

/* Could not even start on d: try again soon, without giving up on it. */
static void
release(struct mailer *m, const struct delivery *d, const char *why)
{
	int64_t now = time_now_ms();
	store_delivery_finish(m->app->store, d->id, DS_PENDING, now + m->cfg->mailer_retry_base,
	    why, now);
}

/* What carrying out a notification's delivery needs: it, its user, their preferences, its type. */
struct about {
	json_t		*n, *user;
	struct prefs	*p;
	struct template_set *set;
	const struct template_type *t;
};

/*
 * Read what delivery d is about: 1, or 0 when it cannot be (the
 * notification deleted meanwhile, with its deliveries, or a failure).
 */
static int
about_load(struct mailer *m, const struct delivery *d, struct about *a)
{
	struct store *st = m->app->store;
	*a = (struct about){0};
	if ((a->p = calloc(1, sizeof *a->p)) == NULL ||
	    store_delivery_notification(st, d->id, &a->n) <= 0)
		return 0;
	const char *uid = json_string_value(json_object_get(a->n, "user"));
	if (store_user_get(st, uid, &a->user) <= 0 || store_prefs_get(st, uid, a->p) < 0)
		return 0;
	a->set = templates_current();
	a->t = template_set_type_or_default(a->set, json_string_value(json_object_get(a->n,
	    "type")));
	return 1;
}

static void
about_free(struct about *a)
{
	template_set_unref(a->set);
	json_decref(a->n);
	json_decref(a->user);
	free(a->p);
}

/* The email of a notification's delivery d: rendered from its type's templates, sent. */
static void
deliver_email(struct mailer *m, CURL *curl, const struct delivery *d, unsigned *seed)
{
	struct store *st = m->app->store;
	struct about ab;
	struct email e;
	int64_t now = time_now_ms();

	email_init(&e);
	if (!about_load(m, d, &ab))
		goto release;
	e.user = json_incref(ab.user);
	json_t *n = ab.n;
	const struct template_type *t = ab.t;
	const char *to = json_string_value(json_object_get(e.user, "email"));
	if (!t->critical && ab.p->email_if_unread > 0 &&
	    !json_is_null(json_object_get(n, "read_at"))) {
		store_delivery_finish(st, d->id, DS_CANCELLED, 0, "read in the app before the email "
		    "was due", now);
		goto done;
	}
	if (to == NULL || *to == '\0') {
		store_delivery_finish(st, d->id, DS_SKIPPED, 0, "no email address", now);
		goto done;
	}
	email_render(m, ab.set, t, n, &e);
	email_send(m, curl, d, seed, &e);
	goto done;
release:
	release(m, d, "the notification or user could not be read");
done:
	about_free(&ab);
	email_free(&e);
}

/* The email of a digest: its notifications, from the digest template, in the user's zone. */
static void
deliver_digest(struct mailer *m, CURL *curl, const struct delivery *d, unsigned *seed)
{
	struct store *st = m->app->store;
	const struct config *cfg = m->cfg;
	json_t *dg = NULL, *n = NULL;
	struct template_set *set = NULL;
	struct email e;
	char inbox[400];

	email_init(&e);
	if (store_digest_get(st, d->digest_id, cfg->digest_include_read,
	    (int)cfg->digest_max_items, &dg) <= 0 ||
	    store_user_get(st, json_string_value(json_object_get(dg, "user")), &e.user) <= 0) {
		release(m, d, "the digest or its user could not be read");
		goto done;
	}
	const char *to = json_string_value(json_object_get(e.user, "email"));
	if (to == NULL || *to == '\0') {
		store_delivery_finish(st, d->id, DS_SKIPPED, 0, "no email address", time_now_ms());
		goto done;
	}
	const char *zone = json_string_value(json_object_get(e.user, "tz"));
	const struct tz *z = zone ? tz_get(zone) : NULL;
	if (*cfg->digest_inbox_url != '\0')
		snprintf(inbox, sizeof inbox, "%s", cfg->digest_inbox_url);
	else
		snprintf(inbox, sizeof inbox, "%s/inbox", m->app->base_url);
	n = digest_notification(dg, z ? z : tz_server(), inbox, cfg->digest_max_items);
	set = templates_current();
	email_render(m, set, template_set_type_or_default(set, "digest"), n, &e);
	email_send(m, curl, d, seed, &e);
done:
	template_set_unref(set);
	json_decref(dg);
	json_decref(n);
	email_free(&e);
}

/* An HTTP result as an attempt: a refused address and a 4xx are for good. */
static void
attempt_of(const struct http_result *r, struct attempt *a)
{
	*a = (struct attempt){0};
	a->ok = r->ok;
	a->retry_after = r->retry_after;
	a->permanent = r->refused;
	snprintf(a->error, sizeof a->error, "%s", r->error);
}

/* A push message's Urgency, from the notification's priority. */
static const char *
urgency(const char *priority)
{
	if (priority == NULL)
		return "normal";
	if (strcmp(priority, "low") == 0)
		return "low";
	if (strcmp(priority, "high") == 0 || strcmp(priority, "urgent") == 0)
		return "high";
	return "normal";
}

/*
 * The push message of n: its id, type, title, body, url and priority as
 * JSON, the body cut (at a character) until it fits one record.
 */
static char *
push_payload(json_t *n)
{
	const char *body = json_string_value(json_object_get(n, "body"));
	size_t blen = body ? strlen(body) : 0;
	for (;;) {
		json_t *o = json_pack("{s:O, s:O, s:O, s:s%, s:O, s:O, s:O}",
		    "id", json_object_get(n, "id"), "type", json_object_get(n, "type"),
		    "title", json_object_get(n, "title"), "body", body ? body : "", blen,
		    "url", json_object_get(n, "url"), "priority", json_object_get(n, "priority"),
		    "created_at", json_object_get(n, "created_at"));
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (s == NULL || strlen(s) <= WEBPUSH_MAX - WEBPUSH_OVERHEAD || blen == 0)
			return s;
		size_t over = strlen(s) - (WEBPUSH_MAX - WEBPUSH_OVERHEAD);
		free(s);
		blen = over < blen ? blen - over : 0;
		while (blen > 0 && ((unsigned char)body[blen] & 0xc0) == 0x80)
			blen--;	/* not inside a character */
	}
}

/* Topic: a collapse key of at most 32 base64url characters. */
static void
push_topic(json_t *n, char out[33])
{
	unsigned char md[32];
	char b64[48], src[64];
	const char *key = json_string_value(json_object_get(n, "dedupe_key"));
	if (key == NULL) {
		snprintf(src, sizeof src, "notification:%lld",
		    (long long)json_integer_value(json_object_get(n, "id")));
		key = src;
	}
	SHA256((const unsigned char *)key, strlen(key), md);
	base64url_encode(md, sizeof md, b64);
	memcpy(out, b64, 32);
	out[32] = '\0';
}

/*
 * A push to one subscription: routed by the user's preferences now (off,
 * or held by quiet hours), encrypted for it, and POSTed. A subscription
 * the push service says is gone (404, 410) is removed.
 */
static void
deliver_push(struct mailer *m, struct worker *w, CURL *curl, const struct delivery *d,
    unsigned *seed)
{
	struct store *st = m->app->store;
	json_t *sub = NULL;
	struct about ab = {0};
	struct curl_slist *h = NULL;
	char *payload = NULL, *vapid = NULL;
	struct buf body;
	struct attempt a = {0};
	int64_t now = time_now_ms();
	long status = 0;

	buf_init(&body);
	int rc = store_push_get(st, d->target, &sub);
	if (rc == 0) {
		store_delivery_finish(st, d->id, DS_SKIPPED, 0, "the subscription was removed", now);
		goto done;
	}
	if (rc < 0 || !about_load(m, d, &ab))
		goto release;
	json_t *n = ab.n;
	const struct template_type *t = ab.t;
	const char *prio = json_string_value(json_object_get(n, "priority"));
	struct route_in in = {json_string_value(json_object_get(n, "type")), t->channels,
	    t->critical, prio && strcmp(prio, "urgent") == 0, false,
	    json_string_value(json_object_get(ab.user, "tz")), now};
	struct routing r;
	prefs_route_push(ab.p, &in, &r);
	if (r.status == DS_SKIPPED || r.status == DS_DEFERRED) {
		store_delivery_finish(st, d->id, r.status, r.next_at, r.why, now);
		goto done;
	}
	if (!t->critical && !json_is_null(json_object_get(n, "read_at"))) {
		store_delivery_finish(st, d->id, DS_CANCELLED, 0, "read before the push was due",
		    now);
		goto done;
	}
	/* The keys were checked when the browser subscribed. */
	const char *k = json_string_value(json_object_get(sub, "p256dh"));
	const char *au = json_string_value(json_object_get(sub, "auth"));
	const char *endpoint = json_string_value(json_object_get(sub, "endpoint"));
	unsigned char ua[128], auth[64];
	char hdr[128], topic[33];
	if (strlen(k) >= sizeof ua || strlen(au) >= sizeof auth ||
	    base64url_decode(k, strlen(k), ua) != WEBPUSH_KEY_LEN ||
	    base64url_decode(au, strlen(au), auth) != WEBPUSH_AUTH_LEN ||
	    (payload = push_payload(n)) == NULL ||
	    webpush_encrypt(payload, strlen(payload), ua, auth, NULL, NULL, NULL, &body) != 0 ||
	    (vapid = vapid_authorization(m->app->vapid, endpoint, m->cfg->push_subject, now)) ==
	    NULL) {
		a.permanent = true;
		snprintf(a.error, sizeof a.error, "the message could not be encrypted or signed");
		record(m, d, &a, seed, endpoint);
		goto done;
	}
	push_topic(n, topic);
	snprintf(hdr, sizeof hdr, "TTL: %lld", (long long)(m->cfg->push_ttl / 1000));
	h = curl_slist_append(h, hdr);
	h = curl_slist_append(h, "Content-Encoding: aes128gcm");
	h = curl_slist_append(h, "Content-Type: application/octet-stream");
	snprintf(hdr, sizeof hdr, "Urgency: %s", urgency(prio));
	h = curl_slist_append(h, hdr);
	snprintf(hdr, sizeof hdr, "Topic: %s", topic);
	h = curl_slist_append(h, hdr);
	char *authz = NULL;
	if (asprintf(&authz, "Authorization: %s", vapid) >= 0) {
		h = curl_slist_append(h, authz);
		free(authz);
	}
	struct http_result res;
	w->guard.allow_private = m->cfg->push_allow_private != 0;
	http_post(curl, &w->guard, endpoint, h, body.data, body.len, m->cfg->push_timeout, &res);
	attempt_of(&res, &a);
	status = res.status;
	if (status == 404 || status == 410) {
		/* The browser unsubscribed, or the push service forgot it: so do we. */
		store_push_remove(st, NULL, d->target);
		log_info("push subscription removed", "subscription=%lld status=%ld",
		    (long long)d->target, status);
		a.permanent = true;
		snprintf(a.error, sizeof a.error, "the push service answered %ld: the subscription "
		    "is gone and was removed", status);
	} else if (status == 413) {
		a.permanent = true;
		snprintf(a.error, sizeof a.error, "the push service answered 413: the message is "
		    "too large");
	} else if (status >= 400 && status < 500 && status != 429) {
		a.permanent = true;	/* a 400, 401 or 403 will not change by itself */
	}
	if (status != 404 && status != 410)
		store_push_result(st, d->target, a.ok ? NULL : a.error, time_now_ms());
	record(m, d, &a, seed, endpoint);
	goto done;
release:
	release(m, d, "the subscription, notification or user could not be read");
done:
	curl_slist_free_all(h);
	about_free(&ab);
	json_decref(sub);
	free(payload);
	free(vapid);
	buf_free(&body);
}

/*
 * A webhook call to one endpoint: the notification, signed as Standard
 * Webhooks say, under an id the same on every attempt. A 410 disables the
 * endpoint at once; other failures do when they have gone on for
 * [webhook] disable_after.
 */
static void
deliver_webhook(struct mailer *m, struct worker *w, CURL *curl, const struct delivery *d,
    unsigned *seed)
{
	struct store *st = m->app->store;
	json_t *hook = NULL, *n = NULL;
	char *body = NULL, id[64];
	struct attempt a = {0};
	int64_t now = time_now_ms();
	long status = 0;

	int rc = store_webhook_get(st, d->target, &hook);
	if (rc == 0 || (rc > 0 && !json_is_null(json_object_get(hook, "disabled_at")))) {
		store_delivery_finish(st, d->id, DS_SKIPPED, 0, rc == 0 ? "the endpoint was removed" :
		    "the endpoint is disabled", now);
		goto done;
	}
	if (rc < 0 || store_delivery_notification(st, d->id, &n) <= 0) {
		release(m, d, "the endpoint or notification could not be read");
		goto done;
	}
	snprintf(id, sizeof id, "msg_notifyd_%lld", (long long)d->id);
	body = webhook_body(n, json_string_value(json_object_get(hook, "format")),
	    "notification.created", now);
	if (body == NULL) {
		release(m, d, "the call could not be made");
		goto done;
	}
	struct http_result res;
	w->guard.allow_private = m->cfg->webhook_allow_private != 0;
	webhook_call(curl, &w->guard, hook, id, body, now, m->cfg->webhook_timeout, &res);
	attempt_of(&res, &a);
	status = res.status;
	/*
	 * A failure is always recorded; a success only when it changes what
	 * the endpoint shows, or a second after the last: one more commit per
	 * call would halve the rate of a busy endpoint (bench/delivery.sh).
	 */
	bool disabled = false;
	int64_t then = 0, done_at = time_now_ms();
	time_parse_rfc3339(json_string_value(json_object_get(hook, "last_attempt_at")), &then);
	if (!a.ok || json_integer_value(json_object_get(hook, "failures")) != 0 ||
	    json_integer_value(json_object_get(hook, "last_status")) != status ||
	    done_at - then >= 1000)
		store_webhook_result(st, d->target, (int)status, a.ok ? NULL : a.error, done_at,
		    status == 410 ? 0 : m->cfg->webhook_disable_after, &disabled);
	if (disabled) {
		log_error("webhook endpoint disabled", "webhook=%lld status=%ld error=%s",
		    (long long)d->target, status, a.error);
		a.permanent = true;
	}
	record(m, d, &a, seed, id);
done:
	json_decref(hook);
	json_decref(n);
	free(body);
}

/* Sleep until the next delivery falls due, a kick, or stop; false on stop. */
static bool
idle(struct mailer *m, uint64_t seen)
{
	int64_t next = 0, now = time_now_ms(), until = now + IDLE_MS;
	if (store_deliveries_next(m->app->store, &next) > 0 && next < until)
		until = next;
	if (until < now + 10)
		until = now + 10;	/* a failing database is not polled in a tight loop */
	struct timespec ts = {until / 1000, (long)(until % 1000) * 1000000};
	pthread_mutex_lock(&m->lock);
	while (!m->stop && m->kicks == seen && time_now_ms() < until)
		if (pthread_cond_timedwait(&m->cond, &m->lock, &ts) != 0)
			break;
	bool go = !m->stop;
	pthread_mutex_unlock(&m->lock);
	return go;
}

/* A worker's handle for the relay, or for HTTP (push, webhooks); NULL without libcurl. */
static CURL *
worker_handle(struct worker *w, bool http)
{
	CURL *c = curl_easy_init();
	if (c != NULL) {
		curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, http ? open_web_socket : open_socket);
		curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, w);
		curl_easy_setopt(c, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
		curl_easy_setopt(c, CURLOPT_CLOSESOCKETDATA, w);
		curl_easy_setopt(c, CURLOPT_MAXCONNECTS, (long)HANDLE_CONNS);
	}
	return c;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct mailer *m = w->m;
	struct delivery batch[BATCH];
	unsigned seed = (unsigned)time_mono_ms() ^ (unsigned)(uintptr_t)&batch;
	/*
	 * One handle for the relay, one for HTTP: each keeps its connections.
	 * Made when first needed, so that libcurl is loaded only then.
	 */
	CURL *handles[2] = {NULL, NULL};

	for (;;) {
		size_t n = 0;
		pthread_mutex_lock(&m->lock);
		bool stop = m->stop;
		uint64_t seen = m->kicks;
		pthread_mutex_unlock(&m->lock);
		if (stop)
			break;
		if (store_deliveries_claim(m->app->store, time_now_ms(), batch, BATCH, &n) < 0 ||
		    n == 0) {
			if (!idle(m, seen))
				break;
			continue;
		}
		if (n == BATCH)
			mailer_kick(m);
		for (size_t i = 0; i < n; i++) {
			bool http = batch[i].notification_id != 0 &&
			    (batch[i].channel == CHANNEL_PUSH || batch[i].channel == CHANNEL_WEBHOOK);
			CURL *c = handles[http] ? handles[http] : (handles[http] = worker_handle(w, http));
			if (c == NULL) {
				store_delivery_finish(m->app->store, batch[i].id, DS_PENDING,
				    time_now_ms() + m->cfg->mailer_retry_base, "libcurl failed to start",
				    time_now_ms());
				continue;
			}
			if (batch[i].notification_id == 0)
				deliver_digest(m, c, &batch[i], &seed);
			else if (batch[i].channel == CHANNEL_PUSH)
				deliver_push(m, w, c, &batch[i], &seed);
			else if (batch[i].channel == CHANNEL_WEBHOOK)
				deliver_webhook(m, w, c, &batch[i], &seed);
			else
				deliver_email(m, c, &batch[i], &seed);
		}
	}
	for (int i = 0; i < 2; i++)
		if (handles[i] != NULL)
			curl_easy_cleanup(handles[i]);
	return NULL;
}

/* The bare address of a From value, for MAIL FROM; and its domain. */
static bool
parse_from(struct mailer *m, const char *from)
{
	const char *lt = strrchr(from, '<'), *gt = lt ? strchr(lt, '>') : NULL;
	const char *a = lt && gt ? lt + 1 : from;
	size_t len = lt && gt ? (size_t)(gt - a) : strlen(from);
	const char *at = memchr(a, '@', len);
	if (len == 0 || at == NULL || at == a || at == a + len - 1 || memchr(a, ' ', len))
		return false;
	if (asprintf(&m->envelope_from, "<%.*s>", (int)len, a) < 0) {
		m->envelope_from = NULL;
		return false;
	}
	snprintf(m->domain, sizeof m->domain, "%.*s", (int)(a + len - at - 1), at + 1);
	return true;
}

static void
mailer_free(struct mailer *m)
{
	free(m->workers);
	free(m->relay);
	free(m->envelope_from);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m);
}

/*
 * The store queued something, or may have and not said: a worker looks at
 * once (sending starts with a digest's first batch).
 */
static void
on_event(const struct event *ev, void *arg)
{
	if (ev->type == EVENT_OUTBOX || ev->type == EVENT_RESYNC)
		mailer_kick(arg);
}

int
mailer_start(struct mailer **out, struct app *app, const char *relay, char *err, size_t errlen)
{
	struct mailer *m = calloc(1, sizeof *m);
	if (m == NULL) {
		snprintf(err, errlen, "mailer: out of memory");
		return -1;
	}
	m->app = app;
	m->cfg = app->cfg;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	if (*relay != '\0' && strncmp(relay, "smtp://", 7) != 0 && strncmp(relay, "smtps://", 8) != 0) {
		snprintf(err, errlen, "mailer.relay must be smtp://HOST:PORT or smtps://HOST:PORT");
		goto fail;
	}
	if (!parse_from(m, m->cfg->mailer_from)) {
		snprintf(err, errlen, "mailer.from must be an address or \"Name <address>\"");
		goto fail;
	}
	if ((m->relay = strdup(relay)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (store_deliveries_unclaim(app->store) < 0) {
		snprintf(err, errlen, "mailer: the outbox could not be read");
		goto fail;
	}
	m->workers = calloc((size_t)m->cfg->mailer_workers, sizeof *m->workers);
	for (int i = 0; m->workers && i < m->cfg->mailer_workers; i++) {
		m->workers[i] = (struct worker){.m = m, .guard = {false, false}};
		for (int k = 0; k < WORKER_FDS; k++)
			m->workers[i].fds[k] = -1;
		if (pthread_create(&m->workers[i].thread, NULL, worker_main, &m->workers[i]) != 0)
			break;
		m->nthreads++;
	}
	if (m->nthreads == 0) {
		snprintf(err, errlen, "mailer: cannot start a thread");
		goto fail;
	}
	events_subscribe(on_event, m);
	*out = m;
	return 0;
fail:
	mailer_free(m);
	return -1;
}

void
mailer_kick(struct mailer *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->kicks++;
	pthread_cond_signal(&m->cond);	/* one worker; it wakes another when there is more */
	pthread_mutex_unlock(&m->lock);
}

void
mailer_stop(struct mailer *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_broadcast(&m->cond);
	/* An attempt waiting on a silent relay ends now, not at its timeout. */
	for (int i = 0; i < m->nthreads; i++)
		for (int k = 0; k < WORKER_FDS; k++)
			if (m->workers[i].fds[k] >= 0)
				shutdown(m->workers[i].fds[k], SHUT_RDWR);
	pthread_mutex_unlock(&m->lock);
	for (int i = 0; i < m->nthreads; i++)
		pthread_join(m->workers[i].thread, NULL);
	events_unsubscribe(on_event, m);	/* the last that emitted were the workers */
	mailer_free(m);
}
