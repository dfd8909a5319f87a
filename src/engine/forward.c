/* forward.c -- the transformer forward pass (Llama / Qwen2), llama2.c style, batched.
 * One named function per step of the math; each works on n_tok tokens at once so prefill is
 * matrix x matrix (kernels gemm with n_tok > 1) and decode is the same code with n_tok = 1.
 * Numerics follow llama.cpp's CPU path so logits can be compared with it: activations are
 * quantized once per matrix input to the weight's companion type; attention is llama.cpp's
 * CPU flash attention (F16 query, online softmax, F16 accumulator), scale 1/sqrt(head_dim).
 * Work is split over the engine's pool: matmuls by weight rows, attention by (token, head),
 * element-wise steps by token. Nothing is allocated while a batch runs. */
#include "engine/forward.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define MAX_GROUP 3 /* matrices sharing one input in a matmul group (q,k,v) */
/* Below this many multiply-adds a step runs on the calling thread alone: waking a worker costs
 * microseconds, and on a loaded machine a descheduled worker would stall the whole step. */
#define PAR_MIN_WORK (1 << 18)

/* ===== Parallel helpers ======================================================================= */

/* Every parallel step hands out its work from shared counters (pool_run_dynamic): threads take
 * chunks until none is left, so a thread that starts late or is preempted delays at most the
 * chunk it holds. Chunks follow guided self-scheduling: a 2*nth-th of what is left, at least
 * min, so the first ones are long (few claims, long streams for the prefetchers) and the last
 * ones short (even finish). */
