/* key create, key list, key revoke — API keys for applications and admins. */
#include <string.h>

#include "app.h"
#include "auth.h"
#include "log.h"
#include "ops.h"
#include "store.h"
#include "util.h"

/* Make a key; the answer is the only place the key itself ever appears. */
static json_t *
create_run(struct op_ctx *ctx, json_t *a)
{
	const char *name = json_string_value(json_object_get(a, "name"));
	char key[64], ts[40];
	unsigned char hash[32];
	int64_t id;

	if (!op_check_name(ctx, "name", name))
		return NULL;
	if (auth_key_new(key, hash) != 0)
		return op_fail(ctx, 500, "internal", "no random bytes for a key");
	int rc = store_key_create(ctx->app->store, name, hash, ctx->now, &id);
	if (rc == 0)
		return op_fail(ctx, 409, "key_exists", "a key named '%s' exists; revoke it first", name);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the key could not be stored");
	ctx->status = 201;
	log_info("api key created", "id=%lld name=%s", (long long)id, name);
	time_format_rfc3339(ts, sizeof ts, ctx->now);
	json_t *r = json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)id, "name", name,
	    "key", key, "created_at", ts);
	memset(key, 0, sizeof key);
	return r;
}

static json_t *
list_run(struct op_ctx *ctx, json_t *a)
{
	json_t *out = NULL;
	(void)a;
	if (store_key_list(ctx->app->store, &out) <= 0)
		return op_fail(ctx, 500, "internal", "the keys could not be read");
	return out;
}

/* Revoke by id (all digits) or by name. */
static json_t *
revoke_run(struct op_ctx *ctx, json_t *a)
{
	const char *key = json_string_value(json_object_get(a, "key"));
	int64_t id = 0;
	bool by_id = parse_int64(key, 1, INT64_MAX, &id);
	int rc = store_key_revoke(ctx->app->store, id, by_id ? NULL : key, ctx->now);
	if (rc == 0)
		return op_fail(ctx, 404, "not_found", "no live key '%s'", key);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the key could not be revoked");
	log_info("api key revoked", "key=%s", key);
	return json_pack("{s:s, s:b}", "key", key, "revoked", 1);
}

const struct op_impl op_key_create_impl = {.op = &op_key_create, .fn = create_run};
const struct op_impl op_key_list_impl = {.op = &op_key_list, .fn = list_run};
const struct op_impl op_key_revoke_impl = {.op = &op_key_revoke, .fn = revoke_run};
