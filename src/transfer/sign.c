/* sign.c -- every secret-key operation: key generation, secret key files (minisign format,
 * scrypt "Sc" encryption, BLAKE2b-256 "B2" checksum), passphrases, and signing.
 * The only file that handles secret keys (R13): they live in secmem memory and are wiped.
 * Does not parse public keys or signatures (transfer/minisig.c). Secret key files are
 * treated as untrusted input: sizes and scrypt costs are bounded before any work.
 * Writes only to /dev/tty (passphrase prompts), never to stdout or stderr.
 *
 * Secret key file line 2 = base64 of 158 bytes (docs/formats/minisign.md):
 *   off size field
 *     0    2 sig_alg "Ed"
 *     2    2 kdf_alg "Sc" (scrypt) or 0,0 (unencrypted)
 *     4    2 chk_alg "B2"
 *     6   32 scrypt salt
 *    38    8 opslimit, u64 little-endian
 *    46    8 memlimit, u64 little-endian
 *    54    8 key id          \
 *    62   64 Ed25519 sk      } XOR scrypt(passphrase, salt, N, r, p, 104 bytes) when "Sc"
 *   126   32 checksum        /  = BLAKE2b-256(sig_alg || key id || sk) */
#include "transfer/minisig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "crypto/blake2b.h"
#include "crypto/hash.h"
#include "crypto/secmem.h"
#include "util/fsx.h"
#include "util/xalloc.h"

#define UNTRUSTED_PREFIX "untrusted comment: "
#define SK_BYTES 158
#define SK_OFF_SALT 6
#define SK_OFF_OPS 38
#define SK_OFF_MEM 46
#define SK_OFF_KEYNUM 54
#define SK_KEYNUM_LEN 104            /* key id 8 + sk 64 + checksum 32 */
#define SCRYPT_MAX_MEM (2ULL << 30)  /* refuse keys that need more than 2 GiB to decrypt */
#define SCRYPT_MAX_WORK (1ULL << 34) /* 128 * r * N * p bytes processed: ~2x minisign's */

/* ===== Types ================================================================================ */

struct minisig_seckey {
    uint8_t key_id[MINISIG_KEYID_LEN]; /* as stored (little-endian u64) */
    uint8_t sk[64];                    /* libsodium layout: seed[32] || public key[32] */
};

/* ===== Helpers ============================================================================== */

static uint64_t
le64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void
le64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* minisign's checksum: BLAKE2b with a 32-byte output over sig_alg || key id || sk. */
static void
seckey_checksum(const struct minisig_seckey *sk, uint8_t chk[32])
{
    uint8_t in[2 + MINISIG_KEYID_LEN + 64];
    in[0] = 'E';
    in[1] = 'd';
    memcpy(in + 2, sk->key_id, MINISIG_KEYID_LEN);
    memcpy(in + 2 + MINISIG_KEYID_LEN, sk->sk, 64);
    (void)blake2b_digest(chk, 32, in, sizeof in); /* cannot fail: output length is valid */
    OPENSSL_cleanse(in, sizeof in);
}

/* libsodium's crypto_pwhash_scryptsalsa208sha256 turns (opslimit, memlimit) into scrypt's
 * (N, r, p): r is 8; a small opslimit bounds N through the CPU cost 4*N*r*p with p = 1,
 * otherwise memlimit bounds N through the memory 128*N*r and the rest of opslimit goes
 * to p. N is the largest power of two not above the bound (at least 2). We follow that rule so
 * that keys made by minisign decrypt here and ours decrypt there. */
static void
scrypt_params(uint64_t opslimit, uint64_t memlimit, uint64_t *n, uint64_t *r, uint64_t *p)
{
    uint64_t max_n;
    unsigned log2n;
    if (opslimit < 32768)
        opslimit = 32768;
    *r = 8;
    if (opslimit < memlimit / 32) {
        *p = 1;
        max_n = opslimit / (*r * 4);
    } else {
        max_n = memlimit / (*r * 128);
    }
    for (log2n = 1; log2n < 63; log2n++) {
        if ((1ULL << log2n) > max_n / 2)
            break;
    }
    *n = 1ULL << log2n;
    if (!(opslimit < memlimit / 32)) {
        uint64_t max_rp = (opslimit / 4) / *n;
        if (max_rp > 0x3fffffff)
            max_rp = 0x3fffffff;
        *p = (uint32_t)max_rp / *r;
    }
}

