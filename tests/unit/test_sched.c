/* test_sched.c -- the scheduler (src/server/sched.c) driving stories260K-f32 from
 * ../shared/models with three slots and a small batch, so prompts and embedding jobs span
 * several steps: an embedding job run between the decode steps of two generations gives the
 * same vectors as alone and leaves their greedy output unchanged; embeddings take the slot
 * whose cache is worth least (empty, else idle longest) and so keep conversations' cached
 * prefixes; a full queue, an input longer than the context and a token outside the
 * vocabulary are refused at submit; a cancelled job ends cancelled; stats count the work. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/forward.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "server/sched.h"
#include "util/xalloc.h"

#define MODEL "stories260K-f32"
#define N_SLOTS 3
#define N_BATCH 16   /* small: a 23-token prompt takes two steps, an embedding job several */
#define MAX_TOKENS 24
#define N_INPUTS 40  /* inputs of an embedding job: 550 tokens, several steps' worth */

static const int32_t text_a[] = {1,   403, 261, 109, 276, 350, 262, 430, 3,  93, 322, 291,
                                 333, 262, 310, 286, 70,  189, 276, 297, 46, 13,  400};
static const int32_t text_b[] = {333, 262, 430, 3, 93, 261, 350, 286, 70, 297, 46};
static const int32_t text_c[] = {70, 189, 276, 297, 46, 13, 400, 1, 403};
#define LEN(x) ((int)(sizeof(x) / sizeof((x)[0])))

static const char *
shared_dir(void)
{
    const char *s = getenv("SHARED");
    return s ? s : "../shared";
}

struct fixture {
    struct model m;
    struct engine en;
    struct tokenizer *tok;
    struct sched s;
};

static struct fixture *
open_fixture(void)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    char path[1024];
    struct al_err e = {0};
    snprintf(path, sizeof path, "%s/models/%s.gguf", shared_dir(), MODEL);
    struct engine_opts o = {.n_ctx = 128, .n_seq = N_SLOTS, .n_batch = N_BATCH, .n_threads = 2,
                            .kernels = getenv("AIRLOCK_KERNELS")};
    if (model_load(&f->m, path, &e) < 0 || engine_init(&f->en, &f->m, &o, &e) < 0 ||
        tokenizer_load(&f->tok, &f->m.gguf, &e) < 0 ||
        sched_start(&f->s, &f->en, f->tok, N_SLOTS, 8, &e) < 0) {
        print_error("%s\n", e.msg);
        return NULL;
    }
    return f;
}

static void
close_fixture(struct fixture *f)
{
    sched_stop(&f->s);
    tokenizer_free(f->tok);
    engine_free(&f->en);
    model_free(&f->m);
    free(f);
}

static int
setup(void **state)
{
    *state = open_fixture();
    return *state ? 0 : -1;
}

static int
teardown(void **state)
{
    close_fixture(*state);
    return 0;
}

/* ===== Jobs and waiting ======================================================================= */

struct waiter {
    struct sched_job job;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    struct sched_result res;
    int32_t ids[MAX_TOKENS + 1]; /* generated tokens (scheduler thread) */
    int n_ids;
    struct sched *s;             /* to read the step count at the first token */
    uint64_t first_step;         /* steps run before the one that gave the first token */
    const struct waiter *peer;   /* embedding: a generation to look at when this one ends */
    int peer_ids_at_done;        /* how many tokens the peer had then */
    /* embedding inputs */
    const int32_t *in[N_INPUTS];
    int n_in[N_INPUTS];
    float *out;
};

static bool
on_piece(void *ctx, const struct sched_piece *p)
{
    struct waiter *w = ctx;
    if (w->n_ids == 0 && w->s) {
        struct sched_stats st;
        sched_get_stats(w->s, &st); /* the scheduler thread does not hold the lock here */
        w->first_step = st.steps;
    }
    if (w->n_ids <= MAX_TOKENS)
        w->ids[w->n_ids++] = p->id;
    return true;
}

