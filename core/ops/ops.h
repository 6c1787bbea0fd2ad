/*
 * ops — running the operations: the context of a call, the checks every
 * call goes through, and each operation's handler. What an operation is
 * (its name, arguments and help) is declared in decl.h.
 */
#ifndef NOTIFYD_OPS_H
#define NOTIFYD_OPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "decl.h"

struct app;
struct buf;

/* Why an operation failed: an HTTP-like status, a snake_case code, a sentence. */
struct op_error {
	int	 status;
	char	 code[48];
	char	 message[512];
};

/* One call of an operation. */
struct op_ctx {
	struct app	*app;
	const char	*as_user;	/* caller acts for this user only; NULL: admin */
	int		 status;	/* success status: 200, or 201 when something was created */
	struct op_error	 err;
	int64_t		 now;		/* ms, fixed for the call */
	/*
	 * Given by a transport that sends JSON text (HTTP): an operation may
	 * append its result there instead of building it, and return
	 * json_null() as the result; the transport sends the text.
	 */
	struct buf	*text;
};

/* Handler: returns the result (new reference), or NULL with ctx->err set. */
typedef json_t *(*op_fn)(struct op_ctx *ctx, json_t *args);

/* How an operation runs: its declaration (decl.h) and its handler (core/ops/op_NAME.c). */
struct op_impl {
	const struct op	*op;
	op_fn		 fn;
};

/* The handler of op (each declaration has one: test_ops checks), or NULL. */
op_fn		 op_handler(const struct op *op);
/* Check args against the operation's declaration, then run it. */
json_t		*op_call(struct op_ctx *ctx, const struct op *op, json_t *args);
/* Look up an operation by name and op_call it; unknown names fail with 404. */
json_t		*op_dispatch(struct op_ctx *ctx, const char *name, json_t *args);
/* Fill an error. */
void		 op_error_set(struct op_error *e, int status, const char *code,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Fill ctx->err and return NULL, for `return op_fail(...)`. */
json_t		*op_fail(struct op_ctx *ctx, int status, const char *code,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Shared checks for handlers; each fails ctx with 422 naming the field. */
bool		 op_check_user(struct op_ctx *ctx, const char *field, const char *user);
bool		 op_check_name(struct op_ctx *ctx, const char *field, const char *v);
bool		 op_check_text(struct op_ctx *ctx, const char *field, const char *v, size_t max);
/* Is notification object n scheduled and not yet due? */
bool		 op_not_due(const struct op_ctx *ctx, json_t *n);
/*
 * Is user the caller's own (a user token's) and not stored yet? Reads then
 * answer as for a user with nothing yet: a token may be minted before the
 * user's first notification, and its inbox is empty, not missing.
 */
bool		 op_own_new_user(const struct op_ctx *ctx, const char *user);
/* The user the call is about: args.user, checked, and the caller's own when a user token. */
const char	*op_user_arg(struct op_ctx *ctx, json_t *args, bool required);

/* The handlers, one file core/ops/op_NAME.c each. */
extern const struct op_impl op_ping_impl, op_status_impl, op_check_impl, op_backup_impl,
    op_send_impl,
    op_list_impl, op_show_impl, op_read_impl, op_unread_impl, op_count_impl, op_archive_impl,
    op_unarchive_impl, op_delete_impl, op_user_show_impl, op_user_set_impl, op_topic_add_impl,
    op_topic_rm_impl, op_topic_show_impl, op_key_create_impl, op_key_list_impl,
    op_key_revoke_impl, op_token_impl, op_presence_impl, op_connections_impl,
    op_disconnect_impl, op_watch_impl, op_mail_list_impl, op_mail_show_impl, op_mail_read_impl,
    op_mail_clear_impl, op_mail_wait_impl, op_mail_info_impl, op_template_list_impl,
    op_template_render_impl, op_prefs_get_impl, op_prefs_set_impl, op_cancel_impl,
    op_digest_impl, op_push_key_impl, op_push_subscribe_impl, op_push_list_impl,
    op_push_rm_impl, op_webhook_add_impl, op_webhook_list_impl, op_webhook_rm_impl,
    op_webhook_test_impl;

/*
 * Make the due digests of period (mode enum digest_mode of prefs.h): of
 * user only when not NULL, of those whose local hour is hour and local day
 * day (each -1: any). The result, or NULL with ctx->err.
 */
json_t		*op_digest_run(struct op_ctx *ctx, int period, const char *user, int hour,
		    int day, bool dry_run);

/*
 * The message ID a mail route names, into uid: args' "id", or for latest
 * with "query" or "tz" the newest message matching. 1; 0 when none
 * matches; -1 with ctx->err set.
 */
int		 op_mail_pick(struct op_ctx *ctx, json_t *args, char *uid, size_t n);

/* Let mail.wait hear of arrivals; call once before serving. */
void		 op_mail_listen(void);

#endif
