/* app — the services of one running notifyd, handed to every operation. */
#ifndef NOTIFYD_APP_H
#define NOTIFYD_APP_H

struct auth;
struct config;
struct hub;
struct store;

struct app {
	const struct config	*cfg;
	struct store		*store;
	struct auth		*auth;
	struct hub		*hub;
	const char		*version;
	long long		 started_at;	/* ms */
};

#endif
