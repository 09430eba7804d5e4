"""Spans with a CRF: Universal NER English-EWT, seqtag against a PyTorch BiLSTM-CRF, and
what the CRF costs, in one run.

    python bench/spans.py [--parts accuracy,torch,speed,decoding] [--workdir DIR] [--quick] [--seed N]

accuracy  `seqtag train en_ewt-ud-dev.iob2` with every default (output layer auto: a CRF
          for these span tags; 10 % of dev held out to pick the epoch), and the same with
          --output-layer softmax; each model's span scores on test (`seqtag evaluate
          --json`: seqeval's default mode, per type, micro, macro; strict IOB2 too).
torch     the same network in PyTorch (the seqtag CRF model's options: char BiLSTM, word
          embedding, word-shape embedding, 2-layer BiLSTM, dropout 0.5, word dropout as
          seqtag's) with bench/torch_crf.py's CRF on top, on the same split, batches,
          vocabulary, optimizer (Adam 2e-3, betas 0.9/0.9, clipping at 5) and as many
          epochs as the seqtag CRF run took; the epoch with the best held-out span F1 is
          scored on test.  Both sides decode with
          seqtag.crf.viterbi, constrained to IOB2 (the decoder is not what is compared).
          seqtag averages its weights (--average 0.999), the reference does not.
speed     training steps per epoch, CRF against softmax, on the same network (the CRF
          model's options), batches and initial weights (alternating rounds, median); tagging UNER test with both models through
          Tagger.predict (Viterbi against argmax), alternating rounds, median.
decoding  the CRF model on the held-out dev sentences and on test, decoded constrained
          and unconstrained: what the constraints do to span F1.

Prints one line per figure and ends with `ratio crf_train=X crf_tag=Y` (CRF / softmax
time per epoch, Viterbi / argmax tagging throughput).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine_line, shared_dir  # noqa: E402

from seqtag import Tagger, spans  # noqa: E402
from seqtag.corpus import read_corpus  # noqa: E402
from seqtag.network import Batch, Network  # noqa: E402
from seqtag.optim import clip_by_global_norm  # noqa: E402
from seqtag.train import epoch_batches, make_optimizer, split_dev  # noqa: E402
from seqtag.config import TrainingConfig  # noqa: E402
from seqtag.vocab import SHAPES, Vocabulary  # noqa: E402


def uner(split):
    return shared_dir() / "data" / "uner-english-ewt" / f"en_ewt-ud-{split}.iob2"


def seqtag_cli(*args):
    command = [sys.executable, "-m", "seqtag", *map(str, args)]
    print("$ seqtag " + " ".join(map(str, args)), flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stderr)
    return result


def span_line(name, scores):
    per = "  ".join(f"{t} {s['f1']:.3f}" for t, s in scores["per_type"].items())
    m = scores["micro"]
    return (f"{name:<28} F1 {m['f1']:.3f} (P {m['precision']:.3f} R {m['recall']:.3f})  "
            f"{per}  macro F1 {scores['macro']['f1']:.3f}")


# ---- accuracy: the command line with its defaults ------------------------------------------

def accuracy(workdir, quick, seed=None):
    results = {}
    extra = ["--epochs", "2"] if quick else []
    if seed is not None:  # the held-out split, initial weights and batches all follow it
        extra += ["--seed", str(seed)]
    for name, options in (("crf", []), ("softmax", ["--output-layer", "softmax"])):
        model = workdir / f"uner_{name}.npz"
        start = time.perf_counter()
        seqtag_cli("train", uner("dev"), "-o", model, "-q", *options, *extra)
        seconds = time.perf_counter() - start
        scores = json.loads(seqtag_cli("evaluate", model, uner("test"), "--json").stdout)
        meta = Tagger.load(model).meta["scores"]
        results[name] = {"model": model, "scores": scores, "meta": meta, "seconds": seconds}
        print(f"{name}: epoch {meta['best_epoch']} of {meta['epochs_run']} kept (held-out "
              f"dev span F1 {meta['dev_span_f1']:.3f}), trained in {seconds:.0f} s; test "
              f"token accuracy {scores['accuracy']:.4f}")
        print(span_line(f"  test, seqeval default", scores["spans"]["default"]))
        print(span_line(f"  test, strict IOB2", scores["spans"]["strict"]))
    return results


# ---- torch: the same network with a PyTorch CRF -----------------------------------------

def torch_network(net, n_words, n_chars, n_tags):
    """seqtag's network (options `net`: NetworkConfig's) in torch.nn: embeddings of the
    word, its characters (BiLSTM, final states) and its shape -> dropout -> BiLSTM layers
    (dropout between) -> dropout -> linear.  Returns the module; forward(tb) gives the
    per-token scores in torch's packed order (compare_torch.torch_batch's layout)."""
    import torch
    from torch import nn
    from torch.nn.utils.rnn import PackedSequence

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embedding = nn.Embedding(n_words, net["word_dim"])
            self.char_embedding = nn.Embedding(n_chars, net["char_dim"])
            self.shape_embedding = nn.Embedding(len(SHAPES), net["shape_dim"])
            self.char_rnn = nn.LSTM(net["char_dim"], net["char_hidden"], bidirectional=True)
            width = net["word_dim"] + 2 * net["char_hidden"] + net["shape_dim"]
            # dropout between layers, as seqtag's (none with one layer)
            self.rnn = nn.LSTM(width, net["hidden"], num_layers=net["layers"],
                               bidirectional=True,
                               dropout=net["dropout"] if net["layers"] > 1 else 0.0)
            self.dropout = nn.Dropout(net["dropout"])
            self.output = nn.Linear(2 * net["hidden"], n_tags)

        def forward(self, tb):
            c = tb.chars
            _, (h_n, _) = self.char_rnn(PackedSequence(
                self.char_embedding(c.data), c.batch_sizes, c.sorted_indices,
                c.unsorted_indices))
            forms = torch.cat([h_n[0], h_n[1]], dim=1)
            x = torch.cat([self.word_embedding(tb.word_ids), forms[tb.form_ids],
                           self.shape_embedding(tb.shapes)], dim=1)
            s = tb.layout
            out, _ = self.rnn(PackedSequence(self.dropout(x), s.batch_sizes,
                                             s.sorted_indices, s.unsorted_indices))
            return self.output(self.dropout(out.data))

    return Tagger()


def torch_reference(epochs, net, threads, quick, seed=None):
    import torch
    import compare_torch as ct
    import torch_crf
    from seqtag.crf import viterbi

    torch.manual_seed(1 if seed is None else seed)
    torch.set_num_threads(threads)
    opts = TrainingConfig() if seed is None else TrainingConfig(seed=seed)
    sentences = read_corpus(uner("dev"))
    train, held_out = split_dev(sentences, opts.dev_fraction, opts.seed)
    test = read_corpus(uner("test"))
    if quick:
        train, held_out, test = train[:200], held_out[:50], test[:100]
    vocab = Vocabulary.build(train)
    tags = vocab.tags
    constraints = spans.transition_constraints(tags, "IOB2")
    model = torch_network(net, len(vocab.words), len(vocab.chars), len(tags))
    C = len(tags)
    transitions = torch.nn.Parameter(torch.zeros(C, C))
    start, end = torch.nn.Parameter(torch.zeros(C)), torch.nn.Parameter(torch.zeros(C))
    params = list(model.parameters()) + [transitions, start, end]
    optimizer = torch.optim.Adam(params, lr=ct.LR, betas=ct.BETAS)
    rng = np.random.default_rng(opts.seed)
    word_dropout = net["word_dropout"]

    def batch_for_torch(batch):
        tb = ct.torch_batch(batch, chars=True)
        shapes = np.empty_like(batch.form_of_row)
        shapes[batch.flat_index] = batch.form_shapes[batch.form_of_row]
        tb.shapes = torch.from_numpy(shapes[tb.rows])
        return tb

    def emissions_of(tb):
        return model(tb)

    def padded(tb, values, packing):
        # torch's packed rows -> (B, T, ...) in the caller's sentence order
        flat = torch.empty_like(values)
        flat[torch.from_numpy(tb.rows)] = values
        out, k = [], 0
        for n in packing.lengths:
            out.append(flat[k:k + n])
            k += n
        return torch.nn.utils.rnn.pad_sequence(out, batch_first=True)

    def span_f1(sents):
        model.eval()
        predicted = []
        with torch.inference_mode():
            for k in range(0, len(sents), 256):
                chunk = sents[k:k + 256]
                batch = Batch([s.words for s in chunk], vocab)
                tb = batch_for_torch(batch)
                em = emissions_of(tb).numpy()
                flat = np.empty_like(em)
                flat[tb.rows] = em
                packed = np.ascontiguousarray(flat[batch.flat_index])
                ids, _ = viterbi(packed, batch.packing, transitions.detach().numpy(),
                                 start.detach().numpy(), end.detach().numpy(), constraints)
                by_sentence = np.empty_like(ids)
                by_sentence[batch.flat_index] = ids
                bounds = np.cumsum([0] + [len(s) for s in chunk])
                predicted += [[tags[j] for j in by_sentence[bounds[i]:bounds[i + 1]]]
                              for i in range(len(chunk))]
        model.train()
        return spans.span_scores([s.tags for s in sents], predicted)

    best, history = None, []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        for ids in epoch_batches(train, opts.batch_size, rng):
            sents = [train[i] for i in ids]
            batch = Batch([s.words for s in sents], vocab, [s.tags for s in sents])
            counts = vocab.word_counts[batch.word_ids]
            drop = rng.random(len(counts)) < word_dropout / (word_dropout + counts)
            batch.word_ids = np.where(drop, 1, batch.word_ids)
            tb = batch_for_torch(batch)
            em = padded(tb, emissions_of(tb), batch.packing)
            gold = padded(tb, tb.tags, batch.packing)
            mask = padded(tb, torch.ones_like(tb.tags, dtype=torch.bool), batch.packing)
            loss = -torch_crf.log_likelihood(em, gold, mask, transitions, start,
                                             end).sum() / batch.n_tokens
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, ct.CLIP)
            optimizer.step()
        dev = span_f1(held_out)["micro"]["f1"]
        seconds = time.perf_counter() - started
        history.append(dev)
        if best is None or dev > best[0]:
            best = (dev, epoch, span_f1(test))
        print(f"  torch epoch {epoch:3d}  held-out span F1 {dev:.3f}  {seconds:.1f}s"
              f"{'  *' if best[1] == epoch else ''}", flush=True)
    print(f"torch: epoch {best[1]} of {epochs} kept (held-out dev span F1 {best[0]:.3f})")
    print(span_line("  test, seqeval default", best[2]))
    return best


# ---- speed: CRF against softmax on the same network -------------------------------------

def speed(results, rounds, quick):
    opts = TrainingConfig()
    train = read_corpus(uner("dev"))
    test = read_corpus(uner("test"))
    if quick:
        train, test = train[:300], test[:200]
    vocab = Vocabulary.build(train)
    rng = np.random.default_rng(0)
    batches = [Batch([train[i].words for i in ids], vocab, [train[i].tags for i in ids])
               for ids in epoch_batches(train, opts.batch_size, rng)]
    nets = {}
    config = Tagger.load(results["crf"]["model"]).network.config
    for kind in ("softmax", "crf"):
        net = Network(dict(config, output_layer=kind), len(vocab.words), len(vocab.chars),
                      len(vocab.tags), seed=1, threads=opts.threads)
        if net.crf is not None:
            net.crf.set_tags(vocab.tags)
        nets[kind] = (net, make_optimizer(net.arrays(), opts))

    def epoch(kind):
        net, optimizer = nets[kind]
        step_rng = np.random.default_rng(1)
        start = time.perf_counter()
        for batch in batches:
            _, dense, sparse, _ = net.loss_and_gradients(batch, step_rng)
            clip_by_global_norm(dense, sparse, opts.clip)
            optimizer.step(dense, sparse)
            net.changed()
        return time.perf_counter() - start

    train_times = {"softmax": [], "crf": []}
    for _ in range(rounds):
        for kind in ("softmax", "crf"):
            train_times[kind].append(epoch(kind))
    train_ratio = statistics.median(train_times["crf"]) / statistics.median(
        train_times["softmax"])
    tokens = sum(b.n_tokens for b in batches)
    for kind in ("softmax", "crf"):
        t = statistics.median(train_times[kind])
        print(f"train {kind:<8} {t:6.2f} s per epoch ({tokens / t:,.0f} tokens/s, median of "
              f"{rounds})")
    print(f"CRF training costs {100 * (train_ratio - 1):+.1f} % per epoch over softmax")

    taggers = {kind: Tagger.load(results[kind]["model"]) for kind in ("softmax", "crf")}
    words = [s.words for s in test]
    n_tokens = sum(map(len, words))
    for tagger in taggers.values():
        tagger.predict(words)  # fill the memo: the steady state of a long run
    tag_times = {"softmax": [], "crf": []}
    for _ in range(rounds):
        for kind, tagger in taggers.items():
            start = time.perf_counter()
            tagger.predict(words)
            tag_times[kind].append(time.perf_counter() - start)
    for kind in ("softmax", "crf"):
        print(f"tag {kind:<8} {n_tokens / statistics.median(tag_times[kind]):,.0f} tokens/s "
              f"(UNER test, Tagger.predict, median of {rounds})")
    tag_ratio = statistics.median(tag_times["softmax"]) / statistics.median(tag_times["crf"])
    print(f"Viterbi tagging runs at {100 * tag_ratio:.1f} % of softmax tagging's throughput")
    return train_ratio, tag_ratio


# ---- decoding: constrained or not --------------------------------------------------------

def decoding(results):
    tagger = Tagger.load(results["crf"]["model"])
    opts = TrainingConfig()
    _, held_out = split_dev(read_corpus(uner("dev")), opts.dev_fraction, opts.seed)
    for name, sents in (("held-out dev", held_out), ("test", read_corpus(uner("test")))):
        gold = [s.tags for s in sents]
        for constrained in (True, False):
            if not constrained:
                tagger.network.crf.constraints = None
            predicted = tagger.predict([s.words for s in sents])
            ill = sum(spans.to_scheme(t, "IOB2") != t for t in predicted)
            scores = spans.span_scores(gold, predicted)
            print(span_line(f"  {name}, {'constrained' if constrained else 'unconstrained'}",
                            scores) + f"  ill-formed sentences {ill}")
        tagger.network.crf.set_tags(tagger.tagset)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="accuracy,torch,speed,decoding")
    parser.add_argument("--workdir", type=Path, default=Path("bench_spans_out"))
    parser.add_argument("--rounds", type=int, default=5)
    # torch's accuracy does not depend on its threads, and on a busy 2-core machine its
    # two threads spin against each other (30x slower measured): one
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="tiny runs: checks the script")
    parser.add_argument("--seed", type=int, default=None, help="seed of both sides' split, "
                        "initial weights and batches (default: seqtag's default seed)")
    args = parser.parse_args()
    parts = args.parts.split(",")
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) at start")
    results = {}
    if "accuracy" in parts or "speed" in parts or "decoding" in parts:
        if "accuracy" in parts or not (args.workdir / "uner_crf.npz").exists():
            results = accuracy(args.workdir, args.quick, args.seed)
        else:
            results = {k: {"model": args.workdir / f"uner_{k}.npz"} for k in ("crf", "softmax")}
    if "torch" in parts:
        reference = Tagger.load(args.workdir / "uner_crf.npz")
        torch_reference(reference.meta["scores"]["epochs_run"], reference.network.config,
                        args.threads, args.quick, args.seed)
    if "decoding" in parts:
        decoding(results)
    if "speed" in parts:
        train_ratio, tag_ratio = speed(results, 2 if args.quick else args.rounds, args.quick)
        print(f"load: {os.getloadavg()[0]:.2f} (1 min) at the end")
        print(f"ratio crf_train={train_ratio:.3f} crf_tag={tag_ratio:.3f}")


if __name__ == "__main__":
    main()
