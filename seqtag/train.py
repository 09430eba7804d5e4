"""The training loop: length-bucketed batches, epochs, dev selection, early stopping."""

import time

import numpy as np

from .errors import SeqtagError
from .network import Batch, Network
from .optim import SGD, Adam, clip_by_global_norm
from .vocab import Vocabulary

DEFAULTS = {
    "epochs": 30,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": None,            # Adam 2e-3, SGD 0.1
    "clip": 5.0,
    "seed": 1,
    "threads": 2,
    "patience": 6,         # epochs without a better dev score before stopping
    "max_time": None,      # seconds; the epoch running when it passes is the last
    "dev_fraction": 0.1,   # held out of training when no dev set is given
}


def split_dev(sentences, fraction, seed):
    """Hold out a random `fraction` of the sentences (at least one) as a dev set."""
    if len(sentences) < 2:
        raise SeqtagError("need at least 2 training sentences to hold some out as dev data; "
                          "give --dev")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sentences))
    n_dev = min(max(1, int(round(len(sentences) * fraction))), len(sentences) - 1)
    dev = [sentences[i] for i in sorted(order[:n_dev])]
    train = [sentences[i] for i in sorted(order[n_dev:])]
    return train, dev


def epoch_batches(sentences, batch_size, rng):
    """Shuffled batches of sentences of similar length: pools of 50 batches are sorted by
    length and cut, so little of a packed batch runs with only a few rows left."""
    order = rng.permutation(len(sentences))
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: len(sentences[i]))
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def predict_log_probs(network, vocab, sentences_words, batch_tokens=4096):
    """Log-probabilities per sentence, (len, n_tags) each, in the order given.

    Sentences are grouped by length into batches of about batch_tokens tokens; a sentence's
    result does not depend on its batch (each row is computed from its own sequence only).
    """
    order = sorted(range(len(sentences_words)), key=lambda i: len(sentences_words[i]))
    results = [None] * len(sentences_words)
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
            log_probs, _ = network.forward(batch)
            flat = np.empty_like(log_probs)
            flat[batch.flat_index] = log_probs
            bounds = np.cumsum([0] + [len(sentences_words[i]) for i in chunk])
            for k, i in enumerate(chunk):
                results[i] = flat[bounds[k]:bounds[k + 1]]
        start = end
    return results


def accuracy(network, vocab, sentences):
    if not sentences:
        return float("nan")
    log_probs = predict_log_probs(network, vocab, [s.words for s in sentences])
    correct = total = 0
    for sentence, lp in zip(sentences, log_probs):
        gold = vocab.tag_ids(sentence.tags)
        correct += int((lp.argmax(axis=1) == gold).sum())
        total += len(gold)
    return correct / max(total, 1)


def train(train_sents, dev_sents, model_config, options, progress=None):
    """Train a network; returns (network, vocab, history).

    model_config: network sizes (seqtag.network.DEFAULTS); options: DEFAULTS above.
    progress(event) gets {"type": "batch", ...} during an epoch and {"type": "epoch", ...}
    after it.  The returned network holds the weights of the best dev epoch.
    """
    opts = dict(DEFAULTS, **{k: v for k, v in options.items() if v is not None})
    if not train_sents:
        raise SeqtagError("the training corpus has no sentences")
    vocab = Vocabulary.build(train_sents)
    network = Network(model_config, len(vocab.words), len(vocab.chars), len(vocab.tags),
                      seed=opts["seed"], threads=opts["threads"])
    params = network.arrays()
    if opts["optimizer"] == "adam":
        optimizer = Adam(params, lr=opts["lr"] or 2e-3, betas=(0.9, 0.9))
    elif opts["optimizer"] == "sgd":
        optimizer = SGD(params, lr=opts["lr"] or 0.1)
    else:
        raise SeqtagError(f"unknown optimizer {opts['optimizer']!r}; choose adam or sgd")
    rng = np.random.default_rng(opts["seed"])
    word_dropout = network.config["word_dropout"]
    total_tokens = sum(len(s) for s in train_sents)
    history, best, best_params, stale = [], -1.0, None, 0
    started = time.perf_counter()
    for epoch in range(1, opts["epochs"] + 1):
        epoch_start = time.perf_counter()
        loss_sum = correct = done = 0
        for ids in epoch_batches(train_sents, opts["batch_size"], rng):
            sents = [train_sents[i] for i in ids]
            batch = Batch([s.words for s in sents], vocab, [s.tags for s in sents])
            word_ids = batch.word_ids
            if word_dropout:
                # rare words are sometimes <unk>, so the net learns to read characters
                counts = vocab.word_counts[word_ids]
                drop = rng.random(len(word_ids)) < word_dropout / (word_dropout + counts)
                word_ids = np.where(drop, 1, word_ids)
            loss, dense, sparse, right = network.loss_and_gradients(batch, rng, word_ids)
            if not np.isfinite(loss):
                raise SeqtagError(f"the loss became {loss} in epoch {epoch}; training stopped "
                                  "(try a lower --lr)")
            clip_by_global_norm(dense, sparse, opts["clip"])
            optimizer.step(dense, sparse)
            loss_sum += loss * batch.n_tokens
            correct += right
            done += batch.n_tokens
            if progress:
                elapsed = time.perf_counter() - epoch_start
                progress({"type": "batch", "epoch": epoch, "tokens_done": done,
                          "tokens_total": total_tokens, "loss": loss_sum / done,
                          "tokens_per_s": done / max(elapsed, 1e-9)})
        dev_acc = accuracy(network, vocab, dev_sents)
        improved = dev_acc > best
        if improved:
            best, stale = dev_acc, 0
            best_params = {k: v.copy() for k, v in params.items()}
        else:
            stale += 1
        record = {"type": "epoch", "epoch": epoch, "loss": loss_sum / max(done, 1),
                  "train_acc": correct / max(done, 1), "dev_acc": dev_acc,
                  "seconds": time.perf_counter() - epoch_start, "best": improved}
        history.append(record)
        if progress:
            progress(record)
        out_of_time = opts["max_time"] and time.perf_counter() - started > opts["max_time"]
        if stale >= opts["patience"] or out_of_time:
            break
    for name, value in best_params.items():
        params[name][...] = value
    return network, vocab, history
