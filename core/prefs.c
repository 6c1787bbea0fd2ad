/* prefs — preference resolution, quiet hours and the preferences document. */
#include "prefs.h"

#include <stdio.h>
#include <string.h>

#include "template.h"
#include "util.h"

static const char *const status_names[] = {
	[DS_PENDING] = "pending", [DS_SENT] = "sent", [DS_FAILED] = "failed",
	[DS_SKIPPED] = "skipped", [DS_DEFERRED] = "deferred", [DS_DIGEST] = "digest",
	[DS_CANCELLED] = "cancelled",
};

static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
static const char *const digest_names[] = {
	[DIGEST_OFF] = "off", [DIGEST_DAILY] = "daily", [DIGEST_WEEKLY] = "weekly",
};

const char *
delivery_status_name(enum delivery_status s)
{
	return (unsigned)s < sizeof status_names / sizeof *status_names ? status_names[s] : "?";
}

/* The rule for type and channel, or NULL. */
static const struct prefs_rule *
rule_find(const struct prefs *p, const char *type, unsigned channel)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->rules[i].channel == channel && strcmp(p->rules[i].type, type) == 0)
			return &p->rules[i];
	return NULL;
}

bool
prefs_enabled(const struct prefs *p, const char *type, unsigned channel, unsigned type_channels)
{
	const struct prefs_rule *r = type ? rule_find(p, type, channel) : NULL;
	if (r == NULL)
		r = rule_find(p, "*", channel);
	return r ? r->enabled : (type_channels & channel) != 0;
}

int64_t
prefs_quiet_until(const struct prefs *p, const struct tz *z, int64_t t)
{
	struct civil c, end;
	if (!p->quiet || p->quiet_start == p->quiet_end)
		return 0;
	tz_local(z, t, &c);
	int mins = c.hour * 60 + c.minute, yesterday = (c.wday + 6) % 7;
	bool today = p->quiet_days & (1u << c.wday);
	end = c;
	end.hour = p->quiet_end / 60;
	end.minute = p->quiet_end % 60;
	if (p->quiet_start < p->quiet_end) {
		if (!today || mins < p->quiet_start || mins >= p->quiet_end)
			return 0;
	} else if (today && mins >= p->quiet_start) {
		end.day++;			/* ends tomorrow morning */
	} else if (!(mins < p->quiet_end && (p->quiet_days & (1u << yesterday)))) {
		return 0;
	}
	int64_t until = tz_instant(z, &end);
	return until > t ? until : 0;
}

void
prefs_route(const struct prefs *p, const struct route_in *in, struct routing *in_app,
    struct routing *email)
{
	bool holdable = !in->critical && !in->urgent;

	*in_app = (struct routing){DS_SENT, in->at, NULL};
	if (!in->critical && !prefs_enabled(p, in->type, CHANNEL_IN_APP, in->type_channels))
		*in_app = (struct routing){DS_SKIPPED, 0, "in-app turned off"};

	*email = (struct routing){DS_PENDING, in->at, NULL};
	if (!in->critical && !prefs_enabled(p, in->type, CHANNEL_EMAIL, in->type_channels)) {
		*email = (struct routing){DS_SKIPPED, 0, "email turned off"};
		return;
	}
	if (!in->has_email) {
		*email = (struct routing){DS_SKIPPED, 0, "no email address"};
		return;
	}
	if (holdable && p->digest != DIGEST_OFF) {
		*email = (struct routing){DS_DIGEST, 0,
		    p->digest == DIGEST_DAILY ? "daily digest" : "weekly digest"};
		return;
	}
	if (!in->critical && p->email_if_unread > 0)
		email->next_at += p->email_if_unread;
	const struct tz *z = tz_get(in->tz);
	int64_t until = holdable ? prefs_quiet_until(p, z ? z : tz_get(NULL), email->next_at) : 0;
	if (until > 0)
		*email = (struct routing){DS_DEFERRED, until, "quiet hours"};
}