/* scrypt stream of SK_KEYNUM_LEN bytes into out; costs are checked before any work. */
static int
seckey_stream(const char *what, const char *pass, const uint8_t salt[32], uint64_t opslimit,
              uint64_t memlimit, uint8_t out[SK_KEYNUM_LEN], struct al_err *e)
{
    uint64_t n, r, p, mem, work;
    scrypt_params(opslimit, memlimit, &n, &r, &p);
    if (p == 0 || !u64_mul_ok(128 * r, n, &mem) || mem > SCRYPT_MAX_MEM ||
        !u64_mul_ok(mem, p, &work) || work > SCRYPT_MAX_WORK)
        return al_errf(e, AL_ELIMIT,
                       "%s: scrypt cost opslimit %llu memlimit %llu (N=%llu r=%llu p=%llu) "
                       "exceeds the limit of %llu MiB",
                       what, (unsigned long long)opslimit, (unsigned long long)memlimit,
                       (unsigned long long)n, (unsigned long long)r, (unsigned long long)p,
                       (unsigned long long)(SCRYPT_MAX_MEM >> 20));
    /* OpenSSL counts V (128*r*N) plus B (128*r*p) plus slack against maxmem */
    uint64_t maxmem = mem + 128 * r * p + (1u << 20);
    if (EVP_PBE_scrypt(pass, strlen(pass), salt, 32, n, r, p, maxmem, out, SK_KEYNUM_LEN) != 1)
        return al_errf(e, AL_EIO,
                       "%s: scrypt key derivation failed (N=%llu r=%llu p=%llu; "
                       "out of memory?)",
                       what, (unsigned long long)n, (unsigned long long)r, (unsigned long long)p);
    return 0;
}

/* Public half derived from the seed, compared with the stored one: catches a wrong
 * passphrase on keys without a checksum and any corruption of sk. */
static int
seckey_check_pair(const struct minisig_seckey *sk, const char *what, struct al_err *e)
{
    int rc = -1;
    uint8_t pub[32];
    size_t len = sizeof pub;
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk->sk, 32);
    if (!key || EVP_PKEY_get_raw_public_key(key, pub, &len) != 1 || len != 32) {
        al_errf(e, AL_EINTERNAL, "%s: cannot load the Ed25519 key", what);
        goto out;
    }
    if (CRYPTO_memcmp(pub, sk->sk + 32, 32) != 0) {
        al_errf(e, AL_EFORMAT, "%s: secret and public halves of the key do not match", what);
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(key);
    return rc;
}

/* Reads one line from fd into buf (cap bytes incl. NUL); end of input ends the line. */
static int
tty_read_line(int fd, char *buf, size_t cap, struct al_err *e)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return al_errno(e, errno, "/dev/tty: read passphrase");
        if (r == 0 || c == '\n')
            break;
        if (n + 1 >= cap)
            return al_errf(e, AL_ELIMIT, "passphrase longer than %d bytes", MINISIG_PASSPHRASE_MAX);
        buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (n > MINISIG_PASSPHRASE_MAX)
        return al_errf(e, AL_ELIMIT, "passphrase longer than %d bytes", MINISIG_PASSPHRASE_MAX);
    return 0;
}

