"""Self-describing checkpoints: what a checkpoint carries besides its weights, and why.

A checkpoint of this framework holds, next to `model_weights`, the full merged `config`
it came from (so the model spec, the data-loader preprocessing, the scorer and the
post-processing of every downstream task travel with it), `model_spec` (the config's
`model` entry), `metadata_version`, `trained_on` (the training data: split, volumes,
subjects, contrast, grid; `data.trained_on`) and, once the run has been evaluated, `evaluation`:
per task the fitted thresholds (`FittedThreshold` records per test set), the input grid
(shape and preprocessing of the evaluated volumes; for 2D image lists how each image file was read), the names of the volumes scored per
data set, in order, and how they were scored (`ScoredWith`: the evaluator's seed, whether
its UNet ran compiled, the precision it ran at), so `uad predict` scores a volume exactly as the evaluator did. Everything is
plain values, so `torch.load(weights_only=True)` loads it and `predict` or a test-only
config needs nothing else.

Version 1 (e.g. `weights/ra_demo.pt`) held flat evaluator params, bare {key: value}
thresholds and `input_shapes`; `task_records` reads both versions into the same records.

`uad describe RUN_FOLDER [--weights W] [--out OUT]` (core/commands/cli.py) makes any
evaluated run folder's checkpoint (or the weights file `W`) self-describing from the run's
`config.yaml`, `results.json` and `per_volume.csv`, once the config passes the check every verb makes of a
stored config (`check_stored_config`) and the weights fit its model.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from core.config.builder import MODEL, ComponentBuilder
from core.config.configurator import (
    SHARED_KEYS,
    check_top_level,
    check_yaml_data,
    load_yaml,
    refuse_file_opt_in,
    resolve_task_extensions,
)
from core.evaluation.result import EvaluationResult, InputGrid, ScoredWith, SetResult
from core.evaluation.thresholds import FittedThreshold, legacy_fitted, legacy_thresholds_from_metrics, thresholds_from_json
from core.run.assembly import check_components
from core.run.run_files import RESULTS_FIX, read_per_volume, read_results_json
from data.trained_on import TrainedOn
from dl_utils.checkpoint import load_checkpoint, save_checkpoint
from dl_utils.errors import UserInputError
from dl_utils.param_groups import HeldWarnings
from dl_utils.paths import check_component, check_links_stay_inside
from dl_utils.weights import load_model_weights

METADATA_VERSION = 2
EVALUATION_KEY = "evaluation"
REWRITE_FIX = "re-write it with `uad describe RUN_FOLDER --weights <this file>`"
TRAINED_ON_FIX = "re-write it with `python -m core.commands.training_record <this file>`"


@dataclass
class TaskRecord:
    """What a run's evaluation of one task left in its checkpoint, for `uad predict`."""

    thresholds: dict[str, dict[str, FittedThreshold]] = field(default_factory=dict)  # {test set: {rule key: fitted}}
    input_grid: InputGrid | None = None
    volumes: dict[str, list[str]] = field(default_factory=dict)  # {data set: volume names in scoring order}
    scored_with: ScoredWith | None = None  # the evaluation's seed, compile decision, precision (None: not recorded)

    def to_json(self) -> dict[str, Any]:
        return {"thresholds": {s: {k: t.to_json() for k, t in found.items()} for s, found in self.thresholds.items()},
                "input_grid": None if self.input_grid is None else self.input_grid.to_json(),
                "volumes": {s: list(names) for s, names in self.volumes.items()},
                "scored_with": None if self.scored_with is None else self.scored_with.to_json()}

    @classmethod
    def from_json(cls, data: Any, where: str = "record") -> TaskRecord:
        """A stored record, every entry checked as typed data: ValueError naming the entry (under `where`) when one is off."""
        data = _mapping(data, where, "{thresholds, input_grid, volumes, scored_with}")
        thresholds = {}
        for set_name, found in _mapping(data.get("thresholds"), f"{where}.thresholds", "{test set: {rule key: fitted}}").items():
            found = _mapping(found, f"{where}.thresholds.{set_name}", "{rule key: fitted}")
            try:
                thresholds[str(set_name)] = thresholds_from_json(found)
            except ValueError as exc:
                raise ValueError(f"{where}.thresholds.{set_name}.{exc}") from None
        volumes = {}
        for set_name, names in _mapping(data.get("volumes"), f"{where}.volumes", "{data set: [volume names]}").items():
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"{where}.volumes.{set_name}: expected a list of volume names, got {_short(names)}")
            volumes[str(set_name)] = list(names)
        return cls(thresholds, _part(InputGrid, data.get("input_grid"), f"{where}.input_grid"), volumes,
                   _part(ScoredWith, data.get("scored_with"), f"{where}.scored_with"))

    def check_preprocessing(self, source: Any, where: str, fix: str) -> None:
        """The input grid's preprocessing and reading settings checked as a config's are (names, types, ranges:
        the component builder's parameter check of `VolumePreprocessor` / `ImageReading`) and built once, so
        `uad predict` never meets a setting it cannot build; a one-line error naming `source`, `where` and `fix`."""
        grid = self.input_grid
        if grid is None:
            return
        from data.image_reading import ImageReading
        from data.preprocessing import VolumePreprocessor

        builder = ComponentBuilder(source)
        for name, settings, cls in (("preprocessing", grid.preprocessing, VolumePreprocessor), ("reading", grid.reading, ImageReading)):
            if settings is None:
                continue
            key = f"{where}.input_grid.{name}"
            try:
                builder.check_params(cls, dict(settings), key, prefix=key)
                builder.build_value(dict(settings), key, cls)
            except UserInputError as exc:
                raise UserInputError(f"{exc}; {fix}") from None

    @classmethod
    def of(cls, result: EvaluationResult) -> TaskRecord:
        """The record of an evaluation; thresholds only of rules predict may use (no oracle)."""
        thresholds = {s: {k: t for k, t in found.items() if t.usable_by_predict} for s, found in result.thresholds().items()}
        return cls(thresholds, result.input_grid(), dict(result.volumes), result.scored_with())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _mapping(value: Any, where: str, shape: str) -> Mapping[str, Any]:
    """`value` as a mapping ({} for None); else a ValueError naming `where` and the `shape` expected."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping {shape}, got {_short(value)}")
    return value


def _part(cls: Any, value: Any, where: str) -> Any:
    """`cls.from_json(value)` (None for None), its ValueError / TypeError / KeyError naming `where`."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {_short(value)}")
    try:
        return cls.from_json(value)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{where}.{' '.join(str(exc).split())}") from None