static void
on_done(void *ctx, const struct sched_result *r)
{
    struct waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->res = *r;
    if (w->peer)
        w->peer_ids_at_done = w->peer->n_ids; /* both written on the scheduler thread */
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static struct waiter *
gen_job(const int32_t *prompt, int n)
{
    struct waiter *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->job.kind = SCHED_GENERATE;
    w->job.prompt = prompt;
    w->job.n_prompt = n;
    w->job.p = (struct sched_params){.temperature = 0, .top_p = 1, .repeat_penalty = 1,
                                     .repeat_last_n = 64, .max_tokens = MAX_TOKENS,
                                     .top_logprobs = -1};
    w->job.on_piece = on_piece;
    w->job.on_done = on_done;
    w->job.ctx = w;
    return w;
}

/* An embedding job over N_INPUTS inputs cut from the texts (8 different ones, five times):
 * 550 tokens, more than the scheduler embeds between two steps while others generate. */
static struct waiter *
embed_job(const struct sched *s)
{
    struct waiter *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    const int32_t *src[8] = {text_a, text_b, text_c, text_a + 3, text_b + 2, text_a, text_c + 1,
                             text_a + 10};
    int n[8] = {LEN(text_a), LEN(text_b), LEN(text_c), LEN(text_a) - 3, LEN(text_b) - 2, 1,
                LEN(text_c) - 1, LEN(text_a) - 10};
    for (int i = 0; i < N_INPUTS; i++) {
        w->in[i] = src[i % 8];
        w->n_in[i] = n[i % 8];
    }
    w->out = xcalloc((size_t)N_INPUTS * (size_t)sched_dim(s), sizeof *w->out);
    w->job.kind = SCHED_EMBED;
    w->job.embed = (struct sched_embed){.tokens = w->in, .n_tokens = w->n_in,
                                        .n_inputs = N_INPUTS, .out = w->out};
    w->job.on_done = on_done;
    w->job.ctx = w;
    return w;
}

static int
embed_tokens(const struct waiter *w)
{
    int n = 0;
    for (int i = 0; i < w->job.embed.n_inputs; i++)
        n += w->n_in[i];
    return n;
}

static void
submit(struct sched *s, struct waiter *w)
{
    struct al_err e = {0};
    if (sched_submit(s, &w->job, &e) < 0)
        fail_msg("sched_submit: %s", e.msg);
}

static void
wait_done(struct waiter *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static void
waiter_free(struct waiter *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->out);
    free(w);
}

static struct waiter *
run_alone(struct sched *s, struct waiter *w)
{
    submit(s, w);
    wait_done(w);
    return w;
}

/* ===== Tests ================================================================================== */

/* Each job alone on its own scheduler, then all three together on a fresh one (no cached
 * prefixes either time): the embedding job spans several steps while both generations run. */
static void
embedding_between_decode_steps_matches_alone(void **state)
{
    struct fixture *f = *state;
    struct sched *s = &f->s;
    size_t bytes = (size_t)N_INPUTS * (size_t)sched_dim(s) * sizeof(float);
    struct fixture *alone = open_fixture();
    assert_non_null(alone);
    struct waiter *ga = run_alone(&alone->s, gen_job(text_a, LEN(text_a)));
    struct waiter *gb = run_alone(&alone->s, gen_job(text_b, LEN(text_b)));
    struct waiter *ea = run_alone(&alone->s, embed_job(&alone->s));
    close_fixture(alone);
    assert_int_equal(ea->res.finish, SCHED_FINISH_EMBEDDED);
    assert_int_equal(ea->res.prompt_tokens, embed_tokens(ea));
    assert_int_equal(ga->n_ids, MAX_TOKENS);
    assert_true(gb->n_ids > 1);

    struct waiter *g1 = gen_job(text_a, LEN(text_a));
    struct waiter *e1 = embed_job(s);
    struct waiter *g2 = gen_job(text_b, LEN(text_b));
    e1->peer = g1;
    submit(s, g1);
    submit(s, e1);
    submit(s, g2);
    wait_done(g1);
    wait_done(e1);
    wait_done(g2);

    print_message("  the embedding job ended when the generation had %d of %d tokens\n",
                  e1->peer_ids_at_done, g1->n_ids);
    assert_true(e1->peer_ids_at_done > 0 && e1->peer_ids_at_done < g1->n_ids);
    assert_int_equal(e1->res.finish, SCHED_FINISH_EMBEDDED);
    assert_memory_equal(e1->out, ea->out, bytes);
    /* input 5 is text_a's first token alone, input 0 all of text_a: different vectors */
    size_t dim = (size_t)sched_dim(s);
    assert_memory_not_equal(e1->out, e1->out + 5 * dim, dim * sizeof(float));
    /* and the same input in one job gives the same vector (input 8 repeats input 0) */
    assert_memory_equal(e1->out, e1->out + 8 * dim, dim * sizeof(float));
    assert_int_equal(g1->n_ids, ga->n_ids);
    assert_memory_equal(g1->ids, ga->ids, (size_t)ga->n_ids * sizeof(int32_t));
    assert_int_equal(g2->n_ids, gb->n_ids);
    assert_memory_equal(g2->ids, gb->ids, (size_t)gb->n_ids * sizeof(int32_t));

    /* stats: every embedded input's tokens, and the prompt tokens run without logits */
    struct sched_stats st;
    sched_get_stats(s, &st);
    assert_int_equal(st.inputs_embedded, N_INPUTS);
    assert_int_equal(st.prompt_tokens_processed,
                     (uint64_t)(embed_tokens(e1) + LEN(text_a) - 1 + LEN(text_b) - 1));
    waiter_free(ga);
    waiter_free(gb);
    waiter_free(ea);
    waiter_free(g1);
    waiter_free(e1);
    waiter_free(g2);
}

static void
embedding_takes_the_slot_worth_least(void **state)
{
    struct fixture *f = *state;
    struct sched *s = &f->s;
    /* two conversations leave their caches in two slots; the third stays empty */
    waiter_free(run_alone(s, gen_job(text_a, LEN(text_a))));
    waiter_free(run_alone(s, gen_job(text_b, LEN(text_b))));
    struct waiter *e1 = run_alone(s, embed_job(s)); /* must use the empty slot */
    assert_int_equal(e1->res.finish, SCHED_FINISH_EMBEDDED);
    struct waiter *a = run_alone(s, gen_job(text_a, LEN(text_a)));
    struct waiter *b = run_alone(s, gen_job(text_b, LEN(text_b)));
    assert_int_equal(a->res.cached_tokens, LEN(text_a) - 1);
    assert_int_equal(b->res.cached_tokens, LEN(text_b) - 1);
    waiter_free(a);
    waiter_free(b);
    waiter_free(e1);

    /* every slot holds a conversation: the embedding takes the one idle longest (a's: b ran
     * after it, then c) */
    waiter_free(run_alone(s, gen_job(text_c, LEN(text_c))));
    struct waiter *e2 = run_alone(s, embed_job(s));
    assert_int_equal(e2->res.finish, SCHED_FINISH_EMBEDDED);
    struct waiter *b2 = run_alone(s, gen_job(text_b, LEN(text_b)));
    struct waiter *c2 = run_alone(s, gen_job(text_c, LEN(text_c)));
    struct waiter *a2 = run_alone(s, gen_job(text_a, LEN(text_a)));
    assert_int_equal(b2->res.cached_tokens, LEN(text_b) - 1);
    assert_int_equal(c2->res.cached_tokens, LEN(text_c) - 1);
    assert_int_equal(a2->res.cached_tokens, 0);
    waiter_free(e2);
    waiter_free(a2);
    waiter_free(b2);
    waiter_free(c2);
}

static void
bad_embedding_jobs_are_refused_at_submit(void **state)
{
    struct fixture *f = *state;
    struct sched *s = &f->s;
    struct al_err e = {0};
    struct waiter *w = embed_job(s);
    int32_t *longer = xcalloc((size_t)sched_n_ctx(s) + 1, sizeof *longer);
    w->in[3] = longer;
    w->n_in[3] = sched_n_ctx(s) + 1;
    assert_int_equal(sched_submit(s, &w->job, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    print_message("  %s\n", e.msg);
    assert_non_null(strstr(e.msg, "input 3 has 129 tokens"));
    w->n_in[3] = sched_n_ctx(s); /* the whole context is allowed: it only needs no room to
                                  * generate */
    int32_t bad[2] = {1, 100000};
    w->in[5] = bad;
    w->n_in[5] = 2;
    assert_int_equal(sched_submit(s, &w->job, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    assert_non_null(strstr(e.msg, "input 5"));
    w->n_in[5] = 1;
    w->n_in[6] = 0;
    assert_int_equal(sched_submit(s, &w->job, &e), -1);
    assert_int_equal(e.code, AL_EUSAGE);
    w->n_in[6] = 1;
    w->job.embed.n_inputs = 0;
    assert_int_equal(sched_submit(s, &w->job, &e), -1);
    w->job.embed.n_inputs = N_INPUTS;

    /* a full queue is AL_ELIMIT (HTTP 429) */
    pthread_mutex_lock(&s->mu);
    int saved = s->max_queue;
    s->max_queue = 0;
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(sched_submit(s, &w->job, &e), -1);
    assert_int_equal(e.code, AL_ELIMIT);
    pthread_mutex_lock(&s->mu);
    s->max_queue = saved;
    pthread_mutex_unlock(&s->mu);

    /* now valid: runs, the context-long input included */
    submit(s, w);
    wait_done(w);
    assert_int_equal(w->res.finish, SCHED_FINISH_EMBEDDED);
    free(longer);
    waiter_free(w);
}

static void
cancelled_embedding_ends_cancelled(void **state)
{
    struct fixture *f = *state;
    struct sched *s = &f->s;
    struct waiter *w = embed_job(s);
    atomic_store(&w->job.cancel, true);
    submit(s, w);
    wait_done(w);
    assert_int_equal(w->res.finish, SCHED_FINISH_CANCELLED);
    struct sched_stats st;
    sched_get_stats(s, &st);
    assert_int_equal(st.inputs_embedded, 0);
    waiter_free(w);
    /* the slot is usable afterwards */
    struct waiter *g = run_alone(s, gen_job(text_a, LEN(text_a)));
    assert_true(g->n_ids > 0);
    waiter_free(g);
}

/* A short prompt that arrives behind a long one gets its first token first (shortest
 * remaining prompt first), while the long one still moves on every step (the oldest prompt's
 * share) instead of waiting for the short one to finish. */
static void
short_prompt_overtakes_a_long_one(void **state)
{
    struct fixture *f = *state;
    struct sched *s = &f->s;
    int32_t longp[100];
    for (int i = 0; i < 100; i++)
        longp[i] = text_a[i % LEN(text_a)];
    struct waiter *l = gen_job(longp, 100);
    struct waiter *sh = gen_job(text_c, LEN(text_c));
    l->s = sh->s = s;
    l->job.p.max_tokens = sh->job.p.max_tokens = 4;
    submit(s, l);
    submit(s, sh);
    wait_done(l);
    wait_done(sh);
    print_message("  first token after step %llu (short, 9 tokens), %llu (long, 100 tokens)\n",
                  (unsigned long long)sh->first_step, (unsigned long long)l->first_step);
    assert_true(sh->first_step < l->first_step);
    assert_true(sh->first_step <= 2);
    /* 100 tokens at 8 a step while the short one reads its prompt, then 15 a step */
    assert_true(l->first_step <= 8);
    waiter_free(l);
    waiter_free(sh);
}

/* The step size follows the measured costs: four times what a step's fixed part is worth in
 * prompt tokens, within 16..128, and 128 until both costs are known. */
static void
prefill_step_follows_measured_costs(void **state)
{
    (void)state;
    assert_int_equal(sched_prefill_step_min(0, 0), 128);
    assert_int_equal(sched_prefill_step_min(0.025, 0), 128);
    assert_int_equal(sched_prefill_step_min(0, 0.002), 128);
    assert_int_equal(sched_prefill_step_min(0.025, 0.0025), 40);   /* slow prefill (AVX2) */
    assert_int_equal(sched_prefill_step_min(0.005, 0.0001), 128);  /* fast prefill: capped */
    assert_int_equal(sched_prefill_step_min(0.001, 0.002), 16);    /* floor */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prefill_step_follows_measured_costs),
        cmocka_unit_test_setup_teardown(embedding_between_decode_steps_matches_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(embedding_takes_the_slot_worth_least, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_embedding_jobs_are_refused_at_submit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(cancelled_embedding_ends_cancelled, setup, teardown),
        cmocka_unit_test_setup_teardown(short_prompt_overtakes_a_long_one, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
