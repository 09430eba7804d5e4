"""seqtag as a spaCy pipeline component: ``nlp.add_pipe("seqtag")``.

    >>> import spacy                                             # doctest: +SKIP
    >>> nlp = spacy.blank("en")
    >>> nlp.add_pipe("seqtag")                     # the bundled English model
    >>> nlp.add_pipe("seqtag", config={"model": "my.npz"})      # or another model
    >>> [(t.text, t.pos_) for t in nlp("The dog barked.")]
    [('The', 'DET'), ('dog', 'NOUN'), ('barked', 'VERB'), ('.', 'PUNCT')]

The factory is registered through the ``spacy_factories`` entry point (pyproject.toml),
so installing seqtag with its ``spacy`` extra is all it takes.  The component tags
spaCy's own tokens (whitespace tokens get SPACE in pos_, _SP in tag_, and are not shown to the
network), one
sentence at a time: the doc's sentences if an earlier component set them (a parser, a
sentencizer), else the sentences the model's front end finds in the doc's text (each
token goes to the sentence its first character is in).  It sets no sentence boundaries
itself.  ``nlp.pipe`` tags ``batch_size`` docs in one batch.

Which token attribute a model fills follows the column it was trained on
(COLUMN_ATTRIBUTES): UPOS tags go to ``token.pos_``, XPOS tags to ``token.tag_``, and
FEATS to ``token.morph`` and LEMMA to ``token.lemma_``: a joint model (the bundled one
predicts all four) fills every one in one pass.  A model of span tags (``B-PER I-PER O``: seqtag.spans) sets ``doc.ents``
instead, every other token outside an entity.  A model trained on the UPOS column whose tags are not all Universal POS
tags (spaCy refuses others in ``pos_``) fills ``tag_`` instead.

This module imports spaCy (absolutely: ``seqtag.spacy_component``, not ``seqtag.spacy``,
so it never shadows the real package); seqtag itself never imports it.
"""

from __future__ import annotations

import bisect
from typing import Any, Iterable, Iterator, Optional

from spacy.language import Language
from spacy.parts_of_speech import IDS as UNIVERSAL_POS
from spacy.tokens import Doc, Span
from spacy.util import minibatch

from .config import TaggingConfig
from .spans import spans, tagset_scheme

__all__ = ["SeqtagComponent", "make_seqtag", "COLUMN_ATTRIBUTES"]

#: Where each CoNLL-U column a model predicts goes on a spaCy token.
COLUMN_ATTRIBUTES = {"upos": "pos_", "xpos": "tag_", "feats": "morph", "lemma": "lemma_"}

#: What whitespace tokens get (spaCy's own conventions): never shown to the network.
SPACE_VALUES = {"pos_": "SPACE", "tag_": "_SP"}


@Language.factory(
    "seqtag",
    default_config={"model": None, "threads": TaggingConfig.threads,
                    "batch_size": TaggingConfig.batch_size},
    assigns=["token.pos", "token.tag", "token.morph", "token.lemma", "doc.ents"],
)
def make_seqtag(nlp: Language, name: str, model: Optional[str], threads: int,
                batch_size: int) -> SeqtagComponent:
    """The factory behind ``nlp.add_pipe("seqtag", config={...})``: model is a seqtag
    model file (None: the bundled English model), threads and batch_size as in
    seqtag.config.TaggingConfig."""
    return SeqtagComponent(nlp, name, model=model, threads=threads, batch_size=batch_size)


