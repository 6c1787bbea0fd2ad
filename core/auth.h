/*
 * auth — who is calling: API keys (applications, admins) and user
 * tokens (JWT HS256 with sub and exp). Keys and tokens are never logged.
 */
#ifndef NOTIFYD_AUTH_H
#define NOTIFYD_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct auth;
struct op_error;
struct store;

/* Who a request acts as. */
struct principal {
	int64_t	 key_id;	/* > 0: an API key (admin) */
	char	*user;		/* a user token's sub (malloc'd); NULL for keys */
	int64_t	 expires;	/* ms, for tokens */
};

/*
 * A secret named name: the one every node of a shared store keeps in it
 * (store_setting), else the file at path, made (mode 0600) holding fresh
 * when missing. Into out (n bytes, NUL-terminated): 0, or -1 with err.
 */
int	 secret_load(struct store *st, const char *name, const char *path, const char *fresh,
	    char *out, size_t n, char *err, size_t errlen);

/*
 * Load the token secret: secret itself when not empty, else the one every
 * node of a shared store keeps in it (store_setting), else the file
 * DATA_DIR/jwt.secret, made (mode 0600, 32 random bytes) when missing.
 */
int	 auth_open(struct auth **out, struct store *st, const char *data_dir,
	    const char *secret, char *err, size_t errlen);
void	 auth_close(struct auth *a);

/* A new API key "nk_..." (NUL-terminated, < 64 bytes) and its SHA-256. */
int	 auth_key_new(char key[64], unsigned char hash[32]);
void	 auth_key_hash(const char *key, unsigned char hash[32]);

/* Sign a token for user valid until now + ttl; *token is malloc'd. */
int	 auth_token_mint(struct auth *a, const char *user, int64_t now,
	    int64_t ttl, char **token, int64_t *expires);

/*
 * Check "Bearer <key or token>" (header may be NULL) and fill who; on
 * failure fill err with 401 and a code: missing_credentials,
 * malformed_credentials, invalid_key, unsupported_algorithm,
 * invalid_signature, invalid_claims, token_expired.
 */
int	 auth_check(struct auth *a, struct store *st, const char *header,
	    int64_t now, struct principal *who, struct op_error *err);
/* Check a bare token (no "Bearer "), as a WebSocket ?token= gives it. */
int	 auth_check_token(struct auth *a, const char *token, int64_t now,
	    struct principal *who, struct op_error *err);
void	 principal_clear(struct principal *who);

#endif
