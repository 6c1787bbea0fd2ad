/* mailsearch — Mailpit's search syntax over captured mail; see mailsearch.h. */
#define _GNU_SOURCE
#include "mailsearch.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tz.h"
#include "util.h"

/* The fields up to F_SUBJECT take a value, which may not be empty. */
enum field {
	F_TEXT, F_FROM, F_TO, F_CC, F_BCC, F_REPLY_TO, F_ADDRESSED, F_MESSAGE_ID, F_TAG,
	F_SUBJECT, F_READ, F_UNREAD, F_ATTACHMENT, F_TAGGED, F_BEFORE, F_AFTER
};

struct term {
	enum field	 field;
	bool		 negate;
	char		*value;		/* lower-case */
	int64_t		 at;		/* F_BEFORE, F_AFTER: the instant (ms) */
};

struct mailsearch {
	struct term	*terms;
	int		 n;
};

/* Next term of *p (a word, or a "quoted phrase"), lower-cased; NULL at the end. */
static char *
next_word(const char **p)
{
	const char *s = *p;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return NULL;
	struct buf b;
	buf_init(&b);
	bool quoted = false;
	for (; *s && (quoted || !isspace((unsigned char)*s)); s++) {
		if (*s == '"') {
			quoted = !quoted;
			continue;
		}
		buf_putc(&b, (char)tolower((unsigned char)*s));
	}
	*p = s;
	char *w = buf_take(&b);
	return w ? w : strdup("");
}

/*
 * A date as Mailpit's before: and after: take it: YYYY-MM-DD or
 * YYYY/MM/DD, then optionally a time HH:MM[:SS] after a space or a T (a
 * quoted term), read in zone; or an RFC 3339 time with its offset.
 */
static bool
parse_date(const char *v, const struct tz *zone, int64_t *at)
{
	if (time_parse_rfc3339(v, at))
		return true;
	struct civil c = {0};
	int sec = 0, n = 0, len = (int)strlen(v);
	char sep1, sep2;
	if (sscanf(v, "%4d%c%2d%c%2d%n", &c.year, &sep1, &c.month, &sep2, &c.day, &n) != 5 ||
	    sep1 != sep2 || (sep1 != '-' && sep1 != '/'))
		return false;
	if (n < len && (v[n] == ' ' || v[n] == 't')) {
		int m = 0;
		if (sscanf(v + n + 1, "%2d:%2d%n", &c.hour, &c.minute, &m) != 2)
			return false;
		n += 1 + m;
		if (n < len && v[n] == ':') {
			if (sscanf(v + n + 1, "%2d%n", &sec, &m) != 1)
				return false;
			n += 1 + m;
		}
	}
	if (n != len || c.year < 1970 || c.month < 1 || c.month > 12 || c.day < 1 ||
	    c.day > 31 || c.hour > 23 || c.minute > 59 || sec > 59)
		return false;
	/* 31 February is not a date: it would run on into March. */
	struct civil back;
	tz_civil_date(tz_day_number(c.year, c.month, c.day), &back);
	if (back.month != c.month)
		return false;
	*at = tz_instant(zone, &c) + sec * 1000LL;
	return true;
}

struct mailsearch *
mailsearch_parse(const char *q, const struct tz *zone, const char **err)
{
	struct mailsearch *mq = calloc(1, sizeof *mq);
	char *w;
	*err = NULL;
	while (q != NULL && (w = next_word(&q)) != NULL) {
		struct term t = {F_TEXT, false, NULL, 0};
		char *v = w;
		if (*v == '-' || *v == '!') {
			t.negate = true;
			v++;
		}
		static const struct { const char *prefix; enum field f; } keys[] = {
			{"from:", F_FROM}, {"to:", F_TO}, {"cc:", F_CC}, {"bcc:", F_BCC},
			{"reply-to:", F_REPLY_TO}, {"addressed:", F_ADDRESSED},
			{"message-id:", F_MESSAGE_ID}, {"tag:", F_TAG}, {"subject:", F_SUBJECT},
			{"before:", F_BEFORE}, {"after:", F_AFTER},
		};
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
			if (strncmp(v, keys[i].prefix, strlen(keys[i].prefix)) == 0) {
				t.field = keys[i].f;
				v += strlen(keys[i].prefix);
				break;
			}
		if (t.field == F_BEFORE || t.field == F_AFTER) {
			if (!parse_date(v, zone ? zone : tz_server(), &t.at)) {
				*err = "before: and after: take a date (YYYY-MM-DD or YYYY/MM/DD), "
				    "a date and time in quotes (\"YYYY-MM-DD HH:MM[:SS]\") or an "
				    "RFC 3339 time";
				free(w);
				mailsearch_free(mq);
				return NULL;
			}
		} else if (strcmp(v, "is:read") == 0) {
			t.field = F_READ;
		} else if (strcmp(v, "is:unread") == 0) {
			t.field = F_UNREAD;
		} else if (strcmp(v, "is:tagged") == 0) {
			t.field = F_TAGGED;
		} else if (strcmp(v, "has:attachment") == 0 || strcmp(v, "has:attachments") == 0) {
			t.field = F_ATTACHMENT;
		} else if (strncmp(v, "is:", 3) == 0 || strncmp(v, "has:", 4) == 0) {
			*err = "unknown is: or has: term (is:read, is:unread, is:tagged, "
			    "has:attachment)";
			free(w);
			mailsearch_free(mq);
			return NULL;
		}
		if (*v == '\0' && t.field <= F_SUBJECT) {
			free(w);
			continue;
		}
		t.value = strdup(v);
		free(w);
		mq->terms = realloc(mq->terms, (size_t)(mq->n + 1) * sizeof *mq->terms);
		mq->terms[mq->n++] = t;
	}
	return mq;
}

