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


def test_lemma_head_takes_the_best_script_that_fits_then_the_form():
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
    # however low its score, the best of those that fit
    assert head.lemmas(["dogs"], np.array([[3.0, -9.0, -8.0]])) == ["dogs"]
    assert head.lemmas(["dogs"], np.array([[3.0, -8.0, -9.0]])) == ["dog"]
    # no script fits: the form itself
    two = LemmaHead(labels[:2])
    assert two.lemmas(["ox"], np.array([[3.0, 2.0]])) == ["ox"]


def test_lexicon_keeps_the_unambiguous_pairs():
    triples = [("went", "VERB", "go"), ("went", "VERB", "go"), ("saw", "VERB", "see"),
               ("saw", "VERB", "saw"), ("dogs", "NOUN", "dog")]
    lexicon = Lexicon.build(triples)
    assert lexicon.entries == {("went", "VERB"): "go", ("dogs", "NOUN"): "dog"}  # not saw
    assert Lexicon.from_meta(lexicon.to_meta()).entries == lexicon.entries
    assert script_labels(["x", "_"], ["_", "_"])[0] == "_"  # a missing lemma: no label


def _lemmas_one_by_one(head, words, scores):
    """The rule LemmaHead.scripted decodes by, word by word: argmax's choice (the first of
    equal scores, the first NaN) among the scripts apply_script says fit the word, else
    the word."""
    import numpy as np
    out = []
    for word, row in zip(words, scores):
        fits = [j for j in range(head.size) if apply_script(word, head.scripts[j]) is not None]
        out.append(apply_script(word, head.scripts[fits[int(np.argmax(row[fits]))]])
                   if fits else word)
    return out


SCRIPTS = [("", "", "", "", ""), ("lower", "", "", "", ""), ("", "", "", "s", ""),
           ("", "", "", "ies", "y"), ("first", "", "", "e", "ing"), ("", "un", "", "", ""),
           ("", "", "", "ß", "ss"), ("lower", "", "", "en", ""), ("", "", "", "語", "")]
WORDS = ["dogs", "cities", "The", "unhappy", "Straße", "İstanbul", "日本語", "ÉCOLEen", "s",
         "", "x", "dogs", "Make", "ζωές"]


@pytest.mark.parametrize("seed", range(4))
def test_scripted_lemmas_are_the_one_by_one_ones(seed):
    """Random scores, integer-valued so that many rows tie, over words of several scripts
    (non-Latin, case changes that change the length, no script that fits), each word
    many times: the script sets and pairs kept give each row's lemma as the one-by-one
    decoding does, also when the kept pairs and words start over."""
    import numpy as np
    from seqtag import heads as heads_module
    from seqtag import lemma as lemma_module
    head = LemmaHead([script_label(s) for s in SCRIPTS if s[1] or s[3]])  # "x" fits none
    rng = np.random.default_rng(seed)
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), 400)]
    scores = rng.integers(-3, 3, (len(words), head.size)).astype(np.float32)
    scores[::17, 2] = np.nan  # argmax takes the first NaN
    want = _lemmas_one_by_one(head, words, scores)
    assert "x" in words and want[words.index("x")] == "x"
    assert head.scripted(words, scores) == want
    assert head.scripted(words, scores) == want  # every pair and word kept now
    head._fits = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(heads_module, "SCRIPT_CACHE", 5)
        mp.setattr(lemma_module, "WORDS_KEPT", 3)
        head.script_sets._of_word = {}
        assert head.scripted(words[:50], scores[:50]) == want[:50]
        assert len(head._fits) <= 5 + 50 and len(head.script_sets._of_word) <= 3 + 50
    assert head.scripted([], scores[:0]) == []


def test_script_sets_are_the_scripts_that_fit():
    """ScriptSets.fitting is every script apply_script says fits, on words of several
    scripts and case changes that change the length; each distinct set gets one number,
    kept as more words come, and arrays() lists each set's scripts."""
    from seqtag.lemma import ScriptSets
    scripts = SCRIPTS + [("", "un", "do", "s", ""), ("lower", "é", "", "", ""),
                         ("", "", "", "dogs", "dog"), ("first", "", "", "", "")]
    sets = ScriptSets(scripts)
    words = WORDS + ["undogs", "Undogs", "ÉCOLE", "école", "dogs", "İİ", "ǅ", "ﬀs", "ΣΑΣ"]
    for word in words:
        want = tuple(j for j, s in enumerate(scripts) if apply_script(word, s) is not None)
        assert sets.fitting(word) == want, word
    ids = sets.ids(words)
    starts, members = sets.arrays()
    for word, g in zip(words, ids.tolist()):
        assert tuple(members[starts[g]:starts[g + 1]].tolist()) == sets.fitting(word)
    assert sets.ids(words[::-1]).tolist() == ids[::-1].tolist()
    assert len(set(ids.tolist())) == len(starts) - 1 < len(words)


