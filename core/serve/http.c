/*
 * http — the REST API on civetweb.
 *
 * routes[] maps METHOD + path pattern onto an operation of op_table: path
 * parameters, query parameters and the JSON body become the operation's
 * arguments, converted by the types the operation declares, and its
 * result or error becomes the response. No operation logic lives here:
 * only transport (auth, CORS, limits, encoding, metrics).
 */
#define _GNU_SOURCE
#include "http.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "auth.h"
#include "config.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "ops.h"
#include "smtpd.h"
#include "store.h"
#include "text.h"
#include "util.h"
#include "web.h"

/* Route flags. */
#define R_BODY		0x01	/* a JSON object body is merged into the arguments */
#define R_PUBLIC	0x02	/* no credentials needed */
#define R_LOOPBACK	0x04	/* no credentials needed from loopback, as Mailpit */
#define R_OK_TEXT	0x08	/* success answers the text "ok", as Mailpit's changes do */

struct http;
typedef void (*raw_fn)(struct http *h, struct mg_connection *c, json_t *args,
    const char *const *hdr, int *status);

struct route {
	const char	*method;
	const char	*path;		/* segments; {name} is the operation's argument name */
	const char	*op;		/* operation, or NULL for a raw handler */
	const char	*fixed;		/* JSON object of fixed arguments, or NULL */
	int		 flags;
	raw_fn		 raw;
	const char	*rename;	/* body keys to argument names: "IDs=ids,Read=read" */
};

#define RAW(f) static void f(struct http *, struct mg_connection *, json_t *, \
	const char *const *, int *)
RAW(healthz);
RAW(livez);
RAW(mail_tags);
RAW(mail_webui);
RAW(ws_plain);
RAW(metrics_page);
RAW(mail_raw);
RAW(mail_send);
RAW(mail_part);
RAW(mail_view);
RAW(web_serve);
#undef RAW

#define N "/api/v1/users/{user}/notifications"
static const struct route routes[] = {
	{"POST", "/api/v1/notifications", "send", NULL, R_BODY, NULL, "deliver_at=at"},
	{"GET", N, "list", NULL, 0, NULL, NULL},
	{"POST", N "/read", "read", NULL, R_BODY, NULL, NULL},
	{"POST", N "/read_all", "read", "{\"all\":true}", 0, NULL, NULL},
	{"GET", N "/{id}", "show", NULL, 0, NULL, NULL},
	{"DELETE", N "/{id}", "delete", NULL, 0, NULL, NULL},
	{"POST", N "/{ids}/read", "read", NULL, 0, NULL, NULL},
	{"POST", N "/{ids}/unread", "unread", NULL, 0, NULL, NULL},
	{"POST", N "/{ids}/archive", "archive", NULL, 0, NULL, NULL},
	{"POST", N "/{ids}/unarchive", "unarchive", NULL, 0, NULL, NULL},
	{"GET", "/api/v1/users/{user}/unread_count", "count", NULL, 0, NULL, NULL},
	{"GET", "/api/v1/users/{user}", "user.show", NULL, 0, NULL, NULL},
	{"PUT", "/api/v1/users/{user}", "user.set", NULL, R_BODY, NULL, NULL},
	{"GET", "/api/v1/users/{user}/preferences", "prefs.get", NULL, 0, NULL, NULL},
	{"PUT", "/api/v1/users/{user}/preferences", "prefs.set", "{\"replace\":true}", R_BODY,
	    NULL, "*=prefs"},
	{"PATCH", "/api/v1/users/{user}/preferences", "prefs.set", NULL, R_BODY, NULL, "*=prefs"},
	{"POST", "/api/v1/notifications/{id}/cancel", "cancel", NULL, 0, NULL, NULL},
	{"POST", "/api/v1/digests", "digest", NULL, R_BODY, NULL, NULL},
	{"GET", "/api/v1/topics/{topic}", "topic.show", NULL, 0, NULL, NULL},
	{"PUT", "/api/v1/topics/{topic}/members/{user}", "topic.add", NULL, 0, NULL, NULL},
	{"DELETE", "/api/v1/topics/{topic}/members/{user}", "topic.rm", NULL, 0, NULL, NULL},
	{"GET", "/api/v1/keys", "key.list", NULL, 0, NULL, NULL},
	{"POST", "/api/v1/keys", "key.create", NULL, R_BODY, NULL, NULL},
	{"DELETE", "/api/v1/keys/{key}", "key.revoke", NULL, 0, NULL, NULL},
	{"POST", "/api/v1/tokens", "token", NULL, R_BODY, NULL, NULL},
	{"GET", "/api/v1/push/vapid_public_key", "push.key", NULL, R_PUBLIC, NULL, NULL},
	{"GET", "/api/v1/users/{user}/push_subscriptions", "push.list", NULL, 0, NULL, NULL},
	{"POST", "/api/v1/users/{user}/push_subscriptions", "push.subscribe", NULL, R_BODY, NULL,
	    "expirationTime=expiration_time"},
	{"DELETE", "/api/v1/users/{user}/push_subscriptions/{id}", "push.rm", NULL, 0, NULL, NULL},
	{"GET", "/api/v1/webhooks", "webhook.list", NULL, 0, NULL, NULL},
	{"POST", "/api/v1/webhooks", "webhook.add", NULL, R_BODY, NULL, NULL},
	{"DELETE", "/api/v1/webhooks/{id}", "webhook.rm", NULL, 0, NULL, NULL},
	{"POST", "/api/v1/webhooks/{id}/test", "webhook.test", NULL, 0, NULL, NULL},
	{"GET", "/healthz", NULL, NULL, R_PUBLIC, healthz, NULL},
	/* Mailpit's probes, which scripts poll before they send: /readyz is /healthz. */
	{"GET", "/livez", NULL, NULL, R_PUBLIC, livez, NULL},
	{"GET", "/readyz", NULL, NULL, R_PUBLIC, healthz, NULL},
	{"GET", "/ws", NULL, NULL, R_PUBLIC, ws_plain, NULL},
	{"GET", "/metrics", NULL, NULL, R_PUBLIC, metrics_page, NULL},
	/* The mailbox, on Mailpit's paths. */
	{"GET", "/api/v1/info", "mail.info", NULL, R_LOOPBACK, NULL, NULL},
	{"GET", "/api/v1/tags", NULL, NULL, R_LOOPBACK, mail_tags, NULL},
	{"GET", "/api/v1/webui", NULL, NULL, R_LOOPBACK, mail_webui, NULL},
	{"GET", "/api/v1/messages", "mail.list", NULL, R_LOOPBACK, NULL, NULL},
	{"PUT", "/api/v1/messages", "mail.read", NULL, R_LOOPBACK | R_BODY | R_OK_TEXT, NULL,
	    "IDs=ids,Read=read,Search=query"},
	{"DELETE", "/api/v1/messages", "mail.clear", NULL, R_LOOPBACK | R_BODY | R_OK_TEXT, NULL,
	    "IDs=ids"},
	{"GET", "/api/v1/search", "mail.list", NULL, R_LOOPBACK, NULL, NULL},
	{"DELETE", "/api/v1/search", "mail.clear", NULL, R_LOOPBACK | R_OK_TEXT, NULL, NULL},
	{"GET", "/api/v1/message/{id}", "mail.show", NULL, R_LOOPBACK, NULL, NULL},
	{"GET", "/api/v1/message/{id}/headers", "mail.show", "{\"headers\":true}", R_LOOPBACK, NULL, NULL},
	{"GET", "/api/v1/message/{id}/raw", NULL, NULL, R_LOOPBACK, mail_raw, NULL},
	{"POST", "/api/v1/send", NULL, NULL, R_LOOPBACK, mail_send, NULL},
	{"GET", "/api/v1/message/{id}/part/{part}", NULL, NULL, R_LOOPBACK, mail_part, NULL},
	{"GET", "/view/{file}", NULL, NULL, R_LOOPBACK, mail_view, NULL},
	/* The pages (web/): their data comes from the routes above. */
	{"GET", "/", NULL, "{\"file\":\"index.html\"}", R_PUBLIC, web_serve, NULL},
	{"GET", "/inbox", NULL, "{\"file\":\"inbox.html\"}", R_PUBLIC, web_serve, NULL},
	{"GET", "/mail", NULL, "{\"file\":\"mail.html\"}", R_PUBLIC, web_serve, NULL},
	{"GET", "/api", NULL, "{\"file\":\"api.html\"}", R_PUBLIC, web_serve, NULL},
	/* At the root, so that its scope is every page. */
	{"GET", "/sw.js", NULL, "{\"file\":\"sw.js\"}", R_PUBLIC, web_serve, NULL},
	{"GET", "/api/v1/status", "status", NULL, R_LOOPBACK, NULL, NULL},
	{"GET", "/assets/{file}", NULL, NULL, R_PUBLIC, web_serve, NULL},
};
#undef N
#define NROUTES ((int)(sizeof routes / sizeof routes[0]))
#define MAX_SEGS 12

/* A client's token bucket for rate limiting. */
struct bucket {
	uint64_t	 key;
	double		 tokens;
	int64_t		 last;		/* ms */
};
#define NBUCKETS 4096

struct http {
	struct app		*app;
	struct mg_context	*ctx;
	const struct op		*ops[NROUTES];
	const char		*labels[NROUTES];
	json_t			*fixed[NROUTES];
	char			*label_mem;
	int			 port;
	char			 host[256];
	volatile int		 stopped;
	pthread_mutex_t		 rl_lock;
	struct bucket		*buckets;
};

/* Will civetweb keep this connection open after the response? */
static bool
keep_alive(struct mg_connection *c)
{
	const struct mg_request_info *ri = mg_get_request_info(c);
	const char *conn = mg_get_header(c, "Connection");
	if (conn != NULL)
		return strcasecmp(conn, "keep-alive") == 0;
	return ri->http_version != NULL && strcmp(ri->http_version, "1.1") == 0;
}

/*
 * Close the connection after this response, whatever the request asked:
 * its answer says "Connection: close", and civetweb, which decides from
 * the request's own Connection header (mg_request_info is civetweb's, not
 * a copy), serves no further request on it. (What is left of a body it
 * still reads out before it closes.) For a request refused before or
 * while its body is read, and for one whose body's length is ambiguous.
 * The request is being refused: when its headers are full, its last
 * gives way.
 */
static void
close_after(struct mg_connection *c)
{
	struct mg_request_info *ri = (struct mg_request_info *)mg_get_request_info(c);
	int i = 0;
	while (i < ri->num_headers && strcasecmp(ri->http_headers[i].name, "Connection") != 0)
		i++;
	if (i == MG_MAX_HEADERS)
		i--;
	else if (i == ri->num_headers)
		ri->num_headers++;
	ri->http_headers[i].name = "Connection";
	ri->http_headers[i].value = "close";
}

