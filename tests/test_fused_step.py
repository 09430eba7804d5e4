"""The fused AVX-512 float32 LSTM inference step (csrc/lstm_step.h) and what uses it:
_core.pack_w_hh, _core.lstm_infer(..., packed=...), RNN.fused_step / pack_recurrent /
forward_projected(packed=...), the per-call packing of forward_packed(keep=False) and the
packed W_hh that ProjectionMemo keeps.

The fused step must give what the BLAS path gives (the same arithmetic up to the order of
the sums of the recurrent product), and both what a float64 reference and torch.nn.LSTM
give.  Tests that run the fused step skip where the CPU or build lacks AVX-512.
"""

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import seqtag.rnn
from seqtag import _core
from seqtag.memo import ProjectionMemo
from seqtag.packing import Packing
from seqtag.rnn import PACK_MIN_ROWS, RNN

REPO_ROOT = Path(__file__).resolve().parents[1]
F32, F64 = np.float32, np.float64

FUSED = _core.fused_step_available()
needs_fused = pytest.mark.skipif(
    not FUSED, reason="no AVX-512 on this CPU (or a build without it): "
                      "_core.fused_step_available() is False, the fused step never runs")
# RNN-level tests also need the module switch on (SEQTAG_FUSED_STEP=0 turns it off)
needs_fused_rnn = pytest.mark.skipif(
    not seqtag.rnn.FUSED_STEP, reason="no AVX-512 on this CPU (or a build without it), or "
                                      "SEQTAG_FUSED_STEP=0: seqtag.rnn.FUSED_STEP is False")

# the fused step and the BLAS path differ only in the order of the product's sums
TOL = dict(rtol=1e-5, atol=1e-5)
CORE_MSG = "seqtag._core: packed weights need float32, no peepholes, H % 16 == 0 and AVX-512"
NOT_FUSED_MSG = ("packed weights were given but this RNN does not run the fused step "
                 "(see RNN.fused_step)")


def exact(msg):
    return "^" + re.escape(msg) + "$"


