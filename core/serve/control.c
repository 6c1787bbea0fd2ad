/* control — the Unix socket notifyctl talks to (protocol in proto.h). */
#define _GNU_SOURCE
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <stdint.h>
#include <sys/uio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "app.h"
#include "hub.h"
#include "listener.h"
#include "log.h"
#include "ops.h"
#include "lineio.h"
#include "proto.h"
#include "util.h"

/* Seconds a stopping notifyd waits for clients to take their replies. */
#define STOP_GRACE 5

struct client {
	struct control	*ctl;
	int		 fd;
	unsigned	 id;
	struct client	*next;
};

struct control {
	struct app	*app;
	char		*path;
	int		 fd;
	int		 max_clients;
	struct listener	*listener;
	pthread_mutex_t	 lock;
	pthread_cond_t	 idle;		/* signalled when the last client leaves */
	struct client	*clients;
	int		 nclients;
	unsigned	 next_id;
	bool		 bound;		/* the socket file is ours to remove */
};

/* Append a reply line for request id to b. */
static void
reply_json(struct buf *b, json_t *id, json_t *result, const struct op_error *err)
{
	json_t *r;
	if (result != NULL)
		r = json_pack("{s:O, s:b, s:O}", "id", id ? id : json_null(), "ok", 1,
		    "result", result);
	else
		r = json_pack("{s:O, s:b, s:{s:s, s:s, s:i}}", "id", id ? id : json_null(),
		    "ok", 0, "error", "code", err->code, "message", err->message,
		    "status", err->status);
	char *s = r ? json_dumps(r, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	if (s == NULL)
		buf_puts(b, "{\"id\":null,\"ok\":false,\"error\":{\"code\":\"internal\","
		    "\"message\":\"the reply could not be encoded\",\"status\":500}}");
	else
		buf_puts(b, s);
	buf_putc(b, '\n');
	free(s);
	json_decref(r);
}

/* A watcher's line: written at once or not at all, so a stuck watcher holds up no sender. */
static int
watch_send(void *ctx, const char *data, size_t len)
{
	int fd = (int)(intptr_t)ctx;
	struct iovec iov[2] = {{(void *)data, len}, {"\n", 1}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
	size_t want = len + 1, done = 0;
	while (done < want) {
		ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {fd, POLLOUT, 0};
			if (poll(&p, 1, 1000) <= 0)
				return -1;	/* not reading for a second: drop it */
			continue;
		}
		if (n <= 0)
			return -1;
		done += (size_t)n;
		while (n > 0 && msg.msg_iovlen > 0) {
			size_t take = (size_t)n < msg.msg_iov[0].iov_len ? (size_t)n : msg.msg_iov[0].iov_len;
			msg.msg_iov[0].iov_base = (char *)msg.msg_iov[0].iov_base + take;
			msg.msg_iov[0].iov_len -= take;
			n -= (ssize_t)take;
			if (msg.msg_iov[0].iov_len == 0) {
				msg.msg_iov++;
				msg.msg_iovlen--;
			}
		}
	}
	return 0;
}

static void
watch_close(void *ctx, int code, const char *reason)
{
	(void)code;
	(void)reason;
	shutdown((int)(intptr_t)ctx, SHUT_RDWR);
}

static const struct hub_transport watch_transport = {watch_send, watch_close, NULL};

/* After a watch's answer: stream events to the client until it hangs up. */
static void
stream_events(struct client *cl, struct line_reader *r, const char *user)
{
	struct hub_conn *w = hub_watch(cl->ctl->app->hub, user, &watch_transport,
	    (void *)(intptr_t)cl->fd);
	char *line;
	size_t len;
	if (w == NULL) {
		log_error("watch failed", "client=%u reason=memory", cl->id);
		return;
	}
	log_info("watch started", "client=%u user=%s", cl->id, user);
	/* Anything the client sends now is ignored; its end is the end of the watch. */
	while (line_read(r, &line, &len) == LINE_OK)
		;
	hub_detach(w);
	log_info("watch ended", "client=%u", cl->id);
}

/* Answer one request line into b; *stream is set for a watch to stream after it. */
void
control_answer(struct app *app, unsigned client, const char *line, size_t len, struct buf *b,
    json_t **stream)
{
	struct op_ctx ctx = {.app = app};
	json_error_t jerr;
	bool deep;
	json_t *req = json_load_bounded(line, len, JSON_REJECT_DUPLICATES, &jerr, &deep);
	json_t *result = NULL, *id = NULL;
	const char *cmd = NULL;

	if (req == NULL && deep) {
		op_fail(&ctx, 400, "too_deep", "the request's %s", jerr.text);
	} else if (req == NULL) {
		op_fail(&ctx, 400, "malformed_json", "malformed JSON at column %d: %s",
		    jerr.column, jerr.text);
	} else if (!json_is_object(req)) {
		op_fail(&ctx, 400, "invalid_request", "a request must be a JSON object");
	} else {
		id = json_object_get(req, "id");
		cmd = json_string_value(json_object_get(req, "cmd"));
		json_t *args = json_object_get(req, "args");
		const char *k;
		json_t *v;
		json_object_foreach(req, k, v)
			if (strcmp(k, "id") != 0 && strcmp(k, "cmd") != 0 && strcmp(k, "args") != 0)
				break;
		if (k != NULL)
			op_fail(&ctx, 400, "invalid_request", "unknown request field '%.64s'", k);
		else if (cmd == NULL)
			op_fail(&ctx, 400, "invalid_request", "'cmd' must be a string");
		else
			result = op_dispatch(&ctx, cmd, json_is_null(args) ? NULL : args);
		const struct op *op = cmd ? op_find(cmd) : NULL;
		if (result != NULL && op != NULL && (op->flags & OP_STREAM))
			*stream = json_incref(result);
	}
	reply_json(b, id, result, &ctx.err);
	if (result == NULL)
		log_warn("control request failed", "client=%u cmd=%s status=%d code=%s error=%s",
		    client, cmd ? cmd : "", ctx.err.status, ctx.err.code, ctx.err.message);
	json_decref(result);
	json_decref(req);
}

/* Serve one connection until it closes or the daemon stops. */
static void *
client_main(void *arg)
{
	struct client *cl = arg;
	struct control *ctl = cl->ctl;
	struct line_reader r;
	struct buf out;
	char greeting[128];

	buf_init(&out);
	line_reader_init(&r, cl->fd, PROTO_MAX_LINE);
	int n = snprintf(greeting, sizeof greeting, "{\"notifyd\":\"%s\",\"protocol\":%d}\n",
	    NOTIFYD_VERSION, PROTO_VERSION);
	if (write_all(cl->fd, greeting, (size_t)n) != 0)
		goto done;
	for (;;) {
		char *line;
		size_t len;
		enum line_status st = line_read(&r, &line, &len);
		if (st == LINE_EOF || st == LINE_ERROR)
			break;
		buf_reset(&out);
		if (st == LINE_TOO_LONG) {
			struct op_error e = {413, "line_too_long", ""};
			snprintf(e.message, sizeof e.message,
			    "a request line is limited to %d bytes; closing", PROTO_MAX_LINE);
			reply_json(&out, NULL, NULL, &e);
			log_warn("control request refused", "client=%u code=line_too_long", cl->id);
			write_all(cl->fd, out.data, out.len);
			break;
		}
		if (len == 0)
			continue;
		json_t *stream = NULL;
		control_answer(ctl->app, cl->id, line, len, &out, &stream);
		if (out.oom || write_all(cl->fd, out.data, out.len) != 0) {
			json_decref(stream);
			break;
		}
		if (stream != NULL) {
			stream_events(cl, &r, json_string_value(json_object_get(stream, "user")));
			json_decref(stream);
			break;
		}
	}
done:
	line_reader_free(&r);
	buf_free(&out);
	pthread_mutex_lock(&ctl->lock);
	for (struct client **p = &ctl->clients; *p; p = &(*p)->next)
		if (*p == cl) {
			*p = cl->next;
			break;
		}
	close(cl->fd);
	if (--ctl->nclients == 0)
		pthread_cond_broadcast(&ctl->idle);
	pthread_mutex_unlock(&ctl->lock);
	log_debug("control client closed", "client=%u", cl->id);
	free(cl);
	return NULL;
}

/* Refuse a connection with one error line. */
static void
refuse(int fd, const char *code, const char *message)
{
	struct op_error e = {503, "", ""};
	struct buf b;
	snprintf(e.code, sizeof e.code, "%s", code);
	snprintf(e.message, sizeof e.message, "%s", message);
	buf_init(&b);
	reply_json(&b, NULL, NULL, &e);
	if (!b.oom)
		write_all(fd, b.data, b.len);
	buf_free(&b);
	close(fd);
}

/* Take one new connection. */
static void
accept_one(void *arg, int fd)
{
	struct control *ctl = arg;
	struct ucred cred;
	socklen_t cl_len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl_len) != 0 ||
	    (cred.uid != getuid() && cred.uid != 0)) {
		log_warn("control client refused", "reason=credentials uid=%u",
		    (unsigned)cred.uid);
		refuse(fd, "forbidden", "this socket serves only its owner");
		return;
	}
	pthread_mutex_lock(&ctl->lock);
	if (ctl->nclients >= ctl->max_clients) {
		pthread_mutex_unlock(&ctl->lock);
		log_warn("control client refused", "reason=max_clients max=%d", ctl->max_clients);
		refuse(fd, "too_many_clients", "too many control clients; try again");
		return;
	}
	struct client *cl = calloc(1, sizeof *cl);
	unsigned id = 0;	/* cl is the client thread's once it runs */
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (cl != NULL) {
		cl->ctl = ctl;
		cl->fd = fd;
		cl->id = id = ++ctl->next_id;
		cl->next = ctl->clients;
		ctl->clients = cl;
		ctl->nclients++;
		if (pthread_create(&t, &attr, client_main, cl) != 0) {
			ctl->clients = cl->next;
			ctl->nclients--;
			free(cl);
			cl = NULL;
		}
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_unlock(&ctl->lock);
	if (cl == NULL) {
		log_error("control client refused", "reason=resources");
		refuse(fd, "internal", "notifyd is out of resources");
	} else {
		log_debug("control client connected", "client=%u pid=%d", id, (int)cred.pid);
	}
}

