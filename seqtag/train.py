"""The training loop: length-bucketed batches, epochs, dev selection, early stopping,
checkpoints to resume from, and a clean stop on Ctrl-C."""

import contextlib
import hashlib
import json
import os
import time

import numpy as np

from . import __version__, _core, modelfile
from .config import MetadataError, NetworkConfig, TrainingConfig
from .errors import ModelError, SeqtagError
from .heads import encode_targets
from .inference import dev_scores
from .network import Batch, Network
from .optim import SGD, Adam, clip_by_global_norm, run_jobs
from .vocab import Vocabulary

#: The training options' defaults (declared in seqtag.config.TrainingConfig).
DEFAULTS = TrainingConfig().to_dict()

#: The "kind" in a checkpoint's metadata (a model has none).
CHECKPOINT_KIND = "seqtag-checkpoint"
#: Options a resumed run may set anew; the others shape the run, so they stay the checkpoint's.
RESUMABLE_OPTIONS = TrainingConfig.resumable()
#: Options whose None the corpus's size settles (seqtag.config.auto_schedule).
AUTO_SCHEDULED = ("epochs", "patience", "decay_patience")


def check_crf_columns(output_layer, columns):
    """SeqtagError where a CRF output layer is asked for over CoNLL-U columns it cannot
    decode: several (one CRF per model), or LEMMA's edit scripts.  Training and
    Tagger.train_files (before the front end) ask it alike."""
    if output_layer != "crf" or not columns:
        return
    if len(columns) > 1:
        raise SeqtagError(f"a CRF output layer is for a model of one column, not "
                          f"{len(columns)} columns: give --columns one column, or "
                          "--output-layer softmax")
    if columns[0] == "lemma":
        raise SeqtagError("a CRF output layer is for tags (UPOS, XPOS, FEATS or span tags), "
                          "not LEMMA's edit scripts: give --output-layer softmax")


def check_dev_can_be_held_out(sentences):
    """SeqtagError where split_dev cannot leave a sentence on each side."""
    if len(sentences) < 2:
        raise SeqtagError("need at least 2 training sentences to hold some out as dev data; "
                          "give --dev")


def split_dev(sentences, fraction, seed):
    """Hold out a random `fraction` of the sentences (at least one) as a dev set."""
    check_dev_can_be_held_out(sentences)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sentences))
    n_dev = min(max(1, int(round(len(sentences) * fraction))), len(sentences) - 1)
    dev = [sentences[i] for i in sorted(order[:n_dev])]
    train = [sentences[i] for i in sorted(order[n_dev:])]
    return train, dev


