"""Gradients against central finite differences, for the network tests."""

import numpy as np


def dense_gradients(network, dense, sparse):
    """{name: full gradient} from a backward's dense gradients and sparse embedding rows."""
    grads = dict(dense)
    for name, (ids, rows) in sparse.items():
        full = np.zeros_like(network.arrays()[name])
        full[ids] = rows
        grads[name] = full
    return grads


def assert_gradients_match(params, grads, loss, samples=40, eps=1e-6, atol=1e-9):
    """Every element of small tensors of params ({name: array}, changed in place and put
    back), a sample of `samples` of larger ones: loss() moved by +-eps against grads.
    atol: what float64 rounding of the loss resolves (~|loss| * 1e-16 / eps)."""
    assert set(grads) == set(params)
    rng = np.random.default_rng(0)
    for name, array in params.items():
        flat = array.reshape(-1)
        picks = (range(flat.size) if flat.size <= samples
                 else rng.choice(flat.size, samples, replace=False))
        numeric, analytic = [], []
        for i in picks:
            saved = flat[i]
            flat[i] = saved + eps
            up = loss()
            flat[i] = saved - eps
            down = loss()
            flat[i] = saved
            numeric.append((up - down) / (2 * eps))
            analytic.append(grads[name].reshape(-1)[i])
        numeric, analytic = np.array(numeric), np.array(analytic)
        scale = max(np.abs(numeric).max(), np.abs(analytic).max(), 1e-8)
        assert np.abs(numeric - analytic).max() <= 1e-6 * scale + atol, name
