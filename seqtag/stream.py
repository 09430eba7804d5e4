"""Tag a stream of sentences chunk by chunk and write formatted output as it goes.

    >>> import sys
    >>> from seqtag import Tagger
    >>> from seqtag.stream import tag_stream, tag_files
    >>> tagger = Tagger.load()
    >>> tag_stream(tagger, [["The", "dog", "barked", "."]], sys.stdout)
    The/DET dog/NOUN barked/VERB ./PUNCT
    (1, 4)
    >>> tag_files(tagger, ["big.txt"], sys.stdout, output_format="json")   # doctest: +SKIP

Only one chunk of sentences is held in memory at a time, and the output is
flushed after each chunk, so inputs of any size can be piped through.

Output formats (seqtag.corpus.OUTPUT_FORMATS), and how ``top_k`` shows in each
(seqtag.corpus writes them all; the k best tags come from Tagger.predict_top_k):

- ``text``: one line of ``word/TAG`` per sentence (the syntactic words: a multiword
  token such as French ``du`` shows as ``de/ADP le/DET``). With top_k every token is
  ``word/TAG/P`` followed by ``|TAG/P`` for each next-best tag, most probable
  first, probabilities with 3 decimals: ``dog/NOUN/0.972|VERB/0.021``.
- ``tsv``: ``word<TAB>TAG`` lines, blank line after each sentence. With top_k
  each line is ``word<TAB>TAG<TAB>P``, then ``<TAB>TAG<TAB>P`` per next-best tag.
- ``conllu``: CoNLL-U with the tag column filled (the input's own lines when
  the input was CoNLL-U; for raw text ``# newpar``, ``# sent_id`` numbered from 1 in
  the output, ``# text``, ``SpaceAfter=No`` and multiword-token range lines).
  top_k is not available.
- ``json``: one JSON object per line, ``{"tokens": [{"word", "tag"[, "top"]}]}``
  with ``"top": [[tag, prob], ...]`` under top_k; for raw text
  ``{"text", "start", "end", "tokens": [{"text", "start", "end", "words": [{"word",
  "tag"[, "top"]}]}]}`` with character offsets in the input (seqtag.rawtext).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, TextIO, Union

from .corpus import (MODEL_COLUMNS, OUTPUT_FORMATS, TOPK_FORMATS, Sentence, Source, TagProb,
                     format_sentence, iter_sentences)
from . import spans
from .config import TaggingConfig
from .errors import SeqtagError

if TYPE_CHECKING:
    from .tagger import Tagger

__all__ = ["TOPK_FORMATS", "tag_stream", "tag_files", "argument_sources", "tag_arguments",
           "CommandOutput",
           "model_tag_column", "FileResult",
           "output_plan", "tag_file_to", "tag_into_folder", "remove_stale_temporaries"]

DEFAULT_BATCH_SIZE: int = TaggingConfig.batch_size  # the option's one definition


def model_tag_column(tagger: Tagger) -> str:
    """The CoNLL-U column of the model's tags (its first head's: "upos", "xpos", "feats"
    or "lemma"); "upos" if the model learned a numbered column of another format."""
    column = tagger.tag_column
    return column if column in MODEL_COLUMNS else "upos"


def check_tag_column(tagger: Tagger, tag_column: str | None, model: object) -> None:
    """SeqtagError where the gold tags are asked from a CoNLL-U column (tag_column "upos"
    or "xpos") that a model learned from CoNLL-U does not predict: its tags would be scored
    against another column's.  A model of another format's numbered column may be scored
    on either."""
    corpus = tagger.meta.get("corpus") or {}
    if (tag_column in ("upos", "xpos") and corpus.get("format") == "conllu"
            and tag_column not in tagger.columns):
        raise SeqtagError(f"{model} predicts {', '.join(c.upper() for c in tagger.columns)}, "
                          f"not {tag_column.upper()}")


def _check(output_format, top_k, batch_size, columns=None):
    if output_format not in OUTPUT_FORMATS:
        raise SeqtagError(f"unknown output format {output_format!r}; "
                          f"choose one of {', '.join(OUTPUT_FORMATS)}")
    options = TaggingConfig.options()
    top_k = options["top_k"].check(top_k)  # ConfigError: the option's own message
    batch_size = options["batch_size"].check(batch_size)
    if top_k and output_format not in TOPK_FORMATS:
        raise SeqtagError(f"tag probabilities (top-k) cannot be written as {output_format}; "
                          f"choose one of {', '.join(TOPK_FORMATS)}")
    shown = options["columns"].check(columns)
    if top_k and shown and "," in shown and output_format != "json":
        raise SeqtagError(f"the k best values of several columns cannot be written as "
                          f"{output_format}; choose json (or one column)")
    return shown.split(",") if shown else None


def check_options(tagger: Tagger, output_format: str = "text", top_k: int | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, span_scheme: str | None = None,
                  columns: str | Sequence[str] | None = None
                  ) -> tuple[list[str] | None, str | None]:
    """tag_stream's options checked against each other and the model (SeqtagError
    naming the option): (the columns text, tsv and json show, or every column of a
    conllu output; the span scheme, normalised).  A caller tagging many files asks once,
    before the first."""
    if columns is not None and not isinstance(columns, str):
        columns = ",".join(columns)
    shown = _check(output_format, top_k, batch_size, columns)
    if output_format == "conllu":
        shown = tagger.columns if len(tagger.columns) > 1 else None
    for name in shown or ():
        if name not in tagger.columns:
            raise SeqtagError(f"the model does not predict {name}; it predicts "
                              f"{', '.join(tagger.columns)}")
    if span_scheme is not None:
        span_scheme = TaggingConfig.options()["span_scheme"].check(span_scheme)
        if spans.tagset_scheme(tagger.tagset) is None:
            raise SeqtagError(f"--span-scheme {span_scheme}: this model's tags are not "
                              "span tags (O, B-X, I-X, ...)")
    return shown, span_scheme


def tag_stream(tagger: Tagger, sentences: Iterable[Union[Sentence, Sequence[str]]],
               out: TextIO, output_format: str = "text", top_k: int | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE,
               tag_column: str | None = None,
               on_chunk: Callable[[int, int], None] | None = None,
               span_scheme: str | None = None,
               columns: str | Sequence[str] | None = None) -> tuple[int, int]:
    """Tag ``sentences`` (Sentence objects or token lists) ``batch_size`` at a time,
    writing each chunk's output to the text stream ``out`` and flushing it; then
    ``on_chunk(sentences, tokens)`` gets the counts so far (a progress bar's).

    An empty sentence gives an empty line in text format (so output lines stay
    aligned with input lines), ``{"tokens":[]}`` in json, nothing in conllu.
    ``tag_column`` is the CoNLL-U column to fill with a model of one column; None: the one
    the model was trained on.  conllu fills every column the model predicts.
    ``span_scheme`` ("IOB2", "IOBES"): span tags written in that scheme (a model of span
    tags only); None: as the model gives them.
    ``columns`` ("upos,lemma" or a list): the columns text, tsv and json show (None: the
    model's tags); with top_k, the k best of each (several only in json).
    Returns (sentences, tokens) tagged.  If reading ``sentences`` raises SeqtagError (a bad
    line in a file), the sentences read before it are tagged and written first.
    """
    shown, span_scheme = check_options(tagger, output_format, top_k, batch_size, span_scheme,
                                       columns)
    column = tag_column or model_tag_column(tagger)
    crf = tagger.output_layer()["kind"] == "crf"
    n_sents = n_tokens = n_numbered = 0
    it = iter(sentences)
    while True:
        chunk, error = _read_chunk(it, batch_size)
        if not chunk and error is None:
            return n_sents, n_tokens
        words = [s.words for s in chunk]
        # CoNLL-U's sent_id counts the sentences it writes: an empty one (an empty line of
        # --input-format lines) writes nothing there
        ids = list(itertools.accumulate((1 if w else 0 for w in words), initial=n_numbered))
        n_numbered, ids = ids[-1], ids[1:]
        if shown:
            out.write(_columns_output(tagger, chunk, words, output_format, shown, top_k, ids))
        else:
            tops: Sequence[Sequence[Sequence[TagProb]] | None]
            if top_k and crf:  # its top-k are marginals; its tags the best sequence's
                values, by_column = tagger.predict_columns_top_k(words, top_k,
                                                                 [tagger.tag_column])
                tags, tops = values[tagger.tag_column], by_column[tagger.tag_column]
            elif top_k:
                tops = tagger.predict_top_k(words, top_k)
                tags = [[best[0][0] for best in top] for top in tops]
            else:
                tags, tops = tagger.predict(words), [None] * len(chunk)
            if span_scheme is not None:
                tags = [spans.to_scheme(t, span_scheme) for t in tags]
            out.write("".join(format_sentence(output_format, s, t, top, column, k)
                              for s, t, top, k in zip(chunk, tags, tops, ids)))
        out.flush()
        n_sents += len(chunk)
        n_tokens += sum(len(w) for w in words)
        if on_chunk is not None:
            on_chunk(n_sents, n_tokens)
        if error is not None:
            raise error


def _columns_output(tagger, chunk, words, output_format, shown, top_k, ids):
    """The output of a chunk showing the columns `shown` (conllu: the model's tags in
    their column, the others in theirs); ids: each sentence's sent_id."""
    if top_k:  # one pass of the network for the values and every column's k best
        values, tops = tagger.predict_columns_top_k(words, top_k, shown)
    else:
        values, tops = tagger.predict_columns(words, shown), {}
    first = tagger.tag_column if output_format == "conllu" else shown[0]
    texts = []
    for i, s in enumerate(chunk):
        tags = values[first][i]
        if output_format == "json":
            extra = {c: values[c][i] for c in shown}
            top = tops[first][i] if top_k else None
            extra_top = {c: tops[c][i] for c in shown[1:]} if top_k else None
        else:
            extra = {c: values[c][i] for c in shown if c != first}
            top, extra_top = (tops[first][i] if top_k else None), None
        texts.append(format_sentence(output_format, s, tags, top, first, ids[i],
                                     extra, extra_top))
    return "".join(texts)


def _read_chunk(it: Iterator[Union[Sentence, Sequence[str]]],
                batch_size: int) -> tuple[list[Sentence], SeqtagError | None]:
    """Up to batch_size sentences, and the SeqtagError that stopped reading early or None:
    a bad line must not lose the output of the good sentences before it."""
    chunk: list[Sentence] = []
    try:
        for s in itertools.islice(it, batch_size):
            chunk.append(s if isinstance(s, Sentence) else Sentence(list(s)))
    except SeqtagError as e:
        return chunk, e
    return chunk, None


def tag_files(tagger: Tagger, sources: Iterable[Source], out: TextIO,
              input_format: str | None = None, output_format: str = "text",
              top_k: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
              tag_column: str | None = None, encoding: str = "utf-8",
              on_chunk: Callable[[int, int], None] | None = None,
              span_scheme: str | None = None,
              columns: str | Sequence[str] | None = None) -> tuple[int, int]:
    """Tag each source in turn (a path, "-" for standard input, an open file or an
    iterable of lines) with tag_stream; ``input_format`` is "text" (raw text, cut into
    sentences, tokens and words by the tagger's front end), "lines" (raw text, a sentence
    per line), "tokens", "conllu" or None to detect it per source
    (seqtag.corpus.detect_format: what is not CoNLL-U or tokens is text).
    columns: as tag_stream takes them.  Returns (sentences, tokens) tagged; on_chunk as in
    tag_stream.
    """
    _check(output_format, top_k, batch_size, None if columns is None or isinstance(
        columns, str) else ",".join(columns))
    sentences = itertools.chain.from_iterable(
        iter_sentences(source, input_format, encoding=encoding, tagged=False,
                       front_end=tagger.frontend)
        for source in sources)
    return tag_stream(tagger, sentences, out, output_format, top_k, batch_size, tag_column,
                      on_chunk, span_scheme, columns)


def argument_sources(texts: Iterable[str]) -> list[io.StringIO]:
    """Raw text given as command-line arguments, as sources for tag_files: a paragraph
    each, named "argument K" (its offsets count from its own start); an empty one has
    nothing to tag and is left out (no error for it)."""
    sources = []
    for k, text in enumerate(texts, 1):
        try:  # the bytes of an argument that were not UTF-8 come as lone surrogates
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            char = ord(text[e.start])
            what = f"byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else \
                f"U+{char:04X}"
            raise SeqtagError(f"argument {k}: not valid UTF-8: {what} at character "
                              f"{e.start + 1}") from None
        if not text.strip():
            continue
        # offsets count from the argument's start, a leading byte-order mark included (as
        # Tagger.tag counts it); a file reader drops a first line's mark, so it goes in as a
        # space, which no token takes
        if text.startswith("\ufeff"):
            text = " " + text[1:]
        source = io.StringIO(text, newline="")
        source.name = f"argument {k}"
        sources.append(source)
    return sources


def tag_arguments(texts: Iterable[str], out: TextIO) -> tuple[int, int]:
    """What `seqtag tag TEXT...` does with its default options: the bundled model tags
    each text (raw text, a paragraph) into `out` as word/TAG lines.  seqtag.console runs
    it for that command line without importing seqtag.cli; returns (sentences, tokens)."""
    from .tagger import Tagger

    settings = TaggingConfig()
    tagger = Tagger.load(threads=settings.threads, memo_words=settings.memo_words)
    return tag_files(tagger, argument_sources(texts), out, "text", "text", settings.top_k,
                     settings.batch_size, span_scheme=settings.span_scheme,
                     columns=settings.columns)


class CommandOutput:
    """A command's standard output (the `seqtag tag` writer): a write or flush that fails
    (a full disk, an I/O error) becomes one SeqtagError line naming the reason, and what
    is still buffered then goes to os.devnull, so the interpreter's own flush at exit
    cannot fail again with a traceback.  A closed pipe stays BrokenPipeError: `seqtag tag
    ... | head` ends quietly."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise self._failed(e) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise self._failed(e) from None

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def _failed(self, error: OSError) -> SeqtagError:
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        name = getattr(self.stream, "name", "the output")
        return SeqtagError(f"cannot write {'the output' if name == '<stdout>' else name}: "
                           f"{error.strerror or error}")


# ---------------------------------------------------------------- many files into a folder


@dataclass
class FileResult:
    """What became of one input file tagged into an output folder: status "done" (written),
    "skipped" (its output existed: skip_existing) or "failed" (error: the reason, naming the
    file; no output written)."""

    source: str
    target: str
    status: str
    sentences: int = 0
    tokens: int = 0
    error: str | None = None


def output_plan(inputs: Iterable[str | os.PathLike[str]],
                output_dir: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """(input file, output file) pairs: each input is a file, a folder (its files, not
    those of its subfolders nor hidden ones, in name order) or a glob pattern; each output
    is output_dir/<the input's base name>.  SeqtagError if a pattern matches nothing or two
    inputs share a base name (their outputs would overwrite each other)."""
    import glob  # here: one-shot tagging does not need it
    files: list[str] = []
    for item in (os.fspath(i) for i in inputs):
        if os.path.isdir(item):
            # files, and links to nothing (reported by name when they are tagged)
            found = sorted(os.path.join(item, n) for n in os.listdir(item)
                           if not n.startswith(".") and (
                               os.path.isfile(os.path.join(item, n))
                               or not os.path.exists(os.path.join(item, n))))
            if not found:
                raise SeqtagError(f"{item}: no file to tag in this folder")
            files.extend(found)
        elif not os.path.exists(item) and glob.has_magic(item):
            found = sorted(f for f in glob.glob(item) if os.path.isfile(f))
            if not found:
                raise SeqtagError(f"{item}: no file matches this pattern")
            files.extend(found)
        else:
            files.append(item)  # a missing file is reported when it is tagged, by name
    plan: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for f in files:
        name = os.path.basename(f)
        if name in seen and os.path.abspath(seen[name]) != os.path.abspath(f):
            raise SeqtagError(f"{seen[name]} and {f} would both be written to "
                              f"{os.path.join(output_dir, name)}: give files with distinct "
                              "names")
        if name not in seen:
            seen[name] = f
            target = os.path.join(os.fspath(output_dir), name)
            if same_file(f, target):
                raise SeqtagError(f"{f}: its output {target} would replace it; choose "
                                  "another output folder")
            plan.append((f, target))
    return plan


def same_file(a: str, b: str) -> bool:
    """Whether paths a and b name one file (the same path, a link to it, a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def tag_file_to(tagger: Tagger, source: str, target: str, input_format: str | None = None,
                output_format: str = "text", top_k: int | None = None,
                batch_size: int = DEFAULT_BATCH_SIZE, tag_column: str | None = None,
                encoding: str = "utf-8", span_scheme: str | None = None,
                columns: str | Sequence[str] | None = None) -> FileResult:
    """Tag the file `source` into the file `target` (tag_files' options), written
    atomically: a temporary file in target's folder renamed over target once complete, so
    a failure or a killed process never leaves a partial target.  A file that cannot be
    read or tagged gives status "failed" and the reason instead of raising."""
    from .modelfile import atomic_output
    try:
        with atomic_output(target) as raw:
            out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            try:
                sentences, tokens = tag_files(tagger, [source], out, input_format,
                                              output_format, top_k, batch_size, tag_column,
                                              encoding, span_scheme=span_scheme,
                                              columns=columns)
            finally:
                out.detach()  # flushes; atomic_output syncs, closes and renames the file
    except SeqtagError as e:
        return FileResult(source, target, "failed", error=" ".join(str(e).split()))
    except OSError as e:  # the output folder: full, read-only, gone
        return FileResult(source, target, "failed",
                          error=f"{target}: cannot write: {e.strerror or e}")
    return FileResult(source, target, "done", sentences, tokens)


def tag_into_folder(tagger: Tagger, inputs: Iterable[str | os.PathLike[str]],
                    output_dir: str | os.PathLike[str], *, skip_existing: bool = False,
                    progress: Callable[[FileResult], None] | None = None,
                    **options: Any) -> list[FileResult]:
    """Tag files (paths, folders, glob patterns: output_plan) one by one in this process,
    each into output_dir/<its base name> (tag_file_to; options: its input_format,
    output_format, top_k, batch_size, tag_column, encoding, span_scheme, columns).
    skip_existing: leave the outputs already there as they are (every output is written
    atomically, so one that exists is complete).  progress(result) after each file.  A
    file that fails does not stop the others: its result says why; options that do not go
    together (or with the model) are one SeqtagError before any file.  The temporary files
    a killed run left beside the outputs are removed at the end.  seqtag.dask.tag_files
    spreads the same work over a Dask cluster."""
    check_options(tagger, options.get("output_format", "text"), options.get("top_k"),
                  options.get("batch_size", DEFAULT_BATCH_SIZE), options.get("span_scheme"),
                  options.get("columns"))
    plan = prepare_folder(inputs, output_dir)
    results = []
    try:
        for source, target in plan:
            if skip_existing and os.path.exists(target):
                result = FileResult(source, target, "skipped")
            else:
                result = tag_file_to(tagger, source, target, **options)
            results.append(result)
            if progress is not None:
                progress(result)
    finally:
        remove_stale_temporaries(target for _, target in plan)
    return results


def prepare_folder(inputs: Iterable[str | os.PathLike[str]],
                   output_dir: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """output_plan(), the output folder created if missing (SeqtagError if it cannot be)."""
    plan = output_plan(inputs, output_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        raise SeqtagError(f"{output_dir}: cannot create the output folder: "
                          f"{e.strerror or e}") from None
    return plan


def remove_stale_temporaries(targets: Iterable[str]) -> None:
    """Remove the temporary files a killed process left beside `targets` (tag_file_to's
    .NAME.*.tmp); call it only once no process writes those targets any more."""
    import glob
    for target in targets:
        folder, name = os.path.split(target)
        for tmp in glob.glob(os.path.join(glob.escape(folder or "."),
                                          "." + glob.escape(name) + ".*.tmp")):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
