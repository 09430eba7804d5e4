/* The per-step recurrent products of a float32 LSTM, in kernels of our own for CPUs with
 * AVX-512 and for CPUs with AVX2 + FMA: the forward step with its gates fused (inference
 * and training), and backward's product d W_hh.
 *
 * Why these are not BLAS calls like every other product in csrc/: a step's recurrent
 * product is small (the rows of one time step times the 4H x H W_hh), and a general sgemm
 * packs all of W_hh again on every call, then writes the (rows, 4H) product out for a
 * second pass to read back.  Here W_hh is packed once per call (seqtag_pack_w_hh_f32, or
 * kept by seqtag/memo.py across calls), the product of a block of rows and a block of
 * hidden units stays in registers, and the gates of those units are computed from them.
 * With AVX-512 (16 lanes, 32 registers: 6 rows x 16 units) the CPU's wide units are used
 * even where the BLAS library runs AVX2 kernels only, and the steps are several times
 * faster than BLAS.  With AVX2 (8 lanes, 16 registers: 3 rows x 8 units) the product
 * runs about as fast as OpenBLAS's (both near the FMA units' peak), and the gain is what
 * BLAS's packing and second pass cost: the forward step fused is 5-15 % faster than
 * BLAS + the gate pass up to ~600 rows at H = 128, and BLAS's blocking wins only where
 * the rows' state leaves L2 (SEQTAG_AVX2_MAX_STATE: training's bigger steps go to BLAS,
 * inference's are cut into fused calls that fit); backward's product d W_hh, from 64
 * rows on, goes to BLAS (SEQTAG_AVX2_MAX_ROWS; measured on a Zen 3 EPYC, 2026-12-02/03,
 * bench/bench_core.py, bench/step_speed.py).
 * Where the CPU or the compiler has neither, seqtag_lstm_step_available() is 0 and the BLAS
 * path runs; so it does with SEQTAG_FUSED_STEP=0 (seqtag/runtime.py chooses the kernels).
 *
 * The arithmetic is the BLAS path's up to float32 rounding: the sums of the products run
 * in another order, and the gate functions are fastmath.h's polynomials in 16 or 8 lanes
 * with explicit FMAs (about 1 ulp from the compiled scalar loops).  The AVX-512 and AVX2
 * forward steps compute each row with the same operations in the same order, so they give
 * the same bits, and a row's result never depends on the other rows of its call.
 */
#ifndef SEQTAG_LSTM_STEP_H
#define SEQTAG_LSTM_STEP_H

#include <Python.h>
#include <stdint.h>

/* The kernels need per-function target attributes, AVX-512 and AVX2 intrinsics and
 * __builtin_cpu_supports on x86-64: GCC >= 9, or clang >= 9 outside MSVC's ABI (clang 14
 * builds them unchanged; so far they have run on AVX-512 CPUs only from GCC builds).
 * -DSEQTAG_HAVE_LSTM_STEP=0 builds without them (what other compilers and CPUs get), to
 * check that build; _core.build_info() tells which build this is. */
#ifndef SEQTAG_HAVE_LSTM_STEP
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && \
    ((defined(__clang__) && __clang_major__ >= 9 && !defined(_MSC_VER)) || \
     (!defined(__clang__) && __GNUC__ >= 9))
#define SEQTAG_HAVE_LSTM_STEP 1
#else
#define SEQTAG_HAVE_LSTM_STEP 0
#endif
#endif
#if SEQTAG_HAVE_LSTM_STEP
#include <immintrin.h>
#endif

/* Hidden units per AVX-512 register: the unit blocks of its packed weights (AVX2: 8). */
#define SEQTAG_UNITS 16
/* Rows of one block of the product: 6 rows x 4 gates = 24 accumulators + 4 weight
 * registers of the 32. */
#define SEQTAG_ROW_BLOCK 6

/* Unit blocks of a layer of H hidden units: the last one may be partly padding. */
static inline Py_ssize_t seqtag_unit_blocks(Py_ssize_t H) {
    return (H + SEQTAG_UNITS - 1) / SEQTAG_UNITS;
}

/* packed (U, H, 4, L) <- w_hh (4H, H), L = lanes (16 for the AVX-512 kernels, 8 for AVX2),
 * U = ceil(H / L): for unit block u, column k, gate q and lane l,
 * packed[((u H + k) 4 + q) L + l] = w_hh[q H + L u + l, k], or 0 where L u + l >= H
 * (lanes past the last unit, computed but never stored).  One block's weights are then
 * read in order, 4 vectors per k.  Either layout fits in seqtag_packed_size(H) floats. */
static void seqtag_pack_w_hh_f32(const float *w_hh, Py_ssize_t H, int lanes, float *packed) {
    Py_ssize_t u, k, q, l, unit, left;
    for (u = 0; u < (H + lanes - 1) / lanes; u++)
        for (k = 0; k < H; k++)
            for (q = 0; q < 4; q++)
                for (l = 0; l < lanes; l++) {
                    unit = lanes * u + l;
                    *packed++ = unit < H ? w_hh[(q * H + unit) * H + k] : 0.0f;
                }
    /* blocks of 8 may end a block of 16 early: the buffer's rest is zeros too */
    for (left = 4 * H * (seqtag_unit_blocks(H) * SEQTAG_UNITS - (H + lanes - 1) / lanes * lanes);
         left > 0; left--)
        *packed++ = 0.0f;
}

