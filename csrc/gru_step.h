/* The inference step of a float32 GRU with its product and gates fused, in AVX-512 and in
 * AVX2 + FMA: the raw-text front end's character model (seqtag/segment.py) runs one per
 * character and direction.
 *
 * Why not BLAS + the gate pass (gru_infer_steps' other path): the front end's steps are
 * ~150 windows x 48 units, a (rows, 48) x (48, 144) product that a general sgemm packs
 * again on every call and writes out for the gate pass to read back; measured there, the
 * character model ran at ~37 GFLOP/s and took 0.9 s of the second core on EWT train's
 * raw text, which made the learned front end's command line slower than the rules'.
 * Here W_hh (36 KB at H = 48, or 27 KB in the AVX-512 layout) is packed once per call,
 * a block of rows x 16 (AVX2: 8) units keeps its three gates' sums in registers, and the
 * gates are computed from them before the next block.
 *
 * The layout follows lstm_step.h's with three gates: packed (U, H, 3, L) for L lanes
 * (16 or 8), U = ceil(H / L): packed[((u H + k) 3 + q) L + l] = w_hh[q H + L u + l, k],
 * 0 for lanes past the last unit.  The arithmetic is gru_infer_steps' BLAS path's up to
 * float32 rounding: the sums run k ascending with FMAs, and the gate functions are
 * lstm_step.h's polynomials (about 1 ulp from fastmath.h's scalar loops).  Which kernels
 * run is lstm_step.h's choice (seqtag_lstm_step_isa), so SEQTAG_FUSED_STEP switches both.
 */
#ifndef SEQTAG_GRU_STEP_H
#define SEQTAG_GRU_STEP_H

#include <string.h>
#include "lstm_step.h"

/* Floats of a packed W_hh of H units, for either layout (16 lanes needs the most). */
static inline Py_ssize_t seqtag_gru_packed_size(Py_ssize_t H) {
    return 3 * H * seqtag_unit_blocks(H) * SEQTAG_UNITS;
}

/* packed <- w_hh (3H, H) in the layout above for `lanes` (16 or 8); the rest of
 * seqtag_gru_packed_size(H) is zeros. */
static void seqtag_gru_pack_w_hh_f32(const float *w_hh, Py_ssize_t H, int lanes, float *packed) {
    Py_ssize_t u, k, q, l, unit, n = 0;
    for (u = 0; u < (H + lanes - 1) / lanes; u++)
        for (k = 0; k < H; k++)
            for (q = 0; q < 3; q++)
                for (l = 0; l < lanes; l++) {
                    unit = lanes * u + l;
                    packed[n++] = unit < H ? w_hh[(q * H + unit) * H + k] : 0.0f;
                }
    for (; n < seqtag_gru_packed_size(H); n++)
        packed[n] = 0.0f;
}

#if SEQTAG_HAVE_LSTM_STEP

/* Where the nr rows of a step from row `first` read their input pre-activations and write
 * their new state, at unit col: x[r] = xproj row ids[r] (first + r where ids is NULL), o[r]
 * = out row first + r.  Both kernels' blocks of rows. */
static inline void seqtag__gru_rows(int nr, const float *xproj, const int64_t *ids,
                                    Py_ssize_t first, Py_ssize_t G, float *out,
                                    Py_ssize_t ld_out, Py_ssize_t col, const float **x,
                                    float **o) {
    int r;
    for (r = 0; r < nr; r++) {
        x[r] = xproj + (ids ? ids[r] : first + r) * G + col;
        o[r] = out + (first + r) * ld_out + col;
    }
}

/* Rows of one block of the AVX-512 product: 8 rows x 3 gates = 24 accumulators, 3 weight
 * registers and a broadcast of the 32. */
#define SEQTAG_GRU_ROWS 8

/* The gates of NR rows for the 16 units of one block (m: those that exist), from
 *   tile   (NR, 3, 16)  h_prev W_hh^T for the block's units, gate by gate
 *   x[r]   row r's input pre-activations at the block's first unit (gate q at + q H)
 *   b      b_hh at the block's first unit (gate q at + q H)
 *   hp     (NR, H) the rows' previous state at the block's first unit
 *   h      (NR, H) the new state, out[r] the same 16 values */
