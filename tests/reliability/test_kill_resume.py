"""kill -9 a real training process 10 times at random moments (many mid-write), resume each time.

Every file in checkpoints/ loads after every kill, a resume loses at most the epoch in
progress, and the run that was killed 10 times ends with the results of one that was not.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from core.Main import main
from dl_utils.checkpoint import load_checkpoint
from tests.reliability.kill_resume import ROOT, kill_and_resume
from tests.reliability.project import make_training_project

EPOCHS = 8


def test_ten_random_kills_lose_nothing_but_the_epoch_in_progress(tmp_path, capsys):
    config = make_training_project(tmp_path, epochs=EPOCHS)
    figures, run_dir = kill_and_resume(config, tmp_path / "killed", kills=10, seed=0)
    assert figures.final_exit_code == 0, figures.notes
    assert figures.unreadable_checkpoints == 0, figures.notes
    assert figures.max_epochs_lost <= 1
    assert figures.kills >= 8 and figures.resumes >= 8, figures
    assert figures.final_epochs == EPOCHS
    assert figures.logged_epochs == list(range(EPOCHS))  # metrics.jsonl: each epoch once, no row of a lost epoch left
    torch.set_num_threads(1)  # as in the children (OMP_NUM_THREADS=1): the same reduction order
    assert main(["--config_path", str(config), "--quiet", "--output_root", str(tmp_path / "straight")]) == 0
    straight = capsys.readouterr().out.strip().splitlines()[-1]
    killed = json.loads((run_dir / "results.json").read_text())
    assert killed == json.loads((tmp_path / "straight" / straight.split("straight/")[1] / "results.json").read_text())


@pytest.mark.parametrize("workers", [0, 2], ids=["main_process", "process_group_with_workers"])
def test_sigterm_is_a_clean_one_line_exit_with_loadable_checkpoints(workers, tmp_path):
    """A scheduler's stop (SIGTERM) ends the run with one line and exit code 143, no partial file left,
    and the checkpoints load. With DataLoader workers the whole process group gets it, as from a
    scheduler (`kill -TERM -- -PGID`): the workers ignore it and the main process stops them."""
    config = make_training_project(tmp_path, epochs=200)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "core" / "Main.py"), "--config_path", str(config), "--quiet",
           "--set", f"trainer.data_loader.params.num_workers={workers}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=bool(workers))
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob("*/*/*/checkpoints/latest_model.pt")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    if workers:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 143, (out, err)
    (run_dir,) = list((tmp_path / "runs").glob("*/*/*"))
    assert lines == [f"terminated (SIGTERM); resume with --resume {run_dir} (the last complete checkpoint is intact)"], err
    staging = run_dir / ".partial"
    assert not staging.is_dir() or not list(staging.iterdir())

    epoch = load_checkpoint(run_dir / "checkpoints" / "latest_model.pt")["epoch"]
    assert 0 <= epoch < 199  # stopped mid-run; resuming it is what the kill -9 test above checks
