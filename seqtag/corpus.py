"""Read tagged and untagged corpora, and format tagged output (tags, and the k best tags
with their probabilities, in every output format).

Input formats (the names ``--format`` takes):

- ``conllu``: Universal Dependencies CoNLL-U. Words and tags come from the
  integer-ID token lines only; multiword ranges (``1-2``) and empty nodes
  (``3.1``) are kept in ``Sentence.conllu`` so output can reproduce them.
- ``tsv``: ``word<TAB>tag`` (or ``word tag``) per line, blank line between sentences.
- ``slash``: one sentence per line of ``word/TAG`` tokens; the tag follows the
  LAST slash, so ``1/2/NUM`` is the word ``1/2`` tagged ``NUM``.
- ``conll``: CoNLL-2003-style columns (split on tabs if the line has one, else on spaces),
  the word first and a span tag (O, B-X, I-X, E-X, S-X) last, blank line between
  sentences; ``-DOCSTART-`` lines end a sentence and are skipped.
- ``iob2``: Universal NER's files: ``#`` comments, then tab-separated token id, token,
  span tag and further columns, blank line between sentences.
- ``columns``: any column file: the word and tag columns are given (1-based:
  ``word_column``, ``tag_column``), split on tabs if the line has one, else on spaces;
  blank line between sentences; ``-DOCSTART-`` lines and ``#`` lines before a sentence
  are skipped.

Span tags (conll, iob2) are checked (O or B-/I-/E-/S- and a type) and IOB1 sentences
(spans opened by I-) are rewritten in IOB2 (seqtag.spans.iob1_to_iob2): same spans.
- ``text`` (untagged): raw text. Paragraphs may span lines; a blank line ends a
  paragraph (and a sentence). The front end given to iter_sentences (a model's
  Tagger.frontend; the rules by default) finds sentences, tokens and multiword tokens;
  each Sentence keeps them with their offsets in the input in ``Sentence.raw``
  (seqtag.rawtext says how offsets are counted).
- ``lines`` (untagged): raw text, one sentence per line (for text already split into
  sentences): each line is tokenized by the front end, never split; an empty line gives
  an empty sentence so output lines stay aligned with input lines.
- ``tokens`` (untagged): one token per line, blank line between sentences.

Files are read as bytes and decoded line by line, so a bad byte is reported
with its line number. Every problem a user can fix raises CorpusError.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import IO, Iterable, Iterator, Mapping, Sequence, Union

from . import rawtext, spans
from .errors import CorpusError
from .frontend import FrontEnd, RawSentence

__all__ = [
    "Sentence",
    "detect_format",
    "read_corpus",
    "iter_sentences",
    "format_text",
    "format_tsv",
    "format_conllu",
    "format_json",
    "format_raw_json",
    "format_sentence",
    "Source",
    "TagProb",
    "INPUT_FORMATS",
    "TAGGED_FORMATS",
    "UNTAGGED_FORMATS",
    "OUTPUT_FORMATS",
    "TOPK_FORMATS",
    "TAG_COLUMNS",
    "column_number",
]

TAGGED_FORMATS = ("conllu", "tsv", "slash", "iob2", "conll", "columns")
UNTAGGED_FORMATS = ("conllu", "text", "lines", "tokens")
INPUT_FORMATS = ("conllu", "tsv", "slash", "iob2", "conll", "columns", "text", "lines",
                 "tokens")
#: The input formats of raw text, which a front end cuts into sentences and tokens.
RAW_FORMATS = ("text", "lines")
OUTPUT_FORMATS = ("text", "tsv", "conllu", "json")
#: The output formats that can show the k best tags of a token with their probabilities.
TOPK_FORMATS = ("text", "tsv", "json")
# CoNLL-U column 4 (UPOS) or 5 (XPOS), as 0-based field indexes.
TAG_COLUMNS = {"upos": 3, "xpos": 4}
#: The CoNLL-U columns a model can fill, as 0-based field indexes (seqtag.heads.COLUMNS).
MODEL_COLUMNS = {"upos": 3, "xpos": 4, "feats": 5, "lemma": 2}

_SAMPLE_SIZE = 50  # content lines looked at to detect a format
_PEEK_LIMIT = 1000  # lines buffered at most while detecting, blank ones included
_INT_ID = re.compile(r"[0-9]+")
_ANY_ID = re.compile(r"[0-9]+(?:-[0-9]+|\.[0-9]+)?")

#: Where sentences are read from: a path, "-" for standard input, an open file (text or
#: binary) or any iterable of lines.
Source = Union[str, os.PathLike[str], IO[str], IO[bytes], Iterable[str], Iterable[bytes]]
#: One of the k best tags of a token, with its probability (Tagger.predict_top_k).
TagProb = tuple[str, float]


@dataclass(slots=True)
class Sentence:
    """One sentence: its words, gold tags (None if the input had none), and where it starts.

    ``conllu`` holds the raw CoNLL-U lines (comments, ranges, empty nodes and
    tokens) for CoNLL-U input, else None; ``columns`` then holds the values of its
    LEMMA, UPOS, XPOS and FEATS columns, {"upos": [...], ...}, one per word ("_" where
    the file has none).  ``raw`` holds, for raw-text input, the
    sentence as the front end found it: its text, its surface tokens with their offsets
    in the input and their words (``words`` are those words); ``new_paragraph`` says
    whether it opens a paragraph.
    """

    words: list[str]
    tags: list[str] | None = None
    line: int = 0
    conllu: list[str] | None = None
    raw: RawSentence | None = None
    new_paragraph: bool = False
    columns: dict[str, list[str]] | None = None

    def __len__(self) -> int:
        return len(self.words)


# ---------------------------------------------------------------- reading


def read_corpus(path: Source, format: str | None = None, tag_column: str | int = "upos",
                encoding: str = "utf-8", word_column: int | None = None,
                require_tags: bool = True) -> list[Sentence]:
    """Read a whole training or evaluation corpus; every token must carry a tag.

    ``format`` is one of TAGGED_FORMATS, or None to detect it (see detect_format).
    ``tag_column``: the CoNLL-U column ('upos' or 'xpos'), or the 1-based column of a
    ``columns`` file (a number, or its digits), with ``word_column`` (default 1).
    require_tags=False lets CoNLL-U tokens lack the tag ('_'; Sentence.tags is then None):
    a corpus read for its columns (Sentence.columns), any of which may be empty.
    """
    return list(iter_sentences(path, format, tag_column, encoding, tagged=True,
                               word_column=word_column, require_tags=require_tags))


def iter_sentences(path_or_file: Source, format: str | None = None,
                   tag_column: str | int = "upos", encoding: str = "utf-8",
                   tagged: bool = True, front_end: FrontEnd | None = None,
                   word_column: int | None = None,
                   require_tags: bool = True) -> Iterator[Sentence]:
    """Yield Sentences one by one without reading the whole input into memory.

    ``path_or_file`` is a path, ``"-"`` for standard input (named ``<stdin>``
    in messages), an open file (text or binary) or any iterable of lines.
    With ``tagged=True`` every token needs a tag and only conllu, tsv and
    slash are accepted; with ``tagged=False`` tags are kept when present
    (``Sentence.tags`` is None otherwise). ``format=None`` detects the format
    from the first lines (see detect_format). Raw text (``text``, ``lines``) is cut by
    ``front_end`` (default: the rules, seqtag.segment.RuleFrontEnd).

    A numeric ``tag_column`` (with ``word_column``, default 1) reads the ``columns``
    format, whatever ``format`` is None; ``columns`` needs one.

    Bad bytes are reported with their exact line for paths, "-" and binary
    streams; a text stream decodes ahead in chunks, so there the line is
    where reading stopped.
    """
    column: int | tuple[int, int]
    numbered = column_number(tag_column)
    if numbered is not None or word_column is not None or format == "columns":
        if format not in (None, "columns"):
            raise CorpusError(f"--word-column and a numbered --tag-column read the columns "
                              f"format, not {format!r}")
        if numbered is None:
            raise CorpusError("the columns format needs the tag column's number "
                              "(--tag-column N)")
        word = 1 if word_column is None else word_column
        if isinstance(word, bool) or not isinstance(word, int) or word < 1:
            raise CorpusError(f"the word column must be a number >= 1, got {word!r}")
        if word == numbered:
            raise CorpusError(f"the word and the tag cannot both be column {word}")
        format, column = "columns", (word - 1, numbered - 1)
    else:
        column = _tag_index(tag_column)
    name = _source_name(path_or_file)
    if format is not None:
        _check_format(format, tagged, name)
    with _opened(path_or_file, name) as stream:
        lines = _numbered_lines(stream, name, encoding)
        note = ""
        if format is None:
            # a bad line among those read to detect the format comes after the sentences
            # before it, as it does once the format is known
            guarded = _UntilError(lines)
            try:
                peeked, format = _detect(guarded, name, tagged)
            except CorpusError:  # nothing to detect from before the bad line: it is the error
                if guarded.error is not None:
                    raise guarded.error from None
                raise
            lines = itertools.chain(peeked, guarded.rest(lines))
            # A line that does not fit is most often a mix of formats; say what we assumed.
            note = f" (format detected as {format}; use --format to choose another)"

        def bad(lineno, message):
            return CorpusError(message + note, name, lineno)

        count = 0
        if format in RAW_FORMATS:
            sentences = _read_raw(lines, front_end, format == "lines")
        else:
            sentences = _READERS[format](lines, bad, column, tagged and require_tags)
        for sentence in sentences:
            count += 1
            yield sentence
    if count == 0:
        raise CorpusError("no sentences found", name)


class _UntilError:
    """The lines of _numbered_lines up to the first CorpusError (a line that cannot be
    decoded), which is kept: rest() raises it where it was, after the lines before it."""

    def __init__(self, lines):
        self._lines = lines
        self.error: CorpusError | None = None

    def __iter__(self):
        return self

    def __next__(self):
        if self.error is not None:
            raise StopIteration
        try:
            return next(self._lines)
        except CorpusError as e:
            self.error = e
            raise StopIteration from None

    def rest(self, lines):
        """The lines after those taken: the error, if reading stopped at one, else the
        remaining lines."""
        if self.error is not None:
            raise self.error
        yield from lines


def column_number(tag_column: str | int) -> int | None:
    """The 1-based column a numbered tag column names (3, "3"), or None for 'upos' and
    'xpos'; CorpusError for anything else."""
    if isinstance(tag_column, int) and not isinstance(tag_column, bool):
        number = tag_column
    elif isinstance(tag_column, str) and tag_column.isdigit():
        number = int(tag_column)
    elif tag_column in TAG_COLUMNS:
        return None
    else:
        raise CorpusError(f"tag column must be 'upos', 'xpos' or a column number, "
                          f"not {tag_column!r}")
    if number < 1:
        raise CorpusError(f"the tag column must be a number >= 1, got {number}")
    return number


def detect_format(path_or_lines: Source, tagged: bool = True, encoding: str = "utf-8") -> str:
    """Guess the format of a path, open file or iterable of lines.

    Only the first 50 lines that are neither blank nor start with '#' are
    looked at (beyond 1,000 lines read nothing more is looked at). Rules,
    applied in this order:

    - A line fits conllu if it has 10 tab-separated columns and an ID of the
      form 1, 1-2 or 1.1; tsv if it has exactly 2 non-empty columns (split on
      tabs if it has one, else on spaces); slash if every space-separated
      token has text on both sides of its last '/'; iob2 if it has 3 to 9
      tab-separated columns, an integer first and a span tag (O, B-X, ...) third;
      conll if it starts with -DOCSTART- or has 3 or more columns and a span tag
      last.  columns is never detected (its columns must be named).
    - tagged=True: the format that fits the most sampled lines wins; ties go
      to conllu, then tsv, then slash, then iob2, then conll, except that a tsv/slash
      tie (lines of two ``word/TAG`` tokens) goes to slash when no sampled line has a tab.
      If no line fits anything, CorpusError names the first sampled line.
    - tagged=False: conllu if more than half of the sampled lines fit it;
      else tokens if every sampled line holds a single token, a blank line
      follows one of them and two of them come in a row (a sentence of two tokens:
      one word a paragraph is text); else text. A file with only blank or '#' lines is text.

    Lines that do not fit the chosen format are reported when read.
    A file with no sampled line raises CorpusError "no sentences found".
    Detecting "-" consumes standard input; use iter_sentences(format=None) there.
    """
    name = _source_name(path_or_lines)
    with _opened(path_or_lines, name) as stream:
        return _detect(_numbered_lines(stream, name, encoding), name, tagged)[1]


def _detect(lines, name, tagged):
    """Read ahead enough to choose a format; return (lines read, format)."""
    peeked, sample, blank_after_content = [], [], False
    # two content lines in a row: a sentence of two tokens or more, if one token a line
    run, two_in_a_row = 0, False
    for lineno, text, ending in lines:
        peeked.append((lineno, text, ending))
        if not text.strip():
            blank_after_content = blank_after_content or bool(sample)
            run = 0
        elif not text.startswith("#"):
            sample.append((lineno, text))
            run += 1
            two_in_a_row = two_in_a_row or run >= 2
        if len(sample) == _SAMPLE_SIZE or len(peeked) == _PEEK_LIMIT:
            break
    texts = [text for _, text in sample]

    if not tagged:
        if not texts and peeked:
            return peeked, "text"
        if not texts:
            raise CorpusError("no sentences found", name)
        if 2 * sum(map(_fits_conllu, texts)) > len(texts):
            return peeked, "conllu"
        # one token a line with blank lines between sentences; where no sentence has two
        # tokens, paragraphs of one word each ("Thanks!", blank, "Bye.") are likelier
        if blank_after_content and two_in_a_row and all(len(t.split()) == 1 for t in texts):
            return peeked, "tokens"
        return peeked, "text"

    if not texts:
        raise CorpusError("no sentences found", name)
    fits = {
        "conllu": sum(map(_fits_conllu, texts)),
        "tsv": sum(map(_fits_tsv, texts)),
        "slash": sum(map(_fits_slash, texts)),
        "iob2": sum(map(_fits_iob2, texts)),
        "conll": sum(map(_fits_conll, texts)),
        "columns": 0,
    }
    best = max(fits.values())
    if best == 0:
        raise CorpusError(
            "cannot tell the format of this file from this line; use --format conllu, tsv, "
            "slash, iob2, conll or columns",
            name,
            sample[0][0],
        )
    if fits["tsv"] == fits["slash"] == best and not any("\t" in t for t in texts):
        return peeked, "slash"
    return peeked, next(f for f in TAGGED_FORMATS if fits[f] == best)


def _fits_conllu(text):
    fields = text.split("\t")
    return len(fields) == 10 and _ANY_ID.fullmatch(fields[0]) is not None


def _fits_tsv(text):
    fields = _tsv_fields(text)
    return len(fields) == 2 and all(fields)


def _fits_slash(text):
    return all(_slash_split(token)[2] is None for token in text.split())


def _fits_iob2(text):
    fields = text.split("\t")
    return (3 <= len(fields) < 10 and _INT_ID.fullmatch(fields[0]) is not None
            and spans.tag_problem(fields[2]) is None)


def _fits_conll(text):
    if text.startswith("-DOCSTART-"):
        return True
    fields = _tsv_fields(text)
    return len(fields) >= 3 and spans.tag_problem(fields[-1]) is None


# ---------------------------------------------------------------- sources


def _source_name(source):
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return "<stdin>" if path == "-" else str(path)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


@contextlib.contextmanager
def _opened(source, name):
    """Yield something to iterate lines from; open (and later close) paths ourselves."""
    if not isinstance(source, (str, os.PathLike)):
        yield source
        return
    if name == "<stdin>":
        # The binary buffer lets us decode, and report bad bytes, line by line.
        yield getattr(sys.stdin, "buffer", sys.stdin)
        return
    if os.path.isdir(source):
        raise CorpusError("is a directory, not a file", name)
    try:
        stream = open(source, "rb")
    except FileNotFoundError:
        raise CorpusError("no such file", name) from None
    except OSError as e:
        raise CorpusError(f"cannot open: {e.strerror or e}", name) from None
    with stream:
        yield stream


def _numbered_lines(stream, name, encoding):
    """Yield (1-based line number, text, its line end) without a leading byte-order mark."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}", name) from None
    if codec.startswith(("utf-16", "utf-32")):
        # Bytes are split at b"\n" before decoding, which these encodings break.
        raise CorpusError(f"encoding {encoding!r} is not supported; convert the file to UTF-8", name)
    lines = iter(stream)
    lineno = 0
    while True:
        try:
            raw = next(lines)
        except StopIteration:
            return
        except UnicodeDecodeError as e:  # a text stream decoding on its own
            raise CorpusError(_bad_bytes(e), name, lineno + 1) from None
        except OSError as e:  # the input's, not the output's (an I/O error, a lost mount)
            raise CorpusError(f"cannot read: {e.strerror or e}", name, lineno + 1) from None
        lineno += 1
        if isinstance(raw, bytes):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as e:
                raise CorpusError(_bad_bytes(e, in_line=True), name, lineno) from None
        else:
            text = raw
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        # the line's own end: one \r\n, \n or \r (text[:-2] of "a\r\r\n" keeps a lone \r)
        ending = "\r\n" if text.endswith("\r\n") else text[-1:] if text[-1:] in ("\n", "\r") \
            else ""
        body = text[:len(text) - len(ending)]
        if "\r" in body:  # a lone \r ends a line too (old Mac files), as Python's
            *ended, body = body.split("\r")  # universal newlines and rawtext read it
            for piece in ended:
                yield lineno, piece, "\r"
                lineno += 1
        yield lineno, body, ending


