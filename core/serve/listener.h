/* listener — accept connections on a listening socket, in a thread of its own. */
#ifndef NOTIFYD_LISTENER_H
#define NOTIFYD_LISTENER_H

struct listener;

/* Called in the listener's thread with each accepted descriptor (close-on-exec). */
typedef void (*listener_fn)(void *arg, int fd);

/* Accept on fd (already listening) and hand each connection to fn. */
int	 listener_start(struct listener **out, int fd, const char *name, listener_fn fn,
	    void *arg);
/* Stop accepting and join the thread; fd is the caller's to close. */
void	 listener_stop(struct listener *l);

#endif
