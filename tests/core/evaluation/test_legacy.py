"""Config version 1: the evaluator's flat params keep working, moved into today's groups."""
from __future__ import annotations

import pytest
import torch

from benchmarks.bench_evaluation import HealthyVolumes, Smoothing, SyntheticVolumes
from core.config.builder import ComponentBuilder
from core.evaluation.evaluator import AnomalyDetectionEvaluator, EvaluationContext
from core.evaluation.legacy import FLAT_KEYS
from core.evaluation.settings import DataRoles, DetectionSettings, OutputSettings
from core.evaluation.thresholds import ThresholdSettings
from core.run.results import TIMING_KEYS

FLAT = {
    "scorer": {"module_name": "optim.scoring.l1", "class_name": "L1Scorer", "params": {}},
    "binary_postprocessing": [{"module_name": "optim.postprocessing", "class_name": "RemoveSmallComponents", "params": {}}],
    "healthy_validation": "healthy", "healthy_test": "healthy", "labelled_validation": "val",
    "fpr_levels": [0.05], "threshold_search": "exact", "bisection_steps": 4, "oracle": False, "fixed_thresholds": [0.2],
    "detection_min_fraction": 0.2, "detection_unit": "lesion", "figure_cases": 0, "save_maps": False,
    "slice_batch_size": 7, "precision": "fp32", "skip_if_unavailable": False,
}
group_flat_params = AnomalyDetectionEvaluator.upgrade_params


def _evaluator(params: dict, tmp_path):
    spec = {"module_name": "core.DownstreamEvaluator", "class_name": "AnomalyDetectionEvaluator", "params": params}
    datasets = {"test": SyntheticVolumes(3, (16, 16, 4), 1), "val": SyntheticVolumes(2, (16, 16, 4), 2),
                "healthy": HealthyVolumes(2, (16, 16, 4), 3)}
    return ComponentBuilder("test.yaml").build(spec, "downstream_tasks.detection", seed=0,
                                               context=EvaluationContext(Smoothing(), torch.device("cpu"), datasets))


def test_flat_params_are_grouped():
    grouped = group_flat_params(FLAT)
    assert set(grouped) == {"scoring", "roles", "thresholds", "detection", "outputs"}
    assert grouped["scoring"]["inference"] == {"slice_batch_size": 7, "precision": "fp32"}
    assert grouped["thresholds"] == {"fpr_levels": [0.05], "search": "exact", "bisection_steps": 4, "oracle": False, "fixed": [0.2]}
    assert group_flat_params(grouped) == grouped  # today's form passes unchanged
    assert len(FLAT_KEYS) == 27  # every flat parameter of version 1


def test_flat_and_grouped_configs_build_the_same_evaluator_and_results(tmp_path):
    flat, grouped = _evaluator(FLAT, tmp_path), _evaluator(group_flat_params(FLAT), tmp_path)
    assert flat.roles == grouped.roles == DataRoles("val", "healthy", "healthy")
    assert flat.threshold_settings == grouped.threshold_settings == ThresholdSettings([0.05], "exact", 4, False, [0.2])
    assert flat.detection == DetectionSettings(0.2) and flat.outputs == OutputSettings(0, False)
    assert flat.pipeline.spec.inference.slice_batch_size == 7
    untimed = [{name: {k: v for k, v in metrics.items() if k not in TIMING_KEYS} for name, metrics in r.to_json().items()}
               for r in (flat.run(tmp_path / "a"), grouped.run(tmp_path / "b"))]
    assert untimed[0] == untimed[1]


def test_a_flat_key_over_a_grouped_one_overrides_it(caplog):
    out = group_flat_params({"thresholds": {"fpr_levels": [0.01]}, "fpr_levels": [0.05]})
    assert out == {"thresholds": {"fpr_levels": [0.05]}}
    assert "thresholds.fpr_levels" in caplog.text


def test_a_flat_key_whose_group_is_not_a_mapping_is_refused():
    with pytest.raises(ValueError, match="roles"):
        group_flat_params({"roles": "x", "fit_set": "h"})


def test_upgrade_warnings_wait_for_the_config_to_be_accepted(caplog):
    """A command holds them while it checks its config (`HeldWarnings`): logged once when it is accepted,
    dropped when it is refused, so the refusal is one line."""
    from dl_utils.param_groups import HeldWarnings

    both = {"thresholds": {"fpr_levels": [0.01]}, "fpr_levels": [0.05]}
    with HeldWarnings() as held:
        group_flat_params(both)
        group_flat_params(both)  # checked twice (e.g. resume, then build): said once
        assert "fpr_levels" not in caplog.text
        held.release()
    assert caplog.text.count("thresholds.fpr_levels") == 2  # 'overrides X; write it as X': one message
    caplog.clear()
    with pytest.raises(ValueError), HeldWarnings():
        group_flat_params(both)
        raise ValueError("refused")
    assert "fpr_levels" not in caplog.text
