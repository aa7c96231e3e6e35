"""Metrics of a scored test set at its fitted thresholds (streamed from disk), as a flat dict.

Names say what each number is. The papers' headline values keep the papers' names:
`AUPRC` / `AUROC` = per-volume value over all voxels of the volume, averaged over volumes
(the originals' `AUPRCPerVolMean` / `AUCPerVolMean`, `_std` their `...PerVolStd`);
`AUPRC_per_volume_brain` the same over brain voxels; `AUPRC_pooled_brain` /
`AUPRC_pooled_whole` one value over the voxels of all volumes together (likewise AUROC).
`Dice@<rule>` is the mean per-volume Dice (`DicePerVolMean`), `Dice_pooled@<rule>` the
Dice of all voxels together (rule keys: `core.evaluation.thresholds`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from core.evaluation.scored_sets import ScoredSet
from core.evaluation.settings import DetectionSettings
from core.evaluation.thresholds import FittedThreshold, metric_key
from optim.metrics import detection, segmentation, thresholds
from optim.metrics.aggregate import nan_mean_std
from optim.metrics.streaming import RankingSummary

Binarize = Callable[[np.ndarray, np.ndarray, float], np.ndarray]  # (map, brain mask, threshold) -> lesion mask


def pooled_dice_at(scored: ScoredSet, threshold: float, post: Callable[[np.ndarray], np.ndarray] | None) -> float:
    """Dice of all labelled voxels of `scored` together at `threshold` (`post`: binary steps inside, or None)."""
    totals = np.zeros(3, dtype=np.int64)
    for _, amap, mask, seg in scored.volumes():
        pred = thresholds.binarize(amap, threshold, mask, post)
        totals += (np.count_nonzero(pred & seg), np.count_nonzero(pred), np.count_nonzero(seg))
    return segmentation.dice_from_counts(*(int(t) for t in totals))


def set_metrics(test: ScoredSet, fitted: Mapping[str, FittedThreshold], binarize: Binarize,
                healthy_test: ScoredSet | None, detection_settings: DetectionSettings, brain: RankingSummary,
                whole: RankingSummary) -> dict[str, float]:
    """Metrics of one test set; per-volume Dice per rule is added to each record.

    Detections are counted at the thresholds whose rule counts them (healthy FPR, fixed)."""
    labelled = test.labelled
    metrics: dict[str, float] = {"volumes": float(len(test.records))}
    if labelled:
        for key in ("AUPRC", "AUROC"):  # nanmean / nanstd over volumes, as the originals
            metrics[key], metrics[f"{key}_std"] = nan_mean_std([r.metrics[key] for r in labelled])
            metrics[f"{key}_per_volume_brain"] = nan_mean_std([r.metrics[f"{key}_brain"] for r in labelled])[0]
        metrics["AUPRC_pooled_brain"], metrics["AUROC_pooled_brain"] = brain.auprc, brain.auroc
        metrics["AUPRC_pooled_whole"], metrics["AUROC_pooled_whole"] = whole.auprc, whole.auroc
        totals = {key: np.zeros(3, dtype=np.int64) for key in fitted}
        counters = {key: detection.DetectionCounter(detection_settings.unit, detection_settings.min_fraction,
                                                    detection_settings.per_slice,
                                                    unboxed=detection_settings.unboxed_images)
                    for key, t in fitted.items() if t.counts_detections}
        for record, amap, mask, seg in test.volumes():
            regions = test.box_regions(record) if counters and detection_settings.unit is detection.DetectionUnit.BOX else None
            for key, threshold in fitted.items():
                counts = segmentation.overlap_counts(binarize(amap, mask, threshold.value), seg)
                totals[key] += counts
                record.metrics[metric_key("Dice", key)] = segmentation.dice_from_counts(*counts)
                if key in counters:
                    counters[key].add(amap * mask, seg, threshold.value, regions)  # regions: RA's TP / FP / F1
        for key, threshold in fitted.items():
            metrics[metric_key("Dice", key)] = float(np.mean([r.metrics[metric_key("Dice", key)] for r in labelled]))
            metrics[metric_key("Dice_pooled", key)] = segmentation.dice_from_counts(*(int(t) for t in totals[key]))
            if key in counters:
                metrics[metric_key("DetectionRate", key)] = counters[key].result().rate
                metrics.update({metric_key(name, key): v for name, v in counters[key].box_figures().items()})
            metrics[metric_key("threshold", key)] = float(threshold.value)
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
