"""A layer's two directions shared out in parts between the calling thread and the second
one (seqtag.rnn.RNN._infer_layer_shared, _core.lstm_infer_ranks): the same values as a
direction per thread, bit for bit, whoever runs which part; errors reach the caller and
leave nothing running.

Every test of the kernel runs once per kind of fused kernel the CPU has, as
tests/test_fused_step.py does, and skips where it has none.
"""

import re
import threading
import time

import numpy as np
import pytest

import seqtag.rnn
import seqtag.runtime
from seqtag import _core
from seqtag.packing import Packing
from seqtag.rnn import RNN
from conftest import fused_kernel_fixture

F32 = np.float32
ISAS = _core.fused_step_isas()
needs_fused = pytest.mark.skipif(
    not seqtag.runtime.fused_step_enabled(),
    reason="no AVX2 or AVX-512 on this CPU (or a build without them), or "
           "SEQTAG_FUSED_STEP=0: the parts need the fused steps")


kernels = fused_kernel_fixture()  # each test once per kind of fused kernel


def kernel_case(H, lengths, V=50, seed=0, initial=False):
    rng = np.random.default_rng(seed)
    packing = Packing(np.asarray(lengths))
    xproj = rng.standard_normal((V, 4 * H)).astype(F32)
    row_ids = rng.integers(0, V, packing.n_rows).astype(np.int64)
    w_hh = (rng.standard_normal((4 * H, H)) * 0.3).astype(F32)
    packed = np.empty(_core.packed_w_hh_size(H), dtype=F32)
    _core.pack_w_hh(w_hh, packed)
    B = packing.batch
    h0 = rng.standard_normal((B, H)).astype(F32) if initial else np.zeros((B, H), F32)
    c0 = rng.standard_normal((B, H)).astype(F32) if initial else np.zeros((B, H), F32)
    return xproj, row_ids, w_hh, packed, packing, h0, c0


def one_call(case, reverse, ids=True):
    xproj, row_ids, w_hh, packed, packing, h0, c0 = case
    h, c = h0.copy(), c0.copy()
    H = h.shape[1]
    out = np.full((packing.n_rows, H + 3), 7.0, F32)  # a wider buffer: columns H.. untouched
    _core.lstm_infer(xproj if ids else xproj[row_ids], row_ids if ids else None, w_hh,
                     packing.batch_sizes, reverse, h, c, np.empty((packing.batch, 4 * H), F32),
                     out[:, :H], None, None, None, packed)
    return h, c, out


def in_parts(case, reverse, cuts, ids=True):
    xproj, row_ids, w_hh, packed, packing, h0, c0 = case
    h, c = h0.copy(), c0.copy()
    H = h.shape[1]
    out = np.full((packing.n_rows, H + 3), 7.0, F32)
    scratch = np.empty((packing.batch, H), F32)
    for a, b in cuts:
        _core.lstm_infer_ranks(xproj if ids else xproj[row_ids], row_ids if ids else None,
                               packing.batch_sizes, reverse, h, c, scratch, out[:, :H],
                               packed, a, b)
    return h, c, out


def same_bits(got, ref):
    for g, r, name in zip(got, ref, ("h", "c", "out")):
        assert g.dtype == r.dtype and g.shape == r.shape, name
        assert g.tobytes() == r.tobytes(), name


LENGTHS = [9, 3, 13, 1, 6, 7, 2, 13, 5, 1, 11]


@needs_fused
@pytest.mark.parametrize("H", [16, 20, 33])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("initial", [False, True], ids=["zero-state", "h0c0"])
@pytest.mark.parametrize("ids", [True, False], ids=["row-ids", "rows"])
@pytest.mark.parametrize("cuts", [
    [(0, 11)],
    [(0, 4), (4, 11)],
    [(7, 11), (0, 3), (3, 7)],  # any order: each range has its own rows
    [(k, k + 1) for k in range(11)],
    [(0, 0), (0, 11), (11, 11)],  # empty ranges do nothing
], ids=["whole", "two", "out-of-order", "one-each", "empty"])
def test_parts_give_one_calls_values_bit_for_bit(H, reverse, initial, ids, cuts):
    case = kernel_case(H, LENGTHS, seed=H, initial=initial)
    same_bits(in_parts(case, reverse, cuts, ids), one_call(case, reverse, ids))


