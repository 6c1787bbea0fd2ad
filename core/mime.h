/* mime — what a captured message says, read with GMime, in Mailpit's shapes. */
#ifndef NOTIFYD_MIME_H
#define NOTIFYD_MIME_H

#include <jansson.h>
#include <stddef.h>

struct buf;

void	 mime_init(void);
void	 mime_shutdown(void);
/*
 * The summary of a message: MessageID, From, To, Cc, Bcc (envelope
 * recipients the headers do not name), ReplyTo, Subject, Tags,
 * Attachments (a count), Snippet. search gets lower-cased text to search
 * (addresses, names, subject, body). Malformed MIME gives what can be read.
 */
json_t	*mime_summary(const char *raw, size_t len, json_t *rcpts, struct buf *search);
/* The whole message: summary fields plus Date, ReturnPath, Text, HTML, Inline[], Attachments[]. */
json_t	*mime_message(const char *raw, size_t len, json_t *summary);
/* The decoded content of part id ("1", "2.1", ...); *type gets its content type (malloc'd). */
char	*mime_part(const char *raw, size_t len, const char *id, size_t *outlen, char **type,
	    char **filename);
/* {"Name":[values...]} of the top-level headers. */
json_t	*mime_headers(const char *raw, size_t len);

#endif
