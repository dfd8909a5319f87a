/* minisig.c -- minisign public keys and signatures: strict parsing, canonical formatting,
 * trust sets, and verification in minisign's order (key id, signature, trusted comment).
 * Does not touch secret keys (transfer/sign.c) and does not decide what a verified file
 * means (transfer/bundle.c). Spec: docs/formats/minisign.md. All input is untrusted:
 * every line has a fixed prefix, a length cap and one newline; base64 must be canonical. */
#include "transfer/minisig.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto/hash.h"
#include "util/utf8.h"
#include "util/buf.h"
#include "util/fsx.h"
#include "util/xalloc.h"

#define UNTRUSTED_PREFIX "untrusted comment: "
#define TRUSTED_PREFIX "trusted comment: "
#define PUBKEY_BYTES (2 + MINISIG_KEYID_LEN + 32)
#define SIG_BYTES (2 + MINISIG_KEYID_LEN + 64)

_Static_assert(MINISIG_TRUSTED_COMMENT_MAX + sizeof TRUSTED_PREFIX < 8192,
               "trusted comment must fit minisign's 8192-byte line buffer");
_Static_assert(MINISIG_COMMENT_WRITE_MAX + sizeof UNTRUSTED_PREFIX < 1024,
               "written untrusted comments must fit minisign's 1024-byte line buffer");

/* ===== Text helpers: lines, base64, comments ============================================
 * A file is a sequence of lines each ending in '\n'; the last may lack it. CR, NUL and other
 * control bytes are rejected by the per-field checks, so "a\r\n" files fail loudly. */

struct lines {
    const char *base; /* start of the text, for byte offsets in messages */
    const char *p;    /* next unread byte */
    const char *end;  /* one past the text */
    const char *what; /* file name or "public key", for messages */
    size_t lineno;    /* number of the line last returned, 1-based */
};

static int
lines_next(struct lines *l, const char **s, size_t *n, const char *expect, struct al_err *e)
{
    if (l->p >= l->end)
        return al_errf(e, AL_EFORMAT, "%s: truncated: line %zu (%s) is missing", l->what,
                       l->lineno + 1, expect);
    const char *nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
    const char *stop = nl ? nl : l->end;
    *s = l->p;
    *n = (size_t)(stop - l->p);
    l->p = nl ? nl + 1 : l->end;
    l->lineno++;
    if (*n > 0 && (*s)[*n - 1] == '\r')
        return al_errf(e, AL_EFORMAT,
                       "%s: line %zu ends with a carriage return (CRLF line endings are not "
                       "accepted)",
                       l->what, l->lineno);
    return 0;
}

static int
lines_done(struct lines *l, struct al_err *e)
{
    if (l->p < l->end)
        return al_errf(e, AL_EFORMAT, "%s: unexpected data after line %zu (byte %td)", l->what,
                       l->lineno, l->p - l->base);
    return 0;
}

static bool
has_prefix(const char *s, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    return n >= pl && memcmp(s, prefix, pl) == 0;
}

char *
minisig_b64_encode(const uint8_t *p, size_t n)
{
    size_t out_len = 4 * ((n + 2) / 3);
    char *out = xmalloc(out_len + 1);
    int w = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    out[w < 0 ? 0 : w] = '\0';
    return out;
}

static bool
b64_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

int
minisig_b64_decode(const char *s, size_t len, uint8_t *out, size_t n, const char *what,
                   struct al_err *e)
{
    int rc = -1;
    uint8_t *tmp = NULL;
    char *again = NULL;
    size_t want = 4 * ((n + 2) / 3);
    if (len != want) {
        al_errf(e, AL_EFORMAT, "%s: base64 is %zu characters, expected %zu (%zu bytes)", what, len,
                want, n);
        goto out;
    }
    size_t pad = (3 - n % 3) % 3;
    for (size_t i = 0; i < len; i++) {
        bool ok = i >= len - pad ? s[i] == '=' : b64_char_ok(s[i]);
        if (!ok) {
            al_errf(e, AL_EFORMAT, "%s: invalid base64 character 0x%02x at column %zu", what,
                    (unsigned char)s[i], i + 1);
            goto out;
        }
    }
    tmp = xmalloc(len / 4 * 3);
    if (EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len) != (int)(len / 4 * 3)) {
        al_errf(e, AL_EFORMAT, "%s: base64 does not decode", what);
        goto out;
    }
    /* re-encoding catches non-zero padding bits: one text per byte string */
    again = minisig_b64_encode(tmp, n);
    if (CRYPTO_memcmp(again, s, len) != 0) { /* the text may be a secret key */
        al_errf(e, AL_EFORMAT, "%s: base64 is not in canonical form", what);
        goto out;
    }
    memcpy(out, tmp, n);
    rc = 0;
