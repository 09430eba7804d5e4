"""Output heads over the shared encoder (seqtag.heads): the multi-head loss against finite
differences and every head against a PyTorch reference of the whole network with the
same weights; FEATS split into a head per feature; decoding."""

import numpy as np
import pytest

from conftest import import_torch
from gradcheck import assert_gradients_match, dense_gradients
from seqtag.corpus import Sentence
from seqtag.heads import (ABSENT, FeatureHead, Head, build_heads, decode_column,
                          encode_targets, heads_from_meta, heads_to_meta, join_features,
                          split_features)
from seqtag.network import Batch, Network
from seqtag.vocab import Vocabulary

ROWS = [
    # word, lemma, upos, xpos, feats
    ("The the DET DT Definite=Def|PronType=Art", "dogs dog NOUN NNS Number=Plur",
     "ate eat VERB VBD Mood=Ind|Tense=Past|VerbForm=Fin", "apples apple NOUN NNS Number=Plur",
     ". . PUNCT . _"),
    ("Cats cat NOUN NNS Number=Plur", "sleep sleep VERB VBP Mood=Ind|Tense=Pres|VerbForm=Fin"),
    ("Run run VERB VB VerbForm=Inf", "! ! PUNCT . _"),
    ("A a DET DT Definite=Ind|PronType=Art", "longer long ADJ JJR Degree=Cmp",
     "example example NOUN NN Number=Sing", "was be AUX VBD Mood=Ind|Tense=Past|VerbForm=Fin"),
]


def sentences():
    out = []
    for rows in ROWS:
        fields = [r.split() for r in rows]
        words = [f[0] for f in fields]
        columns = {"lemma": [f[1] for f in fields], "upos": [f[2] for f in fields],
                   "xpos": [f[3] for f in fields], "feats": [f[4] for f in fields]}
        out.append(Sentence(words, columns["upos"], columns=columns))
    return out


CONFIG = {"word_dim": 3, "char_dim": 2, "char_hidden": 2, "hidden": 3, "layers": 2}


def setup(feats="whole", dtype=np.float64, seed=3, config=CONFIG):
    sents = sentences()
    heads = build_heads(sents[:3], ["upos", "xpos", "feats", "lemma"], feats)
    vocab = Vocabulary.build(sents[:3], min_char_count=1, heads=heads)  # the 4th: unknowns
    network = Network(config, len(vocab.words), len(vocab.chars),
                      [h.size for h in vocab.heads], seed=seed, dtype=dtype)
    targets = np.concatenate(encode_targets(vocab.heads, sents))
    batch = Batch([s.words for s in sents], vocab, targets=targets)
    return network, vocab, batch


def test_targets_hold_unknown_labels_as_minus_one():
    network, vocab, batch = setup()
    assert [h.name for h in vocab.heads] == ["upos", "xpos", "feats", "lemma"]
    # the 4th sentence brings labels training never saw: ADJ, AUX; JJR, NN;
    # Definite=Ind|PronType=Art, Degree=Cmp, Number=Sing; and the lemma scripts seen
    # fewer than MIN_SCRIPT_COUNT (2) times are no classes: ate -> eat, Cats -> cat in
    # training, longer -> long, was -> be unseen
    unknown = (batch.targets < 0).sum(axis=0)
    assert unknown.tolist() == [2, 2, 3, 4]
    assert batch.targets.shape == (batch.n_tokens, 4)
    np.testing.assert_array_equal(batch.tag_ids, batch.targets[:, 0])