#if SEQTAG_HAVE_LSTM_STEP

#define SEQTAG_AVX512 __attribute__((target("avx512f,avx512dq,fma")))


/* fastmath.h's seqtag__expf in 16 lanes: clamp to [-87, 87], Cody-Waite, Cephes. */
SEQTAG_AVX512 static inline __m512 seqtag__exp16(__m512 x) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 t, n, r, p;
    __m512i k;
    /* max/min return their second operand when either is NaN: x goes second, so a NaN
     * stays NaN (as in fastmath.h), and a diverging training run still shows it */
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(87.0f), x);
    t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), magic);
    n = _mm512_sub_ps(t, magic);
    k = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000));
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    k = _mm512_slli_epi32(_mm512_add_epi32(k, _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(k));
}

SEQTAG_AVX512 static inline __m512 seqtag__sigmoid16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, seqtag__exp16(_mm512_sub_ps(
        _mm512_setzero_ps(), x))));
}

SEQTAG_AVX512 static inline __m512 seqtag__tanh16(__m512 x) {
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 ax = _mm512_andnot_ps(sign, x);
    __m512 z = _mm512_mul_ps(x, x);
    __m512 small = _mm512_set1_ps(-5.70498872745e-3f);
    small = _mm512_fmadd_ps(small, z, _mm512_set1_ps(2.06390887954e-2f));
    small = _mm512_fmadd_ps(small, z, _mm512_set1_ps(-5.37397155531e-2f));
    small = _mm512_fmadd_ps(small, z, _mm512_set1_ps(1.33314422036e-1f));
    small = _mm512_fmadd_ps(small, z, _mm512_set1_ps(-3.33332819422e-1f));
    small = _mm512_fmadd_ps(_mm512_mul_ps(small, z), x, x);
    __m512 e = seqtag__exp16(_mm512_add_ps(ax, ax));
    __m512 big = _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_div_ps(
        _mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
    __mmask16 is_small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    __m512 magnitude = _mm512_andnot_ps(sign, _mm512_mask_blend_ps(is_small, big, small));
    return _mm512_or_ps(magnitude, _mm512_and_ps(sign, x));
}

/* The register block both products share: acc[r][q] (NR rows x 4 vectors of 16) =
 * sum over k < K of a[r lda + k] * b[k ldb + 16 q .. 16 q + 15], b read through the lane
 * masks m[q] (all lanes but at the end of a row of W_hh).  NR <= 6: 24 accumulators, 4
 * registers of b and one broadcast of the 32. */
SEQTAG_AVX512 static inline __attribute__((always_inline)) void seqtag__rows_times_panel(
    const int NR, const float *a, Py_ssize_t lda, const float *b, Py_ssize_t ldb,
    Py_ssize_t K, const __mmask16 *m, __m512 acc[SEQTAG_ROW_BLOCK][4]) {
    Py_ssize_t k;
    int r, q;
    for (r = 0; r < NR; r++)
        for (q = 0; q < 4; q++)
            acc[r][q] = _mm512_setzero_ps();
    for (k = 0; k < K; k++) {
        const float *bk = b + k * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m[0], bk), b1 = _mm512_maskz_loadu_ps(m[1], bk + 16);
        __m512 b2 = _mm512_maskz_loadu_ps(m[2], bk + 32);
        __m512 b3 = _mm512_maskz_loadu_ps(m[3], bk + 48);
        for (r = 0; r < NR; r++) {
            __m512 x = _mm512_set1_ps(a[r * lda + k]);
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(x, b3, acc[r][3]);
        }
    }
}

/* The gates of NR rows for the 16 units of one block, from the rows' products
 *   tile     (NR, 4, 16)  h_prev W_hh^T for the block's units, gate by gate
 *   acts[r]  NULL (inference), or where row r's i, f, g, o go (at acts[r] + q H, kept
 *            for backward: training passes x[r] itself);  cells[r] the same for c'
 *   m        the block's lanes that are units (all 16 but in a last, partial block):
 *            memory is only read and written through it
 * and x, c, h, out as in seqtag__lstm_block. */
SEQTAG_AVX512 __attribute__((noinline)) static void seqtag__lstm_gates(
    int NR, const float *tile, const float **x, float *c, float *h, float **out,
    float **acts, float **cells, Py_ssize_t H, __mmask16 m) {
    int r;
    for (r = 0; r < NR; r++) {
        const float *s = tile + r * 4 * SEQTAG_UNITS;
        __m512 i = seqtag__sigmoid16(_mm512_add_ps(_mm512_load_ps(s),
                                                   _mm512_maskz_loadu_ps(m, x[r])));
        __m512 f = seqtag__sigmoid16(_mm512_add_ps(_mm512_load_ps(s + 16),
                                                   _mm512_maskz_loadu_ps(m, x[r] + H)));
        __m512 g = seqtag__tanh16(_mm512_add_ps(_mm512_load_ps(s + 32),
                                                _mm512_maskz_loadu_ps(m, x[r] + 2 * H)));
        __m512 o = seqtag__sigmoid16(_mm512_add_ps(_mm512_load_ps(s + 48),
                                                   _mm512_maskz_loadu_ps(m, x[r] + 3 * H)));
        __m512 c_new = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, c + r * H),
                                       _mm512_mul_ps(i, g));
        __m512 h_new = _mm512_mul_ps(o, seqtag__tanh16(c_new));
        _mm512_mask_storeu_ps(c + r * H, m, c_new);
        _mm512_mask_storeu_ps(h + r * H, m, h_new);
        _mm512_mask_storeu_ps(out[r], m, h_new);
        if (acts) {
            _mm512_mask_storeu_ps(acts[r], m, i);
            _mm512_mask_storeu_ps(acts[r] + H, m, f);
            _mm512_mask_storeu_ps(acts[r] + 2 * H, m, g);
            _mm512_mask_storeu_ps(acts[r] + 3 * H, m, o);
            _mm512_mask_storeu_ps(cells[r], m, c_new);
        }
    }
}

