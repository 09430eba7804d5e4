"""A linear-chain CRF in plain PyTorch, batch-first and padded: the reference that
tests/test_crf_torch.py holds seqtag's compiled CRF to (same weights) and that
bench/spans.py puts on top of its PyTorch BiLSTM.  Same parametrisation as seqtag.crf:
transitions (C, C) [from, to], start and end (C,).
"""

import torch


def log_likelihood(emissions, tags, mask, transitions, start, end):
    """(B,) log p(tags) of each sequence.  emissions (B, T, C), tags (B, T) long, mask
    (B, T) bool (True on each sequence's first lengths[b] steps)."""
    batch, steps, _ = emissions.shape
    arange = torch.arange(batch)
    score = start[tags[:, 0]] + emissions[arange, 0, tags[:, 0]]
    alpha = start + emissions[:, 0]
    for t in range(1, steps):
        on = mask[:, t]
        step_score = transitions[tags[:, t - 1], tags[:, t]] + emissions[arange, t, tags[:, t]]
        score = score + step_score * on
        nxt = torch.logsumexp(alpha.unsqueeze(2) + transitions.unsqueeze(0), dim=1)
        alpha = torch.where(on.unsqueeze(1), nxt + emissions[:, t], alpha)
    last = tags[arange, mask.sum(1) - 1]
    score = score + end[last]
    return score - torch.logsumexp(alpha + end, dim=1)


def viterbi(emissions, mask, transitions, start, end):
    """The best tag sequence of each sequence, as lists of ids."""
    batch, steps, _ = emissions.shape
    delta = start + emissions[:, 0]
    back = []
    for t in range(1, steps):
        scores = delta.unsqueeze(2) + transitions.unsqueeze(0)      # (B, from, to)
        best, arg = scores.max(dim=1)
        on = mask[:, t].unsqueeze(1)
        delta = torch.where(on, best + emissions[:, t], delta)
        back.append(arg)
    lengths = mask.sum(1).tolist()
    last = (delta + end).argmax(dim=1).tolist()
    paths = []
    for b in range(batch):
        path = [last[b]]
        for t in range(lengths[b] - 1, 0, -1):
            path.append(int(back[t - 1][b, path[-1]]))
        paths.append(path[::-1])
    return paths
