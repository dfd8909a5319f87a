/* quant.h -- ggml/GGUF quantization block layouts as C structs (sizes asserted), and the scalar
 * number conversions every kernel file shares (IEEE half, bfloat16, nearest-even rounding).
 * Layouts are the published ggml ones (ggml-common.h); all multi-byte fields little-endian,
 * blocks packed with no padding, 2-byte aligned at most (so structs may sit at any even
 * offset inside a row). Pure definitions: no state, no I/O. Everything here is static inline
 * so each translation unit (including the ISA-flagged ones) gets its own private copy. */
#ifndef AIRLOCK_ENGINE_KERNELS_QUANT_H
#define AIRLOCK_ENGINE_KERNELS_QUANT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "format/gguf.h"

/* ===== Block layouts ================================================================= */

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

/* x[i] = d * (q[i] - 8); element j in the low nibble of qs[j], element j+16 in the high one. */
struct blk_q4_0 {
    uint16_t d;            /* scale, IEEE half */
    uint8_t qs[QK4_0 / 2]; /* 4-bit quants */
};
_Static_assert(sizeof(struct blk_q4_0) == 2 + QK4_0 / 2, "q4_0 block must match GGUF layout");

/* x[i] = d * q[i] + m; nibbles as Q4_0. */
struct blk_q4_1 {
    uint16_t d;            /* scale, half */
    uint16_t m;            /* offset (min), half */
    uint8_t qs[QK4_1 / 2];
};
_Static_assert(sizeof(struct blk_q4_1) == 4 + QK4_1 / 2, "q4_1 block must match GGUF layout");

/* x[i] = d * ((nibble | bit_i(qh) << 4) - 16); bit i of the little-endian qh is the fifth bit
 * of element i (nibbles as Q4_0). */
struct blk_q5_0 {
    uint16_t d;            /* scale, half */
    uint8_t qh[4];         /* high bits, little-endian uint32 */
    uint8_t qs[QK5_0 / 2];
};
_Static_assert(sizeof(struct blk_q5_0) == 2 + 4 + QK5_0 / 2, "q5_0 block must match GGUF layout");

/* x[i] = d * (nibble | bit_i(qh) << 4) + m. */
struct blk_q5_1 {
    uint16_t d;            /* scale, half */
    uint16_t m;            /* min, half */
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
_Static_assert(sizeof(struct blk_q5_1) == 4 + 4 + QK5_1 / 2, "q5_1 block must match GGUF layout");

/* x[i] = d * qs[i]. */
struct blk_q8_0 {
    uint16_t d;            /* scale, half */
    int8_t qs[QK8_0];
};
_Static_assert(sizeof(struct blk_q8_0) == 2 + QK8_0, "q8_0 block must match GGUF layout");

/* Activation companion of Q4_1/Q5_1: as Q8_0 plus s = d * sum(qs) (for the min term). */
struct blk_q8_1 {
    uint16_t d;            /* scale, half */
    uint16_t s;            /* d * sum(qs), half */
    int8_t qs[QK8_1];
};
_Static_assert(sizeof(struct blk_q8_1) == 4 + QK8_1, "q8_1 block must match GGUF layout");

/* Super-block of 8 sub-blocks of 32: x = d*sc_j*q - dmin*m_j, q 4-bit, sc_j/m_j 6-bit packed in
 * scales[12] (j<4: sc = s[j]&63, m = s[j+4]&63; j>=4: sc = (s[j+4]&15) | (s[j-4]>>6)<<4,
 * m = (s[j+4]>>4) | (s[j]>>6)<<4). qs: 32 bytes per pair of sub-blocks, low nibbles = the
 * first sub-block of the pair, high nibbles = the second. 4.5 bits/weight. */
struct blk_q4_k {
    uint16_t d;                    /* super-block scale for the quantized scales, half */
    uint16_t dmin;                 /* super-block scale for the quantized mins, half */
    uint8_t scales[K_SCALE_SIZE];  /* 8 scales + 8 mins, 6 bits each */
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct blk_q4_k) == 4 + K_SCALE_SIZE + QK_K / 2, "q4_K block must match GGUF layout");

/* As Q4_K with a fifth bit: element 64*p + l (l < 32) takes bit 2p of qh[l], element
 * 64*p + 32 + l takes bit 2p+1. 5.5 bits/weight. */
struct blk_q5_k {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct blk_q5_k) == 4 + K_SCALE_SIZE + QK_K / 8 + QK_K / 2,
               "q5_K block must match GGUF layout");

/* x = d * scales[i/16] * (q - 32), q 6-bit. Per half of 128 elements (ql += 64, qh += 32):
 * for l < 32, elements l, l+32, l+64, l+96 take the low nibble of ql[l], low of ql[l+32],
 * high of ql[l], high of ql[l+32], and bits 0-1, 2-3, 4-5, 6-7 of qh[l] as bits 4-5.
 * 6.5625 bits/weight. */
struct blk_q6_k {
    uint8_t ql[QK_K / 2];      /* low 4 bits */
    uint8_t qh[QK_K / 4];      /* high 2 bits */
    int8_t scales[QK_K / 16];  /* 8-bit signed scale per 16 elements */
    uint16_t d;                /* super-block scale, half */
};
_Static_assert(sizeof(struct blk_q6_k) == QK_K / 2 + QK_K / 4 + QK_K / 16 + 2,
               "q6_K block must match GGUF layout");

