/* ref.c -- the scalar reference kernels: the specification every SIMD table is tested and
 * self-checked against. Plain C, no ISA flags, written for clarity over speed.
 * Activation quantization here defines the exact bytes every table must produce (the scheme
 * ggml's x86 build uses at run time); dot products are integer sums per block followed by one
 * float multiply-add per block, as ggml's vec_dot functions do. Float-typed dots accumulate in
 * double so that the reference is the more exact side of any comparison.
 * Input: weight blocks from a bounds-checked GGUF tensor (any bit pattern is safe). */
#include <math.h>
#include <string.h>

#include "engine/kernels/internal.h"
#include "engine/kernels/quant.h"

/* ===== Activation quantization ======================================================= */

static float
amax_of(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        if (a > amax)
            amax = a;
    }
    return amax;
}

/* Q8_0/Q8_1: d = amax/127 stored as half; q = nearest-even(x * 127/amax) computed from the
 * unrounded amax (ggml's AVX2 quantizer, which llama.cpp runs on this class of machine). */
static void
quantize_q8_0(const float *x, struct blk_q8_0 *y, int nb)
{
    for (int i = 0; i < nb; i++, x += QK8_0) {
        float amax = amax_of(x, QK8_0);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = q_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++)
            y[i].qs[j] = (int8_t)q_nearest_int(x[j] * id);
    }
}

static void
quantize_q8_1(const float *x, struct blk_q8_1 *y, int nb)
{
    for (int i = 0; i < nb; i++, x += QK8_1) {
        float amax = amax_of(x, QK8_1);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            int q = q_nearest_int(x[j] * id);
            y[i].qs[j] = (int8_t)q;
            sum += q;
        }
        y[i].d = q_f32_to_f16(d);
        y[i].s = q_f32_to_f16(d * (float)sum);
    }
}

/* Q8_K: the scale comes from the signed value of largest magnitude (first one on ties), with
 * iscale = -127/max, so that value maps to -127 and the other sign can reach +127 only. */
static void
quantize_q8_k(const float *x, struct blk_q8_k *y, int nb)
{
    for (int i = 0; i < nb; i++, x += QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            float a = fabsf(x[j]);
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = q_nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += y[i].qs[16 * g + j];
            y[i].bsums[g] = (int16_t)s;
        }
        y[i].d = 1.0f / iscale;
    }
}

void
ref_quantize_row(enum ggml_type act_type, const float *x, void *dst, int n)
{
    switch (act_type) {
    case GGML_TYPE_Q8_0:
        quantize_q8_0(x, dst, n / QK8_0);
        break;
    case GGML_TYPE_Q8_1:
        quantize_q8_1(x, dst, n / QK8_1);
        break;
    case GGML_TYPE_Q8_K:
        quantize_q8_k(x, dst, n / QK_K);
        break;
    case GGML_TYPE_F16: {
        uint16_t *y = dst;
        for (int j = 0; j < n; j++)
            y[j] = q_f32_to_f16(x[j]);
        break;
    }
    case GGML_TYPE_BF16: {
        uint16_t *y = dst;
        for (int j = 0; j < n; j++)
            y[j] = q_f32_to_bf16(x[j]);
        break;
    }
    case GGML_TYPE_F32:
        memcpy(dst, x, (size_t)n * sizeof(float));
        break;
    default:
        break;
    }
}

/* ===== Dequantization ================================================================ */

/* The 32 unsigned 5-bit (or 4-bit when qh is NULL) codes of a Q4_0/Q4_1/Q5_0/Q5_1 block. */
static void
codes_32(const uint8_t *qs, const uint8_t *qh, uint8_t *u)
{
    uint32_t h = 0;
    if (qh)
        h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    for (int j = 0; j < 16; j++) {
        u[j] = (uint8_t)((qs[j] & 0x0f) | ((h >> j) & 1u) << 4);
        u[j + 16] = (uint8_t)((qs[j] >> 4) | ((h >> (j + 16)) & 1u) << 4);
    }
}

