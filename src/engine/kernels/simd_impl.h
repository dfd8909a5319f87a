/* simd_impl.h -- the body of the AVX2 and AVX-512 tables, included once by avx2.c and once by
 * avx512.c (never elsewhere), so both tables share one implementation and one set of tests.
 * The including file's ISA flags decide the primitives: with AVX-512 VNNI (+VL/BW) the u8 x s8
 * dot is one vpdpbusd and the scaled int16 dot one vpdpwssd, 32 vector registers allow
 * 4x4 tiles; on AVX2 they are maddubs + madd and tiles are smaller. These gemm tiles stay
 * 256 bits wide: their data comes in 32-byte blocks, and a lane layout that matches ggml's
 * keeps decode logits equal to llama.cpp's. Where 512-bit vectors pay on a full-width core
 * (AMD Zen 5: twice the VNNI and FMA work per instruction), the AVX-512 table uses them
 * without changing results: K-quant decode (two 32-element chunks per instruction, halves
 * added exactly in integers) and the prefill attention's FMAs; its packed-panel prefill gemm
 * lives in avx512.c.
 *
 * How a gemm runs: rows are taken in chunks that stay in L2, tokens in groups of a tile's
 * width, and within a chunk rows in groups of its height; leftover tokens run one at a time
 * (the decode tile). For one tile the weight block of each of its rows is decoded once into
 * 32 unsigned 8-bit codes (value = code - offset, or d*code + m) and then dotted with every
 * token's activation block, so decoding is shared by the tile's tokens and each activation
 * load by its rows. Integer sums per block are exact and equal the reference's;
 * the offset is removed with the activation's own sums (exact too); only the float
 * accumulation order differs from ref.c. Tiles at the last rows clamp their row indices to the
 * last valid one (the duplicate lanes recompute and rewrite the same value). Decode tiles
 * prefetch the next tile's rows while they compute: quantized rows are only 2-9 KB, so the
 * hardware prefetchers keep restarting, and without this a core streamed a third as fast.
 *
 * Untrusted bytes: weight blocks are read only at offsets implied by n and the row stride;
 * no code value is used as an index. Codes are at most 63 (128 after the sign trick on AVX2),
 * so no maddubs pair sum can saturate int16. */

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "engine/kernels/internal.h"
#include "engine/kernels/quant.h"

/* Tile shapes (rows x tokens) for prefill, measured on the target (AMD EPYC): 32-element blocks
 * and floats do best at 4x4 (3x4 with AVX2's 16 registers), K-quants at 2x8 (their integer
 * accumulators fill the register file sooner with rows). */
#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#define KS_VNNI 1
#define KS_RM 4   /* rows per prefill tile, 32-blocks and floats */
#define KS_RN 4   /* tokens per prefill tile, 32-blocks and floats */
#define KS_RMK 2  /* rows per prefill tile, K-quants */
#define KS_RNK 8  /* tokens per prefill tile, K-quants */
#else
#define KS_VNNI 0
#define KS_RM 3
#define KS_RN 4
#define KS_RMK 2
#define KS_RNK 8
#endif
#define KS_RM_DECODE 4  /* rows per decode (one token) tile */
#define KS_RMAX 4       /* the largest of the row counts above */
#define KS_RNMAX (KS_RN > KS_RNK ? KS_RN : KS_RNK)
#define KS_ROW_CHUNK 32 /* rows whose weights are reused from L2 across all token groups */

#define KS_INLINE static inline __attribute__((always_inline))

/* ===== Primitives ====================================================================== */

/* acc + sums of four u8*s8 products per int32 lane. On AVX2 each pair sum must fit int16. */
KS_INLINE __m256i
dp_u8s8(__m256i acc, __m256i u, __m256i x)
{
#if KS_VNNI
    return _mm256_dpbusd_epi32(acc, u, x);
#else
    __m256i p = _mm256_maddubs_epi16(u, x);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#endif
}

/* acc + per int32 lane: (u0*x0 + u1*x1)*s0 + (u2*x2 + u3*x3)*s1, s16 holding int16 weights. */
KS_INLINE __m256i
dp_u8s8_scaled(__m256i acc, __m256i u, __m256i x, __m256i s16)
{
    __m256i p = _mm256_maddubs_epi16(u, x);
#if KS_VNNI
    return _mm256_dpwssd_epi32(acc, p, s16);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, s16));
#endif
}

KS_INLINE float
hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

KS_INLINE float
f16(uint16_t h)
{
    return _cvtsh_ss(h);
}

/* A half at p, converted and broadcast: one load-broadcast and one conversion. */
KS_INLINE __m256
f16_bcast(const uint8_t *p)
{
    short h;
    memcpy(&h, p, 2);
    return _mm256_cvtph_ps(_mm_set1_epi16(h));
}

KS_INLINE uint16_t
rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

KS_INLINE __m256i
load256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* 32 nibbles of a Q4_0/Q4_1/Q5_* block in element order: low nibbles then high nibbles. */
KS_INLINE __m256i
codes_nib32(const uint8_t *qs)
{
    /* the 16 bytes in both halves; the upper half shifted down a nibble */
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    v = _mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4));
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* 0x10 in byte i where bit i of the little-endian 32-bit qh is set (the fifth bits of Q5_*). */
KS_INLINE __m256i
bits5_32(const uint8_t *qh)
{
    uint32_t h;
    memcpy(&h, qh, 4);
#if KS_VNNI
    return _mm256_maskz_mov_epi8((__mmask32)h, _mm256_set1_epi8(0x10));
#else
    __m256i v = _mm256_set1_epi32((int)h);
    const __m256i spread = _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll,
                                              0x0303030303030303ll);
    v = _mm256_shuffle_epi8(v, spread);  /* byte i = byte i/8 of qh */
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
#endif
}

/* ===== Tiles over 32-element blocks (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0) ========================== */

/* The offset subtracted from a code (0 for the types with a min). */
KS_INLINE int
offset32(enum ggml_type wt)
{
    switch (wt) {
    case GGML_TYPE_Q4_0: case KERN_TYPE_Q4_0_RS: return 8;
    case GGML_TYPE_Q5_0: case KERN_TYPE_Q5_0_RS: return 16;
    case GGML_TYPE_Q8_0: case KERN_TYPE_Q8_0_RS:
        return KS_VNNI ? 128 : 0;  /* AVX2 uses the sign trick instead */
    default: return 0;
    }
}

KS_INLINE int
blk32_bytes(enum ggml_type wt)
{
    switch (wt) {
    case GGML_TYPE_Q4_0: case KERN_TYPE_Q4_0_RS: return sizeof(struct blk_q4_0);
    case GGML_TYPE_Q4_1: return sizeof(struct blk_q4_1);
    case GGML_TYPE_Q5_0: case KERN_TYPE_Q5_0_RS: return sizeof(struct blk_q5_0);
    case GGML_TYPE_Q5_1: return sizeof(struct blk_q5_1);
    default: return sizeof(struct blk_q8_0);
    }
}

/* Q8_0 weights in either layout (both take the same integer steps). */
KS_INLINE bool
is_q8(enum ggml_type wt)
{
    return wt == GGML_TYPE_Q8_0 || wt == KERN_TYPE_Q8_0_RS;
}

/* Q8_0 codes from 32 raw int8: with VNNI q + 128 as unsigned (offset32 takes the 128 back),
 * otherwise |q| with q kept for the sign trick (_mm256_sign_epi8 moves q's signs onto the
 * activations; |-128| is 128 as u8). */
KS_INLINE void
codes_q8(__m256i q, __m256i *u, __m256i *sgn)
{
#if KS_VNNI
    *u = _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80));
    (void)sgn;
#else
    *u = _mm256_abs_epi8(q);
    *sgn = q;
#endif
}

/* Decode one block: codes (u8), the raw signed values for AVX2 Q8_0 (sign trick), scale, min. */
KS_INLINE void
decode32(enum ggml_type wt, const uint8_t *b, __m256i *u, __m256i *sgn, __m256 *d, __m256 *m)
{
    *d = f16_bcast(b);
    *m = _mm256_setzero_ps();
    switch (wt) {
    case GGML_TYPE_Q4_0:
        *u = codes_nib32(b + 2);
        break;
    case GGML_TYPE_Q4_1:
        *m = f16_bcast(b + 2);
        *u = codes_nib32(b + 4);
        break;
    case GGML_TYPE_Q5_0:
        *u = _mm256_or_si256(codes_nib32(b + 6), bits5_32(b + 2));
        break;
    case GGML_TYPE_Q5_1:
        *m = f16_bcast(b + 2);
        *u = _mm256_or_si256(codes_nib32(b + 8), bits5_32(b + 4));
        break;
    default: /* Q8_0 */
        codes_q8(load256(b + 2), u, sgn);
        break;
    }
}

/* The same for block b of a row of nb blocks in either layout: GGUF's blocks one after
 * another, or row-split (quant.h), where two blocks share 32 bytes of nibbles (Q8_0: the
 * codes of block b 32 bytes each after the scales). */
KS_INLINE void
decode32_at(enum ggml_type wt, const uint8_t *row, int nb, int b, __m256i *u, __m256i *sgn,
            __m256 *d, __m256 *m)
{
    if (!q_is_rs(wt)) {
        decode32(wt, row + (size_t)b * (size_t)blk32_bytes(wt), u, sgn, d, m);
        return;
    }
    *d = f16_bcast(row + 2 * (size_t)b);
    *m = _mm256_setzero_ps();
    if (wt == KERN_TYPE_Q8_0_RS) {
        codes_q8(load256(row + q_rs_qs_off(wt, nb) + 32 * (size_t)b), u, sgn);
        return;
    }
    __m256i v = load256(row + q_rs_qs_off(wt, nb) + 32 * (size_t)(b / 2));
    if (b & 1)
        v = _mm256_srli_epi16(v, 4);
    *u = _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
    if (wt == KERN_TYPE_Q5_0_RS)
        *u = _mm256_or_si256(*u, bits5_32(row + 2 * (size_t)nb + 4 * (size_t)b));
}

KS_INLINE void
tile32(enum ggml_type wt, const uint8_t *const *w, const uint8_t *const *pf,
       const uint8_t *const *x, int nb, int rm, int rn, float res[KS_RMAX][KS_RNMAX])
{
    const int wbb = blk32_bytes(wt);
    const bool has_min = wt == GGML_TYPE_Q4_1 || wt == GGML_TYPE_Q5_1;
    const int xbb = has_min ? (int)sizeof(struct blk_q8_1) : (int)sizeof(struct blk_q8_0);
    const int xoff = has_min ? 4 : 2;
    const int off = offset32(wt);
    __m256 acc[KS_RMAX][KS_RNMAX];
#pragma GCC unroll 8
    for (int r = 0; r < rm; r++)
#pragma GCC unroll 8
        for (int t = 0; t < rn; t++)
            acc[r][t] = _mm256_setzero_ps();

    for (int b = 0; b < nb; b++) {
        __m256i u[KS_RMAX], sg[KS_RMAX];  /* codes; raw values for the AVX2 sign trick */
        __m256 dwv[KS_RMAX], mwv[KS_RMAX];  /* scales and mins, broadcast */
#pragma GCC unroll 8
        for (int r = 0; r < rm; r++) {
            if (pf)
                _mm_prefetch((const char *)pf[r] + (size_t)b * wbb, _MM_HINT_T0);
            decode32_at(wt, w[r], nb, b, &u[r], &sg[r], &dwv[r], &mwv[r]);
        }
#pragma GCC unroll 8
        for (int t = 0; t < rn; t++) {
            const uint8_t *xb = x[t] + (size_t)b * xbb;
            __m256i xv = load256(xb + xoff);
            __m256 dxv = f16_bcast(xb);
            __m256i base = _mm256_setzero_si256();
            if (off)  /* minus offset * (sum of each lane's four activations) */
                base = _mm256_sub_epi32(base, dp_u8s8(_mm256_setzero_si256(),
                                                      _mm256_set1_epi8((char)off), xv));
            __m256 sxv = _mm256_setzero_ps();
            if (has_min)  /* m*s spread over 8 lanes: s/8 is exact */
                sxv = _mm256_mul_ps(f16_bcast(xb + 2), _mm256_set1_ps(0.125f));
#pragma GCC unroll 8
            for (int r = 0; r < rm; r++) {
                __m256i p;
                if (is_q8(wt) && !KS_VNNI)
                    p = dp_u8s8(base, u[r], _mm256_sign_epi8(xv, sg[r]));
                else
                    p = dp_u8s8(base, u[r], xv);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dwv[r], dxv), acc[r][t]);
                if (has_min)
                    acc[r][t] = _mm256_fmadd_ps(mwv[r], sxv, acc[r][t]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < rm; r++)
#pragma GCC unroll 8
        for (int t = 0; t < rn; t++)
            res[r][t] = hsum_ps(acc[r][t]);
}

/* Decode (one token) over 32-element blocks: one row at a time, front to back. A thread's rows
 * are one contiguous range, so this is a single linear stream, which the hardware prefetchers
 * follow best -- interleaving four rows, as the prefill tiles do, streamed 10-40 % slower
 * (worst on short rows: 0.56 of the read bandwidth at 576 elements against 0.92) -- plus a
 * software prefetch KS_DEC_PF bytes ahead. One accumulator per row with the blocks in order
 * is ggml's own order, so decode logits stay equal to llama.cpp's. The offset terms depend
 * on the activations only and are computed once per token for all rows. */
/* Bytes ahead of the current block. Measured per table on the host it was tuned on: the
 * AVX-512 one on Zen 5 (28 GB/s per core) 4-8 KiB best; the AVX2 one on Zen 3 (about 10 GB/s
 * per core), streaming 143 MB of 576-element Q8_0 rows on two threads against a plain read
 * of the same size in alternation, 60 rounds: 0.73-0.78 of the read at 8 KiB, 0.79-0.84 at
 * 2 KiB (1536-element rows 0.78 -> 0.84; 2048-element Q8_0, Q4_K and Q6_K rows within noise),
 * and with no software prefetch 0.44 -- that host's hardware prefetchers alone fall far short. */
#define KS_DEC_PF (KS_VNNI ? 8192 : 2048)
#define KS_DEC_MAXB 1024   /* blocks whose offset terms fit the stack buffer (n <= 32768) */
/* Fewer tokens than this run row by row, not in tiles. The AVX2 table has no packed-panel
 * gemm, and its 3x4 tiles read three rows interleaved: on a Zen 3 host `bench/server.sh` at 8
 * clients (batches of up to 8 tokens) gave 191 tok/s with tiles from 6 tokens and 249 with
 * batches up to 8 row by row. K-quant rows keep the tiles from 6 tokens (their 2x8 tile
 * takes 8 tokens at once). */
#define KS_SMALL_BATCH (KS_VNNI ? 6 : 9)
#define KS_SMALL_BATCH_K 6
#define KS_RS_RR (KS_VNNI ? 4 : 2)  /* most row-split rows per pass for one token (rs_rows4
                                       with VNNI, rs_rows two) */