/* NR (1..6) rows of one step for the 16 units of one block:
 *   h_prev   (NR, H)   the rows' previous state (not written: other blocks read it too)
 *   w        (H, 4, 16) the block's packed weights;  multiply: 0 when h_prev is zero
 *   x[r]     (4H,)     row r's input pre-activations, the block's units at x[r] + q H
 *   c        (NR, H)   cell state, the block's 16 columns updated in place
 *   h        (NR, H)   new state, the block's 16 columns;  out[r] the same 16 values */
SEQTAG_AVX512 static inline __attribute__((always_inline)) void seqtag__lstm_block(
    const int NR, const float *h_prev, const float *w, int multiply, const float **x,
    float *c, float *h, float **out, float **acts, float **cells, Py_ssize_t H,
    float *tile, __mmask16 m) {
    static const __mmask16 all[4] = {0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF};
    __m512 acc[SEQTAG_ROW_BLOCK][4];
    int r, q;
    /* rows from a zero state: K = 0 leaves the accumulators at 0 */
    seqtag__rows_times_panel(NR, h_prev, H, w, 4 * SEQTAG_UNITS, multiply ? H : 0, all, acc);
    /* through L1: the gate math in registers of its own (kept in the loop above, the 24
     * accumulators made GCC spill inside the product) */
    for (r = 0; r < NR; r++)
        for (q = 0; q < 4; q++)
            _mm512_storeu_ps(tile + (r * 4 + q) * SEQTAG_UNITS, acc[r][q]);
    seqtag__lstm_gates(NR, tile, x, c, h, out, acts, cells, H, m);
}

/* One step of one direction:
 *   h_prev   (rows, H)  the previous state of the step's rows (a copy: h is written)
 *   running  rows [0, running) multiply h_prev; the rest start from a zero state
 *   packed   seqtag_pack_w_hh_f32(w_hh)
 *   xproj    (V, 4H) input pre-activations; row r of the step reads xproj[ids[r]], or
 *            xproj[first + r] when ids is NULL
 *   c, h     (rows, H)  state, updated;  out row r at out + (first + r) ld_out
 *   keep     0 in inference; 1 in training, which then passes ids NULL and xproj the
 *            (N, 4H) pre-activations, overwritten with i, f, g, o (row first + r), and
 *            cells (N, H) gets c' (row first + r)
 * Any H: a last block of fewer than 16 units reads and writes through a lane mask. */
SEQTAG_AVX512 static void seqtag__lstm_step_f32_avx512(
    const float *h_prev, Py_ssize_t running, const float *packed, const float *xproj,
    const int64_t *ids, Py_ssize_t first, Py_ssize_t rows, float *c, float *h, float *out,
    Py_ssize_t ld_out, Py_ssize_t H, int keep, float *cells) {
    const Py_ssize_t G = 4 * H;
    Py_ssize_t u, r0;
    int r;
    for (u = 0; u < seqtag_unit_blocks(H); u++) {
        const float *w = packed + u * H * 4 * SEQTAG_UNITS;
        const Py_ssize_t col = u * SEQTAG_UNITS;
        const __mmask16 m = H - col >= SEQTAG_UNITS ? (__mmask16)0xFFFF
                                                    : (__mmask16)((1u << (H - col)) - 1);
        for (r0 = 0; r0 < rows; r0 += SEQTAG_ROW_BLOCK) {
            const float *x[SEQTAG_ROW_BLOCK];
            float *acts[SEQTAG_ROW_BLOCK], *cell_rows[SEQTAG_ROW_BLOCK];
            float tile[SEQTAG_ROW_BLOCK * 4 * SEQTAG_UNITS] __attribute__((aligned(64)));
            float *o[SEQTAG_ROW_BLOCK];
            int nr = rows - r0 < SEQTAG_ROW_BLOCK ? (int)(rows - r0) : SEQTAG_ROW_BLOCK;
            int multiply = r0 < running;
            for (r = 0; r < nr; r++) {
                Py_ssize_t row = first + r0 + r;
                x[r] = xproj + (ids ? ids[r0 + r] : row) * G + col;
                o[r] = out + row * ld_out + col;
                /* training: x[r] points into the caller's writable (N, 4H) buffer */
                acts[r] = (float *)x[r];
                cell_rows[r] = keep ? cells + row * H + col : NULL;
            }
            float **a = keep ? acts : NULL, **cr = keep ? cell_rows : NULL;
            const float *hp = h_prev + r0 * H;
            float *cb = c + r0 * H + col, *hb = h + r0 * H + col;
            switch (nr) {
            case 6: seqtag__lstm_block(6, hp, w, multiply, x, cb, hb, o, a, cr, H, tile, m); break;
            case 5: seqtag__lstm_block(5, hp, w, multiply, x, cb, hb, o, a, cr, H, tile, m); break;
            case 4: seqtag__lstm_block(4, hp, w, multiply, x, cb, hb, o, a, cr, H, tile, m); break;
            case 3: seqtag__lstm_block(3, hp, w, multiply, x, cb, hb, o, a, cr, H, tile, m); break;
            case 2: seqtag__lstm_block(2, hp, w, multiply, x, cb, hb, o, a, cr, H, tile, m); break;
            default: seqtag__lstm_block(1, hp, w, multiply, x, cb, hb, o, a, cr, H, tile, m); break;
            }
        }
    }
}

