"""The learned raw-text front end: tokens, sentences and multiword tokens by character
tagging, trained from a treebank's own `# text` lines (the FrontEnd of seqtag.frontend).

Every character of a paragraph gets one label: inside a token, last character of a token,
of a sentence's last token, of a multiword token (and of one that ends a sentence), or
whitespace between tokens.  A character embedding feeds a one-layer bidirectional GRU
(seqtag.rnn; an LSTM is an option) and a linear layer; inference cuts paragraphs into
overlapping windows and runs many of them as one packed batch, so memory stays bounded on
huge paragraphs.  After the model, the chunk lexicon gives the whitespace-free chunks the
treebank has a clear convention for ("Inc." whole, "F-16" split) that segmentation, and a
word-level model (WordBoundaries) decides again where sentences end between words, which
the character model misses where no punctuation ends them (headings, titles).
Multiword tokens are expanded by a dictionary learned from the treebank (surface form ->
its most frequent words), with a suffix rule for flagged tokens never seen.

The rule front end (RuleFrontEnd: seqtag.tokenize plus a punctuation sentence rule) lives
here too: it is what a model without a learned front end uses.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
import os
import re
import time
import unicodedata
import weakref
import zlib
from collections import Counter, defaultdict
from collections.abc import Mapping, MutableMapping
from itertools import accumulate, repeat
from typing import Callable, Iterable, Literal, Optional

import numpy as np

from . import _core, runtime
from .errors import CorpusError, ModelError, SeqtagError
from .frontend import RawSentence, Token
from .modelfile import StringIndex
from .optim import Adam, clip_by_global_norm
from .packing import Packing
from .rnn import RNN

__all__ = [
    "LearnedFrontEnd", "RuleFrontEnd", "TrainingText", "read_training_text", "to_conllu",
    "paragraphs_to_conllu", "train_frontend", "learn_lexicon", "dev_scores", "LABELS",
]

# ---------------------------------------------------------------- labels

INSIDE, END, SENT, MWT, MWT_SENT, SPACE = range(6)
#: The label of each character, by id.
LABELS = ("inside", "token-end", "sentence-end", "multiword-end", "multiword-sentence-end",
          "space")
_ENDS = np.array([False, True, True, True, True, False])
_SENTENCE_ENDS = np.array([False, False, True, False, True, False])
_MULTIWORD = np.array([False, False, False, True, True, False])


# ---------------------------------------------------------------- training material


class TrainingText:
    """A treebank as raw paragraphs with the gold label of every character.

    paragraphs        the raw text of each paragraph (its sentences' `# text` joined by
                      one space)
    labels            one int8 array per paragraph, a label (LABELS) per character
    multiword         (surface form, words) of every multiword token
    plain             how often each lowercase form is a token of one word
    tags              the UPOS of each lowercase form's one-word tokens, counted
    sentences         how many sentences were read
    rebuilt           sentences whose tokens did not match their `# text`: their text was
                      rebuilt from the tokens and SpaceAfter (so the labels still hold)
    """

    # this module's classes are plain ones: each dataclass cost ~1 ms of importing it,
    # which a one-shot `seqtag tag` does (BENCHMARKS.md, #12)

    def __init__(self, paragraphs: list[str], labels: list[np.ndarray],
                 multiword: Optional[list[tuple[str, tuple[str, ...]]]] = None,
                 sentences: int = 0, rebuilt: int = 0, plain: Optional[Counter] = None,
                 tags: Optional[dict[str, Counter]] = None):
        self.paragraphs = paragraphs
        self.labels = labels
        self.multiword = [] if multiword is None else multiword
        self.sentences = sentences
        self.rebuilt = rebuilt
        self.plain = Counter() if plain is None else plain
        self.tags = {} if tags is None else tags

    def __repr__(self):
        return (f"TrainingText({len(self.paragraphs)} paragraphs, {self.sentences} sentences, "
                f"{len(self.multiword)} multiword tokens, {self.rebuilt} rebuilt)")


class _GoldSentence:
    __slots__ = ("text", "tokens", "new_paragraph", "tags")

    def __init__(self, text: Optional[str],
                 tokens: list[tuple[str, tuple[str, ...], bool]],  # (form, words or (),
                 new_paragraph: bool,                               # space after)
                 tags: Optional[list[Optional[str]]] = None):  # a token's UPOS (None: MWT)
        self.text, self.tokens, self.new_paragraph = text, tokens, new_paragraph
        self.tags = [] if tags is None else tags


def _read_conllu_sentences(path):
    """The sentences of a CoNLL-U file: text, surface tokens, paragraph starts."""
    sentences = []
    text, tokens, new_par, words_left, mwt, tags = None, [], False, 0, None, []
    next_word, range_line = 1, 0  # the word ID due next; where the open range was
    name = str(path)
    try:
        handle = open(path, encoding="utf-8-sig")  # a leading byte-order mark: as corpus.py
    except OSError as e:
        raise CorpusError(f"cannot read: {e.strerror}", name) from None
    with handle:
        try:
            for number, line in enumerate(handle, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    if words_left:
                        raise CorpusError(f"multiword token {mwt[0]!r} ends past its "
                                          "sentence's last word", name, range_line)
                    if tokens:
                        sentences.append(_GoldSentence(text, tokens, new_par, tags))
                    text, tokens, new_par, words_left, mwt, tags = None, [], False, 0, None, []
                    next_word = 1
                    continue
                if line.startswith("#"):
                    if line.startswith(("# newpar", "# newdoc")):
                        new_par = True
                    elif line.startswith("# text") and "=" in line:
                        key, _, value = line[1:].partition("=")
                        if key.strip() == "text":
                            text = value.strip()
                    continue
                cols = line.split("\t")
                if len(cols) != 10:
                    raise CorpusError(f"expected 10 tab-separated columns, found {len(cols)}",
                                      name, number)
                ident, form, misc = cols[0], cols[1], cols[9]
                space_after = "SpaceAfter=No" not in misc.split("|")
                if "-" in ident:
                    first, _, last = ident.partition("-")
                    if not (first.isdigit() and last.isdigit()) or int(last) < int(first):
                        raise CorpusError(f"bad multiword token range {ident!r}", name, number)
                    # its words must follow it: it learns the form's expansion from them
                    if words_left or int(first) != next_word:
                        raise CorpusError(f"multiword token range {ident!r} does not start at "
                                          f"the next word ({next_word})", name, number)
                    words_left, range_line = int(last) - int(first) + 1, number
                    mwt = [form, [], space_after]
                    tokens.append(mwt)
                    tags.append(None)
                elif "." in ident:
                    continue  # an empty node: no characters of its own
                elif ident != str(next_word):
                    raise CorpusError(f"word ID {ident!r} out of order ({next_word} expected)",
                                      name, number)
                elif words_left:
                    mwt[1].append(form)
                    words_left -= 1
                    next_word += 1
                else:
                    tokens.append([form, [], space_after])
                    tags.append(cols[3])
                    next_word += 1
        except UnicodeDecodeError as e:
            raise CorpusError(f"not UTF-8 ({e.reason} at byte {e.start})", name) from None
    if words_left:
        raise CorpusError(f"multiword token {mwt[0]!r} ends past its sentence's last word",
                          name, range_line)
    if tokens:
        sentences.append(_GoldSentence(text, tokens, new_par, tags))
    for s in sentences:
        s.tokens = [(f, tuple(w), sa) for f, w, sa in s.tokens]
    return sentences


def _align(text, tokens):
    """Labels of the characters of one sentence's text given its surface tokens, or None
    where a token does not match the text."""
    labels = np.full(len(text), SPACE, dtype=np.int8)
    i, n = 0, len(text)
    for form, words, _ in tokens:
        while i < n and text[i].isspace():
            i += 1
        j = 0
        form = form.strip()
        if not form:
            return None
        while j < len(form):
            if i >= n:
                return None
            if form[j].isspace():
                if not text[i].isspace():
                    return None
                while j < len(form) and form[j].isspace():
                    j += 1
                while i < n and text[i].isspace():
                    labels[i] = INSIDE
                    i += 1
                continue
            if text[i] != form[j]:
                return None
            labels[i] = INSIDE
            i += 1
            j += 1
        labels[i - 1] = MWT if len(words) > 1 else END
    if text[i:].strip():
        return None
    last = np.flatnonzero(labels != SPACE)
    if last.size == 0:
        return None
    labels[last[-1]] = MWT_SENT if labels[last[-1]] == MWT else SENT
    return labels


def _rebuilt_text(tokens):
    parts = []
    for form, _, space_after in tokens:
        parts.append(form)
        parts.append(" " if space_after else "")
    return "".join(parts[:-1])


def read_training_text(path: str | os.PathLike[str],
                       sentences_per_paragraph: int = 5) -> TrainingText:
    """A CoNLL-U file as raw paragraphs with per-character gold labels.

    Paragraphs follow `# newpar` / `# newdoc`; a file with neither is cut into groups of
    sentences_per_paragraph sentences.  A sentence whose tokens do not match its `# text`
    line has its text rebuilt from the tokens and SpaceAfter=No (counted in .rebuilt);
    a file with no `# text` line at all raises CorpusError: no raw text to learn from.
    """
    sentences = _read_conllu_sentences(path)
    if not sentences:
        raise CorpusError("no sentences", str(path))
    if all(s.text is None for s in sentences):
        raise CorpusError("no '# text =' lines: a tokenizer cannot be learned from this file "
                          "(the rule front end stays)", str(path))
    marked = any(s.new_paragraph for s in sentences)
    paragraphs: list[str] = []
    labels: list[np.ndarray] = []
    multiword: list[tuple[str, tuple[str, ...]]] = []
    plain: Counter = Counter()
    tags: dict[str, Counter] = defaultdict(Counter)
    rebuilt = 0
    texts: list[str] = []
    parts: list[np.ndarray] = []

    def close():
        if texts:
            paragraphs.append(" ".join(texts))
            sep = np.array([SPACE], dtype=np.int8)
            joined = [parts[0]]
            for p in parts[1:]:
                joined += [sep, p]
            labels.append(np.concatenate(joined))
        texts.clear()
        parts.clear()

    for k, s in enumerate(sentences):
        if (s.new_paragraph if marked else k % sentences_per_paragraph == 0):
            close()
        text = s.text
        lab = None if text is None else _align(text, s.tokens)
        if lab is None:
            text = _rebuilt_text(s.tokens)
            lab = _align(text, s.tokens)
            rebuilt += 1
            if lab is None:  # tokens of only whitespace: nothing to learn from
                continue
        texts.append(text)
        parts.append(lab)
        multiword.extend((f, w) for f, w, _ in s.tokens if len(w) > 1)
        plain.update(f.lower() for f, w, _ in s.tokens if len(w) <= 1)
        for (form, words, _), tag in zip(s.tokens, s.tags):
            if len(words) <= 1 and tag is not None:
                tags[form.lower()][tag] += 1
    close()
    return TrainingText(paragraphs, labels, multiword, len(sentences), rebuilt, plain,
                        dict(tags))


# ---------------------------------------------------------------- characters

# Characters the model has not seen map to the id of their class, so an unseen letter of
# any script is still a letter (upper or lower case), an unseen digit a digit, etc.
_CLASSES = ("space", "upper", "lower", "letter", "number", "open", "close", "punct",
            "symbol", "mark", "other")
_CATEGORY_CLASS = {"Lu": 1, "Lt": 1, "Ll": 2, "Lo": 3, "Lm": 3, "Nd": 4, "Nl": 4, "No": 4,
                   "Ps": 5, "Pi": 5, "Pe": 6, "Pf": 6, "Pc": 7, "Pd": 7, "Po": 7, "Sm": 8,
                   "Sc": 8, "Sk": 8, "So": 8, "Mn": 9, "Mc": 9, "Me": 9}
N_CLASSES = len(_CLASSES)
_MARK = _CLASSES.index("mark")
_ZWJ = 0x200D


def _char_class(c):
    if c.isspace():
        return 0
    return _CATEGORY_CLASS.get(unicodedata.category(c), 10)


def _code_points(text):
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


class CharCodes:
    """Characters -> ids: 0 for any whitespace, 1 .. N_CLASSES-1 for unseen characters by
    class, then one id per character seen in training.  Encoding is vectorised over code
    points (a lookup table for the Basic Multilingual Plane, a dict beyond)."""

    def __init__(self, chars: str):
        self.chars = chars
        self.size = N_CLASSES + len(chars)
        self._table = np.full(0x10000, -1, dtype=np.int64)
        self._astral: dict[int, int] = {}
        for i, c in enumerate(chars):
            self._set(ord(c), N_CLASSES + i)
        # the class of every id, for character dropout in training
        self.class_of_id = np.concatenate([np.arange(N_CLASSES),
                                           [_char_class(c) for c in chars]]).astype(np.int64)

    def _set(self, cp, ident):
        if cp < 0x10000:
            self._table[cp] = ident
        else:
            self._astral[cp] = ident

    def encode(self, text: str) -> np.ndarray:
        """(len(text),) int64 ids."""
        return self.encode_code_points(_code_points(text))

    def encode_code_points(self, cps: np.ndarray) -> np.ndarray:
        small = cps < 0x10000
        ids = np.empty(len(cps), dtype=np.int64)
        if small.all():
            ids[:] = self._table[cps]
        else:
            ids[small] = self._table[cps[small]]
            ids[~small] = [self._astral_id(int(cp)) for cp in cps[~small]]
        missing = ids < 0
        if missing.any():
            # a set, not np.unique: that imports numpy.ma (~18 ms), on the first text
            for cp in set(cps[missing].tolist()):
                self._table[cp] = _char_class(chr(cp))
            ids[missing] = self._table[cps[missing]]
        return ids

    def _astral_id(self, cp):
        ident = self._astral.get(cp)
        if ident is None:
            ident = _char_class(chr(cp))
            if len(self._astral) < 100_000:
                self._astral[cp] = ident
        return ident


def _glued(cps, classes):
    """(n,) bool: character i may not end a token because character i+1 belongs to the same
    grapheme (a combining mark, a variation selector, an emoji modifier, a tag character
    of a flag such as Scotland's, a zero-width joiner or what follows one, the second of
    a pair of regional indicators: a country's flag).  classes: each character's index in
    _CLASSES (a seen character's too: CharCodes.class_of_id of its id, not the id)."""
    n = len(cps)
    glued = np.zeros(n, dtype=bool)
    if n < 2:
        return glued
    nxt, cur = cps[1:], cps[:-1]
    glued[:-1] = ((classes[1:] == _MARK) | (nxt == _ZWJ) | (cur == _ZWJ)
                  | ((nxt >= 0xFE00) & (nxt <= 0xFE0F)) | ((nxt >= 0x1F3FB) & (nxt <= 0x1F3FF))
                  | ((nxt >= 0xE0020) & (nxt <= 0xE007F)))
    regional = (cps >= 0x1F1E6) & (cps <= 0x1F1FF)
    if regional.any():  # flags are pairs: the 1st, 3rd, ... of a run take the one after
        index = np.arange(n)
        in_run = index - np.maximum.accumulate(np.where(regional, -1, index)) - 1
        glued[:-1] |= regional[:-1] & regional[1:] & (in_run[:-1] % 2 == 0)
    return glued


#: The character classes (_CLASSES) of punctuation marks and symbols.
_SYMBOL_CLASSES = np.array([c in ("open", "close", "punct", "symbol") for c in _CLASSES])


def _repeated_symbols(cps, classes):
    """(n,) bool: character i is a punctuation mark or symbol that character i + 1 repeats
    ("!!!", "$$$", "--"; classes: each character's index in _CLASSES)."""
    repeated = np.zeros(len(cps), dtype=bool)
    if len(cps) > 1:
        repeated[:-1] = (cps[:-1] == cps[1:]) & _SYMBOL_CLASSES[classes[:-1]]
    return repeated


def learn_repeated_symbols(material: TrainingText) -> float:
    """The share of a treebank's runs of one repeated punctuation mark or symbol ("!!!",
    "--", "$$") that no token end cuts (1 where it has none).  EWT keeps 99 % of them
    whole; where a treebank does, the decoder may keep every such run whole
    (LearnedFrontEnd.repeats_whole), which the model misses for runs it has rarely seen
    ("$$$" cut into three)."""
    codes = CharCodes("")  # every character by its class
    whole = cut = 0
    for text, labels in zip(material.paragraphs, material.labels):
        cps = _code_points(text)
        repeated = _repeated_symbols(cps, codes.encode_code_points(cps))
        if not repeated.any():
            continue
        run = np.cumsum(repeated & ~np.concatenate([[False], repeated[:-1]])) - 1
        runs = int(run[repeated].max()) + 1
        cut_runs = np.unique(run[repeated & _ENDS[labels.astype(np.int64)]]).size
        cut += cut_runs
        whole += runs - cut_runs
    return whole / (whole + cut) if whole + cut else 1.0


# ---------------------------------------------------------------- the network


class CharTagger:
    """Character embedding -> bidirectional recurrent layer -> linear -> log-softmax over
    LABELS, in packed order (seqtag.packing)."""

    def __init__(self, n_chars, dim=24, hidden=48, cell="lstm", seed=0, threads=1,
                 dtype=np.float32, init=True):
        self.dtype = np.dtype(dtype).type
        # a model being loaded draws nothing: numpy.random's import alone is ~12 ms of a
        # one-shot `seqtag tag`
        rng = np.random.default_rng(seed) if init else None
        self.rnn = RNN(cell, dim, hidden, bidirectional=True,
                       seed=int(rng.integers(2**31)) if rng is not None else 0,
                       threads=threads, dtype=dtype, init=init)
        n_out = len(LABELS)
        if init:
            self.embedding = (rng.standard_normal((n_chars, dim)) * 0.3).astype(dtype)
            bound = 1.0 / np.sqrt(2 * hidden)
            self.output_weight = rng.uniform(-bound, bound, (n_out, 2 * hidden)).astype(dtype)
        else:
            self.embedding = np.zeros((n_chars, dim), dtype=dtype)
            self.output_weight = np.zeros((n_out, 2 * hidden), dtype=dtype)
        self.output_bias = np.zeros(n_out, dtype=dtype)
        self._projections = None
        self._packed = None  # (kernels, rnn.pack_recurrent()) for the current weights

    def arrays(self):
        """{name: array}: the arrays themselves (the optimiser updates them in place)."""
        named = {"embedding": self.embedding}
        named.update({"rnn." + k: v for k, v in self.rnn.params.items()})
        named["output.weight"] = self.output_weight
        named["output.bias"] = self.output_bias
        return named

    def expected_shapes(self):
        shapes = {"embedding": self.embedding.shape}
        shapes.update({"rnn." + k: v for k, v in self.rnn.param_shapes().items()})
        shapes["output.weight"] = self.output_weight.shape
        shapes["output.bias"] = self.output_bias.shape
        return shapes

    def load_arrays(self, arrays):
        self.embedding = np.array(arrays["embedding"], dtype=self.dtype, order="C")
        self.rnn.load_params({k[4:]: v for k, v in arrays.items() if k.startswith("rnn.")})
        self.output_weight = np.array(arrays["output.weight"], dtype=self.dtype, order="C")
        self.output_bias = np.array(arrays["output.bias"], dtype=self.dtype, order="C")
        self.changed()

    def changed(self):
        """The weights changed in place: forget what was computed from them."""
        self._projections = self._packed = None

    def logits(self, ids, packing):
        """Inference: (N, len(LABELS)) scores of the packed rows whose character ids are
        ids.  Each character's input pre-activations are a row of a table computed once
        per id, so the only per-character products are the recurrent ones; W_hh packed for
        the fused step is kept too, for the kernels that run (a one-shot `seqtag tag`'s
        few characters take it as a long text does)."""
        isa = runtime.fused_step_isa()  # asked on each call: the switch may change
        with runtime.single_blas_thread():
            if self._projections is None:
                self._projections = [self.rnn.input_projection(self.embedding, d)
                                     for d in range(2)]
            packed = self._packed
            if packed is None or packed[0] != isa:
                packed = self._packed = (isa, self.rnn.pack_recurrent())
            out, _, _ = self.rnn.forward_projected(
                self._projections, ids, packing, head=(self.output_weight, self.output_bias),
                states=False, packed=packed[1])
        return out

    def loss_and_gradients(self, ids, labels, packing, weights=None):
        """Mean (weighted) negative log-likelihood of the labels of packed rows, and its
        gradients: (loss, dense {name: grad}, sparse {"embedding": (ids, rows)})."""
        with runtime.single_blas_thread():
            x = self.embedding[ids]
            hidden, _, _, cache = self.rnn.forward_packed(x, packing, training=True)
            logits = hidden @ self.output_weight.T
            logits += self.output_bias
            _core.log_softmax_rows(logits)
            rows = np.arange(len(labels))
            w = (np.ones(len(labels), dtype=self.dtype) if weights is None
                 else weights.astype(self.dtype))
            total = w.sum()
            loss = -(w * logits[rows, labels]).sum() / total
            # d loss / d logits of softmax + NLL: (probs - onehot) * weight / total
            grad = np.exp(logits)
            grad[rows, labels] -= 1.0
            grad *= (w / total)[:, None]
            dense = {"output.weight": grad.T @ hidden, "output.bias": grad.sum(axis=0)}
            grad_hidden = grad @ self.output_weight
            grad_x, rnn_grads, _, _ = self.rnn.backward_packed(cache, grad_hidden)
            dense.update({"rnn." + k: v for k, v in rnn_grads.items()})
            unique, inverse = np.unique(ids, return_inverse=True)
            summed = np.zeros((len(unique), x.shape[1]), dtype=self.dtype)
            _core.add_rows(summed, inverse.astype(np.int64).ravel(), grad_x)
        return float(loss), dense, {"embedding": (unique, summed)}


# ---------------------------------------------------------------- multiword tokens


class MultiwordExpander:
    """Surface form -> words, learned from a treebank's multiword tokens.

    A flagged token takes the most frequent expansion of its form, else of its lowercase
    form, in the token's own case: cut from the token where the words spell it out
    ("DON'T" -> "DO" "N'T", "Don't" -> "Do" "n't"), the case carried over otherwise
    ("Du" -> "De le"); a form never seen is split by the longest suffix that ends seen
    multiword tokens whose words spell them out ("n't" of "don't" -> "do n't"), else kept
    as one word.  A form in `whole` is always kept as one word: the treebank has it as a
    plain token nearly always ("from", "hours": the model's flag and "m" or "s" as a
    suffix would make "fro m", "hour s").
    """

    def __init__(self, forms: dict[str, list[str]], suffixes: dict[str, int],
                 whole: Iterable[str] = ()):
        self.forms = forms
        self.suffixes = suffixes
        self.whole = frozenset(whole)
        self._longest = max((len(s) for s in suffixes), default=0)

    @classmethod
    def learn(cls, multiword: Iterable[tuple[str, tuple[str, ...]]],
              plain: Optional[Counter] = None, min_share: float = 0.1,
              min_count: int = 2) -> "MultiwordExpander":
        """From the (form, words) of a treebank's multiword tokens and the counts of its
        lowercase one-word tokens (plain): the forms of one word seen at least min_count
        times and a multiword token in less than min_share of their uses stay whole."""
        multiword = list(multiword)
        exact: dict[str, Counter] = defaultdict(Counter)
        lower: dict[str, Counter] = defaultdict(Counter)
        suffixes: Counter = Counter()
        for form, words in multiword:
            exact[form][words] += 1
            lower[form.lower()][tuple(w.lower() for w in words)] += 1
            if len(words) == 2 and "".join(words).lower() == form.lower() and words[0]:
                suffixes[words[1].lower()] += 1
        forms = {f: list(c.most_common(1)[0][0]) for f, c in lower.items()}
        forms.update({f: list(c.most_common(1)[0][0]) for f, c in exact.items()})
        expander = cls(forms, {s: n for s, n in suffixes.items() if n >= 2})
        as_multiword = Counter(f.lower() for f, _ in multiword)
        expander.whole = frozenset(
            f for f, n in (plain or {}).items()
            if n >= min_count and as_multiword[f] < min_share * (n + as_multiword[f])
            and len(expander.expand(f)) > 1)
        return expander

    def expand(self, form: str) -> list[str]:
        if self.whole and form.lower() in self.whole:
            return [form]
        return self.split(form)

    def split(self, form: str) -> list[str]:
        """form's words as expand() gives them, `whole` aside: what a flagged token
        becomes once something that sees its context (MultiwordContext) has decided."""
        words = self.forms.get(form)
        if words is not None:
            return list(words)
        words = self.forms.get(form.lower())
        if words is not None:
            return _with_case_of(form, words)
        low = form.lower()
        for k in range(min(self._longest, len(form) - 1), 0, -1):
            # a suffix comes off a word, not off a run of punctuation
            if low[-k:] in self.suffixes and any(c.isalnum() for c in form[:-k]):
                return [form[:-k], form[-k:]]
        return [form]

    def may_split(self, forms: list[str], lows: list[str]) -> np.ndarray:
        """The indices of the forms split() may cut into several words (lows: their
        lower-case forms): those it knows, as they are or in lower case, and those that end
        with one of its suffixes; the others it keeps whole.  In C-level loops: split() of
        every new form was a tenth of the multiword model's time on EWT train's raw text,
        two forms in three of which it keeps whole."""
        n = len(forms)
        known = self.forms.__contains__
        found = np.fromiter(map(known, forms), dtype=bool, count=n)
        found |= np.fromiter(map(known, lows), dtype=bool, count=n)
        found |= np.fromiter(map(str.endswith, lows, repeat(tuple(self.suffixes))),
                             dtype=bool, count=n)
        return np.flatnonzero(found)

    def to_meta(self) -> dict:
        return {"forms": self.forms, "suffixes": self.suffixes, "whole": sorted(self.whole)}

    @classmethod
    def from_meta(cls, meta: dict) -> "MultiwordExpander":
        return cls({str(k): [str(w) for w in v] for k, v in meta["forms"].items()},
                   {str(k): int(v) for k, v in meta["suffixes"].items()},
                   (str(f) for f in meta.get("whole", ())))


def _with_case_of(form, words):
    """words (a lowercase expansion of form) in form's case."""
    if "".join(words) == form.lower() and len(form.lower()) == len(form):
        pieces, start = [], 0
        for w in words:
            pieces.append(form[start:start + len(w)])
            start += len(w)
        return pieces
    if len(form) > 1 and form.isupper():
        return [w.upper() for w in words]
    if form[:1].isupper():
        return [words[0][:1].upper() + words[0][1:]] + list(words[1:])
    return list(words)


# ---------------------------------------------------------------- decoding


def _choose_labels(logits, ids, glued, sentence_bias=0.0, multiword_bias=0.0):
    """The label of every character of a paragraph from its scores: whitespace is only
    ever inside a token or space, other characters never space; a character glued to the
    next never ends a token.  sentence_bias is added to the sentence-ending labels' scores,
    multiword_bias to the multiword-ending ones where a token ends (both tuned on dev).
    The argmax of each character's allowed scores, in the compiled core
    (seqtag._core.choose_labels)."""
    logits = np.ascontiguousarray(logits)
    if logits.dtype not in (np.float32, np.float64):
        logits = logits.astype(np.float64)
    labels = np.empty(len(logits), dtype=np.int64)
    _core.choose_labels(logits, np.ascontiguousarray(ids == 0).view(np.uint8),
                        np.ascontiguousarray(glued, dtype=bool).view(np.uint8),
                        float(sentence_bias), labels)
    if multiword_bias:
        _bias_multiword(logits, labels, multiword_bias, sentence_bias)
    return labels


def _bias_multiword(logits, labels, bias, sentence_bias=0.0):
    """Decide again, in place, whether each token end is a multiword token's: its best
    multiword-ending score plus bias against its best plain ending score (the sentence-
    ending ones with sentence_bias, as _choose_labels scores them).  Where tokens
    end and which of them end sentences stay as they are: the bias only moves the
    multiword decision, which a small model makes with too little confidence for the rare
    multiword tokens written without an apostrophe ("its" for "it is")."""
    ends = np.flatnonzero(_ENDS[labels])
    scores = logits[ends]  # a token end is never whitespace nor glued: none masked
    if sentence_bias:
        scores[:, SENT] += sentence_bias
        scores[:, MWT_SENT] += sentence_bias
    multiword = (np.maximum(scores[:, MWT], scores[:, MWT_SENT]) + bias
                 > np.maximum(scores[:, END], scores[:, SENT]))
    sentence = _SENTENCE_ENDS[labels[ends]]
    labels[ends] = np.where(multiword, np.where(sentence, MWT_SENT, MWT),
                            np.where(sentence, SENT, END))


def _spans(labels, space):
    """Token and sentence spans of a text from its labels.

    Returns (starts, ends, sentence_end, multiword): token i is [starts[i], ends[i]),
    sentence_end[i] whether a sentence ends with it, multiword[i] whether it is a
    multiword token.  Whitespace is inside a token only where the whole run is labelled
    inside and lies between two characters of the token.
    """
    n = len(labels)
    in_token = ~space
    if space.any():
        inner = space & (labels == INSIDE)
        # runs of whitespace: [run_start, run_end)
        edges = np.diff(np.concatenate([[0], space.view(np.int8), [0]]))
        run_start, run_end = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        keep = (run_start > 0) & (run_end < n)
        run_start, run_end = run_start[keep], run_end[keep]
        if inner.any() and run_start.size:
            inside_count = np.concatenate([[0], np.cumsum(inner)])
            whole = inside_count[run_end] - inside_count[run_start] == run_end - run_start
            whole &= labels[run_start - 1] == INSIDE
            for s, e in zip(run_start[whole], run_end[whole]):
                in_token[s:e] = True
    ends_here = ~space & _ENDS[labels]
    ends_here[:-1] |= in_token[:-1] & ~in_token[1:]
    ends_here[-1] = in_token[-1]
    ends = np.flatnonzero(ends_here)
    prev_out = np.concatenate([[True], ~in_token[:-1] | ends_here[:-1]])
    starts = np.flatnonzero(in_token & prev_out)
    end_labels = labels[ends]
    sentence_end = _SENTENCE_ENDS[end_labels]
    if len(sentence_end):
        sentence_end[-1] = True
    return starts, ends + 1, sentence_end, _MULTIWORD[end_labels]


#: The character classes (_CLASSES) of the marks a sentence end moves past: closing
#: brackets and quotes (Unicode Pe, Pf) and other punctuation (Po, Pd, Pc: `"`, `!`, `-`).
#: Opening ones (Ps, Pi) are not: German `“` closes a quote but is Pi, and stays out.
_MARK_CLASSES = np.array([c in ("close", "punct") for c in _CLASSES])


def _mark_runs(starts, ends, classes):
    """((n,) bool: the token is only marks (_MARK_CLASSES), (n,) int64: the first token of
    the run of glued tokens of only marks it ends, itself where it is no mark or follows
    whitespace or a word): in `communiste."` the quote's run starts at the `.`.
    classes: each character's index in _CLASSES."""
    n = len(ends)
    not_mark = np.concatenate([[0], np.cumsum(~_MARK_CLASSES[classes])])
    marks = not_mark[ends] == not_mark[starts]
    joined = np.zeros(n, dtype=bool)  # token i continues the run of token i - 1
    joined[1:] = marks[1:] & marks[:-1] & (starts[1:] == ends[:-1])
    index = np.arange(n)
    return marks, np.maximum.accumulate(np.where(joined, 0, index))


def _ends_past_closing_marks(starts, ends, sentence_end, marks, runs):
    """Move, in place, each sentence end that a run of marks is glued to (no whitespace
    between) to the end of that run, where whitespace or the paragraph's end comes next:
    `communiste."` ends a sentence after its quote, `Really?!` after the `!`.  A
    treebank's sentences end where its raw text has whitespace or the paragraph ends, so
    a closing quote or bracket written against the final mark belongs to the sentence it
    closes; the character model, which sees few quotes closed after a final mark, ends
    the sentence before it.  An end followed by a word glued to it or to its marks
    (`end.The`, `end."The`) stays where it is.  marks, runs: _mark_runs."""
    n = len(ends)
    if n < 2:
        return
    glued = np.zeros(n, dtype=bool)  # the next token is glued to this one
    glued[:-1] = starts[1:] == ends[:-1]
    moving = np.flatnonzero(sentence_end & glued)
    moving = moving[marks[moving + 1]]
    if not len(moving):
        return
    last = np.searchsorted(runs, runs[moving + 1], side="right") - 1  # of the marks' run
    keep = ~glued[last]
    sentence_end[moving[keep]] = False
    sentence_end[last[keep]] = True


def _token_texts(text, starts, ends):
    """text[a:b] for a, b in zip(starts, ends) (int arrays), sliced by the compiled core
    (a Python comprehension took 2.5 times as long)."""
    return _core.text_slices(text, np.ascontiguousarray(starts, dtype=np.int64),
                             np.ascontiguousarray(ends, dtype=np.int64))


#: Below this code point str.isspace() is read from a table (U+3000, the ideographic space,
#: is the last space of Unicode); the others are asked of Python one by one.
_SPACES_BELOW = 0x3001


@functools.cache
def _space_table():
    """(_SPACES_BELOW,) bool: str.isspace() of each code point below it, made on first use
    (not at import: a one-shot command that never decodes raw text skips it)."""
    return np.array([chr(c).isspace() for c in range(_SPACES_BELOW)], dtype=bool)


def _is_space(cps):
    """(len(cps),) bool: whether each code point is a str.isspace() character."""
    cps = np.asarray(cps, dtype=np.int64)
    found = np.zeros(len(cps), dtype=bool)
    low = cps < _SPACES_BELOW
    found[low] = _space_table()[cps[low]]
    high = np.flatnonzero(~low)
    if len(high):
        found[high] = [chr(c).isspace() for c in cps[high].tolist()]
    return found


def _paragraph_sentences(text, bounds, spans, expander, forms=None, cps=None):
    """RawSentences of every paragraph of text (paragraphs joined by one separator;
    bounds[k] = (start, end) of paragraph k in it) from the spans of the whole text.
    forms: the tokens' text (_token_texts) and cps: the text's code points
    (_code_points), where the caller has them (else they are made here)."""
    starts, ends, sentence_end, multiword = spans
    result: list[list[RawSentence]] = [[] for _ in bounds]
    if not len(starts):
        return result
    begin = np.array([a for a, _ in bounds], dtype=np.int64)
    paragraph = np.searchsorted(begin, starts, side="right") - 1
    base = begin[paragraph]
    space_after = np.ones(len(ends), dtype=bool)
    inner = ends < len(text)
    if cps is None:
        cps = _code_points(text)
    space_after[inner] = _is_space(cps[ends[inner]])
    if forms is None:
        forms = _token_texts(text, starts, ends)
    closes = sentence_end.copy()
    closes[:-1] |= paragraph[:-1] != paragraph[1:]  # a paragraph always ends a sentence
    closes[-1] = True
    last = np.flatnonzero(closes)
    first = np.concatenate([[0], last[:-1] + 1])
    # The objects made here (a list of words and a Token per token) hold no reference
    # cycles, yet each few hundred of them start a pass of the cyclic garbage collector,
    # now and then over every object of the process: on EWT train's 200 K tokens that was
    # 60 % of this function's time, and its tokens' lists alone, made before it was
    # switched off, 45 % of what was left (seqtag.runtime.no_cycle_collection).
    with runtime.no_cycle_collection():
        words: list[list[str]] = [[] for _ in forms]
        if expander is not None:
            # the decoder has kept only the flagged tokens it wants expanded
            for i in np.flatnonzero(multiword).tolist():
                expansion = expander.split(forms[i])
                if len(expansion) > 1:
                    words[i] = expansion
        # one call per token, no Python loop around it
        tokens = list(map(Token, forms, (starts - base).tolist(), (ends - base).tolist(),
                          words, space_after.tolist()))
        for i, j, k in zip(first.tolist(), last.tolist(), paragraph[last].tolist()):
            group = tokens[i:j + 1]
            a, b = group[0].start, group[-1].end
            offset = bounds[k][0]
            result[k].append(RawSentence(group, a, b, text[offset + a:offset + b]))
    return result


# ---------------------------------------------------------------- the chunk lexicon

# A chunk is a run of non-space characters.  Its segmentation in a treebank is a string of
# one code per character: 0 inside a token, 1 ends a token, 2 ends a multiword token.
_SEGMENTATION_CODE = np.array([0, 1, 1, 2, 2, 0], dtype=np.int8)  # by label
_CODE_LABEL = np.array([INSIDE, END, MWT, END], dtype=np.int64)
_SENTENCE_VERSION = np.array([INSIDE, SENT, SENT, MWT_SENT, MWT_SENT, SPACE])


def _chunk_bounds(space):
    edges = np.diff(np.concatenate([[1], space.view(np.int8), [1]]).astype(np.int8))
    return np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)


def _chunk_segmentations(material: TrainingText) -> dict[str, Counter]:
    """Chunk -> Counter of its segmentations in the treebank (strings of one code character
    per chunk character)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    text = "\n".join(material.paragraphs)
    separator = np.array([SPACE], dtype=np.int8)
    labels = np.concatenate([part for lab in material.labels for part in (lab, separator)][:-1])
    # one character per code, so a chunk's segmentation is a string slice
    codes = _SEGMENTATION_CODE[labels.astype(np.int64)].tobytes().decode("latin-1")
    space = np.array([c.isspace() for c in text], dtype=bool)
    for a, b in zip(*(x.tolist() for x in _chunk_bounds(space))):
        counts[text[a:b]][codes[a:b]] += 1
    return counts


def learn_lexicon(material: TrainingText, min_share: float = 0.6) -> dict[str, bytes]:
    """Chunk -> its most frequent segmentation in the treebank, for the chunks whose
    segmentation is not a plain single word of letters (which the model never misses) and
    whose most frequent segmentation has at least min_share of their occurrences.

    The model learns conventions; the lexicon remembers the treebank's exceptions to them
    ("Inc." and "e-mail" whole, "F-16" split), which a small model only half learns.
    """
    lexicon = {}
    for chunk, found in _chunk_segmentations(material).items():
        code, n = found.most_common(1)[0]
        code = code.encode("latin-1")
        if code[-1] == 0 or n < min_share * sum(found.values()):
            continue  # a token across a space, or no clear convention
        if chunk.isalpha() and code == bytes(len(chunk) - 1) + b"\x01":
            continue
        lexicon[chunk] = code
    return lexicon


_is_not_none = functools.partial(operator.is_not, None)


def _apply_lexicon(text, labels, space, lexicon, shapes=None, letter_shapes=None,
                   prefix_shapes=None, suffix_shapes=None):
    """Give the chunks of the lexicon their treebank segmentation, in place, and the other
    chunks of a shape in `letter_shapes` (learn_shapes(letters=True): "650k" -> "9k"),
    else in `prefix_shapes` (learn_shapes(letters="first"): "anti-a"), else in
    `suffix_shapes` (learn_shapes(letters="last"): "a/c"), else in `shapes`
    (learn_shapes), their shape's token ends, a token end
    staying a multiword token's where the model says so; a sentence the model ends inside
    such a chunk ends with the chunk.  Returns the positions whose token end (multiword
    or not) the lexicon decided (None: none)."""
    tiers = [(tier, letters) for tier, letters in (
        (letter_shapes, True), (prefix_shapes, "first"), (suffix_shapes, "last"),
        (shapes, False)) if tier]
    if not lexicon and not tiers:
        return None
    begin, end = _chunk_bounds(space)
    get = _getter(lexicon, len(begin))
    # most chunks are plain words the lexicon does not hold: each is looked up (map: in C)
    # and checked for letters (in C) without a Python loop around it; only the few that
    # are neither known nor all letters go through Python, to the shapes
    chunks = _token_texts(text, begin, end)
    found = list(map(get, chunks))
    known = np.fromiter(map(_is_not_none, found), dtype=bool, count=len(found))
    if tiers:  # the chunks it does not know that are not all letters, the finest shapes first
        letters = np.fromiter(map(str.isalpha, chunks), dtype=bool, count=len(chunks))
        for k in np.flatnonzero(~(known | letters)).tolist():
            code = None
            for tier, kind in tiers:
                code = _shape_code(chunks[k], tier, kind)
                if code is not None:
                    break
            if code is not None:
                found[k] = code
                known[k] = True
    hit = np.flatnonzero(known)
    if not len(hit):
        return None
    codes = list(map(found.__getitem__, hit.tolist()))
    lengths = np.fromiter(map(len, codes), dtype=np.int64, count=len(codes))
    first = np.cumsum(lengths) - lengths
    positions = np.repeat(begin[hit] - first, lengths) + np.arange(int(lengths.sum()))
    before = labels[positions]
    ends_sentence = np.add.reduceat(_SENTENCE_ENDS[before], first) > 0
    code = np.frombuffer(b"".join(codes), dtype=np.int8)
    labels[positions] = np.where((code == _ENDS_AS_MODEL) & _MULTIWORD[before], MWT,
                                 _CODE_LABEL[code])
    last = positions[first + lengths - 1][ends_sentence]
    labels[last] = _SENTENCE_VERSION[labels[last]]
    return positions[code != _ENDS_AS_MODEL]


# ---------------------------------------------------------------- the shape lexicon

# A chunk's shape: each run of letters "a", each run of digits "9", every other character
# as it is: "...lol" -> "...a", "1,100" -> "9,9", "W.H.S." -> "a.a.a.".  One shape
# character per run, so a shape's segmentation is one code per shape character.
_RUN = re.compile(r"[^\W\d_]+|\d+|.", re.DOTALL)
#: The code of a shape's token end: a token ends, multiword or not as the model says.
_ENDS_AS_MODEL = 3


def _shape(chunk, letters=False):
    """(the chunk's shape, the index of each run's last character in the chunk); with
    letters, each run of letters is itself, lower case ("650K" -> "9k", "4th" -> "9th"):
    a finer shape, for the conventions that depend on the letters (units cut from their
    number, ordinals not); with letters="first", only the first run of letters is itself
    ("anti-Shiite" -> "anti-a", "self-help" -> "self-a"): the prefix decides whether the
    treebank keeps a hyphenated word whole; with letters="last", only the last ("b/c" ->
    "a/c", "semble-t-il" -> "a-a-il")."""
    runs = [m.group() for m in _RUN.finditer(chunk)]
    words = [k for k, run in enumerate(runs) if run[0].isalpha()]
    own = (set(words[:1]) if letters == "first" else set(words[-1:]) if letters == "last"
           else set(words) if letters else set())  # the runs written as themselves
    shape = [(run.lower() if k in own else "a") if run[0].isalpha()
             else "9" if run[0].isdigit() else run for k, run in enumerate(runs)]
    return "".join(shape), list(accumulate(map(len, runs), initial=-1))[1:]


def _shape_code(chunk, shapes, letters=False):
    """The chunk's segmentation by its shape (token ends coded _ENDS_AS_MODEL), or None
    for a shape not in shapes."""
    shape, last = _shape(chunk, letters)
    ends = shapes.get(shape)
    if ends is None or len(ends) != len(last):  # a broken file's entry answers nothing
        return None
    code = bytearray(len(chunk))
    for i, e in zip(last, ends):
        if e:
            code[i] = _ENDS_AS_MODEL
    return bytes(code)


def learn_shapes(material: TrainingText, min_count: int = 5,
                 letters: bool | Literal["first", "last"] = False
                 ) -> dict[str, tuple[bytes, float]]:
    """Shape -> (its most frequent token ends, one byte per run: 1 where a token ends;
    the share of its chunks segmented so) for the shapes of two runs or more seen in at
    least min_count chunks.  A chunk cut inside a run ("don't": "do" "n't") counts against
    its shape's every segmentation.

    The chunk lexicon knows the chunks seen; shapes carry the treebank's conventions to
    chunks never seen ("...lol" cut after the ellipsis, "1,100" and "A.B.C." kept whole),
    which the model alone gets wrong now and then.  With letters, the finer shapes whose
    letters are themselves, of the chunks with both digits and letters, where the letters
    decide the convention ("650k" -> "9k" cut, "4th" -> "9th" whole: _shape); for other
    chunks they would only learn again the words the chunk lexicon knows.  With
    letters="first", the shapes whose first run of letters is itself, of the chunks that
    begin with a word and have two runs more ("anti-a" whole, "self-a" cut in EWT); with
    letters="last", those whose last run of letters is itself, of the chunks of three runs
    or more with a word ("a/c" whole in EWT: "b/c", "w/c").
    """
    counts: dict[str, Counter] = defaultdict(Counter)
    for chunk, found in _chunk_segmentations(material).items():
        if chunk.isalpha():
            continue
        shape, last = _shape(chunk, letters)
        if letters == "first":
            counted = len(last) >= 3 and chunk[0].isalpha()
        elif letters == "last":
            counted = len(last) >= 3 and any(c.isalpha() for c in chunk)
        elif letters:
            counted = len(last) >= 2 and any(c.isdigit() for c in chunk) and any(
                c.isalpha() for c in chunk)
        else:
            counted = len(last) >= 2
        if not counted:
            continue
        for code, n in found.items():
            ends = bytes(code[i] != "\x00" for i in last)
            inside_a_run = sum(c != "\x00" for c in code) != sum(ends)
            counts[shape][None if inside_a_run or not ends[-1] else ends] += n
    shapes = {}
    for shape, found in counts.items():
        total = sum(found.values())
        ends, n = found.most_common(1)[0]
        if ends is not None and total >= min_count:
            shapes[shape] = (ends, n / total)
    return shapes


def _strings_array(strings):
    """Strings without newlines as one uint8 array (UTF-8, newline-separated), as a model
    file stores them."""
    return np.frombuffer("\n".join(strings).encode("utf-8", "surrogatepass"),
                         dtype=np.uint8).copy()


def _strings_from_array(array):
    """_strings_array's strings."""
    text = np.asarray(array, dtype=np.uint8).tobytes().decode("utf-8", "surrogatepass")
    return text.split("\n") if text else []


def _lexicon_arrays(lexicon, name="lexicon", lengths=False):
    """A lexicon of chunks (or shapes) -> codes of their length as two arrays; with
    lengths, codes of any length, with a third array of their lengths (shapes with their
    letters: a code per run, runs of several characters)."""
    chunks = sorted(lexicon)  # the same file from the same model, whatever the hash seed
    arrays = {f"{name}.chunks": _strings_array(chunks),
              f"{name}.codes": np.frombuffer(b"".join(lexicon[c] for c in chunks),
                                             dtype=np.int8).copy()}
    if lengths:
        arrays[f"{name}.lengths"] = np.array([len(lexicon[c]) for c in chunks],
                                             dtype=np.int32)
    return arrays


def _lexicon_from_arrays(arrays, name="lexicon"):
    if f"{name}.chunks" not in arrays:
        return {}
    lengths = arrays.get(f"{name}.lengths")
    return _StoredLexicon(StringIndex(arrays[f"{name}.chunks"]),
                          np.asarray(arrays[f"{name}.codes"], dtype=np.int8).tobytes(), name,
                          None if lengths is None else np.asarray(lengths, dtype=np.int64))


class _StoredMapping(Mapping):
    """A read-only mapping whose keys are a StringIndex of a model file (searched in its
    bytes, _keys) and whose values a subclass takes out of what it stores (_value: one
    key's, _all_values: every key's, for the dict getter() makes; once made, every look-up
    reads it)."""

    _keys: StringIndex
    _values: Optional[dict] = None  # getter()'s

    def _value(self, key, found):
        raise NotImplementedError

    def _all_values(self, keys: list[str]) -> list:
        """The value of each of the stored keys, in their stored order."""
        raise NotImplementedError

    def getter(self, lookups: int) -> Callable:
        """A get(key, default) for about `lookups` look-ups to come.  Past the StringIndex's
        SCANS, a dict's get, the dict of every key's value made on that first call and then
        kept (a look-up is then one call into C instead of three in Python); a few
        look-ups (one sentence to tag) keep get(), which needs no dict."""
        values = self._values
        if values is None:
            if lookups <= self._keys.SCANS:
                return self.get
            # every value at once (a locate() per key took 22 ms for the bundled model's
            # 16,000 casing forms, each command that decodes raw text paid it 3 times);
            # of equal keys the last one's, as locate() and the StringIndex's dict have it
            keys = self._keys.strings()
            values = self._values = dict(zip(keys, self._all_values(keys)))
        return values.get

    def get(self, key, default=None):
        if self._values is not None:
            return self._values.get(key, default)
        found = self._keys.locate(key)
        return default if found is None else self._value(key, found)

    def __getitem__(self, key):
        if self._values is not None:
            return self._values[key]
        found = self._keys.locate(key)
        if found is None:
            raise KeyError(key)
        return self._value(key, found)

    def __contains__(self, key):
        if self._values is not None:
            return key in self._values
        return self._keys.locate(key) is not None

    def __iter__(self):
        return iter(self._keys.strings())

    def __len__(self):
        return self._keys.size


def _getter(mapping: Mapping, lookups: int) -> Callable:
    """mapping's get, for about `lookups` look-ups to come (_StoredMapping.getter: a dict's
    get past a few)."""
    return mapping.getter(lookups) if isinstance(mapping, _StoredMapping) else mapping.get


class _StoredLexicon(_StoredMapping):
    """A lexicon of chunks (or shapes) -> codes as a model file holds it: the chunks'
    StringIndex and their codes laid end to end, a chunk's taken out when it is looked
    up.  A chunk's codes are as long as the chunk, or as `lengths` says (shapes with their
    letters: a code per run of characters)."""

    def __init__(self, chunks: StringIndex, codes: bytes, name="lexicon",
                 lengths: Optional[np.ndarray] = None):
        if lengths is None:
            fits = chunks.chars == len(codes)
        else:
            fits = (lengths.shape == (chunks.size,) and int(lengths.sum()) == len(codes)
                    and not (lengths < 0).any())
        if not fits:
            raise ModelError(f"front end {name} is broken: chunks and codes do not match")
        if codes and np.frombuffer(codes, dtype=np.uint8).max() >= len(_CODE_LABEL):
            raise ModelError(f"front end {name} is broken: its codes are not all from 0 to "
                             f"{len(_CODE_LABEL) - 1}")
        self._keys = chunks
        self._codes = codes
        self._lengths = None if lengths is None else lengths.tolist()
        self._starts = (None if lengths is None
                        else (np.cumsum(lengths) - lengths).tolist())

    def _value(self, chunk, found):
        if self._lengths is None:
            return self._codes[found[1]:found[1] + len(chunk)]
        start = self._starts[found[0]]
        return self._codes[start:start + self._lengths[found[0]]]

    def _all_values(self, keys):
        codes = self._codes
        if self._lengths is None:  # as long as its chunk: the chunks' own lengths
            ends = list(accumulate(map(len, keys)))
            return list(map(codes.__getitem__, map(slice, [0] + ends[:-1], ends)))
        return [codes[a:a + n] for a, n in zip(self._starts, self._lengths)]


class _StoredCodes(_StoredMapping):
    """form -> a code 0..255 as a model file holds it (WordBoundaries.casing,
    MultiwordContext.lexicon): the forms' StringIndex and one byte per form."""

    def __init__(self, forms: StringIndex, codes: bytes, what: str):
        if forms.size != len(codes):
            raise ModelError(f"front end {what} is broken")
        self._keys = forms
        self._codes = codes

    def _value(self, form, found):
        return self._codes[found[0]]

    def _all_values(self, keys):
        return list(self._codes)


# ---------------------------------------------------------------- per-form rows of the word models

class _FormRows:
    """Rows of int64 columns per word form for the word-level models, each form's computed
    once and then looked up for many tokens at once: the Python work is one dictionary
    look-up a token.  The index of the forms is shared by the tables of several models
    (the front end's two: one look-up a token for both, and each new form's _form_hashes
    made once; they were two of each, a tenth of decoding EWT train's raw text).  Shared
    by the threads tagging with one model: looked up and grown under runtime.tables_lock.
    Each table covers the forms before its length and is grown to all of them before its
    rows are read, so an interrupted call (Ctrl-C, a fork from another thread) leaves no
    form without its row, only rows to make on the next call.  Starts over past `limit`
    forms (streamed text meets new ones in every batch)."""

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self.ids: dict[str, int] = {}
        self.forms: list[str] = []
        self.hashes = np.zeros((0, 5), dtype=np.int64)  # _form_hashes of the forms
        # model -> (tag, table): the rows of the forms before len(table), made with tag;
        # a model replaced (tuning) takes its table with it
        self.tables: MutableMapping[object, tuple[object, np.ndarray]] = \
            weakref.WeakKeyDictionary()

    def rows(self, tokens: list[str],
             makers: list[tuple[object, object, Callable[[list[str], np.ndarray], np.ndarray]]]
             ) -> list[np.ndarray]:
        """[(len(tokens), width) per maker]: each token's row of each table, makers being
        (key, tag, rows_of): rows_of(forms, their _form_hashes) gives the (k, width) rows
        of the forms the table of `key` (a model, held weakly) has not seen, k >= 0; a
        table made with another tag (a multiword model's expander) is made again."""
        with runtime.tables_lock:
            if len(self.ids) > self.limit:
                # in this order (assignments run left to right): whatever statement an
                # interrupt stops, no id points past the forms, and no table or hash row
                # belongs to a form that is not its own
                self.ids, self.tables, self.hashes, self.forms = \
                    {}, weakref.WeakKeyDictionary(), self.hashes[:0], []
            ids, forms = self.ids, self.forms
            index = np.fromiter(map(ids.get, tokens, repeat(-1)), dtype=np.int64,
                                count=len(tokens))
            missing = np.flatnonzero(index < 0)
            if len(missing):
                unseen = list(map(tokens.__getitem__, missing.tolist()))
                new = list(dict.fromkeys(unseen))
                # forms first: an interrupt between the two leaves forms no id points to
                # (made again if met again), never an id past the forms
                forms.extend(new)
                ids.update(zip(new, range(len(forms) - len(new), len(forms))))
                index[missing] = np.fromiter(map(ids.__getitem__, unseen), dtype=np.int64,
                                             count=len(unseen))
            n = len(forms)
            if len(self.hashes) < n:
                self.hashes = np.concatenate([self.hashes,
                                              _form_hashes(forms[len(self.hashes):n])])
            out = []
            for key, tag, rows_of in makers:
                made_with, table = self.tables.get(key, (None, None))
                if table is None or made_with is not tag:  # new, or made with another tag
                    table = np.asarray(rows_of(forms[:n], self.hashes[:n]), dtype=np.int64)
                    self.tables[key] = (tag, table)
                elif len(table) < n:
                    done = len(table)
                    rows = np.asarray(rows_of(forms[done:n], self.hashes[done:n]),
                                      dtype=np.int64)
                    table = np.concatenate([table, rows])
                    self.tables[key] = (tag, table)
                out.append(table[index])
        return out


def _form_hashes(forms: list[str]) -> np.ndarray:
    """(len(forms), 5) int64: each form's _hash of its lower-case form, the form, its
    _case_shape, the lower-case form's last three and first three characters (in C:
    seqtag._core.form_hashes)."""
    out = np.empty((len(forms), 5), dtype=np.int64)
    _core.form_hashes(forms, out)
    return out


# ---------------------------------------------------------------- sentence boundaries between words

#: Feature hashing of the word-level boundary model: 2^bits weights.
_BOUNDARY_BITS = 16


def _case_shape(token):
    """A token's characters by class, runs collapsed, the first four: "Paris" -> "Xx",
    "NATO-led" -> "X-x", "1,5" -> "9,9"."""
    shape = []
    for c in token:
        k = ("X" if c.isupper() else "x" if c.islower() else "9" if c.isdigit()
             else "a" if c.isalpha() else c)
        if not shape or shape[-1] != k:
            shape.append(k)
    return "".join(shape[:4])


def _count_class(n):
    return 0 if n <= 0 else 1 if n <= 2 else 2 if n <= 9 else 3


def _hash(text):
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


_UTF8 = operator.methodcaller("encode", "utf-8", "surrogatepass")


def _hashes(texts: list[str]) -> np.ndarray:
    """(len(texts),) int64: each text's _hash, in C-level loops."""
    return np.fromiter(map(zlib.crc32, map(_UTF8, texts)), dtype=np.int64, count=len(texts))


def _mixed(sources: dict[str, np.ndarray], features: tuple[tuple[str, ...], ...],
           bits: int) -> np.ndarray:
    """(n, len(features)) int64: column k is feature k's index in [0, 2^bits) for each of
    the n rows, a multiplicative hash of the slot number k + 1 and the values of the
    sources features[k] names (each a column of n int64), wrapping in 64 bits: all of them
    in one call of the compiled core (seqtag._core.mix_columns says how)."""
    names = list(sources)
    where = {name: k for k, name in enumerate(names)}
    width = 1 + max(len(f) for f in features)
    spec = np.full((len(features), width), -1, dtype=np.int64)
    for k, feature in enumerate(features):
        spec[k, 0] = k + 1
        spec[k, 1:1 + len(feature)] = [where[name] for name in feature]
    stacked = np.ascontiguousarray(np.stack([sources[name] for name in names]),
                                   dtype=np.int64)
    out = np.empty((stacked.shape[1], len(features)), dtype=np.int64)
    _core.mix_columns(stacked, spec, bits, out)
    return out


#: WordBoundaries' features, in order (feature k + 1 mixes these sources: the tokens
#: before (`left`) and after (`right`) the boundary, and the ones before and after those)
_BOUNDARY_FEATURES = (
    ("left_low",), ("right_low",), ("right_form",), ("left_shape",), ("right_shape",),
    ("left_shape", "right_shape"), ("before_shape", "left_shape"),
    ("right_shape", "after_shape"),
    ("before_shape", "left_shape", "right_shape", "after_shape"),
    ("left_suffix",), ("right_prefix",), ("left_low", "right_shape"),
    ("left_shape", "right_low"), ("run",), ("run_class", "right_shape"),
    ("right_casing", "right_shape"), ("right_casing", "left_shape"),
    ("right_casing", "run_class"), ("zero",))


class WordBoundaries:
    """Where sentences start between words: a logistic regression over hashed features of
    the tokens around each token boundary, learned from a treebank's sentences.

    The character model sees few characters past a boundary and misses sentences that end
    without punctuation (headings, titles, bylines).  What decides those is the words: a
    capitalised word whose lowercase form the treebank writes in lower case inside
    sentences ("Quinze" after "Paris") starts one, a name ("Lucien" after ";") does not.
    `casing` keeps, for each lowercase form of train, how often it was seen lower case
    inside a sentence, capitalised inside one and sentence-initial (three count classes
    packed in a byte); the other features are the forms, case shapes, affixes of the two
    tokens each side and the tokens since the last sentence-final punctuation mark.
    """

    def __init__(self, weights: np.ndarray, casing: Mapping[str, int]):
        self.weights = weights
        self.casing = casing
        self._rows = _FormRows()  # each form seen: its row of _token_columns

    def _token_columns(self, tokens, casing=None, rows=None):
        """(n, 7) int64: each token's hashes (lowercase form, form, case shape, last three
        and first three lowercase characters), casing code (or casing[i]) and whether it is
        sentence-final punctuation.  A row per form is kept (in `rows`, a _FormRows the
        front end shares between its models, else the model's own) and the tokens looked
        up at once: the Python work is one dictionary look-up a token."""
        columns = (self._rows if rows is None else rows).rows(tokens, [self.row_maker()])[0]
        if casing is not None:
            columns[:, 5] = casing
        return columns

    def row_maker(self):
        """(key, tag, rows_of) of this model's table in a _FormRows."""
        return self, None, self._token_rows

    def _token_rows(self, forms, hashes):
        """_token_columns' rows of forms, each a form: (hashes of its lower-case form, the
        form, its case shape, the last three and first three lower-case characters: hashes,
        their _form_hashes; casing code; sentence-final punctuation or not)."""
        get = _getter(self.casing, len(forms))
        return np.column_stack([
            hashes,
            np.fromiter(map(get, map(str.lower, forms), repeat(0)), dtype=np.int64,
                        count=len(forms)),
            # only sentence-final marks: nothing left once they are stripped (set(f) <=
            # _FINAL, in C)
            np.fromiter(map(operator.not_, map(str.strip, forms, repeat(_FINAL_MARKS))),
                        dtype=np.int64, count=len(forms))])

    def _features(self, columns, first):
        """(n, 19) feature indices of the boundary after each token (tokens of paragraphs
        laid end to end; first[i]: token i opens a paragraph)."""
        n = len(columns)
        index = np.arange(n)
        opens = np.flatnonzero(first)
        start = np.maximum.accumulate(np.where(first, index, 0))
        edge = np.full((1, 7), -1, dtype=np.int64)
        padded = np.concatenate([edge, columns, edge, edge])
        last = np.zeros(n, dtype=bool)
        last[opens[1:] - 1] = True
        last[-1] = True
        right = np.where(last, 0, index + 2)            # rows of padded
        after = np.where(last | np.concatenate([last[1:], [True]]), 0, index + 3)
        before = np.where(first, 0, index)
        left, right_, before_, after_ = padded[index + 1], padded[right], padded[before], \
            padded[after]
        final = np.where(columns[:, 6] == 1, index, -1)
        since = index - np.maximum(np.maximum.accumulate(final), start - 1)
        run = np.where(since < 10, since, np.minimum(10 + (since - 10) // 5 * 5, 40))
        run_class = np.minimum(since, 30) // 5
        low, form, shape, suffix, prefix, casing = range(6)
        return _mixed({
            "left_low": left[:, low], "right_low": right_[:, low],
            "right_form": right_[:, form], "left_shape": left[:, shape],
            "right_shape": right_[:, shape], "before_shape": before_[:, shape],
            "after_shape": after_[:, shape], "left_suffix": left[:, suffix],
            "right_prefix": right_[:, prefix], "run": run, "run_class": run_class,
            "right_casing": right_[:, casing], "zero": np.zeros(n, dtype=np.int64)},
            _BOUNDARY_FEATURES, _BOUNDARY_BITS)

    def scores(self, tokens: list[str], first: Optional[np.ndarray] = None,
               columns: Optional[np.ndarray] = None) -> np.ndarray:
        """(len(tokens),) log-odds that a sentence ends after each token (tokens of
        paragraphs laid end to end, first[i] where token i opens one: one paragraph when
        None); a paragraph's last token gets a score too, which means nothing.  columns:
        the tokens' _token_columns where the caller has them."""
        if not tokens:
            return np.zeros(0)
        if first is None:
            first = np.zeros(len(tokens), dtype=bool)
            first[0] = True
        if columns is None:
            columns = self._token_columns(tokens)
        rows = self._features(columns, first)
        return self.weights[rows].sum(axis=1, dtype=np.float64)

    @classmethod
    def learn(cls, material: TrainingText, l2: float = 1e-4, steps: int = 300
              ) -> "WordBoundaries":
        """From the gold tokens and sentences of a treebank's paragraphs (full-batch Adam
        on the L2-regularised log-loss)."""
        tokens, ends, first, _ = _gold_paragraph_tokens(material)
        model = cls(np.zeros(1 << _BOUNDARY_BITS), {})
        if len(tokens) < 2:
            return model
        initial = first | np.concatenate([[True], ends[:-1]])
        capital = np.array([t[:1].isupper() for t in tokens])
        lower = np.array([t[:1].islower() for t in tokens])
        forms = [t.lower() for t in tokens]
        counts = {kind: Counter(f for f, k in zip(forms, where) if k) for kind, where in
                  (("low", ~initial & lower), ("cap", ~initial & capital),
                   ("initial", initial))}

        def casing(form, minus_initial=0):
            return (_count_class(counts["low"][form]) * 16
                    + _count_class(counts["cap"][form]) * 4
                    + _count_class(counts["initial"][form] - minus_initial))

        model.casing = {f: c for f in set(forms) if (c := casing(f))}
        # the casing of the token after each boundary, its own sentence start left out
        own = np.concatenate([[0], (ends[:-1] & ~first[1:]).astype(np.int64)])
        codes = np.array([casing(f, k) for f, k in zip(forms, own.tolist())])
        rows = model._features(model._token_columns(tokens, codes), first)
        inner = np.concatenate([~first[1:], [False]])  # the boundary is inside a paragraph
        model.weights = _logistic_regression(rows[inner], ends[inner].astype(float),
                                             1 << _BOUNDARY_BITS, l2, steps)
        model._rows = _FormRows()  # the forms of train need not be kept
        return model

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return _hashed_model_arrays(prefix, self.weights, "casing", self.casing)

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str) -> Optional["WordBoundaries"]:
        stored = _hashed_model_from_arrays(arrays, prefix, "casing", "word boundary model")
        return None if stored is None else cls(*stored)


def _hashed_model_arrays(prefix, weights, name, codes):
    """The arrays of a model of hashed features: its weights and a byte per form
    (codes: form -> 0..255) under prefix + name."""
    forms = sorted(codes)  # the same file from the same model, whatever the hash seed
    return {prefix + "weight": weights.astype(np.float32),
            f"{prefix}{name}.forms": _strings_array(forms),
            f"{prefix}{name}.codes": np.array([codes[f] for f in forms], dtype=np.uint8)}


def _hashed_model_from_arrays(arrays, prefix, name, what):
    """(weights, {form: code}) as _hashed_model_arrays stored them (the forms searched in
    the stored bytes, _StoredCodes), None where the file has no such model; ModelError
    (naming `what`) where they do not fit together."""
    if prefix + "weight" not in arrays:
        return None
    codes = np.asarray(arrays[f"{prefix}{name}.codes"])
    weights = np.asarray(arrays[prefix + "weight"], dtype=np.float32)
    if codes.ndim != 1 or len(weights) != 1 << _BOUNDARY_BITS:
        raise ModelError(f"front end {what} is broken")
    return weights, _StoredCodes(StringIndex(arrays[f"{prefix}{name}.forms"]),
                                 codes.astype(np.uint8).tobytes(), what)


def _gold_paragraph_tokens(material):
    """The gold tokens of every paragraph laid end to end, whether a sentence ends with
    each, whether each opens a paragraph, whether each is a multiword token."""
    tokens, ends, first, multiword = [], [], [], []
    for text, labels in zip(material.paragraphs, material.labels):
        space = np.array([c.isspace() for c in text], dtype=bool)
        starts, stops, sentence_end, flags = _spans(labels.astype(np.int64), space)
        tokens += [text[a:b] for a, b in zip(starts.tolist(), stops.tolist())]
        ends.append(sentence_end)
        first.append(np.arange(len(starts)) == 0)
        multiword.append(flags)
    empty = np.zeros(0, dtype=bool)
    return (tokens, np.concatenate(ends) if ends else empty,
            np.concatenate(first) if first else empty,
            np.concatenate(multiword) if multiword else empty)


# ---------------------------------------------------------------- headings


#: learn_headings: the most tokens of a heading, how many times it must be a sentence by
#: itself in train, and the least share of its occurrences there that are.
_HEADING_TOKENS = 3
_HEADING_COUNT = 2
_HEADING_SHARE = 0.75


def learn_headings(material: TrainingText) -> frozenset[tuple[str, ...]]:
    """The headings of a treebank: runs of 1 to _HEADING_TOKENS tokens, each with a
    letter, the first capitalised, that make a whole sentence at least _HEADING_COUNT
    times in train and in at least _HEADING_SHARE of their occurrences there (Sequoia's
    Wikipedia `Références` and `Voir aussi`, its leaflets' `Surdosage`).  Raw text runs a
    heading into the next sentence with one space and no mark; neither the character
    model nor the word model sees the end (the forms are rare), the treebank does."""
    tokens, ends, first, _ = _gold_paragraph_tokens(material)
    if not tokens:
        return frozenset()
    opens = np.flatnonzero(first | np.concatenate([[True], ends[:-1]])).tolist()
    stops = (np.flatnonzero(ends) + 1).tolist()
    whole: Counter = Counter()
    for a, b in zip(opens, stops):
        run = tuple(tokens[a:b])
        if len(run) <= _HEADING_TOKENS and run[0][:1].isupper() and all(
                any(c.isalpha() for c in t) for t in run):
            whole[run] += 1
    heads = {run[0] for run in whole}
    paragraph = np.cumsum(first).tolist()
    seen: Counter = Counter()
    for i in (i for i, t in enumerate(tokens) if t in heads):
        for n in range(1, min(_HEADING_TOKENS, len(tokens) - i) + 1):
            run = tuple(tokens[i:i + n])
            if run in whole and paragraph[i + n - 1] == paragraph[i]:
                seen[run] += 1
    return frozenset(run for run, n in whole.items()
                     if n >= _HEADING_COUNT and n >= _HEADING_SHARE * seen[run])


def _mark_headings(headings, paragraph, starts, ends, sentence_end, forms):
    """Make each heading found among the tokens (forms; paragraph: each one's paragraph)
    a sentence of its own, in place: a sentence ends before it and after it, none inside
    it.  Only where whitespace (or its paragraph's edge) is on both sides: `Références.`
    is no heading."""
    by_first: dict[str, list[tuple[str, ...]]] = {}
    for heading in sorted(headings, key=lambda h: (-len(h), h)):  # the longest first
        by_first.setdefault(heading[0], []).append(heading)
    n = len(forms)
    past = 0  # the token after the last heading made a sentence: none starts inside one
    for i in [i for i, form in enumerate(forms) if form in by_first]:
        if i < past:
            continue
        for heading in by_first[forms[i]]:
            last = i + len(heading) - 1
            if last >= n or paragraph[last] != paragraph[i] or \
                    tuple(forms[i:last + 1]) != heading:
                continue
            before = i > 0 and paragraph[i - 1] == paragraph[i]
            after = last + 1 < n and paragraph[last + 1] == paragraph[i]
            if (before and starts[i] == ends[i - 1]) or (after and starts[last + 1] == ends[last]):
                break  # glued to a token
            if before:
                sentence_end[i - 1] = True
            sentence_end[i:last] = False
            if after:
                sentence_end[last] = True
            past = last + 1
            break


# ---------------------------------------------------------------- multiword tokens in context

#: Feature hashing of the multiword context model: 2^bits weights (_mixed's range).
_CONTEXT_BITS = _BOUNDARY_BITS


#: MultiwordContext's features, in order (feature k + 1 mixes these sources: the token,
#: the part its split cuts off, the tokens before and after it)
_CONTEXT_FEATURES = (
    ("own_low",), ("suffix",), ("suffix", "head_count", "own_count"),
    ("suffix", "own_shape"), ("suffix", "next_low"), ("own_low", "next_low"),
    ("suffix", "next_tag"), ("own_low", "next_tag"), ("suffix", "next_tag", "next2_tag"),
    ("suffix", "prev_low"), ("own_low", "prev_low"), ("suffix", "prev_tag"),
    ("own_low", "prev_tag"), ("suffix", "prev_tag", "next_tag"), ("suffix", "next_shape"),
    ("suffix", "own_count", "next_tag"), ("suffix", "head_count", "prev_tag"),
    ("suffix", "own_count", "own_shape"), ("head", "suffix"), ("own_low", "next_shape"),
    ("suffix", "next_ending"), ("own_low", "next_ending"), ("zero",))


class MultiwordContext:
    """Whether a token the expander can split is a multiword token, from the words around
    it: a logistic regression over hashed features, learned from a treebank's tokens.

    The character model sees the token's characters and a few around them: it expands
    "dont", but cannot tell "its" the possessive from "its" written for "it's" ("its a
    shame"), nor "cats" the plural from "cats" written for "cat's" ("my cats name"), both
    of which a treebank may write as one token of two words.  The words around tell them
    apart, and more so the tags those words take: `lexicon` keeps, for each lowercase
    one-word token of train, how often it is one (a count class) and its most frequent
    tag (an index into `tags`), packed in one code (class * 64 + 1 + index).  The other
    features are the token's lowercase form and case shape, the part the expander would
    split off, how often the part before it is a word of its own, and the forms, shapes
    and tags of the tokens before and after.
    """

    def __init__(self, weights: np.ndarray, lexicon: Mapping[str, int], tags: list[str]):
        self.weights = weights
        self.lexicon = lexicon
        self.tags = list(tags)
        self._rows = _FormRows()  # each form seen: its row of _columns

    def _columns(self, tokens, expander, rows=None):
        """(n, 8) int64: each token's hashes (lowercase form, case shape, last three
        lowercase characters), its lexicon count class and tag index (0: not in the
        lexicon), and where expander splits it into several words, the hashes of the last
        word's and the first word's lowercase forms and the first word's count class (-1
        where it does not).  A row per form is kept (in `rows`, a _FormRows the front end
        shares between its models, else the model's own; made again for another expander)
        and the tokens looked up at once: the Python work is one dictionary look-up a
        token (command-line speed)."""
        return (self._rows if rows is None else rows).rows(tokens, [self.row_maker(expander)])[0]

    def row_maker(self, expander):
        """(key, tag, rows_of) of this model's table in a _FormRows, made with expander."""
        return self, expander, functools.partial(self._form_rows, expander=expander)

    def _form_rows(self, forms, hashes, expander):
        """_columns' rows of forms, each a form's (hashes of its lower-case form, case
        shape and last three lower-case characters: of hashes, their _form_hashes; lexicon
        count class and tag index, and the split's hashes and count class)."""
        get = _getter(self.lexicon, 2 * len(forms))
        lows = list(map(str.lower, forms))
        codes = np.fromiter(map(get, lows, repeat(0)), dtype=np.int64, count=len(forms))
        split = np.full((len(forms), 3), -1, dtype=np.int64)
        cut, lasts, firsts = [], [], []  # the forms split, their last and first words
        for k in expander.may_split(forms, lows).tolist():
            words = expander.split(forms[k])
            if len(words) >= 2:
                cut.append(k)
                lasts.append(words[-1].lower())
                firsts.append(words[0].lower())
        if cut:
            split[cut, 0] = _hashes(lasts)
            split[cut, 1] = _hashes(firsts)
            split[cut, 2] = np.fromiter(map(get, firsts, repeat(0)), dtype=np.int64,
                                        count=len(cut)) >> 6
        return np.column_stack([hashes[:, [0, 2, 3]], codes >> 6, codes & 63, split])

    def _features(self, columns, first, index, own_class=None):
        """(k, 23) feature indices of the tokens `index` among tokens laid end to end
        (columns: _columns; first[i]: token i opens a paragraph); own_class replaces the
        candidates' own count classes (training leaves each token out of its own count)."""
        n = len(columns)
        edge = np.full((1, 8), -1, dtype=np.int64)
        padded = np.concatenate([edge, columns, edge, edge])  # token i is row i + 1
        last = np.zeros(n, dtype=bool)
        last[np.flatnonzero(first)[1:] - 1] = True
        last[-1] = True
        after_last = np.concatenate([last[1:], [True]]) | last
        before = np.where(first[index], 0, index)
        after = np.where(last[index], 0, index + 2)
        after2 = np.where(after_last[index], 0, index + 3)
        low, shape, ending, count, tag = range(5)
        own = padded[index + 1]
        prev, next_, next2 = padded[before], padded[after], padded[after2]
        own_count = own[:, count] if own_class is None else own_class
        suffix, head, head_count = own[:, 5], own[:, 6], own[:, 7]
        return _mixed({
            "own_low": own[:, low], "suffix": suffix, "head": head,
            "head_count": head_count, "own_count": own_count, "own_shape": own[:, shape],
            "next_low": next_[:, low], "next_tag": next_[:, tag],
            "next_shape": next_[:, shape], "next_ending": next_[:, ending],
            "next2_tag": next2[:, tag], "prev_low": prev[:, low], "prev_tag": prev[:, tag],
            "zero": np.zeros(len(index), dtype=np.int64)}, _CONTEXT_FEATURES, _CONTEXT_BITS)

    def scores(self, tokens: list[str], expander: MultiwordExpander,
               first: Optional[np.ndarray] = None, columns: Optional[np.ndarray] = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(indices of the tokens expander can split, the log-odds that each of them is a
        multiword token) of tokens of paragraphs laid end to end (first[i] where token i
        opens one: one paragraph when None).  columns: the tokens' _columns with that
        expander, where the caller has them."""
        if not tokens:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        if columns is None:
            columns = self._columns(tokens, expander)
        index = np.flatnonzero(columns[:, 7] >= 0)
        if not len(index):
            return index, np.zeros(0)
        if first is None:
            first = np.zeros(len(tokens), dtype=bool)
            first[0] = True
        rows = self._features(columns, first, index)
        return index, self.weights[rows].sum(axis=1, dtype=np.float64)

    @classmethod
    def learn(cls, material: TrainingText, expander: MultiwordExpander, l2: float = 1e-4,
              steps: int = 300) -> "MultiwordContext":
        """From the gold tokens of a treebank's paragraphs, their multiword tokens and the
        tags of its one-word tokens (full-batch Adam on the L2-regularised log-loss)."""
        tags = sorted({t for found in material.tags.values() for t in found})[:63]
        number = {t: k + 1 for k, t in enumerate(tags)}
        lexicon = {}
        for form, n in material.plain.items():
            found = material.tags.get(form)
            tag = number.get(found.most_common(1)[0][0], 0) if found else 0
            lexicon[form] = _count_class(n) * 64 + tag
        model = cls(np.zeros(1 << _CONTEXT_BITS), lexicon, tags)
        tokens, _, first, multiword = _gold_paragraph_tokens(material)
        columns = model._columns(tokens, expander)
        index = np.flatnonzero(columns[:, 7] >= 0)
        if not len(index) or multiword[index].all() or not multiword[index].any():
            return model
        # each token's count as a one-word token leaves the token itself out
        counts = [material.plain[tokens[i].lower()] - (not multiword[i])
                  for i in index.tolist()]
        own = np.array([_count_class(n) for n in counts], dtype=np.int64)
        rows = model._features(columns, first, index, own)
        model.weights = _logistic_regression(rows, multiword[index].astype(float),
                                             1 << _CONTEXT_BITS, l2, steps)
        # the forms of train need not be kept
        model._rows = _FormRows()
        return model

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        arrays = _hashed_model_arrays(prefix, self.weights, "lexicon", self.lexicon)
        arrays[prefix + "tags"] = _strings_array(self.tags)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str) -> Optional["MultiwordContext"]:
        stored = _hashed_model_from_arrays(arrays, prefix, "lexicon",
                                           "multiword context model")
        if stored is None:
            return None
        return cls(*stored, _strings_from_array(arrays[prefix + "tags"]))


def _logistic_regression(rows, gold, size, l2, steps, lr=0.1):
    """Weights (size,) of a logistic regression whose examples are rows of feature
    indices (each feature worth 1), by full-batch Adam."""
    weights, mean, square = np.zeros(size), np.zeros(size), np.zeros(size)
    flat = rows.ravel()
    for t in range(1, steps + 1):
        p = 1.0 / (1.0 + np.exp(-weights[rows].sum(axis=1)))
        grad = np.bincount(flat, np.repeat((p - gold) / len(gold), rows.shape[1]),
                           minlength=size) + l2 * weights
        mean = 0.9 * mean + 0.1 * grad
        square = 0.999 * square + 0.001 * grad * grad
        weights -= lr * (mean / (1 - 0.9 ** t)) / (np.sqrt(square / (1 - 0.999 ** t)) + 1e-8)
    return weights


# ---------------------------------------------------------------- windows


def _windows(lengths, window, margin):
    """Overlapping windows over texts of the given lengths.

    Returns (text, window start, window end, core start, core end) rows: each window sees
    up to `margin` characters of context on each side of its core; the cores tile every
    text exactly once.
    """
    core = window - 2 * margin
    rows = []
    for t, n in enumerate(lengths):
        if n <= window:
            rows.append((t, 0, n, 0, n))
            continue
        for s in range(0, n, core):
            e = min(n, s + core)
            rows.append((t, max(0, s - margin), min(n, e + margin), s, e))
    return rows


def _batched_logits(model, ids, bounds, window, margin, batch_chars=60_000):
    """The scores (len(ids), len(LABELS)) of the characters of the texts ids[a:b] for
    (a, b) in bounds, each text on its own (rows outside them are zero)."""
    out = np.zeros((len(ids), len(LABELS)), dtype=model.dtype)
    rows = [(bounds[t][0] + ws, bounds[t][0] + we, bounds[t][0] + cs, bounds[t][0] + ce)
            for t, ws, we, cs, ce in _windows([b - a for a, b in bounds], window, margin)
            if we > ws]
    k = 0
    while k < len(rows):
        size, j = 0, k
        while j < len(rows) and (size == 0 or size + rows[j][1] - rows[j][0] <= batch_chars):
            size += rows[j][1] - rows[j][0]
            j += 1
        group = rows[k:j]
        k = j
        lengths = np.array([we - ws for ws, we, _, _ in group], dtype=np.int64)
        packing = Packing(lengths)
        window_start = np.array([ws for ws, _, _, _ in group], dtype=np.int64)
        # the text position of each character of the windows laid end to end
        flat_pos = np.arange(int(lengths.sum())) + np.repeat(
            window_start - (np.cumsum(lengths) - lengths), lengths)
        flat_index = packing.flat_index()
        logits = model.logits(ids[flat_pos[flat_index]], packing)
        # only each window's core is kept: the margins are context
        core_start = np.repeat(np.array([cs for _, _, cs, _ in group]), lengths)[flat_index]
        core_end = np.repeat(np.array([ce for _, _, _, ce in group]), lengths)[flat_index]
        pos = flat_pos[flat_index]
        keep = (pos >= core_start) & (pos < core_end)
        out[pos[keep]] = logits[keep]
    return out


# ---------------------------------------------------------------- the front end

#: The recipe's defaults (train_frontend's `options`).  `window` and `margin` are how
#: inference cuts a paragraph (_windows); they are kept with the model so that its output
#: never changes with this table.  Windows of 1,024 characters (320 before 2026-12-04)
#: compute 2.6 % more characters than the text has on EWT train's paragraphs instead of
#: 18.5 % (the margins), and the character model takes 13 % less time.  Not the same
#: output in every case (the context a character sees changes): the bundled model tagged
#: EWT dev and test from raw text identically with either, a Sequoia model Sequoia's three
#: parts, and EWT train with one sentence boundary moved, to the same scores
#: (BENCHMARKS.md, 2026-12-04, session 19).
DEFAULTS = {"dim": 24, "hidden": 48, "cell": "gru", "crop": 256, "batch": 32,
            "lr": 8e-3, "char_dropout": 0.02, "min_char_count": 2, "epochs": 16,
            "min_chars": 16_000_000, "sentence_weight": 1.0,
            "window": 1024, "margin": 32}
_FORMAT = 1
#: The most passes over its characters a front end is trained for (train_frontend).
_MAX_PASSES = 200


def _checked_options(options: dict) -> dict:
    """DEFAULTS with `options` in their place; SeqtagError for an unknown name, a value of
    another type than its default's (an int for a float is fine) or a window and margin
    that do not fit."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise SeqtagError(f"unknown front end option(s): {', '.join(unknown)}")
    checked = {}
    for name, value in options.items():
        kind = type(DEFAULTS[name])
        if kind is str:
            fits = isinstance(value, str)
        else:  # numpy's numbers too; a whole float for an int (models saved 3.0 epochs)
            fits = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                    and math.isfinite(value) and (kind is float or float(value).is_integer()))
        if not fits:
            what = {int: "an integer", float: "a number", str: "a string"}[kind]
            raise SeqtagError(f"front end option {name} must be {what}, got {value!r}")
        checked[name] = kind(value)
    opts = dict(DEFAULTS, **checked)
    if not 0 <= opts["margin"] < opts["window"] / 2:
        raise SeqtagError(f"front end option window must be more than twice margin (>= 0), "
                          f"got window={opts['window']}, margin={opts['margin']}")
    return opts


#: The front end's tiers of chunk shapes (learn_shapes: plain, with their letters, with
#: their first word, with their last), in the order they are chosen on dev and saved.
_SHAPE_TIERS = ("shapes", "letter_shapes", "prefix_shapes", "suffix_shapes")
_WORDS_PREFIX = "words."
_CONTEXT_PREFIX = "multiword_context."


class _Scored:
    """Paragraphs joined by newlines with the model's scores of every character."""

    __slots__ = ("text", "bounds", "begin", "lengths", "cps", "ids", "logits")

    def __init__(self, text: str, bounds: list[tuple[int, int]], begin: np.ndarray,
                 lengths: np.ndarray, cps: np.ndarray, ids: np.ndarray, logits: np.ndarray):
        self.text, self.bounds, self.begin, self.lengths = text, bounds, begin, lengths
        self.cps, self.ids, self.logits = cps, ids, logits


class _LaterSegments:
    """LearnedFrontEnd.segment_many_later's function: the scores computed on the second
    thread, decoded when it is called."""

    def __init__(self, front_end: "LearnedFrontEnd", job: runtime.Job):
        self._front_end: Optional[LearnedFrontEnd] = front_end
        self._job: Optional[runtime.Job] = job

    def __call__(self) -> list[list[RawSentence]]:
        front_end, job = self._front_end, self._job
        if front_end is None or job is None:
            raise RuntimeError("these paragraphs were segmented or cancelled already")
        self._front_end = self._job = None  # the scores are not kept past their use
        return front_end._sentences(job.result())

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
        self._front_end = self._job = None


class LearnedFrontEnd:
    """The character tagger, its character ids and the multiword expander (FrontEnd)."""

    kind = "learned"

    def __init__(self, codes: CharCodes, model: CharTagger, expander: MultiwordExpander,
                 options: dict, sentence_bias: float = 0.0,
                 lexicon: Optional[dict[str, bytes]] = None):
        self.codes = codes
        self.model = model
        self.expander = expander
        self.options = dict(options)
        self.sentence_bias = float(sentence_bias)
        self.multiword_bias = 0.0
        self.lexicon = lexicon or {}
        self.use_lexicon = True
        # no token ends inside a run of one repeated punctuation mark or symbol (chosen on
        # dev where the treebank keeps them whole: learn_repeated_symbols)
        self.repeats_whole = False
        self.shapes: Mapping[str, bytes] = {}  # shape -> token ends (learn_shapes)
        # the same for shapes with their letters (learn_shapes(letters=True)), tried first
        self.letter_shapes: Mapping[str, bytes] = {}
        # then the shapes whose first word is itself (learn_shapes(letters="first")), then
        # those whose last word is (letters="last")
        self.prefix_shapes: Mapping[str, bytes] = {}
        self.suffix_shapes: Mapping[str, bytes] = {}
        # a sentence ends after a token followed by whitespace where the character model's
        # log-odds + word_weight * the word model's + word_bias > 0 (both tuned on dev)
        self.words: Optional[WordBoundaries] = None
        self.word_weight = 0.0
        self.word_bias = 0.0
        self._word_scores: Optional[list] = None  # _tune_word_weight's cache
        # a token the expander can split is a multiword token where the character model's
        # multiword log-odds (with its bias) + context_weight * the context model's +
        # context_bias > 0 (both tuned on dev); tokens the chunk lexicon decides aside
        self.context: Optional[MultiwordContext] = None
        self.context_weight = 0.0
        self.context_bias = 0.0
        self._context_scores: Optional[list] = None  # _tune_context_weight's cache
        # runs of tokens made sentences of their own (learn_headings; chosen on dev)
        self.headings: frozenset[tuple[str, ...]] = frozenset()
        # train_frontend's count of training sentences whose `# text` did not match their
        # tokens, their text rebuilt from them (TrainingText.rebuilt; not saved)
        self.rebuilt = 0
        # both word-level models' rows of each form seen, under one index of the forms
        self._form_rows = _FormRows()

    # ---- FrontEnd

    def segment(self, paragraph: str) -> list[RawSentence]:
        return self.segment_many([paragraph])[0]

    def segment_many(self, paragraphs: list[str]) -> list[list[RawSentence]]:
        return self._sentences(self._score(paragraphs))

    def _sentences(self, scored):
        """The sentences of each paragraph from _score()'s result."""
        text, bounds, spans, forms = self._decode_with_forms(scored)
        return _paragraph_sentences(text, bounds, spans, self.expander, forms, scored.cps)

    def segment_many_later(self, paragraphs: list[str]
                           ) -> Callable[[], list[list[RawSentence]]]:
        """A function giving segment_many(paragraphs): where the model has two threads,
        the characters' scores (the character model, without the GIL) are computed on the
        second thread from now until the function is called, when the rest (mostly
        Python) runs; its cancel() drops them if they have not started.  A caller tagging
        one batch of paragraphs meanwhile keeps both cores busy (seqtag.rawtext.segment)."""
        if runtime.threads_beside_blas(self.model.rnn.threads) < 2:
            return functools.partial(self.segment_many, paragraphs)
        return _LaterSegments(self, runtime.run_beside(self._score, paragraphs))

    def _analyse(self, paragraphs):
        """All paragraphs at once: (their text joined by newlines, (start, end) of each in
        it, the token spans of the whole text as _spans gives them)."""
        return self._decode(self._score(paragraphs))

    def _score(self, paragraphs):
        """The model's scores of every character of the paragraphs joined by newlines."""
        for p in paragraphs:
            if not isinstance(p, str):
                raise SeqtagError(f"a paragraph must be a string, got {type(p).__name__}")
        text = "\n".join(paragraphs)
        lengths = np.array([len(p) for p in paragraphs], dtype=np.int64)
        begin = np.cumsum(lengths + 1) - lengths - 1
        bounds = list(zip(begin.tolist(), (begin + lengths).tolist()))
        cps = _code_points(text)
        ids = self.codes.encode_code_points(cps)
        logits = _batched_logits(self.model, ids, bounds, self.options["window"],
                                 self.options["margin"])
        return _Scored(text, bounds, begin, lengths, cps, ids, logits)

    def _decode(self, scored):
        """(the text, each paragraph's (start, end) in it, the spans of its tokens: (starts,
        ends, sentence_end, multiword) arrays)."""
        return self._decode_with_forms(scored)[:3]

    def _decode_with_forms(self, scored):
        """_decode()'s result and the tokens' text, where the word-level models needed it
        (else None)."""
        text, begin, lengths, ids = scored.text, scored.begin, scored.lengths, scored.ids
        space = ids == 0
        classes = self.codes.class_of_id[ids]
        glued = _glued(scored.cps, classes)
        if self.repeats_whole:
            glued |= _repeated_symbols(scored.cps, classes)
        labels = _choose_labels(scored.logits, ids, glued,
                                self.sentence_bias, self.multiword_bias)
        fixed = _apply_lexicon(text, labels, space,
                               self.lexicon if self.use_lexicon else {}, self.shapes,
                               self.letter_shapes, self.prefix_shapes, self.suffix_shapes)
        labels[begin[:-1] + lengths[:-1]] = SPACE  # the separators are no token's
        starts, ends, sentence_end, multiword = _spans(labels, space) if len(text) else (
            np.zeros(0, dtype=np.int64),) * 2 + (np.zeros(0, dtype=bool),) * 2
        # a paragraph's last token ends a sentence
        if len(ends):
            last = np.searchsorted(ends, begin + lengths, side="right") - 1
            ok = last >= 0
            ok[ok] = starts[last[ok]] >= begin[ok]
            sentence_end[last[ok]] = True
        marks, runs = _mark_runs(starts, ends, classes)
        _ends_past_closing_marks(starts, ends, sentence_end, marks, runs)
        between_words = self.words is not None and self.word_weight
        in_context = self.context is not None and self.context_weight and len(ends)
        # the tokens' text, sliced once for both word-level models
        forms = _token_texts(text, starts, ends) if (
            between_words or in_context or self.headings) else []
        columns = self._word_columns(forms, between_words, in_context)
        if between_words:
            self._decide_between_words(scored, (starts, ends, sentence_end), runs, forms,
                                       columns)
        if self.headings and len(ends):
            _mark_headings(self.headings,
                           np.searchsorted(scored.begin, starts, side="right") - 1,
                           starts, ends, sentence_end, forms)
        decided = np.zeros(len(ends), dtype=bool)
        if in_context:
            decided = self._decide_multiword(scored, (starts, ends, multiword), fixed, forms,
                                             columns)
        # a flagged token the expander keeps as one word is no multiword token
        flagged = np.flatnonzero(multiword & ~decided)
        multiword[flagged] = [len(self.expander.expand(text[a:b])) > 1 for a, b in
                              zip(starts[flagged].tolist(), ends[flagged].tolist())]
        return (text, scored.bounds, (starts, ends, sentence_end, multiword),
                forms if len(forms) == len(starts) else None)

    def _word_columns(self, forms, between_words, in_context):
        """A function giving the tokens' columns of a word-level model ("words" or
        "context"), both models' made on the first call, in one look-up of the forms (the
        scores' caches may need neither)."""
        made: dict[str, np.ndarray] = {}

        def columns(which):
            if not made:
                models = (["words"] if between_words else []) + (
                    ["context"] if in_context else [])
                makers = [self.words.row_maker() if m == "words"
                          else self.context.row_maker(self.expander) for m in models]
                made.update(zip(models, self._form_rows.rows(forms, makers)))
            return made[which]
        return columns

    def _decide_multiword(self, scored, spans, fixed, forms, columns):
        """Decide again, in place, whether each token the expander can split is a
        multiword token, the context model's log-odds weighed in; the tokens whose end
        the chunk lexicon decided keep its decision.  Returns which tokens were decided."""
        starts, ends, multiword = spans
        paragraph = np.searchsorted(scored.begin, starts, side="right") - 1
        first = np.concatenate([[True], paragraph[1:] != paragraph[:-1]])
        index, context = self._scores_in_context(scored, starts, ends, first, forms, columns)
        if fixed is not None and len(fixed) and len(index):
            keep = ~np.isin(ends[index] - 1, fixed)
            index, context = index[keep], context[keep]
        decided = np.zeros(len(ends), dtype=bool)
        if not len(index):
            return decided
        scores = scored.logits[ends[index] - 1]
        char_odds = (np.maximum(scores[:, MWT], scores[:, MWT_SENT]) + self.multiword_bias
                     - np.maximum(scores[:, END], scores[:, SENT]))
        multiword[index] = char_odds + self.context_weight * context + self.context_bias > 0
        decided[index] = True
        return decided

    def _scores_in_context(self, scored, starts, ends, first, forms, columns):
        """The context model's (token indices, log-odds) of the tokens the expander can
        split; kept while _tune_context_weight decodes dev again and again (keyed by the
        objects, as _scores_between_words)."""
        cache = self._context_scores
        spans = starts.tobytes() + ends.tobytes()
        if (cache and cache[0] is scored and cache[1] is self.context
                and cache[2] is self.expander and cache[3] == spans):
            return cache[4]
        result = self.context.scores(forms, self.expander, first, columns("context"))
        if cache is not None:
            cache[:] = [scored, self.context, self.expander, spans, result]
        return result

    def _decide_between_words(self, scored, spans, runs, forms, columns):
        """Decide again, in place, whether a sentence ends after each token followed by
        whitespace inside a paragraph: the character model's log-odds (with its bias) plus
        word_weight times the word model's, plus word_bias.  The character model's are the
        highest of the token's run of marks (runs: _mark_runs): `."` ends a sentence as
        much as its `.` does, whether the end was moved there (_ends_past_closing_marks)
        or the chunk's segmentation is known (_apply_lexicon)."""
        starts, ends, sentence_end = spans
        if len(ends) < 2:
            return
        logits = scored.logits
        paragraph = np.searchsorted(scored.begin, starts, side="right") - 1
        first = np.concatenate([[True], paragraph[1:] != paragraph[:-1]])
        word_scores = self._scores_between_words(scored, starts, ends, first, forms, columns)
        inner = np.concatenate([~first[1:], [False]])  # not a paragraph's last token
        inner[inner] = scored.ids[ends[inner]] == 0  # whitespace follows
        scores = logits[ends - 1]
        char_odds = (np.maximum(scores[:, SENT], scores[:, MWT_SENT]) + self.sentence_bias
                     - np.max(scores[:, [INSIDE, END, MWT]], axis=1))
        opens_run = runs == np.arange(len(runs))
        run_odds = np.maximum.reduceat(char_odds, np.flatnonzero(opens_run))
        char_odds = run_odds[np.cumsum(opens_run) - 1][inner]  # a run's last token's
        sentence_end[inner] = (char_odds + self.word_weight * word_scores[inner]
                               + self.word_bias > 0)

    def _scores_between_words(self, scored, starts, ends, first, forms, columns):
        """The word model's log-odds that a sentence ends after each token.  While
        _tune_word_weight decodes dev again and again, the same tokens' scores are kept:
        the objects themselves are the key, not their ids (an id is reused once its object
        is freed)."""
        cache = self._word_scores
        spans = starts.tobytes() + ends.tobytes()
        if cache and cache[0] is scored and cache[1] is self.words and cache[2] == spans:
            return cache[3]
        scores = self.words.scores(forms, first, columns("words"))
        if cache is not None:
            cache[:] = [scored, self.words, spans, scores]
        return scores

    # ---- saving

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays by name, JSON-able metadata): all a model file needs to rebuild it."""
        arrays = {name: np.array(a) for name, a in self.model.arrays().items()}
        arrays.update(_lexicon_arrays(self.lexicon))
        for name in _SHAPE_TIERS:  # the plain shapes' files kept as they were, no lengths
            if getattr(self, name):
                arrays.update(_lexicon_arrays(getattr(self, name), name,
                                              lengths=name != "shapes"))
        if self.words is not None:
            arrays.update(self.words.to_arrays(_WORDS_PREFIX))
        if self.context is not None:
            arrays.update(self.context.to_arrays(_CONTEXT_PREFIX))
        if self.headings:  # a heading's tokens joined by tabs, which no token holds
            arrays["headings"] = _strings_array(sorted("\t".join(h) for h in self.headings))
        meta = {"format": _FORMAT, "kind": self.kind, "chars": self.codes.chars,
                "cell": self.model.rnn.cell, "dim": int(self.model.embedding.shape[1]),
                "hidden": self.model.rnn.hidden_size, "options": self.options,
                "sentence_bias": self.sentence_bias, "multiword_bias": self.multiword_bias,
                "use_lexicon": self.use_lexicon, "repeats_whole": self.repeats_whole,
                "word_weight": self.word_weight,
                "word_bias": self.word_bias, "context_weight": self.context_weight,
                "context_bias": self.context_bias,
                "multiword": self.expander.to_meta()}
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict) -> "LearnedFrontEnd":
        """The front end to_arrays() described; ModelError if they do not fit together."""
        try:
            if meta.get("format") != _FORMAT:
                raise ModelError(f"front end format {meta.get('format')!r} is not supported "
                                 f"(this seqtag reads format {_FORMAT})")
            codes = CharCodes(str(meta["chars"]))
            model = CharTagger(codes.size, int(meta["dim"]), int(meta["hidden"]),
                               str(meta["cell"]), init=False)
            expected = model.expected_shapes()
            missing = sorted(set(expected) - set(arrays))
            if missing:
                raise ModelError(f"front end arrays missing: {', '.join(missing)}")
            for name, shape in expected.items():
                if tuple(np.shape(arrays[name])) != tuple(shape):
                    raise ModelError(f"front end array {name} has shape "
                                     f"{tuple(np.shape(arrays[name]))}, expected {tuple(shape)}")
            model.load_arrays({name: arrays[name] for name in expected})
            try:
                options = _checked_options(meta.get("options", {}))
            except SeqtagError as e:
                raise ModelError(f"front end metadata is broken: {e}") from None
            front_end = cls(codes, model, MultiwordExpander.from_meta(meta["multiword"]),
                            options, float(meta.get("sentence_bias", 0.0)),
                            _lexicon_from_arrays(arrays))
            front_end.use_lexicon = bool(meta.get("use_lexicon", True))
            front_end.repeats_whole = bool(meta.get("repeats_whole", False))
            front_end.multiword_bias = float(meta.get("multiword_bias", 0.0))
            for name in _SHAPE_TIERS:
                setattr(front_end, name, _lexicon_from_arrays(arrays, name))
            front_end.words = WordBoundaries.from_arrays(arrays, _WORDS_PREFIX)
            front_end.word_weight = float(meta.get("word_weight", 0.0))
            front_end.word_bias = float(meta.get("word_bias", 0.0))
            # files made before the context model: none, and no weight
            front_end.context = MultiwordContext.from_arrays(arrays, _CONTEXT_PREFIX)
            front_end.context_weight = float(meta.get("context_weight", 0.0))
            front_end.context_bias = float(meta.get("context_bias", 0.0))
            # files made before headings: none
            front_end.headings = frozenset(
                tuple(h.split("\t")) for h in _strings_from_array(arrays["headings"])
            ) if "headings" in arrays else frozenset()
            if any("" in h for h in front_end.headings):
                raise ModelError("front end headings are broken")
            return front_end
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"front end metadata is broken ({type(e).__name__}: {e})") from None

    def set_threads(self, threads: int) -> None:
        self.model.rnn.threads = threads


# ---------------------------------------------------------------- scoring spans


def _span_sets(spans):
    """Token spans, sentence spans and multiword tokens as int64 keys (start * 2^32 + end)."""
    starts, ends, sentence_end, multiword = spans
    keys = starts * (1 << 32) + ends
    last = np.flatnonzero(sentence_end)
    first = np.concatenate([[0], last[:-1] + 1]).astype(np.int64)
    return keys, starts[first] * (1 << 32) + ends[last], keys[multiword]


def _f1(gold, system):
    if not len(gold) and not len(system):
        return 1.0
    hit = len(np.intersect1d(gold, system))
    return 2.0 * hit / (len(gold) + len(system))


class _DevSet:
    """Dev paragraphs with their gold spans, for model selection and tuning."""

    def __init__(self, material: TrainingText):
        self.paragraphs = material.paragraphs
        text = "\n".join(self.paragraphs)
        parts = []
        for k, labels in enumerate(material.labels):
            parts += [labels, np.array([SPACE], dtype=np.int8)] if k + 1 < len(
                material.labels) else [labels]
        labels = np.concatenate(parts).astype(np.int64)
        space = np.array([c.isspace() for c in text], dtype=bool)
        self.tokens, self.sentences, self.multiword = _span_sets(_spans(labels, space))

    def score(self, front_end: LearnedFrontEnd, scored: Optional[_Scored] = None) -> dict:
        """Token, sentence and multiword-token F1 of front_end on dev (scored: the model's
        scores of the dev paragraphs, when they are known already)."""
        if scored is None:
            scored = front_end._score(self.paragraphs)
        tokens, sentences, multiword = _span_sets(front_end._decode(scored)[2])
        return {"tokens": _f1(self.tokens, tokens), "sentences": _f1(self.sentences, sentences),
                "multiword": _f1(self.multiword, multiword)}


def dev_scores(front_end: LearnedFrontEnd, path: str | os.PathLike[str]) -> dict[str, float]:
    """Token, sentence and multiword-token F1 (0..1) of a learned front end on the raw text
    of a CoNLL-U file with `# text` lines (spans compared exactly; the official scorer
    agrees on tokens and sentences to within rounding)."""
    return _DevSet(read_training_text(path)).score(front_end)


# ---------------------------------------------------------------- training


def _char_alphabet(paragraphs, min_count):
    counts = Counter()
    for p in paragraphs:
        counts.update(p)
    return "".join(sorted(c for c, n in counts.items() if n >= min_count and not c.isspace()))


_BIASES = (0.0, -1.0, -0.75, -0.5, -0.25, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def _tune_bias(front_end, dev, scored, attribute, score):
    """Set front_end's bias `attribute` (sentence_bias, multiword_bias) to the value of
    _BIASES with the best `score` F1 on dev (0 when none beats it); returns it."""
    best_bias, best = 0.0, None
    for bias in _BIASES:
        setattr(front_end, attribute, bias)
        f = dev.score(front_end, scored)[score]
        if best is None or f > best + 1e-9:
            best_bias, best = bias, f
    setattr(front_end, attribute, best_bias)
    return best_bias


#: The shares of their chunks a shape's segmentation needs to be used, tried on dev.
_SHAPE_SHARES = (0.99, 0.97, 0.95, 0.9, 0.85, 0.8)


def tune_on_dev(front_end: LearnedFrontEnd, train_path: str | os.PathLike[str],
                dev_path: str | os.PathLike[str]) -> None:
    """Learn again from the raw text of train_path what a trained front end has after its
    model (the multiword expander, the chunk lexicon, the shapes, the word boundary model),
    and choose on
    dev_path's how it uses them and its biases (CoNLL-U files with `# text` lines)."""
    material = read_training_text(train_path)
    front_end.expander = MultiwordExpander.learn(material.multiword, material.plain)
    front_end.lexicon = learn_lexicon(material)
    _tune_after_model(front_end, _DevSet(read_training_text(dev_path)),
                      *_learned_after_model(material, front_end.expander))


#: The weights of the word model against the character model's, and the biases, tried on dev.
_WORD_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
_WORD_BIASES = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)


