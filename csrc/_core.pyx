# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""seqtag's compiled core: recurrent layers forward and backward over packed batches.

Each entry point runs one direction of one layer with the GIL released, so the two
directions of a bidirectional layer can run on two threads.  The Python layer above
(seqtag/rnn.py) validates every argument; the checks here are a last line of defence
against a crash, not the user-facing messages.  Every array a kernel only reads (weights,
inputs, what backward reads back from the forward) is a const memoryview, so read-only
arrays (a loaded tagger's frozen weights) pass without a copy.
"""

from cython cimport floating
from libc.stdint cimport int32_t, int64_t, uint16_t
from libc.stdlib cimport calloc, malloc, free

include "blas.pxi"
include "common.pxi"
include "lstm.pxi"
include "gru.pxi"
include "ops.pxi"
include "crf.pxi"
include "analyses.pxi"
include "text.pxi"
include "values.pxi"


cdef inline Py_ssize_t row_stride(Py_ssize_t stride_bytes, Py_ssize_t itemsize):
    return stride_bytes // itemsize


def _require(bint condition, str what):
    if not condition:
        raise ValueError("seqtag._core: " + what)


cdef _check_rows(Py_ssize_t inner_stride, Py_ssize_t itemsize, str name,
                 Py_ssize_t row_stride_bytes=-1, Py_ssize_t rows=0, Py_ssize_t cols=0):
    # row-strided views are fine (a column block of a wider array); elements must be adjacent
    # and rows must not overlap or run backwards (BLAS takes a leading dimension >= width)
    _require(inner_stride == itemsize, name + " must have adjacent elements within a row")
    _require(rows <= 1 or row_stride_bytes >= cols * itemsize,
             name + " rows must not overlap or run backwards")


cdef bint ids_in_range(const int64_t* ids, Py_ssize_t n, Py_ssize_t limit) noexcept:
    """Whether 0 <= ids[i] < limit for every i (one C loop; a Python call per id would cost
    more than the step it guards)."""
    cdef Py_ssize_t i
    for i in range(n):
        if ids[i] < 0 or ids[i] >= limit:
            return False
    return True


def _check_steps(const int64_t[::1] batch_sizes, Py_ssize_t n_rows, Py_ssize_t batch):
    cdef Py_ssize_t t, total = 0
    _require(batch_sizes.shape[0] >= 1, "no time steps")
    _require(batch_sizes[0] == batch, "batch_sizes[0] must equal the batch size")
    for t in range(batch_sizes.shape[0]):
        _require(batch_sizes[t] >= 1 and (t == 0 or batch_sizes[t] <= batch_sizes[t - 1]),
                 "batch_sizes must be positive and nonincreasing")
        total += batch_sizes[t]
    _require(total == n_rows, "batch_sizes must add up to the number of packed rows")


def lstm_forward(const floating[:, :] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[::1] bias,
                 const int64_t[::1] batch_sizes, bint reverse,
                 floating[:, ::1] h, floating[:, ::1] c, floating[:, ::1] gates,
                 floating[:, :] out, floating[:, ::1] h_prev, floating[:, ::1] cells,
                 const floating[::1] w_ci, const floating[::1] w_cf, const floating[::1] w_co,
                 const float[::1] packed=None):
    """One direction of an LSTM layer (peephole when w_ci is given), forward.

    x (N, D), w_ih (4H, D), w_hh (4H, H), bias (4H,) = b_ih + b_hh, h and c (B, H) hold the
    initial state and receive the final one, gates (N, 4H) receive i, f, g, o, out (N, >=H)
    receives h in its first H columns; h_prev and cells (N, H), or None in inference.
    packed: pack_w_hh(w_hh) for the fused step (as in lstm_infer; h_prev and cells given),
    or None for the BLAS path.
    """
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1], H = w_hh.shape[1], B = h.shape[0]
    cdef Py_ssize_t T = batch_sizes.shape[0]
    cdef bint keep = h_prev is not None
    cdef bint peephole = w_ci is not None
    _check_steps(batch_sizes, N, B)
    _check_rows(x.strides[1], sizeof(floating), "x",
                    x.strides[0], x.shape[0], x.shape[1])
    _check_rows(out.strides[1], sizeof(floating), "out",
                    out.strides[0], out.shape[0], out.shape[1])
    _require(w_ih.shape[0] == 4 * H and w_ih.shape[1] == D and w_hh.shape[0] == 4 * H
             and bias.shape[0] == 4 * H, "weight shapes")
    _require(c.shape[0] == B and h.shape[1] == H and c.shape[1] == H, "state shapes")
    _require(gates.shape[0] == N and gates.shape[1] == 4 * H and out.shape[0] == N
             and out.shape[1] >= H, "buffer shapes")
    _require(not keep or (cells is not None and h_prev.shape[0] == N and h_prev.shape[1] == H
                          and cells.shape[0] == N and cells.shape[1] == H), "saved shapes")
    _require(not peephole or (w_cf is not None and w_co is not None and w_ci.shape[0] == H
                              and w_cf.shape[0] == H and w_co.shape[0] == H), "peephole shapes")
    cdef floating* h_prev_p = &h_prev[0, 0] if keep else NULL
    cdef floating* cells_p = &cells[0, 0] if keep else NULL
    cdef const floating* w_ci_p = &w_ci[0] if peephole else NULL
    cdef const floating* w_cf_p = &w_cf[0] if peephole else NULL
    cdef const floating* w_co_p = &w_co[0] if peephole else NULL
    cdef Py_ssize_t ld_x = row_stride(x.strides[0], sizeof(floating))
    cdef Py_ssize_t ld_out = row_stride(out.strides[0], sizeof(floating))
    cdef const float* packed_p = NULL
    if packed is not None:
        _require(floating is float and keep and not peephole
                 and packed.shape[0] == packed_w_hh_size(H) and seqtag_lstm_step_available(),
                 "packed weights need float32, h_prev and cells, no peepholes, "
                 "pack_w_hh's size and AVX2 or AVX-512")
        packed_p = &packed[0]
    with nogil:
        # the input projection of every step at once: one large product
        fill_rows(&gates[0, 0], N, 4 * H, &bias[0])
        gemm(False, True, N, 4 * H, D, <floating>1, &x[0, 0], ld_x, &w_ih[0, 0], D,
             <floating>1, &gates[0, 0], 4 * H)
        lstm_forward_steps(&gates[0, 0], &w_hh[0, 0], &batch_sizes[0], T, reverse, &h[0, 0],
                           &c[0, 0], h_prev_p, cells_p, &out[0, 0], ld_out, H,
                           w_ci_p, w_cf_p, w_co_p, packed_p)


def input_projection(const floating[:, :] x, const floating[:, ::1] w_ih,
                     const floating[::1] bias, floating[:, ::1] out):
    """out (N, G) = x (N, D) w_ih^T (G, D) + bias (G,): a layer's input pre-activations."""
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1], G = w_ih.shape[0]
    _check_rows(x.strides[1], sizeof(floating), "x", x.strides[0], x.shape[0], x.shape[1])
    _require(w_ih.shape[1] == D and bias.shape[0] == G, "weight shapes")
    _require(out.shape[0] == N and out.shape[1] == G, "out shape")
    cdef Py_ssize_t ld_x = row_stride(x.strides[0], sizeof(floating))
    if N == 0:
        return
    with nogil:
        fill_rows(&out[0, 0], N, G, &bias[0])
        gemm(False, True, N, G, D, <floating>1, &x[0, 0], ld_x, &w_ih[0, 0], D,
             <floating>1, &out[0, 0], G)


