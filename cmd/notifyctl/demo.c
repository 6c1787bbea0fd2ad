/*
 * demo — the sneaker marketplace notifyd was born from, played against a
 * running notifyd through its public interfaces only: the REST API with an
 * API key, as the marketplace's services would call it, and the control
 * socket, as its operator (and cron) would. Each step says what it does in
 * one line, and checks what it promised: the email that must arrive does,
 * the one that must wait waits.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "util.h"

struct demo {
	const char		*sock;
	int			 fd;
	struct line_reader	 r;
	char			 host[256], port[16];	/* where the REST calls go */
	char			 base[320];	/* the links people open */
	char			 key[128];
	char			 run[12];	/* this run's mark, in addresses and keys */
	bool			 fast;
	int			 step, steps;
	int			 notifications, emails;
};

/* The people of the story. */
struct person {
	const char	*id, *name, *role;
	char		 tz[64];		/* copied: ben's is chosen at run time */
	char		 email[128];
	char		 token[1024];
};
static struct person people[] = {
	{"ava", "Ava Martin", "buyer", "Europe/London", "", ""},
	{"ben", "Ben Okafor", "buyer", "", "", ""},	/* a zone where it is night now */
	{"cleo", "Cleo Park", "seller", "America/New_York", "", ""},
};
enum { AVA, BEN, CLEO, NPEOPLE };

/* One operation over the control socket; its result, or the demo stops. */
static json_t *
ctl(struct demo *d, const char *cmd, json_t *args)
{
	json_t *reply = request(d->fd, &d->r, cmd, args);
	json_t *result = json_incref(json_object_get(reply, "result"));
	if (!json_is_true(json_object_get(reply, "ok")) || result == NULL) {
		json_t *e = json_object_get(reply, "error");
		die(EXIT_FAILED, "demo: %s: %s", cmd, json_string_value(json_object_get(e, "message")));
	}
	json_decref(reply);
	return result;
}

/*
 * One HTTP/1.1 request on a connection of its own: the status (0: no
 * answer, errno says why), and the body in out. notifyd answers every
 * call with a Content-Length and closes when asked, so reading to the end
 * is enough; a client this small keeps notifyctl free of libcurl.
 */
static int
http_call(struct demo *d, const char *method, const char *path, const char *body,
    struct buf *out)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	struct timeval tv = {60, 0};
	struct buf raw;
	char head[1024], chunk[8192];
	int fd = -1, status = 0;
	ssize_t n;

	if (getaddrinfo(d->host, d->port, &hints, &res) != 0) {
		errno = EHOSTUNREACH;
		return 0;
	}
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	size_t blen = body ? strlen(body) : 0;
	int hl = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s:%s\r\n"
	    "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", method, path, d->host, d->port,
	    d->key, blen);
	buf_init(&raw);
	if (hl > 0 && (size_t)hl < sizeof head && write_all(fd, head, (size_t)hl) == 0 &&
	    write_all(fd, body ? body : "", blen) == 0)
		while ((n = read(fd, chunk, sizeof chunk)) > 0)
			buf_put(&raw, chunk, (size_t)n);
	close(fd);
	const char *text = raw.data ? raw.data : "";
	const char *end = raw.len > 0 ? memmem(text, raw.len, "\r\n\r\n", 4) : NULL;
	if (end != NULL && sscanf(text, "HTTP/1.%*c %d", &status) == 1)
		buf_put(out, end + 4, raw.len - (size_t)(end + 4 - text));
	else
		errno = EPROTO;
	buf_free(&raw);
	return status;
}

/* One REST call with the services' API key; its JSON answer, or the demo stops. */
static json_t *
rest(struct demo *d, const char *method, const char *path, json_t *body)
{
	struct buf out;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	buf_init(&out);
	int status = http_call(d, method, path, text, &out);
	free(text);
	if (status == 0)
		die(EXIT_UNREACHABLE, "demo: %s http://%s:%s%s: %s", method, d->host, d->port, path,
		    strerror(errno));
	json_t *j = json_loadb(out.data ? out.data : "", out.len, 0, NULL);
	if (status < 200 || status > 299 || j == NULL) {
		json_t *e = json_object_get(j, "error");
		die(EXIT_FAILED, "demo: %s %s: %d %s", method, path, status,
		    e ? json_string_value(json_object_get(e, "message")) : "(no JSON answer)");
	}
	buf_free(&out);
	return j;
}

