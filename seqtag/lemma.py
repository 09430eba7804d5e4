"""Lemmas as edit scripts: the rule that turns a word form into its lemma.

A script is learned from a treebank's (form, lemma) pairs (after Chrupała 2006; UDPipe
does the same) and names:

- a case change of the whole form: none, lower-case it, or lower-case its first letter;
- a prefix to strip from the (re-cased) form and one to put in its place;
- a suffix to strip and one to put in its place.

"dogs" -> "dog" is (none, "", "", "s", ""); "The" -> "the" is (lower, "", "", "", "");
"ran" -> "run" is (none, "", "", "an", "un").  The stripped strings are part of the
script, so a script applies only to forms that have them: a predicted script that does
not fit the form falls back to the next best one, then to the form itself.  The
network classifies each token's script; the scripts it can give are those of the
training corpus.  Every training pair is reproduced by its own script
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

from . import runtime
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
        # a trie of the suffixes to strip, read from the word's end: node {character:
        # node, None: {case: [(prefix to strip, [script ids])]}} (the scripts that strip
        # the suffix spelled by the path), so that a word walks only as far as some
        # script's suffix matches its own (a few characters), for every case at once
        # where re-casing leaves it as it is
        by_node: dict[int, dict[str, dict[str, list[int]]]] = {}
        root: dict = {}
        for j, (case, strip_pre, _, strip_suf, _) in enumerate(scripts):
            node = root
            for char in reversed(strip_suf):
                node = node.setdefault(char, {})
            by_node.setdefault(id(node), {}).setdefault(case, {}).setdefault(
                strip_pre, []).append(j)
            node.setdefault(None, by_node[id(node)])
        # each case's: (the scripts that strip no prefix, {a prefix's first character:
        # [(prefix, its scripts)]}): a word's first character picks the few to test
        for node in _trie_nodes(root):
            if None in node:
                node[None] = {case: (by_prefix.get("", []), _by_first(by_prefix))
                              for case, by_prefix in node[None].items()}
        self._trie = root
        self._cases = sorted({script[0] for script in scripts}, key=CASES.index)
        self._numbers: dict[tuple[int, ...], int] = {}
        self._members: list[int] = []
        self._starts = [0]
        self._of_word: dict[str, int] = {}
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def fitting(self, word: str) -> tuple[int, ...]:
        """The ids of the scripts that fit word, ascending."""
        found: list[int] = []
        sources: dict[str, list[str]] = {}  # re-cased word: the cases that give it
        for case in self._cases:
            sources.setdefault(_recase(word, case), []).append(case)
        for source, cases in sources.items():
            n = len(source)
            node = self._trie
            length = 0
            while True:
                here = node.get(None)
                if here is not None:
                    for case in cases:
                        plain, prefixed = here.get(case, _NO_SCRIPTS)
                        found.extend(plain)
                        for prefix, ids in prefixed.get(source[:1], ()):
                            if len(prefix) + length <= n and source.startswith(prefix):
                                found.extend(ids)
                if length == n:
                    break
                node = node.get(source[n - 1 - length])
                if node is None:
                    break
                length += 1
        found.sort()
        return tuple(found)

    def ids(self, words: Sequence[str]) -> np.ndarray:
        """(len(words),) int64: the number of each word's set of fitting scripts."""
        # two threads tagging with one model must not number two sets alike
        with runtime.tables_lock:
            of_word = self._of_word
            if len(of_word) > WORDS_KEPT:
                of_word = self._of_word = {}
            out = np.fromiter(map(of_word.get, words, repeat(-1)), dtype=np.int64,
                              count=len(words))
            for k in np.flatnonzero(out < 0).tolist():
                word = words[k]
                found = of_word.get(word)
                if found is None:
                    key = self.fitting(word)
                    found = self._numbers.get(key)
                    if found is None:
                        found = self._numbers[key] = len(self._numbers)
                        self._members.extend(key)
                        self._starts.append(len(self._members))
                        self._arrays = None
                    of_word[word] = found
                out[k] = found
            return out

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts (sets + 1,), members): set g's scripts are members[starts[g]:starts[g +
        1]], ascending; every number ids() has given is a set here."""
        with runtime.tables_lock:
            if self._arrays is None:
                self._arrays = (np.array(self._starts, dtype=np.int64),
                                np.array(self._members, dtype=np.int64))
            return self._arrays


_NO_SCRIPTS: tuple[list[int], dict] = ([], {})


def _by_first(by_prefix: dict[str, list[int]]) -> dict[str, list[tuple[str, list[int]]]]:
    grouped: dict[str, list[tuple[str, list[int]]]] = {}
    for prefix, ids in by_prefix.items():
        if prefix:
            grouped.setdefault(prefix[0], []).append((prefix, ids))
    return grouped


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
