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
"""

import argparse
import collections
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, machine_line, raw_text  # noqa: E402
from profile_parts import timed_method  # noqa: E402

from seqtag import Tagger, rawtext, segment  # noqa: E402
from seqtag.corpus import _numbered_lines  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", help="a model with a learned front end (default: bundled)")
    args = parser.parse_args()
    print(machine_line())
    data = raw_text(open(ewt_path("train"), encoding="utf-8").read()).encode("utf-8")
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
