"""Configurations shared by the gradient and PyTorch parity tests of the recurrent core."""

import itertools

import numpy as np

from seqtag.rnn import RNN

# (lengths, hidden) pairs: ragged batch, a single one-step sequence, a ragged batch with
# hidden size 1, and equal lengths
SHAPES = [([7, 3, 1], 3), ([1], 3), ([2, 5, 1, 4], 1), ([4, 4], 2)]
CELLS = ["lstm", "peephole", "gru"]
CONFIGS = [
    (cell, layers, bidirectional, lengths, hidden)
    for cell, layers, bidirectional, (lengths, hidden) in itertools.product(
        CELLS, [1, 2], [False, True], SHAPES)
]


def config_id(config):
    cell, layers, bidirectional, lengths, hidden = config
    return f"{cell}-L{layers}-{'bi' if bidirectional else 'uni'}-len{lengths}-H{hidden}"


def make_case(cell, layers, bidirectional, lengths, hidden, dtype=np.float64, seed=0,
              input_size=4):
    """A layer with random weights, and random inputs, initial states and output gradients."""
    rnn = RNN(cell, input_size, hidden, num_layers=layers, bidirectional=bidirectional,
              dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    lengths = np.array(lengths)
    batch, steps = len(lengths), int(lengths.max())
    state_shape = (layers * rnn.num_directions, batch, hidden)
    case = {
        "x": rng.standard_normal((batch, steps, input_size)).astype(dtype),
        "lengths": lengths,
        "h0": rng.standard_normal(state_shape).astype(dtype),
        "c0": rng.standard_normal(state_shape).astype(dtype) if cell != "gru" else None,
        "grad_out": rng.standard_normal((batch, steps, rnn.output_size)).astype(dtype),
        "grad_h_n": rng.standard_normal(state_shape).astype(dtype),
        "grad_c_n": rng.standard_normal(state_shape).astype(dtype) if cell != "gru" else None,
    }
    # padding carries no gradient: out is zero there whatever the weights
    valid = np.arange(steps)[None, :, None] < lengths[:, None, None]
    case["grad_out"] *= valid
    return rnn, case


def loss(rnn, case):
    """The scalar whose gradient backward computes: <out, g_out> + <h_n, g_h> + <c_n, g_c>."""
    out, h_n, c_n, _ = rnn.forward(case["x"], case["lengths"], case["h0"], case["c0"])
    total = np.sum(out * case["grad_out"]) + np.sum(h_n * case["grad_h_n"])
    if c_n is not None:
        total += np.sum(c_n * case["grad_c_n"])
    return total


def analytic(rnn, case):
    """Gradients of loss() by seqtag's backward: {name: array} for params and inputs."""
    out, h_n, c_n, cache = rnn.forward(case["x"], case["lengths"], case["h0"], case["c0"])
    grad_x, grads, grad_h0, grad_c0 = rnn.backward(cache, case["grad_out"], case["grad_h_n"],
                                                   case["grad_c_n"])
    grads = dict(grads)
    grads["x"] = grad_x
    grads["h0"] = grad_h0
    if grad_c0 is not None:
        grads["c0"] = grad_c0
    return (out, h_n, c_n), grads
