/* config — every setting of notifyd, declared once in config_keys[]. */
#define _GNU_SOURCE
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "text.h"
#include "util.h"

#define OFF(f) offsetof(struct config, f)

const struct config_key config_keys[] = {
	{"server", "data_dir", CFG_PATH, NULL, "data-dir", "DIR", NULL, 0, 0,
	    OFF(data_dir), "directory holding the database, lock and secrets"},
	{"server", "log_level", CFG_ENUM, "info", NULL, NULL,
	    "debug|info|warn|error", 0, 0, OFF(log_level),
	    "lowest level of log line written to stderr (-v: debug)"},
	{"server", "templates_dir", CFG_STRING, "", NULL, NULL, NULL, 0, 0,
	    OFF(templates_dir), "directory whose files override the embedded templates (SIGHUP reloads)"},
	{"server", "strict_templates", CFG_BOOL, "false", NULL, NULL, NULL, 0, 0,
	    OFF(strict_templates), "refuse (422) a send whose data lacks a variable its templates show"},
	{"http", "listen", CFG_LISTEN, "127.0.0.1:8025", "http", "HOST:PORT",
	    NULL, 0, 0, OFF(http_listen), "REST and WebSocket listener, or off"},
	{"http", "request_timeout", CFG_DURATION, "30s", NULL, NULL, NULL, 1000, 3600000,
	    OFF(http_request_timeout), "longest wait for each read of a request body, or for a "
	    "client to take a write"},
	{"http", "header_timeout", CFG_DURATION, "10s", NULL, NULL, NULL, 1000, 3600000,
	    OFF(http_header_timeout), "longest a request's headers may take to arrive, or a "
	    "kept-alive connection may wait for the next"},
	{"http", "max_per_address", CFG_INT, "64", NULL, NULL, NULL, 0, 1000000,
	    OFF(http_max_per_address), "connections (HTTP and WebSocket) one address may hold "
	    "(503 beyond); 0: no limit"},
	{"http", "ws_max_connections", CFG_INT, "200", NULL, NULL, NULL, 1, 100000,
	    OFF(ws_max_connections), "WebSocket connections open at once (each holds a thread)"},
	{"http", "ws_reserve", CFG_INT, "64", NULL, NULL, NULL, 4, 10000,
	    OFF(ws_reserve), "worker threads kept for REST whatever WebSockets hold"},
	{"http", "ws_per_user", CFG_INT, "16", NULL, NULL, NULL, 1, 10000,
	    OFF(ws_per_user), "WebSocket connections one user may hold (429 beyond)"},
	{"http", "ws_queue", CFG_INT, "1024", NULL, NULL, NULL, 16, 1000000,
	    OFF(ws_queue), "frames queued for a client before it is dropped as too slow"},
	{"http", "ws_ping", CFG_DURATION, "30s", NULL, NULL, NULL, 1000, 3600000,
	    OFF(ws_ping), "ping an idle WebSocket this often; one that does not answer is closed"},
	{"http", "max_body", CFG_SIZE, "1M", NULL, NULL, NULL, 1024, 1LL << 30,
	    OFF(http_max_body), "largest request body accepted (413 beyond)"},
	{"http", "cors_origins", CFG_STRING, "", NULL, NULL, NULL, 0, 0,
	    OFF(http_cors_origins), "origins allowed by CORS, comma-separated, or *"},
	{"http", "mail_cors", CFG_BOOL, "false", NULL, NULL, NULL, 0, 0, OFF(http_mail_cors),
	    "cors_origins apply to the mailbox API (/api/v1/messages...) too"},
	{"http", "tls_cert", CFG_STRING, "", NULL, NULL, NULL, 0, 0, OFF(http_tls_cert),
	    "not supported: HTTPS and WSS come from a TLS proxy in front (notifyd(8))"},
	{"http", "tls_key", CFG_STRING, "", NULL, NULL, NULL, 0, 0, OFF(http_tls_key),
	    "not supported: see tls_cert"},
	{"http", "trust_proxy", CFG_STRING, "", NULL, NULL, NULL, 0, 0, OFF(http_trust_proxy),
	    "address of a reverse proxy on this host: its requests are not loopback"},
	{"http", "rate_limit", CFG_INT, "0", NULL, NULL, NULL, 0, 1000000,
	    OFF(http_rate_limit), "requests per second per client (key, token or address); 0: no limit"},
	{"auth", "jwt_secret", CFG_SECRET, "", NULL, NULL, NULL, 0, 0,
	    OFF(auth_jwt_secret), "HS256 secret of user tokens; empty: DATA_DIR/jwt.secret"},
	{"smtp", "listen", CFG_LISTEN, "127.0.0.1:1025", "smtp", "HOST:PORT",
	    NULL, 0, 0, OFF(smtp_listen), "SMTP sink listener, or off"},
	{"smtp", "hostname", CFG_STRING, "notifyd", NULL, NULL, NULL, 0, 0,
	    OFF(smtp_hostname), "name the sink greets with and puts in Received:"},
	{"smtp", "max_size", CFG_SIZE, "25M", NULL, NULL, NULL, 1024, 1LL << 30,
	    OFF(smtp_max_size), "largest message accepted (552 beyond)"},
	{"smtp", "max_recipients", CFG_INT, "100", NULL, NULL, NULL, 1, 100000,
	    OFF(smtp_max_recipients), "recipients per message (452 beyond)"},
	{"smtp", "max_sessions", CFG_INT, "256", NULL, NULL, NULL, 1, 10000,
	    OFF(smtp_max_sessions), "SMTP sessions at once (421 beyond)"},
	{"smtp", "idle_timeout", CFG_DURATION, "5m", NULL, NULL, NULL, 1000, 86400000,
	    OFF(smtp_idle_timeout), "a silent session is closed after this (421)"},
	{"smtp", "max_line_length", CFG_SIZE, "1000", NULL, NULL, NULL, 1000, 64LL << 20,
	    OFF(smtp_max_line), "longest line of a message, CRLF included (RFC 5321: 1000)"},
	{"smtp", "max_inflight", CFG_SIZE, "256M", NULL, NULL, NULL, 1LL << 20, 1LL << 40,
	    OFF(smtp_max_inflight), "bytes of mail being received or stored at once, all "
	    "sessions together (451 beyond)"},
	{"smtp", "max_session_time", CFG_DURATION, "30m", NULL, NULL, NULL, 1000, 86400000,
	    OFF(smtp_max_session), "longest a session may last, however busy (421)"},
	{"smtp", "disk_reserve", CFG_SIZE, "256M", NULL, NULL, NULL, 0, 1LL << 40,
	    OFF(smtp_disk_reserve), "free disk the sink leaves for notifications (452 below it)"},
	{"smtp", "auth", CFG_ENUM, "off", NULL, NULL, "off|any|required", 0, 0,
	    OFF(smtp_auth), "AUTH PLAIN/LOGIN: off, any (accept every credential), required"},
	{"smtp", "tls_cert", CFG_STRING, "", NULL, NULL, NULL, 0, 0,
	    OFF(smtp_tls_cert), "PEM certificate (chain) for STARTTLS; empty: no STARTTLS"},
	{"smtp", "tls_key", CFG_STRING, "", NULL, NULL, NULL, 0, 0,
	    OFF(smtp_tls_key), "PEM private key of tls_cert"},
	{"smtp", "mail_max", CFG_INT, "5000", NULL, NULL, NULL, 0, 100000000,
	    OFF(mail_max), "keep the newest this many messages (0: all)"},
	{"smtp", "mail_max_bytes", CFG_SIZE, "1G", NULL, NULL, NULL, 0, 1LL << 50,
	    OFF(mail_max_bytes), "keep the newest messages up to this many bytes in all (0: any)"},
	{"smtp", "mail_max_age", CFG_DURATION, "0s", NULL, NULL, NULL, 0, 3650LL * 86400000,
	    OFF(mail_max_age), "drop messages older than this (0s: never)"},
	{"mailer", "relay", CFG_STRING, "", NULL, NULL, NULL, 0, 0,
	    OFF(mailer_relay), "smtp://HOST:PORT or smtps://HOST:PORT email goes to; empty: the sink"},
	{"mailer", "starttls", CFG_ENUM, "try", NULL, NULL, "off|try|required", 0, 0,
	    OFF(mailer_starttls), "STARTTLS on smtp:// relays: off, try (when offered), required"},
	{"mailer", "ca_file", CFG_STRING, "", NULL, NULL, NULL, 0, 0,
	    OFF(mailer_ca_file), "PEM certificates the relay's is checked against; empty: the system's"},
	{"mailer", "username", CFG_STRING, "", NULL, NULL, NULL, 0, 0,
	    OFF(mailer_username), "AUTH user name at the relay; empty: no AUTH"},
	{"mailer", "password", CFG_SECRET, "", NULL, NULL, NULL, 0, 0,
	    OFF(mailer_password), "AUTH password at the relay"},
	{"mailer", "from", CFG_STRING, "notifyd <notifyd@localhost>", NULL, NULL, NULL, 0, 0,
	    OFF(mailer_from), "From: of every email, \"Name <address>\" or an address"},
	{"mailer", "unsubscribe_url", CFG_STRING, "", NULL, NULL, NULL, 0, 0,
	    OFF(mailer_unsubscribe_url), "List-Unsubscribe URL, a template ({{user.id}}); empty: none"},
	{"mailer", "workers", CFG_INT, "4", NULL, NULL, NULL, 1, 64,
	    OFF(mailer_workers), "emails sent at once"},
	{"mailer", "max_attempts", CFG_INT, "8", NULL, NULL, NULL, 1, 100,
	    OFF(mailer_max_attempts), "attempts at an email before it is failed"},
	{"mailer", "retry_base", CFG_DURATION, "15s", NULL, NULL, NULL, 10, 86400000,
	    OFF(mailer_retry_base), "wait after the first failure; doubled after each next one"},
	{"mailer", "timeout", CFG_DURATION, "30s", NULL, NULL, NULL, 1000, 600000,
	    OFF(mailer_timeout), "longest one attempt at the relay may take"},
	{"push", "subject", CFG_STRING, "mailto:notifyd@localhost", NULL, NULL, NULL, 0, 0,
	    OFF(push_subject), "VAPID sub: a mailto: or https: URL push services may contact"},
	{"push", "ttl", CFG_DURATION, "24h", NULL, NULL, NULL, 0, 28LL * 86400000,
	    OFF(push_ttl), "how long a push service keeps a message for an offline browser"},
	{"push", "timeout", CFG_DURATION, "10s", NULL, NULL, NULL, 1000, 600000,
	    OFF(push_timeout), "longest one attempt at a push service may take"},
	{"push", "allow_private", CFG_BOOL, "false", NULL, NULL, NULL, 0, 0,
	    OFF(push_allow_private), "allow push endpoints on loopback or private addresses"},
	{"push", "max_per_user", CFG_INT, "20", NULL, NULL, NULL, 1, 10000,
	    OFF(push_max_per_user), "push subscriptions one user may hold (409 beyond)"},
	{"webhook", "timeout", CFG_DURATION, "10s", NULL, NULL, NULL, 1000, 600000,
	    OFF(webhook_timeout), "a 2xx within this is a delivered webhook"},
	{"webhook", "disable_after", CFG_DURATION, "72h", NULL, NULL, NULL, 0, 3650LL * 86400000,
	    OFF(webhook_disable_after), "an endpoint failing this long is disabled"},
	{"webhook", "allow_private", CFG_BOOL, "false", NULL, NULL, NULL, 0, 0,
	    OFF(webhook_allow_private), "allow endpoints on loopback or private addresses"},
	{"control", "socket", CFG_PATH, NULL, "socket", "PATH", NULL, 0, 0,
	    OFF(control_socket), "Unix socket notifyctl talks to"},
	{"control", "max_clients", CFG_INT, "128", NULL, NULL, NULL, 1, 10000,
	    OFF(control_max_clients), "control connections served at once"},
	{"digest", "max_items", CFG_INT, "50", NULL, NULL, NULL, 1, 10000, OFF(digest_max_items),
	    "notifications one digest lists; past them an \"and N more\" line"},
	{"digest", "include_read", CFG_BOOL, "false", NULL, NULL, NULL, 0, 0,
	    OFF(digest_include_read), "list what the user read in the app already (marked read)"},
	{"digest", "flush_on_off", CFG_BOOL, "true", NULL, NULL, NULL, 0, 0,
	    OFF(digest_flush_on_off), "digest mode switched off: send what is parked at once"},
	{"digest", "inbox_url", CFG_STRING, "", NULL, NULL, NULL, 0, 0, OFF(digest_inbox_url),
	    "where a digest's \"and N more\" leads; empty: notifyd's own /inbox"},
	{"store", "sync", CFG_ENUM, "full", NULL, NULL, "full|normal", 0, 0,
	    OFF(store_sync), "full: a commit survives power loss; normal: a crash of notifyd"},
	{"store", "busy_timeout", CFG_DURATION, "5s", NULL, NULL, NULL, 0,
	    3600000, OFF(store_busy_timeout), "how long to wait for a locked database"},
	{"store", "url", CFG_SECRET, "", NULL, NULL, NULL, 0, 0, OFF(store_url),
	    "PostgreSQL (libpq URL or conninfo); empty: SQLite in data_dir"},
	{"store", "claim_lease", CFG_DURATION, "5m", NULL, NULL, NULL, 1000, 86400000,
	    OFF(store_claim_lease), "PostgreSQL: how long a node's claim of an email holds"},
	{NULL, NULL, 0, NULL, NULL, NULL, NULL, 0, 0, 0, NULL},
};

