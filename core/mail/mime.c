/* mime — what a captured message says, read with GMime; see mime.h. */
#define _GNU_SOURCE
#include "mime.h"

#include <ctype.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "text.h"
#include "util.h"

static pthread_once_t	 started = PTHREAD_ONCE_INIT;
static bool		 running;

static void
start(void)
{
	g_mime_init();
	running = true;
}

/*
 * GMime is started by the first message read or written, not at start:
 * its type system and charsets are 0.5 MiB an idle notifyd need not hold.
 */
void
mime_init(void)
{
	pthread_once(&started, start);
}

void
mime_shutdown(void)
{
	if (running)
		g_mime_shutdown();
}

/* Is the header line [p, e) the header name (any case), then optional blanks and ':'? */
static const char *
header_value(const char *p, const char *e, const char *name)
{
	size_t nl = strlen(name);
	if ((size_t)(e - p) <= nl || strncasecmp(p, name, nl) != 0)
		return NULL;
	p += nl;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	return p < e && *p == ':' ? p + 1 : NULL;
}

/* One level of nesting the scan has entered. */
struct level {
	char	 boundary[72];	/* "" when the level cannot be closed by a boundary of its own */
	bool	 digest;	/* multipart/digest: a part without a type is a message */
};

/*
 * Read the Content-Type value v (unfolded, NUL-terminated) into lv: is it
 * multipart (1, boundary read when it is plain), a message (2), or a leaf (0)?
 * Anything unusual leaves the boundary empty: the level then stays open,
 * which can only make the count deeper than GMime's, never shallower.
 */
static int
content_kind(const char *v, struct level *lv)
{
	v += strspn(v, " \t");
	lv->boundary[0] = '\0';
	lv->digest = false;
	if (strncasecmp(v, "message/", 8) == 0)
		return 2;
	if (strcasestr(v, "multipart") == NULL)
		return 0;
	lv->digest = strncasecmp(v, "multipart/digest", 16) == 0;
	if (strstr(v, "=?") != NULL || strchr(v, '(') != NULL || strcasestr(v, "boundary*"))
		return 1;
	const char *b = NULL;
	for (const char *q = strcasestr(v, "boundary"); q; q = strcasestr(q + 1, "boundary")) {
		const char *before = q;
		while (before > v && (before[-1] == ' ' || before[-1] == '\t'))
			before--;
		if (before > v && before[-1] == ';') {
			if (b != NULL)
				return 1;	/* two boundaries: which one GMime takes is its business */
			b = q + 8;
		}
	}
	if (b == NULL || *(b += strspn(b, " \t")) != '=')
		return 1;
	b += 1 + strspn(b + 1, " \t");
	size_t n = 0;
	if (*b == '"') {
		for (b++; *b && *b != '"' && n + 1 < sizeof lv->boundary; b++) {
			if (*b == '\\')
				return 1;
			lv->boundary[n++] = *b;
		}
		if (*b != '"')
			n = 0;
	} else {
		for (; *b && !strchr(" \t;", *b) && n + 1 < sizeof lv->boundary; b++)
			lv->boundary[n++] = *b;
		if (*b && !strchr(" \t;", *b))
			n = 0;
	}
	lv->boundary[n] = '\0';
	return 1;
}

/*
 * Is [p, e) "--B" or "--B--" (then only blanks) for the boundary B of
 * level i? Exact, where GMime may be looser: a line the scan does not take
 * for a boundary keeps a level open, so it errs on the deep side.
 */
