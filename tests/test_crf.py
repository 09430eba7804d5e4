"""The compiled linear-chain CRF (csrc/crf.pxi through seqtag.crf) against brute-force
enumeration of every tag sequence, finite differences and brute-force Viterbi, on packed
batches of several lengths in float64 and float32."""

import itertools

import numpy as np
import pytest

from seqtag import crf
from seqtag.packing import Packing

LENGTHS = [3, 1, 4, 2, 4]


def make_case(C, lengths=LENGTHS, seed=0, dtype=np.float64, scale=1.5):
    rng = np.random.default_rng(seed)
    packing = Packing(lengths)
    emissions = (rng.standard_normal((packing.n_rows, C)) * scale).astype(dtype)
    transitions = (rng.standard_normal((C, C)) * scale).astype(dtype)
    start = (rng.standard_normal(C) * scale).astype(dtype)
    end = (rng.standard_normal(C) * scale).astype(dtype)
    tags = rng.integers(0, C, packing.n_rows)
    return packing, emissions, transitions, start, end, tags


def sequence_rows(packing, seq):
    """Packed rows of sequence seq (caller's order), step by step."""
    rows = np.flatnonzero(packing.seq_of_row == seq)
    return rows[np.argsort(packing.step_of_row[rows])]


def path_score(em, transitions, start, end, path):
    score = start[path[0]] + end[path[-1]] + sum(em[t, y] for t, y in enumerate(path))
    return score + sum(transitions[a, b] for a, b in zip(path, path[1:]))


def all_paths(em, transitions, start, end, allowed=None):
    """{path: score} of every tag sequence (every allowed one, with allowed masks)."""
    C = em.shape[1]
    out = {}
    for path in itertools.product(range(C), repeat=len(em)):
        if allowed is not None:
            trans_ok, start_ok, end_ok = allowed
            if not (start_ok[path[0]] and end_ok[path[-1]]
                    and all(trans_ok[a, b] for a, b in zip(path, path[1:]))):
                continue
        out[path] = path_score(em, transitions, start, end, path)
    return out


@pytest.mark.parametrize("C", [1, 2, 4])
def test_log_partition_and_marginals_match_enumeration(C):
    packing, emissions, transitions, start, end, tags = make_case(C)
    log_z, _ = crf.log_partition(emissions, packing, transitions, start, end)
    marg = crf.marginals(emissions, packing, transitions, start, end)
    gold = crf.sequence_scores(emissions, packing, tags, transitions, start, end)
    for seq in range(packing.batch):
        rows = sequence_rows(packing, seq)
        scores = all_paths(emissions[rows], transitions, start, end)
        values = np.array(list(scores.values()))
        expected = np.log(np.exp(values - values.max()).sum()) + values.max()
        assert log_z[seq] == pytest.approx(expected, abs=1e-10)
        assert gold[seq] == pytest.approx(scores[tuple(tags[rows])], abs=1e-10)
        probs = np.exp(values - expected)
        expected_marg = np.zeros((len(rows), C))
        for p, path in zip(probs, scores):
            expected_marg[np.arange(len(rows)), list(path)] += p
        np.testing.assert_allclose(marg[rows], expected_marg, atol=1e-12)


def test_gradients_match_finite_differences():
    C = 3
    packing, emissions, transitions, start, end, tags = make_case(C, seed=1)
    weight = 0.7

    def loss(em, tr, st, en):
        return crf.negative_log_likelihood(em, packing, tags, tr, st, en, weight)[0]

    _, g_em, g_tr, g_st, g_en = crf.negative_log_likelihood(
        emissions, packing, tags, transitions, start, end, weight)
    params = [emissions, transitions, start, end]
    for k, grad in enumerate([g_em, g_tr, g_st, g_en]):
        numeric = np.zeros_like(grad)
        flat = params[k].reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + 1e-6
            up = loss(*params)
            flat[i] = keep - 1e-6
            down = loss(*params)
            flat[i] = keep
            numeric.reshape(-1)[i] = (up - down) / 2e-6
        np.testing.assert_allclose(grad, numeric, atol=1e-7, rtol=1e-6)


