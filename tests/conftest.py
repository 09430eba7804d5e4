"""Shared fixtures: where the shared data (UD English EWT) lives; PyTorch for the parity tests;
calls run from several threads at once."""

import os
import threading
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """$SEQTAG_SHARED, or the `shared` folder next to the repository."""
    return Path(os.environ.get("SEQTAG_SHARED") or REPO_ROOT.parent / "shared")


@pytest.fixture(scope="session")
def ewt_dir() -> Path:
    """The UD English EWT folder (en_ewt-ud-{train,dev,test}.conllu); skips the test if absent."""
    path = shared_dir() / "data" / "ud-english-ewt"
    if not path.is_dir():
        pytest.skip(f"UD English EWT not found at {path}; set SEQTAG_SHARED")
    return path


TORCH_HINT = ("pip install torch==2.13.0 (the CPU build on these machines' disk), elsewhere any "
              "CPU build of torch>=2.0")


def import_torch():
    """torch, for the parity tests against PyTorch (not a dependency of the test extra).
    Without it the test, or at module level the whole module, is skipped with how to get it;
    under CI (CI=true) it fails instead, so a parity check never passes by being skipped."""
    try:
        import torch
    except ImportError as e:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI={os.environ['CI']} and PyTorch is missing ({e}): the parity tests "
                        f"must run in CI; {TORCH_HINT}", pytrace=False)
        pytest.skip(f"PyTorch is needed for the parity tests ({e}): {TORCH_HINT}",
                    allow_module_level=True)
    return torch


def import_seqeval():
    """seqeval (the test extra holds it), the reference of the span scores; skips the
    module without it, fails under CI."""
    try:
        import seqeval.metrics
        import seqeval.scheme
    except ImportError as e:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI={os.environ['CI']} and seqeval is missing ({e}): "
                        "pip install --use-pep517 seqeval==1.2.2", pytrace=False)
        pytest.skip(f"seqeval is needed to check the span scores ({e}): "
                    "pip install --use-pep517 seqeval==1.2.2", allow_module_level=True)
    return seqeval


@pytest.fixture(scope="session")
def uner_dir() -> Path:
    """The UNER English-EWT folder (en_ewt-ud-{dev,test}.iob2); skips the test if absent."""
    path = shared_dir() / "data" / "uner-english-ewt"
    if not path.is_dir():
        pytest.skip(f"UNER English-EWT not found at {path}; set SEQTAG_SHARED")
    return path


# The suites that hold the recurrent layers to PyTorch, to float64, to their own threads
# and to the memo, and the analyses' kernel to BLAS, run once per compute path this CPU
# has: each kind of fused kernel it runs (AVX-512 and AVX2 on an AVX-512 CPU, AVX2 on the
# others) and BLAS only, which CPUs with neither take.  The switch is seqtag.runtime.set_fused_step, so every path runs in this
# one process.
COMPUTE_PATH_SUITES = {"test_rnn_torch", "test_rnn_infer", "test_rnn_threads", "test_memo",
                       "test_network", "test_rnn_gradcheck", "test_tag_combinations"}


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__.rsplit(".", 1)[-1] in COMPUTE_PATH_SUITES:
        from seqtag import _core
        metafunc.fixturenames.append("compute_path")
        metafunc.parametrize("compute_path", [*_core.fused_step_isas(), "blas"],
                             indirect=True)


@pytest.fixture
def compute_path(request):
    """Run the test with the fused kernels of one kind on ("avx512", "avx2") or every
    product on BLAS ("blas")."""
    from seqtag import runtime
    runtime.set_fused_step(False if request.param == "blas" else request.param)
    try:
        yield request.param
    finally:
        runtime.set_fused_step(None)


def fused_kernel_fixture():
    """An autouse fixture for a test module: each of its tests runs once per kind of fused
    kernel the CPU has (AVX-512 and AVX2 on an AVX-512 CPU, AVX2 on the others; once where
    there are none, or SEQTAG_FUSED_STEP=0), the runtime switch pointing the compiled core
    at it, put back after the test.  In a module: `kernels = fused_kernel_fixture()`."""
    import seqtag.runtime
    from seqtag import _core

    isas = _core.fused_step_isas()

    @pytest.fixture(autouse=True, params=isas or ["no fused kernels"])
    def kernels(request):
        if request.param in isas and seqtag.runtime.fused_step_enabled():
            seqtag.runtime.set_fused_step(request.param)
            assert seqtag.runtime.fused_step_isa() == _core.fused_step_isa() == request.param
        try:
            yield request.param
        finally:
            seqtag.runtime.set_fused_step(None)
            seqtag.runtime.fused_step_isa()

    return kernels


def results_from_threads(call, threads, repeats):
    """{k: [call(k), ... repeats times]} with each k of range(threads) on a thread of its
    own, all at once; the first error any of them raised is raised here."""
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(repeats):
                results.setdefault(k, []).append(call(k))
        except Exception as e:  # pragma: no cover - raised below
            errors.append(e)

    running = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    if errors:
        raise errors[0]
    return results
