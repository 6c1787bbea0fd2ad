/*
 * web — the pages notifyd serves (web/ in the source tree), compiled into
 * the binary with a gzip copy of each made at build time: civetweb here
 * compresses nothing, and a page should not cost its bytes twice.
 */
#ifndef NOTIFYD_WEB_H
#define NOTIFYD_WEB_H

#include <stdbool.h>
#include <stddef.h>

struct web_asset {
	const char		*name;		/* file name in web/, e.g. inbox.js */
	const char		*type;		/* Content-Type */
	const unsigned char	*data;
	size_t			 len;
	const unsigned char	*gz;		/* the gzip copy, NULL when it is no smaller */
	size_t			 gzlen;
	char			 etag[24];	/* "hash" of the bytes, quoted */
	char			 gzetag[28];	/* "hash-gz" */
};

/* The asset named name (a file name in web/), or NULL. */
const struct web_asset *web_find(const char *name);

/* Does an Accept-Encoding header value accept gzip? */
bool	 web_accepts_gzip(const char *accept_encoding);

/* Does an If-None-Match header value name etag (or "*")? */
bool	 web_etag_matches(const char *if_none_match, const char *etag);

#endif
