"""Files of an evaluation: figures per test set (written by the evaluator), the per-volume rows
and how `per_volume.csv` lays them out (written by the run from `EvaluationResult.per_volume`,
`core.run.results`); maps are written as NIfTI while scoring (`core.evaluation.scored_sets.score_set`)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.evaluation.scored_sets import ScoredSet
from dl_utils.checkpoint import atomic_write_csv
from dl_utils.figures import plot_cases, plot_curves, plot_histograms, write_curve_points
from optim.metrics.streaming import RankingSummary

PER_VOLUME_FIRST = ("dataset", "name", "label", "lesion_voxels", "AUPRC", "AUROC", "AUPRC_brain", "AUROC_brain")


def write_figures(name: str, test: ScoredSet, brain: RankingSummary, healthy: RankingSummary | None,
                  thresholds: dict[str, float], folder: Path) -> None:
    """Example cases, ROC / PR curves (pooled brain voxels) and score histograms of one test set."""
    rows = [r.case for r in test.records if r.case is not None]
    if rows:
        plot_cases(rows, folder / f"{name}_cases.png")
    if brain.n_pos and brain.n_neg:
        plot_curves(brain.roc, brain.pr, name, folder / f"{name}_roc_pr.png")
        write_curve_points(folder / f"{name}_roc_pr.json", brain.roc, brain.pr, AUROC=brain.auroc, AUPRC=brain.auprc)
        edges = brain.histogram["edges"]
        series = {"lesion": (edges, brain.histogram["positives"]),
                  "healthy tissue (same volumes)": (edges, brain.histogram["negatives"])}
        if healthy is not None and healthy.n_neg:
            series["healthy volumes"] = (healthy.histogram["edges"], healthy.histogram["negatives"])
        plot_histograms(series, thresholds, name, folder / f"{name}_histogram.png")


def per_volume_rows(scored: ScoredSet) -> list[dict[str, object]]:
    """One row per volume: name, label, lesion voxels, AUPRC / AUROC (whole volume and
    brain), Dice at each threshold protocol, sample score, reconstruction quality, seconds."""
    rows = []
    for r in scored.records:
        row: dict[str, object] = {"dataset": scored.name, "name": r.name, "label": r.label,
                                  "lesion_voxels": "" if r.lesion_voxels is None else r.lesion_voxels}
        row.update(r.metrics)
        row["sample_score"] = r.sample_score
        row.update(r.quality or {})
        row["seconds"] = r.seconds
        rows.append(row)
    return rows


def per_volume_columns(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """`per_volume.csv`'s columns: the fixed ones first, then the union of the rows' keys in order."""
    columns = list(PER_VOLUME_FIRST)
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def csv_cells(row: Mapping[str, object]) -> dict[str, object]:
    """A row as `per_volume.csv` writes it: NaN (not defined) as an empty cell."""
    return {k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def write_per_volume(rows: Sequence[Mapping[str, object]], path: Path) -> None:
    """`per_volume.csv` of one task; empty = not defined."""
    atomic_write_csv(path, (csv_cells(row) for row in rows), per_volume_columns(rows))
