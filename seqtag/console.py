"""The `seqtag` console script (and `python -m seqtag`): seqtag.cli, with a way around it
for the one-shot `seqtag tag "TEXT" ...`.

Importing typer and building the command line (seqtag.cli: every command's options, from
seqtag.config) is about 100 ms of a one-shot `seqtag tag "The dog ate the apple"` on a
2-core machine where the whole command takes 0.5 s (bench/startup.py, BENCHMARKS.md).
When the arguments are `tag` followed only by text (none starting with "-": no option,
no "--"), there is nothing for a parser to do: the text is tagged here exactly as the
`tag` command tags text arguments with its default options (the same
seqtag.stream.tag_arguments call), with the same one-line errors and exit statuses.
Everything else, --help included, goes to seqtag.cli.

Before either, `seqtag tag` loads NumPy's BLAS with one thread (_load_blas_on_one_thread).
"""

import errno
import io
import os
import sys

from .errors import SeqtagError, debugging, error_line, interrupted_line


# What OpenBLAS reads, in this order, for the threads it starts when it loads.
_BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def main(argv=None):
    """The `seqtag` console script."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv is None:
        _stand_in_for_closed_streams()
    if argv is None and args[:1] == ["tag"] and not {"-h", "--help"} & set(args):
        _load_blas_on_one_thread()
    if len(args) >= 2 and args[0] == "tag" and not any(a.startswith("-") for a in args[1:]):
        status = _tag_text(args[1:])
        if argv is None:  # the process is this command's: no need to tear it down
            _exit_now(status)
        sys.exit(status)
    from .cli import main as full_command_line

    return full_command_line(args)


class _ClosedStream(io.TextIOBase):
    """What a standard stream the shell closed (`seqtag tag "Hi." >&-`) reads and writes:
    Python leaves it None, and the first use was an AttributeError's traceback.  Reading
    or writing it fails as a closed descriptor does (EBADF), which the commands report in
    one line like any other failed read or write; what never uses it is unaffected
    (--output-dir with stdout closed)."""

    def __init__(self, name):
        super().__init__()
        self.name = name  # "<stdout>": what the commands' messages call the stream

    def _fail(self, *args):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    read = readline = write = _fail


def _stand_in_for_closed_streams():
    for name in ("stdin", "stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, _ClosedStream(f"<{name}>"))


def _load_blas_on_one_thread():
    """Import NumPy with OpenBLAS told to start no thread of its own, then remove the
    variable that told it.

    OpenBLAS starts its threads as NumPy loads it, and they spin, waiting for work, for
    about 0.1 s of CPU.  `seqtag tag` never gives them any: seqtag runs BLAS on one thread
    while it computes (seqtag.runtime, "Threads"), and tagging computes nothing else.  On
    2 cores with the other one busy that spinning cost a one-shot `seqtag tag` 50 ms of
    its ~0.22 s (BENCHMARKS.md, 2026-12-04, session 21).  Only `tag`: training may reduce
    pretrained vectors to another width with NumPy's SVD (seqtag.embeddings), which does
    use BLAS's threads.  A thread count the user set stands; once the library has read
    the variable it is gone, so processes started from here (Dask's workers) inherit the
    environment as it was.  Only the console script's own process does this (main()
    without argv), not a host that imports seqtag or calls main(argv), and not for
    --help, which needs no NumPy."""
    if any(name in os.environ for name in _BLAS_THREAD_VARIABLES) or "numpy" in sys.modules:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        __import__("numpy")  # loads BLAS, which reads the variable now
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]


def _tag_text(texts):
    """`seqtag tag TEXT...` with the default options; the exit status."""
    from .stream import CommandOutput, tag_arguments

    try:
        tag_arguments(texts, CommandOutput(sys.stdout))
    except SeqtagError as e:  # as seqtag.cli reports it (its ConfigErrors come from flags)
        if debugging():
            import traceback  # not before it is needed: 5 ms of a one-shot `seqtag tag`

            traceback.print_exc()
        print(error_line(str(e)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted_line(), file=sys.stderr)
        return 130
    except BrokenPipeError:  # `seqtag tag ... | head`: click exits 1 without a word too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush at exit
        return 1
    return 0


def _exit_now(status):
    """End the process with `status` once its output is flushed, without the interpreter's
    teardown: freeing every module and object of NumPy and the loaded model took ~20 ms
    of a one-shot `seqtag tag` that needs none of it (BENCHMARKS.md, #12).  Nothing else
    runs at exit in this process (no atexit handler, no thread to wait for: seqtag's
    second thread is a daemon waiting for work).  If flushing fails, the usual exit
    reports it."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(status)
    os._exit(status)
