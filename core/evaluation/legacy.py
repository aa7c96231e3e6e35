"""Config version 1 of `AnomalyDetectionEvaluator`: 27 flat params, moved into today's groups.

Configs, run folders and checkpoints (metadata version 1, e.g. `weights/ra_demo.pt`) written
before the grouping keep working: `dl_utils.param_groups.group_flat_params` moves each flat key
of `FLAT_KEYS` into its group (a flat key over a grouped one overrides it, with a warning).
"""
from __future__ import annotations

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
