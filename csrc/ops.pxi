# Row gathers and scatters for embeddings.


def add_rows(floating[:, ::1] out, const int64_t[::1] index, const floating[:, :] src):
    """out[index[i]] += src[i] for every i (repeated indices accumulate).

    out (U, D), index (N,) with 0 <= index[i] < U, src (N, D): the gradient of an embedding
    lookup, summed into the rows it read.
    """
    cdef Py_ssize_t n = index.shape[0], width = out.shape[1], rows = out.shape[0]
    cdef Py_ssize_t i, j, row
    _require(src.shape[0] == n and src.shape[1] == width, "src shape")
    if width > 1:
        _check_rows(src.strides[1], sizeof(floating), "src", src.strides[0], src.shape[0], src.shape[1])
    _require(n == 0 or ids_in_range(&index[0], n, rows), "index out of range")
    cdef Py_ssize_t ld = row_stride(src.strides[0], sizeof(floating))
    cdef floating* o = &out[0, 0] if rows else NULL
    cdef const floating* s = &src[0, 0] if n else NULL
    with nogil:
        for i in range(n):
            row = index[i]
            for j in range(width):
                o[row * width + j] += s[i * ld + j]


from libc.math cimport sqrt, sqrtf


# One Adam step on a flat block, in one pass (NumPy would make ~8 passes and temporaries).
#   param, grad, m, v (n,);  step = lr with both bias corrections folded in
cdef void adam_block(floating* param, const floating* grad, floating* m, floating* v,
                     Py_ssize_t n, floating step, floating beta1, floating beta2,
                     floating eps) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g
    for i in range(n):
        g = grad[i]
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * g * g
        if floating is float:
            param[i] -= step * m[i] / (sqrtf(v[i]) + eps)
        else:
            param[i] -= step * m[i] / (sqrt(v[i]) + eps)


def adam_update(floating[::1] param, const floating[::1] grad, floating[::1] m,
                floating[::1] v,
                double step, double beta1, double beta2, double eps):
    """Adam on whole (flattened, contiguous) arrays; updates param, m and v in place."""
    cdef Py_ssize_t n = param.shape[0]
    _require(grad.shape[0] == n and m.shape[0] == n and v.shape[0] == n, "adam shapes")
    if n == 0:
        return
    with nogil:
        adam_block(&param[0], &grad[0], &m[0], &v[0], n, <floating>step, <floating>beta1,
                   <floating>beta2, <floating>eps)


def adam_update_rows(floating[:, ::1] param, floating[:, ::1] m, floating[:, ::1] v,
                     const int64_t[::1] ids, const floating[:, ::1] grad_rows, double step,
                     double beta1, double beta2, double eps):
    """Adam on the rows `ids` (distinct) of param, m, v with grad_rows (len(ids), D): the lazy
    Adam of embeddings, where a row's moments move only when a batch uses it."""
    cdef Py_ssize_t rows = param.shape[0], width = param.shape[1], n = ids.shape[0]
    cdef Py_ssize_t i, r
    _require(m.shape[0] == rows and v.shape[0] == rows and m.shape[1] == width
             and v.shape[1] == width and grad_rows.shape[0] == n
             and grad_rows.shape[1] == width, "adam row shapes")
    for i in range(n):
        _require(0 <= ids[i] < rows, "row id out of range")
    if n == 0 or width == 0:
        return
    with nogil:
        for i in range(n):
            r = ids[i]
            adam_block(&param[r, 0], &grad_rows[i, 0], &m[r, 0], &v[r, 0], width,
                       <floating>step, <floating>beta1, <floating>beta2, <floating>eps)


def ema_update(floating[::1] average, const floating[::1] value, double decay):
    """average = decay * average + (1 - decay) * value, in place, in one pass."""
    cdef Py_ssize_t i, n = average.shape[0]
    cdef floating d = <floating>decay
    cdef floating rest = 1 - d
    _require(value.shape[0] == n, "ema shapes")
    if n == 0:
        return
    cdef floating* a = &average[0]
    cdef const floating* x = &value[0]
    with nogil:
        for i in range(n):
            a[i] = d * a[i] + rest * x[i]


from libc.math cimport log, logf


# x (n, width) <- log-softmax of each row, in place, rows `stride` apart (stride >=
# width: a segment of wider rows); work (n * width) scratch.  float32 takes its
# exponentials in one vector pass over the whole block (a row of a tagset is too short
# for the vector loop to pay off on its own).
cdef void log_softmax_block(floating* x, Py_ssize_t n, Py_ssize_t width, Py_ssize_t stride,
                            floating* work) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating top, total
    for i in range(n):
        top = x[i * stride]
        for j in range(1, width):
            if x[i * stride + j] > top:
                top = x[i * stride + j]
        for j in range(width):
            x[i * stride + j] = x[i * stride + j] - top
            work[i * width + j] = x[i * stride + j]
    if floating is float:
        seqtag_exp_f32(work, n * width)
    else:
        for i in range(n * width):
            work[i] = exp(work[i])
    for i in range(n):
        total = 0
        for j in range(width):
            total = total + work[i * width + j]
        if floating is float:
            total = logf(total)
        else:
            total = log(total)
        for j in range(width):
            x[i * stride + j] = x[i * stride + j] - total


