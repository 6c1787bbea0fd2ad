/*
 * digest — make each due user's digest of a period: one email per user and
 * slot carrying the email parked for it (run by cron: notifyctl digest).
 */
#include <string.h>

#include "app.h"
#include "config.h"
#include "digest.h"
#include "log.h"
#include "ops.h"
#include "store.h"
#include "util.h"

/* The day number (0 Monday .. 6 Sunday) of "mon" .. "sun"; -1 when it is none. */
static int
day_of(const char *s)
{
	for (int d = 0; d < 7; d++)
		if (strcmp(s, prefs_day_name(d)) == 0)
			return d;
	return -1;
}

/* Tally of a run. */
struct tally {
	json_t		*list;
	int64_t		 emailed, items, skipped_read, skipped_users, already;
};

/* Record a user's outcome; s: the slot it was for (NULL: none). */
static void
note(struct tally *t, const char *user, const char *status, const struct digest_slot *s,
    const struct digest_made *m)
{
	json_t *o = json_pack("{s:s, s:s}", "user", user, "status", status);
	if (s != NULL) {
		char a[40], b[40];
		time_format_rfc3339(a, sizeof a, s->start);
		time_format_rfc3339(b, sizeof b, s->end);
		json_object_set_new(o, "slot", json_string(s->name));
		json_object_set_new(o, "window_start", json_string(a));
		json_object_set_new(o, "window_end", json_string(b));
	}
	if (m != NULL) {
		json_object_set_new(o, "items", json_integer(m->items));
		json_object_set_new(o, "skipped_read", json_integer(m->read_skipped));
		if (m->id > 0)
			json_object_set_new(o, "digest_id", json_integer(m->id));
		if (m->delivery_id > 0)
			json_object_set_new(o, "delivery_id", json_integer(m->delivery_id));
	}
	json_array_append_new(t->list, o);
}

/* Make the digests of a batch of due users, and tally what each came to. */
static bool
make_batch(struct op_ctx *ctx, struct digest_new *in, const struct digest_slot *slots, size_t n,
    struct tally *t)
{
	struct digest_made out[STORE_BATCH_MAX];
	int rcs[STORE_BATCH_MAX];
	if (n == 0)
		return true;
	store_digests_make(ctx->app->store, in, n, ctx->now, out, rcs);
	for (size_t i = 0; i < n; i++) {
		if (rcs[i] < 0)
			return false;
		if (out[i].existed) {
			t->already++;
			note(t, in[i].user, "already_done", &slots[i], NULL);
			continue;
		}
		t->items += out[i].items;
		t->skipped_read += out[i].read_skipped;
		if (out[i].delivery_id > 0) {
			t->emailed++;
			log_info("digest queued", "user=%s period=%s slot=%s items=%lld delivery=%lld",
			    in[i].user, prefs_digest_name(in[i].period), in[i].slot,
			    (long long)out[i].items, (long long)out[i].delivery_id);
		} else {
			t->skipped_users++;
		}
		note(t, in[i].user, out[i].delivery_id > 0 ? "queued" : "nothing_left", &slots[i],
		    &out[i]);
	}
	return true;
}

