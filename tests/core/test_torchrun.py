"""The same config trains under `torchrun --nproc_per_node=2` (gloo on CPU), rank 0 writing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo_like_data import write_demo_like
from tests.test_projects_end_to_end import ROOT, shrink


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="torchrun not installed")
def test_torchrun_two_cpu_processes(tmp_path):
    data = write_demo_like(tmp_path / "data")
    config = ROOT / "projects/AE/configs/ae.yaml"
    overrides = shrink(config, data, tmp_path / "runs") + ["--set", "trainer.data_loader.params.samples_per_epoch=8",
                                                           "--set", "trainer.data_loader.params.batch_size=4"]
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "core/Main.py", "--config_path", str(config),
                           "--quiet", *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert run_dir.is_dir() and len(list((tmp_path / "runs").rglob("results.json"))) == 1
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert history[0]["epoch"] == 0 and "val_loss" in history[0]
    assert (run_dir / "checkpoints" / "best_model.pt").is_file()
