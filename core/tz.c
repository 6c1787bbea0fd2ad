/*
 * tz — time zones from TZif files (RFC 8536, version 2 and later: the
 * 64-bit section). Zones are loaded on first use and kept for the life
 * of the process; Debian's files list every change up to 2037, and the
 * last offset holds after that.
 */
#include "tz.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZONEINFO	"/usr/share/zoneinfo"
#define MAX_ZONES	1024		/* tzdata has about 600 */

struct tz {
	char		 name[65];
	size_t		 n;		/* transitions */
	int64_t		*at;		/* seconds, ascending */
	int32_t		*off;		/* offset from at[i] on */
	int32_t		 first;		/* offset before at[0] */
};

static pthread_mutex_t zones_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tz *zones[MAX_ZONES];
static size_t nzones;
static struct tz utc = {"UTC", 0, NULL, NULL, 0};

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* A name that can only mean a file under ZONEINFO. */
static bool
name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 64 || name[0] == '/' || strstr(name, "..") != NULL)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr("/_+-", *p) == NULL)
			return false;
	return true;
}

/* Parse a TZif file; NULL when it is not one. */
static struct tz *
parse(const char *name, const unsigned char *d, size_t len)
{
	if (len < 44 || memcmp(d, "TZif", 4) != 0 || d[4] < '2')
		return NULL;
	/* Skip the 32-bit section. */
	uint32_t c[6];
	for (int i = 0; i < 6; i++)
		c[i] = be32(d + 20 + 4 * i);
	size_t skip = 44 + (size_t)c[3] * 5 + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * 8 + c[1] + c[0];
	if (skip + 44 > len || memcmp(d + skip, "TZif", 4) != 0)
		return NULL;
	const unsigned char *h = d + skip;
	for (int i = 0; i < 6; i++)
		c[i] = be32(h + 20 + 4 * i);
	size_t timecnt = c[3], typecnt = c[4];
	const unsigned char *times = h + 44, *idx = times + timecnt * 8, *types = idx + timecnt;
	if (typecnt == 0 || (size_t)(types + typecnt * 6 - d) > len)
		return NULL;
	struct tz *z = calloc(1, sizeof *z);
	if (z == NULL)
		return NULL;
	snprintf(z->name, sizeof z->name, "%s", name);
	z->at = calloc(timecnt + 1, sizeof *z->at);
	z->off = calloc(timecnt + 1, sizeof *z->off);
	if (z->at == NULL || z->off == NULL)
		goto bad;
	/* Before the first change: the first standard-time type (RFC 8536, 3.2). */
	z->first = (int32_t)be32(types);
	for (size_t i = 0; i < typecnt; i++)
		if (types[i * 6 + 4] == 0) {
			z->first = (int32_t)be32(types + i * 6);
			break;
		}
	for (size_t i = 0; i < timecnt; i++) {
		if (idx[i] >= typecnt)
			goto bad;
		z->at[i] = be64(times + i * 8);
		z->off[i] = (int32_t)be32(types + idx[i] * 6);
		if (i > 0 && z->at[i] <= z->at[i - 1])
			goto bad;
	}
	z->n = timecnt;
	return z;
bad:
	free(z->at);
	free(z->off);
	free(z);
	return NULL;
}

struct tz *
tz_parse_tzif(const unsigned char *data, size_t len)
{
	return parse("tzif", data, len);
}

void
tz_free(struct tz *z)
{
	if (z == NULL || z == &utc)
		return;
	free(z->at);
	free(z->off);
	free(z);
}

static struct tz *
load(const char *name)
{
	char path[128];
	unsigned char *buf = NULL;
	size_t len = 0;
	snprintf(path, sizeof path, ZONEINFO "/%s", name);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0) {
		long l = ftell(f);
		if (l > 0 && l < 1 << 20 && fseek(f, 0, SEEK_SET) == 0 &&
		    (buf = malloc((size_t)l)) != NULL)
			len = fread(buf, 1, (size_t)l, f);
	}
	fclose(f);
	struct tz *z = buf ? parse(name, buf, len) : NULL;
	free(buf);
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
		else
			z = NULL;	/* more zones than anyone uses: refuse, do not leak */
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
	int64_t s = t >= 0 ? t / 1000 : -((-t + 999) / 1000);
	if (z->n == 0 || s < z->at[0])
		return z->first;
	size_t lo = 0, hi = z->n;	/* at[lo] <= s < at[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->at[mid] <= s)
			lo = mid;
		else
			hi = mid;
	}
	return z->off[lo];
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
	/* Skipped: the change happened between t2 and t1; find it. */
	int64_t lo = t2 < t1 ? t2 : t1, hi = t2 < t1 ? t1 : t2;
	for (size_t i = 0; i < z->n; i++)
		if (z->at[i] > lo && z->at[i] <= hi)
			return z->at[i] * 1000;
	return t1 * 1000;
}
