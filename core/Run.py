"""One experiment from config to run folder: build, train and/or evaluate, write results."""
from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml

from core.Configurator import (
    ComponentBuilder,
    ConfigError,
    apply_overrides,
    constructor_keywords,
    describe_sources,
    load_config,
    validate_top_level,
)
from core.results import write_results
from dl_utils.checkpoint import atomic_write_text, load_checkpoint
from dl_utils.device import resolve_device
from dl_utils.distributed import DistributedContext, barrier, context_from_env, destroy_process_group, init_process_group
from dl_utils.errors import UserInputError
from dl_utils.run_logger import RunLogger, configure_logging
from dl_utils.seeding import seed_everything

LOG = logging.getLogger(__name__)
TRAINER_INJECTED = ("model", "data_module", "device", "run_dir", "dist_ctx", "logger", "seed")
EVALUATOR_INJECTED = ("model", "device", "datasets", "seed")
ORCHESTRATOR_KEY = "orchestrator"


def run_experiment(config_path: str | Path, overrides: list[str] | None = None, *, resume: str | None = None,
                   output_root: str | None = None, quiet: bool = False) -> Path | None:
    """Run the experiment described by `config_path`; return the run folder (rank 0) or None."""
    config_path = Path(config_path)
    sources: list[Path] = []
    config = load_config(config_path, sources)
    where = describe_sources(config_path, sources)
    config = apply_overrides(config, overrides or [], where)
    if ORCHESTRATOR_KEY in config:  # a config that runs other configs (the benchmark)
        return _run_orchestrator(config, config_path, where, output_root, quiet)
    validate_top_level(config, where)
    configure_logging(None, verbose=not quiet)
    ctx = context_from_env()
    device = resolve_device(config.get("device", "auto"), ctx.local_rank)
    init_process_group(ctx, device)
    try:
        return _run(config, config_path, where, ctx, device, resume, output_root, quiet)
    finally:
        destroy_process_group()


def _run(config: dict[str, Any], config_path: Path, where: str, ctx: DistributedContext, device: torch.device,
         resume: str | None, output_root: str | None, quiet: bool) -> Path | None:
    seed = int(config.get("seed", 42))
    seed_everything(seed, deterministic=bool(config.get("deterministic", True)))
    builder = ComponentBuilder(where, bool(config.get("allow_external_modules", False)))
    experiment = config["experiment"]
    task = experiment.get("task", "train")

    # Build everything that reads user files before any output is written.
    model = builder.build(config["model"], "model").to(device)
    data_module = None
    if task == "train":
        data_module = _build_data_module(builder, config, seed)
    evaluators = _build_evaluators(builder, config, model, device, seed)
    weights = experiment.get("weights")
    if task == "test":
        _load_weights_for_test(model, weights, config_path, device)

    run_dir = _make_run_dir(config, config_path, ctx, resume, output_root)
    if ctx.is_main:
        configure_logging(run_dir / "log.txt", verbose=not quiet, label=str(config["name"]))
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    wandb_cfg = (config.get("logging") or {}).get("wandb") or {}
    logger = RunLogger(run_dir, ctx.is_main, wandb_cfg.get("mode", "disabled"), wandb_cfg.get("project", "uad-brain-mri"),
                       wandb_cfg.get("entity"), run_name=str(config["name"]), config=config)
    LOG.info("run folder %s on %s (rank %d of %d)", run_dir, device, ctx.rank, ctx.world_size)
    try:
        if task == "train":
            trainer = builder.build(config["trainer"], "trainer", model=model, data_module=data_module, device=device,
                                    run_dir=run_dir, dist_ctx=ctx, logger=logger, seed=seed)
            _initialise_training(trainer, model, weights, resume, run_dir, config_path, device)
            trainer.train()
            model.load_state_dict(trainer.best_weights)
            if ctx.is_main:
                _plot_history(trainer.history, run_dir)
        barrier()
        # every rank evaluates (each scores its share of the volumes); rank 0 writes
        results = {name: evaluator.run(run_dir / name, logger) for name, evaluator in evaluators.items()}
        if ctx.is_main:
            if task == "train":
                results["training"] = {"summary": _training_summary(trainer)}
            write_results(results, run_dir, header=f"{config['name']} ({config_path})")
        barrier()
    finally:
        logger.finish()
    return run_dir if ctx.is_main else None


