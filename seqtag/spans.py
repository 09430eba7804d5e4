"""Spans (named entities, chunks) in tag sequences: finding them, scoring them, and moving
between tagging schemes.

Tags are ``O`` or ``P-TYPE`` with the prefix P one of B (begin), I (inside), E (end, IOBES)
and S (single, IOBES).  Two ways to read spans, those of seqeval 1.2.2:

- ``default`` (conlleval's): every tag sequence means something.  A span starts at B or S,
  at an I or E that does not continue a span of its type, and at any change of type; it
  ends before B, S, O, a change of type, and after E or S.  So ``O I-PER I-PER`` is one
  PER span (IOB1 reading), and ``B-PER I-LOC`` two.
- ``strict``: only well-formed spans of one scheme count: in IOB2 ``B-X (I-X)*``, in
  IOBES ``S-X`` and ``B-X (I-X)* E-X``; an I-X that continues nothing is no span.

Scores are seqeval's: a predicted span is right when its type, start and end are the gold
span's; per type precision, recall and F1 (0 where a denominator is 0), micro averages
over all spans and macro averages of the per-type figures over the types found in gold or
predictions.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np

__all__ = ["SCHEMES", "MODES", "Span", "split_tag", "spans", "strict_spans", "span_scores",
           "looks_like_spans", "tagset_scheme", "tag_problem", "iob1_to_iob2", "to_scheme", "detect_scheme",
           "transition_constraints"]

#: Tagging schemes seqtag reads and writes.
SCHEMES = ("IOB1", "IOB2", "IOBES")
#: The ways of reading spans out of tags (seqeval's modes).
MODES = ("default", "strict")

#: (type, start, end): a span over tokens start .. end - 1 of a sentence.
Span = tuple[str, int, int]


def split_tag(tag: str) -> tuple[str, str]:
    """(prefix, type) as seqeval's default mode reads a tag: the first character, and what
    follows the first '-' after it ('_' if nothing): 'B-PER' -> ('B', 'PER'), 'O' -> ('O', '_')."""
    return tag[:1], tag[1:].split("-", 1)[-1] or "_"


def _ends(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev not in ("O", ".") and prev_type != cur_type


def _starts(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    if cur in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and cur in ("E", "I"):
        return True
    return cur not in ("O", ".") and prev_type != cur_type


def spans(tags: Sequence[str]) -> list[Span]:
    """The spans of one sentence's tags, read as conlleval (and seqeval's default mode) do."""
    found = []
    prev, prev_type, begin = "O", "_", 0
    for i, tag in enumerate([*tags, "O"]):
        cur, cur_type = split_tag(tag)
        if _ends(prev, prev_type, cur, cur_type):
            found.append((prev_type, begin, i))
        if _starts(prev, prev_type, cur, cur_type):
            begin = i
        prev, prev_type = cur, cur_type
    return found


_STRICT_PREFIXES = {"IOB2": "BIO", "IOBES": "BIESO"}


def strict_spans(tags: Sequence[str], scheme: str = "IOB2") -> list[Span]:
    """The well-formed spans of one sentence's tags in scheme (IOB2 or IOBES), as seqeval's
    strict mode finds them; ValueError for a prefix the scheme does not have."""
    if scheme not in _STRICT_PREFIXES:
        raise ValueError(f"strict span reading needs scheme IOB2 or IOBES, not {scheme!r}")
    allowed = _STRICT_PREFIXES[scheme]
    parsed = []
    for tag in tags:
        if not tag or tag[0] not in allowed:
            raise ValueError(f"tag {tag!r} is not in {scheme}")
        parsed.append((tag[0], tag[1:].strip("-") or "_"))
    found = []
    i, n = 0, len(parsed)
    while i < n:
        prefix, kind = parsed[i]
        if prefix == "S" and scheme == "IOBES":
            found.append((kind, i, i + 1))
            i += 1
            continue
        if prefix != "B":
            i += 1
            continue
        j = i + 1
        last = "B"
        while j < n and parsed[j][1] == kind and parsed[j][0] in ("I", "E") and last != "E":
            last = parsed[j][0]
            j += 1
        if scheme == "IOB2" or last == "E":
            found.append((kind, i, j))
        i = j
    return found


def span_scores(gold: Iterable[Sequence[str]], predicted: Iterable[Sequence[str]],
                mode: str = "default", scheme: str = "IOB2") -> dict:
    """Span precision, recall and F1 of predicted tag sequences against gold ones (one tag
    list per sentence, in the same order), seqeval's figures:
    {"per_type": {type: {"precision", "recall", "f1", "support"}}, "micro": {...},
    "macro": {...}, "mode": mode, "scheme": scheme or None}; support is the gold spans."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")

    def read(tags):
        return spans(tags) if mode == "default" else strict_spans(tags, scheme)

    gold_count, pred_count, hits = Counter(), Counter(), Counter()
    for gold_tags, pred_tags in zip(gold, predicted, strict=True):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(f"{len(pred_tags)} predicted tags for {len(gold_tags)} gold tags")
        g, p = set(read(gold_tags)), set(read(pred_tags))
        gold_count.update(s[0] for s in g)
        pred_count.update(s[0] for s in p)
        hits.update(s[0] for s in g & p)
    per_type = {kind: _prf(hits[kind], pred_count[kind], gold_count[kind])
                for kind in sorted(set(gold_count) | set(pred_count))}
    micro = _prf(sum(hits.values()), sum(pred_count.values()), sum(gold_count.values()))
    rows = list(per_type.values())
    macro = {key: (sum(r[key] for r in rows) / len(rows) if rows else 0.0)
             for key in ("precision", "recall", "f1")}
    macro["support"] = micro["support"]
    return {"per_type": per_type, "micro": micro, "macro": macro, "mode": mode,
            "scheme": scheme if mode == "strict" else None}