static bool
claim(_Atomic int *next, int n, int nth, int min, int *lo, int *hi)
{
    int cur = atomic_load_explicit(next, memory_order_relaxed);
    for (;;) {
        if (cur >= n)
            return false;
        int c = (n - cur + 2 * nth - 1) / (2 * nth);
        c = c < min ? min : c;
        int end = cur + c < n ? cur + c : n;
        if (atomic_compare_exchange_weak_explicit(next, &cur, end, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *lo = cur;
            *hi = end;
            return true;
        }
    }
}

/* Per-token job: fn(en, ctx, t, ith) for every t in [0, n_tok), tokens split across threads. */
typedef void (*token_fn)(struct engine *en, void *ctx, int t, int ith);

struct token_job {
    struct engine *en; /* borrowed */
    token_fn fn;       /* step to run */
    void *ctx;         /* its argument */
    int n_tok;         /* tokens in the batch */
    _Atomic int next;  /* first token not yet taken */
};

static void
token_worker(void *arg, int ith, int nth)
{
    struct token_job *j = arg;
    int lo, hi;
    while (claim(&j->next, j->n_tok, nth, 1, &lo, &hi))
        for (int t = lo; t < hi; t++)
            j->fn(j->en, j->ctx, t, ith);
}

/* A single token runs on the caller: a pool round trip costs more than the work. */
static void
for_each_token(struct engine *en, int n_tok, token_fn fn, void *ctx)
{
    if (n_tok == 1 || (long)n_tok * en->m->hp.dim * 8 < PAR_MIN_WORK) {
        for (int t = 0; t < n_tok; t++)
            fn(en, ctx, t, 0);
        return;
    }
    struct token_job j = {.en = en, .fn = fn, .ctx = ctx, .n_tok = n_tok};
    atomic_init(&j.next, 0);
    pool_run_dynamic(&en->pool, token_worker, &j);
}

/* ===== matmul: out (n_tok, rows) = x (n_tok, n) . W^T, for up to 3 W sharing x ================ */

/* A thread's rows of a decode matmul group (see mm_decode_worker): front << 32 | back. */
struct mm_share {
    _Alignas(64) _Atomic unsigned long long fb;
};

/* What a decode matmul's threads prefetch once their rows are done: the first bytes of each
 * one's share of the next group, and on thread 0 a small side region (the next norm weights). */
struct mm_next {
    int n_mats;                              /* matrices of the next group */
    const struct model_tensor *w[MAX_GROUP]; /* borrowed */
    size_t bytes;                            /* per thread, from the start of its share */
    const void *side;                        /* or NULL */
    size_t side_bytes;
};

struct mm_job {
    const struct kern *k;                   /* kernel table */
    int n_mats;                             /* matrices in the group */
    const struct model_tensor *w[MAX_GROUP];/* borrowed weights, all with ne0 == n */
    const void *xq[MAX_GROUP];              /* quantized input for each matrix */
    const struct kern_xsum *xs[MAX_GROUP];  /* its block sums (tiled path only) */
    float *out[MAX_GROUP];                  /* (n_tok, w->ne1) outputs */
    size_t xq_row[MAX_GROUP];               /* bytes between quantized activation rows */
    int n_tok;                              /* tokens */
    void *const *tiled;                     /* per-thread gemm_tiled scratch; NULL: plain gemm */
    int total_rows;                         /* rows of all matrices together */
    const struct engine *pf_en;             /* non-NULL: prefetch layer pf_il's cache rows */
    const struct batch *pf_b;               /* for the positions before these tokens */
    int pf_il;
    struct mm_share *share;                 /* decode: per-thread shares; NULL: next_row */
    int steal_rows;                         /* rows a thread takes from another's share */
    const struct mm_next *next;             /* decode: what to prefetch when done, or NULL */
    _Atomic int next_row;                   /* first row not yet taken (matrices concatenated) */
};

/* Prefill: rows are taken in shrinking chunks (guided self-scheduling: a 2*nth-th of what is
 * left) from a shared counter over the group's matrices, whole kernel tiles or packed panels at
 * a time. A thread the OS preempts then delays one chunk, not half of every matrix, while the
 * first chunks stay long: the packed-panel gemm fetches each next panel of its range while
 * computing the current one. (Decode splits by shares instead, below.) */
#define MM_MIN_CHUNK 64

/* Plain-gemm prefill blocking (tables without gemm_tiled): a block of weight rows stays in L2
 * while token blocks stream past it, so activations are re-read once per row block instead
 * of once per 4-row kernel tile. */
#define MM_ROW_BLOCK 64
#define MM_TOK_BLOCK 64

/* Decode (a few tokens, every weight row read once) splits the rows differently: thread i
 * owns the i-th of nth equal shares of the group's rows and streams it front to back in long
 * chunks; a thread done with its own share takes short chunks from the back of another's. So
 * each thread reads one long linear stream, a preempted or slower thread still delays the step
 * by one short chunk only, and -- the point -- which rows a thread reads is known in advance:
 * a thread that has finished prefetches the start of its share of the next matmul (and the
 * next norm's weights) while the others finish and the serial steps between matmuls run,
 * instead of leaving memory idle and starting the next matmul with a burst of misses.
 * A share is one word, front << 32 | back, so owner and thieves meet in one compare-exchange. */
#define MM_OWN_STEALS 2         /* an owner takes half what is left, at least this many
                                 * thieves' claims: a fixed 256 rows took a small share's
                                 * tail in one claim and left nothing to steal */
#define MM_STEAL_BYTES (32 << 10) /* weight bytes a thief takes per claim */
#define MM_SPLIT_MAX_TOK 6      /* batches below this use the shares (the gemv paths) */
#define MM_NEXT_PF (64 << 10)   /* bytes of its next share a thread prefetches */
#define MM_NEXT_PF_ATT (512 << 10) /* the same before Wo: attention runs in between */

/* Row index where the group's first `want` weight bytes end, rounded down to 16 rows. */
static int
mm_row_at_bytes(const struct model_tensor *const *w, int n_mats, size_t want)
{
    int base = 0;
    for (int i = 0; i < n_mats; i++) {
        size_t bytes = (size_t)w[i]->ne1 * w[i]->row_bytes;
        if (want < bytes)
            return (base + (int)(want / w[i]->row_bytes)) / 16 * 16;
        want -= bytes;
        base += (int)w[i]->ne1;
    }
    return base;
}

/* Thread ith's share of the group's concatenated rows: equal weight bytes, not equal rows (a
 * group can mix types: SmolLM2's Q4_K_M file has Q5_0 Wq and Wk beside a Q8_0 Wv, and equal
 * rows gave one thread a fifth more bytes); bounds 16-row aligned, the last share ends at the
 * group's last row. */
static void
mm_share_bounds(const struct model_tensor *const *w, int n_mats, int ith, int nth, int *lo,
                int *hi)
{
    size_t total = 0;
    int rows = 0;
    for (int i = 0; i < n_mats; i++) {
        total += (size_t)w[i]->ne1 * w[i]->row_bytes;
        rows += (int)w[i]->ne1;
    }
    size_t per = total / (size_t)nth;
    *lo = mm_row_at_bytes(w, n_mats, per * (size_t)ith);
    *hi = ith == nth - 1 ? rows : mm_row_at_bytes(w, n_mats, per * (size_t)(ith + 1));
}

static bool
mm_take(struct mm_share *sh, bool own, int steal_rows, int *lo, int *hi)
{
    unsigned long long cur = atomic_load_explicit(&sh->fb, memory_order_relaxed);
    for (;;) {
        int f = (int)(cur >> 32), b = (int)(cur & 0xffffffffu);
        if (f >= b)
            return false;
        int c = own ? (b - f) / 2 : steal_rows;
        if (own && c < MM_OWN_STEALS * steal_rows)
            c = MM_OWN_STEALS * steal_rows;
        c = c < b - f ? c : b - f;
        unsigned long long nx = own ? (unsigned long long)(f + c) << 32 | (unsigned)b
                                    : (unsigned long long)f << 32 | (unsigned)(b - c);
        if (atomic_compare_exchange_weak_explicit(&sh->fb, &cur, nx, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *lo = own ? f : b - c;
            *hi = own ? f + c : b;
            return true;
        }
    }
}

/* Rows [lo, hi) of the group's concatenated rows, through each matrix they cover. */
static void
mm_rows(const struct mm_job *j, int lo, int hi)
{
    int base = 0;
    for (int i = 0; i < j->n_mats && lo < hi; i++) {
        const struct model_tensor *w = j->w[i];
        int end = base + (int)w->ne1;
        if (lo < end) {
            int r1 = hi < end ? hi : end;
            j->k->gemm(w->type, w->data, w->row_bytes, (int)w->ne0, lo - base, r1 - base,
                       j->xq[i], j->n_tok, j->out[i], (int)w->ne1);
            lo = r1;
        }
        base = end;
    }
}

static void
prefetch_bytes(const void *p, size_t n)
{
    for (size_t o = 0; o < n; o += 64)
        __builtin_prefetch((const char *)p + o, 0, 3);
}

/* The start of thread ith's share of the next group (and the side region, on thread 0). */
static void
mm_prefetch_next(const struct mm_next *nx, int ith, int nth)
{
    if (ith == 0 && nx->side)
        prefetch_bytes(nx->side, nx->side_bytes);
    int lo, hi;
    mm_share_bounds(nx->w, nx->n_mats, ith, nth, &lo, &hi);
    size_t left = nx->bytes;
    int base = 0;
    for (int i = 0; i < nx->n_mats && lo < hi && left > 0; i++) {
        const struct model_tensor *w = nx->w[i];
        int end = base + (int)w->ne1;
        if (lo < end) {
            int r1 = hi < end ? hi : end;
            size_t n = (size_t)(r1 - lo) * w->row_bytes;
            n = n < left ? n : left;
            prefetch_bytes((const char *)w->data + (size_t)(lo - base) * w->row_bytes, n);
            left -= n;
            lo = r1;
        }
        base = end;
    }
}

static void
mm_decode_worker(struct mm_job *j, int ith, int nth)
{
    int lo, hi;
    while (mm_take(&j->share[ith], true, j->steal_rows, &lo, &hi))
        mm_rows(j, lo, hi);
    for (int v = 1; v < nth; v++) {
        struct mm_share *sh = &j->share[(ith + v) % nth];
        while (mm_take(sh, false, j->steal_rows, &lo, &hi))
            mm_rows(j, lo, hi);
    }
    if (j->next)
        mm_prefetch_next(j->next, ith, nth);
}

/* Take the next chunk of rows: matrix *mi, rows [*r0, *r1). False when none is left. Chunks
 * are multiples of align rows from each matrix's start and never cross into the next matrix. */
static bool
mm_claim(struct mm_job *j, int nth, int align, int *mi, int *r0, int *r1)
{
    int cur = atomic_load_explicit(&j->next_row, memory_order_relaxed);
    for (;;) {
        if (cur >= j->total_rows)
            return false;
        int i = 0, base = 0;
        while (cur >= base + (int)j->w[i]->ne1) {
            base += (int)j->w[i]->ne1;
            i++;
        }
        int chunk = (j->total_rows - cur + 2 * nth - 1) / (2 * nth);
        chunk = chunk < MM_MIN_CHUNK ? MM_MIN_CHUNK : chunk;
        chunk = (chunk + align - 1) / align * align;
        int end = cur + chunk < base + (int)j->w[i]->ne1 ? cur + chunk : base + (int)j->w[i]->ne1;
        if (atomic_compare_exchange_weak_explicit(&j->next_row, &cur, end, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *mi = i;
            *r0 = cur - base;
            *r1 = end - base;
            return true;
        }
    }
}

/* Decode attention reads every cached key and value of the layer, which the weights streamed
 * since the last step have evicted; fetched while the q/k/v weights stream in (a small share of
 * the traffic), they are in cache when attention starts instead of costing a memory latency
 * per item. Each thread requests its part of the first ATT_PF_BYTES of the keys and of the
 * values (shared out over the KV heads); the attention kernel's own prefetch covers the rest
 * of a long context. */
#define ATT_PF_BYTES (64 << 10)
#define ATT_PF_MAX_TOKENS 8  /* decode of a few sequences; prefill reads its own new rows */

static void
prefetch_region(const void *base, size_t bytes, size_t cap, int ith, int nth)
{
    bytes = bytes < cap ? bytes : cap;
    size_t lines = (bytes + 63) / 64;
    size_t a = lines * (size_t)ith / (size_t)nth, z = lines * (size_t)(ith + 1) / (size_t)nth;
    for (size_t l = a; l < z; l++)
        __builtin_prefetch((const char *)base + l * 64, 0, 2);
}

/* Decode attention with less work than this runs on the calling thread alone (a pool round
 * trip would cost more): per position and element a dot and an axpy, and the accumulator's
 * two F16 roundings. */
static bool
attention_serial(const struct engine *en, const struct batch *b)
{
    const struct model_hparams *hp = &en->m->hp;
    double work = (double)b->n_tokens * hp->n_head * hp->head_dim * 8 *
                  (b->pos[b->n_tokens - 1] + 1);
    return work < PAR_MIN_WORK;
}

/* When attention will run on the caller alone, the caller requests every line: a line a
 * worker requested lands in the worker's L2, and the caller then fetches it from there. */
static void
prefetch_kv(const struct engine *en, const struct batch *b, int il, int ith, int nth)
{
    const struct kvcache *kv = &en->kv;
    size_t row = (size_t)kv->head_dim * sizeof(uint16_t);
    size_t cap = ATT_PF_BYTES / (size_t)kv->n_head_kv;
    if (attention_serial(en, b)) {
        if (ith != 0)
            return;
        nth = 1;
    }
    for (int t = 0; t < b->n_tokens; t++) {
        int seq = b->seq ? b->seq[t] : 0;
        if (t > 0 && (b->seq ? b->seq[t - 1] : 0) == seq)
            continue;  /* same slot as the token before: its rows were requested */
        for (int h = 0; h < kv->n_head_kv; h++) {
            const char *k = (const char *)kvcache_k(kv, il, seq, h);
            const char *v = (const char *)kvcache_v(kv, il, seq, h);
            if (ith == 0)  /* where this token's key and value will be written */
                for (size_t o = 0; o < row; o += 64) {
                    __builtin_prefetch(k + (size_t)b->pos[t] * row + o, 1, 3);
                    __builtin_prefetch(v + (size_t)b->pos[t] * row + o, 1, 3);
                }
            prefetch_region(k, (size_t)b->pos[t] * row, cap, ith, nth);
            prefetch_region(v, (size_t)b->pos[t] * row, cap, ith, nth);
        }
    }
}

static void
mm_worker(void *arg, int ith, int nth)
{
    struct mm_job *j = arg;
    int i, lo, hi;
    if (j->pf_en)
        prefetch_kv(j->pf_en, j->pf_b, j->pf_il, ith, nth);
    if (j->share) {
        mm_decode_worker(j, ith, nth);
        return;
    }
    while (mm_claim(j, nth, j->tiled ? j->k->tiled_rows : 16, &i, &lo, &hi)) {
        const struct model_tensor *w = j->w[i];
        if (j->tiled) {  /* packs each panel of rows once for all the tokens */
            j->k->gemm_tiled(w->type, w->data, w->row_bytes, (int)w->ne0, lo, hi, j->xq[i],
                             j->xs[i], j->n_tok, j->out[i], (int)w->ne1, j->tiled[ith]);
            continue;
        }
        if (j->n_tok <= MM_TOK_BLOCK) {
            j->k->gemm(w->type, w->data, w->row_bytes, (int)w->ne0, lo, hi, j->xq[i], j->n_tok,
                       j->out[i], (int)w->ne1);
            continue;
        }
        for (int r0 = lo; r0 < hi; r0 += MM_ROW_BLOCK) {
            int r1 = r0 + MM_ROW_BLOCK < hi ? r0 + MM_ROW_BLOCK : hi;
            for (int t0 = 0; t0 < j->n_tok; t0 += MM_TOK_BLOCK) {
                int nt = j->n_tok - t0 < MM_TOK_BLOCK ? j->n_tok - t0 : MM_TOK_BLOCK;
                j->k->gemm(w->type, w->data, w->row_bytes, (int)w->ne0, r0, r1,
                           (const char *)j->xq[i] + (size_t)t0 * j->xq_row[i], nt,
                           j->out[i] + (size_t)t0 * w->ne1, (int)w->ne1);
            }
        }
    }
}

struct quant_ctx {
    const float *x;             /* (n_tok, n) input */
    int n;                      /* row width */
    int n_types;                /* distinct activation types */
    enum ggml_type type[MAX_GROUP]; /* activation type per slot */
    void *dst[MAX_GROUP];       /* quantized rows per slot */
    size_t row_bytes[MAX_GROUP];/* stride of each slot */
    int n_sums;                 /* distinct weight types needing kern_act_sums (tiled path) */
    enum ggml_type sum_wt[MAX_GROUP]; /* weight type of each sums buffer */
    int sum_src[MAX_GROUP];     /* activation slot it is computed from */
    struct kern_xsum *sum_dst[MAX_GROUP]; /* (n_tok, n / kern_xsum_block) entries */
};

static void
quant_token(struct engine *en, void *vctx, int t, int ith)
{
    struct quant_ctx *q = vctx;
    (void)ith;
    for (int i = 0; i < q->n_types; i++)
        en->k->quantize_row(q->type[i], q->x + (size_t)t * q->n,
                            (char *)q->dst[i] + (size_t)t * q->row_bytes[i], q->n);
    for (int i = 0; i < q->n_sums; i++) {
        int src = q->sum_src[i];
        size_t nxs = (size_t)(q->n / kern_xsum_block(q->sum_wt[i]));
        kern_act_sums(q->sum_wt[i], (const char *)q->dst[src] + (size_t)t * q->row_bytes[src],
                      q->n, q->sum_dst[i] + (size_t)t * nxs);
    }
}

/* The hot spot: every weight byte of the model is read here once per step. pf_b, pf_il: the
 * batch and layer whose cached keys and values attention reads next (decode), or NULL; next:
 * what the decode threads prefetch when done, or NULL. */
static void
matmul_kv(struct engine *en, int n_mats, const struct model_tensor **w, const float *x, int n_tok,
          float **out, const struct batch *pf_b, int pf_il, const struct mm_next *next)
{
    struct quant_ctx q = {.x = x, .n = (int)w[0]->ne0};
    struct mm_job j = {.k = en->k, .n_mats = n_mats, .n_tok = n_tok};
    /* the packed-panel gemm pays for its repacking only over enough tokens */
    bool tiled = en->k->gemm_tiled && en->s.tiled;
    for (int i = 0; i < n_mats; i++)
        tiled = tiled && kern_xsum_block(w[i]->type) > 0 &&
                n_tok >= en->k->tiled_min_tok(w[i]->type);
    if (tiled)
        j.tiled = en->s.tiled;
    for (int i = 0; i < n_mats; i++)
        j.total_rows += (int)w[i]->ne1;
    atomic_init(&j.next_row, 0);
    if (pf_b) {
        j.pf_en = en;
        j.pf_b = pf_b;
        j.pf_il = pf_il;
    }
    for (int i = 0; i < n_mats; i++) {
        enum ggml_type at = kern_act_type(w[i]->type);
        int slot = -1;
        for (int s = 0; s < q.n_types; s++)
            if (q.type[s] == at)
                slot = s;
        if (slot < 0) {
            slot = q.n_types++;
            q.type[slot] = at;
            q.dst[slot] = en->s.xq[slot];
            q.row_bytes[slot] = kern_row_bytes(at, q.n);
        }
        j.w[i] = w[i];
        j.xq[i] = q.dst[slot];
        j.xq_row[i] = q.row_bytes[slot];
        j.out[i] = out[i];
        if (tiled) {
            int ss = -1;
            for (int s = 0; s < q.n_sums; s++)
                if (q.sum_wt[s] == w[i]->type)
                    ss = s;
            if (ss < 0) {
                ss = q.n_sums++;
                q.sum_wt[ss] = w[i]->type;
                q.sum_src[ss] = slot;
                q.sum_dst[ss] = en->s.xs[ss];
            }
            j.xs[i] = q.sum_dst[ss];
        }
    }
    for_each_token(en, n_tok, quant_token, &q);
    double work = 0;
    for (int i = 0; i < n_mats; i++)
        work += (double)w[i]->ne0 * (double)w[i]->ne1 * n_tok;
    int nth = work < PAR_MIN_WORK ? 1 : en->n_threads;
    if (!tiled && n_tok < MM_SPLIT_MAX_TOK) {
        j.share = en->s.mm_share;
        j.next = next;
        for (int t = 0; t < nth; t++) {
            int lo, hi;
            mm_share_bounds(j.w, n_mats, t, nth, &lo, &hi);
            atomic_store_explicit(&j.share[t].fb, (unsigned long long)lo << 32 | (unsigned)hi,
                                  memory_order_relaxed);
        }
        size_t rb = w[0]->row_bytes > 0 ? w[0]->row_bytes : 1;
        j.steal_rows = (int)(MM_STEAL_BYTES / rb) / 16 * 16;
        j.steal_rows = j.steal_rows < 16 ? 16 : j.steal_rows;
    }
    if (nth == 1)
        mm_worker(&j, 0, 1);
    else
        pool_run_dynamic(&en->pool, mm_worker, &j);
}

static void
matmul(struct engine *en, int n_mats, const struct model_tensor **w, const float *x, int n_tok,
       float **out, const struct mm_next *next)
{
    matmul_kv(en, n_mats, w, x, n_tok, out, NULL, 0, next);
}

static void
matmul1(struct engine *en, const struct model_tensor *w, const float *x, int n_tok, float *out,
        const struct mm_next *next)
{
    matmul(en, 1, &w, x, n_tok, &out, next);
}

/* ===== Element-wise steps ===================================================================== */

struct step_ctx {
    const struct batch *b;    /* the chunk being run (token, pos, seq) */
    int il;                   /* layer */
    const float *w;           /* norm weight (dim) for rmsnorm steps */
    const float *src;         /* rmsnorm input rows, stride dim */
    float *dst;               /* rmsnorm output rows, stride dim */
    const int *rows;          /* rmsnorm: source row index per output token, or NULL */
};

static void
embed_token(struct engine *en, void *vctx, int t, int ith)
{
    struct step_ctx *c = vctx;
    const struct model_tensor *te = &en->m->token_embd;
    int dim = en->m->hp.dim;
    (void)ith;
    en->k->dequantize_row(te->type, (const char *)te->data + (size_t)c->b->token[t] * te->row_bytes,
                          en->s.x + (size_t)t * dim, dim);
}

static void
rmsnorm_token(struct engine *en, void *vctx, int t, int ith)
{
    struct step_ctx *c = vctx;
    int dim = en->m->hp.dim;
    int src = c->rows ? c->rows[t] : t;
    (void)ith;
    en->k->rmsnorm(c->dst + (size_t)t * dim, c->src + (size_t)src * dim, c->w, dim,
                   en->m->hp.norm_eps);
}

/* Rotate the first n_rot dimensions of each head of x by angle pos * inv_freq[i]. */
static void
rope(float *x, int n_heads, int head_dim, int n_rot, enum rope_style style, const float *cs)
{
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            float c = cs[2 * i];
            float s = cs[2 * i + 1];
            int i0 = style == ROPE_NEOX ? i : 2 * i;
            int i1 = style == ROPE_NEOX ? i + half : 2 * i + 1;
            float x0 = v[i0];
            float x1 = v[i1];
            v[i0] = x0 * c - x1 * s;
            v[i1] = x0 * s + x1 * c;
        }
    }
}

static void
add_bias(float *x, const struct model_tensor *bias, int n)
{
    if (!bias->data)
        return;
    const float *b = bias->data;
    for (int i = 0; i < n; i++)
        x[i] += b[i];
}

/* Biases, RoPE on q and k, then the new k and v go into the cache slot as F16. */
static void
qkv_finish_token(struct engine *en, void *vctx, int t, int ith)
{
    struct step_ctx *c = vctx;
    const struct model_hparams *hp = &en->m->hp;
    const struct model_layer *L = &en->m->layers[c->il];
    float *q = en->s.q + (size_t)t * hp->dim;
    float *k = en->s.k + (size_t)t * hp->kv_dim;
    float *v = en->s.v + (size_t)t * hp->kv_dim;
    add_bias(q, &L->bq, hp->dim);
    add_bias(k, &L->bk, hp->kv_dim);
    add_bias(v, &L->bv, hp->kv_dim);

    const float *cs = en->s.rope_cs + (size_t)t * hp->n_rot;
    rope(q, hp->n_head, hp->head_dim, hp->n_rot, hp->rope, cs);
    rope(k, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->rope, cs);

    int seq = c->b->seq ? c->b->seq[t] : 0;
    size_t at = (size_t)c->b->pos[t] * (size_t)hp->head_dim;
    for (int h = 0; h < hp->n_head_kv; h++) {
        en->k->f32_to_f16_row(k + (size_t)h * hp->head_dim, kvcache_k(&en->kv, c->il, seq, h) + at,
                              hp->head_dim);
        en->k->f32_to_f16_row(v + (size_t)h * hp->head_dim, kvcache_v(&en->kv, c->il, seq, h) + at,
                              hp->head_dim);
    }
}

static void
rope_angles_token(struct engine *en, void *vctx, int t, int ith)
{
    struct step_ctx *c = vctx;
    const struct model_hparams *hp = &en->m->hp;
    float *cs = en->s.rope_cs + (size_t)t * hp->n_rot;
    float pos = (float)c->b->pos[t];
    (void)ith;
    for (int i = 0; i < hp->n_rot / 2; i++) {
        float theta = pos * en->m->rope_inv_freq[i];
        cs[2 * i] = cosf(theta);
        cs[2 * i + 1] = sinf(theta);
    }
}

static void
swiglu_token(struct engine *en, void *vctx, int t, int ith)
{
    int n_ff = en->m->hp.n_ff;
    (void)vctx;
    (void)ith;
    en->k->swiglu(en->s.hb + (size_t)t * n_ff, en->s.hb2 + (size_t)t * n_ff, n_ff);
}

static void
residual(float *x, const float *y, int n)
{
    for (int i = 0; i < n; i++)
        x[i] += y[i];
}

/* ===== attention: causal, grouped-query, over the slot's cached positions 0..pos ============== */

struct att_job {
    struct engine *en;       /* borrowed */
    const struct batch *b;   /* chunk */
    int il;                  /* layer */
    int per_item;            /* query heads per item: consecutive heads of one KV group */
    int per_group;           /* items per KV group: ceil(group / per_item) */
    int n_items;             /* n_tok * n_head_kv * per_group */
    _Atomic int next;        /* first item not yet taken */
};

/* One head of one token, computed as llama.cpp's CPU flash attention does (its default): the
 * query rounded to F16, one pass of online softmax over the cached positions, and the weighted
 * sum of values accumulated in F16 precision (rounded after every update), divided by the
 * softmax sum at the end. Matching these roundings keeps quantized models' logits within a
 * hair of the reference, because the result feeds straight into an 8-bit quantizer. */
/* llama.cpp switches to a tiled flash attention for batches of 64 or more query rows when the
 * head size is a multiple of its SIMD width (16 floats with AVX-512): F32 query, scores and
 * accumulator. The same switch here keeps prefill (and perplexity) equal to the reference. */
#define ATT_TILED_MIN_TOKENS 64
#define ATT_TILED_HEAD_MULTIPLE 16

/* Item i of the job: token t, heads [h0, h0 + nh) of one KV group, against that KV head. The
 * kernel reads each key and value once for the item's heads. */
static void
attention_heads(const struct att_job *j, int i)
{
    struct engine *en = j->en;
    const struct batch *b = j->b;
    const struct model_hparams *hp = &en->m->hp;
    int hd = hp->head_dim;
    int group = hp->n_head / hp->n_head_kv;
    int per_token = hp->n_head_kv * j->per_group;
    int t = i / per_token;
    int kvh = i % per_token / j->per_group;
    int c = i % j->per_group * j->per_item;
    int nh = group - c < j->per_item ? group - c : j->per_item;
    int h0 = kvh * group + c;
    int seq = b->seq ? b->seq[t] : 0;
    en->k->attn_f16(hd, nh, en->s.q + (size_t)t * hp->dim + (size_t)h0 * hd,
                    kvcache_k(&en->kv, j->il, seq, kvh), kvcache_v(&en->kv, j->il, seq, kvh),
                    (size_t)hd,
                    b->pos[t] + 1, 1.0f / sqrtf((float)hd),
                    en->s.att + (size_t)t * hp->dim + (size_t)h0 * hd);
}

static void
attention_worker(void *arg, int ith, int nth)
{
    struct att_job *j = arg;
    int lo, hi;
    (void)ith;
    while (claim(&j->next, j->n_items, nth, 1, &lo, &hi))
        for (int i = lo; i < hi; i++)
            attention_heads(j, i);
}

/* Heads per item: up to 4 of a KV group share one pass over its keys and values (their
 * dependency chains overlap in the kernel). The count taken is the one whose slowest thread
 * -- ceil(items / nth) passes, nth the threads that will run them -- finishes first, with a
 * pass costing ATT_PASS_COST rows more than its rows: in cache one pass of 1, 2, 3, 4 rows of
 * 64 over 56 positions takes 528, 726, 1068, 1321 ns (a pass ~1 row), and at decode each
 * pass also waits on memory for the head's keys and values, evicted since the last step
 * (SmolLM2-135M, 3 KV heads at 48-63 positions: 5.4 us a layer against 3.3 with them in
 * cache, ~2.5 rows a pass more). The rule before, passes small enough for two items per
 * thread, split SmolLM2's three 3-head groups on two threads into passes of 2 + 1 heads, so
 * both threads read every KV head; whole-group passes: decode x1.004, x1.004, x1.005 (three
 * runs switching rules token by token, median per-token times). */
#define ATT_MAX_HEADS_PER_ITEM 4
#define ATT_PASS_COST 3   /* a pass's own cost, in rows */

static int
attention_heads_per_item(const struct engine *en, int n_tok, int nth)
{
    const struct model_hparams *hp = &en->m->hp;
    int group = hp->n_head / hp->n_head_kv;
    int best = 1;
    long best_cost = -1;
    for (int g = 1; g <= group && g <= ATT_MAX_HEADS_PER_ITEM; g++) {
        long items = (long)n_tok * hp->n_head_kv * ((group + g - 1) / g);
        long cost = (items + nth - 1) / nth * (ATT_PASS_COST + g);
        if (best_cost < 0 || cost <= best_cost) {
            best = g;
            best_cost = cost;
        }
    }
    return best;
}

/* The tiled path: work items are (KV head, block of consecutive tokens of one sequence); the
 * query rows of an item are its tokens x the heads sharing that KV head, so each key and value
 * is converted once per item for all of them. Threads take items from a shared counter,
 * latest tokens (the most positions) first, so the causal triangle spreads evenly. */
struct att_item {
    int t0, t1;   /* tokens [t0, t1) of one sequence */
    int kvh;      /* KV head */
};

struct att_tiled_job {
    struct engine *en;         /* borrowed */
    const struct batch *b;     /* chunk */
    int il;                    /* layer */
    int n_items;               /* items in en->s.att_items */
    _Atomic int next;          /* next item to take */
};

static void
attention_item(struct engine *en, const struct batch *b, int il, const struct att_item *it,
               int ith)
{
    const struct model_hparams *hp = &en->m->hp;
    int hd = hp->head_dim;
    int group = hp->n_head / hp->n_head_kv;
    int seq = b->seq ? b->seq[it->t0] : 0;
    const float *q[KERN_ATTN_MAX_ROWS];
    float *out[KERN_ATTN_MAX_ROWS];
    int n_pos[KERN_ATTN_MAX_ROWS];
    int n = 0;
    for (int t = it->t0; t < it->t1; t++)
        for (int j = 0; j < group; j++) {
            size_t off = (size_t)t * hp->dim + (size_t)(it->kvh * group + j) * hd;
            q[n] = en->s.q + off;
            out[n] = en->s.att + off;
            n_pos[n] = b->pos[t] + 1;
            n++;
        }
    struct kern_attn a = {
        .hd = hd,
        .n_rows = n,
        .q = q,
        .out = out,
        .n_pos = n_pos,
        .k = kvcache_k(&en->kv, il, seq, it->kvh),
        .v = kvcache_v(&en->kv, il, seq, it->kvh),
        .kv_stride = (size_t)hd,
        .scale = 1.0f / sqrtf((float)hd),
        .scratch = en->s.att_tile[ith],
    };
    en->k->attn_f32(&a);
}

static void
attention_tiled_worker(void *arg, int ith, int nth)
{
    struct att_tiled_job *j = arg;
    (void)nth;
    for (;;) {
        int i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->n_items)
            break;
        attention_item(j->en, j->b, j->il, &j->en->s.att_items[j->n_items - 1 - i], ith);
    }
}

