"""The memo of first-layer projections (seqtag.memo.ProjectionMemo) and the tagging path
that uses it (Network.infer, Tagger.predict): the same results as the unmemoised forward,
whatever the memo held before, and never rows computed from older weights (a loaded
tagger's weights are read-only; a training network's are followed by changed())."""

import sys
import threading

import numpy as np
import pytest

from seqtag import SeqtagError, Tagger
from seqtag.corpus import Sentence
from seqtag.inference import predict_log_probs
from seqtag.memo import ProjectionMemo
from seqtag.network import Batch, Network
from seqtag.packing import Packing
from seqtag.rnn import RNN
from seqtag.train import DEFAULTS as TRAIN_DEFAULTS
from seqtag.train import TrainingState, corpus_fingerprint, train
from seqtag.vocab import Vocabulary
from test_tagger import TINY, synthetic_corpus

F32, F64 = np.float32, np.float64


def run_interleaved(threads):
    """Start the threads and wait for them, switching between them as often as the
    interpreter can: more interleavings to go wrong."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)


# ---- ProjectionMemo.rows -----------------------------------------------------------------

class Inputs:
    """inputs_of for keys "k0", "k1", ...: row i of a fixed random table; records calls."""

    def __init__(self, rnn, n=3000, seed=0):
        self.table = np.random.default_rng(seed).standard_normal(
            (n, rnn.input_size)).astype(rnn.dtype)
        self.calls = []

    def of(self, keys):
        def inputs_of(positions):
            self.calls.append([keys[p] for p in positions])
            return self.table[[int(keys[p][1:]) for p in positions]]
        return inputs_of

    def rows_of(self, keys):
        return self.table[[int(k[1:]) for k in keys]]


def keys(*numbers):
    return [f"k{i}" for i in numbers]


def check_tables(memo, inputs, ks, rows):
    """The rows of the keys hold rnn.input_projection of their inputs, in each direction."""
    for d, table in enumerate(memo.tables):
        expected = memo.rnn.input_projection(inputs.rows_of(ks), d)
        np.testing.assert_allclose(table[rows], expected, rtol=1e-6, atol=1e-6)


@pytest.fixture(params=["lstm", "peephole"])
def rnn(request):
    return RNN(request.param, 5, 3, num_layers=2, bidirectional=True, seed=2)


def test_new_keys_are_computed_once_and_repeated_keys_are_hits(rnn):
    memo = ProjectionMemo(rnn, capacity=50)
    inputs = Inputs(rnn)
    first = keys(4, 7, 1)
    rows = memo.rows(first, inputs.of(first))
    assert rows.dtype == np.int64 and sorted(rows.tolist()) == [0, 1, 2]
    assert inputs.calls == [first]
    assert (memo.hits, memo.misses, len(memo)) == (0, 3, 3)
    check_tables(memo, inputs, first, rows)

    # two held keys and two new ones, interleaved: only the new ones are asked for
    second = keys(9, 7, 2, 4)
    rows2 = memo.rows(second, inputs.of(second))
    assert inputs.calls[1:] == [keys(9, 2)]
    assert rows2[1] == rows[1] and rows2[3] == rows[0]
    assert len(set(rows2.tolist())) == 4
    assert (memo.hits, memo.misses, len(memo)) == (2, 5, 5)
    check_tables(memo, inputs, second, rows2)

    # everything held: inputs_of is not called at all
    third = keys(2, 1, 9)
    rows3 = memo.rows(third, inputs.of(third))
    assert len(inputs.calls) == 2
    assert (memo.hits, memo.misses) == (5, 5)
    np.testing.assert_array_equal(rows3, [rows2[2], rows[2], rows2[0]])


def test_a_failure_while_the_tables_grow_leaves_them_usable(rnn, monkeypatch):
    """An error (a MemoryError, a Ctrl-C) while the tables grow leaves them as they were:
    growing one direction's table and not the other's left them apart for good, and every
    later call that needed room failed."""
    import seqtag.memo as memo_module
    memo = ProjectionMemo(rnn, capacity=5000)
    inputs = Inputs(rnn)
    first = keys(*range(1000))
    memo.rows(first, inputs.of(first))  # 1,024 rows in each table
    made = []
    real_empty = np.empty

    def second_fails(*args, **kwargs):
        made.append(args)
        if len(made) == 2:
            raise MemoryError("no room for the second table")
        return real_empty(*args, **kwargs)

    monkeypatch.setattr(memo_module.np, "empty", second_fails)
    more = keys(*range(1000, 1100))
    with pytest.raises(MemoryError):
        memo.rows(more, inputs.of(more))
    monkeypatch.setattr(memo_module.np, "empty", real_empty)
    assert len({t.shape for t in memo.tables}) == 1
    rows = memo.rows(more, inputs.of(more))  # and the memo works on
    check_tables(memo, inputs, more, rows)
    assert len({t.shape for t in memo.tables}) == 1


def test_memo_rows_feed_forward_projected(rnn):
    memo = ProjectionMemo(rnn, capacity=20)
    inputs = Inputs(rnn)
    ks = keys(3, 0, 8, 5)
    rows = memo.rows(ks, inputs.of(ks))
    packing = Packing([4, 2, 3])
    pick = np.random.default_rng(1).integers(0, len(ks), packing.n_rows)
    out, h_n, c_n = memo.forward(rows[pick], packing)
    ref_out, ref_h, ref_c, _ = rnn.forward_packed(inputs.rows_of(ks)[pick], packing, keep=False)
    for a, b in ((out, ref_out), (h_n, ref_h), (c_n, ref_c)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_overflow_restarts_and_stays_correct(rnn):
    memo = ProjectionMemo(rnn, capacity=5)
    inputs = Inputs(rnn)
    first = keys(0, 1, 2, 3)
    memo.rows(first, inputs.of(first))
    # 2 held + 2 new = 6 > 5: the memo starts over with this batch's keys only
    second = keys(2, 3, 10, 11)
    rows = memo.rows(second, inputs.of(second))
    assert inputs.calls[-1] == second  # all four recomputed, held ones included
    assert len(memo) == 4
    assert sorted(rows.tolist()) == [0, 1, 2, 3]
    check_tables(memo, inputs, second, rows)
    # the forgotten keys come back as misses, computed again from their inputs
    third = keys(0, 10)
    before = memo.misses
    rows3 = memo.rows(third, inputs.of(third))
    assert inputs.calls[-1] == keys(0)
    assert memo.misses == before + 1
    assert rows3[1] == rows[2]
    check_tables(memo, inputs, third, rows3)


def test_exactly_full_does_not_restart(rnn):
    memo = ProjectionMemo(rnn, capacity=4)
    inputs = Inputs(rnn)
    memo.rows(keys(0, 1), inputs.of(keys(0, 1)))
    rows = memo.rows(keys(1, 2, 3), inputs.of(keys(1, 2, 3)))
    assert inputs.calls[-1] == keys(2, 3) and len(memo) == 4
    rows0 = memo.rows(keys(0), inputs.of(keys(0)))
    assert len(inputs.calls) == 2 and rows0[0] not in rows.tolist()[1:]


def test_more_keys_than_capacity_gives_none(rnn):
    memo = ProjectionMemo(rnn, capacity=3)
    inputs = Inputs(rnn)
    held = keys(0, 1)
    rows = memo.rows(held, inputs.of(held))
    assert memo.rows(keys(0, 1, 2, 3), inputs.of(keys(0, 1, 2, 3))) is None
    assert len(inputs.calls) == 1  # nothing computed for it
    # and nothing forgotten either
    again = memo.rows(held, inputs.of(held))
    np.testing.assert_array_equal(again, rows)
    assert len(inputs.calls) == 1
    assert memo.rows(keys(0, 1, 2), inputs.of(keys(0, 1, 2))) is not None  # == capacity


@pytest.mark.parametrize("capacity", [0, -1, True, False, 2.0, "8", None, 1.5])
def test_invalid_capacity(capacity):
    with pytest.raises(ValueError, match=r"capacity must be a positive integer, got"):
        ProjectionMemo(RNN("lstm", 3, 2), capacity)


def test_numpy_integer_capacity_and_gru_width():
    assert ProjectionMemo(RNN("lstm", 3, 2), np.int32(7)).capacity == 7
    assert ProjectionMemo(RNN("gru", 3, 2), 10).width == 6  # 3 gates of 2


def test_table_growth_keeps_earlier_rows(rnn):
    memo = ProjectionMemo(rnn, capacity=2500)
    inputs = Inputs(rnn)
    first = keys(*range(10))
    rows = memo.rows(first, inputs.of(first))
    size = memo.tables[0].shape[0]
    kept = [t[rows].copy() for t in memo.tables]
    big = keys(*range(10, 10 + size + 5))  # more new keys than the tables have rows
    big_rows = memo.rows(big, inputs.of(big))
    assert memo.tables[0].shape[0] > size  # it did grow
    assert all(t.shape[0] <= 2500 for t in memo.tables)
    for t, k in zip(memo.tables, kept):
        np.testing.assert_array_equal(t[rows], k)
    again = memo.rows(first, inputs.of(first))
    np.testing.assert_array_equal(again, rows)
    check_tables(memo, inputs, first, again)
    check_tables(memo, inputs, big, big_rows)
    assert len(memo) == 10 + len(big)


def test_clear_forgets(rnn):
    memo = ProjectionMemo(rnn, capacity=10)
    inputs = Inputs(rnn)
    memo.rows(keys(0, 1), inputs.of(keys(0, 1)))
    memo.clear()
    assert len(memo) == 0
    memo.rows(keys(1), inputs.of(keys(1)))
    assert inputs.calls[-1] == keys(1) and len(inputs.calls) == 2



def test_form_values_are_computed_once_per_row_and_owner(rnn):
    """ProjectionMemo.form_values: compute() sees only the rows not asked for since they
    were filled; another owner of the same name, or clear(), starts over."""
    memo = ProjectionMemo(rnn, capacity=10)
    inputs = Inputs(rnn)
    owner, other = object(), object()
    asked = []

    def compute_for(ks):
        def compute(positions):
            asked.append([ks[p] for p in positions.tolist()])
            return np.array([100 + int(ks[p][1:]) for p in positions.tolist()])
        return compute

    first = keys(3, 1, 4)
    rows = memo.rows(first, inputs.of(first))
    assert memo.form_values("n", owner, rows, compute_for(first)).tolist() == [103, 101, 104]
    second = keys(1, 5, 3)
    rows = memo.rows(second, inputs.of(second))
    assert memo.form_values("n", owner, rows, compute_for(second)).tolist() == [101, 105, 103]
    assert asked == [keys(3, 1, 4), keys(5)]
    # a value may be anything but the marker of "not computed": 0 and -1 are kept
    zero = keys(2)
    rows = memo.rows(zero, inputs.of(zero))
    memo.form_values("z", owner, rows, lambda positions: np.array([-1]))
    assert memo.form_values("z", owner, rows, lambda positions: 1 / 0).tolist() == [-1]
    assert memo.form_values("n", other, memo.rows(first, inputs.of(first)),
                            compute_for(first)).tolist() == [103, 101, 104]
    assert asked[-1] == first
    generation = memo.generation
    memo.clear()
    assert memo.generation == generation + 1
    rows = memo.rows(keys(4), inputs.of(keys(4)))
    assert memo.form_values("n", other, rows, compute_for(keys(4))).tolist() == [104]
    assert asked[-1] == keys(4)


def test_network_form_values_never_read_rows_of_another_generation():
    """Network.form_values reads the memo only while it still holds the rows the batch
    was given; after a restart (other forms took the rows), or with the memo busy in
    another thread, every form is computed again: never another form's value."""
    net, v = network(capacity=6)
    batch = Batch([["the", "dog", "ate"]], v)
    net.infer(batch)
    calls = []

    def lengths(forms):
        calls.append(list(forms))
        return np.array([len(f) for f in forms])

    assert net.form_values(batch, "len", v, lengths).tolist() == [3, 3, 3]
    assert net.form_values(batch, "len", v, lengths).tolist() == [3, 3, 3]
    assert calls == [["the", "dog", "ate"]]
    # other forms overflow the memo: it starts over and gives them the same rows
    other = Batch([["Zebras", "quietly", "xylophone", "apples", "!"]], v)
    net.infer(other)
    assert net._memo.index["Zebras"] == 0
    assert net.form_values(batch, "len", v, lengths).tolist() == [3, 3, 3]
    assert calls[-1] == ["the", "dog", "ate"] and len(calls) == 2
    # nor were the stale rows' values kept for the forms that hold those rows now
    assert net.form_values(other, "len", v, lengths).tolist() == [6, 7, 9, 6, 1]
    assert len(calls) == 3
    net.infer(batch)  # rows of the next generation: computed there once
    assert net.form_values(batch, "len", v, lengths).tolist() == [3, 3, 3]
    assert net.form_values(batch, "len", v, lengths).tolist() == [3, 3, 3]
    assert len(calls) == 4
    with net._memo_lock:  # busy: computed, not read
        assert net.form_values(batch, "len", v, lengths).tolist() == [3, 3, 3]
    assert len(calls) == 5
    unmemoised = Batch([["the", "dog"]], v)  # never given rows by a memo
    assert net.form_values(unmemoised, "len", v, lengths).tolist() == [3, 3]
    assert calls[-1] == ["the", "dog"]