/* Is this a HEAD request (whose answer has no body)? Not known for a malformed one. */
static bool
is_head(struct mg_connection *c)
{
	const char *m = mg_get_request_info(c)->request_method;
	return m != NULL && strcmp(m, "HEAD") == 0;
}

/*
 * Send a complete response: status line, the usual headers, extra headers
 * (name, value pairs ended by NULL) and the body, in one write. Not
 * through mg_response_header_start/add/send: civetweb writes the status
 * line and each header with a write of its own, several sends for what
 * is one packet here. The reason phrase is civetweb's.
 */
static void
respond(struct mg_connection *c, int status, const char *type, const char *body,
    size_t len, const char *const *headers)
{
	char stack[4096];
	struct buf b;
	buf_init_stack(&b, stack, sizeof stack);
	buf_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
	    "Connection: %s\r\n", status, mg_get_response_code_text(c, status), type, len,
	    keep_alive(c) ? "keep-alive" : "close");
	for (; headers != NULL && headers[0] != NULL; headers += 2)
		buf_printf(&b, "%s: %s\r\n", headers[0], headers[1]);
	buf_puts(&b, "\r\n");
	if (!is_head(c))
		buf_put(&b, body, len);
	if (!b.oom)
		mg_write(c, b.data, b.len);
	buf_free(&b);
}

/* Send {"error":{"code","message"}}. */
static void
respond_error(struct mg_connection *c, const struct op_error *e, const char *const *headers)
{
	json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", e->code, "message",
	    e->status >= 500 && e->status != 503 && e->status != 505 ? "internal error" :
	    e->message);
	char *s = json_dumps(j, JSON_COMPACT);
	respond(c, e->status, "application/json", s ? s : "{}", s ? strlen(s) : 2, headers);
	free(s);
	json_decref(j);
}

/* Answer a request refused or failed with e, and log it once, at error for a 5xx. */
static void
respond_refused(struct mg_connection *c, const struct op_error *e, const char *const *headers)
{
	const struct mg_request_info *ri = mg_get_request_info(c);
	/* Logged first: once the client has its answer, the line is written. */
	if (e->status >= 500)
		log_error("http request failed", "method=%s path=%s status=%d code=%s error=%s",
		    ri->request_method, ri->local_uri, e->status, e->code, e->message);
	else
		log_info("http request refused", "method=%s path=%s status=%d code=%s error=%s",
		    ri->request_method, ri->local_uri, e->status, e->code, e->message);
	respond_error(c, e, headers);
}

static void
respond_json(struct mg_connection *c, int status, json_t *body, const char *const *headers)
{
	char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
	if (s == NULL) {
		struct op_error e;
		op_error_set(&e, 500, "internal", "the response could not be encoded");
		respond_error(c, &e, headers);
		return;
	}
	respond(c, status, "application/json", s, strlen(s), headers);
	free(s);
}

static void
healthz(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	(void)args;
	if (store_ping(h->app->store) > 0) {
		*status = 200;
		respond(c, 200, "application/json", "{\"status\":\"ok\"}", 15, hdr);
	} else {
		static const char down[] = "{\"status\":\"unavailable\",\"error\":{\"code\":"
		    "\"unavailable\",\"message\":\"the database is not answering\"}}";
		*status = 503;
		respond(c, 503, "application/json", down, sizeof down - 1, hdr);
	}
}

/* Alive while it serves HTTP, whether or not the database answers. */
static void
livez(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	(void)h;
	(void)args;
	*status = 200;
	respond(c, 200, "application/json", "{\"status\":\"ok\"}", 15, hdr);
}

/* Mailpit's tags: the sink keeps none, so the list of them is empty. */
static void
mail_tags(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	(void)h;
	(void)args;
	*status = 200;
	respond(c, 200, "application/json", "[]", 2, hdr);
}

/* Mailpit's settings for its web UI: none of its optional parts is here. */
static void
mail_webui(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	static const char conf[] = "{\"Label\":\"\",\"MessageRelay\":{\"Enabled\":false,"
	    "\"SMTPServer\":\"\",\"ReturnPath\":\"\",\"AllowedRecipients\":\"\","
	    "\"BlockedRecipients\":\"\",\"OverrideFrom\":\"\",\"PreserveMessageIDs\":false},"
	    "\"SpamAssassin\":false,\"ChaosEnabled\":false,\"DuplicatesIgnored\":false,"
	    "\"HideDeleteAllButton\":false,\"DisableHTMLCheck\":true}";
	(void)h;
	(void)args;
	*status = 200;
	respond(c, 200, "application/json", conf, sizeof conf - 1, hdr);
}

static void
metrics_page(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	(void)args;
	struct buf b;
	int64_t commits, writes;
	buf_init(&b);
	metrics_render(&b);
	store_stats(h->app->store, &commits, &writes);
	buf_printf(&b, "# HELP notifyd_ws_connections Open WebSocket connections.\n"
	    "# TYPE notifyd_ws_connections gauge\nnotifyd_ws_connections %d\n",
	    h->app->hub ? hub_open(h->app->hub) : 0);
	buf_printf(&b, "# HELP notifyd_store_commits_total Database commits.\n"
	    "# TYPE notifyd_store_commits_total counter\nnotifyd_store_commits_total %lld\n"
	    "# HELP notifyd_store_writes_total Writes carried by those commits.\n"
	    "# TYPE notifyd_store_writes_total counter\nnotifyd_store_writes_total %lld\n",
	    (long long)commits, (long long)writes);
	*status = b.oom ? 500 : 200;
	respond(c, *status, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "",
	    b.len, hdr);
	buf_free(&b);
}

/*
 * What a page may do: load its own scripts, styles and images, call its
 * own API and WebSockets, frame its own mail views (which carry their
 * own sandbox), and nothing else; no inline script or style at all.
 */
#define PAGE_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
	"img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; " \
	"base-uri 'none'; frame-ancestors 'none'"

/*
 * GET /, /inbox, /mail and /assets/{file}: an embedded file of web/, gzip
 * when the client takes it, revalidated by its ETag (304), never cached
 * without asking: a new notifyd serves its new pages at once.
 */
static void
web_serve(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	(void)h;
	const struct web_asset *a = web_find(json_string_value(json_object_get(args, "file")));
	if (a == NULL) {
		struct op_error e;
		op_error_set(&e, 404, "not_found", "%s", "no such file");
		*status = 404;
		respond_refused(c, &e, hdr);
		return;
	}
	bool gz = a->gz != NULL && web_accepts_gzip(mg_get_header(c, "Accept-Encoding"));
	const char *etag = gz ? a->gzetag : a->etag;
	struct buf b;
	char stack[1024];
	buf_init_stack(&b, stack, sizeof stack);
	*status = web_etag_matches(mg_get_header(c, "If-None-Match"), etag) ? 304 : 200;
	buf_printf(&b, "HTTP/1.1 %d %s\r\n", *status, mg_get_response_code_text(c, *status));
	if (*status == 200)
		buf_printf(&b, "Content-Type: %s\r\nContent-Length: %zu\r\n%s", a->type,
		    gz ? a->gzlen : a->len, gz ? "Content-Encoding: gzip\r\n" : "");
	buf_printf(&b, "ETag: %s\r\nVary: Accept-Encoding\r\nCache-Control: no-cache\r\n"
	    "Content-Security-Policy: " PAGE_CSP "\r\nX-Content-Type-Options: nosniff\r\n"
	    "Referrer-Policy: no-referrer\r\nCross-Origin-Opener-Policy: same-origin\r\n"
	    "Cross-Origin-Resource-Policy: same-origin\r\nConnection: %s\r\n", etag,
	    keep_alive(c) ? "keep-alive" : "close");
	for (; hdr != NULL && hdr[0] != NULL; hdr += 2)
		buf_printf(&b, "%s: %s\r\n", hdr[0], hdr[1]);
	buf_puts(&b, "\r\n");
	if (!b.oom) {
		mg_write(c, b.data, b.len);
		if (*status == 200 && !is_head(c))
			mg_write(c, gz ? a->gz : a->data, gz ? a->gzlen : a->len);
	}
	buf_free(&b);
}

/* Split path into at most MAX_SEGS decoded segments; -1 when it cannot be. */
static int
split_path(const char *path, char segs[MAX_SEGS][512])
{
	int n = 0;
	if (*path != '/')
		return -1;
	while (*path == '/') {
		const char *start = ++path;
		path += strcspn(path, "/");
		if (path == start && *path == '\0' && n > 0)
			break;		/* one trailing slash is forgiven */
		if (n == MAX_SEGS || path - start >= 512)
			return -1;
		if (mg_url_decode(start, (int)(path - start), segs[n], 512, 0) < 0)
			return -1;
		n++;
	}
	return n;
}

/* A word (from a path or a query) as the JSON an argument of type t takes; NULL if it cannot be. */
static json_t *
word_json(enum arg_type t, const char *w)
{
	int64_t v;
	switch (t) {
	case ARG_INT:
		return parse_int64(w, INT64_MIN, INT64_MAX, &v) ? json_integer(v) : NULL;
	case ARG_ID:
		return parse_int64(w, 1, INT64_MAX, &v) ? json_integer(v) : NULL;
	case ARG_BOOL:
		if (strcmp(w, "true") == 0 || strcmp(w, "1") == 0 || *w == '\0')
			return json_true();
		if (strcmp(w, "false") == 0 || strcmp(w, "0") == 0)
			return json_false();
		return NULL;
	case ARG_IDS:
	case ARG_STRINGS: {
		json_t *arr = json_array();
		char *copy = strdup(w), *save = NULL;
		for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
			json_t *e = t == ARG_IDS ? word_json(ARG_ID, p) : json_string(p);
			if (e == NULL) {
				json_decref(arr);
				arr = NULL;
				break;
			}
			json_array_append_new(arr, e);
		}
		free(copy);
		return arr;
	}
	case ARG_OBJECT:
		return NULL;
	default:
		return json_string(w);
	}
}

/* Each route's number of segments: counted before the first match (http_start, the probe). */
static int route_nsegs[NROUTES];
static pthread_once_t route_nsegs_once = PTHREAD_ONCE_INIT;

static void
route_nsegs_count(void)
{
	for (int r = 0; r < NROUTES; r++)
		for (const char *p = routes[r].path; *p != '\0'; p++)
			route_nsegs[r] += *p == '/';
}

/*
 * Does route r match the segments? Fills args with its path parameters.
 * A parameter that does not convert (an id that is not a number) is no match.
 */
