/* test_sampler.c -- sampler behaviour: greedy is argmax, seeds reproduce, top-k/top-p/min-p
 * restrict the candidates, penalties follow llama.cpp's formulas, the RNG is uniform enough,
 * and the thread pool's split covers every index exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "engine/pool.h"
#include "engine/sampler.h"

#define NV 100

static void
fill(float *l)
{
    for (int i = 0; i < NV; i++)
        l[i] = (float)((i * 37) % NV) / 10.0f; /* max at id with i*37%100 == 99: i = 27 */
}

static void
greedy_picks_argmax(void **st)
{
    (void)st;
    struct sampler s;
    struct sampler_params p;
    float l[NV];
    sampler_params_default(&p);
    p.temp = 0;
    assert_int_equal(sampler_init(&s, &p, NV, NULL), 0);
    fill(l);
    assert_int_equal(sampler_sample(&s, l), 27);
    sampler_free(&s);
}

static void
same_seed_same_tokens(void **st)
{
    (void)st;
    struct sampler a, b, c;
    struct sampler_params p;
    float l[NV];
    sampler_params_default(&p);
    p.temp = 1.5f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = 1234;
    assert_int_equal(sampler_init(&a, &p, NV, NULL), 0);
    assert_int_equal(sampler_init(&b, &p, NV, NULL), 0);
    p.seed = 99;
    assert_int_equal(sampler_init(&c, &p, NV, NULL), 0);
    int differ = 0;
    for (int i = 0; i < 50; i++) {
        fill(l);
        int32_t x = sampler_sample(&a, l);
        fill(l);
        int32_t y = sampler_sample(&b, l);
        fill(l);
        int32_t z = sampler_sample(&c, l);
        assert_int_equal(x, y);
        differ |= x != z;
    }
    assert_true(differ);
    sampler_free(&a);
    sampler_free(&b);
    sampler_free(&c);
}

static void
top_k_one_is_greedy(void **st)
{
    (void)st;
    struct sampler s;
    struct sampler_params p;
    float l[NV];
    sampler_params_default(&p);
    p.temp = 5.0f;
    p.top_k = 1;
    assert_int_equal(sampler_init(&s, &p, NV, NULL), 0);
    for (int i = 0; i < 20; i++) {
        fill(l);
        assert_int_equal(sampler_sample(&s, l), 27);
    }
    sampler_free(&s);
}

static void
top_p_and_min_p_keep_only_likely_tokens(void **st)
{
    (void)st;
    struct sampler s;
    struct sampler_params p;
    float l[NV];
    sampler_params_default(&p);
    p.top_k = 0;
    p.temp = 1.0f;
    p.top_p = 0.5f;
    p.min_p = 0;
    assert_int_equal(sampler_init(&s, &p, NV, NULL), 0);
    /* two tokens hold almost all the mass: 0 (60 %) and 1 (40 %); top-p 0.5 keeps only 0 */
    for (int i = 0; i < 30; i++) {
        for (int j = 0; j < NV; j++)
            l[j] = -30.0f;
        l[0] = logf(0.6f);
        l[1] = logf(0.4f);
        assert_int_equal(sampler_sample(&s, l), 0);
    }
    sampler_free(&s);

    p.top_p = 1.0f;
    p.min_p = 0.7f; /* 0.4 < 0.7 * 0.6: token 1 dropped */
    assert_int_equal(sampler_init(&s, &p, NV, NULL), 0);
    for (int i = 0; i < 30; i++) {
        for (int j = 0; j < NV; j++)
            l[j] = -30.0f;
        l[0] = logf(0.6f);
        l[1] = logf(0.4f);
        assert_int_equal(sampler_sample(&s, l), 0);
    }
    sampler_free(&s);
}

