"""The public tagger: train, tag, evaluate, save and load.

    >>> from seqtag import Tagger
    >>> tagger = Tagger.load()                 # the bundled English (UD EWT, UPOS) model
    >>> tagger.tag("The dog barked.")
    [('The', 'DET'), ('dog', 'NOUN'), ('barked', 'VERB'), ('.', 'PUNCT')]
"""

import datetime
import os
from pathlib import Path

import numpy as np

from . import __version__, modelfile
from .corpus import Sentence
from .errors import ModelError, SeqtagError
from .evaluate import score
from .memo import DEFAULT_CAPACITY
from .network import DEFAULTS as NETWORK_DEFAULTS
from .network import Network
from .tokenize import tokenize
from .train import CHECKPOINT_KIND, TrainingInterrupted, TrainingState
from .train import DEFAULTS as TRAIN_DEFAULTS
from .train import predict_log_probs, split_dev
from .train import train as train_network
from .vocab import Vocabulary

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "en_ewt_upos.npz"


def _as_sentences(sents, what):
    """Accept Sentence objects or lists of (word, tag) pairs."""
    out = []
    for i, s in enumerate(sents):
        if isinstance(s, Sentence):
            if s.tags is None:
                raise SeqtagError(f"{what} sentence {i + 1} has no tags")
            out.append(s)
        else:
            try:
                words, tags = zip(*s) if len(s) else ((), ())
            except (TypeError, ValueError):
                raise SeqtagError(f"{what} sentence {i + 1} is not a list of (word, tag) "
                                  "pairs") from None
            out.append(Sentence(list(words), list(tags)))
    return out


