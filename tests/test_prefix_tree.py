"""The character BiLSTM over a tree of prefixes (seqtag._core.prefix_tree,
_core.lstm_tree_infer, RNN.final_states): each distinct beginning (forward) or ending
(backward) of a batch's words computed once, with the values of the packed batch.

Exact equality with RNN.forward_projected holds wherever both run fused steps: each row
of a fused step is computed on its own, and inference cuts the AVX2 kernel's big steps
into calls of whole rows (seqtag_lstm_infer_step_f32) rather than leaving them to BLAS.
Run once per kind of fused kernel this CPU has.
"""

import numpy as np
import pytest

import seqtag.runtime
from seqtag import _core
from seqtag.network import Network
from seqtag.packing import Packing
from seqtag.rnn import RNN
from conftest import fused_kernel_fixture

needs_fused_rnn = pytest.mark.skipif(
    not seqtag.runtime.fused_step_enabled(),
    reason="no AVX2 or AVX-512 on this CPU (or a build without them), or "
           "SEQTAG_FUSED_STEP=0: the tree is only walked by the fused kernels")

WORDS = ["the", "then", "there", "these", "they", "t", "he", "she", "shelf", "a", "an",
         "and", "sand", "band", "bandana", "ban", "banana", "Bandana", "xylophone", "and",
         "e", "ee", "eee", "e"]


kernels = fused_kernel_fixture()  # each test once per kind of fused kernel


def char_ids(words, alphabet):
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    ids = np.array([alphabet[c] for w in words for c in w], dtype=np.int64)
    return lengths, ids


def tree(ids, lengths, order, reverse):
    """prefix_tree's nodes, reading the sequences in `order`, or sorted (None): then also
    the order it sorted them in."""
    n, longest, total = len(lengths), int(lengths.max()), int(lengths.sum())
    node_id = np.full(total, -7, dtype=np.int64)
    node_parent = np.full(total, -7, dtype=np.int64)
    depth_start = np.empty(longest + 1, dtype=np.int64)
    seq_node = np.empty(n, dtype=np.int64)
    order = np.full(n, -1, dtype=np.int64) if order is None else \
        np.array(order, dtype=np.int64)
    nodes = _core.prefix_tree(ids, np.cumsum(lengths) - lengths, lengths, order, reverse,
                              node_id, node_parent, depth_start, seq_node,
                              np.empty(max(2 * longest, n), dtype=np.int64),
                              sort=bool((order == -1).all()))
    return nodes, node_id[:nodes], node_parent[:nodes], depth_start, seq_node, order


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("sort", [True, False])
def test_every_sequence_is_its_path_from_the_root(reverse, sort):
    alphabet = {c: i for i, c in enumerate(sorted(set("".join(WORDS))))}
    lengths, ids = char_ids(WORDS, alphabet)
    keys = [w[::-1] if reverse else w for w in WORDS]
    given = None if sort else np.random.default_rng(3).permutation(len(WORDS))
    nodes, node_id, node_parent, depth_start, seq_node, order = tree(ids, lengths, given,
                                                                     reverse)
    if sort:  # the alphabet's ids follow the characters' order: Python's sort of the keys
        assert order.tolist() == sorted(range(len(WORDS)), key=keys.__getitem__)
    assert depth_start[0] == 0 and depth_start[-1] == nodes
    inverse = {i: c for c, i in alphabet.items()}
    for w, word in enumerate(WORDS):
        path, node = [], seq_node[w]
        while node >= 0:
            depth = np.searchsorted(depth_start, node, side="right") - 1
            assert len(path) == len(word) - 1 - depth  # one step up per depth
            path.append(inverse[node_id[node]])
            node = node_parent[node]
        read = "".join(reversed(path))
        assert read == (word[::-1] if reverse else word)
    prefixes = {k[:d] for k in keys for d in range(1, len(k) + 1)}
    if sort:  # sorted, the words share every prefix they have in common
        assert nodes == len(prefixes)
    else:
        assert len(prefixes) <= nodes <= int(lengths.sum())


