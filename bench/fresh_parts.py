"""Where a fresh-memo tagging pass of configuration (c) of compare_torch.py goes.

    python bench/fresh_parts.py [--passes 5] [--rounds 2] [--profile]

Tags EWT test `passes` times with the memo emptied before each pass (compare_torch's
"(fresh)" column) and `passes` times with it full ("tag"), and prints, per round, both
wall times, the CPU time of the process over each (2 cores busy: 2 s a second), and the
time inside the parts only a fresh pass runs: the new forms' character ids, the
character BiLSTM over them (RNN.final_states: since 2026-12-03's session 10 over a tree
of their distinct beginnings and endings) and their first-layer projection (wall-clock
timers on the calling thread; both directions of each run on the two threads inside
them).  Then the new forms, characters and (where the fused kernels run, which walk
the tree) the tree's steps of one pass.  --profile: then the functions the warm passes
spend their time in (cProfile, by internal time: the compiled kernels are inside
rnn._infer_direction).
"""

import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torch as ct  # noqa: E402
from common import machine_line  # noqa: E402
from profile_parts import timed_method  # noqa: E402

from seqtag import memo, vocab  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(machine_line())
    data = ct.load_data(dict(ct.FULL))
    model, _ = ct.seqtag_model("c", data, 2)
    batches = ct.tagging_batches(data)
    for batch in batches:  # warm-up
        ct.seqtag_tag(model, batch)
    net = model.network
    totals: collections.defaultdict = collections.defaultdict(float)
    timed_method(vocab.Vocabulary, "chars_of", "character ids", totals)
    timed_method(net.char_rnn, "final_states", "character BiLSTM", totals)
    timed_method(memo.ProjectionMemo, "_add", "first-layer projection", totals)

    def run(fresh):
        start, cpu = time.perf_counter(), os.times()
        for _ in range(args.passes):
            if fresh:
                model.changed()  # an empty memo: every form of the pass computed in it
            for batch in batches:
                ct.seqtag_tag(model, batch)
        end = os.times()
        return (time.perf_counter() - start,
                end.user + end.system - cpu.user - cpu.system)

    for r in range(args.rounds):
        totals.clear()
        fresh, fresh_cpu = run(True)
        parts = dict(totals)
        warm, warm_cpu = run(False)
        print(f"round {r + 1}: {args.passes} passes fresh {fresh:.3f} s (CPU {fresh_cpu:.2f} s), "
              f"warm {warm:.3f} s (CPU {warm_cpu:.2f} s); fresh only: "
              + ", ".join(f"{k} {v:.3f} s" for k, v in parts.items()))
    seen, forms, steps, shared = set(), 0, 0, [0, 0]
    for batch in batches:
        new = [f for f in batch.forms if f not in seen]
        seen.update(new)
        forms += len(new)
        lengths, ids = batch.vocab.chars_of(new)
        steps += len(ids)
        for d in range(2):  # the distinct beginnings (endings) the tree computes
            shared[d] += prefix_nodes(ids, lengths, bool(d))
    tree = (f"; the character BiLSTM's tree of prefixes takes {shared[0]:,} steps forward "
            f"and {shared[1]:,} backward (its new forms' distinct beginnings and endings in "
            "each batch)") if net.char_rnn.fused_step else " (no tree: no fused kernels)"
    print(f"a pass: {sum(b.n_tokens for b in batches):,} tokens, {forms:,} new forms, "
          f"{steps:,} characters{tree}")
    if args.profile:
        import cProfile
        import pstats
        profile = cProfile.Profile()
        profile.runcall(run, False)
        pstats.Stats(profile).sort_stats("tottime").print_stats(8)


def prefix_nodes(ids, lengths, reverse):
    """The nodes of seqtag._core.prefix_tree over the sequences (sorted, as
    RNN.final_states runs it)."""
    import numpy as np
    from seqtag import _core
    if not len(lengths):
        return 0
    n, longest = len(lengths), int(lengths.max())
    return _core.prefix_tree(
        ids, np.cumsum(lengths) - lengths, lengths, np.empty(n, dtype=np.int64), reverse,
        np.empty(len(ids), dtype=np.int64), np.empty(len(ids), dtype=np.int64),
        np.empty(longest + 1, dtype=np.int64), np.empty(n, dtype=np.int64),
        np.empty(max(2 * longest, n), dtype=np.int64), sort=True)


if __name__ == "__main__":
    main()
