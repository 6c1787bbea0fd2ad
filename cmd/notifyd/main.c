/* notifyd — the notification server: flags, config, start and stop of the services. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "app.h"
#include "mailer.h"
#include "template.h"
#include "auth.h"
#include "config.h"
#include "control.h"
#include "http.h"
#include "hub.h"
#include "lazylib.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "ops.h"
#include "smtpd.h"
#include "proto.h"
#include "pg.h"
#include "store.h"
#include "util.h"
#include "webpush.h"

#define EXIT_USAGE 2

static void
usage(FILE *f)
{
	char def[PATH_MAX], env[128];
	fprintf(f, "usage: notifyd [--config FILE] [--data-dir DIR] [--http HOST:PORT]\n"
	    "               [--smtp HOST:PORT] [--socket PATH] [-v]\n"
	    "       notifyd [--config FILE] --check-config | --print-config [--defaults]\n"
	    "       notifyd --version | --help\n\n"
	    "options:\n"
	    "  --config FILE     read settings from FILE (INI); also NOTIFYD_CONFIG\n");
	for (const struct config_key *k = config_keys; k->name; k++)
		if (k->flag != NULL) {
			char left[64];
			snprintf(left, sizeof left, "--%s %s", k->flag, k->metavar);
			fprintf(f, "  %-17s %s ([%s] %s)\n", left, k->help, k->section, k->name);
		}
	fprintf(f, "  -v, --verbose     log at debug level\n"
	    "  --check-config    check the config file, environment and flags: print every\n"
	    "                    problem with its file and line and exit 2, or exit 0\n"
	    "  --print-config    print the settings in effect as a config file (secrets hidden)\n"
	    "  --defaults        with --print-config: every key commented out at its default\n"
	    "  --version         print the version and exit\n"
	    "  --help            print this help and exit\n\n"
	    "settings (config file [section] key, environment variable, default):\n");
	for (const struct config_key *k = config_keys; k->name; k++) {
		config_default(k, def, sizeof def);
		config_env_name(k, env, sizeof env);
		fprintf(f, "  [%s] %s\n      %s (%s; default %s)\n", k->section, k->name,
		    k->help, env, *def ? def : "unset");
	}
	fprintf(f, "\nprecedence: defaults < config file < environment < flags. "
	    "See notifyd(8), notifyd.conf(5).\n");
}

/*
 * Print the settings in effect, as a file notifyd would read. With
 * defaults, every key is commented out at its built-in default: the
 * example notifyd.conf that make install puts in place.
 */
static void
print_config(const struct config *cfg, bool defaults)
{
	char v[PATH_MAX];
	const char *section = "";
	if (defaults)
		printf("; notifyd.conf: every setting at its default, commented out.\n"
		    "; Remove the ';' before a key to change it. See notifyd.conf(5).\n\n");
	for (const struct config_key *k = config_keys; k->name; k++) {
		if (strcmp(section, k->section) != 0) {
			printf("%s[%s]\n", *section ? "\n" : "", k->section);
			section = k->section;
		}
		if (defaults && k->def == NULL)	/* computed from the user and environment */
			printf("; %s\n; %s = (see notifyd.conf(5))\n", k->help, k->name);
		else if (defaults) {
			config_default(k, v, sizeof v);
			printf("; %s\n; %s = %s\n", k->help, k->name, v);
		} else {
			config_format(cfg, k, v, sizeof v);
			if (k->type == CFG_SECRET && *v != '\0')
				printf("; %s\n; %s = (set, not shown)\n", k->help, k->name);
			else
				printf("; %s\n%s = %s\n", k->help, k->name, v);
		}
	}
}

/* config_problem_fn of --check-config: one line per problem on stderr. */
static void
report_problem(void *arg, const char *path, int line, const char *msg)
{
	(*(int *)arg)++;
	if (line > 0)
		fprintf(stderr, "%s:%d: %s\n", path, line, msg);
	else
		fprintf(stderr, "%s: %s\n", path, msg);
}

/* Is path a file this process can read? */
static bool
readable(const char *path)
{
	return access(path, R_OK) == 0;
}