SEQTAG_AVX512 __attribute__((noinline)) static void seqtag__gru_gates16(
    int NR, const float *tile, const float **x, const float *b, const float *hp, float *h,
    float **out, Py_ssize_t H, __mmask16 m) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 b_r = _mm512_maskz_loadu_ps(m, b), b_z = _mm512_maskz_loadu_ps(m, b + H);
    __m512 b_n = _mm512_maskz_loadu_ps(m, b + 2 * H);
    int r;
    for (r = 0; r < NR; r++) {
        const float *s = tile + r * 3 * SEQTAG_UNITS;
        __m512 reset = seqtag__sigmoid16(_mm512_add_ps(_mm512_add_ps(
            _mm512_maskz_loadu_ps(m, x[r]), _mm512_load_ps(s)), b_r));
        __m512 update = seqtag__sigmoid16(_mm512_add_ps(_mm512_add_ps(
            _mm512_maskz_loadu_ps(m, x[r] + H), _mm512_load_ps(s + 16)), b_z));
        __m512 rec_n = _mm512_add_ps(_mm512_load_ps(s + 32), b_n);
        __m512 n = seqtag__tanh16(_mm512_fmadd_ps(reset, rec_n,
                                                  _mm512_maskz_loadu_ps(m, x[r] + 2 * H)));
        __m512 h_new = _mm512_fmadd_ps(update, _mm512_maskz_loadu_ps(m, hp + r * H),
                                       _mm512_mul_ps(_mm512_sub_ps(one, update), n));
        _mm512_mask_storeu_ps(h + r * H, m, h_new);
        _mm512_mask_storeu_ps(out[r], m, h_new);
    }
}

/* NR (1..8) rows of one step for the 16 units of one block, the units from col:
 *   h_prev   (NR, H) the rows' previous state (not written: other blocks read it too)
 *   w        the block's (H, 3, 16) packed weights;  multiply: 0 when h_prev is zero
 *   h        (NR, H) the new state at the block's first unit
 * and x, b, out, m as seqtag__gru_gates16 takes them. */
