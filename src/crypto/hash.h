/* hash.h -- SHA-256 and BLAKE2b-512 over OpenSSL EVP (SHA-NI where the CPU has it), streaming
 * contexts, one-file hashing with read-ahead, and parallel hashing of many files.
 * Does not decide what a mismatch means (transfer/manifest.c does). */
#ifndef AIRLOCK_CRYPTO_HASH_H
#define AIRLOCK_CRYPTO_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SHA256_LEN 32
#define BLAKE2B512_LEN 64

struct progress; /* util/progress.h */

/* Streaming contexts wrap EVP_MD_CTX; init/update/final, free is safe after final or on zero. */
struct hash_ctx {
    void *md; /* EVP_MD_CTX*, owned */
};
int hash_sha256_init(struct hash_ctx *c, struct al_err *e);
int hash_blake2b512_init(struct hash_ctx *c, struct al_err *e);
int hash_update(struct hash_ctx *c, const void *p, size_t n, struct al_err *e);
int hash_final(struct hash_ctx *c, uint8_t *out, struct al_err *e); /* out: 32 or 64 bytes */
void hash_ctx_free(struct hash_ctx *c);

/* One-shot helpers on memory. */
int hash_sha256(const void *p, size_t n, uint8_t out[SHA256_LEN], struct al_err *e);
int hash_blake2b512(const void *p, size_t n, uint8_t out[BLAKE2B512_LEN], struct al_err *e);

/* Lower-case hex of n bytes into out (2n+1 bytes incl. NUL). */
void hash_hex(const uint8_t *d, size_t n, char *out);
/* Parse exactly 2n hex digits (either case) into d; -1 on any other character or length. */
int hash_unhex(const char *hex, size_t hexlen, uint8_t *d, size_t n);

/* Hash one regular file (opened O_NOFOLLOW) with large reads and sequential read-ahead.
 * Adds bytes to prog (may be NULL) as it goes. size receives the number of bytes hashed. */
int hash_sha256_file(const char *path, uint8_t out[SHA256_LEN], uint64_t *size,
                     struct progress *prog, struct al_err *e);
int hash_blake2b512_file(const char *path, uint8_t out[BLAKE2B512_LEN], struct al_err *e);

/* Many files at once: jobs are spread over `threads` workers (0 = usable CPUs), largest
 * first. Every job gets its own result; a failing file does not stop the others. */
struct hash_job {
    const char *path;           /* borrowed */
    uint8_t sha256[SHA256_LEN]; /* out */
    uint64_t size;              /* out: bytes hashed */
    int rc;                     /* out: 0 ok, -1 failed (see err) */
    struct al_err err;          /* out */
};
/* Returns 0 when every job ran (check each job's rc), -1 only on a setup failure. */
int hash_files(struct hash_job *jobs, size_t n, int threads, struct progress *prog,
               struct al_err *e);

#endif
