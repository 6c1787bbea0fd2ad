/*
 * fuzz_smtp — an SMTP client's whole byte stream, to the sink as it runs:
 * commands, pipelining, AUTH, DATA with its dot-stuffing and limits. The
 * stream is written while the replies are read, then the client's end is
 * closed and the rest of the replies read until the sink hangs up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app.h"
#include "fuzz.h"
#include "smtpd.h"

static struct smtpd *sd;

/* At exit, before fuzz_app's own clean-up (atexit runs them in reverse). */
static void
stop(void)
{
	smtpd_stop(sd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int port;
	struct app *app = fuzz_app();
	char err[256], buf[65536];
	if (sd == NULL) {
		if (smtpd_start(&sd, app, err, sizeof err) != 0)
			abort();
		port = smtpd_port(sd);
		atexit(stop);
	}
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0 && errno != EINPROGRESS)
		abort();
	size_t off = 0;
	if (size == 0)
		shutdown(fd, SHUT_WR);
	for (int quiet = 0; quiet < 40;) {	/* 40 polls of 50 ms with nothing: give up */
		struct pollfd p = {fd, POLLIN | (off < size ? POLLOUT : 0), 0};
		if (poll(&p, 1, 50) <= 0) {
			quiet++;
			continue;
		}
		if (p.revents & POLLOUT) {
			ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n > 0 && (off += (size_t)n) == size)
				shutdown(fd, SHUT_WR);
			else if (n < 0 && errno != EAGAIN)
				break;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, buf, sizeof buf, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN))
				break;	/* the sink hung up: the session is over */
		}
	}
	close(fd);
	return 0;
}
