/* webpush — VAPID (RFC 8292) and aes128gcm message encryption (RFC 8291). */
#define _GNU_SOURCE
#include "webpush.h"

#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "text.h"
#include "util.h"

struct vapid {
	pthread_mutex_t	 lock;
	struct store	*st;
	char		 path[4096];	/* DATA_DIR/vapid.pem */
	bool		 tried;		/* loaded, or failed to (and said why) once */
	char		*pem;		/* the private key, PKCS#8 PEM, as libjwt takes it */
	char		 pub[90];	/* base64url of the public point */
};

/* A P-256 key from its public point, and its private scalar when given. */
static EVP_PKEY *
p256_key(const unsigned char *priv, const unsigned char *pub)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *k = NULL;
	BIGNUM *bn = priv ? BN_bin2bn(priv, 32, NULL) : NULL;
	if (b == NULL || (priv && bn == NULL) ||
	    !OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, WEBPUSH_KEY_LEN) ||
	    (bn && !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, bn)) ||
	    (params = OSSL_PARAM_BLD_to_param(b)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &k, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
	    params) <= 0)
		k = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_clear_free(bn);
	return k;
}

/* The uncompressed public point of k. */
static bool
p256_public(EVP_PKEY *k, unsigned char out[WEBPUSH_KEY_LEN])
{
	size_t len = 0;
	char group[32] = "";
	return EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
	    sizeof group, NULL) && strcmp(group, "prime256v1") == 0 &&
	    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out,
	    WEBPUSH_KEY_LEN, &len) && len == WEBPUSH_KEY_LEN && out[0] == 0x04;
}

bool
webpush_key_valid(const unsigned char *key, size_t len)
{
	if (len != WEBPUSH_KEY_LEN || key[0] != 0x04)
		return false;
	EVP_PKEY *k = p256_key(NULL, key);
	EVP_PKEY_CTX *ctx = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
	bool ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(k);
	return ok;
}

/* A fresh key pair as PKCS#8 PEM (malloc'd). */
static char *
fresh_pem(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL, *data;
	if (k != NULL && bio != NULL && PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL,
	    NULL) == 1) {
		long n = BIO_get_mem_data(bio, &data);
		pem = n > 0 ? strndup(data, (size_t)n) : NULL;
	}
	BIO_free(bio);
	EVP_PKEY_free(k);
	return pem;
}

int
vapid_open(struct vapid **out, struct store *st, const char *data_dir, char *err, size_t errlen)
{
	struct vapid *v = calloc(1, sizeof *v);
	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&v->lock, NULL);
	v->st = st;
	snprintf(v->path, sizeof v->path, "%s/vapid.pem", data_dir);
	*out = v;
	return 0;
}

/*
 * Load the key, or make and keep one, the first time it is wanted: not at
 * start, where OpenSSL's first use (its providers, a P-256 key made in
 * case none is kept) would add 2.6 MiB to an idle notifyd. Has v a key?
 */
static bool
vapid_load(struct vapid *v)
{
	char got[1024], err[sizeof v->path + 128];
	pthread_mutex_lock(&v->lock);
	if (v->tried)
		goto done;
	v->tried = true;
	char *fresh = fresh_pem();
	EVP_PKEY *k = NULL;
	unsigned char pub[WEBPUSH_KEY_LEN];
	if (fresh == NULL) {
		snprintf(err, sizeof err, "no VAPID key could be made");
		goto fail;
	}
	if (secret_load(v->st, "vapid_private_key", v->path, fresh, got, sizeof got, err,
	    sizeof err) < 0)
		goto fail;
	BIO *bio = BIO_new_mem_buf(got, -1);
	k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (k == NULL || !p256_public(k, pub)) {
		snprintf(err, sizeof err, "%s: not a P-256 private key in PEM", v->path);
		goto fail;
	}
	base64url_encode(pub, sizeof pub, v->pub);
	if ((v->pem = strdup(got)) == NULL)
		snprintf(err, sizeof err, "out of memory");
fail:
	if (v->pem == NULL)
		log_error("no VAPID key: Web Push is off until notifyd restarts", "error=%s", err);
	EVP_PKEY_free(k);
	explicit_bzero(got, sizeof got);
	if (fresh != NULL)
		explicit_bzero(fresh, strlen(fresh));
	free(fresh);
done:
	pthread_mutex_unlock(&v->lock);
	return v->pem != NULL;
}