def numpy_pack(w_hh):
    """The documented layout: packed[((u H + k) 4 + q) 16 + l] = w_hh[q H + 16 u + l, k]."""
    H = w_hh.shape[1]
    return np.ascontiguousarray(w_hh.reshape(4, H // 16, 16, H).transpose(1, 3, 0, 2).ravel())


# ---- 1. pack_w_hh -------------------------------------------------------------------------

@pytest.mark.parametrize("H", [16, 32, 128])
def test_pack_w_hh_layout(H):
    w_hh = np.random.default_rng(H).standard_normal((4 * H, H)).astype(F32)
    packed = np.full(4 * H * H, np.nan, dtype=F32)
    _core.pack_w_hh(w_hh, packed)
    np.testing.assert_array_equal(packed, numpy_pack(w_hh))
    # spot-check the index formula itself, independently of the reshape expression
    for u, k, q, l in [(0, 0, 0, 0), (H // 16 - 1, H - 1, 3, 15), (0, 5 % H, 2, 7)]:
        assert packed[((u * H + k) * 4 + q) * 16 + l] == w_hh[q * H + 16 * u + l, k]


def test_pack_w_hh_rejects_wrong_shapes():
    msg = exact("seqtag._core: pack_w_hh shapes")
    with pytest.raises(ValueError, match=msg):  # H not a multiple of 16
        _core.pack_w_hh(np.zeros((80, 20), F32), np.zeros(4 * 20 * 20, F32))
    w = np.zeros((128, 32), F32)
    for size in (4 * 32 * 32 - 1, 4 * 32 * 32 + 16, 32 * 32):
        with pytest.raises(ValueError, match=msg):
            _core.pack_w_hh(w, np.zeros(size, F32))
    with pytest.raises(ValueError, match=msg):  # not (4H, H)
        _core.pack_w_hh(np.zeros((96, 32), F32), np.zeros(4 * 32 * 32, F32))


# ---- 2. _core.lstm_infer: fused against BLAS and a float64 reference ----------------------

def reference_lstm(xproj, row_ids, w_hh, packing, reverse, h0, c0):
    """float64 LSTM over the packed rows; h0, c0 (B, H) in rank order."""
    xproj, w_hh = xproj.astype(F64), w_hh.astype(F64)
    H = w_hh.shape[1]
    ids = np.arange(packing.n_rows) if row_ids is None else row_ids
    h, c = h0.astype(F64).copy(), c0.astype(F64).copy()
    out = np.zeros((packing.n_rows, H))
    bs = packing.batch_sizes
    offsets = np.concatenate([[0], np.cumsum(bs)[:-1]])
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for t in (reversed(range(len(bs))) if reverse else range(len(bs))):
        rows, off = bs[t], offsets[t]
        a = xproj[ids[off:off + rows]] + h[:rows] @ w_hh.T
        i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), \
            sig(a[:, 3 * H:])
        c[:rows] = f * c[:rows] + i * g
        h[:rows] = o * np.tanh(c[:rows])
        out[off:off + rows] = h[:rows]
    return out, h, c


def run_infer(xproj, row_ids, w_hh, packing, reverse, h0, c0, packed, w_peep=None):
    """_core.lstm_infer with out a column view of a wider array (ld_out > H, at an odd
    column offset); returns (out, h, c).  The columns around the view must stay as they
    were."""
    H = w_hh.shape[1]
    h, c = h0.copy(), c0.copy()
    scratch = np.empty((packing.batch, 4 * H), dtype=xproj.dtype)
    wide = np.full((packing.n_rows, 2 * H + 5), 7.0, dtype=xproj.dtype)
    lo = H + 3
    out = wide[:, lo:lo + H]
    peep = (None, None, None) if w_peep is None else w_peep
    _core.lstm_infer(xproj, row_ids, w_hh, packing.batch_sizes, reverse, h, c, scratch, out,
                     *peep, packed)
    outside = np.concatenate([wide[:, :lo], wide[:, lo + H:]], axis=1)
    assert (outside == 7.0).all(), "lstm_infer wrote outside its column view"
    return out.copy(), h, c


# 13 sequences of lengths 13..1: every step row count 1..13 (6 and 12 among them, and all
# the others that leave a partial block of 6 rows); and a batch with repeated lengths
LENGTH_SETS = {"counts1to13": list(range(1, 14)),
               "ragged11": [9, 1, 9, 4, 7, 1, 2, 9, 7, 1, 1]}


def core_case(H, lengths, with_ids, seed):
    """xproj, row_ids, w_hh, packing, h0, c0 (rank order): h0 and c0 nonzero for some
    sequences, zero for others, and for one sequence h0 zero with c0 nonzero."""
    rng = np.random.default_rng(seed)
    packing = Packing(lengths)
    B, N = packing.batch, packing.n_rows
    V = 37 if with_ids else N
    xproj = rng.standard_normal((V, 4 * H)).astype(F32)
    row_ids = rng.integers(0, V, N).astype(np.int64) if with_ids else None
    w_hh = (rng.uniform(-1, 1, (4 * H, H)) * 2 / np.sqrt(H)).astype(F32)
    h0 = rng.standard_normal((B, H)).astype(F32)
    c0 = rng.standard_normal((B, H)).astype(F32)
    zero = rng.permutation(B)[:B // 2]
    h0[zero] = 0
    c0[zero[1:]] = 0  # zero[0]: h0 zero, c0 not
    return xproj, row_ids, w_hh, packing, h0, c0


CORE_CASES = list(itertools.product([16, 32, 48, 128], LENGTH_SETS, [False, True],
                                    [False, True]))


def core_id(case):
    H, lengths, reverse, with_ids = case
    direction = "reverse" if reverse else "forward"
    return f"H{H}-{lengths}-{direction}-{'ids' if with_ids else 'noids'}"


@needs_fused
@pytest.mark.parametrize("H, lengths, reverse, with_ids",
                         [pytest.param(*c, id=core_id(c)) for c in CORE_CASES])
def test_lstm_infer_fused_equals_blas(H, lengths, reverse, with_ids):
    xproj, row_ids, w_hh, packing, h0, c0 = core_case(H, LENGTH_SETS[lengths], with_ids,
                                                     seed=H + 2 * reverse + with_ids)
    if lengths == "counts1to13":
        assert sorted(packing.batch_sizes.tolist()) == list(range(1, 14))
    xproj_before = xproj.copy()
    packed = numpy_pack(w_hh)
    packed_before = packed.copy()
    blas = run_infer(xproj, row_ids, w_hh, packing, reverse, h0, c0, None)
    fused = run_infer(xproj, row_ids, w_hh, packing, reverse, h0, c0, packed)
    for name, a, b in zip(("out", "h", "c"), fused, blas):
        assert np.isfinite(a).all(), name
        np.testing.assert_allclose(a, b, err_msg=name, **TOL)
    # the inputs are only read
    np.testing.assert_array_equal(xproj, xproj_before)
    np.testing.assert_array_equal(packed, packed_before)
    # the recurrent product matters here: without it (W_hh = 0) the result is another one
    zero = run_infer(xproj, row_ids, w_hh, packing, reverse, h0, c0, np.zeros_like(packed))
    assert np.abs(zero[0] - fused[0]).max() > 1e-2
    # every sequence from a zero state: the first step skips the product for all rows
    z = np.zeros_like(h0)
    blas = run_infer(xproj, row_ids, w_hh, packing, reverse, z, z, None)
    fused = run_infer(xproj, row_ids, w_hh, packing, reverse, z, z, packed)
    for name, a, b in zip(("out", "h", "c"), fused, blas):
        np.testing.assert_allclose(a, b, err_msg="zero states " + name, **TOL)


@needs_fused
@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_infer_fused_and_blas_match_float64_reference(reverse):
    H = 48
    xproj, row_ids, w_hh, packing, h0, c0 = core_case(H, LENGTH_SETS["counts1to13"], True,
                                                     seed=11 + reverse)
    ref = reference_lstm(xproj, row_ids, w_hh, packing, reverse, h0, c0)
    blas = run_infer(xproj, row_ids, w_hh, packing, reverse, h0, c0, None)
    fused = run_infer(xproj, row_ids, w_hh, packing, reverse, h0, c0, numpy_pack(w_hh))
    for name, r, b, f in zip(("out", "h", "c"), ref, blas, fused):
        np.testing.assert_allclose(b, r, err_msg="blas " + name, **TOL)
        np.testing.assert_allclose(f, r, err_msg="fused " + name, **TOL)


def test_float64_reference_is_the_blas_path():
    """The reference itself against the float64 BLAS path (bit-for-bit libm): runs on every
    CPU, so the reference used above is known to be right."""
    H = 5
    rng = np.random.default_rng(3)
    packing = Packing([4, 6, 1, 3])
    xproj = rng.standard_normal((packing.n_rows, 4 * H))
    w_hh = rng.standard_normal((4 * H, H))
    h0, c0 = rng.standard_normal((2, packing.batch, H))
    for reverse in (False, True):
        ref = reference_lstm(xproj, None, w_hh, packing, reverse, h0, c0)
        got = run_infer(xproj, None, w_hh, packing, reverse, h0, c0, None)
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, rtol=0, atol=1e-12)


# ---- 3. lstm_infer refuses packed weights it cannot use -----------------------------------

def test_lstm_infer_refuses_packed_with_float64():
    H = 16
    xproj, _, w_hh, packing, h0, c0 = core_case(H, [3, 2], False, seed=0)
    packed = numpy_pack(w_hh)
    with pytest.raises(ValueError, match=exact(CORE_MSG)):
        run_infer(xproj.astype(F64), None, w_hh.astype(F64), packing, False,
                  h0.astype(F64), c0.astype(F64), packed)


def test_lstm_infer_refuses_packed_with_peepholes():
    H = 16
    xproj, _, w_hh, packing, h0, c0 = core_case(H, [3, 2], False, seed=0)
    peep = tuple(np.full(H, 0.1, F32) for _ in range(3))
    with pytest.raises(ValueError, match=exact(CORE_MSG)):
        run_infer(xproj, None, w_hh, packing, False, h0, c0, numpy_pack(w_hh), peep)


def test_lstm_infer_refuses_packed_with_h_not_multiple_of_16():
    H = 20
    rng = np.random.default_rng(0)
    packing = Packing([3, 2])
    xproj = rng.standard_normal((packing.n_rows, 4 * H)).astype(F32)
    w_hh = rng.standard_normal((4 * H, H)).astype(F32)
    h0 = np.zeros((2, H), F32)
    with pytest.raises(ValueError, match=exact(CORE_MSG)):
        run_infer(xproj, None, w_hh, packing, False, h0, h0, np.zeros(4 * H * H, F32))


def test_lstm_infer_refuses_packed_of_wrong_size():
    H = 16
    xproj, _, w_hh, packing, h0, c0 = core_case(H, [3, 2], False, seed=0)
    with pytest.raises(ValueError, match=exact(CORE_MSG)):
        run_infer(xproj, None, w_hh, packing, False, h0, c0, np.zeros(4 * H * H - 16, F32))


# ---- 4. forward_projected(packed=...) -----------------------------------------------------

def count_packs(monkeypatch):
    calls = []
    pack = RNN._pack

    def counting(self, k):
        calls.append(k)
        return pack(self, k)
    monkeypatch.setattr(RNN, "_pack", counting)
    return calls


def bi_lstm(hidden=32, input_size=8, seed=4, threads=1):
    return RNN("lstm", input_size, hidden, num_layers=2, bidirectional=True, seed=seed,
               threads=threads)


def projected_case(rnn, lengths, seed=0):
    """A table of V input rows, row_ids into it, the packed x they give, h0 and c0."""
    rng = np.random.default_rng(seed)
    packing = Packing(lengths)
    table = rng.standard_normal((23, rnn.input_size)).astype(F32)
    row_ids = rng.integers(0, len(table), packing.n_rows)
    shape = (rnn.num_layers * rnn.num_directions, packing.batch, rnn.hidden_size)
    h0 = rng.standard_normal(shape).astype(F32)
    c0 = rng.standard_normal(shape).astype(F32)
    return table, row_ids, packing, h0, c0


def torch_lstm(rnn, x_packed, packing, h0, c0):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    module = torch.nn.LSTM(rnn.input_size, rnn.hidden_size, num_layers=rnn.num_layers,
                           bidirectional=rnn.bidirectional, batch_first=True,
                           dtype=torch.float32)
    module.load_state_dict({k: torch.tensor(v) for k, v in rnn.params.items()})
    padded = packing.unpack(x_packed)
    seq = pack_padded_sequence(torch.tensor(padded), torch.tensor(packing.lengths),
                               batch_first=True, enforce_sorted=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny problem: no thread pool spinning on a busy machine
    try:
        with torch.no_grad():
            out, (h_n, c_n) = module(seq, (torch.tensor(h0), torch.tensor(c0)))
    finally:
        torch.set_num_threads(threads)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=packing.steps)
    return packing.pack(out.numpy()), h_n.numpy(), c_n.numpy()


@needs_fused_rnn
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("states", [True, False], ids=["h0c0", "zeros"])
def test_forward_projected_with_packed_matches_blas_forward_and_torch(states, threads,
                                                                   monkeypatch):
    rnn = bi_lstm(threads=threads)
    lengths = [9, 3, 13, 1, 6, 7, 2, 13, 5]
    table, row_ids, packing, h0, c0 = projected_case(rnn, lengths, seed=threads)
    if not states:
        h0 = c0 = None
    # without packed=, the BLAS path runs (whatever PACK_MIN_ROWS is set to)
    monkeypatch.setattr(seqtag.rnn, "PACK_MIN_ROWS", 10 ** 9)
    calls = count_packs(monkeypatch)
    projections = [rnn.input_projection(table, d) for d in range(2)]
    packed = rnn.pack_recurrent()
    calls.clear()
    got = rnn.forward_projected(projections, row_ids, packing, h0, c0, packed=packed)
    blas = rnn.forward_projected(projections, row_ids, packing, h0, c0)
    x = table[row_ids]
    full = rnn.forward_packed(x, packing, h0, c0, keep=False)[:3]
    if not states:
        h0 = c0 = np.zeros((4, packing.batch, rnn.hidden_size), F32)
    ref = torch_lstm(rnn, x, packing, h0, c0)
    assert calls == []  # the only packed weights were pack_recurrent()'s
    for name, g, b, f, r in zip(("out", "h_n", "c_n"), got, blas, full, ref):
        assert g.dtype == F32 and g.shape == r.shape, name
        np.testing.assert_allclose(g, b, err_msg="vs BLAS " + name, **TOL)
        np.testing.assert_allclose(g, f, err_msg="vs forward_packed " + name, **TOL)
        np.testing.assert_allclose(g, r, err_msg="vs torch " + name, **TOL)
    # the packed weights are really what runs: other packed weights, another result
    wrong = [np.zeros_like(p) for p in packed]
    other = rnn.forward_projected(projections, row_ids, packing, h0, c0, packed=wrong)[0]
    assert np.abs(other - got[0]).max() > 1e-2


@needs_fused_rnn
def test_forward_projected_with_packed_and_head():
    rnn = bi_lstm()
    table, row_ids, packing, h0, c0 = projected_case(rnn, [5, 8, 2, 8], seed=7)
    projections = [rnn.input_projection(table, d) for d in range(2)]
    rng = np.random.default_rng(0)
    head = (rng.standard_normal((6, rnn.output_size)).astype(F32),
            rng.standard_normal(6).astype(F32))
    got = rnn.forward_projected(projections, row_ids, packing, h0, c0, head=head,
                                packed=rnn.pack_recurrent())[0]
    out = rnn.forward_projected(projections, row_ids, packing, h0, c0)[0]
    np.testing.assert_allclose(got, out @ head[0].T + head[1], rtol=1e-5, atol=1e-5)


# ---- 5. forward_packed(keep=False) packs W_hh itself for large batches --------------------

@needs_fused_rnn
@pytest.mark.parametrize("threads", [1, 2])
def test_large_batch_inference_fused_equals_blas_and_training_forward(threads, monkeypatch):
    rnn = bi_lstm(hidden=48, threads=threads)
    rng = np.random.default_rng(threads)
    lengths = rng.integers(1, 20, 31)
    lengths[0] = 20
    packing = Packing(lengths)
    assert packing.n_rows >= PACK_MIN_ROWS
    x = rng.standard_normal((packing.n_rows, rnn.input_size)).astype(F32)
    shape = (4, packing.batch, rnn.hidden_size)
    h0 = rng.standard_normal(shape).astype(F32)
    c0 = rng.standard_normal(shape).astype(F32)
    h0[:, ::3] = 0  # some sequences from a zero state
    calls = count_packs(monkeypatch)
    fused = rnn.forward_packed(x, packing, h0, c0, keep=False)
    assert sorted(calls) == sorted(["l0", "l0_reverse", "l1", "l1_reverse"])
    train = rnn.forward_packed(x, packing, h0, c0, keep=True)
    monkeypatch.setattr(seqtag.rnn, "FUSED_STEP", False)
    calls.clear()
    blas = rnn.forward_packed(x, packing, h0, c0, keep=False)
    blas_train = rnn.forward_packed(x, packing, h0, c0, keep=True)
    assert calls == []  # the BLAS path packed nothing
    assert fused[3] is None and blas[3] is None
    for name, f, b, t, bt in zip(("out", "h_n", "c_n"), fused, blas, train, blas_train):
        np.testing.assert_allclose(f, b, err_msg="vs BLAS " + name, **TOL)
        np.testing.assert_allclose(f, t, err_msg="vs training " + name, **TOL)
        np.testing.assert_allclose(f, bt, err_msg="vs BLAS training " + name, **TOL)


@needs_fused_rnn
def test_inference_packs_from_pack_min_rows_on(monkeypatch):
    rnn = bi_lstm()
    calls = count_packs(monkeypatch)
    on = seqtag.rnn.FUSED_STEP
    for n_rows, packs in ((PACK_MIN_ROWS - 1, 0), (PACK_MIN_ROWS, 4)):
        if n_rows < 1:
            continue
        lengths = [7] * (n_rows // 7) + ([n_rows % 7] if n_rows % 7 else [])
        packing = Packing(lengths)
        assert packing.n_rows == n_rows
        x = np.random.default_rng(0).standard_normal((n_rows, 8)).astype(F32)
        calls.clear()
        got = rnn.forward_packed(x, packing, keep=False)
        assert len(calls) == packs, n_rows
        monkeypatch.setattr(seqtag.rnn, "FUSED_STEP", False)
        ref = rnn.forward_packed(x, packing, keep=False)
        monkeypatch.setattr(seqtag.rnn, "FUSED_STEP", on)
        for a, b in zip(got[:3], ref[:3]):
            np.testing.assert_allclose(a, b, **TOL)


# ---- 6. forward_projected's checks of packed= ---------------------------------------------

@needs_fused_rnn
def test_forward_projected_refuses_malformed_packed():
    rnn = bi_lstm(hidden=16)
    table, row_ids, packing, _, _ = projected_case(rnn, [3, 2])
    projections = [rnn.input_projection(table, d) for d in range(2)]
    good = rnn.pack_recurrent()
    size = 4 * 16 * 16
    msg = exact(f"packed must be what pack_recurrent() returns: 4 contiguous float32 arrays "
                f"of {size} values")
    strided = np.zeros(2 * size, F32)[::2]
    assert strided.shape == (size,) and not strided.flags.c_contiguous
    bad = {
        "too few": good[:3],
        "too many": good + [good[0]],
        "float64": [good[0].astype(F64)] + good[1:],
        "wrong size": good[:3] + [np.zeros(size - 16, F32)],
        "2-d": good[:3] + [good[3].reshape(64, 16)],
        "non-contiguous": good[:3] + [strided],
        "not arrays": [p.tolist() for p in good],
        "one array": good[0],
    }
    for packed in bad.values():
        with pytest.raises(ValueError, match=msg):
            rnn.forward_projected(projections, row_ids, packing, packed=packed)
    # the well-formed ones pass, as a list or a tuple
    a = rnn.forward_projected(projections, row_ids, packing, packed=good)[0]
    b = rnn.forward_projected(projections, row_ids, packing, packed=tuple(good))[0]
    np.testing.assert_array_equal(a, b)


NOT_FUSED = {
    "gru": dict(cell="gru", hidden=16),
    "peephole": dict(cell="peephole", hidden=16),
    "float64": dict(cell="lstm", hidden=16, dtype=F64),
    "hidden20": dict(cell="lstm", hidden=20),
}


def not_fused_rnn(cell, hidden, dtype=F32):
    return RNN(cell, 8, hidden, num_layers=2, bidirectional=True, dtype=dtype)


@pytest.mark.parametrize("kind", NOT_FUSED)
def test_forward_projected_refuses_packed_where_the_step_does_not_run(kind):
    rnn = not_fused_rnn(**NOT_FUSED[kind])
    packing = Packing([3, 2])
    table = np.random.default_rng(0).standard_normal((4, 8)).astype(rnn.dtype)
    projections = [rnn.input_projection(table, d) for d in range(2)]
    row_ids = np.zeros(packing.n_rows, dtype=np.int64)
    H = rnn.hidden_size
    packed = [np.zeros(4 * H * H, F32) for _ in range(4)]
    with pytest.raises(ValueError, match=exact(NOT_FUSED_MSG)):
        rnn.forward_projected(projections, row_ids, packing, packed=packed)
    rnn.forward_projected(projections, row_ids, packing, packed=None)  # fine without


def test_forward_projected_refuses_packed_when_fused_step_switched_off(monkeypatch):
    monkeypatch.setattr(seqtag.rnn, "FUSED_STEP", False)
    rnn = bi_lstm(hidden=16)
    table, row_ids, packing, _, _ = projected_case(rnn, [3, 2])
    projections = [rnn.input_projection(table, d) for d in range(2)]
    packed = [numpy_pack(rnn.params[f"weight_hh_{k}"])
              for k in ("l0", "l0_reverse", "l1", "l1_reverse")]
    with pytest.raises(ValueError, match=exact(NOT_FUSED_MSG)):
        rnn.forward_projected(projections, row_ids, packing, packed=packed)


# ---- 7. RNN.fused_step and pack_recurrent -------------------------------------------------

@pytest.mark.parametrize("kind", NOT_FUSED)
def test_fused_step_is_off_where_it_does_not_apply(kind):
    rnn = not_fused_rnn(**NOT_FUSED[kind])
    assert rnn.fused_step is False
    assert rnn.pack_recurrent() is None


def test_fused_step_follows_the_module_switch(monkeypatch):
    rnn = bi_lstm(hidden=32)
    assert rnn.fused_step is bool(seqtag.rnn.FUSED_STEP)
    assert (rnn.pack_recurrent() is None) is (not seqtag.rnn.FUSED_STEP)
    monkeypatch.setattr(seqtag.rnn, "FUSED_STEP", FUSED)  # on wherever the CPU has it
    assert rnn.fused_step is bool(FUSED)
    assert (rnn.pack_recurrent() is None) is (not FUSED)
    monkeypatch.setattr(seqtag.rnn, "FUSED_STEP", False)
    assert rnn.fused_step is False
    assert rnn.pack_recurrent() is None


@needs_fused_rnn
def test_pack_recurrent_is_layer_major_in_the_step_layout():
    rnn = RNN("lstm", 8, 32, num_layers=3, bidirectional=True, seed=9)
    packed = rnn.pack_recurrent()
    names = [f"l{layer}{s}" for layer in range(3) for s in ("", "_reverse")]
    assert len(packed) == len(names)
    for p, k in zip(packed, names):
        assert p.dtype == F32 and p.shape == (4 * 32 * 32,) and p.flags.c_contiguous
        np.testing.assert_array_equal(p, numpy_pack(rnn.params[f"weight_hh_{k}"]))
    uni = RNN("lstm", 8, 16, num_layers=1, seed=1)
    assert uni.fused_step is True
    [p] = uni.pack_recurrent()
    np.testing.assert_array_equal(p, numpy_pack(uni.params["weight_hh_l0"]))


# ---- 8. ProjectionMemo keeps the packed weights until clear() -----------------------------

@needs_fused_rnn
def test_memo_keeps_packed_weights_until_clear():
    rnn = bi_lstm(hidden=32, seed=6)
    rng = np.random.default_rng(2)
    table = rng.standard_normal((40, rnn.input_size)).astype(F32)
    keys = [f"w{i}" for i in range(len(table))]
    inputs_of = lambda positions: table[positions]  # noqa: E731
    packing = Packing([6, 11, 4, 9])
    pick = rng.integers(0, len(table), packing.n_rows)

    memo = ProjectionMemo(rnn)
    assert memo.packed is None
    rows = memo.rows(keys, inputs_of)
    got = memo.forward(rows[pick], packing)
    assert isinstance(memo.packed, list) and len(memo.packed) == 4
    for p, k in zip(memo.packed, ("l0", "l0_reverse", "l1", "l1_reverse")):
        np.testing.assert_array_equal(p, numpy_pack(rnn.params[f"weight_hh_{k}"]))
    ref = rnn.forward_packed(table[pick], packing, keep=False)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, **TOL)
    kept = memo.packed
    memo.forward(rows[pick], packing)
    assert memo.packed is kept  # packed once, not per call

    # new recurrent weights (W_ih unchanged: the memo's projections stay right)
    for k in ("l0", "l1_reverse"):
        w = rnn.params[f"weight_hh_{k}"]
        w += rng.uniform(-0.3, 0.3, w.shape).astype(F32)
    fresh = rnn.forward_packed(table[pick], packing, keep=False)
    assert np.abs(fresh[0] - ref[0]).max() > 1e-2
    # without clear(), the memo still runs the old packed W_hh
    stale = memo.forward(rows[pick], packing)
    assert np.abs(stale[0] - fresh[0]).max() > 1e-2
    np.testing.assert_allclose(stale[0], got[0], **TOL)

    memo.clear()
    assert memo.packed is None and len(memo) == 0
    rows = memo.rows(keys, inputs_of)
    after = memo.forward(rows[pick], packing)
    assert memo.packed is not None and memo.packed is not kept
    for a, b in zip(after, fresh):
        np.testing.assert_allclose(a, b, **TOL)


def test_memo_packs_nothing_where_the_step_does_not_run(monkeypatch):
    monkeypatch.setattr(seqtag.rnn, "FUSED_STEP", False)
    rnn = bi_lstm(hidden=16)
    table = np.random.default_rng(0).standard_normal((5, 8)).astype(F32)
    memo = ProjectionMemo(rnn)
    rows = memo.rows(["a", "b", "c", "d", "e"], lambda positions: table[positions])
    packing = Packing([3, 2])
    pick = np.array([0, 4, 1, 3, 2])
    out = memo.forward(rows[pick], packing)
    assert memo.packed is None
    ref = rnn.forward_packed(table[pick], packing, keep=False)
    for a, b in zip(out, ref):
        np.testing.assert_allclose(a, b, **TOL)


# ---- 9. SEQTAG_FUSED_STEP=0 ---------------------------------------------------------------

def test_environment_switch_turns_the_fused_step_off():
    code = ("import seqtag.rnn, seqtag._core as c; "
            "print(seqtag.rnn.FUSED_STEP, c.fused_step_available())")
    env = {k: v for k, v in os.environ.items() if k != "SEQTAG_FUSED_STEP"}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")

    def run(extra):
        r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**env, **extra},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    assert run({"SEQTAG_FUSED_STEP": "0"}) == ["False", str(FUSED)]
    assert run({}) == [str(FUSED), str(FUSED)]  # unset: on wherever the CPU has it
    assert run({"SEQTAG_FUSED_STEP": "1"}) == [str(FUSED), str(FUSED)]


# ---- 10. saturated gates -------------------------------------------------------------------

@needs_fused
@pytest.mark.parametrize("reverse", [False, True])
def test_extreme_preactivations(reverse):
    H = 32
    rng = np.random.default_rng(5 + reverse)
    packing = Packing(list(range(1, 14)))
    V = 50
    xproj = (100 * rng.choice([-1.0, 1.0], (V, 4 * H))).astype(F32)
    xproj[V // 2:] *= rng.uniform(0, 1, (V - V // 2, 4 * H)).astype(F32)  # and in between
    row_ids = rng.integers(0, V, packing.n_rows).astype(np.int64)
    w_hh = rng.uniform(-1, 1, (4 * H, H)).astype(F32)
    h0 = rng.uniform(-1, 1, (packing.batch, H)).astype(F32)
    c0 = (50 * rng.standard_normal((packing.batch, H))).astype(F32)
    h0[::2] = 0
    blas = run_infer(xproj, row_ids, w_hh, packing, reverse, h0, c0, None)
    fused = run_infer(xproj, row_ids, w_hh, packing, reverse, h0, c0, numpy_pack(w_hh))
    ref = reference_lstm(xproj, row_ids, w_hh, packing, reverse, h0, c0)
    assert np.abs(xproj).max() == 100 and (np.abs(xproj) == 100).mean() >= 0.5
    for name, f, b, r in zip(("out", "h", "c"), fused, blas, ref):
        assert not np.isnan(f).any() and np.isfinite(f).all(), name
        np.testing.assert_allclose(f, b, err_msg="fused vs BLAS " + name, **TOL)
        np.testing.assert_allclose(f, r, err_msg="fused vs float64 " + name, **TOL)
    for h in (fused[0], fused[1], blas[0], blas[1]):
        assert np.abs(h).max() <= 1.0
    assert np.abs(fused[0]).max() > 0.99  # the gates did saturate
