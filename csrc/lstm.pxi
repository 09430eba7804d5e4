# LSTM and peephole LSTM: one step of a cell forward and backward, and one direction of a
# layer over a packed batch.  Plain LSTM as PyTorch writes it:
#   a = x W_ih^T + b_ih + h W_hh^T + b_hh, split into a_i, a_f, a_g, a_o (H each)
#   i = σ(a_i)  f = σ(a_f)  g = tanh(a_g)  o = σ(a_o)  c' = f c + i g  h' = o tanh(c')
# Peephole LSTM (Gers & Schmidhuber 2000): i and f also see c, o sees c' (diagonal weights):
#   i = σ(a_i + w_ci c)  f = σ(a_f + w_cf c)  o = σ(a_o + w_co c')


# One step of `rows` sequences.
#   gates  (rows, 4H)  in: a;  out: i, f, g, o
#   h, c   (rows, H)   in: state before the step;  out: state after
#   h_prev (rows, H)   out: h before the step (NULL in inference: nothing kept)
#   cells  (rows, H)   out: c after the step (NULL in inference)
#   out    (rows, ld_out) out: h after the step
#   w_ci, w_cf, w_co (H,) peephole weights, or NULL for the plain LSTM
# float32 works row by row in whole-segment passes (peephole terms, then the array
# sigmoid/tanh of fastmath.h in place, then the combination) so that every loop is
# branch-free and vectorises; float64 keeps the element-wise libm loop, bit for bit.
cdef void lstm_cell_forward(floating* gates, floating* h, floating* c, floating* h_prev,
                            floating* cells, floating* out, Py_ssize_t ld_out,
                            Py_ssize_t rows, Py_ssize_t H, const floating* w_ci,
                            const floating* w_cf, const floating* w_co) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef floating* a
    cdef floating* h_r
    cdef floating* c_r
    cdef floating* out_r
    cdef floating i, f, g, o, c_old, c_new
    if floating is float:
        for r in range(rows):
            a = gates + r * 4 * H
            h_r = h + r * H
            c_r = c + r * H
            out_r = out + r * ld_out
            if w_ci != NULL:
                for j in range(H):
                    a[j] = a[j] + w_ci[j] * c_r[j]
                    a[H + j] = a[H + j] + w_cf[j] * c_r[j]
            seqtag_sigmoid_f32(a, 2 * H)            # i, f
            seqtag_tanh_f32(a + 2 * H, H)           # g
            for j in range(H):                      # c' = f c + i g
                c_r[j] = a[H + j] * c_r[j] + a[j] * a[2 * H + j]
            if w_ci != NULL:
                for j in range(H):
                    a[3 * H + j] = a[3 * H + j] + w_co[j] * c_r[j]
            seqtag_sigmoid_f32(a + 3 * H, H)        # o
            if h_prev != NULL:
                memcpy(h_prev + r * H, h_r, H * sizeof(float))
                memcpy(cells + r * H, c_r, H * sizeof(float))
            memcpy(h_r, c_r, H * sizeof(float))     # h' = o tanh(c'), tanh in h's row
            seqtag_tanh_f32(h_r, H)
            for j in range(H):
                h_r[j] = a[3 * H + j] * h_r[j]
            memcpy(out_r, h_r, H * sizeof(float))
    else:
        for r in range(rows):
            a = gates + r * 4 * H
            for j in range(H):
                c_old = c[r * H + j]
                if w_ci == NULL:
                    i = sigmoid(a[j])
                    f = sigmoid(a[H + j])
                    g = tanh_(a[2 * H + j])
                    c_new = f * c_old + i * g
                    o = sigmoid(a[3 * H + j])
                else:
                    i = sigmoid(a[j] + w_ci[j] * c_old)
                    f = sigmoid(a[H + j] + w_cf[j] * c_old)
                    g = tanh_(a[2 * H + j])
                    c_new = f * c_old + i * g
                    o = sigmoid(a[3 * H + j] + w_co[j] * c_new)
                a[j] = i
                a[H + j] = f
                a[2 * H + j] = g
                a[3 * H + j] = o
                if h_prev != NULL:
                    h_prev[r * H + j] = h[r * H + j]
                    cells[r * H + j] = c_new
                c[r * H + j] = c_new
                h[r * H + j] = o * tanh_(c_new)
                out[r * ld_out + j] = h[r * H + j]


