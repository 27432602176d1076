/* One decode step of grouped-query attention over an fp16 KV cache (AVX512 or AVX2).
 *
 * Why: at a batch of 8, reading the cache is the biggest cost of a step after the weights
 * (96 MB of fp32 K/V per step here at ~260 tokens). fp16 halves it; reading each K/V row once
 * for the G query heads that share it, skipping the left padding instead of masking it, and
 * fusing scores, softmax and the weighted sum into one pass per (sequence, KV head) removes
 * torch's separate ops. Arithmetic is fp32.
 *
 * Layout: q [B, H, D] (RoPE applied), out [B, H, D]; k and v [B, KV, capacity, D] fp16, of
 * which columns starts[b] .. length-1 are row b's real tokens (right-aligned rows). Query head
 * h uses KV head h / (H / KV), as in transformers' repeat_kv. D % 16 == 0, D <= 256 (both
 * vector widths divide it).
 */
#include <stdlib.h>

#include "native.h"

#define MAX_DIM 256
#define MAX_CHUNKS (MAX_DIM / VW) /* vectors per head */
#define MAX_GROUP 16              /* query heads per KV head */

/* One sequence, one KV head: its `group` query heads against columns [start, length). */
static void attend_head(const float *q, const uint16_t *k, const uint16_t *v, int group,
                        int dim, int64_t start, int64_t length, float scale, float *scores,
                        float *out) {
    const int chunks = dim / VW;
    const int64_t n = length - start;
    vf qv[MAX_GROUP][MAX_CHUNKS];
    for (int g = 0; g < group; g++)
        for (int c = 0; c < chunks; c++)
            qv[g][c] = v_mul(v_load(q + g * dim + VW * c), v_set1(scale));
    /* scores[g * n + t] = scale * q_g . k_t */
    for (int64_t t = 0; t < n; t++) {
        const uint16_t *kt = k + (start + t) * dim;
        vf kc[MAX_CHUNKS];
        for (int c = 0; c < chunks; c++) kc[c] = v_load_half(kt + VW * c);
        for (int g = 0; g < group; g++) {
            vf s = v_mul(qv[g][0], kc[0]);
            for (int c = 1; c < chunks; c++) s = v_fmadd(qv[g][c], kc[c], s);
            scores[g * n + t] = v_sum(s);
        }
    }
    /* softmax per query head, in place; the tail goes through a zero-padded vector so every
     * score takes the same exp (scalar expf would round differently) */
    for (int g = 0; g < group; g++) {
        float *s = scores + g * n;
        float top = s[0];
        for (int64_t t = 1; t < n; t++) top = s[t] > top ? s[t] : top;
        const vf topv = v_set1(top);
        vf sum = v_zero();
        int64_t t = 0;
        for (; t + VW <= n; t += VW) {
            const vf e = v_exp(v_sub(v_load(s + t), topv));
            v_store(s + t, e);
            sum = v_add(sum, e);
        }
        float total = v_sum(sum);
        if (t < n) {
            float tail[VW];
            for (int i = 0; i < VW; i++) tail[i] = t + i < n ? s[t + i] : top;
            v_store(tail, v_exp(v_sub(v_load(tail), topv)));
            for (int64_t i = 0; t + i < n; i++) {
                s[t + i] = tail[i];
                total += tail[i];
            }
        }
        const float inv = 1.0f / total;
        for (t = 0; t < n; t++) s[t] *= inv;
    }
    /* out_g = sum_t p_gt v_t */
    vf acc[MAX_GROUP][MAX_CHUNKS];
    for (int g = 0; g < group; g++)
        for (int c = 0; c < chunks; c++) acc[g][c] = v_zero();
    for (int64_t t = 0; t < n; t++) {
        const uint16_t *vt = v + (start + t) * dim;
        vf vc[MAX_CHUNKS];
        for (int c = 0; c < chunks; c++) vc[c] = v_load_half(vt + VW * c);
        for (int g = 0; g < group; g++) {
            const vf p = v_set1(scores[g * n + t]);
            for (int c = 0; c < chunks; c++) acc[g][c] = v_fmadd(p, vc[c], acc[g][c]);
        }
    }
    for (int g = 0; g < group; g++)
        for (int c = 0; c < chunks; c++) v_store(out + g * dim + VW * c, acc[g][c]);
}

/* Returns 0, -1 for an unsupported shape, -2 when scratch memory could not be allocated. */
int guru_attend_f16(const float *q, const uint16_t *k, const uint16_t *v, int64_t batch,
                    int64_t heads, int64_t kv_heads, int64_t dim, int64_t capacity,
                    int64_t length, const int64_t *starts, float scale, float *out,
                    int threads) {
    const int64_t group = heads / kv_heads;
    if (dim % 16 || dim > MAX_DIM || heads % kv_heads || group > MAX_GROUP)
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
