"""Multi-layer, optionally bidirectional recurrent layers: LSTM, peephole LSTM and GRU.

Parameters carry torch.nn.LSTM / torch.nn.GRU names and shapes (weight_ih_l0,
weight_hh_l0_reverse, ...; gates stacked i, f, g, o or r, z, n), so they move between
seqtag and PyTorch unchanged.  The peephole LSTM adds weight_ci_l{k}, weight_cf_l{k},
weight_co_l{k} (H,) for the diagonal connections of i and f to c and of o to c'.

Every argument is checked here; the compiled kernels in seqtag._core only ever see arrays
of the right shapes and dtype.
"""

import numbers

import numpy as np

from . import _core, runtime
from .packing import Packing

GATES = {"lstm": 4, "peephole": 4, "gru": 3}
DTYPES = (np.float32, np.float64)

# Rows past which forward_projected's workspace keeps nothing: a batch of one very long
# sentence makes its arrays for itself alone, instead of leaving them held for good (at
# the default recipe's sizes, 8,192 rows keep at most ~50 MB; tagging batches are 4,096).
WORKSPACE_MAX_ROWS = 8192

# Packing W_hh (16 us at H = 128) costs what the fused step saves over BLAS in about five
# one-row steps; a call with fewer packed rows than this runs the BLAS path unless its
# caller keeps packed weights (memo.py does).
PACK_MIN_ROWS = 16