out:
    if (tmp)
        OPENSSL_cleanse(tmp, len / 4 * 3); /* may hold an encrypted secret key */
    free(tmp);
    if (again)
        OPENSSL_cleanse(again, strlen(again));
    free(again);
    return rc;
}

/* Length of the UTF-8 sequence at s (1..4) if it is well-formed and not a control character
 * (C0 other than tab, DEL, C1), else 0. */
static size_t
utf8_char_len(const unsigned char *s, size_t n)
{
    uint32_t cp = 0;
    size_t len = utf8_decode(s, n, &cp);
    if (len == 0 || (cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp < 0xa0))
        return 0;
    return len;
}

int
minisig_comment_check(const char *s, size_t len, size_t max, const char *what, struct al_err *e)
{
    if (len > max)
        return al_errf(e, AL_ELIMIT, "%s: %zu bytes, limit %zu", what, len, max);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t cl = utf8_char_len(u + i, len - i);
        if (cl == 0)
            return al_errf(e, AL_EFORMAT,
                           "%s: byte %zu (0x%02x) is a control character or invalid UTF-8", what, i,
                           u[i]);
        i += cl;
    }
    return 0;
}

/* A comment line: exact prefix, then checked text copied NUL-terminated into out. */
static int
comment_line(struct lines *l, const char *prefix, size_t max, char *out, struct al_err *e)
{
    const char *s;
    size_t n;
    char what[512];
    if (lines_next(l, &s, &n, prefix, e) < 0)
        return -1;
    if (!has_prefix(s, n, prefix))
        return al_errf(e, AL_EFORMAT, "%s: line %zu must start with \"%s\"", l->what, l->lineno,
                       prefix);
    size_t pl = strlen(prefix);
    snprintf(what, sizeof what, "%s: line %zu: %.*s", l->what, l->lineno, (int)(pl - 2), prefix);
    if (minisig_comment_check(s + pl, n - pl, max, what, e) < 0)
        return -1;
    memcpy(out, s + pl, n - pl);
    out[n - pl] = '\0';
    return 0;
}

static int
b64_line(struct lines *l, uint8_t *out, size_t n, const char *expect, struct al_err *e)
{
    const char *s;
    size_t len;
    char what[512];
    if (lines_next(l, &s, &len, expect, e) < 0)
        return -1;
    snprintf(what, sizeof what, "%s: line %zu (%s)", l->what, l->lineno, expect);
    return minisig_b64_decode(s, len, out, n, what, e);
}

static uint64_t
le64_load(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void
minisig_keyid_hex(const uint8_t key_id[MINISIG_KEYID_LEN], char out[17])
{
    snprintf(out, 17, "%016" PRIX64, le64_load(key_id));
}

/* ===== Ed25519 =========================================================================== */

int
minisig_ed25519_verify(const uint8_t pk[32], const uint8_t sig[64], const void *msg, size_t len)
{
    int rc = -1;
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
    if (!key)
        goto out;
    ctx = EVP_MD_CTX_new();
    if (!ctx)
        goto out;
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1)
        goto out;
    if (EVP_DigestVerify(ctx, sig, 64, len ? msg : (const void *)"", len) == 1)
        rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return rc;
}

/* ===== Public keys and trust sets ======================================================== */

static int
pubkey_from_bytes(const uint8_t b[PUBKEY_BYTES], const char *what, struct minisig_pubkey *pk,
                  struct al_err *e)
{
    if (b[0] != 'E' || b[1] != 'd')
        return al_errf(e, AL_EUNSUPPORTED,
                       "%s: unsupported public key algorithm 0x%02x%02x (expected \"Ed\")", what,
                       b[0], b[1]);
    memcpy(pk->key_id, b + 2, MINISIG_KEYID_LEN);
    memcpy(pk->pk, b + 2 + MINISIG_KEYID_LEN, 32);
    return 0;
}

