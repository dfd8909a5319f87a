/* pool.h -- a persistent pool of worker threads for the forward pass.
 * pool_run(p, fn, arg) calls fn(arg, ith, nth) once on each of nth threads (the caller is
 * thread 0) and returns when all have finished: a fork-join barrier. pool_run_dynamic is the
 * same for jobs whose fn takes its work from shared counters: a worker that has not started by
 * the time the caller's own fn returns (preempted, or still waking) skips the run instead of
 * being waited for, so on a machine with more runnable threads than cores one descheduled
 * worker no longer stalls every step for a whole time slice. Between runs workers spin
 * briefly (decode issues a run every few microseconds) and then sleep on a condition variable,
 * so an idle engine costs no CPU. The only mutable state shared across threads in the engine
 * lives here (R25). One caller at a time: the run functions are not reentrant. */
#ifndef AIRLOCK_ENGINE_POOL_H
#define AIRLOCK_ENGINE_POOL_H

#include <pthread.h>
#include <stdatomic.h>

#include "util/err.h"

typedef void (*pool_fn)(void *arg, int ith, int nth);

struct pool {
    int n_threads;              /* workers + the calling thread; fixed at init */
    pthread_t *threads;         /* owned, n_threads - 1 entries */
    int n_started;              /* threads actually created (for cleanup) */
    pool_fn fn;                 /* job of the current run; written by the caller before gen++ */
    void *arg;                  /* its argument; same guard as fn */
    _Atomic unsigned gen;       /* run counter, written by the caller to start a run: +2 per
                                 * run, bit 0 set for a dynamic run */
    _Atomic int n_done;         /* workers finished with the current static run; caller resets */
    _Atomic unsigned long long dyn; /* dynamic run: its gen << 32 | POOL_CLOSED | workers inside;
                                 * the caller opens and closes it, workers enter and leave */
    _Atomic int n_sleeping;     /* workers blocked on cv (caller signals only when > 0) */
    _Atomic int stop;           /* set by pool_free: workers exit */
    pthread_mutex_t mu;         /* guards the sleep/wake handshake on cv */
    pthread_cond_t cv;          /* workers wait here after spinning */
};

/* Start n_threads - 1 workers (n_threads >= 1). */
int pool_init(struct pool *p, int n_threads, struct al_err *e);
void pool_run(struct pool *p, pool_fn fn, void *arg);
/* fn must not depend on every thread calling it (it claims work from counters in arg): it is
 * called on the caller and on every worker that arrives before the caller's call returns. */
void pool_run_dynamic(struct pool *p, pool_fn fn, void *arg);
void pool_free(struct pool *p); /* joins the workers; safe on a zeroed pool */

/* Number of physical cores (distinct core ids), at least 1: the default for -t. */
int pool_default_threads(void);

/* Split [0, n) into nth nearly equal parts aligned to `align`; part ith is [*lo, *hi). */
void pool_split(int n, int align, int ith, int nth, int *lo, int *hi);

#endif
