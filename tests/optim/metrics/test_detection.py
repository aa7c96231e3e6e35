import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from optim.metrics.detection import (
    BoxLocalization,
    box_localization,
    box_localization_summary,
    count_detected_lesions,
    detection_rate,
    sample_auroc,
    sample_score,
)


def _two_lesions():
    seg = np.zeros((10, 10, 12), dtype=bool)
    seg[1:3, 1:3, 1:3] = True  # cube, 8 voxels over 2 slices
    seg[7, 7, 1:11] = True  # line, 10 voxels over 10 slices
    amap = np.zeros(seg.shape, dtype=np.float32)
    amap[1, 1, 1] = 1.0  # 1 of 8 cube voxels
    amap[7, 7, 1] = 1.0  # 1 of 10 line voxels
    return amap, seg


def test_detection_3d_hand_case():
    amap, seg = _two_lesions()
    # hand: cube 1/8 = 0.125 > 0.1 detected; line 1/10 = 0.1 not > 0.1
    assert count_detected_lesions(amap, seg, threshold=0.5) == (1, 2)
    result = detection_rate([amap], [seg], threshold=0.5)
    assert (result.rate, result.detected, result.total) == (0.5, 1, 2)


def test_detection_per_slice_hand_case():
    amap, seg = _two_lesions()
    # hand: cube -> 2 slice components of 4 voxels (one has 1/4 above), line -> 10 single voxels
    # (one above): 2 of 12 detected
    assert count_detected_lesions(amap, seg, threshold=0.5, per_slice=True) == (2, 12)
    # count agrees with scipy labelling each slice separately (default 2D structure)
    total = sum(ndimage.label(seg[:, :, d])[1] for d in range(seg.shape[2]))
    assert total == 12


def test_detection_pools_volumes_and_handles_no_lesions():
    amap, seg = _two_lesions()
    result = detection_rate([amap, torch.from_numpy(amap)], [seg, torch.from_numpy(seg)], 0.5, min_fraction=0.05)
    # hand: with min_fraction 0.05 both lesions detected in both volumes
    assert (result.detected, result.total, result.rate) == (4, 4, 1.0)
    empty = detection_rate([amap], [np.zeros_like(seg)], 0.5)
    assert empty.total == 0 and np.isnan(empty.rate)


def test_sample_score_reductions():
    amap = np.arange(200, dtype=np.float32).reshape(10, 10, 2)
    mask = amap < 100
    # hand: values 0..99 -> mean 49.5, max 99; p99 compared with numpy.percentile
    assert sample_score(amap, mask, "mean") == pytest.approx(49.5)
    assert sample_score(amap, mask, "max") == 99.0
    assert sample_score(amap, mask, "p99") == pytest.approx(np.percentile(np.arange(100), 99))
    assert sample_score(amap) == pytest.approx(99.5)
    assert np.isnan(sample_score(amap, np.zeros_like(mask)))
    with pytest.raises(ValueError):
        sample_score(amap, mask, "median")


def test_sample_auroc_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = [0, 0, 1, 1, 0, 1]
    maps = [torch.from_numpy(rng.random((4, 4, 2)).astype(np.float32) + 0.3 * y) for y in labels]
    expected = roc_auc_score(labels, [float(m.mean()) for m in maps])
    scores = [sample_score(m) for m in maps]  # sample_auroc takes the per-volume scores (streaming evaluation)
    assert sample_auroc(scores, labels) == pytest.approx(expected)
    assert np.isnan(sample_auroc(scores[:2], labels[:2]))
    with pytest.raises(ValueError):
        sample_auroc(scores, labels[:2])


def test_box_localization_by_hand():
    """4 x 4 image, box = top-left 2 x 2 (edge weight 0.5 on one pixel), non-lesion = bottom row."""
    boxes = np.zeros((4, 4)); boxes[:2, :2] = 1.0; boxes[1, 1] = 0.5
    negative = np.zeros((4, 4)); negative[3] = 1
    amap = np.zeros((4, 4)); amap[:2, :2] = 0.6; amap[3] = [2.0, 1.0, 0.4, 0.1]
    got = box_localization(amap, boxes, negative, threshold=0.5)
    # hand: 4 of 4 box pixels >= 0.5 -> TP 1; kept map over the box 0.6 * 3.5 = 2.1, over the
    # non-lesion row 2 + 1 = 3 (0.4, 0.1 < 0.5 zeroed): FP = int(3 / max(2.1, 1)) = 1
    assert (got.tp, got.fp) == (1, 1)
    assert got.precision == 0.5 and got.recall == 1.0
    assert got.f1 == pytest.approx(2 * 0.5 / 1.5, abs=1e-8)
    low = box_localization(amap * 0.1, boxes, negative, threshold=0.05)  # box sum 0.21 < 1: FP = int(0.3 / 1) = 0
    assert (low.tp, low.fp, low.precision) == (1, 0, 1.0)
    miss = box_localization(np.where(boxes > 0, 0.0, amap), boxes, negative, threshold=0.5)
    assert (miss.tp, miss.fp, miss.precision, miss.f1) == (0, 3, 0.0, 0.0)


def test_box_localization_summary_by_hand():
    images = [BoxLocalization(1, 1), BoxLocalization(1, 0), BoxLocalization(0, 3)]
    got = box_localization_summary(images)
    assert (got["TP"], got["FP"]) == (2, 4)
    assert got["FP_mean"] == pytest.approx(4 / 3) and got["FP_std"] == pytest.approx(np.std([1, 0, 3]))
    assert got["Precision"] == pytest.approx(np.mean([0.5, 1.0, 0.0]))
    assert got["Recall"] == pytest.approx(2 / 3) and got["Recall_std"] == pytest.approx(np.std([1, 1, 0]))
    f1 = [2 * 0.5 / (1.5 + 1e-8), 2 / (2 + 1e-8), 0.0]
    assert got["F1"] == pytest.approx(np.mean(f1)) and got["F1_std"] == pytest.approx(np.std(f1))
    empty = box_localization_summary([])
    assert empty["TP"] == 0 and np.isnan(empty["Precision"])


def test_detection_counter_keeps_ras_figures_only_with_regions():
    from optim.metrics.detection import DetectionCounter

    boxes = np.zeros((4, 4, 1)); boxes[:2, :2] = 1.0
    negative = np.zeros((4, 4, 1), bool); negative[3] = True
    amap = np.zeros((4, 4, 1)); amap[:2, :2] = 0.6; amap[3, 0] = 2.0
    counter = DetectionCounter("box")
    counter.add(amap, boxes > 0, 0.5, (boxes, negative))
    counter.add(amap, np.zeros_like(boxes, bool), 0.5, (np.zeros_like(boxes), negative))  # no box: not counted
    # hand: hit; FP = int(2.0 / max(0.6 * 4, 1)) = 0
    assert (counter.result().detected, counter.result().total) == (1, 1)
    assert counter.box_figures() == box_localization_summary([BoxLocalization(1, 0)])
    plain = DetectionCounter("box")
    plain.add(amap, boxes > 0, 0.5)
    assert plain.box_figures() == {}
