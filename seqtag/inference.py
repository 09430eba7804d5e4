"""Running a network over sentences: log-probabilities, best tags, top-k, accuracy.

Shared by the tagger (seqtag.tagger), the stream tagger (through Tagger.predict_top_k)
and the training loop's dev scoring (seqtag.train); none of them builds its own.
"""

from __future__ import annotations

import functools
from itertools import repeat
from typing import TYPE_CHECKING, Sequence, cast

import numpy as np

from . import _core, runtime
from .corpus import TagProb
from .network import Batch, _log_softmax

if TYPE_CHECKING:
    from .corpus import Sentence
    from .network import Network
    from .vocab import Vocabulary

# Tokens in a batch of length-sorted sentences.  4,096: fewer, larger products than 2,048
# (every column decoded 2-4 % faster, UPOS alone 2-4 %: python bench/batch_size.py), for
# about 20 MB more at the peak.  2,048 was used while a 4,096-token batch's arrays were
# made anew for every batch: in some states of a process the C library gave them back to
# the system and mapped them again (12,000-19,000 page faults a pass over EWT test); the
# memo's workspace (RNN.forward_projected) keeps them now.  Smaller batches, or a cap on
# the rows, were slower (BENCHMARKS.md, 2026-12-03).
BATCH_TOKENS = 4096

__all__ = ["TagProb", "predict_log_probs", "predict_columns", "predict_columns_scored", "predict_tag_ids", "best_tags", "top_k",
           "accuracy", "dev_scores"]


def predict_log_probs(network: Network, vocab: Vocabulary,
                      sentences_words: Sequence[Sequence[str]],
                      batch_tokens: int = BATCH_TOKENS,
                      memo: bool = False, heads: Sequence[int] | None = None,
                      normalize: bool = True) -> list[np.ndarray]:
    """Log-probabilities per sentence, (len, n_tags) each, in the order given (with a
    CRF: of each token's marginals; a model of several heads: every head's segment).

    memo=True runs Network.infer (remembering word forms across calls; for a tagger
    whose weights no longer change), else Network.forward.  heads, normalize: as
    Network.infer takes them (the heads' segments only; logits, not normalised), always
    through infer (memo or not; a model without a CRF).

    Sentences are grouped by length into batches of about batch_tokens tokens; a sentence's
    result does not depend on its batch (each row is computed from its own sequence only).
    """
    if heads is None and normalize:
        return _per_sentence(network, vocab, sentences_words, batch_tokens,
                             lambda batch: network.log_probs(batch, memo),
                             (int(network.bounds[-1]),), network.dtype)
    return _per_sentence(network, vocab, sentences_words, batch_tokens,
                         lambda batch: network.infer(batch, heads, normalize),
                         (int(network.head_bounds(heads)[-1]),), network.dtype)


def predict_tag_ids(network: Network, vocab: Vocabulary,
                    sentences_words: Sequence[Sequence[str]],
                    batch_tokens: int = BATCH_TOKENS,
                    memo: bool = False) -> list[np.ndarray]:
    """The best tag ids per sentence, (len,) each, in the order given: each token's most
    probable tag, or with a CRF the best tag sequence.  Batches as predict_log_probs."""
    return _per_sentence(network, vocab, sentences_words, batch_tokens,
                         lambda batch: network.best_tag_ids(batch, memo), (), np.int64)


def predict_columns(network: Network, vocab: Vocabulary,
                    sentences_words: Sequence[Sequence[str]], columns: Sequence[str],
                    batch_tokens: int = BATCH_TOKENS) -> dict[str, list[list[str]]]:
    """{column: [[value, ...] per sentence]} of `columns`: predict_columns_scored's values
    alone."""
    return predict_columns_scored(network, vocab, sentences_words, columns, (),
                                  batch_tokens)[0]


