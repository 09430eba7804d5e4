"""Scores of predicted tags against gold tags."""

from collections import Counter

import numpy as np


def score(gold_sents, predicted, is_known):
    """Accuracy overall and on words seen/unseen in training, per-tag P/R/F1, confusions.

    gold_sents: sentences with .words and .tags; predicted: a list of tag lists;
    is_known(word) tells whether a word was seen in training.
    """
    return score_values([s.words for s in gold_sents], [s.tags for s in gold_sents],
                        predicted, is_known)


def score_columns(words, gold, predicted, is_known):
    """Each column's score_values, and AllTags (UPOS, XPOS and FEATS all right) when the
    three are scored: {"columns": {column: scores}, "alltags": scores or None}.

    words: per sentence its words; gold, predicted: {column: per sentence its values}."""
    columns = {c: score_values(words, gold[c], predicted[c], is_known) for c in predicted}
    alltags = None
    if all(c in predicted for c in ("upos", "xpos", "feats")):
        def joined(values):
            return [list(zip(*(values[c][i] for c in ("upos", "xpos", "feats"))))
                    for i in range(len(words))]
        alltags = score_values(words, joined(gold), joined(predicted), is_known, per_tag=False)
    return {"columns": columns, "alltags": alltags}


def detail_column(asked, model_column, scored):
    """The column whose per-tag detail a score of several columns shows: `asked` where it
    was scored, else the model's tags' (model_column), else the first scored (the gold
    file left the others all '_')."""
    for column in (asked, model_column):
        if column in scored:
            return column
    return next(iter(scored))


def score_values(words, gold_values, predicted, is_known, per_tag=True):
    """score() of values: per sentence its words, gold values and predicted values
    (anything comparable with ==); per_tag=False leaves out per_tag and confusions."""
    total = correct = 0
    seen = [0, 0]    # [tokens, correct]
    unseen = [0, 0]
    gold_count, pred_count, hits, confusions = Counter(), Counter(), Counter(), Counter()
    for sentence_words, gold_tags, tags in zip(words, gold_values, predicted):
        for word, gold, guess in zip(sentence_words, gold_tags, tags):
            right = gold == guess
            total += 1
            correct += right
            bucket = seen if is_known(word) else unseen
            bucket[0] += 1
            bucket[1] += right
            if not per_tag:
                continue
            gold_count[gold] += 1
            pred_count[guess] += 1
            if right:
                hits[gold] += 1
            else:
                confusions[(gold, guess)] += 1
    per_tag_wanted, per_tag = per_tag, {}
    for tag in sorted(set(gold_count) | set(pred_count)):
        p = hits[tag] / pred_count[tag] if pred_count[tag] else 0.0
        r = hits[tag] / gold_count[tag] if gold_count[tag] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        per_tag[tag] = {"precision": p, "recall": r, "f1": f, "support": gold_count[tag]}
    ratio = lambda part: part[1] / part[0] if part[0] else None  # noqa: E731
    result = {
        "tokens": total,
        "accuracy": correct / total if total else None,
        "seen_tokens": seen[0],
        "seen_accuracy": ratio(seen),
        "unseen_tokens": unseen[0],
        "unseen_accuracy": ratio(unseen),
    }
    if per_tag_wanted:
        result["per_tag"] = per_tag
        result["confusions"] = [{"gold": g, "predicted": p, "count": n}
                                for (g, p), n in confusions.most_common(20)]
    return result


def confusion_matrix(gold_sents, predicted):
    """The confusion matrix of predicted tags (a tag list per sentence) against the gold
    sentences' (.tags): {"tags": every tag, the most frequent gold tag first (ties by
    name; tags only ever predicted last), "counts": [gold][predicted] token counts,
    "normalised": each row divided by its gold count (zeros for a tag never gold)}, as
    lists (JSON-able)."""
    counts, gold_count = Counter(), Counter()
    for sentence, tags in zip(gold_sents, predicted):
        for gold, guess in zip(sentence.tags, tags):
            counts[(gold, guess)] += 1
            gold_count[gold] += 1
    predicted_only = {guess for _, guess in counts} - set(gold_count)
    tags = sorted(gold_count, key=lambda t: (-gold_count[t], t)) + sorted(predicted_only)
    index = {t: i for i, t in enumerate(tags)}
    matrix = np.zeros((len(tags), len(tags)), dtype=np.int64)
    for (gold, guess), n in counts.items():
        matrix[index[gold], index[guess]] = n
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    return {"tags": tags, "counts": matrix.tolist(), "normalised": normalised.tolist()}
