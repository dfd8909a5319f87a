/* test_embed.c -- engine_embed (src/engine/forward.c) on stories260K-f32 from
 * ../shared/models: a unit-length, deterministic vector that does not depend on how the input
 * is cut into batches, that tells different inputs apart, that is really the final-normed
 * hidden state (for one token, W_out . embedding points where engine_decode's logits do), and
 * that leaves its scratch slot empty and every other slot untouched. Token ids are used
 * directly, so no tokenizer is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/forward.h"
#include "engine/model.h"
#include "util/xalloc.h"

#define MODEL "stories260K-f32"
/* an arbitrary 23-token input: longer than the small batch below, so it is split 6 ways */
static const int32_t text_a[] = {1,   403, 261, 109, 276, 350, 262, 430, 3,  93, 322, 291,
                                 333, 262, 310, 286, 70,  189, 276, 297, 46, 13,  400};
static const int32_t text_b[] = {1, 333, 262, 430, 3, 93, 261, 350, 286, 70, 297, 46};
#define N_A ((int)(sizeof text_a / sizeof text_a[0]))
#define N_B ((int)(sizeof text_b / sizeof text_b[0]))

static const char *
shared_dir(void)
{
    const char *s = getenv("SHARED");
    return s ? s : "../shared";
}

struct fixture {
    struct model m;
    struct engine en;
};

static int
open_engine(struct fixture *f, int n_batch, int n_seq)
{
    char path[1024];
    struct al_err e = {0};
    snprintf(path, sizeof path, "%s/models/%s.gguf", shared_dir(), MODEL);
    if (model_load(&f->m, path, &e) < 0) {
        print_error("%s\n", e.msg);
        return -1;
    }
    struct engine_opts o = {.n_ctx = 128, .n_seq = n_seq, .n_batch = n_batch, .n_threads = 2,
                            .kernels = getenv("AIRLOCK_KERNELS")};
    if (engine_init(&f->en, &f->m, &o, &e) < 0) {
        print_error("%s\n", e.msg);
        model_free(&f->m);
        return -1;
    }
    return 0;
}

static void
close_engine(struct fixture *f)
{
    engine_free(&f->en);
    model_free(&f->m);
}

static int
setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    if (open_engine(f, 512, 2) < 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    close_engine(f);
    free(f);
    return 0;
}

