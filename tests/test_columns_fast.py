"""Tagging every column the fast way (seqtag.inference.predict_columns: the encoder once,
the lemma head only for the tokens the lexicon does not know, decoding per batch) gives
exactly what the straightforward way gives: every head's logits from infer()'s one
product, each sentence decoded on its own, lemmas ranked by a full sort of the scripts,
XPOS and FEATS the best seen analysis with the UPOS by a search over the analyses."""

import gc
import sys

import numpy as np
import pytest

from conftest import results_from_threads
from seqtag import SeqtagError, Tagger, _core, inference
from seqtag.errors import ConfigError
from seqtag.corpus import Sentence, read_corpus
from seqtag.heads import FeatureHead, Head, LemmaHead, join_features
from seqtag.inference import predict_log_probs
from seqtag.lemma import Lexicon, apply_script, script_label
from seqtag.network import Batch, Network
from seqtag.vocab import Vocabulary


def reference_columns(tagger, words, wanted):
    """The values of `wanted` per sentence, from infer()'s logits of every head (one
    product), decoded token by token: argmax per head; a lemma from the lexicon's
    (form, UPOS) entry, else the best-scoring script of those that fit (argmax's: the
    first of equals), else the form."""
    heads = tagger.vocab.heads
    bounds = tagger.network.bounds
    scores = predict_log_probs(tagger.network, tagger.vocab, words, memo=True,
                               heads=list(range(len(heads))), normalize=False)
    out = {c: [] for c in wanted}
    for w, sc in zip(words, scores):
        best = {k: sc[:, bounds[k]:bounds[k + 1]].argmax(axis=1) for k in range(len(heads))}
        upos = next(([h.labels[j] for j in best[k]] for k, h in enumerate(heads)
                     if h.column == "upos"), None)
        values = {}
        features = [(h, best[k]) for k, h in enumerate(heads) if isinstance(h, FeatureHead)]
        if features:
            values["feats"] = [join_features({h.feature: h.labels[ids[t]]
                                              for h, ids in features
                                              if h.labels[ids[t]] != "_"})
                               for t in range(len(w))]
        for k, head in enumerate(heads):
            if isinstance(head, LemmaHead):
                lemmas = []
                for t, word in enumerate(w):
                    known = head.lexicon.get(word, upos[t] if upos else None)
                    if known is None:
                        fits = [j for j in range(head.size)
                                if apply_script(word, head.scripts[j]) is not None]
                        row = sc[t, bounds[k]:bounds[k + 1]]
                        known = apply_script(word, head.scripts[
                            fits[int(np.argmax(row[fits]))]]) if fits else word
                    lemmas.append(known)
                values["lemma"] = lemmas
            elif not isinstance(head, FeatureHead):
                values[head.column] = [head.labels[j] for j in best[k]]
        combinations = next((h.combinations for h in heads if h.column == "upos"), None)
        if combinations is not None:  # XPOS and FEATS: the best seen analysis with the UPOS
            at = {h.column: k for k, h in enumerate(heads) if type(h) is Head}
            u = at["upos"]
            for t in range(len(w)):
                candidates = [row for row in combinations.seen.tolist()
                              if row[0] == best[u][t]]
                if not candidates:
                    continue
                log_probs = {}
                for c in combinations.columns[1:]:
                    x = np.array(sc[t:t + 1, bounds[at[c]]:bounds[at[c] + 1]])
                    _core.log_softmax_rows(x)
                    log_probs[c] = x[0]
                chosen = max(candidates, key=lambda row: sum(  # first of equals, as argmax
                    float(log_probs[c][row[i]])
                    for i, c in enumerate(combinations.columns[1:], 1)))
                for i, c in enumerate(combinations.columns[1:], 1):
                    values[c][t] = heads[at[c]].labels[chosen[i]]
        for c in wanted:
            out[c].append(values[c])
    return out


@pytest.fixture(scope="module")
def bundled():
    return Tagger.load(threads=2)


@pytest.fixture(scope="module")
def ewt_dev_words(ewt_dir):
    return [s.words for s in read_corpus(ewt_dir / "en_ewt-ud-dev.conllu",
                                         require_tags=False)]


