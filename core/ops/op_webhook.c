/* webhook add, list, rm, test — the application's endpoints for notifications. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "ops.h"
#include "outbound.h"
#include "store.h"
#include "util.h"
#include "webhook.h"

#define URL_MAX 2048

/*
 * The names of a filter as a JSON array's text, each checked: given as
 * several entries or as one "a,b"; NULL (all) when absent or empty.
 */
static bool
filter(struct op_ctx *ctx, json_t *a, const char *field, char **out)
{
	json_t *v = json_object_get(a, field), *e, *all = json_array();
	size_t i;
	*out = NULL;
	json_array_foreach(v, i, e) {
		char *copy = strdup(json_string_value(e)), *save = NULL;
		for (char *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
			if (strcmp(field, "users") == 0 ? !op_check_user(ctx, field, w) :
			    !op_check_name(ctx, field, w)) {
				free(copy);
				json_decref(all);
				return false;
			}
			json_array_append_new(all, json_string(w));
		}
		free(copy);
	}
	if (json_array_size(all) > 0)
		*out = json_dumps(all, JSON_COMPACT);
	json_decref(all);
	return true;
}

static json_t *
add_run(struct op_ctx *ctx, json_t *a)
{
	const char *url = json_string_value(json_object_get(a, "url"));
	const char *format = json_string_value(json_object_get(a, "format"));
	const char *given = json_string_value(json_object_get(a, "secret"));
	char err[300], *types = NULL, *users = NULL, *secret = NULL;
	json_t *r = NULL;
	int64_t id;

	if (format == NULL)
		format = "json";
	if (strlen(url) > URL_MAX)
		return op_fail(ctx, 422, "invalid_field", "'url' is longer than %d bytes", URL_MAX);
	if (url_check(url, ctx->app->cfg->webhook_allow_private != 0, err, sizeof err) != 0)
		return op_fail(ctx, 422, "invalid_field", "'url': %s", err);
	if (strcmp(format, "json") != 0 && strcmp(format, "slack") != 0)
		return op_fail(ctx, 422, "invalid_field", "'format' must be json or slack");
	if (given != NULL && !webhook_secret_valid(given))
		return op_fail(ctx, 422, "invalid_field", "'secret' must be whsec_ and base64 of "
		    "16 bytes or more, or any 16 bytes or more");
	if (!filter(ctx, a, "types", &types) || !filter(ctx, a, "users", &users))
		goto done;
	secret = given ? strdup(given) : webhook_secret_new();
	if (secret == NULL) {
		op_fail(ctx, 500, "internal", "no random bytes for a secret");
		goto done;
	}
	struct webhook_new w = {url, secret, format, types, users};
	if (store_webhook_add(ctx->app->store, &w, ctx->now, &id) < 0) {
		op_fail(ctx, 500, "internal", "the endpoint could not be stored");
		goto done;
	}
	if (store_webhook_get(ctx->app->store, id, &r) <= 0) {
		op_fail(ctx, 500, "internal", "the endpoint could not be read back");
		goto done;
	}
	/* The secret is in this answer, and never again. */
	if (given != NULL)
		json_object_del(r, "secret");
	ctx->status = 201;
	log_info("webhook added", "webhook=%lld format=%s", (long long)id, format);
done:
	free(types);
	free(users);
	free(secret);
	return r;
}

static json_t *
list_run(struct op_ctx *ctx, json_t *a)
{
	json_t *hooks = NULL;
	(void)a;
	if (store_webhook_list(ctx->app->store, &hooks) < 0)
		return op_fail(ctx, 500, "internal", "the endpoints could not be read");
	return json_pack("{s:o}", "webhooks", hooks);
}

static json_t *
rm_run(struct op_ctx *ctx, json_t *a)
{
	int64_t id = json_integer_value(json_object_get(a, "id"));
	int rc = store_webhook_remove(ctx->app->store, id);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the endpoint could not be removed");
	if (rc == 0)
		return op_fail(ctx, 404, "not_found", "no webhook endpoint %lld", (long long)id);
	log_info("webhook removed", "webhook=%lld", (long long)id);
	return json_pack("{s:I, s:b}", "id", (json_int_t)id, "removed", 1);
}

/* A signed call now, as a delivery would make it, whose answer is reported, not retried. */
static json_t *
test_run(struct op_ctx *ctx, json_t *a)
{
	const struct config *cfg = ctx->app->cfg;
	int64_t id = json_integer_value(json_object_get(a, "id"));
	json_t *hook = NULL, *r = NULL;
	char mid[64], ts[40], *body = NULL;
	struct http_guard g = {cfg->webhook_allow_private != 0, false};
	struct http_result res;
	CURL *curl = NULL;

	int rc = store_webhook_get(ctx->app->store, id, &hook);
	if (rc <= 0)
		return rc < 0 ? op_fail(ctx, 500, "internal", "the endpoint could not be read") :
		    op_fail(ctx, 404, "not_found", "no webhook endpoint %lld", (long long)id);
	snprintf(mid, sizeof mid, "msg_notifyd_test_%lld_%lld", (long long)id,
	    (long long)ctx->now);
	time_format_rfc3339(ts, sizeof ts, ctx->now);
	json_t *n = json_pack("{s:s, s:s, s:s, s:s}", "type", "webhook.test", "title",
	    "notifyd test", "body", "This endpoint is set up right.", "created_at", ts);
	body = webhook_body(n, json_string_value(json_object_get(hook, "format")), "webhook.test",
	    ctx->now);
	json_decref(n);
	if (body == NULL || (curl = http_handle(&g)) == NULL) {
		op_fail(ctx, 500, "internal", "the call could not be made");
		goto done;
	}
	webhook_call(curl, &g, hook, mid, body, ctx->now, cfg->webhook_timeout, &res);
	store_webhook_result(ctx->app->store, id, (int)res.status, res.ok ? NULL : res.error,
	    time_now_ms(), cfg->webhook_disable_after, &(bool){false});
	log_info("webhook tested", "webhook=%lld status=%ld", (long long)id, res.status);
	r = json_pack("{s:I, s:b, s:o, s:o}", "id", (json_int_t)id, "ok", res.ok,
	    "status", res.status ? json_integer(res.status) : json_null(),
	    "error", res.ok ? json_null() : json_string(res.error));
done:
	if (curl)
		curl_easy_cleanup(curl);
	json_decref(hook);
	free(body);
	return r;
}

const struct op_impl op_webhook_add_impl = {.op = &op_webhook_add, .fn = add_run};
const struct op_impl op_webhook_list_impl = {.op = &op_webhook_list, .fn = list_run};
const struct op_impl op_webhook_rm_impl = {.op = &op_webhook_rm, .fn = rm_run};
const struct op_impl op_webhook_test_impl = {.op = &op_webhook_test, .fn = test_run};
