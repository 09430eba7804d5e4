"""Lemmas as edit scripts: the rule that turns a word form into its lemma.

A script is learned from a treebank's (form, lemma) pairs (after Chrupała 2006; UDPipe
does the same) and names:

- a case change of the whole form: none, lower-case it, or lower-case its first letter;
- a prefix to strip from the (re-cased) form and one to put in its place;
- a suffix to strip and one to put in its place.

"dogs" -> "dog" is (none, "", "", "s", ""); "The" -> "the" is (lower, "", "", "", "");
"ran" -> "run" is (none, "", "", "an", "un").  The stripped strings are part of the
script, so a script applies only to forms that have them: a token's lemma is that of
the best-scoring script among those that fit its form (ScriptSets finds them), the form
itself where none does.  The network classifies each token's script; the scripts it can
give are those of the training corpus.  Every training pair is reproduced by its own script
(tests/test_lemma.py checks it on EWT and Sequoia train): a pair that shares nothing
with its lemma gets a script that strips the whole form.

A label is the script as a JSON list, [case, strip prefix, add prefix, strip suffix, add
suffix], so a model's metadata holds the scripts as plain strings.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from itertools import chain, repeat
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import _core, runtime
from .modelfile import defer_strings, put_strings

__all__ = ["edit_script", "apply_script", "script_label", "parse_label", "parse_labels",
           "Lexicon"]

#: Case changes, in the order edit_script tries them (the first of equal cost wins).
CASES = ("", "lower", "first")

Script = tuple[str, str, str, str, str]

#: The shortest common substring kept as a stem when form and lemma start differently:
#: below it the whole form is replaced ("are" -> "be" strips "are", adds "be"), which
#: applies to that one form instead of to every form with an "ar" to swap for a "b".
MIN_STEM = 3


def _recase(form: str, case: str) -> str:
    if case == "lower":
        return form.lower()
    if case == "first":
        return form[:1].lower() + form[1:]
    return form


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _longest_common_substring(a: str, b: str) -> tuple[int, int, int]:
    """(start in a, start in b, length) of the longest common substring, first found."""
    best = (0, 0, 0)
    previous = [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        current = [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                current[j] = previous[j - 1] + 1
                if current[j] > best[2]:
                    best = (i - current[j], j - current[j], current[j])
        previous = current
    return best


def _script_for(source: str, lemma: str, case: str) -> Script:
    """The script from an already re-cased form: keep the longest common prefix when there
    is one (the usual suffix change), else the longest common substring (a prefix change
    too), else replace the whole form."""
    p = _common_prefix(source, lemma)
    if p:
        return (case, "", "", source[p:], lemma[p:])
    i, j, n = _longest_common_substring(source, lemma)
    if n >= MIN_STEM:
        return (case, source[:i], lemma[:j], source[i + n:], lemma[j + n:])
    return (case, "", "", source, lemma)


def _cost(script: Script) -> int:
    return sum(len(part) for part in script[1:])


@functools.lru_cache(maxsize=1 << 16)  # a corpus repeats its pairs: train reads each often
def edit_script(form: str, lemma: str) -> Script:
    """The cheapest script (fewest characters stripped and added) turning form into
    lemma; apply_script(form, edit_script(form, lemma)) == lemma always."""
    best = None
    for case in CASES:
        source = _recase(form, case)
        if case and source == _recase(form, CASES[CASES.index(case) - 1]):
            continue  # the same as a cheaper case change
        script = _script_for(source, lemma, case)
        if best is None or _cost(script) < _cost(best):
            best = script
    assert best is not None
    return best


def apply_script(form: str, script: Script) -> str | None:
    """The lemma the script gives for form, or None if it does not fit the form (a
    prefix or suffix to strip that the form lacks, or that overlap)."""
    case, strip_pre, add_pre, strip_suf, add_suf = script
    source = _recase(form, case)
    if len(strip_pre) + len(strip_suf) > len(source):
        return None
    if not source.startswith(strip_pre) or not source.endswith(strip_suf):
        return None
    core = source[len(strip_pre):len(source) - len(strip_suf)]
    return add_pre + core + add_suf


#: Words whose script set ScriptSets keeps; past it the kept words start over (the sets
#: themselves stay: they are few, and their numbers must not change).
WORDS_KEPT = 1 << 16


class ScriptSets:
    """Which of a lemma head's scripts fit a word (apply_script gives it a lemma): the
    lemma head scores only those (seqtag.network.Network.best_fitting_scripts), a few
    dozen of its 419 scripts on EWT, instead of every one.  Each distinct set of fitting
    scripts gets a number, in the order they are first met, and never another: ids()
    gives the words' numbers, arrays() every set's scripts laid end to end.

    A script fits a word when the word, re-cased as the script says, starts with its
    prefix to strip and ends with its suffix to strip and is long enough for both."""

    def __init__(self, scripts: Sequence[Script]) -> None:
        # a trie of the suffixes to strip, read from the word's end, whose nodes hold the
        # scripts that strip the suffix spelled by their path, in pieces: per case, those
        # that strip no prefix, and those that strip each prefix.  A word walks only as
        # far as some script's suffix matches its own (a few characters), in the compiled
        # core (seqtag._core.script_walks), which gives the pieces that fit it: their
        # numbers name its set before the set is made
        root: dict = {}
        for j, (case, strip_pre, _, strip_suf, _) in enumerate(scripts):
            node = root
            for char in reversed(strip_suf):
                node = node.setdefault(char, {})
            node.setdefault(None, {}).setdefault(CASES.index(case), {}).setdefault(
                strip_pre, []).append(j)
        self._pieces: list[tuple[int, ...]] = []
        nodes = list(_trie_nodes(root))
        number = {id(node): i for i, node in enumerate(nodes)}
        child_start, child_char, child_node = [0], [], []
        plain = [-1] * (3 * len(nodes))
        prefixed_start = [0]
        prefix_start, prefix_len, prefix_piece, prefix_chars = [], [], [], []
        for i, node in enumerate(nodes):
            for char in sorted((c for c in node if c is not None), key=ord):
                child_char.append(ord(char))
                child_node.append(number[id(node[char])])
            child_start.append(len(child_char))
            by_case = node.get(None, {})
            for c in range(3):
                for prefix, ids in sorted(by_case.get(c, {}).items()):
                    self._pieces.append(tuple(ids))
                    if not prefix:
                        plain[3 * i + c] = len(self._pieces) - 1
                        continue
                    prefix_start.append(len(prefix_chars))
                    prefix_len.append(len(prefix))
                    prefix_piece.append(len(self._pieces) - 1)
                    prefix_chars.extend(map(ord, prefix))
                prefixed_start.append(len(prefix_start))
        self._trie = tuple(np.array(a, dtype=np.int32) for a in (
            child_start, child_char, child_node, plain, prefixed_start, prefix_start,
            prefix_len, prefix_piece, prefix_chars))
        self._by_walk: dict[tuple[int, ...], int] = {}  # pieces matched: set number
        self._numbers: dict[tuple[int, ...], int] = {}
        # every set's scripts laid end to end, in arrays grown by doubling (arrays()
        # gives views of their filled parts: made anew per batch, they cost more than
        # the new words' walks)
        self._members = np.empty(1024, dtype=np.int64)
        self._starts = np.zeros(64, dtype=np.int64)
        self._of_word: dict[str, int] = {}

    def fitting(self, word: str) -> tuple[int, ...]:
        """The ids of the scripts that fit word, ascending."""
        return self._scripts(_core.script_walks([word], *self._trie)[0])

    def _scripts(self, walk: tuple[int, ...]) -> tuple[int, ...]:
        pieces = self._pieces
        return tuple(sorted(chain.from_iterable(pieces[k] for k in walk)))

    def ids(self, words: Sequence[str]) -> np.ndarray:
        """(len(words),) int64: the number of each word's set of fitting scripts."""
        # two threads tagging with one model must not number two sets alike
        with runtime.tables_lock:
            of_word = self._of_word
            if len(of_word) > WORDS_KEPT:
                of_word = self._of_word = {}
            out = np.fromiter(map(of_word.get, words, repeat(-1)), dtype=np.int64,
                              count=len(words))
            new = np.flatnonzero(out < 0).tolist()
            if not new:
                return out
            new_words = list(map(words.__getitem__, new))
            # a new word mostly matches pieces some word matched before: their numbers
            # name its set, which is then not made and sorted again
            walks = _core.script_walks(new_words, *self._trie)
            found = list(map(self._by_walk.get, walks))
            for k in [k for k, number in enumerate(found) if number is None]:
                walk = walks[k]
                number = self._by_walk.get(walk)  # (an earlier word of these)
                if number is None:
                    key = self._scripts(walk)
                    number = self._numbers.get(key)
                    if number is None:
                        # the set written before it is numbered: an interrupt between the
                        # two leaves no number without its scripts
                        number = len(self._numbers)
                        self._add_set(number, key)
                        self._numbers[key] = number
                    self._by_walk[walk] = number
                found[k] = number
            of_word.update(zip(new_words, found))
            out[new] = found
            return out

    def _add_set(self, number: int, scripts: tuple[int, ...]) -> None:
        """Set `number`'s scripts after the others (number: how many sets there were)."""
        start = int(self._starts[number])
        end = start + len(scripts)
        if end > len(self._members):
            self._members = np.concatenate(
                [self._members, np.empty(max(end, len(self._members)), dtype=np.int64)])
        if number + 2 > len(self._starts):
            self._starts = np.concatenate([self._starts, np.zeros_like(self._starts)])
        self._members[start:end] = scripts
        self._starts[number + 1] = end

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts (sets + 1,), members): set g's scripts are members[starts[g]:starts[g +
        1]], ascending; every number ids() has given is a set here.  Views of arrays the
        sets grow into: a later call's sets only add to them."""
        with runtime.tables_lock:
            sets = len(self._numbers)
            return self._starts[:sets + 1], self._members[:self._starts[sets]]


