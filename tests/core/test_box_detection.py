"""RA's evaluation in the evaluator: detection rate per image with annotation boxes and the
code's fixed threshold reported beside the fitted ones."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.bench_evaluation import HealthyVolumes, Smoothing, SyntheticVolumes
from core.evaluation.evaluator import AnomalyDetectionEvaluator, EvaluationContext
from core.evaluation.pipeline import ScoringSpec
from core.evaluation.settings import DataRoles, DetectionSettings, OutputSettings
from core.evaluation.thresholds import ThresholdSettings
from data.volume import Volume
from optim.metrics import detection
from optim.scoring.l1 import L1Scorer

SHAPE = (32, 32, 8)  # the box rule reads any shape: the union of boxes is the label mask


def _evaluate(tmp_path, unit: str) -> dict:
    test = SyntheticVolumes(6, SHAPE, 1)
    evaluator = AnomalyDetectionEvaluator(
        context=EvaluationContext(Smoothing(), torch.device("cpu"), {"test": test, "healthy": HealthyVolumes(3, SHAPE, 3)}),
        seed=0, scoring=ScoringSpec(L1Scorer()),
        roles=DataRoles(healthy_validation="healthy", healthy_test="healthy"),
        outputs=OutputSettings(figure_cases=0, save_maps=False), detection=DetectionSettings(unit=unit),
        thresholds=ThresholdSettings(fixed=[0.009], oracle=False))
    return evaluator.run(tmp_path / unit).sets["test"].metrics, test


def test_box_detection_counts_images_by_ras_rule(tmp_path):
    metrics, test = _evaluate(tmp_path, "box")
    assert "DetectionRate@fixed_0.009" in metrics and metrics["threshold@fixed_0.009"] == 0.009
    # by hand: RA's per-image rule on the same maps (the l1 residual of the smoothing model)
    model = Smoothing().eval()
    maps, boxes = [], []
    for volume in test:
        image = volume.image.float()
        with torch.no_grad():
            rec = model.reconstruct(image.permute(2, 0, 1).unsqueeze(1))[0, :, 0].permute(1, 2, 0)
        maps.append(((image - rec).abs() * volume.mask).numpy())
        boxes.append(volume.seg.numpy())
    expected = detection.box_detection_rate(maps, boxes, 0.009).rate
    assert np.isclose(metrics["DetectionRate@fixed_0.009"], expected)


def test_lesion_and_box_units_are_both_reported_under_the_same_names(tmp_path):
    lesion, _ = _evaluate(tmp_path, "lesion")
    box, _ = _evaluate(tmp_path, "box")
    assert {k for k in lesion if k.startswith("DetectionRate@")} == {k for k in box if k.startswith("DetectionRate@")}


class _MapIsImage:
    """Model-free scorer: the image is the anomaly map."""

    num_reconstructions = 0

    def __call__(self, x, recs, mask):
        return x * mask


def _ra_images(n: int = 5) -> list[Volume]:
    """RA-style 2D items: a box with fractional edge weights, its non-lesion region, whole-image mask."""
    rng = np.random.default_rng(3)
    volumes = []
    for i in range(n):
        weights = np.zeros((24, 24), np.float32)
        weights[4 + i:12 + i, 6:14] = 1.0
        weights[3 + i, 6:14] = 0.25  # the resized box's fractional edge
        negative = np.ones((24, 24), bool)
        negative[2 + i:14 + i, 4:16] = False
        amap = (rng.random((24, 24)) * 0.02 + 0.03 * (weights > 0) * rng.random((24, 24))).astype(np.float32)
        volumes.append(Volume(name=f"img{i}", image=torch.from_numpy(amap)[..., None],
                              mask=torch.ones(24, 24, 1, dtype=torch.bool), seg=torch.from_numpy(weights > 0)[..., None],
                              label=1, affine=np.eye(4), negative=torch.from_numpy(negative)[..., None],
                              seg_weights=torch.from_numpy(weights)[..., None]))
    return volumes


def _evaluate_images(tmp_path, images, fixed, unboxed: str = "skip") -> dict:
    evaluator = AnomalyDetectionEvaluator(
        context=EvaluationContext(torch.nn.Identity(), torch.device("cpu"), {"test": images}), seed=0,
        scoring=ScoringSpec(_MapIsImage()), outputs=OutputSettings(figure_cases=0, save_maps=False),
        detection=DetectionSettings(unit="box", unboxed_images=unboxed), thresholds=ThresholdSettings(fixed=fixed, oracle=False, fpr_levels=()))
    return evaluator.run(tmp_path).sets["test"].metrics


def test_box_unit_reports_ras_tp_fp_precision_recall_f1(tmp_path):
    """Issue 18: RA's per-set figures from its box localisation, computed on the stored maps
    with the boxes' resized weights and the non-lesion regions (Volume.seg_weights / negative)."""
    images = _ra_images()
    metrics = _evaluate_images(tmp_path, images, [0.009, 0.04])
    for t in (0.009, 0.04):
        expected = detection.box_localization_summary([
            detection.box_localization(v.image[..., 0].numpy(), v.seg_weights[..., 0].numpy(), v.negative[..., 0].numpy(), t)
            for v in images])
        got = {k.split("@")[0]: v for k, v in metrics.items() if k.endswith(f"@fixed_{t:g}")}
        assert {k: got[k] for k in expected} == pytest.approx(expected, nan_ok=True)
        assert got["Recall"] == pytest.approx(got["DetectionRate"])
    assert metrics["FP@fixed_0.009"] > 0 and 0 < metrics["Precision@fixed_0.009"] < 1  # the cases are not trivial
    assert metrics["TP@fixed_0.04"] == 2 and metrics["Recall@fixed_0.04"] == pytest.approx(0.4)


