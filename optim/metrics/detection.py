"""Lesion-level detection rate and sample-level (healthy vs anomalous) scores.

Detection rate as in RA (Bercea et al.): a lesion counts as detected when more than
``min_fraction`` of its voxels exceed the threshold. A lesion is a 3D connected component
of the ground truth (``scipy.ndimage.label``), or with ``per_slice=True`` a 2D component
of one axial slice (axis 2 of (H, W, D); 2D images are D = 1 volumes).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from dl_utils.options import parse_option
from optim.metrics.aggregate import nan_mean_std
from optim.metrics.arrays import check_same_shape, to_numpy
from optim.metrics.ranking import auroc

_RANK_3D = {6: 1, 18: 2, 26: 3}


class DetectionUnit(enum.StrEnum):
    """What a detection rate counts: lesions (connected components) or images with boxes (RA)."""

    LESION = "lesion"
    BOX = "box"


class UnboxedImages(enum.StrEnum):
    """What box detection does with an image of a labelled set that has no box pixels."""

    SKIP = "skip"  # ours: nothing to detect, left out of the detection rate and of TP / FP / precision / recall / F1
    COUNT = "count"  # RA's object_localization: a miss (TP 0, recall 0) with its FP figure (the thresholded map
    # summed over the non-lesion region), in the rate's denominator and every per-set figure


class Reduction(enum.StrEnum):
    """Per-volume score from a map: mean, max or 99th percentile of the brain voxels."""

    MEAN = "mean"
    MAX = "max"
    P99 = "p99"


@dataclass(frozen=True)
class DetectionRate:
    """Share of detected lesions (NaN without lesions) and the counts."""

    rate: float
    detected: int
    total: int


def lesion_structure(connectivity: int = 26, per_slice: bool = False) -> np.ndarray:
    """3x3x3 element for ``scipy.ndimage.label``: 3D 6/18/26-connectivity, or with
    ``per_slice`` only the middle axial plane (26/18 -> 8-connected, 6 -> 4-connected in 2D)."""
    if connectivity not in _RANK_3D:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    if not per_slice:
        return ndimage.generate_binary_structure(3, _RANK_3D[connectivity])
    element = np.zeros((3, 3, 3), dtype=bool)
    element[:, :, 1] = ndimage.generate_binary_structure(2, 1 if connectivity == 6 else 2)
    return element


def count_detected_lesions(amap: Any, seg: Any, threshold: float, min_fraction: float = 0.1,
                           per_slice: bool = False, connectivity: int = 26) -> tuple[int, int]:
    """(detected, total) lesions of one (H, W, D) volume; detected if
    mean(amap[lesion] > threshold) > min_fraction."""
    a, g = to_numpy(amap), to_numpy(seg).astype(bool, copy=False)
    check_same_shape(a, g, "map and seg")
    if g.ndim != 3:
        raise ValueError(f"expected an (H, W, D) volume, got shape {g.shape}")
    labels, count = ndimage.label(g, structure=lesion_structure(connectivity, per_slice))
    if count == 0:
        return 0, 0
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=count + 1)[1:]
    hits = np.bincount(flat, weights=(a > threshold).ravel(), minlength=count + 1)[1:]
    return int(np.count_nonzero(hits > min_fraction * sizes)), int(count)


class DetectionCounter:
    """Detected / total counts accumulated one volume at a time (the evaluator streams volumes
    from disk): lesions (3D components, or 2D per slice) or, with unit `box`, images with
    annotation boxes (RA's rule, `box_hit`). `detection_rate` and `box_detection_rate` are this
    counter over a list. With unit `box` and an image's `regions` (its box values as read and
    non-lesion region), RA's per-image TP / FP are kept too (`box_figures`). `unboxed`: images
    without box pixels left out (`skip`) or counted as misses with their FP (`count`, RA)."""

    def __init__(self, unit: DetectionUnit = DetectionUnit.LESION, min_fraction: float = 0.1, per_slice: bool = False,
                 connectivity: int = 26, unboxed: UnboxedImages = UnboxedImages.SKIP) -> None:
        self.unit = parse_option(DetectionUnit, unit, "detection unit")
        self.unboxed = parse_option(UnboxedImages, unboxed, "detection unboxed_images")
        self.min_fraction, self.per_slice, self.connectivity = float(min_fraction), bool(per_slice), int(connectivity)
        self.detected = self.total = 0
        self.localized: list[BoxLocalization] = []

    def add(self, amap: Any, seg: Any, threshold: float, regions: tuple[Any, Any] | None = None) -> None:
        """Count one (H, W, D) map against its lesion labels (boxes for unit `box`; `regions`:
        (box values, non-lesion region) for RA's FP figure, or None)."""
        if self.unit is DetectionUnit.BOX:
            if self.unboxed is UnboxedImages.COUNT or np.count_nonzero(to_numpy(seg)):
                hit = int(box_hit(amap, seg, threshold, self.min_fraction))
                self.detected += hit
                self.total += 1
                if regions is not None:
                    self.localized.append(BoxLocalization(hit, box_false_positives(amap, *regions, threshold)))
            return
        d, t = count_detected_lesions(amap, seg, threshold, self.min_fraction, self.per_slice, self.connectivity)
        self.detected, self.total = self.detected + d, self.total + t

    def result(self) -> DetectionRate:
        rate = self.detected / self.total if self.total else float("nan")
        return DetectionRate(rate=rate, detected=self.detected, total=self.total)

    def box_figures(self) -> dict[str, float]:
        """RA's per-set TP, FP, precision, recall, F1 (`box_localization_summary`) of the images
        added with regions; empty if none was."""
        return box_localization_summary(self.localized) if self.localized else {}


def detection_rate(maps: Sequence[Any], segs: Sequence[Any], threshold: float,
                   min_fraction: float = 0.1, per_slice: bool = False,
                   connectivity: int = 26) -> DetectionRate:
    """Detected share of all lesions of all volumes (RA's detection rate, pooled over lesions)."""
    if len(maps) != len(segs):
        raise ValueError(f"maps and segs: {len(maps)} vs {len(segs)} volumes")
    counter = DetectionCounter(DetectionUnit.LESION, min_fraction, per_slice, connectivity)
    for amap, seg in zip(maps, segs):
        counter.add(amap, seg, threshold)
    return counter.result()


def box_hit(amap: Any, boxes: Any, threshold: float, min_fraction: float = 0.1) -> bool:
    """RA's per-image hit on annotation boxes (ci-ber/RA object_localization): more than
    ``min_fraction`` of the box pixels (any non-zero value of ``boxes``, the union of an image's
    boxes) have a non-zero map value ``>= threshold``."""
    a, b = to_numpy(amap), to_numpy(boxes)
    check_same_shape(a, b, "map and boxes")
    inside = b != 0
    reached = np.count_nonzero((a >= threshold) & (a != 0) & inside)
    return bool(reached > min_fraction * np.count_nonzero(inside))


def box_false_positives(amap: Any, boxes: Any, negative: Any, threshold: float) -> int:
    """RA's per-image FP figure: int(sum of the thresholded map over the non-lesion region /
    max(its sum over the boxes, 1)), as reported by their code (not a count of regions). Compared
    and summed in the map's own float type, as theirs (a float32 map value equal to a threshold
    given as a Python float reaches it, as in `box_hit`)."""
    a, b, n = to_numpy(amap), to_numpy(boxes), to_numpy(negative)
    check_same_shape(a, b, "map and boxes")
    check_same_shape(a, n, "map and negative")
    a = a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64)
    kept = np.where(a < threshold, a.dtype.type(0), a)
    return int((kept * n).sum() / max((kept * b).sum(), 1.0))


