/* auth — API keys and user tokens; see auth.h. */
#define _GNU_SOURCE
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "events.h"
#include "log.h"
#include "ops.h"
#include "lineio.h"
#include "proto.h"
#include "store.h"
#include "text.h"
#include "util.h"

#define SECRET_BYTES 32

/* A recently used API key, so a request needs no query to check it. */
struct key_cache {
	unsigned char	 hash[32];
	int64_t		 id;
	int64_t		 touched;	/* ms: its last use as stored */
};
#define KEY_CACHE 64

struct auth {
	unsigned char	*secret;
	size_t		 secret_len;
	pthread_mutex_t	 klock;		/* guards keys and key_gen */
	struct key_cache keys[KEY_CACHE];
	uint64_t	 key_gen;	/* bumped by every revoke */
};

/*
 * A key was revoked (here or, sharing the database, elsewhere), or a
 * revoke may have been missed: forget every cached one.
 */
static void
on_event(const struct event *ev, void *arg)
{
	struct auth *a = arg;
	if (ev->type != EVENT_KEY_REVOKED && ev->type != EVENT_RESYNC)
		return;
	pthread_mutex_lock(&a->klock);
	memset(a->keys, 0, sizeof a->keys);
	a->key_gen++;
	pthread_mutex_unlock(&a->klock);
}

int
secret_load(struct store *st, const char *name, const char *path, const char *fresh,
    char *out, size_t n, char *err, size_t errlen)
{
	/* Shared by every node of the store (PostgreSQL)? */
	int rc = store_setting(st, name, fresh, out, n);
	if (rc < 0)
		snprintf(err, errlen, "the store has no %s to share", name);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write_all(fd, fresh, strlen(fresh)) != 0 || fsync(fd) != 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
		log_info("created a secret", "name=%s path=%s", name, path);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat sb;
	ssize_t len = read(fd, out, n - 1);
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
		log_warn("a secret is readable by others", "name=%s path=%s", name, path);
	close(fd);
	if (len < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	out[len] = '\0';
	return 0;
}

/* The token secret: shared by the store's nodes, or DATA_DIR/jwt.secret. */
static int
load_secret(struct auth *a, struct store *st, const char *data_dir, char *err, size_t errlen)
{
	unsigned char raw[SECRET_BYTES];
	char fresh[64], got[256], path[4096];
	/* The kernel's, not OpenSSL's: its first use costs an idle notifyd 2.4 MiB. */
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
		snprintf(err, errlen, "no random bytes for the token secret");
		return -1;
	}
	base64url_encode(raw, sizeof raw, fresh);
	snprintf(path, sizeof path, "%s/jwt.secret", data_dir);
	if (secret_load(st, "token_secret", path, fresh, got, sizeof got, err, errlen) < 0)
		return -1;
	size_t n = strlen(got);
	while (n > 0 && (got[n - 1] == '\n' || got[n - 1] == '\r'))
		got[--n] = '\0';
	if (n < 16) {
		snprintf(err, errlen, "%s: a token secret needs at least 16 bytes", path);
		return -1;
	}
	a->secret = (unsigned char *)strdup(got);
	a->secret_len = n;
	return a->secret ? 0 : -1;
}

int
auth_open(struct auth **out, struct store *st, const char *data_dir, const char *secret,
    char *err, size_t errlen)
{
	struct auth *a = calloc(1, sizeof *a);
	int rc = 0;
	if (a == NULL)
		return -1;
	if (secret != NULL && *secret != '\0') {
		if (strlen(secret) < 16) {
			snprintf(err, errlen, "auth.jwt_secret needs at least 16 bytes");
			rc = -1;
		} else {
			a->secret = (unsigned char *)strdup(secret);
			a->secret_len = strlen(secret);
		}
	} else {
		rc = load_secret(a, st, data_dir, err, errlen);
	}
	if (rc < 0) {
		free(a);
		return -1;
	}
	pthread_mutex_init(&a->klock, NULL);
	events_subscribe(on_event, a);
	*out = a;
	return 0;
}

void
auth_close(struct auth *a)
{
	if (a == NULL)
		return;
	events_unsubscribe(on_event, a);
	pthread_mutex_destroy(&a->klock);
	if (a->secret != NULL)
		memset(a->secret, 0, a->secret_len);
	free(a->secret);
	free(a);
}

/*
 * SHA-256 fetched once. OpenSSL 3's SHA256() looks the algorithm up in its
 * providers on every call: 1.7% of a create's CPU, for one hash of the key.
 */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void
auth_key_hash(const char *key, unsigned char hash[32])
{
	unsigned int len = 32;
	pthread_once(&sha256_once, sha256_fetch);
	if (sha256_md == NULL || EVP_Digest(key, strlen(key), hash, &len, sha256_md, NULL) != 1)
		SHA256((const unsigned char *)key, strlen(key), hash);
}

int
auth_key_new(char key[64], unsigned char hash[32])
{
	unsigned char raw[32];
	if (RAND_bytes(raw, sizeof raw) != 1)
		return -1;
	memcpy(key, "nk_", 3);
	base64url_encode(raw, sizeof raw, key + 3);
	auth_key_hash(key, hash);
	return 0;
}

int
auth_token_mint(struct auth *a, const char *user, int64_t now, int64_t ttl,
    char **token, int64_t *expires)
{
	jwt_t *jwt = NULL;
	int64_t exp = (now + ttl) / 1000;
	if (jwt_new(&jwt) != 0)
		return -1;
	int rc = jwt_add_grant(jwt, "sub", user) | jwt_add_grant_int(jwt, "iat", (long)(now / 1000)) |
	    jwt_add_grant_int(jwt, "exp", (long)exp) |
	    jwt_set_alg(jwt, JWT_ALG_HS256, a->secret, (int)a->secret_len);
	*token = rc == 0 ? jwt_encode_str(jwt) : NULL;
	jwt_free(jwt);
	if (*token == NULL)
		return -1;
	*expires = exp * 1000;
	return 0;
}

