/*
 * template — a small Mustache dialect, and the sets of notification
 * templates built from templates/ and an override directory.
 */
#define _GNU_SOURCE
#include "template.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "embed.h"
#include "log.h"

enum node_kind {
	N_TEXT,
	N_VAR,		/* {{name}}: escaped in HTML */
	N_RAW,		/* {{{name}}} or {{&name}} */
	N_SECTION,	/* {{#name}} */
	N_INVERTED,	/* {{^name}} */
};

/* One piece of a compiled template; a section's children follow it up to end. */
struct node {
	enum node_kind	 kind;
	const char	*s;		/* text, or the variable's name; into tpl->src */
	size_t		 len;
	size_t		 end;		/* sections: index after the last child */
};

struct tpl {
	char		*src;
	struct node	*nodes;
	size_t		 n, cap;
};

#define MAX_DEPTH	32		/* nested sections */
#define MAX_CTX		(MAX_DEPTH + 8)

/* Append a node; false when out of memory. */
static bool
node_add(struct tpl *t, enum node_kind k, const char *s, size_t len)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct node *n = realloc(t->nodes, cap * sizeof *n);
		if (n == NULL)
			return false;
		t->nodes = n;
		t->cap = cap;
	}
	t->nodes[t->n++] = (struct node){k, s, len, 0};
	return true;
}

static size_t
count_lines(const char *s, size_t from, size_t to)
{
	size_t n = 0;
	for (size_t i = from; i < to; i++)
		n += s[i] == '\n';
	return n;
}

/* A variable name: "." or dotted words of letters, digits, '_' and '-'. */
static bool
name_valid(const char *s, size_t len)
{
	if (len == 1 && s[0] == '.')
		return true;
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '-' || (c == '.' && s[i + 1] != '.')))
			return false;
	}
	return true;
}

