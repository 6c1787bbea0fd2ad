/* metrics — counters and histograms, rendered in the Prometheus text format. */
#include "metrics.h"

#include <string.h>

#include "events.h"
#include "util.h"

static const struct {
	const char	*name;
	const char	*help;
} counter_info[C__COUNT] = {
	[C_NOTIFICATIONS_CREATED] = {"notifyd_notifications_created_total",
	    "Notifications stored."},
	[C_NOTIFICATIONS_READ] = {"notifyd_notifications_read_total",
	    "Notifications marked read."},
	[C_AUTH_FAILURES] = {"notifyd_http_auth_failures_total",
	    "HTTP requests refused for missing or bad credentials."},
	[C_RATE_LIMITED] = {"notifyd_http_rate_limited_total",
	    "HTTP requests refused with 429."},
	[C_HTTP_REFUSED_ADDRESS] = {"notifyd_http_refused_per_address_total",
	    "Connections refused at accept: their address held max_per_address (503)."},
	[C_HTTP_REFUSED_FULL] = {"notifyd_http_refused_full_total",
	    "Connections refused at accept: every worker was taken (503)."},
	[C_HTTP_HEADER_TIMEOUTS] = {"notifyd_http_header_timeouts_total",
	    "Connections cut off: their first request's headers took over header_timeout (408)."},
	[C_WS_FRAMES_SENT] = {"notifyd_ws_frames_sent_total", "Frames sent to live clients."},
	[C_WS_FRAMES_RECEIVED] = {"notifyd_ws_frames_received_total",
	    "Frames received from WebSocket clients."},
	[C_WS_REFUSED_AUTH] = {"notifyd_ws_refused_unauthorized_total",
	    "WebSocket upgrades refused for credentials (401)."},
	[C_WS_REFUSED_ORIGIN] = {"notifyd_ws_refused_origin_total",
	    "WebSocket upgrades refused for their Origin (403)."},
	[C_WS_REFUSED_USER_LIMIT] = {"notifyd_ws_refused_user_limit_total",
	    "WebSocket upgrades refused: the user has ws_per_user connections (429)."},
	[C_WS_REFUSED_FULL] = {"notifyd_ws_refused_full_total",
	    "WebSocket upgrades refused: ws_max_connections are open (503)."},
	[C_WS_DROPPED_SLOW] = {"notifyd_ws_dropped_slow_total",
	    "Clients dropped because their outgoing queue overflowed."},
	[C_SMTP_ACCEPTED] = {"notifyd_smtp_accepted_total", "Messages the SMTP sink stored."},
	[C_SMTP_REJECTED] = {"notifyd_smtp_rejected_total",
	    "Messages the SMTP sink refused (size, or could not store)."},
	[C_EMAIL_SENT] = {"notifyd_email_sent_total", "Emails the relay accepted."},
	[C_EMAIL_RETRIED] = {"notifyd_email_retried_total",
	    "Attempts at an email that failed and will be retried."},
	[C_EMAIL_FAILED] = {"notifyd_email_failed_total",
	    "Emails given up on (attempts used up, or refused for good)."},
	[C_PUSH_SENT] = {"notifyd_push_sent_total", "Web Push messages a push service accepted."},
	[C_PUSH_RETRIED] = {"notifyd_push_retried_total",
	    "Attempts at a push message that failed and will be retried."},
	[C_PUSH_FAILED] = {"notifyd_push_failed_total",
	    "Push messages given up on (attempts used up, refused, or the subscription gone)."},
	[C_WEBHOOK_SENT] = {"notifyd_webhook_sent_total", "Webhook calls answered with a 2xx."},
	[C_WEBHOOK_RETRIED] = {"notifyd_webhook_retried_total",
	    "Webhook calls that failed and will be retried."},
	[C_WEBHOOK_FAILED] = {"notifyd_webhook_failed_total",
	    "Webhook calls given up on (attempts used up, or the endpoint disabled)."},
};

static int64_t counters[C__COUNT];

/* Statuses kept apart; any other is counted under its class (e.g. 5xx as 599). */
static const int statuses[] = {200, 201, 204, 400, 401, 403, 404, 405, 409, 413,
    415, 422, 429, 500, 503};
#define NSTATUS ((int)(sizeof statuses / sizeof statuses[0]) + 1)

/* Latency buckets, in microseconds. */
static const int64_t bucket_us[] = {250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
    100000, 250000, 500000, 1000000, 2500000};
#define NBUCKET ((int)(sizeof bucket_us / sizeof bucket_us[0]))

static struct route_stats {
	int64_t	 by_status[NSTATUS];
	int64_t	 buckets[NBUCKET];	/* not cumulative; summed when rendered */
	int64_t	 count, sum_us;
} routes[METRICS_MAX_ROUTES];
static const char *const *route_labels;
static int nroutes;

