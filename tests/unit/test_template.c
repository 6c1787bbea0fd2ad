/* Unit tests: the template dialect and template sets. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "template.h"
#include "util.h"

/* Render src over the JSON object ctx; returns a malloc'd string, or NULL with err set. */
static char *
render(const char *src, const char *ctx_json, bool html, char *err, size_t errlen)
{
	struct tpl *t;
	struct buf b;
	if (tpl_compile(src, strlen(src), "t", &t, err, errlen) != 0)
		return NULL;
	json_t *ctx = json_loads(ctx_json, 0, NULL);
	assert_non_null(ctx);
	buf_init(&b);
	tpl_render(t, &ctx, 1, html, &b);
	tpl_free(t);
	json_decref(ctx);
	char *s = buf_take(&b);
	return s ? s : strdup("");
}

static void
check(const char *src, const char *ctx, bool html, const char *want)
{
	char err[256] = "";
	char *got = render(src, ctx, html, err, sizeof err);
	if (got == NULL)
		fail_msg("compile of %s failed: %s", src, err);
	if (strcmp(got, want) != 0)
		fail_msg("render of '%s': got '%s', want '%s'", src, got, want);
	free(got);
}

static void
check_error(const char *src, const char *want)
{
	char err[256] = "";
	char *got = render(src, "{}", false, err, sizeof err);
	if (got != NULL)
		fail_msg("'%s' compiled, rendering '%s'", src, got);
	if (strstr(err, want) == NULL)
		fail_msg("'%s': error '%s' lacks '%s'", src, err, want);
}

static void
test_variables(void **state)
{
	(void)state;
	check("Hi {{name}}!", "{\"name\":\"Ann\"}", false, "Hi Ann!");
	check("{{ name }}", "{\"name\":\"Ann\"}", false, "Ann");
	check("{{a.b.c}}", "{\"a\":{\"b\":{\"c\":\"deep\"}}}", false, "deep");
	check("[{{missing}}][{{a.missing}}][{{name.x}}]", "{\"name\":\"s\",\"a\":{}}", false, "[][][]");
	check("{{n}} {{r}} {{t}} {{f}} {{z}}", "{\"n\":42,\"r\":2.5,\"t\":true,\"f\":false,\"z\":null}",
	    false, "42 2.5 true  ");
	check("{{items.1.name}}", "{\"items\":[{\"name\":\"a\"},{\"name\":\"b\"}]}", false, "b");
	check("{{o}}", "{\"o\":{\"x\":1}}", false, "");
	check("no tags at all", "{}", false, "no tags at all");
	check("", "{}", false, "");
	check("a { b } {c}", "{}", false, "a { b } {c}");
}

