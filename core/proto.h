/*
 * proto — the control protocol spoken over notifyd's Unix socket.
 *
 * One JSON object per line ("\n"-terminated, UTF-8) each way: a request
 * at most PROTO_MAX_LINE bytes, a reply at most PROTO_MAX_REPLY (a page of
 * 200 notifications with 64 KiB bodies is ~13 MB).
 *
 *   server, on connect:  {"notifyd":"0.1.0","protocol":1}
 *   client request:      {"id":N,"cmd":"send","args":{...}}
 *   server reply:        {"id":N,"ok":true,"result":...}
 *                     or {"id":N,"ok":false,"error":{"code":"...","message":"...","status":N}}
 *
 * Requests may be pipelined; replies come back in request order and carry
 * the request's id (any JSON value; null when the request had none).
 * A line that is not a JSON object gets an error reply with id null and
 * the connection stays usable; a line over PROTO_MAX_LINE gets an error
 * reply and the connection is closed. A client refuses a greeting whose
 * protocol it does not speak. See notifyd-api(7).
 */
#ifndef NOTIFYD_PROTO_H
#define NOTIFYD_PROTO_H

#include <stddef.h>
#include <sys/types.h>

#define NOTIFYD_VERSION	"0.1.0"
#define PROTO_VERSION	1
#define PROTO_MAX_LINE	(1024 * 1024)
#define PROTO_MAX_REPLY	(64 * 1024 * 1024)

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