def lstm_infer(const floating[:, ::1] xproj, const int64_t[::1] row_ids,
               const floating[:, ::1] w_hh, const int64_t[::1] batch_sizes, bint reverse,
               floating[:, ::1] h, floating[:, ::1] c, floating[:, ::1] scratch,
               floating[:, :] out, const floating[::1] w_ci, const floating[::1] w_cf,
               const floating[::1] w_co, const float[::1] packed=None):
    """One direction of an LSTM layer (peephole when w_ci is given), inference only.

    xproj (V, 4H) input pre-activations (input_projection with bias = b_ih + b_hh);
    row_ids (N,) the xproj row of each packed row, 0 <= row_ids[r] < V, or None: row r
    reads xproj[r] (V = N); h, c (B, H) initial state in, final state out; scratch (B, 4H);
    out (N, >=H) receives h in its first H columns.  packed: pack_w_hh(w_hh) for the
    fused step (float32, no peepholes, fused_step_available()), or None for the BLAS path.
    """
    cdef Py_ssize_t V = xproj.shape[0], H = w_hh.shape[1], B = h.shape[0]
    cdef Py_ssize_t T = batch_sizes.shape[0], r
    cdef Py_ssize_t N = row_ids.shape[0] if row_ids is not None else V
    cdef bint peephole = w_ci is not None
    _check_steps(batch_sizes, N, B)
    _check_rows(out.strides[1], sizeof(floating), "out",
                out.strides[0], out.shape[0], out.shape[1])
    _require(xproj.shape[1] == 4 * H and w_hh.shape[0] == 4 * H, "weight shapes")
    _require(c.shape[0] == B and h.shape[1] == H and c.shape[1] == H, "state shapes")
    _require(scratch.shape[0] >= B and scratch.shape[1] == 4 * H and out.shape[0] == N
             and out.shape[1] >= H, "buffer shapes")
    _require(not peephole or (w_cf is not None and w_co is not None and w_ci.shape[0] == H
                              and w_cf.shape[0] == H and w_co.shape[0] == H), "peephole shapes")
    _require(row_ids is None or ids_in_range(&row_ids[0], N, V), "row_ids out of range")
    cdef const int64_t* ids_p = &row_ids[0] if row_ids is not None else NULL
    cdef const floating* w_ci_p = &w_ci[0] if peephole else NULL
    cdef const floating* w_cf_p = &w_cf[0] if peephole else NULL
    cdef const floating* w_co_p = &w_co[0] if peephole else NULL
    cdef Py_ssize_t ld_out = row_stride(out.strides[0], sizeof(floating))
    cdef const float* packed_p = NULL
    if packed is not None:
        _require(floating is float and not peephole
                 and packed.shape[0] == packed_w_hh_size(H) and seqtag_lstm_step_available(),
                 "packed weights need float32, no peepholes, pack_w_hh's size and AVX2 or "
                 "AVX-512")
        packed_p = &packed[0]
    with nogil:
        lstm_infer_steps(&xproj[0, 0], ids_p, &w_hh[0, 0], &batch_sizes[0], T, reverse,
                         &scratch[0, 0], &h[0, 0], &c[0, 0], &out[0, 0], ld_out, H,
                         w_ci_p, w_cf_p, w_co_p, packed_p)



def lstm_infer_ranks(const float[:, ::1] xproj, const int64_t[::1] row_ids,
                     const int64_t[::1] batch_sizes, bint reverse, float[:, ::1] h,
                     float[:, ::1] c, float[:, ::1] scratch, float[:, :] out,
                     const float[::1] packed, Py_ssize_t first, Py_ssize_t last):
    """lstm_infer (float32, packed weights, every step fused) over the sequences of ranks
    [first, last) only: calls over ranges that cover [0, B) give what one lstm_infer call
    gives, bit for bit, in any order and from any threads (each range writes only its own
    rows of h, c, scratch and out).  scratch (B, H); the rest as lstm_infer's."""
    cdef Py_ssize_t V = xproj.shape[0], H = h.shape[1], B = h.shape[0]
    cdef Py_ssize_t T = batch_sizes.shape[0]
    cdef Py_ssize_t N = row_ids.shape[0] if row_ids is not None else V
    _check_steps(batch_sizes, N, B)
    _check_rows(out.strides[1], sizeof(float), "out", out.strides[0], out.shape[0],
                out.shape[1])
    _require(xproj.shape[1] == 4 * H and c.shape[0] == B and c.shape[1] == H
             and scratch.shape[0] >= B and scratch.shape[1] == H and out.shape[0] == N
             and out.shape[1] >= H, "buffer shapes")
    _require(0 <= first <= last <= B, "ranks out of range")
    _require(packed is not None and packed.shape[0] == packed_w_hh_size(H)
             and seqtag_lstm_step_available(), "packed weights (pack_w_hh) and AVX2 or "
             "AVX-512 needed")
    _require(row_ids is None or ids_in_range(&row_ids[0], N, V), "row_ids out of range")
    cdef const int64_t* ids_p = &row_ids[0] if row_ids is not None else NULL
    cdef Py_ssize_t ld_out = row_stride(out.strides[0], sizeof(float))
    if first == last:
        return
    with nogil:
        lstm_infer_ranks_steps(&xproj[0, 0], ids_p, &batch_sizes[0], T, reverse,
                         &scratch[0, 0], &h[0, 0], &c[0, 0], &out[0, 0], ld_out, H,
                         &packed[0], first, last)


