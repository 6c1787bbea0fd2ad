/* ping — is notifyd there, and which one. */
#include "app.h"
#include "ops.h"
#include "proto.h"
#include "store.h"
#include "util.h"

/* Answer with the version, the protocol and whether the database answers. */
static json_t *
ping(struct op_ctx *ctx, json_t *a)
{
	char now[40];
	(void)a;
	if (store_ping(ctx->app->store) <= 0)
		return op_fail(ctx, 503, "unavailable", "the database is not answering");
	time_format_rfc3339(now, sizeof now, ctx->now);
	return json_pack("{s:b, s:s, s:i, s:s}", "pong", 1, "version",
	    NOTIFYD_VERSION, "protocol", PROTO_VERSION, "server_time", now);
}

const struct op_impl op_ping_impl = {.op = &op_ping, .fn = ping};
