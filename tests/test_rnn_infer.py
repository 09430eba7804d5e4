"""The inference path of the recurrent layers: forward_packed(keep=False) (lstm_infer),
input_projection and forward_projected, and the compiled lstm_infer's own checks.

keep=False must give what keep=True gives (the training forward, itself checked against
PyTorch in test_rnn_torch.py), and what torch.nn.LSTM gives with the same weights.
"""

import itertools
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import import_torch
from rnn_cases import make_case
from seqtag import _core
from seqtag.packing import Packing
from seqtag.rnn import RNN

REPO_ROOT = Path(__file__).resolve().parents[1]
F32, F64 = np.float32, np.float64
LENGTHS = [[1], [2, 5, 1, 4], [7, 3, 1], [4, 4], [3, 6, 6, 2, 1, 5]]


def close(ours, ref, dtype, what=""):
    """float64: 1e-12 absolute; float32: the rounding of a different product order."""
    assert ours.shape == ref.shape, what
    assert ours.dtype == dtype, what
    if dtype == F64:
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12, err_msg=what)
    else:
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6, err_msg=what)


def inputs(rnn, lengths, seed=1, states=True):
    """Packed rows x and random h0, c0 (or None) for `lengths`."""
    rng = np.random.default_rng(seed)
    packing = Packing(lengths)
    x = rng.standard_normal((packing.n_rows, rnn.input_size)).astype(rnn.dtype)
    h0 = c0 = None
    if states:
        shape = (rnn.num_layers * rnn.num_directions, len(lengths), rnn.hidden_size)
        h0 = rng.standard_normal(shape).astype(rnn.dtype)
        c0 = rng.standard_normal(shape).astype(rnn.dtype) if rnn.cell != "gru" else None
    return x, packing, h0, c0


# ---- forward_packed(keep=False) against keep=True -----------------------------------------

INFER_CASES = list(itertools.product(["lstm", "peephole"], [F32, F64], [1, 2], [False, True],
                                     range(len(LENGTHS)), [False, True], [1, 2]))


def infer_id(case):
    cell, dtype, layers, bi, k, states, threads = case
    return (f"{cell}-{dtype.__name__}-L{layers}-{'bi' if bi else 'uni'}-len{LENGTHS[k]}"
            f"-{'h0c0' if states else 'zeros'}-t{threads}")


@pytest.mark.parametrize("case", INFER_CASES, ids=infer_id)
def test_inference_equals_training_forward(case):
    cell, dtype, layers, bi, k, states, threads = case
    rnn = RNN(cell, 4, 3, num_layers=layers, bidirectional=bi, dtype=dtype, seed=layers + k,
              threads=threads)
    x, packing, h0, c0 = inputs(rnn, LENGTHS[k], seed=k, states=states)
    h0_copy = None if h0 is None else h0.copy()
    ref_out, ref_h, ref_c, ref_cache = rnn.forward_packed(x, packing, h0, c0, keep=True)
    out, h_n, c_n, cache = rnn.forward_packed(x, packing, h0, c0, keep=False)
    assert cache is None and ref_cache is not None
    close(out, ref_out, dtype, "out")
    close(h_n, ref_h, dtype, "h_n")
    close(c_n, ref_c, dtype, "c_n")
    assert out.shape == (packing.n_rows, rnn.output_size)
    assert h_n.shape == c_n.shape == (layers * rnn.num_directions, len(LENGTHS[k]), 3)
    if h0 is not None:  # the caller's states are inputs only
        np.testing.assert_array_equal(h0, h0_copy)
    # the states really enter: with zeros instead, the result is another one
    if states:
        other = rnn.forward_packed(x, packing, keep=False)[0]
        assert np.abs(other - out).max() > 1e-3


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("bi", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("hidden", [3, 17, 48])
def test_gru_inference_matches_training_forward(bi, threads, dtype, hidden):
    """Without the fused kernels, bit for bit, float32 included: both run fastmath.h's
    seqtag_gru_row_f32 (H = 17 and 48 through its vectorised body, 48 the front end's).
    float32 inference with them (csrc/gru_step.h) is the same up to the order of the
    product's sums, and bit for bit the same with either kind of kernel."""
    import seqtag.runtime
    rnn = RNN("gru", 4, hidden, num_layers=2, bidirectional=bi, dtype=dtype,
              threads=threads)
    fused = rnn.fused_gru_step
    assert fused == (dtype is F32 and seqtag.runtime.fused_step_enabled())
    for k, lengths in enumerate(LENGTHS):
        x, packing, h0, _ = inputs(rnn, lengths, seed=k)
        ref = rnn.forward_packed(x, packing, h0, keep=True)
        got = rnn.forward_packed(x, packing, h0, keep=False)
        assert got[2] is None and got[3] is None
        if fused:
            np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[1], ref[1], rtol=1e-5, atol=1e-6)
            kernels = seqtag.runtime.fused_step_isa()  # the fixture's: put back after
            with_other = []
            try:
                for isa in _core.fused_step_isas():
                    seqtag.runtime.set_fused_step(isa)
                    with_other.append(rnn.forward_packed(x, packing, h0, keep=False))
                seqtag.runtime.set_fused_step(False)
                blas = rnn.forward_packed(x, packing, h0, keep=False)
            finally:
                seqtag.runtime.set_fused_step(kernels)
            for other in with_other:
                np.testing.assert_array_equal(other[0], got[0])
                np.testing.assert_array_equal(other[1], got[1])
            np.testing.assert_array_equal(blas[0], ref[0])
            np.testing.assert_array_equal(blas[1], ref[1])
        else:
            np.testing.assert_array_equal(got[0], ref[0])
            np.testing.assert_array_equal(got[1], ref[1])


