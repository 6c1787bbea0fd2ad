/* embed — files compiled into the binary by tools/embed.sh. */
#ifndef NOTIFYD_EMBED_H
#define NOTIFYD_EMBED_H

#include <stddef.h>

struct embedded {
	const char		*name;	/* path in the source tree, e.g. sql/001_init.sql */
	const unsigned char	*data;	/* the bytes, NUL-terminated for convenience */
	size_t			 len;
};

/* The schema migrations, sql/NNN_name.sql, in name order. */
extern const struct embedded embedded_sql[];
/* The same for PostgreSQL, sql/pg/NNN_name.sql. */
extern const struct embedded embedded_sql_pg[];
/* The default templates, templates/TYPE.PART, in name order. */
extern const struct embedded embedded_templates[];
/* The pages, web/NAME, and build/.../gen/web/NAME.gz, their gzip copies. */
extern const struct embedded embedded_web[];

#endif