def test_every_column_of_ewt_dev_is_the_reference_one(bundled, ewt_dev_words):
    want = reference_columns(bundled, ewt_dev_words, bundled.columns)
    got = bundled.predict_columns(ewt_dev_words)
    assert list(got) == bundled.columns
    for column in bundled.columns:
        assert got[column] == want[column], column
    # the lexicon answered most tokens: the lemma head ran for the rest only
    lexicon = bundled.vocab.heads[-1].lexicon
    known = sum(lexicon.get(w, u) is not None for ws, us in zip(ewt_dev_words, got["upos"])
                for w, u in zip(ws, us))
    assert 0.5 < known / sum(map(len, ewt_dev_words)) < 1.0


@pytest.mark.parametrize("memo_words", [1600, 2500])
def test_lemmas_with_a_memo_that_starts_over_are_the_reference_ones(ewt_dev_words,
                                                                   memo_words):
    """The lemma lexicon's row of each form is kept in the memo beside its projection
    (Network.form_values): with a memo too small for the text, which starts over batch
    after batch and gives rows to other forms, every lemma is still the reference's, in
    a first pass and in a second that reads the rows back."""
    tagger = Tagger.load(threads=2, memo_words=memo_words)
    words = ewt_dev_words  # batches of ~1,500 distinct forms, 5,494 in all
    want = reference_columns(tagger, words, ["lemma"])
    generation = tagger.network._memo.generation
    for _ in range(2):
        assert tagger.predict_columns(words, ["lemma"]) == want
    assert tagger.network._memo.generation >= generation + 4


@pytest.mark.parametrize("columns", [["lemma"], ["feats", "xpos"], ["xpos", "upos"]])
def test_a_choice_of_columns_is_those_columns_of_the_reference(bundled, ewt_dev_words,
                                                               columns):
    words = ewt_dev_words[:300] + [[]] + ewt_dev_words[300:400]
    got = bundled.predict_columns(words, columns)
    assert list(got) == columns
    assert got == reference_columns(bundled, words, columns)
    assert all(v[300] == [] for v in got.values())


def test_head_logits_are_infers(bundled, ewt_dev_words):
    """Of every row: infer()'s, bit for bit (the same products).  Of chosen rows: the
    same up to float32 rounding, as infer() of the same sentence in another batch is (a
    product's rows at the end of its block take another kernel of the BLAS)."""
    net = bundled.network
    batch = Batch(ewt_dev_words[:200], bundled.vocab)
    hidden = net.encode(batch)
    rows = np.arange(0, batch.n_tokens, 7)
    for heads in ([0, 1, 2], [3], [1]):
        want = net.infer(batch, heads, normalize=False)
        np.testing.assert_array_equal(net.head_logits(hidden, heads), want)
        np.testing.assert_allclose(net.head_logits(hidden, heads, rows), want[rows],
                                   rtol=1e-5, atol=1e-4)


def test_head_logits_on_one_thread_are_the_split_ones(bundled, ewt_dev_words):
    """split=False (what the lemma head's product runs on the second thread): both
    directions on the calling thread, the same products, bit for bit."""
    net = bundled.network
    batch = Batch(ewt_dev_words[:200], bundled.vocab)
    hidden = net.encode(batch)
    rows = np.arange(0, batch.n_tokens, 3)
    for heads in ([3], [0, 1, 2]):
        np.testing.assert_array_equal(net.head_logits(hidden, heads, rows, split=False),
                                      net.head_logits(hidden, heads, rows))


def test_lemmas_on_one_thread_are_the_reference_ones(ewt_dev_words):
    """A tagger of one thread computes the lemma head's product when it decodes the
    lemmas, not beside the XPOS and FEATS: the same values."""
    tagger = Tagger.load(threads=1)
    words = ewt_dev_words[:400]
    assert tagger.predict_columns(words) == reference_columns(tagger, words, tagger.columns)


