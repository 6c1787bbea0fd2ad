/* presence, connections, disconnect, watch — who is connected, live. */
#include "app.h"
#include "hub.h"
#include "log.h"
#include "ops.h"

static const struct op_arg presence_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "USER", "the user"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg connections_args[] = {
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg disconnect_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "USER", "the user"},
	{"reason", ARG_STRING, 0, "TEXT", "told to the clients before they are closed"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg watch_args[] = {
	{"user", ARG_STRING, 0, "USER", "only this user's events"},
	{NULL, 0, 0, NULL, NULL},
};

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

const struct op op_presence = {"presence", "is a user connected, and how many times",
    presence_args, presence_run, OP_ADMIN, NULL};
const struct op op_connections = {"connections", "open connections, by user and in all",
    connections_args, connections_run, OP_ADMIN, NULL};
const struct op op_disconnect = {"disconnect", "close every connection of a user",
    disconnect_args, disconnect_run, OP_ADMIN, NULL};
const struct op op_watch = {"watch", "stream events (notifications, reads, ...) as they happen",
    watch_args, watch_run, OP_ADMIN | OP_STREAM, NULL};
