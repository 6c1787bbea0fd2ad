/*
 * notifyctl — control notifyd over its Unix socket.
 * Commands, their flags, help and validation all come from op_table[] (core/ops/decl.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "decl.h"
#include "lineio.h"
#include "print.h"
#include "proto.h"
#include "util.h"

#include "client.h"
#include "demo.h"

#define SERVICE_SOCKET	"/run/notifyd/notifyd.sock"	/* as dist/notifyd.service.in */

void
die(int status, const char *fmt, ...)
{
	va_list ap;
	fputs("notifyctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* The command-line spelling of an argument name: max_age -> max-age. */
static void
flag_name(const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s", name);
	for (char *p = out; *p; p++)
		if (*p == '_')
			*p = '-';
}

/* The words that invoke op: "user.show" -> "user show". */
static void
command_words(const struct op *op, char *out, size_t n)
{
	snprintf(out, n, "%s", op->name);
	for (char *p = out; *p; p++)
		if (*p == '.')
			*p = ' ';
}

/* One line of synopsis for op. */
static void
synopsis(FILE *f, const struct op *op)
{
	char words[64], flag[64];
	command_words(op, words, sizeof words);
	fprintf(f, "notifyctl %s", words);
	for (const struct op_arg *a = op->args; a->name; a++) {
		bool req = a->flags & ARG_REQUIRED;
		flag_name(a->name, flag, sizeof flag);
		if (a->flags & ARG_POSITIONAL)
			fprintf(f, " %s%s%s%s", req ? "" : "[", a->metavar,
			    a->type == ARG_IDS ? "..." : "", req ? "" : "]");
		else if (a->type == ARG_BOOL)
			fprintf(f, " [--%s]", flag);
		else
			fprintf(f, " %s--%s %s%s%s", req ? "" : "[", flag, a->metavar,
			    a->type == ARG_OBJECT || a->type == ARG_STRINGS ? "..." : "",
			    req ? "" : "]");
	}
	fputc('\n', f);
}

static void
usage(FILE *f)
{
	char words[64];
	fprintf(f, "usage: notifyctl [-s SOCKET] [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (const struct op *const *o = op_table; *o; o++) {
		command_words(*o, words, sizeof words);
		fprintf(f, "  %-14s %s\n", words, (*o)->summary);
	}
	fprintf(f, "  %-14s %s\n", "demo", "play the marketplace story on this notifyd "
	    "(--fast: no pauses)");
	fprintf(f, "  %-14s %s\n", "help", "show help for a command");
	fprintf(f, "\noptions:\n"
	    "  -s, --socket PATH  notifyd's control socket (default: $NOTIFYD_CONTROL_SOCKET,\n"
	    "                     $XDG_RUNTIME_DIR/notifyd.sock, /tmp/notifyd-UID/notifyd.sock)\n"
	    "  --json             print the result as JSON\n"
	    "\nnotifyctl completion bash   print bash completion for notifyctl\n"
	    "\nexit status: 0 ok, 1 refused or failed, 2 usage, 3 notifyd unreachable.\n"
	    "See notifyctl(1).\n");
}

/* The length of op's first command word ("mail" of "mail.list"). */
static size_t
first_word_len(const struct op *op)
{
	return strcspn(op->name, ".");
}

/* Is *o the first operation in op_table[] to begin with its first word? */
static bool
first_word_new(const struct op *const *o)
{
	size_t l = first_word_len(*o);
	for (const struct op *const *p = op_table; p < o; p++)
		if (first_word_len(*p) == l && strncmp((*p)->name, (*o)->name, l) == 0)
			return false;
	return true;
}

/*
 * A command group ("mail" of "mail list", "mail show", ...): print its
 * commands to f and return true; false when word names no group.
 */
static bool
group_help(FILE *f, const char *word)
{
	size_t l = strlen(word);
	char words[64];
	bool any = false;
	for (const struct op *const *o = op_table; *o; o++) {
		if (first_word_len(*o) != l || strncmp((*o)->name, word, l) != 0 ||
		    (*o)->name[l] != '.')
			continue;
		if (!any)
			fprintf(f, "usage: notifyctl %s COMMAND [ARGS]\n\ncommands:\n", word);
		any = true;
		command_words(*o, words, sizeof words);
		fprintf(f, "  %-14s %s\n", words, (*o)->summary);
	}
	if (any)
		fprintf(f, "\nSee notifyctl help %s COMMAND.\n", word);
	return any;
}

/* Print the first command words of op_table[], each once, for bash. */
static void
bash_first_words(FILE *f)
{
	for (const struct op *const *o = op_table; *o; o++)
		if (first_word_new(o))
			fprintf(f, "%.*s ", (int)first_word_len(*o), (*o)->name);
}

/* Print the flags of op for bash. */
static void
bash_words(FILE *f, const struct op *op)
{
	char flag[64];
	for (const struct op_arg *a = op->args; a->name; a++)
		if (!(a->flags & ARG_POSITIONAL)) {
			flag_name(a->name, flag, sizeof flag);
			fprintf(f, "--%s ", flag);
		}
	fprintf(f, "--json --help");
}

/*
 * bash completion of every command, its subcommands and its flags, made
 * from op_table[] like the help: `notifyctl completion bash`, which make
 * install writes to the bash-completion directory.
 */
static void
completion_bash(FILE *f)
{
	char words[64];
	fprintf(f, "# bash completion for notifyctl(1), made by `notifyctl completion bash`\n"
	    "# from its operations table; do not edit.\n"
	    "_notifyctl()\n{\n"
	    "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} i=1 cmd opts\n"
	    "\tif [[ $prev == -s || $prev == --socket ]]; then\n"
	    "\t\tCOMPREPLY=($(compgen -f -- \"$cur\")); return\n\tfi\n"
	    "\twhile ((i < COMP_CWORD)); do\n"
	    "\t\tcase ${COMP_WORDS[i]} in\n"
	    "\t\t-s|--socket) ((i += 2)) ;;\n"
	    "\t\t-*) ((i += 1)) ;;\n"
	    "\t\t*) break ;;\n"
	    "\t\tesac\n\tdone\n"
	    "\tif ((i >= COMP_CWORD)); then\n"
	    "\t\tCOMPREPLY=($(compgen -W \"");
	bash_first_words(f);
	fprintf(f, "demo help -s --socket --json --help --version\" -- \"$cur\")); return\n\tfi\n"
	    "\tcmd=${COMP_WORDS[i]}\n"
	    "\tcase $cmd in\n"
	    "\tdemo) COMPREPLY=($(compgen -W \"--fast\" -- \"$cur\")); return ;;\n");
	/* Groups: the second word, then the flags of the two-word command. */
	for (const struct op *const *o = op_table; *o; o++) {
		size_t l = first_word_len(*o);
		if ((*o)->name[l] != '.' || !first_word_new(o))
			continue;
		fprintf(f, "\t%.*s)\n\t\tif ((i + 1 == COMP_CWORD)); then\n"
		    "\t\t\tCOMPREPLY=($(compgen -W \"", (int)l, (*o)->name);
		for (const struct op *const *p = o; *p; p++)
			if (strncmp((*p)->name, (*o)->name, l + 1) == 0)
				fprintf(f, "%s ", (*p)->name + l + 1);
		fprintf(f, "\" -- \"$cur\")); return\n\t\tfi\n"
		    "\t\tcmd=\"$cmd ${COMP_WORDS[i+1]}\" ;;\n");
	}
	fprintf(f, "\thelp) cmd=help ;;\n\tesac\n\tcase $cmd in\n");
	for (const struct op *const *o = op_table; *o; o++) {
		command_words(*o, words, sizeof words);
		fprintf(f, "\t\"%s\") opts=\"", words);
		bash_words(f, *o);
		fprintf(f, "\" ;;\n");
	}
	fprintf(f, "\thelp) opts=\"");
	bash_first_words(f);
	fprintf(f, "\" ;;\n"
	    "\t*) opts=\"--json --help\" ;;\n"
	    "\tesac\n"
	    "\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n}\n"
	    "complete -F _notifyctl notifyctl\n");
}

/* Full help of one command. */
static void
command_help(FILE *f, const struct op *op)
{
	char flag[64], left[80];
	fprintf(f, "usage: ");
	synopsis(f, op);
	fprintf(f, "\n%s\n\n", op->summary);
	for (const struct op_arg *a = op->args; a->name; a++) {
		flag_name(a->name, flag, sizeof flag);
		if (a->flags & ARG_POSITIONAL)
			snprintf(left, sizeof left, "%s%s", a->metavar, a->type == ARG_IDS ? "..." : "");
		else if (a->type == ARG_BOOL)
			snprintf(left, sizeof left, "--%s", flag);
		else
			snprintf(left, sizeof left, "--%s %s", flag, a->metavar);
		fprintf(f, "  %-20s %s%s\n", left, a->help,
		    a->flags & ARG_REQUIRED ? " (required)" : "");
	}
}

/* The operation named by the words at argv[*i], advancing *i past them. */
static const struct op *
find_command(int argc, char **argv, int *i)
{
	char name[128];
	const struct op *found = NULL;
	/* Two words ("user show") before one, exact before a unique prefix. */
	if (*i + 1 < argc) {
		snprintf(name, sizeof name, "%s.%s", argv[*i], argv[*i + 1]);
		if ((found = op_find(name)) != NULL) {
			*i += 2;
			return found;
		}
	}
	if ((found = op_find(argv[*i])) != NULL) {
		(*i)++;
		return found;
	}
	size_t l = strlen(argv[*i]);
	int matches = 0;
	for (const struct op *const *o = op_table; *o; o++)
		if (strncmp((*o)->name, argv[*i], l) == 0 && strchr((*o)->name + l, '.') == NULL) {
			found = *o;
			matches++;
		}
	if (matches == 1) {
		(*i)++;
		return found;
	}
	if (matches > 1)
		die(EXIT_USAGE, "'%s' is ambiguous; see notifyctl help", argv[*i]);
	/* A group alone, or with --help: its commands. */
	bool asked = *i + 1 < argc && (strcmp(argv[*i + 1], "--help") == 0 ||
	    strcmp(argv[*i + 1], "-h") == 0);
	if (group_help(asked ? stdout : stderr, argv[*i]))
		exit(asked ? 0 : EXIT_USAGE);
	die(EXIT_USAGE, "unknown command '%s'; see notifyctl help", argv[*i]);
}

/* Convert one word to the JSON an argument takes, or die with a usage error. */
static json_t *
arg_value(const struct op *op, const struct op_arg *a, const char *word)
{
	int64_t v;
	int64_t ms;
	json_t *v0;
	switch (a->type) {
	case ARG_INT:
	case ARG_ID:
		if (!parse_int64(word, a->type == ARG_ID ? 1 : INT64_MIN, INT64_MAX, &v))
			die(EXIT_USAGE, "%s: %s must be %s, not '%s'", op->name, a->metavar,
			    op_arg_type_name(a->type), word);
		return json_integer(v);
	case ARG_DURATION:
		if (!duration_parse(word, &ms))
			die(EXIT_USAGE, "%s: '%s' is not a duration such as 30s, 15m or 1h",
			    op->name, word);
		return json_string(word);
	case ARG_TIME:
		if (!time_parse_at(word, 0, &ms))
			die(EXIT_USAGE, "%s: '%s' is not an RFC 3339 time such as "
			    "2026-01-02T15:04:05Z, nor +DURATION such as +15m", op->name, word);
		return json_string(word);
	case ARG_PATH:
		/* notifyd's working directory is not ours: send it whole. */
		if (word[0] != '/') {
			char cwd[PATH_MAX], *abs;
			if (getcwd(cwd, sizeof cwd) == NULL)
				die(EXIT_USAGE, "%s: no working directory to find '%s' in: %s",
				    op->name, word, strerror(errno));
			if (asprintf(&abs, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, word) < 0)
				die(EXIT_USAGE, "%s: out of memory", op->name);
			v0 = json_string(abs);
			free(abs);
		} else {
			v0 = json_string(word);
		}
		if (v0 == NULL)
			die(EXIT_USAGE, "%s: '%s' is not valid UTF-8", op->name, a->name);
		return v0;
	default:
		/* jansson takes only valid UTF-8. */
		if ((v0 = json_string(word)) == NULL)
			die(EXIT_USAGE, "%s: '%s' is not valid UTF-8", op->name, a->name);
		return v0;
	}
}

/* Add K=V (a string) or K:=JSON to the object of an ARG_OBJECT argument. */
static void
object_add(const struct op *op, json_t *obj, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (eq == NULL || eq == kv)
		die(EXIT_USAGE, "%s: '%s' is not KEY=VALUE or KEY:=JSON", op->name, kv);
	size_t kl = (size_t)(eq - kv);
	json_t *v;
	if (eq[-1] == ':') {
		json_error_t jerr;
		kl--;
		v = json_loads(eq + 1, JSON_DECODE_ANY, &jerr);
		if (v == NULL)
			die(EXIT_USAGE, "%s: %.*s: bad JSON: %s", op->name, (int)kl, kv, jerr.text);
	} else {
		v = json_string(eq + 1);
		if (v == NULL)
			die(EXIT_USAGE, "%s: '%s' is not valid UTF-8", op->name, kv);
	}
	if (kl == 0)
		die(EXIT_USAGE, "%s: '%s' has an empty key", op->name, kv);
	char *key = strndup(kv, kl);
	json_object_set_new(obj, key, v);
	free(key);
}

/* Append the id in word to the list argument a of args. */
static void
ids_append(const struct op *op, json_t *args, const struct op_arg *a, const char *word)
{
	json_t *arr = json_object_get(args, a->name);
	if (arr == NULL)
		json_object_set_new(args, a->name, arr = json_array());
	json_array_append_new(arr, arg_value(op, &(struct op_arg){a->name, ARG_ID, 0,
	    a->metavar, NULL}, word));
}

/* Append word to the array a names (an ARG_STRINGS), made when first needed. */
static void
strings_append(const struct op *op, json_t *args, const struct op_arg *a, const char *word)
{
	json_t *arr = json_object_get(args, a->name);
	if (arr == NULL)
		json_object_set_new(args, a->name, arr = json_array());
	json_array_append_new(arr, arg_value(op, a, word));
}

/* Build the args object of op from the words after the command. */
static json_t *
parse_args(const struct op *op, int argc, char **argv, int i, bool *json_out)
{
	json_t *args = json_object();
	const struct op_arg *pos = op->args;
	char flag[64];

	for (; i < argc; i++) {
		const char *w = argv[i];
		if (strcmp(w, "--json") == 0) {
			*json_out = true;
			continue;
		}
		if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
			command_help(stdout, op);
			exit(0);
		}
		if (strncmp(w, "--", 2) == 0 && w[2] != '\0') {
			const char *val = NULL, *eq = strchr(w, '=');
			snprintf(flag, sizeof flag, "%.*s",
			    (int)(eq ? (size_t)(eq - w - 2) : strlen(w + 2)), w + 2);
			const struct op_arg *a = NULL;
			for (const struct op_arg *c = op->args; c->name; c++) {
				char f[64];
				flag_name(c->name, f, sizeof f);
				if (!(c->flags & ARG_POSITIONAL) && strcmp(f, flag) == 0)
					a = c;
			}
			if (a == NULL)
				die(EXIT_USAGE, "%s: unknown option --%s; see notifyctl help %s",
				    op->name, flag, op->name);
			if (a->type == ARG_BOOL) {	/* --flag, or --flag=true|false */
				bool on = eq == NULL || strcmp(eq + 1, "true") == 0;
				if (eq != NULL && !on && strcmp(eq + 1, "false") != 0)
					die(EXIT_USAGE, "%s: --%s is true or false, not '%s'", op->name,
					    flag, eq + 1);
				json_object_set_new(args, a->name, json_boolean(on));
				continue;
			}
			if (eq != NULL)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				die(EXIT_USAGE, "%s: --%s needs %s", op->name, flag, a->metavar);
			if (a->type == ARG_OBJECT) {
				json_t *o = json_object_get(args, a->name);
				if (o == NULL)
					json_object_set_new(args, a->name, o = json_object());
				object_add(op, o, val);
			} else if (a->type == ARG_IDS) {
				ids_append(op, args, a, val);
			} else if (a->type == ARG_STRINGS) {
				strings_append(op, args, a, val);
			} else {
				if (json_object_get(args, a->name) != NULL)
					die(EXIT_USAGE, "%s: --%s given twice", op->name, flag);
				json_object_set_new(args, a->name, arg_value(op, a, val));
			}
			continue;
		}
		/* A bare word: the next positional argument. */
		while (pos->name && !(pos->flags & ARG_POSITIONAL))
			pos++;
		if (pos->name == NULL)
			die(EXIT_USAGE, "%s: unexpected argument '%s'", op->name, w);
		if (pos->type == ARG_IDS) {
			ids_append(op, args, pos, w);
		} else if (pos->type == ARG_STRINGS) {	/* takes every word left */
			strings_append(op, args, pos, w);
		} else {
			json_object_set_new(args, pos->name, arg_value(op, pos, w));
			pos++;
		}
	}
	for (const struct op_arg *a = op->args; a->name; a++)
		if ((a->flags & ARG_REQUIRED) && json_object_get(args, a->name) == NULL) {
			flag_name(a->name, flag, sizeof flag);
			if (a->flags & ARG_POSITIONAL)
				die(EXIT_USAGE, "%s: %s is required; usage: see notifyctl help %s",
				    op->name, a->metavar, op->name);
			die(EXIT_USAGE, "%s: --%s is required; see notifyctl help %s",
			    op->name, flag, op->name);
		}
	return args;
}

int
connect_daemon(const char *path, struct line_reader *r)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sun.sun_path)
		die(EXIT_USAGE, "socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
		die(EXIT_UNREACHABLE, "cannot reach notifyd at %s: %s (is it running? "
		    "see -s)", path, strerror(errno));
	line_reader_init(r, fd, PROTO_MAX_REPLY);
	char *line;
	size_t len;
	if (line_read(r, &line, &len) != LINE_OK) {
		line_reader_free(r);
		die(EXIT_UNREACHABLE, "notifyd at %s closed the connection", path);
	}
	json_t *g = json_loadb(line, len, 0, NULL);
	json_t *err = json_object_get(g, "error");
	const char *msg = json_string_value(json_object_get(err, "message"));
	long long proto = json_integer_value(json_object_get(g, "protocol"));
	bool refused = err != NULL;
	char why[256];
	/* Freed before dying: a sanitizer build's exit must find nothing left. */
	snprintf(why, sizeof why, "%s", msg ? msg : "(no reason given)");
	json_decref(g);
	if (refused || proto != PROTO_VERSION)
		line_reader_free(r);
	if (refused)
		die(EXIT_UNREACHABLE, "notifyd refused the connection: %s", why);
	if (proto != PROTO_VERSION)
		die(EXIT_UNREACHABLE, "notifyd at %s speaks control protocol %lld, "
		    "this notifyctl speaks %d", path, proto, PROTO_VERSION);
	return fd;
}

