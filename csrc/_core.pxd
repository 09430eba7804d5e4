# The interface of seqtag's compiled core (definitions in _core.pyx and the .pxi files).
# Every kernel works on raw row-major buffers; shapes are in the comment above each
# definition.  N packed rows, B sequences, T steps, H hidden units, D input features.

from cython cimport floating
from libc.stdint cimport int32_t, int64_t

# C = alpha op(A) op(B) + beta C through NumPy's BLAS
cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               floating alpha, const floating* a, Py_ssize_t lda,
               const floating* b, Py_ssize_t ldb,
               floating beta, floating* c, Py_ssize_t ldc) noexcept nogil

cdef void lstm_cell_forward(floating* gates, floating* h, floating* c, floating* h_prev,
                            floating* cells, floating* out, Py_ssize_t ld_out,
                            Py_ssize_t rows, Py_ssize_t H, const floating* w_ci,
                            const floating* w_cf, const floating* w_co) noexcept nogil

cdef void lstm_cell_backward(floating* gates, const floating* cells, const floating* tanh_c,
                             const floating* c_before, const floating* c0, Py_ssize_t split,
                             const floating* grad_out, Py_ssize_t ld_grad_out, floating* dh,
                             floating* dc, Py_ssize_t rows, Py_ssize_t H,
                             const floating* w_ci, const floating* w_cf,
                             const floating* w_co, floating* grad_w_ci, floating* grad_w_cf,
                             floating* grad_w_co) noexcept nogil

cdef void lstm_forward_steps(floating* gates, const floating* w_hh,
                             const int64_t* batch_sizes, Py_ssize_t T, bint reverse,
                             floating* h, floating* c, floating* h_prev, floating* cells,
                             floating* out, Py_ssize_t ld_out, Py_ssize_t H,
                             const floating* w_ci, const floating* w_cf,
                             const floating* w_co, const float* packed) noexcept nogil

cdef void lstm_infer_steps(const floating* xproj, const int64_t* row_ids,
                           const floating* w_hh, const int64_t* batch_sizes, Py_ssize_t T,
                           bint reverse, floating* scratch, floating* h, floating* c,
                           floating* out, Py_ssize_t ld_out, Py_ssize_t H,
                           const floating* w_ci, const floating* w_cf,
                           const floating* w_co, const float* packed) noexcept nogil

cdef void lstm_infer_ranks_steps(const float* xproj, const int64_t* row_ids,
                           const int64_t* batch_sizes, Py_ssize_t T, bint reverse,
                           float* scratch, float* h, float* c, float* out, Py_ssize_t ld_out,
                           Py_ssize_t H, const float* packed, Py_ssize_t first,
                           Py_ssize_t last) noexcept nogil

# One direction of a one-layer LSTM over a tree of prefixes (lstm.pxi)
cdef void sort_sequences(const int64_t* ids, const int64_t* starts, const int64_t* lengths,
                         Py_ssize_t n, bint reverse, int64_t* order,
                         int64_t* tmp) noexcept nogil

cdef Py_ssize_t prefix_tree_nodes(const int64_t* ids, const int64_t* starts,
                                  const int64_t* lengths, const int64_t* order, Py_ssize_t n,
                                  bint reverse, Py_ssize_t max_len, int64_t* node_id,
                                  int64_t* node_parent, int64_t* depth_start,
                                  int64_t* seq_node, int64_t* path) noexcept nogil

cdef void lstm_tree_infer_steps(const float* xproj, const int64_t* node_id,
                                const int64_t* node_parent, const int64_t* depth_start,
                                Py_ssize_t depths, const float* w_hh, const float* packed,
                                float* h, float* c, float* h_prev, float* scratch,
                                Py_ssize_t H) noexcept nogil

