"""The recurrent step alone, fused kernels against BLAS + the gate pass, side by side.

    python bench/step_speed.py [--hidden 128 64] [--rows 16 48 100 400 900] [--seconds 0.5]

One direction of a one-layer float32 LSTM, inference, 20 steps of `rows` rows a call
(RNN.forward_projected with packed weights, one thread), timed with the fused step on
(seqtag.runtime.set_fused_step(None): the best kernels) and off (BLAS for the product,
then the gate pass), alternating; prints the recurrent product's GFLOP/s of each (the
gates counted as free) and which one seqtag runs for that step size.
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
    return packing.n_rows * 2 * rnn.hidden_size * 4 * rnn.hidden_size / elapsed / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--rows", type=int, nargs="+", default=[16, 48, 100, 200, 400, 600, 900])
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()
    print(machine_line())
    if runtime.fused_step_isa() is None:
        print("no fused kernels on this CPU or build: nothing to compare")
        return
    rng = np.random.default_rng(0)
    print(f"{'H':>4} {'rows':>5} {'fused':>8} {'BLAS':>8}  (GFLOP/s of the product)  seqtag runs")
    try:
        for hidden in args.hidden:
            rnn = RNN("lstm", hidden, hidden, threads=1)
            for rows in args.rows:
                packing = Packing(np.full(rows, STEPS))
                x = rng.standard_normal((packing.n_rows, hidden)).astype(np.float32)
                proj = [rnn.input_projection(x, 0)]
                ids = np.arange(packing.n_rows)
                fused = blas = 0.0
                for _ in range(2):  # alternate, keep the best of each
                    fused = max(fused, rate(rnn, proj, ids, packing, True, args.seconds))
                    blas = max(blas, rate(rnn, proj, ids, packing, False, args.seconds))
                runtime.set_fused_step(None)
                runs = "fused" if _core.lstm_step_fused_forward(rows, hidden) else "BLAS"
                print(f"{hidden:>4} {rows:>5} {fused:8.1f} {blas:8.1f}  {'':24}{runs}")
    finally:
        runtime.set_fused_step(None)


if __name__ == "__main__":
    main()
