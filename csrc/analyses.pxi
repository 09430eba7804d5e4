# The best analysis of each token among those seen with its predicted UPOS
# (seqtag.heads.TagCombinations, seqtag.network.Network.best_summed_logits).
#
# An analysis scores the sum of its labels' logits (XPOS + FEATS), one output row: the
# sum of those labels' weight rows and biases.  The tokens of one UPOS (a group) are
# one product with that UPOS's analyses only.  One call does every group of a batch:
# done from Python, the same products cost a call, a gather and a handful of NumPy
# operations per group, ~16 groups per batch, which took as long as the products.

from libc.math cimport INFINITY, NAN

cdef extern from "analyses_step.h" nogil:
    int seqtag_analyses_step_available() noexcept
    int seqtag_analyses_lanes() noexcept
    void seqtag_analyses_scores_f32(const float* hidden, Py_ssize_t ld_h,
                                    const int64_t* order, Py_ssize_t n, const float* panels,
                                    const float* bias8, Py_ssize_t P, Py_ssize_t D,
                                    float* scores, Py_ssize_t ld_s, int lanes) noexcept


# For each row of hidden, the best of its group's analyses and by how much it wins.
#   hidden (N, D), rows ld_h apart;  order (N,): the rows group by group, each group's
#   rows in increasing order (a stable sort by group);  group (N,): each row's group;
#   starts (G + 1,): group g's analyses are rows [starts[g], starts[g + 1]) of
#   weight (M, D) and bias (M,);  gathered (N, D), scores (N, K) scratch, K the widest
#   group;  with panels (float32 only, else NULL): the same weights and biases packed for
#   analyses_step.h in panels of `lanes` analyses (8, or 16 for its AVX-512 kernel; group
#   g's are panels[panel_starts[g]:panel_starts[g + 1]], bias8 at `lanes` times those),
#   whose kernel reads the rows in place: scores are then (N, ld_s) and gathered is not
#   used.
#   best (N,): each row's best analysis (a row of weight; the first of equals, the first
#   NaN if there is one, as argmax takes it), -1 for a group out of [0, G) or of no
#   analysis;  margin (N,): the best score minus the second best (NaN with a NaN, +inf
#   for a group of one analysis, not written where best is -1).
# A group's scores are bias-filled rows then one gemm over its gathered rows: the
# products input_projection(hidden[rows], weight[a:b], bias[a:b]) gives, bit for bit.
cdef void analyses_forward_rows(const floating* hidden, Py_ssize_t ld_h, Py_ssize_t D,
                                const int64_t* order, const int64_t* group, Py_ssize_t N,
                                const int64_t* starts, Py_ssize_t G,
                                const floating* weight, const floating* bias,
                                floating* gathered, floating* scores, int64_t* best,
                                floating* margin, const float* panels, const float* bias8,
                                const int64_t* panel_starts, Py_ssize_t ld_s,
                                int lanes) noexcept nogil:
    cdef Py_ssize_t first = 0, end, n, r, j, K, a, at, stride
    cdef bint scored
    cdef int64_t g
    cdef floating v, top, second
    while first < N:
        g = group[order[first]]
        end = first + 1
        while end < N and group[order[end]] == g:
            end += 1
        n = end - first
        K = 0 if g < 0 or g >= G else starts[g + 1] - starts[g]
        if K == 0:
            for r in range(first, end):
                best[order[r]] = -1
        elif K == 1:
            for r in range(first, end):
                best[order[r]] = starts[g]
                margin[order[r]] = INFINITY
        else:
            a = starts[g]
            stride, scored = K, False
            if floating is float:
                if panels != NULL:
                    seqtag_analyses_scores_f32(hidden, ld_h, order + first, n,
                                               panels + panel_starts[g] * D * lanes,
                                               bias8 + panel_starts[g] * lanes,
                                               panel_starts[g + 1] - panel_starts[g], D,
                                               scores, ld_s, lanes)
                    stride, scored = ld_s, True
            if not scored:
                for r in range(n):
                    memcpy(gathered + r * D, hidden + order[first + r] * ld_h,
                           D * sizeof(floating))
                fill_rows(scores, n, K, bias + a)
                gemm(False, True, n, K, D, <floating>1, gathered, D, weight + a * D, D,
                     <floating>1, scores, K)
            for r in range(n):
                # the first maximum, and the largest of the others (a second equal
                # maximum included): what argmax and a partition of the two largest give
                top = scores[r * stride]
                at = 0
                second = -INFINITY
                if top != top:
                    second = NAN
                else:
                    for j in range(1, K):
                        v = scores[r * stride + j]
                        if v != v:
                            at = j
                            second = NAN
                            break
                        if v > top:
                            second = top
                            top = v
                            at = j
                        elif v > second:
                            second = v
                best[order[first + r]] = a + at
                margin[order[first + r]] = top - second
        first = end