def prefix_tree(const int64_t[::1] ids, const int64_t[::1] starts,
                const int64_t[::1] lengths, int64_t[::1] order, bint reverse,
                int64_t[::1] node_id, int64_t[::1] node_parent, int64_t[::1] depth_start,
                int64_t[::1] seq_node, int64_t[::1] path, bint sort=False):
    """The tree of the distinct prefixes of n sequences (of their suffixes if reverse),
    numbered depth by depth (prefix_tree_nodes): returns its number of nodes.  ids: the
    sequences' elements laid end to end, sequence i at starts[i], lengths[i] >= 1 long;
    order: the order they are read in (a permutation), or with sort, out: the sequences
    sorted (sort_sequences: every common prefix shared);  node_id, node_parent (>= sum of
    lengths,), depth_start (max_len + 1,), seq_node (n,) out; path (max(2 max_len, n),)
    scratch, max_len at least the longest sequence."""
    cdef Py_ssize_t n = starts.shape[0], i, total = 0, longest = 0
    cdef Py_ssize_t max_len = depth_start.shape[0] - 1
    cdef bint inside = True
    _require(lengths.shape[0] == n and order.shape[0] == n and seq_node.shape[0] == n,
             "prefix_tree sequence counts")
    for i in range(n):  # (one C loop: a Python call per sequence cost more than its steps)
        inside &= (1 <= lengths[i] <= ids.shape[0] and 0 <= starts[i]
                   and starts[i] <= ids.shape[0] - lengths[i])
        if not inside:
            break
        total += lengths[i]
        longest = max(longest, lengths[i])
    _require(inside, "prefix_tree sequence bounds")
    _require(max_len >= longest and path.shape[0] >= max(2 * max_len, n if sort else 0)
             and node_id.shape[0] >= total and node_parent.shape[0] >= total,
             "prefix_tree buffer sizes")
    _require(sort or _is_permutation(order), "order must be a permutation of the sequences")
    if n == 0:
        depth_start[:] = 0
        return 0
    with nogil:
        if sort:
            sort_sequences(&ids[0], &starts[0], &lengths[0], n, reverse, &order[0], &path[0])
        total = prefix_tree_nodes(&ids[0], &starts[0], &lengths[0], &order[0], n, reverse,
                                  max_len, &node_id[0], &node_parent[0], &depth_start[0],
                                  &seq_node[0], &path[0])
    return total


cdef bint _is_permutation(const int64_t[::1] order):
    """Whether order holds each of 0 .. n - 1 once (a sequence read twice would make more
    nodes than its buffers hold)."""
    cdef Py_ssize_t n = order.shape[0], i
    cdef bint ok = True
    cdef unsigned char* seen = <unsigned char*>calloc(n if n else 1, 1)
    if seen == NULL:
        raise MemoryError()
    for i in range(n):
        if order[i] < 0 or order[i] >= n or seen[order[i]]:
            ok = False
            break
        seen[order[i]] = 1
    free(seen)
    return ok


def lstm_tree_infer(const float[:, ::1] xproj, const int64_t[::1] node_id,
                    const int64_t[::1] node_parent, const int64_t[::1] depth_start,
                    const float[:, ::1] w_hh, float[:, ::1] h, float[:, ::1] c,
                    float[:, ::1] h_prev, float[:, ::1] scratch, const float[::1] packed=None):
    """One direction of a one-layer float32 LSTM over prefix_tree's nodes, inference:
    h, c (nodes, H) <- each node's state (lstm_tree_infer_steps).  xproj (V, 4H) input
    pre-activations, node_id their rows; h_prev (B, H), scratch (B, 4H) work space for the
    most nodes B of a depth; packed: pack_w_hh(w_hh) for the fused step, or None."""
    cdef Py_ssize_t V = xproj.shape[0], H = w_hh.shape[1], nodes = node_id.shape[0]
    cdef Py_ssize_t depths = depth_start.shape[0] - 1, d, i, widest = 0
    cdef bint ordered = True, parents = True
    _require(depths >= 0 and xproj.shape[1] == 4 * H and w_hh.shape[0] == 4 * H,
             "tree weight shapes")
    _require(node_parent.shape[0] == nodes and h.shape[0] == nodes and c.shape[0] == nodes
             and h.shape[1] == H and c.shape[1] == H, "tree state shapes")
    _require((depths == 0 and nodes == 0) or
             (depths > 0 and depth_start[0] == 0 and depth_start[depths] == nodes),
             "tree depth_start must go from 0 to the nodes")
    for d in range(depths):  # (C loops: a Python call per node cost more than its step)
        ordered &= depth_start[d] <= depth_start[d + 1]
        if not ordered:
            break
        widest = max(widest, depth_start[d + 1] - depth_start[d])
        for i in range(depth_start[d], depth_start[d + 1]):
            # a parent is in the depth before: computed when its children read it
            parents &= ((d == 0 and node_parent[i] == -1) or
                        (d > 0 and depth_start[d - 1] <= node_parent[i] < depth_start[d]))
    _require(ordered, "tree depth_start must not go down")
    _require(parents, "tree node_parent out of range")
    _require(h_prev.shape[0] >= widest and h_prev.shape[1] == H
             and scratch.shape[0] >= widest and scratch.shape[1] == 4 * H,
             "tree work space shapes")
    _require(ids_in_range(&node_id[0], nodes, V) if nodes else True, "node_id out of range")
    cdef const float* packed_p = NULL
    if packed is not None:
        _require(packed.shape[0] == packed_w_hh_size(H) and seqtag_lstm_step_available(),
                 "packed weights need pack_w_hh's size and AVX2 or AVX-512")
        packed_p = &packed[0]
    if nodes == 0:
        return
    with nogil:
        lstm_tree_infer_steps(&xproj[0, 0], &node_id[0], &node_parent[0], &depth_start[0],
                              depths, &w_hh[0, 0], packed_p, &h[0, 0], &c[0, 0],
                              &h_prev[0, 0], &scratch[0, 0], H)