/* The 256 unsigned codes of a Q4_K (qh NULL) or Q5_K super-block, in element order. */
static void
codes_k(const uint8_t *qs, const uint8_t *qh, uint8_t *u)
{
    for (int p = 0; p < 4; p++) {
        for (int l = 0; l < 32; l++) {
            uint8_t b = qs[32 * p + l];
            uint8_t h0 = qh ? (uint8_t)(((qh[l] >> (2 * p)) & 1u) << 4) : 0;
            uint8_t h1 = qh ? (uint8_t)(((qh[l] >> (2 * p + 1)) & 1u) << 4) : 0;
            u[64 * p + l] = (uint8_t)((b & 0x0f) | h0);
            u[64 * p + 32 + l] = (uint8_t)((b >> 4) | h1);
        }
    }
}

/* The 256 unsigned 6-bit codes (0..63, value = code - 32) of a Q6_K super-block. */
static void
codes_q6k(const struct blk_q6_k *b, uint8_t *u)
{
    for (int half = 0; half < 2; half++) {
        const uint8_t *ql = b->ql + 64 * half;
        const uint8_t *qh = b->qh + 32 * half;
        uint8_t *o = u + 128 * half;
        for (int l = 0; l < 32; l++) {
            o[l] = (uint8_t)((ql[l] & 0x0f) | ((qh[l] >> 0) & 3u) << 4);
            o[l + 32] = (uint8_t)((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3u) << 4);
            o[l + 64] = (uint8_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3u) << 4);
            o[l + 96] = (uint8_t)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3u) << 4);
        }
    }
}

void
ref_dequantize_row(enum ggml_type t, const void *src, float *dst, int n)
{
    uint8_t u[QK_K];
    if (q_is_rs(t)) {  /* block by block, each rebuilt as GGUF's */
        _Alignas(2) uint8_t rb[sizeof(struct blk_q8_0)];
        for (int b = 0; b < n / 32; b++) {
            q_rs_block(t, src, n / 32, b, rb);
            ref_dequantize_row(q_rs_base(t), rb, dst + 32 * b, 32);
        }
        return;
    }
    switch (t) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case GGML_TYPE_F16:
        for (int j = 0; j < n; j++)
            dst[j] = q_f16_to_f32(((const uint16_t *)src)[j]);
        break;
    case GGML_TYPE_BF16:
        for (int j = 0; j < n; j++)
            dst[j] = q_bf16_to_f32(((const uint16_t *)src)[j]);
        break;
    case GGML_TYPE_Q4_0:
        for (int i = 0; i < n / QK4_0; i++) {
            const struct blk_q4_0 *b = (const struct blk_q4_0 *)src + i;
            float d = q_f16_to_f32(b->d);
            codes_32(b->qs, NULL, u);
            for (int j = 0; j < QK4_0; j++)
                dst[QK4_0 * i + j] = d * (float)(u[j] - 8);
        }
        break;
    case GGML_TYPE_Q4_1:
        for (int i = 0; i < n / QK4_1; i++) {
            const struct blk_q4_1 *b = (const struct blk_q4_1 *)src + i;
            float d = q_f16_to_f32(b->d), m = q_f16_to_f32(b->m);
            codes_32(b->qs, NULL, u);
            for (int j = 0; j < QK4_1; j++)
                dst[QK4_1 * i + j] = d * (float)u[j] + m;
        }
        break;
    case GGML_TYPE_Q5_0:
        for (int i = 0; i < n / QK5_0; i++) {
            const struct blk_q5_0 *b = (const struct blk_q5_0 *)src + i;
            float d = q_f16_to_f32(b->d);
            codes_32(b->qs, b->qh, u);
            for (int j = 0; j < QK5_0; j++)
                dst[QK5_0 * i + j] = d * (float)(u[j] - 16);
        }
        break;
    case GGML_TYPE_Q5_1:
        for (int i = 0; i < n / QK5_1; i++) {
            const struct blk_q5_1 *b = (const struct blk_q5_1 *)src + i;
            float d = q_f16_to_f32(b->d), m = q_f16_to_f32(b->m);
            codes_32(b->qs, b->qh, u);
            for (int j = 0; j < QK5_1; j++)
                dst[QK5_1 * i + j] = d * (float)u[j] + m;
        }
        break;
    case GGML_TYPE_Q8_0:
        for (int i = 0; i < n / QK8_0; i++) {
            const struct blk_q8_0 *b = (const struct blk_q8_0 *)src + i;
            float d = q_f16_to_f32(b->d);
            for (int j = 0; j < QK8_0; j++)
                dst[QK8_0 * i + j] = d * (float)b->qs[j];
        }
        break;
    case GGML_TYPE_Q8_1:
        for (int i = 0; i < n / QK8_1; i++) {
            const struct blk_q8_1 *b = (const struct blk_q8_1 *)src + i;
            float d = q_f16_to_f32(b->d);
            for (int j = 0; j < QK8_1; j++)
                dst[QK8_1 * i + j] = d * (float)b->qs[j];
        }
        break;
    case GGML_TYPE_Q8_K:
        for (int i = 0; i < n / QK_K; i++) {
            const struct blk_q8_k *b = (const struct blk_q8_k *)src + i;
            for (int j = 0; j < QK_K; j++)
                dst[QK_K * i + j] = b->d * (float)b->qs[j];
        }
        break;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
        for (int i = 0; i < n / QK_K; i++) {
            const uint8_t *sc, *qs, *qh = NULL;
            uint16_t hd, hdmin;
            if (t == GGML_TYPE_Q4_K) {
                const struct blk_q4_k *b = (const struct blk_q4_k *)src + i;
                sc = b->scales, qs = b->qs, hd = b->d, hdmin = b->dmin;
            } else {
                const struct blk_q5_k *b = (const struct blk_q5_k *)src + i;
                sc = b->scales, qs = b->qs, qh = b->qh, hd = b->d, hdmin = b->dmin;
            }
            float d = q_f16_to_f32(hd), dmin = q_f16_to_f32(hdmin);
            codes_k(qs, qh, u);
            for (int j = 0; j < 8; j++) {
                uint8_t s, m;
                q_k_scale_min(j, sc, &s, &m);
                float d1 = d * (float)s, m1 = dmin * (float)m;
                for (int l = 0; l < 32; l++)
                    dst[QK_K * i + 32 * j + l] = d1 * (float)u[32 * j + l] - m1;
            }
        }
        break;
    case GGML_TYPE_Q6_K:
        for (int i = 0; i < n / QK_K; i++) {
            const struct blk_q6_k *b = (const struct blk_q6_k *)src + i;
            float d = q_f16_to_f32(b->d);
            codes_q6k(b, u);
            for (int j = 0; j < QK_K; j++)
                dst[QK_K * i + j] = d * (float)b->scales[j / 16] * (float)(u[j] - 32);
        }
        break;
    default:
        break;
    }
}