def test_split_features_and_lemmas_without_upos(tmp_path):
    """A small random model with FEATS split a head per feature and no UPOS head (so no
    lexicon lookups): decoded as the reference does, with the memo and without it."""
    heads = [Head("xpos", ["NN", "VB", "DT"]),
             FeatureHead("Number", ["_", "Sing", "Plur"]),
             FeatureHead("Tense", ["_", "Past", "Pres"]),
             LemmaHead([script_label(s) for s in [("", "", "", "", ""),
                                                  ("", "", "", "s", ""),
                                                  ("lower", "", "", "", ""),
                                                  ("", "", "", "ed", "")]],
                       Lexicon({("dogs", "NOUN"): "hound"}))]
    words = [["The", "dogs", "barked"], ["Cats", "walked", "x"], ["dogs"]]
    for capacity in (0, 100):
        vocab = Vocabulary.build([Sentence(w) for w in words], min_char_count=1, heads=heads)
        net = Network({"hidden": 8, "word_dim": 6, "char_dim": 4, "char_hidden": 4},
                      len(vocab.words), len(vocab.chars), [h.size for h in heads],
                      seed=3, memo_capacity=capacity)
        net.output_bias[net.bounds[1] + 2] = 5.0  # Number=Plur, for every token
        net.changed()
        tagger = Tagger(net, vocab)
        got = tagger.predict_columns(words)
        assert list(got) == ["xpos", "feats", "lemma"]
        assert got == reference_columns(tagger, words, ["xpos", "feats", "lemma"])
        assert all("Number=Plur" in v for s in got["feats"] for v in s)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_crf_model_of_lemmas_gives_lemmas_not_scripts(threads):
    """A CRF over the lemma head (`--columns lemma --output-layer crf`): its lemmas are the
    lemma head's scripts applied to the words, as without a CRF, in batches of any size."""
    scripts = [("", "", "", "", ""), ("", "", "", "s", ""), ("lower", "", "", "", ""),
               ("", "", "", "ed", "")]
    heads = [LemmaHead([script_label(s) for s in scripts], Lexicon({}))]
    words = [["The", "dogs", "barked"], ["Cats", "walked", "x"], ["dogs"]] * 5
    vocab = Vocabulary.build([Sentence(w) for w in words], min_char_count=1, heads=heads)
    net = Network({"hidden": 8, "word_dim": 6, "char_dim": 4, "char_hidden": 4,
                   "output_layer": "crf"}, len(vocab.words), len(vocab.chars),
                  [h.size for h in heads], seed=3, threads=threads)
    assert net.crf is not None
    tagger = Tagger(net, vocab)
    want = reference_columns(tagger, words, ["lemma"])
    for batch_tokens in (4, 4096):
        got = inference.predict_columns(net, vocab, words, ["lemma"], batch_tokens)
        assert got == want
    assert {lemma for s in want["lemma"] for lemma in s} <= {
        apply_script(w, s) or w for ws in words for w in ws for s in scripts} | {
        w for ws in words for w in ws}


def test_values_and_every_columns_top_k_from_one_pass(bundled, ewt_dev_words, monkeypatch):
    """predict_columns_top_k: predict_columns' values and predict_top_k's k best of each
    column, exactly, with the encoder run once per batch."""
    words = ewt_dev_words[:300]  # two batches (BATCH_TOKENS 4,096)
    columns = ["lemma", "upos", "feats"]
    want_values = bundled.predict_columns(words, columns)
    want_tops = {c: bundled.predict_top_k(words, 3, c) for c in columns}
    calls = []
    encode = bundled.network.encode
    monkeypatch.setattr(bundled.network, "encode", lambda batch, heads=None:
                        calls.append(1) or encode(batch, heads))
    values, tops = bundled.predict_columns_top_k(words, 3, columns)
    assert values == want_values
    assert tops == want_tops
    assert len(calls) == len(list(inference._batches(bundled.vocab, words,
                                                     inference.BATCH_TOKENS))) == 2


def test_the_k_best_lemmas_are_distinct(bundled, ewt_dev_words):
    """Two scripts can make the same lemma of a word: the k best lemmas are the k best
    distinct ones, each with its best script's probability; the first is the lemma
    predict_columns gives (the lexicon's where it knows the word), the others best
    first."""
    words = ewt_dev_words[:300]
    shown = bundled.predict_columns(words, ["lemma"])["lemma"]
    lexicon_first = 0
    for sentence, lemmas_shown in zip(bundled.predict_top_k(words, 5, "lemma"), shown):
        for best, lemma_shown in zip(sentence, lemmas_shown):
            lemmas = [lemma for lemma, _ in best]
            assert len(lemmas) == len(set(lemmas)) and 1 <= len(lemmas) <= 5
            assert lemmas[0] == lemma_shown
            probs = [p for _, p in best]
            assert probs[1:] == sorted(probs[1:], reverse=True)
            lexicon_first += probs[0] < max(probs)
    assert lexicon_first > 0  # the lexicon overrules the network somewhere in these


