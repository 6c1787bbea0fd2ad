/* send — put a notification in a user's inbox. */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "ops.h"
#include "store.h"
#include "template.h"
#include "util.h"

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

/* What routing needs besides the recipient's preferences: the type's meta and the send. */
struct send_route {
	unsigned	 channels;
	bool		 critical, urgent;
	int64_t		 now;		/* of the send */
	struct notification_new *in;	/* the sends, one per recipient */
};

/*
 * Route send i by its recipient's preferences, as stored now (a user not
 * stored yet has every default): a recipient_fn. The store writes what
 * this decides.
 */
static int
route(void *arg, size_t i, const struct prefs *p, const char *email, const char *tz)
{
	struct send_route *r = arg;
	struct notification_new *n = &r->in[i];
	struct route_in in = {n->type, r->channels, r->critical, r->urgent, *email != '\0', tz,
	    n->deliver_at > 0 ? n->deliver_at : r->now};
	prefs_route(p, &in, &n->in_app, &n->email);
	n->routed = true;
	return 0;
}

#define MAX_RECIPIENTS 1000
#define MAX_AHEAD (10LL * 366 * 86400000)	/* how far ahead a send may be scheduled */

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

/* What send renders for one recipient: title and body when the send gave none. */
struct rendered {
	char	*title, *body;
};

/*
 * Render the type's title and body (those not given) into r[0..n-1].
 * Templates that name {{user...}} are rendered per recipient with the
 * profile; the others once for all.
 */
static bool
render(struct op_ctx *ctx, json_t *args, const struct template_set *s,
    const struct template_type *t, const struct notification_new *proto, json_t *users,
    struct rendered *r, size_t n)
{
	bool per_user;
	struct buf b;

	if (s == NULL)
		return true;
	per_user = (proto->title == NULL && tpl_uses(t->part[TP_TITLE], "user")) ||
	    (proto->body == NULL && tpl_uses(t->part[TP_BODY], "user"));
	json_t *nt = json_pack("{s:s, s:s, s:O, s:O?, s:O?, s:O?}", "type", proto->type,
	    "priority", proto->priority ? proto->priority : "normal",
	    "data", json_object_get(args, "data") ? json_object_get(args, "data") : json_null(),
	    "category", json_object_get(args, "category"), "url", json_object_get(args, "url"),
	    "key", json_object_get(args, "key"));
	buf_init(&b);
	for (size_t i = 0; i < n; i++) {
		json_t *profile = NULL;
		const char *user = json_string_value(json_array_get(users, i));
		if (i > 0 && !per_user) {
			r[i].title = strdup_or_null(r[0].title);
			r[i].body = strdup_or_null(r[0].body);
			continue;
		}
		json_object_set_new(nt, "user", json_string(user));
		if (per_user && store_user_get(ctx->app->store, user, &profile) < 0) {
			buf_free(&b);
			json_decref(nt);
			op_fail(ctx, 500, "internal", "the user could not be read");
			return false;
		}
		for (int p = TP_TITLE; p <= TP_BODY; p++) {
			if ((p == TP_TITLE ? proto->title : proto->body) != NULL)
				continue;
			buf_reset(&b);
			template_render(s, t, p, nt, profile, &b);
			char *v = b.len > 0 ? buf_take(&b) : NULL;
			if (p == TP_TITLE) {
				r[i].title = v;
				json_object_set_new(nt, "title", json_string(v ? v : ""));
			} else {
				r[i].body = v;
			}
		}
		json_decref(profile);
	}
	buf_free(&b);
	json_decref(nt);
	return true;
}

/* Refuse a send whose data lacks what its templates show ([server] strict_templates). */
static void
op_fail_missing(struct op_ctx *ctx, const char *type, json_t *warnings)
{
	struct buf names;
	size_t i;
	json_t *w;
	buf_init(&names);
	json_array_foreach(warnings, i, w)
		buf_printf(&names, "%s%s", i ? ", " : "",
		    json_string_value(json_object_get(w, "variable")));
	op_fail(ctx, 422, "missing_variables", "%s: the data lacks %s, which its templates show",
	    type, names.data ? names.data : "");
	buf_free(&names);
}

/*
 * The answer as text into ctx->text, as json_dumps() writes the object
 * the control socket gets: one notification (single), or {"count",
 * "notifications"}, with the warnings when there are any. A created one
 * is its text; one that existed, its object dumped.
 */
