"""seqtag.runtime: the BLAS it finds, the threads it runs, fork safety, the slow path said out
loud.  These are the settings where users run a tagger: worker processes forked from a
parent that already tagged, a host application with its own NumPy thread settings, a NumPy
whose BLAS seqtag cannot find."""

import multiprocessing
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

from seqtag import Tagger, runtime

SENTENCES = [["The", "dog", "ate", "the", "apple", "."],
             ["Time", "flies", "like", "an", "arrow", "."],
             ["She", "sells", "sea", "shells", "by", "the", "sea", "shore", "."]]


@pytest.fixture(scope="module")
def tagger():
    return Tagger.load(threads=2)


def blas_threads():
    """The host's BLAS thread count as threadpoolctl (an independent observer) sees it."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    counts = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
              if lib["user_api"] == "blas"]
    assert counts, "threadpoolctl sees no BLAS in this process"
    return counts[0]


# ---------------------------------------------------------------- finding the BLAS

def test_numpys_own_blas_is_found():
    found = runtime.blas()
    assert found is not None, "NumPy's BLAS was not found: the slow C loops run"
    info = runtime.blas_info()
    assert info["library"] == found.path and os.path.exists(found.path)
    assert found.int_bits in (32, 64) and found.sgemm and found.dgemm
    threadpoolctl = pytest.importorskip("threadpoolctl")
    paths = {os.path.realpath(lib["filepath"]) for lib in threadpoolctl.threadpool_info()
             if lib["user_api"] == "blas"}
    assert os.path.realpath(found.path) in paths  # the library NumPy itself uses
    assert found.get_threads is not None and found.set_threads is not None


FAKE_BLAS = {
    # vendor: (symbols the fake library exports, int_bits expected, thread-local setter?)
    "mkl": (["cblas_sgemm", "cblas_dgemm", "cblas_sgemv", "cblas_dgemv",
             "MKL_Get_Max_Threads", "MKL_Set_Num_Threads", "MKL_Set_Num_Threads_Local"], 32,
            True),
    "openblas": (["cblas_sgemm64_", "cblas_dgemm64_", "openblas_get_num_threads64_",
                  "openblas_set_num_threads64_"], 64, False),
    "blis": (["cblas_sgemm", "cblas_dgemm", "bli_thread_get_num_threads",
              "bli_thread_set_num_threads"], 32, False),
    "flexiblas": (["cblas_sgemm", "cblas_dgemm", "flexiblas_get_num_threads",
                   "flexiblas_set_num_threads"], 32, False),
    "cblas": (["cblas_sgemm", "cblas_dgemm"], 32, False),
}


@pytest.mark.parametrize("vendor", sorted(FAKE_BLAS))
def test_each_vendor_is_told_by_its_own_symbols(vendor, tmp_path):
    """A library is matched by the symbols only its vendor has, so MKL and BLIS (which
    export cblas_sgemm too) are not taken for a plain cblas without thread control."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build the fake BLAS libraries with")
    symbols, bits, local = FAKE_BLAS[vendor]
    source = tmp_path / "fake.c"
    source.write_text("".join(
        f"int {name}(int n) {{ return {'4' if 'get' in name.lower() else 'n'}; }}\n"
        for name in symbols))
    library = tmp_path / f"libfake{vendor}blas.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    found = runtime._blas_in(str(library))
    assert found is not None and found.vendor == vendor
    assert found.int_bits == bits
    assert (found.set_local_threads is not None) is local
    assert (found.get_threads is not None) is (vendor != "cblas")
    assert bool(found.sgemv) is ("cblas_sgemv" in symbols)
    if found.get_threads is not None:
        assert found.get_threads() == 4


@pytest.mark.parametrize("config, bits", [("OpenBLAS 0.3.31 USE64BITINT DYNAMIC_ARCH", 64),
                                           ("OpenBLAS 0.3.31 DYNAMIC_ARCH", 32)])
