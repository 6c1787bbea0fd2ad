/* store — the interface of store.h, dispatched to the open store's backend (backend.h). */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "util.h"

_Thread_local enum store_error store_error_last;

enum store_error
store_last_error(void)
{
	enum store_error e = store_error_last;
	store_error_last = STORE_OK;
	return e;
}

int
store_open(struct store **out, const char *path, const struct store_options *opt,
    char *err, size_t errlen)
{
	return sqlite_open(out, path, opt, err, errlen);
}

int
store_open_url(struct store **out, const char *url, const struct store_options *opt,
    char *err, size_t errlen)
{
	return pg_open(out, url, opt, err, errlen);
}

void
store_close(struct store *st)
{
	if (st != NULL)
		st->be->close(st);
}

int
store_ping(struct store *st)
{
	return st->be->ping(st);
}

int
store_check(struct store *st, bool full, bool repair, json_t **out)
{
	return st->be->check(st, full, repair, out);
}

int
store_explain(struct store *st, const char *which, char *out, size_t n)
{
	return st->be->explain(st, which, out, n);
}

int
store_backup(struct store *st, const char *path, int64_t *bytes, char *err, size_t errlen)
{
	return st->be->backup(st, path, bytes, err, errlen);
}

int
store_counts(struct store *st, int64_t *users, int64_t *notifications, int64_t *mail)
{
	return st->be->counts(st, users, notifications, mail);
}

void
store_stats(struct store *st, int64_t *commits, int64_t *writes)
{
	st->be->stats(st, commits, writes);
}

int
store_user_exists(struct store *st, const char *user)
{
	return st->be->user_exists(st, user);
}

int
store_user_get(struct store *st, const char *user, json_t **out)
{
	return st->be->user_get(st, user, out);
}

int
store_user_put(struct store *st, const struct user_update *u, int64_t now, json_t **out,
    bool *created)
{
	return st->be->user_put(st, u, now, out, created);
}

int
store_notifications_create(struct store *st, const struct notification_new *in, size_t n,
    int64_t now, json_t **out, char **text, bool *created)
{
	return st->be->notifications_create(st, in, n, now, out, text, created);
}

int
store_notification_get(struct store *st, int64_t id, json_t **out)
{
	return st->be->notification_get(st, id, out);
}

int
store_notification_list(struct store *st, const struct notification_query *q, int64_t now,
    json_t **out)
{
	return st->be->notification_list(st, q, now, out);
}

int
store_notification_list_text(struct store *st, const struct notification_query *q, int64_t now,
    struct buf *out)
{
	return st->be->notification_list_text(st, q, now, out);
}

int
store_notifications_mark(struct store *st, const char *user, const int64_t *ids, size_t n,
    enum mark how, int64_t now, json_t **result, int64_t *missing)
{
	return st->be->notifications_mark(st, user, ids, n, how, now, result, missing);
}

int
store_notifications_read_all(struct store *st, const char *user, int64_t now, json_t **result)
{
	return st->be->notifications_read_all(st, user, now, result);
}

int
store_notification_delete(struct store *st, const char *user, int64_t id, bool scheduled,
    int64_t now, struct deleted *d)
{
	return st->be->notification_delete(st, user, id, scheduled, now, d);
}

int
store_notifications_after(struct store *st, const char *user, int64_t after, int limit,
    int64_t now, json_t **out)
{
	return st->be->notifications_after(st, user, after, limit, now, out);
}

int
store_last_id(struct store *st, const char *user, int64_t now, int64_t *id)
{
	return st->be->last_id(st, user, now, id);
}

int
store_unread_count(struct store *st, const char *user, int64_t now, int64_t *count)
{
	return st->be->unread_count(st, user, now, count);
}

int
store_notification_cancel(struct store *st, const char *user, int64_t id, bool *too_late,
    int64_t *released_as)
{
	return st->be->notification_cancel(st, user, id, too_late, released_as);
}

int
store_prefs_get(struct store *st, const char *user, struct prefs *p)
{
	return st->be->prefs_get(st, user, p);
}

int
store_recipients(struct store *st, const char *const *users, size_t n, struct prefs *p,
    recipient_fn fn, void *arg)
{
	return st->be->recipients(st, users, n, p, fn, arg);
}

int
store_prefs_update(struct store *st, const char *user, int64_t now, bool (*fn)(struct prefs *p,
    void *arg), void *arg, struct prefs *out)
{
	return st->be->prefs_update(st, user, now, fn, arg, out);
}

int
store_deliveries_claim(struct store *st, int64_t now, struct delivery *out, size_t max,
    size_t *n)
{
	return st->be->deliveries_claim(st, now, out, max, n);
}

int
store_deliveries_next(struct store *st, int64_t *at)
{
	return st->be->deliveries_next(st, at);
}

