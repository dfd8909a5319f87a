/* keys.c -- API key generation, salted-hash storage in keys.json, constant-time checking.
 * Format: docs/formats/keys.md. keys.json is parsed strictly (it decides who may use the
 * server); presented tokens are untrusted and bounded before hashing. The secret is held in
 * memory only while it is created and is wiped afterwards.
 * Does not print or read HTTP: the CLI (cli/cmd_keys.c) and the server call this. */
#include "server/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto/hash.h"
#include "util/fsx.h"
#include "util/parse.h"
#include "util/xalloc.h"

#define KEYS_FILE_MAX (4u << 20)  /* bytes of keys.json we are willing to read */
#define TOKEN_PREFIX "al-"
#define TOKEN_RAW 32              /* random bytes in a key */

_Static_assert(KEYS_TOKEN_LEN == 3 + (TOKEN_RAW * 4 + 2) / 3, "al- + unpadded base64url(32)");

/* ===== Helpers ============================================================================ */

/* Why SHA-256 and not a password KDF: a key is 256 bits from RAND_bytes, so guessing it from
 * the stored hash is a 2^256 search however fast the hash is. Slow KDFs (scrypt, Argon2) only
 * help when the secret has little entropy, as human passwords do. The per-key salt keeps equal
 * hashes from revealing anything across keys or installations. */
static int
key_hash(const uint8_t salt[KEYS_SALT_LEN], const char *token, size_t len, uint8_t out[32])
{
    struct hash_ctx c = {0};
    int rc = -1;
    if (hash_sha256_init(&c, NULL) == 0 && hash_update(&c, salt, KEYS_SALT_LEN, NULL) == 0 &&
        hash_update(&c, token, len, NULL) == 0 && hash_final(&c, out, NULL) == 0)
        rc = 0;
    hash_ctx_free(&c);
    return rc;
}

static bool
name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return n >= 1 && n <= KEYS_NAME_MAX;
}

void
keys_time_format(time_t t, char out[21])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        out[0] = '\0';
}

/* n decimal digits at s, or -1 */
static int
digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Strict "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ" (UTC). */
static int
time_parse(const char *s, time_t *out)
{
    size_t n = strlen(s);
    if (n != 10 && n != 20)
        return -1;
    if (s[4] != '-' || s[7] != '-')
        return -1;
    struct tm tm = {0};
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = 0, mi = 0, se = 0;
    if (n == 20) {
        if (s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
            return -1;
        h = digits(s + 11, 2);
        mi = digits(s + 14, 2);
        se = digits(s + 17, 2);
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || se < 0 || se > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != d) /* 2027-02-31 normalises to March: refuse */
        return -1;
    *out = t;
    return 0;
}

int
keys_expiry_parse(const char *s, time_t now, time_t *out, struct al_err *e)
{
    if (time_parse(s, out) == 0) {
        if (*out <= now)
            return al_errf(e, AL_EUSAGE, "expiry '%s' is in the past", s);
        return 0;
    }
    size_t n = strlen(s);
    static const struct { char unit; uint64_t secs; } units[] = {
        {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}, {'y', 365 * 86400},
    };
    char num[24];
    if (n >= 2 && n - 1 < sizeof num) {
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (s[n - 1] != units[i].unit)
                continue;
            uint64_t v;
            memcpy(num, s, n - 1);
            num[n - 1] = '\0';
            if (parse_u64(num, 1, 100 * 365 * 86400ull / units[i].secs, "expiry", &v, e) < 0)
                return -1;
            *out = now + (time_t)(v * units[i].secs);
            return 0;
        }
    }
    return al_errf(e, AL_EUSAGE, "expiry '%s': expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or a "
                   "duration such as 90d, 12h, 2w, 1y", s);
}