static bool
route_match(const struct op *op, int r, char segs[MAX_SEGS][512], int nsegs, json_t *args)
{
	const char *p = routes[r].path;
	int i = 0;
	if (json_object_size(args) > 0)
		json_object_clear(args);
	/* Every request tries every route: most are told apart by their length. */
	if (route_nsegs[r] != nsegs)
		return false;
	while (*p == '/') {
		const char *start = ++p;
		p += strcspn(p, "/");
		size_t len = (size_t)(p - start);
		if (i == nsegs)
			return false;
		if (start[0] == '{') {
			char name[64];
			snprintf(name, sizeof name, "%.*s", (int)(len - 2), start + 1);
			const struct op_arg *a = op ? op_arg_find(op, name) : NULL;
			json_t *v = word_json(a ? a->type : ARG_STRING, segs[i]);
			if (v == NULL || segs[i][0] == '\0') {
				json_decref(v);
				return false;
			}
			json_object_set_new(args, name, v);
		} else if (strlen(segs[i]) != len || strncmp(segs[i], start, len) != 0) {
			return false;
		}
		i++;
	}
	return i == nsegs;
}

/* Most parameters a query string may carry (a route's arguments are fewer). */
#define MAX_QUERY 32

/* Add the query string's parameters to args, typed by op's declaration. */
static bool
add_query(const struct op *op, const char *qs, json_t *args, struct op_error *err)
{
	struct mg_header kv[MAX_QUERY];
	char *copy = strdup(qs ? qs : "");
	bool ok = copy != NULL;
	/* civetweb splits at & and =, and decodes each name and value in place. */
	int n = ok ? mg_split_form_urlencoded(copy, kv, MAX_QUERY) : -1;
	if (ok && (n < 0 || (n == MAX_QUERY && mg_split_form_urlencoded(copy, NULL, 0) > n))) {
		op_error_set(err, 400, "bad_request", "at most %d query parameters", MAX_QUERY);
		ok = false;
	}
	for (int i = 0; ok && i < n; i++) {
		const char *key = kv[i].name, *val = kv[i].value ? kv[i].value : "";
		if (*key == '\0')
			continue;	/* "a=1&&b=2" */
		const struct op_arg *a = op_arg_find(op, key);
		if (a == NULL || json_object_get(args, key) != NULL) {
			if (a != NULL)
				op_error_set(err, 422, "invalid_field", "'%.100s' is given twice", key);
			else
				op_error_set(err, 422, "unknown_field",
				    "unknown query parameter '%.100s'", key);
			ok = false;
			break;
		}
		json_t *v = word_json(a->type, val);
		if (v == NULL) {
			op_error_set(err, 422, "invalid_field", "'%.100s' must be %s", key,
			    op_arg_type_name(a->type));
			ok = false;
			break;
		}
		json_object_set_new(args, key, v);
	}
	free(copy);
	return ok;
}

const char *
http_route_probe(const char *method, const char *path, const char *query, json_t *args,
    struct op_error *err)
{
	pthread_once(&route_nsegs_once, route_nsegs_count);
	char segs[MAX_SEGS][512];
	int nsegs = split_path(path, segs);
	for (int r = 0; nsegs >= 0 && r < NROUTES; r++) {
		const struct op *op = routes[r].op ? op_find(routes[r].op) : NULL;
		if (strcmp(routes[r].method, method) != 0 ||
		    !route_match(op, r, segs, nsegs, args))
			continue;
		if (op == NULL)
			return routes[r].path;	/* a raw handler's: no arguments */
		return add_query(op, query, args, err) ? op->name : NULL;
	}
	op_error_set(err, 404, "not_found", "%s", "no such route");
	return NULL;
}

/* Is origin one of the allowed CORS origins? */
static bool
origin_allowed(const struct http *h, const char *origin)
{
	const char *list = h->app->cfg->http_cors_origins;
	size_t ol = origin ? strlen(origin) : 0;
	if (origin == NULL || list == NULL)
		return false;
	for (const char *p = list; *p;) {
		p += strspn(p, " ,");
		size_t l = strcspn(p, " ,");
		if ((l == 1 && *p == '*') || (l == ol && l > 0 && strncmp(p, origin, l) == 0))
			return true;
		p += l;
	}
	return false;
}

/* Take one request from client's bucket; false when it is empty. */
static bool
rate_ok(struct http *h, const char *client, int64_t now, int *retry_after)
{
	int64_t rate = h->app->cfg->http_rate_limit;
	if (rate <= 0)
		return true;
	uint64_t key = hash_str(client) | 1;	/* 0 marks an empty bucket */
	pthread_mutex_lock(&h->rl_lock);
	struct bucket *b = &h->buckets[key % NBUCKETS];
	if (b->key != key) {
		b->key = key;
		b->tokens = (double)rate;
		b->last = now;
	}
	b->tokens += (double)(now - b->last) * (double)rate / 1000.0;
	if (b->tokens > (double)rate)
		b->tokens = (double)rate;
	b->last = now;
	bool ok = b->tokens >= 1.0;
	if (ok)
		b->tokens -= 1.0;
	else
		*retry_after = (int)((1.0 - b->tokens) / (double)rate) + 1;
	pthread_mutex_unlock(&h->rl_lock);
	return ok;
}

/* Read the body, at most max bytes; 413/400 in err when it cannot be had. */
static char *
read_body(struct mg_connection *c, int64_t max, size_t *len, struct op_error *err)
{
	const struct mg_request_info *ri = mg_get_request_info(c);
	if (ri->content_length > max) {
		close_after(c);
		op_error_set(err, 413, "body_too_large", "%s", "");
		snprintf(err->message, sizeof err->message, "the body is larger than %lld bytes",
		    (long long)max);
		return NULL;
	}
	struct buf b;
	buf_init(&b);
	char chunk[16384];
	int n;
	while ((n = mg_read(c, chunk, sizeof chunk)) > 0) {
		if ((int64_t)(b.len + (size_t)n) > max) {
			buf_free(&b);
			close_after(c);
			op_error_set(err, 413, "body_too_large", "%s", "");
			snprintf(err->message, sizeof err->message,
			    "the body is larger than %lld bytes", (long long)max);
			return NULL;
		}
		buf_put(&b, chunk, (size_t)n);
	}
	if (n < 0 || b.oom) {
		buf_free(&b);
		op_error_set(err, 400, "bad_request", "%s", "the body could not be read");
		return NULL;
	}
	*len = b.len;
	return buf_take(&b);
}