#: The share of the treebank's runs of a repeated symbol kept whole (learn_repeated_symbols)
#: from which keeping them all whole is tried on dev.
_REPEATS_SHARE = 0.95


#: How many chunks a shape with its letters (or its first word) needs in train to be used
#: (they are rarer).
_LETTER_SHAPE_COUNT = 3


def _tune_after_model(front_end, dev, shapes, words=None, contexts=(), repeats_share=0.0,
                      letter_shapes=None, prefix_shapes=None, suffix_shapes=None,
                      headings=frozenset()):
    """Choose on dev whether to keep runs of a repeated symbol whole (where repeats_share,
    learn_repeated_symbols' share, reaches _REPEATS_SHARE), whether to use the chunk
    lexicon, which shapes to use (those whose share reaches one of _SHAPE_SHARES, or
    none), then which shapes with their letters (`letter_shapes`, likewise), which
    shapes with their first word and which with their last (`prefix_shapes`,
    `suffix_shapes`, likewise), the
    sentence-end and multiword biases,
    how much the word boundary model `words` (WordBoundaries) weighs, whether to make the
    `headings` (learn_headings) sentences of their own, and which of the
    multiword context models `contexts` (MultiwordContext) to use and how much it weighs
    (none: 0)."""
    scored = front_end._score(dev.paragraphs)
    token_score = functools.partial(_token_score, front_end, dev, scored)

    # every choice made as on a front end just trained: none of what a loaded one was
    # tuned with (tune_on_dev) in play while the choices before it are made
    front_end.words, front_end.word_weight, front_end.word_bias = None, 0.0, 0.0
    front_end.context, front_end.context_weight, front_end.context_bias = None, 0.0, 0.0
    front_end.headings = frozenset()
    front_end.sentence_bias = front_end.multiword_bias = 0.0
    for name in _SHAPE_TIERS:
        setattr(front_end, name, {})
    front_end.use_lexicon = False
    front_end.repeats_whole = False
    if repeats_share >= _REPEATS_SHARE:
        cut = token_score()
        front_end.repeats_whole = True
        front_end.repeats_whole = token_score() >= cut
    without_lexicon = token_score()
    front_end.use_lexicon = True
    front_end.use_lexicon = token_score() >= without_lexicon
    best = token_score()
    for attribute, learned in zip(_SHAPE_TIERS,
                                  (shapes, letter_shapes, prefix_shapes, suffix_shapes)):
        best = _choose_shapes(front_end, attribute, learned, best, token_score)
    _tune_bias(front_end, dev, scored, "sentence_bias", "sentences")
    _tune_bias(front_end, dev, scored, "multiword_bias", "multiword")
    if words is not None:
        _tune_word_weight(front_end, dev, scored, words)
    if headings:
        # kept unless dev is worse with them, as the chunk lexicon: a treebank's dev may
        # hold none of its headings (Sequoia's holds two, found without them)
        without = dev.score(front_end, scored)["sentences"]
        front_end.headings = headings
        if dev.score(front_end, scored)["sentences"] < without:
            front_end.headings = frozenset()
    if contexts:
        _tune_context_weight(front_end, dev, scored, contexts)


