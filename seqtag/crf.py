"""A linear-chain CRF over packed rows: the loss and its gradient, Viterbi decoding and the
per-token marginals.  The kernels are in csrc/crf.pxi; this module checks arguments and
adds the gold sequence's score, which is a few gathers.

A tag sequence y of length L scores start[y_0] + sum_t emissions[t, y_t]
+ sum_{t>0} transitions[y_{t-1}, y_t] + end[y_{L-1}]; its probability is exp(score - log_z).
"""

import numpy as np

from . import _core


def _check(emissions, packing, transitions, start, end):
    dtype = emissions.dtype
    C = emissions.shape[1]
    if emissions.ndim != 2 or emissions.shape[0] != packing.n_rows:
        raise ValueError(f"emissions must be (rows, tags) = ({packing.n_rows}, C), "
                         f"got {emissions.shape}")
    if transitions.shape != (C, C) or start.shape != (C,) or end.shape != (C,):
        raise ValueError(f"transitions must be ({C}, {C}) and start and end ({C},)")
    for name, a in (("transitions", transitions), ("start", start), ("end", end)):
        if a.dtype != dtype:
            raise ValueError(f"{name} must be {dtype}, like the emissions, got {a.dtype}")
    return (np.ascontiguousarray(emissions), np.ascontiguousarray(transitions),
            np.ascontiguousarray(start), np.ascontiguousarray(end))


def previous_rows(packing):
    """(N,) the packed row of the same sequence one step earlier; -1 at each first step."""
    steps = packing.step_of_row
    prev = np.arange(packing.n_rows, dtype=np.int64)
    later = steps > 0
    prev[later] -= packing.batch_sizes[steps[later] - 1]
    prev[~later] = -1
    return prev


def last_rows(packing):
    """(B,) the packed row of each sequence's last step, in the caller's order."""
    ends = np.empty(packing.batch, dtype=np.int64)
    last = packing.step_of_row == packing.lengths[packing.seq_of_row] - 1
    ends[packing.seq_of_row[last]] = np.flatnonzero(last)
    return ends


def log_partition(emissions, packing, transitions, start, end):
    """(log_z (B,) in the caller's order, alpha (N, C) for gradients)."""
    emissions, transitions, start, end = _check(emissions, packing, transitions, start, end)
    alpha = np.empty_like(emissions)
    log_z_by_rank = np.empty(packing.batch, dtype=emissions.dtype)
    _core.crf_forward(emissions, packing.batch_sizes, transitions, start, end, alpha,
                      log_z_by_rank)
    log_z = np.empty_like(log_z_by_rank)
    log_z[packing.order] = log_z_by_rank
    return log_z, alpha


def sequence_scores(emissions, packing, tag_ids, transitions, start, end):
    """(B,) the score of the tag sequences tag_ids (N,), packed, in the caller's order."""
    rows = np.arange(packing.n_rows)
    per_row = emissions[rows, tag_ids].astype(np.float64)
    prev = previous_rows(packing)
    later = prev >= 0
    per_row[later] += transitions[tag_ids[prev[later]], tag_ids[later]]
    per_row[~later] += start[tag_ids[~later]]
    per_row[last_rows(packing)] += end[tag_ids[last_rows(packing)]]
    return np.bincount(packing.seq_of_row, weights=per_row, minlength=packing.batch)


def negative_log_likelihood(emissions, packing, tag_ids, transitions, start, end,
                            weight=1.0):
    """weight * the summed negative log-likelihood of the gold tags tag_ids (N,) (every id
    in [0, C)), and its gradients: (loss, d emissions (N, C), d transitions (C, C),
    d start (C,), d end (C,))."""
    emissions, transitions, start, end = _check(emissions, packing, transitions, start, end)
    C = emissions.shape[1]
    tag_ids = np.asarray(tag_ids, dtype=np.int64)
    if tag_ids.shape != (packing.n_rows,) or (tag_ids.size and (
            tag_ids.min() < 0 or tag_ids.max() >= C)):
        raise ValueError(f"tag_ids must be {packing.n_rows} ids in [0, {C})")
    dtype = emissions.dtype
    log_z, alpha = log_partition(emissions, packing, transitions, start, end)
    gold = sequence_scores(emissions, packing, tag_ids, transitions, start, end)
    loss = weight * float(np.sum(log_z.astype(np.float64) - gold))
    grad_emissions = np.empty_like(emissions)
    grad_transitions = np.zeros((C, C), dtype=dtype)
    grad_start = np.zeros(C, dtype=dtype)
    grad_end = np.zeros(C, dtype=dtype)
    grad_log_z = np.full(packing.batch, weight, dtype=dtype)
    log_z_by_rank = np.ascontiguousarray(log_z[packing.order])
    _core.crf_backward(grad_emissions, grad_transitions, grad_start, grad_end, grad_log_z,
                       emissions, alpha, log_z_by_rank, packing.batch_sizes, transitions, end)
    # minus the gold sequence's counts
    rows = np.arange(packing.n_rows)
    grad_emissions[rows, tag_ids] -= weight
    prev = previous_rows(packing)
    later = prev >= 0
    np.add.at(grad_transitions, (tag_ids[prev[later]], tag_ids[later]), -weight)
    np.add.at(grad_start, tag_ids[~later], -weight)
    np.add.at(grad_end, tag_ids[last_rows(packing)], -weight)
    return loss, grad_emissions, grad_transitions, grad_start, grad_end


