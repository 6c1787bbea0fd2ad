/* send — put a notification in a user's inbox. */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "log.h"
#include "ops.h"
#include "store.h"
#include "util.h"

static const struct op_arg send_args[] = {
	{"user", ARG_STRING, 0, "USER", "recipient's user id"},
	{"users", ARG_STRINGS, 0, "USER", "several recipients (up to 1000), instead of user"},
	{"topic", ARG_STRING, 0, "TOPIC", "every member of this topic, instead of user"},
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

#define MAX_RECIPIENTS 1000

/* The recipients of a send, as a new array of user ids, or NULL with ctx->err set. */
static json_t *
recipients(struct op_ctx *ctx, json_t *args)
{
	json_t *user = json_object_get(args, "user"), *users = json_object_get(args, "users");
	const char *topic = json_string_value(json_object_get(args, "topic"));
	int given = (user != NULL && !json_is_null(user)) +
	    (users != NULL && !json_is_null(users)) + (topic != NULL);
	json_t *list, *v;
	size_t i;

	if (ctx->as_user != NULL)
		return op_fail(ctx, 403, "forbidden", "a user token may not send");
	if (given != 1)
		return op_fail(ctx, 422, given ? "invalid_field" : "missing_field",
		    "give exactly one of 'user', 'users' or 'topic'");
	if (topic != NULL) {
		if (!op_check_name(ctx, "topic", topic))
			return NULL;
		int rc = store_topic_members(ctx->app->store, topic, &list);
		if (rc == 0)
			return op_fail(ctx, 404, "topic_not_found", "topic '%s' has no members", topic);
		if (rc < 0)
			return op_fail(ctx, 500, "internal", "the topic could not be read");
		return list;
	}
	if (user != NULL && !json_is_null(user)) {
		if (!op_check_user(ctx, "user", json_string_value(user)))
			return NULL;
		return json_pack("[O]", user);
	}
	if (json_array_size(users) == 0 || json_array_size(users) > MAX_RECIPIENTS)
		return op_fail(ctx, 422, "invalid_field", "'users' must hold 1 to %d user ids",
		    MAX_RECIPIENTS);
	json_array_foreach(users, i, v) {
		if (!op_check_user(ctx, "users", json_string_value(v)))
			return NULL;
		for (size_t j = 0; j < i; j++)
			if (json_equal(v, json_array_get(users, j)))
				return op_fail(ctx, 422, "invalid_field",
				    "'users' names '%s' twice", json_string_value(v));
	}
	return json_incref(users);
}

/*
 * Store the notification for each recipient and answer with it, or with
 * {"count","notifications"} for users or a topic; 201 when any was
 * created, 200 when every one already existed under its key.
 */
static json_t *
send_run(struct op_ctx *ctx, json_t *args)
{
	struct notification_new proto = {0}, *in = NULL;
	json_t *data = json_object_get(args, "data"), *users, *result = NULL;
	json_t **out = NULL;
	char *data_text = NULL;
	bool *created = NULL, any = false;
	size_t n, i;

	if ((users = recipients(ctx, args)) == NULL)
		return NULL;
	n = json_array_size(users);
	if (!check(ctx, args, &proto))
		goto done;
	if (data != NULL && !json_is_null(data)) {
		data_text = json_dumps(data, JSON_COMPACT);
		if (data_text == NULL || strlen(data_text) > MAX_DATA) {
			op_fail(ctx, 422, "invalid_field", "'data' is larger than %d bytes as JSON",
			    MAX_DATA);
			goto done;
		}
		proto.data = data_text;
	}
	in = calloc(n, sizeof *in);
	out = calloc(n, sizeof *out);
	created = calloc(n, sizeof *created);
	if (in == NULL || out == NULL || created == NULL) {
		op_fail(ctx, 500, "internal", "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		in[i] = proto;
		in[i].user = json_string_value(json_array_get(users, i));
	}
	if (store_notifications_create(ctx->app->store, in, n, ctx->now, out, created) <= 0) {
		op_fail(ctx, 500, "internal", "the notification could not be stored");
		goto done;
	}
	for (i = 0; i < n; i++) {
		json_int_t id = json_integer_value(json_object_get(out[i], "id"));
		if (created[i]) {
			any = true;
			log_info("notification created", "id=%lld user=%s type=%s",
			    (long long)id, in[i].user, proto.type);
		} else {
			log_info("notification exists", "id=%lld user=%s", (long long)id, in[i].user);
		}
	}
	ctx->status = any ? 201 : 200;
	if (json_is_string(json_object_get(args, "user"))) {
		result = out[0];
		out[0] = NULL;
	} else {
		json_t *list = json_array();
		for (i = 0; i < n; i++) {
			json_array_append_new(list, out[i]);
			out[i] = NULL;
		}
		result = json_pack("{s:I, s:o}", "count", (json_int_t)n, "notifications", list);
	}
done:
	for (i = 0; out != NULL && i < n; i++)
		json_decref(out[i]);
	free(out);
	free(created);
	free(in);
	free(data_text);
	json_decref(users);
	return result;
}

const struct op op_send = {"send", "send a notification to a user, users or a topic", send_args, send_run, 0};
