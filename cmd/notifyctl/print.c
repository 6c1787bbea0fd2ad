/* print — how notifyctl shows results to people (and as JSON to scripts). */
#include "print.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void
print_json(FILE *f, json_t *result)
{
	char *s = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
	fprintf(f, "%s\n", s ? s : "null");
	free(s);
}

/* A string field, or fallback. */
static const char *
field(json_t *o, const char *name, const char *fallback)
{
	const char *s = json_string_value(json_object_get(o, name));
	return s ? s : fallback;
}

/*
 * Write s cut to at most max characters (UTF-8), control characters shown
 * as '?', padded with spaces to width.
 */
static void
put_cell(FILE *f, const char *s, int max, int width)
{
	int n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool lead = (*p & 0xc0) != 0x80;
		if (lead && n == max) {
			fputs("…", f);
			n++;
			break;
		}
		if (lead)
			n++;
		fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, f);
	}
	for (; n < width; n++)
		fputc(' ', f);
}

static void
print_notification(FILE *f, json_t *n)
{
	static const char *const keys[] = {"id", "user", "type", "category",
	    "priority", "title", "body", "data", "url", "created_at", "read_at",
	    "archived_at", "deliver_at", NULL};
	for (int i = 0; keys[i]; i++) {
		json_t *v = json_object_get(n, keys[i]);
		if (v == NULL || json_is_null(v))
			continue;
		fprintf(f, "%-12s ", keys[i]);
		if (json_is_string(v)) {
			fputs(json_string_value(v), f);
			fputc('\n', f);
		} else {
			print_json(f, v);
		}
	}
	json_t *d;
	size_t i;
	json_array_foreach(json_object_get(n, "deliveries"), i, d) {
		/* A push or webhook delivery names its subscription or endpoint. */
		char ch[40];
		json_t *target = json_object_get(d, "target");
		if (json_is_integer(target))
			snprintf(ch, sizeof ch, "%s %lld", field(d, "channel", "?"),
			    (long long)json_integer_value(target));
		else
			snprintf(ch, sizeof ch, "%s", field(d, "channel", "?"));
		fprintf(f, "%-12s %-10s %-9s attempts %lld", i == 0 ? "deliveries" : "", ch,
		    field(d, "status", "?"),
		    (long long)json_integer_value(json_object_get(d, "attempts")));
		if (json_is_string(json_object_get(d, "sent_at")))
			fprintf(f, ", sent %s", field(d, "sent_at", ""));
		else if (json_is_string(json_object_get(d, "next_attempt_at")))
			fprintf(f, ", next %s", field(d, "next_attempt_at", ""));
		if (json_is_string(json_object_get(d, "last_error")))
			fprintf(f, ": %s", field(d, "last_error", ""));
		fputc('\n', f);
	}
}

/* A preferences document, one setting a line. */
static void
print_prefs(FILE *f, json_t *r)
{
	const char *k, *t;
	json_t *v, *chans, *q = json_object_get(r, "quiet_hours"), *d;
	size_t i;
	fprintf(f, "user             %s\n", field(r, "user", "?"));
	json_object_foreach(json_object_get(r, "channels"), k, v)
		fprintf(f, "%-16s %s (every type)\n", k, json_is_true(v) ? "on" : "off");
	json_object_foreach(json_object_get(r, "types"), t, chans)
		json_object_foreach(chans, k, v)
			fprintf(f, "%-16s %s for %s\n", k, json_is_true(v) ? "on" : "off", t);
	if (json_is_object(q)) {
		fprintf(f, "quiet hours      %s-%s", field(q, "start", "?"), field(q, "end", "?"));
		json_array_foreach(json_object_get(q, "days"), i, d)
			fprintf(f, "%s%s", i ? "," : " starting ", json_string_value(d));
		fputc('\n', f);
	} else {
		fprintf(f, "quiet hours      off\n");
	}
	fprintf(f, "digest           %s\n", field(r, "digest", "off"));
	fprintf(f, "email if unread  %s\n", field(r, "email_if_unread", "off"));
}

