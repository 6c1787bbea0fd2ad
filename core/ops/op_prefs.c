/* prefs get, prefs set — a user's delivery preferences. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "ops.h"
#include "prefs.h"
#include "store.h"
#include "util.h"

/* Answer with the user's preferences document. */
static json_t *
get_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true);
	struct prefs *p;
	json_t *doc;
	if (user == NULL)
		return NULL;
	if ((p = calloc(1, sizeof *p)) == NULL)
		return op_fail(ctx, 500, "internal", "out of memory");
	int rc = store_prefs_get(ctx->app->store, user, p);
	if (rc == 0 && op_own_new_user(ctx, user)) {
		memset(p, 0, sizeof *p);	/* nothing set: every default */
		rc = 1;
	}
	doc = rc > 0 ? prefs_to_json(p) : NULL;
	free(p);
	if (rc == 0)
		return op_fail(ctx, 404, "user_not_found", "no user '%s'", user);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the preferences could not be read");
	json_object_set_new(doc, "user", json_string(user));
	return doc;
}

/* What a set does to the stored preferences, in the write transaction. */
struct change {
	json_t		*doc;		/* a document to apply */
	bool		 replace;
	char		 err[256];
	enum digest_mode was;		/* the digest mode before */
};

static bool
apply(struct prefs *p, void *arg)
{
	struct change *c = arg;
	c->was = p->digest;
	return prefs_apply_json(p, c->doc, c->replace, c->err, sizeof c->err);
}

/* The document one command-line setting stands for, or NULL with ctx->err set. */
static json_t *
setting_doc(struct op_ctx *ctx, json_t *a)
{
	const char *setting = json_string_value(json_object_get(a, "setting"));
	const char *value = json_string_value(json_object_get(a, "value"));
	const char *type = json_string_value(json_object_get(a, "type"));
	const char *days = json_string_value(json_object_get(a, "days"));

	if (setting == NULL || value == NULL)
		return op_fail(ctx, 422, "missing_field", "give SETTING VALUE, or 'prefs'");
	if (type != NULL && !op_check_name(ctx, "type", type))
		return NULL;
	if (strcmp(setting, "email") == 0 || strcmp(setting, "in_app") == 0 ||
	    strcmp(setting, "in-app") == 0 || strcmp(setting, "push") == 0) {
		const char *ch = setting[0] == 'e' ? "email" : setting[0] == 'p' ? "push" : "in_app";
		json_t *on;
		if (strcmp(value, "on") == 0)
			on = json_true();
		else if (strcmp(value, "off") == 0)
			on = json_false();
		else if (strcmp(value, "default") == 0)
			on = json_null();
		else
			return op_fail(ctx, 422, "invalid_field", "'value' for %s must be on, off "
			    "or default", ch);
		json_t *chans = json_pack("{s:o}", ch, on);
		return type ? json_pack("{s:{s:o}}", "types", type, chans) :
		    json_pack("{s:o}", "channels", chans);
	}
	if (type != NULL)
		return op_fail(ctx, 422, "invalid_field", "'type' applies to email, in_app and push only");
	if (strcmp(setting, "quiet") == 0) {
		int s, e;
		unsigned d;
		char a1[8], a2[8];
		if (strcmp(value, "off") == 0)
			return json_pack("{s:n}", "quiet_hours");
		if (!prefs_parse_quiet(value, &s, &e))
			return op_fail(ctx, 422, "invalid_field", "'value' for quiet must be "
			    "HH:MM-HH:MM (two different times) or off");
		if (days != NULL && !prefs_parse_days(days, &d))
			return op_fail(ctx, 422, "invalid_field", "'days' must be days such as "
			    "mon-fri, sat,sun or all");
		json_t *dl = json_array();
		for (int i = 0; i < 7; i++)
			if (days == NULL || (d & (1u << i)))
				json_array_append_new(dl, json_string(prefs_day_name(i)));
		snprintf(a1, sizeof a1, "%.5s", value);		/* parsed: HH:MM-HH:MM */
		snprintf(a2, sizeof a2, "%.5s", value + 6);
		return json_pack("{s:{s:s, s:s, s:o}}", "quiet_hours", "start", a1, "end", a2,
		    "days", dl);
	}
	if (days != NULL)
		return op_fail(ctx, 422, "invalid_field", "'days' applies to quiet only");
	if (strcmp(setting, "digest") == 0)
		return json_pack("{s:s}", "digest", value);
	if (strcmp(setting, "email-if-unread") == 0 || strcmp(setting, "email_if_unread") == 0) {
		if (strcmp(value, "off") == 0)
			return json_pack("{s:n}", "email_if_unread");
		return json_pack("{s:s}", "email_if_unread", value);
	}
	return op_fail(ctx, 422, "invalid_field", "'setting' must be email, in_app, quiet, digest "
	    "or email-if-unread");
}

/* Change preferences: one setting, or a document merged (PATCH) or replacing them (PUT). */
static json_t *
set_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true);
	json_t *given = json_object_get(a, "prefs"), *result;
	struct change c = {.replace = json_is_true(json_object_get(a, "replace"))};
	struct prefs *p;

	if (user == NULL)
		return NULL;
	if (given != NULL && json_object_get(a, "setting") != NULL)
		return op_fail(ctx, 422, "invalid_field", "give SETTING VALUE or 'prefs', not both");
	c.doc = given ? json_incref(given) : setting_doc(ctx, a);
	if (c.doc == NULL)
		return NULL;
	/* Check the document before taking the writer: the same check runs there. */
	if ((p = calloc(1, sizeof *p)) == NULL) {
		json_decref(c.doc);
		return op_fail(ctx, 500, "internal", "out of memory");
	}
	if (!prefs_apply_json(p, c.doc, true, c.err, sizeof c.err)) {
		free(p);
		json_decref(c.doc);
		return op_fail(ctx, 422, "invalid_field", "%s", c.err);
	}
	int rc = store_prefs_update(ctx->app->store, user, ctx->now, apply, &c, p);
	json_decref(c.doc);
	if (rc == 0) {
		free(p);
		return op_fail(ctx, 422, "invalid_field", "%s", c.err);
	}
	if (rc < 0) {
		free(p);
		return op_fail(ctx, 500, "internal", "the preferences could not be stored");
	}
	result = prefs_to_json(p);
	bool flush = c.was != DIGEST_OFF && p->digest == DIGEST_OFF &&
	    ctx->app->cfg->digest_flush_on_off;
	free(p);
	json_object_set_new(result, "user", json_string(user));
	log_info("preferences changed", "user=%s", user);
	/* Out of digest mode: what was parked for it goes now, not at the next run. */
	if (flush) {
		json_t *sent = op_digest_run(ctx, (int)c.was, user, -1, -1, false);
		if (sent == NULL) {
			json_decref(result);
			return NULL;
		}
		json_object_set_new(result, "digest_sent", sent);
	}
	return result;
}

const struct op_impl op_prefs_get_impl = {.op = &op_prefs_get, .fn = get_run};
const struct op_impl op_prefs_set_impl = {.op = &op_prefs_set, .fn = set_run};
