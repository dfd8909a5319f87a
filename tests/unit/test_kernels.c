/* test_kernels.c -- the compute kernels: number conversions on known values, block layouts on
 * hand-built blocks, activation quantization round trips, and every SIMD table this CPU runs
 * against the scalar reference (identical quantized activations, gemm within a per-type
 * tolerance) on random blocks with zeros, huge and negative scales, odd token counts and row
 * ranges that are not multiples of any tile. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/kernels.h"
#include "format/gguf.h"
#include "engine/kernels/quant.h"
#include "util/xalloc.h"

static const enum ggml_type all_types[] = {
    GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
    GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
    GGML_TYPE_Q6_K, KERN_TYPE_Q4_0_RS, KERN_TYPE_Q5_0_RS, KERN_TYPE_Q8_0_RS,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* Tolerance on |simd - ref| relative to sum |w_j * x_j| (the dot's magnitude). SIMD tables use
 * the same integer block sums as ref; what differs is float summation order (and, for float
 * types, float instead of double accumulation). */
static double
tol_for(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
        return 2e-6;  /* per-element float rounding only */
    default:
        return 2e-6;  /* one float product per block, reordered sums */
    }
}

/* A type's name in failure messages, the row-split layouts included. */
static const char *
type_name(enum ggml_type t)
{
    switch (t) {
    case KERN_TYPE_Q4_0_RS: return "Q4_0 row-split";
    case KERN_TYPE_Q5_0_RS: return "Q5_0 row-split";
    case KERN_TYPE_Q8_0_RS: return "Q8_0 row-split";
    default: return ggml_type_name(t);
    }
}

static uint64_t
rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static float
rng_unit(uint64_t *s)
{
    return (float)(rng_next(s) >> 40) * 0x1p-23f - 1.0f;
}

/* A scale for block i: mostly small, some zero, some negative, some large. */
static float
pick_scale(uint64_t *s, size_t i)
{
    switch (i % 7) {
    case 3: return 0.0f;
    case 5: return -0.07f * (1.0f + rng_unit(s));
    case 6: return 300.0f * rng_unit(s);
    default: return 0.02f * rng_unit(s);
    }
}

static void
fill_weights(enum ggml_type wt, uint8_t *w, size_t bytes, uint64_t *s)
{
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)rng_next(s);
    size_t bb = (size_t)kern_block_bytes(wt), nblk = bytes / bb;
    for (size_t i = 0; i < nblk; i++) {
        uint8_t *b = w + i * bb;
        uint16_t h1 = q_f32_to_f16(pick_scale(s, i)), h2 = q_f32_to_f16(pick_scale(s, i + 2));
        switch (wt) {
        case GGML_TYPE_F32: {
            float v = (i % 97 == 5) ? 0.0f : rng_unit(s) * ((i % 13 == 0) ? 1000.0f : 1.0f);
            memcpy(b, &v, 4);
            break;
        }
        case GGML_TYPE_F16: {
            uint16_t v = q_f32_to_f16(rng_unit(s) * ((i % 13 == 0) ? 1000.0f : 1.0f));
            memcpy(b, &v, 2);
            break;
        }
        case GGML_TYPE_BF16: {
            uint16_t v = q_f32_to_bf16(rng_unit(s) * ((i % 13 == 0) ? 1e6f : 1.0f));
            memcpy(b, &v, 2);
            break;
        }
        case GGML_TYPE_Q6_K:
            memcpy(b + offsetof(struct blk_q6_k, d), &h1, 2);
            break;
        case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
            memcpy(b, &h1, 2);
            memcpy(b + 2, &h2, 2);
            break;
        default:
            memcpy(b, &h1, 2);
            break;
        }
        if (i % 11 == 4 && wt != GGML_TYPE_F32 && wt != GGML_TYPE_F16 && wt != GGML_TYPE_BF16)
            memset(b, 0, bb);  /* an all-zero block */
    }
}

static void
fill_acts(float *x, int n, uint64_t *s)
{
    for (int j = 0; j < n; j++) {
        int blk = j / 256;
        float scale = (blk % 5 == 1) ? 1000.0f : (blk % 5 == 3) ? 1e-3f : 1.0f;
        x[j] = rng_unit(s) * scale;
        if (blk % 7 == 6)
            x[j] = 0.0f;  /* an all-zero activation block */
    }
}

/* rows x n weights of type wt; row-split types are random GGUF rows of their base type,
 * packed (so their scales are as sane as those). */
static void
fill_rows(enum ggml_type wt, uint8_t *w, int n, int rows, uint64_t *s)
{
    size_t wrow = kern_row_bytes(wt, n);
    if (!q_is_rs(wt)) {
        fill_weights(wt, w, wrow * (size_t)rows, s);
        return;
    }
    uint8_t *g = xmalloc(wrow * (size_t)rows);
    fill_weights(q_rs_base(wt), g, wrow * (size_t)rows, s);
    for (int r = 0; r < rows; r++)
        kern_rs_pack_row(q_rs_base(wt), g + (size_t)r * wrow, w + (size_t)r * wrow, n);
    free(g);
}

/* Elements per block as the tests' row lengths must step: whole pairs for row-split types. */
static int
step_elems(enum ggml_type wt)
{
    return q_is_rs(wt) ? 64 : kern_block_elems(wt);
}

/* Run table k's gemm (variant 0) or gemm_tiled (variant 1) on one configuration. */
static void
run_variant(const struct kern *k, int variant, enum ggml_type wt, const uint8_t *w, size_t wrow,
            int n, int r0, int r1, const uint8_t *xq, size_t xrow, int n_tok, float *out, int ld)
{
    if (variant == 0) {
        k->gemm(wt, w, wrow, n, r0, r1, xq, n_tok, out, ld);
        return;
    }
    int xsb = kern_xsum_block(wt);
    size_t nxs = xsb ? (size_t)(n / xsb) : 0;
    struct kern_xsum *xs = xmalloc(sizeof *xs * (nxs * (size_t)n_tok + 1));
    for (int t = 0; t < n_tok; t++)
        kern_act_sums(wt, xq + t * xrow, n, xs + t * nxs);
    size_t sb = k->tiled_scratch(wt, n);
    void *scratch = xaligned_alloc(64, sb ? sb : 64);
    k->gemm_tiled(wt, w, wrow, n, r0, r1, xq, xs, n_tok, out, ld, scratch);
    free(xs);
    free(scratch);
}

