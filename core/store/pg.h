/*
 * pg — PostgreSQL, for several notifyd nodes on one database (issue 21).
 *
 * The connection and the schema: --check-config reports the server, and
 * a start with [store] url set brings the schema up to date (sql/pg/,
 * under an advisory lock). The store itself is store.h implemented a
 * second time (pg_impl.h); until all of it is, a start with url set says
 * plainly that the PostgreSQL store is not complete, instead of quietly
 * using SQLite.
 */
#ifndef NOTIFYD_PG_H
#define NOTIFYD_PG_H

#include <stddef.h>

/*
 * Connect to url (a libpq URL or conninfo; the password from it or from
 * PGPASSFILE) and say what answers: "PostgreSQL 15.18" into version. 0, or
 * -1 with why in err (libpq's words, which never hold the password).
 */
int	 pg_probe(const char *url, char *version, size_t n, char *err, size_t errlen);

/* The schema version this binary writes (the number of sql/pg/ migrations). */
int	 pg_schema_version(void);
/*
 * Apply the migrations of sql/pg/ the database lacks, each in its own
 * transaction, under an advisory lock so that nodes starting together
 * migrate once; *version: the schema version after. 0, or -1 with err
 * (also when the database is newer than this binary).
 */
int	 pg_migrate(const char *url, int *version, char *err, size_t errlen);

#endif
