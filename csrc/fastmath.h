/* Vectorisable float32 exp, sigmoid and tanh over arrays, for the float32 gate loops.
 *
 * Why: libm's expf/tanhf are scalar calls (~10 ns each); the cells of a char-level LSTM
 * spent nearly all their time in them.  These are branch-free loops of plain arithmetic
 * that GCC -O3 turns into SIMD code (SSE2 on any x86-64; AVX2+FMA / AVX-512 clones picked
 * at load time where GCC's ifunc multiversioning is available).  float64 never comes here:
 * it keeps libm, bit for bit, for the gradient checks.
 *
 * exp: e^x = 2^n e^r with n = round(x log2 e) (the 1.5*2^23 magic-number rounding),
 * r = x - n ln2 in two steps (Cody-Waite: ln2 = C1 + C2, C1 with few bits so n*C1 is
 * exact), e^r on |r| <= ln2/2 by Cephes' expf polynomial (degree 5 after 1 + r), and 2^n
 * built directly in the exponent bits.  The argument is clamped to [-87, 87] first, so
 * 2^n is always a normal float (n in [-126, 126]): no overflow, no denormal, no NaN for
 * any finite input, and +-inf saturate; NaN stays NaN (the clamps are written so that a
 * NaN compares false and passes through).
 *
 * Errors against float64 math, measured over every finite float32 (the same for the
 * SSE2 build and the AVX2/AVX-512 clones, which contract to FMA); tests/test_fastmath.py
 * checks slightly looser bounds on a dense sweep:
 *   exp      |x| <= 87: relative error <= 8.5e-8 (~1.4 ulp at worst); outside, it
 *            saturates at e^-87 ~ 1.6e-38 and e^87 ~ 6.1e37
 *   sigmoid  1/(1 + e^-x): relative error <= 1.5e-7 for x >= -87, absolute <= 9.0e-8
 *            everywhere; below -87 it stays at sigmoid(-87) ~ 1.6e-38 (where the true
 *            value is denormal or 0); sigmoid(+inf) = 1, sigmoid(-inf) ~ 1.6e-38
 *   tanh     |x| < 0.625: Cephes' tanhf odd polynomial (no cancellation near 0: tiny x
 *            come back exactly); else sign(x) (1 - 2/(e^2|x| + 1)); relative error
 *            <= 1.5e-7 and absolute <= 8.0e-8 everywhere; tanh(+-inf) = +-1, tanh(-0) = -0
 * No NaN comes out for any finite input.  libm's expf/tanhf are within about 1 ulp, so
 * this costs at most ~1 ulp more; float32 outputs and gradients of the cells stay well
 * within the 1e-4 relative tolerance of the PyTorch parity tests.
 */
#ifndef SEQTAG_FASTMATH_H
#define SEQTAG_FASTMATH_H

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Restrict-qualified float pointers, for the float32 row loops of the cells (Cython has
 * no restrict of its own).  Those loops touch 8-12 arrays; without restrict GCC needs a
 * run-time overlap check for each pair, gives up past 10 of them and leaves the loop
 * scalar. */
#if defined(_MSC_VER)
#define SEQTAG_RESTRICT __restrict
#else
#define SEQTAG_RESTRICT __restrict__
#endif
typedef float *SEQTAG_RESTRICT seqtag_float_r;
typedef const float *SEQTAG_RESTRICT seqtag_cfloat_r;

