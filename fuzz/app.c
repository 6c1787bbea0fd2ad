/* fuzz — the one notifyd a fuzz target works against; see fuzz.h. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "auth.h"
#include "config.h"
#include "hub.h"
#include "log.h"
#include "mime.h"
#include "store.h"
#include "template.h"

static struct app app;
static struct config cfg;
static char dir[64] = "";

/* Remove the temporary directory and everything notifyd made in it. */
static void
cleanup(void)
{
	char cmd[128];
	if (*dir == '\0')
		return;
	hub_stop(app.hub);
	store_close(app.store);
	hub_free(app.hub);
	auth_close(app.auth);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz: could not remove %s\n", dir);
}

struct app *
fuzz_app(void)
{
	char err[1024], db[128];
	if (*dir != '\0')
		return &app;
	log_set_level(LOG_ERROR);	/* the inputs are bad on purpose: quiet */
	snprintf(dir, sizeof dir, "%s/notifyd-fuzz.XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(dir) == NULL || config_init(&cfg, err, sizeof err) != 0)
		abort();
	free(cfg.data_dir);
	cfg.data_dir = strdup(dir);
	/* The sink, for fuzz_smtp: any port, small limits, quick timeouts. */
	free(cfg.smtp_listen);
	cfg.smtp_listen = strdup("127.0.0.1:0");
	cfg.smtp_max_size = 64 * 1024;
	cfg.smtp_idle_timeout = 2000;
	cfg.smtp_disk_reserve = 0;
	snprintf(db, sizeof db, "%s/notifyd.db", dir);
	struct store_options so = {.sync_full = false, .busy_timeout = 1000};
	struct template_set *t;
	struct hub_options ho = {.max_conns = 16, .per_user = 16, .queue = 64, .senders = 1};
	app.cfg = &cfg;
	app.version = "fuzz";
	/*
	 * notifyd starts OpenSSL at its first use (an idle notifyd holds 2.4 MiB
	 * less), which for fuzz_smtp is in the sink's thread, loading its
	 * config there. That thread is stopped at exit, by the target's atexit,
	 * and LeakSanitizer reported what the config load had allocated for it
	 * (its error state and random generator; OpenSSL 3.0). notifyd joins
	 * its threads before main returns and is not affected. Started here,
	 * config included, OpenSSL keeps nothing in that thread.
	 */
	if (OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1)
		abort();
	mime_init();
	if (store_open(&app.store, db, &so, err, sizeof err) < 0 ||
	    auth_open(&app.auth, app.store, dir, NULL, err, sizeof err) != 0 ||
	    template_set_load(NULL, &t, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	templates_install(t);
	if (hub_start(&app.hub, &app, &ho) != 0)
		abort();
	atexit(cleanup);
	return &app;
}