/* The text preview of template render: every part, headed by its name. */
static void
print_rendered(FILE *f, json_t *r)
{
	static const char *const parts[] = {"title", "body", "subject", "text", "html", NULL};
	for (int i = 0; parts[i]; i++)
		fprintf(f, "== %s\n%s%s", parts[i], field(r, parts[i], ""),
		    i < 3 || !*field(r, parts[i], "") ? "\n" : "");
}

static void
print_list(FILE *f, json_t *r)
{
	json_t *list = json_object_get(r, "notifications"), *n;
	size_t i;
	if (json_array_size(list) == 0) {
		fprintf(f, "no notifications\n");
	} else {
		fprintf(f, "%-8s %-24s %-6s %-18s %s\n", "ID", "CREATED", "STATE", "TYPE", "TITLE");
		json_array_foreach(list, i, n) {
			fprintf(f, "%-8lld %-24s %-6s ",
			    (long long)json_integer_value(json_object_get(n, "id")),
			    field(n, "created_at", "-"),
			    json_is_null(json_object_get(n, "read_at")) ? "unread" : "read");
			put_cell(f, field(n, "type", "-"), 17, 19);
			put_cell(f, field(n, "title", field(n, "body", "")), 60, 0);
			fputc('\n', f);
		}
	}
	fprintf(f, "%lld unread", (long long)json_integer_value(json_object_get(r, "unread_count")));
	json_t *next = json_object_get(r, "next_before");
	if (json_is_integer(next))
		fprintf(f, "; more with --before %lld", (long long)json_integer_value(next));
	fputc('\n', f);
}

/* Print each "key value" of an object, in its order, values as text or JSON. */
static void
print_fields(FILE *f, json_t *o)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (json_is_null(v))
			continue;
		fprintf(f, "%-12s ", k);
		if (json_is_string(v))
			fprintf(f, "%s\n", json_string_value(v));
		else
			print_json(f, v);
	}
}

static void
print_keys(FILE *f, json_t *r)
{
	json_t *keys = json_object_get(r, "keys"), *k;
	size_t i;
	fprintf(f, "%-5s %-20s %-24s %-24s %s\n", "ID", "NAME", "CREATED", "LAST USED", "REVOKED");
	json_array_foreach(keys, i, k)
		fprintf(f, "%-5lld %-20s %-24s %-24s %s\n",
		    (long long)json_integer_value(json_object_get(k, "id")),
		    field(k, "name", "-"), field(k, "created_at", "-"),
		    field(k, "last_used_at", "-"), field(k, "revoked_at", "-"));
}

/* A list of names ("a,b"), or "all". */
static void
put_names(FILE *f, json_t *a, int width)
{
	json_t *v;
	size_t i;
	int n = 0;
	if (!json_is_array(a) || json_array_size(a) == 0)
		n = fprintf(f, "all");
	json_array_foreach(a, i, v)
		n += fprintf(f, "%s%s", i ? "," : "", json_string_value(v));
	fprintf(f, "%*s", n < width ? width - n : 1, "");
}

static void
print_webhooks(FILE *f, json_t *r)
{
	json_t *hooks = json_object_get(r, "webhooks"), *h;
	size_t i;
	fprintf(f, "%-5s %-6s %-16s %-12s %-8s %-6s %s\n", "ID", "FORMAT", "TYPES", "USERS",
	    "FAILURES", "LAST", "URL");
	json_array_foreach(hooks, i, h) {
		fprintf(f, "%-5lld %-6s ", (long long)json_integer_value(json_object_get(h, "id")),
		    field(h, "format", "-"));
		put_names(f, json_object_get(h, "types"), 17);
		put_names(f, json_object_get(h, "users"), 13);
		json_t *st = json_object_get(h, "last_status");
		char last[16] = "-";
		if (json_is_integer(st))
			snprintf(last, sizeof last, "%lld", (long long)json_integer_value(st));
		fprintf(f, "%-8lld %-6s %s%s\n",
		    (long long)json_integer_value(json_object_get(h, "failures")), last,
		    field(h, "url", "-"),
		    json_is_null(json_object_get(h, "disabled_at")) ? "" : "  (disabled)");
		if (!json_is_null(json_object_get(h, "last_error")))
			fprintf(f, "      last error: %s\n", field(h, "last_error", ""));
	}
}

