/*
 * pg — PostgreSQL, for several notifyd nodes on one database (issue 21).
 *
 * So far only the connection: --check-config reports the server, and a
 * start with [store] url set says plainly that the PostgreSQL store is
 * not built yet, instead of quietly using SQLite. The store itself (the
 * interface of store.h, implemented a second time) is the rest of issue 21.
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

#endif
