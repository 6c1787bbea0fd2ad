/* delete — remove a notification for good. */
#include <stdlib.h>

#include "app.h"
#include "log.h"
#include "ops.h"
#include "store.h"

/*
 * Delete it: {"id":ID,"deleted":true}, ID the one it has (it may be asked
 * for by the id its send returned). One still scheduled is cancelled
 * instead, {"id":ID,"cancelled":true}; a user token does not see those.
 */
static json_t *
delete_run(struct op_ctx *ctx, json_t *a)
{
	json_int_t id = json_integer_value(json_object_get(a, "id"));
	const char *user = op_user_arg(ctx, a, false);
	struct deleted d;

	if (user == NULL && ctx->err.status != 0)
		return NULL;
	int rc = store_notification_delete(ctx->app->store, user, id, ctx->as_user == NULL,
	    ctx->now, &d);
	if (rc == 0)
		return op_fail(ctx, 404, "not_found", "no notification %lld%s%s", (long long)id,
		    user ? " for user " : "", user ? user : "");
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the notification could not be deleted");
	log_info(d.cancelled ? "notification cancelled" : "notification deleted",
	    "id=%lld user=%s", (long long)d.id, d.user);
	free(d.user);
	return json_pack("{s:I, s:b}", "id", (json_int_t)d.id,
	    d.cancelled ? "cancelled" : "deleted", 1);
}

const struct op_impl op_delete_impl = {.op = &op_delete, .fn = delete_run};