# ---- Network.infer -----------------------------------------------------------------------

TRAIN = [
    Sentence("The dog ate the apple .".split(), "DET NOUN VERB DET NOUN PUNCT".split()),
    Sentence("Cats sleep".split(), "NOUN VERB".split()),
    Sentence("Run !".split(), "VERB PUNCT".split()),
    Sentence("A cat saw the big dog in 1995 .".split(),
             "DET NOUN VERB DET ADJ NOUN ADP NUM PUNCT".split()),
]
CONFIG = {"word_dim": 6, "char_dim": 4, "char_hidden": 3, "hidden": 5, "layers": 2}
# sentences with forms the vocabulary does not know (words and characters)
TEXTS = [
    "The cat ate the dog .".split(),
    "Zebras quietly ate 2024 apples !".split(),
    "Run".split(),
    "the THE The dog Dog naïve , ; xylophone".split(),
    "A big big big cat sleep sleeps slept .".split(),
]
MORE = [
    "Apple sleep cat dog".split(),
    "Éclair 1995 1996 ! ?".split(),
    "zzz the a".split(),
]


def vocab():
    return Vocabulary.build(TRAIN, min_char_count=1)


def network(cell="lstm", capacity=8192, dtype=F32, seed=3, threads=1):
    v = vocab()
    return Network(dict(CONFIG, cell=cell), len(v.words), len(v.chars), len(v.tags),
                   seed=seed, dtype=dtype, memo_capacity=capacity, threads=threads), v


