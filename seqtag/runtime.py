"""How seqtag computes, process-wide: which BLAS runs the products, how many threads run
them, and which fused LSTM steps (AVX-512, AVX2) do.  Everything that belongs to the process
rather than to one tagger lives here.

BLAS.  NumPy has no C API for its BLAS, but the library NumPy loaded is an ordinary shared
object already in the process.  `find_blas` looks for it where NumPy keeps it (the
libraries mapped into the process, NumPy's own folders, its build configuration) and
takes the addresses of cblas_sgemm / cblas_dgemm (and gemv) for the compiled core, which
calls them without the GIL.  OpenBLAS (NumPy's wheels, 32- or 64-bit integers, prefixed
or not), MKL, BLIS, FlexiBLAS and Accelerate are recognised by their own symbols; any
other library with the cblas interface is used as a plain cblas.  Where nothing is
found the core falls back to its own C loops, correct and several times slower, and says
so: a warning when seqtag first computes and the second line of `seqtag --version`.
SEQTAG_BLAS=fallback forces that path (to see what it costs).

Threads.  A bidirectional layer runs its two directions on two threads (threads=2); in
inference with the AVX-512 kernels the two threads share both directions' sequences in
parts (seqtag.rnn.RNN._infer_layer_shared), so that neither waits for the other.
BLAS's own threads would then multiply ours, and OpenBLAS's spin after each call, stealing
the other core; so while seqtag computes, BLAS runs one thread.  MKL takes that as a
setting of the calling thread alone.  OpenBLAS, BLIS and FlexiBLAS only have a
process-wide count (OpenBLAS's openblas_set_num_threads_local changes the global count
too: measured), so `single_blas_thread` lowers it for as long as any seqtag computation
runs and then puts back the host's value, unless the host changed it meanwhile, in which
case the host's choice stands.  Where the count can be neither read nor set (Accelerate, a
plain cblas) seqtag does not add a thread of its own: the directions run in turn.
The `seqtag tag` command's own process goes further and has OpenBLAS start with one thread
(seqtag.console._load_blas_on_one_thread): threads that only spin at its start.

Fork.  The second thread and the locks are re-created in a child process (os.fork,
multiprocessing's fork start method, pre-forking servers), so a tagger loaded before a
fork tags in the child as in the parent.

The fused step.  On CPUs with AVX-512 or AVX2, a float32 LSTM without peepholes runs each
time step's recurrent product in csrc/lstm_step.h, fused with the gates (the AVX-512
kernels where the CPU has them, else the AVX2 ones), and a float32 GRU's inference steps
run csrc/gru_step.h's (the raw-text front end's character model); elsewhere every product
goes through BLAS.  SEQTAG_FUSED_STEP=0 in the environment, or `set_fused_step(False)`, keeps every
product on BLAS; SEQTAG_FUSED_STEP=avx2 or `set_fused_step("avx2")` runs the AVX2 kernels
on an AVX-512 CPU.

The cyclic garbage collector.  Where seqtag makes many small objects that hold no
reference cycles (a tagging call's lists of values, the raw-text front end's tokens), a
pass of the collector starts every few hundred of them, and now and then one over every
object of the process (a host holding a large corpus pays for all of it): `no_cycle_
collection` keeps it off for such a block and then on again, if it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import sys
import threading
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

try:  # queue.SimpleQueue itself, without the imports of queue.py (heapq among them)
    from _queue import SimpleQueue
except ImportError:
    from queue import SimpleQueue

import numpy as np

from . import _core

__all__ = [
    "Blas", "SeqtagPerformanceWarning", "blas", "blas_info", "build_description",
    "compute_description",
    "deferred", "find_blas", "fused_step_available", "fused_step_enabled", "fused_step_isa", "run_beside",
    "second_thread",
    "set_fused_step", "single_blas_thread", "threads_beside_blas", "host_cores",
    "threads_per_caller",
]


class SeqtagPerformanceWarning(RuntimeWarning):
    """seqtag runs, correctly, on a path much slower than it should (no BLAS found)."""


# ---------------------------------------------------------------- finding the BLAS


class _Flavour:
    """How one BLAS names its entry points.  gemm: the cblas gemm name with {} for the
    type letter; get/set: its thread-count getter and setter (None: it has none);
    local: a setter that affects the calling thread only; corename: a function naming the
    kernels it runs.  (A plain class: a frozen dataclass cost ~1.5 ms of every start.)"""

    __slots__ = ("vendor", "gemm", "int_bits", "get", "set", "local", "corename", "marker")

    def __init__(self, vendor: str, gemm: str, int_bits: int, get: Optional[str] = None,
                 set: Optional[str] = None, local: Optional[str] = None,
                 corename: Optional[str] = None, marker: Optional[str] = None) -> None:
        self.vendor, self.gemm, self.int_bits = vendor, gemm, int_bits
        self.get, self.set, self.local, self.corename = get, set, local, corename
        self.marker = marker  # a symbol only this vendor has (besides get/set)


# Most specific first: a library matches the first flavour whose symbols it all has, so
# MKL and BLIS (which also export cblas_sgemm) are told apart from a plain cblas.
_FLAVOURS = (
    _Flavour("openblas", "scipy_cblas_{}gemm64_", 64, "scipy_openblas_get_num_threads64_",
             "scipy_openblas_set_num_threads64_", corename="scipy_openblas_get_corename64_"),
    _Flavour("openblas", "scipy_cblas_{}gemm", 32, "scipy_openblas_get_num_threads",
             "scipy_openblas_set_num_threads", corename="scipy_openblas_get_corename"),
    _Flavour("openblas", "cblas_{}gemm64_", 64, "openblas_get_num_threads64_",
             "openblas_set_num_threads64_", corename="openblas_get_corename64_"),
    _Flavour("openblas", "cblas_{}gemm", 32, "openblas_get_num_threads",
             "openblas_set_num_threads", corename="openblas_get_corename"),
    _Flavour("mkl", "cblas_{}gemm", 32, "MKL_Get_Max_Threads", "MKL_Set_Num_Threads",
             local="MKL_Set_Num_Threads_Local"),
    _Flavour("blis", "cblas_{}gemm", 32, "bli_thread_get_num_threads",
             "bli_thread_set_num_threads"),
    _Flavour("flexiblas", "cblas_{}gemm", 32, "flexiblas_get_num_threads",
             "flexiblas_set_num_threads"),
    # NumPy >= 2 on macOS 14+ calls Accelerate's new interface, ILP64 or LP64
    _Flavour("accelerate", "cblas_{}gemm$NEWLAPACK$ILP64", 64),
    _Flavour("accelerate", "cblas_{}gemm$NEWLAPACK", 32),
    _Flavour("cblas", "cblas_{}gemm", 32),
)


@dataclass(frozen=True)
class Blas:
    """The BLAS seqtag calls: where it is, what it is, and its entry points."""

    vendor: str  # openblas, mkl, blis, flexiblas, accelerate or cblas (any other)
    path: str
    int_bits: int  # 32 or 64: the width of the cblas integer arguments
    sgemm: int
    dgemm: int
    sgemv: int  # 0 where the library has no gemv (one-row products then use gemm)
    dgemv: int
    get_threads: Optional[Callable[[], int]] = None
    set_threads: Optional[Callable[[int], None]] = None
    set_local_threads: Optional[Callable[[int], int]] = None
    corename: Optional[str] = None

    @property
    def name(self) -> str:
        label = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "flexiblas": "FlexiBLAS",
                 "accelerate": "Accelerate", "cblas": "cblas"}[self.vendor]
        kernels = f", {self.corename} kernels" if self.corename else ""
        return f"{label} ({os.path.basename(self.path)}{kernels})"


def _symbol(lib, name: str):
    try:
        return lib[name]
    except (AttributeError, KeyError, OSError):
        return None


def _address(fn) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value or 0


def _read_corename(lib, name: Optional[str]) -> Optional[str]:
    fn = _symbol(lib, name) if name else None
    if fn is None:
        return None
    fn.restype = ctypes.c_char_p
    fn.argtypes = []
    value = fn()
    return value.decode(errors="replace").strip() if value else None


def _blas_in(path: str) -> Optional[Blas]:
    """The BLAS in the shared library at `path`, or None if it has no cblas gemm."""
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for flavour in _FLAVOURS:
        sgemm = _symbol(lib, flavour.gemm.format("s"))
        dgemm = _symbol(lib, flavour.gemm.format("d"))
        if sgemm is None or dgemm is None:
            continue
        getter = _symbol(lib, flavour.get) if flavour.get else None
        setter = _symbol(lib, flavour.set) if flavour.set else None
        if flavour.get and (getter is None or setter is None):
            continue  # not this vendor
        if flavour.vendor == "accelerate" and "accelerate" not in path.lower() \
                and "veclib" not in path.lower():
            continue
        if getter is not None:
            getter.restype, getter.argtypes = ctypes.c_int, []
            setter.restype, setter.argtypes = None, [ctypes.c_int]
        local = _symbol(lib, flavour.local) if flavour.local else None
        if local is not None:
            local.restype, local.argtypes = ctypes.c_int, [ctypes.c_int]
        gemv = [_symbol(lib, flavour.gemm.replace("gemm", "gemv").format(t)) for t in "sd"]
        sgemv, dgemv = (0, 0) if None in gemv else (_address(gemv[0]), _address(gemv[1]))
        return Blas(flavour.vendor, path, _int_bits(lib, flavour), _address(sgemm),
                    _address(dgemm),
                    sgemv, dgemv, getter, setter, local,
                    _read_corename(lib, flavour.corename))
    return None


def _int_bits(lib, flavour: _Flavour) -> int:
    """The width of the cblas integers: 64 where the names say so, and also where a build
    kept the plain names over 64-bit integers (OpenBLAS's INTERFACE64 says USE64BITINT in
    its configuration string; an ILP64 MKL or other build says ilp64 in NumPy's own
    configuration).  Passing 32-bit sizes to such a library would corrupt memory."""
    if flavour.int_bits == 64:
        return 64
    config = _symbol(lib, "openblas_get_config")
    if flavour.vendor == "openblas" and config is not None:
        config.restype, config.argtypes = ctypes.c_char_p, []
        if b"USE64BITINT" in (config() or b""):
            return 64
    with contextlib.suppress(Exception):
        if "ilp64" in str(np.__config__.CONFIG["Build Dependencies"]["blas"]["name"]).lower():
            return 64
    return 32


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process (NumPy's BLAS among them,
    once NumPy is imported)."""
    paths: list[str] = []
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            with open("/proc/self/maps") as maps:
                for line in maps:
                    fields = line.split(maxsplit=5)
                    if len(fields) == 6 and fields[5].startswith("/"):
                        paths.append(fields[5].strip())
    elif sys.platform == "darwin":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
            libc._dyld_image_count.restype = ctypes.c_uint32
            libc._dyld_get_image_name.restype = ctypes.c_char_p
            libc._dyld_get_image_name.argtypes = [ctypes.c_uint32]
            for i in range(libc._dyld_image_count()):
                name = libc._dyld_get_image_name(i)
                if name:
                    paths.append(name.decode(errors="replace"))
    elif sys.platform == "win32":
        paths += _windows_modules()
    return list(dict.fromkeys(paths))