static int
tty_prompt(int fd, const char *prompt, char *buf, size_t cap, struct al_err *e)
{
    struct termios old, quiet;
    bool restore = false;
    int rc = -1;
    if (tcgetattr(fd, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
    }
    if (fsx_write_all(fd, prompt, strlen(prompt), "/dev/tty", e) < 0)
        goto out;
    if (tty_read_line(fd, buf, cap, e) < 0)
        goto out;
    rc = 0;
out:
    if (restore)
        (void)tcsetattr(fd, TCSAFLUSH, &old); /* best effort: terminal state only */
    (void)!write(fd, "\n", 1);                /* best effort: move past the prompt */
    return rc;
}

/* ===== Lifecycle ============================================================================ */

void
minisig_seckey_free(struct minisig_seckey *sk)
{
    secmem_free(sk);
}

void
minisig_seckey_pubkey(const struct minisig_seckey *sk, struct minisig_pubkey *pk)
{
    memset(pk, 0, sizeof *pk);
    memcpy(pk->key_id, sk->key_id, MINISIG_KEYID_LEN);
    memcpy(pk->pk, sk->sk + 32, 32);
    snprintf(pk->source, sizeof pk->source, "secret key");
}

int
minisig_seckey_generate(struct minisig_seckey **out, struct al_err *e)
{
    int rc = -1;
    EVP_PKEY *key = NULL;
    struct minisig_seckey *sk = secmem_alloc(sizeof *sk);
    size_t pub_len = 32;
    *out = NULL;
    if (RAND_bytes(sk->key_id, MINISIG_KEYID_LEN) != 1 || RAND_bytes(sk->sk, 32) != 1) {
        al_errf(e, AL_EINTERNAL, "random number generator failed");
        goto out;
    }
    key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk->sk, 32);
    if (!key || EVP_PKEY_get_raw_public_key(key, sk->sk + 32, &pub_len) != 1 || pub_len != 32) {
        al_errf(e, AL_EINTERNAL, "Ed25519 key generation failed");
        goto out;
    }
    *out = sk;
    sk = NULL;
    rc = 0;
out:
    EVP_PKEY_free(key);
    secmem_free(sk);
    return rc;
}

/* ===== Secret key files ===================================================================== */

/* Decoded bytes of a secret key file, in secure memory; comment into info when non-NULL. */
static int
seckey_decode(const char *text, size_t len, const char *what, uint8_t *raw,
              struct minisig_seckey_info *info, struct al_err *e)
{
    const char *end = text + len;
    const char *nl = memchr(text, '\n', len);
    size_t pl = strlen(UNTRUSTED_PREFIX);
    char field[512];
    if (!nl || (size_t)(nl - text) < pl || memcmp(text, UNTRUSTED_PREFIX, pl) != 0)
        return al_errf(e, AL_EFORMAT, "%s: line 1 must start with \"%s\"", what, UNTRUSTED_PREFIX);
    snprintf(field, sizeof field, "%s: line 1: untrusted comment", what);
    size_t cl = (size_t)(nl - text) - pl;
    if (minisig_comment_check(text + pl, cl, MINISIG_COMMENT_MAX, field, e) < 0)
        return -1;
    if (info) {
        memcpy(info->comment, text + pl, cl);
        info->comment[cl] = '\0';
    }
    const char *b = nl + 1;
    const char *bnl = b < end ? memchr(b, '\n', (size_t)(end - b)) : NULL;
    const char *bend = bnl ? bnl : end;
    if (bnl && bnl + 1 != end)
        return al_errf(e, AL_EFORMAT, "%s: unexpected data after line 2 (byte %td)", what,
                       bnl + 1 - text);
    snprintf(field, sizeof field, "%s: line 2 (secret key)", what);
    if (b >= end)
        return al_errf(e, AL_EFORMAT, "%s: truncated: line 2 (secret key) is missing", what);
    if (minisig_b64_decode(b, (size_t)(bend - b), raw, SK_BYTES, field, e) < 0)
        return -1;
    if (raw[0] != 'E' || raw[1] != 'd')
        return al_errf(e, AL_EUNSUPPORTED,
                       "%s: unsupported signature algorithm 0x%02x%02x (expected \"Ed\")", what,
                       raw[0], raw[1]);
    if (raw[4] != 'B' || raw[5] != '2')
        return al_errf(e, AL_EUNSUPPORTED,
                       "%s: unsupported checksum algorithm 0x%02x%02x (expected \"B2\")", what,
                       raw[4], raw[5]);
    bool enc = raw[2] == 'S' && raw[3] == 'c';
    if (!enc && !(raw[2] == 0 && raw[3] == 0))
        return al_errf(e, AL_EUNSUPPORTED,
                       "%s: unsupported key derivation 0x%02x%02x (expected \"Sc\" or none)", what,
                       raw[2], raw[3]);
    if (info) {
        info->encrypted = enc;
        info->opslimit = enc ? le64_get(raw + SK_OFF_OPS) : 0;
        info->memlimit = enc ? le64_get(raw + SK_OFF_MEM) : 0;
    }
    return 0;
}

