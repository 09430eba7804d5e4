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
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torch as ct  # noqa: E402
from common import ewt_path, machine_line  # noqa: E402

import seqtag.rnn  # noqa: E402
from seqtag import Tagger  # noqa: E402
from seqtag.corpus import read_corpus  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=16)
    args = parser.parse_args()
    print(machine_line())
    tagger = Tagger.load(threads=2)
    words = [s.words for s in read_corpus(ewt_path("test"), require_tags=False)]
    data = ct.load_data(dict(ct.FULL))
    model, _ = ct.seqtag_model("c", data, 2)
    batches = ct.tagging_batches(data)

    variants = {
        "every column (Tagger.predict_columns)": lambda: tagger.predict_columns(words),
        "UPOS (Tagger.predict)": lambda: tagger.predict(words),
        "(c) warm memo": ct.seqtag_tag_pass(model, batches, False),
        "(c) fresh memo": ct.seqtag_tag_pass(model, batches, True),
    }
    shared = seqtag.rnn.SHARED_PARTS
    times = {(name, parts): [] for name in variants for parts in (shared, 1)}
    for run in variants.values():  # warm-up: memo, packed weights, workspaces
        run()
    for r in range(args.rounds):
        for name, run in variants.items():
            for parts in ((shared, 1) if r % 2 else (1, shared)):
                seqtag.rnn.SHARED_PARTS = parts
                start = time.perf_counter()
                run()
                times[name, parts].append(time.perf_counter() - start)
    seqtag.rnn.SHARED_PARTS = shared
    tokens = sum(map(len, words))
    print(f"EWT test, {tokens:,} tokens a pass; median of {args.rounds} rounds, alternating")
    for name in variants:
        a, b = (statistics.median(times[name, p]) for p in (shared, 1))
        print(f"{name:40s} shared {1e3 * a:7.1f} ms   a direction per thread {1e3 * b:7.1f} ms"
              f"   ratio {a / b:.3f}")


if __name__ == "__main__":
    main()
