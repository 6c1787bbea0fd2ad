/*
 * fuzz_mailsearch — the mailbox's search syntax (Mailpit's): a query parsed,
 * then matched against a message.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "mailsearch.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *q = strndup((const char *)data, size);
	const char *err = NULL;
	if (q == NULL)
		return 0;
	struct mailsearch *m = mailsearch_parse(q, NULL, &err);
	if (m == NULL && err == NULL && *q != '\0')
		__builtin_trap();	/* refused without saying why */
	if (m != NULL) {
		json_t *sum = json_pack("{s:{s:s,s:s}, s:[{s:s,s:s}], s:[{s:s,s:s}], s:s, s:b, s:i,"
		    " s:s, s:s}", "From", "Name", "Ann", "Address", "ann@example.com", "To", "Name",
		    "Bob", "Address", "bob@example.com", "Cc", "Name", "", "Address",
		    "cat@example.com", "Subject", "Password reset", "Read", 0, "Attachments", 1,
		    "MessageID", "a1.b2@example.com", "Created", "2026-12-01T10:00:00.000Z");
		mailsearch_match(m, sum, "ann ann@example.com bob bob@example.com password reset "
		    "your code is 4711 \x01has:attachment");
		json_decref(sum);
		mailsearch_free(m);
	}
	free(q);
	return 0;
}
