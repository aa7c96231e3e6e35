"""Build an experiment's parts from a checked config, reading every user file, before anything is written.

Order: model, training data (both splits loaded, so a broken split stops the run here),
trainer (its init weights loaded), weights to resume or start from, evaluators (their
data sets loaded), test weights. Only when all of this succeeded does a run folder exist.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.config.builder import DATA_MODULE, EVALUATION_SET, MODEL, ComponentBuilder, constructor_keywords
from core.config.configurator import COMPONENT_KEYS, ConfigError, run_seed, shared_values
from core.evaluation.contracts import SliceGridSet
from core.evaluation.evaluator import DownstreamEvaluator, EvaluationContext
from core.evaluation.reconstruction import Precision, reconstruct_volume
from core.training.contracts import TrainingDataModule, data_module_problem
from core.training.trainer import Trainer, TrainingContext
from dl_utils.checkpoint import load_checkpoint
from dl_utils.distributed import DistributedContext
from dl_utils.errors import UserInputError
from dl_utils.paths import component_problem
from dl_utils.weights import load_model_weights

TASK_KEYS = ("module_name", "class_name", "params", "data_loader")
DATA_LOADER_KEYS = ("module_name", "class_name", "params", "datasets")
# set by the framework, never trainer.params: the TrainingContext's parts, and the run folder and logger (attach_run)
EVALUATOR_RESERVED = ("context",)  # what the framework gives an evaluator (EvaluationContext), never the YAML
TRAINER_RESERVED = ("model", "data_module", "device", "dist_ctx", "seed", "run_dir", "logger")


@dataclass
class Parts:
    """What a run needs, built and checked; the trainer gets its run folder later (`attach_run`)."""

    model: nn.Module
    trainer: Trainer | None = None
    evaluators: dict[str, DownstreamEvaluator] = field(default_factory=dict)


def build_parts(config: dict[str, Any], builder: ComponentBuilder, config_path: Path, ctx: DistributedContext,
                device: torch.device, seed: int, resume_from: Path | None) -> Parts:
    """Every component of `config`, with weights loaded; raises UserInputError before any output exists."""
    experiment = config["experiment"]
    task = experiment.get("task", "train")
    weights = experiment.get("weights")
    _check_keys(builder, config["model"], "model", COMPONENT_KEYS)  # `parms:` would build the defaults
    model = builder.build(config["model"], "model", expected=MODEL).to(device)
    trainer = None
    checked: dict[tuple[int, ...], str] = {}  # slice grids the model is known to run on: {(H, W): where from}
    if task == "train":
        data_module = build_data_module(builder, config, seed)
        trainer = build_trainer(builder, config, model, data_module, device, ctx, seed)
        try:
            trainer.check_training_batches()
        except UserInputError as exc:
            raise ConfigError(builder.config_path, "trainer.data_loader", str(exc)) from exc
        checked.update(check_model_on_one_sample(builder, trainer, config))
        initialise_training(trainer, model, weights, resume_from, device)
    else:  # not built, but never carried unchecked into a run folder (a checkpoint's trainer may name anything)
        check_trainer_section(builder, config)
    evaluators = build_evaluators(builder, config, model, device)
    check_evaluation_grids(builder, evaluators, model, device, checked)
    if task == "test":
        load_test_weights(model, weights, config_path, device)
    return Parts(model, trainer, evaluators)


def _check_keys(builder: ComponentBuilder, spec: dict[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    builder.check_keys(spec, key, allowed)


def _component(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in ("module_name", "class_name", "params") if k in spec}


def build_data_module(builder: ComponentBuilder, config: dict[str, Any], seed: int) -> TrainingDataModule:
    """The training data module, with its training and validation splits loaded now."""
    trainer_cfg = config.get("trainer")
    if not isinstance(trainer_cfg, dict):
        raise ConfigError(builder.config_path, "trainer", "must be a mapping {module_name, class_name, params, data_loader}")
    spec = trainer_cfg.get("data_loader")
    if spec is None:
        raise ConfigError(builder.config_path, "trainer.data_loader", "missing; training needs a data loader")
    _check_keys(builder, trainer_cfg, "trainer", TASK_KEYS)
    key = "trainer.data_loader"
    _check_keys(builder, spec, key, COMPONENT_KEYS)  # a sibling of params would be silently ignored
    cls = builder.check(spec, key, expected=DATA_MODULE)  # e.g. data.volume_dataset.VolumeDataModule
    shared = _shared(builder, cls, spec, shared_values(config))
    data_module = builder.build(spec, key, expected=DATA_MODULE, **_run_values(cls, spec, {"seed": seed}), **shared)
    problem = data_module_problem(data_module)
    if problem:
        raise ConfigError(builder.config_path, key, f"{cls.__name__} {problem}")
    try:  # read the splits now: a broken CSV or volume stops the run before it has a folder
        train = data_module.train_dataset()
        data_module.val_dataset()
    except UserInputError as exc:
        raise UserInputError(f"{builder.config_path}: {key}: {exc}") from exc
    if len(train) == 0:
        raise ConfigError(builder.config_path, key, "the training split is empty; check the train CSV")
    return data_module


def build_trainer(builder: ComponentBuilder, config: dict[str, Any], model: nn.Module, data_module: TrainingDataModule,
                  device: torch.device, ctx: DistributedContext, seed: int) -> Trainer:
    """The trainer, built without its run folder (attached once the folder exists, `Trainer.attach_run`)."""
    spec = _component(config["trainer"])
    context = TrainingContext(model=model, data_module=data_module, device=device, dist=ctx, seed=seed)
    return builder.build(spec, "trainer", reserved=TRAINER_RESERVED, expected=Trainer, context=context)


def check_model_on_one_sample(builder: ComponentBuilder, trainer: Trainer, config: dict[str, Any]) -> dict[tuple[int, ...], str]:
    """Run the trainer's validation step on the first training sample (batch of one, eval mode, no
    gradient, the RNG state put back), so that a model that does not fit the data grid (e.g. an
    `image_size` other than the slices') is one line naming the files before training starts,
    not a shape error in the first step. Nothing of the model changes (eval mode: no statistics).
    Returns {(H, W) of the training slices: the training split} (the grid the model now ran on)."""
    model = trainer.model
    dataset = trainer.data_module.train_dataset()
    sample = dataset[0]
    batch = {k: v.unsqueeze(0).to(trainer.device) if torch.is_tensor(v) else v for k, v in sample.items()}
    shape = tuple(batch["image"].shape) if torch.is_tensor(batch.get("image")) else "?"
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            trainer.validation_step(batch)
    except UserInputError as exc:  # e.g. no loss to train with: named in the config, so the line names the file
        raise UserInputError(f"{builder.config_path}: {exc}") from exc
    except (RuntimeError, ValueError, IndexError) as exc:
        reason = " ".join(str(exc).split())[:200]
        model_params = config["model"].get("params") or {}
        data = (config.get("trainer") or {}).get("data_loader") or {}
        csv = (data.get("params") or {}).get("train_csv", "the training split")
        raise ConfigError(builder.config_path, "model", f"{type(model).__name__} does not fit a training batch {shape} of {csv} "
                                                        f"({reason}); make model.params fit the data grid (image_size: "
                                                        f"{model_params.get('image_size', 'default')}) or change the data "
                                                        "loader's preprocessing") from exc
    finally:
        model.train(was_training)
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    data = (config.get("trainer") or {}).get("data_loader") or {}
    csv = (data.get("params") or {}).get("train_csv", "the training split")
    return {tuple(shape[-2:]): f"the training slices of {csv}"} if isinstance(shape, tuple) else {}


def _slice_grids(dataset: Any) -> dict[tuple[int, ...], tuple[int, str]]:
    """{(H, W) of the set's axial slices: (index, file) of the first volume with it}: a volume set knows
    them without loading anything again (`SliceGridSet`); any other set is read at its first item."""
    if isinstance(dataset, SliceGridSet):
        return dict(dataset.slice_shapes())
    if len(dataset) == 0:
        return {}
    image = getattr(dataset[0], "image", None)
    return {tuple(image.shape[:2]): (0, "its first item")} if torch.is_tensor(image) and image.dim() >= 2 else {}


def check_evaluation_grids(builder: ComponentBuilder, evaluators: dict[str, DownstreamEvaluator], model: nn.Module,
                           device: torch.device, checked: dict[tuple[int, ...], str]) -> None:
    """Every evaluation set's slice grid against the task and the model, before anything is written: the
    task says whether its scorer can score it (`grid_problem`: e.g. slices too small for LPIPS); a grid
    the model already ran on (the training slices) passes; any other runs once through the model (the
    middle slice of the first volume with it, one reconstruction, eval mode, the RNG state put back),
    so a test volume of another size is one line naming its file, not a shape error after training; then
    the set's thinnest volume against the scorer's 3-D windows. `checked` grows with each grid."""
    for task, evaluator in evaluators.items():
        for name, dataset in evaluator.datasets.items():
            for grid, (index, source) in _slice_grids(dataset).items():
                problem = evaluator.grid_problem(*grid[:2])
                if problem is not None:
                    csv = getattr(dataset, "csv", name)
                    raise ConfigError(builder.config_path, f"downstream_tasks.{task}.data_loader.datasets.{name}",
                                      f"split CSV {csv}: {source} has {grid[0]}x{grid[1]} slices, but {problem}; set the "
                                      "data loader's preprocessing target_shape to a larger grid or choose another scorer")
                if grid in checked:
                    continue
                image = dataset[index].image
                reason = _model_fails_on(model, image[..., image.shape[-1] // 2:][..., :1].float(), device)
                if reason is not None:
                    known = ", ".join(f"{g[0]}x{g[1]} ({where})" for g, where in checked.items())
                    csv = getattr(dataset, "csv", name)
                    raise ConfigError(builder.config_path, f"downstream_tasks.{task}.data_loader.datasets.{name}",
                                      f"split CSV {csv}: {source} has {grid[0]}x{grid[1]} slices but the model does not run "
                                      f"on them ({reason})" + (f"; it runs on {known}" if known else "") + "; use volumes of the model's grid or set the "
                                      "data loader's preprocessing crop_shape / target_shape")
                checked[grid] = f"data set {name}"
            _check_depth(builder, task, name, dataset, evaluator)


def _check_depth(builder: ComponentBuilder, task: str, name: str, dataset: Any, evaluator: DownstreamEvaluator) -> None:
    """The set's thinnest volume against the task's scorer (3-D windows need slices along the axis too)."""
    thinnest = _thinnest_volume(dataset)
    if thinnest is None:
        return
    shape, _, source = thinnest
    problem = evaluator.grid_problem(*shape)
    if problem is not None:
        raise ConfigError(builder.config_path, f"downstream_tasks.{task}.data_loader.datasets.{name}",
                          f"split CSV {getattr(dataset, 'csv', name)}: {source} has {shape[2]} axial slices, but {problem}; "
                          "set the data loader's preprocessing target_shape / crop_shape to keep more slices, or "
                          "choose another scorer (or its 2-D windows)")


def _thinnest_volume(dataset: Any) -> tuple[tuple[int, ...], int, str] | None:
    """((H, W, D), index, file) of the set's thinnest volume (`SliceGridSet`); any other set: its first item."""
    if isinstance(dataset, SliceGridSet):
        return dataset.thinnest_volume()
    if len(dataset) == 0:
        return None
    image = getattr(dataset[0], "image", None)
    return (tuple(image.shape[:3]), 0, "its first item") if torch.is_tensor(image) and image.dim() >= 3 else None


def _model_fails_on(model: nn.Module, image: torch.Tensor, device: torch.device) -> str | None:
    """None when `model` reconstructs `image` (H, W, 1: one slice); else why not, in words."""
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = model.training
    model.eval()
    try:
        reconstruct_volume(model, image, 1, 1, device, Precision.FP32, channels_last=False)
    except (RuntimeError, ValueError, IndexError) as exc:
        return " ".join(str(exc).split())[:160]
    finally:
        model.train(was_training)
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return None


def _run_values(cls: type, spec: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The run's values (seed, the config's top-level `data_root` / `preprocessing`) for the constructor
    parameters of the same name that the YAML leaves unset; a value of None is not passed."""
    names, _ = constructor_keywords(cls)
    params = spec.get("params") or {}
    return {k: v for k, v in values.items() if v is not None and k in names and k not in params}


def _shared(builder: ComponentBuilder, cls: type, spec: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The config's top-level values for data loaders (`shared_values`) that `cls` takes and `spec` does not
    set, checked against its constructor as its own params are (an error names the top-level key)."""
    given = _run_values(cls, spec, values)
    builder.check_params(cls, given, "", prefix="")
    return given


def _task_specs(builder: ComponentBuilder, config: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(name, key path, spec) of each downstream task, its name and keys checked."""
    tasks = config.get("downstream_tasks") or {}
    if not isinstance(tasks, dict):
        raise ConfigError(builder.config_path, "downstream_tasks", "must map task names to evaluators")
    for name, spec in tasks.items():
        key = f"downstream_tasks.{name}"
        _check_folder_name(builder, key, name, "task")
        if not isinstance(spec, dict):
            raise ConfigError(builder.config_path, key, "must be a mapping {module_name, class_name, params, data_loader}")
        _check_keys(builder, spec, key, TASK_KEYS)
        yield name, key, spec


def build_evaluators(builder: ComponentBuilder, config: dict[str, Any], model: nn.Module,
                     device: torch.device) -> dict[str, DownstreamEvaluator]:
    """Each downstream task's evaluator, seeded by `evaluation_seed` (the one rule predict follows too)."""
    evaluators = {}
    for name, key, spec in _task_specs(builder, config):
        component = _component(spec)
        cls = builder.check(component, key, reserved=EVALUATOR_RESERVED, expected=DownstreamEvaluator)
        datasets = build_datasets(builder, spec["data_loader"], f"{key}.data_loader", shared_values(config)) \
            if "data_loader" in spec else {}
        context = EvaluationContext(model=model, device=device, datasets=datasets)
        injected: dict[str, Any] = {"context": context,
                                    **_run_values(cls, component, {"seed": evaluation_seed(config, name)})}
        evaluators[name] = builder.build(component, key, expected=DownstreamEvaluator, **injected)
    return evaluators


def evaluation_seed(config: dict[str, Any], task: str) -> int:
    """The seed of task `task`'s volumes' noise: its own `params.seed`, else the run's. `build_evaluators`
    gives it to the evaluator; `uad predict` uses it for a checkpoint that did not record it."""
    params = ((config.get("downstream_tasks") or {}).get(task) or {}).get("params") or {}
    return int(params["seed"]) if params.get("seed") is not None else run_seed(config)


def evaluation_set_params(config: dict[str, Any], task: str) -> dict[str, dict[str, Any]]:
    """{data set: its params} of a task's `data_loader` (the common `params` with the set's own overrides, as
    `build_datasets` merges them), from a config checked when its run began (a checkpoint's); {} where absent."""
    loader = ((config.get("downstream_tasks") or {}).get(task) or {}).get("data_loader")
    if not isinstance(loader, dict) or not isinstance(loader.get("datasets"), dict):
        return {}
    common = loader.get("params") if isinstance(loader.get("params"), dict) else {}
    return {name: {**common, **(overrides if isinstance(overrides, dict) else {})}
            for name, overrides in loader["datasets"].items()}


def build_datasets(builder: ComponentBuilder, spec: Any, key: str, shared: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`data_loader: {module_name, class_name, params, datasets: {name: params overrides}}`; each of the
    config's `shared` top-level values (`shared_values`: `data_root`, `preprocessing`) goes to each data
    set that takes it and does not set its own."""
    datasets = {}
    for name, component in _dataset_components(builder, spec, key):
        cls = builder.resolve_class(component, f"{key}.datasets.{name}", expected=EVALUATION_SET)
        # each parameter checked where the YAML states it: the common `params`, or the data set's own overrides
        builder.check_params(cls, spec.get("params") or {}, key, prefix=f"{key}.params")
        builder.check_params(cls, spec["datasets"][name] or {}, key, prefix=f"{key}.datasets.{name}")
        given = _shared(builder, cls, component, shared or {})
        datasets[name] = builder.build(component, f"{key}.datasets.{name}", expected=EVALUATION_SET, **given)
    return datasets


def _dataset_components(builder: ComponentBuilder, spec: Any, key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, component) of each data set of a task's `data_loader`: its keys and names checked,
    each data set's params the common `params` with its own overrides."""
    if not isinstance(spec, dict) or not isinstance(spec.get("datasets"), dict) or not spec["datasets"]:
        raise ConfigError(builder.config_path, f"{key}.datasets", "missing; name at least one data set")
    _check_keys(builder, spec, key, DATA_LOADER_KEYS)
    common = spec.get("params") or {}
    if not isinstance(common, dict):
        raise ConfigError(builder.config_path, f"{key}.params", "must be a mapping of keyword arguments")
    for name, overrides in spec["datasets"].items():
        _check_folder_name(builder, f"{key}.datasets.{name}", name, "data set")
        if overrides is not None and not isinstance(overrides, dict):
            raise ConfigError(builder.config_path, f"{key}.datasets.{name}", "must be a mapping of params (e.g. {csv: ...}); "
                                                                             "to drop a base's data set use `_delete: [name]`")
        params = {**common, **(overrides or {})}
        yield name, {"module_name": spec.get("module_name"), "class_name": spec.get("class_name"), "params": params}


def _check_folder_name(builder: ComponentBuilder, key: str, name: Any, what: str) -> None:
    """A task or data set name names a folder and files of the run: one plain name, never a path."""
    problem = component_problem(name)
    if problem:
        raise ConfigError(builder.config_path, key, f"the {what} name {problem}; it names a folder of the run, so use "
                                                    "a plain name (no '/', '\\', '..')")


def load_test_weights(model: nn.Module, weights: Any, config_path: Path, device: torch.device) -> None:
    has_state = any(True for _ in model.state_dict())
    if not weights:
        if has_state:
            raise ConfigError(config_path, "experiment.weights", "task: test needs the path of trained weights (e.g. weights/<name>.pt)")
        return
    state = load_checkpoint(weights, map_location=device)
    load_model_weights(model, state, weights)


def initialise_training(trainer: Trainer, model: nn.Module, weights: Any, resume_from: Path | None,
                        device: torch.device) -> None:
    """Resume from a run folder's latest checkpoint, or start from `experiment.weights` when given."""
    if resume_from is not None:
        trainer.resume(resume_from)
    elif weights:
        if not Path(weights).is_file():
            raise UserInputError(f"experiment.weights: {weights} not found; set it to an existing checkpoint or null to train from scratch")
        state = load_checkpoint(weights, map_location=device)
        if "optimizer_weights" in state:
            trainer.resume(weights)
        else:
            load_model_weights(model, state, weights)


def check_parts(config: dict[str, Any], builder: ComponentBuilder) -> None:
    """What `build_parts` checks of the config itself, without building anything or reading data and
    weights: every component's keys, class, role and parameter names, types and ranges (a benchmark
    checks each method's config this way before its run folder exists)."""
    trainer_cfg = config.get("trainer")
    if config["experiment"].get("task", "train") == "train" and (
            not isinstance(trainer_cfg, dict) or not isinstance(trainer_cfg.get("data_loader"), dict)):
        raise ConfigError(builder.config_path, "trainer", "must be a mapping {module_name, class_name, params, data_loader}")
    check_components(config, builder)


def check_components(config: dict[str, Any], builder: ComponentBuilder) -> None:
    """Every component section `config` holds (model, trainer and its data loader, each downstream task
    and its data sets), whatever the task: keys, class (this project's unless the command line allows
    others), role, parameter names, types and ranges (nested components too). What a verb runs before
    it writes anything with a config it did not write itself (a checkpoint's, a run folder's)."""
    if "model" in config:
        _check_keys(builder, config["model"], "model", COMPONENT_KEYS)
        builder.check(config["model"], "model", expected=MODEL)
    check_trainer_section(builder, config)
    for _, key, spec in _task_specs(builder, config):
        builder.check(_component(spec), key, reserved=EVALUATOR_RESERVED, expected=DownstreamEvaluator)
        if "data_loader" in spec:
            check_dataset_specs(builder, spec["data_loader"], f"{key}.data_loader", shared_values(config))


def check_trainer_section(builder: ComponentBuilder, config: dict[str, Any]) -> None:
    """The `trainer` section's keys, class, role and params (its loss and other nested components
    too) and its data loader's, whatever the task: a test run or a checkpoint that only carries them
    still names classes that must be this project's (unless the command line allows others) and of
    the right kind, since the run folder and checkpoints carry them on."""
    if "trainer" not in config or config["trainer"] is None:
        return
    trainer_cfg = config["trainer"]
    if not isinstance(trainer_cfg, dict):
        raise ConfigError(builder.config_path, "trainer", "must be a mapping {module_name, class_name, params, data_loader}")
    _check_keys(builder, trainer_cfg, "trainer", TASK_KEYS)
    builder.check(_component(trainer_cfg), "trainer", reserved=TRAINER_RESERVED, expected=Trainer)
    if trainer_cfg.get("data_loader") is not None:
        _check_keys(builder, trainer_cfg["data_loader"], "trainer.data_loader", COMPONENT_KEYS)
        cls = builder.check(trainer_cfg["data_loader"], "trainer.data_loader", expected=DATA_MODULE)
        _shared(builder, cls, trainer_cfg["data_loader"], shared_values(config))


def check_dataset_specs(builder: ComponentBuilder, spec: Any, key: str, shared: Mapping[str, Any] | None = None) -> None:
    """A task's `data_loader` as `build_datasets` reads it (keys, names, class and role, every data
    set's params and the `shared` top-level values it takes), without reading any data."""
    for name, component in _dataset_components(builder, spec, key):
        cls = builder.check(component, f"{key}.datasets.{name}", expected=EVALUATION_SET)
        _shared(builder, cls, component, shared or {})
