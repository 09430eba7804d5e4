"""Both compute paths are under test in one process.

tests/conftest.py runs the parity suites (PyTorch, float64, threads, memo, network) once per
compute path this CPU has, switching with seqtag.runtime.set_fused_step; this checks that
the switch really changes the path the layers take.
"""

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
                    reason="no AVX-512 on this CPU or build: only the BLAS path exists here")
def test_switching_the_fused_step_on_takes_the_fused_path():
    rnn = RNN("lstm", 8, 32, bidirectional=True)
    runtime.set_fused_step(True)
    try:
        assert rnn.fused_step is True and len(rnn.pack_recurrent()) == 2
    finally:
        runtime.set_fused_step(None)


def test_set_fused_step_takes_only_booleans_or_none():
    with pytest.raises(TypeError, match="set_fused_step takes True, False or None, got 1"):
        runtime.set_fused_step(1)
    assert runtime._fused_override is None
