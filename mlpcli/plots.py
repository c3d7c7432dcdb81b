"""The pictures of a run: learning curves, the confusion matrix as a heat map, the most
confident mistakes, and several runs' curves side by side. Each function draws a matplotlib
Figure (the Agg canvas: no screen needed) and returns it; artifacts.save_figure writes it.
matplotlib is imported here only, so commands that draw nothing never load it."""

import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullLocator

TRAIN, VALIDATION, KEPT = "tab:blue", "tab:orange", "tab:green"
ACCURACY_TICKS = [0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999]


def curves(rows: Sequence[dict], kept_epoch: int, title: str) -> Figure:
    """Loss and accuracy per epoch, train and validation (a run that held none out: train
    alone), the kept epoch marked; the learning rate on a small panel below. `rows` are
    history.csv's rows."""
    figure = Figure(figsize=(8, 7), layout="constrained")
    figure.suptitle(title)
    if not rows:
        figure.text(0.5, 0.5, "No epoch was recorded: nothing to draw.", ha="center", fontsize=14)
        return figure
    loss, accuracy, rate = figure.subplots(3, 1, sharex=True, height_ratios=[3, 3, 1.2])
    epochs, validated = [int(row["epoch"]) for row in rows], _validated(rows)
    splits = [("train", TRAIN, "train {} (as trained)")]
    if validated:  # data.validation > 0
        splits.append(("val", VALIDATION, "validation {}"))
    for axes, key in ((loss, "loss"), (accuracy, "accuracy")):
        for split, colour, label in splits:
            axes.plot(epochs, _column(rows, f"{split}_{key}"), color=colour, label=label.format(key))
        if kept_epoch:
            axes.axvline(
                kept_epoch, color=KEPT, linestyle="--", linewidth=1, label=f"kept: epoch {kept_epoch}"
            )
        axes.set_ylabel(key)
        axes.grid(alpha=0.3)
    _log_loss(loss, [value for split, _, _ in splits for value in _column(rows, f"{split}_loss")])
    _logit_accuracy(
        accuracy, [value for split, _, _ in splits for value in _column(rows, f"{split}_accuracy")]
    )
    if kept_epoch and validated:  # the kept epoch's validation figures, on their curves
        kept = rows[kept_epoch - 1]
        loss.plot([kept_epoch], [float(kept["val_loss"])], "o", color=KEPT)
        accuracy.plot([kept_epoch], [float(kept["val_accuracy"])], "o", color=KEPT)
        accuracy.annotate(
            f"{float(kept['val_accuracy']):.4f}",
            (kept_epoch, float(kept["val_accuracy"])),
            textcoords="offset points",
            xytext=(4, -14),
            color=KEPT,
        )
    loss.legend(loc="upper right")
    accuracy.legend(loc="lower right")
    rate.plot(epochs, _column(rows, "lr"), color="tab:gray")
    rate.set_ylabel("learning rate")
    rate.set_xlabel("epoch")
    rate.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: shared by all three
    rate.grid(alpha=0.3)
    return figure


def compare(runs: Sequence[tuple[str, Sequence[dict]]], title: str) -> Figure:
    """Validation accuracy and loss per epoch of several runs, each (label, history rows);
    train loss dashed in each run's colour, and the training accuracy dashed for a run that
    held no validation examples out."""
    figure = Figure(figsize=(9, 7), layout="constrained")
    accuracy, loss = figure.subplots(2, 1, sharex=True)
    figure.suptitle(title)
    accuracies, unvalidated = [], False
    for (label, rows), colour in zip(runs, _colours(len(runs))):
        epochs, validated = [int(row["epoch"]) for row in rows], _validated(rows)
        shown = _column(rows, "val_accuracy" if validated else "train_accuracy")
        label += "" if validated else " (no validation split: training accuracy)"
        style = {} if validated else {"linestyle": "--", "linewidth": 1}
        accuracy.plot(epochs, shown, color=colour, label=textwrap.fill(label, 100), **style)
        loss.plot(epochs, _column(rows, "val_loss"), color=colour)
        loss.plot(epochs, _column(rows, "train_loss"), color=colour, linestyle="--", linewidth=1)
        accuracies.extend(shown)
        unvalidated = unvalidated or not validated
    # short enough for the panel's height: the longer "validation accuracy (dashed: …)" was cut off
    _logit_accuracy(accuracy, accuracies, "accuracy; dashed: train" if unvalidated else "validation accuracy")
    _log_loss(
        loss,
        [value for _, rows in runs for key in ("val_loss", "train_loss") for value in _column(rows, key)],
    )
    loss.set_ylabel("loss (dashed: train; log scale)")
    loss.set_xlabel("epoch")
    loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axes in (accuracy, loss):
        axes.grid(alpha=0.3)
    figure.legend(loc="outside lower center", fontsize="small")  # labels can be long: below the plots
    return figure