int
tpl_compile(const char *src, size_t len, const char *name, struct tpl **out, char *err,
    size_t errlen)
{
	struct tpl *t = calloc(1, sizeof *t);
	struct {
		size_t node, line;
	} open[MAX_DEPTH];
	int depth = 0;
	size_t pos = 0, line = 1;

	if (t == NULL || (t->src = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		free(t);
		return -1;
	}
	memcpy(t->src, src, len);
	t->src[len] = '\0';
	const char *s = t->src;

	while (pos < len) {
		const char *o = memmem(s + pos, len - pos, "{{", 2);
		if (o == NULL) {
			if (!node_add(t, N_TEXT, s + pos, len - pos))
				goto oom;
			break;
		}
		size_t at = (size_t)(o - s), tag_line = line + count_lines(s, pos, at);
		bool triple = at + 2 < len && s[at + 2] == '{';
		const char *closer = triple ? "}}}" : "}}";
		size_t inner = at + (triple ? 3 : 2);
		const char *c = inner <= len ? memmem(s + inner, len - inner, closer, strlen(closer)) : NULL;
		if (c == NULL) {
			snprintf(err, errlen, "%s:%zu: '%s' is never closed by '%s'", name, tag_line,
			    triple ? "{{{" : "{{", closer);
			goto fail;
		}
		size_t tag_end = (size_t)(c - s) + strlen(closer);
		const char *nm = s + inner, *nm_end = c;
		char sigil = triple ? '&' : *nm;
		if (!triple && strchr("#^/!&", sigil) != NULL)
			nm++;
		else if (!triple)
			sigil = 0;
		while (nm < nm_end && (*nm == ' ' || *nm == '\t'))
			nm++;
		while (nm_end > nm && (nm_end[-1] == ' ' || nm_end[-1] == '\t'))
			nm_end--;
		size_t nlen = (size_t)(nm_end - nm);
		if (sigil != '!' && (memchr(nm, '\n', nlen) != NULL || !name_valid(nm, nlen))) {
			snprintf(err, errlen, "%s:%zu: '%.*s' is not a variable name", name, tag_line,
			    (int)(nlen > 60 ? 60 : nlen), nm);
			goto fail;
		}

		/* A section, close or comment tag alone on its line takes the line with it. */
		size_t text_end = at, next = tag_end;
		if (sigil == '#' || sigil == '^' || sigil == '/' || sigil == '!') {
			size_t ls = at, le = tag_end;
			while (ls > pos && (s[ls - 1] == ' ' || s[ls - 1] == '\t'))
				ls--;
			bool alone = ls == 0 || s[ls - 1] == '\n';
			while (le < len && (s[le] == ' ' || s[le] == '\t' || s[le] == '\r'))
				le++;
			if (alone && ls >= pos && (le == len || s[le] == '\n')) {
				text_end = ls;
				next = le < len ? le + 1 : le;
			}
		}
		if (text_end > pos && !node_add(t, N_TEXT, s + pos, text_end - pos))
			goto oom;
		line += count_lines(s, pos, next);
		pos = next;

		switch (sigil) {
		case '!':
			break;
		case '#':
		case '^':
			if (depth == MAX_DEPTH) {
				snprintf(err, errlen, "%s:%zu: sections nest deeper than %d", name,
				    tag_line, MAX_DEPTH);
				goto fail;
			}
			if (!node_add(t, sigil == '#' ? N_SECTION : N_INVERTED, nm, nlen))
				goto oom;
			open[depth].node = t->n - 1;
			open[depth++].line = tag_line;
			break;
		case '/': {
			if (depth == 0) {
				snprintf(err, errlen, "%s:%zu: '{{/%.*s}}' closes no section", name,
				    tag_line, (int)nlen, nm);
				goto fail;
			}
			struct node *sec = &t->nodes[open[depth - 1].node];
			if (sec->len != nlen || memcmp(sec->s, nm, nlen) != 0) {
				snprintf(err, errlen, "%s:%zu: '{{/%.*s}}' closes '%.*s' opened at line %zu",
				    name, tag_line, (int)nlen, nm, (int)sec->len, sec->s,
				    open[depth - 1].line);
				goto fail;
			}
			sec->end = t->n;
			depth--;
			break;
		}
		default:
			if (!node_add(t, sigil == '&' ? N_RAW : N_VAR, nm, nlen))
				goto oom;
		}
	}
	if (depth > 0) {
		struct node *sec = &t->nodes[open[depth - 1].node];
		snprintf(err, errlen, "%s:%zu: section '%.*s' is never closed", name,
		    open[depth - 1].line, (int)sec->len, sec->s);
		goto fail;
	}
	*out = t;
	return 0;
oom:
	snprintf(err, errlen, "%s: out of memory", name);
fail:
	tpl_free(t);
	return -1;
}

void
tpl_free(struct tpl *t)
{
	if (t == NULL)
		return;
	free(t->nodes);
	free(t->src);
	free(t);
}

/* The value a dotted name stands for, searching the stack from the top. */
static json_t *
lookup(const char *name, size_t len, json_t *const *ctx, size_t n)
{
	char key[128];
	if (len == 1 && name[0] == '.')
		return n ? ctx[n - 1] : NULL;
	const char *dot = memchr(name, '.', len);
	size_t first = dot ? (size_t)(dot - name) : len;
	if (first >= sizeof key)
		return NULL;
	memcpy(key, name, first);
	key[first] = '\0';
	json_t *v = NULL;
	for (size_t i = n; i-- > 0 && v == NULL;)
		v = json_object_get(ctx[i], key);
	while (v != NULL && dot != NULL) {
		const char *seg = dot + 1;
		dot = memchr(seg, '.', len - (size_t)(seg - name));
		size_t sl = dot ? (size_t)(dot - seg) : len - (size_t)(seg - name);
		if (sl >= sizeof key)
			return NULL;
		memcpy(key, seg, sl);
		key[sl] = '\0';
		if (json_is_array(v)) {
			char *e;
			unsigned long idx = strtoul(key, &e, 10);
			v = *e == '\0' && sl > 0 ? json_array_get(v, idx) : NULL;
		} else {
			v = json_object_get(v, key);
		}
	}
	return v;
}

static bool
truthy(json_t *v)
{
	return !(v == NULL || json_is_null(v) || json_is_false(v) ||
	    (json_is_array(v) && json_array_size(v) == 0) ||
	    (json_is_string(v) && json_string_length(v) == 0));
}

static void
put_escaped(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		switch (s[i]) {
		case '&': buf_puts(out, "&amp;"); break;
		case '<': buf_puts(out, "&lt;"); break;
		case '>': buf_puts(out, "&gt;"); break;
		case '"': buf_puts(out, "&quot;"); break;
		case '\'': buf_puts(out, "&#39;"); break;
		default: buf_putc(out, s[i]);
		}
}

/* Write a scalar: strings as they are, numbers and true as JSON; the rest renders empty. */
static void
put_value(struct buf *out, json_t *v, bool escape)
{
	char num[64];
	const char *s = NULL;
	size_t len = 0;
	if (json_is_string(v)) {
		s = json_string_value(v);
		len = json_string_length(v);
	} else if (json_is_integer(v)) {
		len = (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		s = num;
	} else if (json_is_real(v)) {
		len = (size_t)snprintf(num, sizeof num, "%.15g", json_real_value(v));
		s = num;
	} else if (json_is_true(v)) {
		s = "true";
		len = 4;
	}
	if (s == NULL)
		return;
	if (escape)
		put_escaped(out, s, len);
	else
		buf_put(out, s, len);
}

/* What a render may still spend. */
struct budget {
	size_t	 out_max;	/* out->len it may reach */
	long	 steps;
};

static void
render_range(const struct tpl *t, size_t from, size_t to, json_t **ctx, size_t n,
    bool html, struct buf *out, struct budget *bu)
{
	for (size_t i = from; i < to; i++) {
		const struct node *nd = &t->nodes[i];
		json_t *v;
		if (--bu->steps < 0 || out->len > bu->out_max) {
			bu->steps = -1;
			return;
		}
		switch (nd->kind) {
		case N_TEXT:
			buf_put(out, nd->s, nd->len);
			break;
		case N_VAR:
		case N_RAW:
			put_value(out, lookup(nd->s, nd->len, ctx, n), html && nd->kind == N_VAR);
			break;
		case N_SECTION:
			v = lookup(nd->s, nd->len, ctx, n);
			if (json_is_array(v)) {
				size_t k;
				json_t *item;
				json_array_foreach(v, k, item) {
					if (--bu->steps < 0) {
						bu->steps = -1;
						return;
					}
					if (n < MAX_CTX) {
						ctx[n] = item;
						render_range(t, i + 1, nd->end, ctx, n + 1, html, out, bu);
					}
				}
			} else if (truthy(v)) {
				if (json_is_object(v) && n < MAX_CTX) {
					ctx[n] = v;
					render_range(t, i + 1, nd->end, ctx, n + 1, html, out, bu);
				} else {
					render_range(t, i + 1, nd->end, ctx, n, html, out, bu);
				}
			}
			i = nd->end - 1;
			break;
		case N_INVERTED:
			if (!truthy(lookup(nd->s, nd->len, ctx, n)))
				render_range(t, i + 1, nd->end, ctx, n, html, out, bu);
			i = nd->end - 1;
			break;
		}
	}
}

bool
tpl_render(const struct tpl *t, json_t *const *ctx, size_t n, bool html, struct buf *out)
{
	json_t *stack[MAX_CTX];
	struct budget bu = {out->len + TPL_MAX_OUTPUT, TPL_MAX_STEPS};
	if (n > 8)
		n = 8;
	memcpy(stack, ctx, n * sizeof *ctx);
	render_range(t, 0, t->n, stack, n, html, out, &bu);
	return bu.steps >= 0;
}

bool
tpl_uses(const struct tpl *t, const char *name)
{
	size_t l = strlen(name);
	for (size_t i = 0; i < t->n; i++) {
		const struct node *nd = &t->nodes[i];
		if (nd->kind != N_TEXT && nd->len >= l && memcmp(nd->s, name, l) == 0 &&
		    (nd->len == l || nd->s[l] == '.'))
			return true;
	}
	return false;
}

/* Template sets. */

static const char *const part_ext[TP__COUNT] = {"title", "body", "subject", "txt", "html"};

const char *
template_part_name(enum template_part p)
{
	return p < TP__COUNT ? part_ext[p] : "?";
}

struct template_set {
	int			 refs;
	struct template_type	*types;		/* sorted by name */
	size_t			 n;
	struct tpl		*layout;
	char			**paths;	/* sources that are files, owned here */
	size_t			 npaths;
};

/* A file a set is built from. */
struct tfile {
	char		 name[128];	/* base name, e.g. order_shipped.title */
	const char	*data;
	size_t		 len;
	char		*owned;		/* data read from a file */
	const char	*source;	/* "embedded" or the path (owned by the set) */
};

#define MAX_FILES	512
#define MAX_FILE_SIZE	(1024 * 1024)

static int
tfile_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tfile *)a)->name, ((const struct tfile *)b)->name);
}