# Backward through one row, float32: the element loop of lstm_cell_backward (same
# arithmetic as its float64 loop), with that loop's choices already made by the caller.
# Its own function only so that the arrays can be declared restrict: with 8-12 arrays
# (the four gate segments of one row among them) GCC would otherwise need more run-time
# overlap checks than it allows and leave the loop scalar.
#   d_i, d_f, d_g, d_o (H,)  in: i, f, g, o;  out: gradients w.r.t. their pre-activations
#   c_old, c_new, tanh_c (H,) c before and after the step, tanh(c after)
#   dh (H,)  gradient w.r.t. h after the step, grad_out included
#   dc (H,)  in: gradient w.r.t. c after the step;  out: w.r.t. c before it
#   w_c*, grad_w_c* (H,)  peephole weights and their accumulated gradients, or all NULL
cdef inline void lstm_row_backward_f32(float_r d_i, float_r d_f, float_r d_g, float_r d_o,
                                       cfloat_r c_old, cfloat_r c_new, cfloat_r tanh_c,
                                       cfloat_r dh, float_r dc, cfloat_r w_ci, cfloat_r w_cf,
                                       cfloat_r w_co, float_r grad_w_ci, float_r grad_w_cf,
                                       float_r grad_w_co, Py_ssize_t H) noexcept nogil:
    cdef Py_ssize_t j
    cdef float i, f, g, o, d_c, d_i_j, d_f_j, d_o_j
    cdef float one = 1          # Cython writes a bare 1 as 1.0: double arithmetic, no SIMD
    if w_ci == NULL:
        for j in range(H):
            i = d_i[j]
            f = d_f[j]
            g = d_g[j]
            o = d_o[j]
            d_c = dc[j] + dh[j] * o * (one - tanh_c[j] * tanh_c[j])
            d_i[j] = d_c * g * i * (one - i)
            d_f[j] = d_c * c_old[j] * f * (one - f)
            d_g[j] = d_c * i * (one - g * g)
            d_o[j] = dh[j] * tanh_c[j] * o * (one - o)
            dc[j] = d_c * f
    else:
        for j in range(H):
            i = d_i[j]
            f = d_f[j]
            g = d_g[j]
            o = d_o[j]
            d_o_j = dh[j] * tanh_c[j] * o * (one - o)
            d_c = dc[j] + dh[j] * o * (one - tanh_c[j] * tanh_c[j]) + d_o_j * w_co[j]
            d_i_j = d_c * g * i * (one - i)
            d_f_j = d_c * c_old[j] * f * (one - f)
            d_i[j] = d_i_j
            d_f[j] = d_f_j
            d_g[j] = d_c * i * (one - g * g)
            d_o[j] = d_o_j
            dc[j] = d_c * f + d_i_j * w_ci[j] + d_f_j * w_cf[j]
            grad_w_ci[j] += d_i_j * c_old[j]
            grad_w_cf[j] += d_f_j * c_old[j]
            grad_w_co[j] += d_o_j * c_new[j]


