/* delete — remove a notification for good. */
#include <string.h>

#include "app.h"
#include "log.h"
#include "ops.h"
#include "store.h"

static const struct op_arg delete_args[] = {
	{"id", ARG_ID, ARG_REQUIRED | ARG_POSITIONAL, "ID", "notification id"},
	{"user", ARG_STRING, 0, "USER", "only if it belongs to this user"},
	{NULL, 0, 0, NULL, NULL},
};

/* Delete it; answers {"id":ID,"deleted":true}. */
static json_t *
delete_run(struct op_ctx *ctx, json_t *a)
{
	json_int_t id = json_integer_value(json_object_get(a, "id"));
	const char *user = op_user_arg(ctx, a, false);
	json_t *n = NULL;

	if (user == NULL && ctx->err.status != 0)
		return NULL;
	/* Who owned it, for the log; and its id, if id is the one it was
	 * scheduled with. */
	int rc = store_notification_get(ctx->app->store, id, &n);
	const char *owner = rc > 0 ? json_string_value(json_object_get(n, "user")) : NULL;
	json_int_t nid = rc > 0 ? json_integer_value(json_object_get(n, "id")) : id;
	/* One not due yet is cancelled: withdrawn with its deliveries, announced to no one. */
	if (rc > 0 && op_not_due(ctx, n) && (user == NULL || strcmp(user, owner) == 0)) {
		/* Not there yet for its user: a user token finds nothing to delete. */
		if (ctx->as_user != NULL) {
			json_decref(n);
			return op_fail(ctx, 404, "not_found", "no notification %lld for user %s",
			    (long long)id, user);
		}
		json_t *r = op_cancel_scheduled(ctx, user ? user : owner, nid);
		if (r != NULL || ctx->err.status != 409) {
			json_decref(n);
			return r;
		}
		/* Fell due meanwhile: delete it, by the id it was released with. */
		ctx->err = (struct op_error){0};
		json_t *m = NULL;
		if (store_notification_get(ctx->app->store, id, &m) > 0)
			nid = json_integer_value(json_object_get(m, "id"));
		json_decref(m);
	}
	if (rc > 0)
		rc = store_notification_delete(ctx->app->store, user ? user : owner, nid, ctx->now);
	if (rc == 0) {
		json_decref(n);
		return op_fail(ctx, 404, "not_found", "no notification %lld%s%s", (long long)id,
		    user ? " for user " : "", user ? user : "");
	}
	if (rc < 0) {
		json_decref(n);
		return op_fail(ctx, 500, "internal", "the notification could not be deleted");
	}
	log_info("notification deleted", "id=%lld user=%s", (long long)nid, owner);
	json_decref(n);
	return json_pack("{s:I, s:b}", "id", nid, "deleted", 1);
}

const struct op op_delete = {"delete", "delete a notification", delete_args, delete_run, 0, NULL};
