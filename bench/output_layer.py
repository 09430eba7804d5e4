"""The joint model's output layer in one training step, outside the LSTM: the heads'
product, log-softmax, loss, d loss / d logits and the two backward products, for a batch
of EWT's size (32 sentences, ~520 tokens) and the bundled model's 715 output rows.

    python bench/output_layer.py [--rounds 200] [--rows 520]

"before": the route of seqtag before issue 13's speed work (a zero array of d loss /
d log_probs, then Network.backward's conversion: exp, reduceat, repeat, products, the two
backward products one after the other); "after": Network.loss_and_gradients' route (d
loss / d logits written over the log-probs; the two backward products on both cores).
Both give the same gradients bit for bit (tests/test_heads.py).  Alternating rounds, the
median printed, per batch and per EWT epoch (392 batches).
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
from common import machine_line  # noqa: E402

from seqtag import runtime  # noqa: E402
from seqtag.network import _log_softmax, grad_logits_in_place  # noqa: E402

SIZES = [17, 49, 230, 419]  # the bundled model's heads: UPOS, XPOS, FEATS, lemma scripts
EPOCH_BATCHES = 392  # EWT train in batches of 32 sentences


def forward_and_loss(hidden, weight, bias, bounds, targets):
    log_probs = hidden @ weight.T
    log_probs += bias
    _log_softmax(log_probs, bounds)
    loss, correct, cells = 0.0, 0, []
    for k in range(len(bounds) - 1):
        gold = targets[:, k]
        rows = np.flatnonzero(gold >= 0)
        n = max(len(rows), 1)
        columns = bounds[k] + gold[rows]
        loss -= log_probs[rows, columns].sum() / n
        correct += int((log_probs[:, bounds[k]:bounds[k + 1]].argmax(axis=1) == gold).sum())
        cells.append((rows, columns, 1.0 / n))
    return log_probs, cells


def before(hidden, weight, bias, bounds, targets):
    log_probs, cells = forward_and_loss(hidden, weight, bias, bounds, targets)
    grad = np.zeros_like(log_probs)
    for rows, columns, scale in cells:
        grad[rows, columns] = -scale
    probs = np.exp(log_probs)
    sums = np.add.reduceat(grad, bounds[:-1], axis=1)
    grad_logits = grad - probs * np.repeat(sums, np.diff(bounds), axis=1)
    return grad_logits.T @ hidden, grad_logits.sum(axis=0), grad_logits @ weight


def after(hidden, weight, bias, bounds, targets):
    log_probs, cells = forward_and_loss(hidden, weight, bias, bounds, targets)
    grad = grad_logits_in_place(log_probs, cells, bounds)
    other = runtime.run_beside(np.matmul, grad.T, hidden)
    grad_hidden = grad @ weight
    return other.result(), grad.sum(axis=0), grad_hidden


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--rows", type=int, default=520, help="tokens in the batch")
    args = parser.parse_args()
    print(machine_line())
    rng = np.random.default_rng(0)
    bounds = np.cumsum([0] + SIZES).astype(np.int64)
    weight = (rng.standard_normal((bounds[-1], 256)) * 0.05).astype(np.float32)
    bias = np.zeros(bounds[-1], dtype=np.float32)
    hidden = rng.standard_normal((args.rows, 256)).astype(np.float32)
    # gold labels, a few unknown (-1) in the lemma column as in EWT
    targets = np.stack([rng.integers(0, s, args.rows) for s in SIZES], axis=1)
    targets[rng.random(args.rows) < 0.02, 3] = -1
    with runtime.single_blas_thread():
        for got, want in zip(after(hidden, weight, bias, bounds, targets),
                             before(hidden, weight, bias, bounds, targets)):
            assert np.array_equal(got, want)
        times = {"before": [], "after": []}
        for _ in range(args.rounds):
            for name, step in (("before", before), ("after", after)):
                start = time.perf_counter()
                step(hidden, weight, bias, bounds, targets)
                times[name].append(time.perf_counter() - start)
    for name, t in times.items():
        ms = statistics.median(t) * 1e3
        print(f"{name:<7} {ms:6.2f} ms per batch of {args.rows} tokens, "
              f"{ms * EPOCH_BATCHES / 1e3:5.2f} s per EWT epoch")


if __name__ == "__main__":
    main()