/* One copy of each array function per instruction set, chosen once by the dynamic
 * loader (GNU ifunc).  Measured on an AMD EPYC (Zen 5), 91k elements: sigmoid/tanh take
 * 1.2/1.9 ns an element in the SSE2 default, 0.32/0.52 with AVX2+FMA and 0.17/0.27 with
 * AVX-512 (libm's tanhf: 8.5 ns).  Only GCC >= 12 (target_clones of "arch=x86-64-v3",
 * i.e. AVX2 + FMA; plain "avx2" would leave FMA off) on x86-64 Linux (ifunc); elsewhere,
 * or with -DSEQTAG_NO_CLONES, the single portable version is built, and
 * _core.build_info() says so.  Not clang: clang 14 compiles these clones, but its
 * resolver tests "arch=x86-64-v4" as a CPU name (the vendor field of __cpu_model is 0),
 * which no Intel or AMD CPU matches and an unknown vendor always does, so the portable
 * version is the safe one there. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__INTEL_COMPILER) && \
    defined(__x86_64__) && defined(__ELF__) && defined(__linux__) && __GNUC__ >= 12 && \
    !defined(SEQTAG_NO_CLONES)
#define SEQTAG_HAVE_CLONES 1
#define SEQTAG_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SEQTAG_HAVE_CLONES 0
#define SEQTAG_CLONES
#endif

/* The compiler that built the extension, for _core.build_info() */
#if defined(__clang__)
#define SEQTAG_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define SEQTAG_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define SEQTAG_COMPILER "msvc"
#else
#define SEQTAG_COMPILER "unknown"
#endif

