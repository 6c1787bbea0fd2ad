/* app — the services of one running notifyd, handed to every operation. */
#ifndef NOTIFYD_APP_H
#define NOTIFYD_APP_H

struct auth;
struct config;
struct hub;
struct mailer;
struct store;

struct app {
	const struct config	*cfg;
	struct store		*store;
	struct auth		*auth;
	struct hub		*hub;
	struct mailer		*mailer;	/* NULL until started */
	struct vapid		*vapid;		/* the Web Push key pair */
	const char		*version;
	char			 base_url[300];	/* http://HOST:PORT of the HTTP listener, for links */
	long long		 started_at;	/* ms */
	char			 http_addr[300];	/* HOST:PORT listened on, "" when off */
	char			 smtp_addr[300];
};

#endif
