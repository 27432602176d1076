/* Few-row matmul against 5-bit weights (GGUF Q5_0: w = d * (q5 - 16), q5 in 0..31, one fp16
 * scale d per row per group of 32) with int16 activations, like q8_int16.c (see its header):
 *   y[m, n] = sum_g sx[m, g] * d[n, g] * ((q5[n, g, :] - 16) . xq[m, g, :])
 * Why: Q5_0 is most of Qwen2.5's matrices (132 of 0.5B's 168); as 8-bit codes it takes 1.06
 * bytes per weight, here 0.69 (the GGUF's own size), so decode reads a third fewer bytes and
 * the packing takes ~90 MiB less. The codes and the int32 sums are those of q8_int16.c's
 * Q5_0 packing, so y is bit-identical to it.
 *
 * Packing (`pack_q5`): rows in blocks of 16, each block's groups of 32 columns one after
 * another, Q5_GROUP_BYTES per group: the low 4 bits of the codes in q4.c's nibble layout
 * (8 chunks of 32 bytes: byte 2i + e of chunk c holds columns 4c + e (low nibble) and
 * 4c + 2 + e (high nibble) of row i), then the high bits as 16 little-endian uint32 (word j:
 * bit 2i + e = the high bit of column 2j + e of row i), then the 16 rows' fp16 scales, as
 * llama.cpp's Q5_0 keeps a 4-bit plane and a 1-bit one. Widened to 16-bit words, a nibble
 * chunk is VROWS (code, code) pairs per row, as in q4_int16.c; the high bits of the same
 * pairs are 2 * VROWS bits of one word, turned into 16s in those words (a mask with AVX-512,
 * a compare with AVX2).
 */

#include "int16.h"
#include "native.h"

#define BLOCK_ROWS 16
#define GROUP 32
#define Q5_GROUP_BYTES (256 + 64 + 32)
#define MAX_ROWS GURU_INT16_MAX_ROWS
#define PARTS (BLOCK_ROWS / VROWS)

/* 16 in each 16-bit word whose bit of `bits` (2 * VROWS of them) is set, else 0 */
#if defined(__AVX512F__)
static inline vi sixteens(uint32_t bits) {
    return _mm512_maskz_set1_epi16((__mmask32)bits, 16);
}
#else
static inline vi sixteens(uint32_t bits) {
    const __m256i lanes = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048,
                                            4096, 8192, 16384, (short)0x8000);
    const __m256i set = _mm256_and_si256(_mm256_set1_epi16((short)bits), lanes);
    return _mm256_and_si256(_mm256_cmpeq_epi16(set, lanes), _mm256_set1_epi16(16));
}
#endif

/* Rows VROWS*h.. of one block of 16 weight rows against `rows` (<= MAX_ROWS) rows of x. */
static inline __attribute__((always_inline)) void part_block(
    const int rows, const int16_t *xq, const float *sx, int64_t k, const uint8_t *w, int h,
    float *y, int64_t ldy) {
    const int64_t groups = k / GROUP;
    const vi mask = vi_set1_16(0x0F), offset = vi_set1_16(16);
    vf acc[MAX_ROWS];
    for (int r = 0; r < rows; r++) acc[r] = v_zero();
    for (int64_t g = 0; g < groups; g++) {
        const uint8_t *p = w + g * Q5_GROUP_BYTES;
        const uint32_t *high = (const uint32_t *)(p + 256);
        const int16_t *xg = xq + g * GROUP;
        vi dot[MAX_ROWS];
        for (int r = 0; r < rows; r++) dot[r] = vi_zero();
        for (int c = 0; c < 8; c++) {
            const vi words = widen(p + 32 * c + 2 * VROWS * h);
            /* columns (4c, 4c + 1) and (4c + 2, 4c + 3): high-bit words 2c and 2c + 1 */
            const vi a = vi_sub(vi_or(vi_and(words, mask), sixteens(high[2 * c] >> (2 * VROWS * h))),
                                offset);
            const vi b = vi_sub(vi_or(vi_srli16(words, 4), sixteens(high[2 * c + 1] >> (2 * VROWS * h))),
                                offset);
            for (int r = 0; r < rows; r++) {
                const int32_t *pairs = (const int32_t *)(xg + r * k + 4 * c);
                dot[r] = dot_add(dot[r], a, vi_set1_32(pairs[0]));
                dot[r] = dot_add(dot[r], b, vi_set1_32(pairs[1]));
            }
        }
        const vf d = v_load_half((const uint16_t *)(p + 320 + 2 * VROWS * h));
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
int guru_q5_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                   float *y, int threads) {
    return guru_int16_matmul(x, m, k, w, n, y, threads, Q5_GROUP_BYTES, PARTS, part_block_rows);
}
