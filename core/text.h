/*
 * text — encodings of text that comes from outside, through the libraries
 * notifyd links already: UTF-8 checks with GLib, base64 with OpenSSL.
 * Apart from util.c, which notifyctl links with nothing but libc.
 */
#ifndef NOTIFYD_TEXT_H
#define NOTIFYD_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Is s (len bytes) valid UTF-8 without NULs, and without control characters unless allowed? */
bool	 utf8_valid(const char *s, size_t len, bool allow_controls);

/* Base64 of n bytes, with padding (malloc'd; NULL when out of memory). */
char	*base64_encode(const void *in, size_t n);
/* Decode base64 (padded) of len chars into out (room for len / 4 * 3); the bytes, or -1. */
ssize_t	 base64_decode(const char *in, size_t len, unsigned char *out);
/* Base64url of n bytes without padding into out (room for 4 * ceil(n / 3) + 1). */
void	 base64url_encode(const void *in, size_t n, char *out);
/* Decode base64url without padding of len chars into out (room for len); the bytes, or -1. */
ssize_t	 base64url_decode(const char *in, size_t len, unsigned char *out);

#endif