void
mailsearch_free(struct mailsearch *mq)
{
	if (mq == NULL)
		return;
	for (int i = 0; i < mq->n; i++)
		free(mq->terms[i].value);
	free(mq->terms);
	free(mq);
}

/* Does any address object of v (one object or an array) contain needle? */
static bool
addr_contains(json_t *v, const char *needle)
{
	if (json_is_array(v)) {
		size_t i;
		json_t *a;
		json_array_foreach(v, i, a)
			if (addr_contains(a, needle))
				return true;
		return false;
	}
	const char *fields[] = {"Name", "Address"};
	for (int f = 0; f < 2; f++) {
		const char *s = json_string_value(json_object_get(v, fields[f]));
		if (s != NULL && strcasestr(s, needle) != NULL)
			return true;
	}
	return false;
}

bool
mailsearch_match(const struct mailsearch *mq, json_t *sum, const char *search)
{
	/* The summary's key of each address field; addressed: is any of them. */
	static const char *const key[] = {[F_FROM] = "From", [F_TO] = "To", [F_CC] = "Cc",
	    [F_BCC] = "Bcc", [F_REPLY_TO] = "ReplyTo"};
	for (int i = 0; mq != NULL && i < mq->n; i++) {
		const struct term *t = &mq->terms[i];
		bool hit = false;
		switch (t->field) {
		case F_TEXT:
			hit = strstr(search, t->value) != NULL;
			break;
		case F_FROM:
		case F_TO:
		case F_CC:
		case F_BCC:
		case F_REPLY_TO:
			hit = addr_contains(json_object_get(sum, key[t->field]), t->value);
			break;
		case F_ADDRESSED:
			for (int f = F_FROM; f <= F_REPLY_TO && !hit; f++)
				hit = addr_contains(json_object_get(sum, key[f]), t->value);
			break;
		case F_MESSAGE_ID: {
			const char *id = json_string_value(json_object_get(sum, "MessageID"));
			size_t l = strlen(t->value);
			const char *want = t->value;
			if (l >= 2 && want[0] == '<' && want[l - 1] == '>') {
				want++;
				l -= 2;
			}
			hit = id != NULL && strlen(id) == l && strncasecmp(id, want, l) == 0;
			break;
		}
		case F_TAG:
		case F_TAGGED:
			hit = false;	/* the sink keeps no tags */
			break;
		case F_BEFORE:
		case F_AFTER: {
			int64_t at;
			const char *c = json_string_value(json_object_get(sum, "Created"));
			hit = c != NULL && time_parse_rfc3339(c, &at) &&
			    (t->field == F_BEFORE ? at < t->at : at > t->at);
			break;
		}
		case F_SUBJECT: {
			const char *s = json_string_value(json_object_get(sum, "Subject"));
			hit = s != NULL && strcasestr(s, t->value) != NULL;
			break;
		}
		case F_READ:
			hit = json_is_true(json_object_get(sum, "Read"));
			break;
		case F_UNREAD:
			hit = !json_is_true(json_object_get(sum, "Read"));
			break;
		case F_ATTACHMENT:
			hit = json_integer_value(json_object_get(sum, "Attachments")) > 0;
			break;
		}
		if (hit == t->negate)
			return false;
	}
	return true;
}
