/*
 * post_client — bench/ws.py's single-user sender, in C: paced
 * POST /api/v1/notifications over keep-alive connections, one thread per
 * connection, so that the load generator's own CPU (and, in Python, its
 * interpreter lock) does not take the two cores from notifyd and delay
 * the sends it is timing.
 *
 * Reads a JSON job on stdin: {"host": "127.0.0.1", "port": N, "key":
 * "nk_...", "users": [...], "rate": 1000, "secs": 10, "conns": 4}.
 * Connection k sends its i-th request at start + i * conns / rate (at once
 * when late) to a user picked at random, with data.sent_at set to the
 * wall-clock time the request is written, and waits for the answer.
 * When all are done it prints, per request, "sent <id> <round trip ms>",
 * then "done <requests> <seconds>". Any failure prints "error ..." and
 * exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

struct sent {
	long long	 id;
	double		 rtt_ms;
};

struct worker {
	pthread_t	 th;
	unsigned	 seed;
	int		 n;
	struct sent	*out;
};

static struct sockaddr_in addr;
static const char *key;
static const char **users;
static size_t nusers;
static double period_s;		/* between one connection's sends */
static struct timespec start;

/* One whole response into buf; its body's offset and length. */
static void
read_response(int fd, char *buf, size_t cap, size_t *body, size_t *blen)
{
	size_t len = 0;
	char *end = NULL;
	long clen = -1;
	for (;;) {
		if (len == cap - 1)
			die("response", "too long");
		ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("recv", r == 0 ? "closed by the server" : strerror(errno));
		len += (size_t)r;
		buf[len] = '\0';
		if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");
			if (cl == NULL || cl > end)
				die("response", "no Content-Length");
			clen = strtol(cl + 17, NULL, 10);
		}
		if (end != NULL && len >= (size_t)(end + 4 - buf) + (size_t)clen)
			break;
	}
	if (len < 12 || memcmp(buf + 9, "201", 3) != 0) {
		buf[len < 200 ? len : 200] = '\0';
		die("status", buf);
	}
	*body = (size_t)(end + 4 - buf);
	*blen = (size_t)clen;
}

static void *
run(void *arg)
{
	struct worker *w = arg;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (fd < 0)
		die("socket", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("connect", strerror(errno));
	char req[4096], body[512], resp[65536];
	for (int i = 0; i < w->n; i++) {
		double at = i * period_s;
		struct timespec due = start;
		due.tv_sec += (time_t)at;
		due.tv_nsec += (long)((at - (double)(time_t)at) * 1e9);
		if (due.tv_nsec >= 1000000000L) {
			due.tv_sec++;
			due.tv_nsec -= 1000000000L;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR)
			;
		const char *user = users[rand_r(&w->seed) % nusers];
		double t0 = clock_ms(CLOCK_MONOTONIC);
		int bl = snprintf(body, sizeof body,
		    "{\"user\":\"%s\",\"type\":\"m\",\"data\":{\"sent_at\":\"%.6f\"}}", user, clock_ms(CLOCK_REALTIME) / 1e3);
		int rl = snprintf(req, sizeof req, "POST /api/v1/notifications HTTP/1.1\r\n"
		    "Host: bench\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
		    "Content-Length: %d\r\n\r\n%s", key, bl, body);
		if (bl < 0 || (size_t)bl >= sizeof body || rl < 0 || (size_t)rl >= sizeof req)
			die("request", "user or key too long");
		send_all(fd, req, (size_t)rl);
		size_t off, blen;
		read_response(fd, resp, sizeof resp, &off, &blen);
		double rtt = clock_ms(CLOCK_MONOTONIC) - t0;
		json_t *n = json_loadb(resp + off, blen, 0, NULL);
		json_t *id = json_object_get(n, "id");
		if (!json_is_integer(id))
			die("response", "no id");
		w->out[i] = (struct sent){json_integer_value(id), rtt};
		json_decref(n);
	}
	close(fd);
	return NULL;
}

int
main(void)
{
	json_error_t err;
	json_t *job = json_loadf(stdin, JSON_DISABLE_EOF_CHECK, &err);
	if (job == NULL)
		die("job", err.text);
	const char *host = json_string_value(json_object_get(job, "host"));
	int port = (int)json_integer_value(json_object_get(job, "port"));
	int rate = (int)json_integer_value(json_object_get(job, "rate"));
	int secs = (int)json_integer_value(json_object_get(job, "secs"));
	int nconn = (int)json_integer_value(json_object_get(job, "conns"));
	json_t *ulist = json_object_get(job, "users");
	key = json_string_value(json_object_get(job, "key"));
	nusers = json_array_size(ulist);
	if (host == NULL || key == NULL || nusers == 0 || port <= 0 || rate <= 0 || secs <= 0 ||
	    nconn <= 0 || rate < nconn)
		die("job", "needs host, port, key, users, rate >= conns > 0, secs > 0");
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		die("job", "host must be an IPv4 address");
	if ((users = calloc(nusers, sizeof *users)) == NULL)
		die("memory", "out of memory");
	for (size_t i = 0; i < nusers; i++)
		if ((users[i] = json_string_value(json_array_get(ulist, i))) == NULL)
			die("job", "users are strings");
	int per = rate / nconn;
	period_s = 1.0 / per;
	struct worker *ws = calloc((size_t)nconn, sizeof *ws);
	if (ws == NULL)
		die("memory", "out of memory");
	clock_gettime(CLOCK_MONOTONIC, &start);
	double t = clock_ms(CLOCK_MONOTONIC);
	for (int k = 0; k < nconn; k++) {
		ws[k].seed = (unsigned)k + 1;
		ws[k].n = per * secs;
		if ((ws[k].out = calloc((size_t)ws[k].n, sizeof *ws[k].out)) == NULL)
			die("memory", "out of memory");
		if (pthread_create(&ws[k].th, NULL, run, &ws[k]) != 0)
			die("thread", strerror(errno));
	}
	int total = 0;
	for (int k = 0; k < nconn; k++)
		pthread_join(ws[k].th, NULL);
	double took = (clock_ms(CLOCK_MONOTONIC) - t) / 1e3;
	for (int k = 0; k < nconn; k++) {
		for (int i = 0; i < ws[k].n; i++)
			printf("sent %lld %.3f\n", ws[k].out[i].id, ws[k].out[i].rtt_ms);
		total += ws[k].n;
		free(ws[k].out);
	}
	printf("done %d %.3f\n", total, took);
	free(ws);
	free(users);
	json_decref(job);
	return 0;
}