def _trie_nodes(node: dict) -> Iterable[dict]:
    yield node
    for char, child in node.items():
        if char is not None:
            yield from _trie_nodes(child)


def script_label(script: Script) -> str:
    """A script as a label string (a model's metadata keeps them so)."""
    return json.dumps(list(script), ensure_ascii=False, separators=(",", ":"))


def parse_label(label: str) -> Script:
    """The script a label names; ValueError if it is not one."""
    value = json.loads(label)
    if (not isinstance(value, list) or len(value) != 5
            or not all(isinstance(part, str) for part in value) or value[0] not in CASES):
        raise ValueError(f"not an edit script: {label!r}")
    return tuple(value)  # type: ignore[return-value]


# a label as script_label writes it: five strings without escapes (control characters
# are escaped by json.dumps, and json.loads refuses them raw)
_PART = r'"([^"\\\x00-\x1f]*)"'  # what json.loads reads as itself
_PLAIN_LABEL = re.compile(r'\["(|lower|first)",' + ",".join([_PART] * 4) + r"\]\Z")


def parse_labels(labels: Sequence[str]) -> list[Script]:
    """parse_label of each label (a lemma head's 400-odd labels are a millisecond of
    loading a model with json.loads one by one): those script_label wrote without escapes
    read by one regular expression, the others by parse_label."""
    match = _PLAIN_LABEL.match
    return [found.groups() if (found := match(label)) else parse_label(label)  # type: ignore[misc]
            for label in labels]


