/*
 * notifyd's own accept(), which the dynamic linker binds libcivetweb's
 * calls to, because the executable comes first in the lookup order (as
 * sigaction.c does for sigaction).
 *
 * civetweb 1.15 gives every connection a worker thread from the moment it
 * is accepted: one that sends nothing, or half a request, holds its worker
 * for the whole header timeout. 264 idle sockets from one unauthenticated
 * client stalled REST and WebSockets for everyone, and civetweb has no
 * hook between accept and the worker. Here, between the two, http_admit()
 * counts the connection against its address's share and the workers, and
 * answers 503 at once to one over either, without a worker ever seeing
 * it.
 *
 * Only civetweb calls the plain accept(): notifyd's own listeners (the
 * control socket, the SMTP sink) use accept4(), which this leaves alone.
 * The call itself is accept4() with no flags, which is what accept() is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>

#include "http.h"

int
accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int c = accept4(fd, addr, len, 0);
	if (c >= 0 && addr != NULL && len != NULL && !http_admit(c, addr, *len)) {
		errno = EAGAIN;	/* civetweb's listener polls again */
		return -1;
	}
	return c;
}
