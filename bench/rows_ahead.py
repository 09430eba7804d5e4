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
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torch as ct  # noqa: E402
from common import machine_line, paired_settings  # noqa: E402

from seqtag import inference  # noqa: E402


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
    variants, batches, tokens = ct.tagging_variants()
    links = [b.next_batch for b in batches]
    linked_batches = inference._batches

    def setting(linked):
        for batch, following in zip(batches, links):
            batch.next_batch = following if linked else None
        inference._batches = linked_batches if linked else unlinked(linked_batches)

    try:
        paired_settings(variants, ("linked", "unlinked"),
                        lambda label: setting(label == "linked"), args.rounds,
                        f"EWT test, {tokens:,} tokens a pass")
    finally:
        setting(True)


if __name__ == "__main__":
    main()
