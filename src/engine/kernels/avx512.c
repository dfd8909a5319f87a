/* avx512.c -- the avx512 kernel table: AVX-512 F/BW/VL/DQ + VNNI, integer dots with
 * vpdpbusd/vpdpwssd using all 32 registers: the shared 256-bit tiles of simd_impl.h (4-row
 * decode tiles, K-quant decode on 512 bits) and, in this file, the packed-panel prefill gemm
 * (gemm_tiled) on 512-bit vectors. Requires VNNI: AVX-512 CPUs without it (Skylake-X) get the
 * avx2 table.
 * Built with ISA flags (the Makefile gives them by file name, to this file and its sibling
 * only); select.c calls into this table only after CPUID + XGETBV confirm the features.
 * The implementation is shared with the other SIMD table in simd_impl.h; ref.c is the
 * specification both match. Inputs as in kernels.h (weight bytes bounds-checked by the loader). */
#include "engine/kernels/simd_impl.h"

/* ===== Packed-panel prefill gemm (this table only: full 512-bit vectors) =================
 *
 * Why a second gemm: the shared tiles above do one 256-bit vpdpbusd per (row, token, block)
 * and then a horizontal reduction per (row, token) -- a third of the multiply throughput of
 * a core with a full-width 512-bit VNNI unit (AMD Zen 5). Here one vpdpbusd computes 16 rows
 * at once: the weight codes of 16 rows are interleaved four bytes at a time (lane l of the
 * vector holds elements 4k..4k+3 of row l) and multiplied with the same four activation
 * bytes broadcast to every lane, so a block's 16 dot products need 8 instructions and no
 * reduction, and each result lane is one output element (16 consecutive rows of one token:
 * one store). The interleaving costs a transpose, done once per call for a panel of
 * TL_ROWS rows into the caller's scratch and reused by every token: worth it from a few
 * tokens on (tiled_min_tok), never for decode. Measured on one Zen 5 core: ~265 GMAC/s on
 * Q8_0 over 512 tokens, against ~60 for the 4x4 tiles.
 *
 * Numerics: the same integer block sums as ref.c and one float multiply-add per block, but not
 * ggml's 8-lane float order (decode keeps that), so prefill logits differ from llama.cpp's in
 * the last bits; see docs/engine.md for the measured effect.
 *
 * Packed record of one 32-element chunk of one lane group (16 rows), 64-byte aligned:
 *   codes: 8 x 64 bytes, vector k = for each lane l, the unsigned codes of elements
 *          4k..4k+3 of row l (Q8_0 stored as q + 128; others as decode32/codes_k give them)
 *   s:     per 16 lanes the float scale of the chunk (Q6_K: two vectors, one per 16 elements)
 *   m:     per 16 lanes the float min term (types with a min only)
 * Rows past the end of the range are packed as zero codes and scales and never stored.
 * For one (row, token, scale block) the integer sum starts from kern_xsum.c (the exact
 * correction for the code offset) and accumulates the code x activation products; then
 * acc += float(sum) * (s * xs.d) (+ m * xs.m), one multiply-add per block as in ref.c. */

#define TL_LANES 16                  /* rows per lane group: one int32 lane per row */
#define TL_RG 2                      /* lane groups per panel */
#define TL_ROWS (TL_LANES * TL_RG)   /* rows per packed panel */
#define TL_PF_TILES 16               /* token tiles over which the next panel is prefetched */
#define TL_T 6                       /* tokens per micro tile: 2 x 6 x 2 accumulators + 2 weights
                                        fill 26 of the 32 vector registers */

KS_INLINE int
tl_halves(enum ggml_type wt)
{
    return wt == GGML_TYPE_Q6_K ? 2 : 1;
}

KS_INLINE bool
tl_has_min(enum ggml_type wt)
{
    return wt == GGML_TYPE_Q4_1 || wt == GGML_TYPE_Q5_1 || wt == GGML_TYPE_Q4_K ||
           wt == GGML_TYPE_Q5_K;
}

/* bytes of one packed record (one chunk of one lane group) */
KS_INLINE size_t
tl_rec_bytes(enum ggml_type wt)
{
    return 512 + 64 * (size_t)tl_halves(wt) + (tl_has_min(wt) ? 64 : 0);
}