def test_prefix_tree_refuses_what_it_cannot_read():
    lengths = np.array([2, 1], dtype=np.int64)
    ids = np.array([0, 1, 2], dtype=np.int64)
    with pytest.raises(ValueError, match="sequence bounds"):
        tree(ids, np.array([2, 0], dtype=np.int64), [0, 1], False)
    for order in ([0, 2], [0, 0], [1, 1]):  # a sequence read twice makes too many nodes
        with pytest.raises(ValueError, match="order must be a permutation"):
            tree(ids, lengths, order, False)
    with pytest.raises(ValueError, match="sequence bounds"):  # no overflow past the ids
        _core.prefix_tree(ids, np.array([2**63 - 1, 0]), lengths, np.array([0, 1]), False,
                          *(np.empty(3, dtype=np.int64),) * 2, np.empty(3, dtype=np.int64),
                          np.empty(2, dtype=np.int64), np.empty(4, dtype=np.int64))
    with pytest.raises(ValueError, match="buffer sizes"):
        _core.prefix_tree(ids, np.array([0, 2]), lengths, np.array([0, 1]), False,
                          np.empty(3, dtype=np.int64), np.empty(3, dtype=np.int64),
                          np.empty(2, dtype=np.int64), np.empty(2, dtype=np.int64),
                          np.empty(2, dtype=np.int64))  # depth_start too short for length 2


def random_rnn(hidden, seed):
    return RNN("lstm", 8, hidden, bidirectional=True, seed=seed, threads=2)


def packed_final(rnn, projections, ids, lengths):
    packing = Packing(lengths)
    return rnn.forward_projected(projections, ids[packing.flat_index()], packing)[1]


@needs_fused_rnn
@pytest.mark.parametrize("hidden", [16, 20, 64])
def test_final_states_are_the_packed_batch_s(hidden):
    alphabet = {c: i for i, c in enumerate(sorted(set("".join(WORDS))))}
    rnn = random_rnn(hidden, 5)
    table = np.random.default_rng(1).standard_normal((len(alphabet), 8)).astype(np.float32)
    projections = [rnn.input_projection(table, d) for d in range(2)]
    lengths, ids = char_ids(WORDS, alphabet)
    want = packed_final(rnn, projections, ids, lengths)
    got = rnn.final_states(projections, ids, lengths)
    assert got.shape == (2, len(WORDS), hidden)
    np.testing.assert_array_equal(got, want)
    # the packed weights kept by the caller give what packing them here gives
    np.testing.assert_array_equal(
        rnn.final_states(projections, ids, lengths, packed=rnn.pack_recurrent()), want)


@needs_fused_rnn
def test_final_states_of_many_words_are_the_packed_batch_s():
    """Hundreds of words: steps of hundreds of rows (the AVX2 kernel's in pieces), still
    the packed batch's values bit for bit."""
    rng = np.random.default_rng(7)
    letters = "abcdefghij"
    words = sorted({"".join(rng.choice(list(letters), rng.integers(1, 12)))
                    for _ in range(900)})
    alphabet = {c: i for i, c in enumerate(letters)}
    rnn = random_rnn(64, 9)
    table = rng.standard_normal((len(letters), 8)).astype(np.float32)
    projections = [rnn.input_projection(table, d) for d in range(2)]
    lengths, ids = char_ids(words, alphabet)
    want = packed_final(rnn, projections, ids, lengths)
    got = rnn.final_states(projections, ids, lengths)
    most = _core.lstm_step_call_rows(64)
    assert most is None or len(lengths) > most  # AVX2: the first step is cut into pieces
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("words", [WORDS, ["a", "ab", "b", "ba"]])
def test_final_states_elsewhere_are_forward_projected_s(words):
    """float64, a GRU, two layers, every product on BLAS, or fewer than PACK_MIN_ROWS
    characters (a packed batch's steps then take BLAS's product, whose rounding depends
    on a step's row count): the packed batch itself, bit for bit."""
    alphabet = {c: i for i, c in enumerate(sorted(set("".join(WORDS))))}
    lengths, ids = char_ids(words, alphabet)
    table = np.random.default_rng(2).standard_normal((len(alphabet), 8))
    rnns = [RNN("lstm", 8, 12, bidirectional=True, seed=1, dtype=np.float64),
            RNN("gru", 8, 12, bidirectional=True, seed=1),
            RNN("lstm", 8, 12, num_layers=2, bidirectional=True, seed=1),
            RNN("lstm", 8, 12, bidirectional=True, seed=1)]
    for blas in (False, True):
        if blas:
            seqtag.runtime.set_fused_step(False)
        for rnn in rnns:
            projections = [rnn.input_projection(table.astype(rnn.dtype), d) for d in range(2)]
            np.testing.assert_array_equal(rnn.final_states(projections, ids, lengths),
                                          packed_final(rnn, projections, ids, lengths))


