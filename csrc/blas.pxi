# Matrix products through the BLAS that NumPy itself loaded.
#
# seqtag/runtime.py finds NumPy's BLAS library at import time and hands the addresses of its
# cblas_sgemm / cblas_dgemm here.  Calling through a function pointer (instead of np.matmul)
# lets the whole time loop run without the GIL; at the sizes of a tagger it also removes
# 13 % (hidden 128: 31.4 against 36.2 us a step) to 40 % (hidden 32: 1.20 against 1.99 us)
# of the per-step cost, measured with a prototype that ran both routes on the same steps.
# Where no BLAS can be found, csrc/gemm_fallback.h keeps results right (and slower).

from libc.stdint cimport int32_t, int64_t, uintptr_t

cdef extern from *:
    """
    enum { SEQTAG_ROW_MAJOR = 101, SEQTAG_NO_TRANS = 111, SEQTAG_TRANS = 112 };
    """
    enum:
        SEQTAG_ROW_MAJOR
        SEQTAG_NO_TRANS
        SEQTAG_TRANS

ctypedef void (*sgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, float, const float*,
                            int64_t, const float*, int64_t, float, float*, int64_t) noexcept nogil
ctypedef void (*dgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, double, const double*,
                            int64_t, const double*, int64_t, double, double*, int64_t) noexcept nogil
ctypedef void (*sgemm32_fn)(int, int, int, int32_t, int32_t, int32_t, float, const float*,
                            int32_t, const float*, int32_t, float, float*, int32_t) noexcept nogil
ctypedef void (*dgemm32_fn)(int, int, int, int32_t, int32_t, int32_t, double, const double*,
                            int32_t, const double*, int32_t, double, double*, int32_t) noexcept nogil

# cblas_?gemv (order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy)
ctypedef void (*sgemv64_fn)(int, int, int64_t, int64_t, float, const float*, int64_t,
                            const float*, int64_t, float, float*, int64_t) noexcept nogil
ctypedef void (*dgemv64_fn)(int, int, int64_t, int64_t, double, const double*, int64_t,
                            const double*, int64_t, double, double*, int64_t) noexcept nogil
ctypedef void (*sgemv32_fn)(int, int, int32_t, int32_t, float, const float*, int32_t,
                            const float*, int32_t, float, float*, int32_t) noexcept nogil
ctypedef void (*dgemv32_fn)(int, int, int32_t, int32_t, double, const double*, int32_t,
                            const double*, int32_t, double, double*, int32_t) noexcept nogil

# 0: the fallback loop; 32 or 64: the integer width of the cblas interface found
cdef int blas_int_bits = 0
cdef void* blas_sgemm = NULL
cdef void* blas_dgemm = NULL
cdef void* blas_sgemv = NULL  # NULL: single-row products go through gemm too
cdef void* blas_dgemv = NULL


def _set_blas(uintptr_t sgemm_address, uintptr_t dgemm_address, int int_bits,
              uintptr_t sgemv_address=0, uintptr_t dgemv_address=0):
    """Install the cblas gemm (and, if found, gemv) entry points found by seqtag.runtime
    (int_bits 0 = fallback loops)."""
    global blas_int_bits, blas_sgemm, blas_dgemm, blas_sgemv, blas_dgemv
    if int_bits not in (0, 32, 64):
        raise ValueError("int_bits must be 0, 32 or 64")
    if int_bits and (sgemm_address == 0 or dgemm_address == 0):
        raise ValueError("a BLAS address is null")
    if (sgemv_address == 0) != (dgemv_address == 0):
        raise ValueError("give both gemv addresses or neither")
    blas_sgemm = <void*>sgemm_address
    blas_dgemm = <void*>dgemm_address
    blas_sgemv = <void*>sgemv_address if int_bits else NULL
    blas_dgemv = <void*>dgemv_address if int_bits else NULL
    blas_int_bits = int_bits


