/* outbound — guarded HTTP POSTs, and the webhook call made of one. */
#define _GNU_SOURCE
#include "outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"
#include "webhook.h"

curl_socket_t
http_guarded_socket(struct http_guard *g, struct curl_sockaddr *a)
{
	if (g != NULL && !g->allow_private && addr_private(&a->addr)) {
		g->refused = true;
		return CURL_SOCKET_BAD;
	}
	int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static curl_socket_t
own_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	(void)purpose;
	return http_guarded_socket(arg, a);
}

CURL *
http_handle(struct http_guard *g)
{
	CURL *c = curl_easy_init();
	if (c != NULL) {
		curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, own_socket);
		curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, g);
	}
	return c;
}

/* A response's Retry-After, seconds or an HTTP date, as ms from now (at most a day). */
static size_t
header_seen(char *line, size_t size, size_t n, void *arg)
{
	struct http_result *r = arg;
	size_t len = size * n;
	if (len > 12 && strncasecmp(line, "Retry-After:", 12) == 0) {
		char v[64], *end;
		size_t l = len - 12 < sizeof v - 1 ? len - 12 : sizeof v - 1;
		memcpy(v, line + 12, l);
		v[l] = '\0';
		char *s = v + strspn(v, " \t");
		s[strcspn(s, "\r\n")] = '\0';
		long long secs = strtoll(s, &end, 10);
		if (end != s && *end == '\0' && secs >= 0) {
			r->retry_after = (secs < 86400 ? secs : 86400) * 1000;
		} else {
			time_t t = curl_getdate(s, NULL);
			int64_t ms = (int64_t)t * 1000 - time_now_ms();
			if (t > 0 && ms > 0)
				r->retry_after = ms < 86400000 ? ms : 86400000;
		}
	}
	return len;
}

/* The start of a response's body, printable, for the error a failure keeps. */
struct reply {
	char		 text[120];
	size_t		 len;
};

static size_t
body_seen(char *data, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t len = size * n, room = sizeof r->text - 1 - r->len;
	size_t take = len < room ? len : room;
	for (size_t i = 0; i < take; i++)
		r->text[r->len++] = data[i] >= 0x20 && data[i] < 0x7f ? data[i] : ' ';
	r->text[r->len] = '\0';
	return len;
}

void
http_post(CURL *curl, struct http_guard *g, const char *url, struct curl_slist *headers,
    const void *body, size_t len, int64_t timeout, struct http_result *r)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct reply reply = {"", 0};
	*r = (struct http_result){0};
	g->refused = false;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROXY, "");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "notifyd");
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout < 10000 ? timeout : 10000));
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_seen);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_seen);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
	CURLcode rc = curl_easy_perform(curl);
	if (rc != CURLE_OK) {
		r->refused = g->refused;
		if (g->refused)
			snprintf(r->error, sizeof r->error, "the URL resolves to a loopback or private "
			    "address (allow_private is off)");
		else
			snprintf(r->error, sizeof r->error, "%s",
			    *errbuf ? errbuf : curl_easy_strerror(rc));
		return;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
	r->ok = r->status >= 200 && r->status < 300;
	if (!r->ok)
		snprintf(r->error, sizeof r->error, "HTTP %ld%s%s", r->status, reply.len ? ": " : "",
		    reply.text);
}

void
webhook_call(CURL *curl, struct http_guard *g, json_t *hook, const char *id, const char *body,
    int64_t now, int64_t timeout, struct http_result *r)
{
	const char *url = json_string_value(json_object_get(hook, "url"));
	const char *secret = json_string_value(json_object_get(hook, "secret"));
	char hdr[256], sig[128];
	struct curl_slist *h = NULL;
	if (url == NULL || secret == NULL ||
	    !webhook_sign(secret, id, now / 1000, body, strlen(body), sig, sizeof sig)) {
		*r = (struct http_result){0};
		snprintf(r->error, sizeof r->error, "the call could not be signed");
		return;
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	snprintf(hdr, sizeof hdr, "webhook-id: %s", id);
	h = curl_slist_append(h, hdr);
	snprintf(hdr, sizeof hdr, "webhook-timestamp: %lld", (long long)(now / 1000));
	h = curl_slist_append(h, hdr);
	snprintf(hdr, sizeof hdr, "webhook-signature: %s", sig);
	h = curl_slist_append(h, hdr);
	h = curl_slist_append(h, "Expect:");
	http_post(curl, g, url, h, body, strlen(body), timeout, r);
	curl_slist_free_all(h);
}
