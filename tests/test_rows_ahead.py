"""A memoised pass finds the next batch's memo rows on the second thread (Batch.next_batch,
Network._rows_ahead): the same values as each batch finding its own, bit for bit, and the
memo never restarted, changed after the pass, or served from older weights by it."""

import signal
import threading
import time

import numpy as np
import pytest

import seqtag.rnn
from seqtag import inference, runtime
from seqtag.memo import ProjectionMemo
from seqtag.network import Batch, Network, link_batches
from seqtag.rnn import RNN
from test_memo import MORE, TEXTS, network

LATER = [
    "apples Zebras quietly ran 2025 ?".split(),
    "The big dog slept .".split(),
]


def linked(*batches):
    return link_batches(list(batches))


def batches_of(v):
    return Batch(TEXTS, v), Batch(MORE + TEXTS[:1], v), Batch(LATER, v)


def on_second_thread():
    return threading.current_thread() is not threading.main_thread()


def queued_and_taken(monkeypatch):
    """A function that, given a pass's queue_first, returns one that queues the next
    batch's rows and then waits until the second thread has started finding them: these
    batches are so small that a pass could end before that thread wakes up, and a
    look-ahead it has not started is dropped."""
    started = threading.Event()
    real_rows = Network._memo_rows

    def rows(self, batch, clear=True):
        if not clear:  # finding the next batch's rows
            started.set()
        return real_rows(self, batch, clear)

    monkeypatch.setattr(Network, "_memo_rows", rows)

    def waiting(queue_first):
        def queue_and_wait():
            started.clear()
            queue_first()
            assert started.wait(5)
        return queue_and_wait
    return waiting


@pytest.fixture
def taken(monkeypatch):
    """Every pass waits until the second thread has taken its look-ahead
    (queued_and_taken)."""
    waiting = queued_and_taken(monkeypatch)
    real_forward = ProjectionMemo.forward

    def forward(memo, *args, queue_first=None, **kwargs):
        if queue_first is not None:
            waiting(queue_first)()
        return real_forward(memo, *args, **kwargs)

    monkeypatch.setattr(ProjectionMemo, "forward", forward)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("encode", [False, True])
def test_linked_batches_give_each_ones_own_values_bit_for_bit(cell, encode, taken):
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


def test_a_failure_finding_rows_ahead_only_loses_the_head_start(monkeypatch, taken):
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
    assert net._memo.misses == len(first.forms)  # the failed look-ahead counts nothing
    np.testing.assert_allclose(got, net.forward(first)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.infer(second), net.forward(second)[0], rtol=1e-5,
                               atol=1e-6)
    assert net._memo.misses == len(net._memo)  # every row counted once


def test_rows_ahead_of_older_weights_are_not_served(taken):
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


def test_tagging_links_its_batches(monkeypatch, taken):
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


@pytest.mark.skipif(not runtime.fused_step_enabled(),
                    reason="no AVX2 or AVX-512 on this CPU (or a build without them), or "
                           "SEQTAG_FUSED_STEP=0: layers are shared out in parts only with the "
                           "fused steps")
def test_layers_shared_in_parts_find_the_rows_ahead_too(monkeypatch):
    """The default tagger's path: a float32 LSTM on the fused kernels, both threads, each
    layer shared out in parts (RNN._infer_layer_shared) queues the next batch's rows."""
    monkeypatch.setattr(seqtag.rnn, "SHARED_MIN_ROWS", 1)
    monkeypatch.setattr(seqtag.rnn, "SHARED_PART_ROWS", 1)
    shared = []
    real = RNN._infer_layer_shared
    waiting = queued_and_taken(monkeypatch)

    def recorded(self, jobs, cuts, queue_first=None):
        shared.append(queue_first is not None)
        return real(self, jobs, cuts, waiting(queue_first) if queue_first else None)

    monkeypatch.setattr(RNN, "_infer_layer_shared", recorded)
    ours, v = network(threads=2)
    theirs, _ = network(threads=2)
    first, second, third = linked(*batches_of(v))
    got = [ours.infer(first)]
    assert shared[:2] == [True, False]  # the first layer queues them, the second not
    assert second.rows_ahead is not None
    got += [ours.infer(second), ours.infer(third)]
    want = [theirs.infer(batch) for batch in batches_of(v)]
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()


def test_two_networks_over_the_same_linked_batches(taken):
    """Rows found ahead by one network's pass are that memo's: another network computes
    its own (and leaves them), and each gets its own values."""
    ours, v = network(threads=2, seed=3)
    other, _ = network(threads=2, seed=4)
    first, second, _ = linked(*batches_of(v))
    ours.infer(first)
    found = second.rows_ahead
    assert found is not None and found[0] is ours._memo
    theirs = other.infer(second)
    assert second.rows_ahead is found  # not the other network's to use or drop
    np.testing.assert_allclose(theirs, other.forward(second)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.infer(second), ours.forward(second)[0], rtol=1e-5,
                               atol=1e-6)
    assert second.rows_ahead is None


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_an_exception_from_a_signal_while_waiting_waits_for_the_rows_ahead(monkeypatch):
    """A signal handler raises (a per-request timeout) while the pass waits for the next
    batch's rows: the exception reaches the caller once they are found, never while the
    second thread still changes the memo."""
    net, v = network(threads=2)
    first, second, _ = linked(*batches_of(v))
    real_inputs = net._word_inputs

    def slow(*args):
        if on_second_thread():
            started.append(True)
            time.sleep(0.4)
        return real_inputs(*args)

    class Timeout(Exception):
        pass

    def timeout(signum, frame):
        raise Timeout("too slow")

    real_forward = ProjectionMemo.forward

    def forward(memo, *args, queue_first=None, **kwargs):
        queue_first()
        while not started:  # the second thread has taken it: it sleeps in slow()
            time.sleep(0.001)
        return real_forward(memo, *args, **kwargs)

    started = []
    monkeypatch.setattr(net, "_word_inputs", slow)
    monkeypatch.setattr(ProjectionMemo, "forward", forward)
    old = signal.signal(signal.SIGALRM, timeout)
    try:
        # the pass itself is short: the alarm comes while it waits for the second thread
        signal.setitimer(signal.ITIMER_REAL, 0.15)
        with pytest.raises(Timeout):
            net.infer(first)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    held, index = len(net._memo), dict(net._memo.index)
    time.sleep(0.5)
    assert len(net._memo) == held and net._memo.index == index
    assert not net._memo_lock.locked()


def test_a_look_ahead_the_second_thread_has_not_started_is_dropped():
    """The second thread is busy the whole pass: the next batch's rows are not found here
    (nor later, there), and that batch's own pass finds them."""
    net, v = network(threads=2)
    first, second, _ = linked(*batches_of(v))
    busy = runtime.run_beside(time.sleep, 0.3)
    got = net.infer(first)
    assert second.rows_ahead is None and sorted(net._memo.index) == sorted(first.forms)
    busy.result()
    time.sleep(0.05)
    assert second.rows_ahead is None and sorted(net._memo.index) == sorted(first.forms)
    np.testing.assert_allclose(got, net.forward(first)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.infer(second), net.forward(second)[0], rtol=1e-5,
                               atol=1e-6)
