"""The sentence boundaries a model's learned front end misses and adds on the raw text of a
CoNLL-U file (its `# text` lines, grouped into paragraphs as the front end's training and
dev scoring group them), counted by the character before the boundary, each with its
context.

    python bench/sentence_errors.py MODEL ../shared/data/ud-french-sequoia/fr_sequoia-ud-dev.conllu

Paragraph ends are left out: a paragraph always ends a sentence.
"""

import argparse
import collections

from seqtag import Tagger
from seqtag.segment import _DevSet, _span_sets, read_training_text


def boundary_kind(char):
    if char.isdigit():
        return "a digit"
    if char.isalpha():
        return "a letter"
    return repr(char)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("conllu")
    parser.add_argument("--context", type=int, default=50, help="characters shown each side")
    args = parser.parse_args()
    front_end = Tagger.load(args.model).frontend
    if front_end.kind != "learned":
        parser.error(f"{args.model} has no learned front end")
    dev = _DevSet(read_training_text(args.conllu))
    scored = front_end._score(dev.paragraphs)
    text, bounds, spans = front_end._decode(scored)
    paragraph_ends = {end for _, end in bounds}
    gold = set((dev.sentences % (1 << 32)).tolist()) - paragraph_ends
    found = set((_span_sets(spans)[1] % (1 << 32)).tolist()) - paragraph_ends
    missed, added = sorted(gold - found), sorted(found - gold)
    scores = dev.score(front_end, scored)
    print(f"sentence F1 {scores['sentences']:.2%} (sentence-end bias {front_end.sentence_bias:g}); "
          f"{len(gold)} boundaries inside paragraphs: {len(missed)} missed, {len(added)} added")
    for name, ends in (("missed", missed), ("added", added)):
        kinds = collections.Counter(boundary_kind(text[e - 1]) for e in ends)
        print(f"{name}: " + ", ".join(f"{n} after {k}" for k, n in kinds.most_common()))
    for name, ends in (("missed", missed), ("added", added)):
        print(f"--- {name}")
        for e in ends:
            before = text[max(0, e - args.context):e].replace("\n", " | ")
            after = text[e:e + args.context].replace("\n", " | ")
            print(f"  {before} ‖ {after}")


if __name__ == "__main__":
    main()