def marginals(emissions, packing, transitions, start, end):
    """(N, C) each packed row's tag probabilities under the CRF (forward-backward)."""
    emissions, transitions, start, end = _check(emissions, packing, transitions, start, end)
    C = emissions.shape[1]
    log_z, alpha = log_partition(emissions, packing, transitions, start, end)
    out = np.empty_like(emissions)
    scratch = np.zeros((C, C), dtype=emissions.dtype)
    scratch_c = np.zeros((2, C), dtype=emissions.dtype)
    _core.crf_backward(out, scratch, scratch_c[0], scratch_c[1],
                       np.ones(packing.batch, dtype=emissions.dtype), emissions, alpha,
                       np.ascontiguousarray(log_z[packing.order]), packing.batch_sizes,
                       transitions, end)
    return out


def viterbi(emissions, packing, transitions, start, end, constraints=None):
    """(tags (N,) the best sequence's tag id of each packed row, scores (B,) its score in
    the caller's order).  constraints: (allowed (C, C), allowed_start (C,), allowed_end
    (C,)) booleans, as seqtag.spans.transition_constraints makes them, or None."""
    emissions, transitions, start, end = _check(emissions, packing, transitions, start, end)
    tags = np.empty(packing.n_rows, dtype=np.int64)
    best_by_rank = np.empty(packing.batch, dtype=emissions.dtype)
    masks = [None, None, None]
    if constraints is not None:
        masks = [np.ascontiguousarray(m, dtype=np.uint8) for m in constraints]
    _core.crf_viterbi(emissions, packing.batch_sizes, transitions, start, end, tags,
                      best_by_rank, *masks)
    best = np.empty_like(best_by_rank)
    best[packing.order] = best_by_rank
    return tags, best


class CRFLayer:
    """A linear-chain CRF over a network's output scores (its emissions): the transition,
    start and end scores, the loss, Viterbi decoding (constrained to well-formed spans
    when the tags are span tags) and per-token marginals."""

    #: the model file's names of the parameters
    NAMES = ("crf.transitions", "crf.start", "crf.end")

    def __init__(self, n_tags, dtype):
        self.transitions = np.zeros((n_tags, n_tags), dtype=dtype)
        self.start = np.zeros(n_tags, dtype=dtype)
        self.end = np.zeros(n_tags, dtype=dtype)
        self.constraints = None

    def set_tags(self, tags):
        """Constrain decoding to well-formed spans when `tags` (the ids' names) are span
        tags: IOBES if any E- or S- tag, else IOB2."""
        from . import spans
        scheme = spans.tagset_scheme(tags)
        self.constraints = (None if scheme is None
                            else spans.transition_constraints(list(tags), scheme))

    def arrays(self):
        return dict(zip(self.NAMES, (self.transitions, self.start, self.end)))

    def shapes(self):
        return {name: a.shape for name, a in self.arrays().items()}

    def load_arrays(self, arrays, take):
        self.transitions, self.start, self.end = (take(arrays[n]) for n in self.NAMES)

    def loss_and_gradients(self, emissions, packing, tag_ids, weight):
        """(weight * the summed negative log-likelihood, d emissions, {name: gradient})."""
        loss, grad, *grads = negative_log_likelihood(
            emissions, packing, tag_ids, self.transitions, self.start, self.end, weight)
        return loss, grad, dict(zip(self.NAMES, grads))

    def decode(self, emissions, packing):
        """(N,) the Viterbi tag ids of the packed rows."""
        return viterbi(emissions, packing, self.transitions, self.start, self.end,
                       self.constraints)[0]

    def log_marginals(self, emissions, packing):
        """(N, C) the log of each row's tag marginals."""
        probs = marginals(emissions, packing, self.transitions, self.start, self.end)
        return np.log(np.maximum(probs, np.finfo(probs.dtype).tiny))
