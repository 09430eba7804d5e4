"""Pictures (seqtag.plot): the data behind them, and real image files from the commands.

The pictures themselves are not compared pixel by pixel: the tests read the files back
(PNG signature and size, SVG and PDF headers) and check the numbers they are drawn from.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from seqtag import cli
from seqtag.corpus import Sentence
from seqtag.evaluate import confusion_matrix
from seqtag.plot import MAX_CLASSES, PLOT_HINT, folded_confusions, training_series

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample.txt"
BUNDLED = REPO / "seqtag" / "models" / "en_ewt_upos.npz"
TINY = ["--epochs", "3", "--hidden", "8", "--word-dim", "8", "--char-dim", "4",
        "--char-hidden", "4", "--layers", "1", "--threads", "1"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

runner = CliRunner()


def invoke(*args):
    return runner.invoke(cli.app, [str(a) for a in args])


def needs_matplotlib():
    return pytest.importorskip("matplotlib", reason="matplotlib is needed to draw pictures "
                               "(pip install 'seqtag[plot]'; the test extra has it)")


def png_size(path):
    """(width, height) of a PNG file, read from its header; fails if it is no PNG."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ---------------------------------------------------------------- the data


HISTORY = [  # dev improves, then stalls twice (a cut with decay_patience 2), then improves
    {"epoch": 1, "loss": 1.0, "train_acc": 0.5, "dev_acc": 0.60, "seconds": 30.0, "lr": 0.002},
    {"epoch": 2, "loss": 0.5, "train_acc": 0.7, "dev_acc": 0.70, "seconds": 30.0, "lr": 0.002},
    {"epoch": 3, "loss": 0.4, "train_acc": 0.8, "dev_acc": 0.69, "seconds": 30.0, "lr": 0.002},
    {"epoch": 4, "loss": 0.3, "train_acc": 0.9, "dev_acc": 0.70, "seconds": 30.0, "lr": 0.001},
    {"epoch": 5, "loss": 0.2, "train_acc": 0.9, "dev_acc": 0.75, "seconds": 60.0, "lr": 0.001},
]


def test_training_series_marks_the_kept_epoch_the_cuts_and_the_time():
    series = training_series(HISTORY, {"lr": None, "optimizer": "adam"})
    assert series["best_epoch"] == 5
    assert series["lr_cuts"] == [4]  # epoch 4 tied the best (0.70 is no improvement)
    assert np.allclose(series["minutes"], [0.5, 1.0, 1.5, 2.0, 3.0])
    # the first of equal best epochs is the one training keeps
    tied = HISTORY[:4] + [dict(HISTORY[4], dev_acc=0.70)]
    assert training_series(tied)["best_epoch"] == 2


def test_training_series_works_out_the_cuts_of_a_history_without_lr():
    old = [{k: v for k, v in r.items() if k != "lr"} for r in HISTORY]
    assert training_series(old, {"decay_patience": 2})["lr_cuts"] == [4]
    assert training_series(old, {"decay_patience": 1})["lr_cuts"] == [3, 4]


def test_a_cut_after_the_first_epoch_is_seen_against_the_starting_rate():
    history = [dict(HISTORY[0], lr=0.001), dict(HISTORY[1], lr=0.001)]
    assert training_series(history, {"lr": 0.002, "optimizer": "adam"})["lr_cuts"] == [1]
    assert training_series(history, {"lr": None, "optimizer": "adam"})["lr_cuts"] == [1]