@needs_fused
def test_parts_write_only_their_own_rows():
    case = kernel_case(16, LENGTHS, seed=4)
    xproj, row_ids, w_hh, packed, packing, h0, c0 = case
    h, c, out = in_parts(case, False, [(3, 6)])
    order = np.argsort(-np.asarray(LENGTHS), kind="stable")
    mine = set(order[3:6].tolist())  # ranks 3-5 are these sequences
    rows = np.array([packing.seq_of_row[r] in mine for r in range(packing.n_rows)])
    assert (out[~rows] == 7.0).all() and (out[rows, :16] != 7.0).any()
    assert (h[:3] == 0).all() and (h[6:] == 0).all() and (h[3:6] != 0).any()
    assert (out[:, 16:] == 7.0).all()


@needs_fused
@pytest.mark.parametrize("first, last", [(-1, 3), (4, 3), (0, 12)])
def test_ranks_out_of_range_are_refused(first, last):
    xproj, row_ids, w_hh, packed, packing, h0, c0 = kernel_case(16, LENGTHS)
    with pytest.raises(ValueError, match=re.escape("ranks out of range")):
        _core.lstm_infer_ranks(xproj, row_ids, packing.batch_sizes, False, h0, c0,
                               np.empty((11, 16), F32), np.empty((packing.n_rows, 16), F32),
                               packed, first, last)


@needs_fused
def test_parts_need_packed_weights():
    xproj, row_ids, w_hh, packed, packing, h0, c0 = kernel_case(16, LENGTHS)
    with pytest.raises(ValueError, match="packed weights"):
        _core.lstm_infer_ranks(xproj, row_ids, packing.batch_sizes, False, h0, c0,
                               np.empty((11, 16), F32), np.empty((packing.n_rows, 16), F32),
                               packed[:-1], 0, 11)


@pytest.mark.skipif("avx2" not in ISAS or not seqtag.runtime.fused_step_enabled(),
                    reason="no AVX2 kernels on this CPU or build")
@pytest.mark.parametrize("reverse", [False, True])
def test_the_avx2_kernels_take_steps_past_their_state_limit_in_pieces(reverse):
    """Training's AVX2 forward step leaves steps of more than 16,384 state values (128
    rows at H = 128) to BLAS; inference cuts them into fused calls of 126 rows (whole
    blocks of the kernel's 3 rows), so ranges of ranks of any size give one call's bits,
    and those bits are the AVX-512 kernel's where the CPU has it."""
    seqtag.runtime.set_fused_step("avx2")
    assert seqtag.runtime.fused_step_isa() == "avx2"  # (points the core at them)
    H = 128
    assert _core.lstm_step_fused_forward(128, H) and not _core.lstm_step_fused_forward(129, H)
    assert _core.lstm_step_call_rows(H) == 126 and _core.lstm_step_call_rows(64) == 255
    case = kernel_case(H, [2] * 130 + [1] * 170, V=5, initial=True)
    whole = one_call(case, reverse)
    for cuts in ([(0, 300)], [(0, 1), (1, 129), (129, 300)], [(0, 127), (127, 300)]):
        got = in_parts(case, reverse, cuts)
        for g, w in zip(got, whole):
            assert g.tobytes() == w.tobytes()
    if "avx512" in ISAS:
        seqtag.runtime.set_fused_step("avx512")
        assert seqtag.runtime.fused_step_isa() == "avx512"
        assert _core.lstm_step_call_rows(H) is None
        packed = np.empty(_core.packed_w_hh_size(H), dtype=F32)  # the AVX-512 layout
        _core.pack_w_hh(case[2], packed)
        for a, b in zip(one_call((*case[:3], packed, *case[4:]), reverse), whole):
            assert a.tobytes() == b.tobytes()


# ---- RNN.forward_projected: the layers shared out -------------------------------------


def projected_case(layers, hidden=24, sentences=60, V=40, seed=0, threads=2):
    rnn = RNN("lstm", 8, hidden, num_layers=layers, bidirectional=True, dtype=F32,
              seed=seed, threads=threads)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 25, sentences)
    packing = Packing(lengths)
    table = rng.standard_normal((V, 8)).astype(F32)
    row_ids = rng.integers(0, V, packing.n_rows)
    projections = [rnn.input_projection(table, d) for d in range(2)]
    head = (rng.standard_normal((5, rnn.output_size)).astype(F32),
            rng.standard_normal(5).astype(F32))
    return rnn, projections, row_ids, packing, head


