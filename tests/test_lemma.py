"""Lemma edit scripts (seqtag.lemma): every (form, lemma) pair of a treebank is reproduced
by its own script; scripts that do not fit a form say so; the lexicon."""

import pytest

from conftest import shared_dir
from seqtag.corpus import iter_sentences
from seqtag.heads import LemmaHead, script_labels
from seqtag.lemma import Lexicon, apply_script, edit_script, parse_label, script_label


@pytest.mark.parametrize("form, lemma, script", [
    ("dogs", "dog", ("", "", "", "s", "")),
    ("The", "the", ("lower", "", "", "", "")),
    ("Dogs", "dog", ("lower", "", "", "s", "")),
    ("ran", "run", ("", "", "", "an", "un")),
    ("US", "US", ("", "", "", "", "")),
    ("iPhones", "iPhone", ("", "", "", "s", "")),
    ("McDonald's", "mcDonald's", ("first", "", "", "", "")),
    ("are", "be", ("", "", "", "are", "be")),           # no stem in common: all replaced
    ("ungeliebt", "lieben", ("", "unge", "", "t", "en")),  # a prefix change keeps the stem
    ("n't", "not", ("", "", "", "'t", "ot")),
])
def test_edit_scripts(form, lemma, script):
    assert edit_script(form, lemma) == script
    assert apply_script(form, script) == lemma
    assert parse_label(script_label(script)) == script


def test_a_script_that_does_not_fit_the_form_gives_none():
    assert apply_script("cat", ("", "", "", "s", "")) is None
    assert apply_script("at", ("", "unge", "", "t", "en")) is None
    assert apply_script("s", ("", "s", "", "s", "")) is None  # strips overlap
    with pytest.raises(ValueError, match="not an edit script"):
        parse_label('["upper","","","",""]')


@pytest.mark.parametrize("treebank, name", [
    ("ud-english-ewt", "en_ewt-ud-train.conllu"),
    ("ud-french-sequoia", "fr_sequoia-ud-train.conllu"),
])
def test_every_treebank_pair_is_reproduced_by_its_own_script(treebank, name):
    path = shared_dir() / "data" / treebank / name
    if not path.is_file():
        pytest.skip(f"{path} not found; set SEQTAG_SHARED")
    pairs = {(w, lemma) for s in iter_sentences(path, "conllu", tagged=False)
             for w, lemma in zip(s.words, s.columns["lemma"])}
    assert len(pairs) > 8_000  # EWT train: 21,000 distinct pairs; Sequoia train: 8,591
    wrong = [(w, lemma) for w, lemma in pairs if apply_script(w, edit_script(w, lemma)) != lemma]
    assert wrong == []


def test_lemma_head_falls_back_to_the_next_script_then_the_form():
    import numpy as np
    labels = [script_label(s) for s in [("", "", "", "ies", "y"), ("", "", "", "s", ""),
                                        ("", "", "", "", "")]]
    head = LemmaHead(labels, Lexicon({("mice", "NOUN"): "mouse"}))
    scores = np.array([[3.0, 2.0, 1.0],    # cities: the best script fits
                       [3.0, 2.0, 1.0],    # dogs: "ies" does not fit, "s" does
                       [3.0, 2.0, 1.0],    # mice: the lexicon knows it as a NOUN
                       [3.0, 2.0, 1.0]])   # mice as a VERB: the lexicon does not say
    assert head.lemmas(["cities", "dogs", "mice", "mice"], scores,
                       ["NOUN", "NOUN", "NOUN", "VERB"]) == ["city", "dog", "mouse", "mice"]
    # no script of the tries fits: the form itself
    assert head.lemmas(["ox"], np.array([[3.0, 2.0, -9.0]]), None, tries=2) == ["ox"]


def test_lexicon_keeps_the_unambiguous_pairs():
    triples = [("went", "VERB", "go"), ("went", "VERB", "go"), ("saw", "VERB", "see"),
               ("saw", "VERB", "saw"), ("dogs", "NOUN", "dog")]
    lexicon = Lexicon.build(triples)
    assert lexicon.entries == {("went", "VERB"): "go", ("dogs", "NOUN"): "dog"}  # not saw
    assert Lexicon.from_meta(lexicon.to_meta()).entries == lexicon.entries
    assert script_labels(["x", "_"], ["_", "_"])[0] == "_"  # a missing lemma: no label
