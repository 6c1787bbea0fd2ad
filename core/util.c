/* util — growable buffers, time and small string helpers shared by all. */
#define _GNU_SOURCE
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
buf_init(struct buf *b)
{
	memset(b, 0, sizeof *b);
}

void
buf_init_stack(struct buf *b, char *mem, size_t cap)
{
	memset(b, 0, sizeof *b);
	b->data = mem;
	b->cap = cap;
	b->on_stack = true;
	mem[0] = '\0';
}

void
buf_free(struct buf *b)
{
	if (!b->on_stack)
		free(b->data);
	memset(b, 0, sizeof *b);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->data != NULL)
		b->data[0] = '\0';
}

bool
buf_reserve(struct buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	char *p;
	if (b->on_stack) {
		p = malloc(cap);
		if (p != NULL && b->len > 0)
			memcpy(p, b->data, b->len);
	} else {
		p = realloc(b->data, cap);
	}
	if (p == NULL) {
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	b->on_stack = false;
	return true;
}

void
buf_put(struct buf *b, const void *p, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_puts(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

void
buf_putc(struct buf *b, char c)
{
	buf_put(b, &c, 1);
}

void
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || !buf_reserve(b, (size_t)n))
		return;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

char *
buf_take(struct buf *b)
{
	char *p;
	if (b->oom) {
		buf_free(b);
		return NULL;
	}
	if (b->on_stack || b->data == NULL) {
		p = strndup(b->data ? b->data : "", b->len);
		buf_free(b);
		return p;
	}
	p = b->data;
	memset(b, 0, sizeof *b);
	return p;
}

int64_t
time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
time_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Two decimal digits of v at p. */
static char *
put2(char *p, int v)
{
	*p++ = (char)('0' + v / 10);
	*p++ = (char)('0' + v % 10);
	return p;
}

/*
 * Without gmtime_r and printf: an inbox page formats three times a row,
 * and snprintf was a tenth of a page's CPU. The date from the day number
 * is Howard Hinnant's days_from_civil, inverted.
 */
void
time_format_rfc3339(char *out, size_t n, int64_t ms)
{
	char t[32], *p = t;
	int64_t secs = ms / 1000;
	int frac = (int)(ms % 1000);
	if (frac < 0) {
		frac += 1000;
		secs -= 1;
	}
	int64_t days = secs / 86400, sod = secs % 86400;
	if (sod < 0) {
		sod += 86400;
		days -= 1;
	}
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int d = (int)(doy - (153 * mp + 2) / 5 + 1);
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);
	int64_t y = yoe + era * 400 + (m <= 2);
	if (y < 0 || y > 9999) {	/* out of RFC 3339's range: as gmtime would print it */
		snprintf(out, n, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
		    (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), frac);
		return;
	}
	p = put2(put2(p, (int)(y / 100)), (int)(y % 100));
	*p++ = '-';
	p = put2(p, m);
	*p++ = '-';
	p = put2(p, d);
	*p++ = 'T';
	p = put2(p, (int)(sod / 3600));
	*p++ = ':';
	p = put2(p, (int)(sod / 60 % 60));
	*p++ = ':';
	p = put2(p, (int)(sod % 60));
	*p++ = '.';
	*p++ = (char)('0' + frac / 100);
	p = put2(p, frac % 100);
	*p++ = 'Z';
	*p = '\0';
	str_copy(out, n, t);
}

void
buf_put_int(struct buf *b, int64_t v)
{
	char d[24], *p = d + sizeof d;
	uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) > 0);
	if (v < 0)
		*--p = '-';
	buf_put(b, p, (size_t)(d + sizeof d - p));
}

void
buf_put_time(struct buf *b, int64_t ms)
{
	char ts[40];
	time_format_rfc3339(ts, sizeof ts, ms);
	buf_putc(b, '"');
	buf_puts(b, ts);
	buf_putc(b, '"');
}

void
buf_json_string(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	buf_reserve(b, len + 2);
	buf_putc(b, '"');
	size_t run = 0;		/* bytes copied as they are, put in one go */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			run++;
			continue;
		}
		buf_put(b, s + i - run, run);
		run = 0;
		char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
		size_t el = 2;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			el = 6;
		}
		buf_put(b, esc, el);
	}
	buf_put(b, s + len - run, run);
	buf_putc(b, '"');
}

/* Read exactly n digits at *p into *v. */
static bool
digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)**p))
			return false;
		*v = *v * 10 + (**p - '0');
		(*p)++;
	}
	return true;
}