static void
attention_tiled(struct engine *en, const struct batch *b, int il)
{
    const struct model_hparams *hp = &en->m->hp;
    int group = hp->n_head / hp->n_head_kv;
    int per = KERN_ATTN_MAX_ROWS / group > 0 ? KERN_ATTN_MAX_ROWS / group : 1;
    int n_items = 0;
    for (int t0 = 0; t0 < b->n_tokens;) {
        int seq = b->seq ? b->seq[t0] : 0;
        int t1 = t0 + 1;
        while (t1 < b->n_tokens && t1 - t0 < per && (b->seq ? b->seq[t1] : 0) == seq)
            t1++;
        for (int h = 0; h < hp->n_head_kv; h++)
            en->s.att_items[n_items++] = (struct att_item){t0, t1, h};
        t0 = t1;
    }
    struct att_tiled_job j = {.en = en, .b = b, .il = il, .n_items = n_items};
    atomic_init(&j.next, 0);
    pool_run_dynamic(&en->pool, attention_tiled_worker, &j);
}

static void
attention(struct engine *en, const struct batch *b, int il)
{
    if (b->n_tokens >= ATT_TILED_MIN_TOKENS && en->m->hp.head_dim % ATT_TILED_HEAD_MULTIPLE == 0 &&
        en->m->hp.n_head / en->m->hp.n_head_kv <= KERN_ATTN_MAX_ROWS) {
        attention_tiled(en, b, il);
        return;
    }
    const struct model_hparams *hp = &en->m->hp;
    int group = hp->n_head / hp->n_head_kv;
    struct att_job j = {.en = en, .b = b, .il = il};
    bool serial = attention_serial(en, b);
    j.per_item = attention_heads_per_item(en, b->n_tokens, serial ? 1 : en->n_threads);
    j.per_group = (group + j.per_item - 1) / j.per_item;
    j.n_items = b->n_tokens * hp->n_head_kv * j.per_group;
    atomic_init(&j.next, 0);
    if (serial)
        attention_worker(&j, 0, 1);
    else
        pool_run_dynamic(&en->pool, attention_worker, &j);
}