/* Narrate the next step, after the pause that lets a person watch the last. */
static void __attribute__((format(printf, 2, 3)))
say(struct demo *d, const char *fmt, ...)
{
	va_list ap;
	if (d->step > 0 && !d->fast)
		nanosleep(&(struct timespec){1, 0}, NULL);
	printf("[%2d/%d] ", ++d->step, d->steps);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Wait for the email to p whose subject has subject, and show it arriving. */
static void
expect_mail(struct demo *d, const struct person *p, const char *subject)
{
	char q[512];
	snprintf(q, sizeof q, "to:%s subject:\"%s\"", p->email, subject);
	json_t *m = ctl(d, "mail.wait", json_pack("{s:s, s:s}", "query", q, "timeout", "30s"));
	printf("         email to %s: \"%s\"\n", p->id, json_string_value(json_object_get(m, "Subject")));
	d->emails++;
	json_decref(m);
}

/* Send (the body is taken); the created notification (or {"count",...}). */
static json_t *
send_one(struct demo *d, json_t *body)
{
	json_t *r = rest(d, "POST", "/api/v1/notifications", body);
	json_t *c = json_object_get(r, "count");
	d->notifications += c ? (int)json_integer_value(c) : 1;
	return r;
}

/* How notification id's email went: its delivery's status and when it is next tried. */
static void
email_delivery(struct demo *d, const struct person *p, json_int_t id, char *status, size_t sn,
    char *next, size_t nn)
{
	char path[256];
	snprintf(path, sizeof path, "/api/v1/users/%s/notifications/%lld?deliveries=true", p->id,
	    (long long)id);
	json_t *n = rest(d, "GET", path, NULL), *dl;
	size_t i;
	snprintf(status, sn, "none");
	snprintf(next, nn, "%s", "");
	json_array_foreach(json_object_get(n, "deliveries"), i, dl)
		if (strcmp(json_string_value(json_object_get(dl, "channel")), "email") == 0) {
			snprintf(status, sn, "%s", json_string_value(json_object_get(dl, "status")));
			const char *at = json_string_value(json_object_get(dl, "next_attempt_at"));
			snprintf(next, nn, "%s", at ? at : "");
		}
	json_decref(n);
}

/* The time at ms in zone, by the C library's reading of the zone files (TZ). */
static void
local_time(const char *zone, int64_t ms, struct tm *tm)
{
	const char *was = getenv("TZ");
	char *saved = was ? strdup(was) : NULL;
	time_t t = (time_t)(ms / 1000);
	setenv("TZ", zone, 1);
	tzset();
	localtime_r(&t, tm);
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
}

/* A zone where it is between 23:00 and 05:59 now, so that quiet hours 22-07 hold. */
static void
night_zone(char *out, size_t n)
{
	static const char *const zones[] = {"Asia/Tokyo", "Pacific/Auckland", "Asia/Kolkata",
	    "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Pacific/Honolulu", NULL};
	int64_t now = time_now_ms();
	for (int i = 0; zones[i]; i++) {
		struct tm c;
		local_time(zones[i], now, &c);
		if (c.tm_hour >= 23 || c.tm_hour < 6) {
			snprintf(out, n, "%s", zones[i]);
			return;
		}
	}
	snprintf(out, n, "Asia/Tokyo");
}

/* The local time at ms in zone, as HH:MM. */
static void
local_hm(const char *zone, int64_t ms, char *out, size_t n)
{
	struct tm c;
	local_time(zone, ms, &c);
	snprintf(out, n, "%02d:%02d", c.tm_hour, c.tm_min);
}

static int64_t
parse_time(const char *s)
{
	struct tm tm = {0};
	if (s == NULL || strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) == NULL)
		return 0;
	return (int64_t)timegm(&tm) * 1000;
}

static void
usage(void)
{
	die(EXIT_USAGE, "usage: notifyctl demo [--fast]");
}

