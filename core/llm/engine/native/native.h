/* Entry points shared between the native kernels (see each file's header), and the few vector
 * helpers that attention.c, norm.c and layer.c need, for whichever ISA this file is compiled
 * with: AVX512F (16 floats a vector) or AVX2 + FMA + F16C (8). Each ISA is its own library,
 * built with its own flags (core/llm/engine/native/isa.py), so a CPU only ever runs
 * instructions of the variant it was checked for. */
#ifndef GURU_NATIVE_H
#define GURU_NATIVE_H
#include <immintrin.h>
#include <stdint.h>

int guru_q4_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                   float *y, int threads);
int guru_attend_f16(const float *q, const uint16_t *k, const uint16_t *v, int64_t batch,
                    int64_t heads, int64_t kv_heads, int64_t dim, int64_t capacity,
                    int64_t length, const int64_t *starts, float scale, float *out,
                    int threads);
int guru_q8_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                   float *y, int threads);
int guru_q5_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                   float *y, int threads);
void guru_quantize_int16(const float *x, int64_t m, int64_t k, int16_t *xq, float *sx,
                         float *sums);
/* The int16-activation matmuls (q4_int16.c, q8_int16.c, q5_int16.c) share their driver: x is
 * quantized once, then every `parts`-th vector of every 16-row block of W is one task, run by
 * the layout's `part` for up to GURU_INT16_MAX_ROWS rows of x at a time. `sums` (each group's
 * sum of codes) is what q4's affine minimum needs; the signed layouts ignore it. */
#define GURU_INT16_MAX_ROWS 8 /* rows of x per pass: 8 int32 sums + 8 fp32 accumulators */
typedef void (*guru_int16_part)(int rows, const int16_t *xq, const float *sx, const float *sums,
                                int64_t k, const uint8_t *w, int h, float *y, int64_t ldy);
int guru_int16_matmul(const float *x, int64_t m, int64_t k, const uint8_t *w, int64_t n,
                      float *y, int threads, int64_t group_bytes, int parts,
                      guru_int16_part part);
void guru_q4_dequant(const uint8_t *w, int64_t n, int64_t k, void *out, int bf16, int threads);
void guru_q8_dequant(const uint8_t *w, int64_t n, int64_t k, void *out, int bf16, int threads);
void guru_q5_dequant(const uint8_t *w, int64_t n, int64_t k, void *out, int bf16, int threads);
void guru_rms_norm(const float *x, const float *weight, int64_t rows, int64_t dim, float eps,
                   float *out);

/* e^x (|x| <= 87, clamped beyond) as 2^(x log2 e): a degree-7 Taylor polynomial of 2^f on
 * |f| <= 0.5 (~1e-8 relative error) times 2^n. */
#define EXP_POLY(V, FMA, SET1, f)                                  \
    V p = SET1(1.525273380405984e-05f);                            \
    p = FMA(p, f, SET1(1.5403530393381606e-04f));                  \
    p = FMA(p, f, SET1(1.3333558146428443e-03f));                  \
    p = FMA(p, f, SET1(9.618129107628477e-03f));                   \
    p = FMA(p, f, SET1(5.550410866482158e-02f));                   \
    p = FMA(p, f, SET1(0.2402265069591007f));                      \
    p = FMA(p, f, SET1(0.6931471805599453f));                      \
    p = FMA(p, f, SET1(1.0f));

#if defined(__AVX512F__)
#define VW 16
typedef __m512 vf;
#define v_load _mm512_loadu_ps
#define v_store _mm512_storeu_ps
#define v_set1 _mm512_set1_ps
#define v_zero _mm512_setzero_ps
#define v_add _mm512_add_ps
#define v_sub _mm512_sub_ps
#define v_mul _mm512_mul_ps
#define v_div _mm512_div_ps
#define v_fmadd _mm512_fmadd_ps
#define v_sum _mm512_reduce_add_ps

static inline vf v_load_half(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static inline void v_store_half(uint16_t *p, vf v) {
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

static inline vf v_exp(vf x) {
    x = _mm512_min_ps(_mm512_max_ps(x, v_set1(-87.0f)), v_set1(88.0f));
    const vf t = _mm512_mul_ps(x, v_set1(1.4426950408889634f));
    const vf n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const vf f = _mm512_sub_ps(t, n);
    EXP_POLY(vf, _mm512_fmadd_ps, v_set1, f)
    return _mm512_scalef_ps(p, n);
}
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define VW 8
typedef __m256 vf;
#define v_load _mm256_loadu_ps
#define v_store _mm256_storeu_ps
#define v_set1 _mm256_set1_ps
#define v_zero _mm256_setzero_ps
#define v_add _mm256_add_ps
#define v_sub _mm256_sub_ps
#define v_mul _mm256_mul_ps
#define v_div _mm256_div_ps
#define v_fmadd _mm256_fmadd_ps

static inline float v_sum(vf v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline vf v_load_half(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline void v_store_half(uint16_t *p, vf v) {
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

static inline vf v_exp(vf x) {
    x = _mm256_min_ps(_mm256_max_ps(x, v_set1(-87.0f)), v_set1(88.0f));
    const vf t = _mm256_mul_ps(x, v_set1(1.4426950408889634f));
    const vf n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const vf f = _mm256_sub_ps(t, n);
    EXP_POLY(vf, _mm256_fmadd_ps, v_set1, f)
    /* 2^n for n in [-126, 127] (the clamp above keeps it there): n + 127 in the exponent */
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                         _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#else
#error "the native kernels need AVX512F or AVX2 + FMA + F16C (see isa.py for the flags)"
#endif

#endif