/* Requests every 64-byte line of [p, p + n) (a line may be requested twice when p is not
 * line-aligned; a request per element stride instead would skip lines when the stride is
 * over 64 bytes). */
KS_INLINE void
ks_prefetch_lines(const void *p, size_t n)
{
    for (size_t o = 0; o < n; o += 64)
        _mm_prefetch((const char *)p + o, _MM_HINT_T0);
}

/* A range's first KS_DEC_PF bytes, which the running prefetch never covers, are requested
 * all at once: otherwise each chunk of rows starts with a string of demand misses while
 * the prefetchers ramp up. */
KS_INLINE void
ks_prefetch_head(const uint8_t *p, size_t n)
{
    ks_prefetch_lines(p, n < KS_DEC_PF ? n : KS_DEC_PF);
}

KS_INLINE bool
is_blk32(enum ggml_type wt)
{
    return wt == GGML_TYPE_Q4_0 || wt == GGML_TYPE_Q4_1 || wt == GGML_TYPE_Q5_0 ||
           wt == GGML_TYPE_Q5_1 || wt == GGML_TYPE_Q8_0 || q_is_rs(wt);
}

#if KS_VNNI
/* Two consecutive 32-element blocks at once, 512 bits: block b0's codes in the low 256 bits,
 * b1's in the high ones, each half exactly what decode32 gives for its block. A 512-bit
 * vpdpbusd then yields both blocks' eight int32 lane sums, bit for bit the 256-bit ones. */
KS_INLINE __m512i
codes_nib64(const uint8_t *qs0, const uint8_t *qs1)
{
    __m512i v = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs0))),
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs1)), 1);
    v = _mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
}

KS_INLINE __m512i
bits5_64(const uint8_t *qh0, const uint8_t *qh1)
{
    uint32_t h0, h1;
    memcpy(&h0, qh0, 4);
    memcpy(&h1, qh1, 4);
    return _mm512_maskz_mov_epi8((__mmask64)((uint64_t)h1 << 32 | h0), _mm512_set1_epi8(0x10));
}

KS_INLINE __m512i
decode32x2(enum ggml_type wt, const uint8_t *b0, const uint8_t *b1)
{
    switch (wt) {
    case GGML_TYPE_Q4_0: return codes_nib64(b0 + 2, b1 + 2);
    case GGML_TYPE_Q4_1: return codes_nib64(b0 + 4, b1 + 4);
    case GGML_TYPE_Q5_0: return _mm512_or_si512(codes_nib64(b0 + 6, b1 + 6), bits5_64(b0 + 2, b1 + 2));
    case GGML_TYPE_Q5_1: return _mm512_or_si512(codes_nib64(b0 + 8, b1 + 8), bits5_64(b0 + 4, b1 + 4));
    default: /* Q8_0: q + 128 as unsigned */
        return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(load256(b0 + 2)),
                                                   load256(b1 + 2), 1),
                                _mm512_set1_epi8((char)0x80));
    }
}
#endif

/* What the decode loops read per token besides the weights, nt tokens of nb blocks each:
 * base[t * nb + b] = the block's offset correction, xd[...] = its scale as a float (an exact
 * conversion: one broadcast per block instead of a half-load, broadcast and conversion, which
 * matter at 30+ GB/s per core), and with VNNI x32 = the codes back to back, so that one
 * 512-bit load takes two blocks'. */
KS_INLINE void
gemv32_prep(enum ggml_type wt, int nt, const uint8_t *x, size_t xrb, int nb, __m256i *base,
            float *xd, uint8_t *x32)
{
    const bool has_min = wt == GGML_TYPE_Q4_1 || wt == GGML_TYPE_Q5_1;
    const int xbb = has_min ? (int)sizeof(struct blk_q8_1) : (int)sizeof(struct blk_q8_0);
    const int xoff = has_min ? 4 : 2;
    const int off = offset32(wt);
    for (int t = 0; t < nt; t++) {
        const uint8_t *xt = x + (size_t)t * xrb;
        if (off)  /* minus offset * (sum of each lane's four activations), as in tile32 */
            for (int b = 0; b < nb; b++)
                base[t * nb + b] = _mm256_sub_epi32(
                    _mm256_setzero_si256(),
                    dp_u8s8(_mm256_setzero_si256(), _mm256_set1_epi8((char)off),
                            load256(xt + (size_t)b * xbb + xoff)));
        for (int b = 0; b < nb; b++)
            xd[t * nb + b] = f16(rd16(xt + (size_t)b * xbb));
#if KS_VNNI
        for (int b = 0; b < nb; b++)
            memcpy(x32 + ((size_t)t * nb + b) * 32, xt + (size_t)b * xbb + xoff, 32);
#endif
    }
    (void)x32;
}

/* The results of rr rows x nt tokens of the decode passes below: row j, token t at
 * out[t * ld + j * ostep] (ostep 0: a last row computed twice lands twice in one place). */
KS_INLINE void
rows_out(int rr, int nt, __m256 acc[2][KS_SMALL_BATCH - 1], float *out, size_t ostep, size_t ld)
{
#pragma GCC unroll 2
    for (int j = 0; j < rr; j++)
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++)
            out[(size_t)t * ld + (size_t)j * ostep] = hsum_ps(acc[j][t]);
}

/* rr (1 or 2) rows of gemv32_t, at row and row + rstep, results at out and out + ostep (see
 * gemv32_t). Each row keeps its own accumulators and operations (two rows give two
 * independent multiply-add chains: see rs_rows), the activation loads are shared. */
KS_INLINE void
gemv32_rows(enum ggml_type wt, int nt, int rr, const uint8_t *row, size_t rstep, int nb,
            const uint8_t *x, size_t xrb, float *out, size_t ostep, size_t ld,
            const __m256i *base, const float *xd, const uint8_t *x32)
{
    enum { TMAX = KS_SMALL_BATCH - 1, RR = 2 };
    const int wbb = blk32_bytes(wt);
    const bool has_min = wt == GGML_TYPE_Q4_1 || wt == GGML_TYPE_Q5_1;
    const int xbb = has_min ? (int)sizeof(struct blk_q8_1) : (int)sizeof(struct blk_q8_0);
    const int xoff = has_min ? 4 : 2;
    const int off = offset32(wt);
    __m256 acc[RR][TMAX];
#pragma GCC unroll 2
    for (int j = 0; j < rr; j++)
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++)
            acc[j][t] = _mm256_setzero_ps();
    int b = 0;
#if KS_VNNI
    /* two blocks per step on 512 bits (decode, vpdpbusd and conversion once for both;
     * per block the same integer sums and then the same float steps in block order):
     * ~20 % less time per block on a Zen 5 core at 576-element Q8_0 rows */
    for (; b + 1 < nb; b += 2) {
        /* the prefetch sweeps the rows' bytes, a line at a time */
        ks_prefetch_lines(row + (size_t)rr * b * wbb + KS_DEC_PF, (size_t)(2 * rr * wbb));
        __m512i u[RR];
        __m256 dw0[RR], dw1[RR];
#pragma GCC unroll 2
        for (int j = 0; j < rr; j++) {
            const uint8_t *wb = row + (size_t)j * rstep + (size_t)b * wbb;
            u[j] = decode32x2(wt, wb, wb + wbb);
            dw0[j] = f16_bcast(wb);
            dw1[j] = f16_bcast(wb + wbb);
        }
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const uint8_t *xb = x + (size_t)t * xrb + (size_t)b * xbb;
            size_t i = (size_t)t * nb + b;
            __m512i xv = _mm512_loadu_si512(x32 + i * 32);
            __m512i p0 = off ? _mm512_loadu_si512(&base[i]) : _mm512_setzero_si512();
#pragma GCC unroll 2
            for (int j = 0; j < rr; j++) {
                const uint8_t *wb = row + (size_t)j * rstep + (size_t)b * wbb;
                __m512 pf = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(p0, u[j], xv));
                acc[j][t] = _mm256_fmadd_ps(_mm512_castps512_ps256(pf),
                                            _mm256_mul_ps(dw0[j], _mm256_set1_ps(xd[i])), acc[j][t]);
                if (has_min)
                    acc[j][t] = _mm256_fmadd_ps(
                        f16_bcast(wb + 2), _mm256_mul_ps(f16_bcast(xb + 2), _mm256_set1_ps(0.125f)),
                        acc[j][t]);
                acc[j][t] = _mm256_fmadd_ps(_mm512_extractf32x8_ps(pf, 1),
                                            _mm256_mul_ps(dw1[j], _mm256_set1_ps(xd[i + 1])),
                                            acc[j][t]);
                if (has_min)
                    acc[j][t] = _mm256_fmadd_ps(f16_bcast(wb + wbb + 2),
                                                _mm256_mul_ps(f16_bcast(xb + xbb + 2),
                                                              _mm256_set1_ps(0.125f)),
                                                acc[j][t]);
            }
        }
    }
#endif
    for (; b < nb; b++) {
        ks_prefetch_lines(row + (size_t)rr * b * wbb + KS_DEC_PF, (size_t)(rr * wbb));
        __m256i u[RR], sg[RR];
        __m256 dw[RR], mw[RR];
#pragma GCC unroll 2
        for (int j = 0; j < rr; j++)
            decode32(wt, row + (size_t)j * rstep + (size_t)b * wbb, &u[j], &sg[j], &dw[j], &mw[j]);
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const uint8_t *xb = x + (size_t)t * xrb + (size_t)b * xbb;
            __m256i xv = load256(xb + xoff);
            __m256i p0 = off ? base[t * nb + b] : _mm256_setzero_si256();
#pragma GCC unroll 2
            for (int j = 0; j < rr; j++) {
                __m256i p;
                if (wt == GGML_TYPE_Q8_0 && !KS_VNNI)
                    p = dp_u8s8(p0, u[j], _mm256_sign_epi8(xv, sg[j]));
                else
                    p = dp_u8s8(p0, u[j], xv);
                acc[j][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
                                            _mm256_mul_ps(dw[j], _mm256_set1_ps(xd[t * nb + b])),
                                            acc[j][t]);
                if (has_min)
                    acc[j][t] = _mm256_fmadd_ps(
                        mw[j], _mm256_mul_ps(f16_bcast(xb + 2), _mm256_set1_ps(0.125f)), acc[j][t]);
            }
        }
    }
    rows_out(rr, nt, acc, out, ostep, ld);
}

/* gemv32_t over row-split rows (quant.h): rr (1 or 2) rows at rows[j], results at outs[j]
 * (t * ld apart per token). Per row, first the products d_w * d_x of all its blocks for
 * every token (16 halves converted per instruction, into sc); then two blocks per step from
 * one 32-byte load of nibbles (Q8_0: 64 bytes of codes; VNNI: one 512-bit vpdpbusd for both)
 * and per block, row and token one multiply-add with its product broadcast from memory.
 * Each row keeps its own accumulator with gemv32_t's integer sums, products and multiply-adds
 * in block order, so results are bit for bit those of the GGUF rows. Why several rows per
 * pass: a row's multiply-adds form one dependency chain (two per pair of blocks, 4 cycles
 * each on Zen 5), and a long row is more instructions than the core's reorder window, so one
 * row at a time runs at the chain's latency; more rows give independent chains and share the
 * activation loads. Streaming 4096-element Q5_0 rows from memory on one Zen 5 core: 18-21
 * GB/s one row at a time, 22-26 two (TinyLlama-1.1B Q4_0 tg64 54.6 -> 71.4 tok/s); four
 * (512-bit tables only: the 256-bit one has 16 vector registers) on 576-element rows in L2:
 * 13.0 -> 11.6 ns per row, since done by rs_rows4 below (10.2 ns). With VNNI this loop runs
 * one token's rows two at a time only where rs_rows4 streams worse (see gemv32_t), and one
 * row per pass for batches of tokens. sc holds rr * nt * nb floats. */
KS_INLINE void
rs_rows(enum ggml_type wt, int nt, int rr, const uint8_t *const *rows, int nb,
        const uint8_t *x, size_t xrb, float *const *outs, size_t ld, const __m256i *base,
        const float *xd, const uint8_t *x32, float *sc)
{
    enum { TMAX = KS_SMALL_BATCH - 1, RR = 2 };
    const uint8_t *row = rows[0];
    const size_t qoff = q_rs_qs_off(wt, nb), hoff = 2 * (size_t)nb;
    const size_t bpb = (size_t)blk32_bytes(wt);  /* the prefetch sweeps the rows' bytes evenly */
    __m256 acc[RR][TMAX];
#pragma GCC unroll 4
    for (int j = 0; j < rr; j++)
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const uint8_t *d = rows[j];
            const float *xdt = xd + t * nb;
            float *sct = sc + (j * nt + t) * nb;
            int b = 0;
#if KS_VNNI
            for (; b + 16 <= nb; b += 16)
                _mm512_storeu_ps(sct + b, _mm512_mul_ps(_mm512_cvtph_ps(load256(d + 2 * b)),
                                                        _mm512_loadu_ps(xdt + b)));
#endif
            for (; b + 8 <= nb; b += 8)
                _mm256_storeu_ps(sct + b,
                                 _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + 2 * b))),
                                               _mm256_loadu_ps(xdt + b)));
            for (; b < nb; b++)
                sct[b] = f16(rd16(d + 2 * b)) * xdt[b];
            acc[j][t] = _mm256_setzero_ps();
        }
    for (int b = 0; b < nb; b += 2) {
        /* every line of the step's bytes; one request per row and step (2 * bpb apart)
         * skipped every 17th line of Q8_0 rows (68 bytes), each then a demand miss */
        ks_prefetch_lines(row + (size_t)rr * b * bpb + KS_DEC_PF, 2 * (size_t)rr * bpb);
#if KS_VNNI
        __m512i u[RR];
#pragma GCC unroll 4
        for (int j = 0; j < rr; j++) {
            const uint8_t *rj = rows[j];
            if (wt == KERN_TYPE_Q8_0_RS) {  /* two blocks' int8 codes, + 128 */
                u[j] = _mm512_xor_si512(_mm512_loadu_si512(rj + qoff + 32 * b),
                                        _mm512_set1_epi8((char)0x80));
                continue;
            }
            u[j] = _mm512_and_si512(
                _mm512_srlv_epi64(_mm512_broadcast_i64x4(load256(rj + qoff + 16 * b)),
                                  _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)),
                _mm512_set1_epi8(0x0f));
            if (wt == KERN_TYPE_Q5_0_RS) {  /* the fifth bits of both blocks as one mask */
                uint64_t h;
                memcpy(&h, rj + hoff + 4 * b, 8);
                u[j] = _mm512_mask_add_epi8(u[j], _cvtu64_mask64(h), u[j], _mm512_set1_epi8(0x10));
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            size_t i = (size_t)t * nb + b;
            __m512i p0 = _mm512_loadu_si512(&base[i]), xv = _mm512_loadu_si512(x32 + i * 32);
#pragma GCC unroll 4
            for (int j = 0; j < rr; j++) {
                const float *s = sc + (size_t)(j * nt + t) * nb + b;
                __m512 pf = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(p0, u[j], xv));
                acc[j][t] = _mm256_fmadd_ps(_mm512_castps512_ps256(pf), _mm256_broadcast_ss(s),
                                            acc[j][t]);
                acc[j][t] = _mm256_fmadd_ps(_mm512_extractf32x8_ps(pf, 1),
                                            _mm256_broadcast_ss(s + 1), acc[j][t]);
            }
        }