/* ===== Row dot products ================================================================ */

static int
isum32(const uint8_t *u, int off, const int8_t *x)
{
    int s = 0;
    for (int j = 0; j < 32; j++)
        s += (u[j] - off) * x[j];
    return s;
}

/* Q4_0, Q5_0, Q8_0 weights against Q8_0 activations. */
static float
dot_x8_0(enum ggml_type wt, const void *w, const struct blk_q8_0 *x, int nb)
{
    float sum = 0.0f;
    uint8_t u[32];
    const bool rs = q_is_rs(wt);  /* row-split: each block rebuilt as GGUF's first */
    const enum ggml_type bt = rs ? q_rs_base(wt) : wt;
    const size_t bb = (size_t)kern_block_bytes(bt);
    _Alignas(2) uint8_t rb[sizeof(struct blk_q8_0)];
    for (int i = 0; i < nb; i++) {
        int si;
        uint16_t hd;
        const uint8_t *blk = (const uint8_t *)w + (size_t)i * bb;
        if (rs) {
            q_rs_block(wt, w, nb, i, rb);
            blk = rb;
        }
        if (bt == GGML_TYPE_Q8_0) {
            const struct blk_q8_0 *b = (const struct blk_q8_0 *)blk;
            si = 0;
            for (int j = 0; j < 32; j++)
                si += b->qs[j] * x[i].qs[j];
            hd = b->d;
        } else if (bt == GGML_TYPE_Q4_0) {
            const struct blk_q4_0 *b = (const struct blk_q4_0 *)blk;
            codes_32(b->qs, NULL, u);
            si = isum32(u, 8, x[i].qs);
            hd = b->d;
        } else {
            const struct blk_q5_0 *b = (const struct blk_q5_0 *)blk;
            codes_32(b->qs, b->qh, u);
            si = isum32(u, 16, x[i].qs);
            hd = b->d;
        }
        sum += (float)si * (q_f16_to_f32(hd) * q_f16_to_f32(x[i].d));
    }
    return sum;
}

