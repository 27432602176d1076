/* Few-row matmul against 4-bit weights (GGUF Q4_1 blocks) on AVX2 + FMA + F16C.
 *
 * Same packing as q4.c (see its header; built by `pack_q4`), for CPUs without AVX512-BF16.
 * Each weight becomes its exact fp32 value once, w = lo + d * q (one FMA for 8 rows of a
 * column), and serves up to MAX_ROWS rows of x through fp32 FMAs. x is NOT rounded: this
 * path computes what the dense fp32 matmul computes, up to summation order. (The llama.cpp
 * way, 8-bit activations against `maddubs`, does more products per instruction but rounds
 * x to 8 bits; at decode's few rows reading the weights dominates, and exactness keeps the
 * quality gate's answers equal to fp32's.)
 *
 * A chunk's 16 bytes for rows 8h..8h+7 widened to 16-bit words are 8 dwords, one per row:
 * byte 2i (low word) holds columns 4c and 4c + 2 of row i, byte 2i + 1 (high word) 4c + 1
 * and 4c + 3, so four shifts and masks give the chunk's four columns as 8-row vectors.
 */
#include <stdlib.h>

#include "native.h"

#define BLOCK_ROWS 16
#define GROUP 32
#define GROUP_BYTES (256 + 64)
#define MAX_ROWS 8 /* rows of x per pass: 8 accumulators + the dequantized column */

static inline __m256 column(__m256i words, int shift, __m256 d, __m256 lo) {
    const __m256i q = _mm256_and_si256(_mm256_srli_epi32(words, shift), _mm256_set1_epi32(0x0F));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), d, lo);
}

/* Rows 8h..8h+7 of one block of 16 weight rows against `rows` (<= MAX_ROWS) rows of x.
 * Inlined with a constant `rows`, so the accumulators live in registers. */
static inline __attribute__((always_inline)) void half_block(
    const int rows, const float *x, int64_t k, const uint8_t *w, int h, float *y, int64_t ldy) {
    const int64_t groups = k / GROUP;
    __m256 acc[MAX_ROWS];
    for (int r = 0; r < rows; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *p = w + g * GROUP_BYTES;
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 256 + 16 * h)));
        const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 288 + 16 * h)));
        const float *xg = x + g * GROUP;
        for (int c = 0; c < 8; c++) {
            const __m256i words =
                _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 32 * c + 16 * h)));
            const __m256 w0 = column(words, 0, d, lo), w2 = column(words, 4, d, lo);
            const __m256 w1 = column(words, 16, d, lo), w3 = column(words, 20, d, lo);
            for (int r = 0; r < rows; r++) {
                const float *xr = xg + r * k + 4 * c;
                acc[r] = _mm256_fmadd_ps(w0, _mm256_broadcast_ss(xr), acc[r]);
                acc[r] = _mm256_fmadd_ps(w1, _mm256_broadcast_ss(xr + 1), acc[r]);
                acc[r] = _mm256_fmadd_ps(w2, _mm256_broadcast_ss(xr + 2), acc[r]);
                acc[r] = _mm256_fmadd_ps(w3, _mm256_broadcast_ss(xr + 3), acc[r]);
            }
        }
    }
    for (int r = 0; r < rows; r++) _mm256_storeu_ps(y + r * ldy + 8 * h, acc[r]);
}

static void half_block_rows(int rows, const float *x, int64_t k, const uint8_t *w, int h,
                            float *y, int64_t ldy) {
    switch (rows) {
    case 1: half_block(1, x, k, w, h, y, ldy); break;
    case 2: half_block(2, x, k, w, h, y, ldy); break;
    case 3: half_block(3, x, k, w, h, y, ldy); break;
    case 4: half_block(4, x, k, w, h, y, ldy); break;
    case 5: half_block(5, x, k, w, h, y, ldy); break;
    case 6: half_block(6, x, k, w, h, y, ldy); break;
    case 7: half_block(7, x, k, w, h, y, ldy); break;
    default: half_block(8, x, k, w, h, y, ldy); break;
    }
}

/* y [m, n] = x [m, k] @ W.T for W [n, k] packed as in q4.c (n % 16 == 0, k % 32 == 0).
 * Returns 0 (no scratch memory: the signature matches q4.c's, which can fail). */
int guru_q4_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                   float *y, int threads) {
    const int64_t halves = 2 * (n / BLOCK_ROWS);
    const int64_t block_bytes = (k / GROUP) * GROUP_BYTES;
    for (int64_t r0 = 0; r0 < m; r0 += MAX_ROWS) {
        const int rows = (int)(m - r0 < MAX_ROWS ? m - r0 : MAX_ROWS);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
        for (int64_t i = 0; i < halves; i++) {
            half_block_rows(rows, x + r0 * k, k, w + (i / 2) * block_bytes, (int)(i % 2),
                            y + r0 * n + (i / 2) * BLOCK_ROWS, n);
        }
    }
    return 0;
}
