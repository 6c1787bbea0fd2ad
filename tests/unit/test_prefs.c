/* Unit tests: time zones, quiet hours and preference resolution. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "prefs.h"
#include "template.h"
#include "tz.h"
#include "util.h"

static int64_t
at(const char *rfc3339)
{
	int64_t ms;
	if (!time_parse_rfc3339(rfc3339, &ms))
		fail_msg("bad time %s", rfc3339);
	return ms;
}

static void
test_tz_local(void **state)
{
	(void)state;
	const struct tz *b = tz_get("Europe/Berlin");
	struct civil c;
	assert_non_null(b);
	assert_null(tz_get("Mars/Olympus"));
	assert_null(tz_get("../etc/passwd"));
	assert_false(tz_valid("Europe/Nowhere"));
	assert_true(tz_valid("America/New_York"));
	assert_int_equal(tz_offset(b, at("2026-07-01T12:00:00Z")), 7200);
	assert_int_equal(tz_offset(b, at("2026-12-01T12:00:00Z")), 3600);
	/* Past the last change a zone file lists, its footer's rule (summer time still). */
	assert_int_equal(tz_offset(b, at("2051-07-01T12:00:00Z")), 7200);
	assert_int_equal(tz_offset(b, at("2051-12-01T12:00:00Z")), 3600);
	assert_int_equal(tz_offset(tz_get("America/New_York"), at("2061-07-04T12:00:00Z")), -14400);
	assert_null(tz_get("+05:00"));		/* an offset, not a zone */
	tz_local(b, at("2026-10-25T00:59:59Z"), &c);	/* the last second of summer time */
	assert_int_equal(c.hour * 100 + c.minute, 259);
	tz_local(b, at("2026-10-25T01:00:00Z"), &c);
	assert_int_equal(c.hour * 100 + c.minute, 200);
	assert_int_equal(c.wday, 6);			/* a Sunday */
	tz_local(tz_get(NULL), at("2026-11-23T10:11:12Z"), &c);
	assert_int_equal(c.year * 10000 + c.month * 100 + c.day, 20261123);
	assert_int_equal(c.wday, 0);			/* a Monday */

	struct civil w = {2026, 10, 25, 2, 30, 0};	/* shown twice: the first */
	assert_int_equal(tz_instant(b, &w), at("2026-10-25T00:30:00Z"));
	w = (struct civil){2026, 3, 29, 2, 30, 0};	/* skipped: the change itself */
	assert_int_equal(tz_instant(b, &w), at("2026-03-29T01:00:00Z"));
	w = (struct civil){2026, 12, 32, 7, 0, 0};	/* day overflows into January */
	assert_int_equal(tz_instant(b, &w), at("2027-01-01T06:00:00Z"));
}

static struct prefs
quiet(const char *range, const char *days)
{
	struct prefs p = {.quiet = true};
	assert_true(prefs_parse_quiet(range, &p.quiet_start, &p.quiet_end));
	assert_true(prefs_parse_days(days, &p.quiet_days));
	return p;
}