# Backward through one step of `rows` sequences.
#   gates    (rows, 4H)  in: i, f, g, o;  out: gradient w.r.t. a (the pre-activations)
#   cells    (rows, H)   c after the step
#   tanh_c   (rows, H)   tanh(cells), float32 only (the caller computes it for the whole
#                        step in one vector pass); NULL for float64
#   c_before (split, H)  c before the step of rows [0, split); rows [split, rows) started
#                        this step from c0 (B, H)
#   grad_out (rows, ld_grad_out) gradient w.r.t. h after the step, or NULL
#   dh, dc   (rows, H)   in: gradient w.r.t. h, c after the step from later steps;
#                        out: dc becomes the gradient w.r.t. c before the step; dh is
#                        left to the caller's recurrent product (float32 adds grad_out
#                        into it first: the product overwrites it anyway)
#   grad_w_c* (H,)       peephole weight gradients, accumulated (NULL for the plain LSTM)
# float32 makes each choice once per row (c_before or c0, grad_out or not) and hands the
# row to a branch-free vector loop; float64 keeps the element loop with libm, bit for bit.
cdef void lstm_cell_backward(floating* gates, const floating* cells, const floating* tanh_c,
                             const floating* c_before, const floating* c0, Py_ssize_t split,
                             const floating* grad_out, Py_ssize_t ld_grad_out, floating* dh,
                             floating* dc, Py_ssize_t rows, Py_ssize_t H,
                             const floating* w_ci, const floating* w_cf,
                             const floating* w_co, floating* grad_w_ci, floating* grad_w_cf,
                             floating* grad_w_co) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef floating* a
    cdef floating* dh_r
    cdef const floating* grad_out_r
    cdef floating i, f, g, o, c_old, c_new, tanh_c_j, d_h, d_c, d_o
    if floating is float:
        for r in range(rows):
            a = gates + r * 4 * H
            dh_r = dh + r * H
            if grad_out != NULL:
                grad_out_r = grad_out + r * ld_grad_out
                for j in range(H):
                    dh_r[j] = dh_r[j] + grad_out_r[j]
            lstm_row_backward_f32(a, a + H, a + 2 * H, a + 3 * H,
                                  (c_before if r < split else c0) + r * H, cells + r * H,
                                  tanh_c + r * H, dh_r, dc + r * H, w_ci, w_cf, w_co,
                                  grad_w_ci, grad_w_cf, grad_w_co, H)
    else:
        for r in range(rows):
            a = gates + r * 4 * H
            for j in range(H):
                i = a[j]
                f = a[H + j]
                g = a[2 * H + j]
                o = a[3 * H + j]
                c_old = c_before[r * H + j] if r < split else c0[r * H + j]
                c_new = cells[r * H + j]
                tanh_c_j = tanh_(c_new)
                d_h = dh[r * H + j]
                if grad_out != NULL:
                    d_h = d_h + grad_out[r * ld_grad_out + j]
                d_o = d_h * tanh_c_j * o * (1 - o)
                d_c = dc[r * H + j] + d_h * o * (1 - tanh_c_j * tanh_c_j)
                if w_ci != NULL:
                    d_c = d_c + d_o * w_co[j]
                    grad_w_co[j] += d_o * c_new
                a[j] = d_c * g * i * (1 - i)
                a[H + j] = d_c * c_old * f * (1 - f)
                a[2 * H + j] = d_c * i * (1 - g * g)
                a[3 * H + j] = d_o
                d_c = d_c * f
                if w_ci != NULL:
                    d_c = d_c + a[j] * w_ci[j] + a[H + j] * w_cf[j]
                    grad_w_ci[j] += a[j] * c_old
                    grad_w_cf[j] += a[H + j] * c_old
                dc[r * H + j] = d_c


# One direction of one layer, forward, over a packed batch of N rows in T steps.
#   gates       (N, 4H)  in: x W_ih^T + b_ih + b_hh;  out: i, f, g, o of every row
#   w_hh        (4H, H)
#   batch_sizes (T,)     rows of each step (nonincreasing); the reverse direction walks the
#                        steps from last to first
#   h, c        (B, H)   in: initial state;  out: final state of every sequence
#   h_prev, cells (N, H) out: kept for backward (NULL in inference)
#   out         (N, ld_out) out: h of every row
#   packed      float32 with h_prev and cells given: W_hh packed for the fused step
#               (csrc/lstm_step.h; with the AVX2 kernels while seqtag_lstm_step_fused_forward
#               says so, BLAS past it), or NULL for BLAS
cdef void lstm_forward_steps(floating* gates, const floating* w_hh,
                             const int64_t* batch_sizes, Py_ssize_t T, bint reverse,
                             floating* h, floating* c, floating* h_prev, floating* cells,
                             floating* out, Py_ssize_t ld_out, Py_ssize_t H,
                             const floating* w_ci, const floating* w_cf,
                             const floating* w_co, const float* packed) noexcept nogil:
    cdef Py_ssize_t s, t, rows, off, running
    cdef Py_ssize_t N = total_rows(batch_sizes, T), done = 0
    for s in range(T):
        t = T - 1 - s if reverse else s
        rows = batch_sizes[t]
        off = N - done - rows if reverse else done
        done += rows
        running = running_rows(batch_sizes, T, t, reverse, h, H)
        if floating is float:
            if packed != NULL and seqtag_lstm_step_fused_forward(rows, H):
                # the kept h_prev rows are the copy the fused step reads
                memcpy(h_prev + off * H, h, rows * H * sizeof(float))
                seqtag_lstm_step_f32(h_prev + off * H, running, packed, gates, NULL, off,
                                     rows, c, h, out, ld_out, H, 1, cells)
                continue
        if running > 0:
            gemm(False, True, running, 4 * H, H, <floating>1, h, H, w_hh, H, <floating>1,
                 gates + off * 4 * H, 4 * H)
        lstm_cell_forward(gates + off * 4 * H, h, c,
                          h_prev + off * H if h_prev != NULL else NULL,
                          cells + off * H if cells != NULL else NULL,
                          out + off * ld_out, ld_out, rows, H, w_ci, w_cf, w_co)


