"""The three kinds of folder a report is written for, made for real and tiny (about 15 s):
a benchmark of two methods on the tiny data set (so two evaluated run folders with it),
and a `uad predict` output scored with one of those runs' checkpoint."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.commands.cli import main as uad
from core.Main import main
from tests.core.tiny_project import make_tiny_benchmark


@dataclass(frozen=True)
class ReportFolders:
    benchmark: Path
    runs: dict[str, Path]  # method name -> its run folder
    predict: Path
    data: Path


def make_report_folders(root: Path) -> ReportFolders:
    config = make_tiny_benchmark(root)
    assert main(["--config_path", str(config), "--quiet"]) == 0
    (benchmark,) = [p.parent for p in (root / "runs").rglob("methods.json")]
    listing = json.loads((benchmark / "methods.json").read_text())
    runs = {name: benchmark / rel for name, rel in listing["methods"].items()}
    autoencoder = next(path for path in runs.values() if (path / "checkpoints" / "best_model.pt").is_file())
    data = Path(yaml.safe_load(config.read_text())["output_root"]).parent / "data"
    predict = root / "predict"
    assert uad(["predict", "--model", str(autoencoder), "--input", str(data / "test.csv"), "--output", str(predict),
                "--threshold", "fpr_5%", "--no-png"]) == 0
    return ReportFolders(benchmark, runs, predict, data)
