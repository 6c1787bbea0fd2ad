/* config — every setting of notifyd, declared once in config_keys[]. */
#ifndef NOTIFYD_CONFIG_H
#define NOTIFYD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_type {
	CFG_STRING,	/* free text */
	CFG_SECRET,	/* free text never printed (--print-config shows whether it is set) */
	CFG_PATH,	/* a file system path */
	CFG_LISTEN,	/* HOST:PORT, [V6]:PORT, or "off" */
	CFG_INT,	/* decimal integer within min..max */
	CFG_DURATION,	/* 90s, 15m, 1h30m ... stored as milliseconds */
	CFG_ENUM,	/* one of choices, "a|b|c" */
	CFG_SIZE,	/* bytes, with an optional K, M or G (1024-based) */
	CFG_BOOL,	/* true or false (also yes/no, on/off, 1/0), stored as int64_t 1/0 */
};

struct config {
	char	*data_dir;
	char	*log_level;
	char	*templates_dir;
	int64_t	 strict_templates;	/* a send whose data lacks a template's variable is refused */
	char	*http_listen;
	int64_t	 http_request_timeout;	/* ms: each read of a body, each write to a client */
	int64_t	 http_header_timeout;	/* ms: a request's headers, in all */
	int64_t	 http_max_per_address;	/* connections one address may hold; 0: no limit */
	int64_t	 ws_max_connections;
	int64_t	 ws_reserve;
	int64_t	 ws_per_user;
	int64_t	 ws_queue;
	int64_t	 ws_ping;		/* ms */
	int64_t	 http_max_body;		/* bytes */
	char	*http_cors_origins;
	int64_t	 http_mail_cors;	/* cors_origins apply to the mailbox API too */
	char	*http_tls_cert;		/* refused: see http_start */
	char	*http_tls_key;
	char	*http_trust_proxy;	/* a reverse proxy's address: its requests are not local */
	int64_t	 http_rate_limit;	/* requests/s per client; 0: off */
	char	*auth_jwt_secret;
	char	*smtp_listen;
	int64_t	 smtp_max_size;		/* bytes */
	int64_t	 smtp_max_recipients;
	int64_t	 smtp_max_sessions;
	int64_t	 smtp_idle_timeout;	/* ms */
	int64_t	 smtp_max_line;		/* octets of a line, its CRLF included */
	int64_t	 smtp_max_inflight;	/* bytes of messages being received or stored at once */
	int64_t	 smtp_max_session;	/* ms a session may last */
	int64_t	 smtp_disk_reserve;	/* bytes of free disk kept for notifications */
	char	*smtp_auth;
	char	*smtp_tls_cert;
	char	*smtp_tls_key;
	char	*smtp_hostname;
	int64_t	 mail_max;
	int64_t	 mail_max_bytes;	/* retention by total size; 0: none */
	int64_t	 mail_max_age;		/* ms; 0: no limit */
	char	*mailer_relay;
	char	*mailer_starttls;
	char	*mailer_ca_file;
	char	*mailer_username;
	char	*mailer_password;
	char	*mailer_from;
	char	*mailer_unsubscribe_url;
	int64_t	 mailer_workers;
	int64_t	 mailer_max_attempts;
	int64_t	 mailer_retry_base;	/* ms */
	int64_t	 mailer_timeout;	/* ms */
	char	*push_subject;	/* VAPID sub */
	int64_t	 push_ttl;		/* ms */
	int64_t	 push_timeout;		/* ms */
	int64_t	 push_allow_private;
	int64_t	 push_max_per_user;
	int64_t	 webhook_timeout;	/* ms */
	int64_t	 webhook_disable_after;	/* ms */
	int64_t	 webhook_allow_private;
	char	*control_socket;
	int64_t	 control_max_clients;
	int64_t	 digest_max_items;	/* listed in one digest; the rest as "and N more" */
	int64_t	 digest_include_read;	/* list what was read in the app too */
	int64_t	 digest_flush_on_off;	/* digest mode switched off: send what is parked at once */
	char	*digest_inbox_url;	/* where "and N more" leads; empty: notifyd's /inbox */
	char	*store_sync;
	int64_t	 store_busy_timeout;	/* ms */
	char	*store_url;		/* PostgreSQL; empty: SQLite in data_dir */
	int64_t	 store_claim_lease;	/* ms: PostgreSQL's outbox claims */
};

/*
 * One setting. The parser, --help, --print-config and the notifyd.conf(5)
 * check all read this table: adding a key is adding a row here.
 */
struct config_key {
	const char	*section;	/* INI section */
	const char	*name;		/* key within the section */
	enum config_type type;
	const char	*def;		/* default, as written in a file; NULL: computed */
	const char	*flag;		/* long flag of notifyd, or NULL */
	const char	*metavar;	/* what the flag takes, for --help */
	const char	*choices;	/* CFG_ENUM: "a|b|c" */
	int64_t		 min, max;	/* CFG_INT, CFG_DURATION bounds */
	size_t		 offset;	/* into struct config */
	const char	*help;		/* one line */
};

extern const struct config_key config_keys[];

/* Fill cfg with the built-in defaults. */
int	 config_init(struct config *cfg, char *err, size_t errlen);
void	 config_free(struct config *cfg);
/* Apply an INI file; an unknown section or key or a bad value fails, naming FILE:LINE. */
int	 config_load_file(struct config *cfg, const char *path, char *err, size_t errlen);
/* Told each problem of a checked file: its line (0: the file itself) and what is wrong. */
typedef void (*config_problem_fn)(void *arg, const char *path, int line, const char *msg);
/*
 * Apply an INI file as config_load_file does, but go on past problems and
 * tell report of every one (unknown keys with a "did you mean"); -1 when
 * there was any, err holding the first.
 */
int	 config_check_file(struct config *cfg, const char *path, config_problem_fn report,
	    void *arg, char *err, size_t errlen);
/* Apply every NOTIFYD_<SECTION>_<KEY> variable that is set. */
int	 config_load_env(struct config *cfg, char *err, size_t errlen);
/* Set one key from text; where names the source for the error message. */
int	 config_set(struct config *cfg, const struct config_key *k, const char *value,
	    const char *where, char *err, size_t errlen);
const struct config_key *config_find(const char *section, const char *name);
const struct config_key *config_find_flag(const char *flag);
/* The environment variable of a key: NOTIFYD_<SECTION>_<KEY>, upper case. */
void	 config_env_name(const struct config_key *k, char *out, size_t n);
/* The value of a key as text, as a file would hold it. */
void	 config_format(const struct config *cfg, const struct config_key *k, char *out, size_t n);
/* The built-in default of a key as text. */
void	 config_default(const struct config_key *k, char *out, size_t n);

/* Split HOST:PORT; false when malformed. "off" gives host "" port -1. */
bool	 config_parse_listen(const char *s, char *host, size_t hostlen, int *port);

#endif
