/* err.c -- error formatting and the single code -> exit status / HTTP status table. */
#include "util/err.h"

#include <stdio.h>
#include <errno.h>
#include <string.h>

static const struct {
    enum al_code code;
    const char *name;
    int exit_status;
    int http;
} err_map[] = {
    {AL_OK, "ok", AL_EXIT_OK, 200},
    {AL_EVERIFY, "verify_failed", AL_EXIT_VERIFY, 422},
    {AL_EUSAGE, "invalid_request", AL_EXIT_USAGE, 400},
    {AL_EFORMAT, "invalid_format", AL_EXIT_INPUT, 400},
    {AL_ELIMIT, "limit_exceeded", AL_EXIT_INPUT, 413},
    {AL_EUNSUPPORTED, "unsupported", AL_EXIT_INPUT, 400},
    {AL_ENOTFOUND, "not_found", AL_EXIT_IO, 404},
    {AL_EEXIST, "exists", AL_EXIT_IO, 409},
    {AL_EIO, "io_error", AL_EXIT_IO, 500},
    {AL_EINTERNAL, "internal_error", AL_EXIT_IO, 500},
};

static int
find(enum al_code code)
{
    for (size_t i = 0; i < sizeof err_map / sizeof err_map[0]; i++)
        if (err_map[i].code == code)
            return (int)i;
    return (int)(sizeof err_map / sizeof err_map[0]) - 1; /* unknown: internal */
}

int
al_exit_status(enum al_code code)
{
    return err_map[find(code)].exit_status;
}

int
al_http_status(enum al_code code)
{
    return err_map[find(code)].http;
}

const char *
al_code_name(enum al_code code)
{
    return err_map[find(code)].name;
}

int
al_errf(struct al_err *e, enum al_code code, const char *fmt, ...)
{
    if (!e)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int
al_errno(struct al_err *e, int errnum, const char *fmt, ...)
{
    if (!e)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(e->msg);
    char buf[128];
    /* GNU strerror_r returns a pointer that may or may not be buf */
    const char *s = strerror_r(errnum, buf, sizeof buf);
    snprintf(e->msg + n, sizeof e->msg - n, ": %s", s);
    e->code = errnum == ENOENT ? AL_ENOTFOUND : errnum == EEXIST ? AL_EEXIST : AL_EIO;
    return -1;
}

int
al_errctx(struct al_err *e, const char *fmt, ...)
{
    if (!e)
        return -1;
    char prefix[AL_ERR_MSG], old[AL_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
    return -1;
}

void
al_err_clear(struct al_err *e)
{
    if (e) {
        e->code = AL_OK;
        e->msg[0] = '\0';
    }
}
