"""Tagging every column with the lemma head scored only on the scripts that fit each word
(seqtag.network.Network.best_fitting_scripts, since 2026-12-04) against its whole product
(every script's logit, then the best, as tagging did before), side by side in one process.

    python bench/lemma_scripts.py [--model MODEL] [--rounds 31] [--threads 2] [--fresh]

EWT test's words, the memo filled by a warm-up pass (a long run's steady state; with
--fresh every pass starts as in a new process: the memos emptied, and the lemma head's
scripts that fit each word and lemmas of (word, script) pairs forgotten), each round tags
them once per variant in a new seeded random order; printed as
bench/heads_throughput.py prints (bench/common.report_rounds), the reference being
configuration (c) of bench/compare_torch.py (the UPOS-only network, batches of about
2,048 tokens).  "whole product" swaps seqtag.inference._start_lemmas for the way it
worked before: Network.head_logits of every script for the tokens the lexicon does not
answer (on the second thread, as now), then each one's best script, the first of the
four best that fits where it does not (the lemmas differ only where none of them fits:
2 tokens of EWT test's lemmas, before the lexicon); only the time is compared here.
"""

import argparse
import os
import random
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, first_head_network, machine_line, report_rounds  # noqa: E402

from seqtag import Tagger, inference, runtime  # noqa: E402
from seqtag.corpus import read_corpus  # noqa: E402
from seqtag.heads import LEMMA_IS_FORM  # noqa: E402
from seqtag.inference import predict_log_probs  # noqa: E402
from seqtag.lemma import apply_script  # noqa: E402


def _whole_product(network, hidden, k, rows):
    logits = network.head_logits(hidden, [k], rows, split=False)
    return logits, logits.argmax(axis=1)


def whole_product_lemmas(network, head, k, hidden, batch, upos_ids, upos_labels,
                         form_rows=None, beside=False):
    """inference._start_lemmas as it worked before the scripts that fit (with UPOS)."""
    n = batch.n_tokens
    _, table, lemmas = head.lexicon_table(upos_labels)
    if form_rows is None:
        form_rows = inference._lexicon_rows(network, head, upos_labels, batch)
    known = table[form_rows, upos_ids]
    missing = np.flatnonzero(known == -1)
    if len(missing):
        result = runtime.deferred(beside, _whole_product, network, hidden, k, missing)

    def finish():
        packed = known.astype(np.int64)
        same = packed == LEMMA_IS_FORM
        packed[same] = len(lemmas) + batch.form_of_row[same]
        scripted = []
        if len(missing):
            words = list(map(batch.forms.__getitem__, batch.form_of_row[missing].tolist()))
            logits, best = result()
            scripted = head._applied(words, best.tolist())
            for i in [i for i, lemma in enumerate(scripted) if lemma is None]:
                order = np.argsort(-logits[i], kind="stable")[:4]
                scripted[i] = next((lemma for j in order if (lemma := apply_script(
                    words[i], head.scripts[j])) is not None), words[i])
            first = len(lemmas) + len(batch.forms)
            packed[missing] = np.arange(first, first + len(missing))
        ids = np.empty(n, dtype=np.int64)
        ids[batch.flat_index] = packed
        return lemmas, ids, batch.forms + scripted
    return finish


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a model with UPOS and lemma heads (default: the "
                                        "bundled)")
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", action="store_true",
                        help="every pass as in a new process (new text)")
    args = parser.parse_args()
    print(machine_line())
    tagger = Tagger.load(args.model, threads=args.threads)
    if not {"upos", "lemma"} <= set(tagger.columns):
        sys.exit("the model needs UPOS and lemma heads")
    words = [s.words for s in read_corpus(ewt_path("test"), require_tags=False)]
    tokens = sum(map(len, words))
    one = first_head_network(tagger)
    fitting = inference._start_lemmas

    def every_column(start_lemmas):
        def run():
            inference._start_lemmas = start_lemmas
            try:
                tagger.predict_columns(words)
            finally:
                inference._start_lemmas = fitting
        return run

    variants = {
        "UPOS-only network (c)": lambda: predict_log_probs(one, tagger.vocab, words,
                                                           batch_tokens=2048, memo=True),
        "every column, scripts that fit": every_column(fitting),
        "every column, whole product": every_column(whole_product_lemmas),
    }
    if args.fresh:
        lemma_head = next(h for h in tagger.vocab.heads if h.column == "lemma")

        def forgetting(run):
            def fresh():
                one.changed()
                tagger.network.changed()
                lemma_head.__dict__.pop("script_sets", None)
                lemma_head._fits = {}
                run()
            return fresh
        variants = {name: forgetting(run) for name, run in variants.items()}
    report_rounds(variants, tokens, args.rounds, "UPOS-only network (c)",
                  random.Random(0).shuffle)


if __name__ == "__main__":
    main()