def _bad_bytes(e, in_line=False):
    where = f" at byte {e.start + 1} of the line" if in_line else ""
    return (
        f"not valid {e.encoding}: byte 0x{e.object[e.start]:02x}{where}; "
        "use --encoding if the file is in another encoding"
    )


def _tag_index(tag_column):
    if tag_column not in TAG_COLUMNS:
        raise CorpusError(f"tag column must be 'upos' or 'xpos' here, not {tag_column!r}")
    return TAG_COLUMNS[tag_column]


def _check_format(format, tagged, name):
    if format not in INPUT_FORMATS:
        raise CorpusError(f"unknown format {format!r}; choose one of {', '.join(INPUT_FORMATS)}")
    if tagged and format not in TAGGED_FORMATS:
        raise CorpusError(
            f"format {format!r} carries no tags; a tagged corpus must be one of "
            f"{', '.join(TAGGED_FORMATS)}", name
        )


def _short(token):
    """A token for an error message: quoted, and cut if very long."""
    return repr(token if len(token) <= 40 else token[:37] + "...")


# ---------------------------------------------------------------- readers
# Each reader takes (numbered lines, bad, tag column index, tagged) and yields
# Sentences; bad(lineno, message) builds the CorpusError to raise.


def _read_conllu(lines, bad, column, tagged):
    block, words, tags, start, untagged = [], [], [], 0, False
    columns = {name: [] for name in MODEL_COLUMNS}
    for lineno, text, _ in lines:
        if not text.strip():
            if words:
                yield Sentence(words, None if untagged else tags, start, block,
                               columns=columns)
            block, words, tags, untagged = [], [], [], False
            columns = {name: [] for name in MODEL_COLUMNS}
            continue
        if not block:
            start = lineno
        block.append(text)
        if text.startswith("#"):
            continue
        fields = text.split("\t")
        if len(fields) != 10:
            raise bad(lineno, f"expected 10 tab-separated columns, found {len(fields)}")
        if _INT_ID.fullmatch(fields[0]):
            if not fields[1]:  # a word of no characters: no token to tag or learn
                raise bad(lineno, "empty FORM (column 2)")
            for index in MODEL_COLUMNS.values():
                if not fields[index]:  # no value, as '_' (else learned as a value of its own)
                    fields[index] = "_"
            tag = fields[column]
            if tag == "_":
                if tagged:
                    label = "UPOS" if column == TAG_COLUMNS["upos"] else "XPOS"
                    raise bad(lineno, f"token has no {label} tag ('_' in column {column + 1})")
                untagged = True
            words.append(fields[1])
            tags.append(tag)
            for name, index in MODEL_COLUMNS.items():
                columns[name].append(fields[index])
        elif not _ANY_ID.fullmatch(fields[0]):
            raise bad(
                lineno,
                f"bad token ID {_short(fields[0])}: "
                "expected an integer, a range like 1-2 or a decimal like 1.1",
            )
    # Blocks of only comments or empty nodes have nothing to tag, so they are skipped.
    if words:
        yield Sentence(words, None if untagged else tags, start, block, columns=columns)