void
vapid_close(struct vapid *v)
{
	if (v == NULL)
		return;
	if (v->pem != NULL)
		explicit_bzero(v->pem, strlen(v->pem));
	free(v->pem);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

const char *
vapid_public_key(struct vapid *v)
{
	return vapid_load(v) ? v->pub : NULL;
}

char *
vapid_authorization(struct vapid *v, const char *endpoint, const char *subject, int64_t now)
{
	/* The audience is the endpoint's origin: scheme, host and port. */
	const char *host = strstr(endpoint, "://");
	if (host == NULL || !vapid_load(v))
		return NULL;
	size_t olen = (size_t)(host + 3 - endpoint) + strcspn(host + 3, "/?#");
	char aud[512];
	if (olen >= sizeof aud)
		return NULL;
	snprintf(aud, sizeof aud, "%.*s", (int)olen, endpoint);

	jwt_t *jwt = NULL;
	char *token = NULL, *out = NULL;
	if (jwt_new(&jwt) != 0)
		return NULL;
	if (jwt_add_grant(jwt, "aud", aud) == 0 &&
	    jwt_add_grant_int(jwt, "exp", (long)(now / 1000 + 12 * 3600)) == 0 &&
	    jwt_add_grant(jwt, "sub", subject) == 0 &&
	    jwt_set_alg(jwt, JWT_ALG_ES256, (const unsigned char *)v->pem,
	    (int)strlen(v->pem)) == 0)
		token = jwt_encode_str(jwt);
	jwt_free(jwt);
	if (token != NULL && asprintf(&out, "vapid t=%s, k=%s", token, v->pub) < 0)
		out = NULL;
	free(token);
	return out;
}

/* HKDF with SHA-256 and one block of output, as RFC 8291 uses it: the first n bytes. */
static bool
hkdf(const unsigned char *salt, size_t slen, const unsigned char *ikm, size_t ilen,
    const unsigned char *info, size_t nlen, unsigned char *out, size_t n)
{
	unsigned char prk[32], t[32], in[256];
	unsigned int len = 0;
	if (nlen + 1 > sizeof in ||
	    HMAC(EVP_sha256(), salt, (int)slen, ikm, ilen, prk, &len) == NULL)
		return false;
	memcpy(in, info, nlen);
	in[nlen] = 0x01;
	bool ok = HMAC(EVP_sha256(), prk, sizeof prk, in, nlen + 1, t, &len) != NULL;
	memcpy(out, t, n);
	explicit_bzero(prk, sizeof prk);
	explicit_bzero(t, sizeof t);
	return ok;
}

int
webpush_encrypt(const void *plain, size_t len, const unsigned char ua_public[65],
    const unsigned char auth[16], const unsigned char *as_private,
    const unsigned char *as_public, const unsigned char *salt_in, struct buf *out)
{
	unsigned char salt[16], as_pub[WEBPUSH_KEY_LEN], secret[32], ikm[32], cek[16], nonce[12];
	unsigned char info[14 + 2 * WEBPUSH_KEY_LEN], tag[16];
	EVP_PKEY *as = NULL, *ua = NULL;
	EVP_PKEY_CTX *dctx = NULL;
	EVP_CIPHER_CTX *cctx = NULL;
	unsigned char *ct = NULL;
	size_t slen = sizeof secret;
	int n = 0, fin = 0, rc = -1;

	if (len > WEBPUSH_MAX - WEBPUSH_OVERHEAD)
		return -1;
	if (salt_in != NULL)
		memcpy(salt, salt_in, sizeof salt);
	else if (RAND_bytes(salt, sizeof salt) != 1)
		return -1;
	as = as_private ? p256_key(as_private, as_public) : EVP_PKEY_Q_keygen(NULL, NULL, "EC",
	    "P-256");
	ua = p256_key(NULL, ua_public);
	if (as == NULL || ua == NULL || !p256_public(as, as_pub))
		goto done;
	/* The shared secret, and from it and the auth secret the input keying material. */
	if ((dctx = EVP_PKEY_CTX_new(as, NULL)) == NULL || EVP_PKEY_derive_init(dctx) <= 0 ||
	    EVP_PKEY_derive_set_peer(dctx, ua) <= 0 ||
	    EVP_PKEY_derive(dctx, secret, &slen) <= 0 || slen != sizeof secret)
		goto done;
	memcpy(info, "WebPush: info", 14);	/* with its NUL */
	memcpy(info + 14, ua_public, WEBPUSH_KEY_LEN);
	memcpy(info + 14 + WEBPUSH_KEY_LEN, as_pub, WEBPUSH_KEY_LEN);
	if (!hkdf(auth, WEBPUSH_AUTH_LEN, secret, sizeof secret, info, sizeof info, ikm,
	    sizeof ikm) ||
	    !hkdf(salt, sizeof salt, ikm, sizeof ikm,
	    (const unsigned char *)"Content-Encoding: aes128gcm", 28, cek, sizeof cek) ||
	    !hkdf(salt, sizeof salt, ikm, sizeof ikm,
	    (const unsigned char *)"Content-Encoding: nonce", 24, nonce, sizeof nonce))
		goto done;
	/* One record: the message, then its delimiter (2: the last record). */
	if ((ct = malloc(len + 1 + 16)) == NULL || (cctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(cctx, EVP_aes_128_gcm(), NULL, cek, nonce) != 1 ||
	    EVP_EncryptUpdate(cctx, ct, &n, plain, (int)len) != 1 ||
	    EVP_EncryptUpdate(cctx, ct + n, &fin, (const unsigned char *)"\x02", 1) != 1)
		goto done;
	n += fin;
	if (EVP_EncryptFinal_ex(cctx, ct + n, &fin) != 1)
		goto done;
	n += fin;
	if (EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, sizeof tag, tag) != 1)
		goto done;
	/* The header: salt, record size, key id (the sender's public key). */
	unsigned char rs[5] = {0x00, 0x00, 0x10, 0x00, WEBPUSH_KEY_LEN};
	buf_put(out, salt, sizeof salt);
	buf_put(out, rs, sizeof rs);
	buf_put(out, as_pub, sizeof as_pub);
	buf_put(out, ct, (size_t)n);
	buf_put(out, tag, sizeof tag);
	rc = 0;
done:
	explicit_bzero(secret, sizeof secret);
	explicit_bzero(ikm, sizeof ikm);
	explicit_bzero(cek, sizeof cek);
	free(ct);
	EVP_CIPHER_CTX_free(cctx);
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(as);
	EVP_PKEY_free(ua);
	return rc;
}
