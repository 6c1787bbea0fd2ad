/*
 * smtpd — the development SMTP sink (RFC 5321).
 *
 * One thread runs every session with epoll: it reads commands, answers
 * them, gathers each message and parses it (a big one is left to the
 * committer). The committer thread stores the messages that arrived
 * meanwhile in one transaction (one fsync) and hands them back for their
 * 250. Every message accepted with 250 is stored whole, with a Received:
 * header prepended. A session does nothing else while its message is being
 * stored, so pipelined commands after the dot wait their turn.
 */
#define _GNU_SOURCE
#include "smtpd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "store.h"
#include "text.h"
#include "util.h"

#define CMD_MAX		2048		/* longest command line, with its CRLF */
#define OUT_MAX		65536		/* replies unread by the client before it is not read */
#define CLOSE_GRACE_MS	5000		/* for the last reply to leave before close */
#define PARSE_INLINE	(256 * 1024)	/* bigger messages are parsed by the committer */

enum sstate {
	SS_CMD,			/* reading commands */
	SS_AUTH,		/* reading an AUTH response */
	SS_DATA,		/* reading the message */
	SS_STORING,		/* the message is with the committer: the session waits */
	SS_TLS,			/* STARTTLS said yes: the handshake, once that reply is out */
	SS_CLOSING,		/* the last reply is going out, then close */
};

struct session {
	struct smtpd	*sd;
	int		 fd;
	SSL		*ssl;		/* after STARTTLS */
	unsigned	 id;
	enum sstate	 state;
	char		 ip[64];
	char		 helo[256];
	bool		 greeted, authed;
	char		 user[256];	/* the name AUTH gave, for Mailpit's Username */
	char		*from;		/* NULL: no transaction */
	json_t		*rcpts;
	int		 auth_step, auth_steps;
	struct buf	 line;		/* the line being read */
	bool		 long_line;	/* it is over the limit: skipped to its end */
	size_t		 line_seen;	/* its length, the skipped part included */
	struct buf	 data;		/* the message so far, dot-unstuffed */
	bool		 too_big;
	bool		 line_too_long;	/* a line of the message is over max_line_length */
	bool		 over_budget;	/* receiving it would pass max_inflight */
	bool		 disk_low;	/* storing it would eat into disk_reserve */
	int64_t		 charged;	/* its bytes counted in smtpd.inflight */
	int64_t		 started;	/* ms: max_session_time counts from here */
	struct buf	 out;		/* replies not yet written */
	size_t		 opos;		/* how much of out is written */
	int		 tls_retry;	/* an SSL_write to retry with this length */
	int64_t		 deadline;	/* ms: silent until then, it is closed */
	/* Its message, while it is being stored. */
	struct buf	 raw;		/* Received: and the message */
	char		 uid[23];
	int64_t		 received_at;
	bool		 parsed;
	bool		 too_deep;	/* its MIME parts nest deeper than MIME_MAX_DEPTH */
	json_t		*summary;	/* parsed, for the mailbox API */
	char		*summary_text, *rcpt_text;
	struct buf	 search;	/* lower-cased text searched by queries */
	int		 stored;	/* the store's answer */
	bool		 readable;	/* the socket may hold more than was read */
	bool		 hangup;	/* the client closed its side (or the connection broke) */
	char		 rbuf[16384];
	size_t		 rpos, rlen;
	struct session	*prev, *next;	/* in smtpd.sessions */
	struct session	*next_job;	/* in smtpd.jobs or smtpd.done */
};

struct smtpd {
	struct app	*app;
	const struct config *cfg;
	int		 fd, port;
	int		 ep;		/* epoll: the listener, the wake-up, the sessions */
	int		 wake;		/* eventfd: stored messages, or stop */
	SSL_CTX		*tls;		/* NULL: no STARTTLS */
	pthread_t	 loop;
	bool		 loop_running;
	bool		 stop;		/* atomic: smtpd_stop asks the loop to end */
	/* The loop's own. */
	struct session	*sessions;
	int		 nsessions, nstoring;
	int64_t		 inflight;	/* bytes of messages received or stored, all sessions */
	unsigned	 next_id;
	int64_t		 next_sweep;	/* ms: the earliest deadline, or later */
	int64_t		 accept_paused;	/* ms: out of descriptors, accept again then */
	bool		 ending;	/* stopping: answer the stored, close the rest */
	struct session	*newjobs, **newjobs_tail;	/* to hand over this round */
	/* Shared with the committer, under lock: jobs -> committer -> done. */
	pthread_mutex_t	 lock;
	pthread_cond_t	 work;
	struct session	*jobs, **jobs_tail;
	struct session	*done, **done_tail;
	bool		 committer_stop;
	pthread_t	 committer;
	bool		 committer_running;
};

static void	parse_message(struct session *ss);

/* Write what can be written of the replies: 0 all out, 1 the rest must wait, -1 broken. */
static int
flush(struct session *ss)
{
	while (ss->opos < ss->out.len) {
		const char *p = ss->out.data + ss->opos;
		size_t len = ss->out.len - ss->opos;
		ssize_t n;
		if (ss->ssl == NULL) {
			n = send(ss->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
		} else {
			/* A retried SSL_write must be the same write: out only grows after it. */
			int want = ss->tls_retry > 0 ? ss->tls_retry : (int)(len > INT_MAX ? INT_MAX : len);
			int r = SSL_write(ss->ssl, p, want);
			if (r <= 0) {
				int e = SSL_get_error(ss->ssl, r);
				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
					ss->tls_retry = want;
					return 1;
				}
				return -1;
			}
			ss->tls_retry = 0;
			n = r;
		}
		ss->opos += (size_t)n;
	}
	buf_reset(&ss->out);
	ss->opos = 0;
	return 0;
}