/* Where packing a panel (about the cost of a few tokens' worth of multiply-adds) starts to
 * pay, measured on the target: Q8_0 codes are copied as they are, the others decoded. */
static int
avx512_tiled_min_tok(enum ggml_type wt)
{
    return is_q8(wt) ? 6 : 12;
}

static size_t
avx512_tiled_scratch(enum ggml_type wt, int n)
{
    if (kern_xsum_block(wt) == 0 || n <= 0)
        return 0;
    size_t nch = (size_t)n / 32;
    return nch * TL_RG * tl_rec_bytes(wt) + nch * sizeof(int32_t);
}

/* One dword at byte offset off of each of the group's rows (lane l: row l, zero past valid). */
KS_INLINE __m512i
tl_gather(const uint8_t *base, __m512i rowoff, __mmask16 valid, size_t off)
{
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, rowoff,
                                       (const void *)(base + off), 1);
}

/* The halves in the low (hi = false) or high 16 bits of each lane, as floats. */
KS_INLINE __m512
tl_half(__m512i v, bool hi)
{
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(hi ? _mm512_srli_epi32(v, 16) : v));
}

/* Byte k (0..3) of each lane, unsigned or sign-extended, as floats. */
KS_INLINE __m512
tl_byte(__m512i v, int k, bool sign)
{
    __m512i t = _mm512_slli_epi32(v, 24 - 8 * k);
    return _mm512_cvtepi32_ps(sign ? _mm512_srai_epi32(t, 24) : _mm512_srli_epi32(t, 24));
}

/* Scales (and mins) of every chunk of the group's rows, 16 rows per vector: the block heads are
 * gathered (one dword per row) and decoded lane-wise, K-quant scales once per super-block. The
 * first pass of packing; rows past valid get zeros. */
KS_INLINE void
tl_pack_scales(enum ggml_type wt, const uint8_t *w, size_t wrb, int valid, int nch,
               uint8_t *dst, size_t stride)
{
    const int halves = tl_halves(wt);
    const __mmask16 vm = (__mmask16)((1u << valid) - 1u);
    const __m512i rowoff = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                                                11, 12, 13, 14, 15),
                                              _mm512_set1_epi32((int)wrb));
#define TL_S0(c) ((void *)(dst + (size_t)(c) * stride + 512))
#define TL_S1(c) ((void *)(dst + (size_t)(c) * stride + 576))
#define TL_MN(c) ((void *)(dst + (size_t)(c) * stride + 512 + 64 * halves))
    if (kern_block_elems(wt) == 32) {  /* d (and m) at the start of each block */
        /* row-split rows hold the scales back to back: the dword at 2c starts with d_c */
        const size_t bb = q_is_rs(wt) ? 2 : (size_t)blk32_bytes(wt);
        const bool has_min = tl_has_min(wt);
        for (int c = 0; c < nch; c++) {
            __m512i v = tl_gather(w, rowoff, vm, (size_t)c * bb);
            _mm512_store_ps(TL_S0(c), tl_half(v, false));
            if (has_min)
                _mm512_store_ps(TL_MN(c), tl_half(v, true));
        }
    } else if (wt == GGML_TYPE_Q6_K) {
        const size_t bb = sizeof(struct blk_q6_k);
        for (int sb = 0; sb < nch / 8; sb++) {
            const size_t o = (size_t)sb * bb;
            /* d is the block's last two bytes: the dword ending there, high half */
            __m512 d = tl_half(tl_gather(w, rowoff, vm, o + offsetof(struct blk_q6_k, d) - 2), true);
            for (int q = 0; q < 4; q++) {  /* scales 4q .. 4q+3: chunks 2q, 2q+1 */
                __m512i v = tl_gather(w, rowoff, vm, o + offsetof(struct blk_q6_k, scales) + 4 * (size_t)q);
                _mm512_store_ps(TL_S0(8 * sb + 2 * q), _mm512_mul_ps(d, tl_byte(v, 0, true)));
                _mm512_store_ps(TL_S1(8 * sb + 2 * q), _mm512_mul_ps(d, tl_byte(v, 1, true)));
                _mm512_store_ps(TL_S0(8 * sb + 2 * q + 1), _mm512_mul_ps(d, tl_byte(v, 2, true)));
                _mm512_store_ps(TL_S1(8 * sb + 2 * q + 1), _mm512_mul_ps(d, tl_byte(v, 3, true)));
            }
        }
    } else {  /* Q4_K, Q5_K: the same head; k_scales' bit layout, 16 rows at once */
        const size_t bb = (size_t)blkk_bytes(wt);
        const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), m4 = _mm512_set1_epi32(0x0f0f0f0f),
                      m2 = _mm512_set1_epi32(0x03030303);
        for (int sb = 0; sb < nch / 8; sb++) {
            const size_t o = (size_t)sb * bb;
            __m512i h = tl_gather(w, rowoff, vm, o);
            __m512 d = tl_half(h, false), ndmin = _mm512_sub_ps(_mm512_setzero_ps(), tl_half(h, true));
            __m512i a = tl_gather(w, rowoff, vm, o + 4), b = tl_gather(w, rowoff, vm, o + 8),
                    c = tl_gather(w, rowoff, vm, o + 12);
            __m512i sc[2], mn[2];
            sc[0] = _mm512_and_si512(a, m6);
            mn[0] = _mm512_and_si512(b, m6);
            sc[1] = _mm512_or_si512(_mm512_and_si512(c, m4),
                                    _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(a, 6), m2), 4));
            mn[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(c, 4), m4),
                                    _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(b, 6), m2), 4));
            for (int j = 0; j < 8; j++) {
                _mm512_store_ps(TL_S0(8 * sb + j), _mm512_mul_ps(d, tl_byte(sc[j / 4], j % 4, false)));
                _mm512_store_ps(TL_MN(8 * sb + j), _mm512_mul_ps(ndmin, tl_byte(mn[j / 4], j % 4, false)));
            }
        }
    }
