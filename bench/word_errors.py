"""The word-level errors of a system's CoNLL-U from raw text against the gold file, by kind,
with what each kind costs in the official scorer's Words F1 (and UPOS F1), and examples.

    python bench/word_errors.py GOLD.conllu SYSTEM.conllu [--examples 15]
        [--gold-tokens TAGGED.conllu]

The system file is what bench/raw_text.py scores (its .tree.conllu).  A gold token is
  boundary        no system token has its span (cut or joined wrongly)
  mwt-missed      a multiword token the system left as one word
  mwt-extra       a plain token the system expanded
  mwt-words       a multiword token expanded into other words
  ok              same span, same words
and a system token with no gold token of its span counts as boundary too.  A kind's cost is
how much Words F1 would gain if its words were all right.  With --gold-tokens (the same
model's output on the gold tokens, e.g. `seqtag tag -i GOLD --format conllu`), the UPOS of
the words aligned in both is compared: which raw-text words lose a tag the gold-token run
gets right, by whether their sentence is the gold one.
"""

import argparse
import bisect
import collections
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_scorer  # noqa: E402


def token_groups(ud):
    """{(start, end): [words]} of a scorer's UDRepresentation: each surface token's words."""
    groups = collections.OrderedDict()
    for w in ud.words:
        groups.setdefault((w.span.start, w.span.end), []).append(w)
    return groups


def forms(words, scorer):
    return [w.columns[scorer.FORM].lower() for w in words]


def token_kind(gold_words, system_words, scorer):
    if system_words is None:
        return "boundary"
    gold_mwt, system_mwt = len(gold_words) > 1, len(system_words) > 1
    if gold_mwt and not system_mwt:
        return "mwt-missed"
    if system_mwt and not gold_mwt:
        return "mwt-extra"
    if forms(gold_words, scorer) != forms(system_words, scorer):
        return "mwt-words"
    return "ok"


def text_of(ud, span):
    return "".join(ud.characters[span[0]:span[1]])


def context(ud, span, width=25):
    before = "".join(ud.characters[max(0, span[0] - width):span[0]])
    after = "".join(ud.characters[span[1]:span[1] + width])
    return f"{before}[{text_of(ud, span)}]{after}"


KINDS = ("boundary", "mwt-missed", "mwt-extra", "mwt-words", "ok")


@dataclasses.dataclass
class Counts:
    """Words of one kind of gold token: gold, system, aligned, aligned with the right UPOS."""

    gold: int = 0
    system: int = 0
    aligned: int = 0
    upos: int = 0


def count_by_kind(scorer, gold, system, gold_tokens, system_tokens, matched):
    """({kind: Counts}, {kind: example lines}, {id(gold word): kind})."""
    counts = collections.defaultdict(Counts)
    examples = collections.defaultdict(list)
    kind_of_gold = {}
    for span, words in gold_tokens.items():
        system_words = system_tokens.get(span)
        kind = token_kind(words, system_words, scorer)
        row = counts[kind]
        row.gold += len(words)
        row.system += len(system_words or [])
        for w in words:
            kind_of_gold[id(w)] = kind
            if id(w) in matched:
                row.aligned += 1
                row.upos += w.columns[scorer.UPOS] == matched[id(w)].columns[scorer.UPOS]
        if kind != "ok":
            examples[kind].append(
                f"{context(gold, span)}  gold {forms(words, scorer)}"
                + (f" system {forms(system_words, scorer)}" if system_words else ""))
    for span, words in system_tokens.items():
        if span not in gold_tokens:
            counts["boundary"].system += len(words)
            examples["boundary (system token)"].append(context(system, span))
    return counts, examples, kind_of_gold