static void
print_webhook_added(FILE *f, json_t *r)
{
	fprintf(f, "webhook %lld: %s\n", (long long)json_integer_value(json_object_get(r, "id")),
	    field(r, "url", "-"));
	if (json_object_get(r, "secret") != NULL)
		fprintf(f, "secret: %s\n(shown this once: keep it where the receiver can verify with "
		    "it)\n", field(r, "secret", ""));
}

static void
print_push_subs(FILE *f, json_t *r)
{
	json_t *subs = json_object_get(r, "subscriptions"), *s;
	size_t i;
	fprintf(f, "%-5s %-24s %-24s %s\n", "ID", "CREATED", "LAST SENT", "ENDPOINT");
	json_array_foreach(subs, i, s) {
		fprintf(f, "%-5lld %-24s %-24s %s\n",
		    (long long)json_integer_value(json_object_get(s, "id")),
		    field(s, "created_at", "-"), field(s, "last_sent_at", "-"),
		    field(s, "endpoint", "-"));
		if (!json_is_null(json_object_get(s, "last_error")))
			fprintf(f, "      last error: %s\n", field(s, "last_error", ""));
	}
}

void
print_event(FILE *f, json_t *ev)
{
	json_t *d = json_object_get(ev, "data");
	const char *type = field(ev, "type", "?");
	fprintf(f, "%-13s %-16s ", type, field(ev, "user", "-"));
	if (strcmp(type, "notification") == 0) {
		fprintf(f, "#%lld %s ", (long long)json_integer_value(json_object_get(d, "id")),
		    field(d, "type", "-"));
		put_cell(f, field(d, "title", field(d, "body", "")), 60, 0);
		fputc('\n', f);
	} else {
		print_json(f, d);
	}
}

/* "Name <address>" of a Mailpit address object, or the address. */
static void
put_addr(FILE *f, json_t *a)
{
	const char *name = field(a, "Name", ""), *addr = field(a, "Address", "");
	if (*name)
		fprintf(f, "%s <%s>", name, addr);
	else
		fputs(addr, f);
}

static void
print_mail_list(FILE *f, json_t *r)
{
	json_t *m;
	size_t i;
	fprintf(f, "%-22s %-24s %-4s %-28s %s\n", "ID", "RECEIVED", "READ", "FROM", "SUBJECT");
	json_array_foreach(json_object_get(r, "messages"), i, m) {
		fprintf(f, "%-22s %-24s %-4s ", field(m, "ID", "-"), field(m, "Created", "-"),
		    json_is_true(json_object_get(m, "Read")) ? "yes" : "no");
		put_cell(f, field(json_object_get(m, "From"), "Address", "-"), 27, 29);
		put_cell(f, field(m, "Subject", ""), 60, 0);
		fputc('\n', f);
	}
	fprintf(f, "%lld shown of %lld matching; %lld in the mailbox, %lld unread\n",
	    (long long)json_integer_value(json_object_get(r, "count")),
	    (long long)json_integer_value(json_object_get(r, "messages_count")),
	    (long long)json_integer_value(json_object_get(r, "total")),
	    (long long)json_integer_value(json_object_get(r, "unread")));
}

/*
 * Decode base64 text (notifyd's own, so well formed) into out; the bytes.
 * Written here, not taken from OpenSSL or GLib as notifyd does: notifyctl
 * links jansson and libc only, and this is its one use.
 */
static size_t
base64_decode(const char *in, unsigned char *out)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned acc = 0;
	int bits = 0;
	size_t n = 0;
	for (; *in != '\0' && *in != '='; in++) {
		const char *p = strchr(abc, *in);
		if (p == NULL)
			continue;	/* line breaks */
		acc = acc << 6 | (unsigned)(p - abc);
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return n;
}

