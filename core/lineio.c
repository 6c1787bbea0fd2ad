/* lineio — line framing for the control protocol, shared by notifyd and notifyctl; see lineio.h. */
#include "lineio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
line_reader_init(struct line_reader *r, int fd, size_t max)
{
	memset(r, 0, sizeof *r);
	r->fd = fd;
	r->max = max;
}

void
line_reader_free(struct line_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof *r);
}

int
line_buffered(const struct line_reader *r)
{
	return r->buf != NULL && memchr(r->buf + r->consumed, '\n', r->len - r->consumed) != NULL;
}

enum line_status
line_read(struct line_reader *r, char **line, size_t *len)
{
	/* Drop the line handed out last time. */
	if (r->consumed > 0) {
		memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
		r->len -= r->consumed;
		r->consumed = 0;
	}
	size_t scanned = 0;
	for (;;) {
		char *nl = r->len > scanned ? memchr(r->buf + scanned, '\n', r->len - scanned) : NULL;
		if (nl != NULL) {
			size_t l = (size_t)(nl - r->buf);
			if (l > r->max)
				return LINE_TOO_LONG;
			*nl = '\0';
			if (l > 0 && r->buf[l - 1] == '\r')
				r->buf[--l] = '\0';
			*line = r->buf;
			*len = l;
			r->consumed = (size_t)(nl - r->buf) + 1;
			return LINE_OK;
		}
		scanned = r->len;
		if (r->len > r->max)
			return LINE_TOO_LONG;
		if (r->cap - r->len < 4096) {
			size_t cap = r->cap ? r->cap * 2 : 8192;
			if (cap > r->max + 4096 + 2)
				cap = r->max + 4096 + 2;
			if (cap <= r->len + 1)
				return LINE_TOO_LONG;
			char *p = realloc(r->buf, cap);
			if (p == NULL)
				return LINE_ERROR;
			r->buf = p;
			r->cap = cap;
		}
		ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return LINE_ERROR;
		if (n == 0)
			return LINE_EOF;
		r->len += (size_t)n;
	}
}

int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