#undef TL_S0
#undef TL_S1
#undef TL_MN
}

/* Codes of chunk c of one weight row; Q8_0 as the raw signed bytes (the +128 is applied after
 * the transpose, on half as many vectors). */
KS_INLINE __m256i
tl_chunk_codes(enum ggml_type wt, const uint8_t *row, int nch, int c)
{
    switch (wt) {
    case GGML_TYPE_Q8_0:
        return load256(row + (size_t)c * sizeof(struct blk_q8_0) + 2);
    case KERN_TYPE_Q8_0_RS:
        return load256(row + q_rs_qs_off(wt, nch) + 32 * (size_t)c);
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K:
        return codes_k(wt, row + (size_t)(c / 8) * (size_t)blkk_bytes(wt), c % 8);
    default: {
        __m256i u, sg;
        __m256 d, m;
        decode32_at(wt, row, nch, c, &u, &sg, &d, &m);
        (void)sg, (void)d, (void)m;
        return u;
    }
    }
}

/* 16 rows of 8 dwords -> 8 vectors of 16 lanes (lane l = row l): two 8x8 dword transposes,
 * one in each 256-bit half (rows 0-7 and 8-15). */
KS_INLINE void
tl_transpose(const __m256i r[16], uint8_t *dst, bool flip)
{
    const __m512i f = _mm512_set1_epi8(flip ? (char)0x80 : 0);  /* Q8_0: q + 128 as u8 */
    __m512i z[8], a[8], b[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(r[i]), r[i + 8], 1);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        a[2 * i] = _mm512_unpacklo_epi32(z[2 * i], z[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(z[2 * i], z[2 * i + 1]);
    }
    /* b[0..3]: rows 0-3, dwords {0,4} {1,5} {2,6} {3,7}; b[4..7]: the same for rows 4-7 */
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        b[4 * h + 0] = _mm512_unpacklo_epi64(a[4 * h + 0], a[4 * h + 2]);
        b[4 * h + 1] = _mm512_unpackhi_epi64(a[4 * h + 0], a[4 * h + 2]);
        b[4 * h + 2] = _mm512_unpacklo_epi64(a[4 * h + 1], a[4 * h + 3]);
        b[4 * h + 3] = _mm512_unpackhi_epi64(a[4 * h + 1], a[4 * h + 3]);
    }
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        _mm512_store_si512((void *)(dst + 64 * k),
                           _mm512_xor_si512(_mm512_permutex2var_epi64(b[k], lo, b[k + 4]), f));
        _mm512_store_si512((void *)(dst + 64 * (k + 4)),
                           _mm512_xor_si512(_mm512_permutex2var_epi64(b[k], hi, b[k + 4]), f));
    }
}

