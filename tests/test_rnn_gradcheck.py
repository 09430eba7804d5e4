"""Backward of every cell against central finite differences, in float64."""

import numpy as np
import pytest

from rnn_cases import CONFIGS, analytic, config_id, loss, make_case

EPS = 1e-6


def numeric_gradient(rnn, case, array):
    """Central differences of loss() w.r.t. every element of `array` (perturbed in place)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + EPS
        up = loss(rnn, case)
        array[index] = saved - EPS
        down = loss(rnn, case)
        array[index] = saved
        grad[index] = (up - down) / (2 * EPS)
    return grad


def relative_error(a, b):
    scale = max(np.abs(a).max(), np.abs(b).max(), 1e-12)
    return np.abs(a - b).max() / scale


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_gradients_match_finite_differences(config):
    rnn, case = make_case(*config)
    _, grads = analytic(rnn, case)
    targets = dict(rnn.params)
    targets["x"] = case["x"]
    targets["h0"] = case["h0"]
    if case["c0"] is not None:
        targets["c0"] = case["c0"]
    assert set(grads) == set(targets)
    for name, array in targets.items():
        numeric = numeric_gradient(rnn, case, array)
        if name == "x":  # padding steps do not exist for the layer: no gradient there
            valid = np.arange(array.shape[1])[None, :, None] < case["lengths"][:, None, None]
            numeric *= valid
        assert relative_error(grads[name], numeric) <= 1e-6, name
