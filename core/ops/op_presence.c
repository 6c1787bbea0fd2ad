/* presence, connections, disconnect, watch — who is connected, live. */
#include "app.h"
#include "events.h"
#include "hub.h"
#include "log.h"
#include "ops.h"
#include "store.h"

/* Answer {"user","connected","connections"}. */
static json_t *
presence_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true);
	json_t *all = NULL;
	if (user == NULL)
		return NULL;
	/* Every node's, where there are several (the store knows); else this hub's. */
	int rc = store_presence(ctx->app->store, user, ctx->now, &all);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "presence could not be read");
	json_int_t n = rc > 0 ? json_integer_value(json_object_get(json_object_get(all, "users"),
	    user)) : hub_presence(ctx->app->hub, user);
	json_decref(all);
	return json_pack("{s:s, s:b, s:I}", "user", user, "connected", n > 0, "connections", n);
}

static json_t *
connections_run(struct op_ctx *ctx, json_t *a)
{
	json_t *all = NULL, *here = hub_connections(ctx->app->hub), *n;
	const char *u;
	(void)a;
	int rc = store_presence(ctx->app->store, NULL, ctx->now, &all);
	if (rc <= 0) {
		if (rc < 0) {
			json_decref(here);
			return op_fail(ctx, 500, "internal", "presence could not be read");
		}
		return here;
	}
	/* Users on every node; the mailbox streams are this node's own. */
	json_int_t total = json_integer_value(json_object_get(here, "mailbox"));
	json_object_foreach(json_object_get(all, "users"), u, n)
		total += json_integer_value(n);
	json_object_set(here, "users", json_object_get(all, "users"));
	json_object_set_new(here, "total", json_integer(total));
	json_decref(all);
	return here;
}

/* Close every connection of the user; answers {"user","closed":N}. */
static json_t *
disconnect_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true);
	const char *reason = json_string_value(json_object_get(a, "reason"));
	if (user == NULL || (reason != NULL && !op_check_text(ctx, "reason", reason, 100)))
		return NULL;
	int n = hub_disconnect(ctx->app->hub, user, reason);
	/* And on every other node (PostgreSQL; one node: nothing to tell). */
	json_t *why = json_pack("{s:s?}", "reason", reason);
	int told = store_broadcast(ctx->app->store, EVENT_DISCONNECT, user, why);
	json_decref(why);
	if (told < 0)
		return op_fail(ctx, 503, "unavailable", "closed here (%d), but the other nodes "
		    "could not be told", n);
	log_info("user disconnected", "user=%s connections=%d", user, n);
	return json_pack("{s:s, s:i}", "user", user, "closed", n);
}

/* The first answer of a watch; the control socket then streams events (OP_STREAM). */
static json_t *
watch_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = json_string_value(json_object_get(a, "user"));
	if (user != NULL && !op_check_user(ctx, "user", user))
		return NULL;
	return json_pack("{s:b, s:s?}", "watching", 1, "user", user);
}

const struct op_impl op_presence_impl = {.op = &op_presence, .fn = presence_run};
const struct op_impl op_connections_impl = {.op = &op_connections, .fn = connections_run};
const struct op_impl op_disconnect_impl = {.op = &op_disconnect, .fn = disconnect_run};
const struct op_impl op_watch_impl = {.op = &op_watch, .fn = watch_run};
