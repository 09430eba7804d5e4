"""UPOS, XPOS, features and lemmas on gold tokens, scored by the official CoNLL 2018 scorer
(issue 13's table).

    python bench/morphology.py [--treebank ewt|sequoia|both] [--split test|dev]
                               [--model MODEL] [--sequoia-model PATH] [--threads 2]
                               [--out-dir DIR] [--verbose]

For each treebank: tags the gold CoNLL-U file with `seqtag tag --input-format conllu
--format conllu` (the gold tokens and words, every column the model predicts filled in,
the gold tree kept), scores it against the gold file with ../shared/tools/conll18_ud_eval.py
(imported from its file; a dummy tree where a HEAD is missing) and prints one table row,
with UDPipe 1.2's published figures (UD 2.5, gold tokenization) beside it.

EWT is tagged with --model (default: the bundled model).  French-Sequoia has no bundled
model: as bench/raw_text.py does, --sequoia-model PATH is used if it exists and trained
there with `seqtag train` defaults otherwise.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, scorer_path, sequoia_path  # noqa: E402
from raw_text import (SEQTAG, run_timed, score_output, sequoia_model, show,  # noqa: E402
                      start_run)

METRICS = ["UPOS", "XPOS", "UFeats", "AllTags", "Lemmas"]
# UDPipe 1.2 on UD 2.5, gold tokenization (the figures issue 13 quotes).
UDPIPE = {"EWT": {"UPOS": 94.4, "XPOS": 93.9, "UFeats": 95.4, "AllTags": 92.5,
                  "Lemmas": 96.4},
          "Sequoia": {"UPOS": 97.1, "UFeats": 95.9, "Lemmas": 97.8}}


def has_xpos(path):
    """Whether a CoNLL-U file has an XPOS anywhere."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split("\t")
            if len(fields) == 10 and fields[0].isdigit() and fields[4] != "_":
                return True
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--treebank", choices=["ewt", "sequoia", "both"], default="both")
    parser.add_argument("--split", choices=["test", "dev"], default="test")
    parser.add_argument("--model", help="model for EWT (default: the bundled one)")
    parser.add_argument("--sequoia-model", help="model for Sequoia: used if it exists, "
                        "trained there with `seqtag train` defaults otherwise")
    args, scorer, folder = start_run(parser, "seqtag-morphology-")
    rows, notes = [], []
    for name in (["ewt", "sequoia"] if args.treebank == "both" else [args.treebank]):
        label = {"ewt": "EWT", "sequoia": "Sequoia"}[name]
        gold = (ewt_path if name == "ewt" else sequoia_path)(args.split)
        if not gold.exists():
            sys.exit(f"gold file not found: {gold}; set SEQTAG_SHARED")
        if name == "sequoia":
            model, trained = sequoia_model(args.sequoia_model, folder)
            if trained:
                notes.append(f"training: `{show(trained[0])}`: {trained[1] / 60:.1f} min")
        else:
            model = args.model
        out_path = folder / f"{name}-{args.split}.conllu"
        command = SEQTAG + ["tag", "-i", gold, "--input-format", "conllu", "--format",
                            "conllu", "--threads", str(args.threads)]
        if model is not None:
            command += ["-m", model]
        with open(out_path, "w", encoding="utf-8") as out:
            seconds = run_timed(command, stdout=out)
        scored, evaluation, _ = score_output(scorer, gold, out_path, args.verbose)
        notes.append(f"{label}: `{show(command)}`: {seconds:.1f} s")
        notes.append(f"{label}: `python {scorer_path()} -v {gold} {scored}`")
        model_label = model if model is not None else "bundled model"
        # a column the treebank leaves empty (Sequoia's XPOS) scores 100 for any system
        # that leaves it empty too: shown as none
        empty = {"XPOS", "AllTags"} if not has_xpos(gold) else set()
        rows.append((f"seqtag ({model_label}), {label} {args.split}",
                     {m: 100 * evaluation[m].f1 for m in METRICS if m not in empty}))
        if args.split == "test":
            rows.append((f"UDPipe 1.2 (published, UD 2.5), {label} test", UDPIPE[label]))
    print()
    print("| gold tokens (official scorer) | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for label, scores in rows:
        print(f"| {label} | " + " | ".join(f"{scores[m]:.2f}" if m in scores else "–"
                                           for m in METRICS) + " |")
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
