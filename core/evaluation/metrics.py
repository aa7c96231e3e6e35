"""Thresholds and metrics over scored data sets (streamed from disk), as plain dicts.

Names say what each number is. The papers' headline values keep the papers' names:
`AUPRC` / `AUROC` = per-volume value over all voxels of the volume, averaged over volumes
(the originals' `AUPRCPerVolMean` / `AUCPerVolMean`, `_std` their `...PerVolStd`);
`AUPRC_per_volume_brain` the same over brain voxels; `AUPRC_pooled_brain` /
`AUPRC_pooled_whole` one value over the voxels of all volumes together (likewise AUROC).
`Dice@<protocol>` is the mean per-volume Dice (`DicePerVolMean`), `Dice_pooled@` the
Dice of all voxels together.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from core.evaluation.scored_sets import ScoredSet
from optim.metrics import detection, segmentation, thresholds
from optim.metrics.streaming import RankingSummary
from optim.postprocessing import apply_binary_steps

BinaryStep = Callable[[np.ndarray], np.ndarray]


def binary_chain(steps: Sequence[BinaryStep]) -> Callable[[np.ndarray], np.ndarray] | None:
    """The binary post-processing steps as one callable (None without steps)."""
    return partial(apply_binary_steps, list(steps)) if steps else None


def _pooled_dice_at(scored: ScoredSet, threshold: float, post: Callable | None) -> float:
    totals = np.zeros(3, dtype=np.int64)
    for _, amap, mask, seg in scored.volumes():
        pred = thresholds.binarize(amap, threshold, mask, post)
        totals += (np.count_nonzero(pred & seg), np.count_nonzero(pred), np.count_nonzero(seg))
    return segmentation.dice_from_counts(*(int(t) for t in totals))


def best_dice_threshold(scored: ScoredSet, search: str, bisection_steps: int, post: Callable | None,
                        brain: RankingSummary) -> float:
    """`bisection` (the originals' search; `post` applied inside it when given) or `exact`
    (best pooled Dice over all thresholds, from the brain-voxel sweep)."""
    if search == "exact":
        return brain.best_dice_threshold
    high = max((r.map_max for r in scored.labelled), default=0.0)
    return thresholds.bisection_search(lambda t: _pooled_dice_at(scored, t, post), high, bisection_steps)


def fit_thresholds(labelled_val: ScoredSet | None, healthy_val: ScoredSet | None, test: ScoredSet,
                   fpr_levels: Sequence[float], search: str, bisection_steps: int, binary_steps: Sequence[BinaryStep],
                   oracle: bool, summaries: Callable[[ScoredSet], RankingSummary],
                   search_with_binary_postprocessing: bool = True) -> dict[str, float]:
    """Every threshold protocol that its data allow: `val_dice`, `fpr_<p>%`, `oracle_dice`.

    `search_with_binary_postprocessing: false` runs the Dice search on the raw thresholded
    maps, without component removal inside it, as the originals do."""
    post = binary_chain(binary_steps) if search_with_binary_postprocessing else None
    found: dict[str, float] = {}
    if labelled_val is not None and labelled_val.labelled:
        found["val_dice"] = best_dice_threshold(labelled_val, search, bisection_steps, post, summaries(labelled_val))
    if healthy_val is not None and healthy_val.records:
        healthy = summaries(healthy_val)
        for level in fpr_levels:
            found[f"fpr_{level * 100:g}%"] = healthy.quantiles[1.0 - level]
    if oracle and test.lesion_voxels_total > 0:
        found["oracle_dice"] = best_dice_threshold(test, search, bisection_steps, post, summaries(test))
    return found


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if not np.isnan(v)]
    return (float(np.mean(finite)), float(np.std(finite))) if finite else (float("nan"), float("nan"))


def set_metrics(test: ScoredSet, found_thresholds: dict[str, float], binary_steps: Sequence[BinaryStep],
                healthy_test: ScoredSet | None, detection_min_fraction: float, brain: RankingSummary,
                whole: RankingSummary, per_slice_detection: bool = False, detection_unit: str = "lesion") -> dict[str, float]:
    """Metrics of one test set; per-volume Dice per protocol is added to each record.

    Detection rate at the FPR and fixed thresholds: of the lesions (3D components, or 2D per
    slice), or with `detection_unit: box` of the images with annotation boxes (RA's rule)."""
    labelled = test.labelled
    metrics: dict[str, float] = {"volumes": float(len(test.records))}
    if labelled:
        for key in ("AUPRC", "AUROC"):  # nanmean / nanstd over volumes, as the originals
            metrics[key], metrics[f"{key}_std"] = _mean_std([r.metrics[key] for r in labelled])
            metrics[f"{key}_per_volume_brain"] = _mean_std([r.metrics[f"{key}_brain"] for r in labelled])[0]
        metrics["AUPRC_pooled_brain"], metrics["AUROC_pooled_brain"] = brain.auprc, brain.auroc
        metrics["AUPRC_pooled_whole"], metrics["AUROC_pooled_whole"] = whole.auprc, whole.auroc
        post = binary_chain(binary_steps)
        totals = {name: np.zeros(3, dtype=np.int64) for name in found_thresholds}
        lesions = {name: np.zeros(2, dtype=np.int64) for name in found_thresholds if name.startswith(("fpr_", "fixed_"))}
        localized = {name: [] for name in lesions} if detection_unit == detection.DetectionUnit.BOX else {}
        for record, amap, mask, seg in test.volumes():
            regions = test.box_regions(record) if localized and seg.any() else None  # RA's TP / FP / F1
            for name, threshold in found_thresholds.items():
                pred = thresholds.binarize(amap, threshold, mask, post)
                counts = segmentation.overlap_counts(pred, seg)
                totals[name] += counts
                record.metrics[f"Dice@{name}"] = segmentation.dice_from_counts(*counts)
                if name in lesions and detection_unit == detection.DetectionUnit.BOX:
                    lesions[name] += (int(detection.box_hit(amap * mask, seg, threshold, detection_min_fraction)), int(seg.any()))
                    if regions is not None:
                        localized[name].append(detection.box_localization(amap * mask, *regions, threshold, detection_min_fraction))
                elif name in lesions:
                    lesions[name] += detection.count_detected_lesions(amap * mask, seg, threshold, detection_min_fraction,
                                                                      per_slice=per_slice_detection)
        for name, threshold in found_thresholds.items():
            metrics[f"Dice@{name}"] = float(np.mean([r.metrics[f"Dice@{name}"] for r in labelled]))
            metrics[f"Dice_pooled@{name}"] = segmentation.dice_from_counts(*(int(t) for t in totals[name]))
            if name in lesions:
                detected, total = (int(v) for v in lesions[name])
                metrics[f"DetectionRate@{name}"] = detected / total if total else float("nan")
            metrics[f"threshold@{name}"] = float(threshold)
            if localized.get(name):
                metrics.update({f"{k}@{name}": v for k, v in detection.box_localization_summary(localized[name]).items()})
    anomalous = [r for r in test.records if r.label == 1]
    if healthy_test is not None and healthy_test.records and anomalous:
        records = list(healthy_test.records) + anomalous
        metrics["SampleAUROC"] = detection.sample_auroc([r.sample_score for r in records],
                                                        [0] * len(healthy_test.records) + [1] * len(anomalous))
    metrics.update(mean_reconstruction_quality(test))
    metrics["seconds_per_volume"] = float(np.mean([r.seconds for r in test.records])) if test.records else float("nan")
    return metrics


def mean_reconstruction_quality(scored: ScoredSet) -> dict[str, float]:
    """Mean MAE / PSNR / SSIM of reconstructions over the volumes (empty for model-free scorers)."""
    rows = [r.quality for r in scored.records if r.quality]
    return {k: float(np.mean([row[k] for row in rows])) for k in rows[0]} if rows else {}