int
store_deliveries_unclaim(struct store *st)
{
	return st->be->deliveries_unclaim(st);
}

int
store_delivery_finish(struct store *st, int64_t id, enum delivery_status status, int64_t next_at,
    const char *error, int64_t now)
{
	return st->be->delivery_finish(st, id, status, next_at, error, now);
}

int
store_delivery_notification(struct store *st, int64_t delivery, json_t **out)
{
	return st->be->delivery_notification(st, delivery, out);
}

int
store_deliveries_of(struct store *st, int64_t id, json_t **out)
{
	return st->be->deliveries_of(st, id, out);
}

int
store_digest_candidates(struct store *st, enum digest_mode period, const char *user,
    json_t **out)
{
	return st->be->digest_candidates(st, period, user, out);
}

void
store_digests_make(struct store *st, const struct digest_new *in, size_t n, int64_t now,
    struct digest_made *out, int *rcs)
{
	st->be->digests_make(st, in, n, now, out, rcs);
}

int
store_digest_tally(struct store *st, const char *user, int64_t cutoff, int64_t *unread,
    int64_t *read)
{
	return st->be->digest_tally(st, user, cutoff, unread, read);
}

int
store_digest_get(struct store *st, int64_t id, bool include_read, int limit, json_t **out)
{
	return st->be->digest_get(st, id, include_read, limit, out);
}

int
store_topic_add(struct store *st, const char *topic, const char *user, int64_t now, bool *added,
    int64_t *count)
{
	return st->be->topic_add(st, topic, user, now, added, count);
}

int
store_topic_remove(struct store *st, const char *topic, const char *user, int64_t *count)
{
	return st->be->topic_remove(st, topic, user, count);
}

int
store_topic_members(struct store *st, const char *topic, json_t **members)
{
	return st->be->topic_members(st, topic, members);
}

int
store_key_create(struct store *st, const char *name, const unsigned char hash[32], int64_t now,
    int64_t *id)
{
	return st->be->key_create(st, name, hash, now, id);
}

int
store_key_lookup(struct store *st, const unsigned char hash[32], int64_t *id,
    int64_t *last_used)
{
	return st->be->key_lookup(st, hash, id, last_used);
}

int
store_key_touch(struct store *st, int64_t id, int64_t now)
{
	return st->be->key_touch(st, id, now);
}

int
store_key_list(struct store *st, json_t **out)
{
	return st->be->key_list(st, out);
}

int
store_key_revoke(struct store *st, int64_t id, const char *name, int64_t now)
{
	return st->be->key_revoke(st, id, name, now);
}

void
store_mail_insert(struct store *st, const struct mail_new *m, int n, int *rcs)
{
	st->be->mail_insert(st, m, n, rcs);
}

int
store_mail_list(struct store *st, int64_t start, int64_t limit, const char *like, json_t **out)
{
	return st->be->mail_list(st, start, limit, like, out);
}

int
store_mail_get(struct store *st, const char *uid, struct mail_got *m)
{
	return st->be->mail_get(st, uid, m);
}

int
store_mail_next(struct store *st, int64_t after_seq, const char *like, json_t **summary,
    int64_t *seq)
{
	return st->be->mail_next(st, after_seq, like, summary, seq);
}

int
store_mail_scan(struct store *st, int64_t after_seq, int (*fn)(void *arg, json_t *summary,
    const char *search, int64_t seq), void *arg)
{
	return st->be->mail_scan(st, after_seq, fn, arg);
}

int
store_mail_change(struct store *st, json_t *uids, int read, int64_t *changed)
{
	return st->be->mail_change(st, uids, read, changed);
}

int
store_setting(struct store *st, const char *name, const char *fresh, char *out, size_t n)
{
	return st->be->setting(st, name, fresh, out, n);
}

int
store_size(struct store *st, char *where, size_t n, int64_t *bytes)
{
	return st->be->size(st, where, n, bytes);
}

int
store_presence_add(struct store *st, const char *user, int delta, int64_t now)
{
	return st->be->presence_add(st, user, delta, now);
}

int
store_presence(struct store *st, const char *user, int64_t now, json_t **out)
{
	return st->be->presence(st, user, now, out);
}

int
store_broadcast(struct store *st, int type, const char *user, json_t *data)
{
	return st->be->broadcast(st, type, user, data);
}

int
store_push_subscribe(struct store *st, const char *user, const char *endpoint,
    const char *p256dh, const char *auth, int64_t max, int64_t now, int64_t *id,
    bool *created)
{
	return st->be->push_subscribe(st, user, endpoint, p256dh, auth, max, now, id, created);
}

int
store_push_list(struct store *st, const char *user, json_t **out)
{
	return st->be->push_list(st, user, out);
}