def test_the_first_of_the_k_best_lemmas_is_the_lemma_shown(bundled):
    """`ate` is `eat` by the lexicon, while the network's best script keeps `ate`: top-1
    was `ate` (a battery's finding), now the lemma shown, with its own script's
    probability, then the network's best."""
    values, tops = bundled.predict_columns_top_k([["He", "ate", "apples", "."]], 3,
                                                 ["upos", "lemma"])
    assert values["lemma"] == [["he", "eat", "apple", "."]]
    assert [[best[0][0] for best in s] for s in tops["lemma"]] == values["lemma"]
    ate = tops["lemma"][0][1]
    assert ate[0][0] == "eat" and ate[1][0] == "ate" and 0 < ate[0][1] < ate[1][1]
    assert bundled.predict_top_k([["He", "ate", "apples", "."]], 3, "lemma") == tops["lemma"]


def _full_rows_asked(net, monkeypatch):
    """The heads whose logits are asked for over every row of a batch (head_logits()
    without rows, or with the encoder: encode(batch, heads)), recorded."""
    asked = []
    head_logits, encode = net.head_logits, net.encode

    def recorded(hidden, heads, rows=None, split=True):
        if rows is None:
            asked.append(tuple(heads))
        return head_logits(hidden, heads, rows, split)

    def recorded_encode(batch, heads=None):
        if heads is not None:
            asked.append(tuple(heads))
        return encode(batch, heads)
    monkeypatch.setattr(net, "head_logits", recorded)
    monkeypatch.setattr(net, "encode", recorded_encode)
    return asked


def test_xpos_and_feats_from_each_upos_analyses_alone_are_the_full_products(
        bundled, ewt_dev_words, monkeypatch):
    """predict_columns computes the XPOS and FEATS logits of the labels in the predicted
    UPOS's analyses only (TagCombinations.choose_grouped), never every row of those heads;
    the values are the full product's (predict_columns_scored with a head scored takes the
    full rows) and the reference's, on EWT dev."""
    from seqtag.inference import predict_columns_scored
    want = reference_columns(bundled, ewt_dev_words, ["upos", "xpos", "feats"])
    full, _ = predict_columns_scored(bundled.network, bundled.vocab, ewt_dev_words,
                                     ["upos", "xpos", "feats"], scored=[1])
    asked = _full_rows_asked(bundled.network, monkeypatch)
    got = bundled.predict_columns(ewt_dev_words, ["upos", "xpos", "feats"])
    assert asked and all(heads == (0,) for heads in asked)  # UPOS alone, in every batch
    assert got == full == want


def test_grouped_analyses_on_a_small_model(monkeypatch):
    """A small random model (logits close together: many near ties, decided on the full
    log-probs) whose UPOS head carries analyses, one UPOS with none: every column is the
    reference's, with the memo and without."""
    from seqtag.heads import TagCombinations
    upos, xpos = Head("upos", ["NOUN", "VERB", "X"]), Head("xpos", ["NN", "NNS", "VB", "VBD"])
    feats = Head("feats", ["_", "Number=Plur", "Tense=Past"])
    upos.combinations = TagCombinations(  # X: in no analysis
        ["upos", "xpos", "feats"], [[0, 0, 0], [0, 1, 1], [0, 1, 0], [1, 2, 0], [1, 3, 2]])
    heads = [upos, xpos, feats, LemmaHead([script_label(("", "", "", "", "")),
                                           script_label(("", "", "", "s", ""))],
                                          Lexicon({("dogs", "NOUN"): "hound"}))]
    rng = np.random.default_rng(5)
    forms = ["dog", "dogs", "ran", "runs", "the", "x", "walked", "cat", "a", "it"]
    words = [[forms[j] for j in rng.integers(0, len(forms), int(rng.integers(1, 9)))]
             for _ in range(60)]
    for capacity in (0, 100):
        vocab = Vocabulary.build([Sentence(w) for w in words], min_char_count=1, heads=heads)
        net = Network({"hidden": 8, "word_dim": 6, "char_dim": 4, "char_hidden": 4},
                      len(vocab.words), len(vocab.chars), [h.size for h in heads],
                      seed=3, memo_capacity=capacity)
        # the initial weights give every token the same labels: larger weights, each
        # label's mean logit taken away, make every UPOS and analysis come up
        net.output_weight *= 30
        net.output_bias -= net.head_logits(net.encode(Batch(words, vocab)),
                                           range(len(heads))).mean(axis=0)
        net.changed()
        tagger = Tagger(net, vocab)
        want = reference_columns(tagger, words, ["upos", "xpos", "feats", "lemma"])
        assert {u for s in want["upos"] for u in s} == {"NOUN", "VERB", "X"}
        asked = _full_rows_asked(net, monkeypatch)
        got = tagger.predict_columns(words)
        assert (0, 1, 2) not in asked and (1, 2) not in asked
        assert got == want
        monkeypatch.undo()


