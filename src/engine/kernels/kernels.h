/* kernels.h -- the engine's compute kernels: one const table of function pointers per
 * instruction set (scalar reference, AVX2, AVX-512), picked once at startup by kern_select and
 * then reached only through the table (the model never contains #ifdef __AVX2__).
 *
 * Owns: activation quantization, quantized matrix x matrix products (gemm, and gemm_tiled for
 * long batches), dequantization, attention over an F16 cache (attn_f16 for decode, attn_f32
 * for long batches), the float helpers the norms use. Does not own threading (the caller splits
 * rows across its pool: every entry point is pure and thread-safe on disjoint outputs), model
 * semantics, or file parsing. Block layouts are the published GGUF/ggml ones (quant.h).
 *
 * Trust: weight bytes come from a GGUF file that the loader has already bounds-checked
 * (tensor range inside the mapping, row length a multiple of the block size: use
 * kern_check_row). The kernels read exactly the bytes that layout implies and never trust a
 * value as an index, so any bit pattern in a block is safe (NaN/Inf scales just propagate).
 *
 * Numerics follow ggml/llama.cpp: activations are quantized to the weight type's companion
 * ("vec_dot") type exactly as ggml does (Q8_0: d = amax/127, nearest-even rounding; Q8_1 adds
 * s = d*sum(q); Q8_K: iscale = -127/max with the sign of the largest-magnitude value, plus
 * sums per 16), integer dot products per block, one float multiply-add per block. ref.c is
 * the specification; SIMD tables produce the same quantized activations bit for bit and the
 * same per-block integer sums (for finite inputs; NaN/Inf activations give unspecified
 * bytes), and differ only in the order of float additions. */
#ifndef AIRLOCK_ENGINE_KERNELS_H
#define AIRLOCK_ENGINE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/gguf.h"
#include "util/err.h"

/* ===== Type facts (same for every table) =========================================== */

/* True for weight types a gemm accepts: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * Q4_K, Q5_K, Q6_K, and the row-split Q4_0/Q5_0 below. (Q8_1/Q8_K are activation-only.) */
bool kern_weight_supported(enum ggml_type wt);

/* Activation type paired with a weight type (ggml's vec_dot_type):
 * Q4_0/Q5_0/Q8_0 -> Q8_0; Q4_1/Q5_1 -> Q8_1; Q4_K/Q5_K/Q6_K -> Q8_K;
 * F16 -> F16; BF16 -> BF16; F32 -> F32. GGML_TYPE_COUNT for unsupported types. */
enum ggml_type kern_act_type(enum ggml_type wt);

/* Elements per block and bytes per block for every type the kernels know (weights and
 * activations); 0 for others. */
int kern_block_elems(enum ggml_type t);
int kern_block_bytes(enum ggml_type t);

/* Bytes of one row of n elements of type t (n a multiple of the block size); 0 when t is
 * unknown or n is not a multiple. For activations: the stride between the n_tok rows that
 * quantize_row writes and gemm reads. */
size_t kern_row_bytes(enum ggml_type t, int64_t n);

/* Check that a weight of type wt with rows of n elements can be used by gemm: supported type,
 * n > 0, n a multiple of the block size (of two blocks, 64, for the row-split types),
 * n <= INT32_MAX. AL_EUNSUPPORTED / AL_EFORMAT. */
int kern_check_row(enum ggml_type wt, int64_t n, struct al_err *e);

/* ===== Row-split layouts ============================================================= */

/* The row-split type (quant.h: the same bytes per row, grouped by kind, which the decode
 * kernels read with fewer instructions) for GGUF weight type t: KERN_TYPE_Q4_0_RS for Q4_0,
 * KERN_TYPE_Q5_0_RS for Q5_0, KERN_TYPE_Q8_0_RS for Q8_0, GGML_TYPE_COUNT for every other
 * type. Every entry point below takes row-split weights wherever it takes weights, with
 * results bit for bit those of the GGUF rows they were packed from. */
enum ggml_type kern_rs_type(enum ggml_type t);

/* Rewrite one row of n elements of GGUF type t (kern_rs_type(t) != GGML_TYPE_COUNT, n a
 * positive multiple of 64) from src into dst, kern_row_bytes(t, n) bytes each, not
 * overlapping. */
void kern_rs_pack_row(enum ggml_type t, const void *src, void *dst, int n);

/* ===== Activation sums for the packed-panel prefill gemm ============================= */

