/* minisig.h -- minisign-compatible Ed25519 keys and signatures (formats: docs/formats/minisign.md).
 *   public key file:  "untrusted comment: ...\n" + base64("Ed" || key_id[8] || pk[32]) + "\n"
 *   secret key file:  "untrusted comment: ...\n" + base64(sig_alg "Ed" || kdf_alg ("Sc"|0,0) ||
 *                     chk_alg "B2" || salt[32] || opslimit u64le || memlimit u64le ||
 *                     (key_id[8] || sk[64] || chk[32]) XOR scrypt-stream) + "\n"
 *   signature file:   "untrusted comment: ...\n" + base64("ED"|"Ed" || key_id[8] || sig[64]) +
 *                     "\ntrusted comment: ...\n" + base64(global_sig[64]) + "\n"
 * "ED" signs BLAKE2b-512(file); legacy "Ed" signs the file bytes. The global signature covers
 * sig[64] || trusted comment text. All parsing is strict and bounded (input is untrusted).
 * Secret-key operations live in transfer/sign.c only. */
#ifndef AIRLOCK_TRANSFER_MINISIG_H
#define AIRLOCK_TRANSFER_MINISIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define MINISIG_KEYID_LEN 8
#define MINISIG_COMMENT_MAX 1024 /* bytes of a comment line, as minisign's COMMENTMAXBYTES */
/* Longest trusted comment text minisign writes or reads (8192-byte buffer, prefix, NUL). */
#define MINISIG_TRUSTED_COMMENT_MAX 8173
/* Longest untrusted comment we write: minisign reads the line into 1024 bytes with prefix. */
#define MINISIG_COMMENT_WRITE_MAX 1003
/* Cap on .pub / .minisig / secret key file sizes read from disk. */
#define MINISIG_FILE_MAX (64u * 1024u)

struct minisig_pubkey {
    uint8_t key_id[MINISIG_KEYID_LEN]; /* as stored (little-endian u64) */
    uint8_t pk[32];                    /* Ed25519 public key */
    char source[256];                  /* file it came from, for messages */
};

struct minisig_sig {
    bool prehashed;                    /* "ED" (BLAKE2b-512) vs legacy "Ed" */
    uint8_t key_id[MINISIG_KEYID_LEN]; /* signer's key id, as stored */
    uint8_t sig[64];                   /* Ed25519 over BLAKE2b-512(data), or data if legacy */
    char untrusted_comment[MINISIG_COMMENT_MAX + 1];       /* text after "untrusted comment: " */
    char trusted_comment[MINISIG_TRUSTED_COMMENT_MAX + 1]; /* text after "trusted comment: " */
    uint8_t global_sig[64]; /* Ed25519 over sig[64] || trusted_comment */
};

/* A set of trusted public keys: one .pub file, or every *.pub in a directory. */
struct minisig_trust {
    struct minisig_pubkey *keys; /* owned, n entries, no two with the same key id */
    size_t n;                    /* number of keys */
};

/* Key id as minisign prints it: 16 upper-case hex digits of the little-endian u64. */
void minisig_keyid_hex(const uint8_t key_id[MINISIG_KEYID_LEN], char out[17]);

/* Parse a public key: either a whole .pub file or the bare base64 line (minisign -P).
 * text is borrowed and need not be NUL-terminated. */
int minisig_pubkey_parse(const char *text, size_t len, struct minisig_pubkey *pk, struct al_err *e);
int minisig_pubkey_load(const char *path, struct minisig_pubkey *pk, struct al_err *e);
/* Write a .pub file text into an owned string. */
char *minisig_pubkey_format(const struct minisig_pubkey *pk, const char *untrusted_comment);

/* A file path or a directory (every *.pub in it, not recursive); never a bare key string.
 * A malformed .pub in the directory is an error naming it. t is filled with owned keys. */
int minisig_trust_load(const char *path_or_dir, struct minisig_trust *t, struct al_err *e);
void minisig_trust_free(struct minisig_trust *t);

int minisig_sig_parse(const char *text, size_t len, struct minisig_sig *s, struct al_err *e);
int minisig_sig_load(const char *path, struct minisig_sig *s, struct al_err *e);
char *minisig_sig_format(const struct minisig_sig *s); /* owned .minisig text */

/* Verify s over a message given as its bytes (data) -- the function hashes as needed --
 * against the trusted set, in minisign's order: key id known, signature, global signature.
 * On success *signer (may be NULL) points into t. Failures are AL_EVERIFY with a message
 * naming what failed ("signed by unknown key ID ...", "signature does not match", "trusted
 * comment was modified"). */
int minisig_verify_buf(const struct minisig_trust *t, const struct minisig_sig *s, const void *data,
                       size_t len, const struct minisig_pubkey **signer, struct al_err *e);
/* Same for a file (streamed BLAKE2b-512 for "ED"; legacy "Ed" files are read whole, capped). */
int minisig_verify_file(const struct minisig_trust *t, const struct minisig_sig *s,
                        const char *path, const struct minisig_pubkey **signer, struct al_err *e);

