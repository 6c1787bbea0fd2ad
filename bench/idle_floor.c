/*
 * idle_floor — the least an idle notifyd could hold: the same libraries
 * mapped (this program is linked as notifyd is, and calls none of them)
 * and as many threads waiting. civetweb's workers get its 100 KiB stacks
 * and the 16 KiB request buffer each allocates at start; the rest get
 * default stacks. It prints "ready" and waits; bench/idle.sh reads its RSS
 * as it reads notifyd's.
 *
 *	idle_floor WORKERS OTHERS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>

#include "tool.h"

static pthread_mutex_t	lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	never = PTHREAD_COND_INITIALIZER;

static void *
wait_forever(void *arg)
{
	char *buf = arg ? malloc(16384) : NULL;
	if (buf != NULL)
		*(volatile char *)buf = 0;	/* kept: a buffer never used may be elided */
	pthread_mutex_lock(&lock);
	for (;;)
		pthread_cond_wait(&never, &lock);
	free(buf);
	return NULL;
}

int
main(int argc, char **argv)
{
	if (argc != 3)
		die("usage", "idle_floor WORKERS OTHERS");
	int workers = atoi(argv[1]), others = atoi(argv[2]);
	pthread_attr_t small;
	pthread_attr_init(&small);
	pthread_attr_setstacksize(&small, 102400);	/* civetweb's, as Debian builds it */
	for (int i = 0; i < workers + others; i++) {
		pthread_t t;
		if (pthread_create(&t, i < workers ? &small : NULL, wait_forever,
		    i < workers ? &t : NULL) != 0)
			die("pthread_create", strerror(errno));
	}
	printf("ready\n");
	fflush(stdout);
	pause();
	return 0;
}
