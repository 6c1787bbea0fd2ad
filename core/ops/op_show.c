/* show — one notification. */
#include <string.h>

#include "app.h"
#include "ops.h"
#include "store.h"

/* Answer with the notification; one of another user is as good as absent. */
static json_t *
show_run(struct op_ctx *ctx, json_t *a)
{
	json_int_t id = json_integer_value(json_object_get(a, "id"));
	const char *user = op_user_arg(ctx, a, false);
	json_t *n = NULL;

	if (user == NULL && ctx->err.status != 0)
		return NULL;
	int rc = store_notification_get(ctx->app->store, id, &n);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the notification could not be read");
	if (rc > 0 && user != NULL) {
		const char *owner = json_string_value(json_object_get(n, "user"));
		/* A scheduled one is not there yet for its user. */
		if (strcmp(owner, user) != 0 || op_not_due(ctx, n))
			rc = 0;
	}
	if (rc == 0) {
		json_decref(n);
		return op_fail(ctx, 404, "not_found", "no notification %lld%s%s",
		    (long long)id, user ? " for user " : "", user ? user : "");
	}
	if (json_is_true(json_object_get(a, "deliveries"))) {
		json_t *d = NULL;
		json_int_t nid = json_integer_value(json_object_get(n, "id"));
		if (store_deliveries_of(ctx->app->store, nid, &d) < 0) {
			json_decref(n);
			return op_fail(ctx, 500, "internal", "the deliveries could not be read");
		}
		json_object_set_new(n, "deliveries", d);
	}
	return n;
}

const struct op_impl op_show_impl = {.op = &op_show, .fn = show_run};