def describe(config: dict[str, Any], trained_on: dict[str, Any] | None = None) -> dict[str, Any]:
    """The entries a training run writes into every checkpoint (plain values only); `trained_on`
    (`data.trained_on.TrainedOn.to_plain()`, what `uad predict` states) when given."""
    plain = json.loads(json.dumps(config, default=str))  # deep copy as plain values
    described = {"config": plain, "model_spec": plain.get("model"), "metadata_version": METADATA_VERSION}
    return {**described, "trained_on": dict(trained_on)} if trained_on is not None else described


def store_evaluation(checkpoint: str | Path, config: dict[str, Any], evaluations: Mapping[str, EvaluationResult]) -> bool:
    """Add the config and each task's evaluation record to `checkpoint` atomically; False if there is no such file."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        return False
    records = {task: TaskRecord.of(result) for task, result in evaluations.items()}
    _write(load_checkpoint(checkpoint), config, records, checkpoint)
    return True


def _write(state: dict[str, Any], config: dict[str, Any], records: Mapping[str, TaskRecord], target: Path) -> None:
    state.update(describe(config))
    for legacy_key in ("thresholds", "input_shapes"):  # version 1 entries, now inside `evaluation`
        state.pop(legacy_key, None)
    state[EVALUATION_KEY] = {task: record.to_json() for task, record in records.items()}
    save_checkpoint(state, target)


def read(state: dict[str, Any], source: Any) -> dict[str, Any]:
    """The stored config of a loaded checkpoint, its tasks' `extends` resolved as a config file's are (so every
    verb reads it as `uad test --model` does); a one-line error when it has none or when a later
    version of the framework wrote it (its records may mean what this version cannot read)."""
    version = state.get("metadata_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= METADATA_VERSION:
        raise UserInputError(f"{source}: metadata_version {version!r} is not one this framework reads (1 to {METADATA_VERSION}); "
                             "update the framework to the version that wrote the checkpoint")
    config = state.get("config")
    if isinstance(config, dict) and "model" not in config:
        raise UserInputError(f"{source}: its stored config has no 'model' section; re-write it with "
                             "`uad describe RUN_FOLDER --weights <this file>`")
    if not isinstance(config, dict):
        raise UserInputError(
            f"{source}: checkpoint does not describe itself (no 'config' entry); re-write it with "
            "`uad describe RUN_FOLDER --weights <this file>`"
        )
    refuse_file_opt_in(config, f"{source} (stored config)")  # a checkpoint never grants --allow-external-modules
    check_stored_config(config, source)
    config = resolve_task_extensions(config, f"{source} (stored config)")  # as a config file's (`uad test --model`)
    stored_trained_on(state, source)  # every recorded value checked here, before any verb uses one
    task_records(state, config, source)
    return config


def check_stored_config(config: dict[str, Any], source: Any, fix: str = REWRITE_FIX) -> None:
    """A stored config (a checkpoint's, or the run folder's config.yaml `uad describe` writes into one) checked as
    `uad test --model` checks it before anything is built: plain YAML data (no tensor, bytes or tuple: it is
    written back as YAML), the run name one plain name, the top-level keys and values (`check_top_level`). It is
    checked as the test config it becomes (`test_config`: task test, its weights the checkpoint), so a training
    config stored without a trainer is not refused. Every verb that opens a checkpoint runs this one check."""
    where = f"{source} (stored config)"
    check_yaml_data(config, where, fix)
    if isinstance(config.get("name"), str):  # (another type: named by the top-level check)
        check_component(config["name"], f"{source}: stored config: name")  # it names the test run's folder
    experiment = config.get("experiment")
    as_test = {**(experiment or {}), "task": "test", "weights": None} if isinstance(experiment, dict | None) else experiment
    check_top_level({**config, "experiment": as_test}, where)


def model_with_weights(builder: ComponentBuilder, config: dict[str, Any], state: Mapping[str, Any], source: Any) -> nn.Module:
    """The config's model (built on the CPU by `builder`, so of this project's classes unless the command line
    allowed others) with the checkpoint's `model_weights` loaded strictly: weights that do not fit it (a
    missing, extra or mis-shaped tensor) are one line naming `source`, before anything is written."""
    net = builder.build(config["model"], "model", expected=MODEL)
    load_model_weights(net, state, source)
    return net


def open_checkpoint(state: dict[str, Any], source: Any, allow_external_modules: bool = False
                    ) -> tuple[dict[str, Any], ComponentBuilder, nn.Module]:
    """(upgraded config, its builder, model with the weights): a loaded checkpoint opened as `uad predict` and
    `python -m core.commands.training_record` open one: its stored config read and checked (`read`), every
    component checked as this project's and of its role before any is built, then the model built and its
    weights loaded (`model_with_weights`). `allow_external_modules`: the command-line flag, never the file's."""
    stored = read(state, source)
    builder = ComponentBuilder(f"{source} (stored config)", allow_external_modules)
    with HeldWarnings():  # upgrade warnings only for a config that is accepted
        config = builder.upgrade(stored)
        check_components(config, builder)  # every section it carries, before any of it is built (its trainer too)
    return config, builder, model_with_weights(builder, config, state, source)


