/* internal.h -- declarations shared by the files of src/engine/kernels only (never included
 * outside it): the three tables and the scalar routines SIMD tables reuse where vectorising
 * would buy nothing (activation quantization of the rare types, dequantization, norms).
 * The public contract is kernels.h. */
#ifndef AIRLOCK_ENGINE_KERNELS_INTERNAL_H
#define AIRLOCK_ENGINE_KERNELS_INTERNAL_H

#include "engine/kernels/kernels.h"

extern const struct kern kern_table_ref;
extern const struct kern kern_table_avx2;
extern const struct kern kern_table_avx512;

/* Scalar reference entry points (ref.c), callable from any table. */
void ref_quantize_row(enum ggml_type act_type, const float *x, void *dst, int n);
void ref_dequantize_row(enum ggml_type t, const void *src, float *dst, int n);
void ref_gemm(enum ggml_type wt, const void *w, size_t w_row_bytes, int n, int r0, int r1,
              const void *xq, int n_tok, float *out, int ld_out);
float ref_dot_f32(int n, const float *a, const float *b);
float ref_dot_f16_f32(int n, const uint16_t *a, const float *b);
void ref_axpy_f32(int n, float alpha, const float *x, float *y);
void ref_axpy_f16_f32(int n, float alpha, const uint16_t *x, float *y);
void ref_f32_to_f16_row(const float *x, uint16_t *y, int n);
void ref_f16_to_f32_row(const uint16_t *x, float *y, int n);
void ref_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
void ref_softmax(float *x, int n);
void ref_swiglu(float *g, const float *u, int n);
void ref_attn_f32(const struct kern_attn *a);
void ref_attn_f16(int hd, int n_q, const float *q, const uint16_t *k, const uint16_t *v,
                  size_t kv_stride, int n_pos, float scale, float *out);

#endif
