/* mailq — Mailpit's search syntax over captured mail: from: to: subject: is: has: "phrases" words. */
#ifndef NOTIFYD_MAILQ_H
#define NOTIFYD_MAILQ_H

#include <jansson.h>
#include <stdbool.h>

struct mailq;

/* Parse a query; NULL or "" matches everything. NULL with *err on a bad query. */
struct mailq	*mailq_parse(const char *q, const char **err);
void		 mailq_free(struct mailq *q);
/* Does a message (its summary and search text) match? */
bool		 mailq_match(const struct mailq *q, json_t *summary, const char *search);

#endif