seqtag_lstm_step_init()

_STEP_ISAS = {1: "avx2", 2: "avx512"}


def fused_step_available():
    """Whether this CPU and build run the fused LSTM steps (csrc/lstm_step.h), in AVX-512
    or in AVX2."""
    return bool(seqtag_lstm_step_available())


def fused_step_isas():
    """The fused kernels this CPU and build run, best first: ("avx512", "avx2"), ("avx2",)
    or ()."""
    return tuple(_STEP_ISAS[i] for i in (2, 1) if i <= seqtag_lstm_step_available())


def fused_step_isa():
    """The fused kernels the steps call now ("avx512" or "avx2"; None where there are none)."""
    return _STEP_ISAS.get(seqtag_lstm_step_isa())


def lstm_step_fused_forward(Py_ssize_t rows, Py_ssize_t H):
    """Whether a training forward step of `rows` rows of H units runs fused with the
    kernels called now (where there are packed weights); inference runs every step fused,
    in calls of at most lstm_step_call_rows(H) rows."""
    return bool(seqtag_lstm_step_fused_forward(rows, H))


def lstm_step_call_rows(Py_ssize_t H):
    """The most rows one call of the fused inference step takes with the kernels called
    now (a step of more is cut into calls of this many): with the AVX2 kernels the rows of
    16,384 state values in whole blocks of the kernel's rows (126 at H = 128), else None
    (any)."""
    cdef Py_ssize_t rows = seqtag_lstm_step_call_rows(H)
    return None if rows >= (<Py_ssize_t>1) << 62 else rows


def set_fused_step_isa(str isa):
    """Call the fused kernels of isa ("avx512" or "avx2", one of fused_step_isas()) from
    now on, in every thread: seqtag.runtime decides, this only switches."""
    cdef int code = {"avx2": 1, "avx512": 2}.get(isa, 0)
    _require(code != 0 and seqtag_lstm_step_set_isa(code) == 0,
             f"no fused {isa} kernels on this CPU or build")


cpdef Py_ssize_t packed_w_hh_size(Py_ssize_t H):
    """Floats of pack_w_hh's output for hidden size H: 4 gates x H x H rounded up to 16."""
    return 4 * H * seqtag_unit_blocks(H) * 16


def pack_w_hh(const float[:, ::1] w_hh, float[::1] packed):
    """packed (packed_w_hh_size(H),) <- w_hh (4H, H) in the layout of the fused kernels
    that run now (fused_step_isa(): blocks of 16 units for AVX-512, of 8 for AVX2; the
    rest of packed, if any, is left as it is).  Packed weights serve only those kernels:
    whoever keeps them packs again after a switch (set_fused_step_isa)."""
    cdef Py_ssize_t H = w_hh.shape[1]
    cdef int lanes = 16 if seqtag_lstm_step_isa() == 2 else 8
    _require(w_hh.shape[0] == 4 * H and packed.shape[0] == packed_w_hh_size(H),
             "pack_w_hh shapes")
    with nogil:
        seqtag_pack_w_hh_f32(&w_hh[0, 0], H, lanes, &packed[0])