int
minisig_seckey_inspect(const char *text, size_t len, struct minisig_seckey_info *info,
                       struct al_err *e)
{
    uint8_t *raw = secmem_alloc(SK_BYTES);
    memset(info, 0, sizeof *info);
    int rc = seckey_decode(text, len, "secret key", raw, info, e);
    secmem_free(raw);
    return rc;
}

int
minisig_seckey_parse(const char *text, size_t len, const char *what, const char *passphrase,
                     struct minisig_seckey **out, struct al_err *e)
{
    int rc = -1;
    struct minisig_seckey_info info;
    uint8_t *raw = secmem_alloc(SK_BYTES + SK_KEYNUM_LEN + 32);
    uint8_t *stream = raw + SK_BYTES;
    uint8_t *chk = stream + SK_KEYNUM_LEN;
    char *asked = NULL;
    struct minisig_seckey *sk = NULL;
    *out = NULL;
    if (!what)
        what = "secret key";
    if (seckey_decode(text, len, what, raw, &info, e) < 0)
        goto out;
    if (info.encrypted) {
        if (!passphrase) {
            if (minisig_passphrase_read(NULL, false, &asked, e) < 0)
                goto out;
            passphrase = asked;
        }
        if (seckey_stream(what, passphrase, raw + SK_OFF_SALT, info.opslimit, info.memlimit, stream,
                          e) < 0)
            goto out;
        for (size_t i = 0; i < SK_KEYNUM_LEN; i++)
            raw[SK_OFF_KEYNUM + i] ^= stream[i];
    }
    sk = secmem_alloc(sizeof *sk);
    memcpy(sk->key_id, raw + SK_OFF_KEYNUM, MINISIG_KEYID_LEN);
    memcpy(sk->sk, raw + SK_OFF_KEYNUM + MINISIG_KEYID_LEN, 64);
    seckey_checksum(sk, chk);
    const uint8_t *stored = raw + SK_OFF_KEYNUM + MINISIG_KEYID_LEN + 64;
    bool chk_ok = CRYPTO_memcmp(chk, stored, 32) == 0;
    if (info.encrypted && !chk_ok) {
        al_errf(e, AL_EVERIFY, "%s: wrong passphrase for that key (checksum mismatch)", what);
        goto out;
    }
    /* minisign -W leaves the checksum zero; a non-zero wrong one means corruption */
    static const uint8_t zero[32];
    if (!info.encrypted && !chk_ok && CRYPTO_memcmp(stored, zero, 32) != 0) {
        al_errf(e, AL_EFORMAT, "%s: checksum does not match the key (file corrupted)", what);
        goto out;
    }
    if (seckey_check_pair(sk, what, e) < 0)
        goto out;
    *out = sk;
    sk = NULL;
    rc = 0;
out:
    secmem_free(sk);
    secmem_free(asked);
    secmem_free(raw);
    return rc;
}

int
minisig_seckey_load(const char *path, const char *passphrase, struct minisig_seckey **sk,
                    struct al_err *e)
{
    char *text = NULL;
    size_t len = 0;
    *sk = NULL;
    if (fsx_read_file(path, MINISIG_FILE_MAX, &text, &len, e) < 0)
        return -1;
    int rc = minisig_seckey_parse(text, len, path, passphrase, sk, e);
    OPENSSL_cleanse(text, len); /* an unencrypted key is secret as text too */
    free(text);
    return rc;
}

