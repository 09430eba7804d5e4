"""Find the BLAS that NumPy loaded and hand its gemm to the compiled core.

NumPy has no C API for its BLAS, but the library is an ordinary shared object already in
the process: we look it up by file (NumPy's wheels bundle it next to the package) or in the
process's memory map, and take the addresses of cblas_sgemm / cblas_dgemm (and gemv) and of the
thread-count setter.  Where nothing is found the core falls back to plain loops, which are
correct and slow; `info()` says which is in use.
"""

import ctypes
import glob
import os
import threading

import numpy as np

from . import _core

# (gemm symbol prefix/suffix, integer width, set-threads symbol, get-threads symbol)
_CANDIDATE_SYMBOLS = [
    ("scipy_cblas_{}gemm64_", 64, "scipy_openblas_set_num_threads64_",
     "scipy_openblas_get_num_threads64_"),
    ("cblas_{}gemm64_", 64, "openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("scipy_cblas_{}gemm", 32, "scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("cblas_{}gemm", 32, "openblas_set_num_threads", "openblas_get_num_threads"),
    ("cblas_{}gemm", 32, "MKL_Set_Num_Threads", "MKL_Get_Max_Threads"),
]

_state = {"library": None, "int_bits": 0, "set_threads": None, "get_threads": None}
_lock = threading.Lock()


def _candidate_libraries():
    """Paths of shared objects that may be NumPy's BLAS, most likely first."""
    numpy_dir = os.path.dirname(np.__file__)
    paths = []
    for pattern in ("../numpy.libs/*blas*", ".dylibs/*blas*", "../numpy.libs/*mkl*", "*.libs/*blas*"):
        paths += sorted(glob.glob(os.path.join(numpy_dir, pattern)))
    try:  # Linux: whatever BLAS NumPy's extension actually mapped
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                name = os.path.basename(path)
                if ("blas" in name or "mkl_rt" in name) and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    return paths


def _resolve():
    if os.environ.get("SEQTAG_BLAS") == "fallback":
        return None
    for path in _candidate_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for gemm_name, bits, set_name, get_name in _CANDIDATE_SYMBOLS:
            try:
                sgemm = getattr(lib, gemm_name.format("s"))
                dgemm = getattr(lib, gemm_name.format("d"))
            except AttributeError:
                continue
            setter = getattr(lib, set_name, None)
            getter = getattr(lib, get_name, None)
            gemv = [getattr(lib, gemm_name.replace("gemm", "gemv").format(t), None)
                    for t in "sd"]
            gemv = [0, 0] if None in gemv else [ctypes.cast(f, ctypes.c_void_p).value
                                                for f in gemv]
            return (path, bits, ctypes.cast(sgemm, ctypes.c_void_p).value,
                    ctypes.cast(dgemm, ctypes.c_void_p).value, setter, getter, *gemv)
    return None


def _install():
    found = _resolve()
    if found is None:
        _core._set_blas(0, 0, 0)
        return
    path, bits, sgemm, dgemm, setter, getter, sgemv, dgemv = found
    _core._set_blas(sgemm, dgemm, bits, sgemv, dgemv)
    _state.update(library=path, int_bits=bits, set_threads=setter, get_threads=getter)


def info():
    """Which BLAS the core uses: {'library': path or None, 'int_bits': 0/32/64, 'threads': n}."""
    return {"library": _state["library"], "int_bits": _state["int_bits"],
            "threads": get_threads()}


def get_threads():
    """BLAS threads in use, or None where the library gives no way to ask."""
    getter = _state["get_threads"]
    return int(getter()) if getter is not None else None


def set_threads(n):
    """Set the BLAS thread count (process-wide: it is the BLAS NumPy uses too)."""
    setter = _state["set_threads"]
    if setter is not None:
        setter(int(n))


class limited_threads:
    """Context: run with at most `n` BLAS threads; the previous count returns when the last
    such context (in any thread) exits.

    Used where seqtag runs its own threads, so that ours times BLAS's never exceeds the
    cores asked for.
    """

    _depth = 0
    _saved = None

    def __init__(self, n):
        self.n = int(n)

    def __enter__(self):
        cls = type(self)
        with _lock:
            current = get_threads()
            if cls._depth == 0:
                cls._saved = current
            cls._depth += 1
            if current is not None and current > self.n:
                set_threads(self.n)
        return self

    def __exit__(self, *exc):
        cls = type(self)
        with _lock:
            cls._depth -= 1
            if cls._depth == 0 and cls._saved is not None and get_threads() != cls._saved:
                set_threads(cls._saved)
        return False


_install()