def test_loss_is_the_negative_log_likelihood_of_the_gold_tags():
    packing, emissions, transitions, start, end, tags = make_case(3, seed=2)
    loss = crf.negative_log_likelihood(emissions, packing, tags, transitions, start, end)[0]
    log_z, _ = crf.log_partition(emissions, packing, transitions, start, end)
    gold = crf.sequence_scores(emissions, packing, tags, transitions, start, end)
    assert loss == pytest.approx(float(np.sum(log_z - gold)), abs=1e-10)
    assert loss > 0


@pytest.mark.parametrize("C", [1, 3, 4])
def test_viterbi_matches_enumeration(C):
    packing, emissions, transitions, start, end, _ = make_case(C, seed=3)
    tags, best = crf.viterbi(emissions, packing, transitions, start, end)
    for seq in range(packing.batch):
        rows = sequence_rows(packing, seq)
        scores = all_paths(emissions[rows], transitions, start, end)
        path = max(scores, key=scores.get)
        assert tuple(tags[rows]) == path
        assert best[seq] == pytest.approx(scores[path], abs=1e-10)


def test_constrained_viterbi_matches_enumeration_of_allowed_sequences():
    C = 4
    rng = np.random.default_rng(4)
    packing, emissions, transitions, start, end, _ = make_case(C, seed=4)
    allowed = rng.random((C, C)) < 0.6
    allowed[:, 0] = allowed[0, :] = True      # tag 0 ("O") always reachable
    allowed_start = np.array([True, False, True, False])
    allowed_end = np.array([True, True, False, True])
    tags, best = crf.viterbi(emissions, packing, transitions, start, end,
                             (allowed, allowed_start, allowed_end))
    unconstrained, _ = crf.viterbi(emissions, packing, transitions, start, end)
    for seq in range(packing.batch):
        rows = sequence_rows(packing, seq)
        scores = all_paths(emissions[rows], transitions, start, end,
                           (allowed, allowed_start, allowed_end))
        path = max(scores, key=scores.get)
        assert tuple(tags[rows]) == path
        assert best[seq] == pytest.approx(scores[path], abs=1e-10)
    assert not np.array_equal(tags, unconstrained)  # the masks did change something here


def test_float32_agrees_with_float64():
    packing, emissions, transitions, start, end, tags = make_case(5, lengths=[30, 7, 19, 1],
                                                                   seed=5, scale=3.0)
    as32 = [a.astype(np.float32) for a in (emissions, transitions, start, end)]
    out64 = crf.negative_log_likelihood(emissions, packing, tags, transitions, start, end)
    out32 = crf.negative_log_likelihood(as32[0], packing, tags, *as32[1:])
    assert out32[0] == pytest.approx(out64[0], rel=1e-5)
    for a, b in zip(out32[1:], out64[1:]):
        assert a.dtype == np.float32
        # log-space sums of scores ~100 carry float32's ~1e-5 absolute rounding
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)
    assert np.array_equal(crf.viterbi(as32[0], packing, *as32[1:])[0],
                          crf.viterbi(emissions, packing, transitions, start, end)[0])


def test_large_scores_do_not_overflow():
    packing, emissions, transitions, start, end, tags = make_case(3, seed=6)
    for dtype in (np.float32, np.float64):
        big = [(a * 200).astype(dtype) for a in (emissions, transitions, start, end)]
        loss, *grads = crf.negative_log_likelihood(big[0], packing, tags, *big[1:])
        assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads)
        marg = crf.marginals(big[0], packing, *big[1:])
        np.testing.assert_allclose(marg.sum(axis=1), 1, rtol=1e-3 if dtype == np.float32 else 1e-9)


def test_bad_arguments_are_refused():
    packing, emissions, transitions, start, end, tags = make_case(3)
    with pytest.raises(ValueError, match="emissions must be"):
        crf.log_partition(emissions[:-1], packing, transitions, start, end)
    with pytest.raises(ValueError, match="transitions must be"):
        crf.log_partition(emissions, packing, transitions[:2], start, end)
    with pytest.raises(ValueError, match="must be float64"):
        crf.log_partition(emissions, packing, transitions.astype(np.float32), start, end)
    with pytest.raises(ValueError, match="tag_ids must be"):
        crf.negative_log_likelihood(emissions, packing, tags + 3, transitions, start, end)
