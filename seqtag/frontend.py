"""The raw-text front end's interface: what turns a paragraph of raw text into sentences of
tokens (with their character offsets) and tokens into syntactic words.

Two front ends implement it: the rules (seqtag.tokenize, close to English EWT, with a
punctuation rule for sentences) and the learned character tagger (seqtag.segment), which a
model trained on a corpus with `# text` lines carries in its file.

Offsets are Python string indexes into the paragraph given to segment(): for every token,
paragraph[start:end] == token.text.  A token is a surface token; its `words` are the
syntactic words it stands for: [text] for most, two or more for a multiword token (French
`du` -> ["de", "le"], German `zum` -> ["zu", "dem"]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)  # no __dict__: a third less time and memory per token
class Token:
    """A surface token of raw text."""

    text: str
    start: int
    end: int
    words: list[str] = field(default_factory=list)  # [] means [text]
    space_after: bool = True

    @property
    def is_multiword(self) -> bool:
        return len(self.words) > 1

    @property
    def word_forms(self) -> list[str]:
        return self.words or [self.text]


@dataclass(slots=True)
class RawSentence:
    """A sentence found in a paragraph: its tokens and where it lies in the paragraph."""

    tokens: list[Token]
    start: int
    end: int
    text: str  # paragraph[start:end]

    @property
    def words(self) -> list[str]:
        return [w for t in self.tokens for w in t.word_forms]


class FrontEnd(Protocol):
    """What tagging raw text needs from a front end."""

    kind: str  # "rules" or "learned"

    def segment(self, paragraph: str) -> list[RawSentence]:
        """The sentences of one paragraph of raw text (never a character lost or invented:
        the tokens' texts are the paragraph's non-space characters, in order)."""
        ...

    def segment_many(self, paragraphs: list[str]) -> list[list[RawSentence]]:
        """segment() of many paragraphs at once (batched where the front end can).  A
        front end may also have segment_many_later(paragraphs), a function giving the same
        whose work starts now on the second thread, with a cancel() method
        (seqtag.rawtext.segment, LearnedFrontEnd)."""
        ...