json_t *
request(int fd, struct line_reader *r, const char *cmd, json_t *args)
{
	static int id;
	json_t *req = json_pack("{s:i, s:s, s:o}", "id", ++id, "cmd", cmd, "args", args);
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (text == NULL)
		die(EXIT_FAILED, "out of memory");
	size_t tl = strlen(text);
	text[tl] = '\n';
	if (write_all(fd, text, tl + 1) != 0)
		die(EXIT_UNREACHABLE, "lost the connection to notifyd: %s", strerror(errno));
	free(text);

	char *line;
	size_t len;
	enum line_status st = line_read(r, &line, &len);
	if (st == LINE_TOO_LONG)
		die(EXIT_FAILED, "notifyd's reply is longer than %d MiB; ask for less (--limit)",
		    PROTO_MAX_REPLY >> 20);
	if (st != LINE_OK)
		die(EXIT_UNREACHABLE, "notifyd closed the connection before answering");
	json_error_t jerr;
	json_t *reply = json_loadb(line, len, 0, &jerr);
	if (reply == NULL)
		die(EXIT_FAILED, "notifyd sent a malformed reply: %s", jerr.text);
	return reply;
}

int
main(int argc, char **argv)
{
	char sock[PATH_MAX];
	bool json_out = false;
	int i = 1;
	const char *env = getenv("NOTIFYD_CONTROL_SOCKET");

	if (env != NULL && *env != '\0')
		snprintf(sock, sizeof sock, "%s", env);
	else {
		proto_default_socket(sock, sizeof sock);
		/* notifyd.service's socket, for an administrator on a server. */
		if (access(sock, F_OK) != 0 && access(SERVICE_SOCKET, F_OK) == 0)
			snprintf(sock, sizeof sock, "%s", SERVICE_SOCKET);
	}
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			json_out = true;
		} else if (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0) {
			if (++i == argc)
				die(EXIT_USAGE, "%s needs a path", a);
			snprintf(sock, sizeof sock, "%s", argv[i]);
		} else if (strncmp(a, "--socket=", 9) == 0) {
			snprintf(sock, sizeof sock, "%s", a + 9);
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--version") == 0) {
			printf("notifyctl %s (control protocol %d)\n", NOTIFYD_VERSION, PROTO_VERSION);
			return 0;
		} else {
			fprintf(stderr, "notifyctl: unknown option %s\n", a);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i == argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[i], "completion") == 0) {
		if (i + 2 != argc || strcmp(argv[i + 1], "bash") != 0)
			die(EXIT_USAGE, "usage: notifyctl completion bash");
		completion_bash(stdout);
		return fflush(stdout) == 0 ? 0 : EXIT_FAILED;
	}
	if (strcmp(argv[i], "demo") == 0)
		return demo_main(sock, argc - i, argv + i);
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 == argc) {
			usage(stdout);
			return 0;
		}
		i++;
		if (strcmp(argv[i], "demo") == 0) {
			demo_help(stdout);
			return 0;
		}
		if ((i + 1 == argc || argv[i + 1][0] == '-') && group_help(stdout, argv[i]))
			return 0;
		command_help(stdout, find_command(argc, argv, &i));
		return 0;
	}
	const struct op *op = find_command(argc, argv, &i);
	json_t *args = parse_args(op, argc, argv, i, &json_out);
	/* Read by a person, show says how each channel went. */
	if (op == &op_show && !json_out && json_object_get(args, "deliveries") == NULL)
		json_object_set_new(args, "deliveries", json_true());

	struct line_reader r;
	int fd = connect_daemon(sock, &r);
	json_t *reply = request(fd, &r, op->name, args);
	char *line;
	size_t len;
	int status = 0;
	if (json_is_true(json_object_get(reply, "ok")) && (op->flags & OP_STREAM)) {
		/* Events, one per line, until notifyd hangs up or we are interrupted. */
		setvbuf(stdout, NULL, _IOLBF, 0);
		while (line_read(&r, &line, &len) == LINE_OK) {
			json_t *ev = json_loadb(line, len, 0, NULL);
			if (json_out || ev == NULL)
				printf("%.*s\n", (int)len, line);
			else
				print_event(stdout, ev);
			json_decref(ev);
		}
	} else if (json_is_true(json_object_get(reply, "ok"))) {
		json_t *result = json_object_get(reply, "result"), *w;
		size_t k;
		json_array_foreach(json_object_get(result, "warnings"), k, w)
			fprintf(stderr, "notifyctl: warning: %s\n",
			    json_string_value(json_object_get(w, "message")));
		if (json_out)
			print_json(stdout, result);
		else
			print_result(stdout, op, result);
		/*
		 * A result that says it is not ok fails: a check that found
		 * problems (and did not repair them all), a webhook test the
		 * endpoint did not answer with a 2xx.
		 */
		if (json_is_false(json_object_get(result, "ok")))
			status = EXIT_FAILED;
	} else {
		json_t *e = json_object_get(reply, "error");
		fprintf(stderr, "notifyctl: %s\n", json_string_value(json_object_get(e, "message")));
		status = EXIT_FAILED;
	}
	json_decref(reply);
	line_reader_free(&r);
	close(fd);
	if (fflush(stdout) != 0)
		die(EXIT_FAILED, "writing output: %s", strerror(errno));
	return status;
}
