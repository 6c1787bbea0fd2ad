/*
 * ws_client — one load process of bench/ws.py, in C: the same job and the
 * same output as bench/ws_client.py, at a few microseconds per frame, so
 * that the clients' own parsing takes less of the two cores notifyd runs on.
 *
 * Reads a JSON job on stdin: {"url": "ws://host:port/path", "conns":
 * [[user, token], ...]}. Opens every connection (100 handshakes at once),
 * prints "ready" once each has its "connected" frame, then one line per
 * notification frame whose data.data.sent_at is set:
 *	<user> <id> <ms since sent_at> <ms since created_at>
 * Answers pings, and stops on SIGTERM. Any failure before "ready" prints
 * "error ..." and exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

#define GATE 100

struct conn {
	int		 fd;
	const char	*user, *token;
	bool		 upgraded, ready;
	char		*buf;
	size_t		 len, cap;
};

static volatile sig_atomic_t stopping;
static struct sockaddr_in addr;
static char host[256], path[256];
static int ep, nconns, started, inflight, nready;
static struct conn *conns;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static double
now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

/* "2026-11-23T10:00:00.123Z" as ms since the epoch; NAN when it is not one. */
static double
rfc3339_ms(const char *s)
{
	struct tm tm = {0};
	int ms = 0;
	if (s == NULL || sscanf(s, "%d-%d-%dT%d:%d:%d.%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return 0.0 / 0.0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (double)timegm(&tm) * 1e3 + ms;
}

static void
start_one(void)
{
	struct conn *c = &conns[started++];
	inflight++;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		die("socket", strerror(errno));
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
		die("connect", strerror(errno));
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* The connect finished: ask for the upgrade. */
static void
handshake(struct conn *c)
{
	int err = 0;
	socklen_t l = sizeof err;
	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
	if (err != 0)
		die("connect", strerror(err));
	char req[2048];
	int n = snprintf(req, sizeof req, "GET %s?token=%s HTTP/1.1\r\nHost: %s\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: bm90aWZ5ZC1iZW5jaC0xMg==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    path, c->token, host);
	if (n < 0 || (size_t)n >= sizeof req)
		die("handshake", "token too long");
	send_all(c->fd, req, (size_t)n);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* A client frame (masked, as RFC 6455 requires of clients). */
static void
send_frame(struct conn *c, int opcode, const char *p, size_t n)
{
	unsigned char f[2 + 4 + 125];
	if (n > 125)
		n = 125;
	f[0] = (unsigned char)(0x80 | opcode);
	f[1] = (unsigned char)(0x80 | n);
	memset(f + 2, 0x5a, 4);
	for (size_t i = 0; i < n; i++)
		f[6 + i] = (unsigned char)(p[i] ^ 0x5a);
	send_all(c->fd, f, 6 + n);
}

static void
on_text(struct conn *c, const char *p, size_t n, double at)
{
	if (!c->ready) {
		if (n < 20 || memcmp(p, "{\"type\":\"connected\"", 19) != 0)
			die("first frame", "not 'connected'");
		c->ready = true;
		nready++;
		inflight--;
		return;
	}
	static const char want[] = "{\"type\":\"notification\",\"data\":{\"id\":";
	if (n < sizeof want - 1 || memcmp(p, want, sizeof want - 1) != 0)
		return;
	/*
	 * notifyd writes a notification's keys in one order: id first, its
	 * data (sent_at, all the bench puts there) before created_at. Read
	 * the three by position rather than parse the frame; jansson when
	 * that fails. What the clients spend here is CPU notifyd does not get.
	 */
	static const char sk[] = "\"sent_at\":\"", ck[] = "\"created_at\":\"";
	const char *sa = memmem(p, n, sk, sizeof sk - 1);
	const char *ca = sa ? memmem(sa, n - (size_t)(sa - p), ck, sizeof ck - 1) : NULL;
	if (ca != NULL && ca + sizeof ck - 1 + 24 <= p + n) {
		char num[32], ts[32];
		const char *q = sa + sizeof sk - 1, *e = memchr(q, '"', (size_t)(p + n - q));
		if (e != NULL && e - q < (ptrdiff_t)sizeof num) {
			memcpy(num, q, (size_t)(e - q));
			num[e - q] = '\0';
			memcpy(ts, ca + sizeof ck - 1, 24);
			ts[24] = '\0';
			printf("%s %lld %.3f %.3f\n", c->user, strtoll(p + sizeof want - 1, NULL, 10),
			    at - strtod(num, NULL) * 1e3, at - rfc3339_ms(ts));
			return;
		}
	}
	json_t *f = json_loadb(p, n, 0, NULL);
	json_t *d = json_object_get(f, "data");
	const char *sent = json_string_value(json_object_get(json_object_get(d, "data"),
	    "sent_at"));
	if (sent != NULL)
		printf("%s %lld %.3f %.3f\n", c->user,
		    (long long)json_integer_value(json_object_get(d, "id")),
		    at - strtod(sent, NULL) * 1e3,
		    at - rfc3339_ms(json_string_value(json_object_get(d, "created_at"))));
	json_decref(f);
}

/* Take every whole frame out of c's buffer. */
static void
frames(struct conn *c, double at)
{
	size_t off = 0;
	for (;;) {
		const unsigned char *h = (const unsigned char *)c->buf + off;
		size_t have = c->len - off, hl = 2;
		if (have < 2)
			break;
		uint64_t pl = h[1] & 0x7f;
		if (h[1] & 0x80)
			die("frame", "masked frame from the server");
		if (pl == 126)
			hl = 4;
		else if (pl == 127)
			hl = 10;
		if (have < hl)
			break;
		if (pl == 126)
			pl = (uint64_t)h[2] << 8 | h[3];
		else if (pl == 127)
			for (int i = 0, j = 2; i < 8; i++, j++)
				pl = (i == 0 ? 0 : pl << 8) | h[j];
		if (have - hl < pl)
			break;
		int op = h[0] & 0x0f;
		const char *p = (const char *)h + hl;
		if (!(h[0] & 0x80))
			die("frame", "fragmented frames are not expected");
		if (op == 1)
			on_text(c, p, (size_t)pl, at);
		else if (op == 9)
			send_frame(c, 10, p, (size_t)pl);
		else if (op == 8 && !c->ready)
			die("frame", "closed before 'connected'");
		off += hl + (size_t)pl;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
}

static void
readable(struct conn *c)
{
	for (;;) {
		if (c->cap - c->len < 4096) {
			c->cap = c->cap ? c->cap * 2 : 16384;
			if ((c->buf = realloc(c->buf, c->cap)) == NULL)
				die("memory", "out of memory");
		}
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			if (!c->ready)
				die("recv", r == 0 ? "closed by the server" : strerror(errno));
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			c->fd = -1;
			return;
		}
		c->len += (size_t)r;
		double at = now_ms();
		if (!c->upgraded) {
			char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
			if (end == NULL)
				continue;
			if (c->len < 12 || memcmp(c->buf + 9, "101", 3) != 0) {
				c->buf[c->len < 40 ? c->len : 40] = '\0';
				die("upgrade refused", c->buf);
			}
			c->upgraded = true;
			size_t hl = (size_t)(end + 4 - c->buf);
			memmove(c->buf, c->buf + hl, c->len - hl);
			c->len -= hl;
		}
		frames(c, at);
	}
}

static void
parse_url(const char *url)
{
	int port = 0;
	if (sscanf(url, "ws://%255[^:/]:%d%255s", host, &port, path) != 3)
		die("url", url);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		die("url", "the host must be an IPv4 address");
	snprintf(host + strlen(host), sizeof host - strlen(host), ":%d", port);
}

int
main(void)
{
	raise_nofile();
	json_error_t err;
	json_t *job = json_loadf(stdin, JSON_DISABLE_EOF_CHECK, &err);
	json_t *list = json_object_get(job, "conns");
	if (job == NULL || !json_is_array(list))
		die("job", job == NULL ? err.text : "no conns");
	parse_url(json_string_value(json_object_get(job, "url")) ?
	    json_string_value(json_object_get(job, "url")) : "");
	nconns = (int)json_array_size(list);
	if ((conns = calloc((size_t)nconns + 1, sizeof *conns)) == NULL)
		die("memory", "out of memory");
	for (int i = 0; i < nconns; i++) {
		conns[i].user = json_string_value(json_array_get(json_array_get(list, i), 0));
		conns[i].token = json_string_value(json_array_get(json_array_get(list, i), 1));
		if (conns[i].user == NULL || conns[i].token == NULL)
			die("job", "each conn is [user, token]");
	}
	signal(SIGTERM, on_term);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOFBF, 1 << 20);
	if ((ep = epoll_create1(0)) < 0)
		die("epoll", strerror(errno));

	bool said_ready = false;
	double flushed = now_ms();
	struct epoll_event evs[512];
	while (!stopping) {
		while (started < nconns && inflight < GATE)
			start_one();
		if (!said_ready && nready == nconns) {
			printf("ready\n");
			fflush(stdout);
			said_ready = true;
		}
		int n = epoll_wait(ep, evs, 512, 200);
		if (n < 0 && errno != EINTR)
			die("epoll_wait", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->fd < 0)
				continue;
			if ((evs[i].events & EPOLLOUT) && !c->upgraded)
				handshake(c);
			else if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				readable(c);
		}
		if (said_ready && now_ms() - flushed >= 200) {
			fflush(stdout);
			flushed = now_ms();
		}
	}
	fflush(stdout);
	for (int i = 0; i < nconns; i++) {
		if (i < started && conns[i].fd >= 0)
			close(conns[i].fd);
		free(conns[i].buf);
	}
	free(conns);
	json_decref(job);
	return 0;
}
