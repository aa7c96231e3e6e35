"""Bad-input cases: each breaks one thing in a fresh tiny project and names the line it must end in.

A case is run by `run_case`: `core/Main.py` in this process, then the exit code, the
stderr lines and a snapshot of every file are compared. Used by
tests/reliability/test_bad_input.py and by `python -m tests.reliability.report`.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import gzip
import io
import json
import logging
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

from core.commands.arg_types import MAX_PROCESS_WORKERS, WORKERS_PER_CPU
from tests.core.tiny_project import SHAPE
from tests.reliability.project import make_training_project, snapshot

Setup = Callable[[Path, dict[str, Any]], list[str]]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    expected: str      # a part of the one message line
    setup: Setup       # (project root, config dict to edit) -> extra command-line arguments
    pending: str | None = None  # why the case does not pass yet (an xfail(strict=True) in the test)
    env: tuple[tuple[str, str | None], ...] = ()  # environment variables while it runs (None: unset)


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


def _flag_args(*items: str) -> Setup:
    """--set items plus the command-line opt-in to modules outside this project."""
    return lambda root, config: ["--allow-external-modules", *_set(*items)]


def _scorer(module: str, name: str, *params: str) -> Setup:
    """--set the evaluation's scorer to optim.scoring.<module>.<name> with `params` (key=value YAML each)."""
    mapping = ", ".join(p.replace("=", ": ", 1) for p in params)
    return _args(f"{EVAL}.params.scorer={{module_name: optim.scoring.{module}, class_name: {name}, params: {{{mapping}}}}}")


def _raw_config(text: str) -> Setup:
    """Replace the config file by `text` (written after the config dict, so it wins)."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        config["__raw__"] = text
        return []
    return setup


def _raw_config_edit(old: str, new: str) -> Setup:
    """The config file's text with `old` replaced by `new` (for what YAML cannot round-trip, e.g. a 5000-digit integer)."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        config["__raw__"] = yaml.safe_dump(config, sort_keys=False).replace(old, new)
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


def _volume_of_shape(name: str, shape: tuple[int, ...]) -> Setup:
    """Replace volume `name` (and its mask, and its lesion labels when it has them) by one of `shape`."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        data = _data(root)
        image = np.random.default_rng(0).uniform(0.2, 0.8, shape).astype(np.float32)
        nib.save(nib.Nifti1Image(image, np.eye(4)), data / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(np.ones(shape, np.uint8), np.eye(4)), data / f"{name}_mask.nii.gz")
        if (data / f"{name}_seg.nii.gz").exists():
            seg = np.zeros(shape, np.uint8)
            seg[4:8, 4:8, 2:4] = 1
            nib.save(nib.Nifti1Image(seg, np.eye(4)), data / f"{name}_seg.nii.gz")
        return []
    return setup


def _link_then_dotdot(root: Path, config: dict[str, Any]) -> list[str]:
    """A folder link inside data_root (followed: data/README.md) and a training row climbing out through it."""
    outside = root / "elsewhere"
    outside.mkdir()
    os.symlink(outside, _data(root) / "linked")
    return _csv_row("healthy.csv", "evil,,0,linked/../../../../etc/passwd,h0_mask.nii.gz,")(root, config)


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
        handlers = logging.getLogger().handlers[:]
        with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
            assert main(["--config_path", str(path), "--quiet", *_set("trainer.params.nr_epochs=1", *first)]) == 0
        for handler in logging.getLogger().handlers[:]:  # the first run's log.txt is closed, as its process would end
            if handler not in handlers:
                handler.close()
                logging.getLogger().removeHandler(handler)
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


def _crafted_resume(dotted: str, value: Any) -> Setup:
    """Train once (1 epoch), set one field (dotted; list items by index) of its checkpoints/latest_model.pt to
    `value` and save it again with torch.save, as a shared run folder may hold; then `--resume` it."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        args = _resume_with()(root, config)
        path = Path(args[1]) / "checkpoints" / "latest_model.pt"
        state = torch.load(path, weights_only=True)
        *parents, last = [int(k) if k.isdigit() else k for k in dotted.split(".")]
        node = state
        for key in parents:
            node = node[key]
        node[last] = value
        torch.save(state, path)
        return args
    return setup


def _uad(build: Callable[[Path, dict[str, Any]], list[str]]) -> Setup:
    """A case of the `uad` command line (core/commands/cli.py): `build` returns its whole argument list."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        config["__uad__"] = True
        return build(root, config)
    return setup


def _popen(root: Path) -> dict[str, Any]:
    """A component that would run a shell command (touching the marker) if it were ever constructed."""
    return {"module_name": "subprocess", "class_name": "Popen", "params": {"args": ["touch", str(root / "PWNED")]}}


def _shared_checkpoint(root: Path, config: dict[str, Any], **changes: Any) -> str:
    """A self-describing checkpoint as someone else might share it: the project's config with `changes`
    (dotted keys) inside, the model's weights next to it."""
    stored = copy.deepcopy({k: v for k, v in config.items() if not k.startswith("__")})  # not the case's own marks
    for dotted, value in changes.items():
        node = stored
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value(root) if callable(value) else value
    path = root / "shared.pt"
    torch.save({"model_weights": _model_state(), "config": stored, "model_spec": stored["model"], "metadata_version": 1,
                "thresholds": {}, "input_shapes": {}}, path)
    return str(path)


def _predict(**changes: Any) -> Setup:
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        flag = ["--allow-external-modules"] if changes.pop("flag", False) else []
        model = _shared_checkpoint(root, config, **changes)
        return ["predict", "--model", model, "--input", str(_data(root) / "test.csv"), "--output", str(root / "out"),
                "--threshold", "0.5", "--device", "cpu", "--no-png", *flag]
    return _uad(build)


def _test_model(**changes: Any) -> Setup:
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        flag = ["--allow-external-modules"] if changes.pop("flag", False) else []
        return ["test", "--model", _shared_checkpoint(root, config, **changes), "--quiet", *flag]
    return _uad(build)


def _as_popen(node: dict[str, Any], root: Path) -> None:
    """Make the component mapping `node` name a shell command (its other keys, e.g. data_loader, kept)."""
    node.update(_popen(root))


# Every place of a config that names a class: where a shared file could put a shell command.
HOSTILE_SLOTS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "model": lambda c, root: c.__setitem__("model", _popen(root)),
    "trainer": lambda c, root: _as_popen(c["trainer"], root),
    "training data loader": lambda c, root: _as_popen(c["trainer"]["data_loader"], root),
    "loss": lambda c, root: c["trainer"]["params"].__setitem__("loss", _popen(root)),
    "evaluator": lambda c, root: _as_popen(c["downstream_tasks"]["detection"], root),
    "evaluation data loader": lambda c, root: _as_popen(c["downstream_tasks"]["detection"]["data_loader"], root),
    "scorer": lambda c, root: c["downstream_tasks"]["detection"]["params"].__setitem__("scorer", _popen(root)),
    "post-processing": lambda c, root: c["downstream_tasks"]["detection"]["params"]["map_postprocessing"].__setitem__(0, _popen(root)),
}


def _hostile_config(config: dict[str, Any], root: Path, slot: str) -> dict[str, Any]:
    """A copy of the project's config (without the case's own marks) naming a shell command at `slot`."""
    hostile = copy.deepcopy({k: v for k, v in config.items() if not k.startswith("__")})
    HOSTILE_SLOTS[slot](hostile, root)
    return hostile


def _hostile_checkpoint(root: Path, config: dict[str, Any], slot: str) -> str:
    """A shared self-describing checkpoint whose stored config names a shell command at `slot`."""
    stored = _hostile_config(config, root, slot)
    path = root / "shared.pt"
    torch.save({"model_weights": _model_state(), "config": stored, "model_spec": stored["model"], "metadata_version": 1,
                "thresholds": {}, "input_shapes": {}}, path)
    return str(path)


def _hostile_test(slot: str, flag: bool = False) -> Setup:
    """`uad test --model` of a checkpoint naming a shell command at `slot` (no opt-in key inside)."""
    return _uad(lambda root, config: ["test", "--model", _hostile_checkpoint(root, config, slot), "--quiet",
                                      *(["--allow-external-modules"] if flag else [])])


def _hostile_predict(slot: str, flag: bool = False) -> Setup:
    """`uad predict` with a checkpoint naming a shell command at `slot`."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        return ["predict", "--model", _hostile_checkpoint(root, config, slot), "--input", str(_data(root) / "test.csv"),
                "--output", str(root / "out"), "--threshold", "0.5", "--device", "cpu", "--no-png",
                *(["--allow-external-modules"] if flag else [])]
    return _uad(build)


def _hostile_resume(slot: str, flag: bool = False, flat_scorer: bool = False) -> Setup:
    """Train once, then replace the run folder's config.yaml (and the project config) by one naming a shell
    command at `slot`, no opt-in key inside, and `--resume` it; `flat_scorer`: the scorer written as the
    earlier config version's flat `params.scorer` beside the stored `scoring` (its upgrade warns)."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        args = _resume_with()(root, config)
        run_dir = Path(args[1])
        stored = yaml.safe_load((run_dir / "config.yaml").read_text())
        if flat_scorer:
            stored["downstream_tasks"]["detection"]["params"]["scorer"] = _popen(root)
        else:
            HOSTILE_SLOTS[slot](stored, root)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
        origin = json.loads((run_dir / "origin.json").read_text())
        (run_dir / "origin.json").write_text(json.dumps({**origin, "overrides": []}))  # crafted with the folder
        config.clear()
        config.update(stored, __keep__=True)  # the project config the same, so only the classes are refused
        return [*args, *(["--allow-external-modules"] if flag else [])]
    return setup


def _hostile_run_folder(root: Path, config: dict[str, Any]) -> list[str]:
    """Train once, then replace the run folder's config.yaml and the project config by one naming a shell command."""
    args = _resume_with()(root, config)
    run_dir = Path(args[1])
    config.update(allow_external_modules=True, model=_popen(root))
    (run_dir / "config.yaml").write_text(yaml.safe_dump({k: v for k, v in config.items() if not k.startswith("__")}, sort_keys=False))
    return args


def _evil_base(root: Path, config: dict[str, Any]) -> list[str]:
    base = root / "shared_base.yaml"
    base.write_text(yaml.safe_dump({"allow_external_modules": True, "model": _popen(root)}))
    config["base"] = str(base)
    return []


def _rename_dataset(old: str, new: str) -> Setup:
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        datasets = config["downstream_tasks"]["detection"]["data_loader"]["datasets"]
        datasets[new] = datasets.pop(old)
        return []
    return setup


def _shared_run(config_text: str | None = None, results_text: str = '{"detection": {}}', per_volume: bytes | None = None,
                verb: str = "describe") -> Setup:
    """`uad describe` (or `verb`) on a run folder from someone else whose config.yaml / results.json /
    detection/per_volume.csv are as given."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        run_dir = root / "shared_run"
        (run_dir / "checkpoints").mkdir(parents=True)
        plain = {k: v for k, v in config.items() if not k.startswith("__")}  # not the case's own marks
        (run_dir / "config.yaml").write_text(config_text if config_text is not None else yaml.safe_dump(plain))
        (run_dir / "results.json").write_text(results_text)
        if per_volume is not None:
            (run_dir / "detection").mkdir()
            (run_dir / "detection" / "per_volume.csv").write_bytes(per_volume)
        torch.save({"model_weights": _model_state(), "epoch": 0}, run_dir / "checkpoints" / "best_model.pt")
        return [verb, str(run_dir)]
    return _uad(build)


def _shared_benchmark(method_folder: str) -> Setup:
    """`uad report` of a benchmark folder from someone else whose methods.json names `method_folder`."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        folder = root / "shared_bench"
        folder.mkdir()
        (folder / "results.json").write_text('{"orchestrator": {}}')
        (folder / "methods.json").write_text(json.dumps({"baseline": "m", "methods": {"m": method_folder}}))
        return ["report", str(folder)]
    return _uad(build)