def test_box_figures_need_the_non_lesion_regions(tmp_path):
    """Without RA's *_neg masks there is no FP figure: only the detection rate is reported."""
    plain = [Volume(name=v.name, image=v.image, mask=v.mask, seg=v.seg, label=1, affine=v.affine) for v in _ra_images(2)]
    metrics = _evaluate_images(tmp_path, plain, [0.009])
    assert "DetectionRate@fixed_0.009" in metrics and "FP@fixed_0.009" not in metrics


def test_images_without_boxes_count_as_misses_with_unboxed_count(tmp_path):
    """Issue 18: with `unboxed_images: count` (ra_paper.yaml) an image without box pixels is a miss
    with its FP figure, as RA's object_localization; `skip` (ours) leaves it out."""
    images = _ra_images(3)
    empty = images[0]
    unboxed = Volume(name="unboxed", image=empty.image, mask=empty.mask, seg=torch.zeros_like(empty.seg), label=1,
                     affine=empty.affine, negative=torch.ones_like(empty.negative),
                     seg_weights=torch.zeros_like(empty.seg_weights))
    skip = _evaluate_images(tmp_path / "skip", images + [unboxed], [0.009])
    count = _evaluate_images(tmp_path / "count", images + [unboxed], [0.009], "count")
    alone = _evaluate_images(tmp_path / "alone", images, [0.009])
    figures = ("TP@", "FP@", "FP_mean@", "FP_std@", "Precision", "Recall", "F1", "DetectionRate@")
    boxed = {k: v for k, v in alone.items() if k.startswith(figures)}
    assert len(boxed) == 11 and {k: skip[k] for k in boxed} == pytest.approx(boxed, nan_ok=True)
    fp = detection.box_false_positives(unboxed.image[..., 0].numpy(), np.zeros((24, 24)), np.ones((24, 24)), 0.009)
    assert fp > 0
    assert count["TP@fixed_0.009"] == skip["TP@fixed_0.009"] and count["FP@fixed_0.009"] == skip["FP@fixed_0.009"] + fp
    assert count["DetectionRate@fixed_0.009"] == pytest.approx(skip["DetectionRate@fixed_0.009"] * 3 / 4)
    assert count["Recall@fixed_0.009"] == pytest.approx(skip["Recall@fixed_0.009"] * 3 / 4)