static void
penalties_follow_llama_cpp(void **st)
{
    (void)st;
    struct sampler s;
    struct sampler_params p;
    float l[4] = {2.0f, -2.0f, 1.9f, 0.0f};
    sampler_params_default(&p);
    p.temp = 0;
    p.repeat_penalty = 2.0f;
    p.freq_penalty = 0.1f;
    p.presence_penalty = 0.5f;
    p.repeat_last_n = 8;
    assert_int_equal(sampler_init(&s, &p, 4, NULL), 0);
    sampler_accept(&s, 0);
    sampler_accept(&s, 0);
    sampler_accept(&s, 1);
    /* 0: 2/2 - 2*0.1 - 0.5 = 0.3; 1: -2*2 - 0.1 - 0.5 = -4.6; 2 untouched = 1.9 */
    assert_int_equal(sampler_sample(&s, l), 2);
    assert_true(fabsf(l[0] - 0.3f) < 1e-6f);
    assert_true(fabsf(l[1] + 4.6f) < 1e-6f);
    assert_true(fabsf(l[2] - 1.9f) < 1e-6f);
    sampler_free(&s);
}

static void
window_forgets_old_tokens(void **st)
{
    (void)st;
    struct sampler s;
    struct sampler_params p;
    float l[4] = {2.0f, 1.5f, 0.0f, 0.0f};
    sampler_params_default(&p);
    p.temp = 0;
    p.repeat_penalty = 4.0f;
    p.repeat_last_n = 2;
    assert_int_equal(sampler_init(&s, &p, 4, NULL), 0);
    sampler_accept(&s, 0); /* pushed out by the next two */
    sampler_accept(&s, 2);
    sampler_accept(&s, 3);
    assert_int_equal(sampler_sample(&s, l), 0);
    sampler_free(&s);
}

static void
uniform_rng_mean_is_half(void **st)
{
    (void)st;
    struct sampler s;
    struct sampler_params p;
    sampler_params_default(&p);
    assert_int_equal(sampler_init(&s, &p, 2, NULL), 0);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = sampler_uniform(&s);
        assert_true(u >= 0 && u < 1);
        sum += u;
    }
    assert_true(fabs(sum / 100000 - 0.5) < 0.01);
    sampler_free(&s);
}

static void
bad_params_are_refused(void **st)
{
    (void)st;
    struct sampler s;
    struct sampler_params p;
    struct al_err e = {0};
    sampler_params_default(&p);
    p.repeat_penalty = 0;
    assert_int_equal(sampler_init(&s, &p, 10, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    sampler_free(&s);
}

/* ---- pool -------------------------------------------------------------------------------- */

struct count_job {
    _Atomic int hits[1000]; /* per index */
};

static void
count_worker(void *arg, int ith, int nth)
{
    struct count_job *j = arg;
    int lo, hi;
    pool_split(1000, 16, ith, nth, &lo, &hi);
    for (int i = lo; i < hi; i++)
        atomic_fetch_add(&j->hits[i], 1);
}

static void
pool_covers_every_index_once(void **st)
{
    (void)st;
    for (int nt = 1; nt <= 3; nt++) {
        struct pool p;
        struct count_job j;
        assert_int_equal(pool_init(&p, nt, NULL), 0);
        for (int rep = 0; rep < 200; rep++) {
            memset(&j, 0, sizeof j);
            pool_run(&p, count_worker, &j);
            for (int i = 0; i < 1000; i++)
                assert_int_equal(atomic_load(&j.hits[i]), 1);
        }
        pool_free(&p);
    }
    assert_true(pool_default_threads() >= 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_picks_argmax),
        cmocka_unit_test(same_seed_same_tokens),
        cmocka_unit_test(top_k_one_is_greedy),
        cmocka_unit_test(top_p_and_min_p_keep_only_likely_tokens),
        cmocka_unit_test(penalties_follow_llama_cpp),
        cmocka_unit_test(window_forgets_old_tokens),
        cmocka_unit_test(uniform_rng_mean_is_half),
        cmocka_unit_test(bad_params_are_refused),
        cmocka_unit_test(pool_covers_every_index_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
