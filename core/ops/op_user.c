/* user show, user set — a user's profile: email, name, time zone, locale. */
#include <ctype.h>
#include <string.h>

#include "app.h"
#include "log.h"
#include "ops.h"
#include "store.h"
#include "tz.h"

/* Answer the user's profile. */
static json_t *
show_run(struct op_ctx *ctx, json_t *a)
{
	const char *user = op_user_arg(ctx, a, true);
	json_t *u = NULL;
	if (user == NULL)
		return NULL;
	int rc = store_user_get(ctx->app->store, user, &u);
	if (rc == 0 && op_own_new_user(ctx, user))
		return json_pack("{s:s, s:n, s:n, s:n, s:n, s:n}", "id", user, "email", "name",
		    "tz", "locale", "created_at");
	if (rc == 0)
		return op_fail(ctx, 404, "user_not_found", "no user '%s'", user);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the user could not be read");
	return u;
}

/* A BCP 47-like tag: 2-3 letters, then -subtags of 1-8 letters or digits. */
static bool
locale_valid(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
	if (n < 2 || n > 3 || strlen(s) > 35)
		return false;
	for (s += n; *s; s += n) {
		if (*s != '-' && *s != '_')
			return false;
		s++;
		n = 0;
		while (isalnum((unsigned char)s[n]))
			n++;
		if (n < 1 || n > 8)
			return false;
	}
	return true;
}

static bool
email_valid(const char *s)
{
	const char *at = strchr(s, '@');
	return at != NULL && at != s && strchr(at + 1, '@') == NULL && strchr(at + 1, '.') &&
	    at[1] != '.' && s[strlen(s) - 1] != '.' && strlen(s) <= 254 &&
	    strpbrk(s, " \t\r\n<>,;\"") == NULL;
}

/* Take field from args into *v / *set; an empty string clears like null. */
static void
field(json_t *a, const char *name, const char **v, bool *set)
{
	json_t *j = json_object_get(a, name);
	*set = j != NULL;
	*v = json_string_value(j);
	if (*v != NULL && **v == '\0')
		*v = NULL;
}

/* Create or change the user; answers the profile. */
static json_t *
set_run(struct op_ctx *ctx, json_t *a)
{
	struct user_update u = {0};
	json_t *out = NULL;
	bool created;

	if ((u.id = op_user_arg(ctx, a, true)) == NULL)
		return NULL;
	field(a, "email", &u.email, &u.set_email);
	field(a, "name", &u.name, &u.set_name);
	field(a, "tz", &u.tz, &u.set_tz);
	field(a, "locale", &u.locale, &u.set_locale);
	/* A stolen token must not be able to send the user's mail elsewhere. */
	if (u.set_email && ctx->as_user != NULL)
		return op_fail(ctx, 403, "forbidden",
		    "changing the email address needs an API key; a user token may not");
	if (u.email != NULL && !email_valid(u.email))
		return op_fail(ctx, 422, "invalid_field", "'email' is not an email address");
	if (u.name != NULL && !op_check_text(ctx, "name", u.name, 256))
		return NULL;
	if (u.tz != NULL && !tz_valid(u.tz))
		return op_fail(ctx, 422, "invalid_field",
		    "'tz' must be an IANA time zone such as Europe/Berlin");
	if (u.locale != NULL && !locale_valid(u.locale))
		return op_fail(ctx, 422, "invalid_field", "'locale' must be a tag such as en or pt-BR");
	int rc = store_user_put(ctx->app->store, &u, ctx->now, &out, &created);
	if (rc <= 0)
		return op_fail(ctx, 500, "internal", "the user could not be saved");
	ctx->status = created ? 201 : 200;
	log_info(created ? "user created" : "user changed", "user=%s", u.id);
	return out;
}

const struct op_impl op_user_show_impl = {.op = &op_user_show, .fn = show_run};
const struct op_impl op_user_set_impl = {.op = &op_user_set, .fn = set_run};