# One direction of one layer, inference: nothing is kept for backward.  The input
# pre-activations may be a memo shared by many calls (seqtag/memo.py), so they are only
# read: each step's recurrent product goes to a (B, 4H) scratch and the gate pass adds the
# row's pre-activations as it reads them (no (N, 4H) copy per call).
#   xproj    (V, 4H)  input pre-activations x W_ih^T + b_ih + b_hh of V input rows
#   row_ids  (N,)     the xproj row each packed row reads, or NULL: row r reads xproj[r]
#   scratch  (B, 4H)  work space
#   packed   float32 only: W_hh packed by seqtag_pack_w_hh_f32, or NULL.  Given,
#                     every step is fused (csrc/lstm_step.h; with the AVX2 kernels in
#                     pieces of at most seqtag_lstm_step_call_rows rows): the caller
#                     checks seqtag_lstm_step_available() and no peepholes
#   w_hh, batch_sizes, h, c, out, w_c*  as in lstm_forward_steps
cdef void lstm_infer_steps(const floating* xproj, const int64_t* row_ids,
                           const floating* w_hh, const int64_t* batch_sizes, Py_ssize_t T,
                           bint reverse, floating* scratch, floating* h, floating* c,
                           floating* out, Py_ssize_t ld_out, Py_ssize_t H,
                           const floating* w_ci, const floating* w_cf,
                           const floating* w_co, const float* packed) noexcept nogil:
    cdef Py_ssize_t s, t, r, rows, off, src, running
    cdef Py_ssize_t G = 4 * H
    cdef Py_ssize_t N = total_rows(batch_sizes, T), done = 0
    for s in range(T):
        t = T - 1 - s if reverse else s
        rows = batch_sizes[t]
        off = N - done - rows if reverse else done
        done += rows
        if floating is float:
            seqtag_prefetch_rows(xproj, row_ids + off if row_ids != NULL else NULL, off,
                                 rows, G)
            if packed != NULL:
                # the step reads every row's whole previous state while it writes the new
                # one block of units at a time: it reads a copy
                running = running_rows(batch_sizes, T, t, reverse, h, H)
                memcpy(scratch, h, rows * H * sizeof(float))
                seqtag_lstm_infer_step_f32(scratch, running, packed, xproj,
                                           row_ids + off if row_ids != NULL else NULL, off,
                                           rows, c, h, out, ld_out, H)
                continue
        zero_state_product(scratch, batch_sizes, T, t, reverse, h, w_hh, H, G)
        if floating is float:
            for r in range(rows):
                src = row_ids[off + r] if row_ids != NULL else off + r
                seqtag_lstm_infer_row_f32(scratch + r * G, xproj + src * G, c + r * H,
                                          h + r * H, out + (off + r) * ld_out, w_ci, w_cf,
                                          w_co, H)
        else:
            for r in range(rows):
                src = row_ids[off + r] if row_ids != NULL else off + r
                add_row(scratch + r * G, xproj + src * G, G)
            lstm_cell_forward(scratch, h, c, NULL, NULL, out + off * ld_out, ld_out, rows,
                              H, w_ci, w_cf, w_co)


