"""Bad-input cases: each breaks one thing in a fresh tiny project and names the line it must end in.

A case is run by `run_case`: `core/Main.py` in this process, then the exit code, the
stderr lines and a snapshot of every file are compared. Used by
tests/reliability/test_bad_input.py and by `python -m tests.reliability.report`.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import yaml

from tests.core.tiny_project import SHAPE
from tests.reliability.project import make_training_project, snapshot

Setup = Callable[[Path, dict[str, Any]], list[str]]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    expected: str      # a part of the one message line
    setup: Setup       # (project root, config dict to edit) -> extra command-line arguments


def _set(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def _edit(path: str, value: Any) -> Setup:
    """Set `path` (dot separated, [i] for list items) in the config to `value`."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        node: Any = config
        keys = path.replace("[", ".[").split(".")
        for key in keys[:-1]:
            node = node[int(key[1:-1])] if key.startswith("[") else node[key]
        last = keys[-1]
        if last.startswith("["):
            node[int(last[1:-1])] = value
        else:
            node[last] = value
        return []
    return setup


def _args(*items: str) -> Setup:
    return lambda root, config: _set(*items)


def _raw_config(text: str) -> Setup:
    """Replace the config file by `text` (written after the config dict, so it wins)."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        config["__raw__"] = text
        return []
    return setup


def _bomb(root: Path, config: dict[str, Any]) -> list[str]:
    levels = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    body = yaml.safe_dump({k: v for k, v in config.items() if k != "model"}, sort_keys=False)
    model = ("model:\n  module_name: model_zoo.autoencoder\n  class_name: ConvAutoencoder\n  params:\n"
             + "".join(f"    {line}\n" for line in levels) + "    channels: *a8\n")
    config["__raw__"] = body + model
    return []


def _huge(root: Path, config: dict[str, Any]) -> list[str]:
    config["__raw__"] = yaml.safe_dump(config, sort_keys=False) + "# " + "x" * (50 * 2**20) + "\n"
    return []


def _deep(root: Path, config: dict[str, Any]) -> list[str]:
    config["__raw__"] = yaml.safe_dump(config, sort_keys=False) + "deep: " + "[" * 100_000 + "]" * 100_000 + "\n"
    return []


def _data(root: Path) -> Path:
    return root / "data"


def _write_file(name: str, content: bytes) -> Setup:
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        (_data(root) / name).write_bytes(content)
        return []
    return setup


def _nifti(name: str, array: np.ndarray) -> Setup:
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        nib.save(nib.Nifti1Image(array, np.eye(4)), _data(root) / name)
        return []
    return setup


def _csv_row(csv: str, row: str) -> Setup:
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        path = _data(root) / csv
        path.write_text(path.read_text() + row + "\n")
        return []
    return setup


def _csv_text(csv: str, text: str) -> Setup:
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        (_data(root) / csv).write_text(text)
        return []
    return setup


def _symlink_loop(root: Path, config: dict[str, Any]) -> list[str]:
    data = _data(root)
    (data / "h0.nii.gz").unlink()
    os.symlink(data / "loop_b.nii.gz", data / "loop_a.nii.gz")
    os.symlink(data / "loop_a.nii.gz", data / "loop_b.nii.gz")
    os.symlink(data / "loop_a.nii.gz", data / "h0.nii.gz")
    return []


class _Hostile:
    """A pickle whose loading would create a marker file (it must never run)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _test_with_weights(make: Callable[[Path], Any]) -> Setup:
    """Turn the project into `task: test` with weights written by `make(path)`."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        path = root / "weights.pt"
        make(path)
        config["experiment"] = {"name": "tiny_test", "task": "test", "weights": str(path)}
        return []
    return setup


def _hostile(path: Path) -> None:
    with open(path, "wb") as handle:
        pickle.dump({"model_weights": _Hostile(path.parent / "PWNED")}, handle)


def _model_state() -> dict[str, torch.Tensor]:
    from model_zoo.autoencoder import ConvAutoencoder

    return ConvAutoencoder(image_size=16, channels=(8, 16), latent_dim=8, norm_groups=4).state_dict()


def _truncated(path: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"model_weights": _model_state()}, buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _foreign(path: Path) -> None:
    torch.save({"state_dict": _model_state(), "epoch": 3}, path)  # e.g. a Lightning-style file


def _partial(path: Path) -> None:
    state = _model_state()
    torch.save({"model_weights": {k: v for i, (k, v) in enumerate(state.items()) if i % 2}}, path)


def _misshapen(path: Path) -> None:
    state = {k: torch.zeros(*v.shape[:-1], v.shape[-1] + 1) if v.ndim else v for k, v in _model_state().items()}
    torch.save({"model_weights": state}, path)


def _not_tensors(path: Path) -> None:
    torch.save({"model_weights": {"encoder.0.weight": [1.0, 2.0]}}, path)


def _resume_with(*extra: str, first: tuple[str, ...] = (), config_path: str | None = None) -> Setup:
    """Train once (1 epoch), then resume that run folder with `extra` arguments."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        from core.Main import main

        path = root / "tiny.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
            assert main(["--config_path", str(path), "--quiet", *_set("trainer.params.nr_epochs=1", *first)]) == 0
        run_dir = out.getvalue().strip().splitlines()[-1]
        config["__keep__"] = True
        if config_path == "other":
            other = root / "other.yaml"
            other.write_text(path.read_text())
            config["__config_path__"] = str(other)
        if config_path == "no_checkpoint":
            os.remove(Path(run_dir) / "checkpoints" / "latest_model.pt")
        return ["--resume", run_dir, *_set(*extra)]
    return setup