static int
boundary_line(const char *p, const char *e, const struct level *lv)
{
	size_t bl = strlen(lv->boundary);
	if (bl == 0 || (size_t)(e - p) < bl + 2 || p[0] != '-' || p[1] != '-' ||
	    memcmp(p + 2, lv->boundary, bl) != 0)
		return 0;
	p += bl + 2;
	int r = 1;
	if (e - p >= 2 && p[0] == '-' && p[1] == '-') {
		p += 2;
		r = 2;
	}
	for (; p < e; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r')
			return 0;
	return r;
}

bool
mime_depth_ok(const char *raw, size_t len, int max)
{
	struct level *stack = calloc((size_t)max + 1, sizeof *stack), next;
	int depth = 0;
	bool headers = true, in_ct = false, ok = true;
	char ct[1024];
	size_t ctlen = 0;

	if (stack == NULL)
		return false;
	for (const char *p = raw, *end = raw + len; p < end && ok;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		const char *line = p;
		p = nl ? nl + 1 : end;
		if (e > line && e[-1] == '\r')
			e--;
		/* A boundary of an open level ends whatever was open inside it. */
		int b = 0, i;
		for (i = depth - 1; i >= 0 && line + 2 <= e && line[0] == '-'; i--)
			if ((b = boundary_line(line, e, &stack[i])) != 0)
				break;
		if (b != 0) {
			depth = b == 2 ? i : i + 1;
			headers = b == 1;	/* a part's headers follow a delimiter */
			in_ct = false;
			ctlen = 0;
			continue;
		}
		if (!headers)
			continue;
		if (e == line) {	/* the end of a header block */
			int kind;
			if (ctlen > 0) {
				ct[ctlen] = '\0';
				kind = content_kind(ct, &next);
			} else {
				kind = depth > 0 && stack[depth - 1].digest ? 2 : 0;
				memset(&next, 0, sizeof next);
			}
			ctlen = 0;
			in_ct = false;
			headers = kind == 2;	/* an embedded message begins with its headers */
			if (kind != 0) {
				if (depth == max) {
					ok = false;
					break;
				}
				stack[depth++] = next;
				if (kind == 2)
					stack[depth - 1].boundary[0] = '\0';
			}
			continue;
		}
		const char *v;
		if ((*line == ' ' || *line == '\t') && in_ct) {
			v = line;	/* a folded continuation */
		} else {
			v = header_value(line, e, "content-type");
			in_ct = v != NULL;
			if (in_ct)
				ctlen = 0;
		}
		/*
		 * Kept to the buffer, the NUL included: a longer type is unusual,
		 * and content_kind keeps it open. (Once full, more folded lines
		 * are skipped; the room left was computed without that check,
		 * so a type over 1 KiB wrote past ct.)
		 */
		if (in_ct && ctlen + 2 < sizeof ct) {
			size_t n = (size_t)(e - v), room = sizeof ct - 2 - ctlen;
			if (n > room)
				n = room;
			memcpy(ct + ctlen, v, n);
			ctlen += n;
			ct[ctlen++] = ' ';
		}
	}
	free(stack);
	return ok;
}

/*
 * Parse raw into a message (a new reference), or NULL: also when its parts
 * nest deeper than MIME_MAX_DEPTH (*too_deep then set), which GMime is
 * never given.
 */
static GMimeMessage *
parse(const char *raw, size_t len, bool *too_deep)
{
	*too_deep = !mime_depth_ok(raw, len, MIME_MAX_DEPTH);
	if (*too_deep)
		return NULL;
	mime_init();
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *m = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	return m;
}

/* JSON text of s, made valid UTF-8 if it is not. */
static json_t *
utf8_string(const char *s)
{
	if (s == NULL)
		return json_string("");
	if (g_utf8_validate(s, -1, NULL))
		return json_string(s);
	char *fixed = g_utf8_make_valid(s, -1);
	json_t *j = json_string(fixed);
	g_free(fixed);
	return j;
}

/* Append each mailbox of list as {"Name","Address"} to arr, and to search. */
static void
addresses(InternetAddressList *list, json_t *arr, struct buf *search)
{
	int n = list ? internet_address_list_length(list) : 0;
	for (int i = 0; i < n; i++) {
		InternetAddress *a = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_GROUP(a)) {
			addresses(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)),
			    arr, search);
			continue;
		}
		const char *name = internet_address_get_name(a);
		const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
		json_array_append_new(arr, json_pack("{s:o, s:o}", "Name", utf8_string(name),
		    "Address", utf8_string(addr)));
		if (search != NULL)
			buf_printf(search, " %s %s", name ? name : "", addr ? addr : "");
	}
}

/* What walking the parts finds. */
struct walk {
	char		*text, *html;
	json_t		*attachments, *inline_parts;
	const char	*want;		/* a part id to find */
	GMimeObject	*found;
	bool		 sums;		/* each attachment's Checksums too */
};

/*
 * Decoded length of a part's content, and with sums its MD5, SHA1 and
 * SHA256 (Mailpit's Checksums), computed in the same pass.
 */
static size_t
content_size(GMimePart *part, json_t **sums)
{
	static const GChecksumType types[] = {G_CHECKSUM_MD5, G_CHECKSUM_SHA1, G_CHECKSUM_SHA256};
	static const char *const names[] = {"MD5", "SHA1", "SHA256"};
	GMimeFilter *f[3] = {NULL, NULL, NULL};
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *null = g_mime_stream_null_new(), *s = null;
	if (sums != NULL) {
		s = g_mime_stream_filter_new(null);
		for (int i = 0; i < 3; i++) {
			f[i] = g_mime_filter_checksum_new(types[i]);
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(s), f[i]);
		}
	}
	if (w != NULL)
		g_mime_data_wrapper_write_to_stream(w, s);
	g_mime_stream_flush(s);
	size_t n = (size_t)GMIME_STREAM_NULL(null)->written;
	if (sums != NULL) {
		*sums = json_object();
		for (int i = 0; i < 3; i++) {
			gchar *hex = g_mime_filter_checksum_get_string(GMIME_FILTER_CHECKSUM(f[i]));
			json_object_set_new(*sums, names[i], json_string(hex ? hex : ""));
			g_free(hex);
			g_object_unref(f[i]);
		}
		g_object_unref(s);
	}
	g_object_unref(null);
	return n;
}

