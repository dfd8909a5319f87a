/* progress.h -- a byte-progress bar with bytes/s and ETA, drawn on stderr only when it is a
 * terminal (quiet otherwise). Thread-safe adds: workers call progress_add from any thread. */
#ifndef AIRLOCK_UTIL_PROGRESS_H
#define AIRLOCK_UTIL_PROGRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct progress {
    const char *label;            /* borrowed, e.g. "hashing" */
    uint64_t total;               /* bytes expected (0 = unknown) */
    _Atomic uint64_t done;        /* bytes so far, added by workers */
    _Atomic int64_t last_draw_ns; /* throttles redraws to ~10/s */
    int64_t start_ns;
    bool enabled; /* false: every call is a no-op */
};

/* enabled: pass cli_stderr_is_tty() && !quiet. */
void progress_init(struct progress *p, const char *label, uint64_t total, bool enabled);
void progress_add(struct progress *p, uint64_t bytes); /* p may be NULL */
/* Absolute form for callers that know the position rather than the step (one thread only):
 * done of total bytes; total replaces the one given to init. p may be NULL. */
void progress_update(struct progress *p, uint64_t done, uint64_t total);
void progress_finish(struct progress *p);              /* final line + newline */

#endif