def epoch_batches(sentences, batch_size, rng):
    """Shuffled batches of sentences of similar length: pools of 50 batches are sorted by
    length and cut, so little of a packed batch runs with only a few rows left."""
    order = rng.permutation(len(sentences))
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: len(sentences[i]))
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C after at least one finished epoch: training stopped with the best weights so far.

    .network holds them, with .vocab and .history (the finished epochs); Tagger.train adds
    .tagger, the model of the best epoch, for the caller to save.  Still a KeyboardInterrupt,
    so a script that does not look for it stops as Ctrl-C should make it.
    """

    def __init__(self, network, vocab, history):
        super().__init__("training interrupted")
        self.network, self.vocab, self.history = network, vocab, history
        self.tagger = None


def corpus_fingerprint(train_sents, dev_sents):
    """A hash of the training and dev sentences: a checkpoint resumes only the run it came from
    (another corpus would silently give another model)."""
    digest = hashlib.sha256()
    for part in (train_sents, dev_sents):
        for s in part:
            digest.update(json.dumps([s.words, s.tags, getattr(s, "columns", None)],
                                     ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def resolve_output_layer(model_config, tags, n_heads=1):
    """The NetworkConfig with what depends on the tags settled: output_layer "auto" made
    "crf" for span tags (seqtag.spans: O, B-X, I-X, E-X, S-X), "softmax" for any other
    tag set or for several heads (a CRF is an output layer of one column: SeqtagError if
    asked for with several); shape_dim None made 8 for span tags, 0 for others."""
    from . import spans
    if not isinstance(model_config, NetworkConfig):
        model_config = NetworkConfig.from_dict(model_config)
    span_tags = spans.looks_like_spans(tags) and n_heads == 1
    changes = {}
    if n_heads > 1 and model_config.output_layer == "crf":
        raise SeqtagError(f"a CRF output layer is for a model of one column, not "
                          f"{n_heads} heads: give --columns one column, or "
                          "--output-layer softmax")
    if model_config.output_layer == "auto":
        changes["output_layer"] = "crf" if span_tags else "softmax"
    if model_config.shape_dim is None:
        changes["shape_dim"] = 8 if span_tags else 0
    return model_config.replace(**changes)


def auto_options(opts):
    """Names of the options of a TrainingConfig left to the rule (None: auto_schedule)."""
    return tuple(name for name in AUTO_SCHEDULED if getattr(opts, name) is None)


def make_optimizer(params, opts):
    """The optimizer a TrainingConfig names, at its learning rate."""
    if opts.optimizer == "adam":
        return Adam(params, lr=opts.learning_rate, betas=(0.9, 0.9), threads=opts.threads,
                    dense_rows=opts.embedding_adam == "dense")
    return SGD(params, lr=opts.learning_rate)  # TrainingConfig accepts no other optimizer


def _training_config(options):
    """A TrainingConfig from one, or from a dict of options (the others take defaults)."""
    return options if isinstance(options, TrainingConfig) else TrainingConfig.from_dict(options)


class TrainingState:
    """A run between two epochs, whole: weights, optimizer moments and rate, the random
    generator, the best epoch so far, the stale count and the history.

    save() writes it as a checkpoint (an .npz through seqtag.modelfile: arrays and JSON, no
    pickles, written atomically); a run continued from load() goes on exactly as if it had
    never stopped, so with the same data it ends with the same model, bit for bit.
    """

    def __init__(self, network, vocab, opts, fingerprint, frozen_rows=None, embeddings=None):
        """opts: a TrainingConfig, or a dict of training options.  frozen_rows: ids of the
        word embedding's rows that never change (--freeze-embeddings); embeddings: what
        seqtag.embeddings.PretrainedVectors.info() said of the vectors, if any."""
        opts = _training_config(opts)
        self.network, self.vocab, self.opts, self.fingerprint = network, vocab, opts, fingerprint
        self.frozen_rows, self.embeddings = frozen_rows, embeddings
        self.params = network.arrays()
        self.optimizer = make_optimizer(self.params, opts)
        self.rng = np.random.default_rng(opts.seed)
        self.best, self.best_params, self.stale, self.history = -1.0, None, 0, []
        # an exponential moving average of the weights over the steps: it scores better on
        # dev than the weights of any one step (the last steps' noise averages out)
        self.average = ({k: v.copy() for k, v in self.params.items()}
                        if opts.average else None)
        self.path = None  # the checkpoint it was loaded from
        #: the caller's choices a resumed run keeps, beside the options (Tagger.train_files:
        #: whether a front end is learned; the command line: float16 weights)
        self.flags: dict = {}
        #: the options the run's config left to the rule (TrainingConfig.scheduled)
        self.auto = ()

    @property
    def epoch(self):
        """Epochs finished."""
        return len(self.history)

    def restore_best(self):
        for name, value in self.best_params.items():
            self.params[name][...] = value
        self.network.changed()

    def update_average(self):
        # a short memory at first, so the average soon forgets the random initial weights
        steps = self.optimizer.steps
        decay = min(self.opts.average, (1 + steps) / (10 + steps))
        # a pass over every weight, shared by the two cores as Adam's is
        run_jobs([(value.size, _core.ema_update,
                   (self.average[name].reshape(-1), value.reshape(-1), decay))
                  for name, value in self.params.items()], self.opts.threads)

    @contextlib.contextmanager
    def holding(self, weights):
        """Run the block with the network holding `weights` (None: its own), then restore."""
        if weights is None:
            yield
            return
        saved = {k: v.copy() for k, v in self.params.items()}
        for name, value in weights.items():
            self.params[name][...] = value
        self.network.changed()
        try:
            yield
        finally:
            for name, value in saved.items():
                self.params[name][...] = value
            self.network.changed()

    def save(self, path):
        opt_arrays, opt_meta = self.optimizer.state()
        arrays = {"params." + k: v for k, v in self.params.items()}
        arrays.update({"best." + k: v for k, v in self.best_params.items()})
        if self.average is not None:
            arrays.update({"average." + k: v for k, v in self.average.items()})
        arrays.update(opt_arrays)
        if self.frozen_rows is not None:
            arrays["frozen_rows"] = self.frozen_rows
        meta = {"kind": CHECKPOINT_KIND, "embeddings": self.embeddings, "seqtag_version": __version__,
                "network": self.network.config, "vocab": self.vocab.to_meta(),
                "training": self.opts.to_dict(), "corpus_fingerprint": self.fingerprint,
                "optimizer": dict(opt_meta, lr=self.optimizer.lr),
                "rng": self.rng.bit_generator.state, "best": self.best, "stale": self.stale,
                "history": self.history, "auto_options": list(self.auto),
                "flags": self.flags}
        modelfile.save_model(path, arrays, meta)

    @classmethod
    def load(cls, path):
        """The state saved in a checkpoint; SeqtagError (ModelError) names the file if it is
        missing, broken or not a checkpoint."""
        if not os.path.isfile(path):  # load_model would call it a missing model
            raise ModelError(f"checkpoint not found: {path}")
        arrays, meta = modelfile.load_model(path)
        if meta.get("kind") != CHECKPOINT_KIND:
            raise ModelError(f"{path} is not a training checkpoint (a model cannot be resumed; "
                             "give the .ckpt file that training wrote next to it)")
        try:
            vocab = Vocabulary.from_meta(meta["vocab"])
            # a checkpoint written before an option existed has none: it takes the default
            opts = TrainingConfig.from_meta(meta["training"], "training options")
            net_config = NetworkConfig.from_meta(meta["network"], "network options")
            network = Network(net_config, len(vocab.words), len(vocab.chars),
                              [head.size for head in vocab.heads], threads=opts.threads,
                              init=False)
            if network.crf is not None:
                network.crf.set_tags(vocab.tags)
            expected = network.expected_shapes()
            modelfile.check_shapes({k[len("params."):]: v for k, v in arrays.items()
                                    if k.startswith("params.")}, expected)
            # private, writable copies: training updates them in place
            network.load_arrays({k: np.array(arrays["params." + k]) for k in expected})
            frozen = arrays.get("frozen_rows")
            state = cls(network, vocab, opts, meta["corpus_fingerprint"],
                        None if frozen is None else frozen.astype(np.int64),
                        meta.get("embeddings"))
            state.best_params = {k: np.array(arrays["best." + k]) for k in expected}
            if state.average is not None:
                state.average = {k: np.array(arrays["average." + k]) for k in expected}
            state.optimizer.load_state(arrays, meta["optimizer"])
            state.optimizer.lr = _number(meta["optimizer"]["lr"], "the optimizer's lr")
            state.rng.bit_generator.state = meta["rng"]
            state.best = _number(meta["best"], "best")
            state.stale = meta["stale"]
            if not isinstance(state.stale, int) or isinstance(state.stale, bool) \
                    or state.stale < 0:
                raise TypeError(f"stale is {state.stale!r}, not a count")
            state.history = meta["history"]
            if not isinstance(state.history, list) or not all(
                    isinstance(r, dict) and not isinstance(r.get("dev_acc"), bool)
                    and isinstance(r.get("dev_acc"), (int, float)) for r in state.history):
                raise TypeError("history is not a list of epochs with their dev_acc")
            state.auto = tuple(meta.get("auto_options", ()))  # none before the rule existed
            state.flags = _checked_flags(meta.get("flags") or {})  # none before flags existed
        except MetadataError as e:
            raise ModelError(f"{path} has invalid metadata: {e}") from None
        except ModelError as e:
            raise ModelError(f"{path}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{path} is a broken checkpoint: {type(e).__name__}: {e}") from None
        state.path = path
        return state

    def resumed_options(self, net_config, train_opts):
        """The TrainingConfig of the resumed run: the checkpoint's, with the resumable
        options (epochs, patience, max_time, threads) as given.  Any other option given
        with another value is refused: the run would not be the one that stopped.
        net_config, train_opts: the options given, as dicts (values already checked)."""
        for name, value in net_config.items():
            if self.network.config.get(name) != value:
                raise SeqtagError(f"cannot resume with {name} {value!r}: the run in {self.path} "
                                  f"has {self.network.config.get(name)!r}")
        kept = self.opts.to_dict()
        changes = {}
        for name, value in train_opts.items():
            if name in RESUMABLE_OPTIONS:
                changes[name] = value
            elif kept.get(name) != value:
                raise SeqtagError(f"cannot resume with {name} {value!r}: the run in {self.path} "
                                  f"has {kept.get(name)!r} (only {', '.join(RESUMABLE_OPTIONS)} "
                                  "can change)")
        return self.opts.replace(**changes)


def _number(value, name):
    """A checkpoint's number (TypeError naming it otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} is {value!r}, not a number")
    return value