def test_confusion_matrix_rows_are_gold_tags_by_frequency_normalised_per_row():
    gold = [Sentence(["a"] * 6, ["N", "N", "N", "V", "V", "D"])]
    predicted = [["N", "V", "N", "V", "X", "D"]]
    m = confusion_matrix(gold, predicted)
    assert m["tags"] == ["N", "V", "D", "X"]  # gold by frequency, then only-predicted X
    assert m["counts"] == [[2, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    normalised = np.array(m["normalised"])
    assert np.allclose(normalised[:3].sum(axis=1), 1.0)
    assert np.allclose(normalised[0], [2 / 3, 1 / 3, 0, 0])
    assert not normalised[3].any()  # X is never gold: a row of zeros, no division by zero


def test_a_matrix_over_the_limit_keeps_its_most_frequent_gold_tags_and_folds_the_rest():
    gold = [Sentence(["a"] * 6, ["N", "N", "N", "V", "V", "D"])]
    m = confusion_matrix(gold, [["N", "V", "N", "V", "X", "D"]])
    shown = folded_confusions(m, limit=3)  # N, V kept; D and X (never gold) folded
    assert shown["tags"] == ["N", "V", "(other 2)"] and shown["folded"] == 2
    assert shown["counts"].tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert np.allclose(shown["normalised"], [[2 / 3, 1 / 3, 0], [0, 0.5, 0.5], [0, 0, 1]])
    same = folded_confusions(m, limit=4)  # at the limit: the matrix itself
    assert same["tags"] == m["tags"] and same["folded"] == 0
    assert same["counts"].tolist() == m["counts"]


# ---------------------------------------------------------------- the commands


def test_info_plot_draws_the_bundled_models_recorded_history(tmp_path):
    needs_matplotlib()
    picture = tmp_path / "curves.png"
    result = invoke("info", "--plot", picture)
    assert result.exit_code == 0, result.output
    width, height = png_size(picture)
    assert 800 < width < 2000 and 300 < height < 1000
    assert picture.stat().st_size > 20_000  # curves, labels, a title: not a blank canvas
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("name, header", [("c.svg", b"<?xml"), ("c.pdf", b"%PDF-")])
def test_the_extension_chooses_the_format(tmp_path, name, header):
    needs_matplotlib()
    result = invoke("info", BUNDLED, "--plot", tmp_path / name)
    assert result.exit_code == 0, result.output
    data = (tmp_path / name).read_bytes()
    assert data.startswith(header) and len(data) > 5_000
    if name.endswith(".svg"):
        assert b"<svg" in data and b"accuracy" in data


def test_an_unknown_extension_is_one_line_before_any_work(tmp_path):
    result = invoke("info", "--plot", tmp_path / "curves.jpg")
    assert result.exit_code == 1
    assert result.stderr == (f"seqtag: error: cannot plot to {tmp_path / 'curves.jpg'}: the "
                             "picture's name must end in .png, .svg or .pdf\n")


def test_evaluate_plot_draws_the_confusions_of_50_tags(tmp_path):
    """xpos of EWT-like data has ~50 tags: the heatmap grows with them (cells stay legible)."""
    needs_matplotlib()
    import random
    rng = random.Random(0)
    tags = [f"T{k:02d}" for k in range(50)]
    lines = []
    for s in range(60):
        for i in range(8):
            lines.append(f"{rng.choice(['the', 'dog', 'runs', 'fast', 'home'])}\t"
                         f"{tags[(s * 8 + i) % 50]}")
        lines.append("")
    gold = tmp_path / "gold.tsv"
    gold.write_text("\n".join(lines) + "\n")
    small, large = tmp_path / "few.png", tmp_path / "many.png"
    assert invoke("evaluate", BUNDLED, SAMPLE, "--plot", small).exit_code == 0
    result = invoke("evaluate", BUNDLED, gold, "--plot", large, "--json")
    assert result.exit_code == 0, result.output
    assert "confusion_matrix" not in result.stdout  # drawn, not printed
    (w_small, h_small), (w_large, h_large) = png_size(small), png_size(large)
    assert h_large > 1.4 * h_small and w_large > 1.4 * w_small
    assert h_large / 67 >= 18  # at least 18 pixels per row of 50 gold + 17 predicted tags


def test_train_plot_is_redrawn_each_epoch_and_info_draws_the_same(tmp_path):
    needs_matplotlib()
    from seqtag import Tagger
    model, picture = tmp_path / "m.npz", tmp_path / "train.png"
    result = invoke("train", SAMPLE, "-o", model, "--plot", picture, "--quiet", *TINY)
    assert result.exit_code == 0, result.output
    png_size(picture)
    history = Tagger.load(model).meta["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert all(r["lr"] > 0 for r in history)  # recorded now, for the cut marks
    assert invoke("info", model, "--plot", tmp_path / "info.png").exit_code == 0
    assert png_size(tmp_path / "info.png") == png_size(picture)


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path):
    """A matplotlib that cannot be imported (first on the path): one line, exit 1."""
    fake = tmp_path / "site" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path / "site"), str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("SEQTAG_DEBUG", None)
    for args in (["info", "--plot", tmp_path / "a.png"],
                 ["evaluate", BUNDLED, SAMPLE, "--plot", tmp_path / "b.png"],
                 ["train", SAMPLE, "-o", tmp_path / "m.npz", "--plot", tmp_path / "c.png"]):
        p = subprocess.run([sys.executable, "-m", "seqtag", *map(str, args)],
                           capture_output=True, env=env, timeout=60)
        assert p.returncode == 1
        assert p.stderr.decode() == f"seqtag: error: {PLOT_HINT}\n"
        assert not (tmp_path / "m.npz").exists()  # checked before training
    assert not list(tmp_path.glob("*.png"))


def test_span_models_plot_span_scores_and_are_kept_by_span_f1(tmp_path):
    """For span tags the kept epoch is the best dev span F1, and evaluate --plot adds the
    per-type span scores beside the confusions."""
    needs_matplotlib()
    from seqtag import Tagger
    history = [dict(r, dev_f1=f1) for r, f1 in zip(HISTORY, [0.5, 0.8, 0.6, 0.7, 0.75])]
    series = training_series(history, {"decay_patience": 2})
    assert series["best_epoch"] == 2 and np.allclose(series["dev_f1"][:2], [0.5, 0.8])
    words = ["John", "Smith", "saw", "Paris", "today", "with", "Mary"]
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O", "O", "B-PER"]
    sents = [Sentence(words[k:] + words[:k], tags[k:] + tags[:k]) for k in (0, 2, 3, 5)] * 10
    model = tmp_path / "spans.npz"
    Tagger.train(sents, sents[:4], epochs=2, hidden=8, word_dim=8, char_dim=4, char_hidden=4,
                 layers=1, threads=1).save(model)
    gold = tmp_path / "gold.tsv"
    gold.write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(s.words, s.tags)) + "\n"
                            for s in sents[:4]))
    assert Tagger.load(model).evaluate(sents[:4])["spans"]["default"]["per_type"]
    with_spans, without = tmp_path / "with.png", tmp_path / "without.png"
    assert invoke("evaluate", model, gold, "--plot", with_spans).exit_code == 0
    assert invoke("info", model, "--plot", tmp_path / "curves.png").exit_code == 0
    png_size(tmp_path / "curves.png")
    # the same tags without span scores: the span panel is what makes it wider
    from seqtag.evaluate import confusion_matrix
    from seqtag.plot import plot_evaluation
    tagger = Tagger.load(model)
    predicted = tagger.predict([s.words for s in sents[:4]])
    plot_evaluation(confusion_matrix(sents[:4], predicted), tagger.evaluate(sents[:4])["per_tag"],
                    without, title="no spans")
    assert png_size(with_spans)[0] > png_size(without)[0] + 150


