"""Stable component names: the `module_name`s that configs and checkpoints may hold, mapped to
where those classes live now.

A `module_name` in a YAML file, in a run folder's `config.yaml` or inside a checkpoint is
public API: it outlives the file layout. When a module moves, its old dotted path is added
here (never removed), so every config and weights file written before the move still builds
the same class (`tests/core/test_component_names.py` resolves every shipped YAML and
`weights/*.pt`). `core.Trainer` and `core.DownstreamEvaluator` are iml-dl's names, kept as the
documented ones.
"""
from __future__ import annotations

DOCUMENTED_NAMES: dict[str, str] = {  # iml-dl's names, which the README and the shipped YAML use
    "core.Trainer": "core.training.trainer",
    "core.DownstreamEvaluator": "core.evaluation.evaluator",
}
MODULE_ALIASES: dict[str, str] = {
    **DOCUMENTED_NAMES,
    # flat core/ modules before the regrouping into subpackages (metadata_version 1)
    "core.Configurator": "core.config.configurator",
    "core.evaluation_sets": "core.evaluation.scored_sets",
    "core.evaluation_metrics": "core.evaluation.metrics",
    "core.evaluation_outputs": "core.evaluation.outputs",
    "core.volume_scoring": "core.evaluation.reconstruction",
    "core.unet_compile": "core.evaluation.unet_compile",
    "core.Run": "core.run.experiment",
    "core.assembly": "core.run.assembly",
    "core.run_folder": "core.run.run_folder",
    "core.results": "core.run.results",
    "core.checkpoint_metadata": "core.run.checkpoint_metadata",
    "core.cli": "core.commands.cli",
    "core.predict": "core.commands.predict",
    "core.convert": "core.commands.convert",
    "core.cross_validation": "core.commands.cross_validation",
}


def resolve_module_name(module_name: str) -> str:
    """The module that holds today what `module_name` named when it was written."""
    return MODULE_ALIASES.get(module_name, module_name)
