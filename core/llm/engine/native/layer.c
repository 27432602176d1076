/* One whole Llama decoder layer for one decode step, in a single call.
 *
 * Why: with the matmuls and attention native, what was left of a batch-8 step was ~20 small
 * torch ops per layer (RoPE, residual adds, SiLU, splits, casts) at ~5-10 us of dispatch
 * each: a fifth of the step. Here they are loops over a few KB of activations.
 *
 * x [B, hidden] is the residual stream, updated in place. The new token's K and V (after
 * RoPE) go to column `column` of the fp16 caches [B, KV, capacity, D], whose rows' real
 * tokens are columns starts[b] .. column. cos, sin [B, D] are this step's RoPE tables
 * (transformers' layout: each half repeated). The qkv weight is q, k, v stacked; gate_up is
 * gate then up; qkv_bias may be NULL. Each matrix is 4-bit (q4.c's packing) or, where its bit
 * of `q8` is set (Q8_QKV..), 8-bit codes (q8_int16.c's: Qwen2.5's Q8_0 matrices), or where
 * its bit of `q5` is set, 5-bit codes (q5_int16.c's: Q5_0).
 */
#include <stdlib.h>
#include <string.h>

#include "native.h"

typedef struct {
    int64_t hidden, heads, kv_heads, head_dim, intermediate;
    float eps, scale;
} LayerShape;

typedef struct {
    const float *ln1, *ln2, *qkv_bias;
    const uint8_t *qkv, *o, *gate_up, *down;
    int32_t q8; /* which matrices are 8-bit: Q8_QKV | Q8_O | Q8_GATE_UP | Q8_DOWN */
    int32_t q5; /* which are 5-bit (q5_int16.c's: Q5_0), with the same bits */
} LayerWeights;

enum { Q8_QKV = 1, Q8_O = 2, Q8_GATE_UP = 4, Q8_DOWN = 8 };

static int matmul(const LayerWeights *w, int which, const float *x, int64_t m, int64_t k,
                  const uint8_t *weight, int64_t n, float *y, int threads) {
    if (w->q5 & which) return guru_q5_matmul(x, m, k, weight, n, y, threads);
    return (w->q8 & which) ? guru_q8_matmul(x, m, k, weight, n, y, threads)
                           : guru_q4_matmul(x, m, k, weight, n, y, threads);
}

/* x * cos + rotate_half(x) * sin for one head (transformers' RoPE convention). */
static void rope(float *v, const float *cos, const float *sin, int64_t dim) {
    const int64_t half = dim / 2;
    for (int64_t i = 0; i < half; i++) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cos[i] - b * sin[i];
        v[i + half] = b * cos[i + half] + a * sin[i + half];
    }
}

static void to_half(const float *src, uint16_t *dst, int64_t n) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) v_store_half(dst + i, v_load(src + i));
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

/* act[i] = silu(gate[i]) * up[i] for one row (gate and up side by side in gu). */
static void silu_mul(const float *gu, float *act, int64_t n) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        const vf g = v_load(gu + i), u = v_load(gu + n + i);
        const vf s = v_div(g, v_add(v_set1(1.0f), v_exp(v_sub(v_zero(), g))));
        v_store(act + i, v_mul(s, u));
    }
    for (; i < n; i++) {
        const float g = gu[i];
        act[i] = g / (1.0f + __builtin_expf(-g)) * gu[n + i];
    }
}

/* Returns 0, -1 for a shape the kernels do not support, -2 when out of memory. */
int guru_decode_layer(float *x, int64_t batch, const LayerShape *shape, const LayerWeights *w,
                      const float *cos, const float *sin, uint16_t *k_cache,
                      uint16_t *v_cache, int64_t capacity, int64_t column,
                      const int64_t *starts, int threads) {
    const int64_t hd = shape->hidden, d = shape->head_dim, h = shape->heads, kvh = shape->kv_heads;
    const int64_t inter = shape->intermediate, width = (h + 2 * kvh) * d;
    float *norm = malloc(sizeof(float) * batch * hd);
    float *qkv = malloc(sizeof(float) * batch * width);
    float *attn = malloc(sizeof(float) * batch * h * d);
    float *out = malloc(sizeof(float) * batch * (hd > 2 * inter ? hd : 2 * inter));
    float *act = malloc(sizeof(float) * batch * inter);
    int status = -2;
    if (!(norm && qkv && attn && out && act)) goto done;

    guru_rms_norm(x, w->ln1, batch, hd, shape->eps, norm);
    if (matmul(w, Q8_QKV, norm, batch, hd, w->qkv, width, qkv, threads)) goto done;
    for (int64_t b = 0; b < batch; b++) {
        float *row = qkv + b * width;
        if (w->qkv_bias)
            for (int64_t i = 0; i < width; i++) row[i] += w->qkv_bias[i];
        for (int64_t j = 0; j < h + kvh; j++) rope(row + j * d, cos + b * d, sin + b * d, d);
        memcpy(attn + b * h * d, row, sizeof(float) * h * d);  /* the queries, contiguous */
        for (int64_t j = 0; j < kvh; j++) {
            const int64_t at = ((b * kvh + j) * capacity + column) * d;
            to_half(row + (h + j) * d, k_cache + at, d);
            to_half(row + (h + kvh + j) * d, v_cache + at, d);
        }
    }
    /* queries in `attn` are read before `out` is written: use `qkv` as the output */
    const int attended = guru_attend_f16(attn, k_cache, v_cache, batch, h, kvh, d, capacity,
                                         column + 1, starts, shape->scale, qkv, threads);
    if (attended) {
        status = attended;
        goto done;
    }
    if (matmul(w, Q8_O, qkv, batch, h * d, w->o, hd, out, threads)) goto done;
    for (int64_t i = 0; i < batch * hd; i++) x[i] += out[i];

    guru_rms_norm(x, w->ln2, batch, hd, shape->eps, norm);
    if (matmul(w, Q8_GATE_UP, norm, batch, hd, w->gate_up, 2 * inter, out, threads)) goto done;
    for (int64_t b = 0; b < batch; b++) silu_mul(out + b * 2 * inter, act + b * inter, inter);
    if (matmul(w, Q8_DOWN, act, batch, inter, w->down, hd, out, threads)) goto done;
    for (int64_t i = 0; i < batch * hd; i++) x[i] += out[i];
    status = 0;
done:
    free(norm);
    free(qkv);
    free(attn);
    free(out);
    free(act);
    return status;
}