def _corrupt_origin(root: Path, config: dict[str, Any]) -> list[str]:
    args = _resume_with()(root, config)
    (Path(args[1]) / "origin.json").write_text('{"config_path": "tiny.yaml", ')
    return args


def _cv(items: tuple[str, ...] = (), folds: tuple[int, ...] = (0, 1), thresholds: dict[str, Any] | None = None) -> Setup:
    """`uad cv --folds 0 1` training on fold-numbered copies of the training split (healthy_fold<k>.csv
    for each k in `folds`), with `--set` items and the detection task's `thresholds` params."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        if thresholds is not None:
            config["downstream_tasks"]["detection"]["params"]["thresholds"] = thresholds
        for fold in folds:
            (_data(root) / f"healthy_fold{fold}.csv").write_text((_data(root) / "healthy.csv").read_text())
        return ["cv", "--config_path", str(root / "tiny.yaml"), "--folds", "0", "1", "--quiet",
                *_set("trainer.data_loader.params.train_csv=healthy_fold0.csv", *items)]
    return _uad(build)


def _linked_run_folder(*verb: str) -> Setup:
    """Train once, then move the run's `detection/` outside it and leave a symbolic link in its place
    (a shared run folder); `verb`: a `uad` verb on it, else `--resume`."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        args = _resume_with()(root, config)
        run_dir = Path(args[1])
        outside = root / "outside"
        outside.mkdir()
        os.replace(run_dir / "detection", outside / "detection")
        os.symlink(outside / "detection", run_dir / "detection")
        if verb:
            config["__uad__"] = True
            return [*verb, str(run_dir)]
        return args
    return setup


def _crafted_lightning(root: Path, config: dict[str, Any]) -> list[str]:
    """A Lightning-style file whose state_dict holds strings ('str' object has no attribute 'dtype' before)."""
    path, ra = root / "crafted.ckpt", root / "ra.yaml"
    torch.save({"state_dict": {"model.encoder.0.weight": "not a tensor", "model.decoder.fc.0.bias": "nor this"}, "epoch": 3}, path)
    ra.write_text(yaml.safe_dump({"name": "ra", "experiment": {"name": "ra"}, "model": {
        "module_name": "model_zoo.ra", "class_name": "RAModel", "params": {"image_size": 16, "channels": [4], "latent_dim": 4}}}))
    return ["convert", "--input", str(path), "--output", str(root / "converted.pt"), "--config_path", str(ra)]


def _file(root: Path, name: str, content: bytes = b"x") -> Path:
    (root / name).write_bytes(content)
    return root / name


def _predict_without_model(root: Path, config: dict[str, Any]) -> list[str]:
    """`uad predict` of a shared checkpoint whose stored config lacks its `model` section."""
    args = _predict()(root, config)
    path = args[args.index("--model") + 1]
    state = torch.load(path, weights_only=True)
    del state["config"]["model"]
    torch.save(state, path)
    return args


def _predict_png(root: Path, config: dict[str, Any]) -> list[str]:
    (root / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    args = _predict()(root, config)
    args[args.index("--input") + 1] = str(root / "scan.png")
    return args


def _predict_binary_csv(root: Path, config: dict[str, Any]) -> list[str]:
    """A PNG renamed .csv: the CSV reader, not the suffix check, meets the bytes."""
    (root / "scans.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)) * 4)
    args = _predict()(root, config)
    args[args.index("--input") + 1] = str(root / "scans.csv")
    return args


def _predict_scan(array: np.ndarray | None, *extra: str, input_shapes: list[int] | None = None, **changes: Any) -> Setup:
    """`uad predict` of the shared checkpoint (its config with `changes`) on one scan `array` (None: the test
    CSV) with `extra` arguments; `input_shapes`: the evaluation grid it records (a version-1 entry)."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        args = _predict(**changes)(root, config)  # marks the case as a `uad` one
        if input_shapes is not None:
            state = torch.load(args[args.index("--model") + 1], weights_only=True)
            state["input_shapes"] = {"detection": input_shapes}
            torch.save(state, args[args.index("--model") + 1])
        if array is not None:
            nib.save(nib.Nifti1Image(array, np.eye(4)), root / "scan.nii.gz")
            args[args.index("--input") + 1] = str(root / "scan.nii.gz")
        return [*args, *extra]
    return build


TRAINED_ON = {"dataset": "healthy.csv", "volumes": 3, "subjects": None, "contrast": "t1", "grid_shape": [16, 16, 8],
              "spacing_mm": [1.0, 1.0, 1.0], "note": "", "subject_column": ""}
FPR = {"kind": "healthy_fpr", "value": 0.5, "fitted_on": "val", "level": 0.05}
RECORD = {"thresholds": {"test": {"fpr_5%": FPR}}, "input_grid": {"shape": [16, 16, 8], "preprocessing": None},
          "volumes": {"test": ["t0"]}, "scored_with": {"seed": 7, "compiled_unet": False, "autocast": "fp32"}}


def _with(base: Any, dotted: str, value: Any) -> Any:
    """A deep copy of `base` with the entry at `dotted` (dot separated; "" for the whole) set to `value`."""
    if not dotted:
        return value
    out = copy.deepcopy(base)
    *parents, last = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[last] = value
    return out


def _crafted(verb: str, trained_on: Any = TRAINED_ON, evaluation: Any = None) -> Setup:
    """`uad predict` (or `uad test --model`) of the shared checkpoint re-saved (metadata version 2) with a
    crafted `trained_on` and `evaluation` entry ({"detection": RECORD} when None)."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        args = _predict()(root, config) if verb == "predict" else _test_model()(root, config)
        path = args[args.index("--model") + 1]
        state = torch.load(path, weights_only=True)
        state.update(metadata_version=2, trained_on=trained_on, evaluation={"detection": RECORD} if evaluation is None else evaluation)
        for legacy in ("thresholds", "input_shapes"):
            state.pop(legacy)
        torch.save(state, path)
        return args
    return build


def _record(dotted: str, value: Any, verb: str = "predict") -> Setup:
    """A crafted checkpoint whose detection record has `value` at `dotted`."""
    return _crafted(verb, evaluation={"detection": _with(RECORD, dotted, value)})


def _trained(dotted: str, value: Any) -> Setup:
    """`uad predict` of a crafted checkpoint whose `trained_on` has `value` at `dotted`."""
    return _crafted("predict", trained_on=_with(TRAINED_ON, dotted, value))


def _describe_entry(dotted: str, value: Any) -> Setup:
    """`uad describe` of a shared run folder whose results.json holds one test set entry with `value` at `dotted`."""
    entry = _with({"AUROC": 0.5, "thresholds": {"fpr_5%": FPR}, "input_grid": RECORD["input_grid"]}, dotted, value)
    return _shared_run(results_text=json.dumps({"detection": {"test": entry}}))


def _predict_two_shapes(root: Path, config: dict[str, Any]) -> list[str]:
    """`--preprocessed` scans of two shapes with one `--mask`: the second scan's header stops the command."""
    args = _predict_scan(None)(root, config)
    folder = root / "scans"
    folder.mkdir()
    for name, shape in (("a", (16, 16, 8)), ("b", (12, 16, 8))):
        nib.save(nib.Nifti1Image(np.full(shape, 0.5, np.float32), np.eye(4)), folder / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((16, 16, 8), np.uint8), np.eye(4)), root / "mask.nii.gz")
    args[args.index("--input") + 1] = str(folder)
    return [*args, "--preprocessed", "--mask", str(root / "mask.nii.gz")]


def _raw_scans(*names: str, keep_output: bool = True) -> Setup:
    """`uad preprocess` of a folder of raw scans named `names` (each a stripped 16 x 16 x 8 head), into an
    output folder that already holds a file of the user's (which must survive)."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        (root / "raw").mkdir()
        for name in names:
            nib.save(nib.Nifti1Image(SCAN, np.eye(4)), root / "raw" / name)
        if keep_output:
            (root / "pre").mkdir()
            (root / "pre" / "KEEP.txt").write_text("the user's own file\n")
        return ["preprocess", "--input", str(root / "raw"), "--output", str(root / "pre"), "--skull-strip", "none",
                "--no-registration", "--no-n4", "--no-qc"]
    return _uad(setup)


def _predict_names_that_collide(root: Path, config: dict[str, Any]) -> list[str]:
    """`--preprocessed` scans `x y` and `x_y`: both would write `x_y_anomaly_map.nii.gz`."""
    args = _predict_scan(None)(root, config)
    (root / "scans").mkdir()
    for name in ("x y.nii.gz", "x_y.nii.gz"):
        nib.save(nib.Nifti1Image(np.full((16, 16, 8), 0.5, np.float32), np.eye(4)), root / "scans" / name)
    nib.save(nib.Nifti1Image(np.ones((16, 16, 8), np.uint8), np.eye(4)), root / "mask.nii.gz")
    args[args.index("--input") + 1] = str(root / "scans")
    return [*args, "--preprocessed", "--mask", str(root / "mask.nii.gz")]


def _predict_uniform(root: Path, config: dict[str, Any]) -> list[str]:
    """`--preprocessed` uniform scan (every voxel 0.5) under a checkpoint whose preprocessing rescales intensities
    (torchio's RescaleIntensity, which would print a two-line RuntimeWarning for it)."""
    args = _predict_scan(np.full((16, 16, 8), 0.5, np.float32), **BRAIN_CROP)(root, config)
    nib.save(nib.Nifti1Image(np.ones((16, 16, 8), np.uint8), np.eye(4)), root / "mask.nii.gz")
    return [*args, "--preprocessed", "--mask", str(root / "mask.nii.gz")]


def _preprocess(*extra: str) -> Setup:
    """`uad preprocess` of the project's volumes with `extra` arguments."""
    return _uad(lambda root, config: ["preprocess", "--input", str(_data(root)), "--output", str(root / "pre"),
                                      "--skull-strip", "none", "--no-registration", "--no-n4", "--no-qc", *extra])


def _convert_int_key(root: Path, config: dict[str, Any]) -> list[str]:
    args = _crafted_lightning(root, config)
    torch.save({"state_dict": {1: torch.zeros(2), "model.encoder.0.weight": torch.zeros(2)}, "epoch": 3}, root / "crafted.ckpt")
    return args


def _benchmark(**methods: dict[str, Any]) -> Setup:
    """A benchmark config (`core/Main.py --config_path bench.yaml`) running the project's config as `methods`."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        specs = {name: {"config": str(root / "tiny.yaml"), **spec} for name, spec in methods.items()}
        (root / "bench.yaml").write_text(yaml.safe_dump({"name": "bench", "output_root": str(root / "runs"), "orchestrator": {
            "module_name": "projects.benchmark.comparison", "class_name": "MethodComparison", "params": {"methods": specs}}}))
        config["__config_path__"] = str(root / "bench.yaml")
        return []
    return setup


def _hostile_describe(slot: str, flag: bool = False, opt_in: bool = False) -> Setup:
    """`uad describe` of a shared run folder whose config.yaml names a shell command at `slot`
    (`opt_in`: and holds the file opt-in key)."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        hostile = _hostile_config(config, root, slot)
        if opt_in:
            hostile["allow_external_modules"] = True
        args = _shared_run(yaml.safe_dump(hostile, sort_keys=False))(root, config)
        return [*args, *(["--allow-external-modules"] if flag else [])]
    return build


def _hostile_cv(slot: str | None, flag: bool = False, base_opt_in: bool = False) -> Setup:
    """`uad cv` of the project's config naming a shell command at `slot` (`base_opt_in`: a base config
    holding the file opt-in key instead)."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        if slot is not None:
            HOSTILE_SLOTS[slot](config, root)
        if base_opt_in:
            _evil_base(root, config)
        return [*_cv()(root, config), *(["--allow-external-modules"] if flag else [])]
    return build


def _hostile_convert(slot: str, flag: bool = False, opt_in: bool = False) -> Setup:
    """`uad convert` of an original checkpoint with a config whose model fits it but which names a shell
    command at `slot` (which the written checkpoint would carry on)."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        args = _crafted_lightning(root, config)
        from model_zoo.ra import RAModel

        state = RAModel(image_size=16, channels=(4,), latent_dim=4).state_dict()
        torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3}, root / "crafted.ckpt")
        ra = yaml.safe_load((root / "ra.yaml").read_text())
        ra = {**_hostile_config(config, root, slot), "model": ra["model"]} if slot != "model" else {**ra, "model": _popen(root)}
        if opt_in:
            ra["allow_external_modules"] = True
        (root / "ra.yaml").write_text(yaml.safe_dump(ra, sort_keys=False))
        return [*args, *(["--allow-external-modules"] if flag else [])]
    return _uad(build)


