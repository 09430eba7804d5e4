"""seqtag as an NLTK tagger: a ``nltk.tag.api.TaggerI``.

    >>> from seqtag.nltk import SeqtagTagger                    # doctest: +SKIP
    >>> tagger = SeqtagTagger()                  # the bundled English model, or a path
    >>> tagger.tag(["The", "dog", "barked", "."])
    [('The', 'DET'), ('dog', 'NOUN'), ('barked', 'VERB'), ('.', 'PUNCT')]
    >>> tagger.accuracy(gold_sentences)          # NLTK's own scoring, [[(word, tag)...]...]

``tag`` and ``tag_sents`` take tokenized sentences (lists of tokens), as NLTK's taggers
do; ``tag_sents`` tags them all in one batch, which is what NLTK's ``accuracy`` and
``confusion`` call.  Raw text goes through ``seqtag.Tagger.tag`` instead.

This module imports NLTK (absolutely: inside the package, ``import nltk`` is the real
one); seqtag itself never imports it.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

from nltk.tag.api import TaggerI

from .config import TaggingConfig

__all__ = ["SeqtagTagger"]


class SeqtagTagger(TaggerI):
    """A seqtag model behind NLTK's tagger interface."""

    def __init__(self, model: str | os.PathLike[str] | Any = None,
                 threads: int = TaggingConfig.threads) -> None:
        """model: a model file (None: the bundled English model) or a loaded seqtag.Tagger."""
        from .tagger import Tagger

        self.tagger = model if isinstance(model, Tagger) else Tagger.load(model,
                                                                          threads=threads)

    def tag(self, tokens: Sequence[str]) -> list[tuple[str, str]]:
        """[(token, tag), ...] for one tokenized sentence."""
        return self.tag_sents([tokens])[0]

    def tag_sents(self, sentences: Iterable[Sequence[str]]) -> list[list[tuple[str, str]]]:
        """[[(token, tag), ...], ...] for tokenized sentences, tagged in one batch."""
        words = [list(tokens) for tokens in sentences]
        return [list(zip(w, tags)) for w, tags in zip(words, self.tagger.predict(words))]