def test_plain_cblas_names_over_64_bit_integers_are_read_as_64_bit(config, bits, tmp_path):
    """OpenBLAS built with INTERFACE64 and no symbol suffix: its configuration string says
    so, and 32-bit sizes passed to it would corrupt memory."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build the fake BLAS library with")
    source = tmp_path / "fake.c"
    source.write_text("".join(f"int {name}(int n) {{ return n; }}\n" for name in (
        "cblas_sgemm", "cblas_dgemm", "openblas_get_num_threads", "openblas_set_num_threads"))
        + f'const char *openblas_get_config(void) {{ return "{config}"; }}\n')
    library = tmp_path / "libfakeopenblas.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    found = runtime._blas_in(str(library))
    assert (found.vendor, found.int_bits) == ("openblas", bits)


def test_a_library_without_cblas_is_not_taken(tmp_path):
    found = runtime._blas_in(sys.executable)  # an ELF file with no cblas symbols
    assert found is None


# ---------------------------------------------------------------- threads and the host

def test_the_hosts_blas_threads_are_the_same_after_tagging_and_training(tagger):
    before = blas_threads()
    assert before > 1  # else there would be nothing to lower and put back
    tagger.tag_sents(SENTENCES)
    assert blas_threads() == before
    corpus = [[(w, t) for w, t in zip(s, ["DET", "NOUN", "VERB", "DET", "NOUN", "PUNCT"])]
              for s in SENTENCES[:2]] * 10
    Tagger.train(corpus, corpus[:4], epochs=1, hidden=8, word_dim=8, char_dim=4,
                 char_hidden=4, threads=2)
    assert blas_threads() == before


def test_blas_runs_one_thread_while_seqtag_computes_and_the_hosts_count_after():
    found = runtime.blas()
    host = found.get_threads()
    assert host > 1
    with runtime.single_blas_thread():
        assert found.get_threads() == 1
        with runtime.single_blas_thread():  # nested, as the network's layers do
            assert found.get_threads() == 1
        assert found.get_threads() == 1
    assert found.get_threads() == host


def test_a_count_the_host_sets_meanwhile_stands():
    found = runtime.blas()
    host = found.get_threads()
    try:
        with runtime.single_blas_thread():
            found.set_threads(3)  # the host's own decision, while seqtag computes
        assert found.get_threads() == 3
    finally:
        found.set_threads(host)


def test_two_host_threads_tagging_at_once_leave_the_count_as_it_was(tagger):
    host = runtime.blas().get_threads()
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(tagger.predict(SENTENCES))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(r == results[0] for r in results)
    assert runtime.blas().get_threads() == host


# ---------------------------------------------------------------- fork

def _wait(pid, seconds):
    """waitpid with a deadline: the child is killed (and the test fails) if it hangs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish within {seconds} s (hung)")


def _in_child(task):
    """Run task() in a forked child; (exit code, what it wrote)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read)
            os.write(write, repr(task()).encode())
        except BaseException as e:
            os.write(write, f"{type(e).__name__}: {e}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    code = _wait(pid, 30)
    chunks = []
    while select.select([read], [], [], 0)[0]:
        chunk = os.read(read, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read)
    return code, b"".join(chunks).decode()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_child_forked_after_tagging_tags_like_its_parent(tagger):
    expected = tagger.predict(SENTENCES)  # the second thread exists from here on
    code, out = _in_child(lambda: tagger.predict(SENTENCES))
    assert code == 0, out
    assert out == repr(expected)
    assert tagger.predict(SENTENCES) == expected  # and the parent still tags


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_child_forked_inside_a_computation_puts_the_hosts_blas_count_back():
    """A fork from another thread while this one computes: in the child nobody computes
    any more, so BLAS gets the host's count back."""
    found = runtime.blas()
    host = found.get_threads()
    assert host > 1
    outcome = {}
    with runtime.single_blas_thread():
        def fork_here():
            outcome["child"] = _in_child(found.get_threads)
        forker = threading.Thread(target=fork_here)
        forker.start()
        forker.join()
    assert outcome["child"] == (0, repr(host))
    assert found.get_threads() == host


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_child_forked_while_the_memo_is_busy_still_uses_its_memo(tagger):
    """A fork while another thread holds the network's memo lock (it was tagging): the
    child makes its locks anew and starts an empty memo (the parent's may be half-filled),
    instead of tagging without one for good (1.6x slower)."""
    expected = tagger.predict(SENTENCES)
    network = tagger.network
    with network._memo_lock, network._derived_lock:  # as a tagging thread holds them

        def child():
            assert not network._memo_lock.locked() and not network._derived_lock.locked()
            assert network._memo is None
            got = tagger.predict(SENTENCES)
            return got == expected and len(network._memo) > 0
        code, out = _in_child(child)
    assert (code, out) == (0, "True")
    assert tagger.predict(SENTENCES) == expected and len(network._memo) > 0


