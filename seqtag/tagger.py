"""The public tagger: train, tag, evaluate, save and load.

    >>> from seqtag import Tagger
    >>> tagger = Tagger.load()                 # the bundled English (UD EWT, UPOS) model
    >>> tagger.tag("The dog barked.")
    [('The', 'DET'), ('dog', 'NOUN'), ('barked', 'VERB'), ('.', 'PUNCT')]
"""

from __future__ import annotations

import datetime
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, Union, overload

import numpy as np

from . import __version__, inference, modelfile
from .config import MetadataError, NetworkConfig, TaggingConfig, TrainingConfig
from .config import split_training_options
from .corpus import Sentence
from .errors import ModelError, SeqtagError
from .evaluate import score
from .inference import TagProb, best_tags, predict_log_probs
from .network import Network
from .tokenize import tokenize
from .train import CHECKPOINT_KIND, TrainingInterrupted, TrainingState
from .train import split_dev
from .train import train as train_network
from .vocab import Vocabulary

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "en_ewt_upos.npz"

#: A tokenized sentence: its tokens (non-empty strings), or a seqtag.corpus.Sentence.
Tokens = Union[Sequence[str], Sentence]


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

    def __init__(self, network: Network, vocab: Vocabulary,
                 meta: dict[str, Any] | None = None) -> None:
        self.network = network
        self.vocab = vocab
        self.meta = meta or {}

    # ---- building ----------------------------------------------------------------------

    @classmethod
    def train(cls, train_sents: Iterable[Sentence | Sequence[tuple[str, str]]],
              dev_sents: Iterable[Sentence | Sequence[tuple[str, str]]] | None = None, *,
              progress: Callable[[dict[str, Any]], None] | None = None,
              corpus: dict[str, Any] | None = None,
              checkpoint: str | os.PathLike[str] | None = None,
              resume: str | os.PathLike[str] | None = None,
              on_best: Callable[[Tagger], None] | None = None, **options: Any) -> Tagger:
        """Train a tagger on tagged sentences (Sentence objects or [(word, tag), ...]).

        Network options: cell ("lstm", "peephole", "gru"), layers, hidden, word_dim,
        char_dim, char_hidden, dropout, word_dropout.  Training options: epochs,
        batch_size, optimizer ("adam", "sgd"), lr, clip, seed, threads, patience,
        max_time, dev_fraction, average (decay of the weights' moving average, 0: off),
        decay_patience, lr_decay.  seqtag.config.NetworkConfig and TrainingConfig declare
        them: defaults, accepted values, meaning.  An unknown option or a bad value raises
        ConfigError naming it.  Without dev_sents, dev_fraction of the training sentences
        are held out to choose the best epoch.

        checkpoint: a path where the whole state of the run is written (atomically) after
        every epoch.  resume: such a path, to continue that run on the same sentences; it
        ends with the model the run would have made uninterrupted, bit for bit.  The
        checkpoint's options are kept; only epochs, patience, max_time and threads may
        change.  on_best(tagger) is called after every epoch that improved the dev score,
        with that epoch's model (save it there and then: training goes on in its arrays).
        Ctrl-C after the first epoch raises TrainingInterrupted (a KeyboardInterrupt) whose
        .tagger is the best model so far.
        """
        net_given, train_given = split_training_options(options)
        state = None
        if resume is not None:
            state = TrainingState.load(resume)
            train_opts = state.resumed_options(net_given, train_given)  # also the dev split's
            net_config = NetworkConfig.from_dict(state.network.config)
        else:
            train_opts = TrainingConfig.from_dict(train_given)
            net_config = NetworkConfig.from_dict(net_given)
        train_sents = _as_sentences(train_sents, "training")
        held_out = dev_sents is None
        if held_out:
            train_sents, dev_sents = split_dev(train_sents, train_opts.dev_fraction,
                                               train_opts.seed)
        else:
            dev_sents = _as_sentences(dev_sents, "dev")

        def model(network, vocab, history, interrupted=False):
            best = max(history, key=lambda r: r["dev_acc"])
            meta = {
                "seqtag_version": __version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                "network": network.config,
                "training": train_opts.to_dict(),
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

    def save(self, path: str | os.PathLike[str], float16: bool = False) -> None:
        """Write the model to one .npz file, atomically (a failed save leaves the old file)."""
        meta = dict(self.meta, vocab=self.vocab.to_meta(), network=self.network.config)
        modelfile.save_model(path, self.network.arrays(), meta, float16=float16)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None,
             threads: int = TaggingConfig.threads,
             memo_words: int = TaggingConfig.memo_words) -> Tagger:
        """Load a model file; without a path, the bundled English model.

        The loaded weights are read-only (Network.freeze): an in-place edit raises NumPy's
        read-only ValueError instead of tagging with what the network remembered of the old
        weights.  To change them, edit copies and hand them to tagger.network.load_arrays().

        threads: CPU threads tagging uses (2: the two directions of each BiLSTM at once).
        memo_words: how many distinct word forms tagging remembers the first layer's input
        projection of (seqtag.memo; 4 KB each for the default network, allocated as they
        come; 0 turns it off).  Results are the same either way, up to float32 rounding.
        A bad value raises ConfigError naming it (seqtag.config.TaggingConfig).
        """
        settings = TaggingConfig(threads=threads, memo_words=memo_words)
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
            # a model written before an option existed has none: it takes the default
            net_config = NetworkConfig.from_meta(meta["network"], "network options")
            network = Network(net_config, len(vocab.words), len(vocab.chars),
                              len(vocab.tags), threads=settings.threads, init=False,
                              memo_capacity=settings.memo_words)
        except (KeyError, TypeError, ValueError, MetadataError) as e:
            raise ModelError(f"{path} has invalid metadata: {e}") from None
        try:
            modelfile.check_shapes(arrays, network.expected_shapes())
        except ModelError as e:  # e.g. a vocabulary that does not fit the embedding
            raise ModelError(f"{path}: {e}") from None
        try:
            network.load_arrays(arrays)
        except (TypeError, ValueError) as e:  # weights that are not real numbers
            raise ModelError(f"{path} has invalid weights: {e}") from None
        network.freeze()
        meta = {k: v for k, v in meta.items() if k not in ("vocab",)}
        meta["path"] = str(path)
        return cls(network, vocab, meta)

    # ---- tagging -----------------------------------------------------------------------

    @property
    def tagset(self) -> list[str]:
        """The tags the model can give, in the order of its output layer."""
        return list(self.vocab.tags)

    def set_threads(self, threads: int) -> None:
        """Tag on `threads` CPU threads from now on (2: the two directions of each BiLSTM
        at once)."""
        self.network.set_threads(threads)

    def tag(self, tokens: str | Sequence[str]) -> list[tuple[str, str]]:
        """Tag one sentence: a string (split with seqtag.tokenize.tokenize first) or a
        list of tokens.  Returns [(word, tag), ...]."""
        if isinstance(tokens, str):
            words = tokenize(tokens)
        elif isinstance(tokens, (list, tuple)):
            words = _tokens(tokens, "")
        else:
            raise SeqtagError(f"tag() takes a string or a list of tokens, got "
                              f"{type(tokens).__name__}")
        return list(zip(words, self.predict([words])[0]))

    def tag_sents(self, sentences: Iterable[str | Tokens]) -> list[list[tuple[str, str]]]:
        """Tag many sentences at once, batched: each a string (split with
        seqtag.tokenize.tokenize, as tag() does) or a list of tokens.
        Returns [[(word, tag), ...], ...] in the order given."""
        words = _sentences_words(sentences, "tag_sents", strings=True)
        return [list(zip(w, t)) for w, t in zip(words, self.predict(words))]

    @overload
    def predict(self, sentences: Iterable[Tokens], top_k: None = None) -> list[list[str]]: ...

    @overload
    def predict(self, sentences: Iterable[Tokens], top_k: int
                ) -> tuple[list[list[str]], list[list[list[TagProb]]]]: ...

    def predict(self, sentences: Iterable[Tokens], top_k: int | None = None
                ) -> list[list[str]] | tuple[list[list[str]], list[list[list[TagProb]]]]:
        """The tag of each token of tokenized sentences: [[tag, ...], ...].

        top_k=k is deprecated: it returns (tags, predict_top_k(sentences, k)); call
        predict_top_k for the probabilities.
        """
        words = _sentences_words(sentences, "predict", strings=False)
        log_probs = predict_log_probs(self.network, self.vocab, words, memo=True)
        tags = [best_tags(lp, self.vocab.tags) for lp in log_probs]
        if top_k is None:
            return tags
        warnings.warn("Tagger.predict(sentences, top_k=k) is deprecated; use "
                      "Tagger.predict_top_k(sentences, k), whose first pair per token is "
                      "the tag predict() gives", DeprecationWarning, stacklevel=2)
        if not top_k:
            return tags
        return tags, [inference.top_k(lp, int(top_k), self.vocab.tags) for lp in log_probs]

    def predict_top_k(self, sentences: Iterable[Tokens], k: int
                      ) -> list[list[list[TagProb]]]:
        """The k most probable tags of each token of tokenized sentences with their
        probabilities, most probable first (k is cut to the tagset's size): per sentence,
        per token, [(tag, probability), ...].  The first tag of a token is the one
        predict() gives."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise SeqtagError(f"k must be a positive integer, got {k!r}")
        words = _sentences_words(sentences, "predict_top_k", strings=False)
        log_probs = predict_log_probs(self.network, self.vocab, words, memo=True)
        return [inference.top_k(lp, int(k), self.vocab.tags) for lp in log_probs]

    # ---- scoring and description ---------------------------------------------------------

    def evaluate(self, gold_sents: Iterable[Sentence | Sequence[tuple[str, str]]]
                 ) -> dict[str, Any]:
        """Accuracy (overall, seen and unseen words), per-tag P/R/F1 and confusions."""
        gold = _as_sentences(gold_sents, "gold")
        predicted = self.predict([s.words for s in gold])
        return score(gold, predicted, self.vocab.is_known)

    def info(self) -> dict[str, Any]:
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


def _tokens(tokens: Sequence[object], where: str) -> list[str]:
    """The tokens of one sentence, checked: a list of non-empty strings."""
    for w in tokens:
        if not isinstance(w, str) or not w:
            raise SeqtagError(f"{where}tokens must be non-empty strings, got {w!r}")
    return list(tokens)  # type: ignore[arg-type]  # all str: checked above


def _sentences_words(sentences: object, method: str, strings: bool) -> list[list[str]]:
    """The token lists of `sentences` given to Tagger.<method>: lists of tokens or
    Sentences, and with strings=True strings to tokenize.  Anything else (a string where
    sentences belong, which would be tagged character by character) is a SeqtagError."""
    if isinstance(sentences, (str, bytes)):
        raise SeqtagError(f"{method}() takes a list of sentences, not one string; use tag() "
                          "for one sentence")
    try:
        items = iter(sentences)  # type: ignore[call-overload]
    except TypeError:
        raise SeqtagError(f"{method}() takes a list of sentences, got "
                          f"{type(sentences).__name__}") from None
    out = []
    for i, s in enumerate(items):
        if isinstance(s, str) and strings:
            out.append(tokenize(s))
        elif isinstance(s, str):
            raise SeqtagError(f"sentence {i + 1} is a string; {method}() takes lists of "
                              "tokens (tag_sents() tokenizes strings)")
        elif isinstance(s, Sentence):
            out.append(_tokens(s.words, f"sentence {i + 1}: "))
        elif isinstance(s, (list, tuple)):
            out.append(_tokens(s, f"sentence {i + 1}: "))
        else:
            raise SeqtagError(f"sentence {i + 1} must be "
                              f"{'a string or ' if strings else ''}a list of tokens, got "
                              f"{type(s).__name__}")
    return out
