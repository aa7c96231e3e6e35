"""One experiment from config to run folder: check and build everything, then train and/or evaluate.

The jobs live in their own modules: `core.config.configurator` (load, merge, check the YAML),
`core.run.assembly` (build the parts, reading every user file), `core.run.run_folder` (create or
resume the run folder), this module (the order of things, training and evaluation).
Nothing is written before every check has passed.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import yaml

from core.config.builder import ORCHESTRATOR, ComponentBuilder
from core.config.configurator import ConfigError, describe_sources, load_config, refuse_file_opt_in, run_seed, validate_top_level
from core.evaluation.result import EvaluationResult
from core.run import checkpoint_metadata
from core.run.assembly import Parts, build_parts
from core.run.config_check import ORCHESTRATOR_KEY, check_config
from core.run.report import try_write_report
from core.run.results import write_results
from core.run.run_folder import LATEST, make_run_dir, resume_config, write_run_config
from data.trained_on import from_data_module
from dl_utils import recovery
from dl_utils.checkpoint import atomic_write_text
from dl_utils.device import resolve_device
from dl_utils.distributed import DistributedContext, barrier, context_from_env, destroy_process_group, init_process_group
from dl_utils.errors import MEMORY_FIX, UserInputError, is_out_of_memory, memory_detail
from dl_utils.param_groups import HeldWarnings
from dl_utils.run_logger import RunLogger, configure_logging
from dl_utils.seeding import seed_everything

LOG = logging.getLogger(__name__)


def run_experiment(config_path: str | Path, overrides: list[str] | None = None, *, resume: str | None = None,
                   output_root: str | None = None, quiet: bool = False, allow_external_modules: bool = False) -> Path | None:
    """Run the experiment described by `config_path`; return the run folder (rank 0) or None.

    With `resume`, the run folder's stored config is continued (see `core.run.run_folder`).
    `allow_external_modules` is the command line's `--allow-external-modules` (no file grants it).
    """
    with HeldWarnings() as held:  # upgrade warnings wait until the config is accepted (a refusal is one line)
        config_path = Path(config_path)
        overrides = list(overrides or [])
        resume_dir = Path(resume) if resume else None
        if resume_dir is not None:
            config = resume_config(resume_dir, config_path, overrides)
            where = str(resume_dir / "config.yaml")
        else:
            config, where = _load(config_path, overrides)
            if ORCHESTRATOR_KEY in config:  # a config that runs other configs (the benchmark)
                return _run_orchestrator(config, config_path, where, output_root, quiet, allow_external_modules, held)
        config = checkpoint_metadata.complete_config(config)  # test-only config: model from the weights
        validate_top_level(config, where)
        configure_logging(None, verbose=not quiet)
        ctx = context_from_env()
        device = resolve_device(config.get("device", "auto"), ctx.local_rank)
        created = init_process_group(ctx, device)
        try:
            return _run(config, config_path, overrides, where, ctx, device, resume_dir, output_root, quiet,
                        allow_external_modules, held)
        except (MemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            raise UserInputError(f"{where}: out of memory ({memory_detail(exc)}); {MEMORY_FIX}") from exc
        finally:
            if created:  # a caller's group (`uad cv` runs every fold in one) stays
                destroy_process_group()


def check_experiment(config_path: str | Path, overrides: list[str] | None = None, *,
                     allow_external_modules: bool = False) -> None:
    """Every check `run_experiment` makes before it writes (config, components, every user file read,
    parts built), and nothing written: what `uad cv` runs for each fold before it claims its folder.
    A config with `orchestrator` is checked as far as its top level; its configs are checked when they run."""
    with HeldWarnings():
        config_path = Path(config_path)
        config, where = _load(config_path, list(overrides or []))
        if ORCHESTRATOR_KEY in config:
            return
        config = checkpoint_metadata.complete_config(config)
        validate_top_level(config, where)
        device = resolve_device(config.get("device", "auto"), context_from_env().local_rank)
        _build(config, config_path, where, DistributedContext(), device, None, allow_external_modules)


def _load(config_path: Path, overrides: list[str]) -> tuple[dict[str, Any], str]:
    """The config with its bases merged and `--set` applied, and how to name where it came from."""
    sources: list[Path] = []
    config = load_config(config_path, sources, overrides)
    return config, describe_sources(config_path, sources)


def _build(config: dict[str, Any], config_path: Path, where: str, ctx: DistributedContext, device: torch.device,
           resume_dir: Path | None, allow_external_modules: bool) -> tuple[dict[str, Any], Parts]:
    """Seed, upgrade the config to today's form and build every part: (upgraded config, parts)."""
    seed = run_seed(config)
    seed_everything(seed, deterministic=config.get("deterministic", True), num_threads=config.get("num_threads"))
    builder = ComponentBuilder(where, allow_external_modules)
    config = builder.upgrade(config)  # earlier config versions in today's form: what is built is what is stored
    parts = build_parts(config, builder, config_path, ctx, device, seed,
                        resume_from=resume_dir / LATEST if resume_dir is not None else None)
    return config, parts


