"""Check a config file without running it: what can be known before its data and weights are read.

A config that runs other configs (the benchmark's orchestrator) checks every one of them this
way before it claims its own run folder, so a bad value in its last method is one line and no
folder, not a folder left behind after the first methods ran.
"""
from __future__ import annotations

from pathlib import Path

from core.config.builder import ComponentBuilder
from core.config.configurator import describe_sources, load_config, validate_top_level
from core.run.assembly import check_parts
from core.run.checkpoint_metadata import complete_config
from dl_utils.param_groups import HeldWarnings

ORCHESTRATOR_KEY = "orchestrator"  # a config that runs other configs (the benchmark); they are checked as it runs


def check_config(config_path: str | Path, overrides: list[str] | None = None, allow_external_modules: bool = False) -> None:
    """Load `config_path` (bases, `--set` `overrides`) and check its top-level keys and every component's
    class, role, parameter names, types and ranges; a one-line UserInputError on the first problem.
    A test-only config without `model` is checked with the model (and tasks) its weights carry, as it will run;
    a config that runs other configs (`orchestrator`) is checked when it runs."""
    with HeldWarnings():  # a refused config is one line, without the upgrade warnings before it
        sources: list[Path] = []
        config = load_config(config_path, sources, overrides or [])
        where = describe_sources(config_path, sources)
        if ORCHESTRATOR_KEY in config:
            return
        completed = complete_config(config)  # a test-only config takes its model (and tasks) from its weights
        if "model" not in config and "model" in completed:
            where = f"{where} (with the config stored in {config['experiment']['weights']})"
        config = completed
        validate_top_level(config, where)
        builder = ComponentBuilder(where, allow_external_modules)
        check_parts(builder.upgrade(config), builder)