cdef void lstm_backward_steps(floating* gates, const floating* w_hh, const floating* cells,
                              const floating* c0, const int64_t* batch_sizes, Py_ssize_t T,
                              bint reverse, const floating* grad_out, Py_ssize_t ld_grad_out,
                              floating* dh, floating* dc, Py_ssize_t H,
                              const floating* w_ci, const floating* w_cf,
                              const floating* w_co, floating* grad_w_ci, floating* grad_w_cf,
                              floating* grad_w_co, floating* tanh_c,
                              bint fused) noexcept nogil

cdef void gru_cell_forward(floating* gates, const floating* rec, const floating* b_hh,
                           floating* h, floating* h_prev, floating* hn, floating* out,
                           Py_ssize_t ld_out, Py_ssize_t rows, Py_ssize_t H) noexcept nogil

cdef void gru_cell_backward(floating* gates, floating* grad_rec, const floating* h_prev,
                            const floating* hn, const floating* grad_out,
                            Py_ssize_t ld_grad_out, floating* dh, Py_ssize_t rows,
                            Py_ssize_t H) noexcept nogil

cdef void gru_forward_steps(floating* gates, const floating* w_hh, const floating* b_hh,
                            floating* rec, const int64_t* batch_sizes, Py_ssize_t T,
                            bint reverse, floating* h, floating* h_prev, floating* hn,
                            floating* out, Py_ssize_t ld_out, Py_ssize_t H) noexcept nogil

cdef void gru_infer_steps(const floating* xproj, const int64_t* row_ids,
                          const floating* w_hh, const floating* b_hh,
                          const int64_t* batch_sizes, Py_ssize_t T, bint reverse,
                          floating* rec, floating* gates, floating* h, floating* out,
                          Py_ssize_t ld_out, Py_ssize_t H, const float* packed) noexcept nogil

cdef void gru_backward_steps(floating* gates, floating* grad_rec, const floating* w_hh,
                             const floating* h_prev, const floating* hn,
                             const int64_t* batch_sizes, Py_ssize_t T, bint reverse,
                             const floating* grad_out, Py_ssize_t ld_grad_out, floating* dh,
                             Py_ssize_t H) noexcept nogil

# The linear-chain CRF over packed sequences (crf.pxi): emissions (N, C), transitions
# (C, C) [from, to], start and end (C,)
cdef void crf_forward_steps(floating* alpha, floating* log_z, const floating* emissions,
                            const int64_t* batch_sizes, Py_ssize_t T, Py_ssize_t C,
                            const floating* transitions, const floating* start,
                            const floating* end, floating* work) noexcept nogil

cdef void crf_backward_steps(floating* grad_emissions, floating* grad_transitions,
                             floating* grad_start, floating* grad_end,
                             const floating* grad_log_z, const floating* emissions,
                             const floating* alpha, const floating* log_z,
                             const int64_t* batch_sizes, Py_ssize_t T, Py_ssize_t C,
                             const floating* transitions, const floating* end,
                             floating* beta, floating* work) noexcept nogil

cdef void crf_viterbi_steps(int64_t* tags, floating* best, const floating* emissions,
                            const int64_t* batch_sizes, Py_ssize_t T, Py_ssize_t C,
                            const floating* transitions, const floating* start,
                            const floating* end, const unsigned char* allowed,
                            const unsigned char* allowed_start,
                            const unsigned char* allowed_end, floating* delta,
                            int32_t* back, int64_t* last) noexcept nogil

# The best analysis of each token among its predicted UPOS's (analyses.pxi): BLAS, or with
# panels (float32) the kernel of analyses_step.h
cdef void analyses_forward_rows(const floating* hidden, Py_ssize_t ld_h, Py_ssize_t D,
                                const int64_t* order, const int64_t* group, Py_ssize_t N,
                                const int64_t* starts, Py_ssize_t G,
                                const floating* weight, const floating* bias,
                                floating* gathered, floating* scores, int64_t* best,
                                floating* margin, const float* panels, const float* bias8,
                                const int64_t* panel_starts, Py_ssize_t ld_s,
                                int lanes) noexcept nogil
