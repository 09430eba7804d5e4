"""Remembered first-layer input projections, for tagging.

The first recurrent layer starts every token with x W_ih^T + b (RNN.input_projection):
D * gates * H multiply-adds per token and direction, about as many as the recurrent
product itself.  x depends on the
word alone (its embedding and its character features), so a tagger that reads thousands of
sentences computes the same rows again and again.  ProjectionMemo computes them once per
distinct key (a word form, a word id) and hands the rows to RNN.forward_projected, which
reads them in place: the projection, the character BiLSTM and the embedding lookup of a
word already seen all drop out of tagging.

The rows are those RNN.input_projection computes for the same inputs; a token's result
differs from an unmemoised forward only by the rounding of a different product shape
(~1e-7 relative).  The memo is only valid for the weights it was filled from: whoever
changes them calls clear() (seqtag.network.Network does it through its version count).
The memo also keeps RNN.pack_recurrent()'s packed W_hh for the fused step, which is
dropped by the same clear().
"""

import numpy as np

from .rnn import GATES

DEFAULT_CAPACITY = 8192


class ProjectionMemo:
    """First-layer input pre-activations of `rnn`, one row per key, up to `capacity` keys.

    Memory: capacity * directions * gates * hidden * itemsize bytes at most (8192 words
    of the default tagger: 32 MB), allocated as it fills.  When a batch brings more new
    keys than there are free rows, the memo starts over (the frequent words come back
    within a batch or two; a least-recently-used order would cost more per token than it
    saves).  hits / misses count the keys (rows()) or ids (rows_of_ids(), every
    occurrence) found held / the rows computed.
    """

    def __init__(self, rnn, capacity=DEFAULT_CAPACITY):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) \
                or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        self.rnn = rnn
        self.capacity = int(capacity)
        self.width = GATES[rnn.cell] * rnn.hidden_size
        self.index = {}
        self.row_of_id = np.empty(0, dtype=np.int64)  # rows_of_ids: row of each id, or -1
        self.tables = [np.empty((0, self.width), dtype=rnn.dtype)
                       for _ in range(rnn.num_directions)]
        self.hits = self.misses = 0
        self.held = 0  # rows in use
        self.packed = None  # rnn.pack_recurrent() for the current weights, once asked for

    def __len__(self):
        return self.held

    def clear(self):
        """Forget every row (the arrays are kept for reuse)."""
        self.index.clear()
        self.row_of_id[:] = -1
        self.held = 0
        self.packed = None

    def rows(self, keys, inputs_of):
        """Row of each key (int64 array, len(keys)); keys are distinct and hashable.

        inputs_of(positions) returns the first layer's inputs (len(positions), input_size)
        of keys[p] for the given positions: it is called once, for the keys not yet held.
        Returns None when len(keys) exceeds the capacity (the caller runs unmemoised).
        """
        if len(keys) > self.capacity:
            return None
        get = self.index.get
        rows = np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        missing = np.flatnonzero(rows < 0)
        if len(missing) and self.held + len(missing) > self.capacity:
            self.clear()
            missing = np.arange(len(keys))
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if len(missing) == 0:
            return rows
        new_rows = self._add(inputs_of(missing))
        rows[missing] = new_rows
        for p, r in zip(missing.tolist(), new_rows.tolist()):
            self.index[keys[p]] = r
        return rows

    def rows_of_ids(self, ids, inputs_of):
        """Row of each of ids (N,), integers >= 0 that may repeat (word ids): rows() for
        integer keys, through an array instead of a dict (no Python loop per token).
        inputs_of(new_ids) returns the inputs of the distinct ids not yet held.  Returns
        None when there are more distinct ids than the capacity.  A memo serves either
        rows() or rows_of_ids(), not both.
        """
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1:
            raise ValueError(f"ids must be a 1-d array of integers, got {ids.dtype} array "
                             f"of shape {ids.shape}")
        ids = ids.astype(np.int64, copy=False)
        if ids.size and ids.min() < 0:
            raise ValueError("ids must be >= 0")
        top = int(ids.max()) + 1 if ids.size else 0
        if top > len(self.row_of_id):
            grown = np.full(max(top, 2 * len(self.row_of_id)), -1, dtype=np.int64)
            grown[:len(self.row_of_id)] = self.row_of_id
            self.row_of_id = grown
        rows = self.row_of_id[ids]
        absent = rows < 0
        new_ids = np.unique(ids[absent])
        if len(new_ids) and self.held + len(new_ids) > self.capacity:
            distinct = np.unique(ids)
            if len(distinct) > self.capacity:
                return None
            self.clear()
            new_ids, absent = distinct, np.ones(len(ids), dtype=bool)
        self.hits += len(ids) - int(absent.sum())
        self.misses += len(new_ids)
        if len(new_ids) == 0:
            return rows
        self.row_of_id[new_ids] = self._add(inputs_of(new_ids))
        return self.row_of_id[ids]

    def _add(self, inputs):
        """Project new inputs into the next free rows; their row numbers."""
        start = self.held
        self._reserve(start + len(inputs))
        for d, table in enumerate(self.tables):
            table[start:start + len(inputs)] = self.rnn.input_projection(inputs, d)
        self.held = start + len(inputs)
        return np.arange(start, self.held, dtype=np.int64)

    def forward(self, row_ids, packing, head=None):
        """RNN.forward_projected over this memo's rows: (out, h_n, c_n)."""
        packed = None
        if self.rnn.fused_step:  # asked on each call: the switch may change (runtime)
            if self.packed is None:
                self.packed = self.rnn.pack_recurrent()
            packed = self.packed
        return self.rnn.forward_projected(self.tables, row_ids, packing, head=head,
                                          packed=packed)

    def _reserve(self, n):
        size = self.tables[0].shape[0]
        if n <= size:
            return
        new_size = min(self.capacity, max(n, 2 * size, 1024))
        held = self.held
        for d, table in enumerate(self.tables):
            grown = np.empty((new_size, self.width), dtype=table.dtype)
            grown[:held] = table[:held]
            self.tables[d] = grown