#: Parts each direction of a layer is cut into for inference on two threads
#: (RNN._infer_layer_shared), from batches of SHARED_MIN_ROWS rows on: k of them, of rows
#: in the ratio k : k - 1 : ... : 1, k the most (at least 2, at most SHARED_PARTS) that
#: leaves the smallest part SHARED_PART_ROWS rows or more.  The other thread steals the
#: last parts first, so a thread that runs out of its own waits at most for a small part:
#: with parts of equal rows it waited, at the end of every layer, for up to half a
#: direction while the other finished its last part (0.4-0.8 ms a layer, 6-15 ms a pass
#: over EWT test; 2026-12-04, AMD EPYC Zen 3, AVX2).  In-process A/B there, alternating,
#: 30-60 rounds, four runs: (c) warm 1.5-4 % faster than 2 equal parts, fresh 1-3.5 %,
#: every column (4 equal parts before) 0-3.5 %.  A part's steps re-read the whole W_hh,
#: hence a floor on its rows (2026-12-03, AVX-512 Xeon: 4 equal parts of 2,048 tokens'
#: batches 1-1.5 % slower than 2).
SHARED_PARTS = 4
SHARED_PART_ROWS = 200
SHARED_MIN_ROWS = 256


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class RNN:
    """A stack of recurrent layers over batches of sequences of different lengths.

    RNN(cell, input_size, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
        dtype=np.float32, seed=0, threads=1)

    cell is "lstm", "peephole" or "gru".  dropout applies to the outputs of every layer but
    the last, in training only.  threads=2 runs the two directions of a bidirectional layer
    on two cores (BLAS is then held to one thread each, so the cores are never
    oversubscribed).  init=False leaves the weights zero, for load_params to fill.
    """

    def __init__(self, cell, input_size, hidden_size, num_layers=1, bidirectional=False,
                 dropout=0.0, dtype=np.float32, seed=0, threads=1, init=True):
        if not isinstance(cell, str) or cell not in GATES:
            raise ValueError(f"cell must be one of {', '.join(GATES)}; got {cell!r}")
        self.cell = cell
        self.input_size = _positive_int("input_size", input_size)
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        self.bidirectional = bool(bidirectional)
        if not isinstance(dropout, numbers.Real) or not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if self.dtype.type not in DTYPES:
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.threads = _positive_int("threads", threads)
        if not init:  # weights about to be loaded: skip drawing millions of random numbers
            self.params = {name: np.zeros(shape, dtype=self.dtype)
                           for name, shape in self.param_shapes().items()}
            return
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.hidden_size)  # PyTorch's initialisation
        self.params = {name: rng.uniform(-bound, bound, shape).astype(self.dtype)
                       for name, shape in self.param_shapes().items()}

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def output_size(self):
        return self.num_directions * self.hidden_size

    def param_shapes(self):
        """{name: shape} in torch's state_dict order."""
        G, H = GATES[self.cell] * self.hidden_size, self.hidden_size
        shapes = {}
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else self.output_size
            for suffix in ("", "_reverse")[:self.num_directions]:
                k = f"l{layer}{suffix}"
                shapes[f"weight_ih_{k}"] = (G, width)
                shapes[f"weight_hh_{k}"] = (G, H)
                shapes[f"bias_ih_{k}"] = (G,)
                shapes[f"bias_hh_{k}"] = (G,)
                if self.cell == "peephole":
                    for gate in ("ci", "cf", "co"):
                        shapes[f"weight_{gate}_{k}"] = (H,)
        return shapes

    def load_params(self, params, copy=True):
        """Replace the parameters (e.g. a torch state_dict converted to NumPy); checked.
        copy=False: arrays already private to this layer (a model file's) are taken as
        they are when they have its dtype and are C-contiguous."""
        if not hasattr(params, "keys"):
            raise ValueError(f"params must be a mapping of parameter names to arrays, got "
                             f"{type(params).__name__}")
        shapes = self.param_shapes()
        missing = [name for name in shapes if name not in params]
        extra = [name for name in params if name not in shapes]
        if missing or extra:
            raise ValueError(f"parameters do not match this {self.cell} layer: missing "
                             f"{missing or 'none'}, unexpected {extra or 'none'}")
        new = {}
        for name, shape in shapes.items():
            value = np.asarray(params[name])
            if value.shape != shape:
                raise ValueError(f"parameter {name} has shape {value.shape}, expected {shape}")
            if value.dtype.kind not in "iuf":
                raise ValueError(f"parameter {name} has dtype {value.dtype}, expected real numbers")
            # a private copy: a later edit of the caller's array (a torch tensor's .numpy()
            # view) must not change the layer behind its back
            new[name] = (np.array(value, dtype=self.dtype, order="C") if copy
                         else np.ascontiguousarray(value, dtype=self.dtype))
        self.params = new

    # ---- the padded, batch-first interface -------------------------------------------

    def forward(self, x, lengths, h0=None, c0=None, *, training=False, rng=None):
        """Run the layers over a padded batch.

        x (B, T, input_size); lengths (B,) with 1 <= lengths[b] <= T; h0 and c0
        (num_layers * num_directions, B, hidden_size) or None for zeros (c0: LSTM only).
        Returns out (B, T, output_size) with zeros past each length, h_n, c_n (None for a
        GRU) and a cache for backward.
        """
        x = self._check_input(x, "x", 3)
        if x.shape[2] != self.input_size:
            raise ValueError(f"x has {x.shape[2]} features per step, the layer expects "
                             f"input_size={self.input_size}")
        packing = self._check_lengths(lengths, x.shape[0], x.shape[1])
        out, h_n, c_n, cache = self.forward_packed(packing.pack(x), packing, h0, c0,
                                                   training=training, rng=rng)
        cache["padded_steps"] = x.shape[1]
        return packing.unpack(out, x.shape[1]), h_n, c_n, cache

    def backward(self, cache, grad_out, grad_h_n=None, grad_c_n=None):
        """Gradients from a forward(): grad_out (B, T, output_size), grad_h_n and grad_c_n
        like h_n and c_n (None: zero).  Returns grad_x (B, T, input_size), a dict of
        parameter gradients under the parameter names, grad_h0 and grad_c0."""
        self._check_cache(cache)
        if "padded_steps" not in cache:
            raise ValueError("this cache comes from forward_packed; pass it to backward_packed")
        packing = cache["packing"]
        steps = cache["padded_steps"]
        grad_out = self._check_input(grad_out, "grad_out", 3)
        expected = (packing.batch, steps, self.output_size)
        if grad_out.shape != expected:
            raise ValueError(f"grad_out has shape {grad_out.shape}, expected {expected}")
        grad_x, grads, grad_h0, grad_c0 = self.backward_packed(
            cache, packing.pack(grad_out), grad_h_n, grad_c_n)
        return packing.unpack(grad_x, steps), grads, grad_h0, grad_c0

    # ---- the packed interface (no padding anywhere) ---------------------------------

    def forward_packed(self, x, packing, h0=None, c0=None, *, training=False, rng=None,
                       keep=True):
        """x (N, input_size) packed rows of `packing`; h0, c0 in the caller's batch order.

        keep=False runs in inference mode: nothing is saved and the cache is None.
        """
        self._check_packing(packing)
        x = self._check_input(x, "x", 2)
        if x.shape != (packing.n_rows, self.input_size):
            raise ValueError(f"packed x has shape {x.shape}, expected "
                             f"{(packing.n_rows, self.input_size)}")
        h_state, c_state = self._initial_states(h0, c0, packing)
        if (training and self.dropout and self.num_layers > 1
                and not isinstance(rng, np.random.Generator)):
            raise ValueError(f"training with dropout needs an rng (numpy Generator), got "
                             f"{type(rng).__name__}")
        layers = []
        layer_input = x
        for layer in range(self.num_layers):
            mask = None
            if layer > 0 and training and self.dropout:
                keep_prob = 1.0 - self.dropout
                mask = (rng.random(layer_input.shape) < keep_prob).astype(self.dtype)
                mask /= keep_prob
                layer_input = layer_input * mask
            out = np.empty((packing.n_rows, self.output_size), dtype=self.dtype)
            if not keep:
                saved = self._run_directions(self._infer_direction, [
                    (layer, d, layer_input, None, packing, h_state, c_state, out, None)
                    for d in range(self.num_directions)])
            else:
                saved = self._run_directions(self._forward_direction, [
                    (layer, d, layer_input, packing, h_state, c_state, out, keep)
                    for d in range(self.num_directions)])
            layers.append({"input": layer_input, "mask": mask, "directions": saved})
            layer_input = out
        h_n = self._to_caller_order(h_state, packing)
        c_n = None if c_state is None else self._to_caller_order(c_state, packing)
        cache = {"packing": packing, "layers": layers} if keep else None
        return layer_input, h_n, c_n, cache

    def input_projection(self, x, direction=0, out=None):
        """The first layer's input pre-activations of rows x (M, input_size) in one
        direction (0, or 1 for the reverse), (M, gates * hidden): x W_ih^T + b_ih + b_hh
        for an LSTM, x W_ih^T + b_ih for a GRU (whose b_hh stays inside its reset gate).

        A row's pre-activations depend on that row alone, so a caller that sees the same
        input rows again and again (a word's embedding in tagging) can compute them once
        and pass them to forward_projected.  out: a C-contiguous (M, gates * hidden)
        array of the layer's dtype to write them into (a memo's free rows), or None.
        """
        if (isinstance(direction, bool) or not isinstance(direction, (int, np.integer))
                or not 0 <= direction < self.num_directions):
            raise ValueError(f"direction must be 0{' or 1' if self.bidirectional else ''}, "
                             f"got {direction!r}")
        x = self._check_input(x, "x", 2)
        if x.shape[1] != self.input_size:
            raise ValueError(f"x has {x.shape[1]} features per row, the layer expects "
                             f"input_size={self.input_size}")
        k = self._names(0, direction)
        p = self.params
        shape = (x.shape[0], GATES[self.cell] * self.hidden_size)
        if out is None:
            out = np.empty(shape, dtype=self.dtype)
        elif (not isinstance(out, np.ndarray) or out.shape != shape
              or out.dtype != self.dtype or not out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous {np.dtype(self.dtype).name} array "
                             f"of shape {shape}")
        _core.input_projection(x, p[f"weight_ih_{k}"], self._input_bias(k), out)
        return out

    def _input_bias(self, k):
        """The bias that goes with x W_ih^T in the input pre-activations."""
        p = self.params
        if self.cell == "gru":
            return p[f"bias_ih_{k}"]
        return p[f"bias_ih_{k}"] + p[f"bias_hh_{k}"]

    def forward_projected(self, projections, row_ids, packing, h0=None, c0=None, *,
                          head=None, packed=None, states=True, keep_output=False,
                          workspace=None, queue_first=None):
        """Inference (no cache) from the first layer's input pre-activations.

        projections: one (V, gates * hidden) array per direction, as input_projection
        returns them for V input rows; row_ids (N,): the projection row of each packed row
        of `packing`.  Returns out, h_n, c_n as forward_packed(..., keep=False) does for
        the inputs those rows were computed from.

        head: (weight (n_out, output_size), bias (n_out,)) of a linear layer over the last
        layer's output (a tagger's output layer); out is then that layer's output
        (N, n_out).  Each direction multiplies its own columns of weight on its own thread,
        so the product overlaps the other direction's steps instead of following them.

        packed: what pack_recurrent() returned for the current weights (a caller that runs
        many small batches keeps it, so W_hh is not packed again on every call), or None.

        states=False: h_n and c_n come back as None (a tagger reads only out; putting the
        final states back in the caller's order is two scatters per call).

        keep_output: with a head, out is (the head's output, the last layer's output), for
        a caller that computes more from the layer's output than the head.

        workspace: a dict the caller keeps from call to call (for one call at a time), in
        which the arrays used only inside the call (every layer's output but the last's,
        the later layers' input pre-activations: about 20 MB for 4,096 rows at the default
        recipe's sizes) are kept and reused: made anew for every batch, the C library gave
        them back to the system and mapped them again, page by page (tens of thousands of
        page faults a pass over EWT test in some states of a process).  A call of more
        than WORKSPACE_MAX_ROWS rows makes its own and keeps none.

        queue_first: a function called once on this thread just before the first layer's
        work is handed to the second thread (or, where none is, before the first layer):
        what it queues there (runtime.run_beside) runs ahead of the layer's share, while
        this thread runs its first steps -- compiled code, so that both threads seldom
        want the GIL at once.
        """
        self._check_packing(packing)
        G = GATES[self.cell] * self.hidden_size
        packed = self._check_packed(packed)
        projections, row_ids = self._check_projections(projections, row_ids, packing.n_rows)
        heads = self._split_head(head, packing.n_rows)
        h_state, c_state = self._initial_states(h0, c0, packing)
        layer_input = (projections, row_ids)
        N = packing.n_rows
        cuts = self._shared_cuts(packing, packed)

        def scratch(name, width):
            if workspace is None or N > WORKSPACE_MAX_ROWS:
                return np.empty((N, width), dtype=self.dtype)
            kept = workspace.get(name)
            if kept is None or len(kept) < N or kept.shape[1] != width \
                    or kept.dtype != self.dtype:
                kept = workspace[name] = np.empty((-(-N // 1024) * 1024, width),
                                                  dtype=self.dtype)
            return kept[:N]

        for layer in range(self.num_layers):
            last = layer == self.num_layers - 1
            # the last layer's output is the caller's; the others alternate between two
            # kept arrays (a layer reads the one before while it writes its own)
            out = np.empty((N, self.output_size), dtype=self.dtype) if last else \
                scratch(f"out{layer % 2}", self.output_size)
            jobs = [(layer, d, (projections[d], row_ids) if layer == 0 else layer_input,
                     heads[d] if last and heads else None, packing, h_state, c_state, out,
                     packed[layer * self.num_directions + d],
                     None if layer == 0 else scratch(f"xproj{d}", G))
                    for d in range(self.num_directions)]
            first = queue_first if layer == 0 else None
            if cuts is not None:
                self._infer_layer_shared(jobs, cuts, first)
            else:
                self._run_directions(self._infer_direction, jobs, first)
            layer_input = out
        if heads:
            logits = heads[0][2]
            for extra in heads[1:]:
                logits += extra[2]
            layer_input = (logits, layer_input) if keep_output else logits
        if not states:
            return layer_input, None, None
        return (layer_input, self._to_caller_order(h_state, packing),
                None if c_state is None else self._to_caller_order(c_state, packing))

    def final_states(self, projections, ids, lengths, packed=None):
        """The last state h of each of n sequences, (directions, n, hidden) in their order:
        forward_projected's h_n for a one-layer RNN in inference.  projections: one
        (V, gates * hidden) table per direction (input_projection); ids: the table rows of
        the sequences' elements laid end to end; lengths (n,): each sequence's, >= 1.

        Where the fused kernels run a float32 LSTM, the sequences' distinct beginnings
        (forward) and endings (backward) are each computed once, over a tree of prefixes
        of the sequences sorted (seqtag._core.prefix_tree): the distinct words of a batch
        share many ("the", "then", "there"), and every row's arithmetic is a packed
        batch's, so the values are forward_projected's.  packed: pack_recurrent() for the
        current weights (a caller that runs many small batches keeps it), or None."""
        lengths, ids = np.asarray(lengths), np.asarray(ids)
        if not (np.issubdtype(lengths.dtype, np.integer) and np.issubdtype(ids.dtype, np.integer)
                and lengths.ndim == 1 and ids.ndim == 1):
            raise ValueError("lengths and ids must be 1-D integer arrays")
        lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if (len(lengths) and lengths.min() < 1) or lengths.sum() != len(ids):
            raise ValueError(f"lengths must be >= 1 and add up to the {len(ids)} ids")
        # below PACK_MIN_ROWS a packed batch's steps take BLAS's product, whose rounding
        # depends on how many rows a step has: the tree's steps have other counts
        if (self.num_layers != 1 or not self.fused_step or not len(lengths)
                or len(ids) < PACK_MIN_ROWS):
            packing = Packing(lengths)
            _, h_n, _ = self.forward_projected(
                projections, ids[packing.flat_index()], packing,
                packed=packed if self.fused_gru_step else None)
            return h_n
        projections, ids = self._check_projections(projections, ids, len(ids))
        G = GATES[self.cell] * self.hidden_size
        packed = self._check_packed(packed)
        n, total, longest = len(lengths), len(ids), int(lengths.max())
        starts = np.cumsum(lengths) - lengths
        out = np.empty((self.num_directions, n, self.hidden_size), dtype=self.dtype)

        def run(direction):
            node_id = np.empty(total, dtype=np.int64)
            node_parent = np.empty(total, dtype=np.int64)
            depth_start = np.empty(longest + 1, dtype=np.int64)
            seq_node = np.empty(n, dtype=np.int64)
            nodes = _core.prefix_tree(ids, starts, lengths, np.empty(n, dtype=np.int64),
                                      bool(direction), node_id, node_parent, depth_start,
                                      seq_node, np.empty(max(2 * longest, n), dtype=np.int64),
                                      sort=True)
            widest = int(np.diff(depth_start).max())
            h = np.empty((nodes, self.hidden_size), dtype=self.dtype)
            k = self._names(0, direction)
            _core.lstm_tree_infer(projections[direction], node_id[:nodes],
                                  node_parent[:nodes], depth_start,
                                  self.params[f"weight_hh_{k}"],
                                  h, np.empty_like(h),
                                  np.empty((widest, self.hidden_size), dtype=self.dtype),
                                  np.empty((widest, G), dtype=self.dtype),
                                  self._pack(k) if packed[direction] is None
                                  else packed[direction])
            out[direction] = h[seq_node]

        self._run_directions(run, [(d,) for d in range(self.num_directions)])
        return out

    def _check_projections(self, projections, row_ids, n_rows):
        """(projections, row_ids) of forward_projected and final_states, checked: one
        (V, gates * hidden) table per direction, and n_rows int64 rows of them."""
        G = GATES[self.cell] * self.hidden_size
        if (not isinstance(projections, (list, tuple))
                or len(projections) != self.num_directions):
            raise ValueError(f"projections must be a list of {self.num_directions} arrays "
                             "(one per direction)")
        projections = [self._check_input(t, "projections", 2) for t in projections]
        for t in projections:
            if t.shape[1] != G or t.shape[0] != projections[0].shape[0]:
                raise ValueError(f"projections must all have shape (V, {G}), got "
                                 f"{[t.shape for t in projections]}")
        row_ids = np.asarray(row_ids)
        if row_ids.shape != (n_rows,) or not np.issubdtype(row_ids.dtype, np.integer):
            raise ValueError(f"row_ids must be {n_rows} integers (one per packed "
                             f"row), got {row_ids.dtype} array of shape {row_ids.shape}")
        row_ids = np.ascontiguousarray(row_ids, dtype=np.int64)
        V = projections[0].shape[0]
        if row_ids.size and (row_ids.min() < 0 or row_ids.max() >= V):
            raise ValueError(f"row_ids must lie in [0, {V}) (the projections' rows)")
        return projections, row_ids

    def _check_packed(self, packed):
        """packed= of forward_projected -> one entry (array or None) per layer and
        direction."""
        count = self.num_layers * self.num_directions
        if packed is None:
            return [None] * count
        if not self.fused_inference:
            raise ValueError("packed weights were given but this RNN does not run the fused "
                             "step (see RNN.fused_step)")
        size = self._packed_size()
        if (not isinstance(packed, (list, tuple)) or len(packed) != count
                or not all(isinstance(a, np.ndarray) and a.dtype == np.float32
                           and a.shape == (size,) and a.flags.c_contiguous for a in packed)):
            raise ValueError(f"packed must be what pack_recurrent() returns: {count} "
                             f"contiguous float32 arrays of {size} values")
        return list(packed)

    def _split_head(self, head, n_rows):
        """head (weight, bias) -> per direction (its columns of weight, bias or zeros,
        an output buffer); [] without a head."""
        if head is None:
            return []
        if not isinstance(head, (tuple, list)) or len(head) != 2:
            raise ValueError("head must be a (weight, bias) pair")
        weight = self._check_input(head[0], "head weight", 2)
        bias = head[1]
        if weight.shape[1] != self.output_size:
            raise ValueError(f"head weight has shape {weight.shape}, expected (n_out, "
                             f"{self.output_size})")
        if (not isinstance(bias, np.ndarray) or bias.dtype != self.dtype
                or bias.shape != (weight.shape[0],)):
            raise ValueError(f"head bias must be a {self.dtype} array of shape "
                             f"({weight.shape[0]},)")
        H = self.hidden_size
        return [(np.ascontiguousarray(weight[:, d * H:(d + 1) * H]),
                 np.ascontiguousarray(bias) if d == 0 else np.zeros_like(bias),
                 np.empty((n_rows, weight.shape[0]), dtype=self.dtype))
                for d in range(self.num_directions)]

    def backward_packed(self, cache, grad_out, grad_h_n=None, grad_c_n=None):
        """grad_out (N, output_size) or None (only the final states matter).
        Returns grad_x (N, input_size), parameter gradients, grad_h0, grad_c0."""
        self._check_cache(cache)
        packing = cache["packing"]
        if grad_out is not None:
            grad_out = self._check_input(grad_out, "grad_out", 2)
            if grad_out.shape != (packing.n_rows, self.output_size):
                raise ValueError(f"grad_out has shape {grad_out.shape}, expected "
                                 f"{(packing.n_rows, self.output_size)}")
        dh = self._initial_state(grad_h_n, "grad_h_n", packing)
        dc = None
        if self.cell == "gru":
            if grad_c_n is not None:
                raise ValueError("grad_c_n is only for LSTM cells; a GRU has no cell state")
        else:
            dc = self._initial_state(grad_c_n, "grad_c_n", packing)
        # the kernels overwrite the saved gates, so a cache serves one backward pass only
        cache["used"] = True
        grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        grad = grad_out
        for layer in reversed(range(self.num_layers)):
            saved = cache["layers"][layer]
            grad_inputs = self._run_directions(self._backward_direction, [
                (layer, d, saved, packing.batch_sizes, grad, dh, dc, grads)
                for d in range(self.num_directions)])
            grad = grad_inputs[0]
            for extra in grad_inputs[1:]:
                grad += extra
            if saved["mask"] is not None:
                grad *= saved["mask"]
        grad_h0 = self._to_caller_order(dh, packing)
        grad_c0 = None if dc is None else self._to_caller_order(dc, packing)
        return grad, grads, grad_h0, grad_c0

    # ---- one direction of one layer --------------------------------------------------

    def _names(self, layer, direction):
        return f"l{layer}" + ("_reverse" if direction else "")

    def _forward_direction(self, layer, direction, x, packing, h_state, c_state, out, keep):
        k = self._names(layer, direction)
        p = self.params
        H, N = self.hidden_size, packing.n_rows
        s = layer * self.num_directions + direction
        reverse = bool(direction)
        h = h_state[s]
        out_view = out[:, direction * H:(direction + 1) * H]
        gates = np.empty((N, GATES[self.cell] * H), dtype=self.dtype)
        h_prev = np.empty((N, H), dtype=self.dtype) if keep else None
        saved = np.empty((N, H), dtype=self.dtype) if keep else None
        if self.cell == "gru":
            _core.gru_forward(x, p[f"weight_ih_{k}"], p[f"weight_hh_{k}"], p[f"bias_ih_{k}"],
                              p[f"bias_hh_{k}"], packing.batch_sizes, reverse, h, gates,
                              out_view, h_prev, saved)
            return {"gates": gates, "h_prev": h_prev, "hn": saved}
        c = c_state[s]
        c0 = c.copy() if keep else None
        bias = p[f"bias_ih_{k}"] + p[f"bias_hh_{k}"]
        peep = [p.get(f"weight_{g}_{k}") for g in ("ci", "cf", "co")]
        packed = (self._pack(k) if keep and N >= PACK_MIN_ROWS and self.fused_step
                  else None)
        _core.lstm_forward(x, p[f"weight_ih_{k}"], p[f"weight_hh_{k}"], bias,
                           packing.batch_sizes, reverse, h, c, gates, out_view, h_prev,
                           saved, *peep, packed)
        return {"gates": gates, "h_prev": h_prev, "cells": saved, "c0": c0}

    def _infer_direction(self, layer, direction, x, head, packing, h_state, c_state, out,
                         packed, xproj=None):
        """Inference: x is the layer's input (N, width), or for the first layer a
        (projections, row_ids) pair from forward_projected; head None, or (weight columns,
        bias, output) of this direction's share of a linear layer over its output; packed
        this direction's pack_recurrent() entry, or None to pack here when it pays."""
        k = self._names(layer, direction)
        p = self.params
        H, G = self.hidden_size, GATES[self.cell] * self.hidden_size
        s = layer * self.num_directions + direction
        if isinstance(x, tuple):
            xproj, row_ids = x
        else:  # into the caller's array where it gives one (forward_projected's workspace)
            if xproj is None:
                xproj = np.empty((x.shape[0], G), dtype=self.dtype)
            _core.input_projection(x, p[f"weight_ih_{k}"], self._input_bias(k), xproj)
            row_ids = None
        out_view = out[:, direction * H:(direction + 1) * H]
        if packed is None and packing.n_rows >= PACK_MIN_ROWS and self.fused_inference:
            packed = self._pack(k)
        if self.cell == "gru":
            rec = np.empty((packing.batch, G), dtype=self.dtype)
            gates = np.empty((packing.batch, G), dtype=self.dtype)
            _core.gru_infer(xproj, row_ids, p[f"weight_hh_{k}"], p[f"bias_hh_{k}"],
                            packing.batch_sizes, bool(direction), h_state[s], rec, gates,
                            out_view, packed)
        else:
            scratch = np.empty((packing.batch, G), dtype=self.dtype)
            peep = [p.get(f"weight_{g}_{k}") for g in ("ci", "cf", "co")]
            _core.lstm_infer(xproj, row_ids, p[f"weight_hh_{k}"], packing.batch_sizes,
                             bool(direction), h_state[s], c_state[s], scratch, out_view,
                             *peep, packed)
        if head is not None:
            _core.input_projection(out_view, head[0], head[1], head[2])
        return None

    def _shared_cuts(self, packing, packed):
        """The ranks [a, b) of the parts each direction of a layer is cut into for
        _infer_layer_shared (SHARED_PARTS' comment says how many, and of which rows), or
        None where the layers run a direction per thread as they are: one thread, a GRU,
        few rows, no fused kernels.  Only fused steps compute each row on its own (BLAS's
        rounding may depend on how many rows a product has); inference steps are fused
        whatever their rows (the AVX2 kernel's in pieces: seqtag_lstm_infer_step_f32)."""
        if (SHARED_PARTS < 2 or self.num_directions != 2
                or packing.n_rows < SHARED_MIN_ROWS or packed is None
                or any(p is None for p in packed) or runtime.fused_step_isa() is None
                or not self.fused_step or runtime.threads_beside_blas(self.threads) < 2):
            return None
        # ranks run longest first; the parts' rows fall k : k - 1 : ... : 1, so that the
        # last ones, which the other thread steals first, are small
        parts = 2
        while (parts < SHARED_PARTS
               and packing.n_rows * 2 // ((parts + 1) * (parts + 2)) >= SHARED_PART_ROWS):
            parts += 1
        rows = np.cumsum(packing.lengths[packing.order])
        shares = np.cumsum(np.arange(parts, 1, -1)) / (parts * (parts + 1) // 2)
        ends = np.searchsorted(rows, rows[-1] * shares)
        bounds = sorted({0, packing.batch, *(ends + 1).tolist()})
        return list(zip(bounds[:-1], bounds[1:]))

    def _infer_layer_shared(self, jobs, cuts, queue_first=None):
        """_infer_direction's work for both directions of a layer (jobs: its two argument
        tuples), shared out in parts (the sequences of ranks `cuts`) between this thread
        and the second one: each takes its own direction's parts in order (this one the
        forward direction's, the other the reverse's), then those of the other direction
        still left, from the last.  With a direction per thread, whichever finished first
        waited for the other, a few ms a batch (the other thread's work just before -- a
        tagger's products of the previous batch -- and the cache it left cost it that);
        now both end within a part of each other.  The values are a direction per
        thread's, bit for bit (lstm_infer_ranks): only who computes which rows changes."""
        p = self.params
        H = self.hidden_size
        layer, _, x, head, packing, h_state, c_state, out, _, _ = jobs[0]
        scratch = np.empty((2, packing.batch, H), dtype=self.dtype)
        # each direction's (input pre-activations, row ids, packed W_hh, output columns)
        inputs = []
        for _, d, given, _, _, _, _, _, packed, xproj in jobs:
            inputs.append((*(given if isinstance(given, tuple) else (xproj, None)), packed,
                           out[:, d * H:(d + 1) * H]))

        def project(d):  # a later layer's input pre-activations (x: the layer's input)
            k = self._names(layer, d)
            _core.input_projection(x, p[f"weight_ih_{k}"], self._input_bias(k), inputs[d][0])

        def part(d, ready, first, last):
            if ready is not None:
                ready.result()
            xproj, row_ids, packed, out_view = inputs[d]
            s = layer * self.num_directions + d
            _core.lstm_infer_ranks(xproj, row_ids, packing.batch_sizes, bool(d), h_state[s],
                                   c_state[s], scratch[d], out_view, packed, first, last)

        def finish(d, parts):  # the direction's share of the output layer, if any
            for done in parts:
                done.result()
            if head is not None:
                _core.input_projection(inputs[d][3], *jobs[d][3])

        projected = not isinstance(jobs[0][2], tuple)
        # every piece is a Job either thread may run (Job.run_here: the first to claim it
        # does), none queued on its own: the second thread gets one call that walks its
        # pieces and then this thread's from the end (a call queued per piece woke it up
        # for each, 1-2 % of a pass when nothing was left to take)
        ready = runtime.Job(project, (1,)) if projected else None
        theirs = [runtime.Job(part, (1, ready, a, b)) for a, b in cuts]
        my_ready = runtime.Job(project, (0,)) if projected else None
        mine = [runtime.Job(part, (0, my_ready, a, b)) for a, b in cuts]
        their_finish = runtime.Job(finish, (1, theirs))
        pieces = [job for job in (ready, *theirs, my_ready, *mine, their_finish)
                  if job is not None]

        def second_side():  # the reverse direction's pieces, then what is left of ours
            for job in (ready, *theirs, *mine[::-1], their_finish):
                if job is not None:
                    job.run_here()

        with runtime.single_blas_thread():
            other = None
            try:
                if queue_first is not None:
                    queue_first()
                other = runtime.run_beside(second_side)
                for job in (my_ready, *mine, *theirs[::-1]):
                    if job is not None:
                        job.run_here()
                finish(0, mine)
                their_finish.run_here()
                other.result()
                for job in pieces:  # an error of the second thread's comes up here
                    job.result()
            except BaseException:
                # none left running, or to run, on this call's arrays (a workspace the next
                # call reuses) once the error reaches the caller
                for job in ([other] if other else []) + pieces:
                    job.cancel()
                waited = [job.wait_quietly() for job in ([other] if other else []) + pieces]
                interrupt = next((e for e in waited if e is not None), None)
                if interrupt is not None:  # a Ctrl-C during the clean-up
                    raise interrupt
                raise

    @property
    def fused_step(self):
        """Whether the recurrent steps run the fused kernels (csrc/lstm_step.h): a float32
        LSTM without peepholes on a CPU with AVX-512 or AVX2 (runtime.fused_step_isa())."""
        return (self.cell == "lstm" and self.dtype == np.float32
                and runtime.fused_step_enabled())

    @property
    def fused_gru_step(self):
        """Whether a float32 GRU's inference steps run the fused kernels
        (csrc/gru_step.h), as fused_step says for an LSTM's (and under the same module
        switch); its training keeps BLAS."""
        return (self.cell == "gru" and self.dtype == np.float32
                and runtime.fused_step_enabled())

    @property
    def fused_inference(self):
        """Whether inference runs fused steps, and so takes packed weights
        (pack_recurrent): an LSTM's (fused_step) or a GRU's (fused_gru_step)."""
        return self.fused_step or self.fused_gru_step

    def pack_recurrent(self):
        """W_hh of every layer and direction in the layout of the fused kernels that run
        now (layer-major, as forward_projected's packed= takes them): an LSTM's where
        fused_step, a GRU's where fused_gru_step, else None.  Valid until the weights
        change or the kernels are switched (runtime.set_fused_step): the caller that keeps
        them drops them then."""
        if not self.fused_inference:
            return None
        return [self._pack(self._names(layer, d)) for layer in range(self.num_layers)
                for d in range(self.num_directions)]

    def _packed_size(self):
        return (_core.gru_packed_size if self.cell == "gru"
                else _core.packed_w_hh_size)(self.hidden_size)

    def _pack(self, k):
        """W_hh of direction k in the layout of this cell's fused kernels (16 us at
        H = 128 for an LSTM, 26 for a GRU, 4 at the front end's H = 48)."""
        packed = np.empty(self._packed_size(), dtype=np.float32)
        (_core.gru_pack_w_hh if self.cell == "gru" else _core.pack_w_hh)(
            self.params[f"weight_hh_{k}"], packed)
        return packed

    def _backward_direction(self, layer, direction, saved_layer, batch_sizes, grad_out, dh_all,
                            dc_all, grads):
        k = self._names(layer, direction)
        p = self.params
        H = self.hidden_size
        s = layer * self.num_directions + direction
        reverse = bool(direction)
        x = saved_layer["input"]
        saved = saved_layer["directions"][direction]
        grad_view = None if grad_out is None else grad_out[:, direction * H:(direction + 1) * H]
        grad_x = np.empty(x.shape, dtype=self.dtype)
        if self.cell == "gru":
            _core.gru_backward(x, p[f"weight_ih_{k}"], p[f"weight_hh_{k}"], batch_sizes,
                               reverse, saved["gates"], saved["h_prev"], saved["hn"],
                               grad_view, dh_all[s], grad_x, grads[f"weight_ih_{k}"],
                               grads[f"weight_hh_{k}"], grads[f"bias_ih_{k}"],
                               grads[f"bias_hh_{k}"])
            return grad_x
        grad_bias = np.zeros(GATES[self.cell] * H, dtype=self.dtype)
        peep = [p.get(f"weight_{g}_{k}") for g in ("ci", "cf", "co")]
        grad_peep = [grads.get(f"weight_{g}_{k}") for g in ("ci", "cf", "co")]
        _core.lstm_backward(x, p[f"weight_ih_{k}"], p[f"weight_hh_{k}"], batch_sizes,
                            reverse, saved["c0"], saved["gates"], saved["h_prev"],
                            saved["cells"], grad_view, dh_all[s], dc_all[s], grad_x,
                            grads[f"weight_ih_{k}"], grads[f"weight_hh_{k}"], grad_bias,
                            *peep, *grad_peep, self.fused_step)
        # both biases enter the gates as one sum, so they share one gradient
        grads[f"bias_ih_{k}"] += grad_bias
        grads[f"bias_hh_{k}"] += grad_bias
        return grad_x

    def _run_directions(self, work, jobs, queue_first=None):
        """Run one call per direction: on two threads when allowed (seqtag.runtime says
        when BLAS leaves room for a second), else in turn; BLAS on one thread either way.
        queue_first: as forward_projected takes it."""
        with runtime.single_blas_thread():
            if queue_first is not None:
                queue_first()
            if len(jobs) == 2 and runtime.threads_beside_blas(self.threads) >= 2:
                other = runtime.run_beside(work, *jobs[1])
                try:
                    first = work(*jobs[0])
                finally:  # never leave the other direction running behind an error
                    second = other.result()
                return [first, second]
            return [work(*job) for job in jobs]

    # ---- checks and state layout ------------------------------------------------------

    def _check_packing(self, packing):
        if not isinstance(packing, Packing):
            raise ValueError(f"packing must be a seqtag.packing.Packing, got "
                             f"{type(packing).__name__}")
        bad = np.flatnonzero(packing.lengths < 1)
        if bad.size:
            raise ValueError(f"sequence {bad[0]} has length {packing.lengths[bad[0]]}; every "
                             "sequence needs at least one step")

    def _check_cache(self, cache):
        if cache is None:
            raise ValueError("no cache: the forward ran with keep=False (inference)")
        if not isinstance(cache, dict) or "layers" not in cache:
            raise ValueError(f"cache must be the one a forward returned, got "
                             f"{type(cache).__name__}")
        if cache.get("used"):
            raise ValueError("this cache was already used by a backward pass, which overwrites "
                             "it; run forward again")

    def _check_input(self, a, name, ndim):
        if not isinstance(a, np.ndarray):
            raise ValueError(f"{name} must be a NumPy array, got {type(a).__name__}")
        if a.dtype != self.dtype:
            raise ValueError(f"{name} has dtype {a.dtype} but the layer computes in "
                             f"{self.dtype}; convert it with .astype(np.{self.dtype})")
        if a.ndim != ndim:
            raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
        if a.shape[0] == 0:
            raise ValueError(f"empty batch: {name} has no rows")
        return np.ascontiguousarray(a)

    def _check_lengths(self, lengths, batch, steps):
        lengths = np.asarray(lengths)
        if lengths.shape != (batch,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths must be {batch} integers (one per sequence), got "
                             f"{lengths.dtype} array of shape {lengths.shape}")
        bad = np.flatnonzero(lengths < 1)
        if bad.size:
            raise ValueError(f"sequence {bad[0]} has length {lengths[bad[0]]}; every "
                             "sequence needs at least one step")
        bad = np.flatnonzero(lengths > steps)
        if bad.size:
            raise ValueError(f"sequence {bad[0]} has length {lengths[bad[0]]} but x has "
                             f"only {steps} steps")
        return Packing(lengths)

    def _initial_states(self, h0, c0, packing):
        """(h, c) initial states in rank order; c is None for a GRU (which takes no c0)."""
        h_state = self._initial_state(h0, "h0", packing)
        if self.cell == "gru":
            if c0 is not None:
                raise ValueError("c0 is only for LSTM cells; a GRU has no cell state")
            return h_state, None
        return h_state, self._initial_state(c0, "c0", packing)

    def _initial_state(self, state, name, packing):
        """(layers*directions, B, H) in caller order -> contiguous copy in rank order."""
        shape = (self.num_layers * self.num_directions, packing.batch, self.hidden_size)
        if state is None:
            return np.zeros(shape, dtype=self.dtype)
        if not isinstance(state, np.ndarray) or state.dtype != self.dtype:
            raise ValueError(f"{name} must be a NumPy array of dtype {self.dtype}")
        if state.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (layers*directions, batch, "
                             f"hidden), got {state.shape}")
        return np.ascontiguousarray(state[:, packing.order])

    def _to_caller_order(self, state, packing):
        out = np.empty_like(state)
        out[:, packing.order] = state
        return out