def predict_columns_scored(network: Network, vocab: Vocabulary,
                           sentences_words: Sequence[Sequence[str]],
                           columns: Sequence[str], scored: Sequence[int] = (),
                           batch_tokens: int = BATCH_TOKENS
                           ) -> tuple[dict[str, list[list[str]]], dict[int, list[np.ndarray]]]:
    """{column: [[value, ...] per sentence]} of `columns` (CoNLL-U columns the model's
    heads predict; lemmas also need UPOS when the model has it, for the lexicon: it is
    computed then, and returned only if asked), in the order given.

    Per batch, the encoder runs once (memoised: Network.encode) and gives, from its last
    steps, the logits of every head asked for but the lemma head — but for the XPOS and
    FEATS heads where the UPOS head has TagCombinations and neither of them is scored:
    a product per predicted UPOS then gives the summed logits of its analyses only, all
    of them in one call (Network.best_summed_logits, TagCombinations.choose_best: 29 rows
    a token on EWT test against 279; the same choice).  The lexicon then answers the
    lemma of every (form, predicted UPOS) pair it holds, and the lemma head scores only
    the other tokens, each only with the scripts that fit its word
    (Network.best_fitting_scripts: 54 of 419 a word on EWT).  Where the tagger has two
    threads, both products (the analyses' and the lemma head's) run on the second one
    while this one decodes the UPOS, makes the batch after the next and encodes the next
    (whose own memo rows the second thread found during this batch's pass: Batch.next_batch):
    a batch's values are finished only then.  Each value
    is the one seqtag.heads.decode_column gives from infer()'s scores of the sentence (the
    same products, row by row; summed logits decide only clear winners, up to float32
    rounding).  A CRF model's column is its best tag sequence (Viterbi).

    scored: heads (indexes) whose log-probabilities (each head's own segment; a CRF's
    marginals) come too, from the same pass: {head: [(len, labels) per sentence]}, what
    predict_log_probs(heads=[head]) gives (bit for bit: the same products)."""
    columns_of = _BatchColumns(network, vocab, columns, scored)
    # each sentence's values are put in place per batch: only an empty sentence, which
    # is in no batch, needs its (empty) list made here
    empty = [i for i, words in enumerate(sentences_words) if not words]
    out = {c: cast("list[list[str]]", [None] * len(sentences_words))
           for c in columns_of.needed}
    for values in out.values():
        for i in empty:
            values[i] = []
    # (an empty sentence keeps its head's one array of no rows)
    scores: dict[int, list[np.ndarray]] = {
        k: [np.zeros((0, vocab.heads[k].size), dtype=network.dtype)] * len(sentences_words)
        for k in scored}

    def put(chunk, batch, finish):
        values, packed_scores = finish()
        lengths = batch.packing.lengths  # the chunk's sentences', in its order
        where = np.array(chunk, dtype=np.int64)
        for column, (labels, ids, *more) in values.items():
            _put_sentence_lists(out[column], where, lengths, labels, ids, *more)
        cuts = _cuts(lengths) if packed_scores else None  # each sentence's scores
        for head, packed in packed_scores.items():
            flat_scores = np.empty_like(packed)
            flat_scores[batch.flat_index] = packed
            _place(scores[head], chunk, flat_scores, cuts)

    # a batch is finished once the next one is encoded: the second thread's products of
    # the one run while this thread decodes the other and makes the batch after the next
    # (Python, most of which left the second core idle)
    pending = None
    for chunk, batch in _batches(vocab, sentences_words, batch_tokens):
        if not columns_of.beside:  # nothing runs meanwhile: no batch kept longer
            put(chunk, batch, columns_of.start(batch))
            continue
        started = (chunk, batch, columns_of.start(batch))
        if pending is not None:
            put(*pending)
        pending = started
    if pending is not None:
        put(*pending)
    return {c: out[c] for c in columns}, scores


