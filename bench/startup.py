"""One-shot latency of `seqtag tag "The dog ate the apple"` beside its floor (issue #12).

    python bench/startup.py [--runs 30] [--tree DIR]

Times, alternating within each round so a busy neighbour slows all of them alike:

- `python -c pass`: the interpreter alone (site, .pth files);
- `python -c "import numpy"`: the floor any seqtag run pays;
- `python -m seqtag tag "The dog ate the apple"` with PYTHONPATH=DIR (default: the tree
  this script is in), so a work tree is timed, not whatever `seqtag` is installed;
- a breakdown in a fresh process: `import numpy`, `import seqtag.cli` (typer and the
  options), the modules `tag` imports (seqtag.stream, seqtag.tagger), `Tagger.load()`, and
  tagging the sentence (tag_files into a string, what the command runs).

Prints the median and the lowest of each, the seqtag share (the command less `import
numpy`, paired within each round) and the load average before and after.
PYTHONDONTWRITEBYTECODE is removed from the children's environment and every command
runs once before the timing, so each start reads .pyc files as an installed package does.
"""

import argparse
import json
import os
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
import seqtag.cli
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
names = ["import numpy", "import seqtag.cli (typer, options)",
         "import seqtag.stream, seqtag.tagger", "Tagger.load()", "tag the sentence"]
print(json.dumps({n: b - a for n, a, b in zip(names, t, t[1:])}))
""".replace("SENTENCE", repr(SENTENCE)).replace("EXPECTED", repr(EXPECTED))


def child_env(tree):
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files
    env["PYTHONPATH"] = str(tree)
    return env


def run(command, env, cwd):
    """Wall seconds of one run, process start to exit, and its stdout."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{command} failed: {result.stderr.strip()[-500:]}")
    return seconds, result.stdout


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
    args = parser.parse_args()
    tree = args.tree.resolve()
    env = child_env(tree)
    python = sys.executable
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import numpy'": [python, "-c", "import numpy"],
        f"seqtag tag \"{SENTENCE}\"": [python, "-m", "seqtag", "tag", SENTENCE],
    }
    breakdown_command = [python, "-c", BREAKDOWN]
    git = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
                         capture_output=True, text=True).stdout.strip()
    print(machine_line())
    print(f"tree: {tree} ({git or 'not a git tree'}); python {sys.version.split()[0]}")
    print(f"load average at the start: {load_average()}")

    for command in [*commands.values(), breakdown_command]:  # writes the .pyc files
        run(command, env, tree)
    printed = run(commands[f"seqtag tag \"{SENTENCE}\""], env, tree)[1]
    if printed != EXPECTED:
        sys.exit(f"seqtag tag printed {printed!r}, not {EXPECTED!r}")
    if not list((tree / "seqtag" / "__pycache__").glob("cli.*.pyc")):
        print("warning: no .pyc for seqtag.cli: every start compiles the sources")

    times = {name: [] for name in commands}
    phases = {}
    for _ in range(args.runs):
        for name, command in commands.items():
            times[name].append(run(command, env, tree)[0])
        for phase, seconds in json.loads(run(breakdown_command, env, tree)[1]).items():
            phases.setdefault(phase, []).append(seconds)

    print(f"load average at the end: {load_average()}")
    print(f"median (lowest) of {args.runs} alternated runs, wall time from process start to exit:")
    for name, values in times.items():
        print(f"  {name:34s} {statistics.median(values) * 1e3:7.0f} ms  "
              f"({min(values) * 1e3:.0f})")
    numpy_times = times["python -c 'import numpy'"]
    tag_times = times[f"seqtag tag \"{SENTENCE}\""]
    share = [t - n for t, n in zip(tag_times, numpy_times)]
    print(f"  seqtag's share (tag - import numpy, paired per round): "
          f"{statistics.median(share) * 1e3:.0f} ms")
    print("breakdown in one process (median of each phase):")
    total = 0.0
    for phase, values in phases.items():
        median = statistics.median(values)
        total += median
        print(f"  {phase:38s} {median * 1e3:7.1f} ms")
    print(f"  {'sum':38s} {total * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
