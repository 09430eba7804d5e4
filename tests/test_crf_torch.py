"""seqtag's CRF against a PyTorch CRF (bench/torch_crf.py, autograd for its gradients) with
the same weights: log-likelihoods, every gradient and the Viterbi paths, on packed batches
of EWT-like lengths, float64 and float32."""

import importlib.util

import numpy as np
import pytest

from conftest import REPO_ROOT, import_torch
from seqtag import crf
from seqtag.packing import Packing

torch = import_torch()
spec = importlib.util.spec_from_file_location("torch_crf", REPO_ROOT / "bench" / "torch_crf.py")
torch_crf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_crf)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_crf_matches_pytorch(dtype):
    rng = np.random.default_rng(7)
    C = 9
    lengths = [17, 3, 40, 1, 25, 25, 8]
    packing = Packing(lengths)
    emissions = (rng.standard_normal((packing.n_rows, C)) * 2).astype(dtype)
    transitions = rng.standard_normal((C, C)).astype(dtype)
    start, end = rng.standard_normal((2, C)).astype(dtype)
    tags = rng.integers(0, C, packing.n_rows)
    loss, g_em, g_tr, g_st, g_en = crf.negative_log_likelihood(
        emissions, packing, tags, transitions, start, end)
    paths, _ = crf.viterbi(emissions, packing, transitions, start, end)

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    t_em = torch.tensor(packing.unpack(emissions), dtype=tdtype, requires_grad=True)
    t_tags = torch.tensor(packing.unpack(tags))
    mask = torch.tensor(packing.unpack(np.ones(packing.n_rows, dtype=bool)))
    t_params = [torch.tensor(a, requires_grad=True) for a in (transitions, start, end)]
    t_loss = -torch_crf.log_likelihood(t_em, t_tags, mask, *t_params).sum()
    t_loss.backward()
    tol = 1e-10 if dtype == np.float64 else 2e-4
    assert loss == pytest.approx(t_loss.item(), rel=tol)
    np.testing.assert_allclose(g_em, packing.pack(t_em.grad.numpy()), atol=tol)
    for ours, theirs in zip((g_tr, g_st, g_en), t_params):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), atol=tol * 10)
    t_paths = torch_crf.viterbi(t_em.detach(), mask, *[p.detach() for p in t_params])
    ours = packing.unpack(paths)
    for b, length in enumerate(lengths):
        assert list(ours[b, :length]) == t_paths[b]