def _checked_flags(flags):
    """A checkpoint's flags: a JSON object of booleans (TypeError otherwise)."""
    if not isinstance(flags, dict) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in flags.items()):
        raise TypeError("its flags are not an object of true and false")
    return dict(flags)


def resumed_flags(path) -> dict:
    """The flags of the run saved in checkpoint `path` (TrainingState.flags); ModelError
    names the file if it is missing or broken."""
    return TrainingState.load(path).flags


def train(train_sents, dev_sents, model_config, options, progress=None, *, state=None,
          checkpoint=None, on_best=None, pretrained=None, heads=None, column="upos",
          auto=None, flags=None):
    """Train a network; returns (network, vocab, history).

    heads: the output heads (seqtag.heads.build_heads) to learn from the sentences'
    .columns; None: one head over their tags, predicting `column`.

    model_config: a NetworkConfig or a dict of network options; options: a TrainingConfig or
    a dict of training options (the options left out take their defaults; epochs, patience
    and decay_patience that are None are set by TrainingConfig.scheduled for the number of
    training sentences).  auto: the names of the options the rule chose, for the checkpoint
    to record, when the caller has scheduled them already (default: those None in options;
    a resumed run keeps its checkpoint's unless given).  flags: the caller's choices
    (booleans) the checkpoint records for a resumed run (TrainingState.flags).
    progress(event) gets {"type": "batch", ...} during an epoch and {"type": "epoch", ...}
    after it.  The returned network holds the weights of the best dev epoch.

    state: a TrainingState.load()ed checkpoint to continue (options as resumed_options gives
    them), else a new run starts.  After every epoch, in this order: on_best(network, vocab,
    history) if the epoch improved the dev score (the network holds that epoch's weights),
    the whole state saved to the path `checkpoint` if given, then the progress event, so a
    reported epoch is on disk.  Ctrl-C raises TrainingInterrupted with the best weights so
    far, or KeyboardInterrupt itself if no epoch has finished.

    pretrained: seqtag.embeddings.PretrainedVectors for a new run: their words join the
    vocabulary (counted 0 times), they initialise the word embedding, and with the
    freeze_embeddings option their rows never change.
    """
    if not train_sents:
        raise SeqtagError("the training corpus has no sentences")
    given = _training_config(options)
    # epochs, patience and decay_patience left to the rule: sized by the corpus
    opts = given.scheduled(len(train_sents))
    if not dev_sents:
        raise SeqtagError("the dev corpus has no sentences")
    fingerprint = corpus_fingerprint(train_sents, dev_sents)
    if state is None:
        vocab = Vocabulary.build(train_sents, heads=heads, column=column)
        model_config = resolve_output_layer(model_config, vocab.tags, len(vocab.heads))
        if pretrained is not None:
            vocab = vocab.with_words(pretrained.extra_keys)
        network = Network(model_config, len(vocab.words), len(vocab.chars),
                          [head.size for head in vocab.heads], seed=opts.seed,
                          threads=opts.threads)
        if network.crf is not None:
            network.crf.set_tags(vocab.tags)
        frozen, info = None, None
        if pretrained is not None:
            from .embeddings import initialise
            rows = initialise(network.word_embedding, vocab.words, pretrained)
            frozen, info = (rows if opts.freeze_embeddings else None), pretrained.info()
        state = TrainingState(network, vocab, opts, fingerprint, frozen, info)
        state.auto = auto_options(given) if auto is None else tuple(auto)
        state.flags = _checked_flags(flags or {})
    else:
        if flags:  # given again (train_files and the command line resolve them to the run's)
            state.flags = _checked_flags({**state.flags, **flags})
        if state.fingerprint != fingerprint:
            raise SeqtagError(f"{state.path} is a checkpoint of a run on other sentences; "
                              "resume it with the same corpus and dev data")
        state.opts = opts
        if auto is not None:
            state.auto = tuple(auto)
        state.network.set_threads(opts.threads)
        state.optimizer.threads = opts.threads
    started = time.perf_counter()
    # the gold label ids of every head, once: a lemma's edit script costs a string
    # alignment, not to be paid again every epoch
    targets = (encode_targets(state.vocab.heads, train_sents),
               encode_targets(state.vocab.heads, dev_sents))
    ran = 0  # max_time stops a run after the epoch running: one at least, however short
    try:
        while (state.epoch < opts.epochs and state.stale < opts.patience
               and not (opts.max_time and ran
                        and time.perf_counter() - started > opts.max_time)):
            # an overflow shows as a NaN loss, which _run_epoch reports as one line: NumPy's
            # warnings of it on the way are noise (errstate restores the caller's settings)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                record = _run_epoch(state, train_sents, dev_sents, targets, progress)
            ran += 1
            if record["best"] and on_best:
                with state.holding(state.best_params):
                    on_best(state.network, state.vocab, state.history)
            if checkpoint is not None:
                state.save(checkpoint)
            if progress:  # with the whole run so far (a resumed run's earlier epochs too)
                progress(dict(record, history=list(state.history)))
    except KeyboardInterrupt:
        if state.best_params is None:
            raise
        state.restore_best()  # the epoch cut short may have half-updated the weights
        raise TrainingInterrupted(state.network, state.vocab, state.history) from None
    state.restore_best()
    return state.network, state.vocab, state.history