_pool_tagger = None


def _tag_in_pool(sentence):
    return _pool_tagger.predict([sentence])[0]


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="no fork start method on this platform")
def test_a_fork_pool_of_two_tags_like_the_parent(tagger):
    global _pool_tagger
    _pool_tagger = tagger
    expected = [tagger.predict([s])[0] for s in SENTENCES]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_tag_in_pool, SENTENCES * 4).get(timeout=60)
    assert got == expected * 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_the_second_thread_is_new_after_a_fork():
    first = runtime.second_thread()
    assert runtime.second_thread() is first
    code, out = _in_child(lambda: (runtime.second_thread() is not first,
                                   runtime.second_thread().submit(lambda: 42).result(10)))
    assert (code, out) == (0, "(True, 42)")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_child_forked_with_calls_in_flight_runs_or_reports_them_never_hangs():
    """A call the parent's second thread had queued runs in the child when asked for; one
    it was running is reported as lost, not waited for (that thread is not in the
    child); one it had finished gives its value."""
    gate, started = threading.Event(), threading.Event()
    worker = runtime.second_thread()
    done = worker.submit(sum, [1, 2])
    assert done.result(10) == 3
    running = worker.submit(lambda: (started.set(), gate.wait(10), "parent")[2])
    assert started.wait(10)
    queued = worker.submit(lambda: os.getpid())
    try:
        def in_child():
            with pytest.raises(RuntimeError, match="forked while"):
                running.result(5)
            return done.result(5), queued.result(5) == os.getpid()
        code, out = _in_child(in_child)
    finally:
        gate.set()
    assert (code, out) == (0, "(3, True)")
    assert running.result(10) == "parent" and queued.result(10) == os.getpid()


# ---------------------------------------------------------------- no BLAS found

