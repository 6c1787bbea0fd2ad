/*
 * smtpd — the development SMTP sink (RFC 5321). One thread per session;
 * every message accepted with 250 is stored whole, with a Received: header
 * prepended, and parsed for the mailbox API.
 */
#define _GNU_SOURCE
#include "smtpd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "app.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "proto.h"
#include "store.h"
#include "util.h"

#define CMD_MAX 2048		/* longest command line, with its CRLF */

struct session {
	struct smtpd	*sd;
	int		 fd;
	SSL		*ssl;		/* after STARTTLS */
	unsigned	 id;
	char		 ip[64];
	char		 helo[256];
	bool		 greeted, authed;
	char		*from;		/* NULL: no transaction */
	json_t		*rcpts;
	char		 rbuf[16384];
	size_t		 rpos, rlen;
	struct session	*next;
	struct session	*next_queued;	/* in smtpd.queue */
};

struct smtpd {
	struct app	*app;
	const struct config *cfg;
	int		 fd, port;
	struct listener	*listener;
	SSL_CTX		*tls;		/* NULL: no STARTTLS */
	pthread_mutex_t	 lock;
	pthread_cond_t	 idle;
	struct session	*sessions;
	int		 nsessions;
	unsigned	 next_id;
	/* Session threads outlive their session a while to take the next one. */
	pthread_cond_t	 work;
	struct session	*queue;		/* handed to an idle thread, not yet taken */
	int		 idle_threads;	/* waiting for work, not yet promised a session */
	int		 nthreads;
	bool		 stopping;
};

/* How long a session thread waits for another session before it ends. */
#define THREAD_IDLE_S 30

