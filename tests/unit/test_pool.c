/* test_pool.c -- the engine's thread pool: pool_run calls every thread exactly once per run;
 * pool_run_dynamic hands out work that threads claim from a counter, covers every item exactly
 * once whether or not the workers arrive in time, never overlaps two runs (a late worker skips
 * a closed run instead of running it later), and survives runs issued back to back, mixed with
 * static runs, and long idle gaps (workers asleep). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "engine/pool.h"

enum { N_ITEMS = 1000 };

struct claim_job {
    _Atomic int next;            /* next item to take */
    _Atomic int hits[N_ITEMS];   /* times each item was done */
    _Atomic int inside;          /* threads inside fn right now */
    _Atomic int max_inside;      /* most seen at once */
    int spin;                    /* busy work per item */
};

static void
claim_worker(void *arg, int ith, int nth)
{
    struct claim_job *j = arg;
    (void)ith;
    (void)nth;
    int in = atomic_fetch_add(&j->inside, 1) + 1;
    int m = atomic_load(&j->max_inside);
    while (in > m && !atomic_compare_exchange_weak(&j->max_inside, &m, in))
        ;
    for (;;) {
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= N_ITEMS)
            break;
        volatile int sink = 0;
        for (int k = 0; k < j->spin; k++)
            sink += k;
        atomic_fetch_add(&j->hits[i], 1);
    }
    atomic_fetch_sub(&j->inside, 1);
}

static void
check_all_once(struct claim_job *j)
{
    for (int i = 0; i < N_ITEMS; i++)
        assert_int_equal(atomic_load(&j->hits[i]), 1);
    assert_int_equal(atomic_load(&j->inside), 0);
}

static void
dynamic_covers_every_item_once(void **st)
{
    (void)st;
    for (int nt = 1; nt <= 4; nt++) {
        struct pool p;
        assert_int_equal(pool_init(&p, nt, NULL), 0);
        static struct claim_job j;
        for (int rep = 0; rep < 300; rep++) {
            memset(&j, 0, sizeof j);
            j.spin = rep % 3 == 0 ? 200 : 0;  /* some runs long enough for workers to join */
            pool_run_dynamic(&p, claim_worker, &j);
            check_all_once(&j);
            assert_true(atomic_load(&j.max_inside) <= nt);
        }
        pool_free(&p);
    }
}

/* A static run right after a dynamic one must still run on every thread exactly once, even
 * when a worker missed the dynamic run. */
struct count_job {
    _Atomic int calls[8]; /* per thread index */
};

static void
count_worker(void *arg, int ith, int nth)
{
    struct count_job *j = arg;
    (void)nth;
    atomic_fetch_add(&j->calls[ith], 1);
}

static void
dynamic_and_static_runs_interleave(void **st)
{
    (void)st;
    struct pool p;
    assert_int_equal(pool_init(&p, 3, NULL), 0);
    static struct claim_job j;
    for (int rep = 0; rep < 500; rep++) {
        memset(&j, 0, sizeof j);
        pool_run_dynamic(&p, claim_worker, &j);
        check_all_once(&j);
        struct count_job c;
        memset(&c, 0, sizeof c);
        pool_run(&p, count_worker, &c);
        for (int t = 0; t < 3; t++)
            assert_int_equal(atomic_load(&c.calls[t]), 1);
    }
    pool_free(&p);
}

/* Workers asleep after an idle gap are woken and may join; the work is still done once. */
static void
dynamic_after_idle_gap(void **st)
{
    (void)st;
    struct pool p;
    assert_int_equal(pool_init(&p, 2, NULL), 0);
    static struct claim_job j;
    for (int rep = 0; rep < 3; rep++) {
        struct timespec ts = {0, 30 * 1000 * 1000};  /* longer than the workers' spin phase */
        nanosleep(&ts, NULL);
        memset(&j, 0, sizeof j);
        j.spin = 2000;
        pool_run_dynamic(&p, claim_worker, &j);
        check_all_once(&j);
    }
    pool_free(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dynamic_covers_every_item_once),
        cmocka_unit_test(dynamic_and_static_runs_interleave),
        cmocka_unit_test(dynamic_after_idle_gap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
