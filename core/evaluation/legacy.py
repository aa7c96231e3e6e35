"""Config version 1 of `AnomalyDetectionEvaluator`: 27 flat params, moved into today's groups.

Configs, run folders and checkpoints (metadata version 1, e.g. `weights/ra_demo.pt`) written
before the grouping keep working: `group_flat_params` moves each flat key into its group, so
the grouped form is what the configurator checks, the run folder stores and checkpoints
carry. A flat key beside a grouped value of the same setting (a flat `--set` or YAML over a
grouped base config) overrides it, with a warning naming the grouped key to write instead.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

LOG = logging.getLogger(__name__)
SCORING, INFERENCE = "scoring", "inference"

FLAT_KEYS: dict[str, tuple[str, ...]] = {
    "scorer": (SCORING, "scorer"),
    "map_postprocessing": (SCORING, "map_postprocessing"),
    "binary_postprocessing": (SCORING, "binary_postprocessing"),
    "sample_score": (SCORING, "sample_score"),
    "skip_if_unavailable": (SCORING, "skip_if_unavailable"),
    "slice_batch_size": (SCORING, INFERENCE, "slice_batch_size"),
    "precision": (SCORING, INFERENCE, "precision"),
    "unet_batch_size": (SCORING, INFERENCE, "unet_batch_size"),
    "channels_last": (SCORING, INFERENCE, "channels_last"),
    "compile_unet": (SCORING, INFERENCE, "compile_unet"),
    "compile_min_tflop": (SCORING, INFERENCE, "compile_min_tflop"),
    "labelled_validation": ("roles", "labelled_validation"),
    "healthy_validation": ("roles", "healthy_validation"),
    "healthy_test": ("roles", "healthy_test"),
    "fit_set": ("roles", "fit_set"),
    "fpr_levels": ("thresholds", "fpr_levels"),
    "threshold_search": ("thresholds", "search"),
    "bisection_steps": ("thresholds", "bisection_steps"),
    "oracle": ("thresholds", "oracle"),
    "fixed_thresholds": ("thresholds", "fixed"),
    "search_with_binary_postprocessing": ("thresholds", "search_with_binary_postprocessing"),
    "detection_min_fraction": ("detection", "min_fraction"),
    "detection_per_slice": ("detection", "per_slice"),
    "detection_unit": ("detection", "unit"),
    "figure_cases": ("outputs", "figure_cases"),
    "save_maps": ("outputs", "save_maps"),
    "keep_scratch": ("outputs", "keep_scratch"),
}


def group_flat_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with every flat (version 1) key moved to its group; grouped params pass unchanged."""
    out = copy.deepcopy(dict(params))
    for flat, path in FLAT_KEYS.items():
        if flat not in out:
            continue
        value = out.pop(flat)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"'{flat}' belongs to '{'.'.join(path[:-1])}', which is not a mapping here")
            node = child
        if path[-1] in node and node[path[-1]] != value:
            LOG.warning("evaluator param '%s' (flat, config version 1) overrides '%s'; write it as '%s'",
                        flat, ".".join(path), ".".join(path))
        node[path[-1]] = value
    return out