void
prefs_route_push(const struct prefs *p, const struct route_in *in, struct routing *push)
{
	*push = (struct routing){DS_PENDING, in->at, NULL};
	if (!in->critical && !prefs_enabled(p, in->type, CHANNEL_PUSH, in->type_channels)) {
		*push = (struct routing){DS_SKIPPED, 0, "push turned off"};
		return;
	}
	const struct tz *z = tz_get(in->tz);
	int64_t until = !in->critical && !in->urgent ?
	    prefs_quiet_until(p, z ? z : tz_get(NULL), in->at) : 0;
	if (until > 0)
		*push = (struct routing){DS_DEFERRED, until, "quiet hours"};
}

static int
parse_hhmm(const char *s, const char **end)
{
	int h, m, n = 0;
	if (sscanf(s, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 || h < 0 || h > 23 || m < 0 || m > 59)
		return -1;
	*end = s + n;
	return h * 60 + m;
}

bool
prefs_parse_quiet(const char *s, int *start, int *end)
{
	const char *p;
	int a = parse_hhmm(s, &p), b;
	if (a < 0 || *p != '-' || (b = parse_hhmm(p + 1, &p)) < 0 || *p != '\0' || a == b)
		return false;
	*start = a;
	*end = b;
	return true;
}

static int
day_index(const char *s, size_t len)
{
	for (int i = 0; i < 7; i++)
		if (len == 3 && strncmp(s, day_names[i], 3) == 0)
			return i;
	return -1;
}

bool
prefs_parse_days(const char *s, unsigned *days)
{
	unsigned d = 0;
	if (strcmp(s, "all") == 0 || strcmp(s, "every") == 0) {
		*days = 0x7f;
		return true;
	}
	while (*s) {
		size_t l = strcspn(s, ",");
		const char *dash = memchr(s, '-', l);
		int a = day_index(s, dash ? (size_t)(dash - s) : l), b = a;
		if (dash)
			b = day_index(dash + 1, l - (size_t)(dash + 1 - s));
		if (a < 0 || b < 0)
			return false;
		for (int i = a;; i = (i + 1) % 7) {	/* fri-mon wraps */
			d |= 1u << i;
			if (i == b)
				break;
		}
		s += l;
		if (*s == ',' && *++s == '\0')
			return false;
	}
	if (d == 0)
		return false;
	*days = d;
	return true;
}

bool
prefs_parse_digest(const char *s, enum digest_mode *d)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(s, digest_names[i]) == 0) {
			*d = (enum digest_mode)i;
			return true;
		}
	return false;
}

const char *
prefs_digest_name(enum digest_mode d)
{
	return digest_names[d];
}

const char *
prefs_day_name(int day)
{
	return day_names[day];
}

/* Set one rule (type NULL: "*"); false when there are too many. */
static bool
prefs_set_rule(struct prefs *p, const char *type, unsigned channel, bool enabled)
{
	const char *t = type ? type : "*";
	struct prefs_rule *r = (struct prefs_rule *)rule_find(p, t, channel);
	if (r == NULL) {
		if (p->n == PREFS_MAX_RULES || strlen(t) >= sizeof r->type)
			return false;
		r = &p->rules[p->n++];
		snprintf(r->type, sizeof r->type, "%s", t);
		r->channel = channel;
	}
	r->enabled = enabled;
	return true;
}

/* Remove the rule(s) of type (and channel, unless 0). */
static void
rule_remove(struct prefs *p, const char *type, unsigned channel)
{
	size_t j = 0;
	for (size_t i = 0; i < p->n; i++)
		if (!(strcmp(p->rules[i].type, type) == 0 && (channel == 0 ||
		    p->rules[i].channel == channel)))
			p->rules[j++] = p->rules[i];
	p->n = j;
}

static const struct {
	unsigned	 bit;
	const char	*name;
} channel_names[] = {
	{CHANNEL_IN_APP, "in_app"},
	{CHANNEL_EMAIL, "email"},
	{CHANNEL_PUSH, "push"},
	{CHANNEL_WEBHOOK, "webhook"},
};