/* Parse a request body into an object; err says where it is malformed. */
static json_t *
parse_body(struct mg_connection *c, const char *body, size_t len, struct op_error *err)
{
	const char *type = mg_get_header(c, "Content-Type");
	if (type == NULL || strncasecmp(type, "application/json", 16) != 0 ||
	    (type[16] != '\0' && type[16] != ';' && type[16] != ' ')) {
		op_error_set(err, 415, "unsupported_media_type", "%s", "send the body as Content-Type: application/json");
		return NULL;
	}
	const char *coding = mg_get_header(c, "Content-Encoding");
	if (coding != NULL && strcasecmp(coding, "identity") != 0) {	/* RFC 7694 */
		op_error_set(err, 415, "unsupported_media_type", "Content-Encoding %.40s is not "
		    "supported; send the body uncompressed", coding);
		return NULL;
	}
	json_error_t jerr;
	bool deep;
	json_t *j = json_load_bounded(body, len, JSON_REJECT_DUPLICATES, &jerr, &deep);
	if (j == NULL && deep) {
		op_error_set(err, 400, "too_deep", "the body's %s", jerr.text);
		return NULL;
	}
	if (j == NULL) {
		op_error_set(err, 400, "malformed_json", "%s", "");
		snprintf(err->message, sizeof err->message,
		    "malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		op_error_set(err, 400, "malformed_json", "%s", "the body must be a JSON object");
		return NULL;
	}
	return j;
}

/* The next pair of a route's "From=to,From2=to2" map at *p, advancing it; false at the end. */
static bool
map_pair(const char **p, char from[32], char to[32])
{
	if (**p == '\0')
		return false;
	size_t eq = strcspn(*p, "="), end = strcspn(*p, ",");
	snprintf(from, 32, "%.*s", (int)eq, *p);
	snprintf(to, 32, "%.*s", (int)(end - eq - 1), *p + eq + 1);
	*p += end + ((*p)[end] == ',');
	return true;
}

/* Rename body keys by the route's map (Mailpit's IDs, Read onto ids, read). */
static void
rename_keys(json_t *body, const char *map)
{
	char from[32], to[32];
	while (map_pair(&map, from, to)) {
		json_t *v = json_object_get(body, from);
		if (v != NULL) {
			json_object_set(body, to, v);
			json_object_del(body, from);
		}
	}
}

/*
 * An operation's error speaks of its arguments, for the control socket,
 * and may begin with its name ("send: 'at' must be ..."). Over HTTP it
 * speaks of the request: no operation's name, and the body's own key
 * where the route renames one ('deliver_at', not 'at').
 */
static void
error_as_http(struct op_error *e, const char *opname, const char *map)
{
	size_t n = strlen(opname);
	char *m = e->message, from[32], to[32], body[40], quoted[40];
	if (strncmp(m, opname, n) == 0 && strncmp(m + n, ": ", 2) == 0)
		memmove(m, m + n + 2, strlen(m + n + 2) + 1);
	if (map == NULL || *map == '*')		/* "*=name": the body is one argument */
		return;
	while (map_pair(&map, from, to)) {
		snprintf(body, sizeof body, "'%s'", from);
		snprintf(quoted, sizeof quoted, "'%s'", to);
		char *at = strstr(m, quoted);
		size_t ql = strlen(quoted), bl = strlen(body), ml = strlen(m);
		if (at != NULL && ml - ql + bl < sizeof e->message) {
			memmove(at + bl, at + ql, strlen(at + ql) + 1);
			memcpy(at, body, bl);
		}
	}
}

/* The stored message args.id names, or a 404 sent; NULL then. */
static bool
mail_of(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status, struct mail_got *m)
{
	/* latest?query=...&tz=...: the newest message matching, as on mail.show. */
	const char *qs = mg_get_request_info(c)->query_string;
	struct op_ctx ctx = {.app = h->app, .now = time_now_ms()};
	json_t *a = json_pack("{s:O}", "id", json_object_get(args, "id"));
	static const char *const names[] = {"query", "tz"};
	char val[4096], uid[128];
	int rc = 1;
	for (int i = 0; i < 2 && qs != NULL; i++) {
		int n = mg_get_var(qs, strlen(qs), names[i], val, sizeof val);
		json_t *v = n >= 0 ? json_string(val) : NULL;
		if (n == -2 || (n >= 0 && v == NULL)) {
			op_error_set(&ctx.err, 422, "invalid_field", "'%s' must be UTF-8 of at most "
			    "%zu bytes", names[i], sizeof val - 1);
			rc = -1;
		}
		if (v != NULL)
			json_object_set_new(a, names[i], v);
	}
	if (rc > 0)
		rc = op_mail_pick(&ctx, a, uid, sizeof uid);
	if (rc > 0)
		rc = store_mail_get(h->app->store, uid, m);
	json_decref(a);
	if (rc > 0)
		return true;
	if (rc == 0)
		op_error_set(&ctx.err, 404, "not_found", "no such message");
	else if (ctx.err.status == 0)
		op_error_set(&ctx.err, 500, "internal", "the message could not be read");
	*status = ctx.err.status;
	respond_refused(c, &ctx.err, hdr);
	return false;
}

/*
 * Mailpit's send API: a message described in JSON, written as MIME and
 * stored as the sink stores what it receives. Answers {"ID"}.
 */
static void
mail_send(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	const struct config *cfg = h->app->cfg;
	struct op_error e = {0};
	size_t len = 0;
	char err[256] = "", uid[23], *from = NULL;
	struct buf msg;
	json_t *req = NULL, *rcpts = json_array();
	(void)args;
	buf_init(&msg);
	/* Its attachments in base64 and the JSON around them: a third more than max_size. */
	char *body = read_body(c, cfg->smtp_max_size / 3 * 4 + 65536, &len, &e);
	if (body != NULL)
		req = parse_body(c, body, len, &e);
	if (req != NULL && !mime_build(req, time_now_ms(), cfg->smtp_hostname, &msg, rcpts, &from,
	    err, sizeof err))
		op_error_set(&e, 422, "invalid_field", "%s", err);
	else if (req != NULL && msg.oom)
		op_error_set(&e, 500, "internal", "%s", "out of memory");
	else if (req != NULL) {
		int rc = smtpd_store_message(h->app, from, rcpts, msg.data, msg.len,
		    mg_get_request_info(c)->remote_addr, NULL, uid, err, sizeof err);
		if (rc == 0)
			op_error_set(&e, 413, "message_too_large", "%s", err);
		else if (rc == -3)
			op_error_set(&e, 422, "invalid_field", "%s", err);
		else if (rc == -2)
			op_error_set(&e, 507, "insufficient_storage", "%s", err);
		else if (rc < 0)
			op_error_set(&e, 500, "internal", "%s", err);
	}
	if (e.status == 0) {
		char out[64];
		int n = snprintf(out, sizeof out, "{\"ID\":\"%s\"}", uid);
		*status = 200;
		respond(c, 200, "application/json", out, (size_t)n, hdr);
	} else {
		*status = e.status;
		respond_refused(c, &e, hdr);
	}
	free(from);
	free(body);
	json_decref(req);
	json_decref(rcpts);
	buf_free(&msg);
}

/*
 * What a browser may do with a captured mail's bytes: nothing. They come
 * from anyone and are served on the API's own origin, so a script in
 * them could call the mailbox API: CSP sandbox gives them an opaque
 * origin, no scripts, forms or remote loads (inline images only).
 */
#define MAIL_CSP "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"

/* hdr with one more name, value pair, into out (at most 16 entries in all). */
static const char *const *
add_header(const char **out, const char *const *hdr, const char *name, const char *value)
{
	int n = 0;
	for (; hdr != NULL && hdr[n] != NULL && n < 12; n += 2) {
		out[n] = hdr[n];
		out[n + 1] = hdr[n + 1];
	}
	out[n++] = name;
	out[n++] = value;
	out[n] = NULL;
	return out;
}

/* GET /api/v1/message/{id}/raw: the message exactly as received. */
static void
mail_raw(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	struct mail_got m = {0};
	const char *extra[16];
	if (!mail_of(h, c, args, hdr, status, &m))
		return;
	*status = 200;
	respond(c, 200, "text/plain; charset=utf-8", m.raw, m.len,
	    add_header(extra, hdr, "Content-Security-Policy", MAIL_CSP));
	json_decref(m.summary);
	free(m.raw);
}

/*
 * The Content-Disposition of a part named name: inline only for images a
 * browser cannot run (SVG can hold script), else an attachment. The name
 * is kept printable ASCII in filename="", and whole in filename*=UTF-8''.
 */
static void
disposition(char *out, size_t n, const char *type, const char *name)
{
	bool image = strncasecmp(type, "image/", 6) == 0 && strcasestr(type, "svg") == NULL;
	struct buf b;
	buf_init_stack(&b, out, n);
	buf_printf(&b, "%s; filename=\"", image ? "inline" : "attachment");
	const char *fn = name && *name ? name : "part";
	for (const unsigned char *p = (const unsigned char *)fn; *p && b.len < 200; p++)
		buf_putc(&b, *p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' ? '_' : (char)*p);
	buf_puts(&b, "\"; filename*=UTF-8''");
	for (const unsigned char *p = (const unsigned char *)fn; *p && b.len + 4 < n; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("!#$&+-.^_`|~", *p))
			buf_putc(&b, (char)*p);
		else
			buf_printf(&b, "%%%02X", *p);
	}
	if (b.oom || !b.on_stack)
		snprintf(out, n, "attachment; filename=\"part\"");
	buf_free(&b);
}

/* GET /api/v1/message/{id}/part/{part}: one part, decoded. */
static void
mail_part(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	struct mail_got m = {0};
	char *type = NULL, *name = NULL, disp[1024];
	const char *extra[16], *extra2[16];
	size_t len = 0;
	if (!mail_of(h, c, args, hdr, status, &m))
		return;
	char *data = mime_part(m.raw, m.len, json_string_value(json_object_get(args, "part")),
	    &len, &type, &name);
	if (data == NULL) {
		struct op_error e;
		op_error_set(&e, 404, "not_found", "no such part");
		*status = 404;
		respond_refused(c, &e, hdr);
	} else {
		disposition(disp, sizeof disp, type, name);
		*status = 200;
		respond(c, 200, type, data, len, add_header(extra2,
		    add_header(extra, hdr, "Content-Disposition", disp),
		    "Content-Security-Policy", MAIL_CSP));
	}
	free(data);
	free(type);
	free(name);
	json_decref(m.summary);
	free(m.raw);
}

/* GET /view/{id}.html or .txt: the body alone, for a browser. */
static void
mail_view(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	const char *file = json_string_value(json_object_get(args, "file"));
	size_t fl = strlen(file);
	bool html = fl > 5 && strcmp(file + fl - 5, ".html") == 0;
	bool text = fl > 4 && strcmp(file + fl - 4, ".txt") == 0;
	struct mail_got m = {0};
	if (!html && !text) {
		struct op_error e;
		op_error_set(&e, 404, "not_found", "ask for /view/ID.html or /view/ID.txt");
		*status = 404;
		respond_refused(c, &e, hdr);
		return;
	}
	json_t *a = json_pack("{s:s%}", "id", file, fl - (html ? 5 : 4));
	if (mail_of(h, c, a, hdr, status, &m)) {
		json_t *full = mime_message(m.raw, m.len, m.summary);
		const char *body = json_string_value(json_object_get(full, html ? "HTML" : "Text"));
		const char *extra[16];
		*status = 200;
		respond(c, 200, html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8",
		    body ? body : "", body ? strlen(body) : 0,
		    add_header(extra, hdr, "Content-Security-Policy", MAIL_CSP));
		json_decref(full);
		json_decref(m.summary);
		free(m.raw);
	}
	json_decref(a);
}

/*
 * May origin call route r across origins? cors_origins say so for the
 * notification API; the mailbox (the R_LOOPBACK routes) shows other
 * people's password resets, so only with [http] mail_cors as well.
 */
static bool
cors_allowed(const struct http *h, int r, const char *origin)
{
	if (r >= 0 && (routes[r].flags & R_LOOPBACK) && !h->app->cfg->http_mail_cors)
		return false;
	return origin_allowed(h, origin);
}

/* Is origin this server itself (a page notifyd serves)? */
static bool
same_origin(struct mg_connection *c, const char *origin)
{
	const char *host = mg_get_header(c, "Host");
	const char *o = strstr(origin, "://");
	return host != NULL && o != NULL && strcmp(o + 3, host) == 0;
}

/* Is host (a Host header) this server under a loopback name: localhost, 127.0.0.1, [::1]? */
static bool
host_local(const struct http *h, const char *host)
{
	static const char *const names[] = {"localhost", "127.0.0.1", "[::1]", NULL};
	for (int i = 0; names[i]; i++) {
		size_t l = strlen(names[i]);
		if (strncasecmp(host, names[i], l) != 0)
			continue;
		if (host[l] == '\0')
			return h->port == 80;
		int64_t port;
		return host[l] == ':' && parse_int64(host + l + 1, 1, 65535, &port) &&
		    port == h->port;
	}
	return false;
}

/*
 * May this request reach the mailbox without credentials, as Mailpit's
 * does? Only a program on this host: a loopback peer that is not the
 * trusted reverse proxy, naming this server by a loopback name (so DNS
 * rebinding, evil.example resolving to 127.0.0.1, is not), and sent by no
 * page of another origin (a browser is a loopback peer too).
 */
static bool
mailbox_local(const struct http *h, struct mg_connection *c)
{
	const struct mg_request_info *ri = mg_get_request_info(c);
	const char *host = mg_get_header(c, "Host"), *origin = mg_get_header(c, "Origin");
	const char *proxy = h->app->cfg->http_trust_proxy;
	bool loopback = strncmp(ri->remote_addr, "127.", 4) == 0 ||
	    strcmp(ri->remote_addr, "::1") == 0;
	if (!loopback || (*proxy != '\0' && strcmp(ri->remote_addr, proxy) == 0))
		return false;
	if (host != NULL && !host_local(h, host))
		return false;
	return origin == NULL || same_origin(c, origin);
}

/* CORS headers for an allowed origin of route r, appended to hdr (name, value pairs). */
static int
cors_headers(const struct http *h, int r, const char *origin, const char **hdr, int n)
{
	if (!cors_allowed(h, r, origin))
		return n;
	hdr[n++] = "Access-Control-Allow-Origin";
	hdr[n++] = origin;
	hdr[n++] = "Vary";
	hdr[n++] = "Origin";
	return n;
}

/*
 * civetweb's own authorization, which every request and WebSocket upgrade
 * passes: without a handler it looks for a .htpasswd file, at the root of
 * the file system when no document root is set, on every request (a
 * failed stat each), and if one is there asks every request for HTTP
 * digest credentials from it, /healthz too. notifyd decides access
 * itself (handle(), ws_connect()), so civetweb lets every request through.
 */
static int
civetweb_auth(struct mg_connection *c, void *cbdata)
{
	(void)c, (void)cbdata;
	return 1;
}

/* Handle one request from start to finish. */
static int
handle(struct mg_connection *c, void *cbdata)
{
	struct http *h = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(c);
	int64_t t0 = time_mono_ms() * 1000, now = time_now_ms();
	char segs[MAX_SEGS][512], allow[128] = "", retry[16];
	const char *hdr[16] = {NULL};
	const char *origin = mg_get_header(c, "Origin");
	struct op_ctx ctx = {.app = h->app, .now = now};
	struct principal who = {0};
	json_t *args = json_object(), *result = NULL, *body = NULL;
	int nsegs = split_path(ri->local_uri_raw ? ri->local_uri_raw : ri->local_uri, segs);
	int route = -1, status = 0, nh = 0;
	char *raw = NULL;
	/* HEAD is GET without the body (respond() leaves it out). */
	const char *method = strcmp(ri->request_method, "HEAD") == 0 ? "GET" : ri->request_method;

	/* Which route; the methods of the path for 405 and preflights. */
	for (int r = 0; nsegs >= 0 && r < NROUTES; r++) {
		if (!route_match(h->ops[r], r, segs, nsegs, args))
			continue;
		if (strstr(allow, routes[r].method) == NULL)
			snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s%s",
			    *allow ? ", " : "", routes[r].method,
			    strcmp(routes[r].method, "GET") == 0 ? ", HEAD" : "");
		if (route < 0 && strcmp(routes[r].method, method) == 0)
			route = r;
	}
	/* A preflight asks about the route of the method it names. */
	int cors_route = route;
	const char *want = mg_get_header(c, "Access-Control-Request-Method");
	for (int r = 0; cors_route < 0 && want != NULL && nsegs >= 0 && r < NROUTES; r++)
		if (strcmp(routes[r].method, want) == 0 &&
		    route_match(h->ops[r], r, segs, nsegs, args))
			cors_route = r;
	if (route >= 0)
		route_match(h->ops[route], route, segs, nsegs, args);
	nh = cors_headers(h, cors_route, origin, hdr, nh);

	if (strcmp(ri->request_method, "OPTIONS") == 0 && *allow) {
		if (origin != NULL && !cors_allowed(h, cors_route, origin)) {
			op_error_set(&ctx.err, 403, "origin_not_allowed", "%s", "this origin may not call the API");
			goto fail;
		}
		hdr[nh++] = "Allow";
		hdr[nh++] = allow;
		hdr[nh++] = "Access-Control-Allow-Methods";
		hdr[nh++] = allow;
		hdr[nh++] = "Access-Control-Allow-Headers";
		hdr[nh++] = "Authorization, Content-Type";
		hdr[nh++] = "Access-Control-Max-Age";
		hdr[nh++] = "600";
		status = 204;
		respond(c, 204, "text/plain", "", 0, hdr);
		goto done;
	}
	if (route < 0 && *allow) {
		hdr[nh++] = "Allow";
		hdr[nh++] = allow;
		op_error_set(&ctx.err, 405, "method_not_allowed", "%s", "");
		snprintf(ctx.err.message, sizeof ctx.err.message, "%s is not allowed here; use %s",
		    ri->request_method, allow);
		goto fail;
	}
	if (route < 0) {
		op_error_set(&ctx.err, 404, "not_found", "%s", "no such route");
		goto fail;
	}
	if (routes[route].raw != NULL && (routes[route].flags & R_PUBLIC)) {
		json_object_update(args, h->fixed[route]);
		routes[route].raw(h, c, args, hdr, &status);
		goto done;
	}

	const char *authz = mg_get_header(c, "Authorization");
	int retry_after = 1;
	if (!rate_ok(h, authz ? authz : ri->remote_addr, now, &retry_after)) {
		metrics_add(C_RATE_LIMITED, 1);
		snprintf(retry, sizeof retry, "%d", retry_after);
		hdr[nh++] = "Retry-After";
		hdr[nh++] = retry;
		op_error_set(&ctx.err, 429, "rate_limited", "%s", "too many requests; slow down");
		goto fail;
	}
	if (!(routes[route].flags & R_PUBLIC) &&
	    !((routes[route].flags & R_LOOPBACK) && authz == NULL && mailbox_local(h, c)) &&
	    auth_check(h->app->auth, h->app->store, authz, now, &who, &ctx.err) != 0) {
		metrics_add(C_AUTH_FAILURES, 1);
		if (ctx.err.status == 401) {
			hdr[nh++] = "WWW-Authenticate";
			hdr[nh++] = "Bearer";
		}
		goto fail;
	}
	ctx.as_user = who.user;
	if (routes[route].raw != NULL) {
		if (who.user != NULL) {
			op_error_set(&ctx.err, 403, "forbidden", "the mailbox needs an API key");
			goto fail;
		}
		routes[route].raw(h, c, args, hdr, &status);
		goto done;
	}

	size_t len = 0;
	if ((raw = read_body(c, h->app->cfg->http_max_body, &len, &ctx.err)) == NULL)
		goto fail;
	if (len > 0 && !(routes[route].flags & R_BODY)) {
		op_error_set(&ctx.err, 400, "unexpected_body", "%s", "this route takes no body");
		goto fail;
	}
	if (len > 0 && (body = parse_body(c, raw, len, &ctx.err)) == NULL)
		goto fail;
	const struct op *op = h->ops[route];
	if (!add_query(op, ri->query_string, args, &ctx.err))
		goto fail;
	/* "*=name": the whole body is the argument name (a document such as preferences). */
	const char *ren = routes[route].rename;
	if (ren != NULL && strncmp(ren, "*=", 2) == 0 && body != NULL) {
		body = json_pack("{s:o}", ren + 2, body);
		ren = NULL;
	}
	const char *k;
	json_t *v;
	json_object_foreach(body, k, v) {
		if (json_object_get(args, k) != NULL) {
			op_error_set(&ctx.err, 422, "invalid_field", "%s", "");
			snprintf(ctx.err.message, sizeof ctx.err.message,
			    "'%.100s' is given by the path or query and may not be in the body", k);
			goto fail;
		}
	}
	if (ren != NULL && body != NULL)
		rename_keys(body, ren);
	json_object_update(args, body);
	json_object_update(args, h->fixed[route]);
	struct buf text;
	char text_mem[16384];
	buf_init_stack(&text, text_mem, sizeof text_mem);
	ctx.text = &text;
	result = op_call(&ctx, op, args);
	if (result == NULL) {
		buf_free(&text);
		error_as_http(&ctx.err, op->name, routes[route].rename);
		goto fail;
	}
	status = ctx.status;
	if (routes[route].flags & R_OK_TEXT)
		respond(c, status, "text/plain; charset=utf-8", "ok", 2, hdr);
	else if (text.len > 0)
		respond(c, status, "application/json", text.data, text.len, hdr);
	else
		respond_json(c, status, result, hdr);
	buf_free(&text);
	log_debug("http request", "method=%s route=%s status=%d", ri->request_method,
	    routes[route].path, status);
	goto done;
fail:
	status = ctx.err.status;
	/* Refused before its body was read: one larger than any route takes is not drained. */
	if (raw == NULL && (ri->content_length > h->app->cfg->http_max_body ||
	    (ri->content_length < 0 && mg_get_header(c, "Transfer-Encoding") != NULL)))
		close_after(c);
	if (status == 503) {	/* storage full or busy: a passing state */
		hdr[nh++] = "Retry-After";
		hdr[nh++] = "5";
	}
	respond_refused(c, &ctx.err, hdr);
done:
	metrics_http(route, status, time_mono_ms() * 1000 - t0);
	principal_clear(&who);
	json_decref(args);
	json_decref(body);
	json_decref(result);
	free(raw);
	return status ? status : 500;
}

