"""Peak memory of `seqtag tag -i FILE` against the input's size: it should stay flat.

    python bench/memory_flat.py [--sizes 1,4,16] [--memo-words 8192] [--format text]
                                [--model MODEL] [--track SECONDS]

Generates raw text of each size (MB) in a temporary folder: paragraphs of random sentences
over 50,000 made-up words (so the memo of word forms fills and starts over, as on a web
crawl), a blank line between paragraphs, and every tenth "paragraph" (the first one too) a
run of 1,500 lines (~150 KB) with no blank line (cut at the paragraph size limit,
seqtag.rawtext.SOFT_LIMIT).  Then runs the whole command on each file, output to /dev/null, and prints its peak RSS (the
child's ru_maxrss, read in a wrapper process of its own per run so that runs do not mix)
and its speed.  The last line is `peak RSS MB: a b c` in the order of the sizes.
--model tags with another model than the bundled one: a tiny one makes a 1 GB run take
minutes rather than hours (what streams, and so what memory holds, does not depend on the
network's size).
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line  # noqa: E402

REPEAT_FROM = 50_000_000

_SYLLABLES = "ka lo mi ne ru ta shi po ve da gri on ex ul fa be zo qui".split()


def made_up_words(count, rng):
    """`count` distinct words of 1 to 5 syllables (there are 1.9 million such words)."""
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 5))))
    return sorted(words)


def generate(path, size, seed=0):
    """Write about `size` bytes of raw text to path (see the module's docstring).  Past
    REPEAT_FROM bytes the text written so far is copied over and over (generating a
    gigabyte word by word takes longer than tagging it; the memo of word forms still
    fills and starts over in every copy)."""
    if size > REPEAT_FROM:
        written = generate(path, REPEAT_FROM, seed)
        with open(path, "rb") as f:
            block = f.read()
        with open(path, "ab") as f:
            while written < size:
                f.write(block)
                written += len(block)
        return written
    rng = random.Random(seed)
    words = made_up_words(50_000, rng)
    common = "the a of to and in is that it was for on".split()
    written, k = 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size:
            k += 1
            lines = 1500 if k % 10 == 1 else 1  # the first one too: at any size
            sep = "\n" if lines > 1 else " "
            sentences = []
            for _ in range(lines if lines > 1 else 5):
                n = rng.randint(4, 20)
                sentence = [rng.choice(common) if rng.random() < 0.4 else rng.choice(words)
                            for _ in range(n)]
                sentences.append(" ".join(sentence).capitalize() + ".")
            block = sep.join(sentences) + "\n\n"
            f.write(block)
            written += len(block.encode("utf-8"))
    return written


def track_rss(command, input_path, every):
    """Run `command` (reading input_path, output discarded) and every `every` seconds
    print how far it has read the input and its RSS and peak RSS so far, from /proc (so
    a curve shows even for a run stopped early).  Returns (peak MB, seconds)."""
    start = time.perf_counter()
    size = os.path.getsize(input_path)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    peak = 0.0
    try:
        while proc.poll() is None:
            time.sleep(every)
            status, read = _proc_status(proc.pid), _position(proc.pid, input_path)
            if not status:
                continue
            peak = max(peak, status["VmHWM"])
            print(f"{time.perf_counter() - start:8.0f} s  read {read / 1e6:9.1f} MB of "
                  f"{size / 1e6:.0f} ({100 * read / size:5.1f} %)  RSS {status['VmRSS']:6.1f} MB"
                  f"  peak {status['VmHWM']:6.1f} MB", flush=True)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited with {proc.returncode}")
    return peak, time.perf_counter() - start


def _proc_status(pid):
    """VmRSS and VmHWM of a live process in MB ({} once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return {line.split(":")[0]: int(line.split()[1]) / 1024 for line in f
                    if line.startswith(("VmRSS", "VmHWM"))}
    except OSError:
        return {}


def _position(pid, path):
    """Where the process's descriptor of `path` stands (0 if none is open)."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.path.realpath(f"/proc/{pid}/fd/{fd}") == os.path.realpath(path):
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    return int(f.readline().split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(command, env=None):
    """(peak RSS in MB of `command` run to the end, output discarded; seconds).  env: the
    command's environment (None: this process's)."""
    wrapper = ("import resource, subprocess, sys, time; s = time.perf_counter(); "
               "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
               "time.perf_counter() - s)")
    out = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True,
                         text=True, check=True, env=env).stdout.split()
    return int(out[0]) / 1024, float(out[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,4,16", help="input sizes in MB")
    parser.add_argument("--memo-words", type=int, default=None)
    parser.add_argument("--format", default="text")
    parser.add_argument("--model", default=None, help="a model file (default: the bundled one)")
    parser.add_argument("--track", type=float, default=None, metavar="SECONDS",
                        help="print read position, RSS and peak every SECONDS while each "
                             "size runs (Linux /proc)")
    args = parser.parse_args()
    print(machine_line())
    peaks = []
    with tempfile.TemporaryDirectory() as folder:
        for mb in (float(s) for s in args.sizes.split(",")):
            path = os.path.join(folder, f"in{mb:g}.txt")
            size = generate(path, int(mb * 1e6))
            command = [sys.executable, "-m", "seqtag", "tag", "-i", path, "--format",
                       args.format] + ([f"--memo-words={args.memo_words}"]
                                       if args.memo_words is not None else []) + (
                          ["-m", args.model] if args.model else [])
            peak, seconds = (track_rss(command, path, args.track) if args.track
                             else peak_rss_mb(command))
            os.unlink(path)
            peaks.append(peak)
            print(f"{size / 1e6:8.1f} MB of text: peak RSS {peak:6.1f} MB, {seconds:6.1f} s "
                  f"({size / 1e6 / seconds:.2f} MB/s)")
    print("peak RSS MB: " + " ".join(f"{p:.1f}" for p in peaks))


if __name__ == "__main__":
    main()