static int
pubkey_parse_named(const char *text, size_t len, const char *what, struct minisig_pubkey *pk,
                   struct al_err *e)
{
    uint8_t b[PUBKEY_BYTES];
    char comment[MINISIG_COMMENT_MAX + 1];
    struct lines l = {text, text, text + len, what, 0};
    memset(pk, 0, sizeof *pk);
    snprintf(pk->source, sizeof pk->source, "%s", what);
    if (has_prefix(text, len, UNTRUSTED_PREFIX) &&
        comment_line(&l, UNTRUSTED_PREFIX, MINISIG_COMMENT_MAX, comment, e) < 0)
        return -1;
    if (b64_line(&l, b, sizeof b, "public key", e) < 0)
        return -1;
    if (lines_done(&l, e) < 0)
        return -1;
    return pubkey_from_bytes(b, what, pk, e);
}

int
minisig_pubkey_parse(const char *text, size_t len, struct minisig_pubkey *pk, struct al_err *e)
{
    return pubkey_parse_named(text, len, "public key", pk, e);
}

int
minisig_pubkey_load(const char *path, struct minisig_pubkey *pk, struct al_err *e)
{
    char *text = NULL;
    size_t len = 0;
    memset(pk, 0, sizeof *pk);
    if (fsx_read_file(path, MINISIG_FILE_MAX, &text, &len, e) < 0)
        return -1;
    int rc = pubkey_parse_named(text, len, path, pk, e);
    free(text);
    return rc;
}

char *
minisig_pubkey_format(const struct minisig_pubkey *pk, const char *untrusted_comment)
{
    uint8_t b[PUBKEY_BYTES] = {'E', 'd'};
    char id[17];
    struct buf out;
    buf_init(&out);
    memcpy(b + 2, pk->key_id, MINISIG_KEYID_LEN);
    memcpy(b + 2 + MINISIG_KEYID_LEN, pk->pk, 32);
    minisig_keyid_hex(pk->key_id, id);
    char *b64 = minisig_b64_encode(b, sizeof b);
    if (untrusted_comment)
        buf_printf(&out, UNTRUSTED_PREFIX "%s\n", untrusted_comment);
    else
        buf_printf(&out, UNTRUSTED_PREFIX "minisign public key %s\n", id);
    buf_printf(&out, "%s\n", b64);
    free(b64);
    return buf_steal(&out);
}

/* Adds pk unless the same key is already there; two different keys under one id are an
 * error, since verification picks the key by id. */
static int
trust_add(struct minisig_trust *t, const struct minisig_pubkey *pk, struct al_err *e)
{
    for (size_t i = 0; i < t->n; i++) {
        if (memcmp(t->keys[i].key_id, pk->key_id, MINISIG_KEYID_LEN) != 0)
            continue;
        if (memcmp(t->keys[i].pk, pk->pk, 32) == 0)
            return 0;
        char id[17];
        minisig_keyid_hex(pk->key_id, id);
        return al_errf(e, AL_EFORMAT, "%s and %s: two different keys share key ID %s",
                       t->keys[i].source, pk->source, id);
    }
    size_t bytes;
    if (!size_mul_ok(t->n + 1, sizeof *t->keys, &bytes))
        return al_errf(e, AL_ELIMIT, "too many trusted keys");
    t->keys = xrealloc(t->keys, bytes);
    t->keys[t->n++] = *pk;
    return 0;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.pub in dir (not recursive), in name order so messages are reproducible. */
static int
trust_load_dir(const char *dir, struct minisig_trust *t, struct al_err *e)
{
    int rc = -1;
    DIR *d = NULL;
    char **names = NULL;
    size_t n = 0;
    d = opendir(dir);
    if (!d) {
        al_errno(e, errno, "%s: open directory", dir);
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || de->d_name[0] == '.' || strcmp(de->d_name + nl - 4, ".pub") != 0)
            continue;
        if (n >= 4096) {
            al_errf(e, AL_ELIMIT, "%s: more than 4096 *.pub files", dir);
            goto out;
        }
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(de->d_name);
    }
    if (n == 0) {
        al_errf(e, AL_ENOTFOUND, "%s: no *.pub public key files in this directory", dir);
        goto out;
    }
    qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n; i++) {
        struct minisig_pubkey pk;
        char *path = fsx_join(dir, names[i]);
        int r = minisig_pubkey_load(path, &pk, e);
        free(path);
        if (r < 0 || trust_add(t, &pk, e) < 0)
            goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (d)
        closedir(d);
    return rc;
}

