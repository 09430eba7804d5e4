"""Model format 2 (seqtag.modelfile): the vocabulary's words, their counts and a lemma
lexicon are arrays of the model file, not lists in its JSON metadata; files of format 1
load as they did.

tests/data/old_joint_model.npz was written by seqtag at commit 2550d3a (format 1: every
list in the JSON; UPOS, XPOS, FEATS and lemma heads trained one epoch on 150 sentences of
EWT dev); old_joint_model.expected.json holds that seqtag's predict_columns of 30
sentences of EWT test, but for the lemmas of 2 of their 501 tokens: those lemmas are
decoded as since 2026-12-04, by the best script that fits the word, where none of the
four best scripts fit them (the form itself before)."""

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from seqtag import Tagger, modelfile
from seqtag.lemma import Lexicon

DATA = Path(__file__).parent / "data"
OLD = DATA / "old_joint_model.npz"


@pytest.fixture(scope="module")
def expected():
    return json.loads((DATA / "old_joint_model.expected.json").read_text(encoding="utf-8"))


def test_a_format_1_model_loads_and_tags_as_it_did(expected):
    assert modelfile.load_model(OLD)[1]["format_version"] == 1
    tagger = Tagger.load(OLD)
    assert tagger.columns == ["upos", "xpos", "feats", "lemma"]
    assert tagger.predict_columns(expected["words"]) == expected["columns"]


def test_format_2_keeps_the_long_lists_in_arrays(tmp_path, expected):
    old = Tagger.load(OLD)
    path = tmp_path / "new.npz"
    old.save(path, float16=True)
    arrays, meta = modelfile.load_model(path)
    assert meta["format_version"] == 2
    vocab = meta["vocab"]
    assert vocab["words"] == {"strings": "vocab.words", "count": len(old.vocab.words)}
    assert vocab["word_counts"] == {"array": "vocab.word_counts"}
    lexicon = vocab["heads"][3]["lexicon"]
    assert set(lexicon) == {"forms", "upos", "lemmas"}
    assert modelfile.get_strings(arrays, vocab["words"]) == old.vocab.words
    assert arrays["vocab.word_counts"].tolist() == [int(n) for n in old.vocab.word_counts]
    old_lexicon = old.vocab.heads[3].lexicon.entries
    triples = zip(*(modelfile.get_strings(arrays, lexicon[p]) for p in ("forms", "upos",
                                                                        "lemmas")))
    assert {(f, u): lemma for f, u, lemma in triples} == old_lexicon and len(old_lexicon) > 1000
    # the weights are those of the format-1 file, bit for bit
    old_arrays, _ = modelfile.load_model(OLD)
    for name, array in old.network.arrays().items():
        assert arrays[name].tobytes() == old_arrays[name].tobytes() == array.tobytes(), name
    new = Tagger.load(path)
    assert new.vocab.words == old.vocab.words and new.vocab.tags == old.vocab.tags
    assert new.vocab.word_counts.tolist() == old.vocab.word_counts.tolist()
    assert [h.to_meta() for h in new.vocab.heads] == [h.to_meta() for h in old.vocab.heads]
    assert new.predict_columns(expected["words"]) == expected["columns"]
    # saved again, the same file contents
    again = tmp_path / "again.npz"
    new.save(again, float16=True)
    arrays2, meta2 = modelfile.load_model(again)
    assert meta2 == meta
    assert {k: v.tobytes() for k, v in arrays2.items()} == {k: v.tobytes()
                                                            for k, v in arrays.items()}


def test_the_lexicon_is_made_when_lemmas_are_asked_for(tmp_path, expected):
    path = tmp_path / "new.npz"
    Tagger.load(OLD).save(path)
    tagger = Tagger.load(path)
    lexicon = tagger.vocab.heads[3].lexicon
    size = len(lexicon)
    assert "entries" not in vars(lexicon) and size > 1000
    tagger.tag(expected["words"][0])  # UPOS only: no lemma, no lexicon
    assert "entries" not in vars(lexicon)
    assert tagger.predict_columns(expected["words"]) == expected["columns"]
    assert "entries" in vars(lexicon) and len(lexicon.entries) == len(lexicon) == size


