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
from .errors import SeqtagError

__all__ = ["SeqtagTagger"]


class SeqtagTagger(TaggerI):
    """A seqtag model behind NLTK's tagger interface."""

    def __init__(self, model: str | os.PathLike[str] | Any = None,
                 threads: int = TaggingConfig.threads) -> None:
        """model: a model file (None: the bundled English model) or a loaded seqtag.Tagger."""
        from .tagger import Tagger

        self.tagger = model if isinstance(model, Tagger) else Tagger.load(model,
                                                                          threads=threads)
        # (Tagger.load says what else model must be: a path, or None)

    def tag(self, tokens: Sequence[str]) -> list[tuple[str, str]]:
        """[(token, tag), ...] for one tokenized sentence."""
        if isinstance(tokens, (str, bytes)):  # else tagged character by character
            raise SeqtagError("SeqtagTagger.tag() takes a list of tokens, not a string, as "
                              "NLTK's taggers do (raw text: seqtag.Tagger.tag)")
        if not isinstance(tokens, Iterable):
            raise SeqtagError(f"SeqtagTagger.tag() takes a list of tokens, got "
                              f"{type(tokens).__name__}")
        return self.tag_sents([tokens])[0]

    def tag_sents(self, sentences: Iterable[Sequence[str]]) -> list[list[tuple[str, str]]]:
        """[[(token, tag), ...], ...] for tokenized sentences, tagged in one batch."""
        if isinstance(sentences, (str, bytes)):
            raise SeqtagError("SeqtagTagger.tag_sents() takes a list of tokenized "
                              "sentences, not a string")
        if not isinstance(sentences, Iterable):
            raise SeqtagError("SeqtagTagger.tag_sents() takes a list of tokenized "
                              f"sentences, got {type(sentences).__name__}")
        words = []
        for i, tokens in enumerate(sentences):
            if isinstance(tokens, (str, bytes)):
                raise SeqtagError(f"sentence {i + 1} is a string; SeqtagTagger.tag_sents() "
                                  "takes lists of tokens, as NLTK's taggers do (raw text: "
                                  "seqtag.Tagger.tag)")
            if not isinstance(tokens, Iterable):
                raise SeqtagError(f"sentence {i + 1} is not a list of tokens (got "
                                  f"{type(tokens).__name__})")
            words.append(list(tokens))
        return [list(zip(w, tags)) for w, tags in zip(words, self.tagger.predict(words))]