def _tsv_fields(text):
    # A tab, when present, is the separator, so words may contain spaces.
    parts = text.split("\t") if "\t" in text else text.split()
    return [part.strip() for part in parts]


def _read_tsv(lines, bad, column, tagged):
    words, tags, start = [], [], 0
    for lineno, text, _ in lines:
        if not text.strip():
            if words:
                yield Sentence(words, tags, start)
            words, tags = [], []
            continue
        fields = _tsv_fields(text)
        if len(fields) != 2:
            raise bad(lineno, f"expected 2 columns (word and tag), found {len(fields)}")
        word, tag = fields
        if not word:
            raise bad(lineno, "missing word before the tag")
        if not tag:
            raise bad(lineno, "missing tag after the word")
        if not words:
            start = lineno
        words.append(word)
        tags.append(tag)
    if words:
        yield Sentence(words, tags, start)


def _slash_split(token):
    """Return (word, tag, None), or (None, None, problem)."""
    word, slash, tag = token.rpartition("/")
    if not slash:
        return None, None, f"token {_short(token)} has no '/TAG'"
    if not word:
        return None, None, f"token {_short(token)} has an empty word before its last '/'"
    if not tag:
        return None, None, f"token {_short(token)} has an empty tag after its last '/'"
    return word, tag, None


