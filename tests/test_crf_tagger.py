"""Taggers with a CRF output layer: chosen by --output-layer auto for span tags, trained,
saved and loaded, decoded to well-formed spans only, top-k as marginals, span scores in
evaluate, IOB1 corpora made IOB2; models without a recorded output layer are softmax."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from seqtag import Tagger, cli, spans
from seqtag.corpus import Sentence
from seqtag.network import Batch, Network
from seqtag.vocab import Vocabulary

TINY = dict(epochs=10, batch_size=8, lr=0.01, hidden=16, word_dim=16, char_dim=8,
            char_hidden=8, layers=1, threads=1, seed=3)
PEOPLE = [["John", "Smith"], ["Mary"], ["Ann", "Lee", "Jones"], ["Bob"]]
PLACES = [["Paris"], ["New", "York"], ["Rio", "de", "Janeiro"], ["Oslo"]]
FILLER = ["the", "dog", "saw", "a", "cat", "today", "and", "then", "left"]


def entity_corpus(n, seed=0):
    """Sentences of filler words with PER and LOC spans (IOB2), two spans often adjacent."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(rng.integers(1, 4)):
            for _ in range(rng.integers(0, 3)):
                words.append(str(rng.choice(FILLER)))
                tags.append("O")
            kind, names = ("PER", PEOPLE) if rng.random() < 0.5 else ("LOC", PLACES)
            name = names[rng.integers(len(names))]
            words += name
            tags += ["B-" + kind] + ["I-" + kind] * (len(name) - 1)
        out.append(Sentence(words, tags))
    return out


@pytest.fixture(scope="module")
def crf_tagger():
    return Tagger.train(entity_corpus(150), entity_corpus(20, seed=1), **TINY)


def test_auto_takes_a_crf_for_span_tags_and_it_learns(crf_tagger):
    assert crf_tagger.network.config["output_layer"] == "crf"
    assert crf_tagger.network.config["shape_dim"] == 8  # auto: word shapes for span tags
    assert crf_tagger.output_layer() == {"kind": "crf", "constrained": "IOB2"}
    scores = crf_tagger.evaluate(entity_corpus(40, seed=2))
    assert scores["spans"]["default"]["micro"]["f1"] >= 0.9
    assert crf_tagger.meta["scores"]["dev_span_f1"] is not None


def test_span_scores_in_evaluate_are_those_of_the_predictions(crf_tagger):
    gold = entity_corpus(40, seed=4)
    predicted = crf_tagger.predict(gold)
    scores = crf_tagger.evaluate(gold)["spans"]
    assert scores["default"] == spans.span_scores([s.tags for s in gold], predicted)
    assert scores["strict"] == spans.span_scores([s.tags for s in gold], predicted,
                                                 "strict", "IOB2")


def test_save_and_load_keep_the_crf(crf_tagger, tmp_path):
    crf_tagger.save(tmp_path / "m.npz")
    loaded = Tagger.load(tmp_path / "m.npz")
    assert loaded.output_layer() == crf_tagger.output_layer()
    np.testing.assert_array_equal(loaded.network.crf.transitions,
                                  crf_tagger.network.crf.transitions)
    sentences = [s.words for s in entity_corpus(30, seed=5)]
    assert loaded.predict(sentences) == crf_tagger.predict(sentences)
    # the memo (first-layer inputs, word shapes included) against none
    unmemoised = Tagger.load(tmp_path / "m.npz", memo_words=0)
    assert unmemoised.predict(sentences) == loaded.predict(sentences)
    np.testing.assert_allclose(
        [p for s in unmemoised.predict_top_k(sentences, 2) for t in s for _, p in t],
        [p for s in loaded.predict_top_k(sentences, 2) for t in s for _, p in t], atol=1e-5)


