/*
 * notifyd's own sigaction(), which the dynamic linker binds libcivetweb's
 * calls to, because the executable comes first in the lookup order.
 *
 * civetweb 1.15 starts each of its num_threads workers with
 * sigaction(SIGPIPE, SIG_IGN). Whenever a signal is set to be ignored,
 * Linux walks every thread of the process under the signal lock to drop
 * pending instances of it, so starting N workers costs time in N²:
 * 19,164 workers (ws_max_connections = 19100) took 35-44 s to start on a
 * 2-core VM, where creating that many threads alone takes 2 s. main()
 * ignores SIGPIPE before civetweb starts, so a call that would set it to
 * SIG_IGN again is answered here without the system call. Every other
 * call goes on to the next definition: the C library's, or a sanitizer's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>

typedef int sigaction_fn(int, const struct sigaction *, struct sigaction *);

static sigaction_fn *next;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
find_next(void)
{
	next = (sigaction_fn *)dlsym(RTLD_NEXT, "sigaction");
}

static int
ignored(const struct sigaction *sa)
{
	return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == SIG_IGN;
}

int
sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	pthread_once(&once, find_next);
	if (next == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (sig == SIGPIPE && act != NULL && ignored(act)) {
		/* Nothing in notifyd sets SIGPIPE to anything else, so it cannot
		 * change between this look and the answer. */
		struct sigaction cur;
		if (next(SIGPIPE, NULL, &cur) == 0 && ignored(&cur)) {
			if (old != NULL)
				*old = cur;
			return 0;
		}
	}
	return next(sig, act, old);
}
