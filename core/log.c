/* log — one logfmt line per event on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static enum log_level min_level = LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void
log_set_level(enum log_level level)
{
	min_level = level;
}

int
log_enabled(enum log_level level)
{
	return level >= min_level;
}

/* Append a logfmt value, quoted when it has to be, never breaking the line. */
static void
put_value(struct buf *b, const char *s)
{
	if (s == NULL)
		s = "";
	int quote = *s == '\0';
	for (const char *p = s; *p && !quote; p++)
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
			quote = 1;
	if (!quote) {
		buf_puts(b, s);
		return;
	}
	buf_putc(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			buf_putc(b, '\\');
			buf_putc(b, (char)*p);
		} else if (*p == '\n') {
			buf_puts(b, "\\n");
		} else if (*p < ' ' || *p == 0x7f) {
			buf_printf(b, "\\x%02x", *p);
		} else {
			buf_putc(b, (char)*p);
		}
	}
	buf_putc(b, '"');
}

void
log_write(enum log_level level, const char *msg, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char stack[1024];
	struct buf b;
	buf_init_stack(&b, stack, sizeof stack);

	char ts[40];
	time_format_rfc3339(ts, sizeof ts, time_now_ms());
	buf_printf(&b, "ts=%s level=%s msg=", ts, level_names[level]);
	put_value(&b, msg);

	va_list ap;
	va_start(ap, fmt);
	if (fmt != NULL && *fmt != '\0')
		buf_putc(&b, ' ');
	for (const char *p = fmt; p != NULL && *p; p++) {
		if (*p != '%') {
			buf_putc(&b, *p);
			continue;
		}
		p++;
		if (*p == 's') {
			put_value(&b, va_arg(ap, const char *));
		} else if (*p == 'd') {
			buf_printf(&b, "%d", va_arg(ap, int));
		} else if (*p == 'u') {
			buf_printf(&b, "%u", va_arg(ap, unsigned));
		} else if (strncmp(p, "lld", 3) == 0) {
			buf_printf(&b, "%lld", va_arg(ap, long long));
			p += 2;
		} else if (strncmp(p, "ld", 2) == 0) {
			buf_printf(&b, "%ld", va_arg(ap, long));
			p += 1;
		} else if (strncmp(p, "zu", 2) == 0) {
			buf_printf(&b, "%zu", va_arg(ap, size_t));
			p += 1;
		} else if (*p == '%') {
			buf_putc(&b, '%');
		} else {
			break;	/* a format this logger does not know: stop */
		}
	}
	va_end(ap);
	buf_putc(&b, '\n');
	/* One write(2) per line, so lines from threads never interleave. */
	if (!b.oom) {
		ssize_t r = write(STDERR_FILENO, b.data, b.len);
		(void)r;
	}
	buf_free(&b);
}