/* Visit obj (numbered id) and its children. */
static void
walk(GMimeObject *obj, const char *id, struct walk *w)
{
	if (w->want != NULL && strcmp(id, w->want) == 0) {
		w->found = obj;
		return;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		int n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
		for (int i = 0; i < n && w->found == NULL; i++) {
			char child[128];
			if (*id == '\0')
				snprintf(child, sizeof child, "%d", i + 1);
			else
				snprintf(child, sizeof child, "%s.%d", id, i + 1);
			walk(g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), child, w);
		}
		return;
	}
	if (!GMIME_IS_PART(obj) || w->want != NULL)
		return;
	GMimePart *part = GMIME_PART(obj);
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	bool attachment = g_mime_part_is_attachment(part);
	if (!attachment && GMIME_IS_TEXT_PART(obj) && g_mime_content_type_is_type(ct, "text", "plain") &&
	    w->text == NULL) {
		w->text = g_mime_text_part_get_text(GMIME_TEXT_PART(obj));
		return;
	}
	if (!attachment && GMIME_IS_TEXT_PART(obj) && g_mime_content_type_is_type(ct, "text", "html") &&
	    w->html == NULL) {
		w->html = g_mime_text_part_get_text(GMIME_TEXT_PART(obj));
		return;
	}
	char *type = g_mime_content_type_get_mime_type(ct);
	const char *cid = g_mime_object_get_content_id(obj), *fname = g_mime_part_get_filename(part);
	json_t *sums = NULL;
	size_t size = content_size(part, w->sums ? &sums : NULL);
	/* Unnamed, it goes by its Content-ID, as Mailpit's do. */
	json_t *a = json_pack("{s:s, s:o, s:o, s:o, s:I}", "PartID", *id ? id : "1",
	    "FileName", utf8_string(fname ? fname : cid), "ContentType", utf8_string(type),
	    "ContentID", utf8_string(cid), "Size", (json_int_t)size);
	if (sums != NULL)
		json_object_set_new(a, "Checksums", sums);
	g_free(type);
	if (!attachment && cid != NULL)
		json_array_append_new(w->inline_parts, a);
	else
		json_array_append_new(w->attachments, a);
}

/* Up to 250 characters of text, whitespace collapsed; HTML tags dropped. */
static char *
snippet(const char *text, bool html)
{
	struct buf b;
	int chars = 0, in_tag = 0, space = 1;
	buf_init(&b);
	for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p && chars < 250; p++) {
		if (html && *p == '<') {
			in_tag = 1;
			continue;
		}
		if (html && in_tag) {
			if (*p == '>')
				in_tag = 0;
			continue;
		}
		if (isspace(*p)) {
			if (!space)
				buf_putc(&b, ' ');
			space = 1;
			continue;
		}
		space = 0;
		if ((*p & 0xc0) != 0x80)
			chars++;
		buf_putc(&b, (char)*p);
	}
	while (b.len > 0 && b.data[b.len - 1] == ' ')
		b.data[--b.len] = '\0';
	return buf_take(&b);
}

/* Lower-case ASCII of s appended to b. */
static void
put_lower(struct buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || !buf_reserve(b, n))
		return;
	char *d = b->data + b->len;
	for (size_t i = 0; i < n; i++)
		d[i] = (char)tolower((unsigned char)s[i]);
	b->len += n;
	d[n] = '\0';
}

json_t *
mime_summary(const char *raw, size_t len, json_t *rcpts, struct buf *search)
{
	bool deep;
	GMimeMessage *m = parse(raw, len, &deep);
	json_t *from = json_array(), *to = json_array(), *cc = json_array(), *bcc = json_array();
	json_t *reply = json_array(), *v;
	struct walk w = {.attachments = json_array(), .inline_parts = json_array()};
	struct buf words;
	size_t i;

	buf_init(&words);
	if (m != NULL) {
		addresses(g_mime_message_get_from(m), from, &words);
		addresses(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_TO), to, &words);
		addresses(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_CC), cc, &words);
		addresses(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_BCC), bcc, &words);
		addresses(g_mime_message_get_addresses(m, GMIME_ADDRESS_TYPE_REPLY_TO), reply, NULL);
		GMimeObject *body = g_mime_message_get_mime_part(m);
		if (body != NULL)
			walk(body, "", &w);
	}
	/* Envelope recipients no header names were Bcc. */
	json_array_foreach(rcpts, i, v) {
		const char *r = json_string_value(v);
		bool named = false;
		json_t *lists[] = {to, cc, bcc}, *a;
		for (int l = 0; l < 3 && !named; l++) {
			size_t j;
			json_array_foreach(lists[l], j, a)
				if (strcasecmp(json_string_value(json_object_get(a, "Address")), r) == 0)
					named = true;
		}
		if (!named) {
			json_array_append_new(bcc, json_pack("{s:s, s:s}", "Name", "", "Address", r));
			buf_printf(&words, " %s", r);
		}
	}
	const char *subject = m ? g_mime_message_get_subject(m) : NULL;
	const char *msgid = m ? g_mime_message_get_message_id(m) : NULL;
	char *snip = snippet(w.text ? w.text : w.html, w.text == NULL);
	json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:[], s:I, s:o}",
	    "MessageID", utf8_string(msgid),
	    "From", json_array_size(from) ? json_incref(json_array_get(from, 0)) : json_null(),
	    "To", to, "Cc", cc, "Bcc", bcc, "ReplyTo", reply, "Subject", utf8_string(subject),
	    "Tags", "Attachments", (json_int_t)json_array_size(w.attachments),
	    "Snippet", utf8_string(snip));
	if (search != NULL) {
		put_lower(search, words.data);
		buf_putc(search, ' ');
		put_lower(search, subject);
		buf_putc(search, ' ');
		put_lower(search, w.text ? w.text : snip);
		if (json_array_size(w.attachments) > 0)
			buf_puts(search, " \x01has:attachment");
	}
	free(snip);
	buf_free(&words);
	g_free(w.text);
	g_free(w.html);
	json_decref(from);
	json_decref(w.attachments);
	json_decref(w.inline_parts);
	if (m != NULL)
		g_object_unref(m);
	return o;
}

