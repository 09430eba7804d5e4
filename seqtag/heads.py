"""The network's output heads: one per CoNLL-U column it predicts, over one shared encoder.

A head is a classifier over its own labels: UPOS tags, XPOS tags, FEATS strings, the
values of one feature (FEATS split into a head per feature), or lemma edit scripts
(seqtag.lemma).  All heads read the same encoder output; the network computes their
logits with ONE product (the heads' weights stacked into the output layer, a head owning
the rows [start, stop)) and normalises each head's segment on its own (log-softmax), so
a model's loss is the sum of the heads' losses.  A head says how its gold labels come
from a sentence's columns (gold) and how a column's values come from its scores (the
Outputs of a batch).  Another kind of head (a CRF over a column, say) would keep this
interface and own more parameters.

A model file keeps the stacked layer under output.weight / output.bias, as a model of
one column always did, and the heads in its metadata (to_meta); a model written before
heads existed has one head, over the column it was trained on.
"""

from __future__ import annotations

import functools
from collections import Counter
from itertools import repeat
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .lemma import (Lexicon, ScriptSets, apply_script, edit_script, parse_labels,
                    script_label)

__all__ = ["COLUMNS", "Head", "FeatureHead", "LemmaHead", "TagCombinations", "build_heads",
           "heads_from_meta",
           "heads_to_meta", "decode_column", "join_features", "split_features"]

#: The CoNLL-U columns a model can predict, in the order its heads come, with their
#: 0-based field index.
COLUMNS = {"upos": 3, "xpos": 4, "feats": 5, "lemma": 2}

#: A lemma script seen fewer times in training is no class of the lemma head (hundreds of
#: one-off scripts would widen the output product for words the lexicon knows anyway).
MIN_SCRIPT_COUNT = 2

#: Best two analyses closer than this (a sum of logits) are left to choose(), on the
#: log-probabilities: the two sums round differently in float32 (logits of another
#: product, up to ~240 in size; log-probs rounded after their normaliser), which moved a
#: difference of two analyses' sums by at most 2.6e-4 on EWT dev and test with the
#: bundled model.  17 of their 50,241 tokens fall under this and cost the full rows.
NEAR_TIE = 1e-2

#: How many (word, script) pairs a lemma head keeps the lemma of (LemmaHead._applied):
#: EWT test's 4,490 tokens the lexicon does not know are 2,500 pairs.
SCRIPT_CACHE = 1 << 16

#: What LemmaHead._applied finds for a pair it has not worked out yet.
_UNSEEN = object()

#: The label of a feature head saying the feature is absent.
ABSENT = "_"


