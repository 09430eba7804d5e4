"""Running a network over sentences: log-probabilities, best tags, top-k, accuracy.

Shared by the tagger (seqtag.tagger), the stream tagger (through Tagger.predict_top_k)
and the training loop's dev scoring (seqtag.train); none of them builds its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from .corpus import TagProb
from .network import Batch

if TYPE_CHECKING:
    from .corpus import Sentence
    from .network import Network
    from .vocab import Vocabulary

__all__ = ["TagProb", "predict_log_probs", "best_tags", "top_k", "accuracy"]


def predict_log_probs(network: Network, vocab: Vocabulary,
                      sentences_words: Sequence[Sequence[str]], batch_tokens: int = 4096,
                      memo: bool = False) -> list[np.ndarray]:
    """Log-probabilities per sentence, (len, n_tags) each, in the order given.

    memo=True runs Network.infer (remembering word forms across calls; for a tagger
    whose weights no longer change), else Network.forward.

    Sentences are grouped by length into batches of about batch_tokens tokens; a sentence's
    result does not depend on its batch (each row is computed from its own sequence only).
    """
    order = sorted(range(len(sentences_words)), key=lambda i: len(sentences_words[i]))
    results: list[np.ndarray] = [np.empty(0)] * len(sentences_words)
    start = 0
    while start < len(order):
        end, tokens = start, 0
        while end < len(order) and (end == start or tokens + len(sentences_words[order[end]])
                                    <= batch_tokens):
            tokens += len(sentences_words[order[end]])
            end += 1
        chunk = [i for i in order[start:end] if sentences_words[i]]
        for i in order[start:end]:
            if not sentences_words[i]:
                results[i] = np.zeros((0, len(vocab.tags)), dtype=network.dtype)
        if chunk:
            batch = Batch([sentences_words[i] for i in chunk], vocab)
            log_probs = network.infer(batch) if memo else network.forward(batch)[0]
            flat = np.empty_like(log_probs)
            flat[batch.flat_index] = log_probs
            bounds = np.cumsum([0] + [len(sentences_words[i]) for i in chunk])
            for k, i in enumerate(chunk):
                results[i] = flat[bounds[k]:bounds[k + 1]]
        start = end
    return results


def best_tags(log_probs: np.ndarray, tagset: Sequence[str]) -> list[str]:
    """The most probable tag of each token of one sentence's (len, n_tags) log-probs."""
    return [tagset[j] for j in log_probs.argmax(axis=1)]


def top_k(log_probs: np.ndarray, k: int, tagset: Sequence[str]) -> list[list[TagProb]]:
    """The k most probable (tag, probability) pairs of each token of one sentence's
    (len, n_tags) log-probs, most probable first (k is cut to the tagset's size).

    The first pair of a token is its best_tags tag: a stable sort breaks ties by tag
    order as argmax does.
    """
    k = min(k, len(tagset))
    best = np.argsort(-log_probs, axis=1, kind="stable")[:, :k]
    probs = np.exp(np.take_along_axis(log_probs, best, axis=1))
    return [[(tagset[j], float(p)) for j, p in zip(row, prow)]
            for row, prow in zip(best.tolist(), probs.tolist())]


def accuracy(network: Network, vocab: Vocabulary, sentences: Sequence[Sentence]) -> float:
    """The share of tokens of tagged `sentences` whose best tag is the gold one (NaN for
    no sentences); unmemoised, for weights that change between calls (training)."""
    if not sentences:
        return float("nan")
    log_probs = predict_log_probs(network, vocab, [s.words for s in sentences])
    correct = total = 0
    for sentence, lp in zip(sentences, log_probs):
        gold = vocab.tag_ids(sentence.tags)
        correct += int((lp.argmax(axis=1) == gold).sum())
        total += len(gold)
    return correct / max(total, 1)