# lstm_infer_steps (float32, fused steps) over the sequences of ranks [first, last) only:
# their state rows and their rows of each step.  Each row of a fused step is computed on
# its own, so calls over ranges that cover [0, B) give, bit for bit, what one call over
# all of them gives: two threads can share one direction's sequences (or steal the other
# direction's) and the values do not depend on who ran what.
#   scratch  (B, H) at least: this range uses rows [first, last)
#   the rest as in lstm_infer_steps
cdef void lstm_infer_ranks_steps(const float* xproj, const int64_t* row_ids,
                           const int64_t* batch_sizes, Py_ssize_t T, bint reverse,
                           float* scratch, float* h, float* c, float* out, Py_ssize_t ld_out,
                           Py_ssize_t H, const float* packed, Py_ssize_t first,
                           Py_ssize_t last) noexcept nogil:
    cdef Py_ssize_t s, t, i, rows, off, n, split, running
    cdef Py_ssize_t G = 4 * H
    cdef Py_ssize_t N = total_rows(batch_sizes, T), done = 0
    cdef const int64_t* ids
    for s in range(T):
        t = T - 1 - s if reverse else s
        rows = batch_sizes[t]
        off = N - done - rows if reverse else done
        done += rows
        if rows <= first:  # none of the range's sequences has this step
            continue
        n = (rows if rows < last else last) - first
        # running_rows over the range's own rows: rows joining from a zero state (the
        # reverse direction's shorter sequences) skip the product, as in one call
        if reverse:
            split = batch_sizes[t + 1] if t + 1 < T else 0
        else:
            split = 0 if t == 0 else rows
        split = min(max(split - first, 0), n)
        running = split
        for i in range((first + split) * H, (first + n) * H):
            if h[i] != 0:
                running = n
                break
        ids = row_ids + off + first if row_ids != NULL else NULL
        seqtag_prefetch_rows(xproj, ids, off + first, n, G)
        memcpy(scratch + first * H, h + first * H, n * H * sizeof(float))
        seqtag_lstm_infer_step_f32(scratch + first * H, running, packed, xproj, ids,
                                   off + first, n, c + first * H, h + first * H, out, ld_out,
                                   H)


# One direction of one layer, backward: the steps in the opposite order of the forward.
#   gates    (N, 4H)   in: i, f, g, o;  out: gradient w.r.t. the pre-activations a
#   cells    (N, H), c0 (B, H)  from the forward
#   grad_out (N, ld_grad_out)   gradient w.r.t. out, or NULL
#   dh, dc   (B, H)    in: gradient w.r.t. the final state;  out: w.r.t. the initial state
#   tanh_c   (B, H)    float32: scratch for tanh(c) of one step, allocated once by the
#                      caller (one vector pass per step beats a libm call per element);
#                      float64: NULL
#   fused    float32: the step's product dh = d W_hh by the AVX-512 kernel of
#            csrc/lstm_step.h instead of BLAS (the caller checks the CPU)
cdef void lstm_backward_steps(floating* gates, const floating* w_hh, const floating* cells,
                              const floating* c0, const int64_t* batch_sizes, Py_ssize_t T,
                              bint reverse, const floating* grad_out, Py_ssize_t ld_grad_out,
                              floating* dh, floating* dc, Py_ssize_t H,
                              const floating* w_ci, const floating* w_cf,
                              const floating* w_co, floating* grad_w_ci, floating* grad_w_cf,
                              floating* grad_w_co, floating* tanh_c,
                              bint fused) noexcept nogil:
    cdef Py_ssize_t s, t, rows, off, split
    cdef Py_ssize_t N = total_rows(batch_sizes, T), done = 0
    cdef const floating* c_before = NULL
    for s in range(T):
        t = s if reverse else T - 1 - s
        rows = batch_sizes[t]
        off = done if reverse else N - done - rows
        done += rows
        # where each row's previous cell state lives: the neighbouring step, or c0
        if reverse:
            split = batch_sizes[t + 1] if t + 1 < T else 0
            c_before = cells + (off + rows) * H
        else:
            split = rows if t > 0 else 0
            c_before = cells + (off - batch_sizes[t - 1]) * H if t > 0 else NULL
        if floating is float:
            # the rows of a step are contiguous: tanh(c) of all of them in one pass
            memcpy(tanh_c, cells + off * H, rows * H * sizeof(float))
            seqtag_tanh_f32(tanh_c, rows * H)
        lstm_cell_backward(gates + off * 4 * H, cells + off * H, tanh_c, c_before, c0, split,
                           grad_out + off * ld_grad_out if grad_out != NULL else NULL,
                           ld_grad_out, dh, dc, rows, H, w_ci, w_cf, w_co,
                           grad_w_ci, grad_w_cf, grad_w_co)
        if floating is float:
            if fused and seqtag_lstm_step_fused_rows(rows):
                seqtag_lstm_back_product_f32(gates + off * 4 * H, rows, w_hh, H, dh)
                continue
        gemm(False, False, rows, H, 4 * H, <floating>1, gates + off * 4 * H, 4 * H, w_hh, H,
             <floating>0, dh, H)