class _BatchColumns:
    """predict_columns_scored's work on each batch of one call (its columns and scored
    heads): which heads one product computes, which come from the analyses and the
    lemma lexicon, and start(batch)."""

    def __init__(self, network: Network, vocab: Vocabulary, columns: Sequence[str],
                 scored: Sequence[int]):
        from .heads import Head, LemmaHead
        self.network, self.scored = network, list(scored)
        heads = vocab.heads
        upos_k = next((k for k, h in enumerate(heads) if h.column == "upos"), None)
        needed = set(columns) | ({"upos"} if "lemma" in columns and upos_k is not None
                                 else set())
        # XPOS and FEATS: the seen analysis that goes best with the predicted UPOS
        # (seqtag.heads.TagCombinations), chosen from every column of the analysis
        combinations = heads[upos_k].combinations if upos_k is not None else None
        if combinations is not None and not needed.isdisjoint(combinations.columns[1:]):
            needed |= set(combinations.columns)
        else:
            combinations = None
        plain = [k for k, h in enumerate(heads) if h.column in needed
                 and not isinstance(h, LemmaHead)]
        lemma_k = next((k for k, h in enumerate(heads) if isinstance(h, LemmaHead)), None)
        if "lemma" not in needed:
            lemma_k = None
        # the heads of the analyses' XPOS and FEATS: where none is scored (its log-probs
        # shown), only the logits of the labels the predicted UPOS's analyses use are
        # computed (grouped, _start_analyses), else every row, at the end of the one product
        analysed = {} if combinations is None else {
            heads[k].column: k for k in plain
            if type(heads[k]) is Head and heads[k].column in combinations.columns[1:]}
        grouped = set(analysed.values()).isdisjoint(scored)
        product = [k for k in plain if k not in analysed.values()] + (
            [] if grouped else list(analysed.values()))
        bounds = network.head_bounds(product)
        self.heads, self.upos_k, self.needed, self.combinations = heads, upos_k, needed, \
            combinations
        self.lemma_k, self.analysed, self.grouped = lemma_k, analysed, grouped
        self.product, self.bounds = product, bounds
        self.beside = runtime.threads_beside_blas(network.rnn.threads) >= 2

    def start(self, batch):
        """A function giving the batch's ({column: (labels, ids[, more])}, {scored head: its
        packed log-probs}), each column's values as _put_sentence_lists takes them: the
        encoder's pass and the UPOS now, the rest (the analyses' and the lemma head's
        products) on the second thread, where there is one, until the function is
        called."""
        from .heads import ABSENT, FeatureHead, join_features
        network, heads, scored, beside = self.network, self.heads, self.scored, self.beside
        upos_k, lemma_k, product, bounds = self.upos_k, self.lemma_k, self.product, self.bounds
        combinations, analysed = self.combinations, self.analysed
        n = batch.n_tokens
        # {column: (labels, ids[, more])}: each value labels[ids[p]] (labels[p] where ids is
        # None; more[ids[p] - len(labels)] past labels) of the batch's tokens p laid end to end
        values: dict[str, tuple] = {}
        packed_scores: dict[int, np.ndarray] = {}
        if network.crf is not None:  # one head, one column: the best sequence
            emissions = network.scores(batch, memo=True)
            ids = np.empty(n, dtype=np.int64)
            ids[batch.flat_index] = network.crf.decode(emissions, batch.packing)
            values[heads[0].column] = (heads[0].labels, ids)
            for k in scored:
                packed_scores[k] = network.crf.log_marginals(emissions, batch.packing)
            # lemmas: the lemma head's scripts applied to the words, as without a CRF
            crf_lemmas = None if lemma_k is None else _start_lemmas(
                network, heads[lemma_k], lemma_k, None, batch, None, None, None, beside)

            def finish_crf():
                if crf_lemmas is not None:
                    values["lemma"] = crf_lemmas()
                return values, packed_scores
            return finish_crf
        upos_ids = None  # packed order
        if product:  # their product in the encoder's last steps, as infer() has it
            hidden, logits = network.encode(batch, product)
        else:
            hidden, logits = network.encode(batch), np.empty((n, 0))
        form_rows = None
        if lemma_k is not None and upos_k is not None:
            form_rows = _lexicon_rows(network, heads[lemma_k], heads[upos_k].labels, batch)
        for k in scored:  # each head on its own: infer(batch, [k])'s product
            packed_scores[k] = _log_softmax(network.head_logits(hidden, [k]))
        best_ids = [logits[:, bounds[i]:bounds[i + 1]].argmax(axis=1)
                    for i in range(len(product))]
        if upos_k in product:
            upos_ids = best_ids[product.index(upos_k)]
        chosen = None if combinations is None else _start_analyses(
            network, hidden, combinations, analysed, upos_ids,
            None if self.grouped else logits[:, bounds[len(product) - len(analysed)]:],
            beside)
        lemmas = None if lemma_k is None else _start_lemmas(
            network, heads[lemma_k], lemma_k, hidden, batch, upos_ids,
            heads[upos_k].labels if upos_ids is not None else None, form_rows, beside)
        features: list[tuple[FeatureHead, list[str]]] = []
        for k, best in zip(product, best_ids):
            head = heads[k]
            if head.column in analysed:  # an analysis' XPOS or FEATS, chosen below
                continue
            ids = np.empty(n, dtype=np.int64)
            ids[batch.flat_index] = best
            if isinstance(head, FeatureHead):
                features.append((head, _labels(head.labels, ids)))
            else:
                values[head.column] = (head.labels, ids)
        if features:
            found: list[dict[str, str]] = [{} for _ in range(n)]
            for head, labels in features:
                name = head.feature
                for f, label in zip(found, labels):
                    if label != ABSENT:
                        f[name] = label
            values["feats"] = ([join_features(f) for f in found], None)

        def finish():
            if chosen is not None:
                for column, best in chosen().items():
                    ids = np.empty(n, dtype=np.int64)
                    ids[batch.flat_index] = best
                    values[column] = (heads[analysed[column]].labels, ids)
            if lemmas is not None:
                values["lemma"] = lemmas()
            return values, packed_scores
        return finish


