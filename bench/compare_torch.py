"""The same tagger networks in seqtag and in PyTorch, side by side in one run.

    python bench/compare_torch.py [--threads 2] [--rounds 5] [--quick]

Configurations (float32, the same sizes, batches and thread count on both sides):
  (a) word embedding 100 -> 1-layer BiLSTM 128 -> linear -> log-softmax, batches of 32
      sentences; seqtag side built from seqtag.rnn.RNN + NumPy + seqtag.optim.Adam
      (seqtag.network.Network has no way to leave out the character features)
  (b) the same with a unidirectional LSTM, one sentence per training step
  (c) seqtag's default recipe (seqtag.network.DEFAULTS, read at run time): character
      BiLSTM 32/64 over the distinct words of a batch, word embedding 100, 2-layer BiLSTM
      128, dropout on the input, between the layers and on the output;
      seqtag side = Network.loss_and_gradients + clipping + Adam as seqtag/train.py does,
      torch side = the same recipe in torch.nn (pack_sequence, nn.LSTM, nn.Dropout ...)
Both sides train with global-norm clipping at 5 and Adam (lr 2e-3, betas 0.9/0.9);
seqtag's Adam updates only the embedding rows a batch used, torch.optim.Adam the whole
(dense) embedding, which is what a plain PyTorch tagger does.  Word dropout (a cheap id
substitution) is left out on both sides.

Measured, alternating seqtag and torch round by round (median round), so that drift of a
shared machine hits both alike:
  train tok/s   forward + backward + clip + Adam on UD English EWT train sentences
  tag tok/s     inference over EWT test in batches of about 2048 tokens.  seqtag tags the
                way seqtag.Tagger does: each distinct word's first-layer input projection
                (and, in (c), its character BiLSTM) is computed once and remembered
                (seqtag.memo; (a)/(b) keep a row per word id, (c) up to 8192 word forms);
                in (c), with 2 threads, each batch's rows are found during the pass before
                it, on the second thread (batches linked as seqtag.inference links them:
                Batch.next_batch; since 2026-12-04).
                The main figure is a long run's steady state (memo filled by the warm-up
                round); "(fresh)" empties the memo before every pass.  A round tags EWT
                test `tag_passes` (5) times
  latency ms    tagging one 20-token sentence (median call)
  peak RSS      peak RSS of a separate process that trains one round (that side's imports
                only), and its increase over the process after imports + data load (read as
                VmHWM: a child's ru_maxrss starts from its parent's peak on Linux)
  GFLOP/s       matrix-product FLOPs of training per second (per LSTM direction and layer
                3 x 2*N*4H*(D+H), the output layer 3 x 2*N*D*tags, the character BiLSTM
                the same over its own rows), next to NumPy's sgemm in the same run
Batches are encoded before timing (seqtag.network.Batch; for torch, pack_sequence of the
same ids), so the figures are of the networks and optimisers, not of reading text.
Also times the command `seqtag tag "The dog ate the apple"` against `python -c "import
torch"` (whole process, median of 10).  Data comes from ../shared or $SEQTAG_SHARED;
without it, synthetic sentences with EWT-like lengths and a 10k-word vocabulary.
The last line is `ratio train=X tag=Y` (seqtag/torch) for configuration (a).
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from itertools import islice
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import blas_threads, ewt_path, ewt_sentence_lengths, machine_line, sgemm_gflops  # noqa: E402

from seqtag.corpus import Sentence, iter_sentences  # noqa: E402
from seqtag.network import (DEFAULTS as NET, Batch, Network, _log_softmax,  # noqa: E402
                            _sum_rows, link_batches)
from seqtag.memo import ProjectionMemo  # noqa: E402
from seqtag.optim import Adam, clip_by_global_norm  # noqa: E402
from seqtag import runtime  # noqa: E402
from seqtag.rnn import RNN  # noqa: E402
from seqtag.train import DEFAULTS as TRAINING, epoch_batches  # noqa: E402
from seqtag.vocab import Vocabulary  # noqa: E402

LR, BETAS = 2e-3, (0.9, 0.9)  # what seqtag.train.train gives Adam
CLIP = TRAINING["clip"]
WORD_DIM, HIDDEN = 100, 128
TAG_BATCH_TOKENS = 2048
LATENCY_LENGTH = 20

CONFIGS = {
    "a": dict(title="1-layer BiLSTM, emb 100, hidden 128, no chars, batch 32",
              bidirectional=True, layers=1, chars=False, dropout=0.0, batch_size=32),
    "b": dict(title="1-layer LSTM (unidirectional), emb 100, hidden 128, batch 1",
              bidirectional=False, layers=1, chars=False, dropout=0.0, batch_size=1),
    "c": dict(title=f"seqtag default recipe: char BiLSTM {NET['char_dim']}/"
                    f"{NET['char_hidden']}, {NET['layers']}-layer BiLSTM {NET['hidden']}, "
                    f"dropout {NET['dropout']}, batch {TRAINING['batch_size']}",
              bidirectional=True, layers=NET["layers"], chars=True, dropout=NET["dropout"],
              batch_size=TRAINING["batch_size"]),
}

FULL = dict(rounds=5, train_batches=30, single_steps=200, latency_calls=200, cli_runs=10,
            sgemm_size=2048, train_sentences=None, test_sentences=None, tag_passes=5)
QUICK = dict(rounds=2, train_batches=2, single_steps=6, latency_calls=10, cli_runs=1,
             sgemm_size=512, train_sentences=300, test_sentences=60, tag_passes=1)


# ---- data ---------------------------------------------------------------------------------

def synthetic_sentences(rng, count, lexicon, tagset):
    """Sentences with EWT-like lengths, Zipf-distributed words from `lexicon`, random tags."""
    p = 1.0 / np.arange(1, len(lexicon) + 1)
    p /= p.sum()
    sentences = []
    for length in ewt_sentence_lengths(rng, count):
        words = [lexicon[i] for i in rng.choice(len(lexicon), size=int(length), p=p)]
        tags = [tagset[i] for i in rng.integers(len(tagset), size=int(length))]
        sentences.append(Sentence(words, tags))
    return sentences


def load_data(sizes):
    """Train and test sentences (EWT, or synthetic), and the vocabulary built from train."""
    train_path, test_path = ewt_path("train"), ewt_path("test")
    if train_path.exists() and test_path.exists():
        train = list(islice(iter_sentences(train_path), sizes["train_sentences"]))
        test = list(islice(iter_sentences(test_path), sizes["test_sentences"]))
        source = f"UD English EWT ({train_path.parent})"
    else:
        rng = np.random.default_rng(0)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        lexicon = ["".join(rng.choice(letters, size=int(n)))
                   for n in np.clip(rng.poisson(5, 10_000), 1, 15)]
        tagset = ("NOUN PUNCT VERB PRON ADP DET PROPN ADJ AUX ADV CCONJ PART NUM SCONJ X "
                  "INTJ SYM").split()
        train = synthetic_sentences(rng, sizes["train_sentences"] or 12_543, lexicon, tagset)
        test = synthetic_sentences(rng, sizes["test_sentences"] or 2_077, lexicon, tagset)
        source = "synthetic (EWT not found), 10k-word vocabulary"
    return SimpleNamespace(train=train, test=test, vocab=Vocabulary.build(train), source=source)


def training_batches(data, config, sizes):
    """The batches one training round runs: seqtag.train.epoch_batches over EWT train."""
    count = sizes["single_steps"] if config["batch_size"] == 1 else sizes["train_batches"]
    chosen = epoch_batches(data.train, config["batch_size"], np.random.default_rng(1))[:count]
    return [Batch([data.train[i].words for i in ids], data.vocab,
                  [data.train[i].tags for i in ids]) for ids in chosen]


def tagging_batches(data):
    """EWT test grouped by length into batches of at most TAG_BATCH_TOKENS tokens."""
    order = sorted(data.test, key=len)
    batches, current, tokens = [], [], 0
    for sentence in order:
        if current and tokens + len(sentence) > TAG_BATCH_TOKENS:
            batches.append(current)
            current, tokens = [], 0
        current.append(sentence)
        tokens += len(sentence)
    if current:
        batches.append(current)
    return link_batches([Batch([s.words for s in b], data.vocab, [s.tags for s in b])
                         for b in batches])  # linked as seqtag.inference links them


def latency_batch(data):
    """One 20-token sentence (from test if it has one, else test's first 20 tokens)."""
    exact = [s.words for s in data.test if len(s) == LATENCY_LENGTH]
    words = exact[0] if exact else [w for s in data.test for w in s.words][:LATENCY_LENGTH]
    return Batch([words], data.vocab)


# ---- the seqtag side ----------------------------------------------------------------------

class WordIdMemo(ProjectionMemo):
    """seqtag.memo.ProjectionMemo keyed by word id through an array instead of its dict (no
    Python loop per token): (a)/(b) have no word forms, only ids.  Sized for the whole
    vocabulary, so it never starts over."""

    def __init__(self, rnn, n_words):
        super().__init__(rnn, capacity=n_words)
        self.row_of_id = np.full(n_words, -1, dtype=np.int64)

    def clear(self):
        super().clear()
        self.row_of_id[:] = -1

    def rows_of_ids(self, ids, inputs_of):
        """Row of each of ids (N,), word ids that may repeat; inputs_of(new_ids) gives the
        inputs of the distinct ids not yet held."""
        rows = self.row_of_id[ids]
        absent = rows < 0
        new_ids = np.unique(ids[absent])
        self.hits += len(ids) - int(absent.sum())
        self.misses += len(new_ids)
        if len(new_ids) == 0:
            return rows
        self.row_of_id[new_ids] = self._add(inputs_of(new_ids))
        return self.row_of_id[ids]


class SeqtagPlain:
    """(a)/(b) in seqtag: embedding gather -> RNN.forward_packed -> linear -> log-softmax."""

    def __init__(self, n_words, n_tags, config, threads, seed=0):
        rng = np.random.default_rng(seed)
        self.rnn = RNN("lstm", WORD_DIM, HIDDEN, num_layers=config["layers"],
                       bidirectional=config["bidirectional"], seed=seed + 1, threads=threads)
        width = self.rnn.output_size
        bound = 1.0 / np.sqrt(width)
        self.params = {"word_embedding":
                       (rng.standard_normal((n_words, WORD_DIM)) * 0.1).astype(np.float32)}
        self.params.update({"rnn." + k: v for k, v in self.rnn.params.items()})
        self.params["output.weight"] = rng.uniform(-bound, bound, (n_tags, width)).astype(
            np.float32)
        self.params["output.bias"] = np.zeros(n_tags, dtype=np.float32)
        # a row for every word id (at most the vocabulary: 15.7k x 2 x 512 floats = 64 MB
        # on EWT), so a long tagging run never restarts it
        self.memo = WordIdMemo(self.rnn, n_words)

    def changed(self):
        self.memo.clear()

    def infer(self, batch):
        """Tagging: the memo's word rows instead of gather + input product (seqtag.memo)."""
        embedding = self.params["word_embedding"]
        rows = self.memo.rows_of_ids(batch.word_ids, lambda new_ids: embedding[new_ids])
        logits, _, _ = self.memo.forward(rows, batch.packing, states=False, head=(
            self.params["output.weight"], self.params["output.bias"]))
        return _log_softmax(logits)

    def forward(self, batch, training=False):
        p = self.params
        x = p["word_embedding"][batch.word_ids]
        hidden, _, _, cache = self.rnn.forward_packed(x, batch.packing, training=training,
                                                      keep=training)
        logits = hidden @ p["output.weight"].T
        logits += p["output.bias"]
        return _log_softmax(logits), (hidden, cache)

    def loss_and_gradients(self, batch):
        """Mean NLL; dense gradients, and sparse (row ids, rows) ones for the embedding."""
        log_probs, (hidden, cache) = self.forward(batch, training=True)
        rows = np.flatnonzero(batch.tag_ids >= 0)
        n = max(len(rows), 1)
        loss = -log_probs[rows, batch.tag_ids[rows]].sum() / n
        grad_logits = np.exp(log_probs)  # d(-log p_gold)/d logits = softmax - one-hot
        grad_logits[batch.tag_ids < 0] = 0.0
        grad_logits[rows, batch.tag_ids[rows]] -= 1.0
        grad_logits /= n
        dense = {"output.weight": grad_logits.T @ hidden,
                 "output.bias": grad_logits.sum(axis=0)}
        grad_x, grads, _, _ = self.rnn.backward_packed(
            cache, grad_logits @ self.params["output.weight"])
        dense.update({"rnn." + k: v for k, v in grads.items()})
        sparse = {"word_embedding": _sum_rows(batch.word_ids, grad_x)}
        return float(loss), dense, sparse


class SeqtagRecipe:
    """(c) in seqtag: seqtag.network.Network with its defaults."""

    def __init__(self, vocab, threads):
        self.network = Network({}, len(vocab.words), len(vocab.chars), len(vocab.tags),
                               seed=TRAINING["seed"], threads=threads)
        self.params = self.network.arrays()
        self.rng = np.random.default_rng(TRAINING["seed"])

    def forward(self, batch, training=False):
        return self.network.forward(batch, training=training, rng=self.rng)

    def changed(self):
        self.network.changed()

    @property
    def memo(self):
        return self.network._memo

    def infer(self, batch):
        return self.network.infer(batch)

    def loss_and_gradients(self, batch):
        loss, dense, sparse, _ = self.network.loss_and_gradients(batch, self.rng)
        return loss, dense, sparse


def seqtag_model(key, data, threads):
    """(model, optimizer); the model has .params, .forward(batch), .loss_and_gradients."""
    if key == "c":
        model = SeqtagRecipe(data.vocab, threads)
    else:
        model = SeqtagPlain(len(data.vocab.words), len(data.vocab.tags), CONFIGS[key], threads)
    # one BLAS thread where the two directions take the two cores, else BLAS gets them
    model.blas_threads = 1 if CONFIGS[key]["bidirectional"] and threads > 1 else threads
    return model, Adam(model.params, lr=LR, betas=BETAS, threads=threads)


def seqtag_train_step(model, optimizer, batch):
    # BLAS threads as seqtag.network.Network holds them (see the comment there)
    with blas_threads(model.blas_threads):
        _, dense, sparse = model.loss_and_gradients(batch)
    clip_by_global_norm(dense, sparse, CLIP)
    optimizer.step(dense, sparse)
    model.changed()


def seqtag_tag(model, batch):
    with blas_threads(model.blas_threads):
        return model.infer(batch).argmax(axis=1)


def seqtag_tag_pass(model, batches, fresh):
    """A function tagging every batch once, the memo emptied first if fresh (what the
    "(fresh)" column times), for scripts that time (c)'s passes on their own."""
    def run():
        if fresh:
            model.changed()
        for batch in batches:
            seqtag_tag(model, batch)
    return run


def tagging_variants():
    """({name: function tagging EWT test once}, (c)'s batches, EWT test's tokens): the
    bundled model's every column (Tagger.predict_columns) and UPOS (Tagger.predict), and
    (c)'s network over its batches with a warm and an emptied ("fresh") memo, both
    threads; what the in-process A/B scripts (bench/shared_layers.py, rows_ahead.py)
    time."""
    from seqtag import Tagger
    tagger = Tagger.load(threads=2)
    words = [s.words for s in iter_sentences(ewt_path("test"), require_tags=False)]
    data = load_data(dict(FULL))
    model, _ = seqtag_model("c", data, 2)
    batches = tagging_batches(data)
    variants = {
        "every column (Tagger.predict_columns)": lambda: tagger.predict_columns(words),
        "UPOS (Tagger.predict)": lambda: tagger.predict(words),
        "(c) warm memo": seqtag_tag_pass(model, batches, False),
        "(c) fresh memo": seqtag_tag_pass(model, batches, True),
    }
    return variants, batches, sum(map(len, words))


def seqtag_flat_log_probs(model, batch):
    """Log-probabilities in the sentences' own order (for the untimed agreement check)."""
    log_probs = model.infer(batch)
    flat = np.empty_like(log_probs)
    flat[batch.flat_index] = log_probs
    return flat


# ---- the PyTorch side ---------------------------------------------------------------------

def torch_tagger_class():
    """The PyTorch tagger (defined on first use: the seqtag worker never imports torch)."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.nn.utils.rnn import PackedSequence

    class TorchTagger(nn.Module):
        """Embedding [+ char BiLSTM final states] -> dropout -> LSTM on a PackedSequence
        -> dropout -> linear -> log_softmax.  Parameter names follow seqtag's."""

        def __init__(self, config, n_words, n_chars, n_tags):
            super().__init__()
            width = WORD_DIM
            self.char_embedding = self.char_rnn = None
            if config["chars"]:
                self.char_embedding = nn.Embedding(n_chars, NET["char_dim"])
                self.char_rnn = nn.LSTM(NET["char_dim"], NET["char_hidden"],
                                        bidirectional=True)
                width += 2 * NET["char_hidden"]
            self.word_embedding = nn.Embedding(n_words, WORD_DIM)
            self.rnn = nn.LSTM(width, HIDDEN, num_layers=config["layers"],
                               bidirectional=config["bidirectional"],
                               dropout=config["dropout"] if config["layers"] > 1 else 0.0)
            self.dropout = nn.Dropout(config["dropout"]) if config["dropout"] else nn.Identity()
            self.output = nn.Linear(HIDDEN * (2 if config["bidirectional"] else 1), n_tags)

        def forward(self, tb):
            x = self.word_embedding(tb.word_ids)
            if self.char_rnn is not None:
                c = tb.chars
                _, (h_n, _) = self.char_rnn(PackedSequence(
                    self.char_embedding(c.data), c.batch_sizes, c.sorted_indices,
                    c.unsorted_indices))
                forms = torch.cat([h_n[0], h_n[1]], dim=1)  # final fwd | final reverse
                x = torch.cat([x, forms[tb.form_ids]], dim=1)
            x = self.dropout(x)
            s = tb.layout
            out, _ = self.rnn(PackedSequence(x, s.batch_sizes, s.sorted_indices,
                                             s.unsorted_indices))
            return F.log_softmax(self.output(self.dropout(out.data)), dim=1)

    return TorchTagger


def torch_batch(batch, chars):
    """The same sentences for torch: ids laid out by pack_sequence (torch's own order)."""
    import torch
    from torch.nn.utils.rnn import PackedSequence, pack_sequence

    def packed_positions(lengths):
        """PackedSequence of each row's position in the sequences laid end to end."""
        starts = np.cumsum(lengths) - lengths
        return pack_sequence([torch.arange(s, s + n) for s, n in zip(starts, lengths)],
                             enforce_sorted=False)

    def end_to_end(values, packing):  # seqtag's packed order -> sequences end to end
        out = np.empty_like(values)
        out[packing.flat_index()] = values
        return out

    layout = packed_positions(batch.packing.lengths)
    rows = layout.data.numpy()
    tb = SimpleNamespace(layout=layout, rows=rows, n_tokens=batch.n_tokens, tags=None,
                         word_ids=torch.from_numpy(end_to_end(batch.word_ids, batch.packing)[rows]))
    if batch.tag_ids is not None:
        tb.tags = torch.from_numpy(end_to_end(batch.tag_ids, batch.packing)[rows])
    if chars:
        tb.form_ids = torch.from_numpy(end_to_end(batch.form_of_row, batch.packing)[rows])
        char_layout = packed_positions(batch.char_packing.lengths)
        char_ids = end_to_end(batch.char_ids, batch.char_packing)[char_layout.data.numpy()]
        tb.chars = PackedSequence(torch.from_numpy(char_ids), char_layout.batch_sizes,
                                  char_layout.sorted_indices, char_layout.unsorted_indices)
    return tb


def torch_model(key, data, seqtag_params=None):
    """(model, optimizer); starts from seqtag's weights when given (same function)."""
    import torch
    config = CONFIGS[key]
    model = torch_tagger_class()(config, len(data.vocab.words), len(data.vocab.chars),
                                 len(data.vocab.tags))
    if seqtag_params is not None:
        renamed = {{"word_embedding": "word_embedding.weight",
                    "char_embedding": "char_embedding.weight"}.get(k, k): torch.from_numpy(v)
                   for k, v in seqtag_params.items()}
        model.load_state_dict(renamed)
    return model, torch.optim.Adam(model.parameters(), lr=LR, betas=BETAS)


def torch_train_step(model, optimizer, tb):
    import torch
    import torch.nn.functional as F
    optimizer.zero_grad()
    loss = F.nll_loss(model(tb), tb.tags, ignore_index=-1)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    optimizer.step()


def torch_tag(model, tb):
    import torch
    with torch.inference_mode():
        return model(tb).argmax(dim=1)


def torch_flat_log_probs(model, tb):
    import torch
    with torch.inference_mode():
        log_probs = model(tb).numpy()
    flat = np.empty_like(log_probs)
    flat[tb.rows] = log_probs
    return flat


# ---- FLOPs --------------------------------------------------------------------------------

def lstm_training_flops(rows, input_size, hidden, directions):
    """Forward 2*N*4H*(D+H) per direction, x3 for forward + backward."""
    return 3 * 2 * rows * 4 * hidden * (input_size + hidden) * directions


def training_flops(config, batches, n_tags):
    """Matrix-product FLOPs of one training pass over `batches`."""
    directions = 2 if config["bidirectional"] else 1
    width = WORD_DIM + (2 * NET["char_hidden"] if config["chars"] else 0)
    total = 0
    for b in batches:
        n = b.n_tokens
        for layer in range(config["layers"]):
            total += lstm_training_flops(n, width if layer == 0 else directions * HIDDEN,
                                         HIDDEN, directions)
        total += 3 * 2 * n * directions * HIDDEN * n_tags
        if config["chars"]:
            total += lstm_training_flops(b.char_packing.n_rows, NET["char_dim"],
                                         NET["char_hidden"], 2)
    return total


# ---- measurements -------------------------------------------------------------------------

def timed(fn, items):
    start = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - start


def alternate(rounds, seqtag_round, torch_round):
    """Median seconds of each side over `rounds` rounds run seqtag, torch, seqtag, ..."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(seqtag_round())
        theirs.append(torch_round())
    return statistics.median(ours), statistics.median(theirs)


def alternate_calls(rounds, calls, seqtag_call, torch_call):
    """Median seconds of one call, in blocks of calls alternating between the sides."""
    per_block = max(1, calls // rounds)
    ours, theirs = [], []
    for _ in range(rounds):
        for side, out in ((seqtag_call, ours), (torch_call, theirs)):
            for _ in range(per_block):
                start = time.perf_counter()
                side()
                out.append(time.perf_counter() - start)
    return statistics.median(ours), statistics.median(theirs)


def peak_rss(key, side, args):
    """Run one side's training in a fresh process; (peak MB, increase over baseline MB)."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", key, side,
               "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print(f"  [memory worker {key}/{side} failed: {result.stderr.strip()[-300:]}]")
        return float("nan"), float("nan")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["peak_mb"], report["peak_mb"] - report["baseline_mb"]


def peak_rss_mb():
    """This process's peak RSS in MB.  VmHWM where Linux has it: a subprocess's ru_maxrss
    starts from its parent's peak (kept across vfork/exec), which would hide the child's."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def worker(key, side, args, sizes):
    """Child process: imports and data of one side, baseline, one training round, peak."""
    setup_threads(args.threads, torch_too=(side == "torch"))
    data = load_data(sizes)
    batches = training_batches(data, CONFIGS[key], sizes)
    if side == "torch":
        batches = [torch_batch(b, CONFIGS[key]["chars"]) for b in batches]
    baseline = peak_rss_mb()
    if side == "torch":
        model, optimizer = torch_model(key, data)
        model.train()
        timed(lambda b: torch_train_step(model, optimizer, b), batches)
    else:
        model, optimizer = seqtag_model(key, data, args.threads)
        timed(lambda b: seqtag_train_step(model, optimizer, b), batches)
    peak = peak_rss_mb()
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak}))


def setup_threads(threads, torch_too):
    runtime.blas().set_threads(threads)  # NumPy's own products (seqtag's output layer)
    if torch_too:
        import torch
        torch.set_num_threads(threads)


def compare_config(key, data, args, sizes):
    """All measurements of one configuration; a dict of per-side results."""
    config = CONFIGS[key]
    train_sb = training_batches(data, config, sizes)
    tag_sb = tagging_batches(data)
    one_sb = latency_batch(data)
    train_tb = [torch_batch(b, config["chars"]) for b in train_sb]
    tag_tb = [torch_batch(b, config["chars"]) for b in tag_sb]
    one_tb = torch_batch(one_sb, config["chars"])

    ours, ours_opt = seqtag_model(key, data, args.threads)
    theirs, theirs_opt = torch_model(key, data, seqtag_params=ours.params)
    theirs.eval()
    # untimed: both sides compute the same function before training
    agreement = float(np.abs(seqtag_flat_log_probs(ours, tag_sb[0])
                             - torch_flat_log_probs(theirs, tag_tb[0])).max())

    def seqtag_train():
        return timed(lambda b: seqtag_train_step(ours, ours_opt, b), train_sb)

    def torch_train():
        theirs.train()
        return timed(lambda b: torch_train_step(theirs, theirs_opt, b), train_tb)

    # a tagging round tags EWT test `tag_passes` times: one pass takes only 50-150 ms,
    # short enough for the cores' clock ramp after a pause to show in the figures
    passes = sizes["tag_passes"]

    def seqtag_tagging():
        return timed(lambda b: seqtag_tag(ours, b), tag_sb * passes)

    def seqtag_tagging_fresh():
        seconds = 0.0
        for _ in range(passes):
            ours.changed()  # an empty memo: every word's projection computed in this pass
            seconds += timed(lambda b: seqtag_tag(ours, b), tag_sb)
        return seconds

    def torch_tagging():
        theirs.eval()
        return timed(lambda b: torch_tag(theirs, b), tag_tb * passes)

    warm = min(2, len(train_sb))
    timed(lambda b: seqtag_train_step(ours, ours_opt, b), train_sb[:warm])
    theirs.train()
    timed(lambda b: torch_train_step(theirs, theirs_opt, b), train_tb[:warm])
    train_s = alternate(sizes["rounds"], seqtag_train, torch_train)
    seqtag_tagging()  # warm up the inference paths
    torch_tagging()
    tag_s = alternate(sizes["rounds"], seqtag_tagging, torch_tagging)
    fresh_s = alternate(sizes["rounds"], seqtag_tagging_fresh, torch_tagging)
    memo = ours.memo
    results_memo = {"memo_rows": len(memo), "memo_mb": sum(t.nbytes for t in memo.tables) / 1e6}
    theirs.eval()
    latency_s = alternate_calls(sizes["rounds"], sizes["latency_calls"],
                                lambda: seqtag_tag(ours, one_sb),
                                lambda: torch_tag(theirs, one_tb))

    train_tokens = sum(b.n_tokens for b in train_sb)
    tag_tokens = sum(b.n_tokens for b in tag_sb) * passes
    flops = training_flops(config, train_sb, len(data.vocab.tags))
    results = {"agreement": agreement, "train_tokens": train_tokens, "tag_tokens": tag_tokens,
               "steps": len(train_sb), "tag_batches": len(tag_sb), **results_memo}
    for i, side in enumerate(("seqtag", "torch")):
        peak, increase = peak_rss(key, side, args)
        results[side] = {"train": train_tokens / train_s[i], "tag": tag_tokens / tag_s[i],
                         "tag_fresh": tag_tokens / fresh_s[i],
                         "latency_ms": latency_s[i] * 1e3, "peak_mb": peak,
                         "increase_mb": increase, "gflops": flops / train_s[i] / 1e9}
    return results


def command_seconds(command):
    """Wall time of one run of `command`, process start to exit, and its result."""
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start, result


def compare_commands(runs):
    """Lines comparing the `seqtag tag` command with `python -c "import torch"`."""
    from seqtag.tagger import DEFAULT_MODEL
    script = os.path.join(os.path.dirname(sys.executable), "seqtag")
    if not os.path.exists(script):
        script = shutil.which("seqtag")
    torch_import = [sys.executable, "-c", "import torch"]
    if not DEFAULT_MODEL.exists():
        lines = [f"seqtag tag: skipped, the bundled model {DEFAULT_MODEL} does not exist yet"]
        times = [command_seconds(torch_import)[0] for _ in range(runs)]
        return lines + [f"python -c 'import torch': {statistics.median(times) * 1e3:.0f} ms "
                        f"(median of {runs})"]
    if script is None:
        return ["seqtag tag: skipped, no installed `seqtag` script found"]
    tag_command = [script, "tag", "The dog ate the apple"]
    ours, theirs = [], []
    for _ in range(runs):  # alternating, like the rounds above
        seconds, result = command_seconds(tag_command)
        if result.returncode != 0:
            return [f"seqtag tag failed: {result.stderr.decode(errors='replace').strip()[-300:]}"]
        ours.append(seconds)
        theirs.append(command_seconds(torch_import)[0])
    ours, theirs = statistics.median(ours), statistics.median(theirs)
    return [f"`seqtag tag \"The dog ate the apple\"` ({script}): {ours * 1e3:.0f} ms, "
            f"`python -c 'import torch'`: {theirs * 1e3:.0f} ms (median of {runs} each; "
            f"ratio {ours / theirs:.2f})"]


# ---- report -------------------------------------------------------------------------------

def ratio(ours, theirs):
    return ours / theirs if theirs else float("nan")


def print_table(all_results, sgemm):
    header = (f"{'config':7}{'side':8}{'train tok/s':>12}{'tag tok/s':>11}{'(fresh)':>9}"
              f"{'latency ms':>11}{'peak RSS MB (+train)':>22}{'GFLOP/s (% sgemm)':>19}")
    print(header)
    print("-" * len(header))
    for key, r in all_results.items():
        for side in ("seqtag", "torch"):
            s = r[side]
            print(f"({key})    {side:8}{s['train']:12.0f}{s['tag']:11.0f}{s['tag_fresh']:9.0f}"
                  f"{s['latency_ms']:11.2f}{s['peak_mb']:12.0f} (+{s['increase_mb']:4.0f})"
                  f"{s['gflops']:11.2f} ({s['gflops'] / sgemm:4.0%})")
        o, t = r["seqtag"], r["torch"]
        r = {k: ratio(o[k], t[k]) for k in o}
        print(f"{'':7}{'ratio':8}{r['train']:12.2f}{r['tag']:11.2f}{r['tag_fresh']:9.2f}"
              f"{r['latency_ms']:11.2f}{r['peak_mb']:12.2f} ({r['increase_mb']:5.2f})"
              f"{r['gflops']:11.2f}")
    print("ratio = seqtag/torch: above 1 seqtag is faster in tok/s and GFLOP/s, "
          "slower in latency, bigger in RSS")
    print("tag tok/s: seqtag with its memo of word projections as a long tagging run has it "
          "(filled by the warm-up round); (fresh): the memo emptied before each pass over "
          "EWT test, so every distinct word of the pass is computed in it (torch: the same "
          "rounds)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None, help="rounds per side (median)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    if args.rounds:
        sizes["rounds"] = args.rounds
    if args.worker:
        worker(*args.worker, args, sizes)
        return

    import torch
    setup_threads(args.threads, torch_too=True)
    sgemm = sgemm_gflops(args.threads, size=sizes["sgemm_size"])
    data = load_data(sizes)
    all_results = {}
    for key in CONFIGS:
        all_results[key] = compare_config(key, data, args, sizes)

    print(machine_line())
    print(f"torch {torch.__version__}, {args.threads} threads on both sides "
          f"(torch.set_num_threads, seqtag RNN threads, NumPy BLAS threads), float32"
          + ("; --quick sizes" if args.quick else ""))
    print(f"data: {data.source}; {len(data.train)} train / {len(data.test)} test sentences, "
          f"{len(data.vocab.words)} words, {len(data.vocab.chars)} chars, "
          f"{len(data.vocab.tags)} tags; {sizes['rounds']} rounds per side (median), "
          f"alternating")
    for key, r in all_results.items():
        print(f"({key}) {CONFIGS[key]['title']}: {r['steps']} training steps / "
              f"{r['train_tokens']} tokens per round, {r['tag_batches']} tagging batches / "
              f"{r['tag_tokens']} tokens per round ({sizes['tag_passes']} passes); seqtag vs torch max |log p diff| at start "
              f"{r['agreement']:.1e}; seqtag memo after tagging: {r['memo_rows']} words, "
              f"{r['memo_mb']:.0f} MB")
    print(f"latency: one {LATENCY_LENGTH}-token sentence, median of "
          f"{sizes['latency_calls']} calls; peak RSS: a separate process per side trains "
          "one round, (+train) = its rise over imports + data")
    print()
    print_table(all_results, sgemm)
    print(f"numpy sgemm {sizes['sgemm_size']}^3, {args.threads} threads: {sgemm:.1f} GFLOP/s "
          "(same run)")
    print()
    for line in compare_commands(sizes["cli_runs"]):
        print(line)
    a = all_results["a"]
    print(f"ratio train={ratio(a['seqtag']['train'], a['torch']['train']):.2f} "
          f"tag={ratio(a['seqtag']['tag'], a['torch']['tag']):.2f}")


if __name__ == "__main__":
    main()