json_t *
op_digest_run(struct op_ctx *ctx, int period_mode, const char *user, int hour, int day,
    bool dry_run)
{
	enum digest_mode period = (enum digest_mode)period_mode;
	const struct config *cfg = ctx->app->cfg;
	struct tally t = {.list = json_array()};
	struct digest_new batch[STORE_BATCH_MAX];
	struct digest_slot slots[STORE_BATCH_MAX];
	json_t *cand, *c;
	size_t i, n = 0;

	if (store_digest_candidates(ctx->app->store, period, user, &cand) < 0) {
		json_decref(t.list);
		return op_fail(ctx, 500, "internal", "the parked email could not be read");
	}
	json_array_foreach(cand, i, c) {
		const char *u = json_string_value(json_object_get(c, "user"));
		const char *tz = json_string_value(json_object_get(c, "tz"));
		const struct tz *z = tz != NULL ? tz_get(tz) : NULL;
		struct digest_slot *s = &slots[n];
		digest_slot(period, z ? z : tz_server(), ctx->now, s);
		bool parked = json_integer_value(json_object_get(c, "parked")) > 0;
		const char *last = json_string_value(json_object_get(c, "last_slot"));
		if (!digest_due(s, hour, day)) {
			if (parked) {
				t.skipped_users++;
				note(&t, u, "not_due", NULL, NULL);
			}
			continue;
		}
		if (!parked) {	/* nothing to send: say so only when this slot had its digest */
			if (last != NULL && strcmp(last, s->name) == 0) {
				t.already++;
				note(&t, u, "already_done", s, NULL);
			}
			continue;
		}
		if (dry_run) {	/* what the digest would hold, as digest_make_w counts it */
			struct digest_made m = {0};
			int64_t unread, read;
			if (store_digest_tally(ctx->app->store, u, ctx->now, &unread, &read) < 0)
				goto fail;
			m.items = cfg->digest_include_read ? unread + read : unread;
			m.read_skipped = cfg->digest_include_read ? 0 : read;
			t.items += m.items;
			t.skipped_read += m.read_skipped;
			if (m.items > 0)
				t.emailed++;
			else
				t.skipped_users++;
			note(&t, u, m.items > 0 ? "would_send" : "would_skip", s, &m);
			continue;
		}
		batch[n++] = (struct digest_new){.user = u, .period = period, .slot = s->name,
		    .window_start = s->start, .window_end = s->end, .cutoff = ctx->now,
		    .include_read = cfg->digest_include_read};
		if (n == STORE_BATCH_MAX) {
			if (!make_batch(ctx, batch, slots, n, &t))
				goto fail;
			n = 0;
		}
	}
	if (!make_batch(ctx, batch, slots, n, &t))
		goto fail;
	json_decref(cand);
	return json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:o}", "period",
	    prefs_digest_name(period), "dry_run", dry_run, "users_emailed", (json_int_t)t.emailed,
	    "items", (json_int_t)t.items, "skipped_read", (json_int_t)t.skipped_read,
	    "users_skipped", (json_int_t)t.skipped_users, "already_done", (json_int_t)t.already,
	    "digests", t.list);
fail:
	json_decref(cand);
	json_decref(t.list);
	return op_fail(ctx, 500, "internal", "a digest could not be made");
}

static json_t *
digest_run(struct op_ctx *ctx, json_t *a)
{
	const char *p = json_string_value(json_object_get(a, "period"));
	const char *user = json_string_value(json_object_get(a, "user"));
	const char *dayname = json_string_value(json_object_get(a, "local_day"));
	json_t *h = json_object_get(a, "local_hour");
	enum digest_mode period;
	int hour = -1, day = -1;

	if (!prefs_parse_digest(p, &period) || period == DIGEST_OFF)
		return op_fail(ctx, 422, "invalid_field", "'period' must be daily or weekly");
	if (user != NULL && !op_check_user(ctx, "user", user))
		return NULL;
	if (json_is_integer(h)) {
		hour = (int)json_integer_value(h);
		if (json_integer_value(h) < 0 || json_integer_value(h) > 23)
			return op_fail(ctx, 422, "invalid_field", "'local_hour' must be 0 to 23");
	}
	if (dayname != NULL && (day = day_of(dayname)) < 0)
		return op_fail(ctx, 422, "invalid_field", "'local_day' must be one of mon .. sun");
	if (dayname != NULL && period != DIGEST_WEEKLY)
		return op_fail(ctx, 422, "invalid_field", "'local_day' is for weekly digests");
	if (period == DIGEST_WEEKLY && hour >= 0 && day < 0)
		day = 0;	/* Monday */
	return op_digest_run(ctx, period, user, hour, day,
	    json_is_true(json_object_get(a, "dry_run")));
}

const struct op_impl op_digest_impl = {.op = &op_digest, .fn = digest_run};