#else
        __m256i u0[RR], u1[RR], s0[RR], s1[RR];  /* codes; Q8_0's raw values (sign trick) */
#pragma GCC unroll 4
        for (int j = 0; j < rr; j++) {
            const uint8_t *rj = rows[j];
            if (wt == KERN_TYPE_Q8_0_RS) {
                codes_q8(load256(rj + qoff + 32 * b), &u0[j], &s0[j]);
                codes_q8(load256(rj + qoff + 32 * b + 32), &u1[j], &s1[j]);
                continue;
            }
            __m256i v = load256(rj + qoff + 16 * b);
            u0[j] = _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
            u1[j] = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f));
            if (wt == KERN_TYPE_Q5_0_RS) {
                u0[j] = _mm256_or_si256(u0[j], bits5_32(rj + hoff + 4 * b));
                u1[j] = _mm256_or_si256(u1[j], bits5_32(rj + hoff + 4 * b + 4));
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            size_t i = (size_t)t * nb + b;
            const uint8_t *xb = x + (size_t)t * xrb + (size_t)b * sizeof(struct blk_q8_0);
            __m256i x0 = load256(xb + 2), x1 = load256(xb + sizeof(struct blk_q8_0) + 2);
#pragma GCC unroll 4
            for (int j = 0; j < rr; j++) {
                const float *s = sc + (size_t)(j * nt + t) * nb + b;
                __m256i p0, p1;
                if (wt == KERN_TYPE_Q8_0_RS) {  /* offset 0: the sign trick instead */
                    p0 = dp_u8s8(_mm256_setzero_si256(), u0[j], _mm256_sign_epi8(x0, s0[j]));
                    p1 = dp_u8s8(_mm256_setzero_si256(), u1[j], _mm256_sign_epi8(x1, s1[j]));
                } else {
                    p0 = dp_u8s8(base[i], u0[j], x0);
                    p1 = dp_u8s8(base[i + 1], u1[j], x1);
                }
                acc[j][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_broadcast_ss(s), acc[j][t]);
                acc[j][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_broadcast_ss(s + 1),
                                            acc[j][t]);
            }
        }
#endif
    }
#pragma GCC unroll 4
    for (int j = 0; j < rr; j++)
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++)
            outs[j][(size_t)t * ld] = hsum_ps(acc[j][t]);
}

#if KS_VNNI
/* rs_rows for one token and four rows wrb bytes apart (wrb 0: one row four times), with the
 * same operations in the same order, so the same bits. Why a second copy: written over row
 * pointers, the general loop keeps four row pointers, four scale pointers and its masks
 * live, more than the 16 general registers, and GCC spills and reloads them every step
 * (~75 instructions per four-row step). Here every address is one of five moving pointers
 * plus a stride register or a constant (the rows' scale products sit KS_DEC_MAXB floats
 * apart): ~57 per step. One Zen 5 core, 1536 rows of 576 Q5_0 weights in L2: 11.3 -> 10.2 ns
 * per row; SmolLM2-135M Q4_K_M tg128 (its 576-wide matrices are Q5_0) x1.07. */
KS_INLINE void
rs_rows4(enum ggml_type wt, const uint8_t *row, size_t wrb, int nb, float *out, size_t ostep,
         const __m256i *base, const float *xd, const uint8_t *x32, float *sc)
{
    enum { SS = KS_DEC_MAXB };
    const size_t s1 = wrb, s2 = 2 * wrb, s3 = 3 * wrb, bpb = (size_t)blk32_bytes(wt);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const uint8_t *d = row + (size_t)j * wrb;
        float *scj = sc + j * SS;
        int b = 0;
        for (; b + 16 <= nb; b += 16)
            _mm512_storeu_ps(scj + b, _mm512_mul_ps(_mm512_cvtph_ps(load256(d + 2 * b)),
                                                    _mm512_loadu_ps(xd + b)));
        for (; b < nb; b++)
            scj[b] = f16(rd16(d + 2 * b)) * xd[b];
    }
    const uint8_t *q = row + q_rs_qs_off(wt, nb), *h = row + 2 * (size_t)nb;
    const size_t qstep = wt == KERN_TYPE_Q8_0_RS ? 64 : 32;  /* code bytes of two blocks */
    const uint8_t *pf = row + KS_DEC_PF;  /* sweeps the four rows' bytes, as in rs_rows */
    const __m512i shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
    const __m512i lo4 = _mm512_set1_epi8(0x0f), bit5 = _mm512_set1_epi8(0x10);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int b = 0; b < nb; b += 2) {
        ks_prefetch_lines(pf, 8 * bpb);  /* every line, as in rs_rows */
        pf += 8 * bpb;
        __m512i u0, u1, u2, u3;
        if (wt == KERN_TYPE_Q8_0_RS) {  /* int8 codes + 128 */
            const __m512i f = _mm512_set1_epi8((char)0x80);
            u0 = _mm512_xor_si512(_mm512_loadu_si512(q), f);
            u1 = _mm512_xor_si512(_mm512_loadu_si512(q + s1), f);
            u2 = _mm512_xor_si512(_mm512_loadu_si512(q + s2), f);
            u3 = _mm512_xor_si512(_mm512_loadu_si512(q + s3), f);
        } else {
            u0 = _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i64x4(load256(q)), shift), lo4);
            u1 = _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i64x4(load256(q + s1)), shift),
                                  lo4);
            u2 = _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i64x4(load256(q + s2)), shift),
                                  lo4);
            u3 = _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i64x4(load256(q + s3)), shift),
                                  lo4);
        }
        q += qstep;
        if (wt == KERN_TYPE_Q5_0_RS) {  /* the fifth bits of both blocks as one mask per row */
            uint64_t h0, h1, h2, h3;
            memcpy(&h0, h, 8);
            memcpy(&h1, h + s1, 8);
            memcpy(&h2, h + s2, 8);
            memcpy(&h3, h + s3, 8);
            h += 8;
            u0 = _mm512_mask_add_epi8(u0, _cvtu64_mask64(h0), u0, bit5);
            u1 = _mm512_mask_add_epi8(u1, _cvtu64_mask64(h1), u1, bit5);
            u2 = _mm512_mask_add_epi8(u2, _cvtu64_mask64(h2), u2, bit5);
            u3 = _mm512_mask_add_epi8(u3, _cvtu64_mask64(h3), u3, bit5);
        }
        __m512i p0 = _mm512_loadu_si512(&base[b]), xv = _mm512_loadu_si512(x32 + (size_t)b * 32);
        __m512 f0 = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(p0, u0, xv));
        __m512 f1 = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(p0, u1, xv));
        __m512 f2 = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(p0, u2, xv));
        __m512 f3 = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(p0, u3, xv));
        const float *s = sc + b;
        a0 = _mm256_fmadd_ps(_mm512_castps512_ps256(f0), _mm256_broadcast_ss(s), a0);
        a1 = _mm256_fmadd_ps(_mm512_castps512_ps256(f1), _mm256_broadcast_ss(s + SS), a1);
        a2 = _mm256_fmadd_ps(_mm512_castps512_ps256(f2), _mm256_broadcast_ss(s + 2 * SS), a2);
        a3 = _mm256_fmadd_ps(_mm512_castps512_ps256(f3), _mm256_broadcast_ss(s + 3 * SS), a3);
        a0 = _mm256_fmadd_ps(_mm512_extractf32x8_ps(f0, 1), _mm256_broadcast_ss(s + 1), a0);
        a1 = _mm256_fmadd_ps(_mm512_extractf32x8_ps(f1, 1), _mm256_broadcast_ss(s + SS + 1), a1);
        a2 = _mm256_fmadd_ps(_mm512_extractf32x8_ps(f2, 1), _mm256_broadcast_ss(s + 2 * SS + 1),
                             a2);
        a3 = _mm256_fmadd_ps(_mm512_extractf32x8_ps(f3, 1), _mm256_broadcast_ss(s + 3 * SS + 1),
                             a3);
    }
    out[0] = hsum_ps(a0);
    out[ostep] = hsum_ps(a1);
    out[2 * ostep] = hsum_ps(a2);
    out[3 * ostep] = hsum_ps(a3);
}
#endif

/* nt activation rows (x, xrb bytes apart) against rows [r0, r1), in either layout: each
 * weight block is decoded once for all tokens, and per token the operations are exactly the
 * single-token ones, so a token gets the same bits in any batch. One token goes two rows per
 * pass (independent multiply-add chains; a short last group repeats its last row, computed
 * again into the same output), with VNNI four for row-split rows while four rows span at most
 * KS_DEC_PF bytes (rs_rows4, a short last group overlapping the one before). Why not longer
 * ones: rs_rows4's prefetch sweeps the four rows' bytes in order, which runs a group ahead
 * only while they are that short, and four streams per core (a prefetch stream per row
 * instead) read no better than two. One token in one process, the same bytes decoded both
 * ways alternately: TinyLlama-1.1B Q4_0 (5632-element rows) x1.03-1.04 two rows against
 * four, its Q8_0 (2048, 5632) x0.91-0.94 four row-split rows against two GGUF ones, x0.99-1.05
 * (median 1.03 of eight) two row-split rows. Several tokens already give
 * each row one chain per token and go row by row, which also keeps the number of loop bodies
 * the compiler emits in check. base and xd hold nt * nb entries, sc (row-split only)
 * KS_RS_RR * nt * nb. */
KS_INLINE void
gemv32_t(enum ggml_type wt, int nt, const uint8_t *w, size_t wrb, int nb, int r0, int r1,
         const uint8_t *x, size_t xrb, float *out, size_t ld, __m256i *base, float *xd,
         uint8_t *x32, float *sc)
{
    gemv32_prep(wt, nt, x, xrb, nb, base, xd, x32);
    ks_prefetch_head(w + (size_t)r0 * wrb, (size_t)(r1 - r0) * wrb);
    if (q_is_rs(wt)) {
#if KS_VNNI
        if (nt == 1 && 4 * wrb <= KS_DEC_PF) {
            if (r1 - r0 < 4) {  /* each row alone, computed four times into one place */
                for (int r = r0; r < r1; r++)
                    rs_rows4(wt, w + (size_t)r * wrb, 0, nb, out + r, 0, base, xd, x32, sc);
                return;
            }
            for (int r = r0; r < r1; r += 4) {  /* a short last group overlaps the one before */
                int g = r + 4 <= r1 ? r : r1 - 4;
                rs_rows4(wt, w + (size_t)g * wrb, wrb, nb, out + g, 1, base, xd, x32, sc);
            }
            return;
        }
#endif
        const int rr = nt == 1 ? 2 : 1;
        for (int r = r0; r < r1; r += rr) {
            const uint8_t *rows[2];
            float *outs[2];
#pragma GCC unroll 2
            for (int j = 0; j < rr; j++) {
                int rj = r + j < r1 ? r + j : r1 - 1;  /* past the end: the last row again */
                rows[j] = w + (size_t)rj * wrb;
                outs[j] = out + rj;
            }
            rs_rows(wt, nt, rr, rows, nb, x, xrb, outs, ld, base, xd, x32, sc);
        }
        return;
    }
    const int rr = nt == 1 ? 2 : 1;
    for (int r = r0; r < r1; r += rr) {
        const uint8_t *row = w + (size_t)r * wrb;
        bool two = r + 1 < r1;
        size_t rstep = two ? wrb : 0, ostep = two ? 1 : 0;
        gemv32_rows(wt, nt, rr, row, rstep, nb, x, xrb, out + r, ostep, ld, base, xd, x32);
    }
}

KS_INLINE void
gemv32_n(enum ggml_type wt, int nt, const uint8_t *w, size_t wrb, int nb, int r0, int r1,
         const uint8_t *x, size_t xrb, float *out, size_t ld, __m256i *base, float *xd,
         uint8_t *x32, float *sc)
{
    switch (wt) {
    case KERN_TYPE_Q4_0_RS:
        gemv32_t(KERN_TYPE_Q4_0_RS, nt, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc);
        break;
    case KERN_TYPE_Q5_0_RS:
        gemv32_t(KERN_TYPE_Q5_0_RS, nt, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc);
        break;
    case KERN_TYPE_Q8_0_RS:
        gemv32_t(KERN_TYPE_Q8_0_RS, nt, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc);
        break;
    case GGML_TYPE_Q4_0:
        gemv32_t(GGML_TYPE_Q4_0, nt, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc);
        break;
    case GGML_TYPE_Q4_1:
        gemv32_t(GGML_TYPE_Q4_1, nt, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc);
        break;
    case GGML_TYPE_Q5_0:
        gemv32_t(GGML_TYPE_Q5_0, nt, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc);
        break;
    case GGML_TYPE_Q5_1:
        gemv32_t(GGML_TYPE_Q5_1, nt, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc);
        break;
    case GGML_TYPE_Q8_0:
        gemv32_t(GGML_TYPE_Q8_0, nt, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc);
        break;
    default: break;
    }
}

/* out[t * ld + r] = rows . x_t for rows [r0, r1) and nt < KS_SMALL_BATCH activation rows,
 * nt * nb <= KS_DEC_MAXB. */
static __attribute__((noinline)) void
gemv32(enum ggml_type wt, int nt, const uint8_t *w, size_t wrb, int nb, int r0, int r1,
       const uint8_t *x, size_t xrb, float *out, size_t ld)
{
    __m256i base[KS_DEC_MAXB];
    float xd[KS_DEC_MAXB];
    _Alignas(64) uint8_t x32[KS_VNNI ? KS_DEC_MAXB * 32 : 1];
    float sc[KS_RS_RR * KS_DEC_MAXB];  /* row-split rows: each block's scale product per row */
    switch (nt) {
    case 1: gemv32_n(wt, 1, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc); break;
    case 2: gemv32_n(wt, 2, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc); break;
    case 3: gemv32_n(wt, 3, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc); break;
    case 4: gemv32_n(wt, 4, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc); break;
    case 5: gemv32_n(wt, 5, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc); break;
#if !KS_VNNI
    case 6: gemv32_n(wt, 6, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc); break;
    case 7: gemv32_n(wt, 7, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc); break;
    case 8: gemv32_n(wt, 8, w, wrb, nb, r0, r1, x, xrb, out, ld, base, xd, x32, sc); break;
#endif
    default: break;
    }
}

