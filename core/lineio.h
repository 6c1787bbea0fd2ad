/* lineio — lines read from a file descriptor through a buffer, and writes that finish. */
#ifndef NOTIFYD_LINEIO_H
#define NOTIFYD_LINEIO_H

#include <stddef.h>
#include <sys/types.h>

/* Reads lines from a file descriptor through a buffer. */
struct line_reader {
	int	 fd;
	char	*buf;
	size_t	 len;		/* bytes in buf */
	size_t	 cap;
	size_t	 max;		/* longest line accepted, without the newline */
	size_t	 consumed;	/* bytes of buf the last line used */
};

enum line_status {
	LINE_OK,		/* *line points at a NUL-terminated line */
	LINE_EOF,		/* the peer closed; a partial last line is dropped */
	LINE_TOO_LONG,		/* a line exceeded max */
	LINE_ERROR,		/* read failed; errno is set */
};

void		 line_reader_init(struct line_reader *r, int fd, size_t max);
void		 line_reader_free(struct line_reader *r);
/* The next line, without its newline, valid until the next call. */
enum line_status line_read(struct line_reader *r, char **line, size_t *len);
/* Is a complete line already buffered? */
int		 line_buffered(const struct line_reader *r);
/* Write all of buf; -1 on error. */
int		 write_all(int fd, const void *buf, size_t len);

#endif
