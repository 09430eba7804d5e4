"""Forward+backward speed of a 1-layer BiLSTM: seqtag's core against torch.nn.LSTM.

    python bench/bench_core.py [--threads 2] [--batches 60] [--rounds 5] [--hidden 128]

Input 100, hidden 128 (or --hidden), batches of 32 sentences whose lengths are drawn from
UD English EWT's training sentences (from ../shared or $SEQTAG_SHARED; a log-normal fit of them
otherwise), float32.  The two implementations run on the same batches, alternating round by
round so that drift of a shared machine hits both alike; the figure is the median round.
Also prints the achieved model GFLOP/s and NumPy's sgemm GFLOP/s measured in the same run,
and one inference step of 4, 16, 64 and 256 rows (same hidden size, one thread) by the
fused kernel this CPU runs (csrc/lstm_step.h, AVX-512 or AVX2) against the BLAS path
(sgemm into a scratch, then the gate pass), the two alternating, timed in the thread's CPU
time (what the other core's load does not inflate).
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_sentence_lengths, sgemm_gflops, machine_line  # noqa: E402

INPUT, HIDDEN, BATCH = 100, 128, 32


def model_flops(tokens, input_size, hidden, directions):
    """Matrix-product FLOPs of forward+backward of one LSTM layer: 3x the forward's."""
    forward = 2 * tokens * 4 * hidden * (input_size + hidden)
    return 3 * forward * directions


def make_batches(n_batches, rng):
    lengths = ewt_sentence_lengths(rng, n_batches * BATCH)
    return [(rng.standard_normal((BATCH, int(l.max()), INPUT)).astype(np.float32), l)
            for l in np.split(lengths, n_batches)]


def seqtag_round(rnn, batches):
    from seqtag.packing import Packing
    tokens = 0
    start = time.perf_counter()
    for x, lengths in batches:
        packing = Packing(lengths)
        packed = packing.pack(x)
        out, h_n, c_n, cache = rnn.forward_packed(packed, packing)
        rnn.backward_packed(cache, np.ones_like(out))
        tokens += packing.n_rows
    return tokens / (time.perf_counter() - start)


def torch_round(module, batches):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence
    tokens = 0
    start = time.perf_counter()
    for x, lengths in batches:
        packed = pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                      batch_first=True, enforce_sorted=False)
        out, _ = module(packed)
        module.zero_grad()
        out.data.backward(torch.ones_like(out.data))
        tokens += int(lengths.sum())
    return tokens / (time.perf_counter() - start)


def step_micro(hidden, rows=64, steps=50, repeats=40, rounds=5):
    """Microseconds per inference step of `rows` rows: (fused or None, BLAS)."""
    from seqtag import _core, runtime
    rng = np.random.default_rng(1)
    H, G = hidden, 4 * hidden
    xproj = rng.standard_normal((rows * steps, G)).astype(np.float32)
    w_hh = (rng.standard_normal((G, H)) * 0.1).astype(np.float32)
    batch_sizes = np.full(steps, rows, dtype=np.int64)
    out = np.empty((rows * steps, H), dtype=np.float32)
    scratch = np.empty((rows, G), dtype=np.float32)
    packed = None
    if runtime.fused_step_enabled():  # also points the core at the kernels chosen
        packed = np.empty(_core.packed_w_hh_size(H), dtype=np.float32)
        _core.pack_w_hh(w_hh, packed)

    def run(weights):
        start = time.thread_time()
        for _ in range(repeats):
            h = np.zeros((rows, H), dtype=np.float32)
            c = np.zeros((rows, H), dtype=np.float32)
            _core.lstm_infer(xproj, None, w_hh, batch_sizes, False, h, c, scratch, out,
                             None, None, None, weights)
        return (time.thread_time() - start) / (repeats * steps) * 1e6

    fused, blas = [], []
    with runtime.single_blas_thread():
        for _ in range(rounds):
            if packed is not None:
                fused.append(run(packed))
            blas.append(run(None))
    return (float(np.median(fused)) if fused else None), float(np.median(blas))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=HIDDEN)
    args = parser.parse_args()

    import torch
    from seqtag.rnn import RNN
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    batches = make_batches(args.batches, rng)
    rnn = RNN("lstm", INPUT, args.hidden, bidirectional=True, threads=args.threads)
    module = torch.nn.LSTM(INPUT, args.hidden, bidirectional=True, batch_first=True)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in rnn.params.items()})

    seqtag_round(rnn, batches[:5])  # warm up both
    torch_round(module, batches[:5])
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(seqtag_round(rnn, batches))
        theirs.append(torch_round(module, batches))
    ours, theirs = float(np.median(ours)), float(np.median(theirs))
    tokens_per_token = model_flops(1, INPUT, args.hidden, 2)
    sgemm = sgemm_gflops(args.threads)

    print(machine_line())
    print(f"1-layer BiLSTM, input {INPUT}, hidden {args.hidden}, batches of {BATCH}, float32, "
          f"{args.threads} threads, {args.batches} batches x {args.rounds} rounds (median)")
    print(f"{'':24}{'tokens/s':>12}{'GFLOP/s':>10}")
    print(f"{'seqtag':24}{ours:12.0f}{ours * tokens_per_token / 1e9:10.1f}")
    print(f"{'torch.nn.LSTM':24}{theirs:12.0f}{theirs * tokens_per_token / 1e9:10.1f}")
    print(f"{'numpy sgemm (2048^3)':24}{'':12}{sgemm:10.1f}")
    print(f"model GFLOP/s / sgemm GFLOP/s: {ours * tokens_per_token / 1e9 / sgemm:.1%}")
    from seqtag import runtime
    isa = runtime.fused_step_isa()
    kind = {"avx512": "AVX-512", "avx2": "AVX2"}.get(isa)
    for rows in (4, 16, 64, 256):
        fused, blas = step_micro(args.hidden, rows=rows, repeats=max(4, 2560 // rows))
        print(f"one inference step, {rows:3d} rows, hidden {args.hidden}, 1 thread: BLAS path "
              f"{blas:7.1f} us, " + (f"fused {kind} step {fused:7.1f} us ({blas / fused:.2f}x)"
                                     if fused else "no fused step on this CPU/build"))
    print(f"ratio forward+backward seqtag/torch = {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