def test_an_empty_lexicon():
    """A lemma head whose lexicon is empty, beside a UPOS head: every lemma from the
    scripts (the lexicon's table over the UPOS labels has no row of an entry)."""
    heads = [Head("upos", ["NOUN", "VERB"]),
             LemmaHead([script_label(("", "", "", "", "")), script_label(("", "", "", "s", ""))])]
    words = [["dogs", "ran"], ["cats"]]
    vocab = Vocabulary.build([Sentence(w) for w in words], min_char_count=1, heads=heads)
    net = Network({"hidden": 8, "word_dim": 6, "char_dim": 4, "char_hidden": 4},
                  len(vocab.words), len(vocab.chars), [h.size for h in heads], seed=3)
    net.output_bias[net.bounds[1] + 1] = 5.0  # strip the last "s"
    net.changed()
    tagger = Tagger(net, vocab)
    got = tagger.predict_columns(words)
    assert got == reference_columns(tagger, words, ["upos", "lemma"])
    assert got["lemma"] == [["dog", "ran"], ["cat"]]


def per_row_choice(net, hidden, rows, row_sets, starts, members, head_logits=None):
    """What Network.best_fitting_scripts must give: best_fitting_among's choice from each
    row's own head_logits (head 1)."""
    from seqtag.heads import best_fitting_among
    head_logits = head_logits or net.head_logits
    return [best_fitting_among(head_logits(hidden, [1], [r]), row_sets[i:i + 1], starts,
                               members)[0] for i, r in enumerate(rows)]


FIT_SCRIPTS = [("", "", "", "", ""), ("lower", "", "", "", ""), ("", "", "", "s", ""),
               ("", "", "", "ies", "y"), ("first", "", "", "e", "ing"), ("", "un", "", "", ""),
               ("", "", "", "ß", "ss"), ("lower", "", "", "en", ""), ("", "", "", "語", ""),
               ("", "", "", "s", "x"), ("lower", "", "", "s", ""), ("", "", "", "ed", "")]
FIT_WORDS = ["dogs", "cities", "The", "unhappy", "Straße", "İstanbul", "日本語", "ÉCOLEen", "s",
             "", "x", "Make", "ζωές", "walked", "Unseen", "DOGS"]


@pytest.mark.parametrize("kernels", ["default", "off"])
@pytest.mark.parametrize("dtype,units,grid", [(np.float32, 8, True), (np.float64, 8, True),
                                              (np.float32, 150, False),
                                              (np.float32, 300, False),
                                              (np.float64, 300, False)])
def test_best_fitting_scripts_are_the_best_of_head_logits(kernels, dtype, units, grid):
    """Network.best_fitting_scripts scores only the scripts that fit each row's word and
    gives heads.best_fitting_among's choice from the row's head_logits() (every script's),
    exactly: weights on a grid (ties, where the first script of equal logits wins: the
    rows the core is unsure of, decided from the head's logits), weights off it, pairs of
    scripts whose weights differ in a last bit (rounding decides), sizes with a tail
    (150 units: 300 columns, not a multiple of 8), the AVX2 kernel and the C loop,
    words no script fits (-1) and every case change; rows repeated, none; bad sets and
    rows refused."""
    import seqtag.runtime
    from seqtag.lemma import ScriptSets
    if kernels == "off":
        seqtag.runtime.set_fused_step(False)
    try:
        rng = np.random.default_rng(units)
        # each strips something: "x", "" and "The" fit none
        scripts = [script for script in FIT_SCRIPTS if script[1] or script[3]]
        net = Network({"hidden": units, "word_dim": 6, "char_dim": 4, "char_hidden": 4}, 20,
                      10, [5, len(scripts)], seed=2, dtype=dtype, memo_capacity=0)
        a = net.bounds[1]
        if grid:
            net.output_weight[:] = rng.integers(-1, 2, net.output_weight.shape) / 2
            net.output_bias[:] = rng.integers(-1, 2, net.output_bias.shape) / 2
        else:
            net.output_weight[:] = rng.normal(size=net.output_weight.shape)
            # the three scripts that strip an "s" (to "", to "x", lower-cased): a bit apart
            for j, k in ((a, a + 7), (a + 7, a + 8)):
                net.output_weight[k] = np.nextafter(net.output_weight[j], np.inf)
                net.output_bias[k] = net.output_bias[j]
        net.changed()
        hidden = rng.integers(-1, 2, (300, 2 * units)).astype(dtype) if grid else \
            rng.normal(size=(300, 2 * units)).astype(dtype)
        sets = ScriptSets(scripts)
        words = [FIT_WORDS[i] for i in rng.integers(0, len(FIT_WORDS), 300)]
        for rows in (rng.integers(0, 300, 200), np.array([7]), np.array([3, 3]),
                     np.arange(300), np.zeros(0, np.int64)):
            row_sets = sets.ids([words[r] for r in rows])
            starts, members = sets.arrays()
            got = net.best_fitting_scripts(hidden, 1, rows, row_sets, starts, members)
            want = per_row_choice(net, hidden, rows, row_sets, starts, members)
            assert got.tolist() == want
            if len(rows) == 300:
                assert (got == -1).sum() > 10 and (got >= 0).sum() > 200
        with pytest.raises(ValueError, match="rows"):
            net.best_fitting_scripts(hidden, 1, np.array([0, 300]), np.zeros(2, np.int64),
                                     starts, members)
        with pytest.raises(ValueError, match="sets"):
            net.best_fitting_scripts(hidden, 1, np.array([0]), np.array([len(starts) - 1]),
                                     starts, members)
    finally:
        seqtag.runtime.set_fused_step(None)