/* Pack rows [r, r+16) (those >= r1 as zeros) into the records at dst, dst + stride, ...
 * Two passes: scales row by row (sequential reads, K-quant scales decoded once per
 * super-block), then per chunk the 16 rows' codes straight into the transpose. */
KS_INLINE void
tl_pack_group(enum ggml_type wt, const uint8_t *w, size_t wrb, int n, int r, int r1,
              uint8_t *dst, size_t stride, bool cold)
{
    const int nch = n / 32;
    int valid = r1 - r < TL_LANES ? r1 - r : TL_LANES;
    if (valid < 0)
        valid = 0;
    /* a cold panel (the first of a call; later ones were fetched while the previous one
     * computed): every line of the group's rows requested up front, as the scales pass would
     * otherwise wait a DRAM latency per line, 16 rows one after another */
    if (cold)
        for (int l = 0; l < valid; l++)
            for (size_t o = 0; o < wrb; o += 64)
                _mm_prefetch((const char *)w + (size_t)(r + l) * wrb + o, _MM_HINT_T1);
    tl_pack_scales(wt, w + (size_t)r * wrb, wrb, valid, nch, dst, stride);
    for (int c = 0; c < nch; c++) {
        __m256i u[TL_LANES];
#pragma GCC unroll 16
        for (int l = 0; l < TL_LANES; l++) {
            if (l < valid) {
                u[l] = tl_chunk_codes(wt, w + (size_t)(r + l) * wrb, nch, c);
            } else {
                u[l] = is_q8(wt) ? _mm256_set1_epi8((char)0x80)  /* 0 after +128 */
                                 : _mm256_setzero_si256();
            }
        }
        tl_transpose(u, dst + (size_t)c * stride, is_q8(wt));
    }
}

/* One micro tile: the panel's TL_ROWS rows x rn tokens over all nch chunks. */
KS_INLINE void
tl_tile(const uint8_t *pan, size_t rec, int nch, const int32_t *xoff,
        const uint8_t *const *xt, const struct kern_xsum *const *xs, float *const *o,
        const __mmask16 *mask, int rn, int halves, bool has_min)
{
    __m512 acc[TL_RG][TL_T];
#pragma GCC unroll 8
    for (int g = 0; g < TL_RG; g++)
#pragma GCC unroll 8
        for (int t = 0; t < rn; t++)
            acc[g][t] = _mm512_setzero_ps();
    const int ks = 8 / halves;  /* code vectors per scale block */
    for (int c = 0; c < nch; c++) {
        const uint8_t *rp = pan + (size_t)c * TL_RG * rec;
        const int xo = xoff[c];
#pragma GCC unroll 2
        for (int h = 0; h < halves; h++) {
            __m512i ai[TL_RG][TL_T];
#pragma GCC unroll 8
            for (int t = 0; t < rn; t++) {
                __m512i cv = _mm512_set1_epi32(xs[t][c * halves + h].c);
#pragma GCC unroll 8
                for (int g = 0; g < TL_RG; g++)
                    ai[g][t] = cv;
            }
#pragma GCC unroll 8
            for (int k = h * ks; k < (h + 1) * ks; k++) {
                __m512i wz[TL_RG];
#pragma GCC unroll 8
                for (int g = 0; g < TL_RG; g++)
                    wz[g] = _mm512_load_si512((const void *)(rp + (size_t)g * rec + 64 * k));
#pragma GCC unroll 8
                for (int t = 0; t < rn; t++) {
                    int32_t v;
                    memcpy(&v, xt[t] + xo + 4 * k, 4);
                    __m512i xb = _mm512_set1_epi32(v);
#pragma GCC unroll 8
                    for (int g = 0; g < TL_RG; g++)
                        ai[g][t] = _mm512_dpbusd_epi32(ai[g][t], wz[g], xb);
                }
            }
            __m512 sv[TL_RG];
#pragma GCC unroll 8
            for (int g = 0; g < TL_RG; g++)
                sv[g] = _mm512_load_ps((const void *)(rp + (size_t)g * rec + 512 + 64 * h));
#pragma GCC unroll 8
            for (int t = 0; t < rn; t++) {
                __m512 dx = _mm512_set1_ps(xs[t][c * halves + h].d);
#pragma GCC unroll 8
                for (int g = 0; g < TL_RG; g++)
                    acc[g][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai[g][t]),
                                                _mm512_mul_ps(sv[g], dx), acc[g][t]);
            }
        }
        if (has_min) {
            __m512 mv[TL_RG];
#pragma GCC unroll 8
            for (int g = 0; g < TL_RG; g++)
                mv[g] = _mm512_load_ps((const void *)(rp + (size_t)g * rec + 512 + 64 * halves));
#pragma GCC unroll 8
            for (int t = 0; t < rn; t++) {
                __m512 mx = _mm512_set1_ps(xs[t][c].m);
#pragma GCC unroll 8
                for (int g = 0; g < TL_RG; g++)
                    acc[g][t] = _mm512_fmadd_ps(mv[g], mx, acc[g][t]);
            }
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < rn; t++)
#pragma GCC unroll 8
        for (int g = 0; g < TL_RG; g++)
            _mm512_mask_storeu_ps(o[t] + TL_LANES * g, mask[g], acc[g][t]);
}