/* ===== The forward pass over one chunk of at most n_batch tokens =============================== */

/* With pooled == NULL: logits for the tokens that ask. With pooled != NULL (embeddings): no
 * output matrix; every token's final-normed hidden state is added into pooled (dim floats). */
static void
forward_chunk(struct engine *en, const struct batch *b, float *logits, float *pooled)
{
    const struct model *m = en->m;
    const struct model_hparams *hp = &m->hp;
    struct fwd_scratch *s = &en->s;
    int n = b->n_tokens;
    int dim = hp->dim;
    struct step_ctx c = {.b = b};
    size_t norm_bytes = (size_t)dim * sizeof(float);

    for_each_token(en, n, embed_token, &c);                   /* x (n, dim) = token_embd[tok] */
    for_each_token(en, n, rope_angles_token, &c);             /* cos, sin of pos * freq */
    for (int il = 0; il < hp->n_layer; il++) {
        const struct model_layer *L = &m->layers[il];
        const struct model_layer *Ln = il + 1 < hp->n_layer ? &m->layers[il + 1] : NULL;
        c.il = il;
        /* decode: what each matmul's threads prefetch once their rows are done */
        const struct mm_next after_qkv = {1, {&L->wo}, MM_NEXT_PF_ATT, NULL, 0};
        const struct mm_next after_wo = {2, {&L->w_gate, &L->w_up}, MM_NEXT_PF,
                                         L->ffn_norm.data, norm_bytes};
        const struct mm_next after_gu = {1, {&L->w_down}, MM_NEXT_PF, NULL, 0};
        const struct mm_next after_down =
            Ln ? (struct mm_next){3, {&Ln->wq, &Ln->wk, &Ln->wv}, MM_NEXT_PF, Ln->attn_norm.data,
                                  norm_bytes}
               : (struct mm_next){1, {&m->output}, MM_NEXT_PF, m->output_norm.data, norm_bytes};

        c.w = L->attn_norm.data;
        c.src = s->x;
        c.dst = s->xb;
        c.rows = NULL;
        for_each_token(en, n, rmsnorm_token, &c);             /* xb = rmsnorm(x) * attn_norm */
        const struct model_tensor *wqkv[3] = {&L->wq, &L->wk, &L->wv};
        float *qkv[3] = {s->q, s->k, s->v};
        matmul_kv(en, 3, wqkv, s->xb, n, qkv, n <= ATT_PF_MAX_TOKENS ? b : NULL, il,
                  &after_qkv);                                /* q,k,v = Wq,Wk,Wv . xb */
        for_each_token(en, n, qkv_finish_token, &c);          /* + bias, rope, store k,v */
        attention(en, b, il);                                  /* att = softmax(qK^T/sqrt d) V */
        matmul1(en, &L->wo, s->att, n, s->xb, &after_wo);      /* xb = Wo . att */
        residual(s->x, s->xb, n * dim);                        /* x += xb */

        c.w = L->ffn_norm.data;
        for_each_token(en, n, rmsnorm_token, &c);             /* xb = rmsnorm(x) * ffn_norm */
        const struct model_tensor *wgu[2] = {&L->w_gate, &L->w_up};
        float *gu[2] = {s->hb, s->hb2};
        matmul(en, 2, wgu, s->xb, n, gu, &after_gu);           /* hb, hb2 = Wgate, Wup . xb */
        for_each_token(en, n, swiglu_token, &c);              /* hb = silu(hb) * hb2 */
        matmul1(en, &L->w_down, s->hb, n, s->xb, &after_down); /* xb = Wdown . hb */
        residual(s->x, s->xb, n * dim);                        /* x += xb */
    }

    if (pooled) {
        c.w = m->output_norm.data;
        c.src = s->x;
        c.dst = s->xb;
        c.rows = NULL;
        for_each_token(en, n, rmsnorm_token, &c);             /* xb = rmsnorm(x) */
        for (int t = 0; t < n; t++)
            residual(pooled, s->xb + (size_t)t * dim, dim);   /* pooled += xb[t] */
        return;
    }

    /* Only the rows that want logits go through the final norm and the output matrix. */
    int n_out = 0;
    for (int t = 0; t < n; t++)
        if (b->logits ? b->logits[t] != 0 : t == n - 1)
            s->out_rows[n_out++] = t;
    if (n_out == 0)
        return;
    c.w = m->output_norm.data;
    c.src = s->x;
    c.dst = s->xb;
    c.rows = s->out_rows;
    for_each_token(en, n_out, rmsnorm_token, &c);             /* xb = rmsnorm(x[wanted]) */
    matmul1(en, &m->output, s->xb, n_out, logits, NULL);       /* logits = Wout . xb */
}

