# GRU in PyTorch's formulation:
#   r = σ(x W_ir^T + b_ir + h W_hr^T + b_hr)   z = σ(x W_iz^T + b_iz + h W_hz^T + b_hz)
#   n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn))   h' = (1 - z) n + z h
# The reset gate multiplies the recurrent part of n, so that part (hn) is kept apart.

# The fused inference step (csrc/gru_step.h), in AVX-512 and in AVX2
cdef extern from "gru_step.h" nogil:
    Py_ssize_t seqtag_gru_packed_size(Py_ssize_t H) noexcept
    void seqtag_gru_pack_w_hh_f32(const float* w_hh, Py_ssize_t H, int lanes,
                                  float* packed) noexcept
    int seqtag_gru_step_lanes() noexcept
    void seqtag_gru_step_f32(const float* h_prev, Py_ssize_t running, const float* packed,
                             const float* b_hh, const float* xproj, const int64_t* ids,
                             Py_ssize_t first, Py_ssize_t rows, float* h, float* out,
                             Py_ssize_t ld_out, Py_ssize_t H) noexcept


# One step of `rows` sequences.
#   gates  (rows, 3H)  in: x W_ih^T + b_ih;  out: r, z, n
#   rec    (rows, 3H)  h W_hh^T (without b_hh)
#   b_hh   (3H,)
#   h      (rows, H)   in: state before the step;  out: after
#   h_prev, hn (rows, H) out: h before the step and h W_hn^T + b_hn, kept for backward
#                        (both NULL in inference: float32 tests hn alone)
#   out    (rows, ld_out) out: h after the step
# float32 does each row in one vectorised pass (fastmath.h's seqtag_gru_row_f32, the gate
# functions inlined); float64 keeps libm, bit for bit.
cdef void gru_cell_forward(floating* gates, const floating* rec, const floating* b_hh,
                           floating* h, floating* h_prev, floating* hn, floating* out,
                           Py_ssize_t ld_out, Py_ssize_t rows, Py_ssize_t H) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef floating* a
    cdef const floating* ah
    cdef floating reset, update, new, rec_n, h_old
    if floating is float:
        for r in range(rows):
            seqtag_gru_row_f32(NULL, rec + r * 3 * H, b_hh, h + r * H, out + r * ld_out,
                               gates + r * 3 * H, hn + r * H if hn != NULL else NULL,
                               h_prev + r * H if h_prev != NULL else NULL, H)
    else:
        for r in range(rows):
            a = gates + r * 3 * H
            ah = rec + r * 3 * H
            for j in range(H):
                reset = sigmoid(a[j] + ah[j] + b_hh[j])
                update = sigmoid(a[H + j] + ah[H + j] + b_hh[H + j])
                rec_n = ah[2 * H + j] + b_hh[2 * H + j]
                new = tanh_(a[2 * H + j] + reset * rec_n)
                h_old = h[r * H + j]
                a[j] = reset
                a[H + j] = update
                a[2 * H + j] = new
                if h_prev != NULL:
                    h_prev[r * H + j] = h_old
                    hn[r * H + j] = rec_n
                h[r * H + j] = (1 - update) * new + update * h_old
                out[r * ld_out + j] = h[r * H + j]


# Backward through one row, float32: the element loop of gru_cell_backward (same
# arithmetic as its float64 loop), in its own function so that the arrays can be declared
# restrict; with the six gate segments of one row among them GCC would otherwise need
# more run-time overlap checks than it allows and leave the loop scalar.
#   d_r, d_z, d_n (H,)     in: r, z, n;  out: gradients w.r.t. x W_ih^T + b_ih
#   rec_r, rec_z, rec_n (H,) out: gradients w.r.t. h W_hh^T + b_hh
#   h_prev, hn (H,)        from the forward
#   dh (H,)  in: gradient w.r.t. h after the step, grad_out included;  out: the part
#            w.r.t. h before the step that flows through z
cdef inline void gru_row_backward_f32(float_r d_r, float_r d_z, float_r d_n, float_r rec_r,
                                      float_r rec_z, float_r rec_n, cfloat_r h_prev,
                                      cfloat_r hn, float_r dh, Py_ssize_t H) noexcept nogil:
    cdef Py_ssize_t j
    cdef float reset, update, new, d_h, d_new, d_reset, d_update
    cdef float one = 1          # Cython writes a bare 1 as 1.0: double arithmetic, no SIMD
    for j in range(H):
        reset = d_r[j]
        update = d_z[j]
        new = d_n[j]
        d_h = dh[j]
        d_new = d_h * (one - update) * (one - new * new)
        d_reset = d_new * hn[j] * reset * (one - reset)
        d_update = d_h * (h_prev[j] - new) * update * (one - update)
        d_r[j] = d_reset
        d_z[j] = d_update
        d_n[j] = d_new
        rec_r[j] = d_reset
        rec_z[j] = d_update
        rec_n[j] = d_new * reset
        dh[j] = d_h * update


