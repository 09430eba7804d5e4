"""Pretrained vectors are streamed: the memory of reading a big vectors file is that of the
vectors kept, not the file's size.

    python bench/embeddings_stream.py [--words 400000] [--dim 300] [--keep 20000] [--extra 50000]

Writes a word2vec text file of random vectors (--words lines of --dim numbers, gzipped with
--gzip) to a temporary folder, then in a fresh process reads it as `train --embeddings` does
(seqtag.embeddings.read_vectors: --keep corpus words spread over the file, --extra others)
and prints the file's size, the process's peak resident memory before and after reading,
the vectors kept and the time taken.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

READER = """
import sys, time
import numpy as np
from seqtag.embeddings import read_vectors
path, keep, extra, words = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def name(k):  # letters only: the vocabulary's keys turn digits into 0
    return "w" + "".join(chr(97 + (k // 26 ** i) % 26) for i in range(5))
wanted = {name(k) for k in range(0, words, max(1, words // keep))}
def peak_mb():  # this process's peak resident memory (VmHWM: ru_maxrss survives exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
before = peak_mb()
start = time.perf_counter()
got = read_vectors(path, wanted, extra)
seconds = time.perf_counter() - start
print(f"{before:.0f} {peak_mb():.0f} {len(got.keys)} {got.vectors.nbytes / 2**20:.1f} "
      f"{seconds:.1f}")
"""


def name(k):  # letters only: the vocabulary's keys turn digits into 0
    return "w" + "".join(chr(97 + (k // 26 ** i) % 26) for i in range(5))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=400_000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--keep", type=int, default=20_000)
    parser.add_argument("--extra", type=int, default=50_000)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "vectors.vec" + (".gz" if args.gzip else ""))
        start = time.perf_counter()
        import gzip
        opener = gzip.open if args.gzip else open
        with opener(path, "wt", encoding="utf-8") as f:
            f.write(f"{args.words} {args.dim}\n")
            # numbers drawn from a pool of formatted ones: writing stays quick
            pool = np.array([f"{x:.4f}" for x in rng.standard_normal(4096)], dtype=object)
            for first in range(0, args.words, 10_000):
                picks = pool[rng.integers(0, len(pool), (min(10_000, args.words - first),
                                                          args.dim))]
                f.write("".join(name(first + k) + " " + " ".join(row) + "\n"
                                for k, row in enumerate(picks)))
        size = os.path.getsize(path)
        print(f"wrote {size / 2**20:.0f} MB ({args.words:,} words x {args.dim}) in "
              f"{time.perf_counter() - start:.0f}s")
        out = subprocess.run([sys.executable, "-c", READER, path, str(args.keep),
                              str(args.extra), str(args.words)],
                             capture_output=True, text=True, check=True).stdout.split()
        before, after, kept, megabytes, seconds = out
        print(f"read in {seconds}s: peak resident memory {before} MB before, {after} MB after "
              f"(file {size / 2**20:.0f} MB); {int(kept):,} vectors kept ({megabytes} MB)")


if __name__ == "__main__":
    main()