def _start_analyses(network, hidden, combinations, analysed, upos_ids, logits=None,
                    beside=False):
    """A function giving {column: (n,) label ids} of the XPOS and FEATS of the packed
    rows: the seen analysis that goes best with each row's UPOS (TagCombinations).
    analysed: {column: its head's index}; logits: (n, ...) those heads' logits side by
    side, in analysed's order, when the caller has them (every label: choose() decides),
    else only the sums of each predicted UPOS's analyses are computed, every UPOS in one
    call (Network.best_summed_logits, then choose_best(): choose_grouped()'s choice), on
    the second thread from now until the function is called if beside."""
    columns = list(analysed)

    def log_probs(rows):
        got = network.head_logits(hidden, list(analysed.values()), rows) if logits is None \
            else logits[rows]
        at = network.head_bounds(list(analysed.values()))
        return {c: _log_softmax(np.array(got[:, at[i]:at[i + 1]]))
                for i, c in enumerate(columns)}

    if logits is not None:
        return functools.partial(combinations.choose, upos_ids, log_probs(slice(None)))
    rows, starts = combinations.analyses_by_upos(int(upos_ids.max()) + 1
                                                 if len(upos_ids) else 0)
    # each analysis's labels' output rows, summed
    outputs = np.stack([network.bounds[analysed[c]] + combinations.seen[rows, i]
                        for i, c in enumerate(combinations.columns[1:], 1)], axis=1)
    sums = runtime.deferred(beside, network.best_summed_logits, hidden, upos_ids, starts,
                            outputs)
    return lambda: combinations.choose_best(upos_ids, *sums(), log_probs)


def _place(target, chunk, flat, cuts):
    """target[chunk[k]] = flat[cuts[k]] for every k: a batch's values (laid end to end)
    cut back into its sentences (chunk: their indexes)."""
    for i, cut in zip(chunk, cuts):
        target[i] = flat[cut]


def _put_sentence_lists(target, where, lengths, values, ids, more=()):
    """target[where[k]] = a new list of the k-th sentence's values, the sentences laid end
    to end lengths[k] tokens each: values[ids[p]] for their tokens p (values[p] when ids
    is None; more[ids[p] - len(values)] for an id past values), in one call of the
    compiled core (seqtag._core.put_sentence_lists), whose bounds are checked here."""
    values = values if type(values) is list else list(values)
    more = more if type(more) is list else list(more)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    where = np.ascontiguousarray(where, dtype=np.int64)
    if len(where) != len(lengths) or (len(lengths) and lengths.min() < 0) or (
            len(where) and (where.min() < 0 or where.max() >= len(target))):
        raise ValueError("sentences out of range of the target")
    if ids is None:
        if total > len(values):
            raise ValueError(f"{total} tokens but {len(values)} values")
    else:
        if np.asarray(ids).dtype.kind not in "iu":
            raise ValueError("ids must be integers")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        size = len(values) + len(more)
        if len(ids) != total or (total and (ids.min() < 0 or ids.max() >= size)):
            raise ValueError(f"{total} tokens but {len(ids)} ids of {size} values")
    _core.put_sentence_lists(target, where, lengths, values, ids, more)


def _labels(labels, ids):
    """The labels of ids (an int array): one C-level gather instead of a Python loop."""
    return np.asarray(labels, dtype=object)[ids].tolist()


