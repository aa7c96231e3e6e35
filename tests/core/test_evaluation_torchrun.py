"""Evaluation sharded over `torchrun --nproc_per_node=2` (gloo, CPU) equals one process exactly:
every metric in results.json and every per-volume value (stochastic DDPM reconstructions)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.config.builder import ComponentBuilder
from core.config.configurator import load_config
from dl_utils.checkpoint import save_checkpoint
from tests.demo_like_data import write_demo_like
from tests.test_projects_end_to_end import ROOT, shrink

TORCHRUN = Path(sys.executable).parent / "torchrun"


def _run(command: list[str], out: Path) -> Path:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert run_dir.is_relative_to(out) and (run_dir / "per_volume.csv").is_file()
    return run_dir


def _without_timing(results: dict) -> dict:
    return {t: {d: {k: v for k, v in m.items() if k != "seconds_per_volume"} for d, m in sets.items()}
            for t, sets in results.items()}


def _per_volume(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "per_volume.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun not installed")
def test_two_rank_evaluation_equals_one_process(tmp_path):
    data = write_demo_like(tmp_path / "data")
    config = ROOT / "projects/DDPM/configs/ddpm.yaml"
    model = ComponentBuilder(config).build(load_config(config)["model"], "model")
    torch.manual_seed(0)
    weights = tmp_path / "ddpm.pt"
    save_checkpoint({"model_weights": model.state_dict()}, weights)
    runs = []
    for label, launcher in (("one", [sys.executable]), ("two", [str(TORCHRUN), "--standalone", "--nproc_per_node=2"])):
        out = tmp_path / label
        overrides = shrink(config, data, out, training=False) + [
            "--set", "experiment.task=test", "--set", f"experiment.weights={weights}"]
        runs.append(_run([*launcher, "core/Main.py", "--config_path", str(config), "--quiet", *overrides], out))
    one, two = runs
    results_one = json.loads((one / "results.json").read_text())
    assert _without_timing(results_one) == _without_timing(json.loads((two / "results.json").read_text()))
    assert _per_volume(one) == _per_volume(two) and len(_per_volume(one)) > 4
    metrics = next(iter(results_one["anomaly_detection"].values()))
    assert {"AUPRC", "AUROC", "AUPRC_pooled_brain", "AUROC_pooled_whole", "Dice@val_dice"} <= set(metrics)
    assert not any(p.name == ".scratch" for p in tmp_path.rglob("*"))
    assert len(list((two / "anomaly_detection" / "anomaly_maps").rglob("*.nii.gz"))) == len(
        list((one / "anomaly_detection" / "anomaly_maps").rglob("*.nii.gz"))) > 0
