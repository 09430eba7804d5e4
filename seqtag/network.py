"""The tagger's network: word embedding + character BiLSTM -> BiLSTM -> linear -> log-softmax,
or with output_layer "crf" -> a linear-chain CRF over the linear layer's scores (seqtag.crf).

The linear layer is every output head's at once (seqtag.heads): one product gives all
heads' logits, side by side, and each head's segment of a row is log-softmaxed on its
own; the loss is the sum of the heads' mean negative log-likelihoods.

Everything is in packed order (seqtag.packing): a batch's tokens are rows, step by step,
never padded.  Each distinct word form of a batch runs through the character BiLSTM once;
its final states (forward and reverse) are the word's character features.
"""

import contextlib
import functools
import threading

import numpy as np

from . import _core, runtime
from .config import NetworkConfig
from .crf import CRFLayer
from .memo import DEFAULT_CAPACITY, ProjectionMemo
from .packing import Packing
from .rnn import RNN
from .vocab import SHAPES, word_shape

DTYPE = np.float32

#: Rows below which head_logits multiplies both directions' columns on one thread
#: (handing a small product to the second thread costs more than it saves).
SPLIT_HEAD_ROWS = 64

#: The network options' defaults (declared in seqtag.config.NetworkConfig).
DEFAULTS = NetworkConfig().to_dict()


def link_batches(batches: list) -> list:
    """Link a list of Batches in the order they will be tagged (Batch.next_batch: a
    memoised pass over one finds the next one's memo rows meanwhile); the list."""
    for batch, following in zip(batches, batches[1:]):
        batch.next_batch = following
    return batches


class Batch:
    """Sentences encoded for the network.

    packing            the sentences' packed layout
    word_ids (N,)      word id of each packed row
    form_of_row (N,)   index of each row's word form among the batch's distinct forms
    char_packing       packed layout of the distinct forms' characters
    char_ids (Nc,)     character id of each packed character row
    flat_index (N,)    position of each packed row in the sentences laid end to end
    tag_ids (N,)       gold tag id of each packed row (-1: unknown tag), or None
    targets (N, H)     gold label id of each packed row for each of H heads (-1: unknown;
                       tag_ids is its first column), or None
    """

    def __init__(self, sentences_words, vocab, sentences_tags=None, targets=None):
        """sentences_tags: each sentence's tags (one head, ids from vocab); targets: the
        label ids (T, H) of the sentences' T tokens laid end to end, for H heads."""
        lengths = np.fromiter(map(len, sentences_words), dtype=np.int64,
                              count=len(sentences_words))
        self.packing = Packing(lengths)
        self.flat_index = self.packing.flat_index()
        # each token's form numbered in the order forms first come: in the compiled core
        # for lists of lists (what tagging passes), here for any other sequences
        flat_forms = np.empty(int(lengths.sum()), dtype=np.int64)
        self.forms = _core.number_forms(sentences_words, flat_forms)
        if self.forms is None:
            form_index = {}
            flat_forms = np.fromiter((form_index.setdefault(form, len(form_index))
                                      for words in sentences_words for form in words),
                                     dtype=np.int64, count=len(flat_forms))
            self.forms = list(form_index)
        self.vocab = vocab
        self.form_of_row = flat_forms[self.flat_index]
        self._word_ids = None  # word_ids_of: -1 where not looked up yet
        # (memo, its generation, each form's row) once a network's memo gave them
        # (Network.form_values)
        self.memo_rows = None
        # the batch its caller tags next, where known: a memoised pass over this one
        # (Network.infer, encode) finds that one's rows meanwhile on the second thread,
        # and leaves them here, with what they are valid for (Network._rows_ahead)
        self.next_batch = None
        self.rows_ahead = None
        self._chars = None
        self._shapes = None
        self.tag_ids = self.targets = None
        if sentences_tags is not None:
            targets = vocab.tag_ids([t for tags in sentences_tags for t in tags])[:, None]
        if targets is not None:
            self.targets = np.asarray(targets, dtype=np.int64)[self.flat_index]
            self.tag_ids = self.targets[:, 0]

    # word ids are looked up on first use too: tagging with a memo needs only those of the
    # forms it has not seen yet (word_ids_of), and a long run has seen nearly all of them
    @property
    def form_word_ids(self):
        """(len(forms),) the word id of each distinct form."""
        return self.word_ids_of(np.arange(len(self.forms)))

    @functools.cached_property
    def word_ids(self):
        return self.form_word_ids[self.form_of_row]

    def word_ids_of(self, positions):
        """The word ids of the forms at `positions` (indexes into forms), each looked up
        once per batch."""
        if self._word_ids is None:
            self._word_ids = np.full(len(self.forms), -1, dtype=np.int64)
        ids = self._word_ids
        todo = positions[ids[positions] < 0]
        if len(todo):
            ids[todo] = self.vocab.word_ids(list(map(self.forms.__getitem__, todo.tolist())))
        return ids[positions]

    @property
    def form_shapes(self):
        """(len(forms),) the shape id (seqtag.vocab.word_shape) of each distinct form;
        worked out on first use: only a network with a shape embedding reads them."""
        if self._shapes is None:
            self._shapes = np.array([word_shape(f) for f in self.forms], dtype=np.int64)
        return self._shapes

    @property
    def n_tokens(self):
        return self.packing.n_rows

    # the characters are encoded on first use (training, tagging without a memo): tagging
    # with a memo reads only those of the forms it has not seen yet (Network._word_inputs)
    @property
    def char_packing(self):
        if self._chars is None:
            self._chars = encode_chars(self.forms, self.vocab)
        return self._chars[0]

    @property
    def char_ids(self):
        if self._chars is None:
            self._chars = encode_chars(self.forms, self.vocab)
        return self._chars[1]


def encode_chars(forms, vocab):
    """(Packing of the forms' characters, char id of each packed character row)."""
    lengths, flat_chars = vocab.chars_of(forms)
    packing = Packing(lengths)
    return packing, flat_chars[packing.flat_index()]


