/* The matrix product seqtag runs where no BLAS could be found beside NumPy (seqtag/runtime.py
 * says so: a warning and `seqtag --version`).  Not a BLAS, but not the triple loop either:
 * the naive loop read B^T a column at a time (every product of a tagger's forward is
 * x W^T), and tagged EWT 36x slower than OpenBLAS.
 *
 * C (m x n, row stride ldc) = alpha op(A) op(B) + beta C, row-major, as blas.pxi's gemm.
 * For each block of SEQTAG_NR columns, a panel of op(B) (up to SEQTAG_KC rows of it) is
 * copied into a small contiguous buffer; each block of SEQTAG_MR rows of op(A) is then
 * multiplied with it into MR x NR accumulators, whose loop over the NR columns the compiler
 * turns into SIMD code (SSE2 in the default build, AVX2+FMA and AVX-512 clones where
 * fastmath.h's SEQTAG_CLONES applies).
 */
#ifndef SEQTAG_GEMM_FALLBACK_H
#define SEQTAG_GEMM_FALLBACK_H

#include <Python.h>

#include "fastmath.h"

#define SEQTAG_MR 4
#define SEQTAG_NR 16
#define SEQTAG_KC 256

/* C += alpha op(A) op(B) for a few rows of op(A), C already scaled by beta: a dot product
 * per element where B is read transposed (both operands contiguous, summed in SEQTAG_NR
 * independent lanes so that the loop vectorises without reordering any one sum), else
 * each row of op(B) scaled into the row of C. */
#define SEQTAG_DEFINE_FALLBACK_ROWS(T, S)                                                      \
    SEQTAG_CLONES                                                                              \
    static void seqtag_fallback_rows_##S(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, \
                                         Py_ssize_t k, T alpha, const T *a, Py_ssize_t lda,    \
                                         const T *b, Py_ssize_t ldb, T *c, Py_ssize_t ldc) {   \
        T lanes[SEQTAG_NR], sum, x;                                                            \
        Py_ssize_t i, j, p, q;                                                                 \
        for (i = 0; i < m; i++) {                                                              \
            if (trans_b && !trans_a) {                                                         \
                for (j = 0; j < n; j++) {                                                      \
                    const T *ar = a + i * lda, *br = b + j * ldb;                              \
                    for (q = 0; q < SEQTAG_NR; q++)                                            \
                        lanes[q] = 0;                                                          \
                    for (p = 0; p + SEQTAG_NR <= k; p += SEQTAG_NR)                            \
                        for (q = 0; q < SEQTAG_NR; q++)                                        \
                            lanes[q] += ar[p + q] * br[p + q];                                 \
                    sum = 0;                                                                   \
                    for (; p < k; p++)                                                         \
                        sum += ar[p] * br[p];                                                  \
                    for (q = 0; q < SEQTAG_NR; q++)                                            \
                        sum += lanes[q];                                                       \
                    c[i * ldc + j] += alpha * sum;                                             \
                }                                                                              \
                continue;                                                                      \
            }                                                                                  \
            for (p = 0; p < k; p++) {                                                          \
                x = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);                       \
                if (trans_b)                                                                   \
                    for (j = 0; j < n; j++)                                                    \
                        c[i * ldc + j] += x * b[j * ldb + p];                                  \
                else                                                                           \
                    for (j = 0; j < n; j++)                                                    \
                        c[i * ldc + j] += x * b[p * ldb + j];                                  \
            }                                                                                  \
        }                                                                                      \
    }

/* One function per element type: T the type, S the name's suffix. */
#define SEQTAG_DEFINE_FALLBACK_GEMM(T, S)                                                      \
    SEQTAG_CLONES                                                                              \
    static void seqtag_fallback_gemm_##S(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, \
                                         Py_ssize_t k, T alpha, const T *a, Py_ssize_t lda,    \
                                         const T *b, Py_ssize_t ldb, T beta, T *c,             \
                                         Py_ssize_t ldc) {                                     \
        T panel[SEQTAG_KC * SEQTAG_NR];                                                        \
        T acc[SEQTAG_MR][SEQTAG_NR];                                                           \
        Py_ssize_t i, j, p, p0, kc, nr, r, q, rows;                                            \
        for (i = 0; i < m; i++)                                                                \
            for (j = 0; j < n; j++) /* beta 0: whatever C held (NaN too) is ignored */         \
                c[i * ldc + j] = beta == 0 ? (T)0 : beta * c[i * ldc + j];                     \
        if (m < SEQTAG_MR) { /* a row or two (a step of one sentence): no panel to copy */   \
            seqtag_fallback_rows_##S(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc); \
            return;                                                                            \
        }                                                                                      \
        for (j = 0; j < n; j += SEQTAG_NR) {                                                   \
            nr = n - j < SEQTAG_NR ? n - j : SEQTAG_NR;                                        \
            for (p0 = 0; p0 < k; p0 += SEQTAG_KC) {                                            \
                kc = k - p0 < SEQTAG_KC ? k - p0 : SEQTAG_KC;                                  \
                /* panel[p][q] = op(B)[p0 + p][j + q], zero past the last column */            \
                for (p = 0; p < kc; p++)                                                       \
                    for (q = 0; q < SEQTAG_NR; q++)                                            \
                        panel[p * SEQTAG_NR + q] =                                             \
                            q >= nr ? (T)0                                                     \
                            : trans_b ? b[(j + q) * ldb + p0 + p]                              \
                                      : b[(p0 + p) * ldb + j + q];                             \
                for (i = 0; i < m; i += SEQTAG_MR) {                                           \
                    rows = m - i < SEQTAG_MR ? m - i : SEQTAG_MR;                              \
                    for (r = 0; r < SEQTAG_MR; r++)                                            \
                        for (q = 0; q < SEQTAG_NR; q++)                                        \
                            acc[r][q] = 0;                                                     \
                    for (p = 0; p < kc; p++) {                                                 \
                        const T *row = panel + p * SEQTAG_NR;                                  \
                        for (r = 0; r < SEQTAG_MR; r++) {                                      \
                            /* rows past m repeat the last one; never stored */                \
                            Py_ssize_t ir = i + (r < rows ? r : rows - 1);                     \
                            T x = trans_a ? a[(p0 + p) * lda + ir] : a[ir * lda + p0 + p];     \
                            for (q = 0; q < SEQTAG_NR; q++)                                    \
                                acc[r][q] += x * row[q];                                       \
                        }                                                                      \
                    }                                                                          \
                    for (r = 0; r < rows; r++)                                                 \
                        for (q = 0; q < nr; q++)                                               \
                            c[(i + r) * ldc + j + q] += alpha * acc[r][q];                     \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

SEQTAG_DEFINE_FALLBACK_ROWS(float, f32)
SEQTAG_DEFINE_FALLBACK_ROWS(double, f64)
SEQTAG_DEFINE_FALLBACK_GEMM(float, f32)
SEQTAG_DEFINE_FALLBACK_GEMM(double, f64)

#endif
