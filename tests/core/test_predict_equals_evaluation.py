"""`uad predict` gives, for a volume the run evaluated, the evaluator's own map and mask, also
for stochastic models: each method's demo config is trained for two steps, evaluated on one
test set, then its checkpoint predicts that test set's CSV.

Maps must be equal bit for bit (same pipeline, same inference settings, same per-volume
seed); masks voxel for voxel with the evaluator's: its saved map binarized as the evaluator
binarizes (its brain mask, its binary steps, the threshold results.json records), and through
its per-volume Dice.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from core.commands.cli import main as uad
from core.config.builder import ComponentBuilder
from core.config.configurator import shared_values
from core.evaluation import pipeline as pipeline_module
from core.evaluation import reconstruction, unet_compile
from core.evaluation.evaluator import AnomalyDetectionEvaluator
from core.evaluation.pipeline import ScoringPipeline
from core.evaluation.result import EvaluationResult
from core.evaluation.thresholds import fpr_key
from core.Main import main
from core.run import checkpoint_metadata
from core.run.assembly import build_datasets
from optim.metrics import segmentation
from tests.demo_like_data import write_demo_like
from tests.test_projects_end_to_end import shrink

ROOT = Path(__file__).resolve().parents[2]
TASK = "anomaly_detection"
TEST_SET = "test_hyper_spheres"
ONE_TEST_SET = [
    f"downstream_tasks.{TASK}.params.roles.labelled_validation={{{TEST_SET}: val_hyper_spheres}}",
    f"downstream_tasks.{TASK}.data_loader.datasets={{val_healthy: {{csv: splits/val_healthy.csv}}, "
    "test_healthy: {csv: splits/test_healthy.csv}, val_hyper_spheres: {csv: splits/val_hyper_spheres.csv}, "
    f"{TEST_SET}: {{csv: splits/{TEST_SET}.csv}}}}",
]
METHODS = {  # config, and what makes it small enough to train and evaluate in seconds
    "AE": ("projects/AE/configs/ae.yaml", ["model.params.channels=[8, 16, 32, 32]"]),
    "DDPM": ("projects/DDPM/configs/ddpm.yaml", ["model.params.unet.base_channels=8", "model.params.unet.channel_mult=[1, 2]", "model.params.unet.num_head_channels=8", "model.params.unet.num_groups=4"]),
    "cDDPM": ("projects/cDDPM/configs/cddpm.yaml", ["model.params.unet.base_channels=8", "model.params.unet.channel_mult=[1, 2]", "model.params.unet.num_head_channels=8", "model.params.unet.num_groups=4"]),
    "MHD": ("projects/MHD/configs/mhd.yaml", ["model.params.unet.base_channels=8", "model.params.unet.channel_mult=[1, 2]", "model.params.unet.num_head_channels=8", "model.params.unet.num_groups=4"]),
    "SSIM": ("projects/SSIM/configs/ssim_ensemble.yaml", ["model.params.unet.base_channels=8", "model.params.unet.channel_mult=[1, 2]", "model.params.unet.num_head_channels=8", "model.params.unet.num_groups=4"]),
}


# evaluation settings other than the defaults, which predict must take from the checkpoint: a
# task-level seed (not the run's) that seeds every volume's noise, a UNet batch cap, bf16 autocast
# (`auto` is fp32 on a CPU without bf16 units: maps differ ~1e-3 if predict dropped it) and the UNet's memory format
# (channels-first convolutions round differently: maps differ ~1e-7); bf16 once (DDPM): emulated bf16 on a CPU
# without bf16 units makes MHD's ten reconstructions take a minute
INFERENCE = f"downstream_tasks.{TASK}.params.scoring.inference"
NON_DEFAULT = {"DDPM": [f"downstream_tasks.{TASK}.params.seed=7",
                        f"{INFERENCE}={{unet_batch_size: 2, precision: bf16, channels_last: false}}"],
               "cDDPM": [f"{INFERENCE}={{channels_last: false}}"],
               "MHD": [f"{INFERENCE}={{channels_last: false, unet_batch_size: 4}}"]}
STORED_INFERENCE = {"DDPM": {"unet_batch_size": 2, "precision": "bf16", "channels_last": False},
                    "cDDPM": {"channels_last": False}, "MHD": {"channels_last": False, "unet_batch_size": 4}}


@pytest.fixture(scope="module")
def demo_like(tmp_path_factory) -> Path:
    return write_demo_like(tmp_path_factory.mktemp("demo_like"))


def _evaluate_then_predict(method: str, demo_like: Path, tmp_path: Path, capsys, extra: tuple[str, ...] = (),
                           between: Callable[[], object] | None = None) -> Path:
    """Train and evaluate `method`'s tiny config, predict its test set from the checkpoint, and
    compare the maps bit for bit and the masks voxel for voxel; returns the run folder.
    `between`: called after the evaluation, before predict (e.g. to make this machine another one)."""
    config, small = METHODS[method]
    overrides = shrink(ROOT / config, demo_like, tmp_path / "runs") + [a for s in ONE_TEST_SET + small + list(extra)
                                                                      for a in ("--set", s)]
    assert main(["--config_path", str(ROOT / config), "--quiet", *overrides]) == 0, capsys.readouterr().err
    (run,) = [p.parent.parent for p in (tmp_path / "runs").rglob("checkpoints/best_model.pt")]
    data_root = Path(yaml.safe_load((run / "config.yaml").read_text())["data_root"])
    if between is not None:
        between()
    code = uad(["predict", "--model", str(run), "--input", str(data_root / "splits" / f"{TEST_SET}.csv"),
                "--data-root", str(data_root), "--output", str(tmp_path / "pred"), "--threshold", "fpr_5%", "--no-png"])
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader((tmp_path / "pred" / "predictions.csv").open()))
    evaluated = {r["name"]: r for r in csv.DictReader((run / TASK / "per_volume.csv").open()) if r["dataset"] == TEST_SET}
    assert [r["scan"] for r in rows] == list(evaluated) and all(r["status"] == "done" for r in rows)
    binarize, volumes, threshold = _evaluators_binarize(run)
    lesion_voxels = 0
    for row, volume in zip(rows, volumes, strict=True):
        ours = np.asarray(nib.load(row["map_path"]).dataobj)
        theirs = np.asarray(nib.load(run / TASK / "anomaly_maps" / TEST_SET / f"{row['scan']}_anomaly_map.nii.gz").dataobj)
        np.testing.assert_array_equal(ours, theirs)
        mask = np.asarray(nib.load(row["mask_path"]).dataobj) > 0
        assert volume.name == row["scan"] and float(row["threshold"]) == pytest.approx(threshold, rel=1e-5)
        np.testing.assert_array_equal(mask, binarize(theirs, volume.mask.numpy(), threshold))
        lesion_voxels += int(mask.sum())
        seg = np.asarray(nib.load(data_root / "volumes" / f"{row['scan']}_seg.nii.gz").dataobj) > 0
        dice = segmentation.dice_from_counts(*segmentation.overlap_counts(mask, seg))
        assert dice == pytest.approx(float(evaluated[row["scan"]]["Dice@fpr_5%"]), abs=1e-12)
        assert float(row["sample_score"]) == pytest.approx(float(evaluated[row["scan"]]["sample_score"]), rel=1e-5)
    assert lesion_voxels > 0  # the masks compared are not all empty
    return run


def _evaluators_binarize(run: Path):
    """(binarize, the test set's volumes as the evaluator loaded them, the fpr_5% threshold it fitted),
    from the run folder's config.yaml and results.json: the evaluator's step, not predict's."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    builder = ComponentBuilder(run / "config.yaml")
    task = config["downstream_tasks"][TASK]
    key = f"downstream_tasks.{TASK}"
    spec = builder.build_param(task, key, AnomalyDetectionEvaluator.SCORING_PARAM)
    pipeline = ScoringPipeline(nn.Identity(), spec, torch.device("cpu"), 0)
    volumes = build_datasets(builder, task["data_loader"], f"{key}.data_loader", shared_values(config))[TEST_SET]
    fitted = EvaluationResult.from_json(json.loads((run / "results.json").read_text())[TASK]).thresholds()[TEST_SET]
    return pipeline.binarize, [volumes[i] for i in range(len(volumes))], fitted[fpr_key(0.05)].value


def _predict_another_set_with_test_set(run: Path, tmp_path: Path, capsys) -> None:
    """`--test-set` chooses the thresholds only: scans the run scored in another set (its healthy
    test set) keep the seed they were evaluated with, so the same noise and the same map."""
    data_root = Path(yaml.safe_load((run / "config.yaml").read_text())["data_root"])
    code = uad(["predict", "--model", str(run), "--input", str(data_root / "splits" / "test_healthy.csv"),
                "--data-root", str(data_root), "--output", str(tmp_path / "pred_healthy"), "--threshold", "fpr_5%",
                "--test-set", TEST_SET, "--no-png"])
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader((tmp_path / "pred_healthy" / "predictions.csv").open()))
    evaluated = {r["name"]: r for r in csv.DictReader((run / TASK / "per_volume.csv").open()) if r["dataset"] == "test_healthy"}
    assert rows and [r["scan"] for r in rows] == list(evaluated)
    for row in rows:  # a different seed moves the score by ~5e-3 (tiny DDPM), far beyond rel 1e-6
        assert float(row["sample_score"]) == pytest.approx(float(evaluated[row["scan"]]["sample_score"]), rel=1e-6)