/* NR (1..6) rows x 64 columns of dh = d w_hh:
 *   d (NR, 4H) rows of the gradient w.r.t. the pre-activations;  w (4H, ld) from column
 *   c0 of w_hh;  dh (NR, H) from column c0;  m[q] the columns 16 q .. 16 q + 15 of the
 *   block that exist (fewer than 64 columns may be left at the end of a row) */
SEQTAG_AVX512 static inline __attribute__((always_inline)) void seqtag__back_block(
    const int NR, const float *d, const float *w, float *dh, Py_ssize_t H,
    const __mmask16 *m) {
    __m512 acc[SEQTAG_ROW_BLOCK][4];
    int r, q;
    seqtag__rows_times_panel(NR, d, 4 * H, w, H, 4 * H, m, acc);
    for (r = 0; r < NR; r++)
        for (q = 0; q < 4; q++)
            _mm512_mask_storeu_ps(dh + r * H + 16 * q, m[q], acc[r][q]);
}

/* The recurrent product of one step of backward, dh (rows, H) = d (rows, 4H) w_hh (4H, H):
 * the gradient w.r.t. the previous state.  w_hh is read as it is (row j's 64 columns of a
 * block are adjacent), so nothing is packed.  Any H: the last block's missing columns are
 * masked off. */
SEQTAG_AVX512 static void seqtag__lstm_back_product_f32_avx512(
    const float *d, Py_ssize_t rows, const float *w_hh, Py_ssize_t H, float *dh) {
    Py_ssize_t c0, r0;
    for (c0 = 0; c0 < H; c0 += 64) {
        __mmask16 m[4];
        int q;
        for (q = 0; q < 4; q++) {
            Py_ssize_t left = H - c0 - 16 * q;
            m[q] = left >= 16 ? (__mmask16)0xFFFF
                              : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
        }
        for (r0 = 0; r0 < rows; r0 += SEQTAG_ROW_BLOCK) {
            int nr = rows - r0 < SEQTAG_ROW_BLOCK ? (int)(rows - r0) : SEQTAG_ROW_BLOCK;
            const float *dr = d + r0 * 4 * H;
            float *out = dh + r0 * H + c0;
            switch (nr) {
            case 6: seqtag__back_block(6, dr, w_hh + c0, out, H, m); break;
            case 5: seqtag__back_block(5, dr, w_hh + c0, out, H, m); break;
            case 4: seqtag__back_block(4, dr, w_hh + c0, out, H, m); break;
            case 3: seqtag__back_block(3, dr, w_hh + c0, out, H, m); break;
            case 2: seqtag__back_block(2, dr, w_hh + c0, out, H, m); break;
            default: seqtag__back_block(1, dr, w_hh + c0, out, H, m); break;
            }
        }
    }
}

/* ---- The same kernels in AVX2 + FMA: 8 lanes, 16 registers ----------------------------
 * For CPUs without AVX-512 (AMD Zen 1-3, most Intel client parts), where a step's product
 * through BLAS pays what the header comment says just as much.  W_hh keeps the packed
 * layout above (a memo's packed weights serve either kernel): each block of 16 units is
 * taken as two halves of 8 lanes, and a block of the product is NR8 rows x 4 gates of
 * accumulators.  The arithmetic is the AVX-512 kernels' in 8 lanes: the same polynomials,
 * the same FMAs, the sums of the product in the same order (k ascending). */

#define SEQTAG_AVX2 __attribute__((target("avx2,fma")))
/* Rows of one block of the product: 3 rows x 4 gates = 12 accumulators, + 3 broadcasts of
 * the 16 registers (the weights are read as memory operands of the FMAs). */
#define SEQTAG_ROW_BLOCK8 3

SEQTAG_AVX2 static inline __m256 seqtag__exp8(__m256 x) {
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 t, n, r, p;
    __m256i k;
    /* x second: a NaN stays NaN, as in seqtag__exp16 */
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
    x = _mm256_min_ps(_mm256_set1_ps(87.0f), x);
    t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), magic);
    n = _mm256_sub_ps(t, magic);
    k = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000));
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    k = _mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(k));
}

SEQTAG_AVX2 static inline __m256 seqtag__sigmoid8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, seqtag__exp8(_mm256_sub_ps(
        _mm256_setzero_ps(), x))));
}

