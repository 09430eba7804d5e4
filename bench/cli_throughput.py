"""End-to-end tagging speed of the command line on EWT train's 204,577 tokens.

    python bench/cli_throughput.py [--threads 2]

Writes EWT train's tokens (one per line, blank line between sentences) and its sentences
as raw text (one per line) to a temporary folder, then times `seqtag tag -i FILE` on each,
output to /dev/null: reading, tokenizing, batching, tagging and formatting included.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, machine_line  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from seqtag.corpus import read_corpus
    sentences = read_corpus(ewt_path("train"))
    tokens = sum(len(s) for s in sentences)
    with tempfile.TemporaryDirectory() as folder:
        files = {"tokens": os.path.join(folder, "train.tokens"),
                 "text": os.path.join(folder, "train.txt")}
        with open(files["tokens"], "w", encoding="utf-8") as f:
            f.writelines("\n".join(s.words) + "\n\n" for s in sentences)
        with open(files["text"], "w", encoding="utf-8") as f:
            f.writelines(" ".join(s.words) + "\n" for s in sentences)
        print(machine_line())
        for kind, path in files.items():
            start = time.perf_counter()
            subprocess.run(["seqtag", "tag", "-i", path, "--input-format", kind, "--threads",
                            str(args.threads)], stdout=subprocess.DEVNULL, check=True)
            seconds = time.perf_counter() - start
            print(f"seqtag tag --input-format {kind:6}: {tokens:,} tokens in {seconds:.2f} s "
                  f"= {tokens / seconds:,.0f} tokens/s ({args.threads} threads)")


if __name__ == "__main__":
    main()
