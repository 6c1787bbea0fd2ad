/* push key, push subscribe, push list, push rm — browsers a user gets Web Push in. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "ops.h"
#include "store.h"
#include "text.h"
#include "util.h"
#include "webhook.h"
#include "webpush.h"

#define ENDPOINT_MAX	2048
#define SHOWN		48	/* of an endpoint in a list: it is a capability, in part */

static json_t *
key_run(struct op_ctx *ctx, json_t *a)
{
	(void)a;
	const char *key = vapid_public_key(ctx->app->vapid);
	if (key == NULL)
		return op_fail(ctx, 503, "unavailable", "there is no VAPID key: see the log");
	return json_pack("{s:s}", "public_key", key);
}

/*
 * A base64url key of a subscription that decodes to exactly len bytes;
 * padding, which some clients add, is dropped. Its length without it, or 0.
 */
static size_t
key_ok(struct op_ctx *ctx, const char *name, const char *v, size_t len, unsigned char *out)
{
	size_t l = v ? strlen(v) : 0;
	while (l > 0 && v[l - 1] == '=')
		l--;
	if (l == 0 || l > 2 * len || base64url_decode(v, l, out) != (ssize_t)len) {
		op_fail(ctx, 422, "invalid_field", "'keys.%s' must be base64url of %zu bytes", name,
		    len);
		return 0;
	}
	return l;
}

static json_t *
subscribe_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true);
	const char *endpoint = json_string_value(json_object_get(a, "endpoint"));
	json_t *keys = json_object_get(a, "keys");
	const char *p256dh = json_string_value(json_object_get(keys, "p256dh"));
	const char *auth = json_string_value(json_object_get(keys, "auth"));
	unsigned char k[2 * WEBPUSH_KEY_LEN], au[2 * WEBPUSH_AUTH_LEN];
	char err[300];
	int64_t id;
	bool created;

	if (user == NULL)
		return NULL;
	if (strlen(endpoint) > ENDPOINT_MAX)
		return op_fail(ctx, 422, "invalid_field", "'endpoint' is longer than %d bytes",
		    ENDPOINT_MAX);
	if (url_check(endpoint, ctx->app->cfg->push_allow_private != 0, err, sizeof err) != 0)
		return op_fail(ctx, 422, "invalid_field", "'endpoint': %s", err);
	size_t klen = key_ok(ctx, "p256dh", p256dh, WEBPUSH_KEY_LEN, k);
	size_t alen = klen ? key_ok(ctx, "auth", auth, WEBPUSH_AUTH_LEN, au) : 0;
	if (alen == 0)
		return NULL;
	if (!webpush_key_valid(k, WEBPUSH_KEY_LEN))
		return op_fail(ctx, 422, "invalid_field", "'keys.p256dh' is not a P-256 public key");
	/* Stored as the worker decodes them: without padding. */
	char p[2 * WEBPUSH_KEY_LEN + 1], s[2 * WEBPUSH_AUTH_LEN + 1];
	snprintf(p, sizeof p, "%.*s", (int)klen, p256dh);
	snprintf(s, sizeof s, "%.*s", (int)alen, auth);
	int64_t max = ctx->app->cfg->push_max_per_user;
	int rc = store_push_subscribe(ctx->app->store, user, endpoint, p, s, max, ctx->now, &id,
	    &created);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the subscription could not be stored");
	if (rc == 0)
		return op_fail(ctx, 409, "too_many_subscriptions", "'%s' has %lld push "
		    "subscriptions, the most [push] max_per_user allows; remove one first",
		    user, (long long)max);
	ctx->status = created ? 201 : 200;
	log_info(created ? "push subscription added" : "push subscription renewed",
	    "subscription=%lld user=%s", (long long)id, user);
	return json_pack("{s:I, s:s, s:b}", "id", (json_int_t)id, "user", user, "created",
	    created);
}

static json_t *
list_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true);
	json_t *subs = NULL, *s;
	size_t i;
	if (user == NULL)
		return NULL;
	if (store_push_list(ctx->app->store, user, &subs) < 0)
		return op_fail(ctx, 500, "internal", "the subscriptions could not be read");
	json_array_foreach(subs, i, s) {
		const char *e = json_string_value(json_object_get(s, "endpoint"));
		if (e != NULL && strlen(e) > SHOWN) {
			char cut[SHOWN + 8];
			snprintf(cut, sizeof cut, "%.*s...", SHOWN, e);
			json_object_set_new(s, "endpoint", json_string(cut));
		}
	}
	return json_pack("{s:s, s:o}", "user", user, "subscriptions", subs);
}

static json_t *
rm_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true);
	int64_t id = json_integer_value(json_object_get(a, "id"));
	if (user == NULL)
		return NULL;
	int rc = store_push_remove(ctx->app->store, user, id);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the subscription could not be removed");
	if (rc == 0)
		return op_fail(ctx, 404, "not_found", "%s has no push subscription %lld", user,
		    (long long)id);
	log_info("push subscription removed", "subscription=%lld user=%s", (long long)id, user);
	return json_pack("{s:I, s:b}", "id", (json_int_t)id, "removed", 1);
}

const struct op_impl op_push_key_impl = {.op = &op_push_key, .fn = key_run};
const struct op_impl op_push_subscribe_impl = {.op = &op_push_subscribe, .fn = subscribe_run};
const struct op_impl op_push_list_impl = {.op = &op_push_list, .fn = list_run};
const struct op_impl op_push_rm_impl = {.op = &op_push_rm, .fn = rm_run};
