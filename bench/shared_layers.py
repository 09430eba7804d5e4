"""Tagging with each layer's two directions shared out in parts between both threads
(seqtag.rnn.RNN._infer_layer_shared) against a direction per thread, in one process.

    python bench/shared_layers.py [--rounds 16]

Each round runs every variant once with the layers shared (seqtag.rnn.SHARED_PARTS as it
is) and once a direction per thread (SHARED_PARTS = 1), in alternating order, and prints
the median of each and their ratio (below 1: sharing is faster).  Variants, on EWT test:
the bundled model's every column (Tagger.predict_columns: what `seqtag tag --format conllu`
computes, batches of 4,096 tokens), its UPOS (Tagger.predict: text output), and
configuration (c) of bench/compare_torch.py (its network and batches of 2,048 tokens) with
a warm and an emptied ("fresh") memo.  The values are the same bit for bit either way
(tests/test_shared_layers.py); only the time differs.  Both threads must be free: on a
machine with one core, or without fused kernels, nothing is shared and the ratios are 1
but for noise.

    python bench/shared_layers.py --equal-parts [--rounds 60]

compares instead the parts as they are cut now (falling in size, k : k - 1 : ... : 1:
seqtag.rnn.SHARED_PARTS' comment) with parts of equal rows, as they were cut until
2026-12-04 (at most 4, of 1,024 rows or more, at least 2), and prints the ratio of the
medians and the median of the rounds' ratios.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torch as ct  # noqa: E402
from common import machine_line, paired_settings  # noqa: E402

import seqtag.rnn  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--equal-parts", action="store_true",
                        help="falling parts (as now) against equal ones (as before)")
    args = parser.parse_args()
    print(machine_line())
    variants, _, tokens = ct.tagging_variants()
    now = seqtag.rnn.RNN._shared_cuts
    if args.equal_parts:
        labels = ("falling parts", "equal parts")
        settings = {"falling parts": now, "equal parts": equal_cuts(now)}
    else:
        labels = ("shared", "a direction per thread")
        settings = {"shared": now, "a direction per thread": lambda *args: None}

    def apply(label):
        seqtag.rnn.RNN._shared_cuts = settings[label]

    try:
        paired_settings(variants, labels, apply, args.rounds,
                        f"EWT test, {tokens:,} tokens a pass")
    finally:
        seqtag.rnn.RNN._shared_cuts = now


def equal_cuts(now):
    """RNN._shared_cuts as it was until 2026-12-04: where `now` shares a layer, at most 4
    parts of 1,024 rows or more (at least 2), of about equal rows."""
    def cuts(rnn, packing, packed):
        if now(rnn, packing, packed) is None:
            return None
        parts = max(2, min(4, packing.n_rows // 1024))
        rows = np.cumsum(packing.lengths[packing.order])
        ends = np.searchsorted(rows, rows[-1] * np.arange(1, parts) / parts)
        bounds = sorted({0, packing.batch, *(ends + 1).tolist()})
        return list(zip(bounds[:-1], bounds[1:]))
    return cuts


if __name__ == "__main__":
    main()
