"""SIGTERM (a scheduler's stop) and Ctrl-C in the middle of a command that cannot `--resume`.

A test-only evaluation and `uad predict` stopped while scoring their last volume end with one
line, exit code 143 (SIGTERM) or 130 (Ctrl-C) and advice that works for them: run the command
again, naming the folder left incomplete, never a `--resume` they do not have. No partial file is
left (every file went through the atomic writers, the evaluation's scratch folder is removed) and
every file that is there reads. Training runs, which do resume, are tests/reliability/test_kill_resume.py's.
"""
from __future__ import annotations

import signal
from pathlib import Path

import nibabel as nib
import pytest

from core.Main import main
from dl_utils.checkpoint import STAGING_PREFIX
from tests.core.tiny_project import make_tiny_project
from tests.reliability.interrupt import stop_midway
from tests.reliability.project import make_training_project

STOPS = {signal.SIGTERM: (143, "terminated (SIGTERM)"), signal.SIGINT: (130, "interrupted (Ctrl-C)")}


def _assert_no_partial_files(folder: Path) -> list[Path]:
    """No staged write, no scratch folder; every NIfTI that is there loads whole."""
    left = [p for p in folder.rglob("*") if p.name.startswith(STAGING_PREFIX) or p.name in (".scratch", ".partial")]
    assert not left, f"partial files left: {left}"
    written = list(folder.rglob("*.nii.gz"))
    for path in written:
        nib.load(path).get_fdata()
    return written


@pytest.mark.parametrize("sig", list(STOPS), ids=["sigterm", "ctrl_c"])
def test_a_stopped_test_only_evaluation_says_run_it_again(sig, tmp_path):
    config = make_tiny_project(tmp_path)  # task: test, no checkpoint of its own: nothing to resume
    code, lines = stop_midway(["test", "--config_path", str(config), "--quiet"], sig, tmp_path / "held", "t1", tmp_path)
    (run_dir,) = list((tmp_path / "runs").glob("*/*/*"))
    exit_code, words = STOPS[sig]
    assert code == exit_code, lines
    assert lines == [f"{words}; run the command again (the run folder {run_dir} is incomplete: delete it)"], lines
    written = _assert_no_partial_files(run_dir)
    assert any(p.name == "t0_anomaly_map.nii.gz" for p in written), "stopped before the test set: not mid-way"
    assert not (run_dir / "results.json").exists()


def test_a_stopped_predict_says_run_it_again(tmp_path, capsys):
    assert main(["--config_path", str(make_training_project(tmp_path, epochs=1)), "--quiet"]) == 0
    model = capsys.readouterr().out.strip().splitlines()[-1]  # the run folder: its best_model.pt records the grid
    out = tmp_path / "out"
    args = ["predict", "--model", model, "--input", str(tmp_path / "data" / "test.csv"), "--output", str(out),
            "--threshold", "0.5", "--device", "cpu", "--no-png"]
    code, lines = stop_midway(args, signal.SIGTERM, tmp_path / "held", "t1", tmp_path)
    assert code == 143, lines
    logged = [line for line in lines if line.split(" ", 1)[0] in ("INFO", "WARNING")]  # predict's log (no --quiet)
    assert lines == [*logged, f"terminated (SIGTERM); run the command again (the files in {out} are incomplete; "
                                "predictions.csv is written last)"], lines
    written = _assert_no_partial_files(out)
    assert {p.name for p in written} >= {"t0_anomaly_map.nii.gz", "t0_anomaly_mask.nii.gz"}
    assert not (out / "predictions.csv").exists() and not any(p.name.startswith("t1") for p in out.iterdir())
