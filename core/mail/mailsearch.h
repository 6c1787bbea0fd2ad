/*
 * mailsearch — Mailpit's search syntax over captured mail: from: to: cc:
 * bcc: reply-to: addressed: message-id: tag: subject: is: has: before:
 * after: "phrases" words, each negatable with - or !.
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
struct tz;

/*
 * Parse a query; NULL or "" matches everything. NULL with *err on a bad
 * query. Dates without an offset are read in zone (NULL: the server's).
 */
struct mailsearch	*mailsearch_parse(const char *q, const struct tz *zone,
			    const char **err);
void		 mailsearch_free(struct mailsearch *q);
/* Does a message (its summary and search text) match? */
bool		 mailsearch_match(const struct mailsearch *q, json_t *summary, const char *search);

#endif
