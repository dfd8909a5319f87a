/* xalloc.h -- allocation that aborts on exhaustion, and overflow-checked size arithmetic.
 * Out-of-memory is never a way to report bad input: callers bound every size taken from
 * untrusted bytes with size_mul_ok/size_add_ok and a limit *before* allocating. */
#ifndef AIRLOCK_UTIL_XALLOC_H
#define AIRLOCK_UTIL_XALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);                 /* returns owned memory; aborts on failure */
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);       /* invalidates p */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *xaligned_alloc(size_t align, size_t n); /* free with free(); n rounded up to align */

static inline bool
size_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

static inline bool
size_add_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

static inline bool
u64_mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

static inline bool
u64_add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

#endif
