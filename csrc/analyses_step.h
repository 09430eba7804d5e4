/* The scores of the analyses of one predicted UPOS for its tokens (csrc/analyses.pxi), in a
 * kernel of our own for CPUs with AVX2 + FMA (AVX-512 CPUs run it too).
 *
 * Why not BLAS, as the rest of csrc/: a UPOS's analyses are few (11 to 93 on EWT), so each
 * product is (its tokens in the batch) x 256 x (a few dozen): the library gathers the
 * tokens' rows into a block, then packs that block again, before a product too narrow for
 * its kernels; on EWT test that took 10-12 ms a pass, 30-37 GFLOP/s, a tenth of tagging
 * every column.  Here each token's row of the encoder's output is read where it is (no
 * gather, no packing), the analyses' weights are packed once per weights' version, in
 * panels of 8 analyses (D x 8: one vector per input column), and a block of 4 rows x 16
 * analyses stays in 8 registers until its scores are stored.
 *
 * The sums run k ascending with FMAs, then add the bias: BLAS's results up to float32
 * rounding (the caller's choice of a best analysis trusts only clear margins anyway,
 * seqtag.heads.TagCombinations.choose_best).
 */
#ifndef SEQTAG_ANALYSES_STEP_H
#define SEQTAG_ANALYSES_STEP_H

#include <math.h>
#include "lstm_step.h"

/* Analyses per panel: one AVX2 vector of float32. */
#define SEQTAG_PANEL 8

/* The packed layout (made in NumPy, seqtag.network._analysis_panels): a group of K analyses
 * has ceil(K / 8) panels of (D, 8), panel p's column k, lane l holding analysis 8 p + l's
 * weight k (0 past the K-th), and bias8 (8 a panel) the biases, 0 past the K-th. */

#if SEQTAG_HAVE_LSTM_STEP

/* acc[r][q] (NR rows x NQ panels) = sum over k < D of row r's k-th value times panel q's
 * k-th vector.  NR <= 4, NQ <= 2: 8 accumulators, 4 broadcasts, 2 weight vectors. */
SEQTAG_AVX2 static inline __attribute__((always_inline)) void seqtag__analyses_block8(
    const int NR, const int NQ, const float *const *rows, const float *panel, Py_ssize_t D,
    float *scores, Py_ssize_t ld_s, const float *bias8) {
    __m256 acc[4][2];
    Py_ssize_t k;
    int r, q;
    for (r = 0; r < NR; r++)
        for (q = 0; q < NQ; q++)
            acc[r][q] = _mm256_setzero_ps();
    for (k = 0; k < D; k++) {
        __m256 w[2], x[4];
        for (q = 0; q < NQ; q++)
            w[q] = _mm256_loadu_ps(panel + (q * D + k) * SEQTAG_PANEL);
        for (r = 0; r < NR; r++)
            x[r] = _mm256_broadcast_ss(rows[r] + k);
        for (r = 0; r < NR; r++)
            for (q = 0; q < NQ; q++)
                acc[r][q] = _mm256_fmadd_ps(x[r], w[q], acc[r][q]);
    }
    for (r = 0; r < NR; r++)
        for (q = 0; q < NQ; q++)
            _mm256_storeu_ps(scores + r * ld_s + q * SEQTAG_PANEL,
                             _mm256_add_ps(acc[r][q], _mm256_loadu_ps(bias8 + q * SEQTAG_PANEL)));
}

/* scores (n, ld_s) <- the analyses' scores of n rows: row r is hidden + order[r] * ld_h (D
 * values), its scores bias8 + the row times the P packed panels, in columns [0, 8 P) of
 * its row of scores (ld_s >= 8 P; columns past the group's K analyses hold 0 + 0). */
SEQTAG_AVX2 static void seqtag__analyses_scores_avx2(
    const float *hidden, Py_ssize_t ld_h, const int64_t *order, Py_ssize_t n,
    const float *panels, const float *bias8, Py_ssize_t P, Py_ssize_t D, float *scores,
    Py_ssize_t ld_s) {
    Py_ssize_t r0, p;
    int r, nr, nq;
    for (r0 = 0; r0 < n; r0 += 4) {
        const float *rows[4];
        nr = n - r0 < 4 ? (int)(n - r0) : 4;
        for (r = 0; r < nr; r++)
            rows[r] = hidden + order[r0 + r] * ld_h;
        for (p = 0; p < P; p += 2) {
            const float *panel = panels + p * D * SEQTAG_PANEL;
            float *s = scores + r0 * ld_s + p * SEQTAG_PANEL;
            const float *b = bias8 + p * SEQTAG_PANEL;
            nq = P - p < 2 ? 1 : 2;
            /* NR and NQ as constants, so that the accumulators stay in registers */
            if (nq == 2) {
                switch (nr) {
                case 4: seqtag__analyses_block8(4, 2, rows, panel, D, s, ld_s, b); break;
                case 3: seqtag__analyses_block8(3, 2, rows, panel, D, s, ld_s, b); break;
                case 2: seqtag__analyses_block8(2, 2, rows, panel, D, s, ld_s, b); break;
                default: seqtag__analyses_block8(1, 2, rows, panel, D, s, ld_s, b); break;
                }
            } else {
                switch (nr) {
                case 4: seqtag__analyses_block8(4, 1, rows, panel, D, s, ld_s, b); break;
                case 3: seqtag__analyses_block8(3, 1, rows, panel, D, s, ld_s, b); break;
                case 2: seqtag__analyses_block8(2, 1, rows, panel, D, s, ld_s, b); break;
                default: seqtag__analyses_block8(1, 1, rows, panel, D, s, ld_s, b); break;
                }
            }
        }
    }
}

