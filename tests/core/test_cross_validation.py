"""core.commands.cross_validation: fold substitution into the split CSVs, one normal run per fold,
the folds table with mean +- std (checked against statistics by hand), on 2 tiny folds."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.commands.cli import main as uad
from core.commands.cross_validation import fold_overrides, fold_paths, folds_table, summarise
from core.evaluation.thresholds import ORACLE_KEY, metric_key
from core.run.results import markdown_table
from tests.demo_like_data import write_demo_like
from tests.test_projects_end_to_end import shrink_sets

ROOT = Path(__file__).resolve().parents[2]
THRESHOLD = ROOT / "projects/Threshold/configs/threshold.yaml"  # no training: the cheapest full run


def test_fold_paths_finds_fold_numbered_csvs_only():
    config = {"trainer": {"data_loader": {"params": {"train_csv": "splits/IXI_train_fold0.csv", "data_root": "d"}}},
              "downstream_tasks": {"ad": {"data_loader": {"datasets": {"test": {"csv": "splits/IXI_test.csv"},
                                                                      "val": {"csv": "splits/IXI_val_fold0.csv"}}}}}}
    paths = fold_paths(config)
    assert paths == {"trainer.data_loader.params.train_csv": "splits/IXI_train_fold0.csv",
                     "downstream_tasks.ad.data_loader.datasets.val.csv": "splits/IXI_val_fold0.csv"}
    assert fold_overrides(paths, 3) == ["trainer.data_loader.params.train_csv=splits/IXI_train_fold3.csv",
                                        "downstream_tasks.ad.data_loader.datasets.val.csv=splits/IXI_val_fold3.csv"]


def test_summarise_mean_and_sample_std():
    per_fold = {0: {"ad": {"brats": {"AUPRC": 0.5, "note": "x"}}}, 1: {"ad": {"brats": {"AUPRC": 0.7}}},
                2: {"ad": {"brats": {"AUPRC": 0.9}}}}
    entry = summarise(per_fold)["ad"]["brats"]["AUPRC"]
    assert entry["mean"] == pytest.approx(0.7)
    assert entry["std"] == pytest.approx(0.2)  # sqrt(((-.2)^2 + 0 + .2^2) / (3 - 1))
    assert entry["folds"] == {0: 0.5, 1: 0.7, 2: 0.9}
    assert "note" not in summarise(per_fold)["ad"]["brats"]


def test_folds_table_labels_columns_as_the_run_table():
    """The folds table's header is the run table's for the same metrics: the oracle column is marked
    as an upper bound in both (the folds table printed the bare `Dice@oracle_dice`), a training
    summary adds no column."""
    run = {"ad": {"brats": {"AUPRC": 0.5, metric_key("Dice", ORACLE_KEY): 0.6, "note": "x"}},
           "training": {"summary": {"AUPRC": 1.0, "train_seconds": 3.0}}}
    per_fold = {0: run, 1: {"ad": {"brats": {"AUPRC": 0.7, metric_key("Dice", ORACLE_KEY): 0.8}}}}
    folds = folds_table(summarise(per_fold), [0, 1]).splitlines()
    header = next(line for line in folds if line.startswith("| task |"))
    assert header == next(line for line in markdown_table(run).splitlines() if line.startswith("| task |"))
    assert header == "| task | data set | AUPRC | Dice@oracle (upper bound) |"
    assert folds[-1] == "| ad | brats | 0.600 ± 0.141 | 0.700 ± 0.141 |"


def test_config_without_fold_paths_is_one_readable_error(tmp_path, capsys):
    assert uad(["cv", "--config_path", str(THRESHOLD), "--folds", "0", "1", "--output_root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "fold" in err and len(err.splitlines()) == 1


def _fold_sets(tmp_path: Path) -> list[str]:
    """Demo-like data with fold-numbered copies of the healthy splits (as IXI_train_fold<k>.csv); the
    `--set` arguments that shrink the Threshold config onto them."""
    data = write_demo_like(tmp_path / "data")
    for fold in (0, 1):
        for split in ("train_healthy", "val_healthy"):
            shutil.copy(data / "splits" / f"{split}.csv", data / "splits" / f"{split}_fold{fold}.csv")
    datasets = "downstream_tasks.anomaly_detection.data_loader.datasets"
    items = [s for s in shrink_sets(THRESHOLD, data, tmp_path / "unused", training=False)
             if not s.startswith("output_root=")]
    items += [f"{datasets}.train_healthy.csv=splits/train_healthy_fold0.csv",
              f"{datasets}.val_healthy.csv=splits/val_healthy_fold0.csv"]
    return [part for item in items for part in ("--set", item)]


def test_two_tiny_folds_run_and_tabulate(tmp_path, capsys):
    sets = _fold_sets(tmp_path)
    code = uad(["cv", "--config_path", str(THRESHOLD), "--folds", "0", "1", "--quiet",
                 "--output_root", str(tmp_path / "runs"), *sets])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    cv_dir = Path(out.strip().splitlines()[-1])
    assert (cv_dir / "folds.md").read_text().strip() in out  # printed under --quiet too, as a run's own table
    folds = json.loads((cv_dir / "folds.json").read_text())
    assert folds["folds"] == [0, 1]
    for fold in (0, 1):  # each fold ran as a normal run on its own CSVs
        run_config = (Path(folds["runs"][str(fold)]) / "config.yaml").read_text()
        assert f"train_healthy_fold{fold}.csv" in run_config and f"val_healthy_fold{1 - fold}.csv" not in run_config
    metrics = next(iter(next(iter(folds["summary"].values())).values()))
    auprc = metrics["AUPRC"]
    values = list(auprc["folds"].values())
    assert len(values) == 2 and auprc["mean"] == pytest.approx(sum(values) / 2)
    assert auprc["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    table = (cv_dir / "folds.md").read_text()
    assert "±" in table and "AUPRC" in table
    assert (cv_dir / "folds.csv").read_text().startswith("task,dataset,metric,mean,std,fold0,fold1")
    seconds = metrics["seconds_per_volume"]  # wall-clock figures live in each run's timing.json
    assert len(seconds["folds"]) == 2 and seconds["mean"] > 0
    assert cv_dir.name.startswith("cv-") and cv_dir.parent == tmp_path / "runs" / "Threshold" / "threshold"


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="torchrun not installed")
def test_torchrun_claims_one_cv_folder(tmp_path):
    """Under torchrun rank 0 alone claims the cv folder and shares it: one cv-* folder, both folds in it."""
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "core.commands.cli", "cv",
                           "--config_path", str(THRESHOLD), "--folds", "0", "1", "--quiet",
                           "--output_root", str(tmp_path / "runs"), *_fold_sets(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    claimed = list((tmp_path / "runs" / "Threshold" / "threshold").iterdir())
    assert len(claimed) == 1 and claimed[0].name.startswith("cv-"), claimed
    assert (claimed[0] / "folds.json").is_file()
    assert sorted(p.name for p in claimed[0].iterdir() if p.is_dir()) == ["fold0", "fold1"]
    assert len(list(claimed[0].rglob("results.json"))) == 2
