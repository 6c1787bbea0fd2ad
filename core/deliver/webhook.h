/*
 * webhook — what a webhook delivery is made of: the Standard Webhooks
 * signature, the body in each format, and the check that keeps a server
 * that fetches URLs it is given off loopback and private networks.
 */
#ifndef NOTIFYD_WEBHOOK_H
#define NOTIFYD_WEBHOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * "v1,BASE64" of HMAC-SHA256 over "id.timestamp.body" into out. The key is
 * the base64 after "whsec_", or a secret without that prefix as it is.
 * False when the secret is not one.
 */
bool	 webhook_sign(const char *secret, const char *id, int64_t timestamp, const char *body,
	    size_t len, char *out, size_t n);
/* A new secret, "whsec_" and 24 random bytes in base64 (malloc'd). */
char	*webhook_secret_new(void);
/* Is s a secret webhook_sign takes: whsec_ and base64 of 16 bytes or more, or 16+ bytes? */
bool	 webhook_secret_valid(const char *s);

/*
 * The body a notification n is POSTed with: format "json" is
 * {"type": event, "timestamp", "data": n}; "slack" is {"text": ...} for
 * chat incoming webhooks. malloc'd.
 */
char	*webhook_body(json_t *n, const char *format, const char *event, int64_t now);

/* Is the address loopback, private, link-local or otherwise not the internet? */
bool	 addr_private(const struct sockaddr *a);
/*
 * May notifyd fetch url: http or https, a host that resolves, and (unless
 * allow_private) to public addresses only? 0, or -1 with err.
 */
int	 url_check(const char *url, bool allow_private, char *err, size_t errlen);

#endif
