/*
 * fuzz_ops — the operations' argument checking and handlers, as a control
 * client or REST body reaches them: {"cmd": NAME, "args": {...}} through
 * op_dispatch, as an admin and as a user token. digest runs too.
 */
#include <string.h>

#include <jansson.h>

#include "app.h"
#include "fuzz.h"
#include "ops.h"
#include "util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct app *app = fuzz_app();
	json_error_t err;
	json_t *req = json_load_bounded((const char *)data, size, JSON_REJECT_DUPLICATES, &err,
	    NULL);
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	json_t *args = json_object_get(req, "args");
	/*
	 * watch streams and mail.wait waits for mail (30 s): by design, not
	 * worth a run. backup makes directories wherever it is told.
	 */
	if (cmd != NULL && strcmp(cmd, "watch") != 0 && strcmp(cmd, "mail.wait") != 0 &&
	    strcmp(cmd, "backup") != 0) {
		for (int as_user = 0; as_user < 2; as_user++) {
			struct op_ctx ctx = {.app = app, .as_user = as_user ? "fuzz-user" : NULL};
			json_t *r = op_dispatch(&ctx, cmd, json_is_object(args) ? args : NULL);
			if (r == NULL && (ctx.err.status < 400 || ctx.err.code[0] == '\0'))
				__builtin_trap();	/* a failure must say what it is */
			json_decref(r);
		}
	}
	json_decref(req);
	return 0;
}