def test_a_word_no_script_fits_is_its_own_lemma_kept_or_not():
    import numpy as np
    head = LemmaHead([script_label(("", "", "", "ies", "y")), script_label(("", "", "", "s", ""))])
    scores = np.array([[2.0, 1.0]])
    assert head.scripted(["ox"], scores) == ["ox"]
    assert head.scripted(["ox"], scores) == ["ox"]
    assert head.scripted(["oxies"], scores) == ["oxy"]
    assert head.scripted(["oxs"], scores) == ["ox"]


@pytest.mark.parametrize("treebank, name", [
    ("ud-english-ewt", "en_ewt-ud-test.conllu"),
    ("ud-french-sequoia", "fr_sequoia-ud-test.conllu"),
])
def test_a_treebank_words_script_sets_are_those_that_fit(treebank, name):
    """On every word of a test treebank, the script sets of the lemma head that the
    treebank's training pairs make are exactly the scripts apply_script says fit."""
    from seqtag.lemma import ScriptSets
    path = shared_dir() / "data" / treebank / name
    train = shared_dir() / "data" / treebank / name.replace("test", "train")
    if not path.is_file() or not train.is_file():
        pytest.skip(f"{path} not found; set SEQTAG_SHARED")
    scripts = sorted({edit_script(w, lemma) for s in iter_sentences(train, "conllu", tagged=False)
                      for w, lemma in zip(s.words, s.columns["lemma"]) if lemma != "_"})
    assert len(scripts) > 200
    sets = ScriptSets(scripts)
    words = sorted({w for s in iter_sentences(path, "conllu", tagged=False) for w in s.words})
    wrong = [w for w in words[::3] if sets.fitting(w) != tuple(
        j for j, s in enumerate(scripts) if apply_script(w, s) is not None)]
    assert wrong == []


def test_script_walks_refuse_a_trie_out_of_shape_and_words_that_are_not_str():
    """The compiled walk reads only inside the trie it is given: a child, a piece range or
    a prefix out of bounds is refused, as a word that is not a str."""
    import numpy as np
    from seqtag import _core
    from seqtag.lemma import ScriptSets
    sets = ScriptSets([("", "un", "", "s", ""), ("lower", "", "", "", "")])
    trie = list(sets._trie)
    assert sets.fitting("unhappys") == (0, 1) and sets.fitting("Xs") == (1,)
    for k, bad in [(2, lambda a: a + 100),                      # a child past the nodes
                   (4, lambda a: a + 1),                        # pieces past the entries
                   (5, lambda a: a + 100),                      # a prefix past its chars
                   (5, lambda a: np.full_like(a, 2 ** 31 - 1)),  # ... that int32 would wrap
                   (3, lambda a: a[:-1])]:                      # plain of another length
        broken = list(trie)
        broken[k] = np.ascontiguousarray(bad(trie[k]), dtype=np.int32)
        with pytest.raises(ValueError, match="script trie"):
            _core.script_walks(["unhappys"], *broken)
    with pytest.raises(TypeError, match="str"):
        _core.script_walks([b"bytes"], *trie)


def test_script_sets_interrupted_while_adding_a_set_stay_whole():
    """An interrupt (Ctrl-C, say) while a new set is written leaves no number without its
    scripts: the next call numbers that set again, and every set still holds exactly the
    scripts that fit its words."""
    from seqtag.lemma import ScriptSets
    scripts = [("", "", "", "", ""), ("", "", "", "s", ""), ("", "", "", "ed", ""),
               ("lower", "", "", "", "")]
    sets = ScriptSets(scripts)
    sets.ids(["ox"])
    real = sets._add_set

    def interrupted(number, key):
        raise KeyboardInterrupt
    sets._add_set = interrupted
    with pytest.raises(KeyboardInterrupt):
        sets.ids(["dogs"])
    sets._add_set = real
    words = ["dogs", "walked", "Ox", "ox"]
    ids = sets.ids(words)
    starts, members = sets.arrays()
    for word, g in zip(words, ids.tolist()):
        assert tuple(members[starts[g]:starts[g + 1]].tolist()) == sets.fitting(word), word
