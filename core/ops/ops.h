/*
 * ops — every operation of notifyd, declared once.
 *
 * An operation is one `struct op` in op_table[]: its name, its arguments,
 * its help and its handler. The control socket dispatches into it, REST
 * routes dispatch into it, and notifyctl builds its command line, help and
 * validation from it, so the three cannot drift apart.
 */
#ifndef NOTIFYD_OPS_H
#define NOTIFYD_OPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct app;
struct buf;

enum arg_type {
	ARG_STRING,	/* JSON string */
	ARG_INT,	/* JSON integer */
	ARG_ID,		/* JSON integer > 0 */
	ARG_BOOL,	/* JSON true/false */
	ARG_OBJECT,	/* JSON object; on the command line K=V or K:=JSON, repeatable */
	ARG_IDS,	/* JSON array of integers > 0 */
	ARG_TIME,	/* RFC 3339 string */
	ARG_STRINGS,	/* JSON array of strings; on the command line repeatable */
	ARG_DURATION,	/* a duration string such as 90s, 15m, 1h30m */
};

/* Argument flags. */
#define ARG_REQUIRED	0x01	/* must be given */
#define ARG_POSITIONAL	0x02	/* on the command line a bare word (ARG_IDS: all the rest) */

/* One argument of an operation. */
struct op_arg {
	const char	*name;		/* key in "args" */
	enum arg_type	 type;
	int		 flags;		/* ARG_* */
	const char	*metavar;	/* what the command line shows, e.g. USER */
	const char	*help;		/* one line */
};

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

/* Operation flags. */
#define OP_ADMIN	0x01	/* only an admin (control socket, API key) may call it */
#define OP_STREAM	0x02	/* after its answer, the control socket streams events */

struct op {
	const char		*name;		/* e.g. "send"; notifyctl words joined by '.' */
	const char		*summary;	/* one line for help */
	const struct op_arg	*args;		/* ended by {NULL} */
	op_fn			 fn;
	int			 flags;		/* OP_* */
	const char		*alias;		/* another name, e.g. "prefs.show", or NULL */
};

extern const struct op *const op_table[];

/* The operation named name, or NULL. */
const struct op	*op_find(const char *name);
/* The argument of op named name, or NULL. */
const struct op_arg *op_arg_find(const struct op *op, const char *name);
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
/* The JSON name of an argument type, for messages and help. */
const char	*op_arg_type_name(enum arg_type t);

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

/* The operations, one per file core/op_*.c. */
extern const struct op op_ping, op_status, op_check, op_send, op_list, op_show, op_read, op_unread,
    op_count, op_archive, op_unarchive, op_delete, op_user_show, op_user_set,
    op_topic_add, op_topic_rm, op_topic_show, op_key_create, op_key_list,
    op_key_revoke, op_token, op_presence, op_connections, op_disconnect, op_watch,
    op_mail_list, op_mail_show, op_mail_read, op_mail_clear, op_mail_wait, op_mail_info,
    op_template_list, op_template_render, op_prefs_get, op_prefs_set, op_cancel, op_digest;

/*
 * Make the due digests of period (mode enum digest_mode of prefs.h): of
 * user only when not NULL, of those whose local hour is hour and local day
 * day (each -1: any). The result, or NULL with ctx->err.
 */
json_t		*op_digest_run(struct op_ctx *ctx, int period, const char *user, int hour,
		    int day, bool dry_run);

/* Let mail.wait hear of arrivals; call once before serving. */
void		 op_mail_listen(void);

#endif