static void
base64url(const uint8_t *p, size_t n, char *out)
{
    char tmp[4 * ((TOKEN_RAW + 2) / 3) + 1];
    int len = EVP_EncodeBlock((unsigned char *)tmp, p, (int)n);
    int j = 0;
    for (int i = 0; i < len; i++) {
        char c = tmp[i];
        if (c == '=')
            break;
        out[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    out[j] = '\0';
    OPENSSL_cleanse(tmp, sizeof tmp);
}

/* ===== Load and save ====================================================================== */

static int
entry_time(json_t *o, const char *field, bool nullable, time_t *out, const char *path,
           size_t idx, struct al_err *e)
{
    json_t *v = json_object_get(o, field);
    *out = 0;
    if (nullable && (!v || json_is_null(v)))
        return 0;
    if (!json_is_string(v) || time_parse(json_string_value(v), out) < 0 ||
        strlen(json_string_value(v)) != 20)
        return al_errf(e, AL_EFORMAT, "%s: keys[%zu].%s: expected \"YYYY-MM-DDTHH:MM:SSZ\"%s",
                       path, idx, field, nullable ? " or null" : "");
    return 0;
}

static int
entry_parse(json_t *o, struct keys_key *k, const char *path, size_t idx, struct al_err *e)
{
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *salt = json_string_value(json_object_get(o, "salt"));
    const char *hash = json_string_value(json_object_get(o, "sha256"));
    if (!json_is_object(o))
        return al_errf(e, AL_EFORMAT, "%s: keys[%zu]: not an object", path, idx);
    if (!name || !name_ok(name))
        return al_errf(e, AL_EFORMAT, "%s: keys[%zu].name: missing or not 1-64 of "
                       "[A-Za-z0-9._-]", path, idx);
    memcpy(k->name, name, strlen(name) + 1);
    if (!salt || strlen(salt) != 2 * KEYS_SALT_LEN ||
        hash_unhex(salt, strlen(salt), k->salt, KEYS_SALT_LEN) < 0)
        return al_errf(e, AL_EFORMAT, "%s: keys[%zu].salt: expected %d hex digits", path, idx,
                       2 * KEYS_SALT_LEN);
    if (!hash || strlen(hash) != 64 || hash_unhex(hash, 64, k->hash, 32) < 0)
        return al_errf(e, AL_EFORMAT, "%s: keys[%zu].sha256: expected 64 hex digits", path,
                       idx);
    if (entry_time(o, "created", false, &k->created, path, idx, e) < 0 ||
        entry_time(o, "expires", true, &k->expires, path, idx, e) < 0 ||
        entry_time(o, "revoked", true, &k->revoked, path, idx, e) < 0)
        return -1;
    return 0;
}

int
keys_load(const char *dir, struct keyring *kr, struct al_err *e)
{
    char *path = fsx_join(dir, KEYS_FILE);
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    struct stat st;
    int rc = -1;
    kr->keys = NULL;
    kr->n = 0;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            rc = 0; /* no keys yet */
        else
            al_errno(e, errno, "%s", path);
        goto out;
    }
    if (S_ISREG(st.st_mode) && (st.st_mode & 077)) {
        al_errf(e, AL_EVERIFY, "%s: readable or writable by group/others (mode %04o); run "
                "chmod 600 on it", path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (fsx_read_file(path, KEYS_FILE_MAX, &text, &len, e) < 0)
        goto out;
    json_error_t jerr;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        al_errf(e, AL_EFORMAT, "%s: line %d: %s", path, jerr.line, jerr.text);
        goto out;
    }
    json_t *ver = json_object_get(root, "version");
    json_t *arr = json_object_get(root, "keys");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
        al_errf(e, AL_EUNSUPPORTED, "%s: \"version\" must be 1", path);
        goto out;
    }
    if (!json_is_array(arr)) {
        al_errf(e, AL_EFORMAT, "%s: \"keys\" must be an array", path);
        goto out;
    }
    size_t n = json_array_size(arr);
    if (n > KEYS_MAX) {
        al_errf(e, AL_ELIMIT, "%s: %zu keys, limit %d", path, n, KEYS_MAX);
        goto out;
    }
    kr->keys = xcalloc(n ? n : 1, sizeof *kr->keys);
    for (size_t i = 0; i < n; i++) {
        if (entry_parse(json_array_get(arr, i), &kr->keys[i], path, i, e) < 0)
            goto out;
        if (keys_find(kr, kr->keys[i].name)) {
            al_errf(e, AL_EFORMAT, "%s: keys[%zu].name: duplicate name '%s'", path, i,
                    kr->keys[i].name);
            goto out;
        }
        kr->n = i + 1;
    }
    rc = 0;
out:
    if (rc < 0)
        keys_free(kr);
    json_decref(root);
    free(text);
    free(path);
    return rc;
}

void
keys_free(struct keyring *kr)
{
    if (!kr)
        return;
    if (kr->keys)
        OPENSSL_cleanse(kr->keys, kr->n * sizeof *kr->keys);
    free(kr->keys);
    kr->keys = NULL;
    kr->n = 0;
}

static json_t *
json_time(time_t t)
{
    char s[21];
    if (t == 0)
        return json_null();
    keys_time_format(t, s);
    return json_string(s);
}

int
keys_save(const struct keyring *kr, const char *dir, struct al_err *e)
{
    char *path = NULL;
    char *text = NULL;
    json_t *root = json_object();
    json_t *arr = json_array();
    int rc = -1;
    json_object_set_new(root, "version", json_integer(1));
    json_object_set(root, "keys", arr);
    for (size_t i = 0; i < kr->n; i++) {
        const struct keys_key *k = &kr->keys[i];
        char salt[2 * KEYS_SALT_LEN + 1], hash[65];
        hash_hex(k->salt, KEYS_SALT_LEN, salt);
        hash_hex(k->hash, 32, hash);
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(k->name));
        json_object_set_new(o, "salt", json_string(salt));
        json_object_set_new(o, "sha256", json_string(hash));
        json_object_set_new(o, "created", json_time(k->created));
        json_object_set_new(o, "expires", json_time(k->expires));
        json_object_set_new(o, "revoked", json_time(k->revoked));
        json_array_append_new(arr, o);
    }
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) {
        al_errf(e, AL_EINTERNAL, "keys: cannot encode keys.json");
        goto out;
    }
    if (fsx_mkdir_p(dir, 0700, e) < 0)
        goto out;
    path = fsx_join(dir, KEYS_FILE);
    char *withnl = xasprintf("%s\n", text);
    rc = fsx_write_atomic(path, withnl, strlen(withnl), 0600, 0, e);
    free(withnl);
