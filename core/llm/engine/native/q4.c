/* Few-row matmul against 4-bit weights (GGUF Q4_1 blocks) on AVX512-BF16.
 *
 * Why not torch's int4 kernel: it dequantizes the weights once per 4 rows of input and
 * accumulates in fp32 FMAs, so a decode step of 8 sequences costs twice one of 4. Here each
 * 4-bit code becomes a bf16 value once (a table lookup, exact for 0..15) and serves every row
 * through `vdpbf16ps` (32 products per instruction), with the group's scale applied once per
 * group: y[m, n] = sum_g d[n, g] * (q[n, g, :] . x[m, g, :]) + lo[n, g] * sum(x[m, g, :]).
 * x is rounded to bf16 (as torch's kernel does); d and lo are GGUF's own fp16 values.
 *
 * Layout, built by core/llm/engine/native/__init__.py `pack_q4`: rows in blocks of 16; per block,
 * its groups of 32 columns one after another, each GROUP_BYTES:
 *   256 bytes of codes: 8 chunks of 32 bytes; byte j of chunk c holds row j/2's codes for
 *     columns 4c + j%2 (low nibble) and 4c + 2 + j%2 (high nibble) of the group;
 *   16 fp16 scales d, then 16 fp16 offsets lo (one per row of the block).
 * So a chunk widened to 32 words gives, per nibble, 16 lanes of (row, column pair): exactly
 * the operand `vdpbf16ps` multiplies with one broadcast pair of x.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

#define BLOCK_ROWS 16
#define GROUP 32
#define GROUP_BYTES (256 + 64)
#define MAX_ROWS 8 /* rows of x per pass: 8 accumulators + 8 group sums in registers */

static inline uint16_t to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bits += 0x7FFF + ((bits >> 16) & 1); /* round to nearest even */
    return (uint16_t)(bits >> 16);
}

static inline float from_bf16(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* x [m, k] fp32 -> bf16 copy, and each group's sum of the rounded values. */
static void round_rows(const float *x, int64_t m, int64_t k, uint16_t *xb, float *sums) {
    const int64_t groups = k / GROUP;
    for (int64_t r = 0; r < m; r++) {
        for (int64_t g = 0; g < groups; g++) {
            float s = 0.0f;
            for (int j = 0; j < GROUP; j++) {
                uint16_t h = to_bf16(x[r * k + g * GROUP + j]);
                xb[r * k + g * GROUP + j] = h;
                s += from_bf16(h);
            }
            sums[r * groups + g] = s;
        }
    }
}

static inline __m512bh pair(const uint16_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return (__m512bh)_mm512_set1_epi32((int)v);
}

/* One block of 16 weight rows against `rows` (<= MAX_ROWS) rows of x. Inlined with a
 * constant `rows`, so the accumulator arrays live in registers. */
static inline __attribute__((always_inline)) void block(
    const int rows, const uint16_t *xb, const float *sums, int64_t k, const uint8_t *w,
    float *y, int64_t ldy) {
    const int64_t groups = k / GROUP;
    const __m512i mask = _mm512_set1_epi16(0x0F);
    /* words 0..15: bf16 of 0..15 (vpermw indexes the first 16 words with codes 0..15) */
    const __m512i table = _mm512_set_epi16(
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0x4170, 0x4160, 0x4150, 0x4140, 0x4130, 0x4120, 0x4110, 0x4100,
        0x40E0, 0x40C0, 0x40A0, 0x4080, 0x4040, 0x4000, 0x3F80, 0x0000);
    __m512 acc[MAX_ROWS];
    for (int r = 0; r < rows; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *p = w + g * GROUP_BYTES;
        const uint16_t *xg = xb + g * GROUP;
        __m512 dot[MAX_ROWS];
        for (int r = 0; r < rows; r++) dot[r] = _mm512_setzero_ps();
        for (int c = 0; c < 8; c++) {
            const __m256i bytes = _mm256_loadu_si256((const __m256i *)(p + 32 * c));
            const __m512i codes = _mm512_cvtepu8_epi16(bytes);
            const __m512i low = _mm512_and_si512(codes, mask), high = _mm512_srli_epi16(codes, 4);
            const __m512bh lo_pairs = (__m512bh)_mm512_permutexvar_epi16(low, table);
            const __m512bh hi_pairs = (__m512bh)_mm512_permutexvar_epi16(high, table);
            for (int r = 0; r < rows; r++) {
                const uint16_t *xr = xg + r * k + 4 * c;
                dot[r] = _mm512_dpbf16_ps(dot[r], lo_pairs, pair(xr));
                dot[r] = _mm512_dpbf16_ps(dot[r], hi_pairs, pair(xr + 2));
            }
        }
        __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 256)));
        __m512 lo = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 288)));
        for (int r = 0; r < rows; r++) {
            acc[r] = _mm512_fmadd_ps(dot[r], d, acc[r]);
            acc[r] = _mm512_fmadd_ps(lo, _mm512_set1_ps(sums[r * groups + g]), acc[r]);
        }
    }
    for (int r = 0; r < rows; r++) _mm512_storeu_ps(y + r * ldy, acc[r]);
}

static void block_rows(int rows, const uint16_t *xb, const float *sums, int64_t k,
                       const uint8_t *w, float *y, int64_t ldy) {
    switch (rows) {
    case 1: block(1, xb, sums, k, w, y, ldy); break;
    case 2: block(2, xb, sums, k, w, y, ldy); break;
    case 3: block(3, xb, sums, k, w, y, ldy); break;
    case 4: block(4, xb, sums, k, w, y, ldy); break;
    case 5: block(5, xb, sums, k, w, y, ldy); break;
    case 6: block(6, xb, sums, k, w, y, ldy); break;
    case 7: block(7, xb, sums, k, w, y, ldy); break;
    default: block(8, xb, sums, k, w, y, ldy); break;
    }
}

/* y [m, n] = x [m, k] @ W.T for W [n, k] packed as above (n % 16 == 0, k % 32 == 0).
 * Returns 0, or -1 when scratch memory could not be allocated. */
int guru_q4_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                   float *y, int threads) {
    const int64_t groups = k / GROUP;
    const int64_t blocks = n / BLOCK_ROWS;
    const int64_t block_bytes = groups * GROUP_BYTES;
    uint16_t *xb = malloc(sizeof(uint16_t) * m * k);
    float *sums = malloc(sizeof(float) * m * groups);
    if (!xb || !sums) {
        free(xb);
        free(sums);
        return -1;
    }
    round_rows(x, m, k, xb, sums);
    for (int64_t r0 = 0; r0 < m; r0 += MAX_ROWS) {
        const int rows = (int)(m - r0 < MAX_ROWS ? m - r0 : MAX_ROWS);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
        for (int64_t b = 0; b < blocks; b++) {
            block_rows(rows, xb + r0 * k, sums + r0 * groups, k, w + b * block_bytes,
                       y + r0 * n + b * BLOCK_ROWS, n);
        }
    }
    free(xb);
    free(sums);
    return 0;
}
