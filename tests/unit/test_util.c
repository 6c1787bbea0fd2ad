/* Unit tests: time, durations, UTF-8, buffers and the config parser. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "proto.h"
#include "text.h"
#include "util.h"

static void
test_rfc3339_roundtrip(void **state)
{
	(void)state;
	char s[40];
	int64_t ms;
	time_format_rfc3339(s, sizeof s, 1795428672345LL);
	assert_string_equal(s, "2026-11-23T10:11:12.345Z");
	assert_true(time_parse_rfc3339(s, &ms));
	assert_int_equal(ms, 1795428672345LL);
	assert_true(time_parse_rfc3339("2026-11-23T11:11:12+01:00", &ms));
	assert_int_equal(ms, 1795428672000LL);
	assert_true(time_parse_rfc3339("1970-01-01T00:00:00Z", &ms));
	assert_int_equal(ms, 0);
	time_format_rfc3339(s, sizeof s, -1);
	assert_string_equal(s, "1969-12-31T23:59:59.999Z");
}

/* A copy cut to fit, always ended, its source's length returned; a time cut the same way. */
static void
test_str_copy(void **state)
{
	(void)state;
	char s[8];
	memset(s, 'x', sizeof s);
	assert_int_equal(str_copy(s, sizeof s, "abc"), 3);
	assert_string_equal(s, "abc");
	assert_int_equal(str_copy(s, sizeof s, "abcdefgh"), 8);
	assert_string_equal(s, "abcdefg");
	assert_int_equal(str_copy(s, 1, "abc"), 3);
	assert_string_equal(s, "");
	s[0] = 'y';
	assert_int_equal(str_copy(s, 0, "abc"), 3);
	assert_int_equal(s[0], 'y');
	assert_int_equal(str_copy(s, sizeof s, ""), 0);
	assert_string_equal(s, "");
	s[0] = 'y';
	assert_int_equal(str_copy(s, sizeof s, NULL), 0);	/* a column SQLite could not give */
	assert_string_equal(s, "");
	time_format_rfc3339(s, sizeof s, 1795428672345LL);
	assert_string_equal(s, "2026-11");
}

static void
test_rfc3339_rejects(void **state)
{
	(void)state;
	int64_t ms;
	const char *bad[] = {"", "2026-11-23", "2026-11-23T10:11:12", "2026-13-01T00:00:00Z",
	    "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-11-23T24:00:00Z",
	    "2026-11-23T10:11:12.Z", "2026-11-23T10:11:12Zjunk", "2026-11-23T10:11:12+0100",
	    NULL};
	for (int i = 0; bad[i]; i++)
		assert_false(time_parse_rfc3339(bad[i], &ms));
	assert_true(time_parse_rfc3339("2024-02-29T00:00:00Z", &ms));
}

/* A scheduled send's time: RFC 3339 as it is, or + a duration from now. */
static void
test_time_at(void **state)
{
	(void)state;
	int64_t ms, now = 1795428672345LL;
	assert_true(time_parse_at("+15m", now, &ms));
	assert_int_equal(ms, now + 15 * 60000);
	assert_true(time_parse_at("+1h30m", now, &ms));
	assert_int_equal(ms, now + 90 * 60000);
	assert_true(time_parse_at("+0s", now, &ms));
	assert_int_equal(ms, now);
	assert_true(time_parse_at("2026-11-23T11:11:12+01:00", now, &ms));
	assert_int_equal(ms, 1795428672000LL);
	ms = -7;
	const char *bad[] = {"", "+", "15m", "+15", "+-15m", "++15m", "+15 m", " +15m", "+15m ",
	    "+1.5h", "-15m", "+9223372036854775807ms", NULL};
	for (int i = 0; bad[i]; i++) {
		assert_false(time_parse_at(bad[i], now, &ms));
		assert_int_equal(ms, -7);
	}
	/* At the end of the clock, no wrap into the past. */
	assert_false(time_parse_at("+2ms", INT64_MAX - 1, &ms));
	assert_true(time_parse_at("+1ms", INT64_MAX - 1, &ms));
	assert_int_equal(ms, INT64_MAX);
}

static void
test_duration(void **state)
{
	(void)state;
	int64_t ms;
	assert_true(duration_parse("90s", &ms));
	assert_int_equal(ms, 90000);
	assert_true(duration_parse("1h30m", &ms));
	assert_int_equal(ms, 5400000);
	assert_true(duration_parse("500ms", &ms));
	assert_int_equal(ms, 500);
	assert_true(duration_parse("7d", &ms));
	assert_int_equal(ms, 7 * 86400000LL);
	assert_false(duration_parse("", &ms));
	assert_false(duration_parse("10", &ms));
	assert_false(duration_parse("5x", &ms));
	assert_false(duration_parse("-5s", &ms));
	assert_false(duration_parse("99999999999999999999s", &ms));
}