def _run_epoch(state, train_sents, dev_sents, targets, progress):
    """Train one epoch and score it on dev; updates `state` and returns the epoch's record."""
    opts, network, vocab, rng = state.opts, state.network, state.vocab, state.rng
    epoch = state.epoch + 1
    word_dropout = network.config["word_dropout"]
    total_tokens = sum(len(s) for s in train_sents)
    epoch_start = time.perf_counter()
    loss_sum = correct = done = 0
    for ids in epoch_batches(train_sents, opts.batch_size, rng):
        sents = [train_sents[i] for i in ids]
        batch = Batch([s.words for s in sents], vocab,
                      targets=np.concatenate([targets[0][i] for i in ids]))
        word_ids = batch.word_ids
        if word_dropout:
            # rare words are sometimes <unk>, so the net learns to read characters
            counts = vocab.word_counts[word_ids]
            drop = rng.random(len(word_ids)) < word_dropout / (word_dropout + counts)
            word_ids = np.where(drop, 1, word_ids)
        loss, dense, sparse, right = network.loss_and_gradients(batch, rng, word_ids)
        if state.frozen_rows is not None:  # pretrained vectors kept as they are
            ids, rows = sparse["word_embedding"]
            learn = ~np.isin(ids, state.frozen_rows)
            sparse["word_embedding"] = (ids[learn], rows[learn])
        if not np.isfinite(loss):
            raise SeqtagError(f"the loss became {loss} in epoch {epoch}; training stopped "
                              "(try a lower --lr)")
        norm = clip_by_global_norm(dense, sparse, opts.clip)
        if not np.isfinite(norm):  # a finite loss can still have NaN gradients
            raise SeqtagError(f"the gradients became {norm} in epoch {epoch}; training stopped "
                              "(try a lower --lr)")
        state.optimizer.step(dense, sparse)
        network.changed()
        if state.average is not None:
            state.update_average()
        loss_sum += loss * batch.n_tokens
        correct += right
        done += batch.n_tokens
        if progress:
            elapsed = time.perf_counter() - epoch_start
            progress({"type": "batch", "epoch": epoch, "tokens_done": done,
                      "tokens_total": total_tokens, "loss": loss_sum / done,
                      "tokens_per_s": done / max(elapsed, 1e-9)})
    with state.holding(state.average):
        dev = dev_scores(network, vocab, dev_sents, targets[1])
        # span tags: the epoch with the best span F1 (what span taggers are scored on)
        dev_acc, dev_f1 = dev["accuracy"], dev["span_f1"]
        dev_score = dev_acc if dev_f1 is None else dev_f1
        improved = dev_score > state.best
        if improved:
            state.best_params = {k: v.copy() for k, v in state.params.items()}
    if improved:
        state.best, state.stale = dev_score, 0
    else:
        state.stale += 1
        if state.stale % opts.decay_patience == 0:
            state.optimizer.lr *= opts.lr_decay
    record = {"type": "epoch", "epoch": epoch, "loss": loss_sum / max(done, 1),
              "train_acc": correct / max(done, 1), "dev_acc": dev_acc, "dev_f1": dev_f1,
              "dev_score": dev_score,
              "seconds": time.perf_counter() - epoch_start, "best": improved,
              "lr": state.optimizer.lr}
    state.history.append(record)
    return record