def assert_matches_forward(net, batch, rtol=1e-5):
    got = net.infer(batch)
    ref = net.forward(batch)[0]
    assert got.shape == ref.shape and got.dtype == ref.dtype
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=1e-6)
    return got


@pytest.mark.parametrize("cell", ["lstm", "peephole", "gru"])
@pytest.mark.parametrize("threads", [1, 2])
def test_infer_equals_forward_cold_and_warm(cell, threads):
    net, v = network(cell, threads=threads)
    batch = Batch(TEXTS, v)
    cold = assert_matches_forward(net, batch)
    assert net._memo is not None and len(net._memo) == len(batch.forms)
    warm = assert_matches_forward(net, batch)
    np.testing.assert_allclose(warm, cold, rtol=1e-6, atol=1e-7)
    assert net._memo.hits >= len(batch.forms)
    # a form seen before needs no characters: a warm batch never encodes them
    again = Batch(TEXTS[::-1], v)
    net.infer(again)
    assert again._chars is None
    # partly new forms, a fresh Batch object: held forms mixed with new ones
    mixed = Batch(MORE + TEXTS[:2], v)
    misses = net._memo.misses
    assert_matches_forward(net, mixed)
    new = set(mixed.forms) - set(batch.forms)
    assert net._memo.misses - misses == len(new)