def print_costs(evaluation, counts):
    """The table of kinds: a kind's cost is the F1 gained if its words were all right."""
    total = Counts(*(sum(getattr(c, f) for c in counts.values())
                     for f in ("gold", "system", "aligned", "upos")))

    def f1(hits, system):
        return 100 * 2 * hits / (total.gold + system)

    print(f"Words F1 {100 * evaluation['Words'].f1:.2f} (here "
          f"{f1(total.aligned, total.system):.2f}), UPOS F1 {100 * evaluation['UPOS'].f1:.2f} "
          f"(here {f1(total.upos, total.system):.2f}); {total.gold} gold words, "
          f"{total.system} system words")
    print("| kind | gold words | system words | aligned | Words F1 cost | UPOS F1 cost |")
    print("|---|---|---|---|---|---|")
    for kind in KINDS:
        c = counts.get(kind, Counts())
        system = total.system - c.system + c.gold
        words = f1(total.aligned + c.gold - c.aligned, system) - f1(total.aligned, total.system)
        upos = f1(total.upos + c.gold - c.upos, system) - f1(total.upos, total.system)
        print(f"| {kind} | {c.gold} | {c.system} | {c.aligned} | {words:.2f} | {upos:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gold")
    parser.add_argument("system")
    parser.add_argument("--examples", type=int, default=15)
    parser.add_argument("--gold-tokens", help="the model's output on the gold tokens")
    args = parser.parse_args()
    scorer = load_scorer()
    with open(args.gold, encoding="utf-8") as g, open(args.system, encoding="utf-8") as s:
        gold, system = scorer.load_conllu(g), scorer.load_conllu(s)
    gold_tokens, system_tokens = token_groups(gold), token_groups(system)
    matched = aligned_words(gold_tokens, system_tokens, scorer)
    counts, examples, kind_of_gold = count_by_kind(scorer, gold, system, gold_tokens,
                                                   system_tokens, matched)
    print_costs(scorer.evaluate(gold, system), counts)
    for kind, lines in examples.items():
        print(f"--- {kind}: {len(lines)}")
        for line in lines[:args.examples]:
            print("  " + line.replace("\n", " "))
    if args.gold_tokens:
        compare_upos(scorer, gold, system, matched, kind_of_gold, args.gold_tokens)


def aligned_words(gold_tokens, system_tokens, scorer):
    """{id(gold word): system word} for the tokens of the same span, their words matched
    as the scorer matches a multiword span's (longest common subsequence of lowercased
    forms); the scorer may also match words of multiword spans that overlap without being
    equal, so the Words F1 here can be a little lower than its own."""
    matched = {}
    for span, gold_words in gold_tokens.items():
        system_words = system_tokens.get(span)
        if system_words is None:
            continue
        for g, s in _lcs_pairs(forms(gold_words, scorer), forms(system_words, scorer)):
            matched[id(gold_words[g])] = system_words[s]
    return matched


def _lcs_pairs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = (table[i + 1][j + 1] + 1 if a[i] == b[j]
                           else max(table[i + 1][j], table[i][j + 1]))
    pairs, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def compare_upos(scorer, gold, system, matched, kind_of_gold, tagged_path):
    """UPOS of the raw-text run against the gold-token run on the same gold words."""
    with open(tagged_path, encoding="utf-8") as f:
        tagged = scorer.load_conllu(f)
    if len(tagged.words) != len(gold.words):
        sys.exit(f"{tagged_path} does not have the gold file's words")
    system_sentences = {(s.start, s.end) for s in system.sentences}
    # gold sentences by start: whether the system has the same one
    starts = [s.start for s in gold.sentences]
    found = [(s.start, s.end) in system_sentences for s in gold.sentences]
    counts = collections.Counter()
    for gw, tw in zip(gold.words, tagged.words):
        sw = matched.get(id(gw))
        if sw is None:
            continue
        same = found[bisect.bisect_right(starts, gw.span.start) - 1]
        gt = gw.columns[scorer.UPOS]
        raw_ok = sw.columns[scorer.UPOS] == gt
        tok_ok = tw.columns[scorer.UPOS] == gt
        form_same = sw.columns[scorer.FORM] == gw.columns[scorer.FORM]
        key = ("same sentence" if same else "other sentence",
               "same form" if form_same else "form differs (case)",
               kind_of_gold.get(id(gw)))
        counts[key + ("words",)] += 1
        counts[key + ("raw wrong, gold-token right",)] += raw_ok < tok_ok
        counts[key + ("raw right, gold-token wrong",)] += raw_ok > tok_ok
    groups = sorted({k[:3] for k in counts})
    print("| sentence | form | token kind | aligned words | lost in raw | gained in raw |")
    print("|---|---|---|---|---|---|")
    for key in groups:
        print(f"| {' | '.join(key)} | {counts[key + ('words',)]} | "
              f"{counts[key + ('raw wrong, gold-token right',)]} | "
              f"{counts[key + ('raw right, gold-token wrong',)]} |")


if __name__ == "__main__":
    main()
