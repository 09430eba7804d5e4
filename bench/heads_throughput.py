"""Tagging throughput of a model of several columns: its first head alone (what `seqtag
tag` computes for text, tsv and json output) against every head (conllu output, analyze),
and a network of the same shape with one UPOS head, side by side in one run.

    python bench/heads_throughput.py [--model MODEL] [--rounds 5] [--threads 2] [--shuffle]

The sentences are EWT test's words; the memo is filled by a warm-up pass, so the figure is a
long run's steady state; each round tags them once per variant, alternating (with --shuffle
in a new seeded random order each round, as bench/batch_size.py: no variant always follows
the same one), and the median round is printed, then each variant's share of (c) round by
round (its median over the rounds and interquartile range). The reference is configuration
(c) of bench/compare_torch.py: the UPOS-only network, batches of about 2,048 tokens. "every
head, logits" is the one product of every head's rows, undecoded; "UPOS, XPOS, FEATS logits"
that of every head but the lemma head's, in batches of about 4,096 tokens: what decoding
those columns computed before XPOS and FEATS came from each predicted UPOS's analyses alone
(one row per analysis seen with it: 29 a token on EWT test, against those heads' 279).
"every column, decoded" is exactly what `seqtag tag --format conllu` (per chunk of
sentences) and Tagger.analyze run: Tagger.predict_columns, in its batches
(seqtag.inference.BATCH_TOKENS, 4,096 tokens since 2026-12-03's session 8; 2,048 before)
(UPOS labels, XPOS and FEATS the best analysis seen with the UPOS, lemmas from the lexicon
or, for the tokens it does not know, the lemma head's scripts); "UPOS, XPOS, FEATS, decoded"
is the same without the lemmas; "Tagger.predict" is the UPOS of text output in those same
batches.
"""

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, first_head_network, machine_line, report_rounds  # noqa: E402

from seqtag import Tagger  # noqa: E402
from seqtag.corpus import read_corpus  # noqa: E402
from seqtag.inference import predict_log_probs  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a model of several columns (default: the bundled)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shuffle", action="store_true",
                        help="each round in a new random order (seeded), as batch_size.py")
    args = parser.parse_args()
    print(machine_line())
    tagger = Tagger.load(args.model, threads=args.threads)
    words = [s.words for s in read_corpus(ewt_path("test"), require_tags=False)]
    tokens = sum(map(len, words))
    sizes = [h.size for h in tagger.vocab.heads]
    print(f"model {tagger.meta.get('path')}: heads {[h.name for h in tagger.vocab.heads]} "
          f"of {sizes} labels; {tokens:,} tokens")
    one = first_head_network(tagger)

    variants = {
        "UPOS-only network (c)": lambda: predict_log_probs(one, tagger.vocab, words,
                                                           batch_tokens=2048, memo=True),
        "first head of the joint network": lambda: predict_log_probs(
            tagger.network, tagger.vocab, words, batch_tokens=2048, memo=True, heads=[0],
            normalize=False),
        "UPOS, XPOS, FEATS logits": lambda: predict_log_probs(
            tagger.network, tagger.vocab, words, batch_tokens=4096, memo=True,
            heads=[k for k, h in enumerate(tagger.vocab.heads) if h.column != "lemma"],
            normalize=False),
        "every head, logits": lambda: predict_log_probs(
            tagger.network, tagger.vocab, words, batch_tokens=2048, memo=True,
            normalize=False),
        "Tagger.predict (text output)": lambda: tagger.predict(words),
        "UPOS, XPOS, FEATS, decoded": lambda: tagger.predict_columns(
            words, [c for c in tagger.columns if c != "lemma"]),
        "every column, decoded (conllu)": lambda: tagger.predict_columns(words),
    }
    report_rounds(variants, tokens, args.rounds, "UPOS-only network (c)",
                  random.Random(0).shuffle if args.shuffle else None)

if __name__ == "__main__":
    main()
