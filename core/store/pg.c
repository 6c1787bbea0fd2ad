/* pg — PostgreSQL through libpq; see pg.h. */
#include "pg.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

int
pg_probe(const char *url, char *version, size_t n, char *err, size_t errlen)
{
	/* Fail fast on a server that does not answer, whatever the URL says. */
	static const char *const keys[] = {"dbname", "connect_timeout", "application_name", NULL};
	const char *vals[] = {url, "10", "notifyd", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	int rc = -1;
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
	} else if (PQstatus(c) != CONNECTION_OK) {
		const char *m = PQerrorMessage(c);
		snprintf(err, errlen, "%.*s", (int)strcspn(m, "\n"), m);
	} else {
		int v = PQserverVersion(c);
		snprintf(version, n, "PostgreSQL %d.%d", v / 10000, v % 10000);
		rc = 0;
	}
	PQfinish(c);
	return rc;
}
