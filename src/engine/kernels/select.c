/* select.c -- type facts shared by every table, CPU feature detection (CPUID + XGETBV, so a
 * CPU that has AVX-512 but an OS that does not save its registers is treated as lacking it),
 * and the choice of table with a startup self-check against the scalar reference.
 * Reads no environment: the CLI passes a forced name (option or env value) to kern_select.
 * No global state: detection runs on each call (a few CPUID instructions). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/internal.h"
#include "engine/kernels/quant.h"
#include "util/xalloc.h"

/* ===== Type facts ====================================================================== */

bool
kern_weight_supported(enum ggml_type wt)
{
    switch (wt) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K:
    case KERN_TYPE_Q4_0_RS: case KERN_TYPE_Q5_0_RS: case KERN_TYPE_Q8_0_RS:
        return true;
    default:
        return false;
    }
}

enum ggml_type
kern_act_type(enum ggml_type wt)
{
    switch (wt) {
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q5_0: case GGML_TYPE_Q8_0:
    case KERN_TYPE_Q4_0_RS: case KERN_TYPE_Q5_0_RS: case KERN_TYPE_Q8_0_RS:
        return GGML_TYPE_Q8_0;
    case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1:
        return GGML_TYPE_Q8_1;
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K:
        return GGML_TYPE_Q8_K;
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
        return wt;
    default:
        return GGML_TYPE_COUNT;
    }
}

int
kern_block_elems(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
        return 1;
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q8_0: case GGML_TYPE_Q8_1: case KERN_TYPE_Q4_0_RS: case KERN_TYPE_Q5_0_RS:
    case KERN_TYPE_Q8_0_RS:
        return 32;
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K: case GGML_TYPE_Q8_K:
        return QK_K;
    default:
        return 0;
    }
}

int
kern_block_bytes(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32: return 4;
    case GGML_TYPE_F16: case GGML_TYPE_BF16: return 2;
    case GGML_TYPE_Q4_0: case KERN_TYPE_Q4_0_RS: return sizeof(struct blk_q4_0);
    case GGML_TYPE_Q4_1: return sizeof(struct blk_q4_1);
    case GGML_TYPE_Q5_0: case KERN_TYPE_Q5_0_RS: return sizeof(struct blk_q5_0);
    case GGML_TYPE_Q5_1: return sizeof(struct blk_q5_1);
    case GGML_TYPE_Q8_0: case KERN_TYPE_Q8_0_RS: return sizeof(struct blk_q8_0);
    case GGML_TYPE_Q8_1: return sizeof(struct blk_q8_1);
    case GGML_TYPE_Q4_K: return sizeof(struct blk_q4_k);
    case GGML_TYPE_Q5_K: return sizeof(struct blk_q5_k);
    case GGML_TYPE_Q6_K: return sizeof(struct blk_q6_k);
    case GGML_TYPE_Q8_K: return sizeof(struct blk_q8_k);
    default: return 0;
    }
}

size_t
kern_row_bytes(enum ggml_type t, int64_t n)
{
    int be = kern_block_elems(t);
    if (be == 0 || n < 0 || n % be != 0)
        return 0;
    return (size_t)(n / be) * (size_t)kern_block_bytes(t);
}

int
kern_xsum_block(enum ggml_type wt)
{
    switch (wt) {
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
    case KERN_TYPE_Q4_0_RS: case KERN_TYPE_Q5_0_RS: case KERN_TYPE_Q8_0_RS:
        return 32;
    case GGML_TYPE_Q6_K:
        return 16;
    default:
        return 0;
    }
}

size_t
kern_attn_scratch_floats(int hd)
{
    /* transposed key tile, value tile, scores of every row, accumulators, max and sum */
    size_t t = KERN_ATTN_TILE, r = KERN_ATTN_MAX_ROWS, h = (size_t)(hd > 0 ? hd : 0);
    return 2 * t * h + r * t + r * h + 2 * r + 16;
}

