"""The public API says what it takes: type hints a checker reads (mypy over the public
modules and a user's code, tests/typing_example.py), on every public function, shipped
with the py.typed marker."""

import importlib
import inspect
import os
import subprocess
import sys
import textwrap

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
PUBLIC_MODULES = ["seqtag/tagger.py", "seqtag/stream.py", "seqtag/corpus.py",
                  "seqtag/inference.py", "seqtag/errors.py", "seqtag/rawtext.py"]
# --follow-imports=silent: the modules behind them (network, rnn, runtime...) are read for
# their types but their own errors are not this test's; --disallow-incomplete-defs: a
# function hinted halfway is an error.
MYPY_FLAGS = ["--follow-imports=silent", "--disallow-incomplete-defs", "--warn-unused-ignores",
              "--no-color-output", "--hide-error-context"]


def mypy(request, *paths):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")
    cache = request.config.cache.mkdir("mypy")  # .pytest_cache: a warm run takes seconds
    return subprocess.run([sys.executable, "-m", "mypy", *MYPY_FLAGS, "--cache-dir",
                           str(cache), *paths], cwd=ROOT, capture_output=True, text=True)


def test_mypy_accepts_the_public_modules_and_a_users_code(request):
    result = mypy(request, *PUBLIC_MODULES, os.path.join("tests", "typing_example.py"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_misuse_of_the_public_api(request, tmp_path):
    """The hints say something: Tagger (imported from the package) is not Any, and the
    return types are the documented ones."""
    bad = tmp_path / "misuse.py"
    bad.write_text(textwrap.dedent("""\
        from seqtag import Tagger
        from seqtag.stream import tag_stream

        tagger = Tagger.load()
        tags: list[str] = tagger.predict([["a"]])
        pairs: list[str] = tagger.predict_top_k([["a"]], 2)[0][0]
        tagger.tag(3)
        tagger.predict_top_k([["a"]], "2")
        count: int = tag_stream(tagger, [["a"]], open("x", "w"))
        """))
    result = mypy(request, str(bad))
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line.split(": error: ")[1] for line in result.stdout.splitlines()
              if ": error: " in line]
    lines = sorted(int(line.split(":")[1]) for line in result.stdout.splitlines()
                   if ": error: " in line)
    assert lines == [5, 6, 7, 8, 9], result.stdout
    assert any('"list[list[str]]", variable has type "list[str]"' in e for e in errors), errors
    assert any('"list[tuple[str, float]]", variable has type "list[str]"' in e
               for e in errors), errors


def test_the_typing_example_runs():
    sys.path.insert(0, TESTS)
    try:
        example = importlib.import_module("typing_example")
    finally:
        sys.path.remove(TESTS)
    results = example.main()
    assert results["one"] == [[("The", "DET"), ("dog", "NOUN"), ("barked", "VERB"),
                               (".", "PUNCT")]]
    assert results["offsets"] == (4, 7)
    assert results["many"][0] == [("A", "DET"), ("cat", "NOUN"), ("sat", "VERB"),
                                  (".", "PUNCT")]
    assert results["tags"] == [["VERB", "DET", "NOUN"]] and results["best_tag"] == "VERB"
    assert results["format"] == "slash" and results["counts"] == (2, 3)
    assert results["error"] == "sentence 2: tokens must be non-empty strings, got 3"


# Public callables whose hints their owner adds in a change of their own.  Listed so that
# this test fails once they are hinted, and the entry is removed.
PENDING: set = set()


def _public_callables():
    for name in ("seqtag.tagger", "seqtag.stream", "seqtag.corpus", "seqtag.inference",
                 "seqtag.rawtext"):
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", None) or dir(module):
            obj = getattr(module, attr)
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if inspect.isfunction(obj):
                yield f"{name}.{attr}", obj
            elif inspect.isclass(obj):
                for member, value in vars(obj).items():
                    if member.startswith("_") and member != "__init__":
                        continue
                    function = getattr(value, "__func__", value)  # classmethod
                    function = getattr(function, "fget", function)  # property
                    if inspect.isfunction(function):
                        yield f"{name}.{attr}.{member}", function


def test_every_public_function_is_hinted():
    unhinted = []
    for qualname, function in _public_callables():
        signature = inspect.signature(function)
        params = [p for p in signature.parameters.values()
                  if p.name not in ("self", "cls")]
        complete = (signature.return_annotation is not inspect.Signature.empty
                    and all(p.annotation is not inspect.Parameter.empty for p in params))
        if not complete:
            unhinted.append(qualname)
    assert sorted(unhinted) == sorted(PENDING)
    assert "seqtag.tagger.Tagger.predict_top_k" in dict(_public_callables())


def test_the_package_has_its_py_typed_marker():
    assert os.path.isfile(os.path.join(ROOT, "seqtag", "py.typed"))
