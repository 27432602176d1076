/* Entry points shared between the native kernels (see each file's header). */
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
void guru_rms_norm(const float *x, const float *weight, int64_t rows, int64_t dim, float eps,
                   float *out);

/* e^x (|x| <= 87, clamped beyond) as 2^(x log2 e): a degree-7 Taylor polynomial of 2^f on
 * |f| <= 0.5 (~1e-8 relative error) and vscalefps for 2^n. */
static inline __m512 exp_ps(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
    const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.4426950408889634f));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(1.525273380405984e-05f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.2402265069591007f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.6931471805599453f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

#endif
