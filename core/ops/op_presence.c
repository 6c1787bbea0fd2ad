/* presence, connections, disconnect, watch — who is connected, live. */
#include "app.h"
#include "hub.h"
#include "log.h"
#include "ops.h"

/* Answer {"user","connected","connections"}. */
static json_t *
presence_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true);
	if (user == NULL)
		return NULL;
	int n = hub_presence(ctx->app->hub, user);
	return json_pack("{s:s, s:b, s:i}", "user", user, "connected", n > 0, "connections", n);
}

static json_t *
connections_run(struct op_ctx *ctx, json_t *a)
{
	(void)a;
	return hub_connections(ctx->app->hub);
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