/* The data directory when none is configured. */
static void
default_data_dir(char *out, size_t n)
{
	const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	if (getuid() == 0)
		snprintf(out, n, "/var/lib/notifyd");
	else if (state != NULL && *state == '/')
		snprintf(out, n, "%s/notifyd", state);
	else if (home != NULL && *home == '/')
		snprintf(out, n, "%s/.local/state/notifyd", home);
	else
		snprintf(out, n, "./var");
}

void
config_default(const struct config_key *k, char *out, size_t n)
{
	if (k->def != NULL)
		snprintf(out, n, "%s", k->def);
	else if (k->offset == OFF(control_socket))
		proto_default_socket(out, n);
	else if (k->offset == OFF(data_dir))
		default_data_dir(out, n);
	else
		snprintf(out, n, "%s", "");
}

bool
config_parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
	if (strcmp(s, "off") == 0) {
		if (hostlen > 0)
			host[0] = '\0';
		*port = -1;
		return true;
	}
	const char *colon, *h = s;
	size_t hl;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return false;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return false;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return false;
	for (size_t i = 0; i < hl; i++)
		if (!isalnum((unsigned char)h[i]) && strchr(".-:_%", h[i]) == NULL)
			return false;
	int64_t p;
	if (!parse_int64(colon + 1, 0, 65535, &p))
		return false;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return true;
}