static struct tfile *
tfile_find(struct tfile *f, size_t n, const char *name)
{
	struct tfile key;
	snprintf(key.name, sizeof key.name, "%s", name);
	return bsearch(&key, f, n, sizeof *f, tfile_cmp);
}

/* Read the override directory into files (replacing embedded ones of the same name). */
static int
read_dir(struct template_set *set, const char *dir, struct tfile *files, size_t *n,
    char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	if (d == NULL) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t l = strlen(nm);
		if (nm[0] == '.' || l == 0 || nm[l - 1] == '~' || l >= sizeof files->name ||
		    strncmp(nm, "README", 6) == 0)
			continue;
		char path[4096];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", dir, nm);
		if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
			continue;
		if (sb.st_size > MAX_FILE_SIZE) {
			snprintf(err, errlen, "%s: larger than %d bytes", path, MAX_FILE_SIZE);
			goto fail;
		}
		FILE *fp = fopen(path, "rb");
		char *data = fp ? malloc((size_t)sb.st_size + 1) : NULL;
		size_t got = data ? fread(data, 1, (size_t)sb.st_size, fp) : 0;
		if (fp)
			fclose(fp);
		if (data == NULL || got != (size_t)sb.st_size) {
			free(data);
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			goto fail;
		}
		data[got] = '\0';
		char **pp = realloc(set->paths, (set->npaths + 1) * sizeof *pp);
		if (pp == NULL || (pp[set->npaths] = strdup(path)) == NULL) {
			if (pp)
				set->paths = pp;
			free(data);
			snprintf(err, errlen, "%s: out of memory", path);
			goto fail;
		}
		set->paths = pp;
		struct tfile *f = tfile_find(files, *n, nm);
		if (f == NULL) {
			if (*n == MAX_FILES) {
				free(data);
				snprintf(err, errlen, "%s: more than %d template files", dir, MAX_FILES);
				goto fail;
			}
			f = &files[(*n)++];
			memset(f, 0, sizeof *f);
			memcpy(f->name, nm, l + 1);	/* l < sizeof f->name, checked above */
			qsort(files, *n, sizeof *files, tfile_cmp);
			f = tfile_find(files, *n, nm);
		}
		free(f->owned);
		f->owned = data;
		f->data = data;
		f->len = got;
		f->source = set->paths[set->npaths++];
	}
	closedir(d);
	return 0;