def test_inference_with_dropout_and_training_flag_is_still_a_forward():
    """keep=False with training=True: the same dropout masks as keep=True for one rng."""
    rnn = RNN("lstm", 4, 3, num_layers=3, bidirectional=True, dropout=0.4, dtype=F64)
    x, packing, h0, c0 = inputs(rnn, [5, 2, 4])
    ref = rnn.forward_packed(x, packing, h0, c0, training=True,
                             rng=np.random.default_rng(3), keep=True)
    got = rnn.forward_packed(x, packing, h0, c0, training=True,
                             rng=np.random.default_rng(3), keep=False)
    for a, b in zip(got[:3], ref[:3]):
        close(a, b, F64)
    plain = rnn.forward_packed(x, packing, h0, c0, keep=False)[0]
    assert np.abs(plain - got[0]).max() > 1e-6  # dropout did apply


def test_read_only_and_row_strided_input_for_inference():
    rnn = RNN("peephole", 4, 3, num_layers=2, bidirectional=True, dtype=F32)
    x, packing, _, _ = inputs(rnn, [3, 1, 2], states=False)
    ref = rnn.forward_packed(x, packing, keep=False)[0]
    ro = x.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(rnn.forward_packed(ro, packing, keep=False)[0], ref)
    wide = np.zeros((x.shape[0], 7), F32)
    wide[:, 2:6] = x
    np.testing.assert_array_equal(rnn.forward_packed(wide[:, 2:6], packing, keep=False)[0],
                                  ref)