static void
test_escaping(void **state)
{
	(void)state;
	const char *ctx = "{\"x\":\"<a href=\\\"q\\\">'&'</a>\"}";
	check("{{x}}", ctx, true, "&lt;a href=&quot;q&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
	check("{{x}}", ctx, false, "<a href=\"q\">'&'</a>");
	check("{{{x}}}", ctx, true, "<a href=\"q\">'&'</a>");
	check("{{&x}}", ctx, true, "<a href=\"q\">'&'</a>");
	check("{{! a comment }}x", "{}", false, "x");
}

static void
test_sections(void **state)
{
	(void)state;
	const char *ctx = "{\"items\":[{\"n\":\"a\"},{\"n\":\"b\"}],\"empty\":[],\"yes\":true,"
	    "\"no\":false,\"obj\":{\"k\":\"v\"},\"s\":\"str\",\"top\":\"T\",\"words\":[\"x\",\"y\"]}";
	check("{{#items}}<{{n}}>{{/items}}", ctx, false, "<a><b>");
	check("{{#items}}{{n}}{{top}}{{/items}}", ctx, false, "aTbT");
	check("{{#words}}{{.}},{{/words}}", ctx, false, "x,y,");
	check("{{#empty}}X{{/empty}}{{^empty}}none{{/empty}}", ctx, false, "none");
	check("{{#yes}}Y{{/yes}}{{#no}}N{{/no}}{{^no}}!N{{/no}}", ctx, false, "Y!N");
	check("{{#obj}}{{k}}{{/obj}}", ctx, false, "v");
	check("{{#s}}[{{s}}]{{/s}}", ctx, false, "[str]");
	check("{{#missing}}X{{/missing}}{{^missing}}M{{/missing}}", ctx, false, "M");
	check("{{#items}}{{#yes}}{{n}}{{/yes}}{{/items}}", ctx, false, "ab");
	/* A section tag alone on its line takes the line with it. */
	check("list:\n{{#items}}\n- {{n}}\n{{/items}}\nend\n", ctx, false, "list:\n- a\n- b\nend\n");
	check("  {{#yes}}  \nin\n  {{/yes}}\n", ctx, false, "in\n");
	check("a {{#yes}}b{{/yes}} c\n", ctx, false, "a b c\n");
	check("{{! comment }}\nline\n", ctx, false, "line\n");
}

static void
test_errors(void **state)
{
	(void)state;
	check_error("Hi {{name", "t:1: '{{' is never closed");
	check_error("a\nb\n{{{raw}}", "t:3: '{{{' is never closed");
	check_error("{{#a}}x", "t:1: section 'a' is never closed");
	check_error("x\n{{#a}}\n{{/b}}", "t:3: '{{/b}}' closes 'a' opened at line 2");
	check_error("{{/a}}", "closes no section");
	check_error("{{}}", "is not a variable name");
	check_error("{{a b}}", "is not a variable name");
	check_error("{{a..b}}", "is not a variable name");
	check_error("{{=<% %>=}}", "is not a variable name");
	char deep[2048] = "", *p = deep;
	for (int i = 0; i < 40; i++)
		p += sprintf(p, "{{#a}}");
	check_error(deep, "nest deeper");
}

static void
test_uses(void **state)
{
	(void)state;
	struct tpl *t;
	char err[128];
	assert_int_equal(tpl_compile("{{user.name}} {{users}}", 23, "t", &t, err, sizeof err), 0);
	assert_true(tpl_uses(t, "user"));
	assert_false(tpl_uses(t, "use"));
	tpl_free(t);
	assert_int_equal(tpl_compile("{{username}}", 12, "t", &t, err, sizeof err), 0);
	assert_false(tpl_uses(t, "user"));
	tpl_free(t);
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
test_set_embedded(void **state)
{
	(void)state;
	struct template_set *s;
	char err[256];
	static const char *const builtin[] = {"digest", "match_created", "message", "order_created",
	    "order_delivered", "order_shipped", "payment_failed", "payment_succeeded",
	    "payout_completed", "refund_issued"};
	assert_int_equal(template_set_load(NULL, &s, err, sizeof err), 0);
	assert_int_equal(template_set_count(s), sizeof builtin / sizeof *builtin);
	for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++)
		assert_string_equal(template_set_at(s, i)->name, builtin[i]);
	assert_true(template_set_type(s, "payment_failed")->critical);
	assert_false(template_set_type(s, "order_shipped")->critical);
	assert_int_equal(template_set_type(s, "match_created")->channels, CHANNEL_IN_APP | CHANNEL_PUSH);
	assert_int_equal(template_set_type(s, "order_shipped")->channels,
	    CHANNEL_IN_APP | CHANNEL_EMAIL | CHANNEL_PUSH);
	assert_int_equal(template_set_type(s, "digest")->channels, CHANNEL_EMAIL);
	assert_string_equal(template_set_type_or_default(s, "nope")->name, "message");

	json_t *n = json_pack("{s:s, s:s, s:{s:s, s:s}}", "user", "ann", "type", "order_shipped",
	    "data", "order_id", "A-1", "carrier", "<DHL>");
	json_t *u = json_pack("{s:s, s:s}", "name", "Ann & Co", "email", "ann@example.com");
	const struct template_type *t = template_set_type(s, "order_shipped");
	struct buf b;
	buf_init(&b);
	template_render(s, t, TP_TITLE, n, u, &b);
	assert_string_equal(b.data, "Order A-1 has shipped");
	buf_reset(&b);
	template_render(s, t, TP_BODY, n, u, &b);
	assert_string_equal(b.data, "Your order A-1 is on its way with <DHL>.");
	/* The email HTML is escaped and sits in the layout. */
	json_object_set_new(n, "title", json_string("Order A-1 has shipped"));
	json_object_set_new(n, "body", json_string("on its way with <DHL>"));
	buf_reset(&b);
	template_render(s, t, TP_HTML, n, u, &b);
	assert_non_null(strstr(b.data, "<!DOCTYPE html>"));
	assert_non_null(strstr(b.data, "Hi Ann &amp; Co,"));
	assert_non_null(strstr(b.data, "with &lt;DHL&gt;"));
	assert_non_null(strstr(b.data, "<title>Order A-1 has shipped</title>"));
	buf_reset(&b);
	template_render(s, t, TP_SUBJECT, n, NULL, &b);
	assert_string_equal(b.data, "Order A-1 has shipped");
	buf_free(&b);
	json_decref(n);
	json_decref(u);
	template_set_unref(s);
}

static void
test_set_override(void **state)
{
	(void)state;
	char dir[] = "/tmp/notifyd-tpl-XXXXXX", err[512];
	struct template_set *s;
	assert_non_null(mkdtemp(dir));

	write_file(dir, "order_shipped.title", "Shipped: {{order_id}}\n");
	write_file(dir, "custom.title", "Custom {{x}}");
	write_file(dir, "custom.meta", "# mine\nchannels = email\ncritical = true\n");
	write_file(dir, "README.md", "ignored");
	assert_int_equal(template_set_load(dir, &s, err, sizeof err), 0);
	const struct template_type *t = template_set_type(s, "order_shipped");
	assert_non_null(strstr(t->source[TP_TITLE], "order_shipped.title"));
	assert_string_equal(t->source[TP_BODY], "embedded");
	t = template_set_type(s, "custom");
	assert_non_null(t);
	assert_true(t->critical);
	assert_int_equal(t->channels, CHANNEL_EMAIL);
	assert_string_equal(t->source[TP_SUBJECT], "embedded");	/* message's */
	template_set_unref(s);

	/* A broken file names itself and its line. */
	write_file(dir, "order_shipped.body", "ok\n{{#x}}\n");
	assert_int_equal(template_set_load(dir, &s, err, sizeof err), -1);
	assert_non_null(strstr(err, "order_shipped.body:2: section 'x' is never closed"));
	unlink(strcat(strcpy(err, dir), "/order_shipped.body"));
	write_file(dir, "custom.meta", "channels = email sms\n");
	assert_int_equal(template_set_load(dir, &s, err, sizeof err), -1);
	assert_non_null(strstr(err, "custom.meta:1: unknown channel 'sms'"));
	write_file(dir, "custom.meta", "critical = maybe\n");
	assert_int_equal(template_set_load(dir, &s, err, sizeof err), -1);
	assert_non_null(strstr(err, "custom.meta:1: critical must be true or false"));
	unlink(strcat(strcpy(err, dir), "/custom.meta"));
	write_file(dir, "order_shipped.titel", "typo");
	assert_int_equal(template_set_load(dir, &s, err, sizeof err), -1);
	assert_non_null(strstr(err, "order_shipped.titel: not a template file"));
	assert_int_equal(template_set_load("/nonexistent/dir", &s, err, sizeof err), -1);
	assert_non_null(strstr(err, "/nonexistent/dir"));

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * Sections nested over an array multiply: four levels over 1000 items are
 * 10^12 renders. The render stops at its bounds, quickly, and says so.
 */
static void
test_render_bounded(void **state)
{
	(void)state;
	static const char *const srcs[] = {
		"{{#a}}{{#a}}{{#a}}{{#a}}x{{/a}}{{/a}}{{/a}}{{/a}}",
		"{{#a}}{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}{{/a}}",	/* nothing written, all work */
	};
	json_t *ctx = json_pack("{s:[]}", "a");
	for (int i = 0; i < 1000; i++)
		json_array_append_new(json_object_get(ctx, "a"), json_integer(i));
	for (size_t k = 0; k < sizeof srcs / sizeof srcs[0]; k++) {
		struct tpl *t;
		char err[128];
		struct buf b;
		struct timespec t0, t1;
		assert_int_equal(tpl_compile(srcs[k], strlen(srcs[k]), "t", &t, err, sizeof err), 0);
		buf_init(&b);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_false(tpl_render(t, &ctx, 1, false, &b));
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_true(b.len <= TPL_MAX_OUTPUT + 16);
		double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		assert_true(took < 60.0);	/* valgrind is slow; unbounded it never ends */
		buf_free(&b);
		tpl_free(t);
	}
	/* Within the bounds a render is whole. */
	struct tpl *t;
	char err[128];
	struct buf b;
	assert_int_equal(tpl_compile("{{#a}}{{.}}{{/a}}", 17, "t", &t, err, sizeof err), 0);
	buf_init(&b);
	assert_true(tpl_render(t, &ctx, 1, false, &b));
	buf_free(&b);
	tpl_free(t);
	json_decref(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_variables),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_render_bounded),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_uses),
		cmocka_unit_test(test_set_embedded),
		cmocka_unit_test(test_set_override),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