/* ===== Tiles over K-quant super-blocks (Q4_K Q5_K Q6_K) ================================== */

/* The 8 scales and 8 mins of a Q4_K/Q5_K super-block, each as 8 bytes (6-bit values). */
KS_INLINE void
k_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8])
{
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = b & 0x3f3f3f3fu;
    uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 6) & 0x03030303u) << 4;
    uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 6) & 0x03030303u) << 4;
    memcpy(sc, &sc_lo, 4);
    memcpy(sc + 4, &sc_hi, 4);
    memcpy(mn, &mn_lo, 4);
    memcpy(mn + 4, &mn_hi, 4);
}

/* Codes of chunk c (elements 32c..32c+31) of a Q4_K/Q5_K/Q6_K super-block. */
KS_INLINE __m256i
codes_k(enum ggml_type wt, const uint8_t *b, int c)
{
    const __m256i lo4 = _mm256_set1_epi8(0x0f);
    if (wt == GGML_TYPE_Q6_K) {
        const struct blk_q6_k *q = (const struct blk_q6_k *)b;
        int half = c / 4, k = c % 4;
        __m256i l = load256(q->ql + 64 * half + 32 * (k & 1));
        __m256i h = load256(q->qh + 32 * half);
        const __m256i m30 = _mm256_set1_epi8(0x30);
        __m256i lo = (k < 2) ? _mm256_and_si256(l, lo4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), lo4);
        __m256i hi;
        switch (k) {
        case 0: hi = _mm256_slli_epi16(h, 4); break;
        case 1: hi = _mm256_slli_epi16(h, 2); break;
        case 2: hi = h; break;
        default: hi = _mm256_srli_epi16(h, 2); break;
        }
        return _mm256_or_si256(lo, _mm256_and_si256(hi, m30));
    }
    const uint8_t *qs = wt == GGML_TYPE_Q4_K ? ((const struct blk_q4_k *)b)->qs
                                             : ((const struct blk_q5_k *)b)->qs;
    __m256i q = load256(qs + 32 * (c / 2));
    __m256i u = (c & 1) ? _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4) : _mm256_and_si256(q, lo4);
    if (wt == GGML_TYPE_Q5_K) {
        __m256i h = load256(((const struct blk_q5_k *)b)->qh);
        /* bring bit c of each byte to bit 4; 16-bit shifts of at most 4 never move a bit
         * across the byte boundary into position 4 */
        h = c <= 4 ? _mm256_slli_epi16(h, 4 - c) : _mm256_srli_epi16(h, c - 4);
        u = _mm256_or_si256(u, _mm256_and_si256(h, _mm256_set1_epi8(0x10)));
    }
    return u;
}

KS_INLINE int
blkk_bytes(enum ggml_type wt)
{
    return wt == GGML_TYPE_Q4_K ? (int)sizeof(struct blk_q4_k)
         : wt == GGML_TYPE_Q5_K ? (int)sizeof(struct blk_q5_k) : (int)sizeof(struct blk_q6_k);
}

KS_INLINE void
tilek(enum ggml_type wt, const uint8_t *const *w, const uint8_t *const *pf,
      const uint8_t *const *x, int nb, int rm, int rn, float res[KS_RMAX][KS_RNMAX])
{
    enum { RMAX = KS_RMAX };
    const int wbb = blkk_bytes(wt);
    const bool q6 = wt == GGML_TYPE_Q6_K;
    __m256 acc[RMAX][KS_RNMAX];
#pragma GCC unroll 8
    for (int r = 0; r < rm; r++)
#pragma GCC unroll 8
        for (int t = 0; t < rn; t++)
            acc[r][t] = _mm256_setzero_ps();

    for (int b = 0; b < nb; b++) {
        __m256i iacc[RMAX][KS_RNMAX];
        __m256i scb[RMAX];     /* Q4_K/Q5_K: the 8 scales as int16, in both 128-bit lanes;
                                  Q6_K: scales 0-7 in both lanes */
        __m256i scb2[RMAX];    /* Q6_K: scales 8-15 in both lanes */
        __m256i mins16[RMAX];  /* Q4_K/Q5_K: mins, each twice; Q6_K: the 16 scales */
        __m256 dwv[RMAX], dminv[RMAX];
        const uint8_t *wb[RMAX];
#pragma GCC unroll 8
        for (int r = 0; r < rm; r++) {
            wb[r] = w[r] + (size_t)b * wbb;
            if (pf)
                ks_prefetch_lines(pf[r] + (size_t)b * wbb, (size_t)wbb);
            if (q6) {
                const struct blk_q6_k *q = (const struct blk_q6_k *)wb[r];
                __m128i s8 = _mm_loadu_si128((const __m128i *)q->scales);
                __m256i s16 = _mm256_cvtepi8_epi16(s8);
                mins16[r] = s16;
                scb[r] = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(s16));
                scb2[r] = _mm256_broadcastsi128_si256(_mm256_extracti128_si256(s16, 1));
                dwv[r] = _mm256_set1_ps(f16(q->d));
                dminv[r] = _mm256_setzero_ps();
            } else {
                const struct blk_q4_k *q = (const struct blk_q4_k *)wb[r];  /* same head as Q5_K */
                uint8_t sc[8], mn[8];
                k_scales(q->scales, sc, mn);
                uint64_t s8, m8;
                memcpy(&s8, sc, 8);
                memcpy(&m8, mn, 8);
                scb[r] = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)s8)));
                scb2[r] = scb[r];
                __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m8));
                mins16[r] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(m16, m16)),
                                                    _mm_unpackhi_epi16(m16, m16), 1);
                dwv[r] = _mm256_set1_ps(f16(q->d));
                dminv[r] = _mm256_set1_ps(f16(q->dmin));
            }
#pragma GCC unroll 8
            for (int t = 0; t < rn; t++)
                iacc[r][t] = _mm256_setzero_si256();
        }
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            __m256i u[RMAX], s16[RMAX];
            /* byte shuffle that spreads the int16 scale(s) of chunk c over the vector */
            __m256i pick;
            if (q6)
                pick = _mm256_setr_epi8(4 * (c & 3), 4 * (c & 3) + 1, 4 * (c & 3), 4 * (c & 3) + 1,
                    4 * (c & 3), 4 * (c & 3) + 1, 4 * (c & 3), 4 * (c & 3) + 1,
                    4 * (c & 3), 4 * (c & 3) + 1, 4 * (c & 3), 4 * (c & 3) + 1,
                    4 * (c & 3), 4 * (c & 3) + 1, 4 * (c & 3), 4 * (c & 3) + 1,
                    4 * (c & 3) + 2, 4 * (c & 3) + 3, 4 * (c & 3) + 2, 4 * (c & 3) + 3,
                    4 * (c & 3) + 2, 4 * (c & 3) + 3, 4 * (c & 3) + 2, 4 * (c & 3) + 3,
                    4 * (c & 3) + 2, 4 * (c & 3) + 3, 4 * (c & 3) + 2, 4 * (c & 3) + 3,
                    4 * (c & 3) + 2, 4 * (c & 3) + 3, 4 * (c & 3) + 2, 4 * (c & 3) + 3);
            else
                pick = _mm256_set1_epi16((short)((2 * c + 1) << 8 | 2 * c));
#pragma GCC unroll 8
            for (int r = 0; r < rm; r++) {
                u[r] = codes_k(wt, wb[r], c);
                s16[r] = _mm256_shuffle_epi8(q6 && c >= 4 ? scb2[r] : scb[r], pick);
            }
#pragma GCC unroll 8
            for (int t = 0; t < rn; t++) {
                __m256i xv = load256(((const struct blk_q8_k *)x[t])[b].qs + 32 * c);
#pragma GCC unroll 8
                for (int r = 0; r < rm; r++)
                    iacc[r][t] = dp_u8s8_scaled(iacc[r][t], u[r], xv, s16[r]);
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < rn; t++) {
            const struct blk_q8_k *xb = (const struct blk_q8_k *)x[t] + b;
            __m256 dxv = _mm256_set1_ps(xb->d);
            __m256i bs = load256(xb->bsums);
#pragma GCC unroll 8
            for (int r = 0; r < rm; r++) {
                __m256i mterm = _mm256_madd_epi16(mins16[r], bs);
                if (q6) {  /* codes are value + 32: remove 32 * sum(scale * bsum) */
                    __m256i i = _mm256_sub_epi32(iacc[r][t], _mm256_slli_epi32(mterm, 5));
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(dwv[r], dxv), acc[r][t]);
                } else {
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[r][t]), _mm256_mul_ps(dwv[r], dxv),
                                                acc[r][t]);
                    acc[r][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mterm), _mm256_mul_ps(dminv[r], dxv),
                                                 acc[r][t]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < rm; r++)
#pragma GCC unroll 8
        for (int t = 0; t < rn; t++)
            res[r][t] = hsum_ps(acc[r][t]);
}

#if KS_VNNI
#define KS_KMAXB 128  /* super-blocks whose scales tilek_dec unpacks at a time (32768 elements) */

/* The 8 scales and 8 mins of each of a Q4_K/Q5_K row's super-blocks 0..nb-1 (k_scales' bytes:
 * 16 per super-block, scales first), four super-blocks per 512-bit step: each 128-bit lane
 * holds one super-block's 12 packed bytes as words a, b, c; the lane becomes [a & 0x3f..,
 * (c & 0x0f..) | (a >> 2) & 0x30.., b & 0x3f.., (c >> 4) & 0x0f.. | (b >> 2) & 0x30..], the
 * same bit operations k_scales does with scalars (~20 instructions per super-block there,
 * ~3 here). */
KS_INLINE void
k_scales_row(const uint8_t *row, int wbb, int nb, uint8_t *smn)
{
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        const uint8_t *q = row + (size_t)b * wbb + 4;  /* the 12 bytes after d and dmin */
        __m512i raw = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)q));
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)(q + wbb)), 1);
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)(q + 2 * wbb)), 2);
        raw = _mm512_inserti32x4(raw, _mm_loadu_si128((const __m128i *)(q + 3 * wbb)), 3);
        /* [a, c, b, c >> 4] masked to the low bits; [-, a, -, b] >> 2 for the high ones */
        __m512i lo = _mm512_srlv_epi32(_mm512_shuffle_epi32(raw, (_MM_PERM_ENUM)0x98),
                                       _mm512_set4_epi32(4, 0, 0, 0));
        lo = _mm512_and_si512(lo, _mm512_set4_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
        __m512i hi = _mm512_srli_epi32(_mm512_shuffle_epi32(raw, (_MM_PERM_ENUM)0x40), 2);
        hi = _mm512_and_si512(hi, _mm512_set4_epi32(0x30303030, 0, 0x30303030, 0));
        _mm512_storeu_si512(smn + 16 * (size_t)b, _mm512_or_si512(lo, hi));
    }
    for (; b < nb; b++)
        k_scales(row + (size_t)b * wbb + 4, smn + 16 * (size_t)b, smn + 16 * (size_t)b + 8);
}

/* Decode (one token) over K-quant super-blocks with 512-bit vectors: two 32-element chunks per
 * instruction, so a super-block takes 4 maddubs + 4 vpdpwssd per row instead of 8 + 8 (decode
 * of K-quants was compute-bound at about two thirds of a core's memory bandwidth). Lanes 0-7
 * accumulate the even chunks and lanes 8-15 the odd ones with the same per-lane products as
 * tilek; adding the two halves at the end of a super-block gives exactly tilek's 8 integer
 * lanes, and the float steps after it are tilek's, so results are identical. */
KS_INLINE void
tilek_dec(enum ggml_type wt, const uint8_t *const *w, const uint8_t *const *pf,
          const uint8_t *x, int nb, int rm, float res[KS_RMAX][KS_RNMAX])
{
    const int wbb = blkk_bytes(wt);
    const bool q6 = wt == GGML_TYPE_Q6_K;
    /* word permutations spreading the int16 scale(s) of chunks 2p and 2p+1 over a vector */
    __m512i idx[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        if (q6)  /* 16-element scales 4p .. 4p+3, eight words each */
            idx[p] = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_inserti128_si256(
                    _mm256_castsi128_si256(_mm_set1_epi16((short)(4 * p))),
                    _mm_set1_epi16((short)(4 * p + 1)), 1)),
                _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)(4 * p + 2))),
                                        _mm_set1_epi16((short)(4 * p + 3)), 1), 1);
        else     /* 32-element scales 2p, 2p+1, sixteen words each: a byte shuffle within
                  * each 128-bit lane of the 8 scale bytes (copied to every lane) picks byte
                  * 2p or 2p + 1 and a zero above it, which costs less than a word permute
                  * across the register */
            idx[p] = _mm512_inserti64x4(_mm512_set1_epi16((short)(0x8000 | (2 * p))),
                                        _mm256_set1_epi16((short)(0x8000 | (2 * p + 1))), 1);
    }
    __m256 acc[KS_RMAX];
#pragma GCC unroll 4
    for (int r = 0; r < rm; r++)
        acc[r] = _mm256_setzero_ps();
    /* Q4_K/Q5_K: the scales and mins of the next KS_KMAXB super-blocks, unpacked up front */
    _Alignas(64) uint8_t smn[KS_RMAX][KS_KMAXB * 16];
    for (int b = 0; b < nb; b++) {
        if (!q6 && b % KS_KMAXB == 0)
            for (int r = 0; r < rm; r++)
                k_scales_row(w[r] + (size_t)b * wbb, wbb, nb - b < KS_KMAXB ? nb - b : KS_KMAXB,
                             smn[r]);
        const struct blk_q8_k *xb = (const struct blk_q8_k *)x + b;
        __m256i bs = load256(xb->bsums);
        __m512i xv[4];  /* the activations, loaded once for the tile's rows */
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++)
            xv[p] = _mm512_loadu_si512((const void *)(xb->qs + 64 * p));