/* ===== Lifecycle =============================================================================== */

static float *
scratch_f32(size_t n_batch, size_t width)
{
    return xaligned_alloc(64, n_batch * width * sizeof(float));
}

int
engine_init(struct engine *en, const struct model *m, const struct engine_opts *o,
            struct al_err *e)
{
    memset(en, 0, sizeof *en);
    const struct model_hparams *hp = &m->hp;
    en->m = m;
    int n_ctx = o->n_ctx > 0 ? o->n_ctx : hp->n_ctx_train;
    int n_seq = o->n_seq > 0 ? o->n_seq : 1;
    int n_batch = o->n_batch > 0 ? o->n_batch : 512;
    int n_threads = o->n_threads > 0 ? o->n_threads : pool_default_threads();
    size_t max_kv = o->max_kv_bytes ? o->max_kv_bytes : ((size_t)16 << 30);
    if (n_ctx > (1 << 24) || n_seq > 4096 || n_batch > 65536)
        return al_errf(e, AL_ELIMIT, "context %d, sequences %d or batch %d too large", n_ctx,
                       n_seq, n_batch);
    if ((long long)n_batch > (long long)n_ctx * n_seq)
        n_batch = (int)((long long)n_ctx * n_seq);
    if (hp->head_dim > 1024)
        return al_errf(e, AL_EUNSUPPORTED, "head size %d above 1024", hp->head_dim);

