"""Files an evaluation writes: figures per test set and anomaly maps as NIfTI."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from core.inference import ScoredVolume
from data.nifti_io import save_nifti
from dl_utils.figures import plot_cases, plot_curves, plot_histograms
from optim.metrics import ranking


def _central_lesion_slice(volume: ScoredVolume) -> int:
    if volume.seg is not None and volume.seg.any():
        return int(np.argmax(volume.seg.sum(axis=(0, 1))))
    return volume.amap.shape[2] // 2


def write_figures(name: str, test: Sequence[ScoredVolume], healthy: Sequence[ScoredVolume] | None,
                  thresholds: dict[str, float], folder: Path) -> None:
    """Example cases, ROC / PR curves and score histograms of one test set."""
    rows = []
    for v in test:
        if v.image is None:
            continue
        z = _central_lesion_slice(v)
        rows.append({"image": v.image[..., z], "reconstruction": None if v.reconstruction is None else v.reconstruction[..., z], "amap": v.amap[..., z],
                     "seg": None if v.seg is None else v.seg[..., z], "title": f"{v.name} z={z}"})
    if rows:
        plot_cases(rows, folder / f"{name}_cases.png")
    labelled = [v for v in test if v.seg is not None and v.seg.any()]
    if labelled:
        scores = np.concatenate([v.amap[v.mask] for v in labelled])
        labels = np.concatenate([v.seg[v.mask] for v in labelled])
        plot_curves(ranking.roc_curve(scores, labels), ranking.precision_recall_curve(scores, labels), name,
                    folder / f"{name}_roc_pr.png")
        series = {"lesion": scores[labels], "healthy tissue (same volumes)": scores[~labels]}
        if healthy:
            series["healthy volumes"] = np.concatenate([v.amap[v.mask] for v in healthy])
        plot_histograms(series, thresholds, name, folder / f"{name}_histogram.png")


def write_maps(test: Sequence[ScoredVolume], folder: Path) -> None:
    """Each anomaly map as `<name>.nii.gz`, aligned with its input through the input's affine."""
    for v in test:
        save_nifti(folder / f"{v.name}_anomaly_map.nii.gz", v.amap.astype(np.float32), v.affine)
