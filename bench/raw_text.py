"""Tagging from raw text, scored by the official CoNLL 2018 scorer (issue 11's table).

    python bench/raw_text.py [--treebank ewt|sequoia|both] [--split test|dev|train]
                             [--model MODEL] [--sequoia-model PATH] [--system seqtag]
                             [--input-format text] [--threads 2] [--out-dir DIR] [--verbose]

For each treebank: makes the raw text of the gold file (common.raw_text: a paragraph per
line, blank line between paragraphs), runs the system on it, fills a dummy tree where its
CoNLL-U has no HEADs (the scorer needs one; the tagging scores do not depend on it), scores
it against the gold file with ../shared/tools/conll18_ud_eval.py (imported from its file)
and prints one table row, with the commands, the tagging command's wall time and tokens/s.

French-Sequoia has no bundled model: without --sequoia-model one is trained first with
`seqtag train` defaults (minutes); with --sequoia-model PATH, PATH is used if it exists and
trained there otherwise, so a rerun with the same option reuses it.

The system is run as a command line only, so whatever `seqtag tag --input-format text`
does (today: a sentence per line, rule tokenizer; with a learned front end: sentences,
tokens and multiword tokens found by the model) is what gets scored.
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (ewt_path, fill_dummy_tree, load_scorer, machine_line, raw_text,  # noqa: E402
                    scorer_path, sequoia_path)

SEQTAG = [sys.executable, "-m", "seqtag"]
TREEBANKS = {"ewt": ("EWT", ewt_path), "sequoia": ("Sequoia", sequoia_path)}
# Printed when the system fills the column; Tokens to UPOS always are.
OPTIONAL_METRICS = {"XPOS": "XPOS", "UFeats": "FEATS", "Lemmas": "LEMMA"}


def show(command):
    return " ".join(shlex.quote(str(a)) for a in command)


def run_timed(command, **kwargs):
    print(f"$ {show(command)}", flush=True)
    start = time.perf_counter()
    if subprocess.run(command, **kwargs).returncode:
        sys.exit(f"failed (its message is above): {show(command)}")
    return time.perf_counter() - start


def sequoia_model(path, folder):
    """The Sequoia model to tag with: `path` if it exists, else one trained there (or in
    `folder` without a path) with `seqtag train` defaults."""
    if path is not None and Path(path).exists():
        print(f"Sequoia model: {path} (reused; delete it to retrain)")
        return Path(path), None
    path = Path(path) if path is not None else Path(folder) / "fr_sequoia-default.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    command = SEQTAG + ["train", sequoia_path("train"), "--dev", sequoia_path("dev"),
                        "-o", path, "-q"]
    seconds = run_timed(command)
    print(f"trained in {seconds / 60:.1f} min: {path} (rerun with --sequoia-model {path} to "
          f"reuse it)")
    return path, (command, seconds)


def run_seqtag(raw_path, model, out_path, args):
    command = SEQTAG + ["tag", "-i", raw_path, "--format", "conllu", "--threads",
                        str(args.threads)]
    if args.input_format:
        command += ["--input-format", args.input_format]
    if model is not None:
        command += ["-m", model]
    with open(out_path, "w", encoding="utf-8") as out:
        seconds = run_timed(command, stdout=out)
    return command, seconds


SYSTEMS = {"seqtag": run_seqtag}


def filled(scorer, ud, column_name):
    # The scorer keeps only universal features, so an empty FEATS reads "" there, not "_".
    column = getattr(scorer, column_name)
    return any(w.columns[column] not in ("_", "") for w in ud.words)


def evaluate(scorer, gold_path, system_path):
    with open(gold_path, encoding="utf-8") as g, open(system_path, encoding="utf-8") as s:
        gold, system = scorer.load_conllu(g), scorer.load_conllu(s)
    return scorer.evaluate(gold, system), system


def score_output(scorer, gold, out_path, verbose):
    """Score a system's CoNLL-U output against the gold file, with a dummy tree where it
    has no HEADs (written next to it as .tree.conllu); exits if the scorer rejects it.
    Returns (the scored file, the evaluation, the system's words as the scorer read them)."""
    scored_path = out_path.with_suffix(".tree.conllu")
    scored_path.write_text(fill_dummy_tree(out_path.read_text(encoding="utf-8")),
                           encoding="utf-8")
    try:
        evaluation, system = evaluate(scorer, gold, scored_path)
    except scorer.UDError as e:
        sys.exit(f"the scorer rejects {scored_path}: {e}")
    if verbose:
        print(scorer.build_evaluation_table(evaluation, True, False))
    return scored_path, evaluation, system


def start_run(parser, prefix):
    """Add the options every scorer run takes (--threads, --out-dir, --verbose), parse them,
    load the scorer and make the output folder; prints the machine and the folder.
    Returns (args, scorer module, folder)."""
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", help="where the inputs and outputs go (default: a new "
                        "temporary folder, kept)")
    parser.add_argument("--verbose", action="store_true", help="the scorer's full table too")
    args = parser.parse_args()
    try:
        scorer = load_scorer()
    except FileNotFoundError as e:
        sys.exit(str(e))
    folder = Path(args.out_dir or tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    print(f"files in {folder}")
    return args, scorer, folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--treebank", choices=["ewt", "sequoia", "both"], default="both")
    parser.add_argument("--split", choices=["test", "dev", "train"], default="test",
                        help="train: a bigger file, for the speed")
    parser.add_argument("--system", choices=sorted(SYSTEMS), default="seqtag")
    parser.add_argument("--model", help="model for EWT (default: the bundled one)")
    parser.add_argument("--sequoia-model", help="model for Sequoia: used if it exists, "
                        "trained there with `seqtag train` defaults otherwise")
    parser.add_argument("--input-format", default="text",
                        help="passed to `seqtag tag --input-format` ('' for none)")
    args, scorer, folder = start_run(parser, "seqtag-raw-text-")
    names = ["ewt", "sequoia"] if args.treebank == "both" else [args.treebank]
    rows, notes = [], []
    for name in names:
        label, path_of = TREEBANKS[name]
        gold = path_of(args.split)
        if not gold.exists():
            sys.exit(f"gold file not found: {gold}; set SEQTAG_SHARED")
        if name == "sequoia":
            model, trained = sequoia_model(args.sequoia_model, folder)
            model_label = "trained on Sequoia train"
            if trained:
                notes.append(f"training: `{show(trained[0])}`: {trained[1] / 60:.1f} min")
        else:
            model = args.model
            model_label = f"model {args.model}" if args.model else "bundled model"
        raw_path = folder / f"{name}-{args.split}.txt"
        raw_path.write_text(raw_text(gold.read_text(encoding="utf-8")), encoding="utf-8")
        out_path = folder / f"{name}-{args.split}.{args.system}.conllu"
        command, seconds = SYSTEMS[args.system](raw_path, model, out_path, args)
        scored_path, evaluation, system = score_output(scorer, gold, out_path, args.verbose)
        tokens = len(system.tokens)
        notes.append(f"{label}: `{show(command)}`: {seconds:.2f} s, {tokens:,} tokens = "
                     f"{tokens / seconds:,.0f} tokens/s (whole command: start-up, model load, "
                     f"tokenizing, tagging, writing)")
        notes.append(f"{label}: `python {scorer_path()} -v {gold} {scored_path}`")
        rows.append((f"{args.system}, {model_label}, {label} {args.split}", evaluation, system))

    metrics = ["Tokens", "Sentences", "Words", "UPOS"]
    for metric, column in OPTIONAL_METRICS.items():
        if any(filled(scorer, system, column) for _, _, system in rows):
            metrics.append(metric)
    if "XPOS" in metrics or "UFeats" in metrics:
        metrics.insert(metrics.index("UPOS") + 1 + ("XPOS" in metrics) + ("UFeats" in metrics),
                       "AllTags")
    print()
    print("| raw text (official scorer, F1) | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for label, evaluation, _ in rows:
        print(f"| {label} | " + " | ".join(f"{100 * evaluation[m].f1:.2f}" for m in metrics)
              + " |")
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
