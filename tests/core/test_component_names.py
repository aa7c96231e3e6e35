"""Module paths in configs and checkpoints are public API: every shipped YAML and every
`weights/*.pt` resolves and checks through the builder, whatever the file layout is now
(core.config.aliases maps the names of moved modules)."""
from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config.aliases import MODULE_ALIASES
from core.config.builder import ComponentBuilder
from core.config.configurator import load_config
from core.run import checkpoint_metadata
from dl_utils.checkpoint import load_checkpoint
from dl_utils.param_types import is_component

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(ROOT.glob("projects/*/configs/*.yaml"))
WEIGHTS = sorted(ROOT.glob("weights/*.pt"))


def _components(node: Any, key: str = "") -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        if is_component(node):
            yield key, node
        for name, value in node.items():
            yield from _components(value, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _components(value, f"{key}[{i}]")


def _check_all(config: dict, where: str) -> int:
    builder = ComponentBuilder(where)
    config = builder.upgrade(config)
    found = list(_components(config))
    for key, spec in found:
        builder.check(spec, key)
    return len(found)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_shipped_config_resolves(config):
    assert _check_all(load_config(config), str(config)) > 0


@pytest.mark.parametrize("weights", WEIGHTS, ids=lambda p: p.name)
def test_every_shipped_checkpoint_resolves(weights):
    state = load_checkpoint(weights)
    assert _check_all(checkpoint_metadata.read(state, weights), str(weights)) > 0


def test_a_moved_module_keeps_its_old_name():
    for old, new in MODULE_ALIASES.items():
        importlib.import_module(new)
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)  # the alias is needed: the old file is gone
    builder = ComponentBuilder("test")
    old = {"module_name": "core.DownstreamEvaluator", "class_name": "AnomalyDetectionEvaluator", "params": {}}
    assert builder.resolve_class(old, "task").__module__ == "core.evaluation.evaluator"


def test_there_are_shipped_configs_and_weights():
    assert len(CONFIGS) >= 15 and any(p.name == "ra_demo.pt" for p in WEIGHTS)
