/*
 * outbound — HTTP POSTs to URLs notifyd was given (push services, webhook
 * endpoints), with libcurl: no proxy from the environment, no redirects,
 * http and https only, and no connection to a loopback or private address
 * unless allowed, whatever the name resolves to at the time.
 */
#ifndef NOTIFYD_OUTBOUND_H
#define NOTIFYD_OUTBOUND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lazylib.h"

/* Set on a handle's CURLOPT_OPENSOCKETDATA owner: what the next request may reach. */
struct http_guard {
	bool		 allow_private;
	bool		 refused;	/* a connection was refused for its address */
};

/* A socket for curl, unless g refuses the address (CURL_SOCKET_BAD). */
curl_socket_t	 http_guarded_socket(struct http_guard *g, struct curl_sockaddr *a);

struct http_result {
	bool		 ok;		/* a 2xx */
	bool		 refused;	/* the address was private: no use trying again */
	long		 status;	/* 0: no response */
	int64_t		 retry_after;	/* ms the server asked to wait; 0: none */
	char		 error[CURL_ERROR_SIZE + 160];
};

/* A handle whose sockets g guards (curl_easy_cleanup() it). */
CURL	*http_handle(struct http_guard *g);
/*
 * POST body to url with headers on curl, whose open-socket callback
 * consults g (http_guarded_socket, or a handle from http_handle(g)).
 */
void	 http_post(CURL *curl, struct http_guard *g, const char *url, struct curl_slist *headers,
	    const void *body, size_t len, int64_t timeout, struct http_result *r);

/*
 * Call webhook endpoint hook (its url, secret and format, as the store
 * keeps them) with body, signed under id at now: Standard Webhooks headers.
 */
void	 webhook_call(CURL *curl, struct http_guard *g, json_t *hook, const char *id,
	    const char *body, int64_t now, int64_t timeout, struct http_result *r);

#endif