/*
 * The connection gate. civetweb holds a worker for each connection from
 * accept to close, keep-alive and WebSocket alike; the gate keeps what it
 * holds, per address and in all, taken by http_admit() when accept()
 * returns and given back by civetweb's connection_close. It also holds
 * each connection to header_timeout for its first request's headers: a
 * watchdog cuts off one that has not sent them whole by then, however it
 * trickles (civetweb's own bound on them is request_timeout, 30 s, which
 * also bounds each read of a body).
 */
struct gconn {
	char		 addr[64];
	int		 port;
	int		 fd;
	int64_t		 deadline;	/* monotonic ms; 0: its headers came in time */
	struct gconn	*hnext;		/* in gate.conns[] */
	struct gconn	*prev, *next;	/* in the waiting list, while deadline != 0 */
};
struct peer {
	char		 addr[64];
	int		 n;
	struct peer	*next;
};
#define NPEERS 1024
#define NCONNS 4096
static struct {
	pthread_mutex_t	 lock;
	pthread_cond_t	 wake;		/* the watchdog's */
	const struct http *h;		/* the server admitting; NULL: everything */
	int		 workers;	/* civetweb's num_threads */
	int		 open;		/* admitted and not yet closed */
	int64_t		 header_ms;
	struct peer	*peers[NPEERS];
	struct gconn	*conns[NCONNS];
	struct gconn	*first, *last;	/* waiting for headers, by deadline (= by admission) */
	bool		 watching;	/* the watchdog runs */
	pthread_t	 watchdog;
	int64_t		 logged;	/* ms: refusals are logged at most once a second */
	int64_t		 unlogged[3];	/* since: per address, full, header timeouts */
} gate = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The text of an address, as civetweb's remote_addr spells it; false for a non-IP one. */
static bool
addr_text(const struct sockaddr *sa, socklen_t len, char *out, size_t n, int *port)
{
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		*port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
		return inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
		    (socklen_t)n) != NULL;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		*port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
		return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
		    (socklen_t)n) != NULL;
	}
	return false;
}

/* The count of addr, made when missing; under gate.lock. NULL when out of memory. */
static struct peer *
peer_get(const char *addr, bool make)
{
	struct peer **pp = &gate.peers[hash_str(addr) % NPEERS];
	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->addr, addr) == 0)
			return *pp;
	if (!make || (*pp = calloc(1, sizeof **pp)) == NULL)
		return NULL;
	snprintf((*pp)->addr, sizeof (*pp)->addr, "%s", addr);
	return *pp;
}

/* Give back addr's count; under gate.lock. */
static void
peer_put(const char *addr)
{
	struct peer **pp = &gate.peers[hash_str(addr) % NPEERS];
	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->addr, addr) == 0) {
			if (--(*pp)->n <= 0) {
				struct peer *gone = *pp;
				*pp = gone->next;
				free(gone);
			}
			return;
		}
}

/* Where the connection from addr:port is (or would be) in gate.conns[]; under gate.lock. */
static struct gconn **
gconn_slot(const char *addr, int port)
{
	struct gconn **cp = &gate.conns[(hash_str(addr) ^ (unsigned)port) % NCONNS];
	while (*cp != NULL && ((*cp)->port != port || strcmp((*cp)->addr, addr) != 0))
		cp = &(*cp)->hnext;
	return cp;
}

/* Its headers are in (or it was cut off): off the waiting list; under gate.lock. */
static void
gconn_unwait(struct gconn *g)
{
	if (g->deadline == 0)
		return;
	*(g->prev ? &g->prev->next : &gate.first) = g->next;
	*(g->next ? &g->next->prev : &gate.last) = g->prev;
	g->prev = g->next = NULL;
	g->deadline = 0;
}