def _token_score(front_end, dev, scored):
    """Token F1 + multiword-token F1 of front_end on dev (scored: its scores of dev): what
    the choices about tokens are made on."""
    scores = dev.score(front_end, scored)
    return scores["tokens"] + scores["multiword"]


def _choose_shapes(front_end, attribute, learned, best, token_score):
    """Set front_end's shapes of that attribute to those of `learned` (learn_shapes) whose
    share reaches the one of _SHAPE_SHARES with the best token_score(), or none where
    none beats `best` (the score without them); the best score."""
    chosen = {}
    for share in _SHAPE_SHARES if learned else ():
        setattr(front_end, attribute, {s: ends for s, (ends, found) in learned.items()
                                       if found >= share})
        score = token_score()
        if score > best + 1e-9:
            best, chosen = score, getattr(front_end, attribute)
    setattr(front_end, attribute, chosen)
    return best


def _learned_after_model(material, expander):
    """What a front end learns from train after its model, in _tune_after_model's order:
    the shapes, the word boundary model, the multiword context models, the share of
    repeated symbols kept whole, the shapes with their letters, with their first word and
    with their last, the headings."""
    return (learn_shapes(material), WordBoundaries.learn(material),
            _multiword_contexts(material, expander), learn_repeated_symbols(material),
            learn_shapes(material, _LETTER_SHAPE_COUNT, letters=True), *_word_shapes(material),
            learn_headings(material))


