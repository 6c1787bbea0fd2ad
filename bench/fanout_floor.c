/*
 * fanout_floor — what a topic send costs this machine's kernel alone, the
 * baseline bench/ws.py quotes notifyd's topic sends against: 4 threads
 * send one message of a given size to their shares of N loopback TCP
 * connections, and a child process reads them all with epoll (as
 * bin/ws_client does, without parsing). No notifyd, no JSON, no storage.
 *
 *	fanout_floor [connections [bytes [rounds]]]	(10000 400 5)
 *
 * Prints, per round, "round <k> <ms to the p99 receipt> <ms to the last>",
 * counted from the first send.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

#define WRITERS 4

static int n = 10000, size = 400, rounds = 5;
static int *srv;
static char msg[65536];


static void
full(int fd, void *p, size_t len, int write_it)
{
	char *s = p;
	while (len > 0) {
		ssize_t r = write_it ? write(fd, s, len) : read(fd, s, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die(write_it ? "write" : "read", r == 0 ? "end of file" : strerror(errno));
		s += r;
		len -= (size_t)r;
	}
}

static void *
writer(void *arg)
{
	for (int i = (int)(long)arg; i < n; i += WRITERS)
		if (send(srv[i], msg, (size_t)size, MSG_NOSIGNAL) != size)
			die("send", strerror(errno));
	return NULL;
}

static int
by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The child: connect n clients, then time every receipt of each round. */
static void
reader(const struct sockaddr_in *addr, int ready, int results)
{
	int ep = epoll_create1(0), one = 1;
	int *fds = calloc((size_t)n, sizeof *fds), *have = calloc((size_t)n, sizeof *have);
	double *at = calloc((size_t)n, sizeof *at);
	if (ep < 0 || fds == NULL || have == NULL || at == NULL)
		die("setup", strerror(errno));
	for (int i = 0; i < n; i++) {
		if ((fds[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0)
			die("socket", strerror(errno));
		setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(fds[i], (const struct sockaddr *)addr, sizeof *addr) < 0)
			die("connect", strerror(errno));
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			die("epoll_ctl", strerror(errno));
	}
	full(ready, "r", 1, 1);
	static char buf[65536];
	struct epoll_event evs[512];
	for (int r = 0; r < rounds; r++) {
		/* Each message is counted when its last byte is in. */
		int got = 0;
		memset(have, 0, (size_t)n * sizeof *have);
		while (got < n) {
			int k = epoll_wait(ep, evs, 512, -1);
			if (k < 0 && errno != EINTR)
				die("epoll_wait", strerror(errno));
			double t = clock_ms(CLOCK_MONOTONIC);
			for (int j = 0; j < k; j++) {
				uint32_t i = evs[j].data.u32;
				ssize_t x = recv(fds[i], buf, (size_t)(size - have[i]), 0);
				if (x <= 0)
					die("recv", x == 0 ? "closed" : strerror(errno));
				if ((have[i] += (int)x) == size)
					at[got++] = t;
			}
		}
		qsort(at, (size_t)got, sizeof *at, by_value);
		double v[2] = {at[got * 99 / 100], at[got - 1]};
		full(results, v, sizeof v, 1);
	}
	_exit(0);
}

int
main(int argc, char **argv)
{
	if (argc > 1)
		n = atoi(argv[1]);
	if (argc > 2)
		size = atoi(argv[2]);
	if (argc > 3)
		rounds = atoi(argv[3]);
	if (n < 1 || size < 1 || size > (int)sizeof msg || rounds < 1) {
		fprintf(stderr, "usage: fanout_floor [connections [bytes [rounds]]]\n");
		return 2;
	}
	raise_nofile();
	memset(msg, 'x', sizeof msg);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof addr;
	if (l < 0 || bind(l, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(l, 4096) < 0 ||
	    getsockname(l, (struct sockaddr *)&addr, &al) < 0)
		die("listen", strerror(errno));
	int ready[2], results[2];
	if (pipe(ready) < 0 || pipe(results) < 0)
		die("pipe", strerror(errno));
	pid_t child = fork();
	if (child < 0)
		die("fork", strerror(errno));
	if (child == 0)
		reader(&addr, ready[1], results[1]);
	if ((srv = calloc((size_t)n, sizeof *srv)) == NULL)
		die("calloc", strerror(errno));
	for (int i = 0; i < n; i++) {
		if ((srv[i] = accept(l, NULL, NULL)) < 0)
			die("accept", strerror(errno));
		setsockopt(srv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	char c;
	full(ready[0], &c, 1, 0);
	for (int r = 0; r < rounds; r++) {
		pthread_t th[WRITERS];
		double t0 = clock_ms(CLOCK_MONOTONIC), v[2];
		for (long k = 0; k < WRITERS; k++)
			if (pthread_create(&th[k], NULL, writer, (void *)k) != 0)
				die("pthread_create", strerror(errno));
		for (int k = 0; k < WRITERS; k++)
			pthread_join(th[k], NULL);
		full(results[0], v, sizeof v, 0);
		printf("round %d %.1f %.1f\n", r, v[0] - t0, v[1] - t0);
		fflush(stdout);
	}
	int st;
	waitpid(child, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
