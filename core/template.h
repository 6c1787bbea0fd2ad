/*
 * template — notification and email templates.
 *
 * A template is a small Mustache dialect: {{path.to.var}} (HTML-escaped
 * when rendering HTML, raw in text), {{{var}}} and {{&var}} (raw),
 * {{#var}}...{{/var}} (repeated for each item of a list, entered for an
 * object, shown when true), {{^var}}...{{/var}} (shown when missing,
 * false, empty) and {{! comments}}. A missing variable renders empty.
 *
 * A template set holds, for each notification type, its title, body,
 * email subject, email text and email HTML, and its metadata (default
 * channels, critical or not), plus the HTML layout every email is
 * placed into. The embedded defaults (templates/ in the source tree) are
 * overridden file by file by a directory.
 *
 * Written here, not taken from a library: Debian packages no C Mustache
 * renderer, and this dialect is smaller than Mustache (no partials, no
 * lambdas, no delimiter changes) with bounds of its own: a render stops
 * at TPL_MAX_OUTPUT bytes or TPL_MAX_STEPS steps, whatever the template
 * (fuzz/fuzz_template.c found the need).
 */
#ifndef NOTIFYD_TEMPLATE_H
#define NOTIFYD_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "prefs.h"
#include "util.h"

struct tpl;

/* Compile src; on error err says "NAME:LINE: what". */
int	 tpl_compile(const char *src, size_t len, const char *name, struct tpl **out,
	    char *err, size_t errlen);
void	 tpl_free(struct tpl *t);
/*
 * Render t into out. Variables are looked up in ctx[n-1] first, then
 * down to ctx[0]; html escapes {{var}}. Sections nested over arrays
 * multiply (three levels over 1000 items are a billion), so a render
 * stops after TPL_MAX_OUTPUT bytes or TPL_MAX_STEPS nodes: false then,
 * and out holds what was rendered until the bound.
 */
#define TPL_MAX_OUTPUT	(4 << 20)
#define TPL_MAX_STEPS	(4 << 20)
bool	 tpl_render(const struct tpl *t, json_t *const *ctx, size_t n, bool html,
	    struct buf *out);
/* Does t refer to a variable whose first segment is name (e.g. "user")? */
bool	 tpl_uses(const struct tpl *t, const char *name);

/* The parts of a type's template set. */
enum template_part {
	TP_TITLE,
	TP_BODY,
	TP_SUBJECT,
	TP_TEXT,
	TP_HTML,
	TP__COUNT
};

struct template_set;

/* One type's templates. */
struct template_type {
	char		 name[64];
	struct tpl	*part[TP__COUNT];	/* never NULL once loaded */
	const char	*source[TP__COUNT + 1];	/* "embedded" or a path; [TP__COUNT]: meta */
	unsigned	 channels;		/* CHANNEL_* on by default */
	bool		 critical;		/* ignores opt-outs, quiet hours, digests */
};

/* Load the embedded set overridden by the files of dir (NULL or "": none). */
int	 template_set_load(const char *dir, struct template_set **out, char *err,
	    size_t errlen);
struct template_set *template_set_ref(struct template_set *s);
void	 template_set_unref(struct template_set *s);
/* The type named name, or NULL; template_set_type_or_default falls back to "message". */
const struct template_type *template_set_type(const struct template_set *s, const char *name);
const struct template_type *template_set_type_or_default(const struct template_set *s,
	    const char *name);
/* The number of types and the i-th, in name order. */
size_t	 template_set_count(const struct template_set *s);
const struct template_type *template_set_at(const struct template_set *s, size_t i);
/*
 * Render a part for a notification object (with "data") and a user
 * object (may be NULL). TP_HTML is placed into the layout.
 */
void	 template_render(const struct template_set *s, const struct template_type *t,
	    enum template_part part, json_t *notification, json_t *user, struct buf *out);

/*
 * The variables the parts of t named by the bits (1 << part) show that
 * data (a notification's data object, or NULL) lacks: each {{var}} outside
 * every section (a section is the template testing for it), leaving out
 * the notification's own fields (title, body, url, user...), which a send
 * may leave out. A new array of {"code":"missing_variable", "variable",
 * "parts", "message"}, one per variable; empty when nothing is missing.
 */
json_t	*template_warnings(const struct template_type *t, unsigned parts, json_t *data);

/* The live set: what sends and the mailer use; reloading swaps it whole. */
struct template_set *templates_current(void);	/* a reference; unref it */
void	 templates_install(struct template_set *s);	/* takes the reference */

/* The name of a part: "title", "body", "subject", "txt", "html". */
const char *template_part_name(enum template_part p);

#endif