/* --check-config's checks across keys, after file, environment and flags; counts into *n. */
static void
check_settings(const struct config *cfg, int *n)
{
	char err[1024];
	bool cert = *cfg->smtp_tls_cert != '\0', key = *cfg->smtp_tls_key != '\0';
	if (cert != key) {
		fprintf(stderr, "notifyd: [smtp] tls_cert and tls_key are set together or not at all\n");
		(*n)++;
	}
	if (*cfg->http_tls_cert != '\0' || *cfg->http_tls_key != '\0') {
		fprintf(stderr, "notifyd: [http] tls_cert: not supported; HTTPS and WSS come from "
		    "a TLS proxy in front (notifyd(8), HTTPS and WSS)\n");
		(*n)++;
	}
	const char *files[][2] = {{"[smtp] tls_cert", cfg->smtp_tls_cert},
	    {"[smtp] tls_key", cfg->smtp_tls_key}, {"[mailer] ca_file", cfg->mailer_ca_file}};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (*files[i][1] != '\0' && !readable(files[i][1])) {
			fprintf(stderr, "notifyd: %s: %s: %s\n", files[i][0], files[i][1],
			    strerror(errno));
			(*n)++;
		}
	const char *relay = cfg->mailer_relay;
	if (*relay != '\0' && strncmp(relay, "smtp://", 7) != 0 && strncmp(relay, "smtps://", 8) != 0) {
		fprintf(stderr, "notifyd: [mailer] relay: '%s' is not smtp://HOST:PORT or "
		    "smtps://HOST:PORT\n", relay);
		(*n)++;
	}
	if (*cfg->templates_dir != '\0') {
		struct template_set *s;
		if (template_set_load(cfg->templates_dir, &s, err, sizeof err) != 0) {
			fprintf(stderr, "notifyd: [server] templates_dir: %s\n", err);
			(*n)++;
		} else {
			template_set_unref(s);
		}
	}
	struct stat st;
	if (stat(cfg->data_dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "notifyd: [server] data_dir: %s is not a directory\n", cfg->data_dir);
		(*n)++;
	}
	char version[64];
	if (*cfg->store_url != '\0') {
		if (pg_probe(cfg->store_url, version, sizeof version, err, sizeof err) != 0) {
			fprintf(stderr, "notifyd: [store] url: %s\n", err);
			(*n)++;
		} else {
			printf("notifyd: [store] url: %s answers\n", version);
		}
	}
}

/*
 * Tell systemd (Type=notify) how the service is: one datagram to the Unix
 * socket $NOTIFY_SOCKET names ('@' for the abstract namespace), the
 * protocol sd_notify(3) documents as stable and meant to be spoken
 * without libsystemd. Linking libsystemd for this one call mapped it and
 * its dependencies (gcrypt, lz4, lzma, zstd, cap): 0.6 MiB of an idle
 * notifyd. Nothing without a manager.
 */
static void
service_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = path ? strlen(path) : 0;
	if (n < 2 || n >= sizeof sa.sun_path || (*path != '/' && *path != '@'))
		return;
	memcpy(sa.sun_path, path, n);
	if (*path == '@')
		sa.sun_path[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		log_warn("the service manager was not told", "state=%s socket=%s error=%s",
		    state, path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* What the configured limits let be open at once, each a descriptor and most a thread. */
static long long
connections_at_most(const struct config *cfg)
{
	return cfg->ws_max_connections + cfg->ws_reserve + cfg->smtp_max_sessions +
	    cfg->control_max_clients + cfg->mailer_workers + 64;
}

/*
 * Each WebSocket, SMTP session and control client is a descriptor: raise
 * the soft limit to the hard one, and warn when the configured limits
 * could still run out of it (accept would then fail under load).
 */
static void
raise_nofile(const struct config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	long long need = connections_at_most(cfg);
	if (rl.rlim_cur != RLIM_INFINITY && (long long)rl.rlim_cur < need)
		log_warn("open file limit is below what the connection limits may use",
		    "nofile=%llu need=%lld", (unsigned long long)rl.rlim_cur, need);
}

#ifndef PR_FUTEX_HASH			/* Linux 6.16's, not yet in Debian 12's headers */
#define PR_FUTEX_HASH			78
#define PR_FUTEX_HASH_SET_SLOTS		1
#endif

/*
 * Linux 6.16 and later give each process a futex hash of its own, sized
 * for its CPUs, not its threads: 16 slots on two cores. civetweb holds a
 * worker thread per WebSocket, and its idle workers all wait on one
 * condition variable, so thousands of waiters sit in one slot. Waking
 * any other futex of that slot (a writer's semaphore, the hub's run
 * queue: one in 16) walks all of them, 450 µs a wake behind 9,000 (see
 * bench/RESULTS.md). Slots for twice the threads notifyd may run make
 * that one wake in thousands, and short. Older kernels, with one hash
 * for the whole system, refuse the call: nothing to do there.
 */
static void
size_futex_hash(const struct config *cfg)
{
	long long threads = connections_at_most(cfg);
	long slots = 256;
	while ((long long)slots < 2 * threads && slots < 65536)
		slots *= 2;
	if (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, slots, 0, 0) == 0)
		log_info("futex hash sized", "slots=%ld threads=%lld", slots, threads);
	else
		log_debug("futex hash not sized", "error=%s", strerror(errno));
}

/* mkdir -p with mode for the directories it creates. */
static int
mkdirs(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, mode) != 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(tmp, mode) != 0 && errno != EEXIST ? -1 : 0;
}

