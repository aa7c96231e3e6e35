"""Matplotlib figures written as PNG files (Agg backend; no screen needed)."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dl_utils.checkpoint import atomic_path, atomic_write_text  # noqa: E402
from dl_utils.json_files import json_text  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> None:
    try:
        with atomic_path(path, suffix=Path(path).suffix or ".png") as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)


def plot_training_curves(history: Sequence[dict[str, float]], path: Path) -> None:
    """Every `train_*` / `val_*` series against the epoch, log scale when positive."""
    epochs = [h["epoch"] for h in history]
    keys = sorted({k for h in history for k in h if k.startswith(("train_", "val_"))})
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in keys:
        points = [(h["epoch"], h[key]) for h in history if key in h]
        if points:
            ax.plot(*zip(*points), label=key, marker="." if len(epochs) < 30 else None)
    if all(h.get(k, 1) > 0 for h in history for k in keys):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)
    _save(fig, path)


def display_slice(axial: np.ndarray) -> np.ndarray:
    """An axial slice (X, Y) of an RAS volume as `imshow` draws it with row 0 on top: anterior up,
    the patient's right on the right (what `.T` with origin="lower" drew)."""
    return np.asarray(axial).T[::-1]


def plot_cases(rows: Sequence[dict[str, np.ndarray | str]], path: Path) -> None:
    """One row per case: input, reconstruction, anomaly map, input with lesion outline.

    Each row holds 2D arrays `image`, `reconstruction`, `amap`, optional `seg`, and `title`: an axial
    slice (X, Y) of an RAS volume, drawn anterior up, or with `image_2d` true a 2D image (rows, columns)
    drawn as its file has it (row 0 on top).
    """
    fig, axes = plt.subplots(len(rows), 4, figsize=(10, 2.6 * len(rows)), squeeze=False)
    vmax = max(float(np.percentile(r["amap"], 99.5)) for r in rows) or 1.0
    for ax_row, row in zip(axes, rows):
        shown = display_slice if not row.get("image_2d") else np.asarray
        reconstruction = row["reconstruction"] if row.get("reconstruction") is not None else np.zeros_like(row["image"])
        ax_row[0].imshow(shown(row["image"]), cmap="gray", vmin=0, vmax=1)
        ax_row[1].imshow(shown(reconstruction), cmap="gray", vmin=0, vmax=1)
        ax_row[2].imshow(shown(row["amap"]), cmap="inferno", vmin=0, vmax=vmax)
        ax_row[3].imshow(shown(row["image"]), cmap="gray", vmin=0, vmax=1)
        if row.get("seg") is not None and np.any(row["seg"]):
            ax_row[3].contour(shown(row["seg"]).astype(float), levels=[0.5], colors="lime", linewidths=0.8)
        ax_row[0].set_ylabel(str(row["title"]), fontsize=7)
        for ax, title in zip(ax_row, ("input", "reconstruction", "anomaly map", "ground truth")):
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    _save(fig, path)


def plot_curves(roc: tuple[np.ndarray, np.ndarray], pr: tuple[np.ndarray, np.ndarray], title: str, path: Path) -> None:
    """ROC (fpr, tpr) and precision-recall (precision, recall) side by side."""
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(8, 3.5))
    ax_roc.plot(*roc)
    ax_roc.plot([0, 1], [0, 1], "k--", lw=0.5)
    ax_roc.set_xlabel("false-positive rate")
    ax_roc.set_ylabel("true-positive rate")
    ax_roc.set_title(f"ROC, {title}", fontsize=9)
    precision, recall = pr
    ax_pr.plot(recall, precision)
    ax_pr.set_xlabel("recall")
    ax_pr.set_ylabel("precision")
    ax_pr.set_title(f"PR, {title}", fontsize=9)
    _save(fig, path)


def write_curve_points(path: Path, roc: tuple[np.ndarray, np.ndarray], pr: tuple[np.ndarray, np.ndarray],
                       **scalars: float) -> None:
    """The points `plot_curves` draws, as JSON (`roc`: fpr, tpr; `pr`: recall, precision; plus
    `scalars`, e.g. the AUROC / AUPRC they belong to), so a report can redraw them exactly."""
    fpr, tpr = roc
    precision, recall = pr
    payload = {"roc": {"fpr": _floats(fpr), "tpr": _floats(tpr)},
               "pr": {"recall": _floats(recall), "precision": _floats(precision)},
               **{k: float(v) for k, v in scalars.items()}}
    atomic_write_text(path, json_text(payload))


def read_curve_points(path: Path) -> dict:
    """What `write_curve_points` wrote: {"roc": {"fpr", "tpr"}, "pr": {"recall", "precision"}, scalars}
    (a scalar written as null, i.e. undefined, reads as NaN)."""
    points = json.loads(Path(path).read_text())
    return {k: math.nan if v is None else v for k, v in points.items()}


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


def plot_histograms(series: dict[str, tuple[np.ndarray, np.ndarray]], thresholds: dict[str, float], title: str,
                    path: Path) -> None:
    """Normalised histograms of score populations given as {name: (bin edges, counts)},
    with the thresholds as vertical lines; counts come from the streamed sweep."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, (edges, values) in series.items():
        widths = np.diff(edges)
        total = float(np.sum(values))
        if total > 0:
            ax.stairs(values / (total * widths), edges, fill=True, alpha=0.5, label=name)
    for name, value in thresholds.items():
        ax.axvline(value, ls="--", lw=0.8, color="k")
        ax.text(value, ax.get_ylim()[1] * 0.9, name, rotation=90, fontsize=6, va="top")
    ax.set_yscale("log")
    ax.set_xlabel("anomaly score")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_bars(table: dict[str, dict[str, float]], metric: str, path: Path) -> None:
    """Grouped bars: one group per data set, one bar per method (`table[method][data set]`)."""
    methods = list(table)
    sets = sorted({s for row in table.values() for s in row})
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(sets) * max(len(methods), 1) * 0.4), 4))
    for i, method in enumerate(methods):
        values = [table[method].get(s, np.nan) for s in sets]
        ax.bar(np.arange(len(sets)) + i * width, values, width, label=method)
    ax.set_xticks(np.arange(len(sets)) + 0.4 - width / 2)
    ax.set_xticklabels(sets, rotation=20, fontsize=8)
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    _save(fig, path)
