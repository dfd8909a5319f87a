/* err.h -- the one error type every module returns through.
 * Library code never exits: it fills a caller-supplied struct al_err and returns -1 (or NULL).
 * main.c turns the code into an exit status and the server into an HTTP status, both from the
 * single table in err.c (docs/exit-codes.md mirrors it). */
#ifndef AIRLOCK_UTIL_ERR_H
#define AIRLOCK_UTIL_ERR_H

#include <stdarg.h>

enum al_code {
    AL_OK = 0,
    AL_EVERIFY,      /* a signature, hash, size or policy check failed: the input is not trusted */
    AL_EUSAGE,       /* bad command line or request parameters */
    AL_EFORMAT,      /* malformed or hostile input: truncated header, bad field, bad byte */
    AL_ELIMIT,       /* input asks for more than a configured limit (sizes, counts, depth) */
    AL_EUNSUPPORTED, /* well-formed but not supported (unknown architecture, tensor type) */
    AL_ENOTFOUND,    /* a named file, key, model or record does not exist */
    AL_EEXIST,       /* refusing to overwrite an existing file without --force */
    AL_EIO,          /* operating-system error: open, read, write, fsync, rename */
    AL_EINTERNAL,    /* a bug or an impossible state */
};

#define AL_ERR_MSG 768

struct al_err {
    enum al_code code;      /* AL_OK until the first failure */
    char msg[AL_ERR_MSG];   /* human-readable, names the file, field or byte; no trailing newline */
};

/* Fill e (may be NULL) with code and a printf-style message; always returns -1 so callers can
 * write `return al_errf(e, AL_EFORMAT, "...")`. */
int al_errf(struct al_err *e, enum al_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(errno)" of the errno value passed in. */
int al_errno(struct al_err *e, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix an existing message with more context ("bundle x: " + old message). */
int al_errctx(struct al_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void al_err_clear(struct al_err *e);

/* Process exit status for a code (0 ok, 1 verify, 2 usage, 3 I/O or internal, 4 bad input). */
int al_exit_status(enum al_code code);
/* HTTP status for a code (400, 401, 404, 413, 422, 500 ...). */
int al_http_status(enum al_code code);
/* Stable lower-case name, e.g. "verify_failed", used in --json output and API errors. */
const char *al_code_name(enum al_code code);

/* Exit statuses, documented in docs/exit-codes.md and `airlock --help`. */
enum {
    AL_EXIT_OK = 0,
    AL_EXIT_VERIFY = 1,
    AL_EXIT_USAGE = 2,
    AL_EXIT_IO = 3,
    AL_EXIT_INPUT = 4,
};

#endif