fail:
	closedir(d);
	return -1;
}

/* Parse a .meta file: "channels = in_app email", "critical = true". */
static int
parse_meta(struct template_type *t, const struct tfile *f, char *err, size_t errlen)
{
	const char *p = f->data, *end = f->data + f->len;
	const char *where = strcmp(f->source, "embedded") == 0 ? f->name : f->source;
	for (size_t line = 1; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		char buf[512], *k, *v, *eq;
		snprintf(buf, sizeof buf, "%.*s", (int)(le - p), p);
		p = nl ? nl + 1 : end;
		k = buf + strspn(buf, " \t\r");
		if (*k == '\0' || *k == '#')
			continue;
		if ((eq = strchr(k, '=')) == NULL) {
			snprintf(err, errlen, "%s:%zu: expected 'key = value'", where, line);
			return -1;
		}
		*eq = '\0';
		v = eq + 1 + strspn(eq + 1, " \t");
		for (char *e = eq; e > k && strchr(" \t", e[-1]); )
			*--e = '\0';
		for (char *e = v + strlen(v); e > v && strchr(" \t\r", e[-1]); )
			*--e = '\0';
		if (strcmp(k, "critical") == 0) {
			if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
				snprintf(err, errlen, "%s:%zu: critical must be true or false", where, line);
				return -1;
			}
			t->critical = strcmp(v, "true") == 0;
		} else if (strcmp(k, "channels") == 0) {
			t->channels = 0;
			for (char *w = strtok(v, " ,\t"); w; w = strtok(NULL, " ,\t")) {
				unsigned c = prefs_channel_of(w);
				if (c != 0 && c != CHANNEL_WEBHOOK)
					t->channels |= c;
				else {
					snprintf(err, errlen, "%s:%zu: unknown channel '%s' (in_app, "
					    "email, push)", where, line, w);
					return -1;
				}
			}
		} else {
			snprintf(err, errlen, "%s:%zu: unknown key '%s' (channels, critical)", where,
			    line, k);
			return -1;
		}
	}
	return 0;
}