#pragma GCC unroll 4
        for (int r = 0; r < rm; r++) {
            const uint8_t *wb = w[r] + (size_t)b * wbb;
            if (pf)
                ks_prefetch_lines(pf[r] + (size_t)b * wbb, (size_t)wbb);
            __m512i sc;        /* Q6_K: int16 scales in the low words; Q4_K/Q5_K: the 8
                                  scale bytes (and the mins) in every 128-bit lane */
            __m256i mins16;    /* Q4_K/Q5_K: each min times the sum of its 32 activations;
                                  Q6_K: the 16 scales */
            __m256 dwv, dminv;
            if (q6) {
                const struct blk_q6_k *q = (const struct blk_q6_k *)wb;
                __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)q->scales));
                sc = _mm512_castsi256_si512(s16);
                mins16 = s16;
                /* d * dx as one scalar product, then broadcast: the same bits as the vector
                 * product of the broadcasts, in fewer instructions */
                __m128 dd = _mm_mul_ss(_mm_cvtph_ps(_mm_cvtsi32_si128(rd16((const uint8_t *)&q->d))),
                                       _mm_set_ss(xb->d));
                dwv = _mm256_broadcastss_ps(dd);
                dminv = _mm256_setzero_ps();
            } else {
                const uint8_t *sm = smn[r] + 16 * (size_t)(b % KS_KMAXB);
                sc = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)sm));
                /* min j times the sum of its 32 activations (two bsums), as madd of the mins
                 * each twice against the 16 bsums gave */
                __m256i m32 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sm + 8)));
                mins16 = _mm256_mullo_epi32(m32, _mm256_madd_epi16(bs, _mm256_set1_epi16(1)));
                /* d * dx and dmin * dx in two lanes (d and dmin are adjacent halves), each
                 * then broadcast: the bits of the broadcasts' vector products */
                uint32_t dm;
                memcpy(&dm, wb, 4);
                __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)dm)), _mm_set1_ps(xb->d));
                dwv = _mm256_broadcastss_ps(dd);
                dminv = _mm256_permutexvar_ps(_mm256_set1_epi32(1), _mm256_castps128_ps256(dd));
            }
            __m512i iacc = _mm512_setzero_si512();
            /* Q4_K: chunk 2p is the low nibbles of 32 bytes and chunk 2p+1 the high ones, so
             * one broadcast load, a per-half word shift (0 | 4) and a mask give both */
            const __m512i nib_shift = _mm512_inserti64x4(_mm512_setzero_si512(),
                                                         _mm256_set1_epi16(4), 1);
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++) {
                __m512i u;
                if (wt == GGML_TYPE_Q4_K)
                    u = _mm512_and_si512(
                        _mm512_srlv_epi16(_mm512_broadcast_i64x4(load256(
                                              ((const struct blk_q4_k *)wb)->qs + 32 * p)),
                                          nib_shift),
                        _mm512_set1_epi8(0x0f));
                else
                    u = _mm512_inserti64x4(_mm512_castsi256_si512(codes_k(wt, wb, 2 * p)),
                                           codes_k(wt, wb, 2 * p + 1), 1);
                iacc = _mm512_dpwssd_epi32(iacc, _mm512_maddubs_epi16(u, xv[p]),
                                           q6 ? _mm512_permutexvar_epi16(idx[p], sc)
                                              : _mm512_shuffle_epi8(sc, idx[p]));
            }
            __m256i i8 = _mm256_add_epi32(_mm512_castsi512_si256(iacc),
                                          _mm512_extracti64x4_epi64(iacc, 1));
            __m256i mterm = q6 ? _mm256_madd_epi16(mins16, bs) : mins16;
            if (q6) {  /* codes are value + 32: remove 32 * sum(scale * bsum) */
                __m256i i = _mm256_sub_epi32(i8, _mm256_slli_epi32(mterm, 5));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), dwv, acc[r]);
            } else {
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i8), dwv, acc[r]);
                acc[r] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mterm), dminv, acc[r]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < rm; r++)
        res[r][0] = hsum_ps(acc[r]);
}
#endif

/* K-quant decode, one row at a time for the same reason as gemv32: one linear stream, the
 * prefetch running KS_DEC_PF bytes ahead of the current super-block. Per row the arithmetic
 * is tilek_dec's (512-bit) or tilek's (256-bit), so results do not change. Two rows per pass
 * compute faster from L2 but stream worse: one Zen 3 core, 2048-element Q4_K rows, one row
 * 85 ns in L2 / 78 ns from memory, two 71 / 95, the old four-row tile 60 / 119. */
static __attribute__((noinline)) void
gemvk(enum ggml_type wt, const uint8_t *w, size_t wrb, int nb, int r0, int r1, const uint8_t *x,
      float *out)
{
    float res[KS_RMAX][KS_RNMAX];
#if !KS_VNNI
    const uint8_t *xs[1] = {x};
#endif
    ks_prefetch_head(w + (size_t)r0 * wrb, (size_t)(r1 - r0) * wrb);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row[1] = {w + (size_t)r * wrb};
        const uint8_t *pf[1] = {row[0] + KS_DEC_PF};
        switch (wt) {
#if KS_VNNI
        case GGML_TYPE_Q4_K: tilek_dec(GGML_TYPE_Q4_K, row, pf, x, nb, 1, res); break;
        case GGML_TYPE_Q5_K: tilek_dec(GGML_TYPE_Q5_K, row, pf, x, nb, 1, res); break;
        case GGML_TYPE_Q6_K: tilek_dec(GGML_TYPE_Q6_K, row, pf, x, nb, 1, res); break;
#else
        case GGML_TYPE_Q4_K: tilek(GGML_TYPE_Q4_K, row, pf, xs, nb, 1, 1, res); break;
        case GGML_TYPE_Q5_K: tilek(GGML_TYPE_Q5_K, row, pf, xs, nb, 1, 1, res); break;
        case GGML_TYPE_Q6_K: tilek(GGML_TYPE_Q6_K, row, pf, xs, nb, 1, 1, res); break;
#endif
        default: return;
        }
        out[r] = res[0][0];
    }
}

/* ===== Tiles over float rows (F32 F16 BF16) ============================================== */

KS_INLINE __m256
load8f(enum ggml_type t, const uint8_t *p)
{
    if (t == GGML_TYPE_F32)
        return _mm256_loadu_ps((const float *)p);
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (t == GGML_TYPE_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

KS_INLINE float
load1f(enum ggml_type t, const uint8_t *p, int j)
{
    if (t == GGML_TYPE_F32) {
        float v;
        memcpy(&v, p + 4 * (size_t)j, 4);
        return v;
    }
    uint16_t h = rd16(p + 2 * (size_t)j);
    return t == GGML_TYPE_F16 ? f16(h) : q_bf16_to_f32(h);
}

KS_INLINE void
tilef(enum ggml_type wt, const uint8_t *const *w, const uint8_t *const *pf,
      const uint8_t *const *x, int n, int rm, int rn, float res[KS_RMAX][KS_RNMAX])
{
    enum { RMAX = KS_RMAX };
    const int es = wt == GGML_TYPE_F32 ? 4 : 2;
    (void)pf;  /* long float rows train the hardware prefetchers on their own */
    __m256 acc[RMAX][KS_RNMAX];
#pragma GCC unroll 8
    for (int r = 0; r < rm; r++)
#pragma GCC unroll 8
        for (int t = 0; t < rn; t++)
            acc[r][t] = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 wv[RMAX];
#pragma GCC unroll 8
        for (int r = 0; r < rm; r++) {
            wv[r] = load8f(wt, w[r] + (size_t)j * es);
        }
#pragma GCC unroll 8
        for (int t = 0; t < rn; t++) {
            __m256 xv = load8f(wt, x[t] + (size_t)j * es);
#pragma GCC unroll 8
            for (int r = 0; r < rm; r++)
                acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < rm; r++)
#pragma GCC unroll 8
        for (int t = 0; t < rn; t++) {
            float s = hsum_ps(acc[r][t]);
            for (int k = j; k < n; k++)
                s += load1f(wt, w[r], k) * load1f(wt, x[t], k);
            res[r][t] = s;
        }
}

/* ===== gemm ============================================================================= */

/* One tile of rm rows starting at r and rn tokens starting at t0, clamped at the edges. */
KS_INLINE void
run_tile(enum ggml_type wt, const uint8_t *wbase, size_t wrb, int n, int r, int r1,
         const uint8_t *xbase, size_t xrb, int t0, int n_tok, float *out, int ld, int rm, int rn)
{
    enum { RMAX = KS_RMAX };
    const uint8_t *w[RMAX], *x[KS_RNMAX], *pfr[RMAX];
    const uint8_t *const *pf = NULL;
    int ri[RMAX], ti[KS_RNMAX];
    float res[RMAX][KS_RNMAX];
#pragma GCC unroll 8
    for (int i = 0; i < rm; i++) {
        ri[i] = r + i < r1 ? r + i : r1 - 1;
        w[i] = wbase + (size_t)ri[i] * wrb;
        /* decode streams each row once: fetch the next tile's rows while this one computes,
         * since the hardware prefetchers restart on every short row */
        int rp = r + rm + i < r1 ? r + rm + i : r1 - 1;
        pfr[i] = wbase + (size_t)rp * wrb;
    }
    if (rn == 1)
        pf = pfr;
#pragma GCC unroll 8
    for (int i = 0; i < rn; i++) {
        ti[i] = t0 + i < n_tok ? t0 + i : n_tok - 1;
        x[i] = xbase + (size_t)ti[i] * xrb;
    }
    switch (wt) {
    case GGML_TYPE_Q4_0: tile32(GGML_TYPE_Q4_0, w, pf, x, n / 32, rm, rn, res); break;
    case GGML_TYPE_Q4_1: tile32(GGML_TYPE_Q4_1, w, pf, x, n / 32, rm, rn, res); break;
    case GGML_TYPE_Q5_0: tile32(GGML_TYPE_Q5_0, w, pf, x, n / 32, rm, rn, res); break;
    case GGML_TYPE_Q5_1: tile32(GGML_TYPE_Q5_1, w, pf, x, n / 32, rm, rn, res); break;
    case GGML_TYPE_Q8_0: tile32(GGML_TYPE_Q8_0, w, pf, x, n / 32, rm, rn, res); break;
    case KERN_TYPE_Q4_0_RS: tile32(KERN_TYPE_Q4_0_RS, w, pf, x, n / 32, rm, rn, res); break;
    case KERN_TYPE_Q5_0_RS: tile32(KERN_TYPE_Q5_0_RS, w, pf, x, n / 32, rm, rn, res); break;
    case KERN_TYPE_Q8_0_RS: tile32(KERN_TYPE_Q8_0_RS, w, pf, x, n / 32, rm, rn, res); break;
#if KS_VNNI
    case GGML_TYPE_Q4_K:
        if (rn == 1)
            tilek_dec(GGML_TYPE_Q4_K, w, pf, x[0], n / QK_K, rm, res);
        else
            tilek(GGML_TYPE_Q4_K, w, pf, x, n / QK_K, rm, rn, res);
        break;
    case GGML_TYPE_Q5_K:
        if (rn == 1)
            tilek_dec(GGML_TYPE_Q5_K, w, pf, x[0], n / QK_K, rm, res);
        else
            tilek(GGML_TYPE_Q5_K, w, pf, x, n / QK_K, rm, rn, res);
        break;
    case GGML_TYPE_Q6_K:
        if (rn == 1)
            tilek_dec(GGML_TYPE_Q6_K, w, pf, x[0], n / QK_K, rm, res);
        else
            tilek(GGML_TYPE_Q6_K, w, pf, x, n / QK_K, rm, rn, res);
        break;
#else
    case GGML_TYPE_Q4_K: tilek(GGML_TYPE_Q4_K, w, pf, x, n / QK_K, rm, rn, res); break;
    case GGML_TYPE_Q5_K: tilek(GGML_TYPE_Q5_K, w, pf, x, n / QK_K, rm, rn, res); break;
    case GGML_TYPE_Q6_K: tilek(GGML_TYPE_Q6_K, w, pf, x, n / QK_K, rm, rn, res); break;
#endif
    case GGML_TYPE_F32: tilef(GGML_TYPE_F32, w, pf, x, n, rm, rn, res); break;
    case GGML_TYPE_F16: tilef(GGML_TYPE_F16, w, pf, x, n, rm, rn, res); break;
    case GGML_TYPE_BF16: tilef(GGML_TYPE_BF16, w, pf, x, n, rm, rn, res); break;
    default: return;
    }
#pragma GCC unroll 8
    for (int i = 0; i < rm; i++)
#pragma GCC unroll 8
        for (int k = 0; k < rn; k++)
            out[(size_t)ti[k] * ld + ri[i]] = res[i][k];
}

/* Separate non-inlined instances for the two tile shapes keep code size in check. */
static __attribute__((noinline)) void
tile_decode(enum ggml_type wt, const uint8_t *wbase, size_t wrb, int n, int r, int r1,
            const uint8_t *xbase, size_t xrb, int t0, int n_tok, float *out, int ld)
{
    run_tile(wt, wbase, wrb, n, r, r1, xbase, xrb, t0, n_tok, out, ld, KS_RM_DECODE, 1);
}

static __attribute__((noinline)) void
tile_prefill(enum ggml_type wt, const uint8_t *wbase, size_t wrb, int n, int r, int r1,
             const uint8_t *xbase, size_t xrb, int t0, int n_tok, float *out, int ld)
{
    run_tile(wt, wbase, wrb, n, r, r1, xbase, xrb, t0, n_tok, out, ld, KS_RM, KS_RN);
}

#if !KS_VNNI
/* AVX2 Q8_0 rows take 2x4 tiles: the sign trick keeps each row's codes twice (magnitudes and
 * signs), so 3x4 needs 21 vector registers of the 16; 2x4 fits. bench_kernels, two Zen 3
 * cores, Q8_0 prefill 92-98 -> 102-103 GFLOP/s; SmolLM2-135M Q8_0 pp512 x1.07-1.13 (four
 * rounds), TinyLlama-1.1B Q8_0 x0.98-1.10 (median 1.03 of four). 2x6: x0.90-1.12. */
#define KS_RM_Q8 2
static __attribute__((noinline)) void
tile_prefill_q8(enum ggml_type wt, const uint8_t *wbase, size_t wrb, int n, int r, int r1,
                const uint8_t *xbase, size_t xrb, int t0, int n_tok, float *out, int ld)
{
    run_tile(wt, wbase, wrb, n, r, r1, xbase, xrb, t0, n_tok, out, ld, KS_RM_Q8, KS_RN);
}
#endif

static __attribute__((noinline)) void
tile_prefill_k(enum ggml_type wt, const uint8_t *wbase, size_t wrb, int n, int r, int r1,
               const uint8_t *xbase, size_t xrb, int t0, int n_tok, float *out, int ld)
{
    run_tile(wt, wbase, wrb, n, r, r1, xbase, xrb, t0, n_tok, out, ld, KS_RMK, KS_RNK);
}

static void
simd_gemm(enum ggml_type wt, const void *w, size_t w_row_bytes, int n, int r0, int r1,
          const void *xq, int n_tok, float *out, int ld_out)
{
    if (!kern_weight_supported(wt) || r1 <= r0 || n_tok <= 0 || n <= 0)
        return;
    size_t xrb = kern_row_bytes(kern_act_type(wt), n);
    if (xrb == 0)
        return;
    bool kq = wt == GGML_TYPE_Q4_K || wt == GGML_TYPE_Q5_K || wt == GGML_TYPE_Q6_K;
    int rm = kq ? KS_RMK : KS_RM, rn = kq ? KS_RNK : KS_RN;
#if !KS_VNNI
    if (is_q8(wt))
        rm = KS_RM_Q8;
#endif
    int full = n_tok / rn * rn;  /* tokens in whole prefill tiles; the rest go one by one */
    bool linear = is_blk32(wt) && n / 32 <= KS_DEC_MAXB;
    /* A few tokens (decode of a few sequences at once) go row by row too: the tiles' four
     * interleaved rows streamed at a quarter to a half of the bandwidth here. Rows are taken
     * KS_ROW_CHUNK at a time so that every token after the first finds them in L2. */
    if (linear && n_tok < KS_SMALL_BATCH && (long)n_tok * (n / 32) <= KS_DEC_MAXB) {
        /* one pass: each block decoded once for all tokens */
        gemv32(wt, n_tok, w, w_row_bytes, n / 32, r0, r1, xq, xrb, out, (size_t)ld_out);
        return;
    }
    if (full == 0 || (linear && n_tok < KS_SMALL_BATCH) || (kq && n_tok < KS_SMALL_BATCH_K)) {
        int step = n_tok == 1 ? r1 - r0 : KS_ROW_CHUNK;
        for (int rc = r0; rc < r1; rc += step) {
            int rc1 = rc + step < r1 ? rc + step : r1;
            for (int t = 0; t < n_tok; t++) {
                const uint8_t *xt = (const uint8_t *)xq + (size_t)t * xrb;
                float *ot = out + (size_t)t * ld_out;
                if (linear) {
                    gemv32(wt, 1, w, w_row_bytes, n / 32, rc, rc1, xt, xrb, ot, (size_t)ld_out);
                    continue;
                }
                if (kq) {
                    gemvk(wt, w, w_row_bytes, n / QK_K, rc, rc1, xt, ot);
                    continue;
                }
                for (int r = rc; r < rc1; r += KS_RM_DECODE)
                    tile_decode(wt, w, w_row_bytes, n, r, rc1, xq, xrb, t, n_tok, out, ld_out);
            }
        }
        return;
    }
    for (int rc = r0; rc < r1; rc += KS_ROW_CHUNK) {
        int rc1 = rc + KS_ROW_CHUNK < r1 ? rc + KS_ROW_CHUNK : r1;
        for (int t0 = 0; t0 < full; t0 += rn)
            for (int r = rc; r < rc1; r += rm) {
                if (kq)
                    tile_prefill_k(wt, w, w_row_bytes, n, r, rc1, xq, xrb, t0, n_tok, out, ld_out);
#if !KS_VNNI
                else if (is_q8(wt))
                    tile_prefill_q8(wt, w, w_row_bytes, n, r, rc1, xq, xrb, t0, n_tok, out, ld_out);
#endif
                else
                    tile_prefill(wt, w, w_row_bytes, n, r, rc1, xq, xrb, t0, n_tok, out, ld_out);
            }
        for (int t = full; t < n_tok; t++)
            for (int r = rc; r < rc1; r += KS_RM_DECODE)
                tile_decode(wt, w, w_row_bytes, n, r, rc1, xq, xrb, t, n_tok, out, ld_out);
    }
}

/* ===== Activation quantization =========================================================== */

/* Q8_0 with the reference's exact arithmetic: same amax, same 127/amax, nearest-even. */
static void
simd_quantize_q8_0(const float *x, struct blk_q8_0 *y, int nb)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int i = 0; i < nb; i++, x += 32) {
        __m256 v[4];
        __m256 mx = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            mx = _mm256_max_ps(mx, _mm256_and_ps(v[k], absmask));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        float d = amax / 127.0f;
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = q_f32_to_f16(d);
        __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], idv),
                                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
        __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        /* the packs interleave 128-bit lanes: restore element order */
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[i].qs, p);
    }
}