static double
dot(const float *a, const float *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static double
cosine(const float *a, const float *b, int n)
{
    return dot(a, b, n) / sqrt(dot(a, a, n) * dot(b, b, n));
}

static float *
embed(struct engine *en, int seq, const int32_t *t, int n)
{
    float *v = xmalloc((size_t)en->m->hp.dim * sizeof *v);
    struct al_err e = {0};
    if (engine_embed(en, seq, t, n, v, &e) < 0)
        fail_msg("engine_embed: %s", e.msg);
    return v;
}

static void
embedding_has_unit_length(void **state)
{
    struct fixture *f = *state;
    int dim = f->m.hp.dim;
    float *v = embed(&f->en, 0, text_a, N_A);
    assert_true(fabs(sqrt(dot(v, v, dim)) - 1.0) < 1e-5);
    float *w = embed(&f->en, 0, text_a, 1); /* a single token too */
    assert_true(fabs(sqrt(dot(w, w, dim)) - 1.0) < 1e-5);
    free(v);
    free(w);
}

static void
embedding_is_deterministic(void **state)
{
    struct fixture *f = *state;
    int dim = f->m.hp.dim;
    float *v = embed(&f->en, 0, text_a, N_A);
    float *w = embed(&f->en, 1, text_a, N_A); /* another slot, same input */
    float *x = embed(&f->en, 0, text_a, N_A);
    assert_memory_equal(v, w, (size_t)dim * sizeof *v);
    assert_memory_equal(v, x, (size_t)dim * sizeof *v);
    free(v);
    free(w);
    free(x);
}

static void
embedding_does_not_depend_on_batch_size(void **state)
{
    (void)state;
    struct fixture small, big;
    assert_int_equal(open_engine(&small, 4, 1), 0);
    assert_int_equal(open_engine(&big, 512, 1), 0);
    int dim = big.m.hp.dim;
    float *a = embed(&small.en, 0, text_a, N_A);
    float *b = embed(&big.en, 0, text_a, N_A);
    double worst = 0;
    for (int i = 0; i < dim; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    print_message("  n_batch 4 vs 512: max |difference| %.2e\n", worst);
    assert_true(worst <= 1e-5);
    free(a);
    free(b);
    close_engine(&small);
    close_engine(&big);
}

static void
different_inputs_give_different_embeddings(void **state)
{
    struct fixture *f = *state;
    int dim = f->m.hp.dim;
    float *a = embed(&f->en, 0, text_a, N_A);
    float *b = embed(&f->en, 0, text_b, N_B);
    float *c = embed(&f->en, 0, text_a + 1, N_A - 1); /* the same text without BOS */
    double ab = cosine(a, b, dim), ac = cosine(a, c, dim);
    print_message("  cosine(a, b) %.4f, cosine(a, a without BOS) %.4f\n", ab, ac);
    assert_true(ab < 0.9999);
    assert_true(ac < 0.99999);
    free(a);
    free(b);
    free(c);
}

/* For one token the mean is that token's own final-normed hidden state h / |h|, so
 * W_out . embedding = logits / |h|: the same direction as what engine_decode returns. */
static void
embedding_is_the_input_of_the_output_matrix(void **state)
{
    struct fixture *f = *state;
    const struct model *m = &f->m;
    int dim = m->hp.dim, nv = m->hp.n_vocab;
    print_message("  output matrix: type %d, %s\n", (int)m->output.type,
                  m->tied_output ? "tied to token_embd" : "its own tensor");
    assert_int_equal(m->output.ne0, dim);
    assert_int_equal(m->output.ne1, nv);
    for (int k = 0; k < 3; k++) {
        int32_t tok = text_a[k * 5];
        float *v = embed(&f->en, 0, &tok, 1);
        float *logits = xmalloc((size_t)nv * sizeof *logits);
        float *proj = xmalloc((size_t)nv * sizeof *proj);
        float *row = xmalloc((size_t)dim * sizeof *row);
        int32_t pos = 0, seq = 0;
        struct batch b = {.n_tokens = 1, .token = &tok, .pos = &pos, .seq = &seq};
        struct al_err e = {0};
        assert_int_equal(engine_seq_len(&f->en, 0), 0);
        assert_int_equal(engine_decode(&f->en, &b, logits, &e), 0);
        engine_seq_truncate(&f->en, 0, 0);
        for (int r = 0; r < nv; r++) {
            f->en.k->dequantize_row(m->output.type,
                                    (const char *)m->output.data + (size_t)r * m->output.row_bytes,
                                    row, dim);
            proj[r] = (float)dot(row, v, dim);
        }
        double c = cosine(proj, logits, nv);
        print_message("  token %d: cosine(W_out . embedding, logits) = %.7f\n", tok, c);
        assert_true(c > 0.9999);
        free(v);
        free(logits);
        free(proj);
        free(row);
    }
}

/* Over many tokens the output matrix is linear, so W_out . mean(h_t) = mean(W_out . h_t): the
 * embedding must point where the average of every position's logits does. This checks that
 * every token is pooled, not only the last. */
static void
embedding_is_the_mean_over_every_token(void **state)
{
    struct fixture *f = *state;
    const struct model *m = &f->m;
    int dim = m->hp.dim, nv = m->hp.n_vocab;
    float *v = embed(&f->en, 0, text_a, N_A);
    float *logits = xmalloc((size_t)N_A * nv * sizeof *logits);
    double *mean = xcalloc((size_t)nv, sizeof *mean);
    float *meanf = xmalloc((size_t)nv * sizeof *meanf);
    float *proj = xmalloc((size_t)nv * sizeof *proj);
    float *row = xmalloc((size_t)dim * sizeof *row);
    int32_t pos[N_A];
    int8_t want[N_A];
    for (int i = 0; i < N_A; i++) {
        pos[i] = i;
        want[i] = 1;
    }
    struct batch b = {.n_tokens = N_A, .token = text_a, .pos = pos, .logits = want};
    struct al_err e = {0};
    assert_int_equal(engine_decode(&f->en, &b, logits, &e), 0);
    engine_seq_truncate(&f->en, 0, 0);
    for (int t = 0; t < N_A; t++)
        for (int r = 0; r < nv; r++)
            mean[r] += logits[(size_t)t * nv + r] / N_A;
    for (int r = 0; r < nv; r++) {
        meanf[r] = (float)mean[r];
        f->en.k->dequantize_row(m->output.type,
                                (const char *)m->output.data + (size_t)r * m->output.row_bytes,
                                row, dim);
        proj[r] = (float)dot(row, v, dim);
    }
    double c = cosine(proj, meanf, nv);
    print_message("  %d tokens: cosine(W_out . embedding, mean of logits) = %.7f\n", N_A, c);
    assert_true(c > 0.9999);
    free(v);
    free(logits);
    free(mean);
    free(meanf);
    free(proj);
    free(row);
}

/* The scratch slot ends empty; another slot's cache is not touched: decoding it afterwards
 * gives the same logits as without the embedding in between. */
static void
embedding_leaves_its_slot_empty_and_others_alone(void **state)
{
    struct fixture *f = *state;
    int nv = f->m.hp.n_vocab;
    float *ref = xmalloc((size_t)nv * sizeof *ref);
    float *got = xmalloc((size_t)nv * sizeof *got);
    int32_t pos[N_B], seq[N_B];
    for (int i = 0; i < N_B; i++) {
        pos[i] = i;
        seq[i] = 1;
    }
    struct al_err e = {0};
    struct batch pre = {.n_tokens = N_B - 1, .token = text_b, .pos = pos, .seq = seq};
    struct batch last = {.n_tokens = 1, .token = &text_b[N_B - 1], .pos = &pos[N_B - 1],
                         .seq = &seq[N_B - 1]};
    engine_seq_truncate(&f->en, 1, 0);
    assert_int_equal(engine_decode(&f->en, &pre, ref, &e), 0);
    assert_int_equal(engine_decode(&f->en, &last, ref, &e), 0);

    engine_seq_truncate(&f->en, 1, 0);
    assert_int_equal(engine_decode(&f->en, &pre, got, &e), 0);
    float *v = embed(&f->en, 0, text_a, N_A);
    assert_int_equal(engine_seq_len(&f->en, 0), 0);
    assert_int_equal(engine_seq_len(&f->en, 1), N_B - 1);
    assert_int_equal(engine_decode(&f->en, &last, got, &e), 0);
    assert_memory_equal(ref, got, (size_t)nv * sizeof *ref);
    engine_seq_truncate(&f->en, 1, 0);
    free(v);
    free(ref);
    free(got);
}

static void
bad_inputs_are_refused(void **state)
{
    struct fixture *f = *state;
    float *v = xmalloc((size_t)f->m.hp.dim * sizeof *v);
    int32_t *longer = xcalloc((size_t)f->en.n_ctx + 1, sizeof *longer);
    int32_t bad[] = {1, f->m.hp.n_vocab};
    struct al_err e = {0};
    assert_int_equal(engine_embed(&f->en, 0, text_a, 0, v, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    assert_int_equal(engine_embed(&f->en, 0, longer, f->en.n_ctx + 1, v, &e), -1);
    assert_int_equal(e.code, AL_ELIMIT);
    assert_int_equal(engine_embed(&f->en, 0, bad, 2, v, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    assert_int_equal(engine_embed(&f->en, 2, text_a, 1, v, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    /* exactly the context is allowed */
    assert_int_equal(engine_embed(&f->en, 0, longer, f->en.n_ctx, v, &e), 0);
    free(v);
    free(longer);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(embedding_has_unit_length),
        cmocka_unit_test(embedding_is_deterministic),
        cmocka_unit_test(embedding_does_not_depend_on_batch_size),
        cmocka_unit_test(different_inputs_give_different_embeddings),
        cmocka_unit_test(embedding_is_the_input_of_the_output_matrix),
        cmocka_unit_test(embedding_is_the_mean_over_every_token),
        cmocka_unit_test(embedding_leaves_its_slot_empty_and_others_alone),
        cmocka_unit_test(bad_inputs_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