/* Make sure the socket's directory exists and nobody else can swap its contents. */
static int
check_dir(const char *path, char *err, size_t errlen)
{
	char *copy = strdup(path);
	struct stat sb;
	int rc = -1;
	if (copy == NULL)
		return -1;
	const char *dir = dirname(copy);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
	} else if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", dir);
	} else if (sb.st_uid != getuid() && sb.st_uid != 0) {
		snprintf(err, errlen, "%s: owned by uid %u, not by us; refusing to put "
		    "the control socket there", dir, (unsigned)sb.st_uid);
	} else if ((sb.st_mode & 0022) && !(sb.st_mode & S_ISVTX)) {
		snprintf(err, errlen, "%s: writable by others; refusing to put the "
		    "control socket there", dir);
	} else {
		rc = 0;
	}
	free(copy);
	return rc;
}

/* Remove a socket file left by a dead daemon; fail if a live one answers. */
static int
clear_stale(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat sb;
	if (lstat(path, &sb) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
	int e = errno;
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "%s: another notifyd is listening there "
		    "(use --socket to pick another path)", path);
		return -1;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -1;
	}
	log_info("removed stale control socket", "path=%s", path);
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

int
control_start(struct control **out, struct app *app, const char *path,
    int max_clients, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "%s: control socket path longer than %zu bytes",
		    path, sizeof sun.sun_path - 1);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (check_dir(path, err, errlen) != 0 || clear_stale(path, &sun, err, errlen) != 0) {
		if (*err == '\0')
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}

	struct control *ctl = calloc(1, sizeof *ctl);
	if (ctl == NULL)
		return -1;
	ctl->app = app;
	ctl->max_clients = max_clients;
	ctl->path = strdup(path);
	pthread_mutex_init(&ctl->lock, NULL);
	pthread_cond_init(&ctl->idle, NULL);
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* The socket file is created 0600 from the start: no window for others. */
	mode_t old = umask(0177);
	int brc = ctl->fd < 0 ? -1 : bind(ctl->fd, (struct sockaddr *)&sun, sizeof sun);
	umask(old);
	ctl->bound = brc == 0;
	if (brc != 0 || chmod(path, 0600) != 0 || listen(ctl->fd, 128) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		control_stop(ctl);
		return -1;
	}
	if (listener_start(&ctl->listener, ctl->fd, "control", accept_one, ctl) != 0) {
		snprintf(err, errlen, "cannot start the control thread");
		control_stop(ctl);
		return -1;
	}
	*out = ctl;
	return 0;
}