int
kern_check_row(enum ggml_type wt, int64_t n, struct al_err *e)
{
    if (!kern_weight_supported(wt))
        return al_errf(e, AL_EUNSUPPORTED, "tensor type %d is not supported by the kernels", (int)wt);
    int be = q_is_rs(wt) ? 64 : kern_block_elems(wt);  /* row-split: whole pairs of blocks */
    if (n <= 0 || n > INT32_MAX || n % be != 0)
        return al_errf(e, AL_EFORMAT, "row of %lld elements: must be a positive multiple of %d "
                       "(block size of type %d)", (long long)n, be, (int)wt);
    return 0;
}

enum ggml_type
kern_rs_type(enum ggml_type t)
{
    return t == GGML_TYPE_Q4_0 ? KERN_TYPE_Q4_0_RS
         : t == GGML_TYPE_Q5_0 ? KERN_TYPE_Q5_0_RS
         : t == GGML_TYPE_Q8_0 ? KERN_TYPE_Q8_0_RS
                               : GGML_TYPE_COUNT;
}

void
kern_rs_pack_row(enum ggml_type t, const void *src, void *dst, int n)
{
    enum ggml_type rs = kern_rs_type(t);
    const int nb = n / 32, bb = kern_block_bytes(t), qh = rs == KERN_TYPE_Q5_0_RS;
    const uint8_t *s = src;
    uint8_t *d = dst, *pairs = d + q_rs_qs_off(rs, nb);
    if (rs == KERN_TYPE_Q8_0_RS) {  /* the scales, then the blocks' codes as they are */
        for (int b = 0; b < nb; b++) {
            const uint8_t *blk = s + (size_t)b * (size_t)bb;
            memcpy(d + 2 * (size_t)b, blk, 2);
            memcpy(pairs + 32 * (size_t)b, blk + 2, 32);
        }
        return;
    }
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = s + (size_t)b * (size_t)bb;
        const uint8_t *qs = blk + (qh ? 6 : 2);
        uint8_t *pair = pairs + 32 * (size_t)(b / 2);
        int sh = 4 * (b & 1);
        memcpy(d + 2 * (size_t)b, blk, 2);
        if (qh)
            memcpy(d + 2 * (size_t)nb + 4 * (size_t)b, blk + 2, 4);
        for (int j = 0; j < 16; j++) {
            /* element j in the low nibble of qs[j], element j + 16 in the high one */
            uint8_t keep = (uint8_t)(sh ? 0x0f : 0xf0);
            pair[j] = (uint8_t)((pair[j] & keep) | (qs[j] & 15) << sh);
            pair[j + 16] = (uint8_t)((pair[j + 16] & keep) | (qs[j] >> 4) << sh);
        }
    }
}

/* ===== CPU detection ==================================================================== */

struct cpu_feats {
    bool avx2;    /* AVX2 + FMA + F16C + BMI2, with OS-enabled YMM state */
    bool avx512;  /* + AVX-512 F/BW/VL/DQ/VNNI, with OS-enabled ZMM/opmask state */
};

#if defined(__x86_64__) || defined(__i386__)
static void
cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
#endif

static struct cpu_feats
cpu_detect(void)
{
    struct cpu_feats f = { false, false };
#if defined(__x86_64__) || defined(__i386__)
    uint32_t r[4];
    cpuid(0, 0, r);
    uint32_t max_leaf = r[0];
    if (max_leaf < 7)
        return f;
    cpuid(1, 0, r);
    uint32_t ecx1 = r[2];
    bool osxsave = ecx1 >> 27 & 1, avx = ecx1 >> 28 & 1, fma = ecx1 >> 12 & 1, f16c = ecx1 >> 29 & 1;
    if (!osxsave || !avx)
        return f;
    uint32_t xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    bool ymm_os = (xlo & 0x6) == 0x6;       /* SSE + AVX state */
    bool zmm_os = (xlo & 0xe6) == 0xe6;     /* + opmask, ZMM_Hi256, Hi16_ZMM */
    cpuid(7, 0, r);
    uint32_t ebx7 = r[1], ecx7 = r[2];
    bool avx2 = ebx7 >> 5 & 1, bmi2 = ebx7 >> 8 & 1;
    bool a512f = ebx7 >> 16 & 1, a512dq = ebx7 >> 17 & 1, a512bw = ebx7 >> 30 & 1,
         a512vl = ebx7 >> 31 & 1, vnni = ecx7 >> 11 & 1;
    f.avx2 = ymm_os && avx2 && fma && f16c && bmi2;
    f.avx512 = f.avx2 && zmm_os && a512f && a512dq && a512bw && a512vl && vnni;
#endif
    return f;
}