/* Read what the client sent: >0 bytes, 0 at its end, <0 with errno (EAGAIN: nothing yet). */
static ssize_t
sio_read(struct session *ss, void *buf, size_t len)
{
	if (ss->ssl == NULL)
		return recv(ss->fd, buf, len, MSG_DONTWAIT);
	ERR_clear_error();
	int n = SSL_read(ss->ssl, buf, (int)(len > INT_MAX ? INT_MAX : len));
	if (n > 0)
		return n;
	int e = SSL_get_error(ss->ssl, n);
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	errno = EIO;
	return -1;
}

/* Queue one reply line. */
static void
reply(struct session *ss, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
reply(struct session *ss, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&ss->out, fmt, ap);
	va_end(ap);
	buf_put(&ss->out, "\r\n", 2);
}

/*
 * Count n more (or, negative, fewer) bytes of ss's message against
 * max_inflight: its lines as they come, then the copy stored, until its
 * answer. 256 sessions of 25 MiB each would otherwise hold ~12 GiB.
 */
static void
charge(struct session *ss, int64_t n)
{
	ss->charged += n;
	ss->sd->inflight += n;
}

/* Forget the current transaction. */
static void
reset(struct session *ss)
{
	free(ss->from);
	ss->from = NULL;
	json_array_clear(ss->rcpts);
	buf_free(&ss->data);
	buf_init(&ss->data);
	charge(ss, -ss->charged);
	ss->too_big = ss->line_too_long = ss->over_budget = ss->disk_low = false;
}

/* The session is over: close it and forget it. Never while it is being stored. */
static void
end_session(struct session *ss)
{
	struct smtpd *sd = ss->sd;
	if (ss->ssl != NULL) {
		SSL_shutdown(ss->ssl);
		SSL_free(ss->ssl);
	}
	close(ss->fd);		/* which takes it out of epoll */
	if (ss->prev)
		ss->prev->next = ss->next;
	else
		sd->sessions = ss->next;
	if (ss->next)
		ss->next->prev = ss->prev;
	sd->nsessions--;
	charge(ss, -ss->charged);
	free(ss->from);
	json_decref(ss->rcpts);
	buf_free(&ss->line);
	buf_free(&ss->data);
	buf_free(&ss->out);
	buf_free(&ss->raw);
	free(ss);
}

/* The session is closed if nothing happens by then (ms). */
static void
set_deadline(struct session *ss, int64_t at)
{
	ss->deadline = at;
	if (at < ss->sd->next_sweep)
		ss->sd->next_sweep = at;
}

/* The client is silent (from now): give it until the idle timeout, or the end of its time. */
static void
touch(struct session *ss, int64_t now)
{
	int64_t idle = now + ss->sd->cfg->smtp_idle_timeout;
	int64_t last = ss->started + ss->sd->cfg->smtp_max_session;
	set_deadline(ss, idle < last ? idle : last);
}


