# Small typed helpers shared by the cells.  The scalar sigmoid/tanh_ serve the float64
# cells (exact libm); the float32 cells call the array kernels of fastmath.h instead.

from libc.math cimport exp, expf, tanh, tanhf
from libc.string cimport memcpy, memset

# Vectorised float32 kernels (csrc/fastmath.h), in place over n contiguous elements.
# float64 keeps libm's exp/tanh below, bit for bit, for the gradient checks.
cdef extern from "fastmath.h" nogil:
    void seqtag_exp_f32(float* x, Py_ssize_t n) noexcept
    void seqtag_sigmoid_f32(float* x, Py_ssize_t n) noexcept
    void seqtag_tanh_f32(float* x, Py_ssize_t n) noexcept
    void seqtag_prefetch_rows(const float* table, const int64_t* ids, Py_ssize_t first,
                              Py_ssize_t n, Py_ssize_t width) noexcept
    void seqtag_lstm_infer_row_f32(const float* s, const float* x, float* c, float* h,
                                   float* out, const float* w_ci, const float* w_cf,
                                   const float* w_co, Py_ssize_t H) noexcept
    void seqtag_gru_row_f32(const float* x, const float* s, const float* b, float* h,
                            float* out, float* a, float* hn, float* h_prev,
                            Py_ssize_t H) noexcept
    # restrict-qualified float pointers: arguments of the float32 row loops, which never
    # overlap; GCC vectorises those loops only when told so (see fastmath.h)
    ctypedef float* float_r "seqtag_float_r"
    ctypedef const float* cfloat_r "seqtag_cfloat_r"

# The fused LSTM kernels (csrc/lstm_step.h), in AVX-512 and in AVX2: the forward step with
# its gates, and backward's product with W_hh
cdef extern from "lstm_step.h" nogil:
    void seqtag_lstm_step_init() noexcept
    int seqtag_lstm_step_available() noexcept
    int seqtag_lstm_step_isa() noexcept
    int seqtag_lstm_step_set_isa(int isa) noexcept
    int seqtag_lstm_step_fused_rows(Py_ssize_t rows) noexcept
    int seqtag_lstm_step_fused_forward(Py_ssize_t rows, Py_ssize_t H) noexcept
    Py_ssize_t seqtag_unit_blocks(Py_ssize_t H) noexcept
    void seqtag_pack_w_hh_f32(const float* w_hh, Py_ssize_t H, int lanes,
                              float* packed) noexcept
    void seqtag_lstm_step_f32(const float* h_prev, Py_ssize_t running, const float* packed,
                              const float* xproj, const int64_t* ids, Py_ssize_t first,
                              Py_ssize_t rows, float* c, float* h, float* out,
                              Py_ssize_t ld_out, Py_ssize_t H, int keep,
                              float* cells) noexcept
    void seqtag_lstm_back_product_f32(const float* d, Py_ssize_t rows, const float* w_hh,
                                      Py_ssize_t H, float* dh) noexcept
    Py_ssize_t seqtag_lstm_step_call_rows(Py_ssize_t H) noexcept
    void seqtag_lstm_infer_step_f32(const float* h_prev, Py_ssize_t running,
                                    const float* packed, const float* xproj,
                                    const int64_t* ids, Py_ssize_t first, Py_ssize_t rows,
                                    float* c, float* h, float* out, Py_ssize_t ld_out,
                                    Py_ssize_t H) noexcept


cdef inline floating sigmoid(floating x) noexcept nogil:
    if floating is float:
        return 1 / (1 + expf(-x))
    else:
        return 1 / (1 + exp(-x))


cdef inline floating tanh_(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


# g (n, width) <- bias in every row
cdef void fill_rows(floating* g, Py_ssize_t n, Py_ssize_t width,
                    const floating* bias) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(width):
            g[i * width + j] = bias[j]


# y (n,) += x (n,)
cdef inline void add_row(floating* y, const floating* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = y[i] + x[i]


# How many rows of step t need the recurrent product.  The rows that start their sequence
# at this step -- all rows of the first step going forward; going in reverse, the rows
# beyond the previous step's batch size -- multiply the initial state, and when that is
# zero (no h0: every tagging call, every training batch) their product is exact zeros:
# only the running rows [0, returned) need it.  Over a batch this skips one row per
# sequence, 1/length of the products (8 % on EWT test).
#   h (B, H)  the state by rank; rows that have not started yet still hold h0
cdef inline Py_ssize_t running_rows(const int64_t* batch_sizes, Py_ssize_t T, Py_ssize_t t,
                                    bint reverse, const floating* h,
                                    Py_ssize_t H) noexcept nogil:
    cdef Py_ssize_t i, rows = batch_sizes[t], split
    if reverse:
        split = batch_sizes[t + 1] if t + 1 < T else 0
    else:
        split = 0 if t == 0 else rows
    for i in range(split * H, rows * H):
        if h[i] != 0:
            return rows
    return split


# out (rows, G) = h (rows, H) w^T (G, H) for the rows of step t, with the product skipped
# (zeros written) for the rows that start from a zero state (running_rows).
cdef inline void zero_state_product(floating* out, const int64_t* batch_sizes, Py_ssize_t T,
                                    Py_ssize_t t, bint reverse, const floating* h,
                                    const floating* w, Py_ssize_t H,
                                    Py_ssize_t G) noexcept nogil:
    cdef Py_ssize_t rows = batch_sizes[t]
    cdef Py_ssize_t running = running_rows(batch_sizes, T, t, reverse, h, H)
    if running > 0:
        gemm(False, True, running, G, H, <floating>1, h, H, w, H, <floating>0, out, G)
    if running < rows:
        memset(out + running * G, 0, (rows - running) * G * sizeof(floating))


# out (width,) += column sums of g (n, width, row stride ld)
cdef void add_column_sums(floating* out, const floating* g, Py_ssize_t n, Py_ssize_t width,
                          Py_ssize_t ld) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(width):
            out[j] += g[i * ld + j]


# Packed batches: step t covers rows [offset(t), offset(t) + batch_sizes[t]); the rows of a
# step are the sequences still running, longest first, so the batch only shrinks with t.
cdef inline Py_ssize_t total_rows(const int64_t* batch_sizes, Py_ssize_t steps) noexcept nogil:
    cdef Py_ssize_t t, n = 0
    for t in range(steps):
        n += batch_sizes[t]
    return n
