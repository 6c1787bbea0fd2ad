/*
 * fuzz_send — Mailpit's send API: a request (JSON, bounded as the HTTP
 * layer bounds it) written as MIME, then read back as the sink reads
 * what it stores.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "mime.h"
#include "util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	bool deep;
	json_t *req = json_load_bounded((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr,
	    &deep);
	if (!json_is_object(req)) {
		json_decref(req);
		return 0;
	}
	struct buf out;
	json_t *rcpts = json_array();
	char err[256] = "", *from = NULL;
	buf_init(&out);
	if (mime_build(req, 1764633600000, "fuzz.example", &out, rcpts, &from, err, sizeof err)) {
		if (from == NULL || out.len == 0 || !mime_depth_ok(out.data, out.len, MIME_MAX_DEPTH))
			__builtin_trap();	/* built, yet nothing to store */
		json_t *sum = mime_summary(out.data, out.len, rcpts, NULL);
		json_decref(mime_message(out.data, out.len, sum));
		json_decref(sum);
	} else if (*err == '\0') {
		__builtin_trap();	/* refused without saying why */
	}
	free(from);
	buf_free(&out);
	json_decref(rcpts);
	json_decref(req);
	return 0;
}