T = "trainer.params"
DL = "trainer.data_loader.params"
EVAL = "downstream_tasks.detection"
CASES: list[Case] = [
    # --- every component's parameters, by name and by type, before the run folder exists
    Case("misspelt trainer key", "config", "trainer.params.nr_epoch: unknown parameter of Trainer; did you mean 'nr_epochs'",
         _args(f"{T}.nr_epoch=2")),
    Case("float for an int", "types", "trainer.params.nr_epochs: expected an integer, got 2.0", _edit(f"{T}.nr_epochs", 2.0)),
    Case("string for a number (seed)", "types", "seed: expected an integer, got 'abc'", _args("seed=abc")),
    Case("seed out of range", "types", "seed: 100000000000000000000000 is out of range", _args("seed=100000000000000000000000")),
    Case("string for an int (patience)", "types", "trainer.params.patience: expected an integer or null, got '10'",
         _edit(f"{T}.patience", "10")),
    Case("list for a mapping (optimiser)", "types", "trainer.params.optimizer_params: expected mapping or null, got [0.001]",
         _args(f"{T}.optimizer_params=[0.001]")),
    Case("string for a bool", "types", "trainer.params.amp: expected true or false", _args(f"{T}.amp='true'")),
    Case("float in a list of ints (model)", "types", "model.params.channels: [1]: expected an integer, got 16.5",
         _args("model.params.channels=[8, 16.5]")),
    Case("mapping for a list (model)", "types", "model.params.channels: expected list of integers", _args("model.params.channels={a: 8}")),
    Case("float for an int (data module)", "types", "trainer.data_loader.params.batch_size: expected an integer, got 4.0",
         _args(f"{DL}.batch_size=4.0")),
    Case("string for a number (augmentation)", "types", "augmentation.gamma_p: expected a number, got '0.5'",
         _edit(f"{DL}.augmentation.gamma_p", "0.5")),
    Case("string for a list (preprocessing)", "types", "preprocessing.crop_shape: expected list of integers or null",
         _edit(f"{DL}.preprocessing.crop_shape", "16x16x8")),
    Case("number for a list (evaluator)", "types", "downstream_tasks.detection.params.thresholds.fpr_levels: expected list of numbers",
         _args(f"{EVAL}.params.fpr_levels=0.05")),
    Case("string for an int (post-processing)", "types", "map_postprocessing[0].params.kernel_size: expected an integer, got '3'",
         _edit(f"{EVAL}.params.map_postprocessing[0].params.kernel_size", "3")),
    Case("unknown scorer parameter", "config", "scorer.params.sigma: unknown parameter of L1Scorer", _args(f"{EVAL}.params.scorer.params.sigma=2")),
    Case("unknown option value (optimiser)", "types", "unsupported optimizer='sgdd'; choose one of: adam, adamw, sgd",
         _args(f"{T}.optimizer=sgdd")),
    Case("unknown option value (task)", "types", "unsupported experiment.task='fit'; choose one of: train, test",
         _args("experiment.task=fit")),
    Case("params not a mapping", "types", "model.params: must be a mapping of keyword arguments", _args("model.params=[1, 2]")),
    Case("unparsable --set value", "config", "is not valid YAML", _args(f"{T}.optimizer_params={{lr: ")),
    Case("--set without a value", "config", "expected key.path=value", lambda root, config: ["--set", f"{T}.nr_epochs"]),
    Case("unknown top-level key", "config", "experimnt: unknown top-level key; did you mean 'experiment'", _edit("experimnt", {})),
    Case("missing weights file for training", "config", "experiment.weights: nope.pt not found", _args("experiment.weights=nope.pt")),
    Case("missing init weights for training", "config", "trainer.params.init_weights: missing.pt not found",
         _args(f"{T}.init_weights={{encoder: missing.pt}}")),
    Case("export outside the run folder", "config", "must be a file name inside the run folder",
         _args(f"{T}.export_weights={{encoder: ../../weights/enc.pt}}")),
    Case("external class that is not a model", "external", "collections.OrderedDict is not a Module",
         _args("allow_external_modules=true", "model.module_name=collections", "model.class_name=OrderedDict", "model.params={}")),
    Case("external class that is not a trainer", "external", "collections.Counter is not a Trainer",
         _args("allow_external_modules=true", "trainer.module_name=collections", "trainer.class_name=Counter", f"{T}={{}}")),
    Case("external module without opt-in", "external", "set top-level `allow_external_modules: true`",
         _args("model.module_name=collections", "model.class_name=OrderedDict")),
    # --- the config file itself is user input
    Case("YAML alias bomb", "yaml", "expands to more than 200000 values", _bomb),
    Case("50 MB config file", "yaml", "more than the 1000000 a config may have", _huge),
    Case("nesting bomb", "yaml", "invalid YAML", _deep),
    Case("python tag", "yaml", "invalid YAML at line 1", _raw_config("name: !!python/object/apply:os.system ['touch PWNED']\n")),
    Case("binary config file", "yaml", "not a UTF-8 text file", _raw_config("\udcff\udcfe binary")),
    # --- data: found before any training step (and before the run folder exists)
    Case("training split lacks a column", "data", "healthy.csv lacks column(s) mask_path",
         _csv_text("healthy.csv", "img_name,age,label,img_path,seg_path\nh0,,0,h0.nii.gz,\n")),
    Case("empty training split", "data", "healthy.csv has no rows", _csv_text("healthy.csv", "img_name,age,label,img_path,mask_path,seg_path\n")),
    Case("missing training volume", "data", "h1.nii.gz", lambda root, config: [os.remove(_data(root) / "h1.nii.gz")] and []),
    Case("random bytes as a volume", "data", "h0.nii.gz", _write_file("h0.nii.gz", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))),
    Case("zero-byte volume", "data", "h0.nii.gz", _write_file("h0.nii.gz", b"")),
    Case("truncated gzip volume", "data", "h1.nii.gz", _write_file("h1.nii.gz", gzip.compress(b"\x00" * 100_000)[:200])),
    Case("4D training volume", "data", "h0.nii.gz", _nifti("h0.nii.gz", np.zeros((*SHAPE, 2), np.float32))),
    Case("NaN in a training volume", "data", "NaN", _nifti("h1.nii.gz", np.full(SHAPE, np.nan, np.float32))),
    Case("Inf in a validation volume", "data", "v0.nii.gz", _nifti("v0.nii.gz", np.full(SHAPE, np.inf, np.float32))),
    Case("mask shape mismatch", "data", "h0_mask.nii.gz", _nifti("h0_mask.nii.gz", np.ones((16, 16, 4), np.uint8))),
    Case("empty brain mask", "data", "h1_mask.nii.gz", _nifti("h1_mask.nii.gz", np.zeros(SHAPE, np.uint8))),
    Case("non-binary mask", "data", "h0_mask.nii.gz is not binary",
         _nifti("h0_mask.nii.gz", np.random.default_rng(0).integers(0, 4, SHAPE).astype(np.uint8))),
    Case("non-binary lesion labels", "data", "v1_seg.nii.gz is not binary",
         _nifti("v1_seg.nii.gz", np.random.default_rng(0).choice([0.0, 0.5, 1.0], SHAPE).astype(np.float32))),
    Case("row escaping data_root", "data", "escapes data_root",
         _csv_row("healthy.csv", "evil,,0,../../../../etc/passwd,h0_mask.nii.gz,")),
    Case("symlink loop", "data", "h0.nii.gz", _symlink_loop),
    # --- checkpoints: weights_only, never a pickle's code; foreign and partial files refused
    Case("hostile pickle checkpoint", "checkpoint", "not a readable weights-only checkpoint", _test_with_weights(_hostile)),
    Case("truncated checkpoint", "checkpoint", "not a readable weights-only checkpoint", _test_with_weights(_truncated)),
    Case("foreign checkpoint", "checkpoint", "not a checkpoint of this framework", _test_with_weights(_foreign)),
    Case("partial checkpoint", "checkpoint", "weights do not fit the model: missing", _test_with_weights(_partial)),
    Case("mis-shaped checkpoint", "checkpoint", "shape mismatch", _test_with_weights(_misshapen)),
    Case("checkpoint of non-tensors", "checkpoint", "'model_weights' is not a mapping of names to tensors", _test_with_weights(_not_tensors)),
    # --- resume: the stored config is continued; a different one is refused, config.yaml never rewritten
    Case("resume with a changing --set", "resume", "--resume continues the stored config.yaml, but --set changes trainer.params.optimizer_params.lr",
         _resume_with(f"{T}.optimizer_params={{lr: 0.5}}", first=(f"{T}.patience=3",))),
    Case("resume from another config file", "resume", "pass that --config_path to resume it", _resume_with(config_path="other")),
    Case("resume without a checkpoint", "resume", "--resume needs a run folder holding checkpoints/latest_model.pt",
         _resume_with(config_path="no_checkpoint")),
]