char *
minisig_seckey_format(const struct minisig_seckey *sk, const char *passphrase, uint64_t opslimit,
                      uint64_t memlimit, const char *comment, struct al_err *e)
{
    char *result = NULL;
    char *b64 = NULL;
    uint8_t *raw = secmem_alloc(SK_BYTES + SK_KEYNUM_LEN);
    uint8_t *stream = raw + SK_BYTES;
    if (!comment)
        comment = passphrase ? "airlock encrypted secret key" : "airlock secret key";
    if (minisig_comment_check(comment, strlen(comment), MINISIG_COMMENT_WRITE_MAX,
                              "secret key comment", e) < 0)
        goto out;
    raw[0] = 'E';
    raw[1] = 'd';
    raw[4] = 'B';
    raw[5] = '2';
    memcpy(raw + SK_OFF_KEYNUM, sk->key_id, MINISIG_KEYID_LEN);
    memcpy(raw + SK_OFF_KEYNUM + MINISIG_KEYID_LEN, sk->sk, 64);
    seckey_checksum(sk, raw + SK_OFF_KEYNUM + MINISIG_KEYID_LEN + 64);
    if (passphrase) {
        raw[2] = 'S';
        raw[3] = 'c';
        if (RAND_bytes(raw + SK_OFF_SALT, 32) != 1) {
            al_errf(e, AL_EINTERNAL, "random number generator failed");
            goto out;
        }
        le64_put(raw + SK_OFF_OPS, opslimit);
        le64_put(raw + SK_OFF_MEM, memlimit);
        if (seckey_stream("new secret key", passphrase, raw + SK_OFF_SALT, opslimit, memlimit,
                          stream, e) < 0)
            goto out;
        for (size_t i = 0; i < SK_KEYNUM_LEN; i++)
            raw[SK_OFF_KEYNUM + i] ^= stream[i];
    }
    b64 = minisig_b64_encode(raw, SK_BYTES);
    size_t need = strlen(UNTRUSTED_PREFIX) + strlen(comment) + strlen(b64) + 3;
    result = secmem_alloc(need);
    snprintf(result, need, UNTRUSTED_PREFIX "%s\n%s\n", comment, b64);
out:
    if (b64) {
        OPENSSL_cleanse(b64, strlen(b64));
        free(b64);
    }
    secmem_free(raw);
    return result;
}

/* ===== Passphrases ========================================================================== */

static char *
passphrase_from_file(const char *file, struct al_err *e)
{
    char *text = NULL;
    size_t len = 0;
    char *out = NULL;
    if (fsx_read_file(file, 64 * 1024, &text, &len, e) < 0)
        return NULL;
    const char *nl = memchr(text, '\n', len);
    size_t n = nl ? (size_t)(nl - text) : len;
    if (n > 0 && text[n - 1] == '\r')
        n--;
    if (n > MINISIG_PASSPHRASE_MAX) {
        al_errf(e, AL_ELIMIT, "%s: passphrase longer than %d bytes", file, MINISIG_PASSPHRASE_MAX);
    } else if (memchr(text, '\0', n)) {
        al_errf(e, AL_EFORMAT, "%s: passphrase contains a NUL byte", file);
    } else {
        out = secmem_alloc(n + 1);
        memcpy(out, text, n);
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return out;
}

int
minisig_passphrase_read(const char *file, bool confirm, char **out, struct al_err *e)
{
    int rc = -1;
    int fd = -1;
    char *a = NULL;
    char *b = NULL;
    *out = NULL;
    if (file) {
        a = passphrase_from_file(file, e);
        if (!a)
            goto out;
    } else if (getenv("AIRLOCK_PASSPHRASE")) {
        const char *env = getenv("AIRLOCK_PASSPHRASE");
        size_t n = strlen(env);
        if (n > MINISIG_PASSPHRASE_MAX) {
            al_errf(e, AL_ELIMIT, "AIRLOCK_PASSPHRASE longer than %d bytes",
                    MINISIG_PASSPHRASE_MAX);
            goto out;
        }
        a = secmem_alloc(n + 1);
        memcpy(a, env, n);
    } else {
        fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
            al_errf(e, AL_EUSAGE,
                    "a passphrase is needed but there is no terminal to ask on; "
                    "set AIRLOCK_PASSPHRASE or use --passphrase-file");
            goto out;
        }
        a = secmem_alloc(MINISIG_PASSPHRASE_MAX + 2);
        if (tty_prompt(fd, "Passphrase: ", a, MINISIG_PASSPHRASE_MAX + 2, e) < 0)
            goto out;
        if (confirm) {
            b = secmem_alloc(MINISIG_PASSPHRASE_MAX + 2);
            if (tty_prompt(fd, "Passphrase (again): ", b, MINISIG_PASSPHRASE_MAX + 2, e) < 0)
                goto out;
            if (strcmp(a, b) != 0) {
                al_errf(e, AL_EUSAGE, "the two passphrases do not match");
                goto out;
            }
        }
    }
    *out = a;
    a = NULL;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    secmem_free(a);
    secmem_free(b);
    return rc;
}