def lstm_backward(const floating[:, :] x, const floating[:, ::1] w_ih,
                  const floating[:, ::1] w_hh, const int64_t[::1] batch_sizes, bint reverse,
                  const floating[:, ::1] c0, floating[:, ::1] gates,
                  const floating[:, ::1] h_prev, const floating[:, ::1] cells,
                  const floating[:, :] grad_out, floating[:, ::1] dh, floating[:, ::1] dc,
                  floating[:, :] grad_x, floating[:, ::1] grad_w_ih,
                  floating[:, ::1] grad_w_hh, floating[::1] grad_bias,
                  const floating[::1] w_ci, const floating[::1] w_cf,
                  const floating[::1] w_co, floating[::1] grad_w_ci,
                  floating[::1] grad_w_cf, floating[::1] grad_w_co, bint fused=False):
    """One direction of an LSTM layer, backward; arguments as saved by lstm_forward.

    grad_out (N, >=H) or None; dh, dc (B, H) hold the gradient w.r.t. the final state and
    receive the one w.r.t. the initial state; grad_x (N, D) is overwritten (None: skipped);
    grad_w_ih, grad_w_hh, grad_bias and the peephole gradients are accumulated into.
    gates is overwritten with the gradient w.r.t. the pre-activations.  fused: each step's
    product with W_hh by the AVX-512 kernel (float32, fused_step_available()) instead of
    BLAS.
    """
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1], H = w_hh.shape[1], B = dh.shape[0]
    cdef Py_ssize_t T = batch_sizes.shape[0]
    cdef bint peephole = w_ci is not None
    _check_steps(batch_sizes, N, B)
    _check_rows(x.strides[1], sizeof(floating), "x",
                    x.strides[0], x.shape[0], x.shape[1])
    if grad_out is not None:
        _check_rows(grad_out.strides[1], sizeof(floating), "grad_out",
                    grad_out.strides[0], grad_out.shape[0], grad_out.shape[1])
    if grad_x is not None:
        _check_rows(grad_x.strides[1], sizeof(floating), "grad_x",
                    grad_x.strides[0], grad_x.shape[0], grad_x.shape[1])
    _require(w_ih.shape[0] == 4 * H and w_ih.shape[1] == D and w_hh.shape[0] == 4 * H,
             "weight shapes")
    _require(c0.shape[0] == B and c0.shape[1] == H and dh.shape[1] == H and dc.shape[0] == B
             and dc.shape[1] == H, "state shapes")
    _require(gates.shape[0] == N and gates.shape[1] == 4 * H and h_prev.shape[0] == N
             and h_prev.shape[1] == H and cells.shape[0] == N and cells.shape[1] == H,
             "saved shapes")
    _require(grad_out is None or (grad_out.shape[0] == N and grad_out.shape[1] >= H),
             "grad_out shape")
    _require(grad_x is None or (grad_x.shape[0] == N and grad_x.shape[1] == D), "grad_x shape")
    _require(grad_w_ih.shape[0] == 4 * H and grad_w_ih.shape[1] == D
             and grad_w_hh.shape[0] == 4 * H and grad_w_hh.shape[1] == H
             and grad_bias.shape[0] == 4 * H, "gradient shapes")
    _require(not peephole or (w_cf is not None and w_co is not None and grad_w_ci is not None
                              and grad_w_cf is not None and grad_w_co is not None
                              and w_ci.shape[0] == H and w_cf.shape[0] == H
                              and w_co.shape[0] == H and grad_w_ci.shape[0] == H
                              and grad_w_cf.shape[0] == H and grad_w_co.shape[0] == H),
             "peephole shapes")
    cdef const floating* grad_out_p = &grad_out[0, 0] if grad_out is not None else NULL
    cdef Py_ssize_t ld_grad_out = (row_stride(grad_out.strides[0], sizeof(floating))
                                   if grad_out is not None else 0)
    cdef Py_ssize_t ld_x = row_stride(x.strides[0], sizeof(floating))
    cdef const floating* w_ci_p = &w_ci[0] if peephole else NULL
    cdef const floating* w_cf_p = &w_cf[0] if peephole else NULL
    cdef const floating* w_co_p = &w_co[0] if peephole else NULL
    cdef floating* g_ci_p = &grad_w_ci[0] if peephole else NULL
    cdef floating* g_cf_p = &grad_w_cf[0] if peephole else NULL
    cdef floating* g_co_p = &grad_w_co[0] if peephole else NULL
    cdef floating* grad_x_p = &grad_x[0, 0] if grad_x is not None else NULL
    cdef Py_ssize_t ld_grad_x = (row_stride(grad_x.strides[0], sizeof(floating))
                                 if grad_x is not None else 0)
    # float32 recomputes tanh(c) a step at a time into this (B, H) scratch; float64 calls
    # libm per element and needs none
    if fused:
        _require(floating is float and seqtag_lstm_step_available(),
                 "the fused backward needs float32 and AVX2 or AVX-512")
    cdef floating* tanh_c = NULL
    if floating is float:
        tanh_c = <floating*>malloc((B * H + 1) * sizeof(floating))  # +1: never malloc(0)
        if tanh_c == NULL:
            raise MemoryError()
    try:
        with nogil:
            lstm_backward_steps(&gates[0, 0], &w_hh[0, 0], &cells[0, 0], &c0[0, 0],
                                &batch_sizes[0], T, reverse, grad_out_p, ld_grad_out,
                                &dh[0, 0], &dc[0, 0], H, w_ci_p, w_cf_p, w_co_p, g_ci_p,
                                g_cf_p, g_co_p, tanh_c, fused)
            # weight gradients: large products over all rows, after the time loop
            gemm(True, False, 4 * H, D, N, <floating>1, &gates[0, 0], 4 * H, &x[0, 0], ld_x,
                 <floating>1, &grad_w_ih[0, 0], D)
            gemm(True, False, 4 * H, H, N, <floating>1, &gates[0, 0], 4 * H, &h_prev[0, 0],
                 H, <floating>1, &grad_w_hh[0, 0], H)
            add_column_sums(&grad_bias[0], &gates[0, 0], N, 4 * H, 4 * H)
            if grad_x_p != NULL:
                gemm(False, False, N, D, 4 * H, <floating>1, &gates[0, 0], 4 * H, &w_ih[0, 0],
                     D, <floating>0, grad_x_p, ld_grad_x)
    finally:
        free(tanh_c)


def gru_forward(const floating[:, :] x, const floating[:, ::1] w_ih,
                const floating[:, ::1] w_hh, const floating[::1] b_ih,
                const floating[::1] b_hh, const int64_t[::1] batch_sizes,
                bint reverse, floating[:, ::1] h, floating[:, ::1] gates,
                floating[:, :] out, floating[:, ::1] h_prev, floating[:, ::1] hn):
    """One direction of a GRU layer, forward.

    x (N, D), w_ih (3H, D), w_hh (3H, H), b_ih and b_hh (3H,), h (B, H) holds the initial
    state and receives the final one, gates (N, 3H) receive r, z, n, out (N, >=H) receives
    h; h_prev and hn (N, H) are kept for backward, or None in inference.
    """
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1], H = w_hh.shape[1], B = h.shape[0]
    cdef Py_ssize_t T = batch_sizes.shape[0]
    cdef bint keep = h_prev is not None
    _check_steps(batch_sizes, N, B)
    _check_rows(x.strides[1], sizeof(floating), "x",
                    x.strides[0], x.shape[0], x.shape[1])
    _check_rows(out.strides[1], sizeof(floating), "out",
                    out.strides[0], out.shape[0], out.shape[1])
    _require(w_ih.shape[0] == 3 * H and w_ih.shape[1] == D and w_hh.shape[0] == 3 * H
             and b_ih.shape[0] == 3 * H and b_hh.shape[0] == 3 * H, "weight shapes")
    _require(h.shape[1] == H, "state shapes")
    _require(gates.shape[0] == N and gates.shape[1] == 3 * H and out.shape[0] == N
             and out.shape[1] >= H, "buffer shapes")
    _require(not keep or (hn is not None and h_prev.shape[0] == N and h_prev.shape[1] == H
                          and hn.shape[0] == N and hn.shape[1] == H), "saved shapes")
    cdef floating* h_prev_p = &h_prev[0, 0] if keep else NULL
    cdef floating* hn_p = &hn[0, 0] if keep else NULL
    cdef Py_ssize_t ld_x = row_stride(x.strides[0], sizeof(floating))
    cdef Py_ssize_t ld_out = row_stride(out.strides[0], sizeof(floating))
    cdef floating* rec = <floating*>malloc(B * 3 * H * sizeof(floating))
    if rec == NULL:
        raise MemoryError()
    try:
        with nogil:
            fill_rows(&gates[0, 0], N, 3 * H, &b_ih[0])
            gemm(False, True, N, 3 * H, D, <floating>1, &x[0, 0], ld_x, &w_ih[0, 0], D,
                 <floating>1, &gates[0, 0], 3 * H)
            gru_forward_steps(&gates[0, 0], &w_hh[0, 0], &b_hh[0], rec, &batch_sizes[0], T,
                              reverse, &h[0, 0], h_prev_p, hn_p, &out[0, 0], ld_out, H)
    finally:
        free(rec)