def test_infer_in_float64_is_tight():
    net, v = network("peephole", dtype=F64)
    batch = Batch(TEXTS, v)
    net.infer(batch)
    got = net.infer(Batch(MORE + TEXTS, v))
    ref = net.forward(Batch(MORE + TEXTS, v))[0]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_memo_capacity_zero_runs_unmemoised():
    """No memo is made; infer() is forward()'s log-probabilities (up to float32 rounding:
    its head product is the memoised path's, a product per direction), the same on every
    call, and its logits are encode()'s bit for bit."""
    for cell, capacity in (("lstm", 0), ("lstm", -5), ("gru", 0)):
        net, v = network(cell, capacity=capacity)
        batch = Batch(TEXTS, v)
        got = assert_matches_forward(net, batch)
        np.testing.assert_array_equal(net.infer(batch), got)
        _, logits = net.encode(batch, [0])
        assert net.infer(batch, [0], normalize=False).tobytes() == logits.tobytes()
        assert net._memo is None


def test_more_distinct_forms_than_capacity():
    net, v = network(capacity=4)
    small = Batch([["the", "dog"]], v)
    assert_matches_forward(net, small)
    held = dict(net._memo.index)
    batch = Batch(TEXTS, v)
    assert len(batch.forms) > 4
    assert_matches_forward(net, batch)
    assert net._memo.index == held  # the big batch went around the memo
    # a batch that fits but overflows with what is held: restart, still right
    assert_matches_forward(net, Batch([["Cats", "sleep", "!"]], v))
    assert_matches_forward(net, Batch([["the", "dog", "Run", "."]], v))