# Backward through one step of `rows` sequences.
#   gates    (rows, 3H)  in: r, z, n;  out: gradient w.r.t. x W_ih^T + b_ih
#   grad_rec (rows, 3H)  out: gradient w.r.t. h W_hh^T + b_hh
#   h_prev, hn (rows, H) from the forward
#   grad_out (rows, ld_grad_out) gradient w.r.t. h after the step, or NULL
#   dh       (rows, H)   in: gradient w.r.t. h after the step from later steps;
#                        out: the part of the gradient w.r.t. h before the step that flows
#                        through z (the caller adds grad_rec W_hh)
# float32 adds grad_out into dh once per row and hands the row to a branch-free vector
# loop; float64 keeps the element loop unchanged, bit for bit.
cdef void gru_cell_backward(floating* gates, floating* grad_rec, const floating* h_prev,
                            const floating* hn, const floating* grad_out,
                            Py_ssize_t ld_grad_out, floating* dh, Py_ssize_t rows,
                            Py_ssize_t H) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef floating* a
    cdef floating* ga
    cdef floating* dh_r
    cdef const floating* grad_out_r
    cdef floating reset, update, new, d_h, d_new, d_reset
    if floating is float:
        for r in range(rows):
            a = gates + r * 3 * H
            ga = grad_rec + r * 3 * H
            dh_r = dh + r * H
            if grad_out != NULL:
                grad_out_r = grad_out + r * ld_grad_out
                for j in range(H):
                    dh_r[j] = dh_r[j] + grad_out_r[j]
            gru_row_backward_f32(a, a + H, a + 2 * H, ga, ga + H, ga + 2 * H, h_prev + r * H,
                                 hn + r * H, dh_r, H)
    else:
        for r in range(rows):
            a = gates + r * 3 * H
            ga = grad_rec + r * 3 * H
            for j in range(H):
                reset = a[j]
                update = a[H + j]
                new = a[2 * H + j]
                d_h = dh[r * H + j]
                if grad_out != NULL:
                    d_h = d_h + grad_out[r * ld_grad_out + j]
                d_new = d_h * (1 - update) * (1 - new * new)
                d_reset = d_new * hn[r * H + j] * reset * (1 - reset)
                a[j] = d_reset
                a[H + j] = d_h * (h_prev[r * H + j] - new) * update * (1 - update)
                a[2 * H + j] = d_new
                ga[j] = d_reset
                ga[H + j] = a[H + j]
                ga[2 * H + j] = d_new * reset
                dh[r * H + j] = d_h * update


# One direction of one GRU layer, forward, over a packed batch of N rows in T steps.
#   gates  (N, 3H)  in: x W_ih^T + b_ih;  out: r, z, n of every row
#   rec    (B, 3H)  scratch for the recurrent product of one step
#   other arguments as lstm_forward_steps; hn (N, H) is kept for backward (NULL in inference)
cdef void gru_forward_steps(floating* gates, const floating* w_hh, const floating* b_hh,
                            floating* rec, const int64_t* batch_sizes, Py_ssize_t T,
                            bint reverse, floating* h, floating* h_prev, floating* hn,
                            floating* out, Py_ssize_t ld_out, Py_ssize_t H) noexcept nogil:
    cdef Py_ssize_t s, t, rows, off
    off = total_rows(batch_sizes, T) if reverse else 0
    for s in range(T):
        t = T - 1 - s if reverse else s
        rows = batch_sizes[t]
        if reverse:
            off -= rows
        zero_state_product(rec, batch_sizes, T, t, reverse, h, w_hh, H, 3 * H)
        gru_cell_forward(gates + off * 3 * H, rec, b_hh, h,
                         h_prev + off * H if h_prev != NULL else NULL,
                         hn + off * H if hn != NULL else NULL,
                         out + off * ld_out, ld_out, rows, H)
        if not reverse:
            off += rows