SEQTAG_AVX2 static inline __m256 seqtag__tanh8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 ax = _mm256_andnot_ps(sign, x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 small = _mm256_set1_ps(-5.70498872745e-3f);
    small = _mm256_fmadd_ps(small, z, _mm256_set1_ps(2.06390887954e-2f));
    small = _mm256_fmadd_ps(small, z, _mm256_set1_ps(-5.37397155531e-2f));
    small = _mm256_fmadd_ps(small, z, _mm256_set1_ps(1.33314422036e-1f));
    small = _mm256_fmadd_ps(small, z, _mm256_set1_ps(-3.33332819422e-1f));
    small = _mm256_fmadd_ps(_mm256_mul_ps(small, z), x, x);
    __m256 e = seqtag__exp8(_mm256_add_ps(ax, ax));
    __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(
        _mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
    __m256 is_small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ);
    __m256 magnitude = _mm256_andnot_ps(sign, _mm256_blendv_ps(big, small, is_small));
    return _mm256_or_ps(magnitude, _mm256_and_ps(sign, x));
}

/* The lanes [0, n) of a vector of 8 (n may be <= 0: none, or >= 8: all). */
SEQTAG_AVX2 static inline __m256i seqtag__lanes8(Py_ssize_t n) {
    int k = n < 0 ? 0 : n > 8 ? 8 : (int)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Memory of the lanes m (whole vectors where full: the last block of units of an H that
 * is not a multiple of 8 is the only one masked, and its other lanes are never touched). */
SEQTAG_AVX2 static inline __attribute__((always_inline)) __m256 seqtag__load8(
    const float *p, const int full, __m256i m) {
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

SEQTAG_AVX2 static inline __attribute__((always_inline)) void seqtag__store8(
    float *p, __m256 v, const int full, __m256i m) {
    if (full)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, m, v);
}

/* acc[r][q] (NR rows x 4 vectors of 8) = sum over k < K of a[r lda + k] *
 * b[k ldb + qs q .. qs q + 7]: qs = 16 in the packed layout (gate q's half of a block),
 * 8 along a row of W_hh.  masked: b is read through the lane masks m[q] (the end of a row
 * of W_hh), else whole vectors.  NR <= SEQTAG_ROW_BLOCK8. */
SEQTAG_AVX2 static inline __attribute__((always_inline)) void seqtag__rows_times_panel8(
    const int NR, const float *a, Py_ssize_t lda, const float *b, Py_ssize_t ldb,
    const Py_ssize_t qs, Py_ssize_t K, const int masked, const __m256i *m,
    __m256 acc[SEQTAG_ROW_BLOCK8][4]) {
    Py_ssize_t k;
    int r, q;
    for (r = 0; r < NR; r++)
        for (q = 0; q < 4; q++)
            acc[r][q] = _mm256_setzero_ps();
    /* NR broadcasts and one vector of b at a time: 12 + 3 + 1 registers, none spilled */
    for (k = 0; k < K; k++) {
        const float *bk = b + k * ldb;
        __m256 x[SEQTAG_ROW_BLOCK8];
        for (r = 0; r < NR; r++)
            x[r] = _mm256_broadcast_ss(a + r * lda + k);
        for (q = 0; q < 4; q++) {
            __m256 bq = masked ? _mm256_maskload_ps(bk + q * qs, m[q])
                               : _mm256_loadu_ps(bk + q * qs);
            for (r = 0; r < NR; r++)
                acc[r][q] = _mm256_fmadd_ps(x[r], bq, acc[r][q]);
        }
    }
}

/* seqtag__lstm_gates in AVX2 for NR rows and 8 units, of which the lanes m are units
 * (all of them where full: only a last block of an H that is no multiple of 8 is masked,
 * a masked load or store costing several plain ones):  tile (NR, 4, 8), the other
 * pointers at the 8 units' first column. */
SEQTAG_AVX2 static inline __attribute__((always_inline)) void seqtag__gates8(
    const int NR, const float *tile, const float **x, float *c, float *h, float **out,
    float **acts, float **cells, Py_ssize_t H, const int full, __m256i m) {
    /* two passes over the rows, NR a constant: the rows' gate functions are independent
     * chains of ~40 dependent instructions each, which the CPU overlaps only when they
     * come side by side (one row after another, each row's tanh(c) waited on its gates) */
    __m256 o[SEQTAG_ROW_BLOCK8], c_new[SEQTAG_ROW_BLOCK8];
    int r;
    for (r = 0; r < NR; r++) {
        const float *s = tile + r * 4 * 8;
        __m256 i = seqtag__sigmoid8(_mm256_add_ps(_mm256_load_ps(s),
                                                  seqtag__load8(x[r], full, m)));
        __m256 f = seqtag__sigmoid8(_mm256_add_ps(_mm256_load_ps(s + 8),
                                                  seqtag__load8(x[r] + H, full, m)));
        __m256 g = seqtag__tanh8(_mm256_add_ps(_mm256_load_ps(s + 16),
                                               seqtag__load8(x[r] + 2 * H, full, m)));
        o[r] = seqtag__sigmoid8(_mm256_add_ps(_mm256_load_ps(s + 24),
                                              seqtag__load8(x[r] + 3 * H, full, m)));
        c_new[r] = _mm256_fmadd_ps(f, seqtag__load8(c + r * H, full, m), _mm256_mul_ps(i, g));
        if (acts) {
            seqtag__store8(acts[r], i, full, m);
            seqtag__store8(acts[r] + H, f, full, m);
            seqtag__store8(acts[r] + 2 * H, g, full, m);
            seqtag__store8(acts[r] + 3 * H, o[r], full, m);
            seqtag__store8(cells[r], c_new[r], full, m);
        }
    }
    for (r = 0; r < NR; r++) {
        __m256 h_new = _mm256_mul_ps(o[r], seqtag__tanh8(c_new[r]));
        seqtag__store8(c + r * H, c_new[r], full, m);
        seqtag__store8(h + r * H, h_new, full, m);
        seqtag__store8(out[r], h_new, full, m);
    }
}

SEQTAG_AVX2 __attribute__((noinline)) static void seqtag__lstm_gates_avx2(
    int NR, const float *tile, const float **x, float *c, float *h, float **out,
    float **acts, float **cells, Py_ssize_t H, int units) {
    const __m256i none = _mm256_setzero_si256();
    if (units == 8) {
        switch (NR) {
        case 3: seqtag__gates8(3, tile, x, c, h, out, acts, cells, H, 1, none); break;
        case 2: seqtag__gates8(2, tile, x, c, h, out, acts, cells, H, 1, none); break;
        default: seqtag__gates8(1, tile, x, c, h, out, acts, cells, H, 1, none); break;
        }
    } else {
        seqtag__gates8(NR, tile, x, c, h, out, acts, cells, H, 0, seqtag__lanes8(units));
    }
}

/* seqtag__lstm_block in AVX2: NR (1..3) rows and the 8 units of one block, w the block's
 * (H, 4, 8) packed weights. */
SEQTAG_AVX2 static inline __attribute__((always_inline)) void seqtag__lstm_block_avx2(
    const int NR, const float *h_prev, const float *w, int multiply, const float **x,
    float *c, float *h, float **out, float **acts, float **cells, Py_ssize_t H,
    float *tile, int units) {
    __m256 acc[SEQTAG_ROW_BLOCK8][4];
    int r, q;
    seqtag__rows_times_panel8(NR, h_prev, H, w, 4 * 8, 8, multiply ? H : 0, 0, NULL, acc);
    for (r = 0; r < NR; r++)
        for (q = 0; q < 4; q++)
            _mm256_store_ps(tile + (r * 4 + q) * 8, acc[r][q]);
    seqtag__lstm_gates_avx2(NR, tile, x, c, h, out, acts, cells, H, units);
}

/* seqtag_lstm_step_f32 in AVX2: the same arguments and results, packed by
 * seqtag_pack_w_hh_f32(w_hh, H, 8, packed): a block's 16 KB of weights (at H = 128) stay
 * in L1 while its rows pass.  Called for training's steps while
 * seqtag_lstm_step_fused_forward() says so, and for inference's in pieces of at most
 * seqtag_lstm_step_call_rows() rows (seqtag_lstm_infer_step_f32). */
SEQTAG_AVX2 static void seqtag__lstm_step_f32_avx2(
    const float *h_prev, Py_ssize_t running, const float *packed, const float *xproj,
    const int64_t *ids, Py_ssize_t first, Py_ssize_t rows, float *c, float *h, float *out,
    Py_ssize_t ld_out, Py_ssize_t H, int keep, float *cells) {
    const Py_ssize_t G = 4 * H;
    Py_ssize_t u, r0;
    int r;
    {
        for (u = 0; u < (H + 7) / 8; u++) {
            const float *w = packed + u * H * 4 * 8;
            const Py_ssize_t col = u * 8;
            const int units = H - col >= 8 ? 8 : (int)(H - col);
            for (r0 = 0; r0 < rows; r0 += SEQTAG_ROW_BLOCK8) {
                const float *x[SEQTAG_ROW_BLOCK8];
                float *acts[SEQTAG_ROW_BLOCK8], *cell_rows[SEQTAG_ROW_BLOCK8];
                float tile[SEQTAG_ROW_BLOCK8 * 4 * 8] __attribute__((aligned(32)));
                float *o[SEQTAG_ROW_BLOCK8];
                int nr = rows - r0 < SEQTAG_ROW_BLOCK8 ? (int)(rows - r0) : SEQTAG_ROW_BLOCK8;
                int multiply = r0 < running;
                for (r = 0; r < nr; r++) {
                    Py_ssize_t row = first + r0 + r;
                    x[r] = xproj + (ids ? ids[r0 + r] : row) * G + col;
                    o[r] = out + row * ld_out + col;
                    acts[r] = (float *)x[r];
                    cell_rows[r] = keep ? cells + row * H + col : NULL;
                }
                float **a = keep ? acts : NULL, **cr = keep ? cell_rows : NULL;
                const float *hp = h_prev + r0 * H;
                float *cb = c + r0 * H + col, *hb = h + r0 * H + col;
                switch (nr) {
                case 3: seqtag__lstm_block_avx2(3, hp, w, multiply, x, cb, hb, o, a, cr, H, tile, units); break;
                case 2: seqtag__lstm_block_avx2(2, hp, w, multiply, x, cb, hb, o, a, cr, H, tile, units); break;
                default: seqtag__lstm_block_avx2(1, hp, w, multiply, x, cb, hb, o, a, cr, H, tile, units); break;
                }
            }
        }
    }
}

/* NR (1..3) rows x 32 columns of dh = d w_hh, as seqtag__back_block: masked, the columns
 * of the block that exist are m[q]'s lanes (a last block of fewer than 32). */
SEQTAG_AVX2 static inline __attribute__((always_inline)) void seqtag__back_block8(
    const int NR, const float *d, const float *w, float *dh, Py_ssize_t H,
    const int masked, const __m256i *m) {
    __m256 acc[SEQTAG_ROW_BLOCK8][4];
    int r, q;
    seqtag__rows_times_panel8(NR, d, 4 * H, w, H, 8, 4 * H, masked, m, acc);
    for (r = 0; r < NR; r++)
        for (q = 0; q < 4; q++) {
            if (masked)
                _mm256_maskstore_ps(dh + r * H + 8 * q, m[q], acc[r][q]);
            else
                _mm256_storeu_ps(dh + r * H + 8 * q, acc[r][q]);
        }
}

#define SEQTAG__BACK_ROWS8(MASKED)                                                          \
    switch (nr) {                                                                           \
    case 3: seqtag__back_block8(3, dr, w_hh + c0, out, H, MASKED, m); break;               \
    case 2: seqtag__back_block8(2, dr, w_hh + c0, out, H, MASKED, m); break;               \
    default: seqtag__back_block8(1, dr, w_hh + c0, out, H, MASKED, m); break;              \
    }

/* seqtag_lstm_back_product_f32 in AVX2: blocks of 32 columns, the last one masked. */
SEQTAG_AVX2 static void seqtag__lstm_back_product_f32_avx2(
    const float *d, Py_ssize_t rows, const float *w_hh, Py_ssize_t H, float *dh) {
    Py_ssize_t c0, r0;
    for (c0 = 0; c0 < H; c0 += 32) {
        __m256i m[4];
        int q;
        const int masked = H - c0 < 32;
        for (q = 0; q < 4; q++)
            m[q] = seqtag__lanes8(H - c0 - 8 * q);
        for (r0 = 0; r0 < rows; r0 += SEQTAG_ROW_BLOCK8) {
            int nr = rows - r0 < SEQTAG_ROW_BLOCK8 ? (int)(rows - r0) : SEQTAG_ROW_BLOCK8;
            const float *dr = d + r0 * 4 * H;
            float *out = dh + r0 * H + c0;
            if (masked) {
                SEQTAG__BACK_ROWS8(1)
            } else {
                SEQTAG__BACK_ROWS8(0)
            }
        }
    }
}

#endif /* SEQTAG_HAVE_LSTM_STEP */

/* ---- Which kernels run ------------------------------------------------------------------
 * SEQTAG_ISA_AVX512 or SEQTAG_ISA_AVX2 where this CPU and build have them, else 0 (every
 * product through BLAS).  seqtag__best_isa is what the CPU offers (seqtag_lstm_step_init,
 * called when _core is imported); seqtag__isa is what the two entry points below call:
 * the best, unless seqtag_lstm_step_set_isa chose AVX2 on an AVX-512 CPU (so the AVX2
 * kernels stay tested there; seqtag/runtime.py owns the choice). */
#define SEQTAG_ISA_AVX2 1
#define SEQTAG_ISA_AVX512 2

static int seqtag__best_isa = 0, seqtag__isa = 0;

static void seqtag_lstm_step_init(void) {
#if SEQTAG_HAVE_LSTM_STEP
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        seqtag__best_isa = SEQTAG_ISA_AVX512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        seqtag__best_isa = SEQTAG_ISA_AVX2;
#endif
    seqtag__isa = seqtag__best_isa;
}

/* The best kernels this CPU and build run (0: none). */
static int seqtag_lstm_step_available(void) { return seqtag__best_isa; }

/* The kernels the entry points call now. */
static int seqtag_lstm_step_isa(void) { return seqtag__isa; }

/* Call the kernels of isa (1 or 2) from now on: 0, or -1 where this CPU lacks them. */
static int seqtag_lstm_step_set_isa(int isa) {
    if (isa < SEQTAG_ISA_AVX2 || isa > seqtag__best_isa)
        return -1;
    seqtag__isa = isa;
    return 0;
}

/* Backward's product d W_hh: steps of more rows than this go through BLAS where the AVX2
 * kernels run: measured on a Zen 3 EPYC (bench/bench_core.py, H = 128), the fused product
 * takes 0.5x BLAS's time at 4 rows, 0.75x at 16, the same at 32, and 1.1-1.25x from 64
 * rows on, where OpenBLAS's blocked product also keeps the inputs in cache. */
#define SEQTAG_AVX2_MAX_ROWS 24

/* The forward step, fused (product and gates) while the step's rows x H is at most this
 * (128 rows at H = 128, 256 at H = 64), else BLAS + the gate pass, in training; inference
 * cuts a bigger step into fused calls of at most this (seqtag_lstm_infer_step_f32).
 * Measured on a Zen 3 EPYC (2026-12-03, GFLOP/s of the recurrent product, fused / BLAS),
 * with both directions on the two cores as a tagger runs them: H = 128, 85 / 85 at 30 rows
 * before the gates of a block's rows were interleaved, 113 / 85 after; 118 / 108 at 100,
 * 111 / 106 at 150, 110 / 109 at 200, 94 / 106 at 300, 91 / 109 at 500; H = 64, 85 / 77 at
 * 150, 82 / 81 at 300, 69 / 81 at 500.  One direction alone on one core the fused step
 * wins further (70 / 64 at 400 rows, 54 / 63 at 900): the fused step reads each row's
 * input pre-activations and state once per block of 8 units, which stays in the core's L2
 * only while the rows are few, and two cores at once share the L3 behind it.  `python
 * bench/step_speed.py [--threads 2]` compares the choice with BLAS. */
#define SEQTAG_AVX2_MAX_STATE 16384

/* Whether a step of `rows` rows runs fused (callers check seqtag_lstm_step_available()
 * and that packed weights exist): always with the AVX-512 kernels, up to
 * SEQTAG_AVX2_MAX_ROWS rows with the AVX2 ones (backward's product). */
static int seqtag_lstm_step_fused_rows(Py_ssize_t rows) {
    return seqtag__isa == SEQTAG_ISA_AVX512 ||
           (seqtag__isa == SEQTAG_ISA_AVX2 && rows <= SEQTAG_AVX2_MAX_ROWS);
}

/* The same for training's forward step of `rows` rows of H units (inference's steps are
 * all fused, in pieces: seqtag_lstm_infer_step_f32). */
static int seqtag_lstm_step_fused_forward(Py_ssize_t rows, Py_ssize_t H) {
    return seqtag__isa == SEQTAG_ISA_AVX512 ||
           (seqtag__isa == SEQTAG_ISA_AVX2 && rows * H <= SEQTAG_AVX2_MAX_STATE);
}

/* One step of one direction (see seqtag__lstm_step_f32_avx512); callers check
 * seqtag_lstm_step_available() first. */
static void seqtag_lstm_step_f32(
    const float *h_prev, Py_ssize_t running, const float *packed, const float *xproj,
    const int64_t *ids, Py_ssize_t first, Py_ssize_t rows, float *c, float *h, float *out,
    Py_ssize_t ld_out, Py_ssize_t H, int keep, float *cells) {
#if SEQTAG_HAVE_LSTM_STEP
    if (seqtag__isa == SEQTAG_ISA_AVX512)
        seqtag__lstm_step_f32_avx512(h_prev, running, packed, xproj, ids, first, rows, c, h,
                                     out, ld_out, H, keep, cells);
    else if (seqtag__isa == SEQTAG_ISA_AVX2)
        seqtag__lstm_step_f32_avx2(h_prev, running, packed, xproj, ids, first, rows, c, h,
                                   out, ld_out, H, keep, cells);
#else
    (void)keep; (void)cells; (void)h_prev; (void)running; (void)packed; (void)xproj;
    (void)ids; (void)first; (void)rows; (void)c; (void)h; (void)out; (void)ld_out; (void)H;
#endif
}

/* Backward's recurrent product of one step (see seqtag__lstm_back_product_f32_avx512). */
static void seqtag_lstm_back_product_f32(
    const float *d, Py_ssize_t rows, const float *w_hh, Py_ssize_t H, float *dh) {
#if SEQTAG_HAVE_LSTM_STEP
    if (seqtag__isa == SEQTAG_ISA_AVX512)
        seqtag__lstm_back_product_f32_avx512(d, rows, w_hh, H, dh);
    else if (seqtag__isa == SEQTAG_ISA_AVX2)
        seqtag__lstm_back_product_f32_avx2(d, rows, w_hh, H, dh);
#else
    (void)d; (void)rows; (void)w_hh; (void)H; (void)dh;
#endif
}

/* Rows one call of the AVX2 inference step takes: SEQTAG_AVX2_MAX_STATE's worth, a whole
 * number of the kernel's row blocks.  An inference step of more rows is cut into calls of
 * this many (seqtag_lstm_infer_step_f32), which keeps every step of inference fused where
 * forward steps this big went to BLAS: each row of a fused step is computed on its own, so
 * a batch's values no longer depend on how many rows its steps have (nor on how two
 * threads share them out, RNN._infer_layer_shared), and they are the AVX-512 kernel's
 * bits.  The cut keeps each call's rows in the core's L2, the reason the limit exists. */
static Py_ssize_t seqtag_lstm_step_call_rows(Py_ssize_t H) {
    Py_ssize_t rows;
    if (seqtag__isa != SEQTAG_ISA_AVX2)
        return PY_SSIZE_T_MAX;
    rows = SEQTAG_AVX2_MAX_STATE / H / SEQTAG_ROW_BLOCK8 * SEQTAG_ROW_BLOCK8;
    return rows > SEQTAG_ROW_BLOCK8 ? rows : SEQTAG_ROW_BLOCK8;
}

/* One inference step (keep = 0) of `rows` rows, fused whatever their number: the kernel
 * called on pieces of at most seqtag_lstm_step_call_rows(H) rows (the same arguments as
 * seqtag_lstm_step_f32; h_prev, c and h start at the step's first row, `first` is that
 * row's index in out and, without ids, in xproj). */
static void seqtag_lstm_infer_step_f32(
    const float *h_prev, Py_ssize_t running, const float *packed, const float *xproj,
    const int64_t *ids, Py_ssize_t first, Py_ssize_t rows, float *c, float *h, float *out,
    Py_ssize_t ld_out, Py_ssize_t H) {
    const Py_ssize_t most = seqtag_lstm_step_call_rows(H);
    Py_ssize_t a, n, run;
    for (a = 0; a < rows; a += most) {
        n = rows - a < most ? rows - a : most;
        run = running - a < 0 ? 0 : (running - a > n ? n : running - a);
        seqtag_lstm_step_f32(h_prev + a * H, run, packed, xproj, ids ? ids + a : NULL,
                             first + a, n, c + a * H, h + a * H, out, ld_out, H, 0, NULL);
    }
}

#endif /* SEQTAG_LSTM_STEP_H */
