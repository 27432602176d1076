/* The integer vector of the int16-activation kernels (q4_int16.c, q5_int16.c, q8_int16.c) for whichever
 * ISA the library is built with: VROWS weight rows' int32 sums per vector (16 with AVX512F,
 * 8 with AVX2). Included after native.h's <immintrin.h>. */
#ifndef GURU_INT16_H
#define GURU_INT16_H
#include <immintrin.h>
#include <stdint.h>

/* The integer vector of this build: VROWS weight rows' int32 sums per vector. dot_add is
 * dot += pairwise products of a and b summed into int32 lanes: one `vpdpwssd` with VNNI,
 * else `vpmaddwd` + `vpaddd`. */
#if defined(__AVX512F__)
#define VROWS 16
typedef __m512i vi;
#define vi_zero _mm512_setzero_si512
#define vi_and _mm512_and_si512
#define vi_or _mm512_or_si512
#define vi_sub _mm512_sub_epi16
#define vi_srli16 _mm512_srli_epi16
#define vi_set1_16 _mm512_set1_epi16
#define vi_set1_32 _mm512_set1_epi32
#define vi_to_ps _mm512_cvtepi32_ps
/* VROWS * 2 bytes -> 16-bit words: unsigned (q4's nibbles), signed (q8's codes) */
static inline vi widen(const uint8_t *p) {
    return _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p));
}
static inline vi widen_s8(const int8_t *p) {
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p));
}
static inline vi dot_add(vi dot, vi a, vi b) {
#if defined(__AVX512VNNI__)
    return _mm512_dpwssd_epi32(dot, a, b);
#else
    return _mm512_add_epi32(dot, _mm512_madd_epi16(a, b));
#endif
}
#else
#define VROWS 8
typedef __m256i vi;
#define vi_zero _mm256_setzero_si256
#define vi_and _mm256_and_si256
#define vi_or _mm256_or_si256
#define vi_sub _mm256_sub_epi16
#define vi_srli16 _mm256_srli_epi16
#define vi_set1_16 _mm256_set1_epi16
#define vi_set1_32 _mm256_set1_epi32
#define vi_to_ps _mm256_cvtepi32_ps
static inline vi widen(const uint8_t *p) {
    return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
}
static inline vi widen_s8(const int8_t *p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
}
static inline vi dot_add(vi dot, vi a, vi b) {
#if defined(__AVXVNNI__)
    return _mm256_dpwssd_avx_epi32(dot, a, b);
#else
    return _mm256_add_epi32(dot, _mm256_madd_epi16(a, b));
#endif
}
#endif
#endif