def test_changed_forgets_rows_of_old_weights():
    net, v = network()
    batch = Batch(TEXTS, v)
    before = assert_matches_forward(net, batch)
    # weights that feed the memoised projections, changed in place
    net.word_embedding *= 3.0
    net.char_embedding += 0.5
    net.rnn.params["weight_ih_l0"] *= -1.5
    net.rnn.params["bias_hh_l0_reverse"] += 0.7
    fresh = net.forward(batch)[0]
    assert np.abs(fresh - before).max() > 1e-3
    # without changed() the memo still serves the old rows: it really is in use...
    stale = net.infer(batch)
    assert np.abs(stale - fresh).max() > 1e-3
    # ...and changed() makes infer read the new weights
    version = net.version
    net.changed()
    assert net.version == version + 1
    np.testing.assert_allclose(net.infer(batch), fresh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.infer(batch), fresh, rtol=1e-5, atol=1e-6)


def test_weights_outside_the_memo_need_no_clear():
    """The upper layers' input weights and the output layer are read at every call."""
    net, v = network()
    batch = Batch(TEXTS, v)
    net.infer(batch)
    net.rnn.params["weight_ih_l1"] *= -1.0
    net.output_bias += np.arange(len(net.output_bias), dtype=F32)
    hits = net._memo.hits
    assert_matches_forward(net, batch)
    assert net._memo.hits == hits + len(batch.forms)


def test_recurrent_weights_changed_in_place_need_changed():
    """The memo keeps W_hh packed for the fused step (memo.py), so on a network whose
    weights change in place (training's) a change of a recurrent weight is seen after
    changed(), which the training loop calls; on the BLAS path W_hh is read at every call."""
    net, v = network()
    batch = Batch(TEXTS, v)
    net.infer(batch)
    net.rnn.params["weight_hh_l0"] *= 2.0
    stale = net.infer(batch)
    fresh = net.forward(batch)[0]
    if net.rnn.fused_step:
        assert np.abs(stale - fresh).max() > 1e-4
    else:
        np.testing.assert_allclose(stale, fresh, rtol=1e-5, atol=1e-6)
    net.changed()
    assert_matches_forward(net, batch)


SENTENCES = [["The", "dog", "barked", "."], ["A", "cat", "sat", "on", "the", "mat", "."]]


def test_a_loaded_taggers_weights_are_read_only():
    """An in-place edit of a loaded tagger would be served stale from the memo (the
    projections, W_hh packed for the fused step): every weight refuses it instead."""
    tagger = Tagger.load()
    tagger.predict(SENTENCES)  # the memo is filled
    arrays = tagger.network.arrays()
    assert "rnn.weight_hh_l0" in arrays and "word_embedding" in arrays
    for name, array in arrays.items():
        with pytest.raises(ValueError, match="^assignment destination is read-only$"):
            array[(0,) * array.ndim] = 1.0
        with pytest.raises(ValueError, match="^output array is read-only$"):
            array *= 2.0