def _read_slash(lines, bad, column, tagged):
    for lineno, text, _ in lines:
        words, tags = [], []
        for token in text.split():
            word, tag, problem = _slash_split(token)
            if problem:
                raise bad(lineno, problem)
            words.append(word)
            tags.append(tag)
        if words:
            yield Sentence(words, tags, lineno)


def _span_sentence(words, tags, start, tag_lines, bad):
    """A Sentence of a span corpus: every tag checked, IOB1 rewritten as IOB2."""
    for tag, lineno in zip(tags, tag_lines):
        problem = spans.tag_problem(tag)
        if problem:
            raise bad(lineno, problem)
    return Sentence(words, spans.iob1_to_iob2(tags), start)


def _read_fields(lines, bad, fields_of, min_fields, what, comments_first=False):
    """The column readers' loop: fields_of(text) splits a line, min_fields is how many a
    token line needs; yields (first line, [(line, fields) of each token]) per sentence.
    A '#' line before a sentence's first token is a comment if it has too few fields, or
    with comments_first always; '-DOCSTART-' lines end a sentence."""
    rows, start = [], 0
    for lineno, text, _ in lines:
        if not text.strip() or text.startswith("-DOCSTART-"):
            if rows:
                yield start, rows
            rows = []
            continue
        if text.startswith("#") and comments_first and not rows:
            continue
        fields = fields_of(text)
        if len(fields) < min_fields:
            if text.startswith("#") and not rows:
                continue
            raise bad(lineno, f"expected at least {min_fields} columns ({what}), "
                              f"found {len(fields)}")
        if not rows:
            start = lineno
        rows.append((lineno, fields))
    if rows:
        yield start, rows