static void
test_quiet_hours(void **state)
{
	(void)state;
	const struct tz *b = tz_get("Europe/Berlin"), *ny = tz_get("America/New_York");
	struct prefs p = quiet("22:00-07:00", "all");

	/* Across midnight, on the night summer time ends: 07:00 is then CET. */
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-10-24T23:30:00+02:00")),
	    at("2026-10-25T07:00:00+01:00"));
	/* ... and on the night it starts: 07:00 is then CEST. */
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-03-28T23:00:00+01:00")),
	    at("2026-03-29T07:00:00+02:00"));
	/* After midnight, in the period that began the evening before. */
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-11-24T06:59:00+01:00")),
	    at("2026-11-24T07:00:00+01:00"));
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-11-24T07:00:00+01:00")), 0);
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-11-24T21:59:00+01:00")), 0);
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-11-24T22:00:00+01:00")),
	    at("2026-11-25T07:00:00+01:00"));

	/* An end in the skipped hour ends at the change. */
	p = quiet("01:00-02:30", "all");
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-03-29T01:30:00+01:00")),
	    at("2026-03-29T03:00:00+02:00"));

	/* Weekdays only: the day is the one the quiet period starts on. */
	p = quiet("23:00-07:00", "mon-fri");
	assert_int_equal(prefs_quiet_until(&p, ny, at("2026-11-27T23:30:00-05:00")),	/* Fri */
	    at("2026-11-28T07:00:00-05:00"));
	assert_int_equal(prefs_quiet_until(&p, ny, at("2026-11-28T23:30:00-05:00")), 0);	/* Sat */
	assert_int_equal(prefs_quiet_until(&p, ny, at("2026-11-30T01:00:00-05:00")), 0);	/* Mon, from Sun */
	assert_int_equal(prefs_quiet_until(&p, ny, at("2026-12-01T01:00:00-05:00")),	/* Tue, from Mon */
	    at("2026-12-01T07:00:00-05:00"));

	/* Within one day. */
	p = quiet("09:00-17:00", "sat,sun");
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-11-28T08:59:00+01:00")), 0);
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-11-28T09:00:00+01:00")),
	    at("2026-11-28T17:00:00+01:00"));
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-11-28T17:00:00+01:00")), 0);
	assert_int_equal(prefs_quiet_until(&p, b, at("2026-11-27T10:00:00+01:00")), 0);	/* Fri */
}

static void
test_parsers(void **state)
{
	(void)state;
	int a, b;
	unsigned d;
	enum digest_mode m;
	assert_true(prefs_parse_quiet("22:00-07:30", &a, &b));
	assert_int_equal(a, 1320);
	assert_int_equal(b, 450);
	const char *bad_quiet[] = {"", "22:00", "22:00-", "24:00-07:00", "22:60-07:00",
	    "22:00-22:00", "2200-0700", "22:00-07:00x", "7:00-9:00"};
	for (size_t i = 0; i < sizeof bad_quiet / sizeof *bad_quiet; i++)
		if (prefs_parse_quiet(bad_quiet[i], &a, &b))
			fail_msg("'%s' parsed", bad_quiet[i]);
	assert_true(prefs_parse_days("mon-fri", &d));
	assert_int_equal(d, 0x1f);
	assert_true(prefs_parse_days("fri-mon", &d));
	assert_int_equal(d, 0x71);
	assert_true(prefs_parse_days("sat,sun,wed", &d));
	assert_int_equal(d, 0x64);
	assert_true(prefs_parse_days("all", &d));
	assert_int_equal(d, 0x7f);
	const char *bad_days[] = {"", "monday", "mon-", "mon,", "xyz", "mon-frx"};
	for (size_t i = 0; i < sizeof bad_days / sizeof *bad_days; i++)
		if (prefs_parse_days(bad_days[i], &d))
			fail_msg("'%s' parsed", bad_days[i]);
	assert_true(prefs_parse_digest("weekly", &m));
	assert_int_equal(m, DIGEST_WEEKLY);
	assert_false(prefs_parse_digest("hourly", &m));
}

/* One row of the resolution table. */
struct rcase {
	const char	*name;
	const char	*prefs;		/* the preferences document */
	const char	*type;
	unsigned	 defaults;	/* the type's channels */
	bool		 critical, urgent, has_email;
	const char	*time;		/* when it is sent (Europe/Berlin) */
	enum delivery_status in_app, email;
	const char	*email_at;	/* when email goes (pending/deferred), or NULL: at once */
};

#define BOTH (CHANNEL_IN_APP | CHANNEL_EMAIL)
#define NOON "2026-11-24T12:00:00+01:00"
#define NIGHT "2026-11-24T23:00:00+01:00"
#define QUIET "\"quiet_hours\":{\"start\":\"22:00\",\"end\":\"07:00\"}"

