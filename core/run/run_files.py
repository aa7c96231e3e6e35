"""A run folder's results.json / timing.json and per_volume.csv read through one checked view.

A run folder may come from someone else (`uad describe`, `uad report`) and its files may be
damaged or crafted: every reader goes through here, so a file of the wrong shape is one line
naming the file, the entry and the fix, never a KeyError deep inside a reader.
Shape: {task: {data set: {metric: value, "thresholds": {rule key: {kind, value, ...}},
"input_grid": {shape, preprocessing}, "scored_with": {seed, compiled_unet, autocast}}}} (the benchmark's `orchestrator` and the `training`
summary are tasks of the same shape).
"""
from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.evaluation.result import INPUT_GRID_KEY, THRESHOLDS_KEY, SetResult
from dl_utils.checkpoint import read_json_mapping
from dl_utils.errors import UserInputError

RESULTS_FIX = "evaluate the run again (uad test) to rewrite it"
PER_VOLUME_COLUMNS = ("dataset", "name")


def read_results_json(path: str | Path, fix: str = RESULTS_FIX) -> dict[str, dict[str, dict[str, Any]]]:
    """{task: {data set: entry}} of a results.json or timing.json, each entry checked to parse as a
    `SetResult` (its thresholds and input grid included); anything else is a one-line UserInputError.
    A metric written as null (undefined, e.g. AUROC without lesions: `dl_utils.json_files`) reads as NaN."""
    path = Path(path)
    data = read_json_mapping(path, fix)
    for task, sets in data.items():
        if not isinstance(sets, Mapping):
            raise UserInputError(f"{path}: '{task}' must map data set names to their metrics, got "
                                 f"{type(sets).__name__} {_short(sets)}; {fix}")
        for name, entry in sets.items():
            where = f"{task}.{name}"
            if not isinstance(entry, Mapping):
                raise UserInputError(f"{path}: {where} must be a mapping of metrics, got {type(entry).__name__} "
                                     f"{_short(entry)}; {fix}")
            _check_entry(path, where, entry, fix)
            sets[name] = {k: math.nan if v is None else v for k, v in entry.items()}  # a metric left undefined: null
    return data


def skipped_tasks(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, str]:
    """{task: why} of the tasks of a results.json that evaluated nothing (every data set entry says
    `skipped`, e.g. RA's LPIPS task without the SqueezeNet weights)."""
    return {task: str(next(iter(sets.values()))["skipped"]) for task, sets in results.items()
            if sets and all(isinstance(m, Mapping) and "skipped" in m for m in sets.values())}


def _check_entry(path: Path, where: str, entry: Mapping[str, Any], fix: str) -> None:
    thresholds, grid = entry.get(THRESHOLDS_KEY), entry.get(INPUT_GRID_KEY)
    if thresholds is not None:
        if not isinstance(thresholds, Mapping):
            raise UserInputError(f"{path}: {where}.{THRESHOLDS_KEY} must map rule keys to fitted thresholds, got "
                                 f"{type(thresholds).__name__} {_short(thresholds)}; {fix}")
        for key, value in thresholds.items():
            if not isinstance(value, Mapping) or "kind" not in value or "value" not in value:
                raise UserInputError(f"{path}: {where}.{THRESHOLDS_KEY}.{key} must be a mapping with 'kind' and 'value', "
                                     f"got {_short(value)}; {fix}")
    if grid is not None and not (isinstance(grid, Mapping) and isinstance(grid.get("shape"), list)):
        raise UserInputError(f"{path}: {where}.{INPUT_GRID_KEY} must be a mapping with a 'shape' list, got {_short(grid)}; {fix}")
    try:
        SetResult.from_json(entry)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UserInputError(f"{path}: {where}: {' '.join(str(exc).split())[:160]}; {fix}") from exc


def read_per_volume(path: str | Path, fix: str = RESULTS_FIX) -> list[dict[str, str]]:
    """The rows of a per_volume.csv (at least `dataset` and `name`); [] when there is none."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserInputError(f"{path}: not a readable UTF-8 CSV file ({type(exc).__name__}); {fix}") from exc
    missing = [c for c in PER_VOLUME_COLUMNS if c not in columns]
    if rows and missing:
        raise UserInputError(f"{path}: lacks column(s) {', '.join(missing)}; {fix}")
    return rows


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