/* What a packed-panel gemm (struct kern's gemm_tiled) reads for each block of an activation
 * row besides its int8 values. Derived exactly from the quantized row, so it changes no
 * numerics: the integer correction is exact, the two floats are the row's own scale and the
 * factor ggml's dot already applies to a weight's min. */
struct kern_xsum {
    int32_t c;  /* -offset * (sum of the block's int8 values), offset being what the packed
                 * weight codes add to the signed values (Q8_0: 128, Q4_0: 8, Q5_0: 16, Q6_K: 32;
                 * 0 for the types with a min), so the integer block sum starts from c */
    float d;    /* the block's activation scale */
    float m;    /* the weight min's factor: Q8_1's s, Q8_K's d * (sum of the 32 values); else 0 */
};

/* Elements per kern_xsum entry for weight type wt: 16 for Q6_K (one scale per 16), 32 for the
 * other quantized types, 0 for F32/F16/BF16 (no sums). */
int kern_xsum_block(enum ggml_type wt);

/* Fill xs[0 .. n / kern_xsum_block(wt)) from one activation row xq of type kern_act_type(wt)
 * and n elements (as quantize_row wrote it). Scalar: it reads each activation byte once per
 * matrix group, next to n_rows multiply-adds per byte in the gemm. No-op for float types. */
void kern_act_sums(enum ggml_type wt, const void *xq, int n, struct kern_xsum *xs);

/* ===== Attention over a block of query rows (prefill) ================================ */

#define KERN_ATTN_MAX_ROWS 64  /* query rows per attn_f32 call */
#define KERN_ATTN_TILE 32      /* positions per tile in the SIMD tables' attn_f32 */

/* One call of attn_f32: causal attention of n_rows query rows against one KV head. */
struct kern_attn {
    int hd;                   /* head size, a multiple of 16 */
    int n_rows;               /* 1..KERN_ATTN_MAX_ROWS */
    const float *const *q;    /* borrowed, n_rows query rows of hd floats */
    float *const *out;        /* borrowed, n_rows output rows of hd floats */
    const int *n_pos;         /* borrowed, per row: it attends positions [0, n_pos[r]), >= 1 */
    const uint16_t *k;        /* borrowed, F16 key of position 0; position p at k + p*kv_stride */
    const uint16_t *v;        /* borrowed, F16 value of position 0, same stride */
    size_t kv_stride;         /* elements between consecutive positions */
    float scale;              /* score = scale * (q . k) */
    float *scratch;           /* kern_attn_scratch_floats(hd) floats, 64-byte aligned, private */
};

/* Floats of scratch one attn_f32 call needs. */
size_t kern_attn_scratch_floats(int hd);

/* ===== The table ===================================================================== */

struct kern {
    const char *name;  /* "ref", "avx2", "avx512" */

    /* Quantize one activation row x[n] (float) to act_type (one of Q8_0, Q8_1, Q8_K, F16,
     * BF16, F32), writing kern_row_bytes(act_type, n) bytes to dst. n must be a multiple of
     * that type's block size. Every table writes identical bytes. */
    void (*quantize_row)(enum ggml_type act_type, const float *x, void *dst, int n);

    /* out[t*ld_out + r] = dot(W row r, activation row t) for r in [r0, r1), t in [0, n_tok).
     * W: weight matrix of type wt, row r at (const char *)W + r*w_row_bytes, n elements per
     *    row (a multiple of the block size; see kern_check_row).
     * xq: n_tok activation rows of type kern_act_type(wt), contiguous, each
     *    kern_row_bytes(kern_act_type(wt), n) bytes (as produced by quantize_row).
     * Overwrites out (does not accumulate). n_tok == 1 is decode (matrix-vector, memory
     * bound); n_tok > 1 is prefill: weight blocks are reused across tokens in registers, so
     * pass as many tokens as you have (tiles are 4 rows x 4 tokens, 2 x 8 for K-quants;
     * leftover tokens cost one decode pass each). Give each thread a contiguous row range
     * (multiples of 4 rows waste nothing). Unsupported wt, r0 >= r1 or n_tok <= 0: out is
     * left untouched (callers check with kern_check_row at load time). */
    void (*gemm)(enum ggml_type wt, const void *W, size_t w_row_bytes, int n, int r0, int r1,
                 const void *xq, int n_tok, float *out, int ld_out);

