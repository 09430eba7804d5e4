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


from libc.math cimport isfinite, sqrt, sqrtf


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


# seqtag__gathered_dots_avx2 (csrc/analyses_step.h): 1 if it ran here
cdef extern from "analyses_step.h" nogil:
    int seqtag_gathered_dots_f32(const float* x, const float* weight, Py_ssize_t ld_w,
                                 const int64_t* ids, Py_ssize_t K, Py_ssize_t D,
                                 float* out) noexcept


# Each chosen row's best script among those that fit its word (seqtag.lemma.ScriptSets),
# and whether it wins clearly: the lemma head's scores of those scripts only (a few dozen
# of its rows), without the GIL.  A winner is clear when its lead over the second is more
# than the float32 (float64) rounding of both its scores here and of the logits
# Network.head_logits computes for them (each a sum of D products and two biases, in
# another order): then the head's logits rank it first too, and the caller need not
# compute them.  The bound of a score is gamma * (|w| |h| + |b|) (Cauchy-Schwarz bounds
# the sum of the products' magnitudes); two scores on each side: 4 gamma * (the set's
# largest |w| * |h| + its largest |b|).
#   hidden (N, D), rows ld_h apart;  rows (n,) of hidden;  row_set (n,): each row's set,
#   whose scripts are members[starts[g]:starts[g + 1]] (rows of weight (S, D), bias (S,));
#   norms, bias_abs (S,): each script's |w| and |b|;  gamma: the dtype's bound per term;
#   tiny: its smallest subnormal (a product that underflows is off by up to that);
#   scores (widest set,) scratch;  best (n,): the script of the highest score (the first
#   of equals, a NaN's), -1 for an empty set;  clear (n,): 1 where that is sure (an empty
#   or one-script set too), 0 where the caller must decide from the head's logits;
#   vector: float32 dots by the AVX2 kernel
cdef int script_rows_best_rows(const floating* hidden, Py_ssize_t ld_h, Py_ssize_t D,
                               const int64_t* rows, const int64_t* row_set, Py_ssize_t n,
                               const int64_t* starts, Py_ssize_t G, const int64_t* members,
                               Py_ssize_t M, const floating* weight, const floating* bias,
                               Py_ssize_t S, const double* norms, const double* bias_abs,
                               double gamma, double tiny, floating* scores, Py_ssize_t widest,
                               int64_t* best, uint8_t* clear, bint vector) noexcept nogil:
    cdef Py_ssize_t i, j, k, K, at
    cdef const floating* h
    cdef const floating* w
    cdef const int64_t* ids
    cdef floating s, top, second
    cdef double hnorm, wmax, bmax
    cdef int64_t g
    cdef bint dotted
    for i in range(n):
        h = hidden + rows[i] * ld_h
        g = row_set[i]
        # only the sets the rows use are read, so only they are checked (every set seen
        # grows with the text)
        if g < 0 or g >= G or starts[g] < 0 or starts[g] > starts[g + 1] \
                or starts[g + 1] > M or starts[g + 1] - starts[g] > widest:
            return 1
        ids = members + starts[g]
        K = starts[g + 1] - starts[g]
        for j in range(K):
            if ids[j] < 0 or ids[j] >= S:
                return 2
        if K == 0:
            best[i] = -1
            clear[i] = 1
            continue
        if K == 1:
            best[i] = ids[0]
            clear[i] = 1
            continue
        dotted = False
        if floating is float:
            dotted = vector and seqtag_gathered_dots_f32(h, weight, D, ids, K, D, scores)
        if not dotted:
            for j in range(K):
                w = weight + ids[j] * D
                s = 0
                for k in range(D):
                    s = s + h[k] * w[k]
                scores[j] = s
        hnorm = 0
        for k in range(D):
            hnorm = hnorm + <double>h[k] * <double>h[k]
        hnorm = sqrt(hnorm)
        wmax = 0
        bmax = 0
        top = scores[0] + bias[ids[0]]
        at = 0
        second = -INFINITY
        for j in range(K):
            wmax = max(wmax, norms[ids[j]])
            bmax = max(bmax, bias_abs[ids[j]])
            if j == 0:
                continue
            s = scores[j] + bias[ids[j]]
            if s > top:
                second = top
                top = s
                at = j
            elif s > second or s != s:
                second = s
        best[i] = ids[at]
        # a NaN or an infinity anywhere (the bound assumes no overflow) leaves it to the
        # caller; tiny covers the products that underflow
        clear[i] = (isfinite(top) and isfinite(second) and (<double>top - <double>second)
                    > 4.0 * (gamma * (wmax * hnorm + bmax) * 1.0001 + (D + 2) * tiny))
    return 0


def script_rows_best(const floating[:, :] hidden, const int64_t[::1] rows,
                     const int64_t[::1] row_set, const int64_t[::1] starts,
                     const int64_t[::1] members, const floating[:, ::1] weight,
                     const floating[::1] bias, const double[::1] norms,
                     const double[::1] bias_abs, double gamma, double tiny,
                     floating[::1] scores, int64_t[::1] best, uint8_t[::1] clear,
                     bint vector=False):
    """best, clear (n,) <- each row's best script of its set and whether it wins clearly
    (script_rows_best_rows); scores needs as many values as the widest set the rows use.
    seqtag.network.Network.best_fitting_scripts checks the arguments; these checks only
    keep a wrong call from reading or writing out of bounds."""
    cdef Py_ssize_t n = rows.shape[0], D = hidden.shape[1], S = weight.shape[0]
    cdef Py_ssize_t G = starts.shape[0] - 1
    cdef int status
    _require(row_set.shape[0] == n and best.shape[0] == n and clear.shape[0] == n,
             "script rows counts")
    _require(weight.shape[1] == D and bias.shape[0] == S and norms.shape[0] == S
             and bias_abs.shape[0] == S and G >= 0, "script rows weight shapes")
    if n == 0:
        return
    _check_rows(hidden.strides[1], sizeof(floating), "hidden", hidden.strides[0],
                hidden.shape[0], D)
    _require(ids_in_range(&rows[0], n, hidden.shape[0]), "rows out of range")
    cdef Py_ssize_t ld_h = row_stride(hidden.strides[0], sizeof(floating))
    with nogil:
        status = script_rows_best_rows(
            &hidden[0, 0], ld_h, D, &rows[0], &row_set[0], n, &starts[0], G,
            &members[0] if members.shape[0] else NULL, members.shape[0],
            &weight[0, 0] if S else NULL, &bias[0] if S else NULL, S,
            &norms[0] if S else NULL, &bias_abs[0] if S else NULL, gamma, tiny,
            &scores[0] if scores.shape[0] else NULL, scores.shape[0], &best[0], &clear[0],
            vector)
    _require(status == 0, "a row's script set is out of range of starts, members, the "
             "weights or the scratch")
