"""A progress bar for `seqtag tag` on large inputs: bytes (and files) done, tokens a second,
time left.  Drawn by rich (which typer ships), on stderr, and only when stderr is a
terminal, and only when the tagged output is not going to that terminal too: piped or
redirected output never gets control characters, and one-shot tagging never imports
rich.

The bar counts the bytes of the input read so far: each file is read through a line
iterator that counts them (seqtag.corpus reads binary lines from it as from the file
itself, so bad bytes are still reported with their line).  The total is the files' sizes;
standard input or anything else that is not a regular file has none, so the bar then
shows bytes read and the rate only.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Iterator, Sequence


def wanted(stream: Any = None, output: Any = None) -> bool:
    """Whether to draw a bar: `stream` (default stderr) is a terminal and `output`
    (default stdout) is not (tagged text scrolling by on the terminal shows the progress
    itself, and would break the bar's line)."""
    return _terminal(sys.stderr if stream is None else stream) and not _terminal(
        sys.stdout if output is None else output)


def _terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _CountedLines:
    """The binary lines of a file (a path, or standard input for "-"), counting each line's
    bytes into the bar as it is read.  .name is what seqtag.corpus names the source in
    messages."""

    def __init__(self, source: str, advance: Callable[[int], None]) -> None:
        self.source, self.advance = source, advance
        self.name = "<stdin>" if source == "-" else source

    def __iter__(self) -> Iterator[bytes]:
        if self.source == "-":
            stream = getattr(sys.stdin, "buffer", sys.stdin)
            for line in stream:
                self.advance(len(line))
                yield line
            return
        with open(self.source, "rb") as f:
            for line in f:
                self.advance(len(line))
                yield line


class TaggingProgress:
    """The bar of one `seqtag tag` run: wrap() its sources, run the tagging inside `with`,
    and hand tagged (sentences, tokens) counts to chunk_done after each chunk."""

    def __init__(self, sources: Sequence[Any], stream: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn)

        self.sources = list(sources)
        # only regular files have a size: a bar of known length needs all of them to
        self.total = None
        paths = [os.fspath(s) for s in self.sources if isinstance(s, (str, os.PathLike))]
        if len(paths) == len(self.sources) and all(p != "-" and os.path.isfile(p)
                                                   for p in paths):
            self.total = sum(os.path.getsize(p) for p in paths)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            console=Console(file=stream if stream is not None else sys.stderr),
            transient=True, redirect_stdout=False, redirect_stderr=False)
        self.task = None
        self.started = 0.0
        self.files_done = 0

    def __enter__(self) -> TaggingProgress:
        self.progress.start()
        self.started = time.perf_counter()
        self.task = self.progress.add_task(self._description(0), total=self.total, rate="")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def _description(self, k: int) -> str:
        return f"file {k + 1} of {len(self.sources)}" if len(self.sources) > 1 else "tagging"

    def wrap(self) -> list[Any]:
        """The sources, each path to a regular file (or "-") read through a byte counter;
        others (folders, missing files: their errors are seqtag.corpus's) as given."""
        wrapped: list[Any] = []
        for k, source in enumerate(self.sources):
            path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
            if path is not None and (path == "-" or os.path.isfile(path)):
                wrapped.append(_CountedLines(path, self._advance_for(k)))
            else:
                wrapped.append(source)
        return wrapped

    def _advance_for(self, k: int) -> Callable[[int], None]:
        def advance(n: int) -> None:
            if k != self.files_done:
                self.files_done = k
                self.progress.update(self.task, description=self._description(k))
            self.progress.advance(self.task, n)
        return advance

    def chunk_done(self, sentences: int, tokens: int) -> None:
        """After each chunk written: the tokens tagged so far (for the rate)."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, rate=f"{tokens / elapsed:,.0f} tokens/s")