/* Take the data directory's lock, or say who holds it. */
static int
lock_data_dir(const char *dir)
{
	char path[PATH_MAX], pid[32] = "";
	snprintf(path, sizeof path, "%s/notifyd.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "notifyd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t n = read(fd, pid, sizeof pid - 1);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		fprintf(stderr, "notifyd: data directory %s is in use by another notifyd%s%s%s\n",
		    dir, *pid ? " (pid " : "", pid, *pid ? ")" : "");
		close(fd);
		return -1;
	}
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("cannot record pid in lock file", "path=%s", path);
	return fd;	/* held until exit */
}

/* The URL of our own sink, listening on listen (HOST:PORT) at port. */
static void
sink_url(const char *listen, int port, char *out, size_t n)
{
	const char *colon = strrchr(listen, ':');
	int hl = colon ? (int)(colon - listen) : 0;
	if (hl == 0 || strncmp(listen, "0.0.0.0", (size_t)hl) == 0 || strncmp(listen, "*", (size_t)hl) == 0)
		snprintf(out, n, "smtp://127.0.0.1:%d", port);
	else if (strncmp(listen, "[::]", (size_t)hl) == 0)
		snprintf(out, n, "smtp://[::1]:%d", port);
	else
		snprintf(out, n, "smtp://%.*s:%d", hl, listen, port);
}

/* The address links in emails use: http://HOST:PORT, a loopback or any-address as localhost. */
static void
base_url(const char *listen, int port, char *out, size_t n)
{
	char host[256];
	int p;
	if (!config_parse_listen(listen, host, sizeof host, &p))
		*host = '\0';
	bool local = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
	    strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
	snprintf(out, n, strchr(host, ':') && !local ? "http://[%s]:%d" : "http://%s:%d",
	    local ? "localhost" : host, port);
}

/* listen (HOST:PORT) with the port listened on, which differs when it was 0. */
static void
listen_addr(const char *listen, int port, char *out, size_t n)
{
	const char *colon = strrchr(listen, ':');
	snprintf(out, n, "%.*s:%d", colon ? (int)(colon - listen) : 0, listen, port);
}

/* SIGHUP: load the templates again; a broken set leaves the old one in place. */
static void
reload_templates(const struct config *cfg)
{
	struct template_set *s;
	char err[1024];
	if (template_set_load(cfg->templates_dir, &s, err, sizeof err) != 0) {
		log_error("templates not reloaded, keeping the old set", "error=%s", err);
		return;
	}
	templates_install(s);
	log_info("templates reloaded", "types=%zu dir=%s", template_set_count(s),
	    *cfg->templates_dir ? cfg->templates_dir : "(embedded)");
}

/* Parse the command line into cfg (after file and environment); exits on usage errors. */
/* The actions of the command line besides serving. */
struct actions {
	int	verbose;
	int	print;		/* --print-config */
	int	defaults;	/* --defaults */
	int	check;		/* --check-config */
	int	problems;	/* what --check-config found */
};

/*
 * Parse the command line into cfg (after file and environment). Exits on
 * usage errors, except that --check-config counts them and goes on.
 */