void
metrics_routes(const char *const *labels, int n)
{
	route_labels = labels;
	nroutes = n < METRICS_MAX_ROUTES - 1 ? n : METRICS_MAX_ROUTES - 1;
}

void
metrics_add(enum counter c, int64_t n)
{
	__atomic_fetch_add(&counters[c], n, __ATOMIC_RELAXED);
}

int64_t
metrics_get(enum counter c)
{
	return __atomic_load_n(&counters[c], __ATOMIC_RELAXED);
}

void
metrics_http(int route, int status, int64_t micros)
{
	struct route_stats *r = &routes[route < 0 || route >= nroutes ? nroutes : route];
	int s = NSTATUS - 1, b = NBUCKET;
	for (int i = 0; i < NSTATUS - 1; i++)
		if (statuses[i] == status)
			s = i;
	for (int i = NBUCKET - 1; i >= 0 && micros <= bucket_us[i]; i--)
		b = i;
	__atomic_fetch_add(&r->by_status[s], 1, __ATOMIC_RELAXED);
	if (b < NBUCKET)
		__atomic_fetch_add(&r->buckets[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&r->count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&r->sum_us, micros, __ATOMIC_RELAXED);
}

/* Count what core reports of this node's own work. */
static void
on_event(const struct event *ev, void *arg)
{
	(void)arg;
	if (ev->elsewhere)
		return;
	if (ev->type == EVENT_NOTIFICATION)
		metrics_add(C_NOTIFICATIONS_CREATED, 1);
	else if (ev->type == EVENT_READ)
		metrics_add(C_NOTIFICATIONS_READ,
		    (int64_t)json_array_size(json_object_get(ev->data, "ids")));
}

void
metrics_listen(void)
{
	events_subscribe(on_event, NULL);
}

/* The label of route i, "METHOD /path" split into method and route labels. */
static void
route_label(struct buf *out, int i)
{
	const char *l = i < nroutes ? route_labels[i] : "- unmatched";
	const char *sp = strchr(l, ' ');
	buf_printf(out, "method=\"%.*s\",route=\"%s\"", (int)(sp - l), l, sp + 1);
}

void
metrics_render(struct buf *out)
{
	for (int c = 0; c < C__COUNT; c++)
		buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %lld\n",
		    counter_info[c].name, counter_info[c].help, counter_info[c].name,
		    counter_info[c].name,
		    (long long)__atomic_load_n(&counters[c], __ATOMIC_RELAXED));

	buf_puts(out, "# HELP notifyd_http_requests_total HTTP requests by route and status.\n"
	    "# TYPE notifyd_http_requests_total counter\n");
	for (int i = 0; i <= nroutes; i++)
		for (int s = 0; s < NSTATUS; s++) {
			int64_t v = __atomic_load_n(&routes[i].by_status[s], __ATOMIC_RELAXED);
			if (v == 0)
				continue;
			buf_puts(out, "notifyd_http_requests_total{");
			route_label(out, i);
			if (s < NSTATUS - 1)
				buf_printf(out, ",status=\"%d\"} %lld\n", statuses[s], (long long)v);
			else
				buf_printf(out, ",status=\"other\"} %lld\n", (long long)v);
		}

	buf_puts(out, "# HELP notifyd_http_request_duration_seconds Time to answer an HTTP request.\n"
	    "# TYPE notifyd_http_request_duration_seconds histogram\n");
	for (int i = 0; i <= nroutes; i++) {
		int64_t count = __atomic_load_n(&routes[i].count, __ATOMIC_RELAXED), cum = 0;
		if (count == 0)
			continue;
		for (int b = 0; b < NBUCKET; b++) {
			cum += __atomic_load_n(&routes[i].buckets[b], __ATOMIC_RELAXED);
			buf_puts(out, "notifyd_http_request_duration_seconds_bucket{");
			route_label(out, i);
			buf_printf(out, ",le=\"%g\"} %lld\n", (double)bucket_us[b] / 1e6, (long long)cum);
		}
		buf_puts(out, "notifyd_http_request_duration_seconds_bucket{");
		route_label(out, i);
		buf_printf(out, ",le=\"+Inf\"} %lld\n", (long long)count);
		buf_puts(out, "notifyd_http_request_duration_seconds_sum{");
		route_label(out, i);
		buf_printf(out, "} %.6f\n", (double)__atomic_load_n(&routes[i].sum_us,
		    __ATOMIC_RELAXED) / 1e6);
		buf_puts(out, "notifyd_http_request_duration_seconds_count{");
		route_label(out, i);
		buf_printf(out, "} %lld\n", (long long)count);
	}
}