void
principal_clear(struct principal *who)
{
	free(who->user);
	memset(who, 0, sizeof *who);
}

/* Fill err with a 401 and return -1. */
static int
deny(struct op_error *err, const char *code, const char *message)
{
	err->status = 401;
	snprintf(err->code, sizeof err->code, "%s", code);
	snprintf(err->message, sizeof err->message, "%s", message);
	return -1;
}

int
auth_check_token(struct auth *a, const char *token, int64_t now,
    struct principal *who, struct op_error *err)
{
	memset(who, 0, sizeof *who);
	/* Three base64url parts; the header must name HS256 before we trust libjwt with it. */
	const char *dot1 = strchr(token, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	size_t hlen = dot1 ? (size_t)(dot1 - token) : 0;
	if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL || hlen == 0 || hlen > 1024 ||
	    strlen(token) > 8192)
		return deny(err, "malformed_credentials", "the token is not a JWT");
	unsigned char header[1024], payload[8192];
	ssize_t n = base64url_decode(token, hlen, header);
	json_error_t jerr;
	json_t *h = n > 0 ? json_load_bounded((const char *)header, (size_t)n, 0, &jerr, NULL) :
	    NULL;
	const char *alg = json_string_value(json_object_get(h, "alg"));
	if (alg == NULL) {
		json_decref(h);
		return deny(err, "malformed_credentials", "the token has no readable header");
	}
	if (strcmp(alg, "HS256") != 0) {
		json_decref(h);
		return deny(err, "unsupported_algorithm", "only HS256 tokens are accepted");
	}
	json_decref(h);
	if (dot2[1] == '\0')
		return deny(err, "invalid_signature", "the token is not signed");
	/* libjwt parses the claims before it checks the signature: bound them first. */
	n = base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload);
	if (n <= 0 || !json_depth_ok((const char *)payload, (size_t)n, JSON_MAX_DEPTH))
		return deny(err, "malformed_credentials", "the token's claims are not readable");

	jwt_t *jwt = NULL;
	if (jwt_decode(&jwt, token, a->secret, (int)a->secret_len) != 0 ||
	    jwt_get_alg(jwt) != JWT_ALG_HS256) {
		jwt_free(jwt);
		return deny(err, "invalid_signature", "the token's signature does not verify");
	}
	const char *sub = jwt_get_grant(jwt, "sub");
	errno = 0;
	long exp = jwt_get_grant_int(jwt, "exp");
	int exp_missing = errno != 0;
	if (sub == NULL || *sub == '\0' || strlen(sub) > 128 || exp_missing) {
		jwt_free(jwt);
		return deny(err, "invalid_claims", "the token needs a 'sub' string and an 'exp' time");
	}
	if ((int64_t)exp * 1000 <= now) {
		jwt_free(jwt);
		return deny(err, "token_expired", "the token has expired");
	}
	who->user = strdup(sub);
	who->expires = (int64_t)exp * 1000;
	jwt_free(jwt);
	return 0;
}

/*
 * Check an API key by its hash: 1 live (*id), 0 unknown or revoked, <0
 * not checked. A cached key needs no query; its use is noted in the
 * database at most once a minute, since a write per request would cost
 * a commit.
 */
static int
key_check(struct auth *a, struct store *st, const unsigned char hash[32], int64_t now,
    int64_t *id)
{
	struct key_cache *slot = &a->keys[(hash[0] | (unsigned)hash[1] << 8) % KEY_CACHE];
	int64_t last = 0;
	int rc;

	pthread_mutex_lock(&a->klock);
	uint64_t gen = a->key_gen;
	bool hit = slot->id > 0 && memcmp(slot->hash, hash, 32) == 0;
	if (hit) {
		*id = slot->id;
		last = slot->touched;
	}
	pthread_mutex_unlock(&a->klock);
	if (!hit && (rc = store_key_lookup(st, hash, id, &last)) <= 0)
		return rc;
	if (hit && now - last < 60000)
		return 1;
	if (now - last >= 60000 && store_key_touch(st, *id, now) > 0)
		last = now;
	/* Cache it unless a revoke ran meanwhile: what was read may be stale. */
	pthread_mutex_lock(&a->klock);
	if (a->key_gen == gen) {
		memcpy(slot->hash, hash, 32);
		slot->id = *id;
		slot->touched = last;
	}
	pthread_mutex_unlock(&a->klock);
	return 1;
}

int
auth_check(struct auth *a, struct store *st, const char *header, int64_t now,
    struct principal *who, struct op_error *err)
{
	memset(who, 0, sizeof *who);
	if (header == NULL || *header == '\0')
		return deny(err, "missing_credentials",
		    "send an API key or a user token as Authorization: Bearer ...");
	if (strncasecmp(header, "Bearer ", 7) != 0)
		return deny(err, "malformed_credentials",
		    "the Authorization header must be Bearer <key or token>");
	const char *cred = header + 7;
	while (*cred == ' ')
		cred++;
	if (strncmp(cred, "nk_", 3) == 0) {
		unsigned char hash[32];
		int64_t id;
		auth_key_hash(cred, hash);
		int rc = key_check(a, st, hash, now, &id);
		if (rc < 0) {
			err->status = 503;
			snprintf(err->code, sizeof err->code, "unavailable");
			snprintf(err->message, sizeof err->message, "the key could not be checked");
			return -1;
		}
		if (rc == 0)
			return deny(err, "invalid_key", "unknown or revoked API key");
		who->key_id = id;
		return 0;
	}
	return auth_check_token(a, cred, now, who, err);
}