static int
compile_file(const struct tfile *f, struct tpl **out, char *err, size_t errlen)
{
	return tpl_compile(f->data, f->len,
	    strcmp(f->source, "embedded") == 0 ? f->name : f->source, out, err, errlen);
}

/* Build the type named name from the files, falling back part by part to "message". */
static int
build_type(struct template_type *t, const char *name, struct tfile *files, size_t n,
    char *err, size_t errlen)
{
	char fn[128];
	snprintf(t->name, sizeof t->name, "%s", name);
	t->channels = CHANNEL_IN_APP | CHANNEL_EMAIL | CHANNEL_PUSH;
	for (int p = 0; p < TP__COUNT; p++) {
		snprintf(fn, sizeof fn, "%s.%s", name, part_ext[p]);
		struct tfile *f = tfile_find(files, n, fn);
		if (f == NULL) {
			snprintf(fn, sizeof fn, "message.%s", part_ext[p]);
			f = tfile_find(files, n, fn);
		}
		if (f == NULL) {
			snprintf(err, errlen, "%s: no %s template and no message.%s", name,
			    part_ext[p], part_ext[p]);
			return -1;
		}
		if (compile_file(f, &t->part[p], err, errlen) != 0)
			return -1;
		t->source[p] = f->source;
	}
	snprintf(fn, sizeof fn, "%s.meta", name);
	struct tfile *m = tfile_find(files, n, fn);
	t->source[TP__COUNT] = m ? m->source : NULL;
	return m ? parse_meta(t, m, err, errlen) : 0;
}

static void
set_free(struct template_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		for (int p = 0; p < TP__COUNT; p++)
			tpl_free(s->types[i].part[p]);
	free(s->types);
	tpl_free(s->layout);
	for (size_t i = 0; i < s->npaths; i++)
		free(s->paths[i]);
	free(s->paths);
	free(s);
}

int
template_set_load(const char *dir, struct template_set **out, char *err, size_t errlen)
{
	struct template_set *set = calloc(1, sizeof *set);
	struct tfile *files = calloc(MAX_FILES, sizeof *files);
	size_t n = 0;
	int rc = -1;

	if (set == NULL || files == NULL) {
		snprintf(err, errlen, "templates: out of memory");
		goto done;
	}
	set->refs = 1;
	for (const struct embedded *e = embedded_templates; e->name && n < MAX_FILES; e++) {
		const char *base = strrchr(e->name, '/');
		struct tfile *f = &files[n++];
		snprintf(f->name, sizeof f->name, "%s", base ? base + 1 : e->name);
		f->data = (const char *)e->data;
		f->len = e->len;
		f->source = "embedded";
	}
	qsort(files, n, sizeof *files, tfile_cmp);
	if (dir != NULL && *dir != '\0' && read_dir(set, dir, files, &n, err, errlen) != 0)
		goto done;

	/* Every stem but the layout's is a type; an unknown extension is a mistake. */
	for (size_t i = 0; i < n; i++) {
		const char *dot = strchr(files[i].name, '.');
		size_t stem = dot ? (size_t)(dot - files[i].name) : strlen(files[i].name);
		bool known = dot && strcmp(dot + 1, "meta") == 0;
		for (int p = 0; p < TP__COUNT && dot && !known; p++)
			known = strcmp(dot + 1, part_ext[p]) == 0;
		if (!known || !name_valid(files[i].name, stem) || memchr(files[i].name, '.', stem)) {
			snprintf(err, errlen, "%s: not a template file (TYPE.title, .body, .subject, "
			    ".txt, .html or .meta)", files[i].source[0] == 'e' ? files[i].name :
			    files[i].source);
			goto done;
		}
		if (strcmp(files[i].name, "layout.html") == 0) {
			if (compile_file(&files[i], &set->layout, err, errlen) != 0)
				goto done;
			continue;
		}
		if (strncmp(files[i].name, "layout.", 7) == 0)
			continue;
		if (set->n > 0 && strlen(set->types[set->n - 1].name) == stem &&
		    strncmp(set->types[set->n - 1].name, files[i].name, stem) == 0)
			continue;
		struct template_type *t = realloc(set->types, (set->n + 1) * sizeof *t);
		if (t == NULL) {
			snprintf(err, errlen, "templates: out of memory");
			goto done;
		}
		set->types = t;
		memset(&t[set->n], 0, sizeof *t);
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)stem, files[i].name);
		set->n++;
		if (build_type(&t[set->n - 1], name, files, n, err, errlen) != 0)
			goto done;
	}
	if (set->layout == NULL || template_set_type(set, "message") == NULL) {
		snprintf(err, errlen, "templates: layout.html and the message type are required");
		goto done;
	}
	*out = set;
	set = NULL;
	rc = 0;