# A product with one row of A: y (n,) = alpha op(B) x + beta y through cblas gemv.
# A recurrent step of one or two sequences goes row by row through it (batch 1, a sentence
# tagged alone, a batch's last long sentences); gemm would pack all of W_hh for those rows:
# OpenBLAS takes ~15 us for 1 or 2 x 128 times 128 x 512 that way, gemv ~5 us a row.
#   x: the row of A (stride incx);  B (n x k, or k x n when not trans_b), row stride ldb
cdef inline void gemv_row(bint trans_b, Py_ssize_t n, Py_ssize_t k, floating alpha,
                          const floating* x, Py_ssize_t incx, const floating* b,
                          Py_ssize_t ldb, floating beta, floating* y) noexcept nogil:
    # row-major: trans_b means y = B x with B (n x k); else y = B^T x with B (k x n)
    cdef int tb = SEQTAG_NO_TRANS if trans_b else SEQTAG_TRANS
    cdef Py_ssize_t rows_b = n if trans_b else k
    cdef Py_ssize_t cols_b = k if trans_b else n
    if blas_int_bits == 64:
        if floating is float:
            (<sgemv64_fn>blas_sgemv)(SEQTAG_ROW_MAJOR, tb, rows_b, cols_b, alpha, b, ldb, x,
                                     incx, beta, y, 1)
        else:
            (<dgemv64_fn>blas_dgemv)(SEQTAG_ROW_MAJOR, tb, rows_b, cols_b, alpha, b, ldb, x,
                                     incx, beta, y, 1)
    else:
        if floating is float:
            (<sgemv32_fn>blas_sgemv)(SEQTAG_ROW_MAJOR, tb, <int32_t>rows_b, <int32_t>cols_b,
                                     alpha, b, <int32_t>ldb, x, <int32_t>incx, beta, y, 1)
        else:
            (<dgemv32_fn>blas_dgemv)(SEQTAG_ROW_MAJOR, tb, <int32_t>rows_b, <int32_t>cols_b,
                                     alpha, b, <int32_t>ldb, x, <int32_t>incx, beta, y, 1)


cdef extern from "gemm_fallback.h" nogil:
    void seqtag_fallback_gemm_f32(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n,
                                  Py_ssize_t k, float alpha, const float* a, Py_ssize_t lda,
                                  const float* b, Py_ssize_t ldb, float beta, float* c,
                                  Py_ssize_t ldc) noexcept
    void seqtag_fallback_gemm_f64(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n,
                                  Py_ssize_t k, double alpha, const double* a, Py_ssize_t lda,
                                  const double* b, Py_ssize_t ldb, double beta, double* c,
                                  Py_ssize_t ldc) noexcept


# C (m x n, row stride ldc) = alpha * op(A) op(B) + beta * C, all row-major.
# op(A) is m x k (A is k x m when trans_a); op(B) is k x n (B is n x k when trans_b).
cdef inline void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                      floating alpha, const floating* a, Py_ssize_t lda,
                      const floating* b, Py_ssize_t ldb,
                      floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    cdef int ta = SEQTAG_TRANS if trans_a else SEQTAG_NO_TRANS
    cdef int tb = SEQTAG_TRANS if trans_b else SEQTAG_NO_TRANS
    if m == 0 or n == 0:
        return
    cdef Py_ssize_t i
    if m <= 2 and k > 0 and blas_sgemv != NULL:
        for i in range(m):
            gemv_row(trans_b, n, k, alpha, a + (i if trans_a else i * lda),
                     lda if trans_a else 1, b, ldb, beta, c + i * ldc)
        return
    if blas_int_bits == 64:
        if floating is float:
            (<sgemm64_fn>blas_sgemm)(SEQTAG_ROW_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb,
                                     beta, c, ldc)
        else:
            (<dgemm64_fn>blas_dgemm)(SEQTAG_ROW_MAJOR, ta, tb, m, n, k, alpha, a, lda, b, ldb,
                                     beta, c, ldc)
    elif blas_int_bits == 32:
        if floating is float:
            (<sgemm32_fn>blas_sgemm)(SEQTAG_ROW_MAJOR, ta, tb, <int32_t>m, <int32_t>n, <int32_t>k,
                                     alpha, a, <int32_t>lda, b, <int32_t>ldb, beta, c,
                                     <int32_t>ldc)
        else:
            (<dgemm32_fn>blas_dgemm)(SEQTAG_ROW_MAJOR, ta, tb, <int32_t>m, <int32_t>n, <int32_t>k,
                                     alpha, a, <int32_t>lda, b, <int32_t>ldb, beta, c,
                                     <int32_t>ldc)
    else:
        if floating is float:
            seqtag_fallback_gemm_f32(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
                                     ldc)
        else:
            seqtag_fallback_gemm_f64(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
                                     ldc)


def gemm_check(floating[:, ::1] a, floating[:, ::1] b, floating[:, ::1] c, bint trans_a,
               bint trans_b, double alpha, double beta):
    """c = alpha op(a) op(b) + beta c through the installed BLAS (for tests)."""
    cdef Py_ssize_t m = c.shape[0], n = c.shape[1]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0], a.shape[1], &b[0, 0],
             b.shape[1], <floating>beta, &c[0, 0], c.shape[1])