def check_trained_on(plain: Any, source: Any) -> TrainedOn:
    """A stored `trained_on` record as typed data; a one-line error naming `source` when it is not one."""
    if not isinstance(plain, dict):
        raise UserInputError(f"{source}: trained_on: expected a mapping {{dataset, volumes, contrast, grid_shape, ...}}, "
                             f"got {_short(plain)}; {TRAINED_ON_FIX}")
    try:
        return TrainedOn.from_plain(plain)
    except ValueError as exc:
        raise UserInputError(f"{source}: trained_on.{' '.join(str(exc).split())[:200]}; {TRAINED_ON_FIX}") from None


def stored_trained_on(state: Mapping[str, Any], source: Any) -> TrainedOn | None:
    """The checkpoint's `trained_on` record, checked (`check_trained_on`); None when it has none."""
    plain = state.get("trained_on")
    return None if plain is None else check_trained_on(plain, source)


def task_records(state: dict[str, Any], config: dict[str, Any], source: Any = "checkpoint") -> dict[str, TaskRecord]:
    """{task: record} of a checkpoint of either metadata version, every entry checked (thresholds finite and in
    range, the input grid's shape and preprocessing); a one-line error naming `source` and the entry otherwise."""
    try:
        if state.get("metadata_version", 1) != 1 or EVALUATION_KEY in state:
            stored = _mapping(state.get(EVALUATION_KEY), EVALUATION_KEY, "{task: record}")
            records = {str(task): TaskRecord.from_json(data, f"{EVALUATION_KEY}.{task}") for task, data in stored.items()}
        else:
            records = _records_v1(state, config)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UserInputError(f"{source}: {' '.join(str(exc).split())[:200]}; {REWRITE_FIX}") from None
    for task, record in records.items():
        record.check_preprocessing(source, f"{EVALUATION_KEY}.{task}", REWRITE_FIX)
    return records


