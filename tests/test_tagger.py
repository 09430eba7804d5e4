"""The Tagger library: train, save, load, tag, evaluate; torch interop; accuracy on EWT."""

import warnings

import numpy as np
import pytest

from seqtag import Tagger, _core
from seqtag.corpus import Sentence, read_corpus
from seqtag.errors import SeqtagError
from seqtag.network import Batch
from seqtag.vocab import Vocabulary
from seqtag.tagger import DEFAULT_MODEL
from conftest import import_torch, results_from_threads

TINY = dict(epochs=12, batch_size=8, lr=0.01, hidden=16, word_dim=16, char_dim=8, char_hidden=8, layers=2,
            threads=1, seed=7)

WORDS = {"DET": ["the", "a", "this"], "NOUN": ["dog", "cat", "apple", "house", "idea"],
         "VERB": ["ate", "saw", "likes", "found"], "ADJ": ["big", "red", "old"],
         "PUNCT": [".", "!"]}


def synthetic_corpus(n, seed=0):
    """DET (ADJ) NOUN VERB DET NOUN PUNCT sentences: easy to learn, quick to train on."""
    rng = np.random.default_rng(seed)
    pick = lambda tag: str(rng.choice(WORDS[tag]))  # noqa: E731
    out = []
    for _ in range(n):
        tags = ["DET"] + (["ADJ"] if rng.random() < 0.5 else []) + ["NOUN", "VERB", "DET",
                                                                  "NOUN", "PUNCT"]
        out.append(Sentence([pick(t) for t in tags], tags))
    return out


@pytest.fixture(scope="module")
def tiny_tagger():
    return Tagger.train(synthetic_corpus(120), synthetic_corpus(20, seed=1), **TINY)


def test_learns_a_simple_language(tiny_tagger):
    scores = tiny_tagger.evaluate(synthetic_corpus(30, seed=2))
    assert scores["accuracy"] >= 0.95
    assert set(tiny_tagger.tagset) == set(WORDS)


def test_tag_takes_tokens_or_text_and_returns_pairs(tiny_tagger):
    pairs = tiny_tagger.tag(["the", "dog", "ate", "a", "apple", "."])
    assert [w for w, _ in pairs] == ["the", "dog", "ate", "a", "apple", "."]
    assert [t for _, t in pairs] == ["DET", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]
    assert tiny_tagger.tag("the dog ate a apple.") == [pairs]  # raw text: sentences
    assert tiny_tagger.tag("the dog ate a apple. the dog ate a apple.") == [pairs, pairs]
    assert tiny_tagger.tag("") == []
    assert tiny_tagger.tag([]) == []


def test_tag_sents_tokenizes_strings_and_takes_token_lists(tiny_tagger):
    by_tokens = tiny_tagger.tag_sents([["the", "dog", "ate", "a", "apple", "."],
                                       ("a", "cat", "saw", "this", "house", "!")])
    mixed = tiny_tagger.tag_sents(["the dog ate a apple.", ["a", "cat", "saw", "this", "house",
                                                            "!"]])
    assert mixed == by_tokens
    assert [w for w, _ in by_tokens[0]] == ["the", "dog", "ate", "a", "apple", "."]
    assert [mixed[0]] == tiny_tagger.tag("the dog ate a apple.")
    assert tiny_tagger.tag_sents(["", []]) == [[], []]
    assert tiny_tagger.tag_sents(s for s in ["the cat"]) == tiny_tagger.tag("the cat")
    # a string is one sentence: never split
    (one,) = tiny_tagger.tag_sents(["the cat. the dog."])
    assert [w for w, _ in one] == ["the", "cat", ".", "the", "dog", "."]
    assert len(tiny_tagger.tag("the cat. the dog.")) == 2


@pytest.mark.parametrize("call, message", [
    (lambda t: t.tag_sents("the dog ate"),
     "tag_sents() takes a list of sentences, not one string; use tag() for one sentence"),
    (lambda t: t.tag_sents(None), "tag_sents() takes a list of sentences, got NoneType"),
    (lambda t: t.tag_sents(["the dog", 5]), "sentence 2 must be a string or a list of tokens, "
                                            "got int"),
    (lambda t: t.tag_sents([["the", 5]]), "sentence 1: tokens must be non-empty strings, got 5"),
    (lambda t: t.tag_sents([["the", ""]]), "sentence 1: tokens must be non-empty strings, got ''"),
    (lambda t: t.tag(5), "tag() takes a string or a list of tokens, got int"),
    (lambda t: t.tag(["the", None]), "tokens must be non-empty strings, got None"),
    (lambda t: t.predict(["the dog"]), "sentence 1 is a string; predict() takes lists of "
                                       "tokens (tag_sents() tokenizes strings)"),
    (lambda t: t.predict([{"the"}]), "sentence 1 must be a list of tokens, got set"),
    (lambda t: t.predict_top_k([["the"]], 0), "k must be a positive integer, got 0"),
    (lambda t: t.predict_top_k([["the"]], True), "k must be a positive integer, got True"),
    (lambda t: t.predict_top_k("the dog", 2),
     "predict_top_k() takes a list of sentences, not one string; use tag() for one sentence"),
])
def test_bad_sentences_raise_one_line(tiny_tagger, call, message):
    with pytest.raises(SeqtagError) as e:
        call(tiny_tagger)
    assert str(e.value) == message