class Tagger:
    """A trained part-of-speech tagger."""

    def __init__(self, network, vocab, meta=None):
        self.network = network
        self.vocab = vocab
        self.meta = meta or {}

    # ---- building ----------------------------------------------------------------------

    @classmethod
    def train(cls, train_sents, dev_sents=None, *, progress=None, corpus=None, checkpoint=None,
              resume=None, on_best=None, **options):
        """Train a tagger on tagged sentences (Sentence objects or [(word, tag), ...]).

        Network options: cell ("lstm", "peephole", "gru"), layers, hidden, word_dim,
        char_dim, char_hidden, dropout, word_dropout.  Training options: epochs,
        batch_size, optimizer ("adam", "sgd"), lr, clip, seed, threads, patience,
        max_time, dev_fraction, average (decay of the weights' moving average, 0: off),
        decay_patience, lr_decay.  Without dev_sents, dev_fraction of the training
        sentences are held out to choose the best epoch.

        checkpoint: a path where the whole state of the run is written (atomically) after
        every epoch.  resume: such a path, to continue that run on the same sentences; it
        ends with the model the run would have made uninterrupted, bit for bit.  The
        checkpoint's options are kept; only epochs, patience, max_time and threads may
        change.  on_best(tagger) is called after every epoch that improved the dev score,
        with that epoch's model (save it there and then: training goes on in its arrays).
        Ctrl-C after the first epoch raises TrainingInterrupted (a KeyboardInterrupt) whose
        .tagger is the best model so far.
        """
        unknown = set(options) - set(NETWORK_DEFAULTS) - set(TRAIN_DEFAULTS)
        if unknown:
            raise SeqtagError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        net_config = {k: v for k, v in options.items() if k in NETWORK_DEFAULTS and v is not None}
        train_opts = {k: v for k, v in options.items() if k in TRAIN_DEFAULTS}
        state = None
        if resume is not None:
            state = TrainingState.load(resume)
            train_opts = state.resumed_options(net_config, train_opts)  # also the dev split's
        train_sents = _as_sentences(train_sents, "training")
        held_out = dev_sents is None
        if held_out:
            fraction = train_opts.get("dev_fraction")
            fraction = TRAIN_DEFAULTS["dev_fraction"] if fraction is None else fraction
            seed = train_opts.get("seed")
            seed = TRAIN_DEFAULTS["seed"] if seed is None else seed
            train_sents, dev_sents = split_dev(train_sents, fraction, seed)
        else:
            dev_sents = _as_sentences(dev_sents, "dev")

        def model(network, vocab, history, interrupted=False):
            best = max(history, key=lambda r: r["dev_acc"])
            meta = {
                "seqtag_version": __version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                "network": network.config,
                "training": dict(TRAIN_DEFAULTS, **{k: v for k, v in train_opts.items()
                                                     if v is not None}),
                "corpus": dict(corpus or {}, sentences=len(train_sents),
                               tokens=sum(len(s) for s in train_sents),
                               dev_sentences=len(dev_sents), dev_held_out=held_out),
                "scores": {"dev_accuracy": best["dev_acc"], "best_epoch": best["epoch"],
                           "epochs_run": len(history),
                           "train_seconds": round(sum(r["seconds"] for r in history), 1)},
                "history": [{k: r[k] for k in ("epoch", "loss", "train_acc", "dev_acc",
                                               "seconds")} for r in history],
            }
            if interrupted:
                meta["scores"]["interrupted"] = True
            return cls(network, vocab, meta)

        def best_so_far(network, vocab, history):
            on_best(model(network, vocab, history))

        try:
            network, vocab, history = train_network(
                train_sents, dev_sents, net_config, train_opts, progress, state=state,
                checkpoint=checkpoint, on_best=best_so_far if on_best else None)
        except TrainingInterrupted as e:
            e.tagger = model(e.network, e.vocab, e.history, interrupted=True)
            raise
        return model(network, vocab, history)

    # ---- files -------------------------------------------------------------------------

    def save(self, path, float16=False):
        """Write the model to one .npz file, atomically (a failed save leaves the old file)."""
        meta = dict(self.meta, vocab=self.vocab.to_meta(), network=self.network.config)
        modelfile.save_model(path, self.network.arrays(), meta, float16=float16)

    @classmethod
    def load(cls, path=None, threads=1, memo_words=DEFAULT_CAPACITY):
        """Load a model file; without a path, the bundled English model.

        memo_words: how many distinct word forms tagging remembers the first layer's input
        projection of (seqtag.memo; 4 KB each for the default network, allocated as they
        come; 0 turns it off).  Results are the same either way, up to float32 rounding.
        """
        if (isinstance(memo_words, bool) or not isinstance(memo_words, (int, np.integer))
                or memo_words < 0):
            raise SeqtagError(f"memo_words must be an integer >= 0, got {memo_words!r}")
        if path is None:
            path = DEFAULT_MODEL
            if not path.exists():
                raise ModelError(f"the bundled model is missing from this installation "
                                 f"({path}); reinstall seqtag or pass a model with -m")
        arrays, meta = modelfile.load_model(path)
        if meta.get("kind") == CHECKPOINT_KIND:
            raise ModelError(f"{path} is a training checkpoint, not a model; continue its run "
                             f"with seqtag train --resume {path}")
        try:
            vocab = Vocabulary.from_meta(meta["vocab"])
            network = Network(meta["network"], len(vocab.words), len(vocab.chars),
                              len(vocab.tags), threads=threads, init=False,
                              memo_capacity=memo_words)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{path} has invalid metadata: {e}") from None
        try:
            modelfile.check_shapes(arrays, network.expected_shapes())
        except ModelError as e:  # e.g. a vocabulary that does not fit the embedding
            raise ModelError(f"{path}: {e}") from None
        try:
            network.load_arrays(arrays)
        except (TypeError, ValueError) as e:  # weights that are not real numbers
            raise ModelError(f"{path} has invalid weights: {e}") from None
        meta = {k: v for k, v in meta.items() if k not in ("vocab",)}
        meta["path"] = str(path)
        return cls(network, vocab, meta)

    # ---- tagging -----------------------------------------------------------------------

    @property
    def tagset(self):
        return list(self.vocab.tags)

    def set_threads(self, threads):
        self.network.set_threads(threads)

    def tag(self, tokens):
        """Tag one sentence: a list of tokens, or a string (tokenized first).
        Returns [(word, tag), ...]."""
        if isinstance(tokens, str):
            tokens = tokenize(tokens)
        return self.tag_sents([tokens])[0]

    def tag_sents(self, sentences):
        """Tag many tokenized sentences at once; [[(word, tag), ...], ...]."""
        tags = self.predict(sentences)
        return [list(zip(words, t)) for words, t in zip(sentences, tags)]

    def predict(self, sentences, top_k=None):
        """Tags of tokenized sentences: [[tag, ...], ...]; with top_k, also the k most
        probable tags of each token with their probabilities: ([[tag...]...],
        [[[(tag, p), ...] per token] per sentence])."""
        sentences = [list(s) for s in sentences]
        for i, s in enumerate(sentences):
            for w in s:
                if not isinstance(w, str) or not w:
                    raise SeqtagError(f"sentence {i + 1}: tokens must be non-empty strings, "
                                      f"got {w!r}")
        log_probs = predict_log_probs(self.network, self.vocab, sentences, memo=True)
        tagset = self.vocab.tags
        tags = [[tagset[j] for j in lp.argmax(axis=1)] for lp in log_probs]
        if not top_k:
            return tags
        k = min(int(top_k), len(tagset))
        tops = []
        for lp in log_probs:
            best = np.argsort(-lp, axis=1, kind="stable")[:, :k]
            probs = np.exp(np.take_along_axis(lp, best, axis=1))
            tops.append([[(tagset[j], float(p)) for j, p in zip(row, prow)]
                         for row, prow in zip(best, probs)])
        return tags, tops

    # ---- scoring and description ---------------------------------------------------------

    def evaluate(self, gold_sents):
        """Accuracy (overall, seen and unseen words), per-tag P/R/F1 and confusions."""
        gold_sents = _as_sentences(gold_sents, "gold")
        predicted = self.predict([s.words for s in gold_sents])
        return score(gold_sents, predicted, self.vocab.is_known)

    def info(self):
        """What the model is: tagset, sizes, architecture, corpus, scores, versions."""
        return {
            "path": self.meta.get("path"),
            "seqtag_version": self.meta.get("seqtag_version"),
            "format_version": self.meta.get("format_version"),
            "created": self.meta.get("created"),
            "tagset": self.tagset,
            "vocabulary": {"words": len(self.vocab.words), "chars": len(self.vocab.chars),
                           "tags": len(self.vocab.tags)},
            "network": self.network.config,
            "parameters": int(sum(a.size for a in self.network.arrays().values())),
            "training": self.meta.get("training"),
            "corpus": self.meta.get("corpus"),
            "scores": self.meta.get("scores"),
        }
