/* parse.c -- checked number parsing (see parse.h). */
#include "util/parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int
parse_u64(const char *s, uint64_t min, uint64_t max, const char *what, uint64_t *out,
          struct al_err *e)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return al_errf(e, AL_EUSAGE, "%s: expected a non-negative integer, got '%s'", what,
                       s ? s : "");
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return al_errf(e, AL_EUSAGE, "%s: expected a non-negative integer, got '%s'", what, s);
    if (v < min || v > max)
        return al_errf(e, AL_EUSAGE, "%s: %llu is outside [%llu, %llu]", what, v,
                       (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

int
parse_int(const char *s, int min, int max, const char *what, int *out, struct al_err *e)
{
    if (!s || !*s || *s == ' ')
        return al_errf(e, AL_EUSAGE, "%s: expected an integer, got '%s'", what, s ? s : "");
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0')
        return al_errf(e, AL_EUSAGE, "%s: expected an integer, got '%s'", what, s);
    if (v < min || v > max)
        return al_errf(e, AL_EUSAGE, "%s: %ld is outside [%d, %d]", what, v, min, max);
    *out = (int)v;
    return 0;
}

int
parse_double(const char *s, double min, double max, const char *what, double *out,
             struct al_err *e)
{
    if (!s || !*s || *s == ' ')
        return al_errf(e, AL_EUSAGE, "%s: expected a number, got '%s'", what, s ? s : "");
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end != '\0' || !isfinite(v))
        return al_errf(e, AL_EUSAGE, "%s: expected a number, got '%s'", what, s);
    if (v < min || v > max)
        return al_errf(e, AL_EUSAGE, "%s: %g is outside [%g, %g]", what, v, min, max);
    *out = v;
    return 0;
}

int
parse_size(const char *s, const char *what, uint64_t *out, struct al_err *e)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return al_errf(e, AL_EUSAGE, "%s: expected a size, got '%s'", what, s ? s : "");
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return al_errf(e, AL_EUSAGE, "%s: expected a size, got '%s'", what, s);
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return al_errf(e, AL_EUSAGE, "%s: bad size suffix in '%s'", what, s);
    }
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
        return al_errf(e, AL_EUSAGE, "%s: bad size '%s'", what, s);
    *out = (uint64_t)v << shift;
    return 0;
}