/* Where to reach a listener: its host and port, loopback when it listens on every address. */
static void
listener_addr(const char *listen, struct demo *d)
{
	const char *colon = strrchr(listen, ':');
	size_t hl = colon ? (size_t)(colon - listen) : 0;
	bool any = hl == 0 || strncmp(listen, "0.0.0.0", hl) == 0 || strncmp(listen, "[::]", hl) == 0;
	snprintf(d->host, sizeof d->host, "%.*s", any ? 9 : (int)hl, any ? "127.0.0.1" : listen);
	snprintf(d->port, sizeof d->port, "%s", colon ? colon + 1 : "8025");
}

static void
setup(struct demo *d)
{
	json_t *st = ctl(d, "status", json_object());
	const char *http = json_string_value(json_object_get(json_object_get(st, "listeners"), "http"));
	const char *smtp = json_string_value(json_object_get(json_object_get(st, "listeners"), "smtp"));
	if (http == NULL)
		die(EXIT_FAILED, "demo: notifyd's HTTP listener is off ([http] listen); the demo "
		    "calls the REST API");
	listener_addr(http, d);
	snprintf(d->base, sizeof d->base, "%s", json_string_value(json_object_get(st, "base_url")));
	if (smtp == NULL)
		printf("note: the SMTP sink is off, so the emails go to notifyd's relay, not to /mail\n");
	json_decref(st);

	/* Unique across runs, even two in one second, so that each finds its own mail. */
	snprintf(d->run, sizeof d->run, "%llx",
	    (unsigned long long)((time_now_ms() ^ ((int64_t)getpid() << 24)) & 0xffffff));
	char name[64];
	snprintf(name, sizeof name, "demo-marketplace-%s", d->run);
	json_t *k = ctl(d, "key.create", json_pack("{s:s}", "name", name));
	snprintf(d->key, sizeof d->key, "%s", json_string_value(json_object_get(k, "key")));
	json_decref(k);

	night_zone(people[BEN].tz, sizeof people[BEN].tz);
	if (strcmp(people[BEN].tz, people[CLEO].tz) == 0)	/* three zones, whatever the hour */
		snprintf(people[CLEO].tz, sizeof people[CLEO].tz, "Asia/Singapore");
	for (int i = 0; i < NPEOPLE; i++) {
		struct person *p = &people[i];
		snprintf(p->email, sizeof p->email, "%s.%s@example.com", p->id, d->run);
		json_t *t = ctl(d, "token", json_pack("{s:s, s:s}", "user", p->id, "ttl", "7d"));
		snprintf(p->token, sizeof p->token, "%s", json_string_value(json_object_get(t, "token")));
		json_decref(t);
	}
	printf("notifyd demo: a sneaker marketplace, played through the REST API and notifyctl.\n"
	    "Open these to watch it happen:\n\n  %-22s %s/mail\n", "mail sink", d->base);
	for (int i = 0; i < NPEOPLE; i++) {
		char label[64];
		snprintf(label, sizeof label, "%s (%s)", people[i].id, people[i].role);
		printf("  %-22s %s/inbox#token=%s\n", label, d->base, people[i].token);
	}
	printf("\n");
}