def _lexicon_rows(network, head, upos_labels, batch):
    """The row of each packed row's form in the lemma head's lexicon table over
    upos_labels (LemmaHead.lexicon_table), -1 for a form it does not know: what the
    lexicon can answer before the UPOS is known.  Each form's row is kept in the memo
    beside its projection (Network.form_values): a look-up per form was 12 % of the
    GIL's time tagging every column of text the memo knows."""
    rows = head.lexicon_table(upos_labels)[0]

    def look_up(forms):
        return np.fromiter(map(rows.get, forms, repeat(-1)), dtype=np.int64, count=len(forms))
    return network.form_values(batch, "lemma lexicon rows", rows, look_up)[batch.form_of_row]


def _start_lemmas(network, head, k, hidden, batch, upos_ids, upos_labels, form_rows=None,
                  beside=False):
    """A function giving the lemmas of a batch's words, laid end to end, as
    _put_sentence_lists takes them: (the lexicon's lemmas, ids, the batch's forms followed
    by the lemma head's lemmas).  A word's lemma is the lexicon's where it knows (form,
    predicted UPOS) (upos_ids: each packed row's UPOS id, or None: no lexicon; form_rows:
    _lexicon_rows(), if the caller has it), its form itself where that lemma is the form,
    else the lemma head's best script among those that fit the word, whose scores are
    computed for those tokens only (Network.best_fitting_scripts): if beside, on the
    second thread from now until the function is called (the caller decodes the other
    columns and makes and encodes the next batch meanwhile); else when it is called."""
    from .heads import LEMMA_IS_FORM
    n = batch.n_tokens
    if upos_ids is not None:
        _, table, lemmas = head.lexicon_table(upos_labels)
        if form_rows is None:
            form_rows = _lexicon_rows(network, head, upos_labels, batch)
        known = table[form_rows, upos_ids]  # packed order; row -1: no entry
    else:
        lemmas, known = [], np.full(n, -1)
    missing = np.flatnonzero(known == -1)  # packed rows
    if len(missing):
        if hidden is None:
            hidden = network.encode(batch)
        words = list(map(batch.forms.__getitem__, batch.form_of_row[missing].tolist()))
        sets = head.script_sets
        row_sets = sets.ids(words)
        result = runtime.deferred(beside, network.best_fitting_scripts, hidden, k, missing,
                                  row_sets, *sets.arrays())

    def finish():  # all of it Python: the caller's own products go first
        # each word's lemma by its id: no list of the batch's lemmas made and copied;
        # past the lexicon's lemmas the batch's forms (a lemma that is the form itself),
        # then the head's lemmas
        packed = known.astype(np.int64)
        same = packed == LEMMA_IS_FORM
        packed[same] = len(lemmas) + batch.form_of_row[same]
        scripted: list[str] = []
        if len(missing):
            scripted = head.lemmas_of_scripts(words, result())
            first = len(lemmas) + len(batch.forms)
            packed[missing] = np.arange(first, first + len(missing))
        ids = np.empty(n, dtype=np.int64)
        ids[batch.flat_index] = packed
        return lemmas, ids, batch.forms + scripted
    return finish


def _batches(vocab, sentences_words, batch_tokens):
    """(indexes of the non-empty sentences, their Batch) over length-sorted batches of
    about batch_tokens tokens, each made before the one ahead of it is tagged and linked
    to it (Batch.next_batch: a memoised pass finds the next batch's rows meanwhile)."""
    lengths = np.fromiter(map(len, sentences_words), dtype=np.int64,
                          count=len(sentences_words))
    order = np.argsort(lengths, kind="stable")  # sorted(), as stable
    # a batch takes sentences while their tokens stay within batch_tokens (at least one)
    ends = np.cumsum(lengths[order])
    start = 0
    ahead = None
    while start < len(order):
        before = ends[start - 1] if start else 0
        end = max(start + 1, int(np.searchsorted(ends, before + batch_tokens, "right")))
        chunk = [i for i in order[start:end].tolist() if lengths[i]]
        if chunk:
            made = (chunk, Batch([sentences_words[i] for i in chunk], vocab))
            if ahead is not None:
                ahead[1].next_batch = made[1]
                yield ahead
            ahead = made
        start = end
    if ahead is not None:
        yield ahead


