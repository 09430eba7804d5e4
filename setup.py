"""Build the compiled core (csrc/_core.pyx -> seqtag._core); metadata is in pyproject.toml."""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

compile_args = []
if sys.platform != "win32":
    # -O3 lets the gate loops vectorise; no -march=native: wheels must run on any x86-64
    # (csrc/fastmath.h builds AVX2 and AVX-512 clones of its kernels, picked at load time).
    compile_args = ["-O3", "-fno-math-errno"]
if os.environ.get("SEQTAG_DEBUG_BUILD"):
    compile_args = ["-O0", "-g"]

extensions = [
    Extension(
        "seqtag._core",
        sources=["csrc/_core.pyx"],
        include_dirs=["csrc"],
        depends=["csrc/fastmath.h", "csrc/lstm_step.h", "csrc/gru_step.h", "csrc/analyses_step.h",
                 "csrc/gemm_fallback.h", "csrc/half.h"],
        extra_compile_args=compile_args,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["csrc"],
        compiler_directives={"language_level": "3"},
    )
)