# One direction of one GRU layer, inference: the input pre-activations are read from
# xproj rows (a memo of them, or the layer's own projection: float32 reads them in place,
# float64 copies them into a (B, 3H) scratch per step); nothing is kept for backward.
#   xproj    (V, 3H)  x W_ih^T + b_ih of V input rows
#   row_ids  (N,)     the xproj row each packed row reads, or NULL: row r reads xproj[r]
#   rec, gates (B, 3H) scratch
#   w_hh, b_hh, batch_sizes, h, out  as in gru_forward_steps
#   packed   float32 only: W_hh packed for csrc/gru_step.h's fused step (the caller checks
#            that its kernels exist), or NULL for BLAS.  It runs every step with the AVX-512
#            kernels, the steps of at most SEQTAG_AVX2_MAX_STATE state values with the AVX2
#            ones (seqtag_lstm_step_fused_forward: BLAS's blocking wins past it, as for an
#            LSTM; the front end's steps, ~150 rows x 48, stay below it)
cdef void gru_infer_steps(const floating* xproj, const int64_t* row_ids,
                          const floating* w_hh, const floating* b_hh,
                          const int64_t* batch_sizes, Py_ssize_t T, bint reverse,
                          floating* rec, floating* gates, floating* h, floating* out,
                          Py_ssize_t ld_out, Py_ssize_t H,
                          const float* packed) noexcept nogil:
    cdef Py_ssize_t s, t, r, rows, off, src, running
    cdef Py_ssize_t G = 3 * H
    cdef Py_ssize_t N = total_rows(batch_sizes, T), done = 0
    for s in range(T):
        t = T - 1 - s if reverse else s
        rows = batch_sizes[t]
        off = N - done - rows if reverse else done
        done += rows
        if floating is float:
            seqtag_prefetch_rows(xproj, row_ids + off if row_ids != NULL else NULL, off,
                                 rows, G)
            if packed != NULL and seqtag_lstm_step_fused_forward(rows, H):
                # the step reads every row's whole previous state while it writes the new
                # one block of units at a time: it reads a copy (rec holds B x 3H)
                running = running_rows(batch_sizes, T, t, reverse, h, H)
                memcpy(rec, h, rows * H * sizeof(float))
                seqtag_gru_step_f32(rec, running, packed, b_hh, xproj,
                                    row_ids + off if row_ids != NULL else NULL, off, rows,
                                    h, out, ld_out, H)
                continue
        zero_state_product(rec, batch_sizes, T, t, reverse, h, w_hh, H, G)
        if floating is float:  # each row's gates straight from its xproj row
            for r in range(rows):
                src = row_ids[off + r] if row_ids != NULL else off + r
                seqtag_gru_row_f32(xproj + src * G, rec + r * G, b_hh, h + r * H,
                                   out + (off + r) * ld_out, NULL, NULL, NULL, H)
        else:
            for r in range(rows):
                src = row_ids[off + r] if row_ids != NULL else off + r
                memcpy(gates + r * G, xproj + src * G, G * sizeof(floating))
            gru_cell_forward(gates, rec, b_hh, h, NULL, NULL, out + off * ld_out, ld_out,
                             rows, H)


# One direction of one GRU layer, backward.
#   gates    (N, 3H)  in: r, z, n;  out: gradient w.r.t. x W_ih^T + b_ih
#   grad_rec (N, 3H)  out: gradient w.r.t. h W_hh^T + b_hh
#   dh       (B, H)   in: gradient w.r.t. the final state;  out: w.r.t. the initial state
cdef void gru_backward_steps(floating* gates, floating* grad_rec, const floating* w_hh,
                             const floating* h_prev, const floating* hn,
                             const int64_t* batch_sizes, Py_ssize_t T, bint reverse,
                             const floating* grad_out, Py_ssize_t ld_grad_out, floating* dh,
                             Py_ssize_t H) noexcept nogil:
    cdef Py_ssize_t s, t, rows, off
    off = 0 if reverse else total_rows(batch_sizes, T)
    for s in range(T):
        t = s if reverse else T - 1 - s
        rows = batch_sizes[t]
        if not reverse:
            off -= rows
        gru_cell_backward(gates + off * 3 * H, grad_rec + off * 3 * H, h_prev + off * H,
                          hn + off * H,
                          grad_out + off * ld_grad_out if grad_out != NULL else NULL,
                          ld_grad_out, dh, rows, H)
        gemm(False, False, rows, H, 3 * H, <floating>1, grad_rec + off * 3 * H, 3 * H, w_hh, H,
             <floating>1, dh, H)
        if reverse:
            off += rows
