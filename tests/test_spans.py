"""Span reading and scores (seqtag.spans) against seqeval 1.2.2, both modes, on random tag
sequences and on UNER English-EWT; scheme conversions and decoding constraints."""

import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import import_seqeval, shared_dir
from seqtag import spans

seqeval = import_seqeval()
from seqeval.metrics import v1  # noqa: E402
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support  # noqa: E402
from seqeval.metrics.sequence_labeling import get_entities  # noqa: E402
from seqeval.scheme import IOB2, IOBES  # noqa: E402

TYPES = ["PER", "LOC", "X-Y"]
ANY_TAG = st.sampled_from(["O"] + [f"{p}-{t}" for p in "BIES" for t in TYPES])
IOB2_TAG = st.sampled_from(["O"] + [f"{p}-{t}" for p in "BI" for t in TYPES])
IOBES_TAG = ANY_TAG


def seqeval_scores(gold, pred, **kw):
    """seqeval's per-type, micro and macro (precision, recall, f1, support); its default
    mode is sequence_labeling's function, its strict mode v1's with a scheme."""
    score = v1.precision_recall_fscore_support if kw else precision_recall_fscore_support
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-division warnings
        per = score(gold, pred, average=None, **kw)
        micro = score(gold, pred, average="micro", **kw)
        macro = score(gold, pred, average="macro", **kw)
    if len(per[0]) == 0:  # no span anywhere: seqeval's macro is NaN, ours 0
        macro = (0.0, 0.0, 0.0, None)
    return per, micro, macro


def assert_same_scores(gold, pred, mode="default", scheme="IOB2"):
    kw = {} if mode == "default" else {"scheme": {"IOB2": IOB2,
                                                                      "IOBES": IOBES}[scheme]}
    ours = spans.span_scores(gold, pred, mode, scheme)
    (p, r, f, s), micro, macro = seqeval_scores(gold, pred, **kw)
    rows = list(ours["per_type"].values())
    assert [x["precision"] for x in rows] == pytest.approx(list(p))
    assert [x["recall"] for x in rows] == pytest.approx(list(r))
    assert [x["f1"] for x in rows] == pytest.approx(list(f))
    assert [x["support"] for x in rows] == list(s)
    for ours_avg, theirs in ((ours["micro"], micro), (ours["macro"], macro)):
        assert [ours_avg["precision"], ours_avg["recall"], ours_avg["f1"]] == pytest.approx(
            list(theirs[:3]))
    return ours


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY_TAG, max_size=12))
def test_default_spans_are_seqevals(tags):
    expected = [(t, s, e + 1) for t, s, e in get_entities(tags)]
    assert sorted(spans.spans(tags)) == sorted(expected)



def pairs_of(tag):
    return st.lists(st.integers(1, 8), min_size=1, max_size=6).flatmap(
        lambda lengths: st.tuples(*[st.tuples(st.lists(tag, min_size=n, max_size=n),
                                              st.lists(tag, min_size=n, max_size=n))
                                    for n in lengths]))


@settings(max_examples=100, deadline=None)
@given(pairs_of(ANY_TAG))
def test_default_mode_scores_are_seqevals(pairs):
    assert_same_scores([g for g, _ in pairs], [p for _, p in pairs])


@settings(max_examples=100, deadline=None)
@given(pairs_of(IOB2_TAG))
def test_strict_iob2_scores_are_seqevals(pairs):
    assert_same_scores([g for g, _ in pairs], [p for _, p in pairs], "strict", "IOB2")


@settings(max_examples=100, deadline=None)
@given(pairs_of(IOBES_TAG))
def test_strict_iobes_scores_are_seqevals(pairs):
    assert_same_scores([g for g, _ in pairs], [p for _, p in pairs], "strict", "IOBES")


def uner_tags(path):
    sentences, tags = [], []
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            if tags:
                sentences.append(tags)
            tags = []
        elif not line.startswith("#"):
            tags.append(line.rstrip("\n").split("\t")[2])
    return sentences


def test_uner_scores_are_seqevals_in_both_modes(uner_dir):
    gold = uner_tags(uner_dir / "en_ewt-ud-test.iob2")
    rng = random.Random(0)
    kinds = ["PER", "ORG", "LOC"]
    # predictions: gold with 5 % of the tags replaced (ill-formed spans included)
    pred = [[rng.choice(["O", "B-" + rng.choice(kinds), "I-" + rng.choice(kinds)])
             if rng.random() < 0.05 else t for t in tags] for tags in gold]
    default = assert_same_scores(gold, pred)
    strict = assert_same_scores(gold, pred, "strict", "IOB2")
    assert sum(len(spans.spans(t)) for t in gold) == 1088 == default["micro"]["support"]
    # the strict mode drops the spans a stray I- opens, which the default mode counts
    assert 0.5 < default["micro"]["f1"] < strict["micro"]["f1"] < 1
    perfect = spans.span_scores(gold, gold)
    assert perfect["micro"]["f1"] == 1 and set(perfect["per_type"]) == set(kinds)


@settings(max_examples=100, deadline=None)
@given(st.lists(ANY_TAG.filter(lambda t: t[0] in "BIO"), max_size=12))
def test_schemes_keep_the_default_spans(tags):
    iob2 = spans.iob1_to_iob2(tags)
    assert spans.spans(iob2) == spans.spans(tags)
    assert spans.strict_spans(iob2, "IOB2") == spans.spans(tags)
    iobes = spans.to_scheme(tags, "IOBES")
    assert spans.strict_spans(iobes, "IOBES") == spans.spans(tags)
    assert spans.to_scheme(iobes, "IOB2") == iob2


def test_detect_scheme():
    assert spans.detect_scheme([["B-PER", "I-PER", "O", "B-LOC"]]) == "IOB2"
    assert spans.detect_scheme([["I-PER", "I-PER", "O"], ["O", "I-LOC", "B-LOC"]]) == "IOB1"
    assert spans.detect_scheme([["B-PER", "I-ORG"]]) == "IOB1"
    assert spans.detect_scheme([["B-PER", "E-PER", "S-LOC"]]) == "IOBES"


def test_tag_set_checks():
    assert spans.looks_like_spans(["O", "B-PER", "I-PER"])
    assert not spans.looks_like_spans(["O"])
    assert not spans.looks_like_spans(["NOUN", "VERB"])
    assert spans.tag_problem("I-") == "tag 'I-' has no type after 'I-'"
    assert "no known span scheme" in spans.tag_problem("U-PER")


@pytest.mark.parametrize("scheme", ["IOB2", "IOBES"])
def test_constraints_allow_exactly_the_well_formed_sequences(scheme):
    import itertools
    tags = ["O", "B-A", "I-A", "B-B", "I-B"] + (["E-A", "S-A"] if scheme == "IOBES" else [])
    allowed, first, last = spans.transition_constraints(tags, scheme)
    for n in (1, 2, 3):
        for ids in itertools.product(range(len(tags)), repeat=n):
            seq = [tags[i] for i in ids]
            ok = (first[ids[0]] and last[ids[-1]]
                  and all(allowed[a, b] for a, b in zip(ids, ids[1:])))
            well_formed = spans.to_scheme(seq, scheme) == seq
            assert ok == well_formed, seq