    en->k = kern_select(o->kernels, e);
    if (!en->k)
        return -1;
    /* every weight matrix must be usable by gemm before the first step */
    for (int il = 0; il < hp->n_layer; il++) {
        const struct model_layer *L = &m->layers[il];
        const struct model_tensor *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo,
                                           &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (kern_check_row(ws[i]->type, ws[i]->ne0, e) < 0)
                return al_errctx(e, "layer %d", il);
    }
    if (kern_check_row(m->output.type, m->output.ne0, e) < 0)
        return al_errctx(e, "output");

    en->n_ctx = n_ctx;
    en->n_batch = n_batch;
    en->n_threads = n_threads;
    int rc = -1;
    if (pool_init(&en->pool, n_threads, e) < 0)
        goto out;
    if (kvcache_init(&en->kv, hp->n_layer, n_seq, n_ctx, hp->n_head_kv, hp->head_dim, max_kv,
                     e) < 0)
        goto out;

    size_t nb = (size_t)n_batch;
    struct fwd_scratch *s = &en->s;
    s->x = scratch_f32(nb, (size_t)hp->dim);
    s->xb = scratch_f32(nb, (size_t)hp->dim);
    s->q = scratch_f32(nb, (size_t)hp->dim);
    s->k = scratch_f32(nb, (size_t)hp->kv_dim);
    s->v = scratch_f32(nb, (size_t)hp->kv_dim);
    s->att = scratch_f32(nb, (size_t)hp->dim);
    s->hb = scratch_f32(nb, (size_t)hp->n_ff);
    s->hb2 = scratch_f32(nb, (size_t)hp->n_ff);
    s->rope_cs = scratch_f32(nb, (size_t)(hp->n_rot > 0 ? hp->n_rot : 1));
    /* F32 activations are the widest row any activation type needs */
    int widest = hp->dim > hp->n_ff ? hp->dim : hp->n_ff;
    s->xq_bytes = nb * (size_t)widest * sizeof(float);
    for (int i = 0; i < MAX_GROUP; i++)
        s->xq[i] = xaligned_alloc(64, s->xq_bytes);
    if (en->k->gemm_tiled) {
        /* sums: at most one entry per 16 elements; scratch: the widest panel of any matrix */
        size_t xs_bytes = nb * (size_t)(widest / 16) * sizeof(struct kern_xsum);
        for (int i = 0; i < MAX_GROUP; i++)
            s->xs[i] = xaligned_alloc(64, xs_bytes);
        size_t tb = en->k->tiled_scratch(m->output.type, (int)m->output.ne0);
        for (int il = 0; il < hp->n_layer; il++) {
            const struct model_layer *L = &m->layers[il];
            const struct model_tensor *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo,
                                               &L->w_gate, &L->w_up, &L->w_down};
            for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
                size_t b = en->k->tiled_scratch(ws[i]->type, (int)ws[i]->ne0);
                tb = b > tb ? b : tb;
            }
        }
        s->tiled_bytes = (tb + 63) / 64 * 64;
        s->tiled = xcalloc((size_t)n_threads, sizeof *s->tiled);
        for (int i = 0; i < n_threads; i++)
            s->tiled[i] = xaligned_alloc(64, s->tiled_bytes > 0 ? s->tiled_bytes : 64);
    }
    s->mm_share = xaligned_alloc(64, (size_t)n_threads * sizeof *s->mm_share);
    s->att_items = xcalloc(nb * (size_t)hp->n_head_kv, sizeof *s->att_items);
    s->att_tile = xcalloc((size_t)n_threads, sizeof *s->att_tile);
    for (int i = 0; i < n_threads; i++)
        s->att_tile[i] = xaligned_alloc(64, kern_attn_scratch_floats(hp->head_dim) * sizeof(float));
    s->out_rows = xcalloc(nb, sizeof *s->out_rows);
    s->n_past_tmp = xcalloc((size_t)n_seq, sizeof *s->n_past_tmp);
    s->flags = xcalloc(nb, sizeof *s->flags);
    s->pos_tmp = xcalloc(nb, sizeof *s->pos_tmp);
    s->seq_tmp = xcalloc(nb, sizeof *s->seq_tmp);
    rc = 0;