def analyses_forward(const floating[:, :] hidden, const int64_t[::1] order,
                     const int64_t[::1] group, const int64_t[::1] starts,
                     const floating[:, ::1] weight, const floating[::1] bias,
                     floating[:, ::1] gathered, floating[::1] scores, int64_t[::1] best,
                     floating[::1] margin, const float[:, :, ::1] panels=None,
                     const float[::1] bias8=None, const int64_t[::1] panel_starts=None):
    """best, margin (N,) <- each row of hidden's best analysis of its group and its lead
    over the second (analyses_forward_rows says how).  panels, bias8, panel_starts: the
    weights packed for analyses_step.h's kernel (float32, where analyses_step_available()),
    in panels of analyses_lanes() analyses, or None for BLAS; scores then needs N x lanes x
    (the most panels of a group).
    seqtag.network.Network.best_summed_logits checks the arguments; these checks only keep
    a wrong call from reading or writing out of bounds."""
    cdef Py_ssize_t N = hidden.shape[0], D = hidden.shape[1], M = weight.shape[0]
    cdef Py_ssize_t G = starts.shape[0] - 1, g, widest = 0, ld_s = 0, P = 0
    cdef int lanes = 0
    _check_rows(hidden.strides[1], sizeof(floating), "hidden", hidden.strides[0], N, D)
    _require(G >= 0 and order.shape[0] == N and group.shape[0] == N
             and best.shape[0] == N and margin.shape[0] == N, "analyses row counts")
    _require(weight.shape[1] == D and bias.shape[0] == M, "analyses weight shapes")
    for g in range(G):
        _require(0 <= starts[g] <= starts[g + 1] <= M, "analyses starts")
        widest = max(widest, starts[g + 1] - starts[g])
    # the kernel reads the rows in place: gathered then needs a row, unused
    _require(gathered.shape[0] >= (1 if panels is not None else N) and gathered.shape[1] == D
             and scores.shape[0] >= N * widest, "analyses scratch sizes")
    cdef const float* panels_p = NULL
    if panels is not None:
        _require(floating is float and seqtag_analyses_step_available(),
                 "analyses panels need float32 and the AVX2 kernel")
        P, lanes = panels.shape[0], seqtag_analyses_lanes()
        _require(panels.shape[2] == lanes, f"analyses panels must be {lanes} lanes wide for "
                 "the kernels that run now (analyses_lanes())")
        _require(bias8 is not None and panel_starts is not None
                 and panel_starts.shape[0] == G + 1 and panel_starts[0] == 0
                 and panels.shape[1] == D and bias8.shape[0] == lanes * P,
                 "analyses panel shapes")
        for g in range(G):
            _require(panel_starts[g + 1] - panel_starts[g]
                     == (starts[g + 1] - starts[g] + lanes - 1) // lanes,
                     "analyses panel starts")
        _require(panel_starts[G] <= P, "analyses panel starts")
        ld_s = lanes * ((widest + lanes - 1) // lanes)
        _require(scores.shape[0] >= N * ld_s, "analyses scratch sizes")
        if P:
            panels_p = &panels[0, 0, 0]
    if N == 0:
        return
    _require(ids_in_range(&order[0], N, N), "order out of range")
    cdef Py_ssize_t ld_h = row_stride(hidden.strides[0], sizeof(floating))
    with nogil:
        analyses_forward_rows(&hidden[0, 0], ld_h, D, &order[0], &group[0], N,
                              &starts[0], G, &weight[0, 0] if M else NULL,
                              &bias[0] if M else NULL, &gathered[0, 0], &scores[0],
                              &best[0], &margin[0], panels_p,
                              &bias8[0] if panels_p != NULL else NULL,
                              &panel_starts[0] if panels_p != NULL else NULL, ld_s, lanes)


def analyses_step_available():
    """Whether analyses_forward can run analyses_step.h's AVX2 kernel on this CPU."""
    return bool(seqtag_analyses_step_available())


def analyses_lanes():
    """Analyses per panel of the kernel analyses_forward runs now: 16 where the AVX-512
    kernels run (fused_step_isa() "avx512"), else 8."""
    return seqtag_analyses_lanes()
