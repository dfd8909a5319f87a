/* avx2.c -- the avx2 kernel table: AVX2 + FMA + F16C, integer dots with maddubs/madd,
 * 3x4 (32-blocks, floats) and 2x8 (K-quants) prefill tiles, decode row by row (two 32-block rows
 * per pass; K-quant rows one at a time; float rows in 4-row tiles).
 * Built with ISA flags (the Makefile gives them by file name, to this file and its sibling
 * only); select.c calls into this table only after CPUID + XGETBV confirm the features.
 * The implementation is shared with the other SIMD table in simd_impl.h; ref.c is the
 * specification both match. Inputs as in kernels.h (weight bytes bounds-checked by the loader). */
#include "engine/kernels/simd_impl.h"

const struct kern kern_table_avx2 = {
    .name = "avx2",
    .quantize_row = simd_quantize_row,
    .gemm = simd_gemm,
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
