/* Unit tests: a digest's slot and window in the user's zone, and who is due at a local hour. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "digest.h"
#include "util.h"

/* ms of an RFC 3339 time. */
static int64_t
at(const char *s)
{
	int64_t ms;
	assert_true(time_parse_rfc3339(s, &ms));
	return ms;
}

static void
assert_window(const struct digest_slot *s, const char *name, const char *start, const char *end)
{
	assert_string_equal(s->name, name);
	assert_int_equal(s->start, at(start));
	assert_int_equal(s->end, at(end));
}

/* A daily slot is the user's local day, 23 or 25 hours long where the clocks change. */
static void
test_daily_slots_follow_the_local_day(void **state)
{
	(void)state;
	struct digest_slot s;
	const struct tz *berlin = tz_get("Europe/Berlin"), *ny = tz_get("America/New_York");
	assert_non_null(berlin);
	assert_non_null(ny);
	digest_slot(DIGEST_DAILY, berlin, at("2026-11-30T07:00:00Z"), &s);
	assert_window(&s, "2026-11-30", "2026-11-29T23:00:00Z", "2026-11-30T23:00:00Z");
	assert_int_equal(s.local.hour, 8);
	/* Spring forward: 02:00 is 03:00; the day is 23 hours. */
	digest_slot(DIGEST_DAILY, berlin, at("2026-03-29T01:30:00Z"), &s);
	assert_window(&s, "2026-03-29", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
	assert_int_equal(s.local.hour, 3);
	/* Fall back: 03:00 is 02:00 again; 25 hours. */
	digest_slot(DIGEST_DAILY, berlin, at("2026-10-25T12:00:00Z"), &s);
	assert_window(&s, "2026-10-25", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z");
	/* West of UTC the local date is still yesterday's. */
	digest_slot(DIGEST_DAILY, ny, at("2026-03-29T01:30:00Z"), &s);
	assert_window(&s, "2026-03-28", "2026-03-28T04:00:00Z", "2026-03-29T04:00:00Z");
	assert_int_equal(s.local.hour, 21);
	digest_slot(DIGEST_DAILY, tz_get(NULL), at("2026-01-01T00:00:00Z"), &s);
	assert_window(&s, "2026-01-01", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
}

/* A weekly slot is the local ISO week, Monday to Monday. */
static void
test_weekly_slots_are_iso_weeks(void **state)
{
	(void)state;
	struct digest_slot s;
	const struct tz *utc = tz_get(NULL), *kol = tz_get("Asia/Kolkata");
	digest_slot(DIGEST_WEEKLY, utc, at("2026-11-30T10:00:00Z"), &s);	/* a Monday */
	assert_window(&s, "2026-W49", "2026-11-30T00:00:00Z", "2026-12-07T00:00:00Z");
	digest_slot(DIGEST_WEEKLY, utc, at("2026-12-06T23:59:00Z"), &s);	/* its Sunday */
	assert_string_equal(s.name, "2026-W49");
	/* 2026 has 53 weeks (it began on a Thursday); 1 January 2027 is in its last. */
	digest_slot(DIGEST_WEEKLY, utc, at("2027-01-01T12:00:00Z"), &s);
	assert_window(&s, "2026-W53", "2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z");
	/* 29 December 2025 is in 2026's first. */
	digest_slot(DIGEST_WEEKLY, utc, at("2025-12-29T12:00:00Z"), &s);
	assert_string_equal(s.name, "2026-W01");
	/* Sunday 20:00 UTC is already Monday in Kolkata. */
	digest_slot(DIGEST_WEEKLY, kol, at("2026-11-29T20:00:00Z"), &s);
	assert_window(&s, "2026-W49", "2026-11-29T18:30:00Z", "2026-12-06T18:30:00Z");
	assert_int_equal(s.local.wday, 0);
}

/* Who is due at a local hour and day. */
static void
test_due_by_local_hour_and_day(void **state)
{
	(void)state;
	struct digest_slot s;
	const struct tz *zones[] = {tz_get("Europe/Berlin"), tz_get("America/New_York"),
	    tz_get("Asia/Kolkata")};
	int64_t now = at("2026-03-29T01:30:00Z");	/* Sunday; Saturday in New York */
	int hours[] = {3, 21, 7}, days[] = {6, 5, 6};
	for (int i = 0; i < 3; i++) {
		digest_slot(DIGEST_DAILY, zones[i], now, &s);
		assert_true(digest_due(&s, hours[i], -1));
		assert_true(digest_due(&s, -1, -1));
		assert_false(digest_due(&s, (hours[i] + 1) % 24, -1));
		assert_true(digest_due(&s, hours[i], days[i]));
		assert_false(digest_due(&s, hours[i], (days[i] + 1) % 7));
	}
	/* 02:00 never happens in Berlin that day: nobody there is due at 2. */
	for (int64_t t = at("2026-03-28T23:00:00Z"); t < at("2026-03-29T22:00:00Z"); t += 60000) {
		digest_slot(DIGEST_DAILY, zones[0], t, &s);
		assert_false(digest_due(&s, 2, -1));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_daily_slots_follow_the_local_day),
		cmocka_unit_test(test_weekly_slots_are_iso_weeks),
		cmocka_unit_test(test_due_by_local_hour_and_day),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