def gru_infer(const floating[:, ::1] xproj, const int64_t[::1] row_ids,
              const floating[:, ::1] w_hh, const floating[::1] b_hh,
              const int64_t[::1] batch_sizes, bint reverse,
              floating[:, ::1] h, floating[:, ::1] rec, floating[:, ::1] gates,
              floating[:, :] out, const float[::1] packed=None):
    """One direction of a GRU layer, inference only.

    xproj (V, 3H) input pre-activations (input_projection with bias = b_ih); row_ids (N,)
    the xproj row of each packed row, 0 <= row_ids[r] < V, or None: row r reads xproj[r]
    (V = N); h (B, H) initial state in, final state out; rec and gates (B, 3H) scratch;
    out (N, >=H) receives h in its first H columns.  packed: gru_pack_w_hh(w_hh) for the
    fused step (float32, fused_step_available()), or None for the BLAS path.
    """
    cdef Py_ssize_t V = xproj.shape[0], H = w_hh.shape[1], B = h.shape[0]
    cdef Py_ssize_t T = batch_sizes.shape[0], r
    cdef Py_ssize_t N = row_ids.shape[0] if row_ids is not None else V
    _check_steps(batch_sizes, N, B)
    _check_rows(out.strides[1], sizeof(floating), "out",
                out.strides[0], out.shape[0], out.shape[1])
    _require(xproj.shape[1] == 3 * H and w_hh.shape[0] == 3 * H and b_hh.shape[0] == 3 * H,
             "weight shapes")
    _require(h.shape[1] == H, "state shapes")
    _require(rec.shape[0] >= B and rec.shape[1] == 3 * H and gates.shape[0] >= B
             and gates.shape[1] == 3 * H and out.shape[0] == N and out.shape[1] >= H,
             "buffer shapes")
    _require(row_ids is None or ids_in_range(&row_ids[0], N, V), "row_ids out of range")
    cdef const int64_t* ids_p = &row_ids[0] if row_ids is not None else NULL
    cdef Py_ssize_t ld_out = row_stride(out.strides[0], sizeof(floating))
    cdef const float* packed_p = NULL
    if packed is not None:
        _require(floating is float and packed.shape[0] == seqtag_gru_packed_size(H)
                 and seqtag_gru_step_lanes() > 0,
                 "packed weights need float32, gru_pack_w_hh's size and AVX2 or AVX-512")
        packed_p = &packed[0]
    with nogil:
        gru_infer_steps(&xproj[0, 0], ids_p, &w_hh[0, 0], &b_hh[0], &batch_sizes[0], T,
                        reverse, &rec[0, 0], &gates[0, 0], &h[0, 0], &out[0, 0], ld_out, H,
                        packed_p)


def gru_packed_size(Py_ssize_t H):
    """The floats of gru_pack_w_hh's output for H hidden units."""
    return seqtag_gru_packed_size(H)


def gru_pack_w_hh(const float[:, ::1] w_hh, float[::1] packed):
    """packed (gru_packed_size(H),) <- w_hh (3H, H) in the layout of the fused GRU step
    (csrc/gru_step.h) of the kernels that run now (fused_step_isa()): packed weights serve
    only those kernels, as pack_w_hh's do."""
    cdef Py_ssize_t H = w_hh.shape[1]
    cdef int lanes = seqtag_gru_step_lanes()
    _require(lanes > 0, "gru_pack_w_hh needs the fused kernels (AVX2 or AVX-512)")
    _require(w_hh.shape[0] == 3 * H and packed.shape[0] == seqtag_gru_packed_size(H),
             "gru_pack_w_hh shapes")
    with nogil:
        seqtag_gru_pack_w_hh_f32(&w_hh[0, 0], H, lanes, &packed[0])


