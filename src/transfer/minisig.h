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
#define MINISIG_COMMENT_MAX 1024   /* bytes of a comment line, as minisign's COMMENTMAXBYTES */

struct minisig_pubkey {
    uint8_t key_id[MINISIG_KEYID_LEN]; /* as stored (little-endian u64) */
    uint8_t pk[32];                    /* Ed25519 public key */
    char source[256];                  /* file it came from, for messages */
};

struct minisig_sig {
    bool prehashed;                           /* "ED" (BLAKE2b-512) vs legacy "Ed" */
    uint8_t key_id[MINISIG_KEYID_LEN];
    uint8_t sig[64];
    char untrusted_comment[MINISIG_COMMENT_MAX + 1]; /* text after "untrusted comment: " */
    char trusted_comment[MINISIG_COMMENT_MAX + 1];   /* text after "trusted comment: " */
    uint8_t global_sig[64];
};

/* A set of trusted public keys: one .pub file, or every *.pub in a directory. */
struct minisig_trust {
    struct minisig_pubkey *keys; /* owned */
    size_t n;
};

/* Key id as minisign prints it: 16 upper-case hex digits of the little-endian u64. */
void minisig_keyid_hex(const uint8_t key_id[MINISIG_KEYID_LEN], char out[17]);

/* Parse a public key: either a whole .pub file or the bare base64 line (minisign -P). */
int minisig_pubkey_parse(const char *text, size_t len, struct minisig_pubkey *pk,
                         struct al_err *e);
int minisig_pubkey_load(const char *path, struct minisig_pubkey *pk, struct al_err *e);
/* Write a .pub file text into an owned string. */
char *minisig_pubkey_format(const struct minisig_pubkey *pk, const char *untrusted_comment);

int minisig_trust_load(const char *path_or_dir, struct minisig_trust *t, struct al_err *e);
void minisig_trust_free(struct minisig_trust *t);

int minisig_sig_parse(const char *text, size_t len, struct minisig_sig *s, struct al_err *e);
int minisig_sig_load(const char *path, struct minisig_sig *s, struct al_err *e);
char *minisig_sig_format(const struct minisig_sig *s);  /* owned .minisig text */

/* Verify s over a message given as its bytes (data) -- the function hashes as needed --
 * against the trusted set, in minisign's order: key id known, signature, global signature.
 * On success *signer (may be NULL) points into t. Failures are AL_EVERIFY with a message
 * naming what failed ("signed by unknown key ID ...", "signature does not match", "trusted
 * comment was modified"). */
int minisig_verify_buf(const struct minisig_trust *t, const struct minisig_sig *s,
                       const void *data, size_t len, const struct minisig_pubkey **signer,
                       struct al_err *e);
/* Same for a file (streamed BLAKE2b-512 for "ED"; legacy "Ed" files are read whole, capped). */
int minisig_verify_file(const struct minisig_trust *t, const struct minisig_sig *s,
                        const char *path, const struct minisig_pubkey **signer,
                        struct al_err *e);

/* ---- secret-key side (transfer/sign.c) ---- */
struct minisig_seckey; /* opaque; lives in locked, wiped memory */

/* Load a secret key; passphrase NULL means: ask on the terminal if the key is encrypted,
 * or read AIRLOCK_PASSPHRASE / --passphrase-file as the caller arranged. */
int minisig_seckey_load(const char *path, const char *passphrase, struct minisig_seckey **sk,
                        struct al_err *e);
void minisig_seckey_free(struct minisig_seckey *sk);  /* wipes */
/* Public half of a loaded secret key. */
void minisig_seckey_pubkey(const struct minisig_seckey *sk, struct minisig_pubkey *pk);

/* Create a key pair; passphrase NULL/"" with encrypt=false writes an unencrypted key (-W).
 * Files are created 0600 and never overwritten unless force. */
int minisig_keygen(const char *pub_path, const char *sec_path, const char *passphrase,
                   bool encrypt, bool force, struct al_err *e);

/* Sign data (prehashed "ED") with a trusted comment; fills s, and self-verifies the result
 * against the key's public half before returning. */
int minisig_sign_buf(const struct minisig_seckey *sk, const void *data, size_t len,
                     const char *trusted_comment, const char *untrusted_comment,
                     struct minisig_sig *s, struct al_err *e);
int minisig_sign_file(const struct minisig_seckey *sk, const char *path,
                      const char *trusted_comment, const char *untrusted_comment,
                      struct minisig_sig *s, struct al_err *e);

#endif