/* Compare table k (gemm, and gemm_tiled where it has one) with ref on one configuration. */
static void
check_gemm(const struct kern *k, enum ggml_type wt, int n, int rows, int r0, int r1, int n_tok,
           uint64_t *s)
{
    const struct kern *ref = kern_ref();
    enum ggml_type at = kern_act_type(wt);
    size_t wrow = kern_row_bytes(wt, n), xrow = kern_row_bytes(at, n);
    assert_true(wrow > 0 && xrow > 0);
    uint8_t *w = xmalloc(wrow * rows);
    float *x = xmalloc(sizeof(float) * n * n_tok);
    uint8_t *xq = xmalloc(xrow * n_tok), *xq2 = xmalloc(xrow * n_tok);
    float *o1 = xmalloc(sizeof(float) * rows * n_tok), *o2 = xmalloc(sizeof(float) * rows * n_tok);
    float *wd = xmalloc(sizeof(float) * n), *xd = xmalloc(sizeof(float) * n);

    fill_rows(wt, w, n, rows, s);
    fill_acts(x, n * n_tok, s);
    for (int t = 0; t < n_tok; t++) {
        ref->quantize_row(at, x + (size_t)t * n, xq + t * xrow, n);
        k->quantize_row(at, x + (size_t)t * n, xq2 + t * xrow, n);
    }
    if (memcmp(xq, xq2, xrow * n_tok) != 0)
        fail_msg("%s: quantize_row to %s differs from ref (n %d)", k->name, type_name(at), n);
    for (int i = 0; i < rows * n_tok; i++)
        o1[i] = -12345.0f;
    ref->gemm(wt, w, wrow, n, r0, r1, xq, n_tok, o1, rows);
    for (int variant = 0; variant < (k->gemm_tiled ? 2 : 1); variant++) {
        const char *vname = variant ? "gemm_tiled" : "gemm";
        for (int i = 0; i < rows * n_tok; i++)
            o2[i] = -12345.0f;
        run_variant(k, variant, wt, w, wrow, n, r0, r1, xq, xrow, n_tok, o2, rows);
        for (int t = 0; t < n_tok; t++) {
            ref->dequantize_row(at, xq + t * xrow, xd, n);
            for (int r = 0; r < rows; r++) {
                float a = o1[t * rows + r], b = o2[t * rows + r];
                if (r < r0 || r >= r1) {
                    if (a != -12345.0f || b != -12345.0f)
                        fail_msg("%s %s %s: wrote outside rows [%d,%d): row %d", k->name, vname,
                                 type_name(wt), r0, r1, r);
                    continue;
                }
                ref->dequantize_row(wt, w + r * wrow, wd, n);
                double mag = 0.0;
                for (int j = 0; j < n; j++)
                    mag += fabs((double)wd[j] * xd[j]);
                /* the reference itself must agree with the dequantized float dot */
                double exact = 0.0;
                for (int j = 0; j < n; j++)
                    exact += (double)wd[j] * xd[j];
                /* Q8_1 carries d*sum(q) rounded to half: the min term is that coarse */
                double tol_exact = at == GGML_TYPE_Q8_1 ? 2e-3 : 1e-5;
                if (!(fabs(exact - a) <= tol_exact * mag + 1e-30))
                    fail_msg("ref %s n %d row %d tok %d: %.9g vs dequantized dot %.9g (mag %g)",
                             type_name(wt), n, r, t, a, exact, mag);
                if (!(fabs((double)a - b) <= tol_for(wt) * mag + 1e-30))
                    fail_msg("%s %s %s n %d rows [%d,%d) n_tok %d: row %d tok %d: %.9g vs ref "
                             "%.9g (mag %g)", k->name, vname, type_name(wt), n, r0, r1,
                             n_tok, r, t, b, a, mag);
            }
        }
    }
    free(w); free(x); free(xq); free(xq2); free(o1); free(o2); free(wd); free(xd);
}

static const struct kern *
table_or_null(const char *name)
{
    struct al_err e = {0};
    return kern_select(name, &e);
}

static void
gemm_matches_ref_every_table(void **state)
{
    (void)state;
    static const char *names[] = { "ref", "avx2", "avx512" };
    static const int toks[] = { 1, 3, 5, 17 };
    uint64_t s = 42;
    for (size_t ni = 0; ni < 3; ni++) {
        const struct kern *k = table_or_null(names[ni]);
        if (!k) {
            printf("table %s not available on this CPU: skipped\n", names[ni]);
            continue;
        }
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            enum ggml_type wt = all_types[ti];
            int be = kern_block_elems(wt) == 1 ? 32 : step_elems(wt);
            /* K-quants: 1, 5 and 16 super-blocks (decode unpacks scales four at a time) */
            int ns[] = { be, (be == 256 ? 5 : 3) * be, be == 256 ? 4096 : 2048 + 3 * be };
            if (be == 32 && kern_block_elems(wt) == 1)
                ns[0] = 7, ns[1] = 45;  /* float types: odd lengths too */
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 4; b++) {
                    int rows = 11, r0 = 1 + b % 2, r1 = rows - (b % 3);
                    check_gemm(k, wt, ns[a], rows, r0, r1, toks[b], &s);
                }
            check_gemm(k, wt, ns[0], 9, 0, 9, 8, &s);  /* exact tiles */
            if (be == 256)  /* more super-blocks than decode unpacks scales for at a time */
                check_gemm(k, wt, 131 * 256, 3, 0, 3, 1, &s);
        }
    }
}

/* A few tokens at once (several sequences decoding in one step) give every token the same
 * bits as that token alone, for the quantized types: the small-batch path keeps each token's
 * operations and their order. Row ranges that start and end off any tile or block edge. */
static void
small_batch_equals_single_tokens(void **state)
{
    (void)state;
    static const char *names[] = { "ref", "avx2", "avx512" };
    static const enum ggml_type types[] = { GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0,
                                            GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q4_K,
                                            GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, KERN_TYPE_Q4_0_RS,
                                            KERN_TYPE_Q5_0_RS, KERN_TYPE_Q8_0_RS };
    uint64_t s = 77;
    enum { ROWS = 75, MAXT = 8 };
    for (size_t ni = 0; ni < 3; ni++) {
        const struct kern *k = table_or_null(names[ni]);
        if (!k)
            continue;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            enum ggml_type wt = types[ti], at = kern_act_type(wt);
            int n = kern_block_elems(wt) == 256 ? 512 : 576;
            size_t wrow = kern_row_bytes(wt, n), xrow = kern_row_bytes(at, n);
            uint8_t *w = xmalloc(wrow * ROWS), *xq = xmalloc(xrow * MAXT);
            float *x = xmalloc(sizeof(float) * (size_t)n * MAXT);
            float *ob = xmalloc(sizeof(float) * ROWS * MAXT), *o1 = xmalloc(sizeof(float) * ROWS);
            fill_rows(wt, w, n, ROWS, &s);
            fill_acts(x, n * MAXT, &s);
            for (int t = 0; t < MAXT; t++)
                k->quantize_row(at, x + (size_t)t * n, xq + t * xrow, n);
            /* 2-5 tokens in every table; the AVX2 table's 32-element types up to 8, which it
             * runs row by row too (simd_impl.h, KS_SMALL_BATCH; its 3x4 tiles, used for them
             * before, also gave each token its own bits) */
            int maxt = strcmp(k->name, "avx2") == 0 && kern_block_elems(wt) == 32 ? 8 : 5;
            for (int nt = 2; nt <= maxt; nt++) {
                memset(ob, 0, sizeof(float) * ROWS * MAXT);
                k->gemm(wt, w, wrow, n, 3, ROWS - 2, xq, nt, ob, ROWS);
                for (int t = 0; t < nt; t++) {
                    memset(o1, 0, sizeof(float) * ROWS);
                    k->gemm(wt, w, wrow, n, 3, ROWS - 2, xq + t * xrow, 1, o1, ROWS);
                    if (memcmp(o1 + 3, ob + (size_t)t * ROWS + 3, sizeof(float) * (ROWS - 5)) != 0)
                        fail_msg("%s %s: token %d of a batch of %d differs from it alone", k->name,
                                 type_name(wt), t, nt);
                }
            }
            free(w);
            free(xq);
            free(x);
            free(ob);
            free(o1);
        }
    }
}

/* Decode (1-5 tokens) over the 32-element block types gives the same bits in the AVX2 and
 * AVX-512 tables: both keep ggml's per-block order (integer block sums, then one multiply-add
 * per block in block order), the AVX-512 one two blocks per 512-bit step (one token's
 * row-split rows four at a time). Rows of 1, 3, 19 and 65 blocks (odd counts leave a
 * single-block tail), in row ranges of whole groups of four, fewer than four and a short last
 * group. */
