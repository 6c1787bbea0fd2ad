/* Unit tests: the operations table and its argument checks, over a real store. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <pthread.h>
#include <time.h>

#include "app.h"
#include "events.h"
#include "hub.h"
#include "log.h"
#include "ops.h"
#include "store.h"
#include "util.h"

struct fixture {
	char		 dir[64];
	struct app	 app;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct store_options o = {.busy_timeout = 1000};
	char err[256], path[128];
	snprintf(f->dir, sizeof f->dir, "/tmp/notifyd-ops-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof path, "%s/t.db", f->dir);
	assert_int_equal(store_open(&f->app.store, path, &o, err, sizeof err), 1);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[200];
	store_close(f->app.store);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Call op name with args given as JSON text; returns the result, err in *ctx. */
static json_t *
call(struct fixture *f, struct op_ctx *ctx, const char *as_user, const char *name,
    const char *args)
{
	memset(ctx, 0, sizeof *ctx);
	ctx->app = &f->app;
	ctx->as_user = as_user;
	json_t *a = args ? json_loads(args, 0, NULL) : NULL;
	if (args != NULL)
		assert_non_null(a);
	json_t *r = op_dispatch(ctx, name, a);
	json_decref(a);
	return r;
}

/* Expect a failure with status and code. */
static void
fails(struct fixture *f, const char *as_user, const char *name, const char *args,
    int status, const char *code)
{
	struct op_ctx ctx;
	json_t *r = call(f, &ctx, as_user, name, args);
	if (r != NULL || ctx.err.status != status || strcmp(ctx.err.code, code) != 0)
		fail_msg("%s %s: want %d %s, got %d %s (%s)", name, args, status, code,
		    ctx.err.status, ctx.err.code, ctx.err.message);
	json_decref(r);
}

static void
test_table_is_consistent(void **state)
{
	(void)state;
	for (const struct op *const *o = op_table; *o; o++) {
		assert_non_null(op_handler(*o));
		assert_true(strlen((*o)->summary) > 0);
		assert_ptr_equal(op_find((*o)->name), *o);
		int positional_lists = 0;
		for (const struct op_arg *a = (*o)->args; a->name; a++) {
			assert_non_null(a->help);
			if (a->type != ARG_BOOL)
				assert_non_null(a->metavar);
			if ((a->flags & ARG_POSITIONAL) && a->type == ARG_IDS)
				positional_lists++;
		}
		assert_true(positional_lists <= 1);
	}
}