static const struct rcase cases[] = {
	{"type defaults", "{}", "t", BOTH, 0, 0, 1, NOON, DS_SENT, DS_PENDING, NULL},
	{"type default off", "{}", "t", CHANNEL_IN_APP, 0, 0, 1, NOON, DS_SENT, DS_SKIPPED, NULL},
	{"global beats default", "{\"channels\":{\"email\":true}}", "t", CHANNEL_IN_APP, 0, 0, 1,
	    NOON, DS_SENT, DS_PENDING, NULL},
	{"global off", "{\"channels\":{\"email\":false,\"in_app\":false}}", "t", BOTH, 0, 0, 1,
	    NOON, DS_SKIPPED, DS_SKIPPED, NULL},
	{"type beats global", "{\"channels\":{\"email\":false},\"types\":{\"t\":{\"email\":true}}}",
	    "t", BOTH, 0, 0, 1, NOON, DS_SENT, DS_PENDING, NULL},
	{"type off, global on", "{\"channels\":{\"email\":true},\"types\":{\"t\":{\"email\":false}}}",
	    "t", BOTH, 0, 0, 1, NOON, DS_SENT, DS_SKIPPED, NULL},
	{"other type's rule", "{\"types\":{\"u\":{\"email\":false}}}", "t", BOTH, 0, 0, 1, NOON,
	    DS_SENT, DS_PENDING, NULL},
	{"critical ignores opt-out", "{\"channels\":{\"email\":false,\"in_app\":false}}", "t", BOTH,
	    1, 0, 1, NOON, DS_SENT, DS_PENDING, NULL},
	{"no address", "{}", "t", BOTH, 1, 0, 0, NOON, DS_SENT, DS_SKIPPED, NULL},
	{"quiet hours defer", "{" QUIET "}", "t", BOTH, 0, 0, 1, NIGHT, DS_SENT, DS_DEFERRED,
	    "2026-11-25T07:00:00+01:00"},
	{"quiet hours, daytime", "{" QUIET "}", "t", BOTH, 0, 0, 1, NOON, DS_SENT, DS_PENDING, NULL},
	{"urgent ignores quiet", "{" QUIET "}", "t", BOTH, 0, 1, 1, NIGHT, DS_SENT, DS_PENDING, NULL},
	{"critical ignores quiet", "{" QUIET "}", "t", BOTH, 1, 0, 1, NIGHT, DS_SENT, DS_PENDING, NULL},
	{"digest parks", "{\"digest\":\"daily\"}", "t", BOTH, 0, 0, 1, NOON, DS_SENT, DS_DIGEST, NULL},
	{"urgent ignores digest", "{\"digest\":\"weekly\"}", "t", BOTH, 0, 1, 1, NOON, DS_SENT,
	    DS_PENDING, NULL},
	{"critical ignores digest", "{\"digest\":\"daily\"}", "t", BOTH, 1, 0, 1, NOON, DS_SENT,
	    DS_PENDING, NULL},
	{"opted out beats digest", "{\"digest\":\"daily\",\"channels\":{\"email\":false}}", "t",
	    BOTH, 0, 0, 1, NOON, DS_SENT, DS_SKIPPED, NULL},
	{"email if unread waits", "{\"email_if_unread\":\"10m\"}", "t", BOTH, 0, 0, 1, NOON,
	    DS_SENT, DS_PENDING, "2026-11-24T12:10:00+01:00"},
	{"the wait runs into quiet hours", "{\"email_if_unread\":\"30m\"," QUIET "}", "t", BOTH, 0,
	    0, 1, "2026-11-24T21:45:00+01:00", DS_SENT, DS_DEFERRED, "2026-11-25T07:00:00+01:00"},
	{"critical does not wait", "{\"email_if_unread\":\"10m\"}", "t", BOTH, 1, 0, 1, NOON,
	    DS_SENT, DS_PENDING, NULL},
};