out:
    json_decref(arr);
    json_decref(root);
    free(text);
    free(path);
    return rc;
}

int
keys_lock(const char *dir, struct al_err *e)
{
    if (fsx_mkdir_p(dir, 0700, e) < 0)
        return -1;
    char *path = fsx_join(dir, "keys.lock");
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        al_errno(e, errno, "%s: open", path);
    } else if (flock(fd, LOCK_EX) != 0) {
        al_errno(e, errno, "%s: lock", path);
        close(fd);
        fd = -1;
    }
    free(path);
    return fd;
}

void
keys_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* ===== Operations ========================================================================= */

const struct keys_key *
keys_find(const struct keyring *kr, const char *name)
{
    for (size_t i = 0; i < kr->n; i++)
        if (strcmp(kr->keys[i].name, name) == 0)
            return &kr->keys[i];
    return NULL;
}

int
keys_add(struct keyring *kr, const char *name, time_t now, time_t expires,
         char token[KEYS_TOKEN_LEN + 1], struct al_err *e)
{
    uint8_t raw[TOKEN_RAW];
    struct keys_key k = {0};
    int rc = -1;
    token[0] = '\0';
    if (!name_ok(name))
        return al_errf(e, AL_EUSAGE, "key name '%s': use 1-64 of A-Z a-z 0-9 . _ -", name);
    if (keys_find(kr, name))
        return al_errf(e, AL_EEXIST, "a key named '%s' already exists (names are never reused, "
                       "even after revocation)", name);
    if (kr->n >= KEYS_MAX)
        return al_errf(e, AL_ELIMIT, "keyring already holds %d keys", KEYS_MAX);
    if (RAND_bytes(raw, sizeof raw) != 1 || RAND_bytes(k.salt, sizeof k.salt) != 1) {
        al_errf(e, AL_EINTERNAL, "RAND_bytes failed: no randomness available");
        goto out;
    }
    memcpy(token, TOKEN_PREFIX, strlen(TOKEN_PREFIX));
    base64url(raw, sizeof raw, token + strlen(TOKEN_PREFIX));
    if (key_hash(k.salt, token, strlen(token), k.hash) < 0) {
        al_errf(e, AL_EINTERNAL, "SHA-256 failed");
        goto out;
    }
    memcpy(k.name, name, strlen(name) + 1);
    k.created = now;
    k.expires = expires;
    kr->keys = xrealloc(kr->keys, (kr->n + 1) * sizeof *kr->keys);
    kr->keys[kr->n++] = k;
    rc = 0;
out:
    OPENSSL_cleanse(raw, sizeof raw);
    if (rc < 0)
        OPENSSL_cleanse(token, KEYS_TOKEN_LEN + 1);
    return rc;
}