/* Append an error of List-Unsubscribe's to errs, after ", " when not the first. */
static void
unsub_error(struct buf *errs, const char *fmt, const char *what, int n)
{
	if (errs->len > 0)
		buf_puts(errs, ", ");
	buf_printf(errs, fmt, n, what);
}

/*
 * Mailpit's ListUnsubscribe: the header, its links (at most one mailto:
 * and one http(s)://, each in <>, split by commas), what is wrong with it
 * (as Mailpit words it), and List-Unsubscribe-Post.
 */
static json_t *
list_unsubscribe(const char *hdr, const char *post)
{
	json_t *links = json_array();
	struct buf v, errs;
	buf_init(&v);
	buf_init(&errs);
	for (const char *p = hdr ? hdr : ""; *p; p++) {	/* comments out */
		const char *close = *p == '(' ? strchr(p, ')') : NULL;
		if (close != NULL)
			p = close;
		else
			buf_putc(&v, *p);
	}
	const char *s = v.data ? v.data : "";
	while (isspace((unsigned char)*s))
		s++;
	int n = (int)strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	const char *p = s, *end = s + n;
	int count = 0;			/* <...> pairs */
	while (p < end && (p = memchr(p, '<', (size_t)(end - p))) != NULL) {
		const char *gt = memchr(p, '>', (size_t)(end - p));
		if (gt == NULL)
			break;
		count++;
		p = gt + 1;
	}
	if (hdr == NULL) {
		/* no header, nothing wrong */
	} else if (count == 0) {
		unsub_error(&errs, "\"%.*s\" no valid unsubscribe links found", s, n);
	} else if (s[0] != '<' || s[n - 1] != '>') {
		unsub_error(&errs, "\"%.*s\" should be enclosed in <>", s, n);
	} else {
		bool joined = true;
		for (p = s; count <= 2 && p < end; ) {	/* between > and <: a comma */
			const char *gt = memchr(p, '>', (size_t)(end - p)), *lt, *q;
			if (gt == NULL || (lt = memchr(gt, '<', (size_t)(end - gt))) == NULL)
				break;
			int commas = 0;
			for (q = gt + 1; q < lt; q++)
				if (*q == ',')
					commas++;
				else if (!isspace((unsigned char)*q))
					commas = 2;
			if (commas != 1)
				joined = false;
			p = lt;
		}
		if (count > 2) {
			unsub_error(&errs, "\"%.*s\" should include a maximum of one email and one "
			    "HTTP link", s, n);
		} else if (!joined) {
			unsub_error(&errs, "\"%.*s\" <> should be split with a comma and optional "
			    "spaces", s, n);
		} else {
			bool mailto = false, http = false;
			for (p = s; p < end && (p = memchr(p, '<', (size_t)(end - p))) != NULL; ) {
				const char *u = p + 1, *gt = memchr(p, '>', (size_t)(end - p));
				int len = (int)(gt - u);
				bool space = false;
				for (int i = 0; i < len; i++)
					space |= isspace((unsigned char)u[i]) != 0;
				bool is_mail = len > 7 && strncmp(u, "mailto:", 7) == 0 &&
				    isalnum((unsigned char)u[7]);
				size_t scheme = strncasecmp(u, "https://", 8) == 0 ? 8 :
				    strncasecmp(u, "http://", 7) == 0 ? 7 : 0;
				bool is_http = scheme > 0 && (int)scheme < len && isalnum((unsigned char)u[scheme]);
				if (space)
					unsub_error(&errs, "\"%.*s\" should not contain spaces", u, len);
				else if (is_mail && mailto)
					unsub_error(&errs, "\"%.*s\" should only contain one mailto:", u, len);
				else if (is_http && http)
					unsub_error(&errs, "\"%.*s\" should only contain one HTTP link", u, len);
				else if (!is_mail && !is_http)
					unsub_error(&errs, "\"%.*s\" should start with either http(s):// or "
					    "mailto:", u, len);
				else {
					char *link = g_strndup(u, (gsize)len);
					json_array_append_new(links, utf8_string(link));
					g_free(link);
				}
				mailto |= is_mail;
				http |= is_http;
				p = gt + 1;
			}
		}
	}
	json_t *o = json_pack("{s:o, s:o, s:o, s:o}", "Header", utf8_string(hdr), "Links", links,
	    "Errors", utf8_string(errs.data), "HeaderPost", utf8_string(post));
	buf_free(&v);
	buf_free(&errs);
	return o;
}