def many_classes(n, seed=0):
    """Gold sentences over n tags of falling frequency (a lemma column), and predictions
    that are mostly right, sometimes another gold tag, sometimes a tag never gold."""
    import random
    rng = random.Random(seed)
    tags = [f"lemma{k}" for k in range(n)]
    gold = [tags[k] for k in range(n)] + [tags[min(int(rng.paretovariate(1.0)), n) - 1]
                                           for _ in range(3 * n)]
    guess = [t if rng.random() < 0.7 else rng.choice(tags) if rng.random() < 0.5
             else f"unseen{rng.randrange(n // 2)}" for t in gold]
    sents = [Sentence(["w"] * len(gold[i:i + 10]), gold[i:i + 10]) for i in range(0, len(gold), 10)]
    return sents, [guess[i:i + 10] for i in range(0, len(guess), 10)]


def test_thousands_of_classes_draw_a_bounded_picture_whose_folded_rows_keep_their_sums(
        tmp_path):
    """A lemma column has thousands of classes: the heatmap draws the MAX_CLASSES - 1 most
    frequent gold ones and one "(other N)" row and column (it was n x n cells: 477 lemmas
    drew 11959 x 11719 pixels, 1,315 ran out of memory)."""
    needs_matplotlib()
    from seqtag.plot import plot_evaluation
    sents, predicted = many_classes(2000)
    m = confusion_matrix(sents, predicted)
    n = len(m["tags"])
    assert n > 2500  # 2,000 gold tags and the never-gold ones predicted
    per_tag = {t: {"f1": 0.5} for t in m["tags"]}
    spans = {"per_type": {f"T{k}": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": k}
                          for k in range(300)}, "micro": {"f1": 0.5}}
    shown = plot_evaluation(m, per_tag, tmp_path / "lemmas.png", title="lemmas", spans=spans)
    width, height = png_size(tmp_path / "lemmas.png")
    assert width < 3500 and height < 3000

    assert len(shown["tags"]) == MAX_CLASSES and shown["folded"] == n - (MAX_CLASSES - 1)
    assert shown["tags"][-1] == f"(other {n - MAX_CLASSES + 1:,})"
    counts, folded = np.array(m["counts"]), shown["counts"]
    kept = [m["tags"].index(t) for t in shown["tags"][:-1]]
    gold_sums = counts.sum(axis=1)
    # the kept tags are the most frequent in gold, in the matrix's order
    assert kept == sorted(kept) and gold_sums[kept].min() >= np.delete(gold_sums, kept).max()
    assert folded.sum(axis=1)[:-1].tolist() == gold_sums[kept].tolist()
    assert folded.sum(axis=1)[-1] == np.delete(gold_sums, kept).sum()
    assert folded.sum(axis=0)[:-1].tolist() == counts.sum(axis=0)[kept].tolist()
    assert folded[:-1, :-1].tolist() == counts[np.ix_(kept, kept)].tolist()
    assert folded.sum() == sum(len(s.words) for s in sents)
    assert np.allclose(shown["normalised"].sum(axis=1), 1.0)

    # the picture says what it folded (SVG keeps its texts as comments)
    plot_evaluation(m, per_tag, tmp_path / "lemmas.svg", title="lemmas", spans=spans)
    svg = (tmp_path / "lemmas.svg").read_text()
    assert f"{n:,} tags: the {n - MAX_CLASSES + 1:,} least frequent in gold folded into " \
           f"(other {n - MAX_CLASSES + 1:,})" in svg
    assert f"the {MAX_CLASSES} most frequent of 300 types" in svg