def _word_shapes(material):
    """The shapes with their first word and with their last (learn_shapes)."""
    return (learn_shapes(material, _LETTER_SHAPE_COUNT, letters="first"),
            learn_shapes(material, _LETTER_SHAPE_COUNT, letters="last"))


def tune_word_shapes(front_end: LearnedFrontEnd, train_path: str | os.PathLike[str],
                     dev_path: str | os.PathLike[str]) -> None:
    """Learn the shapes with their first word and with their last from train_path and
    choose on dev_path which to use, the front end's other choices kept as they are: what a
    front end tuned before they existed needs to use them (bench/attach_frontend.py
    --word-shapes)."""
    material = read_training_text(train_path)
    dev = _DevSet(read_training_text(dev_path))
    token_score = functools.partial(_token_score, front_end, dev,
                                    front_end._score(dev.paragraphs))
    front_end.prefix_shapes, front_end.suffix_shapes = {}, {}
    best = token_score()
    for name, learned in zip(("prefix_shapes", "suffix_shapes"), _word_shapes(material)):
        best = _choose_shapes(front_end, name, learned, best, token_score)


#: The L2 penalties of the multiword context models learned, one chosen on dev: the
#: strongest keeps a form seen a handful of times from deciding ("its" before a
#: determiner: 7 times in EWT train), the weakest lets it.
_CONTEXT_L2 = (1e-4, 1e-5, 1e-6)


