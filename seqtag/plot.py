"""Pictures: training curves, and a confusion heatmap with per-tag F1 bars.

Matplotlib is an optional extra (``pip install 'seqtag[plot]'``): it is imported only
when a picture is drawn (``--plot``), through its non-interactive Agg canvas, so
nothing here needs a display and nothing changes matplotlib's global backend.  The data
behind each picture (training_series here, seqtag.evaluate.confusion_matrix) is computed without
matplotlib, so it can be checked on its own.

Pictures are written atomically (seqtag.modelfile.atomic_write_bytes): `train --plot`
rewrites its picture after every epoch, and a viewer never sees half a file.  The
format follows the file's extension: .png (also for a name without one), .svg or .pdf.
"""

from __future__ import annotations

import io
import os
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import SeqtagError

__all__ = ["FORMATS", "PLOT_HINT", "check_path", "require_matplotlib", "training_series",
           "plot_training", "folded_confusions", "plot_evaluation"]

#: Extensions a picture may have, and the format each means.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", "": "png"}

#: What to do when matplotlib is missing: the one line the command line prints.
PLOT_HINT = "--plot needs matplotlib: pip install 'seqtag[plot]'"

#: Most tags whose counts are written in the heatmap's cells (beyond, they would not fit).
ANNOTATE_MAX_TAGS = 24

#: Most rows (and columns) the heatmap draws, and span types the span panel draws: a cell
#: is 0.24 inch (24 pixels) beyond 29 tags, so 80 rows make a heatmap of about 2,000
#: pixels a side.  A larger tagset (lemmas, features) keeps its MAX_CLASSES - 1 most
#: frequent gold tags and folds the others into one row and column "(other N)".
MAX_CLASSES = 80

#: Longest tag name drawn as it is; longer ones are cut, ending in "…".
MAX_LABEL = 60


def check_path(path: str | os.PathLike[str]) -> str:
    """The format of a picture path (png, svg or pdf); SeqtagError for another extension or
    a folder that does not exist.  Called before any work, so a long run cannot end with a
    picture it cannot write."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise SeqtagError(f"cannot plot to {path}: the picture's name must end in .png, .svg "
                          "or .pdf")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SeqtagError(f"cannot plot to {path}: directory {folder} does not exist")
    return FORMATS[ext]


def require_matplotlib(path: str | os.PathLike[str]) -> None:
    """Check, before any work, that a picture can be drawn to `path`: its extension, its
    folder, and matplotlib (else the one-line SeqtagError PLOT_HINT)."""
    check_path(path)
    _pyplot_figure()


def _pyplot_figure():
    """matplotlib's Figure class (on the Agg canvas, no display, no global state); the
    one-line SeqtagError PLOT_HINT if matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise SeqtagError(PLOT_HINT) from None
    return Figure


def _save(figure, path):
    from .modelfile import atomic_write_bytes

    fmt = check_path(path)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=100, bbox_inches="tight",
                   metadata={"Software": None} if fmt == "png" else None)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as e:
        raise SeqtagError(f"cannot write picture {os.fspath(path)}: "
                          f"{e.strerror or e}") from None


# ---------------------------------------------------------------- training curves