static void
decode_32_blocks_same_bits_in_simd_tables(void **state)
{
    (void)state;
    const struct kern *a = table_or_null("avx2"), *b = table_or_null("avx512");
    if (!a || !b)
        skip();
    static const enum ggml_type types[] = { GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0,
                                            GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, KERN_TYPE_Q4_0_RS,
                                            KERN_TYPE_Q5_0_RS, KERN_TYPE_Q8_0_RS };
    static const int ns[] = { 32, 96, 608, 2080 };  /* row-split: each + 32 (whole pairs) */
    uint64_t s = 91;
    enum { ROWS = 21, MAXT = 5 };
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            enum ggml_type wt = types[ti], at = kern_act_type(wt);
            int n = ns[ni] + (q_is_rs(wt) ? 32 : 0);
            size_t wrow = kern_row_bytes(wt, n), xrow = kern_row_bytes(at, n);
            uint8_t *w = xmalloc(wrow * ROWS), *xq = xmalloc(xrow * MAXT);
            float *x = xmalloc(sizeof(float) * (size_t)n * MAXT);
            float *oa = xmalloc(sizeof(float) * ROWS * MAXT), *ob = xmalloc(sizeof(float) * ROWS * MAXT);
            fill_rows(wt, w, n, ROWS, &s);
            fill_acts(x, n * MAXT, &s);
            for (int t = 0; t < MAXT; t++)
                a->quantize_row(at, x + (size_t)t * n, xq + t * xrow, n);
            /* row ranges: groups of four, fewer than four, a short last group */
            static const int ranges[][2] = { {1, ROWS}, {1, 4}, {2, ROWS} };
            for (int nt = 1; nt <= MAXT; nt++)
                for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
                    memset(oa, 0, sizeof(float) * ROWS * MAXT);
                    memset(ob, 0, sizeof(float) * ROWS * MAXT);
                    a->gemm(wt, w, wrow, n, ranges[ri][0], ranges[ri][1], xq, nt, oa, ROWS);
                    b->gemm(wt, w, wrow, n, ranges[ri][0], ranges[ri][1], xq, nt, ob, ROWS);
                    if (memcmp(oa, ob, sizeof(float) * ROWS * (size_t)nt) != 0)
                        fail_msg("%s n %d, %d tokens, rows %d-%d: avx2 and avx512 decode differ",
                                 type_name(wt), n, nt, ranges[ri][0], ranges[ri][1]);
                }
            free(w);
            free(xq);
            free(x);
            free(oa);
            free(ob);
        }
}

/* Row-split rows (quant.h) hold GGUF's values: a hand-built pair of blocks lands where the
 * layout says, unpacking gives every block's bytes back, and every table's gemm (decode, a
 * few tokens, tiles, packed panels) and dequantize_row give what the GGUF rows give, bit for
 * bit. */
static void
row_split_matches_gguf_bit_for_bit(void **state)
{
    (void)state;
    /* hand-built Q5_0 pair: element j's low bits j % 16 in block 0, 15 - j % 16 in block 1 */
    struct blk_q5_0 g[2];
    for (int b = 0; b < 2; b++) {
        g[b].d = (uint16_t)(0x3c00 + b);
        uint32_t qh = b ? 0x80000001u : 0x0000ffffu;
        memcpy(g[b].qh, &qh, 4);
        for (int j = 0; j < 16; j++) {
            int lo = b ? 15 - j : j, hi = b ? 15 - j : j;  /* elements j and j + 16 */
            g[b].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
    uint8_t rs[2 * sizeof(struct blk_q5_0)];
    kern_rs_pack_row(GGML_TYPE_Q5_0, g, rs, 64);
    assert_int_equal(rs[0] | rs[1] << 8, 0x3c00);
    assert_int_equal(rs[2] | rs[3] << 8, 0x3c01);
    assert_memory_equal(rs + 4, g[0].qh, 4);
    assert_memory_equal(rs + 8, g[1].qh, 4);
    for (int j = 0; j < 32; j++)
        assert_int_equal(rs[12 + j], (j % 16) | (15 - j % 16) << 4);
    for (int b = 0; b < 2; b++) {
        uint8_t back[sizeof(struct blk_q5_0)];
        q_rs_block(KERN_TYPE_Q5_0_RS, rs, 2, b, back);
        assert_memory_equal(back, &g[b], sizeof back);
    }

    static const char *names[] = { "ref", "avx2", "avx512" };
    static const enum ggml_type base[] = { GGML_TYPE_Q4_0, GGML_TYPE_Q5_0, GGML_TYPE_Q8_0 };
    static const int ns[] = { 64, 576, 2176, 4096 };  /* decode: rs_rows4 up to 8 KiB per
                                                       four rows, rs_rows beyond */
    static const int toks[] = { 1, 2, 5, 8, 17, 64 };
    enum { ROWS = 37, MAXT = 64 };
    uint64_t s = 5;
    for (size_t bi = 0; bi < sizeof base / sizeof base[0]; bi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            enum ggml_type gt = base[bi], rt = kern_rs_type(gt), at = kern_act_type(gt);
            int n = ns[ni], nb = n / 32;
            size_t wrow = kern_row_bytes(gt, n), xrow = kern_row_bytes(at, n);
            assert_int_equal(kern_row_bytes(rt, n), wrow);
            assert_int_equal(kern_act_type(rt), at);
            uint8_t *wg = xmalloc(wrow * ROWS), *wr = xmalloc(wrow * ROWS);
            uint8_t *xq = xmalloc(xrow * MAXT);
            float *x = xmalloc(sizeof(float) * (size_t)n * MAXT);
            float *og = xmalloc(sizeof(float) * ROWS * MAXT), *or = xmalloc(sizeof(float) * ROWS * MAXT);
            float *dg = xmalloc(sizeof(float) * (size_t)n), *dr = xmalloc(sizeof(float) * (size_t)n);
            fill_weights(gt, wg, wrow * ROWS, &s);
            fill_acts(x, n * MAXT, &s);
            for (int r = 0; r < ROWS; r++) {
                kern_rs_pack_row(gt, wg + r * wrow, wr + r * wrow, n);
                for (int b = 0; b < nb; b++) {
                    uint8_t back[sizeof(struct blk_q8_0)];
                    q_rs_block(rt, wr + r * wrow, nb, b, back);
                    assert_memory_equal(back, wg + r * wrow + (size_t)b * kern_block_bytes(gt),
                                        (size_t)kern_block_bytes(gt));
                }
            }
            for (size_t ki = 0; ki < 3; ki++) {
                const struct kern *k = table_or_null(names[ki]);
                if (!k)
                    continue;
                for (int t = 0; t < MAXT; t++)
                    k->quantize_row(at, x + (size_t)t * n, xq + t * xrow, n);
                for (int r = 0; r < ROWS; r++) {
                    k->dequantize_row(gt, wg + r * wrow, dg, n);
                    k->dequantize_row(rt, wr + r * wrow, dr, n);
                    assert_memory_equal(dg, dr, sizeof(float) * (size_t)n);
                }
                for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++)
                    for (int variant = 0; variant < (k->gemm_tiled ? 2 : 1); variant++) {
                        int nt = toks[ti];
                        /* row counts 33, 1, 2, 3, 8: one-token decode takes rows in groups
                         * (2 or 4) and finishes a short group by repeating its last row or
                         * (four rows apart by a stride) by overlapping the group before */
                        static const int ranges[][2] = { {2, ROWS - 2}, {5, 6}, {2, 4}, {3, 6},
                                                         {1, 9} };
                        for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
                            int r0 = ranges[ri][0], r1 = ranges[ri][1];
                            memset(og, 0, sizeof(float) * ROWS * MAXT);
                            memset(or, 0, sizeof(float) * ROWS * MAXT);
                            run_variant(k, variant, gt, wg, wrow, n, r0, r1, xq, xrow, nt, og, ROWS);
                            run_variant(k, variant, rt, wr, wrow, n, r0, r1, xq, xrow, nt, or, ROWS);
                            if (memcmp(og, or, sizeof(float) * ROWS * (size_t)nt) != 0)
                                fail_msg("%s %s %s n %d, %d tokens, rows [%d, %d): row-split "
                                         "differs from GGUF", k->name,
                                         variant ? "gemm_tiled" : "gemm", type_name(gt), n,
                                         nt, r0, r1);
                        }
                    }
            }
            free(wg); free(wr); free(xq); free(x); free(og); free(or); free(dg); free(dr);
        }
}

