/* list — a page of a user's inbox, newest first. */
#include "app.h"
#include "ops.h"
#include "store.h"

/* Answer {"notifications":[...],"next_before":ID|null,"unread_count":N}. */
static json_t *
list_run(struct op_ctx *ctx, json_t *a)
{
	struct notification_query q = {.limit = 50};
	json_t *v, *out = NULL;

	if ((q.user = op_user_arg(ctx, a, true)) == NULL)
		return NULL;
	if ((v = json_object_get(a, "limit")) != NULL && !json_is_null(v)) {
		if (json_integer_value(v) < 1 || json_integer_value(v) > 200)
			return op_fail(ctx, 422, "invalid_field", "'limit' must be from 1 to 200");
		q.limit = (int)json_integer_value(v);
	}
	q.before = json_integer_value(json_object_get(a, "before"));
	q.unread_only = json_is_true(json_object_get(a, "unread"));
	q.archived = json_is_true(json_object_get(a, "archived"));
	q.type = json_string_value(json_object_get(a, "type"));
	q.category = json_string_value(json_object_get(a, "category"));
	if (q.type != NULL && !op_check_name(ctx, "type", q.type))
		return NULL;
	if (q.category != NULL && !op_check_name(ctx, "category", q.category))
		return NULL;
	/* As text when the transport takes it: the hottest read there is. */
	int rc = ctx->text ? store_notification_list_text(ctx->app->store, &q, ctx->now, ctx->text) :
	    store_notification_list(ctx->app->store, &q, ctx->now, &out);
	if (rc > 0 && ctx->text)
		return json_null();
	if (rc == 0 && op_own_new_user(ctx, q.user))
		return json_pack("{s:[], s:n, s:i}", "notifications", "next_before", "unread_count", 0);
	if (rc == 0)
		return op_fail(ctx, 404, "user_not_found", "no user '%s'", q.user);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the inbox could not be read");
	return out;
}

const struct op_impl op_list_impl = {.op = &op_list, .fn = list_run};