/* A message: its headers as a person reads them, then the text body. */
static void
print_mail(FILE *f, json_t *r)
{
	const char *raw = field(r, "RawBase64", NULL);
	if (raw != NULL) {
		unsigned char *out = malloc(strlen(raw) / 4 * 3 + 3);
		size_t n = out ? base64_decode(raw, out) : 0;
		fwrite(out, 1, n, f);
		free(out);
		return;
	}
	if (json_object_get(r, "HTML") != NULL && json_object_get(r, "Subject") == NULL) {
		fprintf(f, "%s\n", field(r, "HTML", ""));
		return;
	}
	if (json_object_get(r, "Text") != NULL && json_object_get(r, "Subject") == NULL) {
		fprintf(f, "%s\n", field(r, "Text", ""));
		return;
	}
	static const char *const lists[] = {"To", "Cc", "Bcc", "ReplyTo", NULL};
	fprintf(f, "%-9s %s\n%-9s ", "ID", field(r, "ID", ""), "From");
	put_addr(f, json_object_get(r, "From"));
	fputc('\n', f);
	for (int l = 0; lists[l]; l++) {
		json_t *arr = json_object_get(r, lists[l]), *a;
		size_t i;
		if (json_array_size(arr) == 0)
			continue;
		fprintf(f, "%-9s ", lists[l]);
		json_array_foreach(arr, i, a) {
			if (i > 0)
				fputs(", ", f);
			put_addr(f, a);
		}
		fputc('\n', f);
	}
	fprintf(f, "%-9s %s\n%-9s %s\n", "Subject", field(r, "Subject", ""), "Date",
	    field(r, "Date", field(r, "Created", "")));
	json_t *att = json_object_get(r, "Attachments"), *a;
	size_t i;
	json_array_foreach(att, i, a)
		fprintf(f, "%-9s %s (%s, %lld bytes, part %s)\n", "Attached", field(a, "FileName", "-"),
		    field(a, "ContentType", "?"), (long long)json_integer_value(json_object_get(a, "Size")),
		    field(a, "PartID", "?"));
	if (json_is_integer(att) && json_integer_value(att) > 0)
		fprintf(f, "%-9s %lld\n", "Attached", (long long)json_integer_value(att));
	const char *body = field(r, "Text", field(r, "Snippet", ""));
	fprintf(f, "\n%s\n", body);
}

/* What is running, and the links a person opens. */
static void
print_status(FILE *f, json_t *r)
{
	json_t *l = json_object_get(r, "listeners"), *c = json_object_get(r, "counts");
	long long up = (long long)json_integer_value(json_object_get(r, "uptime_s"));
	fprintf(f, "notifyd %s, up %lldd %02lld:%02lld:%02lld\n", field(r, "version", "?"),
	    up / 86400, up / 3600 % 24, up / 60 % 60, up % 60);
	fprintf(f, "%-14s %s\n%-14s %s\n%-14s %s\n", "http", field(l, "http", "off"), "smtp",
	    field(l, "smtp", "off"), "control", field(l, "control", "?"));
	if (*field(r, "base_url", "") != '\0')
		fprintf(f, "%-14s %s/  %s/inbox  %s/mail\n", "pages", field(r, "base_url", ""),
		    field(r, "base_url", ""), field(r, "base_url", ""));
	fprintf(f, "%-14s %lld\n%-14s %lld\n%-14s %lld\n%-14s %lld (%lld inbox, %lld mailbox), "
	    "%lld user(s) online\n", "notifications",
	    (long long)json_integer_value(json_object_get(c, "notifications")), "users",
	    (long long)json_integer_value(json_object_get(c, "users")), "captured mail",
	    (long long)json_integer_value(json_object_get(c, "mail")), "websockets",
	    (long long)json_integer_value(json_object_get(c, "websockets")),
	    (long long)json_integer_value(json_object_get(c, "inbox_streams")),
	    (long long)json_integer_value(json_object_get(c, "mailbox_streams")),
	    (long long)json_integer_value(json_object_get(c, "users_online")));
}

