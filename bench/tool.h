/* What the bench/ tools (ws_client, post_client, fanout_floor) share. */
#ifndef BENCH_TOOL_H
#define BENCH_TOOL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Tell bench/ws.py what failed, on the line it reads, and stop. */
static inline void
die(const char *what, const char *detail)
{
	printf("error %s: %s\n", what, detail);
	fflush(stdout);
	exit(1);
}

static inline double
clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* All of n bytes to a socket; a non-blocking one is waited for (only
 * requests and short frames are written). */
static inline void
send_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			usleep(100);
			continue;
		}
		if (w <= 0)
			die("send", strerror(errno));
		s += w;
		n -= (size_t)w;
	}
}

/* Connections are files: take the whole open-file limit. */
static inline void
raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

#endif
