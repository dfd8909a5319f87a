/* sampler.h -- choose the next token from logits: penalties, then greedy or temperature with
 * top-k, top-p and min-p, with a per-request random state so one seed gives one output (R20).
 * Order of steps, as llama.cpp's default chain: repetition/frequency/presence penalties over the
 * last repeat_last_n tokens, top-k, top-p, min-p, temperature, then a draw. temp <= 0 is greedy
 * (argmax after penalties). One sampler per request; not shared between threads. */
#ifndef AIRLOCK_ENGINE_SAMPLER_H
#define AIRLOCK_ENGINE_SAMPLER_H

#include <stdint.h>

#include "util/err.h"

struct sampler_params {
    float temp;            /* <= 0: greedy */
    int top_k;             /* <= 0: off */
    float top_p;           /* >= 1: off */
    float min_p;           /* <= 0: off; keep tokens with p >= min_p * p(max) */
    float repeat_penalty;  /* 1: off; logits of recent tokens divided (>0) or multiplied (<0) */
    int repeat_last_n;     /* window for all penalties; 0 off, -1 whole history */
    float freq_penalty;    /* subtracted once per earlier occurrence */
    float presence_penalty;/* subtracted once if the token occurred */
    uint64_t seed;         /* RNG seed */
};

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalties, window 64. */
void sampler_params_default(struct sampler_params *p);

struct sampler_cand {
    int32_t id;    /* token id */
    float logit;   /* logit, then probability after softmax */
};

struct sampler {
    struct sampler_params p;     /* copy of the request's parameters */
    uint64_t rng[4];             /* xoshiro256** state, from p.seed via splitmix64 */
    int n_vocab;                 /* logits per call */
    struct sampler_cand *cand;   /* owned, n_vocab scratch candidates */
    int32_t *hist;               /* owned ring of recent tokens, hist_cap entries */
    int hist_cap;                /* capacity of the window (repeat_last_n, or a bound) */
    int hist_n;                  /* tokens stored (<= hist_cap) */
    int hist_head;               /* next write index */
    uint16_t *counts;            /* owned, n_vocab occurrence counts in the window (scratch) */
};

int sampler_init(struct sampler *s, const struct sampler_params *p, int n_vocab,
                 struct al_err *e);
void sampler_free(struct sampler *s); /* safe on a zeroed sampler */

/* Record a token in the penalty window (prompt tokens too, as llama.cpp does). */
void sampler_accept(struct sampler *s, int32_t tok);
/* Pick a token; logits (n_vocab) may be modified in place by the penalties. */
int32_t sampler_sample(struct sampler *s, float *logits);

/* Uniform double in [0, 1) from the sampler's state (exposed for tests). */
double sampler_uniform(struct sampler *s);

#endif