def _run_orchestrator(config: dict[str, Any], config_path: Path, where: str, output_root: str | None,
                      quiet: bool) -> Path:
    """Build `orchestrator` (a class with `run(run_dir, run_experiment, quiet) -> (results,
    table)`), give it a run folder and write what it returns."""
    extra = set(config) - {"name", ORCHESTRATOR_KEY, "output_root", "device", "allow_external_modules"}
    if extra or "name" not in config:
        key = sorted(extra)[0] if extra else "name"
        raise ConfigError(where, key, "a config with 'orchestrator' takes only name, orchestrator, output_root, device")
    if context_from_env().enabled:
        raise UserInputError(f"{where}: a config with 'orchestrator' runs its configs one after another in one "
                             "process; start it without torchrun")
    builder = ComponentBuilder(where, bool(config.get("allow_external_modules", False)))
    orchestrator = builder.build(config[ORCHESTRATOR_KEY], ORCHESTRATOR_KEY)
    run_dir = _make_run_dir(config, config_path, DistributedContext(), None, output_root)
    configure_logging(run_dir / "log.txt", verbose=not quiet, label=str(config["name"]))
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    forced = [f"device={config['device']}"] if "device" in config else []  # applies to every nested run

    def nested(path: str | Path, overrides: list[str] | None = None, **kwargs: Any) -> Path | None:
        return run_experiment(path, [*forced, *(overrides or [])], **kwargs)

    results, table = orchestrator.run(run_dir, nested, quiet)
    write_results({ORCHESTRATOR_KEY: results}, run_dir, header=f"{config['name']} ({config_path})", table=table)
    return run_dir


def _training_summary(trainer: Any) -> dict[str, float]:
    last = trainer.history[-1] if trainer.history else {}
    return {"epochs": float(len(trainer.history)), "best_epoch": float(trainer.best_epoch + 1),
            "best_val_loss": float(trainer.best_val), "last_train_loss": float(last.get("train_loss", float("nan"))),
            "train_seconds": float(sum(h.get("seconds", 0.0) for h in trainer.history))}


def _build_data_module(builder: ComponentBuilder, config: dict[str, Any], seed: int) -> Any:
    trainer_cfg = config.get("trainer") or {}
    spec = trainer_cfg.get("data_loader")
    if spec is None:
        raise ConfigError(builder.config_path, "trainer.data_loader", "missing; training needs a data loader")
    extra = set(trainer_cfg) - {"module_name", "class_name", "params", "data_loader"}
    if extra:
        raise ConfigError(builder.config_path, f"trainer.{sorted(extra)[0]}", "unknown key; valid: module_name, class_name, params, data_loader")
    injected = _optional_seed(builder, spec, "trainer.data_loader", seed)
    return builder.build(spec, "trainer.data_loader", **injected)


def _optional_seed(builder: ComponentBuilder, spec: dict[str, Any], key: str, seed: int) -> dict[str, Any]:
    """Pass the run's seed to classes that take one, unless the YAML sets it."""
    cls = builder.resolve_class(spec, key)
    names, _ = constructor_keywords(cls)
    return {"seed": seed} if "seed" in names and "seed" not in (spec.get("params") or {}) else {}


def _build_evaluators(builder: ComponentBuilder, config: dict[str, Any], model: torch.nn.Module,
                      device: torch.device, seed: int) -> dict[str, Any]:
    tasks = config.get("downstream_tasks") or {}
    if not isinstance(tasks, dict):
        raise ConfigError(builder.config_path, "downstream_tasks", "must map task names to evaluators")
    evaluators = {}
    for name, spec in tasks.items():
        key = f"downstream_tasks.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(builder.config_path, key, "must be a mapping {module_name, class_name, params, data_loader}")
        extra = set(spec) - {"module_name", "class_name", "params", "data_loader"}
        if extra:
            raise ConfigError(builder.config_path, f"{key}.{sorted(extra)[0]}", "unknown key; valid: module_name, class_name, params, data_loader")
        datasets = _build_datasets(builder, spec["data_loader"], f"{key}.data_loader") if "data_loader" in spec else {}
        component = {k: spec[k] for k in ("module_name", "class_name", "params") if k in spec}
        injected: dict[str, Any] = {"model": model, "device": device, "datasets": datasets}
        injected.update(_optional_seed(builder, component, key, seed))
        evaluators[name] = builder.build(component, key, **injected)
    return evaluators


