"""The fused float32 GRU inference step (csrc/gru_step.h, AVX-512 and AVX2 kernels):
_core.gru_packed_size, _core.gru_pack_w_hh, _core.gru_infer(..., packed=...) and
RNN.fused_gru_step, which the raw-text front end's character model runs.

The fused step must give what the BLAS path gives (the same arithmetic up to the order of
the recurrent product's sums), what a float64 reference gives, and the same bits with
either kind of kernel (the same polynomials, FMAs and order of sums in 16 or 8 lanes: a
model segments text alike on any CPU).  Every test runs once per kind of kernel the CPU
has; any H runs, the last block of units read and written through lane masks, and every
buffer the kernel writes is followed by sentinels that must survive.
"""

import itertools
import re

import numpy as np
import pytest

import seqtag.runtime
from conftest import fused_kernel_fixture, import_torch
from kernel_buffers import (LENGTH_SETS, SENTINEL, assert_guards, guarded, lanes,
                            packed_layout)
from seqtag import _core
from seqtag.packing import Packing
from seqtag.rnn import RNN

F32, F64 = np.float32, np.float64
kernels = fused_kernel_fixture()
needs_fused = pytest.mark.skipif(
    not _core.fused_step_available(),
    reason="no AVX2 or AVX-512 on this CPU (or a build without them): the fused GRU step "
           "never runs")
TOL = dict(rtol=1e-5, atol=1e-5)
ODD_H = [1, 5, 9, 20, 33, 100]


def numpy_pack(w_hh, L=None):
    """The documented layout (kernel_buffers.packed_layout) of a GRU's W_hh for the
    kernels called now (L = lanes()), zeros up to gru_packed_size(H)."""
    return packed_layout(w_hh, 3, L or lanes(), _core.gru_packed_size(w_hh.shape[1]))