def _per_sentence(network, vocab, sentences_words, batch_tokens, per_batch, row_shape,
                  dtype):
    """per_batch(Batch) (its packed rows' results) over length-sorted batches of about
    batch_tokens tokens, cut back into sentences in the order given."""
    # only an empty sentence, which is in no batch, keeps this: one array (of no rows) for
    # them all
    empty = np.zeros((0, *row_shape), dtype=dtype)
    results: list[np.ndarray] = [empty] * len(sentences_words)
    for chunk, batch in _batches(vocab, sentences_words, batch_tokens):
        packed = per_batch(batch)
        flat = np.empty_like(packed)
        flat[batch.flat_index] = packed
        _place(results, chunk, flat, _cuts(batch.packing.lengths))
    return results


def _cuts(lengths):
    """The slices of rows laid end to end, lengths[k] each."""
    ends = np.cumsum(lengths).tolist()
    return list(map(slice, [0] + ends[:-1], ends))


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


def accuracy(network: Network, vocab: Vocabulary, sentences: Sequence[Sentence],
             targets: Sequence[np.ndarray] | None = None) -> float:
    """The share of tokens of tagged `sentences` whose best tag is the gold one (NaN for
    no sentences); unmemoised, for weights that change between calls (training).
    targets: as dev_scores takes them."""
    return float(dev_scores(network, vocab, sentences, targets)["accuracy"] or 0.0)


def dev_scores(network: Network, vocab: Vocabulary, sentences: Sequence[Sentence],
               targets: Sequence[np.ndarray] | None = None) -> dict[str, float | None]:
    """{"accuracy": token accuracy (NaN for no sentences), "span_f1": the span F1
    (seqtag.spans, default mode) when the model's tags are span tags, else None}, of the
    best tags of tagged `sentences`; unmemoised, for weights that change (training).
    targets: each sentence's gold label ids (len, heads) (seqtag.heads.encode_targets):
    the accuracy is then the heads' mean (span tags are scored from the tags, for their
    F1)."""
    from . import spans
    if not sentences:
        return {"accuracy": float("nan"), "span_f1": None}
    # several heads, or one head of a column other than the sentences' tags (a model of
    # LEMMA or FEATS alone: its targets hold that column, s.tags the UPOS)
    # (a CRF's tags are its best sequence's, which the path below decodes)
    if network.n_heads > 1 or (targets is not None and network.crf is None
                               and not spans.looks_like_spans(vocab.tags)):
        return {"accuracy": _heads_accuracy(network, vocab, sentences, targets),
                "span_f1": None}
    predicted = predict_tag_ids(network, vocab, [s.words for s in sentences])
    gold_tags = [s.tags or [] for s in sentences]
    correct = total = 0
    for tags, ids in zip(gold_tags, predicted):
        gold = vocab.tag_ids(tags)
        correct += int((ids == gold).sum())
        total += len(gold)
    f1 = None
    if spans.looks_like_spans(vocab.tags):
        f1 = spans.span_scores(gold_tags,
                               [[vocab.tags[j] for j in ids] for ids in predicted]
                               )["micro"]["f1"]
    return {"accuracy": correct / max(total, 1), "span_f1": f1}


def _heads_accuracy(network, vocab, sentences, targets):
    """The heads' mean token accuracy against targets (len, heads) per sentence, counted
    per batch (the rows in packed order, the targets laid out to match).  A head with no
    known target in all of dev (a dev file whose LEMMA is all '_') is left out of the
    mean: it counted 0 % (the others' mean when every head has none)."""
    words = [s.words for s in sentences]
    bounds = network.bounds
    correct = np.zeros(targets[0].shape[1])
    known = np.zeros(targets[0].shape[1], dtype=np.int64)
    total = 0
    for chunk, batch in _batches(vocab, words, BATCH_TOKENS):
        gold = np.concatenate([targets[i] for i in chunk])[batch.flat_index]
        log_probs = network.forward(batch)[0]
        for k in range(gold.shape[1]):
            correct[k] += int((log_probs[:, bounds[k]:bounds[k + 1]].argmax(axis=1)
                               == gold[:, k]).sum())
        known += (gold >= 0).sum(axis=0)
        total += len(gold)
    scored = known > 0 if known.any() else np.ones(len(known), dtype=bool)
    return float(correct[scored].mean()) / max(total, 1)
