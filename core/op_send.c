/* send — put a notification in a user's inbox. */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "log.h"
#include "ops.h"
#include "store.h"
#include "util.h"

static const struct op_arg send_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED, "USER", "recipient's user id"},
	{"type", ARG_STRING, ARG_REQUIRED, "TYPE", "notification type, e.g. order_shipped"},
	{"title", ARG_STRING, 0, "TEXT", "title"},
	{"body", ARG_STRING, 0, "TEXT", "body text"},
	{"data", ARG_OBJECT, 0, "K=V", "data for templates and clients (K:=JSON for non-strings)"},
	{"priority", ARG_STRING, 0, "PRIORITY", "low, normal (default), high or urgent"},
	{"category", ARG_STRING, 0, "NAME", "category, for filtering"},
	{"url", ARG_STRING, 0, "URL", "where the notification leads (http, https or /path)"},
	{"key", ARG_STRING, 0, "KEY", "idempotency key: a repeat returns the first and creates nothing"},
	{NULL, 0, 0, NULL, NULL},
};

#define MAX_TITLE	1024
#define MAX_BODY	(64 * 1024)
#define MAX_DATA	(64 * 1024)
#define MAX_URL		2048
#define MAX_KEY		256

/* A string argument, or NULL when absent or null. */
static const char *
str(json_t *args, const char *name)
{
	return json_string_value(json_object_get(args, name));
}

/* Check the fields of a send; true when all are acceptable. */
static bool
check(struct op_ctx *ctx, json_t *args, struct notification_new *n)
{
	n->type = str(args, "type");
	n->title = str(args, "title");
	n->body = str(args, "body");
	n->priority = str(args, "priority");
	n->category = str(args, "category");
	n->url = str(args, "url");
	n->key = str(args, "key");

	if (!op_check_name(ctx, "type", n->type))
		return false;
	if (n->category != NULL && !op_check_name(ctx, "category", n->category))
		return false;
	if (n->title != NULL && !op_check_text(ctx, "title", n->title, MAX_TITLE))
		return false;
	if (n->body != NULL && !op_check_text(ctx, "body", n->body, MAX_BODY))
		return false;
	if (n->key != NULL && (!op_check_text(ctx, "key", n->key, MAX_KEY) || *n->key == '\0')) {
		if (ctx->err.status == 0)
			op_fail(ctx, 422, "invalid_field", "'key' must not be empty");
		return false;
	}
	if (n->priority != NULL && strcmp(n->priority, "low") != 0 &&
	    strcmp(n->priority, "normal") != 0 && strcmp(n->priority, "high") != 0 &&
	    strcmp(n->priority, "urgent") != 0) {
		op_fail(ctx, 422, "invalid_field",
		    "'priority' must be low, normal, high or urgent");
		return false;
	}
	if (n->url != NULL && (!op_check_text(ctx, "url", n->url, MAX_URL) ||
	    !(strncmp(n->url, "https://", 8) == 0 || strncmp(n->url, "http://", 7) == 0 ||
	    (n->url[0] == '/' && n->url[1] != '/')) || strpbrk(n->url, " \t\r\n") != NULL)) {
		if (ctx->err.status == 0)
			op_fail(ctx, 422, "invalid_field",
			    "'url' must be an http or https URL or a /path");
		return false;
	}
	return true;
}

/* Store the notification and answer with it (201), or the earlier one with the same key (200). */
static json_t *
send_run(struct op_ctx *ctx, json_t *args)
{
	struct notification_new n = {0};
	json_t *out = NULL, *data = json_object_get(args, "data");
	char *data_text = NULL;
	bool created;

	n.user = op_user_arg(ctx, args, true);
	if (n.user == NULL)
		return NULL;
	if (ctx->as_user != NULL)
		return op_fail(ctx, 403, "forbidden", "a user token may not send");
	if (!check(ctx, args, &n))
		return NULL;
	if (data != NULL && !json_is_null(data)) {
		data_text = json_dumps(data, JSON_COMPACT);
		if (data_text == NULL || strlen(data_text) > MAX_DATA) {
			free(data_text);
			return op_fail(ctx, 422, "invalid_field",
			    "'data' is larger than %d bytes as JSON", MAX_DATA);
		}
		n.data = data_text;
	}
	int rc = store_notifications_create(ctx->app->store, &n, 1, ctx->now, &out, &created);
	free(data_text);
	if (rc <= 0)
		return op_fail(ctx, 500, "internal", "the notification could not be stored");
	json_int_t id = json_integer_value(json_object_get(out, "id"));
	if (created) {
		ctx->status = 201;
		log_info("notification created", "id=%lld user=%s type=%s",
		    (long long)id, n.user, n.type);
	} else {
		log_info("notification exists", "id=%lld user=%s", (long long)id, n.user);
	}
	return out;
}

const struct op op_send = {"send", "send a notification to a user", send_args, send_run, 0};