@dataclass(frozen=True)
class BoxLocalization:
    """RA's figures of one image at one threshold (ci-ber/RA `object_localization`): a hit
    (their TP, 0 or 1) and their FP figure; precision, recall and F1 follow from them as there."""

    tp: int
    fp: int

    @property
    def precision(self) -> float:
        """tp / max(tp + fp, 1)."""
        return self.tp / max(self.tp + self.fp, 1)

    @property
    def recall(self) -> float:
        """The hit itself (one annotated region per image)."""
        return float(self.tp)

    @property
    def f1(self) -> float:
        """2 precision recall / (precision + recall + 1e-8), with RA's epsilon."""
        return 2 * (self.precision * self.tp) / (self.precision + self.tp + 1e-8)


def box_localization(amap: Any, boxes: Any, negative: Any, threshold: float,
                     min_fraction: float = 0.1) -> BoxLocalization:
    """RA's per-image TP (``box_hit``) and FP (``box_false_positives``). ``boxes``: the resized
    annotation as read (fractional at the box edges: their FP figure weighs the map by it)."""
    return BoxLocalization(tp=int(box_hit(amap, boxes, threshold, min_fraction)),
                           fp=box_false_positives(amap, boxes, negative, threshold))


def box_localization_summary(images: Sequence[BoxLocalization]) -> dict[str, float]:
    """The per-set figures RA logs: sums of TP and FP over the images, and mean / std
    (``numpy.nanmean`` / ``nanstd``, population std) of FP, precision, recall and F1.
    Empty: NaN everywhere, sums 0."""
    figures: dict[str, float] = {"TP": float(sum(i.tp for i in images)), "FP": float(sum(i.fp for i in images))}
    for key, values in (("FP_mean", [i.fp for i in images]), ("Precision", [i.precision for i in images]),
                        ("Recall", [i.recall for i in images]), ("F1", [i.f1 for i in images])):
        figures[key], figures[f"{key.removesuffix('_mean')}_std"] = nan_mean_std(values)
    return figures