@dataclass
class Outcome:
    code: int
    lines: list[str]
    changed: list[str]         # files created, changed or removed by the run
    marker: bool               # the hostile pickle's marker file exists


def prepare(case: Case, root: Path) -> list[str]:
    """Write the tiny project, apply the case; return the command line for core/Main.py."""
    config_path = make_training_project(root, epochs=1)
    config = yaml.safe_load(config_path.read_text())
    extra = case.setup(root, config)
    raw = config.pop("__raw__", None)
    config.pop("__keep__", None)
    other = config.pop("__config_path__", None)
    if raw is not None:
        config_path.write_bytes(raw.encode("utf-8", "surrogateescape"))
    else:
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return ["--config_path", other or str(config_path), "--quiet", *extra]


def run_case(case: Case, root: Path) -> Outcome:
    """Run `case` through core/Main.py in this process."""
    from core.Main import main

    argv = prepare(case, root)
    before = snapshot(root)
    err = io.StringIO()

    def show(message, category, filename, lineno, file=None, line=None):  # as the command line would print them
        err.write(warnings.formatwarning(message, category, filename, lineno, line))

    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        code = main(argv)
    after = snapshot(root)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return Outcome(code, [line for line in err.getvalue().splitlines() if line.strip()], changed, (root / "PWNED").exists())