const struct config_key *
config_find(const char *section, const char *name)
{
	for (const struct config_key *k = config_keys; k->name; k++)
		if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

const struct config_key *
config_find_flag(const char *flag)
{
	for (const struct config_key *k = config_keys; k->name; k++)
		if (k->flag != NULL && strcmp(k->flag, flag) == 0)
			return k;
	return NULL;
}

void
config_env_name(const struct config_key *k, char *out, size_t n)
{
	snprintf(out, n, "NOTIFYD_%s_%s", k->section, k->name);
	for (char *p = out; *p; p++)
		*p = (char)toupper((unsigned char)*p);
}

int
config_set(struct config *cfg, const struct config_key *k, const char *value,
    const char *where, char *err, size_t errlen)
{
	void *field = (char *)cfg + k->offset;
	int64_t v;
	char host[256];
	int port;

	switch (k->type) {
	case CFG_STRING:
	case CFG_SECRET:
	case CFG_PATH:
		if (!utf8_valid(value, strlen(value), false) ||
		    (k->type == CFG_PATH && *value == '\0')) {
			snprintf(err, errlen, "%s: %s.%s: not a valid %s", where,
			    k->section, k->name, k->type == CFG_PATH ? "path" : "string");
			return -1;
		}
		break;
	case CFG_LISTEN:
		if (!config_parse_listen(value, host, sizeof host, &port)) {
			snprintf(err, errlen, "%s: %s.%s: '%s' is not HOST:PORT or off",
			    where, k->section, k->name, value);
			return -1;
		}
		break;
	case CFG_INT:
		if (!parse_int64(value, k->min, k->max, &v)) {
			snprintf(err, errlen, "%s: %s.%s: '%s' is not an integer from %lld to %lld",
			    where, k->section, k->name, value, (long long)k->min, (long long)k->max);
			return -1;
		}
		*(int64_t *)field = v;
		return 0;
	case CFG_BOOL: {
		static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {
		    "false", "no", "off", "0"};
		for (int i = 0; i < 4; i++)
			if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
				*(int64_t *)field = strcmp(value, yes[i]) == 0;
				return 0;
			}
		snprintf(err, errlen, "%s: %s.%s: '%s' is not true or false", where, k->section,
		    k->name, value);
		return -1;
	}
	case CFG_SIZE: {
		char *end;
		long long n = strtoll(value, &end, 10);
		int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' || *end == 'm' ? 20 :
		    *end == 'G' || *end == 'g' ? 30 : 0;
		if (shift)
			end++;
		if (end == value || *end != '\0' || n < 0 || n > (INT64_MAX >> shift) ||
		    (n << shift) < k->min || (n << shift) > k->max) {
			snprintf(err, errlen, "%s: %s.%s: '%s' is not a size from %lld to %lld bytes "
			    "(K, M, G allowed)", where, k->section, k->name, value,
			    (long long)k->min, (long long)k->max);
			return -1;
		}
		*(int64_t *)field = n << shift;
		return 0;
	}
	case CFG_DURATION:
		if (!duration_parse(value, &v) || v < k->min || v > k->max) {
			snprintf(err, errlen, "%s: %s.%s: '%s' is not a duration such as 30s, 5m or 1h",
			    where, k->section, k->name, value);
			return -1;
		}
		*(int64_t *)field = v;
		return 0;
	case CFG_ENUM: {
		size_t vl = strlen(value);
		const char *c = k->choices;
		bool ok = false;
		while (c != NULL && *c) {
			size_t cl = strcspn(c, "|");
			if (cl == vl && strncmp(c, value, vl) == 0)
				ok = true;
			c += cl + (c[cl] == '|');
		}
		if (!ok) {
			snprintf(err, errlen, "%s: %s.%s: '%s' is not one of %s",
			    where, k->section, k->name, value, k->choices);
			return -1;
		}
		break;
	}
	}
	char *copy = strdup(value);
	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	free(*(char **)field);
	*(char **)field = copy;
	return 0;
}

