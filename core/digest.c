/* digest — slots, due times and the email's data of digests; see digest.h. */
#include "digest.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

void
digest_slot(enum digest_mode period, const struct tz *z, int64_t now, struct digest_slot *out)
{
	struct civil c, day;
	tz_local(z, now, &c);
	out->local = c;
	day = c;
	day.hour = day.minute = 0;
	if (period == DIGEST_WEEKLY) {
		/* ISO 8601: weeks start on Monday; week 1 holds the year's first Thursday. */
		int64_t thursday = tz_day_number(c.year, c.month, c.day) - c.wday + 3;
		struct civil th;
		tz_civil_date(thursday, &th);
		int64_t week = (thursday - tz_day_number(th.year, 1, 1)) / 7 + 1;
		snprintf(out->name, sizeof out->name, "%04d-W%02d", th.year, (int)week);
		day.day -= c.wday;	/* tz_instant takes a day outside the month */
		out->start = tz_instant(z, &day);
		day.day += 7;
		out->end = tz_instant(z, &day);
	} else {
		snprintf(out->name, sizeof out->name, "%04d-%02d-%02d", c.year, c.month, c.day);
		out->start = tz_instant(z, &day);
		day.day += 1;
		out->end = tz_instant(z, &day);
	}
}

bool
digest_due(const struct digest_slot *s, int local_hour, int local_day)
{
	return (local_hour < 0 || s->local.hour == local_hour) &&
	    (local_day < 0 || s->local.wday == local_day);
}

/* "Mon 30 Nov 14:05" at t in zone z. */
static void
local_time(const struct tz *z, int64_t t, char *out, size_t n)
{
	static const char *const days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
	    "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct civil c;
	tz_local(z, t, &c);
	snprintf(out, n, "%s %d %s %02d:%02d", days[c.wday], c.day, months[c.month - 1], c.hour,
	    c.minute);
}

json_t *
digest_notification(json_t *digest, const struct tz *z, const char *inbox_url,
    int64_t max_items)
{
	json_t *items = json_array(), *n;
	size_t i;
	int64_t count = json_integer_value(json_object_get(digest, "items"));
	json_array_foreach(json_object_get(digest, "notifications"), i, n) {
		if ((int64_t)i >= max_items)
			break;
		int64_t at;
		char when[40] = "";
		if (time_parse_rfc3339(json_string_value(json_object_get(n, "created_at")), &at))
			local_time(z, at, when, sizeof when);
		json_array_append_new(items, json_pack("{s:O, s:O, s:O, s:O, s:s, s:b}",
		    "title", json_object_get(n, "title"), "body", json_object_get(n, "body"),
		    "url", json_object_get(n, "url"), "type", json_object_get(n, "type"),
		    "time", when, "read", !json_is_null(json_object_get(n, "read_at"))));
	}
	int64_t more = count - (int64_t)json_array_size(items);
	return json_pack("{s:s, s:O, s:s, s:{s:I, s:b, s:o, s:I, s:b, s:s, s:O}}", "type", "digest",
	    "user", json_object_get(digest, "user"), "priority", "normal", "data",
	    "count", (json_int_t)count, "one", count == 1, "items", items,
	    "more", (json_int_t)(more > 0 ? more : 0), "any_more", more > 0,
	    "inbox_url", inbox_url, "period", json_object_get(digest, "period"));
}

json_t *
digest_sample(void)
{
	return json_pack("{s:i, s:b, s:[{s:s, s:s, s:s, s:s, s:s, s:b}, {s:s, s:s, s:n, s:s, s:s, "
	    "s:b}, {s:s, s:s, s:s, s:s, s:s, s:b}], s:i, s:b, s:s, s:s}",
	    "count", 53, "one", 0, "items",
	    "title", "Order A-17 has shipped", "body", "Your order A-17 is on its way with DHL.",
	    "url", "https://shop.example/orders/A-17", "type", "order_shipped",
	    "time", "Mon 30 Nov 14:05", "read", 0,
	    "title", "Payment of 49.90 EUR received", "body", "We received your payment.",
	    "url", "type", "payment_succeeded", "time", "Mon 30 Nov 09:12", "read", 0,
	    "title", "New match: Ann", "body", "You matched with Ann.",
	    "url", "https://shop.example/matches/7", "type", "match_created",
	    "time", "Sun 29 Nov 21:40", "read", 1,
	    "more", 50, "any_more", 1, "inbox_url", "http://localhost:8025/inbox",
	    "period", "daily");
}