/* Instances per (token count, type shape): constant trip counts let the compiler keep every
 * accumulator in a register. */
#define TL_INSTANCE(name, halves, has_min)                                                      \
    static __attribute__((noinline)) void                                                        \
    name(const uint8_t *pan, size_t rec, int nch, const int32_t *xoff,                           \
         const uint8_t *const *xt, const struct kern_xsum *const *xs, float *const *o,           \
         const __mmask16 *mask, int rn)                                                          \
    {                                                                                            \
        switch (rn) {                                                                            \
        case 1: tl_tile(pan, rec, nch, xoff, xt, xs, o, mask, 1, halves, has_min); break;        \
        case 2: tl_tile(pan, rec, nch, xoff, xt, xs, o, mask, 2, halves, has_min); break;        \
        case 3: tl_tile(pan, rec, nch, xoff, xt, xs, o, mask, 3, halves, has_min); break;        \
        case 4: tl_tile(pan, rec, nch, xoff, xt, xs, o, mask, 4, halves, has_min); break;        \
        case 5: tl_tile(pan, rec, nch, xoff, xt, xs, o, mask, 5, halves, has_min); break;        \
        default: tl_tile(pan, rec, nch, xoff, xt, xs, o, mask, TL_T, halves, has_min); break;    \
        }                                                                                        \
    }
TL_INSTANCE(tl_tiles_plain, 1, false)
TL_INSTANCE(tl_tiles_min, 1, true)
TL_INSTANCE(tl_tiles_q6k, 2, false)
_Static_assert(TL_T == 6, "tl_tiles_* spell out token counts 1..TL_T");

/* Offset of chunk c's first int8 inside an activation row of type at. */
static int32_t
tl_xoff(enum ggml_type at, int c)
{
    switch (at) {
    case GGML_TYPE_Q8_0: return c * (int32_t)sizeof(struct blk_q8_0) + 2;
    case GGML_TYPE_Q8_1: return c * (int32_t)sizeof(struct blk_q8_1) + 4;
    default: return c / 8 * (int32_t)sizeof(struct blk_q8_k) + 4 + 32 * (c % 8);  /* Q8_K */
    }
}

