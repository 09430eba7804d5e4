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

#endif /* SEQTAG_HAVE_LSTM_STEP */

/* Whether seqtag_analyses_scores_f32 runs here: the AVX2 kernel is built and the CPU has it
 * (the caller also asks seqtag.runtime whether fused kernels are switched on). */
static int seqtag_analyses_step_available(void) {
    return seqtag_lstm_step_available() >= SEQTAG_ISA_AVX2;
}

/* seqtag__analyses_scores_avx2; callers check seqtag_analyses_step_available() first. */
static void seqtag_analyses_scores_f32(
    const float *hidden, Py_ssize_t ld_h, const int64_t *order, Py_ssize_t n,
    const float *panels, const float *bias8, Py_ssize_t P, Py_ssize_t D, float *scores,
    Py_ssize_t ld_s) {
#if SEQTAG_HAVE_LSTM_STEP
    seqtag__analyses_scores_avx2(hidden, ld_h, order, n, panels, bias8, P, D, scores, ld_s);
#else
    (void)hidden; (void)ld_h; (void)order; (void)n; (void)panels; (void)bias8; (void)P;
    (void)D; (void)scores; (void)ld_s;
#endif
}

#endif /* SEQTAG_ANALYSES_STEP_H */