def test_decoding_never_gives_an_ill_formed_span(crf_tagger):
    # weights that push hard towards I- after O: the constraints must still hold
    original = {k: a.copy() for k, a in crf_tagger.network.arrays().items()}
    w = {k: a.copy() for k, a in original.items()}
    tags = crf_tagger.tagset
    for j, t in enumerate(tags):
        if t.startswith("I-"):
            w["crf.transitions"][tags.index("O"), j] = 50.0
            w["crf.start"][j] = 50.0
    crf_tagger.network.load_arrays(w)
    try:
        words = [s.words for s in entity_corpus(50, seed=6)]
        predicted = crf_tagger.predict(words)
        assert all(spans.to_scheme(t, "IOB2") == t for t in predicted)
        # every column (analyze, conllu output) is the best sequence too
        assert crf_tagger.predict_columns(words)[crf_tagger.tag_column] == predicted
        crf_tagger.network.crf.constraints = None  # unconstrained, the same weights do break
        predicted = crf_tagger.predict([s.words for s in entity_corpus(50, seed=6)])
        assert not all(spans.to_scheme(t, "IOB2") == t for t in predicted)
    finally:
        crf_tagger.network.crf.set_tags(tags)
        crf_tagger.network.load_arrays(original)


def test_top_k_gives_marginals(crf_tagger):
    words = [s.words for s in entity_corpus(10, seed=7)]
    tops = crf_tagger.predict_top_k(words, len(crf_tagger.tagset))
    # the best sequence and the marginals from one pass: what predict and predict_top_k give
    values, by_column = crf_tagger.predict_columns_top_k(words, 3, [crf_tagger.tag_column])
    assert values[crf_tagger.tag_column] == crf_tagger.predict(words)
    assert by_column[crf_tagger.tag_column] == crf_tagger.predict_top_k(words, 3)
    for sentence in tops:
        for token in sentence:
            assert sum(p for _, p in token) == pytest.approx(1, abs=1e-4)
            assert [p for _, p in token] == sorted((p for _, p in token), reverse=True)


def test_crf_network_gradients_match_finite_differences():
    sentences = entity_corpus(4, seed=8)
    vocab = Vocabulary.build(sentences, min_char_count=1)
    config = {"word_dim": 3, "char_dim": 2, "char_hidden": 2, "hidden": 3, "layers": 1,
              "dropout": 0.3, "output_layer": "crf", "shape_dim": 2}
    network = Network(config, len(vocab.words), len(vocab.chars), len(vocab.tags), seed=1,
                      dtype=np.float64)
    rng = np.random.default_rng(0)
    for a in network.crf.arrays().values():
        a[...] = rng.standard_normal(a.shape)
    batch = Batch([s.words for s in sentences], vocab, [s.tags for s in sentences])

    def loss():
        return network.loss_and_gradients(batch, np.random.default_rng(5))[:3]

    _, dense, sparse = loss()
    ids, rows = sparse["shape_embedding"]
    dense["shape_embedding"] = np.zeros_like(network.shape_embedding)
    dense["shape_embedding"][ids] = rows
    for name in ("crf.transitions", "crf.start", "crf.end", "output.weight",
                 "rnn.weight_hh_l0", "shape_embedding"):
        flat = network.arrays()[name].reshape(-1)
        for i in rng.choice(flat.size, min(flat.size, 12), replace=False):
            saved = flat[i]
            flat[i] = saved + 1e-6
            up = loss()[0]
            flat[i] = saved - 1e-6
            down = loss()[0]
            flat[i] = saved
            assert dense[name].reshape(-1)[i] == pytest.approx((up - down) / 2e-6, abs=1e-7)


def test_iob1_training_data_is_made_iob2():
    iob1 = [Sentence(s.words, ["I-" + t[2:] if t.startswith("B-") else t for t in s.tags])
            for s in entity_corpus(60)]
    assert spans.detect_scheme(s.tags for s in iob1) == "IOB1"
    tagger = Tagger.train(iob1, **dict(TINY, epochs=1))
    assert any(t.startswith("B-") for t in tagger.tagset)


def test_softmax_when_asked_and_for_models_without_an_output_layer():
    tagger = Tagger.train(entity_corpus(30), **dict(TINY, epochs=1, output_layer="softmax"))
    assert tagger.output_layer() == {"kind": "softmax"} and tagger.network.crf is None
    assert tagger.network.config["shape_dim"] == 8  # still span tags
    bundled = Tagger.load()  # written before output layers had a name
    assert bundled.output_layer() == {"kind": "softmax"}
    assert bundled.info()["network"]["output_layer"] == "softmax"


