"""Thresholds and metrics over scored volumes (methods.md section 8), as plain dicts."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from core.inference import ScoredVolume
from optim.metrics import detection, ranking, segmentation, thresholds

BinaryStep = Callable[[np.ndarray], np.ndarray]


def _chain(steps: Sequence[BinaryStep]) -> BinaryStep | None:
    if not steps:
        return None

    def apply(binary: np.ndarray) -> np.ndarray:
        for step in steps:
            binary = np.asarray(step(binary)).astype(bool)
        return binary

    return apply


def brain_scores(volumes: Sequence[ScoredVolume]) -> np.ndarray:
    return np.concatenate([v.amap[v.mask] for v in volumes]) if volumes else np.zeros(0, np.float32)


def fit_thresholds(labelled_val: Sequence[ScoredVolume] | None, healthy_val: Sequence[ScoredVolume] | None,
                   test: Sequence[ScoredVolume], fpr_levels: Sequence[float], search: str, bisection_steps: int,
                   binary_steps: Sequence[BinaryStep], oracle: bool) -> dict[str, float]:
    """Every threshold protocol that its data allow: `val_dice`, `fpr_<p>%`, `oracle_dice`."""
    post = _chain(binary_steps)

    def best_dice(volumes: Sequence[ScoredVolume]) -> float:
        maps, segs, masks = [v.amap for v in volumes], [v.seg for v in volumes], [v.mask for v in volumes]
        if search == "bisection":
            return thresholds.best_dice_threshold_bisection(maps, segs, masks, num_steps=bisection_steps, postprocess_binary=post)
        return thresholds.best_dice_threshold_search(maps, segs, masks)

    found: dict[str, float] = {}
    if labelled_val:
        found["val_dice"] = best_dice(labelled_val)
    if healthy_val:
        healthy = brain_scores(healthy_val)
        for level in fpr_levels:
            found[f"fpr_{level * 100:g}%"] = thresholds.fpr_threshold(healthy, fpr=level)
    if oracle and any(v.seg is not None and v.seg.any() for v in test):
        found["oracle_dice"] = best_dice([v for v in test if v.seg is not None])
    return found


def set_metrics(test: Sequence[ScoredVolume], found_thresholds: dict[str, float], binary_steps: Sequence[BinaryStep],
                healthy_test: Sequence[ScoredVolume] | None, detection_min_fraction: float,
                sample_reduction: str, per_slice_detection: bool = False) -> dict[str, float]:
    """Metrics of one test set: pixel ranking (pooled and per volume), Dice per threshold
    protocol, detection rate, sample-level AUROC and inference time."""
    labelled = [v for v in test if v.seg is not None]
    metrics: dict[str, float] = {"volumes": float(len(test))}
    if labelled:
        brain_s = np.concatenate([v.amap[v.mask] for v in labelled])
        brain_l = np.concatenate([v.seg[v.mask] for v in labelled])
        whole_s = np.concatenate([v.amap.ravel() for v in labelled])
        whole_l = np.concatenate([v.seg.ravel() for v in labelled])
        metrics["AUPRC"] = ranking.auprc(brain_s, brain_l)
        metrics["AUROC"] = ranking.auroc(brain_s, brain_l)
        metrics["AUPRC_whole"] = ranking.auprc(whole_s, whole_l)
        metrics["AUROC_whole"] = ranking.auroc(whole_s, whole_l)
        per_vol = [ranking.auprc(v.amap.ravel(), v.seg.ravel()) for v in labelled if v.seg.any()]
        metrics["AUPRC_per_volume"] = float(np.nanmean(per_vol)) if per_vol else float("nan")
        post = _chain(binary_steps)
        for name, threshold in found_thresholds.items():
            preds = [thresholds.binarize(v.amap, threshold, v.mask, post) for v in labelled]
            segs = [v.seg for v in labelled]
            metrics[f"Dice@{name}"] = segmentation.mean_dice(preds, segs)
            metrics[f"Dice_pooled@{name}"] = segmentation.pooled_dice(preds, segs)
            if name.startswith("fpr_"):
                found_lesions = detection.detection_rate(
                    [v.amap * v.mask for v in labelled], segs, threshold, min_fraction=detection_min_fraction,
                    per_slice=per_slice_detection,
                )
                metrics[f"DetectionRate@{name}"] = found_lesions.rate
            metrics[f"threshold@{name}"] = float(threshold)
    anomalous = [v for v in test if v.label == 1]
    if healthy_test and anomalous:
        scores = [detection.sample_score(v.amap, v.mask, reduction=sample_reduction) for v in list(healthy_test) + anomalous]
        labels = [0] * len(healthy_test) + [1] * len(anomalous)
        metrics["SampleAUROC"] = ranking.auroc(np.asarray(scores), np.asarray(labels))
    metrics.update(mean_reconstruction_quality(test))
    metrics["seconds_per_volume"] = float(np.mean([v.seconds for v in test])) if test else float("nan")
    return metrics


def mean_reconstruction_quality(volumes: Sequence[ScoredVolume]) -> dict[str, float]:
    """Mean MAE / PSNR / SSIM of reconstructions over the volumes (empty for model-free scorers)."""
    rows = [v.reconstruction_quality for v in volumes if v.reconstruction_quality]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}