SEQTAG_AVX512 static inline __attribute__((always_inline)) void seqtag__gru_block16(
    const int NR, const float *h_prev, const float *w, int multiply, const float **x,
    const float *b, float *h, float **out, Py_ssize_t H, Py_ssize_t col, float *tile,
    __mmask16 m) {
    __m512 acc[SEQTAG_GRU_ROWS][3];
    Py_ssize_t k;
    int r, q;
    for (r = 0; r < NR; r++)
        for (q = 0; q < 3; q++)
            acc[r][q] = _mm512_setzero_ps();
    for (k = 0; k < (multiply ? H : 0); k++) {
        const float *wk = w + k * 3 * SEQTAG_UNITS;
        __m512 w0 = _mm512_loadu_ps(wk), w1 = _mm512_loadu_ps(wk + 16);
        __m512 w2 = _mm512_loadu_ps(wk + 32);
        for (r = 0; r < NR; r++) {
            __m512 v = _mm512_set1_ps(h_prev[r * H + k]);
            acc[r][0] = _mm512_fmadd_ps(v, w0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(v, w1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(v, w2, acc[r][2]);
        }
    }
    for (r = 0; r < NR; r++)
        for (q = 0; q < 3; q++)
            _mm512_store_ps(tile + (r * 3 + q) * SEQTAG_UNITS, acc[r][q]);
    seqtag__gru_gates16(NR, tile, x, b, h_prev + col, h, out, H, m);
}

/* One step of one direction:
 *   h_prev   (rows, H)  the previous state of the step's rows (a copy: h is written)
 *   running  rows [0, running) multiply h_prev; the rest start from a zero state
 *   packed   seqtag_gru_pack_w_hh_f32(w_hh, H, 16)
 *   b_hh     (3H,)
 *   xproj    (V, 3H) input pre-activations (x W_ih^T + b_ih); row r of the step reads
 *            xproj[ids[r]], or xproj[first + r] when ids is NULL
 *   h        (rows, H)  state, updated;  out row r at out + (first + r) ld_out */
SEQTAG_AVX512 static void seqtag__gru_step_f32_avx512(
    const float *h_prev, Py_ssize_t running, const float *packed, const float *b_hh,
    const float *xproj, const int64_t *ids, Py_ssize_t first, Py_ssize_t rows, float *h,
    float *out, Py_ssize_t ld_out, Py_ssize_t H) {
    const Py_ssize_t G = 3 * H;
    Py_ssize_t u, r0;
    float tile[SEQTAG_GRU_ROWS * 3 * SEQTAG_UNITS] __attribute__((aligned(64)));
    for (u = 0; u < seqtag_unit_blocks(H); u++) {
        const float *w = packed + u * H * 3 * SEQTAG_UNITS;
        const Py_ssize_t col = u * SEQTAG_UNITS;
        const __mmask16 m = H - col >= SEQTAG_UNITS ? (__mmask16)0xFFFF
                                                    : (__mmask16)((1u << (H - col)) - 1);
        for (r0 = 0; r0 < rows; r0 += SEQTAG_GRU_ROWS) {
            const float *x[SEQTAG_GRU_ROWS];
            float *o[SEQTAG_GRU_ROWS];
            int nr = rows - r0 < SEQTAG_GRU_ROWS ? (int)(rows - r0) : SEQTAG_GRU_ROWS;
            int multiply = r0 < running;
            seqtag__gru_rows(nr, xproj, ids ? ids + r0 : NULL, first + r0, G, out, ld_out, col,
                             x, o);
            const float *hp = h_prev + r0 * H, *b = b_hh + col;
            float *hb = h + r0 * H + col;
            /* rows past `running` in a block that has some below it multiply zeros */
            switch (nr) {
            case 8: seqtag__gru_block16(8, hp, w, multiply, x, b, hb, o, H, col, tile, m); break;
            case 7: seqtag__gru_block16(7, hp, w, multiply, x, b, hb, o, H, col, tile, m); break;
            case 6: seqtag__gru_block16(6, hp, w, multiply, x, b, hb, o, H, col, tile, m); break;
            case 5: seqtag__gru_block16(5, hp, w, multiply, x, b, hb, o, H, col, tile, m); break;
            case 4: seqtag__gru_block16(4, hp, w, multiply, x, b, hb, o, H, col, tile, m); break;
            case 3: seqtag__gru_block16(3, hp, w, multiply, x, b, hb, o, H, col, tile, m); break;
            case 2: seqtag__gru_block16(2, hp, w, multiply, x, b, hb, o, H, col, tile, m); break;
            default: seqtag__gru_block16(1, hp, w, multiply, x, b, hb, o, H, col, tile, m); break;
            }
        }
    }
}

/* ---- AVX2 + FMA: 8 lanes, 16 registers: 4 rows x 3 gates = 12 accumulators, 3 weight
 * registers and a broadcast. */
#define SEQTAG_GRU_ROWS8 4

/* seqtag__gru_gates16 in 8 lanes, of which the n first are units (8: all). */
SEQTAG_AVX2 __attribute__((noinline)) static void seqtag__gru_gates8(
    int NR, const float *tile, const float **x, const float *b, const float *hp, float *h,
    float **out, Py_ssize_t H, Py_ssize_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256i m = seqtag__lanes8(n);
    const int full = n >= 8;
    __m256 b_r = seqtag__load8(b, full, m), b_z = seqtag__load8(b + H, full, m);
    __m256 b_n = seqtag__load8(b + 2 * H, full, m);
    int r;
    for (r = 0; r < NR; r++) {
        const float *s = tile + r * 3 * 8;
        __m256 reset = seqtag__sigmoid8(_mm256_add_ps(_mm256_add_ps(
            seqtag__load8(x[r], full, m), _mm256_load_ps(s)), b_r));
        __m256 update = seqtag__sigmoid8(_mm256_add_ps(_mm256_add_ps(
            seqtag__load8(x[r] + H, full, m), _mm256_load_ps(s + 8)), b_z));
        __m256 rec_n = _mm256_add_ps(_mm256_load_ps(s + 16), b_n);
        __m256 nw = seqtag__tanh8(_mm256_fmadd_ps(reset, rec_n,
                                                  seqtag__load8(x[r] + 2 * H, full, m)));
        __m256 h_new = _mm256_fmadd_ps(update, seqtag__load8(hp + r * H, full, m),
                                       _mm256_mul_ps(_mm256_sub_ps(one, update), nw));
        seqtag__store8(h + r * H, h_new, full, m);
        seqtag__store8(out[r], h_new, full, m);
    }
}

SEQTAG_AVX2 static inline __attribute__((always_inline)) void seqtag__gru_block8(
    const int NR, const float *h_prev, const float *w, int multiply, const float **x,
    const float *b, float *h, float **out, Py_ssize_t H, Py_ssize_t col, float *tile,
    Py_ssize_t n) {
    __m256 acc[SEQTAG_GRU_ROWS8][3];
    Py_ssize_t k;
    int r, q;
    for (r = 0; r < NR; r++)
        for (q = 0; q < 3; q++)
            acc[r][q] = _mm256_setzero_ps();
    for (k = 0; k < (multiply ? H : 0); k++) {
        const float *wk = w + k * 3 * 8;
        __m256 w0 = _mm256_loadu_ps(wk), w1 = _mm256_loadu_ps(wk + 8);
        __m256 w2 = _mm256_loadu_ps(wk + 16);
        for (r = 0; r < NR; r++) {
            __m256 v = _mm256_broadcast_ss(h_prev + r * H + k);
            acc[r][0] = _mm256_fmadd_ps(v, w0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(v, w1, acc[r][1]);
            acc[r][2] = _mm256_fmadd_ps(v, w2, acc[r][2]);
        }
    }
    for (r = 0; r < NR; r++)
        for (q = 0; q < 3; q++)
            _mm256_store_ps(tile + (r * 3 + q) * 8, acc[r][q]);
    seqtag__gru_gates8(NR, tile, x, b, h_prev + col, h, out, H, n);
}

/* seqtag__gru_step_f32_avx512 in AVX2: packed by seqtag_gru_pack_w_hh_f32(w_hh, H, 8). */
SEQTAG_AVX2 static void seqtag__gru_step_f32_avx2(
    const float *h_prev, Py_ssize_t running, const float *packed, const float *b_hh,
    const float *xproj, const int64_t *ids, Py_ssize_t first, Py_ssize_t rows, float *h,
    float *out, Py_ssize_t ld_out, Py_ssize_t H) {
    const Py_ssize_t G = 3 * H;
    Py_ssize_t u, r0;
    float tile[SEQTAG_GRU_ROWS8 * 3 * 8] __attribute__((aligned(32)));
    for (u = 0; u < (H + 7) / 8; u++) {
        const float *w = packed + u * H * 3 * 8;
        const Py_ssize_t col = u * 8, n = H - col;
        for (r0 = 0; r0 < rows; r0 += SEQTAG_GRU_ROWS8) {
            const float *x[SEQTAG_GRU_ROWS8];
            float *o[SEQTAG_GRU_ROWS8];
            int nr = rows - r0 < SEQTAG_GRU_ROWS8 ? (int)(rows - r0) : SEQTAG_GRU_ROWS8;
            int multiply = r0 < running;
            seqtag__gru_rows(nr, xproj, ids ? ids + r0 : NULL, first + r0, G, out, ld_out, col,
                             x, o);
            const float *hp = h_prev + r0 * H, *b = b_hh + col;
            float *hb = h + r0 * H + col;
            switch (nr) {
            case 4: seqtag__gru_block8(4, hp, w, multiply, x, b, hb, o, H, col, tile, n); break;
            case 3: seqtag__gru_block8(3, hp, w, multiply, x, b, hb, o, H, col, tile, n); break;
            case 2: seqtag__gru_block8(2, hp, w, multiply, x, b, hb, o, H, col, tile, n); break;
            default: seqtag__gru_block8(1, hp, w, multiply, x, b, hb, o, H, col, tile, n); break;
            }
        }
    }
}

#endif /* SEQTAG_HAVE_LSTM_STEP */

/* Lanes of the layout the kernels called now read (16 or 8; 0: none). */
static int seqtag_gru_step_lanes(void) {
    int isa = seqtag_lstm_step_isa();
    return isa == SEQTAG_ISA_AVX512 ? 16 : isa == SEQTAG_ISA_AVX2 ? 8 : 0;
}

/* One step of one direction (see seqtag__gru_step_f32_avx512), with the kernels called
 * now; packed in their layout (seqtag_gru_step_lanes()). */
static void seqtag_gru_step_f32(
    const float *h_prev, Py_ssize_t running, const float *packed, const float *b_hh,
    const float *xproj, const int64_t *ids, Py_ssize_t first, Py_ssize_t rows, float *h,
    float *out, Py_ssize_t ld_out, Py_ssize_t H) {
#if SEQTAG_HAVE_LSTM_STEP
    if (seqtag_lstm_step_isa() == SEQTAG_ISA_AVX512)
        seqtag__gru_step_f32_avx512(h_prev, running, packed, b_hh, xproj, ids, first, rows,
                                    h, out, ld_out, H);
    else if (seqtag_lstm_step_isa() == SEQTAG_ISA_AVX2)
        seqtag__gru_step_f32_avx2(h_prev, running, packed, b_hh, xproj, ids, first, rows,
                                  h, out, ld_out, H);
#else
    (void)h_prev; (void)running; (void)packed; (void)b_hh; (void)xproj; (void)ids;
    (void)first; (void)rows; (void)h; (void)out; (void)ld_out; (void)H;
#endif
}

#endif /* SEQTAG_GRU_STEP_H */
