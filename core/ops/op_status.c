/* status — what is running: version, uptime, listeners and how much it holds. */
#include <jansson.h>

#include "app.h"
#include "config.h"
#include "hub.h"
#include "ops.h"
#include "store.h"
#include "util.h"

/*
 * {"version","started_at","uptime_s","base_url","listeners":{"http","smtp",
 * "control"},"counts":{"users","notifications","mail","websockets",
 * "inbox_streams","mailbox_streams","users_online"}}: the landing page's.
 */
static json_t *
status_run(struct op_ctx *ctx, json_t *a)
{
	struct app *app = ctx->app;
	int64_t users = 0, notes = 0, mail = 0;
	char started[40];
	(void)a;
	if (store_counts(app->store, &users, &notes, &mail) <= 0)
		return op_fail(ctx, 503, "unavailable", "the database is not answering");
	json_t *conns = app->hub ? hub_connections(app->hub) : NULL;
	json_int_t total = json_integer_value(json_object_get(conns, "total"));
	json_int_t mailbox = json_integer_value(json_object_get(conns, "mailbox"));
	json_int_t online = (json_int_t)json_object_size(json_object_get(conns, "users"));
	json_decref(conns);
	time_format_rfc3339(started, sizeof started, app->started_at);
	return json_pack("{s:s, s:s, s:I, s:s, s:{s:s?, s:s?, s:s}, "
	    "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
	    "version", app->version, "started_at", started,
	    "uptime_s", (json_int_t)((ctx->now - app->started_at) / 1000),
	    "base_url", app->base_url,
	    "listeners", "http", *app->http_addr ? app->http_addr : NULL,
	    "smtp", *app->smtp_addr ? app->smtp_addr : NULL,
	    "control", app->cfg->control_socket,
	    "counts", "users", (json_int_t)users, "notifications", (json_int_t)notes,
	    "mail", (json_int_t)mail, "websockets", total, "inbox_streams", total - mailbox,
	    "mailbox_streams", mailbox, "users_online", online);
}

const struct op_impl op_status_impl = {.op = &op_status, .fn = status_run};
