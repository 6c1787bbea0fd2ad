/* cancel — withdraw a scheduled notification before it is due. */
#include "app.h"
#include "log.h"
#include "ops.h"
#include "store.h"

/* Cancel scheduled notification id (of user, when not NULL); the result or NULL with ctx->err. */
static json_t *
cancel_scheduled(struct op_ctx *ctx, const char *user, int64_t id)
{
	bool too_late = false;
	int64_t as = 0;
	int rc = store_notification_cancel(ctx->app->store, user, id, &too_late, &as);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the notification could not be cancelled");
	if (too_late && as > 0)
		return op_fail(ctx, 409, "already_delivered", "notification %lld is no longer "
		    "scheduled: it was delivered as notification %lld (delete that instead)",
		    (long long)id, (long long)as);
	if (too_late)
		return op_fail(ctx, 409, "already_delivered", "notification %lld is no longer "
		    "scheduled: it has been delivered (delete it instead)", (long long)id);
	if (rc == 0)
		return op_fail(ctx, 404, "not_found", "no notification %lld%s%s", (long long)id,
		    user ? " for user " : "", user ? user : "");
	log_info("notification cancelled", "id=%lld", (long long)id);
	return json_pack("{s:I, s:b}", "id", (json_int_t)id, "cancelled", 1);
}

/* Cancel it: {"id":ID,"cancelled":true}; 409 once it is due. */
static json_t *
cancel_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, false);
	if (user == NULL && ctx->err.status != 0)
		return NULL;
	if (ctx->as_user != NULL)
		return op_fail(ctx, 403, "forbidden", "a user token may not cancel sends");
	return cancel_scheduled(ctx, user, json_integer_value(json_object_get(a, "id")));
}

const struct op_impl op_cancel_impl = {.op = &op_cancel, .fn = cancel_run};
