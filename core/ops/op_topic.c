/* topic add, topic rm, topic show — named groups of users a send can reach. */
#include "app.h"
#include "log.h"
#include "ops.h"
#include "store.h"

/* The topic argument, checked, or NULL with ctx->err set. */
static const char *
topic_arg(struct op_ctx *ctx, json_t *a)
{
	const char *t = json_string_value(json_object_get(a, "topic"));
	return op_check_name(ctx, "topic", t) ? t : NULL;
}

/* The topic's members as {"topic","count","members"}, or NULL with ctx->err set. */
static json_t *
members(struct op_ctx *ctx, const char *topic)
{
	json_t *m = NULL;
	int rc = store_topic_members(ctx->app->store, topic, &m);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the topic could not be read");
	if (rc == 0)
		return op_fail(ctx, 404, "topic_not_found", "topic '%s' has no members", topic);
	return json_pack("{s:s, s:I, s:o}", "topic", topic, "count",
	    (json_int_t)json_array_size(m), "members", m);
}

/* {"topic","user","count"}: the membership changed and the topic's size. */
static json_t *
membership(const char *topic, const char *user, int64_t count)
{
	return json_pack("{s:s, s:s, s:I}", "topic", topic, "user", user, "count",
	    (json_int_t)count);
}

/* Add the user (created if new) to the topic. Answers with the
 * membership, not the member list, which would make filling a topic of
 * N members cost N². */
static json_t *
add_run(struct op_ctx *ctx, json_t *a)
{
	const char *topic = topic_arg(ctx, a), *user;
	bool added;
	int64_t count;
	if (topic == NULL || (user = op_user_arg(ctx, a, true)) == NULL)
		return NULL;
	if (ctx->as_user != NULL)
		return op_fail(ctx, 403, "forbidden", "a user token may not change topics");
	if (store_topic_add(ctx->app->store, topic, user, ctx->now, &added, &count) <= 0)
		return op_fail(ctx, 500, "internal", "the topic could not be changed");
	if (added)
		log_info("topic member added", "topic=%s user=%s", topic, user);
	ctx->status = added ? 201 : 200;
	return membership(topic, user, count);
}

/* Remove the user from the topic. */
static json_t *
rm_run(struct op_ctx *ctx, json_t *a)
{
	const char *topic = topic_arg(ctx, a), *user;
	int64_t count;
	if (topic == NULL || (user = op_user_arg(ctx, a, true)) == NULL)
		return NULL;
	if (ctx->as_user != NULL)
		return op_fail(ctx, 403, "forbidden", "a user token may not change topics");
	int rc = store_topic_remove(ctx->app->store, topic, user, &count);
	if (rc == 0)
		return op_fail(ctx, 404, "not_found", "'%s' is not a member of topic '%s'", user, topic);
	if (rc < 0)
		return op_fail(ctx, 500, "internal", "the topic could not be changed");
	log_info("topic member removed", "topic=%s user=%s", topic, user);
	return membership(topic, user, count);
}

static json_t *
show_run(struct op_ctx *ctx, json_t *a)
{
	const char *topic = topic_arg(ctx, a);
	return topic == NULL ? NULL : members(ctx, topic);
}

const struct op_impl op_topic_add_impl = {.op = &op_topic_add, .fn = add_run};
const struct op_impl op_topic_rm_impl = {.op = &op_topic_rm, .fn = rm_run};
const struct op_impl op_topic_show_impl = {.op = &op_topic_show, .fn = show_run};
