/* app — the services of one running notifyd, handed to every operation. */
#ifndef NOTIFYD_APP_H
#define NOTIFYD_APP_H

struct config;
struct store;

struct app {
	const struct config	*cfg;
	struct store		*store;
	const char		*version;
};

#endif