@pytest.mark.parametrize("sentences, message", [
    ([[(None, "X"), ("b", "Y")]] * 4,
     "training sentence 1, word 1: word and tag must be non-empty strings, got (None, 'X')"),
    ([[("a", "X")], [("", "X"), ("b", "Y")]] * 2,
     "training sentence 2, word 1: word and tag must be non-empty strings, got ('', 'X')"),
    ([[("a", "X"), ("b", None)]] * 4,
     "training sentence 1, word 2: word and tag must be non-empty strings, got ('b', None)"),
    ([[]] * 4, "no word to train on: every training sentence is empty (after holding out "
               "dev data)"),
])
def test_bad_training_pairs_raise_one_line(sentences, message):
    with pytest.raises(SeqtagError) as e:
        Tagger.train(sentences, epochs=1, hidden=4, word_dim=4, char_dim=2, char_hidden=2,
                     layers=1, threads=1)
    assert str(e.value) == message


class _Token(str):
    pass


class _List(list):
    pass


@pytest.mark.parametrize("sentences, plain", [
    ([["the", "dog"], [], ["ran"]], True),
    ([[]], True),
    ([], False),                       # no sentence: the general path says what it gives
    ([["the", ""]], False),
    ([["the", 5]], False),
    ([("the",)], False),
    ((["the"],), False),
    ([["the", _Token("dog")]], False),  # a subclass takes the general path
    ([["the"], "dog"], False),
    ([_List(["the"])], False),
    (_List([["the"]]), False),
    ((s for s in [["the"]]), False),
])
def test_plain_token_lists_take_exactly_lists_of_non_empty_strings(sentences, plain):
    """seqtag._core.plain_token_lists, the fast path of every predict*() call: new lists
    of the tokens of a list of lists of non-empty str, None for anything else."""
    got = _core.plain_token_lists(sentences)
    if not plain:
        assert got is None
        return
    assert got == sentences
    assert all(a is not b for a, b in zip(got, sentences))  # copies, not the caller's


@pytest.mark.parametrize("sentences", [
    [["the", "dog", "saw", "the", "cat"], [], ["dog", "the"], ["a"]],
    [[1, 1.0, True, "1"], [2, "b", 2]],  # dictionary keys: 1 == 1.0 == True
    [[_Token("the"), "the"]],            # equal strings, one a subclass: one form
    [],
])
def test_batch_numbers_its_forms_in_the_order_they_first_come(sentences):
    """seqtag._core.number_forms (Batch's fast path for lists of lists) against a
    dictionary's setdefault per token, and the general path (tuples) the same."""
    index = {}
    want = [index.setdefault(t, len(index)) for s in sentences for t in s]
    ids = np.full(len(want), -1, dtype=np.int64)
    forms = _core.number_forms(sentences, ids)
    assert forms == list(index) and [type(f) for f in forms] == [type(f) for f in index]
    assert ids.tolist() == want
    vocab = Vocabulary(["the", "dog"], list("thedog"), ["DET", "NOUN"])
    for given in (sentences, tuple(tuple(s) for s in sentences)) if sentences else ():
        batch = Batch(given, vocab)
        assert batch.forms == list(index)
        assert batch.form_of_row.tolist() == np.asarray(want, dtype=np.int64)[
            batch.flat_index].tolist()


def test_number_forms_refuses_ids_of_another_length_and_takes_only_lists():
    ids = np.zeros(3, dtype=np.int64)
    with pytest.raises(IndexError, match="2 tokens but 3 ids"):
        _core.number_forms([["a"], ["b"]], ids)
    for other in ((["a", "b", "c"],), [("a", "b", "c")], [_List(["a", "b", "c"])]):
        assert _core.number_forms(other, ids) is None
    assert ids.tolist() == [0, 0, 0]  # untouched