/* The same in AVX-512 (CPUs that have it run it unless the AVX2 kernels are asked for,
 * seqtag.runtime.set_fused_step): panels of 16 analyses, one register wide, made by the same
 * packing with 16 lanes (panel p's column k, lane l: analysis 16 p + l's weight k), and a
 * block of 6 rows x 32 analyses in 12 of the 32 registers: per k, 2 panel vectors and 6
 * broadcasts feed 12 FMAs.  A UPOS's analyses (11 to 93 on EWT) pad to 16 rather than 8, and
 * each FMA does twice the lanes: the kernel runs about 1.7 times as fast (EWT test). */
SEQTAG_AVX512 static inline __attribute__((always_inline)) void seqtag__analyses_block16(
    const int NR, const int NQ, const float *const *rows, const float *panel, Py_ssize_t D,
    float *scores, Py_ssize_t ld_s, const float *bias16) {
    __m512 acc[6][2];
    Py_ssize_t k;
    int r, q;
    for (r = 0; r < NR; r++)
        for (q = 0; q < NQ; q++)
            acc[r][q] = _mm512_setzero_ps();
    for (k = 0; k < D; k++) {
        __m512 w[2];
        for (q = 0; q < NQ; q++)
            w[q] = _mm512_loadu_ps(panel + (q * D + k) * 16);
        for (r = 0; r < NR; r++) {
            __m512 x = _mm512_set1_ps(rows[r][k]);
            for (q = 0; q < NQ; q++)
                acc[r][q] = _mm512_fmadd_ps(x, w[q], acc[r][q]);
        }
    }
    for (r = 0; r < NR; r++)
        for (q = 0; q < NQ; q++)
            _mm512_storeu_ps(scores + r * ld_s + q * 16,
                             _mm512_add_ps(acc[r][q], _mm512_loadu_ps(bias16 + q * 16)));
}

#define SEQTAG__ANALYSES_ROWS16(NQ)                                                          \
    switch (nr) {                                                                          \
    case 6: seqtag__analyses_block16(6, NQ, rows, panel, D, s, ld_s, b); break;              \
    case 5: seqtag__analyses_block16(5, NQ, rows, panel, D, s, ld_s, b); break;              \
    case 4: seqtag__analyses_block16(4, NQ, rows, panel, D, s, ld_s, b); break;              \
    case 3: seqtag__analyses_block16(3, NQ, rows, panel, D, s, ld_s, b); break;              \
    case 2: seqtag__analyses_block16(2, NQ, rows, panel, D, s, ld_s, b); break;              \
    default: seqtag__analyses_block16(1, NQ, rows, panel, D, s, ld_s, b); break;             \
    }

/* seqtag__analyses_scores_avx2 with panels of 16 (bias16: 16 a panel). */
SEQTAG_AVX512 static void seqtag__analyses_scores_avx512(
    const float *hidden, Py_ssize_t ld_h, const int64_t *order, Py_ssize_t n,
    const float *panels, const float *bias16, Py_ssize_t P, Py_ssize_t D, float *scores,
    Py_ssize_t ld_s) {
    Py_ssize_t r0, p;
    int r, nr;
    for (r0 = 0; r0 < n; r0 += 6) {
        const float *rows[6];
        nr = n - r0 < 6 ? (int)(n - r0) : 6;
        for (r = 0; r < nr; r++)
            rows[r] = hidden + order[r0 + r] * ld_h;
        for (p = 0; p < P; p += 2) {
            const float *panel = panels + p * D * 16;
            float *s = scores + r0 * ld_s + p * 16;
            const float *b = bias16 + p * 16;
            /* NR and NQ as constants, so that the accumulators stay in registers */
            if (P - p >= 2) {
                SEQTAG__ANALYSES_ROWS16(2)
            } else {
                SEQTAG__ANALYSES_ROWS16(1)
            }
        }
    }
}