# ---- sequences that share their beginnings: a tree of prefixes ---------------------------
# The distinct words of a batch share beginnings ("the", "then", "there") and endings: a
# one-layer recurrence over them computes each distinct prefix once (each distinct suffix,
# over the words read backwards) instead of once per word: about a quarter fewer steps of
# the character BiLSTM over EWT test's new words, in batches of 2,048 tokens.  A node of
# the tree is a distinct prefix; nodes are numbered depth by depth (depth d: the prefixes
# of d + 1 elements), so that a step of the recurrence is one block of rows whose parents
# (the prefix one element shorter) are all in the step before.


# Read sequence w's element d (from its end if reverse).
cdef inline int64_t _element(const int64_t* ids, const int64_t* starts,
                             const int64_t* lengths, Py_ssize_t w, Py_ssize_t d,
                             bint reverse) noexcept nogil:
    return ids[starts[w] + lengths[w] - 1 - d] if reverse else ids[starts[w] + d]


# The elements sequences a and b begin with alike (a < 0: none).
cdef inline Py_ssize_t _shared(const int64_t* ids, const int64_t* starts,
                               const int64_t* lengths, Py_ssize_t a, Py_ssize_t b,
                               bint reverse) noexcept nogil:
    cdef Py_ssize_t d = 0, n
    if a < 0:
        return 0
    n = lengths[a] if lengths[a] < lengths[b] else lengths[b]
    while d < n and (_element(ids, starts, lengths, a, d, reverse)
                     == _element(ids, starts, lengths, b, d, reverse)):
        d += 1
    return d


# How sequence a compares with sequence b, element by element: -1, 0 or 1 (a proper
# prefix first).
cdef inline int _compare(const int64_t* ids, const int64_t* starts, const int64_t* lengths,
                         Py_ssize_t a, Py_ssize_t b, bint reverse) noexcept nogil:
    cdef Py_ssize_t d, n = lengths[a] if lengths[a] < lengths[b] else lengths[b]
    cdef int64_t x, y
    for d in range(n):
        x = _element(ids, starts, lengths, a, d, reverse)
        y = _element(ids, starts, lengths, b, d, reverse)
        if x != y:
            return -1 if x < y else 1
    return (lengths[a] > lengths[b]) - (lengths[a] < lengths[b])


# order (n,) <- the sequences 0 .. n - 1 sorted (read backwards if reverse), equal ones in
# their order: a bottom-up merge sort;  tmp (n,) scratch.  Sorted, sequences that share
# a beginning are read one after the other, and share all of it in prefix_tree_nodes.
cdef void sort_sequences(const int64_t* ids, const int64_t* starts, const int64_t* lengths,
                         Py_ssize_t n, bint reverse, int64_t* order,
                         int64_t* tmp) noexcept nogil:
    cdef Py_ssize_t i, j, k, lo, mid, hi, width = 1
    cdef int64_t* src = order
    cdef int64_t* dst = tmp
    cdef int64_t* swap
    for i in range(n):
        order[i] = i
    while width < n:
        lo = 0
        while lo < n:
            mid = lo + width if lo + width < n else n
            hi = lo + 2 * width if lo + 2 * width < n else n
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if _compare(ids, starts, lengths, src[j], src[i], reverse) < 0:
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
            lo += 2 * width
        swap, src, dst = src, dst, src
        width *= 2
    if src != order:
        memcpy(order, src, n * sizeof(int64_t))