def count_parts(monkeypatch):
    """(thread name, direction, first, last) of every lstm_infer_ranks call."""
    calls = []
    real = _core.lstm_infer_ranks
    lock = threading.Lock()

    def counted(xproj, row_ids, batch_sizes, reverse, h, c, scratch, out, packed, first,
                last):
        with lock:
            calls.append((threading.current_thread().name, int(reverse), first, last))
        return real(xproj, row_ids, batch_sizes, reverse, h, c, scratch, out, packed, first,
                    last)

    monkeypatch.setattr(_core, "lstm_infer_ranks", counted)
    return calls


@needs_fused
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("with_head", [False, True], ids=["out", "head"])
@pytest.mark.parametrize("parts", [2, 4, 7])
def test_shared_layers_give_a_direction_per_threads_values(layers, with_head, parts,
                                                           monkeypatch):
    rnn, projections, row_ids, packing, head = projected_case(layers)
    packed = rnn.pack_recurrent()
    kwargs = dict(packed=packed, head=head if with_head else None, keep_output=with_head)
    monkeypatch.setattr(seqtag.rnn, "SHARED_MIN_ROWS", 1)
    monkeypatch.setattr(seqtag.rnn, "SHARED_PARTS", 1)
    reference = rnn.forward_projected(projections, row_ids, packing, **kwargs)
    monkeypatch.setattr(seqtag.rnn, "SHARED_PARTS", parts)
    monkeypatch.setattr(seqtag.rnn, "SHARED_PART_ROWS", 1)
    calls = count_parts(monkeypatch)
    for _ in range(3):  # whoever takes which part, the same bits
        got = rnn.forward_projected(projections, row_ids, packing, **kwargs)
        flat = lambda r: [a for x in r for a in (x if isinstance(x, tuple) else (x,))]
        for g, r in zip(flat(got), flat(reference)):
            assert g.tobytes() == r.tobytes()
    # every part of every layer and direction ran exactly once a call
    cuts = rnn._shared_cuts(packing, packed)
    assert 2 <= len(cuts) <= parts and cuts[0][0] == 0 and cuts[-1][1] == packing.batch
    assert all(a < b == c for (a, b), (c, _) in zip(cuts, cuts[1:] + [(cuts[-1][1], 0)]))
    expected = sorted((d, a, b) for d in (0, 1) for a, b in cuts) * layers * 3
    assert sorted((d, a, b) for _, d, a, b in calls) == sorted(expected)


@needs_fused
def test_one_thread_a_gru_or_a_small_batch_run_a_direction_per_thread(monkeypatch):
    calls = count_parts(monkeypatch)
    rnn, projections, row_ids, packing, head = projected_case(2, threads=1)
    rnn.forward_projected(projections, row_ids, packing, packed=rnn.pack_recurrent())
    monkeypatch.setattr(seqtag.rnn, "SHARED_MIN_ROWS", packing.n_rows + 1)
    rnn.threads = 2
    rnn.forward_projected(projections, row_ids, packing, packed=rnn.pack_recurrent())
    assert calls == []
    monkeypatch.setattr(seqtag.rnn, "SHARED_MIN_ROWS", packing.n_rows)
    rnn.forward_projected(projections, row_ids, packing, packed=rnn.pack_recurrent())
    assert calls  # with either kind of fused kernel


@needs_fused
def test_an_error_in_a_part_reaches_the_caller_and_leaves_nothing_running(monkeypatch):
    rnn, projections, row_ids, packing, head = projected_case(2)
    monkeypatch.setattr(seqtag.rnn, "SHARED_MIN_ROWS", 1)
    packed = rnn.pack_recurrent()
    good = rnn.forward_projected(projections, row_ids, packing, packed=packed)[0]
    real = _core.lstm_infer_ranks
    running = []

    def failing(*args):
        if args[3] and args[9] > 0:  # a reverse part past the first
            raise RuntimeError("part failed")
        running.append(1)
        try:
            return real(*args)
        finally:
            running.pop()

    monkeypatch.setattr(_core, "lstm_infer_ranks", failing)
    with pytest.raises(RuntimeError, match="part failed"):
        rnn.forward_projected(projections, row_ids, packing, packed=packed)
    assert running == []  # no part still running on the second thread
    monkeypatch.setattr(_core, "lstm_infer_ranks", real)
    again = rnn.forward_projected(projections, row_ids, packing, packed=packed)[0]
    assert again.tobytes() == good.tobytes()