def test_tokens_of_a_str_subclass_come_back_as_str(tiny_tagger):
    """A token of a str subclass is tagged as its plain string: every value tagging gives
    back is a str, never the caller's object (a lemma that is the form itself is the
    token's own string)."""
    class Loud(str):
        def __str__(self):
            return self.upper()

    sentence = [Loud("the"), Loud("dog"), "ran"]
    plain = tiny_tagger.predict([["the", "dog", "ran"]])
    assert tiny_tagger.predict([sentence]) == plain
    words = _core.plain_token_lists([sentence])
    assert words is None  # the general path
    from seqtag.tagger import _sentences_words
    (got,) = _sentences_words([sentence], "predict", strings=False)
    assert got == ["the", "dog", "ran"] and {type(w) for w in got} == {str}


def test_predict_takes_sentence_objects(tiny_tagger):
    sents = synthetic_corpus(5, seed=8)
    assert tiny_tagger.predict(sents) == tiny_tagger.predict([s.words for s in sents])


def test_same_command_and_seed_give_the_same_model_bit_for_bit():
    corpus, dev = synthetic_corpus(40), synthetic_corpus(8, seed=1)
    a = Tagger.train(corpus, dev, **dict(TINY, epochs=2))
    b = Tagger.train(corpus, dev, **dict(TINY, epochs=2))
    for name, value in a.network.arrays().items():
        np.testing.assert_array_equal(value, b.network.arrays()[name], err_msg=name)


def test_save_then_load_gives_the_same_predictions(tiny_tagger, tmp_path):
    path = tmp_path / "m.npz"
    tiny_tagger.save(path)
    loaded = Tagger.load(path)
    sents = [s.words for s in synthetic_corpus(25, seed=3)]
    assert loaded.predict(sents) == tiny_tagger.predict(sents)
    ours = tiny_tagger.predict_top_k(sents, 3)
    theirs = loaded.predict_top_k(sents, 3)
    # the same tags in the same order; probabilities equal up to float32 rounding (each
    # tagger's memo of word projections was filled from different batches: seqtag.memo)
    assert [[[t for t, _ in tok] for tok in s] for s in ours] == \
        [[[t for t, _ in tok] for tok in s] for s in theirs]
    np.testing.assert_allclose([p for s in ours for tok in s for _, p in tok],
                               [p for s in theirs for tok in s for _, p in tok], rtol=1e-5)
    assert loaded.info()["corpus"]["sentences"] == 120


def test_a_sentence_is_tagged_the_same_in_any_batch(tiny_tagger):
    sents = [s.words for s in synthetic_corpus(60, seed=4)]
    together = tiny_tagger.predict(sents)
    probs_together = tiny_tagger.predict_top_k(sents, 2)
    for i, words in enumerate(sents):
        alone, probs_alone = tiny_tagger.predict([words]), tiny_tagger.predict_top_k([words], 2)
        assert alone[0] == together[i]
        for a, b in zip(probs_alone[0], probs_together[i]):
            assert [t for t, _ in a] == [t for t, _ in b]
            np.testing.assert_allclose([p for _, p in a], [p for _, p in b], rtol=1e-5)


def test_top_k_probabilities_are_sorted_and_sum_to_at_most_one(tiny_tagger):
    sents = [["the", "cat", "saw", "a", "house"]]
    tags, tops = tiny_tagger.predict(sents), tiny_tagger.predict_top_k(sents, 10)
    for tag, top in zip(tags[0], tops[0]):
        assert top[0][0] == tag
        probs = [p for _, p in top]
        assert probs == sorted(probs, reverse=True)
        assert len(top) == len(WORDS)  # k is capped at the tagset's size
        assert abs(sum(probs) - 1.0) < 1e-5
        assert all(isinstance(t, str) and type(p) is float for t, p in top)
    assert tiny_tagger.predict_top_k([[], ["dog"]], 2)[0] == []


