import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from optim.metrics.detection import (
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
