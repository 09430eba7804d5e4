"""Scores of predicted tags against gold tags."""

from collections import Counter


def score(gold_sents, predicted, is_known):
    """Accuracy overall and on words seen/unseen in training, per-tag P/R/F1, confusions.

    gold_sents: sentences with .words and .tags; predicted: a list of tag lists;
    is_known(word) tells whether a word was seen in training.
    """
    total = correct = 0
    seen = [0, 0]    # [tokens, correct]
    unseen = [0, 0]
    gold_count, pred_count, hits, confusions = Counter(), Counter(), Counter(), Counter()
    for sentence, tags in zip(gold_sents, predicted):
        for word, gold, guess in zip(sentence.words, sentence.tags, tags):
            right = gold == guess
            total += 1
            correct += right
            bucket = seen if is_known(word) else unseen
            bucket[0] += 1
            bucket[1] += right
            gold_count[gold] += 1
            pred_count[guess] += 1
            if right:
                hits[gold] += 1
            else:
                confusions[(gold, guess)] += 1
    per_tag = {}
    for tag in sorted(set(gold_count) | set(pred_count)):
        p = hits[tag] / pred_count[tag] if pred_count[tag] else 0.0
        r = hits[tag] / gold_count[tag] if gold_count[tag] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        per_tag[tag] = {"precision": p, "recall": r, "f1": f, "support": gold_count[tag]}
    ratio = lambda part: part[1] / part[0] if part[0] else None  # noqa: E731
    return {
        "tokens": total,
        "accuracy": correct / total if total else None,
        "seen_tokens": seen[0],
        "seen_accuracy": ratio(seen),
        "unseen_tokens": unseen[0],
        "unseen_accuracy": ratio(unseen),
        "per_tag": per_tag,
        "confusions": [{"gold": g, "predicted": p, "count": n}
                       for (g, p), n in confusions.most_common(20)],
    }
