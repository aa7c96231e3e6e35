"""Metrics on arrays or tensors: Dice, AUROC/AUPRC, threshold protocols, detection rate."""

from optim.metrics.aggregate import nan_mean_std
from optim.metrics.detection import (
    DetectionRate,
    Reduction,
    count_detected_lesions,
    detection_rate,
    sample_auroc,
    sample_score,
)
from optim.metrics.ranking import auprc, auroc, precision_recall_curve, roc_curve
from optim.metrics.segmentation import dice, mean_dice, per_volume_dice, pooled_dice
from optim.metrics.thresholds import (
    best_dice_threshold_bisection,
    best_dice_threshold_search,
    binarize,
    fpr_threshold,
    pooled_dice_at_threshold,
)

__all__ = [
    "DetectionRate",
    "Reduction",
    "auprc",
    "auroc",
    "best_dice_threshold_bisection",
    "best_dice_threshold_search",
    "binarize",
    "count_detected_lesions",
    "detection_rate",
    "dice",
    "fpr_threshold",
    "mean_dice",
    "nan_mean_std",
    "per_volume_dice",
    "pooled_dice",
    "pooled_dice_at_threshold",
    "precision_recall_curve",
    "roc_curve",
    "sample_auroc",
    "sample_score",
]