class Lexicon:
    """The exception dictionary: (form, UPOS) -> lemma for the pairs of the training
    corpus that always had the same lemma.  It wins over the network's script when a
    token's form and predicted UPOS are in it (the treebank was sure of that word).
    Measured on EWT dev (a joint model at epoch 12): lemmas 94.66 % with only the pairs
    whose script is no class of the lemma head, 96.58 % with every unambiguous pair, 94.62
    % without a lexicon; a pair's majority lemma (seen at least 50, 75 or 90 % of the time)
    instead: 96.52 to 96.59 %."""

    def __init__(self, entries: dict[tuple[str, str], str] | None = None) -> None:
        self._pending: Callable[[], Iterable[Sequence[str]]] | None = None
        self._size = 0
        self.entries = dict(entries or {})

    @functools.cached_property
    def entries(self) -> dict[tuple[str, str], str]:
        # a loaded lexicon becomes a dict when first asked: tens of thousands of pairs
        # cost a one-shot `seqtag tag` that shows no lemmas ~10 ms otherwise.  _pending is
        # kept: two threads asking at once both build the same dict
        pending = self._pending
        return {(form, upos): lemma for form, upos, lemma in (pending() if pending else ())}

    def __len__(self) -> int:
        if self._pending is None or "entries" in self.__dict__:
            return len(self.entries)
        return self._size

    @classmethod
    def _deferred(cls, size: int, triples: Callable[[], Iterable[Sequence[str]]]) -> Lexicon:
        """A lexicon of `size` entries whose (form, upos, lemma) triples, already checked,
        triples() gives when the entries are first needed."""
        lexicon = cls.__new__(cls)
        lexicon._pending, lexicon._size = triples, size
        return lexicon

    @classmethod
    def build(cls, triples: Iterable[tuple[str, str, str]]) -> Lexicon:
        """From (form, upos, lemma) triples: the pairs that always had the same lemma."""
        lemmas: dict[tuple[str, str], set[str]] = defaultdict(set)
        for form, upos, lemma in triples:
            lemmas[(form, upos)].add(lemma)
        return cls({pair: next(iter(found)) for pair, found in lemmas.items()
                    if len(found) == 1})

    def to_meta(self, arrays: dict | None = None, name: str = "lexicon"
                ) -> list[list[str]] | dict[str, Any]:
        """The entries as [form, upos, lemma] lists (sorted), or with `arrays` (a dict of
        arrays a model file will hold) three lists of strings stored there under
        name.forms, name.upos and name.lemmas (seqtag.modelfile.put_strings), and their
        references."""
        items = sorted(self.entries.items())
        if arrays is None:
            return [[form, upos, lemma] for (form, upos), lemma in items]
        return {part: put_strings(arrays, f"{name}.{part}", values) for part, values in
                zip(("forms", "upos", "lemmas"),
                    ([f for (f, _), _ in items], [u for (_, u), _ in items],
                     [lemma for _, lemma in items]))}

    @classmethod
    def from_meta(cls, meta: Sequence[Sequence[str]] | dict[str, Any],
                  arrays: dict | None = None) -> Lexicon:
        """The lexicon to_meta() described (with `arrays`, those of the model file);
        ValueError (KeyError, TypeError) if broken."""
        if isinstance(meta, dict):  # three lists of strings in arrays (model format 2)
            parts = [defer_strings(arrays or {}, meta[part])
                     for part in ("forms", "upos", "lemmas")]
            sizes = {size for size, _ in parts}
            if len(sizes) != 1:
                raise ValueError("the lexicon's forms, UPOS and lemmas differ in number")
            return cls._deferred(sizes.pop(), lambda: zip(*(strings() for _, strings in parts)))
        # checked with loops that stay in C: a model's lexicon has tens of thousands of
        # entries, and loading the model is most of a one-shot `seqtag tag`
        items = list(meta)
        if (not set(map(type, items)) <= {list, tuple} or set(map(len, items)) - {3}
                or not set(map(type, chain.from_iterable(items))) <= {str}):
            raise ValueError("a lexicon entry is not [form, upos, lemma]")
        return cls._deferred(len(items), lambda: items)

    def get(self, form: str, upos: str | None) -> str | None:
        return None if upos is None else self.entries.get((form, upos))
