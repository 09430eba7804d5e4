"""The recurrent steps alone: seqtag's choice of kernel against BLAS only, side by side.

    python bench/step_speed.py [--cell lstm|gru] [--hidden 128 64] [--rows 16 48 100 400 900]
                               [--seconds 0.5] [--threads 2]

A one-layer float32 LSTM (--cell gru: GRU, csrc/gru_step.h; its default --hidden 48 is the
raw-text front end's character model's, whose steps are ~156 windows of characters) in
inference, 20 steps of `rows` rows a call (RNN.forward_projected
with packed weights): one direction on one thread, or with --threads 2 both directions on
two threads, as a tagger runs them.  Timed with the fused steps allowed
(seqtag.runtime.set_fused_step(None): the best kernels, for the steps where
seqtag.runtime's choice takes them) and not (BLAS for the product, then the gate pass),
alternating; prints the recurrent product's GFLOP/s of each (the gates counted as free)
and which one seqtag runs for that step size (an LSTM: always fused, the AVX2 kernel's
big steps in calls of fewer rows; a GRU: BLAS past the AVX2 kernel's limit, where both
columns are BLAS).  With --threads 2 and fused steps the directions are shared out in
parts between the threads (RNN._infer_layer_shared) where the steps are at least
seqtag.rnn.SHARED_MIN_ROWS rows in all.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line  # noqa: E402

from seqtag import _core, runtime  # noqa: E402
from seqtag.packing import Packing  # noqa: E402
from seqtag.rnn import RNN  # noqa: E402

STEPS = 20


def rate(rnn, proj, ids, packing, fused, seconds):
    runtime.set_fused_step(None if fused else False)
    packed = rnn.pack_recurrent()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        rnn.forward_projected(proj, ids, packing, packed=packed, states=False)
        calls += 1
    elapsed = (time.perf_counter() - start) / calls
    gates = 3 if rnn.cell == "gru" else 4
    flops = packing.n_rows * 2 * rnn.hidden_size * gates * rnn.hidden_size * rnn.num_directions
    return flops / elapsed / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    parser.add_argument("--hidden", type=int, nargs="+",
                        help="hidden sizes (default: 128 64 for an LSTM, 48 for a GRU)")
    parser.add_argument("--rows", type=int, nargs="+", default=[16, 48, 100, 200, 400, 600, 900])
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--threads", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    if args.hidden is None:
        args.hidden = [48] if args.cell == "gru" else [128, 64]
    print(machine_line())
    if runtime.fused_step_isa() is None:
        print("no fused kernels on this CPU or build: nothing to compare")
        return
    rng = np.random.default_rng(0)
    print(f"{args.cell}: {'H':>4} {'rows':>5} {'seqtag':>8} {'BLAS':>8}  (GFLOP/s of the "
          f"product, {args.threads} thread{'s' if args.threads > 1 else ''})  seqtag runs")
    try:
        for hidden in args.hidden:
            rnn = RNN(args.cell, hidden, hidden, bidirectional=args.threads == 2,
                      threads=args.threads)
            for rows in args.rows:
                packing = Packing(np.full(rows, STEPS))
                x = rng.standard_normal((packing.n_rows, hidden)).astype(np.float32)
                proj = [rnn.input_projection(x, d) for d in range(rnn.num_directions)]
                ids = np.arange(packing.n_rows)
                fused = blas = 0.0
                for _ in range(2):  # alternate, keep the best of each
                    fused = max(fused, rate(rnn, proj, ids, packing, True, args.seconds))
                    blas = max(blas, rate(rnn, proj, ids, packing, False, args.seconds))
                runtime.set_fused_step(None)
                # an LSTM's inference steps are all fused (the AVX2 kernel's in calls of
                # lstm_step_call_rows); a GRU's go to BLAS past the AVX2 kernel's limit
                if args.cell == "gru":
                    runs = "fused" if _core.lstm_step_fused_forward(rows, hidden) else "BLAS"
                else:
                    most = _core.lstm_step_call_rows(hidden)
                    runs = "fused" if most is None or rows <= most else \
                        f"fused, calls of {most} rows"
                print(f"{args.cell}: {hidden:>4} {rows:>5} {fused:8.1f} {blas:8.1f}  {'':36}"
                      f"{runs}")
    finally:
        runtime.set_fused_step(None)


if __name__ == "__main__":
    main()