/* Q4_1, Q5_1 weights against Q8_1 activations: d*dx*sum(u*q) + m*s. */
static float
dot_x8_1(enum ggml_type wt, const void *w, const struct blk_q8_1 *x, int nb)
{
    float sum = 0.0f;
    uint8_t u[32];
    for (int i = 0; i < nb; i++) {
        uint16_t hd, hm;
        if (wt == GGML_TYPE_Q4_1) {
            const struct blk_q4_1 *b = (const struct blk_q4_1 *)w + i;
            codes_32(b->qs, NULL, u);
            hd = b->d, hm = b->m;
        } else {
            const struct blk_q5_1 *b = (const struct blk_q5_1 *)w + i;
            codes_32(b->qs, b->qh, u);
            hd = b->d, hm = b->m;
        }
        int si = isum32(u, 0, x[i].qs);
        sum += (q_f16_to_f32(hd) * q_f16_to_f32(x[i].d)) * (float)si +
               q_f16_to_f32(hm) * q_f16_to_f32(x[i].s);
    }
    return sum;
}

/* K-quants against Q8_K: per super-block one integer sum for the scales and one for the
 * mins (through the activation's per-16 sums), then two float terms. */
static float
dot_xk(enum ggml_type wt, const void *w, const struct blk_q8_k *x, int nb)
{
    float sum = 0.0f;
    uint8_t u[QK_K];
    for (int i = 0; i < nb; i++) {
        if (wt == GGML_TYPE_Q6_K) {
            const struct blk_q6_k *b = (const struct blk_q6_k *)w + i;
            codes_q6k(b, u);
            int si = 0;
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int l = 0; l < 16; l++)
                    s += (u[16 * g + l] - 32) * x[i].qs[16 * g + l];
                si += b->scales[g] * s;
            }
            sum += q_f16_to_f32(b->d) * x[i].d * (float)si;
            continue;
        }
        const uint8_t *sc, *qs, *qh = NULL;
        uint16_t hd, hdmin;
        if (wt == GGML_TYPE_Q4_K) {
            const struct blk_q4_k *b = (const struct blk_q4_k *)w + i;
            sc = b->scales, qs = b->qs, hd = b->d, hdmin = b->dmin;
        } else {
            const struct blk_q5_k *b = (const struct blk_q5_k *)w + i;
            sc = b->scales, qs = b->qs, qh = b->qh, hd = b->d, hdmin = b->dmin;
        }
        codes_k(qs, qh, u);
        int si = 0, sm = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            q_k_scale_min(j, sc, &s, &m);
            si += s * isum32(u + 32 * j, 0, x[i].qs + 32 * j);
            sm += m * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
        }
        float d = x[i].d * q_f16_to_f32(hd);
        float dmin = x[i].d * q_f16_to_f32(hdmin);
        sum += d * (float)si - dmin * (float)sm;
    }
    return sum;
}

static float
dot_float(enum ggml_type wt, const void *w, const void *x, int n)
{
    double s = 0.0;
    for (int j = 0; j < n; j++) {
        float a, b;
        if (wt == GGML_TYPE_F32) {
            a = ((const float *)w)[j], b = ((const float *)x)[j];
        } else if (wt == GGML_TYPE_F16) {
            a = q_f16_to_f32(((const uint16_t *)w)[j]);
            b = q_f16_to_f32(((const uint16_t *)x)[j]);
        } else {
            a = q_bf16_to_f32(((const uint16_t *)w)[j]);
            b = q_bf16_to_f32(((const uint16_t *)x)[j]);
        }
        s += (double)a * (double)b;
    }
    return (float)s;
}

static float
dot_row(enum ggml_type wt, const void *w, const void *x, int n)
{
    switch (wt) {
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q8_0:
    case KERN_TYPE_Q4_0_RS:
    case KERN_TYPE_Q5_0_RS:
    case KERN_TYPE_Q8_0_RS:
        return dot_x8_0(wt, w, x, n / 32);
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_1:
        return dot_x8_1(wt, w, x, n / 32);
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q5_K:
    case GGML_TYPE_Q6_K:
        return dot_xk(wt, w, x, n / QK_K);
    default:
        return dot_float(wt, w, x, n);
    }
}

