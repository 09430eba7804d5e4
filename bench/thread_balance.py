"""How a tagging pass shares its work between the calling thread and seqtag's second one.

    python bench/thread_balance.py [--passes 15] [--rounds 2]

For each variant, per pass: the wall time, the CPU time of the calling thread and of
seqtag's second thread (seqtag.runtime's worker), and what a perfect split of that work
would take ((calling + second) / 2).  The wall time cannot go below the busier thread's
CPU time; the gap between the two threads' CPU times is work only the calling thread can
do (Python: memo look-ups, batches, decoding, the joins of the two threads), during which
the second core waits.  Variants: configuration (c) of compare_torch.py over EWT test in
its batches with the memo emptied before each pass ("fresh") and full ("warm"), and the
bundled model's Tagger.predict (text output) and Tagger.predict_columns (every column,
CoNLL-U output) with a full memo.  Linux only (per-thread CPU times from /proc).
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torch as ct  # noqa: E402
from common import ewt_path, machine_line  # noqa: E402

from seqtag import Tagger, runtime  # noqa: E402
from seqtag.corpus import read_corpus  # noqa: E402


def thread_seconds(tid):
    """User + system CPU seconds of thread `tid` of this process."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def second_thread_id():
    """The native id of seqtag's second thread (started on first use)."""
    runtime.run_beside(lambda: None).result()
    ids = [t.native_id for t in threading.enumerate() if t.name == "seqtag"]
    if len(ids) != 1:
        raise SystemExit(f"expected one thread named 'seqtag', found {len(ids)}")
    return ids[0]


def measure(run, passes, second):
    """(wall, calling thread CPU, second thread CPU) per pass, in ms."""
    me = threading.get_native_id()
    mine, theirs, start = thread_seconds(me), thread_seconds(second), time.perf_counter()
    for _ in range(passes):
        run()
    wall = time.perf_counter() - start
    return (1e3 * wall / passes, 1e3 * (thread_seconds(me) - mine) / passes,
            1e3 * (thread_seconds(second) - theirs) / passes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not os.path.isdir("/proc/self/task"):
        raise SystemExit("thread_balance.py needs Linux's /proc/self/task")
    print(machine_line())
    data = ct.load_data(dict(ct.FULL))
    model, _ = ct.seqtag_model("c", data, 2)
    batches = ct.tagging_batches(data)
    tagger = Tagger.load(None, threads=2)
    words = [s.words for s in read_corpus(ewt_path("test"), require_tags=False)]

    variants = {"(c) fresh": ct.seqtag_tag_pass(model, batches, True),
                "(c) warm": ct.seqtag_tag_pass(model, batches, False),
                "Tagger.predict (text output)": lambda: tagger.predict(words),
                "every column (conllu output)": lambda: tagger.predict_columns(words)}
    for run in variants.values():  # warm-up: fills the memos
        run()
    second = second_thread_id()
    print(f"{sum(b.n_tokens for b in batches):,} tokens a pass; ms per pass")
    print(f"{'variant':30s} {'wall':>7s} {'calling':>8s} {'second':>7s} {'gap':>6s} "
          f"{'even split':>10s}")
    for r in range(args.rounds):
        for name, run in variants.items():
            wall, mine, theirs = measure(run, args.passes, second)
            print(f"{name:30s} {wall:7.1f} {mine:8.1f} {theirs:7.1f} {mine - theirs:6.1f} "
                  f"{(mine + theirs) / 2:10.1f}")


if __name__ == "__main__":
    main()
