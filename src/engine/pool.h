/* pool.h -- a persistent pool of worker threads for the forward pass.
 * pool_run(p, fn, arg) calls fn(arg, ith, nth) once on each of nth threads (the caller is
 * thread 0) and returns when all have finished: a fork-join barrier. Between runs workers spin
 * briefly (decode issues a run every few microseconds) and then sleep on a condition variable,
 * so an idle engine costs no CPU. The only mutable state shared across threads in the engine
 * lives here (R25). One caller at a time: pool_run is not reentrant. */
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
    _Atomic unsigned gen;       /* run counter: the caller increments it to start a run */
    _Atomic int n_done;         /* workers finished with the current run; caller resets */
    _Atomic int n_sleeping;     /* workers blocked on cv (caller signals only when > 0) */
    _Atomic int stop;           /* set by pool_free: workers exit */
    pthread_mutex_t mu;         /* guards the sleep/wake handshake on cv */
    pthread_cond_t cv;          /* workers wait here after spinning */
};

/* Start n_threads - 1 workers (n_threads >= 1). */
int pool_init(struct pool *p, int n_threads, struct al_err *e);
void pool_run(struct pool *p, pool_fn fn, void *arg);
void pool_free(struct pool *p); /* joins the workers; safe on a zeroed pool */

/* Number of physical cores (distinct core ids), at least 1: the default for -t. */
int pool_default_threads(void);

/* Split [0, n) into nth nearly equal parts aligned to `align`; part ith is [*lo, *hi). */
void pool_split(int n, int align, int ith, int nth, int *lo, int *hi);

#endif
