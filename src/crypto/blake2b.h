/* blake2b.h -- unkeyed BLAKE2b (RFC 7693) with any output length 1..64.
 * Exists only because OpenSSL 3.0 offers BLAKE2b solely with a 64-byte output (and a
 * keyed MAC), while minisign's secret-key checksum is BLAKE2b-256. Everything else uses
 * OpenSSL through crypto/hash.h. Tested against OpenSSL's BLAKE2b-512 and RFC vectors. */
#ifndef AIRLOCK_CRYPTO_BLAKE2B_H
#define AIRLOCK_CRYPTO_BLAKE2B_H

#include <stddef.h>
#include <stdint.h>

/* out receives outlen bytes (1..64); returns -1 only for an invalid outlen. */
int blake2b_digest(uint8_t *out, size_t outlen, const void *in, size_t inlen);

#endif