json_t *
mime_message(const char *raw, size_t len, json_t *summary)
{
	bool deep;
	GMimeMessage *m = parse(raw, len, &deep);
	struct walk w = {.attachments = json_array(), .inline_parts = json_array(), .sums = true};
	json_t *o = json_deep_copy(summary);
	char *date = NULL;

	if (m != NULL) {
		GMimeObject *body = g_mime_message_get_mime_part(m);
		if (body != NULL)
			walk(body, "", &w);
		GDateTime *d = g_mime_message_get_date(m);
		if (d != NULL)
			date = g_date_time_format_iso8601(d);
	}
	/* Return-Path without its <>; before the sink wrote one, From's address. */
	const char *rp = m ? g_mime_object_get_header(GMIME_OBJECT(m), "Return-Path") : NULL;
	json_object_set_new(o, "Date", date ? json_string(date) :
	    json_incref(json_object_get(summary, "Created")));
	if (rp != NULL) {
		while (isspace((unsigned char)*rp))
			rp++;
		if (*rp == '<')
			rp++;
		size_t n = strlen(rp);
		while (n > 0 && (isspace((unsigned char)rp[n - 1]) || rp[n - 1] == '>'))
			n--;
		char *bare = g_strndup(rp, n);
		json_object_set_new(o, "ReturnPath", utf8_string(bare));
		g_free(bare);
	} else {
		json_t *from = json_object_get(json_object_get(summary, "From"), "Address");
		json_object_set_new(o, "ReturnPath", from ? json_incref(from) : json_string(""));
	}
	json_object_set_new(o, "ListUnsubscribe", list_unsubscribe(
	    m ? g_mime_object_get_header(GMIME_OBJECT(m), "List-Unsubscribe") : NULL,
	    m ? g_mime_object_get_header(GMIME_OBJECT(m), "List-Unsubscribe-Post") : NULL));
	if (json_object_get(o, "Username") == NULL)	/* stored before it was kept */
		json_object_set_new(o, "Username", json_string(""));
	if (deep) {	/* stored before the bound: shown as it is, not parsed */
		char *text = g_utf8_make_valid(raw, (gssize)len);
		json_object_set_new(o, "Text", json_string(text));
		g_free(text);
	} else {
		json_object_set_new(o, "Text", utf8_string(w.text));
	}
	json_object_set_new(o, "HTML", utf8_string(w.html));
	json_object_set_new(o, "Inline", w.inline_parts);
	json_object_set_new(o, "Attachments", w.attachments);
	json_object_del(o, "Snippet");
	json_object_del(o, "Read");
	json_object_del(o, "Created");
	g_free(date);
	g_free(w.text);
	g_free(w.html);
	if (m != NULL)
		g_object_unref(m);
	return o;
}

char *
mime_part(const char *raw, size_t len, const char *id, size_t *outlen, char **type,
    char **filename)
{
	bool deep;
	GMimeMessage *m = parse(raw, len, &deep);
	struct walk w = {.want = id};
	char *out = NULL;
	if (m != NULL && g_mime_message_get_mime_part(m) != NULL) {
		GMimeObject *body = g_mime_message_get_mime_part(m);
		/* A single-part message's only part is "1". */
		if (!GMIME_IS_MULTIPART(body) && strcmp(id, "1") == 0)
			w.found = body;
		else
			walk(body, "", &w);
	}
	if (w.found != NULL && GMIME_IS_PART(w.found)) {
		GMimeDataWrapper *dw = g_mime_part_get_content(GMIME_PART(w.found));
		GMimeStream *s = g_mime_stream_mem_new();
		if (dw != NULL)
			g_mime_data_wrapper_write_to_stream(dw, s);
		GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
		if ((out = malloc(bytes->len + 1)) == NULL) {
			g_object_unref(s);
			g_object_unref(m);
			return NULL;
		}
		if (bytes->len > 0)	/* an empty part has no data at all */
			memcpy(out, bytes->data, bytes->len);
		out[bytes->len] = '\0';
		*outlen = bytes->len;
		char *t = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(w.found));
		*type = strdup(t);
		g_free(t);
		const char *fn = g_mime_part_get_filename(GMIME_PART(w.found));
		*filename = fn ? strdup(fn) : NULL;
		g_object_unref(s);
	}
	if (m != NULL)
		g_object_unref(m);
	return out;
}

/* Add the header block at the start of raw to o, unfolded, without GMime. */
static void
plain_headers(const char *raw, size_t len, json_t *o)
{
	struct buf v;
	char name[256] = "";
	buf_init(&v);
	for (const char *p = raw, *end = raw + len; p <= end;) {
		const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		const char *e = nl ? nl : end, *line = p;
		p = nl ? nl + 1 : end + 1;
		if (e > line && e[-1] == '\r')
			e--;
		bool fold = e > line && (*line == ' ' || *line == '\t');
		if (fold && *name) {
			buf_put(&v, line, (size_t)(e - line));
			continue;
		}
		if (*name) {
			json_t *arr = json_object_get(o, name);
			if (arr == NULL)
				json_object_set_new(o, name, arr = json_array());
			char *text = g_utf8_make_valid(v.data ? v.data : "", -1);
			json_array_append_new(arr, json_string(g_strstrip(text)));
			g_free(text);
			*name = '\0';
		}
		const char *colon = memchr(line, ':', (size_t)(e - line));
		if (e == line || colon == NULL || colon == line || colon - line >= (long)sizeof name)
			break;
		snprintf(name, sizeof name, "%.*s", (int)(colon - line), line);
		buf_reset(&v);
		buf_put(&v, colon + 1, (size_t)(e - colon - 1));
	}
	buf_free(&v);
}