def test_without_blas_seqtag_warns_once_and_tags_the_same(tagger, monkeypatch):
    found = runtime.blas()
    expected_tags = tagger.predict(SENTENCES)
    from seqtag.network import Batch
    batch = Batch(SENTENCES, tagger.vocab)
    expected = tagger.network.forward(batch)[0]
    monkeypatch.setattr(runtime, "_warned", False)
    try:
        with pytest.warns(runtime.SeqtagPerformanceWarning,
                          match=r"^seqtag computes without BLAS \(NumPy's BLAS library could "
                                r"not be found in this process\): its own C loops give the "
                                r"same results several times more slowly; `seqtag --version` "
                                r"says what runs$"):
            runtime._install(None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            runtime._install(None)  # once per process
        assert ("seqtag's own C loops, several times slower (no BLAS found beside NumPy)"
                in runtime.compute_description())  # after the fused steps, where they run
        tagger.network.changed()  # the memo's rows came from BLAS products
        got = tagger.network.forward(batch)[0]
        assert tagger.predict(SENTENCES) == expected_tags
    finally:
        runtime._install(found)
        tagger.network.changed()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_seqtag_blas_fallback_is_said_by_the_warning_and_the_version_line():
    env = dict(os.environ, SEQTAG_BLAS="fallback")
    result = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from seqtag import runtime
        print(runtime.blas(), len(caught), caught[0].category.__name__)
        print(caught[0].message)
        """)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "None 1 SeqtagPerformanceWarning",
        "seqtag computes without BLAS (SEQTAG_BLAS=fallback): its own C loops give the same "
        "results several times more slowly; `seqtag --version` says what runs"]
    version = subprocess.run([sys.executable, "-m", "seqtag", "--version"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    assert ("seqtag's own C loops, several times slower (SEQTAG_BLAS=fallback)"
            in version.stdout.splitlines()[1])


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-4), (np.float64, 1e-11)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (5, 3, 7), (2, 19, 37), (17, 33, 65),
                                     (64, 512, 128), (3, 100, 1)])
def test_the_fallback_product_equals_blas(dtype, tol, trans_a, trans_b, m, n, k):
    from seqtag import _core
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    expected = 0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + 2 * c
    found = runtime.blas()
    outs = []
    try:
        for use in (found, None):
            runtime._install(use) if use is not None else _core._set_blas(0, 0, 0)
            out = c.copy()
            _core.gemm_check(a, b, out, trans_a, trans_b, 0.5, 2.0)
            outs.append(out)
            out = c.copy()  # beta 0 must ignore whatever the output held (NaN included)
            out[...] = np.nan
            _core.gemm_check(a, b, out, trans_a, trans_b, 1.0, 0.0)
            outs.append(out)
    finally:
        runtime._install(found)
    plain = (a.T if trans_a else a) @ (b.T if trans_b else b)
    for out, want in zip(outs, [expected, plain, expected, plain]):
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol * np.sqrt(k))


SPAWN_SCRIPT = """
import multiprocessing, sys
from seqtag import Tagger

def tag(sentence):
    return Tagger.load(threads=2).predict([sentence])[0]

if __name__ == "__main__":
    sentences = [["The", "dog", "ate", "the", "apple", "."], ["Time", "flies", "."]]
    expected = Tagger.load(threads=2).predict(sentences)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.map_async(tag, sentences).get(timeout=120)
    print(got == expected, got)
"""


def test_a_spawn_pool_tags_like_the_parent(tmp_path):
    script = tmp_path / "spawned.py"
    script.write_text(SPAWN_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("True [['DET', 'NOUN', 'VERB', 'DET', 'NOUN', 'PUNCT']")


SPAWN_PICKLED_SCRIPT = """
import multiprocessing, sys
from seqtag import Tagger

def tag(tagger, sentence):
    return tagger.predict([sentence])[0], tagger.network.rnn.threads

if __name__ == "__main__":
    tagger = Tagger.load(threads=1)
    sentences = [["The", "dog", "ate", "the", "apple", "."], ["Time", "flies", "."]]
    expected = tagger.predict(sentences)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.starmap_async(tag, [(tagger, s) for s in sentences]).get(timeout=120)
    print([g for g, _ in got] == expected, {t for _, t in got})
"""


def test_a_tagger_goes_to_a_spawned_worker_by_pickling(tmp_path):
    """A Tagger pickles as its model file's bytes (a spawn pool's arguments, spaCy's
    nlp.pipe(n_process=2) outside fork: 'cannot pickle _thread.lock' before) and loads
    in the worker with its threads."""
    script = tmp_path / "spawned_pickled.py"
    script.write_text(SPAWN_PICKLED_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True {1}\n"


def test_a_pickled_tagger_is_the_same_tagger(tmp_path):
    """Its tags, probabilities, front end, metadata and settings; an in-memory one (no
    file behind it) too, and copy.deepcopy."""
    import copy
    import pickle

    from seqtag import Tagger
    tagger = Tagger.load(threads=1, memo_words=100)
    again = pickle.loads(pickle.dumps(tagger))
    text = "The dog ate the apple. Then it slept in the garden."
    assert again.tag(text) == tagger.tag(text)
    words = [["Time", "flies", "like", "an", "arrow", "."]]
    assert again.predict_top_k(words, 3) == tagger.predict_top_k(words, 3)
    assert again.predict_columns(words) == tagger.predict_columns(words)
    assert again.meta == tagger.meta and again.network.memo_capacity == 100
    assert again.network.rnn.threads == 1 and again.frontend.kind == tagger.frontend.kind
    small = Tagger.train([[("a", "DET"), ("dog", "NOUN")], [("the", "DET"), ("cat", "NOUN")]],
                         [[("a", "DET"), ("cat", "NOUN")]], epochs=1, hidden=8, word_dim=8,
                         char_dim=4, char_hidden=4, layers=1, threads=1)
    copied = copy.deepcopy(small)
    assert "path" not in copied.meta and copied.predict([["a", "dog"]]) == small.predict(
        [["a", "dog"]])
    for name, values in small.network.arrays().items():
        assert np.array_equal(values, copied.network.arrays()[name]), name

    class OwnFrontEnd:  # a user's own: no model file holds it
        kind = "rules"

        def segment(self, paragraph):
            return []

        def segment_many(self, paragraphs):
            return [[] for _ in paragraphs]
    small.frontend = OwnFrontEnd()
    from seqtag.errors import SeqtagError
    with pytest.raises(SeqtagError, match=r"a tagger with a front end of its own "
                       r"\(OwnFrontEnd\) cannot be pickled"):
        pickle.dumps(small)


def test_the_second_thread_runs_calls_in_order_and_hands_back_results_and_errors():
    worker = runtime.Worker("seqtag-test")
    gate, started, finished = threading.Event(), threading.Event(), threading.Event()
    order = []
    first = worker.submit(lambda: (started.set(), gate.wait(10), order.append(1))[2])
    assert started.wait(10)
    with pytest.raises(TimeoutError):
        first.result(0.05)  # running on the worker, behind the gate
    worker.submit(order.append, 2)  # never asked for: the worker runs it, after the first
    worker.submit(finished.set)
    gate.set()
    assert finished.wait(10) and order == [1, 2] and first.result(10) is None
    failed = worker.submit(int, "not a number")
    for _ in range(2):  # asked twice, the same error
        with pytest.raises(ValueError, match="not a number"):
            failed.result(10)
    assert worker.submit(sum, [1, 2, 3]).result() == 6
    ready = threading.Event()
    on_worker = runtime.second_thread().submit(
        lambda: (ready.set(), threading.current_thread())[1])
    assert ready.wait(10) and on_worker.result(10).name == "seqtag"


def test_a_call_the_worker_has_not_started_runs_on_the_thread_asking_for_it():
    """Behind a long call, the caller runs its own call rather than wait with its core
    idle; the worker then skips it (each call runs once)."""
    worker = runtime.Worker("seqtag-test")
    gate, started, finished = threading.Event(), threading.Event(), threading.Event()
    runs = []
    long = worker.submit(lambda: (started.set(), gate.wait(10), runs.append("long"))[2])
    assert started.wait(10)
    queued = worker.submit(lambda: (runs.append("queued"), threading.current_thread())[1])
    assert queued.result(10) is threading.current_thread()  # did not wait for the gate
    assert runs == ["queued"]
    worker.submit(finished.set)  # never asked for: the worker runs it
    gate.set()
    assert finished.wait(10)
    assert runs == ["queued", "long"]  # the worker skipped the queued call
    assert long.result(10) is None


def test_a_cancelled_call_never_runs():
    worker = runtime.Worker("seqtag-test")
    gate, started, finished = threading.Event(), threading.Event(), threading.Event()
    runs = []
    worker.submit(lambda: (started.set(), gate.wait(10)))
    assert started.wait(10)
    dropped = worker.submit(runs.append, "dropped")
    dropped.cancel()
    worker.submit(finished.set)
    gate.set()
    assert finished.wait(10) and runs == []
    with pytest.raises(runtime.CancelledError):
        dropped.result(10)
    done = worker.submit(sum, [1, 2])
    assert done.result(10) == 3
    done.cancel()  # too late: no change
    assert done.result(10) == 3


def test_a_call_submitted_from_the_worker_runs_there():
    """A call on the worker that submits another and waits for it (the front end's
    scores run on the second thread, and their layers submit a direction): queued behind
    itself, it would never start."""
    worker = runtime.Worker("seqtag-test")
    running = threading.Event()

    def outer():
        running.set()
        inner = worker.submit(threading.current_thread)
        return inner.result(10), threading.current_thread()

    job = worker.submit(outer)
    assert running.wait(10)  # the worker runs it, not this thread
    inner_thread, outer_thread = job.result(10)
    assert inner_thread is outer_thread and outer_thread.name == "seqtag-test"


def test_no_cycle_collection_switches_the_collector_back_as_it_was():
    """The collector is off inside the block and as it was after it: on again after an
    error too, and left off where the host had switched it off."""
    import gc
    from seqtag import runtime
    assert gc.isenabled()
    with runtime.no_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError):
        with runtime.no_cycle_collection():
            raise KeyError("x")
    assert gc.isenabled()
    gc.disable()
    try:
        with runtime.no_cycle_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
