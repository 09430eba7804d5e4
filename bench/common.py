"""Shared pieces of the benchmark scripts: data, the machine, the reference sgemm figure."""

import contextlib
import os
import platform
import time
from pathlib import Path

import numpy as np


def shared_dir():
    env = os.environ.get("SEQTAG_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def ewt_path(split):
    return shared_dir() / "data" / "ud-english-ewt" / f"en_ewt-ud-{split}.conllu"


def ewt_sentence_lengths(rng, count):
    """`count` sentence lengths drawn from EWT train (a log-normal fit where it is absent)."""
    path = ewt_path("train")
    if path.exists():
        lengths, n = [], 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip() == "":
                    if n:
                        lengths.append(n)
                    n = 0
                elif not line.startswith("#") and line.split("\t", 1)[0].isdigit():
                    n += 1
        if n:
            lengths.append(n)
        return rng.choice(np.array(lengths, dtype=np.int64), size=count)
    return np.clip(rng.lognormal(2.6, 0.6, size=count).astype(np.int64), 1, 150)


@contextlib.contextmanager
def blas_threads(threads):
    """Run the block with NumPy's BLAS on `threads` threads (a benchmark owns its process)."""
    from seqtag import runtime
    blas = runtime.blas()
    if blas is None or blas.set_threads is None:
        yield
        return
    previous = blas.get_threads()
    blas.set_threads(threads)
    try:
        yield
    finally:
        blas.set_threads(previous)


def sgemm_gflops(threads, size=2048, repeats=5):
    """NumPy float32 matrix product speed with `threads` BLAS threads (best of repeats)."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    out = np.empty_like(a)
    with blas_threads(threads):
        np.matmul(a, a, out=out)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            np.matmul(a, a, out=out)
            best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def machine_line():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from seqtag.runtime import compute_description
    return (f"{time.strftime('%Y-%m-%d')}  {cpu}, {os.cpu_count()} cores, "
            f"numpy {np.__version__}, OPENBLAS_CORETYPE="
            f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; seqtag: {compute_description()}")


def sequoia_path(split):
    return shared_dir() / "data" / "ud-french-sequoia" / f"fr_sequoia-ud-{split}.conllu"


def scorer_path():
    return shared_dir() / "tools" / "conll18_ud_eval.py"


def load_scorer():
    """The official CoNLL 2018 scorer, imported from its file in the shared folder (it is
    MPL-licensed third-party code: used by path, never copied into the project)."""
    import importlib.util
    path = scorer_path()
    if not path.exists():
        raise FileNotFoundError(f"the CoNLL 2018 scorer is not at {path}; set SEQTAG_SHARED")
    spec = importlib.util.spec_from_file_location("conll18_ud_eval", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conllu_sentences(conllu):
    """(comment lines, token lines) of each sentence of a CoNLL-U string."""
    sentences, comments, rows = [], [], []
    for line in conllu.splitlines():
        line = line.rstrip("\r")
        if line.strip() == "":
            if comments or rows:
                sentences.append((comments, rows))
            comments, rows = [], []
        elif line.startswith("#") and not rows:
            comments.append(line)
        else:
            rows.append(line)
    if comments or rows:
        sentences.append((comments, rows))
    return sentences


def _sentence_text(comments, rows):
    """The `# text` of a sentence, or its surface tokens joined as SpaceAfter says where a
    treebank leaves `# text` out."""
    for line in comments:
        key, _, value = line[1:].partition("=")
        if key.strip() == "text":
            return value.strip()
    pieces, skip_to = [], 0
    for row in rows:
        cols = row.split("\t")
        if "." in cols[0]:
            continue
        if "-" in cols[0]:
            skip_to = int(cols[0].split("-")[1])
        elif int(cols[0]) <= skip_to:
            continue
        pieces.append(cols[1] + ("" if "SpaceAfter=No" in cols[9].split("|") else " "))
    return "".join(pieces).strip()


def raw_text_paragraphs(conllu, group=5):
    """The paragraphs of a gold CoNLL-U string as raw text, the way issue 11 scores from raw
    text: a paragraph starts at `# newpar` or `# newdoc` (every `group` sentences where the
    treebank marks neither, as French-Sequoia does); its sentences' `# text` are joined by one
    space."""
    sentences = _conllu_sentences(conllu)
    marked = [any(c.startswith(("# newpar", "# newdoc")) for c in comments)
              for comments, _ in sentences]
    if not any(marked):
        marked = [i % group == 0 for i in range(len(sentences))]
    paragraphs = []
    for (comments, rows), starts in zip(sentences, marked):
        if starts or not paragraphs:
            paragraphs.append([])
        paragraphs[-1].append(_sentence_text(comments, rows))
    return [" ".join(p) for p in paragraphs]


def raw_text(conllu, group=5):
    """raw_text_paragraphs() as a file's content: one paragraph per line, a blank line
    between paragraphs."""
    return "".join(p + "\n\n" for p in raw_text_paragraphs(conllu, group)).rstrip("\n") + "\n"


def fill_dummy_tree(conllu):
    """`conllu` with a dummy tree (first word HEAD 0 / root, the others HEAD 1 / dep) in every
    sentence that has a word without an integer HEAD: the official scorer needs a tree, and
    the tagging scores do not depend on it.  Comments, multiword-token ranges and empty nodes
    are kept as they are; the result ends with a blank line, as the scorer requires."""
    out = []
    for comments, rows in _conllu_sentences(conllu):
        words = [r.split("\t") for r in rows]
        words = [c for c in words if c[0].isdigit()]
        needs_tree = any(len(c) < 8 or not c[6].isdigit() for c in words)
        out.extend(comments)
        for row in rows:
            cols = row.split("\t")
            if needs_tree and cols[0].isdigit() and len(cols) == 10:
                first = cols[0] == "1"
                cols[6], cols[7] = ("0", "root") if first else ("1", "dep")
            out.append("\t".join(cols))
        out.append("")
    return "\n".join(out) + "\n" if out else ""


def first_head_network(tagger):
    """The network of a model of several heads cut to its first head (its UPOS): the
    UPOS-only network of the same shape, configuration (c) of compare_torch.py."""
    from seqtag.network import Network
    size = tagger.vocab.heads[0].size
    net = Network(tagger.network.config, len(tagger.vocab.words), len(tagger.vocab.chars),
                  size, threads=tagger.network.rnn.threads, init=False)
    arrays = dict(tagger.network.arrays())
    arrays["output.weight"] = arrays["output.weight"][:size]
    arrays["output.bias"] = arrays["output.bias"][:size]
    net.load_arrays(arrays)
    net.freeze()
    return net


def report_rounds(variants, tokens, rounds, reference, shuffle=None):
    """Time each of variants {name: function tagging `tokens` tokens}: one warm-up run each
    (it fills the memos), then one run per round (in shuffle's order of the names where
    given, else as listed); print each one's median tokens/s, its share of the reference
    variant's and the minor page faults a run; then, the same share round by round (the
    reference's time over the variant's in one round, which a slow spell of a shared machine
    hits alike) as the median of the rounds and its interquartile range.  Page faults are
    memory the C library maps anew for a run's arrays: it gives what a batch freed back to
    the system in some states of a process, not in others."""
    import resource
    import statistics
    for run in variants.values():
        run()
    times = {name: [] for name in variants}
    faults = dict.fromkeys(variants, 0)
    order = list(variants)
    for _ in range(rounds):
        if shuffle is not None:
            shuffle(order)
        for name in order:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
            faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    base = tokens / statistics.median(times[reference])
    width = max(map(len, variants))
    for name, seconds in times.items():
        rate = tokens / statistics.median(seconds)
        paired = [r / s for r, s in zip(times[reference], seconds)]
        quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else paired * 3
        print(f"{name:<{width}} {rate:>10,.0f} tokens/s  {rate / base:6.3f} of (c)  "
              f"{faults[name] / max(rounds, 1):>8,.0f} page faults a pass  "
              f"round by round {statistics.median(paired):.3f} "
              f"({quartiles[0]:.3f}-{quartiles[2]:.3f})")


def paired_settings(variants, labels, apply, rounds, title):
    """Time each of variants {name: function} under two settings (labels; apply(label)
    puts one in place) alternately, the order flipped every round, after one warm-up run
    each; then print per variant both medians, the ratio of the medians and the median of
    the rounds' ratios (labels[0] over labels[1]; below 1: the first is faster).  A slow
    spell of a shared machine hits both settings of a round alike."""
    import statistics
    times = {(name, label): [] for name in variants for label in labels}
    for run in variants.values():  # warm-up: memo, packed weights, workspaces
        run()
    for r in range(rounds):
        for name, run in variants.items():
            for label in (labels if r % 2 else labels[::-1]):
                apply(label)
                start = time.perf_counter()
                run()
                times[name, label].append(time.perf_counter() - start)
    print(f"{title}; median of {rounds} rounds, alternating")
    for name in variants:
        a, b = (times[name, label] for label in labels)
        paired = statistics.median(x / y for x, y in zip(a, b))
        ratio = statistics.median(a) / statistics.median(b)
        print(f"{name:40s} {labels[0]} {1e3 * statistics.median(a):7.1f} ms   {labels[1]} "
              f"{1e3 * statistics.median(b):7.1f} ms   ratio {ratio:.3f} (round by round "
              f"{paired:.3f})")
