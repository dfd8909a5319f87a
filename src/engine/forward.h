/* forward.h -- run the transformer over a batch of tokens from one or more sequences.
 * A batch lists tokens with their position and sequence slot; the engine appends each token's
 * keys and values to that slot of the KV cache and returns logits for the tokens that ask.
 * Prefill (many tokens of one sequence) and decode (one token per sequence, many sequences:
 * continuous batching) are the same call. Not thread-safe: one caller drives an engine; the
 * engine's pool does the parallel work inside a call. */
#ifndef AIRLOCK_ENGINE_FORWARD_H
#define AIRLOCK_ENGINE_FORWARD_H

#include <stdint.h>

#include "engine/kernels/kernels.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "engine/pool.h"
#include "util/err.h"

struct att_item;

struct batch {
    int n_tokens;              /* entries in each array below */
    const int32_t *token;      /* borrowed, token ids in [0, n_vocab) */
    const int32_t *pos;        /* borrowed, position of each token in its sequence; a token's
                                * position must equal the slot's length when it is reached */
    const int32_t *seq;        /* borrowed, sequence slot in [0, n_seq); NULL = all slot 0 */
    const int8_t *logits;      /* borrowed, nonzero = return logits for this token;
                                * NULL = only the last token */
};

struct engine_opts {
    int n_ctx;            /* positions per sequence; 0 = the model's context_length */
    int n_seq;            /* sequence slots; 0 = 1 */
    int n_batch;          /* most tokens processed in one internal step; 0 = 512 */
    int n_threads;        /* 0 = physical cores */
    const char *kernels;  /* NULL/"auto", "ref", "avx2", "avx512" */
    size_t max_kv_bytes;  /* KV cache limit; 0 = 16 GiB */
    bool mmap_weights;    /* llm_open only: serve weights from the file mapping instead of a
                           * copy on huge pages (model_load_weights) */
};

/* Scratch activations for up to n_batch tokens, reused by every step (nothing is allocated
 * inside forward). All owned, 64-byte aligned. */
struct mm_share;

struct fwd_scratch {
    float *x;        /* (n_batch, dim) residual stream */
    float *xb;       /* (n_batch, dim) normed input of a block */
    float *q;        /* (n_batch, dim) queries */
    float *k;        /* (n_batch, kv_dim) new keys */
    float *v;        /* (n_batch, kv_dim) new values */
    float *att;      /* (n_batch, dim) attention output before wo */
    float *hb;       /* (n_batch, n_ff) gate, then swiglu result */
    float *hb2;      /* (n_batch, n_ff) up */
    float *rope_cs;  /* (n_batch, n_rot) cos and sin of each token's rotation angles, computed
                      * once per chunk for all layers (the angles depend on position only) */
    void *xq[3];     /* quantized activations, up to 3 distinct types per matmul group */
    size_t xq_bytes; /* capacity of each xq buffer */
    struct kern_xsum *xs[3]; /* (n_batch, blocks) activation sums for gemm_tiled, one buffer per
                              * distinct weight type of a matmul group; NULL without gemm_tiled */
    void **tiled;    /* (n_threads) gemm_tiled scratch per thread, tiled_bytes each, or NULL */
    size_t tiled_bytes; /* capacity of each tiled scratch */
    struct att_item *att_items; /* (n_batch * n_head_kv) work items of the tiled attention */
    float **att_tile; /* (n_threads) attn_f32 scratch per thread */
    int *out_rows;   /* (n_batch) batch indices whose logits are wanted */
    int *n_past_tmp; /* (n_seq) slot lengths while a batch is validated */
    int8_t *flags;   /* (n_batch) "last token only" logits flags for split batches */
    int32_t *pos_tmp;/* (n_batch) positions of an embedding chunk */
    int32_t *seq_tmp;/* (n_batch) slot of an embedding chunk */
    struct mm_share *mm_share; /* (n_threads) decode matmul row shares, one cache line each */
};

struct engine {
    const struct model *m;      /* borrowed */
    const struct kern *k;       /* kernel table, chosen at init */
    struct pool pool;           /* owned worker threads */
    struct kvcache kv;          /* owned cache, n_seq slots */
    struct fwd_scratch s;       /* owned scratch */
    int n_ctx;                  /* positions per sequence */
    int n_batch;                /* capacity of the scratch in tokens */
    int n_threads;              /* pool size */
};

int engine_init(struct engine *en, const struct model *m, const struct engine_opts *o,
                struct al_err *e);
void engine_free(struct engine *en); /* safe on a zeroed engine */

/* Run b. logits receives n_vocab floats for each token with a nonzero logits flag, in batch
 * order (or for the last token when b->logits is NULL); it must hold that many rows. Fails
 * (AL_EUSAGE) without touching the cache when a token, slot or position is out of order. */
int engine_decode(struct engine *en, const struct batch *b, float *logits, struct al_err *e);

/* Sentence embedding of tokens (borrowed, n of them, n <= n_ctx): the final-normed hidden state
 * of every token (the input of the output matrix), mean-pooled and scaled to unit L2 length,
 * written to out (hp.dim floats). Uses slot seq as scratch and leaves it empty. */
int engine_embed(struct engine *en, int seq, const int32_t *tokens, int n, float *out,
                 struct al_err *e);

/* Forget positions >= n of slot seq (n = 0 clears the sequence). */
void engine_seq_truncate(struct engine *en, int seq, int n);
/* Positions currently held for slot seq. */
int engine_seq_len(const struct engine *en, int seq);

#endif