def test_cli_trains_a_crf_on_uner_style_files_and_scores_spans(tmp_path):
    corpus = tmp_path / "train.iob2"
    corpus.write_text("".join(
        "# sent_id = s\n" + "".join(f"{i}\t{w}\t{t}\t-\t-\n" for i, (w, t) in
                                    enumerate(zip(s.words, s.tags), 1)) + "\n"
        for s in entity_corpus(60)), encoding="utf-8")
    runner = CliRunner()
    model = tmp_path / "m.npz"
    result = runner.invoke(cli.app, ["train", str(corpus), "-o", str(model), "--epochs", "2",
                                     "--hidden", "16", "--layers", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "output layer crf" in result.stdout
    info = runner.invoke(cli.app, ["info", str(model)]).stdout
    assert "output layer  crf (linear-chain CRF" in info
    result = runner.invoke(cli.app, ["evaluate", str(model), str(corpus), "--json"])
    scores = json.loads(result.stdout)
    assert set(scores["spans"]) == {"default", "strict"}
    assert scores["spans"]["default"]["micro"]["support"] == sum(
        len(spans.spans(s.tags)) for s in entity_corpus(60))
    text = runner.invoke(cli.app, ["evaluate", str(model), str(corpus)]).stdout
    assert "spans (seqeval default, conlleval)" in text and "spans (strict IOB2)" in text
    tagged = runner.invoke(cli.app, ["tag", "-m", str(model), "--span-scheme", "IOBES",
                                     "--format", "tsv", "Mary saw John Smith"]).stdout
    assert [line.split("\t")[1] for line in tagged.split("\n") if line] == spans.to_scheme(
        [line.split("\t")[1] for line in runner.invoke(cli.app, [
            "tag", "-m", str(model), "--format", "tsv", "Mary saw John Smith"]).stdout.split(
                "\n") if line], "IOBES")


def test_word_shapes():
    from seqtag.vocab import SHAPES, word_shape
    shapes = {w: SHAPES[word_shape(w)] for w in
              ["dog", "Paris", "NASA", "iPhone", "1995", "B52", ",", "McDonald", "I", "état"]}
    assert shapes == {"dog": "lower", "Paris": "Capitalized", "NASA": "UPPER",
                      "iPhone": "mIxEd", "1995": "digits", "B52": "alnum1", ",": "punct",
                      "McDonald": "mIxEd", "I": "Capitalized", "état": "lower"}


def test_span_tags_default_to_one_layer_unless_given():
    options = {k: v for k, v in TINY.items() if k != "layers"}
    tagger = Tagger.train(entity_corpus(20), **dict(options, epochs=1))
    assert tagger.network.config["layers"] == 1
    assert tagger.meta["training"]["embedding_adam"] == "dense"  # also SPAN_DEFAULTS
    # span tags keep the fixed length their recipe was measured with, not the rule's
    assert (tagger.meta["training"]["patience"], tagger.meta["training"]["decay_patience"],
            tagger.meta["training_auto"]) == (6, 2, [])
    tagger = Tagger.train(entity_corpus(20), **dict(options, epochs=1, layers=2,
                                                    embedding_adam="lazy"))
    assert tagger.network.config["layers"] == 2
    assert tagger.meta["training"]["embedding_adam"] == "lazy"


def test_dev_scores_of_a_crf_over_plain_tags_are_its_best_sequences():
    """A CRF over tags that are not spans (--output-layer crf for UPOS) is scored on its
    best sequences, with or without the heads' targets (which training passes): a
    per-token argmax of its emissions is not what it tags."""
    import random
    from seqtag import inference
    from seqtag.heads import encode_targets
    rng = random.Random(0)
    words = {"NOUN": ["cat", "dog", "man"], "VERB": ["runs", "sees"], "DET": ["the", "a"]}

    def sentence():
        tags = ["DET", "NOUN", "VERB", "DET", "NOUN"]
        return Sentence([rng.choice(words[t]) for t in tags], tags)

    train, dev = [sentence() for _ in range(40)], [sentence() for _ in range(10)]
    tagger = Tagger.train(train, dev, output_layer="crf", **TINY)
    tagger.network.crf.transitions[...] = 0
    tagger.network.crf.transitions[:, 0] = 50.0  # the sequences now differ from the argmax
    net, vocab = tagger.network, tagger.vocab
    best = [[vocab.tags[j] for j in ids] for ids in
            inference.predict_tag_ids(net, vocab, [s.words for s in dev])]
    expected = sum(a == b for s, tags in zip(dev, best) for a, b in zip(s.tags, tags)) / 50
    for targets in (None, encode_targets(vocab.heads, dev)):
        assert inference.dev_scores(net, vocab, dev, targets)["accuracy"] == expected
