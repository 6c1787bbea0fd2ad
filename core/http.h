/* http — the REST API on civetweb; every route dispatches into op_table. */
#ifndef NOTIFYD_HTTP_H
#define NOTIFYD_HTTP_H

#include <stddef.h>

struct app;
struct http;

/* Listen on cfg's [http] listen and serve; *port gets the bound port. */
int	 http_start(struct http **out, struct app *app, char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
int	 http_port(const struct http *h);
/* Stop accepting, finish requests in flight, free everything. */
void	 http_stop(struct http *h);

#endif