int
store_push_get(struct store *st, int64_t id, json_t **out)
{
	return st->be->push_get(st, id, out);
}

int
store_push_remove(struct store *st, const char *user, int64_t id)
{
	return st->be->push_remove(st, user, id);
}

int
store_push_result(struct store *st, int64_t id, const char *error, int64_t now)
{
	return st->be->push_result(st, id, error, now);
}

int
store_webhook_add(struct store *st, const struct webhook_new *w, int64_t now, int64_t *id)
{
	return st->be->webhook_add(st, w, now, id);
}

int
store_webhook_list(struct store *st, json_t **out)
{
	return st->be->webhook_list(st, out);
}

int
store_webhook_get(struct store *st, int64_t id, json_t **out)
{
	return st->be->webhook_get(st, id, out);
}

int
store_webhook_remove(struct store *st, int64_t id)
{
	return st->be->webhook_remove(st, id);
}

int
store_webhook_result(struct store *st, int64_t id, int status, const char *error, int64_t now,
    int64_t disable_after, bool *disabled)
{
	return st->be->webhook_result(st, id, status, error, now, disable_after, disabled);
}

json_t *
notification_new_object(const struct notification_new *in, int64_t id, int64_t now, bool hidden)
{
	char ts[40];
	json_t *data = in->data ? json_loads(in->data, JSON_DECODE_ANY, NULL) : NULL;
	json_t *o = json_object();
#define S(v) ((v) ? json_string(v) : json_null())
	json_object_set_new(o, "id", json_integer(id));
	json_object_set_new(o, "user", S(in->user));
	json_object_set_new(o, "type", S(in->type));
	json_object_set_new(o, "category", S(in->category));
	json_object_set_new(o, "priority", json_string(in->priority ? in->priority : "normal"));
	json_object_set_new(o, "title", S(in->title));
	json_object_set_new(o, "body", S(in->body));
	json_object_set_new(o, "data", data ? data : json_null());
	json_object_set_new(o, "url", S(in->url));
#undef S
	time_format_rfc3339(ts, sizeof ts, now);
	json_object_set_new(o, "created_at", json_string(ts));
	json_object_set_new(o, "read_at", json_null());
	json_object_set_new(o, "archived_at", hidden ? json_string(ts) : json_null());
	if (in->deliver_at > 0) {
		time_format_rfc3339(ts, sizeof ts, in->deliver_at);
		json_object_set_new(o, "deliver_at", json_string(ts));
	}
	return o;
}

static void
put_string(struct buf *b, const char *key, const char *v)
{
	buf_puts(b, key);
	if (v == NULL)
		buf_puts(b, "null");
	else
		buf_json_string(b, v, strlen(v));
}

/* data is notifyd's own compact dump (op_send): copied as it is, as a page copies it. */
void
notification_new_text(struct buf *b, const struct notification_new *in, int64_t id, int64_t now,
    bool hidden)
{
	buf_puts(b, "{\"id\":");
	buf_put_int(b, id);
	put_string(b, ",\"user\":", in->user);
	put_string(b, ",\"type\":", in->type);
	put_string(b, ",\"category\":", in->category);
	put_string(b, ",\"priority\":", in->priority ? in->priority : "normal");
	put_string(b, ",\"title\":", in->title);
	put_string(b, ",\"body\":", in->body);
	buf_puts(b, ",\"data\":");
	buf_puts(b, in->data ? in->data : "null");
	put_string(b, ",\"url\":", in->url);
	buf_puts(b, ",\"created_at\":");
	buf_put_time(b, now);
	buf_puts(b, ",\"read_at\":null,\"archived_at\":");
	if (hidden)
		buf_put_time(b, now);
	else
		buf_puts(b, "null");
	if (in->deliver_at > 0) {
		buf_puts(b, ",\"deliver_at\":");
		buf_put_time(b, in->deliver_at);
	}
	buf_putc(b, '}');
}

void
notifications_publish(const struct notification_new *in, size_t n, int64_t now,
    const int64_t *ids, const bool *created, const bool *hidden, const int64_t *counts,
    json_t **out, char **text)
{
	for (size_t i = 0; i < n; i++) {
		if (!created[i])
			continue;
		bool told = !hidden[i] && in[i].deliver_at <= now;
		if (text == NULL) {
			out[i] = notification_new_object(&in[i], ids[i], now, hidden[i]);
			if (told)
				events_emit_notification(in[i].user, ids[i], out[i], NULL, 0,
				    counts[i]);
			continue;
		}
		struct buf b;
		buf_init(&b);
		notification_new_text(&b, &in[i], ids[i], now, hidden[i]);
		size_t len = b.len;
		text[i] = buf_take(&b);
		if (told && text[i] != NULL)
			events_emit_notification(in[i].user, ids[i], NULL, text[i], len, counts[i]);
	}
}
