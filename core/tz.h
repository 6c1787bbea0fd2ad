/*
 * tz — IANA time zones (GLib's GTimeZone reads the system's files),
 * without touching the process-wide TZ, so any thread may ask about any
 * zone.
 */
#ifndef NOTIFYD_TZ_H
#define NOTIFYD_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tz;

/* A wall-clock time. */
struct civil {
	int	 year, month, day;	/* month 1-12 */
	int	 hour, minute;
	int	 wday;			/* 0 Monday .. 6 Sunday */
};

/* The zone named name (NULL or "": UTC), loaded once and kept; NULL when unknown. */
const struct tz	*tz_get(const char *name);
/* The days since 1970-01-01 of y-m-d (proleptic Gregorian; d may overflow the month). */
int64_t		 tz_day_number(int64_t y, int m, int d);
/* The date (year, month, day) of day number z. */
void		 tz_civil_date(int64_t z, struct civil *c);
/*
 * The server's own zone, for users who set none: TZ (a zone name), else
 * the one /etc/localtime links to, else /etc/timezone's, else UTC.
 */
const struct tz	*tz_server(void);
/* The zone's name, as tz_get() took it ("UTC" for UTC). */
const char	*tz_name(const struct tz *z);
/* Is name a zone of the system's database? */
bool		 tz_valid(const char *name);
/* Seconds east of UTC in effect at t (ms). */
int32_t		 tz_offset(const struct tz *z, int64_t t);
/* The wall-clock time at t (ms). */
void		 tz_local(const struct tz *z, int64_t t, struct civil *out);
/*
 * The first instant (ms) showing the wall-clock time c (c.wday ignored;
 * day may overflow the month). A time skipped by a change to summer time
 * is taken as the moment of the change; a time shown twice, the first.
 */
int64_t		 tz_instant(const struct tz *z, const struct civil *c);

#endif
