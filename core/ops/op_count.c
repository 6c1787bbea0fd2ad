/* count — how many unread notifications a user has. */
#include "app.h"
#include "ops.h"
#include "store.h"

/* Answer {"unread_count":N}. */
static json_t *
count_run(struct op_ctx *ctx, json_t *a)
{
	int64_t n = 0;
	const char *user = op_user_arg(ctx, a, true);
	if (user == NULL)
		return NULL;
	int rc = store_unread_count(ctx->app->store, user, ctx->now, &n);
	if (rc == 0 && op_own_new_user(ctx, user))
		return json_pack("{s:i}", "unread_count", 0);
	if (rc == 0)
		return op_fail(ctx, 404, "user_not_found", "no user '%s'", user);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the count could not be read");
	return json_pack("{s:I}", "unread_count", (json_int_t)n);
}

const struct op_impl op_count_impl = {.op = &op_count, .fn = count_run};
