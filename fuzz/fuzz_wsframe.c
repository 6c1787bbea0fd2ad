/*
 * fuzz_wsframe — a text frame from a WebSocket client, as the hub takes
 * it from a connected user: mark_read, mark_all_read, ping, and the rest.
 */
#include <stdbool.h>

#include "app.h"
#include "fuzz.h"
#include "hub.h"

static int
sent(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return 0;
}

static void
closed(void *ctx, int code, const char *reason)
{
	(void)ctx;
	(void)code;
	(void)reason;
}

static const struct hub_transport transport = {sent, closed, NULL};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hub_conn *c;
	struct app *app = fuzz_app();
	if (c == NULL) {
		if (hub_reserve(app->hub, "fuzz-user") != HUB_OK)
			__builtin_trap();
		c = hub_attach(app->hub, "fuzz-user", INT64_MAX / 2, -1, &transport, NULL);
		if (c == NULL)
			__builtin_trap();
	}
	hub_receive(c, (const char *)data, size);
	return 0;
}
