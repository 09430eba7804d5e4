"""Pretrained word vectors for training: word2vec, GloVe and fastText files, streamed.

Formats (detected from the file itself):

- text, with a header line ``COUNT DIM`` (word2vec text, fastText ``.vec``) or without
  (GloVe): one ``word x1 x2 ... xDIM`` line per word, separated by spaces;
- word2vec binary: the header line, then per word ``word``, a space, DIM little-endian
  float32 values (and usually a line feed);
- either gzipped (``.gz``: recognised by its first bytes, not its name).

The file is read once, line by line, and only the vectors training needs are kept: those
of the corpus's words, and the first `extra` vectors of other words (files list the most
frequent words first), so a 2 GB file takes the memory of those vectors, and of the set
of the file's words (about 100 bytes a word, to catch a word given twice), not 2 GB.  A
word's vector goes to its key in the vocabulary (seqtag.vocab.word_key: lowercased,
digits as 0), the first one in the file winning when several words share a key ("The",
"the").  Numbers are parsed only on the lines kept; every line's field count is checked.
Every problem is one line naming the file and line (a binary file: the record):
a line with another count of numbers, a number that is not one, a word given twice, a
truncated record, an empty file.

The kept vectors initialise the word embedding (`initialise`): scaled so their spread
matches the random initialisation of the other rows (sd 0.1), and, where the network's
word dimension differs from the vectors', projected onto their principal components
(padded with zero columns when the network's dimension is larger).
"""

from __future__ import annotations

import contextlib
import gzip
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterable, Iterator

import numpy as np

from .corpus import _opened
from .errors import CorpusError, SeqtagError
from .vocab import word_key

__all__ = ["PretrainedVectors", "read_vectors", "vectors_dimension", "initialise"]

#: The spread (standard deviation) of the word embedding's random initialisation, which
#: seqtag.network uses and the pretrained vectors are scaled to.
INIT_SD = 0.1

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class PretrainedVectors:
    """The vectors kept from a file: keys[i]'s vector is vectors[i]."""

    path: str
    format: str                 # "text" or "binary"
    compressed: bool
    dim: int
    keys: list[str] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    extra_keys: list[str] = field(default_factory=list)  # kept beyond the corpus's words
    words_read: int = 0

    def info(self) -> dict[str, Any]:
        """What a model file records of them (meta["embeddings"])."""
        return {"file": self.path, "format": self.format, "gzip": self.compressed,
                "dim": self.dim, "words_in_file": self.words_read,
                "vectors_kept": len(self.keys), "extra_words": len(self.extra_keys)}


@contextlib.contextmanager
def _stream(path: str) -> Iterator[tuple[BinaryIO, bool]]:
    """The file's bytes, ungzipped if it is gzipped (by its first bytes), and whether it
    was; a missing file or a folder: seqtag.corpus's one-line errors."""
    with _opened(path, path) as raw:
        if raw.peek(2)[:2] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped, True  # type: ignore[misc]
        else:
            yield raw, False


def _header(line: bytes) -> tuple[int, int] | None:
    """(count, dim) if the line is a `COUNT DIM` header."""
    fields = line.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        count, dim = int(fields[0]), int(fields[1])
        if dim > 0:
            return count, dim
    return None


def _is_text_line(line: bytes, dim: int) -> bool:
    try:
        fields = line.decode("utf-8").split()
        if len(fields) != dim + 1:
            return False
        [float(x) for x in fields[1:]]
        return True
    except (UnicodeDecodeError, ValueError):
        return False


def _read_error(e: Exception, path: str) -> SeqtagError:
    return CorpusError(f"cannot read: {e}", path)


def vectors_dimension(path: str | os.PathLike[str]) -> int:
    """The dimension of the vectors in a file, from its first lines only."""
    path = os.fspath(path)
    with _stream(path) as (f, _):
        try:
            first = f.readline()
        except (OSError, EOFError) as e:
            raise _read_error(e, path) from None
        header = _header(first)
        if header is not None:
            return header[1]
        fields = _decode(first, path, 1).split()
        if len(fields) < 2:
            raise CorpusError("expected a word and its numbers (or a 'COUNT DIM' header)",
                              path, 1) if first.strip() else CorpusError("no vectors", path)
        return len(fields) - 1