static void
test_argument_checks(void **state)
{
	struct fixture *f = *state;
	fails(f, NULL, "nope", "{}", 404, "unknown_command");
	fails(f, NULL, "send", "{\"user\":\"a\"}", 422, "missing_field");
	fails(f, NULL, "send", "{\"user\":\"a\",\"type\":\"m\",\"colour\":1}", 422, "unknown_field");
	fails(f, NULL, "send", "{\"user\":5,\"type\":\"m\"}", 422, "invalid_field");
	fails(f, NULL, "send", "{\"user\":\"a\",\"type\":\"m\",\"data\":[1]}", 422, "invalid_field");
	fails(f, NULL, "send", "{\"user\":\"a\",\"type\":\"Bad Type\"}", 422, "invalid_field");
	fails(f, NULL, "send", "{\"user\":\"a\",\"type\":\"m\",\"priority\":\"max\"}", 422,
	    "invalid_field");
	fails(f, NULL, "send", "{\"user\":\"a\",\"type\":\"m\",\"url\":\"javascript:x\"}", 422,
	    "invalid_field");
	fails(f, NULL, "send", "{\"user\":\"a\",\"type\":\"m\",\"key\":\"\"}", 422, "invalid_field");
	fails(f, NULL, "send", "{\"user\":\"\",\"type\":\"m\"}", 422, "invalid_field");
	fails(f, NULL, "send", "{\"user\":\"a/b\",\"type\":\"m\"}", 422, "invalid_field");
	fails(f, NULL, "send", "{\"user\":\"a\\u0001\",\"type\":\"m\"}", 422, "invalid_field");
	fails(f, NULL, "list", "{\"user\":\"a\",\"limit\":0}", 422, "invalid_field");
	fails(f, NULL, "list", "{\"user\":\"a\",\"limit\":201}", 422, "invalid_field");
	fails(f, NULL, "list", "{\"user\":\"a\",\"before\":0}", 422, "invalid_field");
	fails(f, NULL, "list", "{\"user\":\"ghost\"}", 404, "user_not_found");
	fails(f, NULL, "count", "{\"user\":\"ghost\"}", 404, "user_not_found");
	fails(f, NULL, "read", "{\"user\":\"a\"}", 422, "invalid_field");
	fails(f, NULL, "read", "{\"user\":\"a\",\"ids\":[1],\"all\":true}", 422, "invalid_field");
	fails(f, NULL, "read", "{\"user\":\"a\",\"ids\":[1,-2]}", 422, "invalid_field");
	fails(f, NULL, "read", "{\"user\":\"a\",\"ids\":[]}", 422, "invalid_field");
	fails(f, NULL, "show", "{\"id\":\"7\"}", 422, "invalid_field");
	fails(f, NULL, "show", "{\"id\":7}", 404, "not_found");
	/* Over-long text is refused, not truncated. */
	char big[1200 + 64];
	memset(big, 0, sizeof big);
	strcpy(big, "{\"user\":\"a\",\"type\":\"m\",\"title\":\"");
	memset(big + strlen(big), 'x', 1100);
	strcat(big, "\"}");
	fails(f, NULL, "send", big, 422, "invalid_field");
}

static void
test_send_read_flow(void **state)
{
	struct fixture *f = *state;
	struct op_ctx ctx;
	json_t *r = call(f, &ctx, NULL, "send",
	    "{\"user\":\"alice\",\"type\":\"message\",\"title\":\"hi\",\"key\":\"k\"}");
	assert_non_null(r);
	assert_int_equal(ctx.status, 201);
	json_int_t id = json_integer_value(json_object_get(r, "id"));
	json_decref(r);
	r = call(f, &ctx, NULL, "send", "{\"user\":\"alice\",\"type\":\"message\",\"key\":\"k\"}");
	assert_int_equal(ctx.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r, "id")), id);
	assert_string_equal(json_string_value(json_object_get(r, "title")), "hi");
	json_decref(r);

	r = call(f, &ctx, NULL, "count", "{\"user\":\"alice\"}");
	assert_int_equal(json_integer_value(json_object_get(r, "unread_count")), 1);
	json_decref(r);
	char args[100];
	snprintf(args, sizeof args, "{\"user\":\"alice\",\"ids\":[%lld]}", (long long)id);
	r = call(f, &ctx, NULL, "read", args);
	assert_int_equal(json_integer_value(json_object_get(r, "unread_count")), 0);
	assert_int_equal(json_array_size(json_object_get(r, "ids")), 1);
	json_decref(r);
	fails(f, NULL, "read", "{\"user\":\"alice\",\"ids\":[999]}", 404, "not_found");
	fails(f, NULL, "unread", "{\"user\":\"bob\",\"ids\":[1]}", 404, "user_not_found");
}