int
config_init(struct config *cfg, char *err, size_t errlen)
{
	char def[4096];
	memset(cfg, 0, sizeof *cfg);
	for (const struct config_key *k = config_keys; k->name; k++) {
		config_default(k, def, sizeof def);
		if (config_set(cfg, k, def, "default", err, errlen) != 0)
			return -1;
	}
	return 0;
}

void
config_free(struct config *cfg)
{
	for (const struct config_key *k = config_keys; k->name; k++)
		if (k->type != CFG_INT && k->type != CFG_DURATION && k->type != CFG_SIZE &&
		    k->type != CFG_BOOL) {
			char **f = (char **)((char *)cfg + k->offset);
			free(*f);
			*f = NULL;
		}
}

void
config_format(const struct config *cfg, const struct config_key *k, char *out, size_t n)
{
	const void *field = (const char *)cfg + k->offset;
	if (k->type == CFG_INT) {
		snprintf(out, n, "%lld", (long long)*(const int64_t *)field);
	} else if (k->type == CFG_BOOL) {
		snprintf(out, n, "%s", *(const int64_t *)field ? "true" : "false");
	} else if (k->type == CFG_SIZE) {
		int64_t b = *(const int64_t *)field;
		if (b > 0 && b % (1 << 30) == 0)
			snprintf(out, n, "%lldG", (long long)(b >> 30));
		else if (b > 0 && b % (1 << 20) == 0)
			snprintf(out, n, "%lldM", (long long)(b >> 20));
		else if (b > 0 && b % 1024 == 0)
			snprintf(out, n, "%lldK", (long long)(b >> 10));
		else
			snprintf(out, n, "%lld", (long long)b);
	} else if (k->type == CFG_DURATION) {
		int64_t ms = *(const int64_t *)field;
		if (ms % 1000 != 0)
			snprintf(out, n, "%lldms", (long long)ms);
		else if (ms % 3600000 == 0 && ms > 0)
			snprintf(out, n, "%lldh", (long long)(ms / 3600000));
		else if (ms % 60000 == 0 && ms > 0)
			snprintf(out, n, "%lldm", (long long)(ms / 60000));
		else
			snprintf(out, n, "%llds", (long long)(ms / 1000));
	} else {
		const char *s = *(char *const *)field;
		snprintf(out, n, "%s", s ? s : "");
	}
}

