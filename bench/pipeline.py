"""How much of the models' own speed the command line keeps, on the same raw text.

    python bench/pipeline.py [--threads 2] [--rounds 3] [--model MODEL] [--formats text,tsv,...]

The text: EWT train's `# text` lines made into paragraphs (bench/common.raw_text, as
bench/raw_text.py scores raw text), written to a temporary file.  Two figures, measured in
one run, alternating round by round (the median round is kept, so drift of a shared
machine hits both alike):

  core      tokens/s of the models' own passes in-process: the model's front end
            (Tagger.frontend.segment_many, about 100,000 characters of paragraphs at a
            time, as the command reads them) and the tagger (Tagger.predict, the command's
            batch of sentences at a time); the text is already in memory, the output is
            discarded, the memo starts empty (a freshly loaded tagger each round)
  pipeline  tokens/s of the whole command `seqtag tag -i FILE --format F > OUT` from
            process start to exit: Python's start, imports, loading the model, reading,
            the front end, tagging, formatting and writing the output file

Tokens are the tagged words the core pass found (the same text, so the same work).  The
pipeline is timed for every output format asked; the last line is
`ratio pipeline/core=Z` for the default output format (text).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ewt_path, machine_line, raw_text  # noqa: E402


def core_pass(model, threads, text, batch_size):
    """(seconds, words) of front end + tagger over `text` with a freshly loaded tagger."""
    from seqtag.rawtext import segment, text_paragraphs
    from seqtag.tagger import Tagger
    tagger = Tagger.load(model, threads=threads)
    start = time.perf_counter()
    words, pending = 0, []
    for _, sentences in segment(text_paragraphs(text), tagger.frontend):
        pending.extend(s.words for s in sentences)
        while len(pending) >= batch_size:
            chunk, pending = pending[:batch_size], pending[batch_size:]
            tagger.predict(chunk)
            words += sum(map(len, chunk))
    if pending:
        tagger.predict(pending)
        words += sum(map(len, pending))
    return time.perf_counter() - start, words


def pipeline_pass(model, threads, path, output_format, out_path):
    """Seconds of the whole `seqtag tag` process writing `out_path`."""
    command = [sys.executable, "-m", "seqtag", "tag", "-i", path, "--threads", str(threads),
               "--format", output_format] + (["-m", model] if model else [])
    start = time.perf_counter()
    with open(out_path, "w") as out:
        subprocess.run(command, stdout=out, check=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default=None, help="model file (default: the bundled one)")
    parser.add_argument("--formats", default="text,tsv,conllu,json",
                        help="output formats of the pipeline; the first one gives the ratio")
    args = parser.parse_args()
    from seqtag.config import TaggingConfig
    from seqtag.tagger import Tagger
    formats = args.formats.split(",")
    batch_size = TaggingConfig.batch_size
    text = raw_text(open(ewt_path("train"), encoding="utf-8").read())
    tagger = Tagger.load(args.model)
    print(machine_line())
    print(f"model: {tagger.meta['path']} (front end: {tagger.frontend.kind}); text: EWT train "
          f"as paragraphs, {len(text):,} characters; {args.threads} threads, batches of "
          f"{batch_size} sentences, median of {args.rounds} rounds")
    del tagger
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "train.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        core_s, pipe_s, words = [], {f: [] for f in formats}, 0
        for _ in range(args.rounds):
            seconds, words = core_pass(args.model, args.threads, text, batch_size)
            core_s.append(seconds)
            for fmt in formats:
                pipe_s[fmt].append(pipeline_pass(args.model, args.threads, path, fmt,
                                                 os.path.join(folder, "out")))
        core = words / statistics.median(core_s)
        print(f"core (front end + tagger, in-process, fresh memo): {words:,} tokens in "
              f"{statistics.median(core_s):.2f} s = {core:,.0f} tokens/s")
        for fmt in formats:
            seconds = statistics.median(pipe_s[fmt])
            print(f"pipeline seqtag tag -i FILE --format {fmt:6} > OUT: {seconds:.2f} s = "
                  f"{words / seconds:,.0f} tokens/s, ratio to core {words / seconds / core:.2f}")
        print(f"ratio pipeline/core={words / statistics.median(pipe_s[formats[0]]) / core:.2f}")


if __name__ == "__main__":
    main()