/* 8 floats rounded to nearest-even int32 and packed to int8 with saturation, in order. */
KS_INLINE __m256i
round_pack32(__m256 a, __m256 b, __m256 c, __m256 d)
{
#define KS_RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)  /* must be a literal for clang */
    __m256i p01 = _mm256_packs_epi32(_mm256_cvtps_epi32(_mm256_round_ps(a, KS_RNE)),
                                     _mm256_cvtps_epi32(_mm256_round_ps(b, KS_RNE)));
    __m256i p23 = _mm256_packs_epi32(_mm256_cvtps_epi32(_mm256_round_ps(c, KS_RNE)),
                                     _mm256_cvtps_epi32(_mm256_round_ps(d, KS_RNE)));
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23),
                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Q8_K exactly as ref.c: same amax, the first value of that magnitude gives the sign, same
 * iscale product, nearest-even; the int8 saturation of the pack is ref's MIN(127, v) (the
 * product never exceeds 127 in magnitude by more than a rounding error). */
static void
simd_quantize_q8_k(const float *x, struct blk_q8_k *y, int nb)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int i = 0; i < nb; i++, x += QK_K) {
        __m256 mx = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8)
            mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(x + k), absmask));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0.0f;
        __m256 av = _mm256_set1_ps(amax);
        for (int k = 0; k < QK_K; k += 8) {
            int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + k), absmask),
                                                       av, _CMP_EQ_OQ));
            if (hit) {
                max = x[k + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        float iscale = -127.0f / max;
        __m256 is = _mm256_set1_ps(iscale);
        for (int k = 0; k < QK_K; k += 32) {
            __m256i q = round_pack32(_mm256_mul_ps(is, _mm256_loadu_ps(x + k)),
                                     _mm256_mul_ps(is, _mm256_loadu_ps(x + k + 8)),
                                     _mm256_mul_ps(is, _mm256_loadu_ps(x + k + 16)),
                                     _mm256_mul_ps(is, _mm256_loadu_ps(x + k + 24)));
            _mm256_storeu_si256((__m256i *)(y[i].qs + k), q);
            /* sums of each 16: pairs, then fours, then the two halves of each 128-bit lane */
            __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q),
                                           _mm256_set1_epi16(1));
            __m256i s8 = _mm256_hadd_epi32(s4, s4);
            __m256i s16 = _mm256_hadd_epi32(s8, s8);
            y[i].bsums[k / 16] = (int16_t)_mm256_cvtsi256_si32(s16);
            y[i].bsums[k / 16 + 1] = (int16_t)_mm256_extract_epi32(s16, 4);
        }
        y[i].d = 1.0f / iscale;
    }
}

static void
simd_quantize_row(enum ggml_type act_type, const float *x, void *dst, int n)
{
    switch (act_type) {
    case GGML_TYPE_Q8_0:
        simd_quantize_q8_0(x, dst, n / 32);
        break;
    case GGML_TYPE_Q8_K:
        simd_quantize_q8_k(x, dst, n / QK_K);
        break;
    case GGML_TYPE_F16: {
        uint16_t *y = dst;
        int j = 0;
        for (; j + 8 <= n; j += 8)
            _mm_storeu_si128((__m128i *)(y + j),
                             _mm256_cvtps_ph(_mm256_loadu_ps(x + j), _MM_FROUND_TO_NEAREST_INT));
        for (; j < n; j++)
            y[j] = q_f32_to_f16(x[j]);
        break;
    }
    default:
        ref_quantize_row(act_type, x, dst, n);
        break;
    }
}

/* ===== Float helpers ===================================================================== */

static float
simd_dot_f32(int n, const float *a, const float *b)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
    }
    for (; j + 8 <= n; j += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
    float s = hsum_ps(_mm256_add_ps(s0, s1));
    for (; j < n; j++)
        s += a[j] * b[j];
    return s;
}

static float
simd_dot_f16_f32(int n, const uint16_t *a, const float *b)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + j))),
                             _mm256_loadu_ps(b + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + j + 8))),
                             _mm256_loadu_ps(b + j + 8), s1);
    }
    for (; j + 8 <= n; j += 8)
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + j))),
                             _mm256_loadu_ps(b + j), s0);
    float s = hsum_ps(_mm256_add_ps(s0, s1));
    for (; j < n; j++)
        s += f16(a[j]) * b[j];
    return s;
}

static void
simd_axpy_f32(int n, float alpha, const float *x, float *y)
{
    __m256 av = _mm256_set1_ps(alpha);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(y + j, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j)));
    for (; j < n; j++)
        y[j] += alpha * x[j];
}

static void
simd_axpy_f16_f32(int n, float alpha, const uint16_t *x, float *y)
{
    __m256 av = _mm256_set1_ps(alpha);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(y + j, _mm256_fmadd_ps(av, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + j))),
                                                _mm256_loadu_ps(y + j)));
    for (; j < n; j++)
        y[j] += alpha * f16(x[j]);
}

static void
simd_f32_to_f16_row(const float *x, uint16_t *y, int n)
{
    simd_quantize_row(GGML_TYPE_F16, x, y, n);
}

static void
simd_f16_to_f32_row(const uint16_t *x, float *y, int n)
{
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(y + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + j))));
    for (; j < n; j++)
        y[j] = f16(x[j]);
}

/* e^x for 8 floats, within a few ulp of expf: x = n*ln2 + r with |r| <= ln2/2, a degree-7
 * polynomial for e^r, and 2^n put into the exponent. Inputs are clamped so 2^n stays a normal
 * float: below -87.3 the result is about 1e-38 instead of a denormal or 0, above 88.7 it is
 * about 3e38 instead of Inf; both are harmless where it is used (softmax after max
 * subtraction, the sigmoid of SwiGLU). */
KS_INLINE __m256
exp_ps(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145752f), x);  /* ln2, high bits */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860677e-6f), r);      /* ln2, the rest */
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* e^x for 4 floats with exactly the C library's bits: Debian 12's glibc (2.36) expf as its
 * FMA variant computes it -- x*32/ln2 split into k + r through the 0x1.8p52 shift, 2^(k/32)
 * from a 32-entry table with k/32's integer part added to the exponent, a cubic in r, all
 * in double with the same fused operations, rounded once to float -- and its special cases
 * (-inf -> 0, NaN, overflow, below log(2^-150) -> 0, the may-underflow band -> 2^-149).
 * Checked against expf on all 2^32 inputs (NaN payloads aside). The SIMD tables require FMA,
 * and glibc picks that same variant on such CPUs, so attention's softmax weights stay those
 * of llama.cpp's expf calls (test_kernels compares attn_f16 with a composition that calls
 * expf). Table and constants: the values glibc's exp2f data holds (N = 32). */
static const uint64_t KS_EXP2F_TAB[32] = {
    0x3ff0000000000000ull, 0x3fefd9b0d3158574ull, 0x3fefb5586cf9890full, 0x3fef9301d0125b51ull,
    0x3fef72b83c7d517bull, 0x3fef54873168b9aaull, 0x3fef387a6e756238ull, 0x3fef1e9df51fdee1ull,
    0x3fef06fe0a31b715ull, 0x3feef1a7373aa9cbull, 0x3feedea64c123422ull, 0x3feece086061892dull,
    0x3feebfdad5362a27ull, 0x3feeb42b569d4f82ull, 0x3feeab07dd485429ull, 0x3feea47eb03a5585ull,
    0x3feea09e667f3bcdull, 0x3fee9f75e8ec5f74ull, 0x3feea11473eb0187ull, 0x3feea589994cce13ull,
    0x3feeace5422aa0dbull, 0x3feeb737b0cdc5e5ull, 0x3feec49182a3f090ull, 0x3feed503b23e255dull,
    0x3feee89f995ad3adull, 0x3feeff76f2fb5e47ull, 0x3fef199bdd85529cull, 0x3fef3720dcef9069ull,
    0x3fef5818dcfba487ull, 0x3fef7c97337b9b5full, 0x3fefa4afa2a490daull, 0x3fefd0765b6e4540ull,
};
/* Lanes of x whose magnitude is at least 88 (glibc's test on the top bits): only there can
 * the result be one of expf's special cases. */
KS_INLINE __m256
expf_big(__m256 x)
{
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(
        _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 20), _mm256_set1_epi32(0x7ff)),
        _mm256_set1_epi32(0x42a)));
}

/* glibc's special cases for one such lane, by value; r is the table path's result. */
KS_INLINE float
expf_special(float x, float r)
{
    if (x != x)
        return x + x;
    if (x > 0x1.62e42ep6f)
        return INFINITY;
    if (x < -0x1.9fe368p6f)
        return 0.0f;
    if (x < -0x1.9d1d9ep6f)
        return 0x1p-149f;
    return r;
}

/* expf_special on the lanes whose bit is set in big (expf_big's mask), in place. */
KS_INLINE void
expf_special_lanes(int big, const float *xs, float *rs)
{
    for (int i = 0; big; i++, big >>= 1)
        if (big & 1)
            rs[i] = expf_special(xs[i], rs[i]);
}

KS_INLINE __m128
expf_libm4(__m128 x)
{
    const __m256d xd = _mm256_cvtps_pd(x);
    const __m256d inv = _mm256_set1_pd(0x1.71547652b82fep+5), shift = _mm256_set1_pd(0x1.8p+52);
    __m256d kds = _mm256_fmadd_pd(inv, xd, shift);
    __m256i ki = _mm256_castpd_si256(kds);
    __m256d kd = _mm256_sub_pd(kds, shift);
    __m256d r = _mm256_fmsub_pd(inv, xd, kd);
    __m256i t = _mm256_i64gather_epi64((const long long *)KS_EXP2F_TAB,
                                       _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8);
    t = _mm256_add_epi64(t, _mm256_slli_epi64(ki, 47));
    __m256d z = _mm256_fmadd_pd(_mm256_set1_pd(0x1.c6af84b912394p-20), r,
                                _mm256_set1_pd(0x1.ebfce50fac4f3p-13));
    __m256d r2 = _mm256_mul_pd(r, r);
    __m256d y = _mm256_fmadd_pd(r, _mm256_set1_pd(0x1.62e42ff0c52d6p-6), _mm256_set1_pd(1.0));
    y = _mm256_fmadd_pd(z, r2, y);
    y = _mm256_mul_pd(y, _mm256_castsi256_pd(t));
    __m128 res = _mm256_cvtpd_ps(y);
    int big = _mm256_movemask_ps(expf_big(_mm256_zextps128_ps256(x)));
    if (big) {
        float xs[4], rs[4];
        _mm_storeu_ps(xs, x);
        _mm_storeu_ps(rs, res);
        expf_special_lanes(big, xs, rs);
        res = _mm_loadu_ps(rs);
    }
    return res;
}

#if KS_VNNI
/* expf_libm4 for 8 floats on 512-bit vectors, the same double operations lane by lane (so the
 * same bits), with the 2^(k/32) table held in four registers and picked by two-source
 * permutes instead of a gather (a gather is many micro-ops on Zen 5). Both are checked
 * against the C library's expf on all 2^32 inputs by `make check-expf`. */
