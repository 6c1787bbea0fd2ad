/*
 * check — is the database sound, and does every unread counter and topic
 * size agree with the rows it counts?
 */
#include "app.h"
#include "log.h"
#include "ops.h"
#include "store.h"

static json_t *
check_run(struct op_ctx *ctx, json_t *a)
{
	json_t *r = NULL;
	bool repair = json_is_true(json_object_get(a, "repair"));
	if (store_check(ctx->app->store, json_is_true(json_object_get(a, "full")), repair, &r) < 0)
		return op_fail(ctx, 500, "internal", "the database could not be checked");
	size_t bad = json_array_size(json_object_get(r, "unread_mismatches"));
	size_t topics = json_array_size(json_object_get(r, "topic_mismatches"));
	if (!json_is_true(json_object_get(r, "ok")) || bad > 0 || topics > 0)
		log_warn("database check found problems", "integrity=%s foreign_key_errors=%zu "
		    "unread_mismatches=%zu topic_mismatches=%zu repaired=%lld",
		    json_string_value(json_object_get(r, "integrity")),
		    json_array_size(json_object_get(r, "foreign_key_errors")), bad, topics,
		    (long long)json_integer_value(json_object_get(r, "repaired")));
	return r;
}

const struct op_impl op_check_impl = {.op = &op_check, .fn = check_run};