const char *
prefs_channel_name(unsigned c)
{
	for (size_t i = 0; i < sizeof channel_names / sizeof channel_names[0]; i++)
		if (channel_names[i].bit == c)
			return channel_names[i].name;
	return "?";
}

unsigned
prefs_channel_of(const char *s)
{
	for (size_t i = 0; i < sizeof channel_names / sizeof channel_names[0]; i++)
		if (strcmp(channel_names[i].name, s) == 0)
			return channel_names[i].bit;
	return 0;
}

/* A channel a user's preferences switch: not webhooks, which are the application's. */
static unsigned
channel_of(const char *s)
{
	unsigned c = prefs_channel_of(s);
	return c == CHANNEL_WEBHOOK ? 0 : c;
}

/* A duration as the largest whole unit: "10m", "1h", "90s". */
static json_t *
duration_json(int64_t ms)
{
	char s[32];
	if (ms % 3600000 == 0)
		snprintf(s, sizeof s, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		snprintf(s, sizeof s, "%lldm", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(s, sizeof s, "%llds", (long long)(ms / 1000));
	else
		snprintf(s, sizeof s, "%lldms", (long long)ms);
	return json_string(s);
}

json_t *
prefs_to_json(const struct prefs *p)
{
	json_t *channels = json_object(), *types = json_object(), *quiet = json_null();
	for (size_t i = 0; i < p->n; i++) {
		const struct prefs_rule *r = &p->rules[i];
		json_t *dst = channels;
		if (strcmp(r->type, "*") != 0) {
			dst = json_object_get(types, r->type);
			if (dst == NULL)
				json_object_set_new(types, r->type, dst = json_object());
		}
		json_object_set_new(dst, prefs_channel_name(r->channel), json_boolean(r->enabled));
	}
	if (p->quiet) {
		char a[8], b[8];
		json_t *days = json_array();
		snprintf(a, sizeof a, "%02d:%02d", p->quiet_start / 60 % 24, p->quiet_start % 60);
		snprintf(b, sizeof b, "%02d:%02d", p->quiet_end / 60 % 24, p->quiet_end % 60);
		for (int i = 0; i < 7; i++)
			if (p->quiet_days & (1u << i))
				json_array_append_new(days, json_string(day_names[i]));
		quiet = json_pack("{s:s, s:s, s:o}", "start", a, "end", b, "days", days);
	}
	return json_pack("{s:o, s:o, s:o, s:s, s:o}", "channels", channels, "types", types,
	    "quiet_hours", quiet, "digest", digest_names[p->digest], "email_if_unread",
	    p->email_if_unread > 0 ? duration_json(p->email_if_unread) : json_null());
}

/* Apply {"in_app":bool|null,"email":bool|null,"push":bool|null} as the rules of type. */
static bool
apply_channels(struct prefs *p, const char *type, json_t *o, const char *field, char *err,
    size_t errlen)
{
	const char *k;
	json_t *v;
	if (!json_is_object(o)) {
		snprintf(err, errlen, "'%s' must be an object of channels (in_app, email, push)", field);
		return false;
	}
	json_object_foreach(o, k, v) {
		unsigned ch = channel_of(k);
		if (ch == 0) {
			snprintf(err, errlen, "'%s.%s': unknown channel (in_app, email, push)", field, k);
			return false;
		}
		if (json_is_null(v)) {
			rule_remove(p, type, ch);
		} else if (!json_is_boolean(v)) {
			snprintf(err, errlen, "'%s.%s' must be true, false or null", field, k);
			return false;
		} else if (!prefs_set_rule(p, type, ch, json_is_true(v))) {
			snprintf(err, errlen, "'%s': more than %d rules", field, PREFS_MAX_RULES);
			return false;
		}
	}
	return true;
}

/* A type name as send accepts it. */
static bool
type_ok(const char *s)
{
	size_t l = strlen(s);
	if (l == 0 || l > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("_.-", *s) != NULL))
			return false;
	return true;
}

static bool
apply_quiet(struct prefs *p, json_t *q, char *err, size_t errlen)
{
	json_t *start = json_object_get(q, "start"), *end = json_object_get(q, "end");
	json_t *days = json_object_get(q, "days");
	char range[32];
	unsigned d = 0x7f;
	if (json_is_null(q)) {
		p->quiet = false;
		return true;
	}
	if (!json_is_object(q) || !json_is_string(start) || !json_is_string(end) ||
	    json_object_size(q) != 2u + (days != NULL)) {
		snprintf(err, errlen, "'quiet_hours' must be null or {\"start\":\"HH:MM\","
		    "\"end\":\"HH:MM\",\"days\":[\"mon\",...]}");
		return false;
	}
	snprintf(range, sizeof range, "%s-%s", json_string_value(start), json_string_value(end));
	if (!prefs_parse_quiet(range, &p->quiet_start, &p->quiet_end)) {
		snprintf(err, errlen, "'quiet_hours': start and end must be different HH:MM times");
		return false;
	}
	if (days != NULL && !json_is_null(days)) {
		size_t i;
		json_t *v;
		d = 0;
		if (!json_is_array(days) || json_array_size(days) == 0) {
			snprintf(err, errlen, "'quiet_hours.days' must be a list of days (mon ... sun)");
			return false;
		}
		json_array_foreach(days, i, v) {
			int k = json_is_string(v) ? day_index(json_string_value(v),
			    json_string_length(v)) : -1;
			if (k < 0) {
				snprintf(err, errlen, "'quiet_hours.days' must be a list of days "
				    "(mon ... sun)");
				return false;
			}
			d |= 1u << k;
		}
	}
	p->quiet = true;
	p->quiet_days = d;
	return true;
}

bool
prefs_apply_json(struct prefs *p, json_t *doc, bool replace, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	if (!json_is_object(doc)) {
		snprintf(err, errlen, "preferences must be a JSON object");
		return false;
	}
	if (replace)
		*p = (struct prefs){.quiet_days = 0x7f};
	json_object_foreach(doc, k, v) {
		if (strcmp(k, "user") == 0) {
			continue;	/* GET names the user; a PUT of what GET gave is fine */
		} else if (strcmp(k, "channels") == 0) {
			if (json_is_null(v))
				rule_remove(p, "*", 0);
			else if (!apply_channels(p, "*", v, "channels", err, errlen))
				return false;
		} else if (strcmp(k, "types") == 0) {
			const char *t;
			json_t *tv;
			if (!json_is_object(v)) {
				snprintf(err, errlen, "'types' must be an object of types");
				return false;
			}
			json_object_foreach(v, t, tv) {
				char field[80];
				snprintf(field, sizeof field, "types.%s", t);
				if (!type_ok(t) || strcmp(t, "*") == 0) {
					snprintf(err, errlen, "'%s': not a type name", field);
					return false;
				}
				if (json_is_null(tv))
					rule_remove(p, t, 0);
				else if (!apply_channels(p, t, tv, field, err, errlen))
					return false;
			}
		} else if (strcmp(k, "quiet_hours") == 0) {
			if (!apply_quiet(p, v, err, errlen))
				return false;
		} else if (strcmp(k, "digest") == 0) {
			if (!json_is_string(v) || !prefs_parse_digest(json_string_value(v), &p->digest)) {
				snprintf(err, errlen, "'digest' must be off, daily or weekly");
				return false;
			}
		} else if (strcmp(k, "email_if_unread") == 0) {
			int64_t ms = 0;
			if (!json_is_null(v) && (!json_is_string(v) ||
			    !duration_parse(json_string_value(v), &ms) || ms < 0 || ms > 30LL * 86400000)) {
				snprintf(err, errlen, "'email_if_unread' must be null or a duration "
				    "such as 10m (at most 30d)");
				return false;
			}
			p->email_if_unread = ms;
		} else {
			snprintf(err, errlen, "'%s': unknown preference (channels, types, quiet_hours, "
			    "digest, email_if_unread)", k);
			return false;
		}
	}
	return true;
}