done:
	for (size_t i = 0; files != NULL && i < n; i++)
		free(files[i].owned);
	free(files);
	set_free(set);
	return rc;
}

struct template_set *
template_set_ref(struct template_set *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void
template_set_unref(struct template_set *s)
{
	if (s != NULL && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
		set_free(s);
}

const struct template_type *
template_set_type(const struct template_set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->types[i].name, name) == 0)
			return &s->types[i];
	return NULL;
}

const struct template_type *
template_set_type_or_default(const struct template_set *s, const char *name)
{
	const struct template_type *t = name ? template_set_type(s, name) : NULL;
	return t ? t : template_set_type(s, "message");
}

size_t
template_set_count(const struct template_set *s)
{
	return s->n;
}

const struct template_type *
template_set_at(const struct template_set *s, size_t i)
{
	return i < s->n ? &s->types[i] : NULL;
}

/* Trim what was appended from start; one_line folds line breaks into spaces. */
static void
trim_line(struct buf *b, size_t start, bool one_line)
{
	if (b->data == NULL)
		return;
	char *p = b->data + start;
	size_t lead = strspn(p, " \t\r\n");
	memmove(p, p + lead, b->len - start - lead + 1);
	b->len -= lead;
	while (b->len > start && strchr(" \t\r\n", b->data[b->len - 1]))
		b->data[--b->len] = '\0';
	for (char *q = p; one_line && *q; q++)
		if (*q == '\r' || *q == '\n' || *q == '\t')
			*q = ' ';
}

void
template_render(const struct template_set *s, const struct template_type *t,
    enum template_part part, json_t *notification, json_t *user, struct buf *out)
{
	json_t *root = json_deep_copy(notification);
	if (root == NULL)
		root = json_object();
	/* "user" is the user's profile; the notification holds only the id. */
	if (user != NULL)
		json_object_set(root, "user", user);
	else
		json_object_set_new(root, "user", json_pack("{s:O?}", "id",
		    json_object_get(root, "user")));
	json_t *data = json_object_get(root, "data");
	json_t *ctx[3] = {root, json_is_object(data) ? data : json_object(), NULL};
	bool html = part == TP_HTML;
	bool whole = true;
	if (part != TP_HTML) {
		size_t start = out->len;
		whole = tpl_render(t->part[part], ctx, 2, html, out);
		if (part != TP_TEXT)
			trim_line(out, start, part == TP_SUBJECT);
	} else {
		struct buf content, subject;
		buf_init(&content);
		buf_init(&subject);
		whole = tpl_render(t->part[TP_HTML], ctx, 2, true, &content) &&
		    tpl_render(t->part[TP_SUBJECT], ctx, 2, false, &subject);
		trim_line(&subject, 0, true);
		json_t *frame = json_pack("{s:s, s:s}", "content", content.data ? content.data : "",
		    "subject", subject.data ? subject.data : "");
		ctx[2] = frame;
		whole = tpl_render(s->layout, ctx, 3, true, out) && whole;
		json_decref(frame);
		buf_free(&content);
		buf_free(&subject);
	}
	if (!whole)
		log_warn("template output cut off", "type=%s part=%d bound_bytes=%d bound_steps=%d "
		    "hint=\"sections nested over large arrays\"", json_string_value(json_object_get(root,
		    "type")) ? json_string_value(json_object_get(root, "type")) : "?", (int)part,
		    TPL_MAX_OUTPUT, TPL_MAX_STEPS);
	if (!json_is_object(data))
		json_decref(ctx[1]);
	json_decref(root);
}