def training_series(history: Sequence[Mapping[str, Any]],
                    training: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the training picture shows, from a model's recorded history (one dict per
    epoch: epoch, loss, train_acc, dev_acc, seconds and, since seqtag 0.1 records it, lr):
    {"epoch", "loss", "train_acc", "dev_acc", "minutes" (wall time at each epoch's end),
    "dev_f1" (dev span F1 for span tags, else None), "best_epoch" (the first epoch with
    the best dev score, span F1 for span tags, else accuracy: the one kept),
    "lr_cuts" (epochs after which the learning rate was cut)}.

    A history without lr (models made before it was recorded) has its cuts worked out
    from the rule training follows, given the run's options (training: decay_patience):
    after every decay_patience-th epoch in a row without a better dev score."""
    if not history:
        raise SeqtagError("the model records no training history to plot")
    epochs = [int(r["epoch"]) for r in history]
    dev = np.array([float(r["dev_acc"]) for r in history])
    # span tags: the epoch is chosen by dev span F1 (seqtag.train), so the marks follow it
    spans = all(r.get("dev_f1") is not None for r in history)
    dev_f1 = np.array([float(r["dev_f1"]) for r in history]) if spans else None
    chosen_by = dev_f1 if dev_f1 is not None else dev
    series = {
        "epoch": np.array(epochs),
        "loss": np.array([float(r["loss"]) for r in history]),
        "train_acc": np.array([float(r["train_acc"]) for r in history]),
        "dev_acc": dev,
        "dev_f1": dev_f1,
        "minutes": np.cumsum([float(r["seconds"]) for r in history]) / 60.0,
        "best_epoch": epochs[int(np.argmax(chosen_by))],
    }
    if all("lr" in r for r in history):
        # each record holds the rate after its epoch: a cut shows as a drop from the one
        # before (for the first epoch, from the run's starting rate)
        lrs = [float(r["lr"]) for r in history]
        start = _starting_lr(training)
        previous = [start if start is not None else lrs[0]] + lrs[:-1]
        series["lr_cuts"] = [e for e, lr, before in zip(epochs, lrs, previous) if lr < before]
    else:
        patience = int((training or {}).get("decay_patience") or 0)
        cuts, best, stale = [], -1.0, 0
        for e, d in zip(epochs, chosen_by):
            if d > best:
                best, stale = d, 0
            else:
                stale += 1
                if patience and stale % patience == 0:
                    cuts.append(e)
        series["lr_cuts"] = cuts
    return series


def _starting_lr(training):
    if not training:
        return None
    from .config import DEFAULT_LR
    lr = training.get("lr")
    return float(lr) if lr is not None else DEFAULT_LR.get(training.get("optimizer"))


def plot_training(history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *,
                  title: str, training: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Draw the training curves to `path`: loss (left) and train/dev accuracy (right) per
    epoch, the kept epoch marked with a star and a line, learning-rate cuts as dotted lines,
    the wall time on the top axis.  Returns training_series(history, training)."""
    series = training_series(history, training)
    Figure = _pyplot_figure()
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    epoch = series["epoch"]
    loss_ax.plot(epoch, series["loss"], marker="o", markersize=3, color="tab:red")
    loss_ax.set_ylabel("training loss (mean negative log-likelihood)")
    loss_ax.set_title("loss")
    acc_ax.plot(epoch, 100 * series["train_acc"], marker="o", markersize=3, label="train")
    acc_ax.plot(epoch, 100 * series["dev_acc"], marker="o", markersize=3, label="dev")
    kept_by, what = series["dev_acc"], "dev"
    if series["dev_f1"] is not None:
        acc_ax.plot(epoch, 100 * series["dev_f1"], marker="o", markersize=3,
                    label="dev span F1")
        kept_by, what = series["dev_f1"], "dev span F1"
    best = series["best_epoch"]
    best_dev = 100 * kept_by[list(epoch).index(best)]
    acc_ax.plot([best], [best_dev], marker="*", markersize=14, color="tab:green",
                linestyle="none", label=f"kept: epoch {best}, {what} {best_dev:.2f} %")
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.set_title("accuracy")
    for ax in (loss_ax, acc_ax):
        ax.axvline(best, color="tab:green", linewidth=1, alpha=0.6)
        for k, cut in enumerate(series["lr_cuts"]):
            ax.axvline(cut + 0.5, color="grey", linestyle=":", linewidth=1,
                       label="learning rate cut" if k == 0 and ax is acc_ax else None)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(epoch) > 1:
            ax.set_xlim(epoch[0] - 0.5, epoch[-1] + 0.5)
        _time_axis(ax, epoch, series["minutes"])
    acc_ax.legend(loc="lower right", fontsize="small")
    fig.suptitle(title)
    _save(fig, path)
    return series


def _time_axis(ax, epoch, minutes):
    """Wall time (minutes, at each epoch's end) as a second x axis on top."""
    x = np.concatenate([[epoch[0] - 1], epoch]).astype(float)
    t = np.concatenate([[0.0], minutes])
    if len(x) < 2 or not np.all(np.diff(t) > 0):
        return
    top = ax.secondary_xaxis("top", functions=(lambda e: np.interp(e, x, t),
                                               lambda m: np.interp(m, t, x)))
    top.set_xlabel("wall time (minutes)")


# ---------------------------------------------------------------- confusions


def folded_confusions(matrix: Mapping[str, Any], limit: int = MAX_CLASSES) -> dict[str, Any]:
    """The confusion matrix the heatmap draws: `matrix` (seqtag.evaluate.confusion_matrix's)
    itself when it has at most `limit` tags; else its limit - 1 most frequent gold tags (in
    the matrix's order) and one more row and column "(other N)" holding the N others' counts,
    so every row and column sum stays the true one.  {"tags", "counts", "normalised" (each
    row divided by its sum) as numpy arrays, "folded": N (0 when nothing is folded)}."""
    tags = list(matrix["tags"])
    n = len(tags)
    if n <= limit:
        return {"tags": tags, "counts": np.asarray(matrix["counts"]).reshape(n, n),
                "normalised": np.asarray(matrix["normalised"], dtype=float).reshape(n, n),
                "folded": 0}
    # a row at a time: no n x n array beside the matrix given, however many the tags
    gold = np.array([np.asarray(row, dtype=np.int64).sum() for row in matrix["counts"]])
    keep = np.sort(np.argsort(-gold, kind="stable")[:limit - 1])
    into = np.full(n, limit - 1)  # the folded row (and column) of each tag
    into[keep] = np.arange(limit - 1)
    folded = np.zeros((limit, limit), dtype=np.int64)
    for i, row in enumerate(matrix["counts"]):
        row = np.asarray(row, dtype=np.int64)
        folded[into[i], :-1] += row[keep]
        folded[into[i], -1] += gold[i] - row[keep].sum()
    rows = folded.sum(axis=1, keepdims=True)
    normalised = np.divide(folded, rows, out=np.zeros(folded.shape), where=rows > 0)
    return {"tags": [tags[i] for i in keep] + [f"(other {n - len(keep):,})"],
            "counts": folded, "normalised": normalised, "folded": n - len(keep)}


def _label(tag):
    return tag if len(tag) <= MAX_LABEL else tag[:MAX_LABEL - 1] + "…"


def plot_evaluation(matrix: Mapping[str, Any], per_tag: Mapping[str, Mapping[str, float]],
                    path: str | os.PathLike[str], *, title: str,
                    spans: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Draw the confusion heatmap (rows: gold tags by frequency, each normalised by its
    gold count; counts written in the cells where they fit) beside each gold tag's F1 as
    bars on the same rows, to `path`.  matrix: seqtag.evaluate.confusion_matrix's; per_tag: the scores'
    {tag: {"f1", "support", ...}}; spans: for span tags, seqtag.spans.span_scores' result,
    drawn as a third panel of span precision, recall and F1 per type.

    At most MAX_CLASSES rows and columns are drawn (folded_confusions: the others folded
    into "(other N)", said in the heatmap's title) and at most MAX_CLASSES span types, so
    the picture's size stays bounded whatever the tagset.  Returns the matrix drawn
    (folded_confusions')."""
    Figure = _pyplot_figure()
    if not matrix["tags"]:
        raise SeqtagError("nothing to plot: the gold corpus has no tokens")
    shown = folded_confusions(matrix)
    tags, counts, normalised = shown["tags"], shown["counts"], shown["normalised"]
    n = len(tags)
    # a cell of about 0.22 inch at most tags, larger for few: 50 tags stay legible
    cell = max(0.24, min(0.5, 7.0 / n))
    side = max(4.0, n * cell + 1.8)
    label_size = max(7.0, min(10.0, 220.0 / n))
    widths = [side, 2.4] + ([3.2] if spans else [])
    fig = Figure(figsize=(sum(widths) + 0.8, side + 0.8), layout="constrained")
    grid = fig.add_gridspec(1, len(widths), width_ratios=widths)
    heat_ax = fig.add_subplot(grid[0])
    bar_ax = fig.add_subplot(grid[1], sharey=heat_ax)
    image = heat_ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto",
                           interpolation="nearest")
    positions = np.arange(n)
    labels = [_label(t) for t in tags]
    heat_ax.set_xticks(positions, labels, rotation=90, fontsize=label_size)
    heat_ax.set_yticks(positions, labels, fontsize=label_size)
    heat_ax.set_xlabel("predicted tag")
    heat_ax.set_ylabel("gold tag (most frequent first)")
    heat_ax.set_title("confusions (each row: share of the gold tag's tokens)" + (
        f"\n{len(matrix['tags']):,} tags: the {shown['folded']:,} least frequent in gold "
        f"folded into {tags[-1]}" if shown["folded"] else ""))
    if n <= ANNOTATE_MAX_TAGS:
        size = max(5.0, min(8.0, 160.0 / n))
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    dark = normalised[i, j] > 0.55
                    heat_ax.text(j, i, f"{counts[i, j]:,}", ha="center", va="center",
                                 fontsize=size, color="white" if dark else "black")
    fig.colorbar(image, ax=heat_ax, fraction=0.04, pad=0.01, label="share of the gold row")
    scored = tags[:-1] if shown["folded"] else tags  # the folded row has no F1 of its own
    f1 = [100 * float((per_tag.get(t) or {}).get("f1") or 0.0) for t in scored]
    bar_ax.barh(positions[:len(f1)], f1, color="tab:blue", height=0.7)
    bar_ax.set_xlim(0, 100)
    bar_ax.set_xlabel("F1 (%)")
    bar_ax.set_title("per-tag F1")
    bar_ax.grid(axis="x", alpha=0.3)
    bar_ax.tick_params(axis="y", labelleft=False)
    for i, value in enumerate(f1):  # inside a long bar, after a short one
        inside = value > 25
        bar_ax.text(value - 1 if inside else value + 1, i, f"{value:.1f}", va="center",
                    ha="right" if inside else "left", fontsize=label_size * 0.85,
                    color="white" if inside else "black")
    if shown["folded"]:
        bar_ax.text(1, n - 1, "no F1 (folded)", va="center", ha="left",
                    fontsize=label_size * 0.85, color="grey")
    if spans:
        _span_panel(fig.add_subplot(grid[2]), spans)
    fig.suptitle(title)
    _save(fig, path)
    return shown


def _span_panel(ax, spans):
    """Span precision, recall and F1 per type (most gold spans first; the MAX_CLASSES
    first), micro F1 in the title."""
    per_type = spans.get("per_type") or {}
    ranked = sorted(per_type, key=lambda t: (-per_type[t].get("support", 0), t))
    types = ranked[:MAX_CLASSES]
    positions = np.arange(len(types))
    for k, (key, color) in enumerate((("precision", "tab:orange"), ("recall", "tab:purple"),
                                      ("f1", "tab:blue"))):
        values = [100 * float(per_type[t].get(key) or 0.0) for t in types]
        ax.barh(positions + (k - 1) * 0.27, values, height=0.27, color=color, label=key)
    ax.set_yticks(positions, [f"{_label(t)} ({per_type[t].get('support', 0):,})"
                              for t in types])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("%")
    micro = (spans.get("micro") or {}).get("f1")
    ax.set_title("spans per type (gold count)" + (
        f": micro F1 {100 * micro:.2f}" if micro is not None else "") + (
        f"\nthe {len(types)} most frequent of {len(ranked):,} types" if len(ranked) > len(types)
        else ""))
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
