/* kernels.h -- the engine's compute kernels: one const table of function pointers per
 * instruction set (scalar reference, AVX2, AVX-512), picked once at startup by kern_select and
 * then reached only through the table (the model never contains #ifdef __AVX2__).
 *
 * Owns: activation quantization, quantized matrix x matrix products (gemm), dequantization,
 * the float helpers attention and the norms use. Does not own threading (the caller splits
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
 * Q4_K, Q5_K, Q6_K. (Q8_1/Q8_K are activation-only types.) */
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
 * n > 0, n a multiple of the block size, n <= INT32_MAX. AL_EUNSUPPORTED / AL_EFORMAT. */
int kern_check_row(enum ggml_type wt, int64_t n, struct al_err *e);

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