int
keys_revoke(struct keyring *kr, const char *name, time_t now, struct al_err *e)
{
    struct keys_key *k = (struct keys_key *)keys_find(kr, name);
    if (!k)
        return al_errf(e, AL_ENOTFOUND, "no key named '%s'", name);
    if (!k->revoked)
        k->revoked = now;
    return 0;
}

enum keys_verdict
keys_check(const struct keyring *kr, const char *presented, time_t now, const char **name_out)
{
    const struct keys_key *hit = NULL;
    if (name_out)
        *name_out = NULL;
    if (!presented)
        return KEYS_UNKNOWN;
    size_t len = strnlen(presented, KEYS_PRESENTED_MAX + 1);
    if (len == 0 || len > KEYS_PRESENTED_MAX)
        return KEYS_UNKNOWN;
    /* hash against every key, no early exit: timing depends on the number of keys only */
    for (size_t i = 0; i < kr->n; i++) {
        uint8_t h[32];
        if (key_hash(kr->keys[i].salt, presented, len, h) < 0)
            continue;
        if (CRYPTO_memcmp(h, kr->keys[i].hash, sizeof h) == 0)
            hit = &kr->keys[i];
    }
    if (!hit)
        return KEYS_UNKNOWN;
    if (name_out)
        *name_out = hit->name;
    if (hit->revoked && hit->revoked <= now)
        return KEYS_REVOKED;
    if (hit->expires && now >= hit->expires)
        return KEYS_EXPIRED;
    return KEYS_OK;
}

const char *
keys_verdict_str(enum keys_verdict v)
{
    switch (v) {
    case KEYS_OK: return "ok";
    case KEYS_UNKNOWN: return "invalid API key";
    case KEYS_EXPIRED: return "API key expired";
    case KEYS_REVOKED: return "API key revoked";
    }
    return "invalid API key";
}

/* ===== Request headers ==================================================================== */

static int
token_copy(const char *s, char out[KEYS_PRESENTED_MAX + 1])
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n > KEYS_PRESENTED_MAX)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int
keys_token_from_headers(const char *authorization, const char *x_api_key,
                        char out[KEYS_PRESENTED_MAX + 1])
{
    out[0] = '\0';
    if (authorization) {
        const char *s = authorization;
        while (*s == ' ' || *s == '\t')
            s++;
        if (strncasecmp(s, "Bearer", 6) == 0 && (s[6] == ' ' || s[6] == '\t'))
            return token_copy(s + 7, out);
    }
    return x_api_key ? token_copy(x_api_key, out) : -1;
}