static void
test_user_token_isolation(void **state)
{
	struct fixture *f = *state;
	struct op_ctx ctx;
	json_t *r = call(f, &ctx, NULL, "send", "{\"user\":\"bob\",\"type\":\"m\"}");
	json_int_t bob_id = json_integer_value(json_object_get(r, "id"));
	json_decref(r);
	json_decref(call(f, &ctx, NULL, "send", "{\"user\":\"alice\",\"type\":\"m\"}"));

	/* alice acting as herself: her inbox, never bob's. */
	r = call(f, &ctx, "alice", "list", "{}");
	assert_non_null(r);
	assert_int_equal(json_array_size(json_object_get(r, "notifications")), 1);
	json_decref(r);
	fails(f, "alice", "list", "{\"user\":\"bob\"}", 403, "forbidden");
	fails(f, "alice", "send", "{\"user\":\"alice\",\"type\":\"m\"}", 403, "forbidden");
	/* An admin's alone, and checked before it touches the file system. */
	fails(f, "alice", "backup", "{\"path\":\"/tmp/notifyd-test-ops-never\"}", 403, "forbidden");
	assert_int_equal(access("/tmp/notifyd-test-ops-never", F_OK), -1);
	fails(f, NULL, "backup", "{\"path\":\"relative\"}", 422, "invalid_field");
	char args[64];
	snprintf(args, sizeof args, "{\"id\":%lld}", (long long)bob_id);
	fails(f, "alice", "show", args, 404, "not_found");
	snprintf(args, sizeof args, "{\"ids\":[%lld]}", (long long)bob_id);
	fails(f, "alice", "read", args, 404, "not_found");
}

/*
 * The store's threads may emit after the hub has stopped (until the store
 * closes): a stopped hub ignores them, and a freed one hears nothing. Under
 * ASan (make SANITIZE=1 test) a use after free here fails.
 */
static void
test_hub_ignores_events_once_stopped(void **state)
{
	struct fixture *f = *state;
	struct hub_options ho = {.max_conns = 4, .per_user = 2, .queue = 8, .senders = 1};
	json_t *n = json_pack("{s:I, s:s}", "id", (json_int_t)1, "user", "u");
	assert_int_equal(hub_start(&f->app.hub, &f->app, &ho), 0);
	events_emit_notification("u", 1, n, NULL, 0, 1);
	hub_stop(f->app.hub);
	events_emit_notification("u", 2, n, NULL, 0, 2);
	events_emit(EVENT_RESYNC, "", NULL);
	hub_free(f->app.hub);
	f->app.hub = NULL;
	events_emit_notification("u", 3, n, NULL, 0, 3);
	/* And a hub started again hears events, as the only one subscribed. */
	assert_int_equal(hub_start(&f->app.hub, &f->app, &ho), 0);
	events_emit_notification("u", 4, n, NULL, 0, 4);
	hub_stop(f->app.hub);
	hub_free(f->app.hub);
	f->app.hub = NULL;
	json_decref(n);
}

/* A client of the hub that keeps what it was told: how and when it was closed. */
struct fake {
	int	 code;		/* close code; 0: open */
	int64_t	 closed_at;	/* ms */
};

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fake_closed = PTHREAD_COND_INITIALIZER;
static int fake_closes;
static struct fake *fake_order[4096];	/* in the order closed */

static int
fake_send(void *ctx, const char *data, size_t len)
{
	(void)ctx, (void)data, (void)len;
	return 0;
}

static void
fake_close(void *ctx, int code, const char *reason)
{
	struct fake *k = ctx;
	(void)reason;
	pthread_mutex_lock(&fake_lock);
	k->code = code;
	k->closed_at = time_now_ms();
	if (fake_closes < (int)(sizeof fake_order / sizeof *fake_order))
		fake_order[fake_closes] = k;
	fake_closes++;
	pthread_cond_broadcast(&fake_closed);
	pthread_mutex_unlock(&fake_lock);
}

/*
 * Thousands of users in the hub's table (grown from its first 256
 * buckets), each found again, and their tokens' expiry: every client
 * whose token expires is closed with 4001, none before its time, and no
 * other (never, later, or gone before its time: taken out of the heap
 * wherever it is) is. With one sender, clients are closed in the order
 * the timer takes them: soonest first, unless the heap is out of order
 * (one that fell due while it was still being attached, as under
 * valgrind, is closed once attached: it is left out of that order). A
 * heap that keeps a client gone is a use after free under ASan.
 */