KS_INLINE __m256
expf_libm8(__m256 x)
{
    const __m512d xd = _mm512_cvtps_pd(x);
    const __m512d inv = _mm512_set1_pd(0x1.71547652b82fep+5), shift = _mm512_set1_pd(0x1.8p+52);
    __m512d kds = _mm512_fmadd_pd(inv, xd, shift);
    __m512i ki = _mm512_castpd_si512(kds);
    __m512d kd = _mm512_sub_pd(kds, shift);
    __m512d r = _mm512_fmsub_pd(inv, xd, kd);
    const __m512i t0 = _mm512_loadu_si512((const void *)KS_EXP2F_TAB);
    const __m512i t1 = _mm512_loadu_si512((const void *)(KS_EXP2F_TAB + 8));
    const __m512i t2 = _mm512_loadu_si512((const void *)(KS_EXP2F_TAB + 16));
    const __m512i t3 = _mm512_loadu_si512((const void *)(KS_EXP2F_TAB + 24));
    __m512i lo = _mm512_permutex2var_epi64(t0, ki, t1);  /* index bits 0-3 */
    __m512i hi = _mm512_permutex2var_epi64(t2, ki, t3);
    __m512i t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)), lo, hi);
    t = _mm512_add_epi64(t, _mm512_slli_epi64(ki, 47));
    __m512d z = _mm512_fmadd_pd(_mm512_set1_pd(0x1.c6af84b912394p-20), r,
                                _mm512_set1_pd(0x1.ebfce50fac4f3p-13));
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d y = _mm512_fmadd_pd(r, _mm512_set1_pd(0x1.62e42ff0c52d6p-6), _mm512_set1_pd(1.0));
    y = _mm512_fmadd_pd(z, r2, y);
    y = _mm512_mul_pd(y, _mm512_castsi512_pd(t));
    __m256 res = _mm512_cvtpd_ps(y);
    int big = _mm256_movemask_ps(expf_big(x));
    if (big) {
        float xs[8], rs[8];
        _mm256_storeu_ps(xs, x);
        _mm256_storeu_ps(rs, res);
        expf_special_lanes(big, xs, rs);
        res = _mm256_loadu_ps(rs);
    }
    return res;
}
#endif

static void
simd_rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    __m256 s0 = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_loadu_ps(x + j);
        s0 = _mm256_fmadd_ps(v, v, s0);
    }
    double ss = hsum_ps(s0);
    for (; j < n; j++)
        ss += (double)x[j] * x[j];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    __m256 sv = _mm256_set1_ps(scale);
    for (j = 0; j + 8 <= n; j += 8)
        _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), sv),
                                                _mm256_loadu_ps(w + j)));
    for (; j < n; j++)
        out[j] = x[j] * scale * w[j];
}

static void
simd_softmax(float *x, int n)
{
    if (n <= 0)
        return;
    float max = x[0];
    int j = 0;
    if (n >= 8) {
        __m256 mv = _mm256_loadu_ps(x);
        for (j = 8; j + 8 <= n; j += 8)
            mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + j));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        max = _mm_cvtss_f32(m4);
    }
    for (; j < n; j++)
        max = x[j] > max ? x[j] : max;
    __m256 mv = _mm256_set1_ps(max), sum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv));
        _mm256_storeu_ps(x + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    double s = hsum_ps(sum);
    for (; j < n; j++) {
        x[j] = expf(x[j] - max);
        s += x[j];
    }
    float inv = (float)(1.0 / s);
    __m256 iv = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= n; j += 8)
        _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), iv));
    for (; j < n; j++)
        x[j] *= inv;
}

static void
simd_swiglu(float *g, const float *u, int n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 gv = _mm256_loadu_ps(g + j);
        __m256 den = _mm256_add_ps(one, exp_ps(_mm256_xor_ps(gv, sign)));
        _mm256_storeu_ps(g + j, _mm256_mul_ps(_mm256_div_ps(gv, den), _mm256_loadu_ps(u + j)));
    }
    for (; j < n; j++)
        g[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
}

/* ===== Attention of one query row, F16 accumulator (decode) =============================== */

/* acc rounded to F16 and back, as f32_to_f16_row then f16_to_f32_row do it. */
KS_INLINE void
round_f16_row(float *acc, int hd)
{
    int j = 0;
    for (; j + 8 <= hd; j += 8)
        _mm256_storeu_ps(acc + j, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(acc + j),
                                                                  _MM_FROUND_TO_NEAREST_INT)));
    for (; j < hd; j++)
        acc[j] = f16(q_f32_to_f16(acc[j]));
}

/* The loop of attention_head fused: the operations of simd_dot_f16_f32, simd_axpy_f16_f32 and
 * the F16 round trips in the same order (so the same bits), without the calls and the
 * accumulator's trips through memory. Inlined with a constant hd, the compiler keeps acc in
 * registers. */
KS_INLINE void
attn_f16_body(int hd, const float *q, const uint16_t *k, const uint16_t *v, size_t kv_stride,
              int n_pos, float scale, float *out)
{
    float qh[1024], acc[1024];
    for (int j = 0; j < hd; j++)
        acc[j] = q[j];
    round_f16_row(acc, hd);
    for (int j = 0; j < hd; j++) {
        qh[j] = acc[j];
        acc[j] = 0.0f;
    }
    float m = -INFINITY, sum = 0.0f;
    for (int p = 0; p < n_pos; p++) {
        const uint16_t *kp = k + (size_t)p * kv_stride, *vp = v + (size_t)p * kv_stride;
        float s = simd_dot_f16_f32(hd, kp, qh) * scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > m) {
            ms = expf(m - s);
            m = s;
            for (int i = 0; i < hd; i++)
                acc[i] *= ms;
            round_f16_row(acc, hd);
        } else {
            vs = expf(s - m);
        }
        /* simd_axpy_f16_f32(hd, vs, vp, acc), then the F16 round trip */
        __m256 av = _mm256_set1_ps(vs);
        int j = 0;
        for (; j + 8 <= hd; j += 8)
            _mm256_storeu_ps(acc + j, _mm256_fmadd_ps(av, _mm256_cvtph_ps(_mm_loadu_si128(
                                                          (const __m128i *)(vp + j))),
                                                      _mm256_loadu_ps(acc + j)));
        for (; j < hd; j++)
            acc[j] += vs * f16(vp[j]);
        round_f16_row(acc, hd);
        sum = sum * ms + vs;
    }
    float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
    for (int i = 0; i < hd; i++)
        out[i] = acc[i] * inv;
}

KS_INLINE __m256
round_f16_ps(__m256 x)
{
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

/* Decode attention in blocks of KS_ATT_BLK positions, three passes per block: every score
 * (dot products, no dependency between positions), then the online softmax's scalar steps in
 * order (running max and sum; per position the factor on the accumulator and the weight of
 * the value, with the same expf calls in the same order), then the F16 accumulator updates.
 * The operations and their order per element are those of one pass per position, so the bits
 * are too. Why three: expf is a call, and every vector register is caller-saved, so calling it
 * in the middle of the vector work spilled and reloaded the query and accumulator state per
 * position and row, and the running max and sum went through memory. Measured on one Zen 5
 * core, 3 query rows of 64 against cache-resident rows: 36 -> 25 ns per position. At decode
 * the cache rows come from memory, evicted by the weights' stream since the last step: the
 * score pass requests keys KS_ATT_PF positions ahead and, at each position, that position's
 * value row, so the whole block's values are on their way before the value pass starts
 * (requested KS_ATT_PF ahead inside the value pass instead, a block's first KS_ATT_PF rows
 * missed every time; SmolLM2-135M, 3 KV heads at 48-63 positions: 6.9 -> 5.8 us a layer).
 * The first rows of a head still wait on memory: decode prefetches them with the q/k/v
 * weights (forward.c, prefetch_kv). */
#define KS_ATT_BLK 64
#define KS_ATT_PF 16

/* The scalar part of the online softmax over the np scores sc[r] of each of g (at most 4)
 * rows: m[r] and sum[r] carry the running max and the normaliser; ms[r][p] is the factor
 * the accumulator is scaled by before position p's value is added (1: unchanged) and
 * vs[r][p] that value's weight. Positions outer and rows inner: each row's running max and
 * sum are a dependency chain through every position, and one row after the other left
 * those chains back to back; interleaved they overlap. Per row the operations and their
 * order are those of one row alone, so the bits are too. */
KS_INLINE void
attn_softmax_rows(int g, float sc[][KS_ATT_BLK], int np, float *m, float *sum,
                  float ms[][KS_ATT_BLK], float vs[][KS_ATT_BLK])
{
    enum { G = 4 };
    float mx[G], sm[G], arg[G][KS_ATT_BLK], e[G][KS_ATT_BLK];
    bool up[G][KS_ATT_BLK];
#pragma GCC unroll 4
    for (int r = 0; r < g; r++) {
        mx[r] = m[r];
        sm[r] = sum[r];
    }
    for (int p = 0; p < np; p++)
#pragma GCC unroll 4
        for (int r = 0; r < g; r++) {
            float s = sc[r][p];
            up[r][p] = s > mx[r];
            arg[r][p] = up[r][p] ? mx[r] - s : s - mx[r];
            mx[r] = up[r][p] ? s : mx[r];
        }
    for (int r = 0; r < g; r++) {
#if KS_VNNI
        for (int p = np; p < (np + 7) / 8 * 8; p++)
            arg[r][p] = 0.0f;
        for (int p = 0; p < np; p += 8)
            _mm256_storeu_ps(e[r] + p, expf_libm8(_mm256_loadu_ps(arg[r] + p)));
#else
        for (int p = np; p < (np + 3) / 4 * 4; p++)
            arg[r][p] = 0.0f;
        for (int p = 0; p < np; p += 4)
            _mm_storeu_ps(e[r] + p, expf_libm4(_mm_loadu_ps(arg[r] + p)));
#endif
    }
    for (int p = 0; p < np; p++)
#pragma GCC unroll 4
        for (int r = 0; r < g; r++) {
            float a = up[r][p] ? e[r][p] : 1.0f, b = up[r][p] ? 1.0f : e[r][p];
            sm[r] = sm[r] * a + b;
            ms[r][p] = a;
            vs[r][p] = b;
        }
#pragma GCC unroll 4
    for (int r = 0; r < g; r++) {
        m[r] = mx[r];
        sum[r] = sm[r];
    }
}

KS_INLINE void
attn_prefetch_row(const uint16_t *row, int hd)
{
    ks_prefetch_lines(row, (size_t)hd * 2);
}

/* attn_f16_body for head sizes of 16*NV16 elements with query and accumulator held in
 * registers as 8-float vectors (the compiler keeps a float array in memory even with a
 * constant size). Same operations in the same order as the body (even vectors of the dot in
 * s0, odd ones in s1; the rescale, axpy and F16 round trips per vector), so the same bits. */
KS_INLINE void
attn_f16_regs(int nv16, const float *q, const uint16_t *k, const uint16_t *v, size_t kv_stride,
              int n_pos, float scale, float *out)
{
    enum { NVMAX = 16 };  /* 8-float vectors: head size 128 */
    const int nv = 2 * nv16;
    __m256 qh[NVMAX], acc[NVMAX];
    float sc[KS_ATT_BLK], ms[KS_ATT_BLK], vs[KS_ATT_BLK];
#pragma GCC unroll 16
    for (int i = 0; i < nv; i++) {
        qh[i] = round_f16_ps(_mm256_loadu_ps(q + 8 * i));
        acc[i] = _mm256_setzero_ps();
    }
    float m = -INFINITY, sum = 0.0f;
    for (int p = 0; p < KS_ATT_PF && p < n_pos; p++)
        attn_prefetch_row(k + (size_t)p * kv_stride, 8 * nv);
    for (int p0 = 0; p0 < n_pos; p0 += KS_ATT_BLK) {
        const int np = n_pos - p0 < KS_ATT_BLK ? n_pos - p0 : KS_ATT_BLK;
        for (int p = 0; p < np; p++) {
            const uint16_t *kp = k + (size_t)(p0 + p) * kv_stride;
            if (p0 + p + KS_ATT_PF < n_pos)
                attn_prefetch_row(kp + KS_ATT_PF * kv_stride, 8 * nv);
            attn_prefetch_row(v + (size_t)(p0 + p) * kv_stride, 8 * nv);
            __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
#pragma GCC unroll 16
            for (int i = 0; i < nv; i += 2) {
                s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kp + 8 * i))),
                                     qh[i], s0);
                s1 = _mm256_fmadd_ps(
                    _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kp + 8 * i + 8))), qh[i + 1],
                    s1);
            }
            sc[p] = hsum_ps(_mm256_add_ps(s0, s1)) * scale;
        }
        attn_softmax_rows(1, &sc, np, &m, &sum, &ms, &vs);
        for (int p = 0; p < np; p++) {
            const uint16_t *vp = v + (size_t)(p0 + p) * kv_stride;
            if (ms[p] != 1.0f) {
                __m256 mv = _mm256_set1_ps(ms[p]);
#pragma GCC unroll 16
                for (int i = 0; i < nv; i++)
                    acc[i] = round_f16_ps(_mm256_mul_ps(acc[i], mv));
            }
            __m256 av = _mm256_set1_ps(vs[p]);
#pragma GCC unroll 16
            for (int i = 0; i < nv; i++)
                acc[i] = round_f16_ps(_mm256_fmadd_ps(
                    av, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vp + 8 * i))), acc[i]));
        }
    }
    __m256 inv = _mm256_set1_ps(sum == 0.0f ? 0.0f : 1.0f / sum);
#pragma GCC unroll 16
    for (int i = 0; i < nv; i++)
        _mm256_storeu_ps(out + 8 * i, _mm256_mul_ps(acc[i], inv));
}