/* The story. */
static void
play(struct demo *d)
{
	char path[256], order[32], status[32], next[64], hm[8], key[64];
	struct person *ava = &people[AVA], *ben = &people[BEN], *cleo = &people[CLEO];
	int64_t now = time_now_ms();

	local_hm(ben->tz, now, hm, sizeof hm);
	say(d, "Three people sign up: ava (buyer, %s), ben (buyer, %s, where it is %s now), "
	    "cleo (seller, %s)", ava->tz, ben->tz, hm, cleo->tz);
	for (int i = 0; i < NPEOPLE; i++) {
		snprintf(path, sizeof path, "/api/v1/users/%s", people[i].id);
		json_decref(rest(d, "PUT", path, json_pack("{s:s, s:s, s:s}", "email",
		    people[i].email, "name", people[i].name, "tz", people[i].tz)));
		snprintf(path, sizeof path, "/api/v1/topics/everyone/members/%s", people[i].id);
		json_decref(rest(d, "PUT", path, NULL));
		/* A fresh start for the story's preferences. */
		snprintf(path, sizeof path, "/api/v1/users/%s/preferences", people[i].id);
		json_decref(rest(d, "PUT", path, json_object()));
	}

	say(d, "ben is asleep: quiet hours 22:00-07:00 in his zone hold his email until morning");
	snprintf(path, sizeof path, "/api/v1/users/%s/preferences", ben->id);
	json_decref(rest(d, "PATCH", path, json_pack("{s:{s:s, s:s}}", "quiet_hours", "start",
	    "22:00", "end", "07:00")));
	say(d, "cleo wants one email a day: her email waits for her daily digest");
	snprintf(path, sizeof path, "/api/v1/users/%s/preferences", cleo->id);
	json_decref(rest(d, "PATCH", path, json_pack("{s:s}", "digest", "daily")));

	snprintf(order, sizeof order, "A-%s", d->run);
	say(d, "ava's bid meets cleo's ask on Air Jordan 1 Chicago, size 10: match_created to both "
	    "(in the app only)");
	snprintf(key, sizeof key, "match-%s", d->run);
	json_decref(send_one(d, json_pack("{s:[s,s], s:s, s:s, s:{s:s, s:s, s:s}}", "users",
	    ava->id, cleo->id, "type", "match_created", "key", key, "data", "name",
	    "Air Jordan 1 Chicago (10)", "price", "240.00", "currency", "USD")));

	say(d, "The order service creates order %s for ava: order_created, by email too", order);
	snprintf(key, sizeof key, "created-%s", d->run);
	json_decref(send_one(d, json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:[{s:s, s:i, s:s}]}}",
	    "user", ava->id, "type", "order_created", "key", key, "data", "order_id", order,
	    "total", "252.00", "currency", "USD", "items", "name", "Air Jordan 1 Chicago (10)",
	    "quantity", 1, "price", "240.00")));
	snprintf(path, sizeof path, "Order %s received", order);
	expect_mail(d, ava, path);

	say(d, "It ships with DHL: order_shipped");
	snprintf(key, sizeof key, "shipped-%s", d->run);
	json_decref(send_one(d, json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "user", ava->id,
	    "type", "order_shipped", "key", key, "data", "order_id", order, "carrier", "DHL",
	    "tracking_number", "JD014600003828")));
	snprintf(path, sizeof path, "Order %s has shipped", order);
	expect_mail(d, ava, path);

	say(d, "It arrives: order_delivered");
	snprintf(key, sizeof key, "delivered-%s", d->run);
	json_decref(send_one(d, json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "user", ava->id,
	    "type", "order_delivered", "key", key, "data", "order_id", order, "delivered_to",
	    "the front desk")));
	snprintf(path, sizeof path, "Order %s was delivered", order);
	expect_mail(d, ava, path);

	say(d, "ben's card is declined: payment_failed is critical, so it is emailed even in his "
	    "quiet hours");
	snprintf(key, sizeof key, "pay-failed-%s", d->run);
	snprintf(order, sizeof order, "B-%s", d->run);
	json_decref(send_one(d, json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}}", "user",
	    ben->id, "type", "payment_failed", "key", key, "data", "amount", "180.00", "currency",
	    "USD", "order_id", order, "reason", "card declined")));
	expect_mail(d, ben, "Payment of 180.00 USD failed");

	say(d, "He pays with another card: payment_succeeded, whose email waits for his morning");
	snprintf(key, sizeof key, "pay-ok-%s", d->run);
	json_t *n = send_one(d, json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "user", ben->id,
	    "type", "payment_succeeded", "key", key, "data", "amount", "180.00", "currency", "USD",
	    "order_id", order));
	email_delivery(d, ben, json_integer_value(json_object_get(n, "id")), status, sizeof status,
	    next, sizeof next);
	json_decref(n);
	local_hm(ben->tz, parse_time(next), hm, sizeof hm);
	printf("         ben's email is %s until %s (%s in %s)\n", status, next, hm, ben->tz);
	if (strcmp(status, "deferred") != 0)
		die(EXIT_FAILED, "demo: ben's email should wait for his quiet hours, but it is %s",
		    status);

	say(d, "cleo is paid out: payout_completed, parked for her digest");
	snprintf(key, sizeof key, "payout-%s", d->run);
	n = send_one(d, json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}}", "user", cleo->id, "type",
	    "payout_completed", "key", key, "data", "amount", "228.00", "currency", "USD",
	    "arrival_date", "in 2 business days"));
	email_delivery(d, cleo, json_integer_value(json_object_get(n, "id")), status, sizeof status,
	    next, sizeof next);
	json_decref(n);
	printf("         cleo's email: %s (parked until her digest)\n", status);
	if (strcmp(status, "digest") != 0)
		die(EXIT_FAILED, "demo: cleo's email should be parked for her digest, but it is %s",
		    status);

	say(d, "An announcement to the topic everyone: one send, a notification each");
	snprintf(key, sizeof key, "drop-%s", d->run);
	n = send_one(d, json_pack("{s:s, s:s, s:s, s:s, s:s}", "topic", "everyone", "type",
	    "message", "key", key, "title", "New drop on Friday",
	    "body", "The Dunk Low Panda restock goes live on Friday at 10:00."));
	printf("         %lld notifications; ava's email goes now, ben's waits, cleo's is parked\n",
	    (long long)json_integer_value(json_object_get(n, "count")));
	json_decref(n);
	expect_mail(d, ava, "New drop on Friday");

	say(d, "Cron runs the daily digest, as notifyctl digest --period daily would");
	json_t *dg = ctl(d, "digest", json_pack("{s:s, s:s}", "period", "daily", "user", cleo->id));
	json_int_t emailed = json_integer_value(json_object_get(dg, "users_emailed"));
	if (emailed > 0) {
		printf("         %lld digest email, %lld item(s)\n", (long long)emailed,
		    (long long)json_integer_value(json_object_get(dg, "items")));
		expect_mail(d, cleo, "new notification");
	} else if (json_integer_value(json_object_get(dg, "already_done")) > 0) {
		/* A second story on one day: one digest per day, as cron would find it. */
		printf("         cleo had today's digest already (one a day): these wait for "
		    "tomorrow's\n");
	} else {
		die(EXIT_FAILED, "demo: cleo's digest sent nothing");
	}
	json_decref(dg);

	say(d, "A reminder is scheduled for ava in an hour, then cancelled: she bought already");
	char at[40];
	time_format_rfc3339(at, sizeof at, time_now_ms() + 3600 * 1000);
	snprintf(key, sizeof key, "remind-%s", d->run);
	n = send_one(d, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "user", ava->id, "type",
	    "message", "key", key, "deliver_at", at, "title", "Your bid expires in 24 hours",
	    "body", "Raise it or let it lapse."));
	snprintf(path, sizeof path, "/api/v1/notifications/%lld/cancel",
	    (long long)json_integer_value(json_object_get(n, "id")));
	json_decref(n);
	json_decref(rest(d, "POST", path, NULL));
	d->notifications--;
}

