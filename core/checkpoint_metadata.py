"""Self-describing checkpoints: what a checkpoint carries besides its weights, and why.

A checkpoint of this framework holds, next to `model_weights`, the full merged `config`
it came from (so the model spec, the data-loader preprocessing, the scorer and the
post-processing of every downstream task travel with it), `model_spec` (the config's
`model` entry, for readers that want only that), `metadata_version`, `trained_on` (the
training data: split, volumes, subjects, contrast, grid; `data.trained_on`) and, once the
run has been evaluated, the fitted `thresholds` ({task: {test set: {protocol: value}}}).
Everything is plain values, so `torch.load(weights_only=True)` still loads it and `predict`
or a test-only config needs nothing else.

`uad describe RUN_FOLDER [--weights W] [--out OUT]` (core/cli.py) makes any
evaluated run folder's checkpoint (or the weights file `W`) self-describing from the
run's `config.yaml` and `results.json`.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import yaml

from dl_utils.checkpoint import load_checkpoint, save_checkpoint
from dl_utils.errors import UserInputError

METADATA_VERSION = 1
THRESHOLD_PREFIX = "threshold@"


def describe(config: dict[str, Any], trained_on: dict[str, Any] | None = None) -> dict[str, Any]:
    """The entries a training run writes into every checkpoint (plain values only); `trained_on`
    (`data.trained_on.TrainedOn.to_plain()`, what `uad predict` states) when given."""
    plain = json.loads(json.dumps(config, default=str))  # deep copy as plain values
    described = {"config": plain, "model_spec": plain.get("model"), "metadata_version": METADATA_VERSION}
    return {**described, "trained_on": dict(trained_on)} if trained_on is not None else described


def thresholds_from_results(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """{task: {test set: {protocol: threshold}}} from results keyed by task ({task: {set: metrics}})."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    for task, sets in results.items():
        if not isinstance(sets, dict):
            continue
        for set_name, metrics in sets.items():
            if not isinstance(metrics, dict):
                continue
            values = {k[len(THRESHOLD_PREFIX):]: float(v) for k, v in metrics.items()
                      if k.startswith(THRESHOLD_PREFIX) and not k.startswith(THRESHOLD_PREFIX + "oracle")
                      and isinstance(v, (int, float)) and math.isfinite(float(v))}  # oracle: fitted on test, never used
            if values:
                found.setdefault(task, {})[set_name] = values
    return found


def results_by_task(results: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Results keyed by task name whether the run had one task (flat) or several (nested)."""
    tasks = list((config.get("downstream_tasks") or {}).keys())
    if len(tasks) == 1 and tasks[0] not in results:
        return {tasks[0]: {k: v for k, v in results.items() if k != "training"}}
    return {k: v for k, v in results.items() if k in tasks}


def input_shapes(evaluators: dict[str, Any]) -> dict[str, list[int]]:
    """{task: (H, W, D) of its first evaluation volume}: the grid the model was evaluated on."""
    shapes = {}
    for name, evaluator in evaluators.items():
        datasets = getattr(evaluator, "datasets", None) or {}
        for volumes in datasets.values():
            if len(volumes):
                shapes[name] = [int(s) for s in volumes[0].image.shape]
                break
    return shapes


def store_thresholds(checkpoint: str | Path, results: dict[str, Any], config: dict[str, Any],
                     shapes: dict[str, list[int]] | None = None) -> bool:
    """Add the fitted thresholds, evaluation grid shapes and the config to `checkpoint`
    atomically; False if there is no such file."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        return False
    state = load_checkpoint(checkpoint)
    state.update(describe(config))
    state["thresholds"] = thresholds_from_results(results_by_task(results, config))
    state["input_shapes"] = dict(shapes or {})
    save_checkpoint(state, checkpoint)
    return True


def _shapes_from_maps(run_dir: Path, config: dict[str, Any]) -> dict[str, list[int]]:
    """Evaluation grid shapes read off a run folder's written anomaly maps."""
    import nibabel as nib

    tasks = list((config.get("downstream_tasks") or {}).keys())
    shapes = {}
    for task in tasks:
        root = run_dir / task / "anomaly_maps" if len(tasks) > 1 else run_dir / "anomaly_maps"
        first = next(iter(sorted(root.glob("*/*.nii.gz"))), None) if root.is_dir() else None
        if first is not None:
            shapes[task] = [int(s) for s in nib.load(str(first)).shape[:3]]
    return shapes


def read(state: dict[str, Any], source: Any) -> dict[str, Any]:
    """The stored config of a loaded checkpoint; a one-line error when it has none."""
    config = state.get("config")
    if not isinstance(config, dict) or "model" not in config:
        raise UserInputError(
            f"{source}: checkpoint does not describe itself (no 'config' entry); re-write it with "
            "`uad describe RUN_FOLDER --weights <this file>`"
        )
    return config


def complete_config(config: dict[str, Any]) -> dict[str, Any]:
    """A test-only config without `model` takes the model (and missing parts) from its weights."""
    experiment = config.get("experiment") or {}
    weights = experiment.get("weights") if isinstance(experiment, dict) else None
    if "model" in config or not weights:
        return config
    stored = read(load_checkpoint(weights), weights)
    out = copy.deepcopy(config)
    for key in ("model", "downstream_tasks", "name"):
        if key not in out and key in stored:
            out[key] = copy.deepcopy(stored[key])
    return out


def test_config(checkpoint: str | Path) -> dict[str, Any]:
    """A `task: test` config that evaluates `checkpoint` exactly as its run was evaluated."""
    config = copy.deepcopy(read(load_checkpoint(checkpoint), checkpoint))
    config["experiment"] = {**(config.get("experiment") or {}), "task": "test", "weights": str(checkpoint)}
    config.pop("base", None)
    return config


def rewrite_from_run(run_dir: str | Path, weights: str | Path | None = None, out: str | Path | None = None) -> Path:
    """Make a self-describing checkpoint from an evaluated run folder; returns the written path."""
    run_dir = Path(run_dir)
    config_path, results_path = run_dir / "config.yaml", run_dir / "results.json"
    for path in (config_path, results_path):
        if not path.is_file():
            raise UserInputError(f"{path} not found; pass an evaluated run folder (it holds config.yaml and results.json)")
    config = yaml.safe_load(config_path.read_text())
    results = json.loads(results_path.read_text())
    source = Path(weights) if weights else run_dir / "checkpoints" / "best_model.pt"
    state = load_checkpoint(source)
    if "model_weights" not in state:
        raise UserInputError(f"{source}: no 'model_weights' entry; it is not a checkpoint of this framework")
    if config.get("experiment", {}).get("task") == "test":
        config["experiment"] = {**config["experiment"], "task": "train", "weights": None}
    state.update(describe(config))
    state["thresholds"] = thresholds_from_results(results_by_task(results, config))
    state["input_shapes"] = _shapes_from_maps(run_dir, config)
    target = Path(out) if out else source
    save_checkpoint(state, target)
    return target
