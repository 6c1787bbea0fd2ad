/*
 * webpush — what Web Push needs of cryptography, through OpenSSL and
 * libjwt: the VAPID key pair (RFC 8292), the Authorization header it signs,
 * and the aes128gcm encryption of a message for one subscription (RFC 8291).
 */
#ifndef NOTIFYD_WEBPUSH_H
#define NOTIFYD_WEBPUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct store;

#define WEBPUSH_KEY_LEN		65	/* an uncompressed P-256 point */
#define WEBPUSH_AUTH_LEN	16
#define WEBPUSH_OVERHEAD	(86 + 1 + 16)	/* header, delimiter, tag */
#define WEBPUSH_MAX		4096	/* the most a push service must accept */

struct vapid;

/*
 * The VAPID key: the one every node of the store shares, else the file
 * DATA_DIR/vapid.pem, made (mode 0600) if there is none. Read when first
 * wanted, not here (a failure then is logged once, and the two calls
 * below answer NULL). 0, or -1 with err.
 */
int	 vapid_open(struct vapid **out, struct store *st, const char *data_dir, char *err,
	    size_t errlen);
void	 vapid_close(struct vapid *v);
/* The public key, base64url: what a browser's applicationServerKey is; NULL without one. */
const char *vapid_public_key(struct vapid *v);
/*
 * "vapid t=JWT, k=KEY" for a request to endpoint: the JWT's aud is its
 * origin, exp now + 12 h, sub subject. malloc'd; NULL when it cannot be made.
 */
char	*vapid_authorization(struct vapid *v, const char *endpoint, const char *subject,
	    int64_t now);

/* Is key a P-256 public key (WEBPUSH_KEY_LEN bytes)? */
bool	 webpush_key_valid(const unsigned char *key, size_t len);

/*
 * Encrypt plain (len <= WEBPUSH_MAX - WEBPUSH_OVERHEAD) for the user agent's
 * key and auth secret, as one aes128gcm record, into out. as_private and
 * as_public (the sender's key pair) and salt are for tests: NULL makes them
 * fresh, as every real message must. 0, or -1.
 */
int	 webpush_encrypt(const void *plain, size_t len, const unsigned char ua_public[65],
	    const unsigned char auth[16], const unsigned char *as_private,
	    const unsigned char *as_public, const unsigned char *salt, struct buf *out);

#endif
