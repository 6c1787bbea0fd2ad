/*
 * hook_sink — bench/delivery.sh's webhook receiver: answers every HTTP
 * request 204 on keep-alive connections, one thread per connection, and
 * counts the requests that carry a webhook-signature header. Listens on
 * 127.0.0.1:PORT (argv[1]); once WANT (argv[2]) signed requests have come
 * it prints "done <seconds since the first>" and goes on answering, so
 * that wrk can measure the same server's own rate.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <strings.h>

#include "tool.h"

static atomic_long signed_seen;
static long want;
static double first_ms;

static void *
serve(void *arg)
{
	int fd = (int)(intptr_t)arg, one = 1;
	char buf[65536];
	size_t have = 0;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	for (;;) {
		char *end = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL;
		if (end == NULL) {
			if (have == sizeof buf)
				break;
			ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
			if (n <= 0)
				break;
			have += (size_t)n;
			continue;
		}
		size_t head = (size_t)(end - buf) + 4, body = 0;
		buf[head - 1] = '\0';
		char *cl = strcasestr(buf, "\r\ncontent-length:");
		if (cl)
			body = strtoul(cl + 17, NULL, 10);
		bool sig = strcasestr(buf, "\r\nwebhook-signature:") != NULL;
		/* The body: in the buffer already, or read past. */
		while (have < head + body && have < sizeof buf) {
			ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
			if (n <= 0)
				goto out;
			have += (size_t)n;
		}
		if (head + body > sizeof buf)
			break;
		memmove(buf, buf + head + body, have - head - body);
		have -= head + body;
		static const char ok[] = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
		send_all(fd, ok, sizeof ok - 1);
		if (sig) {
			long n = atomic_fetch_add(&signed_seen, 1) + 1;
			if (n == 1)
				first_ms = clock_ms(CLOCK_MONOTONIC);
			if (n == want) {
				printf("done %.3f\n", (clock_ms(CLOCK_MONOTONIC) - first_ms) / 1e3);
				fflush(stdout);
			}
		}
	}
out:
	close(fd);
	return NULL;
}

int
main(int argc, char **argv)
{
	if (argc != 3)
		die("usage", "hook_sink PORT WANT");
	want = atol(argv[2]);
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 512) != 0)
		die("listen", strerror(errno));
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, serve, (void *)(intptr_t)c) == 0)
			pthread_detach(t);
		else
			close(c);
	}
}