def _read_conll(lines, bad, column, tagged):
    for start, rows in _read_fields(lines, bad, _tsv_fields, 2, "word first, tag last"):
        yield _span_sentence([f[0] for _, f in rows], [f[-1] for _, f in rows], start,
                             [n for n, _ in rows], bad)


def _read_iob2(lines, bad, column, tagged):
    def fields_of(text):
        return text.split("\t")
    for start, rows in _read_fields(lines, bad, fields_of, 3, "id, token, tag"):
        for lineno, fields in rows:
            if not _INT_ID.fullmatch(fields[0]):
                raise bad(lineno, f"bad token id {_short(fields[0])}: expected an integer")
        yield _span_sentence([f[1] for _, f in rows], [f[2] for _, f in rows], start,
                             [n for n, _ in rows], bad)


def _read_columns(lines, bad, column, tagged):
    word, tag = column
    what = f"the word in column {word + 1}, the tag in column {tag + 1}"
    for start, rows in _read_fields(lines, bad, _tsv_fields, max(word, tag) + 1, what,
                                    comments_first=True):
        for lineno, fields in rows:
            problem = spans.tag_problem(fields[tag])
            if problem and "has no type" in problem:
                raise bad(lineno, problem)
            if not fields[word] or not fields[tag]:
                raise bad(lineno, "empty word or tag")
        yield Sentence([f[word] for _, f in rows], [f[tag] for _, f in rows], start)