/* The packed-panel path at the sizes where its tiling shows: ranges spanning several panels
 * that start and end inside one, a lane group left empty, token counts around its micro
 * tile (6) including 1, and whole panels and tiles exactly. */
static void
gemm_tiled_panels_and_tails(void **state)
{
    (void)state;
    uint64_t s = 7;
    for (size_t ni = 0; ni < 3; ni++) {
        static const char *names[] = { "ref", "avx2", "avx512" };
        const struct kern *k = table_or_null(names[ni]);
        if (!k || !k->gemm_tiled)
            continue;
        assert_true(k->tiled_rows > 0 && k->tiled_min_tok(GGML_TYPE_Q8_0) > 0);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            enum ggml_type wt = all_types[ti];
            int be = kern_block_elems(wt) == 1 ? 32 : step_elems(wt);
            int n = be == 256 ? 512 : 3 * be;
            check_gemm(k, wt, n, 75, 3, 70, 13, &s);   /* 3 panels, both ends partial */
            check_gemm(k, wt, n, 40, 0, 17, 6, &s);    /* second lane group: one row */
            check_gemm(k, wt, n, 64, 0, 64, 12, &s);   /* whole panels, whole tiles */
            check_gemm(k, wt, n, 33, 32, 33, 1, &s);   /* one row, one token */
            check_gemm(k, wt, n, 50, 10, 41, 7, &s);   /* one panel + tail, 6 + 1 tokens */
        }
    }
}

/* kern_act_sums on hand-made blocks: the offset correction, the scale and the min factor. */
static void
act_sums_known_values(void **state)
{
    (void)state;
    struct blk_q8_0 a[2];
    memset(a, 0, sizeof a);
    a[0].d = q_f32_to_f16(0.5f);
    a[1].d = q_f32_to_f16(-2.0f);
    for (int j = 0; j < 32; j++) {
        a[0].qs[j] = (int8_t)(j - 10);   /* sum 176 */
        a[1].qs[j] = (int8_t)-127;       /* sum -4064 */
    }
    struct kern_xsum xs[2];
    kern_act_sums(GGML_TYPE_Q8_0, a, 64, xs);
    assert_int_equal(xs[0].c, -128 * 176);
    assert_int_equal(xs[1].c, 128 * 4064);
    assert_true(xs[0].d == 0.5f && xs[1].d == -2.0f && xs[0].m == 0.0f);
    kern_act_sums(GGML_TYPE_Q4_0, a, 64, xs);
    assert_int_equal(xs[0].c, -8 * 176);
    kern_act_sums(GGML_TYPE_Q5_0, a, 64, xs);
    assert_int_equal(xs[1].c, 16 * 4064);

    struct blk_q8_1 b;
    memset(&b, 0, sizeof b);
    b.d = q_f32_to_f16(0.25f);
    b.s = q_f32_to_f16(3.0f);
    kern_act_sums(GGML_TYPE_Q4_1, &b, 32, xs);
    assert_true(xs[0].c == 0 && xs[0].d == 0.25f && xs[0].m == 3.0f);

    struct blk_q8_k kb;
    memset(&kb, 0, sizeof kb);
    kb.d = 0.125f;
    for (int g = 0; g < 16; g++)
        kb.bsums[g] = (int16_t)(g * 10 - 50);
    struct kern_xsum ks[16];
    kern_act_sums(GGML_TYPE_Q4_K, &kb, 256, ks);
    for (int j = 0; j < 8; j++)
        assert_true(ks[j].c == 0 && ks[j].d == 0.125f &&
                    ks[j].m == 0.125f * (float)(kb.bsums[2 * j] + kb.bsums[2 * j + 1]));
    kern_act_sums(GGML_TYPE_Q6_K, &kb, 256, ks);
    for (int g = 0; g < 16; g++)
        assert_true(ks[g].c == -32 * kb.bsums[g] && ks[g].d == 0.125f && ks[g].m == 0.0f);
    assert_int_equal(kern_xsum_block(GGML_TYPE_Q6_K), 16);
    assert_int_equal(kern_xsum_block(GGML_TYPE_Q8_0), 32);
    assert_int_equal(kern_xsum_block(GGML_TYPE_F16), 0);
}

