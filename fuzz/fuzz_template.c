/*
 * fuzz_template — the template compiler and renderer: a template, then
 * (after a NUL byte) the JSON data it is rendered for, as text and HTML.
 */
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "template.h"
#include "util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *src = (const char *)data, *nul = memchr(src, '\0', size);
	size_t tlen = nul ? (size_t)(nul - src) : size;
	json_error_t jerr;
	json_t *ctx = nul ? json_load_bounded(nul + 1, size - tlen - 1, 0, &jerr, NULL) : NULL;
	struct tpl *t;
	char err[256];
	if (ctx == NULL)
		ctx = json_pack("{s:s, s:[{s:s},{s:i}], s:{s:{s:b}}}", "name", "x", "items",
		    "name", "a", "n", 2, "user", "profile", "ok", 1);
	if (tpl_compile(src, tlen, "fuzz", &t, err, sizeof err) == 0) {
		json_t *stack[2] = {ctx, ctx};
		struct buf out;
		buf_init(&out);
		tpl_render(t, stack, 2, false, &out);
		buf_reset(&out);
		tpl_render(t, stack, 1, true, &out);
		tpl_uses(t, "user");
		buf_free(&out);
		tpl_free(t);
	} else if (err[0] == '\0') {
		__builtin_trap();	/* refused without saying where */
	}
	json_decref(ctx);
	return 0;
}
