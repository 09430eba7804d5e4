"""Where the time of configuration (a) of compare_torch.py goes: timers around the calls.

    python bench/profile_parts.py [--threads 2] [--passes 10]

Wraps RNN._run_directions (the two direction threads at work), RNN._infer_direction /
forward_packed / backward_packed, the memo lookup and Adam.step with wall-clock timers,
then tags EWT test `passes` times and runs the training batches of one round `passes`
times, and prints each part's time per pass or batch and its share of the wall time.  A
timer in the second thread counts that thread's own time ("(worker)").  Sampling
profilers lose that thread's native frames inside the AVX-512 kernels, hence timers.
"""

import argparse
import collections
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torch as ct  # noqa: E402
import numpy as np  # noqa: E402
from common import machine_line  # noqa: E402

from seqtag import rnn, runtime  # noqa: E402
from seqtag.optim import Adam  # noqa: E402


def timed_method(owner, name, label, totals):
    """Replace owner.name by a wrapper that adds its wall time to totals[label]."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            main = threading.current_thread() is threading.main_thread()
            totals[label + ("" if main else " (worker)")] += time.perf_counter() - start

    setattr(owner, name, wrapper)


def large_products_ms(rows, input_size, hidden, repeats=200):
    """One direction's four products over all rows of a training batch, on one BLAS
    thread, as NumPy runs them: x W_ih^T, d^T x, d^T h_prev and d W_ih (ms)."""
    rng = np.random.default_rng(0)
    x = rng.random((rows, input_size), dtype=np.float32)
    h_prev = rng.random((rows, hidden), dtype=np.float32)
    d = rng.random((rows, 4 * hidden), dtype=np.float32)
    w_ih = rng.random((4 * hidden, input_size), dtype=np.float32)
    products = [lambda: x @ w_ih.T, lambda: d.T @ x, lambda: d.T @ h_prev, lambda: d @ w_ih]
    with runtime.single_blas_thread():
        for product in products:
            product()
        start = time.perf_counter()
        for _ in range(repeats):
            for product in products:
                product()
    return (time.perf_counter() - start) / repeats * 1000


def report(title, totals, wall, units, unit):
    print(f"{title}: {wall * 1000 / units:.2f} ms per {unit}")
    for label, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {label:44}{seconds * 1000 / units:8.2f} ms  {seconds / wall:6.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=10)
    args = parser.parse_args()
    sizes = dict(ct.FULL)
    ct.setup_threads(args.threads, torch_too=False)
    data = ct.load_data(sizes)
    config = ct.CONFIGS["a"]
    tag_batches = ct.tagging_batches(data)
    train_batches = ct.training_batches(data, config, sizes)
    model, optimizer = ct.seqtag_model("a", data, args.threads)

    totals = collections.Counter()
    timed_method(rnn.RNN, "_run_directions", "both directions (RNN._run_directions)", totals)
    timed_method(rnn.RNN, "_infer_direction", "one direction, inference", totals)
    timed_method(rnn.RNN, "_forward_direction", "one direction, training forward", totals)
    timed_method(rnn.RNN, "_backward_direction", "one direction, backward", totals)
    timed_method(rnn.RNN, "forward_packed", "RNN.forward_packed", totals)
    timed_method(rnn.RNN, "backward_packed", "RNN.backward_packed", totals)
    timed_method(model.memo, "rows_of_ids", "memo lookup", totals)
    timed_method(Adam, "step", "Adam.step", totals)

    print(machine_line())
    for batch in tag_batches:  # warm-up: fills the memo
        ct.seqtag_tag(model, batch)
    totals.clear()
    start = time.perf_counter()
    for _ in range(args.passes):
        for batch in tag_batches:
            ct.seqtag_tag(model, batch)
    report(f"(a) tagging EWT test ({sum(b.n_tokens for b in tag_batches):,} tokens)",
           totals, time.perf_counter() - start, args.passes, "pass")

    for batch in train_batches[:3]:
        ct.seqtag_train_step(model, optimizer, batch)
    totals.clear()
    start = time.perf_counter()
    for _ in range(args.passes):
        for batch in train_batches:
            ct.seqtag_train_step(model, optimizer, batch)
    report(f"(a) training, batches of {config['batch_size']} sentences", totals,
           time.perf_counter() - start, args.passes * len(train_batches), "batch")
    rows = round(sum(b.n_tokens for b in train_batches) / len(train_batches))
    print(f"  of one direction's forward + backward, the four products over all {rows} "
          f"rows (BLAS, 1 thread): {large_products_ms(rows, ct.WORD_DIM, ct.HIDDEN):.2f} ms")


if __name__ == "__main__":
    main()