def box_detection_rate(maps: Sequence[Any], boxes: Sequence[Any], threshold: float,
                       min_fraction: float = 0.1, unboxed: UnboxedImages = UnboxedImages.SKIP) -> DetectionRate:
    """Share of images with annotation boxes that ``box_hit`` (RA's detection rate, per image);
    images without box pixels are not counted (`skip`) or count as misses (`count`, RA)."""
    if len(maps) != len(boxes):
        raise ValueError(f"maps and boxes: {len(maps)} vs {len(boxes)} images")
    counter = DetectionCounter(DetectionUnit.BOX, min_fraction, unboxed=unboxed)
    for amap, box in zip(maps, boxes):
        counter.add(amap, box, threshold)
    return counter.result()


def sample_score(amap: Any, mask: Any | None = None, reduction: Reduction = Reduction.MEAN) -> float:
    """One anomaly score per volume from the map's voxels inside ``mask`` (all if None).

    ``mean`` (RA's choice), ``max`` or ``p99`` (``numpy.percentile(values, 99)``, linear).
    NaN for an empty mask.
    """
    how = parse_option(Reduction, reduction, "reduction")
    values = to_numpy(amap)
    if mask is not None:
        m = to_numpy(mask).astype(bool, copy=False)
        check_same_shape(values, m, "map and mask")
        values = values[m]
    values = values.reshape(-1).astype(np.float64)
    if values.size == 0:
        return float("nan")
    if how is Reduction.MEAN:
        return float(values.mean())
    if how is Reduction.MAX:
        return float(values.max())
    return float(np.percentile(values, 99))


def sample_auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """AUROC of per-volume scores (``sample_score``) against sample labels (1 anomalous,
    0 healthy); matches ``sklearn.metrics.roc_auc_score``; NaN if one class is absent."""
    if len(scores) != len(labels):
        raise ValueError(f"scores and labels: {len(scores)} vs {len(labels)} volumes")
    return auroc(np.asarray(scores, dtype=np.float64), np.asarray(labels))