def log_softmax_rows(floating[:, ::1] x):
    """x (N, C) <- log(softmax(x)) row by row, in place (C >= 1)."""
    cdef Py_ssize_t n = x.shape[0], width = x.shape[1]
    _require(width >= 1, "log_softmax_rows needs at least one column")
    if n == 0:
        return
    cdef floating* work = <floating*>malloc(n * width * sizeof(floating))
    if work == NULL:
        raise MemoryError()
    with nogil:
        log_softmax_block(&x[0, 0], n, width, width, work)
    free(work)


def log_softmax_segments(floating[:, ::1] x, const int64_t[::1] bounds):
    """x (N, C) <- each row's segments [bounds[k], bounds[k+1]) log-softmaxed on their
    own, in place: the output heads of a network, computed by one product (bounds
    increasing from 0 to C, segments non-empty)."""
    cdef Py_ssize_t n = x.shape[0], width = x.shape[1], k, widest = 0
    _require(bounds.shape[0] >= 2 and bounds[0] == 0 and bounds[bounds.shape[0] - 1] == width,
             "log_softmax_segments needs bounds from 0 to the row width")
    for k in range(bounds.shape[0] - 1):
        _require(bounds[k + 1] > bounds[k], "log_softmax_segments needs non-empty segments")
        widest = max(widest, bounds[k + 1] - bounds[k])
    if n == 0:
        return
    cdef floating* work = <floating*>malloc(n * widest * sizeof(floating))
    if work == NULL:
        raise MemoryError()
    with nogil:
        for k in range(bounds.shape[0] - 1):
            log_softmax_block(&x[0, bounds[k]], n, bounds[k + 1] - bounds[k], width, work)
    free(work)


from libc.stdint cimport uint8_t


# best_columns_forward_rows's AVX-512 kernel (csrc/analyses_step.h): 1 if it ran here
cdef extern from "analyses_step.h" nogil:
    int seqtag_best_columns_f32(const float* scores, Py_ssize_t n, Py_ssize_t C,
                                Py_ssize_t ld, int64_t* best, uint8_t* tied) noexcept


# Each row's best column and whether another column equals it: a classifier's label and
# whether its ranking among equals matters (seqtag.heads.LemmaHead.scripted), in one
# pass instead of an argmax, a comparison of every score and a count.
#   scores (n, C), rows ld apart;  best (n,): the first maximum's column (the first NaN's
#   if there is one, as argmax takes it);  tied (n,): 1 if another column equals that
#   maximum (a NaN equals nothing);  vector: float32 rows go to the AVX-512 kernel where the
#   core calls the AVX-512 kernels (the caller asks seqtag.runtime whether fused kernels
#   are on: SEQTAG_FUSED_STEP=0 keeps this scan)
cdef void best_columns_forward_rows(const floating* scores, Py_ssize_t n, Py_ssize_t C,
                                    Py_ssize_t ld, int64_t* best, uint8_t* tied,
                                    bint vector=False) noexcept nogil:
    cdef Py_ssize_t i, j, at
    cdef floating top, v
    cdef const floating* row
    cdef uint8_t twice
    if floating is float:  # the AVX-512 kernel's two vector passes, where asked and built
        if vector and seqtag_best_columns_f32(scores, n, C, ld, best, tied):
            return
    for i in range(n):
        row = scores + i * ld
        top = row[0]
        at = 0
        twice = 0
        if top == top:
            for j in range(1, C):
                v = row[j]
                if v != v:
                    at = j
                    twice = 0
                    break
                if v > top:
                    top = v
                    at = j
                    twice = 0
                elif v == top:
                    twice = 1
        best[i] = at
        tied[i] = twice


def best_columns_forward(const floating[:, :] scores, int64_t[::1] best,
                         uint8_t[::1] tied, bint vector=False):
    """best, tied (n,) <- each row of scores (n, C >= 1)'s first best column and whether
    another column equals it (best_columns_forward_rows; vector: its AVX-512 kernel where
    the core calls AVX-512 kernels)."""
    cdef Py_ssize_t n = scores.shape[0], C = scores.shape[1]
    _require(C >= 1 or n == 0, "best_columns_forward needs at least one column")
    _require(best.shape[0] == n and tied.shape[0] == n, "best_columns_forward row counts")
    if n == 0:
        return
    _check_rows(scores.strides[1], sizeof(floating), "scores", scores.strides[0], n, C)
    cdef Py_ssize_t ld = row_stride(scores.strides[0], sizeof(floating))
    with nogil:
        best_columns_forward_rows(&scores[0, 0], n, C, ld, &best[0], &tied[0], vector)


