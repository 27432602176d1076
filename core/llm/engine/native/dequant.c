/* The 4-bit packing (q4.c's layout) back to dense weights, for a prompt's matmuls.
 *
 * Why: prompts are compute-bound, so they run dense matmuls (bf16 where the CPU has native
 * bf16 dot products, else fp32) on weights made per layer per prefill pass. Making them from
 * the packing instead of the model's fp32 tensors means those tensors (mmapped from the
 * safetensors file) are never read after packing, so they never become resident: the loaded
 * model keeps 0.6 bytes per weight instead of 4.6. Plain C, the same in every variant.
 *
 * out [n, k] = lo + d * q per group of 32, as fp32 or rounded to bf16 (nearest even).
 */
#include <string.h>

#include "native.h"

#define BLOCK_ROWS 16
#define GROUP 32
#define GROUP_BYTES (256 + 64)

static inline uint16_t round_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bits += 0x7FFF + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}

/* One dequantized group of a row into out at element `at`: fp32, or rounded to bf16. */
static inline void store_row(void *out, int64_t at, const float row[GROUP], int bf16) {
    if (bf16)
        for (int j = 0; j < GROUP; j++) ((uint16_t *)out)[at + j] = round_bf16(row[j]);
    else
        memcpy((float *)out + at, row, sizeof(float) * GROUP);
}

void guru_q4_dequant(const uint8_t *w, int64_t n, int64_t k, void *out, int bf16, int threads) {
    const int64_t groups = k / GROUP, blocks = n / BLOCK_ROWS;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        for (int64_t g = 0; g < groups; g++) {
            const uint8_t *p = w + (b * groups + g) * GROUP_BYTES;
            const uint16_t *ds = (const uint16_t *)(p + 256), *los = (const uint16_t *)(p + 288);
            for (int i = 0; i < BLOCK_ROWS; i++) {
                const float d = _cvtsh_ss(ds[i]), lo = _cvtsh_ss(los[i]);
                float row[GROUP];
                /* column 4c + 2h + e: chunk c, byte 2i + e, nibble h */
                for (int c = 0; c < 8; c++)
                    for (int e = 0; e < 2; e++) {
                        const uint8_t byte = p[32 * c + 2 * i + e];
                        row[4 * c + e] = lo + d * (float)(byte & 0x0F);
                        row[4 * c + 2 + e] = lo + d * (float)(byte >> 4);
                    }
                store_row(out, (b * BLOCK_ROWS + i) * k + g * GROUP, row, bf16);
            }
        }
    }
}

#define Q8_GROUP_BYTES (512 + 32)

/* The 8-bit packing (q8_int16.c's layout) back to dense weights, as guru_q4_dequant:
 * out [n, k] = d * q per group of 32 (exact in fp32: an fp16 scale times an int8 code), as
 * fp32 or rounded to bf16. Replaces three torch passes (codes, fp32 product, bf16 copy)
 * whose fp32 temporaries were ~4x the output: the peak memory of a prompt's layer. */
void guru_q8_dequant(const uint8_t *w, int64_t n, int64_t k, void *out, int bf16, int threads) {
    const int64_t groups = k / GROUP, blocks = n / BLOCK_ROWS;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        for (int64_t g = 0; g < groups; g++) {
            const uint8_t *p = w + (b * groups + g) * Q8_GROUP_BYTES;
            const uint16_t *ds = (const uint16_t *)(p + 512);
            for (int i = 0; i < BLOCK_ROWS; i++) {
                const float d = _cvtsh_ss(ds[i]);
                float row[GROUP];
                /* column 2c + e: chunk c, byte 2i + e */
                for (int c = 0; c < GROUP / 2; c++)
                    for (int e = 0; e < 2; e++)
                        row[2 * c + e] = d * (float)(int8_t)p[32 * c + 2 * i + e];
                store_row(out, (b * BLOCK_ROWS + i) * k + g * GROUP, row, bf16);
            }
        }
    }
}

#define Q5_GROUP_BYTES (256 + 64 + 32)

/* The 5-bit packing (q5_int16.c's layout) back to dense weights, as guru_q8_dequant:
 * out [n, k] = d * (q5 - 16) per group of 32: the values guru_q8_dequant makes of the same
 * Q5_0 matrix packed as 8-bit codes. */
void guru_q5_dequant(const uint8_t *w, int64_t n, int64_t k, void *out, int bf16, int threads) {
    const int64_t groups = k / GROUP, blocks = n / BLOCK_ROWS;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        for (int64_t g = 0; g < groups; g++) {
            const uint8_t *p = w + (b * groups + g) * Q5_GROUP_BYTES;
            const uint32_t *high = (const uint32_t *)(p + 256);
            const uint16_t *ds = (const uint16_t *)(p + 320);
            for (int i = 0; i < BLOCK_ROWS; i++) {
                const float d = _cvtsh_ss(ds[i]);
                float row[GROUP];
                /* column 4c + 2h + e: chunk c, byte 2i + e, nibble h; its high bit: bit
                 * 2i + e of word 2c + h */
                for (int c = 0; c < 8; c++)
                    for (int e = 0; e < 2; e++) {
                        const uint8_t byte = p[32 * c + 2 * i + e];
                        const int lo = (int)(byte & 0x0F), hi = (int)(byte >> 4);
                        const int b0 = (int)((high[2 * c] >> (2 * i + e)) & 1);
                        const int b1 = (int)((high[2 * c + 1] >> (2 * i + e)) & 1);
                        row[4 * c + e] = d * (float)((lo | (b0 << 4)) - 16);
                        row[4 * c + 2 + e] = d * (float)((hi | (b1 << 4)) - 16);
                    }
                store_row(out, (b * BLOCK_ROWS + i) * k + g * GROUP, row, bf16);
            }
        }
    }
}
