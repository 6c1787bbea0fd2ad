/*
 * lazylib — libpq and libcurl, opened with dlopen(3) the first time they
 * are needed rather than by the loader at start.
 *
 * Loading a library maps it and its dependencies and relocates them: for
 * these two (LDAP, Kerberos, GnuTLS, SASL, ssh2, rtmp, nghttp2, ...) that
 * is 3.7 MiB of resident memory before a line of notifyd runs, and
 * curl_global_init() adds 2.4 MiB more (bench/RESULTS.md, "Idle memory").
 * A notifyd on SQLite that relays no mail and calls no push service or
 * webhook needs neither, and now maps neither.
 *
 * Code that uses them includes this header instead of libpq-fe.h or
 * curl/curl.h and calls them by their own names: each name is a macro
 * for a pointer in a table filled by dlsym(3), with the type taken from
 * the library's own declaration. The types, constants and structs still
 * come from the -dev packages' headers. The two lists below must agree,
 * and the build says when they do not: a name only in the table is
 * called directly and fails to link (notifyd is not linked with either
 * library), a name only among the macros has no member.
 *
 * libpq: lazylib_pq() before the first call (pg_open does it).
 * libcurl: curl_easy_init() loads it and runs curl_global_init() the first
 * time, and answers NULL (logged once) if that fails; every other curl
 * function is reached through a handle it made, so after it.
 */
#ifndef NOTIFYD_LAZYLIB_H
#define NOTIFYD_LAZYLIB_H

#include <stddef.h>

#include <curl/curl.h>
#include <libpq-fe.h>

/* The runtime packages' sonames: libpq5 and libcurl4. */
#define LAZYLIB_PQ	"libpq.so.5"
#define LAZYLIB_CURL	"libcurl.so.4"

#define LAZYLIB_PQ_FUNCS(X) \
	X(PQclear) X(PQcmdTuples) X(PQconnectdb) X(PQconnectdbParams) \
	X(PQconsumeInput) X(PQerrorMessage) X(PQexec) X(PQexecParams) \
	X(PQexecPrepared) X(PQfinish) X(PQfreemem) X(PQgetisnull) \
	X(PQgetvalue) X(PQnfields) X(PQnotifies) X(PQntuples) X(PQprepare) \
	X(PQresStatus) X(PQreset) X(PQresultErrorField) \
	X(PQresultErrorMessage) X(PQresultStatus) X(PQserverVersion) \
	X(PQsocket) X(PQstatus) X(PQtransactionStatus) X(PQunescapeBytea)

#define LAZYLIB_CURL_FUNCS(X) \
	X(curl_easy_cleanup) X(curl_easy_getinfo) X(curl_easy_init) \
	X(curl_easy_perform) X(curl_easy_setopt) X(curl_easy_strerror) \
	X(curl_getdate) X(curl_global_cleanup) X(curl_global_init) \
	X(curl_slist_append) X(curl_slist_free_all)

#define LAZYLIB_MEMBER(f) __typeof__(f) *f;
struct lazylib_pq {
	LAZYLIB_PQ_FUNCS(LAZYLIB_MEMBER)
};
struct lazylib_curl {
	LAZYLIB_CURL_FUNCS(LAZYLIB_MEMBER)
};
#undef LAZYLIB_MEMBER

extern struct lazylib_pq	lazylib_pq_;
extern struct lazylib_curl	lazylib_curl_;

/* libpq ready to call: 0, or -1 with err saying why not. */
int	 lazylib_pq(char *err, size_t errlen);
/* A curl easy handle, loading libcurl the first time; NULL if it cannot. */
CURL	*lazylib_curl_easy_init(void);
/* At exit, once nothing uses libcurl: curl_global_cleanup(). */
void	 lazylib_close(void);

#ifndef LAZYLIB_IMPL
/* curl.h's type-checking wrappers would hide the calls from these. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define PQclear			(lazylib_pq_.PQclear)
#define PQcmdTuples		(lazylib_pq_.PQcmdTuples)
#define PQconnectdb		(lazylib_pq_.PQconnectdb)
#define PQconnectdbParams	(lazylib_pq_.PQconnectdbParams)
#define PQconsumeInput		(lazylib_pq_.PQconsumeInput)
#define PQerrorMessage		(lazylib_pq_.PQerrorMessage)
#define PQexec			(lazylib_pq_.PQexec)
#define PQexecParams		(lazylib_pq_.PQexecParams)
#define PQexecPrepared		(lazylib_pq_.PQexecPrepared)
#define PQfinish		(lazylib_pq_.PQfinish)
#define PQfreemem		(lazylib_pq_.PQfreemem)
#define PQgetisnull		(lazylib_pq_.PQgetisnull)
#define PQgetvalue		(lazylib_pq_.PQgetvalue)
#define PQnfields		(lazylib_pq_.PQnfields)
#define PQnotifies		(lazylib_pq_.PQnotifies)
#define PQntuples		(lazylib_pq_.PQntuples)
#define PQprepare		(lazylib_pq_.PQprepare)
#define PQresStatus		(lazylib_pq_.PQresStatus)
#define PQreset			(lazylib_pq_.PQreset)
#define PQresultErrorField	(lazylib_pq_.PQresultErrorField)
#define PQresultErrorMessage	(lazylib_pq_.PQresultErrorMessage)
#define PQresultStatus		(lazylib_pq_.PQresultStatus)
#define PQserverVersion		(lazylib_pq_.PQserverVersion)
#define PQsocket		(lazylib_pq_.PQsocket)
#define PQstatus		(lazylib_pq_.PQstatus)
#define PQtransactionStatus	(lazylib_pq_.PQtransactionStatus)
#define PQunescapeBytea		(lazylib_pq_.PQunescapeBytea)

#define curl_easy_init		lazylib_curl_easy_init
#define curl_easy_cleanup	(lazylib_curl_.curl_easy_cleanup)
#define curl_easy_getinfo	(lazylib_curl_.curl_easy_getinfo)
#define curl_easy_perform	(lazylib_curl_.curl_easy_perform)
#define curl_easy_setopt	(lazylib_curl_.curl_easy_setopt)
#define curl_easy_strerror	(lazylib_curl_.curl_easy_strerror)
#define curl_getdate		(lazylib_curl_.curl_getdate)
#define curl_slist_append	(lazylib_curl_.curl_slist_append)
#define curl_slist_free_all	(lazylib_curl_.curl_slist_free_all)
/* Only lazylib.c starts and stops libcurl. */
#define curl_global_init	do_not_call_curl_global_init
#define curl_global_cleanup	do_not_call_curl_global_cleanup
#endif

#endif
