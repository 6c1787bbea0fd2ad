/* web — the embedded pages, their gzip copies and their entity tags. */
#include "web.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "embed.h"

#define MAX_ASSETS 64

static struct web_asset assets[MAX_ASSETS];
static size_t nassets;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The file name of an embedded path: web/inbox.js, build/x/gen/web/inbox.js.gz. */
static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static const char *
type_of(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".html", "text/html; charset=utf-8"},
		{".css", "text/css; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"},
		{".svg", "image/svg+xml"},
		{".json", "application/json"},
		{".txt", "text/plain; charset=utf-8"},
	};
	size_t nl = strlen(name);
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		size_t el = strlen(types[i].ext);
		if (nl > el && strcmp(name + nl - el, types[i].ext) == 0)
			return types[i].type;
	}
	return "application/octet-stream";
}

/* FNV-1a over the bytes: a change of content is a change of tag. */
static uint64_t
hash_bytes(const unsigned char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static void
load(void)
{
	for (const struct embedded *e = embedded_web; e->name; e++) {
		const char *name = base_name(e->name);
		size_t nl = strlen(name);
		if (nl > 3 && strcmp(name + nl - 3, ".gz") == 0)
			continue;
		if (nassets == MAX_ASSETS)
			break;
		struct web_asset *a = &assets[nassets++];
		a->name = name;
		a->type = type_of(name);
		a->data = e->data;
		a->len = e->len;
		uint64_t h = hash_bytes(e->data, e->len);
		snprintf(a->etag, sizeof a->etag, "\"%016llx\"", (unsigned long long)h);
		snprintf(a->gzetag, sizeof a->gzetag, "\"%016llx-gz\"", (unsigned long long)h);
	}
	/* Each gzip copy to its asset, when it is worth sending. */
	for (const struct embedded *e = embedded_web; e->name; e++) {
		const char *name = base_name(e->name);
		size_t nl = strlen(name);
		if (nl <= 3 || strcmp(name + nl - 3, ".gz") != 0)
			continue;
		for (size_t i = 0; i < nassets; i++)
			if (strlen(assets[i].name) == nl - 3 &&
			    strncmp(assets[i].name, name, nl - 3) == 0 && e->len < assets[i].len) {
				assets[i].gz = e->data;
				assets[i].gzlen = e->len;
			}
	}
}

const struct web_asset *
web_find(const char *name)
{
	pthread_once(&once, load);
	for (size_t i = 0; i < nassets; i++)
		if (strcmp(assets[i].name, name) == 0)
			return &assets[i];
	return NULL;
}

/* The next comma-separated token of *p, trimmed, into tok; its q= into *q. */
static bool
next_token(const char **p, char *tok, size_t n, double *q)
{
	const char *s = *p;
	s += strspn(s, " \t,");
	if (*s == '\0')
		return false;
	size_t l = strcspn(s, ",");
	const char *semi = memchr(s, ';', l);
	size_t tl = semi ? (size_t)(semi - s) : l;
	while (tl > 0 && (s[tl - 1] == ' ' || s[tl - 1] == '\t'))
		tl--;
	snprintf(tok, n, "%.*s", (int)tl, s);
	*q = 1;
	if (semi != NULL) {
		const char *qs = strstr(semi, "q=");
		if (qs != NULL && qs < s + l)
			sscanf(qs + 2, "%lf", q);
	}
	*p = s + l;
	return true;
}

bool
web_accepts_gzip(const char *ae)
{
	char tok[64];
	double q;
	bool star = false, gzip = false, seen = false;
	for (const char *p = ae ? ae : ""; next_token(&p, tok, sizeof tok, &q);) {
		if (strcasecmp(tok, "gzip") == 0 || strcasecmp(tok, "x-gzip") == 0) {
			gzip = q > 0;
			seen = true;
		} else if (strcmp(tok, "*") == 0) {
			star = q > 0;
		}
	}
	return seen ? gzip : star;
}

bool
web_etag_matches(const char *inm, const char *etag)
{
	char tok[128];
	double q;
	for (const char *p = inm ? inm : ""; next_token(&p, tok, sizeof tok, &q);) {
		const char *t = strncmp(tok, "W/", 2) == 0 ? tok + 2 : tok;
		if (strcmp(t, "*") == 0 || strcmp(t, etag) == 0)
			return true;
	}
	return false;
}
