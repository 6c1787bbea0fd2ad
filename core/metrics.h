/* metrics — counters and histograms, rendered in the Prometheus text format. */
#ifndef NOTIFYD_METRICS_H
#define NOTIFYD_METRICS_H

#include <stdint.h>

struct buf;

/* Plain counters; each has a name and help in metrics.c. */
enum counter {
	C_NOTIFICATIONS_CREATED,
	C_NOTIFICATIONS_READ,
	C_AUTH_FAILURES,
	C_RATE_LIMITED,
	C_HTTP_REFUSED_ADDRESS,
	C_HTTP_REFUSED_FULL,
	C_HTTP_HEADER_TIMEOUTS,
	C_WS_FRAMES_SENT,
	C_WS_FRAMES_RECEIVED,
	C_WS_REFUSED_AUTH,
	C_WS_REFUSED_ORIGIN,
	C_WS_REFUSED_USER_LIMIT,
	C_WS_REFUSED_FULL,
	C_WS_DROPPED_SLOW,
	C_SMTP_ACCEPTED,
	C_SMTP_REJECTED,
	C_EMAIL_SENT,
	C_EMAIL_RETRIED,
	C_EMAIL_FAILED,
	C_PUSH_SENT,
	C_PUSH_RETRIED,
	C_PUSH_FAILED,
	C_WEBHOOK_SENT,
	C_WEBHOOK_RETRIED,
	C_WEBHOOK_FAILED,
	C__COUNT
};

/* Routes are numbered by the HTTP layer; this many at most, the last for unmatched. */
#define METRICS_MAX_ROUTES 64

/* Name the routes (labels "METHOD /pattern"); n <= METRICS_MAX_ROUTES - 1. */
void	 metrics_routes(const char *const *labels, int n);
void	 metrics_add(enum counter c, int64_t n);
int64_t	 metrics_get(enum counter c);
/* Count one HTTP request of route (-1: matched none) with its status and duration. */
void	 metrics_http(int route, int status, int64_t micros);
/* Subscribe the counters to core's events. */
void	 metrics_listen(void);
/* Append the exposition text. */
void	 metrics_render(struct buf *out);

#endif