@pytest.mark.parametrize("kernels", ["default", "off"])
@pytest.mark.parametrize("units", [7, 13, 150])
def test_best_fitting_scripts_over_sets_wider_than_a_kernel_block(kernels, units):
    """Sets of 27 scripts (the AVX2 kernel takes 8 at a time: three full blocks and a
    partial one) and rows of 14, 26 and 300 values (a tail past the last 8): the choice is
    best_fitting_among's from each row's head_logits."""
    import seqtag.runtime
    from seqtag.lemma import ScriptSets
    if kernels == "off":
        seqtag.runtime.set_fused_step(False)
    try:
        rng = np.random.default_rng(units)
        scripts = [("", "", "", "", chr(c)) for c in range(ord("a"), ord("z") + 1)] + [
            ("", "", "", "s", "")]
        net = Network({"hidden": units, "word_dim": 6, "char_dim": 4, "char_hidden": 4}, 20,
                      10, [5, len(scripts)], seed=2, memo_capacity=0)
        net.output_weight[:] = rng.normal(size=net.output_weight.shape)
        net.changed()
        hidden = rng.normal(size=(60, 2 * units)).astype(np.float32)
        sets = ScriptSets(scripts)
        words = ["dogs" if r % 2 else "ox" for r in range(60)]
        row_sets = sets.ids(words)
        starts, members = sets.arrays()
        assert sorted(np.diff(starts).tolist()) == [26, 27]
        rows = np.arange(60)
        got = net.best_fitting_scripts(hidden, 1, rows, row_sets, starts, members)
        want = per_row_choice(net, hidden, rows, row_sets, starts, members)
        assert got.tolist() == want and len(set(want)) > 5
    finally:
        seqtag.runtime.set_fused_step(None)


def test_best_fitting_scripts_decide_near_ties_from_the_head_logits():
    """Where the core cannot be sure of a winner (two scripts a few roundings apart), the
    head's own logits decide: head_logits runs for those rows only, one by one, and their
    choice is the one best_fitting_among makes from every logit."""
    from seqtag.lemma import ScriptSets
    rng = np.random.default_rng(5)
    scripts = [("", "", "", "", ""), ("", "", "", "s", ""), ("", "", "", "", "x")]
    net = Network({"hidden": 64, "word_dim": 6, "char_dim": 4, "char_hidden": 4}, 20, 10,
                  [5, len(scripts)], seed=2, memo_capacity=0)
    a = net.bounds[1]
    net.output_weight[a:a + 3] = rng.normal(size=(3, 128))
    net.output_weight[a + 2] = net.output_weight[a] * np.float32(1 + 2 ** -22)
    net.output_bias[a:a + 3] = 0
    net.changed()
    hidden = rng.normal(size=(50, 128)).astype(np.float32)
    sets = ScriptSets(scripts)
    rows = np.arange(50)
    row_sets = sets.ids(["dogs"] * 50)
    calls = []
    original = net.head_logits
    net.head_logits = lambda *args, **kwargs: calls.append(args[2]) or original(*args, **kwargs)
    got = net.best_fitting_scripts(hidden, 1, rows, row_sets, *sets.arrays())
    want = per_row_choice(net, hidden, rows, row_sets, *sets.arrays(), head_logits=original)
    assert got.tolist() == want
    assert 0 < len(calls) < 50 and all(len(r) == 1 for r in calls)  # unsure rows, one by one
    assert {0, 2} <= set(want)  # the near tie goes both ways