    /* Prefill over packed panels, NULL in tables without one: the same contract and result as
     * gemm (up to float summation order), for n_tok >= tiled_min_tok(wt). Also reads xs, the
     * n_tok rows of kern_act_sums (each n / kern_xsum_block(wt) entries, contiguous), and
     * uses scratch (tiled_scratch(wt, n) bytes, 64-byte aligned, private to the calling
     * thread) to repack weight rows once per call into the layout its inner loop wants, so
     * give one call all the tokens. Rows are packed tiled_rows at a time: give each thread a
     * multiple of that (any range works; a partial panel costs a full one). */
    void (*gemm_tiled)(enum ggml_type wt, const void *W, size_t w_row_bytes, int n, int r0,
                       int r1, const void *xq, const struct kern_xsum *xs, int n_tok,
                       float *out, int ld_out, void *scratch);
    size_t (*tiled_scratch)(enum ggml_type wt, int n);
    int (*tiled_min_tok)(enum ggml_type wt);  /* fewest tokens for which gemm_tiled beats gemm */
    int tiled_rows;     /* rows per packed panel */

    /* Attention as llama.cpp's tiled CPU flash attention computes it (its path for batches of
     * 64+ tokens): F32 query, scores, softmax and accumulator over F16 keys and values,
     * out[r] = sum_p softmax_p(scale * q[r].k_p) v_p over p < n_pos[r]. ref: one position at
     * a time with an online softmax; SIMD: tiles of KERN_ATTN_TILE positions (keys converted
     * and transposed once per tile for all rows) with the same online softmax per tile. */
    void (*attn_f32)(const struct kern_attn *a);

    /* Attention of n_q query rows against one KV head (the query heads that share it) as
     * llama.cpp's default CPU flash attention computes it (decode and batches under 64
     * tokens), each row on its own: q rounded to F16; for each position p < n_pos:
     * s = scale * (q . k_p); online softmax; acc = acc * rescale + weight * v_p, rounded to
     * F16 after every update; out = acc / sum. q and out hold n_q rows of hd floats, one after
     * the other; K and V rows (F16) at k + p * kv_stride, v + p * kv_stride; hd <= 1024. Every
     * table gives, for each row, exactly what its own dot_f16_f32, axpy_f16_f32 and F16 row
     * conversions composed in that order give for that row alone (the SIMD tables fuse the
     * loop, keep accumulators in registers, and the AVX-512 one runs up to 4 rows per pass
     * over the keys and values). */
    void (*attn_f16)(int hd, int n_q, const float *q, const uint16_t *k, const uint16_t *v,
                     size_t kv_stride, int n_pos, float scale, float *out);

    /* dst[0..n) = the values of one row of type t (any weight or activation type above). */
    void (*dequantize_row)(enum ggml_type t, const void *src, float *dst, int n);

    /* Float helpers (attention over an F16 KV cache, norms, activations). */
    float (*dot_f32)(int n, const float *a, const float *b);
    float (*dot_f16_f32)(int n, const uint16_t *a, const float *b);        /* a: IEEE half */
    void (*axpy_f32)(int n, float alpha, const float *x, float *y);         /* y += alpha*x */
    void (*axpy_f16_f32)(int n, float alpha, const uint16_t *x, float *y);  /* y += alpha*x */
    void (*f32_to_f16_row)(const float *x, uint16_t *y, int n);  /* round to nearest even */
    void (*f16_to_f32_row)(const uint16_t *x, float *y, int n);
    /* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; out may equal x. */
    void (*rmsnorm)(float *out, const float *x, const float *w, int n, float eps);
    /* x[i] = exp(x[i] - max) / sum, in place. */
    void (*softmax)(float *x, int n);
    /* g[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i], in place (SwiGLU). */
    void (*swiglu)(float *g, const float *u, int n);
};

/* The scalar reference table: always available; the specification the others match. */
const struct kern *kern_ref(void);

/* Pick a table. force: NULL or "" or "auto" = the best this CPU supports; "ref", "avx2",
 * "avx512" = exactly that one (AL_EUNSUPPORTED if the CPU or OS lacks it, AL_EUSAGE for an
 * unknown name). The chosen SIMD table is self-checked against kern_ref on a few blocks of
 * every type first and refused (AL_EINTERNAL) if it disagrees; with force == NULL a refused
 * table falls back to the next best. About a millisecond (the self-check); call once. */
const struct kern *kern_select(const char *force, struct al_err *e);

/* Names of the tables this CPU can run, best first, for --help and logs: "avx512 avx2 ref". */
const char *kern_available(void);

#endif
