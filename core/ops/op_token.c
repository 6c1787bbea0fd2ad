/* token — mint a user token (JWT HS256) for clients acting as one user. */
#include <stdlib.h>

#include "app.h"
#include "auth.h"
#include "log.h"
#include "ops.h"
#include "util.h"

/* Answer {"token","user","expires_at"}. */
static json_t *
token_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true), *ttl_s;
	int64_t ttl = 3600000, expires;
	char *token = NULL, ts[40];

	if (user == NULL)
		return NULL;
	ttl_s = json_string_value(json_object_get(a, "ttl"));
	if (ttl_s != NULL && (!duration_parse(ttl_s, &ttl) || ttl < 1000 ||
	    ttl > 366LL * 86400000))
		return op_fail(ctx, 422, "invalid_field", "'ttl' must be from 1s to 366d");
	if (auth_token_mint(ctx->app->auth, user, ctx->now, ttl, &token, &expires) != 0)
		return op_fail(ctx, 500, "internal", "the token could not be signed");
	time_format_rfc3339(ts, sizeof ts, expires);
	log_info("token minted", "user=%s expires=%s", user, ts);
	json_t *r = json_pack("{s:s, s:s, s:s}", "token", token, "user", user, "expires_at", ts);
	free(token);
	return r;
}

const struct op_impl op_token_impl = {.op = &op_token, .fn = token_run};