/* ===== Self-check ======================================================================= */

/* xorshift64*, deterministic so a failing self-check is reproducible */
static uint64_t
rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static float
rng_unit(uint64_t *s)  /* in [-1, 1) */
{
    return (float)(rng_next(s) >> 40) * 0x1p-23f - 1.0f;
}

/* Random rows of weight type wt with sane (finite, small) scales. */
static void
fill_weights(enum ggml_type wt, uint8_t *w, size_t bytes, uint64_t *s)
{
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)rng_next(s);
    int bb = kern_block_bytes(wt);
    size_t nblk = bytes / (size_t)bb;
    for (size_t i = 0; i < nblk; i++) {
        uint8_t *b = w + i * (size_t)bb;
        uint16_t h1 = q_f32_to_f16(rng_unit(s) * 0.05f), h2 = q_f32_to_f16(rng_unit(s) * 0.05f);
        switch (wt) {
        case GGML_TYPE_F32: {
            float v = rng_unit(s);
            memcpy(b, &v, 4);
            break;
        }
        case GGML_TYPE_F16:
            memcpy(b, &h1, 2);
            break;
        case GGML_TYPE_BF16: {
            uint16_t v = q_f32_to_bf16(rng_unit(s));
            memcpy(b, &v, 2);
            break;
        }
        case GGML_TYPE_Q6_K:
            memcpy(b + offsetof(struct blk_q6_k, d), &h1, 2);
            break;
        case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
            memcpy(b + 2, &h2, 2);
            memcpy(b, &h1, 2);
            break;
        default:
            memcpy(b, &h1, 2);
            break;
        }
    }
}

/* Table k's gemm (variant 0) or packed-panel gemm_tiled (variant 1, with its activation sums
 * and scratch) over all rows and tokens. */
static void
check_gemm_run(const struct kern *k, int variant, enum ggml_type wt, const uint8_t *w,
               size_t wrow, int n, int rows, const uint8_t *xq, size_t xrow, int n_tok, float *out)
{
    if (variant == 0) {
        k->gemm(wt, w, wrow, n, 0, rows, xq, n_tok, out, rows);
        return;
    }
    int xsb = kern_xsum_block(wt);
    int nxs = xsb ? n / xsb : 0;
    struct kern_xsum *xs = xmalloc(sizeof *xs * (size_t)(nxs * n_tok + 1));
    for (int t = 0; t < n_tok; t++)
        kern_act_sums(wt, xq + (size_t)t * xrow, n, xs + t * nxs);
    size_t sb = k->tiled_scratch(wt, n);
    void *scratch = xaligned_alloc(64, sb ? sb : 64);
    k->gemm_tiled(wt, w, wrow, n, 0, rows, xq, xs, n_tok, out, rows, scratch);
    free(xs);
    free(scratch);
}