def test_a_small_tagset_is_drawn_with_every_tag_and_nothing_folded(tmp_path):
    needs_matplotlib()
    from seqtag import Tagger
    from seqtag.corpus import read_corpus
    from seqtag.plot import plot_evaluation
    tagger = Tagger.load(BUNDLED)
    with open(SAMPLE, encoding="utf-8") as f:
        gold = read_corpus(f)
    m = confusion_matrix(gold, tagger.predict([s.words for s in gold]))
    assert 5 < len(m["tags"]) <= 17
    shown = plot_evaluation(m, tagger.evaluate(gold)["per_tag"], tmp_path / "upos.svg",
                            title="upos")
    assert shown["folded"] == 0 and shown["tags"] == m["tags"]
    assert shown["counts"].tolist() == m["counts"]
    svg = (tmp_path / "upos.svg").read_text()
    assert "(other" not in svg and "folded" not in svg
    assert all(f"<!-- {t} -->" in svg for t in m["tags"])  # every tag labelled


def test_evaluate_plot_of_a_thousand_gold_tags_is_a_bounded_picture(tmp_path):
    """The command the lemma column was drawn by: it ends, with a picture of bounded size."""
    needs_matplotlib()
    sents, _ = many_classes(1000, seed=1)
    gold = tmp_path / "lemmas.tsv"
    words = ["the", "dog", "runs", "fast", "home"]
    gold.write_text("".join("".join(f"{words[i % 5]}\t{t}\n" for i, t in enumerate(s.tags))
                            + "\n" for s in sents))
    picture = tmp_path / "lemmas.png"
    result = invoke("evaluate", BUNDLED, gold, "--plot", picture)
    assert result.exit_code == 0, result.output
    width, height = png_size(picture)
    assert width < 3500 and height < 3000