# The tree of prefixes of n sequences:
#   ids (total,) the sequences' elements;  starts, lengths (n,) each sequence's, lengths >= 1
#   order (n,)   the sequences in the order they are read: a sequence shares the nodes of
#                the one read before it (sorted sequences share every common prefix)
#   reverse      read each sequence from its end (a tree of suffixes)
#   node_id (total,), node_parent (total,) out: each node's element and parent (-1 at depth 0)
#   depth_start (max_len + 1,) out: depth d's nodes are [depth_start[d], depth_start[d + 1])
#   seq_node (n,) out: each sequence's whole prefix (its last node)
#   path (2 max_len,) scratch
# Returns the number of nodes (depth_start[max_len]).
cdef Py_ssize_t prefix_tree_nodes(const int64_t* ids, const int64_t* starts,
                                  const int64_t* lengths, const int64_t* order, Py_ssize_t n,
                                  bint reverse, Py_ssize_t max_len, int64_t* node_id,
                                  int64_t* node_parent, int64_t* depth_start,
                                  int64_t* seq_node, int64_t* path) noexcept nogil:
    cdef Py_ssize_t i, d, w, shared, prev = -1, node
    cdef int64_t* free_at = path + max_len  # the next node number of each depth
    memset(depth_start, 0, (max_len + 1) * sizeof(int64_t))
    for i in range(n):  # the new nodes of each depth, counted in depth_start[d + 1]
        w = order[i]
        shared = _shared(ids, starts, lengths, prev, w, reverse)
        for d in range(shared, lengths[w]):
            depth_start[d + 1] += 1
        prev = w
    for d in range(max_len):
        depth_start[d + 1] += depth_start[d]
    memcpy(free_at, depth_start, max_len * sizeof(int64_t))
    prev = -1
    for i in range(n):
        w = order[i]
        shared = _shared(ids, starts, lengths, prev, w, reverse)
        for d in range(shared, lengths[w]):  # path[d] for d < shared: prev's, the same prefix
            node = free_at[d]
            free_at[d] += 1
            node_id[node] = _element(ids, starts, lengths, w, d, reverse)
            node_parent[node] = path[d - 1] if d > 0 else -1
            path[d] = node
        seq_node[w] = path[lengths[w] - 1]
        prev = w
    return depth_start[max_len]


# One direction of a one-layer float32 LSTM (no peepholes) over a tree of prefixes,
# inference: each node's state from its parent's (depth 0: from zeros), step by step as
# lstm_infer_steps runs a packed batch, with the same arithmetic per row.
#   xproj (V, 4H)  input pre-activations;  node_id (nodes,) the xproj row of each node
#   node_parent (nodes,), depth_start (depths + 1,)  as prefix_tree_nodes makes them
#   w_hh (4H, H);  packed: seqtag_pack_w_hh_f32(w_hh), or NULL for BLAS's product
#   h, c (nodes, H) out: each node's state
#   h_prev (B, H), scratch (B, 4H)  work space, B the most nodes of a depth
cdef void lstm_tree_infer_steps(const float* xproj, const int64_t* node_id,
                                const int64_t* node_parent, const int64_t* depth_start,
                                Py_ssize_t depths, const float* w_hh, const float* packed,
                                float* h, float* c, float* h_prev, float* scratch,
                                Py_ssize_t H) noexcept nogil:
    cdef Py_ssize_t d, r, rows, off, parent, running
    cdef Py_ssize_t G = 4 * H
    for d in range(depths):
        off = depth_start[d]
        rows = depth_start[d + 1] - off
        if rows == 0:
            continue
        running = rows if d > 0 else 0
        if d > 0:  # each row starts from its parent's state
            for r in range(rows):
                parent = node_parent[off + r]
                memcpy(h_prev + r * H, h + parent * H, H * sizeof(float))
                memcpy(c + (off + r) * H, c + parent * H, H * sizeof(float))
        else:
            memset(h_prev, 0, rows * H * sizeof(float))
            memset(c + off * H, 0, rows * H * sizeof(float))
        seqtag_prefetch_rows(xproj, node_id + off, off, rows, G)
        if packed != NULL:
            # h is written twice over the same rows (the step's new state and its output)
            seqtag_lstm_infer_step_f32(h_prev, running, packed, xproj, node_id + off, off,
                                       rows, c + off * H, h + off * H, h, H, H)
            continue
        if running:
            gemm(False, True, rows, G, H, <float>1, h_prev, H, w_hh, H, <float>0, scratch, G)
        else:
            memset(scratch, 0, rows * G * sizeof(float))
        for r in range(rows):
            seqtag_lstm_infer_row_f32(scratch + r * G, xproj + node_id[off + r] * G,
                                      c + (off + r) * H, h_prev + r * H, h + (off + r) * H,
                                      NULL, NULL, NULL, H)