@pytest.mark.parametrize("feats", ["whole", "split"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_multi_head_loss_gradients_match_finite_differences(feats, dropout):
    network, vocab, batch = setup(feats, config=dict(CONFIG, dropout=dropout))
    assert network.n_heads == (4 if feats == "whole" else 3 + sum(
        isinstance(h, FeatureHead) for h in vocab.heads))

    def loss_fn():
        return network.loss_and_gradients(batch, np.random.default_rng(5))

    loss, dense, sparse, _ = loss_fn()
    # the loss is the sum over heads of each one's mean NLL over its known rows
    log_probs = network.forward(batch, training=True, rng=np.random.default_rng(5))[0]
    expected = 0.0
    for k in range(network.n_heads):
        gold = batch.targets[:, k]
        rows = np.flatnonzero(gold >= 0)
        expected -= log_probs[rows, network.bounds[k] + gold[rows]].mean()
    assert loss == pytest.approx(expected, rel=1e-12)
    # the loss is a sum over up to a dozen heads (~20): its float64 rounding over 2 eps
    # resolves differences down to ~20 * 1e-16 / 1e-6 = 2e-9
    assert_gradients_match(network.arrays(), dense_gradients(network, dense, sparse),
                           lambda: loss_fn()[0], samples=30, atol=5e-9)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_sentences", [3, 4])
def test_loss_gradients_are_backward_of_the_loss_log_prob_gradient_bit_for_bit(
        dtype, threads, n_sentences):
    """loss_and_gradients writes d loss / d logits straight over the log-probs; the
    general backward() takes d loss / d log_probs (-1/n at each known gold label) and
    goes through the softmax: the same gradients, bit for bit, on one thread or two.
    The training sentences alone have every UPOS known; the 4th brings unknowns to every
    head."""
    network, vocab, _ = setup(dtype=dtype, config=dict(CONFIG, dropout=0.3))
    sents = sentences()[:n_sentences]
    batch = Batch([s.words for s in sents], vocab,
                  targets=np.concatenate(encode_targets(vocab.heads, sents)))
    network.set_threads(threads)
    known = (batch.targets >= 0).all(axis=0)
    assert known.any() != (n_sentences == 4) and not known.all()
    _, dense, sparse, _ = network.loss_and_gradients(batch, np.random.default_rng(5))
    log_probs, cache = network.forward(batch, training=True, rng=np.random.default_rng(5))
    grad = np.zeros_like(log_probs)
    for k in range(network.n_heads):
        rows = np.flatnonzero(batch.targets[:, k] >= 0)
        grad[rows, network.bounds[k] + batch.targets[rows, k]] = -1.0 / max(len(rows), 1)
    want_dense, want_sparse = network.backward(cache, grad)
    assert dense.keys() == want_dense.keys() and sparse.keys() == want_sparse.keys()
    for name in dense:
        np.testing.assert_array_equal(dense[name], want_dense[name], err_msg=name)
    for name in sparse:
        for got, want in zip(sparse[name], want_sparse[name]):
            np.testing.assert_array_equal(got, want, err_msg=name)


def torch_reference(torch, network, vocab, batch):
    """The same network in torch.nn, from seqtag's arrays: the log-probabilities of every
    head (rows in the sentences' order, each head's segment log-softmaxed on its own) and
    its parameters by seqtag's names."""
    nn = torch.nn
    c = network.config
    arrays = {k: torch.tensor(np.array(v), requires_grad=True)
              for k, v in network.arrays().items()}
    char_lstm = nn.LSTM(c["char_dim"], c["char_hidden"], bidirectional=True).double()
    lstm = nn.LSTM(c["word_dim"] + 2 * c["char_hidden"], c["hidden"], num_layers=c["layers"],
                   bidirectional=True).double()
    for module, prefix in ((char_lstm, "char_rnn."), (lstm, "rnn.")):
        for name, _ in list(module.named_parameters()):
            setattr(module, name, nn.Parameter(arrays[prefix + name].detach()))
            arrays[prefix + name] = getattr(module, name)  # the leaf whose .grad we read
    pad = nn.utils.rnn
    chars = [torch.tensor(vocab.char_ids(f)) for f in batch.forms]
    packed = pad.pack_sequence([arrays["char_embedding"][ids] for ids in chars],
                               enforce_sorted=False)
    _, (h_n, _) = char_lstm(packed)
    form_features = torch.cat([h_n[0], h_n[1]], dim=1)
    flat_form = np.empty(batch.n_tokens, dtype=np.int64)
    flat_form[batch.flat_index] = batch.form_of_row
    flat_word = np.empty(batch.n_tokens, dtype=np.int64)
    flat_word[batch.flat_index] = batch.word_ids
    inputs = torch.cat([arrays["word_embedding"][torch.from_numpy(flat_word)],
                        form_features[torch.from_numpy(flat_form)]], dim=1)
    lengths = [len(s) for s in SENT_WORDS]
    pieces = torch.split(inputs, lengths)
    hidden, _ = lstm(pad.pack_sequence(list(pieces), enforce_sorted=False))
    hidden, _ = pad.pad_packed_sequence(hidden, batch_first=True)
    hidden = torch.cat([hidden[i, :n] for i, n in enumerate(lengths)])
    logits = hidden @ arrays["output.weight"].T + arrays["output.bias"]
    b = network.bounds
    log_probs = torch.cat([torch.log_softmax(logits[:, b[k]:b[k + 1]], dim=1)
                           for k in range(network.n_heads)], dim=1)
    return log_probs, arrays


SENT_WORDS = [s.words for s in sentences()]


@pytest.mark.parametrize("feats", ["whole", "split"])
def test_every_head_matches_torch_with_the_same_weights(feats):
    torch = import_torch()
    network, vocab, batch = setup(feats, config=dict(CONFIG, dropout=0.0), seed=7)
    ours, _ = network.forward(batch)
    flat = np.empty_like(ours)
    flat[batch.flat_index] = ours
    theirs, arrays = torch_reference(torch, network, vocab, batch)
    b = network.bounds
    for k, head in enumerate(vocab.heads):
        np.testing.assert_allclose(flat[:, b[k]:b[k + 1]],
                                   theirs[:, b[k]:b[k + 1]].detach().numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=head.name)
        # each head's segment is a distribution of its own
        np.testing.assert_allclose(np.exp(flat[:, b[k]:b[k + 1]]).sum(axis=1), 1.0, rtol=1e-12)
    # the gradients of the summed loss, parameter by parameter
    loss, dense, sparse, _ = network.loss_and_gradients(batch, np.random.default_rng(0))
    flat_targets = np.empty_like(batch.targets)
    flat_targets[batch.flat_index] = batch.targets
    total = 0
    for k in range(network.n_heads):
        gold = torch.from_numpy(flat_targets[:, k])
        known = gold >= 0
        total = total - theirs[known, b[k] + gold[known]].mean()
    assert loss == pytest.approx(total.item(), rel=1e-10)
    total.backward()
    grads = dense_gradients(network, dense, sparse)
    for name, tensor in arrays.items():
        np.testing.assert_allclose(grads[name], tensor.grad.numpy(), rtol=1e-8, atol=1e-11,
                                   err_msg=name)


def test_infer_of_chosen_heads_equals_their_segments_of_forward():
    network, vocab, batch = setup(dtype=np.float32)
    full = network.forward(batch)[0]
    b = network.bounds
    for heads in ([0], [3], [1, 3], None):
        got = network.infer(batch, heads)
        want = full if heads is None else np.concatenate(
            [full[:, b[k]:b[k + 1]] for k in heads], axis=1)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        logits = network.infer(batch, heads, normalize=False)
        bounds = network.head_bounds(heads)
        for k in range(len(bounds) - 1):
            np.testing.assert_array_equal(logits[:, bounds[k]:bounds[k + 1]].argmax(axis=1),
                                          got[:, bounds[k]:bounds[k + 1]].argmax(axis=1))


def test_features_split_and_join_in_ud_order():
    assert split_features("_") == {}
    feats = "Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin"
    assert join_features(split_features(feats)) == feats
    assert join_features({"VerbForm": "Fin", "abbr": "Yes", "Case": "Nom"}) == (
        "abbr=Yes|Case=Nom|VerbForm=Fin")
    assert join_features({}) == "_"


def test_split_feature_heads_decode_to_feats_strings():
    sents = sentences()
    heads = build_heads(sents, ["feats"], "split")
    names = [h.name for h in heads]
    assert names == sorted(names, key=str.lower) and "feats:Number" in names
    assert all(h.labels[0] == ABSENT for h in heads)
    # scores that pick the gold label of every feature head decode to the gold FEATS
    gold = sents[0].columns["feats"]
    placed, start = [], 0
    for h in heads:
        placed.append((h, start, start + h.size))
        start += h.size
    scores = np.zeros((len(gold), start))
    for h, a, _ in placed:
        for k, label in enumerate(h.gold(sents[0].words, gold)):
            scores[k, a + h.index[label]] = 1.0
    assert decode_column("feats", placed, scores, sents[0].words) == gold


def test_heads_survive_their_metadata():
    sents = sentences()
    for feats in ("whole", "split"):
        heads = build_heads(sents, ["upos", "xpos", "feats", "lemma"], feats)
        again = heads_from_meta(heads_to_meta(heads))
        assert heads_to_meta(again) == heads_to_meta(heads)
        assert [type(h) for h in again] == [type(h) for h in heads]
    with pytest.raises(ValueError, match="unknown head kind"):
        heads_from_meta([{"kind": "crf?", "column": "upos", "labels": ["X"]}])
    # a model's tags are its first head's: heads out of order or twice a column are refused
    meta = heads_to_meta(build_heads(sents, ["upos", "xpos", "feats"], "whole"))
    split = heads_to_meta(build_heads(sents, ["feats"], "split"))
    for broken in (meta[::-1], meta[:1] * 2, [meta[2]] + split, split + [meta[0]]):
        with pytest.raises(ValueError, match="one a column in UPOS, XPOS, FEATS, LEMMA"):
            heads_from_meta(broken)
    upos = heads_to_meta(build_heads(sents, ["upos"], "whole"))
    assert len(heads_from_meta(upos + split)) == 1 + len(split)


def test_one_head_network_is_the_network_of_one_column():
    # a plain n_tags gives the one-head network models of one column always had
    network = Network(CONFIG, 10, 10, 5)
    assert network.n_heads == 1 and network.bounds.tolist() == [0, 5]
    assert Head("upos", ["A", "B"]).encode(["B", "_", "C"]).tolist() == [1, -1, -1]