void
ref_gemm(enum ggml_type wt, const void *w, size_t w_row_bytes, int n, int r0, int r1,
         const void *xq, int n_tok, float *out, int ld_out)
{
    if (!kern_weight_supported(wt))
        return;
    size_t x_row = kern_row_bytes(kern_act_type(wt), n);
    for (int t = 0; t < n_tok; t++) {
        const char *xt = (const char *)xq + (size_t)t * x_row;
        for (int r = r0; r < r1; r++)
            out[(size_t)t * ld_out + r] = dot_row(wt, (const char *)w + (size_t)r * w_row_bytes, xt, n);
    }
}

/* ===== Activation sums ================================================================= */

void
kern_act_sums(enum ggml_type wt, const void *xq, int n, struct kern_xsum *xs)
{
    if (q_is_rs(wt))
        wt = q_rs_base(wt);  /* the same values */
    int off = wt == GGML_TYPE_Q8_0 ? 128 : wt == GGML_TYPE_Q4_0 ? 8 : wt == GGML_TYPE_Q5_0 ? 16
            : wt == GGML_TYPE_Q6_K ? 32 : 0;
    switch (wt) {
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q5_0: case GGML_TYPE_Q8_0:
        for (int i = 0; i < n / QK8_0; i++) {
            const struct blk_q8_0 *b = (const struct blk_q8_0 *)xq + i;
            int s = 0;
            for (int j = 0; j < QK8_0; j++)
                s += b->qs[j];
            xs[i] = (struct kern_xsum){-off * s, q_f16_to_f32(b->d), 0.0f};
        }
        break;
    case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_1:
        for (int i = 0; i < n / QK8_1; i++) {
            const struct blk_q8_1 *b = (const struct blk_q8_1 *)xq + i;
            xs[i] = (struct kern_xsum){0, q_f16_to_f32(b->d), q_f16_to_f32(b->s)};
        }
        break;
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K:
        for (int i = 0; i < n / QK_K; i++) {
            const struct blk_q8_k *b = (const struct blk_q8_k *)xq + i;
            for (int j = 0; j < 8; j++)
                xs[8 * i + j] = (struct kern_xsum){
                    0, b->d, b->d * (float)(b->bsums[2 * j] + b->bsums[2 * j + 1])};
        }
        break;
    case GGML_TYPE_Q6_K:
        for (int i = 0; i < n / QK_K; i++) {
            const struct blk_q8_k *b = (const struct blk_q8_k *)xq + i;
            for (int j = 0; j < 16; j++)
                xs[16 * i + j] = (struct kern_xsum){-off * b->bsums[j], b->d, 0.0f};
        }
        break;
    default:
        break;
    }
}

/* ===== Float helpers =================================================================== */

float
ref_dot_f32(int n, const float *a, const float *b)
{
    double s = 0.0;
    for (int j = 0; j < n; j++)
        s += (double)a[j] * (double)b[j];
    return (float)s;
}

float
ref_dot_f16_f32(int n, const uint16_t *a, const float *b)
{
    double s = 0.0;
    for (int j = 0; j < n; j++)
        s += (double)q_f16_to_f32(a[j]) * (double)b[j];
    return (float)s;
}

void
ref_axpy_f32(int n, float alpha, const float *x, float *y)
{
    for (int j = 0; j < n; j++)
        y[j] += alpha * x[j];
}

void
ref_axpy_f16_f32(int n, float alpha, const uint16_t *x, float *y)
{
    for (int j = 0; j < n; j++)
        y[j] += alpha * q_f16_to_f32(x[j]);
}

void
ref_f32_to_f16_row(const float *x, uint16_t *y, int n)
{
    for (int j = 0; j < n; j++)
        y[j] = q_f32_to_f16(x[j]);
}

void
ref_f16_to_f32_row(const uint16_t *x, float *y, int n)
{
    for (int j = 0; j < n; j++)
        y[j] = q_f16_to_f32(x[j]);
}

/* As ggml: the mean square in double, the scale in float, then x*scale*w. */
void
ref_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0.0;
    for (int j = 0; j < n; j++)
        ss += (double)x[j] * (double)x[j];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int j = 0; j < n; j++)
        out[j] = x[j] * scale * w[j];
}