/* Write all of buf to the client, through TLS once it is on. */
static int
sio_write(struct session *ss, const void *buf, size_t len)
{
	if (ss->ssl == NULL)
		return write_all(ss->fd, buf, len);
	while (len > 0) {
		int n = SSL_write(ss->ssl, buf, (int)(len > 1 << 30 ? 1 << 30 : len));
		if (n <= 0)
			return -1;
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read what the client sent: >0 bytes, 0 at its end, <0 on error (errno EAGAIN: timeout). */
static ssize_t
sio_read(struct session *ss, void *buf, size_t len)
{
	if (ss->ssl == NULL)
		return recv(ss->fd, buf, len, 0);
	int n = SSL_read(ss->ssl, buf, (int)len);
	if (n > 0)
		return n;
	int e = SSL_get_error(ss->ssl, n);
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -1;
	if (e == SSL_ERROR_WANT_READ) {
		errno = EAGAIN;
		return -1;
	}
	errno = EIO;
	return -1;
}

/* Send one reply line. */
static int
reply(struct session *ss, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int
reply(struct session *ss, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if (n > (int)sizeof line - 3)
		n = (int)sizeof line - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	return sio_write(ss, line, (size_t)n);
}

enum rl { RL_LINE, RL_LONG, RL_EOF, RL_TIMEOUT, RL_ERROR };

/*
 * Read one line with its terminator (LF or CRLF) into out, keeping at most
 * max bytes; a longer line is consumed whole and reported RL_LONG.
 */
static enum rl
read_line(struct session *ss, struct buf *out, size_t max)
{
	bool long_line = false;
	buf_reset(out);
	for (;;) {
		if (ss->rpos == ss->rlen) {
			ssize_t n = sio_read(ss, ss->rbuf, sizeof ss->rbuf);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return errno == EAGAIN || errno == EWOULDBLOCK ? RL_TIMEOUT : RL_ERROR;
			if (n == 0)
				return RL_EOF;
			ss->rpos = 0;
			ss->rlen = (size_t)n;
		}
		char *start = ss->rbuf + ss->rpos;
		char *nl = memchr(start, '\n', ss->rlen - ss->rpos);
		size_t take = nl ? (size_t)(nl - start) + 1 : ss->rlen - ss->rpos;
		if (!long_line && out->len + take > max) {
			long_line = true;
			buf_reset(out);
		}
		if (!long_line)
			buf_put(out, start, take);
		ss->rpos += take;
		if (nl != NULL)
			return long_line ? RL_LONG : RL_LINE;
	}
}

/* Forget the current transaction. */
static void
reset(struct session *ss)
{
	free(ss->from);
	ss->from = NULL;
	json_array_clear(ss->rcpts);
}

/* A random ID of 22 base62 characters, as Mailpit's look. */
static void
new_uid(char out[23])
{
	static const char al[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char r[22];
	RAND_bytes(r, sizeof r);
	for (int i = 0; i < 22; i++)
		out[i] = al[r[i] % 62];
	out[22] = '\0';
}

/* "<addr>" at p (after the colon): the address into out; the rest after it in *rest. */
static bool
path_arg(const char *p, char *out, size_t n, const char **rest)
{
	while (*p == ' ')
		p++;
	if (*p != '<')
		return false;
	const char *end = strchr(p, '>');
	if (end == NULL || (size_t)(end - p - 1) >= n)
		return false;
	memcpy(out, p + 1, (size_t)(end - p - 1));
	out[end - p - 1] = '\0';
	if (strpbrk(out, " <>\t\"") != NULL)
		return false;
	*rest = end + 1;
	return true;
}

/* MAIL FROM:<addr> [SIZE=n] [BODY=...] [SMTPUTF8] [AUTH=...]. */
static void
cmd_mail(struct session *ss, const char *args)
{
	const struct config *cfg = ss->sd->cfg;
	char addr[512];
	const char *rest;
	if (!ss->greeted) {
		reply(ss, "503 5.5.1 Say EHLO or HELO first");
		return;
	}
	if (ss->from != NULL) {
		reply(ss, "503 5.5.1 A transaction is already open; RSET first");
		return;
	}
	if (strcmp(cfg->smtp_auth, "required") == 0 && !ss->authed) {
		reply(ss, "530 5.7.0 Authentication required");
		return;
	}
	if (strncasecmp(args, "FROM:", 5) != 0 || !path_arg(args + 5, addr, sizeof addr, &rest)) {
		reply(ss, "501 5.1.7 Syntax: MAIL FROM:<address>");
		return;
	}
	char *params = strdup(rest), *save = NULL;
	for (char *p = strtok_r(params, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
		if (strncasecmp(p, "SIZE=", 5) == 0) {
			int64_t size;
			if (!parse_int64(p + 5, 0, INT64_MAX, &size)) {
				reply(ss, "501 5.5.4 Bad SIZE parameter");
				goto out;
			}
			if (size > cfg->smtp_max_size) {
				reply(ss, "552 5.3.4 Message size exceeds the limit of %lld bytes",
				    (long long)cfg->smtp_max_size);
				goto out;
			}
		} else if (strncasecmp(p, "BODY=", 5) != 0 && strcasecmp(p, "SMTPUTF8") != 0 &&
		    strncasecmp(p, "AUTH=", 5) != 0) {
			reply(ss, "555 5.5.4 Unsupported parameter %.64s", p);
			goto out;
		}
	}
	ss->from = strdup(addr);
	reply(ss, "250 2.1.0 Sender OK");
out:
	free(params);
}

static void
cmd_rcpt(struct session *ss, const char *args)
{
	char addr[512];
	const char *rest;
	if (ss->from == NULL) {
		reply(ss, "503 5.5.1 MAIL first");
		return;
	}
	if (strncasecmp(args, "TO:", 3) != 0 || !path_arg(args + 3, addr, sizeof addr, &rest) ||
	    *addr == '\0') {
		reply(ss, "501 5.1.3 Syntax: RCPT TO:<address>");
		return;
	}
	if ((int64_t)json_array_size(ss->rcpts) >= ss->sd->cfg->smtp_max_recipients) {
		reply(ss, "452 4.5.3 Too many recipients (at most %lld)",
		    (long long)ss->sd->cfg->smtp_max_recipients);
		return;
	}
	json_array_append_new(ss->rcpts, json_string(addr));
	reply(ss, "250 2.1.5 Recipient OK");
}

/* Store a received message; the ID on success. */
static int
store_message(struct session *ss, struct buf *data, char uid[23])
{
	struct smtpd *sd = ss->sd;
	struct buf raw, search;
	char date[64];
	int64_t now = time_now_ms();
	time_t t = (time_t)(now / 1000);
	struct tm tm;

	new_uid(uid);
	gmtime_r(&t, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_init(&raw);
	buf_init(&search);
	/* The protocol as RFC 3848 names it: S for TLS, A for AUTH. */
	buf_printf(&raw, "Received: from %s (%s) by %s (notifyd) with ESMTP%s%s id %s; %s\r\n",
	    *ss->helo ? ss->helo : "unknown", ss->ip, sd->cfg->smtp_hostname,
	    ss->ssl ? "S" : "", ss->authed ? "A" : "", uid, date);
	buf_put(&raw, data->data ? data->data : "", data->len);
	json_t *summary = mime_summary(raw.data, raw.len, ss->rcpts, &search);
	char *sum_text = json_dumps(summary, JSON_COMPACT);
	char *rcpt_text = json_dumps(ss->rcpts, JSON_COMPACT);
	struct mail_new m = {
		.uid = uid, .received_at = now, .from = ss->from, .rcpt_json = rcpt_text,
		.raw = raw.data, .len = raw.len, .summary_json = sum_text,
		.summary = summary,
		.search = search.data ? search.data : "",
		.keep = sd->cfg->mail_max,
		.older_than = sd->cfg->mail_max_age > 0 ? now - sd->cfg->mail_max_age : 0,
	};
	int rc = raw.oom || sum_text == NULL ? -1 : store_mail_insert(sd->app->store, &m, NULL);
	if (rc > 0)
		log_info("mail received", "id=%s from=%s rcpts=%zu size=%zu", uid, ss->from,
		    json_array_size(ss->rcpts), raw.len);
	free(sum_text);
	free(rcpt_text);
	json_decref(summary);
	buf_free(&raw);
	buf_free(&search);
	return rc;
}

/* DATA: the message up to a line holding only a dot; false when the session must end. */
static bool
cmd_data(struct session *ss, struct buf *line)
{
	const struct config *cfg = ss->sd->cfg;
	struct buf data;
	bool too_big = false;
	char uid[23];

	if (ss->from == NULL) {
		reply(ss, "503 5.5.1 MAIL first");
		return true;
	}
	if (json_array_size(ss->rcpts) == 0) {
		reply(ss, "554 5.5.1 No valid recipients");
		return true;
	}
	reply(ss, "354 End data with <CR><LF>.<CR><LF>");
	buf_init(&data);
	for (;;) {
		enum rl r = read_line(ss, line, (size_t)cfg->smtp_max_size + 3);
		if (r == RL_TIMEOUT)
			reply(ss, "421 4.4.2 %s Idle too long; closing", cfg->smtp_hostname);
		if (r == RL_EOF || r == RL_ERROR || r == RL_TIMEOUT) {
			/* A client gone mid-DATA leaves nothing behind. */
			log_info("smtp session ended in DATA", "session=%u stored=0", ss->id);
			buf_free(&data);
			return false;
		}
		if (r == RL_LINE && (strcmp(line->data, ".\r\n") == 0 || strcmp(line->data, ".\n") == 0))
			break;
		const char *p = line->data ? line->data : "";
		size_t n = line->len;
		if (r == RL_LONG) {
			too_big = true;
			continue;
		}
		if (*p == '.') {		/* dot-unstuffing */
			p++;
			n--;
		}
		if (!too_big && (int64_t)(data.len + n) > cfg->smtp_max_size) {
			too_big = true;
			buf_free(&data);
			buf_init(&data);
		}
		if (!too_big)
			buf_put(&data, p, n);
	}
	if (too_big) {
		log_info("smtp message refused", "session=%u reason=size max=%lld", ss->id,
		    (long long)cfg->smtp_max_size);
		reply(ss, "552 5.3.4 Message size exceeds the limit of %lld bytes",
		    (long long)cfg->smtp_max_size);
		metrics_add(C_SMTP_REJECTED, 1);
	} else if (store_message(ss, &data, uid) > 0) {
		reply(ss, "250 2.0.0 OK: queued as %s", uid);
		metrics_add(C_SMTP_ACCEPTED, 1);
	} else {
		reply(ss, "451 4.3.0 The message could not be stored; try again");
		metrics_add(C_SMTP_REJECTED, 1);
	}
	buf_free(&data);
	reset(ss);
	return true;
}

/* Decode base64 text; -1 when it is not. */
static int
b64_decode(const char *in, unsigned char *out, size_t cap)
{
	size_t len = strcspn(in, "\r\n");
	if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap)
		return -1;
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	if (len >= 1 && in[len - 1] == '=')
		n--;
	if (len >= 2 && in[len - 2] == '=')
		n--;
	return n;
}

/* AUTH PLAIN / LOGIN: with smtp.auth any (or required) every credential is accepted. */
static bool
cmd_auth(struct session *ss, const char *args, struct buf *line)
{
	unsigned char dec[1024];
	char mech[16];
	const char *ir;
	if (strcmp(ss->sd->cfg->smtp_auth, "off") == 0) {
		reply(ss, "502 5.5.1 AUTH is not enabled");
		return true;
	}
	if (ss->authed) {
		reply(ss, "503 5.5.1 Already authenticated");
		return true;
	}
	if (ss->from != NULL) {
		reply(ss, "503 5.5.1 AUTH is not allowed during a transaction");
		return true;
	}
	snprintf(mech, sizeof mech, "%.*s", (int)strcspn(args, " "), args);
	ir = args + strcspn(args, " ");
	while (*ir == ' ')
		ir++;
	int steps = strcasecmp(mech, "PLAIN") == 0 ? 1 : strcasecmp(mech, "LOGIN") == 0 ? 2 : 0;
	if (steps == 0) {
		reply(ss, "504 5.5.4 Unrecognized authentication mechanism");
		return true;
	}
	for (int step = 0; step < steps; step++) {
		const char *resp = ir;
		if (step > 0 || *ir == '\0') {
			reply(ss, steps == 1 ? "334 " : step == 0 ? "334 VXNlcm5hbWU6" : "334 UGFzc3dvcmQ6");
			enum rl r = read_line(ss, line, CMD_MAX);
			if (r != RL_LINE)
				return r == RL_LONG;
			resp = line->data;
		}
		if (resp[0] == '*') {
			reply(ss, "501 5.7.0 Authentication cancelled");
			return true;
		}
		if (b64_decode(resp, dec, sizeof dec) < 0) {
			reply(ss, "501 5.5.2 Cannot decode the response");
			return true;
		}
	}
	ss->authed = true;
	reply(ss, "235 2.7.0 Authentication successful");
	return true;
}

/* EHLO's answer: the extensions, one per line. */
static void
cmd_ehlo(struct session *ss)
{
	const struct config *cfg = ss->sd->cfg;
	char size[64];
	const char *lines[10];
	int n = 0;
	snprintf(size, sizeof size, "SIZE %lld", (long long)cfg->smtp_max_size);
	lines[n++] = size;
	lines[n++] = "PIPELINING";
	lines[n++] = "8BITMIME";
	lines[n++] = "SMTPUTF8";
	lines[n++] = "ENHANCEDSTATUSCODES";
	if (strcmp(cfg->smtp_auth, "off") != 0)
		lines[n++] = "AUTH PLAIN LOGIN";
	if (ss->sd->tls != NULL && ss->ssl == NULL)
		lines[n++] = "STARTTLS";
	lines[n++] = "HELP";
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "250-%s greets %s\r\n", cfg->smtp_hostname, ss->helo);
	for (int i = 0; i < n; i++)
		buf_printf(&b, "250%c%s\r\n", i == n - 1 ? ' ' : '-', lines[i]);
	if (!b.oom)
		sio_write(ss, b.data, b.len);
	buf_free(&b);
}

/* STARTTLS: the handshake, then a fresh session over TLS; false when it must end. */
static bool
cmd_starttls(struct session *ss)
{
	if (ss->sd->tls == NULL || ss->ssl != NULL) {
		reply(ss, ss->ssl ? "503 5.5.1 TLS is already on" : "502 5.5.1 STARTTLS is not configured");
		return true;
	}
	if (ss->rpos != ss->rlen) {
		/* Commands pipelined after STARTTLS would be read as plain text: refuse. */
		reply(ss, "501 5.5.4 Nothing may follow STARTTLS before the handshake");
		return false;
	}
	reply(ss, "220 2.0.0 Ready to start TLS");
	ss->ssl = SSL_new(ss->sd->tls);
	if (ss->ssl == NULL || !SSL_set_fd(ss->ssl, ss->fd) || SSL_accept(ss->ssl) != 1) {
		log_info("smtp tls handshake failed", "session=%u", ss->id);
		return false;
	}
	/* RFC 3207: forget everything said before. */
	ss->greeted = false;
	ss->authed = false;
	ss->helo[0] = '\0';
	reset(ss);
	return true;
}

/* One session, from greeting to goodbye; frees ss. */
static void
session_run(struct session *ss)
{
	struct smtpd *sd = ss->sd;
	struct buf line;
	bool go = true;

	buf_init(&line);
	ss->rcpts = json_array();
	reply(ss, "220 %s ESMTP notifyd", sd->cfg->smtp_hostname);
	while (go) {
		enum rl r = read_line(ss, &line, CMD_MAX);
		if (r == RL_TIMEOUT) {
			reply(ss, "421 4.4.2 %s Idle too long; closing", sd->cfg->smtp_hostname);
			break;
		}
		if (r == RL_EOF || r == RL_ERROR)
			break;
		if (r == RL_LONG) {
			reply(ss, "500 5.5.2 Line too long (at most %d bytes)", CMD_MAX);
			continue;
		}
		char *cmd = line.data;
		cmd[strcspn(cmd, "\r\n")] = '\0';
		size_t vl = strcspn(cmd, " ");
		const char *args = cmd + vl;
		while (*args == ' ')
			args++;
#define IS(v) (vl == strlen(v) && strncasecmp(cmd, v, vl) == 0)
		if (IS("EHLO") || IS("HELO")) {
			if (*args == '\0') {
				reply(ss, "501 5.5.4 Syntax: %.4s hostname", cmd);
				continue;
			}
			snprintf(ss->helo, sizeof ss->helo, "%.*s", (int)strcspn(args, " "), args);
			for (char *p = ss->helo; *p; p++)
				if (!isprint((unsigned char)*p))
					*p = '?';
			ss->greeted = true;
			reset(ss);
			if (IS("EHLO"))
				cmd_ehlo(ss);
			else
				reply(ss, "250 %s", sd->cfg->smtp_hostname);
		} else if (IS("MAIL")) {
			cmd_mail(ss, args);
		} else if (IS("RCPT")) {
			cmd_rcpt(ss, args);
		} else if (IS("DATA")) {
			go = cmd_data(ss, &line);
		} else if (IS("RSET")) {
			reset(ss);
			reply(ss, "250 2.0.0 OK");
		} else if (IS("NOOP")) {
			reply(ss, "250 2.0.0 OK");
		} else if (IS("QUIT")) {
			reply(ss, "221 2.0.0 %s closing", sd->cfg->smtp_hostname);
			go = false;
		} else if (IS("VRFY") || IS("EXPN")) {
			reply(ss, "502 5.5.1 %.4s is not supported", cmd);
		} else if (IS("AUTH")) {
			go = cmd_auth(ss, args, &line);
		} else if (IS("STARTTLS")) {
			go = cmd_starttls(ss);
		} else if (IS("HELP")) {
			reply(ss, "214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP QUIT AUTH");
		} else {
			log_info("smtp command refused", "session=%u command=%.16s", ss->id, cmd);
			reply(ss, "500 5.5.2 Command not recognized");
		}
#undef IS
	}
	reset(ss);
	json_decref(ss->rcpts);
	buf_free(&line);
	if (ss->ssl != NULL) {
		SSL_shutdown(ss->ssl);
		SSL_free(ss->ssl);
	}
	pthread_mutex_lock(&sd->lock);
	for (struct session **p = &sd->sessions; *p; p = &(*p)->next)
		if (*p == ss) {
			*p = ss->next;
			break;
		}
	close(ss->fd);
	if (--sd->nsessions == 0)
		pthread_cond_broadcast(&sd->idle);
	pthread_mutex_unlock(&sd->lock);
	free(ss);
}

/*
 * A session thread: runs its first session, then waits a while for the
 * next instead of ending, so a burst of short connections does not pay a
 * thread creation each.
 */
static void *
session_main(void *arg)
{
	struct session *ss = arg;
	struct smtpd *sd = ss->sd;
	while (ss != NULL) {
		session_run(ss);
		ss = NULL;
		pthread_mutex_lock(&sd->lock);
		sd->idle_threads++;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += THREAD_IDLE_S;
		while (sd->queue == NULL && !sd->stopping)
			if (pthread_cond_timedwait(&sd->work, &sd->lock, &until) != 0)
				break;
		if (sd->queue != NULL) {
			ss = sd->queue;		/* accept_one counted us busy already */
			sd->queue = ss->next_queued;
		} else {
			sd->idle_threads--;
		}
		if (ss == NULL && --sd->nthreads == 0)
			pthread_cond_broadcast(&sd->idle);
		pthread_mutex_unlock(&sd->lock);
	}
	return NULL;
}

/* Take one connection: a session thread, or 421 when there are too many. */
static void
accept_one(void *arg, int fd)
{
	struct smtpd *sd = arg;
	struct sockaddr_storage sa;
	socklen_t sl = sizeof sa;
	getpeername(fd, (struct sockaddr *)&sa, &sl);
	struct timeval tv = {(time_t)(sd->cfg->smtp_idle_timeout / 1000),
	    (suseconds_t)(sd->cfg->smtp_idle_timeout % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct timeval stv = {30, 0};	/* a client not taking replies is not kept */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof stv);
	pthread_mutex_lock(&sd->lock);
	if (sd->nsessions >= sd->cfg->smtp_max_sessions) {
		pthread_mutex_unlock(&sd->lock);
		static const char busy[] = "421 4.3.2 Too many connections; try again later\r\n";
		write_all(fd, busy, sizeof busy - 1);
		close(fd);
		log_warn("smtp session refused", "reason=max_sessions");
		return;
	}
	struct session *ss = calloc(1, sizeof *ss);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (ss != NULL) {
		ss->sd = sd;
		ss->fd = fd;
		ss->id = ++sd->next_id;
		getnameinfo((struct sockaddr *)&sa, sl, ss->ip, sizeof ss->ip, NULL, 0, NI_NUMERICHOST);
		ss->next = sd->sessions;
		sd->sessions = ss;
		sd->nsessions++;
		if (sd->idle_threads > 0) {
			/* Queued behind any other handed over: FIFO keeps the order of arrival. */
			struct session **q = &sd->queue;
			while (*q)
				q = &(*q)->next_queued;
			*q = ss;
			sd->idle_threads--;
			pthread_cond_signal(&sd->work);
		} else if (pthread_create(&t, &attr, session_main, ss) == 0) {
			sd->nthreads++;
		} else {
			sd->sessions = ss->next;
			sd->nsessions--;
			free(ss);
			ss = NULL;
		}
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_unlock(&sd->lock);
	if (ss == NULL)
		close(fd);
}

int
smtpd_start(struct smtpd **out, struct app *app, char *err, size_t errlen)
{
	char host[256], portstr[16];
	int port;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST},
	    *ai = NULL;
	if (!config_parse_listen(app->cfg->smtp_listen, host, sizeof host, &port) || port < 0) {
		snprintf(err, errlen, "smtp.listen: '%s' is not HOST:PORT", app->cfg->smtp_listen);
		return -1;
	}
	snprintf(portstr, sizeof portstr, "%d", port);
	if (getaddrinfo(host, portstr, &hints, &ai) != 0) {
		hints.ai_flags = AI_PASSIVE;
		if (getaddrinfo(host, portstr, &hints, &ai) != 0) {
			snprintf(err, errlen, "smtp.listen: cannot resolve '%s'", host);
			return -1;
		}
	}
	struct smtpd *sd = calloc(1, sizeof *sd);
	sd->app = app;
	sd->cfg = app->cfg;
	sd->fd = -1;
	pthread_mutex_init(&sd->lock, NULL);
	pthread_cond_init(&sd->idle, NULL);
	pthread_cond_init(&sd->work, NULL);
	if (*app->cfg->smtp_tls_cert != '\0' || *app->cfg->smtp_tls_key != '\0') {
		sd->tls = SSL_CTX_new(TLS_server_method());
		if (sd->tls == NULL ||
		    SSL_CTX_use_certificate_chain_file(sd->tls, app->cfg->smtp_tls_cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(sd->tls, app->cfg->smtp_tls_key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(sd->tls) != 1) {
			char e[256];
			ERR_error_string_n(ERR_get_error(), e, sizeof e);
			snprintf(err, errlen, "smtp.tls_cert/tls_key: cannot load %s / %s: %s",
			    app->cfg->smtp_tls_cert, app->cfg->smtp_tls_key, e);
			freeaddrinfo(ai);
			smtpd_stop(sd);
			return -1;
		}
		SSL_CTX_set_min_proto_version(sd->tls, TLS1_2_VERSION);
	}
		sd->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (sd->fd >= 0)
		setsockopt(sd->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (sd->fd < 0 || bind(sd->fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(sd->fd, 256) != 0) {
		snprintf(err, errlen, "cannot listen for SMTP on %s: %s", app->cfg->smtp_listen,
		    strerror(errno));
		freeaddrinfo(ai);
		smtpd_stop(sd);
		return -1;
	}
	freeaddrinfo(ai);
	struct sockaddr_storage sa;
	socklen_t sl = sizeof sa;
	getsockname(sd->fd, (struct sockaddr *)&sa, &sl);
	sd->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port :
	    ((struct sockaddr_in *)&sa)->sin_port);
	if (listener_start(&sd->listener, sd->fd, "smtp", accept_one, sd) != 0) {
		snprintf(err, errlen, "cannot start the SMTP thread");
		smtpd_stop(sd);
		return -1;
	}
	*out = sd;
	return 0;
}

int
smtpd_port(const struct smtpd *sd)
{
	return sd->port;
}

void
smtpd_stop(struct smtpd *sd)
{
	if (sd == NULL)
		return;
	listener_stop(sd->listener);
	if (sd->fd >= 0)
		close(sd->fd);
	pthread_mutex_lock(&sd->lock);
	for (struct session *ss = sd->sessions; ss; ss = ss->next)
		shutdown(ss->fd, SHUT_RDWR);
	sd->stopping = true;
	pthread_cond_broadcast(&sd->work);
	while (sd->nsessions > 0 || sd->nthreads > 0)
		pthread_cond_wait(&sd->idle, &sd->lock);
	pthread_mutex_unlock(&sd->lock);
	pthread_mutex_destroy(&sd->lock);
	pthread_cond_destroy(&sd->idle);
	pthread_cond_destroy(&sd->work);
	SSL_CTX_free(sd->tls);
	free(sd);
}
