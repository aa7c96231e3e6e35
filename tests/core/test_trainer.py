"""Base trainer: resume equals an uninterrupted run, best weights are copies, checkpoints are safe."""
from __future__ import annotations

import pytest
import torch

from core.training.trainer import Trainer, TrainingContext, WeightFiles
from dl_utils.checkpoint import load_checkpoint
from dl_utils.errors import UserInputError
from model_zoo.autoencoder import ConvAutoencoder
from optim.losses.reconstruction import ReconstructionLoss
from tests.core.fakes import SyntheticDataModule


def _trainer(run_dir, epochs: int, **kwargs) -> Trainer:
    torch.manual_seed(0)
    model = ConvAutoencoder(image_size=16, channels=(8, 16), latent_dim=8, norm_groups=4)
    options = {"optimizer_params": {"lr": 1e-3}, "loss": ReconstructionLoss("l2"), "progress": False, **kwargs}
    context = TrainingContext(model=model, data_module=SyntheticDataModule(batch_size=8), device=torch.device("cpu"))
    trainer = Trainer(context=context, nr_epochs=epochs, **options)
    trainer.attach_run(run_dir, None)
    return trainer


def test_resume_continues_exactly(tmp_path):
    straight = _trainer(tmp_path / "a", epochs=3)
    straight.train()
    first = _trainer(tmp_path / "b", epochs=2)
    first.train()
    resumed = _trainer(tmp_path / "b", epochs=3)
    resumed.resume(tmp_path / "b" / "checkpoints" / "latest_model.pt")
    assert resumed.start_epoch == 2
    resumed.train()
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, msg=key)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]


def test_best_weights_are_a_copy_and_checkpoints_load_weights_only(tmp_path):
    trainer = _trainer(tmp_path, epochs=2)
    trainer.train()
    snapshot = {k: v.clone() for k, v in trainer.best_weights.items()}
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(1.0)
    for key, value in snapshot.items():
        assert torch.equal(trainer.best_weights[key], value), "best weights alias the live model"
    best = load_checkpoint(tmp_path / "checkpoints" / "best_model.pt")
    latest = load_checkpoint(tmp_path / "checkpoints" / "latest_model.pt")
    assert set(best["model_weights"]) == set(snapshot) and "optimizer_weights" in latest
    assert not list((tmp_path / "checkpoints").glob("*.tmp")), "temporary files left behind"


def test_early_stopping_on_patience(tmp_path):
    trainer = _trainer(tmp_path, epochs=50, patience=1, optimizer_params={"lr": 0.0})
    trainer.train()  # a zero learning rate never improves: stops after the first non-improving epoch
    assert len(trainer.history) == 2


@pytest.mark.parametrize("bf16_units", [True, False, None])
def test_amp_step_on_cpu(tmp_path, monkeypatch, caplog, bf16_units):
    """amp on CPU is bf16 autocast where the CPU has bf16 units (or torch cannot tell); without them fp32 and one
    warning (emulated bf16 made a paper UNet's one-sample check take minutes on an AVX2 CPU)."""
    from core.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_bf16_native", lambda: bf16_units)
    trainer = _trainer(None, epochs=1, amp=True)
    assert trainer.amp_dtype == (None if bf16_units is False else torch.bfloat16)
    assert ("no bf16 units" in caplog.text) == (bf16_units is False)
    with trainer.amp_context():
        assert torch.is_autocast_enabled("cpu") == (bf16_units is not False)
    trainer.train()
    assert torch.isfinite(torch.tensor(trainer.history[-1]["train_loss"]))


def test_init_and_export_weights_roundtrip(tmp_path):
    """export_weights names a file inside the run folder; init_weights may pick the newest run with `*`."""
    source = _trainer(tmp_path / "src", epochs=1, weights=WeightFiles(export={"encoder": "enc.pt"}))
    source.train()
    assert (tmp_path / "src" / "enc.pt").is_file()
    target = _trainer(None, epochs=1, weights=WeightFiles(init={"encoder": str(tmp_path / "*" / "enc.pt")}))
    for key, value in source.best_weights.items():
        if key.startswith("encoder."):
            torch.testing.assert_close(target.model.state_dict()[key], value)


def test_export_weights_outside_the_run_folder_is_refused(tmp_path):
    for bad in (str(tmp_path / "enc.pt"), "../enc.pt", "weights/../../enc.pt"):
        with pytest.raises(UserInputError, match="must be a file name inside the run folder"):
            _trainer(tmp_path / "src", epochs=1, weights=WeightFiles(export={"encoder": bad}))


def test_resume_after_early_stopping_does_not_train_on(tmp_path):
    """A run killed between early stopping and its evaluation resumes into the evaluation, not more epochs."""
    first = _trainer(tmp_path, epochs=50, patience=1, optimizer_params={"lr": 0.0})
    first.train()
    assert len(first.history) == 2
    resumed = _trainer(tmp_path, epochs=50, patience=1, optimizer_params={"lr": 0.0})
    resumed.resume(tmp_path / "checkpoints" / "latest_model.pt")
    resumed.train()
    assert len(resumed.history) == 2 and resumed.start_epoch == 50


def test_flat_weight_params_build_the_same_trainer_as_the_weights_part(tmp_path):
    """Config version 1 (flat `init_weights`, `export_weights`, as stored in earlier run folders and
    checkpoints) is upgraded to `weights: {init, export}` and builds the same trainer."""
    from core.config.builder import ComponentBuilder
    from core.run.assembly import TRAINER_RESERVED

    source = _trainer(tmp_path / "src", epochs=1, weights=WeightFiles(export={"encoder": "enc.pt"}))
    source.train()
    init, export = {"encoder": str(tmp_path / "src" / "enc.pt")}, {"decoder": "dec.pt"}
    flat = {"nr_epochs": 1, "progress": False, "init_weights": init, "export_weights": export}
    grouped = {"nr_epochs": 1, "progress": False, "weights": {"init": init, "export": export}}
    assert Trainer.upgrade_params(flat) == grouped
    built = []
    for params in (flat, grouped):
        torch.manual_seed(0)
        model = ConvAutoencoder(image_size=16, channels=(8, 16), latent_dim=8, norm_groups=4)
        context = TrainingContext(model=model, data_module=SyntheticDataModule(batch_size=8), device=torch.device("cpu"))
        spec = {"module_name": "core.training.trainer", "class_name": "Trainer", "params": params}
        built.append(ComponentBuilder("cfg.yaml").build(spec, "trainer", reserved=TRAINER_RESERVED, expected=Trainer, context=context))
    old, new = built
    assert old.export_weights == new.export_weights == export and old.nr_epochs == new.nr_epochs == 1
    for key, value in new.model.state_dict().items():
        torch.testing.assert_close(old.model.state_dict()[key], value, msg=key)
        if key.startswith("encoder."):  # both loaded the exported encoder
            torch.testing.assert_close(value, source.best_weights[key], msg=key)
    with pytest.raises(Exception, match="is set by the framework"):
        ComponentBuilder("cfg.yaml").build({**spec, "params": {"seed": 3}}, "trainer", reserved=TRAINER_RESERVED,
                                           expected=Trainer, context=context)