int
minisig_trust_load(const char *path_or_dir, struct minisig_trust *t, struct al_err *e)
{
    struct stat st;
    t->keys = NULL;
    t->n = 0;
    if (stat(path_or_dir, &st) != 0) {
        if (errno == ENOENT)
            return al_errf(e, AL_ENOTFOUND, "%s: no such public key file or directory",
                           path_or_dir);
        return al_errno(e, errno, "%s: stat", path_or_dir);
    }
    int rc;
    if (S_ISDIR(st.st_mode)) {
        rc = trust_load_dir(path_or_dir, t, e);
    } else {
        struct minisig_pubkey pk;
        rc = minisig_pubkey_load(path_or_dir, &pk, e);
        if (rc == 0)
            rc = trust_add(t, &pk, e);
    }
    if (rc < 0)
        minisig_trust_free(t);
    return rc;
}

void
minisig_trust_free(struct minisig_trust *t)
{
    if (!t)
        return;
    free(t->keys);
    t->keys = NULL;
    t->n = 0;
}

/* ===== Signatures ========================================================================= */

static int
sig_parse_named(const char *text, size_t len, const char *what, struct minisig_sig *s,
                struct al_err *e)
{
    uint8_t b[SIG_BYTES];
    struct lines l = {text, text, text + len, what, 0};
    memset(s, 0, sizeof *s);
    if (comment_line(&l, UNTRUSTED_PREFIX, MINISIG_COMMENT_MAX, s->untrusted_comment, e) < 0)
        return -1;
    if (b64_line(&l, b, sizeof b, "signature", e) < 0)
        return -1;
    if (b[0] == 'E' && b[1] == 'D')
        s->prehashed = true;
    else if (b[0] == 'E' && b[1] == 'd')
        s->prehashed = false;
    else
        return al_errf(e, AL_EUNSUPPORTED,
                       "%s: line 2: unsupported signature algorithm 0x%02x%02x "
                       "(expected \"ED\" or \"Ed\")",
                       what, b[0], b[1]);
    memcpy(s->key_id, b + 2, MINISIG_KEYID_LEN);
    memcpy(s->sig, b + 2 + MINISIG_KEYID_LEN, 64);
    if (comment_line(&l, TRUSTED_PREFIX, MINISIG_TRUSTED_COMMENT_MAX, s->trusted_comment, e) < 0)
        return -1;
    if (b64_line(&l, s->global_sig, sizeof s->global_sig, "global signature", e) < 0)
        return -1;
    return lines_done(&l, e);
}

int
minisig_sig_parse(const char *text, size_t len, struct minisig_sig *s, struct al_err *e)
{
    return sig_parse_named(text, len, "signature", s, e);
}

int
minisig_sig_load(const char *path, struct minisig_sig *s, struct al_err *e)
{
    char *text = NULL;
    size_t len = 0;
    if (fsx_read_file(path, MINISIG_FILE_MAX, &text, &len, e) < 0)
        return -1;
    int rc = sig_parse_named(text, len, path, s, e);
    free(text);
    return rc;
}

char *
minisig_sig_format(const struct minisig_sig *s)
{
    uint8_t b[SIG_BYTES];
    struct buf out;
    buf_init(&out);
    b[0] = 'E';
    b[1] = s->prehashed ? 'D' : 'd';
    memcpy(b + 2, s->key_id, MINISIG_KEYID_LEN);
    memcpy(b + 2 + MINISIG_KEYID_LEN, s->sig, 64);
    char *b64 = minisig_b64_encode(b, sizeof b);
    char *g64 = minisig_b64_encode(s->global_sig, sizeof s->global_sig);
    buf_printf(&out, UNTRUSTED_PREFIX "%s\n%s\n" TRUSTED_PREFIX "%s\n%s\n", s->untrusted_comment,
               b64, s->trusted_comment, g64);
    free(b64);
    free(g64);
    return buf_steal(&out);
}