def confusion(matrix: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """Counts of (true class, predicted class), rows the true class; beside them the same
    matrix normalised by row: the share of each true class given each answer, so classes of
    different sizes compare. Colours are on a log scale so that a handful of confusions shows
    beside a thousand right answers."""
    figure = Figure(figsize=(15, 7), layout="constrained")
    counts, shares = figure.subplots(1, 2)
    figure.suptitle(title)
    support = matrix.sum(axis=1, keepdims=True)
    percent = np.divide(100.0 * matrix, support, out=np.zeros(matrix.shape), where=support > 0)
    _heat_map(counts, matrix, class_names, [str(count) for count in matrix.flat], "examples")
    counts.set_title("examples")
    texts = [f"{share:.1f}" if share else "0" for share in percent.flat]
    _heat_map(shares, percent, class_names, texts, "% of the true class")
    shares.set_title("share of each true class (row), %")
    return figure


def _heat_map(axes, values: np.ndarray, class_names: Sequence[str], texts: list[str], unit: str) -> None:
    """`values` as a heat map on a log scale, zeros white, each cell with its text."""
    n, top = len(class_names), max(float(values.max()), 2.0)
    floor = 0.3 * float(values[values > 0].min()) if (values > 0).any() else 0.3
    # vmin below the smallest value: a single confusion is a visible light blue, not white like an empty cell
    image = axes.imshow(np.ma.masked_equal(values, 0), cmap="Blues", norm=LogNorm(vmin=floor, vmax=top))
    for (row, col), value, text in zip(np.ndindex(values.shape), values.flat, texts):
        dark = value > np.sqrt(floor * top) * 3
        axes.text(col, row, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    axes.set_xticks(range(n), class_names, rotation=45 if max(map(len, class_names)) > 2 else 0, ha="right")
    axes.set_yticks(range(n), class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    bar = axes.figure.colorbar(image, ax=axes, label=f"{unit} (log scale)", shrink=0.8)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def mistakes(
    images: np.ndarray,
    indices: np.ndarray,
    true: np.ndarray,
    predicted: np.ndarray,
    probability: np.ndarray,
    names: Sequence[str],
    title: str,
) -> Figure:
    """A grid of images (n, rows, cols), each titled with its index in the split (as eval.json's
    `mistakes` list it), its true and predicted class and the probability (an mse network's:
    score) the network gave its prediction."""
    columns = 6
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(columns * 1.6, rows * 1.9 + 0.6), layout="constrained")
    figure.suptitle(title)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, image, index, t, p, prob in zip(grid.flat, images, indices, true, predicted, probability):
        axes.imshow(image, cmap="gray_r", vmin=0, vmax=255)
        axes.set_title(f"#{index}: true {names[t]}\nsaid {names[p]} {prob:.2f}", fontsize=8)
    if not len(images):
        grid[0, 0].text(0, 0.5, "no mistakes", fontsize=12)
    return figure


def _logit_accuracy(axes, values: list[float], label: str = "accuracy") -> None:
    """A logit scale spreads 0.9, 0.99 and 0.999 evenly: late progress stays visible. Ticks as
    plain decimals. Linear when a value is exactly 0 or 1, which the logit scale cannot show."""
    axes.set_ylabel(label)
    if not all(0 < value < 1 for value in values):
        return
    axes.set_yscale("logit")
    axes.yaxis.set_major_locator(FixedLocator(ACCURACY_TICKS))
    axes.yaxis.set_minor_locator(NullLocator())
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.set_ylabel(f"{label} (logit scale)")


def _log_loss(axes, values: list[float]) -> None:
    """A log scale for losses, ticked 0.02, 0.03, 0.05, 0.1, … over up to two decades, at the
    powers of ten over more (else the labels pile up)."""
    axes.set_yscale("log")
    positive = [value for value in values if value > 0 and np.isfinite(value)]
    decades = np.log10(max(positive) / min(positive)) if positive else 0
    axes.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0) if decades <= 2 else (1.0,)))
    axes.yaxis.set_minor_locator(NullLocator())
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.set_ylabel("loss (log scale)")


def _column(rows: Sequence[dict], key: str) -> list[float]:
    return [float(row[key]) for row in rows]


def _validated(rows: Sequence[dict]) -> bool:
    """Whether the run of these history rows held out validation examples (data.validation > 0)."""
    return not all(np.isnan(_column(rows, "val_loss")))


def _colours(n: int) -> list:
    from matplotlib import colormaps

    return [colormaps["tab10"](i % 10) for i in range(n)]