def _hostile_benchmark(kind: str, flag: bool = False) -> Setup:
    """`uad benchmark` whose one method config, or the benchmark config itself, is hostile: `test-only`: a
    method of `task: test` whose weights carry a config naming a shell command as model (no model in the
    method: taken from the weights); `opt-in`: the method config holds the file opt-in key; `model`: the method
    names a shell command as model; `orchestrator`: the benchmark's orchestrator is one; `benchmark opt-in`:
    the benchmark config holds the opt-in key."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        method = copy.deepcopy({k: v for k, v in config.items() if not k.startswith("__")})
        if kind == "test-only":
            weights = _hostile_checkpoint(root, config, "model")
            method.pop("model")
            method.pop("trainer")
            method["experiment"] = {"name": "shared", "task": "test", "weights": weights}
        elif kind == "opt-in":
            method["allow_external_modules"] = True
        elif kind == "model":
            method["model"] = _popen(root)
        (root / "method.yaml").write_text(yaml.safe_dump(method, sort_keys=False))
        bench = {"name": "bench", "output_root": str(root / "runs"), "orchestrator": {
            "module_name": "projects.benchmark.comparison", "class_name": "MethodComparison",
            "params": {"methods": {"m": {"config": str(root / "method.yaml")}}}}}
        if kind == "orchestrator":
            bench["orchestrator"] = _popen(root)
        if kind == "benchmark opt-in":
            bench["allow_external_modules"] = True
        (root / "bench.yaml").write_text(yaml.safe_dump(bench, sort_keys=False))
        return ["benchmark", "--config_path", str(root / "bench.yaml"), "--quiet", *(["--allow-external-modules"] if flag else [])]
    return _uad(build)


def _stored_entry(key: Any, value: Any, verb: str = "predict") -> Setup:
    """`uad predict` (or `uad test --model`) of the shared checkpoint whose stored config holds `value` at the
    top-level `key` (any key a weights-only pickle holds, e.g. the integer 5)."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        args = _predict()(root, config) if verb == "predict" else _test_model()(root, config)
        path = args[args.index("--model") + 1]
        state = torch.load(path, weights_only=True)
        state["config"][key] = value
        torch.save(state, path)
        return args
    return build


def _training_record(weights: Callable[[], dict[str, Any]] | None = None, **changes: Any) -> Setup:
    """`python -m core.commands.training_record` of the shared checkpoint (its config with `changes`; `weights`:
    its model_weights replaced by `weights()`) into a new file `--out recorded.pt`."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        path = _shared_checkpoint(root, config, **changes)
        if weights is not None:
            state = torch.load(path, weights_only=True)
            state["model_weights"] = weights()
            torch.save(state, path)
        config["__uad__"] = "training_record"
        return [path, "--out", str(root / "recorded.pt")]
    return setup


def _describe_weights(weights: Callable[[], dict[str, Any]]) -> Setup:
    """`uad describe` of a shared run folder (a valid config.yaml) with `--weights` a file whose model_weights are
    `weights()` and `--out` a new file."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        args = _shared_run()(root, config)
        torch.save({"model_weights": weights(), "epoch": 0}, root / "given.pt")
        return [*args, "--weights", str(root / "given.pt"), "--out", str(root / "described.pt")]
    return build


def _off_by_one() -> dict[str, torch.Tensor]:
    """The model's weights, each tensor one longer in its last axis."""
    return {k: torch.zeros(*v.shape[:-1], v.shape[-1] + 1) if v.ndim else v for k, v in _model_state().items()}


def _vast() -> dict[str, torch.Tensor]:
    """The model's weights with one (10**6, 10**6) tensor (one stored value, expanded)."""
    return {**_model_state(), "encoder.0.0.weight": torch.zeros(1).expand(10**6, 10**6)}


def _predict_missing_scans(*names: str) -> Setup:
    """`uad predict` of the test CSV after its scans `names` (t0, t1: its rows 1, 2) were removed."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        args = _predict()(root, config)
        for name in names:
            os.remove(_data(root) / f"{name}.nii.gz")
        return args
    return build


def _looped_list() -> list[Any]:
    """[8, <itself>]: a list holding itself (a weights-only pickle keeps it; YAML never ends writing it)."""
    looped: list[Any] = [8]
    looped.append(looped)
    return looped


def _stored_edit(edit: Callable[[dict[str, Any]], None], verb: str = "predict") -> Setup:
    """`uad predict` (or `uad test --model`) of the shared checkpoint after `edit` changed its stored config in place."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        args = _predict()(root, config) if verb == "predict" else _test_model()(root, config)
        path = args[args.index("--model") + 1]
        state = torch.load(path, weights_only=True)
        edit(state["config"])
        torch.save(state, path)
        return args
    return build


# --- components of the wrong kind, and checkpoint tensors no model can use
def _spec(module: str, name: str, **params: Any) -> dict[str, Any]:
    return {"module_name": module, "class_name": name, "params": params}


L1_SCORER = _spec("optim.scoring.l1", "L1Scorer")
L2_LOSS = _spec("optim.losses.reconstruction", "ReconstructionLoss", kind="l2")
DECODER = _spec("model_zoo.spark", "LightDecoder", width=8, stages=1)  # an nn.Module, callable with one tensor
AUTOENCODER = _spec("model_zoo.autoencoder", "ConvAutoencoder", image_size=16, channels=[8, 16], latent_dim=8, norm_groups=4)


def _resume_stored(dotted: str, value: Any) -> Setup:
    """Train once, then set `dotted` (dot separated) of the run folder's config.yaml, and of the project config so
    that only the value is refused, to `value`, and `--resume` it."""
    def setup(root: Path, config: dict[str, Any]) -> list[str]:
        args = _resume_with()(root, config)
        stored = yaml.safe_load((Path(args[1]) / "config.yaml").read_text())
        _edit(dotted, value)(root, stored)
        (Path(args[1]) / "config.yaml").write_text(yaml.safe_dump(stored, sort_keys=False))
        config.clear()
        config.update(stored, __keep__=True)
        return args
    return setup


def _sparse_weights() -> dict[str, torch.Tensor]:
    state = _model_state()
    key = next(k for k, v in state.items() if v.ndim == 2)
    return {**state, key: state[key].to_sparse()}


def _meta_weights() -> dict[str, torch.Tensor]:
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in _model_state().items()}


def _complex_weights() -> dict[str, torch.Tensor]:
    return {k: v.to(torch.complex64) if v.is_floating_point() else v for k, v in _model_state().items()}


def _integer_weights() -> dict[str, torch.Tensor]:
    return {k: v.to(torch.int64) for k, v in _model_state().items()}


def _nan_weights() -> dict[str, torch.Tensor]:
    return {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in _model_state().items()}


def _one_inf_weight() -> dict[str, torch.Tensor]:
    state = _model_state()
    key = sorted(k for k, v in state.items() if v.is_floating_point())[-1]
    state[key].view(-1)[0] = float("inf")
    return state


def _weights_of(make: Callable[[], dict[str, torch.Tensor]], verb: str = "test", run_folder: bool = False) -> Setup:
    """`uad test --model` (or `uad predict --model`) of the shared checkpoint with `make()` as its model_weights;
    `run_folder`: the file is a run folder's checkpoints/best_model.pt and --model names the folder."""
    def build(root: Path, config: dict[str, Any]) -> list[str]:
        args = _predict()(root, config) if verb == "predict" else _test_model()(root, config)
        at = args.index("--model") + 1
        path = Path(args[at])
        state = torch.load(path, weights_only=True)
        state["model_weights"] = make()
        if run_folder:
            path.unlink()
            (root / "shared_run" / "checkpoints").mkdir(parents=True)
            path, args[at] = root / "shared_run" / "checkpoints" / "best_model.pt", str(root / "shared_run")
        torch.save(state, path)
        return args
    return build


VOLUME_HEADER = "img_name,age,label,img_path,mask_path,seg_path\n"


def _weights_file(make: Callable[[], dict[str, torch.Tensor]]) -> Callable[[Path], None]:
    return lambda path: torch.save({"model_weights": make()}, path)