#undef SEQTAG__ANALYSES_ROWS16

/* out[c] = the dot product of x (D values) with row ids[c] of weight (rows ld_w apart),
 * c < K: the lemma head's scores of the scripts that fit a word (csrc/ops.pxi,
 * script_rows_best), a few dozen of its 419 rows.  Eight rows at a time, one 8-lane
 * accumulator each: a vector of x serves eight FMAs, and eight independent sums keep both
 * FMA units busy through their latency (four left half of it idle: 1.8 times slower on
 * EWT test).  The order of the sums is not BLAS's: the caller trusts only clear winners. */
SEQTAG_AVX2 static void seqtag__gathered_dots_avx2(const float *x, const float *weight,
                                                   Py_ssize_t ld_w, const int64_t *ids,
                                                   Py_ssize_t K, Py_ssize_t D, float *out) {
    const Py_ssize_t full = D / 8 * 8;
    const __m256i tail = seqtag__lanes8(D - full);
    Py_ssize_t c0, k;
    int c, nc;
    for (c0 = 0; c0 < K; c0 += 8) {
        const float *w[8];
        __m256 acc[8], xv;
        nc = K - c0 < 8 ? (int)(K - c0) : 8;
        for (c = 0; c < 8; c++) {
            w[c] = weight + ids[c0 + (c < nc ? c : 0)] * ld_w;  /* past nc: repeats, unused */
            acc[c] = _mm256_setzero_ps();
        }
        for (k = 0; k < full; k += 8) {
            xv = _mm256_loadu_ps(x + k);
            for (c = 0; c < 8; c++)
                acc[c] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w[c] + k), acc[c]);
        }
        if (full < D) {
            xv = _mm256_maskload_ps(x + full, tail);
            for (c = 0; c < 8; c++)
                acc[c] = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w[c] + full, tail), acc[c]);
        }
        for (c = 0; c < nc; c++) {
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[c]),
                                  _mm256_extractf128_ps(acc[c], 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            out[c0 + c] = _mm_cvtss_f32(h);
        }
    }
}

#endif /* SEQTAG_HAVE_LSTM_STEP */

/* seqtag__gathered_dots_avx2 where the fused kernels' AVX2 runs on this CPU: 1 if it ran,
 * else 0 (the caller sums in C). */
static int seqtag_gathered_dots_f32(const float *x, const float *weight, Py_ssize_t ld_w,
                                    const int64_t *ids, Py_ssize_t K, Py_ssize_t D,
                                    float *out) {
#if SEQTAG_HAVE_LSTM_STEP
    if (seqtag_lstm_step_isa() >= SEQTAG_ISA_AVX2) {
        seqtag__gathered_dots_avx2(x, weight, ld_w, ids, K, D, out);
        return 1;
    }
#else
    (void)x; (void)weight; (void)ld_w; (void)ids; (void)K; (void)D; (void)out;
#endif
    return 0;
}

/* Whether seqtag_analyses_scores_f32 runs here: the AVX2 kernel is built and the CPU has it
 * (the caller also asks seqtag.runtime whether fused kernels are switched on). */
static int seqtag_analyses_step_available(void) {
    return seqtag_lstm_step_available() >= SEQTAG_ISA_AVX2;
}

/* The lanes of the panels seqtag_analyses_scores_f32 reads now: 16 where the AVX-512
 * kernels run (seqtag_lstm_step_isa(): the same switch as the LSTM steps'), else 8. */
static int seqtag_analyses_lanes(void) {
    return seqtag_lstm_step_isa() == SEQTAG_ISA_AVX512 ? 16 : 8;
}

/* seqtag__analyses_scores_avx512 for panels of 16 lanes, else seqtag__analyses_scores_avx2;
 * callers check seqtag_analyses_step_available() and seqtag_analyses_lanes() first. */
static void seqtag_analyses_scores_f32(
    const float *hidden, Py_ssize_t ld_h, const int64_t *order, Py_ssize_t n,
    const float *panels, const float *bias8, Py_ssize_t P, Py_ssize_t D, float *scores,
    Py_ssize_t ld_s, int lanes) {
#if SEQTAG_HAVE_LSTM_STEP
    if (lanes == 16)
        seqtag__analyses_scores_avx512(hidden, ld_h, order, n, panels, bias8, P, D, scores,
                                       ld_s);
    else
        seqtag__analyses_scores_avx2(hidden, ld_h, order, n, panels, bias8, P, D, scores,
                                     ld_s);
#else
    (void)hidden; (void)ld_h; (void)order; (void)n; (void)panels; (void)bias8; (void)P;
    (void)D; (void)scores; (void)ld_s; (void)lanes;
#endif
}

#endif /* SEQTAG_ANALYSES_STEP_H */
