/* Rows of activations quantized to int16 per group of 32, for the integer-dot-product
 * kernels (q4_int16.c, q8_int16.c): each group gets its own scale (its largest magnitude
 * over 32767), so the error is <= 1/65534 of that value. Plain C, the same in every variant.
 *
 * x [m, k] -> xq [m, k], scales sx [m, k / 32], and each group's sum of codes (as float). */
#include "native.h"

#define GROUP 32

void guru_quantize_int16(const float *x, int64_t m, int64_t k, int16_t *xq, float *sx,
                         float *sums) {
    const int64_t groups = k / GROUP;
    for (int64_t i = 0; i < m * groups; i++) {
        const float *v = x + i * GROUP;
        float top = 0.0f;
        for (int j = 0; j < GROUP; j++) top = __builtin_fabsf(v[j]) > top ? __builtin_fabsf(v[j]) : top;
        const float inv = top > 0.0f ? 32767.0f / top : 0.0f;
        int32_t total = 0;
        for (int j = 0; j < GROUP; j++) {
            /* round half to even (the default MXCSR mode), as torch.round does */
            const int32_t q = _mm_cvtss_si32(_mm_set_ss(v[j] * inv));
            xq[i * GROUP + j] = (int16_t)q;
            total += q;
        }
        sx[i] = top / 32767.0f;
        sums[i] = (float)total;
    }
}