def _records_v1(state: dict[str, Any], config: dict[str, Any]) -> dict[str, TaskRecord]:
    """Version 1: bare {task: {set: {key: value}}} thresholds and {task: [H, W, D]} shapes; the
    grid's preprocessing is the task's data loader's, as version-1 predict read it."""
    records: dict[str, TaskRecord] = {}
    shapes = _mapping(state.get("input_shapes"), "input_shapes", "{task: [H, W, D]}")
    for task, sets in _mapping(state.get("thresholds"), "thresholds", "{task: {set: {key: value}}}").items():
        record = records.setdefault(task, TaskRecord())
        for set_name, values in _mapping(sets, f"thresholds.{task}", "{set: {key: value}}").items():
            values = _mapping(values, f"thresholds.{task}.{set_name}", "{key: value}")
            found = (legacy_fitted(key, value) for key, value in values.items())
            record.thresholds[set_name] = {t.key: t for t in found if t is not None}
    for task, shape in shapes.items():
        grid = {"shape": shape, "preprocessing": _task_preprocessing(config, task)}
        records.setdefault(task, TaskRecord()).input_grid = _part(InputGrid, grid, f"input_shapes.{task}")
    return records


def complete_config(config: dict[str, Any]) -> dict[str, Any]:
    """A test-only config without `model` takes the model (and missing parts) from its weights."""
    experiment = config.get("experiment") or {}
    weights = experiment.get("weights") if isinstance(experiment, dict) else None
    if "model" in config or not weights:
        return config
    stored = read(load_checkpoint(weights), weights)
    out = copy.deepcopy(config)
    for key in ("model", "downstream_tasks", "name", *SHARED_KEYS):
        if key not in out and key in stored:
            out[key] = copy.deepcopy(stored[key])
    return out


def test_config(checkpoint: str | Path) -> dict[str, Any]:
    """A `task: test` config that evaluates `checkpoint` exactly as its run was evaluated."""
    config = copy.deepcopy(read(load_checkpoint(checkpoint), checkpoint))
    config["experiment"] = {**(config.get("experiment") or {}), "task": "test", "weights": str(checkpoint)}
    config.pop("base", None)
    return config


