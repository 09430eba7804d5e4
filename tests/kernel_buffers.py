"""What the tests of the fused kernels (test_fused_step.py, test_fused_gru.py) share: the
packed W_hh layout written in NumPy, and buffers followed by sentinels that show a store
past their end."""

import numpy as np

from seqtag import _core

# every buffer a kernel writes is followed in memory by GUARD sentinel values: a store past
# its end (a lane mask that lets a partial block's lanes, or a partial 64-column block of
# backward, through) shows
GUARD = 64
SENTINEL = 7.0


# 13 sequences of lengths 13..1: every step row count 1..13 (every partial block of rows);
# and a batch with repeated lengths
LENGTH_SETS = {"counts1to13": list(range(1, 14)),
               "ragged11": [9, 1, 9, 4, 7, 1, 2, 9, 7, 1, 1]}


def lanes():
    """Units per block of the packed layout of the kernels the core calls now."""
    return 16 if _core.fused_step_isa() == "avx512" else 8


def packed_layout(w_hh, gates, lanes, size):
    """The documented layout of a (gates H, H) W_hh, (U, H, gates, L) with L = lanes and
    U = ceil(H / L): packed[((u H + k) gates + q) L + l] = w_hh[q H + L u + l, k], and 0
    where L u + l >= H, then zeros up to `size` floats.  Each gate's units are padded with
    zero rows to U * L, then reshaped as for H % L == 0."""
    H = w_hh.shape[1]
    U = -(-H // lanes)
    padded = np.zeros((gates, U * lanes, H), w_hh.dtype)
    padded[:, :H] = w_hh.reshape(gates, H, H)
    layout = padded.reshape(gates, U, lanes, H).transpose(1, 3, 0, 2).ravel()
    out = np.zeros(size, w_hh.dtype)
    out[:layout.size] = layout
    return out


def guarded(shape, fill, dtype=np.float32):
    """(array, guard): a C-contiguous array of `shape` holding `fill` (a scalar or an array),
    and the GUARD values right after it in memory, all SENTINEL."""
    n = int(np.prod(shape))
    buf = np.full(n + GUARD, SENTINEL, dtype)
    a, guard = buf[:n].reshape(shape), buf[n:]
    assert a.flags.c_contiguous and guard.ctypes.data == a.ctypes.data + a.nbytes
    a[...] = fill
    return a, guard


def assert_guards(guards, what):
    for name, guard in guards.items():
        assert (guard == SENTINEL).all(), f"{what} wrote past the end of {name}"
