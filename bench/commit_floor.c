/*
 * commit_floor — the baseline bench/rest.sh quotes a create against: the
 * least a durable, group-committed request can cost on this machine with
 * civetweb, notifyd's HTTP server, and nothing of notifyd.
 *
 *	commit_floor HOST:PORT WAL_FILE WORK_US
 *
 * GET /healthz answers at once, as notifyd's does. POST /commit reads its
 * body, queues itself and sleeps; one committer thread takes the whole
 * queue, spends WORK_US of CPU per queued request (the writes a real
 * commit would run, serially, as SQLite's single writer does), writes a
 * page to WAL_FILE and fdatasyncs it, then wakes the batch, and each
 * request answers. No JSON, no SQL, no allocation per request. Runs until
 * killed.
 */
#define _GNU_SOURCE
#include <civetweb.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

struct waiter {
	sem_t		 done;
	struct waiter	*next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queued = PTHREAD_COND_INITIALIZER;
static struct waiter *queue;
static int wal;
static long work_us;

static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 15\r\n\r\n{\"status\":\"ok\"}";

static int
healthz(struct mg_connection *c, void *arg)
{
	(void)arg;
	mg_write(c, ok, sizeof ok - 1);
	return 200;
}

static int
commit(struct mg_connection *c, void *arg)
{
	(void)arg;
	char body[4096];
	while (mg_read(c, body, sizeof body) > 0)
		;
	struct waiter w = {.next = NULL};
	sem_init(&w.done, 0, 0);
	pthread_mutex_lock(&lock);
	w.next = queue;
	queue = &w;
	pthread_cond_signal(&queued);
	pthread_mutex_unlock(&lock);
	while (sem_wait(&w.done) != 0)
		;
	sem_destroy(&w.done);
	mg_write(c, ok, sizeof ok - 1);
	return 200;
}

/* Busy for us microseconds of this thread's CPU. */
static void
work(long us)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	do
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 < us);
}

static void *
committer(void *arg)
{
	(void)arg;
	static char page[4096];
	memset(page, 1, sizeof page);
	for (;;) {
		pthread_mutex_lock(&lock);
		while (queue == NULL)
			pthread_cond_wait(&queued, &lock);
		struct waiter *batch = queue;
		queue = NULL;
		pthread_mutex_unlock(&lock);
		for (struct waiter *w = batch; w != NULL && work_us > 0; w = w->next)
			work(work_us);
		if (pwrite(wal, page, sizeof page, 0) != (ssize_t)sizeof page || fdatasync(wal) != 0)
			die("wal", strerror(errno));
		while (batch != NULL) {
			struct waiter *next = batch->next;
			sem_post(&batch->done);
			batch = next;
		}
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: commit_floor HOST:PORT WAL_FILE WORK_US\n");
		return 2;
	}
	work_us = atol(argv[3]);
	if ((wal = open(argv[2], O_RDWR | O_CREAT, 0600)) < 0)
		die(argv[2], strerror(errno));
	/* civetweb as notifyd runs it by default (core/serve/http.c). */
	const char *opts[] = {"listening_ports", argv[1], "num_threads", "264",
	    "enable_keep_alive", "yes", "keep_alive_timeout_ms", "30000",
	    "request_timeout_ms", "30000", "tcp_nodelay", "1", "decode_url", "no",
	    "listen_backlog", "1024", NULL};
	struct mg_callbacks cb;
	memset(&cb, 0, sizeof cb);
	signal(SIGPIPE, SIG_IGN);
	mg_init_library(0);
	struct mg_context *ctx = mg_start(&cb, NULL, opts);
	if (ctx == NULL)
		die("listen", argv[1]);
	mg_set_request_handler(ctx, "/healthz", healthz, NULL);
	mg_set_request_handler(ctx, "/commit", commit, NULL);
	pthread_t t;
	if (pthread_create(&t, NULL, committer, NULL) != 0)
		die("thread", "pthread_create");
	printf("ready\n");
	fflush(stdout);
	pause();
	return 0;
}