# A head's logits for chosen rows of the encoder's output, and each row's best label and
# whether it is tied (best_columns_forward_rows): what Network.head_logits(hidden, [k],
# rows) and then best_columns_forward give, bit for bit, in one call without the GIL
# (the lemma head's rows that the lexicon does not answer, run on the second thread
# while the first decodes in Python: each return to Python there waited for the GIL).
#   hidden (N, 2H), rows ld_h apart;  rows (n,) of hidden;  w0, w1 (C, H): the weight
#   columns of each direction;  b0 (C,): the bias;  b1 (C,): the second direction's
#   (zeros, as Network._split_head_layer makes them);  x (n, 2H), other (n, C) scratch;
#   out (n, C) the logits;  best, tied (n,);  vector: as best_columns_forward_rows takes it
cdef void head_rows_forward_rows(const floating* hidden, Py_ssize_t ld_h, Py_ssize_t H,
                                 const int64_t* rows, Py_ssize_t n, const floating* w0,
                                 const floating* b0, const floating* w1,
                                 const floating* b1, Py_ssize_t C, floating* x,
                                 floating* other, floating* out, int64_t* best,
                                 uint8_t* tied, bint vector) noexcept nogil:
    cdef Py_ssize_t i
    cdef bint zero_b1 = True
    for i in range(n):
        memcpy(x + i * 2 * H, hidden + rows[i] * ld_h, 2 * H * sizeof(floating))
    for i in range(C):
        zero_b1 = zero_b1 and b1[i] == 0
    # one block of the sums over k (BLAS's, and gemm_fallback.h's SEQTAG_KC): beyond it, a
    # product added onto out adds its blocks to out one by one, another rounding
    zero_b1 = zero_b1 and H <= 256
    # each direction as input_projection computes it: its bias in every row, then the
    # product added; the second direction's logits added to the first's after
    fill_rows(out, n, C, b0)
    gemm(False, True, n, C, H, <floating>1, x, 2 * H, w0, H, <floating>1, out, C)
    if zero_b1:
        # its product added straight onto the first's: the sum of the same two terms,
        # rounded once, as adding a zero-filled buffer's product after (without a second
        # (n, C) buffer and a pass over it), for products of one block over k
        gemm(False, True, n, C, H, <floating>1, x + H, 2 * H, w1, H, <floating>1, out, C)
    else:
        fill_rows(other, n, C, b1)
        gemm(False, True, n, C, H, <floating>1, x + H, 2 * H, w1, H, <floating>1, other, C)
        for i in range(n * C):
            out[i] = out[i] + other[i]
    best_columns_forward_rows(out, n, C, C, best, tied, vector)


def head_rows_forward(const floating[:, :] hidden, const int64_t[::1] rows,
                      const floating[:, ::1] w0, const floating[::1] b0,
                      const floating[:, ::1] w1, const floating[::1] b1,
                      floating[:, ::1] x, floating[:, ::1] other, floating[:, ::1] out,
                      int64_t[::1] best, uint8_t[::1] tied, bint vector=False):
    """out (n, C), best, tied (n,) <- the logits of hidden's rows `rows` by a head split
    by direction (w0, b0 and w1, b1), each row's best column and whether it is tied
    (head_rows_forward_rows)."""
    cdef Py_ssize_t n = rows.shape[0], H = w0.shape[1], C = w0.shape[0]
    _require(hidden.shape[1] == 2 * H and w1.shape[0] == C and w1.shape[1] == H
             and b0.shape[0] == C and b1.shape[0] == C and C >= 1, "head rows weight shapes")
    _require(x.shape[0] == n and x.shape[1] == 2 * H and other.shape[0] == n
             and other.shape[1] == C and out.shape[0] == n and out.shape[1] == C
             and best.shape[0] == n and tied.shape[0] == n, "head rows buffer shapes")
    if n == 0:
        return
    _check_rows(hidden.strides[1], sizeof(floating), "hidden", hidden.strides[0],
                hidden.shape[0], hidden.shape[1])
    _require(ids_in_range(&rows[0], n, hidden.shape[0]), "rows out of range")
    cdef Py_ssize_t ld_h = row_stride(hidden.strides[0], sizeof(floating))
    with nogil:
        head_rows_forward_rows(&hidden[0, 0], ld_h, H, &rows[0], n, &w0[0, 0], &b0[0],
                               &w1[0, 0], &b1[0], C, &x[0, 0], &other[0, 0], &out[0, 0],
                               &best[0], &tied[0], vector)