void
demo_help(FILE *f)
{
	fprintf(f, "usage: notifyctl demo [--fast]\n\nplay the sneaker marketplace story against "
	    "the running notifyd: users, a match,\nan order shipped and delivered, a failed "
	    "payment, a payout, quiet hours, a digest,\na cancelled reminder and an announcement\n\n"
	    "  --fast               no pauses between the steps\n");
}

int
demo_main(const char *sock, int argc, char **argv)
{
	struct demo d = {.sock = sock, .steps = 13};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--fast") == 0)
			d.fast = true;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			demo_help(stdout);
			return 0;
		} else
			usage();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	d.fd = connect_daemon(sock, &d.r);
	setup(&d);
	play(&d);
	printf("\nDone: %d notifications, %d emails, every one checked. notifyd keeps them to "
	    "browse:\n\n  %-22s %s/mail\n", d.notifications, d.emails, "mail sink", d.base);
	for (int i = 0; i < NPEOPLE; i++) {
		char label[64];
		snprintf(label, sizeof label, "%s (%s)", people[i].id, people[i].role);
		printf("  %-22s %s/inbox#token=%s\n", label, d.base, people[i].token);
	}
	printf("  %-22s %s/\n", "overview", d.base);
	line_reader_free(&d.r);
	close(d.fd);
	return 0;
}
