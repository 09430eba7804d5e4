"""The tagger network's backward (embeddings, character BiLSTM, dropout, output layer)
against central finite differences, in float64."""

import numpy as np
import pytest

from gradcheck import assert_gradients_match, dense_gradients

from seqtag.corpus import Sentence
from seqtag.network import Batch, Network
from seqtag.vocab import Vocabulary

SENTENCES = [
    Sentence("The dog ate the apple .".split(), "DET NOUN VERB DET NOUN PUNCT".split()),
    Sentence("Cats sleep".split(), "NOUN VERB".split()),
    Sentence("Run !".split(), "VERB PUNCT".split()),
    Sentence("A very long-winded example , indeed".split(),
             "DET ADV ADJ NOUN PUNCT ADV".split()),
]
CONFIG = {"word_dim": 3, "char_dim": 2, "char_hidden": 2, "hidden": 3, "layers": 2}


def loss_fn(network, batch, word_ids, seed):
    # a fresh generator with the same seed draws the same dropout masks every time
    loss, dense, sparse, _ = network.loss_and_gradients(batch, np.random.default_rng(seed),
                                                        word_ids)
    return loss, dense, sparse


@pytest.mark.parametrize("cell, shape_dim", [("lstm", 0), ("peephole", 0), ("gru", 0),
                                             ("lstm", 2)])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_network_gradients_match_finite_differences(cell, dropout, shape_dim):
    vocab = Vocabulary.build(SENTENCES[:3], min_char_count=1)  # the 4th has unknown words
    network = Network(dict(CONFIG, cell=cell, dropout=dropout, shape_dim=shape_dim),
                      len(vocab.words),
                      len(vocab.chars), len(vocab.tags), seed=3, dtype=np.float64)
    batch = Batch([s.words for s in SENTENCES], vocab, [s.tags for s in SENTENCES])
    word_ids = batch.word_ids.copy()
    word_ids[0] = 1  # a word replaced by <unk>, as word dropout does
    _, dense, sparse = loss_fn(network, batch, word_ids, seed=5)
    # float64 rounding in the loss (~1e-16 / eps) bounds what differences can resolve
    assert_gradients_match(network.arrays(), dense_gradients(network, dense, sparse),
                           lambda: loss_fn(network, batch, word_ids, 5)[0])
