/* mailsearch — Mailpit's search syntax over captured mail; see mailsearch.h. */
#define _GNU_SOURCE
#include "mailsearch.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum field { F_TEXT, F_FROM, F_TO, F_SUBJECT, F_READ, F_UNREAD, F_ATTACHMENT };

struct term {
	enum field	 field;
	bool		 negate;
	char		*value;		/* lower-case */
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

struct mailsearch *
mailsearch_parse(const char *q, const char **err)
{
	struct mailsearch *mq = calloc(1, sizeof *mq);
	char *w;
	*err = NULL;
	while (q != NULL && (w = next_word(&q)) != NULL) {
		struct term t = {F_TEXT, false, NULL};
		char *v = w;
		if (*v == '-' || *v == '!') {
			t.negate = true;
			v++;
		}
		static const struct { const char *prefix; enum field f; } keys[] = {
			{"from:", F_FROM}, {"to:", F_TO}, {"subject:", F_SUBJECT},
		};
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
			if (strncmp(v, keys[i].prefix, strlen(keys[i].prefix)) == 0) {
				t.field = keys[i].f;
				v += strlen(keys[i].prefix);
			}
		if (strcmp(v, "is:read") == 0) {
			t.field = F_READ;
		} else if (strcmp(v, "is:unread") == 0) {
			t.field = F_UNREAD;
		} else if (strcmp(v, "has:attachment") == 0 || strcmp(v, "has:attachments") == 0) {
			t.field = F_ATTACHMENT;
		} else if (strncmp(v, "is:", 3) == 0 || strncmp(v, "has:", 4) == 0) {
			*err = "unknown is: or has: term (is:read, is:unread, has:attachment)";
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
	for (int i = 0; mq != NULL && i < mq->n; i++) {
		const struct term *t = &mq->terms[i];
		bool hit = false;
		switch (t->field) {
		case F_TEXT:
			hit = strstr(search, t->value) != NULL;
			break;
		case F_FROM:
			hit = addr_contains(json_object_get(sum, "From"), t->value);
			break;
		case F_TO:
			hit = addr_contains(json_object_get(sum, "To"), t->value) ||
			    addr_contains(json_object_get(sum, "Cc"), t->value) ||
			    addr_contains(json_object_get(sum, "Bcc"), t->value);
			break;
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
