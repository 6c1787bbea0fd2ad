/* http — the REST API on civetweb; every route dispatches into op_table. */
#ifndef NOTIFYD_HTTP_H
#define NOTIFYD_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct app;
struct op_error;
struct http;

/* Listen on cfg's [http] listen and serve; *port gets the bound port. */
int	 http_start(struct http **out, struct app *app, char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
int	 http_port(const struct http *h);
/* Stop accepting, finish requests in flight, free everything. */
void	 http_stop(struct http *h);
/*
 * The connection gate, called by accept() (cmd/notifyd/accept.c) with
 * each connection civetweb accepts, before any worker takes it: true to
 * let it in; false when its address holds [http] max_per_address
 * connections already, or every worker is taken, after answering it 503
 * with Retry-After and closing it.
 */
bool	 http_admit(int fd, const struct sockaddr *sa, socklen_t len);
/*
 * The route a request (method, undecoded path, query string) takes, as
 * handle() finds it, without civetweb: its operation's name (or a raw
 * handler's path), args filled from the path and the query; NULL with
 * err (404, 422) when none takes it. For tests and the fuzzer.
 */
const char *http_route_probe(const char *method, const char *path, const char *query,
	    json_t *args, struct op_error *err);

#endif
