"""The learned front end against the rules, in-process, on the same raw text.

    python bench/frontend_speed.py [--passes 3] [--threads 2] [--model MODEL]

EWT train's `# text` lines made into paragraphs (bench/common.raw_text, as bench/raw_text.py
and bench/cli_throughput.py make them), cut into sentences, tokens and words by
seqtag.rawtext.segment as `seqtag tag -i FILE --input-format text` reads a file: with the
model's learned front end (default: the bundled model's) and with the rules
(seqtag.segment.RuleFrontEnd), alternating, `passes` times each.  The learned front end's
first pass is the command line's case (every form new to its word-level models); the
later ones reuse their per-form rows.  Prints each pass's time and, for the learned front
end, its parts: the character model's logits, the chunk lexicon, the per-form rows of the
word-level models and the sentences' objects.  Since 2026-12-03 (session 9) the character
model's logits of a batch run on the second thread while the batch before is handed out
(rawtext.segment reads a batch ahead): with nothing tagging them here, that part overlaps
the others, so the parts no longer add up to a pass.

    python bench/frontend_speed.py --fresh ROUNDS [--against DIR [--against-model MODEL]]

times the command line's case instead: each pass in a new process (python -c, the model
loaded there, every form new to the word-level models), its wall time and its CPU time,
learned and rules alternating in a shuffled order each round, and with --against the same
two for another source tree (PYTHONPATH=DIR, an older commit's work tree; its model
--against-model, default the bundled one of that tree) in the same rounds.  Prints the
median of each.
"""

import argparse
import collections
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, machine_line, raw_text  # noqa: E402
from profile_parts import timed_method  # noqa: E402

from seqtag import Tagger, rawtext, segment  # noqa: E402
from seqtag.corpus import _numbered_lines  # noqa: E402


# One pass in a new process: argv = text file, model path or "" (bundled) or "rules",
# threads; prints {"wall", "cpu", "tokens"} as JSON.
FRESH_PASS = r"""
import io, json, resource, sys, time
from seqtag import Tagger, rawtext, segment
from seqtag.corpus import _numbered_lines
path, model, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()
front_end = (segment.RuleFrontEnd() if model == "rules"
             else Tagger.load(model or None, threads=threads).frontend)
if model != "rules" and front_end.kind != "learned":
    sys.exit(f"{model or 'the bundled model'} has no learned front end")
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
tokens = 0
for _, sentences in rawtext.segment(rawtext.paragraphs(
        _numbered_lines(io.BytesIO(data), path, "utf-8")), front_end):
    tokens += sum(len(s.tokens) for s in sentences)
wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": wall, "tokens": tokens, "cpu": after.ru_utime - before.ru_utime
                  + after.ru_stime - before.ru_stime}))
"""


def fresh_passes(args, data):
    """--fresh: each pass a new process, learned and rules (and --against's) alternating."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    def absolute(model):  # the children run in a temporary folder
        return os.path.abspath(model) if model else ""

    trees = {"this tree": (here, absolute(args.model))}
    if args.against:
        trees["--against"] = (os.path.abspath(args.against), absolute(args.against_model))
    runs = [(name, kind) for name in trees for kind in ("learned", "rules")]
    times: dict = {run: [] for run in runs}
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "train.txt")
        with open(path, "wb") as f:
            f.write(data)
        for _ in range(args.fresh):
            rng.shuffle(runs)
            for name, kind in runs:
                tree, model = trees[name]
                env = dict(os.environ, PYTHONPATH=tree)
                env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed package runs
                out = subprocess.run(
                    [sys.executable, "-c", FRESH_PASS, path,
                     "rules" if kind == "rules" else model, str(args.threads)],
                    env=env, cwd=folder, capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{name} ({tree}), {kind}: {out.stderr.strip()[-500:]}")
                times[name, kind].append(json.loads(out.stdout))
    for name, (tree, model) in trees.items():
        for kind in ("learned", "rules"):
            got = times[name, kind]
            which = f"{kind} ({model})" if model and kind == "learned" else kind
            print(f"{name} ({tree}), {which}: wall "
                  f"{statistics.median(t['wall'] for t in got):.3f} s, CPU "
                  f"{statistics.median(t['cpu'] for t in got):.3f} s, {got[0]['tokens']:,} tokens "
                  f"(median of {len(got)} new processes)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", help="a model with a learned front end (default: bundled)")
    parser.add_argument("--fresh", type=int, metavar="ROUNDS",
                        help="each pass a new process, ROUNDS rounds (the command's case)")
    parser.add_argument("--against", metavar="DIR", help="with --fresh: another source tree")
    parser.add_argument("--against-model", metavar="MODEL", help="--against's model")
    args = parser.parse_args()
    if (args.against or args.against_model) and not args.fresh:
        parser.error("--against and --against-model need --fresh")
    print(machine_line())
    data = raw_text(open(ewt_path("train"), encoding="utf-8").read()).encode("utf-8")
    if args.fresh:
        print(f"EWT train as paragraphs, {len(data):,} bytes, {args.threads} threads")
        return fresh_passes(args, data)
    learned = Tagger.load(args.model, threads=args.threads).frontend
    if learned.kind != "learned":
        raise SystemExit(f"{args.model}: the model has no learned front end")
    totals: collections.defaultdict = collections.defaultdict(float)
    timed_method(segment, "_batched_logits", "character model", totals)
    timed_method(segment, "_apply_lexicon", "chunk lexicon", totals)
    timed_method(segment._FormRows, "rows", "per-form rows", totals)
    timed_method(segment, "_paragraph_sentences", "sentences' objects", totals)

    def run(front_end):
        totals.clear()
        start, tokens = time.perf_counter(), 0
        lines = _numbered_lines(io.BytesIO(data), "train.txt", "utf-8")
        for _, sentences in rawtext.segment(rawtext.paragraphs(lines), front_end):
            tokens += sum(len(s.tokens) for s in sentences)
        return time.perf_counter() - start, tokens

    print(f"EWT train as paragraphs, {len(data):,} bytes, {args.threads} threads")
    for k in range(1, args.passes + 1):
        seconds, tokens = run(learned)
        parts = ", ".join(f"{name} {t:.3f} s" for name, t in totals.items())
        print(f"pass {k}: learned {seconds:.3f} s ({tokens:,} tokens; {parts})")
        seconds, tokens = run(segment.RuleFrontEnd())
        print(f"pass {k}: rules   {seconds:.3f} s ({tokens:,} tokens)")


if __name__ == "__main__":
    main()