void
control_stop(struct control *ctl)
{
	if (ctl == NULL)
		return;
	listener_stop(ctl->listener);
	if (ctl->fd >= 0)
		close(ctl->fd);
	if (ctl->bound)
		unlink(ctl->path);
	/*
	 * Clients finish what they have read, then see end of file. One that
	 * does not take its replies gets STOP_GRACE, then its socket is cut.
	 */
	pthread_mutex_lock(&ctl->lock);
	for (struct client *cl = ctl->clients; cl; cl = cl->next)
		shutdown(cl->fd, SHUT_RD);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += STOP_GRACE;
	while (ctl->nclients > 0)
		if (pthread_cond_timedwait(&ctl->idle, &ctl->lock, &deadline) == ETIMEDOUT) {
			for (struct client *cl = ctl->clients; cl; cl = cl->next)
				shutdown(cl->fd, SHUT_RDWR);
			log_warn("control clients cut off", "clients=%d", ctl->nclients);
			while (ctl->nclients > 0)
				pthread_cond_wait(&ctl->idle, &ctl->lock);
		}
	pthread_mutex_unlock(&ctl->lock);
	pthread_mutex_destroy(&ctl->lock);
	pthread_cond_destroy(&ctl->idle);
	free(ctl->path);
	free(ctl);
}
