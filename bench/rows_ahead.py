"""Tagging with each batch's memo rows found during the pass before it, on the second
thread (Batch.next_batch, Network._rows_ahead), against each batch finding its own, in one
process.

    python bench/rows_ahead.py [--rounds 30]

Each round runs every variant once with the batches linked (as seqtag.inference._batches
and compare_torch.tagging_batches link them) and once unlinked (each pass looks up its
forms, and runs the new ones' characters and projection, itself: what every pass did until
2026-12-04), in alternating order, and prints the median of each, the ratio of the
medians and the median of the rounds' ratios (below 1: linked is faster).  Variants, on
EWT test: configuration (c) of bench/compare_torch.py (its network and batches of 2,048
tokens) with a warm and an emptied ("fresh") memo, and the bundled model's every column
(Tagger.predict_columns: what `seqtag tag --format conllu` computes) and UPOS
(Tagger.predict).  The values are the same either way (tests/test_rows_ahead.py).
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torch as ct  # noqa: E402
from common import ewt_path, machine_line  # noqa: E402

from seqtag import Tagger, inference  # noqa: E402
from seqtag.corpus import read_corpus  # noqa: E402


def unlinked(batches):
    """seqtag.inference._batches with every Batch.next_batch cut."""
    def make(*args):
        for chunk, batch in batches(*args):
            batch.next_batch = None
            yield chunk, batch
    return make


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(machine_line())
    tagger = Tagger.load(threads=2)
    words = [s.words for s in read_corpus(ewt_path("test"), require_tags=False)]
    data = ct.load_data(dict(ct.FULL))
    model, _ = ct.seqtag_model("c", data, 2)
    batches = ct.tagging_batches(data)
    links = [b.next_batch for b in batches]
    linked_batches = inference._batches

    def setting(linked):
        for batch, following in zip(batches, links):
            batch.next_batch = following if linked else None
        inference._batches = linked_batches if linked else unlinked(linked_batches)

    variants = {
        "(c) warm memo": ct.seqtag_tag_pass(model, batches, False),
        "(c) fresh memo": ct.seqtag_tag_pass(model, batches, True),
        "every column (Tagger.predict_columns)": lambda: tagger.predict_columns(words),
        "UPOS (Tagger.predict)": lambda: tagger.predict(words),
    }
    labels = ("linked", "unlinked")
    times = {(name, label): [] for name in variants for label in labels}
    for run in variants.values():  # warm-up: memo, packed weights, workspaces
        run()
    try:
        for r in range(args.rounds):
            for name, run in variants.items():
                for label in (labels if r % 2 else labels[::-1]):
                    setting(label == "linked")
                    start = time.perf_counter()
                    run()
                    times[name, label].append(time.perf_counter() - start)
    finally:
        setting(True)
    tokens = sum(map(len, words))
    print(f"EWT test, {tokens:,} tokens a pass; median of {args.rounds} rounds, alternating")
    for name in variants:
        a, b = (times[name, label] for label in labels)
        paired = statistics.median(x / y for x, y in zip(a, b))
        ratio = statistics.median(a) / statistics.median(b)
        print(f"{name:40s} linked {1e3 * statistics.median(a):7.1f} ms   unlinked "
              f"{1e3 * statistics.median(b):7.1f} ms   ratio {ratio:.3f} (round by round "
              f"{paired:.3f})")


if __name__ == "__main__":
    main()