static void
test_utf8(void **state)
{
	(void)state;
	assert_true(utf8_valid("héllo ✓ 😀", strlen("héllo ✓ 😀"), false));
	assert_false(utf8_valid("a\x01", 2, false));
	assert_true(utf8_valid("a\tb\n", 4, true));
	assert_false(utf8_valid("\xc3", 1, true));		/* truncated */
	assert_false(utf8_valid("\xc0\xaf", 2, true));		/* overlong */
	assert_false(utf8_valid("\xed\xa0\x80", 3, true));	/* surrogate */
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4, true));	/* > U+10FFFF */
	assert_false(utf8_valid("a\0b", 3, true));
}

/* base64 and base64url (text.c, through OpenSSL) against known answers and each other. */
static void
test_base64(void **state)
{
	(void)state;
	static const struct {
		const char *raw, *b64, *url;
	} known[] = {
		{"", "", ""},
		{"f", "Zg==", "Zg"},
		{"fo", "Zm8=", "Zm8"},
		{"foo", "Zm9v", "Zm9v"},
		{"\xfb\xff\xfe", "+//+", "-__-"},
		{"hello, world", "aGVsbG8sIHdvcmxk", "aGVsbG8sIHdvcmxk"},
	};
	unsigned char out[64];
	char url[80];	/* 4 * ceil(48 / 3) + 1 = 65 at the most */
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
		size_t n = strlen(known[i].raw);
		char *b = base64_encode(known[i].raw, n);
		assert_string_equal(b, known[i].b64);
		free(b);
		assert_int_equal(base64_decode(known[i].b64, strlen(known[i].b64), out), n);
		assert_memory_equal(out, known[i].raw, n);
		base64url_encode(known[i].raw, n, url);
		assert_string_equal(url, known[i].url);
		assert_int_equal(base64url_decode(known[i].url, strlen(known[i].url), out), n);
		assert_memory_equal(out, known[i].raw, n);
	}
	assert_int_equal(base64_decode("Zm9", 3, out), -1);		/* not a multiple of 4 */
	assert_int_equal(base64_decode("Zm9*", 4, out), -1);		/* not the alphabet */
	assert_int_equal(base64url_decode("Zm9v+", 5, out), -1);	/* 5 chars: never */
	assert_int_equal(base64url_decode("+//+", 4, out), -1);		/* base64, not url */
	assert_int_equal(base64url_decode("Zm9v", 2, out), 1);		/* only len chars */
	assert_int_equal(out[0], 'f');
	/* Every length and byte value round-trips. */
	unsigned char raw[48];
	for (size_t n = 0; n <= sizeof raw; n++) {
		for (size_t i = 0; i < n; i++)
			raw[i] = (unsigned char)(i * 37 + n);
		base64url_encode(raw, n, url);
		assert_int_equal(base64url_decode(url, strlen(url), out), n);
		assert_memory_equal(out, raw, n);
	}
}

static void
test_buf_grows(void **state)
{
	(void)state;
	char small[4];
	struct buf b;
	buf_init_stack(&b, small, sizeof small);
	for (int i = 0; i < 1000; i++)
		buf_printf(&b, "%d,", i);
	assert_false(b.oom);
	assert_false(b.on_stack);
	assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
	char *s = buf_take(&b);
	assert_int_equal(strlen(s), 3890);
	free(s);
}

/* Write text to a temporary config file and load it into cfg. */
static int
load(struct config *cfg, const char *text, char *err, size_t errlen)
{
	char path[] = "/tmp/notifyd-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	int rc = config_load_file(cfg, path, err, errlen);
	unlink(path);
	/* Show only the part after the path, which is random. */
	char *colon = strchr(err, ':');
	if (rc != 0 && colon != NULL)
		memmove(err, colon + 1, strlen(colon));
	return rc;
}

static void
test_config_file(void **state)
{
	(void)state;
	struct config cfg;
	char err[512] = "";
	assert_int_equal(config_init(&cfg, err, sizeof err), 0);
	assert_string_equal(cfg.http_listen, "127.0.0.1:8025");
	assert_int_equal(cfg.store_busy_timeout, 5000);
	assert_int_equal(load(&cfg, "; comment\n[http]\nlisten = 0.0.0.0:9000\n"
	    "[store]\nbusy_timeout = 1m\nsync = normal\n", err, sizeof err), 0);
	assert_string_equal(cfg.http_listen, "0.0.0.0:9000");
	assert_int_equal(cfg.store_busy_timeout, 60000);
	assert_string_equal(cfg.store_sync, "normal");

	assert_int_equal(load(&cfg, "[http]\nlisten = 1.2.3.4:1\n\n[http]\nport = 3\n", err,
	    sizeof err), -1);
	assert_string_equal(err, "5: unknown key 'port' in section [http]");
	assert_int_equal(load(&cfg, "[nope]\n", err, sizeof err), -1);
	assert_string_equal(err, "1: unknown section [nope]");
	assert_int_equal(load(&cfg, "[server]\n[bogus]\nx = 1\n", err, sizeof err), -1);
	assert_string_equal(err, "2: unknown section [bogus]");
	assert_int_equal(load(&cfg, "\n\n[store]\nsync = sometimes\n", err, sizeof err), -1);
	assert_string_equal(err, "4: store.sync: 'sometimes' is not one of full|normal");
	assert_int_equal(load(&cfg, "[smtp]\nlisten = localhost\n", err, sizeof err), -1);
	assert_string_equal(err, "2: smtp.listen: 'localhost' is not HOST:PORT or off");
	assert_int_equal(load(&cfg, "[control]\nmax_clients = 0\n", err, sizeof err), -1);
	assert_string_equal(err, "2: control.max_clients: '0' is not an integer from 1 to 10000");
	assert_int_equal(load(&cfg, "listen = x\n", err, sizeof err), -1);
	assert_string_equal(err, "1: key 'listen' outside any section; did you mean [http] listen?");
	assert_int_equal(load(&cfg, "[http]\nthis line is not ini\n", err, sizeof err), -1);
	assert_string_equal(err, "2: syntax error (expected [section] or key = value)");
	/* Nothing that failed changed what was set before. */
	assert_string_equal(cfg.store_sync, "normal");
	config_free(&cfg);
}

