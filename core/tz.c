/*
 * tz — time zones through GLib's GTimeZone, which reads the system's
 * TZif files itself, footer included (the POSIX TZ string that governs
 * every time past the last listed change, all of them in "slim" files),
 * and needs no process-wide TZ. Zones are loaded on first use and kept for
 * the life of the process. What is ours is the arithmetic of civil dates
 * and the choice of an instant for a wall-clock time.
 */
#include "tz.h"

#include <ctype.h>
#include <glib.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ZONES	1024		/* tzdata has about 600 */

struct tz {
	char		 name[65];
	GTimeZone	*z;
};

static pthread_mutex_t zones_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tz *zones[MAX_ZONES];
static size_t nzones;
static struct tz utc = {"UTC", NULL};

/* A name that can only mean a zone of the database (not "+05:00", not a path). */
static bool
name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 64 || !isalpha((unsigned char)name[0]) ||
	    strstr(name, "..") != NULL)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr("/_+-", *p) == NULL)
			return false;
	return true;
}

/* The zone named name, read by GLib; NULL when there is no such zone. */
static struct tz *
load(const char *name)
{
	GTimeZone *g = g_time_zone_new_identifier(name);
	if (g == NULL)
		return NULL;
	struct tz *z = calloc(1, sizeof *z);
	if (z == NULL) {
		g_time_zone_unref(g);
		return NULL;
	}
	snprintf(z->name, sizeof z->name, "%s", name);
	z->z = g;
	return z;
}

const struct tz *
tz_get(const char *name)
{
	if (name == NULL || *name == '\0' || strcmp(name, "UTC") == 0)
		return &utc;
	if (!name_ok(name))
		return NULL;
	pthread_mutex_lock(&zones_lock);
	struct tz *z = NULL;
	for (size_t i = 0; i < nzones && z == NULL; i++)
		if (strcmp(zones[i]->name, name) == 0)
			z = zones[i];
	if (z == NULL && (z = load(name)) != NULL) {
		if (nzones < MAX_ZONES)
			zones[nzones++] = z;
		else {		/* more zones than anyone uses: refuse, do not leak */
			g_time_zone_unref(z->z);
			free(z);
			z = NULL;
		}
	}
	pthread_mutex_unlock(&zones_lock);
	return z;
}

static const struct tz *server_zone;

/* Find the server's zone: TZ, the zoneinfo file /etc/localtime links to, /etc/timezone, UTC. */
static void
server_find(void)
{
	char buf[PATH_MAX];
	const char *tz = getenv("TZ"), *name = NULL;
	if (tz != NULL && *tz == ':')
		tz++;
	if (tz != NULL && *tz != '\0' && tz_get(tz) != NULL)
		name = tz;
	ssize_t n;
	if (name == NULL && (n = readlink("/etc/localtime", buf, sizeof buf - 1)) > 0) {
		buf[n] = '\0';
		const char *z = strstr(buf, "zoneinfo/");
		if (z != NULL && tz_get(z + 9) != NULL)
			name = z + 9;
	}
	FILE *f;
	if (name == NULL && (f = fopen("/etc/timezone", "r")) != NULL) {
		if (fgets(buf, sizeof buf, f) != NULL) {
			buf[strcspn(buf, " \t\r\n")] = '\0';
			if (tz_get(buf) != NULL)
				name = buf;
		}
		fclose(f);
	}
	server_zone = tz_get(name);	/* NULL or unknown: UTC */
	if (server_zone == NULL)
		server_zone = tz_get(NULL);
}

const struct tz *
tz_server(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, server_find);
	return server_zone;
}

const char *
tz_name(const struct tz *z)
{
	return z->name;
}

bool
tz_valid(const char *name)
{
	return name != NULL && *name != '\0' && tz_get(name) != NULL;
}

int32_t
tz_offset(const struct tz *z, int64_t t)
{
	if (z->z == NULL)
		return 0;
	gint64 s = t >= 0 ? t / 1000 : -((-t + 999) / 1000);
	return g_time_zone_get_offset(z->z,
	    g_time_zone_find_interval(z->z, G_TIME_TYPE_UNIVERSAL, s));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
int64_t
tz_day_number(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void
tz_civil_date(int64_t z, struct civil *c)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	c->day = (int)(doy - (153 * mp + 2) / 5 + 1);
	c->month = (int)(mp < 10 ? mp + 3 : mp - 9);
	c->year = (int)(yoe + era * 400 + (c->month <= 2));
}

void
tz_local(const struct tz *z, int64_t t, struct civil *out)
{
	int64_t s = (t >= 0 ? t / 1000 : -((-t + 999) / 1000)) + tz_offset(z, t);
	int64_t days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
	int64_t secs = s - days * 86400;
	tz_civil_date(days, out);
	out->hour = (int)(secs / 3600);
	out->minute = (int)(secs % 3600 / 60);
	out->wday = (int)(((days % 7) + 7 + 3) % 7);
}

int64_t
tz_instant(const struct tz *z, const struct civil *c)
{
	/* The wall-clock time read as if it were UTC, in seconds. */
	int64_t l = tz_day_number(c->year, c->month, 1) + c->day - 1;
	l = l * 86400 + c->hour * 3600 + c->minute * 60;
	/* At most one change lies within a day of it: try the offsets on either side. */
	int32_t before = tz_offset(z, (l - 86400) * 1000), after = tz_offset(z, (l + 86400) * 1000);
	int64_t t1 = l - before, t2 = l - after;
	bool ok1 = tz_offset(z, t1 * 1000) == before, ok2 = tz_offset(z, t2 * 1000) == after;
	if (ok1 && ok2)
		return (t1 < t2 ? t1 : t2) * 1000;
	if (ok1 || ok2)
		return (ok1 ? t1 : t2) * 1000;
	/* Skipped: the change to the later offset happened in (lo, hi]; find it. */
	int64_t lo = t2 < t1 ? t2 : t1, hi = t2 < t1 ? t1 : t2;
	if (tz_offset(z, hi * 1000) != after)
		return t1 * 1000;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (tz_offset(z, mid * 1000) == after)
			hi = mid;
		else
			lo = mid;
	}
	return hi * 1000;
}