def _prf(hits: int, predicted: int, gold: int) -> dict:
    p = hits / predicted if predicted else 0.0
    r = hits / gold if gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "support": gold}


# ---------------------------------------------------------------- tag sets and schemes


def tag_problem(tag: str) -> str | None:
    """Why a tag is not O or P-TYPE with P in B, I, E, S (None if it is)."""
    if tag == "O":
        return None
    prefix, dash, kind = tag.partition("-")
    if prefix in ("B", "I", "E", "S") and dash and not kind:
        return f"tag {tag!r} has no type after {prefix + '-'!r}"
    if prefix in ("B", "I", "E", "S") and dash:
        return None
    return (f"tag {tag!r} is in no known span scheme: expected O or B-, I-, E-, S- "
            "followed by a type (IOB1, IOB2 or IOBES)")


def looks_like_spans(tags: Iterable[str]) -> bool:
    """Whether a tag set is a span tag set (every tag O or P-TYPE, P in B I E S, and at
    least one span tag): what `--output auto` takes a CRF for."""
    tags = set(tags)
    return bool(tags - {"O"}) and all(tag_problem(t) is None for t in tags)


def tagset_scheme(tags: Iterable[str]) -> str | None:
    """The scheme a model's span tags are decoded in: IOBES if any E- or S- tag, else
    IOB2 (IOB1 corpora are rewritten in IOB2 for training); None for other tag sets."""
    tags = list(tags)
    if not looks_like_spans(tags):
        return None
    return "IOBES" if any(t[:2] in ("E-", "S-") for t in tags) else "IOB2"


def detect_scheme(sentences_tags: Iterable[Sequence[str]]) -> str:
    """IOBES if any E- or S- tag, else IOB1 if some span opens with I- (at the start, after
    O or after another type) -- IOB1 writes B- only between two spans of one type --,
    else IOB2."""
    iob1 = False
    for tags in sentences_tags:
        prev = "O"
        for tag in tags:
            if tag[:2] in ("E-", "S-"):
                return "IOBES"
            if tag.startswith("I-") and not (prev[:2] in ("B-", "I-") and prev[2:] == tag[2:]):
                iob1 = True
            prev = tag
    return "IOB1" if iob1 else "IOB2"


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """IOB1 (or ill-formed IOB2) to IOB2: an I-X that continues no X span becomes B-X.
    The spans, read in the default mode, stay the same."""
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("I-") and not (prev[:2] in ("B-", "I-") and prev[2:] == tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def to_scheme(tags: Sequence[str], scheme: str) -> list[str]:
    """A sentence's tags rewritten in scheme (IOB2 or IOBES) with the same spans as the
    default mode reads them."""
    if scheme not in ("IOB2", "IOBES"):
        raise ValueError(f"can write IOB2 or IOBES, not {scheme!r}")
    out = ["O"] * len(tags)
    for kind, start, end in spans(tags):
        if scheme == "IOB2":
            out[start] = "B-" + kind
            for i in range(start + 1, end):
                out[i] = "I-" + kind
        elif end - start == 1:
            out[start] = "S-" + kind
        else:
            out[start], out[end - 1] = "B-" + kind, "E-" + kind
            for i in range(start + 1, end - 1):
                out[i] = "I-" + kind
    return out


def transition_constraints(tags: Sequence[str], scheme: str
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks over a tag list (a model's tag ids) for constrained Viterbi decoding,
    so no ill-formed span comes out: (allowed (C, C) [from, to], allowed first tags (C,),
    allowed last tags (C,)).  IOB2: I-X only after B-X or I-X.  IOBES: additionally I-X
    and E-X only after B-X or I-X, B-X and I-X only before I-X or E-X, and no sentence
    ends in B- or I-.  Tags outside the scheme are treated like O."""
    C = len(tags)
    parts = [t.split("-", 1) if t[:2] in ("B-", "I-", "E-", "S-") else ("O", "")
             for t in tags]
    allowed = np.ones((C, C), dtype=bool)
    first = np.ones(C, dtype=bool)
    last = np.ones(C, dtype=bool)
    for j, (p, kind) in enumerate(parts):
        continues = p == "I" or (scheme == "IOBES" and p == "E")
        if continues:
            first[j] = False
            for i, (q, prev_kind) in enumerate(parts):
                allowed[i, j] = q in ("B", "I") and prev_kind == kind
        if scheme == "IOBES" and p in ("B", "I"):
            last[j] = False
            for k, (q, next_kind) in enumerate(parts):
                allowed[j, k] = q in ("I", "E") and next_kind == kind
    return allowed, first, last
