/* template list, template render — the notification templates, and a preview of each part. */
#include <string.h>

#include "app.h"
#include "digest.h"
#include "ops.h"
#include "store.h"
#include "template.h"
#include "util.h"

/* The channel bits as a JSON array of names. */
static json_t *
channels_json(unsigned channels)
{
	json_t *a = json_array();
	if (channels & CHANNEL_IN_APP)
		json_array_append_new(a, json_string("in_app"));
	if (channels & CHANNEL_EMAIL)
		json_array_append_new(a, json_string("email"));
	return a;
}

/* Every type with its default channels, criticality and where each part comes from. */
static json_t *
list_run(struct op_ctx *ctx, json_t *args)
{
	(void)args;
	struct template_set *s = templates_current();
	json_t *types = json_array();
	if (s == NULL)
		return op_fail(ctx, 503, "unavailable", "no templates are loaded");
	for (size_t i = 0; i < template_set_count(s); i++) {
		const struct template_type *t = template_set_at(s, i);
		json_t *src = json_object();
		for (int p = 0; p < TP__COUNT; p++)
			json_object_set_new(src, template_part_name(p), json_string(t->source[p]));
		json_object_set_new(src, "meta", t->source[TP__COUNT] ?
		    json_string(t->source[TP__COUNT]) : json_null());
		json_array_append_new(types, json_pack("{s:s, s:o, s:b, s:o}", "type", t->name,
		    "channels", channels_json(t->channels), "critical", t->critical,
		    "sources", src));
	}
	template_set_unref(s);
	return json_pack("{s:o}", "templates", types);
}

/* Render every part of a type for the given data, as send and the mailer would. */
static json_t *
render_run(struct op_ctx *ctx, json_t *args)
{
	const char *type = json_string_value(json_object_get(args, "type"));
	const char *user = json_string_value(json_object_get(args, "user"));
	json_t *profile = NULL, *result;
	struct buf b;

	if (!op_check_name(ctx, "type", type))
		return NULL;
	if (user != NULL) {
		if (!op_check_user(ctx, "user", user))
			return NULL;
		int rc = store_user_get(ctx->app->store, user, &profile);
		if (rc == 0)
			return op_fail(ctx, 404, "user_not_found", "no user '%s'", user);
		if (rc < 0)
			return op_fail(ctx, 500, "internal", "the user could not be read");
	}
	struct template_set *s = templates_current();
	if (s == NULL) {
		json_decref(profile);
		return op_fail(ctx, 503, "unavailable", "no templates are loaded");
	}
	const struct template_type *t = template_set_type_or_default(s, type);
	json_t *data = json_object_get(args, "data"), *sample = NULL;
	if (data == NULL && strcmp(type, "digest") == 0)
		data = sample = digest_sample();	/* a digest's data is made, not sent */
	json_t *n = json_pack("{s:s, s:s?, s:O, s:s?, s:s?, s:s}", "type", type, "user", user,
	    "data", data ? data : json_null(), "title", NULL, "body", NULL, "priority", "normal");
	json_object_set(n, "url", json_object_get(args, "url") ? json_object_get(args, "url") :
	    json_null());
	result = json_pack("{s:s, s:s}", "type", type, "template", t->name);
	buf_init(&b);
	/* Title and body first: the email parts see them as {{title}} and {{body}}. */
	for (int p = 0; p < TP__COUNT; p++) {
		const char *given = p == TP_TITLE ? json_string_value(json_object_get(args, "title")) :
		    p == TP_BODY ? json_string_value(json_object_get(args, "body")) : NULL;
		buf_reset(&b);
		if (given == NULL)
			template_render(s, t, p, n, profile, &b);
		json_t *v = json_string(given ? given : b.data ? b.data : "");
		if (p == TP_TITLE || p == TP_BODY)
			json_object_set(n, p == TP_TITLE ? "title" : "body", v);
		json_object_set_new(result, p == TP_TEXT ? "text" : template_part_name(p), v);
	}
	buf_free(&b);
	unsigned parts = (1u << TP__COUNT) - 1;
	if (json_object_get(args, "title") != NULL)
		parts &= ~(1u << TP_TITLE);
	if (json_object_get(args, "body") != NULL)
		parts &= ~(1u << TP_BODY);
	json_t *warnings = template_warnings(t, parts, data);
	if (json_array_size(warnings) > 0)
		json_object_set(result, "warnings", warnings);
	json_decref(warnings);
	json_decref(sample);
	json_decref(n);
	json_decref(profile);
	template_set_unref(s);
	return result;
}

const struct op_impl op_template_list_impl = {.op = &op_template_list, .fn = list_run};
const struct op_impl op_template_render_impl = {.op = &op_template_render, .fn = render_run};
