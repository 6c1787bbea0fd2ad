/* ops — the handlers' table, and the argument checks every call goes through. */
#include "ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store.h"
#include "text.h"
#include "util.h"

/*
 * Every operation's handler. A new operation is its declaration in
 * decl.c, its file core/ops/op_NAME.c with the handler, and an entry here;
 * over REST it is also a line in http.c's routes[].
 */
static const struct op_impl *const op_impls[] = {
	&op_ping_impl,
	&op_status_impl,
	&op_check_impl,
	&op_backup_impl,
	&op_send_impl,
	&op_list_impl,
	&op_show_impl,
	&op_read_impl,
	&op_unread_impl,
	&op_count_impl,
	&op_archive_impl,
	&op_unarchive_impl,
	&op_delete_impl,
	&op_user_show_impl,
	&op_user_set_impl,
	&op_topic_add_impl,
	&op_topic_rm_impl,
	&op_topic_show_impl,
	&op_key_create_impl,
	&op_key_list_impl,
	&op_key_revoke_impl,
	&op_token_impl,
	&op_presence_impl,
	&op_connections_impl,
	&op_disconnect_impl,
	&op_watch_impl,
	&op_mail_list_impl,
	&op_mail_show_impl,
	&op_mail_read_impl,
	&op_mail_clear_impl,
	&op_mail_wait_impl,
	&op_mail_info_impl,
	&op_template_list_impl,
	&op_template_render_impl,
	&op_prefs_get_impl,
	&op_prefs_set_impl,
	&op_cancel_impl,
	&op_digest_impl,
	&op_push_key_impl,
	&op_push_subscribe_impl,
	&op_push_list_impl,
	&op_push_rm_impl,
	&op_webhook_add_impl,
	&op_webhook_list_impl,
	&op_webhook_rm_impl,
	&op_webhook_test_impl,
	NULL,
};

op_fn
op_handler(const struct op *op)
{
	for (const struct op_impl *const *i = op_impls; *i; i++)
		if ((*i)->op == op)
			return (*i)->fn;
	return NULL;
}

/* Most ids one call may name. */
#define MAX_IDS 1000

bool
op_own_new_user(const struct op_ctx *ctx, const char *user)
{
	return ctx->as_user != NULL && strcmp(ctx->as_user, user) == 0;
}

void
op_error_set(struct op_error *e, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	e->status = status;
	snprintf(e->code, sizeof e->code, "%s", code);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
}

json_t *
op_fail(struct op_ctx *ctx, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	ctx->err.status = status;
	snprintf(ctx->err.code, sizeof ctx->err.code, "%s", code);
	va_start(ap, fmt);
	vsnprintf(ctx->err.message, sizeof ctx->err.message, fmt, ap);
	va_end(ap);
	return NULL;
}

/* Is v of the declared type? */
static bool
arg_type_ok(const struct op_arg *a, json_t *v)
{
	size_t i;
	json_t *e;
	int64_t ms;

	switch (a->type) {
	case ARG_STRING:
		return json_is_string(v);
	case ARG_INT:
		return json_is_integer(v);
	case ARG_ID:
		return json_is_integer(v) && json_integer_value(v) > 0;
	case ARG_BOOL:
		return json_is_boolean(v);
	case ARG_OBJECT:
		return json_is_object(v);
	case ARG_IDS:
		if (!json_is_array(v))
			return false;
		json_array_foreach(v, i, e)
			if (!json_is_integer(e) || json_integer_value(e) <= 0)
				return false;
		return true;
	case ARG_TIME:
		return json_is_string(v) && time_parse_at(json_string_value(v), 0, &ms);
	case ARG_STRINGS:
		if (!json_is_array(v))
			return false;
		json_array_foreach(v, i, e)
			if (!json_is_string(e))
				return false;
		return true;
	case ARG_DURATION:
		return json_is_string(v) && duration_parse(json_string_value(v), &ms);
	case ARG_PATH:
		return json_is_string(v) && json_string_value(v)[0] == '/';
	}
	return false;
}