def _read_tokens(lines, bad, column, tagged):
    words, start = [], 0
    for lineno, text, _ in lines:
        token = text.strip()
        if not token:
            if words:
                yield Sentence(words, None, start)
            words = []
            continue
        if not words:
            start = lineno
        words.append(token)
    if words:
        yield Sentence(words, None, start)


def _read_raw(lines, front_end, one_per_line):
    """Raw text through a front end (seqtag.rawtext): a Sentence per sentence it finds,
    or with one_per_line per line (an empty one for a line without tokens)."""
    if front_end is None:
        from .segment import RuleFrontEnd
        front_end = RuleFrontEnd()
    paragraphs = rawtext.paragraphs(lines, one_per_line)
    for paragraph, sentences in rawtext.segment(paragraphs, front_end, one_per_line):
        if not sentences and one_per_line:
            offset = paragraph.offset
            yield Sentence([], None, paragraph.line, raw=RawSentence([], offset, offset, ""))
        for k, raw in enumerate(sentences):
            yield Sentence(raw.words, None, paragraph.line, raw=raw,
                           new_paragraph=paragraph.new and k == 0)


_READERS = {
    "conllu": _read_conllu,
    "tsv": _read_tsv,
    "slash": _read_slash,
    "conll": _read_conll,
    "iob2": _read_iob2,
    "columns": _read_columns,
    "tokens": _read_tokens,
}


# ---------------------------------------------------------------- writers
# Each writer returns complete lines, final newline included, ready for write().


def format_text(words: Sequence[str], tags: Sequence[str],
                topk: Sequence[Sequence[TagProb]] | None = None) -> str:
    """One line of word/TAG tokens: "The/DET dog/NOUN\\n".

    With ``topk`` (one list of (tag, prob) per word, most probable first) each token is
    word/TAG/P followed by |TAG/P per next-best tag, probabilities with 3 decimals:
    "dog/NOUN/0.972|VERB/0.021".
    """
    if topk is None:
        return " ".join(f"{word}/{tag}" for word, tag in zip(words, tags, strict=True)) + "\n"
    return " ".join(word + "/" + "|".join(f"{t}/{p:.3f}" for t, p in best)
                    for word, best in zip(words, topk, strict=True)) + "\n"


def format_tsv(words: Sequence[str], tags: Sequence[str],
               topk: Sequence[Sequence[TagProb]] | None = None) -> str:
    """word<TAB>tag lines followed by a blank line.

    With ``topk`` each line is word<TAB>TAG<TAB>P, then <TAB>TAG<TAB>P per next-best tag.
    """
    if topk is None:
        return "".join(f"{word}\t{tag}\n" for word, tag in zip(words, tags, strict=True)) + "\n"
    return "".join(word + "".join(f"\t{t}\t{p:.3f}" for t, p in best) + "\n"
                   for word, best in zip(words, topk, strict=True)) + "\n"


