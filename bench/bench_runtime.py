"""What seqtag.runtime costs and saves: tagging without BLAS, and the BLAS thread limit.

    python bench/bench_runtime.py [--rounds 3]

1. Tagging speed of EWT test (gold tokens, memo off, 2 threads) with NumPy's BLAS and with
   the fallback product seqtag runs where it finds none (csrc/gemm_fallback.h), side by
   side in one process: the ratio is what a user whose BLAS cannot be found pays.
2. The cost of runtime.single_blas_thread() (entered on every forward and backward),
   against the time of tagging one sentence.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, machine_line  # noqa: E402


def tokens_per_second(tagger, sentences, rounds):
    tokens = sum(len(s) for s in sentences)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        tagger.predict(sentences)
        best = min(best, time.perf_counter() - start)
    return tokens / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from seqtag import Tagger, _core, runtime
    from seqtag.corpus import read_corpus

    print(machine_line())
    print(f"BLAS: {runtime.blas_info()}")
    sentences = [s.words for s in read_corpus(ewt_path("test"))]
    tagger = Tagger.load(threads=2, memo_words=0)
    found = runtime.blas()
    with_blas = tokens_per_second(tagger, sentences, args.rounds)
    _core._set_blas(0, 0, 0)
    try:
        without = tokens_per_second(tagger, sentences, args.rounds)
    finally:
        runtime._install(found)
    print(f"tagging EWT test, memo off: BLAS {with_blas:,.0f} tokens/s, fallback product "
          f"{without:,.0f} tokens/s")
    print(f"ratio blas/fallback={with_blas / without:.2f}")

    repeats = 100_000
    start = time.perf_counter()
    for _ in range(repeats):
        with runtime.single_blas_thread():
            pass
    limit_us = (time.perf_counter() - start) / repeats * 1e6
    one = [sentences[0]]
    tagger.predict(one)
    start = time.perf_counter()
    for _ in range(200):
        tagger.predict(one)
    sentence_us = (time.perf_counter() - start) / 200 * 1e6
    print(f"single_blas_thread(): {limit_us:.2f} us a block; one {len(one[0])}-token "
          f"sentence tagged (memo off): {sentence_us:.0f} us, with 3 blocks "
          f"({100 * 3 * limit_us / sentence_us:.2f} %)")


if __name__ == "__main__":
    main()