def _run(config: dict[str, Any], config_path: Path, overrides: list[str], where: str, ctx: DistributedContext,
         device: torch.device, resume_dir: Path | None, output_root: str | None, quiet: bool,
         allow_external_modules: bool, held: HeldWarnings) -> Path | None:
    config, parts = _build(config, config_path, where, ctx, device, resume_dir, allow_external_modules)
    held.release()  # the config is accepted: its upgrade warnings now

    # Every check passed: only now does the run write anything.
    run_dir = resume_dir if resume_dir is not None else make_run_dir(config, config_path, ctx, output_root)
    # stopped part-way: a training run resumes from its last checkpoint; a test-only run has none and runs again
    advice = (recovery.resume_or_run_again(run_dir, run_dir / LATEST) if parts.trainer is not None
              else recovery.run_again(f"the run folder {run_dir} is incomplete: delete it"))
    with recovery.advise(advice):
        return _write_run(config, config_path, overrides, parts, run_dir, resume_dir is not None, ctx, device, quiet)


def _write_run(config: dict[str, Any], config_path: Path, overrides: list[str], parts: Parts, run_dir: Path,
               resumed: bool, ctx: DistributedContext, device: torch.device, quiet: bool) -> Path | None:
    """Train and evaluate into the claimed (or `resumed`) `run_dir`; write its results, records and report."""
    if ctx.is_main:
        configure_logging(run_dir / "log.txt", verbose=not quiet, label=str(config["name"]))
        if not resumed:
            write_run_config(run_dir, config, config_path, overrides)
    experiment_name = str(config["experiment"].get("name") or config["name"])
    wandb_cfg = (config.get("logging") or {}).get("wandb") or {}
    logger = RunLogger(run_dir, ctx.is_main, wandb_cfg.get("mode", "disabled"), wandb_cfg.get("project", "uad-brain-mri"),
                       wandb_cfg.get("entity"), run_name=f"{config['name']}/{experiment_name}", config=config)
    LOG.info("experiment %s: run folder %s on %s (rank %d of %d)", experiment_name, run_dir, device, ctx.rank, ctx.world_size)
    try:
        trained = from_data_module(parts.trainer.data_module).to_plain() if parts.trainer is not None else None
        evaluations, training = _train_and_evaluate(parts, run_dir, ctx, logger, checkpoint_metadata.describe(config, trained))
        if ctx.is_main:
            results = {task: result.to_json() for task, result in evaluations.items()}
            if training:
                results["training"] = {"summary": training}
            write_results(results, run_dir, header=f"{config['name']} / {experiment_name} ({config_path})",
                          per_volume={task: result.per_volume for task, result in evaluations.items() if not result.is_skipped})
            if parts.trainer is not None:  # the run's own checkpoint only, never a shipped weights file
                checkpoint_metadata.store_evaluation(run_dir / "checkpoints" / "best_model.pt", config, evaluations)
            try_write_report(run_dir)  # report.html from the files just written
        barrier()
    finally:
        logger.finish()
    return run_dir if ctx.is_main else None


