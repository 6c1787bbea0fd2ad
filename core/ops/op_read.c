/* read, unread, archive, unarchive — change the state of a user's notifications. */
#include <stdlib.h>

#include "app.h"
#include "log.h"
#include "ops.h"
#include "store.h"

static const char *const logs[] = {
	[MARK_READ] = "notifications read",
	[MARK_UNREAD] = "notifications unread",
	[MARK_ARCHIVED] = "notifications archived",
	[MARK_UNARCHIVED] = "notifications unarchived",
};

/* Change the ids of args; answers {"ids":[changed],"unread_count":N}. */
static json_t *
mark(struct op_ctx *ctx, json_t *a, enum mark how)
{
	const char *user = op_user_arg(ctx, a, true);
	json_t *ids = json_object_get(a, "ids"), *r = NULL, *v;
	size_t n = json_array_size(ids), i;
	int64_t missing = 0;

	if (user == NULL)
		return NULL;
	if (n == 0)
		return op_fail(ctx, 422, "invalid_field", "'ids' must name at least one notification");
	int known = store_user_exists(ctx->app->store, user);
	if (known == 0)
		return op_fail(ctx, 404, "user_not_found", "no user '%s'", user);
	if (known < 0)
		return op_fail(ctx, 500, "internal", "the user could not be read");
	int64_t *v_ids = calloc(n, sizeof *v_ids);
	if (v_ids == NULL)
		return op_fail(ctx, 500, "internal", "out of memory");
	json_array_foreach(ids, i, v)
		v_ids[i] = json_integer_value(v);
	int rc = store_notifications_mark(ctx->app->store, user, v_ids, n, how, ctx->now,
	    &r, &missing);
	free(v_ids);
	if (rc == 0)
		return op_fail(ctx, 404, "not_found", "no notification %lld for user %s",
		    (long long)missing, user);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the notifications could not be changed");
	log_info(logs[how], "user=%s changed=%zu", user, json_array_size(json_object_get(r, "ids")));
	return r;
}

/* Mark ids, or everything, read. */
static json_t *
read_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true);
	bool all = json_is_true(json_object_get(a, "all"));
	json_t *ids = json_object_get(a, "ids"), *r = NULL;

	if (user == NULL)
		return NULL;
	if (all == (ids != NULL && !json_is_null(ids)))
		return op_fail(ctx, 422, "invalid_field", "give either 'ids' or 'all', not %s",
		    all ? "both" : "neither");
	if (!all)
		return mark(ctx, a, MARK_READ);
	int rc = store_notifications_read_all(ctx->app->store, user, ctx->now, &r);
	if (rc == 0 && op_own_new_user(ctx, user))
		return json_pack("{s:i, s:i, s:i}", "up_to", 0, "marked", 0, "unread_count", 0);
	if (rc == 0)
		return op_fail(ctx, 404, "user_not_found", "no user '%s'", user);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the read state could not be changed");
	log_info("notifications read", "user=%s all=true up_to=%lld changed=%lld", user,
	    (long long)json_integer_value(json_object_get(r, "up_to")),
	    (long long)json_integer_value(json_object_get(r, "marked")));
	return r;
}

static json_t *
unread_run(struct op_ctx *ctx, json_t *a)
{
	return mark(ctx, a, MARK_UNREAD);
}

static json_t *
archive_run(struct op_ctx *ctx, json_t *a)
{
	return mark(ctx, a, MARK_ARCHIVED);
}

static json_t *
unarchive_run(struct op_ctx *ctx, json_t *a)
{
	return mark(ctx, a, MARK_UNARCHIVED);
}

const struct op_impl op_read_impl = {.op = &op_read, .fn = read_run};
const struct op_impl op_unread_impl = {.op = &op_unread, .fn = unread_run};
const struct op_impl op_archive_impl = {.op = &op_archive, .fn = archive_run};
const struct op_impl op_unarchive_impl = {.op = &op_unarchive, .fn = unarchive_run};