# What each place says of subprocess.Popen once the command line allowed modules outside the project: the wrong kind.
HOSTILE_ROLES = {
    "model": "subprocess.Popen is not a Module",
    "trainer": "subprocess.Popen is not a Trainer",
    "training data loader": "subprocess.Popen is not a training data module",
    "loss": "trainer.params.loss: subprocess.Popen is not a TrainingLoss",
    "evaluator": "subprocess.Popen is not a DownstreamEvaluator",
    "evaluation data loader": "subprocess.Popen is not an evaluation data set",
    "scorer": "expected a Scorer, Popen lacks __call__, num_reconstructions",
    "post-processing": "map_postprocessing: [0]: subprocess.Popen is not a MapStep",
}
RAW = ("--skull-strip", "none", "--no-registration", "--no-n4")
BRAIN_CROP = {"downstream_tasks__detection__data_loader__params__preprocessing": {"percentiles": [1.0, 99.0]}}  # not the identity
SCAN = np.pad(np.full((12, 12, 6), 0.5, np.float32), ((2, 2), (2, 2), (1, 1)))  # a stripped raw scan on a 16 x 16 x 8 grid
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
    Case("string for an int (patience)", "types", "trainer.params.patience: expected an integer >= 1 and <= 1000000 or null, got '10'",
         _edit(f"{T}.patience", "10")),
    Case("list for a mapping (optimiser)", "types", "trainer.params.optimizer_params: expected mapping or null, got [0.001]",
         _args(f"{T}.optimizer_params=[0.001]")),
    Case("string for a bool", "types", "trainer.params.amp: expected true or false", _args(f"{T}.amp='true'")),
    Case("float in a list of ints (model)", "types", "model.params.channels: [1]: expected an integer, got 16.5",
         _args("model.params.channels=[8, 16.5]")),
    Case("mapping for a list (model)", "types", "model.params.channels: expected list of integers", _args("model.params.channels={a: 8}")),
    Case("float for an int (data module)", "types", "trainer.data_loader.params.batch_size: expected an integer, got 4.0",
         _args(f"{DL}.batch_size=4.0")),
    Case("string for a number (augmentation)", "types", "augmentation.gamma.p: expected a number, got '0.5'",
         _edit(f"{DL}.augmentation.gamma.p", "0.5")),
    Case("string for a list (preprocessing)", "types", "preprocessing.crop_shape: expected list of integers >= 1 and <= 2048 or null",
         _edit(f"{DL}.preprocessing.crop_shape", "16x16x8")),
    Case("number for a list (evaluator)", "types", "downstream_tasks.detection.params.thresholds.fpr_levels: expected list of numbers",
         _args(f"{EVAL}.params.fpr_levels=0.05")),
    Case("string for an int (post-processing)", "types", "map_postprocessing[0].params.kernel_size: expected an integer, got '3'",
         _edit(f"{EVAL}.params.map_postprocessing[0].params.kernel_size", "3")),
    Case("unknown scorer parameter", "config", "scorer.params.sigma: unknown parameter of L1Scorer", _args(f"{EVAL}.params.scorer.params.sigma=2")),
    Case("unknown option value (optimiser)", "types", "trainer.params.optimizer: expected one of 'adam', 'adamw', 'sgd', got 'sgdd'",
         _args(f"{T}.optimizer=sgdd")),
    Case("unknown option value (task)", "types", "unsupported experiment.task='fit'; choose one of: train, test",
         _args("experiment.task=fit")),
    Case("class_name in a module without classes", "config",
         "model.class_name: 'subprocess' is not a class in core.run.run_folder, which defines no classes",
         _args("model.module_name=core.run.run_folder", "model.class_name=subprocess")),
    Case("unknown key beside params (model)", "config", "model.foo: unknown key (valid: module_name, class_name, params)", _edit("model.foo", 1)),
    Case("misspelt params (model)", "config", "model.parms: unknown key (valid: module_name, class_name, params); did you mean 'params'", lambda root, config: [config["model"].__setitem__("parms", config["model"].pop("params"))] and []),
    Case("unknown key beside params (data loader)", "config", "trainer.data_loader.foo: unknown key (valid: module_name, class_name, params)",
         _edit("trainer.data_loader.foo", 1)),
    Case("unknown key in a data set's overrides", "config",
         "detection.data_loader.datasets.test.foo: unknown parameter of VolumeSet",  # where the YAML states it
         _edit(f"{EVAL}.data_loader.datasets.test.foo", 1)),
    Case("params nested in a data set's overrides", "config",
         "detection.data_loader.datasets.test.params: unknown parameter of VolumeSet",
         _edit(f"{EVAL}.data_loader.datasets.test.params", {"csv": "test.csv"})),
    # --- nested parts (a data module's preprocessing and augmentation, the optimiser's arguments): the same did-you-mean
    Case("misspelt preprocessing key", "config",
         "trainer.data_loader.params.preprocessing.crop_shap: unknown parameter of VolumePreprocessor; did you mean 'crop_shape'",
         _args(f"{DL}.preprocessing.crop_shap=[16, 16, 8]")),
    Case("misspelt augmentation transform", "config",
         "trainer.data_loader.params.augmentation.gamm: unknown parameter of Augmentation; did you mean 'gamma'",
         _args(f"{DL}.augmentation.gamm={{p: 0.5}}")),
    Case("misspelt augmentation probability", "config",
         "trainer.data_loader.params.augmentation.gamma.pp: unknown parameter of Gamma; did you mean 'p'",
         _args(f"{DL}.augmentation.gamma.pp=0.5")),
    Case("misspelt optimiser argument", "config", "optimizer_params.weight_decy: unknown parameter of torch.optim.Adam; did you mean 'weight_decay'",
         _args(f"{T}.optimizer_params={{lr: 0.001, weight_decy: 0.01}}")),
    Case("misspelt evaluation preprocessing key", "config",
         "downstream_tasks.detection.data_loader.params.preprocessing.target_shap: unknown parameter of VolumePreprocessor; "
         "did you mean 'target_shape'", _args(f"{EVAL}.data_loader.params.preprocessing.target_shap=[16, 16, 8]")),
    Case("--set base after loading", "config", "base: --set base=other.yaml: base configs are merged when the file is read",
         _args("base=other.yaml")),
    # --- ranges stated in the constructors' signatures, checked with the types
    Case("epochs beyond any schedule", "ranges", "trainer.params.nr_epochs: expected an integer >= 1 and <= 1000000",
         _args(f"{T}.nr_epochs=1000000000000000000000000000000")),
    Case("negative gradient clip", "ranges", "trainer.params.grad_clip: expected a number > 0 or null, got -1",
         _args(f"{T}.grad_clip=-1")),
    Case("zero patience", "ranges", "trainer.params.patience: expected an integer >= 1 and <= 1000000 or null, got 0", _args(f"{T}.patience=0")),
    Case("zero val_every", "ranges", "trainer.params.val_every: expected an integer >= 1 and <= 1000000, got 0", _args(f"{T}.val_every=0")),
    Case("zero samples per epoch", "ranges", "trainer.data_loader.params.samples_per_epoch: expected an integer >= 1 and <= 10000000 or null, got 0",
         _args(f"{DL}.samples_per_epoch=0")),
    Case("negative num_workers", "ranges", "trainer.data_loader.params.num_workers: expected an integer >= 0 and <= 256, got -1",
         _args(f"{DL}.num_workers=-1")),
    Case("probability above 1 (augmentation)", "ranges", "augmentation.gamma.p: expected a number >= 0 and <= 1, got 1.5",
         _edit(f"{DL}.augmentation.gamma.p", 1.5)),
    Case("zero median kernel (post-processing)", "ranges", "map_postprocessing[0].params.kernel_size: expected an integer >= 1 and <= 64, got 0",
         _edit(f"{EVAL}.params.map_postprocessing[0].params.kernel_size", 0)),
    Case("zero reconstructions (scorer)", "ranges", "scorer.params.num_reconstructions: expected an integer >= 1 and <= 1000, got 0",
         _args(f"{EVAL}.params.scorer.params.num_reconstructions=0")),
    Case("zero slice batch (evaluator)", "ranges", "scoring.inference.slice_batch_size: expected an integer >= 1 and <= 2048, got 0",
         _args(f"{EVAL}.params.slice_batch_size=0")),
    Case("negative bisection steps (evaluator)", "ranges", "thresholds.bisection_steps: expected an integer >= 1 and <= 64, got -3",
         _args(f"{EVAL}.params.bisection_steps=-3")),
    Case("false-positive rate above 1 (evaluator)", "ranges", "thresholds.fpr_levels: [0]: expected a number > 0 and < 1, got 1.5",
         _args(f"{EVAL}.params.fpr_levels=[1.5]")),
    Case("one false-positive rate twice (evaluator)", "ranges", "two threshold rules share the key 'fpr_5%'",
         _args(f"{EVAL}.params.fpr_levels=[0.05, 0.05]")),
    Case("fixed thresholds equal to 6 digits (evaluator)", "ranges", "two threshold rules share the key 'fixed_0.123457'",
         _args(f"{EVAL}.params.fixed_thresholds=[0.12345671, 0.12345672]")),
    # --- upper bounds: a count no machine or schedule needs would hang or fill memory after the run folder exists
    Case("bisection steps beyond a double's precision (evaluator)", "ranges",
         "thresholds.bisection_steps: expected an integer >= 1 and <= 64, got 1000000000", _args(f"{EVAL}.params.bisection_steps=1000000000")),
    Case("100000 data-loader workers", "ranges", "trainer.data_loader.params.num_workers: expected an integer >= 0 and <= 256, got 100000",
         _args(f"{DL}.num_workers=100000")),
    Case("10**12 samples per epoch", "ranges",
         "trainer.data_loader.params.samples_per_epoch: expected an integer >= 1 and <= 10000000 or null, got 1000000000000",
         _args(f"{DL}.samples_per_epoch=1000000000000")),
    Case("slice batch beyond any volume (evaluator)", "ranges",
         "scoring.inference.slice_batch_size: expected an integer >= 1 and <= 2048, got 100000", _args(f"{EVAL}.params.slice_batch_size=100000")),
    Case("network batch cap beyond any memory (evaluator)", "ranges", "scoring.inference.unet_batch_size: expected an integer >= 1 and <= 65536",
         _args(f"{EVAL}.params.unet_batch_size=10000000")),
    Case("1000 false-positive rates (evaluator)", "ranges", "thresholds.fpr_levels: expected list of numbers > 0 and < 1 (at most 100), got 1000 items",
         _args(f"{EVAL}.params.fpr_levels=[{', '.join(['0.05'] * 1000)}]")),
    Case("patience beyond any schedule", "ranges", "trainer.params.patience: expected an integer >= 1 and <= 1000000 or null, got 10000000",
         _args(f"{T}.patience=10000000")),
    Case("figure cases beyond any test set (evaluator)", "ranges", "outputs.figure_cases: expected an integer >= 0 and <= 1000, got 1000000",
         _args(f"{EVAL}.params.figure_cases=1000000")),
    Case("reconstructions beyond any average (scorer)", "ranges",
         "scorer.params.num_reconstructions: expected an integer >= 1 and <= 1000, got 1000000",
         _args(f"{EVAL}.params.scorer.params.num_reconstructions=1000000")),
    # --- scorers' and post-processing steps' numerics: an overflow or NaN after training, unless the signature says the range
    Case("infinite histogram range (scorer)", "ranges", "scoring.scorer.params.value_range: [1]: expected a number >= -1e+06 and <= 1e+06, got inf",
         _scorer("intensity", "IntensityDensityScorer", "value_range=[0, .inf]")),
    Case("minus infinite histogram range (scorer)", "ranges",
         "scoring.scorer.params.value_range: [0]: expected a number >= -1e+06 and <= 1e+06, got -inf",
         _scorer("intensity", "IntensityDensityScorer", "value_range=[-.inf, 1]")),
    Case("histogram smoothing sigma 1e300 (scorer)", "ranges",
         "scoring.scorer.params.smoothing_sigma: expected a number >= 0 and <= 2048, got 1e+300",
         _scorer("intensity", "IntensityDensityScorer", "smoothing_sigma=1.0e+300")),
    Case("10**12 histogram bins (scorer)", "ranges", "scoring.scorer.params.bins: expected an integer >= 1 and <= 65536, got 1000000000000",
         _scorer("intensity", "IntensityDensityScorer", "bins=1000000000000")),
    Case("model-free scorer drawing 10**6 reconstructions (scorer)", "ranges",
         "scoring.scorer.params.num_reconstructions: expected an integer >= 0 and <= 1000, got 1000000",
         _scorer("intensity", "IntensityDensityScorer", "num_reconstructions=1000000")),
    Case("random LPIPS trunk seed beyond 2**63 (RA scorer)", "ranges",
         "scoring.scorer.params.random_backbone_seed: expected an integer >= 0 and <= 9223372036854775807, got 1000000000000000000000000000000",
         _scorer("ra_lpips", "RAPerceptualScorer", "backbone=random", "random_backbone_seed=1000000000000000000000000000000")),
    Case("LPIPS smoothing sigma 1e300 (RA scorer)", "ranges", "scoring.scorer.params.sigma: expected a number > 0 and <= 2048, got 1e+300",
         _scorer("ra_lpips", "RAPerceptualScorer", "backbone=random", "sigma=1.0e+300")),
    Case("LPIPS window truncate 1e300 (RA scorer)", "ranges", "scoring.scorer.params.truncate: expected a number > 0 and <= 40, got 1e+300",
         _scorer("ra_lpips", "RAPerceptualScorer", "backbone=random", "truncate=1.0e+300")),
    Case("CLAHE clip limit 1e300 (RA scorer)", "ranges", "scoring.scorer.params.clahe_clip_limit: expected a number >= 0 and <= 1, got 1e+300",
         _scorer("ra_lpips", "RAPerceptualScorer", "backbone=random", "clahe_clip_limit=1.0e+300")),
    Case("SSIM sigma 1e300 (scorer)", "ranges",
         "scoring.scorer.params.sigma: expected a number > 0 and <= 2048, got 1e+300",
         _scorer("ssim", "SSIMScorer", "sigma=1.0e+300")),
    Case("SSIM window truncate 1e300 (scorer)", "ranges",
         "scoring.scorer.params.truncate: expected a number > 0 and <= 40, got 1e+300",
         _scorer("ssim", "SSIMScorer", "truncate=1.0e+300")),
    Case("SSIM constant k2 1e300 (scorer)", "ranges",
         "scoring.scorer.params.k2: expected a number > 0 and <= 1, got 1e+300",
         _scorer("ssim", "SSIMScorer", "k2=1.0e+300")),
    Case("SSIM data range 1e300 (scorer)", "ranges",
         "scoring.scorer.params.data_range: expected a number > 0 and <= 1e+06 or null, got 1e+300",
         _scorer("ssim", "SSIMScorer", "data_range=1.0e+300")),
    Case("SSIM ensemble of 1000 windows (scorer)", "ranges",
         "scoring.scorer.params.sigmas: expected list of numbers > 0 and <= 2048 (at least 1, at most 64), got 1000 items",
         _scorer("ssim", "SSIMEnsembleScorer", f"sigmas=[{', '.join(['1.0'] * 1000)}]")),
    Case("SSIM ensemble window sigma 1e300 (scorer)", "ranges",
         "scoring.scorer.params.sigmas: [1]: expected a number > 0 and <= 2048, got 1e+300",
         _scorer("ssim", "SSIMEnsembleScorer", "sigmas=[0.5, 1.0e+300]")),
    Case("MHD smoothing sigma 1e300 (scorer)", "ranges", "scoring.scorer.params.smoothing_sigma: expected a number >= 0 and <= 2048, got 1e+300",
         _scorer("mahalanobis", "MahalanobisScorer", "num_reconstructions=2", "smoothing_sigma=1.0e+300")),
    Case("MHD SSIM sigma 1e300 (scorer)", "ranges", "scoring.scorer.params.ssim_sigma: expected a number > 0 and <= 2048, got 1e+300",
         _scorer("mahalanobis", "MahalanobisScorer", "num_reconstructions=2", "ssim_sigma=1.0e+300")),
    Case("component size beyond any volume (post-processing)", "ranges",
         "binary_postprocessing[0].params.min_size: expected an integer >= 0 and <= 8589934592, got 1000000000000000000000000000000",
         _args(f"{EVAL}.params.binary_postprocessing=[{{module_name: optim.postprocessing, class_name: RemoveSmallComponents, "
               "params: {min_size: 1000000000000000000000000000000}}]")),
    # --- seeds: 0 to 2**63 - 1 as the run's (a task's seed outside it was written into results.json, then refused by its reader)
    Case("evaluation seed beyond 2**63 (evaluator)", "ranges",
         "downstream_tasks.detection.params.seed: expected an integer >= 0 and <= 9223372036854775807, got 1" + "0" * 30,
         _args(f"{EVAL}.params.seed=1" + "0" * 30)),
    Case("negative evaluation seed (evaluator)", "ranges",
         "downstream_tasks.detection.params.seed: expected an integer >= 0 and <= 9223372036854775807, got -5", _args(f"{EVAL}.params.seed=-5")),
    Case("data-loader seed beyond 2**63", "ranges",
         "trainer.data_loader.params.seed: expected an integer >= 0 and <= 9223372036854775807, got 1" + "0" * 30,
         _args(f"{DL}.seed=1" + "0" * 30)),
    Case("params not a mapping", "types", "model.params: must be a mapping of keyword arguments", _args("model.params=[1, 2]")),
    Case("unparsable --set value", "config", "is not valid YAML", _args(f"{T}.optimizer_params={{lr: ")),
    Case("--set without a value", "config", "expected key.path=value", lambda root, config: ["--set", f"{T}.nr_epochs"]),
    Case("unknown top-level key", "config", "experimnt: unknown top-level key; did you mean 'experiment'", _edit("experimnt", {})),
    Case("missing weights file for training", "config", "experiment.weights: nope.pt not found", _args("experiment.weights=nope.pt")),
    Case("missing init weights for training", "config", "trainer.params.weights.init: missing.pt not found",
         _args(f"{T}.weights={{init: {{encoder: missing.pt}}}}")),
    Case("export outside the run folder", "config", "must be a file name inside the run folder",
         _args(f"{T}.weights={{export: {{encoder: ../../weights/enc.pt}}}}")),
    Case("external class that is not a model", "external", "collections.OrderedDict is not a Module",
         _flag_args("model.module_name=collections", "model.class_name=OrderedDict", "model.params={}")),
    Case("external class that is not a trainer", "external", "collections.Counter is not a Trainer",
         _flag_args("trainer.module_name=collections", "trainer.class_name=Counter", f"{T}={{}}")),
    Case("external module without opt-in", "external", "pass --allow-external-modules on the command line",
         _args("model.module_name=collections", "model.class_name=OrderedDict")),
    Case("opt-in from the config file", "external", "allow_external_modules: is not a config key",
         _edit("allow_external_modules", True)),
    Case("opt-in by --set", "external", "allow_external_modules: is not a config key", _args("allow_external_modules=true")),
    # --- a shared checkpoint, run folder or base config never runs code: the opt-in is the command line's
    Case("checkpoint naming a shell command, opt-in inside (predict)", "hostile", "allow_external_modules: is not a config key",
         _predict(allow_external_modules=True, model=_popen)),
    Case("checkpoint naming a shell command (predict)", "hostile", "'subprocess' is outside this project's packages",
         _predict(model=_popen)),
    Case("checkpoint naming a shell command, flag given (predict)", "hostile", "subprocess.Popen is not a Module",
         _predict(model=_popen, flag=True)),
    Case("checkpoint naming a shell command as scorer, flag given (predict)", "hostile", HOSTILE_ROLES["scorer"],
         _predict(downstream_tasks__detection__params__scorer=_popen, flag=True)),
    Case("checkpoint naming a shell command (uad test --model)", "hostile", "allow_external_modules: is not a config key",
         _test_model(allow_external_modules=True, model=_popen)),
    Case("run folder config replaced (--resume)", "hostile", "allow_external_modules: is not a config key", _hostile_run_folder),
    Case("opt-in from a base config", "hostile", "allow_external_modules: is not a config key", _evil_base),
    *[Case(f"checkpoint naming a shell command as {slot} (uad test --model)", "hostile", "'subprocess' is outside this project's packages",
           _hostile_test(slot)) for slot in HOSTILE_SLOTS],
    *[Case(f"checkpoint naming a shell command as {slot}, flag given (uad test --model)", "hostile", words, _hostile_test(slot, flag=True))
      for slot, words in HOSTILE_ROLES.items()],
    *[Case(f"checkpoint naming a shell command as {slot}, flag given (predict)", "hostile", HOSTILE_ROLES[slot], _hostile_predict(slot, flag=True))
      for slot in ("trainer", "training data loader", "loss", "evaluator", "evaluation data loader", "post-processing")],
    Case("checkpoint naming a shell command as trainer (predict)", "hostile", "'subprocess' is outside this project's packages",
         _hostile_predict("trainer")),
    Case("run folder naming a shell command, no opt-in key (--resume)", "hostile", "'subprocess' is outside this project's packages",
         _hostile_resume("model")),
    *[Case(f"run folder naming a shell command as {slot}, flag given (--resume)", "hostile", HOSTILE_ROLES[slot], _hostile_resume(slot, flag=True))
      for slot in ("model", "trainer", "loss")],
    Case("run folder naming a shell command as a flat scorer (--resume)", "hostile", "'subprocess' is outside this project's packages",
         _hostile_resume("scorer", flat_scorer=True)),
    # --- the other verbs open shared files the same way: describe, convert, cv, benchmark
    Case("describe: run folder naming a shell command, opt-in inside", "hostile", "config.yaml: allow_external_modules: is not a config key",
         _uad(_hostile_describe("model", opt_in=True))),
    Case("describe: run folder naming a shell command", "hostile", "'subprocess' is outside this project's packages",
         _uad(_hostile_describe("model"))),
    Case("describe: run folder naming a shell command as trainer, flag given", "hostile", HOSTILE_ROLES["trainer"],
         _uad(_hostile_describe("trainer", flag=True))),
    Case("describe: run folder naming a shell command as scorer", "hostile", "'subprocess' is outside this project's packages",
         _uad(_hostile_describe("scorer"))),
    Case("convert: config naming a shell command as model", "hostile", "'subprocess' is outside this project's packages",
         _hostile_convert("model")),
    Case("convert: config naming a shell command as trainer", "hostile", "'subprocess' is outside this project's packages",
         _hostile_convert("trainer")),
    Case("convert: config naming a shell command as loss, flag given", "hostile", HOSTILE_ROLES["loss"], _hostile_convert("loss", flag=True)),
    Case("convert: opt-in inside the config", "hostile", "allow_external_modules: is not a config key", _hostile_convert("scorer", opt_in=True)),
    Case("cv: config naming a shell command", "hostile", "'subprocess' is outside this project's packages", _uad(_hostile_cv("model"))),
    Case("cv: config naming a shell command as trainer, flag given", "hostile", HOSTILE_ROLES["trainer"], _uad(_hostile_cv("trainer", flag=True))),
    Case("cv: opt-in from a base config", "hostile", "allow_external_modules: is not a config key", _uad(_hostile_cv(None, base_opt_in=True))),
    Case("benchmark: test-only method whose weights name a shell command", "hostile", "'subprocess' is outside this project's packages",
         _hostile_benchmark("test-only")),
    Case("benchmark: method config with the opt-in", "hostile", "allow_external_modules: is not a config key", _hostile_benchmark("opt-in")),
    Case("benchmark: method naming a shell command, flag given", "hostile", HOSTILE_ROLES["model"], _hostile_benchmark("model", flag=True)),
    Case("benchmark: orchestrator is a shell command", "hostile", "'subprocess' is outside this project's packages",
         _hostile_benchmark("orchestrator")),
    Case("benchmark: orchestrator is a shell command, flag given", "hostile", "subprocess.Popen is not an orchestrator",
         _hostile_benchmark("orchestrator", flag=True)),
    Case("benchmark: benchmark config with the opt-in", "hostile", "allow_external_modules: is not a config key",
         _hostile_benchmark("benchmark opt-in")),
    # --- names that become paths stay inside their folder
    Case("img_name escaping the maps folder", "paths", "img_name '../../../../X' holds a path separator",
         _csv_row("test.csv", "../../../../X,,1,t0.nii.gz,t0_mask.nii.gz,t0_seg.nii.gz")),
    Case("img_name escaping the --output folder (predict)", "paths", "img_name '../../X' holds a path separator",
         lambda root, config: _csv_row("test.csv", "../../X,,1,t0.nii.gz,t0_mask.nii.gz,t0_seg.nii.gz")(root, config)
         + _predict()(root, config)),
    Case("data set name escaping the output root", "paths", "datasets.../test: the data set name holds a path separator",
         _rename_dataset("test", "../test")),
    Case("run name with ../", "paths", "name: '../../../dir' holds a path separator", _edit("name", "../../../dir")),
    Case("checkpoint run name with ../ (uad test --model)", "paths", "stored config: name '../../../dir' holds a path separator",
         _test_model(name="../../../dir")),
    # --- run-folder files and checkpoints from someone else, damaged or crafted
    Case("describe: config.yaml not YAML", "run folder", "config.yaml: invalid YAML at line 2", _shared_run("model: [unclosed\n")),
    Case("describe: config.yaml with a python tag", "run folder", "config.yaml: invalid YAML at line 1",
         _shared_run("name: !!python/object/apply:os.system ['touch PWNED']\n")),
    Case("describe: results.json corrupt", "run folder", "results.json: not valid JSON at line 1", _shared_run(results_text='{"det')),
    Case("describe: results.json threshold without its kind", "run folder",
         "results.json: detection.test.thresholds.fpr_5% must be a mapping with 'kind' and 'value'",
         _shared_run(results_text='{"detection": {"test": {"thresholds": {"fpr_5%": {"value": "abc"}}}}}')),
    Case("describe: results.json thresholds not a mapping", "run folder",
         "results.json: detection.test.thresholds must map rule keys to fitted thresholds",
         _shared_run(results_text='{"detection": {"test": {"metrics": NaN, "thresholds": "x"}}}')),
    Case("describe: per_volume.csv not UTF-8", "run folder", "per_volume.csv: not a readable UTF-8 CSV file",
         _shared_run(results_text='{"detection": {"test": {"AUPRC": 0.5}}}', per_volume=b'\xff\xfe\x00garbage,,\n"unterminated')),
    Case("report: results.json task not a mapping", "run folder", "results.json: 'detection' must map data set names to their metrics",
         _shared_run(results_text='{"detection": 5}', verb="report")),
    Case("report: methods.json names a folder outside", "run folder", "methods.json: method 'm': '../runA' leads outside",
         _shared_benchmark("../runA")),
    Case("report: methods.json names an absolute folder", "run folder",
         "methods.json: method 'm': run folder '/etc' is not a relative path inside the benchmark folder",
         _shared_benchmark("/etc")),
    Case("--resume with a corrupt origin.json", "run folder", "origin.json: not valid JSON", _corrupt_origin),
    Case("--resume of a run folder linking outside", "run folder", "detection is a symbolic link to", _linked_run_folder()),
    Case("describe: run folder linking outside", "run folder", "outside the folder; writes through it would land there",
         _linked_run_folder("describe")),
    Case("report: run folder linking outside", "run folder", "outside the folder; writes through it would land there",
         _linked_run_folder("report")),
    Case("convert: crafted Lightning checkpoint", "checkpoint", "crafted.ckpt: weights do not fit the model of", _uad(_crafted_lightning)),
    Case("predict: a PNG as input to a volume model", "checkpoint", "records no reading of 2D images (its evaluation scored volumes", _uad(_predict_png)),
    Case("predict: a binary file named .csv", "checkpoint", "scans.csv line 1: not a readable UTF-8 CSV", _uad(_predict_binary_csv)),
    Case("convert: a state_dict key that is not a name", "checkpoint", "crafted.ckpt: 'state_dict' holds the key 1 (int), not a parameter name",
         _uad(_convert_int_key)),
    # --- uad predict: inputs and the model's grid checked before the output folder exists
    Case("predict: a 2D NIfTI", "predict", "scan.nii.gz: shape (16, 16); expected a 3D volume", _predict_scan(np.zeros((16, 16), np.float32))),
    Case("predict: raw scan preprocessed off the model's grid", "predict", "shared.pt was evaluated on 16x16; give scans already on the model's grid",
         _predict_scan(SCAN, *RAW, "--spacing", "2", input_shapes=[16, 16, 8], **BRAIN_CROP)),
    Case("predict: model that does not run on the preprocessed grid", "predict", "shared.pt does not run on its",
         _predict_scan(SCAN, *RAW, "--spacing", "2", **BRAIN_CROP)),
    Case("predict: preprocessed scans of two shapes, one mask", "predict",
         "b.nii.gz: shape (12, 16, 8) but its brain mask", _predict_two_shapes),
    Case("predict: an all-zero raw scan", "predict", "scan.nii.gz: no voxel above 0 (an empty scan)",
         _predict_scan(np.zeros((16, 16, 8), np.float32), *RAW)),
    Case("predict: --spacing 0", "predict", "argument --spacing: expected a number of mm >= 0.25 and <= 10, got '0'",
         _predict_scan(None, "--spacing", "0")),
    Case("predict: --threshold nan", "predict", "argument --threshold: expected a fitted rule (e.g. fpr_5%) or a finite number",
         _predict_scan(None, "--threshold=nan")),
    Case("predict: --threshold -inf", "predict", "argument --threshold: expected a fitted rule (e.g. fpr_5%) or a finite number",
         _predict_scan(None, "--threshold=-inf")),
    # --- a checkpoint's recorded values (trained_on, evaluation) checked as typed data before predict uses any
    Case("predict: trained_on.grid_shape not a list", "checkpoint", "shared.pt: trained_on.grid_shape: expected list of integers >= 1 and <= 2048 or null, got 'abc'",
         _uad(_trained("grid_shape", "abc"))),
    Case("predict: trained_on.spacing_mm not numbers", "checkpoint", "shared.pt: trained_on.spacing_mm: expected list of numbers > 0 or null, got [0, 'x']",
         _uad(_trained("spacing_mm", [0, "x"]))),
    Case("predict: trained_on.spacing_mm zero", "checkpoint", "shared.pt: trained_on.spacing_mm: [0]: expected a number > 0, got 0.0",
         _uad(_trained("spacing_mm", [0.0, 1.0, 1.0]))),
    Case("predict: trained_on.volumes not a number", "checkpoint", "shared.pt: trained_on.volumes: expected an integer, got 'many'",
         _uad(_trained("volumes", "many"))),
    Case("predict: trained_on not a mapping", "checkpoint", "shared.pt: trained_on: expected a mapping", _uad(_trained("", [1]))),
    Case("predict: evaluation not a mapping", "checkpoint", "shared.pt: evaluation: expected a mapping {task: record}, got [1]",
         _uad(_crafted("predict", evaluation=[1]))),
    Case("predict: unknown preprocessing key in the record", "checkpoint",
         "shared.pt: evaluation.detection.input_grid.preprocessing.bogus: unknown parameter of VolumePreprocessor",
         _uad(_record("input_grid.preprocessing", {"bogus": 1}))),
    Case("predict: absurd crop in the record", "checkpoint",
         "evaluation.detection.input_grid.preprocessing.crop_shape: [0]: expected an integer >= 1 and <= 2048, got 100000",
         _uad(_record("input_grid.preprocessing", {"crop_shape": [100000, 1, 1]}))),
    Case("predict: negative grid in the record", "checkpoint",
         "shared.pt: evaluation.detection.input_grid.shape: [0]: expected an integer >= 1 and <= 2048, got -1",
         _uad(_record("input_grid.shape", [-1, 0, 10**9]))),
    Case("predict: 2-D grid in the record", "checkpoint", "evaluation.detection.input_grid.shape: expected 3 integers (H, W, D), got [16, 16]",
         _uad(_record("input_grid.shape", [16, 16]))),
    Case("predict: NaN threshold in the record", "checkpoint",
         "shared.pt: evaluation.detection.thresholds.test.fpr_5%.value: expected a finite value", _uad(_record("thresholds.test.fpr_5%.value", float("nan")))),
    Case("predict: infinite threshold in the record", "checkpoint", "thresholds.test.fpr_5%.value: expected a finite value",
         _uad(_record("thresholds.test.fpr_5%.value", float("inf")))),
    Case("predict: threshold level 7 in the record", "checkpoint", "thresholds.test.fpr_5%.level: expected a number > 0 and < 1, got 7",
         _uad(_record("thresholds.test.fpr_5%.level", 7))),
    Case("predict: unresolved precision in the record", "checkpoint",
         "shared.pt: evaluation.detection.scored_with.autocast: expected one of fp32, bf16, fp16 (the precision the evaluation ran "
         "at), got 'auto'", _uad(_record("scored_with.autocast", "auto"))),
    Case("test --model: NaN threshold in the record", "checkpoint", "shared.pt: evaluation.detection.thresholds.test.fpr_5%.value: expected a finite",
         _uad(_record("thresholds.test.fpr_5%.value", float("nan"), verb="test"))),
    Case("describe: NaN threshold in results.json", "run folder", "results.json: detection.test: thresholds.fpr_5%.value: expected a finite value",
         _describe_entry("thresholds.fpr_5%.value", float("nan"))),
    Case("describe: threshold 1e400 in results.json", "run folder", "thresholds.fpr_5%.value: expected a finite value",
         _shared_run(results_text='{"detection": {"test": {"thresholds": {"fpr_5%": {"kind": "healthy_fpr", "value": 1e400, "level": 0.05}}}}}')),
    Case("describe: threshold level 7 in results.json", "run folder", "thresholds.fpr_5%.level: expected a number > 0 and < 1, got 7",
         _describe_entry("thresholds.fpr_5%.level", 7)),
    Case("describe: unknown preprocessing key in results.json", "run folder",
         "results.json: detection.input_grid.preprocessing.bogus: unknown parameter of VolumePreprocessor",
         _describe_entry("input_grid.preprocessing", {"bogus": 1})),
    Case("describe: absurd crop in results.json", "run folder", "preprocessing.crop_shape: [0]: expected an integer >= 1 and <= 2048, got 100000",
         _describe_entry("input_grid.preprocessing", {"crop_shape": [100000, 1, 1]})),
    Case("describe: negative grid in results.json", "run folder", "results.json: detection.test: input_grid.shape: [0]: expected an integer >= 1",
         _describe_entry("input_grid.shape", [-1, 0, 10**9])),
    Case("describe: 2-D grid in results.json", "run folder", "input_grid.shape: expected 3 integers (H, W, D), got [16, 16]",
         _describe_entry("input_grid.shape", [16, 16])),
    Case("preprocess: a scan named ...nii.gz (name '..')", "preprocess", "...nii.gz: scan name '..' is '..'",
         _raw_scans("a.nii.gz", "...nii.gz")),
    Case("preprocess: a scan named ..nii.gz (name '.')", "preprocess", "..nii.gz: scan name '.' is '.'",
         _raw_scans("a.nii.gz", "..nii.gz")),
    Case("preprocess: two scans that become one name", "preprocess", "x y.nii.gz and x_y.nii.gz both become the name 'x_y'",
         _raw_scans("x y.nii.gz", "x_y.nii.gz")),
    Case("predict: two scans that become one name", "predict", "x y.nii.gz and x_y.nii.gz both become the name 'x_y'",
         _predict_names_that_collide),
    Case("preprocess: --spacing nan", "preprocess", "argument --spacing: expected a number of mm >= 0.25 and <= 10, got 'nan'",
         _preprocess("--spacing", "nan")),
    Case("preprocess: --workers -3", "preprocess", "argument --workers: expected an integer >= 1 and <= ", _preprocess("--workers=-3")),
    Case("preprocess: --folds 0", "preprocess", "argument --folds: expected an integer >= 2 (k of the k folds), got '0'", _preprocess("--folds", "0")),
    # --- uad preprocess / predict: every value bounded before a subject runs (each once ran every subject, or forked
    # thousands of processes, before failing), and a scan that cannot be scored is one line
    Case("preprocess: --workers 100000", "preprocess",
         f"argument --workers: expected an integer >= 1 and <= {MAX_PROCESS_WORKERS} ({WORKERS_PER_CPU} per CPU of this machine), "
         "got '100000'", _preprocess("--workers", "100000")),
    Case("preprocess: --seed=-1", "preprocess", f"argument --seed: expected an integer >= 0 and <= {2**63 - 1}, got '-1'",
         _preprocess("--seed=-1")),
    Case("preprocess: --seed 2**63", "preprocess", f"argument --seed: expected an integer >= 0 and <= {2**63 - 1}, got '{2**63}'",
         _preprocess("--seed", str(2**63))),
    Case("preprocess: --spacing 1e9", "preprocess", "argument --spacing: expected a number of mm >= 0.25 and <= 10, got '1e9'",
         _preprocess("--spacing", "1e9")),
    Case("preprocess: --spacing 1e-6", "preprocess", "argument --spacing: expected a number of mm >= 0.25 and <= 10, got '1e-6'",
         _preprocess("--spacing", "1e-6")),
    Case("predict: --spacing 1e9", "predict", "argument --spacing: expected a number of mm >= 0.25 and <= 10, got '1e9'",
         _predict_scan(None, "--spacing", "1e9")),
    Case("predict: a scan with a zero-size axis", "predict", "scan.nii.gz has a zero-size axis (shape (16, 16, 0)): no voxels",
         _predict_scan(np.zeros((16, 16, 0), np.float32))),
    Case("predict: a uniform preprocessed scan", "predict",
         "scan.nii.gz: its intensity percentiles 1 and 99 inside the brain mask are both 0.5 (a uniform scan)", _predict_uniform),
    # --- a benchmark checks every method's config before its run folder exists
    Case("benchmark: a bad value in its second method", "benchmark",
         "orchestrator: methods.bad:", _benchmark(ok={}, bad={"set": [f"{T}.nr_epochs=0"]})),
    Case("benchmark: set not a list", "benchmark", "methods.ok.set: must be a list of key.path=value strings",
         _benchmark(ok={"set": "notalist"})),
    # --- values that cannot work: refused by the signatures' ranges before the run folder exists
    Case("num_threads far above any machine", "ranges", "num_threads: 100000 must be >= 1 and <= 1024", _args("num_threads=100000")),
    Case("empty channel list (model)", "ranges", "model.params.channels: expected list of integers >= 1 and <= 16384 (at least 1), got []",
         _args("model.params.channels=[]")),
    Case("infinite learning rate", "ranges", "optimizer_params.lr: expected a number >= 0 and <= 10, got inf",
         _args(f"{T}.optimizer_params={{lr: .inf}}")),
    Case("learning rate 1e308", "ranges", "optimizer_params.lr: expected a number >= 0 and <= 10, got 1e+308",
         _args(f"{T}.optimizer_params={{lr: 1.0e+308}}")),
    Case("5000-digit integer in the config file", "yaml", "an integer of 5000 digits is too long", _raw_config_edit("seed: 7", "seed: " + "9" * 5000)),
    Case("5000-digit integer by --set", "yaml", "--set seed=", _args("seed=" + "9" * 5000)),
    Case("wandb online without an API key", "config", "wandb mode online needs an API key", _args("logging={wandb: {mode: online}}"),
         env=(("WANDB_API_KEY", None), ("WANDB_IDENTITY_TOKEN_FILE", None), ("NETRC", "/nonexistent/netrc"))),
    Case("absurd channel width (model)", "ranges", "model.params.channels: [0]: expected an integer >= 1 and <= 16384, got 100000000",
         _args("model.params.channels=[100000000, 16]")),
    Case("absurd crop (preprocessing)", "ranges", "preprocessing.crop_shape: [0]: expected an integer >= 1 and <= 2048, got 100000",
         _args(f"{DL}.preprocessing.crop_shape=[100000, 100000, 100000]")),
    Case("absurd target grid (preprocessing)", "ranges", "preprocessing.target_shape: [0]: expected an integer >= 1 and <= 2048, got 4000",
         _args(f"{DL}.preprocessing.target_shape=[4000, 4000, 4000]")),
    Case("absurd median kernel (post-processing)", "ranges", "kernel_size: expected an integer >= 1 and <= 64, got 1000000",
         _edit(f"{EVAL}.params.map_postprocessing[0].params.kernel_size", 1000000)),
    # --- messages name what the user gave and the right fix
    Case("checkpoint with a bad stored value (uad test --model)", "wording", "shared.pt (stored config): seed: -1 is out of range",
         _test_model(seed=-1)),
    Case("run name of 300 characters", "wording", "name: 'aaaaaaaaaa", _edit("name", "a" * 300)),
    Case("predict --output an existing file", "wording", "fix the path (an existing file where a folder goes",
         lambda root, config: _predict_scan(None, "--output", str(_file(root, "afile")), input_shapes=[16, 16, 8])(root, config)),
    Case("checkpoint whose stored config has no model", "wording", "its stored config has no 'model' section",
         _predict_without_model),
    Case("predict --model an empty file", "wording", "empty.pt: not a readable weights-only checkpoint",
         _uad(lambda root, config: ["predict", "--model", str(_file(root, "empty.pt", b"")), "--input", str(_data(root) / "test.csv"),
                                    "--output", str(root / "out"), "--threshold", "0.5", "--device", "cpu", "--no-png"])),
    # --- uad cv: every fold checked before its cv folder is claimed
    Case("cv: unknown threshold key", "config", "thresholds.bogus: unknown parameter of ThresholdSettings",
         _cv(thresholds={"fixed": [0.5]}, items=("downstream_tasks.detection.params.thresholds.bogus=1",))),
    Case("cv: the second fold's split missing", "data", "healthy_fold1.csv", _cv(folds=(0,))),
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
    Case("training volume of another size", "data", "h1.nii.gz has 12x16 slices but",
         lambda root, config: _nifti("h1.nii.gz", np.full((12, 16, 8), 0.5, np.float32))(root, config)
         + _nifti("h1_mask.nii.gz", np.ones((12, 16, 8), np.uint8))(root, config)),
    Case("test volume of another size", "data", "t1.nii.gz has 12x16 slices but", _volume_of_shape("t1", (12, 16, 8))),
    Case("test volume of another size (uad test --model)", "data", "t1.nii.gz has 12x16 slices but the model does not run on them",
         lambda root, config: _volume_of_shape("t1", (12, 16, 8))(root, config) + _test_model()(root, config)),
    Case("model image_size off the data grid", "data", "model: ConvAutoencoder does not fit a training batch (1, 1, 16, 16) of healthy.csv",
         _args("model.params.image_size=32")),
    Case("slices too small for LPIPS (RA scorer)", "data",
         "h0.nii.gz has 16x16 slices, but RAPerceptualScorer needs axial slices of at least 17x17 pixels; "
         "set the data loader's preprocessing target_shape to a larger grid or choose another scorer",
         _scorer("ra_lpips", "RAPerceptualScorer", "backbone=random")),
    Case("SSIM reflect window wider than the slices (scorer)", "data",
         "h0.nii.gz has 16x16 slices, but SSIMScorer needs axial slices of at least 19x19 pixels; set the data loader's preprocessing target_shape",
         _scorer("ssim", "SSIMScorer", "padding=reflect", "sigma=5.0")),
    Case("MHD's reflect-padded SSIM window wider than the slices (scorer)", "data",
         "h0.nii.gz has 16x16 slices, but MahalanobisScorer needs axial slices of at least 19x19 pixels",
         _scorer("mahalanobis", "MahalanobisScorer", "num_reconstructions=2", "ssim_padding=reflect", "ssim_sigma=5.0")),
    Case("SSIM's 3-D reflect window deeper than the volumes (scorer)", "data",
         "h0.nii.gz has 8 axial slices, but SSIMScorer needs volumes of at least 10 axial slices (its 3-D windows); "
         "set the data loader's preprocessing target_shape / crop_shape to keep more slices",
         _scorer("ssim", "SSIMScorer", "padding=reflect", "sigma=2.5")),
    Case("mask shape mismatch", "data", "h0_mask.nii.gz", _nifti("h0_mask.nii.gz", np.ones((16, 16, 4), np.uint8))),
    Case("empty brain mask", "data", "h1_mask.nii.gz", _nifti("h1_mask.nii.gz", np.zeros(SHAPE, np.uint8))),
    Case("non-binary mask", "data", "h0_mask.nii.gz is not binary",
         _nifti("h0_mask.nii.gz", np.random.default_rng(0).integers(0, 4, SHAPE).astype(np.uint8))),
    Case("non-binary lesion labels", "data", "v1_seg.nii.gz is not binary",
         _nifti("v1_seg.nii.gz", np.random.default_rng(0).choice([0.0, 0.5, 1.0], SHAPE).astype(np.float32))),
    Case("row escaping data_root", "data", "escapes data_root",
         _csv_row("healthy.csv", "evil,,0,../../../../etc/passwd,h0_mask.nii.gz,")),
    Case("symlink loop", "data", "h0.nii.gz", _symlink_loop),
    Case("row climbing out through a link inside data_root (the rule is textual)", "data", "escapes data_root", _link_then_dotdot),
    # --- checkpoints: weights_only, never a pickle's code; foreign and partial files refused
    Case("hostile pickle checkpoint", "checkpoint", "not a readable weights-only checkpoint", _test_with_weights(_hostile)),
    Case("truncated checkpoint", "checkpoint", "not a readable weights-only checkpoint", _test_with_weights(_truncated)),
    Case("foreign checkpoint", "checkpoint", "not a checkpoint of this framework", _test_with_weights(_foreign)),
    Case("partial checkpoint", "checkpoint", "weights do not fit the model: missing", _test_with_weights(_partial)),
    Case("mis-shaped checkpoint", "checkpoint", "shape mismatch", _test_with_weights(_misshapen)),
    Case("checkpoint of non-tensors", "checkpoint", "'model_weights' is not a mapping of names to tensors", _test_with_weights(_not_tensors)),
    # --- a component of the wrong kind is refused on its class (optim.contracts, Scorer), before anything is built
    Case("a scorer as the loss", "roles", "trainer.params.loss: optim.scoring.l1.L1Scorer is not a TrainingLoss",
         _edit(f"{T}.loss", L1_SCORER)),
    Case("the model's class as the loss", "roles", "trainer.params.loss: model_zoo.autoencoder.ConvAutoencoder is not a TrainingLoss",
         _edit(f"{T}.loss", AUTOENCODER)),
    Case("a scorer as the loss (--resume of a crafted config.yaml)", "roles",
         "config.yaml: trainer.params.loss: optim.scoring.l1.L1Scorer is not a TrainingLoss", _resume_stored(f"{T}.loss", L1_SCORER)),
    Case("the loss as a map step", "roles", "map_postprocessing: [0]: optim.losses.reconstruction.ReconstructionLoss is not a MapStep",
         _edit(f"{EVAL}.params.map_postprocessing", [L2_LOSS])),
    Case("a scorer as a map step", "roles", "map_postprocessing: [0]: optim.scoring.l1.L1Scorer is not a MapStep",
         _edit(f"{EVAL}.params.map_postprocessing", [L1_SCORER])),
    Case("a scorer as a binary step", "roles", "binary_postprocessing: [0]: optim.scoring.l1.L1Scorer is not a BinaryStep",
         _edit(f"{EVAL}.params.binary_postprocessing", [L1_SCORER])),
    Case("a map step as the scorer", "roles", "expected a Scorer, MedianFilter lacks num_reconstructions",
         _edit(f"{EVAL}.params.scorer", _spec("optim.postprocessing", "MedianFilter", kernel_size=3))),
    Case("test --model: a model as a map step in the stored config", "roles",
         "shared.pt (stored config): downstream_tasks.detection.params.scoring.map_postprocessing: [0]: model_zoo.spark.LightDecoder is not a MapStep",
         _test_model(downstream_tasks__detection__params__map_postprocessing=[DECODER])),
    Case("predict: the loss as a map step in the stored config", "roles",
         "map_postprocessing: [0]: optim.losses.reconstruction.ReconstructionLoss is not a MapStep",
         _predict(downstream_tasks__detection__params__map_postprocessing=[L2_LOSS])),
    Case("predict: a scorer as a binary step in the stored config", "roles",
         "binary_postprocessing: [0]: optim.scoring.l1.L1Scorer is not a BinaryStep",
         _predict(downstream_tasks__detection__params__binary_postprocessing=[L1_SCORER])),
    # --- checkpoint tensors: dense, with values, real, of the model's kind of dtype, finite; refused when loaded
    Case("test --model: a sparse tensor in the weights", "checkpoint", "shared.pt: weights unusable for the model: ",
         _weights_of(_sparse_weights)),
    Case("test --model: meta tensors as the weights", "checkpoint", "is on the meta device (it holds no values)",
         _weights_of(_meta_weights)),
    Case("predict --model RUN: meta tensors in best_model.pt", "checkpoint",
         "best_model.pt: weights unusable for the model: decoder.", _weights_of(_meta_weights, "predict", run_folder=True)),
    Case("predict --model RUN: a sparse tensor in best_model.pt", "checkpoint", "tensor, not a dense one",
         _weights_of(_sparse_weights, "predict", run_folder=True)),
    Case("experiment.weights: complex weights", "checkpoint", "decoder.0.0.bias is complex64 where the model has float32",
         _test_with_weights(_weights_file(_complex_weights))),
    Case("experiment.weights: meta tensors", "checkpoint", "is on the meta device", _test_with_weights(_weights_file(_meta_weights))),
    Case("experiment.weights: integer weights", "checkpoint", "is int64 where the model has float32",
         _test_with_weights(_weights_file(_integer_weights))),
    Case("test --model: NaN weights", "checkpoint", "holds NaN or infinite values", _weights_of(_nan_weights)),
    Case("predict --model RUN: NaN weights in best_model.pt", "checkpoint", "best_model.pt: weights unusable for the model: ",
         _weights_of(_nan_weights, "predict", run_folder=True)),
    Case("predict: one infinite weight", "checkpoint", "holds NaN or infinite values", _weights_of(_one_inf_weight, "predict")),
    Case("training from NaN weights (experiment.weights)", "checkpoint", "weights unusable for the model",
         lambda root, config: [_weights_file(_nan_weights)(root / "nan.pt")] and _args(f"experiment.weights={root / 'nan.pt'}")(root, config)),
    # --- a shared checkpoint's stored config is plain data, checked once for every verb; its weights fit its model
    Case("test --model: a tensor in the stored config", "checkpoint", "shared.pt (stored config): seed: a torch.Tensor, not plain YAML data",
         _stored_entry("seed", torch.tensor(7), verb="test")),
    Case("test --model: a tensor deep in the stored config", "checkpoint",
         "shared.pt (stored config): model.params.latent_dim: a torch.Tensor, not plain YAML data",
         _test_model(model__params__latent_dim=torch.tensor(8))),
    Case("predict: a tensor in the stored config", "checkpoint", "shared.pt (stored config): seed: a torch.Tensor, not plain YAML data",
         _stored_entry("seed", torch.tensor(7))),
    Case("predict: top-level key 5 in the stored config", "checkpoint", "shared.pt (stored config): 5: a key of type int",
         _stored_entry(5, "x")),
    Case("predict: bytes as the stored run name", "checkpoint", "shared.pt (stored config): name: a bytes, not plain YAML data",
         _stored_entry("name", b"tiny")),
    Case("predict: unknown top-level key in the stored config", "checkpoint", "shared.pt (stored config): bogus: unknown top-level key",
         _stored_entry("bogus", 1)),
    Case("training_record: stored config naming a shell command as model", "checkpoint",
         "'subprocess' is outside this project's packages", _training_record(model=_popen)),
    Case("training_record: a tensor in the stored config", "checkpoint", "shared.pt (stored config): seed: a torch.Tensor, not plain YAML data",
         _training_record(seed=torch.tensor(7))),
    Case("training_record: weights that do not fit the stored model", "checkpoint", "shared.pt: weights do not fit the model: missing",
         _training_record(weights=dict)),
    Case("describe: --weights off by one in every last axis", "checkpoint", "given.pt: weights do not fit the model: missing none; "
         "unexpected none; shape mismatch", _describe_weights(_off_by_one)),
    Case("describe: --weights with empty model_weights", "checkpoint", "given.pt: weights do not fit the model: missing decoder",
         _describe_weights(dict)),
    Case("describe: --weights with a (10**6, 10**6) tensor", "checkpoint", "encoder.0.0.weight (1000000, 1000000) vs (8, 1, 4, 4)",
         _describe_weights(_vast)),
    Case("predict: every scan of the CSV missing", "predict", "test.csv line 2: scan ",
         _predict_missing_scans("t0", "t1")),
    Case("predict: the second scan of the CSV missing", "predict", "test.csv line 3: scan ",
         _predict_missing_scans("t1")),
    # --- a stored config holding itself, split CSVs as spreadsheets write them, long names, duplicate keys (audit 63)
    Case("predict: a stored list holding itself", "checkpoint", "shared.pt (stored config): model.params.channels[1]: holds itself",
         _stored_edit(lambda c: c["model"]["params"].__setitem__("channels", _looped_list()))),
    Case("predict: a stored mapping holding itself", "checkpoint", "shared.pt (stored config): trainer.params.self: holds itself",
         _stored_edit(lambda c: c["trainer"]["params"].__setitem__("self", c["trainer"]["params"]))),
    Case("test --model: a stored mapping holding itself", "checkpoint", "shared.pt (stored config): trainer.params.self: holds itself",
         _stored_edit(lambda c: c["trainer"]["params"].__setitem__("self", c["trainer"]["params"]), verb="test")),
    Case("predict: a stored task extending no task", "checkpoint",
         "shared.pt (stored config): downstream_tasks.d2.extends: 'nope' is not a task of this config",
         _stored_edit(lambda c: c["downstream_tasks"].__setitem__("d2", {"extends": "nope"}))),
    Case("training split in Latin-1", "data", "healthy.csv line 3: not a readable UTF-8 CSV (byte 0xe9",
         _write_file("healthy.csv", (VOLUME_HEADER + "h0,,0,h0.nii.gz,h0_mask.nii.gz,\n").encode() + b"h\xe91,,0,h1.nii.gz,h1_mask.nii.gz,\n")),
    Case("training split with a value over the csv limit", "data", "healthy.csv line 4: not a readable CSV row (field larger than field limit",
         _csv_row("healthy.csv", "h2,,0,h1.nii.gz,h1_mask.nii.gz," + "x" * 131073)),
    Case("split CSV error after a blank line and an empty row (the file's line)", "data", "healthy.csv line 5: label 'x' must be 0 or 1",
         _csv_text("healthy.csv", VOLUME_HEADER + "h0,,0,h0.nii.gz,h0_mask.nii.gz,\n\n,,,,,\nh1,,x,h1.nii.gz,h1_mask.nii.gz,\n")),
    Case("img_name of 300 characters", "paths", "test.csv line 4: img_name 'aaaaaaaaaa",
         _csv_row("test.csv", "a" * 300 + ",,1,t1.nii.gz,t1_mask.nii.gz,t1_seg.nii.gz")),
    Case("img_name of 300 characters (predict)", "paths", "is 300 bytes long (at most 128",
         lambda root, config: _csv_row("test.csv", "a" * 300 + ",,1,t1.nii.gz,t1_mask.nii.gz,t1_seg.nii.gz")(root, config)
         + _predict()(root, config)),
    Case("a key twice in one mapping of the config", "yaml", "key 'seed' appears twice in one mapping (first at line",
         _raw_config_edit("seed: 7\n", "seed: 7\nseed: 8\n")),
    Case("no loss for a model without its own (--set trainer.params=null)", "config",
         "tiny.yaml: trainer.params.loss: not set, and ConvAutoencoder has no training_loss()", _args(f"{T}=null")),
    # --- resume: the stored config is continued; a different one is refused, config.yaml never rewritten
    Case("resume with a changing --set", "resume", "--resume continues the stored config.yaml, but --set changes trainer.params.optimizer_params.lr",
         _resume_with(f"{T}.optimizer_params={{lr: 0.5}}", first=(f"{T}.patience=3",))),
    Case("resume from another config file", "resume", "pass that --config_path to resume it", _resume_with(config_path="other")),
    Case("resume without a checkpoint", "resume", "--resume needs a run folder holding checkpoints/latest_model.pt",
         _resume_with(config_path="no_checkpoint")),
    # --- resume: every field of a crafted latest_model.pt is checked before the run starts (nothing rewritten)
    *[Case(f"resume with latest_model.pt's {field} = {value!r}", "resume", f"latest_model.pt: field {shown}", _crafted_resume(field, value))
      for field, value, shown in [
          ("epoch", "x", "epoch is 'x', expected an integer in [0, 0]"),
          ("epoch", -5, "epoch is -5, expected an integer in [0, 0]"),
          ("epoch", 10**11, "epoch is 100000000000, expected an integer in [0, 0]"),
          ("best_val", "x", "best_val is 'x', expected a number"),
          ("epochs_without_improvement", "x", "epochs_without_improvement is 'x', expected an integer"),
          ("history", 5, "history is 5, expected a list of the trainer's rows"),
          ("history", [1, 2], "history[0] is 1, expected a row"),
          ("optimizer_weights", 5, "optimizer_weights is 5, expected a mapping"),
      ]],
    Case("resume with a 3-byte torch_rng", "resume", "latest_model.pt: field torch_rng is a uint8 tensor of shape (3,)",
         _crafted_resume("torch_rng", torch.tensor([1, 2, 3], dtype=torch.uint8))),
    Case("resume with a mis-shaped optimiser moment", "resume", "optimiser 'model' state does not fit this trainer (the state 'exp_avg'",
         _crafted_resume("optimizer_weights.model.state.0.exp_avg", torch.zeros(3))),
    Case("resume with a text learning rate in the optimiser state", "resume", "param_groups[0].lr is 'x'",
         _crafted_resume("optimizer_weights.model.param_groups.0.lr", "x")),
    Case("resume with no state of the trainer's optimiser", "resume", "holds no state of this trainer's optimiser 'model'",
         _crafted_resume("optimizer_weights", {})),
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
    uad = config.pop("__uad__", False)
    config.pop("__keep__", None)
    other = config.pop("__config_path__", None)
    if raw is not None:
        config_path.write_bytes(raw.encode("utf-8", "surrogateescape"))
    else:
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    if uad:  # True: a `uad` verb; a name: that command module of core/commands (e.g. training_record)
        return [uad if isinstance(uad, str) else "uad", *extra]
    return ["--config_path", other or str(config_path), "--quiet", *extra]


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def run_case(case: Case, root: Path) -> Outcome:
    """Run `case` through core/Main.py in this process, in `root` as the working directory (so that every
    file the command may write, the default `./runs` included, is under `root`, which is snapshotted)."""
    from core.commands.cli import main as uad
    from core.Main import main

    with warnings.catch_warnings():  # files an earlier (crashed) case left open are closed now, not inside this one
        warnings.simplefilter("ignore")
        gc.collect()
    root_logger = logging.getLogger()
    saved_logging = root_logger.handlers[:], root_logger.level
    root_logger.handlers = []  # as in a fresh process: the command's own logging setup writes to the captured stderr
    argv = prepare(case, root)
    from core.commands.training_record import main as training_record

    command = main
    if argv[0] in ("uad", "training_record"):
        command, argv = {"uad": uad, "training_record": training_record}[argv[0]], argv[1:]
    before = snapshot(root)  # the command runs in `root`: what it writes relative to it (`uad test --model`'s ./runs) is here
    err = io.StringIO()
    saved_env = {name: os.environ.get(name) for name, _ in case.env}
    for name, value in case.env:
        _set_env(name, value)

    def show(message, category, filename, lineno, file=None, line=None):  # as the command line would print them
        err.write(warnings.formatwarning(message, category, filename, lineno, line))

    with contextlib.chdir(root), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        try:
            code = command(argv)
        except SystemExit as exc:  # argparse refuses a value (one line, exit 2)
            code = exc.code
        finally:
            for handler in root_logger.handlers:
                if handler not in saved_logging[0]:
                    handler.close()
            root_logger.handlers = saved_logging[0]
            root_logger.setLevel(saved_logging[1])
            for name, value in saved_env.items():
                _set_env(name, value)
    after = snapshot(root)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return Outcome(code, [line for line in err.getvalue().splitlines() if line.strip()], changed, (root / "PWNED").exists())
