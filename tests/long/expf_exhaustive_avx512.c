/* expf_exhaustive_avx512.c -- `make check-expf`: the decode softmax's expf_libm4 (both SIMD
 * tables) and expf_libm8 (AVX-512) against the C library's expf on all 2^32 float inputs,
 * bit for bit (any NaN for a NaN). They must agree so that attention weights are the ones
 * llama.cpp's expf calls give. ~30 s on one Zen 5 core; not part of `make test`, whose
 * attn_f16_composes_table_helpers covers the kernels on data. Exit 1 on any mismatch. */
#include "engine/kernels/simd_impl.h"

#include <math.h>
#include <stdio.h>

int
main(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq") ||
        !__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("fma")) {
        puts("check-expf: skipped, this CPU lacks AVX-512 VNNI");
        return 0;
    }
    unsigned long long bad4 = 0, bad8 = 0;
    for (unsigned long long u = 0; u < (1ull << 32); u += 8) {
        float x[8], a[8], b[8];
        for (int i = 0; i < 8; i++) {
            uint32_t w = (uint32_t)(u + (unsigned)i);
            memcpy(&x[i], &w, 4);
        }
        _mm256_storeu_ps(a, expf_libm8(_mm256_loadu_ps(x)));
        _mm_storeu_ps(b, expf_libm4(_mm_loadu_ps(x)));
        _mm_storeu_ps(b + 4, expf_libm4(_mm_loadu_ps(x + 4)));
        for (int i = 0; i < 8; i++) {
            float want = expf(x[i]);
            uint32_t uw, ua, ub;
            memcpy(&uw, &want, 4);
            memcpy(&ua, &a[i], 4);
            memcpy(&ub, &b[i], 4);
            bool nan = isnan(want);
            if (nan ? !isnan(a[i]) : ua != uw) {
                if (bad8++ < 5)
                    printf("expf_libm8(%a) = %a, expf gives %a\n", x[i], a[i], want);
            }
            if (nan ? !isnan(b[i]) : ub != uw) {
                if (bad4++ < 5)
                    printf("expf_libm4(%a) = %a, expf gives %a\n", x[i], b[i], want);
            }
        }
    }
    printf("check-expf: all 2^32 inputs, mismatches: expf_libm4 %llu, expf_libm8 %llu\n", bad4,
           bad8);
    return bad4 || bad8;
}