/* ===== Verification ========================================================================
 * Fixed order, as minisign: find the key by id (own message), check the signature over the
 * message or its BLAKE2b-512, then the global signature over sig || trusted comment. */

static int
verify_find_key(const struct minisig_trust *t, const struct minisig_sig *s,
                const struct minisig_pubkey **key, struct al_err *e)
{
    for (size_t i = 0; i < t->n; i++) {
        if (memcmp(t->keys[i].key_id, s->key_id, MINISIG_KEYID_LEN) == 0) {
            *key = &t->keys[i];
            return 0;
        }
    }
    char id[17];
    struct buf known;
    buf_init(&known);
    minisig_keyid_hex(s->key_id, id);
    for (size_t i = 0; i < t->n && i < 8; i++) {
        char kid[17];
        minisig_keyid_hex(t->keys[i].key_id, kid);
        buf_printf(&known, "%s%s (%s)", i ? ", " : "", kid, t->keys[i].source);
    }
    if (t->n > 8)
        buf_printf(&known, ", ... (%zu keys)", t->n);
    al_errf(e, AL_EVERIFY, "signed by unknown key ID %s; trusted key IDs: %s", id,
            t->n ? known.data : "none");
    buf_free(&known);
    return -1;
}

static int
verify_global(const struct minisig_pubkey *key, const struct minisig_sig *s, struct al_err *e)
{
    size_t tl = strlen(s->trusted_comment);
    uint8_t *msg = xmalloc(64 + tl);
    memcpy(msg, s->sig, 64);
    memcpy(msg + 64, s->trusted_comment, tl);
    int r = minisig_ed25519_verify(key->pk, s->global_sig, msg, 64 + tl);
    free(msg);
    if (r < 0)
        return al_errf(e, AL_EVERIFY,
                       "trusted comment was modified (global signature does not match key %s)",
                       key->source);
    return 0;
}

static int
verify_digest_or_data(const struct minisig_pubkey *key, const struct minisig_sig *s,
                      const void *msg, size_t len, struct al_err *e)
{
    if (minisig_ed25519_verify(key->pk, s->sig, msg, len) < 0) {
        char id[17];
        minisig_keyid_hex(key->key_id, id);
        return al_errf(e, AL_EVERIFY, "signature does not match (key ID %s from %s)", id,
                       key->source);
    }
    return verify_global(key, s, e);
}

int
minisig_verify_buf(const struct minisig_trust *t, const struct minisig_sig *s, const void *data,
                   size_t len, const struct minisig_pubkey **signer, struct al_err *e)
{
    const struct minisig_pubkey *key = NULL;
    if (verify_find_key(t, s, &key, e) < 0)
        return -1;
    if (s->prehashed) {
        uint8_t d[BLAKE2B512_LEN];
        if (hash_blake2b512(data, len, d, e) < 0)
            return -1;
        if (verify_digest_or_data(key, s, d, sizeof d, e) < 0)
            return -1;
    } else if (verify_digest_or_data(key, s, data, len, e) < 0) {
        return -1;
    }
    if (signer)
        *signer = key;
    return 0;
}

int
minisig_verify_file(const struct minisig_trust *t, const struct minisig_sig *s, const char *path,
                    const struct minisig_pubkey **signer, struct al_err *e)
{
    int rc = -1;
    struct fsx_map m = {.fd = -1};
    const struct minisig_pubkey *key = NULL;
    if (verify_find_key(t, s, &key, e) < 0)
        goto out;
    if (s->prehashed) {
        uint8_t d[BLAKE2B512_LEN];
        if (hash_blake2b512_file(path, d, e) < 0)
            goto out;
        if (verify_digest_or_data(key, s, d, sizeof d, e) < 0) {
            al_errctx(e, "%s", path);
            goto out;
        }
    } else {
        /* legacy signatures cover the raw bytes; a mapping avoids a copy of a big file */
        if (fsx_map_open(&m, path, e) < 0)
            goto out;
        if (verify_digest_or_data(key, s, m.base, m.size, e) < 0) {
            al_errctx(e, "%s", path);
            goto out;
        }
    }
    if (signer)
        *signer = key;
    rc = 0;
out:
    fsx_map_close(&m);
    return rc;
}
