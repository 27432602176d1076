/* RMSNorm of a few rows (decode), one pass per row; torch runs it on the CPU as ~6 separate
 * ops. Same arithmetic as LlamaRMSNorm in fp32: x * rsqrt(mean(x^2) + eps) * weight. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "native.h"

void guru_rms_norm(const float *x, const float *weight, int64_t rows, int64_t dim, float eps,
                   float *out) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = out + r * dim;
        __m512 acc = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= dim; i += 16) {
            __m512 v = _mm512_loadu_ps(xr + i);
            acc = _mm512_fmadd_ps(v, v, acc);
        }
        float sum = _mm512_reduce_add_ps(acc);
        for (; i < dim; i++) sum += xr[i] * xr[i];
        const float inv = 1.0f / sqrtf(sum / (float)dim + eps);
        const __m512 scale = _mm512_set1_ps(inv);
        for (i = 0; i + 16 <= dim; i += 16) {
            __m512 v = _mm512_mul_ps(_mm512_loadu_ps(xr + i), scale);
            _mm512_storeu_ps(yr + i, _mm512_mul_ps(v, _mm512_loadu_ps(weight + i)));
        }
        for (; i < dim; i++) yr[i] = xr[i] * inv * weight[i];
    }
}
