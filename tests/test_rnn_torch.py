"""Outputs, final states and gradients against PyTorch 2.13 with the same weights.

LSTM against torch.nn.LSTM, GRU against torch.nn.GRU, and the peephole LSTM against a
reference written here with torch autograd, one sequence at a time.
"""

import numpy as np
import pytest

from conftest import import_torch
from rnn_cases import CONFIGS, analytic, config_id, make_case

torch = import_torch()
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402


def peephole_reference(params, x, lengths, h0, c0, layers, bidirectional):
    """Peephole LSTM (Gers & Schmidhuber 2000) in plain torch ops, sequence by sequence."""
    directions = 2 if bidirectional else 1
    batch, steps, _ = x.shape
    hidden = h0.shape[2]
    outputs, h_n, c_n = [], [None] * (layers * directions), [None] * (layers * directions)
    for b in range(batch):
        seq = x[b, :lengths[b]]
        for layer in range(layers):
            per_direction = []
            for d in range(directions):
                k = f"l{layer}" + ("_reverse" if d else "")
                w_ih, w_hh = params[f"weight_ih_{k}"], params[f"weight_hh_{k}"]
                bias = params[f"bias_ih_{k}"] + params[f"bias_hh_{k}"]
                w_ci, w_cf, w_co = (params[f"weight_{g}_{k}"] for g in ("ci", "cf", "co"))
                s = layer * directions + d
                h, c = h0[s, b], c0[s, b]
                hs = []
                order = range(len(seq) - 1, -1, -1) if d else range(len(seq))
                for t in order:
                    a = w_ih @ seq[t] + w_hh @ h + bias
                    a_i, a_f, a_g, a_o = a.split(hidden)
                    i = torch.sigmoid(a_i + w_ci * c)
                    f = torch.sigmoid(a_f + w_cf * c)
                    c = f * c + i * torch.tanh(a_g)
                    h = torch.sigmoid(a_o + w_co * c) * torch.tanh(c)
                    hs.append(h)
                if d:
                    hs.reverse()
                per_direction.append(torch.stack(hs))
                h_n[s] = h_n[s] or []
                h_n[s].append(h)
                c_n[s] = c_n[s] or []
                c_n[s].append(c)
            seq = torch.cat(per_direction, dim=1)
        pad = torch.zeros(steps - len(seq), seq.shape[1], dtype=seq.dtype)
        outputs.append(torch.cat([seq, pad]))
    return (torch.stack(outputs), torch.stack([torch.stack(v) for v in h_n]),
            torch.stack([torch.stack(v) for v in c_n]))


def torch_run(config, rnn, case):
    """Outputs and gradients of the same loss computed by PyTorch."""
    cell, layers, bidirectional, lengths, hidden = config
    dtype = torch.float64 if rnn.dtype == np.float64 else torch.float32
    tensor = lambda a: torch.tensor(a, dtype=dtype, requires_grad=True)  # noqa: E731
    x, h0 = tensor(case["x"]), tensor(case["h0"])
    c0 = tensor(case["c0"]) if case["c0"] is not None else None
    if cell == "peephole":
        params = {name: tensor(value) for name, value in rnn.params.items()}
        out, h_n, c_n = peephole_reference(params, x, case["lengths"], h0, c0, layers,
                                           bidirectional)
        named = params
    else:
        module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(
            rnn.input_size, hidden, num_layers=layers, bidirectional=bidirectional,
            batch_first=True, dtype=dtype)
        module.load_state_dict({k: torch.tensor(v) for k, v in rnn.params.items()})
        packed = pack_padded_sequence(x, torch.tensor(case["lengths"]), batch_first=True,
                                      enforce_sorted=False)
        if cell == "lstm":
            out, (h_n, c_n) = module(packed, (h0, c0))
        else:
            out, h_n = module(packed, h0)
            c_n = None
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        named = dict(module.named_parameters())
    total = (out * torch.tensor(case["grad_out"])).sum() + \
        (h_n * torch.tensor(case["grad_h_n"])).sum()
    if c_n is not None:
        total = total + (c_n * torch.tensor(case["grad_c_n"])).sum()
    total.backward()
    values = {"out": out, "h_n": h_n}
    if c_n is not None:
        values["c_n"] = c_n
    grads = {name: p.grad for name, p in named.items()}
    grads["x"], grads["h0"] = x.grad, h0.grad
    if c0 is not None:
        grads["c0"] = c0.grad
    as_numpy = lambda d: {k: v.detach().numpy() for k, v in d.items()}  # noqa: E731
    return as_numpy(values), as_numpy(grads)


def compare(config, dtype, check):
    rnn, case = make_case(*config, dtype=dtype)
    (out, h_n, c_n), grads = analytic(rnn, case)
    ours = {"out": out, "h_n": h_n}
    if c_n is not None:
        ours["c_n"] = c_n
    ref_values, ref_grads = torch_run(config, rnn, case)
    assert set(grads) == set(ref_grads)
    for name in ours:
        check(ours[name], ref_values[name], name)
    for name in grads:
        check(grads[name], ref_grads[name], "grad " + name)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_float64_matches_torch(config):
    def check(ours, ref, name):
        assert ours.shape == ref.shape, name
        assert np.abs(ours - ref).max() <= 1e-10, name
    compare(config, np.float64, check)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_float32_matches_torch(config):
    def check(ours, ref, name):
        assert ours.dtype == np.float32, name
        scale = max(np.abs(ref).max(), 1e-6)
        assert np.abs(ours - ref).max() / scale <= 1e-4, name
    compare(config, np.float32, check)


# Hidden sizes past a vector's 8 or 16 lanes: the gate loops' vectorised bodies (the
# configurations above, H <= 3, run only their scalar ends), and the front end's H = 48
WIDE = [("gru", 1, True, [7, 3, 1], 17), ("gru", 2, True, [5, 9, 2, 6], 48),
        ("lstm", 1, True, [7, 3, 1], 17), ("peephole", 1, False, [6, 2], 33)]


@pytest.mark.parametrize("config", WIDE, ids=config_id)
def test_float32_matches_torch_past_a_vector(config):
    def check(ours, ref, name):
        assert ours.dtype == np.float32, name
        scale = max(np.abs(ref).max(), 1e-6)
        assert np.abs(ours - ref).max() / scale <= 1e-4, name
    compare(config, np.float32, check)


def test_state_dict_loads_into_torch_and_back():
    """seqtag's parameter names and shapes are torch's: no reshuffling either way."""
    from seqtag.rnn import RNN
    for cell, module_type in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)):
        rnn = RNN(cell, 6, 5, num_layers=2, bidirectional=True)
        module = module_type(6, 5, num_layers=2, bidirectional=True)
        assert list(module.state_dict()) == list(rnn.params)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in rnn.params.items()})
        back = RNN(cell, 6, 5, num_layers=2, bidirectional=True, seed=99)
        back.load_params({k: v.numpy() for k, v in module.state_dict().items()})
        for name in rnn.params:
            np.testing.assert_array_equal(back.params[name], rnn.params[name])
