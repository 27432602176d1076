/* Few-row matmul against 8-bit weights (Q8_0's layout: w = d * q, q an int8 code, one fp16
 * scale d per row per group of 32) with int16 activations, like q4_int16.c (see its header):
 * each row of x is quantized per group of 32 to int16 (`guru_quantize_int16`), then
 * `vpmaddwd` / `vpdpwssd` multiplies 16 (code, x) pairs into 8 exact int32 sums:
 *   y[m, n] = sum_g sx[m, g] * d[n, g] * (q[n, g, :] . xq[m, g, :])
 * Why: GGUF Q8_0 (q in -128..127) and Q5_0 (w = d * (q5 - 16): the code q5 - 16 in -16..15)
 * are then exactly the model's weights, at a quarter of fp32's bytes (Qwen2.5's presets).
 * |q . xq| <= 128 * 32767 * 32 < 2^31; its conversion to fp32 rounds by <= 2^-24 of it.
 *
 * Packing (`pack_q8`): rows in blocks of 16, each block's groups of 32 columns one after
 * another, GROUP_BYTES per group: 16 chunks of 32 bytes, chunk c holding columns (2c, 2c + 1)
 * of rows 0..15 (bytes 2i, 2i + 1 for row i), then the 16 rows' fp16 scales. A chunk's
 * bytes for rows VROWS*h.. sign-extended to 16-bit words are VROWS dwords, one (code, code)
 * pair per row: exactly `vpmaddwd`'s pairs against one broadcast pair of x.
 */

#include "int16.h"
#include "native.h"

#define BLOCK_ROWS 16
#define GROUP 32
#define GROUP_BYTES (512 + 32)
#define MAX_ROWS GURU_INT16_MAX_ROWS
#define PARTS (BLOCK_ROWS / VROWS)

/* Rows VROWS*h.. of one block of 16 weight rows against `rows` (<= MAX_ROWS) rows of x. */
static inline __attribute__((always_inline)) void part_block(
    const int rows, const int16_t *xq, const float *sx, int64_t k, const uint8_t *w, int h,
    float *y, int64_t ldy) {
    const int64_t groups = k / GROUP;
    vf acc[MAX_ROWS];
    for (int r = 0; r < rows; r++) acc[r] = v_zero();
    for (int64_t g = 0; g < groups; g++) {
        const int8_t *p = (const int8_t *)(w + g * GROUP_BYTES);
        const int16_t *xg = xq + g * GROUP;
        vi dot[MAX_ROWS];
        for (int r = 0; r < rows; r++) dot[r] = vi_zero();
        for (int c = 0; c < GROUP / 2; c++) {
            const vi codes = widen_s8(p + 32 * c + 2 * VROWS * h);
            for (int r = 0; r < rows; r++) {
                const int32_t *pairs = (const int32_t *)(xg + r * k);
                dot[r] = dot_add(dot[r], codes, vi_set1_32(pairs[c]));
            }
        }
        const vf d = v_load_half((const uint16_t *)(p + 512 + 2 * VROWS * h));
        for (int r = 0; r < rows; r++)
            acc[r] = v_fmadd(v_mul(vi_to_ps(dot[r]), d), v_set1(sx[r * groups + g]), acc[r]);
    }
    for (int r = 0; r < rows; r++) v_store(y + r * ldy + VROWS * h, acc[r]);
}

static void part_block_rows(int rows, const int16_t *xq, const float *sx, const float *sums,
                            int64_t k, const uint8_t *w, int h, float *y, int64_t ldy) {
    (void)sums; /* signed codes: no affine minimum */
    switch (rows) {
    case 1: part_block(1, xq, sx, k, w, h, y, ldy); break;
    case 2: part_block(2, xq, sx, k, w, h, y, ldy); break;
    case 3: part_block(3, xq, sx, k, w, h, y, ldy); break;
    case 4: part_block(4, xq, sx, k, w, h, y, ldy); break;
    case 5: part_block(5, xq, sx, k, w, h, y, ldy); break;
    case 6: part_block(6, xq, sx, k, w, h, y, ldy); break;
    case 7: part_block(7, xq, sx, k, w, h, y, ldy); break;
    default: part_block(8, xq, sx, k, w, h, y, ldy); break;
    }
}

/* y [m, n] = x [m, k] @ W.T for W [n, k] packed as above (n % 16 == 0, k % 32 == 0).
 * Returns 0, or -1 when scratch memory could not be allocated. */
int guru_q8_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                   float *y, int threads) {
    return guru_int16_matmul(x, m, k, w, n, y, threads, GROUP_BYTES, PARTS, part_block_rows);
}
