"""RA's evaluation in the evaluator: detection rate per image with annotation boxes and the
code's fixed threshold reported beside the fitted ones."""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.bench_evaluation import HealthyVolumes, Smoothing, SyntheticVolumes
from core.evaluation.evaluator import AnomalyDetectionEvaluator
from core.evaluation.pipeline import ScoringSpec
from core.evaluation.settings import DataRoles, DetectionSettings, OutputSettings
from core.evaluation.thresholds import ThresholdSettings
from optim.metrics import detection
from optim.scoring.l1 import L1Scorer

SHAPE = (32, 32, 8)  # the box rule reads any shape: the union of boxes is the label mask


def _evaluate(tmp_path, unit: str) -> dict:
    test = SyntheticVolumes(6, SHAPE, 1)
    evaluator = AnomalyDetectionEvaluator(
        model=Smoothing(), device=torch.device("cpu"), seed=0,
        datasets={"test": test, "healthy": HealthyVolumes(3, SHAPE, 3)}, scoring=ScoringSpec(L1Scorer()),
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