static void
parse_args(int argc, char **argv, struct config *cfg, const char **config_path,
    struct actions *act)
{
	char err[1024];
	int pass;
	/* Pass 0 finds --config and the actions; pass 1 applies setting flags last. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			if (*config_path != NULL && config_check_file(cfg, *config_path,
			    act->check ? report_problem : NULL, &act->problems, err, sizeof err) != 0 &&
			    !act->check) {
				fprintf(stderr, "notifyd: %s\n", err);
				exit(EXIT_USAGE);
			}
			if (config_load_env(cfg, err, sizeof err) != 0) {
				fprintf(stderr, "notifyd: %s\n", err);
				if (!act->check)
					exit(EXIT_USAGE);
				act->problems++;
			}
		}
		for (int i = 1; i < argc; i++) {
			const char *a = argv[i], *val = NULL;
			char name[64];
			if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
				act->verbose = 1;
				continue;
			}
			if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
				usage(stdout);
				exit(0);
			}
			if (strcmp(a, "--version") == 0) {
				printf("notifyd %s (control protocol %d, schema %d)\n",
				    NOTIFYD_VERSION, PROTO_VERSION, store_schema_version());
				exit(0);
			}
			if (strcmp(a, "--print-config") == 0 || strcmp(a, "--defaults") == 0 ||
			    strcmp(a, "--check-config") == 0) {
				*(a[2] == 'p' ? &act->print : a[2] == 'd' ? &act->defaults :
				    &act->check) = 1;
				continue;
			}
			if (strncmp(a, "--", 2) != 0) {
				fprintf(stderr, "notifyd: unexpected argument '%s'\n", a);
				usage(stderr);
				exit(EXIT_USAGE);
			}
			size_t nl = strcspn(a + 2, "=");
			snprintf(name, sizeof name, "%.*s", (int)nl, a + 2);
			const struct config_key *k = config_find_flag(name);
			if (k == NULL && strcmp(name, "config") != 0) {
				fprintf(stderr, "notifyd: unknown option --%s\n", name);
				usage(stderr);
				exit(EXIT_USAGE);
			}
			if (a[2 + nl] == '=')
				val = a + 3 + nl;
			else if (i + 1 < argc)
				val = argv[++i];
			else {
				fprintf(stderr, "notifyd: --%s needs a value\n", name);
				exit(EXIT_USAGE);
			}
			if (k == NULL)
				*config_path = val;
			else if (pass == 1 && config_set(cfg, k, val, a, err, sizeof err) != 0) {
				fprintf(stderr, "notifyd: %s\n", err);
				if (!act->check)
					exit(EXIT_USAGE);
				act->problems++;
			}
		}
	}
	if (act->defaults && !act->print) {
		fprintf(stderr, "notifyd: --defaults goes with --print-config\n");
		exit(EXIT_USAGE);
	}
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct app app = {.cfg = &cfg, .version = NOTIFYD_VERSION, .started_at = time_now_ms()};
	struct control *ctl = NULL;
	struct http *http = NULL;
	struct smtpd *smtp = NULL;
	const char *config_path = getenv("NOTIFYD_CONFIG");
	char err[1024], dbpath[PATH_MAX];
	struct actions act = {0};
	int rc = 1, sig;
	sigset_t sigs;

	if (config_init(&cfg, err, sizeof err) != 0) {
		fprintf(stderr, "notifyd: %s\n", err);
		return 1;
	}
	if (config_path != NULL && *config_path == '\0')
		config_path = NULL;
	parse_args(argc, argv, &cfg, &config_path, &act);
	if (act.check) {
		check_settings(&cfg, &act.problems);
		if (act.problems == 0)
			printf("notifyd: %s: ok\n", config_path ? config_path : "(no config file)");
		config_free(&cfg);
		return act.problems ? EXIT_USAGE : 0;
	}
	if (act.print) {
		print_config(&cfg, act.defaults);
		config_free(&cfg);
		return 0;
	}
	static const char *levels[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++)
		if (strcmp(cfg.log_level, levels[i]) == 0)
			log_set_level((enum log_level)i);
	if (act.verbose)
		log_set_level(LOG_DEBUG);

	/*
	 * Signals are taken by sigwait() below; every thread inherits the mask.
	 * A signal ignored when notifyd was started is discarded, not waited
	 * for (a shell starts `notifyd &` with SIGINT ignored): take them back.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);

	/*
	 * Everything notifyd creates (the database and its WAL, secrets, the
	 * socket) holds captured mail or credentials: for its owner only,
	 * whatever the umask it was started with.
	 */
	umask(077);
	raise_nofile(&cfg);
	size_futex_hash(&cfg);
	if (mkdirs(cfg.data_dir, 0700) != 0) {
		fprintf(stderr, "notifyd: %s: %s\n", cfg.data_dir, strerror(errno));
		goto out;
	}
	struct stat dst;
	if (stat(cfg.data_dir, &dst) == 0 && (dst.st_mode & 077))
		log_warn("data directory is open to others; chmod 700 it", "path=%s mode=%03o",
		    cfg.data_dir, (unsigned)(dst.st_mode & 0777));
	if (lock_data_dir(cfg.data_dir) < 0)
		goto out;
	/* PostgreSQL when [store] url names it (migrated first), else SQLite in the data dir. */
	snprintf(dbpath, sizeof dbpath, "%s/notifyd.db", cfg.data_dir);
	/* This node, as PostgreSQL's outbox knows it across restarts: host and data dir. */
	char node[PATH_MAX + 300], host[256] = "", where[PATH_MAX];
	gethostname(host, sizeof host - 1);
	snprintf(node, sizeof node, "%s:%s", host, realpath(cfg.data_dir, where) ? where :
	    cfg.data_dir);
	struct store_options sopt = {
		.sync_full = strcmp(cfg.store_sync, "full") == 0,
		.busy_timeout = cfg.store_busy_timeout,
		.claim_lease = cfg.store_claim_lease,
		.node = node,
	};
	if ((*cfg.store_url ? store_open_url(&app.store, cfg.store_url, &sopt, err, sizeof err) :
	    store_open(&app.store, dbpath, &sopt, err, sizeof err)) < 0) {
		fprintf(stderr, "notifyd: %s%s\n", *cfg.store_url ? "[store] url: " : "", err);
		goto out;
	}
	if (auth_open(&app.auth, app.store, cfg.data_dir, cfg.auth_jwt_secret, err, sizeof err) != 0) {
		fprintf(stderr, "notifyd: %s\n", err);
		goto out;
	}
	if (vapid_open(&app.vapid, app.store, cfg.data_dir, err, sizeof err) != 0) {
		fprintf(stderr, "notifyd: push: %s\n", err);
		goto out;
	}
	struct template_set *tset;
	if (template_set_load(cfg.templates_dir, &tset, err, sizeof err) != 0) {
		fprintf(stderr, "notifyd: templates: %s\n", err);
		goto out;
	}
	templates_install(tset);
	metrics_listen();
	op_mail_listen();
	struct hub_options hopt = {
		.max_conns = (int)cfg.ws_max_connections,
		.per_user = (int)cfg.ws_per_user,
		.queue = (int)cfg.ws_queue,
		.senders = 4,
	};
	if (hub_start(&app.hub, &app, &hopt) != 0) {
		fprintf(stderr, "notifyd: cannot start the hub\n");
		goto out;
	}
	if (strcmp(cfg.http_listen, "off") != 0) {
		if (http_start(&http, &app, err, sizeof err) != 0) {
			fprintf(stderr, "notifyd: %s\n", err);
			goto out;
		}
		log_info("http listening", "listen=%s port=%d", cfg.http_listen, http_port(http));
		base_url(cfg.http_listen, http_port(http), app.base_url, sizeof app.base_url);
		listen_addr(cfg.http_listen, http_port(http), app.http_addr, sizeof app.http_addr);
	}
	if (strcmp(cfg.smtp_listen, "off") != 0) {
		if (smtpd_start(&smtp, &app, err, sizeof err) != 0) {
			fprintf(stderr, "notifyd: %s\n", err);
			goto out;
		}
		log_info("smtp listening", "listen=%s port=%d", cfg.smtp_listen, smtpd_port(smtp));
		listen_addr(cfg.smtp_listen, smtpd_port(smtp), app.smtp_addr, sizeof app.smtp_addr);
	}
	char relay[300];
	if (*cfg.mailer_relay != '\0' || smtp == NULL)
		snprintf(relay, sizeof relay, "%s", cfg.mailer_relay);
	else
		sink_url(cfg.smtp_listen, smtpd_port(smtp), relay, sizeof relay);
	if (mailer_start(&app.mailer, &app, relay, err, sizeof err) != 0) {
		fprintf(stderr, "notifyd: %s\n", err);
		goto out;
	}
	log_info("mailer started", "relay=%s workers=%lld", *relay ? relay : "(none)",
	    (long long)cfg.mailer_workers);
	if (control_start(&ctl, &app, cfg.control_socket, (int)cfg.control_max_clients,
	    err, sizeof err) != 0) {
		fprintf(stderr, "notifyd: %s\n", err);
		goto out;
	}
	log_info("notifyd started", "version=%s pid=%ld data_dir=%s db=%s control=%s",
	    NOTIFYD_VERSION, (long)getpid(), cfg.data_dir, dbpath, cfg.control_socket);
	service_notify("READY=1");

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			service_notify("RELOADING=1");
			reload_templates(&cfg);
			service_notify("READY=1");
			continue;
		}
		log_info("stopping", "signal=%s", sig == SIGINT ? "INT" : "TERM");
		service_notify("STOPPING=1");
		break;
	}
	rc = 0;
out:
	smtpd_stop(smtp);
	http_stop(http);
	control_stop(ctl);
	mailer_stop(app.mailer);
	app.mailer = NULL;
	hub_stop(app.hub);
	mime_shutdown();
	templates_install(NULL);
	auth_close(app.auth);
	vapid_close(app.vapid);
	store_close(app.store);
	hub_free(app.hub);
	lazylib_close();
	if (rc == 0)
		log_info("notifyd stopped", "pid=%ld", (long)getpid());
	config_free(&cfg);
	return rc;
}