@pytest.mark.parametrize("capacity", [0, 100])
def test_encode_with_heads_is_encode_and_infer(capacity):
    """Network.encode(batch, heads): the encoder's output and those heads' logits from the
    encoder's last steps (RNN.forward_projected(keep_output=True)), bit for bit what
    encode(batch) and infer(batch, heads, normalize=False) give with the memo; without
    it (capacity 0: the unmemoised encoder, then head_logits()) the same as infer()'s
    unmemoised path, so Tagger.predict (encode's logits) and predict_top_k (infer's)
    agree whether the memo serves or not."""
    heads = [Head("upos", ["NOUN", "VERB", "X"]), Head("xpos", ["NN", "NNS", "VB", "VBD"])]
    rng = np.random.default_rng(4)
    forms = ["dog", "dogs", "ran", "runs", "the", "x", "walked", "cat", "a", "it"]
    words = [[forms[j] for j in rng.integers(0, len(forms), int(rng.integers(1, 9)))]
             for _ in range(40)]
    vocab = Vocabulary.build([Sentence(w) for w in words], min_char_count=1, heads=heads)
    net = Network({"hidden": 8, "word_dim": 6, "char_dim": 4, "char_hidden": 4},
                  len(vocab.words), len(vocab.chars), [h.size for h in heads], seed=3,
                  memo_capacity=capacity, threads=2)
    batch = Batch(words, vocab)
    for chosen in ([0], [1], [1, 0], [0, 1]):
        hidden, logits = net.encode(batch, chosen)
        assert hidden.tobytes() == net.encode(batch).tobytes()
        assert logits.tobytes() == net.head_logits(hidden, chosen).tobytes()
        assert logits.tobytes() == net.infer(batch, chosen, normalize=False).tobytes()


def test_empty_sentences_keep_their_place(bundled):
    """An empty sentence is in no batch: its values are an empty list in every column,
    in its place among the others, with scores (predict_columns_top_k) and without."""
    sentences = [[], ["The", "dogs", "ran"], [], ["Time", "flies"], []]
    got = bundled.predict_columns(sentences)
    want = bundled.predict_columns([s for s in sentences if s])
    for column, values in got.items():
        assert values[0] == values[2] == values[4] == []
        assert [values[1], values[3]] == want[column]
        assert values[0] is not values[2]  # lists of their own
    values, tops = bundled.predict_columns_top_k(sentences, 2, ["upos", "lemma"])
    assert values == {c: got[c] for c in ("upos", "lemma")}
    assert tops["upos"][0] == tops["upos"][4] == [] and len(tops["upos"][1]) == 3


def test_columns_given_as_one_string(bundled):
    """A string of column names joined by commas, as --columns takes them, is those
    columns (it was taken letter by letter: "this model does not predict l")."""
    words = [["Dogs", "bark", "."]]
    assert bundled.predict_columns(words, "lemma") == bundled.predict_columns(words, ["lemma"])
    assert bundled.predict_columns(words, "upos,lemma") == bundled.predict_columns(
        words, ["upos", "lemma"])
    assert bundled.predict_columns_top_k(words, 2, "upos") == bundled.predict_columns_top_k(
        words, 2, ["upos"])
    with pytest.raises(SeqtagError, match="does not predict deprel"):
        bundled.predict_columns(words, "upos,deprel")


@pytest.mark.parametrize("threads", ["x", 0, -1, True, 1.5])
def test_set_threads_checks_its_argument(threads):
    tagger = Tagger.load()
    with pytest.raises(ConfigError, match=r"^threads must be an integer >= 1, got "):
        tagger.set_threads(threads)
    assert tagger.predict([["Dogs", "bark"]]) == Tagger.load().predict([["Dogs", "bark"]])