def _record(run: Path) -> checkpoint_metadata.TaskRecord:
    state = torch.load(run / "checkpoints" / "best_model.pt", map_location="cpu", weights_only=True)
    return checkpoint_metadata.task_records(state, {})[TASK]


@pytest.mark.parametrize("method", METHODS)
def test_predict_gives_the_evaluators_maps_and_masks(method, demo_like, tmp_path, capsys):
    run = _evaluate_then_predict(method, demo_like, tmp_path, capsys, tuple(NON_DEFAULT.get(method, ())))
    if method == "DDPM":  # the task's own seed, not the run's, seeded the evaluation and predict alike
        assert _record(run).scored_with.seed == 7
        _predict_another_set_with_test_set(run, tmp_path, capsys)
    stored = torch.load(run / "checkpoints" / "best_model.pt", map_location="cpu", weights_only=True)["config"]
    inference = stored["downstream_tasks"][TASK]["params"]["scoring"].get("inference") or {}
    assert {k: inference.get(k) for k in STORED_INFERENCE.get(method, {})} == STORED_INFERENCE.get(method, {})


class _StandInCompiled(nn.Module):
    """What `compile_unet` returns in this test: the UNet with its output scaled by 1 + 1e-3, so
    that scoring with and without it differs (as compiled and eager differ, ~1e-5, but visibly)."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.inner = unet

    def forward(self, *args, **kwargs):
        return self.inner(*args, **kwargs) * (1 + 1e-3)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)


def test_predict_repeats_the_evaluations_compile_and_precision(demo_like, tmp_path, capsys, monkeypatch):
    """`compile_unet: auto` compiles an evaluation with enough work ahead but would not compile
    predict's few scans; `precision: auto` resolved to bf16 on the evaluating CPU (bf16 units) but would
    say fp32 on a CPU without them: predict repeats both decisions the evaluation recorded instead
    (one run for both: each alone would change the maps, so equal maps show both were repeated)."""
    monkeypatch.setattr(pipeline_module, "should_compile", lambda setting, model, device, planned, *a: bool(planned))
    monkeypatch.setattr(pipeline_module, "compile_unet", _StandInCompiled)
    monkeypatch.setattr(unet_compile, "toolchain_missing", lambda device: None)
    monkeypatch.setattr(reconstruction, "cpu_bf16_native", lambda: True)
    run = _evaluate_then_predict("DDPM", demo_like, tmp_path, capsys,
                                 between=lambda: monkeypatch.setattr(reconstruction, "cpu_bf16_native", lambda: False))
    scored_with = _record(run).scored_with
    assert scored_with.compiled_unet and scored_with.autocast == "bf16"
    assert json.loads((run / "results.json").read_text())[TASK][TEST_SET]["scored_with"]["autocast"] == "bf16"
    assert json.loads((tmp_path / "pred" / "predict.json").read_text())["settings"]["precision"] == "bf16"