# ---- from an evaluated run folder ---------------------------------------------------------------
def _run_records(run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> dict[str, TaskRecord]:
    """Each task's record from the run folder's results.json (typed since version 2; older
    folders: `threshold@` metrics and the written maps' shapes, nothing on how they were scored)
    and per_volume.csv."""
    tasks = list((config.get("downstream_tasks") or {}).keys())
    by_task = {tasks[0]: results} if len(tasks) == 1 and tasks[0] not in results else results
    records: dict[str, TaskRecord] = {}
    for task in tasks:
        sets = by_task.get(task)
        if not isinstance(sets, Mapping):
            continue
        record = records[task] = TaskRecord()
        for set_name, data in sets.items():
            if not isinstance(data, Mapping):
                continue
            result = SetResult.from_json(data)
            thresholds = result.thresholds or legacy_thresholds_from_metrics(result.metrics)
            if thresholds:
                record.thresholds[set_name] = {k: t for k, t in thresholds.items() if t.usable_by_predict}
            if record.input_grid is None and result.input_grid is not None:
                record.input_grid = result.input_grid
            if record.scored_with is None:
                record.scored_with = result.scored_with
        if record.input_grid is None:
            record.input_grid = _grid_from_maps(run_dir, task, config)
        record.volumes = _volumes_from_rows(run_dir / task / "per_volume.csv")
    return records


def _grid_from_maps(run_dir: Path, task: str, config: dict[str, Any]) -> InputGrid | None:
    """The evaluation grid read off a run folder's written anomaly maps (`<run>/<task>/anomaly_maps/<set>/`)."""
    import nibabel as nib

    first = next(iter(sorted((run_dir / task / "anomaly_maps").glob("*/*.nii.gz"))), None)
    if first is None:
        return None
    return InputGrid(tuple(int(s) for s in nib.load(str(first)).shape[:3]), _task_preprocessing(config, task))


def _task_preprocessing(config: dict[str, Any], task: str) -> Any:
    """The preprocessing of a task's data loader, as written before input grids were recorded (version 1);
    the config's top-level `preprocessing` where the loader sets none (as `build_datasets` gives it)."""
    loader = ((config.get("downstream_tasks") or {}).get(task, {}).get("data_loader") or {}).get("params") or {}
    return loader.get("preprocessing", config.get("preprocessing"))


def _volumes_from_rows(path: Path) -> dict[str, list[str]]:
    """{data set: volume names in order} from a task's per_volume.csv (its test and healthy sets)."""
    volumes: dict[str, list[str]] = {}
    for row in read_per_volume(path):
        volumes.setdefault(row["dataset"], []).append(row["name"])
    return volumes


def rewrite_from_run(run_dir: str | Path, weights: str | Path | None = None, out: str | Path | None = None,
                     allow_external_modules: bool = False) -> Path:
    """Make a self-describing checkpoint from an evaluated run folder; returns the written path.
    The run's config.yaml is checked first as a run checks its config (no file opt-in; every component
    this project's, of its role; `allow_external_modules`: the command-line flag), since whoever opens
    the checkpoint builds what it names."""
    run_dir = Path(run_dir)
    check_links_stay_inside(run_dir, "replace each such link by a copy of its files before rewriting its checkpoint")
    config_path, results_path = run_dir / "config.yaml", run_dir / "results.json"
    for path in (config_path, results_path):
        if not path.is_file():
            raise UserInputError(f"{path} not found; pass an evaluated run folder (it holds config.yaml and results.json)")
    config = load_yaml(config_path)  # one line for invalid YAML or a python tag
    refuse_file_opt_in(config, config_path)
    check_stored_config(config, config_path, "fix the run folder's config.yaml")  # as every verb will check the written one
    config = resolve_task_extensions(config, config_path)
    builder = ComponentBuilder(config_path, allow_external_modules)
    with HeldWarnings():
        upgraded = builder.upgrade(config)
        check_components(upgraded, builder)
    results = read_results_json(results_path)
    source = Path(weights) if weights else run_dir / "checkpoints" / "best_model.pt"
    state = load_checkpoint(source)
    model_with_weights(builder, upgraded, state, source)  # weights the written file's model does not take are refused now
    if isinstance(config.get("experiment"), dict) and config["experiment"].get("task") == "test":
        config["experiment"] = {**config["experiment"], "task": "train", "weights": None}
    stored_trained_on(state, source)  # carried on into the written file: checked as `uad predict` will read it
    records = _run_records(run_dir, config, results)
    for task, record in records.items():  # thresholds and grids were checked reading results.json
        record.check_preprocessing(results_path, task, RESULTS_FIX)
    target = Path(out) if out else source
    _write(state, config, records, target)
    return target