static inline float seqtag__from_bits(int32_t i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

static inline int32_t seqtag__to_bits(float f) {
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

/* cond ? a : b, through a bit mask rather than "? :".  With "? :" GCC threads the
 * arithmetic that follows into the two arms, and since float operations may trap
 * (-ftrapping-math, the default) it will not if-convert arithmetic arms back into a
 * blend for SSE2: the whole loop stays scalar ("control flow in loop").  NaN compares
 * false, so select(x < lo, lo, x) lets a NaN through. */
static inline float seqtag__select(int cond, float a, float b) {
    int32_t mask = -(int32_t)cond;
    return seqtag__from_bits((seqtag__to_bits(a) & mask) | (seqtag__to_bits(b) & ~mask));
}

/* e^x; x is clamped to [-87, 87] (see above).  Inlined into each array loop. */
static inline float seqtag__expf(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t, n, r, p;
    int32_t k;
    x = seqtag__select(x < -87.0f, -87.0f, x);
    x = seqtag__select(x > 87.0f, 87.0f, x);
    t = x * 1.44269504088896341f + magic;
    n = t - magic;                          /* round(x log2 e), exactly */
    k = seqtag__to_bits(t) - 0x4B400000;    /* the same integer, from t's low mantissa bits */
    r = x - n * 0.693359375f;               /* Cody-Waite: C1 has 9 bits, n*C1 is exact */
    r = r - n * -2.12194440e-4f;            /* C2 = ln2 - C1 */
    p = 1.9875691500e-4f;                   /* Cephes expf: e^r = 1 + r + r^2 P(r) */
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    return p * seqtag__from_bits((k + 127) << 23); /* 2^k, k in [-126, 126]: normal */
}

static inline float seqtag__sigmoidf(float x) {
    return 1.0f / (1.0f + seqtag__expf(-x));
}

static inline float seqtag__tanhf(float x) {
    float ax = fabsf(x);
    float z = x * x;
    /* |x| < 0.625: Cephes tanhf, x + x^3 P(x^2) */
    float small = -5.70498872745e-3f;
    small = small * z + 2.06390887954e-2f;
    small = small * z - 5.37397155531e-2f;
    small = small * z + 1.33314422036e-1f;
    small = small * z - 3.33332819422e-1f;
    small = small * z * x + x;
    /* otherwise 1 - 2/(e^2|x| + 1): no overflow (exp clamps), 1 exactly from |x| ~ 9 */
    float big = 1.0f - 2.0f / (seqtag__expf(2.0f * ax) + 1.0f);
    /* both are computed, one is kept (for |x| = inf, small is NaN and is dropped); the
     * sign of x goes on last, which also keeps tanh(-0) = -0 */
    return copysignf(seqtag__select(ax < 0.625f, small, big), x);
}

/* x (n,) <- e^x, in place. */
SEQTAG_CLONES static void seqtag_exp_f32(float *x, Py_ssize_t n) {
    Py_ssize_t i;
    for (i = 0; i < n; i++)
        x[i] = seqtag__expf(x[i]);
}

/* x (n,) <- sigmoid(x), in place. */
SEQTAG_CLONES static void seqtag_sigmoid_f32(float *x, Py_ssize_t n) {
    Py_ssize_t i;
    for (i = 0; i < n; i++)
        x[i] = seqtag__sigmoidf(x[i]);
}

/* x (n,) <- tanh(x), in place. */
SEQTAG_CLONES static void seqtag_tanh_f32(float *x, Py_ssize_t n) {
    Py_ssize_t i;
    for (i = 0; i < n; i++)
        x[i] = seqtag__tanhf(x[i]);
}

/* Ask for rows ids[0..n) of table (width floats each) to be brought into the cache: the
 * inference steps read a memo's rows in an order no hardware prefetcher can guess, so
 * they are requested before the step's recurrent product, which then hides the wait.
 * ids NULL: rows first .. first + n of the table, in order. */
static inline void seqtag_prefetch_rows(const float *table, const int64_t *ids,
                                        Py_ssize_t first, Py_ssize_t n, Py_ssize_t width) {
#if defined(__GNUC__)
    Py_ssize_t r, k;
    for (r = 0; r < n; r++) {
        const char *row = (const char *)(table + (ids ? ids[r] : first + r) * width);
        for (k = 0; k < (Py_ssize_t)(width * sizeof(float)); k += 64)
            __builtin_prefetch(row + k, 0, 3);
    }
#else
    (void)table; (void)ids; (void)first; (void)n; (void)width;
#endif
}

/* One LSTM step of one sequence in inference, fused into a single pass (the gate
 * functions inlined, no intermediate stores): with s the recurrent product h W_hh^T and
 * x the input pre-activations of the row, a = s + x is split into a_i, a_f, a_g, a_o and
 *   c <- sigmoid(a_f) c + sigmoid(a_i) tanh(a_g),   h = out <- sigmoid(a_o) tanh(c).
 * Peephole weights (w_ci, w_cf, w_co, all given or all NULL) add w_ci c and w_cf c to
 * a_i and a_f, and w_co c' to a_o.  s, x (4H,); c, h, out, w_c* (H,).  The same
 * arithmetic as lstm_cell_forward's float32 path, bit for bit: only the passes differ. */
SEQTAG_CLONES static void seqtag_lstm_infer_row_f32(
    const float *SEQTAG_RESTRICT s, const float *SEQTAG_RESTRICT x, float *SEQTAG_RESTRICT c,
    float *SEQTAG_RESTRICT h, float *SEQTAG_RESTRICT out, const float *SEQTAG_RESTRICT w_ci,
    const float *SEQTAG_RESTRICT w_cf, const float *SEQTAG_RESTRICT w_co, Py_ssize_t H) {
    Py_ssize_t j;
    if (w_ci == NULL) {
        for (j = 0; j < H; j++) {
            float i = seqtag__sigmoidf(s[j] + x[j]);
            float f = seqtag__sigmoidf(s[H + j] + x[H + j]);
            float g = seqtag__tanhf(s[2 * H + j] + x[2 * H + j]);
            float o = seqtag__sigmoidf(s[3 * H + j] + x[3 * H + j]);
            float c_new = f * c[j] + i * g;
            float h_new = o * seqtag__tanhf(c_new);
            c[j] = c_new;
            h[j] = h_new;
            out[j] = h_new;
        }
    } else {
        for (j = 0; j < H; j++) {
            float c_old = c[j];
            float i = seqtag__sigmoidf((s[j] + x[j]) + w_ci[j] * c_old);
            float f = seqtag__sigmoidf((s[H + j] + x[H + j]) + w_cf[j] * c_old);
            float g = seqtag__tanhf(s[2 * H + j] + x[2 * H + j]);
            float c_new = f * c_old + i * g;
            float o = seqtag__sigmoidf((s[3 * H + j] + x[3 * H + j]) + w_co[j] * c_new);
            float h_new = o * seqtag__tanhf(c_new);
            c[j] = c_new;
            h[j] = h_new;
            out[j] = h_new;
        }
    }
}

/* One GRU step of one row in a single pass (PyTorch's formulation, csrc/gru.pxi):
 *   r = sigmoid(x_r + s_r + b_r),  z = sigmoid(x_z + s_z + b_z),
 *   n = tanh(x_n + r (s_n + b_n)),  h <- out <- (1 - z) n + z h,
 * with x the row's input pre-activations (3H: x W_ih^T + b_ih), s its recurrent product
 * h W_hh^T (3H, without the bias), b b_hh (3H).  Inference (a NULL) reads x and keeps
 * nothing.  The training forward passes x NULL and a the row's gates, in place: in, the
 * input pre-activations; out, r, z, n; and with hn and h_prev (H each, or both NULL)
 * s_n + b_n and h before the step, for backward.  Every loop is the same arithmetic, so
 * inference gives the training forward's states bit for bit.  One pass replaces per-row
 * passes around the array sigmoid and tanh (and a copy of x into a scratch row), which
 * took as long as the step's product at the front end's H = 48. */
SEQTAG_CLONES static void seqtag_gru_row_f32(
    const float *SEQTAG_RESTRICT x, const float *SEQTAG_RESTRICT s,
    const float *SEQTAG_RESTRICT b, float *SEQTAG_RESTRICT h, float *SEQTAG_RESTRICT out,
    float *SEQTAG_RESTRICT a, float *SEQTAG_RESTRICT hn, float *SEQTAG_RESTRICT h_prev,
    Py_ssize_t H) {
    Py_ssize_t j;
    if (a == NULL) {
        for (j = 0; j < H; j++) {
            float reset = seqtag__sigmoidf((x[j] + s[j]) + b[j]);
            float update = seqtag__sigmoidf((x[H + j] + s[H + j]) + b[H + j]);
            float rec_n = s[2 * H + j] + b[2 * H + j];
            float n = seqtag__tanhf(x[2 * H + j] + reset * rec_n);
            float h_new = (1.0f - update) * n + update * h[j];
            h[j] = h_new;
            out[j] = h_new;
        }
    } else if (hn == NULL) {
        for (j = 0; j < H; j++) {
            float reset = seqtag__sigmoidf((a[j] + s[j]) + b[j]);
            float update = seqtag__sigmoidf((a[H + j] + s[H + j]) + b[H + j]);
            float rec_n = s[2 * H + j] + b[2 * H + j];
            float n = seqtag__tanhf(a[2 * H + j] + reset * rec_n);
            float h_new = (1.0f - update) * n + update * h[j];
            a[j] = reset;
            a[H + j] = update;
            a[2 * H + j] = n;
            h[j] = h_new;
            out[j] = h_new;
        }
    } else {
        for (j = 0; j < H; j++) {
            float reset = seqtag__sigmoidf((a[j] + s[j]) + b[j]);
            float update = seqtag__sigmoidf((a[H + j] + s[H + j]) + b[H + j]);
            float rec_n = s[2 * H + j] + b[2 * H + j];
            float n = seqtag__tanhf(a[2 * H + j] + reset * rec_n);
            float h_old = h[j];
            float h_new = (1.0f - update) * n + update * h_old;
            a[j] = reset;
            a[H + j] = update;
            a[2 * H + j] = n;
            hn[j] = rec_n;
            h_prev[j] = h_old;
            h[j] = h_new;
            out[j] = h_new;
        }
    }
}

#endif /* SEQTAG_FASTMATH_H */