/* Log what the gate refused and cut off, at most once a second; under gate.lock. */
static void
gate_log(int what, const char *addr)
{
	gate.unlogged[what]++;
	int64_t now = time_mono_ms();
	if (now - gate.logged < 1000)
		return;
	log_warn("http connections refused", "addr=%s per_address=%lld full=%lld "
	    "header_timeout=%lld", addr, (long long)gate.unlogged[0], (long long)gate.unlogged[1],
	    (long long)gate.unlogged[2]);
	memset(gate.unlogged, 0, sizeof gate.unlogged);
	gate.logged = now;
}

/* Answer fd with a complete response of its own and close its read side (no RST). */
static void
answer_and_shut(int fd, const char *status, const char *code, const char *message)
{
	char head[512], drain[4096];
	int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nRetry-After: 5\r\nCache-Control: no-store\r\n"
	    "Connection: close\r\n\r\n{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", status,
	    strlen(code) + strlen(message) + 34, code, message);
	(void)send(fd, head, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16 && recv(fd, drain, sizeof drain, MSG_DONTWAIT) > 0; i++)
		;
}

bool
http_admit(int fd, const struct sockaddr *sa, socklen_t len)
{
	char addr[64];
	int port;
	if (!addr_text(sa, len, addr, sizeof addr, &port))
		return true;
	pthread_mutex_lock(&gate.lock);
	const struct http *h = gate.h;
	if (h == NULL) {
		pthread_mutex_unlock(&gate.lock);
		return true;
	}
	int64_t cap = h->app->cfg->http_max_per_address;
	bool counted = cap > 0 && strcmp(addr, h->app->cfg->http_trust_proxy) != 0;
	struct peer *p = counted ? peer_get(addr, true) : NULL;
	struct gconn **slot = gconn_slot(addr, port), *g = NULL;
	int refused = gate.open >= gate.workers ? 2 : (counted && (p == NULL || p->n >= cap)) ? 1 :
	    *slot != NULL || (g = calloc(1, sizeof *g)) == NULL ? 2 : 0;
	if (refused == 0) {
		gate.open++;
		if (p != NULL)
			p->n++;
		snprintf(g->addr, sizeof g->addr, "%s", addr);
		g->port = port;
		g->fd = fd;
		g->deadline = time_mono_ms() + gate.header_ms;
		*slot = g;
		g->prev = gate.last;
		*(gate.last ? &gate.last->next : &gate.first) = g;
		gate.last = g;
		if (g->prev == NULL)
			pthread_cond_signal(&gate.wake);
	} else {
		if (p != NULL && p->n == 0)
			peer_put(addr);	/* made for nothing */
		gate_log(refused - 1, addr);
	}
	pthread_mutex_unlock(&gate.lock);
	if (refused == 0)
		return true;
	metrics_add(refused == 1 ? C_HTTP_REFUSED_ADDRESS : C_HTTP_REFUSED_FULL, 1);
	if (refused == 1)
		answer_and_shut(fd, "503 Service Unavailable", "too_many_connections",
		    "this address holds as many connections as it may; close some");
	else
		answer_and_shut(fd, "503 Service Unavailable", "server_full",
		    "every worker is busy; try later");
	close(fd);
	return false;
}

/* The watchdog: cut off each connection whose first headers are late. */
static void *
watchdog_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&gate.lock);
	while (gate.watching) {
		int64_t now = time_mono_ms();
		while (gate.first != NULL && gate.first->deadline <= now) {
			struct gconn *g = gate.first;
			gconn_unwait(g);
			/* civetweb's worker is reading: it sees the end and closes. */
			answer_and_shut(g->fd, "408 Request Timeout", "header_timeout",
			    "the request's headers did not arrive within header_timeout");
			shutdown(g->fd, SHUT_RD);
			metrics_add(C_HTTP_HEADER_TIMEOUTS, 1);
			gate_log(2, g->addr);
		}
		if (gate.first == NULL) {
			pthread_cond_wait(&gate.wake, &gate.lock);
		} else {
			int64_t at = gate.first->deadline;
			struct timespec ts = {(time_t)(at / 1000), (long)(at % 1000) * 1000000};
			pthread_cond_timedwait(&gate.wake, &gate.lock, &ts);
		}
	}
	pthread_mutex_unlock(&gate.lock);
	return NULL;
}

/*
 * Why a request's body has no one length, or NULL. civetweb reads a body
 * with both Content-Length and Transfer-Encoding as chunked, and goes by
 * the first of several Content-Lengths; a proxy in front that went by the
 * length, or by another of them, would pass as part of this request what
 * civetweb then serves as a request of its own (RFC 9112 6.1, 6.3).
 */
static const char *
framing_error(const struct mg_request_info *ri)
{
	long long length = -1;
	bool te = false;
	for (int i = 0; i < ri->num_headers; i++) {
		const char *v = ri->http_headers[i].value;
		if (strcasecmp(ri->http_headers[i].name, "Transfer-Encoding") == 0) {
			te = true;
		} else if (strcasecmp(ri->http_headers[i].name, "Content-Length") == 0) {
			/* Digits, then only what civetweb leaves of the whitespace around them. */
			size_t d = strspn(v, "0123456789");
			if (d == 0 || d > 18 || v[d + strspn(v + d, " \t")] != '\0')
				return "Content-Length must be a number";
			long long n = strtoll(v, NULL, 10);
			if (length >= 0 && n != length)
				return "a request may not carry two different Content-Lengths";
			length = n;
		}
	}
	return length >= 0 && te ?
	    "a request may not carry both Content-Length and Transfer-Encoding" : NULL;
}

/*
 * civetweb has a request's headers: the watchdog lets the connection be.
 * A request whose body's length is ambiguous is refused, and its
 * connection closed: see framing_error().
 */
static int
on_begin_request(struct mg_connection *c)
{
	const struct mg_request_info *ri = mg_get_request_info(c);
	pthread_mutex_lock(&gate.lock);
	struct gconn *g = *gconn_slot(ri->remote_addr, ri->remote_port);
	if (g != NULL)
		gconn_unwait(g);
	pthread_mutex_unlock(&gate.lock);
	const char *why = framing_error(ri);
	if (why == NULL)
		return 0;
	struct op_error e;
	op_error_set(&e, 400, "bad_request", "%s", why);
	close_after(c);
	respond_refused(c, &e, NULL);
	return e.status;
}

/* civetweb closed a connection: its place is free. */
static void
on_connection_close(const struct mg_connection *c)
{
	const struct mg_request_info *ri = mg_get_request_info(c);
	pthread_mutex_lock(&gate.lock);
	struct gconn **slot = gconn_slot(ri->remote_addr, ri->remote_port), *g = *slot;
	if (g != NULL) {
		gconn_unwait(g);
		*slot = g->hnext;
		free(g);
		gate.open--;
		peer_put(ri->remote_addr);
	}
	pthread_mutex_unlock(&gate.lock);
}

/* Start the gate for h, before civetweb accepts anything. */
static int
gate_start(const struct http *h)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&gate.wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_lock(&gate.lock);
	gate.h = h;
	gate.workers = (int)(h->app->cfg->ws_max_connections + h->app->cfg->ws_reserve);
	gate.header_ms = h->app->cfg->http_header_timeout;
	gate.open = 0;
	gate.watching = true;
	pthread_mutex_unlock(&gate.lock);
	if (pthread_create(&gate.watchdog, NULL, watchdog_main, NULL) != 0) {
		gate.watching = false;
		gate.h = NULL;
		return -1;
	}
	return 0;
}

/*
 * Stop the gate: accept() lets everything in from now on (the waker of
 * http_stop, what civetweb drops); the counts are forgotten.
 */
static void
gate_stop(const struct http *h)
{
	pthread_mutex_lock(&gate.lock);
	bool mine = gate.h == h && gate.watching;
	gate.h = NULL;
	gate.watching = false;
	pthread_cond_signal(&gate.wake);
	pthread_mutex_unlock(&gate.lock);
	if (!mine)
		return;
	pthread_join(gate.watchdog, NULL);
	pthread_mutex_lock(&gate.lock);
	for (int i = 0; i < NPEERS; i++)
		while (gate.peers[i] != NULL) {
			struct peer *p = gate.peers[i];
			gate.peers[i] = p->next;
			free(p);
		}
	for (int i = 0; i < NCONNS; i++)
		while (gate.conns[i] != NULL) {
			struct gconn *g = gate.conns[i];
			gate.conns[i] = g->hnext;
			free(g);
		}
	gate.first = gate.last = NULL;
	pthread_mutex_unlock(&gate.lock);
	pthread_cond_destroy(&gate.wake);
}

/* GET /ws without an upgrade. */
static void
ws_plain(struct http *h, struct mg_connection *c, json_t *args, const char *const *hdr,
    int *status)
{
	struct op_error e;
	(void)h;
	(void)args;
	op_error_set(&e, 426, "upgrade_required", "/ws is a WebSocket: send Upgrade: websocket");
	*status = 426;
	respond_refused(c, &e, hdr);
}

/* What a WebSocket connection carries from its upgrade to its close. */
struct ws_state {
	struct http	*h;
	char		*user;
	int64_t		 expires, since;
	bool		 reserved;	/* holds a hub place not yet attached */
	struct hub_conn	*hc;
	atomic_bool	 close_sent;	/* a close frame went out: none again */
};

/* The value of query parameter name, decoded into out; false when absent (or too long). */
static bool
query_param(const char *qs, const char *name, char *out, size_t n)
{
	return qs != NULL && mg_get_var(qs, strlen(qs), name, out, n) >= 0;
}

/* Answer an upgrade with e instead, and log it once; returns 1 for civetweb's refusal. */
static int
ws_refuse(struct mg_connection *c, const struct op_error *e, const char *const *hdr)
{
	log_info("websocket refused", "status=%d code=%s error=%s", e->status, e->code,
	    e->message);
	respond_error(c, e, hdr);
	return 1;
}

/*
 * RFC 6455 (4.1): the key is 16 bytes in base64. civetweb answers a longer
 * one with a bare 500 after the connect handler accepted it, and calls
 * neither the ready nor the close handler: the place reserved for it
 * would be lost for good. So a key of any other shape is refused first.
 */
static bool
ws_key_refused(struct mg_connection *c, struct op_error *e)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *key = mg_get_header(c, "Sec-WebSocket-Key");
	bool ok = key != NULL && strlen(key) == 24 && strcmp(key + 22, "==") == 0;
	for (int i = 0; ok && i < 22; i++)
		ok = strchr(b64, key[i]) != NULL;
	if (!ok)
		op_error_set(e, 400, "bad_request",
		    "Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455)");
	return !ok;
}

