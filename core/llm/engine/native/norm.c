/* RMSNorm of a few rows (decode), one pass per row; torch runs it on the CPU as ~6 separate
 * ops. Same arithmetic as LlamaRMSNorm in fp32: x * rsqrt(mean(x^2) + eps) * weight. */
#include <math.h>

#include "native.h"

void guru_rms_norm(const float *x, const float *weight, int64_t rows, int64_t dim, float eps,
                   float *out) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *yr = out + r * dim;
        vf acc = v_zero();
        int64_t i = 0;
        for (; i + VW <= dim; i += VW) {
            const vf v = v_load(xr + i);
            acc = v_fmadd(v, v, acc);
        }
        float sum = v_sum(acc);
        for (; i < dim; i++) sum += xr[i] * xr[i];
        const float inv = 1.0f / sqrtf(sum / (float)dim + eps);
        const vf scale = v_set1(inv);
        for (i = 0; i + VW <= dim; i += VW)
            v_store(yr + i, v_mul(v_mul(v_load(xr + i), scale), v_load(weight + i)));
        for (; i < dim; i++) yr[i] = xr[i] * inv * weight[i];
    }
}
