/* utf8.h -- strict UTF-8 decoding (RFC 3629) and encoding: overlong forms, surrogates and code points above
 * U+10FFFF are invalid. Used wherever text from untrusted input must be valid UTF-8 (manifest
 * paths, signature comments). */
#ifndef AIRLOCK_UTIL_UTF8_H
#define AIRLOCK_UTIL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed sequence at p (n > 0 bytes available), 0 when invalid;
 * *cp (may be NULL) receives the code point. */
size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);

/* Write cp (<= U+10FFFF) as 1..4 bytes of UTF-8 to out; returns the byte count. */
size_t utf8_encode(uint32_t cp, char *out);

#endif
