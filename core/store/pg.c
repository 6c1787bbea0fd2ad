/* pg — PostgreSQL through libpq; see pg.h. */
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "lazylib.h"

/* The advisory lock migrations run under: "notifyd" in ASCII. */
#define MIGRATE_LOCK "110546157069668"

/* libpq's last words on c, one line. */
static void
pg_error(PGconn *c, char *err, size_t errlen)
{
	const char *m = c ? PQerrorMessage(c) : "out of memory";
	snprintf(err, errlen, "%.*s", (int)strcspn(m, "\n"), m);
}

/* A connection to url, or NULL with err. */
static PGconn *
pg_connect(const char *url, char *err, size_t errlen)
{
	/* Fail fast on a server that does not answer, whatever the URL says. */
	/* options first: a URL's own options replace them. */
	static const char *const keys[] = {"options", "dbname", "connect_timeout",
	    "application_name", NULL};
	const char *vals[] = {"-c client_min_messages=warning", url, "10", "notifyd", NULL};
	if (lazylib_pq(err, errlen) != 0)	/* every way to PostgreSQL starts here */
		return NULL;
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (c != NULL && PQstatus(c) == CONNECTION_OK)
		return c;
	pg_error(c, err, errlen);
	PQfinish(c);
	return NULL;
}

/* Run sql (one or more statements); 0, or -1 with err saying what of. */
static int
pg_exec(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
	if (rc < 0) {
		const char *m = PQresultErrorMessage(r);
		snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(m, "\n"), m);
	}
	PQclear(r);
	return rc;
}

/* The first column of the first row of sql as an integer; -1 with err. */
static long long
pg_int(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	long long v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = atoll(PQgetvalue(r, 0, 0));
	else
		pg_error(c, err, errlen);
	PQclear(r);
	return v;
}

int
pg_schema_version(void)
{
	int n = 0;
	while (embedded_sql_pg[n].name != NULL)
		n++;
	return n;
}

int
pg_migrate(const char *url, int *version, char *err, size_t errlen)
{
	PGconn *c = pg_connect(url, err, errlen);
	int rc = -1, want = pg_schema_version();
	long long have;
	char sql[256];
	if (c == NULL)
		return -1;
	/* One node migrates; one that waited finds the work done. */
	if (pg_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", "lock", err, errlen) != 0 ||
	    pg_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
	    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
	    "schema_migrations", err, errlen) != 0 ||
	    (have = pg_int(c, "SELECT coalesce(max(version), 0) FROM schema_migrations",
	    err, errlen)) < 0)
		goto done;
	if (have > want) {
		snprintf(err, errlen, "the database's schema is version %lld, newer than this "
		    "notifyd's %d: run the newer notifyd", have, want);
		goto done;
	}
	for (int i = (int)have; i < want; i++) {
		const struct embedded *m = &embedded_sql_pg[i];
		snprintf(sql, sizeof sql, "INSERT INTO schema_migrations (version, name) "
		    "VALUES (%d, '%s')", i + 1, m->name);
		if (pg_exec(c, "BEGIN", m->name, err, errlen) != 0)
			goto done;
		if (pg_exec(c, (const char *)m->data, m->name, err, errlen) != 0 ||
		    pg_exec(c, sql, m->name, err, errlen) != 0 ||
		    pg_exec(c, "COMMIT", m->name, err, errlen) != 0) {
			pg_exec(c, "ROLLBACK", m->name, sql, sizeof sql);
			goto done;
		}
	}
	*version = want;
	rc = 0;
done:
	PQfinish(c);	/* ends the session and its advisory lock */
	return rc;
}

int
pg_probe(const char *url, char *version, size_t n, char *err, size_t errlen)
{
	PGconn *c = pg_connect(url, err, errlen);
	int rc = -1;
	if (c != NULL) {
		int v = PQserverVersion(c);
		snprintf(version, n, "PostgreSQL %d.%d", v / 10000, v % 10000);
		rc = 0;
		PQfinish(c);
	}
	return rc;
}