/* Activation companion of the K-quants: float scale, 256 int8, sums of each 16. */
struct blk_q8_k {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
_Static_assert(sizeof(struct blk_q8_k) == 4 + QK_K + QK_K / 16 * 2, "q8_K block must match ggml layout");

/* ===== Row-split layouts (in memory only) =============================================
 *
 * A GGUF Q4_0/Q5_0/Q8_0 row interleaves, block after block, a half scale, (Q5_0) four bytes
 * of fifth bits and 16 nibble bytes (Q8_0: 32 int8), so a decoder converts and broadcasts one
 * half per block and finds the codes at a 18/22/34-byte stride. Model load (model_repack)
 * rewrites rows with an even number of blocks nb into the same number of bytes grouped by
 * kind, types KERN_TYPE_Q4_0_RS, KERN_TYPE_Q5_0_RS and KERN_TYPE_Q8_0_RS:
 *   d   at 0:        nb halves, in block order
 *   qh  at 2*nb:     nb little-endian uint32, in block order (Q5_0 only)
 *   qs  after those: Q4_0/Q5_0: nb/2 pairs of 32 bytes; byte j of pair p holds the low four
 *                    bits of element j of block 2p in its low nibble, of block 2p+1 in its
 *                    high one. Q8_0: nb blocks of 32 int8, in block order.
 * A decoder then converts 16 scales with one instruction, and one 32-byte load (and for the
 * nibbles a shift and a mask) gives two blocks' codes in element order (Q8_0: one 64-byte
 * load). Every value -- so every integer block sum -- is the GGUF block's. */

static inline bool
q_is_rs(enum ggml_type t)
{
    return t == KERN_TYPE_Q4_0_RS || t == KERN_TYPE_Q5_0_RS || t == KERN_TYPE_Q8_0_RS;
}

/* The GGUF type a row-split type was packed from. */
static inline enum ggml_type
q_rs_base(enum ggml_type t)
{
    return t == KERN_TYPE_Q4_0_RS ? GGML_TYPE_Q4_0
         : t == KERN_TYPE_Q5_0_RS ? GGML_TYPE_Q5_0
                                  : GGML_TYPE_Q8_0;
}

/* Offset of the codes (qs) in a row-split row of nb blocks. */
static inline size_t
q_rs_qs_off(enum ggml_type t, int nb)
{
    return (size_t)nb * (t == KERN_TYPE_Q5_0_RS ? 6u : 2u);
}

/* Block b of a row-split row of nb blocks, as the GGUF block it came from (struct blk_q4_0,
 * blk_q5_0 or blk_q8_0 bytes at blk). */
static inline void
q_rs_block(enum ggml_type t, const uint8_t *row, int nb, int b, uint8_t *blk)
{
    memcpy(blk, row + 2 * (size_t)b, 2);
    if (t == KERN_TYPE_Q8_0_RS) {
        memcpy(blk + 2, row + q_rs_qs_off(t, nb) + 32 * (size_t)b, 32);
        return;
    }
    const uint8_t *pair = row + q_rs_qs_off(t, nb) + 32 * (size_t)(b / 2);
    int sh = 4 * (b & 1), o = 2;
    if (t == KERN_TYPE_Q5_0_RS) {
        memcpy(blk + 2, row + 2 * (size_t)nb + 4 * (size_t)b, 4);
        o = 6;
    }
    for (int j = 0; j < 16; j++)
        blk[o + j] = (uint8_t)((pair[j] >> sh & 15) | (pair[j + 16] >> sh & 15) << 4);
}

/* ===== Scalar conversions ============================================================== */

static inline uint32_t
q_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float
q_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* IEEE binary16 -> float, exact for every input including subnormals, Inf and NaN. */
static inline float
q_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f)
        return q_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* subnormal or zero: man * 2^-24, exact in float */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return q_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* float -> IEEE binary16, round to nearest even, overflow to Inf, NaN stays NaN (quiet). */
static inline uint16_t
q_f32_to_f16(float f)
{
    uint32_t u = q_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u)  /* Inf or NaN */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0));
    if (a >= 0x477ff000u)  /* rounds to >= 65520: Inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) {
        /* subnormal result: count units of 2^-24 (exact power-of-two scaling), then let the
         * FPU's default nearest-even rounding drop the fraction via the 2^23 trick */
        float v = q_bits_f32(a) * 0x1p24f;  /* exact: a power-of-two scale */
        float r = (v + 0x1p23f) - 0x1p23f;  /* nearest even for 0 <= v < 2^23 */
        return (uint16_t)(sign | (uint16_t)r);
    }
    /* normal: rebias exponent, round mantissa from 23 to 10 bits, nearest even; a carry
     * into the exponent is correct (it becomes the next binade or Inf) */
    uint32_t mant_odd = (a >> 13) & 1u;
    a += 0xfffu + mant_odd;
    return (uint16_t)(sign | (uint16_t)((a - 0x38000000u) >> 13));
}

/* bfloat16 -> float: the top half of the float's bits. */
static inline float
q_bf16_to_f32(uint16_t h)
{
    return q_bits_f32((uint32_t)h << 16);
}

/* float -> bfloat16, round to nearest even; NaN kept quiet (as ggml does). */
static inline uint16_t
q_f32_to_bf16(float f)
{
    uint32_t u = q_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

/* Round to nearest, ties to even, for |x| < 2^22 (ggml's nearest_int does the same with the
 * same magic constant: adding 1.5*2^23 puts the integer in the low mantissa bits). */
static inline int
q_nearest_int(float x)
{
    float v = x + 12582912.0f;
    return (int)(q_f32_bits(v) & 0x007fffffu) - 0x00400000;
}

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block. */
static inline void
q_k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

#endif