class SeqtagComponent:
    """Tags the tokens of spaCy docs with a seqtag model (see the module's description)."""

    def __init__(self, nlp: Language | None = None, name: str = "seqtag",
                 model: Optional[str] = None, threads: int = TaggingConfig.threads,
                 batch_size: int = TaggingConfig.batch_size, tagger: Any = None) -> None:
        """tagger: a loaded seqtag.Tagger to use instead of loading `model`."""
        from .stream import model_tag_column
        from .tagger import Tagger

        settings = TaggingConfig(threads=threads, batch_size=batch_size)
        self.name = name
        self.batch_size = settings.batch_size
        self.tagger = tagger if tagger is not None else Tagger.load(model,
                                                                    threads=settings.threads)
        column = model_tag_column(self.tagger)
        #: Whether the model tags spans (B-PER I-PER O ...): they become doc.ents.
        self.entities = tagset_scheme(self.tagger.tagset) is not None
        if column == "upos" and not set(self.tagger.tagset) <= set(UNIVERSAL_POS):
            column = "xpos"  # spaCy's pos_ takes Universal POS tags only
        self.column = column
        #: The model's other columns (a joint model's XPOS, FEATS, lemmas), asked for in
        #: the same pass as its tags.
        self.more_columns = [] if self.entities else [
            c for c in self.tagger.columns[1:] if c in COLUMN_ATTRIBUTES and c != column]
        #: {CoNLL-U column: token attribute} this component fills (none for a span model).
        self.attributes = {} if self.entities else {
            c: COLUMN_ATTRIBUTES[c] for c in [column] + self.more_columns}

    def __call__(self, doc: Doc) -> Doc:
        self._tag([doc])
        return doc

    def pipe(self, docs: Iterable[Doc], batch_size: int | None = None) -> Iterator[Doc]:
        """Tag docs batch_size at a time (default: the component's), in one batch each."""
        for batch in minibatch(docs, size=batch_size or self.batch_size):
            self._tag(batch)
            yield from batch

    def _tag(self, docs: list[Doc]) -> None:
        groups = [(doc, indexes) for doc in docs for indexes in self._sentences(doc)]
        predicted = self._predict([[doc[i].text for i in indexes] for doc, indexes in groups])
        for doc in docs:
            for token in doc:
                if token.is_space:
                    for attribute in self.attributes.values():
                        if attribute in SPACE_VALUES:
                            setattr(token, attribute, SPACE_VALUES[attribute])
        if self.entities:
            self._set_entities(docs, groups, predicted[self.column])
            return
        for k, (doc, indexes) in enumerate(groups):
            for j, i in enumerate(indexes):
                self._set(doc[i], {column: tags[k][j] for column, tags in predicted.items()})

    def _set_entities(self, docs: list[Doc], groups: list[tuple[Doc, list[int]]],
                      tags: list[list[str]]) -> None:
        """doc.ents from each sentence's span tags (read as seqtag.spans.spans does); every
        other token is outside an entity."""
        found: dict[int, list[Span]] = {id(doc): [] for doc in docs}
        for (doc, indexes), sentence_tags in zip(groups, tags):
            for label, start, end in spans(sentence_tags):
                found[id(doc)].append(Span(doc, indexes[start], indexes[end - 1] + 1,
                                           label=label))
        for doc in docs:
            doc.set_ents(found[id(doc)], default="outside")

    def _predict(self, words: list[list[str]]) -> dict[str, list[list[str]]]:
        """{column: per sentence, per word, its value} for each column the model predicts."""
        if not self.more_columns:
            return {self.column: self.tagger.predict(words)}
        values = self.tagger.predict_columns(words, [self.tagger.tag_column] +
                                             self.more_columns)
        values[self.column] = values.pop(self.tagger.tag_column)
        return values

    def _set(self, token: Any, values: dict[str, str]) -> None:
        for column, value in values.items():
            attribute = self.attributes[column]
            if attribute == "morph":
                token.set_morph(None if value == "_" else value)
            else:
                setattr(token, attribute, value)

    def _sentences(self, doc: Doc) -> list[list[int]]:
        """The indexes of the doc's non-space tokens, one list per sentence: the doc's own
        sentences if set, else those the model's front end finds in doc.text."""
        if doc.has_annotation("SENT_START"):
            spans = [(s.start, s.end) for s in doc.sents]
        else:
            starts = self._sentence_starts(doc.text)
            cuts = [0]
            for token in doc:
                if token.i and bisect.bisect_right(starts, token.idx) != bisect.bisect_right(
                        starts, doc[token.i - 1].idx):
                    cuts.append(token.i)
            cuts.append(len(doc))
            spans = list(zip(cuts, cuts[1:]))
        out = []
        for start, end in spans:
            indexes = [i for i in range(start, end) if not doc[i].is_space]
            if indexes:
                out.append(indexes)
        return out

    def _sentence_starts(self, text: str) -> list[int]:
        from .rawtext import segment, text_paragraphs

        return sorted(raw.start for _, sentences in segment(text_paragraphs(text),
                                                            self.tagger.frontend)
                      for raw in sentences)
