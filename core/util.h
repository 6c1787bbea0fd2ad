/* util — growable buffers, time and small string helpers shared by all. */
#ifndef NOTIFYD_UTIL_H
#define NOTIFYD_UTIL_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer; always NUL-terminated when data != NULL. */
struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	bool	 on_stack;	/* data is caller storage, not malloc'd */
	bool	 oom;		/* an append failed; contents are truncated */
};

void	 buf_init(struct buf *b);
void	 buf_init_stack(struct buf *b, char *mem, size_t cap);
void	 buf_free(struct buf *b);
void	 buf_reset(struct buf *b);
bool	 buf_reserve(struct buf *b, size_t extra);
void	 buf_put(struct buf *b, const void *p, size_t n);
void	 buf_puts(struct buf *b, const char *s);
void	 buf_putc(struct buf *b, char c);
void	 buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	 buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/*
 * Append s (len bytes of UTF-8) as a JSON string, escaped as jansson's
 * compact output escapes it: quote, backslash and control characters.
 */
void	 buf_json_string(struct buf *b, const char *s, size_t len);
/* Append v in decimal. */
void	 buf_put_int(struct buf *b, int64_t v);
/* Append ms as a quoted RFC 3339 time, a JSON string. */
void	 buf_put_time(struct buf *b, int64_t ms);
/* Hand the contents to the caller (malloc'd, NUL-terminated) and reset. */
char	*buf_take(struct buf *b);

/* Milliseconds since the Unix epoch, wall clock. */
int64_t	 time_now_ms(void);
/* Monotonic milliseconds, for timeouts. */
int64_t	 time_mono_ms(void);
/*
 * RFC 3339 times, written here rather than through GLib's GDateTime:
 * formatting runs three times for every notification of an inbox page
 * and is arithmetic with no allocation (GDateTime allocates twice a
 * time), and GLib's parser takes ISO 8601 forms RFC 3339 does not allow
 * (week and ordinal dates, no offset), which the API must refuse. Both
 * use only libc, so notifyctl links them too.
 */
/* "2026-11-23T10:11:12.345Z"; needs 25 bytes. */
void	 time_format_rfc3339(char *out, size_t n, int64_t ms);
/* Parse RFC 3339 (with offset or Z) into ms; false when malformed. */
bool	 time_parse_rfc3339(const char *s, int64_t *ms);
/* Parse a duration such as "90s", "15m", "1h30m", "7d", "500ms". */
bool	 duration_parse(const char *s, int64_t *ms);
/*
 * A time to act at: RFC 3339, or "+" and a duration from now ("+15m",
 * "+1h30m"), as a scheduled send's `at` takes it; false when malformed.
 */
bool	 time_parse_at(const char *s, int64_t now, int64_t *ms);

/* Whole string is a decimal integer in [min, max]. */
bool	 parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/*
 * How deep untrusted JSON may nest arrays and objects. jansson parses and
 * writes recursively, once per level, and civetweb's workers run on fixed
 * ~100 KiB stacks: a 2 KB body nested 1,000 deep overflowed one. Every
 * parse of JSON from outside goes through json_load_bounded().
 */
#define JSON_MAX_DEPTH	32
/* Do the arrays and objects of JSON text s nest at most max deep? Linear, no recursion. */
bool	 json_depth_ok(const char *s, size_t len, int max);
/*
 * json_loadb() of untrusted text: text nested deeper than JSON_MAX_DEPTH
 * is refused before jansson sees it (NULL, err->text saying so, and
 * *too_deep set when given).
 */
json_t	*json_load_bounded(const char *s, size_t len, size_t flags, json_error_t *err,
	    bool *too_deep);

/* FNV-1a hash of a string, for hash tables. */
uint64_t hash_str(const char *s);
/* strdup that returns NULL for NULL. */
char	*strdup_or_null(const char *s);
/*
 * src (NULL: "") into out (n bytes), cut to fit and always ended (n > 0); its length.
 * What snprintf(out, n, "%s", src) does, without formatting: hot paths
 * (every timestamp of every answer) spent more in vfprintf than in the copy.
 */
size_t	 str_copy(char *out, size_t n, const char *src);

#endif