static void
test_route_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const struct rcase *c = &cases[i];
		struct prefs p = {.quiet_days = 0x7f};
		char err[256];
		json_t *doc = json_loads(c->prefs, 0, NULL);
		if (doc == NULL || !prefs_apply_json(&p, doc, true, err, sizeof err))
			fail_msg("%s: preferences: %s", c->name, err);
		json_decref(doc);
		struct route_in in = {c->type, c->defaults, c->critical, c->urgent, c->has_email,
		    "Europe/Berlin", at(c->time)};
		struct routing ia, em;
		prefs_route(&p, &in, &ia, &em);
		if (ia.status != c->in_app || em.status != c->email)
			fail_msg("%s: in_app %s email %s, want %s and %s", c->name,
			    delivery_status_name(ia.status), delivery_status_name(em.status),
			    delivery_status_name(c->in_app), delivery_status_name(c->email));
		int64_t want = c->email_at ? at(c->email_at) : at(c->time);
		if ((em.status == DS_PENDING || em.status == DS_DEFERRED) && em.next_at != want)
			fail_msg("%s: email at %lld, want %lld", c->name, (long long)em.next_at,
			    (long long)want);
	}
}

static void
test_document(void **state)
{
	(void)state;
	struct prefs p = {.quiet_days = 0x7f};
	char err[256];
	json_t *doc = json_loads("{\"channels\":{\"email\":false},\"types\":{\"order_shipped\":"
	    "{\"email\":true,\"in_app\":false}},\"quiet_hours\":{\"start\":\"22:00\",\"end\":"
	    "\"07:00\",\"days\":[\"mon\",\"fri\"]},\"digest\":\"daily\",\"email_if_unread\":\"90m\"}",
	    0, NULL);
	assert_true(prefs_apply_json(&p, doc, true, err, sizeof err));
	json_t *back = prefs_to_json(&p);
	char *s = json_dumps(back, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(s, "{\"channels\":{\"email\":false},\"digest\":\"daily\","
	    "\"email_if_unread\":\"90m\",\"quiet_hours\":{\"days\":[\"mon\",\"fri\"],\"end\":"
	    "\"07:00\",\"start\":\"22:00\"},\"types\":{\"order_shipped\":{\"email\":true,"
	    "\"in_app\":false}}}");
	free(s);
	json_decref(back);
	json_decref(doc);

	/* A merge patch: null removes, the rest stays. */
	doc = json_loads("{\"types\":{\"order_shipped\":{\"in_app\":null}},\"quiet_hours\":null}",
	    0, NULL);
	assert_true(prefs_apply_json(&p, doc, false, err, sizeof err));
	json_decref(doc);
	assert_false(p.quiet);
	assert_true(prefs_enabled(&p, "order_shipped", CHANNEL_IN_APP, CHANNEL_IN_APP));
	assert_true(prefs_enabled(&p, "order_shipped", CHANNEL_EMAIL, 0));
	assert_false(prefs_enabled(&p, "other", CHANNEL_EMAIL, BOTH));
	assert_int_equal(p.digest, DIGEST_DAILY);

	/* Errors name the field. */
	const char *bad[][2] = {
		{"{\"channels\":{\"sms\":true}}", "'channels.sms': unknown channel"},
		{"{\"channels\":{\"email\":\"yes\"}}", "'channels.email' must be true, false or null"},
		{"{\"types\":{\"Bad Type\":{}}}", "'types.Bad Type': not a type name"},
		{"{\"quiet_hours\":{\"start\":\"25:00\",\"end\":\"07:00\"}}", "'quiet_hours'"},
		{"{\"quiet_hours\":{\"start\":\"22:00\",\"end\":\"07:00\",\"days\":[\"xx\"]}}",
		    "'quiet_hours.days'"},
		{"{\"digest\":\"hourly\"}", "'digest' must be off, daily or weekly"},
		{"{\"email_if_unread\":\"soon\"}", "'email_if_unread'"},
		{"{\"colour\":\"blue\"}", "'colour': unknown preference"},
		{"[]", "must be a JSON object"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct prefs q = {.quiet_days = 0x7f};
		doc = json_loads(bad[i][0], JSON_DECODE_ANY, NULL);
		assert_non_null(doc);
		err[0] = '\0';
		if (prefs_apply_json(&q, doc, false, err, sizeof err) || strstr(err, bad[i][1]) == NULL)
			fail_msg("%s: error '%s', want '%s'", bad[i][0], err, bad[i][1]);
		json_decref(doc);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tz_local),
		cmocka_unit_test(test_quiet_hours),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_route_table),
		cmocka_unit_test(test_document),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
