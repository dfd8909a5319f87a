/* pool.c -- fork-join thread pool: generation counter, spin-yield-sleep wait.
 * Why spin first: a decode step issues ~5 runs per layer with a few microseconds of serial
 * work between them; a futex wake per run would cost as much as the work. Why yield next: a
 * longer gap usually means the caller lost its core to another process, and spinning on would
 * keep a core from whoever could use it (on a 2-core machine under load that halved decode
 * speed). Why sleep last: an idle server must not burn the cores other processes need. */
#include "engine/pool.h"

#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/xalloc.h"

#define SPIN_ITERS 2000   /* ~50 us of pause instructions (25-60 ns each): the serial gaps */
#define YIELD_ITERS 1000  /* then ~1-2 ms of sched_yield before a worker sleeps */
#define POOL_CLOSED (1ull << 31)          /* dyn: the caller is done, late workers skip */
#define POOL_INSIDE ((1ull << 31) - 1)    /* dyn: workers inside the run's fn */

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct worker_arg {
    struct pool *p; /* borrowed */
    int ith;        /* this worker's index, 1..n_threads-1 */
};

static void *
worker_main(void *v)
{
    struct worker_arg wa = *(struct worker_arg *)v;
    free(v);
    struct pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            if (spins < SPIN_ITERS + YIELD_ITERS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = g;
        if (!(g & 1u)) {  /* static run: the caller waits for every worker */
            p->fn(p->arg, wa.ith, p->n_threads);
            atomic_fetch_add_explicit(&p->n_done, 1, memory_order_acq_rel);
            continue;
        }
        /* dynamic run: enter only while run g is still open; once inside, fn and arg stay
         * valid until we leave, as the caller waits for the count to drop to zero */
        unsigned long long d = atomic_load_explicit(&p->dyn, memory_order_acquire);
        bool in = false;
        while ((unsigned)(d >> 32) == g && !(d & POOL_CLOSED)) {
            if (atomic_compare_exchange_weak_explicit(&p->dyn, &d, d + 1, memory_order_acq_rel,
                                                      memory_order_acquire)) {
                in = true;
                break;
            }
        }
        if (!in)
            continue;
        p->fn(p->arg, wa.ith, p->n_threads);
        atomic_fetch_sub_explicit(&p->dyn, 1, memory_order_release);
    }
}

int
pool_init(struct pool *p, int n_threads, struct al_err *e)
{
    memset(p, 0, sizeof *p);
    if (n_threads < 1 || n_threads > 1024)
        return al_errf(e, AL_EUSAGE, "thread count %d out of range 1..1024", n_threads);
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1)
        p->threads = xcalloc((size_t)n_threads - 1, sizeof *p->threads);
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = xmalloc(sizeof *wa);
        wa->p = p;
        wa->ith = i;
        int rc = pthread_create(&p->threads[i - 1], NULL, worker_main, wa);
        if (rc != 0) {
            free(wa);
            pool_free(p);
            return al_errno(e, rc, "starting worker thread %d", i);
        }
        p->n_started++;
    }
    return 0;
}

/* Publish run fn(arg) under the next gen (dynamic: bit 0 set) and wake sleeping workers. */
static void
start_run(struct pool *p, pool_fn fn, void *arg, bool dynamic)
{
    p->fn = fn;
    p->arg = arg;
    unsigned g = ((atomic_load_explicit(&p->gen, memory_order_relaxed) >> 1) + 1) << 1 |
                 (dynamic ? 1u : 0u);
    if (dynamic)  /* open, nobody inside; before gen, so a worker seeing g finds it open */
        atomic_store_explicit(&p->dyn, (unsigned long long)g << 32, memory_order_release);
    else
        atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    atomic_store(&p->gen, g); /* seq_cst: pairs with the sleeper count below */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

void
pool_run_dynamic(struct pool *p, pool_fn fn, void *arg)
{
    if (p->n_threads <= 1) {
        fn(arg, 0, 1);
        return;
    }
    start_run(p, fn, arg, true);
    fn(arg, 0, p->n_threads);
    /* close the run: from here on no worker enters; wait for those inside */
    atomic_fetch_or_explicit(&p->dyn, POOL_CLOSED, memory_order_acq_rel);
    int spins = 0;
    while (atomic_load_explicit(&p->dyn, memory_order_acquire) & POOL_INSIDE) {
        if (++spins < SPIN_ITERS)
            cpu_relax();
        else
            sched_yield();
    }
}

void
pool_run(struct pool *p, pool_fn fn, void *arg)
{
    if (p->n_threads <= 1) {
        fn(arg, 0, 1);
        return;
    }
    start_run(p, fn, arg, false);
    fn(arg, 0, p->n_threads);
    int want = p->n_threads - 1;
    int spins = 0;
    while (atomic_load_explicit(&p->n_done, memory_order_acquire) < want) {
        if (++spins < SPIN_ITERS)
            cpu_relax();
        else
            sched_yield();
    }
}

void
pool_free(struct pool *p)
{
    if (!p || p->n_threads == 0)
        return;
    if (p->n_started > 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->stop, 1);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->n_started; i++)
            pthread_join(p->threads[i], NULL);
    }
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    memset(p, 0, sizeof *p);
}

/* Small decimal after the ':' of a /proc/cpuinfo line; -1 when there is none. */
static int
cpuinfo_value(const char *line)
{
    const char *c = strchr(line, ':');
    if (!c)
        return -1;
    c++;
    while (*c == ' ' || *c == '\t')
        c++;
    int v = 0;
    int digits = 0;
    while (*c >= '0' && *c <= '9' && digits < 6) {
        v = v * 10 + (*c - '0');
        c++;
        digits++;
    }
    return digits ? v : -1;
}

/* Distinct (physical id, core id) pairs in /proc/cpuinfo, so SMT siblings count once (they
 * share the FMA units the kernels saturate); falls back to the online CPU count. */
int
pool_default_threads(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1)
        online = 1;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return (int)online;
    char line[512];
    int phys = 0;
    int pairs[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "physical id", 11) == 0) {
            phys = cpuinfo_value(line);
        } else if (strncmp(line, "core id", 7) == 0) {
            int key = phys * 65536 + cpuinfo_value(line);
            int dup = 0;
            for (int i = 0; i < n; i++)
                dup |= pairs[i] == key;
            if (!dup && n < 1024)
                pairs[n++] = key;
        }
    }
    fclose(f);
    if (n < 1 || n > online)
        return (int)online;
    return n;
}

void
pool_split(int n, int align, int ith, int nth, int *lo, int *hi)
{
    if (align < 1)
        align = 1;
    int blocks = (n + align - 1) / align;
    int b0 = (int)((long long)blocks * ith / nth);
    int b1 = (int)((long long)blocks * (ith + 1) / nth);
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}
