"""The package as a user gets it: an sdist holding what the build reads and nothing generated,
a wheel built from that sdist, and the wheel installed into a fresh venv where there is no
compiler and no Cython, its command line tagging and training.

Slow (the wheel compiles csrc/, a minute or so): `-m "not packaging"` leaves it out.
"""

import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[1]
VERSION_LINE = re.compile(r'^version = "([^"]+)"$', re.M)
VERSION = VERSION_LINE.search((REPO / "pyproject.toml").read_text()).group(1)
SENTENCE = "The dog ate the apple"
# what is in the working tree but never part of a source distribution: the products of
# earlier builds (csrc/_core.c among them), caches and version control
NOT_SOURCES = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "*.so", "_core.c",
                                     "__pycache__", ".pytest_cache", ".hypothesis",
                                     ".benchmarks", ".mypy_cache")


def run(args, **kwargs):
    """Run a command; on failure the assertion shows its output."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=600, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """An sdist built from a copy of the tree, so nothing is written into the tree others
    build and test in (setup.py cythonizes csrc/ whenever it runs)."""
    src = tmp_path_factory.mktemp("src") / "seqtag"
    shutil.copytree(REPO, src, ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("sdist")
    run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
         "build_meta.build_sdist(sys.argv[1])", out], cwd=src)
    (path,) = out.glob("seqtag-*.tar.gz")
    return path


@pytest.fixture(scope="module")
def wheel(sdist, tmp_path_factory):
    """The wheel pip builds from the sdist, with this environment's setuptools and Cython."""
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", out, sdist])
    (path,) = out.glob("seqtag-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh venv holding numpy and typer (the versions this environment has, so pip can
    take them from its cache) and then the wheel alone, with no compiler reachable."""
    root = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", root / "env"])
    python = root / "env" / "bin" / "python"
    deps = [f"{name}=={importlib.metadata.version(name)}" for name in ("numpy", "typer")]
    run([python, "-m", "pip", "install", "-q", *deps])
    env = no_compiler_env(root)
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], env=env,
        cwd=root)
    return root


def no_compiler_env(root):
    """The environment of every command in the venv: its bin/ the whole PATH (no cc, gcc or
    clang on it), CC and CXX set to `false`, nothing from this checkout on sys.path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "SEQTAG_DEBUG")}
    env.update(PATH=str(root / "env" / "bin"), CC="false", CXX="false", LDSHARED="false")
    return env


def seqtag(venv, *args):
    """`seqtag ARGS` from the venv, run outside the checkout: (exit status, stdout, stderr)."""
    result = subprocess.run([venv / "env" / "bin" / "seqtag", *map(str, args)],
                            capture_output=True, text=True, env=no_compiler_env(venv),
                            cwd=venv, timeout=300)
    return result.returncode, result.stdout, result.stderr


def test_sdist_holds_the_build_sources_and_not_the_generated_c(sdist):
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    needed = {str(p.relative_to(REPO)) for pattern in ("*.pyx", "*.pxi", "*.pxd", "*.h")
              for p in (REPO / "csrc").glob(pattern)}
    needed |= {"setup.py", "pyproject.toml", "README.md", "LICENSE", "NOTICE",
               "seqtag/models/en_ewt_upos.npz"}
    needed |= {str(p.relative_to(REPO)) for p in (REPO / "seqtag").glob("*.py")}
    assert needed - names == set()
    assert "csrc/_core.c" not in names
    assert not [name for name in names if name.endswith((".so", ".pyd", ".o"))]


def test_wheel_holds_the_compiled_core_and_the_model_and_no_sources(wheel):
    assert wheel.name.startswith(f"seqtag-{VERSION}-cp{sys.version_info[0]}"
                                 f"{sys.version_info[1]}-")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert [n for n in names if re.fullmatch(r"seqtag/_core\..*\.so", n)]
    assert "seqtag/models/en_ewt_upos.npz" in names
    assert "seqtag/py.typed" in names  # type checkers read the installed package's hints
    assert not [n for n in names if n.endswith((".pyx", ".pxi", ".c", ".h"))]


def test_venv_has_no_compiler_no_cython_and_imports_the_installed_package(venv):
    code = ("import importlib.util, shutil, seqtag, seqtag._core; "
            "print(seqtag.__file__); print(seqtag._core.__file__); "
            "print(importlib.util.find_spec('Cython')); "
            "print([shutil.which(c) for c in ('cc', 'gcc', 'clang')])")
    result = run([venv / "env" / "bin" / "python", "-c", code], env=no_compiler_env(venv),
                 cwd=venv)
    package, core, cython, compilers = result.stdout.splitlines()
    site = str(venv / "env" / "lib")
    assert package.startswith(site) and core.startswith(site)
    assert cython == "None"
    assert compilers == "[None, None, None]"


def test_installed_core_says_which_kernels_it_was_built_with(venv):
    code = "import json, seqtag._core as c; print(json.dumps(c.build_info()))"
    result = run([venv / "env" / "bin" / "python", "-c", code], env=no_compiler_env(venv),
                 cwd=venv)
    info = json.loads(result.stdout)
    assert set(info) == {"compiler", "fastmath_clones", "fused_lstm_kernels"}
    compiler, version = info["compiler"].split(" ", 1)
    x86_linux = platform.machine() == "x86_64" and sys.platform == "linux"
    if compiler == "gcc" and int(version.split(".")[0]) >= 12 and x86_linux:
        assert info["fastmath_clones"] is True and info["fused_lstm_kernels"] is True
    elif compiler == "clang" and x86_linux:
        # clang's ifunc resolver mis-dispatches the clones (csrc/fastmath.h): portable loops
        assert info["fastmath_clones"] is False and info["fused_lstm_kernels"] is True


def test_installed_requirements_are_consistent(venv):
    result = run([venv / "env" / "bin" / "python", "-m", "pip", "check"],
                 env=no_compiler_env(venv), cwd=venv)
    assert result.stdout.strip() == "No broken requirements found."


def test_installed_cli_tags_with_the_bundled_model(venv):
    status, out, err = seqtag(venv, "tag", SENTENCE)
    assert (status, out, err) == (0, "The/DET dog/NOUN ate/VERB the/DET apple/NOUN\n", "")
    status, out, _ = seqtag(venv, "--version")
    assert status == 0 and out.splitlines()[0] == f"seqtag {VERSION}"


def test_installed_cli_trains_a_model_that_then_tags(venv):
    sample = REPO / "data" / "sample.txt"
    tags = {token.rsplit("/", 1)[1] for line in sample.read_text().split("\n")
            for token in line.split()}
    model = venv / "sample.npz"
    status, _, err = seqtag(venv, "train", sample, "-o", model, "--epochs", "2", "--quiet")
    assert status == 0, err
    assert model.is_file()
    status, out, err = seqtag(venv, "tag", "-m", model, SENTENCE)
    assert status == 0, err
    tagged = [token.rsplit("/", 1) for token in out.split()]
    assert [word for word, _ in tagged] == SENTENCE.split()
    assert {tag for _, tag in tagged} <= tags