class Head:
    """A softmax classifier over `labels`, predicting the column `column`.  A UPOS head
    may carry the analyses seen in training (combinations: TagCombinations), which then
    decide the XPOS and FEATS shown with each UPOS."""

    kind = "softmax"

    def __init__(self, column: str, labels: Sequence[str],
                 combinations: TagCombinations | None = None) -> None:
        self.column = column
        self.labels = list(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.combinations = combinations

    @property
    def name(self) -> str:
        return self.column

    @property
    def size(self) -> int:
        return len(self.labels)

    def gold(self, words: Sequence[str], values: Sequence[str]) -> list[str]:
        """The gold labels of a sentence, given its words and its column's values."""
        return list(values)

    def encode(self, labels: Iterable[str]) -> np.ndarray:
        """Label ids; a label the head does not know (a missing UPOS or XPOS, "_", is none
        of its labels) gets -1: left out of the loss, an error in accuracy."""
        get = self.index.get
        return np.array([get(label, -1) for label in labels], dtype=np.int64)

    def to_meta(self) -> dict[str, Any]:
        meta = {"column": self.column, "kind": self.kind, "labels": self.labels}
        if self.combinations is not None:
            meta["combinations"] = self.combinations.to_meta()
        return meta


class TagCombinations:
    """The analyses of a treebank's tag columns seen in training: UPOS with XPOS and/or
    whole FEATS strings.  The XPOS and FEATS a model shows are the seen analysis, among
    those with the UPOS it predicts, whose columns' log-probabilities add up highest: so
    they agree with the UPOS and with each other as the treebank's do, and the UPOS is
    the UPOS head's own best (the same whatever columns are asked for).  Chosen on EWT
    dev with the 30-epoch joint model (official scorer, gold tokens): AllTags 92.64 ->
    93.02 %, XPOS 94.74 -> 94.68, UPOS and UFeats unchanged; the best whole analysis,
    UPOS included, did as well, but UPOS would then change with the columns shown.

    columns: ("upos", then "xpos" and/or "feats"); seen: (M, len(columns)) label ids of
    those columns' heads, one row per analysis."""

    def __init__(self, columns: Sequence[str], seen: Any) -> None:
        self.columns = tuple(columns)
        self.seen = np.asarray(seen, dtype=np.int64).reshape(-1, len(self.columns))
        self._by_upos: np.ndarray | None = None
        self._grouped: tuple[np.ndarray, np.ndarray] | None = None  # analyses_by_upos'

    def to_meta(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "seen": self.seen.tolist()}

    @classmethod
    def from_meta(cls, meta: Any, sizes: dict[str, int]) -> TagCombinations:
        """From a model's metadata; ValueError if broken.  sizes: each column's label count."""
        columns = meta["columns"]
        if (not isinstance(columns, list) or len(columns) < 2 or columns[0] != "upos"
                or not set(columns[1:]) <= {"xpos", "feats"} or len(set(columns)) != len(columns)
                or not all(c in sizes for c in columns)):
            raise ValueError(f"bad tag combination columns {columns!r}")
        seen = np.asarray(meta["seen"], dtype=np.int64)
        if seen.ndim != 2 or seen.shape[1] != len(columns) or (seen < 0).any() or any(
                (seen[:, i] >= sizes[c]).any() for i, c in enumerate(columns)):
            raise ValueError("tag combinations out of their heads' labels")
        return cls(columns, seen)

    def choose(self, upos: np.ndarray, log_probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{column: (n,) label ids} of the columns after UPOS: for each row, the seen
        analysis with UPOS upos[row] (ids, (n,)) whose log_probs (column: (n, labels)
        log-probabilities) add up highest; a UPOS seen in no analysis keeps each column's
        own best."""
        if not len(upos):
            return {column: np.zeros(0, dtype=np.int64) for column in self.columns[1:]}
        rows = self._candidates(int(upos.max()) + 1)[upos]  # (n, K) rows of seen, -1 after
        present = rows >= 0
        safe = np.where(present, rows, 0)
        total = np.zeros(rows.shape)
        for i, column in enumerate(self.columns[1:], 1):
            total += np.take_along_axis(log_probs[column], self.seen[safe, i], axis=1)
        total[~present] = -np.inf
        best = safe[np.arange(len(upos)), total.argmax(axis=1)]
        known = present.any(axis=1)
        return {column: np.where(known, self.seen[best, i], log_probs[column].argmax(axis=1))
                for i, column in enumerate(self.columns[1:], 1)}

    def choose_grouped(self, upos: np.ndarray, logits: Callable, log_probs: Callable
                       ) -> dict[str, np.ndarray]:
        """choose()'s result without every label's log-probability: within a row each
        column's log-softmax normaliser is one constant, the same for every analysis, so
        the analyses of a predicted UPOS compare on the sums of their labels' logits.
        logits(tokens, ids) gives those sums (len(tokens), len(ids)) for tokens (indexes
        into upos) and analyses ids ((K, columns after UPOS) label ids, as seen holds them);
        log_probs(tokens) gives {column: (len(tokens), labels) log-probabilities}, which
        decide, through choose(), the tokens whose UPOS is in no analysis and those whose
        best two analyses are within NEAR_TIE: the two ways round differently, so only a
        clear winner is taken from the logits.  One logits() call per UPOS: what
        choose_best() takes from one call for every UPOS (Network.best_summed_logits)."""
        rows, starts = self.analyses_by_upos(int(upos.max()) + 1 if len(upos) else 0)
        best = np.full(len(upos), -1, dtype=np.int64)
        margin = None  # in the sums' precision: NEAR_TIE compares as it did on them
        order = np.argsort(upos, kind="stable")
        cuts = np.flatnonzero(np.diff(upos[order])) + 1
        for tokens in np.split(order, cuts) if len(upos) else []:
            u = int(upos[tokens[0]])
            a, b = starts[u], starts[u + 1]
            if b - a == 1:
                best[tokens] = a
            elif b - a > 1:
                total = logits(tokens, self.seen[rows[a:b], 1:])
                if margin is None:
                    margin = np.full(len(upos), np.inf, dtype=total.dtype)
                best[tokens] = a + total.argmax(axis=1)  # the first of equals, as choose()
                top_two = np.partition(total, -2, axis=1)[:, -2:]
                margin[tokens] = top_two[:, 1] - top_two[:, 0]
        return self.choose_best(upos, best, np.full(len(upos), np.inf) if margin is None
                                else margin, log_probs)

    def choose_best(self, upos: np.ndarray, best: np.ndarray, margin: np.ndarray,
                    log_probs: Callable) -> dict[str, np.ndarray]:
        """choose_grouped()'s result from each token's best analysis by the sums of its
        labels' logits, found by the caller: best (n,) the index into
        analyses_by_upos()'s rows of the best of upos[token]'s analyses (-1: its UPOS has
        none), margin (n,) the best sum minus the second best (+inf for a UPOS of one
        analysis; any value where best is -1).  log_probs as choose_grouped() takes it:
        choose() decides where best is -1 or margin under NEAR_TIE, over those tokens in
        the order choose_grouped() gives them (by UPOS, then by index)."""
        rows, _ = self.analyses_by_upos(int(upos.max()) + 1 if len(upos) else 0)
        unsure = (best < 0) | (margin < NEAR_TIE)
        picked = rows[np.maximum(best, 0)] if len(rows) else np.zeros(len(upos), np.int64)
        chosen = self.seen[picked, 1:] if len(self.seen) else \
            np.zeros((len(upos), len(self.columns) - 1), dtype=np.int64)
        tokens = np.flatnonzero(unsure)
        if len(tokens):
            tokens = tokens[np.argsort(upos[tokens], kind="stable")]
            again = self.choose(upos[tokens], log_probs(tokens))
            for i, column in enumerate(self.columns[1:]):
                chosen[tokens, i] = again[column]
        return {column: chosen[:, i] for i, column in enumerate(self.columns[1:])}

    def analyses_by_upos(self, n_upos: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, starts): the rows of seen grouped by UPOS, each UPOS's in order: UPOS u's
        analyses are seen[rows[starts[u]:starts[u + 1]]] for every u < n_upos (starts
        may go on past n_upos + 1 entries)."""
        table = self._candidates(n_upos)
        if self._grouped is None or len(self._grouped[1]) != len(table) + 1:
            present = table >= 0
            self._grouped = (table[present],
                             np.concatenate([[0], np.cumsum(present.sum(axis=1))]))
        return self._grouped

    def _candidates(self, n_upos: int) -> np.ndarray:
        """(U, K): row u lists the rows of seen whose UPOS is u, then -1 (U >= n_upos)."""
        if self._by_upos is None or len(self._by_upos) < n_upos:
            size = max([n_upos] + ([int(self.seen[:, 0].max()) + 1] if len(self.seen) else []))
            groups = [np.flatnonzero(self.seen[:, 0] == u) for u in range(size)]
            width = max([len(g) for g in groups] + [1])
            table = np.full((size, width), -1, dtype=np.int64)
            for u, g in enumerate(groups):
                table[u, :len(g)] = g
            self._by_upos = table
        return self._by_upos


def tag_combinations(heads: Sequence[Head], sentences: Sequence[Any]
                     ) -> TagCombinations | None:
    """The analyses of the heads' UPOS, XPOS and whole-FEATS columns seen in training
    sentences (tokens with a value none of those heads knows left out), or None where the
    heads have UPOS and neither of the others."""
    plain = {h.column: h for h in heads if type(h) is Head}
    columns = [c for c in ("upos", "xpos", "feats") if c in plain]
    if columns[:1] != ["upos"] or len(columns) < 2:
        return None
    seen: set[tuple[int, ...]] = set()
    indexes = [plain[c].index for c in columns]
    for s in sentences:
        for values in zip(*(s.columns[c] for c in columns)):
            ids = tuple(index.get(v, -1) for index, v in zip(indexes, values))
            if min(ids) >= 0:
                seen.add(ids)
    return TagCombinations(columns, sorted(seen))


class FeatureHead(Head):
    """One morphological feature (Number, Tense, ...): its values, or ABSENT."""

    kind = "feature"

    def __init__(self, feature: str, labels: Sequence[str]) -> None:
        super().__init__("feats", labels)
        self.feature = feature

    @property
    def name(self) -> str:
        return "feats:" + self.feature

    def gold(self, words, values):
        return [split_features(v).get(self.feature, ABSENT) for v in values]

    def to_meta(self):
        return dict(super().to_meta(), feature=self.feature)


class LemmaHead(Head):
    """Lemmas through edit scripts (seqtag.lemma): its labels are script labels, and a
    lexicon of irregular (form, UPOS) pairs overrides the script where it knows the
    token."""

    kind = "lemma"

    def __init__(self, labels: Sequence[str], lexicon: Lexicon | None = None) -> None:
        super().__init__("lemma", labels)
        self.scripts = parse_labels(self.labels)
        self.lexicon = lexicon or Lexicon()
        self._fits: dict[tuple[str, int], str | None] = {}  # _applied's pairs

    def gold(self, words, values):
        return script_labels(words, values)

    def lemmas(self, words: Sequence[str], scores: np.ndarray,
               upos: Sequence[str] | None = None) -> list[str]:
        """The lemma of each word from its script scores (len(words), size): the lexicon's
        entry for (word, upos) if it has one, else scripted()'s."""
        if not len(words):
            return []
        lexicon = self.lexicon.entries if upos is not None else {}
        out = [lexicon.get(pair) for pair in zip(words, upos)] if lexicon else \
            [None] * len(words)
        todo = [k for k, lemma in enumerate(out) if lemma is None]
        if len(todo) == len(words):
            return self.scripted(words, scores)
        for k, lemma in zip(todo, self.scripted([words[k] for k in todo], scores[todo])):
            out[k] = lemma
        return out  # type: ignore[return-value]  # every None was filled

    @functools.cached_property
    def script_sets(self) -> ScriptSets:
        """Which scripts fit which words (seqtag.lemma.ScriptSets), made on first use."""
        return ScriptSets(self.scripts)

    def scripted(self, words: Sequence[str], scores: np.ndarray) -> list[str]:
        """The lemma of each word from its script scores (len(words), size): that of the
        best-scoring script that fits the word (the first of equal scores), else the word
        itself (no script fits it)."""
        return self.lemmas_of_scripts(words, best_fitting(self.script_sets, words, scores))

    def lemmas_of_scripts(self, words: Sequence[str], script_ids: np.ndarray) -> list[str]:
        """The lemma each word's script gives it (script ids that fit their words, as
        best_fitting and Network.best_fitting_scripts choose them), the word itself
        where the id is -1."""
        out = self._applied(words, script_ids.tolist())
        for k in [k for k, lemma in enumerate(out) if lemma is None]:  # -1: none fits
            out[k] = words[k]
        return out  # type: ignore[return-value]  # every None was filled

    def _applied(self, words: Sequence[str], script_ids: Sequence[int]
                 ) -> list[str | None]:
        """apply_script(word, its script) of each (word, script id) pair, each pair worked
        out once (a text repeats its words, and the same word mostly gets the same
        script): a dict lookup is ~6x cheaper than applying the script.  The pairs kept
        start over past SCRIPT_CACHE, as the memo does (seqtag.memo)."""
        cache = self._fits
        if len(cache) > SCRIPT_CACHE:
            cache = self._fits = {}
        pairs = list(zip(words, script_ids))
        found = list(map(cache.get, pairs, repeat(_UNSEEN)))
        scripts = self.scripts
        for k in [k for k, lemma in enumerate(found) if lemma is _UNSEEN]:
            word, j = pairs[k]
            found[k] = cache[pairs[k]] = apply_script(word, scripts[j]) if j >= 0 else None
        return found

    def lexicon_table(self, upos_labels: Sequence[str]
                      ) -> tuple[dict[str, int], np.ndarray, list[str]]:
        """The lexicon as arrays over a UPOS head's labels, for looking up a batch's
        tokens at once: ({form: row}, table (rows + 1, len(upos_labels)) of lemma ids, -1
        where the lexicon has no entry, LEMMA_IS_FORM where its lemma is the form itself,
        the list of lemmas the other ids index).  The table's last row is all -1: row -1,
        a form the lexicon does not know, looks up there (even in an empty lexicon).  Made
        on first use for those labels, then kept."""
        key = tuple(upos_labels)
        if getattr(self, "_table_key", None) != key:
            column = {label: i for i, label in enumerate(upos_labels)}
            rows: dict[str, int] = {}
            lemma_ids: dict[str, int] = {}
            cells = [(rows.setdefault(form, len(rows)), column[upos],
                      LEMMA_IS_FORM if lemma == form
                      else lemma_ids.setdefault(lemma, len(lemma_ids)))
                     for (form, upos), lemma in self.lexicon.entries.items()
                     if upos in column]  # another UPOS is never predicted
            table = np.full((len(rows) + 1, len(upos_labels)), -1, dtype=np.int32)
            if cells:
                r, c, ids = zip(*cells)
                table[list(r), list(c)] = ids
            self._table = (rows, table, list(lemma_ids))
            self._table_key = key
        return self._table

    def to_meta(self, arrays=None, name="lemma"):
        """With `arrays` (a model file's), the lexicon goes there under name.lexicon."""
        return dict(super().to_meta(), lexicon=self.lexicon.to_meta(arrays, name + ".lexicon"))


#: LemmaHead.lexicon_table's id of a lemma that is the form itself (4 tokens in 5 on EWT
#: test): the tagger gives the token's own string, whose object was just read, instead of
#: an equal one of the lexicon's, scattered in memory (tagging every column touched each
#: lemma's object: 2 ms a pass over EWT test).
LEMMA_IS_FORM = -2


def best_fitting(sets: ScriptSets, words: Sequence[str], scores: np.ndarray) -> np.ndarray:
    """(len(words),) int64: each word's best-scoring script among those that fit it (its
    row of scores (len(words), scripts): argmax's choice there, the first of equals or
    the first NaN), -1 where none fits.  The rule LemmaHead.scripted decodes by, from
    every score; Network.best_fitting_scripts gives the same from the fitting scripts'
    scores alone."""
    row_sets = sets.ids(words)
    return best_fitting_among(scores, row_sets, *sets.arrays())


def best_fitting_among(scores: np.ndarray, row_sets: np.ndarray, starts: np.ndarray,
                       members: np.ndarray) -> np.ndarray:
    """best_fitting's choice, each row's scripts given by its set (row_sets (n,); set g's
    scripts members[starts[g]:starts[g + 1]], as ScriptSets.arrays() gives them)."""
    best = np.full(len(row_sets), -1, dtype=np.int64)
    order = np.argsort(row_sets, kind="stable")
    cuts = np.flatnonzero(np.diff(row_sets[order])) + 1
    for rows in np.split(order, cuts) if len(order) else ():
        g = row_sets[rows[0]]
        ids = members[starts[g]:starts[g + 1]]
        if len(ids):
            best[rows] = ids[scores[np.ix_(rows, ids)].argmax(axis=1)]
    return best


def script_labels(words: Sequence[str], lemmas: Sequence[str]) -> list[str]:
    """The edit script label of each (word, lemma) pair; "_" where the lemma is missing
    ("_" for a word that is not itself "_")."""
    return [_pair_label(w, v) if v != "_" or w == "_" else "_"
            for w, v in zip(words, lemmas)]


@functools.lru_cache(maxsize=1 << 17)  # a corpus repeats its pairs: EWT train's 204K
def _pair_label(form: str, lemma: str) -> str:  # tokens are 25K pairs
    return script_label(edit_script(form, lemma))


def split_features(feats: str) -> dict[str, str]:
    """{feature: value} of a FEATS string ("_": none)."""
    if feats == "_" or not feats:
        return {}
    out = {}
    for item in feats.split("|"):
        name, sep, value = item.partition("=")
        if sep:
            out[name] = value
    return out


def join_features(features: dict[str, str]) -> str:
    """A FEATS string in UD's order (feature names sorted case-insensitively), "_" if
    empty."""
    if not features:
        return "_"
    return "|".join(f"{k}={features[k]}" for k in sorted(features, key=str.lower))


def _by_frequency(counts: Counter) -> list[str]:
    return sorted(counts, key=lambda label: (-counts[label], label))


def build_heads(sentences: Sequence[Any], columns: Sequence[str],
                feats: str = "whole") -> list[Head]:
    """The heads of `columns` (in COLUMNS order) from training sentences whose .columns
    hold those columns' values.  feats: "whole" (one head over FEATS strings) or "split"
    (one head per feature)."""
    heads: list[Head] = []
    for column in sorted(columns, key=list(COLUMNS).index):
        if column == "lemma":
            counts: Counter = Counter()
            for s in sentences:
                counts.update(script_labels(s.words, s.columns["lemma"]))
            counts.pop("_", None)
            labels = [label for label in _by_frequency(counts)
                      if counts[label] >= MIN_SCRIPT_COUNT] or _by_frequency(counts)[:1]
            heads.append(LemmaHead(labels, lemma_lexicon(sentences)))
        elif column == "feats" and feats == "split":
            values: dict[str, Counter] = {}
            for s in sentences:
                for v in s.columns["feats"]:
                    for name, value in split_features(v).items():
                        values.setdefault(name, Counter())[value] += 1
            for name in sorted(values, key=str.lower):
                heads.append(FeatureHead(name, [ABSENT] + _by_frequency(values[name])))
        else:
            counts = Counter(v for s in sentences for v in s.columns[column] if v != "_"
                             or column == "feats")
            heads.append(Head(column, _by_frequency(counts)))
    combinations = tag_combinations(heads, sentences)
    if combinations is not None:
        next(h for h in heads if h.column == "upos").combinations = combinations
    return heads


def lemma_lexicon(sentences: Sequence[Any]) -> Lexicon:
    """The lexicon of training sentences with LEMMA (and UPOS) columns: the (form, UPOS)
    pairs that always had the same lemma (a missing lemma, "_", left out)."""
    triples = []
    for s in sentences:
        upos = s.columns.get("upos") or ["_"] * len(s.words)
        triples += [t for t in zip(s.words, upos, s.columns["lemma"])
                    if t[2] != "_" or t[0] == "_"]
    return Lexicon.build(triples)


def encode_targets(heads: Sequence[Head], sentences: Sequence[Any]) -> list[np.ndarray]:
    """Each sentence's gold label ids (len, len(heads)), -1 where unknown: from its
    .columns when it has them (CoNLL-U), else from its .tags (for a head of one column)."""
    out = []
    for s in sentences:
        ids = np.empty((len(s.words), len(heads)), dtype=np.int64)
        for k, head in enumerate(heads):
            values = s.columns[head.column] if s.columns else s.tags
            ids[:, k] = head.encode(head.gold(s.words, values))
        out.append(ids)
    return out


def heads_to_meta(heads: Sequence[Head], arrays: dict | None = None, prefix: str = ""
                  ) -> list[dict[str, Any]]:
    """The heads' metadata; with `arrays` (those a model file will hold), a lemma head's
    lexicon goes there, under prefix + "lemma.lexicon" (model format 2)."""
    return [head.to_meta(arrays, prefix + "lemma") if isinstance(head, LemmaHead)
            else head.to_meta() for head in heads]


def heads_from_meta(meta: Any, arrays: dict | None = None) -> list[Head]:
    """Heads from a model's metadata (and arrays: the model file's, where a lemma lexicon
    may be); ValueError (or KeyError, TypeError) if broken."""
    if not isinstance(meta, list) or not meta:
        raise ValueError("the heads are not a non-empty list")
    heads: list[Head] = []
    for item in meta:
        kind, labels = item["kind"], item["labels"]
        if not isinstance(labels, list) or not labels or not all(
                isinstance(label, str) for label in labels):
            raise ValueError("a head's labels are not a non-empty list of strings")
        if kind == "softmax":
            if item["column"] not in COLUMNS:
                raise ValueError(f"unknown column {item['column']!r}")
            heads.append(Head(item["column"], labels))
        elif kind == "feature":
            heads.append(FeatureHead(str(item["feature"]), labels))
        elif kind == "lemma":
            heads.append(LemmaHead(labels, Lexicon.from_meta(item.get("lexicon", []), arrays)))
        else:
            raise ValueError(f"unknown head kind {kind!r}")
    # as build_heads makes them: one head a column (FEATS: one, or one a feature), in
    # COLUMNS order; decoding takes the first head for the model's tags
    order = [list(COLUMNS).index(h.column) for h in heads]
    plain = [h.column for h in heads if not isinstance(h, FeatureHead)]
    if order != sorted(order) or len(set(plain)) != len(plain) or (
            "feats" in plain and any(isinstance(h, FeatureHead) for h in heads)):
        raise ValueError("the heads are not one a column in UPOS, XPOS, FEATS, LEMMA order")
    for head, item in zip(heads, meta):
        if "combinations" in item:
            if head.column != "upos" or type(head) is not Head:
                raise ValueError("tag combinations on a head that is not UPOS")
            sizes = {h.column: h.size for h in heads if type(h) is Head}
            head.combinations = TagCombinations.from_meta(item["combinations"], sizes)
    return heads


def model_columns(heads: Sequence[Head]) -> list[str]:
    """The columns the heads predict, in COLUMNS order."""
    found = {head.column for head in heads}
    return [c for c in COLUMNS if c in found]


def decode_column(column: str, placed: Sequence[tuple[Head, int, int]], scores: np.ndarray,
                  words: Sequence[str], upos: Sequence[str] | None = None) -> list[str]:
    """One sentence's values of `column` from its scores (len(words), columns), where
    each (head, start, stop) of `placed` has its labels' scores in [start, stop)
    (log-probabilities or logits: the best label is the same); upos: the sentence's
    predicted UPOS, for the lemma lexicon.  XPOS and FEATS: the seen analysis that goes
    best with the predicted UPOS where the UPOS head has TagCombinations and every
    column of them is placed (as predict_columns gives them), else each one's best."""
    features = [(head, start, stop) for head, start, stop in placed
                if isinstance(head, FeatureHead)]
    if column == "feats" and features:
        found: list[dict[str, str]] = [{} for _ in words]
        for head, start, stop in features:
            assert isinstance(head, FeatureHead)
            for k, j in enumerate(scores[:, start:stop].argmax(axis=1).tolist()):
                if head.labels[j] != ABSENT:
                    found[k][head.feature] = head.labels[j]
        return [join_features(f) for f in found]
    head, start, stop = next(p for p in placed if p[0].column == column)
    part = scores[:, start:stop]
    if isinstance(head, LemmaHead):
        return head.lemmas(words, part, upos)
    plain = {h.column: (h, a, b) for h, a, b in placed if type(h) is Head}
    combinations = plain["upos"][0].combinations if "upos" in plain else None
    if (combinations is not None and column in combinations.columns[1:]
            and all(c in plain for c in combinations.columns)):
        from ._core import log_softmax_rows  # what predict_columns runs

        def log_probs(c):
            _, a, b = plain[c]
            x = np.array(scores[:, a:b])  # a contiguous copy: log-softmaxed in place
            log_softmax_rows(x)
            return x
        _, a, b = plain["upos"]
        chosen = combinations.choose(scores[:, a:b].argmax(axis=1),
                                     {c: log_probs(c) for c in combinations.columns[1:]})
        return [head.labels[j] for j in chosen[column].tolist()]
    return [head.labels[j] for j in part.argmax(axis=1).tolist()]
