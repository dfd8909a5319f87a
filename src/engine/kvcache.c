/* kvcache.c -- allocation and slot bookkeeping for the F16 KV cache (layout in kvcache.h).
 * Memory is touched only as positions are written, so a large --ctx costs address space, not
 * resident memory, until it is used (in 2 MiB steps where huge pages are granted). */
#include "engine/kvcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/xalloc.h"

size_t
kvcache_bytes(int n_layer, int n_seq, int n_ctx, int kv_dim)
{
    size_t n = 1;
    if (n_layer <= 0 || n_seq <= 0 || n_ctx <= 0 || kv_dim <= 0)
        return 0;
    if (!size_mul_ok(n, (size_t)n_layer, &n) || !size_mul_ok(n, (size_t)n_seq, &n) ||
        !size_mul_ok(n, (size_t)n_ctx, &n) || !size_mul_ok(n, (size_t)kv_dim, &n) ||
        !size_mul_ok(n, 2 * sizeof(uint16_t), &n))
        return 0;
    return n;
}

/* Attention streams a slot's keys and values once per token and layer; on 2 MiB pages that
 * stream does not stop for a TLB miss every 4 KiB. Best effort, on the aligned interior. */
static void
advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t hi = ((uintptr_t)p + n) & ~(huge - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

int
kvcache_init(struct kvcache *c, int n_layer, int n_seq, int n_ctx, int n_head_kv, int head_dim,
             size_t max_bytes, struct al_err *e)
{
    memset(c, 0, sizeof *c);
    long long kv_dim = (long long)n_head_kv * head_dim;
    size_t total = n_head_kv > 0 && head_dim > 0 && kv_dim <= (1 << 24)
                       ? kvcache_bytes(n_layer, n_seq, n_ctx, (int)kv_dim)
                       : 0;
    if (total == 0 || total > max_bytes)
        return al_errf(e, AL_ELIMIT,
                       "KV cache of %d layers x %d sequences x %d positions x %d needs more "
                       "than the %zu MiB limit (lower --ctx)",
                       n_layer, n_seq, n_ctx, (int)kv_dim, max_bytes >> 20);
    c->n_layer = n_layer;
    c->n_seq = n_seq;
    c->n_ctx = n_ctx;
    c->n_head_kv = n_head_kv;
    c->head_dim = head_dim;
    c->kv_dim = (int)kv_dim;
    c->k = xaligned_alloc(64, total / 2);
    c->v = xaligned_alloc(64, total / 2);
    advise_huge(c->k, total / 2);
    advise_huge(c->v, total / 2);
    c->n_past = xcalloc((size_t)n_seq, sizeof *c->n_past);
    return 0;
}

void
kvcache_free(struct kvcache *c)
{
    if (!c)
        return;
    free(c->k);
    free(c->v);
    free(c->n_past);
    memset(c, 0, sizeof *c);
}

void
kvcache_seq_truncate(struct kvcache *c, int seq, int n)
{
    if (seq < 0 || seq >= c->n_seq)
        return;
    if (n < 0)
        n = 0;
    if (n < c->n_past[seq])
        c->n_past[seq] = n;
}