static void
test_config_env_and_listen(void **state)
{
	(void)state;
	struct config cfg;
	char err[512], host[64];
	int port;
	assert_int_equal(config_init(&cfg, err, sizeof err), 0);
	setenv("NOTIFYD_HTTP_LISTEN", "[::1]:8080", 1);
	assert_int_equal(config_load_env(&cfg, err, sizeof err), 0);
	assert_string_equal(cfg.http_listen, "[::1]:8080");
	assert_true(config_parse_listen(cfg.http_listen, host, sizeof host, &port));
	assert_string_equal(host, "::1");
	assert_int_equal(port, 8080);
	setenv("NOTIFYD_HTTP_LISTEN", "nonsense", 1);
	assert_int_equal(config_load_env(&cfg, err, sizeof err), -1);
	assert_non_null(strstr(err, "NOTIFYD_HTTP_LISTEN"));
	unsetenv("NOTIFYD_HTTP_LISTEN");
	assert_true(config_parse_listen("off", host, sizeof host, &port));
	assert_int_equal(port, -1);
	assert_false(config_parse_listen("1.2.3.4:70000", host, sizeof host, &port));
	assert_false(config_parse_listen(":80", host, sizeof host, &port));
	config_free(&cfg);
}

static void
test_default_socket(void **state)
{
	(void)state;
	char path[256], want[256];
	setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
	proto_default_socket(path, sizeof path);
	assert_string_equal(path, "/run/user/1234/notifyd.sock");
	unsetenv("XDG_RUNTIME_DIR");
	proto_default_socket(path, sizeof path);
	snprintf(want, sizeof want, "/tmp/notifyd-%u/notifyd.sock", (unsigned)getuid());
	assert_string_equal(path, want);
}

/* The formatter without gmtime agrees with gmtime over centuries, both signs of ms. */
static void
test_rfc3339_against_gmtime(void **state)
{
	(void)state;
	uint64_t x = 88172645463325252ULL;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* 1900 .. 2200, and the edges of each day and year. */
		int64_t ms = (int64_t)(x % 9467280000000ULL) - 2208988800000LL;
		if (i % 4 == 1)
			ms -= ms % 86400000;
		if (i % 4 == 2)
			ms -= ms % 86400000 + 1;
		char got[40], want[96];
		time_t secs = (time_t)(ms / 1000);
		int frac = (int)(ms % 1000);
		if (frac < 0) {
			frac += 1000;
			secs--;
		}
		struct tm tm;
		gmtime_r(&secs, &tm);
		snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
		time_format_rfc3339(got, sizeof got, ms);
		if (strcmp(got, want) != 0)
			fail_msg("%lld: %s, gmtime says %s", (long long)ms, got, want);
	}
}

/* buf_json_string writes what jansson's compact dump writes, byte for byte. */
static void
test_json_string_as_jansson(void **state)
{
	(void)state;
	static const char *const cases[] = {"", "plain", "quote \" and \\ back", "\t\n\r\b\f",
	    "\x01\x1f\x7f ctl", "ünïcödé ✓ 𝄞", "a/b", "end\\"};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf b;
		buf_init(&b);
		buf_json_string(&b, cases[i], strlen(cases[i]));
		json_t *j = json_string(cases[i]);
		char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		assert_string_equal(b.data, want);
		free(want);
		json_decref(j);
		buf_free(&b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3339_roundtrip),
		cmocka_unit_test(test_str_copy),
		cmocka_unit_test(test_rfc3339_against_gmtime),
		cmocka_unit_test(test_json_string_as_jansson),
		cmocka_unit_test(test_rfc3339_rejects),
		cmocka_unit_test(test_time_at),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_buf_grows),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_config_env_and_listen),
		cmocka_unit_test(test_default_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
