"""A memoised pass finds the next batch's memo rows on the second thread (Batch.next_batch,
Network._rows_ahead): the same values as each batch finding its own, bit for bit, and the
memo never restarted, changed after the pass, or served from older weights by it."""

import threading
import time

import numpy as np
import pytest

from seqtag import inference
from seqtag.memo import ProjectionMemo
from seqtag.network import Batch
from test_memo import MORE, TEXTS, network

LATER = [
    "apples Zebras quietly ran 2025 ?".split(),
    "The big dog slept .".split(),
]


def linked(*batches):
    for batch, following in zip(batches, batches[1:]):
        batch.next_batch = following
    return batches


def batches_of(v):
    return Batch(TEXTS, v), Batch(MORE + TEXTS[:1], v), Batch(LATER, v)


def on_second_thread():
    return threading.current_thread() is not threading.main_thread()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("encode", [False, True])
def test_linked_batches_give_each_ones_own_values_bit_for_bit(cell, encode):
    ours, v = network(cell, threads=2)
    theirs, _ = network(cell, threads=2)
    first, second, third = linked(*batches_of(v))
    plain = batches_of(v)

    def run(net, batch):
        return net.encode(batch, [0])[1] if encode else net.infer(batch)

    got = [run(ours, first)]
    # the pass over the first found the second's rows: held, with its new forms
    assert second.rows_ahead is not None and second.rows_ahead[0] is ours._memo
    assert set(second.forms) <= set(ours._memo.index)
    got += [run(ours, second), run(ours, third)]
    assert second.rows_ahead is None and third.rows_ahead is None  # each used once
    want = [run(theirs, batch) for batch in plain]
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()
    assert ours._memo.index == theirs._memo.index
    for a, b in zip(ours._memo.tables, theirs._memo.tables):
        assert a[:ours._memo.held].tobytes() == b[:theirs._memo.held].tobytes()


def test_one_thread_finds_no_rows_ahead():
    net, v = network(threads=1)
    first, second, _ = linked(*batches_of(v))
    net.infer(first)
    assert second.rows_ahead is None
    assert sorted(net._memo.index) == sorted(first.forms)


def test_rows_ahead_never_restart_the_memo():
    """The next batch's new forms do not fit in the free rows: they wait for its own pass,
    which restarts the memo (this pass reads its rows meanwhile)."""
    first_words = [["the", "dog", "ate"]]
    net, v = network(capacity=5, threads=2)
    first, second = linked(Batch(first_words, v), Batch([["Cats", "sleep", "!"]], v))
    got = net.infer(first)
    assert second.rows_ahead is None
    assert sorted(net._memo.index) == sorted(["the", "dog", "ate"])
    np.testing.assert_allclose(got, net.forward(first)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.infer(second), net.forward(second)[0], rtol=1e-5,
                               atol=1e-6)
    assert sorted(net._memo.index) == ["!", "Cats", "sleep"]


def test_a_failure_finding_rows_ahead_only_loses_the_head_start(monkeypatch):
    net, v = network(threads=2)
    first, second, _ = linked(*batches_of(v))
    real = net._word_inputs
    failed = []

    def failing(forms, *args):  # once, finding the second batch's rows (either thread)
        if "Apple" in forms and not failed:
            failed.append(forms)
            raise MemoryError("no room for the next batch's rows")
        return real(forms, *args)

    monkeypatch.setattr(net, "_word_inputs", failing)
    got = net.infer(first)
    held = len(net._memo)
    assert failed and second.rows_ahead is None and held == len(first.forms)
    np.testing.assert_allclose(got, net.forward(first)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.infer(second), net.forward(second)[0], rtol=1e-5,
                               atol=1e-6)


def test_rows_ahead_of_older_weights_are_not_served():
    net, v = network(threads=2)
    first, second, _ = linked(*batches_of(v))
    net.infer(first)
    assert second.rows_ahead is not None
    net.word_embedding *= 3.0
    net.rnn.params["weight_ih_l0"] *= -1.5
    net.changed()
    np.testing.assert_allclose(net.infer(second), net.forward(second)[0], rtol=1e-5,
                               atol=1e-6)


def test_an_error_in_the_pass_waits_for_the_rows_ahead(monkeypatch):
    """The pass fails once the next batch's rows are being found: the error reaches the
    caller only when that has ended, so that nothing changes the memo after its lock is
    released."""
    net, v = network(threads=2)
    first, second, _ = linked(*batches_of(v))
    real_inputs = net._word_inputs
    started = threading.Event()

    def slow(*args):
        if on_second_thread():
            started.set()
            time.sleep(0.3)
        return real_inputs(*args)

    def failing_forward(memo, *args, queue_first=None, **kwargs):
        queue_first()
        assert started.wait(5)
        raise RuntimeError("the pass failed")

    monkeypatch.setattr(net, "_word_inputs", slow)
    monkeypatch.setattr(ProjectionMemo, "forward", failing_forward)
    with pytest.raises(RuntimeError, match="the pass failed"):
        net.infer(first)
    held = len(net._memo)
    assert second.rows_ahead is not None
    assert held == len(set(first.forms) | set(second.forms))
    time.sleep(0.4)
    assert len(net._memo) == held
    assert not net._memo_lock.locked()


def test_tagging_links_its_batches(monkeypatch):
    """seqtag.inference makes each batch before the one ahead of it is tagged, and links
    them: every batch but the first has its rows found ahead."""
    net, v = network(threads=2)
    seen = []
    real = net._memo_rows

    def recorded(batch, clear=True):
        if clear:  # a pass's own (finding the next batch's rows: clear=False)
            seen.append(batch.rows_ahead is not None)
        return real(batch, clear)

    monkeypatch.setattr(net, "_memo_rows", recorded)
    words = TEXTS + MORE + LATER
    inference.predict_log_probs(net, v, words, batch_tokens=8, memo=True)
    assert len(seen) > 3 and seen[0] is False and all(seen[1:])