def case(H, lengths, with_ids, seed, states=True):
    """xproj, row_ids, w_hh, b_hh, packing, h0 (nonzero for about half the sequences)."""
    rng = np.random.default_rng(seed)
    packing = Packing(lengths)
    B, N = packing.batch, packing.n_rows
    V = 37 if with_ids else N
    xproj = rng.standard_normal((V, 3 * H)).astype(F32)
    row_ids = rng.integers(0, V, N).astype(np.int64) if with_ids else None
    w_hh = (rng.uniform(-1, 1, (3 * H, H)) * 2 / np.sqrt(H)).astype(F32)
    b_hh = rng.standard_normal(3 * H).astype(F32)
    h0 = rng.standard_normal((B, H)).astype(F32)
    h0[rng.permutation(B)[:B // 2]] = 0
    if not states:
        h0[:] = 0
    return xproj, row_ids, w_hh, b_hh, packing, h0


def run_infer(xproj, row_ids, w_hh, b_hh, packing, reverse, h0, packed):
    """_core.gru_infer with out a column view of a wider array (at an odd offset);
    (out, h).  Nothing outside the view, and nothing past h, the scratch or the wide
    array, may be written."""
    H, dtype = w_hh.shape[1], xproj.dtype
    h, h_guard = guarded(h0.shape, h0, dtype)
    rec, rec_guard = guarded((packing.batch, 3 * H), np.nan, dtype)
    gates, gates_guard = guarded((packing.batch, 3 * H), np.nan, dtype)
    wide, wide_guard = guarded((packing.n_rows, 2 * H + 5), SENTINEL, dtype)
    lo = H + 3
    out = wide[:, lo:lo + H]
    _core.gru_infer(xproj, row_ids, w_hh, b_hh, packing.batch_sizes, reverse, h, rec, gates,
                    out, packed)
    assert (np.concatenate([wide[:, :lo], wide[:, lo + H:]], axis=1) == SENTINEL).all()
    assert_guards({"h": h_guard, "rec": rec_guard, "gates": gates_guard, "out": wide_guard},
                  "gru_infer")
    return out.copy(), h.copy()


def reference_gru(xproj, row_ids, w_hh, b_hh, packing, reverse, h0):
    """float64, sequence by sequence: PyTorch's GRU from the input pre-activations."""
    H = w_hh.shape[1]
    x = np.asarray(xproj, F64)[row_ids] if row_ids is not None else np.asarray(xproj, F64)
    w, b = np.asarray(w_hh, F64), np.asarray(b_hh, F64)
    flat = packing.flat_index()  # packed row -> position in the sequences laid end to end
    by_flat = np.empty_like(x)
    by_flat[flat] = x
    out_flat = np.empty((packing.n_rows, H))
    h_n = np.empty((packing.batch, H))
    starts = np.cumsum([0] + packing.lengths.tolist())
    for rank, seq in enumerate(packing.order):  # ranks: the sequences longest first
        h = np.asarray(h0[rank], F64).copy()
        steps = range(starts[seq], starts[seq + 1])
        for i in (reversed(steps) if reverse else steps):
            s = w @ h + b
            r = 1 / (1 + np.exp(-(by_flat[i, :H] + s[:H])))
            z = 1 / (1 + np.exp(-(by_flat[i, H:2 * H] + s[H:2 * H])))
            n = np.tanh(by_flat[i, 2 * H:] + r * s[2 * H:])
            h = (1 - z) * n + z * h
            out_flat[i] = h
        h_n[rank] = h
    return out_flat[flat], h_n


def test_gru_packed_size():
    for H in (1, 5, 15, 16, 17, 20, 33, 48, 100, 128):
        assert _core.gru_packed_size(H) == 3 * H * -(-H // 16) * 16, H
    assert [_core.gru_packed_size(H) for H in (1, 16, 17, 48)] == [48, 768, 1632, 6912]


@pytest.mark.skipif(not _core.fused_step_available(), reason="no fused kernels to pack for")
@pytest.mark.parametrize("H", [1, 8, 16, 20, 33, 48])
def test_gru_pack_w_hh_layout(H):
    L = lanes()
    w_hh = np.random.default_rng(H).standard_normal((3 * H, H)).astype(F32)
    packed = np.full(_core.gru_packed_size(H), np.nan, dtype=F32)
    _core.gru_pack_w_hh(w_hh, packed)
    np.testing.assert_array_equal(packed, numpy_pack(w_hh, L))
    assert (packed != 0).sum() == w_hh.size
    U = -(-H // L)
    for u, k, q, l in [(0, 0, 0, 0), (U - 1, H - 1, 2, (H - 1) % L), (0, H // 2, 1, 0)]:
        assert packed[((u * H + k) * 3 + q) * L + l] == w_hh[q * H + L * u + l, k]


@pytest.mark.skipif(not _core.fused_step_available(), reason="no fused kernels to pack for")
def test_gru_pack_w_hh_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="^" + re.escape("seqtag._core: gru_pack_w_hh shapes")
                       + "$"):
        _core.gru_pack_w_hh(np.zeros((12, 4), F32), np.zeros(_core.gru_packed_size(5), F32))
    with pytest.raises(ValueError, match="gru_pack_w_hh shapes"):
        _core.gru_pack_w_hh(np.zeros((16, 4), F32), np.zeros(_core.gru_packed_size(4), F32))


CASES = list(itertools.product([16, 48, 64] + ODD_H, LENGTH_SETS, [False, True],
                               [False, True]))


@needs_fused
@pytest.mark.parametrize("H, lengths, reverse, with_ids", CASES,
                         ids=lambda v: str(v) if not isinstance(v, bool) else None)
def test_gru_infer_fused_equals_blas_and_reference(H, lengths, reverse, with_ids):
    xproj, row_ids, w_hh, b_hh, packing, h0 = case(H, LENGTH_SETS[lengths], with_ids,
                                                   seed=H + 2 * reverse + with_ids)
    before = xproj.copy(), w_hh.copy(), b_hh.copy()
    packed = numpy_pack(w_hh)
    blas = run_infer(xproj, row_ids, w_hh, b_hh, packing, reverse, h0, None)
    fused = run_infer(xproj, row_ids, w_hh, b_hh, packing, reverse, h0, packed)
    ref = reference_gru(xproj, row_ids, w_hh, b_hh, packing, reverse, h0)
    for name, f, b, r in zip(("out", "h"), fused, blas, ref):
        assert np.isfinite(f).all(), name
        np.testing.assert_allclose(f, b, err_msg=name, **TOL)
        np.testing.assert_allclose(f, r, err_msg=name, **TOL)
        np.testing.assert_allclose(b, r, err_msg="blas " + name, **TOL)
    for a, b in zip(before, (xproj, w_hh, b_hh)):  # inputs are only read
        np.testing.assert_array_equal(a, b)
    # the product matters: with W_hh zero packed the result is another one
    zero = run_infer(xproj, row_ids, w_hh, b_hh, packing, reverse, h0, np.zeros_like(packed))
    assert np.abs(zero[0] - fused[0]).max() > 1e-2
    # every sequence from a zero state: the first step multiplies nothing
    z = np.zeros_like(h0)
    blas = run_infer(xproj, row_ids, w_hh, b_hh, packing, reverse, z, None)
    fused = run_infer(xproj, row_ids, w_hh, b_hh, packing, reverse, z, packed)
    for name, f, b in zip(("out", "h"), fused, blas):
        np.testing.assert_allclose(f, b, err_msg="zero states " + name, **TOL)


@pytest.mark.skipif(len(_core.fused_step_isas()) < 2,
                    reason="one kind of fused kernel on this CPU: nothing to compare")
@pytest.mark.parametrize("H", [5, 16, 17, 48, 100])
def test_avx512_and_avx2_steps_give_the_same_bits(H):
    xproj, row_ids, w_hh, b_hh, packing, h0 = case(H, LENGTH_SETS["ragged11"] * 3, True,
                                                   seed=H)
    got = []
    for isa in ("avx512", "avx2"):
        seqtag.runtime.set_fused_step(isa)
        assert seqtag.runtime.fused_step_isa() == isa
        packed = np.empty(_core.gru_packed_size(H), F32)
        _core.gru_pack_w_hh(w_hh, packed)
        got.append(run_infer(xproj, row_ids, w_hh, b_hh, packing, True, h0, packed))
    for a, b in zip(*got):
        np.testing.assert_array_equal(a, b)


def test_gru_infer_refuses_packed_with_float64():
    xproj, _, w_hh, b_hh, packing, h0 = case(5, [3, 2], False, seed=0)
    with pytest.raises(ValueError, match="packed weights need float32"):
        run_infer(xproj.astype(F64), None, w_hh.astype(F64), b_hh.astype(F64), packing, False,
                  h0.astype(F64), np.zeros(_core.gru_packed_size(5), F32))


@needs_fused
@pytest.mark.parametrize("size", [-16, 16])
def test_gru_infer_refuses_packed_of_wrong_size(size):
    xproj, _, w_hh, b_hh, packing, h0 = case(5, [3, 2], False, seed=0)
    with pytest.raises(ValueError, match="^" + re.escape(
            "seqtag._core: packed weights need float32, gru_pack_w_hh's size and AVX2 or "
            "AVX-512") + "$"):
        run_infer(xproj, None, w_hh, b_hh, packing, False, h0,
                  np.zeros(_core.gru_packed_size(5) + size, F32))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("hidden", [48, 20])
def test_forward_projected_gru_matches_torch_with_a_head(hidden, threads):
    """What the front end's character model runs: a bidirectional GRU from per-id input
    tables with a linear head, against torch.nn.GRU with the same weights."""
    torch = import_torch()
    rng = np.random.default_rng(hidden)
    rnn = RNN("gru", 6, hidden, bidirectional=True, seed=hidden, threads=threads)
    assert rnn.fused_gru_step == seqtag.runtime.fused_step_enabled()
    embedding = rng.standard_normal((11, 6)).astype(F32)
    head = (rng.standard_normal((6, 2 * hidden)).astype(F32), rng.standard_normal(6)
            .astype(F32))
    lengths = [40, 1, 17, 33, 2, 40, 9]
    packing = Packing(lengths)
    ids_flat = rng.integers(0, 11, sum(lengths))
    tables = [rnn.input_projection(embedding, d) for d in range(2)]
    logits, _, _ = rnn.forward_projected(tables, ids_flat[packing.flat_index()], packing,
                                         head=head, states=False)
    module = torch.nn.GRU(6, hidden, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for d, suffix in enumerate(("", "_reverse")):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(module, f"{name}_l0{suffix}").copy_(torch.from_numpy(
                    rnn.params[f"{name}_l0{suffix}"].copy()))
        starts = np.cumsum([0] + lengths)
        for k, n in enumerate(lengths):
            x = torch.from_numpy(embedding[ids_flat[starts[k]:starts[k + 1]]])[None]
            out, _ = module(x)
            expected = out[0].numpy() @ head[0].T + head[1]
            got = np.empty_like(expected)
            rows = np.flatnonzero(np.isin(packing.flat_index(),
                                          np.arange(starts[k], starts[k + 1])))
            got[packing.flat_index()[rows] - starts[k]] = logits[rows]
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# ---- RNN: pack_recurrent, forward_projected(packed=...), the memo, the front end's model ----

needs_fused_rnn = pytest.mark.skipif(
    not seqtag.runtime.fused_step_enabled(),
    reason="no AVX2 or AVX-512 on this CPU (or a build without them), or SEQTAG_FUSED_STEP=0")
NOT_FUSED_MSG = ("packed weights were given but this RNN does not run the fused step "
                 "(see RNN.fused_step)")


def projected(rnn, lengths, seed=0, vocabulary=13):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((vocabulary, rnn.input_size)).astype(rnn.dtype)
    packing = Packing(lengths)
    row_ids = rng.integers(0, vocabulary, packing.n_rows).astype(np.int64)
    return [rnn.input_projection(table, d) for d in range(rnn.num_directions)], row_ids, packing


@needs_fused_rnn
@pytest.mark.parametrize("hidden", [5, 20, 48])
def test_pack_recurrent_gives_the_gru_layout_of_every_layer_and_direction(hidden):
    rnn = RNN("gru", 6, hidden, num_layers=2, bidirectional=True, seed=hidden)
    assert rnn.fused_gru_step and not rnn.fused_step
    packed = rnn.pack_recurrent()
    assert len(packed) == 4
    for p, k in zip(packed, ("l0", "l0_reverse", "l1", "l1_reverse")):
        assert p.dtype == F32 and p.shape == (_core.gru_packed_size(hidden),)
        np.testing.assert_array_equal(p, numpy_pack(rnn.params[f"weight_hh_{k}"]))


def test_gru_packs_nothing_with_the_fused_step_switched_off_or_in_float64(monkeypatch):
    assert RNN("gru", 4, 8, dtype=F64).pack_recurrent() is None
    assert RNN("gru", 4, 8, dtype=F64).fused_gru_step is False
    monkeypatch.setattr(seqtag.runtime, "_fused_override", False)
    rnn = RNN("gru", 4, 8, bidirectional=True)
    assert rnn.fused_gru_step is False and rnn.pack_recurrent() is None
    projections, row_ids, packing = projected(rnn, [3, 2])
    packed = [np.zeros(_core.gru_packed_size(8), F32) for _ in range(2)]
    with pytest.raises(ValueError, match="^" + re.escape(NOT_FUSED_MSG) + "$"):
        rnn.forward_projected(projections, row_ids, packing, packed=packed)


@needs_fused_rnn
def test_forward_projected_refuses_an_lstm_layout_for_a_gru():
    rnn = RNN("gru", 4, 16, bidirectional=True)
    projections, row_ids, packing = projected(rnn, [3, 2])
    lstm_sized = [np.zeros(_core.packed_w_hh_size(16), F32) for _ in range(2)]
    with pytest.raises(ValueError, match="^" + re.escape(
            "packed must be what pack_recurrent() returns: 2 contiguous float32 arrays of "
            f"{_core.gru_packed_size(16)} values") + "$"):
        rnn.forward_projected(projections, row_ids, packing, packed=lstm_sized)


@needs_fused_rnn
@pytest.mark.parametrize("threads", [1, 2])
def test_a_gru_call_takes_the_fused_step_from_pack_min_rows_on_or_with_packed_weights(threads):
    """Fewer than PACK_MIN_ROWS rows without packed weights: the BLAS path (packing would
    cost more than it saves); with the caller's packed weights, or from PACK_MIN_ROWS
    rows on, the fused step, whose rows are each computed on their own: a sentence gives
    the same bits alone as in a batch (one layer, as the front end's: a later layer's
    input product goes through BLAS, whose rounding may depend on the rows)."""
    from seqtag.rnn import PACK_MIN_ROWS
    rnn = RNN("gru", 6, 20, bidirectional=True, seed=3, threads=threads)
    packed = rnn.pack_recurrent()
    small = [5, 3]
    assert sum(small) < PACK_MIN_ROWS
    projections, row_ids, packing = projected(rnn, small)
    blas = rnn.forward_projected(projections, row_ids, packing)[0]
    fused = rnn.forward_projected(projections, row_ids, packing, packed=packed)[0]
    np.testing.assert_allclose(fused, blas, **TOL)
    seqtag.runtime.set_fused_step(False)
    try:
        assert np.array_equal(rnn.forward_projected(projections, row_ids, packing)[0], blas)
    finally:
        seqtag.runtime.set_fused_step(None)
    # the same two sentences in a batch of more rows, without packed weights: fused, and
    # their rows are the small call's with packed weights, bit for bit
    big_lengths = small + [9, 7, 4]
    rng = np.random.default_rng(1)
    big_ids = np.concatenate([row_ids[Packing(small).flat_index().argsort()],
                              rng.integers(0, 13, 20)])
    big = Packing(big_lengths)
    out = rnn.forward_projected(projections, big_ids[big.flat_index()], big)[0]
    flat = np.empty_like(out)
    flat[big.flat_index()] = out
    mine = np.empty_like(fused)
    mine[packing.flat_index()] = fused
    np.testing.assert_array_equal(flat[:sum(small)], mine)


@needs_fused_rnn
def test_the_memo_keeps_a_grus_packed_weights():
    from seqtag.memo import ProjectionMemo
    rnn = RNN("gru", 6, 20, bidirectional=True, seed=2)
    memo = ProjectionMemo(rnn)
    rng = np.random.default_rng(0)
    keys = [f"w{k}" for k in range(11)]
    inputs = rng.standard_normal((11, 6)).astype(F32)
    rows = memo.rows(keys, lambda positions: inputs[positions])
    packing = Packing([2, 1])  # 3 rows: the BLAS path unless packed weights are given
    ids = rows[[3, 4, 5]]
    got = memo.forward(ids, packing)[0]
    assert memo.packed is not None and memo.packed[0] == seqtag.runtime.fused_step_isa()
    tables = [rnn.input_projection(inputs, d) for d in range(2)]
    want = rnn.forward_projected(tables, np.array([3, 4, 5]), packing,
                                 packed=rnn.pack_recurrent())[0]
    np.testing.assert_array_equal(got, want)


@needs_fused_rnn
def test_the_front_ends_model_scores_a_short_text_as_a_long_one():
    """CharTagger keeps its packed W_hh: a one-shot `seqtag tag "Hi."` (fewer characters
    than PACK_MIN_ROWS) runs the fused step too, and its characters' scores are those of
    the same characters inside a longer batch, bit for bit."""
    from seqtag.segment import CharTagger
    model = CharTagger(20, dim=6, hidden=20, cell="gru", seed=1)
    rng = np.random.default_rng(4)
    short = rng.integers(0, 20, 5)
    long = rng.integers(0, 20, 40)
    alone = model.logits(short, Packing([5]))
    assert model._packed is not None and model._packed[1] is not None
    both = Packing([5, 40])
    ids = np.concatenate([short, long])[both.flat_index()]
    out = model.logits(ids, both)
    flat = np.empty_like(out)
    flat[both.flat_index()] = out
    np.testing.assert_array_equal(flat[:5], alone)
    model.changed()
    assert model._packed is None