static void
f16_bf16_known_values(void **state)
{
    (void)state;
    assert_int_equal(q_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(q_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(q_f32_to_f16(0.1f), 0x2e66);
    assert_int_equal(q_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(q_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(q_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(q_f32_to_f16(1e9f), 0x7c00);
    assert_int_equal(q_f32_to_f16(-INFINITY), 0xfc00);
    assert_true((q_f32_to_f16(NAN) & 0x7fff) > 0x7c00);
    assert_int_equal(q_f32_to_f16(0x1p-24f), 0x0001);
    assert_int_equal(q_f32_to_f16(0x1p-25f), 0x0000);          /* tie to even (0) */
    assert_int_equal(q_f32_to_f16(0x1.8p-24f), 0x0002);        /* tie to even (2) */
    assert_int_equal(q_f32_to_f16(0x1p-14f), 0x0400);          /* smallest normal */
    assert_int_equal(q_f32_to_f16(0x1.ffcp-15f), 0x0400);      /* rounds up into normal */
    assert_int_equal(q_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);   /* tie to even */
    assert_int_equal(q_f32_to_f16(1.0f + 0x1.8p-10f), 0x3c02); /* tie to even, upward */
    assert_true(q_f16_to_f32(0x3555) == 0x1.554p-2f);
    assert_true(q_f16_to_f32(0x0001) == 0x1p-24f);
    assert_true(q_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(q_f16_to_f32(0x8000) == 0.0f && signbit(q_f16_to_f32(0x8000)));
    assert_true(isinf(q_f16_to_f32(0x7c00)));
    assert_true(isnan(q_f16_to_f32(0x7e00)));
    /* every non-NaN half survives a round trip through float */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue;
        assert_int_equal(q_f32_to_f16(q_f16_to_f32((uint16_t)h)), h);
    }
    assert_int_equal(q_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(q_f32_to_bf16(3.14159265f), 0x4049);
    assert_int_equal(q_f32_to_bf16(q_bits_f32(0x3f808000u)), 0x3f80);  /* tie to even */
    assert_int_equal(q_f32_to_bf16(q_bits_f32(0x3f818000u)), 0x3f82);
    assert_true(q_bf16_to_f32(0xc0a0) == -5.0f);
    assert_true(isnan(q_bf16_to_f32(q_f32_to_bf16(NAN))));
    /* the tables' row conversions agree with the scalar ones */
    const struct kern *k = table_or_null(NULL);
    assert_non_null(k);
    float x[37];
    uint16_t h1[37], h2[37];
    uint64_t s = 7;
    for (int j = 0; j < 37; j++)
        x[j] = rng_unit(&s) * 70000.0f;
    k->f32_to_f16_row(x, h1, 37);
    for (int j = 0; j < 37; j++)
        h2[j] = q_f32_to_f16(x[j]);
    assert_memory_equal(h1, h2, sizeof h1);
    k->f16_to_f32_row(h1, x, 37);
    for (int j = 0; j < 37; j++)
        assert_true(x[j] == q_f16_to_f32(h1[j]) || (isnan(x[j]) && isnan(q_f16_to_f32(h1[j]))));
}

static void
layouts_and_sizes(void **state)
{
    (void)state;
    assert_int_equal(kern_block_bytes(GGML_TYPE_Q4_0), 18);
    assert_int_equal(kern_block_bytes(GGML_TYPE_Q4_1), 20);
    assert_int_equal(kern_block_bytes(GGML_TYPE_Q5_0), 22);
    assert_int_equal(kern_block_bytes(GGML_TYPE_Q5_1), 24);
    assert_int_equal(kern_block_bytes(GGML_TYPE_Q8_0), 34);
    assert_int_equal(kern_block_bytes(GGML_TYPE_Q8_1), 36);
    assert_int_equal(kern_block_bytes(GGML_TYPE_Q4_K), 144);
    assert_int_equal(kern_block_bytes(GGML_TYPE_Q5_K), 176);
    assert_int_equal(kern_block_bytes(GGML_TYPE_Q6_K), 210);
    assert_int_equal(kern_block_bytes(GGML_TYPE_Q8_K), 292);
    assert_int_equal(kern_row_bytes(GGML_TYPE_Q4_K, 4096), 16 * 144);
    assert_int_equal(kern_row_bytes(GGML_TYPE_Q4_K, 4000), 0);
    assert_int_equal(kern_act_type(GGML_TYPE_Q4_0), GGML_TYPE_Q8_0);
    assert_int_equal(kern_act_type(GGML_TYPE_Q5_1), GGML_TYPE_Q8_1);
    assert_int_equal(kern_act_type(GGML_TYPE_Q6_K), GGML_TYPE_Q8_K);
    assert_int_equal(kern_act_type(GGML_TYPE_F16), GGML_TYPE_F16);
    assert_int_equal(kern_act_type(GGML_TYPE_Q2_K), GGML_TYPE_COUNT);
    struct al_err e = {0};
    assert_int_equal(kern_check_row(GGML_TYPE_Q4_K, 4096, &e), 0);
    assert_int_equal(kern_check_row(GGML_TYPE_Q4_K, 576, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    assert_int_equal(kern_check_row(GGML_TYPE_IQ2_XS, 256, &e), -1);
    assert_int_equal(e.code, AL_EUNSUPPORTED);

    const struct kern *ref = kern_ref();
    float y[QK_K];
    /* Q4_0: element j = low nibble of qs[j] - 8, element j+16 = high nibble - 8 */
    struct blk_q4_0 b40;
    b40.d = q_f32_to_f16(0.5f);
    for (int j = 0; j < 16; j++)
        b40.qs[j] = (uint8_t)(j | (15 - j) << 4);
    ref->dequantize_row(GGML_TYPE_Q4_0, &b40, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == 0.5f * (j - 8));
        assert_true(y[j + 16] == 0.5f * (7 - j));
    }
    /* Q5_0: bit i of qh is the fifth bit of element i */
    struct blk_q5_0 b50;
    b50.d = q_f32_to_f16(1.0f);
    memset(b50.qs, 0, sizeof b50.qs);
    const uint8_t qh[4] = { 0x01, 0x00, 0x02, 0x80 };  /* elements 0, 17, 31 */
    memcpy(b50.qh, qh, 4);
    ref->dequantize_row(GGML_TYPE_Q5_0, &b50, y, 32);
    for (int j = 0; j < 32; j++)
        assert_true(y[j] == ((j == 0 || j == 17 || j == 31) ? 0.0f : -16.0f));
    /* Q4_K: scales/mins of sub-blocks 0 and 5 through the 12-byte packing */
    struct blk_q4_k b4k;
    memset(&b4k, 0, sizeof b4k);
    b4k.d = q_f32_to_f16(1.0f);
    b4k.dmin = q_f32_to_f16(0.25f);
    b4k.scales[0] = 3 | 1 << 6;          /* sc0 = 3; top bits of sc4 = 1 */
    b4k.scales[4] = 9 | 2 << 6;          /* m0 = 9; top bits of m4 = 2 */
    b4k.scales[9] = 0x7 | 0x5 << 4;      /* sc5 low = 7, m5 low = 5 */
    b4k.scales[1] = 2 << 6;              /* top bits of sc5 = 2 */
    b4k.scales[5] = 1 << 6;              /* top bits of m5 = 1 */
    for (int l = 0; l < 32; l++)
        b4k.qs[l] = 0x21, b4k.qs[64 + l] = 0x40;  /* sub 0: 1; sub 1: 2; sub 5 (pair 2 high): 4 */
    ref->dequantize_row(GGML_TYPE_Q4_K, &b4k, y, QK_K);
    assert_true(y[0] == 3.0f * 1 - 0.25f * 9);
    assert_true(y[32 * 5 + 3] == (float)((2 << 4) | 7) * 4 - 0.25f * ((1 << 4) | 5));
    assert_true(y[32 * 4] == (float)(1 << 4) * 0 - 0.25f * (2 << 4));
    /* Q6_K: element 96 + l takes the high nibble of ql[32 + l] and bits 6-7 of qh[l] */
    struct blk_q6_k b6k;
    memset(&b6k, 0, sizeof b6k);
    b6k.d = q_f32_to_f16(2.0f);
    b6k.scales[6] = -3;
    b6k.ql[32 + 5] = 0xa0;
    b6k.qh[5] = 0x80;
    ref->dequantize_row(GGML_TYPE_Q6_K, &b6k, y, QK_K);
    assert_true(y[101] == 2.0f * -3.0f * (float)((0xa | 2 << 4) - 32));
    assert_true(y[100] == 2.0f * -3.0f * -32.0f);
}

static void
q8_quantization_round_trips(void **state)
{
    (void)state;
    const struct kern *ref = kern_ref();
    enum { N = 1024 };
    float x[N], y[N];
    uint64_t s = 3;
    fill_acts(x, N, &s);
    static const enum ggml_type ats[] = { GGML_TYPE_Q8_0, GGML_TYPE_Q8_1, GGML_TYPE_Q8_K };
    uint8_t q[N * 2];
    for (int a = 0; a < 3; a++) {
        int be = kern_block_elems(ats[a]);
        ref->quantize_row(ats[a], x, q, N);
        ref->dequantize_row(ats[a], q, y, N);
        for (int b = 0; b < N / be; b++) {
            float amax = 0.0f;
            for (int j = 0; j < be; j++)
                amax = fmaxf(amax, fabsf(x[b * be + j]));
            for (int j = 0; j < be; j++) {
                float err = fabsf(x[b * be + j] - y[b * be + j]);
                /* half a step, plus the half-precision rounding of the scale for Q8_0/Q8_1 */
                assert_true(err <= amax / 127.0f * (0.5f + 1e-3f * 127.0f) + 0x1p-25f * 127.0f);
            }
        }
    }
    /* Q8_K: the largest-magnitude value maps to -127, bsums are sums of 16 */
    struct blk_q8_k bk;
    float xk[QK_K];
    for (int j = 0; j < QK_K; j++)
        xk[j] = (float)(j % 17) - 8.0f;
    xk[77] = 20.0f;
    ref->quantize_row(GGML_TYPE_Q8_K, xk, &bk, QK_K);
    assert_int_equal(bk.qs[77], -127);
    for (int g = 0; g < 16; g++) {
        int sum = 0;
        for (int j = 0; j < 16; j++)
            sum += bk.qs[16 * g + j];
        assert_int_equal(bk.bsums[g], sum);
    }
    /* Q8_1's s is d * sum(q) */
    struct blk_q8_1 b1;
    ref->quantize_row(GGML_TYPE_Q8_1, x, &b1, 32);
    int sum = 0;
    for (int j = 0; j < 32; j++)
        sum += b1.qs[j];
    assert_true(fabsf(q_f16_to_f32(b1.s) - q_f16_to_f32(b1.d) * sum) <=
                1e-3f * fabsf(q_f16_to_f32(b1.d) * sum) + 1e-6f);
}

/* Ties in the largest magnitude: the first one gives Q8_K its sign, in every table. */
static void
quantize_ties_identical(void **state)
{
    (void)state;
    static const char *names[] = { "avx2", "avx512" };
    float x[2 * QK_K];
    for (int j = 0; j < 2 * QK_K; j++)
        x[j] = (float)((j * 37) % 11) * 0.25f - 1.25f;
    x[5] = -3.0f, x[100] = 3.0f;                  /* block 0: negative first */
    x[QK_K + 9] = 3.0f, x[QK_K + 200] = -3.0f;    /* block 1: positive first */
    struct blk_q8_k a[2], b[2];
    struct blk_q8_0 c[2 * QK_K / 32], d[2 * QK_K / 32];
    kern_ref()->quantize_row(GGML_TYPE_Q8_K, x, a, 2 * QK_K);
    kern_ref()->quantize_row(GGML_TYPE_Q8_0, x, c, 2 * QK_K);
    assert_int_equal(a[0].qs[5], -127);
    assert_int_equal(a[1].qs[9], -127);
    assert_int_equal(a[1].qs[200], 127);
    for (int i = 0; i < 2; i++) {
        const struct kern *k = table_or_null(names[i]);
        if (!k)
            continue;
        memset(b, 0x55, sizeof b);
        k->quantize_row(GGML_TYPE_Q8_K, x, b, 2 * QK_K);
        assert_memory_equal(a, b, sizeof a);
        k->quantize_row(GGML_TYPE_Q8_0, x, d, 2 * QK_K);
        assert_memory_equal(c, d, sizeof c);
    }
}

static void
float_helpers_match_ref(void **state)
{
    (void)state;
    const struct kern *ref = kern_ref();
    static const char *names[] = { "avx2", "avx512" };
    enum { N = 1000 };
    float *a = xmalloc(N * 4), *b = xmalloc(N * 4), *y1 = xmalloc(N * 4), *y2 = xmalloc(N * 4);
    uint16_t *h = xmalloc(N * 2);
    uint64_t s = 11;
    for (size_t ni = 0; ni < 2; ni++) {
        const struct kern *k = table_or_null(names[ni]);
        if (!k)
            continue;
        static const int ns[] = { 1, 7, 8, 16, 33, 64, 999, N };
        for (int c = 0; c < 8; c++) {
            int n = ns[c];
            double mag = 0.0;
            for (int j = 0; j < n; j++) {
                a[j] = rng_unit(&s) * (c == 7 ? 60.0f : 4.0f), b[j] = rng_unit(&s) * 4.0f;
                h[j] = q_f32_to_f16(a[j]);
                mag += fabs((double)a[j] * b[j]);
            }
            assert_true(fabs(ref->dot_f32(n, a, b) - k->dot_f32(n, a, b)) <= 1e-5 * mag);
            assert_true(fabs(ref->dot_f16_f32(n, h, b) - k->dot_f16_f32(n, h, b)) <= 1e-5 * mag);
            memcpy(y1, b, n * 4), memcpy(y2, b, n * 4);
            ref->axpy_f32(n, 0.3f, a, y1), k->axpy_f32(n, 0.3f, a, y2);
            for (int j = 0; j < n; j++)
                assert_true(fabsf(y1[j] - y2[j]) <= 1e-6f * (fabsf(y1[j]) + 2.0f));
            memcpy(y1, b, n * 4), memcpy(y2, b, n * 4);
            ref->axpy_f16_f32(n, -1.7f, h, y1), k->axpy_f16_f32(n, -1.7f, h, y2);
            for (int j = 0; j < n; j++)
                assert_true(fabsf(y1[j] - y2[j]) <= 1e-6f * (fabsf(y1[j]) + 8.0f));
            ref->rmsnorm(y1, a, b, n, 1e-5f), k->rmsnorm(y2, a, b, n, 1e-5f);
            for (int j = 0; j < n; j++)
                assert_true(fabsf(y1[j] - y2[j]) <= 1e-5f * (fabsf(y1[j]) + 1e-3f));
            memcpy(y1, a, n * 4), memcpy(y2, a, n * 4);
            ref->softmax(y1, n), k->softmax(y2, n);
            for (int j = 0; j < n; j++)
                assert_true(fabsf(y1[j] - y2[j]) <= 1e-5f * y1[j] + 1e-9f);
            memcpy(y1, a, n * 4), memcpy(y2, a, n * 4);
            ref->swiglu(y1, b, n), k->swiglu(y2, b, n);
            for (int j = 0; j < n; j++)
                assert_true(fabsf(y1[j] - y2[j]) <= 1e-5f * (fabsf(y1[j]) + 1e-6f));
        }
    }
    free(a); free(b); free(y1); free(y2); free(h);
}

/* attn_f32 of every table against ref: head sizes 16..128, one to KERN_ATTN_MAX_ROWS rows,
 * rows ending at different positions (tiles partly or wholly past a row's end, a single
 * position), keys and values with large and tiny magnitudes, an interleaved cache stride. */
static void
attn_matches_ref(void **state)
{
    (void)state;
    static const char *names[] = { "avx2", "avx512" };
    static const int hds[] = { 16, 64, 128 };
    static const int rows[] = { 1, 3, 8, 33, KERN_ATTN_MAX_ROWS };
    uint64_t s = 99;
    enum { MAXPOS = 150, STRIDE_HEADS = 3 };
    for (size_t hi = 0; hi < 3; hi++) {
        int hd = hds[hi];
        size_t stride = (size_t)hd * STRIDE_HEADS;
        uint16_t *k = xmalloc(sizeof *k * stride * MAXPOS), *v = xmalloc(sizeof *v * stride * MAXPOS);
        for (size_t i = 0; i < stride * MAXPOS; i++) {
            k[i] = q_f32_to_f16(rng_unit(&s) * (i % 101 == 7 ? 20.0f : 2.0f));
            v[i] = q_f32_to_f16(rng_unit(&s) * (i % 89 == 3 ? 100.0f : 1.0f));
        }
        float *q = xmalloc(sizeof(float) * hd * KERN_ATTN_MAX_ROWS);
        float *o1 = xmalloc(sizeof(float) * hd * KERN_ATTN_MAX_ROWS);
        float *o2 = xmalloc(sizeof(float) * hd * KERN_ATTN_MAX_ROWS);
        float *scratch = xaligned_alloc(64, kern_attn_scratch_floats(hd) * sizeof(float));
        for (int i = 0; i < hd * KERN_ATTN_MAX_ROWS; i++)
            q[i] = rng_unit(&s) * 1.5f;
        for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
            int nr = rows[ri];
            const float *qp[KERN_ATTN_MAX_ROWS];
            float *p1[KERN_ATTN_MAX_ROWS], *p2[KERN_ATTN_MAX_ROWS];
            int n_pos[KERN_ATTN_MAX_ROWS];
            for (int r = 0; r < nr; r++) {
                qp[r] = q + (size_t)r * hd;
                p1[r] = o1 + (size_t)r * hd;
                p2[r] = o2 + (size_t)r * hd;
                /* causal-looking ends, a few short rows and one single position */
                n_pos[r] = r == 0 ? 1 : (r % 5 == 2 ? 7 : MAXPOS - nr + r);
            }
            struct kern_attn a = { .hd = hd, .n_rows = nr, .q = qp, .out = p1, .n_pos = n_pos,
                                   .k = k + hd, .v = v + hd, .kv_stride = stride,
                                   .scale = 1.0f / sqrtf((float)hd), .scratch = scratch };
            kern_ref()->attn_f32(&a);
            for (size_t ni = 0; ni < 2; ni++) {
                const struct kern *kt = table_or_null(names[ni]);
                if (!kt)
                    continue;
                a.out = p2;
                kt->attn_f32(&a);
                a.out = p1;
                for (int r = 0; r < nr; r++) {
                    double mag = 0.0;
                    for (int i = 0; i < hd; i++)
                        mag = fmax(mag, fabs(p1[r][i]));
                    for (int i = 0; i < hd; i++)
                        if (!(fabs((double)p1[r][i] - p2[r][i]) <= 1e-5 * mag + 1e-7))
                            fail_msg("%s attn_f32 hd %d rows %d: row %d (n_pos %d) [%d] %.9g vs "
                                     "ref %.9g", kt->name, hd, nr, r, n_pos[r], i, p2[r][i],
                                     p1[r][i]);
                }
            }
        }
        free(k); free(v); free(q); free(o1); free(o2); free(scratch);
    }
}

/* attn_f16 of every table equals, bit for bit, the same table's dot_f16_f32, axpy_f16_f32 and
 * F16 row conversions composed as the reference composes its own (what forward.c did before the
 * loop was fused), and stays close to ref: head sizes with and without 16/8-element tails,
 * single and many positions, a strided cache, and 1 or 5 query rows sharing the K/V (every
 * row of a group equal to that row alone: groups of 4 + 1 at head size 64, 2 + 2 + 1 at 128). */
static void
attn_f16_composes_table_helpers(void **state)
{
    (void)state;
    static const char *names[] = { "ref", "avx2", "avx512" };
    static const int hds[] = { 8, 24, 64, 72, 128, 13 };
    static const int poss[] = { 1, 2, 37, 64, 65, 300 };
    uint64_t s = 5;
    enum { STRIDE = 3 * 128 + 8, MAXPOS = 300 };
    uint16_t *k = xmalloc(sizeof *k * STRIDE * MAXPOS), *v = xmalloc(sizeof *v * STRIDE * MAXPOS);
    enum { NQ = 5 };
    float qs[NQ * 128], o1s[NQ * 128], o2[128], o3[128], qh[128], acc[128];
    uint16_t h16[128];
    /* amp 1: keys up to +-60, so score gaps pass expf's underflow edges (-88 .. -104) */
    for (int amp = 0; amp < 2; amp++) {
    for (size_t i = 0; i < (size_t)STRIDE * MAXPOS; i++) {
        k[i] = q_f32_to_f16(rng_unit(&s) * (amp ? (i % 7 == 3 ? 60.0f : 6.0f)
                                                : (i % 97 == 3 ? 8.0f : 1.5f)));
        v[i] = q_f32_to_f16(rng_unit(&s) * (i % 89 == 5 ? 50.0f : 1.0f));
    }
    for (size_t ni = 0; ni < 3; ni++) {
        const struct kern *kt = table_or_null(names[ni]);
        if (!kt)
            continue;
        for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++)
            for (size_t pi = 0; pi < sizeof poss / sizeof poss[0]; pi++) {
                for (int nq = 1; nq <= NQ; nq += NQ - 1)
                for (int row = 0; row < nq; row++) {
                int hd = hds[hi], np = poss[pi];
                float scale = 1.0f / sqrtf((float)hd);
                if (row == 0) {
                    for (int i = 0; i < nq * hd; i++)
                        qs[i] = rng_unit(&s) * 2.0f;
                    kt->attn_f16(hd, nq, qs, k + 5, v + 5, STRIDE, np, scale, o1s);
                }
                const float *q = qs + (size_t)row * hd, *o1 = o1s + (size_t)row * hd;
                /* the composition */
                kt->f32_to_f16_row(q, h16, hd);
                kt->f16_to_f32_row(h16, qh, hd);
                memset(acc, 0, sizeof acc);
                float m = -INFINITY, sum = 0.0f;
                for (int p = 0; p < np; p++) {
                    float sc = kt->dot_f16_f32(hd, k + 5 + (size_t)p * STRIDE, qh) * scale;
                    float ms = 1.0f, vs = 1.0f;
                    if (sc > m) {
                        ms = expf(m - sc);
                        m = sc;
                        for (int i = 0; i < hd; i++)
                            acc[i] *= ms;
                        kt->f32_to_f16_row(acc, h16, hd);
                        kt->f16_to_f32_row(h16, acc, hd);
                    } else {
                        vs = expf(sc - m);
                    }
                    kt->axpy_f16_f32(hd, vs, v + 5 + (size_t)p * STRIDE, acc);
                    kt->f32_to_f16_row(acc, h16, hd);
                    kt->f16_to_f32_row(h16, acc, hd);
                    sum = sum * ms + vs;
                }
                float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
                for (int i = 0; i < hd; i++)
                    o2[i] = acc[i] * inv;
                if (memcmp(o1, o2, sizeof(float) * (size_t)hd) != 0)
                    fail_msg("%s attn_f16 hd %d n_pos %d row %d of %d differs from its own "
                             "helpers", kt->name, hd, np, row, nq);
                kern_ref()->attn_f16(hd, 1, q, k + 5, v + 5, STRIDE, np, scale, o3);
                double mag = 0.0;
                for (int i = 0; i < hd; i++)
                    mag = fmax(mag, fabs(o3[i]));
                for (int i = 0; i < hd; i++)
                    if (!(fabs((double)o1[i] - o3[i]) <= 4e-3 * mag + 1e-6))
                        fail_msg("%s attn_f16 hd %d n_pos %d [%d]: %g vs ref %g", kt->name, hd, np,
                                 i, o1[i], o3[i]);
                }
            }
    }
    }
    free(k);
    free(v);
}

static void
select_honours_force(void **state)
{
    (void)state;
    struct al_err e = {0};
    const struct kern *k = kern_select("ref", &e);
    assert_ptr_equal(k, kern_ref());
    assert_string_equal(k->name, "ref");
    assert_null(kern_select("sse9", &e));
    assert_int_equal(e.code, AL_EUSAGE);
    assert_non_null(strstr(e.msg, "sse9"));
    al_err_clear(&e);
    k = kern_select(NULL, &e);
    assert_non_null(k);
    const char *avail = kern_available();
    /* the automatic choice is the first available name */
    assert_int_equal(strncmp(avail, k->name, strlen(k->name)), 0);
    static const char *names[] = { "avx2", "avx512" };
    for (int i = 0; i < 2; i++) {
        k = kern_select(names[i], &e);
        if (strstr(avail, names[i])) {
            assert_non_null(k);
            assert_string_equal(k->name, names[i]);
        } else {
            assert_null(k);
            assert_int_equal(e.code, AL_EUNSUPPORTED);
        }
    }
    assert_non_null(kern_select("auto", &e));

    /* unsupported weight types and empty row ranges write nothing, in every table */
    static const char *all[] = { "ref", "avx2", "avx512" };
    for (int i = 0; i < 3; i++) {
        k = kern_select(all[i], &e);
        if (!k)
            continue;
        uint8_t w[2 * 84] = {0}, xq[292] = {0};
        float out[4] = { 7.0f, 7.0f, 7.0f, 7.0f };
        k->gemm(GGML_TYPE_Q2_K, w, 84, 256, 0, 2, xq, 1, out, 2);
        k->gemm(GGML_TYPE_Q8_0, w, 34, 32, 1, 1, xq, 2, out, 2);
        k->gemm(GGML_TYPE_Q8_0, w, 34, 32, 0, 2, xq, 0, out, 2);
        for (int j = 0; j < 4; j++)
            assert_true(out[j] == 7.0f);
    }
}

static char *
model_path(const char *name)
{
    const char *shared = getenv("SHARED");
    return xasprintf("%s/models/%s", shared ? shared : "../shared", name);
}

/* Real files from llama-quantize: every quantized tensor, dequantized, must be close to the
 * F16 tensor it was made from (a wrong bit layout gives errors near 100 %), and every table's
 * gemm on its first rows must match ref. Relative RMS error bounds per type are about twice
 * what these random weights give with correct layouts. */
static void
real_files_dequantize_and_gemm(void **state)
{
    (void)state;
    static const char *files[] = {
        "llama-k-small-q8_0.gguf", "llama-k-small-q4_0.gguf", "llama-k-small-q4_1.gguf",
        "llama-k-small-q5_0.gguf", "llama-k-small-q4_k_m.gguf", "llama-k-small-q5_k_m.gguf",
        "llama-k-small-q6_k.gguf",
    };
    struct al_err e = {0};
    char *fp = model_path("llama-k-small-f16.gguf");
    struct gguf base;
    if (gguf_open(&base, fp, NULL, &e) < 0) {
        printf("skipped: %s\n", e.msg);
        free(fp);
        return;
    }
    const struct kern *tabs[2] = { table_or_null("avx2"), table_or_null("avx512") };
    int checked = 0;
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        char *path = model_path(files[fi]);
        struct gguf g;
        assert_int_equal(gguf_open(&g, path, NULL, &e), 0);
        for (uint64_t ti = 0; ti < g.n_tensors; ti++) {
            const struct gguf_tensor *t = &g.tensors[ti];
            if (t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16 || t->n_dims != 2)
                continue;
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)t->name.n, t->name.p);
            const struct gguf_tensor *bt = gguf_find_tensor(&base, name);
            assert_non_null(bt);
            assert_int_equal(bt->type, GGML_TYPE_F16);
            int n = (int)t->ne[0], rows = t->ne[1] < 48 ? (int)t->ne[1] : 48;
            size_t wrb = kern_row_bytes(t->type, n);
            assert_true(wrb > 0);
            float *a = xmalloc(sizeof(float) * n), *b = xmalloc(sizeof(float) * n);
            double err = 0.0, ref = 0.0;
            for (int r = 0; r < rows; r++) {
                kern_ref()->dequantize_row(t->type, t->data + (size_t)r * wrb, a, n);
                kern_ref()->dequantize_row(GGML_TYPE_F16, bt->data + (size_t)r * n * 2, b, n);
                for (int j = 0; j < n; j++) {
                    err += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
                    ref += (double)b[j] * b[j];
                }
            }
            double rel = sqrt(err / ref), lim;
            switch (t->type) {
            case GGML_TYPE_Q8_0: lim = 0.01; break;
            case GGML_TYPE_Q6_K: lim = 0.04; break;
            case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: case GGML_TYPE_Q5_K: lim = 0.08; break;
            default: lim = 0.16; break;
            }
            if (!(rel <= lim))
                fail_msg("%s %s (%s): dequantized vs f16 relative RMS error %.4f > %.2f", files[fi],
                         name, type_name(t->type), rel, lim);
            /* gemm of the first rows against 3 tokens of the f16 rows as activations */
            enum ggml_type at = kern_act_type(t->type);
            size_t xrb = kern_row_bytes(at, n);
            float *x = xmalloc(sizeof(float) * n * 3);
            for (int k = 0; k < 3; k++)
                kern_ref()->dequantize_row(GGML_TYPE_F16, bt->data + (size_t)(k + 1) * n * 2, x + k * n, n);
            uint8_t *xq = xmalloc(xrb * 3);
            for (int k = 0; k < 3; k++)
                kern_ref()->quantize_row(at, x + k * n, xq + k * xrb, n);
            float o1[48 * 3], o2[48 * 3];
            kern_ref()->gemm(t->type, t->data, wrb, n, 0, rows, xq, 3, o1, rows);
            for (int ki = 0; ki < 2; ki++) {
                if (!tabs[ki])
                    continue;
                tabs[ki]->gemm(t->type, t->data, wrb, n, 0, rows, xq, 3, o2, rows);
                for (int i = 0; i < rows * 3; i++)
                    if (!(fabsf(o1[i] - o2[i]) <= 1e-4f * (fabsf(o1[i]) + 1.0f)))
                        fail_msg("%s %s: %s gemm %g vs ref %g", files[fi], name, tabs[ki]->name,
                                 o2[i], o1[i]);
                if (!tabs[ki]->gemm_tiled)
                    continue;
                run_variant(tabs[ki], 1, t->type, t->data, wrb, n, 0, rows, xq, xrb, 3, o2, rows);
                for (int i = 0; i < rows * 3; i++)
                    if (!(fabsf(o1[i] - o2[i]) <= 1e-4f * (fabsf(o1[i]) + 1.0f)))
                        fail_msg("%s %s: %s gemm_tiled %g vs ref %g", files[fi], name,
                                 tabs[ki]->name, o2[i], o1[i]);
            }
            free(x); free(xq); free(a); free(b);
            checked++;
        }
        gguf_close(&g);
        free(path);
    }
    assert_true(checked >= 7 * 10);
    gguf_close(&base);
    free(fp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(f16_bf16_known_values),
        cmocka_unit_test(layouts_and_sizes),
        cmocka_unit_test(q8_quantization_round_trips),
        cmocka_unit_test(select_honours_force),
        cmocka_unit_test(quantize_ties_identical),
        cmocka_unit_test(float_helpers_match_ref),
        cmocka_unit_test(attn_matches_ref),
        cmocka_unit_test(attn_f16_composes_table_helpers),
        cmocka_unit_test(small_batch_equals_single_tokens),
        cmocka_unit_test(decode_32_blocks_same_bits_in_simd_tables),
        cmocka_unit_test(row_split_matches_gguf_bit_for_bit),
        cmocka_unit_test(gemm_matches_ref_every_table),
        cmocka_unit_test(gemm_tiled_panels_and_tails),
        cmocka_unit_test(act_sums_known_values),
        cmocka_unit_test(real_files_dequantize_and_gemm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
