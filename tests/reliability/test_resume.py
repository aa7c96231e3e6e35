"""`--resume RUN_FOLDER` continues the stored config without repeating any --set, and never rewrites it."""
from __future__ import annotations

import json
from pathlib import Path

from core.Main import main
from core.training.trainer import Trainer
from dl_utils.checkpoint import load_checkpoint
from tests.reliability.project import make_training_project


def test_resume_uses_the_stored_config_without_repeating_set(tmp_path, capsys, monkeypatch):
    config = make_training_project(tmp_path, epochs=2)
    original = Trainer.save_latest

    def interrupt_after_epoch_1(self, epoch, stopped=False):
        original(self, epoch, stopped)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_latest", interrupt_after_epoch_1)
    sets = ["--set", "trainer.params.nr_epochs=4", "--set", "trainer.params.optimizer_params={lr: 0.002}"]
    assert main(["--config_path", str(config), "--quiet", *sets]) == 130
    monkeypatch.setattr(Trainer, "save_latest", original)
    (run_dir,) = list((tmp_path / "runs").glob("*/*/*"))
    stored = (run_dir / "config.yaml").read_bytes()
    assert load_checkpoint(run_dir / "checkpoints" / "latest_model.pt")["epoch"] == 1
    capsys.readouterr()
    assert main(["--config_path", str(config), "--quiet", "--resume", str(run_dir)]) == 0, capsys.readouterr().err
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == run_dir
    assert (run_dir / "config.yaml").read_bytes() == stored, "--resume rewrote config.yaml"
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    history = [record["epoch"] for record in lines if "train_loss" in record]
    assert history == [0, 1, 2, 3]  # the stored nr_epochs=4, not the file's 2; no epoch lost or repeated
    assert json.loads((run_dir / "results.json").read_text())["training"]["summary"]["epochs"] == 4.0
    # repeating the same --set is allowed (it changes nothing)
    assert main(["--config_path", str(config), "--quiet", "--resume", str(run_dir), sets[0], sets[1]]) == 0
