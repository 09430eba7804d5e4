"""How a batch of sequences of different lengths is laid out as packed rows.

Sequences are ranked longest first; step t holds one row for each sequence still running,
so the rows of step t are ranks 0 .. batch_sizes[t]-1 and the batch only shrinks with t.
Rows of all steps are stored one step after another (PyTorch's PackedSequence layout), so
no row is ever padding and whole-batch products need no masking.
"""

import numpy as np


class Packing:
    """The packed layout of a batch with the given sequence lengths (all >= 1).

    Attributes:
      lengths (B,)      lengths in the caller's order
      order (B,)        caller's index of each rank (longest first, ties keep order)
      batch_sizes (T,)  rows of each step, int64
      seq_of_row (N,)   caller's index of the sequence of each packed row
      step_of_row (N,)  step of each packed row
    """

    def __init__(self, lengths):
        lengths = np.asarray(lengths, dtype=np.int64)
        self.lengths = lengths
        self.order = np.argsort(-lengths, kind="stable")
        sorted_lengths = lengths[self.order]
        steps = int(sorted_lengths[0])
        # sequences running at step t = those longer than t
        longer_than = np.bincount(lengths, minlength=steps + 1)[::-1].cumsum()[::-1]
        self.batch_sizes = np.ascontiguousarray(longer_than[1:steps + 1], dtype=np.int64)
        self.n_rows = int(lengths.sum())
        offsets = np.zeros(steps, dtype=np.int64)
        np.cumsum(self.batch_sizes[:-1], out=offsets[1:])
        rank = np.repeat(np.arange(len(lengths)), sorted_lengths)
        first_row_of_rank = np.repeat(np.cumsum(sorted_lengths) - sorted_lengths, sorted_lengths)
        step = np.arange(self.n_rows) - first_row_of_rank
        row = offsets[step] + rank
        self.seq_of_row = np.empty(self.n_rows, dtype=np.int64)
        self.step_of_row = np.empty(self.n_rows, dtype=np.int64)
        self.seq_of_row[row] = self.order[rank]
        self.step_of_row[row] = step

    @property
    def batch(self):
        return len(self.lengths)

    @property
    def steps(self):
        return len(self.batch_sizes)

    def flat_index(self):
        """For each packed row, its index in the sequences laid end to end in caller order."""
        starts = np.cumsum(self.lengths) - self.lengths
        return starts[self.seq_of_row] + self.step_of_row

    def pack(self, padded):
        """(B, T, ...) batch-first padded array -> (N, ...) packed rows."""
        return np.ascontiguousarray(padded[self.seq_of_row, self.step_of_row])

    def unpack(self, packed, steps=None):
        """(N, ...) packed rows -> (B, steps, ...) batch-first, zeros past each length."""
        steps = self.steps if steps is None else steps
        out = np.zeros((self.batch, steps) + packed.shape[1:], dtype=packed.dtype)
        out[self.seq_of_row, self.step_of_row] = packed
        return out
