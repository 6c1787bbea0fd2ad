/* mime — what a captured message says, read with GMime, in Mailpit's shapes. */
#ifndef NOTIFYD_MIME_H
#define NOTIFYD_MIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/*
 * How deep MIME parts may nest (multipart and message/rfc822 levels).
 * GMime parses, and notifyd walks, one recursion per level, and mail is
 * read on civetweb's ~100 KiB worker stacks: 400 levels overflowed one.
 */
#define MIME_MAX_DEPTH	50

/* Start GMime; the functions below do it themselves when first called. */
void	 mime_init(void);
/*
 * Do raw's MIME parts nest at most max deep? A linear scan of the header
 * blocks and boundaries, with no recursion; where it cannot tell, it
 * counts a level as still open, so it never finds less than GMime would.
 */
bool	 mime_depth_ok(const char *raw, size_t len, int max);
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

/* An email to write. */
struct mime_out {
	const char	*from;		/* "Name <address>" or an address */
	const char	*to_name;	/* may be NULL */
	const char	*to;		/* address */
	const char	*subject;
	const char	*text, *html;
	const char	*message_id;	/* without <> */
	int64_t		 date;		/* ms */
	const char	*unsubscribe;	/* List-Unsubscribe URL, or NULL */
};

/*
 * Write a multipart/alternative message (text and HTML, UTF-8, encoded
 * as each needs) with CRLF line ends into out; false when from is not
 * an address.
 */
bool	 mime_compose(const struct mime_out *m, struct buf *out);

/*
 * Write the message a Mailpit send request describes ({"From":{"Name",
 * "Email"}, "To":[...], "Cc":[...], "Bcc":["address"], "ReplyTo":[...],
 * "Subject", "Text", "HTML", "Attachments":[{"Content" (base64),
 * "Filename", "ContentType", "ContentID"}], "Tags":[...], "Headers":{}})
 * into out with CRLF line ends, dated now, its Message-ID at host. Its
 * envelope: the From address into *from (malloc'd), every To, Cc and Bcc
 * address appended to rcpts. False with err set when the request is bad.
 */
bool	 mime_build(json_t *req, int64_t now, const char *host, struct buf *out, json_t *rcpts,
	    char **from, char *err, size_t errn);

#endif