json_t *
mime_headers(const char *raw, size_t len)
{
	bool deep;
	GMimeMessage *m = parse(raw, len, &deep);
	json_t *o = json_object();
	if (deep)
		plain_headers(raw, len, o);
	if (m != NULL) {
		GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
		int n = g_mime_header_list_get_count(hl);
		for (int i = 0; i < n; i++) {
			GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
			const char *name = g_mime_header_get_name(h);
			json_t *arr = json_object_get(o, name);
			if (arr == NULL)
				json_object_set_new(o, name, arr = json_array());
			json_array_append_new(arr, utf8_string(g_mime_header_get_value(h)));
		}
		g_object_unref(m);
	}
	return o;
}

/* A text part of subtype holding s, in the encoding its bytes need. */
static GMimeObject *
text_part(const char *subtype, const char *s)
{
	/* UTF-8 as it is (the HTML layout says so too), in whatever transfer encoding it needs. */
	GMimeTextPart *t = g_mime_text_part_new_with_subtype(subtype);
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(s, strlen(s));
	GMimeDataWrapper *dw = g_mime_data_wrapper_new_with_stream(st, GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content((GMimePart *)t, dw);
	g_object_unref(dw);
	g_object_unref(st);
	g_mime_object_set_content_type_parameter((GMimeObject *)t, "charset", "utf-8");
	GMimeContentEncoding enc = g_mime_part_get_best_content_encoding((GMimePart *)t,
	    GMIME_ENCODING_CONSTRAINT_7BIT);
	g_mime_part_set_content_encoding((GMimePart *)t, enc);
	return (GMimeObject *)t;
}

/* msg written to out with CRLF line ends; msg is let go of. */
static bool
put_crlf(GMimeMessage *msg, struct buf *out)
{
	GMimeFormatOptions *fo = g_mime_format_options_clone(NULL);
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	char *s = g_mime_object_to_string((GMimeObject *)msg, fo);
	g_mime_format_options_free(fo);
	g_object_unref(msg);
	if (s == NULL)
		return false;
	buf_puts(out, s);
	g_free(s);
	return true;
}

bool
mime_compose(const struct mime_out *m, struct buf *out)
{
	mime_init();
	InternetAddressList *from = internet_address_list_parse(NULL, m->from);
	if (from == NULL || internet_address_list_length(from) != 1) {
		if (from)
			g_object_unref(from);
		return false;
	}
	GMimeMessage *msg = g_mime_message_new(TRUE);
	internet_address_list_append(g_mime_message_get_from(msg), from);
	g_object_unref(from);
	g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, m->to_name ? m->to_name : "", m->to);
	g_mime_message_set_subject(msg, m->subject, "utf-8");
	GDateTime *date = g_date_time_new_from_unix_utc(m->date / 1000);
	g_mime_message_set_date(msg, date);
	g_date_time_unref(date);
	g_mime_message_set_message_id(msg, m->message_id);
	if (m->unsubscribe != NULL && *m->unsubscribe != '\0') {
		char *v = g_strdup_printf("<%s>", m->unsubscribe);
		g_mime_object_set_header((GMimeObject *)msg, "List-Unsubscribe", v, NULL);
		g_free(v);
	}
	g_mime_object_set_header((GMimeObject *)msg, "Auto-Submitted", "auto-generated", NULL);
	GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
	GMimeObject *t = text_part("plain", m->text), *h = text_part("html", m->html);
	g_mime_multipart_add(alt, t);
	g_mime_multipart_add(alt, h);
	g_object_unref(t);
	g_object_unref(h);
	g_mime_message_set_mime_part(msg, (GMimeObject *)alt);
	g_object_unref(alt);

	return put_crlf(msg, out);
}