def _multiword_contexts(material, expander):
    """A MultiwordContext per penalty of _CONTEXT_L2 (none where the treebank has no
    multiword tokens)."""
    if not material.multiword:
        return []
    return [MultiwordContext.learn(material, expander, l2=l2) for l2 in _CONTEXT_L2]


#: The weights of the multiword context model against the character model's, and the
#: biases, tried on dev.
_CONTEXT_WEIGHTS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
_CONTEXT_BIASES = (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)


def _tune_context_weight(front_end, dev, scored, contexts):
    """Set front_end's multiword context model (one of `contexts`), its weight and bias
    to those of _CONTEXT_WEIGHTS and _CONTEXT_BIASES with the best token + multiword F1 on
    dev (no context model when none beats it)."""
    score = functools.partial(_token_score, front_end, dev, scored)
    best, choice = score(), (None, 0.0, 0.0)
    front_end._context_scores = []
    try:
        for context in contexts:
            front_end.context = context
            for weight in _CONTEXT_WEIGHTS:
                for bias in _CONTEXT_BIASES:
                    front_end.context_weight, front_end.context_bias = weight, bias
                    f = score()
                    if f > best + 1e-9:
                        best, choice = f, (context, weight, bias)
    finally:
        front_end._context_scores = None
    front_end.context, front_end.context_weight, front_end.context_bias = choice


