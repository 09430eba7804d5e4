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

from itertools import repeat

import numpy as np

from . import runtime
from .config import TaggingConfig
from .rnn import GATES

DEFAULT_CAPACITY: int = TaggingConfig.memo_words  # the option's one definition
_UNSET = np.iinfo(np.int64).min  # form_values(): not computed yet


class ProjectionMemo:
    """First-layer input pre-activations of `rnn`, one row per key, up to `capacity` keys.

    Memory: capacity * directions * gates * hidden * itemsize bytes at most (8192 words
    of the default tagger: 32 MB), allocated as it fills; and forward()'s workspace, the
    size of the largest batch's arrays (about 20 MB for 4,096 tokens of that tagger); and
    8 bytes per key of capacity for each kind of form_values() asked (64 KB at 8192).
    When a batch brings more new keys than there are free rows, the memo starts over (the
    frequent words come back within a batch or two; a least-recently-used order would
    cost more per token than it saves).  hits / misses count the keys found held / the
    rows computed.
    """

    def __init__(self, rnn, capacity=DEFAULT_CAPACITY):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) \
                or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        self.rnn = rnn
        self.capacity = int(capacity)
        self.width = GATES[rnn.cell] * rnn.hidden_size
        self.index = {}
        self.tables = [np.empty((0, self.width), dtype=rnn.dtype)
                       for _ in range(rnn.num_directions)]
        self.hits = self.misses = 0
        self.held = 0  # rows in use
        # bumped by clear(): rows handed out before belong to another generation (a
        # caller that kept them asks form_values() with the generation they came from)
        self.generation = 0
        # form_values()' per-row values: {name: (owner, int64 array over the rows)}
        self.derived = {}
        # (fused kernels, rnn.pack_recurrent()) for the current weights, once asked for
        self.packed = None
        # forward()'s arrays kept from one batch to the next (RNN.forward_projected's
        # workspace: the memo's caller holds its lock, so one forward() at a time)
        self.workspace = {}

    def __len__(self):
        return self.held

    def clear(self):
        """Forget every row (the arrays are kept for reuse)."""
        self.index.clear()
        self.held = 0
        self.packed = None
        self.generation += 1
        self.derived.clear()

    def rows(self, keys, inputs_of, clear=True):
        """Row of each key (int64 array, len(keys)); keys are distinct and hashable.

        inputs_of(positions) returns the first layer's inputs (len(positions), input_size)
        of keys[p] for the given positions: it is called once, for the keys not yet held.
        Returns None when len(keys) exceeds the capacity (the caller runs unmemoised), and
        with clear=False also when the new keys do not fit in the free rows (the memo is
        left as it was: rows handed out before stay valid, for a caller that reads them
        meanwhile).
        """
        if len(keys) > self.capacity:
            return None
        # map() keeps the lookups in C: a generator's frame per key was a third of a
        # warm batch's Python time
        rows = np.fromiter(map(self.index.get, keys, repeat(-1)), dtype=np.int64,
                           count=len(keys))
        missing = np.flatnonzero(rows < 0)
        if len(missing) and self.held + len(missing) > self.capacity:
            if not clear:
                return None
            self.clear()
            missing = np.arange(len(keys))
        if len(missing) == 0:
            self.hits += len(keys)
            return rows
        new_rows = self._add(inputs_of(missing))
        # counted once the rows are in: a call that fails (a look-ahead's, say: the next
        # call asks for the same keys) counts nothing
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        rows[missing] = new_rows
        self.index.update(zip(map(keys.__getitem__, missing.tolist()), new_rows.tolist()))
        return rows

    def form_values(self, name, owner, rows, compute):
        """Values (int64 array, len(rows)) of the keys held in `rows` (this generation's
        rows, as rows() gave them) that depend on the keys alone, not on the weights:
        compute(positions) gives them for the positions (indexes into rows) of the rows
        not asked for since the rows were filled; the others are read back.  `name` with
        `owner` (compared by identity: another owner starts over) says which values.  A
        pass over text the memo holds then costs an array gather instead of a look-up per
        key (the lemma lexicon's row of each form: seqtag.inference).  The caller holds
        the memo's lock (Network.form_values), as for rows().  Each name's values take an
        int64 array of the capacity, made on first use and again after clear()."""
        found = self.derived.get(name)
        if found is None or found[0] is not owner:
            found = self.derived[name] = (owner, np.full(self.capacity, _UNSET, dtype=np.int64))
        values = found[1][rows]
        todo = np.flatnonzero(values == _UNSET)
        if len(todo):
            values[todo] = compute(todo)
            found[1][rows[todo]] = values[todo]
        return values

    def _add(self, inputs):
        """Project new inputs into the next free rows; their row numbers."""
        start = self.held
        end = start + len(inputs)
        self._reserve(end)

        def project(d):
            self.rnn.input_projection(inputs, d, out=self.tables[d][start:end])

        # one direction's product on each core, as the layers run them (the same rows:
        # each is still one product)
        if len(self.tables) == 2 and runtime.threads_beside_blas(self.rnn.threads) >= 2:
            other = runtime.run_beside(project, 1)
            try:
                project(0)
            finally:
                other.result()
        else:
            for d in range(len(self.tables)):
                project(d)
        self.held = end
        return np.arange(start, self.held, dtype=np.int64)

    def forward(self, row_ids, packing, head=None, states=True, keep_output=False,
                queue_first=None):
        """RNN.forward_projected over this memo's rows: (out, h_n, c_n) (states=False:
        h_n and c_n None; queue_first as forward_projected takes it)."""
        packed = None
        isa = runtime.fused_step_isa()  # asked on each call: the switch may change
        if isa is not None and self.rnn.fused_inference:
            if self.packed is None or self.packed[0] != isa:
                # each kind of kernel reads its own layout
                self.packed = (isa, self.rnn.pack_recurrent())
            packed = self.packed[1]
        return self.rnn.forward_projected(self.tables, row_ids, packing, head=head,
                                          packed=packed, states=states,
                                          keep_output=keep_output,
                                          workspace=self.workspace, queue_first=queue_first)

    def _reserve(self, n):
        size = self.tables[0].shape[0]
        if n <= size:
            return
        new_size = min(self.capacity, max(n, 2 * size, 1024))
        held = self.held
        grown = []
        for table in self.tables:
            grown.append(np.empty((new_size, self.width), dtype=table.dtype))
            grown[-1][:held] = table[:held]
        # in one step: an error or a Ctrl-C while growing leaves the tables as they were
        # (one grown, the other not, they would stay apart for good)
        self.tables = grown