/* State of one file being parsed. */
struct file_parse {
	struct config	*cfg;
	FILE		*fp;
	const char	*path;
	int		 line;
	char		*err;		/* the first problem */
	size_t		 errlen;
	int		 problems;
	config_problem_fn report;	/* every problem, when checking; NULL: stop at the first */
	void		*report_arg;
};

/* Record a problem at the current line; in a plain load, only the first counts. */
static void __attribute__((format(printf, 2, 3)))
problem(struct file_parse *fp, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (fp->problems++ == 0)
		snprintf(fp->err, fp->errlen, "%s:%d: %s", fp->path, fp->line, msg);
	if (fp->report != NULL)
		fp->report(fp->report_arg, fp->path, fp->line, msg);
}

/* Is the parse over (a plain load stops at its first problem)? */
static bool
stopped(const struct file_parse *fp)
{
	return fp->problems > 0 && fp->report == NULL;
}

/* Edits (insert, delete, substitute) between a and b, for "did you mean". */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[65];
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/*
 * The setting a mistyped one most likely meant: a key of the same section
 * a few edits away, else the same key in another section. NULL: none.
 */
static const struct config_key *
suggest(const char *section, const char *name)
{
	const struct config_key *best = NULL;
	size_t best_d = strlen(name) / 3 + 1;	/* "lisen" -> listen, not "auth" -> path */
	if (best_d > 3)
		best_d = 3;
	for (const struct config_key *k = config_keys; k->name; k++) {
		size_t d = edit_distance(name, k->name) + (strcmp(k->section, section) != 0);
		if (d <= best_d && (best == NULL || d < best_d)) {
			best = k;
			best_d = d;
		}
	}
	return best;
}