static json_t *
answer_text(struct op_ctx *ctx, bool single, json_t **out, char **text, size_t n,
    json_t *warnings)
{
	struct buf *b = ctx->text;
	if (!single) {
		buf_puts(b, "{\"count\":");
		buf_put_int(b, (int64_t)n);
		buf_puts(b, ",\"notifications\":[");
	}
	for (size_t i = 0; i < n; i++) {
		char *t = text[i] ? text[i] : out[i] ? json_dumps(out[i], JSON_COMPACT) : NULL;
		if (t == NULL) {
			b->len = 0;
			return op_fail(ctx, 500, "internal", "out of memory");
		}
		if (i > 0)
			buf_putc(b, ',');
		/* One notification with warnings: its object gains the key. */
		buf_put(b, t, strlen(t) - (single && json_array_size(warnings) > 0));
		if (t != text[i])
			free(t);
	}
	if (!single)
		buf_putc(b, ']');
	if (json_array_size(warnings) > 0) {
		char *w = json_dumps(warnings, JSON_COMPACT);
		buf_puts(b, ",\"warnings\":");
		buf_puts(b, w ? w : "[]");
		free(w);
	}
	if (!single || json_array_size(warnings) > 0)
		buf_putc(b, '}');
	if (b->oom) {
		b->len = 0;
		return op_fail(ctx, 500, "internal", "out of memory");
	}
	return json_null();
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
	char **text = NULL, *data_text = NULL;
	bool *created = NULL, any = false;
	struct rendered *r = NULL;
	struct prefs *prefs = NULL;
	const char **names = NULL;
	struct template_set *ts = NULL;
	json_t *warnings = NULL;
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
	/* HTTP sends text: a topic's thousands are answered without an object each. */
	text = ctx->text ? calloc(n, sizeof *text) : NULL;
	created = calloc(n, sizeof *created);
	r = calloc(n, sizeof *r);
	prefs = malloc(sizeof *prefs);	/* ~18 KiB: one for every recipient in turn */
	names = calloc(n, sizeof *names);
	if (in == NULL || out == NULL || created == NULL || r == NULL || prefs == NULL ||
	    names == NULL || (ctx->text && text == NULL)) {
		op_fail(ctx, 500, "internal", "out of memory");
		goto done;
	}
	const char *at = json_string_value(json_object_get(args, "at"));
	struct send_route sr = {CHANNEL_IN_APP | CHANNEL_EMAIL, false,
	    proto.priority != NULL && strcmp(proto.priority, "urgent") == 0, ctx->now, in};
	if (at != NULL) {
		if (!time_parse_at(at, ctx->now, &proto.deliver_at) ||
		    proto.deliver_at > ctx->now + MAX_AHEAD) {
			op_fail(ctx, 422, "invalid_field",
			    "'at' must be an RFC 3339 time or +DURATION, within 10 years");
			goto done;
		}
		if (proto.deliver_at <= ctx->now)
			proto.deliver_at = 0;	/* already due: at once */
	}
	/* One look at the templates serves rendering and routing. */
	const struct template_type *tt = NULL;
	if ((ts = templates_current()) != NULL) {
		tt = template_set_type_or_default(ts, proto.type);
		sr.channels = tt->channels;
		sr.critical = tt->critical;
		/* What the title, body (those not given) and email would show empty. */
		warnings = template_warnings(tt, (proto.title == NULL) << TP_TITLE |
		    (proto.body == NULL) << TP_BODY | ((tt->channels & CHANNEL_EMAIL) ?
		    1u << TP_SUBJECT | 1u << TP_TEXT | 1u << TP_HTML : 0u), data);
		if (json_array_size(warnings) > 0 && ctx->app->cfg->strict_templates) {
			op_fail_missing(ctx, tt->name, warnings);
			goto done;
		}
	}
	if (!render(ctx, args, ts, tt, &proto, users, r, n))
		goto done;
	for (i = 0; i < n; i++) {
		in[i] = proto;
		in[i].user = names[i] = json_string_value(json_array_get(users, i));
	}
	if (store_recipients(ctx->app->store, names, n, prefs, route, &sr) != 0) {
		op_fail(ctx, 500, "internal", n == 1 ? "the preferences of '%s' could not be read" :
		    "the recipients' preferences could not be read", in[0].user);
		goto done;
	}
	for (i = 0; i < n; i++) {
		if (in[i].title == NULL)
			in[i].title = r[i].title;
		if (in[i].body == NULL)
			in[i].body = r[i].body;
	}
	if (store_notifications_create(ctx->app->store, in, n, ctx->now, out, text, created) <= 0) {
		op_fail(ctx, 500, "internal", "the notification could not be stored");
		goto done;
	}
	/*
	 * One line per send at info (a topic's thousands are one), each
	 * notification at debug: a line per create was 6% of a create's CPU
	 * (a write(2) each), and the database holds every one anyway.
	 */
	size_t made = 0;
	for (i = 0; i < n; i++)
		made += created[i];
	for (i = 0; log_enabled(LOG_DEBUG) && i < n; i++) {
		/* A text begins {"id":N. */
		json_int_t id = out[i] ? json_integer_value(json_object_get(out[i], "id")) :
		    text[i] ? strtoll(text[i] + 6, NULL, 10) : 0;
		log_debug(created[i] ? "notification created" : "notification exists",
		    "id=%lld user=%s type=%s", (long long)id, in[i].user, proto.type);
	}
	any = made > 0;
	if (n > 1 || made == 0)
		log_info(made ? "notifications created" : "notifications existed",
		    "created=%zu recipients=%zu type=%s", made, n, proto.type);
	ctx->status = any ? 201 : 200;
	if (text != NULL) {
		result = answer_text(ctx, json_is_string(json_object_get(args, "user")), out, text, n,
		    any ? warnings : NULL);
	} else if (json_is_string(json_object_get(args, "user"))) {
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
	if (any && json_array_size(warnings) > 0)	/* a repeat answers with the first */
		json_object_set(result, "warnings", warnings);
done:
	json_decref(warnings);
	for (i = 0; out != NULL && i < n; i++)
		json_decref(out[i]);
	for (i = 0; text != NULL && i < n; i++)
		free(text[i]);
	free(out);
	free(text);
	free(created);
	for (i = 0; r != NULL && i < n; i++) {
		free(r[i].title);
		free(r[i].body);
	}
	free(r);
	free(prefs);
	free(names);
	template_set_unref(ts);
	free(in);
	free(data_text);
	json_decref(users);
	return result;
}

const struct op_impl op_send_impl = {.op = &op_send, .fn = send_run};