out:
    if (rc < 0)
        engine_free(en);
    return rc;
}

void
engine_free(struct engine *en)
{
    if (!en)
        return;
    struct fwd_scratch *s = &en->s;
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->hb);
    free(s->hb2);
    free(s->rope_cs);
    for (int i = 0; i < MAX_GROUP; i++) {
        free(s->xq[i]);
        free(s->xs[i]);
    }
    if (s->tiled)
        for (int i = 0; i < en->n_threads; i++)
            free(s->tiled[i]);
    free(s->tiled);
    if (s->att_tile)
        for (int i = 0; i < en->n_threads; i++)
            free(s->att_tile[i]);
    free(s->att_tile);
    free(s->mm_share);
    free(s->att_items);
    free(s->out_rows);
    free(s->n_past_tmp);
    free(s->flags);
    free(s->pos_tmp);
    free(s->seq_tmp);
    kvcache_free(&en->kv);
    pool_free(&en->pool);
    memset(en, 0, sizeof *en);
}

void
engine_seq_truncate(struct engine *en, int seq, int n)
{
    kvcache_seq_truncate(&en->kv, seq, n);
}

int
engine_seq_len(const struct engine *en, int seq)
{
    if (seq < 0 || seq >= en->kv.n_seq)
        return 0;
    return en->kv.n_past[seq];
}