static int
self_check(const struct kern *k, struct al_err *e)
{
    static const enum ggml_type types[] = {
        GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
        GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
        GGML_TYPE_Q6_K, KERN_TYPE_Q4_0_RS, KERN_TYPE_Q5_0_RS, KERN_TYPE_Q8_0_RS,
    };
    enum { N = 512, ROWS = 7, TOK = 5 };
    const struct kern *ref = &kern_table_ref;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    float *x = xmalloc(sizeof(float) * N * TOK);
    float *xd = xmalloc(sizeof(float) * N);
    float *wd = xmalloc(sizeof(float) * N);
    uint8_t *w = xmalloc((size_t)ROWS * N * 4);
    uint8_t *xq = xmalloc((size_t)TOK * N * 4);
    uint8_t *xq2 = xmalloc((size_t)TOK * N * 4);
    float out_ref[ROWS * TOK], out_k[ROWS * TOK];
    int rc = -1;

    for (int i = 0; i < N * TOK; i++)
        x[i] = rng_unit(&seed) * 3.0f;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        enum ggml_type wt = types[ti], at = kern_act_type(wt);
        size_t wrow = kern_row_bytes(wt, N), xrow = kern_row_bytes(at, N);
        if (q_is_rs(wt)) {  /* GGUF rows, packed */
            uint8_t *g = xmalloc(wrow * ROWS);
            fill_weights(q_rs_base(wt), g, wrow * ROWS, &seed);
            for (int r = 0; r < ROWS; r++)
                kern_rs_pack_row(q_rs_base(wt), g + r * wrow, w + r * wrow, N);
            free(g);
        } else {
            fill_weights(wt, w, wrow * ROWS, &seed);
        }
        for (int t = 0; t < TOK; t++) {
            ref->quantize_row(at, x + t * N, xq + t * xrow, N);
            k->quantize_row(at, x + t * N, xq2 + t * xrow, N);
        }
        if (memcmp(xq, xq2, xrow * TOK) != 0) {
            al_errf(e, AL_EINTERNAL, "kernels %s: self-check: activation quantization to type %d "
                    "differs from the reference", k->name, (int)at);
            goto out;
        }
        ref->gemm(wt, w, wrow, N, 0, ROWS, xq, TOK, out_ref, ROWS);
        for (int variant = 0; variant < (k->gemm_tiled ? 2 : 1); variant++) {
            check_gemm_run(k, variant, wt, w, wrow, N, ROWS, xq, xrow, TOK, out_k);
            for (int t = 0; t < TOK; t++) {
                ref->dequantize_row(at, xq + t * xrow, xd, N);
                for (int r = 0; r < ROWS; r++) {
                    ref->dequantize_row(wt, w + r * wrow, wd, N);
                    double mag = 0.0;
                    for (int j = 0; j < N; j++)
                        mag += fabs((double)wd[j] * xd[j]);
                    float a = out_ref[t * ROWS + r], b = out_k[t * ROWS + r];
                    if (!(fabs((double)a - b) <= 1e-4 * mag + 1e-6)) {
                        al_errf(e, AL_EINTERNAL, "kernels %s: self-check: %s on type %d row %d "
                                "token %d gives %g, reference %g", k->name,
                                variant ? "gemm_tiled" : "gemm", (int)wt, r, t, b, a);
                        goto out;
                    }
                }
            }
        }
    }
    rc = 0;
out:
    free(x);
    free(xd);
    free(wd);
    free(w);
    free(xq);
    free(xq2);
    return rc;
}

/* ===== Public ============================================================================ */

const struct kern *
kern_ref(void)
{
    return &kern_table_ref;
}

const char *
kern_available(void)
{
    struct cpu_feats f = cpu_detect();
    if (f.avx512)
        return "avx512 avx2 ref";
    if (f.avx2)
        return "avx2 ref";
    return "ref";
}

const struct kern *
kern_select(const char *force, struct al_err *e)
{
    struct cpu_feats f = cpu_detect();
    if (force && *force && strcmp(force, "auto") != 0) {
        const struct kern *k;
        if (strcmp(force, "ref") == 0)
            return &kern_table_ref;
        if (strcmp(force, "avx2") == 0) {
            if (!f.avx2)
                return al_errf(e, AL_EUNSUPPORTED, "kernels avx2: this CPU or OS lacks AVX2/FMA/F16C/BMI2"),
                       NULL;
            k = &kern_table_avx2;
        } else if (strcmp(force, "avx512") == 0) {
            if (!f.avx512)
                return al_errf(e, AL_EUNSUPPORTED, "kernels avx512: this CPU or OS lacks AVX-512 "
                               "F/BW/VL/DQ/VNNI"), NULL;
            k = &kern_table_avx512;
        } else {
            return al_errf(e, AL_EUSAGE, "unknown kernels '%s' (expected auto, avx512, avx2 or ref)",
                           force), NULL;
        }
        return self_check(k, e) == 0 ? k : NULL;
    }
    if (f.avx512 && self_check(&kern_table_avx512, e) == 0)
        return &kern_table_avx512;
    if (f.avx2 && self_check(&kern_table_avx2, e) == 0)
        return &kern_table_avx2;
    if (e)
        al_err_clear(e);
    return &kern_table_ref;
}
