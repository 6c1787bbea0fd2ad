/* webhook — Standard Webhooks signatures, bodies, and which URLs may be fetched. */
#define _GNU_SOURCE
#include "webhook.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "util.h"

#define PREFIX "whsec_"

/* The key of a secret into key (room for strlen(secret)); its length, or -1. */
static ssize_t
secret_key(const char *secret, unsigned char *key)
{
	size_t len = strlen(secret);
	if (strncmp(secret, PREFIX, strlen(PREFIX)) != 0) {
		if (len < 16)
			return -1;
		memcpy(key, secret, len);
		return (ssize_t)len;
	}
	ssize_t n = base64_decode(secret + strlen(PREFIX), len - strlen(PREFIX), key);
	return n >= 16 ? n : -1;
}

bool
webhook_secret_valid(const char *s)
{
	unsigned char *key = malloc(strlen(s) + 1);
	bool ok = key != NULL && secret_key(s, key) > 0;
	free(key);
	return ok;
}

bool
webhook_sign(const char *secret, const char *id, int64_t timestamp, const char *body,
    size_t len, char *out, size_t n)
{
	unsigned char *key = malloc(strlen(secret) + 1), mac[32];
	unsigned int mlen = 0;
	ssize_t klen = key ? secret_key(secret, key) : -1;
	char *b64 = NULL;
	bool ok = false;
	struct buf msg;

	buf_init(&msg);
	if (klen > 0) {
		buf_printf(&msg, "%s.%lld.", id, (long long)timestamp);
		buf_put(&msg, body, len);
		if (msg.len > 0 && HMAC(EVP_sha256(), key, (int)klen, (unsigned char *)msg.data,
		    msg.len, mac, &mlen) != NULL && (b64 = base64_encode(mac, mlen)) != NULL)
			ok = (size_t)snprintf(out, n, "v1,%s", b64) < n;
	}
	if (key != NULL && klen > 0)
		explicit_bzero(key, (size_t)klen);
	free(key);
	free(b64);
	buf_free(&msg);
	return ok;
}

char *
webhook_secret_new(void)
{
	unsigned char raw[24];
	if (RAND_bytes(raw, sizeof raw) != 1)
		return NULL;
	char *b64 = base64_encode(raw, sizeof raw), *s = NULL;
	if (b64 != NULL && asprintf(&s, PREFIX "%s", b64) < 0)
		s = NULL;
	free(b64);
	return s;
}

/* Slack's mrkdwn needs &, < and > escaped. */
static void
mrkdwn(struct buf *b, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '&')
			buf_puts(b, "&amp;");
		else if (*s == '<')
			buf_puts(b, "&lt;");
		else if (*s == '>')
			buf_puts(b, "&gt;");
		else
			buf_putc(b, *s);
	}
}

char *
webhook_body(json_t *n, const char *format, const char *event, int64_t now)
{
	char ts[40];
	json_t *o;
	time_format_rfc3339(ts, sizeof ts, now);
	if (strcmp(format, "slack") == 0) {
		struct buf t;
		const char *title = json_string_value(json_object_get(n, "title"));
		const char *body = json_string_value(json_object_get(n, "body"));
		const char *url = json_string_value(json_object_get(n, "url"));
		buf_init(&t);
		if (title && *title) {
			buf_putc(&t, '*');
			mrkdwn(&t, title);
			buf_putc(&t, '*');
		}
		if (body && *body) {
			if (t.len)
				buf_putc(&t, '\n');
			mrkdwn(&t, body);
		}
		if (url && *url) {
			buf_puts(&t, t.len ? "\n<" : "<");
			mrkdwn(&t, url);
			buf_putc(&t, '>');
		}
		o = json_pack("{s:s%}", "text", t.data ? t.data : "", t.len);
		buf_free(&t);
	} else {
		o = json_pack("{s:s, s:s, s:O}", "type", event, "timestamp", ts, "data", n);
	}
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

bool
addr_private(const struct sockaddr *a)
{
	if (a->sa_family == AF_INET) {
		uint32_t v = ntohl(((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr);
		return (v >> 24) == 0 || (v >> 24) == 10 || (v >> 24) == 127 ||
		    (v >> 20) == (172u << 4 | 1) || (v >> 16) == (192u << 8 | 168) ||
		    (v >> 16) == (169u << 8 | 254) || (v >> 22) == (100u << 2 | 1) ||
		    (v >> 28) >= 0xe;	/* multicast, reserved, broadcast */
	}
	if (a->sa_family == AF_INET6) {
		const struct in6_addr *s = &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(s) || IN6_IS_ADDR_V4COMPAT(s)) {
			struct sockaddr_in v4 = {.sin_family = AF_INET};
			memcpy(&v4.sin_addr, s->s6_addr + 12, 4);
			return addr_private((const struct sockaddr *)&v4);
		}
		return IN6_IS_ADDR_LOOPBACK(s) || IN6_IS_ADDR_UNSPECIFIED(s) ||
		    IN6_IS_ADDR_LINKLOCAL(s) || IN6_IS_ADDR_SITELOCAL(s) ||
		    IN6_IS_ADDR_MULTICAST(s) || (s->s6_addr[0] & 0xfe) == 0xfc;
	}
	return true;
}

int
url_check(const char *url, bool allow_private, char *err, size_t errlen)
{
	const char *h;
	if (strncmp(url, "http://", 7) == 0)
		h = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		h = url + 8;
	else {
		snprintf(err, errlen, "only http:// and https:// URLs are allowed");
		return -1;
	}
	size_t alen = strcspn(h, "/?#");
	char host[256], port[8] = "";
	const char *at = memchr(h, '@', alen);
	if (at != NULL) {
		snprintf(err, errlen, "a URL with credentials in it is not allowed");
		return -1;
	}
	if (alen == 0 || alen >= sizeof host || strpbrk(url, " \t\r\n") != NULL) {
		snprintf(err, errlen, "not a URL with a host");
		return -1;
	}
	memcpy(host, h, alen);
	host[alen] = '\0';
	char *name = host, *colon;
	if (*name == '[') {
		char *close = strchr(name, ']');
		if (close == NULL) {
			snprintf(err, errlen, "not a URL with a host");
			return -1;
		}
		*close = '\0';
		colon = close[1] == ':' ? close + 1 : NULL;
		name++;
	} else {
		colon = strrchr(name, ':');
	}
	if (colon != NULL) {
		*colon = '\0';
		snprintf(port, sizeof port, "%s", colon + 1);
	}
	if (allow_private)
		return 0;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	int rc = getaddrinfo(name, *port ? port : "80", &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "%s does not resolve: %s", name, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if (addr_private(ai->ai_addr))
			break;
	freeaddrinfo(res);
	if (ai != NULL) {
		snprintf(err, errlen, "%s is a loopback or private address; set allow_private = true "
		    "to allow it", name);
		return -1;
	}
	return 0;
}