def _decode(line: bytes, path: str, lineno: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"not valid utf-8: byte 0x{line[e.start]:02x} at byte "
                          f"{e.start + 1} of the line", path, lineno) from None


def read_vectors(path: str | os.PathLike[str], wanted: Iterable[str], extra: int
                 ) -> PretrainedVectors:
    """The vectors of a file whose keys are in `wanted` (vocabulary keys), and those of
    the first `extra` other keys in the file's order.  CorpusError (one line, naming file
    and line) for a broken file."""
    path = os.fspath(path)
    wanted = set(wanted)
    try:
        with _stream(path) as (f, compressed):
            fmt, dim, records = _records(f, path)
            keys, vectors, extra_keys, count = _keep(records, wanted, extra)
    except _Duplicate as again:  # rare: read the file again for the word's first place
        with _stream(path) as (f, _):
            first = next(position for position, word, _ in _records(f, path)[2]
                         if word == again.word)
        message = (f"the word {again.word!r} is given again (first on "
                   f"{'line' if fmt == 'text' else 'record'} {first})")
        if fmt == "text":
            raise CorpusError(message, path, again.position) from None
        raise CorpusError(f"record {again.position}: {message}", path) from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise _read_error(e, path) from None
    if count == 0:
        raise CorpusError("no vectors", path)
    return PretrainedVectors(path, fmt, compressed, dim or vectors.shape[1], keys, vectors,
                             extra_keys, count)


def _records(f: BinaryIO, path: str) -> tuple[str, int, Iterator[tuple[int, str, Any]]]:
    """The file's format ("text" or "binary"), its dimension (0: not known before the
    first line) and its records: (line or record number, word, a parser of its numbers)."""
    first = f.readline()
    header = _header(first)
    if header is None:
        return "text", 0, _text_records(_prepend([first], f), path, 1, None)
    # binary or text after the header: a text line is a word and DIM numbers
    dim = header[1]
    chunk = f.read(4 * dim + 4096)
    if _is_text_line(chunk.split(b"\n", 1)[0], dim):
        return "text", dim, _text_records(_lines_after(chunk, f), path, 2, dim)
    return "binary", dim, _binary_records(f, path, dim, header[0], chunk)


def _text_records(lines: Iterable[bytes], path: str, lineno: int, dim: int | None
                  ) -> Iterator[tuple[int, str, Any]]:
    """(line number, word, a parser of its numbers) per line, the first numbered lineno;
    dim None: the first line's."""
    for line in lines:
        text = _decode(line, path, lineno).rstrip("\r\n")
        if not text.strip():
            lineno += 1
            continue  # a blank line (often the last) carries no vector
        fields = text.split()
        if dim is None:
            if len(fields) < 2:
                raise CorpusError("expected a word and its numbers (or a 'COUNT DIM' header)",
                                  path, lineno)
            dim = len(fields) - 1
        if len(fields) != dim + 1:
            raise CorpusError(f"expected a word and {dim} numbers, found "
                              f"{len(fields) - 1} numbers", path, lineno)
        yield lineno, fields[0], (lambda fields=fields, lineno=lineno:
                                  _numbers(fields[1:], path, lineno))
        lineno += 1


