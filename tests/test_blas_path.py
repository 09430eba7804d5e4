"""The BLAS-only path through the parity suites.

On a CPU with AVX-512 every float32 LSTM in this suite runs the fused kernels of
csrc/lstm_step.h; CPUs without AVX-512 (and SEQTAG_FUSED_STEP=0) run the BLAS path
instead.  So that path is not left to the few comparisons of test_fused_step.py, the
suites that hold the recurrent layers to PyTorch, to float64, to their own threads and
to the memo run again here, in a process where the switch is off.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import seqtag.rnn

REPO_ROOT = Path(__file__).resolve().parent.parent
SUITES = ["tests/test_rnn_torch.py", "tests/test_rnn_infer.py", "tests/test_rnn_threads.py",
          "tests/test_memo.py", "tests/test_network.py"]


@pytest.mark.skipif(not seqtag.rnn.FUSED_STEP,
                    reason="the rest of this suite already runs the BLAS path here")
def test_parity_suites_pass_with_every_product_through_blas():
    env = dict(os.environ, SEQTAG_FUSED_STEP="0")
    probe = subprocess.run([sys.executable, "-c", "import seqtag.rnn as r; print(r.FUSED_STEP)"],
                           cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert probe.stdout.strip() == "False", probe.stderr
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             *SUITES], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
