/*
 * mailsearch — Mailpit's search syntax over captured mail: from: to:
 * subject: is: has: "phrases" words, each negatable with -.
 *
 * Hand-written on purpose: the syntax is Mailpit's own (clients of the
 * mail sink send it as they would to Mailpit), and no Debian package
 * parses it; it is a tokenizer and a list of terms, checked by
 * fuzz/fuzz_mailsearch.c.
 */
#ifndef NOTIFYD_MAILSEARCH_H
#define NOTIFYD_MAILSEARCH_H

#include <jansson.h>
#include <stdbool.h>

struct mailsearch;

/* Parse a query; NULL or "" matches everything. NULL with *err on a bad query. */
struct mailsearch	*mailsearch_parse(const char *q, const char **err);
void		 mailsearch_free(struct mailsearch *q);
/* Does a message (its summary and search text) match? */
bool		 mailsearch_match(const struct mailsearch *q, json_t *summary, const char *search);

#endif
