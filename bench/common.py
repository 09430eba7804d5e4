"""Shared pieces of the benchmark scripts: data, the machine, the reference sgemm figure."""

import contextlib
import os
import platform
import time
from pathlib import Path

import numpy as np


def shared_dir():
    env = os.environ.get("SEQTAG_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def ewt_path(split):
    return shared_dir() / "data" / "ud-english-ewt" / f"en_ewt-ud-{split}.conllu"


def ewt_sentence_lengths(rng, count):
    """`count` sentence lengths drawn from EWT train (a log-normal fit where it is absent)."""
    path = ewt_path("train")
    if path.exists():
        lengths, n = [], 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip() == "":
                    if n:
                        lengths.append(n)
                    n = 0
                elif not line.startswith("#") and line.split("\t", 1)[0].isdigit():
                    n += 1
        if n:
            lengths.append(n)
        return rng.choice(np.array(lengths, dtype=np.int64), size=count)
    return np.clip(rng.lognormal(2.6, 0.6, size=count).astype(np.int64), 1, 150)


@contextlib.contextmanager
def blas_threads(threads):
    """Run the block with NumPy's BLAS on `threads` threads (a benchmark owns its process)."""
    from seqtag import runtime
    blas = runtime.blas()
    if blas is None or blas.set_threads is None:
        yield
        return
    previous = blas.get_threads()
    blas.set_threads(threads)
    try:
        yield
    finally:
        blas.set_threads(previous)


def sgemm_gflops(threads, size=2048, repeats=5):
    """NumPy float32 matrix product speed with `threads` BLAS threads (best of repeats)."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    out = np.empty_like(a)
    with blas_threads(threads):
        np.matmul(a, a, out=out)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            np.matmul(a, a, out=out)
            best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def machine_line():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from seqtag.runtime import compute_description
    return (f"{time.strftime('%Y-%m-%d')}  {cpu}, {os.cpu_count()} cores, "
            f"numpy {np.__version__}, OPENBLAS_CORETYPE="
            f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; seqtag: {compute_description()}")
