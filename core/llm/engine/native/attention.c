/* One decode step of grouped-query attention over an fp16 KV cache (AVX512).
 *
 * Why: at a batch of 8, reading the cache is the biggest cost of a step after the weights
 * (96 MB of fp32 K/V per step here at ~260 tokens). fp16 halves it; reading each K/V row once
 * for the G query heads that share it, skipping the left padding instead of masking it, and
 * fusing scores, softmax and the weighted sum into one pass per (sequence, KV head) removes
 * torch's separate ops. Arithmetic is fp32.
 *
 * Layout: q [B, H, D] (RoPE applied), out [B, H, D]; k and v [B, KV, capacity, D] fp16, of
 * which columns starts[b] .. length-1 are row b's real tokens (right-aligned rows). Query head
 * h uses KV head h / (H / KV), as in transformers' repeat_kv. D % 16 == 0, D <= 256.
 */
#include <stdlib.h>

#include "native.h"

#define MAX_CHUNKS 16 /* D / 16 */
#define MAX_GROUP 16  /* query heads per KV head */

static inline __m512 load_half(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* One sequence, one KV head: its `group` query heads against columns [start, length). */
static void attend_head(const float *q, const uint16_t *k, const uint16_t *v, int group,
                        int dim, int64_t start, int64_t length, float scale, float *scores,
                        float *out) {
    const int chunks = dim / 16;
    const int64_t n = length - start;
    __m512 qv[MAX_GROUP][MAX_CHUNKS];
    for (int g = 0; g < group; g++)
        for (int c = 0; c < chunks; c++)
            qv[g][c] = _mm512_mul_ps(_mm512_loadu_ps(q + g * dim + 16 * c), _mm512_set1_ps(scale));
    /* scores[g * n + t] = scale * q_g . k_t */
    for (int64_t t = 0; t < n; t++) {
        const uint16_t *kt = k + (start + t) * dim;
        __m512 kc[MAX_CHUNKS];
        for (int c = 0; c < chunks; c++) kc[c] = load_half(kt + 16 * c);
        for (int g = 0; g < group; g++) {
            __m512 s = _mm512_mul_ps(qv[g][0], kc[0]);
            for (int c = 1; c < chunks; c++) s = _mm512_fmadd_ps(qv[g][c], kc[c], s);
            scores[g * n + t] = _mm512_reduce_add_ps(s);
        }
    }
    /* softmax per query head, in place */
    for (int g = 0; g < group; g++) {
        float *s = scores + g * n;
        float top = s[0];
        for (int64_t t = 1; t < n; t++) top = s[t] > top ? s[t] : top;
        const __m512 topv = _mm512_set1_ps(top);
        __m512 sum = _mm512_setzero_ps();
        int64_t t = 0;
        for (; t + 16 <= n; t += 16) {
            __m512 e = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + t), topv));
            _mm512_storeu_ps(s + t, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (t < n) {
            const __mmask16 m = (__mmask16)((1u << (n - t)) - 1);
            __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + t), topv));
            e = _mm512_maskz_mov_ps(m, e);
            _mm512_mask_storeu_ps(s + t, m, e);
            sum = _mm512_add_ps(sum, e);
        }
        const float inv = 1.0f / _mm512_reduce_add_ps(sum);
        for (t = 0; t < n; t++) s[t] *= inv;
    }
    /* out_g = sum_t p_gt v_t */
    __m512 acc[MAX_GROUP][MAX_CHUNKS];
    for (int g = 0; g < group; g++)
        for (int c = 0; c < chunks; c++) acc[g][c] = _mm512_setzero_ps();
    for (int64_t t = 0; t < n; t++) {
        const uint16_t *vt = v + (start + t) * dim;
        __m512 vc[MAX_CHUNKS];
        for (int c = 0; c < chunks; c++) vc[c] = load_half(vt + 16 * c);
        for (int g = 0; g < group; g++) {
            const __m512 p = _mm512_set1_ps(scores[g * n + t]);
            for (int c = 0; c < chunks; c++) acc[g][c] = _mm512_fmadd_ps(p, vc[c], acc[g][c]);
        }
    }
    for (int g = 0; g < group; g++)
        for (int c = 0; c < chunks; c++) _mm512_storeu_ps(out + g * dim + 16 * c, acc[g][c]);
}

/* Returns 0, -1 for an unsupported shape, -2 when scratch memory could not be allocated. */
int guru_attend_f16(const float *q, const uint16_t *k, const uint16_t *v, int64_t batch,
                    int64_t heads, int64_t kv_heads, int64_t dim, int64_t capacity,
                    int64_t length, const int64_t *starts, float scale, float *out,
                    int threads) {
    const int64_t group = heads / kv_heads;
    if (dim % 16 || dim / 16 > MAX_CHUNKS || heads % kv_heads || group > MAX_GROUP)
        return -1;
    int failed = 0;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static) collapse(2)
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t h = 0; h < kv_heads; h++) {
            float *scores = malloc(sizeof(float) * group * (length - starts[b] + 1));
            if (!scores) {
                failed = 1;
                continue;
            }
            const int64_t cache = (b * kv_heads + h) * capacity * dim;
            const int64_t rows = (b * heads + h * group) * dim;
            attend_head(q + rows, k + cache, v + cache, (int)group, (int)dim, starts[b], length,
                        scale, scores, out + rows);
            free(scores);
        }
    }
    return failed ? -2 : 0;
}