class Network:
    """The parameters and the forward/backward computation of the tagger."""

    def __init__(self, config, n_words, n_chars, n_tags, seed=0, threads=1, dtype=DTYPE,
                 init=True, memo_capacity=DEFAULT_CAPACITY):
        """config: a NetworkConfig or a dict of its options (the others take their defaults;
        ConfigError for a bad or unknown one).  n_tags: the labels of the one output head,
        or a list of each head's label count (their rows of the output layer follow each
        other in that order: bounds).  init=False leaves every weight zero, for
        load_arrays to fill (a fast load).  memo_capacity: word forms whose first-layer
        projections infer() remembers (0: off).
        """
        sizes = [int(n_tags)] if np.ndim(n_tags) == 0 else [int(n) for n in n_tags]
        if not sizes or min(sizes) < 1:
            raise ValueError(f"every output head needs at least one label, got {sizes}")
        #: Where each head's rows of the output layer start and end: head k owns
        #: [bounds[k], bounds[k + 1]).
        self.bounds = np.cumsum([0] + sizes).astype(np.int64)
        n_tags = int(self.bounds[-1])
        self._fresh_caches()
        if not isinstance(config, NetworkConfig):
            config = NetworkConfig.from_dict(config)
        self.config = config.to_dict()  # a plain dict: the model's metadata holds it
        self.version = 0
        self.memo_capacity = int(memo_capacity)
        runtime.renew_after_fork(self)
        self.dtype = dtype = np.dtype(dtype).type
        c = self.config
        # None ("auto", or a model written before shapes existed): training resolves it
        # first, so here it is a model without shapes
        c["shape_dim"] = c["shape_dim"] or 0
        # a model being loaded (init=False) draws nothing: numpy.random's import alone is
        # ~12 ms of a one-shot `seqtag tag`
        rng, seeds = None, [0, 0]
        if init:
            rng = np.random.default_rng(seed)
            seeds = [int(rng.integers(2**31)) for _ in range(2)]
        self.char_rnn = RNN(c["cell"], c["char_dim"], c["char_hidden"], bidirectional=True,
                            seed=seeds[0], threads=threads, dtype=dtype, init=init)
        self.rnn = RNN(c["cell"], c["word_dim"] + 2 * c["char_hidden"] + c["shape_dim"],
                       c["hidden"],
                       num_layers=c["layers"], bidirectional=True, dropout=c["dropout"],
                       seed=seeds[1], threads=threads, dtype=dtype, init=init)
        word_shape, char_shape = (n_words, c["word_dim"]), (n_chars, c["char_dim"])
        shape_shape = (len(SHAPES), c["shape_dim"])
        output_shape = (n_tags, 2 * c["hidden"])
        self.output_bias = np.zeros(n_tags, dtype=dtype)
        #: the CRF over the output scores, or None: a log-softmax per token ("auto", what
        #: a model written before CRFs has, is a softmax too: training resolves it first)
        if c["output_layer"] == "crf" and len(sizes) > 1:
            raise ValueError("a CRF output layer is for a model of one column, not "
                             f"{len(sizes)} heads")
        self.crf = CRFLayer(n_tags, dtype) if c["output_layer"] == "crf" else None
        if self.crf is None:
            self.config["output_layer"] = "softmax"
        self.shape_embedding = (np.zeros(shape_shape, dtype=dtype) if not init else
                                (rng.standard_normal(shape_shape) * 0.1).astype(dtype))
        if not init:
            self.word_embedding = np.zeros(word_shape, dtype=dtype)
            self.char_embedding = np.zeros(char_shape, dtype=dtype)
            self.output_weight = np.zeros(output_shape, dtype=dtype)
            return
        self.word_embedding = (rng.standard_normal(word_shape) * 0.1).astype(dtype)
        self.char_embedding = (rng.standard_normal(char_shape) * 0.1).astype(dtype)
        bound = 1.0 / np.sqrt(2 * c["hidden"])
        self.output_weight = rng.uniform(-bound, bound, output_shape).astype(dtype)

    # ---- parameters by name (the model file's names) --------------------------------

    def arrays(self):
        """{name: array}; the arrays themselves, so updating them in place updates the net."""
        named = {"word_embedding": self.word_embedding, "char_embedding": self.char_embedding}
        named.update({"char_rnn." + k: v for k, v in self.char_rnn.params.items()})
        named.update({"rnn." + k: v for k, v in self.rnn.params.items()})
        named["output.weight"] = self.output_weight
        named["output.bias"] = self.output_bias
        if self.shape_embedding.shape[1]:
            named["shape_embedding"] = self.shape_embedding
        if self.crf is not None:
            named.update(self.crf.arrays())
        return named

    def expected_shapes(self):
        shapes = {"word_embedding": self.word_embedding.shape,
                  "char_embedding": self.char_embedding.shape}
        shapes.update({"char_rnn." + k: v for k, v in self.char_rnn.param_shapes().items()})
        shapes.update({"rnn." + k: v for k, v in self.rnn.param_shapes().items()})
        shapes["output.weight"] = self.output_weight.shape
        shapes["output.bias"] = self.output_bias.shape
        if self.shape_embedding.shape[1]:
            shapes["shape_embedding"] = self.shape_embedding.shape
        if self.crf is not None:
            shapes.update(self.crf.shapes())
        return shapes

    #: Whether freeze() made the weights read-only.
    frozen = False

    def load_arrays(self, arrays):
        """Take parameters by name, as arrays() gives them (shapes already checked against
        expected_shapes()); forgets what infer() remembered.  A frozen network stays
        frozen: it takes read-only copies and leaves the caller's arrays as they were."""
        if self.frozen:
            def take(a):
                return np.array(a, dtype=self.dtype, order="C")
        else:
            def take(a):  # a model file's arrays are private already: no copy
                return np.ascontiguousarray(a, dtype=self.dtype)
        self.word_embedding = take(arrays["word_embedding"])
        self.char_embedding = take(arrays["char_embedding"])
        self.char_rnn.load_params({k[len("char_rnn."):]: v for k, v in arrays.items()
                                   if k.startswith("char_rnn.")}, copy=self.frozen)
        self.rnn.load_params({k[len("rnn."):]: v for k, v in arrays.items()
                              if k.startswith("rnn.")}, copy=self.frozen)
        self.output_weight = take(arrays["output.weight"])
        self.output_bias = take(arrays["output.bias"])
        if self.shape_embedding.shape[1]:
            self.shape_embedding = take(arrays["shape_embedding"])
        if self.crf is not None:
            self.crf.load_arrays(arrays, take)
        self.changed()
        if self.frozen:
            self.freeze()

    def freeze(self):
        """Make every weight read-only, for a network whose weights no longer change (a
        loaded tagger's): infer() remembers results computed from them, so an in-place
        edit would be served stale; it raises NumPy's read-only ValueError instead.
        Training needs writable weights: it builds its own network."""
        for array in self.arrays().values():
            array.flags.writeable = False
        self.frozen = True

    def changed(self):
        """Tell the network its weights were changed in place (forgets what infer()
        remembered).  The training loop and load_arrays call it."""
        self.version += 1

    def set_threads(self, threads):
        self.char_rnn.threads = self.rnn.threads = threads

    def _fresh_caches(self):
        """Empty caches and new locks: what infer() derives from the weights, kept for their
        version (_derived: selected heads' stacked rows, summed rows, the character
        projections), and the memo of word forms."""
        self._derived_cache = {}
        self._derived_lock = threading.Lock()
        self._memo = None
        self._memo_version = None
        self._memo_lock = threading.Lock()

    def after_fork(self):
        """In a forked child (seqtag.runtime.renew_after_fork): new locks, and no memo or
        derived arrays, which another thread of the parent may have been filling."""
        self._fresh_caches()

    # ---- forward and backward ---------------------------------------------------------

    # The products outside the recurrent layers (output layer, ...) are small, and
    # OpenBLAS's own threads keep spinning for a while after each call: on two cores they
    # would steal a core from the two directions of the next layer (measured: training at
    # 58k instead of 100k tokens/s).  So the network runs with one BLAS thread throughout;
    # its parallelism is the directions' (RNN threads).

    def forward(self, batch, training=False, rng=None, word_ids=None):
        """Log-probabilities (N, n_tags) of the packed rows, and a cache for backward;
        with a CRF, the CRF's emission scores instead (scores(), best_tag_ids() and
        log_probs() read either).

        word_ids replaces batch.word_ids (training replaces rare words by <unk>).
        """
        with runtime.single_blas_thread():
            return self._forward(batch, training, rng, word_ids)

    def _forward(self, batch, training, rng, word_ids):
        hidden, cache = self._encode(batch, training, rng, word_ids)
        log_probs = self._output(hidden)
        if cache is not None:
            cache["log_probs"] = log_probs
        return log_probs, cache

    def _encode(self, batch, training, rng, word_ids):
        """The last recurrent layer's output (N, 2 * hidden), dropout applied in training,
        and the cache backward needs (None outside training)."""
        c = self.config
        keep = training
        char_inputs = self.char_embedding[batch.char_ids]
        _, char_final, _, char_cache = self.char_rnn.forward_packed(
            char_inputs, batch.char_packing, keep=keep)
        parts = [char_final[0], char_final[1]]
        if c["shape_dim"]:
            parts.append(self.shape_embedding[batch.form_shapes])
        form_features = np.concatenate(parts, axis=1)
        word_ids = batch.word_ids if word_ids is None else word_ids
        inputs = np.concatenate([self.word_embedding[word_ids],
                                 form_features[batch.form_of_row]], axis=1)
        input_mask = output_mask = None
        if training and c["dropout"]:
            input_mask = _dropout_mask(rng, inputs.shape, c["dropout"], self.dtype)
            inputs *= input_mask
        hidden, _, _, rnn_cache = self.rnn.forward_packed(inputs, batch.packing,
                                                          training=training, rng=rng, keep=keep)
        if training and c["dropout"]:
            output_mask = _dropout_mask(rng, hidden.shape, c["dropout"], self.dtype)
            hidden *= output_mask
        cache = None
        if training:
            cache = {"batch": batch, "word_ids": word_ids, "char_cache": char_cache,
                     "rnn_cache": rnn_cache, "hidden": hidden, "input_mask": input_mask,
                     "output_mask": output_mask, "n_forms": form_features.shape[0]}
        return hidden, cache

    @property
    def n_heads(self):
        return len(self.bounds) - 1

    def infer(self, batch, heads=None, normalize=True):
        """Log-probabilities (N, n_tags) of the packed rows, as forward(batch) computes
        them in inference, remembering each word form's first-layer input projection
        across calls (seqtag.memo): a form seen before costs no character BiLSTM, no
        embedding lookup and no input product.  Thread-safe: a call that finds the memo
        busy in another thread runs unmemoised.

        heads: the indexes of the heads to compute (None: all): the result holds only
        their segments, in that order (head_bounds(heads) says where), and the output
        product only their rows.  normalize=False leaves the logits as they are (the same
        best labels, without a log-softmax over every segment)."""
        if heads is not None and list(heads) == list(range(self.n_heads)):
            heads = None
        if self.memo_capacity <= 0 or not self._memo_lock.acquire(blocking=False):
            return self._infer_unmemoised(batch, heads, normalize)
        try:
            with runtime.single_blas_thread():
                rows = self._memo_rows(batch)
                if rows is None:  # more distinct forms than the memo holds
                    return self._infer_unmemoised(batch, heads, normalize)
                weight, bias, bounds = self._head_layer(heads)
                with self._rows_ahead(batch.next_batch) as queue:
                    logits, _, _ = self._memo.forward(rows[batch.form_of_row],
                                                      batch.packing, head=(weight, bias),
                                                      states=False, queue_first=queue)
                if normalize and self.crf is None:
                    _log_softmax(logits, bounds)
                return logits
        finally:
            self._memo_lock.release()

    def _infer_unmemoised(self, batch, heads, normalize):
        """infer() where the memo cannot serve (off, busy in another thread, too small):
        encode()'s unmemoised output, then head_logits(), the products of the memoised
        path and of encode(), so that a token's best label never depends on whether the
        memo was free (Tagger.predict decodes encode()'s logits, predict_top_k ranks
        infer()'s)."""
        with runtime.single_blas_thread():
            hidden = self._encode(batch, False, None, None)[0]
        chosen = list(range(self.n_heads)) if heads is None else list(heads)
        logits = self.head_logits(hidden, chosen)
        if normalize and self.crf is None:
            _log_softmax(logits, self.head_bounds(chosen))
        return logits

    def encode(self, batch, heads=None):
        """The last recurrent layer's output (N, 2 * hidden) of the packed rows in
        inference, memoised as infer() is: what the output layer reads.  head_logits()
        turns chosen rows of it into chosen heads' logits, so a caller can compute a head
        only for the tokens that need it.  heads (indexes): (that output, infer(batch,
        heads, normalize=False)'s logits), those heads' product computed as infer() does
        it, each direction's share on its own thread as soon as its steps are done."""
        if self.memo_capacity > 0 and self._memo_lock.acquire(blocking=False):
            try:
                with runtime.single_blas_thread():
                    rows = self._memo_rows(batch)
                    if rows is not None:
                        with self._rows_ahead(batch.next_batch) as queue:
                            if heads is None:
                                return self._memo.forward(rows[batch.form_of_row],
                                                          batch.packing, states=False,
                                                          queue_first=queue)[0]
                            weight, bias, _ = self._head_layer(list(heads))
                            logits, hidden = self._memo.forward(
                                rows[batch.form_of_row], batch.packing,
                                head=(weight, bias), states=False, keep_output=True,
                                queue_first=queue)[0]
                        return hidden, logits
            finally:
                self._memo_lock.release()
        with runtime.single_blas_thread():
            hidden = self._encode(batch, False, None, None)[0]
        return hidden if heads is None else (hidden, self.head_logits(hidden, heads))

    def head_logits(self, hidden, heads, rows=None, split=True):
        """The logits (len(rows), their labels) of `heads` (indexes, in that order:
        head_bounds(heads) says where each starts) for the rows `rows` of encode()'s output
        (None: every row).  Computed as infer() computes its output product (each
        direction's columns of the weights on its own thread, the bias with the first),
        so a row's logits are infer()'s, bit for bit.  split=False: both directions'
        products on the calling thread, one after the other (the same products: the same
        logits), for a caller that is itself the second thread (runtime.run_beside)."""
        parts = self._split_head_layer(heads)
        x = hidden if rows is None else hidden[rows]
        H = self.rnn.hidden_size
        outs = [np.empty((x.shape[0], len(bias)), dtype=self.dtype) for _, bias in parts]
        jobs = [(x[:, d * H:(d + 1) * H], weight, bias, outs[d])
                for d, (weight, bias) in enumerate(parts)]
        with runtime.single_blas_thread():
            if split and len(jobs) == 2 and x.shape[0] >= SPLIT_HEAD_ROWS and \
                    runtime.threads_beside_blas(self.rnn.threads) >= 2:
                other = runtime.run_beside(_core.input_projection, *jobs[1])
                try:
                    _core.input_projection(*jobs[0])
                finally:
                    other.result()
            else:
                for job in jobs:
                    _core.input_projection(*job)
        for extra in outs[1:]:
            outs[0] += extra
        return outs[0]

    def best_fitting_scripts(self, hidden, head, rows, row_sets, starts, members):
        """(len(rows),) int64: for each of the rows `rows` of encode()'s output, the script
        of the lemma head `head` (an index) whose logit is highest among its set's
        (row_sets: each row's set, whose scripts are members[starts[g]:starts[g + 1]]:
        seqtag.lemma.ScriptSets, those that fit the row's word), the first of equal
        logits, -1 for an empty set: heads.best_fitting_among's choice from each row's
        head_logits(hidden, [head], [row]), without computing them.  Only the set's
        scripts are scored (in one call of the compiled core, without the GIL: a few
        dozen of the lemma head's 419 rows on EWT), and a winner is taken from those
        scores where its lead is wider than the rounding of any order of summing
        (seqtag._core.script_rows_best); the other rows, one in thousands, get the head's
        logits, row by row (split=False: on the calling thread, which may be the second
        one)."""
        from .heads import best_fitting_among
        hidden = np.asarray(hidden)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        row_sets = np.ascontiguousarray(row_sets, dtype=np.int64)
        starts = np.ascontiguousarray(starts, dtype=np.int64)
        members = np.ascontiguousarray(members, dtype=np.int64)
        a, b = self.bounds[head], self.bounds[head + 1]
        if hidden.ndim != 2 or hidden.dtype != self.dtype \
                or hidden.shape[1] != self.output_weight.shape[1]:
            raise ValueError(f"hidden must be a {np.dtype(self.dtype).name} array of shape "
                             f"(N, {self.output_weight.shape[1]})")
        if rows.ndim != 1 or row_sets.shape != rows.shape or (len(rows) and (
                rows.min() < 0 or rows.max() >= len(hidden))):
            raise ValueError(f"rows must be indexes of hidden's {len(hidden)} rows, with "
                             "a set each")
        if starts.ndim != 1 or not len(starts) or (len(row_sets) and (
                row_sets.min() < 0 or row_sets.max() >= len(starts) - 1)):
            raise ValueError("the sets must be ScriptSets.arrays() of the head's scripts")
        weight, bias, norms, bias_abs = self._derived(("script rows", head), lambda: (
            self.output_weight[a:b], self.output_bias[a:b],
            np.linalg.norm(self.output_weight[a:b].astype(np.float64), axis=1),
            np.abs(self.output_bias[a:b].astype(np.float64))))
        used = row_sets if len(row_sets) < len(starts) else slice(None)
        widest = int((starts[1:][used] - starts[:-1][used]).max(initial=0))
        best = np.empty(len(rows), dtype=np.int64)
        clear = np.empty(len(rows), dtype=np.uint8)
        # a logit sums D products and two biases: each rounded sum is within
        # gamma * (the sum of their magnitudes) of the exact one, whatever the order
        terms = hidden.shape[1] + 2
        unit = np.finfo(self.dtype).eps / 2
        gamma = terms * unit / (1 - terms * unit)
        try:
            _core.script_rows_best(hidden, rows, row_sets, starts, members, weight, bias,
                                   norms, bias_abs, gamma,
                                   float(np.finfo(self.dtype).smallest_subnormal),
                                   np.empty(max(widest, 1), dtype=self.dtype), best, clear,
                                   runtime.fused_step_isa() is not None)
        except ValueError as e:  # a set's scripts outside the head's
            raise ValueError("the sets must be ScriptSets.arrays() of the head's "
                             f"scripts ({e})") from None
        # each on its own: BLAS may round a product of several rows otherwise
        for i in np.flatnonzero(clear == 0).tolist():
            logits = self.head_logits(hidden, [head], rows[i:i + 1], split=False)
            best[i] = best_fitting_among(logits, row_sets[i:i + 1], starts, members)[0]
        return best

    def summed_logits(self, hidden, outputs, rows):
        """(len(rows), K) sums of the logits of output rows, for the rows `rows` of
        encode()'s output: column r is the sum over outputs[r] ((K, j) indexes into every
        head's stacked rows) of their logits.  One small product over the summed weight
        rows, for a caller that compares a few combinations of labels of a few tokens (the
        analyses of one UPOS, seqtag.heads.TagCombinations): the same values as adding
        head_logits()'s, up to float32 rounding.  The summed weights are kept for the
        weights' version: a loaded model makes each set once."""
        layer = self._derived(("sums", outputs.shape, outputs.tobytes()), lambda: (
            np.ascontiguousarray(self.output_weight[outputs].sum(axis=1)),
            np.ascontiguousarray(self.output_bias[outputs].sum(axis=1))))
        out = np.empty((len(rows), len(outputs)), dtype=self.dtype)
        with runtime.single_blas_thread():
            _core.input_projection(hidden[rows], layer[0], layer[1], out)
        return out

    def best_summed_logits(self, hidden, groups, starts, outputs):
        """Each row's best sum of logits among its group's, and by how much it is best:
        (best, margin), both (N,), for the N rows of encode()'s output `hidden`.  groups
        (N,): each row's group; group g's sums are those of outputs[starts[g]:starts[g +
        1]] (outputs (M, j) indexes into every head's stacked rows, as summed_logits()
        takes them; starts (G + 1,) nondecreasing from 0 to M).  best: the index into
        outputs of the row's highest sum (the first of equals), -1 for a group outside
        [0, G) or with no sums; margin: the highest minus the second highest (+inf for a
        group of one sum).  The sums are summed_logits(hidden, outputs[a:b], rows) for
        each group's rows in order, in one call for every group
        (seqtag._core.analyses_forward): the analyses of each predicted UPOS,
        seqtag.heads.TagCombinations.choose_best.  Bit for bit through BLAS; float32 with
        the fused kernels on (seqtag.runtime.fused_step_enabled) runs
        csrc/analyses_step.h's kernel instead, the same sums in another order (float32
        rounding), the summed weights packed once per weights' version."""
        hidden = np.asarray(hidden)
        if hidden.ndim != 2 or hidden.shape[1] != self.output_weight.shape[1] \
                or hidden.dtype != self.dtype:
            raise ValueError(f"hidden must be a {np.dtype(self.dtype).name} array of shape "
                             f"(N, {self.output_weight.shape[1]}), got {hidden.dtype} "
                             f"{hidden.shape}")
        groups = np.ascontiguousarray(groups, dtype=np.int64)
        starts = np.ascontiguousarray(starts, dtype=np.int64)
        outputs = np.ascontiguousarray(outputs, dtype=np.int64)
        if groups.shape != (len(hidden),):
            raise ValueError(f"groups must be {len(hidden)} ints, got shape {groups.shape}")
        if outputs.ndim != 2 or (outputs.size and (
                outputs.min() < 0 or outputs.max() >= len(self.output_weight))):
            raise ValueError("outputs must be (M, j) rows of the output layer")
        if (starts.ndim != 1 or not len(starts) or starts[0] != 0
                or starts[-1] != len(outputs) or (np.diff(starts) < 0).any()):
            raise ValueError(f"starts must go up from 0 to {len(outputs)}")
        key = ("sums", outputs.shape, outputs.tobytes())
        weight, bias = self._derived(key, lambda: (
            np.ascontiguousarray(self.output_weight[outputs].sum(axis=1)),
            np.ascontiguousarray(self.output_bias[outputs].sum(axis=1))))
        n, widest = len(hidden), int(np.diff(starts).max(initial=0))
        packed = None  # the summed weights in the kernel's panels, where it runs
        if self.dtype == np.float32 and runtime.fused_step_isa() is not None \
                and _core.analyses_step_available():
            lanes = _core.analyses_lanes()  # asked after fused_step_isa() set the kernels
            packed = self._derived((*key, starts.tobytes(), lanes),
                                   lambda: _analysis_panels(weight, bias, starts, lanes))
            widest = -(-widest // lanes) * lanes
        best = np.empty(n, dtype=np.int64)
        margin = np.empty(n, dtype=self.dtype)
        gathered = np.empty((1 if packed else n, hidden.shape[1]), dtype=self.dtype)
        scores = np.empty(max(n * widest, 1), dtype=self.dtype)
        with runtime.single_blas_thread():
            _core.analyses_forward(hidden, np.argsort(groups, kind="stable"), groups, starts,
                                   weight, bias, gathered, scores, best, margin,
                                   *(packed or ()))
        return best, margin

    def _char_projections(self):
        """The character BiLSTM's input pre-activations of every character of the
        vocabulary, one (n_chars, gates * char_hidden) array per direction, kept for the
        weights' version: a new word's characters look their rows up instead of
        multiplying their embeddings, a product of char_dim (32) columns that BLAS runs
        far below its speed (a third of the character BiLSTM's time on new words)."""
        return self._derived(("chars",), lambda: [
            self.char_rnn.input_projection(self.char_embedding, d)
            for d in range(self.char_rnn.num_directions)])

    def _char_packed(self):
        """The character BiLSTM's W_hh packed for the fused kernels that run now (None
        where none do), kept for the weights' version: new words come a few hundred a
        batch, and packing it for each batch cost more than a tenth of their steps."""
        isa = runtime.fused_step_isa()
        if isa is None or not self.char_rnn.fused_inference:
            return None
        return self._derived(("char packed", isa), self.char_rnn.pack_recurrent)

    def _derived(self, key, make):
        """make()'s value, something derived from the weights, kept under `key` for the
        weights' version: made once per version, older versions' values dropped.  Safe
        from several threads (predict_columns reads these outside the memo's lock): the
        cache is never changed once published, only replaced, one writer at a time."""
        version = self.version
        key = (*key, version)
        value = self._derived_cache.get(key)
        if value is None:
            value = make()
            with self._derived_lock:
                cache = {k: v for k, v in self._derived_cache.items() if k[-1] == version}
                cache[key] = value
                self._derived_cache = cache
        return value

    def _split_head_layer(self, heads):
        """[(weight columns of direction d, its bias: the heads' for d = 0, else zeros)]
        of the output layer's rows of `heads`, as RNN.forward_projected splits a head."""
        def split():
            weight, bias, _ = self._head_layer(list(heads))
            H = self.rnn.hidden_size
            return [(np.ascontiguousarray(weight[:, d * H:(d + 1) * H]),
                     np.ascontiguousarray(bias) if d == 0 else np.zeros_like(bias))
                    for d in range(self.rnn.num_directions)]
        return self._derived(("split", tuple(heads)), split)

    def _memo_rows(self, batch, clear=True):
        """The memo's row of each of the batch's forms (computing those it lacks), or None
        when they are more than it holds; the caller holds _memo_lock.  clear=False (the
        next batch's rows, found while a pass reads its own): None also where the forms
        do not fit in the free rows or the weights changed, the memo left as it was."""
        if self._memo is None:
            self._memo = ProjectionMemo(self.rnn, self.memo_capacity)
        if self._memo_version != self.version:
            if not clear:
                return None
            self._memo.clear()
            self._memo_version = self.version
        ahead = batch.rows_ahead if self._rows_ahead_valid(batch) else None
        if ahead is not None:
            batch.rows_ahead = None  # used once
            rows = ahead[2]  # found by the pass before (_rows_ahead)
        else:
            rows = self._memo.rows(batch.forms, lambda missing: self._word_inputs(
                list(map(batch.forms.__getitem__, missing.tolist())),
                batch.word_ids_of(missing), batch.vocab,
                missing if self.config["shape_dim"] else None, batch), clear)
        if rows is not None:  # for form_values(), which checks they are still the memo's
            batch.memo_rows = (self._memo, self._memo.generation, rows)
        return rows

    @contextlib.contextmanager
    def _rows_ahead(self, following):
        """Context of a memoised pass (the caller holds _memo_lock, and has its batch's
        rows), giving the function the pass calls as its encoder starts (forward_projected's
        queue_first), or None: the memo's rows of the `following` batch (its forms looked
        up, the new ones' characters run and projected) are then found on the second
        thread, ahead of its share of the first layer, while this thread runs its first
        steps, and left on that batch for its own pass (Batch.rows_ahead).  That Python and
        those products ran on this thread between two passes, while the second core
        waited.  The second thread works under this caller's lock: only free rows are
        filled (no clear(): this pass reads its rows meanwhile), and the work is waited
        for (dropped, if the second thread has not started it) before the block ends,
        whatever happens, so that nothing changes the memo once the lock is released.  A
        failure finding the rows only loses the head start: the following pass finds them
        itself."""
        if (following is None or self._rows_ahead_valid(following)
                or runtime.threads_beside_blas(self.rnn.threads) < 2):
            yield None  # (valid already: the pass ran again over the same batch)
            return

        def find():
            rows = self._memo_rows(following, clear=False)
            if rows is not None:
                following.rows_ahead = (self._memo, self._memo.generation, rows)

        # made before it is queued: an interrupt can never leave it running unwatched
        job = runtime.job_beside(find)
        queued = False

        def queue():
            nonlocal queued
            if not queued:
                runtime.queue_beside(job)
                queued = True

        try:
            yield queue
        except BaseException:
            if queued:  # nothing left changing the memo behind the error
                job.cancel()
                interrupt = job.wait_quietly()
                if interrupt is not None:
                    raise interrupt
            raise
        if queued:
            # not started by the second thread: dropped, never run here (an exception a
            # signal handler raised inside it would pass for its own failure)
            job.cancel()
            interrupt = job.wait_quietly()  # whatever comes meanwhile: it ends first
            if interrupt is not None:
                raise interrupt
            try:
                job.result()
            except Exception:  # dropped, or failed there: the following pass finds them
                following.rows_ahead = None

    def _rows_ahead_valid(self, batch):
        """Whether batch.rows_ahead are rows of this network's memo as it is now."""
        ahead = batch.rows_ahead
        return (ahead is not None and ahead[0] is self._memo
                and ahead[1] == self._memo.generation)

    def form_values(self, batch, name, owner, compute):
        """(len(batch.forms),) int64 values of the batch's forms that depend on the forms
        alone: compute(forms) of them, each form's kept in the memo beside its projection
        (ProjectionMemo.form_values; name and owner say which values) when this network's
        memo last gave the batch its rows and still holds them, so that a pass over text
        the memo knows looks up no form again.  Thread-safe as infer() is: with the memo
        busy in another thread, compute() takes every form."""
        held = batch.memo_rows
        if held is not None and self._memo_lock.acquire(blocking=False):
            try:
                memo, generation, rows = held
                if memo is self._memo and generation == memo.generation:
                    forms = batch.forms
                    return memo.form_values(name, owner, rows, lambda positions: compute(
                        list(map(forms.__getitem__, positions.tolist()))))
            finally:
                self._memo_lock.release()
        return compute(batch.forms)

    def head_bounds(self, heads=None):
        """Where each of `heads` (indexes; None: all) starts and ends in infer()'s result."""
        if heads is None:
            return self.bounds
        return np.cumsum([0] + [self.bounds[k + 1] - self.bounds[k] for k in heads]
                         ).astype(np.int64)

    def _head_layer(self, heads):
        """(weight, bias, bounds) of the output layer's rows of `heads` (None: all), kept
        for the weights' version: infer's product covers only the heads asked for."""
        if heads is None:
            return self.output_weight, self.output_bias, self.bounds
        def stack():
            rows = np.concatenate([np.arange(self.bounds[k], self.bounds[k + 1])
                                   for k in heads])
            return (np.ascontiguousarray(self.output_weight[rows]),
                    np.ascontiguousarray(self.output_bias[rows]), self.head_bounds(heads))
        return self._derived(("rows", tuple(heads)), stack)

    def _word_inputs(self, forms, word_ids, vocab, missing, batch):
        """The first recurrent layer's inputs (len(forms), D) of distinct word forms (the
        batch's forms `missing`, whose shapes it gives; None without a shape embedding)."""
        lengths, char_ids = vocab.chars_of(forms)
        char_final = self.char_rnn.final_states(self._char_projections(), char_ids, lengths,
                                                packed=self._char_packed())
        parts = [self.word_embedding[word_ids], char_final[0], char_final[1]]
        if missing is not None:
            parts.append(self.shape_embedding[batch.form_shapes[missing]])
        return np.concatenate(parts, axis=1)

    def _output(self, hidden):
        logits = hidden @ self.output_weight.T
        logits += self.output_bias
        return logits if self.crf is not None else _log_softmax(logits, self.bounds)


    # ---- what the scores say ------------------------------------------------------------

    def scores(self, batch, memo=False):
        """forward()'s scores in inference (infer()'s with memo): log-probabilities, or
        a CRF's emissions."""
        return self.infer(batch) if memo else self.forward(batch)[0]

    def best_tag_ids(self, batch, memo=False):
        """(N,) the best tag id of each packed row: each row's most probable, or with a
        CRF the rows' part of their sentence's best tag sequence (Viterbi).  The first
        head's (a model's tags)."""
        if self.crf is not None:
            return self.crf.decode(self.scores(batch, memo), batch.packing)
        if memo:
            return self.infer(batch, [0], normalize=False).argmax(axis=1)
        return self.forward(batch)[0][:, :self.bounds[1]].argmax(axis=1)

    def log_probs(self, batch, memo=False):
        """(N, n_tags) each packed row's tag log-probabilities (with a CRF: of its
        marginals, given the whole sentence); every head's segment."""
        scores = self.scores(batch, memo)
        if self.crf is not None:
            return self.crf.log_marginals(scores, batch.packing)
        return scores

    def backward(self, cache, grad_log_probs):
        """Gradients of every parameter given d loss / d log_probs.

        Returns (dense, sparse): dense {name: gradient}; sparse {name: (row ids, rows)} for
        the embeddings, whose gradient touches only the rows a batch used.
        """
        with runtime.single_blas_thread():
            return self._backward(cache, self._grad_logits(cache, grad_log_probs))

    def _grad_logits(self, cache, grad_log_probs):
        """d loss / d logits from d loss / d log_probs."""
        if self.crf is not None:  # the CRF's emissions are the logits
            return grad_log_probs
        # log-softmax of each head's segment: d logits = g - softmax * (g's sum over the
        # segment)
        probs = np.exp(cache["log_probs"])
        sizes = np.diff(self.bounds)
        sums = np.add.reduceat(grad_log_probs, self.bounds[:-1], axis=1)
        return grad_log_probs - probs * np.repeat(sums, sizes, axis=1)

    def _backward(self, cache, grad_logits):
        c = self.config
        batch = cache["batch"]
        dense = {}
        # the output layer's two products, one on each core when allowed (the main thread
        # alone would run them while the second core waits for the recurrent layers)
        hidden = cache["hidden"]
        if runtime.threads_beside_blas(self.rnn.threads) >= 2:
            other = runtime.run_beside(np.matmul, grad_logits.T, hidden)
            try:
                grad_hidden = grad_logits @ self.output_weight
            finally:
                dense["output.weight"] = other.result()
        else:
            dense["output.weight"] = grad_logits.T @ hidden
            grad_hidden = grad_logits @ self.output_weight
        dense["output.bias"] = grad_logits.sum(axis=0)
        if cache["output_mask"] is not None:
            grad_hidden *= cache["output_mask"]
        grad_inputs, rnn_grads, _, _ = self.rnn.backward_packed(cache["rnn_cache"], grad_hidden)
        dense.update({"rnn." + k: v for k, v in rnn_grads.items()})
        if cache["input_mask"] is not None:
            grad_inputs *= cache["input_mask"]
        word_dim = c["word_dim"]
        sparse = {"word_embedding": _sum_rows(cache["word_ids"], grad_inputs[:, :word_dim])}
        grad_forms = np.zeros((cache["n_forms"], grad_inputs.shape[1] - word_dim),
                              dtype=self.dtype)
        _core.add_rows(grad_forms, batch.form_of_row, grad_inputs[:, word_dim:])
        hc = c["char_hidden"]
        if c["shape_dim"]:
            sparse["shape_embedding"] = _sum_rows(batch.form_shapes, grad_forms[:, 2 * hc:])
        grad_final = np.stack([grad_forms[:, :hc], grad_forms[:, hc:2 * hc]])
        grad_chars, char_grads, _, _ = self.char_rnn.backward_packed(
            cache["char_cache"], None, grad_h_n=grad_final, grad_c_n=None)
        dense.update({"char_rnn." + k: v for k, v in char_grads.items()})
        sparse["char_embedding"] = _sum_rows(batch.char_ids, grad_chars)
        return dense, sparse

    def loss_and_gradients(self, batch, rng, word_ids=None):
        """The sum over heads of the mean negative log-likelihood of the gold labels (rows
        whose label is unknown, -1, left out; with a CRF, of one column: of the sentences'
        gold tag sequences, divided by the tokens), its gradients, and the count of right
        best labels, averaged over the heads (a float; an int for one head)."""
        if self.crf is not None:
            return self._crf_loss_and_gradients(batch, rng, word_ids)
        log_probs, cache = self.forward(batch, training=True, rng=rng, word_ids=word_ids)
        targets = batch.targets
        loss = 0.0
        correct = 0
        gold_cells = []
        for k in range(self.n_heads):
            gold = targets[:, k]
            rows = np.flatnonzero(gold >= 0)
            n = max(len(rows), 1)
            columns = self.bounds[k] + gold[rows]
            loss -= log_probs[rows, columns].sum() / n
            best = log_probs[:, self.bounds[k]:self.bounds[k + 1]].argmax(axis=1)
            correct += int((best == gold).sum())
            gold_cells.append((rows, columns, 1.0 / n))
        # d loss / d logits of a head's log-softmax segment: (softmax - one-hot of the gold
        # label) / n, zero in rows whose label is unknown; written over the log-probs,
        # which are spent (what _grad_logits gives from the loss's d log_probs, bit for
        # bit, without its passes over every output)
        grad = grad_logits_in_place(log_probs, gold_cells, self.bounds)
        with runtime.single_blas_thread():
            dense, sparse = self._backward(cache, grad)
        if self.n_heads > 1:
            correct /= self.n_heads
        return float(loss), dense, sparse, correct


    def _crf_loss_and_gradients(self, batch, rng, word_ids):
        emissions, cache = self.forward(batch, training=True, rng=rng, word_ids=word_ids)
        if (batch.tag_ids < 0).any():
            raise ValueError("a CRF trains on sentences whose every tag it knows")
        with runtime.single_blas_thread():
            loss, grad, crf_grads = self.crf.loss_and_gradients(
                emissions, batch.packing, batch.tag_ids, 1.0 / max(batch.n_tokens, 1))
        dense, sparse = self.backward(cache, grad)
        dense.update(crf_grads)
        correct = int((self.crf.decode(emissions, batch.packing) == batch.tag_ids).sum())
        return float(loss), dense, sparse, correct


def _analysis_panels(weight, bias, starts, lanes=8):
    """(panels (P, D, lanes), bias (lanes P,), panel_starts (G + 1,)): the analyses' summed
    weights (M, D) and biases (M,) in csrc/analyses_step.h's layout, group g (rows
    starts[g]:starts[g + 1] of weight) in panels panel_starts[g]:panel_starts[g + 1] of
    `lanes` analyses each (8 for the AVX2 kernel, 16 for the AVX-512 one), zeros past its
    last."""
    widths = np.diff(starts)
    counts = -(-widths // lanes)
    panel_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    D = weight.shape[1]
    panels = np.zeros((int(panel_starts[-1]) * lanes, D), dtype=np.float32)
    biases = np.zeros(len(panels), dtype=np.float32)
    for g, (a, b) in enumerate(zip(starts[:-1].tolist(), starts[1:].tolist())):
        at = int(panel_starts[g]) * lanes
        panels[at:at + b - a] = weight[a:b]
        biases[at:at + b - a] = bias[a:b]
    # (lanes P, D) -> (P, D, lanes): panel p's column k holds its analyses' weights k
    panels = np.ascontiguousarray(panels.reshape(-1, lanes, D).transpose(0, 2, 1))
    return panels, biases, panel_starts


def _dropout_mask(rng, shape, rate, dtype):
    keep = 1.0 - rate
    return (rng.random(shape, dtype=np.float32) < keep).astype(dtype) / dtype(keep)


def grad_logits_in_place(log_probs, gold_cells, bounds):
    """d loss / d logits of the heads' log-softmax segments, written over log_probs (N, C),
    which are spent: in segment k, (softmax - one-hot of the gold label) * scale in the rows
    of gold_cells[k] = (rows, gold columns, scale = 1 / their count), zero in the others."""
    grad = np.exp(log_probs, out=log_probs)
    for k, (rows, columns, scale) in enumerate(gold_cells):
        segment = grad[:, bounds[k]:bounds[k + 1]]
        if len(rows) == len(grad):
            segment *= scale
        else:
            row_scale = np.zeros(len(grad), dtype=grad.dtype)
            row_scale[rows] = scale
            segment *= row_scale[:, None]
        grad[rows, columns] -= scale
    return grad


def _log_softmax(logits, bounds=None):
    """log-softmax of each row of logits (N, C), in place (one compiled pass; NumPy took
    six over temporaries: 3 % of tagging time); with bounds, of each segment [bounds[k],
    bounds[k + 1]) of a row on its own (the output heads)."""
    if bounds is None or len(bounds) == 2:
        _core.log_softmax_rows(logits)
    else:
        _core.log_softmax_segments(logits, bounds)
    return logits


def _sum_rows(ids, grad_rows):
    """Sum gradient rows that share an id: (unique ids, summed rows)."""
    unique, inverse = np.unique(ids, return_inverse=True)
    summed = np.zeros((len(unique), grad_rows.shape[1]), dtype=grad_rows.dtype)
    _core.add_rows(summed, inverse.astype(np.int64).ravel(), grad_rows)
    return unique, summed
