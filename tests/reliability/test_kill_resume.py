"""kill -9 a real training process 10 times at random moments (many mid-write), resume each time.

Every file in checkpoints/ loads after every kill, a resume loses at most the epoch in
progress, and the run that was killed 10 times ends with the results of one that was not.
"""
from __future__ import annotations

import json

import torch

from core.Main import main
from tests.reliability.kill_resume import kill_and_resume
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
    torch.set_num_threads(1)  # as in the children (OMP_NUM_THREADS=1): the same reduction order
    assert main(["--config_path", str(config), "--quiet", "--output_root", str(tmp_path / "straight")]) == 0
    straight = capsys.readouterr().out.strip().splitlines()[-1]
    killed = json.loads((run_dir / "results.json").read_text())
    assert killed == json.loads((tmp_path / "straight" / straight.split("straight/")[1] / "results.json").read_text())