/* A part of type holding len bytes of data, base64-encoded, named filename. */
static GMimeObject *
file_part(const char *type, const unsigned char *data, size_t len, const char *filename)
{
	GMimeContentType *ct = g_mime_content_type_parse(NULL, type);
	GMimePart *p = g_mime_part_new();
	g_mime_object_set_content_type((GMimeObject *)p, ct);
	g_object_unref(ct);
	GMimeStream *st = g_mime_stream_mem_new_with_buffer((const char *)data, len);
	GMimeDataWrapper *dw = g_mime_data_wrapper_new_with_stream(st, GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content(p, dw);
	g_object_unref(dw);
	g_object_unref(st);
	g_mime_part_set_content_encoding(p, GMIME_CONTENT_ENCODING_BASE64);
	if (*filename)
		g_mime_part_set_filename(p, filename);
	return (GMimeObject *)p;
}

/* Add the {"Name","Email"} of list (or the address strings, bare) as type to msg. */
static bool
add_addresses(GMimeMessage *msg, GMimeAddressType type, json_t *list, bool bare,
    const char *what, json_t *rcpts, char *err, size_t errn)
{
	size_t i;
	json_t *a;
	if (list != NULL && !json_is_array(list)) {
		snprintf(err, errn, "'%s' must be an array", what);
		return false;
	}
	json_array_foreach(list, i, a) {
		const char *email = json_string_value(bare ? a : json_object_get(a, "Email"));
		const char *name = bare ? "" : json_string_value(json_object_get(a, "Name"));
		InternetAddressList *l = email ? internet_address_list_parse(NULL, email) : NULL;
		bool ok = l != NULL && internet_address_list_length(l) == 1 &&
		    INTERNET_ADDRESS_IS_MAILBOX(internet_address_list_get_address(l, 0));
		if (!ok) {
			snprintf(err, errn, "invalid %s address: %.200s", what, email ? email : "(none)");
			if (l != NULL)
				g_object_unref(l);
			return false;
		}
		const char *addr = internet_address_mailbox_get_addr(
		    INTERNET_ADDRESS_MAILBOX(internet_address_list_get_address(l, 0)));
		if (type != GMIME_ADDRESS_TYPE_BCC)	/* Bcc: the envelope's, not a header */
			g_mime_message_add_mailbox(msg, type, name ? name : "", addr);
		if (rcpts != NULL)
			json_array_append_new(rcpts, json_string(addr));
		g_object_unref(l);
	}
	return true;
}

/* Decode an attachment's base64 (a data: URL's too, after its comma), whitespace aside. */
static unsigned char *
attachment_bytes(const char *content, size_t *len)
{
	const char *comma = strrchr(content, ',');
	const char *b = comma ? comma + 1 : content;
	size_t n = strlen(b), k = 0;
	char *clean = malloc(n + 1);
	unsigned char *out = malloc(n / 4 * 3 + 3);
	for (size_t i = 0; clean != NULL && i < n; i++)
		if (!isspace((unsigned char)b[i]))
			clean[k++] = b[i];
	ssize_t got = clean != NULL && out != NULL && k % 4 == 0 ?
	    (k == 0 ? 0 : base64_decode(clean, k, out)) : -1;
	free(clean);
	if (got < 0) {
		free(out);
		return NULL;
	}
	*len = (size_t)got;
	return out;
}

/*
 * The type of an attachment sent without one, from its first bytes, as
 * Mailpit has it (Go's http.DetectContentType): a few signatures, then
 * UTF-8 text or bytes.
 */
static const char *
sniff_type(const unsigned char *b, size_t n)
{
	static const struct {
		const char	*magic;
		size_t		 len;
		const char	*type;
	} sig[] = {
		{"\x89PNG\r\n\x1a\n", 8, "image/png"}, {"\xff\xd8\xff", 3, "image/jpeg"},
		{"GIF87a", 6, "image/gif"}, {"GIF89a", 6, "image/gif"}, {"%PDF-", 5, "application/pdf"},
		{"PK\x03\x04", 4, "application/zip"}, {"\x1f\x8b\x08", 3, "application/x-gzip"},
		{"BM", 2, "image/bmp"},
	};
	for (size_t i = 0; i < sizeof sig / sizeof sig[0]; i++)
		if (n >= sig[i].len && memcmp(b, sig[i].magic, sig[i].len) == 0)
			return sig[i].type;
	if (n >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
		return "image/webp";
	size_t head = n < 512 ? n : 512, ws = 0;
	while (ws < head && isspace(b[ws]))
		ws++;
	static const char *const html[] = {"<!DOCTYPE HTML", "<HTML", "<HEAD", "<BODY", NULL};
	for (int i = 0; html[i]; i++)
		if (head - ws >= strlen(html[i]) && strncasecmp((const char *)b + ws, html[i],
		    strlen(html[i])) == 0)
			return "text/html; charset=utf-8";
	for (size_t i = 0; i < head; i++)
		if ((b[i] < 0x20 && !strchr("\t\n\f\r\x1b", b[i])) || b[i] == 0x7f)
			return "application/octet-stream";
	/* A cut at 512 bytes may split a character: only the whole ones before it count. */
	const char *end;
	g_utf8_validate((const char *)b, (gssize)head, &end);
	return (size_t)((const unsigned char *)end - b) + 4 > head ? "text/plain; charset=utf-8" :
	    "application/octet-stream";
}

/* Header names a send may not set: the message's own. */
static const char *const restricted[] = {"To", "From", "Cc", "Bcc", "Reply-To", "Date", "Subject",
    "Content-Type", "MIME-Version", "X-Tags", NULL};

bool
mime_build(json_t *req, int64_t now, const char *host, struct buf *out, json_t *rcpts,
    char **from, char *err, size_t errn)
{
	mime_init();
	bool ok = false;
	GMimeMessage *msg = g_mime_message_new(TRUE);
	GMimeObject *body = NULL;
	GMimeMultipart *related = NULL, *mixed = NULL;
	json_t *f = json_object_get(req, "From"), *v;
	const char *k;
	size_t i;
	*from = NULL;
	json_t *fl = json_pack("[O]", f ? f : json_null());
	if (!json_is_object(f) || !add_addresses(msg, GMIME_ADDRESS_TYPE_FROM, fl, false, "From",
	    NULL, err, errn) ||
	    !add_addresses(msg, GMIME_ADDRESS_TYPE_TO, json_object_get(req, "To"), false, "To",
	    rcpts, err, errn) ||
	    !add_addresses(msg, GMIME_ADDRESS_TYPE_CC, json_object_get(req, "Cc"), false, "Cc",
	    rcpts, err, errn) ||
	    !add_addresses(msg, GMIME_ADDRESS_TYPE_BCC, json_object_get(req, "Bcc"), true, "Bcc",
	    rcpts, err, errn) ||
	    !add_addresses(msg, GMIME_ADDRESS_TYPE_REPLY_TO, json_object_get(req, "ReplyTo"), false,
	    "Reply-To", NULL, err, errn)) {
		if (!json_is_object(f))
			snprintf(err, errn, "'From' must be an object with an Email");
		goto out;
	}
	InternetAddressList *fa = g_mime_message_get_from(msg);
	*from = strdup(internet_address_mailbox_get_addr(
	    INTERNET_ADDRESS_MAILBOX(internet_address_list_get_address(fa, 0))));
	const char *subject = json_string_value(json_object_get(req, "Subject"));
	const char *text = json_string_value(json_object_get(req, "Text"));
	const char *html = json_string_value(json_object_get(req, "HTML"));
	g_mime_message_set_subject(msg, subject ? subject : "", "utf-8");
	GDateTime *date = g_date_time_new_from_unix_utc(now / 1000);
	g_mime_message_set_date(msg, date);
	g_date_time_unref(date);
	bool own_id = false;		/* a Message-ID among the Headers is the message's */
	json_object_foreach(json_object_get(req, "Headers"), k, v)
		own_id |= strcasecmp(k, "Message-ID") == 0;
	if (!own_id) {
		char *mid = g_mime_utils_generate_message_id(host);
		g_mime_message_set_message_id(msg, mid);
		g_free(mid);
	}
	json_t *tags = json_object_get(req, "Tags");
	if (json_array_size(tags) > 0) {
		struct buf t;
		buf_init(&t);
		json_array_foreach(tags, i, v)
			buf_printf(&t, "%s%s", i ? ", " : "", json_string_value(v) ? json_string_value(v) : "");
		g_mime_object_set_header((GMimeObject *)msg, "X-Tags", t.data ? t.data : "", "utf-8");
		buf_free(&t);
	}
	json_object_foreach(json_object_get(req, "Headers"), k, v) {
		for (int r = 0; restricted[r]; r++)
			if (strcasecmp(k, restricted[r]) == 0) {
				snprintf(err, errn, "cannot overwrite header: \"%.100s\"", k);
				goto out;
			}
		bool name_ok = *k != '\0';
		for (const char *c = k; *c; c++)	/* RFC 5322 2.2: printable ASCII but ':' */
			name_ok &= *c > 32 && *c < 127 && *c != ':';
		if (!json_is_string(v) || !name_ok || strpbrk(json_string_value(v), "\r\n") != NULL) {
			snprintf(err, errn, "header %.100s: a name without colons or spaces, and a "
			    "one-line string", k);
			goto out;
		}
		g_mime_object_append_header((GMimeObject *)msg, k, json_string_value(v), "utf-8");
	}
	/* The body: text, HTML, or both as alternatives. */
	if (html != NULL && *html && text != NULL && *text) {
		GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
		GMimeObject *t = text_part("plain", text), *h = text_part("html", html);
		g_mime_multipart_add(alt, t);
		g_mime_multipart_add(alt, h);
		g_object_unref(t);
		g_object_unref(h);
		body = (GMimeObject *)alt;
	} else {
		body = html != NULL && *html ? text_part("html", html) : text_part("plain", text ? text : "");
	}
	/* Attachments with a ContentID go beside the body (related), the others after it (mixed). */
	json_t *atts = json_object_get(req, "Attachments");
	if (atts != NULL && !json_is_array(atts)) {
		snprintf(err, errn, "'Attachments' must be an array");
		goto out;
	}
	json_array_foreach(atts, i, v) {
		const char *content = json_string_value(json_object_get(v, "Content"));
		const char *name = json_string_value(json_object_get(v, "Filename"));
		const char *type = json_string_value(json_object_get(v, "ContentType"));
		const char *cid = json_string_value(json_object_get(v, "ContentID"));
		size_t len = 0;
		unsigned char *bytes = content ? attachment_bytes(content, &len) : NULL;
		if (bytes == NULL) {
			snprintf(err, errn, "attachment %zu (%.100s): 'Content' must be base64", i,
			    name ? name : "");
			goto out;
		}
		const char *use = type && *type ? type : sniff_type(bytes, len);
		if (strchr(use, '/') == NULL)
			use = "application/octet-stream";
		GMimeObject *part = file_part(use, bytes, len, name ? name : "");
		free(bytes);
		GMimeMultipart **into = cid && *cid ? &related : &mixed;
		if (cid && *cid) {
			g_mime_object_set_content_id(part, cid);
			g_mime_object_set_disposition(part, "inline");
		}
		if (*into == NULL)
			*into = g_mime_multipart_new_with_subtype(into == &related ? "related" : "mixed");
		g_mime_multipart_add(*into, part);
		g_object_unref(part);
	}
	if (related != NULL) {
		g_mime_multipart_insert(related, 0, body);
		g_object_unref(body);
		body = (GMimeObject *)related;
		related = NULL;
	}
	if (mixed != NULL) {
		g_mime_multipart_insert(mixed, 0, body);
		g_object_unref(body);
		body = (GMimeObject *)mixed;
		mixed = NULL;
	}
	g_mime_message_set_mime_part(msg, body);
	ok = put_crlf(msg, out);
	msg = NULL;
	if (!ok)
		snprintf(err, errn, "the message could not be written");
out:
	if (body != NULL)
		g_object_unref(body);
	if (related != NULL)
		g_object_unref(related);
	if (mixed != NULL)
		g_object_unref(mixed);
	if (msg != NULL)
		g_object_unref(msg);
	json_decref(fl);
	if (!ok) {
		free(*from);
		*from = NULL;
	}
	return ok;
}