class CountingCore:
    """seqtag._core with its entry points' calls counted."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        func = getattr(_core, name)
        if not callable(func):
            return func

        def counted(*args):
            self.calls.append(name)
            return func(*args)
        return counted


@pytest.mark.parametrize("cell", ["lstm", "peephole", "gru"])
def test_inference_runs_the_inference_kernel_in_every_layer(cell, monkeypatch):
    import seqtag.rnn
    rnn = RNN(cell, 4, 3, num_layers=3, bidirectional=True)
    x, packing, h0, c0 = inputs(rnn, [3, 1, 2])
    core = CountingCore()
    monkeypatch.setattr(seqtag.rnn, "_core", core)
    rnn.forward_packed(x, packing, h0, c0, keep=False)
    kernel = "gru_infer" if cell == "gru" else "lstm_infer"
    # 6 rows: fewer than PACK_MIN_ROWS, so nothing is packed for a fused step
    assert sorted(set(core.calls)) == sorted(["input_projection", kernel])
    assert core.calls.count(kernel) == 6  # 3 layers, 2 directions
    core.calls.clear()
    rnn.forward_packed(x, packing, h0, c0, keep=True)
    assert core.calls == [("gru" if cell == "gru" else "lstm") + "_forward"] * 6


# ---- keep=False against torch.nn.LSTM -----------------------------------------------------

TORCH_CASES = list(itertools.product([F32, F64], [1, 2], [False, True],
                                     [[7, 3, 1], [1], [2, 5, 1, 4]]))


@pytest.mark.parametrize("dtype, layers, bi, lengths", TORCH_CASES,
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_inference_matches_torch_lstm(dtype, layers, bi, lengths):
    torch = import_torch()
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    rnn, case = make_case("lstm", layers, bi, lengths, 3, dtype=dtype, seed=5)
    packing = Packing(case["lengths"])
    steps = case["x"].shape[1]
    out, h_n, c_n, _ = rnn.forward_packed(packing.pack(case["x"]), packing, case["h0"],
                                          case["c0"], keep=False)
    out = packing.unpack(out, steps)
    tdtype = torch.float64 if dtype == F64 else torch.float32
    module = torch.nn.LSTM(rnn.input_size, 3, num_layers=layers, bidirectional=bi,
                           batch_first=True, dtype=tdtype)
    module.load_state_dict({k: torch.tensor(v) for k, v in rnn.params.items()})
    packed = pack_padded_sequence(torch.tensor(case["x"]), torch.tensor(case["lengths"]),
                                  batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        ref, (ref_h, ref_c) = module(packed, (torch.tensor(case["h0"]),
                                              torch.tensor(case["c0"])))
    ref, _ = pad_packed_sequence(ref, batch_first=True, total_length=steps)
    tol = dict(rtol=0, atol=1e-10) if dtype == F64 else dict(rtol=1e-4, atol=1e-5)
    for ours, theirs in ((out, ref), (h_n, ref_h), (c_n, ref_c)):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs.numpy(), **tol)


@pytest.mark.parametrize("keep", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("zero_ranks", [[0], [1, 2], [3], [0, 1, 2, 3]],
                         ids=lambda v: "zero" + "".join(map(str, v)))
def test_initial_states_that_are_zero_for_some_sequences_only(keep, zero_ranks):
    """The steps skip the recurrent product of the rows that start from a zero state
    (csrc/common.pxi running_rows); an h0 that is zero for some sequences and not for
    others must still give torch's result in both directions."""
    torch = import_torch()
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    lengths = [5, 3, 5, 2]  # ranks by length: 0 and 2 start first, going in reverse
    rnn, case = make_case("lstm", 2, True, lengths, 3, dtype=F64, seed=9)
    h0 = case["h0"].copy()
    for b in zero_ranks:
        h0[:, b] = 0.0
    packing = Packing(lengths)
    steps = case["x"].shape[1]
    out, h_n, _, _ = rnn.forward_packed(packing.pack(case["x"]), packing, h0, case["c0"],
                                        keep=keep)
    module = torch.nn.LSTM(rnn.input_size, 3, num_layers=2, bidirectional=True,
                           batch_first=True, dtype=torch.float64)
    module.load_state_dict({k: torch.tensor(v) for k, v in rnn.params.items()})
    packed = pack_padded_sequence(torch.tensor(case["x"]), torch.tensor(lengths),
                                  batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        ref, (ref_h, _) = module(packed, (torch.tensor(h0), torch.tensor(case["c0"])))
    ref, _ = pad_packed_sequence(ref, batch_first=True, total_length=steps)
    np.testing.assert_allclose(packing.unpack(out, steps), ref.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(h_n, ref_h.numpy(), rtol=0, atol=1e-10)


def test_peephole_inference_matches_torch_reference():
    """The peephole cell against the torch reference of test_rnn_torch.py."""
    torch = import_torch()
    from test_rnn_torch import peephole_reference
    for dtype, tdtype in ((F64, torch.float64), (F32, torch.float32)):
        rnn, case = make_case("peephole", 2, True, [2, 5, 1, 4], 3, dtype=dtype, seed=2)
        packing = Packing(case["lengths"])
        steps = case["x"].shape[1]
        out, h_n, c_n, _ = rnn.forward_packed(packing.pack(case["x"]), packing, case["h0"],
                                              case["c0"], keep=False)
        params = {k: torch.tensor(v) for k, v in rnn.params.items()}
        ref = peephole_reference(params, torch.tensor(case["x"]), case["lengths"],
                                 torch.tensor(case["h0"]), torch.tensor(case["c0"]), 2, True)
        tol = dict(rtol=0, atol=1e-10) if dtype == F64 else dict(rtol=1e-4, atol=1e-5)
        for ours, theirs in zip((packing.unpack(out, steps), h_n, c_n), ref):
            np.testing.assert_allclose(ours, theirs.numpy(), **tol)


# ---- input_projection --------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "peephole"])
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("bi", [False, True])
def test_input_projection_is_x_w_ih_plus_both_biases(cell, dtype, bi):
    rnn = RNN(cell, 5, 3, num_layers=2, bidirectional=bi, dtype=dtype, seed=4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5)).astype(dtype)
    tol = dict(rtol=0, atol=1e-13) if dtype == F64 else dict(rtol=1e-5, atol=1e-6)
    results = []
    for d in range(rnn.num_directions):
        k = "l0" + ("_reverse" if d else "")
        p = {name: v.astype(F64) for name, v in rnn.params.items()}
        expected = x.astype(F64) @ p[f"weight_ih_{k}"].T + p[f"bias_ih_{k}"] + p[f"bias_hh_{k}"]
        got = rnn.input_projection(x, d)
        assert got.shape == (7, 12) and got.dtype == dtype
        np.testing.assert_allclose(got, expected, **tol)
        results.append(got)
    if bi:  # the directions have their own weights
        assert np.abs(results[0] - results[1]).max() > 1e-3
    np.testing.assert_array_equal(rnn.input_projection(x), results[0])  # direction=0 default
    np.testing.assert_array_equal(rnn.input_projection(x, np.int64(0)), results[0])


def test_input_projection_takes_read_only_and_row_strided_rows():
    rnn = RNN("lstm", 3, 2, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(F32)
    ref = rnn.input_projection(x, 1)
    ro = x.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(rnn.input_projection(ro, 1), ref)
    wide = np.zeros((4, 6), F32)
    wide[:, 1:4] = x
    np.testing.assert_array_equal(rnn.input_projection(wide[:, 1:4], 1), ref)




class TestInputProjectionErrors:
    def test_gru_projection_leaves_b_hh_to_the_reset_gate(self):
        rnn = RNN("gru", 3, 2, bidirectional=True, dtype=F64)
        x = np.random.default_rng(2).standard_normal((4, 3))
        for d, k in enumerate(("l0", "l0_reverse")):
            p = rnn.params
            np.testing.assert_allclose(rnn.input_projection(x, d),
                                       x @ p[f"weight_ih_{k}"].T + p[f"bias_ih_{k}"],
                                       rtol=0, atol=1e-12)

    @pytest.mark.parametrize("bi, direction, message", [
        (True, 2, "direction must be 0 or 1, got 2"),
        (True, -1, "direction must be 0 or 1, got -1"),
        (True, True, "direction must be 0 or 1, got True"),
        (True, 1.0, "direction must be 0 or 1, got 1.0"),
        (True, "1", "direction must be 0 or 1, got '1'"),
        (True, None, "direction must be 0 or 1, got None"),
        (False, 1, "direction must be 0, got 1"),
        (False, True, "direction must be 0, got True"),
        (False, False, "direction must be 0, got False"),
    ])
    def test_bad_direction(self, bi, direction, message):
        rnn = RNN("peephole", 3, 2, bidirectional=bi)
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            rnn.input_projection(np.zeros((2, 3), F32), direction)

    def test_wrong_dtype(self):
        rnn = RNN("lstm", 3, 2)
        with pytest.raises(ValueError, match=re.escape(
                "x has dtype float64 but the layer computes in float32; convert it with "
                ".astype(np.float32)")):
            rnn.input_projection(np.zeros((2, 3), F64))
        rnn64 = RNN("lstm", 3, 2, dtype=F64)
        with pytest.raises(ValueError, match=re.escape("x has dtype float32 but the layer "
                                                       "computes in float64")):
            rnn64.input_projection(np.zeros((2, 3), F32))

    @pytest.mark.parametrize("width", [1, 2, 4, 10])
    def test_wrong_width(self, width):
        rnn = RNN("lstm", 3, 2, bidirectional=True)
        with pytest.raises(ValueError, match=re.escape(
                f"x has {width} features per row, the layer expects input_size=3")):
            rnn.input_projection(np.zeros((2, width), F32), 1)

    def test_wrong_ndim_empty_and_not_an_array(self):
        rnn = RNN("lstm", 3, 2)
        with pytest.raises(ValueError, match=re.escape("x must have 2 dimensions, got shape (3,)")):
            rnn.input_projection(np.zeros(3, F32))
        with pytest.raises(ValueError, match=re.escape("empty batch: x has no rows")):
            rnn.input_projection(np.zeros((0, 3), F32))
        with pytest.raises(ValueError, match=re.escape("x must be a NumPy array, got list")):
            rnn.input_projection([[0.0, 0.0, 0.0]])


# ---- forward_projected -------------------------------------------------------------------

def table_case(cell, dtype, layers, bi, lengths, V=6, seed=0, states=True, threads=1):
    """An RNN, an embedding table E (V, D), row ids of the packed rows (with repeats) and
    the states."""
    rnn = RNN(cell, 4, 3, num_layers=layers, bidirectional=bi, dtype=dtype, seed=seed + 10,
              threads=threads)
    rng = np.random.default_rng(seed)
    packing = Packing(lengths)
    E = rng.standard_normal((V, 4)).astype(dtype)
    ids = rng.integers(0, V, packing.n_rows)
    h0 = c0 = None
    if states:
        shape = (layers * rnn.num_directions, len(lengths), 3)
        h0 = rng.standard_normal(shape).astype(dtype)
        c0 = rng.standard_normal(shape).astype(dtype)
    return rnn, E, ids, packing, h0, c0


PROJECTED_CASES = list(itertools.product(["lstm", "peephole", "gru"], [F32, F64], [1, 2],
                                         [False, True], [[1], [2, 5, 1, 4], [7, 3, 1]],
                                         [False, True]))


@pytest.mark.parametrize("cell, dtype, layers, bi, lengths, states", PROJECTED_CASES,
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_forward_projected_equals_inference_on_the_rows(cell, dtype, layers, bi, lengths,
                                                        states):
    rnn, E, ids, packing, h0, c0 = table_case(cell, dtype, layers, bi, lengths, states=states)
    if cell == "gru":
        c0 = None
    projections = [rnn.input_projection(E, d) for d in range(rnn.num_directions)]
    saved = [p.copy() for p in projections]
    out, h_n, c_n = rnn.forward_projected(projections, ids, packing, h0, c0)
    ref_out, ref_h, ref_c, _ = rnn.forward_packed(E[ids], packing, h0, c0, keep=False)
    close(out, ref_out, dtype, "out")
    close(h_n, ref_h, dtype, "h_n")
    if cell == "gru":
        assert c_n is None and ref_c is None
    else:
        close(c_n, ref_c, dtype, "c_n")
    for p, s in zip(projections, saved):  # the projections are read, never written
        np.testing.assert_array_equal(p, s)
    # states=False: the same out, no final states
    alone = rnn.forward_projected(projections, ids, packing, h0, c0, states=False)
    assert alone[1] is None and alone[2] is None
    np.testing.assert_array_equal(alone[0], out)
    # the row ids matter: other rows give another result
    shifted = rnn.forward_projected(projections, (ids + 1) % len(E), packing, h0, c0)[0]
    assert np.abs(shifted - out).max() > 1e-3


def test_forward_projected_on_two_threads_and_any_integer_ids():
    rnn, E, ids, packing, h0, c0 = table_case("peephole", F32, 2, True, [6, 2, 5, 1], V=9)
    projections = [rnn.input_projection(E, d) for d in (0, 1)]
    serial = rnn.forward_projected(projections, ids, packing, h0, c0)
    rnn.threads = 2
    threaded = rnn.forward_projected(tuple(projections), ids.astype(np.int32), packing, h0, c0)
    listed = rnn.forward_projected(projections, ids.tolist(), packing, h0, c0)
    for a, b, c in zip(serial, threaded, listed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("layers, bi, threads", [(1, False, 1), (1, True, 1), (2, True, 2),
                                                 (2, False, 2)])
def test_forward_projected_head_is_the_linear_layer_over_the_output(dtype, layers, bi,
                                                                    threads):
    rnn, E, ids, packing, h0, c0 = table_case("lstm", dtype, layers, bi, [6, 2, 5, 1], V=9,
                                              threads=threads)
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((5, rnn.output_size)).astype(dtype)
    bias = rng.standard_normal(5).astype(dtype)
    projections = [rnn.input_projection(E, d) for d in range(rnn.num_directions)]
    out, h_n, c_n = rnn.forward_projected(projections, ids, packing, h0, c0)
    logits, h_head, c_head = rnn.forward_projected(projections, ids, packing, h0, c0,
                                                   head=(weight, bias))
    close(logits, out @ weight.T + bias, dtype, "head output")
    np.testing.assert_array_equal(h_head, h_n)
    np.testing.assert_array_equal(c_head, c_n)


@pytest.mark.parametrize("head, message", [
    ((np.zeros((5, 6), F32),), "head must be a (weight, bias) pair"),
    ((np.zeros((5, 4), F32), np.zeros(5, F32)), "head weight has shape (5, 4), expected "
                                                "(n_out, 6)"),
    ((np.zeros((5, 6), F64), np.zeros(5, F32)), "head weight has dtype float64"),
    ((np.zeros((5, 6), F32), np.zeros(4, F32)), "head bias must be a float32 array of "
                                                "shape (5,)"),
    ((np.zeros((5, 6), F32), np.zeros(5, F64)), "head bias must be a float32 array of "
                                                "shape (5,)"),
])
def test_forward_projected_rejects_a_bad_head(head, message):
    rnn, E, ids, packing, h0, c0 = table_case("lstm", F32, 1, True, [3, 2])
    projections = [rnn.input_projection(E, d) for d in range(2)]
    with pytest.raises(ValueError, match=re.escape(message)):
        rnn.forward_projected(projections, ids, packing, head=head)


def test_forward_projected_float32_loosely_matches_float64():
    """The float32 path is a rounding of the float64 one (same weights)."""
    rnn64, E, ids, packing, h0, c0 = table_case("lstm", F64, 2, True, [5, 3, 4], V=7)
    rnn32 = RNN("lstm", 4, 3, num_layers=2, bidirectional=True, dtype=F32)
    rnn32.load_params(rnn64.params)
    out64 = rnn64.forward_projected([rnn64.input_projection(E, d) for d in (0, 1)], ids,
                                    packing, h0, c0)[0]
    E32 = E.astype(F32)
    out32 = rnn32.forward_projected([rnn32.input_projection(E32, d) for d in (0, 1)], ids,
                                    packing, h0.astype(F32), c0.astype(F32))[0]
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)


class TestForwardProjectedErrors:
    @pytest.fixture
    def setup(self):
        rnn, E, ids, packing, _, _ = table_case("lstm", F32, 2, True, [3, 2, 2], V=5)
        projections = [rnn.input_projection(E, d) for d in (0, 1)]
        return rnn, projections, ids, packing

    def test_valid_call_works(self, setup):
        rnn, projections, ids, packing = setup
        out, h_n, c_n = rnn.forward_projected(projections, ids, packing)
        assert out.shape == (7, 6) and h_n.shape == c_n.shape == (4, 3, 3)

    @pytest.mark.parametrize("count", [0, 1, 3])
    def test_wrong_number_of_projections(self, setup, count):
        rnn, projections, ids, packing = setup
        with pytest.raises(ValueError, match=re.escape(
                "projections must be a list of 2 arrays (one per direction)")):
            rnn.forward_projected((projections * 2)[:count], ids, packing)

    def test_projections_not_a_list(self, setup):
        rnn, projections, ids, packing = setup
        for bad in (np.stack(projections), projections[0], None):
            with pytest.raises(ValueError, match=re.escape(
                    "projections must be a list of 2 arrays (one per direction)")):
                rnn.forward_projected(bad, ids, packing)
        uni = RNN("lstm", 4, 3)
        with pytest.raises(ValueError, match=re.escape(
                "projections must be a list of 1 arrays (one per direction)")):
            uni.forward_projected(projections, ids, packing)

    def test_mismatched_shapes(self, setup):
        rnn, (p0, p1), ids, packing = setup
        for a, b in ((p0, p1[:4]), (p0[:, :11], p1), (p0, np.zeros((5, 13), F32))):
            with pytest.raises(ValueError, match=re.escape(
                    f"projections must all have shape (V, 12), got {[a.shape, b.shape]}")):
                rnn.forward_projected([a, b], ids, packing)

    def test_projection_dtype_and_ndim(self, setup):
        rnn, (p0, p1), ids, packing = setup
        with pytest.raises(ValueError, match=re.escape(
                "projections has dtype float64 but the layer computes in float32")):
            rnn.forward_projected([p0, p1.astype(F64)], ids, packing)
        with pytest.raises(ValueError, match=re.escape("projections must have 2 dimensions")):
            rnn.forward_projected([p0, p1[None]], ids, packing)

    @pytest.mark.parametrize("bad, described", [
        (np.zeros(6, np.int64), "int64 array of shape (6,)"),
        (np.zeros(8, np.int64), "int64 array of shape (8,)"),
        (np.zeros((7, 1), np.int64), "int64 array of shape (7, 1)"),
        (np.zeros(7, F64), "float64 array of shape (7,)"),
        (np.zeros(7, bool), "bool array of shape (7,)"),
        (None, "object array of shape ()"),
    ])
    def test_row_ids_wrong_length_or_dtype(self, setup, bad, described):
        rnn, projections, _, packing = setup
        with pytest.raises(ValueError, match=re.escape(
                f"row_ids must be 7 integers (one per packed row), got {described}")):
            rnn.forward_projected(projections, bad, packing)

    @pytest.mark.parametrize("position, value", [(0, -1), (6, -7), (3, 5), (6, 6),
                                                 (0, 2**40), (2, -(2**62))])
    def test_row_ids_out_of_range(self, setup, position, value):
        rnn, projections, ids, packing = setup
        bad = ids.copy()
        bad[position] = value
        with pytest.raises(ValueError, match=re.escape(
                "row_ids must lie in [0, 5) (the projections' rows)")):
            rnn.forward_projected(projections, bad, packing)

    def test_huge_unsigned_row_id(self, setup):
        rnn, projections, ids, packing = setup
        bad = ids.astype(np.uint64)
        bad[1] = 2**64 - 1  # -1 once cast to int64
        with pytest.raises(ValueError, match=re.escape("row_ids must lie in [0, 5)")):
            rnn.forward_projected(projections, bad, packing)

    def test_gru_takes_no_c0(self):
        rnn = RNN("gru", 4, 3, bidirectional=True)
        packing = Packing([2])
        with pytest.raises(ValueError, match="c0 is only for LSTM cells"):
            rnn.forward_projected([np.zeros((2, 9), F32)] * 2, [0, 1], packing,
                                  c0=np.zeros((2, 1, 3), F32))

    def test_not_a_packing_and_bad_states(self, setup):
        rnn, projections, ids, packing = setup
        with pytest.raises(ValueError, match=re.escape(
                "packing must be a seqtag.packing.Packing, got list")):
            rnn.forward_projected(projections, ids, [3, 2, 2])
        with pytest.raises(ValueError, match=re.escape(
                "h0 must have shape (4, 3, 3) (layers*directions, batch, hidden), "
                "got (4, 2, 3)")):
            rnn.forward_projected(projections, ids, packing, h0=np.zeros((4, 2, 3), F32))
        with pytest.raises(ValueError,
                           match=re.escape("c0 must be a NumPy array of dtype float32")):
            rnn.forward_projected(projections, ids, packing, c0=np.zeros((4, 3, 3), F64))

    @pytest.mark.parametrize("lengths", [[3, 0], [0]])
    def test_packing_with_an_empty_sequence(self, setup, lengths):
        # refused (by the kernel's own check: forward_projected does not check the lengths
        # itself as forward_packed does, so the message is seqtag._core's)
        rnn, projections, _, _ = setup
        packing = Packing(lengths)
        with pytest.raises(ValueError):
            rnn.forward_projected(projections, np.zeros(packing.n_rows, np.int64), packing)

    def test_refusal_writes_nothing(self, setup):
        rnn, projections, ids, packing = setup
        saved = [p.copy() for p in projections]
        bad = ids.copy()
        bad[-1] = 5
        with pytest.raises(ValueError):
            rnn.forward_projected(projections, bad, packing)
        for p, s in zip(projections, saved):
            np.testing.assert_array_equal(p, s)


# ---- the compiled kernel's last line of defence ------------------------------------------

KH, KB, KV = 3, 2, 4
K_BATCH_SIZES = np.array([2, 2, 1], np.int64)  # N = 5


def lstm_infer_args(dtype=F32, **kw):
    rng = np.random.default_rng(0)
    a = dict(xproj=rng.standard_normal((KV, 4 * KH)).astype(dtype),
             row_ids=np.array([0, 3, 1, 2, 3], np.int64),
             w_hh=rng.standard_normal((4 * KH, KH)).astype(dtype),
             batch_sizes=K_BATCH_SIZES, reverse=False, h=np.zeros((KB, KH), dtype),
             c=np.zeros((KB, KH), dtype), scratch=np.empty((KB, 4 * KH), dtype),
             out=np.zeros((5, KH), dtype), w_ci=None, w_cf=None, w_co=None)
    a.update(kw)
    return a


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("reverse", [False, True])
def test_core_lstm_infer_valid_call_equals_gathered_rows(dtype, reverse):
    a = lstm_infer_args(dtype, reverse=reverse)
    _core.lstm_infer(*a.values())
    b = lstm_infer_args(dtype, reverse=reverse)
    b["xproj"] = np.ascontiguousarray(b["xproj"][b["row_ids"]])
    b["row_ids"] = None  # row r reads xproj[r]
    _core.lstm_infer(*b.values())
    np.testing.assert_allclose(a["out"], b["out"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a["h"], b["h"], rtol=1e-6, atol=1e-7)
    assert np.abs(a["out"]).max() > 1e-3


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("value", [-1, KV, KV + 1, 2**40, -(2**62), 2**63 - 1])
@pytest.mark.parametrize("position", [0, 4])
def test_core_lstm_infer_out_of_range_row_ids(dtype, value, position):
    a = lstm_infer_args(dtype)
    a["row_ids"][position] = value
    before = {k: v.copy() for k, v in a.items() if k in ("h", "c", "out")}
    with pytest.raises(ValueError, match=re.escape("seqtag._core: row_ids out of range")):
        _core.lstm_infer(*a.values())
    for k, v in before.items():  # refused before any step ran
        np.testing.assert_array_equal(a[k], v)


@pytest.mark.parametrize("overrides, message", [
    (dict(xproj=np.zeros((KV, 4 * KH + 1), F32)), "weight shapes"),
    (dict(w_hh=np.zeros((4 * KH, KH + 1), F32)), "weight shapes"),
    (dict(scratch=np.zeros((KB - 1, 4 * KH), F32)), "buffer shapes"),
    (dict(scratch=np.zeros((KB, 4 * KH - 1), F32)), "buffer shapes"),
    (dict(out=np.zeros((4, KH), F32)), "buffer shapes"),
    (dict(out=np.zeros((5, KH - 1), F32)), "buffer shapes"),
    (dict(out=np.zeros((5, 2 * KH), F32)[:, ::2]), "out must have adjacent elements"),
    (dict(c=np.zeros((KB + 1, KH), F32)), "state shapes"),
    (dict(h=np.zeros((KB, KH + 1), F32)), "state shapes"),
    (dict(row_ids=np.zeros(4, np.int64)), "batch_sizes must add up"),
    (dict(row_ids=None), "batch_sizes must add up"),  # then N = V = 4, not 5
    (dict(batch_sizes=np.array([2, 3], np.int64)), "batch_sizes must be positive and nonincr"),
    (dict(w_ci=np.ones(KH, F32)), "peephole shapes"),
    (dict(w_ci=np.ones(KH, F32), w_cf=np.ones(KH, F32), w_co=np.ones(KH + 1, F32)),
     "peephole shapes"),
])
def test_core_lstm_infer_inconsistent_buffers(overrides, message):
    a = lstm_infer_args(F32, **overrides)
    with pytest.raises(ValueError, match=re.escape("seqtag._core: " + message)):
        _core.lstm_infer(*a.values())


def test_core_input_projection_checks():
    x, w, b = np.ones((3, 2), F32), np.ones((8, 2), F32), np.ones(8, F32)
    out = np.zeros((3, 8), F32)
    _core.input_projection(x, w, b, out)
    np.testing.assert_array_equal(out, np.full((3, 8), 3, F32))
    for args, message in [((x, np.ones((8, 3), F32), b, out), "weight shapes"),
                          ((x, w, np.ones(7, F32), out), "weight shapes"),
                          ((x, w, b, np.zeros((2, 8), F32)), "out shape"),
                          ((x, w, b, np.zeros((3, 9), F32)), "out shape"),
                          ((np.ones((3, 4), F32)[:, ::2], w, b, out), "x must have adjacent")]:
        with pytest.raises(ValueError, match=re.escape("seqtag._core: " + message)):
            _core.input_projection(*args)


OUT_OF_RANGE = """
import numpy as np
from seqtag import _core
H, B, V = 3, 2, 4
for value in (-1, V, 10**6, -10**12, 2**62):
    for dtype in (np.float32, np.float64):
        row_ids = np.array([0, 3, value, 2, 3], np.int64)
        try:
            _core.lstm_infer(np.ones((V, 4 * H), dtype), row_ids, np.ones((4 * H, H), dtype),
                             np.array([2, 2, 1], np.int64), False, np.zeros((B, H), dtype),
                             np.zeros((B, H), dtype), np.empty((B, 4 * H), dtype),
                             np.zeros((5, H), dtype), None, None, None)
        except ValueError as e:
            print("ValueError", e)
        else:
            print("accepted", value)
"""


def test_core_lstm_infer_out_of_range_never_crashes():
    """In a subprocess: an unchecked id would read far outside xproj (a crash at worst)."""
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(OUT_OF_RANGE)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 10, run.stdout + run.stderr
    assert all(line == "ValueError seqtag._core: row_ids out of range" for line in lines), \
        run.stdout


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("threads", [1, 2])
def test_forward_projected_reuses_its_workspace(cell, threads):
    """forward_projected(workspace=dict) gives the same results, bit for bit, as without
    one, call after call, in batches that grow and shrink; it keeps its inner arrays in
    the dict and reuses them (no new array while the batches fit), while what it returns
    is the caller's own (the next call does not write into it)."""
    rnn = RNN(cell, 5, 6, num_layers=3, bidirectional=True, dtype=F32, threads=threads)
    rng = np.random.default_rng(5)
    table = rng.standard_normal((30, 5)).astype(F32)
    projections = [rnn.input_projection(table, d) for d in range(2)]
    head = (rng.standard_normal((4, 12)).astype(F32), rng.standard_normal(4).astype(F32))
    workspace = {}
    kept = None
    results = []
    batches = [[7, 3, 1], [2, 9, 9, 4, 1], [1], [600, 500], [5, 5, 2, 8]]
    for k, lengths in enumerate(batches):
        packing = Packing(lengths)
        row_ids = rng.integers(0, 30, packing.n_rows)
        for keep_output in (False, True):
            want = rnn.forward_projected(projections, row_ids, packing, head=head,
                                         states=False, keep_output=keep_output)[0]
            got = rnn.forward_projected(projections, row_ids, packing, head=head,
                                        states=False, keep_output=keep_output,
                                        workspace=workspace)[0]
            for a, b in zip(*((want, got) if keep_output else ([want], [got]))):
                assert a.tobytes() == b.tobytes()
            results.append((got, np.copy(got) if not keep_output else None))
        # the kept arrays: both layers' outputs but the last's, each direction's input
        # pre-activations; made again only when a batch outgrows them
        assert sorted(workspace) == ["out0", "out1", "xproj0", "xproj1"]
        if kept is not None:  # kept in 1,024-row steps: only the batch of 1,100 outgrows
            same = [workspace[name] is array for name, array in kept.items()]
            assert same == [sum(lengths) <= 1024] * 4, lengths
        kept = dict(workspace)
    for got, copy in results:  # later calls wrote nothing into an earlier call's result
        if copy is not None:
            assert got.tobytes() == copy.tobytes()
    # past WORKSPACE_MAX_ROWS a call keeps nothing (one long sentence would hold its
    # arrays for good), and gives the same result
    packing = Packing([1500, 700])
    row_ids = rng.integers(0, 30, packing.n_rows)
    held = dict(workspace)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("seqtag.rnn.WORKSPACE_MAX_ROWS", 2000)
        got = rnn.forward_projected(projections, row_ids, packing, head=head, states=False,
                                    workspace=workspace)[0]
    assert set(workspace) == set(held) and all(workspace[k] is held[k] for k in held)
    assert got.tobytes() == rnn.forward_projected(projections, row_ids, packing, head=head,
                                                  states=False)[0].tobytes()
