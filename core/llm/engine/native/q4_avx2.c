/* Few-row matmul against 4-bit weights (GGUF Q4_1 blocks) on AVX2 + FMA + F16C.
 *
 * Same packing as q4.c (see its header; built by `pack_q4`), for CPUs without AVX512-BF16.
 * Integer dot products, as llama.cpp does on such CPUs, but against 16-bit activations: each
 * row of x is quantized per group of 32 to int16 with its own scale (error <= 1/65534 of the
 * group's largest value, where bf16 rounds every value by up to 1/512 and llama.cpp's 8-bit
 * activations by up to 1/254 of the largest), then `vpmaddwd` multiplies 16 (code, x) pairs
 * into 8 exact int32 sums per instruction:
 *   y[m, n] = sum_g sx[m, g] * (d[n, g] * (q[n, g, :] . xq[m, g, :]) + lo[n, g] * sum(xq[m, g, :]))
 * Per group |q . xq| <= 15 * 32767 * 32 < 2^24, so its conversion to fp32 is exact.
 * (Dequantizing every weight to fp32 and FMA-ing it was ~1.8x the instructions at one row.)
 *
 * A chunk's 16 bytes for rows 8h..8h+7 widened to 16-bit words are 8 dwords, one per row;
 * masking each word's low nibble gives the codes of columns (4c, 4c + 1) of that row, its high
 * nibble those of (4c + 2, 4c + 3): exactly `vpmaddwd`'s pairs against one broadcast pair of x.
 */
#include <stdlib.h>

#include "native.h"

#define BLOCK_ROWS 16
#define GROUP 32
#define GROUP_BYTES (256 + 64)
#define MAX_ROWS 8 /* rows of x per pass: 8 int32 sums + 8 fp32 accumulators in registers */

/* dot += pairwise products of a and b summed into int32 lanes: one `vpdpwssd` with AVX-VNNI
 * (the avx2vnni variant is built with -mavxvnni), else `vpmaddwd` + `vpaddd`. */
static inline __m256i dot_add(__m256i dot, __m256i a, __m256i b) {
#if defined(__AVXVNNI__)
    return _mm256_dpwssd_avx_epi32(dot, a, b);
#else
    return _mm256_add_epi32(dot, _mm256_madd_epi16(a, b));
#endif
}

/* x [m, k] -> int16 xq, with per-group scales sx and sums of xq (as float). */
static void quantize_rows(const float *x, int64_t m, int64_t k, int16_t *xq, float *sx,
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

/* Rows 8h..8h+7 of one block of 16 weight rows against `rows` (<= MAX_ROWS) rows of x.
 * Inlined with a constant `rows`, so the accumulators live in registers. */
static inline __attribute__((always_inline)) void half_block(
    const int rows, const int16_t *xq, const float *sx, const float *sums, int64_t k,
    const uint8_t *w, int h, float *y, int64_t ldy) {
    const int64_t groups = k / GROUP;
    const __m256i mask = _mm256_set1_epi16(0x0F);
    __m256 acc[MAX_ROWS];
    for (int r = 0; r < rows; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *p = w + g * GROUP_BYTES;
        const int16_t *xg = xq + g * GROUP;
        __m256i dot[MAX_ROWS];
        for (int r = 0; r < rows; r++) dot[r] = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            const __m256i words =
                _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 32 * c + 16 * h)));
            const __m256i low = _mm256_and_si256(words, mask);
            const __m256i high = _mm256_srli_epi16(words, 4);
            for (int r = 0; r < rows; r++) {
                const int32_t *pairs = (const int32_t *)(xg + r * k + 4 * c);
                dot[r] = dot_add(dot[r], low, _mm256_set1_epi32(pairs[0]));
                dot[r] = dot_add(dot[r], high, _mm256_set1_epi32(pairs[1]));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 256 + 16 * h)));
        const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 288 + 16 * h)));
        for (int r = 0; r < rows; r++) {
            const __m256 s = _mm256_set1_ps(sx[r * groups + g]);
            __m256 t = _mm256_mul_ps(lo, _mm256_set1_ps(sums[r * groups + g]));
            t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r]), d, t);
            acc[r] = _mm256_fmadd_ps(t, s, acc[r]);
        }
    }
    for (int r = 0; r < rows; r++) _mm256_storeu_ps(y + r * ldy + 8 * h, acc[r]);
}

static void half_block_rows(int rows, const int16_t *xq, const float *sx, const float *sums,
                            int64_t k, const uint8_t *w, int h, float *y, int64_t ldy) {
    switch (rows) {
    case 1: half_block(1, xq, sx, sums, k, w, h, y, ldy); break;
    case 2: half_block(2, xq, sx, sums, k, w, h, y, ldy); break;
    case 3: half_block(3, xq, sx, sums, k, w, h, y, ldy); break;
    case 4: half_block(4, xq, sx, sums, k, w, h, y, ldy); break;
    case 5: half_block(5, xq, sx, sums, k, w, h, y, ldy); break;
    case 6: half_block(6, xq, sx, sums, k, w, h, y, ldy); break;
    case 7: half_block(7, xq, sx, sums, k, w, h, y, ldy); break;
    default: half_block(8, xq, sx, sums, k, w, h, y, ldy); break;
    }
}

/* y [m, n] = x [m, k] @ W.T for W [n, k] packed as in q4.c (n % 16 == 0, k % 32 == 0).
 * Returns 0, or -1 when scratch memory could not be allocated. */
int guru_q4_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                   float *y, int threads) {
    const int64_t groups = k / GROUP, halves = 2 * (n / BLOCK_ROWS);
    const int64_t block_bytes = groups * GROUP_BYTES;
    int16_t *xq = malloc(sizeof(int16_t) * m * k);
    float *sx = malloc(sizeof(float) * m * groups), *sums = malloc(sizeof(float) * m * groups);
    if (!xq || !sx || !sums) {
        free(xq);
        free(sx);
        free(sums);
        return -1;
    }
    quantize_rows(x, m, k, xq, sx, sums);
    for (int64_t r0 = 0; r0 < m; r0 += MAX_ROWS) {
        const int rows = (int)(m - r0 < MAX_ROWS ? m - r0 : MAX_ROWS);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
        for (int64_t i = 0; i < halves; i++) {
            half_block_rows(rows, xq + r0 * k, sx + r0 * groups, sums + r0 * groups, k,
                            w + (i / 2) * block_bytes, (int)(i % 2),
                            y + r0 * n + (i / 2) * BLOCK_ROWS, n);
        }
    }
    free(xq);
    free(sx);
    free(sums);
    return 0;
}
