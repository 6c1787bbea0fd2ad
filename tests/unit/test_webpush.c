/* Unit tests: Web Push message encryption (RFC 8291) and webhook signatures. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "text.h"
#include "util.h"
#include "webhook.h"
#include "webpush.h"

static size_t
b64u(const char *s, unsigned char *out)
{
	ssize_t n = base64url_decode(s, strlen(s), out);
	assert_true(n > 0);
	return (size_t)n;
}

/* RFC 8291, appendix A: fixed keys and salt give the RFC's message, byte for byte. */
static void
test_rfc8291_example(void **state)
{
	(void)state;
	unsigned char ua[100], auth[32], as_priv[64], as_pub[100], salt[32];
	assert_int_equal(b64u("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8"
	    "pZGH6SRpkNtoIAiw4", ua), 65);
	assert_int_equal(b64u("BTBZMqHH6r4Tts7J_aSIgg", auth), 16);
	assert_int_equal(b64u("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw", as_priv), 32);
	assert_int_equal(b64u("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6Tl"
	    "zAC8wEqKK6PBru3jl7A8", as_pub), 65);
	assert_int_equal(b64u("DGv6ra1nlYgDCS1FRnbzlw", salt), 16);
	const char *plain = "When I grow up, I want to be a watermelon";
	struct buf out;
	buf_init(&out);
	assert_int_equal(webpush_encrypt(plain, strlen(plain), ua, auth, as_priv, as_pub, salt,
	    &out), 0);
	char *got = malloc(out.len * 2 + 4);
	base64url_encode(out.data, out.len, got);
	assert_string_equal(got, "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
	    "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3o"
	    "ZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN");
	free(got);

	/* A fresh sender key and salt: the same size, different bytes. */
	struct buf again;
	buf_init(&again);
	assert_int_equal(webpush_encrypt(plain, strlen(plain), ua, auth, NULL, NULL, NULL,
	    &again), 0);
	assert_int_equal(again.len, out.len);
	assert_memory_not_equal(again.data, out.data, out.len);
	buf_free(&again);
	buf_free(&out);
}

static void
test_webpush_limits(void **state)
{
	(void)state;
	unsigned char ua[100], auth[16] = {0};
	b64u("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
	    ua);
	assert_true(webpush_key_valid(ua, 65));
	assert_false(webpush_key_valid(ua, 64));
	ua[40] ^= 1;	/* off the curve */
	assert_false(webpush_key_valid(ua, 65));
	ua[40] ^= 1;
	char *big = calloc(1, WEBPUSH_MAX);
	struct buf out;
	buf_init(&out);
	assert_int_equal(webpush_encrypt(big, WEBPUSH_MAX - WEBPUSH_OVERHEAD, ua, auth, NULL, NULL,
	    NULL, &out), 0);
	assert_int_equal(out.len, WEBPUSH_MAX);
	assert_int_equal(webpush_encrypt(big, WEBPUSH_MAX - WEBPUSH_OVERHEAD + 1, ua, auth, NULL,
	    NULL, NULL, &out), -1);
	buf_free(&out);
	free(big);
}

/* The Standard Webhooks example: this secret, id, time and body sign to this. */
static void
test_webhook_signature(void **state)
{
	(void)state;
	char sig[128];
	const char *body = "{\"test\": 2432232314}";
	assert_true(webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
	    1614265330, body, strlen(body), sig, sizeof sig));
	assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* A secret without the prefix is used as it is. */
	assert_true(webhook_sign("0123456789abcdef", "x", 1, "", 0, sig, sizeof sig));
	assert_false(webhook_sign("whsec_!!!", "x", 1, "", 0, sig, sizeof sig));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8291_example),
		cmocka_unit_test(test_webpush_limits),
		cmocka_unit_test(test_webhook_signature),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
