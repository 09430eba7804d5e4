"""The optimisers against their textbook formulas."""

import numpy as np
import pytest

from seqtag.optim import SGD, Adam, clip_by_global_norm, global_norm


def reference_adam(p, m, v, g, step, lr, b1, b2, eps):
    """Kingma & Ba's Adam in the form of their section 2's last paragraph (the bias
    corrections folded into the step size, so eps meets the uncorrected sqrt(v))."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1 ** step), v / (1 - b2 ** step)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - b2 ** step)), m, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_dense_and_sparse_rows_follow_the_formula(dtype):
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((4, 3)).astype(dtype),
              "emb": rng.standard_normal((6, 2)).astype(dtype)}
    ref = {k: (v.astype(np.float64), np.zeros_like(v, np.float64), np.zeros_like(v, np.float64))
           for k, v in params.items()}
    adam = Adam(params, lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    for step in range(1, 6):
        g = rng.standard_normal((4, 3)).astype(dtype)
        ids = np.array(sorted(rng.choice(6, 3, replace=False)))
        rows = rng.standard_normal((3, 2)).astype(dtype)
        adam.step({"w": g}, {"emb": (ids, rows)})
        p, m, v = ref["w"]
        ref["w"] = reference_adam(p, m, v, g.astype(np.float64), step, 0.01, 0.9, 0.99, 1e-8)
        p, m, v = ref["emb"]
        p, m, v = p.copy(), m.copy(), v.copy()
        # lazy Adam: only the used rows move, with the global step's bias correction
        new_p, new_m, new_v = reference_adam(p[ids], m[ids], v[ids], rows.astype(np.float64),
                                             step, 0.01, 0.9, 0.99, 1e-8)
        p[ids], m[ids], v[ids] = new_p, new_m, new_v
        ref["emb"] = (p, m, v)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name in params:
        np.testing.assert_allclose(params[name], ref[name][0], rtol=tol, atol=tol)


def test_dense_row_adam_moves_every_row_as_the_formula_says():
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((6, 2))
    adam = Adam({"emb": emb}, lr=0.01, betas=(0.9, 0.99), eps=1e-8, dense_rows=True)
    p, m, v = emb.copy(), np.zeros_like(emb), np.zeros_like(emb)
    for step in range(1, 6):
        ids = np.array(sorted(rng.choice(6, 2, replace=False)))
        rows = rng.standard_normal((2, 2))
        adam.step({}, {"emb": (ids, rows)})
        g = np.zeros_like(emb)
        g[ids] = rows  # a row a batch did not use has gradient 0, and still moves
        p, m, v = reference_adam(p, m, v, g, step, 0.01, 0.9, 0.99, 1e-8)
    np.testing.assert_allclose(emb, p, rtol=1e-12, atol=1e-12)


def test_adam_refuses_parameters_it_cannot_update_in_place():
    with pytest.raises(ValueError, match="must be C-contiguous"):
        Adam({"w": np.zeros((4, 4), np.float32)[:, ::2]})


def test_sgd_and_clipping():
    params = {"w": np.ones(3, np.float32), "emb": np.ones((3, 2), np.float32)}
    dense = {"w": np.array([3.0, 0.0, 0.0], np.float32)}
    sparse = {"emb": (np.array([1]), np.array([[0.0, 4.0]], np.float32))}
    assert global_norm(dense, sparse) == pytest.approx(5.0)
    norm = clip_by_global_norm(dense, sparse, 1.0)
    assert norm == pytest.approx(5.0)
    assert global_norm(dense, sparse) == pytest.approx(1.0, rel=1e-5)
    SGD(params, lr=0.5).step(dense, sparse)
    np.testing.assert_allclose(params["w"], [1 - 0.5 * 0.6, 1, 1], rtol=1e-5)
    np.testing.assert_allclose(params["emb"], [[1, 1], [1, 1 - 0.5 * 0.8], [1, 1]], rtol=1e-5)


def test_adam_on_two_threads_gives_the_same_bits_as_on_one():
    """threads=2 splits the arrays between two threads; each array is still updated by one
    kernel call, so the result is the same bit for bit."""
    rng = np.random.default_rng(4)
    shapes = {"a": (300, 40), "b": (50,), "c": (7, 9), "d": (128, 64), "emb": (40, 8)}
    start = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    runs = []
    for threads in (1, 2):
        params = {k: v.copy() for k, v in start.items()}
        adam = Adam(params, lr=0.01, threads=threads)
        grads = np.random.default_rng(5)
        for _ in range(4):
            dense = {k: grads.standard_normal(shapes[k]).astype(np.float32)
                     for k in ("a", "b", "c", "d")}
            ids = np.array(sorted(grads.choice(40, 6, replace=False)))
            sparse = {"emb": (ids, grads.standard_normal((6, 8)).astype(np.float32))}
            adam.step(dense, sparse)
        runs.append((params, adam.m, adam.v))
    for name in shapes:
        for one, two in zip(runs[0], runs[1]):
            np.testing.assert_array_equal(one[name], two[name], err_msg=name)
    assert not np.array_equal(runs[0][0]["a"], start["a"])  # the weights did move


def test_the_weight_average_on_two_threads_gives_the_same_bits_as_on_one():
    """The training's moving average of the weights (TrainingState.update_average) shares
    its pass between the threads as Adam does: each array still one kernel call."""
    from seqtag.train import TrainingState
    from test_network import CONFIG, SENTENCES
    from seqtag.network import Network
    from seqtag.vocab import Vocabulary

    vocab = Vocabulary.build(SENTENCES, min_char_count=1)
    averages = []
    for threads in (1, 2):
        network = Network(CONFIG, len(vocab.words), len(vocab.chars), len(vocab.tags), seed=2)
        state = TrainingState(network, vocab, {"threads": threads}, "fingerprint")
        moves = np.random.default_rng(3)
        for _ in range(3):
            for value in state.params.values():
                value += moves.standard_normal(value.shape).astype(value.dtype)
            state.optimizer.steps += 1
            state.update_average()
        averages.append(state.average)
    for name in averages[0]:
        np.testing.assert_array_equal(averages[0][name], averages[1][name], err_msg=name)
        assert not np.array_equal(averages[0][name], state.params[name])  # it averages
