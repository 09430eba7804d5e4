"""End-to-end tagging speed of the command line on EWT train's 204,577 tokens.

    python bench/cli_throughput.py [--threads 2] [--model MODEL-WITH-A-LEARNED-FRONT-END]

Writes EWT train's tokens (one per line, blank line between sentences), its sentences
(tokens joined by spaces, one per line: --input-format lines) and its raw text (the
sentences' `# text` in paragraphs, as bench/raw_text.py makes it: --input-format text) to a
temporary folder, then times `seqtag tag -i FILE` on each, output to /dev/null: reading,
tokenizing, sentence splitting, batching, tagging and formatting included.  Tokens never
meet a front end; the lines and the raw text go through the bundled model's learned front
end (lines: tokens only, a sentence per line) and through the rules (the same model saved
without its front end, in the temporary folder: what `seqtag tag -i` did before models had
front ends), and with --model through that model's front end too, in the same run.  --rounds N repeats every command N times, alternating, and prints each
one's median.  Tokens/s counts the gold tokens of the file, so the runs compare on the
same work.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, machine_line, raw_text  # noqa: E402

from seqtag import Tagger  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each command (>= 1)")
    parser.add_argument("--model", default=None,
                        help="a model with a learned front end, for the raw text")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    from seqtag.corpus import read_corpus
    sentences = read_corpus(ewt_path("train"))
    tokens = sum(len(s) for s in sentences)
    with tempfile.TemporaryDirectory() as folder:
        files = {"tokens": os.path.join(folder, "train.tokens"),
                 "lines": os.path.join(folder, "train.lines"),
                 "text": os.path.join(folder, "train.txt")}
        with open(files["tokens"], "w", encoding="utf-8") as f:
            f.writelines("\n".join(s.words) + "\n\n" for s in sentences)
        with open(files["lines"], "w", encoding="utf-8") as f:
            f.writelines(" ".join(s.words) + "\n" for s in sentences)
        with open(files["text"], "w", encoding="utf-8") as f:
            f.write(raw_text(open(ewt_path("train"), encoding="utf-8").read()))
        print(machine_line())
        bundled = Tagger.load(None)
        rules = os.path.join(folder, "rules.npz")
        Tagger(bundled.network, bundled.vocab, meta=dict(bundled.meta)).save(rules, float16=True)
        runs = [(kind, path, None) for kind, path in files.items()]
        runs += [("lines", files["lines"], rules), ("text", files["text"], rules)]
        if args.model:
            runs.append(("text", files["text"], args.model))
        times = {run: [] for run in runs}
        for _ in range(args.rounds):
            for run in runs:
                kind, path, model = run
                command = ["seqtag", "tag", "-i", path, "--input-format", kind, "--threads",
                           str(args.threads)] + (["-m", model] if model else [])
                start = time.perf_counter()
                subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
                times[run].append(time.perf_counter() - start)
        for (kind, path, model), seconds in times.items():
            seconds = statistics.median(seconds)
            if model == rules:
                front = "rules"
            elif kind == "tokens":
                front = "no front end"
            else:
                loaded = bundled if model is None else Tagger.load(model)
                front = (f"{loaded.frontend.kind} front end"
                         + (f" of {os.path.basename(model)}" if model else ""))
            print(f"seqtag tag --input-format {kind:6} ({front}): {tokens:,} tokens in "
                  f"{seconds:.2f} s = {tokens / seconds:,.0f} tokens/s ({args.threads} "
                  f"threads, median of {args.rounds})")

if __name__ == "__main__":
    main()