def test_threads_asking_for_a_lexicon_at_once_get_all_of_it():
    forms, upos, lemmas = ([f"w{i}" for i in range(20000)], ["NOUN"] * 20000,
                           [f"l{i}" for i in range(20000)])
    for _ in range(5):
        lexicon = Lexicon._deferred(20000, lambda: zip(forms, upos, lemmas))
        seen = []
        threads = [threading.Thread(target=lambda: seen.append(len(lexicon.entries)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen == [20000] * 4 and len(lexicon) == 20000


def _load_error_after(change, source, path):
    """The ModelError message of Tagger.load on the model file `source` rewritten to
    `path` with change(arrays, meta) applied."""
    arrays, meta = modelfile.load_model(source)
    change(arrays, meta)
    meta.pop("format_version"), meta.pop("array_dtypes")
    modelfile.save_model(path, arrays, meta)
    with pytest.raises(modelfile.ModelError) as e:
        Tagger.load(path)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("change, message", [
    (lambda a, m: a.pop("vocab.words"), "has invalid metadata: 'vocab.words'"),
    (lambda a, m: a.update({"vocab.word_counts": a["vocab.word_counts"][:-1]}),
     "has invalid metadata: the word counts are not one count per word"),
    (lambda a, m: modelfile.put_strings(a, "vocab.lemma.lexicon.upos", modelfile.get_strings(
        a, m["vocab"]["heads"][3]["lexicon"]["upos"])[:-1]),  # one UPOS fewer than forms
     "has invalid metadata: vocab.lemma.lexicon.upos holds"),
    (lambda a, m: a.update({"vocab.words": np.frombuffer(b"\xff" + a["vocab.words"][1:]
                                                         .tobytes(), np.uint8)}),
     "has invalid metadata: 'utf-8' codec can't decode byte 0xff"),
])
def test_a_broken_format_2_vocabulary_is_one_model_error(tmp_path, change, message):
    path = tmp_path / "new.npz"
    Tagger.load(OLD).save(path)
    assert _load_error_after(change, path, path).startswith(f"{path} {message}")


def _network(**values):
    return lambda a, m: m["network"].update(values)


def _frontend_options(**values):
    return lambda a, m: m["frontend"]["options"].update(values)


@pytest.mark.parametrize("change, message", [
    # sizes that are not the weights' are refused before a network that big is allocated
    (_network(hidden=10**12), "has invalid metadata: network options: hidden is "
     "1000000000000, but the weights rnn.weight_hh_l0 have 128 columns"),
    (_network(char_hidden=10**9), "has invalid metadata: network options: char_hidden is "
     "1000000000, but the weights char_rnn.weight_hh_l0 have 64 columns"),
    (_network(layers=10**6), "has invalid metadata: network options: layers is 1000000, but "
     "the weights have 2"),
    (_network(word_dim=10**12), "has invalid metadata: network options: word_dim is "
     "1000000000000, but the weights word_embedding have 100 columns"),
    (_network(char_dim=10**12), "has invalid metadata: network options: char_dim is "
     "1000000000000, but the weights char_embedding have 32 columns"),
    (lambda a, m: m.update(corpus="x"), "has invalid metadata: corpus must be an object, "
     "got str"),
    # what `seqtag info` reads
    (lambda a, m: m.update(scores="x"), "has invalid metadata: scores must be an object, "
     "got str"),
    (lambda a, m: m.update(training=[1]), "has invalid metadata: training must be an "
     "object, got list"),
    (lambda a, m: m.update(history=[1]), "has invalid metadata: history must be a list of "
     "objects"),
    (lambda a, m: m["vocab"].update(max_chars=-1), "has invalid metadata: max_chars must be "
     "a positive integer, got -1"),
    (_frontend_options(window=None), ": front end metadata is broken: front end option "
     "window must be an integer, got None"),
    (_frontend_options(margin=2.5), ": front end metadata is broken: front end option "
     "margin must be an integer, got 2.5"),
    (lambda a, m: a.update({"frontend.lexicon.codes": np.full_like(
        a["frontend.lexicon.codes"], 100)}),
     ": front end lexicon is broken: its codes are not all from 0 to 3"),
], ids=["hidden", "char_hidden", "layers", "word_dim", "char_dim", "corpus", "scores",
        "training",
        "history", "max_chars", "window", "margin", "lexicon"])
def test_metadata_that_does_not_fit_its_weights_is_one_model_error_at_load(tmp_path, change,
                                                                          message):
    """A model file whose metadata was edited (or crafted) fails to load with one line,
    quickly, rather than allocating what it asks for or failing later while tagging."""
    from seqtag.tagger import DEFAULT_MODEL

    path = tmp_path / "edited.npz"
    assert _load_error_after(change, DEFAULT_MODEL, path) == \
        f"{path}{'' if message[0] == ':' else ' '}{message}"


@pytest.mark.parametrize("scans", [1000, 2, 0], ids=["scanning", "then-a-dict", "a-dict"])
def test_a_loaded_vocabulary_finds_every_word_as_its_dict_does(tmp_path, monkeypatch, scans):
    """A loaded vocabulary looks its words up in the stored bytes before it makes its dict
    (seqtag.modelfile.StringIndex): the same ids either way, <unk> for the others, the last
    of equal words as a dict keeps it; a word with a newline keeps the dict."""
    from seqtag.modelfile import StringIndex
    from seqtag.vocab import Vocabulary, word_key

    monkeypatch.setattr(StringIndex, "SCANS", scans)
    for words in (["<pad>", "<unk>", "the", "été", "日本", "x\udc80", "dog", "the"],
                  ["<pad>", "<unk>", "the", "two\nlines", "dog"]):
        vocab = Vocabulary(words, ["<pad>", "<unk>"], ["X"], list(range(len(words))))
        arrays = {}
        meta = vocab.to_meta(arrays)
        loaded = Vocabulary.from_meta(meta, arrays=arrays)
        assert (loaded._stored_words is None) == any("\n" in w for w in words)
        forms = ["The", "dog", "ÉTÉ", "日本", "x\udc80", "cat", "", "two\nlines", "<unk>"] * 2
        assert [loaded.word_id(f) for f in forms] == [vocab.word_id(f) for f in forms]
        # all at once (a batch's new forms), from a vocabulary loaded anew
        at_once = Vocabulary.from_meta(meta, arrays=arrays).word_ids(forms)
        assert at_once.dtype == np.int64
        assert at_once.tolist() == [vocab.word_id(f) for f in forms]
        assert [vocab.word_index.get(word_key(f), 1) for f in forms] == \
            [loaded.word_id(f) for f in forms]
        assert loaded.word_index == vocab.word_index and loaded.words == words
