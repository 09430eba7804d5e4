/* float16 -> float32, as NumPy's astype converts: a loaded model's float16-stored weights.
 *
 * NumPy's cast (this build) converts one value at a time, ~2 ns each: 5 ms of loading the
 * bundled model's 2.7 million weights, a few percent of a one-shot `seqtag tag`.  With F16C
 * (x86-64 CPUs since 2012) eight values take one instruction.  The results are NumPy's bit
 * for bit: every finite value and infinity converts exactly either way; a NaN keeps its
 * sign and payload, and NumPy keeps a signalling NaN signalling where F16C quiets it, so
 * each block of eight holding a NaN is done again by the scalar conversion.  Elsewhere
 * (another compiler or CPU) the scalar conversion does everything.
 */
#ifndef SEQTAG_HALF_H
#define SEQTAG_HALF_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#ifndef SEQTAG_HAVE_F16C
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && \
    ((defined(__clang__) && __clang_major__ >= 9 && !defined(_MSC_VER)) || \
     (!defined(__clang__) && __GNUC__ >= 9))
#define SEQTAG_HAVE_F16C 1
#else
#define SEQTAG_HAVE_F16C 0
#endif
#endif
#if SEQTAG_HAVE_F16C
#include <immintrin.h>
#endif

/* The float32 bits of the float16 bits h (NumPy's npy_halfbits_to_floatbits). */
static inline uint32_t seqtag_half_bits_to_float_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    int shift;
    if (exponent == 0x1fu) /* infinity or NaN: the payload kept, a signalling NaN too */
        return sign | 0x7f800000u | (mantissa << 13);
    if (exponent == 0) {
        if (mantissa == 0)
            return sign;
        /* subnormal: normalised, 1.m x 2^(p - 24) for its highest bit p */
        for (shift = 0; !(mantissa & 0x400u); shift++)
            mantissa <<= 1;
        return sign | ((uint32_t)(113 - shift) << 23) | ((mantissa & 0x3ffu) << 13);
    }
    return sign | ((exponent + 112) << 23) | (mantissa << 13);
}

static void seqtag_half_to_float_scalar(const uint16_t *src, float *dst, Py_ssize_t n) {
    Py_ssize_t i;
    uint32_t bits;
    for (i = 0; i < n; i++) {
        bits = seqtag_half_bits_to_float_bits(src[i]);
        memcpy(dst + i, &bits, sizeof bits);
    }
}

#if SEQTAG_HAVE_F16C
__attribute__((target("avx,f16c")))
static void seqtag_half_to_float_f16c(const uint16_t *src, float *dst, Py_ssize_t n) {
    const __m128i magnitude = _mm_set1_epi16(0x7fff), infinity = _mm_set1_epi16(0x7c00);
    Py_ssize_t i;
    __m128i h;
    for (i = 0; i + 8 <= n; i += 8) {
        h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
        /* a NaN (|h| > infinity): the block again as NumPy converts it */
        if (_mm_movemask_epi8(_mm_cmpgt_epi16(_mm_and_si128(h, magnitude), infinity)))
            seqtag_half_to_float_scalar(src + i, dst + i, 8);
    }
    seqtag_half_to_float_scalar(src + i, dst + i, n - i);
}
#endif

/* 1 where the F16C conversion runs on this CPU, else 0. */
static int seqtag_half_f16c_available(void) {
#if SEQTAG_HAVE_F16C
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

/* dst[i] = src[i] for n float16 values (their bits); f16c: use F16C (where available). */
static void seqtag_half_to_float(const uint16_t *src, float *dst, Py_ssize_t n, int f16c) {
#if SEQTAG_HAVE_F16C
    if (f16c && seqtag_half_f16c_available()) {
        seqtag_half_to_float_f16c(src, dst, n);
        return;
    }
#endif
    (void)f16c;
    seqtag_half_to_float_scalar(src, dst, n);
}

#endif
