/*
 * fuzz_mime — a captured message as the sink takes it and the mailbox API
 * shows it: the depth bound, then the summary, the whole message, the
 * headers and parts, as GMime reads them.
 */
#include <jansson.h>

#include "fuzz.h"
#include "mime.h"
#include "util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool once;
	if (!once) {
		mime_init();
		once = true;
	}
	const char *raw = (const char *)data;
	if (!mime_depth_ok(raw, size, MIME_MAX_DEPTH)) {
		/* Stored before the bound, shown raw: never given to GMime. */
		json_t *h = mime_headers(raw, size);
		json_decref(h);
		return 0;
	}
	json_t *rcpts = json_pack("[s]", "bcc@example.com");
	struct buf search;
	buf_init(&search);
	json_t *sum = mime_summary(raw, size, rcpts, &search);
	json_t *full = mime_message(raw, size, sum);
	json_t *h = mime_headers(raw, size);
	static const char *const parts[] = {"1", "2", "1.1", "1.2", "2.1"};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		size_t len;
		char *type = NULL, *name = NULL;
		char *p = mime_part(raw, size, parts[i], &len, &type, &name);
		free(p);
		free(type);
		free(name);
	}
	json_decref(h);
	json_decref(full);
	json_decref(sum);
	json_decref(rcpts);
	buf_free(&search);
	return 0;
}