/* One kind of kept count a check compared: ok, or each that disagreed. */
static void
print_mismatches(FILE *f, const char *title, json_t *list, const char *key,
    const char *counted, bool repaired)
{
	json_t *e;
	size_t i;
	fprintf(f, "%-14s %s\n", title, json_array_size(list) == 0 ? "ok" :
	    repaired ? "repaired" : "wrong");
	json_array_foreach(list, i, e)
		fprintf(f, "  %s: counter %lld, %s %lld\n", field(e, key, "?"),
		    (long long)json_integer_value(json_object_get(e, "counter")), counted,
		    (long long)json_integer_value(json_object_get(e, "actual")));
}

/* The database check: each part, then every counter that disagreed. */
static void
print_check(FILE *f, json_t *r)
{
	json_t *e;
	size_t i;
	json_t *fk = json_object_get(r, "foreign_key_errors"), *m = json_object_get(r,
	    "unread_mismatches"), *t = json_object_get(r, "topic_mismatches");
	bool repaired = json_integer_value(json_object_get(r, "repaired")) > 0;
	fprintf(f, "integrity      %s\n", field(r, "integrity", "?"));
	json_array_foreach(json_object_get(r, "integrity_errors"), i, e)
		fprintf(f, "  %s\n", json_string_value(e));
	fprintf(f, "foreign keys   %s\n", json_array_size(fk) ? "broken" : "ok");
	json_array_foreach(fk, i, e)
		fprintf(f, "  %s row %lld -> %s\n", field(e, "table", "?"),
		    (long long)json_integer_value(json_object_get(e, "rowid")), field(e, "parent", "?"));
	print_mismatches(f, "unread counts", m, "user", "rows", repaired);
	print_mismatches(f, "topic sizes", t, "topic", "members", repaired);
}

/* A digest run: one line per user it looked at, then the sums. */
static void
print_digest(FILE *f, json_t *r)
{
	json_t *d;
	size_t i;
	bool dry = json_is_true(json_object_get(r, "dry_run"));
	json_array_foreach(json_object_get(r, "digests"), i, d) {
		fprintf(f, "%-24s %-13s", field(d, "user", "?"), field(d, "status", "?"));
		if (json_object_get(d, "items") != NULL)
			fprintf(f, " %lld item(s), %lld read left out",
			    (long long)json_integer_value(json_object_get(d, "items")),
			    (long long)json_integer_value(json_object_get(d, "skipped_read")));
		if (json_object_get(d, "slot") != NULL)
			fprintf(f, " (%s)", field(d, "slot", ""));
		fputc('\n', f);
	}
	fprintf(f, "%s digest%s: %lld user(s) %s, %lld item(s), %lld read left out, "
	    "%lld user(s) skipped, %lld already done\n", field(r, "period", "?"),
	    dry ? " (dry run)" : "", (long long)json_integer_value(json_object_get(r, "users_emailed")),
	    dry ? "would be emailed" : "emailed",
	    (long long)json_integer_value(json_object_get(r, "items")),
	    (long long)json_integer_value(json_object_get(r, "skipped_read")),
	    (long long)json_integer_value(json_object_get(r, "users_skipped")),
	    (long long)json_integer_value(json_object_get(r, "already_done")));
}

static void
print_ping(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "notifyd %s is running (control protocol %lld)\n", field(r, "version", "?"),
	    (long long)json_integer_value(json_object_get(r, "protocol")));
}

/* One notification a send made; a scheduled one is not there yet: say when it will be. */
static void
print_sent_one(FILE *f, json_t *n)
{
	fprintf(f, "notification %lld for %s",
	    (long long)json_integer_value(json_object_get(n, "id")), field(n, "user", "?"));
	if (json_string_value(json_object_get(n, "deliver_at")) != NULL)
		fprintf(f, ", scheduled for %s", field(n, "deliver_at", "?"));
	fputc('\n', f);
}

static void
print_sent(FILE *f, const struct op *op, json_t *r)
{
	json_t *n;
	size_t i;
	(void)op;
	if (json_object_get(r, "count") == NULL) {
		print_sent_one(f, r);
		return;
	}
	json_array_foreach(json_object_get(r, "notifications"), i, n)
		print_sent_one(f, n);
}