/* Is name a section of config_keys[]? */
static bool
section_known(const char *name, size_t len)
{
	for (const struct config_key *c = config_keys; c->name; c++)
		if (strlen(c->section) == len && strncmp(c->section, name, len) == 0)
			return true;
	return false;
}

/* inih reader: one physical line per call, counting lines as it goes. */
static char *
file_reader(char *str, int num, void *stream)
{
	struct file_parse *fp = stream;
	if (stopped(fp) || fgets(str, num, fp->fp) == NULL)
		return NULL;
	fp->line++;
	size_t l = strlen(str);
	if (l > 0 && str[l - 1] != '\n' && !feof(fp->fp)) {
		problem(fp, "line too long (at most %d bytes)", num - 2);
		int c;	/* skip the rest of it */
		while ((c = fgetc(fp->fp)) != EOF && c != '\n')
			;
		str[0] = '\0';
		return str;
	}
	/* inih never reports a section that holds no keys: check headers here. */
	const char *h = str + strspn(str, " \t");
	if (*h == '[') {
		size_t nl = strcspn(h + 1, "]");
		if (h[1 + nl] == ']' && !section_known(h + 1, nl))
			problem(fp, "unknown section [%.*s]", (int)(nl > 64 ? 64 : nl), h + 1);
	} else if (h == str && *h != ';' && *h != '#' && *h != '\n' && *h != '\r' &&
	    *h != '\0' && strpbrk(h, "=:") == NULL) {
		/* inih reports only its first syntax error; a check wants each. */
		problem(fp, "syntax error (expected [section] or key = value)");
		str[0] = '\0';
	}
	return str;
}

