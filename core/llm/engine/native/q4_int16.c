/* Few-row matmul against 4-bit weights (GGUF Q4_1 blocks) with int16 activations, for CPUs
 * without AVX512-BF16: AVX2 + FMA + F16C (8 weight rows per vector), with AVX-VNNI, or AVX-512
 * with AVX512-VNNI (16 rows per vector). Same packing as q4.c (see its header; `pack_q4`).
 * Integer dot products, as llama.cpp does on such CPUs, but against 16-bit activations: each
 * row of x is quantized per group of 32 to int16 with its own scale (error <= 1/65534 of the
 * group's largest value, where bf16 rounds every value by up to 1/512 and llama.cpp's 8-bit
 * activations by up to 1/254 of the largest), then `vpmaddwd` multiplies 16 (code, x) pairs
 * into 8 exact int32 sums per instruction:
 *   y[m, n] = sum_g sx[m, g] * (d[n, g] * (q[n, g, :] . xq[m, g, :]) + lo[n, g] * sum(xq[m, g, :]))
 * Per group |q . xq| <= 15 * 32767 * 32 < 2^24, so its conversion to fp32 is exact.
 * (Dequantizing every weight to fp32 and FMA-ing it was ~1.8x the instructions at one row.)
 *
 * A chunk's bytes for rows VROWS*h.. widened to 16-bit words are VROWS dwords, one per row;
 * masking each word's low nibble gives the codes of columns (4c, 4c + 1) of that row, its high
 * nibble those of (4c + 2, 4c + 3): exactly `vpmaddwd`'s pairs against one broadcast pair of x.
 */

#include "int16.h"
#include "native.h"

#define BLOCK_ROWS 16
#define GROUP 32
#define GROUP_BYTES (256 + 64)
#define MAX_ROWS GURU_INT16_MAX_ROWS

#define PARTS (BLOCK_ROWS / VROWS) /* vectors of rows per block */

/* Rows VROWS*h.. of one block of 16 weight rows against `rows` (<= MAX_ROWS) rows of x.
 * Inlined with a constant `rows`, so the accumulators live in registers. */
static inline __attribute__((always_inline)) void part_block(
    const int rows, const int16_t *xq, const float *sx, const float *sums, int64_t k,
    const uint8_t *w, int h, float *y, int64_t ldy) {
    const int64_t groups = k / GROUP;
    const vi mask = vi_set1_16(0x0F);
    vf acc[MAX_ROWS];
    for (int r = 0; r < rows; r++) acc[r] = v_zero();
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *p = w + g * GROUP_BYTES;
        const int16_t *xg = xq + g * GROUP;
        vi dot[MAX_ROWS];
        for (int r = 0; r < rows; r++) dot[r] = vi_zero();
        for (int c = 0; c < 8; c++) {
            const vi words = widen(p + 32 * c + 2 * VROWS * h);
            const vi low = vi_and(words, mask), high = vi_srli16(words, 4);
            for (int r = 0; r < rows; r++) {
                const int32_t *pairs = (const int32_t *)(xg + r * k + 4 * c);
                dot[r] = dot_add(dot[r], low, vi_set1_32(pairs[0]));
                dot[r] = dot_add(dot[r], high, vi_set1_32(pairs[1]));
            }
        }
        const vf d = v_load_half((const uint16_t *)(p + 256 + 2 * VROWS * h));
        const vf lo = v_load_half((const uint16_t *)(p + 288 + 2 * VROWS * h));
        for (int r = 0; r < rows; r++) {
            const vf t = v_fmadd(vi_to_ps(dot[r]), d, v_mul(lo, v_set1(sums[r * groups + g])));
            acc[r] = v_fmadd(t, v_set1(sx[r * groups + g]), acc[r]);
        }
    }
    for (int r = 0; r < rows; r++) v_store(y + r * ldy + VROWS * h, acc[r]);
}

static void part_block_rows(int rows, const int16_t *xq, const float *sx, const float *sums,
                            int64_t k, const uint8_t *w, int h, float *y, int64_t ldy) {
    switch (rows) {
    case 1: part_block(1, xq, sx, sums, k, w, h, y, ldy); break;
    case 2: part_block(2, xq, sx, sums, k, w, h, y, ldy); break;
    case 3: part_block(3, xq, sx, sums, k, w, h, y, ldy); break;
    case 4: part_block(4, xq, sx, sums, k, w, h, y, ldy); break;
    case 5: part_block(5, xq, sx, sums, k, w, h, y, ldy); break;
    case 6: part_block(6, xq, sx, sums, k, w, h, y, ldy); break;
    case 7: part_block(7, xq, sx, sums, k, w, h, y, ldy); break;
    default: part_block(8, xq, sx, sums, k, w, h, y, ldy); break;
    }
}

/* y [m, n] = x [m, k] @ W.T for W [n, k] packed as in q4.c (n % 16 == 0, k % 32 == 0).
 * Returns 0, or -1 when scratch memory could not be allocated. */
int guru_q4_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                   float *y, int threads) {
    return guru_int16_matmul(x, m, k, w, n, y, threads, GROUP_BYTES, PARTS, part_block_rows);
}