static void
avx512_gemm_tiled(enum ggml_type wt, const void *w, size_t w_row_bytes, int n, int r0, int r1,
                  const void *xq, const struct kern_xsum *xs, int n_tok, float *out, int ld_out,
                  void *scratch)
{
    if (!kern_weight_supported(wt) || r1 <= r0 || n_tok <= 0 || n <= 0)
        return;
    int xsb = kern_xsum_block(wt);
    if (xsb == 0) {  /* float weights: nothing to pack */
        simd_gemm(wt, w, w_row_bytes, n, r0, r1, xq, n_tok, out, ld_out);
        return;
    }
    enum ggml_type at = kern_act_type(wt);
    size_t xrb = kern_row_bytes(at, n);
    int nch = n / 32, nxs = n / xsb;
    size_t rec = tl_rec_bytes(wt);
    uint8_t *pan = scratch;
    int32_t *xoff = (int32_t *)(pan + (size_t)nch * TL_RG * rec);
    for (int c = 0; c < nch; c++)
        xoff[c] = tl_xoff(at, c);
    const int n_tiles = (n_tok + TL_T - 1) / TL_T;
    const size_t lines = (w_row_bytes + 63) / 64;  /* cache lines per weight row */
    for (int r = r0; r < r1; r += TL_ROWS) {
        /* The next panel's rows are fetched into L2 a slice per token tile over the last
         * TL_PF_TILES tiles of this panel: packing walks 32 rows side by side, more streams
         * than the hardware prefetchers follow, and each miss would otherwise stall it for a
         * DRAM latency. Not earlier: the activations streaming past would evict them. */
        int pr0 = r + TL_ROWS, pr1 = r + 2 * TL_ROWS < r1 ? r + 2 * TL_ROWS : r1;
        size_t pf_total = pr1 > pr0 ? (size_t)(pr1 - pr0) * lines : 0, pf_done = 0;
        int pf_from = n_tiles > TL_PF_TILES ? n_tiles - TL_PF_TILES : 0;
        size_t pf_step = (pf_total + (size_t)(n_tiles - pf_from) - 1) / (size_t)(n_tiles - pf_from);
        __mmask16 mask[TL_RG];
        for (int g = 0; g < TL_RG; g++) {
            int valid = r1 - (r + TL_LANES * g);
            valid = valid < 0 ? 0 : valid > TL_LANES ? TL_LANES : valid;
            mask[g] = (__mmask16)((1u << valid) - 1u);
            tl_pack_group(wt, w, w_row_bytes, n, r + TL_LANES * g, r1, pan + (size_t)g * rec,
                          TL_RG * rec, r == r0);
        }
        for (int t0 = 0; t0 < n_tok; t0 += TL_T) {
            int rn = n_tok - t0 < TL_T ? n_tok - t0 : TL_T;
            const uint8_t *xt[TL_T];
            const struct kern_xsum *xst[TL_T];
            float *o[TL_T];
            for (int t = 0; t < rn; t++) {
                xt[t] = (const uint8_t *)xq + (size_t)(t0 + t) * xrb;
                xst[t] = xs + (size_t)(t0 + t) * (size_t)nxs;
                o[t] = out + (size_t)(t0 + t) * (size_t)ld_out + r;
            }
            if (wt == GGML_TYPE_Q6_K)
                tl_tiles_q6k(pan, rec, nch, xoff, xt, xst, o, mask, rn);
            else if (tl_has_min(wt))
                tl_tiles_min(pan, rec, nch, xoff, xt, xst, o, mask, rn);
            else
                tl_tiles_plain(pan, rec, nch, xoff, xt, xst, o, mask, rn);
            for (size_t i = 0; t0 >= pf_from * TL_T && i < pf_step && pf_done < pf_total;
                 i++, pf_done++) {
                const uint8_t *line = (const uint8_t *)w +
                    (size_t)(pr0 + (int)(pf_done / lines)) * w_row_bytes + pf_done % lines * 64;
                _mm_prefetch((const char *)line, _MM_HINT_T1);
            }
        }
    }
}


const struct kern kern_table_avx512 = {
    .name = "avx512",
    .quantize_row = simd_quantize_row,
    .gemm = simd_gemm,
    .gemm_tiled = avx512_gemm_tiled,
    .tiled_scratch = avx512_tiled_scratch,
    .tiled_min_tok = avx512_tiled_min_tok,
    .tiled_rows = TL_ROWS,
    .dequantize_row = ref_dequantize_row,
    .dot_f32 = simd_dot_f32,
    .dot_f16_f32 = simd_dot_f16_f32,
    .axpy_f32 = simd_axpy_f32,
    .axpy_f16_f32 = simd_axpy_f16_f32,
    .f32_to_f16_row = simd_f32_to_f16_row,
    .f16_to_f32_row = simd_f16_to_f32_row,
    .rmsnorm = simd_rmsnorm,
    .softmax = simd_softmax,
    .swiglu = simd_swiglu,
    .attn_f32 = simd_attn_f32,
    .attn_f16 = simd_attn_f16,
};