/* Say the last reply and close once it is out (or the grace is over). */
static void
closing(struct session *ss)
{
	ss->state = SS_CLOSING;
	set_deadline(ss, time_now_ms() + CLOSE_GRACE_MS);
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
			if (size > cfg->smtp_max_inflight - ss->sd->inflight) {
				log_info("smtp message refused", "session=%u reason=inflight size=%lld",
				    ss->id, (long long)size);
				reply(ss, "452 4.3.1 Insufficient system storage; try again later");
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

/* DATA: the go-ahead; the message follows, a line at a time. */
static void
cmd_data(struct session *ss)
{
	if (ss->from == NULL) {
		reply(ss, "503 5.5.1 MAIL first");
		return;
	}
	if (json_array_size(ss->rcpts) == 0) {
		reply(ss, "554 5.5.1 No valid recipients");
		return;
	}
	reply(ss, "354 End data with <CR><LF>.<CR><LF>");
	buf_free(&ss->data);
	buf_init(&ss->data);
	ss->too_big = false;
	ss->state = SS_DATA;
}

/*
 * Is there room on the data directory's file system for n more bytes of
 * mail, beyond disk_reserve? The reserve is for notification writes: a
 * flood of mail must not be what fills the disk under them.
 */
static bool
disk_has_room(const struct config *cfg, int64_t n)
{
	struct statvfs fs;
	if (cfg->smtp_disk_reserve == 0 || statvfs(cfg->data_dir, &fs) != 0)
		return true;
	/* The message is written twice, to the WAL and then the database. */
	return (int64_t)fs.f_bavail * (int64_t)fs.f_frsize - 2 * n >= cfg->smtp_disk_reserve;
}

/*
 * Append the message, less its own Return-Path fields (each with its
 * continuation lines) among the header fields: one was put in its place.
 */
static void
put_without_return_path(struct buf *out, const char *p, size_t len)
{
	const char *end = p + len;
	bool skipping = false;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;
		if (*p == '\r' || *p == '\n')		/* the blank line: the body follows */
			break;
		if (*p != ' ' && *p != '\t')
			skipping = (size_t)(end - p) >= 12 && strncasecmp(p, "Return-Path:", 12) == 0;
		if (!skipping)
			buf_put(out, p, (size_t)(next - p));
		p = next;
	}
	buf_put(out, p, (size_t)(end - p));
}

/*
 * The message as stored: RFC 5321 4.4's Return-Path (the envelope
 * sender, which Mailpit shows as ReturnPath) in place of any the client
 * sent, a Received: line (with, the protocol as RFC 3848 names it), then
 * data.
 */
static void
put_received(struct buf *raw, const char *from, const char *helo, const char *ip,
    const char *host, const char *with, const char *uid, int64_t at, const char *data,
    size_t len)
{
	char date[64];
	struct tm tm;
	time_t t = (time_t)(at / 1000);
	gmtime_r(&t, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_reserve(raw, len + 1024);
	buf_printf(raw, "Return-Path: <%s>\r\n", from);
	buf_printf(raw, "Received: from %s (%s) by %s (notifyd) with %s id %s; %s\r\n",
	    *helo ? helo : "unknown", ip, host, with, uid, date);
	put_without_return_path(raw, data, len);
}

/* The dot: refuse the message, or hand it to the committer. */
static void
end_data(struct session *ss)
{
	struct smtpd *sd = ss->sd;
	const struct config *cfg = sd->cfg;

	if (!ss->too_big && !ss->line_too_long && !ss->over_budget && !ss->data.oom)
		ss->disk_low = !disk_has_room(cfg, (int64_t)ss->data.len);
	if (ss->too_big || ss->line_too_long || ss->over_budget || ss->disk_low || ss->data.oom) {
		if (ss->too_big) {
			log_info("smtp message refused", "session=%u reason=size max=%lld", ss->id,
			    (long long)cfg->smtp_max_size);
			reply(ss, "552 5.3.4 Message size exceeds the limit of %lld bytes",
			    (long long)cfg->smtp_max_size);
		} else if (ss->line_too_long) {
			log_info("smtp message refused", "session=%u reason=line max=%lld", ss->id,
			    (long long)cfg->smtp_max_line);
			reply(ss, "500 5.5.2 Line too long (at most %lld octets with CRLF); "
			    "message not stored", (long long)cfg->smtp_max_line);
		} else if (ss->over_budget) {
			log_info("smtp message refused", "session=%u reason=inflight max=%lld", ss->id,
			    (long long)cfg->smtp_max_inflight);
			reply(ss, "451 4.3.1 Too much mail in flight; try again later");
		} else if (ss->disk_low) {
			log_warn("smtp message refused", "session=%u reason=disk reserve=%lld", ss->id,
			    (long long)cfg->smtp_disk_reserve);
			reply(ss, "452 4.3.1 Insufficient system storage; try again later");
		} else {
			reply(ss, "451 4.3.0 The message could not be stored; try again");
		}
		metrics_add(C_SMTP_REJECTED, 1);
		reset(ss);
		ss->state = SS_CMD;
		return;
	}
	new_uid(ss->uid);
	ss->received_at = time_now_ms();
	buf_reset(&ss->raw);
	/* The sink is the final delivery. ESMTP, S for TLS, A for AUTH. */
	put_received(&ss->raw, ss->from, ss->helo, ss->ip, cfg->smtp_hostname,
	    ss->ssl ? (ss->authed ? "ESMTPSA" : "ESMTPS") : ss->authed ? "ESMTPA" : "ESMTP",
	    ss->uid, ss->received_at, ss->data.data ? ss->data.data : "", ss->data.len);
	charge(ss, (int64_t)ss->raw.len - (int64_t)ss->data.len);	/* the copy replaces it */
	buf_free(&ss->data);
	buf_init(&ss->data);
	/* Parsed here while the committer commits the ones before (unless it takes a while). */
	if (ss->raw.len <= PARSE_INLINE)
		parse_message(ss);
	ss->state = SS_STORING;
	sd->nstoring++;
	ss->next_job = NULL;
	*sd->newjobs_tail = ss;
	sd->newjobs_tail = &ss->next_job;
}

/* One line of the message, seen octets long (kept only when not long). */
static void
data_line(struct session *ss, bool long_line, size_t seen)
{
	const struct buf *l = &ss->line;
	if (!long_line && (strcmp(l->data, ".\r\n") == 0 || strcmp(l->data, ".\n") == 0)) {
		end_data(ss);
		return;
	}
	if (long_line) {	/* the size limit, the more basic, is still checked */
		ss->line_too_long = true;
		if ((int64_t)(ss->data.len + seen) > ss->sd->cfg->smtp_max_size)
			ss->too_big = true;
	}
	if (ss->too_big || ss->line_too_long || ss->over_budget) {
		buf_free(&ss->data);
		buf_init(&ss->data);
		charge(ss, -ss->charged);
		return;
	}
	const char *p = l->data;
	size_t n = l->len;
	if (*p == '.') {		/* dot-unstuffing */
		p++;
		n--;
	}
	if ((int64_t)(ss->data.len + n) > ss->sd->cfg->smtp_max_size)
		ss->too_big = true;
	else if (ss->sd->inflight + (int64_t)n > ss->sd->cfg->smtp_max_inflight)
		ss->over_budget = true;
	if (ss->too_big || ss->over_budget) {	/* read to the dot, keep nothing */
		buf_free(&ss->data);
		buf_init(&ss->data);
		charge(ss, -ss->charged);
		return;
	}
	buf_put(&ss->data, p, n);
	charge(ss, (int64_t)n);
}

/* Decode base64 text; -1 when it is not. */
static int
b64_decode(const char *in, unsigned char *out, size_t cap)
{
	size_t len = strcspn(in, "\r\n");
	if (len == 0 || len / 4 * 3 > cap)
		return -1;
	return (int)base64_decode(in, len, out);
}

/* The prompt for the next AUTH response. */
static void
auth_prompt(struct session *ss)
{
	reply(ss, "%s", ss->auth_steps == 1 ? "334 " :
	    ss->auth_step == 0 ? "334 VXNlcm5hbWU6" : "334 UGFzc3dvcmQ6");
}

/* One AUTH response (the initial one, or one read in SS_AUTH): any credential is good. */
static void
auth_response(struct session *ss, const char *resp)
{
	unsigned char dec[1024];
	ss->state = SS_CMD;
	if (resp[0] == '*') {
		reply(ss, "501 5.7.0 Authentication cancelled");
		return;
	}
	int n = b64_decode(resp, dec, sizeof dec);
	if (n < 0) {
		reply(ss, "501 5.5.2 Cannot decode the response");
		return;
	}
	/* PLAIN is authzid NUL authcid NUL password; LOGIN's first answer is the name. */
	if (ss->auth_steps == 1) {
		const unsigned char *nul = memchr(dec, '\0', (size_t)n);
		size_t at = nul ? (size_t)(nul - dec) + 1 : (size_t)n;
		snprintf(ss->user, sizeof ss->user, "%.*s", (int)strnlen((const char *)dec + at,
		    (size_t)n - at), (const char *)dec + at);
	} else if (ss->auth_step == 0) {
		snprintf(ss->user, sizeof ss->user, "%.*s", (int)strnlen((const char *)dec,
		    (size_t)n), (const char *)dec);
	}
	if (++ss->auth_step < ss->auth_steps) {
		ss->state = SS_AUTH;
		auth_prompt(ss);
		return;
	}
	ss->authed = true;
	reply(ss, "235 2.7.0 Authentication successful");
}

/* AUTH PLAIN / LOGIN: with smtp.auth any (or required) every credential is accepted. */
static void
cmd_auth(struct session *ss, const char *args)
{
	char mech[16];
	const char *ir;
	if (strcmp(ss->sd->cfg->smtp_auth, "off") == 0) {
		reply(ss, "502 5.5.1 AUTH is not enabled");
		return;
	}
	if (ss->authed) {
		reply(ss, "503 5.5.1 Already authenticated");
		return;
	}
	if (ss->from != NULL) {
		reply(ss, "503 5.5.1 AUTH is not allowed during a transaction");
		return;
	}
	snprintf(mech, sizeof mech, "%.*s", (int)strcspn(args, " "), args);
	ir = args + strcspn(args, " ");
	while (*ir == ' ')
		ir++;
	ss->auth_steps = strcasecmp(mech, "PLAIN") == 0 ? 1 : strcasecmp(mech, "LOGIN") == 0 ? 2 : 0;
	ss->auth_step = 0;
	if (ss->auth_steps == 0) {
		reply(ss, "504 5.5.4 Unrecognized authentication mechanism");
		return;
	}
	if (*ir != '\0') {
		auth_response(ss, ir);
		return;
	}
	ss->state = SS_AUTH;
	auth_prompt(ss);
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
	reply(ss, "250-%s greets %s", cfg->smtp_hostname, ss->helo);
	for (int i = 0; i < n; i++)
		reply(ss, "250%c%s", i == n - 1 ? ' ' : '-', lines[i]);
}

/* STARTTLS: yes, and the handshake once that is out; or no. */
static void
cmd_starttls(struct session *ss)
{
	if (ss->sd->tls == NULL || ss->ssl != NULL) {
		reply(ss, ss->ssl ? "503 5.5.1 TLS is already on" : "502 5.5.1 STARTTLS is not configured");
		return;
	}
	if (ss->rpos != ss->rlen) {
		/* Commands pipelined after STARTTLS would be read as plain text: refuse. */
		reply(ss, "501 5.5.4 Nothing may follow STARTTLS before the handshake");
		closing(ss);
		return;
	}
	reply(ss, "220 2.0.0 Ready to start TLS");
	ss->state = SS_TLS;
}

/* The TLS handshake: 1 done, 0 it must wait for the client, -1 failed. */
static int
handshake(struct session *ss)
{
	if (ss->ssl == NULL) {
		ss->ssl = SSL_new(ss->sd->tls);
		if (ss->ssl == NULL || !SSL_set_fd(ss->ssl, ss->fd)) {
			log_info("smtp tls handshake failed", "session=%u", ss->id);
			return -1;
		}
		SSL_set_mode(ss->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		SSL_set_accept_state(ss->ssl);
	}
	ERR_clear_error();
	int r = SSL_do_handshake(ss->ssl);
	if (r != 1) {
		int e = SSL_get_error(ss->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		log_info("smtp tls handshake failed", "session=%u", ss->id);
		return -1;
	}
	/* RFC 3207: forget everything said before. */
	ss->greeted = false;
	ss->authed = false;
	ss->user[0] = '\0';
	ss->helo[0] = '\0';
	reset(ss);
	ss->state = SS_CMD;
	return 1;
}

/* One command line (over CMD_MAX when long). */
static void
command(struct session *ss, bool long_line)
{
	struct smtpd *sd = ss->sd;
	if (long_line) {
		reply(ss, "500 5.5.2 Line too long (at most %d bytes)", CMD_MAX);
		return;
	}
	char *cmd = ss->line.data;
	cmd[strcspn(cmd, "\r\n")] = '\0';
	size_t vl = strcspn(cmd, " ");
	const char *args = cmd + vl;
	while (*args == ' ')
		args++;
#define IS(v) (vl == strlen(v) && strncasecmp(cmd, v, vl) == 0)
	if (IS("EHLO") || IS("HELO")) {
		if (*args == '\0') {
			reply(ss, "501 5.5.4 Syntax: %.4s hostname", cmd);
			return;
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
		cmd_data(ss);
	} else if (IS("RSET")) {
		reset(ss);
		reply(ss, "250 2.0.0 OK");
	} else if (IS("NOOP")) {
		reply(ss, "250 2.0.0 OK");
	} else if (IS("QUIT")) {
		reply(ss, "221 2.0.0 %s closing", sd->cfg->smtp_hostname);
		closing(ss);
	} else if (IS("VRFY") || IS("EXPN")) {
		reply(ss, "502 5.5.1 %.4s is not supported", cmd);
	} else if (IS("AUTH")) {
		cmd_auth(ss, args);
	} else if (IS("STARTTLS")) {
		cmd_starttls(ss);
	} else if (IS("HELP")) {
		/* The commands this session can use, as EHLO offers them. */
		reply(ss, "214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP%s%s",
		    strcmp(sd->cfg->smtp_auth, "off") != 0 ? " AUTH" : "",
		    sd->tls != NULL && ss->ssl == NULL ? " STARTTLS" : "");
	} else {
		log_info("smtp command refused", "session=%u command=%.16s", ss->id, cmd);
		reply(ss, "500 5.5.2 Command not recognized");
	}
#undef IS
}

/* Take what was read, a line at a time, while the session reads. */
static void
consume(struct session *ss)
{
	while (ss->rpos < ss->rlen &&
	    (ss->state == SS_CMD || ss->state == SS_AUTH || ss->state == SS_DATA)) {
		size_t max = ss->state == SS_DATA ? (size_t)ss->sd->cfg->smtp_max_line : CMD_MAX;
		char *start = ss->rbuf + ss->rpos;
		char *nl = memchr(start, '\n', ss->rlen - ss->rpos);
		size_t take = nl ? (size_t)(nl - start) + 1 : ss->rlen - ss->rpos;
		if (!ss->long_line && ss->line.len + take > max) {
			ss->long_line = true;
			buf_reset(&ss->line);
		}
		if (!ss->long_line)
			buf_put(&ss->line, start, take);
		ss->line_seen += take;
		ss->rpos += take;
		if (nl == NULL)
			return;
		bool long_line = ss->long_line || ss->line.oom;
		ss->long_line = false;
		size_t seen = ss->line_seen;
		ss->line_seen = 0;
		if (ss->state == SS_DATA) {
			data_line(ss, long_line, seen);
		} else if (ss->state == SS_AUTH) {
			if (long_line) {
				ss->state = SS_CMD;
				reply(ss, "500 5.5.2 Line too long (at most %d bytes)", CMD_MAX);
			} else {
				auth_response(ss, ss->line.data);
			}
		} else {
			command(ss, long_line);
		}
		buf_reset(&ss->line);
	}
}

/* Whether the session reads what the client says (in other states it waits). */
static bool
reading(const struct session *ss)
{
	return (ss->state == SS_CMD || ss->state == SS_AUTH || ss->state == SS_DATA) &&
	    ss->out.len - ss->opos <= OUT_MAX;	/* a client not reading its replies waits */
}

/*
 * Move a session along as far as it goes without waiting: read and act on
 * all the client said, then write every reply at once. It may end (and be
 * freed).
 */
static void
pump(struct session *ss)
{
	for (;;) {
		bool gone = false, held;
		for (;;) {
			if ((held = !reading(ss)))
				break;
			if (ss->rpos < ss->rlen) {
				consume(ss);
				continue;
			}
			/* Edge-triggered: a short read emptied the socket; new data will say so. */
			if (!ss->readable && ss->ssl == NULL)
				break;
			ssize_t n = sio_read(ss, ss->rbuf, sizeof ss->rbuf);
			if (n > 0) {
				ss->rpos = 0;
				ss->rlen = (size_t)n;
				/* Its end may have come with the last data: no new edge then. */
				ss->readable = (size_t)n == sizeof ss->rbuf || ss->hangup;
				touch(ss, time_now_ms());
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			ss->readable = false;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			gone = true;	/* the client left, or broke the connection */
			break;
		}
		int w = flush(ss);
		if (ss->state == SS_STORING)
			return;		/* the rest once the committer gives it back */
		if (gone || w < 0) {
			/* A message half sent is not kept. */
			if (ss->state == SS_DATA)
				log_info("smtp session ended in DATA", "session=%u stored=0", ss->id);
			end_session(ss);
			return;
		}
		if (ss->state == SS_CLOSING) {
			if (w == 0)
				end_session(ss);
			return;
		}
		if (ss->state != SS_TLS) {
			/* Replies held up reading: now they are out, read on. */
			if (w == 0 && held && reading(ss))
				continue;
			return;
		}
		if (w > 0)
			return;
		int h = handshake(ss);
		if (h < 0)
			end_session(ss);
		if (h <= 0)
			return;
	}
}

/* Append list (ending at *tail) to a queue; under sd->lock. */
static void
enqueue(struct session ***qtail, struct session *list, struct session **tail)
{
	**qtail = list;
	*qtail = tail;
}

/* The summary of raw for the mailbox API, with the name AUTH gave (Mailpit's Username). */
static json_t *
summarize(const struct buf *raw, json_t *rcpts, struct buf *search, const char *user)
{
	json_t *sum = mime_summary(raw->data, raw->len, rcpts, search);
	json_t *u = json_string(user);	/* NULL when it is not UTF-8 */
	json_object_set_new(sum, "Username", u ? u : json_string(""));
	return sum;
}

/* The mailbox's retention rules, for a message stored at now. */
static void
keep_rules(struct mail_new *m, const struct config *cfg, int64_t now)
{
	m->keep = cfg->mail_max;
	m->keep_bytes = cfg->mail_max_bytes;
	m->older_than = cfg->mail_max_age > 0 ? now - cfg->mail_max_age : 0;
}

/* Parse a message for the mailbox API, off the loop (a big one takes a while). */
static void
parse_message(struct session *ss)
{
	ss->parsed = true;
	buf_init(&ss->search);
	/* Refused before GMime, which recurses per level, ever sees it. */
	ss->too_deep = !mime_depth_ok(ss->raw.data, ss->raw.len, MIME_MAX_DEPTH);
	if (ss->too_deep)
		return;
	ss->summary = summarize(&ss->raw, ss->rcpts, &ss->search, ss->user);
	ss->summary_text = json_dumps(ss->summary, JSON_COMPACT);
	ss->rcpt_text = json_dumps(ss->rcpts, JSON_COMPACT);
}

/* Store a batch of parsed messages in one transaction where they can share one. */
static void
commit_batch(struct smtpd *sd, struct session **batch, int n)
{
	struct mail_new m[STORE_BATCH_MAX];
	int at[STORE_BATCH_MAX], rcs[STORE_BATCH_MAX], todo = 0;
	int64_t now = time_now_ms();

	for (int i = 0; i < n; i++) {
		struct session *ss = batch[i];
		if (!ss->parsed)
			parse_message(ss);
		ss->stored = -1;
		if (ss->too_deep || ss->raw.oom || ss->summary_text == NULL ||
		    ss->rcpt_text == NULL || ss->search.oom)
			continue;
		at[todo] = i;
		m[todo++] = (struct mail_new){
			.uid = ss->uid, .received_at = ss->received_at, .from = ss->from,
			.rcpt_json = ss->rcpt_text, .raw = ss->raw.data, .len = ss->raw.len,
			.summary_json = ss->summary_text, .summary = ss->summary,
			.search = ss->search.data ? ss->search.data : "",
		};
		keep_rules(&m[todo - 1], sd->cfg, now);
	}
	bool full = false;
	if (todo > 0) {
		store_mail_insert(sd->app->store, m, todo, rcs);
		full = store_last_error() == STORE_FULL;
	}
	for (int j = 0; j < todo; j++) {
		struct session *ss = batch[at[j]];
		ss->stored = rcs[j];
		ss->disk_low = rcs[j] < 0 && full;
		if (rcs[j] > 0)
			log_info("mail received", "id=%s from=%s rcpts=%zu size=%zu", ss->uid,
			    ss->from, json_array_size(ss->rcpts), ss->raw.len);
	}
	for (int i = 0; i < n; i++) {
		struct session *ss = batch[i];
		free(ss->summary_text);
		free(ss->rcpt_text);
		json_decref(ss->summary);
		buf_free(&ss->search);
		ss->summary_text = ss->rcpt_text = NULL;
		ss->summary = NULL;
		ss->parsed = false;
	}
}

/* The committer: stores what arrived meanwhile in one batch, then gives it back. */
static void *
committer_main(void *arg)
{
	struct smtpd *sd = arg;
	struct session *batch[STORE_BATCH_MAX];
	uint64_t one = 1;

	pthread_mutex_lock(&sd->lock);
	for (;;) {
		while (sd->jobs == NULL && !sd->committer_stop)
			pthread_cond_wait(&sd->work, &sd->lock);
		if (sd->jobs == NULL)
			break;
		int n = 0;
		while (sd->jobs != NULL && n < STORE_BATCH_MAX) {
			batch[n++] = sd->jobs;
			sd->jobs = sd->jobs->next_job;
		}
		if (sd->jobs == NULL)
			sd->jobs_tail = &sd->jobs;
		pthread_mutex_unlock(&sd->lock);
		commit_batch(sd, batch, n);
		for (int i = 0; i < n; i++)
			batch[i]->next_job = i + 1 < n ? batch[i + 1] : NULL;
		pthread_mutex_lock(&sd->lock);
		enqueue(&sd->done_tail, batch[0], &batch[n - 1]->next_job);
		if (write(sd->wake, &one, sizeof one) < 0 && errno != EAGAIN)
			log_error("smtp wake-up failed", "error=%s", strerror(errno));
	}
	pthread_mutex_unlock(&sd->lock);
	return NULL;
}

/* Give the committer this round's messages, all at once. */
static void
hand_over(struct smtpd *sd)
{
	if (sd->newjobs == NULL)
		return;
	pthread_mutex_lock(&sd->lock);
	enqueue(&sd->jobs_tail, sd->newjobs, sd->newjobs_tail);
	pthread_cond_signal(&sd->work);
	pthread_mutex_unlock(&sd->lock);
	sd->newjobs = NULL;
	sd->newjobs_tail = &sd->newjobs;
}

/* Answer each message the committer is done with, and let its session go on. */
static void
answer_stored(struct smtpd *sd)
{
	pthread_mutex_lock(&sd->lock);
	struct session *ss = sd->done;
	sd->done = NULL;
	sd->done_tail = &sd->done;
	pthread_mutex_unlock(&sd->lock);
	int64_t now = time_now_ms();
	for (struct session *next; ss; ss = next) {
		next = ss->next_job;
		sd->nstoring--;
		if (ss->stored > 0) {
			reply(ss, "250 2.0.0 OK: queued as %s", ss->uid);
			metrics_add(C_SMTP_ACCEPTED, 1);
		} else if (ss->too_deep) {
			log_info("smtp message refused", "session=%u reason=mime_depth max=%d", ss->id,
			    MIME_MAX_DEPTH);
			reply(ss, "554 5.6.0 MIME parts nest deeper than %d levels", MIME_MAX_DEPTH);
			metrics_add(C_SMTP_REJECTED, 1);
		} else if (ss->disk_low) {
			log_warn("smtp message refused", "session=%u reason=disk_full", ss->id);
			reply(ss, "452 4.3.1 Insufficient system storage; try again later");
			metrics_add(C_SMTP_REJECTED, 1);
		} else {
			reply(ss, "451 4.3.0 The message could not be stored; try again");
			metrics_add(C_SMTP_REJECTED, 1);
		}
		buf_free(&ss->raw);
		reset(ss);	/* gives back what it was charged */
		ss->state = SS_CMD;
		touch(ss, now);
		if (sd->ending)
			closing(ss);
		pump(ss);
	}
}

/* Take every waiting connection: a session, or 421 when there are too many. */
static void
accept_all(struct smtpd *sd)
{
	for (;;) {
		struct sockaddr_storage sa;
		socklen_t sl = sizeof sa;
		int fd = accept4(sd->fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			log_warn("accept failed", "listener=smtp error=%s", strerror(errno));
			if (errno == EMFILE || errno == ENFILE) {
				/* Let sessions finish instead of spinning; accept again in a while. */
				epoll_ctl(sd->ep, EPOLL_CTL_DEL, sd->fd, NULL);
				sd->accept_paused = time_now_ms() + 100;
			}
			return;
		}
		if (sd->nsessions >= sd->cfg->smtp_max_sessions) {
			static const char busy[] = "421 4.3.2 Too many connections; try again later\r\n";
			send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			log_warn("smtp session refused", "reason=max_sessions");
			continue;
		}
		struct session *ss = calloc(1, sizeof *ss);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		    .data.ptr = ss};
		if (ss == NULL || (ss->rcpts = json_array()) == NULL ||
		    epoll_ctl(sd->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			log_error("smtp session not started", "error=%s", strerror(errno));
			if (ss != NULL)
				json_decref(ss->rcpts);
			free(ss);
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		ss->sd = sd;
		ss->fd = fd;
		ss->id = ++sd->next_id;
		getnameinfo((struct sockaddr *)&sa, sl, ss->ip, sizeof ss->ip, NULL, 0, NI_NUMERICHOST);
		ss->next = sd->sessions;
		if (sd->sessions != NULL)
			sd->sessions->prev = ss;
		sd->sessions = ss;
		sd->nsessions++;
		ss->started = time_now_ms();
		touch(ss, ss->started);
		reply(ss, "220 %s ESMTP notifyd", sd->cfg->smtp_hostname);
		pump(ss);
	}
}

/* Close the sessions silent past their deadline; note the next deadline. */
static void
sweep(struct smtpd *sd, int64_t now)
{
	sd->next_sweep = INT64_MAX;
	for (struct session *ss = sd->sessions, *next; ss; ss = next) {
		next = ss->next;
		if (ss->state == SS_STORING)
			continue;
		if (ss->deadline > now) {
			if (ss->deadline < sd->next_sweep)
				sd->next_sweep = ss->deadline;
			continue;
		}
		if (ss->state == SS_CLOSING || ss->state == SS_TLS) {
			end_session(ss);
			continue;
		}
		if (ss->state == SS_DATA)
			log_info("smtp session ended in DATA", "session=%u stored=0", ss->id);
		if (now >= ss->started + sd->cfg->smtp_max_session)
			reply(ss, "421 4.4.2 %s Session too long; closing", sd->cfg->smtp_hostname);
		else
			reply(ss, "421 4.4.2 %s Idle too long; closing", sd->cfg->smtp_hostname);
		closing(ss);
		pump(ss);
	}
}

/* How long epoll may wait: until the next deadline or accept resumes. */
static int
wait_ms(const struct smtpd *sd, int64_t now)
{
	int64_t until = sd->next_sweep;
	if (sd->accept_paused != 0 && sd->accept_paused < until)
		until = sd->accept_paused;
	if (until == INT64_MAX)
		return -1;
	return until <= now ? 0 : until - now > INT_MAX ? INT_MAX : (int)(until - now);
}

/* The loop: every session, until smtpd_stop. */
static void *
loop_main(void *arg)
{
	struct smtpd *sd = arg;
	struct epoll_event ev[64];
	uint64_t count;

	for (;;) {
		int64_t now = time_now_ms();
		if (sd->accept_paused != 0 && now >= sd->accept_paused) {
			struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &sd->fd};
			epoll_ctl(sd->ep, EPOLL_CTL_ADD, sd->fd, &lev);
			sd->accept_paused = 0;
		}
		int n = epoll_wait(sd->ep, ev, 64, wait_ms(sd, now));
		bool stored = false;
		if (n < 0 && errno != EINTR) {
			log_error("epoll failed", "listener=smtp error=%s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			void *p = ev[i].data.ptr;
			if (p == &sd->fd)
				accept_all(sd);
			else if (p == &sd->wake)
				stored = read(sd->wake, &count, sizeof count) > 0;
			else {
				struct session *ss = p;
				if (ev[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					ss->readable = true;
				if (ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					ss->hangup = true;
				pump(ss);
			}
		}
		/* The committer says so each time it gives messages back. */
		if (stored)
			answer_stored(sd);
		hand_over(sd);
		if (__atomic_load_n(&sd->stop, __ATOMIC_ACQUIRE))
			break;
		now = time_now_ms();
		if (now >= sd->next_sweep)
			sweep(sd, now);
	}
	/* Stopping: the messages being stored get their answer; everyone else goes now. */
	sd->ending = true;
	for (struct session *ss = sd->sessions, *next; ss; ss = next) {
		next = ss->next;
		if (ss->state != SS_STORING)
			end_session(ss);
	}
	while (sd->nstoring > 0) {
		struct pollfd pfd = {sd->wake, POLLIN, 0};
		if (poll(&pfd, 1, -1) > 0)
			(void)!read(sd->wake, &count, sizeof count);
		answer_stored(sd);	/* each says its 250 and is closed once it is out */
	}
	/* Those whose last reply could not leave at once are not waited for. */
	while (sd->sessions != NULL)
		end_session(sd->sessions);
	return NULL;
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
	if (sd == NULL) {
		freeaddrinfo(ai);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sd->app = app;
	sd->cfg = app->cfg;
	sd->fd = sd->ep = sd->wake = -1;
	sd->next_sweep = INT64_MAX;
	sd->newjobs_tail = &sd->newjobs;
	sd->jobs_tail = &sd->jobs;
	sd->done_tail = &sd->done;
	pthread_mutex_init(&sd->lock, NULL);
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
	sd->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &sd->fd};
	struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &sd->wake};
	sd->ep = epoll_create1(EPOLL_CLOEXEC);
	sd->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sd->ep < 0 || sd->wake < 0 || epoll_ctl(sd->ep, EPOLL_CTL_ADD, sd->fd, &lev) != 0 ||
	    epoll_ctl(sd->ep, EPOLL_CTL_ADD, sd->wake, &wev) != 0) {
		snprintf(err, errlen, "cannot start the SMTP loop: %s", strerror(errno));
		smtpd_stop(sd);
		return -1;
	}
	sd->committer_running = pthread_create(&sd->committer, NULL, committer_main, sd) == 0;
	if (!sd->committer_running || pthread_create(&sd->loop, NULL, loop_main, sd) != 0) {
		snprintf(err, errlen, "cannot start the SMTP threads");
		smtpd_stop(sd);
		return -1;
	}
	sd->loop_running = true;
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
	uint64_t one = 1;
	if (sd == NULL)
		return;
	if (sd->loop_running) {
		__atomic_store_n(&sd->stop, true, __ATOMIC_RELEASE);
		if (write(sd->wake, &one, sizeof one) < 0)
			log_error("smtp wake-up failed", "error=%s", strerror(errno));
		pthread_join(sd->loop, NULL);
	}
	pthread_mutex_lock(&sd->lock);
	sd->committer_stop = true;
	pthread_cond_broadcast(&sd->work);
	pthread_mutex_unlock(&sd->lock);
	if (sd->committer_running)
		pthread_join(sd->committer, NULL);
	if (sd->fd >= 0)
		close(sd->fd);
	if (sd->ep >= 0)
		close(sd->ep);
	if (sd->wake >= 0)
		close(sd->wake);
	pthread_mutex_destroy(&sd->lock);
	pthread_cond_destroy(&sd->work);
	SSL_CTX_free(sd->tls);
	free(sd);
}

int
smtpd_store_message(struct app *app, const char *from, json_t *rcpts, const char *data,
    size_t len, const char *ip, const char *user, char uid[23], char *err, size_t errn)
{
	const struct config *cfg = app->cfg;
	if ((int64_t)len > cfg->smtp_max_size) {
		snprintf(err, errn, "the message is %zu bytes, over the limit of %lld", len,
		    (long long)cfg->smtp_max_size);
		return 0;
	}
	if (!disk_has_room(cfg, (int64_t)len)) {
		snprintf(err, errn, "insufficient storage; try again later");
		return -2;
	}
	struct buf raw, search;
	buf_init(&raw);
	buf_init(&search);
	new_uid(uid);
	int64_t now = time_now_ms();
	put_received(&raw, from, "", ip, cfg->smtp_hostname, "HTTP", uid, now, data, len);
	if (raw.oom || !mime_depth_ok(raw.data, raw.len, MIME_MAX_DEPTH)) {
		int why = raw.oom ? -1 : -3;
		snprintf(err, errn, "%s", raw.oom ? "out of memory" : "its MIME parts nest too deep");
		buf_free(&raw);
		return why;
	}
	json_t *summary = summarize(&raw, rcpts, &search, user ? user : "");
	char *sj = json_dumps(summary, JSON_COMPACT), *rj = json_dumps(rcpts, JSON_COMPACT);
	int rc = -1;
	if (sj != NULL && rj != NULL && !search.oom) {
		struct mail_new m = {
			.uid = uid, .received_at = now, .from = from, .rcpt_json = rj,
			.raw = raw.data, .len = raw.len, .summary_json = sj, .summary = summary,
			.search = search.data ? search.data : "",
		};
		keep_rules(&m, cfg, now);
		store_mail_insert(app->store, &m, 1, &rc);
	}
	if (rc > 0) {
		log_info("mail received", "id=%s from=%s rcpts=%zu size=%zu via=http", uid, from,
		    json_array_size(rcpts), raw.len);
		metrics_add(C_SMTP_ACCEPTED, 1);
	} else {
		snprintf(err, errn, "the message could not be stored; try again");
		rc = store_last_error() == STORE_FULL ? -2 : -1;
	}
	free(sj);
	free(rj);
	json_decref(summary);
	buf_free(&search);
	buf_free(&raw);
	return rc > 0 ? 1 : rc;
}
