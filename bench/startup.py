"""One-shot latency of `seqtag tag "The dog ate the apple"` beside its floor (issue #12).

    python bench/startup.py [--runs 30] [--tree DIR] [--against DIR] [--python PYTHON] [--busy]

Times, alternating within each round so a busy neighbour slows all of them alike:

- `python -c pass`: the interpreter alone (site, .pth files);
- `python -c "import numpy"`: the floor any seqtag run pays;
- `python -m seqtag tag "The dog ate the apple"` with PYTHONPATH=DIR (default: the tree
  this script is in), so a work tree is timed, not whatever `seqtag` is installed;
- a breakdown in a fresh process: `import numpy`, the modules `tag` imports
  (seqtag.stream, seqtag.tagger), `Tagger.load()`, tagging the sentence (tag_files into a
  string, what the command runs), then `import seqtag.cli` (typer and every command's
  options: what a `seqtag tag` with options pays on top).

--against DIR times a second tree's command and breakdown in the same rounds (an older
commit in its own work tree): a before/after on a machine whose load moves.

--python PYTHON runs every command with that interpreter (default: this one), e.g. a new
virtual environment's (`python -m venv v && v/bin/pip install .`): the user's case. The
interpreter a developer works with may start slower than a user's: an editable install
adds its import finder to every start, and other .pth files of its site-packages run too
(`python -X importtime -c pass` shows them).

--busy keeps one core busy (a Python busy loop) while the rounds run: a one-shot command on a
2-core machine whose other core is taken, where threads that spin at start-up cost most.

Prints the median and the lowest of each, the CPU time of the command (user + system, its
process alone), the seqtag share (the command less `import
numpy`, paired within each round) and the load average before and after.
PYTHONDONTWRITEBYTECODE is removed from the children's environment and every command
runs once before the timing, so each start reads .pyc files as an installed package does.
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line  # noqa: E402

SENTENCE = "The dog ate the apple"
EXPECTED = "The/DET dog/NOUN ate/VERB the/DET apple/NOUN\n"

# Run in a child: the phases of one `seqtag tag` as the command goes through them,
# each stamped with perf_counter; prints {phase: seconds} as JSON.
BREAKDOWN = r"""
import io, json, time
t = [time.perf_counter()]
import numpy
t.append(time.perf_counter())
from seqtag.stream import tag_files
from seqtag.tagger import Tagger
t.append(time.perf_counter())
tagger = Tagger.load()
t.append(time.perf_counter())
source, out = io.StringIO(SENTENCE, newline=""), io.StringIO()
source.name = "argument 1"
tag_files(tagger, [source], out, "text", "text")
t.append(time.perf_counter())
assert out.getvalue() == EXPECTED, out.getvalue()
import seqtag.cli
t.append(time.perf_counter())
names = ["import numpy", "import seqtag.stream, seqtag.tagger", "Tagger.load()",
         "tag the sentence", "then import seqtag.cli (typer)"]
print(json.dumps({n: b - a for n, a, b in zip(names, t, t[1:])}))
""".replace("SENTENCE", repr(SENTENCE)).replace("EXPECTED", repr(EXPECTED))


def child_env(tree):
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
    env["PYTHONPATH"] = str(tree)
    return env


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command, env, cwd):
    """Wall seconds of one run, process start to exit, its stdout and its CPU seconds (the
    children reaped meanwhile: this one alone, run after run)."""
    cpu = children_cpu()
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{command} failed: {result.stderr.strip()[-500:]}")
    return seconds, result.stdout, children_cpu() - cpu


@contextlib.contextmanager
def busy_core(wanted):
    """A busy loop in a child process while the block runs, if wanted."""
    if not wanted:
        yield
        return
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        loop.kill()
        loop.wait()


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "(unknown)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="rounds (each runs every command)")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the seqtag source tree to time (PYTHONPATH)")
    parser.add_argument("--against", type=Path, help="a second tree, timed in the same rounds")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter to time (default: this one)")
    parser.add_argument("--busy", action="store_true",
                        help="a busy loop on one core while the rounds run")
    args = parser.parse_args()
    trees = [args.tree.resolve()] + ([args.against.resolve()] if args.against else [])
    # the commands run in each tree: a relative path (v/bin/python) made absolute first,
    # without following the venv's link to its base interpreter
    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    floors = {"python -c pass": [python, "-c", "pass"],
              "python -c 'import numpy'": [python, "-c", "import numpy"]}
    tag_command = [python, "-m", "seqtag", "tag", SENTENCE]
    breakdown_command = [python, "-c", BREAKDOWN]
    print(machine_line())
    print(f"python {python}: " + subprocess.run(
        [python, "-c", "import sys, numpy; print(sys.version.split()[0], 'numpy', "
         "numpy.__version__)"], capture_output=True, text=True).stdout.strip())
    for tree in trees:
        git = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True).stdout.strip()
        print(f"tree: {tree} ({git or 'not a git tree'})")
    print(f"load average at the start: {load_average()}")

    for tree in trees:  # writes the .pyc files, and checks what the command prints
        env = child_env(tree)
        for command in [*floors.values(), breakdown_command]:
            run(command, env, tree)
        printed = run(tag_command, env, tree)[1]
        if printed != EXPECTED:
            sys.exit(f"seqtag tag printed {printed!r}, not {EXPECTED!r} ({tree})")
        if not list((tree / "seqtag" / "__pycache__").glob("tagger.*.pyc")):
            print(f"warning: no .pyc in {tree}: every start compiles the sources")

    floor_times = {name: [] for name in floors}
    tag_times = {tree: [] for tree in trees}
    tag_cpu = {tree: [] for tree in trees}
    phases = {tree: {} for tree in trees}
    if args.busy:
        print("a busy loop runs on one core meanwhile")
    with busy_core(args.busy):
        for _ in range(args.runs):
            for name, command in floors.items():
                floor_times[name].append(run(command, child_env(trees[0]), trees[0])[0])
            for tree in trees:
                env = child_env(tree)
                seconds, _, cpu = run(tag_command, env, tree)
                tag_times[tree].append(seconds)
                tag_cpu[tree].append(cpu)
                for phase, seconds in json.loads(run(breakdown_command, env, tree)[1]).items():
                    phases[tree].setdefault(phase, []).append(seconds)

    print(f"load average at the end: {load_average()}")
    print(f"median (lowest) of {args.runs} alternated runs, wall time from process start "
          "to exit:")
    for name, values in floor_times.items():
        print(f"  {name:44s} {statistics.median(values) * 1e3:7.0f} ms  "
              f"({min(values) * 1e3:.0f})")
    numpy_times = floor_times["python -c 'import numpy'"]
    for tree in trees:
        values = tag_times[tree]
        share = [t - n for t, n in zip(values, numpy_times)]
        label = f'seqtag tag "{SENTENCE}"'
        print(f"  {label:44s} {statistics.median(values) * 1e3:7.0f} ms"
              f"  ({min(values) * 1e3:.0f})  {tree.name}")
        print(f"    seqtag's share (less import numpy, paired per round): "
              f"{statistics.median(share) * 1e3:.0f} ms; CPU time of the command "
              f"{statistics.median(tag_cpu[tree]) * 1e3:.0f} ms")
    for tree in trees:
        print(f"breakdown in one process, {tree.name} (median of each phase):")
        for phase, values in phases[tree].items():
            print(f"  {phase:38s} {statistics.median(values) * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
