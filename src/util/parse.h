/* parse.h -- checked number parsing; the only place strto* is allowed (STYLE R23).
 * Each function accepts the whole string or fails with a message naming `what`. */
#ifndef AIRLOCK_UTIL_PARSE_H
#define AIRLOCK_UTIL_PARSE_H

#include <stdint.h>

#include "util/err.h"

int parse_u64(const char *s, uint64_t min, uint64_t max, const char *what, uint64_t *out,
              struct al_err *e);
int parse_int(const char *s, int min, int max, const char *what, int *out, struct al_err *e);
int parse_double(const char *s, double min, double max, const char *what, double *out,
                 struct al_err *e);
/* "512", "4K", "2M", "1G" (powers of 1024) */
int parse_size(const char *s, const char *what, uint64_t *out, struct al_err *e);

#endif