/* inih handler: one key = value. */
static int
file_handler(void *user, const char *section, const char *name, const char *value)
{
	struct file_parse *fp = user;
	char where[1100], err[1024];
	if (stopped(fp))
		return 1;
	const struct config_key *k = config_find(section, name);
	if (k == NULL) {
		const struct config_key *s = suggest(section, name);
		char hint[160] = "";
		if (s != NULL)
			snprintf(hint, sizeof hint, "; did you mean [%s] %s?", s->section, s->name);
		if (*section == '\0')
			problem(fp, "key '%s' outside any section%s", name, hint);
		else if (section_known(section, strlen(section)))
			problem(fp, "unknown key '%s' in section [%s]%s", name, section, hint);
		/* else: the unknown section was reported at its header */
		return 1;
	}
	snprintf(where, sizeof where, "%s:%d", fp->path, fp->line);
	if (config_set(fp->cfg, k, value, where, err, sizeof err) != 0)
		problem(fp, "%s", err + strlen(where) + 2);	/* "WHERE: " is problem's */
	return 1;
}

int
config_check_file(struct config *cfg, const char *path, config_problem_fn report, void *arg,
    char *err, size_t errlen)
{
	struct file_parse fp = {.cfg = cfg, .path = path, .err = err, .errlen = errlen,
	    .report = report, .report_arg = arg};
	fp.fp = fopen(path, "r");
	if (fp.fp == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (report != NULL)
			report(arg, path, 0, strerror(errno));
		return -1;
	}
	int r = ini_parse_stream(file_reader, &fp, file_handler, &fp);
	fclose(fp.fp);
	if (r != 0 && fp.problems == 0) {
		fp.line = r > 0 ? r : fp.line;
		problem(&fp, "syntax error (expected [section] or key = value)");
	}
	return fp.problems > 0 ? -1 : 0;
}

int
config_load_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	return config_check_file(cfg, path, NULL, NULL, err, errlen);
}

int
config_load_env(struct config *cfg, char *err, size_t errlen)
{
	char name[128];
	for (const struct config_key *k = config_keys; k->name; k++) {
		config_env_name(k, name, sizeof name);
		const char *v = getenv(name);
		if (v != NULL && config_set(cfg, k, v, name, err, errlen) != 0)
			return -1;
	}
	return 0;
}