/* ===== Key generation ======================================================================= */

int
minisig_keygen_ex(const char *pub_path, const char *sec_path, const char *passphrase, bool encrypt,
                  bool force, const char *comment, uint8_t key_id[MINISIG_KEYID_LEN],
                  struct al_err *e)
{
    int rc = -1;
    struct minisig_seckey *sk = NULL;
    char *sec_text = NULL;
    char *pub_text = NULL;
    bool wrote_sec = false;
    if (strcmp(pub_path, sec_path) == 0) {
        al_errf(e, AL_EUSAGE, "%s: public and secret key files must differ", pub_path);
        goto out;
    }
    if (encrypt && (!passphrase || !*passphrase)) {
        al_errf(e, AL_EUSAGE, "empty passphrase; use -W for an unencrypted secret key");
        goto out;
    }
    /* fail before the expensive scrypt run, and never write one file of the pair alone */
    if (!force) {
        const char *paths[2] = {sec_path, pub_path};
        for (int i = 0; i < 2; i++) {
            if (access(paths[i], F_OK) == 0) {
                al_errf(e, AL_EEXIST, "%s: already exists (use --force to overwrite)", paths[i]);
                goto out;
            }
        }
    }
    if (minisig_seckey_generate(&sk, e) < 0)
        goto out;
    sec_text = minisig_seckey_format(sk, encrypt ? passphrase : NULL, MINISIG_SCRYPT_OPSLIMIT,
                                     MINISIG_SCRYPT_MEMLIMIT, comment, e);
    if (!sec_text)
        goto out;
    struct minisig_pubkey pk;
    char id[17];
    char pub_comment[64];
    minisig_seckey_pubkey(sk, &pk);
    minisig_keyid_hex(pk.key_id, id);
    snprintf(pub_comment, sizeof pub_comment, "airlock public key %s", id);
    pub_text = minisig_pubkey_format(&pk, pub_comment);
    if (fsx_write_atomic(sec_path, sec_text, strlen(sec_text), 0600, !force, e) < 0)
        goto out;
    wrote_sec = true;
    if (fsx_write_atomic(pub_path, pub_text, strlen(pub_text), 0600, !force, e) < 0)
        goto out;
    if (key_id)
        memcpy(key_id, pk.key_id, MINISIG_KEYID_LEN);
    rc = 0;
out:
    if (rc != 0 && wrote_sec)
        (void)unlink(sec_path); /* best effort: do not leave a secret key without its pair */
    free(pub_text);
    secmem_free(sec_text);
    minisig_seckey_free(sk);
    return rc;
}

int
minisig_keygen(const char *pub_path, const char *sec_path, const char *passphrase, bool encrypt,
               bool force, struct al_err *e)
{
    return minisig_keygen_ex(pub_path, sec_path, passphrase, encrypt, force, NULL, NULL, e);
}

/* ===== Signing =============================================================================== */

