/* listener — accept connections on a listening socket, in a thread of its own. */
#define _GNU_SOURCE
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "lineio.h"
#include "proto.h"

struct listener {
	int		 fd;
	int		 wake[2];	/* written to stop the loop */
	const char	*name;		/* for the log */
	listener_fn	 fn;
	void		*arg;
	pthread_t	 thread;
};

static void *
listener_main(void *arg)
{
	struct listener *l = arg;
	struct pollfd pfd[2] = {{l->fd, POLLIN, 0}, {l->wake[0], POLLIN, 0}};
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll failed", "listener=%s error=%s", l->name, strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			l->fn(l->arg, fd);
			continue;
		}
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			log_warn("accept failed", "listener=%s error=%s", l->name, strerror(errno));
		if (errno == EMFILE || errno == ENFILE)
			usleep(100000);	/* let connections finish instead of spinning */
	}
	return NULL;
}

int
listener_start(struct listener **out, int fd, const char *name, listener_fn fn, void *arg)
{
	struct listener *l = calloc(1, sizeof *l);
	if (l == NULL)
		return -1;
	l->fd = fd;
	l->name = name;
	l->fn = fn;
	l->arg = arg;
	if (pipe2(l->wake, O_CLOEXEC) != 0) {
		free(l);
		return -1;
	}
	if (pthread_create(&l->thread, NULL, listener_main, l) != 0) {
		close(l->wake[0]);
		close(l->wake[1]);
		free(l);
		return -1;
	}
	*out = l;
	return 0;
}

void
listener_stop(struct listener *l)
{
	if (l == NULL)
		return;
	write_all(l->wake[1], "x", 1);
	pthread_join(l->thread, NULL);
	close(l->wake[0]);
	close(l->wake[1]);
	free(l);
}
