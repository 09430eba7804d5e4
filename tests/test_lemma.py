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


def _lemmas_one_by_one(head, words, scores, tries=4):
    """LemmaHead.scripted as it was written before it kept pairs and counted ties at
    once: per row, the best script if it fits and its score is not tied, else the first
    of the `tries` best (heads._best_first's order) that fits, else the word."""
    import numpy as np
    from seqtag.heads import _best_first
    out = []
    for word, row in zip(words, scores):
        best = int(row.argmax())
        lemma = None
        if not np.count_nonzero(row == row[best]) > 1:  # (a NaN best equals nothing)
            lemma = apply_script(word, head.scripts[best])
        if lemma is None:
            order = _best_first(row[None, :], min(tries, head.size))[0]
            lemma = next((f for f in (apply_script(word, head.scripts[j]) for j in order)
                          if f is not None), word)
        out.append(lemma)
    return out


SCRIPTS = [("", "", "", "", ""), ("lower", "", "", "", ""), ("", "", "", "s", ""),
           ("", "", "", "ies", "y"), ("first", "", "", "e", "ing"), ("", "un", "", "", ""),
           ("", "", "", "ß", "ss"), ("lower", "", "", "en", ""), ("", "", "", "語", "")]
WORDS = ["dogs", "cities", "The", "unhappy", "Straße", "İstanbul", "日本語", "ÉCOLEen", "s",
         "", "x", "dogs", "Make", "ζωές"]


@pytest.mark.parametrize("seed", range(4))
def test_scripted_lemmas_are_the_one_by_one_ones(seed):
    """Random scores, integer-valued so that many rows tie at their best, over words of
    several scripts (non-Latin, case changes that change the length, no script that
    fits), each word many times: the pairs kept and the ties counted at once give each
    row's lemma as the one-by-one decoding does, also when the kept pairs start over."""
    import numpy as np
    from seqtag import heads as heads_module
    head = LemmaHead([script_label(s) for s in SCRIPTS])
    rng = np.random.default_rng(seed)
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), 400)]
    scores = rng.integers(-3, 3, (len(words), len(SCRIPTS))).astype(np.float32)
    scores[::17, 2] = np.nan  # a NaN best is tied with nothing
    want = _lemmas_one_by_one(head, words, scores)
    assert head.scripted(words, scores) == want
    assert head.scripted(words, scores) == want  # every pair kept now
    head._fits = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(heads_module, "SCRIPT_CACHE", 5)
        assert head.scripted(words[:50], scores[:50]) == want[:50]
        assert len(head._fits) <= 5 + 50
    assert head.scripted(words, scores, tries=1) == _lemmas_one_by_one(head, words, scores, 1)
    assert head.scripted([], scores[:0]) == []


def test_a_word_no_script_fits_is_its_own_lemma_kept_or_not():
    import numpy as np
    head = LemmaHead([script_label(("", "", "", "ies", "y")), script_label(("", "", "", "s", ""))])
    scores = np.array([[2.0, 1.0]])
    assert head.scripted(["ox"], scores) == ["ox"]
    assert head._fits[("ox", 0)] is None  # kept as not fitting
    assert head.scripted(["ox"], scores) == ["ox"]
    assert head.scripted(["oxies"], scores) == ["oxy"]


def test_ties_are_found_at_once_as_row_by_row():
    import numpy as np
    from seqtag.heads import _tied
    scores = np.array([[1.0, 3.0, 3.0], [1.0, 2.0, 3.0], [np.nan, np.nan, 1.0],
                       [np.nan, 1.0, 1.0], [-np.inf, -np.inf, -np.inf], [0.0, -0.0, -1.0]],
                      dtype=np.float32)
    best = scores.argmax(axis=1)
    want = [np.count_nonzero(row == row[j]) > 1 for row, j in zip(scores, best)]
    assert _tied(scores, best).tolist() == want == [True, False, False, False, True, True]
    assert _tied(scores[1:2], best[1:2]).tolist() == [False]
    assert _tied(scores[:0], best[:0]).tolist() == []


@pytest.mark.parametrize("kernels", ["avx512", "avx2", "blas"])
def test_best_columns_of_float32_are_argmax_and_ties_on_every_path(kernels):
    """The AVX-512 kernel's two vector passes (where it runs: the default on an AVX-512
    CPU) and the scalar scan give argmax's column and _tied's flags on float32 rows of
    every width up to three vectors and the lemma head's 419, with a tail or without,
    rows strided inside wider ones, ties, NaNs (first, inside, last), -inf rows and
    signed zeros."""
    import numpy as np
    import seqtag.runtime
    from seqtag import _core
    from seqtag.heads import _tied, best_columns_of
    if kernels != "blas" and kernels not in _core.fused_step_isas():
        pytest.skip(f"no {kernels} kernels on this CPU or build")
    seqtag.runtime.set_fused_step(False if kernels == "blas" else kernels)
    try:
        rng = np.random.default_rng(4)
        for width in [*range(1, 50), 419]:
            wide = rng.integers(-3, 4, (40, width + 5)).astype(np.float32)
            wide[::3] = rng.normal(size=wide[::3].shape)
            wide[::9, width // 2] = np.nan
            wide[::10, 0] = np.nan
            wide[::11, width - 1] = np.nan
            wide[::7] = -np.inf
            wide[5, :width] = 0.0
            wide[5, width // 3] = -0.0
            for scores in (np.ascontiguousarray(wide[:, :width]), wide[:, :width]):
                best, tied = best_columns_of(scores)
                want = scores.argmax(axis=1)
                assert best.tolist() == want.tolist(), width
                assert tied.tolist() == _tied(scores, want).tolist(), width
    finally:
        seqtag.runtime.set_fused_step(None)


def test_best_columns_in_one_pass_are_argmax_and_ties():
    """heads.best_columns_of (the compiled core's one pass) gives argmax's column (the
    first of equals, the first NaN) and _tied's flags: on the rows above, on random rows
    on a grid (many ties), float32 and float64, and on a slice of wider rows."""
    import numpy as np
    from seqtag.heads import _tied, best_columns_of
    rng = np.random.default_rng(0)
    grid = rng.integers(-2, 3, (300, 9)).astype(np.float64)
    grid[::11, 4] = np.nan
    grid[::13, 0] = np.nan
    grid[::7, 2] = -np.inf
    cases = [np.array([[1.0, 3.0, 3.0], [1.0, 2.0, 3.0], [np.nan, np.nan, 1.0],
                       [np.nan, 1.0, 1.0], [-np.inf, -np.inf, -np.inf], [0.0, -0.0, -1.0]]),
             grid, grid[:, 2:7], grid[:0], grid[:, :1]]
    for scores in cases:
        for dtype in (np.float32, np.float64):
            s = scores.astype(dtype) if scores.base is None else scores
            best, tied = best_columns_of(s)
            assert best.tolist() == s.argmax(axis=1).tolist()
            assert tied.tolist() == _tied(s, s.argmax(axis=1)).tolist()
    assert best_columns_of(grid)[1].sum() > 100
    ints = rng.integers(0, 3, (50, 4))  # no kernel for these: argmax and _tied
    assert best_columns_of(ints)[0].tolist() == ints.argmax(axis=1).tolist()
