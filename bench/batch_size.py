"""Tagging speed by batch size, side by side in one process, with the page faults each
pass costs.

    python bench/batch_size.py [--sizes 2048 4096] [--rounds 20] [--threads 2] [--model M]

EWT test's words (gold tokens), memo warm.  Per round, in shuffled order: configuration (c)
of bench/compare_torch.py (the model's UPOS head alone as its own network, batches of 2,048
tokens: the reference), and at each size every column decoded (Tagger.predict_columns's
work) and the UPOS head alone (Tagger.predict's).  Prints the medians, each against (c),
and the minor page faults a pass: memory the C library maps anew for a batch's arrays after
giving what the last batch freed back to the system, which happens in some states of a
process and not in others (seqtag.inference.BATCH_TOKENS says which size tagging uses).
"""

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, first_head_network, machine_line, report_rounds  # noqa: E402

from seqtag import Tagger  # noqa: E402
from seqtag.corpus import read_corpus  # noqa: E402
from seqtag.inference import predict_columns, predict_log_probs  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", help="a model of several columns (default: the bundled)")
    args = parser.parse_args()
    print(machine_line())
    tagger = Tagger.load(args.model, threads=args.threads)
    words = [s.words for s in read_corpus(ewt_path("test"), require_tags=False)]
    tokens = sum(map(len, words))
    upos_only = first_head_network(tagger)
    columns = list(tagger.columns)
    variants = {"(c)": lambda: predict_log_probs(upos_only, tagger.vocab, words,
                                                 batch_tokens=2048, memo=True)}
    for size in args.sizes:
        variants[f"every column, {size}"] = (lambda size=size: predict_columns(
            tagger.network, tagger.vocab, words, columns, batch_tokens=size))
        variants[f"UPOS head alone, {size}"] = (lambda size=size: predict_log_probs(
            tagger.network, tagger.vocab, words, batch_tokens=size, memo=True, heads=[0],
            normalize=False))
    print(f"EWT test, {tokens:,} tokens, {args.threads} threads, median of {args.rounds} rounds")
    report_rounds(variants, tokens, args.rounds, "(c)", random.Random(0).shuffle)

if __name__ == "__main__":
    main()