/* Before the upgrade: the Origin, the user's token, the limits. Non-zero refuses. */
static int
ws_connect(const struct mg_connection *cc, void *cbdata)
{
	struct http *h = cbdata;
	struct mg_connection *c = (struct mg_connection *)cc;
	const struct mg_request_info *ri = mg_get_request_info(c);
	const char *origin = mg_get_header(c, "Origin"), *authz = mg_get_header(c, "Authorization");
	const char *hdr[6] = {NULL};
	char token[8192], since_s[32];
	struct principal who = {0};
	struct op_error e = {0};
	int64_t since = -1;

	if (ws_key_refused(c, &e))
		goto refuse;
	if (origin != NULL && !origin_allowed(h, origin) && !same_origin(c, origin)) {
		op_error_set(&e, 403, "origin_not_allowed", "this origin may not open a WebSocket");
		metrics_add(C_WS_REFUSED_ORIGIN, 1);
		goto refuse;
	}
	if (query_param(ri->query_string, "token", token, sizeof token)) {
		if (auth_check_token(h->app->auth, token, time_now_ms(), &who, &e) != 0)
			goto unauthorized;
	} else if (authz != NULL && strncasecmp(authz, "Bearer ", 7) == 0 &&
	    strncmp(authz + 7, "nk_", 3) != 0) {
		if (auth_check_token(h->app->auth, authz + 7, time_now_ms(), &who, &e) != 0)
			goto unauthorized;
	} else {
		op_error_set(&e, 401, authz ? "malformed_credentials" : "missing_credentials",
		    "a WebSocket needs a user token: ?token= or Authorization: Bearer");
		goto unauthorized;
	}
	if (query_param(ri->query_string, "since", since_s, sizeof since_s) &&
	    !parse_int64(since_s, 0, INT64_MAX, &since)) {
		op_error_set(&e, 422, "invalid_field", "'since' must be a notification id");
		goto refuse;
	}
	switch (hub_reserve(h->app->hub, who.user)) {
	case HUB_USER_LIMIT:
		op_error_set(&e, 429, "too_many_connections", "this user has %lld connections open",
		    (long long)h->app->cfg->ws_per_user);
		metrics_add(C_WS_REFUSED_USER_LIMIT, 1);
		hdr[0] = "Retry-After";
		hdr[1] = "5";
		goto refuse;
	case HUB_FULL:
		op_error_set(&e, 503, "server_full", "no room for another WebSocket; try later");
		metrics_add(C_WS_REFUSED_FULL, 1);
		hdr[0] = "Retry-After";
		hdr[1] = "5";
		goto refuse;
	case HUB_OK:
		break;
	}
	struct ws_state *st = calloc(1, sizeof *st);
	if (st == NULL) {
		hub_unreserve(h->app->hub, who.user);
		op_error_set(&e, 503, "unavailable", "out of memory");
		goto refuse;
	}
	st->h = h;
	st->user = who.user;
	st->expires = who.expires;
	st->since = since;
	st->reserved = true;
	mg_set_user_connection_data(cc, st);
	return 0;
unauthorized:
	metrics_add(C_WS_REFUSED_AUTH, 1);
	hdr[0] = "WWW-Authenticate";
	hdr[1] = "Bearer";
refuse:
	principal_clear(&who);
	return ws_refuse(c, &e, hdr);
}

/* The header of an unmasked, final text frame of len bytes (RFC 6455 5.2); its size. */
static size_t
ws_text_header(unsigned char *h, size_t len)
{
	h[0] = 0x80 | MG_WEBSOCKET_OPCODE_TEXT;
	if (len < 126) {
		h[1] = (unsigned char)len;
		return 2;
	}
	if (len <= 0xffff) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		return 4;
	}
	h[1] = 127;
	for (int i = 0; i < 8; i++)
		h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	return 10;
}

/*
 * Frames with their headers in one buffer and one mg_write, under the
 * connection lock civetweb's own writes take: mg_websocket_write writes the
 * header and the payload separately, two sends a frame.
 */
static int
ws_sendv(void *ctx, const struct hub_iov *v, int n)
{
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += 10 + v[i].len;
	unsigned char small[4096], *buf = total <= sizeof small ? small : malloc(total);
	if (buf == NULL)
		return -1;
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		off += ws_text_header(buf + off, v[i].len);
		memcpy(buf + off, v[i].data, v[i].len);
		off += v[i].len;
	}
	mg_lock_connection(ctx);
	int rc = mg_write(ctx, buf, off);
	mg_unlock_connection(ctx);
	if (buf != small)
		free(buf);
	return rc > 0 && (size_t)rc == off ? 0 : -1;
}

static int
ws_send(void *ctx, const char *data, size_t len)
{
	struct hub_iov v = {data, len};
	return ws_sendv(ctx, &v, 1);
}

static void
ws_close_frame(void *ctx, int code, const char *reason)
{
	struct ws_state *st = mg_get_user_connection_data(ctx);
	if (st != NULL && atomic_exchange(&st->close_sent, true))
		return;
	/* A control frame holds at most 125 bytes: the reason is cut to 123, between characters. */
	char payload[125];
	size_t rl = strlen(reason);
	if (rl > sizeof payload - 2) {
		rl = sizeof payload - 2;
		while (rl > 0 && ((unsigned char)reason[rl] & 0xc0) == 0x80)
			rl--;
	}
	payload[0] = (char)(code >> 8);
	payload[1] = (char)(code & 0xff);
	memcpy(payload + 2, reason, rl);
	mg_websocket_write(ctx, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, payload, rl + 2);
}

static const struct hub_transport ws_transport = {ws_send, ws_close_frame, ws_sendv};

/* After the handshake: join the hub, which sends connected and the replay. */
static void
ws_ready(struct mg_connection *c, void *cbdata)
{
	struct ws_state *st = mg_get_user_connection_data(c);
	(void)cbdata;
	if (st == NULL)
		return;
	/* Attaching takes the reservation, whether it succeeds or not. */
	st->reserved = false;
	st->hc = hub_attach(st->h->app->hub, st->user, st->expires, st->since,
	    &ws_transport, c);
}

/*
 * The client's close frame: answer it with one carrying its status code,
 * as RFC 6455 (5.5.1) asks, unless notifyd sent its own first. Without
 * it a client sees the connection end abnormally (1006), not cleanly.
 */
static int
ws_close_answer(struct mg_connection *c, struct ws_state *st, const char *data, size_t len)
{
	if (st == NULL || !atomic_exchange(&st->close_sent, true))
		mg_websocket_write(c, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, data, len >= 2 ? 2 : 0);
	return 0;
}

/* May a peer close with code (RFC 6455 7.4; 1012-1014 as IANA added them)? */
static bool
close_code_ok(int code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
	    (code >= 3000 && code <= 4999);
}

/*
 * RFC 6455 (5.2, 5.5, 7.4) on what civetweb hands on unchecked: reserved
 * bits or opcodes, a fragmented or oversized control frame, a malformed
 * close. Such a frame fails the connection with 1002 (1007 for a close
 * reason that is not UTF-8), logged once; false then. (civetweb here
 * negotiates no extension: no reserved bit has a meaning.)
 */
static bool
ws_frame_ok(struct mg_connection *c, const char *user, int bits, const char *data, size_t len)
{
	int op = bits & 0x0f, code = 1002;
	const char *why = NULL;
	if (bits & 0x70)
		why = "reserved bits set";
	else if ((op >= 3 && op <= 7) || op >= 11)
		why = "reserved opcode";
	else if (op >= 8 && !(bits & 0x80))
		why = "fragmented control frame";
	else if (op >= 8 && len > 125)
		why = "control frame over 125 bytes";
	else if (op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE && len == 1)
		why = "close frame of one byte";
	else if (op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE && len >= 2 &&
	    !close_code_ok((unsigned char)data[0] << 8 | (unsigned char)data[1]))
		why = "invalid close code";
	else if (op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE && len > 2 &&
	    !utf8_valid(data + 2, len - 2, true)) {
		why = "close reason is not UTF-8";
		code = 1007;
	}
	if (why == NULL)
		return true;
	metrics_add(C_WS_FRAMES_RECEIVED, 1);
	log_info("websocket protocol error", "user=%s code=%d error=%s", user,
	    code, why);
	ws_close_frame(c, code, why);
	return false;
}

/* A frame from the client. */
static int
ws_data(struct mg_connection *c, int bits, char *data, size_t len, void *cbdata)
{
	struct ws_state *st = mg_get_user_connection_data(c);
	int opcode = bits & 0x0f;
	(void)cbdata;
	if (!ws_frame_ok(c, st ? st->user : NULL, bits, data, len))
		return 0;
	if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
		return ws_close_answer(c, st, data, len);
	if (st == NULL || st->hc == NULL)
		return 0;
	switch (opcode) {
	case MG_WEBSOCKET_OPCODE_TEXT:
		if (!(bits & 0x80))
			hub_reject(st->hc, "fragmented_frame", "send each message in one frame");
		else
			hub_receive(st->hc, data, len);
		return 1;
	case MG_WEBSOCKET_OPCODE_CONTINUATION:
		hub_reject(st->hc, "fragmented_frame", "send each message in one frame");
		return 1;
	case MG_WEBSOCKET_OPCODE_BINARY:
		hub_reject(st->hc, "binary_frame", "frames are JSON text");
		return 1;
	case MG_WEBSOCKET_OPCODE_PING:
		mg_websocket_write(c, MG_WEBSOCKET_OPCODE_PONG, data, len);
		return 1;
	default:
		return 1;
	}
}

/* The connection is gone: leave the hub before civetweb reuses it. */
static void
ws_close(const struct mg_connection *c, void *cbdata)
{
	struct ws_state *st = mg_get_user_connection_data(c);
	(void)cbdata;
	if (st == NULL)
		return;
	if (st->hc != NULL)
		hub_detach(st->hc);
	else if (st->reserved)
		hub_unreserve(st->h->app->hub, st->user);
	mg_set_user_connection_data(c, NULL);
	free(st->user);
	free(st);
}

/*
 * /api/events (Mailpit's): a page of another origin is refused as on /ws
 * (it would read every captured subject, and hold a WebSocket place);
 * then a local program as the mailbox routes have it, or an API key.
 */
