/* Rows of activations quantized to int16 per group of 32, and the driver that runs the
 * integer-dot-product kernels (q4_int16.c, q8_int16.c, q5_int16.c) over them: each group
 * gets its own scale (its largest magnitude over 32767), so the error is <= 1/65534 of that
 * value. Plain C, the same in every variant.
 *
 * x [m, k] -> xq [m, k], scales sx [m, k / 32], and each group's sum of codes (as float). */
#include <stdlib.h>

#include "native.h"

#define BLOCK_ROWS 16
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

/* y [m, n] = x [m, k] @ W.T for W [n, k] in one int16 layout (n % 16 == 0, k % 32 == 0):
 * see native.h. Returns 0, or -1 when scratch memory could not be allocated. */
int guru_int16_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                      float *y, int threads, int64_t group_bytes, int parts,
                      guru_int16_part part) {
    const int64_t groups = k / GROUP, tasks = parts * (n / BLOCK_ROWS);
    const int64_t block_bytes = groups * group_bytes;
    int16_t *xq = malloc(sizeof(int16_t) * m * k);
    float *sx = malloc(sizeof(float) * m * groups), *sums = malloc(sizeof(float) * m * groups);
    if (!xq || !sx || !sums) {
        free(xq);
        free(sx);
        free(sums);
        return -1;
    }
    guru_quantize_int16(x, m, k, xq, sx, sums);
    for (int64_t r0 = 0; r0 < m; r0 += GURU_INT16_MAX_ROWS) {
        const int rows = (int)(m - r0 < GURU_INT16_MAX_ROWS ? m - r0 : GURU_INT16_MAX_ROWS);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
        for (int64_t i = 0; i < tasks; i++) {
            part(rows, xq + r0 * k, sx + r0 * groups, sums + r0 * groups, k,
                 w + (i / parts) * block_bytes, (int)(i % parts),
                 y + r0 * n + (i / parts) * BLOCK_ROWS, n);
        }
    }
    free(xq);
    free(sx);
    free(sums);
    return 0;
}
