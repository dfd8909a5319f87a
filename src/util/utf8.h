/* utf8.h -- strict UTF-8 decoding (RFC 3629): overlong forms, surrogates and code points above
 * U+10FFFF are invalid. Used wherever text from untrusted input must be valid UTF-8 (manifest
 * paths, signature comments). */
#ifndef AIRLOCK_UTIL_UTF8_H
#define AIRLOCK_UTIL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed sequence at p (n > 0 bytes available), 0 when invalid;
 * *cp (may be NULL) receives the code point. */
size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);

#endif