@needs_fused
def test_a_busy_second_thread_leaves_the_parts_to_the_caller(monkeypatch):
    """The second thread busy with another call: this one runs every part itself (and the
    other direction's projection), never waiting for the queue."""
    rnn, projections, row_ids, packing, head = projected_case(2)
    monkeypatch.setattr(seqtag.rnn, "SHARED_MIN_ROWS", 1)
    packed = rnn.pack_recurrent()
    reference = rnn.forward_projected(projections, row_ids, packing, packed=packed)[0]
    release = threading.Event()
    blocker = seqtag.runtime.run_beside(release.wait, 30)
    try:
        calls = count_parts(monkeypatch)
        got = rnn.forward_projected(projections, row_ids, packing, packed=packed)[0]
        assert {name for name, *_ in calls} == {threading.current_thread().name}
    finally:
        release.set()
        blocker.result()
    assert got.tobytes() == reference.tobytes()


def test_the_bundled_model_tags_the_same_with_the_layers_shared(monkeypatch):
    from seqtag import Tagger
    tagger = Tagger.load(threads=2)
    rng = np.random.default_rng(5)
    vocabulary = ["the", "dog", "ate", "an", "apple", "in", "Paris", ",", "quickly", "."]
    sentences = [list(rng.choice(vocabulary, rng.integers(1, 30))) for _ in range(150)]
    monkeypatch.setattr(seqtag.rnn, "SHARED_PARTS", 1)
    alone = tagger.predict_columns(sentences)
    monkeypatch.setattr(seqtag.rnn, "SHARED_PARTS", 4)
    monkeypatch.setattr(seqtag.rnn, "SHARED_MIN_ROWS", 1)
    calls = count_parts(monkeypatch)
    assert tagger.predict_columns(sentences) == alone
    # shared with either kind of fused kernel, never without them
    assert bool(calls) == (seqtag.runtime.fused_step_isa() is not None)


@pytest.mark.skipif(ISAS[:1] != ("avx512",) or not seqtag.runtime.fused_step_enabled(),
                    reason="needs both kinds of fused kernel (an AVX-512 CPU)")
def test_the_bundled_model_scores_alike_with_either_kind_of_kernel():
    """Every step of inference fused, the AVX2 kernel's big steps in pieces: the bundled
    model's scores (the character BiLSTM's tree of prefixes, both layers, the heads) are
    the same bits with the AVX2 kernels as with the AVX-512 ones, in batches of 300
    sentences (steps of more rows than one AVX2 call takes)."""
    from seqtag import Tagger
    from seqtag.inference import predict_log_probs
    tagger = Tagger.load(threads=2)
    rng = np.random.default_rng(9)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    sentences = [["".join(rng.choice(letters, rng.integers(1, 9)))
                  for _ in range(rng.integers(1, 12))] for _ in range(300)]
    scores = {}
    for isa in ("avx512", "avx2"):
        seqtag.runtime.set_fused_step(isa)
        assert seqtag.runtime.fused_step_isa() == isa
        assert _core.lstm_step_call_rows(tagger.network.rnn.hidden_size) in (None, 126)
        scores[isa] = predict_log_probs(tagger.network, tagger.vocab, sentences,
                                        batch_tokens=4096, memo=False)
    assert len(scores["avx2"]) == 300
    for a, b in zip(scores["avx512"], scores["avx2"]):
        assert a.tobytes() == b.tobytes()


@needs_fused
@pytest.mark.parametrize("rows_per_part, expected", [(1, 4), (150, 4), (160, 3), (250, 3),
                                                     (260, 2), (10 ** 6, 2)])