def gru_backward(const floating[:, :] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const int64_t[::1] batch_sizes, bint reverse,
                 floating[:, ::1] gates, const floating[:, ::1] h_prev,
                 const floating[:, ::1] hn, const floating[:, :] grad_out,
                 floating[:, ::1] dh, floating[:, :] grad_x, floating[:, ::1] grad_w_ih,
                 floating[:, ::1] grad_w_hh, floating[::1] grad_b_ih, floating[::1] grad_b_hh):
    """One direction of a GRU layer, backward; arguments as saved by gru_forward.

    dh (B, H) holds the gradient w.r.t. the final state and receives the one w.r.t. the
    initial state; grad_x (N, D) is overwritten (None: skipped); weight and bias gradients
    are accumulated into; gates is overwritten.
    """
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1], H = w_hh.shape[1], B = dh.shape[0]
    cdef Py_ssize_t T = batch_sizes.shape[0]
    _check_steps(batch_sizes, N, B)
    _check_rows(x.strides[1], sizeof(floating), "x",
                    x.strides[0], x.shape[0], x.shape[1])
    if grad_out is not None:
        _check_rows(grad_out.strides[1], sizeof(floating), "grad_out",
                    grad_out.strides[0], grad_out.shape[0], grad_out.shape[1])
    if grad_x is not None:
        _check_rows(grad_x.strides[1], sizeof(floating), "grad_x",
                    grad_x.strides[0], grad_x.shape[0], grad_x.shape[1])
    _require(w_ih.shape[0] == 3 * H and w_ih.shape[1] == D and w_hh.shape[0] == 3 * H,
             "weight shapes")
    _require(dh.shape[1] == H, "state shapes")
    _require(gates.shape[0] == N and gates.shape[1] == 3 * H and h_prev.shape[0] == N
             and h_prev.shape[1] == H and hn.shape[0] == N and hn.shape[1] == H,
             "saved shapes")
    _require(grad_out is None or (grad_out.shape[0] == N and grad_out.shape[1] >= H),
             "grad_out shape")
    _require(grad_x is None or (grad_x.shape[0] == N and grad_x.shape[1] == D), "grad_x shape")
    _require(grad_w_ih.shape[0] == 3 * H and grad_w_ih.shape[1] == D
             and grad_w_hh.shape[0] == 3 * H and grad_w_hh.shape[1] == H
             and grad_b_ih.shape[0] == 3 * H and grad_b_hh.shape[0] == 3 * H,
             "gradient shapes")
    cdef const floating* grad_out_p = &grad_out[0, 0] if grad_out is not None else NULL
    cdef Py_ssize_t ld_grad_out = (row_stride(grad_out.strides[0], sizeof(floating))
                                   if grad_out is not None else 0)
    cdef floating* grad_x_p = &grad_x[0, 0] if grad_x is not None else NULL
    cdef Py_ssize_t ld_grad_x = (row_stride(grad_x.strides[0], sizeof(floating))
                                 if grad_x is not None else 0)
    cdef Py_ssize_t ld_x = row_stride(x.strides[0], sizeof(floating))
    cdef floating* grad_rec = <floating*>malloc(N * 3 * H * sizeof(floating))
    if grad_rec == NULL:
        raise MemoryError()
    try:
        with nogil:
            gru_backward_steps(&gates[0, 0], grad_rec, &w_hh[0, 0], &h_prev[0, 0], &hn[0, 0],
                               &batch_sizes[0], T, reverse, grad_out_p, ld_grad_out,
                               &dh[0, 0], H)
            gemm(True, False, 3 * H, D, N, <floating>1, &gates[0, 0], 3 * H, &x[0, 0], ld_x,
                 <floating>1, &grad_w_ih[0, 0], D)
            gemm(True, False, 3 * H, H, N, <floating>1, grad_rec, 3 * H, &h_prev[0, 0], H,
                 <floating>1, &grad_w_hh[0, 0], H)
            add_column_sums(&grad_b_ih[0], &gates[0, 0], N, 3 * H, 3 * H)
            add_column_sums(&grad_b_hh[0], grad_rec, N, 3 * H, 3 * H)
            if grad_x_p != NULL:
                gemm(False, False, N, D, 3 * H, <floating>1, &gates[0, 0], 3 * H, &w_ih[0, 0],
                     D, <floating>0, grad_x_p, ld_grad_x)
    finally:
        free(grad_rec)


# The float32 kernels of fastmath.h, in place, for tests/test_fastmath.py.

def _exp_f32(float[::1] x):
    """x <- e^x in place with the vectorised float32 kernel (argument clamped to +-87)."""
    if x.shape[0]:
        with nogil:
            seqtag_exp_f32(&x[0], x.shape[0])


def _sigmoid_f32(float[::1] x):
    """x <- sigmoid(x) in place with the vectorised float32 kernel."""
    if x.shape[0]:
        with nogil:
            seqtag_sigmoid_f32(&x[0], x.shape[0])


def _tanh_f32(float[::1] x):
    """x <- tanh(x) in place with the vectorised float32 kernel."""
    if x.shape[0]:
        with nogil:
            seqtag_tanh_f32(&x[0], x.shape[0])


# What this build compiled in: a compiler without GCC >= 12's ifunc clones builds fastmath.h's
# portable loops only, one without AVX-512 target support no fused LSTM kernels; both still
# compute the same results, slower, and this is how to see which build is running.
cdef extern from "fastmath.h":
    const int SEQTAG_HAVE_CLONES
    const char* SEQTAG_COMPILER

cdef extern from "lstm_step.h":
    const int SEQTAG_HAVE_LSTM_STEP


def build_info():
    """What the compiled core was built with: {"compiler": name and version,
    "fastmath_clones": whether fastmath.h's kernels have AVX2/AVX-512 clones chosen at load
    time (else SSE2 loops only), "fused_lstm_kernels": whether lstm_step.h's AVX-512 and AVX2 kernels
    are compiled in, and gru_step.h's with them (they run only where fused_step_available()
    also says so)}."""
    return {"compiler": SEQTAG_COMPILER.decode("ascii", "replace").strip(),
            "fastmath_clones": bool(SEQTAG_HAVE_CLONES),
            "fused_lstm_kernels": bool(SEQTAG_HAVE_LSTM_STEP)}


# ---- float16 weights (half.h) ------------------------------------------------------------

cdef extern from "half.h":
    const int SEQTAG_HAVE_F16C
    int seqtag_half_f16c_available() nogil
    void seqtag_half_to_float(const uint16_t *src, float *dst, Py_ssize_t n, int f16c) nogil


def half_to_float(const uint16_t[::1] src, float[::1] dst, bint f16c=True):
    """dst[:] = the float16 values whose bits src holds, as float32: what NumPy's astype
    gives, bit for bit (signalling NaNs kept), with F16C where the CPU has it (f16c=False:
    the scalar conversion, which runs elsewhere)."""
    _require(src.shape[0] == dst.shape[0], "half_to_float: sizes differ")
    if src.shape[0]:
        with nogil:
            seqtag_half_to_float(&src[0], &dst[0], src.shape[0], f16c)


def half_f16c_available():
    """Whether half_to_float runs F16C instructions on this CPU and build."""
    return bool(SEQTAG_HAVE_F16C and seqtag_half_f16c_available())


# ---- the linear-chain CRF (crf.pxi) ----------------------------------------------------