def _tune_word_weight(front_end, dev, scored, words):
    """Set front_end's word model, its weight and bias to the pair of _WORD_WEIGHTS and
    _WORD_BIASES with the best sentence F1 on dev (no word model when none beats it)."""
    best = dev.score(front_end, scored)["sentences"]
    choice = (None, 0.0, 0.0)
    front_end.words, front_end._word_scores = words, []
    try:
        for weight in _WORD_WEIGHTS[1:]:
            for bias in _WORD_BIASES:
                front_end.word_weight, front_end.word_bias = weight, bias
                f = dev.score(front_end, scored)["sentences"]
                if f > best + 1e-9:
                    best, choice = f, (words, weight, bias)
    finally:
        front_end._word_scores = None
    front_end.words, front_end.word_weight, front_end.word_bias = choice


def _epochs(lengths: np.ndarray, opts: dict) -> tuple[int, int]:
    """(epochs, steps an epoch) of train_frontend over paragraphs of these lengths."""
    crop, batch, chars = int(opts["crop"]), int(opts["batch"]), int(lengths.sum())
    # a small treebank gets more passes: every corpus trains on at least min_chars
    # characters; dev is looked at about 12 times whatever the number of passes
    epochs = max(int(opts["epochs"]), -(-int(opts["min_chars"]) // chars))
    steps_per_epoch = max(1, chars // (crop * batch))
    if chars < crop * batch:
        # a corpus smaller than one step's characters (batch crops of paragraphs picked by
        # length) has epochs of one step that each go over it several times, and min_chars
        # would make thousands of them: at most _MAX_PASSES passes over its characters.
        # (From crop * batch characters on, an epoch is about one pass, as min_chars means.)
        chars_per_step = batch * float((lengths / chars) @ np.minimum(lengths, crop))
        most = -(-_MAX_PASSES * chars // max(1, int(chars_per_step)))
        epochs = max(int(opts["epochs"]), min(epochs, most))
    return epochs, steps_per_epoch


def train_frontend(train_path: str | os.PathLike[str],
                   dev_path: str | os.PathLike[str] | None = None, *, seed: int = 0,
                   threads: int = 2,
                   max_time: Optional[float] = None,
                   progress: Optional[Callable[[dict], None]] = None,
                   options: Optional[dict] = None) -> LearnedFrontEnd:
    """Learn a front end from a CoNLL-U file with `# text` lines.

    Trains on random crops of the training paragraphs for options["epochs"] passes over
    their characters, more for a small corpus (options["min_chars"] characters at least,
    but at most _MAX_PASSES passes over a corpus smaller than one step's crops), or until
    max_time seconds; keeps the epoch with the best token + sentence F1 on
    dev_path when given (the last otherwise), learns the chunk lexicon, the shapes and the
    word boundary model, and on dev decides how to use them and tunes the biases.
    progress, if given, gets a dict
    after every epoch dev is looked at (about 12, the last among them; without dev_path
    the same epochs).  CorpusError when the file
    has no `# text` lines (the caller keeps the rule front end).
    """
    start_time = time.perf_counter()
    opts = _checked_options(options or {})
    material = read_training_text(train_path)
    dev = _DevSet(read_training_text(dev_path)) if dev_path is not None else None
    rng = np.random.default_rng(seed)
    codes = CharCodes(_char_alphabet(material.paragraphs, opts["min_char_count"]))
    model = CharTagger(codes.size, opts["dim"], opts["hidden"], opts["cell"],
                       seed=int(rng.integers(2**31)), threads=threads)
    expander = MultiwordExpander.learn(material.multiword, material.plain)
    front_end = LearnedFrontEnd(codes, model, expander, opts)
    front_end.rebuilt = material.rebuilt
    all_ids = np.concatenate([codes.encode(p) for p in material.paragraphs])
    all_labels = np.concatenate(material.labels).astype(np.int64)
    lengths = np.array([len(p) for p in material.paragraphs], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    paragraph_share = lengths / lengths.sum()
    crop, batch = int(opts["crop"]), int(opts["batch"])
    epochs, steps_per_epoch = _epochs(lengths, opts)
    total_steps = steps_per_epoch * epochs
    look_every = max(1, epochs // 12)
    params = model.arrays()
    adam = Adam(params, lr=opts["lr"], threads=threads)
    best, best_score, step = None, -1.0, 0
    out_of_time = False
    for epoch in range(1, epochs + 1):
        losses = []
        for _ in range(steps_per_epoch):
            # cosine decay to a tenth of the rate over the planned steps
            adam.lr = opts["lr"] * (0.55 + 0.45 * np.cos(np.pi * step / total_steps))
            step += 1
            picked = rng.choice(len(lengths), size=batch, p=paragraph_share)
            widths = np.minimum(lengths[picked], crop)
            offsets = starts[picked] + rng.integers(0, lengths[picked] - widths + 1)
            packing = Packing(widths)
            flat_index = packing.flat_index()
            first = np.repeat(offsets - np.cumsum(widths) + widths, widths)
            positions = (first + np.arange(int(widths.sum())))[flat_index]
            ids = all_ids[positions]
            if opts["char_dropout"]:
                drop = rng.random(len(ids)) < opts["char_dropout"]
                ids[drop] = codes.class_of_id[ids[drop]]
            labels = all_labels[positions]
            char_weights = None
            if opts["sentence_weight"] != 1.0:
                char_weights = np.where(_SENTENCE_ENDS[labels], opts["sentence_weight"], 1.0)
            loss, dense, sparse = model.loss_and_gradients(ids, labels, packing, char_weights)
            clip_by_global_norm(dense, sparse, 5.0)
            adam.step(dense, sparse)
            model.changed()
            losses.append(loss)
            if max_time is not None and time.perf_counter() - start_time > max_time:
                out_of_time = True
                break
        report = {"epoch": epoch, "loss": float(np.mean(losses)),
                  "seconds": time.perf_counter() - start_time}
        looking = epoch % look_every == 0 or epoch == epochs or out_of_time
        if dev is not None and looking:
            scores = dev.score(front_end)
            report.update({"dev_" + k: v for k, v in scores.items()})
            if scores["tokens"] + scores["sentences"] > best_score:
                best_score = scores["tokens"] + scores["sentences"]
                best = {k: v.copy() for k, v in params.items()}
        if progress is not None and looking:  # about 12 reports, however many epochs
            progress(report)
        if out_of_time:
            break
    if best is not None:
        model.load_arrays(best)
    front_end.lexicon = learn_lexicon(material)
    if dev is not None:
        _tune_after_model(front_end, dev, *_learned_after_model(material, expander))
    return front_end


# ---------------------------------------------------------------- the rule front end

_FINAL = frozenset(".!?…‼⁇⁈⁉。！？")
_FINAL_MARKS = "".join(sorted(_FINAL))
# a closing quote that may as well open the next sentence joins the sentence only attached
_CLOSING = frozenset(")]}”»」』）›")
_QUOTES = frozenset("\"'`’")


class RuleFrontEnd:
    """seqtag.tokenize's rules for tokens; a sentence ends after a token of . ! ? … and
    the closing brackets and quotes that follow it, when whitespace comes next."""

    kind = "rules"

    def segment(self, paragraph: str) -> list[RawSentence]:
        if not isinstance(paragraph, str):
            raise SeqtagError(f"a paragraph must be a string, got {type(paragraph).__name__}")
        # imported here: a model with a learned front end never needs the rules' regular
        # expressions (2 ms of a one-shot `seqtag tag` to compile)
        from .tokenize import tokenize

        tokens = []
        pos, n = 0, len(paragraph)
        for piece in tokenize(paragraph):
            while paragraph[pos].isspace():
                pos += 1
            end = pos + len(piece)
            # tokenize() only cuts whitespace-free chunks, so each piece is the text here
            tokens.append(Token(piece, pos, end, [], end == n or paragraph[end].isspace()))
            pos = end
        sentences, first, i = [], 0, 0
        while i < len(tokens):
            last = i
            if set(tokens[i].text) <= _FINAL:
                while last + 1 < len(tokens) and (
                        set(tokens[last + 1].text) <= _CLOSING
                        or (set(tokens[last + 1].text) <= _QUOTES
                            and not tokens[last].space_after)):
                    last += 1
            if last == len(tokens) - 1 or (set(tokens[i].text) <= _FINAL
                                           and tokens[last].space_after):
                group = tokens[first:last + 1]
                start, end = group[0].start, group[-1].end
                sentences.append(RawSentence(group, start, end, paragraph[start:end]))
                first = last + 1
            i = last + 1
        return sentences

    def segment_many(self, paragraphs: list[str]) -> list[list[RawSentence]]:
        return [self.segment(p) for p in paragraphs]


# ---------------------------------------------------------------- CoNLL-U output


def to_conllu(sentences: Iterable[RawSentence]) -> str:
    """Sentences as CoNLL-U with their tokens and words only (no tags): `# text`, one
    line per word with a dummy tree (the first word the root, the others its
    dependents: the scorer needs integer heads), multiword ranges, SpaceAfter=No."""
    from .corpus import raw_sentence_conllu
    return "".join(raw_sentence_conllu(s, dummy_tree=True) + "\n" for s in sentences)


def paragraphs_to_conllu(paragraphs: Iterable[list[RawSentence]]) -> str:
    """to_conllu of paragraphs' sentences, each paragraph opening with `# newpar`."""
    from .corpus import raw_sentence_conllu
    return "".join(raw_sentence_conllu(s, dummy_tree=True,
                                       comments=["# newpar"] if k == 0 else []) + "\n"
                   for sentences in paragraphs for k, s in enumerate(sentences))