static int
ed25519_sign(const struct minisig_seckey *sk, const void *msg, size_t len, uint8_t sig[64],
             struct al_err *e)
{
    int rc = -1;
    EVP_MD_CTX *ctx = NULL;
    size_t sig_len = 64;
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk->sk, 32);
    if (!key)
        goto fail;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1)
        goto fail;
    if (EVP_DigestSign(ctx, sig, &sig_len, len ? msg : (const void *)"", len) != 1 || sig_len != 64)
        goto fail;
    rc = 0;
    goto out;
fail:
    al_errf(e, AL_EINTERNAL, "Ed25519 signing failed");
out:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return rc;
}

/* Signs a BLAKE2b-512 digest ("ED"), then the global signature, and checks both with the
 * public half before returning (R12). */
static int
sign_digest(const struct minisig_seckey *sk, const uint8_t digest[BLAKE2B512_LEN],
            const char *trusted_comment, const char *untrusted_comment, struct minisig_sig *s,
            struct al_err *e)
{
    int rc = -1;
    uint8_t *glob = NULL;
    memset(s, 0, sizeof *s);
    if (!untrusted_comment)
        untrusted_comment = "signature from airlock secret key";
    size_t tl = strlen(trusted_comment);
    if (minisig_comment_check(untrusted_comment, strlen(untrusted_comment),
                              MINISIG_COMMENT_WRITE_MAX, "untrusted comment", e) < 0 ||
        minisig_comment_check(trusted_comment, tl, MINISIG_TRUSTED_COMMENT_MAX, "trusted comment",
                              e) < 0)
        goto out;
    s->prehashed = true;
    memcpy(s->key_id, sk->key_id, MINISIG_KEYID_LEN);
    memcpy(s->untrusted_comment, untrusted_comment, strlen(untrusted_comment) + 1);
    memcpy(s->trusted_comment, trusted_comment, tl + 1);
    if (ed25519_sign(sk, digest, BLAKE2B512_LEN, s->sig, e) < 0)
        goto out;
    glob = xmalloc(64 + tl);
    memcpy(glob, s->sig, 64);
    memcpy(glob + 64, trusted_comment, tl);
    if (ed25519_sign(sk, glob, 64 + tl, s->global_sig, e) < 0)
        goto out;
    if (minisig_ed25519_verify(sk->sk + 32, s->sig, digest, BLAKE2B512_LEN) < 0 ||
        minisig_ed25519_verify(sk->sk + 32, s->global_sig, glob, 64 + tl) < 0) {
        al_errf(e, AL_EINTERNAL, "the new signature does not verify with the key's public half");
        goto out;
    }
    rc = 0;
out:
    free(glob);
    return rc;
}

int
minisig_sign_buf(const struct minisig_seckey *sk, const void *data, size_t len,
                 const char *trusted_comment, const char *untrusted_comment, struct minisig_sig *s,
                 struct al_err *e)
{
    uint8_t d[BLAKE2B512_LEN];
    char deflt[64];
    if (!trusted_comment) {
        snprintf(deflt, sizeof deflt, "timestamp:%lld", (long long)time(NULL));
        trusted_comment = deflt;
    }
    if (hash_blake2b512(data, len, d, e) < 0)
        return -1;
    return sign_digest(sk, d, trusted_comment, untrusted_comment, s, e);
}

int
minisig_sign_file(const struct minisig_seckey *sk, const char *path, const char *trusted_comment,
                  const char *untrusted_comment, struct minisig_sig *s, struct al_err *e)
{
    uint8_t d[BLAKE2B512_LEN];
    char *deflt = NULL;
    if (!trusted_comment) {
        const char *slash = strrchr(path, '/');
        deflt = xasprintf("timestamp:%lld\tfile:%s\thashed", (long long)time(NULL),
                          slash ? slash + 1 : path);
        trusted_comment = deflt;
    }
    int rc = hash_blake2b512_file(path, d, e);
    if (rc == 0)
        rc = sign_digest(sk, d, trusted_comment, untrusted_comment, s, e);
    free(deflt);
    return rc;
}
