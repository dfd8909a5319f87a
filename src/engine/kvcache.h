/* kvcache.h -- key/value cache memory for attention, split into independent sequence slots.
 * Each slot holds up to n_ctx positions of every layer's keys and values as IEEE half floats
 * (what llama.cpp stores by default), so one engine can advance several conversations at once.
 * Positions of a slot are filled strictly in order; truncating a slot makes it reusable.
 * Written only by the thread that runs forward (workers write disjoint rows during a step). */
#ifndef AIRLOCK_ENGINE_KVCACHE_H
#define AIRLOCK_ENGINE_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct kvcache {
    int n_layer;      /* layers of the model */
    int n_seq;        /* sequence slots */
    int n_ctx;        /* positions per slot */
    int n_head_kv;    /* KV heads */
    int head_dim;     /* halves per head and position */
    int kv_dim;       /* n_head_kv * head_dim halves per position */
    uint16_t *k;      /* owned, (n_layer, n_seq, n_head_kv, n_ctx, head_dim) F16, 64-byte
                       * aligned: one head's positions back to back, so attention over a head
                       * reads one contiguous stream instead of a slice of every position */
    uint16_t *v;      /* owned, same layout as k */
    int *n_past;      /* owned, n_seq: positions [0, n_past) of each slot are valid */
};

/* Allocate a cache; fails with AL_ELIMIT when the size overflows or exceeds max_bytes. */
int kvcache_init(struct kvcache *c, int n_layer, int n_seq, int n_ctx, int n_head_kv,
                 int head_dim, size_t max_bytes, struct al_err *e);
void kvcache_free(struct kvcache *c); /* safe on a zeroed cache */

/* Forget positions >= n of slot seq (0 clears it). */
void kvcache_seq_truncate(struct kvcache *c, int seq, int n);

/* Keys of layer il, slot seq, KV head h: position p's head_dim halves start at p * head_dim.
 * No bounds checks: forward validates. */
static inline uint16_t *
kvcache_k(const struct kvcache *c, int il, int seq, int h)
{
    return c->k + (((size_t)il * c->n_seq + seq) * c->n_head_kv + h) * c->n_ctx * c->head_dim;
}

static inline uint16_t *
kvcache_v(const struct kvcache *c, int il, int seq, int h)
{
    return c->v + (((size_t)il * c->n_seq + seq) * c->n_head_kv + h) * c->n_ctx * c->head_dim;
}

/* Bytes one full cache of these dimensions needs (both K and V), or 0 on overflow. */
size_t kvcache_bytes(int n_layer, int n_seq, int n_ctx, int kv_dim);

#endif
