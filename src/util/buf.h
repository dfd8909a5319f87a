/* buf.h -- growable byte buffer: the one way to build strings, files and HTTP responses.
 * Always NUL-terminated after data[len] so it can be used as a C string. */
#ifndef AIRLOCK_UTIL_BUF_H
#define AIRLOCK_UTIL_BUF_H

#include <stddef.h>

struct buf {
    char *data;   /* owned; NULL until the first append */
    size_t len;   /* bytes used, excluding the terminating NUL */
    size_t cap;   /* bytes allocated */
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);                 /* safe on a zeroed buffer */
void buf_reset(struct buf *b);                /* len = 0, keeps memory */
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *buf_steal(struct buf *b);               /* returns owned string; b is reset to empty */

#endif