static int
events_connect(const struct mg_connection *cc, void *cbdata)
{
	struct http *h = cbdata;
	struct mg_connection *c = (struct mg_connection *)cc;
	const char *authz = mg_get_header(c, "Authorization");
	const char *origin = mg_get_header(c, "Origin");
	const char *hdr[] = {NULL, NULL, NULL};
	struct principal who = {0};
	struct op_error e = {0};
	if (ws_key_refused(c, &e))
		return ws_refuse(c, &e, hdr);
	if (origin != NULL && !same_origin(c, origin) && !(h->app->cfg->http_mail_cors &&
	    origin_allowed(h, origin))) {
		op_error_set(&e, 403, "origin_not_allowed", "this origin may not read the mailbox");
		metrics_add(C_WS_REFUSED_ORIGIN, 1);
		return ws_refuse(c, &e, hdr);
	}
	if (!(authz == NULL && mailbox_local(h, c))) {
		int rc = auth_check(h->app->auth, h->app->store, authz, time_now_ms(), &who, &e);
		if (rc == 0 && who.user != NULL)
			op_error_set(&e, 403, "forbidden", "the mailbox needs an API key");
		principal_clear(&who);
		if (e.status == 401) {
			hdr[0] = "WWW-Authenticate";
			hdr[1] = "Bearer";
		}
		if (e.status != 0)
			return ws_refuse(c, &e, hdr);
	}
	/* It holds a worker like any WebSocket, so it counts against the same limit. */
	if (hub_reserve(h->app->hub, NULL) != HUB_OK) {
		op_error_set(&e, 503, "server_full", "no room for another WebSocket; try later");
		metrics_add(C_WS_REFUSED_FULL, 1);
		hdr[0] = "Retry-After";
		hdr[1] = "5";
		return ws_refuse(c, &e, hdr);
	}
	struct ws_state *st = calloc(1, sizeof *st);
	if (st == NULL) {
		hub_unreserve(h->app->hub, NULL);
		op_error_set(&e, 503, "unavailable", "out of memory");
		return ws_refuse(c, &e, hdr);
	}
	st->h = h;
	/*
	 * Watching from before the 101, so that a client which sends mail
	 * once it has the answer sees its event: civetweb calls the ready
	 * handler only after the answer is out.
	 */
	if ((st->hc = hub_watch_mailbox(h->app->hub, &ws_transport, c)) == NULL) {
		free(st);
		op_error_set(&e, 503, "unavailable", "out of memory");
		return ws_refuse(c, &e, hdr);
	}
	mg_set_user_connection_data(cc, st);
	return 0;
}

static void
events_ready(struct mg_connection *c, void *cbdata)
{
	struct ws_state *st = mg_get_user_connection_data(c);
	(void)cbdata;
	if (st != NULL && st->hc != NULL)
		hub_release(st->hc);
}

/* Mailpit's event stream takes nothing from the client. */
static int
events_data(struct mg_connection *c, int bits, char *data, size_t len, void *cbdata)
{
	(void)cbdata;
	if (!ws_frame_ok(c, NULL, bits, data, len))
		return 0;
	if ((bits & 0x0f) == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
		return ws_close_answer(c, mg_get_user_connection_data(c), data, len);
	if ((bits & 0x0f) == MG_WEBSOCKET_OPCODE_PING)
		mg_websocket_write(c, MG_WEBSOCKET_OPCODE_PONG, data, len);
	return 1;
}

/*
 * civetweb's own errors (a malformed request line, a header too large) as
 * JSON. civetweb closes the connection after each (it cannot know where a
 * next request would begin): the answer says so.
 */
static int
on_http_error(struct mg_connection *c, int status, const char *msg)
{
	struct op_error e;
	/* 426: a WebSocket version other than 13; RFC 6455 (4.4) names the one served. */
	const char *v13[] = {"Sec-WebSocket-Version", "13", NULL};
	op_error_set(&e, status, status == 413 || status == 431 ? "too_large" :
	    status == 426 ? "upgrade_required" : status == 505 ? "http_version_not_supported" :
	    status >= 500 ? "internal" : "bad_request",
	    "%s", status == 426 ? "a WebSocket needs Sec-WebSocket-Version: 13" :
	    msg ? msg : "bad request");
	close_after(c);
	log_info("http request refused", "status=%d code=%s error=%s", status, e.code, e.message);
	respond_error(c, &e, status == 426 ? v13 : NULL);
	return 0;
}

static int
on_log(const struct mg_connection *c, const char *msg)
{
	(void)c;
	log_warn("civetweb", "message=%s", msg);
	return 1;
}

/*
 * Why notifyd serves no HTTPS itself. civetweb 1.15 reads a WebSocket on
 * its worker thread with SSL_read and takes no lock for it; the hub writes
 * frames from its sender threads with SSL_write under the connection's
 * lock. OpenSSL allows no two calls on one SSL object at once, so a push
 * racing a client's frame would corrupt the stream (or the heap). civetweb
 * loads OpenSSL with dlopen, so its calls cannot be wrapped from here
 * either, and every write moving to the worker would need a hook civetweb
 * does not have. Rather than ship that race, tls_cert is refused and a TLS
 * proxy in front is the documented way (notifyd(8), "HTTPS and WSS").
 */
static bool
tls_refused(const struct config *cfg, char *err, size_t errlen)
{
	if (*cfg->http_tls_cert == '\0' && *cfg->http_tls_key == '\0')
		return false;
	snprintf(err, errlen, "[http] tls_cert: notifyd does not serve HTTPS itself (its "
	    "WebSocket pushes would race the TLS reads); put a TLS proxy in front of "
	    "[http] listen, see notifyd(8), HTTPS and WSS");
	return true;
}

int
http_start(struct http **out, struct app *app, char *err, size_t errlen)
{
	pthread_once(&route_nsegs_once, route_nsegs_count);
	char host[256], listen[300], threads[32];
	int port;
	if (tls_refused(app->cfg, err, errlen))
		return -1;
	if (!config_parse_listen(app->cfg->http_listen, host, sizeof host, &port) || port < 0) {
		snprintf(err, errlen, "http.listen: '%s' is not HOST:PORT", app->cfg->http_listen);
		return -1;
	}
	struct http *h = calloc(1, sizeof *h);
	if (h == NULL)
		return -1;
	h->app = app;
	h->buckets = calloc(NBUCKETS, sizeof *h->buckets);
	pthread_mutex_init(&h->rl_lock, NULL);
	size_t lm = 0;
	for (int r = 0; r < NROUTES; r++)
		lm += strlen(routes[r].method) + strlen(routes[r].path) + 2;
	h->label_mem = malloc(lm);
	char *lp = h->label_mem;
	for (int r = 0; r < NROUTES; r++) {
		if (routes[r].op != NULL && (h->ops[r] = op_find(routes[r].op)) == NULL) {
			snprintf(err, errlen, "route %s %s names unknown operation %s",
			    routes[r].method, routes[r].path, routes[r].op);
			http_stop(h);
			return -1;
		}
		h->fixed[r] = routes[r].fixed ? json_loads(routes[r].fixed, 0, NULL) : NULL;
		h->labels[r] = lp;
		lp += sprintf(lp, "%s %s", routes[r].method, routes[r].path) + 1;
	}
	metrics_routes(h->labels, NROUTES);

	if (strchr(host, ':') != NULL)
		snprintf(listen, sizeof listen, "[%s]:%d", host, port);
	else
		snprintf(listen, sizeof listen, "%s:%d", host, port);
	/*
	 * Every open WebSocket holds a civetweb worker for its life: size the
	 * pool for ws_max_connections and keep ws_reserve workers for REST.
	 */
	char timeout[32], ping[32];
	snprintf(threads, sizeof threads, "%lld",
	    (long long)(app->cfg->ws_max_connections + app->cfg->ws_reserve));
	/*
	 * civetweb's one request timeout bounds each read of a body and each
	 * write to a client (request_timeout); the headers of a connection's
	 * first request are cut off sooner by the gate's watchdog, and those
	 * of the next on a kept-alive one by civetweb's keep-alive timeout
	 * (both header_timeout).
	 */
	char keepalive[32];
	snprintf(timeout, sizeof timeout, "%lld", (long long)app->cfg->http_request_timeout);
	snprintf(keepalive, sizeof keepalive, "%lld", (long long)app->cfg->http_header_timeout);
	snprintf(ping, sizeof ping, "%lld", (long long)app->cfg->ws_ping);
	const char *options[] = {
		"listening_ports", listen,
		"num_threads", threads,
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", keepalive,
		"request_timeout_ms", timeout,
		"enable_websocket_ping_pong", "yes",
		"websocket_timeout_ms", ping,
		"tcp_nodelay", "1",
		"decode_url", "no",
		"listen_backlog", "1024",
		/* civetweb's own CORS default is "*" on every answer: ours decides. */
		"access_control_allow_origin", "",
		NULL,
	};
	struct mg_callbacks cb = {0};
	cb.http_error = on_http_error;
	cb.log_message = on_log;
	cb.connection_close = on_connection_close;
	cb.begin_request = on_begin_request;
	mg_init_library(0);
	if (gate_start(h) != 0) {
		mg_exit_library();
		snprintf(err, errlen, "cannot start the connection gate");
		http_stop(h);
		return -1;
	}
	h->ctx = mg_start(&cb, h, options);
	if (h->ctx == NULL) {
		mg_exit_library();
		snprintf(err, errlen, "cannot listen for HTTP on %s (in use? see [http] listen)",
		    listen);
		http_stop(h);
		return -1;
	}
	struct mg_server_port ports[4];
	int np = mg_get_server_ports(h->ctx, 4, ports);
	h->port = np > 0 ? ports[0].port : port;
	snprintf(h->host, sizeof h->host, "%s", host);
	mg_set_request_handler(h->ctx, "/", handle, h);
	mg_set_auth_handler(h->ctx, "/", civetweb_auth, h);
	mg_set_websocket_handler(h->ctx, "/ws", ws_connect, ws_ready, ws_data, ws_close, h);
	mg_set_websocket_handler(h->ctx, "/api/events", events_connect, events_ready, events_data,
	    ws_close, h);
	*out = h;
	return 0;
}

int
http_port(const struct http *h)
{
	return h->port;
}

/*
 * civetweb's listener polls with a 2 s timeout and mg_stop() waits for it;
 * connecting to our own port while stopping wakes it at once.
 */
static void *
waker_main(void *arg)
{
	struct http *h = arg;
	struct sockaddr_storage ss = {0};
	socklen_t len;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (strchr(h->host, ':') != NULL) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)h->port);
		if (inet_pton(AF_INET6, h->host, &sin6->sin6_addr) != 1 ||
		    IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			sin6->sin6_addr = in6addr_loopback;
		len = sizeof *sin6;
	} else {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)h->port);
		if (inet_pton(AF_INET, h->host, &sin->sin_addr) != 1 ||
		    sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *sin;
	}
	for (int i = 0; i < 150 && !__atomic_load_n(&h->stopped, __ATOMIC_ACQUIRE); i++) {
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			(void)connect(fd, (struct sockaddr *)&ss, len);
			close(fd);
		}
		nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
	}
	return NULL;
}

void
http_stop(struct http *h)
{
	if (h == NULL)
		return;
	gate_stop(h);
	if (h->ctx != NULL) {
		pthread_t waker;
		int have_waker = pthread_create(&waker, NULL, waker_main, h) == 0;
		mg_stop(h->ctx);
		__atomic_store_n(&h->stopped, 1, __ATOMIC_RELEASE);
		if (have_waker)
			pthread_join(waker, NULL);
		mg_exit_library();
	}
	for (int r = 0; r < NROUTES; r++)
		json_decref(h->fixed[r]);
	pthread_mutex_destroy(&h->rl_lock);
	free(h->buckets);
	free(h->label_mem);
	free(h);
}