/* ---- helpers shared with transfer/sign.c (strict base64, comment checks, Ed25519) ---- */

/* Standard base64 with padding; returns an owned NUL-terminated string. */
char *minisig_b64_encode(const uint8_t *p, size_t n);
/* Decode s[0..len) which must be canonical base64 of exactly n bytes; what names the field. */
int minisig_b64_decode(const char *s, size_t len, uint8_t *out, size_t n, const char *what,
                       struct al_err *e);
/* A comment must be valid UTF-8 without control characters (tab allowed), at most max bytes. */
int minisig_comment_check(const char *s, size_t len, size_t max, const char *what,
                          struct al_err *e);
/* 0 when sig is a valid Ed25519 signature of msg under pk, -1 otherwise (no error text). */
int minisig_ed25519_verify(const uint8_t pk[32], const uint8_t sig[64], const void *msg,
                           size_t len);

/* ---- secret-key side (transfer/sign.c) ---- */
struct minisig_seckey; /* opaque; lives in locked, wiped memory */

/* Load a secret key; passphrase NULL means: ask on the terminal if the key is encrypted,
 * or read AIRLOCK_PASSPHRASE / --passphrase-file as the caller arranged. */
int minisig_seckey_load(const char *path, const char *passphrase, struct minisig_seckey **sk,
                        struct al_err *e);
void minisig_seckey_free(struct minisig_seckey *sk); /* wipes */
/* Public half of a loaded secret key. */
void minisig_seckey_pubkey(const struct minisig_seckey *sk, struct minisig_pubkey *pk);

/* scrypt cost airlock keygen writes: libsodium's "sensitive" limits, as minisign -G uses
 * (N = 2^20, r = 8, p = 1: 1 GiB of memory). Keys with higher costs are refused on load. */
#define MINISIG_SCRYPT_OPSLIMIT 33554432ULL
#define MINISIG_SCRYPT_MEMLIMIT 1073741824ULL
#define MINISIG_PASSPHRASE_MAX 1024 /* bytes, as minisign's PASSWORDMAXBYTES */

/* What a secret key file says about itself, without decrypting (for the fuzzer and tools). */
struct minisig_seckey_info {
    bool encrypted;                        /* kdf "Sc" (true) or none (0,0) */
    uint64_t opslimit;                     /* scrypt cost as stored; 0 when unencrypted */
    uint64_t memlimit;                     /* bytes, as stored; 0 when unencrypted */
    char comment[MINISIG_COMMENT_MAX + 1]; /* untrusted comment text */
};
int minisig_seckey_inspect(const char *text, size_t len, struct minisig_seckey_info *info,
                           struct al_err *e);
/* Parse and (if encrypted) decrypt a secret key file's text. what names it in messages.
 * passphrase NULL: ask as minisig_passphrase_read(NULL, false) does, only if encrypted. */
int minisig_seckey_parse(const char *text, size_t len, const char *what, const char *passphrase,
                         struct minisig_seckey **sk, struct al_err *e);
/* A fresh random key pair with a random 8-byte key id. */
int minisig_seckey_generate(struct minisig_seckey **sk, struct al_err *e);
/* Secret key file text. passphrase NULL: unencrypted (kdf 0,0, as minisign -W); else scrypt
 * with the given cost. Returns owned secure memory: free with secmem_free (crypto/secmem.h). */
char *minisig_seckey_format(const struct minisig_seckey *sk, const char *passphrase,
                            uint64_t opslimit, uint64_t memlimit, const char *comment,
                            struct al_err *e);
/* Passphrase from: file (if non-NULL; first line, newline stripped), else env
 * AIRLOCK_PASSPHRASE, else a prompt on /dev/tty with echo off (asked twice when confirm).
 * *out: owned secure memory, free with secmem_free. */
int minisig_passphrase_read(const char *file, bool confirm, char **out, struct al_err *e);

/* Create a key pair; passphrase NULL/"" with encrypt=false writes an unencrypted key (-W).
 * Files are created 0600 and never overwritten unless force. */
int minisig_keygen(const char *pub_path, const char *sec_path, const char *passphrase, bool encrypt,
                   bool force, struct al_err *e);
/* Same, with the secret key's untrusted comment (NULL: default) and the new key id out
 * (key_id may be NULL). */
int minisig_keygen_ex(const char *pub_path, const char *sec_path, const char *passphrase,
                      bool encrypt, bool force, const char *comment,
                      uint8_t key_id[MINISIG_KEYID_LEN], struct al_err *e);

/* Sign data (prehashed "ED") with a trusted comment; fills s, and self-verifies the result
 * against the key's public half before returning. */
int minisig_sign_buf(const struct minisig_seckey *sk, const void *data, size_t len,
                     const char *trusted_comment, const char *untrusted_comment,
                     struct minisig_sig *s, struct al_err *e);
int minisig_sign_file(const struct minisig_seckey *sk, const char *path,
                      const char *trusted_comment, const char *untrusted_comment,
                      struct minisig_sig *s, struct al_err *e);

#endif