json_t *
op_call(struct op_ctx *ctx, const struct op *op, json_t *args)
{
	const char *key;
	json_t *v;

	ctx->status = 200;
	if (ctx->now == 0)
		ctx->now = time_now_ms();
	if ((op->flags & OP_ADMIN) && ctx->as_user != NULL)
		return op_fail(ctx, 403, "forbidden",
		    "%s needs an API key; a user token may not call it", op->name);
	if (args != NULL && !json_is_object(args))
		return op_fail(ctx, 422, "invalid_arguments",
		    "%s: arguments must be a JSON object", op->name);
	json_object_foreach(args, key, v) {
		const struct op_arg *a = op_arg_find(op, key);
		if (a == NULL)
			return op_fail(ctx, 422, "unknown_field",
			    "%s: unknown argument '%s'", op->name, key);
		if (json_is_null(v) && !(a->flags & ARG_REQUIRED))
			continue;
		if (!arg_type_ok(a, v))
			return op_fail(ctx, 422, "invalid_field",
			    "%s: '%s' must be %s", op->name, key,
			    op_arg_type_name(a->type));
		if ((a->type == ARG_IDS || a->type == ARG_STRINGS) && json_array_size(v) > MAX_IDS)
			return op_fail(ctx, 422, "invalid_field",
			    "%s: '%s' may hold at most %d entries", op->name, key, MAX_IDS);
	}
	for (const struct op_arg *a = op->args; a->name; a++) {
		v = args ? json_object_get(args, a->name) : NULL;
		if ((a->flags & ARG_REQUIRED) && (v == NULL || json_is_null(v)) &&
		    !(strcmp(a->name, "user") == 0 && ctx->as_user != NULL))
			return op_fail(ctx, 422, "missing_field",
			    "%s: '%s' is required", op->name, a->name);
	}
	json_t *empty = NULL;
	if (args == NULL)
		args = empty = json_object();
	(void)store_last_error();	/* from an earlier call of this thread: forget it */
	op_fn fn = op_handler(op);
	if (fn == NULL)
		return op_fail(ctx, 404, "unknown_command", "%s has no handler here", op->name);
	json_t *r = fn(ctx, args);
	json_decref(empty);
	if (r == NULL && ctx->err.status == 0)
		op_fail(ctx, 500, "internal", "%s failed", op->name);
	/* A write that failed for want of disk or of the lock is a passing state, not a bug. */
	enum store_error e = store_last_error();
	if (r == NULL && ctx->err.status == 500 && e == STORE_FULL)
		op_fail(ctx, 503, "storage_full", "the disk is full; nothing was changed; "
		    "try again once there is room");
	else if (r == NULL && ctx->err.status == 500 && e == STORE_BUSY)
		op_fail(ctx, 503, "busy", "storage is held by another process; nothing was "
		    "changed; try again shortly");
	else if (r == NULL && ctx->err.status == 500 && e == STORE_DOWN)
		op_fail(ctx, 503, "unavailable", "the database is not answering; try again "
		    "shortly (with an idempotency key, a retry cannot store twice)");
	return r;
}

json_t *
op_dispatch(struct op_ctx *ctx, const char *name, json_t *args)
{
	const struct op *op = op_find(name);
	if (op == NULL)
		return op_fail(ctx, 404, "unknown_command", "unknown command '%.64s'", name);
	return op_call(ctx, op, args);
}

bool
op_check_text(struct op_ctx *ctx, const char *field, const char *v, size_t max)
{
	size_t len = strlen(v);
	if (len > max) {
		op_fail(ctx, 422, "invalid_field", "'%s' is longer than %zu bytes", field, max);
		return false;
	}
	if (!utf8_valid(v, len, true)) {
		op_fail(ctx, 422, "invalid_field", "'%s' is not valid UTF-8 text", field);
		return false;
	}
	return true;
}

bool
op_check_user(struct op_ctx *ctx, const char *field, const char *user)
{
	size_t len = strlen(user);
	if (len == 0 || len > 128 || !utf8_valid(user, len, false) ||
	    strchr(user, '/') != NULL) {
		op_fail(ctx, 422, "invalid_field", "'%s' must be 1 to 128 bytes of "
		    "UTF-8 without control characters or '/'", field);
		return false;
	}
	return true;
}

bool
op_check_name(struct op_ctx *ctx, const char *field, const char *v)
{
	size_t len = strlen(v);
	bool ok = len > 0 && len <= 64;
	for (size_t i = 0; ok && i < len; i++)
		ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
		    v[i] == '_' || v[i] == '-' || v[i] == '.';
	if (!ok)
		op_fail(ctx, 422, "invalid_field", "'%s' must be 1 to 64 of a-z 0-9 _ - .", field);
	return ok;
}

bool
op_not_due(const struct op_ctx *ctx, json_t *n)
{
	int64_t due;
	return time_parse_rfc3339(json_string_value(json_object_get(n, "deliver_at")), &due) &&
	    due > ctx->now;
}

const char *
op_user_arg(struct op_ctx *ctx, json_t *args, bool required)
{
	const char *user = json_string_value(json_object_get(args, "user"));
	if (ctx->as_user != NULL) {
		if (user != NULL && strcmp(user, ctx->as_user) != 0) {
			op_fail(ctx, 403, "forbidden", "a user token may act only for its own user");
			return NULL;
		}
		return ctx->as_user;
	}
	if (user == NULL) {
		if (required)
			op_fail(ctx, 422, "missing_field", "'user' is required");
		return NULL;
	}
	return op_check_user(ctx, "user", user) ? user : NULL;
}