def format_conllu(sentence: Sentence, tags: Sequence[str], tag_column: str = "upos",
                  sent_id: int | str | None = None,
                  columns: Mapping[str, Sequence[str]] | None = None) -> str:
    """CoNLL-U for a sentence with ``tags`` in the UPOS or XPOS column, then a blank line;
    ``columns`` ({"upos": [...], "lemma": [...], ...}, MODEL_COLUMNS) fills those
    columns too (a model of several columns fills each).

    CoNLL-U input comes back unchanged except for that column on integer-ID
    lines; raw text (``sentence.raw``) gets ``# newpar`` where a paragraph starts,
    ``# sent_id`` (``sent_id``, when given), ``# text`` (the sentence's text, line breaks
    as spaces), ``SpaceAfter=No`` in MISC where no space follows a token and a range
    line (``3-4  du``) before the words of a multiword token; other input becomes minimal
    CoNLL-U (ID, FORM, '_' elsewhere).  An empty sentence gives "" since CoNLL-U has
    no empty sentences.
    """
    filled = _filled_fields(tags, tag_column, columns, len(sentence.words))
    if not sentence.words:
        return ""
    if sentence.raw is not None:
        return _raw_conllu(sentence, filled, sent_id)
    if sentence.conllu is None:
        rows = []
        for i, word in enumerate(sentence.words):
            fields = [str(i + 1), word] + ["_"] * 8
            for index, values in filled:
                fields[index] = values[i]
            rows.append("\t".join(fields))
        return "\n".join(rows) + "\n\n"
    out, i = [], 0
    for line in sentence.conllu:
        fields = line.split("\t")
        if not line.startswith("#") and _INT_ID.fullmatch(fields[0]):
            for index, values in filled:
                fields[index] = values[i]
            i += 1
            line = "\t".join(fields)
        out.append(line)
    return "\n".join(out) + "\n\n"


def _filled_fields(tags, tag_column, columns, n_words):
    """[(0-based field index, values)] to write: the tags in their column, then columns'."""
    filled = [(MODEL_COLUMNS[tag_column] if tag_column in MODEL_COLUMNS
               else _tag_index(tag_column), tags)]
    for name, values in (columns or {}).items():
        if name not in MODEL_COLUMNS:
            raise ValueError(f"unknown column {name!r}")
        filled.append((MODEL_COLUMNS[name], values))
    for _, values in filled:
        if len(values) != n_words:
            raise ValueError(f"{len(values)} tags for {n_words} words")
    return filled


_LINE_BREAKS = re.compile(r"[ \t]*(?:\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029])\s*")


def one_line(text: str) -> str:
    """Text on one line: each line break, with the whitespace around it, becomes a space
    (a CoNLL-U comment cannot hold a line break; other spaces stay as they were)."""
    return _LINE_BREAKS.sub(" ", text)


def _raw_conllu(sentence, filled, sent_id):
    comments = ["# newpar"] if sentence.new_paragraph else []
    if sent_id is not None:
        comments.append(f"# sent_id = {sent_id}")
    (column, tags), *others = filled
    return raw_sentence_conllu(sentence.raw, tags, column, comments=comments,
                               fields=others) + "\n"


def raw_sentence_conllu(raw: RawSentence, tags: Sequence[str] | None = None, column: int = 3,
                        *, comments: Sequence[str] = (), dummy_tree: bool = False,
                        fields: Sequence[tuple[int, Sequence[str]]] = ()) -> str:
    """A sentence of raw text as CoNLL-U lines (ending with a blank line): the comments,
    `# text`, a range line for each multiword token followed by its words, SpaceAfter=No
    where no space follows; tags (one per word) in the 0-based field `column`, if given,
    and each (field index, values) of `fields`.  dummy_tree: the first word the root and
    the others its dependents, for the official scorer, which needs integer heads."""
    out = [*comments, "# text = " + one_line(raw.text)]
    next_tag = iter(tags) if tags is not None else None
    k = 1
    for token in raw.tokens:
        misc = "_" if token.space_after else "SpaceAfter=No"
        words = token.word_forms
        if len(words) > 1:
            out.append(f"{k}-{k + len(words) - 1}\t{token.text}\t_\t_\t_\t_\t_\t_\t_\t{misc}")
            misc = "_"
        for word in words:
            row = [str(k), word, "_", "_", "_", "_", "_", "_", "_", misc]
            if next_tag is not None:
                row[column] = next(next_tag)
            for index, values in fields:
                row[index] = values[k - 1]
            if dummy_tree:
                row[6:8] = ("0", "root") if k == 1 else ("1", "dep")
            out.append("\t".join(row))
            k += 1
    return "\n".join(out) + "\n"