#if KS_VNNI
KS_INLINE __m512
round_f16_zmm(__m512 x)
{
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* g query rows (g <= 4) of 16*nz elements (nz <= 8, g*nz <= 16) against one KV head, with
 * 512-bit vectors, each key and value row converted once for all g rows. Per row the
 * operations are attn_f16_regs' in the same order: lanes 0-7 of the score vector are its s0
 * and lanes 8-15 its s1 (16 consecutive elements per vector); conversions, the rescale, the
 * axpy and the F16 round trips act per element. So each row gets the same bits as alone. */
KS_INLINE void
attn_f16_zmm(int nz, int g, const float *q, const uint16_t *k, const uint16_t *v,
             size_t kv_stride, int n_pos, float scale, float *out)
{
    enum { NZ = 8, G = 4 };
    const int hd = 16 * nz;
    __m512 qh[G][NZ], acc[G][NZ];
    float m[G], sum[G];
    float sc[G][KS_ATT_BLK], ms[G][KS_ATT_BLK], vs[G][KS_ATT_BLK];
#pragma GCC unroll 4
    for (int r = 0; r < g; r++) {
#pragma GCC unroll 8
        for (int i = 0; i < nz; i++) {
            qh[r][i] = round_f16_zmm(_mm512_loadu_ps(q + (size_t)r * hd + 16 * i));
            acc[r][i] = _mm512_setzero_ps();
        }
        m[r] = -INFINITY;
        sum[r] = 0.0f;
    }
    for (int p = 0; p < KS_ATT_PF && p < n_pos; p++)
        attn_prefetch_row(k + (size_t)p * kv_stride, hd);
    for (int p0 = 0; p0 < n_pos; p0 += KS_ATT_BLK) {
        const int np = n_pos - p0 < KS_ATT_BLK ? n_pos - p0 : KS_ATT_BLK;
        for (int p = 0; p < np; p++) {
            const uint16_t *kp = k + (size_t)(p0 + p) * kv_stride;
            if (p0 + p + KS_ATT_PF < n_pos)
                attn_prefetch_row(kp + KS_ATT_PF * kv_stride, hd);
            attn_prefetch_row(v + (size_t)(p0 + p) * kv_stride, hd);
            __m512 kv[NZ];
#pragma GCC unroll 8
            for (int i = 0; i < nz; i++)
                kv[i] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kp + 16 * i)));
#pragma GCC unroll 4
            for (int r = 0; r < g; r++) {
                __m512 sv = _mm512_setzero_ps();
#pragma GCC unroll 8
                for (int i = 0; i < nz; i++)
                    sv = _mm512_fmadd_ps(kv[i], qh[r][i], sv);
                sc[r][p] = hsum_ps(_mm256_add_ps(_mm512_castps512_ps256(sv),
                                                 _mm512_extractf32x8_ps(sv, 1))) * scale;
            }
        }
        attn_softmax_rows(g, sc, np, m, sum, ms, vs);
        for (int p = 0; p < np; p++) {
            const uint16_t *vp = v + (size_t)(p0 + p) * kv_stride;
#pragma GCC unroll 4
            for (int r = 0; r < g; r++)
                if (ms[r][p] != 1.0f) {
                    __m512 mv = _mm512_set1_ps(ms[r][p]);
#pragma GCC unroll 8
                    for (int i = 0; i < nz; i++)
                        acc[r][i] = round_f16_zmm(_mm512_mul_ps(acc[r][i], mv));
                }
#pragma GCC unroll 8
            for (int i = 0; i < nz; i++) {
                __m512 vv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vp + 16 * i)));
#pragma GCC unroll 4
                for (int r = 0; r < g; r++)
                    acc[r][i] = round_f16_zmm(
                        _mm512_fmadd_ps(_mm512_set1_ps(vs[r][p]), vv, acc[r][i]));
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < g; r++) {
        __m512 inv = _mm512_set1_ps(sum[r] == 0.0f ? 0.0f : 1.0f / sum[r]);
#pragma GCC unroll 8
        for (int i = 0; i < nz; i++)
            _mm512_storeu_ps(out + (size_t)r * hd + 16 * i, _mm512_mul_ps(acc[r][i], inv));
    }
}
#endif

static void
simd_attn_f16(int hd, int n_q, const float *q, const uint16_t *k, const uint16_t *v,
              size_t kv_stride, int n_pos, float scale, float *out)
{
#if KS_VNNI
    if (hd == 64 || hd == 128) {
        const int gmax = hd == 64 ? 4 : 2; /* 16 accumulator registers */
        for (int r = 0; r < n_q;) {
            int g = n_q - r < gmax ? n_q - r : gmax;
            const float *qr = q + (size_t)r * hd;
            float *orow = out + (size_t)r * hd;
            switch (hd == 64 ? g : 4 + g) {
            case 1: attn_f16_zmm(4, 1, qr, k, v, kv_stride, n_pos, scale, orow); break;
            case 2: attn_f16_zmm(4, 2, qr, k, v, kv_stride, n_pos, scale, orow); break;
            case 3: attn_f16_zmm(4, 3, qr, k, v, kv_stride, n_pos, scale, orow); break;
            case 4: attn_f16_zmm(4, 4, qr, k, v, kv_stride, n_pos, scale, orow); break;
            case 5: attn_f16_zmm(8, 1, qr, k, v, kv_stride, n_pos, scale, orow); break;
            default: attn_f16_zmm(8, 2, qr, k, v, kv_stride, n_pos, scale, orow); break;
            }
            r += g;
        }
        return;
    }
#endif
    for (int r = 0; r < n_q; r++) {
        const float *qr = q + (size_t)r * hd;
        float *orow = out + (size_t)r * hd;
        /* the common head sizes get their own copy with the size known, in registers */
        if (hd == 64)
            attn_f16_regs(4, qr, k, v, kv_stride, n_pos, scale, orow);
        else if (hd == 128)
            attn_f16_regs(8, qr, k, v, kv_stride, n_pos, scale, orow);
        else
            attn_f16_body(hd, qr, k, v, kv_stride, n_pos, scale, orow);
    }
}

/* ===== Attention over a block of query rows (prefill) ===================================== */

/* Scores and the probability-weighted sum of values are plain F32 FMAs over registers: the
 * AVX-512 table runs them 16 lanes wide (its unit is full width), the AVX2 table 8 wide.
 * Conversions and transposes stay 256-bit (not the hot part). */
#if KS_VNNI
typedef __m512 vf;
#define VF_N 16
#define KA_RB 8  /* query rows per register tile: 8 x 2 accumulators of 32 registers */
#define vf_zero() _mm512_setzero_ps()
#define vf_load(p) _mm512_loadu_ps(p)
#define vf_store(p, v) _mm512_storeu_ps((p), (v))
#define vf_set1(x) _mm512_set1_ps(x)
#define vf_fmadd(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define vf_mul(a, b) _mm512_mul_ps((a), (b))
#define vf_add(a, b) _mm512_add_ps((a), (b))
#define vf_sub(a, b) _mm512_sub_ps((a), (b))
#define vf_hsum(v) _mm512_reduce_add_ps(v)
#else
typedef __m256 vf;
#define VF_N 8
#define KA_RB 4  /* query rows per register tile: 4 x 2 accumulators of 16 registers */
#define vf_zero() _mm256_setzero_ps()
#define vf_load(p) _mm256_loadu_ps(p)
#define vf_store(p, v) _mm256_storeu_ps((p), (v))
#define vf_set1(x) _mm256_set1_ps(x)
#define vf_fmadd(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define vf_mul(a, b) _mm256_mul_ps((a), (b))
#define vf_add(a, b) _mm256_add_ps((a), (b))
#define vf_sub(a, b) _mm256_sub_ps((a), (b))
#define vf_hsum(v) hsum_ps(v)
#endif
#define KA_T KERN_ATTN_TILE  /* positions per tile */
#define KA_W (2 * VF_N)      /* positions (scores) or columns (values) per register pass */
_Static_assert(KA_T % KA_W == 0, "a tile is whole register passes");

/* e^x for VF_N floats: exp_ps, once per 8-lane half where the vector is wider. */
KS_INLINE vf
vf_exp(vf x)
{
#if KS_VNNI
    __m256 lo = exp_ps(_mm512_castps512_ps256(x));
    __m256 hi = exp_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)),
                                               _mm256_castps_pd(hi), 1));
#else
    return exp_ps(x);
#endif
}

/* In-place 8x8 transpose: row i of the input becomes column i. */
KS_INLINE void
transpose8_ps(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* Keys of positions [p0, p0+np) as kt[d][p] (floats, zero past np) and values as vt[p][d]
 * (zero rows past np, so a zero probability never meets a stale Inf). */
static void
attn_load_tile(const struct kern_attn *a, int p0, int np, float *kt, float *vt)
{
    const int hd = a->hd;
    for (int pb = 0; pb < KA_T; pb += 8)
        for (int d = 0; d < hd; d += 8) {
            __m256 r8[8];
            for (int i = 0; i < 8; i++)
                r8[i] = pb + i < np
                    ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a->k +
                          (size_t)(p0 + pb + i) * a->kv_stride + d)))
                    : _mm256_setzero_ps();
            transpose8_ps(r8);
            for (int i = 0; i < 8; i++)
                _mm256_storeu_ps(kt + (size_t)(d + i) * KA_T + pb, r8[i]);
        }
    for (int p = 0; p < KA_T; p++) {
        float *row = vt + (size_t)p * hd;
        if (p < np)
            simd_f16_to_f32_row(a->v + (size_t)(p0 + p) * a->kv_stride, row, hd);
        else
            memset(row, 0, (size_t)hd * sizeof *row);
    }
}

/* Scores of up to KA_RB rows against the tile: ps[r][p] = scale * q[r] . kt[.][p]. */
KS_INLINE void
attn_scores(const struct kern_attn *a, const float *kt, int r0, int rb, float *ps)
{
    const int hd = a->hd;
    const vf sc = vf_set1(a->scale);
    for (int h = 0; h < KA_T; h += KA_W) {
        vf acc[KA_RB][2];
#pragma GCC unroll 8
        for (int i = 0; i < KA_RB; i++)
            acc[i][0] = acc[i][1] = vf_zero();
        for (int d = 0; d < hd; d++) {
            vf k0 = vf_load(kt + (size_t)d * KA_T + h);
            vf k1 = vf_load(kt + (size_t)d * KA_T + h + VF_N);
#pragma GCC unroll 8
            for (int i = 0; i < KA_RB; i++) {
                if (i < rb) {
                    vf qv = vf_set1(a->q[r0 + i][d]);
                    acc[i][0] = vf_fmadd(qv, k0, acc[i][0]);
                    acc[i][1] = vf_fmadd(qv, k1, acc[i][1]);
                }
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < KA_RB; i++) {
            if (i < rb) {
                vf_store(ps + (size_t)i * KA_T + h, vf_mul(acc[i][0], sc));
                vf_store(ps + (size_t)i * KA_T + h + VF_N, vf_mul(acc[i][1], sc));
            }
        }
    }
}

/* Online softmax step for one row over its lim valid scores in s (lim may be <= 0: the row is
 * past its last position): rescales the accumulator o when the maximum grows, turns s into
 * probabilities (0 past lim) and adds them to the running sum. */
static void
attn_softmax_row(float *s, int lim, float *o, int hd, float *mx, float *sum)
{
    if (lim <= 0) {
        memset(s, 0, KA_T * sizeof *s);
        return;
    }
    if (lim > KA_T)
        lim = KA_T;
    float tmax = -INFINITY;
    for (int p = 0; p < lim; p++)
        tmax = s[p] > tmax ? s[p] : tmax;
    float mnew = tmax > *mx ? tmax : *mx;
    if (mnew > *mx) {
        float ms = expf(*mx - mnew);
        vf mv = vf_set1(ms);
        for (int i = 0; i < hd; i += VF_N)
            vf_store(o + i, vf_mul(vf_load(o + i), mv));
        *sum *= ms;
        *mx = mnew;
    }
    const vf mv = vf_set1(mnew);
    for (int p = 0; p < KA_T; p += VF_N)
        vf_store(s + p, vf_exp(vf_sub(vf_load(s + p), mv)));
    for (int p = lim; p < KA_T; p++)
        s[p] = 0.0f;  /* past the row's last position (or the tile's) */
    vf acc = vf_zero();
    for (int p = 0; p < KA_T; p += VF_N)
        acc = vf_add(acc, vf_load(s + p));
    *sum += vf_hsum(acc);
}

/* o[r] += sum_p ps[r][p] * vt[p] for up to KA_RB rows, KA_W columns at a time. */
KS_INLINE void
attn_accumulate(const float *vt, int np, int hd, const float *ps, int rb, float *o)
{
    for (int c = 0; c < hd; c += KA_W) {
        int two = c + KA_W <= hd;  /* a head of 16 floats on 16 lanes: one vector per row */
        vf acc[KA_RB][2];
#pragma GCC unroll 8
        for (int i = 0; i < KA_RB; i++) {
            acc[i][0] = acc[i][1] = vf_zero();
            if (i < rb) {
                acc[i][0] = vf_load(o + (size_t)i * hd + c);
                if (two)
                    acc[i][1] = vf_load(o + (size_t)i * hd + c + VF_N);
            }
        }
        for (int p = 0; p < np; p++) {
            vf v0 = vf_load(vt + (size_t)p * hd + c);
            vf v1 = two ? vf_load(vt + (size_t)p * hd + c + VF_N) : vf_zero();
#pragma GCC unroll 8
            for (int i = 0; i < KA_RB; i++) {
                if (i < rb) {
                    vf pv = vf_set1(ps[(size_t)i * KA_T + p]);
                    acc[i][0] = vf_fmadd(pv, v0, acc[i][0]);
                    acc[i][1] = vf_fmadd(pv, v1, acc[i][1]);
                }
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < KA_RB; i++) {
            if (i < rb) {
                vf_store(o + (size_t)i * hd + c, acc[i][0]);
                if (two)
                    vf_store(o + (size_t)i * hd + c + VF_N, acc[i][1]);
            }
        }
    }
}

/* Tiles of KA_T positions: each tile's keys and values are converted once for all rows, then
 * per group of KA_RB rows: scores from registers, the online softmax update, and the
 * probability-weighted values into the row accumulators. */
static void
simd_attn_f32(const struct kern_attn *a)
{
    const int hd = a->hd, nr = a->n_rows;
    float *kt = a->scratch;                                 /* [hd][KA_T] */
    float *vt = kt + (size_t)hd * KA_T;                     /* [KA_T][hd] */
    float *ps = vt + (size_t)KA_T * hd;                     /* [rows][KA_T] */
    float *o = ps + (size_t)KERN_ATTN_MAX_ROWS * KA_T;      /* [rows][hd] */
    float *mx = o + (size_t)KERN_ATTN_MAX_ROWS * hd;        /* [rows] running maximum */
    float *sum = mx + KERN_ATTN_MAX_ROWS;                   /* [rows] running sum */
    int maxpos = 0;
    for (int r = 0; r < nr; r++) {
        maxpos = a->n_pos[r] > maxpos ? a->n_pos[r] : maxpos;
        mx[r] = -INFINITY;
        sum[r] = 0.0f;
        memset(o + (size_t)r * hd, 0, (size_t)hd * sizeof *o);
    }
    for (int p0 = 0; p0 < maxpos; p0 += KA_T) {
        int np = maxpos - p0 < KA_T ? maxpos - p0 : KA_T;
        attn_load_tile(a, p0, np, kt, vt);
        for (int r0 = 0; r0 < nr; r0 += KA_RB) {
            int rb = nr - r0 < KA_RB ? nr - r0 : KA_RB;
            bool any = false;
            for (int i = 0; i < rb; i++)
                any |= a->n_pos[r0 + i] > p0;
            if (!any)
                continue;
            float *pr = ps + (size_t)r0 * KA_T;
            attn_scores(a, kt, r0, rb, pr);
            for (int i = 0; i < rb; i++)
                attn_softmax_row(pr + (size_t)i * KA_T, a->n_pos[r0 + i] - p0,
                                 o + (size_t)(r0 + i) * hd, hd, &mx[r0 + i], &sum[r0 + i]);
            attn_accumulate(vt, np, hd, pr, rb, o + (size_t)r0 * hd);
        }
    }
    for (int r = 0; r < nr; r++) {
        float inv = sum[r] == 0.0f ? 0.0f : 1.0f / sum[r];
        vf iv = vf_set1(inv);
        for (int i = 0; i < hd; i += VF_N)
            vf_store(a->out[r] + i, vf_mul(vf_load(o + (size_t)r * hd + i), iv));
    }
}
