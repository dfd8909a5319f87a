/* keys.h -- API keys for `airlock serve` (format: docs/formats/keys.md).
 * Owns: generating keys (32 random bytes, shown once as "al-" + base64url), storing only a
 * salted SHA-256 of each in DATA/keys.json (mode 0600, atomic replace), expiry and revocation,
 * and checking a presented token in constant time.
 * Does not parse HTTP headers: the server takes the token from "Authorization: Bearer KEY" or
 * "x-api-key: KEY" and passes it raw. keys.json is parsed strictly; presented tokens are
 * untrusted. */
#ifndef AIRLOCK_SERVER_KEYS_H
#define AIRLOCK_SERVER_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/err.h"

#define KEYS_FILE "keys.json"
#define KEYS_NAME_MAX 64          /* [A-Za-z0-9._-], 1..64 bytes */
#define KEYS_TOKEN_LEN 46         /* "al-" + 43 base64url characters (32 bytes) */
#define KEYS_SALT_LEN 16
#define KEYS_MAX 10000            /* keys per file */

struct keys_key {
    char name[KEYS_NAME_MAX + 1]; /* unique, validated; what audit records and metrics show */
    uint8_t salt[KEYS_SALT_LEN];  /* random per key */
    uint8_t hash[32];             /* SHA-256(salt || token) */
    time_t created;               /* UTC seconds */
    time_t expires;               /* 0: never */
    time_t revoked;               /* 0: not revoked */
};

struct keyring {
    struct keys_key *keys;        /* owned, in file order */
    size_t n;                     /* entries in keys */
};

enum keys_verdict {
    KEYS_OK = 0,
    KEYS_UNKNOWN,                 /* no key matches (or no token) */
    KEYS_EXPIRED,                 /* matched a key whose expiry has passed */
    KEYS_REVOKED,                 /* matched a revoked key */
};

/* Load DIR/keys.json. A missing file is an empty keyring; a file readable by group or others
 * is refused (AL_EVERIFY), as is any malformed entry (AL_EFORMAT, naming the entry). */
int keys_load(const char *dir, struct keyring *kr, struct al_err *e);
void keys_free(struct keyring *kr);  /* safe on a zeroed keyring */
/* Write DIR/keys.json atomically with mode 0600, creating DIR (0700) if needed. */
int keys_save(const struct keyring *kr, const char *dir, struct al_err *e);

/* Serialise `keys add/revoke` across processes: an exclusive flock on DIR/keys.lock (DIR is
 * created if needed). Returns the lock fd for keys_unlock, or -1. */
int keys_lock(const char *dir, struct al_err *e);
void keys_unlock(int fd);

/* Add a key named name: fills token (the only copy of the secret, NUL-terminated) and stores
 * its salted hash. expires 0 means never. Names are never reused, even after revocation, so
 * audit records stay unambiguous (AL_EEXIST). */
int keys_add(struct keyring *kr, const char *name, time_t now, time_t expires,
             char token[KEYS_TOKEN_LEN + 1], struct al_err *e);
/* Mark name revoked at now (AL_ENOTFOUND if absent; already revoked keeps its first time). */
int keys_revoke(struct keyring *kr, const char *name, time_t now, struct al_err *e);
const struct keys_key *keys_find(const struct keyring *kr, const char *name);

/* Check a presented token: every key's hash is computed and compared with CRYPTO_memcmp, so
 * the time taken does not depend on how much of a token matches. name_out (may be NULL) is set
 * to the matched key's name (for KEYS_OK, KEYS_EXPIRED and KEYS_REVOKED) and stays valid while
 * kr is. */
enum keys_verdict keys_check(const struct keyring *kr, const char *presented, time_t now,
                             const char **name_out);
/* "ok", "invalid API key", "API key expired", "API key revoked": safe to send to clients */
const char *keys_verdict_str(enum keys_verdict v);

/* The token a request presents: the credentials of "Authorization: Bearer TOKEN" (scheme
 * case-insensitive, surrounding blanks dropped) if that header is present, else the x-api-key
 * value. Either header may be NULL. Copies the token into out and returns 0; returns -1 when
 * neither header carries a token or it is longer than KEYS_PRESENTED_MAX (an Authorization
 * header with another scheme counts as none, so x-api-key is then used). */
#define KEYS_PRESENTED_MAX 256    /* longer tokens are refused without hashing */
int keys_token_from_headers(const char *authorization, const char *x_api_key,
                            char out[KEYS_PRESENTED_MAX + 1]);

/* "2027-01-31", "2027-01-31T12:00:00Z", or a duration from now: "90d", "12h", "2w", "1y". */
int keys_expiry_parse(const char *s, time_t now, time_t *out, struct al_err *e);
/* "2027-01-31T12:00:00Z" into out[21]. */
void keys_time_format(time_t t, char out[21]);

#endif
