"""Give a joint model trained before tag combinations existed (the bundled one) the
(UPOS, XPOS, FEATS) analyses seen in its training corpus, so that its XPOS and FEATS are
chosen together with its UPOS (seqtag.heads.TagCombinations).  The weights are not
touched; only the UPOS head's metadata gains the analyses.

    python bench/attach_combinations.py -o en_ewt_upos.npz [--model BASE]
        [--train EWT-TRAIN] [--float16]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path  # noqa: E402

from seqtag import Tagger  # noqa: E402
from seqtag.corpus import read_corpus  # noqa: E402
from seqtag.heads import tag_combinations  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="joint model (default: the bundled one)")
    parser.add_argument("--train", default=str(ewt_path("train")),
                        help="the corpus the model was trained on")
    parser.add_argument("--float16", action="store_true")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    tagger = Tagger.load(args.model)
    heads = tagger.vocab.heads
    combinations = tag_combinations(heads, read_corpus(args.train, require_tags=False))
    if combinations is None:
        raise SystemExit("the model has no UPOS head with an XPOS or whole-FEATS head beside it")
    next(h for h in heads if h.column == "upos").combinations = combinations
    tagger.save(args.output, float16=args.float16)
    print(f"{args.output}: {len(combinations.seen)} analyses of "
          f"{', '.join(combinations.columns)} attached")


if __name__ == "__main__":
    main()
