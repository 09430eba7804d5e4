"""The public tagger: train, tag, evaluate, save and load.

    >>> from seqtag import Tagger
    >>> tagger = Tagger.load()                 # the bundled English (UD EWT, UPOS) model
    >>> tagger.tag("The dog barked. It ran.")     # raw text: a list of sentences
    [[('The', 'DET'), ('dog', 'NOUN'), ('barked', 'VERB'), ('.', 'PUNCT')], [('It', 'PRON'), ('ran', 'VERB'), ('.', 'PUNCT')]]
    >>> tagger.tag(["The", "dog"])                  # tokens: one sentence
    [('The', 'DET'), ('dog', 'NOUN')]
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime
import io
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, Union, cast, overload

import numpy as np

from . import __version__, _core, inference, modelfile, spans
from .config import MetadataError, NetworkConfig, TaggingConfig, TrainingConfig
from .config import SPAN_DEFAULTS, split_training_options
from .corpus import Sentence
from .errors import ModelError, SeqtagError
from .evaluate import confusion_matrix, detail_column, score, score_columns
from .inference import TagProb, predict_log_probs, predict_tag_ids
from .network import Network
from .frontend import FrontEnd
from .heads import COLUMNS, FeatureHead, LemmaHead, build_heads, model_columns
from .lemma import apply_script
from .rawtext import TaggedSentence, text_paragraphs
from .rawtext import segment as segment_paragraphs
from .vocab import Vocabulary

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "en_ewt_upos.npz"

#: Where a model file keeps a learned front end's arrays (its metadata: meta["frontend"]).
FRONTEND_PREFIX = "frontend."
#: Where a model file (format 2) keeps the vocabulary's long lists: its words, their counts,
#: a lemma lexicon (Vocabulary.to_meta).
VOCAB_PREFIX = "vocab."

#: A tokenized sentence: its tokens (non-empty strings), or a seqtag.corpus.Sentence.
Tokens = Union[Sequence[str], Sentence]


#: What a model's metadata records of its training (info() and `seqtag info` read them):
#: the JSON type each must have where it is there.
_RECORD_TYPES = {"corpus": dict, "training": dict, "scores": dict, "embeddings": dict,
                 "frontend_training": dict, "training_auto": list, "history": list}


def _check_record_types(meta: dict[str, Any]) -> None:
    """TypeError where a record of the metadata is not of its type (_RECORD_TYPES)."""
    for name, kind in _RECORD_TYPES.items():
        value = meta.get(name)
        if value is None:
            continue
        if not isinstance(value, kind):
            raise TypeError(f"{name} must be {'an object' if kind is dict else 'a list'}, "
                            f"got {type(value).__name__}")
        if name == "history" and not all(isinstance(r, dict) for r in value):
            raise TypeError("history must be a list of objects")


def _check_sizes(config: NetworkConfig, arrays: dict[str, np.ndarray]) -> None:
    """ValueError where the network options' sizes are not those of the weights stored
    with them: checked before a network of that size is allocated, which metadata that
    does not belong to its weights could make petabytes (check_shapes says the rest)."""
    for name, array in (("hidden", "rnn.weight_hh_l0"), ("char_hidden", "char_rnn.weight_hh_l0"),
                        ("word_dim", "word_embedding"), ("char_dim", "char_embedding")):
        stored = arrays.get(array)
        if stored is not None and stored.ndim == 2 and stored.shape[1] != getattr(config, name):
            raise ValueError(f"network options: {name} is {getattr(config, name)}, but the "
                             f"weights {array} have {stored.shape[1]} columns")
    if (f"rnn.weight_hh_l{config.layers - 1}" not in arrays
            or f"rnn.weight_hh_l{config.layers}" in arrays):
        stored_layers = sum(1 for k in arrays if re.fullmatch(r"rnn\.weight_hh_l\d+", k))
        raise ValueError(f"network options: layers is {config.layers}, but the weights have "
                         f"{stored_layers}")


def _check_path(path, method):
    """SeqtagError where Tagger.<method> is given something that is no path."""
    if not isinstance(path, (str, os.PathLike)):
        raise SeqtagError(f"{method}() takes a file path (a string or os.PathLike), got "
                          f"{type(path).__name__}")


def _as_sentences(sents, what, columns=None):
    """Accept Sentence objects or lists of (word, tag) pairs; with columns, Sentences
    whose .columns hold them (CoNLL-U's)."""
    out = []
    if isinstance(sents, (str, bytes)) or not isinstance(sents, Iterable):
        raise SeqtagError(f"the {what} sentences must be a list of sentences, got "
                          f"{type(sents).__name__}")
    for i, s in enumerate(sents):
        if columns and not (isinstance(s, Sentence) and s.columns is not None):
            raise SeqtagError(f"{what} sentence {i + 1} has no CoNLL-U columns to learn "
                              f"{', '.join(columns)} from (read a CoNLL-U corpus)")
        if isinstance(s, Sentence):
            if s.tags is None and not columns:
                raise SeqtagError(f"{what} sentence {i + 1} has no tags")
            out.append(s)
        else:
            try:
                words, tags = zip(*s) if len(s) else ((), ())
            except (TypeError, ValueError):
                raise SeqtagError(f"{what} sentence {i + 1} is not a list of (word, tag) "
                                  "pairs") from None
            for k, (word, tag) in enumerate(zip(words, tags)):
                if not (isinstance(word, str) and word and isinstance(tag, str) and tag):
                    raise SeqtagError(f"{what} sentence {i + 1}, word {k + 1}: word and tag "
                                      f"must be non-empty strings, got ({word!r}, {tag!r})")
            out.append(Sentence(list(words), list(tags)))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Analysis:
    """One word as Tagger.analyze gives it: its form and each CoNLL-U column the model
    predicts (None for those it does not)."""

    word: str
    upos: str | None = None
    xpos: str | None = None
    feats: str | None = None
    lemma: str | None = None


class Tagger:
    """A trained part-of-speech tagger."""

    def __init__(self, network: Network, vocab: Vocabulary,
                 meta: dict[str, Any] | None = None, frontend: FrontEnd | None = None) -> None:
        self.network = network
        self.vocab = vocab
        self.meta = meta or {}
        #: What cuts raw text into sentences, tokens and words: the model's learned front
        #: end (seqtag.segment.LearnedFrontEnd), or the rules (RuleFrontEnd) for a model
        #: without one.
        self.frontend: FrontEnd = frontend if frontend is not None else _rules()

    def __reduce__(self):
        """A tagger pickles as the bytes of its model file (what save() writes, float32)
        and its threads and memo size, and unpickles by loading them (Tagger.load's
        checks, no pickled objects of seqtag's): what a spawned worker process needs
        (multiprocessing, spaCy's nlp.pipe(n_process=2) outside fork).  copy.deepcopy
        goes the same way.  A front end other than the learned one or the rules is no part
        of a model file: SeqtagError, rather than a tagger that comes back with the rules."""
        from .segment import LearnedFrontEnd, RuleFrontEnd
        if not isinstance(self.frontend, (LearnedFrontEnd, RuleFrontEnd)):
            raise SeqtagError(f"a tagger with a front end of its own "
                              f"({type(self.frontend).__name__}) cannot be pickled: its model "
                              "file would not hold it")
        with tempfile.TemporaryDirectory(prefix="seqtag-") as folder:
            path = os.path.join(folder, "model.npz")
            self.save(path)
            with open(path, "rb") as f:
                data = f.read()
        return (_tagger_from_model_bytes,
                (data, self.network.rnn.threads, self.network.memo_capacity,
                 self.meta.get("path")))

    def attach_frontend(self, frontend: FrontEnd,
                        record: dict[str, Any] | None = None) -> None:
        """Tag raw text with `frontend` from now on (and save it with the model).  record:
        how it was trained (learn_frontend's), shown by info()."""
        self.frontend = frontend
        self.meta.pop("frontend_training", None)
        if record and frontend.kind == "learned":
            self.meta["frontend_training"] = dict(record)

    # ---- building ----------------------------------------------------------------------

    @classmethod
    def train(cls, train_sents: Iterable[Sentence | Sequence[tuple[str, str]]],
              dev_sents: Iterable[Sentence | Sequence[tuple[str, str]]] | None = None, *,
              progress: Callable[[dict[str, Any]], None] | None = None,
              corpus: dict[str, Any] | None = None,
              checkpoint: str | os.PathLike[str] | None = None,
              resume: str | os.PathLike[str] | None = None,
              on_best: Callable[[Tagger], None] | None = None,
              flags: dict[str, bool] | None = None, **options: Any) -> Tagger:
        """Train a tagger on tagged sentences (Sentence objects or [(word, tag), ...]).

        Network options: cell ("lstm", "peephole", "gru"), layers, hidden, word_dim,
        char_dim, char_hidden, dropout, word_dropout, feats ("whole", "split").  Training
        options: epochs, batch_size, optimizer ("adam", "sgd"), lr, clip, seed, threads,
        patience, max_time, dev_fraction, average (decay of the weights' moving average,
        0: off), decay_patience, lr_decay, embeddings (a vectors file:
        seqtag.embeddings), embeddings_vocab, freeze_embeddings, columns.

        columns ("upos,xpos,feats,lemma", any of them): learn those CoNLL-U columns, a head
        each over the shared network, from Sentences read from CoNLL-U (their .columns);
        None: one head over the sentences' tags.  The model's first column is its
        tags (predict(), tag()); predict_columns() and analyze() give every column.  seqtag.config.NetworkConfig and TrainingConfig declare
        them: defaults, accepted values, meaning.  An unknown option or a bad value raises
        ConfigError naming it.  Without dev_sents, dev_fraction of the training sentences
        are held out to choose the best epoch.

        checkpoint: a path where the whole state of the run is written (atomically) after
        every epoch.  resume: such a path, to continue that run on the same sentences; it
        ends with the model the run would have made uninterrupted, bit for bit.  The
        checkpoint's options are kept; only epochs, patience, max_time and threads may
        change.  on_best(tagger) is called after every epoch that improved the dev score,
        with that epoch's model (save it there and then: training goes on in its arrays).
        flags: the caller's own choices ({name: bool}) the checkpoint keeps for a resumed
        run (seqtag.train.resumed_flags: train_files' front end, the command line's
        float16).  Ctrl-C after the first epoch raises TrainingInterrupted (a KeyboardInterrupt) whose
        .tagger is the best model so far.
        """
        # seqtag.train (hashlib among its imports) is imported where training starts: a
        # tagger that only tags never needs it
        from .train import TrainingInterrupted, TrainingState, auto_options, split_dev
        from .train import check_crf_columns
        from .train import train as train_network

        net_given, train_given = split_training_options(options)
        state = None
        if resume is not None:  # train_files hands over the state it loaded already
            state = resume if isinstance(resume, TrainingState) else TrainingState.load(resume)
            train_opts = state.resumed_options(net_given, train_given)  # also the dev split's
            net_config = NetworkConfig.from_dict(state.network.config)
            columns = train_opts.columns.split(",") if train_opts.columns else None
            train_sents = _span_sentences(_as_sentences(train_sents, "training", columns))
        else:
            columns = (train_given["columns"].split(",") if train_given.get("columns")
                       else None)
            train_sents = _span_sentences(_as_sentences(train_sents, "training", columns))
            if not columns and spans.looks_like_spans(
                    {t for s in train_sents for t in s.tags or ()}):
                net_span, train_span = split_training_options(SPAN_DEFAULTS)
                net_given, train_given = dict(net_span, **net_given), dict(train_span,
                                                                            **train_given)
            train_opts = TrainingConfig.from_dict(train_given)
            net_config = NetworkConfig.from_dict(net_given)
        held_out = dev_sents is None
        if held_out:
            train_sents, dev_sents = split_dev(train_sents, train_opts.dev_fraction,
                                               train_opts.seed)
        else:
            dev_sents = _span_sentences(_as_sentences(dev_sents, "dev", columns))
        # what train_network will run: the auto epochs and patiences sized by the corpus,
        # recorded in the model's metadata with the names of those the rule chose
        if state is None:
            auto = auto_options(train_opts)
        else:  # a value given now replaces the rule's
            auto = tuple(name for name in state.auto if train_given.get(name) is None)
        if not any(len(s) for s in train_sents):
            raise SeqtagError("no word to train on: every training sentence is empty"
                              + (" (after holding out dev data)" if held_out else ""))
        train_opts = train_opts.scheduled(len(cast("list[Sentence]", train_sents)))
        pretrained, embeddings = None, None
        if state is not None:
            embeddings = state.embeddings
        elif train_opts.embeddings is not None:
            from .embeddings import read_vectors
            from .vocab import word_key
            corpus_keys = {word_key(w) for s in train_sents
                           for w in s.words}  # type: ignore[union-attr]  # Sentences by now
            pretrained = read_vectors(train_opts.embeddings, corpus_keys,
                                      train_opts.embeddings_vocab)
            embeddings = pretrained.info()
            if "word_dim" not in net_given:  # else projected to the dimension given
                net_config = net_config.replace(word_dim=pretrained.dim)
        heads = None
        if columns and state is None:
            check_crf_columns(net_config.output_layer, columns)
            heads = build_heads(cast("list[Sentence]", train_sents), columns,
                                net_config.feats)
            for head in heads:  # the column checked on the whole corpus, before the split
                if not head.labels:
                    raise SeqtagError(
                        f"column {head.column.upper()} has no value in the training "
                        f"sentences" + (" (only in those held out as dev data: give --dev)"
                                        if held_out else ""))
        tag_column = (corpus or {}).get("tag_column", "upos")
        if tag_column not in ("upos", "xpos"):  # a numbered column of another format
            tag_column = "upos"

        def model(network, vocab, history, interrupted=False):
            # the epoch training kept: the best dev score (span F1 for span tags)
            best = max(history, key=lambda r: r.get("dev_score", r["dev_acc"]))
            meta = {
                "seqtag_version": __version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                "network": network.config,
                "training": train_opts.to_dict(),
                "training_auto": list(auto),
                "corpus": dict(corpus or {}, columns=model_columns(vocab.heads),
                               **({"tag_column": vocab.heads[0].column}
                                  if len(vocab.heads) > 1 else {}),
                               sentences=len(train_sents),
                               tokens=sum(len(s) for s in train_sents),
                               dev_sentences=len(dev_sents), dev_held_out=held_out),
                "scores": {"dev_accuracy": best["dev_acc"], "dev_span_f1": best.get("dev_f1"),
                           "best_epoch": best["epoch"],
                           "epochs_run": len(history),
                           "train_seconds": round(sum(r["seconds"] for r in history), 1)},
                # lr: the rate after the epoch (a drop marks a cut; seqtag.plot shows them)
                "history": [{k: r[k] for k in ("epoch", "loss", "train_acc", "dev_acc",
                                               "dev_f1", "seconds", "lr") if k in r}
                            for r in history],
            }
            if embeddings is not None:
                meta["embeddings"] = embeddings
            if interrupted:
                meta["scores"]["interrupted"] = True
            return cls(network, vocab, meta)

        def best_so_far(network, vocab, history):
            on_best(model(network, vocab, history))

        try:
            network, vocab, history = train_network(
                train_sents, dev_sents, net_config, train_opts, progress, state=state,
                checkpoint=checkpoint, on_best=best_so_far if on_best else None,
                pretrained=pretrained, heads=heads, column=tag_column, auto=auto,
                flags=flags)
        except TrainingInterrupted as e:
            e.tagger = model(e.network, e.vocab, e.history, interrupted=True)
            raise
        return model(network, vocab, history)

    @classmethod
    def train_files(cls, corpus: str | os.PathLike[str],
                    dev: str | os.PathLike[str] | None = None, *, format: str | None = None,
                    tag_column: str | int = "upos", word_column: int | None = None,
                    encoding: str = "utf-8", frontend: bool | None = None,
                    frontend_options: dict[str, Any] | None = None,
                    progress: Callable[[dict[str, Any]], None] | None = None,
                    command: str | None = None,
                    checkpoint: str | os.PathLike[str] | None = None,
                    resume: str | os.PathLike[str] | None = None,
                    on_best: Callable[[Tagger], None] | None = None,
                    flags: dict[str, bool] | None = None,
                    **options: Any) -> Tagger:
        """Train a tagger, and its raw-text front end, on corpus files (dev: the file that
        picks the best epoch of both; without it the tagger holds out dev_fraction of the
        corpus and the front end keeps its last epoch).

        The front end is learned (seqtag.segment.train_frontend) when `frontend` is true
        (None: true, or as the resumed run did) and
        the corpus is a CoNLL-U file with `# text` lines; otherwise the model keeps the
        rules, and progress gets {"type": "frontend", "learned": False, "reason": ...}
        saying why.  frontend_options: train_frontend's options (seqtag.segment.DEFAULTS).
        It is learned first, so every model written (on_best, a Ctrl-C, the end) carries
        it.  With resume, the front end is learned again from the same
        corpus with the run's seed: the same front end (its training is deterministic),
        then the tagger's run goes on from the checkpoint.  flags: Tagger.train's (the
        front end's choice joins them); with resume, the checkpoint's columns are kept
        unless given.

        A CoNLL-U corpus teaches every column it fills (UPOS, XPOS, FEATS, LEMMA; a
        column that is all '_' is skipped), or the `columns` option's; tag_column="xpos"
        without columns learns XPOS alone.  Other formats teach their one tag.

        progress gets, besides Tagger.train's events: {"type": "corpus", ...} once the
        files are read, {"type": "columns", "learned": [...], "skipped": [...]} for a
        CoNLL-U corpus, {"type": "frontend", ...} with the decision, {"type":
        "frontend_epoch", ...} after each epoch of the front end that looked at dev (about
        12 of them, with or without dev) and {"type":
        "frontend_done", "record": ...}.  The other arguments are Tagger.train's.
        """
        from .corpus import column_number, detect_format, read_corpus
        # a bad option fails now, not after the front end
        net_given, train_given = split_training_options(options)
        resumed = None
        if resume is not None:
            # the checkpoint read now too: a missing or foreign one, or an option its run
            # refuses, is said before the front end is learned again; the columns it
            # learned are the run's unless given (the corpus's columns were refused as
            # another value when the run was made with --columns)
            from .train import TrainingState
            resumed = TrainingState.load(resume)
            resumed.resumed_options(net_given, train_given)
            if train_given.get("columns") is None and resumed.opts.columns:
                options = dict(options, columns=resumed.opts.columns)
                net_given, train_given = split_training_options(options)
            if frontend is None:  # as the run did (True where its checkpoint is older)
                frontend = resumed.flags.get("frontend", True)
        frontend = True if frontend is None else bool(frontend)
        flags = dict(flags or {}, frontend=frontend)
        if options.get("embeddings") is not None:  # and a vectors file that is no such file
            from .embeddings import vectors_dimension
            vectors_dimension(options["embeddings"])
        report = progress or (lambda event: None)
        if word_column is not None or column_number(tag_column) is not None:
            format = "columns"
        source: Any = corpus
        if isinstance(corpus, (str, os.PathLike)) and os.fspath(corpus) == "-":
            # kept whole, read twice (its format, then its sentences), as a file is: the
            # same model and the same record as from the file (it was "auto")
            raw = getattr(sys.stdin, "buffer", sys.stdin).read()
            source = io.BytesIO(raw if isinstance(raw, bytes) else raw.encode(encoding))
            source.name = "<stdin>"
        corpus_format = format or detect_format(source, encoding=encoding)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        asked = train_given.get("columns")
        if corpus_format == "conllu" and (asked is not None or tag_column == "upos") and \
                dev is not None and os.fspath(dev) != "-":
            # the columns learned are what dev scores: said now, naming the file
            dev_format = detect_format(dev, encoding=encoding)
            if dev_format != "conllu":
                raise SeqtagError(f"{dev}: the dev corpus is {dev_format}, the training "
                                  "corpus CoNLL-U: give a CoNLL-U dev file (or --format)")
        if asked is not None and corpus_format != "conllu":
            raise SeqtagError(f"{corpus} is {corpus_format}: only a CoNLL-U corpus has "
                              "columns to choose (--format conllu if it is one)")
        if corpus_format == "conllu" and (asked is not None or tag_column == "upos"):
            train_sents = read_corpus(source, format, encoding=encoding, require_tags=False)
            dev_sents = (read_corpus(dev, format, encoding=encoding, require_tags=False)
                         if dev is not None else None)
        else:
            train_sents = read_corpus(source, format, tag_column, encoding, word_column)
            dev_sents = (read_corpus(dev, format, tag_column, encoding, word_column)
                         if dev is not None else None)
        report({"type": "corpus", "file": str(corpus), "format": corpus_format,
                "sentences": len(train_sents), "tokens": sum(len(s) for s in train_sents),
                "dev_file": None if dev is None else str(dev),
                "dev_sentences": None if dev_sents is None else len(dev_sents)})
        if dev_sents is None and resume is None:  # now, not after the front end
            from .train import check_dev_can_be_held_out
            check_dev_can_be_held_out(train_sents)
        if train_sents[0].columns is not None and (asked is not None or tag_column == "upos"):
            wanted = asked.split(",") if asked else list(COLUMNS)
            learned_columns = [c for c in COLUMNS if c in wanted and
                               any(v != "_" for s in train_sents
                                   for v in (s.columns or {}).get(c, ()))]
            skipped = [c for c in COLUMNS if c in wanted and c not in learned_columns]
            if learned_columns:
                report({"type": "columns", "learned": learned_columns, "skipped": skipped})
            else:
                raise SeqtagError(f"{corpus}: nothing to learn: column"
                                  f"{'s' if len(skipped) > 1 else ''} "
                                  f"{', '.join(c.upper() for c in skipped)} "
                                  f"{'are' if len(skipped) > 1 else 'is'} all '_'")
            options = dict(options, columns=",".join(learned_columns))
            from .train import check_crf_columns
            check_crf_columns(options.get("output_layer"), learned_columns)  # before the front end
        corpus_info = {"file": str(corpus), "format": corpus_format, "tag_column": tag_column,
                       "word_column": word_column,
                       "dev_file": None if dev is None else str(dev)}
        if command is not None:
            corpus_info["command"] = command

        learned, record = None, None
        reason = _why_no_frontend(corpus, corpus_format, encoding) if frontend else (
            "not asked for")
        if reason is None:
            fe_dev = dev if dev is not None and _has_text_lines(dev) else None
            # the run's seed: a resumed run's checkpoint's (its other options are its too)
            seed = resumed.opts.seed if resumed is not None else options.get(
                "seed", TrainingConfig.seed)
            threads = options.get("threads", TrainingConfig.threads)
            report({"type": "frontend", "learned": True, "file": str(corpus),
                    "dev_file": None if fe_dev is None else str(fe_dev),
                    "dev_ignored": dev is not None and fe_dev is None})
            learned, record = learn_frontend(
                corpus, fe_dev, seed=seed, threads=threads, options=frontend_options,
                progress=lambda r: report(dict(r, type="frontend_epoch")))
            report({"type": "frontend_done", "record": record})
        else:
            report({"type": "frontend", "learned": False, "reason": reason})

        def attach(tagger):
            if learned is not None:
                tagger.attach_frontend(learned, record)
            return tagger

        from .train import TrainingInterrupted

        try:
            tagger = cls.train(train_sents, dev_sents, progress=progress, corpus=corpus_info,
                               checkpoint=checkpoint, flags=flags,
                               resume=resume if resumed is None else cast(Any, resumed),
                               on_best=(lambda t: on_best(attach(t))) if on_best else None,
                               **options)
        except TrainingInterrupted as e:
            attach(e.tagger)
            raise
        return attach(tagger)

    # ---- files -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], float16: bool = False) -> None:
        """Write the model to one .npz file, atomically (a failed save leaves the old file).
        A learned front end goes in the same file: its arrays under "frontend.", its
        metadata under meta["frontend"]."""
        _check_path(path, "save")
        arrays = dict(self.network.arrays())
        # the vocabulary's long lists (words, a lemma lexicon) go to arrays under "vocab."
        meta = dict(self.meta, vocab=self.vocab.to_meta(arrays), network=self.network.config)
        meta.pop("path", None)
        meta.pop("frontend", None)
        if self.frontend.kind == "learned":
            fe_arrays, meta["frontend"] = self.frontend.to_arrays()  # type: ignore[attr-defined]
            arrays.update({FRONTEND_PREFIX + k: v for k, v in fe_arrays.items()})
        else:
            meta.pop("frontend_training", None)
        modelfile.save_model(path, arrays, meta, float16=float16)

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
        if path is not None:
            _check_path(path, "load")
        if path is None:
            path = DEFAULT_MODEL
            if not path.exists():
                raise ModelError(f"the bundled model is missing from this installation "
                                 f"({path}); reinstall seqtag or pass a model with -m")
        arrays, meta = modelfile.load_model(path)
        frontend = _load_frontend(path, arrays, meta)
        vocab_arrays = {k: arrays.pop(k) for k in list(arrays) if k.startswith(VOCAB_PREFIX)}
        if meta.get("kind") is not None:  # a model has none: no seqtag.train to import
            from .train import CHECKPOINT_KIND
            if meta["kind"] == CHECKPOINT_KIND:
                raise ModelError(f"{path} is a training checkpoint, not a model; continue "
                                 f"its run with seqtag train --resume {path}")
        try:
            _check_record_types(meta)
            corpus = meta.get("corpus") or {}
            # a model of one column written before heads existed: its corpus's tag column
            column = corpus.get("tag_column")
            column = column if column in ("upos", "xpos") else "upos"
            vocab = Vocabulary.from_meta(meta["vocab"], column, vocab_arrays)
            # a model written before an option existed has none: it takes the default
            net_config = NetworkConfig.from_meta(meta["network"], "network options")
            _check_sizes(net_config, arrays)
            network = Network(net_config, len(vocab.words), len(vocab.chars),
                              [head.size for head in vocab.heads], threads=settings.threads,
                              init=False, memo_capacity=settings.memo_words)
        except (KeyError, TypeError, ValueError, MetadataError) as e:
            raise ModelError(f"{path} has invalid metadata: {e}") from None
        except MemoryError:
            raise ModelError(f"cannot load {path}: not enough memory for the network its "
                             f"options describe") from None
        try:
            modelfile.check_shapes(arrays, network.expected_shapes())
        except ModelError as e:  # e.g. a vocabulary that does not fit the embedding
            raise ModelError(f"{path}: {e}") from None
        try:
            network.load_arrays(arrays)
        except (TypeError, ValueError) as e:  # weights that are not real numbers
            raise ModelError(f"{path} has invalid weights: {e}") from None
        if network.crf is not None:
            network.crf.set_tags(vocab.tags)
        network.freeze()
        meta = {k: v for k, v in meta.items() if k not in ("vocab", "frontend")}
        meta["path"] = str(path)
        tagger = cls(network, vocab, meta, frontend)
        tagger.set_threads(settings.threads)
        return tagger

    # ---- tagging -----------------------------------------------------------------------

    @property
    def tagset(self) -> list[str]:
        """The tags the model can give, in the order of its output layer."""
        return list(self.vocab.tags)

    def set_threads(self, threads: int) -> None:
        """Tag on `threads` CPU threads from now on (2: the two directions of each BiLSTM
        at once).  ConfigError for anything but a positive integer, as Tagger.load."""
        threads = TaggingConfig(threads=threads).threads
        self.network.set_threads(threads)
        if hasattr(self.frontend, "set_threads"):
            self.frontend.set_threads(threads)

    @overload
    def tag(self, tokens: str) -> list[list[tuple[str, str]]]: ...

    @overload
    def tag(self, tokens: list[str] | tuple[str, ...]) -> list[tuple[str, str]]: ...

    def tag(self, tokens: str | list[str] | tuple[str, ...]
            ) -> list[list[tuple[str, str]]] | list[tuple[str, str]]:
        """Tag raw text or one tokenized sentence.

        A string is raw text: the front end (self.frontend) finds its sentences (a blank
        line always ends one), tokens and words; returns a list of sentences, each a
        list of (word, tag) pairs: [[(word, tag), ...], ...] (the words of a multiword
        token are separate pairs: French "du" gives ("de", "ADP"), ("le", "DET")).
        tag_text() gives the same with offsets.  A list of tokens is one sentence:
        returns [(token, tag), ...]."""
        if isinstance(tokens, str):
            return [s.pairs() for s in self.tag_text(tokens)]
        if isinstance(tokens, (list, tuple)):
            words = _tokens(tokens, "")
            return list(zip(words, self.predict([words])[0]))
        raise SeqtagError(f"tag() takes a string or a list of tokens, got "
                          f"{type(tokens).__name__}")

    def tag_text(self, text: str) -> list[TaggedSentence]:
        """Tag raw text and keep its offsets: one seqtag.rawtext.TaggedSentence per
        sentence (text, start, end, tokens with their offsets and words, a tag per word,
        new_paragraph), offsets being indexes into `text`:
        text[token.start:token.end] == token.text.  A blank line ends a paragraph."""
        if not isinstance(text, str):
            raise SeqtagError(f"tag_text() takes a string, got {type(text).__name__}")
        found = [(p.new and k == 0, raw)
                 for p, sentences in segment_paragraphs(text_paragraphs(text), self.frontend)
                 for k, raw in enumerate(sentences)]
        tags = self.predict([raw.words for _, raw in found]) if found else []
        return [TaggedSentence(raw.text, raw.start, raw.end, raw.tokens, t, new)
                for (new, raw), t in zip(found, tags)]

    def tag_sents(self, sentences: Iterable[str | Tokens]) -> list[list[tuple[str, str]]]:
        """Tag many sentences at once, batched: each a list of tokens, or a string that is
        ONE sentence (tokenized by the front end, never split into sentences: what
        `seqtag tag --input-format lines` does with a line).
        Returns [[(word, tag), ...], ...] in the order given."""
        words = _sentences_words(sentences, "tag_sents", strings=True,
                                 frontend=self.frontend)
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
        if self.network.crf is not None:
            tag_ids = predict_tag_ids(self.network, self.vocab, words, memo=True)
            tags = [[self.vocab.tags[j] for j in ids] for ids in tag_ids]
        else:  # its column's values, decoded a batch at a time: a model of LEMMA alone
            # tags lemmas (not its edit scripts), one of FEATS split a head per feature
            # whole FEATS strings (not its first feature's values)
            column = self.tag_column
            tags = inference.predict_columns(self.network, self.vocab, words, [column])[column]
        if top_k is None:
            return tags
        warnings.warn("Tagger.predict(sentences, top_k=k) is deprecated; use "
                      "Tagger.predict_top_k(sentences, k), whose first pair per token is "
                      "the tag predict() gives", DeprecationWarning, stacklevel=2)
        if not top_k:
            return tags
        return tags, self.predict_top_k(words, int(top_k))

    def predict_top_k(self, sentences: Iterable[Tokens], k: int, column: str | None = None
                      ) -> list[list[list[TagProb]]]:
        """The k most probable tags of each token of tokenized sentences with their
        probabilities, most probable first (k is cut to the tagset's size): per sentence,
        per token, [(tag, probability), ...].  The first tag of a token is the one
        predict() gives, except with a CRF: there the probabilities are each token's
        marginals given the whole sentence, and predict() gives the best sequence, whose
        tag of a token can be another (a span is taken whole or not at all).

        column: another column the model predicts ("xpos", "feats", "lemma"; None: the
        first).  For lemmas the pairs are (lemma, probability of its best edit script):
        first the lemma predict_columns() gives (the lexicon's where it knows the word
        with its predicted UPOS: its script's probability can then be lower than the next
        ones', 0.0 where no script makes it), then the other lemmas of the best scripts
        that fit the word, best first; for FEATS learned a head per feature there are no
        k best strings (SeqtagError)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise SeqtagError(f"k must be a positive integer, got {k!r}")
        index = self._head_index(column)
        head = self.vocab.heads[index]
        if isinstance(head, LemmaHead):  # the lemma shown first: predict_columns' own
            return self.predict_columns_top_k(sentences, k, ["lemma"])[1]["lemma"]
        words = _sentences_words(sentences, "predict_top_k", strings=False)
        # a model of one column: its log-probabilities (a CRF's marginals), all of them
        log_probs = predict_log_probs(self.network, self.vocab, words, memo=True,
                                      heads=[index] if len(self.vocab.heads) > 1 else None)
        return _ranked(head, words, log_probs, int(k))

    def predict_columns_top_k(self, sentences: Iterable[Tokens], k: int,
                              columns: Sequence[str] | None = None
                              ) -> tuple[dict[str, list[list[str]]],
                                         dict[str, list[list[list[TagProb]]]]]:
        """predict_columns(sentences, columns) and predict_top_k(sentences, k, column) of
        each of those columns, from one pass of the network: (values, {column: k best}).
        SeqtagError as those give it (a column the model lacks; FEATS learned a head per
        feature)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise SeqtagError(f"k must be a positive integer, got {k!r}")
        wanted = self._wanted_columns(columns)
        index = {c: self._head_index(c) for c in wanted}
        words = _sentences_words(sentences, "predict_columns_top_k", strings=False)
        values, scores = inference.predict_columns_scored(self.network, self.vocab, words,
                                                          wanted, sorted(set(index.values())))
        return values, {c: _ranked(self.vocab.heads[i], words, scores[i], int(k), values[c])
                        for c, i in index.items()}

    def _wanted_columns(self, columns: str | Sequence[str] | None) -> list[str]:
        """The column names a predict_columns* call asks for: every one the model has
        (None), a list, or one string of names joined by commas ("upos,lemma", as
        --columns takes them; a string is not its letters)."""
        if columns is None:
            return list(self.columns)
        if isinstance(columns, str):
            return [c.strip() for c in columns.split(",")]
        names = list(columns) if isinstance(columns, Iterable) else None
        if names is None or not all(isinstance(c, str) for c in names):
            raise SeqtagError(f"columns must be column names (a list, or one string joined "
                              f"by commas), got {columns!r}")
        return names

    def _head_index(self, column: str | None) -> int:
        """The head predicting `column` (None: the model's tags, its first head's column);
        SeqtagError if none does, or if FEATS is split over a head per feature."""
        if column is None:
            if not isinstance(self.vocab.heads[0], FeatureHead):
                return 0
            column = self.tag_column
        found = [k for k, head in enumerate(self.vocab.heads) if head.column == column]
        if not found:
            raise SeqtagError(f"this model does not predict {column}; it predicts "
                              f"{', '.join(self.columns)}")
        if len(found) > 1 or isinstance(self.vocab.heads[found[0]], FeatureHead):
            raise SeqtagError(f"this model learned {column} a head per feature: it has no "
                              f"probabilities of whole {column} strings")
        return found[0]

    @property
    def columns(self) -> list[str]:
        """The CoNLL-U columns the model predicts ("upos", "xpos", "feats", "lemma"), in
        that order; its first head's (its tags) is columns_first."""
        return model_columns(self.vocab.heads)

    @property
    def tag_column(self) -> str:
        """The column of the model's tags (predict(), tag()): its first head's."""
        return self.vocab.heads[0].column

    def predict_columns(self, sentences: Iterable[Tokens],
                        columns: Sequence[str] | None = None) -> dict[str, list[list[str]]]:
        """The values of `columns` (default: every one the model predicts) for each token
        of tokenized sentences: {column: [[value, ...], ...]}.  The encoder runs once and
        one product gives every head asked for; lemmas use the predicted UPOS for the
        lexicon when the model has it, and the lemma head is computed only for the tokens
        the lexicon does not know (seqtag.inference.predict_columns).  SeqtagError for a
        column the model does not predict."""
        wanted = self._wanted_columns(columns)
        for column in wanted:
            if column not in self.columns:
                raise SeqtagError(f"this model does not predict {column}; it predicts "
                                  f"{', '.join(self.columns)}")
        words = _sentences_words(sentences, "predict_columns", strings=False)
        return inference.predict_columns(self.network, self.vocab, words, wanted)

    def analyze(self, tokens: str | list[str] | tuple[str, ...]
                ) -> list[list[Analysis]] | list[Analysis]:
        """Every column the model predicts, per word: a string is raw text (a list of
        sentences, as tag() splits it), a list of tokens one sentence.  Each word is an
        Analysis(word, upos, xpos, feats, lemma), None for a column the model lacks:

            >>> tagger.analyze(["Dogs", "ran"])      # doctest: +SKIP
            [Analysis(word='Dogs', upos='NOUN', xpos='NNS', feats='Number=Plur',
                      lemma='dog'), Analysis(word='ran', upos='VERB', ...)]"""
        if isinstance(tokens, str):
            sentences = [s.words for s in self.tag_text(tokens)]
        elif isinstance(tokens, (list, tuple)):
            sentences = [_tokens(tokens, "")]
        else:
            raise SeqtagError(f"analyze() takes a string or a list of tokens, got "
                              f"{type(tokens).__name__}")
        values = self.predict_columns(sentences)
        result = [[Analysis(word, **{c: values[c][i][j] for c in values})
                   for j, word in enumerate(words)] for i, words in enumerate(sentences)]
        return result if isinstance(tokens, str) else result[0]

    # ---- scoring and description ---------------------------------------------------------

    def evaluate(self, gold_sents: Iterable[Sentence | Sequence[tuple[str, str]]], *,
                 matrix: bool = False, column: str | None = None) -> dict[str, Any]:
        """Accuracy (overall, seen and unseen words), per-tag P/R/F1 and confusions of the
        model's tags (its first column); with matrix=True also the whole confusion matrix
        under "confusion_matrix" (seqtag.evaluate.confusion_matrix: what `evaluate --plot`
        draws).  For a model of span tags also "spans": span precision, recall and F1 per
        type, micro and macro, read as seqeval reads them in its default mode
        (conlleval's) and in its strict mode (seqtag.spans.span_scores), under "default"
        and "strict".  Gold Sentences read from CoNLL-U (with .columns) given to a model of
        several columns score every column, too: "columns": {column: {"accuracy",
        "seen_accuracy", "unseen_accuracy", per_tag, ...}}, and "alltags" (UPOS, XPOS and
        FEATS all right) when the model predicts the three, else None; the per-tag detail
        and the matrix are then those of `column` (default: the model's tags).  A column
        the gold sentences leave all '_' is not scored; "skipped" lists those."""
        from . import spans
        if column is not None and column not in self.columns:  # it fell back to the tags
            raise SeqtagError(f"this model does not predict {column!r}; it predicts "
                              f"{', '.join(self.columns)}")
        if isinstance(gold_sents, (str, bytes)) or not isinstance(gold_sents, Iterable):
            raise SeqtagError(f"evaluate() takes gold sentences, got "
                              f"{type(gold_sents).__name__}")
        gold = list(gold_sents)
        with_columns = bool(gold) and all(
            isinstance(s, Sentence) and s.columns is not None for s in gold)
        if column not in (None, self.tag_column) and not with_columns:
            raise SeqtagError(f"scoring {column} needs gold sentences read from CoNLL-U "
                              "(their columns); these have only tags, scored as "
                              f"{self.tag_column}")
        # a model of LEMMA or FEATS alone is scored on its column too, not on the tags
        if (len(self.vocab.heads) > 1 or self.vocab.heads[0].column in ("feats", "lemma")) \
                and with_columns:
            sentences = cast("list[Sentence]", gold)
            words = [s.words for s in sentences]
            values = self.predict_columns(words)
            # a column the gold file leaves all '_' (many treebanks have no XPOS) is not
            # scored: every word would count as wrong.  (In FEATS '_' is no features; a file
            # where no word has any is taken as one without FEATS, as training takes it.)
            skipped = [c for c in values if all(v == "_" for s in sentences
                                                for v in s.columns[c])]  # type: ignore[index]
            if len(skipped) == len(values):
                raise SeqtagError(f"the gold sentences have no {', '.join(c.upper() for c in skipped)}"
                                  " to score (all '_')")
            values = {c: v for c, v in values.items() if c not in skipped}
            result = score_columns(words, {c: [s.columns[c] for s in sentences  # type: ignore[index]
                                               ] for c in values},
                                   values, self.vocab.is_known)
            result["skipped"] = skipped
            shown = detail_column(column, self.tag_column, result["columns"])
            scores = dict(result["columns"][shown], **result)
            if matrix:
                first = [Sentence(s.words, s.columns[shown])  # type: ignore[index]
                         for s in sentences]
                scores["confusion_matrix"] = confusion_matrix(first, values[shown])
            return scores
        gold = _as_sentences(gold, "gold")
        predicted = self.predict([s.words for s in gold])
        scores = score(gold, predicted, self.vocab.is_known)
        if matrix:
            scores["confusion_matrix"] = confusion_matrix(gold, predicted)
        scheme = spans.tagset_scheme(self.vocab.tags)
        if scheme is not None:
            gold_tags = [s.tags for s in gold]
            scores["spans"] = {"default": spans.span_scores(gold_tags, predicted)}
            try:
                scores["spans"]["strict"] = spans.span_scores(gold_tags, predicted, "strict",
                                                              scheme)
            except ValueError:  # gold tags outside the model's scheme: no strict reading
                scores["spans"]["strict"] = None
        return scores

    def info(self) -> dict[str, Any]:
        """What the model is: tagset, sizes, architecture, corpus, scores, versions."""
        return {
            "path": self.meta.get("path"),
            "seqtag_version": self.meta.get("seqtag_version"),
            "format_version": self.meta.get("format_version"),
            "created": self.meta.get("created"),
            "tagset": self.tagset,
            "columns": self.columns,
            "heads": [{"column": h.column, "name": h.name, "kind": h.kind, "labels": h.size}
                      for h in self.vocab.heads],
            "vocabulary": {"words": len(self.vocab.words), "chars": len(self.vocab.chars),
                           "tags": len(self.vocab.tags)},
            "network": self.network.config,
            "output_layer": self.output_layer(),
            "parameters": int(sum(a.size for a in self.network.arrays().values())),
            "training": self.meta.get("training"),
            "training_auto": self.meta.get("training_auto"),
            "corpus": self.meta.get("corpus"),
            "scores": self.meta.get("scores"),
            "embeddings": self.meta.get("embeddings"),
            "frontend": self.frontend_info(),
        }

    def output_layer(self) -> dict[str, Any]:
        """{"kind": "softmax"} or {"kind": "crf", "constrained": the scheme its decoding
        keeps spans well-formed in, or None}."""
        crf = self.network.crf
        if crf is None:
            return {"kind": "softmax"}
        return {"kind": "crf", "constrained": spans.tagset_scheme(self.vocab.tags)}

    def frontend_info(self) -> dict[str, Any]:
        """What the front end is: {"kind": "rules"} or {"kind": "learned", its cell and
        sizes, how many multiword forms it expands, "training": where it was learned and
        its dev scores (tokens, sentences, multiword F1) when recorded}."""
        if self.frontend.kind != "learned":
            return {"kind": self.frontend.kind}
        model = self.frontend.model  # type: ignore[attr-defined]
        return {"kind": "learned", "cell": model.rnn.cell, "hidden": model.rnn.hidden_size,
                "chars": len(self.frontend.codes.chars),  # type: ignore[attr-defined]
                "parameters": int(sum(a.size for a in model.arrays().values())),
                "multiword_forms": len(self.frontend.expander.forms),  # type: ignore[attr-defined]
                "training": self.meta.get("frontend_training")}


def _tagger_from_model_bytes(data: bytes, threads: int, memo_words: int,
                             path: str | None) -> Tagger:
    """Tagger.__reduce__'s tagger again: its model file's bytes loaded as a file."""
    with tempfile.TemporaryDirectory(prefix="seqtag-") as folder:
        model = os.path.join(folder, "model.npz")
        with open(model, "wb") as f:
            f.write(data)
        tagger = Tagger.load(model, threads=threads, memo_words=memo_words)
    if path is None:
        tagger.meta.pop("path", None)
    else:
        tagger.meta["path"] = path
    return tagger


def _ranked(head, words, log_probs, k, shown=None):
    """The k best (label, probability) pairs of each token from its head's log-probs
    (len, labels) per sentence; for lemmas (lemma, probability of its best script), the
    lemma `shown` for the word (predict_columns' value: the lexicon's, where it knows the
    word) then the best other distinct lemmas of the scripts that fit the word, best
    script first (two scripts can make the same lemma: "go" by "keep" and by "strip
    nothing", say); the shown lemma's probability is 0.0 where no script makes it."""
    if not isinstance(head, LemmaHead):
        return [inference.top_k(lp, k, head.labels) for lp in log_probs]
    out = []
    for w, lp, lemmas in zip(words, log_probs, shown):
        order = np.argsort(-lp, axis=1, kind="stable").tolist()
        probs = np.exp(lp).tolist()
        sentence = []
        for word, ranked, p, first in zip(w, order, probs, lemmas):
            best: dict[str, float] = {first: 0.0}
            found_first = False
            for j in ranked:
                lemma = apply_script(word, head.scripts[j])
                if lemma is None:
                    continue
                if lemma == first and not found_first:
                    best[first], found_first = p[j], True
                elif lemma not in best and len(best) < k:
                    best[lemma] = p[j]
                if found_first and len(best) == k:
                    break
            sentence.append(list(best.items()))
        out.append(sentence)
    return out


def _span_sentences(sentences: list[Sentence]) -> list[Sentence]:
    """Span tags in IOB1 (spans opened by I-) rewritten in IOB2, which the CRF's decoding
    keeps to; any other corpus as it is."""
    tags = {t for s in sentences for t in s.tags or ()}
    if not spans.looks_like_spans(tags) or spans.detect_scheme(
            s.tags or [] for s in sentences) != "IOB1":
        return sentences
    return [Sentence(s.words, spans.iob1_to_iob2(s.tags or []), s.line, s.conllu, s.raw,
                     s.new_paragraph) for s in sentences]


def _rules() -> FrontEnd:
    from .segment import RuleFrontEnd
    return RuleFrontEnd()


def _load_frontend(path: str | os.PathLike[str], arrays: dict[str, np.ndarray],
                   meta: dict[str, Any]) -> FrontEnd:
    """The front end a model file holds (its arrays are taken out of `arrays`): the learned
    one if meta has "frontend", else the rules.  ModelError naming the file if broken."""
    fe_arrays = {k[len(FRONTEND_PREFIX):]: arrays.pop(k) for k in list(arrays)
                 if k.startswith(FRONTEND_PREFIX)}
    fe_meta = meta.get("frontend")
    if fe_meta is None:
        if fe_arrays:
            raise ModelError(f"{path} has front end weights but no front end metadata")
        return _rules()
    if not isinstance(fe_meta, dict):
        raise ModelError(f"{path} has invalid metadata: the front end's is not a JSON object")
    from .segment import LearnedFrontEnd
    try:
        return LearnedFrontEnd.from_arrays(fe_arrays, fe_meta)
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    except Exception as e:  # anything a mangled front end can raise is the file's fault
        raise ModelError(f"{path}: the front end is broken ({type(e).__name__}: {e})") from None


def _why_no_frontend(corpus, corpus_format, encoding):
    """Why a front end cannot be learned from the corpus file, or None if it can."""
    if os.fspath(corpus) == "-":
        return "the corpus is read from standard input (a front end learns from a file)"
    if corpus_format != "conllu":
        return (f"the corpus is {corpus_format}, which has no raw text: a front end is "
                "learned from CoNLL-U with '# text' lines and SpaceAfter=No")
    if codecs.lookup(encoding).name != "utf-8":
        return "the front end learns from UTF-8 corpora only"
    if not _has_text_lines(corpus):
        return "the corpus has no '# text =' lines: no raw text to learn from"
    return None


def _has_text_lines(path):
    """Whether a CoNLL-U file has a `# text = ` line (a sentence's raw text)."""
    try:
        # utf-8-sig: a leading byte-order mark is no part of a first `# text` line
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            return any(line.startswith("# text") and "=" in line and
                       line[1:].partition("=")[0].strip() == "text" for line in f)
    except OSError:
        return False


def learn_frontend(train_path: str | os.PathLike[str],
                   dev_path: str | os.PathLike[str] | None = None, *, seed: int = 0,
                   threads: int = 2, progress: Callable[[dict[str, Any]], None] | None = None,
                   options: dict[str, Any] | None = None) -> tuple[FrontEnd, dict[str, Any]]:
    """Train a raw-text front end (seqtag.segment.train_frontend) on a CoNLL-U file with
    `# text` lines, dev_path choosing its epoch; returns it and its record (files, dev
    scores, seconds) for Tagger.attach_frontend.  CorpusError if a file has no `# text`.
    No time limit: a resumed run learns the same front end again (its training is
    deterministic), which a front end cut short by the clock would not be."""
    import time

    from .segment import train_frontend
    start = time.perf_counter()
    frontend = train_frontend(train_path, dev_path, seed=seed, threads=threads,
                              progress=progress, options=options)
    record: dict[str, Any] = {"file": str(train_path),
                              "dev_file": None if dev_path is None else str(dev_path),
                              "seconds": round(time.perf_counter() - start, 1)}
    if getattr(frontend, "rebuilt", 0):  # sentences whose `# text` did not match
        record["rebuilt"] = int(frontend.rebuilt)
    if dev_path is not None:
        from .segment import dev_scores
        scores = dev_scores(frontend, dev_path)
        record["dev"] = {k: round(float(v), 6) for k, v in scores.items()}
    return frontend, record


def _tokens(tokens: Sequence[object], where: str) -> list[str]:
    """The tokens of one sentence, checked: a list of non-empty strings."""
    words = list(tokens)
    # checked in one pass of the compiled core; str subclasses and bad tokens take the loop
    if _core.plain_token_lists([words]) is not None:
        return words  # type: ignore[return-value]  # all str: checked
    for w in words:
        if not isinstance(w, str) or not w:
            raise SeqtagError(f"{where}tokens must be non-empty strings, got {w!r}")
    # a str subclass made a plain str (str.__str__, not an overridden __str__): what
    # tagging gives back (a lemma that is the form is the token's own string) is str
    return [w if type(w) is str else str.__str__(w) for w in words]


def _sentences_words(sentences: object, method: str, strings: bool,
                     frontend: FrontEnd | None = None) -> list[list[str]]:
    """The token lists of `sentences` given to Tagger.<method>: lists of tokens or
    Sentences, and with strings=True strings to tokenize.  Anything else (a string where
    sentences belong, which would be tagged character by character) is a SeqtagError."""
    if isinstance(sentences, (str, bytes)):
        raise SeqtagError(f"{method}() takes a list of sentences, not one string; use tag() "
                          "for one sentence")
    plain = _core.plain_token_lists(sentences)
    if plain is not None:
        # lists of lists of plain tokens checked and copied in one pass of the compiled
        # core (a Python call per sentence was 2 % of tagging every column, Python's own
        # loops over the tokens 1 %); anything else takes the loop below, which says what
        # is wrong
        return plain
    try:
        items = iter(sentences)  # type: ignore[call-overload]
    except TypeError:
        raise SeqtagError(f"{method}() takes a list of sentences, got "
                          f"{type(sentences).__name__}") from None
    out: list[list[str] | None] = []
    texts: dict[int, str] = {}
    for i, s in enumerate(items):
        if isinstance(s, str) and strings:
            texts[len(out)] = s
            out.append(None)
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
    if texts:
        found = (frontend or _rules()).segment_many(list(texts.values()))
        for i, sentences in zip(texts, found):
            out[i] = [w for sentence in sentences for w in sentence.words]
    return out  # type: ignore[return-value]  # every None was filled
