"""End-to-end tagging speed of the command line on EWT train's 204,577 tokens.

    python bench/cli_throughput.py [--threads 2] [--model MODEL-WITH-A-LEARNED-FRONT-END]

Writes EWT train's tokens (one per line, blank line between sentences), its sentences
(tokens joined by spaces, one per line: --input-format lines) and its raw text (the
sentences' `# text` in paragraphs, as bench/raw_text.py makes it: --input-format text) to a
temporary folder, then times `seqtag tag -i FILE` on each, output to /dev/null: reading,
tokenizing, sentence splitting, batching, tagging and formatting included.  The raw text
is tagged with the bundled model (the rule front end) and, with --model, with a model
that has a learned front end (bench/attach_frontend.py makes one), in the same run.
Tokens/s counts the gold tokens of the file, so the runs compare on the same work.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, machine_line, raw_text  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None,
                        help="a model with a learned front end, for the raw text")
    args = parser.parse_args()
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
        runs = [(kind, path, None) for kind, path in files.items()]
        if args.model:
            runs.append(("text", files["text"], args.model))
        for kind, path, model in runs:
            command = ["seqtag", "tag", "-i", path, "--input-format", kind, "--threads",
                       str(args.threads)] + (["-m", model] if model else [])
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            seconds = time.perf_counter() - start
            front = "learned front end" if model else "rules"
            print(f"seqtag tag --input-format {kind:6} ({front:17}): {tokens:,} tokens in "
                  f"{seconds:.2f} s = {tokens / seconds:,.0f} tokens/s ({args.threads} threads)")


if __name__ == "__main__":
    main()