bool
time_parse_rfc3339(const char *s, int64_t *ms)
{
	int Y, M, D, h, m, sec, frac = 0;
	const char *p = s;
	if (s == NULL)
		return false;
	if (!digits(&p, 4, &Y) || *p++ != '-' || !digits(&p, 2, &M) ||
	    *p++ != '-' || !digits(&p, 2, &D) ||
	    (*p != 'T' && *p != 't' && *p != ' '))
		return false;
	p++;
	if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &m) ||
	    *p++ != ':' || !digits(&p, 2, &sec))
		return false;
	if (*p == '.') {
		p++;
		int nd = 0;
		while (isdigit((unsigned char)*p)) {
			if (nd < 3)
				frac = frac * 10 + (*p - '0');
			nd++;
			p++;
		}
		if (nd == 0)
			return false;
		for (; nd < 3; nd++)
			frac *= 10;
	}
	int off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om;
		p++;
		if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) ||
		    oh > 23 || om > 59)
			return false;
		off = sign * (oh * 60 + om);
	} else {
		return false;
	}
	if (*p != '\0' || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 ||
	    m > 59 || sec > 60)
		return false;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (D > mdays[M - 1] || (M == 2 && D == 29 && !leap))
		return false;
	struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D,
	    .tm_hour = h, .tm_min = m, .tm_sec = sec > 59 ? 59 : sec};
	time_t t = timegm(&tm);
	*ms = ((int64_t)t - (int64_t)off * 60) * 1000 + frac;
	return true;
}

bool
duration_parse(const char *s, int64_t *ms)
{
	static const struct { const char *unit; int64_t ms; } units[] = {
		{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
		{"d", 86400000}, {"w", 7 * 86400000LL},
	};
	int64_t total = 0;
	const char *p = s;
	if (*p == '\0')
		return false;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return false;
		int64_t n = 0;
		while (isdigit((unsigned char)*p)) {
			if (n > INT64_MAX / 10 - 10)
				return false;
			n = n * 10 + (*p++ - '0');
		}
		size_t i, best = sizeof units / sizeof units[0];
		for (i = 0; i < sizeof units / sizeof units[0]; i++) {
			size_t l = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, l) == 0 &&
			    (best == sizeof units / sizeof units[0] ||
			     l > strlen(units[best].unit)))
				best = i;
		}
		if (best == sizeof units / sizeof units[0])
			return false;
		if (n > INT64_MAX / units[best].ms ||
		    total > INT64_MAX - n * units[best].ms)
			return false;
		total += n * units[best].ms;
		p += strlen(units[best].unit);
	}
	*ms = total;
	return true;
}

bool
time_parse_at(const char *s, int64_t now, int64_t *ms)
{
	int64_t d;
	if (*s != '+')
		return time_parse_rfc3339(s, ms);
	if (!duration_parse(s + 1, &d) || now > INT64_MAX - d)
		return false;
	*ms = now + d;
	return true;
}

bool
parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool
json_depth_ok(const char *s, size_t len, int max)
{
	int depth = 0;
	bool in_string = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_string) {
			if (c == '\\')
				i++;	/* the escaped character cannot end the string */
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				return false;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return true;
}

json_t *
json_load_bounded(const char *s, size_t len, size_t flags, json_error_t *err, bool *too_deep)
{
	bool deep = !json_depth_ok(s, len, JSON_MAX_DEPTH);
	if (too_deep != NULL)
		*too_deep = deep;
	if (!deep) {
		json_t *j = json_loadb(s, len, flags, err);
		/* jansson names its own flag to a client that cannot set it. */
		static const char flag[] = " without JSON_ALLOW_NUL";
		char *at = j == NULL ? strstr(err->text, flag) : NULL;
		if (at != NULL)
			memmove(at, at + sizeof flag - 1, strlen(at + sizeof flag - 1) + 1);
		return j;
	}
	memset(err, 0, sizeof *err);
	snprintf(err->text, sizeof err->text, "arrays and objects nest deeper than %d levels",
	    JSON_MAX_DEPTH);
	return NULL;
}

uint64_t
hash_str(const char *s)
{
	uint64_t hv = 1469598103934665603ULL;
	for (; *s; s++)
		hv = (hv ^ (unsigned char)*s) * 1099511628211ULL;
	return hv;
}

size_t
str_copy(char *out, size_t n, const char *src)
{
	if (src == NULL)
		src = "";
	size_t len = strlen(src);
	if (n > 0) {
		size_t k = len < n ? len : n - 1;
		memcpy(out, src, k);
		out[k] = '\0';
	}
	return len;
}

char *
strdup_or_null(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}
