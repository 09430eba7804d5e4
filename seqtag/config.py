"""Every option of seqtag, defined once: name, type, default, accepted values, help, group.

The options are the fields of three frozen dataclasses, one per group:

- NetworkConfig: the network's shape (a model's metadata holds it);
- TrainingConfig: how a run trains (a model's and a checkpoint's metadata hold it);
- TaggingConfig: what Tagger.load and the tagging functions take.

Building one checks every value and raises ConfigError, whose one-line message names the
option, what it accepts and the value given: ``lr must be a number > 0, got -1``.
``from_dict`` also refuses unknown names, naming the nearest valid one.
The command line builds its train and tag options from these fields (name, help, shown
default, choices) and parses their text here (Option.parse), so the checks and the
messages are the same from Python and from a shell.

Pure Python on purpose: ``seqtag --help`` and one-shot tagging import it, and must not
pay for numpy.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import types
import typing
from typing import Any, Iterable, Mapping, Optional, TypeVar

from .errors import ConfigError, ModelError

__all__ = ["ConfigError", "NetworkConfig", "TrainingConfig", "TaggingConfig", "Option",
           "DEFAULT_LR", "SPAN_DEFAULTS", "split_training_options", "flag", "auto_schedule"]

#: The CoNLL-U columns a model can predict (seqtag.heads.COLUMNS).
COLUMN_NAMES = ("upos", "xpos", "feats", "lemma")

#: The learning rate each optimizer starts from when lr is None.
DEFAULT_LR = {"adam": 2e-3, "sgd": 0.1}

#: The rule that sizes a run when epochs, patience or decay_patience are None (auto_schedule):
#: an epoch is ceil(sentences / batch_size) optimizer steps; a run gets STEP_BUDGET steps
#: (EWT's 12,544 sentences: 392 steps an epoch, 30 epochs), but never fewer than
#: BASE_EPOCHS epochs nor more than MAX_EPOCHS; patience and decay_patience are measured
#: in steps too (BASE_PATIENCE and BASE_DECAY_PATIENCE epochs of a BASE_EPOCHS-epoch run),
#: so a small corpus's early stopping and learning-rate cuts wait as many steps as EWT's.
STEP_BUDGET = 12_000
BASE_EPOCHS = 30
MAX_EPOCHS = 200
BASE_PATIENCE = 6
BASE_DECAY_PATIENCE = 2

_AUTO_RULE = (f"{STEP_BUDGET:,} optimizer steps (an epoch: a step per batch), "
              f"{BASE_EPOCHS} to {MAX_EPOCHS} epochs")


def auto_schedule(sentences: int, batch_size: int) -> dict[str, int]:
    """{"epochs", "patience", "decay_patience"} for a training corpus of `sentences`
    sentences in batches of batch_size: the values the None (auto) defaults stand for.

    epochs = STEP_BUDGET // steps an epoch, within [BASE_EPOCHS, MAX_EPOCHS]; patience and
    decay_patience grow with epochs / BASE_EPOCHS from BASE_PATIENCE and
    BASE_DECAY_PATIENCE (rounded), so they stay the same number of steps."""
    if sentences < 1 or batch_size < 1:
        raise ValueError(f"need sentences >= 1 and batch_size >= 1, got {sentences}, "
                         f"{batch_size}")
    steps_per_epoch = -(-sentences // batch_size)
    epochs = min(MAX_EPOCHS, max(BASE_EPOCHS, STEP_BUDGET // steps_per_epoch))
    scale = epochs / BASE_EPOCHS
    return {"epochs": epochs, "patience": max(1, round(BASE_PATIENCE * scale)),
            "decay_patience": max(1, round(BASE_DECAY_PATIENCE * scale))}


def option(default: Any, *, help: str, min: float | None = None, min_open: bool = False,
           max: float | None = None, max_open: bool = False,
           choices: Iterable[str] | None = None, resumable: bool = False,
           none_means: str | None = None, metavar: str | None = None,
           several: bool = False) -> Any:
    """A config field: its default and what the Option built from it needs.

    min/max bound the value (min_open / max_open exclude the bound itself); choices lists
    the accepted strings; several: the value is a comma-separated list of distinct
    choices ("upos,lemma"); resumable: a resumed run may change it; none_means: what None
    stands for, shown as the default in --help (the field's type must allow None).
    """
    spec = dict(help=help, min=min, min_open=min_open, max=max, max_open=max_open,
                choices=tuple(choices) if choices else None, resumable=resumable,
                none_means=none_means, metavar=metavar, several=several)
    return dataclasses.field(default=default, metadata={"seqtag.option": spec})


class Option:
    """One option, as a config class declares it (see option()).

    kind is int, float or str; none: whether None is accepted.
    """

    def __init__(self, name: str, group: str, kind: type, none: bool, default: Any,
                 spec: Mapping[str, Any]) -> None:
        self.name, self.group, self.kind, self.none, self.default = (
            name, group, kind, none, default)
        self.help = spec["help"]
        self.min, self.min_open = spec["min"], spec["min_open"]
        self.max, self.max_open = spec["max"], spec["max_open"]
        self.choices = spec["choices"]
        self.several = spec["several"]
        self.resumable = spec["resumable"]
        self.none_means = spec["none_means"]
        self._metavar = spec["metavar"]

    def __repr__(self) -> str:
        return f"<Option {self.group}.{self.name}>"

    @property
    def flag(self) -> str:
        return flag(self.name)

    @property
    def metavar(self) -> str:
        if self._metavar:
            return self._metavar
        if self.choices:
            return ("[" + "|".join(self.choices) + "]" + (",..." if self.several else ""))
        return {int: "INTEGER", float: "NUMBER", str: "TEXT", bool: ""}[self.kind]

    @property
    def shown_default(self) -> str | None:
        """The default as --help shows it; None: show none."""
        if self.default is None:
            return self.none_means
        return str(self.default)

    def requirement(self) -> str:
        """What the option accepts: "an integer >= 1", "one of adam, sgd", ... (None, where
        accepted, is left unsaid: it means the default, and a shell cannot give it)."""
        if self.several:
            text = "a comma-separated list of distinct " + ", ".join(self.choices)
        elif self.choices:
            text = "one of " + ", ".join(self.choices)
        elif self.kind is bool:
            text = "true or false"
        elif self.kind is str:
            text = "a text"
        else:
            text = "an integer" if self.kind is int else "a number"
            low = None if self.min is None else ("(" if self.min_open else "[") + f"{self.min:g}"
            high = None if self.max is None else f"{self.max:g}" + (")" if self.max_open else "]")
            if low and high:
                text += f" in {low}, {high}"
            elif low:
                text += f" {'>' if self.min_open else '>='} {self.min:g}"
            elif high:
                text += f" {'<' if self.max_open else '<='} {self.max:g}"
        return text

    def check(self, value: Any) -> Any:
        """The value, normalised (an int for int options, a float for float ones); a
        ConfigError naming the option if it is not accepted."""
        if value is None:
            if self.none:
                return None
            self._refuse(value)
        if self.kind is bool:
            if not isinstance(value, bool):  # a switch: 1 or "yes" would hide a mistake
                self._refuse(value)
            return value
        if self.kind is str and not self.choices and isinstance(value, os.PathLike):
            value = os.fspath(value)  # a file's path (embeddings) may be a Path
        if self.kind is str:
            if not isinstance(value, str):
                self._refuse(value)
            if self.several:
                parts = [part.strip() for part in value.split(",")]
                if not all(p in self.choices for p in parts) or len(set(parts)) != len(parts):
                    self._refuse(value)
                return ",".join(parts)
            if self.choices and value not in self.choices:
                self._refuse(value)
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            self._refuse(value)  # True is no integer, "3" no number
        if self.kind is int:
            if not isinstance(value, numbers.Integral):
                self._refuse(value)  # 2.0 epochs: a float where a count belongs
            number: float = int(value)
        else:
            try:
                number = float(value)
            except OverflowError:
                self._refuse(value)
            if not math.isfinite(number):
                self._refuse(value)
        if not self._in_range(number):
            self._refuse(value)
        if self.kind is int and abs(number) >= _INT64:  # no count, size or seed is that big
            self._refuse_too_big(_show(value))
        return number

    def parse(self, text: str) -> Any:
        """The value of a command-line argument, checked as check() does; the message shows
        the text as typed."""
        try:
            value: Any = text
            if self.kind is int:
                value = int(text)
            elif self.kind is float:
                value = float(text)
        except ValueError:
            pass
        else:
            if self.kind is int and self._in_range(value) and abs(value) >= _INT64:
                self._refuse_too_big(text.strip())
            try:
                return self.check(value)
            except ConfigError:
                pass
        try:
            float(text)
            shown = text.strip()  # a number: as typed
        except ValueError:
            shown = repr(text)
        raise ConfigError(self.name, f"must be {self.requirement()}, got {shown}")

    def _in_range(self, value: float) -> bool:
        if self.min is not None and (value <= self.min if self.min_open else value < self.min):
            return False
        if self.max is not None and (value >= self.max if self.max_open else value > self.max):
            return False
        return True

    def _refuse(self, value: Any) -> typing.NoReturn:
        raise ConfigError(self.name, f"must be {self.requirement()}, got {_show(value)}")

    def _refuse_too_big(self, shown: str) -> typing.NoReturn:
        raise ConfigError(self.name, f"must be {self.requirement()} below 2^63, got {shown}")


_INT64 = 1 << 63


def flag(name: str) -> str:
    """The command line's name for an option: --word-dim for word_dim."""
    return "--" + name.replace("_", "-")


def _show(value: Any) -> str:
    """A value as a message shows it: 0.5, 3, 'rnn' (numpy scalars as plain numbers)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    try:
        return repr(float(value))
    except OverflowError:
        return repr(value)


C = TypeVar("C", bound="_Config")


class _Config:
    """Shared behaviour of the config dataclasses: checking, dicts, metadata."""

    GROUP: typing.ClassVar[str] = ""
    _OPTIONS: typing.ClassVar[tuple[Option, ...]] = ()

    def __post_init__(self) -> None:
        for opt in self._OPTIONS:
            object.__setattr__(self, opt.name, opt.check(getattr(self, opt.name)))

    @classmethod
    def options(cls) -> dict[str, Option]:
        """{name: Option} in declaration order."""
        return {opt.name: opt for opt in cls._OPTIONS}

    @classmethod
    def check_names(cls, names: Iterable[str],
                    known: Mapping[str, Option] | None = None) -> None:
        """ConfigError for the first name (sorted) that is not an option of known
        ({name: Option}; default: this class's), naming the nearest valid one."""
        known = cls.options() if known is None else known
        for name in sorted(set(names) - set(known), key=str):
            raise unknown_option(name, known)

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """A config from {name: value}; missing options take their defaults."""
        cls.check_names(values)
        return cls(**values)

    @classmethod
    def from_meta(cls: type[C], values: Any, what: str) -> C:
        """A config from a model's or checkpoint's metadata, which may lack options added
        since it was written (they take their defaults).  MetadataError says what is wrong
        ("network options: hidden must be ..."), for the caller to name the file."""
        if not isinstance(values, dict):
            raise MetadataError(f"{what} are not a JSON object")
        try:
            return cls.from_dict(values)
        except ConfigError as e:
            raise MetadataError(f"{what}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return {opt.name: getattr(self, opt.name) for opt in self._OPTIONS}

    def replace(self: C, **changes: Any) -> C:
        self.check_names(changes)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


class MetadataError(ModelError):
    """Options in a model's or checkpoint's metadata that this seqtag does not accept; the
    message leaves the file for the caller to name."""


def unknown_option(name: str, known: Iterable[str]) -> ConfigError:
    """The ConfigError for an option name that is not in known (names)."""
    import difflib  # for a misspelt option only

    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"the options are {', '.join(known)}"
    return ConfigError(name, message=f"unknown option {name!r}; {hint}")


T = TypeVar("T", bound=type[_Config])


def _declare(cls: T) -> T:
    """Build the Options of a config dataclass from its fields."""
    options = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # a dataclass by now
        kind, none = hints[f.name], False
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # Optional[x], x | None
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            kind, none = args[0], True
        options.append(Option(f.name, cls.GROUP, kind, none, f.default,
                              f.metadata["seqtag.option"]))
    cls._OPTIONS = tuple(options)
    return cls


def _threads() -> Any:
    # training and tagging both take it: one declaration
    return option(2, min=1, help="CPU threads (2: the two directions of each BiLSTM at once).",
                  resumable=True)


@_declare
@dataclasses.dataclass(frozen=True)
class NetworkConfig(_Config):
    """The network's shape: a model's metadata holds it."""

    GROUP = "network"

    cell: str = option("lstm", choices=("lstm", "peephole", "gru"), help="Recurrent cell.")
    word_dim: int = option(100, min=1, help="Word embedding size.")
    char_dim: int = option(32, min=1, help="Character embedding size.")
    char_hidden: int = option(64, min=1, help="Character BiLSTM units per direction.")
    hidden: int = option(128, min=1, help="Hidden units per direction.")
    layers: int = option(2, min=1, help="BiLSTM layers over the words (for span tags, "
                         "unless given: 1, SPAN_DEFAULTS).")
    dropout: float = option(0.5, min=0.0, max=1.0, max_open=True, help="Dropout rate.")
    word_dropout: float = option(
        0.25, min=0.0, help="A word seen c times is read as <unk> with probability "
        "a/(a + c) in training, so the network learns to read characters: a.")
    shape_dim: Optional[int] = option(
        None, min=0, none_means="8 for span tags, else 0",
        help="Size of the embedding of each word's shape (case, digits, punctuation: "
        "seqtag.vocab.word_shape), next to its word embedding; 0: none.")
    output_layer: str = option(
        "auto", choices=("auto", "softmax", "crf"),
        help="Output layer: softmax (each token's tag on its own) or crf (a linear-chain "
        "CRF: the best tag sequence, spans never ill-formed); auto: crf when the training "
        "tags are spans (O, B-X, I-X, E-X, S-X), else softmax.")
    feats: str = option("whole", choices=("whole", "split"),
                        help="How FEATS is learned: whole (one head over the whole feature "
                        "strings) or split (a head per feature).")


#: Network and training options that take another default when the training tags are
#: span tags (O, B-X, I-X, ...) and the option is not given: measured on Universal NER
#: English-EWT's held-out dev sentences (BENCHMARKS.md), one BiLSTM layer and dense Adam
#: on the embeddings generalise better from its 2,000 sentences.  Its runs keep the fixed
#: length that recipe was measured with (30 epochs, patience 6, rate cut after 2), not the
#: corpus-sized schedule of auto_schedule, which has not been measured on span tags.
SPAN_DEFAULTS: dict[str, Any] = {"layers": 1, "embedding_adam": "dense", "epochs": 30,
                                 "patience": 6, "decay_patience": 2}


@_declare
@dataclasses.dataclass(frozen=True)
class TrainingConfig(_Config):
    """How a run trains: a model's and a checkpoint's metadata hold it."""

    GROUP = "training"

    epochs: Optional[int] = option(
        None, min=1, resumable=True, none_means="auto",
        help=f"Most epochs to train; auto: {_AUTO_RULE} (seqtag.config.auto_schedule).")
    batch_size: int = option(32, min=1, help="Sentences per training batch.")
    optimizer: str = option("adam", choices=("adam", "sgd"), help="Optimizer.")
    embedding_adam: str = option(
        "lazy", choices=("lazy", "dense"),
        help="How Adam updates the embeddings: lazy (only the rows a batch used: fast with "
        "a large vocabulary) or dense (every row at every step, as torch.optim.Adam; for "
        "span tags, unless given: SPAN_DEFAULTS).")
    lr: Optional[float] = option(
        None, min=0.0, min_open=True, help="Learning rate.",
        none_means=", ".join(f"{v:g} with {k}" for k, v in DEFAULT_LR.items()))
    clip: float = option(5.0, min=0.0, help="Largest global norm of the gradients "
                         "(0: no clipping).")
    seed: int = option(1, min=0, help="Random seed.")
    patience: Optional[int] = option(
        None, min=1, resumable=True, none_means="auto",
        help=f"Stop after this many epochs without a better dev score; auto: "
        f"{BASE_PATIENCE} for a run of {BASE_EPOCHS} epochs, more in proportion for more.")
    average: float = option(0.999, min=0.0, max=1.0, max_open=True,
                            help="Decay of the moving average of the weights that is scored "
                            "and kept (0: the weights of the last step).")
    decay_patience: Optional[int] = option(
        None, min=1, none_means="auto",
        help=f"Cut the learning rate after this many epochs without a better dev score "
        f"(auto: {BASE_DECAY_PATIENCE} for a run of {BASE_EPOCHS} epochs, more in "
        "proportion for more)...")
    lr_decay: float = option(0.5, min=0.0, min_open=True, max=1.0,
                             help="...by this factor.")
    max_time: Optional[float] = option(
        None, min=0.0, min_open=True, resumable=True, none_means="no limit",
        help="Stop after the epoch running when this many seconds have passed.")
    dev_fraction: float = option(0.1, min=0.0, min_open=True, max=1.0, max_open=True,
                                 help="Share of the corpus held out to pick the best epoch "
                                 "when no dev corpus is given.")
    columns: Optional[str] = option(
        None, choices=COLUMN_NAMES, several=True, none_means="every one the corpus fills",
        metavar="COLUMNS",
        help="CoNLL-U columns to learn, one output head each over the shared network "
        "(other corpora: their one tag).")
    threads: int = _threads()
    embeddings: Optional[str] = option(
        None, metavar="FILE", none_means="none",
        help="Pretrained word vectors that initialise the word embedding: word2vec, GloVe "
             "or fastText text (.vec, .txt; gzipped too) or word2vec binary. Without "
             "--word-dim, the embedding takes their dimension.")
    embeddings_vocab: int = option(
        50000, min=0, help="Words of --embeddings absent from the corpus that the model "
        "keeps anyway (the file's first: the most frequent), for words unseen in training.")
    freeze_embeddings: bool = option(
        False, help="Keep the pretrained vectors as they are (the other words' embeddings "
        "still learn).")

    @property
    def learning_rate(self) -> float:
        """lr, or the optimizer's own default when lr is None."""
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    def scheduled(self, sentences: int) -> "TrainingConfig":
        """This config with epochs, patience and decay_patience that are None (auto) set
        by auto_schedule for a training corpus of `sentences` sentences."""
        auto = auto_schedule(sentences, self.batch_size)
        return self.replace(**{name: value for name, value in auto.items()
                               if getattr(self, name) is None})

    @classmethod
    def resumable(cls) -> tuple[str, ...]:
        """Names of the options a resumed run may set anew (the others shape the run)."""
        return tuple(opt.name for opt in cls._OPTIONS if opt.resumable)


@_declare
@dataclasses.dataclass(frozen=True)
class TaggingConfig(_Config):
    """What tagging takes: Tagger.load (threads, memo_words) and the tag stream
    (batch_size, top_k)."""

    GROUP = "tagging"

    threads: int = _threads()
    batch_size: int = option(256, min=1, help="Sentences read, tagged and written at a time.")
    top_k: Optional[int] = option(
        None, min=1, metavar="K",
        help="Also print the K most probable tags with their probabilities: word/TAG/P|TAG/P... "
             "in text, more TAG<TAB>P columns in tsv, \"top\" in json.")
    memo_words: int = option(8192, min=0, help="Distinct word forms whose first-layer input "
                             "projection tagging remembers (0: none).")
    span_scheme: Optional[str] = option(
        None, choices=("IOB2", "IOBES"), none_means="the model's",
        help="Write span tags in this scheme (models of span tags only).")
    columns: Optional[str] = option(
        None, choices=COLUMN_NAMES, several=True, none_means="the model's first",
        metavar="COLUMNS",
        help="Columns the text, tsv and json output show, of those the model predicts "
        "(conllu fills every one).")


def split_training_options(options: Mapping[str, Any]
                           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tagger.train's keyword options, checked: ({network option: value},
    {training option: value}), the values normalised.  ConfigError for an unknown name
    (naming the nearest one) or a bad value."""
    network, training = NetworkConfig.options(), TrainingConfig.options()
    _Config.check_names(options, dict(network, **training))
    return ({k: network[k].check(v) for k, v in options.items() if k in network},
            {k: training[k].check(v) for k, v in options.items() if k in training})