static void
print_cancelled(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "notification %lld cancelled\n",
	    (long long)json_integer_value(json_object_get(r, "id")));
}

static void
print_backup(FILE *f, const struct op *op, json_t *r)
{
	json_t *n;
	size_t i;
	(void)op;
	fprintf(f, "backed up to %s in %lld ms:", field(r, "path", "?"),
	    (long long)json_integer_value(json_object_get(r, "ms")));
	json_array_foreach(json_object_get(r, "files"), i, n)
		fprintf(f, " %s", json_string_value(n));
	fprintf(f, " (%lld bytes)\n", (long long)json_integer_value(json_object_get(r, "bytes")));
}

static void
print_count(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "%lld\n", (long long)json_integer_value(json_object_get(r, "unread_count")));
}

/* read, unread, archive, unarchive: what changed, and the count after it. */
static void
print_marked(FILE *f, const struct op *op, json_t *r)
{
	json_t *ids = json_object_get(r, "ids");
	long long changed = ids ? (long long)json_array_size(ids) :
	    (long long)json_integer_value(json_object_get(r, "marked"));
	fprintf(f, "%s: %lld changed; %lld unread\n", op->name, changed,
	    (long long)json_integer_value(json_object_get(r, "unread_count")));
}

static void
print_deleted(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "notification %lld deleted\n",
	    (long long)json_integer_value(json_object_get(r, "id")));
}

static void
print_topic(FILE *f, const struct op *op, json_t *r)
{
	json_t *m;
	size_t i;
	(void)op;
	fprintf(f, "topic %s: %lld member(s)\n", field(r, "topic", "?"),
	    (long long)json_integer_value(json_object_get(r, "count")));
	json_array_foreach(json_object_get(r, "members"), i, m)
		fprintf(f, "  %s\n", json_string_value(m));
}

static void
print_key_created(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "%s\n", field(r, "key", ""));
	fprintf(stderr, "notifyctl: key %lld '%s' created; it is shown only this once\n",
	    (long long)json_integer_value(json_object_get(r, "id")), field(r, "name", ""));
}

static void
print_key_revoked(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "key %s revoked\n", field(r, "key", "?"));
}

static void
print_token(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "%s\n", field(r, "token", ""));
}

static void
print_presence(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "%s: %s (%lld connection%s)\n", field(r, "user", "?"),
	    json_is_true(json_object_get(r, "connected")) ? "connected" : "not connected",
	    (long long)json_integer_value(json_object_get(r, "connections")),
	    json_integer_value(json_object_get(r, "connections")) == 1 ? "" : "s");
}

static void
print_connections(FILE *f, const struct op *op, json_t *r)
{
	const char *k;
	json_t *v;
	(void)op;
	json_object_foreach(json_object_get(r, "users"), k, v)
		fprintf(f, "%-24s %lld\n", k, (long long)json_integer_value(v));
	if (json_integer_value(json_object_get(r, "mailbox")) > 0)
		fprintf(f, "%-24s %lld\n", "(mailbox streams)",
		    (long long)json_integer_value(json_object_get(r, "mailbox")));
	fprintf(f, "%lld connection(s) in all\n",
	    (long long)json_integer_value(json_object_get(r, "total")));
}

static void
print_disconnected(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "closed %lld connection(s) of %s\n",
	    (long long)json_integer_value(json_object_get(r, "closed")), field(r, "user", "?"));
}

/* mail.show: the message, or with --headers only its headers. */
static void
print_mail_shown(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	if (json_object_get(r, "ID") == NULL)
		print_fields(f, r);
	else
		print_mail(f, r);
}