def _train_and_evaluate(parts: Parts, run_dir: Path, ctx: DistributedContext, logger: RunLogger,
                        checkpoint_extra: dict[str, Any]) -> tuple[dict[str, EvaluationResult], dict[str, float] | None]:
    """Train (when there is a trainer), then every evaluation: ({task: result}, training summary)."""
    trainer = parts.trainer
    if trainer is not None:
        trainer.attach_run(run_dir, logger, checkpoint_extra)  # every checkpoint carries the run's config
        trainer.train()
        parts.model.load_state_dict(trainer.best_weights)
        if ctx.is_main:
            _plot_history(trainer.history, run_dir)
    barrier()
    # every rank evaluates (each scores its share of the volumes); rank 0's results are the run's
    evaluations = {name: evaluator.run(run_dir / name, logger) for name, evaluator in parts.evaluators.items()}
    training = _training_summary(trainer) if ctx.is_main and trainer is not None else None
    return (evaluations, training) if ctx.is_main else ({}, None)


def _run_orchestrator(config: dict[str, Any], config_path: Path, where: str, output_root: str | None,
                      quiet: bool, allow_external_modules: bool, held: HeldWarnings) -> Path:
    """Build `orchestrator` (a class with `run(run_dir, run_experiment, quiet) -> (results,
    table)`), give it a run folder and write what it returns."""
    refuse_file_opt_in(config, where)
    extra = set(config) - {"name", ORCHESTRATOR_KEY, "output_root", "device"}
    if extra or "name" not in config:
        key = sorted(extra)[0] if extra else "name"
        raise ConfigError(where, key, "a config with 'orchestrator' takes only name, orchestrator, output_root, device")
    if context_from_env().enabled:
        raise UserInputError(f"{where}: a config with 'orchestrator' runs its configs one after another in one "
                             "process; start it without torchrun")
    builder = ComponentBuilder(where, allow_external_modules)
    orchestrator = builder.build(config[ORCHESTRATOR_KEY], ORCHESTRATOR_KEY, expected=ORCHESTRATOR)
    forced = [f"device={config['device']}"] if "device" in config else []  # applies to every nested run
    try:  # every config it will run, before its run folder exists
        orchestrator.check(lambda path, overrides: check_config(path, [*forced, *overrides], allow_external_modules))
    except UserInputError as exc:
        raise UserInputError(f"{where}: {ORCHESTRATOR_KEY}: {exc}") from exc
    held.release()
    run_dir = make_run_dir(config, config_path, DistributedContext(), output_root)

    def nested(path: str | Path, overrides: list[str] | None = None, **kwargs: Any) -> Path | None:
        return run_experiment(path, [*forced, *(overrides or [])], allow_external_modules=allow_external_modules, **kwargs)

    # its advice holds over its runs' (resuming one of them would not finish this one)
    with recovery.advise(recovery.run_again(f"the run folder {run_dir} is incomplete: delete it")):
        configure_logging(run_dir / "log.txt", verbose=not quiet, label=str(config["name"]))
        write_run_config(run_dir, config, config_path, [])
        results, table = orchestrator.run(run_dir, nested, quiet)
        write_results({ORCHESTRATOR_KEY: results}, run_dir, header=f"{config['name']} ({config_path})", table=table)
        try_write_report(run_dir)  # report.html: the comparison and every method's volumes
    return run_dir


def _training_summary(trainer: Any) -> dict[str, float]:
    last = trainer.history[-1] if trainer.history else {}
    return {"epochs": float(len(trainer.history)), "best_epoch": float(trainer.best_epoch + 1),
            "best_val_loss": float(trainer.best_val), "last_train_loss": float(last.get("train_loss", float("nan"))),
            "train_seconds": float(sum(h.get("seconds", 0.0) for h in trainer.history))}


def _plot_history(history: list[dict[str, float]], run_dir: Path) -> None:
    from dl_utils.figures import plot_training_curves

    atomic_write_text(run_dir / "training_history.yaml", yaml.safe_dump(history, sort_keys=False))
    plot_training_curves(history, run_dir / "figures" / "training_curves.png")