def test_a_loaded_tagger_takes_edited_copies_through_load_arrays():
    tagger = Tagger.load()
    before = predict_log_probs(tagger.network, tagger.vocab, SENTENCES, memo=True)
    edited = {name: array.copy() for name, array in tagger.network.arrays().items()}
    edited["rnn.weight_hh_l0"] *= 2.0
    edited["word_embedding"] *= 3.0
    tagger.network.load_arrays(edited)
    memoised = predict_log_probs(tagger.network, tagger.vocab, SENTENCES, memo=True)
    plain = predict_log_probs(tagger.network, tagger.vocab, SENTENCES, memo=False)
    assert max(np.abs(a - b).max() for a, b in zip(memoised, before)) > 1e-3
    for a, b in zip(memoised, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the network keeps read-only copies of its own; the caller's arrays stay writable
    assert all(not a.flags.writeable for a in tagger.network.arrays().values())
    assert all(a.flags.writeable for a in edited.values())
    assert tagger.network.word_embedding is not edited["word_embedding"]


def test_load_arrays_clears_the_memo():
    net, v = network(seed=3)
    other, _ = network(seed=11)
    batch = Batch(TEXTS, v)
    mine = assert_matches_forward(net, batch)
    net.load_arrays({k: a.copy() for k, a in other.arrays().items()})
    theirs = other.forward(batch)[0]
    assert np.abs(theirs - mine).max() > 1e-3
    np.testing.assert_allclose(net.infer(batch), theirs, rtol=1e-5, atol=1e-6)
    assert_matches_forward(net, batch)


# ---- threads -----------------------------------------------------------------------------

ROUNDS = 100


def test_infer_from_two_threads_gives_the_serial_results():
    net, v = network(capacity=12)  # small: the threads' batches keep restarting it
    texts_a = [TEXTS, MORE, TEXTS[1:] + MORE[:1], [["the", "cat"]]]
    texts_b = [MORE + TEXTS[:2], TEXTS[::-1], [["Zzz", "yyy", "xxx", "Run"]]]
    expected = {name: [net.forward(Batch(t, v))[0] for t in texts]
                for name, texts in (("a", texts_a), ("b", texts_b))}
    results, errors = {"a": [], "b": []}, []
    barrier = threading.Barrier(2)

    def work(name, texts):
        try:
            barrier.wait()
            for _ in range(ROUNDS):
                results[name].append([net.infer(Batch(t, v)) for t in texts])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    run_interleaved([threading.Thread(target=work, args=("a", texts_a)),
                     threading.Thread(target=work, args=("b", texts_b))])
    assert not errors
    for name in results:
        assert len(results[name]) == ROUNDS
        for run in results[name]:
            for got, ref in zip(run, expected[name]):
                np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def small_tagger():
    return Tagger.train(synthetic_corpus(40), synthetic_corpus(10, seed=1),
                        **dict(TINY, epochs=4))


def test_predict_from_two_threads_gives_the_serial_results(small_tagger):
    sents_a = [s.words for s in synthetic_corpus(40, seed=5)] + [["zebra", "the", "Dog"]]
    sents_b = [s.words for s in synthetic_corpus(30, seed=6)][::-1] + [["Unseen", "forms"]]
    expected_a = (small_tagger.predict(sents_a), small_tagger.predict_top_k(sents_a, 2))
    expected_b = (small_tagger.predict(sents_b), small_tagger.predict_top_k(sents_b, 2))
    results, errors = {"a": [], "b": []}, []
    barrier = threading.Barrier(2)

    def work(name, sents):
        try:
            barrier.wait()
            for _ in range(10):
                results[name].append((small_tagger.predict(sents),
                                      small_tagger.predict_top_k(sents, 2)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=("a", sents_a)),
               threading.Thread(target=work, args=("b", sents_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name, expected in (("a", expected_a), ("b", expected_b)):
        assert len(results[name]) == 10
        for tags, tops in results[name]:
            assert tags == expected[0]
            for s_got, s_ref in zip(tops, expected[1]):
                for tok_got, tok_ref in zip(s_got, s_ref):
                    assert [t for t, _ in tok_got] == [t for t, _ in tok_ref]
                    np.testing.assert_allclose([p for _, p in tok_got],
                                               [p for _, p in tok_ref], rtol=1e-5)


# ---- training keeps the memo honest ------------------------------------------------------

def test_predictions_after_training_read_the_final_weights():
    """on_best fills the memo with the weights of each best epoch; the tagger training
    returns must still tag with its own final weights."""
    probe = [s.words for s in synthetic_corpus(20, seed=9)] + [["the", "zebra", "saw", "."]]
    seen = []

    def on_best(tagger):
        tagger.predict(probe)  # fills the memo from the weights of that epoch
        memo = tagger.network._memo
        seen.append((len(memo), {k: memo.tables[0][r].copy() for k, r in memo.index.items()}))

    tagger = Tagger.train(synthetic_corpus(40), synthetic_corpus(10, seed=1), on_best=on_best,
                          **dict(TINY, epochs=6))
    assert len(seen) >= 2, "need two improving epochs for the memo to go stale"
    assert seen[-1][0] > 0
    # the memo held rows from older weights: the first fill differs from the last
    first, last = seen[0][1], seen[-1][1]
    assert max(np.abs(first[k] - last[k]).max() for k in first) > 1e-4

    network, vocab = tagger.network, tagger.vocab
    reference = predict_log_probs(network, vocab, probe, memo=False)
    for _ in range(2):  # cold, then warm
        tags = tagger.predict(probe)
        assert tags == [[vocab.tags[j] for j in lp.argmax(axis=1)] for lp in reference]
        memoised = predict_log_probs(network, vocab, probe, memo=True)
        for a, b in zip(memoised, reference):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert network._memo.hits > 0


def _training_run(epochs=3, average=None):
    """A TrainingState for seqtag.train.train, so callbacks can reach the network."""
    train_sents, dev_sents = synthetic_corpus(40), synthetic_corpus(10, seed=1)
    opts = dict(TRAIN_DEFAULTS, epochs=epochs, batch_size=8, lr=0.01, threads=1, seed=7)
    if average is not None:
        opts["average"] = average
    config = dict(hidden=16, word_dim=16, char_dim=8, char_hidden=8, layers=2)
    vocab = Vocabulary.build(train_sents)
    net = Network(config, len(vocab.words), len(vocab.chars), len(vocab.tags), seed=7,
                  threads=1)
    state = TrainingState(net, vocab, opts, corpus_fingerprint(train_sents, dev_sents))
    return train_sents, dev_sents, config, opts, state


PROBE = [s.words for s in synthetic_corpus(10, seed=9)] + [["a", "zebra", "!"]]


def _memo_gap(network, vocab):
    """max |memoised - unmemoised| log-probability over PROBE, as things stand."""
    memoised = predict_log_probs(network, vocab, PROBE, memo=True)
    plain = predict_log_probs(network, vocab, PROBE, memo=False)
    return max(np.abs(a - b).max() for a, b in zip(memoised, plain))


@pytest.mark.parametrize("average", [0.999, 0.0])
def test_predictions_during_training_read_the_weights_of_the_moment(average):
    """After every optimizer step (progress "batch"), inside on_best (holding the best
    weights) and after it (progress "epoch", the training weights back): the memo never
    serves rows of other weights."""
    train_sents, dev_sents, config, opts, state = _training_run(average=average)
    net, vocab = state.network, state.vocab
    gaps, events = [], []

    def progress(event):
        events.append(event["type"])
        gaps.append((event["type"], _memo_gap(net, vocab)))

    def on_best(network, vocab_, history):
        assert network is net
        gaps.append(("best", _memo_gap(network, vocab_)))

    train(train_sents, dev_sents, config, opts, progress, state=state, on_best=on_best)
    assert events.count("epoch") == 3 and events.count("batch") >= 10
    assert any(kind == "best" for kind, _ in gaps)
    assert net._memo is not None and net._memo.misses > 0  # the memo was in use
    bad = [(kind, gap) for kind, gap in gaps if gap > 1e-5]
    assert not bad, bad


def test_memo_filled_on_the_last_epoch_is_not_served_after_training():
    train_sents, dev_sents, config, opts, state = _training_run()
    net, vocab = state.network, state.vocab

    def progress(event):
        if event["type"] == "epoch":
            predict_log_probs(net, vocab, PROBE, memo=True)  # the training weights

    network, vocab, _ = train(train_sents, dev_sents, config, opts, progress, state=state)
    assert _memo_gap(network, vocab) <= 1e-5


# ---- ProjectionMemo.forward ---------------------------------------------------------------

def test_rows_then_forward_equals_the_plain_forward(rnn):
    E = np.random.default_rng(7).standard_normal((30, rnn.input_size)).astype(rnn.dtype)
    memo = ProjectionMemo(rnn, capacity=30)
    packing = Packing([4, 2, 5])
    ids = np.random.default_rng(8).integers(0, 30, packing.n_rows)
    distinct, row_of_token = np.unique(ids, return_inverse=True)
    rows = memo.rows(distinct.tolist(), lambda positions: E[distinct[positions]])
    out, h_n, c_n = memo.forward(rows[row_of_token], packing)
    ref, ref_h, ref_c, _ = rnn.forward_packed(E[ids], packing, keep=False)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_n, ref_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_n, ref_c, rtol=1e-5, atol=1e-6)


def test_tagger_load_takes_the_memo_size_and_zero_turns_it_off():
    sents = [["The", "dog", "barked", "."], ["A", "cat", "sat", "on", "the", "mat", "."]]
    plain = Tagger.load(memo_words=0)
    small = Tagger.load(memo_words=3)   # fewer than the forms of one call: runs unmemoised
    default = Tagger.load()
    assert plain.predict(sents) == small.predict(sents) == default.predict(sents)
    assert plain.network._memo is None and small.network._memo is not None
    assert len(default.network._memo) == 10  # distinct forms of the two sentences
    for bad in (-1, 2.5, True, "8"):
        with pytest.raises(SeqtagError, match="memo_words must be an integer >= 0"):
            Tagger.load(memo_words=bad)


def test_predict_is_the_first_of_top_k_with_and_without_the_memo():
    """Tagger.predict decodes encode()'s logits, predict_top_k ranks infer()'s
    log-probabilities: the same best tag of every token whether the memo serves (default),
    is off (0) or too small for one call (3), on the bundled model of four heads, whose
    product the memo's path and the unmemoised one compute alike."""
    sents = [["The", "dog", "barked", "at", "3", "cats", "."],
             ["Book", "a", "flight", "to", "Paris", "tomorrow", "!"], ["Yes"]]
    for memo_words in (None, 0, 3):
        tagger = Tagger.load() if memo_words is None else Tagger.load(memo_words=memo_words)
        assert len(tagger.vocab.heads) == 4
        top = tagger.predict_top_k(sents, 2)
        assert tagger.predict(sents) == [[pairs[0][0] for pairs in s] for s in top]


def test_new_rows_on_two_threads_are_the_rows_on_one():
    """ProjectionMemo projects the two directions' rows on two threads when the layer has
    them: the same bits as one after the other, and the layer's own product."""
    tables = []
    for threads in (1, 2):
        layer = RNN("lstm", 5, 3, num_layers=2, bidirectional=True, seed=2, threads=threads)
        memo = ProjectionMemo(layer, capacity=5000)
        inputs = Inputs(layer)
        ks = keys(*range(1500))
        rows = memo.rows(ks, inputs.of(ks))
        tables.append([t[rows] for t in memo.tables])
        for d in range(2):
            np.testing.assert_array_equal(tables[-1][d],
                                          layer.input_projection(inputs.rows_of(ks), d))
    for one, two in zip(*tables):
        np.testing.assert_array_equal(one, two)


def test_new_words_characters_follow_the_character_weights():
    """New words' character BiLSTM starts from a table of every character's input
    pre-activations (Network._char_projections), kept for the weights' version: after a
    change of the character weights alone and changed(), new words read the new table."""
    net, v = network()
    batch = Batch(TEXTS, v)
    assert_matches_forward(net, batch)
    net.char_embedding *= -2.0
    net.char_rnn.params["weight_ih_l0_reverse"] += 0.3
    net.char_rnn.params["bias_ih_l0"] -= 0.2
    net.changed()
    fresh = Batch(MORE + TEXTS, v)
    assert_matches_forward(net, fresh)
    tables = net._char_projections()
    assert [t.shape for t in tables] == [(len(v.chars), 4 * net.char_rnn.hidden_size)] * 2
    np.testing.assert_array_equal(tables[1], net.char_rnn.input_projection(net.char_embedding, 1))


def test_what_infer_derives_from_the_weights_survives_threads():
    """Network._derived keeps one value per key and weights' version; several threads
    deriving at once (predict_columns' summed rows are made outside the memo's lock) lose
    none of them and never see a cache being changed under them."""
    net, _ = network()
    errors = []

    def work(t):
        try:
            for i in range(600):
                assert net._derived(("test", t, i), lambda: (t, i)) == (t, i)
        except Exception as e:  # noqa: BLE001  # reported below, whatever it is
            errors.append(repr(e))

    run_interleaved([threading.Thread(target=work, args=(t,)) for t in range(4)])
    assert errors == []
    kept = [k for k in net._derived_cache if k[0] == "test"]
    assert len(kept) == 4 * 600  # none lost: one writer at a time, on the latest cache
    net.changed()
    assert net._derived(("test", 0, 0), lambda: "new") == "new"
    assert [k for k in net._derived_cache if k[0] == "test"] == [("test", 0, 0, net.version)]
