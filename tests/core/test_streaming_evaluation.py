"""The evaluator's memory does not grow with the number of volumes; scratch is cleaned up;
nested runs keep their own log file."""
from __future__ import annotations

import logging
import tracemalloc

import torch

from benchmarks.bench_evaluation import HealthyVolumes, Smoothing, SyntheticVolumes
from core.evaluation.evaluator import AnomalyDetectionEvaluator, EvaluationContext
from core.evaluation.pipeline import ScoringSpec
from core.evaluation.settings import DataRoles, OutputSettings
from dl_utils.run_logger import configure_logging, logging_scope
from optim.metrics import streaming
from optim.postprocessing import RemoveSmallComponents
from optim.scoring.l1 import L1Scorer

SHAPE = (48, 48, 16)  # 147 KB per float32 map


def _peak_bytes(count: int, tmp_path) -> tuple[int, dict]:
    evaluator = AnomalyDetectionEvaluator(
        context=EvaluationContext(Smoothing(), torch.device("cpu"), {"test": SyntheticVolumes(count, SHAPE, 1),
                                  "val": SyntheticVolumes(3, SHAPE, 2), "healthy": HealthyVolumes(3, SHAPE, 3)}),
        seed=0,
        scoring=ScoringSpec(L1Scorer(), binary_postprocessing=[RemoveSmallComponents()]),
        roles=DataRoles(labelled_validation="val", healthy_validation="healthy", healthy_test="healthy"),
        outputs=OutputSettings(figure_cases=1, save_maps=False))
    tracemalloc.start()
    result = evaluator.run(tmp_path / str(count))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, result


def test_peak_memory_does_not_grow_with_volumes(tmp_path, monkeypatch):
    # the sweep's in-memory share is capped by BUDGET / CHUNK pairs; small caps show the
    # flat regime at test sizes (the defaults cap it at ~100 MB)
    monkeypatch.setattr(streaming, "BUDGET", 1 << 15)
    monkeypatch.setattr(streaming, "CHUNK", 1 << 14)
    small, _ = _peak_bytes(4, tmp_path)
    large, result = _peak_bytes(16, tmp_path)
    results = result.to_json()
    # keeping the 12 extra maps alone would add 1.8 MB; allow 1 MB of record bookkeeping
    assert large - small < 1_000_000, (small, large)
    assert results["test"]["volumes"] == 16 and 0 < results["test"]["AUPRC"] <= 1
    assert not (tmp_path / "16" / ".scratch").exists()
    rows = result.per_volume  # the run writes them as per_volume.csv (core.run.results)
    assert len(rows) == 16 + 3 and "Dice@val_dice" in rows[0] and "Dice@fpr_5%" in rows[0]


def test_nested_run_keeps_its_own_log(tmp_path):
    outer, inner = tmp_path / "outer.txt", tmp_path / "inner.txt"
    log = logging.getLogger("tests.nested")
    configure_logging(outer, verbose=False, label="benchmark")
    log.info("before")
    with logging_scope():
        configure_logging(inner, verbose=False, label="DDPM")
        log.info("inside")
    log.info("after")
    for handler in logging.getLogger().handlers:
        handler.flush()
    outer_text, inner_text = outer.read_text(), inner.read_text()
    assert "before" in outer_text and "after" in outer_text and "inside" not in outer_text
    assert "inside" in inner_text and "after" not in inner_text and "[DDPM]" in inner_text
    configure_logging(None, verbose=False)