def _prepend(first: list[bytes], rest: Iterable[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _lines_after(chunk: bytes, f: BinaryIO) -> Iterator[bytes]:
    """The lines of a chunk read ahead, then the file's."""
    parts = chunk.split(b"\n")
    last = parts.pop()  # the chunk's unfinished line ("" if it ended with one)
    yield from (part + b"\n" for part in parts)
    if last:
        yield last + f.readline()
    yield from f


def _numbers(fields: list[str], path: str, lineno: int) -> np.ndarray:
    try:
        vector = np.array(fields, dtype=np.float32)
    except ValueError:
        bad = next(x for x in fields if not _is_number(x))
        raise CorpusError(f"{bad!r} is not a number", path, lineno) from None
    if not np.all(np.isfinite(vector)):
        raise CorpusError("a number is not finite", path, lineno)
    return vector


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _binary_records(f: BinaryIO, path: str, dim: int, count: int, buffer: bytes
                    ) -> Iterator[tuple[int, str, Any]]:
    """(record number, word, a parser of its numbers) per record of a word2vec binary file
    (its header, count dim, already read; buffer: what was read after it)."""
    size = 4 * dim
    pos = 0
    for record in range(1, count + 1):
        where = f"record {record} of {count}"
        while True:  # the word: up to the next space
            end = buffer.find(b" ", pos)
            if end >= 0:
                break
            more = f.read(1 << 16)
            if not more:
                raise CorpusError(f"truncated: {where} has no word (the header says {count})",
                                  path)
            buffer, pos = buffer[pos:] + more, 0
        raw_word = buffer[pos:end].lstrip(b"\n")
        pos = end + 1
        while len(buffer) - pos < size:
            more = f.read(max(1 << 16, size))
            if not more:
                raise CorpusError(f"truncated: {where} has fewer than {dim} numbers", path)
            buffer, pos = buffer[pos:] + more, 0
        data = buffer[pos:pos + size]
        pos += size
        try:
            word = raw_word.decode("utf-8")
        except UnicodeDecodeError:
            raise CorpusError(f"{where}: the word is not valid utf-8", path) from None
        if not word or any(c.isspace() for c in word):
            raise CorpusError(f"{where}: a record must start with a word and a space", path)
        yield record, word, (lambda data=data, where=where: _binary_numbers(data, path, where))
    rest = buffer[pos:] + f.read(1024)
    if rest.strip():
        raise CorpusError(f"more data after the {count} records the header announces", path)


def _binary_numbers(data: bytes, path: str, where: str) -> np.ndarray:
    vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(vector)):
        raise CorpusError(f"{where}: a number is not finite", path)
    return vector


class _Duplicate(Exception):
    """A word given twice (read_vectors finds its first place for the message)."""

    def __init__(self, word: str, position: int) -> None:
        super().__init__(word)
        self.word, self.position = word, position


def _keep(records: Iterator[tuple[int, str, Any]], wanted: set[str], extra: int
          ) -> tuple[list[str], np.ndarray, list[str], int]:
    """(keys kept, their vectors, the keys kept beyond `wanted`, records read): the
    vectors of wanted keys and of the first `extra` others, in one array allocated at the
    first vector for as many as can be kept.  The file's words are remembered (a set, about
    100 bytes a word) to find a word given twice."""
    seen: set[str] = set()
    keys: list[str] = []
    index: set[str] = set()
    extra_keys: list[str] = []
    vectors = np.zeros((0, 0), np.float32)
    count = 0
    for position, word, numbers in records:
        count += 1
        if word in seen:
            raise _Duplicate(word, position)
        seen.add(word)
        key = word_key(word)
        if key in index:
            continue
        is_extra = key not in wanted
        if is_extra and len(extra_keys) >= extra:
            continue
        vector = numbers()
        if not keys:
            vectors = np.empty((len(wanted) + extra, len(vector)), np.float32)
        vectors[len(keys)] = vector
        keys.append(key)
        index.add(key)
        if is_extra:
            extra_keys.append(key)
    if len(keys) < len(vectors):
        vectors = vectors[:len(keys)].copy()  # the wanted keys the file lacks: not kept
    return keys, vectors, extra_keys, count


def initialise(embedding: np.ndarray, vocab_words: list[str], pretrained: PretrainedVectors
               ) -> np.ndarray:
    """Write the pretrained vectors into the rows of `embedding` (vocab_words[i]'s row i)
    whose word has one, scaled to the random rows' spread and projected to the embedding's
    width if it differs (principal components); returns the ids of the rows written."""
    index = {k: i for i, k in enumerate(pretrained.keys)}
    rows = np.array([i for i, w in enumerate(vocab_words) if w in index], dtype=np.int64)
    if not len(rows):
        return rows
    vectors = pretrained.vectors[[index[vocab_words[i]] for i in rows]].astype(np.float64)
    width = embedding.shape[1]
    if vectors.shape[1] != width:
        vectors = _project(vectors, width)
    spread = float(vectors.std())
    if spread > 0:
        vectors *= INIT_SD / spread
    embedding[rows] = vectors.astype(embedding.dtype)
    return rows


def _project(vectors: np.ndarray, width: int) -> np.ndarray:
    """The vectors on their first `width` principal components (zero columns beyond)."""
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:width].T
    if projected.shape[1] < width:
        projected = np.hstack([projected, np.zeros((len(vectors), width - projected.shape[1]))])
    return projected