def test_parts_fall_in_size_and_keep_enough_rows(rows_per_part, expected, monkeypatch):
    """k parts (at least 2, at most SHARED_PARTS) of rows in the ratio k : k - 1 : ... : 1
    (the sequences run longest first), k the most that leaves the smallest part
    SHARED_PART_ROWS rows or more: 1,530 rows here, so a smallest part of 153 rows with 4
    parts, 255 with 3."""
    rnn, projections, row_ids, packing, head = projected_case(2, sentences=120)
    assert packing.n_rows == 1530
    monkeypatch.setattr(seqtag.rnn, "SHARED_PARTS", 4)
    monkeypatch.setattr(seqtag.rnn, "SHARED_PART_ROWS", rows_per_part)
    cuts = rnn._shared_cuts(packing, rnn.pack_recurrent())
    assert len(cuts) == expected
    assert cuts[0][0] == 0 and cuts[-1][1] == packing.batch
    assert all(a < b for a, b in cuts) and all(b == c for (_, b), (c, _) in zip(cuts, cuts[1:]))
    sizes = np.sort(packing.lengths)[::-1]
    rows = [int(sizes[a:b].sum()) for a, b in cuts]
    share = packing.n_rows / (expected * (expected + 1) // 2)
    assert sum(rows) == packing.n_rows
    for i, got in enumerate(rows):  # each cut lands within a sequence of its place
        assert abs(got - share * (expected - i)) <= 2 * sizes[0], (rows, share)


@needs_fused
def test_an_error_on_the_second_thread_waits_for_its_other_parts(monkeypatch):
    """A reverse part fails on the second thread while another of its parts is still to
    run there: the error reaches the caller only once nothing of the call runs any more
    (its arrays may be a workspace the next call reuses)."""
    rnn, projections, row_ids, packing, head = projected_case(2)
    monkeypatch.setattr(seqtag.rnn, "SHARED_MIN_ROWS", 1)
    monkeypatch.setattr(seqtag.rnn, "SHARED_PART_ROWS", 1)
    monkeypatch.setattr(seqtag.rnn, "SHARED_PARTS", 4)
    packed = rnn.pack_recurrent()
    good = rnn.forward_projected(projections, row_ids, packing, packed=packed)[0]
    cuts = rnn._shared_cuts(packing, packed)
    real = _core.lstm_infer_ranks
    running = []

    def failing(*args):
        if threading.current_thread() is threading.main_thread() and not args[3]:
            time.sleep(0.05)  # this thread's own parts: the other one takes its own
        if threading.current_thread() is not threading.main_thread() and args[3]:
            if args[9] == cuts[0][0]:
                raise RuntimeError("part failed")
            if args[9] == cuts[1][0]:  # the second thread's next part: a slow one
                running.append(args[9])
                time.sleep(0.3)
                real(*args)
                running.remove(args[9])
                return None
        return real(*args)

    monkeypatch.setattr(_core, "lstm_infer_ranks", failing)
    with pytest.raises(RuntimeError, match="part failed"):
        rnn.forward_projected(projections, row_ids, packing, packed=packed)
    assert running == []
    monkeypatch.setattr(_core, "lstm_infer_ranks", real)
    again = rnn.forward_projected(projections, row_ids, packing, packed=packed)[0]
    assert again.tobytes() == good.tobytes()


@needs_fused
def test_a_later_layers_parts_wait_for_their_own_input_product(monkeypatch):
    """The second thread, done with its direction, takes this thread's parts of the second
    layer from the end: they must wait for this thread's input product of that layer, even
    when it is slow (a race of the first version: 10 calls in 10 went wrong)."""
    rnn, projections, row_ids, packing, head = projected_case(2)
    monkeypatch.setattr(seqtag.rnn, "SHARED_MIN_ROWS", 1)
    monkeypatch.setattr(seqtag.rnn, "SHARED_PART_ROWS", 1)
    packed = rnn.pack_recurrent()
    rng = np.random.default_rng(9)
    tables = [rng.standard_normal((40, 8)).astype(F32) for _ in range(2)]
    inputs = [[rnn.input_projection(t, d) for d in range(2)] for t in tables]
    # a workspace as the memo keeps one: a stale input product would be the other call's
    references = [rnn.forward_projected(p, row_ids, packing, packed=packed, workspace={})[0]
                  for p in inputs]
    w_second_layer = rnn.params["weight_ih_l1"]
    real = _core.input_projection

    def slow_here(*args):
        if args[1] is w_second_layer and threading.current_thread() is threading.main_thread():
            time.sleep(0.05)
        return real(*args)

    monkeypatch.setattr(_core, "input_projection", slow_here)
    workspace = {}
    for i in range(6):
        got = rnn.forward_projected(inputs[i % 2], row_ids, packing, packed=packed,
                                    workspace=workspace)[0]
        assert got.tobytes() == references[i % 2].tobytes()


def test_wait_quietly_waits_through_the_calls_own_error():
    started, release = threading.Event(), threading.Event()

    def slow_then_fail():
        started.set()
        release.wait(10)
        raise ValueError("the call's own error")

    job = seqtag.runtime.run_beside(slow_then_fail)
    started.wait(10)
    job.cancel()  # too late: it runs
    threading.Timer(0.2, release.set).start()
    assert job.wait_quietly() is None
    with pytest.raises(ValueError, match="the call's own error"):
        job.result()
    # a call cancelled before it started: nothing to wait for
    blocker_release = threading.Event()
    blocker = seqtag.runtime.run_beside(blocker_release.wait, 10)
    queued = seqtag.runtime.run_beside(lambda: 1)
    queued.cancel()
    assert queued.wait_quietly() is None
    with pytest.raises(seqtag.runtime.CancelledError):
        queued.result()
    blocker_release.set()
    blocker.result()
