/* sampler.c -- token selection (contract in sampler.h).
 * The candidate list is sorted by logit only as far as needed: top-k uses a partial selection,
 * and top-p/min-p work on the already truncated list, so a 150k vocabulary costs one pass plus
 * a sort of k entries. The RNG is xoshiro256** seeded through splitmix64: small, fast, and the
 * same sequence on every platform, so a seed reproduces a run exactly. */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define MAX_WINDOW 65536 /* penalty window bound when repeat_last_n is -1 (whole history) */

/* ===== RNG ===================================================================================== */

static uint64_t
splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
next_u64(uint64_t *s)
{
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

double
sampler_uniform(struct sampler *s)
{
    return (double)(next_u64(s->rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* ===== Lifecycle ================================================================================ */

void
sampler_params_default(struct sampler_params *p)
{
    memset(p, 0, sizeof *p);
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0x5eed;
}

int
sampler_init(struct sampler *s, const struct sampler_params *p, int n_vocab, struct al_err *e)
{
    memset(s, 0, sizeof *s);
    if (n_vocab <= 0)
        return al_errf(e, AL_EINTERNAL, "sampler: vocabulary of %d", n_vocab);
    if (!(p->temp == p->temp) || !(p->top_p == p->top_p) || !(p->min_p == p->min_p) ||
        !(p->repeat_penalty > 0) || p->repeat_last_n < -1)
        return al_errf(e, AL_EUSAGE,
                       "sampler: temperature, top-p, min-p must be numbers, repeat penalty > 0, "
                       "repeat-last-n >= -1");
    s->p = *p;
    s->n_vocab = n_vocab;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    s->cand = xmalloc((size_t)n_vocab * sizeof *s->cand);
    s->hist_cap = p->repeat_last_n < 0 ? MAX_WINDOW : p->repeat_last_n;
    if (s->hist_cap > MAX_WINDOW)
        s->hist_cap = MAX_WINDOW;
    if (s->hist_cap > 0)
        s->hist = xmalloc((size_t)s->hist_cap * sizeof *s->hist);
    s->counts = xcalloc((size_t)n_vocab, sizeof *s->counts);
    return 0;
}

void
sampler_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->cand);
    free(s->hist);
    free(s->counts);
    memset(s, 0, sizeof *s);
}

void
sampler_accept(struct sampler *s, int32_t tok)
{
    if (s->hist_cap <= 0)
        return;
    s->hist[s->hist_head] = tok;
    s->hist_head = (s->hist_head + 1) % s->hist_cap;
    if (s->hist_n < s->hist_cap)
        s->hist_n++;
}

/* ===== Steps ===================================================================================== */

/* llama.cpp's penalties: a repeated token's logit is divided by the penalty when positive and
 * multiplied when negative; then count * frequency + presence is subtracted. */
static void
apply_penalties(struct sampler *s, float *logits)
{
    const struct sampler_params *p = &s->p;
    if (s->hist_n == 0 ||
        (p->repeat_penalty == 1.0f && p->freq_penalty == 0.0f && p->presence_penalty == 0.0f))
        return;
    for (int i = 0; i < s->hist_n; i++) {
        int32_t t = s->hist[i];
        if (t >= 0 && t < s->n_vocab && s->counts[t] < UINT16_MAX)
            s->counts[t]++;
    }
    for (int i = 0; i < s->hist_n; i++) {
        int32_t t = s->hist[i];
        if (t < 0 || t >= s->n_vocab || s->counts[t] == 0)
            continue;
        float l = logits[t];
        l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= (float)s->counts[t] * p->freq_penalty + p->presence_penalty;
        logits[t] = l;
        s->counts[t] = 0; /* once per distinct token; also resets the scratch */
    }
}

static int
cand_desc(const void *a, const void *b)
{
    float x = ((const struct sampler_cand *)a)->logit;
    float y = ((const struct sampler_cand *)b)->logit;
    if (x > y)
        return -1;
    if (x < y)
        return 1;
    int32_t i = ((const struct sampler_cand *)a)->id;
    int32_t j = ((const struct sampler_cand *)b)->id;
    return (i > j) - (i < j); /* lower id first: a stable, platform-independent order */
}

/* Keep the k largest (by logit) in c[0..k), sorted descending. Quickselect, then sort k. */
static int
top_k(struct sampler_cand *c, int n, int k)
{
    if (k <= 0 || k >= n) {
        qsort(c, (size_t)n, sizeof *c, cand_desc);
        return n;
    }
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        struct sampler_cand pivot = c[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (cand_desc(&c[i], &pivot) < 0)
                i++;
            while (cand_desc(&c[j], &pivot) > 0)
                j--;
            if (i <= j) {
                struct sampler_cand t = c[i];
                c[i] = c[j];
                c[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
    qsort(c, (size_t)k, sizeof *c, cand_desc);
    return k;
}

/* Softmax of c[0..n).logit (sorted descending) into probabilities at temperature t. */
static void
softmax_cand(struct sampler_cand *c, int n, float t)
{
    float mx = c[0].logit;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        float v = expf((c[i].logit - mx) / t);
        c[i].logit = v;
        sum += v;
    }
    for (int i = 0; i < n; i++)
        c[i].logit = (float)(c[i].logit / sum);
}

int32_t
sampler_sample(struct sampler *s, float *logits)
{
    const struct sampler_params *p = &s->p;
    apply_penalties(s, logits);
    if (p->temp <= 0) {
        int best = 0;
        for (int i = 1; i < s->n_vocab; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }
    struct sampler_cand *c = s->cand;
    int n = s->n_vocab;
    for (int i = 0; i < n; i++) {
        c[i].id = i;
        c[i].logit = logits[i];
    }
    n = top_k(c, n, p->top_k);
    /* top-p and min-p on probabilities at temperature 1, as llama.cpp's chain does before
     * its temperature step */
    softmax_cand(c, n, 1.0f);
    if (p->top_p < 1.0f) {
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += c[i].logit;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0) {
        float thr = c[0].logit * p->min_p;
        int keep = 1;
        while (keep < n && c[keep].logit >= thr)
            keep++;
        n = keep;
    }
    /* temperature: (p/p_max)^(1/T) renormalized equals softmax(logit/T) over the kept set;
     * dividing by p_max first keeps the largest term at 1, so nothing underflows to all-zero */
    double sum = 0;
    double p0 = c[0].logit;
    for (int i = 0; i < n; i++) {
        double v = pow((double)c[i].logit / p0, 1.0 / p->temp);
        c[i].logit = (float)v;
        sum += v;
    }
    double r = sampler_uniform(s) * sum;
    double acc = 0;
    for (int i = 0; i < n; i++) {
        acc += c[i].logit;
        if (r < acc)
            return c[i].id;
    }
    return c[n - 1].id;
}