static void
test_hub_many_users_and_expiry(void **state)
{
	struct fixture *f = *state;
	enum { N = 3000 };
	struct hub_options ho = {.max_conns = N, .per_user = 1, .queue = 8, .senders = 1};
	struct hub_transport t = {fake_send, fake_close, NULL};
	static struct fake fakes[N];
	static struct hub_conn *conns[N];
	static int64_t expires[N], attached[N];
	char name[32];
	int want = 0;

	memset(fakes, 0, sizeof fakes);
	fake_closes = 0;
	assert_int_equal(hub_start(&f->app.hub, &f->app, &ho), 0);
	int64_t now = time_now_ms();
	for (int i = 0; i < N; i++) {
		/* Expiring soon (in a shuffled order), never, in an hour, or gone before. */
		int kind = i % 4;
		expires[i] = kind == 1 ? 0 : kind == 2 ? now + 3600000 :
		    now + 300 + (int64_t)((i * 7919) % 1000);
		want += kind == 0;
		snprintf(name, sizeof name, "user-%d", i);
		assert_int_equal(hub_reserve(f->app.hub, name), HUB_OK);
		conns[i] = hub_attach(f->app.hub, name, expires[i], -1, &t, &fakes[i]);
		assert_non_null(conns[i]);
		attached[i] = time_now_ms();
	}
	/*
	 * Gone: every fourth, and half the hour-long ones (deep in the heap,
	 * where a soon one put in a place must move up).
	 */
	for (int i = 0; i < N; i++)
		if (i % 4 == 3 || i % 8 == 2) {
			hub_detach(conns[i]);
			conns[i] = NULL;
		}
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof name, "user-%d", i);
		assert_int_equal(hub_presence(f->app.hub, name), conns[i] != NULL);
	}
	assert_int_equal(hub_presence(f->app.hub, "user-3000"), 0);
	assert_int_equal(hub_reserve(f->app.hub, "user-0"), HUB_USER_LIMIT);

	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	pthread_mutex_lock(&fake_lock);
	while (fake_closes < want &&
	    pthread_cond_timedwait(&fake_closed, &fake_lock, &until) == 0)
		;
	pthread_mutex_unlock(&fake_lock);
	for (int i = 0; i < N; i++) {
		if (i % 4 == 0) {
			if (fakes[i].code != 4001)
				fail_msg("user-%d (expires in %lld ms) closed with %d", i,
				    (long long)(expires[i] - now), fakes[i].code);
			assert_true(fakes[i].closed_at >= expires[i]);
		} else if (fakes[i].code != 0) {
			fail_msg("user-%d (kind %d) closed with %d", i, i % 4, fakes[i].code);
		}
	}
	assert_int_equal(fake_closes, want);
	for (int k = 0, prev = -1; k < want; k++) {
		int i = (int)(fake_order[k] - fakes);
		if (expires[i] <= attached[i])
			continue;
		if (prev >= 0 && expires[i] < expires[prev])
			fail_msg("closed out of order: user-%d (in %lld ms) after user-%d "
			    "(in %lld ms)", i, (long long)(expires[i] - now), prev,
			    (long long)(expires[prev] - now));
		prev = i;
	}
	for (int i = 0; i < N; i++)
		if (conns[i] != NULL)
			hub_detach(conns[i]);
	json_t *open = hub_connections(f->app.hub);
	assert_int_equal(json_integer_value(json_object_get(open, "total")), 0);
	assert_int_equal(json_object_size(json_object_get(open, "users")), 0);
	json_decref(open);
	hub_stop(f->app.hub);
	hub_free(f->app.hub);
	f->app.hub = NULL;
}

int
main(void)
{
	log_set_level(LOG_ERROR + 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_is_consistent),
		cmocka_unit_test_setup_teardown(test_argument_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hub_ignores_events_once_stopped, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hub_many_users_and_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_read_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_token_isolation, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