def _crf_shapes(Py_ssize_t N, Py_ssize_t C, const int64_t[::1] batch_sizes,
                Py_ssize_t trans_rows, Py_ssize_t trans_cols, Py_ssize_t start_len,
                Py_ssize_t end_len):
    _require(C >= 1, "a CRF needs at least one tag")
    _require(batch_sizes.shape[0] >= 1, "no time steps")
    _check_steps(batch_sizes, N, batch_sizes[0])
    _require(trans_rows == C and trans_cols == C and start_len == C and end_len == C,
             "transition shapes")


def crf_forward(const floating[:, ::1] emissions, const int64_t[::1] batch_sizes,
                const floating[:, ::1] transitions, const floating[::1] start,
                const floating[::1] end, floating[:, ::1] alpha, floating[::1] log_z):
    """The CRF's forward algorithm over packed sequences, in log space.

    emissions (N, C) per-row tag scores, batch_sizes (T,) the packing, transitions (C, C)
    [from, to], start and end (C,); alpha (N, C) receives the forward log-scores (kept for
    crf_backward), log_z (B,) each rank's log partition.
    """
    cdef Py_ssize_t N = emissions.shape[0], C = emissions.shape[1]
    _crf_shapes(N, C, batch_sizes, transitions.shape[0], transitions.shape[1],
                start.shape[0], end.shape[0])
    _require(alpha.shape[0] == N and alpha.shape[1] == C
             and log_z.shape[0] == batch_sizes[0], "buffer shapes")
    cdef floating* work = <floating*>malloc((C * C + C) * sizeof(floating))
    if work == NULL:
        raise MemoryError()
    with nogil:
        crf_forward_steps(&alpha[0, 0], &log_z[0], &emissions[0, 0], &batch_sizes[0],
                          batch_sizes.shape[0], C, &transitions[0, 0], &start[0], &end[0],
                          work)
    free(work)


def crf_backward(floating[:, ::1] grad_emissions, floating[:, ::1] grad_transitions,
                 floating[::1] grad_start, floating[::1] grad_end,
                 const floating[::1] grad_log_z, const floating[:, ::1] emissions,
                 const floating[:, ::1] alpha, const floating[::1] log_z,
                 const int64_t[::1] batch_sizes, const floating[:, ::1] transitions,
                 const floating[::1] end):
    """The gradient of sum_b grad_log_z[b] * log_z[b] (forward-backward marginals).

    grad_emissions (N, C) is written (with grad_log_z = 1: each row's tag marginals);
    grad_transitions (C, C), grad_start and grad_end (C,) are added to.  alpha and log_z
    as crf_forward left them, the other arguments as given to it.
    """
    cdef Py_ssize_t N = emissions.shape[0], C = emissions.shape[1]
    _crf_shapes(N, C, batch_sizes, transitions.shape[0], transitions.shape[1],
                end.shape[0], end.shape[0])
    _require(grad_emissions.shape[0] == N and grad_emissions.shape[1] == C
             and alpha.shape[0] == N and alpha.shape[1] == C
             and grad_transitions.shape[0] == C and grad_transitions.shape[1] == C
             and grad_start.shape[0] == C and grad_end.shape[0] == C
             and grad_log_z.shape[0] == batch_sizes[0]
             and log_z.shape[0] == batch_sizes[0], "buffer shapes")
    cdef floating* work = <floating*>malloc((N * C + C * C + 2 * C) * sizeof(floating))
    if work == NULL:
        raise MemoryError()
    with nogil:
        crf_backward_steps(&grad_emissions[0, 0], &grad_transitions[0, 0], &grad_start[0],
                           &grad_end[0], &grad_log_z[0], &emissions[0, 0], &alpha[0, 0],
                           &log_z[0], &batch_sizes[0], batch_sizes.shape[0], C,
                           &transitions[0, 0], &end[0], work + C * C + 2 * C, work)
    free(work)


def crf_viterbi(const floating[:, ::1] emissions, const int64_t[::1] batch_sizes,
                const floating[:, ::1] transitions, const floating[::1] start,
                const floating[::1] end, int64_t[::1] tags, floating[::1] best,
                const unsigned char[:, ::1] allowed=None,
                const unsigned char[::1] allowed_start=None,
                const unsigned char[::1] allowed_end=None):
    """The best-scoring tag sequence of each rank (Viterbi), optionally constrained.

    tags (N,) receives the tag of each packed row, best (B,) each best sequence's score.
    allowed (C, C), allowed_start and allowed_end (C,), uint8: 0 forbids that transition,
    first tag or last tag (None: all allowed); a rank with no allowed sequence scores -inf.
    """
    cdef Py_ssize_t N = emissions.shape[0], C = emissions.shape[1]
    _crf_shapes(N, C, batch_sizes, transitions.shape[0], transitions.shape[1],
                start.shape[0], end.shape[0])
    cdef Py_ssize_t B = batch_sizes[0]
    _require(tags.shape[0] == N and best.shape[0] == B, "buffer shapes")
    _require((allowed is None or (allowed.shape[0] == C and allowed.shape[1] == C))
             and (allowed_start is None or allowed_start.shape[0] == C)
             and (allowed_end is None or allowed_end.shape[0] == C), "mask shapes")
    cdef const unsigned char* allowed_p = &allowed[0, 0] if allowed is not None else NULL
    cdef const unsigned char* start_p = &allowed_start[0] if allowed_start is not None else NULL
    cdef const unsigned char* end_p = &allowed_end[0] if allowed_end is not None else NULL
    cdef floating* delta = <floating*>malloc(N * C * sizeof(floating))
    cdef int32_t* back = <int32_t*>malloc(N * C * sizeof(int32_t))
    cdef int64_t* last = <int64_t*>malloc(B * sizeof(int64_t))
    if delta == NULL or back == NULL or last == NULL:
        free(delta)
        free(back)
        free(last)
        raise MemoryError()
    with nogil:
        crf_viterbi_steps(&tags[0], &best[0], &emissions[0, 0], &batch_sizes[0],
                          batch_sizes.shape[0], C, &transitions[0, 0], &start[0], &end[0],
                          allowed_p, start_p, end_p, delta, back, last)
    free(delta)
    free(back)
    free(last)