def _build_datasets(builder: ComponentBuilder, spec: Any, key: str) -> dict[str, Any]:
    """`data_loader: {module_name, class_name, params, datasets: {name: params overrides}}`."""
    if not isinstance(spec, dict) or not isinstance(spec.get("datasets"), dict) or not spec["datasets"]:
        raise ConfigError(builder.config_path, f"{key}.datasets", "missing; name at least one data set")
    extra = set(spec) - {"module_name", "class_name", "params", "datasets"}
    if extra:
        raise ConfigError(builder.config_path, f"{key}.{sorted(extra)[0]}", "unknown key; valid: module_name, class_name, params, datasets")
    common = spec.get("params") or {}
    datasets = {}
    for name, overrides in spec["datasets"].items():
        params = {**common, **(overrides or {})}
        component = {"module_name": spec.get("module_name"), "class_name": spec.get("class_name"), "params": params}
        datasets[name] = builder.build(component, f"{key}.datasets.{name}")
    return datasets


def _load_weights_for_test(model: torch.nn.Module, weights: Any, config_path: Path, device: torch.device) -> None:
    has_state = any(True for _ in model.state_dict())
    if not weights:
        if has_state:
            raise ConfigError(config_path, "experiment.weights", "task: test needs the path of trained weights (e.g. weights/<name>.pt)")
        return
    state = load_checkpoint(weights, map_location=device)
    load_model_weights(model, state, weights)


def load_model_weights(model: torch.nn.Module, state: dict[str, Any], source: Any) -> None:
    """Strict load of `state['model_weights']`; a mismatch names the first keys concerned."""
    if "model_weights" not in state:
        raise UserInputError(f"{source}: no 'model_weights' entry; it is not a checkpoint of this framework")
    try:
        model.load_state_dict(state["model_weights"], strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise UserInputError(f"{source}: weights do not fit the configured model ({detail}); check model.params against the config that trained them") from exc


def _initialise_training(trainer: Any, model: torch.nn.Module, weights: Any, resume: str | None,
                         run_dir: Path, config_path: Path, device: torch.device) -> None:
    if resume:
        trainer.resume(run_dir / "checkpoints" / "latest_model.pt")
    elif weights:
        state = load_checkpoint(weights, map_location=device)
        if "optimizer_weights" in state:
            trainer.resume(weights)
        else:
            load_model_weights(model, state, weights)


def _make_run_dir(config: dict[str, Any], config_path: Path, ctx: DistributedContext, resume: str | None,
                  output_root: str | None) -> Path:
    """`<output_root>/<project>/<config>/<timestamp>`, agreed by all ranks; `--resume` reuses a folder."""
    if resume:
        run_dir = Path(resume)
        if not (run_dir / "checkpoints" / "latest_model.pt").is_file():
            raise UserInputError(f"{run_dir}: --resume needs a run folder holding checkpoints/latest_model.pt")
        return run_dir
    if ctx.is_main:
        root = Path(output_root or config.get("output_root") or "runs")
        parts = config_path.resolve().parts
        project = parts[parts.index("projects") + 1] if "projects" in parts[:-1] else "misc"
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = root / project / config_path.stem / stamp
        run_dir, n = base, 1
        while run_dir.exists():
            n += 1
            run_dir = base.with_name(f"{stamp}-{n}")
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "figures").mkdir()
        name = [str(run_dir)]
    else:
        name = [None]
    if ctx.enabled:
        dist.broadcast_object_list(name, src=0)
    return Path(name[0])


def _plot_history(history: list[dict[str, float]], run_dir: Path) -> None:
    from dl_utils.figures import plot_training_curves

    atomic_write_text(run_dir / "training_history.yaml", yaml.safe_dump(history, sort_keys=False))
    plot_training_curves(history, run_dir / "figures" / "training_curves.png")