void
ref_softmax(float *x, int n)
{
    if (n <= 0)
        return;
    float max = x[0];
    for (int j = 1; j < n; j++)
        if (x[j] > max)
            max = x[j];
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
        x[j] = expf(x[j] - max);
        sum += x[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < n; j++)
        x[j] *= inv;
}

void
ref_swiglu(float *g, const float *u, int n)
{
    for (int j = 0; j < n; j++)
        g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
}

/* The specification of attn_f16 for one row: the reference helpers composed step by step. */
static void
ref_attn_f16_row(int hd, const float *q, const uint16_t *k, const uint16_t *v, size_t kv_stride,
                 int n_pos, float scale, float *out)
{
    float qh[1024], acc[1024];
    uint16_t h16[1024];
    ref_f32_to_f16_row(q, h16, hd);
    ref_f16_to_f32_row(h16, qh, hd);
    memset(acc, 0, (size_t)hd * sizeof *acc);
    float m = -INFINITY, sum = 0.0f;
    for (int p = 0; p < n_pos; p++) {
        float s = ref_dot_f16_f32(hd, k + (size_t)p * kv_stride, qh) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > m) {
            ms = expf(m - s);
            m = s;
            for (int i = 0; i < hd; i++)
                acc[i] *= ms;
            ref_f32_to_f16_row(acc, h16, hd);
            ref_f16_to_f32_row(h16, acc, hd);
        } else {
            vs = expf(s - m);
        }
        ref_axpy_f16_f32(hd, vs, v + (size_t)p * kv_stride, acc);
        ref_f32_to_f16_row(acc, h16, hd);
        ref_f16_to_f32_row(h16, acc, hd);
        sum = sum * ms + vs;
    }
    float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
    for (int i = 0; i < hd; i++)
        out[i] = acc[i] * inv;
}

void
ref_attn_f16(int hd, int n_q, const float *q, const uint16_t *k, const uint16_t *v,
             size_t kv_stride, int n_pos, float scale, float *out)
{
    for (int r = 0; r < n_q; r++)
        ref_attn_f16_row(hd, q + (size_t)r * hd, k, v, kv_stride, n_pos, scale,
                         out + (size_t)r * hd);
}

/* One position at a time: score, online softmax (rescale the accumulator when the maximum
 * grows), accumulate the value; divide by the sum at the end. */
void
ref_attn_f32(const struct kern_attn *a)
{
    int hd = a->hd;
    float *acc = a->scratch;
    for (int r = 0; r < a->n_rows; r++) {
        const float *q = a->q[r];
        float m = -INFINITY, sum = 0.0f;
        for (int i = 0; i < hd; i++)
            acc[i] = 0.0f;
        for (int p = 0; p < a->n_pos[r]; p++) {
            const uint16_t *k = a->k + (size_t)p * a->kv_stride;
            const uint16_t *v = a->v + (size_t)p * a->kv_stride;
            float s = 0.0f;
            for (int i = 0; i < hd; i++)
                s += q[i] * q_f16_to_f32(k[i]);
            s *= a->scale;
            float ms = 1.0f, vs = 1.0f;
            if (s > m) {
                ms = expf(m - s);
                m = s;
                for (int i = 0; i < hd; i++)
                    acc[i] *= ms;
            } else {
                vs = expf(s - m);
            }
            for (int i = 0; i < hd; i++)
                acc[i] += vs * q_f16_to_f32(v[i]);
            sum = sum * ms + vs;
        }
        float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
        for (int i = 0; i < hd; i++)
            a->out[r][i] = acc[i] * inv;
    }
}

const struct kern kern_table_ref = {
    .name = "ref",
    .quantize_row = ref_quantize_row,
    .gemm = ref_gemm,
    .dequantize_row = ref_dequantize_row,
    .dot_f32 = ref_dot_f32,
    .dot_f16_f32 = ref_dot_f16_f32,
    .axpy_f32 = ref_axpy_f32,
    .axpy_f16_f32 = ref_axpy_f16_f32,
    .f32_to_f16_row = ref_f32_to_f16_row,
    .f16_to_f32_row = ref_f16_to_f32_row,
    .rmsnorm = ref_rmsnorm,
    .softmax = ref_softmax,
    .swiglu = ref_swiglu,
    .attn_f32 = ref_attn_f32,
    .attn_f16 = ref_attn_f16,
};
