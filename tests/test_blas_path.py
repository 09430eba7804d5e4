"""Both compute paths are under test in one process.

tests/conftest.py runs the parity suites (PyTorch, float64, threads, memo, network) once per
compute path this CPU has, switching with seqtag.runtime.set_fused_step; this checks that
the switch really changes the path the layers take.
"""

import re

import numpy as np
import pytest

from seqtag import _core, runtime
from seqtag.rnn import RNN


def test_switching_the_fused_step_off_takes_the_blas_path(monkeypatch):
    rnn = RNN("lstm", 8, 32, bidirectional=True)
    runtime.set_fused_step(False)
    try:
        assert rnn.fused_step is False and rnn.pack_recurrent() is None
    finally:
        runtime.set_fused_step(None)
    assert rnn.fused_step is _core.fused_step_available()


@pytest.mark.skipif(not _core.fused_step_available(),
                    reason="no AVX2 or AVX-512 on this CPU or build: only the BLAS path exists here")
def test_switching_the_fused_step_on_takes_the_fused_path():
    rnn = RNN("lstm", 8, 32, bidirectional=True)
    runtime.set_fused_step(True)
    try:
        assert rnn.fused_step is True and len(rnn.pack_recurrent()) == 2
    finally:
        runtime.set_fused_step(None)


@pytest.mark.skipif(not _core.fused_step_available(),
                    reason="no AVX2 or AVX-512 on this CPU or build: only the BLAS path exists here")
def test_naming_a_kind_of_kernel_runs_it_where_the_cpu_has_it():
    """set_fused_step("avx2") points the compiled core at the AVX2 kernels (on an AVX-512
    CPU too) and packs W_hh in blocks of 8 units; a kind the CPU lacks gets the best there
    is; None goes back to the best."""
    rnn = RNN("lstm", 8, 32, bidirectional=True)
    best = _core.fused_step_isas()[0]
    try:
        for asked, runs in [("avx2", "avx2"), ("avx512", best), (True, best)]:
            runtime.set_fused_step(asked)
            assert runtime.fused_step_isa() == _core.fused_step_isa() == runs
            packed = rnn.pack_recurrent()[0]
            lanes = 16 if runs == "avx512" else 8
            # unit 1 of gate 0 at column 0: lane 1 of the first block
            assert packed[1] == rnn.params["weight_hh_l0"][1, 0]
            # column 1 of the first unit starts after the first column's 4 gates x lanes
            assert packed[4 * lanes] == rnn.params["weight_hh_l0"][0, 1]
    finally:
        runtime.set_fused_step(None)
    assert runtime.fused_step_isa() == _core.fused_step_isa() == best


def test_set_fused_step_takes_only_booleans_kernel_names_or_none():
    for bad, shown in [(1, "1"), ("sse", "'sse'"), (0, "0")]:
        with pytest.raises(TypeError, match=re.escape(
                f"set_fused_step takes True, False, 'avx512', 'avx2' or None, got {shown}")):
            runtime.set_fused_step(bad)
    assert runtime._fused_override is None
