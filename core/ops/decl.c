/* decl — every operation's declaration; see decl.h. */
#include "decl.h"

#include <stddef.h>
#include <string.h>

/* The arguments of each operation, ended by {NULL}. */
#define IDS_ARGS(what) { \
	{"user", ARG_STRING, ARG_REQUIRED, "USER", "whose notifications"}, \
	{"ids", ARG_IDS, ARG_REQUIRED | ARG_POSITIONAL, "ID", "the notifications to " what}, \
	{NULL, 0, 0, NULL, NULL}, \
}

static const struct op_arg cancel_args[] = {
	{"id", ARG_ID, ARG_REQUIRED | ARG_POSITIONAL, "ID", "notification id"},
	{"user", ARG_STRING, 0, "USER", "only if it belongs to this user"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg check_args[] = {
	{"full", ARG_BOOL, 0, NULL, "SQLite's full integrity_check, not quick_check (slower)"},
	{"repair", ARG_BOOL, 0, NULL, "set each unread counter that disagrees to its rows' count"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg backup_args[] = {
	{"path", ARG_PATH, ARG_REQUIRED | ARG_POSITIONAL, "DIR",
	    "a directory to make and write the backup into (it must not exist)"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg count_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED, "USER", "whose inbox"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg delete_args[] = {
	{"id", ARG_ID, ARG_REQUIRED | ARG_POSITIONAL, "ID", "notification id"},
	{"user", ARG_STRING, 0, "USER", "only if it belongs to this user"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg digest_args[] = {
	{"period", ARG_STRING, ARG_REQUIRED, "PERIOD", "daily or weekly"},
	{"user", ARG_STRING, 0, "USER", "only this user"},
	{"local_hour", ARG_INT, 0, "HOUR", "only users for whom it is this hour (0-23) now, "
	    "in their own zone"},
	{"local_day", ARG_STRING, 0, "DAY", "weekly: only users for whom it is this day (mon..sun); "
	    "mon when --local-hour is given"},
	{"dry_run", ARG_BOOL, 0, NULL, "change nothing; tell who would get how many"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg key_create_args[] = {
	{"name", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "NAME", "what the key is for"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg key_list_args[] = {
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg key_revoke_args[] = {
	{"key", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "NAME|ID", "the key's name or id"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg push_key_args[] = {
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg push_subscribe_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED, "USER", "whose browser it is"},
	{"endpoint", ARG_STRING, ARG_REQUIRED, "URL", "the PushSubscription's endpoint"},
	{"keys", ARG_OBJECT, ARG_REQUIRED, "KEY=VALUE",
	    "its keys: p256dh and auth, base64url, as the browser gives them"},
	{"expiration_time", ARG_INT, 0, "MS", "accepted as browsers send it (expirationTime); "
	    "not used"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg push_list_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED, "USER", "whose subscriptions"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg push_rm_args[] = {
	{"id", ARG_ID, ARG_REQUIRED | ARG_POSITIONAL, "ID", "the subscription"},
	{"user", ARG_STRING, ARG_REQUIRED, "USER", "whose subscription it is"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg webhook_add_args[] = {
	{"url", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "URL", "where to POST, http or https"},
	{"types", ARG_STRINGS, 0, "TYPE,...", "only these notification types (default: all)"},
	{"users", ARG_STRINGS, 0, "USER,...", "only notifications to these users (default: all)"},
	{"format", ARG_STRING, 0, "FORMAT", "json (default, Standard Webhooks) or slack ({\"text\"})"},
	{"secret", ARG_STRING, 0, "SECRET", "signing secret, whsec_BASE64 (default: a new one, "
	    "shown once)"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg webhook_list_args[] = {
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg webhook_id_args[] = {
	{"id", ARG_ID, ARG_REQUIRED | ARG_POSITIONAL, "ID", "the endpoint"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg list_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED, "USER", "whose inbox"},
	{"limit", ARG_INT, 0, "N", "page size, 1 to 200 (default 50)"},
	{"before", ARG_ID, 0, "ID", "only notifications older than this id (the next_before of the last page)"},
	{"unread", ARG_BOOL, 0, NULL, "only unread ones"},
	{"type", ARG_STRING, 0, "TYPE", "only this type"},
	{"category", ARG_STRING, 0, "NAME", "only this category"},
	{"archived", ARG_BOOL, 0, NULL, "list archived notifications instead of the inbox"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg mail_info_args[] = {
	{NULL, 0, 0, NULL, NULL},
};

#define MAIL_TZ_HELP "IANA time zone of the search's dates (default: the server's)"

static const struct op_arg mail_list_args[] = {
	{"query", ARG_STRING, 0, "QUERY", "search, as Mailpit's: word \"phrase\" from: to: cc: bcc: "
	    "reply-to: addressed: subject: message-id: tag: is:read is:unread is:tagged "
	    "has:attachment before:DATE after:DATE, each negated by - or !"},
	{"start", ARG_INT, 0, "N", "skip this many (newest first)"},
	{"limit", ARG_INT, 0, "N", "at most this many, 1 to 1000 (default 50)"},
	{"tz", ARG_STRING, 0, "ZONE", MAIL_TZ_HELP},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg mail_show_args[] = {
	{"id", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "ID", "message ID, or latest"},
	{"raw", ARG_BOOL, 0, NULL, "the message as received"},
	{"html", ARG_BOOL, 0, NULL, "only its HTML body"},
	{"text", ARG_BOOL, 0, NULL, "only its text body"},
	{"headers", ARG_BOOL, 0, NULL, "only its headers"},
	{"query", ARG_STRING, 0, "QUERY", "with ID latest: the newest message matching this search"},
	{"tz", ARG_STRING, 0, "ZONE", MAIL_TZ_HELP},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg mail_read_args[] = {
	{"ids", ARG_STRINGS, ARG_POSITIONAL, "ID", "the messages (none: all)"},
	{"read", ARG_BOOL, 0, NULL, "read (true, the default) or unread (false)"},
	{"query", ARG_STRING, 0, "QUERY", "change the messages matching this search"},
	{"tz", ARG_STRING, 0, "ZONE", MAIL_TZ_HELP},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg mail_clear_args[] = {
	{"ids", ARG_STRINGS, ARG_POSITIONAL, "ID", "the messages to delete"},
	{"query", ARG_STRING, 0, "QUERY", "delete the messages matching this search"},
	{"tz", ARG_STRING, 0, "ZONE", MAIL_TZ_HELP},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg mail_wait_args[] = {
	{"query", ARG_STRING, 0, "QUERY", "wait for a message matching this search"},
	{"timeout", ARG_DURATION, 0, "DURATION", "give up after this long (default 30s)"},
	{"tz", ARG_STRING, 0, "ZONE", MAIL_TZ_HELP},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg ping_args[] = {
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg prefs_get_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED, "USER", "the user"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg prefs_set_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED, "USER", "the user (created if new)"},
	{"setting", ARG_STRING, ARG_POSITIONAL, "SETTING",
	    "email, in_app, push, quiet, digest or email-if-unread"},
	{"value", ARG_STRING, ARG_POSITIONAL, "VALUE",
	    "on|off; HH:MM-HH:MM|off; off|daily|weekly; a duration|off"},
	{"type", ARG_STRING, 0, "TYPE", "email/in_app/push: for this type only (default: every type)"},
	{"days", ARG_STRING, 0, "DAYS", "quiet: the days it starts on, e.g. mon-fri or sat,sun"},
	{"prefs", ARG_OBJECT, 0, "K:=JSON", "a preferences document, as GET returns it"},
	{"replace", ARG_BOOL, 0, NULL, "prefs replaces every preference (PUT); else it is merged"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg presence_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "USER", "the user"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg connections_args[] = {
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg disconnect_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "USER", "the user"},
	{"reason", ARG_STRING, 0, "TEXT", "told to the clients before they are closed"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg watch_args[] = {
	{"user", ARG_STRING, 0, "USER", "only this user's events"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg read_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED, "USER", "whose notifications"},
	{"ids", ARG_IDS, ARG_POSITIONAL, "ID", "the notifications to mark read"},
	{"all", ARG_BOOL, 0, NULL, "mark every notification of the user read"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg unread_args[] = IDS_ARGS("mark unread");

static const struct op_arg archive_args[] = IDS_ARGS("archive");

static const struct op_arg unarchive_args[] = IDS_ARGS("bring back to the inbox");

static const struct op_arg send_args[] = {
	{"user", ARG_STRING, 0, "USER", "recipient's user id"},
	{"users", ARG_STRINGS, 0, "USER", "several recipients (up to 1000), instead of user"},
	{"topic", ARG_STRING, 0, "TOPIC", "every member of this topic, instead of user"},
	{"type", ARG_STRING, ARG_REQUIRED, "TYPE", "notification type, e.g. order_shipped"},
	{"title", ARG_STRING, 0, "TEXT", "title"},
	{"body", ARG_STRING, 0, "TEXT", "body text"},
	{"data", ARG_OBJECT, 0, "K=V", "data for templates and clients (K:=JSON for non-strings)"},
	{"priority", ARG_STRING, 0, "PRIORITY", "low, normal (default), high or urgent"},
	{"category", ARG_STRING, 0, "NAME", "category, for filtering"},
	{"url", ARG_STRING, 0, "URL", "where the notification leads (http, https or /path)"},
	{"key", ARG_STRING, 0, "KEY", "idempotency key: a repeat returns the first and creates nothing"},
	{"at", ARG_TIME, 0, "TIME", "deliver at this time (RFC 3339, or +DURATION from now such as "
	    "+15m): invisible and cancellable until then"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg show_args[] = {
	{"id", ARG_ID, ARG_REQUIRED | ARG_POSITIONAL, "ID", "notification id"},
	{"user", ARG_STRING, 0, "USER", "only if it belongs to this user"},
	{"deliveries", ARG_BOOL, 0, NULL, "with each channel's delivery: status, attempts, error"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg status_args[] = {
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg template_list_args[] = {
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg template_render_args[] = {
	{"type", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "TYPE", "notification type"},
	{"data", ARG_OBJECT, 0, "K=V", "template data (K:=JSON for non-strings)"},
	{"user", ARG_STRING, 0, "USER", "render for this user's profile (name, email)"},
	{"title", ARG_STRING, 0, "TEXT", "title, instead of the type's"},
	{"body", ARG_STRING, 0, "TEXT", "body, instead of the type's"},
	{"url", ARG_STRING, 0, "URL", "the notification's URL"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg token_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "USER", "the token's user (sub)"},
	{"ttl", ARG_DURATION, 0, "DURATION", "how long it is valid (default 1h, at most 366d)"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg topic_member_args[] = {
	{"topic", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "TOPIC", "topic name"},
	{"user", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "USER", "member"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg topic_show_args[] = {
	{"topic", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "TOPIC", "topic name"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg user_show_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "USER", "the user"},
	{NULL, 0, 0, NULL, NULL},
};

static const struct op_arg user_set_args[] = {
	{"user", ARG_STRING, ARG_REQUIRED | ARG_POSITIONAL, "USER", "the user (created if new)"},
	{"email", ARG_STRING, 0, "ADDRESS", "email address (empty or null clears)"},
	{"name", ARG_STRING, 0, "NAME", "display name"},
	{"tz", ARG_STRING, 0, "ZONE", "IANA time zone, e.g. Europe/Berlin"},
	{"locale", ARG_STRING, 0, "LOCALE", "language tag, e.g. en-GB"},
	{NULL, 0, 0, NULL, NULL},
};

const struct op op_ping = {
	.name = "ping",
	.summary = "check that notifyd is running",
	.args = ping_args,
};

const struct op op_status = {
	.name = "status",
	.summary = "what is running: version, uptime, listeners, counts",
	.args = status_args,
	.flags = OP_ADMIN,
};

const struct op op_check = {
	.name = "check",
	.summary = "check the database and every user's unread counter",
	.args = check_args,
	.flags = OP_ADMIN,
};

const struct op op_backup = {
	.name = "backup",
	.summary = "copy the database and its secrets into a new directory, while running",
	.args = backup_args,
	.flags = OP_ADMIN,
};

const struct op op_send = {
	.name = "send",
	.summary = "send a notification to a user, users or a topic",
	.args = send_args,
};

const struct op op_list = {
	.name = "list",
	.summary = "list a user's notifications, newest first",
	.args = list_args,
};

const struct op op_show = {
	.name = "show",
	.summary = "show one notification",
	.args = show_args,
};

const struct op op_read = {
	.name = "read",
	.summary = "mark notifications read",
	.args = read_args,
};

const struct op op_unread = {
	.name = "unread",
	.summary = "mark notifications unread",
	.args = unread_args,
};

const struct op op_count = {
	.name = "count",
	.summary = "count a user's unread notifications",
	.args = count_args,
};

const struct op op_archive = {
	.name = "archive",
	.summary = "archive notifications (they leave the inbox)",
	.args = archive_args,
};

const struct op op_unarchive = {
	.name = "unarchive",
	.summary = "bring archived notifications back to the inbox",
	.args = unarchive_args,
};

const struct op op_delete = {
	.name = "delete",
	.summary = "delete a notification",
	.args = delete_args,
};

const struct op op_user_show = {
	.name = "user.show",
	.summary = "show a user's profile",
	.args = user_show_args,
};

const struct op op_user_set = {
	.name = "user.set",
	.summary = "create a user or change a profile",
	.args = user_set_args,
};

const struct op op_topic_add = {
	.name = "topic.add",
	.summary = "add a user to a topic",
	.args = topic_member_args,
};

const struct op op_topic_rm = {
	.name = "topic.rm",
	.summary = "remove a user from a topic",
	.args = topic_member_args,
};

const struct op op_topic_show = {
	.name = "topic.show",
	.summary = "list a topic's members",
	.args = topic_show_args,
	.flags = OP_ADMIN,
};

const struct op op_key_create = {
	.name = "key.create",
	.summary = "create an API key (shown once)",
	.args = key_create_args,
	.flags = OP_ADMIN,
};

const struct op op_key_list = {
	.name = "key.list",
	.summary = "list API keys",
	.args = key_list_args,
	.flags = OP_ADMIN,
};

const struct op op_key_revoke = {
	.name = "key.revoke",
	.summary = "revoke an API key",
	.args = key_revoke_args,
	.flags = OP_ADMIN,
};

const struct op op_push_key = {
	.name = "push.key",
	.summary = "show the VAPID public key browsers subscribe with",
	.args = push_key_args,
};

const struct op op_push_subscribe = {
	.name = "push.subscribe",
	.summary = "store a browser's push subscription for a user",
	.args = push_subscribe_args,
};

const struct op op_push_list = {
	.name = "push.list",
	.summary = "list a user's push subscriptions",
	.args = push_list_args,
};

const struct op op_push_rm = {
	.name = "push.rm",
	.summary = "remove a push subscription",
	.args = push_rm_args,
};

const struct op op_webhook_add = {
	.name = "webhook.add",
	.summary = "add a webhook endpoint (its secret is shown once)",
	.args = webhook_add_args,
	.flags = OP_ADMIN,
};

const struct op op_webhook_list = {
	.name = "webhook.list",
	.summary = "list webhook endpoints, their last status and failures",
	.args = webhook_list_args,
	.flags = OP_ADMIN,
};

const struct op op_webhook_rm = {
	.name = "webhook.rm",
	.summary = "remove a webhook endpoint",
	.args = webhook_id_args,
	.flags = OP_ADMIN,
};

const struct op op_webhook_test = {
	.name = "webhook.test",
	.summary = "send a signed test call to a webhook endpoint now",
	.args = webhook_id_args,
	.flags = OP_ADMIN,
};

const struct op op_token = {
	.name = "token",
	.summary = "mint a user token for clients",
	.args = token_args,
	.flags = OP_ADMIN,
};

const struct op op_presence = {
	.name = "presence",
	.summary = "is a user connected, and how many times",
	.args = presence_args,
	.flags = OP_ADMIN,
};

const struct op op_connections = {
	.name = "connections",
	.summary = "open connections, by user and in all",
	.args = connections_args,
	.flags = OP_ADMIN,
};

const struct op op_disconnect = {
	.name = "disconnect",
	.summary = "close every connection of a user",
	.args = disconnect_args,
	.flags = OP_ADMIN,
};

const struct op op_watch = {
	.name = "watch",
	.summary = "stream events (notifications, reads, ...) as they happen",
	.args = watch_args,
	.flags = OP_ADMIN | OP_STREAM,
};

const struct op op_mail_list = {
	.name = "mail.list",
	.summary = "list (or search) captured mail, newest first",
	.args = mail_list_args,
	.flags = OP_ADMIN,
};

const struct op op_mail_show = {
	.name = "mail.show",
	.summary = "show a captured message (and mark it read)",
	.args = mail_show_args,
	.flags = OP_ADMIN,
};

const struct op op_mail_read = {
	.name = "mail.read",
	.summary = "mark captured messages read or unread",
	.args = mail_read_args,
	.flags = OP_ADMIN,
};

const struct op op_mail_clear = {
	.name = "mail.clear",
	.summary = "delete captured messages (all, some, or matching)",
	.args = mail_clear_args,
	.flags = OP_ADMIN,
};

const struct op op_mail_wait = {
	.name = "mail.wait",
	.summary = "wait for a message matching a search, print it",
	.args = mail_wait_args,
	.flags = OP_ADMIN,
};

const struct op op_mail_info = {
	.name = "mail.info",
	.summary = "the mailbox in numbers (Mailpit's info)",
	.args = mail_info_args,
	.flags = OP_ADMIN,
};

const struct op op_template_list = {
	.name = "template.list",
	.summary = "list the notification templates",
	.args = template_list_args,
	.flags = OP_ADMIN,
};

const struct op op_template_render = {
	.name = "template.render",
	.summary = "render every part of a type's templates for some data",
	.args = template_render_args,
	.flags = OP_ADMIN,
};

const struct op op_prefs_get = {
	.name = "prefs.get",
	.summary = "show a user's delivery preferences",
	.args = prefs_get_args,
	.alias = "prefs.show",
};

const struct op op_prefs_set = {
	.name = "prefs.set",
	.summary = "change a user's delivery preferences",
	.args = prefs_set_args,
};

const struct op op_cancel = {
	.name = "cancel",
	.summary = "cancel a scheduled notification before it is due",
	.args = cancel_args,
	.flags = OP_ADMIN,
};

const struct op op_digest = {
	.name = "digest",
	.summary = "send each due user the digest of a period (for cron)",
	.args = digest_args,
	.flags = OP_ADMIN,
};

/* Every operation, in the order notifyctl's help lists them. */
const struct op *const op_table[] = {
	&op_ping,
	&op_status,
	&op_check,
	&op_backup,
	&op_send,
	&op_list,
	&op_show,
	&op_read,
	&op_unread,
	&op_count,
	&op_archive,
	&op_unarchive,
	&op_delete,
	&op_user_show,
	&op_user_set,
	&op_topic_add,
	&op_topic_rm,
	&op_topic_show,
	&op_key_create,
	&op_key_list,
	&op_key_revoke,
	&op_token,
	&op_push_key,
	&op_push_subscribe,
	&op_push_list,
	&op_push_rm,
	&op_webhook_add,
	&op_webhook_list,
	&op_webhook_rm,
	&op_webhook_test,
	&op_presence,
	&op_connections,
	&op_disconnect,
	&op_watch,
	&op_mail_list,
	&op_mail_show,
	&op_mail_read,
	&op_mail_clear,
	&op_mail_wait,
	&op_mail_info,
	&op_template_list,
	&op_template_render,
	&op_prefs_get,
	&op_prefs_set,
	&op_cancel,
	&op_digest,
	NULL,
};

const struct op *
op_find(const char *name)
{
	for (const struct op *const *o = op_table; *o; o++)
		if (strcmp((*o)->name, name) == 0 ||
		    ((*o)->alias != NULL && strcmp((*o)->alias, name) == 0))
			return *o;
	return NULL;
}

const struct op_arg *
op_arg_find(const struct op *op, const char *name)
{
	for (const struct op_arg *a = op->args; a->name; a++)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

const char *
op_arg_type_name(enum arg_type t)
{
	switch (t) {
	case ARG_STRING:	return "a string";
	case ARG_INT:		return "an integer";
	case ARG_ID:		return "a positive integer id";
	case ARG_BOOL:		return "true or false";
	case ARG_OBJECT:	return "an object";
	case ARG_IDS:		return "an array of positive integer ids";
	case ARG_TIME:		return "an RFC 3339 time or +DURATION";
	case ARG_STRINGS:	return "an array of strings";
	case ARG_DURATION:	return "a duration such as 30s, 15m or 1h";
	case ARG_PATH:		return "an absolute path";
	}
	return "?";
}
