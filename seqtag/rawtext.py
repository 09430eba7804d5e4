"""Raw text to sentences: paragraphs read from lines, cut into sentences, tokens and words
by a front end (seqtag.frontend) many paragraphs at a time, with offsets in the input.

A paragraph is a run of non-blank lines: a blank line (empty or only whitespace) always
ends one, so it also ends a sentence.  Lines inside a paragraph keep their line ends, so a
token's offsets are character offsets in the input as read: for a file,
``open(path, encoding="utf-8-sig", newline="").read()[token.start:token.end] == token.text``
(a leading byte-order mark is not counted).  Memory stays bounded on any input: paragraphs
are read lazily, a batch of them at a time, and a paragraph longer than SOFT_LIMIT
characters is cut at the next line end that follows final punctuation (at any line end past
HARD_LIMIT); the part after a cut continues the paragraph (no new paragraph mark).  A line
longer than SOFT_LIMIT counts as pieces of at most SOFT_LIMIT characters, cut after a space
or tab (inside a token only where SOFT_LIMIT characters have none), so a file of one huge
line is cut too: only the line itself is held whole while it is read.  A sentence the
front end finds of more than MAX_SENTENCE_TOKENS tokens (text without sentence ends) is
tagged as pieces of that many: the tagger's memory grows with a sentence's length.  (One
sentence a line, `lines`, keeps each line one sentence, however long.)
"""

from __future__ import annotations

import io

from dataclasses import dataclass
from typing import Iterable, Iterator

from .errors import SeqtagError
from .frontend import FrontEnd, RawSentence, Token

__all__ = ["Paragraph", "TaggedSentence", "paragraphs", "text_paragraphs", "segment",
           "SOFT_LIMIT", "HARD_LIMIT", "MAX_SENTENCE_TOKENS"]

SOFT_LIMIT = 100_000
HARD_LIMIT = 1_000_000
#: Characters of paragraphs handed to the front end at once (FrontEnd.segment_many).
BATCH_CHARS = 100_000
#: The most tokens of a sentence found in raw text; a longer one is cut into pieces of this
#: many (UD's treebanks have none so long: EWT's longest is 159).
MAX_SENTENCE_TOKENS = 1_000
_FINAL = frozenset(".!?…。！？\"'”’)»")


@dataclass
class Paragraph:
    """A paragraph of raw text: its text (inner line ends kept), the character offset of
    its first character in the input, the number of its first line, and whether it starts
    a new paragraph (False for what follows a cut at the size limit)."""

    text: str
    offset: int = 0
    line: int = 1
    new: bool = True


@dataclass
class TaggedSentence:
    """A tagged sentence of raw text (Tagger.tag_text).

    text       the sentence as it is in the input
    start, end its character offsets in the input: input[start:end] == text
    tokens     its surface tokens (seqtag.frontend.Token: text, start, end in the input,
               words, space_after)
    tags       one tag per syntactic word, in order (a multiword token has several words)
    new_paragraph  whether it opens a paragraph
    """

    text: str
    start: int
    end: int
    tokens: list[Token]
    tags: list[str]
    new_paragraph: bool = False

    @property
    def words(self) -> list[str]:
        return [w for t in self.tokens for w in t.word_forms]

    def pairs(self) -> list[tuple[str, str]]:
        """[(word, tag), ...]."""
        return list(zip(self.words, self.tags))


def paragraphs(lines: Iterable[tuple[int, str, str]], one_per_line: bool = False
               ) -> Iterator[Paragraph]:
    """The paragraphs of numbered lines (line number, text, its line end).  one_per_line:
    every line is a paragraph of its own, blank ones included (as empty paragraphs)."""
    offset = 0
    if one_per_line:
        for lineno, text, ending in lines:
            yield Paragraph(text, offset, lineno, False)
            offset += len(text) + len(ending)
        return
    parts: list[str] = []
    start = first_line = size = 0
    new, last_ending = True, ""
    numbered = _long_lines_cut(lines, SOFT_LIMIT)
    in_line = False  # the last piece went on in this one (a long line cut: no line end)
    while True:
        try:
            lineno, text, ending = next(numbered)
        except StopIteration:
            break
        except SeqtagError:  # a bad line: the paragraph before it is still tagged
            if parts:
                yield Paragraph("".join(parts), start, first_line, new)
            raise
        piece, went_on = in_line, ending is None
        in_line = went_on
        if went_on:
            ending = ""
        # a blank line ends a paragraph; a piece of spaces inside a long line does not
        if not text.strip() and not piece and not went_on:
            if parts:
                yield Paragraph("".join(parts), start, first_line, new)
                parts, size = [], 0
            new = True
            offset += len(text) + len(ending)
            continue
        if parts:
            parts.append(last_ending)
        else:
            start, first_line = offset, lineno
        parts.append(text)
        size += len(text)
        last_ending = ending
        offset += len(text) + len(ending)
        if size >= HARD_LIMIT or (size >= SOFT_LIMIT and text.rstrip()[-1:] in _FINAL):
            yield Paragraph("".join(parts), start, first_line, new)
            parts, size, new = [], 0, False
    if parts:
        yield Paragraph("".join(parts), start, first_line, new)