static void
print_mail_info(FILE *f, const struct op *op, json_t *r)
{
	json_t *rs = json_object_get(r, "RuntimeStats");
	(void)op;
	fprintf(f, "%s; %lld messages, %lld unread; database %s (%lld bytes); "
	    "SMTP accepted %lld, rejected %lld; up %llds\n", field(r, "Version", "?"),
	    (long long)json_integer_value(json_object_get(r, "Messages")),
	    (long long)json_integer_value(json_object_get(r, "Unread")), field(r, "Database", "?"),
	    (long long)json_integer_value(json_object_get(r, "DatabaseSize")),
	    (long long)json_integer_value(json_object_get(rs, "SMTPAccepted")),
	    (long long)json_integer_value(json_object_get(rs, "SMTPRejected")),
	    (long long)json_integer_value(json_object_get(rs, "Uptime")));
}

static void
print_mail_cleared(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "deleted %lld message(s)\n",
	    (long long)json_integer_value(json_object_get(r, "deleted")));
}

static void
print_mail_marked(FILE *f, const struct op *op, json_t *r)
{
	(void)op;
	fprintf(f, "updated %lld message(s)\n",
	    (long long)json_integer_value(json_object_get(r, "updated")));
}

/* The ones that take the result alone. */
#define PLAIN(name, fn) \
static void name(FILE *f, const struct op *op, json_t *r) { (void)op; fn(f, r); }
PLAIN(print_status_r, print_status)
PLAIN(print_check_r, print_check)
PLAIN(print_list_r, print_list)
PLAIN(print_shown_r, print_notification)
PLAIN(print_rendered_r, print_rendered)
PLAIN(print_prefs_r, print_prefs)
PLAIN(print_keys_r, print_keys)
PLAIN(print_webhooks_r, print_webhooks)
PLAIN(print_webhook_added_r, print_webhook_added)
PLAIN(print_push_subs_r, print_push_subs)
PLAIN(print_user_r, print_fields)
PLAIN(print_mail_list_r, print_mail_list)
PLAIN(print_mail_r, print_mail)
PLAIN(print_digest_r, print_digest)
#undef PLAIN

/* How each operation's result reads to a person; one not here prints as JSON. */
static const struct printer {
	const struct op	*op;
	void		(*fn)(FILE *f, const struct op *op, json_t *r);
} printers[] = {
	{&op_ping, print_ping},
	{&op_status, print_status_r},
	{&op_check, print_check_r},
	{&op_backup, print_backup},
	{&op_send, print_sent},
	{&op_list, print_list_r},
	{&op_show, print_shown_r},
	{&op_read, print_marked},
	{&op_unread, print_marked},
	{&op_archive, print_marked},
	{&op_unarchive, print_marked},
	{&op_count, print_count},
	{&op_delete, print_deleted},
	{&op_cancel, print_cancelled},
	{&op_user_show, print_user_r},
	{&op_user_set, print_user_r},
	{&op_topic_add, print_topic},
	{&op_topic_rm, print_topic},
	{&op_topic_show, print_topic},
	{&op_key_create, print_key_created},
	{&op_key_list, print_keys_r},
	{&op_webhook_list, print_webhooks_r},
	{&op_webhook_add, print_webhook_added_r},
	{&op_push_list, print_push_subs_r},
	{&op_key_revoke, print_key_revoked},
	{&op_token, print_token},
	{&op_presence, print_presence},
	{&op_connections, print_connections},
	{&op_disconnect, print_disconnected},
	{&op_mail_list, print_mail_list_r},
	{&op_mail_show, print_mail_shown},
	{&op_mail_wait, print_mail_r},
	{&op_mail_info, print_mail_info},
	{&op_mail_clear, print_mail_cleared},
	{&op_mail_read, print_mail_marked},
	{&op_template_render, print_rendered_r},
	{&op_prefs_get, print_prefs_r},
	{&op_prefs_set, print_prefs_r},
	{&op_digest, print_digest_r},
	{NULL, NULL},
};

void
print_result(FILE *f, const struct op *op, json_t *r)
{
	for (const struct printer *p = printers; p->op != NULL; p++)
		if (p->op == op) {
			p->fn(f, op, r);
			return;
		}
	char *s = json_dumps(r, JSON_INDENT(2) | JSON_ENCODE_ANY);
	fprintf(f, "%s\n", s ? s : "null");
	free(s);
}