/* Check every token before any is run, so a bad batch leaves the cache unchanged. */
static int
validate_batch(const struct engine *en, const struct batch *b, int *n_past_after,
               struct al_err *e)
{
    memcpy(n_past_after, en->kv.n_past, (size_t)en->kv.n_seq * sizeof *n_past_after);
    for (int t = 0; t < b->n_tokens; t++) {
        int seq = b->seq ? b->seq[t] : 0;
        if (b->token[t] < 0 || b->token[t] >= en->m->hp.n_vocab)
            return al_errf(e, AL_EUSAGE, "batch token %d: id %d outside vocabulary of %d", t,
                           b->token[t], en->m->hp.n_vocab);
        if (seq < 0 || seq >= en->kv.n_seq)
            return al_errf(e, AL_EUSAGE, "batch token %d: sequence %d outside 0..%d", t, seq,
                           en->kv.n_seq - 1);
        if (b->pos[t] != n_past_after[seq])
            return al_errf(e, AL_EUSAGE, "batch token %d: position %d, sequence %d holds %d",
                           t, b->pos[t], seq, n_past_after[seq]);
        if (b->pos[t] >= en->n_ctx)
            return al_errf(e, AL_ELIMIT, "sequence %d: context of %d positions is full", seq,
                           en->n_ctx);
        n_past_after[seq]++;
    }
    return 0;
}

int
engine_decode(struct engine *en, const struct batch *b, float *logits, struct al_err *e)
{
    if (b->n_tokens <= 0)
        return al_errf(e, AL_EUSAGE, "empty batch");
    if (validate_batch(en, b, en->s.n_past_tmp, e) < 0)
        return -1;
    size_t n_vocab = (size_t)en->m->hp.n_vocab;
    size_t out_row = 0;
    for (int t0 = 0; t0 < b->n_tokens; t0 += en->n_batch) {
        int n = b->n_tokens - t0 < en->n_batch ? b->n_tokens - t0 : en->n_batch;
        struct batch chunk = {
            .n_tokens = n,
            .token = b->token + t0,
            .pos = b->pos + t0,
            .seq = b->seq ? b->seq + t0 : NULL,
            .logits = b->logits ? b->logits + t0 : NULL,
        };
        /* with b->logits NULL only the very last token of the whole batch wants logits */
        if (!b->logits && t0 + n < b->n_tokens) {
            memset(en->s.flags, 0, (size_t)n);
            chunk.logits = en->s.flags;
        }
        forward_chunk(en, &chunk, logits + out_row * n_vocab, NULL);
        for (int t = 0; t < n; t++)
            if (chunk.logits ? chunk.logits[t] != 0 : t == n - 1)
                out_row++;
        for (int t = 0; t < n; t++) {
            int seq = chunk.seq ? chunk.seq[t] : 0;
            en->kv.n_past[seq] = chunk.pos[t] + 1;
        }
    }
    return 0;
}

int
engine_embed(struct engine *en, int seq, const int32_t *tokens, int n, float *out,
             struct al_err *e)
{
    if (n <= 0)
        return al_errf(e, AL_EUSAGE, "nothing to embed: no tokens");
    if (seq < 0 || seq >= en->kv.n_seq)
        return al_errf(e, AL_EUSAGE, "sequence %d outside 0..%d", seq, en->kv.n_seq - 1);
    if (n > en->n_ctx)
        return al_errf(e, AL_ELIMIT, "input of %d tokens exceeds the context of %d", n,
                       en->n_ctx);
    int dim = en->m->hp.dim;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= en->m->hp.n_vocab)
            return al_errf(e, AL_EUSAGE, "token %d: id %d outside vocabulary of %d", i,
                           tokens[i], en->m->hp.n_vocab);
    kvcache_seq_truncate(&en->kv, seq, 0);
    memset(out, 0, (size_t)dim * sizeof *out);
    int32_t *pos = en->s.pos_tmp;
    int32_t *sq = en->s.seq_tmp;
    for (int t0 = 0; t0 < n; t0 += en->n_batch) {
        int nc = n - t0 < en->n_batch ? n - t0 : en->n_batch;
        for (int t = 0; t < nc; t++) {
            pos[t] = t0 + t;
            sq[t] = seq;
        }
        struct batch chunk = {.n_tokens = nc, .token = tokens + t0, .pos = pos, .seq = sq};
        forward_chunk(en, &chunk, NULL, out);
        en->kv.n_past[seq] = t0 + nc;
    }
    /* mean over tokens (summed in float per token), then unit L2 norm (its sum of squares in
     * double: dim can be thousands) */
    double ss = 0;
    for (int i = 0; i < dim; i++) {
        out[i] /= (float)n;
        ss += (double)out[i] * out[i];
    }
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    for (int i = 0; i < dim; i++)
        out[i] *= inv;
    /* the slot now holds this input's keys, which no generation request wants */
    kvcache_seq_truncate(&en->kv, seq, 0);
    return 0;
}
