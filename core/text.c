/* text — UTF-8 and base64 through GLib and OpenSSL; see text.h. */
#include "text.h"

#include <glib.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

bool
utf8_valid(const char *s, size_t len, bool allow_controls)
{
	/* GLib checks the encoding (and stops at a NUL, which is not text here). */
	if (!g_utf8_validate_len(s, len, NULL))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0 || (!allow_controls && (c < 0x20 || c == 0x7f)))
			return false;
	}
	return true;
}

char *
base64_encode(const void *in, size_t n)
{
	char *out = malloc((n + 2) / 3 * 4 + 1);
	if (out != NULL)
		EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

ssize_t
base64_decode(const char *in, size_t len, unsigned char *out)
{
	if (len % 4 != 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes: take them off. */
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	return n - (len >= 1 && in[len - 1] == '=') - (len >= 2 && in[len - 2] == '=');
}

static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void
base64url_encode(const void *in, size_t n, char *out)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
}

ssize_t
base64url_decode(const char *in, size_t len, unsigned char *out)
{
	if (len % 4 == 1 || strspn(in, url_alphabet) < len)
		return -1;
	/* Back to base64 with its padding, which OpenSSL reads. */
	char *std = malloc(len + 4);
	if (std == NULL)
		return -1;
	size_t i;
	for (i = 0; i < len; i++)
		std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (i % 4 != 0)
		std[i++] = '=';
	unsigned char *tmp = malloc(i / 4 * 3);
	ssize_t n = tmp ? base64_decode(std, i, tmp) : -1;
	if (n >= 0)
		memcpy(out, tmp, (size_t)n);
	free(tmp);
	free(std);
	return n;
}