def test_predict_with_top_k_still_works_but_warns(tiny_tagger):
    sents = [["the", "cat", "saw", "a", "house"], ["a", "dog"]]
    with pytest.warns(DeprecationWarning, match=r"^Tagger\.predict\(sentences, top_k=k\) is "
                      r"deprecated; use Tagger\.predict_top_k\(sentences, k\)"):
        tags, tops = tiny_tagger.predict(sents, top_k=2)
    assert tags == tiny_tagger.predict(sents)
    assert tops == tiny_tagger.predict_top_k(sents, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_tagger.predict(sents)  # no top_k: no warning


def test_tagging_from_several_threads_gives_the_serial_results(tiny_tagger):
    sents = [s.words for s in synthetic_corpus(80, seed=5)]
    expected = tiny_tagger.predict(sents)
    results = results_from_threads(lambda k: tiny_tagger.predict(sents), 4, 5)
    assert all(r == expected for runs in results.values() for r in runs)


def test_unknown_gold_tag_counts_as_an_error(tiny_tagger):
    gold = [Sentence(["the", "dog"], ["DET", "NEVER-SEEN"])]
    scores = tiny_tagger.evaluate(gold)
    assert scores["tokens"] == 2
    assert scores["accuracy"] == 0.5
    assert scores["per_tag"]["NEVER-SEEN"]["recall"] == 0.0


def test_training_rejects_unknown_options():
    with pytest.raises(SeqtagError, match=r"^unknown option 'hiden'; did you mean 'hidden'\?$"):
        Tagger.train(synthetic_corpus(5), hiden=3)


def test_lstm_weights_load_into_torch(tiny_tagger, tmp_path):
    """The model file's LSTM tensors carry torch's names: load_state_dict takes them."""
    torch = import_torch()
    path = tmp_path / "m.npz"
    tiny_tagger.save(path)
    with np.load(path, allow_pickle=False) as f:
        state = {k[len("rnn."):]: torch.from_numpy(f[k]) for k in f.files
                 if k.startswith("rnn.")}
    rnn = tiny_tagger.network.rnn
    module = torch.nn.LSTM(rnn.input_size, rnn.hidden_size, num_layers=rnn.num_layers,
                           bidirectional=True, batch_first=True)
    module.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((3, 5, rnn.input_size)).astype(np.float32)
    lengths = np.array([5, 2, 4])
    ours, _, _, _ = rnn.forward(x, lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x),
                                                     torch.from_numpy(lengths),
                                                     batch_first=True, enforce_sorted=False)
    theirs, _ = module(packed)
    theirs, _ = torch.nn.utils.rnn.pad_packed_sequence(theirs, batch_first=True)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_accuracy_floor_on_ewt_with_a_small_budget(ewt_dir):
    """A quick recipe (3,000 sentences, 3 epochs, small network) must still tag EWT dev
    well; the full recipe's figure is in BENCHMARKS.md."""
    train = read_corpus(ewt_dir / "en_ewt-ud-train.conllu")[:3000]
    dev = read_corpus(ewt_dir / "en_ewt-ud-dev.conllu")
    tagger = Tagger.train(train, dev[:500], epochs=3, hidden=64, layers=1, threads=2, seed=1,
                          lr=0.01)
    assert tagger.evaluate(dev[500:])["accuracy"] >= 0.88


def test_bundled_model_accuracy_on_ewt_test(ewt_dir):
    if not DEFAULT_MODEL.exists():
        pytest.skip("bundled model not built yet")
    tagger = Tagger.load()
    scores = tagger.evaluate(read_corpus(ewt_dir / "en_ewt-ud-test.conllu"))
    assert scores["tokens"] == 25094
    assert scores["accuracy"] >= 0.955
    # the joint model (issue 13): every column, as Tagger.evaluate counts them (whole FEATS
    # strings; the official scorer's UFeats keeps the universal features only: 96.43)
    columns = scores["columns"]
    assert columns["upos"]["accuracy"] == scores["accuracy"]
    assert columns["xpos"]["accuracy"] >= 0.95
    assert columns["feats"]["accuracy"] >= 0.955
    assert columns["lemma"]["accuracy"] >= 0.965
    assert scores["alltags"]["accuracy"] >= 0.925


@pytest.mark.parametrize("call, message", [
    (lambda t: t.predict_columns([["Dogs"]], 5), "columns must be column names"),
    (lambda t: t.predict_columns_top_k([["Dogs"]], 2, [None]), "columns must be column names"),
    (lambda t: type(t).load(5), r"load\(\) takes a file path \(a string or os.PathLike\), got int"),
    (lambda t: t.save(None), r"save\(\) takes a file path"),
    (lambda t: t.evaluate(None), r"evaluate\(\) takes gold sentences, got NoneType"),
    (lambda t: type(t).train(None), "the training sentences must be a list of sentences, got "
                                    "NoneType"),
])
def test_arguments_of_the_wrong_kind_are_seqtag_errors(call, message):
    """Each was a TypeError from deep inside (or, for [None], a malformed result)."""
    from seqtag import Tagger
    with pytest.raises(SeqtagError, match=message):
        call(Tagger.load())


def test_the_nltk_tagger_refuses_what_is_no_tokens():
    pytest.importorskip("nltk")
    from seqtag.nltk import SeqtagTagger
    tagger = SeqtagTagger()
    for call, message in ((lambda: tagger.tag(None), "takes a list of tokens, got NoneType"),
                          (lambda: tagger.tag(5), "takes a list of tokens, got int"),
                          (lambda: tagger.tag_sents([5]), r"sentence 1 is not a list of tokens \(got int\)"),
                          (lambda: tagger.tag_sents(None), "got NoneType")):
        with pytest.raises(SeqtagError, match=message):
            call()