def test_sentence_lists_are_new_lists_of_the_values():
    """inference._put_sentence_lists (seqtag._core.put_sentence_lists): each sentence's
    values in a list of its own, in its place, by ids or in order; the values' references
    counted right (no object freed while a list holds it, none kept after)."""
    labels = ["NOUN" + "x" * k for k in range(3)]  # strings of their own
    before = [sys.getrefcount(x) for x in labels]
    target = [None] * 5
    inference._put_sentence_lists(target, np.array([3, 0, 1]), [2, 0, 3], labels,
                                  np.array([2, 2, 0, 1, 0]))
    assert target == [[], ["NOUN", "NOUNx", "NOUN"], None, ["NOUNxx", "NOUNxx"], None]
    assert target[3][0] is labels[2]  # the values themselves, not copies
    inference._put_sentence_lists(target, np.array([2, 4]), [1, 2], labels[::-1], None)
    assert target[2] == ["NOUNxx"] and target[4] == ["NOUNx", "NOUN"]
    # ids past the values pick from `more` (the lexicon's lemmas, then the head's)
    inference._put_sentence_lists(target, np.array([2]), [4], labels, np.array([3, 0, 4, 2]),
                                  ["dog", "run"])
    assert target[2] == ["dog", "NOUN", "run", "NOUNxx"]
    del target
    gc.collect()
    assert [sys.getrefcount(x) for x in labels] == before


@pytest.mark.parametrize("chunk, lengths, n_values, ids, more", [
    ([0], [5], 1, None, None),          # more tokens than values
    ([3], [1], 1, None, None),          # a sentence past the target
    ([-1], [1], 1, None, None),
    ([0], [-1], 1, None, None),
    ([0, 1], [1], 1, None, None),       # chunk and lengths apart
    ([0], [2], 2, [0], None),           # more tokens than ids
    ([0], [1], 1, [1], None),           # an id past values, no more
    ([0], [1], 1, [2], ["m"]),          # an id past values and more
    ([0], [1], 1, [-1], ["m"]),
])
def test_the_compiled_lists_refuse_what_is_out_of_bounds(chunk, lengths, n_values, ids,
                                                        more):
    """seqtag._core.put_sentence_lists itself never reads or writes out of bounds, whatever
    its caller checked (IndexError)."""
    target = [None] * 3
    with pytest.raises(IndexError):
        _core.put_sentence_lists(target, np.array(chunk, dtype=np.int64),
                                 np.array(lengths, dtype=np.int64), ["v"] * n_values,
                                 None if ids is None else np.array(ids, dtype=np.int64), more)


@pytest.mark.parametrize("where, lengths, n_values, ids, message", [
    ([0, 5], [1, 1], 3, [0, 1], "sentences out of range of the target"),
    ([0, -1], [1, 1], 3, [0, 1], "sentences out of range of the target"),
    ([0], [1, 1], 3, [0, 1], "sentences out of range of the target"),
    ([0, 1], [2, -1], 3, [0], "sentences out of range of the target"),
    ([0, 1], [1, 1], 3, [0], "2 tokens but 1 ids of 3 values"),
    ([0, 1], [1, 1], 3, [0, 3], "2 tokens but 2 ids of 3 values"),
    ([0, 1], [1, 1], 3, [-1, 0], "2 tokens but 2 ids of 3 values"),
    ([0, 1], [2, 2], 3, None, "4 tokens but 3 values"),
    ([0, 1], [1, 1], 3, [0, 5], "2 tokens but 2 ids of 5 values"),
    ([0, 1], [1, 1], 3, [0.0, 1.0], "ids must be integers"),
])
def test_sentence_lists_refuse_what_is_out_of_range(where, lengths, n_values, ids,
                                                    message):
    target = [None] * 5
    more = ["m", "m"] if ids is not None and max(ids) == 5 else []  # 3 + 2 values
    with pytest.raises(ValueError) as error:
        inference._put_sentence_lists(target, np.array(where), lengths, ["v"] * n_values,
                                      None if ids is None else np.array(ids), more)
    assert str(error.value) == message
    assert target == [None] * 5


def test_every_column_from_several_threads_at_once_is_the_serial_one(ewt_dev_words):
    """Threads tagging every column with one model at once, the lemma head's script sets
    growing from empty in all of them: each thread's columns are what one thread alone
    gives (sets numbered under one lock, the arrays' views read while they grow)."""
    tagger = Tagger.load(threads=2)
    parts = [ewt_dev_words[k::3][:300] for k in range(3)]
    results = results_from_threads(lambda k: tagger.predict_columns(parts[k]), 3, 2)
    serial = Tagger.load(threads=2)
    for k, runs in results.items():
        want = serial.predict_columns(parts[k])
        assert all(run == want for run in runs), k
    head = tagger.vocab.heads[-1]
    starts, members = head.script_sets.arrays()
    assert len(starts) > 100  # the sets grew in the threads