def _windows_modules() -> list[str]:
    """The DLLs loaded in this process (EnumProcessModulesEx)."""
    try:
        from ctypes import wintypes
        psapi, kernel32 = ctypes.WinDLL("Psapi.dll"), ctypes.WinDLL("kernel32")
        process = kernel32.GetCurrentProcess()
        modules = (wintypes.HMODULE * 1024)()
        needed = wintypes.DWORD()
        if not psapi.EnumProcessModulesEx(process, ctypes.byref(modules),
                                          ctypes.sizeof(modules), ctypes.byref(needed), 3):
            return []
        paths = []
        buffer = ctypes.create_unicode_buffer(1024)
        for module in modules[:needed.value // ctypes.sizeof(wintypes.HMODULE)]:
            if kernel32.GetModuleFileNameW(module, buffer, len(buffer)):
                paths.append(buffer.value)
        return paths
    except (OSError, AttributeError, ValueError):
        return []


_BLAS_NAME_HINTS = ("blas", "mkl_rt", "libmkl", "accelerate", "veclib", "blis", "flexiblas")


def _candidates() -> Iterator[str]:
    """Libraries that may be NumPy's BLAS, most likely first, each once: loaded libraries
    in NumPy's own folders or the folder its build configuration names, then any loaded
    library that looks like a BLAS, then files in NumPy's folders that are not loaded
    (yet)."""
    numpy_dir = os.path.dirname(os.path.abspath(np.__file__))
    homes = [numpy_dir, numpy_dir + ".libs", os.path.join(numpy_dir, ".dylibs")]
    config_name = ""
    with contextlib.suppress(Exception):  # numpy < 1.25 has no CONFIG dict
        blas_config = np.__config__.CONFIG["Build Dependencies"]["blas"]
        config_name = str(blas_config.get("name") or "").lower()
        if blas_config.get("lib directory"):
            homes.append(str(blas_config["lib directory"]))
    loaded = _loaded_libraries()

    def looks_like_blas(path):
        name = os.path.basename(path).lower()
        return any(hint in name for hint in _BLAS_NAME_HINTS) or \
            (config_name and config_name.split("-")[-1] in name)

    in_homes = [p for p in loaded if any(p.startswith(h) for h in homes) and looks_like_blas(p)]
    others = [p for p in loaded if p not in in_homes and looks_like_blas(p)]
    yield from dict.fromkeys(in_homes + others)
    # the folders are searched only when no loaded library was the BLAS (glob imported
    # then: it is no module tagging needs otherwise)
    import glob

    on_disk = [p for h in homes[:3] for pattern in ("*blas*", "*mkl*")
               for p in sorted(glob.glob(os.path.join(h, pattern)))]
    if sys.platform == "darwin" and "accelerate" in config_name:
        on_disk.append("/System/Library/Frameworks/Accelerate.framework/Accelerate")
    yield from (p for p in dict.fromkeys(on_disk) if p not in in_homes and p not in others)


def find_blas() -> Optional[Blas]:
    """The BLAS NumPy loaded, or None where none can be found (or SEQTAG_BLAS=fallback)."""
    if os.environ.get("SEQTAG_BLAS") == "fallback":
        return None
    for path in _candidates():
        found = _blas_in(path)
        if found is not None:
            return found
    return None


_blas: Optional[Blas] = None
_warned = False


def _install(found: Optional[Blas]) -> None:
    """Hand `found`'s entry points to the compiled core (None: its own loops)."""
    global _blas, _warned
    if found is None:
        _core._set_blas(0, 0, 0)
    else:
        _core._set_blas(found.sgemm, found.dgemm, found.int_bits, found.sgemv, found.dgemv)
    _blas = found
    if found is None and not _warned:
        _warned = True
        why = ("SEQTAG_BLAS=fallback" if os.environ.get("SEQTAG_BLAS") == "fallback"
               else "NumPy's BLAS library could not be found in this process")
        warnings.warn(f"seqtag computes without BLAS ({why}): its own C loops give the same "
                      "results several times more slowly; `seqtag --version` says what runs",
                      SeqtagPerformanceWarning, stacklevel=3)


def blas() -> Optional[Blas]:
    """The BLAS in use, None for seqtag's own loops."""
    return _blas


def blas_info() -> dict:
    """What runs the products: vendor, library path, kernels, integer width, thread count."""
    b = _blas
    if b is None:
        return {"vendor": None, "library": None, "corename": None, "int_bits": 0,
                "threads": None}
    return {"vendor": b.vendor, "library": b.path, "corename": b.corename,
            "int_bits": b.int_bits, "threads": b.get_threads() if b.get_threads else None}


# ---------------------------------------------------------------- threads

class _BlasThreadLimit:
    """The process-wide BLAS thread count, lowered to 1 while any seqtag computation runs.

    `active` counts the computations running in the whole process, `depth` (thread-local)
    those of the calling thread, so that a forked child, where only the forking thread
    lives on, knows how many of them are still its own.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.active = 0
        self.saved: Optional[int] = None  # the host's count, to put back
        self.blas: Optional[Blas] = None  # the library it was lowered in
        self.local = threading.local()

    def __enter__(self) -> None:
        with self.lock:
            if self.active == 0:
                self.blas = b = _blas
                current = b.get_threads()
                self.saved = current if current > 1 else None
                if self.saved is not None:
                    b.set_threads(1)
            self.active += 1
            self.local.depth = getattr(self.local, "depth", 0) + 1

    def __exit__(self, *exc) -> bool:
        with self.lock:
            self.active -= 1
            self.local.depth -= 1
            if self.active == 0:
                self._restore(self.blas)
        return False

    def _restore(self, b: Blas) -> None:
        # a count other than ours was set by the host meanwhile: the host's choice stands
        # (a host that set 1 meanwhile cannot be told from our own 1: it gets its old count)
        if self.saved is not None and b.get_threads() == 1:
            b.set_threads(self.saved)
        self.saved = None

    def after_fork_in_child(self) -> None:
        self.lock = threading.Lock()
        self.active = getattr(self.local, "depth", 0)
        if self.active == 0 and _blas is not None and _blas.set_threads is not None:
            self._restore(_blas)


_limit = _BlasThreadLimit()


class _Unlimited:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> bool:
        return False


_UNLIMITED = _Unlimited()


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Context: the cyclic garbage collector off for the block (objects freed by their
    reference counts still are), then on again if it was on before (another thread that
    switched it off meanwhile keeps it off only until this block ends)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@contextlib.contextmanager
def _thread_local_limit(b: Blas) -> Iterator[None]:
    previous = b.set_local_threads(1)
    try:
        yield
    finally:
        b.set_local_threads(previous)


def single_blas_thread():
    """Context: run the block with BLAS on one thread (see the module's docstring);
    nestable, from any number of threads.  Costs a few calls into the library per
    outermost block (bench/bench_runtime.py measures it)."""
    b = _blas
    if b is None:
        return _UNLIMITED
    if b.set_local_threads is not None:
        return _thread_local_limit(b)
    if b.set_threads is not None:
        return _limit
    return _UNLIMITED


def threads_beside_blas(requested: int) -> int:
    """How many threads of its own seqtag may run its products on, `requested` asked:
    1 where BLAS may be running threads seqtag cannot limit."""
    b = _blas
    if b is None or b.set_threads is not None or b.set_local_threads is not None:
        return requested
    return 1


def host_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_per_caller(callers: int, requested: int = 2) -> int:
    """Threads for each of `callers` tagging calls running at once on this host (the
    threads of Dask workers on one machine, say), so that callers x threads stays within
    host_cores(): at most `requested`, at least 1."""
    return max(1, min(requested, host_cores() // max(callers, 1)))


class CancelledError(Exception):
    """Job.result() of a call cancelled before it started."""


class Job:
    """A call submitted to the second thread: result() waits for it and gives its value
    (or raises its exception), as a concurrent.futures.Future does.  A call the second
    thread has not started when result() is asked runs on the asking thread instead (the
    second thread then skips it): behind a long call of the second thread (the front
    end's scores of the next paragraphs, seqtag.rawtext.segment), the asking thread would
    otherwise wait with its core idle."""

    __slots__ = ("_call", "_value", "_error", "_done", "_claimed", "_pid")

    def __init__(self, fn: Callable, args: tuple) -> None:
        self._call: Optional[tuple] = (fn, args)
        self._value = self._error = None
        self._done = threading.Lock()
        self._done.acquire()  # released when the call has run
        self._claimed = threading.Lock()  # taken by the thread that runs the call
        self._pid = os.getpid()

    def _run(self) -> None:
        if not self._claimed.acquire(blocking=False):
            return  # another thread runs it, or it was cancelled
        try:  # (an interrupt on the calling thread must still release _done)
            fn, args = self._call  # type: ignore[misc]
            self._call = None  # the arguments (arrays) are not kept
            self._value = fn(*args)
        except BaseException as e:  # handed to the caller, as a Future does
            self._error = e
        finally:
            self._done.release()

    def _in_forked_child(self) -> None:
        """Asked in a child forked after the call was submitted: the parent's second
        thread does not exist here, so a call it had not finished is run here (or, if
        it had started it, reported: its arguments are gone), never waited for."""
        self._pid = os.getpid()
        if self._done.acquire(blocking=False):  # finished before the fork
            self._done.release()
            return
        call = self._call
        self._done, self._claimed = threading.Lock(), threading.Lock()
        self._done.acquire()
        if call is None:
            self._error = RuntimeError("the process forked while seqtag's second thread "
                                       "was running this call; ask for it again")
            self._claimed.acquire()
            self._done.release()

    def run_here(self) -> None:
        """Run the call on this thread now, unless the second thread has taken it (then
        return at once: result() waits for it)."""
        if self._pid != os.getpid():
            self._in_forked_child()
        self._run()

    def wait_quietly(self) -> Optional[BaseException]:
        """Wait until the call has ended (or was cancelled), whatever it raised, and
        through interrupts: for cleaning up after an error, so that nothing keeps running
        on the caller's arrays.  Returns the first interrupt (KeyboardInterrupt, say) that
        came while waiting, for the caller to raise once it has cleaned up, or None."""
        interrupted: Optional[BaseException] = None
        while True:
            try:
                self.result()
                return interrupted
            except BaseException as e:
                if self._done.acquire(blocking=False):  # the call's own error: it ended
                    self._done.release()
                    return interrupted
                interrupted = interrupted or e  # the wait was interrupted: wait again

    def cancel(self) -> None:
        """Drop the call if it has not started (a caller that no longer wants it): the
        second thread then skips it, and result() raises CancelledError."""
        if self._claimed.acquire(blocking=False):
            self._call = None
            self._error = CancelledError("the call was cancelled before it started")
            self._done.release()

    def result(self, timeout: Optional[float] = None):
        """The call's value: waits for the second thread where it runs there (at most
        `timeout` seconds, then TimeoutError), else runs it now on this thread."""
        self.run_here()
        if not self._done.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("the second thread's call has not finished")
        self._done.release()  # result() may be asked again
        if self._error is not None:
            raise self._error
        return self._value


class Worker:
    """One thread running the calls submitted to it, in order (but for those their callers
    ran themselves or cancelled before it got to them: Job): what a ThreadPoolExecutor
    of one worker did, without importing concurrent.futures (and logging), 7-9 ms of a
    one-shot `seqtag tag` on a 2-core machine.  A daemon thread: a call is waited for or
    cancelled by its caller, so the thread is idle when the process exits.  A call submitted
    from the worker's own thread runs there when its result is asked (Job.result), not
    queued behind the call asking."""

    def __init__(self, name: str = "seqtag") -> None:
        self._jobs: SimpleQueue[Job] = SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable, *args) -> Job:
        return self.put(Job(fn, args))

    def put(self, job: Job) -> Job:
        """Queue a Job made beforehand."""
        self._jobs.put(job)
        return job

    def _serve(self) -> None:
        while True:
            self._jobs.get()._run()


_pool: Optional[Worker] = None
_pool_lock = threading.Lock()

#: Held while a cache of per-form rows that several threads share is looked up and grown
#: (the front end's word-level models, seqtag.segment): threads tagging with one model
#: (a threaded server, a Dask worker's threads) would otherwise number their new forms
#: from the same table length.  One lock for the process, as it is made anew after fork.
tables_lock = threading.Lock()


def second_thread() -> Worker:
    """The one worker thread seqtag runs work beside the caller's on (the reverse
    direction of a layer, or its share of both in inference; half of the optimizer's
    update); created on first use, and
    anew in a forked child, where the parent's worker does not exist."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = Worker()
    return _pool


def run_beside(fn: Callable, *args):
    """Run fn(*args) on the second thread, with BLAS on one thread there too; a Job (its
    result() waits for it)."""
    return queue_beside(job_beside(fn, *args))


def job_beside(fn: Callable, *args) -> Job:
    """The Job run_beside(fn, *args) runs, made but not queued: queue_beside(job) hands it
    to the second thread, for a caller that must hold the Job before it can start (an
    interrupt between queueing and binding its result would leave it running unwatched)."""
    return Job(_single_blas_threaded, (fn, *args))


def queue_beside(job: Job) -> Job:
    """Queue job (job_beside's) on the second thread; the job."""
    second_thread().put(job)
    return job


def deferred(beside: bool, fn: Callable, *args) -> Callable[[], Any]:
    """A function giving fn(*args): computed on the second thread from now (run_beside)
    if beside, else when the function is called."""
    return run_beside(fn, *args).result if beside else functools.partial(fn, *args)


def _single_blas_threaded(fn, *args):
    with single_blas_thread():
        return fn(*args)


#: Objects whose locks a forked child makes anew (renew_after_fork).
_renewed_after_fork: "weakref.WeakSet" = weakref.WeakSet()


def renew_after_fork(owner) -> None:
    """Have owner.after_fork() called in a child forked from this process: a lock that
    another thread of the parent held at the fork stays held in the child for good, and
    what that thread was changing may be half-done there (a network's memo, say)."""
    _renewed_after_fork.add(owner)


def _after_fork_in_child() -> None:
    global _pool, _pool_lock, tables_lock
    _pool = None  # its thread is gone: a submit would wait forever
    _pool_lock = threading.Lock()
    tables_lock = threading.Lock()  # a thread of the parent may have held it
    for owner in list(_renewed_after_fork):
        owner.after_fork()
    _limit.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------- the fused step

#: What set_fused_step accepts besides None: True (the best kernels), False (BLAS only), or
#: one instruction set by name.
FUSED_STEP_CHOICES = (True, False, "avx512", "avx2")

_fused_override: Optional[object] = None


def fused_step_available() -> bool:
    """Whether this build and CPU can run fused LSTM steps (AVX-512 or AVX2 kernels)."""
    return bool(_core.fused_step_available())


def _wanted_isa() -> Optional[str]:
    """The kernels asked for: set_fused_step's choice, else SEQTAG_FUSED_STEP ("0" off,
    "avx2" or "avx512" those kernels, anything else the best); None for BLAS only."""
    isas = _core.fused_step_isas()
    if not isas:
        return None
    choice = _fused_override
    if choice is None:
        env = os.environ.get("SEQTAG_FUSED_STEP", "")
        choice = False if env == "0" else env if env in ("avx2", "avx512") else True
    if choice is False:
        return None
    if choice is True:
        return isas[0]
    # a named set this CPU lacks (avx512 on an AVX2-only CPU) gets the best there is
    return choice if choice in isas else isas[0]


def fused_step_isa() -> Optional[str]:
    """The fused kernels float32 LSTMs without peepholes run now, "avx512" or "avx2", or
    None when every product goes through BLAS.  Asked on each call (the switch may
    change), it also points the compiled core at those kernels."""
    isa = _wanted_isa()
    if isa is not None and _core.fused_step_isa() != isa:
        _core.set_fused_step_isa(isa)
    return isa


def fused_step_enabled() -> bool:
    """Whether float32 LSTMs without peepholes run fused steps now: available, and not
    switched off by set_fused_step(False) or SEQTAG_FUSED_STEP=0."""
    return fused_step_isa() is not None


def set_fused_step(enabled: object) -> None:
    """For the whole process: True runs the best fused kernels there are, False every
    product on BLAS, "avx2" or "avx512" those kernels (AVX2 on an AVX-512 CPU keeps that
    path tested), None goes back to the environment's choice (SEQTAG_FUSED_STEP).  A set
    this CPU lacks ("avx512" on an AVX2-only CPU) runs the best it has: fused_step_isa()
    says which runs.  Switch between runs, not during one: weights packed for one kind of
    kernel serve only it."""
    global _fused_override
    if enabled is not None and not any(enabled is c or (isinstance(enabled, str) and
                                                         enabled == c)
                                       for c in FUSED_STEP_CHOICES):
        raise TypeError("set_fused_step takes True, False, 'avx512', 'avx2' or None, "
                        f"got {enabled!r}")
    _fused_override = enabled


def build_description() -> str:
    """One line on how the compiled core was built: compiler, and which vectorised kernels
    it holds (`seqtag --version` prints it)."""
    info = _core.build_info()
    clones = ("AVX2 and AVX-512 copies of the gate functions" if info["fastmath_clones"]
              else "portable gate functions only")
    fused = ("fused AVX-512 and AVX2 LSTM and GRU kernels compiled"
             if info["fused_lstm_kernels"] else "no fused LSTM or GRU kernels")
    return f"{info['compiler']}; {clones}; {fused}"


def compute_description() -> str:
    """One line on what runs the products here (`seqtag --version` prints it)."""
    b = _blas
    if b is None:
        why = ("SEQTAG_BLAS=fallback" if os.environ.get("SEQTAG_BLAS") == "fallback"
               else "no BLAS found beside NumPy")
        library = f"seqtag's own C loops, several times slower ({why})"
    else:
        library = b.name
        if threads_beside_blas(2) == 1:
            library += "; directions in turn: its threads cannot be limited"
    isa = fused_step_isa()
    if isa is not None:
        return f"fused {'AVX-512' if isa == 'avx512' else 'AVX2'} LSTM and GRU steps + {library}"
    if not fused_step_available():
        why = "no AVX2 or AVX-512 on this CPU or build"
    elif _fused_override is False:
        why = "fused steps switched off"
    else:
        why = "SEQTAG_FUSED_STEP=0"
    return f"{library} only ({why})"


_install(find_blas())