/* Add name to the array of names list, once. */
static void
name_add_once(json_t *list, const char *name, size_t len)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
		if (json_string_length(v) == len && memcmp(json_string_value(v), name, len) == 0)
			return;
	json_array_append_new(list, json_stringn(name, len));
}

/*
 * Is name one of the notification's own fields (or the profile), which a
 * send may leave out, rather than something the data should give?
 */
static bool
own_field(const char *name, size_t len)
{
	static const char *const own[] = {"id", "user", "type", "category", "priority", "title",
	    "body", "url", "key", "created_at", "deliver_at", "read_at", "archived_at", "data",
	    ".", NULL};
	size_t first = strcspn(name, ".");
	if (first > len || first == 0)
		first = len;
	for (int i = 0; own[i]; i++)
		if (strlen(own[i]) == first && strncmp(own[i], name, first) == 0)
			return true;
	return false;
}

/* Append to missing each data variable part of t shows unguarded that data lacks. */
static void
template_missing(const struct template_type *t, enum template_part part, json_t *data,
    json_t *missing)
{
	const struct tpl *tp = t->part[part];
	json_t *ctx[1] = {data};
	for (size_t i = 0; i < tp->n; i++) {
		const struct node *nd = &tp->nodes[i];
		json_t *v;
		if (nd->kind == N_SECTION || nd->kind == N_INVERTED)
			i = nd->end - 1;	/* guarded: the template tests for it */
		else if ((nd->kind == N_VAR || nd->kind == N_RAW) && !own_field(nd->s, nd->len) &&
		    ((v = lookup(nd->s, nd->len, ctx, json_is_object(data))) == NULL ||
		    json_is_null(v)))
			name_add_once(missing, nd->s, nd->len);
	}
}

json_t *
template_warnings(const struct template_type *t, unsigned parts, json_t *data)
{
	json_t *by_part[TP__COUNT] = {0}, *all = json_array(), *warnings = json_array(), *v;
	size_t i;
	for (int p = 0; p < TP__COUNT; p++) {
		if (!(parts & (1u << p)))
			continue;
		by_part[p] = json_array();
		template_missing(t, p, data, by_part[p]);
		json_array_foreach(by_part[p], i, v)
			name_add_once(all, json_string_value(v), json_string_length(v));
	}
	json_array_foreach(all, i, v) {
		struct buf msg;
		json_t *in = json_array(), *w;
		size_t j;
		buf_init(&msg);
		buf_printf(&msg, "%s: '%s' is not in the data, so it renders empty in", t->name,
		    json_string_value(v));
		for (int p = 0; p < TP__COUNT; p++)
			json_array_foreach(by_part[p], j, w)
				if (json_equal(w, v)) {
					buf_printf(&msg, "%s %s", json_array_size(in) ? "," : "",
					    part_ext[p]);
					json_array_append_new(in, json_string(part_ext[p]));
				}
		json_array_append_new(warnings, json_pack("{s:s, s:O, s:o, s:s}", "code",
		    "missing_variable", "variable", v, "parts", in, "message",
		    msg.data ? msg.data : ""));
		buf_free(&msg);
	}
	for (int p = 0; p < TP__COUNT; p++)
		json_decref(by_part[p]);
	json_decref(all);
	return warnings;
}

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct template_set *current;

struct template_set *
templates_current(void)
{
	pthread_mutex_lock(&current_lock);
	struct template_set *s = current ? template_set_ref(current) : NULL;
	pthread_mutex_unlock(&current_lock);
	return s;
}

void
templates_install(struct template_set *s)
{
	pthread_mutex_lock(&current_lock);
	struct template_set *old = current;
	current = s;
	pthread_mutex_unlock(&current_lock);
	template_set_unref(old);
}