def _long_lines_cut(lines: Iterable[tuple[int, str, str]], limit: int
                    ) -> Iterator[tuple[int, str, str]]:
    """The numbered lines, a line of more than `limit` characters (not only spaces) as
    pieces of at most `limit`, each but the last cut after the space or tab that follows
    its last final punctuation, else after its last space or tab (at `limit` where it has
    none), with None for its line end (the line goes on): paragraphs() can then cut
    between them, and knows a piece of spaces from a blank line."""
    for lineno, text, ending in lines:
        if len(text) <= limit or not text.strip():  # a blank line stays one, however long
            yield lineno, text, ending
            continue
        start = 0
        while len(text) - start > limit:
            end = start + limit
            # after the last sentence's end if there is one (paragraphs() cuts there)
            space = max(text.rfind(mark + blank, start, end) for mark in _FINAL
                        for blank in " \t")
            space = space + 1 if space > start else \
                max(text.rfind(" ", start, end), text.rfind("\t", start, end))
            cut = space + 1 if space > start else end
            yield lineno, text[start:cut], None  # type: ignore[misc]  # None: the line goes on
            start = cut
        yield lineno, text[start:] if start else text, ending


def text_paragraphs(text: str) -> Iterator[Paragraph]:
    """The paragraphs of a string, offsets in it; a leading byte-order mark is in no
    paragraph (as a file's is not read), but counted by the offsets."""
    skip = 1 if text.startswith("\ufeff") else 0

    def numbered():
        # lines end at \n, \r\n or a lone \r, as in files (corpus._numbered_lines); not at
        # the other characters str.splitlines takes (\x0c, \x85, \u2028, ...)
        for k, line in enumerate(io.StringIO(text[skip:], newline=""), 1):
            body = line.rstrip("\r\n")
            yield k, body, line[len(body):]
    for paragraph in paragraphs(numbered()):
        paragraph.offset += skip
        yield paragraph


def segment(items: Iterable[Paragraph], front_end: FrontEnd, one_sentence: bool = False,
            batch_chars: int = BATCH_CHARS) -> Iterator[tuple[Paragraph, list[RawSentence]]]:
    """(paragraph, its sentences) for each paragraph, the offsets of sentences and tokens
    moved into the input (paragraph.offset added).  Paragraphs go to the front end about
    batch_chars characters at a time.  one_sentence: the tokens of a paragraph make one
    sentence (none for a paragraph without tokens): the front end's sentence ends are
    ignored.  An error while reading paragraphs comes after the sentences of the
    paragraphs read before it (of those of its own batch too for a SeqtagError: a bad
    line).

    A front end with segment_many_later (the learned one) gets the next batch before a
    batch's sentences are handed out: it scores that batch on the second thread while
    the caller tags these.  What is still running when the caller stops early is
    cancelled."""
    it = iter(items)
    later = getattr(front_end, "segment_many_later", None)
    if later is None:  # a batch at a time
        while True:
            batch, error, more = _read_batch(it, batch_chars)
            if batch:
                yield from _placed(batch, front_end.segment_many([p.text for p in batch]),
                                   one_sentence)
            if error is not None:
                raise error
            if not more:
                return
    first = _read_batch(it, batch_chars)
    pending: tuple[list[Paragraph], Exception | None, bool] | None = first
    started = following = None
    try:
        started = later([p.text for p in first[0]]) if first[0] else None
        while pending is not None:
            batch, error, more = pending
            pending = _read_batch(it, batch_chars) if error is None and more else None
            following = later([p.text for p in pending[0]]) if pending and pending[0] \
                else None
            if batch:
                results, started = started(), None  # type: ignore[misc]
                yield from _placed(batch, results, one_sentence)
            if error is not None:
                raise error
            started, following = following, None
    finally:  # a caller that stopped early (or an error): nothing left running for it
        for unfinished in (started, following):
            getattr(unfinished, "cancel", lambda: None)()


def _placed(batch: list[Paragraph], results: list[list[RawSentence]], one_sentence: bool
            ) -> Iterator[tuple[Paragraph, list[RawSentence]]]:
    for p, sentences in zip(batch, results):
        if one_sentence:
            sentences = _one_sentence(p.text, sentences)
        elif any(len(s.tokens) > MAX_SENTENCE_TOKENS for s in sentences):
            sentences = _bounded(p.text, sentences)  # (a line of `lines` stays one)
        if p.offset:
            _shift(sentences, p.offset)
        yield p, sentences


def _read_batch(it: Iterator[Paragraph], batch_chars: int
                ) -> tuple[list[Paragraph], Exception | None, bool]:
    """(paragraphs of about batch_chars characters, the error that stopped reading them
    or None, whether more may follow).  After a SeqtagError (a bad line) the paragraphs
    before it are kept; after any other error (a failed read) none of this batch's."""
    batch: list[Paragraph] = []
    size = 0
    try:
        for p in it:
            batch.append(p)
            size += len(p.text)
            if size >= batch_chars:
                break
    except SeqtagError as e:
        return batch, e, False
    except Exception as e:  # raised once the sentences before this batch are out
        return [], e, False
    return batch, None, size >= batch_chars


def _one_sentence(text: str, sentences: list[RawSentence]) -> list[RawSentence]:
    tokens = [t for s in sentences for t in s.tokens]
    if not tokens:
        return []
    start, end = tokens[0].start, tokens[-1].end
    return [RawSentence(tokens, start, end, text[start:end])]


def _bounded(text: str, sentences: list[RawSentence]) -> list[RawSentence]:
    """The sentences, each longer than MAX_SENTENCE_TOKENS tokens cut into pieces of that
    many (text: their paragraph)."""
    out = []
    for s in sentences:
        if len(s.tokens) <= MAX_SENTENCE_TOKENS:
            out.append(s)
            continue
        for i in range(0, len(s.tokens), MAX_SENTENCE_TOKENS):
            piece = s.tokens[i:i + MAX_SENTENCE_TOKENS]
            start, end = piece[0].start, piece[-1].end
            out.append(RawSentence(piece, start, end, text[start:end]))
    return out


def _shift(sentences: list[RawSentence], offset: int) -> None:
    for s in sentences:
        s.start += offset
        s.end += offset
        for t in s.tokens:
            t.start += offset
            t.end += offset