def format_raw_json(sentence: RawSentence, tags: Sequence[str],
                    topk: Sequence[Sequence[TagProb]] | None = None,
                    columns: Mapping[str, Sequence[str]] | None = None,
                    column_topk: Mapping[str, Sequence[Sequence[TagProb]]] | None = None
                    ) -> str:
    """One JSON Lines object for a sentence of raw text: {"text", "start", "end",
    "tokens": [{"text", "start", "end", "words": [{"word", "tag"[, "top"]}]}]}.

    Offsets are character offsets in the input (seqtag.rawtext); a token's words are its
    syntactic words (one, or several for a multiword token), each with its tag (and the
    k best under ``topk``, one list per word, as format_json gives them; ``columns`` and
    ``column_topk`` as format_json takes them).
    """
    tokens, k = [], 0
    for token in sentence.tokens:
        words = []
        for word in token.word_forms:
            words.append(_json_word(word, k, tags, topk, columns, column_topk))
            k += 1
        tokens.append({"text": token.text, "start": token.start, "end": token.end,
                       "words": words})
    if k != len(tags):
        raise ValueError(f"{len(tags)} tags for {k} words")
    return _json_line({"text": sentence.text, "start": sentence.start, "end": sentence.end,
                       "tokens": tokens})


def format_json(words: Sequence[str], tags: Sequence[str],
                topk: Sequence[Sequence[TagProb]] | None = None,
                columns: Mapping[str, Sequence[str]] | None = None,
                column_topk: Mapping[str, Sequence[Sequence[TagProb]]] | None = None) -> str:
    """One JSON Lines object: {"tokens":[{"word":..,"tag":..,"top":[[tag,prob],..]}]}.

    "top" appears only when ``topk`` (one list of (tag, prob) per word) is
    given; probabilities are rounded to 6 decimals.  ``columns`` ({column: values})
    adds a key per column ("lemma": ...), ``column_topk`` ({column: k best per word})
    a "top_<column>" per column.
    """
    if len(tags) != len(words):
        raise ValueError(f"{len(tags)} tags for {len(words)} words")
    tokens = [_json_word(word, i, tags, topk, columns, column_topk)
              for i, word in enumerate(words)]
    return _json_line({"tokens": tokens})


#: The characters str.splitlines (and so many JSON Lines readers) ends a line at that JSON
#: lets a string hold as they are (it escapes those below U+0020): escaped, so that one
#: object stays one line.
_LINE_BREAKS_IN_JSON = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})


def _json_line(obj: dict) -> str:
    """obj as one line of JSON Lines: UTF-8 text as it is, but no character that a reader
    splitting lines would take for a line end."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).translate(
        _LINE_BREAKS_IN_JSON) + "\n"


def _json_word(word, i, tags, topk, columns, column_topk):
    token: dict[str, object] = {"word": word, "tag": tags[i]}
    if topk is not None:
        token["top"] = _json_top(topk[i])
    for name, values in (columns or {}).items():
        token[name] = values[i]
    for name, best in (column_topk or {}).items():
        token["top_" + name] = _json_top(best[i])
    return token


def _json_top(best):
    return [[str(t), round(float(p), 6)] for t, p in best]


def format_sentence(output_format: str, sentence: Sentence, tags: Sequence[str],
                    topk: Sequence[Sequence[TagProb]] | None = None,
                    tag_column: str = "upos", sent_id: int | str | None = None,
                    columns: Mapping[str, Sequence[str]] | None = None,
                    column_topk: Mapping[str, Sequence[Sequence[TagProb]]] | None = None
                    ) -> str:
    """Dispatch to the writer named by ``output_format`` (one of OUTPUT_FORMATS); ``topk``
    only for TOPK_FORMATS.  text and tsv show the syntactic words (``de/ADP le/DET`` for
    a multiword token); json and conllu of raw text show the surface tokens too.

    ``columns`` ({column: values}, MODEL_COLUMNS) are more columns to show after the
    tags: in text word/TAG/VALUE..., in tsv more fields, in json a key each (and their k
    best, ``column_topk``, as "top_<column>"), in conllu their own columns."""
    if output_format in ("text", "tsv") and columns:
        sep = "/" if output_format == "text" else "\t"
        tags = [sep.join(values) for values in zip(tags, *columns.values(), strict=True)]
    if output_format == "text":
        return format_text(sentence.words, tags, topk)
    if output_format == "tsv":
        return format_tsv(sentence.words, tags, topk)
    if output_format == "json":
        if sentence.raw is not None:
            return format_raw_json(sentence.raw, tags, topk, columns, column_topk)
        return format_json(sentence.words, tags, topk, columns, column_topk)
    if output_format == "conllu":
        if topk is not None:
            raise CorpusError(f"tag probabilities (top-k) cannot be written as conllu; "
                              f"choose one of {', '.join(TOPK_FORMATS)}")
        return format_conllu(sentence, tags, tag_column, sent_id, columns)
    raise CorpusError(f"unknown output format {output_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
