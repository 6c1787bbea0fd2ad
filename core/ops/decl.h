/*
 * decl — every operation of notifyd, declared once: its name, arguments,
 * help and flags, and nothing that runs it.
 *
 * The control socket and REST dispatch into these (their handlers are in
 * core/ops/op_*.c, see ops.h), and notifyctl builds its command line, help,
 * completion and validation from them, so the three cannot drift apart.
 * notifyctl links this file and not the handlers: it needs no store, no
 * SQLite, no libcurl, no GMime and no civetweb.
 */
#ifndef NOTIFYD_DECL_H
#define NOTIFYD_DECL_H

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
	ARG_PATH,	/* an absolute path; notifyctl makes a relative one absolute */
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

/* Operation flags. */
#define OP_ADMIN	0x01	/* only an admin (control socket, API key) may call it */
#define OP_STREAM	0x02	/* after its answer, the control socket streams events */

struct op {
	const char		*name;		/* e.g. "send"; notifyctl words joined by '.' */
	const char		*summary;	/* one line for help */
	const struct op_arg	*args;		/* ended by {NULL} */
	int			 flags;		/* OP_* */
	const char		*alias;		/* another name, e.g. "prefs.show", or NULL */
};

/* Every operation, in help order, ended by NULL. */
extern const struct op *const op_table[];
/* The operation named name (or aliased so), or NULL. */
const struct op	*op_find(const char *name);
/* The argument of op named name, or NULL. */
const struct op_arg *op_arg_find(const struct op *op, const char *name);
/* The JSON name of an argument type, for messages and help. */
const char	*op_arg_type_name(enum arg_type t);

/* The operations, by name. */
extern const struct op op_ping, op_status, op_check, op_backup, op_send, op_list, op_show, op_read, op_unread,
    op_count, op_archive, op_unarchive, op_delete, op_user_show, op_user_set,
    op_topic_add, op_topic_rm, op_topic_show, op_key_create, op_key_list,
    op_key_revoke, op_token, op_presence, op_connections, op_disconnect, op_watch,
    op_mail_list, op_mail_show, op_mail_read, op_mail_clear, op_mail_wait, op_mail_info,
    op_template_list, op_template_render, op_prefs_get, op_prefs_set, op_cancel, op_digest,
    op_push_key, op_push_subscribe, op_push_list, op_push_rm, op_webhook_add, op_webhook_list,
    op_webhook_rm, op_webhook_test;

#endif
