# Matrix products through the BLAS that NumPy itself loaded.
#
# seqtag/_blas.py finds NumPy's BLAS library at import time and hands the addresses of its
# cblas_sgemm / cblas_dgemm here.  Calling through a function pointer (instead of np.matmul)
# lets the whole time loop run without the GIL; at the sizes of a tagger it also removes
# 13 % (hidden 128: 31.4 against 36.2 us a step) to 40 % (hidden 32: 1.20 against 1.99 us)
# of the per-step cost, measured with a prototype that ran both routes on the same steps.
# Where no BLAS can be found, a plain C loop keeps results right (and slow).

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

# 0: the fallback loop; 32 or 64: the integer width of the cblas interface found
cdef int blas_int_bits = 0
cdef void* blas_sgemm = NULL
cdef void* blas_dgemm = NULL


def _set_blas(uintptr_t sgemm_address, uintptr_t dgemm_address, int int_bits):
    """Install the cblas gemm entry points found by seqtag._blas (int_bits 0 = fallback)."""
    global blas_int_bits, blas_sgemm, blas_dgemm
    if int_bits not in (0, 32, 64):
        raise ValueError("int_bits must be 0, 32 or 64")
    if int_bits and (sgemm_address == 0 or dgemm_address == 0):
        raise ValueError("a BLAS address is null")
    blas_sgemm = <void*>sgemm_address
    blas_dgemm = <void*>dgemm_address
    blas_int_bits = int_bits


cdef void fallback_gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        floating alpha, const floating* a, Py_ssize_t lda,
                        const floating* b, Py_ssize_t ldb,
                        floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    cdef Py_ssize_t i, j, p
    cdef floating a_ip
    for i in range(m):
        for j in range(n):
            c[i * ldc + j] = 0 if beta == 0 else beta * c[i * ldc + j]
        for p in range(k):
            a_ip = alpha * (a[p * lda + i] if trans_a else a[i * lda + p])
            if trans_b:
                for j in range(n):
                    c[i * ldc + j] += a_ip * b[j * ldb + p]
            else:
                for j in range(n):
                    c[i * ldc + j] += a_ip * b[p * ldb + j]


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
        fallback_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


def gemm_check(floating[:, ::1] a, floating[:, ::1] b, floating[:, ::1] c, bint trans_a,
               bint trans_b, double alpha, double beta):
    """c = alpha op(a) op(b) + beta c through the installed BLAS (for tests)."""
    cdef Py_ssize_t m = c.shape[0], n = c.shape[1]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0], a.shape[1], &b[0, 0],
             b.shape[1], <floating>beta, &c[0, 0], c.shape[1])