@needs_fused_rnn
def test_final_states_refuse_bad_input():
    rnn = random_rnn(16, 1)
    projections = [rnn.input_projection(np.ones((3, 8), dtype=np.float32), d)
                   for d in range(2)]
    with pytest.raises(ValueError, match="lengths must be >= 1 and add up to the 3 ids"):
        rnn.final_states(projections, [0, 1, 2], [3, 0])
    with pytest.raises(ValueError, match="lengths must be >= 1 and add up to the 3 ids"):
        rnn.final_states(projections, [0, 1, 2], [2])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 3\)"):
        rnn.final_states(projections, [0, 1, 3] * 6, [18])
    with pytest.raises(ValueError, match="lengths and ids must be 1-D integer arrays"):
        rnn.final_states(projections, [0.0, 1.0, 2.0], [3])
    gru = RNN("gru", 8, 16, bidirectional=True, seed=1)  # the packed batch's path checks too
    with pytest.raises(ValueError, match="lengths must be >= 1 and add up to the 3 ids"):
        gru.final_states([gru.input_projection(np.ones((3, 8), dtype=np.float32), d)
                          for d in range(2)], [0, 1, 2], [2])


def test_lstm_tree_infer_refuses_a_parent_outside_the_depth_before():
    H = 4
    xproj = np.zeros((2, 4 * H), dtype=np.float32)
    w_hh = np.zeros((4 * H, H), dtype=np.float32)
    h, c = np.empty((3, H), dtype=np.float32), np.empty((3, H), dtype=np.float32)
    work = (np.empty((2, H), dtype=np.float32), np.empty((2, 4 * H), dtype=np.float32))
    ids = np.array([0, 1, 1], dtype=np.int64)
    depth_start = np.array([0, 2, 3], dtype=np.int64)
    _core.lstm_tree_infer(xproj, ids, np.array([-1, -1, 1]), depth_start, w_hh, h, c, *work)
    for parent in ([-1, -1, 2], [-1, 0, 0], [0, -1, 1]):  # itself; a root's; a root with one
        with pytest.raises(ValueError, match="node_parent out of range"):
            _core.lstm_tree_infer(xproj, ids, np.array(parent), depth_start, w_hh, h, c,
                                  *work)
    with pytest.raises(ValueError, match="depth_start must go from 0 to the nodes"):
        _core.lstm_tree_infer(xproj, ids, np.array([-1, -1, 1]), np.array([0]), w_hh, h, c,
                              *work)  # no depths, three nodes: none would be computed


@needs_fused_rnn
def test_a_network_s_new_words_take_the_tree_and_keep_their_values():
    """Network._word_inputs (the first layer's inputs of the memo's new forms): the word
    embedding and the character BiLSTM's final states, over the tree, as the packed
    character batch (seqtag.network.encode_chars + forward_projected) gives them."""
    from seqtag.corpus import Sentence
    from seqtag.network import encode_chars
    from seqtag.vocab import Vocabulary
    words = ["the", "then", "there", "band", "bandana", "sand"]
    vocab = Vocabulary.build([Sentence(words, ["X"] * len(words))], min_char_count=1)
    net = Network({"shape_dim": 0}, len(vocab.words), len(vocab.chars), 1, seed=0)
    forms = ["the", "then", "There", "bandanas", "sand", "unseen", "th"]
    word_ids = np.array([vocab.word_index.get(f, 1) for f in forms], dtype=np.int64)
    packing, chars = encode_chars(forms, vocab)
    h_n = net.char_rnn.forward_projected(net._char_projections(), chars, packing)[1]
    want = np.concatenate([net.word_embedding[word_ids], h_n[0], h_n[1]], axis=1)
    got = net._word_inputs(forms, word_ids, vocab, None, None)
    np.testing.assert_array_equal(got, want)
